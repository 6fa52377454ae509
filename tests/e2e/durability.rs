//! Durability and delivery guarantees: kill -9 loses nothing accepted; retries; expiry
//! DSNs; the hop-count loop guard.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::util::*;

fn subjects_on_disk(s: &TestServer, alias: &str) -> BTreeSet<String> {
    s.maildir_files(alias)
        .iter()
        .filter_map(|raw| {
            let text = String::from_utf8_lossy(raw);
            text.lines().find_map(|l| l.strip_prefix("Subject: ").map(|x| x.trim().to_string()))
        })
        .collect()
}

#[test]
fn kill_9_under_load_loses_no_accepted_message() {
    let ip = Ipv4Addr::new(127, 77, 20, 1);
    let mut s = TestServer::start("Dur", ip, "");
    let accepted = Arc::new(Mutex::new(BTreeSet::new()));
    let addr = s.smtp_addr();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let accepted = accepted.clone();
            std::thread::spawn(move || {
                for i in 0..200 {
                    let subject = format!("load {t}-{i}");
                    let r = std::panic::catch_unwind(|| send_message(addr, None, "a@example.net", "User1@dur.test", &subject));
                    match r {
                        Ok(r) if r.code == 250 => {
                            accepted.lock().unwrap().insert(subject);
                        }
                        _ => return,
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    s.kill9();
    for t in threads {
        let _ = t.join();
    }
    let accepted = accepted.lock().unwrap().clone();
    assert!(accepted.len() > 10, "some messages were accepted before the kill: {}", accepted.len());
    s.spawn();
    let got = wait_for(20.0, || {
        let got = subjects_on_disk(&s, "User1");
        accepted.is_subset(&got).then_some(got)
    });
    let got = got.unwrap_or_else(|| subjects_on_disk(&s, "User1"));
    let missing: Vec<_> = accepted.difference(&got).collect();
    assert!(missing.is_empty(), "accepted but lost after kill -9: {missing:?}");
    assert!(wait_for(10.0, || s.queue().is_empty().then_some(())).is_some());
}

#[test]
fn queued_relay_survives_kill_9_and_is_delivered_when_next_hop_returns() {
    let a_ip = Ipv4Addr::new(127, 77, 21, 1);
    let b_ip = Ipv4Addr::new(127, 77, 21, 2);
    let route = format!("[[ims.email_domains]]\ndomain = \"far.test\"\nhosts = [\"{b_ip}\"]");
    let mut a = TestServer::start("Near", a_ip, &route);
    let client = Some(Ipv4Addr::new(127, 77, 21, 9));
    let mut sent = BTreeSet::new();
    for i in 0..30 {
        let subject = format!("relay {i}");
        send_message(a.smtp_addr(), client, "User1@near.test", "User1@far.test", &subject).assert_code(250);
        sent.insert(subject);
    }
    assert!(wait_for(5.0, || (a.queue().len() == 30).then_some(())).is_some(), "30 queued while far.test is down");
    a.kill9();
    let b = TestServer::start("Far", b_ip, "");
    a.spawn();
    let got = wait_for(20.0, || {
        let got = subjects_on_disk(&b, "User1");
        (got == sent).then_some(got)
    });
    assert!(got.is_some(), "delivered: {:?}", subjects_on_disk(&b, "User1"));
    assert!(wait_for(10.0, || a.queue().is_empty().then_some(())).is_some());
    // The transient failures were logged (event 4006) before the restart.
    let events = a.get("/events?id=4006").unwrap();
    assert!(!events.as_array().unwrap().is_empty());
}

#[test]
fn expired_message_is_returned_with_a_dsn() {
    let ip = Ipv4Addr::new(127, 77, 22, 1);
    // Next hop that never answers; expiry 100 s nominal = 1 s at time_scale 0.01.
    let route = "expire_secs = 100\n[[ims.email_domains]]\ndomain = \"dead.test\"\nhosts = [\"127.77.22.2\"]";
    let s = TestServer::start("Exp", ip, route);
    send_message(s.smtp_addr(), Some(ip), "User2@exp.test", "someone@dead.test", "will expire").assert_code(250);
    let dsn = wait_for(15.0, || s.mailbox("User2").into_iter().find(|m| m["subject"] == "Undeliverable: will expire"))
        .expect("a DSN reaches the sender");
    assert_eq!(dsn["content_type"], "multipart/report");
    let raw = String::from_utf8_lossy(&s.maildir_files("User2").pop().unwrap()).into_owned();
    assert!(raw.contains("Status: 4.4.7"), "{raw}");
    assert!(raw.contains("Final-Recipient: rfc822; someone@dead.test"));
    assert!(raw.contains("Return-Path: <>"), "DSNs have a null reverse path");
    let ev = s.get("/events?id=4000").unwrap();
    assert!(ev.as_array().unwrap().iter().any(|e| e["text"].as_str().unwrap().contains("expired")));
    assert!(wait_for(5.0, || s.queue().is_empty().then_some(())).is_some());
}

#[test]
fn mail_loop_is_stopped_by_the_hop_count() {
    let a_ip = Ipv4Addr::new(127, 77, 23, 1);
    let b_ip = Ipv4Addr::new(127, 77, 23, 2);
    let a = TestServer::start(
        "LoopA",
        a_ip,
        &format!("[[ims.email_domains]]\ndomain = \"loop.test\"\nhosts = [\"{b_ip}\"]\n[[ims.email_domains]]\ndomain = \"loopb.test\"\nhosts = [\"{b_ip}\"]"),
    );
    let _b = TestServer::start(
        "LoopB",
        b_ip,
        &format!("[[ims.email_domains]]\ndomain = \"loop.test\"\nhosts = [\"{a_ip}\"]\n[[ims.email_domains]]\ndomain = \"loopa.test\"\nhosts = [\"{a_ip}\"]"),
    );
    send_message(a.smtp_addr(), Some(a_ip), "User1@loopa.test", "x@loop.test", "looping").assert_code(250);
    let dsn = wait_for(20.0, || a.mailbox("User1").into_iter().find(|m| m["subject"] == "Undeliverable: looping"));
    assert!(dsn.is_some(), "the loop ends in a DSN to the sender");
    let raw = String::from_utf8_lossy(&a.maildir_files("User1").pop().unwrap()).into_owned();
    assert!(raw.contains("Status: 5.4.6"), "{raw}");
}

#[test]
fn connector_retry_counts_survive_kill_9() {
    let ip = Ipv4Addr::new(127, 77, 26, 1);
    // An X.400 connector to an MTA that is not there: every open fails. Open interval 100 s
    // nominal = 1 s at time_scale 0.01; after 4 open retries the message is returned.
    let mta = r#"[mta]
listen = "127.77.26.1:2528"
remote_port = 2528
password = "pwRetry"
[[mta.connectors]]
name = "to Nowhere"
remote_mta_name = "Nowhere"
remote_mta_password = "pwNowhere"
stack_address = "127.77.26.2"
address_space = [{ type = "SMTP", address = "nowhere.test", cost = 1 }]
[mta.connectors.override]
max_open_retries = 4
open_interval = 100
"#;
    let mut s = TestServer::start_with("Retry", ip, "", mta);
    send_message(s.smtp_addr(), Some(ip), "User1@retry.test", "someone@nowhere.test", "retries survive").assert_code(250);
    let retries = |s: &TestServer| s.queue().first().and_then(|e| e["mta_retries"]["0"].as_u64());
    assert!(wait_for(10.0, || (retries(&s)? >= 2).then_some(())).is_some(), "two open retries: {:?}", s.queue());
    s.kill9();
    s.spawn();
    // The count picks up where it was: never back to 1 after the restart.
    let after = wait_for(5.0, || retries(&s)).expect("the message is queued again with its retry count");
    assert!(after >= 2, "retry count after the restart: {after}");
    let ndr = wait_for(15.0, || s.mailbox("User1").into_iter().find(|m| m["subject"].as_str().is_some_and(|t| t.contains("retries survive"))));
    assert!(ndr.is_some(), "the sender gets the message back after 4 open retries in all: {}", s.log());
    let opens = s.get("/events?id=289").unwrap().as_array().unwrap().len();
    assert!(opens <= 5, "open failures logged after the restart too, but no fresh set of 4: {opens}");
}
