//! CPU per message of the work that differs between the X.400 path and the SMTP path of
//! `mtalab bench p1`, in memory (no sockets, no files): what server A does to send one 4 KiB
//! message and server B to receive it, each way.
//!
//! `cargo bench -p mtalab-server --bench per_message`

// criterion_group! defines a public function it cannot document.
#![allow(missing_docs)]

use std::time::Instant;

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use mtalab_osi::association::{Association, AssociationConfig, Event};
use mtalab_p1::{MtaBindArgument, MtaBindResult};
use mtalab_server::config::Config;

mod common;
use common::{CONFIG, from_p1, message, to_p1};

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
        b.iter(|| from_p1(&dir, black_box(&apdu)))
    });

    // B's record of accepted MTS identifiers, one new identifier per transfer as a steady
    // flow brings them: the record fills up to its cap (100 000 entries) during the
    // measurement and stays full, the oldest going as new ones come.
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let tmp = tempfile::tempdir().expect("temporary directory");
    let record = mtalab_server::mta::dedup::Dedup::open(tmp.path(), std::time::Duration::ZERO).expect("record");
    let rcpts = vec!["c=US;a= ;p=Bench;o=B;s=One;g=User".to_string()];
    let mut n = 0u64;
    c.bench_function("x400/b: accepted MTS identifier looked up and recorded", |b| {
        b.iter(|| {
            n += 1;
            let id = format!("c=US;a= ;p=Bench;19A1B2C3D4E{n:06X}-1");
            match rt.block_on(record.begin("A", black_box(&id), &rcpts)) {
                mtalab_server::mta::dedup::Begin::New(claim, _) => claim.record(&rcpts),
                mtalab_server::mta::dedup::Begin::Duplicate => unreachable!("a new identifier"),
            }
            // The lines gather in memory until a sync; written out now and then as the
            // server's queue removals do, off the measured path's share.
            if n.is_multiple_of(4096) {
                record.sync().expect("sync");
            }
        })
    });
    assert!(record.len() >= 90_000, "the record filled up: {}", record.len());

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
