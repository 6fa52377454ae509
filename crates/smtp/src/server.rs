//! The SMTP server session (RFC 5321 §4.1, §4.3.2), sans-IO.
//!
//! [`ServerSession`] is fed received bytes and hands back reply bytes and [`ServerEvent`]s.
//! MAIL, RCPT and the end of the message each wait for the caller's decision
//! ([`ServerSession::accept`] / [`ServerSession::reject`]); while one is pending, input is
//! buffered and not acted on, so replies to pipelined commands (RFC 2920 §3.1) always leave
//! in command order.
//!
//! Extensions offered in the EHLO reply: PIPELINING (RFC 2920), 8BITMIME (RFC 6152),
//! SIZE (RFC 1870), ENHANCEDSTATUSCODES (RFC 2034). Nothing else is offered, and no
//! ESMTP parameter other than SIZE and BODY is accepted (555 5.5.4).
//!
//! # Policies
//!
//! - **Order** (RFC 5321 §4.1.4): MAIL needs HELO/EHLO, RCPT needs an accepted MAIL, DATA an
//!   accepted RCPT; otherwise 503 5.5.1. DATA after RCPTs that were all refused gets
//!   554 5.5.1 "no valid recipients" (RFC 2920 §3.1). A later HELO/EHLO resets the
//!   transaction (§4.1.4). ESMTP parameters after HELO (not EHLO) get 555 5.5.4.
//! - **Command lines** end in CRLF. A line longer than `max_command_line` octets (CRLF
//!   included, §4.5.3.1.4) gets 500 5.5.2 "line too long" as soon as that is known; the rest
//!   of the line, up to its LF, is discarded. A line ending in a bare LF gets 500 5.5.2
//!   "bare LF not allowed (RFC 5321 section 2.3.8)" (reply text is ASCII, §4.2); a bare CR
//!   or a NUL inside a command line gets 500 5.5.2 as well. The session goes on.
//! - **Message text**: see [`crate::data`]: only CRLF.CRLF ends it (never LF.LF), and a
//!   message with a bare LF or bare CR (554 5.6.2), a NUL (554 5.6.0), an over-long line
//!   (500 5.5.2 "line too long", §4.5.3.1.6) or too many octets (552 5.3.4) is read to its
//!   end and then refused, without a [`ServerEvent::Message`]. The session goes on.
//! - **SIZE**: `SIZE=n` above `max_message_size` gets 552 5.3.4 at MAIL (RFC 1870 §6).
//! - **Recipients**: beyond `max_recipients` accepted ones, RCPT gets 452 4.5.3 "too many
//!   recipients" (§4.5.3.1.10) without asking the caller.
//! - **Errors**: every 4yz/5yz reply caused by the client's own mistake (syntax, unknown
//!   command, bad order, bad line framing, unoffered parameter, refused message text) counts;
//!   when the count reaches `max_errors`, "421 4.7.0 too many errors" follows and the session
//!   closes. Not counted: the caller's rejections, 552 size refusals, 452 recipient limits,
//!   554 "no valid recipients", 502 for EXPN, and the 503s that a pipelining client draws
//!   for the RCPTs and DATA it sent behind a refused MAIL (at most `max_recipients + 1` of
//!   them).
//! - **Buffering**: without a pending decision the session holds at most one partial line
//!   (below the line limit) plus one input step of 4 KiB; the message is held up to
//!   `max_message_size` octets, the excess counted, not stored. While a decision is pending,
//!   buffered input is capped at [`MAX_PENDING_INPUT`] octets; past that the rest of the
//!   input is dropped, and once the decision is answered, "421 4.7.0 too much pipelined
//!   input" follows and the session closes.
//! - **Closing**: after 221 (QUIT) or any 421 the session is closed: input is ignored, the
//!   caller flushes [`ServerSession::poll_transmit`] and closes the connection.

use std::collections::VecDeque;

use crate::address::{Mailbox, ReversePath};
use crate::command::{Command, MailParams, ParseError, parse_command};
use crate::data::{DataReceiver, DataRejection, LineOutcome};
use crate::reply::Reply;

/// Cap in octets on input buffered while a decision is pending (pipelining abuse bound).
pub const MAX_PENDING_INPUT: usize = 64 * 1024;
/// Input is taken in steps of this many octets, which bounds what is buffered between steps.
pub const INPUT_STEP: usize = 4096;
/// Smallest line limit the session applies, whatever the configuration says.
pub const MIN_LINE_LIMIT: usize = 32;
/// Largest command line limit the session applies ([`crate::command::MAX_PARSE_LINE`]).
pub const MAX_COMMAND_LINE_LIMIT: usize = crate::command::MAX_PARSE_LINE;
/// Largest text line limit the session applies, 1 MiB.
pub const MAX_TEXT_LINE_LIMIT: usize = 1 << 20;

/// Server session limits and names.
///
/// Line limits are clamped to [`MIN_LINE_LIMIT`]..=[`MAX_COMMAND_LINE_LIMIT`] (commands) and
/// [`MIN_LINE_LIMIT`]..=[`MAX_TEXT_LINE_LIMIT`] (text); `max_errors` 0 acts as 1.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Name in the greeting, the EHLO/HELO reply and 221/421 replies.
    pub hostname: String,
    /// Greeting text after the hostname in the 220 reply (RFC 5321 §4.2, §3.1).
    pub greeting: String,
    /// Longest command line in octets, CRLF included; default 512 (RFC 5321 §4.5.3.1.4).
    pub max_command_line: usize,
    /// Longest message text line in octets, CRLF included, a stuffing dot not counted;
    /// default 1000 (RFC 5321 §4.5.3.1.6).
    pub max_text_line: usize,
    /// Largest message in octets (unstuffed, CRLF line ends), advertised as SIZE; default
    /// 10 MiB (RFC 1870).
    pub max_message_size: usize,
    /// Most recipients accepted per transaction; default 100 (RFC 5321 §4.5.3.1.8).
    pub max_recipients: usize,
    /// Client-caused error replies before "421 4.7.0 too many errors"; default 10.
    pub max_errors: u32,
}

impl Default for ServerConfig {
    /// `localhost`, "ESMTP mtalab ready", 512, 1000, 10 MiB, 100 recipients, 10 errors.
    fn default() -> Self {
        ServerConfig {
            hostname: "localhost".into(),
            greeting: "ESMTP mtalab ready".into(),
            max_command_line: 512,
            max_text_line: 1000,
            max_message_size: 10 * 1024 * 1024,
            max_recipients: 100,
            max_errors: 10,
        }
    }
}

/// The envelope of a received message (RFC 5321 §2.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The HELO/EHLO argument as sent.
    pub helo: String,
    /// True when the client greeted with EHLO.
    pub esmtp: bool,
    /// MAIL FROM reverse path.
    pub from: ReversePath,
    /// MAIL FROM parameters (SIZE, BODY).
    pub params: MailParams,
    /// Accepted recipients, in order.
    pub rcpts: Vec<Mailbox>,
}

/// What the session tells its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// HELO or EHLO was answered 250 (informational; no decision).
    Helo {
        /// The argument as sent.
        name: String,
        /// True for EHLO.
        extended: bool,
    },
    /// MAIL FROM passed syntax, order and SIZE checks; a decision is required.
    Mail {
        /// Reverse path.
        from: ReversePath,
        /// SIZE and BODY.
        params: MailParams,
    },
    /// RCPT TO passed syntax, order and count checks; a decision is required.
    Rcpt {
        /// Forward path (source route dropped).
        to: Mailbox,
    },
    /// The message arrived whole and clean; a decision is required. `data` is the unstuffed
    /// message with CRLF line ends, without the final `.` CRLF. The transaction is reset.
    Message {
        /// The transaction's envelope.
        envelope: Envelope,
        /// Message octets.
        data: Vec<u8>,
    },
    /// The transaction was reset: RSET, or HELO/EHLO during a transaction (informational).
    Reset,
    /// QUIT was answered 221; the session is closed (informational).
    Quit,
}

/// What the session waits for; a pending decision is kept apart in [`Pending`].
#[derive(Debug)]
enum State {
    /// HELO or EHLO.
    Helo,
    /// MAIL FROM.
    Mail,
    /// RCPT TO, or DATA once a recipient is accepted.
    Rcpt,
    /// Message text after 354, up to CRLF.CRLF.
    MessageText(DataReceiver),
    /// Nothing: 221 or 421 was sent.
    Closed,
}

/// The decision the caller owes.
#[derive(Debug)]
enum Pending {
    Mail {
        from: ReversePath,
        params: MailParams,
    },
    Rcpt(Mailbox),
    Message,
}

/// One server-side SMTP session; see the module documentation for its policies.
#[derive(Debug)]
pub struct ServerSession {
    config: ServerConfig,
    state: State,
    helo: Option<(String, bool)>,
    from: Option<(ReversePath, MailParams)>,
    rcpts: Vec<Mailbox>,
    rcpt_refusals: usize,
    excused_503s: usize,
    pending: Option<Pending>,
    inbuf: Vec<u8>,
    /// Leading octets of `inbuf` already searched for LF without finding one.
    scanned: usize,
    /// `Some(last octet was CR)` while the rest of an over-long line is thrown away.
    discarding: Option<bool>,
    overflow: bool,
    out: Vec<u8>,
    events: VecDeque<ServerEvent>,
    errors: u32,
    lines: u64,
}

impl ServerSession {
    /// A new session; queues the greeting `220 <hostname> <greeting>` (RFC 5321 §4.3.1).
    pub fn new(mut config: ServerConfig) -> Self {
        config.max_command_line = config
            .max_command_line
            .clamp(MIN_LINE_LIMIT, MAX_COMMAND_LINE_LIMIT);
        config.max_text_line = config
            .max_text_line
            .clamp(MIN_LINE_LIMIT, MAX_TEXT_LINE_LIMIT);
        config.max_errors = config.max_errors.max(1);
        let mut session = ServerSession {
            config,
            state: State::Helo,
            helo: None,
            from: None,
            rcpts: Vec::new(),
            rcpt_refusals: 0,
            excused_503s: 0,
            pending: None,
            inbuf: Vec::new(),
            scanned: 0,
            discarding: None,
            overflow: false,
            out: Vec::new(),
            events: VecDeque::new(),
            errors: 0,
            lines: 0,
        };
        let text = if session.config.greeting.is_empty() {
            session.config.hostname.clone()
        } else {
            format!("{} {}", session.config.hostname, session.config.greeting)
        };
        session.send(Reply::new(220, None, text));
        session
    }

    /// The configuration in force, limits clamped as [`ServerConfig`] says.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Takes received bytes. Processes them as far as possible; while a decision is pending,
    /// buffers them (up to [`MAX_PENDING_INPUT`], see the module documentation). Ignored once
    /// the session is closed.
    pub fn handle_input(&mut self, bytes: &[u8]) {
        for piece in bytes.chunks(INPUT_STEP) {
            if self.is_closed() || self.overflow {
                return;
            }
            if self.pending.is_some() {
                if self.inbuf.len() + piece.len() > MAX_PENDING_INPUT {
                    self.overflow = true;
                    self.inbuf = Vec::new();
                    return;
                }
                self.inbuf.extend_from_slice(piece);
            } else {
                self.inbuf.extend_from_slice(piece);
                self.process();
            }
        }
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// True while a Mail, Rcpt or Message event waits for [`ServerSession::accept`] or
    /// [`ServerSession::reject`].
    pub fn awaiting_decision(&self) -> bool {
        self.pending.is_some()
    }

    /// Accepts the pending decision: `250 2.1.0` for MAIL, `250 2.1.5` for RCPT (the recipient
    /// joins the envelope), `250 2.0.0` for the message; the text is `text` or `OK` (a `'\n'`
    /// in it makes a multi-line reply). Then goes on with buffered input. Does nothing when
    /// no decision is pending.
    pub fn accept(&mut self, text: Option<&str>) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        let text = text.unwrap_or("OK");
        match pending {
            Pending::Mail { from, params } => {
                self.from = Some((from, params));
                self.excused_503s = 0;
                self.state = State::Rcpt;
                self.send(Reply::enhanced(250, 2, 1, 0, text));
            }
            Pending::Rcpt(to) => {
                self.rcpts.push(to);
                self.send(Reply::enhanced(250, 2, 1, 5, text));
            }
            Pending::Message => self.send(Reply::enhanced(250, 2, 0, 0, text)),
        }
        self.resume();
    }

    /// Refuses the pending decision with `reply`, which should be 4yz or 5yz (anything else is
    /// replaced by `451 4.3.0`). A refused RCPT is not added; a refused message is dropped.
    /// A 421 reply closes the session. Otherwise goes on with buffered input. Does nothing
    /// when no decision is pending. Refusals are not counted as client errors.
    pub fn reject(&mut self, reply: Reply) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        let reply = if (400..600).contains(&reply.code) {
            reply
        } else {
            Reply::enhanced(
                451,
                4,
                3,
                0,
                "requested action aborted: local error in processing",
            )
        };
        match pending {
            Pending::Mail { .. } => {
                self.excused_503s = self.config.max_recipients.saturating_add(1)
            }
            Pending::Rcpt(_) => self.rcpt_refusals += 1,
            Pending::Message => {}
        }
        let closing = reply.code == 421;
        self.send(reply);
        if closing {
            self.close();
        } else {
            self.resume();
        }
    }

    /// Appends all pending output bytes to `out`.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.out);
    }

    /// The idle timer fired (RFC 5321 §4.5.3.2 timeouts are the caller's): sends
    /// `421 4.4.2 <host> idle timeout, closing` and closes. No-op once closed.
    pub fn on_timeout(&mut self) {
        if self.is_closed() {
            return;
        }
        let text = format!("{} idle timeout, closing", self.config.hostname);
        self.send(Reply::enhanced(421, 4, 4, 2, text));
        self.close();
    }

    /// The daemon is stopping: sends `421 4.3.2 <host> service shutting down` and closes
    /// (RFC 5321 §3.8). No-op once closed.
    pub fn shutdown(&mut self) {
        if self.is_closed() {
            return;
        }
        let text = format!("{} service shutting down", self.config.hostname);
        self.send(Reply::enhanced(421, 4, 3, 2, text));
        self.close();
    }

    /// True after 221 or any 421: flush [`ServerSession::poll_transmit`], then close.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Complete lines received so far (commands and message text, over-long ones included);
    /// the caller restarts its idle timer when this grows.
    pub fn lines_received(&self) -> u64 {
        self.lines
    }

    /// Octets of received input held unprocessed: a partial line, or input buffered behind a
    /// pending decision (at most [`MAX_PENDING_INPUT`] plus one [`INPUT_STEP`]).
    pub fn buffered_input(&self) -> usize {
        self.inbuf.len()
    }

    /// Client-caused error replies counted so far (see the module documentation).
    pub fn error_count(&self) -> u32 {
        self.errors
    }

    fn send(&mut self, reply: Reply) {
        reply.encode(&mut self.out);
    }

    fn close(&mut self) {
        self.state = State::Closed;
        self.pending = None;
        self.inbuf = Vec::new();
        self.scanned = 0;
        self.discarding = None;
    }

    fn resume(&mut self) {
        if self.is_closed() {
            return;
        }
        if self.overflow {
            let text = format!("{} too much pipelined input, closing", self.config.hostname);
            self.send(Reply::enhanced(421, 4, 7, 0, text));
            self.close();
        } else {
            self.process();
        }
    }

    /// Sends a reply the client earned by its own mistake, and counts it.
    fn client_error(&mut self, reply: Reply) {
        self.send(reply);
        self.errors = self.errors.saturating_add(1);
        if self.errors >= self.config.max_errors {
            let text = format!("{} too many errors, closing", self.config.hostname);
            self.send(Reply::enhanced(421, 4, 7, 0, text));
            self.close();
        }
    }

    /// 503 for a command out of order; excused behind a refused MAIL (module documentation).
    fn bad_order(&mut self, text: &str) {
        let reply = Reply::enhanced(503, 5, 5, 1, text);
        if self.excused_503s > 0 {
            self.excused_503s -= 1;
            self.send(reply);
        } else {
            self.client_error(reply);
        }
    }

    fn reset_transaction(&mut self) {
        self.from = None;
        self.rcpts.clear();
        self.rcpt_refusals = 0;
        self.excused_503s = 0;
    }

    /// Works through buffered input until it is used up, a decision is pending or the session
    /// closed.
    fn process(&mut self) {
        let buf = std::mem::take(&mut self.inbuf);
        // a partial line left by the previous call is not searched again (byte-at-a-time input
        // would otherwise cost a rescan of the partial line per octet)
        let mut skip = std::mem::take(&mut self.scanned).min(buf.len());
        let mut pos = 0;
        while pos < buf.len() && self.pending.is_none() && !self.is_closed() {
            let rest = &buf[pos..];
            let lf = rest[skip..]
                .iter()
                .position(|&c| c == b'\n')
                .map(|p| p + skip);
            skip = 0;
            if let Some(last_cr) = self.discarding {
                match lf {
                    Some(p) => {
                        let crlf = if p > 0 { rest[p - 1] == b'\r' } else { last_cr };
                        pos += p + 1;
                        self.discarding = None;
                        self.lines += 1;
                        if let State::MessageText(rx) = &mut self.state {
                            rx.push_overlong_line(crlf);
                        }
                    }
                    None => {
                        self.discarding = Some(rest.last() == Some(&b'\r'));
                        pos = buf.len();
                    }
                }
                continue;
            }
            let in_text = matches!(self.state, State::MessageText(_));
            match lf {
                Some(p) => {
                    pos += p + 1;
                    self.lines += 1;
                    let line = &rest[..=p];
                    if in_text {
                        self.text_line(line);
                    } else {
                        self.command_line(line);
                    }
                }
                None => {
                    let limit = if in_text {
                        self.config.max_text_line + usize::from(rest[0] == b'.')
                    } else {
                        self.config.max_command_line
                    };
                    if rest.len() >= limit {
                        self.discarding = Some(rest.last() == Some(&b'\r'));
                        pos = buf.len();
                        if !in_text {
                            self.client_error(ParseError::LineTooLong.reply());
                        }
                    }
                    break;
                }
            }
        }
        if !self.is_closed() {
            let mut buf = buf;
            buf.drain(..pos);
            // what is left is one partial line, or input behind a pending decision
            self.scanned = if self.pending.is_none() { buf.len() } else { 0 };
            self.inbuf = buf;
        }
    }

    fn command_line(&mut self, line: &[u8]) {
        if line.len() > self.config.max_command_line {
            return self.client_error(ParseError::LineTooLong.reply());
        }
        let Some(content) = line.strip_suffix(b"\r\n") else {
            return self.client_error(ParseError::BareLf.reply());
        };
        match parse_command(content) {
            Ok(command) => self.command(command),
            Err(e) => {
                match e {
                    ParseError::BadRecipient(_) if matches!(self.state, State::Rcpt) => {
                        self.rcpt_refusals += 1
                    }
                    _ if matches!(self.state, State::Mail) && verb_is(content, b"MAIL") => {
                        self.excused_503s = self.config.max_recipients.saturating_add(1);
                    }
                    _ => {}
                }
                self.client_error(e.reply());
            }
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Ehlo(name) => self.helo(name, true),
            Command::Helo(name) => self.helo(name, false),
            Command::Mail { from, params } => self.mail(from, params),
            Command::Rcpt { to, params } => self.rcpt(to, params),
            Command::Data => self.data(),
            Command::Rset => {
                self.reset_transaction();
                self.state = if self.helo.is_some() {
                    State::Mail
                } else {
                    State::Helo
                };
                self.send(Reply::enhanced(250, 2, 0, 0, "OK"));
                self.events.push_back(ServerEvent::Reset);
            }
            Command::Noop => self.send(Reply::enhanced(250, 2, 0, 0, "OK")),
            Command::Vrfy(_) => self.send(Reply::enhanced(
                252,
                2,
                5,
                2,
                "cannot VRFY user, but will accept message and attempt delivery",
            )),
            Command::Expn(_) => self.send(Reply::enhanced(502, 5, 5, 1, "EXPN not supported")),
            Command::Help(_) => self.send(Reply::enhanced(
                214,
                2,
                0,
                0,
                "commands: EHLO HELO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT",
            )),
            Command::Quit => {
                let text = format!("{} closing connection", self.config.hostname);
                self.send(Reply::enhanced(221, 2, 0, 0, text));
                self.events.push_back(ServerEvent::Quit);
                self.close();
            }
        }
    }

    fn helo(&mut self, name: String, extended: bool) {
        if self.from.is_some() {
            self.events.push_back(ServerEvent::Reset);
        }
        self.reset_transaction();
        self.state = State::Mail;
        let host = &self.config.hostname;
        let reply = if extended {
            Reply::new(
                250,
                None,
                format!(
                    "{host} Hello {name}\nPIPELINING\n8BITMIME\nSIZE {}\nENHANCEDSTATUSCODES",
                    self.config.max_message_size
                ),
            )
        } else {
            Reply::new(250, None, format!("{host} Hello {name}"))
        };
        self.send(reply);
        self.helo = Some((name.clone(), extended));
        self.events.push_back(ServerEvent::Helo { name, extended });
    }

    fn mail(&mut self, from: ReversePath, params: MailParams) {
        match self.state {
            State::Helo => {
                return self.client_error(Reply::enhanced(503, 5, 5, 1, "send HELO or EHLO first"));
            }
            State::Rcpt => {
                return self.client_error(Reply::enhanced(
                    503,
                    5,
                    5,
                    1,
                    "sender already specified",
                ));
            }
            _ => {}
        }
        let refuse = |s: &mut Self| s.excused_503s = s.config.max_recipients.saturating_add(1);
        let esmtp = self.helo.as_ref().is_some_and(|(_, e)| *e);
        if !params.is_empty() && !esmtp {
            refuse(self);
            return self.client_error(Reply::enhanced(555, 5, 5, 4, "parameters need EHLO"));
        }
        if let Some((keyword, _)) = params.other.first() {
            refuse(self);
            let text = format!("parameter {keyword} not supported");
            return self.client_error(Reply::enhanced(555, 5, 5, 4, text));
        }
        if params
            .size
            .is_some_and(|n| n > self.config.max_message_size as u64)
        {
            refuse(self);
            return self.send(Reply::enhanced(
                552,
                5,
                3,
                4,
                "message size exceeds fixed maximum message size",
            ));
        }
        self.pending = Some(Pending::Mail {
            from: from.clone(),
            params: params.clone(),
        });
        self.events.push_back(ServerEvent::Mail { from, params });
    }

    fn rcpt(&mut self, to: Mailbox, params: Vec<(String, Option<String>)>) {
        if !matches!(self.state, State::Rcpt) {
            return self.bad_order("need MAIL command");
        }
        if let Some((keyword, _)) = params.first() {
            self.rcpt_refusals += 1;
            let text = format!("parameter {keyword} not supported");
            return self.client_error(Reply::enhanced(555, 5, 5, 4, text));
        }
        if self.rcpts.len() >= self.config.max_recipients {
            self.rcpt_refusals += 1;
            return self.send(Reply::enhanced(452, 4, 5, 3, "too many recipients"));
        }
        self.pending = Some(Pending::Rcpt(to.clone()));
        self.events.push_back(ServerEvent::Rcpt { to });
    }

    fn data(&mut self) {
        if !matches!(self.state, State::Rcpt) {
            return self.bad_order("need MAIL command");
        }
        if self.rcpts.is_empty() {
            if self.rcpt_refusals > 0 {
                return self.send(Reply::enhanced(554, 5, 5, 1, "no valid recipients"));
            }
            return self.bad_order("no valid recipients");
        }
        self.send(Reply::new(
            354,
            None,
            "Start mail input; end with <CRLF>.<CRLF>",
        ));
        self.state = State::MessageText(DataReceiver::new(
            self.config.max_message_size,
            self.config.max_text_line,
        ));
    }

    fn text_line(&mut self, line: &[u8]) {
        let State::MessageText(rx) = &mut self.state else {
            return;
        };
        if rx.push_line(line) == LineOutcome::More {
            return;
        }
        let State::MessageText(rx) = std::mem::replace(&mut self.state, State::Mail) else {
            return;
        };
        match rx.finish() {
            Ok(data) => {
                let (helo, esmtp) = self.helo.clone().unwrap_or_default();
                let (from, params) = self
                    .from
                    .take()
                    .unwrap_or((ReversePath::Null, MailParams::default()));
                let envelope = Envelope {
                    helo,
                    esmtp,
                    from,
                    params,
                    rcpts: std::mem::take(&mut self.rcpts),
                };
                self.reset_transaction();
                self.pending = Some(Pending::Message);
                self.events
                    .push_back(ServerEvent::Message { envelope, data });
            }
            Err(rejection) => {
                self.reset_transaction();
                match rejection {
                    DataRejection::TooBig => self.send(Reply::enhanced(
                        552,
                        5,
                        3,
                        4,
                        "message size exceeds fixed maximum message size",
                    )),
                    DataRejection::LineTooLong => {
                        self.client_error(Reply::enhanced(500, 5, 5, 2, "line too long"))
                    }
                    DataRejection::BareLineEnd => self.client_error(Reply::enhanced(
                        554,
                        5,
                        6,
                        2,
                        "bare LF or bare CR in message not allowed (RFC 5321 section 2.3.8)",
                    )),
                    DataRejection::Nul => self.client_error(Reply::enhanced(
                        554,
                        5,
                        6,
                        0,
                        "NUL octet in message not allowed",
                    )),
                }
            }
        }
    }
}

/// True when `line` starts with `verb` (any case) followed by a space or its end.
fn verb_is(line: &[u8], verb: &[u8]) -> bool {
    line.len() >= verb.len()
        && line[..verb.len()].eq_ignore_ascii_case(verb)
        && matches!(line.get(verb.len()), None | Some(b' '))
}
