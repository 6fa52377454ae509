//! SMTP commands: the grammar of RFC 5321 §4.1.1 and §4.1.2, with the ESMTP parameters of
//! SIZE (RFC 1870 §3) and BODY (RFC 6152 §2), parsed with nom.
//!
//! [`parse_command`] takes one command line without its CRLF. The line framing (CRLF, length
//! caps) belongs to the caller, [`crate::server::ServerSession`]; this module still refuses a
//! NUL, CR or LF inside the line so that no caller can be smuggled a second command.
//!
//! Leniency, stated once:
//! - verbs are case-insensitive (RFC 5321 §2.4);
//! - `MAIL FROM: <a@b>` and `RCPT TO: <a@b>` (spaces after the colon) are accepted, as many
//!   MTAs send them;
//! - trailing spaces after a command and runs of spaces between parameters are accepted;
//! - the HELO/EHLO argument is any run of printable ASCII: RFC 5321 §4.1.4 forbids refusing a
//!   session over it and LAN hosts of the Exchange era announce NetBIOS names (`EXCH_01`);
//! - a source route (`<@a,@b:u@c>`, RFC 5321 §4.1.1.3 and appendix C) is accepted and dropped.
//!
//! ESMTP keywords are returned upper-cased; values are kept as sent.

use std::fmt::Write as _;

use nom::bytes::complete::{tag, tag_no_case, take_while, take_while1};
use nom::combinator::opt;
use nom::{IResult, Parser};

use crate::address::{self, MAX_PATH, Mailbox, ReversePath};
use crate::reply::Reply;

/// Hard cap, in octets without CRLF, on the line [`parse_command`] will look at; longer input
/// gives [`ParseError::LineTooLong`] whatever the caller's own limit (RFC 5321 §4.5.3.1.4
/// asks for 512 octets; the server's configured limit is normally the one that applies).
pub const MAX_PARSE_LINE: usize = 65_536;
/// Maximum number of ESMTP parameters on one MAIL or RCPT command.
pub const MAX_PARAMS: usize = 16;
/// Maximum length in octets of a HELO/EHLO argument (the domain cap of RFC 5321 §4.5.3.1.2).
pub const MAX_HELO_ARG: usize = 255;

/// The `BODY=` parameter of MAIL (RFC 6152 §2): `7BIT` or `8BITMIME`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyType {
    /// `BODY=7BIT`
    SevenBit,
    /// `BODY=8BITMIME`
    EightBitMime,
}

impl BodyType {
    /// The wire value: `7BIT` or `8BITMIME` (RFC 6152 §2).
    pub fn as_str(self) -> &'static str {
        match self {
            BodyType::SevenBit => "7BIT",
            BodyType::EightBitMime => "8BITMIME",
        }
    }
}

/// Parameters of MAIL FROM (RFC 5321 §4.1.2 `Mail-parameters`).
///
/// `size` is the declared message size in octets (RFC 1870 §3); `body` the declared body
/// type (RFC 6152 §2); `other` every other `keyword[=value]`, keyword upper-cased, in the
/// order sent. The server refuses a non-empty `other` with 555 5.5.4 (RFC 5321 §4.1.1.11).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailParams {
    /// `SIZE=n`, octets (RFC 1870 §3).
    pub size: Option<u64>,
    /// `BODY=7BIT|8BITMIME` (RFC 6152 §2).
    pub body: Option<BodyType>,
    /// Any other parameter: (upper-cased keyword, value as sent).
    pub other: Vec<(String, Option<String>)>,
}

impl MailParams {
    /// True when no parameter is set.
    pub fn is_empty(&self) -> bool {
        self.size.is_none() && self.body.is_none() && self.other.is_empty()
    }
}

/// One SMTP command (RFC 5321 §4.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `EHLO domain` (RFC 5321 §4.1.1.1); the argument as sent.
    Ehlo(String),
    /// `HELO domain` (RFC 5321 §4.1.1.1); the argument as sent.
    Helo(String),
    /// `MAIL FROM:<reverse-path> [params]` (RFC 5321 §4.1.1.2).
    Mail {
        /// The reverse path, `<>` or a mailbox.
        from: ReversePath,
        /// SIZE, BODY and other parameters.
        params: MailParams,
    },
    /// `RCPT TO:<forward-path> [params]` (RFC 5321 §4.1.1.3); `<Postmaster>` gives
    /// [`Mailbox::postmaster`].
    Rcpt {
        /// The forward path, source route dropped.
        to: Mailbox,
        /// Parameters, keyword upper-cased (mtalab offers none).
        params: Vec<(String, Option<String>)>,
    },
    /// `DATA` (RFC 5321 §4.1.1.4).
    Data,
    /// `RSET` (RFC 5321 §4.1.1.5).
    Rset,
    /// `NOOP [string]` (RFC 5321 §4.1.1.9); the argument is ignored.
    Noop,
    /// `QUIT` (RFC 5321 §4.1.1.10).
    Quit,
    /// `VRFY string` (RFC 5321 §4.1.1.6).
    Vrfy(String),
    /// `EXPN string` (RFC 5321 §4.1.1.7).
    Expn(String),
    /// `HELP [string]` (RFC 5321 §4.1.1.8).
    Help(Option<String>),
}

/// Errors of the command and reply grammars, and of line framing.
///
/// Each has its wire reaction, [`ParseError::reply`]. The reply-side variants
/// (`BadReply`, `ReplyLineTooLong`, `TooManyReplyLines`) come from
/// [`crate::reply::ReplyParser`] and are never sent by a server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The verb is not one mtalab knows (RFC 5321 §4.2.4, 500).
    #[error("command unrecognized")]
    UnknownCommand,
    /// The arguments do not follow the grammar (RFC 5321 §4.1, 501 5.5.4).
    #[error("syntax error: {0}")]
    Syntax(String),
    /// The MAIL reverse path is malformed (501 5.1.7, RFC 3463 §3.2).
    #[error("bad sender address syntax: {0}")]
    BadSender(String),
    /// The RCPT forward path is malformed (501 5.1.3, RFC 3463 §3.2).
    #[error("bad recipient address syntax: {0}")]
    BadRecipient(String),
    /// A mailbox given to [`Mailbox::parse`] is malformed (501 5.1.3).
    #[error("bad address syntax: {0}")]
    BadAddress(String),
    /// An ESMTP parameter is malformed or repeated (501 5.5.4, RFC 5321 §4.1.2).
    #[error("bad parameter: {0}")]
    BadParam(String),
    /// The line exceeds the limit (RFC 5321 §4.5.3.1.4, 500 5.5.2).
    #[error("line too long")]
    LineTooLong,
    /// An LF not preceded by CR (RFC 5321 §2.3.8, 500 5.5.2).
    #[error("bare LF not allowed (RFC 5321 section 2.3.8)")]
    BareLf,
    /// A CR not followed by LF (RFC 5321 §2.3.8, 500 5.5.2).
    #[error("bare CR not allowed (RFC 5321 section 2.3.8)")]
    BareCr,
    /// A NUL octet in a command (500 5.5.2).
    #[error("NUL octet not allowed in a command")]
    Nul,
    /// A reply line does not follow RFC 5321 §4.2 `Reply-line`.
    #[error("malformed reply: {0}")]
    BadReply(String),
    /// A reply line exceeds [`crate::reply::MAX_REPLY_LINE`] octets.
    #[error("reply line too long")]
    ReplyLineTooLong,
    /// A multi-line reply exceeds [`crate::reply::MAX_REPLY_LINES`] lines.
    #[error("too many reply lines")]
    TooManyReplyLines,
}

impl ParseError {
    /// The reply a server sends for this error (RFC 5321 §4.2.2, codes of RFC 3463):
    ///
    /// | error | reply |
    /// |---|---|
    /// | `UnknownCommand` | 500 5.5.1 |
    /// | `Syntax`, `BadParam` | 501 5.5.4 |
    /// | `BadSender` | 501 5.1.7 |
    /// | `BadRecipient`, `BadAddress` | 501 5.1.3 |
    /// | `LineTooLong`, `BareLf`, `BareCr`, `Nul` | 500 5.5.2 |
    /// | reply-side errors | 500 5.5.2 (never sent by a server) |
    ///
    /// The reply text is the error's message.
    pub fn reply(&self) -> Reply {
        let (code, subject, detail) = match self {
            ParseError::UnknownCommand => (500, 5, 1),
            ParseError::Syntax(_) | ParseError::BadParam(_) => (501, 5, 4),
            ParseError::BadSender(_) => (501, 1, 7),
            ParseError::BadRecipient(_) | ParseError::BadAddress(_) => (501, 1, 3),
            ParseError::LineTooLong
            | ParseError::BareLf
            | ParseError::BareCr
            | ParseError::Nul
            | ParseError::BadReply(_)
            | ParseError::ReplyLineTooLong
            | ParseError::TooManyReplyLines => (500, 5, 2),
        };
        Reply::enhanced(code, 5, subject, detail, self.to_string())
    }
}

/// Parses one command line given WITHOUT its CRLF (RFC 5321 §4.1.1, §4.1.2).
///
/// Errors: [`ParseError::LineTooLong`] beyond [`MAX_PARSE_LINE`] octets; [`ParseError::Nul`],
/// [`ParseError::BareLf`], [`ParseError::BareCr`] for those octets anywhere in the line;
/// [`ParseError::UnknownCommand`] for an unknown verb; [`ParseError::Syntax`],
/// [`ParseError::BadSender`], [`ParseError::BadRecipient`], [`ParseError::BadParam`] for
/// malformed arguments. Leniencies are listed in the module documentation.
pub fn parse_command(line: &[u8]) -> Result<Command, ParseError> {
    if line.len() > MAX_PARSE_LINE {
        return Err(ParseError::LineTooLong);
    }
    if line.contains(&0) {
        return Err(ParseError::Nul);
    }
    if line.contains(&b'\n') {
        return Err(ParseError::BareLf);
    }
    if line.contains(&b'\r') {
        return Err(ParseError::BareCr);
    }
    let (rest, verb) = verb(line).map_err(|_| ParseError::UnknownCommand)?;
    let args = match rest {
        [] => rest,
        [b' ', tail @ ..] => tail,
        _ => return Err(ParseError::UnknownCommand),
    };
    let is = |name: &str| verb.eq_ignore_ascii_case(name.as_bytes());
    if is("EHLO") {
        Ok(Command::Ehlo(helo_arg(args, "EHLO")?))
    } else if is("HELO") {
        Ok(Command::Helo(helo_arg(args, "HELO")?))
    } else if is("MAIL") {
        parse_mail(args)
    } else if is("RCPT") {
        parse_rcpt(args)
    } else if is("DATA") {
        no_args(args, "DATA", Command::Data)
    } else if is("RSET") {
        no_args(args, "RSET", Command::Rset)
    } else if is("QUIT") {
        no_args(args, "QUIT", Command::Quit)
    } else if is("NOOP") {
        Ok(Command::Noop)
    } else if is("VRFY") {
        Ok(Command::Vrfy(
            string_arg(args)?.ok_or_else(|| syntax("VRFY requires an argument"))?,
        ))
    } else if is("EXPN") {
        Ok(Command::Expn(
            string_arg(args)?.ok_or_else(|| syntax("EXPN requires an argument"))?,
        ))
    } else if is("HELP") {
        Ok(Command::Help(string_arg(args)?))
    } else {
        Err(ParseError::UnknownCommand)
    }
}

fn syntax(msg: &str) -> ParseError {
    ParseError::Syntax(msg.to_string())
}

fn verb(i: &[u8]) -> IResult<&[u8], &[u8]> {
    take_while1(|c: u8| c.is_ascii_alphabetic()).parse(i)
}

fn spaces(i: &[u8]) -> IResult<&[u8], &[u8]> {
    take_while(|c: u8| c == b' ').parse(i)
}

fn trim_spaces(mut s: &[u8]) -> &[u8] {
    while let [b' ', tail @ ..] = s {
        s = tail;
    }
    while let [head @ .., b' '] = s {
        s = head;
    }
    s
}

fn no_args(args: &[u8], verb: &str, cmd: Command) -> Result<Command, ParseError> {
    if trim_spaces(args).is_empty() {
        Ok(cmd)
    } else {
        Err(ParseError::Syntax(format!("{verb} takes no argument")))
    }
}

fn helo_arg(args: &[u8], verb: &str) -> Result<String, ParseError> {
    let arg = trim_spaces(args);
    if arg.is_empty() || arg.len() > MAX_HELO_ARG || !arg.iter().all(|c| (33..=126).contains(c)) {
        return Err(ParseError::Syntax(format!(
            "{verb} requires a domain or address literal"
        )));
    }
    Ok(ascii_string(arg))
}

fn string_arg(args: &[u8]) -> Result<Option<String>, ParseError> {
    let arg = trim_spaces(args);
    if arg.is_empty() {
        return Ok(None);
    }
    if !arg.iter().all(|&c| c == b'\t' || (32..=126).contains(&c)) {
        return Err(syntax("argument must be printable ASCII"));
    }
    Ok(Some(ascii_string(arg)))
}

fn ascii_string(s: &[u8]) -> String {
    s.iter().map(|&c| char::from(c)).collect()
}

/// `"<" [A-d-l ":"] Mailbox ">"` (RFC 5321 §4.1.2 `Path`); `domainless` allows `<postmaster>`.
fn path(i: &[u8], domainless_postmaster: bool) -> Result<(&[u8], Mailbox), String> {
    let inner = i.strip_prefix(b"<").ok_or("expected <path>")?;
    if domainless_postmaster
        && let Ok((rest, _)) = (
            tag_no_case::<_, _, nom::error::Error<&[u8]>>("postmaster"),
            tag(">"),
        )
            .parse(inner)
    {
        return Ok((rest, Mailbox::postmaster()));
    }
    let (after_route, _) = opt(address::source_route)
        .parse(inner)
        .map_err(|_: nom::Err<nom::error::Error<&[u8]>>| "malformed source route".to_string())?;
    let (rest, mailbox) = address::parse_mailbox_prefix(after_route).map_err(str::to_string)?;
    let rest = rest
        .strip_prefix(b">")
        .ok_or("expected > after the mailbox")?;
    if i.len() - rest.len() > MAX_PATH {
        return Err("path longer than 256 octets".into());
    }
    Ok((rest, mailbox))
}

fn parse_mail(args: &[u8]) -> Result<Command, ParseError> {
    let (rest, _) = tag_no_case::<_, _, nom::error::Error<&[u8]>>("FROM:")
        .parse(args)
        .map_err(|_| syntax("expected MAIL FROM:<reverse-path>"))?;
    let (rest, _) = spaces(rest).map_err(|_| syntax("expected MAIL FROM:<reverse-path>"))?;
    let (rest, from) = if let Some(tail) = rest.strip_prefix(b"<>") {
        (tail, ReversePath::Null)
    } else {
        let (tail, mailbox) = path(rest, false).map_err(ParseError::BadSender)?;
        (tail, ReversePath::Mailbox(mailbox))
    };
    let list = params(rest)?;
    let mut params = MailParams::default();
    for (keyword, value) in list {
        match keyword.as_str() {
            "SIZE" => {
                let v =
                    value.ok_or_else(|| ParseError::BadParam("SIZE requires a value".into()))?;
                if v.is_empty() || v.len() > 20 || !v.bytes().all(|c| c.is_ascii_digit()) {
                    return Err(ParseError::BadParam(
                        "SIZE value must be 1 to 20 digits".into(),
                    ));
                }
                let n = v
                    .parse::<u64>()
                    .map_err(|_| ParseError::BadParam("SIZE value out of range".into()))?;
                params.size = Some(n);
            }
            "BODY" => {
                let v =
                    value.ok_or_else(|| ParseError::BadParam("BODY requires a value".into()))?;
                params.body = Some(if v.eq_ignore_ascii_case("7BIT") {
                    BodyType::SevenBit
                } else if v.eq_ignore_ascii_case("8BITMIME") {
                    BodyType::EightBitMime
                } else {
                    return Err(ParseError::BadParam("BODY must be 7BIT or 8BITMIME".into()));
                });
            }
            _ => params.other.push((keyword, value)),
        }
    }
    Ok(Command::Mail { from, params })
}

fn parse_rcpt(args: &[u8]) -> Result<Command, ParseError> {
    let (rest, _) = tag_no_case::<_, _, nom::error::Error<&[u8]>>("TO:")
        .parse(args)
        .map_err(|_| syntax("expected RCPT TO:<forward-path>"))?;
    let (rest, _) = spaces(rest).map_err(|_| syntax("expected RCPT TO:<forward-path>"))?;
    let (rest, to) = path(rest, true).map_err(ParseError::BadRecipient)?;
    let params = params(rest)?;
    Ok(Command::Rcpt { to, params })
}

fn is_esmtp_value(c: u8) -> bool {
    (33..=60).contains(&c) || (62..=126).contains(&c)
}

/// `esmtp-param = esmtp-keyword ["=" esmtp-value]` (RFC 5321 §4.1.2).
/// One parameter: keyword and optional value, both as sent.
type RawParam<'a> = (&'a [u8], Option<&'a [u8]>);

fn esmtp_param(i: &[u8]) -> IResult<&[u8], RawParam<'_>> {
    let (rest, keyword) = take_while1(|c: u8| c.is_ascii_alphanumeric() || c == b'-').parse(i)?;
    if keyword[0] == b'-' {
        return Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Verify,
        )));
    }
    let (rest, value) = opt((tag("="), take_while1(is_esmtp_value)).map(|(_, v)| v)).parse(rest)?;
    Ok((rest, (keyword, value)))
}

/// The text after a path: empty, or SP-separated parameters (runs of SP tolerated).
fn params(rest: &[u8]) -> Result<Vec<(String, Option<String>)>, ParseError> {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    let mut rest = match rest {
        [] => return Ok(out),
        [b' ', ..] => rest,
        _ => return Err(syntax("unexpected text after the path")),
    };
    loop {
        rest = trim_spaces_start(rest);
        if rest.is_empty() {
            return Ok(out);
        }
        let (tail, (keyword, value)) =
            esmtp_param(rest).map_err(|_| ParseError::BadParam("malformed parameter".into()))?;
        if !matches!(tail, [] | [b' ', ..]) {
            return Err(ParseError::BadParam("malformed parameter".into()));
        }
        if out.len() == MAX_PARAMS {
            return Err(ParseError::BadParam("too many parameters".into()));
        }
        let keyword = ascii_string(keyword).to_ascii_uppercase();
        if out.iter().any(|(k, _)| *k == keyword) {
            return Err(ParseError::BadParam(format!(
                "duplicate parameter {keyword}"
            )));
        }
        out.push((keyword, value.map(ascii_string)));
        rest = tail;
    }
}

fn trim_spaces_start(mut s: &[u8]) -> &[u8] {
    while let [b' ', tail @ ..] = s {
        s = tail;
    }
    s
}

/// Appends `s`, replacing CR, LF, NUL and the other control octets but HTAB with `?` so that
/// no argument can end a command line early.
fn push_arg(out: &mut Vec<u8>, s: &str) {
    out.extend(s.bytes().map(|c| {
        if (c < 0x20 && c != b'\t') || c == 0x7f {
            b'?'
        } else {
            c
        }
    }));
}

fn push_params(out: &mut Vec<u8>, params: &[(String, Option<String>)]) {
    for (keyword, value) in params {
        out.push(b' ');
        push_arg(out, keyword);
        if let Some(v) = value {
            out.push(b'=');
            push_arg(out, v);
        }
    }
}

impl Command {
    /// Appends the wire form with its CRLF (RFC 5321 §4.1.1), verbs upper-case, paths in
    /// angle brackets, MAIL parameters in the order SIZE, BODY, others. Control octets in
    /// arguments (but HTAB) are written as `?` so that one command stays one line.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Command::Ehlo(d) => {
                out.extend_from_slice(b"EHLO ");
                push_arg(out, d);
            }
            Command::Helo(d) => {
                out.extend_from_slice(b"HELO ");
                push_arg(out, d);
            }
            Command::Mail { from, params } => {
                out.extend_from_slice(b"MAIL FROM:<");
                push_arg(out, &from.to_string());
                out.push(b'>');
                if let Some(size) = params.size {
                    let mut s = String::new();
                    let _ = write!(s, " SIZE={size}");
                    out.extend_from_slice(s.as_bytes());
                }
                if let Some(body) = params.body {
                    out.extend_from_slice(b" BODY=");
                    out.extend_from_slice(body.as_str().as_bytes());
                }
                push_params(out, &params.other);
            }
            Command::Rcpt { to, params } => {
                out.extend_from_slice(b"RCPT TO:<");
                push_arg(out, &to.to_string());
                out.push(b'>');
                push_params(out, params);
            }
            Command::Data => out.extend_from_slice(b"DATA"),
            Command::Rset => out.extend_from_slice(b"RSET"),
            Command::Noop => out.extend_from_slice(b"NOOP"),
            Command::Quit => out.extend_from_slice(b"QUIT"),
            Command::Vrfy(s) => {
                out.extend_from_slice(b"VRFY ");
                push_arg(out, s);
            }
            Command::Expn(s) => {
                out.extend_from_slice(b"EXPN ");
                push_arg(out, s);
            }
            Command::Help(None) => out.extend_from_slice(b"HELP"),
            Command::Help(Some(s)) => {
                out.extend_from_slice(b"HELP ");
                push_arg(out, s);
            }
        }
        out.extend_from_slice(b"\r\n");
    }
}
