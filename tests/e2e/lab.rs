//! The lab end to end: `mtalab lab run|up|inspect|down` on the Q196927 scenario, an
//! independent SMTP client (Python's smtplib) against a running lab, and cleanup after a crash.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::*;

fn scenario() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testnet/scenarios/q196927-single-domain.toml")
}

fn lab(args: &[&str]) -> std::process::Output {
    Command::new(mtalab()).arg("lab").args(args).output().unwrap()
}

fn pid_alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
}

#[test]
fn lab_run_q196927_passes_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("lab");
    let out = lab(&["run", scenario().to_str().unwrap(), "--dir", d.to_str().unwrap(), "--port-base", "3525", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "lab run failed:\n{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sc: toml::Value = toml::from_str(&std::fs::read_to_string(scenario()).unwrap()).unwrap();
    let nsteps = sc["steps"].as_array().unwrap().len();
    assert_eq!(report["failed"], 0);
    assert_eq!(report["passed"].as_u64().unwrap() as usize, nsteps);
    assert_eq!(report["steps"].as_array().unwrap().len(), nsteps);
    // Every pair of sites: six messages with two hops each, the second from the sending site's server.
    let msgs = report["messages"].as_array().unwrap();
    let pair = msgs.iter().find(|m| m["subject"] == "Q196927 SiteA to SiteB").unwrap();
    let hops = pair["hops"].as_array().unwrap();
    assert_eq!(hops.len(), 2);
    assert_eq!(hops[0]["by"], "ServerA.SiteA.microsoft.com");
    assert_eq!(hops[1]["from"], "ServerA.SiteA.microsoft.com");
    // The Received: field names the article's address, not the loopback one it maps onto.
    assert_eq!(hops[1]["from_ip"], "10.10.10.10");
    assert_eq!(hops[1]["by"], "ServerB.SiteB.microsoft.com");
    // Live progress went to stderr, the readable report to report.txt, and the lab is down.
    assert!(stderr.contains("[ 1/"), "{stderr}");
    let text = std::fs::read_to_string(d.join("report.txt")).unwrap();
    assert!(text.contains("10.10.10.15") && text.contains("127.10.10.15"), "{text}");
    assert!(!d.join("state.json").exists());
}

#[test]
fn lab_up_smtplib_inspect_events_down() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("lab");
    let ds = d.to_str().unwrap();
    let out = lab(&["up", scenario().to_str().unwrap(), "--dir", ds, "--port-base", "3625"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let _guard = Down(d.clone());
    let out = lab(&["inspect", "--dir", ds, "--json"]);
    assert!(out.status.success());
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let servers = st["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 3);
    let a = servers.iter().find(|s| s["name"] == "ServerA").unwrap();
    assert_eq!(a["scenario_address"], "10.10.10.10");
    assert_eq!(a["address"], "127.10.10.10");
    let smtp = a["smtp"].as_str().unwrap().to_string();
    let (host, port) = smtp.split_once(':').unwrap();
    let b = servers.iter().find(|s| s["name"] == "ServerB").unwrap();
    let b_admin = b["admin"].as_str().unwrap().trim_start_matches("http://").to_string();

    // Python's smtplib, bound to ServerA's site network (relay allowed), sends to SiteB.
    let py = format!(
        r#"
import smtplib
from email.message import EmailMessage
m = EmailMessage()
m["From"] = "User1@SiteA.microsoft.com"
m["To"] = "User2@SiteB.microsoft.com"
m["Subject"] = "smtplib to SiteB"
m.set_content("sent by Python's smtplib")
with smtplib.SMTP("{host}", {port}, source_address=("127.10.10.77", 0), timeout=10) as s:
    code, caps = s.ehlo("workstation.SiteA.microsoft.com")
    assert code == 250 and s.has_extn("pipelining") and s.has_extn("8bitmime") and s.has_extn("enhancedstatuscodes"), caps
    refused = s.send_message(m)
    assert refused == {{}}, refused
    try:
        s.sendmail("User1@SiteA.microsoft.com", ["someone@example.net"], "Subject: out\r\n\r\nx\r\n")
        raise SystemExit("relay to an outside domain was accepted")
    except smtplib.SMTPRecipientsRefused as e:
        code, msg = e.recipients["someone@example.net"]
        assert code == 550 and b"5.7.1" in msg, (code, msg)
print("ok")
"#
    );
    let out = Command::new("python3").arg("-c").arg(&py).output().expect("python3 is installed");
    assert!(out.status.success(), "smtplib: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));

    let got = wait_for(10.0, || {
        let v = http_get(b_admin.parse().unwrap(), "/mailboxes/User2")?;
        v.as_array()?.iter().find(|m| m["subject"] == "smtplib to SiteB").cloned()
    });
    assert!(got.is_some(), "smtplib's message reached User2 at SiteB");
    assert_eq!(got.unwrap()["hops"], 2);

    // `mtalab events` reads ServerA's log through the admin API: the IMS start event is there.
    let out = Command::new(mtalab()).args(["events", "--admin", a["admin"].as_str().unwrap(), "--id", "1000"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("MSExchangeIMC") && text.contains("1000"), "{text}");

    let pids: Vec<u64> = servers.iter().map(|s| s["pid"].as_u64().unwrap()).collect();
    let out = lab(&["down", "--dir", ds]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for p in pids {
        assert!(!pid_alive(p), "server pid {p} still running after down");
    }
    assert!(!d.join("state.json").exists());
}

#[test]
fn down_cleans_up_after_a_crashed_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("lab");
    let ds = d.to_str().unwrap().to_string();
    let mut run = Command::new(mtalab())
        .args(["lab", "run", scenario().to_str().unwrap(), "--dir", &ds, "--port-base", "3725"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = Down(d.clone());
    // Wait until every server is up, then crash the lab runner.
    let st = wait_for(20.0, || {
        let st: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("state.json")).ok()?).ok()?;
        let pids: Vec<u64> = st["servers"].as_array()?.iter().filter_map(|s| s["pid"].as_u64()).collect();
        (pids.len() == 3).then_some(st)
    })
    .expect("lab came up");
    std::thread::sleep(Duration::from_millis(300));
    run.kill().unwrap();
    run.wait().unwrap();
    let mut pids: Vec<u64> = st["servers"].as_array().unwrap().iter().filter_map(|s| s["pid"].as_u64()).collect();
    pids.push(st["dns_pid"].as_u64().unwrap());
    assert!(pids.iter().any(|p| pid_alive(*p)), "children outlive the crashed runner");
    let out = lab(&["down", "--dir", &ds]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for p in pids {
        assert!(wait_for(5.0, || (!pid_alive(p)).then_some(())).is_some(), "pid {p} survived down");
    }
}

/// Runs `lab down` when a test ends, whatever happened.
struct Down(PathBuf);
impl Drop for Down {
    fn drop(&mut self) {
        if self.0.join("state.json").exists() {
            let _ = lab(&["down", "--dir", self.0.to_str().unwrap()]);
        }
    }
}
