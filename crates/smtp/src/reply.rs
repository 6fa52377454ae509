//! SMTP replies (RFC 5321 §4.2) with enhanced status codes (RFC 3463, carried as in
//! RFC 2034 §3: at the start of the text of every line).
//!
//! [`Reply`] is built by servers and encoded to the wire; [`ReplyParser`] is the client side,
//! fed bytes incrementally and returning whole (possibly multi-line) replies.
//!
//! Caps: a reply line is at most [`MAX_REPLY_LINE`] octets with its line end (RFC 5321
//! §4.5.3.1.5 asks for 512; servers in the wild send longer EHLO lines, so the parser is
//! generous but bounded), and a reply at most [`MAX_REPLY_LINES`] lines.
//!
//! Reply text is ASCII: [`Reply::new`] replaces control octets (other than HTAB) and
//! non-ASCII characters with `?`, and [`ReplyParser`] does the same with what it reads, so
//! that a reply re-encodes to what was parsed.

use std::fmt;

use crate::command::ParseError;

/// Maximum reply line length in octets, line end included, accepted by [`ReplyParser`].
pub const MAX_REPLY_LINE: usize = 4096;
/// Maximum number of lines in one reply, for [`ReplyParser`] and [`Reply::new`].
pub const MAX_REPLY_LINES: usize = 128;
/// Maximum text length of one line kept by [`Reply::new`]: room is left for the code, the
/// separator, an enhanced code and CRLF within [`MAX_REPLY_LINE`].
pub const MAX_REPLY_TEXT: usize = MAX_REPLY_LINE - 32;

/// An enhanced mail system status code `class.subject.detail` (RFC 3463 §2): class 2, 4 or
/// 5, subject and detail 0 to 999. Displays as `5.1.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnhancedCode {
    /// 2 (success), 4 (persistent transient failure) or 5 (permanent failure).
    pub class: u8,
    /// Subject, 0 to 999 (RFC 3463 §3).
    pub subject: u16,
    /// Detail, 0 to 999 (RFC 3463 §3).
    pub detail: u16,
}

impl EnhancedCode {
    /// Builds `class.subject.detail` without checking the ranges.
    pub const fn new(class: u8, subject: u16, detail: u16) -> EnhancedCode {
        EnhancedCode {
            class,
            subject,
            detail,
        }
    }

    /// Parses a code at the start of `text` (RFC 3463 §2: `class "." subject "." detail`,
    /// class 2/4/5, subject and detail of 1 to 3 digits), which must be followed by a space
    /// or the end of the text. Returns the code and the text after it and its space.
    pub fn parse_prefix(text: &str) -> Option<(EnhancedCode, &str)> {
        let b = text.as_bytes();
        let class = match b.first()? {
            c @ (b'2' | b'4' | b'5') => c - b'0',
            _ => return None,
        };
        if b.get(1) != Some(&b'.') {
            return None;
        }
        let (subject, i) = digits(b, 2)?;
        if b.get(i) != Some(&b'.') {
            return None;
        }
        let (detail, j) = digits(b, i + 1)?;
        let rest = match b.get(j) {
            None => "",
            Some(b' ') => &text[j + 1..],
            Some(_) => return None,
        };
        Some((
            EnhancedCode {
                class,
                subject,
                detail,
            },
            rest,
        ))
    }
}

/// One to three digits at `b[start..]`: the value and the index after them.
fn digits(b: &[u8], start: usize) -> Option<(u16, usize)> {
    let mut value = 0u16;
    let mut i = start;
    while i < b.len() && b[i].is_ascii_digit() && i - start < 3 {
        value = value * 10 + u16::from(b[i] - b'0');
        i += 1;
    }
    if i == start || (i < b.len() && b[i].is_ascii_digit()) {
        return None;
    }
    Some((value, i))
}

impl fmt::Display for EnhancedCode {
    /// `class.subject.detail`, e.g. `5.1.1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// An SMTP reply (RFC 5321 §4.2): a three-digit code, an optional enhanced status code
/// (RFC 2034) and one or more lines of text (the text without the code prefixes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Reply code, 200 to 599 (RFC 5321 §4.2.1).
    pub code: u16,
    /// Enhanced status code written at the start of every line (RFC 2034 §3).
    pub enhanced: Option<EnhancedCode>,
    /// Text lines, at least one (possibly empty), without code, enhanced code or CRLF.
    pub lines: Vec<String>,
}

/// Makes reply text wire-safe: control characters (other than HTAB) and non-ASCII become `?`,
/// and the text is cut at [`MAX_REPLY_TEXT`] octets.
fn clean_line(line: &str) -> String {
    line.chars()
        .take(MAX_REPLY_TEXT)
        .map(|c| {
            if c == '\t' || (' '..='~').contains(&c) {
                c
            } else {
                '?'
            }
        })
        .collect()
}

impl Reply {
    /// Builds a reply; `text` is split at `'\n'` into lines (a `'\r'` before it is dropped),
    /// each line cleaned as the module documentation says, at most [`MAX_REPLY_LINES`] kept.
    pub fn new(code: u16, enhanced: Option<EnhancedCode>, text: impl Into<String>) -> Reply {
        let text = text.into();
        let lines = text
            .split('\n')
            .take(MAX_REPLY_LINES)
            .map(|l| clean_line(l.strip_suffix('\r').unwrap_or(l)))
            .collect();
        Reply {
            code,
            enhanced,
            lines,
        }
    }

    /// Shorthand for [`Reply::new`] with the enhanced code `class.subject.detail`
    /// (RFC 3463).
    pub fn enhanced(
        code: u16,
        class: u8,
        subject: u16,
        detail: u16,
        text: impl Into<String>,
    ) -> Reply {
        Reply::new(code, Some(EnhancedCode::new(class, subject, detail)), text)
    }

    /// Appends the wire form (RFC 5321 §4.2): `code-text` CRLF for every line but the last,
    /// `code SP text` CRLF for the last, the enhanced code and a space at the start of every
    /// line's text when present; a last line with no text at all is `code` CRLF.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let code = format!("{:03}", self.code % 1000);
        let enhanced = self.enhanced.map(|e| e.to_string());
        let empty = [String::new()];
        let lines: &[String] = if self.lines.is_empty() {
            &empty
        } else {
            &self.lines
        };
        for (i, line) in lines.iter().enumerate() {
            let last = i + 1 == lines.len();
            out.extend_from_slice(code.as_bytes());
            let text = clean_line(line);
            match (&enhanced, text.is_empty()) {
                (None, true) if last => {}
                (None, _) => {
                    out.push(if last { b' ' } else { b'-' });
                    out.extend_from_slice(text.as_bytes());
                }
                (Some(e), _) => {
                    out.push(if last { b' ' } else { b'-' });
                    out.extend_from_slice(e.as_bytes());
                    if !text.is_empty() {
                        out.push(b' ');
                        out.extend_from_slice(text.as_bytes());
                    }
                }
            }
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The wire form as a byte vector; see [`Reply::encode`].
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// 2yz or 3yz: positive completion or positive intermediate (RFC 5321 §4.2.1).
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    /// 2yz: positive completion (RFC 5321 §4.2.1).
    pub fn is_completion(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 4yz: transient negative completion (RFC 5321 §4.2.1).
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 5yz: permanent negative completion (RFC 5321 §4.2.1).
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// The text lines joined with single spaces.
    pub fn text(&self) -> String {
        self.lines.join(" ")
    }
}

impl fmt::Display for Reply {
    /// One line: `550 5.1.1 text`, the lines of the text joined with spaces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:03}", self.code)?;
        if let Some(e) = self.enhanced {
            write!(f, " {e}")?;
        }
        let text = self.text();
        if !text.is_empty() {
            write!(f, " {text}")?;
        }
        Ok(())
    }
}

/// Incremental reply parser (RFC 5321 §4.2), client side.
///
/// Feed bytes with [`ReplyParser::push`], take whole replies with
/// [`ReplyParser::next_reply`]. Lines end in CRLF; a bare LF is accepted as a line end too
/// (replies are read liberally, RFC 5321 §4.2.1 asks clients to be robust). An enhanced code
/// is taken from the first line when its text starts with one (RFC 2034 §3) and stripped
/// from the following lines that repeat it.
#[derive(Debug, Default)]
pub struct ReplyParser {
    buf: Vec<u8>,
    /// Leading octets of `buf` already searched for LF without finding one.
    scanned: usize,
    code: Option<u16>,
    lines: Vec<String>,
}

impl ReplyParser {
    /// An empty parser.
    pub fn new() -> Self {
        ReplyParser::default()
    }

    /// Appends received bytes. The parser holds them until [`ReplyParser::next_reply`]
    /// consumes them; call it until it returns `Ok(None)` after every push.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete reply, `Ok(None)` when more bytes are needed.
    ///
    /// Errors: [`ParseError::ReplyLineTooLong`] for a line over [`MAX_REPLY_LINE`] octets,
    /// [`ParseError::TooManyReplyLines`] for a reply over [`MAX_REPLY_LINES`] lines,
    /// [`ParseError::BadReply`] for a line that is not `Reply-code [("-" / SP) text]` or a
    /// continuation whose code differs. After an error the parser's buffered input is
    /// dropped; the connection should be treated as broken.
    pub fn next_reply(&mut self) -> Result<Option<Reply>, ParseError> {
        let mut consumed = 0;
        let result = self.scan(&mut consumed);
        match &result {
            Err(_) => {
                self.buf.clear();
                self.scanned = 0;
                self.code = None;
                self.lines.clear();
            }
            Ok(found) => {
                self.buf.drain(..consumed);
                self.scanned = if found.is_none() { self.buf.len() } else { 0 };
            }
        }
        result
    }

    fn scan(&mut self, consumed: &mut usize) -> Result<Option<Reply>, ParseError> {
        let mut skip = std::mem::take(&mut self.scanned).min(self.buf.len());
        loop {
            let rest = &self.buf[*consumed..];
            let lf = rest[skip..]
                .iter()
                .position(|&c| c == b'\n')
                .map(|p| p + skip);
            skip = 0;
            let Some(lf) = lf else {
                if rest.len() >= MAX_REPLY_LINE {
                    return Err(ParseError::ReplyLineTooLong);
                }
                return Ok(None);
            };
            if lf + 1 > MAX_REPLY_LINE {
                return Err(ParseError::ReplyLineTooLong);
            }
            let line = &rest[..lf];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            *consumed += lf + 1;
            if line.len() < 3
                || !line[..3].iter().all(u8::is_ascii_digit)
                || !(b'2'..=b'5').contains(&line[0])
            {
                return Err(ParseError::BadReply(
                    "line does not start with a reply code".into(),
                ));
            }
            let code = u16::from(line[0] - b'0') * 100
                + u16::from(line[1] - b'0') * 10
                + u16::from(line[2] - b'0');
            let (last, text) = match line.get(3) {
                None => (true, &line[3..]),
                Some(b' ') => (true, &line[4..]),
                Some(b'-') => (false, &line[4..]),
                Some(_) => {
                    return Err(ParseError::BadReply(
                        "expected space or hyphen after the code".into(),
                    ));
                }
            };
            if self.code.is_some_and(|first| first != code) {
                return Err(ParseError::BadReply(
                    "continuation line with a different code".into(),
                ));
            }
            self.code = Some(code);
            if self.lines.len() == MAX_REPLY_LINES {
                return Err(ParseError::TooManyReplyLines);
            }
            self.lines.push(clean_line(&String::from_utf8_lossy(text)));
            if last {
                let lines = std::mem::take(&mut self.lines);
                self.code = None;
                return Ok(Some(assemble(code, lines)));
            }
        }
    }
}

/// Takes the enhanced code off the first line, and off following lines that repeat it.
fn assemble(code: u16, mut lines: Vec<String>) -> Reply {
    let enhanced = match EnhancedCode::parse_prefix(&lines[0]) {
        Some((e, rest)) => {
            lines[0] = rest.to_string();
            Some(e)
        }
        None => None,
    };
    if let Some(e) = enhanced {
        for line in lines.iter_mut().skip(1) {
            if let Some((again, rest)) = EnhancedCode::parse_prefix(line)
                && again == e
            {
                *line = rest.to_string();
            }
        }
    }
    Reply {
        code,
        enhanced,
        lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enhanced_code_prefix() {
        assert_eq!(
            EnhancedCode::parse_prefix("5.1.1 no such user"),
            Some((EnhancedCode::new(5, 1, 1), "no such user"))
        );
        assert_eq!(
            EnhancedCode::parse_prefix("2.0.0"),
            Some((EnhancedCode::new(2, 0, 0), ""))
        );
        assert_eq!(
            EnhancedCode::parse_prefix("4.999.100 x"),
            Some((EnhancedCode::new(4, 999, 100), "x"))
        );
        assert_eq!(EnhancedCode::parse_prefix("3.1.1 x"), None);
        assert_eq!(EnhancedCode::parse_prefix("5.1000.1 x"), None);
        assert_eq!(EnhancedCode::parse_prefix("5.1.1x"), None);
        assert_eq!(EnhancedCode::parse_prefix("5..1 x"), None);
        assert_eq!(EnhancedCode::parse_prefix("hello"), None);
        assert_eq!(EnhancedCode::new(5, 7, 1).to_string(), "5.7.1");
    }

    #[test]
    fn new_splits_and_cleans() {
        let r = Reply::new(250, None, "a\r\nb\x07\nc");
        assert_eq!(r.lines, vec!["a", "b?", "c"]);
        let many = "x\n".repeat(500);
        assert_eq!(Reply::new(250, None, many).lines.len(), MAX_REPLY_LINES);
    }
}
