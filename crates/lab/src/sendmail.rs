//! Sending one test message with mtalab's own SMTP client, for lab steps and `mtalab send`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use mtalab_server::conn::SmtpConnection;
use mtalab_smtp::{Mailbox, Reply, ReversePath, Transaction};

/// One message to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Envelope and header sender; empty = null reverse path.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// Subject.
    pub subject: String,
    /// Body text (LF or CRLF line ends).
    pub body: String,
    /// Pad the body with [`filler`] lines up to this many octets, if set.
    pub body_size: Option<usize>,
}

/// Filler text for a body of `size` octets: numbered lines of 80 octets with CRLF, the last
/// one cut to fit (never in the middle of its CRLF).
pub fn filler(size: usize) -> String {
    let mut s = String::with_capacity(size + 80);
    let mut n = 0u64;
    while s.len() < size {
        n += 1;
        s.push_str(&format!("{n:06} The quick brown fox jumps over the lazy dog, line after line of filler.\r\n"));
    }
    s.truncate(size);
    if s.ends_with('\r') {
        s.pop();
    }
    s
}

impl Outgoing {
    /// The body: the text, then filler lines up to `body_size` octets.
    pub fn full_body(&self) -> String {
        let mut b = self.body.replace("\r\n", "\n").replace('\n', "\r\n");
        if let Some(size) = self.body_size
            && size > b.len()
        {
            if !b.is_empty() && !b.ends_with("\r\n") {
                b.push_str("\r\n");
            }
            let more = size.saturating_sub(b.len());
            b.push_str(&filler(more));
        }
        b
    }

    /// The RFC 5322 message (CRLF line ends, a unique Message-ID).
    pub fn render(&self) -> Vec<u8> {
        format!(
            "From: <{}>\r\nTo: {}\r\nSubject: {}\r\nDate: {}\r\nMessage-ID: <{}.{}@mtalab-lab>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{}\r\n",
            self.from,
            self.to.iter().map(|t| format!("<{t}>")).collect::<Vec<_>>().join(", "),
            self.subject,
            Utc::now().to_rfc2822(),
            Utc::now().timestamp_micros(),
            std::process::id(),
            self.full_body()
        )
        .into_bytes()
    }
}

/// Send `msg` to `target` (from `source` when given) and return the decisive reply: the MAIL
/// reply if it failed, else the first refused RCPT's, else the reply to the message text.
pub async fn send(target: SocketAddr, source: Option<IpAddr>, helo: &str, msg: &Outgoing) -> anyhow::Result<Reply> {
    let rcpts = msg
        .to
        .iter()
        .map(|t| Mailbox::parse(t).map_err(|e| anyhow::anyhow!("bad recipient {t}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let from = if msg.from.is_empty() {
        ReversePath::Null
    } else {
        ReversePath::Mailbox(Mailbox::parse(&msg.from).map_err(|e| anyhow::anyhow!("bad sender {}: {e}", msg.from))?)
    };
    let mut conn = SmtpConnection::connect(target, source, helo, Duration::from_secs(10))
        .await
        .with_context(|| format!("SMTP to {target}"))?;
    let r = conn.send(Transaction { from, rcpts, data: msg.render() }).await?;
    conn.quit().await;
    Ok(if !r.mail.is_positive() {
        r.mail.clone()
    } else if let Some((_, bad)) = r.rcpts.iter().find(|(_, rep)| !rep.is_positive()) {
        bad.clone()
    } else {
        r.data.clone().context("no reply to the message text")?
    })
}
