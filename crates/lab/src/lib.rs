//! mtalab labs: scenario files, the lab DNS, backends, steps, expectations and reports.
//!
//! - [`scenario`]: the scenario file format.
//! - [`mapping`]: scenario addresses → loopback addresses (local backend).
//! - [`render`]: server configs and DNS zones rendered from a scenario.
//! - [`dns`]: the lab's authoritative DNS server (hickory-server).
//! - [`local`]: the local backend (child processes on loopback; no root, no Docker).
//! - [`docker`]: the docker backend (a compose project: containers on the scenario's own
//!   networks and addresses, real routes, captures per network; docs/DOCKER.md).
//! - [`runner`]: steps, expectations, live progress and the report.
//! - [`capture`]: packet capture of a lab's traffic (tcpdump).
#![forbid(unsafe_code)]

pub mod capture;
pub mod dns;
pub mod docker;
pub mod local;
pub mod mapping;
pub mod render;
pub mod runner;
pub mod scenario;
pub mod sendmail;

use std::path::{Path, PathBuf};
use std::time::Instant;

pub use local::{LabState, LocalLab, LocalOptions};
pub use runner::Report;
pub use scenario::Scenario;

/// The default lab directory of a scenario: `lab-out/<scenario name>` under the current directory.
pub fn default_dir(sc: &Scenario) -> PathBuf {
    PathBuf::from("lab-out").join(&sc.scenario.name)
}

/// `lab run`: bring the lab up, run the steps with live progress on stderr, write the report
/// into the lab directory and tear the lab down (unless `keep`). Returns the report.
pub async fn run(scenario_path: &Path, dir: Option<PathBuf>, opts: &LocalOptions, keep: bool, capture: Option<PathBuf>) -> anyhow::Result<Report> {
    let sc = Scenario::load(scenario_path)?;
    let dir = dir.unwrap_or_else(|| default_dir(&sc));
    eprintln!("mtalab lab: {} — {}", sc.scenario.name, sc.scenario.title);
    let t = Instant::now();
    let mut lab = LocalLab::up(scenario_path, &sc, &dir, opts).await?;
    let up_ms = t.elapsed().as_millis() as u64;
    let cap = match &capture {
        Some(path) => {
            let mut addrs: Vec<std::net::Ipv4Addr> = lab.state.servers.iter().map(|s| s.address).collect();
            addrs.extend(lab.state.hosts.iter().map(|h| h.2));
            addrs.push(lab.state.dns_address);
            let path = if path.as_os_str().is_empty() {
                lab.state.dir.join("capture.pcap")
            } else if path.is_relative() {
                std::env::current_dir()?.join(path)
            } else {
                path.clone()
            };
            match capture::Capture::start("lo", &addrs, &path) {
                Ok(c) => {
                    eprintln!("  capturing to {} (filter: {})", path.display(), capture::filter(&addrs));
                    Some(c)
                }
                Err(e) => {
                    lab.down_now();
                    return Err(e);
                }
            }
        }
        None => None,
    };
    eprintln!("  up in {:.2}s ({} servers, DNS on {}):", up_ms as f64 / 1000.0, lab.state.servers.len(), lab.state.dns_socket());
    for s in &lab.state.servers {
        eprintln!("    {:<10} {:<16} -> {}", s.name, s.scenario_address.to_string(), s.address);
    }
    let report = runner::run_steps(&mut lab, &sc, up_ms, |r, total| {
        eprintln!("  [{:>2}/{}] {} {:>6.2}s  {}", r.index, total, if r.ok { "PASS" } else { "FAIL" }, r.ms as f64 / 1000.0, r.label);
        if !r.ok {
            eprintln!("           {}", r.detail);
        }
    })
    .await;
    let state_dir = lab.state.dir.clone();
    if let Some(c) = cap {
        eprintln!("  capture written to {}", c.stop().display());
    }
    report.write(&state_dir)?;
    if keep {
        lab.detach();
    } else {
        lab.down_now();
    }
    eprintln!(
        "  {} passed, {} failed; report: {}",
        report.passed,
        report.failed,
        state_dir.join("report.txt").display()
    );
    Ok(report)
}

/// `lab up`: bring the lab up and leave it running; returns its state.
pub async fn up(scenario_path: &Path, dir: Option<PathBuf>, opts: &LocalOptions) -> anyhow::Result<LabState> {
    let sc = Scenario::load(scenario_path)?;
    let dir = dir.unwrap_or_else(|| default_dir(&sc));
    let lab = LocalLab::up(scenario_path, &sc, &dir, opts).await?;
    Ok(lab.detach())
}

/// `mtalab dns`: serve zones from a JSON file until SIGTERM/SIGINT.
pub async fn serve_dns(zones_file: &Path, listen: std::net::SocketAddr) -> anyhow::Result<()> {
    let zones: Vec<dns::ZoneSpec> = serde_json::from_slice(&std::fs::read(zones_file)?)?;
    let server = dns::DnsServer::start(listen, &zones).await?;
    tracing::info!(%listen, zones = zones.len(), "lab DNS ready");
    wait_for_signal().await;
    server.shutdown().await;
    Ok(())
}

/// Wait for SIGINT or SIGTERM.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// GET a URL and decode its JSON body (used by the CLI to query admin APIs).
pub async fn http_get_json<T: serde::de::DeserializeOwned>(url: &str) -> anyhow::Result<T> {
    let r = reqwest::Client::new().get(url).timeout(std::time::Duration::from_secs(10)).send().await?;
    anyhow::ensure!(r.status().is_success(), "GET {url}: {}", r.status());
    Ok(r.json().await?)
}
