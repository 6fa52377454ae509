//! `mtalab` — the one command-line tool: run an emulated Exchange server, run labs, read
//! event logs.
#![forbid(unsafe_code)]

mod bench;
mod bench_p1;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use mtalab_lab::{LabState, LocalOptions, Scenario};
use mtalab_server::config::Config;
use mtalab_server::events;

/// mimalloc: per-thread free lists, so that a buffer allocated on one tokio worker and freed
/// on another (or on a blocking-pool thread) does not contend for a glibc malloc arena lock.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exchange 4.0/5.x site connectivity, brought back as real daemons: IMS SMTP, labs, events.
#[derive(Parser)]
#[command(name = "mtalab", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one emulated Exchange server (IMS, queue, event log, admin API).
    Server {
        /// Server configuration file (TOML).
        #[arg(long)]
        config: PathBuf,
    },
    /// Read a server's Application Log.
    Events(EventsArgs),
    /// Labs: bring a scenario up as real daemons, run its steps, inspect, tear down.
    Lab {
        #[command(subcommand)]
        cmd: LabCmd,
    },
    /// Send one message with mtalab's SMTP client (to a server, or to a domain's MX).
    Send(SendArgs),
    /// Health probe for container healthchecks: exit 0 when the URL answers 2xx and the TCP
    /// address accepts a connection (each when given).
    #[command(hide = true)]
    Health {
        /// HTTP URL that must answer with a 2xx status.
        #[arg(long)]
        url: Option<String>,
        /// TCP address that must accept a connection.
        #[arg(long)]
        tcp: Option<SocketAddr>,
    },
    /// Do nothing until SIGTERM/SIGINT (the client hosts of a docker lab).
    #[command(hide = true)]
    Idle,
    /// Run `mtalab ARGS…` as a child that can be stopped, killed and started again by
    /// signals while this process (a container's first) stays up.
    #[command(hide = true)]
    Supervise {
        /// The mtalab command line to run, e.g. `server --config /lab/server.toml`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<String>,
    },
    /// Serve a lab's DNS zones (started by `lab up`; rarely run by hand).
    Dns {
        /// Zones file (JSON, as rendered by the lab).
        #[arg(long)]
        zones: PathBuf,
        /// Address to serve on (UDP and TCP).
        #[arg(long)]
        listen: SocketAddr,
    },
    /// Benchmarks that print figures (see docs/BENCHMARKS.md).
    Bench {
        #[command(subcommand)]
        cmd: bench::BenchCmd,
    },
}

#[derive(Args)]
struct EventsArgs {
    /// Read the log of the server with this config file.
    #[arg(long, conflicts_with_all = ["data_dir", "admin"])]
    config: Option<PathBuf>,
    /// Read `events.jsonl` in this data directory.
    #[arg(long, conflicts_with = "admin")]
    data_dir: Option<PathBuf>,
    /// Ask a running server's admin API (e.g. http://127.10.10.10:2526).
    #[arg(long)]
    admin: Option<String>,
    /// Only records after this record number.
    #[arg(long, default_value_t = 0)]
    since: u64,
    /// Only this event ID.
    #[arg(long)]
    id: Option<u32>,
    /// JSON lines instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct SendArgs {
    /// SMTP server as ip:port.
    #[arg(long, required_unless_present = "mx")]
    server: Option<SocketAddr>,
    /// Look up the first recipient's MX with this DNS server (ip:port) and send there.
    #[arg(long, value_name = "DNS", conflicts_with = "server")]
    mx: Option<SocketAddr>,
    /// SMTP port of the MX host (with --mx).
    #[arg(long, default_value_t = 25)]
    port: u16,
    /// Source address to connect from.
    #[arg(long)]
    source: Option<std::net::IpAddr>,
    /// HELO/EHLO name.
    #[arg(long, default_value = "mtalab-send")]
    helo: String,
    /// Envelope and header sender ("" for the null reverse path).
    #[arg(long)]
    from: String,
    /// Recipient (repeat for several).
    #[arg(long, required = true)]
    to: Vec<String>,
    /// Subject.
    #[arg(long, default_value = "mtalab test message")]
    subject: String,
    /// Body text.
    #[arg(long, default_value = "Sent with mtalab send.")]
    body: String,
    /// Pad the body with filler lines up to this many octets.
    #[arg(long, value_name = "OCTETS")]
    body_size: Option<usize>,
    /// Print the decisive reply as JSON ({"code", "status", "text"}).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct LabTarget {
    /// Scenario file (its default lab directory is lab-out/<name>).
    scenario: Option<PathBuf>,
    /// Lab directory.
    #[arg(long)]
    dir: Option<PathBuf>,
}

impl LabTarget {
    fn dir(&self) -> anyhow::Result<PathBuf> {
        match (&self.dir, &self.scenario) {
            (Some(d), _) => Ok(d.clone()),
            (None, Some(s)) => Ok(mtalab_lab::default_dir(&Scenario::load(s)?)),
            (None, None) => anyhow::bail!("give a scenario file or --dir"),
        }
    }
}

#[derive(Subcommand)]
enum LabCmd {
    /// Bring the lab up, run its steps with live progress, write the report, tear it down.
    /// Exits non-zero if any step fails.
    Run {
        /// Scenario file.
        scenario: PathBuf,
        /// Lab directory (default lab-out/<scenario name>).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Leave the lab running afterwards.
        #[arg(long)]
        keep: bool,
        /// First port to try for SMTP (admin = +1, DNS = +2, P1 = +3); default 2525.
        #[arg(long)]
        port_base: Option<u16>,
        /// Backend: `local` (processes on loopback) or `docker` (containers; see docs/DOCKER.md).
        #[arg(long, default_value = "local")]
        backend: String,
        /// Print the JSON report on stdout.
        #[arg(long)]
        json: bool,
        /// Capture the lab's traffic into this pcap file (default: capture.pcap in the lab
        /// directory) — tcpdump on the loopback interface, filtered to the lab's addresses;
        /// needs CAP_NET_RAW. With `--backend docker`: a directory (default captures/ in the
        /// lab directory) with one pcap per lab network, `<network>.pcap`.
        #[arg(long, value_name = "PCAP")]
        capture: Option<Option<PathBuf>>,
    },
    /// Bring the lab up and leave it running.
    Up {
        /// Scenario file.
        scenario: PathBuf,
        /// Lab directory (default lab-out/<scenario name>).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// First port to try for SMTP; default 2525.
        #[arg(long)]
        port_base: Option<u16>,
        /// Backend: `local` or `docker`.
        #[arg(long, default_value = "local")]
        backend: String,
    },
    /// Show a running lab: servers, scenario and real addresses, ports.
    Inspect {
        #[command(flatten)]
        target: LabTarget,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Render a scenario as a compose project for `docker compose up` (the root
    /// docker-compose.yml is made this way): the compose file and the configs it mounts.
    Compose {
        /// Scenario file.
        scenario: PathBuf,
        /// Compose file to write.
        #[arg(long, default_value = "docker-compose.yml")]
        out: PathBuf,
        /// Directory of the configs, relative to the compose file's directory.
        #[arg(long, default_value = "testnet/image/default-lab")]
        files: String,
        /// Image of the services.
        #[arg(long, default_value = mtalab_lab::docker::DEFAULT_IMAGE)]
        image: String,
    },
    /// Measure docker lab bring-up (compose up until every container is healthy) for a
    /// scenario and a generated lab of N servers; the image must be built.
    BenchUp {
        /// Scenario measured besides the generated lab.
        #[arg(long, default_value = "testnet/scenarios/q196927-single-domain.toml")]
        scenario: PathBuf,
        /// Servers of the generated lab (0 = none).
        #[arg(long, default_value_t = 20)]
        servers: usize,
        /// Runs per lab.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Backend (only `docker`).
        #[arg(long, default_value = "docker")]
        backend: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Stop a lab and clean up (also after a crash).
    Down {
        #[command(flatten)]
        target: LabTarget,
    },
    /// The guard service of a docker lab: keep `DOCKER-USER -i B -o B -j ACCEPT` in the host's
    /// firewall for each bridge until SIGTERM, then delete it (docs/DOCKER.md).
    #[command(hide = true)]
    Netguard {
        /// Lab name, for the rules' comment (`mtalab lab NAME`).
        #[arg(long)]
        lab: String,
        /// Bridge interface (repeat for several).
        #[arg(long, required = true)]
        bridge: Vec<String>,
        /// Only check that every bridge has its rule (the healthcheck): exit 0 when so.
        #[arg(long)]
        check: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("MTALAB_LOG").unwrap_or_else(|_| "info,hickory_server=warn,hickory_proto=warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mtalab: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn check_backend(b: &str) -> anyhow::Result<()> {
    anyhow::ensure!(b == "local" || b == "docker", "unknown backend {b:?} (use --backend local or --backend docker)");
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.cmd {
        Cmd::Server { config } => {
            let cfg = Config::load(&config)?;
            let (tx, rx) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                mtalab_lab::wait_for_signal().await;
                let _ = tx.send(true);
            });
            mtalab_server::run(cfg, rx).await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Events(a) => events_cmd(a).await,
        Cmd::Send(a) => send_cmd(a).await,
        Cmd::Dns { zones, listen } => {
            mtalab_lab::serve_dns(&zones, listen).await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Lab { cmd } => lab_cmd(cmd).await,
        Cmd::Health { url, tcp } => Ok(if mtalab_lab::docker::health(url.as_deref(), tcp).await { ExitCode::SUCCESS } else { ExitCode::FAILURE }),
        Cmd::Idle => {
            mtalab_lab::wait_for_signal().await;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Supervise { args } => mtalab_lab::docker::supervise::supervise(args).await,
        Cmd::Bench { cmd } => bench::run(cmd).await,
    }
}

async fn lab_cmd(cmd: LabCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        LabCmd::Run { scenario, dir, keep, port_base, backend, json, capture } => {
            check_backend(&backend)?;
            let capture = capture.map(|p| p.unwrap_or_default());
            let report = if backend == "docker" {
                mtalab_lab::docker::run(&scenario, dir, &mtalab_lab::docker::DockerOptions::default(), keep, capture).await?
            } else {
                let opts = LocalOptions { port_base, ..LocalOptions::default() };
                mtalab_lab::run(&scenario, dir, &opts, keep, capture).await?
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.text());
            }
            Ok(if report.failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        LabCmd::Up { scenario, dir, port_base, backend } => {
            check_backend(&backend)?;
            let st = if backend == "docker" {
                mtalab_lab::docker::up(&scenario, dir, &mtalab_lab::docker::DockerOptions::default()).await?
            } else {
                let opts = LocalOptions { port_base, ..LocalOptions::default() };
                mtalab_lab::up(&scenario, dir, &opts).await?
            };
            print_state(&st);
            println!("\nlab is up; `mtalab lab down --dir {}` stops it", st.dir.display());
            Ok(ExitCode::SUCCESS)
        }
        LabCmd::Inspect { target, json } => {
            let st = LabState::read(&target.dir()?)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&inspect_json(&st))?);
            } else {
                print_state(&st);
            }
            Ok(ExitCode::SUCCESS)
        }
        LabCmd::Down { target } => {
            let dir = target.dir()?;
            if dir.join("docker.json").exists() || LabState::read(&dir).is_ok_and(|s| s.backend == "docker") {
                let s = mtalab_lab::docker::down(&dir)?;
                println!("lab in {} is down ({} containers, {} networks, {} volumes removed)", dir.display(), s.containers, s.networks, s.volumes);
                return Ok(ExitCode::SUCCESS);
            }
            let n = mtalab_lab::local::down(&dir)?;
            println!("lab in {} is down ({n} processes stopped)", dir.display());
            Ok(ExitCode::SUCCESS)
        }
        LabCmd::Compose { scenario, out, files, image } => {
            let project = mtalab_lab::docker::render_default_lab(&scenario, &scenario.to_string_lossy(), &files, &image)?;
            mtalab_lab::docker::write_default_lab(&project, &out, &files)?;
            println!("wrote {} and {} config file(s) under {files}", out.display(), project.files.len());
            Ok(ExitCode::SUCCESS)
        }
        LabCmd::Netguard { lab, bridge, check } => {
            if check {
                mtalab_lab::docker::netguard::check(&bridge)
            } else {
                mtalab_lab::docker::netguard::run(&lab, &bridge).await
            }
        }
        LabCmd::BenchUp { scenario, servers, runs, backend, json } => {
            anyhow::ensure!(backend == "docker", "bench-up measures the docker backend only (--backend docker)");
            let opts = mtalab_lab::docker::bench::BenchUpOptions { scenario, servers, runs: runs.max(1), docker: mtalab_lab::docker::DockerOptions::default() };
            let figs = mtalab_lab::docker::bench::bench_up(&opts).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&figs)?);
            } else {
                print!("{}", mtalab_lab::docker::bench::table(&figs));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn inspect_json(st: &LabState) -> serde_json::Value {
    serde_json::json!({
        "name": st.name,
        "backend": st.backend,
        "dir": st.dir,
        "dns": { "scenario_address": st.dns_scenario_address, "address": st.dns_address, "port": st.ports.dns, "pid": st.dns_pid },
        "hosts": st.hosts.iter().map(|(n, s, r)| serde_json::json!({"name": n, "scenario_address": s, "address": r})).collect::<Vec<_>>(),
        "servers": st.servers.iter().map(|s| serde_json::json!({
            "name": s.name,
            "site": s.site,
            "scenario_address": s.scenario_address,
            "address": s.address,
            "smtp_port": s.smtp_port,
            "admin_port": s.admin_port,
            "smtp": s.smtp_port.map(|p| format!("{}:{p}", s.address)),
            "p1_port": s.p1_port,
            "p1": s.p1_port.map(|p| format!("{}:{p}", s.address)),
            "interfaces": s.interfaces.iter().map(|(n, sa, r)| serde_json::json!({"name": n, "scenario_address": sa, "address": r})).collect::<Vec<_>>(),
            "admin": format!("http://{}:{}", s.address, s.admin_port),
            "pid": s.pid,
            "running": s.pid.is_some(),
        })).collect::<Vec<_>>(),
    })
}

fn print_state(st: &LabState) {
    println!("lab {} ({} backend) in {}", st.name, st.backend, st.dir.display());
    println!("  {:<10} {:<8} {:<16} {:<16} {:<6} {:<6} pid", "server", "site", "scenario addr", "real addr", "smtp", "admin");
    for s in &st.servers {
        println!(
            "  {:<10} {:<8} {:<16} {:<16} {:<6} {:<6} {}",
            s.name,
            s.site,
            s.scenario_address.to_string(),
            s.address.to_string(),
            s.smtp_port.map_or("-".into(), |p| p.to_string()),
            s.admin_port,
            s.pid.map_or("stopped".into(), |p| p.to_string())
        );
    }
    println!("  {:<10} {:<8} {:<16} {:<16} {:<6}", "dns", "", st.dns_scenario_address.to_string(), st.dns_address.to_string(), st.ports.dns);
    for (n, s, r) in &st.hosts {
        println!("  {:<10} {:<8} {:<16} {:<16}", n, "host", s.to_string(), r.to_string());
    }
}

async fn events_cmd(a: EventsArgs) -> anyhow::Result<ExitCode> {
    let records: Vec<events::EventRecord> = if let Some(url) = &a.admin {
        let mut u = format!("{}/events?since={}", url.trim_end_matches('/'), a.since);
        if let Some(id) = a.id {
            u.push_str(&format!("&id={id}"));
        }
        reqwest_get(&u).await?
    } else {
        let dir: PathBuf = match (&a.config, &a.data_dir) {
            (Some(c), _) => Config::load(c)?.data_dir(),
            (None, Some(d)) => d.clone(),
            (None, None) => anyhow::bail!("give --config, --data-dir or --admin"),
        };
        let path = dir.join("events.jsonl");
        read_events(&path)?
            .into_iter()
            .filter(|r| r.record > a.since && a.id.is_none_or(|id| r.id == id))
            .collect()
    };
    for r in &records {
        if a.json {
            println!("{}", serde_json::to_string(r)?);
        } else {
            println!("{}", events::format_record(r));
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn send_cmd(a: SendArgs) -> anyhow::Result<ExitCode> {
    let target = match (a.server, a.mx) {
        (Some(s), _) => s,
        (None, Some(dns)) => {
            let domain = a.to[0].rsplit_once('@').map(|(_, d)| d.to_string()).context("recipient without a domain")?;
            let hosts = mtalab_server::resolve::MxResolver::new(dns).mail_hosts(&domain).await?;
            let ip = hosts.iter().flat_map(|h| h.addrs.iter()).next().copied().context("no address for the MX host")?;
            SocketAddr::new(ip, a.port)
        }
        (None, None) => anyhow::bail!("give --server or --mx"),
    };
    let msg = mtalab_lab::sendmail::Outgoing { from: a.from, to: a.to, subject: a.subject, body: a.body, body_size: a.body_size };
    let reply = mtalab_lab::sendmail::send(target, a.source, &a.helo, &msg).await?;
    if a.json {
        println!(
            "{}",
            serde_json::json!({"code": reply.code, "status": reply.enhanced.map(|e| e.to_string()), "text": reply.text(), "server": target.to_string()})
        );
    } else {
        println!("{target}: {reply}");
    }
    Ok(if (200..300).contains(&reply.code) { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn read_events(path: &Path) -> anyhow::Result<Vec<events::EventRecord>> {
    events::read_file(path).with_context(|| format!("reading {}", path.display()))
}

async fn reqwest_get(url: &str) -> anyhow::Result<Vec<events::EventRecord>> {
    mtalab_lab::http_get_json(url).await
}
