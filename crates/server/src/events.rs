//! The Application Log of an emulated server (DESIGN §2): numbered records with event ID,
//! source, type, category and a text built from a template with insertion strings.
//!
//! Records are appended as JSON lines to `<data_dir>/events.jsonl` (flushed per record) and
//! kept in memory for the admin API. Record numbers continue across restarts.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Event source, as the Windows NT event log names Exchange's services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Source {
    /// Message transfer agent.
    MSExchangeMTA,
    /// Internet Mail Service (Internet Mail Connector).
    MSExchangeIMC,
    /// Directory service.
    MSExchangeDS,
    /// Directory synchronization (DXA).
    MSExchangeDX,
}

/// Event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    /// Information.
    Information,
    /// Warning.
    Warning,
    /// Error.
    Error,
}

/// One catalogued event: the fixed part of a record.
#[derive(Debug, Clone, Copy)]
pub struct EventDef {
    /// Event ID.
    pub id: u32,
    /// Source.
    pub source: Source,
    /// Type.
    pub kind: EventType,
    /// Category as shown by Event Viewer.
    pub category: &'static str,
    /// Text template; `%1`, `%2`, … are insertion strings.
    pub template: &'static str,
}

/// The event catalogue. IDs, sources and categories follow DESIGN §2 and the KB articles;
/// the 9301 text is Exchange's. The other texts are written for mtalab with the insertion
/// strings Exchange logs; the IMS start and stop events (1000/1001) are mtalab's numbering.
pub mod catalog {
    use super::{EventDef, EventType::*, Source::*};

    /// KB Q197378/Q255991: an incoming connection's address matches no connector's Stack.
    /// %1 = local stack DN, %2 = the caller's address octets in hex (145.245.193.27 → 91F5C11B).
    pub const MTA_GATEWAY_NOT_FOUND: EventDef = EventDef {
        id: 9301,
        source: MSExchangeMTA,
        kind: Warning,
        category: "Configuration",
        template: "The message transfer gateway that uses the network address %2 and the transport stack %1 could not be found. Check the configuration of the mail gateway.",
    };
    /// MTA started. %1 = version, %2 = build.
    pub const MTA_STARTED: EventDef = EventDef {
        id: 9298,
        source: MSExchangeMTA,
        kind: Information,
        category: "Operating System",
        template: "The Microsoft Exchange MTA service started. Version %1, build %2.",
    };
    /// MTA stopped. %1 = version, %2 = build.
    pub const MTA_STOPPED: EventDef = EventDef {
        id: 9299,
        source: MSExchangeMTA,
        kind: Information,
        category: "Operating System",
        template: "The Microsoft Exchange MTA service stopped. Version %1, build %2.",
    };
    /// connect() to a remote MTA failed. %1 = its IP address (the scenario's, in a local lab), %2 = error.
    pub const MTA_CONNECT_FAILED: EventDef = EventDef {
        id: 9215,
        source: MSExchangeMTA,
        kind: Warning,
        category: "Interface",
        template: "A connect() call to %1 failed with error %2. The connection will be retried.",
    };
    /// An unknown MTA tried to bind. %1 = its MTA name, %2 = address, %3 = why.
    pub const MTA_UNKNOWN_BIND: EventDef = EventDef {
        id: 51,
        source: MSExchangeMTA,
        kind: Error,
        category: "Security",
        template: "An unknown MTA %1 at network address %2 attempted to bind to this MTA: %3. The bind was refused with an authentication error.",
    };
    /// The responder's credentials in the bind result are wrong. %1 = responder name, %2 = connector.
    pub const MTA_RESPONDER_CREDENTIALS: EventDef = EventDef {
        id: 48,
        source: MSExchangeMTA,
        kind: Error,
        category: "Security",
        template: "The remote MTA %1 returned a bind result whose name or password does not match connector %2. The association was aborted.",
    };
    /// A locally initiated association was refused. %1 = connector, %2 = reason.
    pub const MTA_LOCAL_ASSOC_REFUSED: EventDef = EventDef {
        id: 1290,
        source: MSExchangeMTA,
        kind: Warning,
        category: "Interoperability",
        template: "A locally initiated association was refused by the remote MTA over connector %1: %2",
    };
    /// A remotely initiated association was refused. %1 = remote address, %2 = reason.
    pub const MTA_REMOTE_ASSOC_REFUSED: EventDef = EventDef {
        id: 1293,
        source: MSExchangeMTA,
        kind: Warning,
        category: "Interoperability",
        template: "A remotely initiated association from %1 was refused: %2",
    };
    /// An association ended abnormally. %1 = connector or address, %2 = reason.
    pub const MTA_ASSOC_ABORTED: EventDef = EventDef {
        id: 1294,
        source: MSExchangeMTA,
        kind: Warning,
        category: "Interoperability",
        template: "The association with %1 ended abnormally: %2",
    };
    /// A connection could not be opened. %1 = connector, %2 = remote MTA, %3 = reason.
    pub const MTA_OPEN_FAILED: EventDef = EventDef {
        id: 289,
        source: MSExchangeMTA,
        kind: Warning,
        category: "X.400 Service",
        template: "A connection over connector %1 to the remote MTA %2 could not be opened: %3",
    };
    /// The open retry timer started. %1 = connector, %2 = seconds, %3 = attempt, %4 = max open retries.
    pub const MTA_OPEN_RETRY: EventDef = EventDef {
        id: 301,
        source: MSExchangeMTA,
        kind: Information,
        category: "X.400 Service",
        template: "The open retry timer for connector %1 has started: retry in %2 seconds (open attempt %3 of %4).",
    };
    /// A non-delivery report was generated. %1 = reason, %2 = diagnostic, %3 = MTS-ID, %4 = recipient.
    pub const MTA_NDR: EventDef = EventDef {
        id: 290,
        source: MSExchangeMTA,
        kind: Warning,
        category: "X.400 Service",
        template: "A non-delivery report (reason code %1, diagnostic code %2) was generated for message %3 to recipient %4.",
    };

    /// IMS started (mtalab numbering). %1 = listen address, %2 = host name.
    pub const IMC_STARTED: EventDef = EventDef {
        id: 1000,
        source: MSExchangeIMC,
        kind: Information,
        category: "Initialization/Termination",
        template: "The Internet Mail Service started. It is accepting SMTP connections on %1 as %2.",
    };
    /// IMS stopped (mtalab numbering).
    pub const IMC_STOPPED: EventDef = EventDef {
        id: 1001,
        source: MSExchangeIMC,
        kind: Information,
        category: "Initialization/Termination",
        template: "The Internet Mail Service stopped.",
    };
    /// Permanent outbound failure; an NDR is generated. %1 = domain, %2 = reason.
    pub const IMC_DELIVERY_FAILED: EventDef = EventDef {
        id: 4000,
        source: MSExchangeIMC,
        kind: Warning,
        category: "Message Transfer Out",
        template: "Message delivery to the remote domain '%1' failed for the following reason: %2",
    };
    /// Transient outbound failure to one host; the message will be retried.
    /// %1 = host, %2 = domain, %3 = reason.
    pub const IMC_HOST_FAILED: EventDef = EventDef {
        id: 4006,
        source: MSExchangeIMC,
        kind: Warning,
        category: "Message Transfer Out",
        template: "Message delivery to the host '%1' failed while delivering to the remote domain '%2' for the following reason: %3",
    };
    /// A system message (an NDR) could not be delivered and was set aside. %1 = message id, %2 = reason.
    pub const IMC_SYSTEM_MESSAGE_SET_ASIDE: EventDef = EventDef {
        id: 4132,
        source: MSExchangeIMC,
        kind: Error,
        category: "Message Transfer Out",
        template: "A system message could not be delivered and was set aside in the badmail directory. Message %1: %2",
    };
}

/// One record of the log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EventRecord {
    /// Record number, from 1, continuing across restarts.
    pub record: u64,
    /// When it was logged (UTC).
    pub time: DateTime<Utc>,
    /// Event ID.
    pub id: u32,
    /// Source.
    pub source: Source,
    /// Type.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Category.
    pub category: String,
    /// Server that logged it.
    pub computer: String,
    /// Expanded text.
    pub text: String,
    /// The insertion strings.
    pub strings: Vec<String>,
}

/// Expand `%1`…`%9` in a template (Win32 FormatMessage style, single digit insertions).
pub fn expand(template: &str, strings: &[&str]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '%'
            && let Some(d) = chars.peek().and_then(|d| d.to_digit(10))
            && d >= 1
        {
            chars.next();
            out.push_str(strings.get(d as usize - 1).copied().unwrap_or(""));
            continue;
        }
        out.push(c);
    }
    out
}

/// The Application Log.
pub struct EventLog {
    path: PathBuf,
    computer: String,
    inner: Mutex<Inner>,
}

struct Inner {
    file: File,
    records: Vec<EventRecord>,
}

/// Records kept in memory for the API (older ones stay in the file).
const MEMORY_CAP: usize = 100_000;

impl EventLog {
    /// Open (or create) `<dir>/events.jsonl`, reading existing records.
    pub fn open(dir: &Path, computer: &str) -> std::io::Result<EventLog> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("events.jsonl");
        let records = if path.exists() { read_file(&path)? } else { Vec::new() };
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(EventLog {
            path,
            computer: computer.to_string(),
            inner: Mutex::new(Inner { file, records }),
        })
    }

    /// Path of the JSON lines file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Log an event with its insertion strings; returns the record.
    pub fn log(&self, def: EventDef, strings: &[&str]) -> EventRecord {
        let mut inner = self.inner.lock().expect("event log lock");
        let record = inner.records.last().map_or(1, |r| r.record + 1);
        let rec = EventRecord {
            record,
            time: Utc::now(),
            id: def.id,
            source: def.source,
            kind: def.kind,
            category: def.category.to_string(),
            computer: self.computer.clone(),
            text: expand(def.template, strings),
            strings: strings.iter().map(|s| s.to_string()).collect(),
        };
        let mut line = serde_json::to_vec(&rec).expect("record serializes");
        line.push(b'\n');
        if let Err(e) = inner.file.write_all(&line) {
            tracing::error!(error = %e, "cannot write event log");
        }
        tracing::info!(event = def.id, source = ?def.source, "{}", rec.text);
        inner.records.push(rec.clone());
        if inner.records.len() > MEMORY_CAP {
            inner.records.drain(..MEMORY_CAP / 10);
        }
        rec
    }

    /// Records with a record number greater than `since`, optionally only one event ID.
    pub fn query(&self, since: u64, id: Option<u32>) -> Vec<EventRecord> {
        let inner = self.inner.lock().expect("event log lock");
        inner
            .records
            .iter()
            .filter(|r| r.record > since && id.is_none_or(|id| r.id == id))
            .cloned()
            .collect()
    }
}

/// Read every record of an events.jsonl file (used by `mtalab events`). A torn last line
/// (crash mid-write) is skipped.
pub fn read_file(path: &Path) -> std::io::Result<Vec<EventRecord>> {
    let f = File::open(path)?;
    let mut out = Vec::new();
    crate::jsonl::for_each_line(BufReader::new(f), crate::jsonl::MAX_LINE, |line| {
        if let Ok(r) = serde_json::from_slice::<EventRecord>(line) {
            out.push(r);
        }
    })?;
    Ok(out)
}

/// One line in Event Viewer's style, for the CLI.
pub fn format_record(r: &EventRecord) -> String {
    format!(
        "#{:<5} {} {:<11} {:<13} {:>5} {:<28} {}",
        r.record,
        r.time.format("%Y-%m-%d %H:%M:%S"),
        format!("{:?}", r.kind),
        format!("{:?}", r.source),
        r.id,
        r.category,
        r.text
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_insertion_strings() {
        assert_eq!(expand("a %2 b %1 %3%", &["x", "y"]), "a y b x %");
        assert_eq!(expand("100%", &[]), "100%");
    }

    #[test]
    fn numbers_continue_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path(), "ServerA").unwrap();
        log.log(catalog::IMC_STARTED, &["127.0.0.1:25", "ServerA"]);
        log.log(catalog::IMC_STOPPED, &[]);
        drop(log);
        let log = EventLog::open(dir.path(), "ServerA").unwrap();
        let r = log.log(catalog::IMC_STARTED, &["a", "b"]);
        assert_eq!(r.record, 3);
        assert_eq!(log.query(1, None).len(), 2);
        assert_eq!(log.query(0, Some(1001)).len(), 1);
        assert!(r.text.contains("on a as b"));
    }

    #[test]
    fn a_damaged_line_does_not_keep_the_log_from_opening() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path(), "ServerA").unwrap();
        log.log(catalog::IMC_STARTED, &["127.0.0.1:25", "ServerA"]);
        drop(log);
        let path = std::fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"\xff\xfe not an event\n").unwrap();
        drop(f);
        let log = EventLog::open(dir.path(), "ServerA").unwrap();
        assert_eq!(log.log(catalog::IMC_STOPPED, &[]).record, 2);
        assert_eq!(read_file(&path).unwrap().len(), 2);
    }
}
