//! Heap allocations per message of the X.400 way's own work (the same work as the
//! `per_message` bench): how many blocks, and how many octets, A's conversion of one 4 KiB
//! message into an encoded P1 message takes, and B's decoding and conversion back. Counted
//! by dhat's allocator, so the figures are exact and the same on every machine; they do
//! not include what the servers do around the conversion (queue, sockets, tasks).
//!
//! `cargo bench -p mtalab-server --bench allocs`

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

fn main() {
    // `cargo bench` passes `--bench`; a test run (`cargo test --benches`) passes nothing
    // and gets the same figures.
    let _profiler = dhat::Profiler::builder().testing().build();
    let cfg = Config::parse(CONFIG).expect("config");
    let dir = mtalab_server::build_directory(&cfg).expect("directory");
    let data = message();
    let apdu = to_p1(&cfg, &dir, &data);
    let _ = from_p1(&dir, &apdu);
    let (a_blocks, a_bytes) = per_run(|| drop(std::hint::black_box(to_p1(&cfg, &dir, &data))));
    let (b_blocks, b_bytes) = per_run(|| drop(std::hint::black_box(from_p1(&dir, &apdu))));
    println!("allocations per message ({} octets in A's queue, an MTS-APDU of {} octets):", data.len(), apdu.len());
    println!("  A: RFC 5322 to P1 message with its IPM, encoded   {a_blocks:>4} blocks {a_bytes:>7} octets");
    println!("  B: MTS-APDU decoded, IPM to RFC 5322              {b_blocks:>4} blocks {b_bytes:>7} octets");
}
