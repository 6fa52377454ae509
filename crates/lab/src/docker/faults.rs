//! Link faults of the docker lab: cut and restore a server's link to one of its networks
//! (`docker network disconnect` / `connect`, same address again), limit its rate (`tc … tbf`)
//! and add delay or loss to it (`tc netem`), both inside the container's network namespace.
//! The step types here are the scenario steps `disconnect`, `connect`, `link_rate` and
//! `netem`; the local backend emulates the first three in its servers
//! (`mtalab_server::links`) and skips `netem` with a message.

use std::process::Command;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// `disconnect` / `connect`: a server's link to one network.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkFault {
    /// Step label.
    #[serde(default)]
    pub name: Option<String>,
    /// Server.
    pub server: String,
    /// The link: an interface name of the server (`LAN`, `RAS`, …) or a network name;
    /// default the server's NIC (`LAN`).
    #[serde(default)]
    pub network: Option<String>,
}

/// `netem`: delay and loss on what a server sends over one of its links (the egress of its
/// interface there, so a round trip over it takes `delay_ms` longer); zero delay and zero
/// loss remove them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetemFault {
    /// Step label.
    #[serde(default)]
    pub name: Option<String>,
    /// Server.
    pub server: String,
    /// The link, as for [`LinkFault::network`].
    #[serde(default)]
    pub network: Option<String>,
    /// Delay added to every packet the server sends on the link, milliseconds.
    #[serde(default)]
    pub delay_ms: u32,
    /// Share of packets lost, percent.
    #[serde(default)]
    pub loss_pct: f64,
}

/// `link_rate`: the rate of what a server sends over one of its links (a dial-up or ISDN
/// line); `kbit = 0` removes the limit.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkRate {
    /// Step label.
    #[serde(default)]
    pub name: Option<String>,
    /// Server.
    pub server: String,
    /// The link, as for [`LinkFault::network`].
    #[serde(default)]
    pub network: Option<String>,
    /// Rate, kbit/s (1 kbit = 1000 bit, as tc counts); 0 = unlimited.
    pub kbit: u32,
}

impl LinkRate {
    /// The step's label (its `name`, or a description).
    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| match self.kbit {
            0 => format!("{} {}: no rate limit", self.server, self.network.as_deref().unwrap_or("LAN")),
            k => format!("{} {}: rate {k} kbit/s", self.server, self.network.as_deref().unwrap_or("LAN")),
        })
    }
}

impl LinkFault {
    /// The step's label (its `name`, or a description).
    pub fn label(&self, verb: &str) -> String {
        self.name.clone().unwrap_or_else(|| format!("{verb} {} from {}", self.server, self.network.as_deref().unwrap_or("LAN")))
    }
}

impl NetemFault {
    /// The step's label (its `name`, or a description).
    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            format!("netem on {} {}: delay {} ms, loss {}%", self.server, self.network.as_deref().unwrap_or("LAN"), self.delay_ms, self.loss_pct)
        })
    }
}

fn nsenter(pid: u32) -> Command {
    let mut c = Command::new("nsenter");
    c.arg("-t").arg(pid.to_string()).arg("-n");
    c
}

/// The interface holding `addr` inside the network namespace of process `pid`.
pub fn interface_of(pid: u32, addr: std::net::Ipv4Addr) -> anyhow::Result<String> {
    let mut c = nsenter(pid);
    c.args(["ip", "-o", "-4", "addr", "show"]);
    let out = super::cli::run(&mut c).context("listing the container's addresses (needs nsenter and ip on the host, and root)")?;
    for line in out.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 4 && f[2] == "inet" && f[3].split('/').next() == Some(&addr.to_string()) {
            return Ok(f[1].split('@').next().unwrap_or(f[1]).to_string());
        }
    }
    bail!("no interface holds {addr} in the container (is the link cut?)")
}

/// Apply netem (or remove it when both values are zero) on `iface` in `pid`'s namespace.
/// `Ok(None)` when done; `Ok(Some(reason))` when skipped because the kernel or the host
/// lacks netem.
pub fn netem(pid: u32, iface: &str, delay_ms: u32, loss_pct: f64) -> anyhow::Result<Option<String>> {
    let mut c = nsenter(pid);
    if delay_ms == 0 && loss_pct <= 0.0 {
        c.args(["tc", "qdisc", "del", "dev", iface, "root"]);
        let out = c.output().context("running tc (iproute2) through nsenter")?;
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || err.contains("No such file") || err.contains("handle of zero") || err.contains("Invalid handle") {
            return Ok(None);
        }
        bail!("tc qdisc del dev {iface} root: {}", err.trim());
    }
    c.args(["tc", "qdisc", "replace", "dev", iface, "root", "netem"]);
    if delay_ms > 0 {
        c.arg("delay").arg(format!("{delay_ms}ms"));
    }
    if loss_pct > 0.0 {
        c.arg("loss").arg(format!("{loss_pct}%"));
    }
    let out = match c.output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Some("nsenter is not installed on this host (util-linux)".into())),
        Err(e) => return Err(e).context("running tc through nsenter"),
    };
    if out.status.success() {
        return Ok(None);
    }
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("qdisc kind is unknown") || err.contains("Unknown qdisc") {
        return Ok(Some("this kernel has no netem (CONFIG_NET_SCH_NETEM / module sch_netem); the link is unchanged".into()));
    }
    if err.contains("No such file or directory") && err.contains("tc") {
        return Ok(Some("tc (iproute2) is not installed on this host".into()));
    }
    bail!("tc qdisc replace dev {iface} root netem: {}", err.trim())
}

/// Limit what `iface` in `pid`'s namespace sends to `kbit` kbit/s with a token bucket
/// (`tc qdisc replace dev IFACE root tbf rate Nkbit burst 16kb limit 512kb`: a queue deep
/// enough that TCP sees a slow line, not losses), or remove the root qdisc when `kbit` is 0.
/// It replaces a `netem` on the same link (one root qdisc per interface).
///
/// # Errors
/// `nsenter` or `tc` is missing or fails (the message says which), e.g. a kernel without
/// `sch_tbf`.
pub fn tbf(pid: u32, iface: &str, kbit: u32) -> anyhow::Result<()> {
    let mut c = nsenter(pid);
    if kbit == 0 {
        c.args(["tc", "qdisc", "del", "dev", iface, "root"]);
        let out = c.output().context("running tc (iproute2) through nsenter")?;
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || err.contains("No such file") || err.contains("handle of zero") || err.contains("Invalid handle") {
            return Ok(());
        }
        bail!("tc qdisc del dev {iface} root: {}", err.trim());
    }
    c.args(["tc", "qdisc", "replace", "dev", iface, "root", "tbf", "rate"]).arg(format!("{kbit}kbit")).args(["burst", "16kb", "limit", "512kb"]);
    let out = c.output().context("running tc (iproute2) through nsenter (needs nsenter and tc on the host, and root)")?;
    if out.status.success() {
        return Ok(());
    }
    bail!("tc qdisc replace dev {iface} root tbf rate {kbit}kbit: {}", String::from_utf8_lossy(&out.stderr).trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_parse_with_defaults() {
        let l: LinkFault = toml::from_str("server = \"ServerA\"\nnetwork = \"RAS\"").unwrap();
        assert_eq!(l.label("disconnect"), "disconnect ServerA from RAS");
        let n: NetemFault = toml::from_str("server = \"ServerB\"\ndelay_ms = 200").unwrap();
        assert_eq!(n.loss_pct, 0.0);
        assert_eq!(n.label(), "netem on ServerB LAN: delay 200 ms, loss 0%");
        assert!(toml::from_str::<LinkFault>("server = \"A\"\nbogus = 1").is_err());
        let r: LinkRate = toml::from_str("server = \"ServerA\"\nnetwork = \"RAS\"\nkbit = 800").unwrap();
        assert_eq!(r.label(), "ServerA RAS: rate 800 kbit/s");
        assert!(toml::from_str::<LinkRate>("server = \"ServerA\"").is_err(), "kbit is required");
    }
}
