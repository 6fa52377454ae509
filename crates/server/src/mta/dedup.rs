//! The MTS identifiers this MTA has accepted (X.411 §12.2.1.1.1.1 message-identifier,
//! §12.2.1.3.1 report-identifier), so that a transfer sent again is acknowledged without
//! being delivered twice.
//!
//! The receiving MTA commits a transfer to its queue and only then confirms it (session AEA,
//! X.228 §8). When the link dies after the commit but before the AEA reached the sender, the
//! sender never learns that the transfer succeeded: it sends the same MTS-APDU again on a new
//! association. This record recognises it — same sending MTA, same MTS identifier, no
//! recipient not already accepted — and the transfer is confirmed without a second delivery.
//!
//! # File
//! `<data_dir>/mta/accepted-ids.jsonl`: one JSON object per line,
//! `{"t": <ms since the UNIX epoch>, "mta": "<remote MTA name>", "id": "<GDI mnemonic>;<local
//! identifier>", "rcpts": ["<O/R mnemonic>", …]}`. A torn last line (a crash while
//! appending) is ignored on load.
//!
//! # Durability
//! An accepted identifier must survive a crash from the moment the transfer is confirmed.
//! Two ways, chosen per transfer by the receiving MTA:
//! - [`Claim::commit`]: the line is appended and fsynced (one fsync shared by concurrent
//!   transfers) before the transfer is confirmed. For transfers whose queue file does not
//!   carry every recipient accepted (a report, a recipient answered by a non-delivery
//!   report, content that could not be converted).
//! - [`Claim::record`]: the line is appended but not fsynced before the confirmation,
//!   because the queue file, fsynced before it, already carries the sending MTA, the MTS
//!   identifier and every recipient accepted ([`crate::queue::X400Origin`]). The line only
//!   has to be on disk before that queue file goes: [`Dedup::sync`] is called before a
//!   queue file with an X.400 origin is removed, and at start the queue's files are read
//!   back into the record ([`Dedup::adopt`]). This keeps the second fsync off the path of
//!   the confirmation (the AEA), where every transfer of an association waits for it.
//!
//! # Bounds
//! Entries are kept for [`Dedup::retention`] — at least the longest time a sender may keep
//! retrying (Max open retries × Open interval + Max transfer retries × Transfer interval of
//! the connectors, on the lab's time scale), never less than [`MIN_RETENTION`] — and at most
//! [`MAX_ENTRIES`] of them (past the cap the oldest go, down to nine tenths of it). The file
//! is rewritten without the expired lines when it holds twice as many lines as live entries
//! (and at start). In memory an entry of one recipient takes about 185 octets with its share
//! of the table (`cargo bench -p mtalab-server --bench allocs`), so a full record stays under
//! 20 MiB.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde::Deserialize;

/// The tables' hasher: foldhash, seeded per process, in place of SipHash. A key is a few
/// dozen octets of names a bound peer chose, hashed about five times per transfer: a fast
/// hash with a per-process seed is enough for them.
type Hasher = foldhash::fast::RandomState;
/// A key ([`key`]), shared by the table of entries, the keys in flight and the claim.
type Key = Arc<str>;

/// Entries are kept at least this long, whatever the connectors' retry settings.
pub const MIN_RETENTION: Duration = Duration::from_secs(3600);
/// At most this many entries are kept.
pub const MAX_ENTRIES: usize = 100_000;
/// Entries kept when more than [`MAX_ENTRIES`] are dropped to the newest (a tenth below the
/// cap; entries accepted in the same millisecond as the oldest kept all stay).
const KEEP_AFTER_TRIM: usize = MAX_ENTRIES - MAX_ENTRIES / 10;
/// How long [`Dedup::sync`] lets lines gather before it writes and fsyncs them.
pub const SYNC_GATHER: Duration = Duration::from_millis(10);
/// Expired entries are looked for once per this many entries added, or per an eighth of the
/// entries kept when that is more (a look goes through them all: at most eight entries
/// visited per add, however full the record), and whenever there are more than
/// [`MAX_ENTRIES`].
const TRIM_EVERY: usize = 1024;
/// Most recipients remembered per entry (X.411's ub-recipients is 32 767; an MTS-APDU with
/// more than this is simply not deduplicated beyond them).
const MAX_RCPTS: usize = 1024;

/// One accepted transfer, as a line of the file is read ([`LineRef`] writes it).
#[derive(Debug, Deserialize)]
struct Line {
    /// When it was accepted, ms since the UNIX epoch.
    t: i64,
    /// The sending MTA (the connector's remote MTA name).
    mta: String,
    /// The MTS identifier, `<GDI mnemonic>;<local identifier>`.
    id: String,
    /// The recipients accepted, O/R address mnemonics.
    rcpts: Vec<String>,
}

/// A line as it is written: the same fields, borrowed (`R`: the recipients' string type).
struct LineRef<'a, R> {
    t: i64,
    mta: &'a str,
    id: &'a str,
    rcpts: &'a [R],
}

impl<R: AsRef<str>> LineRef<'_, R> {
    /// Append the line, without its line end, as serde_json writes a struct of these fields
    /// ([`Line`] reads it back): `{"t":…,"mta":"…","id":"…","rcpts":["…",…]}`.
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"t\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.t).as_bytes());
        out.extend_from_slice(b",\"mta\":");
        json_str(out, self.mta);
        out.extend_from_slice(b",\"id\":");
        json_str(out, self.id);
        out.extend_from_slice(b",\"rcpts\":[");
        for (i, r) in self.rcpts.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json_str(out, r.as_ref());
        }
        out.extend_from_slice(b"]}");
    }
}

/// Append `s` as a JSON string (RFC 8259 §7). A string without a control character, quote
/// or backslash (the usual names and identifiers) goes as it is; any other is left to
/// serde_json's escaping.
fn json_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|c| c >= 0x20 && c != b'"' && c != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing into a Vec cannot fail, and a str is always a valid JSON string.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// What is kept of one key in memory: when it was last accepted, ms since the UNIX epoch,
/// and the recipients accepted, sorted, each once. A few dozen octets beside the key for the
/// usual one recipient (the record holds up to [`MAX_ENTRIES`] of them).
#[derive(Debug, Default, Clone)]
struct Entry {
    t: i64,
    rcpts: Vec<Box<str>>,
}

impl Entry {
    fn contains(&self, rcpt: &str) -> bool {
        self.rcpts.binary_search_by(|r| (**r).cmp(rcpt)).is_ok()
    }

    /// Add `rcpts` not there yet, keeping the list sorted.
    fn merge<S: AsRef<str>>(&mut self, rcpts: &[S]) {
        for r in rcpts {
            let r = r.as_ref();
            if let Err(i) = self.rcpts.binary_search_by(|x| (**x).cmp(r)) {
                self.rcpts.insert(i, r.into());
            }
        }
    }
}

/// The key of an entry, the sending MTA and the MTS identifier in one string:
/// `<length of the MTA name in octets>:<MTA name><MTS identifier>`, which no two different
/// pairs share whatever characters their names hold.
fn key(mta: &str, id: &str) -> Key {
    let mut digits = itoa::Buffer::new();
    let len = digits.format(mta.len());
    let mut k = String::with_capacity(len.len() + 1 + mta.len() + id.len());
    k.push_str(len);
    k.push(':');
    k.push_str(mta);
    k.push_str(id);
    Key::from(k)
}

/// The sending MTA and the MTS identifier of a [`key`].
fn split_key(k: &str) -> (&str, &str) {
    let (len, rest) = k.split_once(':').unwrap_or(("0", k));
    let n = len.parse::<usize>().unwrap_or(0).min(rest.len());
    rest.split_at_checked(n).unwrap_or(("", rest))
}

#[derive(Default)]
struct State {
    entries: HashMap<Key, Entry, Hasher>,
    /// Keys being committed by a transfer right now.
    in_flight: HashSet<Key, Hasher>,
    /// Lines in the file (live and expired).
    lines: usize,
    /// Entries added since the last trim.
    adds: usize,
}

impl State {
    /// Whether the file has grown to twice the live entries (and 1024 lines more).
    fn needs_compaction(&self) -> bool {
        self.lines >= 2 * self.entries.len() + 1024
    }
}

struct Journal {
    file: File,
    /// Lines appended and not yet synced.
    buf: Vec<u8>,
    syncing: bool,
    appended: u64,
    synced: u64,
    /// The last write's error, if it failed.
    error: Option<String>,
    /// Writes that failed so far.
    failures: u64,
}

/// The record of accepted MTS identifiers of one MTA.
pub struct Dedup {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    retention: Duration,
    state: Mutex<State>,
    /// Wakes transfers waiting for a claim on their key to go.
    done: tokio::sync::Notify,
    journal: Mutex<Journal>,
    synced: Condvar,
    /// The same news for tasks: the count of lines on disk, sent after each write.
    synced_tx: tokio::sync::watch::Sender<u64>,
}

/// What [`Dedup::begin`] found.
pub enum Begin {
    /// Never accepted (or only some of its recipients were): go ahead with these recipients
    /// (indices into the ones given), then [`Claim::commit`].
    New(Claim, Vec<usize>),
    /// Every recipient was accepted before: confirm the transfer, deliver nothing.
    Duplicate,
}

/// A transfer being committed: other transfers with the same key wait until it is dropped.
pub struct Claim {
    inner: Arc<Inner>,
    key: Key,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Dedup {
    /// Open (or create) the record in `dir` (the MTA's directory below the data dir),
    /// keeping entries for `retention` (raised to [`MIN_RETENTION`]). Expired entries and a
    /// torn last line are dropped, and the file rewritten without them.
    ///
    /// # Errors
    /// The directory or the file cannot be created, read or written.
    pub fn open(dir: &Path, retention: Duration) -> std::io::Result<Dedup> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("accepted-ids.jsonl");
        let retention = retention.max(MIN_RETENTION);
        let mut entries: HashMap<Key, Entry, Hasher> = HashMap::default();
        if let Ok(f) = File::open(&path) {
            let cutoff = now_ms() - retention.as_millis() as i64;
            // A line that does not parse (torn by a crash, damaged) is dropped, the others
            // kept; reading stops at an I/O error, with what was read so far.
            let read = crate::jsonl::for_each_line(BufReader::new(f), crate::jsonl::MAX_LINE, |line| {
                let Ok(l) = serde_json::from_slice::<Line>(line) else { return };
                if l.t < cutoff {
                    return;
                }
                let e = entries.entry(key(&l.mta, &l.id)).or_default();
                e.t = e.t.max(l.t);
                e.merge(&l.rcpts);
            });
            if let Err(e) = read {
                tracing::warn!(error = %e, file = %path.display(), "the record of accepted MTS identifiers was read only in part");
            }
        }
        // Trimmed before the file is written again, so that it holds no line past the cap.
        let mut state = State { entries, ..State::default() };
        trim_entries(&mut state, retention);
        state.lines = state.entries.len();
        let file = rewrite(&path, &state.entries)?;
        let inner = Inner {
            path,
            retention,
            state: Mutex::new(state),
            done: tokio::sync::Notify::new(),
            journal: Mutex::new(Journal {
                file,
                buf: Vec::new(),
                syncing: false,
                appended: 0,
                synced: 0,
                error: None,
                failures: 0,
            }),
            synced: Condvar::new(),
            synced_tx: tokio::sync::watch::Sender::new(0),
        };
        Ok(Dedup {
            inner: Arc::new(inner),
        })
    }

    /// How long entries are kept.
    pub fn retention(&self) -> Duration {
        self.inner.retention
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Entries kept now.
    pub fn len(&self) -> usize {
        self.inner.state.lock().expect("dedup").entries.len()
    }

    /// Whether no entry is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Put every line recorded so far on disk (one write and fsync, shared with concurrent
    /// callers; nothing to do when none is waiting). Called before a queue file carrying an
    /// X.400 origin is removed. Blocks on the disk (run it with `spawn_blocking`).
    ///
    /// # Errors
    /// The file cannot be written or synced.
    pub fn sync(&self) -> std::io::Result<()> {
        let upto = self.inner.journal.lock().expect("journal").appended;
        self.inner.wait_synced(upto, SYNC_GATHER)
    }

    /// [`Dedup::sync`] for a task: the same, but waiting without holding a thread. The
    /// write, after [`SYNC_GATHER`], runs in a task of its own, so that a caller dropped
    /// half-way does not leave it undone.
    ///
    /// # Errors
    /// The file cannot be written or synced.
    pub async fn sync_async(&self) -> std::io::Result<()> {
        let inner = &self.inner;
        let (upto, failures) = {
            let j = inner.journal.lock().expect("journal");
            (j.appended, j.failures)
        };
        loop {
            let mut rx = inner.synced_tx.subscribe();
            {
                let mut j = inner.journal.lock().expect("journal");
                if j.synced >= upto {
                    return Ok(());
                }
                if j.failures != failures {
                    return Err(std::io::Error::other(j.error.clone().unwrap_or_default()));
                }
                if !j.syncing {
                    j.syncing = true;
                    let writer = inner.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(SYNC_GATHER).await;
                        let _ = tokio::task::spawn_blocking(move || writer.write_turn()).await;
                    });
                }
            }
            let _ = rx.changed().await;
        }
    }

    /// Take in a transfer accepted before a restart, from its queue file: sent by `mta`,
    /// MTS identifier `id`, recipients `rcpts`, accepted at `t` (ms since the UNIX epoch).
    /// Its line is appended; [`Dedup::sync`] puts it on disk. Entries older than the
    /// retention are ignored.
    pub fn adopt(&self, mta: &str, id: &str, rcpts: &[String], t: i64) {
        if t < now_ms() - self.inner.retention.as_millis() as i64 {
            return;
        }
        let rcpts = &rcpts[..rcpts.len().min(MAX_RCPTS)];
        {
            let mut st = self.inner.state.lock().expect("dedup");
            let e = st.entries.entry(key(mta, id)).or_default();
            if rcpts.iter().all(|r| e.contains(r)) && e.t != 0 {
                return;
            }
            e.t = e.t.max(t);
            e.merge(rcpts);
            st.lines += 1;
        }
        self.inner.append(&LineRef { t, mta, id, rcpts });
    }

    /// Look a transfer up before committing it: `mta` is the sending MTA, `id` the MTS
    /// identifier (`<GDI mnemonic>;<local identifier>`), `rcpts` its recipients. When
    /// another transfer with the same key is being committed (the same message sent again on
    /// a second association while the first is still storing it), waits until that one is
    /// done. Recipients accepted before are left out of [`Begin::New`].
    pub async fn begin(&self, mta: &str, id: &str, rcpts: &[String]) -> Begin {
        let key = key(mta, id);
        loop {
            let notified = self.inner.done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = self.inner.state.lock().expect("dedup");
                if !st.in_flight.contains(&key) {
                    let cutoff = now_ms() - self.inner.retention.as_millis() as i64;
                    let seen = st.entries.get(&key).filter(|e| e.t >= cutoff);
                    let fresh: Vec<usize> = (0..rcpts.len())
                        .filter(|&i| seen.is_none_or(|e| !e.contains(&rcpts[i])))
                        .collect();
                    if fresh.is_empty() && !rcpts.is_empty() {
                        return Begin::Duplicate;
                    }
                    st.in_flight.insert(key.clone());
                    return Begin::New(
                        Claim {
                            inner: self.inner.clone(),
                            key,
                        },
                        fresh,
                    );
                }
            }
            notified.await;
        }
    }
}

impl Inner {
    /// Append one line to the buffer; returns its sequence number, for [`Inner::wait_synced`].
    fn append<R: AsRef<str>>(&self, line: &LineRef<'_, R>) -> u64 {
        let mut j = self.journal.lock().expect("journal");
        line.write_json(&mut j.buf);
        j.buf.push(b'\n');
        j.appended += 1;
        j.appended
    }

    /// Wait until every line up to sequence number `mine` is on disk (group commit: one
    /// write and fsync covers every line appended meanwhile).
    ///
    /// The caller that starts a write first waits `gather` (nothing when zero) so that more
    /// lines join it: [`Dedup::sync`] is off the path of any confirmation and gathers for
    /// [`SYNC_GATHER`], which turns one fsync per few messages into one per many.
    fn wait_synced(&self, mine: u64, gather: Duration) -> std::io::Result<()> {
        let mut j = self.journal.lock().expect("journal");
        let failures = j.failures;
        loop {
            if j.synced >= mine {
                return Ok(());
            }
            if j.failures != failures {
                return Err(std::io::Error::other(j.error.clone().unwrap_or_default()));
            }
            if !j.syncing {
                j.syncing = true;
                drop(j);
                if !gather.is_zero() {
                    std::thread::sleep(gather);
                }
                self.write_turn()?;
                j = self.journal.lock().expect("journal");
                continue;
            }
            j = self.synced.wait(j).expect("journal");
        }
    }

    /// Write and fsync every line in the buffer; the caller has set `syncing` (its turn).
    /// Gives the turn back and wakes the waiters, threads and tasks, whatever the outcome.
    /// On an error the lines go back to the front of the buffer, for the next turn, and the
    /// waiters of this one are told ([`Journal::failures`]).
    fn write_turn(&self) -> std::io::Result<()> {
        let (batch, upto, file) = {
            let mut j = self.journal.lock().expect("journal");
            let file = j.file.try_clone();
            (std::mem::take(&mut j.buf), j.appended, file)
        };
        let r = file.and_then(|mut f| f.write_all(&batch).and_then(|()| f.sync_data()));
        let mut j = self.journal.lock().expect("journal");
        j.syncing = false;
        match &r {
            Ok(()) => {
                j.synced = upto;
                j.error = None;
            }
            Err(e) => {
                let mut back = batch;
                back.extend_from_slice(&j.buf);
                j.buf = back;
                j.error = Some(e.to_string());
                j.failures += 1;
            }
        }
        self.synced.notify_all();
        drop(j);
        self.synced_tx.send_replace(upto);
        r
    }

    /// Rewrite the file with the live entries only, when it has grown to twice their number.
    fn compact(&self) -> std::io::Result<()> {
        {
            // Looked at first without the journal, which a sync may hold for a while.
            if !self.state.lock().expect("dedup").needs_compaction() {
                return Ok(());
            }
        }
        let mut j = self.journal.lock().expect("journal");
        while j.syncing {
            j = self.synced.wait(j).expect("journal");
        }
        // Every line appended so far (synced, or waiting in the buffer) is in the state
        // already: the snapshot covers them all.
        let entries = {
            let st = self.state.lock().expect("dedup");
            if !st.needs_compaction() {
                return Ok(());
            }
            st.entries.clone()
        };
        j.file = rewrite(&self.path, &entries)?;
        j.buf.clear();
        j.synced = j.appended;
        j.error = None;
        self.synced.notify_all();
        self.synced_tx.send_replace(j.synced);
        self.state.lock().expect("dedup").lines = entries.len();
        Ok(())
    }
}

/// Drop expired entries, and the oldest beyond [`MAX_ENTRIES`] (at start, and from
/// [`Claim::add`], see [`TRIM_EVERY`]); `st` is locked by the caller.
fn trim_entries(st: &mut State, retention: Duration) {
    st.adds = 0;
    let cutoff = now_ms() - retention.as_millis() as i64;
    st.entries.retain(|_, e| e.t >= cutoff);
    if st.entries.len() > MAX_ENTRIES {
        // Down to [`KEEP_AFTER_TRIM`] (not just to the cap), so that a record kept full by a
        // steady flow looks for its oldest entries once per tenth of the cap, not per add.
        let mut ts: Vec<i64> = st.entries.values().map(|e| e.t).collect();
        let drop = ts.len() - KEEP_AFTER_TRIM;
        let (_, &mut keep_from, _) = ts.select_nth_unstable(drop);
        st.entries.retain(|_, e| e.t >= keep_from);
    }
}

/// Write `entries` into a new file beside `path`, fsync it, rename it over `path` and fsync
/// the directory; returns the file opened for appending.
fn rewrite(path: &Path, entries: &HashMap<Key, Entry, Hasher>) -> std::io::Result<File> {
    let tmp = path.with_extension("jsonl.tmp");
    {
        let mut f = File::create(&tmp)?;
        let mut text = Vec::new();
        for (k, e) in entries {
            let (mta, id) = split_key(k);
            let line = LineRef {
                t: e.t,
                mta,
                id,
                rcpts: &e.rcpts,
            };
            line.write_json(&mut text);
            text.push(b'\n');
        }
        f.write_all(&text)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    OpenOptions::new().append(true).open(path)
}

impl Claim {
    /// The transfer is stored: record its recipients (`rcpts`, those it carried) durably
    /// before it is confirmed. Blocks on the file's fsync (run it with `spawn_blocking`). An
    /// error writing the file is returned, but the entry is kept in memory regardless.
    pub fn commit(self, rcpts: &[String]) -> std::io::Result<()> {
        let seq = self.add(rcpts);
        self.inner.wait_synced(seq, Duration::ZERO)
    }

    /// The transfer is in a queue file that carries the sending MTA, the MTS identifier and
    /// every recipient in `rcpts` (fsynced): record it now, on disk by the next
    /// [`Dedup::sync`] (see the module's "Durability"). Does not block on the disk.
    pub fn record(self, rcpts: &[String]) {
        self.add(rcpts);
    }

    /// Add the entry in memory and its line to the buffer; its sequence number.
    fn add(&self, rcpts: &[String]) -> u64 {
        let inner = &self.inner;
        let t = now_ms();
        let rcpts = &rcpts[..rcpts.len().min(MAX_RCPTS)];
        let compact = {
            let mut st = inner.state.lock().expect("dedup");
            let e = st.entries.entry(self.key.clone()).or_insert_with(|| Entry {
                t,
                rcpts: Vec::with_capacity(rcpts.len()),
            });
            e.t = t;
            e.merge(rcpts);
            st.lines += 1;
            st.adds += 1;
            if st.adds >= TRIM_EVERY.max(st.entries.len() / 8) || st.entries.len() > MAX_ENTRIES {
                trim_entries(&mut st, inner.retention);
            }
            st.needs_compaction()
        };
        let (mta, id) = split_key(&self.key);
        let seq = inner.append(&LineRef { t, mta, id, rcpts });
        if compact && let Err(e) = inner.compact() {
            tracing::warn!(error = %e, file = %inner.path.display(), "cannot compact the record of accepted MTS identifiers");
        }
        seq
        // Dropping the claim lets waiting transfers of the same key look again.
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.inner
            .state
            .lock()
            .expect("dedup")
            .in_flight
            .remove(&self.key);
        self.inner.done.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rc(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn a_transfer_sent_again_is_a_duplicate_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let id = "c=US;a= ;p=ExchangeORG;18F00A1B2C3D000001";
        let r = rc(&["c=US;a= ;p=ExchangeORG;o=SiteB;s=Two;g=User"]);
        {
            let d = Dedup::open(dir.path(), Duration::ZERO).unwrap();
            assert_eq!(d.retention(), MIN_RETENTION);
            let Begin::New(claim, fresh) = d.begin("ServerA", id, &r).await else {
                panic!("new")
            };
            assert_eq!(fresh, vec![0]);
            claim.commit(&r).unwrap();
            assert!(matches!(d.begin("ServerA", id, &r).await, Begin::Duplicate));
            // Another sending MTA with the same identifier is not the same transfer.
            assert!(matches!(d.begin("ServerC", id, &r).await, Begin::New(..)));
        }
        // After a restart (the file read again) it is still known.
        let d = Dedup::open(dir.path(), Duration::ZERO).unwrap();
        assert!(matches!(d.begin("ServerA", id, &r).await, Begin::Duplicate));
        // A recipient not accepted before goes through, alone.
        let more = rc(&[
            "c=US;a= ;p=ExchangeORG;o=SiteB;s=Two;g=User",
            "c=US;a= ;p=ExchangeORG;o=SiteB;s=Three",
        ]);
        let Begin::New(claim, fresh) = d.begin("ServerA", id, &more).await else {
            panic!("new")
        };
        assert_eq!(fresh, vec![1]);
        drop(claim);
    }

    #[tokio::test]
    async fn a_recorded_line_reaches_the_disk_at_sync_and_adopted_ones_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let r = rc(&["x"]);
        let d = Dedup::open(dir.path(), Duration::ZERO).unwrap();
        let Begin::New(claim, _) = d.begin("A", "deferred", &r).await else {
            panic!()
        };
        claim.record(&r);
        // Known at once, on disk only after sync.
        assert!(matches!(d.begin("A", "deferred", &r).await, Begin::Duplicate));
        assert!(!std::fs::read_to_string(d.path()).unwrap().contains("deferred"));
        d.sync_async().await.unwrap();
        assert!(std::fs::read_to_string(d.path()).unwrap().contains("deferred"));
        // Lost before the sync (a crash): adopted back from its queue file.
        drop(d);
        std::fs::write(dir.path().join("accepted-ids.jsonl"), "").unwrap();
        let d = Dedup::open(dir.path(), Duration::ZERO).unwrap();
        assert!(d.is_empty());
        d.adopt("A", "deferred", &r, now_ms());
        // One older than the retention is not.
        d.adopt("A", "stale", &r, now_ms() - 2 * MIN_RETENTION.as_millis() as i64);
        assert_eq!(d.len(), 1);
        d.sync().unwrap();
        drop(d);
        let d = Dedup::open(dir.path(), Duration::ZERO).unwrap();
        assert!(matches!(d.begin("A", "deferred", &r).await, Begin::Duplicate));
        assert!(matches!(d.begin("A", "stale", &r).await, Begin::New(..)));
    }

    #[tokio::test]
    async fn torn_lines_and_expired_entries_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let old = chrono::Utc::now().timestamp_millis() - 2 * 3600 * 1000;
        let live = chrono::Utc::now().timestamp_millis();
        let text = format!(
            "{{\"t\":{old},\"mta\":\"A\",\"id\":\"old\",\"rcpts\":[\"x\"]}}\n{{\"t\":{live},\"mta\":\"A\",\"id\":\"live\",\"rcpts\":[\"x\"]}}\n{{\"t\":{live},\"mta\":\"A\",\"id\":\"to"
        );
        std::fs::write(dir.path().join("accepted-ids.jsonl"), text).unwrap();
        let d = Dedup::open(dir.path(), Duration::ZERO).unwrap();
        assert_eq!(d.len(), 1);
        assert!(matches!(
            d.begin("A", "live", &rc(&["x"])).await,
            Begin::Duplicate
        ));
        assert!(matches!(
            d.begin("A", "old", &rc(&["x"])).await,
            Begin::New(..)
        ));
        let on_disk = std::fs::read_to_string(d.path()).unwrap();
        assert_eq!(on_disk.lines().count(), 1, "{on_disk}");
    }

    #[tokio::test]
    async fn a_second_transfer_waits_for_the_first_to_commit() {
        let dir = tempfile::tempdir().unwrap();
        let d = Arc::new(Dedup::open(dir.path(), Duration::ZERO).unwrap());
        let r = rc(&["x"]);
        let Begin::New(claim, _) = d.begin("A", "id", &r).await else {
            panic!()
        };
        let (d2, r2) = (d.clone(), r.clone());
        let t =
            tokio::spawn(async move { matches!(d2.begin("A", "id", &r2).await, Begin::Duplicate) });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!t.is_finished(), "the second transfer waits");
        let r3 = r.clone();
        tokio::task::spawn_blocking(move || claim.commit(&r3))
            .await
            .unwrap()
            .unwrap();
        assert!(t.await.unwrap(), "and then finds the first one's record");
        // A claim given up without a commit (the store failed) lets the next one try.
        let Begin::New(claim, _) = d.begin("A", "other", &r).await else {
            panic!()
        };
        let d3 = d.clone();
        let t = tokio::spawn(async move {
            matches!(d3.begin("A", "other", &rc(&["x"])).await, Begin::New(..))
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(claim);
        assert!(t.await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn group_commit_from_many_tasks() {
        let dir = tempfile::tempdir().unwrap();
        let d = Arc::new(Dedup::open(dir.path(), Duration::ZERO).unwrap());
        let tasks: Vec<_> = (0..8)
            .map(|n| {
                let d = d.clone();
                tokio::spawn(async move {
                    for i in 0..50 {
                        let id = format!("{n}-{i}");
                        let Begin::New(c, _) = d.begin("A", &id, &rc(&["x"])).await else {
                            panic!()
                        };
                        tokio::task::spawn_blocking(move || c.commit(&rc(&["x"])))
                            .await
                            .unwrap()
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(d.len(), 400);
        drop(d);
        let d = Dedup::open(dir.path(), Duration::ZERO).unwrap();
        assert_eq!(d.len(), 400);
    }

    #[tokio::test]
    async fn the_file_is_compacted_when_it_grows() {
        let dir = tempfile::tempdir().unwrap();
        let d = Dedup::open(dir.path(), Duration::ZERO).unwrap();
        for i in 0..1100 {
            // The same message re-accepted for ever new recipients: one entry, many lines.
            let r = rc(&[&format!("r{i}")]);
            let Begin::New(c, _) = d.begin("A", "id", &r).await else {
                panic!()
            };
            c.commit(&r).unwrap();
        }
        let lines = std::fs::read_to_string(d.path()).unwrap().lines().count();
        assert!(lines < 1100, "{lines} lines");
        drop(d);
        let d = Dedup::open(dir.path(), Duration::ZERO).unwrap();
        assert_eq!(d.len(), 1);
        assert!(matches!(
            d.begin("A", "id", &rc(&["r0", "r1099"])).await,
            Begin::Duplicate
        ));
    }

    #[test]
    fn keys_keep_the_mta_and_the_identifier_apart() {
        for (mta, id) in [
            ("A", "c=US;a= ;p=P;1"),
            ("", "x"),
            ("1:A", "B"),
            ("1", ":AB"),
            ("Ä", "é:1"),
            ("", ""),
        ] {
            assert_eq!(split_key(&key(mta, id)), (mta, id));
        }
        assert_ne!(key("A", "B1"), key("AB", "1"));
        assert_ne!(key("1:A", "B"), key("1", ":AB"));
    }

    #[test]
    fn an_entry_keeps_its_recipients_sorted_and_once() {
        let mut e = Entry::default();
        e.merge(&["c", "a", "b", "a"]);
        e.merge(&rc(&["b", "d"]));
        assert_eq!(
            e.rcpts.iter().map(|r| &**r).collect::<Vec<_>>(),
            ["a", "b", "c", "d"]
        );
        assert!(e.contains("c") && !e.contains("e"));
    }

    #[tokio::test]
    async fn lines_on_disk_keep_their_fields() {
        let dir = tempfile::tempdir().unwrap();
        let d = Dedup::open(dir.path(), Duration::ZERO).unwrap();
        let r = rc(&["c=US;a= ;p=P;o=B;s=Two", "c=US;a= ;p=P;o=B;s=One"]);
        let Begin::New(c, _) = d.begin("Server:A", "c=US;a= ;p=P;42", &r).await else {
            panic!()
        };
        c.commit(&r).unwrap();
        let text = std::fs::read_to_string(d.path()).unwrap();
        let l: Line = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(
            (l.mta.as_str(), l.id.as_str(), l.rcpts),
            ("Server:A", "c=US;a= ;p=P;42", r)
        );
    }

    #[test]
    fn past_the_cap_the_oldest_go_down_to_nine_tenths() {
        let now = now_ms();
        let mut st = State::default();
        for i in 0..=MAX_ENTRIES as i64 {
            st.entries.insert(key("A", &i.to_string()), Entry { t: now - i, rcpts: Vec::new() });
        }
        trim_entries(&mut st, MIN_RETENTION);
        assert_eq!(st.entries.len(), KEEP_AFTER_TRIM);
        // The newest stay, the oldest went.
        assert!(st.entries.contains_key(&key("A", "0")));
        assert!(st.entries.contains_key(&key("A", &(KEEP_AFTER_TRIM as i64 - 1).to_string())));
        assert!(!st.entries.contains_key(&key("A", &(KEEP_AFTER_TRIM as i64).to_string())));
    }

    #[test]
    fn a_file_past_the_cap_is_written_again_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let now = now_ms();
        let mut text = Vec::new();
        for i in 0..MAX_ENTRIES as i64 + 10 {
            let id = i.to_string();
            LineRef { t: now - i, mta: "A", id: &id, rcpts: &[] as &[String] }.write_json(&mut text);
            text.push(b'\n');
        }
        std::fs::write(dir.path().join("accepted-ids.jsonl"), &text).unwrap();
        let d = Dedup::open(dir.path(), MIN_RETENTION).unwrap();
        assert_eq!(d.len(), KEEP_AFTER_TRIM);
        let on_disk = std::fs::read_to_string(d.path()).unwrap();
        assert_eq!(on_disk.lines().count(), KEEP_AFTER_TRIM);
        assert!(on_disk.contains("\"id\":\"0\""));
        assert!(!on_disk.contains(&format!("\"id\":\"{}\"", KEEP_AFTER_TRIM)));
    }

    /// What serde_json writes for a line's fields, which [`LineRef::write_json`] mirrors.
    #[derive(serde::Serialize)]
    struct SerdeLine<'a> {
        t: i64,
        mta: &'a str,
        id: &'a str,
        rcpts: &'a [String],
    }

    proptest::proptest! {
        #[test]
        fn a_line_is_written_as_serde_json_writes_it(
            t in proptest::num::i64::ANY,
            mta in "(\\PC|[\"\\\\\u{0}-\u{1f}\u{7f}])*",
            id in "(\\PC|[\"\\\\\u{0}-\u{1f}])*",
            rcpts in proptest::collection::vec("(\\PC|[\"\\\\\n\t])*", 0..4),
        ) {
            let mut ours = Vec::new();
            LineRef { t, mta: &mta, id: &id, rcpts: &rcpts }.write_json(&mut ours);
            let theirs = serde_json::to_vec(&SerdeLine { t, mta: &mta, id: &id, rcpts: &rcpts }).unwrap();
            proptest::prop_assert_eq!(&ours, &theirs);
            let back: Line = serde_json::from_slice(&ours).unwrap();
            proptest::prop_assert_eq!((back.t, back.mta, back.id, back.rcpts), (t, mta, id, rcpts));
        }
    }
}
