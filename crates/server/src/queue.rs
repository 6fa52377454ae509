//! The durable store-and-forward queue (DESIGN §3: "the message is committed to disk (fsync)
//! before 250; an accepted message is never lost").
//!
//! Layout under `<data_dir>/queue/`:
//! - `tmp/<id>` — a message being written; never read back, removed at start.
//! - `<id>.msg` — one accepted message: a first line `MTALAB-Q1 <envelope JSON>\n`, then the
//!   message octets exactly as accepted (Received: header included).
//! - `<id>.log` — append-only JSON lines recording per-recipient outcomes and attempts.
//!
//! Commit protocol: write `tmp/<id>`, fsync the file, rename it to `<id>.msg`, fsync the
//! queue directory; only then is 250 sent. Directory fsyncs of concurrent commits are
//! coalesced (one fsync covers every rename that finished before it started). Each log line is
//! fsynced before the outcome it records is acted on. After a crash, [`Queue::load`] rebuilds
//! every pending message from the `.msg` and `.log` files; a recipient whose delivery was in
//! flight is delivered again (at most a duplicate, never a loss).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

const MAGIC: &str = "MTALAB-Q1 ";

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

/// The queue directory. All methods block (call them from `spawn_blocking`).
pub struct Queue {
    dir: PathBuf,
    tmp: PathBuf,
    dirsync: DirSync,
    seq: AtomicU64,
    epoch: String,
}

impl Queue {
    /// Open `<data_dir>/queue`, creating it; clears `tmp/` (messages never acknowledged).
    pub fn open(data_dir: &Path) -> io::Result<Queue> {
        let dir = data_dir.join("queue");
        let tmp = dir.join("tmp");
        fs::create_dir_all(&tmp)?;
        for e in fs::read_dir(&tmp)? {
            let _ = fs::remove_file(e?.path());
        }
        let epoch = format!("{:X}", Utc::now().timestamp_micros());
        Ok(Queue {
            dirsync: DirSync {
                dir: dir.clone(),
                state: Mutex::new(SyncState::default()),
                cv: Condvar::new(),
            },
            dir,
            tmp,
            seq: AtomicU64::new(0),
            epoch,
        })
    }

    /// A fresh queue id, unique within this data directory.
    pub fn new_id(&self) -> String {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        format!("{}{:06X}", self.epoch, n)
    }

    /// Durably store a message. Returns only after the file and the directory entry are on disk.
    pub fn commit(&self, env: &Envelope, data: &[u8]) -> io::Result<()> {
        let tmp = self.tmp.join(&env.id);
        let mut f = File::create(&tmp)?;
        let mut head = String::from(MAGIC);
        head.push_str(&serde_json::to_string(env).map_err(io::Error::other)?);
        head.push('\n');
        let mut buf = Vec::with_capacity(head.len() + data.len());
        buf.extend_from_slice(head.as_bytes());
        buf.extend_from_slice(data);
        f.write_all(&buf)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, self.msg_path(&env.id))?;
        self.dirsync.sync()
    }

    /// Append a log line for a message and fsync it.
    pub fn record(&self, id: &str, line: &LogLine) -> io::Result<()> {
        let path = self.dir.join(format!("{id}.log"));
        let created = !path.exists();
        let mut f = OpenOptions::new().create(true).append(true).open(&path)?;
        let mut l = serde_json::to_vec(line).map_err(io::Error::other)?;
        l.push(b'\n');
        f.write_all(&l)?;
        f.sync_data()?;
        if created {
            self.dirsync.sync()?;
        }
        Ok(())
    }

    /// Read a queued message's octets (without the envelope line).
    pub fn read_data(&self, id: &str) -> io::Result<Vec<u8>> {
        let mut f = BufReader::new(File::open(self.msg_path(id))?);
        let mut head = Vec::new();
        f.read_until(b'\n', &mut head)?;
        let mut data = Vec::new();
        f.read_to_end(&mut data)?;
        Ok(data)
    }

    /// Remove a message whose recipients all reached a final state.
    pub fn remove(&self, id: &str) -> io::Result<()> {
        let _ = fs::remove_file(self.dir.join(format!("{id}.log")));
        fs::remove_file(self.msg_path(id))
    }

    /// Every message in the queue with its log (at start-up, after a crash).
    pub fn load(&self) -> io::Result<Vec<Loaded>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.dir)? {
            let path = e?.path();
            if path.extension().is_none_or(|x| x != "msg") {
                continue;
            }
            let mut f = BufReader::new(File::open(&path)?);
            let mut head = String::new();
            f.read_line(&mut head)?;
            let Some(json) = head.strip_prefix(MAGIC) else {
                tracing::error!(path = %path.display(), "queue file without header, left in place");
                continue;
            };
            let envelope: Envelope = match serde_json::from_str(json.trim_end()) {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "bad queue header, left in place");
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
        out.sort_by(|a, b| a.envelope.received.cmp(&b.envelope.received));
        Ok(out)
    }

    /// Move a message aside to `<data_dir>/badmail/` (a DSN that cannot be delivered).
    pub fn set_aside(&self, id: &str) -> io::Result<PathBuf> {
        let bad = self.dir.parent().unwrap_or(&self.dir).join("badmail");
        fs::create_dir_all(&bad)?;
        let to = bad.join(format!("{id}.eml"));
        fs::write(&to, self.read_data(id)?)?;
        self.remove(id)?;
        Ok(to)
    }

    fn msg_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.msg"))
    }
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
}
