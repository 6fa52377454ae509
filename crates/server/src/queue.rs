//! The durable store-and-forward queue (DESIGN §3: "the message is committed to disk (fsync)
//! before 250; an accepted message is never lost").
//!
//! Layout under `<data_dir>/queue/`:
//! - `<id>.msg` — one accepted message: a first line `MTALAB-Q2 <length> <crc32> <envelope
//!   JSON>\n` (length and CRC-32 of what follows, in decimal and 8 hex digits), then the message
//!   octets exactly as accepted (Received: header included). An empty `<id>.msg` is a *slot*:
//!   a file created and made durable ahead of time, waiting for a message (see below).
//!   Files with the older header `MTALAB-Q1 <envelope JSON>\n` (no length, no CRC) are read too.
//! - `<id>.log` — append-only JSON lines recording per-recipient outcomes and attempts.
//! - `tmp/<id>` — a message being written when no slot was ready; removed at start.
//! - `torn/<id>.msg` — a slot whose write a crash interrupted (length or CRC wrong); it was
//!   never acknowledged, so it is set aside at start, not delivered.
//!
//! Commit protocol. A message is durable once its file's data and its directory entry are on
//! disk. The directory entry is the expensive part (a second journal commit per message), so
//! a background thread keeps [`SLOTS_READY`] slots: it creates empty `<id>.msg` files and
//! fsyncs the queue directory once per batch. [`Queue::new_id`] hands out a slot's id;
//! [`Queue::commit`] writes the message into that file and fdatasyncs it — the entry is
//! already durable, and fdatasync(2) writes the file size with the data (POSIX: the metadata
//! needed to read the data back) — and only then is 250 sent. When no slot is ready, commit
//! falls back to `tmp/<id>`, fsync, rename to `<id>.msg`, fsync of the queue directory;
//! directory fsyncs of concurrent commits are coalesced (one fsync covers every rename that
//! finished before it started). Each log line is fsynced before the outcome it records is
//! acted on. After a crash, [`Queue::load`] rebuilds every pending message from the `.msg` and
//! `.log` files; a recipient whose delivery was in flight is delivered again (at most a
//! duplicate, never a loss). One data directory belongs to one server process.

use std::collections::{HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

const MAGIC_V1: &str = "MTALAB-Q1 ";
const MAGIC: &str = "MTALAB-Q2 ";

/// Slots the background thread keeps ready (empty, durable `<id>.msg` files).
pub const SLOTS_READY: usize = 64;
/// The thread refills when fewer than this many are left.
const SLOTS_LOW: usize = 24;

/// Envelope of a queued message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Envelope {
    /// Queue id (also the file stem).
    pub id: String,
    /// Reverse path; empty = null sender `<>` (DSNs).
    pub from: String,
    /// Forward paths, as accepted.
    pub rcpts: Vec<String>,
    /// When it was accepted.
    pub received: DateTime<Utc>,
    /// Client address, or "local" for messages the server made itself.
    pub peer: String,
    /// HELO/EHLO name.
    pub helo: String,
    /// True when this message is a DSN made by this server.
    #[serde(default)]
    pub dsn: bool,
    /// Set when the message came in over X.400: what a non-delivery report needs.
    #[serde(default)]
    pub x400: Option<X400Origin>,
    /// True when the data is an MTS-APDU (a P1 report this MTA generated) to transfer as is;
    /// its recipient is `x400:<O/R mnemonic>`.
    #[serde(default)]
    pub p1_apdu: bool,
}

/// Where an X.400 message came from (for reports about it).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct X400Origin {
    /// Originator O/R address (mnemonic).
    pub originator: String,
    /// MTS identifier: global domain identifier (mnemonic) and local identifier.
    pub mts_gdi: String,
    /// Local identifier part of the MTS identifier.
    pub mts_local: String,
    /// Recipient O/R addresses (mnemonic), same order as the envelope's recipients.
    pub recipients: Vec<String>,
}

/// Final state of a recipient, recorded in the log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "result", rename_all = "lowercase")]
pub enum Outcome {
    /// Delivered locally or accepted by the next hop.
    Delivered {
        /// Where it went (mailbox or host).
        to: String,
    },
    /// Failed permanently (or expired): a DSN is owed to the sender.
    Failed {
        /// Reply code, or 0 for a local failure.
        code: u16,
        /// RFC 3463 status, e.g. "5.1.1".
        status: String,
        /// Human-readable diagnostic.
        diagnostic: String,
        /// Remote MTA that refused it, if any.
        #[serde(default)]
        remote: Option<String>,
    },
}

/// One line of a `.log` file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum LogLine {
    /// A recipient reached a final state.
    Rcpt {
        /// Index into [`Envelope::rcpts`].
        index: usize,
        /// The outcome.
        #[serde(flatten)]
        outcome: Outcome,
    },
    /// An attempt ended with recipients still pending.
    Attempt {
        /// Attempt number, from 1.
        n: u32,
        /// Last transient error.
        error: String,
        /// The message's retry count per X.400 connector (by connector name) after this
        /// attempt, so Max open retries and Max transfer retries hold across a restart.
        #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
        connector_retries: std::collections::BTreeMap<String, u32>,
    },
    /// The DSN for the failed recipients has been queued.
    DsnQueued {
        /// Queue id of the DSN.
        dsn_id: String,
    },
}

/// A message rebuilt from disk.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Its envelope.
    pub envelope: Envelope,
    /// Its log lines, in order.
    pub log: Vec<LogLine>,
}

/// Coalesces fsyncs of one directory across threads.
struct DirSync {
    dir: PathBuf,
    state: Mutex<SyncState>,
    cv: Condvar,
}

#[derive(Default)]
struct SyncState {
    requested: u64,
    done: u64,
    running: bool,
}

impl DirSync {
    fn sync(&self) -> io::Result<()> {
        let mut s = self.state.lock().expect("dirsync lock");
        s.requested += 1;
        let mine = s.requested;
        loop {
            if s.done >= mine {
                return Ok(());
            }
            if !s.running {
                s.running = true;
                let target = s.requested;
                drop(s);
                let res = File::open(&self.dir).and_then(|d| d.sync_all());
                s = self.state.lock().expect("dirsync lock");
                s.running = false;
                if res.is_ok() {
                    s.done = s.done.max(target);
                }
                self.cv.notify_all();
                res?;
                continue;
            }
            s = self.cv.wait(s).expect("dirsync wait");
        }
    }
}

/// What the queue and its slot thread share.
struct Shared {
    dir: PathBuf,
    dirsync: DirSync,
    seq: AtomicU64,
    epoch: String,
    slots: Mutex<Slots>,
    /// Wakes the slot thread (refill wanted, or stop).
    refill: Condvar,
}

#[derive(Default)]
struct Slots {
    /// Durable empty `<id>.msg` files, oldest id first.
    ready: VecDeque<String>,
    /// Ids handed out by `new_id` whose file is a slot, not yet committed.
    handed: HashSet<String>,
    stop: bool,
}

impl Shared {
    fn fresh_id(&self) -> String {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        format!("{}{:06X}", self.epoch, n)
    }

    fn msg_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.msg"))
    }

    /// The slot thread: keep [`SLOTS_READY`] slots, one directory fsync per batch.
    fn run_slots(&self) {
        let mut s = self.slots.lock().expect("slots lock");
        loop {
            while !s.stop && s.ready.len() >= SLOTS_LOW {
                s = self.refill.wait(s).expect("slots wait");
            }
            if s.stop {
                return;
            }
            let want = SLOTS_READY - s.ready.len();
            drop(s);
            let mut made = Vec::with_capacity(want);
            for _ in 0..want {
                let id = self.fresh_id();
                match OpenOptions::new().write(true).create_new(true).open(self.msg_path(&id)) {
                    Ok(_) => made.push(id),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot create queue slot");
                        break;
                    }
                }
            }
            let synced = self.dirsync.sync();
            s = self.slots.lock().expect("slots lock");
            match synced {
                Ok(()) => s.ready.extend(made),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot fsync the queue directory for new slots");
                    for id in made {
                        let _ = fs::remove_file(self.msg_path(&id));
                    }
                }
            }
            if s.ready.len() < SLOTS_LOW && !s.stop {
                // Could not make enough (disk full?): commits use the fallback path; try later.
                let (g, _) = self.refill.wait_timeout(s, std::time::Duration::from_secs(1)).expect("slots wait");
                s = g;
            }
        }
    }
}

/// The queue directory. All methods block (call them from `spawn_blocking`).
pub struct Queue {
    shared: Arc<Shared>,
    tmp: PathBuf,
    slot_thread: Option<JoinHandle<()>>,
}

impl Queue {
    /// Open `<data_dir>/queue`, creating it; clears `tmp/` (messages never acknowledged),
    /// takes the empty `<id>.msg` files left by an earlier run as slots, and starts the slot
    /// thread.
    pub fn open(data_dir: &Path) -> io::Result<Queue> {
        let dir = data_dir.join("queue");
        let tmp = dir.join("tmp");
        fs::create_dir_all(&tmp)?;
        for e in fs::read_dir(&tmp)? {
            let _ = fs::remove_file(e?.path());
        }
        let mut leftover = Vec::new();
        for e in fs::read_dir(&dir)? {
            let e = e?;
            let path = e.path();
            if path.extension().is_some_and(|x| x == "msg")
                && e.metadata()?.len() == 0
                && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
            {
                leftover.push(stem.to_string());
            }
        }
        leftover.sort();
        let epoch = format!("{:X}", Utc::now().timestamp_micros());
        let shared = Arc::new(Shared {
            dirsync: DirSync {
                dir: dir.clone(),
                state: Mutex::new(SyncState::default()),
                cv: Condvar::new(),
            },
            dir,
            seq: AtomicU64::new(0),
            epoch,
            slots: Mutex::new(Slots::default()),
            refill: Condvar::new(),
        });
        if !leftover.is_empty() {
            // They may not have reached the disk before the crash that left them.
            shared.dirsync.sync()?;
            shared.slots.lock().expect("slots lock").ready.extend(leftover);
        }
        let sh = shared.clone();
        let slot_thread = std::thread::Builder::new().name("queue-slots".into()).spawn(move || sh.run_slots())?;
        Ok(Queue {
            shared,
            tmp,
            slot_thread: Some(slot_thread),
        })
    }

    /// A fresh queue id, unique within this data directory: a ready slot's id when there is
    /// one (then [`Queue::commit`] needs no directory fsync), else a new one.
    pub fn new_id(&self) -> String {
        let mut s = self.shared.slots.lock().expect("slots lock");
        let id = s.ready.pop_front();
        if s.ready.len() < SLOTS_LOW {
            self.shared.refill.notify_one();
        }
        match id {
            Some(id) => {
                s.handed.insert(id.clone());
                id
            }
            None => {
                drop(s);
                self.shared.fresh_id()
            }
        }
    }

    /// An identifier unique within this data directory like [`Queue::new_id`]'s, for what names
    /// no queue file (a report's MTS identifier): it never takes a slot, which would otherwise
    /// stay handed out and empty until the next start.
    pub fn unique_id(&self) -> String {
        self.shared.fresh_id()
    }

    /// Durably store a message. Returns only after the file and the directory entry are on
    /// disk: into its slot with one fdatasync when `env.id` came from a slot, else through
    /// `tmp/`, rename and a directory fsync. On error nothing of the message is left behind.
    pub fn commit(&self, env: &Envelope, data: &[u8]) -> io::Result<()> {
        let buf = encode(env, data)?;
        let path = self.shared.msg_path(&env.id);
        let slot = self.shared.slots.lock().expect("slots lock").handed.remove(&env.id);
        if slot {
            let res = OpenOptions::new().write(true).open(&path).and_then(|mut f| {
                f.write_all(&buf)?;
                f.sync_data()
            });
            if res.is_err() {
                let _ = fs::remove_file(&path);
            }
            return res;
        }
        let tmp = self.tmp.join(&env.id);
        let res = File::create(&tmp).and_then(|mut f| {
            f.write_all(&buf)?;
            f.sync_all()
        });
        if let Err(e) = res {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        fs::rename(&tmp, &path)?;
        self.shared.dirsync.sync()
    }

    /// Append a log line for a message and fsync it.
    pub fn record(&self, id: &str, line: &LogLine) -> io::Result<()> {
        let path = self.shared.dir.join(format!("{id}.log"));
        let created = !path.exists();
        let mut f = OpenOptions::new().create(true).append(true).open(&path)?;
        let mut l = serde_json::to_vec(line).map_err(io::Error::other)?;
        l.push(b'\n');
        f.write_all(&l)?;
        f.sync_data()?;
        if created {
            self.shared.dirsync.sync()?;
        }
        Ok(())
    }

    /// Read a queued message's octets (without the envelope line).
    pub fn read_data(&self, id: &str) -> io::Result<Vec<u8>> {
        let mut f = BufReader::new(File::open(self.shared.msg_path(id))?);
        let mut head = Vec::new();
        f.read_until(b'\n', &mut head)?;
        let mut data = Vec::new();
        f.read_to_end(&mut data)?;
        Ok(data)
    }

    /// Remove a message whose recipients all reached a final state.
    pub fn remove(&self, id: &str) -> io::Result<()> {
        let _ = fs::remove_file(self.shared.dir.join(format!("{id}.log")));
        fs::remove_file(self.shared.msg_path(id))
    }

    /// Every message in the queue with its log (at start-up, after a crash). Slots (empty
    /// files) are skipped; a file whose length or CRC does not match its header was torn by a
    /// crash before it was acknowledged and is moved to `torn/`.
    pub fn load(&self) -> io::Result<Vec<Loaded>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.shared.dir)? {
            let path = e?.path();
            if path.extension().is_none_or(|x| x != "msg") {
                continue;
            }
            let raw = fs::read(&path)?;
            if raw.is_empty() {
                continue;
            }
            let envelope = match decode(&raw) {
                Ok(e) => e,
                Err(Bad::Torn(why)) => {
                    let torn = self.shared.dir.join("torn");
                    fs::create_dir_all(&torn)?;
                    let to = torn.join(path.file_name().unwrap_or_default());
                    tracing::error!(path = %path.display(), to = %to.display(), why, "torn queue file (never acknowledged), set aside");
                    fs::rename(&path, &to)?;
                    continue;
                }
                Err(Bad::Header(why)) => {
                    tracing::error!(path = %path.display(), why, "bad queue header, left in place");
                    continue;
                }
            };
            let mut log = Vec::new();
            if let Ok(lf) = File::open(path.with_extension("log")) {
                for line in BufReader::new(lf).lines() {
                    let line = line?;
                    // A torn last line (crash mid-append) records nothing: that outcome is redone.
                    if let Ok(l) = serde_json::from_str::<LogLine>(&line) {
                        log.push(l);
                    }
                }
            }
            out.push(Loaded { envelope, log });
        }
        out.sort_by_key(|l| l.envelope.received);
        Ok(out)
    }

    /// Move a message aside to `<data_dir>/badmail/` (a DSN that cannot be delivered).
    pub fn set_aside(&self, id: &str) -> io::Result<PathBuf> {
        let bad = self.shared.dir.parent().unwrap_or(&self.shared.dir).join("badmail");
        fs::create_dir_all(&bad)?;
        let to = bad.join(format!("{id}.eml"));
        fs::write(&to, self.read_data(id)?)?;
        self.remove(id)?;
        Ok(to)
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        self.shared.slots.lock().expect("slots lock").stop = true;
        self.shared.refill.notify_all();
        if let Some(t) = self.slot_thread.take() {
            let _ = t.join();
        }
    }
}

/// The file image of a message: header line, then the data.
fn encode(env: &Envelope, data: &[u8]) -> io::Result<Vec<u8>> {
    let json = serde_json::to_string(env).map_err(io::Error::other)?;
    let head = format!("{MAGIC}{} {:08x} {json}\n", data.len(), crc32fast::hash(data));
    let mut buf = Vec::with_capacity(head.len() + data.len());
    buf.extend_from_slice(head.as_bytes());
    buf.extend_from_slice(data);
    Ok(buf)
}

/// Why a queue file is not loaded.
enum Bad {
    /// Written only in part: never acknowledged.
    Torn(&'static str),
    /// Not a queue file this version understands.
    Header(String),
}

/// Check a file image and return its envelope.
fn decode(raw: &[u8]) -> Result<Envelope, Bad> {
    let Some(nl) = raw.iter().position(|&b| b == b'\n') else {
        return Err(if MAGIC.as_bytes().starts_with(&raw[..raw.len().min(MAGIC.len())]) || raw.starts_with(MAGIC.as_bytes()) {
            Bad::Torn("no complete header line")
        } else {
            Bad::Header("no header line".into())
        });
    };
    let head = std::str::from_utf8(&raw[..nl]).map_err(|_| Bad::Header("header is not UTF-8".into()))?;
    let data = &raw[nl + 1..];
    let json = if let Some(rest) = head.strip_prefix(MAGIC) {
        let mut it = rest.splitn(3, ' ');
        let (Some(len), Some(crc), Some(json)) = (it.next(), it.next(), it.next()) else {
            return Err(Bad::Torn("short header"));
        };
        let len: usize = len.parse().map_err(|_| Bad::Torn("bad length"))?;
        let crc = u32::from_str_radix(crc, 16).map_err(|_| Bad::Torn("bad CRC"))?;
        if data.len() != len {
            return Err(Bad::Torn("length differs from the header"));
        }
        if crc32fast::hash(data) != crc {
            return Err(Bad::Torn("CRC differs from the header"));
        }
        json
    } else if let Some(json) = head.strip_prefix(MAGIC_V1) {
        json
    } else {
        return Err(Bad::Header("unknown header".into()));
    };
    serde_json::from_str(json.trim_end()).map_err(|e| Bad::Header(format!("envelope JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(id: &str) -> Envelope {
        Envelope {
            id: id.into(),
            from: "a@x".into(),
            rcpts: vec!["b@y".into(), "c@y".into()],
            received: Utc::now(),
            peer: "127.0.0.1".into(),
            helo: "x".into(),
            dsn: false,
            x400: None,
            p1_apdu: false,
        }
    }

    #[test]
    fn commit_load_record_remove() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path()).unwrap();
        let id = q.new_id();
        q.commit(&env(&id), b"Subject: x\r\n\r\nbody\r\n").unwrap();
        q.record(
            &id,
            &LogLine::Rcpt {
                index: 0,
                outcome: Outcome::Delivered { to: "mbox".into() },
            },
        )
        .unwrap();
        drop(q);
        let q = Queue::open(dir.path()).unwrap();
        let all = q.load().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].envelope.rcpts.len(), 2);
        assert_eq!(all[0].log.len(), 1);
        assert_eq!(q.read_data(&id).unwrap(), b"Subject: x\r\n\r\nbody\r\n");
        q.remove(&id).unwrap();
        assert!(q.load().unwrap().is_empty());
    }

    #[test]
    fn torn_log_line_is_ignored_and_tmp_is_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path()).unwrap();
        let id = q.new_id();
        q.commit(&env(&id), b"x\r\n").unwrap();
        fs::write(dir.path().join("queue").join(format!("{id}.log")), b"{\"kind\":\"rc").unwrap();
        fs::write(dir.path().join("queue/tmp/zzz"), b"half").unwrap();
        drop(q);
        let q = Queue::open(dir.path()).unwrap();
        assert!(!dir.path().join("queue/tmp/zzz").exists());
        let all = q.load().unwrap();
        assert_eq!(all[0].log.len(), 0);
    }

    #[test]
    fn concurrent_commits_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let q = std::sync::Arc::new(Queue::open(dir.path()).unwrap());
        let hs: Vec<_> = (0..8)
            .map(|_| {
                let q = q.clone();
                std::thread::spawn(move || {
                    for _ in 0..10 {
                        let id = q.new_id();
                        q.commit(&env(&id), b"m\r\n").unwrap();
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(q.load().unwrap().len(), 80);
    }

    /// Wait until the slot thread has made its first batch.
    fn ready(q: &Queue) {
        for _ in 0..500 {
            if q.shared.slots.lock().unwrap().ready.len() >= SLOTS_LOW {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("no slots made");
    }

    fn msg_files(dir: &Path) -> Vec<(String, u64)> {
        let mut v: Vec<_> = fs::read_dir(dir.join("queue"))
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.path().extension().is_some_and(|x| x == "msg"))
            .map(|e| (e.path().file_stem().unwrap().to_string_lossy().into_owned(), e.metadata().unwrap().len()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn commit_into_a_slot_and_reuse_leftover_slots() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path()).unwrap();
        ready(&q);
        let id = q.new_id();
        let path = dir.path().join("queue").join(format!("{id}.msg"));
        assert_eq!(fs::metadata(&path).unwrap().len(), 0, "the slot exists, empty, before the commit");
        q.commit(&env(&id), b"Subject: s\r\n\r\nslot\r\n").unwrap();
        assert!(fs::read(&path).unwrap().starts_with(MAGIC.as_bytes()));
        let all = q.load().unwrap();
        assert_eq!(all.len(), 1, "empty slots are not messages");
        assert_eq!(all[0].envelope.id, id);
        assert_eq!(q.read_data(&id).unwrap(), b"Subject: s\r\n\r\nslot\r\n");
        drop(q);
        let empty: Vec<String> = msg_files(dir.path()).into_iter().filter(|(_, l)| *l == 0).map(|(n, _)| n).collect();
        assert!(empty.len() >= SLOTS_LOW - 1);
        // A restart hands out the slots left over before making new ones.
        let q = Queue::open(dir.path()).unwrap();
        let next = q.new_id();
        assert_eq!(next, empty[0]);
        q.commit(&env(&next), b"again\r\n").unwrap();
        assert_eq!(q.load().unwrap().len(), 2);
    }

    #[test]
    fn commit_without_a_slot_uses_rename() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path()).unwrap();
        ready(&q);
        let before = q.shared.slots.lock().unwrap().ready.len();
        let id = q.unique_id();
        assert_eq!(q.shared.slots.lock().unwrap().ready.len(), before, "unique_id takes no slot");
        assert!(!dir.path().join("queue").join(format!("{id}.msg")).exists());
        q.commit(&env(&id), b"fallback\r\n").unwrap();
        assert_eq!(q.read_data(&id).unwrap(), b"fallback\r\n");
        assert!(fs::read_dir(dir.path().join("queue/tmp")).unwrap().next().is_none());
    }

    #[test]
    fn torn_slot_is_set_aside_and_old_header_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path()).unwrap();
        let full = encode(&env("TORN1"), &[b'x'; 5000]).unwrap();
        let qd = dir.path().join("queue");
        fs::write(qd.join("TORN1.msg"), &full[..full.len() - 1000]).unwrap();
        let mut flipped = encode(&env("TORN2"), b"data\r\n").unwrap();
        *flipped.last_mut().unwrap() = b'!';
        fs::write(qd.join("TORN2.msg"), &flipped).unwrap();
        fs::write(qd.join("TORN3.msg"), &full[..4]).unwrap();
        let v1 = format!("{MAGIC_V1}{}\nold format\r\n", serde_json::to_string(&env("OLD1")).unwrap());
        fs::write(qd.join("OLD1.msg"), v1).unwrap();
        let all = q.load().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].envelope.id, "OLD1");
        assert_eq!(q.read_data("OLD1").unwrap(), b"old format\r\n");
        for t in ["TORN1", "TORN2", "TORN3"] {
            assert!(qd.join("torn").join(format!("{t}.msg")).exists(), "{t} set aside");
            assert!(!qd.join(format!("{t}.msg")).exists());
        }
    }
}
