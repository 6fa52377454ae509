//! The host's side of a docker lab's networks: refusing subnets the host already routes,
//! the per-bridge INPUT rule, the containers' routing tables, and packet captures on the
//! bridges.
//!
//! The filter rule (iptables, inserted when the lab comes up and deleted when it goes down):
//! `INPUT -i <bridge> -m conntrack ! --ctstate ESTABLISHED,RELATED -j DROP`: containers cannot
//! open connections to the host through the host's end of the bridge; the host's own
//! connections to them (admin API, health) are answered as usual. The rules that let routed
//! traffic cross a lab network (`DOCKER-USER -i <bridge> -o <bridge> -j ACCEPT`) are the guard
//! service's ([`super::netguard`]), part of the compose project.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ipnet::Ipv4Net;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::compose::NetworkPlan;

/// The host's IPv4 routes from `/proc/net/route`: (interface, destination network).
pub fn host_routes() -> Vec<(String, Ipv4Net)> {
    let text = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            let dest = Ipv4Addr::from(dest.to_ne_bytes());
            let mask = Ipv4Addr::from(mask.to_ne_bytes());
            let prefix = u32::from(mask).leading_ones() as u8;
            Some((f[0].to_string(), Ipv4Net::new(dest, prefix).ok()?))
        })
        .collect()
}

/// Refuse networks whose subnet overlaps a route the host already has (other than the
/// default route): bringing the lab up would take those addresses over on this host.
pub fn check_subnets_free(nets: &[NetworkPlan]) -> anyhow::Result<()> {
    let routes = host_routes();
    for n in nets {
        for (iface, r) in &routes {
            if r.prefix_len() == 0 {
                continue;
            }
            if r.contains(&n.subnet.network()) || n.subnet.contains(&r.network()) {
                bail!(
                    "network {} ({}) overlaps the host's route to {r} on {iface}: a lab network there would take those addresses over. \
                     If it is another lab's bridge, take that lab down first (`docker network ls`); otherwise give the scenario other addresses",
                    n.name,
                    n.subnet
                );
            }
        }
    }
    Ok(())
}

fn iptables(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("iptables").arg("-w").args(args).stdin(Stdio::null()).output().context("running iptables")?;
    if !out.status.success() {
        bail!("iptables {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

fn input_rule(bridge: &str) -> Vec<&str> {
    vec!["INPUT", "-i", bridge, "-m", "conntrack", "!", "--ctstate", "ESTABLISHED,RELATED", "-j", "DROP"]
}

/// Insert the INPUT rule of one bridge. The error says why it could not be added (no
/// iptables, no privilege); the caller decides whether that is fatal.
pub fn guard(bridge: &str) -> anyhow::Result<()> {
    let mut input = vec!["-I"];
    input.extend(input_rule(bridge));
    iptables(&input).context("keeping containers from opening connections to the host")
}

/// Delete the INPUT rule of one bridge (every copy; a missing one is fine).
pub fn unguard(bridge: &str) {
    let rule = input_rule(bridge);
    for _ in 0..8 {
        let mut del = vec!["-D"];
        del.extend(rule.iter().copied());
        if iptables(&del).is_err() {
            break;
        }
    }
}

/// Delete the default route in the network namespace of process `pid` (a container's first
/// process). Docker gives containers one through the host's end of a bridge even on internal
/// networks, where the host then drops what they send; without it a container has the routes
/// of its scenario only (its networks and its static routes), and a destination it has no
/// route to is unreachable at once. Returns whether there was one.
pub fn drop_default_route(pid: u32) -> anyhow::Result<bool> {
    let out = Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-n", "ip", "-4", "route", "del", "default"])
        .stdin(Stdio::null())
        .output()
        .context("running nsenter and ip (util-linux, iproute2) to remove docker's default route")?;
    if out.status.success() {
        return Ok(true);
    }
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("No such process") || err.contains("not found") {
        return Ok(false);
    }
    bail!("removing the default route in process {pid}'s namespace: {}", err.trim())
}

/// A running tcpdump on one lab network's bridge.
pub struct NetCapture {
    child: Child,
    path: PathBuf,
    log: PathBuf,
}

/// The capture filter of a network: everything but the host's own traffic (admin API
/// polling, health probes) through its end of the bridge.
pub fn capture_filter(net: &NetworkPlan) -> String {
    format!("not host {}", net.gateway)
}

impl NetCapture {
    /// Start tcpdump on the bridge of `net`, writing `path`; returns once it captures.
    pub fn start(net: &NetworkPlan, path: &Path) -> anyhow::Result<NetCapture> {
        let log = path.with_extension("tcpdump.log");
        let err = std::fs::File::create(&log)?;
        let child = Command::new("tcpdump")
            .args(["-i", &net.bridge, "--immediate-mode", "-U", "-s", "0", "-n", "-w"])
            .arg(path)
            .arg(capture_filter(net))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!("--capture needs tcpdump: install it (Debian: apt-get install tcpdump)"),
            Err(e) => return Err(e).context("starting tcpdump"),
        };
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("listening on") {
                break;
            }
            if let Some(status) = child.try_wait()? {
                bail!("tcpdump on {} exited ({status}); capturing on a bridge needs root or CAP_NET_RAW: {}", net.bridge, text.trim());
            }
            if start.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                bail!("tcpdump on {} did not start capturing within 10 s: {}", net.bridge, text.trim());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(NetCapture { child, path: path.to_path_buf(), log })
    }

    /// Stop capturing (SIGTERM, so tcpdump flushes) and return the pcap's path.
    pub fn stop(mut self) -> PathBuf {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
        self.path.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_routing_table() {
        // Every Linux host has at least its loopback or some route; the parse must not panic
        // and must give valid prefixes.
        for (iface, net) in host_routes() {
            assert!(!iface.is_empty());
            assert!(net.prefix_len() <= 32);
        }
    }
}
