//! CPU per message of the work that differs between the X.400 path and the SMTP path of
//! `mtalab bench p1`, in memory (no sockets, no files): what server A does to send one 4 KiB
//! message and server B to receive it, each way.
//!
//! `cargo bench -p mtalab-server --bench per_message`

use std::time::Instant;

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use mtalab_osi::association::{Association, AssociationConfig, Event};
use mtalab_p1::{Conformance, MtaBindArgument, MtaBindResult, MtsApdu};
use mtalab_server::config::Config;
use mtalab_server::mta::gateway;

const CONFIG: &str = r#"[organization]
name = "Bench"
[site]
name = "B"
[server]
name = "B"
data_dir = "/nonexistent"
[site_addressing]
smtp = "@b.test"
x400 = { c = "US", p = "Bench", o = "B" }
[[recipients]]
alias = "User1"
given = "User"
surname = "One"
[ims]
listen = "127.0.0.1:2525"
[admin]
listen = "127.0.0.1:2526"
"#;

/// The message `mtalab bench p1` submits: 4 KiB of 76-octet lines, as A's queue holds it.
fn message() -> Vec<u8> {
    let line = "x".repeat(75) + "\r\n";
    format!(
        "From: <User1@a.test>\r\nTo: <User1@b.test>\r\nSubject: bench 1-1\r\nDate: Fri, 4 Dec 2026 20:00:00 +0000\r\nMessage-ID: <1.2@mtalab-lab>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{}",
        line.repeat(4096usize.div_ceil(77))
    )
    .into_bytes()
}

fn to_p1(cfg: &Config, dir: &mtalab_directory::Directory, data: &[u8]) -> Vec<u8> {
    let msg = gateway::rfc822_to_p1(
        &gateway::ToP1 {
            data,
            from: "User1@a.test",
            rcpts: &["User1@b.test".to_string()],
            prefix: "c=US;p=Bench;o=B",
            site: &cfg.site_addressing.x400,
            local_id: "0000000000001-1",
            arrival: chrono::Utc::now(),
            mta_name: "A",
        },
        dir,
    )
    .expect("converts");
    MtsApdu::Message(msg).encode(Conformance::Implicit).expect("encodes")
}

/// Move frames both ways until neither side has anything to send; the events of each side
/// are returned in order (initiator's, responder's).
fn pump(a: &mut Association, b: &mut Association, now: Instant) -> (Vec<Event>, Vec<Event>) {
    let (mut ea, mut eb) = (Vec::new(), Vec::new());
    loop {
        let mut moved = false;
        while let Some(f) = a.poll_transmit() {
            b.handle_input(&f, now).expect("valid input");
            moved = true;
        }
        while let Some(f) = b.poll_transmit() {
            a.handle_input(&f, now).expect("valid input");
            moved = true;
        }
        ea.extend(std::iter::from_fn(|| a.poll_event()));
        eb.extend(std::iter::from_fn(|| b.poll_event()));
        if !moved {
            return (ea, eb);
        }
    }
}

/// An initiator and a responder with the association established.
fn pair() -> (Association, Association) {
    let now = Instant::now();
    let cfg = AssociationConfig { defer_transfer_confirmation: true, ..AssociationConfig::default() };
    let bind = MtaBindArgument::simple("A", "pwA").encode().expect("bind");
    let mut a = Association::initiator(cfg.clone(), bind, now).expect("initiator");
    let mut b = Association::responder(cfg).expect("responder");
    let (_, eb) = pump(&mut a, &mut b, now);
    assert!(eb.iter().any(|e| matches!(e, Event::AssociateIndication(_))), "{eb:?}");
    b.accept(MtaBindResult::simple("B", "pwB").encode().expect("result")).expect("accept");
    pump(&mut a, &mut b, now);
    assert!(a.is_established() && b.is_established());
    (a, b)
}

fn bench(c: &mut Criterion) {
    let cfg = Config::parse(CONFIG).expect("config");
    let dir = mtalab_server::build_directory(&cfg).expect("directory");
    let data = message();
    let apdu = to_p1(&cfg, &dir, &data);

    c.bench_function("x400/a: RFC 5322 to P1 message, encoded", |b| b.iter(|| to_p1(&cfg, &dir, black_box(&data))));

    c.bench_function("x400/b: MTS-APDU decoded, IPM to RFC 5322", |b| {
        b.iter(|| {
            let MtsApdu::Message(msg) = MtsApdu::decode(black_box(&apdu)).expect("decodes") else { unreachable!() };
            let from = gateway::or_to_smtp(&msg.envelope.originator_name.address, &dir);
            let known = vec![(&msg.envelope.originator_name.address, from)];
            gateway::p1_to_rfc822(&msg, &dir, &known).expect("converts")
        })
    });

    let (mut a, mut r) = pair();
    c.bench_function("x400/a+b: one RT-TRANSFER over an established association (OSI layers)", |b| {
        b.iter(|| {
            let now = Instant::now();
            a.transfer(apdu.clone()).expect("transfer");
            let (_, eb) = pump(&mut a, &mut r, now);
            assert!(eb.iter().any(|e| matches!(e, Event::TransferIndication { .. })));
            black_box(eb);
            r.confirm_transfer();
            let (ea, _) = pump(&mut a, &mut r, now);
            assert!(ea.iter().any(|e| matches!(e, Event::TransferConfirm { .. })));
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = bench
}
criterion_main!(benches);
