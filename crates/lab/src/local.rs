//! The local backend: every emulated server is an `mtalab server` child process bound to its
//! own loopback address (scenario addresses mapped by [`crate::mapping`]), and the lab DNS is
//! an `mtalab dns` child. No root, no Docker.
//!
//! A lab lives in one directory: `state.json` (written before any process starts and updated
//! as they do, so `down` can clean up after a crash), `dns/zones.json`, and per server
//! `servers/<name>/server.toml`, `data/` and `server.log`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::mapping::AddressMap;
use crate::render::{self, Ports};
use crate::scenario::Scenario;

/// One server of a running lab, as `inspect` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerInfo {
    /// Server name.
    pub name: String,
    /// Site.
    pub site: String,
    /// Address in the scenario (the KB's).
    pub scenario_address: Ipv4Addr,
    /// Address actually bound.
    pub address: Ipv4Addr,
    /// SMTP port, when the server runs an IMS.
    pub smtp_port: Option<u16>,
    /// Admin API port.
    pub admin_port: u16,
    /// P1 (RFC 1006) port, when the server runs an MTA.
    #[serde(default)]
    pub p1_port: Option<u16>,
    /// Scenario addresses of the server's other interfaces (name, scenario, real).
    #[serde(default)]
    pub interfaces: Vec<(String, Ipv4Addr, Ipv4Addr)>,
    /// Rendered config file.
    pub config: PathBuf,
    /// Process id while running.
    pub pid: Option<u32>,
}

/// A lab's state file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabState {
    /// Scenario name.
    pub name: String,
    /// Scenario file.
    pub scenario: PathBuf,
    /// Backend ("local").
    pub backend: String,
    /// Lab directory.
    pub dir: PathBuf,
    /// Ports used by every server.
    pub ports: Ports,
    /// DNS scenario and real address.
    pub dns_scenario_address: Ipv4Addr,
    /// DNS real address.
    pub dns_address: Ipv4Addr,
    /// DNS process id.
    pub dns_pid: Option<u32>,
    /// Client hosts: name, scenario address, real address.
    pub hosts: Vec<(String, Ipv4Addr, Ipv4Addr)>,
    /// Servers.
    pub servers: Vec<ServerInfo>,
}

impl LabState {
    /// Read `<dir>/state.json`.
    pub fn read(dir: &Path) -> anyhow::Result<LabState> {
        let p = dir.join("state.json");
        let text = std::fs::read_to_string(&p).with_context(|| format!("no lab at {} (cannot read {})", dir.display(), p.display()))?;
        serde_json::from_str(&text).with_context(|| format!("bad state file {}", p.display()))
    }

    fn write(&self) -> anyhow::Result<()> {
        let p = self.dir.join("state.json");
        let tmp = self.dir.join("state.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&tmp, &p)?;
        Ok(())
    }

    /// A server by name (case-insensitive).
    pub fn server(&self, name: &str) -> Option<&ServerInfo> {
        self.servers.iter().find(|s| s.name.eq_ignore_ascii_case(name))
    }

    /// The admin API base URL of a server.
    pub fn admin_url(&self, name: &str) -> Option<String> {
        self.server(name).map(|s| format!("http://{}:{}", s.address, s.admin_port))
    }

    /// Real address of a client host or server by name.
    pub fn host_address(&self, name: &str) -> Option<Ipv4Addr> {
        self.hosts
            .iter()
            .find(|h| h.0.eq_ignore_ascii_case(name))
            .map(|h| h.2)
            .or_else(|| self.server(name).map(|s| s.address))
    }

    /// The lab DNS as a socket address.
    pub fn dns_socket(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.dns_address), self.ports.dns)
    }
}

/// Options of the local backend.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// The `mtalab` executable to run servers with (default: this executable, or `$MTALAB_BIN`).
    pub exe: PathBuf,
    /// First port to try for SMTP; admin = +1, DNS = +2, P1 = +3 (default 2525).
    pub port_base: Option<u16>,
}

impl Default for LocalOptions {
    fn default() -> Self {
        let exe = std::env::var_os("MTALAB_BIN")
            .map(PathBuf::from)
            .or_else(|| std::env::current_exe().ok())
            .unwrap_or_else(|| PathBuf::from("mtalab"));
        LocalOptions { exe, port_base: None }
    }
}

/// A running local lab (the process that started it holds the children).
pub struct LocalLab {
    /// Its state.
    pub state: LabState,
    /// The address map.
    pub map: AddressMap,
    exe: PathBuf,
    children: HashMap<String, Child>,
    /// The scenario's networks (name, subnet), to find a server's interface on a network.
    networks: Vec<(String, ipnet::Ipv4Net)>,
    /// Emulated link settings made by fault steps, per (server, interface): (up, rate kbit/s).
    /// A server started again gets them back (they live in the server process).
    links: std::collections::BTreeMap<(String, String), (bool, u32)>,
}

fn ports_free(addrs: &[Ipv4Addr], p: Ports) -> bool {
    addrs.iter().all(|a| {
        let ip = IpAddr::V4(*a);
        std::net::TcpListener::bind(SocketAddr::new(ip, p.smtp)).is_ok()
            && std::net::TcpListener::bind(SocketAddr::new(ip, p.admin)).is_ok()
            && std::net::TcpListener::bind(SocketAddr::new(ip, p.dns)).is_ok()
            && std::net::UdpSocket::bind(SocketAddr::new(ip, p.dns)).is_ok()
            && std::net::TcpListener::bind(SocketAddr::new(ip, p.p1)).is_ok()
    })
}

/// Pick ports free on every address: from `base` (default 2525) upwards in steps of 4
/// (SMTP, admin = +1, DNS = +2, P1 = +3).
pub fn pick_ports(addrs: &[Ipv4Addr], base: Option<u16>) -> anyhow::Result<Ports> {
    let base = base.unwrap_or(2525);
    for k in 0..200u16 {
        let smtp = base.checked_add(k * 4).context("no free ports")?;
        let p = Ports { smtp, admin: smtp + 1, dns: smtp + 2, p1: smtp + 3 };
        if ports_free(addrs, p) {
            return Ok(p);
        }
    }
    bail!("no free port triple from {base} on the lab's loopback addresses")
}

impl LocalLab {
    /// Render the scenario into `dir`, start the DNS and every server, and wait until all
    /// are healthy. On failure everything started is stopped again.
    pub async fn up(scenario_path: &Path, sc: &Scenario, dir: &Path, opts: &LocalOptions) -> anyhow::Result<LocalLab> {
        if dir.join("state.json").exists() {
            let old = LabState::read(dir)?;
            if any_alive(&old) {
                bail!("a lab is already running in {} (run `mtalab lab down --dir {}` first)", dir.display(), dir.display());
            }
            cleanup_dir(dir);
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let dir = dir.canonicalize()?;
        let map = AddressMap::new(&sc.addresses()).map_err(|e| anyhow::anyhow!(e))?;
        let real: Vec<Ipv4Addr> = sc.addresses().iter().map(|a| map.real(*a)).collect();
        let ports = pick_ports(&real, opts.port_base)?;

        let mut servers = Vec::new();
        for srv in &sc.servers {
            let sdir = dir.join("servers").join(&srv.name);
            std::fs::create_dir_all(&sdir)?;
            let cfg = render::server_config(sc, srv, &map, ports, PathBuf::from("data"), true).map_err(|e| anyhow::anyhow!("server {}: {e}", srv.name))?;
            let path = sdir.join("server.toml");
            std::fs::write(&path, cfg.to_toml())?;
            servers.push(ServerInfo {
                name: srv.name.clone(),
                site: srv.site.clone(),
                scenario_address: srv.address,
                address: map.real(srv.address),
                smtp_port: srv.ims.as_ref().map(|_| ports.smtp),
                admin_port: ports.admin,
                p1_port: srv.mta.as_ref().map(|_| ports.p1),
                interfaces: srv.interfaces.iter().map(|i| (i.name.clone(), i.address, map.real(i.address))).collect(),
                config: path,
                pid: None,
            });
        }
        let dns_dir = dir.join("dns");
        std::fs::create_dir_all(&dns_dir)?;
        std::fs::write(dns_dir.join("zones.json"), serde_json::to_vec_pretty(&render::zones(sc, &map))?)?;

        let state = LabState {
            name: sc.scenario.name.clone(),
            scenario: scenario_path.canonicalize().unwrap_or_else(|_| scenario_path.to_path_buf()),
            backend: "local".into(),
            dir: dir.clone(),
            ports,
            dns_scenario_address: sc.dns.address,
            dns_address: map.real(sc.dns.address),
            dns_pid: None,
            hosts: sc.hosts.iter().map(|h| (h.name.clone(), h.address, map.real(h.address))).collect(),
            servers,
        };
        state.write()?;
        let networks = sc.all_networks().into_iter().map(|n| (n.name, n.subnet)).collect();
        let mut lab = LocalLab { state, map, exe: opts.exe.clone(), children: HashMap::new(), networks, links: Default::default() };
        if let Err(e) = lab.start_all().await {
            lab.down_now();
            return Err(e);
        }
        Ok(lab)
    }

    async fn start_all(&mut self) -> anyhow::Result<()> {
        let dns_dir = self.state.dir.join("dns");
        let log = std::fs::File::create(dns_dir.join("dns.log"))?;
        let child = Command::new(&self.exe)
            .arg("dns")
            .arg("--zones")
            .arg(dns_dir.join("zones.json"))
            .arg("--listen")
            .arg(self.state.dns_socket().to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {} dns", self.exe.display()))?;
        self.state.dns_pid = Some(child.id());
        self.children.insert("#dns".into(), child);
        self.state.write()?;
        wait_tcp(self.state.dns_socket(), Duration::from_secs(10)).await.context("the lab DNS did not come up")?;
        let names: Vec<String> = self.state.servers.iter().map(|s| s.name.clone()).collect();
        for n in &names {
            self.spawn_server(n)?;
        }
        for n in &names {
            self.wait_healthy(n, Duration::from_secs(15)).await?;
        }
        Ok(())
    }

    fn spawn_server(&mut self, name: &str) -> anyhow::Result<()> {
        let info = self.state.server(name).context("unknown server")?.clone();
        let sdir = info.config.parent().expect("config in a dir").to_path_buf();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(sdir.join("server.log"))?;
        let child = Command::new(&self.exe)
            .arg("server")
            .arg("--config")
            .arg(&info.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting server {name}"))?;
        let pid = child.id();
        self.children.insert(info.name.clone(), child);
        if let Some(s) = self.state.servers.iter_mut().find(|s| s.name == info.name) {
            s.pid = Some(pid);
        }
        self.state.write()
    }

    async fn wait_healthy(&mut self, name: &str, timeout: Duration) -> anyhow::Result<()> {
        let url = format!("{}/health", self.state.admin_url(name).context("unknown server")?);
        let client = reqwest::Client::new();
        let start = Instant::now();
        loop {
            if let Ok(r) = client.get(&url).timeout(Duration::from_secs(1)).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if let Some(c) = self.children.get_mut(name)
                && let Ok(Some(status)) = c.try_wait()
            {
                let log = self.state.server(name).map(|s| s.config.with_file_name("server.log"));
                let tail = log.and_then(|p| std::fs::read_to_string(p).ok()).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect();
                bail!("server {name} exited ({status}) during start-up:\n{}", tail.join("\n"));
            }
            if start.elapsed() > timeout {
                bail!("server {name} not healthy after {timeout:?} ({url})");
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    /// Stop a server: SIGTERM (graceful) or SIGKILL (a crash), and reap it.
    pub async fn stop_server(&mut self, name: &str, hard: bool) -> anyhow::Result<()> {
        let info = self.state.server(name).context("unknown server")?.clone();
        let Some(pid) = info.pid else { bail!("server {name} is not running") };
        let _ = kill(Pid::from_raw(pid as i32), if hard { Signal::SIGKILL } else { Signal::SIGTERM });
        if let Some(mut c) = self.children.remove(&info.name) {
            let start = Instant::now();
            loop {
                if c.try_wait()?.is_some() {
                    break;
                }
                if start.elapsed() > Duration::from_secs(10) {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        if let Some(s) = self.state.servers.iter_mut().find(|s| s.name == info.name) {
            s.pid = None;
        }
        self.state.write()
    }

    /// Start a stopped server and wait until it is healthy; links cut or limited by earlier
    /// steps are set again (the host's links outlive its server process).
    pub async fn start_server(&mut self, name: &str) -> anyhow::Result<()> {
        let info = self.state.server(name).context("unknown server")?.clone();
        if info.pid.is_some() {
            bail!("server {name} is already running");
        }
        self.spawn_server(&info.name)?;
        self.wait_healthy(&info.name, Duration::from_secs(15)).await?;
        let again: Vec<(String, bool, u32)> = self.links.iter().filter(|((s, _), _)| *s == info.name).map(|((_, i), (up, kbit))| (i.clone(), *up, *kbit)).collect();
        for (iface, up, kbit) in again {
            self.set_link(&info.name, &iface, serde_json::json!({"interface": iface, "up": up, "rate_kbit": kbit})).await?;
        }
        Ok(())
    }

    /// The interface of `server` on `network`: an interface name (`LAN`, `RAS`, …) or the
    /// name of a scenario network one of its addresses is on; default `LAN`.
    pub fn interface_of(&self, server: &str, network: Option<&str>) -> anyhow::Result<(String, Ipv4Addr, Ipv4Addr)> {
        let s = self.state.server(server).with_context(|| format!("unknown server {server}"))?;
        let mut ifaces = vec![("LAN".to_string(), s.scenario_address, s.address)];
        ifaces.extend(s.interfaces.iter().cloned());
        let want = network.unwrap_or("LAN");
        if let Some(i) = ifaces.iter().find(|i| i.0.eq_ignore_ascii_case(want)) {
            return Ok(i.clone());
        }
        if let Some((_, net)) = self.networks.iter().find(|(n, _)| n.eq_ignore_ascii_case(want))
            && let Some(i) = ifaces.iter().find(|i| net.contains(&i.1))
        {
            return Ok(i.clone());
        }
        bail!(
            "server {server} has no link {want:?} (its links: {})",
            ifaces.iter().map(|(n, a, _)| format!("{n} {a}")).collect::<Vec<_>>().join(", ")
        )
    }

    async fn set_link(&mut self, server: &str, iface: &str, body: serde_json::Value) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}/actions/set-link", self.state.admin_url(server).context("unknown server")?);
        let r = reqwest::Client::new().post(&url).json(&body).timeout(Duration::from_secs(5)).send().await.with_context(|| format!("POST {url}"))?;
        let ok = r.status().is_success();
        let v: serde_json::Value = r.json().await.unwrap_or_default();
        if !ok {
            bail!("{server} refused to change its link {iface}: {}", v["error"].as_str().unwrap_or_default());
        }
        Ok(v)
    }

    /// Run a fault step on the servers' emulated links (`mtalab_server::links`): `disconnect`
    /// cuts the link like a pulled cable, `connect` restores it, `link_rate` paces what the
    /// server sends over it. `netem` is skipped with a message: delay and loss are not
    /// emulated.
    pub async fn fault_step(&mut self, step: &crate::scenario::Step) -> anyhow::Result<String> {
        use crate::scenario::Step;
        let (server, network, up, kbit) = match step {
            Step::Disconnect(l) => (&l.server, l.network.as_deref(), Some(false), None),
            Step::Connect(l) => (&l.server, l.network.as_deref(), Some(true), None),
            Step::LinkRate(r) => (&r.server, r.network.as_deref(), None, Some(r.kbit)),
            Step::Netem(_) => {
                return Ok("SKIPPED: no delay or loss added: the local backend emulates cut links and link rates, not delay or loss (the docker backend has tc netem)".into());
            }
            other => bail!("not a fault step: {}", other.label()),
        };
        let name = self.state.server(server).with_context(|| format!("unknown server {server}"))?.name.clone();
        let (iface, scenario, real) = self.interface_of(&name, network)?;
        let mut body = serde_json::json!({"interface": iface});
        if let Some(u) = up {
            body["up"] = u.into();
        }
        if let Some(k) = kbit {
            body["rate_kbit"] = k.into();
        }
        let v = self.set_link(&name, &iface, body).await?;
        let st = &v["link"];
        let entry = self.links.entry((name.clone(), iface.clone())).or_insert((true, 0));
        entry.0 = st["up"].as_bool().unwrap_or(true);
        entry.1 = st["rate_kbit"].as_u64().unwrap_or(0) as u32;
        if *entry == (true, 0) {
            self.links.remove(&(name.clone(), iface.clone()));
        }
        let what = match (up, kbit) {
            (Some(false), _) => "cut (emulated: its connections silent, new ones unreachable)".to_string(),
            (Some(true), _) => "connected again".to_string(),
            (_, Some(0)) => "no rate limit".to_string(),
            (_, Some(k)) => format!("rate {k} kbit/s (emulated: the server paces what it sends over it)"),
            _ => String::new(),
        };
        Ok(format!("{name} {iface} ({scenario} -> {real}): {what}"))
    }

    /// Leave the processes running (for `lab up`): forget the child handles.
    pub fn detach(mut self) -> LabState {
        self.children.clear();
        self.state.clone()
    }

    /// Stop every process of this lab now and remove its runtime files.
    pub fn down_now(&mut self) {
        for (_, mut c) in self.children.drain() {
            let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM);
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(5) {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = down(&self.state.dir);
    }
}

impl Drop for LocalLab {
    fn drop(&mut self) {
        if !self.children.is_empty() {
            self.down_now();
        }
    }
}

async fn wait_tcp(addr: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if start.elapsed() > timeout {
            bail!("nothing listens on {addr} after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn pid_is_ours(pid: u32, dir: &Path) -> bool {
    // Only signal processes that are mtalab children of this lab (the pid may have been reused).
    let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
    cmd.contains(&*dir.to_string_lossy())
}

fn any_alive(st: &LabState) -> bool {
    st.servers.iter().filter_map(|s| s.pid).chain(st.dns_pid).any(|p| pid_is_ours(p, &st.dir))
}

fn cleanup_dir(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir.join("servers"));
    let _ = std::fs::remove_dir_all(dir.join("dns"));
    let _ = std::fs::remove_file(dir.join("state.json"));
}

/// Stop every process recorded in `<dir>/state.json` (SIGTERM, then SIGKILL after 5 s) and
/// remove the lab's runtime files; reports are kept. Works after a crash of `lab run`.
pub fn down(dir: &Path) -> anyhow::Result<usize> {
    let st = LabState::read(dir)?;
    let pids: Vec<u32> = st
        .servers
        .iter()
        .filter_map(|s| s.pid)
        .chain(st.dns_pid)
        .filter(|p| pid_is_ours(*p, &st.dir))
        .collect();
    for p in &pids {
        let _ = kill(Pid::from_raw(*p as i32), Signal::SIGTERM);
    }
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) && pids.iter().any(|p| pid_is_ours(*p, &st.dir) && !is_zombie(*p)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    for p in &pids {
        if pid_is_ours(*p, &st.dir) && !is_zombie(*p) {
            let _ = kill(Pid::from_raw(*p as i32), Signal::SIGKILL);
        }
    }
    cleanup_dir(&st.dir);
    Ok(pids.len())
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z')))
        .unwrap_or(true)
}
