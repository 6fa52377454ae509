//! The SMTP client session (RFC 5321 §3, §4.1), sans-IO: the IMS's outbound relay and the
//! lab's sender.
//!
//! [`ClientSession`] waits for the 220 greeting, sends EHLO (HELO when EHLO gets 5yz,
//! RFC 5321 §4.1.4), reports [`ClientEvent::Ready`], then runs the transactions given to
//! [`ClientSession::send`] one after another, each reported by [`ClientEvent::Done`].
//!
//! # Policies
//!
//! - With PIPELINING (RFC 2920) a transaction's RSET (when owed), MAIL, RCPTs and DATA go out
//!   in one group; without it, one command per reply.
//! - `SIZE=` (RFC 1870) is sent when SIZE was offered; `BODY=8BITMIME` (RFC 6152) when
//!   8BITMIME was offered and the message has an octet above 127. Without 8BITMIME an 8-bit
//!   message is sent as it is (mtalab does not downgrade MIME).
//! - The message is sent only when MAIL and at least one RCPT were accepted. When DATA was
//!   pipelined and still drew 354 although no RCPT was accepted, a lone `.` ends that empty
//!   message (RFC 2920 §3.1) and the transaction reports no data reply.
//! - A transaction that ended before the reply to its message text (MAIL refused, no RCPT
//!   accepted, DATA refused) is followed by RSET before the next one (RFC 5321 §4.1.1.5).
//! - A 421 at any time makes the session unusable: [`ClientEvent::Rejected`], closed, and a
//!   transaction in flight gets no `Done` (all its recipients failed transiently). A refused
//!   greeting, or EHLO then HELO refused, also gives `Rejected`; QUIT is then sent as a
//!   courtesy (RFC 5321 §3.1) and nothing more is reported.
//! - Any reply that breaks the grammar or comes when none is due is a [`ClientError`]; the
//!   session is closed after it.

use std::collections::VecDeque;

use crate::address::{Mailbox, ReversePath};
use crate::command::{BodyType, Command, MailParams, ParseError};
use crate::data::{dot_stuff, has_8bit, message_size};
use crate::reply::{Reply, ReplyParser};

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The name sent in EHLO/HELO (RFC 5321 §4.1.1.1): a domain or address literal.
    pub helo: String,
}

/// One mail transaction to send (RFC 5321 §3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// MAIL FROM reverse path.
    pub from: ReversePath,
    /// RCPT TO recipients, in order.
    pub rcpts: Vec<Mailbox>,
    /// The message, unstuffed; line ends should be CRLF (bare LF and bare CR are sent as
    /// CRLF, see [`crate::data::dot_stuff`]).
    pub data: Vec<u8>,
}

/// The replies a transaction drew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionResult {
    /// The reply to MAIL FROM.
    pub mail: Reply,
    /// One entry per recipient, in order: the reply to its RCPT or, when RCPT was never sent
    /// because MAIL was refused (lock-step), the MAIL reply.
    pub rcpts: Vec<(Mailbox, Reply)>,
    /// The reply to the message text, or to DATA when DATA was refused; `None` when MAIL was
    /// refused or no RCPT was accepted.
    pub data: Option<Reply>,
}

impl TransactionResult {
    /// Recipients the message was delivered to: RCPT accepted and the final data reply 2yz.
    pub fn delivered(&self) -> Vec<&Mailbox> {
        match &self.data {
            Some(d) if d.is_completion() && self.mail.is_completion() => self
                .rcpts
                .iter()
                .filter(|(_, r)| r.is_completion())
                .map(|(m, _)| m)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Recipients not delivered to, each with the reply that decided it: its RCPT reply when
    /// that was negative, else the data reply (or the MAIL reply when MAIL was refused).
    pub fn failed(&self) -> Vec<(&Mailbox, &Reply)> {
        self.rcpts
            .iter()
            .filter_map(|(m, r)| {
                if !self.mail.is_completion() {
                    Some((m, &self.mail))
                } else if !r.is_completion() {
                    Some((m, r))
                } else {
                    match &self.data {
                        Some(d) if d.is_completion() => None,
                        Some(d) => Some((m, d)),
                        None => Some((m, r)),
                    }
                }
            })
            .collect()
    }

    /// True when every recipient was delivered to.
    pub fn all_delivered(&self) -> bool {
        self.failed().is_empty() && !self.rcpts.is_empty()
    }
}

/// What the client session tells its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The server accepted EHLO (or HELO); transactions can be sent. `size` is the SIZE
    /// offered (RFC 1870 §4): `Some(0)` when SIZE was offered without a fixed limit, `None`
    /// when not offered.
    Ready {
        /// EHLO was accepted.
        esmtp: bool,
        /// PIPELINING offered (RFC 2920).
        pipelining: bool,
        /// SIZE offered, octets.
        size: Option<u64>,
        /// 8BITMIME offered (RFC 6152).
        eightbitmime: bool,
    },
    /// A transaction ended.
    Done(TransactionResult),
    /// The greeting or EHLO and HELO were refused, or 421 came: the session is unusable.
    Rejected(Reply),
    /// QUIT was answered.
    Closed,
}

/// A protocol violation by the server. The session is closed after one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// A reply broke the grammar of RFC 5321 §4.2.
    #[error("malformed reply: {0}")]
    BadReply(#[from] ParseError),
    /// A reply came when none was due, or with a code that makes no sense there
    /// (RFC 5321 §4.3.2).
    #[error("unexpected reply: {0}")]
    UnexpectedReply(Reply),
}

/// What the client waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The 220 greeting.
    Greeting,
    /// The reply to EHLO.
    EhloReply,
    /// The reply to HELO.
    HeloReply,
    /// A transaction or QUIT from the caller.
    Transaction,
    /// Replies of the transaction in flight.
    TransactionReplies,
    /// The reply to QUIT.
    QuitReply,
    /// Nothing.
    Closed,
}

/// A reply the client is owed, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Rset,
    Mail,
    Rcpt(usize),
    Data,
    /// The final reply to the message text.
    Text,
    /// The reply to a lone `.` sent after an unwanted 354.
    EmptyText,
}

#[derive(Debug)]
struct InFlight {
    txn: Transaction,
    params: MailParams,
    pipelined: bool,
    expect: VecDeque<Expect>,
    mail: Option<Reply>,
    rcpts: Vec<(Mailbox, Reply)>,
    data: Option<Reply>,
    text_answered: bool,
}

impl InFlight {
    fn envelope_ok(&self) -> bool {
        self.mail.as_ref().is_some_and(Reply::is_completion)
            && self.rcpts.iter().any(|(_, r)| r.is_completion())
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Capabilities {
    esmtp: bool,
    pipelining: bool,
    size: Option<u64>,
    eightbitmime: bool,
}

/// One client-side SMTP session; see the module documentation for its policies.
#[derive(Debug)]
pub struct ClientSession {
    config: ClientConfig,
    state: State,
    parser: ReplyParser,
    out: Vec<u8>,
    events: VecDeque<ClientEvent>,
    caps: Capabilities,
    queue: VecDeque<Transaction>,
    current: Option<InFlight>,
    rset_owed: bool,
    quit_requested: bool,
}

impl ClientSession {
    /// A new session waiting for the server's 220 greeting (RFC 5321 §3.1).
    pub fn new(config: ClientConfig) -> Self {
        ClientSession {
            config,
            state: State::Greeting,
            parser: ReplyParser::new(),
            out: Vec::new(),
            events: VecDeque::new(),
            caps: Capabilities::default(),
            queue: VecDeque::new(),
            current: None,
            rset_owed: false,
            quit_requested: false,
        }
    }

    /// Takes bytes received from the server.
    ///
    /// Errors: [`ClientError::BadReply`] for a malformed reply, [`ClientError::UnexpectedReply`]
    /// for a reply not due; the session is closed after either. Input after close is ignored.
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        if self.state == State::Closed {
            return Ok(());
        }
        self.parser.push(bytes);
        loop {
            if self.state == State::Closed {
                return Ok(());
            }
            let reply = match self.parser.next_reply() {
                Ok(Some(reply)) => reply,
                Ok(None) => return Ok(()),
                Err(e) => {
                    self.fail();
                    return Err(ClientError::BadReply(e));
                }
            };
            if let Err(e) = self.on_reply(reply) {
                self.fail();
                return Err(e);
            }
        }
    }

    /// Appends all pending output bytes to `out`.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.out);
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Queues a transaction; it starts once the session is ready and earlier ones are done.
    /// Ignored once the session is closed or QUIT was asked for.
    pub fn send(&mut self, txn: Transaction) {
        if self.state == State::Closed || self.quit_requested {
            return;
        }
        self.queue.push_back(txn);
        self.start_next();
    }

    /// Asks for QUIT once queued transactions are done (RFC 5321 §4.1.1.10);
    /// [`ClientEvent::Closed`] follows its reply.
    pub fn quit(&mut self) {
        if self.state == State::Closed {
            return;
        }
        self.quit_requested = true;
        self.start_next();
    }

    /// True once the session is over (after QUIT's reply, a rejection or an error).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    fn write(&mut self, command: &Command) {
        command.encode(&mut self.out);
    }

    fn fail(&mut self) {
        self.state = State::Closed;
        self.current = None;
        self.queue.clear();
    }

    fn reject(&mut self, reply: Reply, courtesy_quit: bool) {
        if courtesy_quit {
            self.write(&Command::Quit);
        }
        self.events.push_back(ClientEvent::Rejected(reply));
        self.fail();
    }

    fn on_reply(&mut self, reply: Reply) -> Result<(), ClientError> {
        if self.state == State::QuitReply {
            self.events.push_back(ClientEvent::Closed);
            self.fail();
            return Ok(());
        }
        if reply.code == 421 {
            self.reject(reply, false);
            return Ok(());
        }
        match self.state {
            State::Greeting => match reply.code {
                220 => {
                    self.write(&Command::Ehlo(self.config.helo.clone()));
                    self.state = State::EhloReply;
                }
                400..=599 => self.reject(reply, true),
                _ => return Err(ClientError::UnexpectedReply(reply)),
            },
            State::EhloReply => match reply.code {
                250 => {
                    self.caps = parse_capabilities(&reply);
                    self.ready();
                }
                500..=599 => {
                    self.write(&Command::Helo(self.config.helo.clone()));
                    self.state = State::HeloReply;
                }
                400..=499 => self.reject(reply, true),
                _ => return Err(ClientError::UnexpectedReply(reply)),
            },
            State::HeloReply => match reply.code {
                250 => {
                    self.caps = Capabilities::default();
                    self.ready();
                }
                400..=599 => self.reject(reply, true),
                _ => return Err(ClientError::UnexpectedReply(reply)),
            },
            State::TransactionReplies => self.transaction_reply(reply)?,
            State::Transaction | State::QuitReply | State::Closed => {
                return Err(ClientError::UnexpectedReply(reply));
            }
        }
        Ok(())
    }

    fn ready(&mut self) {
        let c = self.caps;
        self.events.push_back(ClientEvent::Ready {
            esmtp: c.esmtp,
            pipelining: c.pipelining,
            size: c.size,
            eightbitmime: c.eightbitmime,
        });
        self.state = State::Transaction;
        self.start_next();
    }

    fn start_next(&mut self) {
        if self.state != State::Transaction {
            return;
        }
        if let Some(txn) = self.queue.pop_front() {
            self.begin(txn);
        } else if self.quit_requested {
            self.write(&Command::Quit);
            self.state = State::QuitReply;
        }
    }

    fn begin(&mut self, txn: Transaction) {
        let params = MailParams {
            size: self.caps.size.map(|_| message_size(&txn.data)),
            body: (self.caps.eightbitmime && has_8bit(&txn.data)).then_some(BodyType::EightBitMime),
            other: Vec::new(),
        };
        let pipelined = self.caps.pipelining;
        let mut flight = InFlight {
            txn,
            params,
            pipelined,
            expect: VecDeque::new(),
            mail: None,
            rcpts: Vec::new(),
            data: None,
            text_answered: false,
        };
        self.state = State::TransactionReplies;
        let rset = std::mem::take(&mut self.rset_owed);
        if rset {
            self.write(&Command::Rset);
            flight.expect.push_back(Expect::Rset);
        }
        if pipelined || !rset {
            self.write_mail(&mut flight);
        }
        if pipelined {
            for i in 0..flight.txn.rcpts.len() {
                self.write_rcpt(&mut flight, i);
            }
            if !flight.txn.rcpts.is_empty() {
                self.write(&Command::Data);
                flight.expect.push_back(Expect::Data);
            }
        }
        self.current = Some(flight);
    }

    fn write_mail(&mut self, flight: &mut InFlight) {
        self.write(&Command::Mail {
            from: flight.txn.from.clone(),
            params: flight.params.clone(),
        });
        flight.expect.push_back(Expect::Mail);
    }

    fn write_rcpt(&mut self, flight: &mut InFlight, i: usize) {
        self.write(&Command::Rcpt {
            to: flight.txn.rcpts[i].clone(),
            params: Vec::new(),
        });
        flight.expect.push_back(Expect::Rcpt(i));
    }

    fn transaction_reply(&mut self, reply: Reply) -> Result<(), ClientError> {
        let Some(mut flight) = self.current.take() else {
            return Err(ClientError::UnexpectedReply(reply));
        };
        let Some(expect) = flight.expect.pop_front() else {
            return Err(ClientError::UnexpectedReply(reply));
        };
        let lockstep = !flight.pipelined;
        match expect {
            Expect::Rset => {
                if lockstep {
                    self.write_mail(&mut flight);
                }
            }
            Expect::Mail => {
                if lockstep {
                    if !reply.is_completion() {
                        flight.rcpts = flight
                            .txn
                            .rcpts
                            .iter()
                            .map(|m| (m.clone(), reply.clone()))
                            .collect();
                    } else if !flight.txn.rcpts.is_empty() {
                        self.write_rcpt(&mut flight, 0);
                    }
                }
                flight.mail = Some(reply);
            }
            Expect::Rcpt(i) => {
                let mailbox = flight.txn.rcpts[i].clone();
                flight.rcpts.push((mailbox, reply));
                if lockstep {
                    if i + 1 < flight.txn.rcpts.len() {
                        self.write_rcpt(&mut flight, i + 1);
                    } else if flight.envelope_ok() {
                        self.write(&Command::Data);
                        flight.expect.push_back(Expect::Data);
                    }
                }
            }
            Expect::Data => {
                let ok = flight.envelope_ok();
                if reply.code == 354 {
                    if ok {
                        dot_stuff(&flight.txn.data, &mut self.out);
                        flight.expect.push_back(Expect::Text);
                    } else {
                        self.out.extend_from_slice(b".\r\n");
                        flight.expect.push_back(Expect::EmptyText);
                    }
                } else if reply.is_positive() {
                    self.current = Some(flight);
                    return Err(ClientError::UnexpectedReply(reply));
                } else if ok {
                    flight.data = Some(reply);
                }
            }
            Expect::Text => {
                flight.data = Some(reply);
                flight.text_answered = true;
            }
            Expect::EmptyText => flight.text_answered = true,
        }
        if flight.expect.is_empty() {
            self.finish(flight);
        } else {
            self.current = Some(flight);
        }
        Ok(())
    }

    fn finish(&mut self, flight: InFlight) {
        self.rset_owed = !flight.text_answered;
        // every transaction waits for its MAIL reply before it can end; were it missing, the
        // transaction counts as a transient local failure
        let mail = flight
            .mail
            .unwrap_or_else(|| Reply::enhanced(451, 4, 3, 0, "no reply to MAIL"));
        self.events.push_back(ClientEvent::Done(TransactionResult {
            mail,
            rcpts: flight.rcpts,
            data: flight.data,
        }));
        self.state = State::Transaction;
        self.start_next();
    }
}

/// Reads the EHLO reply's keyword lines (RFC 5321 §4.1.1.1, `ehlo-line`).
fn parse_capabilities(reply: &Reply) -> Capabilities {
    let mut caps = Capabilities {
        esmtp: true,
        ..Capabilities::default()
    };
    for line in reply.lines.iter().skip(1) {
        let mut words = line.split_ascii_whitespace();
        let Some(keyword) = words.next() else {
            continue;
        };
        if keyword.eq_ignore_ascii_case("PIPELINING") {
            caps.pipelining = true;
        } else if keyword.eq_ignore_ascii_case("8BITMIME") {
            caps.eightbitmime = true;
        } else if keyword.eq_ignore_ascii_case("SIZE") {
            caps.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0));
        }
    }
    caps
}
