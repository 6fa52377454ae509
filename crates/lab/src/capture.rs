//! Packet capture of a lab's traffic with tcpdump: on the local backend, the loopback
//! interface filtered to the lab's own addresses, written as one pcap file.
//!
//! tcpdump needs CAP_NET_RAW (root, or `setcap cap_net_raw+ep $(which tcpdump)`); without it,
//! or without tcpdump, [`Capture::start`] fails with a message that says so.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A running tcpdump.
pub struct Capture {
    child: Child,
    path: PathBuf,
    log: PathBuf,
}

/// The tcpdump filter selecting traffic to or from any of `addrs`.
pub fn filter(addrs: &[Ipv4Addr]) -> String {
    let mut v: Vec<String> = addrs.iter().map(|a| format!("host {a}")).collect();
    v.sort();
    v.dedup();
    v.join(" or ")
}

impl Capture {
    /// Start tcpdump on `iface` writing to `path`; returns once it is capturing.
    pub fn start(iface: &str, addrs: &[Ipv4Addr], path: &Path) -> anyhow::Result<Capture> {
        let log = path.with_extension("tcpdump.log");
        let err = std::fs::File::create(&log)?;
        let child = Command::new("tcpdump")
            .args(["-i", iface, "--immediate-mode", "-U", "-s", "0", "-n", "-w"])
            .arg(path)
            .arg(filter(addrs))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!("--capture needs tcpdump: install it (Debian: apt-get install tcpdump)")
            }
            Err(e) => return Err(e).context("starting tcpdump"),
        };
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("listening on") {
                break;
            }
            if let Some(status) = child.try_wait()? {
                if text.contains("ermission") || text.contains("not permitted") {
                    bail!(
                        "tcpdump may not capture on {iface} ({status}): capturing needs CAP_NET_RAW — run as root or `setcap cap_net_raw+ep $(command -v tcpdump)`\n{}",
                        text.trim()
                    );
                }
                bail!("tcpdump exited ({status}): {}", text.trim());
            }
            if start.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                bail!("tcpdump did not start capturing within 10 s: {}", text.trim());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Capture { child, path: path.to_path_buf(), log })
    }

    /// Stop capturing (SIGTERM, so tcpdump flushes) and return the pcap's path.
    pub fn stop(mut self) -> PathBuf {
        // Let the last packets reach the buffer.
        std::thread::sleep(Duration::from_millis(200));
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
        self.path.clone()
    }
}
