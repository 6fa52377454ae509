//! Heap allocations per message of the X.400 way's own work (the same work as the
//! `per_message` bench): how many blocks, and how many octets, A's conversion of one 4 KiB
//! message into an encoded P1 message takes, and B's decoding and conversion back; and what
//! B's record of accepted MTS identifiers ([`mtalab_server::mta::dedup`]) allocates for one
//! accepted transfer, and keeps of it. Counted by dhat's allocator, so the figures are exact
//! and the same on every machine; they do not include what the servers do around the
//! conversion (queue, sockets, tasks).
//!
//! `cargo bench -p mtalab-server --bench allocs`
//!
//! Where the blocks come from: `MTALAB_ALLOCS_SITES=A` (or `B`) runs that side's
//! conversion [`ROUNDS`] times under dhat's heap profiler instead and writes its profile,
//! every allocation site with its call stack, to `target/dhat-A.json` (`dhat-B.json`), for
//! dhat's viewer (`dh_view.html`, from Valgrind) or a script.

use mtalab_server::config::Config;

mod common;
use common::{CONFIG, from_p1, message, to_p1};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Messages each figure is averaged over (after one of each, which fills the per-thread
/// caches of parsed O/R names).
const ROUNDS: u64 = 100;

/// Blocks and octets allocated while `f` runs [`ROUNDS`] times, per run.
fn per_run(mut f: impl FnMut()) -> (u64, u64) {
    let before = dhat::HeapStats::get();
    for _ in 0..ROUNDS {
        f();
    }
    let after = dhat::HeapStats::get();
    ((after.total_blocks - before.total_blocks) / ROUNDS, (after.total_bytes - before.total_bytes) / ROUNDS)
}

/// B's record of accepted MTS identifiers: blocks and octets allocated to look up and
/// record one accepted transfer (one recipient, as `bench p1` sends), and the octets the
/// record keeps per entry once [`DEDUP_ENTRIES`] of them are in it.
fn dedup_per_transfer() -> (u64, u64, u64) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let d = mtalab_server::mta::dedup::Dedup::open(dir.path(), std::time::Duration::ZERO).expect("record");
    let rcpts = vec!["c=US;a= ;p=Bench;o=B;s=One;g=User".to_string()];
    let id = |i: u64| format!("c=US;a= ;p=Bench;19A1B2C3D4E{i:06X}-1");
    let accept = |i: u64| match rt.block_on(d.begin("A", &id(i), &rcpts)) {
        mtalab_server::mta::dedup::Begin::New(claim, _) => claim.record(&rcpts),
        mtalab_server::mta::dedup::Begin::Duplicate => unreachable!("a new identifier"),
    };
    // The lines wait in the journal's buffer until a sync: put them on disk between rounds
    // so that the figures count the entries, not the buffer.
    accept(0);
    d.sync().expect("sync");
    let before = dhat::HeapStats::get();
    for i in 1..=ROUNDS {
        accept(i);
    }
    let after = dhat::HeapStats::get();
    let (blocks, bytes) = ((after.total_blocks - before.total_blocks) / ROUNDS, (after.total_bytes - before.total_bytes) / ROUNDS);
    d.sync().expect("sync");
    let kept0 = dhat::HeapStats::get().curr_bytes;
    for i in ROUNDS + 1..=ROUNDS + DEDUP_ENTRIES {
        accept(i);
    }
    d.sync().expect("sync");
    let kept = (dhat::HeapStats::get().curr_bytes.saturating_sub(kept0)) as u64 / DEDUP_ENTRIES;
    (blocks, bytes, kept)
}

/// Entries added to measure what the record keeps per entry (its table grows by doubling,
/// so the figure is an average over a size that is not a power of two).
const DEDUP_ENTRIES: u64 = 20_000;

fn main() {
    let cfg = Config::parse(CONFIG).expect("config");
    let dir = mtalab_server::build_directory(&cfg).expect("directory");
    let data = message();
    let apdu = to_p1(&cfg, &dir, &data);
    let _ = from_p1(&dir, &apdu);
    if let Ok(side) = std::env::var("MTALAB_ALLOCS_SITES") {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).expect("workspace root");
        let file = root.join(format!("target/dhat-{side}.json"));
        let _profiler = dhat::Profiler::builder().file_name(&file).build();
        for _ in 0..ROUNDS {
            match side.as_str() {
                "A" => drop(std::hint::black_box(to_p1(&cfg, &dir, &data))),
                "B" => drop(std::hint::black_box(from_p1(&dir, &apdu))),
                other => panic!("MTALAB_ALLOCS_SITES is A or B, not {other:?}"),
            }
        }
        return;
    }
    // `cargo bench` passes `--bench`; a test run (`cargo test --benches`) passes nothing
    // and gets the same figures.
    let _profiler = dhat::Profiler::builder().testing().build();
    let (a_blocks, a_bytes) = per_run(|| drop(std::hint::black_box(to_p1(&cfg, &dir, &data))));
    let (b_blocks, b_bytes) = per_run(|| drop(std::hint::black_box(from_p1(&dir, &apdu))));
    println!("allocations per message ({} octets in A's queue, an MTS-APDU of {} octets):", data.len(), apdu.len());
    println!("  A: RFC 5322 to P1 message with its IPM, encoded   {a_blocks:>4} blocks {a_bytes:>7} octets");
    println!("  B: MTS-APDU decoded, IPM to RFC 5322              {b_blocks:>4} blocks {b_bytes:>7} octets");
    let (d_blocks, d_bytes, d_kept) = dedup_per_transfer();
    println!("  B: accepted MTS identifier looked up and recorded {d_blocks:>4} blocks {d_bytes:>7} octets, {d_kept} octets kept per entry");
}
