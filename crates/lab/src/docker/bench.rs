//! `mtalab lab bench-up`: how long a docker lab takes to come up — from `compose up` until
//! every container is healthy (docker's own health status), with the image already built —
//! for a scenario file and for a generated lab of N servers.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::{DockerLab, DockerOptions};
use crate::scenario::Scenario;

/// Options of the benchmark.
#[derive(Debug, Clone)]
pub struct BenchUpOptions {
    /// Scenario measured besides the generated lab.
    pub scenario: PathBuf,
    /// Servers of the generated lab (0 = skip it).
    pub servers: usize,
    /// Runs per lab.
    pub runs: usize,
    /// Backend options (image).
    pub docker: DockerOptions,
}

/// One bring-up.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// `compose up -d` returned (containers created and started), ms after it was invoked.
    pub compose_up_ms: u64,
    /// Every container healthy, ms after `compose up` was invoked.
    pub healthy_ms: u64,
    /// `down` (containers, networks, volumes removed), ms.
    pub down_ms: u64,
}

/// The figures of one lab.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// Lab (scenario name).
    pub lab: String,
    /// Containers in it.
    pub containers: usize,
    /// Servers in it.
    pub servers: usize,
    /// Each run.
    pub runs: Vec<Run>,
}

impl Figure {
    /// Median of the runs' `healthy_ms`.
    pub fn median_healthy_ms(&self) -> u64 {
        let mut v: Vec<u64> = self.runs.iter().map(|r| r.healthy_ms).collect();
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or(0)
    }
}

/// A scenario of `n` servers, one site each, on one network (10.77.0.0/24), with the lab DNS.
pub fn generated_scenario(n: usize) -> String {
    let mut s = format!(
        "[scenario]\nname = \"bench-{n}-servers\"\ntitle = \"{n} IMS servers on one LAN (bring-up benchmark)\"\ntime_scale = 0.01\n\n[[organizations]]\nname = \"BenchORG\"\n\n[[networks]]\nname = \"lan\"\nsubnet = \"10.77.0.0/24\"\n\n"
    );
    for i in 1..=n {
        s.push_str(&format!("[[sites]]\nname = \"Site{i}\"\nsmtp_address = \"@site{i}.bench.example\"\n\n"));
    }
    for i in 1..=n {
        s.push_str(&format!(
            "[[servers]]\nname = \"Server{i}\"\nsite = \"Site{i}\"\naddress = \"10.77.0.{}\"\nrecipients = [{{ alias = \"User{i}\" }}]\n[servers.ims]\naddress_space = [\"bench.example\"]\nrelay_from = [\"10.77.0.0/24\"]\n\n",
            9 + i
        ));
    }
    s.push_str("[dns]\naddress = \"10.77.0.2\"\n[[dns.zones]]\norigin = \"bench.example\"\na = [\n");
    for i in 1..=n {
        s.push_str(&format!("  {{ name = \"server{i}.site{i}.bench.example\", addr = \"10.77.0.{}\" }},\n", 9 + i));
    }
    s.push_str("]\n");
    s
}

async fn measure(path: &Path, dir: &Path, runs: usize, docker: &DockerOptions) -> anyhow::Result<Figure> {
    let sc = Scenario::load(path)?;
    let mut fig = Figure { lab: sc.scenario.name.clone(), containers: 0, servers: sc.servers.len(), runs: Vec::new() };
    for i in 0..runs {
        let mut lab = DockerLab::up(path, &sc, dir, docker).await?;
        let t = lab.timings.clone();
        fig.containers = lab.docker.services.len();
        let d = Instant::now();
        lab.down_now();
        let run = Run { compose_up_ms: t.compose_up_ms, healthy_ms: t.healthy_ms, down_ms: d.elapsed().as_millis() as u64 };
        eprintln!(
            "  {} run {}: compose up {:.2}s, all healthy {:.2}s, down {:.2}s",
            fig.lab,
            i + 1,
            run.compose_up_ms as f64 / 1000.0,
            run.healthy_ms as f64 / 1000.0,
            run.down_ms as f64 / 1000.0
        );
        fig.runs.push(run);
    }
    Ok(fig)
}

/// Run the benchmark; one figure per lab.
pub async fn bench_up(opts: &BenchUpOptions) -> anyhow::Result<Vec<Figure>> {
    let base = std::env::temp_dir().join(format!("mtalab-bench-up-{}", std::process::id()));
    std::fs::create_dir_all(&base)?;
    let mut figs = vec![measure(&opts.scenario, &base.join("scenario"), opts.runs, &opts.docker).await?];
    if opts.servers > 0 {
        let path = base.join(format!("bench-{}-servers.toml", opts.servers));
        std::fs::write(&path, generated_scenario(opts.servers))?;
        figs.push(measure(&path, &base.join("generated"), opts.runs, &opts.docker).await?);
    }
    let _ = std::fs::remove_dir_all(&base);
    Ok(figs)
}

/// The figures as a Markdown table.
pub fn table(figs: &[Figure]) -> String {
    let mut s = String::from("| lab | servers | containers | compose up (median) | all healthy (median) | all healthy (min–max) | down (median) |\n|---|---:|---:|---:|---:|---:|---:|\n");
    for f in figs {
        let med = |mut v: Vec<u64>| {
            v.sort_unstable();
            v.get(v.len() / 2).copied().unwrap_or(0)
        };
        let up = med(f.runs.iter().map(|r| r.compose_up_ms).collect());
        let down = med(f.runs.iter().map(|r| r.down_ms).collect());
        let min = f.runs.iter().map(|r| r.healthy_ms).min().unwrap_or(0);
        let max = f.runs.iter().map(|r| r.healthy_ms).max().unwrap_or(0);
        s.push_str(&format!(
            "| {} | {} | {} | {:.2} s | {:.2} s | {:.2}–{:.2} s | {:.2} s |\n",
            f.lab,
            f.servers,
            f.containers,
            up as f64 / 1000.0,
            f.median_healthy_ms() as f64 / 1000.0,
            min as f64 / 1000.0,
            max as f64 / 1000.0,
            down as f64 / 1000.0
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_scenario_is_valid() {
        let s: Scenario = toml::from_str(&generated_scenario(20)).unwrap();
        s.validate().unwrap();
        assert_eq!(s.servers.len(), 20);
        assert_eq!(s.servers[19].address.to_string(), "10.77.0.29");
    }
}
