//! Every shipped scenario loads, validates, maps onto loopback and renders server configs
//! that the server accepts; the sample config in docs/CONFIG.md parses too.

use std::path::{Path, PathBuf};

use mtalab_lab::mapping::AddressMap;
use mtalab_lab::render::{self, Ports};
use mtalab_lab::Scenario;
use mtalab_server::config::Config;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn every_scenario_loads_and_renders() {
    let dir = root().join("testnet/scenarios");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        let sc = Scenario::load(&path).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(!sc.steps.is_empty(), "{} has steps", path.display());
        let map = AddressMap::new(&sc.addresses()).unwrap();
        for srv in &sc.servers {
            let cfg = render::server_config(&sc, srv, &map, Ports { smtp: 2525, admin: 2526, dns: 2527, p1: 2528 }, "data".into(), true).unwrap();
            let text = cfg.to_toml();
            let back = Config::parse(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", srv.name));
            assert!(back.admin.listen.ip().is_loopback(), "{} binds loopback", srv.name);
            if let Some(ims) = &back.ims {
                assert!(ims.listen.ip().is_loopback());
                for r in &ims.email_domains {
                    for h in &r.hosts {
                        if let Ok(ip) = h.parse::<std::net::IpAddr>() {
                            assert!(ip.is_loopback(), "{}: E-Mail Domain host {h} is mapped", srv.name);
                        }
                    }
                }
            }
        }
        for z in render::zones(&sc, &map) {
            assert!(z.a.iter().all(|a| a.addr.is_loopback()));
        }
        n += 1;
    }
    assert!(n >= 1);
}

#[test]
fn unknown_scenario_key_is_reported_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(root().join("testnet/scenarios/q196927-single-domain.toml")).unwrap();
    std::fs::write(&p, text.replacen("time_scale = 0.01", "time_scale = 0.01\ntimescale = 1", 1)).unwrap();
    let e = format!("{:#}", Scenario::load(&p).unwrap_err());
    assert!(e.contains("timescale") && e.contains("line"), "{e}");
}

#[test]
fn docs_config_example_parses() {
    let md = std::fs::read_to_string(root().join("docs/CONFIG.md")).unwrap();
    let start = md.find("```toml\n").unwrap() + 8;
    let end = start + md[start..].find("```").unwrap();
    let cfg = Config::parse(&md[start..end]).unwrap();
    assert_eq!(cfg.server.name, "ServerA");
    assert_eq!(cfg.ims.unwrap().email_domains.len(), 1);
}

#[test]
fn link_steps_parse_and_after_names_an_earlier_step() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("testnet/scenarios/q255991-x400-rras.toml")).unwrap();
    let sc = Scenario::load(&root().join("testnet/scenarios/q255991-x400-rras.toml")).unwrap();
    use mtalab_lab::scenario::Step;
    assert!(sc.steps.iter().any(|s| matches!(s, Step::LinkRate(r) if r.kbit == 800)));
    assert!(sc.steps.iter().any(|s| matches!(s, Step::ExpectTransfer { checkpoints: 2, .. })));
    assert!(sc.steps.iter().any(|s| matches!(s, Step::ExpectDelivery { count: Some(1), .. })));
    assert!(sc.steps.iter().any(|s| matches!(s, Step::Send { body_size: Some(400000), .. })));
    // `after` must name a step that comes earlier.
    let p = dir.path().join("bad.toml");
    std::fs::write(&p, text.replace("after = \"pull ServerA's RAS cable\"", "after = \"no such step\"")).unwrap();
    let e = format!("{:#}", Scenario::load(&p).unwrap_err());
    assert!(e.contains("names no earlier step"), "{e}");
}
