//! The docker backend: the same scenarios in containers, with real routes, the kernel's own
//! choice of source addresses, and captures per network.
//!
//! `lab run|up --backend docker` renders a compose project into the lab directory
//! ([`compose`]), brings it up with compose, waits until every container is healthy, and runs
//! the steps as the local backend does: admin API calls from the host, SMTP from inside the
//! containers (`docker exec … mtalab send`), so a message leaves from the client host's or
//! server's own address. Lab networks are `internal: true`; the host reaches its containers
//! through its end of each bridge (the networks exist only while the lab is up), and
//! [`hostnet`] keeps containers from opening connections to the host. A lab whose servers
//! have static routes has one more service, the guard ([`netguard`]), which lets the routed
//! traffic cross the lab's bridges (rules in the host's `DOCKER-USER` chain, over [`nft`]).
//!
//! The lab directory holds `docker-compose.yml`, `servers/<name>/server.toml`,
//! `dns/zones.json`, `state.json` (the [`LabState`] every backend writes, backend `docker`)
//! and `docker.json` ([`DockerState`]: the compose project, its file, networks, services and
//! containers), all written before anything starts so that `down` removes containers,
//! networks and volumes even after a failed or killed run.

pub mod bench;
pub mod cli;
pub mod compose;
pub mod faults;
pub mod hostnet;
pub mod netguard;
pub mod nft;
pub mod supervise;
pub mod yaml;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::local::{LabState, ServerInfo};
use crate::runner::{self, Report};
use crate::scenario::{Scenario, Step};
use cli::Docker;
use compose::{ComposeOptions, NetworkPlan, PORTS, Role, ServicePlan};

/// The image every service runs unless told otherwise (built by `testnet/image/build.sh`).
pub const DEFAULT_IMAGE: &str = "mtalab:local";

/// How long bring-up may take before the lab is declared failed.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(90);

/// Options of the docker backend.
#[derive(Debug, Clone)]
pub struct DockerOptions {
    /// Image of every service (default [`DEFAULT_IMAGE`], or `$MTALAB_IMAGE`).
    pub image: String,
}

impl Default for DockerOptions {
    fn default() -> Self {
        DockerOptions { image: std::env::var("MTALAB_IMAGE").unwrap_or_else(|_| DEFAULT_IMAGE.into()) }
    }
}

/// What the docker backend records in `docker.json` beside `state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DockerState {
    /// Compose project name (unique per lab directory).
    pub project: String,
    /// The compose file.
    pub compose_file: PathBuf,
    /// The compose command used (`docker compose` or `docker-compose`).
    pub compose: Vec<String>,
    /// Image of the services.
    pub image: String,
    /// Networks.
    pub networks: Vec<NetworkPlan>,
    /// Services.
    pub services: Vec<ServicePlan>,
    /// Service key → container id, once created.
    #[serde(default)]
    pub containers: BTreeMap<String, String>,
    /// Network key → docker network name, once created.
    #[serde(default)]
    pub docker_networks: BTreeMap<String, String>,
    /// Bridges whose INPUT filter rule was inserted ([`hostnet::guard`]).
    #[serde(default)]
    pub guarded: Vec<String>,
}

impl DockerState {
    /// Read `<dir>/docker.json`.
    pub fn read(dir: &Path) -> anyhow::Result<DockerState> {
        let p = dir.join("docker.json");
        let text = std::fs::read_to_string(&p).with_context(|| format!("no docker lab at {} (cannot read {})", dir.display(), p.display()))?;
        serde_json::from_str(&text).with_context(|| format!("bad state file {}", p.display()))
    }

    fn write(&self, dir: &Path) -> anyhow::Result<()> {
        write_atomic(&dir.join("docker.json"), &serde_json::to_vec_pretty(self)?)
    }

    /// A service by scenario name (server or host; case-insensitive) or compose key.
    pub fn service(&self, name: &str) -> Option<&ServicePlan> {
        self.services.iter().find(|s| s.name.eq_ignore_ascii_case(name) || s.key == name)
    }

    /// The service holding an address.
    pub fn service_at(&self, addr: Ipv4Addr) -> Option<&ServicePlan> {
        self.services.iter().find(|s| s.attachments.iter().any(|a| a.2 == addr))
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn write_state(st: &LabState) -> anyhow::Result<()> {
    write_atomic(&st.dir.join("state.json"), &serde_json::to_vec_pretty(st)?)
}

/// The compose project name of a lab directory: `mtalab-<scenario>-<hash of the directory>`.
pub fn project_name(scenario: &str, dir: &Path) -> String {
    let mut name = compose::sanitize(scenario);
    name.truncate(32);
    format!("mtalab-{}-{:06x}", name.trim_end_matches('-'), compose::fnv(&dir.to_string_lossy()) & 0xff_ffff)
}

/// The bridge name prefix of a lab directory (`mtl<hash>-`; bridges are `mtl<hash>-<n>`).
pub fn bridge_prefix(dir: &Path) -> String {
    format!("mtl{:06x}-", compose::fnv(&dir.to_string_lossy()) & 0xff_ffff)
}

/// Health probe used by container healthchecks (`mtalab health`): true when `url` answers
/// with a 2xx status and `tcp` accepts a connection (each when given), within 2 s each.
pub async fn health(url: Option<&str>, tcp: Option<SocketAddr>) -> bool {
    if let Some(u) = url {
        let ok = reqwest::Client::new().get(u).timeout(Duration::from_secs(2)).send().await.is_ok_and(|r| r.status().is_success());
        if !ok {
            return false;
        }
    }
    if let Some(a) = tcp {
        let ok = tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(a)).await.is_ok_and(|r| r.is_ok());
        if !ok {
            return false;
        }
    }
    true
}

/// A running docker lab.
pub struct DockerLab {
    /// Its state (as `inspect` shows it).
    pub state: LabState,
    /// The docker side of it.
    pub docker: DockerState,
    /// How long bring-up took.
    pub timings: UpTimings,
    dc: Docker,
    /// Tear the lab down when dropped (until detached or downed).
    armed: bool,
    /// Rates set by `link_rate` steps, per (service key, docker network): put back on the
    /// new interface when `connect` restores the link.
    rates: BTreeMap<(String, String), u32>,
}

/// Bring-up times of a docker lab, from the moment `compose up` was invoked.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UpTimings {
    /// `compose up -d` returned: containers created and started.
    pub compose_up_ms: u64,
    /// Every container healthy (docker's health status).
    pub healthy_ms: u64,
}

/// One container's condition, from `docker inspect`.
#[derive(Debug, Clone)]
struct Condition {
    status: String,
    health: String,
    pid: u32,
    exit_code: i64,
}

fn inspect(ids: &[&str]) -> anyhow::Result<BTreeMap<String, Condition>> {
    let mut args = vec!["inspect", "--format", "{{.Id}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{.State.Pid}} {{.State.ExitCode}}"];
    args.extend(ids.iter().copied());
    let out = cli::run(&mut cli::docker(args))?;
    let mut m = BTreeMap::new();
    for l in out.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() == 5 {
            m.insert(
                f[0].to_string(),
                Condition { status: f[1].into(), health: f[2].into(), pid: f[3].parse().unwrap_or(0), exit_code: f[4].parse().unwrap_or(0) },
            );
        }
    }
    Ok(m)
}

fn logs_tail(id: &str) -> String {
    let out = std::process::Command::new("docker").args(["logs", "--tail", "8", id]).output();
    match out {
        Ok(o) => format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)).trim().to_string(),
        Err(_) => String::new(),
    }
}

impl DockerLab {
    /// Render the scenario into `dir`, bring the compose project up and wait until every
    /// container is healthy. On failure everything is removed again.
    pub async fn up(scenario_path: &Path, sc: &Scenario, dir: &Path, opts: &DockerOptions) -> anyhow::Result<DockerLab> {
        let dc = Docker::detect()?;
        if dir.join("docker.json").exists() {
            // docker.json is written first: it is there whenever anything of a docker lab may be.
            let old = DockerState::read(dir)?;
            if !cli::project_containers(&old.project)?.is_empty() {
                bail!("a docker lab is already up in {} (run `mtalab lab down --dir {}` first)", dir.display(), dir.display());
            }
            let _ = down(dir);
        } else if dir.join("state.json").exists() {
            let old = LabState::read(dir)?;
            let alive = old.servers.iter().filter_map(|s| s.pid).chain(old.dns_pid).any(|p| Path::new(&format!("/proc/{p}")).exists());
            if alive {
                bail!("a {} lab may be running in {} (run `mtalab lab down --dir {}` first)", old.backend, dir.display(), dir.display());
            }
            let _ = crate::local::down(dir);
        }
        if !cli::image_exists(&opts.image) {
            bail!("image {} is not built: build it with `testnet/image/build.sh` (no registry is used; nothing is pulled)", opts.image);
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let dir = dir.canonicalize()?;
        let project = project_name(&sc.scenario.name, &dir);
        let rendered = compose::render(
            sc,
            &ComposeOptions {
                image: opts.image.clone(),
                files_dir: ".".into(),
                bridge_prefix: bridge_prefix(&dir),
                header: vec![format!("mtalab lab {} (docker backend), compose project {project}; rendered by mtalab, removed by `mtalab lab down`.", sc.scenario.name)],
            },
        )?;
        hostnet::check_subnets_free(&rendered.networks)?;
        for (rel, bytes) in &rendered.files {
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().expect("file in a directory"))?;
            std::fs::write(&p, bytes)?;
        }
        let compose_file = dir.join("docker-compose.yml");
        std::fs::write(&compose_file, &rendered.yaml)?;

        let servers = sc
            .servers
            .iter()
            .map(|srv| ServerInfo {
                name: srv.name.clone(),
                site: srv.site.clone(),
                scenario_address: srv.address,
                address: srv.address,
                smtp_port: srv.ims.as_ref().map(|_| PORTS.smtp),
                admin_port: PORTS.admin,
                p1_port: srv.mta.as_ref().map(|_| PORTS.p1),
                interfaces: srv.interfaces.iter().map(|i| (i.name.clone(), i.address, i.address)).collect(),
                config: dir.join("servers").join(&srv.name).join("server.toml"),
                pid: None,
            })
            .collect();
        let state = LabState {
            name: sc.scenario.name.clone(),
            scenario: scenario_path.canonicalize().unwrap_or_else(|_| scenario_path.to_path_buf()),
            backend: "docker".into(),
            dir: dir.clone(),
            ports: PORTS,
            dns_scenario_address: sc.dns.address,
            dns_address: sc.dns.address,
            dns_pid: None,
            hosts: sc.hosts.iter().map(|h| (h.name.clone(), h.address, h.address)).collect(),
            servers,
        };
        let docker = DockerState {
            project,
            compose_file,
            compose: dc.compose.clone(),
            image: opts.image.clone(),
            networks: rendered.networks,
            services: rendered.services,
            containers: BTreeMap::new(),
            docker_networks: BTreeMap::new(),
            guarded: Vec::new(),
        };
        docker.write(&dir)?;
        write_state(&state)?;
        let mut lab = DockerLab { state, docker, timings: UpTimings::default(), dc, armed: true, rates: BTreeMap::new() };
        if let Err(e) = lab.start_all().await {
            lab.down_now();
            return Err(e);
        }
        Ok(lab)
    }

    async fn start_all(&mut self) -> anyhow::Result<()> {
        let d = &self.docker;
        let t = Instant::now();
        cli::run_async(self.dc.compose(&d.project, &d.compose_file, ["up", "-d", "--no-build", "--remove-orphans"])).await.context("compose up")?;
        self.timings.compose_up_ms = t.elapsed().as_millis() as u64;
        self.after_up().await?;
        self.timings.healthy_ms = t.elapsed().as_millis() as u64;
        Ok(())
    }

    /// After `compose up`: record containers and networks, insert the filter rules, wait
    /// for health.
    async fn after_up(&mut self) -> anyhow::Result<()> {
        for (id, svc) in cli::project_containers(&self.docker.project)? {
            self.docker.containers.insert(svc, id);
        }
        for s in &self.docker.services {
            if !self.docker.containers.contains_key(&s.key) {
                bail!("compose created no container for service {}", s.key);
            }
        }
        for n in cli::project_networks(&self.docker.project)? {
            if let Some(p) = self.docker.networks.iter().find(|p| n == format!("{}_{}", self.docker.project, p.key)) {
                self.docker.docker_networks.insert(p.key.clone(), n);
            }
        }
        for n in self.docker.networks.clone() {
            self.docker.guarded.push(n.bridge.clone());
            self.docker.write(&self.state.dir)?;
            if let Err(e) = hostnet::guard(&n.bridge) {
                eprintln!("  warning: network {} ({}): {e:#}", n.name, n.bridge);
            }
        }
        self.docker.write(&self.state.dir)?;
        // Not the guard's: it is on the host's network, and that default route is the host's.
        let ids: Vec<String> = self.docker.services.iter().filter(|s| s.role != Role::Guard).filter_map(|s| self.docker.containers.get(&s.key).cloned()).collect();
        self.drop_default_routes(ids).await;
        let keys: Vec<String> = self.docker.services.iter().map(|s| s.key.clone()).collect();
        self.wait_healthy(&keys, HEALTH_TIMEOUT).await
    }

    /// Leave these containers with their scenario's routes only ([`hostnet::drop_default_route`]).
    async fn drop_default_routes(&self, ids: Vec<String>) {
        let r = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let cond = inspect(&ids.iter().map(String::as_str).collect::<Vec<_>>())?;
            for c in cond.values().filter(|c| c.pid != 0) {
                hostnet::drop_default_route(c.pid)?;
            }
            Ok(())
        })
        .await;
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("  warning: containers keep docker's default route through the host (where it is dropped): {e:#}"),
            Err(e) => eprintln!("  warning: {e}"),
        }
    }

    fn container(&self, key: &str) -> anyhow::Result<&str> {
        self.docker.containers.get(key).map(String::as_str).with_context(|| format!("no container for service {key}"))
    }

    /// Wait until the containers of these services are healthy; record their pids.
    async fn wait_healthy(&mut self, keys: &[String], timeout: Duration) -> anyhow::Result<()> {
        let ids: Vec<String> = keys.iter().map(|k| self.container(k).map(str::to_string)).collect::<Result<_, _>>()?;
        let start = Instant::now();
        loop {
            let batch = ids.clone();
            let cond = tokio::task::spawn_blocking(move || inspect(&batch.iter().map(String::as_str).collect::<Vec<_>>())).await??;
            let mut all = true;
            for (k, id) in keys.iter().zip(&ids) {
                let c = cond.get(id).with_context(|| format!("container of {k} is gone"))?;
                if c.status == "exited" || c.status == "dead" {
                    bail!("service {k} exited (code {}) during start-up:\n{}", c.exit_code, logs_tail(id));
                }
                if c.health != "healthy" {
                    all = false;
                }
            }
            if all {
                for (k, id) in keys.iter().zip(&ids) {
                    self.set_pid(k, cond.get(id).map(|c| c.pid).filter(|p| *p != 0));
                }
                return write_state(&self.state);
            }
            if start.elapsed() > timeout {
                let waiting: Vec<String> = keys.iter().zip(&ids).filter(|(_, id)| cond.get(*id).is_some_and(|c| c.health != "healthy")).map(|(k, _)| k.clone()).collect();
                bail!("not healthy after {timeout:?}: {}", waiting.join(", "));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn set_pid(&mut self, key: &str, pid: Option<u32>) {
        let Some(svc) = self.docker.services.iter().find(|s| s.key == key) else { return };
        match svc.role {
            Role::Server => {
                if let Some(s) = self.state.servers.iter_mut().find(|s| s.name == svc.name) {
                    s.pid = pid;
                }
            }
            Role::Dns => self.state.dns_pid = pid,
            Role::Host | Role::Guard => {}
        }
    }

    fn server_key(&self, name: &str) -> anyhow::Result<String> {
        self.docker
            .services
            .iter()
            .find(|s| s.role == Role::Server && s.name.eq_ignore_ascii_case(name))
            .map(|s| s.key.clone())
            .with_context(|| format!("unknown server {name}"))
    }

    /// Stop a server — gracefully (SIGTERM) or as a crash (SIGKILL) — while its host, the
    /// container, stays up ([`supervise`]); returns once its admin API no longer answers.
    pub async fn stop_server(&mut self, name: &str, hard: bool) -> anyhow::Result<()> {
        let key = self.server_key(name)?;
        let id = self.container(&key)?.to_string();
        let url = format!("{}/health", self.state.admin_url(name).context("unknown server")?);
        cli::run_async(cli::docker(["kill", "-s", if hard { "HUP" } else { "USR2" }, &id])).await?;
        let start = Instant::now();
        while health(Some(&url), None).await {
            if start.elapsed() > Duration::from_secs(15) {
                bail!("server {name} still answers 15 s after it was told to stop");
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        self.set_pid(&key, None);
        write_state(&self.state)
    }

    /// Start a stopped server again in its container and wait until it is healthy.
    pub async fn start_server(&mut self, name: &str) -> anyhow::Result<()> {
        let key = self.server_key(name)?;
        let id = self.container(&key)?.to_string();
        let url = format!("{}/health", self.state.admin_url(name).context("unknown server")?);
        let start = Instant::now();
        let mut asked = Duration::ZERO;
        cli::run_async(cli::docker(["kill", "-s", "USR1", &id])).await?;
        while !health(Some(&url), None).await {
            if start.elapsed() > Duration::from_secs(30) {
                bail!("server {name} not healthy 30 s after it was started:\n{}", logs_tail(&id));
            }
            // Asking again is harmless (a running server is left alone).
            if start.elapsed() > asked + Duration::from_secs(3) {
                asked = start.elapsed();
                cli::run_async(cli::docker(["kill", "-s", "USR1", &id])).await?;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        let one = id.clone();
        let cond = tokio::task::spawn_blocking(move || inspect(&[one.as_str()])).await??;
        self.set_pid(&key, cond.get(&id).map(|c| c.pid).filter(|p| *p != 0));
        write_state(&self.state)
    }

    /// Send one message for a `send` step from inside the lab: `mtalab send` runs in the
    /// client host's container (or the target server's), from its own address.
    pub async fn submit_in_lab(&mut self, sub: &runner::Submission<'_>) -> anyhow::Result<(mtalab_smtp::Reply, String)> {
        let st = &self.state;
        let mut target_args: Vec<String> = Vec::new();
        let mut sender: Option<(&ServicePlan, Ipv4Addr)> = None;
        if let Some(h) = sub.from_host {
            let s = self.docker.service(h).filter(|s| s.role != Role::Dns).with_context(|| format!("unknown host {h}"))?;
            sender = Some((s, s.address));
        }
        let label;
        if sub.via_mx {
            let domain = sub.msg.to.first().and_then(|t| t.rsplit_once('@')).map(|(_, d)| d.to_string()).context("no recipient domain")?;
            if sender.is_some() {
                // The client looks the MX up itself, in the lab DNS.
                target_args.extend(["--mx".into(), SocketAddr::new(IpAddr::V4(st.dns_address), st.ports.dns).to_string(), "--port".into(), st.ports.smtp.to_string()]);
                label = format!("MX of {domain}");
            } else {
                let r = mtalab_server::resolve::MxResolver::new(st.dns_socket());
                let hosts = r.mail_hosts(&domain).await.with_context(|| format!("MX lookup of {domain} in the lab DNS"))?;
                let h = hosts.first().context("no mail host")?;
                let ip = *h.addrs.first().context("mail host without address")?;
                let IpAddr::V4(v4) = ip else { bail!("IPv6 mail host {ip}") };
                let s = self.docker.service_at(v4).with_context(|| format!("no container of the lab holds {v4}"))?;
                sender = Some((s, v4));
                target_args.extend(["--server".into(), SocketAddr::new(ip, st.ports.smtp).to_string()]);
                label = format!("MX {} ({ip})", h.name);
            }
        } else {
            let name = sub.server.context("send needs a server or via_mx")?;
            let s = st.server(name).with_context(|| format!("unknown server {name}"))?;
            let port = s.smtp_port.with_context(|| format!("server {name} has no IMS"))?;
            target_args.extend(["--server".into(), SocketAddr::new(IpAddr::V4(s.address), port).to_string()]);
            if sender.is_none() {
                let svc = self.docker.service(&s.name).context("no service for the server")?;
                sender = Some((svc, s.address));
            }
            label = format!("{} ({})", s.name, s.address);
        }
        let (svc, source) = sender.expect("set above");
        let id = self.container(&svc.key)?.to_string();
        let mut args: Vec<String> = vec!["exec".into(), id, "/mtalab".into(), "send".into(), "--json".into()];
        args.extend(target_args);
        args.extend(["--source".into(), source.to_string(), "--helo".into(), sub.helo.clone(), "--from".into(), sub.msg.from.clone()]);
        for t in &sub.msg.to {
            args.extend(["--to".into(), t.clone()]);
        }
        args.extend(["--subject".into(), sub.msg.subject.clone(), "--body".into(), sub.msg.body.clone()]);
        if let Some(n) = sub.msg.body_size {
            // The filler is made inside the container: a large body would not fit in one
            // argument (128 KiB on Linux).
            args.extend(["--body-size".into(), n.to_string()]);
        }
        let mut cmd = cli::docker(&args);
        let out = tokio::task::spawn_blocking(move || cmd.stdin(std::process::Stdio::null()).output()).await?.context("docker exec")?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let Some(line) = stdout.lines().rev().find(|l| l.trim_start().starts_with('{')) else {
            bail!("mtalab send in {} failed: {}", svc.key, String::from_utf8_lossy(&out.stderr).trim());
        };
        let v: serde_json::Value = serde_json::from_str(line).with_context(|| format!("bad output of mtalab send: {line}"))?;
        let code = v["code"].as_u64().context("no reply code")? as u16;
        let enhanced = v["status"].as_str().and_then(|s| mtalab_smtp::EnhancedCode::parse_prefix(s).map(|(e, _)| e));
        let reply = mtalab_smtp::Reply::new(code, enhanced, v["text"].as_str().unwrap_or_default());
        let to = v["server"].as_str().unwrap_or_default();
        Ok((reply, format!("{label} at {to}, from {} ({source})", svc.name)))
    }

    fn link(&self, server: &str, network: Option<&str>) -> anyhow::Result<(String, String, Ipv4Addr)> {
        let key = self.server_key(server)?;
        let svc = self.docker.services.iter().find(|s| s.key == key).expect("found");
        let want = network.unwrap_or("LAN");
        let att = svc
            .attachments
            .iter()
            .find(|(iface, netkey, _)| {
                iface.eq_ignore_ascii_case(want) || *netkey == compose::sanitize(want) || self.docker.networks.iter().any(|n| &n.key == netkey && n.name.eq_ignore_ascii_case(want))
            })
            .with_context(|| {
                format!(
                    "server {server} has no link {want:?} (its links: {})",
                    svc.attachments.iter().map(|(i, n, a)| format!("{i} on {n} {a}")).collect::<Vec<_>>().join(", ")
                )
            })?;
        let net = self.docker.docker_networks.get(&att.1).cloned().unwrap_or_else(|| format!("{}_{}", self.docker.project, att.1));
        Ok((key, net, att.2))
    }

    /// Run a fault step (`disconnect`, `connect`, `link_rate`, `netem`).
    pub async fn fault_step(&mut self, step: &Step) -> anyhow::Result<String> {
        match step {
            Step::Disconnect(l) => {
                let (key, net, addr) = self.link(&l.server, l.network.as_deref())?;
                let id = self.container(&key)?.to_string();
                cli::run_async(cli::docker(["network", "disconnect", &net, &id])).await?;
                Ok(format!("{} ({addr}) disconnected from {net}", l.server))
            }
            Step::Connect(l) => {
                let (key, net, addr) = self.link(&l.server, l.network.as_deref())?;
                let id = self.container(&key)?.to_string();
                cli::run_async(cli::docker(["network", "connect", "--ip", &addr.to_string(), &net, &id])).await?;
                self.drop_default_routes(vec![id.clone()]).await;
                // The link is the same line as before: its rate comes back with it (a new
                // interface has no qdisc). The static routes over it come back by themselves:
                // the server puts back routes that disappeared (`apply_routes`), within 1 s.
                let mut detail = format!("{} connected to {net} again as {addr}", l.server);
                if let Some(&kbit) = self.rates.get(&(key.clone(), net.clone())) {
                    let iface = set_rate(id, addr, kbit).await?;
                    detail.push_str(&format!(", {iface} limited to {kbit} kbit/s again"));
                }
                Ok(detail)
            }
            Step::LinkRate(r) => {
                let (key, net, addr) = self.link(&r.server, r.network.as_deref())?;
                let id = self.container(&key)?.to_string();
                let kbit = r.kbit;
                let iface = set_rate(id, addr, kbit).await?;
                if kbit == 0 {
                    self.rates.remove(&(key, net));
                    Ok(format!("{} {iface} ({addr}): no rate limit", r.server))
                } else {
                    self.rates.insert((key, net), kbit);
                    Ok(format!("{} {iface} ({addr}): rate {kbit} kbit/s (tc tbf)", r.server))
                }
            }
            Step::Netem(n) => {
                let (key, _net, addr) = self.link(&n.server, n.network.as_deref())?;
                let id = self.container(&key)?.to_string();
                let (delay, loss) = (n.delay_ms, n.loss_pct);
                let r = tokio::task::spawn_blocking(move || -> anyhow::Result<(String, Option<String>)> {
                    // The container's first process: its namespace is the host's, whether the
                    // server runs or not.
                    let pid = inspect(&[id.as_str()])?.get(&id).map(|c| c.pid).filter(|p| *p != 0).context("the container is not running")?;
                    let iface = faults::interface_of(pid, addr)?;
                    let skipped = faults::netem(pid, &iface, delay, loss)?;
                    Ok((iface, skipped))
                })
                .await??;
                match r {
                    (_, Some(why)) => Ok(format!("SKIPPED: no delay or loss added: {why}")),
                    (iface, None) if delay == 0 && loss <= 0.0 => Ok(format!("netem removed from {} {iface}", n.server)),
                    (iface, None) => Ok(format!("{} {iface}: delay {delay} ms, loss {loss}%", n.server)),
                }
            }
            other => bail!("not a fault step: {}", other.label()),
        }
    }

    /// Leave the lab running (for `lab up`, `lab run --keep`).
    pub fn detach(mut self) -> LabState {
        self.armed = false;
        self.state.clone()
    }

    /// Remove the lab now: containers, networks, volumes, filter rules and rendered files.
    pub fn down_now(&mut self) {
        self.armed = false;
        if let Err(e) = down(&self.state.dir) {
            eprintln!("mtalab lab: tearing down {}: {e:#}", self.state.dir.display());
        }
    }
}

impl Drop for DockerLab {
    fn drop(&mut self) {
        if self.armed {
            self.down_now();
        }
    }
}

impl runner::LabBackend for DockerLab {
    fn state(&self) -> &LabState {
        &self.state
    }
    async fn stop(&mut self, name: &str, hard: bool) -> anyhow::Result<()> {
        self.stop_server(name, hard).await
    }
    async fn start(&mut self, name: &str) -> anyhow::Result<()> {
        self.start_server(name).await
    }
    fn real_host(&self, host: &str) -> String {
        host.to_string()
    }
    async fn submit(&mut self, sub: &runner::Submission<'_>) -> anyhow::Result<(mtalab_smtp::Reply, String)> {
        self.submit_in_lab(sub).await
    }
    async fn fault(&mut self, step: &Step) -> anyhow::Result<String> {
        self.fault_step(step).await
    }
}

/// What `down` removed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DownSummary {
    /// Containers removed.
    pub containers: usize,
    /// Networks removed.
    pub networks: usize,
    /// Volumes removed.
    pub volumes: usize,
}

/// Take a docker lab down: `compose down -v --remove-orphans`, then remove whatever of the
/// project is left (containers, networks, volumes, by compose's project label), delete the
/// filter rules and the rendered files; reports and captures stay. Works after a failed or
/// killed run, and when the compose file is gone.
pub fn down(dir: &Path) -> anyhow::Result<DownSummary> {
    let d = DockerState::read(dir)?;
    let containers = cli::project_containers(&d.project).unwrap_or_default();
    let networks = cli::project_networks(&d.project).unwrap_or_default();
    let volumes = cli::project_volumes(&d.project).unwrap_or_default();
    let summary = DownSummary { containers: containers.len(), networks: networks.len(), volumes: volumes.len() };
    if d.compose_file.exists() && !d.compose.is_empty() {
        let dc = Docker { compose: d.compose.clone() };
        let _ = cli::run(&mut dc.compose(&d.project, &d.compose_file, ["down", "-v", "--remove-orphans", "-t", "5"]));
    }
    let left = cli::project_containers(&d.project).unwrap_or_default();
    if !left.is_empty() {
        let mut args = vec!["rm".to_string(), "-f".into(), "-v".into()];
        args.extend(left.into_iter().map(|(id, _)| id));
        let _ = cli::run(&mut cli::docker(args));
    }
    for n in cli::project_networks(&d.project).unwrap_or_default() {
        let _ = cli::run(&mut cli::docker(["network", "rm", &n]));
    }
    for v in cli::project_volumes(&d.project).unwrap_or_default() {
        let _ = cli::run(&mut cli::docker(["volume", "rm", "-f", &v]));
    }
    let mut bridges: Vec<String> = d.guarded.clone();
    bridges.extend(d.networks.iter().map(|n| n.bridge.clone()));
    bridges.sort();
    bridges.dedup();
    for b in &bridges {
        hostnet::unguard(b);
    }
    // The guard deletes its rules when stopped; after a kill, they are deleted here.
    let _ = netguard::remove_leftovers(&bridges);
    let remaining = cli::project_containers(&d.project).map(|v| v.len()).unwrap_or(0) + cli::project_networks(&d.project).map(|v| v.len()).unwrap_or(0);
    for f in ["docker-compose.yml", "state.json", "docker.json"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    let _ = std::fs::remove_dir_all(dir.join("servers"));
    let _ = std::fs::remove_dir_all(dir.join("dns"));
    if remaining > 0 {
        bail!("{remaining} containers or networks of project {} could not be removed (see `docker ps -a`, `docker network ls`)", d.project);
    }
    Ok(summary)
}

/// Where `--capture` writes: `captures/` in the lab directory, or the directory given.
fn capture_dir(lab_dir: &Path, capture: &Path) -> anyhow::Result<PathBuf> {
    Ok(if capture.as_os_str().is_empty() {
        lab_dir.join("captures")
    } else if capture.is_relative() {
        std::env::current_dir()?.join(capture)
    } else {
        capture.to_path_buf()
    })
}

/// `lab run --backend docker`: bring the lab up, capture every network when asked (one pcap
/// per network, `<network name>.pcap`), run the steps with live progress on stderr, write
/// the report and take the lab down (unless `keep`). Returns the report.
pub async fn run(scenario_path: &Path, dir: Option<PathBuf>, opts: &DockerOptions, keep: bool, capture: Option<PathBuf>) -> anyhow::Result<Report> {
    let sc = Scenario::load(scenario_path)?;
    let dir = dir.unwrap_or_else(|| crate::default_dir(&sc));
    eprintln!("mtalab lab: {} — {} (docker)", sc.scenario.name, sc.scenario.title);
    let t = Instant::now();
    let mut lab = DockerLab::up(scenario_path, &sc, &dir, opts).await?;
    let up_ms = t.elapsed().as_millis() as u64;
    let mut caps = Vec::new();
    if let Some(c) = &capture {
        let cdir = capture_dir(&lab.state.dir, c)?;
        std::fs::create_dir_all(&cdir)?;
        for n in &lab.docker.networks {
            let path = cdir.join(format!("{}.pcap", n.name));
            match hostnet::NetCapture::start(n, &path) {
                Ok(c) => {
                    eprintln!("  capturing {} ({}, bridge {}) to {}", n.name, n.subnet, n.bridge, path.display());
                    caps.push(c);
                }
                Err(e) => {
                    for c in caps {
                        c.stop();
                    }
                    lab.down_now();
                    return Err(e);
                }
            }
        }
    }
    eprintln!("  up in {:.2}s ({} servers, project {}, DNS on {}):", up_ms as f64 / 1000.0, lab.state.servers.len(), lab.docker.project, lab.state.dns_socket());
    for s in &lab.docker.services {
        let addrs: Vec<String> = s.attachments.iter().map(|(i, n, a)| format!("{a} ({i}, {n})")).collect();
        eprintln!("    {:<10} {}", s.name, addrs.join(", "));
    }
    let report = runner::run_steps(&mut lab, &sc, up_ms, |r, total| {
        eprintln!("  [{:>2}/{}] {} {:>6.2}s  {}", r.index, total, if r.ok { "PASS" } else { "FAIL" }, r.ms as f64 / 1000.0, r.label);
        if !r.ok {
            eprintln!("           {}", r.detail);
        }
    })
    .await;
    let state_dir = lab.state.dir.clone();
    if !caps.is_empty() {
        // Let the last packets reach the capture buffers.
        tokio::time::sleep(Duration::from_millis(200)).await;
        for c in caps {
            eprintln!("  capture written to {}", c.stop().display());
        }
    }
    report.write(&state_dir)?;
    if keep {
        lab.detach();
    } else {
        lab.down_now();
    }
    eprintln!("  {} passed, {} failed; report: {}", report.passed, report.failed, state_dir.join("report.txt").display());
    Ok(report)
}

/// `lab up --backend docker`: bring the lab up and leave it running; returns its state.
pub async fn up(scenario_path: &Path, dir: Option<PathBuf>, opts: &DockerOptions) -> anyhow::Result<LabState> {
    let sc = Scenario::load(scenario_path)?;
    let dir = dir.unwrap_or_else(|| crate::default_dir(&sc));
    let lab = DockerLab::up(scenario_path, &sc, &dir, opts).await?;
    Ok(lab.detach())
}

/// The default lab at the repository root: `docker-compose.yml` rendered from a scenario,
/// with its configs under `files_dir` (relative to the compose file's directory).
pub fn render_default_lab(scenario_path: &Path, scenario_rel: &str, files_dir: &str, image: &str) -> anyhow::Result<compose::Project> {
    let sc = Scenario::load(scenario_path)?;
    compose::render(
        &sc,
        &ComposeOptions {
            image: image.into(),
            files_dir: files_dir.into(),
            bridge_prefix: format!("mtl{:06x}-", compose::fnv(&format!("default:{}", sc.scenario.name)) & 0xff_ffff),
            header: vec![
                format!("The default mtalab lab: {} — {}.", sc.scenario.kb.clone().unwrap_or_else(|| sc.scenario.name.clone()), sc.scenario.title),
                format!("scenario: {scenario_rel}"),
                format!("files: {files_dir}"),
                String::new(),
                "Rendered by `mtalab lab compose` from the scenario above; a test keeps it equal to a fresh rendering.".into(),
                "Build the image first (testnet/image/build.sh), then `docker compose up` (or `docker-compose up`).".into(),
                "README.md (Docker) shows how to send a message into it and read the events; docs/DOCKER.md has the details.".into(),
            ],
        },
    )
}

/// Write a rendered default lab: the compose file at `compose_file` and its configs below
/// `files_dir` (relative to the compose file's directory).
pub fn write_default_lab(project: &compose::Project, compose_file: &Path, files_dir: &str) -> anyhow::Result<()> {
    let base = compose_file.parent().map(Path::to_path_buf).unwrap_or_default();
    let fdir = base.join(files_dir);
    let _ = std::fs::remove_dir_all(fdir.join("servers"));
    for (rel, bytes) in &project.files {
        let p = fdir.join(rel);
        std::fs::create_dir_all(p.parent().expect("file in a directory"))?;
        std::fs::write(&p, bytes)?;
    }
    std::fs::write(compose_file, &project.yaml)?;
    Ok(())
}

/// Limit what container `id` sends from its interface with address `addr` to `kbit` kbit/s
/// (tc tbf in its network namespace; 0 removes the limit). Returns the interface name.
/// Errors: the container is not running, no interface has `addr`, or tc failed.
async fn set_rate(id: String, addr: Ipv4Addr, kbit: u32) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
        let pid = inspect(&[id.as_str()])?.get(&id).map(|c| c.pid).filter(|p| *p != 0).context("the container is not running")?;
        let iface = faults::interface_of(pid, addr)?;
        faults::tbf(pid, &iface, kbit)?;
        Ok(iface)
    })
    .await?
}
