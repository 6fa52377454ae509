//! The bad input suite: the IMS answers per RFC 5321, keeps serving others, and loses
//! nothing it accepted.

use std::io::Write;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::util::*;

const LIMITS: &str = "max_message_size = 20000\nmax_recipients = 100\nidle_timeout_secs = 2\nmax_errors = 10";

fn server(n: u8) -> TestServer {
    TestServer::start("Bad", Ipv4Addr::new(127, 77, n, 1), LIMITS)
}

#[test]
fn over_long_command_line_then_keeps_serving() {
    let s = server(1);
    let mut c = Raw::connect(s.smtp_addr(), None);
    c.cmd("EHLO client.test").assert_code(250).assert_contains("PIPELINING");
    let long = format!("NOOP {}", "A".repeat(5000));
    c.cmd(&long).assert_code(500).assert_contains("5.5.2");
    c.cmd("NOOP").assert_code(250);
    c.cmd("MAIL FROM:<a@example.net>").assert_code(250);
    c.cmd("RCPT TO:<User1@bad.test>").assert_code(250);
}

#[test]
fn bare_lf_and_nul_in_commands_and_data() {
    let s = server(2);
    let mut c = Raw::connect(s.smtp_addr(), None);
    c.cmd("EHLO client.test").assert_code(250);
    c.send(b"NOOP\n");
    c.reply().assert_code(500).assert_contains("bare LF");
    c.send(b"NO\0OP\r\n");
    c.reply().assert_code(500);
    // Bare LF inside the message text: the message is refused, the session goes on.
    c.cmd("MAIL FROM:<a@example.net>").assert_code(250);
    c.cmd("RCPT TO:<User1@bad.test>").assert_code(250);
    c.cmd("DATA").assert_code(354);
    c.send(b"Subject: bare lf\r\n\r\nline one\nline two\r\n.\r\n");
    c.reply().assert_code(554).assert_contains("5.6.2");
    // LF.LF never ends the data (the SMTP smuggling defence).
    c.cmd("MAIL FROM:<a@example.net>").assert_code(250);
    c.cmd("RCPT TO:<User1@bad.test>").assert_code(250);
    c.cmd("DATA").assert_code(354);
    c.send(b"Subject: smuggle\r\n\r\nx\n.\nMAIL FROM:<evil@example.net>\r\n.\r\n");
    c.reply().assert_code(554);
    // NUL in the text.
    c.cmd("MAIL FROM:<a@example.net>").assert_code(250);
    c.cmd("RCPT TO:<User1@bad.test>").assert_code(250);
    c.cmd("DATA").assert_code(354);
    c.send(b"Subject: nul\r\n\r\nx\0y\r\n.\r\n");
    c.reply().assert_code(554).assert_contains("5.6.0");
    // A clean message after all that is accepted and delivered.
    c.cmd("MAIL FROM:<a@example.net>").assert_code(250);
    c.cmd("RCPT TO:<User1@bad.test>").assert_code(250);
    c.cmd("DATA").assert_code(354);
    c.send(b"Subject: clean\r\n\r\n..leading dot\r\n.\r\n");
    c.reply().assert_code(250);
    c.cmd("QUIT").assert_code(221);
    let got = wait_for(10.0, || {
        let m = s.mailbox("User1");
        (!m.is_empty()).then_some(m)
    })
    .expect("clean message delivered");
    assert_eq!(got.len(), 1, "only the clean message is delivered: {got:?}");
    assert_eq!(got[0]["subject"], "clean");
    let raw = s.maildir_files("User1").pop().unwrap();
    assert!(String::from_utf8_lossy(&raw).contains("\r\n.leading dot\r\n"), "dot-unstuffed");
}

#[test]
fn over_long_text_line_and_oversized_message() {
    let s = server(3);
    let mut c = Raw::connect(s.smtp_addr(), None);
    c.cmd("EHLO client.test").assert_code(250).assert_contains("SIZE 20000");
    c.cmd("MAIL FROM:<a@example.net> SIZE=50000").assert_code(552).assert_contains("5.3.4");
    c.cmd("MAIL FROM:<a@example.net>").assert_code(250);
    c.cmd("RCPT TO:<User1@bad.test>").assert_code(250);
    c.cmd("DATA").assert_code(354);
    c.send(format!("Subject: long line\r\n\r\n{}\r\n.\r\n", "x".repeat(3000)).as_bytes());
    c.reply().assert_code(500).assert_contains("5.5.2");
    c.cmd("MAIL FROM:<a@example.net>").assert_code(250);
    c.cmd("RCPT TO:<User1@bad.test>").assert_code(250);
    c.cmd("DATA").assert_code(354);
    let line = format!("{}\r\n", "y".repeat(900));
    c.send(b"Subject: big\r\n\r\n");
    for _ in 0..40 {
        c.send(line.as_bytes());
    }
    c.send(b".\r\n");
    c.reply().assert_code(552).assert_contains("5.3.4");
    c.cmd("NOOP").assert_code(250);
    std::thread::sleep(Duration::from_millis(300));
    assert!(s.mailbox("User1").is_empty());
    assert!(s.queue().is_empty(), "nothing refused was queued");
}

#[test]
fn pipelined_commands_after_data() {
    let s = server(4);
    let mut c = Raw::connect(s.smtp_addr(), None);
    c.cmd("EHLO client.test").assert_code(250);
    // A whole transaction and QUIT in one write, the last commands right behind the dot.
    c.send(
        b"MAIL FROM:<a@example.net>\r\nRCPT TO:<User1@bad.test>\r\nRCPT TO:<nobody@bad.test>\r\nDATA\r\n\
Subject: pipelined\r\n\r\nhello\r\n.\r\nMAIL FROM:<b@example.net>\r\nRCPT TO:<User2@bad.test>\r\nDATA\r\n\
Subject: second\r\n\r\nhi\r\n.\r\nQUIT\r\n",
    );
    c.reply().assert_code(250);
    c.reply().assert_code(250);
    c.reply().assert_code(550).assert_contains("5.1.1");
    c.reply().assert_code(354);
    c.reply().assert_code(250).assert_contains("queued as");
    c.reply().assert_code(250);
    c.reply().assert_code(250);
    c.reply().assert_code(354);
    c.reply().assert_code(250);
    c.reply().assert_code(221);
    assert!(wait_for(10.0, || (s.mailbox("User1").len() == 1 && s.mailbox("User2").len() == 1).then_some(())).is_some());
}

#[test]
fn thousands_of_rcpts() {
    let s = server(5);
    let mut c = Raw::connect(s.smtp_addr(), None);
    c.cmd("EHLO client.test").assert_code(250);
    let mut batch = b"MAIL FROM:<a@example.net>\r\n".to_vec();
    for i in 0..5000 {
        // Alternate two real mailboxes with different spellings so none is a syntax error.
        let who = if i % 2 == 0 { "User1" } else { "user2" };
        batch.extend_from_slice(format!("RCPT TO:<{who}@bad.test>\r\n").as_bytes());
    }
    batch.extend_from_slice(b"DATA\r\n");
    c.send(&batch);
    c.reply().assert_code(250);
    let mut ok = 0;
    let mut full = 0;
    for _ in 0..5000 {
        let r = c.reply();
        match r.code {
            250 => ok += 1,
            452 => {
                r.assert_contains("4.5.3");
                full += 1
            }
            other => panic!("unexpected reply {other} {}", r.text),
        }
    }
    assert_eq!((ok, full), (100, 4900));
    c.reply().assert_code(354);
    c.send(b"Subject: many rcpts\r\n\r\nx\r\n.\r\n");
    c.reply().assert_code(250);
    c.cmd("QUIT").assert_code(221);
    // The repeated recipients collapse to one copy each.
    assert!(wait_for(10.0, || (s.mailbox("User1").len() == 1 && s.mailbox("User2").len() == 1).then_some(())).is_some());
}

#[test]
fn slow_client_times_out_while_others_are_served() {
    let s = server(6);
    let addr = s.smtp_addr();
    let slow = std::thread::spawn(move || {
        let mut c = Raw::connect(addr, None);
        let t = Instant::now();
        // One byte per second; the 2 s idle timeout needs a complete line.
        for b in b"EHLO slowly.example\r\n" {
            if c.w.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
            if t.elapsed() > Duration::from_secs(4) {
                break;
            }
        }
        let r = c.reply();
        (r, t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    // Meanwhile a normal client is served at once.
    let t = Instant::now();
    send_message(addr, None, "a@example.net", "User1@bad.test", "while slow").assert_code(250);
    assert!(t.elapsed() < Duration::from_secs(1), "served in {:?}", t.elapsed());
    let (r, took) = slow.join().unwrap();
    r.assert_code(421).assert_contains("4.4.2");
    assert!(took < Duration::from_secs(6), "{took:?}");
}

#[test]
fn disconnect_mid_data_loses_nothing_accepted() {
    let s = server(7);
    // One accepted message first.
    send_message(s.smtp_addr(), None, "a@example.net", "User1@bad.test", "accepted before").assert_code(250);
    let mut c = Raw::connect(s.smtp_addr(), None);
    c.cmd("EHLO client.test").assert_code(250);
    c.cmd("MAIL FROM:<a@example.net>").assert_code(250);
    c.cmd("RCPT TO:<User1@bad.test>").assert_code(250);
    c.cmd("DATA").assert_code(354);
    c.send(b"Subject: cut off\r\n\r\nhalf a mess");
    drop(c);
    std::thread::sleep(Duration::from_millis(300));
    send_message(s.smtp_addr(), None, "a@example.net", "User1@bad.test", "accepted after").assert_code(250);
    let m = wait_for(10.0, || {
        let m = s.mailbox("User1");
        (m.len() >= 2).then_some(m)
    })
    .expect("both accepted messages delivered");
    let subjects: Vec<&str> = m.iter().filter_map(|x| x["subject"].as_str()).collect();
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    assert!(!subjects.contains(&"cut off"));
    assert!(wait_for(5.0, || s.queue().is_empty().then_some(())).is_some());
}

#[test]
fn error_count_closes_with_421() {
    let s = server(8);
    let mut c = Raw::connect(s.smtp_addr(), None);
    for _ in 0..10 {
        c.cmd("BOGUS").assert_code(500);
    }
    // The tenth error is answered, then the session is closed.
    c.reply().assert_code(421).assert_contains("4.7.0");
    assert!(c.is_closed());
    // The daemon still serves a fresh session.
    send_message(s.smtp_addr(), None, "a@example.net", "User1@bad.test", "after errors").assert_code(250);
}

#[test]
fn strict_order_and_relay_policy() {
    let s = server(9);
    let mut c = Raw::connect(s.smtp_addr(), None);
    c.cmd("MAIL FROM:<a@example.net>").assert_code(503).assert_contains("5.5.1");
    c.cmd("EHLO client.test").assert_code(250);
    c.cmd("RCPT TO:<User1@bad.test>").assert_code(503);
    c.cmd("DATA").assert_code(503);
    c.cmd("MAIL FROM:<a@example.net>").assert_code(250);
    c.cmd("MAIL FROM:<a@example.net>").assert_code(503);
    c.cmd("RCPT TO:<nobody@bad.test>").assert_code(550).assert_contains("5.1.1");
    // No route to example.org (no address space, no E-Mail Domain entry) -> 5.7.1.
    c.cmd("RCPT TO:<x@example.org>").assert_code(550).assert_contains("5.7.1");
    c.cmd("DATA").assert_code(554);
    c.cmd("VRFY User1").assert_code(252);
    c.cmd("RSET").assert_code(250);
    // From an address outside relay_from (127.0.0.1 is not in 127.77.0.0/16) relaying is refused.
    let mut o = Raw::connect(s.smtp_addr(), Some(Ipv4Addr::new(127, 0, 0, 1)));
    o.cmd("HELO outsider").assert_code(250);
    o.cmd("MAIL FROM:<a@example.net>").assert_code(250);
    o.cmd("RCPT TO:<User1@bad.test>").assert_code(250);
    o.cmd("RCPT TO:<x@elsewhere.test>").assert_code(550).assert_contains("5.7.1");
}
