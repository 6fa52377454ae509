//! The durable store-and-forward queue (DESIGN §3: "the message is committed to disk (fsync)
//! before 250; an accepted message is never lost").
//!
//! Layout under `<data_dir>/queue/`:
//! - `<id>.msg` — one accepted message: a first line `MTALAB-Q2 <length> <crc32> <envelope
//!   JSON>\n` (length and CRC-32 of what follows, in decimal and 8 hex digits), then the message
//!   octets exactly as accepted (Received: header included), then nothing but zero octets up to
//!   the end of the file (what is left of the slot it was written into). A `<id>.msg` that
//!   holds only zero octets (or none) is a *slot*: a file created and made durable ahead of
//!   time, waiting for a message (see below). Files with the older header `MTALAB-Q1 <envelope
//!   JSON>\n` (no length, no CRC) are read too.
//! - `<id>.log` — append-only JSON lines recording per-recipient outcomes and attempts.
//! - `tmp/<id>` — a message being written when no slot was ready; removed at start.
//! - `torn/<id>.msg` — a slot whose write a crash interrupted (length or CRC wrong, or the
//!   header not written); it was never acknowledged, so it is set aside at start, not delivered.
//!
//! Commit protocol. A message is durable once its file's data and its directory entry are on
//! disk. The directory entry is the expensive part (a second journal commit per message), and
//! so is a change of the file's size or of its blocks (the file system's journal commits it
//! with the data). So a background thread keeps [`SLOTS_READY`] slots: it creates `<id>.msg`
//! files filled with zero octets (4 KiB to [`SLOT_SIZE_MAX`], as large as the largest message
//! committed since its last batch, 8 KiB at first; empty on tmpfs, where there is no journal
//! and zeros would only cost writes), and puts each batch on disk with one `syncfs(2)` and
//! one fsync of the queue directory. [`Queue::new_id`] hands out a slot's id;
//! [`Queue::commit`] writes the message over the zeros at the start of that file and
//! fdatasyncs it — the entry, the size and the blocks are already durable, so fdatasync(2)
//! writes only the data and flushes the disk's cache, with no journal commit (a message larger
//! than its slot grows the file, and then fdatasync writes the new size with the data: POSIX,
//! the metadata needed to read the data back) — and only then is 250 sent. When no slot is
//! ready, commit falls back to `tmp/<id>`, fsync, rename to `<id>.msg`, fsync of the queue
//! directory; directory fsyncs of concurrent commits are coalesced (one fsync covers every
//! rename that finished before it started). Each log line is fsynced before the outcome it
//! records is acted on. After a crash, [`Queue::load`] rebuilds every pending message from the
//! `.msg` and `.log` files; a recipient whose delivery was in flight is delivered again (at
//! most a duplicate, never a loss). One data directory belongs to one server process.

use std::collections::{HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

const MAGIC_V1: &str = "MTALAB-Q1 ";
const MAGIC: &str = "MTALAB-Q2 ";

/// Slots the background thread keeps ready (zero-filled, durable `<id>.msg` files).
pub const SLOTS_READY: usize = 256;
/// The thread refills when fewer than this many are left: a batch (at least
/// `SLOTS_READY - SLOTS_LOW` files, one `syncfs`) takes a few journal commits' time, and the
/// slots left must last that long under load (at 2000 commits/s, 160 slots last 80 ms).
const SLOTS_LOW: usize = 160;
/// Size of the slots made before any message was committed, in octets.
const SLOT_SIZE_FIRST: usize = 8 * 1024;
/// Largest slot, in octets: a larger message grows its file (one journal commit more).
pub const SLOT_SIZE_MAX: usize = 64 * 1024;
/// Slot sizes are whole pages of this many octets.
const SLOT_PAGE: usize = 4096;

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
    /// The largest file image committed since the slot thread's last batch, in octets.
    largest_recent: AtomicUsize,
    /// Ids whose `<id>.log` may exist (written by [`Queue::record`], or found by
    /// [`Queue::load`]): most messages never get one, and [`Queue::remove`] then spares the
    /// `unlink` that would fail.
    logged: Mutex<HashSet<String>>,
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

    /// The slot thread: keep [`SLOTS_READY`] slots, one `syncfs` and one directory fsync per
    /// batch.
    fn run_slots(&self) {
        // In memory (tmpfs) a file's size and blocks cost no journal commit: no zeros there.
        let fill = !in_memory(&self.dir);
        let mut size = SLOT_SIZE_FIRST;
        let mut zeros = Vec::new();
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
            size = slot_size(size, self.largest_recent.swap(0, Ordering::Relaxed));
            zeros.resize(if fill { size } else { 0 }, 0);
            let mut made = Vec::with_capacity(want);
            let mut files = Vec::with_capacity(want);
            for _ in 0..want {
                let id = self.fresh_id();
                let path = self.msg_path(&id);
                match OpenOptions::new().write(true).create_new(true).open(&path).and_then(|mut f| f.write_all(&zeros).map(|()| f)) {
                    Ok(f) => {
                        made.push(id);
                        files.push(f);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot create queue slot");
                        let _ = fs::remove_file(&path);
                        break;
                    }
                }
            }
            let synced = sync_files(&files).and_then(|()| self.dirsync.sync());
            drop(files);
            s = self.slots.lock().expect("slots lock");
            match synced {
                Ok(()) => s.ready.extend(made),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot put new queue slots on disk");
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

/// The size of the next batch of slots: the largest file image committed since the last
/// batch (`largest`, 0 when none was), in whole [`SLOT_PAGE`]s, between one page and
/// [`SLOT_SIZE_MAX`]; `previous` when nothing was committed.
fn slot_size(previous: usize, largest: usize) -> usize {
    if largest == 0 {
        previous
    } else {
        largest.next_multiple_of(SLOT_PAGE).clamp(SLOT_PAGE, SLOT_SIZE_MAX)
    }
}

/// True when `dir` is on a file system held in memory (tmpfs), where slots are made empty:
/// zeros would cost writes and save nothing.
fn in_memory(dir: &Path) -> bool {
    #[cfg(target_os = "linux")]
    {
        // statfs(2): TMPFS_MAGIC.
        rustix::fs::statfs(dir).is_ok_and(|s| s.f_type == 0x0102_1994)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        false
    }
}

/// Put the data, sizes and blocks of newly written `files` on disk. On Linux one `syncfs(2)` of
/// their file system (one journal commit for the whole batch); elsewhere an fdatasync each.
fn sync_files(files: &[File]) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    if let Some(f) = files.first() {
        return rustix::fs::syncfs(f).map_err(io::Error::from);
    }
    files.iter().try_for_each(File::sync_data)
}

/// True when the file image `raw` is a slot: nothing but zero octets (or none).
fn is_slot(raw: &[u8]) -> bool {
    raw.iter().all(|&b| b == 0)
}

/// True when the queue file at `path` is a slot (see [`is_slot`]); reads only its first octet
/// unless that is zero.
fn is_slot_file(path: &Path) -> io::Result<bool> {
    let mut f = File::open(path)?;
    let mut first = [0u8; 1];
    if f.read(&mut first)? == 0 {
        return Ok(true);
    }
    if first[0] != 0 {
        return Ok(false);
    }
    let mut rest = Vec::new();
    f.read_to_end(&mut rest)?;
    Ok(is_slot(&rest))
}

/// True when the `.msg` file at `path` holds a message (or the start of one), false when it
/// is a slot made ahead of time: a message's file starts with its header line, a slot with a
/// zero octet (or is empty). For tools that count a queue directory's messages.
///
/// # Errors
/// The file cannot be opened or read.
pub fn holds_message(path: &Path) -> io::Result<bool> {
    let mut first = [0u8; 1];
    Ok(File::open(path)?.read(&mut first)? == 1 && first[0] != 0)
}

/// The queue directory. All methods block: the short ones (one message) are called through
/// [`crate::on_disk`], [`Queue::load`] (the whole queue, at start) through `spawn_blocking`.
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
                && is_slot_file(&path)?
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
            largest_recent: AtomicUsize::new(0),
            logged: Mutex::default(),
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
        self.shared.largest_recent.fetch_max(buf.len(), Ordering::Relaxed);
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
        // Noted before the file exists, so that a removal after any part of this removes it.
        self.shared.logged.lock().expect("logged lock").insert(id.to_string());
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

    /// Read a queued message's octets (without the envelope line and without the zero octets
    /// of its slot after it).
    pub fn read_data(&self, id: &str) -> io::Result<Vec<u8>> {
        let mut f = BufReader::new(File::open(self.shared.msg_path(id))?);
        let mut head = Vec::new();
        f.read_until(b'\n', &mut head)?;
        let mut data = Vec::new();
        match data_len(&head) {
            Some(len) => {
                data.resize(len, 0);
                f.read_exact(&mut data)?;
            }
            None => {
                f.read_to_end(&mut data)?;
            }
        }
        Ok(data)
    }

    /// Remove a message whose recipients all reached a final state.
    pub fn remove(&self, id: &str) -> io::Result<()> {
        if self.shared.logged.lock().expect("logged lock").remove(id) {
            let _ = fs::remove_file(self.shared.dir.join(format!("{id}.log")));
        }
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
            if is_slot(&raw) {
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
                if let Some(id) = path.file_stem().and_then(|s| s.to_str()) {
                    self.shared.logged.lock().expect("logged lock").insert(id.to_string());
                }
                // A torn last line (crash mid-append) or a damaged one records nothing: that
                // outcome is redone.
                crate::jsonl::for_each_line(BufReader::new(lf), crate::jsonl::MAX_LINE, |line| {
                    if let Ok(l) = serde_json::from_slice::<LogLine>(line) {
                        log.push(l);
                    }
                })?;
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

/// The fields of a `MTALAB-Q2` header line after its magic: the message length, its CRC-32
/// and the envelope JSON. The error says what is wrong (a torn header).
fn q2_fields(rest: &str) -> Result<(usize, u32, &str), &'static str> {
    let mut it = rest.splitn(3, ' ');
    let (Some(len), Some(crc), Some(json)) = (it.next(), it.next(), it.next()) else {
        return Err("short header");
    };
    let len = len.parse().map_err(|_| "bad length")?;
    let crc = u32::from_str_radix(crc, 16).map_err(|_| "bad CRC")?;
    Ok((len, crc, json))
}

/// The message length a `MTALAB-Q2` header line gives; `None` for the older header.
fn data_len(head: &[u8]) -> Option<usize> {
    let rest = std::str::from_utf8(head.strip_prefix(MAGIC.as_bytes())?).ok()?;
    q2_fields(rest).ok().map(|(len, _, _)| len)
}

/// Check a file image and return its envelope.
fn decode(raw: &[u8]) -> Result<Envelope, Bad> {
    if raw.first() == Some(&0) {
        // A slot whose later octets were written and its first not: a commit a crash cut short.
        return Err(Bad::Torn("header not written"));
    }
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
        let (len, crc, json) = q2_fields(rest).map_err(Bad::Torn)?;
        if data.len() < len {
            return Err(Bad::Torn("shorter than the header says"));
        }
        let (data, rest) = data.split_at(len);
        if !is_slot(rest) {
            return Err(Bad::Torn("octets after the message that are not its slot's zeros"));
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
    fn a_removal_takes_the_log_with_it_when_there_is_one() {
        let dir = tempfile::tempdir().unwrap();
        let qdir = dir.path().join("queue");
        let q = Queue::open(dir.path()).unwrap();
        let line = LogLine::Rcpt { index: 0, outcome: Outcome::Delivered { to: "mbox".into() } };
        let (plain, logged, older) = (q.new_id(), q.new_id(), q.new_id());
        for id in [&plain, &logged, &older] {
            q.commit(&env(id), b"x\r\n").unwrap();
        }
        q.record(&logged, &line).unwrap();
        q.record(&older, &line).unwrap();
        assert!(qdir.join(format!("{logged}.log")).exists());
        q.remove(&plain).unwrap();
        q.remove(&logged).unwrap();
        assert!(!qdir.join(format!("{plain}.msg")).exists());
        assert!(!qdir.join(format!("{logged}.msg")).exists() && !qdir.join(format!("{logged}.log")).exists());
        // A log written before a restart is found by the load and goes with its message.
        drop(q);
        let q = Queue::open(dir.path()).unwrap();
        assert_eq!(q.load().unwrap().len(), 1);
        q.remove(&older).unwrap();
        assert!(!qdir.join(format!("{older}.msg")).exists() && !qdir.join(format!("{older}.log")).exists());
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
    fn a_damaged_log_line_costs_only_its_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path()).unwrap();
        let id = q.new_id();
        q.commit(&env(&id), b"x\r\n").unwrap();
        q.record(&id, &LogLine::Rcpt { index: 0, outcome: Outcome::Delivered { to: "mbox".into() } }).unwrap();
        // Octets that are not UTF-8 (a damaged block), then an outcome recorded after them.
        let log = dir.path().join("queue").join(format!("{id}.log"));
        let mut f = fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(b"\xff\xfe garbage\n").unwrap();
        drop(f);
        q.record(&id, &LogLine::Rcpt { index: 1, outcome: Outcome::Delivered { to: "mbox".into() } }).unwrap();
        drop(q);
        let q = Queue::open(dir.path()).unwrap();
        let all = q.load().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].log.len(), 2, "{:?}", all[0].log);
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

    /// The `.msg` files of a queue directory: (stem, length, only zero octets).
    fn msg_files(dir: &Path) -> Vec<(String, u64, bool)> {
        let mut v: Vec<_> = fs::read_dir(dir.join("queue"))
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.path().extension().is_some_and(|x| x == "msg"))
            .map(|e| {
                let raw = fs::read(e.path()).unwrap();
                (
                    e.path().file_stem().unwrap().to_string_lossy().into_owned(),
                    raw.len() as u64,
                    is_slot(&raw),
                )
            })
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
        let before = fs::read(&path).unwrap();
        let fill = !in_memory(&dir.path().join("queue"));
        assert_eq!(
            before.len(),
            if fill { SLOT_SIZE_FIRST } else { 0 },
            "the slot exists before the commit (zero-filled unless in memory)"
        );
        assert!(is_slot(&before), "a slot holds only zero octets");
        assert!(!holds_message(&path).unwrap());
        q.commit(&env(&id), b"Subject: s\r\n\r\nslot\r\n").unwrap();
        let after = fs::read(&path).unwrap();
        assert!(after.starts_with(MAGIC.as_bytes()));
        if fill {
            assert_eq!(
                after.len(),
                SLOT_SIZE_FIRST,
                "the message was written over the slot's zeros, not appended"
            );
        }
        assert!(holds_message(&path).unwrap());
        let all = q.load().unwrap();
        assert_eq!(all.len(), 1, "slots are not messages");
        assert_eq!(all[0].envelope.id, id);
        assert_eq!(q.read_data(&id).unwrap(), b"Subject: s\r\n\r\nslot\r\n");
        drop(q);
        let slots: Vec<String> = msg_files(dir.path())
            .into_iter()
            .filter(|(_, _, zero)| *zero)
            .map(|(n, _, _)| n)
            .collect();
        assert!(slots.len() >= SLOTS_LOW - 1);
        // A restart hands out the slots left over before making new ones; an empty file (a
        // slot of an earlier version) is one too.
        fs::write(dir.path().join("queue/0EMPTY.msg"), b"").unwrap();
        let q = Queue::open(dir.path()).unwrap();
        assert_eq!(q.new_id(), "0EMPTY");
        let next = q.new_id();
        assert_eq!(next, slots[0]);
        q.commit(&env(&next), b"again\r\n").unwrap();
        q.commit(&env("0EMPTY"), b"into the empty one\r\n").unwrap();
        assert_eq!(q.load().unwrap().len(), 3);
        assert_eq!(q.read_data("0EMPTY").unwrap(), b"into the empty one\r\n");
    }

    #[test]
    fn a_message_larger_than_its_slot_grows_the_file_and_slots_follow_message_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path()).unwrap();
        ready(&q);
        let big: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let id = q.new_id();
        q.commit(&env(&id), &big).unwrap();
        assert_eq!(q.read_data(&id).unwrap(), big);
        let mid = vec![b'm'; 20_000];
        let id2 = q.new_id();
        q.commit(&env(&id2), &mid).unwrap();
        assert_eq!(q.read_data(&id2).unwrap(), mid);
        assert_eq!(q.load().unwrap().len(), 2);
        // Take slots until the thread makes a new batch: its slots are as large as the largest
        // message committed since the last batch allows (100 000 octets: the largest slot).
        let old: HashSet<String> = msg_files(dir.path())
            .into_iter()
            .map(|(n, _, _)| n)
            .collect();
        for _ in 0..(SLOTS_READY - SLOTS_LOW + 1) {
            q.new_id();
        }
        let mut new = Vec::new();
        for _ in 0..500 {
            new = msg_files(dir.path())
                .into_iter()
                .filter(|(n, _, _)| !old.contains(n))
                .collect();
            if new.len() >= SLOTS_READY - SLOTS_LOW
                && q.shared.slots.lock().unwrap().ready.len() >= SLOTS_LOW
            {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(
            new.len() >= SLOTS_READY - SLOTS_LOW,
            "a new batch was made: {}",
            new.len()
        );
        let want = if in_memory(&dir.path().join("queue")) { 0 } else { SLOT_SIZE_MAX as u64 };
        assert!(
            new.iter().all(|(_, len, zero)| *zero && *len == want),
            "{new:?}"
        );
        assert_eq!(
            slot_size(8192, 0),
            8192,
            "no commit since the last batch: the same size"
        );
        assert_eq!(slot_size(8192, 1), SLOT_PAGE);
        assert_eq!(slot_size(8192, 4097), 2 * SLOT_PAGE);
        assert_eq!(slot_size(8192, 20_300), 5 * SLOT_PAGE);
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
        // Written into a slot: the message and then the slot's zeros load; a first page that
        // never reached the disk, or octets after the message that are not zeros, do not.
        let mut in_slot = encode(&env("SLOT1"), b"in a slot\r\n").unwrap();
        in_slot.resize(8192, 0);
        fs::write(qd.join("SLOT1.msg"), &in_slot).unwrap();
        let mut first_page_lost = in_slot.clone();
        first_page_lost[..16].fill(0);
        fs::write(qd.join("TORN4.msg"), &first_page_lost).unwrap();
        let mut tail = in_slot.clone();
        tail[5000] = b'x';
        fs::write(qd.join("TORN5.msg"), &tail).unwrap();
        let v1 = format!("{MAGIC_V1}{}\nold format\r\n", serde_json::to_string(&env("OLD1")).unwrap());
        fs::write(qd.join("OLD1.msg"), v1).unwrap();
        let mut all: Vec<String> = q.load().unwrap().into_iter().map(|l| l.envelope.id).collect();
        all.sort();
        assert_eq!(all, ["OLD1", "SLOT1"]);
        assert_eq!(q.read_data("OLD1").unwrap(), b"old format\r\n");
        assert_eq!(q.read_data("SLOT1").unwrap(), b"in a slot\r\n");
        for t in ["TORN1", "TORN2", "TORN3", "TORN4", "TORN5"] {
            assert!(qd.join("torn").join(format!("{t}.msg")).exists(), "{t} set aside");
            assert!(!qd.join(format!("{t}.msg")).exists());
        }
    }
}
