//! Message text transfer after DATA (RFC 5321 §4.1.1.4, §4.5.2): dot-stuffing on the client
//! side, line checks and dot-unstuffing on the server side.
//!
//! Server policy, applied by [`crate::server::ServerSession`] through its message text receiver:
//!
//! - only `CRLF . CRLF` ends the message: a `.` line after a bare LF, or `.` followed by a
//!   bare LF, is message content (the defence against SMTP smuggling; RFC 5321 §2.3.8 and
//!   §4.1.1.4);
//! - a leading `.` is removed from every other line that starts with one (§4.5.2);
//! - the message is refused at the end of data, never mid-stream, when it held a bare LF or a
//!   bare CR (554 5.6.2), a NUL (554 5.6.0), a line longer than the text line limit
//!   (500 5.5.2, §4.5.3.1.6: the limit counts the CRLF but not a stuffing dot), or more
//!   octets than the message size limit (552 5.3.4, RFC 1870 §6);
//! - the size counted is that of the unstuffed message with CRLF line ends, the quantity
//!   `SIZE=` declares (RFC 1870 §3); octets past the limit are counted, never stored.

/// Appends `body` in its DATA wire form (RFC 5321 §4.5.2), client side: every line end made
/// CRLF (a bare LF or a bare CR becomes CRLF), a `.` doubled at the start of every line, a
/// CRLF added after an unterminated last line, then the terminator `.` CRLF. An empty body
/// gives `.` CRLF alone.
pub fn dot_stuff(body: &[u8], out: &mut Vec<u8>) {
    out.reserve(body.len() + body.len() / 64 + 5);
    let mut line_start = true;
    let mut i = 0;
    while i < body.len() {
        let c = body[i];
        match c {
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                if body.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                line_start = true;
            }
            b'\n' => {
                out.extend_from_slice(b"\r\n");
                line_start = true;
            }
            _ => {
                if line_start && c == b'.' {
                    out.push(b'.');
                }
                out.push(c);
                line_start = false;
            }
        }
        i += 1;
    }
    if !line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}

/// The size in octets of `body` once its line ends are CRLF and its last line terminated, as
/// [`dot_stuff`] sends it before stuffing: the value of `SIZE=` (RFC 1870 §3) and what a
/// receiving server stores.
pub fn message_size(body: &[u8]) -> u64 {
    let mut size: u64 = 0;
    let mut line_start = true;
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'\r' => {
                size += 2;
                if body.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                line_start = true;
            }
            b'\n' => {
                size += 2;
                line_start = true;
            }
            _ => {
                size += 1;
                line_start = false;
            }
        }
        i += 1;
    }
    if !line_start {
        size += 2;
    }
    size
}

/// True when `body` holds an octet above 127, which calls for `BODY=8BITMIME`
/// (RFC 6152 §3).
pub fn has_8bit(body: &[u8]) -> bool {
    body.iter().any(|&c| c >= 0x80)
}

/// Why a received message is refused at the end of data; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DataRejection {
    /// More octets than the size limit (552 5.3.4).
    TooBig,
    /// A line over the text line limit (500 5.5.2).
    LineTooLong,
    /// A bare LF or bare CR (554 5.6.2).
    BareLineEnd,
    /// A NUL octet (554 5.6.0).
    Nul,
}

/// Whether the end-of-data line was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineOutcome {
    /// More message text follows.
    More,
    /// `CRLF . CRLF` was seen; call [`DataReceiver::finish`].
    End,
}

/// Server-side receiver of message text, fed whole lines (each with its LF) by the session's
/// line framing, which reports over-long lines without their content.
#[derive(Debug)]
pub(crate) struct DataReceiver {
    body: Vec<u8>,
    max_size: usize,
    max_line: usize,
    size: u64,
    prev_crlf: bool,
    too_big: bool,
    line_too_long: bool,
    bare_line_end: bool,
    nul: bool,
}

impl DataReceiver {
    /// A receiver for at most `max_size` message octets and lines of at most `max_line`
    /// octets including CRLF, not counting a stuffing dot.
    pub(crate) fn new(max_size: usize, max_line: usize) -> DataReceiver {
        DataReceiver {
            body: Vec::new(),
            max_size,
            max_line,
            size: 0,
            // the DATA command line ended in CRLF
            prev_crlf: true,
            too_big: false,
            line_too_long: false,
            bare_line_end: false,
            nul: false,
        }
    }

    fn refused(&self) -> bool {
        self.too_big || self.line_too_long || self.bare_line_end || self.nul
    }

    /// Takes one line, `line` ending with its LF.
    pub(crate) fn push_line(&mut self, line: &[u8]) -> LineOutcome {
        if self.prev_crlf && line == b".\r\n" {
            return LineOutcome::End;
        }
        let (content, crlf) = match line {
            [head @ .., b'\r', b'\n'] => (head, true),
            [head @ .., b'\n'] => (head, false),
            _ => (line, false),
        };
        let content = match content {
            [b'.', tail @ ..] => tail,
            _ => content,
        };
        if !crlf || content.contains(&b'\r') {
            self.bare_line_end = true;
        }
        if content.contains(&0) {
            self.nul = true;
        }
        if content.len() + 2 > self.max_line {
            self.line_too_long = true;
        }
        self.prev_crlf = crlf;
        let len = content.len() as u64 + 2;
        self.size = self.size.saturating_add(len);
        if self.size > self.max_size as u64 {
            self.too_big = true;
        }
        if self.refused() {
            self.body = Vec::new();
        } else {
            self.body.extend_from_slice(content);
            self.body.extend_from_slice(b"\r\n");
        }
        LineOutcome::More
    }

    /// Takes a line whose content the framing discarded for being over-long; `crlf` tells
    /// whether it ended in CRLF.
    pub(crate) fn push_overlong_line(&mut self, crlf: bool) {
        self.line_too_long = true;
        self.prev_crlf = crlf;
        self.body = Vec::new();
    }

    /// Octets of message text counted so far (unstuffed, CRLF line ends).
    #[cfg(test)]
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// The message (unstuffed, CRLF line ends, without the final `.` CRLF), or why it is
    /// refused; the checks in the order of the module documentation's list, size first.
    pub(crate) fn finish(self) -> Result<Vec<u8>, DataRejection> {
        if self.too_big {
            Err(DataRejection::TooBig)
        } else if self.line_too_long {
            Err(DataRejection::LineTooLong)
        } else if self.bare_line_end {
            Err(DataRejection::BareLineEnd)
        } else if self.nul {
            Err(DataRejection::Nul)
        } else {
            Ok(self.body)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stuffed(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        dot_stuff(body, &mut out);
        out
    }

    /// Feeds wire bytes line by line, as the server framing does (no over-long lines here).
    fn receive(wire: &[u8]) -> (Result<Vec<u8>, DataRejection>, usize) {
        let mut rx = DataReceiver::new(1 << 20, 1000);
        let mut start = 0;
        for (i, &c) in wire.iter().enumerate() {
            if c == b'\n' {
                if rx.push_line(&wire[start..=i]) == LineOutcome::End {
                    return (rx.finish(), i + 1);
                }
                start = i + 1;
            }
        }
        panic!("no end of data in {wire:?}");
    }

    #[test]
    fn stuffing_vectors() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b".\r\n"),
            (b"a", b"a\r\n.\r\n"),
            (b"a\r\n", b"a\r\n.\r\n"),
            (b".", b"..\r\n.\r\n"),
            (b".\r\n", b"..\r\n.\r\n"),
            (b"a\r\n.b\r\n..c\r\n", b"a\r\n..b\r\n...c\r\n.\r\n"),
            (b"a\nb\n", b"a\r\nb\r\n.\r\n"),
            (b"a\rb", b"a\r\nb\r\n.\r\n"),
            (b"\n.\n", b"\r\n..\r\n.\r\n"),
            (b"x.y\r\n", b"x.y\r\n.\r\n"),
        ];
        for (body, wire) in cases {
            assert_eq!(stuffed(body), *wire, "body {body:?}");
            let (received, _) = receive(wire);
            assert_eq!(
                message_size(body),
                received.expect("clean body").len() as u64,
                "body {body:?}"
            );
        }
    }

    #[test]
    fn unstuffing_round_trips() {
        for body in [
            &b""[..],
            b"a\r\n",
            b".\r\n",
            b"..\r\n",
            b"a\r\n.\r\nb\r\n",
            b"\xe9t\xe9\r\n",
        ] {
            let wire = stuffed(body);
            let (got, used) = receive(&wire);
            assert_eq!(got, Ok(body.to_vec()));
            assert_eq!(used, wire.len());
        }
    }

    #[test]
    fn only_crlf_dot_crlf_ends() {
        // LF.LF, LF.CRLF and CRLF.LF are content, not the end
        let (got, used) = receive(b"a\n.\r\nb\r\n.\nc\r\n.\r\nrest");
        assert_eq!(got, Err(DataRejection::BareLineEnd));
        assert_eq!(used, 16);
    }

    #[test]
    fn refusals() {
        assert_eq!(receive(b"a\rb\r\n.\r\n").0, Err(DataRejection::BareLineEnd));
        assert_eq!(receive(b"a\0b\r\n.\r\n").0, Err(DataRejection::Nul));
        let mut rx = DataReceiver::new(10, 1000);
        assert_eq!(rx.push_line(b"0123456789\r\n"), LineOutcome::More);
        assert_eq!(rx.size(), 12);
        assert_eq!(rx.push_line(b".\r\n"), LineOutcome::End);
        assert_eq!(rx.finish(), Err(DataRejection::TooBig));
        let mut rx = DataReceiver::new(100, 5);
        rx.push_line(b"...\r\n");
        rx.push_line(b".123\r\n");
        assert_eq!(rx.finish(), Ok(b"..\r\n123\r\n".to_vec()));
        let mut rx = DataReceiver::new(100, 5);
        rx.push_line(b"1234\r\n");
        assert_eq!(rx.finish(), Err(DataRejection::LineTooLong));
    }
}
