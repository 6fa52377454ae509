//! The MTA when a link dies without a disconnect (KB Q255991's RAS link): real servers in this
//! process, on loopback addresses, with the emulated links of `mtalab_server::links`.
//!
//! - a link cut in the middle of a checkpointed transfer: the sender's Recovery timeout aborts
//!   the association (1294), the receiver drops its half (1294), the sender's recovery finds
//!   the link still cut, new opens fail as unreachable (9215, 289, 301); once the link is back
//!   the message is transferred again and delivered once;
//! - a short cut in the middle of a checkpointed transfer: the sender recovers the association
//!   within the Recovery timeout (RTORQ recover) and the transfer resumes at the last
//!   checkpoint the receiver confirmed, delivered once;
//! - a transfer sent again after its confirmation was lost: confirmed, not delivered twice,
//!   also after the receiver restarted (the record of accepted MTS identifiers is on disk),
//!   and also when the record's line was lost in a crash (the queue file carries it);
//! - a sender that falls silent in the middle of an activity: the receiver aborts after its
//!   Recovery timeout and keeps nothing of it.
//! - a connector whose transfers hang, its queue full: another connector's mail still goes,
//!   and the hanging connector's next messages wait in the IMS queue;
//! - an MTS-APDU that cannot be decoded: not confirmed (the association is aborted, 1294), and
//!   the MTA goes on serving; a message whose content cannot be converted: confirmed, and a
//!   non-delivery report (290) goes back to its originator.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mtalab_osi::association::{Association, AssociationConfig, Event};
use mtalab_p1::{Conformance, MtaBindArgument, MtsApdu};
use mtalab_server::config::Config;
use mtalab_server::mta::assoc::Conn;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

const SMTP: u16 = 2525;
const ADMIN: u16 = 2526;
const P1: u16 = 2528;

/// The addresses of one test's two servers: `127.<net>.200.10` (ServerA's NIC),
/// `127.<net>.100.15` (ServerB's NIC), `127.<net>.1.1` / `.2` (the RAS link).
#[derive(Clone, Copy)]
struct Net(u8);

impl Net {
    fn a(self) -> Ipv4Addr {
        Ipv4Addr::new(127, self.0, 200, 10)
    }
    fn b(self) -> Ipv4Addr {
        Ipv4Addr::new(127, self.0, 100, 15)
    }
    fn ras(self, n: u8) -> Ipv4Addr {
        Ipv4Addr::new(127, self.0, 1, n)
    }
}

/// A server of the KB Q255991 shape: NIC + RAS link, a static route to the remote NIC network
/// over the RAS link, the article's Override values, the Stack IP Address Override = NIC.
fn config(net: Net, me: &str, data: &Path) -> String {
    let (site, peer_site, nic, peer_nic, ras, peer_net, peer, alias) = match me {
        "ServerA" => (
            "SiteA",
            "SiteB",
            net.a(),
            net.b(),
            net.ras(1),
            format!("127.{}.100.0/24", net.0),
            "ServerB",
            "User1",
        ),
        _ => (
            "SiteB",
            "SiteA",
            net.b(),
            net.a(),
            net.ras(2),
            format!("127.{}.200.0/24", net.0),
            "ServerA",
            "User2",
        ),
    };
    format!(
        r#"[organization]
name = "ExchangeORG"
[site]
name = "{site}"
[server]
name = "{me}"
data_dir = {data:?}
time_scale = 0.01
emulate_source_selection = true
interfaces = [{{ name = "LAN", address = "{nic}", prefix = 24 }}, {{ name = "RAS", address = "{ras}", prefix = 29 }}]
routes = [{{ destination = "{peer_net}", interface = "RAS" }}]
[site_addressing]
smtp = "@{site}.test"
x400 = {{ c = "US", a = " ", p = "ExchangeORG", o = "{site}" }}
[[recipients]]
alias = "{alias}"
given = "User"
surname = "{alias}"
[ims]
listen = "{nic}:{SMTP}"
remote_port = {SMTP}
relay_from = ["127.0.0.0/8"]
[mta]
listen = "{nic}:{P1}"
remote_port = {P1}
password = "pw{me}"
[[mta.connectors]]
name = "X400 to {peer_site}"
remote_mta_name = "{peer}"
remote_mta_password = "pw{peer}"
stack_address = "{peer_nic}"
address_space = [
  {{ type = "X400", address = "c=US;a= ;p=ExchangeORG;o={peer_site}", cost = 1 }},
  {{ type = "SMTP", address = "{peer_site}.test", cost = 1 }},
]
[mta.connectors.override]
checkpoint_size_k = 15
recovery_timeout = 30
max_open_retries = 7
open_interval = 120
lifetime = 15
disconnect = 15
[admin]
listen = "{nic}:{ADMIN}"
[registry."MSExchangeMTA\\Parameters\\X400 to {peer_site}"]
"Stack IP Address Override" = "{nic}"
"#,
        data = data.display().to_string(),
    )
}

struct Server {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    admin: SocketAddr,
}

impl Server {
    async fn start(net: Net, me: &str, data: &Path) -> Server {
        Server::start_config(&config(net, me, data), me).await
    }

    async fn start_config(text: &str, me: &str) -> Server {
        let cfg = Config::parse(text).unwrap();
        let admin = cfg.admin.listen;
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(mtalab_server::run(cfg, rx));
        let t0 = Instant::now();
        while TcpStream::connect(admin).await.is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "{me} did not come up"
            );
            assert!(!task.is_finished(), "{me} stopped during start-up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The admin port is bound before the queue is recovered, and answered after: the
        // server is up once the admin API answers.
        let server = Server { stop, task, admin };
        server.get("/health").await;
        server
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.unwrap().unwrap();
    }

    async fn http(&self, method: &str, path: &str, body: &str) -> Value {
        let mut s = TcpStream::connect(self.admin).await.unwrap();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).await.unwrap();
        let at = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        serde_json::from_slice(&resp[at..])
            .unwrap_or_else(|e| panic!("{method} {path}: {e}: {}", String::from_utf8_lossy(&resp)))
    }

    async fn get(&self, path: &str) -> Value {
        self.http("GET", path, "").await
    }

    async fn set_link(&self, body: &str) {
        let v = self.http("POST", "/actions/set-link", body).await;
        assert_eq!(v["ok"], true, "{v}");
    }

    /// Events with this ID whose text contains `text`.
    async fn events(&self, id: u32, text: &str) -> Vec<String> {
        let v = self.get(&format!("/events?id={id}")).await;
        v.as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["text"].as_str())
            .filter(|t| t.contains(text))
            .map(str::to_string)
            .collect()
    }

    async fn wait_event(&self, id: u32, text: &str, within: Duration) -> String {
        let t0 = Instant::now();
        loop {
            if let Some(e) = self.events(id, text).await.pop() {
                return e;
            }
            assert!(
                t0.elapsed() < within,
                "no event {id} containing {text:?} within {within:?}; log: {}",
                self.get("/events").await
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until this server's queue is empty (at most 10 s).
    async fn wait_queue_empty(&self) {
        let t0 = Instant::now();
        while self
            .get("/queue")
            .await
            .as_array()
            .is_some_and(|q| !q.is_empty())
        {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "the queue does not drain"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn copies(&self, mailbox: &str, subject: &str) -> usize {
        let v = self.get(&format!("/mailboxes/{mailbox}")).await;
        v.as_array()
            .map_or(0, |a| a.iter().filter(|m| m["subject"] == subject).count())
    }

    async fn wait_copies(&self, mailbox: &str, subject: &str, within: Duration) -> usize {
        let t0 = Instant::now();
        loop {
            let n = self.copies(mailbox, subject).await;
            if n > 0 {
                return n;
            }
            assert!(
                t0.elapsed() < within,
                "{subject:?} not in {mailbox} within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

fn body(size: usize) -> String {
    let line =
        "The quick brown fox jumps over the lazy dog over the RAS link, again and again.\r\n";
    line.repeat(size / line.len() + 1)
}

fn rfc822(subject: &str, size: usize) -> Vec<u8> {
    format!("From: <User1@SiteA.test>\r\nTo: <User2@SiteB.test>\r\nSubject: {subject}\r\nMessage-ID: <{subject}@test>\r\n\r\n{}", body(size)).into_bytes()
}

async fn submit(net: Net, subject: &str, size: usize) {
    submit_to(net, "User2@SiteB.test", subject, size).await;
}

async fn submit_to(net: Net, rcpt: &str, subject: &str, size: usize) {
    let mut c = mtalab_server::conn::SmtpConnection::connect(
        SocketAddr::from((net.a(), SMTP)),
        Some(IpAddr::V4(net.a())),
        "test",
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let txn = mtalab_smtp::Transaction {
        from: mtalab_smtp::ReversePath::Mailbox(
            mtalab_smtp::Mailbox::parse("User1@SiteA.test").unwrap(),
        ),
        rcpts: vec![mtalab_smtp::Mailbox::parse(rcpt).unwrap()],
        data: rfc822(subject, size),
    };
    let r = c.send(txn).await.unwrap();
    assert!(r.data.as_ref().is_some_and(|d| d.is_positive()), "{r:?}");
    c.quit().await;
}

/// The P1 message ServerA's MTA would send for this mail (its MTS identifier is `local_id`).
fn p1_message(net: Net, data_dir: &Path, subject: &str, local_id: &str) -> Vec<u8> {
    p1_message_to(net, data_dir, subject, local_id, "User2@SiteB.test", "SiteB")
}

/// An MTS-APDU from ServerA's User1 to `rcpt`, a recipient of site `site`.
fn p1_message_to(
    net: Net,
    data_dir: &Path,
    subject: &str,
    local_id: &str,
    rcpt: &str,
    site: &str,
) -> Vec<u8> {
    let cfg = Config::parse(&config(net, "ServerA", data_dir)).unwrap();
    let dir = mtalab_server::build_directory(&cfg).unwrap();
    let msg = mtalab_server::mta::gateway::rfc822_to_p1(
        &mtalab_server::mta::gateway::ToP1 {
            data: &rfc822(subject, 2000),
            from: "User1@SiteA.test",
            rcpts: &[rcpt.to_string()],
            prefix: &format!("c=US;a= ;p=ExchangeORG;o={site}"),
            site: &cfg.site_addressing.x400,
            local_id,
            arrival: chrono::Utc::now(),
            mta_name: "ServerA",
        },
        &dir,
    )
    .unwrap();
    MtsApdu::Message(msg).encode(Conformance::Implicit).unwrap()
}

/// An association from ServerA's NIC address to ServerB's MTA, bound as ServerA.
async fn associate(net: Net) -> Conn {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((net.a(), 0))).unwrap();
    let dest = SocketAddr::from((net.b(), P1));
    let stream = socket.connect(dest).await.unwrap();
    let bind = MtaBindArgument::simple("ServerA", "pwServerA")
        .encode()
        .unwrap();
    let acfg = AssociationConfig {
        checkpoint_size: 15,
        ..AssociationConfig::default()
    };
    let assoc = Association::initiator(acfg, bind, std::time::Instant::now()).unwrap();
    let mut conn = Conn::new(stream, assoc, dest);
    match conn
        .next_event(Duration::from_secs(5), "bind")
        .await
        .unwrap()
    {
        Event::AssociateConfirm(_) => conn,
        other => panic!("not bound: {other:?}"),
    }
}

/// One transfer over a new association from ServerA, confirmed (AEA), then released.
async fn transfer_once(net: Net, apdu: Vec<u8>) {
    let mut c = associate(net).await;
    c.transfer(apdu, Duration::from_secs(5), &mut Vec::new())
        .await
        .unwrap();
    c.release(Duration::from_secs(2)).await;
}

fn tmp() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    (t, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_cut_mid_transfer_is_detected_retried_and_delivered_once() {
    let net = Net(71);
    let (_t, da, db) = tmp();
    let a = Server::start(net, "ServerA", &da).await;
    let b = Server::start(net, "ServerB", &db).await;
    // A slow RAS link: 800 kbit/s, so 400 KB take about 4 s.
    a.set_link(r#"{"interface": "RAS", "rate_kbit": 800}"#)
        .await;
    assert_eq!(a.get("/links").await["RAS"]["rate_kbit"], 800);
    let subject = "cut mid-transfer";
    submit(net, subject, 400 * 1024).await;

    // The transfer is under way: checkpoints confirmed by ServerB.
    wait_checkpoints(&a, 2).await;
    let inbound = b.get("/mta").await["connectors"][0]["state"]["transfers"].clone();
    assert_eq!(inbound[0]["direction"], "in", "{inbound}");

    // Pull the cable.
    a.set_link(r#"{"interface": "RAS", "up": false}"#).await;
    let cut = Instant::now();
    // The sender's Recovery timeout (30 s × 0.01, at least 0.5 s): no checkpoint acknowledged.
    let e = a
        .wait_event(1294, "timed out waiting for", Duration::from_secs(5))
        .await;
    assert!(e.contains("X400 to SiteB") && e.contains("ack"), "{e}");
    // The receiver drops its half (what arrived is kept for a recover, which never comes in
    // time: the cut outlasts the Recovery timeout).
    b.wait_event(
        1294,
        "timed out waiting for transfer data",
        Duration::from_secs(5),
    )
    .await;
    // Opens over the cut link fail at once; the Open Retry timer starts.
    a.wait_event(9215, "Network is unreachable", Duration::from_secs(5))
        .await;
    a.wait_event(289, "Network is unreachable", Duration::from_secs(5))
        .await;
    a.wait_event(301, "retry in 120 seconds", Duration::from_secs(5))
        .await;
    assert_eq!(b.copies("User2", subject).await, 0);
    assert!(cut.elapsed() < Duration::from_secs(5));

    // Plug it back in: the message goes again, from the start, and arrives once.
    a.set_link(r#"{"interface": "RAS", "up": true}"#).await;
    b.wait_copies("User2", subject, Duration::from_secs(20))
        .await;
    a.wait_queue_empty().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(b.copies("User2", subject).await, 1);
    assert!(b.get("/mta").await["connectors"][0]["state"]["transfers"].is_null());
    if std::env::var_os("SHOW_EVENTS").is_some() {
        for (n, s) in [("A", &a), ("B", &b)] {
            for e in s.get("/events").await.as_array().unwrap() {
                eprintln!("{n} {} {} {}", e["time"], e["id"], e["text"]);
            }
        }
    }
    a.stop().await;
    b.stop().await;
}

/// Waits until ServerA's transfer over the RAS link has at least `n` checkpoints confirmed.
async fn wait_checkpoints(a: &Server, n: u64) {
    let t0 = Instant::now();
    loop {
        let v = a.get("/mta").await;
        let confirmed = v["connectors"][0]["state"]["transfers"]
            .as_array()
            .and_then(|t| t.first())
            .map_or(0, |t| t["checkpoints_confirmed"].as_u64().unwrap());
        if confirmed >= n {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no transfer under way: {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_cut_is_recovered_and_the_transfer_resumes_at_its_last_checkpoint() {
    let net = Net(76);
    let (_t, da, db) = tmp();
    // A Recovery timeout of 2 s on the time scale (200 s × 0.01): the link is plugged back
    // in once this test has seen ServerA's 1294, well within it even on a loaded machine.
    let start = |me: &'static str, data: &Path| {
        let text = config(net, me, data).replace("recovery_timeout = 30", "recovery_timeout = 200");
        async move { Server::start_config(&text, me).await }
    };
    let a = start("ServerA", &da).await;
    let b = start("ServerB", &db).await;
    a.set_link(r#"{"interface": "RAS", "rate_kbit": 800}"#)
        .await;
    let subject = "short cut mid-transfer";
    submit(net, subject, 400 * 1024).await;
    wait_checkpoints(&a, 3).await;

    // Pull the cable; plug it back in as soon as ServerA gives the association up.
    a.set_link(r#"{"interface": "RAS", "up": false}"#).await;
    let e = a
        .wait_event(1294, "timed out waiting for", Duration::from_secs(5))
        .await;
    assert!(e.contains("X400 to SiteB"), "{e}");
    a.set_link(r#"{"interface": "RAS", "up": true}"#).await;

    // Within the Recovery timeout ServerA recovers the association (RTORQ recover): the
    // transfer resumes at the last checkpoint ServerB confirmed, and the message arrives once.
    b.wait_copies("User2", subject, Duration::from_secs(20))
        .await;
    a.wait_queue_empty().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(b.copies("User2", subject).await, 1);
    let sa = a.get("/mta").await["connectors"][0]["state"].clone();
    let sb = b.get("/mta").await["connectors"][0]["state"].clone();
    assert_eq!(sa["recovered_total"], 1, "{sa}");
    // At least the 3 checkpoints seen confirmed (15 K each) were not sent again.
    let saved = sa["recovered_octets"].as_u64().unwrap();
    assert!((3 * 15 * 1024..400 * 1024).contains(&saved), "{sa}");
    assert_eq!(sb["resumed_in_total"], 1, "{sb}");
    // No open failed: the message never waited for the Open Retry timer.
    assert!(a.events(289, "").await.is_empty(), "{}", a.get("/events").await);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_sent_again_is_confirmed_but_not_delivered_twice() {
    let net = Net(72);
    let (_t, da, db) = tmp();
    let apdu = p1_message(net, &da, "sent twice", "18F0000000000A000001");
    let b = Server::start(net, "ServerB", &db).await;
    // The first transfer: committed, confirmed (AEA) — and, say, the AEA was lost.
    transfer_once(net, apdu.clone()).await;
    assert_eq!(
        b.wait_copies("User2", "sent twice", Duration::from_secs(5))
            .await,
        1
    );
    // The sender tries again on a new association: confirmed, not delivered again.
    transfer_once(net, apdu.clone()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(b.copies("User2", "sent twice").await, 1);
    // The record is on disk: after a restart of ServerB it still holds.
    b.stop().await;
    let line = std::fs::read_to_string(db.join("mta/accepted-ids.jsonl")).unwrap();
    assert!(
        line.contains("\"mta\":\"ServerA\"") && line.contains("18F0000000000A000001"),
        "{line}"
    );
    let b = Server::start(net, "ServerB", &db).await;
    let mut c = associate(net).await;
    c.transfer(apdu, Duration::from_secs(5), &mut Vec::new())
        .await
        .unwrap();
    // Another message (another MTS identifier) is delivered as usual.
    c.transfer(
        p1_message(net, &da, "another one", "18F0000000000A000002"),
        Duration::from_secs(5),
        &mut Vec::new(),
    )
    .await
    .unwrap();
    c.release(Duration::from_secs(2)).await;
    assert_eq!(
        b.wait_copies("User2", "another one", Duration::from_secs(5))
            .await,
        1
    );
    assert_eq!(b.copies("User2", "sent twice").await, 1);
    b.stop().await;
}

/// Queue files of `data_dir` whose text holds `needle`.
fn queued_with(data_dir: &Path, needle: &str) -> usize {
    std::fs::read_dir(data_dir.join("queue"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "msg"))
        .filter(|e| {
            std::fs::read(e.path())
                .is_ok_and(|d| d.windows(needle.len()).any(|w| w == needle.as_bytes()))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_identifier_not_yet_on_disk_comes_back_from_its_queue_file() {
    let net = Net(74);
    let (_t, da, db) = tmp();
    // For an SMTP address of SiteA (an RFC-822 domain-defined attribute): ServerB accepts it
    // and routes it on over its connector to ServerA, which is not running, so the message
    // stays in ServerB's queue.
    let id = "18F0000000000C000001";
    let apdu = p1_message_to(net, &da, "kept in the queue", id, "someone@SiteA.test", "SiteA");
    let b = Server::start(net, "ServerB", &db).await;
    transfer_once(net, apdu.clone()).await;
    assert_eq!(queued_with(&db, id), 1);
    assert_eq!(queued_with(&db, "\"x400\":{"), 1, "queued as received over X.400");
    b.stop().await;
    // A crash after the AEA, before the record's line reached the disk: the queue file,
    // fsynced before the AEA, is the only durable trace of the accepted identifier.
    let record = db.join("mta/accepted-ids.jsonl");
    assert!(std::fs::read_to_string(&record).unwrap().contains(id));
    std::fs::write(&record, "").unwrap();
    let b = Server::start(net, "ServerB", &db).await;
    // Read back from the queue file at start, and on disk again.
    let text = std::fs::read_to_string(&record).unwrap();
    assert!(
        text.contains(id) && text.contains("\"mta\":\"ServerA\""),
        "{text}"
    );
    // The transfer sent again is confirmed and not queued a second time.
    transfer_once(net, apdu).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(queued_with(&db, id), 1);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_silent_mid_activity_is_dropped_by_the_receiver() {
    let net = Net(73);
    let (_t, da, db) = tmp();
    let b = Server::start(net, "ServerB", &db).await;
    let apdu = p1_message(net, &da, "half a message", "18F0000000000B000001");
    // Drive the association by hand, to stop in the middle of the activity.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((net.a(), 0))).unwrap();
    let mut s = socket
        .connect(SocketAddr::from((net.b(), P1)))
        .await
        .unwrap();
    let bind = MtaBindArgument::simple("ServerA", "pwServerA")
        .encode()
        .unwrap();
    let acfg = AssociationConfig {
        checkpoint_size: 1,
        window_size: 1,
        ..AssociationConfig::default()
    };
    let mut assoc = Association::initiator(acfg, bind, std::time::Instant::now()).unwrap();
    let mut buf = vec![0u8; 65536];
    loop {
        while let Some(f) = assoc.poll_transmit() {
            s.write_all(&f).await.unwrap();
        }
        if let Some(ev) = assoc.poll_event() {
            assert!(matches!(ev, Event::AssociateConfirm(_)), "{ev:?}");
            break;
        }
        let n = s.read(&mut buf).await.unwrap();
        assoc
            .handle_input(&buf[..n], std::time::Instant::now())
            .unwrap();
    }
    assoc.transfer(apdu.clone()).unwrap();
    // AS and the first checkpoint (1 KiB, window 1) go out; then the sender falls silent: it
    // neither reads ServerB's MIA nor sends anything more.
    while let Some(f) = assoc.poll_transmit() {
        s.write_all(&f).await.unwrap();
    }
    let silent = Instant::now();
    b.wait_event(
        1294,
        "timed out waiting for transfer data",
        Duration::from_secs(5),
    )
    .await;
    assert!(
        silent.elapsed() >= Duration::from_millis(450),
        "aborted after {:?}",
        silent.elapsed()
    );
    // ServerB aborted (AB) and closed its half.
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
        .await
        .expect("ServerB closes the connection")
        .unwrap();
    assert_eq!(b.copies("User2", "half a message").await, 0);
    // Nothing of it was kept: the whole transfer, sent again, is delivered.
    transfer_once(net, apdu).await;
    assert_eq!(
        b.wait_copies("User2", "half a message", Duration::from_secs(5))
            .await,
        1
    );
    b.stop().await;
}

/// A connector whose transfers hang (its remote end takes the TCP connection and never
/// answers the CR) and whose queue is full: a message for another connector still goes at
/// once, and the hanging connector's next messages wait in the IMS queue, not in a worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_connector_queue_holds_up_no_other_connector() {
    let net = Net(75);
    let (_t, da, db) = tmp();
    // The silent MTA: accepts, reads nothing, says nothing.
    let silent = Ipv4Addr::new(127, 75, 50, 50);
    let listener = tokio::net::TcpListener::bind((silent, P1)).await.unwrap();
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = listener.accept().await {
            conns.push(c);
        }
    });
    let text = config(net, "ServerA", &da)
        .replace("remote_port = 2528\n", "remote_port = 2528\nmax_queued_per_connector = 1\n")
        .replace(
            "[admin]",
            &format!(
                "[[mta.connectors]]\nname = \"X400 to Silent\"\nremote_mta_name = \"Silent\"\nstack_address = \"{silent}\"\n\
                 address_space = [{{ type = \"SMTP\", address = \"silent.test\", cost = 1 }}]\n[admin]"
            ),
        );
    assert!(text.contains("max_queued_per_connector = 1"), "{text}");
    let a = Server::start_config(&text, "ServerA").await;
    let b = Server::start(net, "ServerB", &db).await;

    // The first message takes the silent connector's one place and hangs in the open (it
    // waits for the CC); the next two find the queue full.
    for i in 0..3 {
        submit_to(net, "someone@silent.test", &format!("to silent {i}"), 100).await;
    }
    // Within 10 s: before each connector had its own queue, this waited for the silent
    // connector's open to time out (30 s).
    submit(net, "past the full queue", 100).await;
    b.wait_copies("User2", "past the full queue", Duration::from_secs(10)).await;

    // The silent connector's later messages wait in ServerA's queue, with the reason; a pass
    // that only found the queue full tried nothing and is not counted as an attempt.
    let t1 = Instant::now();
    loop {
        let q = a.get("/queue").await;
        let waiting: Vec<_> = q
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["last_error"].as_str().is_some_and(|s| s.contains("X400 to Silent: the connector's queue is full")))
            .collect();
        if !waiting.is_empty() {
            assert!(waiting.iter().all(|e| e["attempts"] == 0), "a deferral counted as an attempt: {q}");
            break;
        }
        assert!(t1.elapsed() < Duration::from_secs(10), "no message left waiting for a full queue: {q}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(queued_with(&da, "silent.test"), 3, "every message for the silent connector is still queued");
    held.abort();
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_transfer_is_not_confirmed_and_the_mta_keeps_serving() {
    let net = Net(78);
    let (_t, da, db) = tmp();
    let b = Server::start(net, "ServerB", &db).await;
    // Valid BER (SEQUENCE { INTEGER 5 }), but no MTS-APDU: not confirmed, the association is
    // aborted, so the sender keeps the message instead of believing it delivered.
    let mut c = associate(net).await;
    let r = c
        .transfer(vec![0x30, 0x03, 0x02, 0x01, 0x05], Duration::from_secs(5), &mut Vec::new())
        .await;
    assert!(r.is_err(), "an undecodable MTS-APDU was confirmed");
    let e = b
        .wait_event(1294, "undecodable MTS-APDU", Duration::from_secs(5))
        .await;
    assert!(e.contains("X400 to SiteA"), "{e}");
    assert_eq!(queued_with(&db, "ServerA"), 0);
    // The MTA still serves: the next association carries a message through.
    transfer_once(net, p1_message(net, &da, "after the bad one", "18F0000000000B000001")).await;
    assert_eq!(
        b.wait_copies("User2", "after the bad one", Duration::from_secs(5))
            .await,
        1
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_that_cannot_be_converted_goes_back_in_a_non_delivery_report() {
    let net = Net(79);
    let (_t, da, db) = tmp();
    let b = Server::start(net, "ServerB", &db).await;
    // A P1 message whose content is no IPM (an OCTET STRING): the transfer is confirmed, and
    // what was confirmed is not dropped: a non-delivery report for its recipient is queued
    // back to ServerA (conversion-not-performed 2, content-syntax-error 12; event 290).
    let apdu = p1_message(net, &da, "not an ipm", "18F0000000000C000001");
    let MtsApdu::Message(mut msg) = MtsApdu::decode(&apdu).unwrap() else {
        panic!("a message")
    };
    msg.content = vec![0x04, 0x03, b'a', b'b', b'c'];
    transfer_once(net, MtsApdu::Message(msg).encode(Conformance::Implicit).unwrap()).await;
    let e = b
        .wait_event(290, "18F0000000000C000001", Duration::from_secs(5))
        .await;
    assert!(e.contains("reason code 2, diagnostic code 12"), "{e}");
    assert!(e.contains("User2"), "{e}");
    // The report waits in ServerB's queue for ServerA's MTA (not running here).
    let queue = b.get("/queue").await;
    let text = queue.to_string();
    assert!(text.contains("x400:") && text.contains("o=SiteA"), "{text}");
    assert_eq!(b.copies("User2", "not an ipm").await, 0);
    b.stop().await;
}
