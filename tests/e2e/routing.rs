//! Next-hop selection end to end: E-Mail Domain hosts in round robin with dead ones skipped,
//! RCPT TO unchanged.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use crate::util::*;

#[test]
fn email_domain_hosts_round_robin_and_skip_dead_ones() {
    let a_ip = Ipv4Addr::new(127, 77, 30, 1);
    let route = "[[ims.email_domains]]\ndomain = \"far.test\"\nhosts = [\"127.77.30.2\", \"127.77.30.4\", \"127.77.30.3\"]";
    let a = TestServer::start("Near", a_ip, route);
    let b = TestServer::start("Far", Ipv4Addr::new(127, 77, 30, 2), "");
    let c = TestServer::start("Far", Ipv4Addr::new(127, 77, 30, 3), "");
    // 127.77.30.4 runs nothing: it is skipped.
    for i in 0..12 {
        send_message(a.smtp_addr(), Some(a_ip), "User1@near.test", "User2@far.test", &format!("rr {i}")).assert_code(250);
    }
    let counts = wait_for(15.0, || {
        let (nb, nc) = (b.mailbox("User2").len(), c.mailbox("User2").len());
        (nb + nc == 12).then_some((nb, nc))
    })
    .unwrap_or_else(|| panic!("not all delivered: {} + {}", b.mailbox("User2").len(), c.mailbox("User2").len()));
    assert!(counts.0 >= 3 && counts.1 >= 3, "both live hosts used: {counts:?}");
    // RCPT TO is unchanged by the forwarding.
    let raw = String::from_utf8_lossy(&b.maildir_files("User2").pop().unwrap()).into_owned();
    assert!(raw.contains("Delivered-To: User2@far.test"), "{raw}");
    assert!(wait_for(5.0, || a.queue().is_empty().then_some(())).is_some());
}

/// What a [`SlowSink`] has seen.
#[derive(Default)]
struct SinkCounts {
    /// Messages taken.
    messages: AtomicUsize,
    /// Connections accepted.
    connections: AtomicUsize,
    /// Connections open now, and the most open at once.
    open: AtomicUsize,
    most_open: AtomicUsize,
    /// The most messages one connection carried.
    most_per_connection: AtomicUsize,
}

/// An SMTP sink on `addr` that answers every command at once but holds each message's final
/// reply for `hold`.
struct SlowSink(Arc<SinkCounts>);

impl SlowSink {
    fn start(addr: SocketAddr, hold: Duration) -> SlowSink {
        let listener = std::net::TcpListener::bind(addr).unwrap();
        let counts = Arc::new(SinkCounts::default());
        let c = counts.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut out) = conn else { continue };
                let c = c.clone();
                c.connections.fetch_add(1, SeqCst);
                std::thread::spawn(move || {
                    c.most_open.fetch_max(c.open.fetch_add(1, SeqCst) + 1, SeqCst);
                    let mut carried = 0;
                    let mut lines = BufReader::new(out.try_clone().unwrap());
                    let _ = out.write_all(b"220 sink.test ESMTP\r\n");
                    let mut line = String::new();
                    let mut in_data = false;
                    while lines.read_line(&mut line).is_ok_and(|n| n > 0) {
                        let reply: &[u8] = if in_data {
                            if line == ".\r\n" {
                                in_data = false;
                                std::thread::sleep(hold);
                                c.messages.fetch_add(1, SeqCst);
                                carried += 1;
                                c.most_per_connection.fetch_max(carried, SeqCst);
                                b"250 2.0.0 taken\r\n"
                            } else {
                                b""
                            }
                        } else {
                            match line.get(..4).map(str::to_ascii_uppercase).as_deref() {
                                Some("DATA") => {
                                    in_data = true;
                                    b"354 go ahead\r\n"
                                }
                                Some("QUIT") => {
                                    let _ = out.write_all(b"221 bye\r\n");
                                    break;
                                }
                                _ => b"250 ok\r\n",
                            }
                        };
                        if out.write_all(reply).is_err() {
                            break;
                        }
                        line.clear();
                    }
                    c.open.fetch_sub(1, SeqCst);
                });
            }
        });
        SlowSink(counts)
    }

    fn messages(&self) -> usize {
        self.0.messages.load(SeqCst)
    }

    fn most_open(&self) -> usize {
        self.0.most_open.load(SeqCst)
    }

    fn connections(&self) -> usize {
        self.0.connections.load(SeqCst)
    }

    fn most_per_connection(&self) -> usize {
        self.0.most_per_connection.load(SeqCst)
    }
}

/// A server "Near" at 127.77.31.`near` whose mail for far.test goes to a [`SlowSink`] at
/// 127.77.31.`sink` holding each message for `hold`; `limits` is added to its `[ims]`.
fn near_and_sink(near: u8, sink: u8, limits: &str, hold: Duration) -> (TestServer, SlowSink) {
    let sink_ip = Ipv4Addr::new(127, 77, 31, sink);
    let s = SlowSink::start(SocketAddr::from((sink_ip, SMTP)), hold);
    let route = format!("{limits}\n[[ims.email_domains]]\ndomain = \"far.test\"\nhosts = [\"{sink_ip}\"]");
    (TestServer::start("Near", Ipv4Addr::new(127, 77, 31, near), &route), s)
}

/// Submit one message for the sink to `near`.
fn send_far(near: &TestServer, subject: &str) {
    send_message(near.smtp_addr(), Some(near.ip), "User1@near.test", "User2@far.test", subject).assert_code(250);
}

/// Connections tab → Advanced, "Maximum number of connections to a single host" (KB
/// Q146562): with a limit of 2, a host that holds each message for 500 ms never sees more
/// than two connections; the messages that wait longer than a second for one stay queued,
/// with the reason, and go a second later without counting a retry; all arrive. The same
/// mail without the limit opens more.
#[test]
fn max_connections_per_host_caps_the_connections_to_one_host() {
    let hold = Duration::from_millis(500);
    let (a, limited) = near_and_sink(1, 2, "max_connections_per_host = 2", hold);
    for i in 0..10 {
        send_far(&a, &format!("capped {i}"));
    }
    // While mail waits: never a counted retry, and at least one message held back for want
    // of a connection says so.
    let (mut most_attempts, mut busy_seen) = (0, false);
    let done = wait_for(30.0, || {
        for e in a.queue() {
            most_attempts = most_attempts.max(e["attempts"].as_u64().unwrap_or(0));
            busy_seen |= e["last_error"].as_str().is_some_and(|s| s.contains("every connection allowed to a single host is in use"));
        }
        (limited.messages() == 10).then_some(())
    });
    assert!(done.is_some(), "{} of 10 taken by the sink", limited.messages());
    assert!(limited.most_open() <= 2, "{} connections open at once", limited.most_open());
    assert_eq!(most_attempts, 0, "a wait for a connection counted as a retry");
    assert!(busy_seen, "no message waited for a connection (10 × 500 ms over 2 connections should make some)");
    assert!(wait_for(5.0, || a.queue().is_empty().then_some(())).is_some());

    let (b, open) = near_and_sink(3, 4, "", hold);
    for i in 0..10 {
        send_far(&b, &format!("open {i}"));
    }
    assert!(wait_for(30.0, || (open.messages() == 10).then_some(())).is_some(), "{} of 10 taken", open.messages());
    assert!(open.most_open() > 2, "without the limit: at most {} connections at once", open.most_open());
}

/// Send twelve messages to `near` one after the other, each relayed before the next.
fn twelve_one_by_one(near: &TestServer, sink: &SlowSink) {
    for i in 0..12 {
        send_far(near, &format!("one by one {i}"));
        assert!(wait_for(10.0, || (sink.messages() == i + 1).then_some(())).is_some(), "message {i} not relayed");
    }
}

/// "Maximum number of messages sent in a connection" (KB Q146562): with 3, twelve messages
/// sent one after the other reach the next hop over connections of at most three each;
/// without it the pooled connection carries more.
#[test]
fn max_messages_per_connection_closes_a_connection_after_that_many() {
    let (a, limited) = near_and_sink(5, 6, "max_messages_per_connection = 3", Duration::ZERO);
    twelve_one_by_one(&a, &limited);
    assert!(limited.most_per_connection() <= 3, "{} messages on one connection", limited.most_per_connection());
    assert!(limited.connections() >= 4, "12 messages over {} connections", limited.connections());

    let (b, open) = near_and_sink(7, 8, "", Duration::ZERO);
    twelve_one_by_one(&b, &open);
    assert!(open.most_per_connection() > 3, "without the limit: at most {} per connection", open.most_per_connection());
}

/// "Maximum number of inbound connections" (KB Q146562): with 2, a third connection is
/// answered 421 4.3.2 and closed while two sessions are open, and served once one ends.
#[test]
fn max_inbound_connections_turns_away_one_too_many() {
    let ip = Ipv4Addr::new(127, 77, 31, 9);
    let a = TestServer::start("Near", ip, "max_inbound_connections = 2");
    let mut first = Raw::connect(a.smtp_addr(), Some(ip));
    let mut second = Raw::connect(a.smtp_addr(), Some(ip));
    first.cmd("EHLO one.test").assert_code(250);
    second.cmd("EHLO two.test").assert_code(250);
    // A new connection's first line, and the rest of what it sends until it closes.
    let greet = || {
        let s = std::net::TcpStream::connect(a.smtp_addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut lines = BufReader::new(s);
        let mut first = String::new();
        lines.read_line(&mut first).unwrap();
        (first, lines)
    };
    let (reply, mut lines) = greet();
    assert!(reply.starts_with("421 4.3.2 "), "{reply:?}");
    let mut rest = String::new();
    assert_eq!(lines.read_line(&mut rest).unwrap(), 0, "not closed after the 421: {rest:?}");
    // The sessions already open go on.
    second.cmd("NOOP").assert_code(250);
    first.cmd("QUIT").assert_code(221);
    assert!(first.is_closed());
    let served = wait_for(5.0, || greet().0.starts_with("220 ").then_some(()));
    assert!(served.is_some(), "not served again once a session ended");
}
