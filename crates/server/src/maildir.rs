//! Local delivery into one Maildir per mailbox (`<data_dir>/mailboxes/<alias>/{tmp,new,cur}`).
//!
//! Delivery writes `tmp/<unique>`, fsyncs it, renames it into `new/` and fsyncs `new/`
//! (the Maildir protocol), prepending `Return-Path:` (RFC 5321 §4.4) and `Delivered-To:`.

use std::fs::{self, File};
use std::io::{self, Write};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use mail_parser::MimeHeaders;
use serde::Serialize;

static SEQ: AtomicU64 = AtomicU64::new(0);

/// The mailbox store of one server.
#[derive(Debug, Clone)]
pub struct Mailboxes {
    root: PathBuf,
    /// Aliases whose `tmp`, `new` and `cur` were made (or found) by this process: not made
    /// again for every message. A directory removed meanwhile is made again when a write
    /// into it finds it missing.
    made: Arc<Mutex<HashSet<String>>>,
    /// Messages delivered (renamed into some `new/`) by this process.
    delivered: Arc<AtomicU64>,
}

/// A message in a mailbox, as the admin API lists it.
#[derive(Debug, Clone, Serialize)]
pub struct MessageInfo {
    /// File name in `new/`.
    pub id: String,
    /// Octets.
    pub size: u64,
    /// Subject header, decoded.
    pub subject: Option<String>,
    /// From header address.
    pub from: Option<String>,
    /// Return-Path (envelope sender; empty for DSNs).
    pub return_path: Option<String>,
    /// Content-Type, e.g. `multipart/report`.
    pub content_type: Option<String>,
    /// Number of Received: headers.
    pub hops: usize,
}

impl Mailboxes {
    /// The store under `<data_dir>/mailboxes`.
    pub fn new(data_dir: &Path) -> io::Result<Mailboxes> {
        let root = data_dir.join("mailboxes");
        fs::create_dir_all(&root)?;
        Ok(Mailboxes { root, made: Arc::default(), delivered: Arc::default() })
    }

    /// Deliver one message to `alias`; returns the new file's path. Blocking.
    pub fn deliver(&self, alias: &str, return_path: &str, delivered_to: &str, data: &[u8]) -> io::Result<PathBuf> {
        let dir = self.root.join(alias);
        if !self.made.lock().expect("maildir lock").contains(alias) {
            make_dirs(&dir)?;
            self.made.lock().expect("maildir lock").insert(alias.to_string());
        }
        // Seconds and microseconds of one reading of the clock; the process id asked once
        // (each `getpid` is a system call).
        static PID: std::sync::LazyLock<u32> = std::sync::LazyLock::new(std::process::id);
        let now = chrono::Utc::now();
        let name = format!("{}.M{}P{}Q{}.mtalab", now.timestamp(), now.timestamp_subsec_micros(), *PID, SEQ.fetch_add(1, Ordering::Relaxed));
        let tmp = dir.join("tmp").join(&name);
        let mut f = match File::create(&tmp) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                make_dirs(&dir)?;
                File::create(&tmp)?
            }
            r => r?,
        };
        let mut buf = Vec::with_capacity(data.len() + 128);
        write!(buf, "Return-Path: <{return_path}>\r\nDelivered-To: {delivered_to}\r\n")?;
        buf.extend_from_slice(data);
        f.write_all(&buf)?;
        f.sync_all()?;
        drop(f);
        let new = dir.join("new").join(&name);
        if let Err(e) = fs::rename(&tmp, &new) {
            if e.kind() != io::ErrorKind::NotFound {
                return Err(e);
            }
            make_dirs(&dir)?;
            fs::rename(&tmp, &new)?;
        }
        File::open(dir.join("new"))?.sync_all()?;
        self.delivered.fetch_add(1, Ordering::Relaxed);
        Ok(new)
    }

    /// Messages this process has delivered into mailboxes since it started (all aliases;
    /// admin API `GET /health`, `mailbox_deliveries`): a count that costs nothing to read,
    /// unlike listing a Maildir of thousands of files.
    pub fn delivered_total(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Aliases that have a mailbox directory, sorted.
    pub fn aliases(&self) -> io::Result<Vec<String>> {
        let mut v: Vec<String> = fs::read_dir(&self.root)?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        Ok(v)
    }

    /// Messages in `alias`'s `new/`, oldest first.
    pub fn list(&self, alias: &str) -> io::Result<Vec<MessageInfo>> {
        let dir = self.root.join(safe(alias)?).join("new");
        let mut out = Vec::new();
        let Ok(rd) = fs::read_dir(&dir) else { return Ok(out) };
        let mut names: Vec<(std::time::SystemTime, PathBuf)> = rd
            .filter_map(|e| e.ok())
            .map(|e| (e.metadata().and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH), e.path()))
            .collect();
        names.sort();
        for (_, p) in names {
            let data = fs::read(&p)?;
            out.push(info(&p, &data));
        }
        Ok(out)
    }

    /// The raw octets of one message.
    pub fn read(&self, alias: &str, id: &str) -> io::Result<Vec<u8>> {
        fs::read(self.root.join(safe(alias)?).join("new").join(safe(id)?))
    }
}

/// Make a Maildir's `tmp`, `new` and `cur` under `dir` (and `dir`), where missing.
fn make_dirs(dir: &Path) -> io::Result<()> {
    for sub in ["tmp", "new", "cur"] {
        fs::create_dir_all(dir.join(sub))?;
    }
    Ok(())
}

fn safe(name: &str) -> io::Result<&str> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "bad name"));
    }
    Ok(name)
}

fn info(path: &Path, data: &[u8]) -> MessageInfo {
    let msg = mail_parser::MessageParser::default().parse_headers(data);
    let (subject, from, return_path, content_type, hops) = match &msg {
        Some(m) => (
            m.subject().map(str::to_string),
            m.from().and_then(|a| a.first()).and_then(|a| a.address()).map(str::to_string),
            m.return_path().as_text().map(str::to_string),
            m.content_type().map(|c| match c.subtype() {
                Some(s) => format!("{}/{}", c.ctype(), s),
                None => c.ctype().to_string(),
            }),
            count_received(data),
        ),
        None => (None, None, None, None, 0),
    };
    MessageInfo {
        id: path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        size: data.len() as u64,
        subject,
        from,
        return_path,
        content_type,
        hops,
    }
}

/// Count `Received:` header fields in the header section of a message.
pub fn count_received(data: &[u8]) -> usize {
    let end = find_header_end(data);
    data[..end]
        .split(|&b| b == b'\n')
        .filter(|l| l.len() >= 9 && l[..9].eq_ignore_ascii_case(b"received:"))
        .count()
}

/// Offset of the blank line ending the header section (or the whole length).
pub fn find_header_end(data: &[u8]) -> usize {
    if data.starts_with(b"\r\n") {
        return 0;
    }
    data.windows(4).position(|w| w == b"\r\n\r\n").map_or(data.len(), |p| p + 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliver_and_list() {
        let d = tempfile::tempdir().unwrap();
        let m = Mailboxes::new(d.path()).unwrap();
        m.deliver("JohnS", "a@b", "JohnS@SiteA.microsoft.com", b"Received: x\r\nReceived: y\r\nSubject: hi\r\nFrom: a@b\r\n\r\nbody\r\n").unwrap();
        let l = m.list("JohnS").unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].subject.as_deref(), Some("hi"));
        assert_eq!(l[0].hops, 2);
        assert_eq!(m.aliases().unwrap(), vec!["JohnS".to_string()]);
        assert!(m.list("../x").is_err());
    }

    #[test]
    fn a_mailbox_removed_meanwhile_is_made_again() {
        let d = tempfile::tempdir().unwrap();
        let m = Mailboxes::new(d.path()).unwrap();
        m.deliver("JohnS", "a@b", "JohnS@x", b"Subject: one\r\n\r\nbody\r\n").unwrap();
        fs::remove_dir_all(d.path().join("mailboxes/JohnS")).unwrap();
        m.deliver("JohnS", "a@b", "JohnS@x", b"Subject: two\r\n\r\nbody\r\n").unwrap();
        let l = m.list("JohnS").unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].subject.as_deref(), Some("two"));
        // Only new/ gone: the rename finds it missing and makes it.
        fs::remove_dir_all(d.path().join("mailboxes/JohnS/new")).unwrap();
        m.deliver("JohnS", "a@b", "JohnS@x", b"Subject: three\r\n\r\nbody\r\n").unwrap();
        assert_eq!(m.list("JohnS").unwrap()[0].subject.as_deref(), Some("three"));
    }
}
