//! The X.400 lab (KB Q255991) end to end on the local backend, captured with tcpdump and
//! decoded by tshark: binds, the IPM, the NDR and the refused bind decode layer by layer, with
//! no malformed frame and no expert error.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::*;

fn scenario() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testnet/scenarios/q255991-x400-rras.toml")
}

fn have(cmd: &str) -> bool {
    Command::new(cmd).arg("--version").output().is_ok_and(|o| o.status.success())
}

/// Tools missing: fail under CI (which installs them), skip with a message elsewhere.
fn require(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !have(t)).collect();
    if missing.is_empty() {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "CI must install {missing:?} (see .ci/run)");
    eprintln!("SKIPPED: {missing:?} not installed; install them to run this test");
    false
}

fn tshark(pcap: &Path, p1_port: u16, filter: &str, fields: &[&str]) -> String {
    let mut c = Command::new("tshark");
    c.arg("-r").arg(pcap).args(["-d", &format!("tcp.port=={p1_port},tpkt"), "-Y", filter]);
    if !fields.is_empty() {
        c.args(["-T", "fields"]);
        for f in fields {
            c.args(["-e", f]);
        }
    }
    let out = c.output().unwrap();
    assert!(out.status.success(), "tshark failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn q255991_lab_passes_and_tshark_decodes_every_layer() {
    if !require(&["tshark", "tcpdump"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("lab");
    let pcap = dir.path().join("q255991.pcap");
    let out = Command::new(mtalab())
        .args(["lab", "run"])
        .arg(scenario())
        .args(["--dir", d.to_str().unwrap(), "--port-base", "3825", "--json", "--capture"])
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(out.status.success(), "lab run failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["failed"], 0);
    let p1_port = 3828;

    // The P1 layer as tshark shows it.
    let info = tshark(&pcap, p1_port, "p1 or p22", &["_ws.col.Info"]);
    for want in [
        "Bind-Argument ServerA simple",
        "Bind-Result ServerB simple",
        "InterPersonal Message (Q255991 over RRAS)",
        "InterPersonal Message (Q255991 reply)",
        "Transfer non-delivery report",
        "Bind-Error (authentication-error)",
    ] {
        assert!(info.contains(want), "tshark does not show {want:?}:\n{info}");
    }
    // Fields inside the message: the originator's O/R address and the recipient's DDA.
    let v = tshark(&pcap, p1_port, "p22", &["p1.MTS_APDU"]);
    assert!(!v.trim().is_empty());
    let verbose = Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .args(["-d", &format!("tcp.port=={p1_port},tpkt"), "-V", "-Y", "p22"])
        .output()
        .unwrap();
    let verbose = String::from_utf8_lossy(&verbose.stdout);
    assert!(verbose.contains("originator-name (/C=US/A= /P=ExchangeORG/O=SiteA/S=One/G=User/)"), "{verbose}");
    assert!(verbose.contains("DD.RFC-822=User2(a)SiteB.microsoft.com"));
    assert!(verbose.contains("subject: Q255991 over RRAS"));

    // No malformed frame, no expert error anywhere in the capture.
    let bad = tshark(&pcap, p1_port, r#"_ws.malformed or _ws.expert.severity == "Error""#, &["frame.number", "_ws.col.Info"]);
    assert!(bad.trim().is_empty(), "malformed or erroneous frames:\n{bad}");

    // The 9301 attempts: a CR from ServerA's RAS address (192.168.1.1 -> 127.168.1.1) that gets
    // no CC, while associations from the NIC address (after the override) are confirmed.
    let cr_from_ras = tshark(&pcap, p1_port, "cotp.type == 0x0e && ip.src == 127.168.1.1", &["frame.number"]);
    assert!(!cr_from_ras.trim().is_empty(), "no CR from the RAS address");
    let cc_to_ras = tshark(&pcap, p1_port, "cotp.type == 0x0d && ip.dst == 127.168.1.1", &["frame.number"]);
    assert!(cc_to_ras.trim().is_empty(), "a CC went to the RAS address:\n{cc_to_ras}");
    let cc_to_nic = tshark(&pcap, p1_port, "cotp.type == 0x0d && ip.dst == 127.168.200.10", &["frame.number"]);
    assert!(!cc_to_nic.trim().is_empty(), "no association from the NIC address was confirmed");
}
