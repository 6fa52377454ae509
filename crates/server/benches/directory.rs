//! Directory lookups a server makes for every message, against the size of its directory:
//! the SMTP recipient of `RCPT TO` and of local delivery, the local recipient of an X.400
//! O/R address (and the miss for an originator on another site, which every message from
//! another site's MTA makes), a recipient's DN, and a directory of N mailboxes built at
//! start.
//!
//! `cargo bench -p mtalab-server --bench directory`

// criterion_group! defines a public function it cannot document.
#![allow(missing_docs)]

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, black_box, criterion_group, criterion_main};
use mtalab_directory::{Directory, RecipientSpec, SiteAddressing};
use mtalab_p1::OrAddress;
use mtalab_server::mta::gateway::local_recipient_for;

/// A directory of `n` mailboxes `User0` .. `User{n-1}` (given name `Given{i}`, surname
/// `Surname{i}`), Exchange's default addressing for SiteA.
fn directory(n: usize) -> Directory {
    let addressing = SiteAddressing::exchange_default("ExchangeORG", "SiteA", "sitea.example", "US");
    let mut d = Directory::new("ExchangeORG", "SiteA", "ServerA", addressing);
    for i in 0..n {
        d.add_mailbox(RecipientSpec {
            alias: format!("User{i}"),
            given: format!("Given{i}"),
            surname: format!("Surname{i}"),
            display_name: None,
        })
        .expect("mailbox");
    }
    d
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("directory");
    g.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    for n in [10usize, 1000, 10_000] {
        let d = directory(n);
        let last = d.recipients().last().expect("mailboxes").clone();
        let smtp = last.primary_smtp().expect("smtp").to_string();
        let (local, domain) = smtp.rsplit_once('@').expect("address");
        assert!(d.lookup_smtp(local, domain).is_some());
        g.bench_with_input(BenchmarkId::new("SMTP recipient looked up", n), &n, |b, _| {
            b.iter(|| black_box(&d).lookup_smtp(black_box(local), black_box(domain)).map(|r| r.alias.len()))
        });
        let or = OrAddress::parse_mnemonic(&last.x400).expect("x400");
        assert!(local_recipient_for(&or, &d).is_some());
        g.bench_with_input(BenchmarkId::new("X.400 recipient looked up", n), &n, |b, _| {
            b.iter(|| local_recipient_for(black_box(&or), black_box(&d)).map(|r| r.alias.len()))
        });
        let elsewhere = OrAddress::parse_mnemonic("c=US;a= ;p=ExchangeORG;o=SiteB;s=Smith;g=John").expect("x400");
        assert!(local_recipient_for(&elsewhere, &d).is_none());
        g.bench_with_input(BenchmarkId::new("X.400 originator of another site, not found", n), &n, |b, _| {
            b.iter(|| local_recipient_for(black_box(&elsewhere), black_box(&d)).map(|r| r.alias.len()))
        });
        let dn = d.recipient_dn(&last);
        assert!(d.lookup_dn(&dn).is_some());
        g.bench_with_input(BenchmarkId::new("recipient DN looked up", n), &n, |b, _| {
            b.iter(|| black_box(&d).lookup_dn(black_box(&dn)).map(|r| r.alias.len()))
        });
        g.bench_with_input(BenchmarkId::new("directory of N mailboxes built", n), &n, |b, &n| b.iter(|| directory(n).recipients().len()));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
