//! `mtalab bench p1` runs end to end on a small load: every route delivers every message
//! (the bench fails otherwise), and the JSON has the figures of every run and round.

use std::process::Command;

use crate::util::mtalab;

#[test]
fn bench_p1_measures_every_route_for_every_round() {
    let work = tempfile::tempdir().unwrap();
    let out = Command::new(mtalab())
        .args(["bench", "p1", "--messages", "30", "--size", "512", "--sessions", "4", "--associations", "5", "--rounds", "2", "--json", "--work-dir"])
        .arg(work.path())
        .env("MTALAB_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for k in ["x400_one_association_msgs_per_s", "x400_threshold_msgs_per_s", "smtp_relay_msgs_per_s", "associations_per_s"] {
        assert!(v[k].as_f64().is_some_and(|r| r > 0.0), "{k}: {v}");
    }
    assert_eq!(v["rounds"], 2);
    // The SMTP relay's connections to B are limited as the X.400 connector's associations.
    assert_eq!(v["smtp_connections_per_host"], 10, "{v}");
    let ratios = v["x400_threshold_over_smtp_per_round"].as_array().unwrap();
    assert_eq!(ratios.len(), 2, "{v}");
    assert!(ratios.iter().all(|r| r.as_f64().is_some_and(|r| r > 0.0)), "{v}");
    // The work directory is left empty.
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0);
}
