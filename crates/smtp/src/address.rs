//! Mailbox and path syntax (RFC 5321 §4.1.2).
//!
//! The grammar accepted here is the one of RFC 5321 §4.1.2, in ASCII only (mtalab does not
//! offer SMTPUTF8):
//!
//! - `Local-part = Dot-string / Quoted-string`, at most 64 octets as sent (§4.5.3.1.1);
//! - `Domain = sub-domain *("." sub-domain)`, each label at most 63 octets (RFC 1035 §2.3.4),
//!   the whole at most 255 octets (§4.5.3.1.2);
//! - `address-literal`: `[IPv4]`, `[IPv6:...]` or `[tag:content]` (§4.1.3);
//! - a path, brackets included, at most 256 octets (§4.5.3.1.3).
//!
//! The one mailbox without a domain is `postmaster` (§4.1.1.3, `RCPT TO:<Postmaster>`),
//! held as `Mailbox { local: "postmaster", domain: "" }` whatever its case on the wire.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use nom::bytes::complete::{tag, take_while1};
use nom::combinator::{recognize, verify};
use nom::multi::separated_list1;
use nom::sequence::preceded;
use nom::{IResult, Parser};

use crate::command::ParseError;

/// Maximum length of a local part in octets, as sent (RFC 5321 §4.5.3.1.1).
pub const MAX_LOCAL_PART: usize = 64;
/// Maximum length of a domain or address literal in octets (RFC 5321 §4.5.3.1.2).
pub const MAX_DOMAIN: usize = 255;
/// Maximum length of a path in octets, angle brackets included (RFC 5321 §4.5.3.1.3).
pub const MAX_PATH: usize = 256;
/// Maximum length of one domain label in octets (RFC 1035 §2.3.4).
pub const MAX_LABEL: usize = 63;

/// A mailbox `local-part@domain` (RFC 5321 §4.1.2 `Mailbox`). The local part is kept as
/// sent (quoted-string form unquoted); the domain is kept as sent, compare it case-insensitively.
/// An address literal domain keeps its brackets (`[10.10.10.10]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mailbox {
    /// Local part, unquoted (at most 64 octets, RFC 5321 §4.5.3.1.1).
    pub local: String,
    /// Domain or address literal (at most 255 octets, RFC 5321 §4.5.3.1.2).
    pub domain: String,
}

/// `MAIL FROM` reverse path: null (`<>`, for DSNs) or a mailbox (RFC 5321 §4.1.1.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReversePath {
    /// `<>`
    Null,
    /// `<local@domain>`
    Mailbox(Mailbox),
}

impl Mailbox {
    /// Builds a mailbox from its parts without checking them; [`Mailbox::parse`] checks.
    pub fn new(local: impl Into<String>, domain: impl Into<String>) -> Mailbox {
        Mailbox {
            local: local.into(),
            domain: domain.into(),
        }
    }

    /// The domainless `postmaster` mailbox every SMTP server must accept as a recipient
    /// (RFC 5321 §4.1.1.3, §4.5.1): `Mailbox { local: "postmaster", domain: "" }`.
    pub fn postmaster() -> Mailbox {
        Mailbox::new("postmaster", "")
    }

    /// True for a `postmaster` local part (any case), with or without a domain
    /// (RFC 5321 §4.5.1).
    pub fn is_postmaster(&self) -> bool {
        self.local.eq_ignore_ascii_case("postmaster")
    }

    /// Parses `local@domain` as written inside a path, without the angle brackets
    /// (RFC 5321 §4.1.2 `Mailbox`): a Dot-string or Quoted-string local part, a domain or
    /// an address literal (`[192.0.2.1]`, `[IPv6:2001:db8::1]`). A bare `postmaster` (any
    /// case) gives [`Mailbox::postmaster`].
    ///
    /// Errors: [`ParseError::BadAddress`] when the syntax is wrong, the local part exceeds
    /// 64 octets or the domain 255 octets (RFC 5321 §4.5.3.1.1, §4.5.3.1.2).
    pub fn parse(s: &str) -> Result<Mailbox, ParseError> {
        if s.eq_ignore_ascii_case("postmaster") {
            return Ok(Mailbox::postmaster());
        }
        match parse_mailbox_prefix(s.as_bytes()) {
            Ok((b"", mailbox)) => Ok(mailbox),
            Ok(_) => Err(ParseError::BadAddress(
                "unexpected text after the mailbox".into(),
            )),
            Err(reason) => Err(ParseError::BadAddress(reason.into())),
        }
    }
}

impl fmt::Display for Mailbox {
    /// `local@domain`, the local part quoted (RFC 5321 §4.1.2 `Quoted-string`) when it is not
    /// a Dot-string; `postmaster` alone when the domain is empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if is_dot_string(self.local.as_bytes()) {
            f.write_str(&self.local)?;
        } else {
            f.write_str("\"")?;
            for c in self.local.chars() {
                if c == '"' || c == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str("\"")?;
        }
        if !self.domain.is_empty() {
            write!(f, "@{}", self.domain)?;
        }
        Ok(())
    }
}

impl ReversePath {
    /// The mailbox of a non-null reverse path (RFC 5321 §4.1.1.2).
    pub fn mailbox(&self) -> Option<&Mailbox> {
        match self {
            ReversePath::Null => None,
            ReversePath::Mailbox(m) => Some(m),
        }
    }

    /// True for the null reverse path `<>` used by delivery status notifications
    /// (RFC 5321 §4.5.5).
    pub fn is_null(&self) -> bool {
        matches!(self, ReversePath::Null)
    }
}

impl fmt::Display for ReversePath {
    /// The empty string for `<>`, else the mailbox as [`Mailbox`]'s `Display` writes it
    /// (no angle brackets).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReversePath::Null => Ok(()),
            ReversePath::Mailbox(m) => m.fmt(f),
        }
    }
}

/// RFC 5322 §3.2.3 `atext`, the octets of an atom.
pub(crate) fn is_atext(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&c)
}

/// RFC 5321 §4.1.2 `Dot-string`: `Atom *("." Atom)`.
fn is_dot_string(s: &[u8]) -> bool {
    !s.is_empty()
        && s.split(|&c| c == b'.')
            .all(|atom| !atom.is_empty() && atom.iter().all(|&c| is_atext(c)))
}

fn dot_string(i: &[u8]) -> IResult<&[u8], &[u8]> {
    recognize(separated_list1(tag("."), take_while1(is_atext))).parse(i)
}

/// RFC 5321 §4.1.2 `Quoted-string`; returns the unquoted content and the octets consumed.
fn quoted_string(i: &[u8]) -> IResult<&[u8], String> {
    fn fail(at: &[u8]) -> nom::Err<nom::error::Error<&[u8]>> {
        nom::Err::Error(nom::error::Error::new(at, nom::error::ErrorKind::Char))
    }
    let (mut rest, _) = tag("\"").parse(i)?;
    let mut out = String::new();
    loop {
        match rest {
            [b'"', tail @ ..] => return Ok((tail, out)),
            // quoted-pairSMTP = %d92 %d32-126
            [b'\\', c, tail @ ..] if (32..=126).contains(c) => {
                out.push(char::from(*c));
                rest = tail;
            }
            // qtextSMTP = %d32-33 / %d35-91 / %d93-126
            [c, tail @ ..] if (32..=126).contains(c) && *c != b'"' && *c != b'\\' => {
                out.push(char::from(*c));
                rest = tail;
            }
            _ => return Err(fail(rest)),
        }
        if i.len() - rest.len() > MAX_PATH {
            return Err(fail(rest));
        }
    }
}

fn is_ldh(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-'
}

/// RFC 5321 §4.1.2 `sub-domain = Let-dig [Ldh-str]`, at most 63 octets.
fn sub_domain(i: &[u8]) -> IResult<&[u8], &[u8]> {
    verify(take_while1(is_ldh), |label: &[u8]| {
        label.len() <= MAX_LABEL
            && label.first().is_some_and(u8::is_ascii_alphanumeric)
            && label.last().is_some_and(u8::is_ascii_alphanumeric)
    })
    .parse(i)
}

/// RFC 5321 §4.1.2 `Domain`.
pub(crate) fn domain(i: &[u8]) -> IResult<&[u8], &[u8]> {
    recognize(separated_list1(tag("."), sub_domain)).parse(i)
}

/// RFC 5321 §4.1.3 `dcontent`.
fn is_dcontent(c: u8) -> bool {
    (33..=90).contains(&c) || (94..=126).contains(&c)
}

/// RFC 5321 §4.1.3 `address-literal`, brackets included.
pub(crate) fn address_literal(i: &[u8]) -> IResult<&[u8], &[u8]> {
    verify(
        recognize((tag("["), take_while1(is_dcontent), tag("]"))),
        |lit: &[u8]| valid_literal(&lit[1..lit.len() - 1]),
    )
    .parse(i)
}

fn valid_literal(inner: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(inner) else {
        return false;
    };
    if s.len() > 5 && s[..5].eq_ignore_ascii_case("IPv6:") {
        return s[5..].parse::<Ipv6Addr>().is_ok();
    }
    match s.split_once(':') {
        // General-address-literal = Standardized-tag ":" 1*dcontent
        Some((tag, content)) => {
            !content.is_empty()
                && !tag.is_empty()
                && tag.bytes().all(is_ldh)
                && tag.as_bytes()[tag.len() - 1].is_ascii_alphanumeric()
        }
        None => s.parse::<Ipv4Addr>().is_ok(),
    }
}

/// RFC 5321 §4.1.2 `A-d-l = At-domain *( "," At-domain )`, the obsolete source route
/// (RFC 5321 §4.1.1.3, appendix C), followed by its `:`. Accepted and ignored.
pub(crate) fn source_route(i: &[u8]) -> IResult<&[u8], &[u8]> {
    recognize((
        separated_list1(tag(","), preceded(tag("@"), domain)),
        tag(":"),
    ))
    .parse(i)
}

/// Parses a `Mailbox` at the start of `i`, checking the length caps; returns the rest.
/// Errors are a short lowercase reason.
pub(crate) fn parse_mailbox_prefix(i: &[u8]) -> Result<(&[u8], Mailbox), &'static str> {
    let (rest, (local, local_wire)) = if i.first() == Some(&b'"') {
        let (rest, local) = quoted_string(i).map_err(|_| "malformed quoted local part")?;
        let consumed = i.len() - rest.len();
        (rest, (local, consumed))
    } else {
        let (rest, local) = dot_string(i).map_err(|_| "malformed local part")?;
        // dot_string only accepts ASCII atext
        (
            rest,
            (String::from_utf8_lossy(local).into_owned(), local.len()),
        )
    };
    if local_wire > MAX_LOCAL_PART {
        return Err("local part longer than 64 octets");
    }
    let rest = rest.strip_prefix(b"@").ok_or("missing @domain")?;
    let (rest, dom) = if rest.first() == Some(&b'[') {
        address_literal(rest).map_err(|_| "malformed address literal")?
    } else {
        domain(rest).map_err(|_| "malformed domain")?
    };
    // The domain parser stops at the first octet it cannot take; a following "." or "-" means
    // a label was malformed rather than the domain ended.
    if matches!(rest.first(), Some(b'.' | b'-'))
        || rest.first().is_some_and(u8::is_ascii_alphanumeric)
    {
        return Err("malformed domain");
    }
    if dom.len() > MAX_DOMAIN {
        return Err("domain longer than 255 octets");
    }
    let domain = String::from_utf8_lossy(dom).into_owned();
    Ok((rest, Mailbox { local, domain }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_quoted_and_literal_mailboxes() {
        let cases: &[(&str, Option<(&str, &str)>)] = &[
            ("a@b", Some(("a", "b"))),
            (
                "first.last@example.com",
                Some(("first.last", "example.com")),
            ),
            (
                "x+tag@sub-1.example.org",
                Some(("x+tag", "sub-1.example.org")),
            ),
            (
                "\"john smith\"@example.com",
                Some(("john smith", "example.com")),
            ),
            ("\"a\\\"b\"@example.com", Some(("a\"b", "example.com"))),
            ("\"\"@example.com", Some(("", "example.com"))),
            ("u@[192.0.2.1]", Some(("u", "[192.0.2.1]"))),
            ("u@[IPv6:2001:db8::1]", Some(("u", "[IPv6:2001:db8::1]"))),
            ("u@[x-tag:content]", Some(("u", "[x-tag:content]"))),
            ("Postmaster", Some(("postmaster", ""))),
            ("", None),
            ("a", None),
            ("a@", None),
            ("@b", None),
            ("a..b@c", None),
            (".a@c", None),
            ("a.@c", None),
            ("a@b..c", None),
            ("a@-b", None),
            ("a@b-", None),
            ("a@b.", None),
            ("a@b_c", None),
            ("a b@c", None),
            ("a@[300.1.1.1]", None),
            ("a@[IPv6:zz]", None),
            ("a@[]", None),
            ("\"unterminated@b", None),
            ("a@b@c", None),
        ];
        for (input, expected) in cases {
            let got = Mailbox::parse(input);
            match expected {
                Some((l, d)) => assert_eq!(got, Ok(Mailbox::new(*l, *d)), "input {input:?}"),
                None => assert!(
                    matches!(got, Err(ParseError::BadAddress(_))),
                    "input {input:?} gave {got:?}"
                ),
            }
        }
    }

    #[test]
    fn enforces_length_caps() {
        let local64 = "a".repeat(64);
        assert!(Mailbox::parse(&format!("{local64}@b")).is_ok());
        assert!(Mailbox::parse(&format!("{local64}a@b")).is_err());
        let label = "l".repeat(63);
        assert!(Mailbox::parse(&format!("a@{label}.com")).is_ok());
        assert!(Mailbox::parse(&format!("a@{label}l.com")).is_err());
        let long_domain = [label.as_str(); 4].join(".") + ".com";
        assert!(long_domain.len() > 255);
        assert!(Mailbox::parse(&format!("a@{long_domain}")).is_err());
    }

    #[test]
    fn display_quotes_when_needed() {
        assert_eq!(Mailbox::new("a.b", "c").to_string(), "a.b@c");
        assert_eq!(
            Mailbox::new("john smith", "c").to_string(),
            "\"john smith\"@c"
        );
        assert_eq!(
            Mailbox::new("a\"b\\c", "d").to_string(),
            "\"a\\\"b\\\\c\"@d"
        );
        assert_eq!(Mailbox::new("a..b", "c").to_string(), "\"a..b\"@c");
        assert_eq!(Mailbox::postmaster().to_string(), "postmaster");
        assert_eq!(ReversePath::Null.to_string(), "");
        assert_eq!(
            ReversePath::Mailbox(Mailbox::new("x", "y")).to_string(),
            "x@y"
        );
        for m in [
            Mailbox::new("john smith", "c"),
            Mailbox::new("a\"b\\c", "d"),
            Mailbox::new("", "e"),
        ] {
            assert_eq!(Mailbox::parse(&m.to_string()), Ok(m));
        }
    }

    #[test]
    fn source_route_is_recognised() {
        assert_eq!(
            source_route(b"@a,@b.c:x@y"),
            Ok((&b"x@y"[..], &b"@a,@b.c:"[..]))
        );
        assert!(source_route(b"x@y").is_err());
    }
}
