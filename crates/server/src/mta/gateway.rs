//! The gateway between the Internet Mail Service and the MTA: RFC 5322 mail ↔ P1 messages
//! carrying a minimal X.420 IPM, SMTP addresses ↔ O/R addresses, and P1 reports ↔ DSNs.
//!
//! Address mapping (the RFC 2156 way, as Exchange's IMS encapsulated foreign addresses):
//! - an SMTP address of a local recipient maps to that recipient's X.400 address;
//! - any other SMTP address maps to an X.400 prefix (the route's address space, else the
//!   site address) plus the domain-defined attribute `RFC-822`, whose value is the address
//!   with the characters PrintableString lacks written as `(a)` for `@`, `(p)` for `%`,
//!   `(b)` for `!`, `(q)` for `"`, `(u)` for `_`, `(l)`/`(r)` for parentheses and `(NNN)`
//!   (decimal) for the rest (RFC 2156 §4.3.3);
//! - back, an O/R address with `dda:RFC-822` maps to that address; one matching a local
//!   recipient's X.400 address maps to the recipient's primary SMTP address; anything else is
//!   encapsulated as `IMCEAX400-<mnemonic with +xx escapes>@<site domain>`.

use std::io::Write as _;

use chrono::{DateTime, Utc};
use mail_builder::MessageBuilder;
use mail_builder::mime::{BodyPart as MimeBody, MimePart};
use mail_builder::headers::raw::Raw;
use mtalab_directory::Directory;
use mtalab_p1::{
    BodyPart, ExtensionField, GlobalDomainIdentifier, InternalTraceInformationElement, Ipm, MessageTransferEnvelope, MtaName,
    MtsIdentifier, OrAddress, OrName, OrNameMemo, TraceInformationElement,
};

/// The DDA type carrying an RFC 822 address (RFC 2156 §4.3.3).
pub const DDA_RFC822: &str = "RFC-822";

/// Encode an RFC 822 address into a PrintableString DDA value (RFC 2156 §4.3.3).
pub fn encode_rfc822_dda(addr: &str) -> String {
    let mut out = String::with_capacity(addr.len() + 8);
    for c in addr.chars() {
        match c {
            '@' => out.push_str("(a)"),
            '%' => out.push_str("(p)"),
            '!' => out.push_str("(b)"),
            '"' => out.push_str("(q)"),
            '_' => out.push_str("(u)"),
            '(' => out.push_str("(l)"),
            ')' => out.push_str("(r)"),
            c if c.is_ascii_alphanumeric() || " '+,-./:=?".contains(c) => out.push(c),
            c => {
                for b in c.to_string().bytes() {
                    out.push_str(&format!("({b:03})"));
                }
            }
        }
    }
    out
}

/// Decode a DDA value made by [`encode_rfc822_dda`]; None when malformed.
pub fn decode_rfc822_dda(v: &str) -> Option<String> {
    let mut out = Vec::new();
    let mut rest = v;
    while let Some(c) = rest.chars().next() {
        if c == '(' {
            let end = rest.find(')')?;
            let code = &rest[1..end];
            match code {
                "a" => out.push(b'@'),
                "p" => out.push(b'%'),
                "b" => out.push(b'!'),
                "q" => out.push(b'"'),
                "u" => out.push(b'_'),
                "l" => out.push(b'('),
                "r" => out.push(b')'),
                n if !n.is_empty() && n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit()) => out.push(n.parse::<u8>().ok()?),
                _ => return None,
            }
            rest = &rest[end + 1..];
        } else {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            rest = &rest[c.len_utf8()..];
        }
    }
    String::from_utf8(out).ok()
}

/// `+xx` escaping of IMCEA encapsulation (the prefix is case-sensitive).
fn imcea_escape(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len() + s.len() / 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$%&'*-/=?^`{|}~".contains(&b) {
            out.push(b as char);
        } else {
            out.push('+');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

fn imcea_unescape(s: &str) -> Option<String> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'+' {
            out.push(u8::from_str_radix(s.get(i + 1..i + 3)?, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The X.400 O/R address for an SMTP address: the local recipient's, or `prefix` + `dda:RFC-822`.
pub fn smtp_to_or(addr: &str, dir: &Directory, prefix: &str) -> Result<OrName, String> {
    if let Some((l, d)) = addr.rsplit_once('@')
        && let Some(r) = dir.lookup_smtp(l, d)
    {
        return parse_or_name(&r.x400);
    }
    if let Some(inner) = addr.strip_prefix("IMCEAX400-")
        && let Some((enc, _domain)) = inner.rsplit_once('@')
        && let Some(m) = imcea_unescape(enc)
        && let Ok(o) = parse_or_name(&m)
    {
        return Ok(o);
    }
    let text = format!("{};dda:{DDA_RFC822}={}", prefix.trim_end_matches(';'), encode_rfc822_dda(addr));
    parse_or_name(&text)
}

/// Entries kept by [`parse_or_name`]'s cache (per thread) before it starts again.
const OR_NAME_CACHE: usize = 512;

/// [`OrName::parse_mnemonic`], remembered per thread: the gateway parses the same few
/// addresses (a site's recipients, its prefix with a sender's address) for every message.
fn parse_or_name(text: &str) -> Result<OrName, String> {
    thread_local! {
        static CACHE: std::cell::RefCell<std::collections::HashMap<String, OrName>> = Default::default();
    }
    if let Some(o) = CACHE.with(|c| c.borrow().get(text).cloned()) {
        return Ok(o);
    }
    let o = OrName::parse_mnemonic(text).map_err(|e| format!("{text}: {e}"))?;
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= OR_NAME_CACHE {
            c.clear();
        }
        c.insert(text.to_string(), o.clone());
    });
    Ok(o)
}

/// The SMTP address for an O/R address (see the module docs).
pub fn or_to_smtp(or: &OrAddress, dir: &Directory) -> String {
    smtp_for(or, None, dir)
}

/// [`or_to_smtp`] of `or` whose mnemonic form (`OrAddress::to_mnemonic`) the caller has
/// already made.
pub fn or_to_smtp_mnemonic(or: &OrAddress, mnemonic: &str, dir: &Directory) -> String {
    smtp_for(or, Some(mnemonic), dir)
}

fn smtp_for(or: &OrAddress, mnemonic: Option<&str>, dir: &Directory) -> String {
    if let Some(d) = or.domain_defined_attributes.iter().find(|d| d.attribute_type.eq_ignore_ascii_case(DDA_RFC822))
        && let Some(a) = decode_rfc822_dda(&d.value)
    {
        return a;
    }
    let made;
    let m = match mnemonic {
        Some(m) => m,
        None => {
            made = or.to_mnemonic();
            &made
        }
    };
    if let Some(r) = dir.lookup_x400(m)
        && let Some(p) = r.smtp.first()
    {
        return p.clone();
    }
    format!("IMCEAX400-{}@{}", imcea_escape(m), dir.addressing().smtp.trim_start_matches('@'))
}

/// The local recipient whose X.400 address equals `or` (attribute by attribute,
/// case-insensitive), if any.
pub fn local_recipient_for<'a>(or: &OrAddress, dir: &'a Directory) -> Option<&'a mtalab_directory::Recipient> {
    dir.lookup_x400(&or.to_mnemonic())
}

/// The text form of an MTS identifier (message, report or probe identifier, X.411 §12.2.1.1.1.1):
/// `<global domain identifier mnemonic>;<local identifier>`, as in the `X-MS-Exchange-MTS-ID`
/// header, the Received header of a message that came in over X.400, and the record of
/// accepted identifiers.
pub fn mts_id(id: &MtsIdentifier) -> String {
    mts_id_text(&id.global_domain_identifier.to_mnemonic(), &id.local_identifier)
}

/// The same text form from its parts: the global domain identifier's mnemonic and the
/// local identifier (as kept in a queue file's [`crate::queue::X400Origin`]).
pub fn mts_id_text(gdi_mnemonic: &str, local: &str) -> String {
    format!("{gdi_mnemonic};{local}")
}

/// The global domain identifier of a site X.400 address (`c`, `a`, `p`).
/// Parsed once per thread and site address (it is the same for every message).
pub fn gdi_of(x: &crate::config::X400Config) -> GlobalDomainIdentifier {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(String, GlobalDomainIdentifier)>> = const { std::cell::RefCell::new(None) };
    }
    let text = format!("c={};a={};p={}", x.c, x.a, x.p);
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((t, g)) if *t == text => g.clone(),
            _ => {
                let g = GlobalDomainIdentifier::parse_mnemonic(&text)
                    .unwrap_or_else(|_| GlobalDomainIdentifier::parse_mnemonic("c=US;a= ").expect("fallback GDI parses"));
                *last = Some((text, g.clone()));
                g
            }
        }
    })
}

/// Inputs of [`rfc822_to_p1`].
pub struct ToP1<'a> {
    /// The RFC 5322 message.
    pub data: &'a [u8],
    /// Envelope sender (empty = null).
    pub from: &'a str,
    /// Recipients (SMTP addresses) of this transfer.
    pub rcpts: &'a [String],
    /// X.400 prefix for foreign addresses (the route's address space).
    pub prefix: &'a str,
    /// This site's X.400 site address (for the MTS identifier and trace).
    pub site: &'a crate::config::X400Config,
    /// Local identifier of the message (the queue id, at most 32 characters).
    pub local_id: &'a str,
    /// Arrival time.
    pub arrival: DateTime<Utc>,
    /// This MTA's name, for the internal trace (X.411 §12.2.1.1.1.13).
    pub mta_name: &'a str,
}

/// Convert an RFC 5322 message into a P1 message carrying an IPM (subject, originator,
/// To/Cc recipients and the first text body survive; other body parts are dropped).
pub fn rfc822_to_p1(input: &ToP1<'_>, dir: &Directory) -> Result<mtalab_p1::Message, String> {
    let (parsed, body) = parse_for_ipm(input.data).ok_or("the message cannot be parsed")?;
    let originator_smtp = if input.from.is_empty() { dir.addressing().smtp.replacen('@', "postmaster@", 1) } else { input.from.to_string() };
    let originator = smtp_to_or(&originator_smtp, dir, input.prefix)?;
    let recipients = input.rcpts.iter().map(|r| smtp_to_or(r, dir, input.prefix)).collect::<Result<Vec<_>, _>>()?;
    let header_addrs = |list: Option<&mail_parser::Address<'_>>| -> Vec<OrName> {
        list.map(|a| a.iter().filter_map(|x| x.address()).filter_map(|s| smtp_to_or(s, dir, input.prefix).ok()).collect())
            .unwrap_or_default()
    };
    let to = header_addrs(parsed.to());
    let cc = header_addrs(parsed.cc());
    let subject = parsed.subject().unwrap_or_default().to_string();
    let this_ipm = mtalab_p1::ipm::IpmIdentifier {
        user: Some(originator.clone()),
        user_relative_identifier: parsed.message_id().map(|m| m.chars().filter(|c| c.is_ascii_graphic()).take(64).collect()).unwrap_or_else(|| input.local_id.to_string()),
    };
    let content = Ipm::encode_text(this_ipm, originator.clone(), to, cc, &subject, &body).map_err(|e| format!("IPM: {e}"))?;
    let gdi = gdi_of(input.site);
    let id = MtsIdentifier { global_domain_identifier: gdi.clone(), local_identifier: first_chars(input.local_id, 32).into() };
    let mut env = MessageTransferEnvelope::new(id, originator, recipients, TraceInformationElement::relayed(gdi.clone(), input.arrival));
    env.extensions.push(ExtensionField::internal_trace(vec![InternalTraceInformationElement::relayed(
        gdi,
        MtaName(first_chars(input.mta_name, 32).into()),
        input.arrival,
    )]));
    env.content_identifier = Some(subject.chars().filter(|c| c.is_ascii_alphanumeric() || *c == ' ').take(16).collect::<String>()).filter(|s| !s.is_empty());
    Ok(mtalab_p1::Message { envelope: env, content })
}

/// The first `n` characters of `s` (all of it when shorter), without copying.
fn first_chars(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or(s, |(i, _)| &s[..i])
}

/// Parse an RFC 5322 message for its IPM: the message (its header fields at least) and its
/// text body. A plain text message in US-ASCII (no Content-Type, or text/plain; no
/// Content-Transfer-Encoding, or 7bit/8bit) has its body taken as it is, after a parse of
/// the header fields only; anything else is parsed whole (MIME parts, charsets, encodings)
/// and gives its first text part.
fn parse_for_ipm(data: &[u8]) -> Option<(mail_parser::Message<'_>, std::borrow::Cow<'_, str>)> {
    use mail_parser::{HeaderName, MessageParser, MimeHeaders};
    // Only the fields the IPM takes are parsed into their structure (and, in MIME parts,
    // what finding the text part needs); the rest (Received:, which every message carries
    // and is costly to parse, Date:, From:…) is kept raw.
    static PARSER: std::sync::OnceLock<MessageParser> = std::sync::OnceLock::new();
    let parser = PARSER.get_or_init(|| {
        MessageParser::new()
            .with_mime_headers()
            .header_text(HeaderName::Subject)
            .header_address(HeaderName::To)
            .header_address(HeaderName::Cc)
            .header_id(HeaderName::MessageId)
    });
    let headers = parser.parse_headers(data)?;
    let plain = headers.content_type().is_none_or(|c| c.ctype().eq_ignore_ascii_case("text") && c.subtype().is_none_or(|s| s.eq_ignore_ascii_case("plain")))
        && headers.content_transfer_encoding().is_none_or(|e| e.eq_ignore_ascii_case("7bit") || e.eq_ignore_ascii_case("8bit"));
    // The body starts after the first empty line (CRLF CRLF, or LF LF).
    let start = data.iter().enumerate().filter(|(_, c)| **c == b'\n').find_map(|(p, _)| match &data[p + 1..] {
        [b'\n', ..] => Some(p + 2),
        [b'\r', b'\n', ..] => Some(p + 3),
        _ => None,
    });
    if plain && let Some(start) = start && data[start..].is_ascii() {
        let body = std::str::from_utf8(&data[start..]).ok()?;
        return Some((headers, body.into()));
    }
    let parsed = parser.parse(data)?;
    let body = parsed.body_text(0).map(|b| b.into_owned()).unwrap_or_default();
    Some((parsed, body.into()))
}

/// Convert a P1 message's IPM content back into an RFC 5322 message.
///
/// `known`: O/R addresses the caller has already mapped with [`or_to_smtp`] (the envelope's
/// originator and recipients, which the IPM heading usually names again), so that they are
/// not looked up twice. `mts_identifier`: the message's MTS identifier in text form ([`mts_id`]),
/// which the caller has made already too, for `X-MS-Exchange-MTS-ID`. `head`: text written
/// before everything else (the receiving server's own `Received:` field, CRLF included), so
/// that the message is made in one buffer and not moved to put it in front. `names`: the O/R
/// names the decoding of `msg` noted ([`mtalab_p1::MtsApdu::decode_vec_noting`]; empty when
/// there are none), which the IPM heading's names are taken from when their encodings are
/// the same ([`OrNameMemo`]).
pub fn p1_to_rfc822(msg: &mtalab_p1::Message, dir: &Directory, known: &[(&OrAddress, String)], mts_identifier: &str, head: &str, names: &mut OrNameMemo) -> Result<Vec<u8>, String> {
    let ipm = Ipm::decode_with(&msg.content, names).map_err(|e| format!("IPM: {e}"))?;
    let smtp = |or: &OrAddress| known.iter().find(|(k, _)| *k == or).map_or_else(|| or_to_smtp(or, dir), |(_, s)| s.clone());
    let from = ipm
        .heading
        .originator
        .as_ref()
        .and_then(|o| o.formal_name.as_ref())
        .map(|n| smtp(&n.address))
        .unwrap_or_else(|| smtp(&msg.envelope.originator_name.address));
    let map = |v: &[mtalab_p1::ipm::RecipientSpecifier]| -> Vec<String> {
        v.iter().filter_map(|r| r.recipient.formal_name.as_ref()).map(|n| smtp(&n.address)).collect()
    };
    let to = map(&ipm.heading.primary_recipients);
    let cc = map(&ipm.heading.copy_recipients);
    // One text part (the usual case) is taken as it is; several are joined.
    let mut texts: Vec<String> = ipm.body.into_iter().filter_map(BodyPart::into_text).collect();
    let body = if texts.len() == 1 { texts.pop().unwrap_or_default() } else { texts.join("\n") };
    // Date: when the message entered the message transfer system, the arrival time of the
    // oldest trace element (the originating domain's, X.411 §12.2.1.1.1.12; the originating
    // gateway puts there the time its IMS accepted the mail), not the time of this conversion.
    let entered = msg.envelope.trace_information.first().map_or_else(Utc::now, |t| t.domain_supplied_information.arrival_time);
    let id = &ipm.heading.this_ipm.user_relative_identifier;
    let fields = Fields {
        from: &from,
        subject: ipm.heading.subject.as_deref().unwrap_or_default(),
        to: &to,
        cc: &cc,
        mts_identifier,
        date: &entered.to_rfc2822(),
        message_id: id.contains('@').then(|| id.trim_matches(|c| c == '<' || c == '>')),
    };
    // The MTAs the message passed, from the internal trace (oldest first), as Received:
    // fields, newest on top as RFC 5321 §4.4 stacks them; then the message, written after
    // them into the same buffer.
    let mut v = Vec::with_capacity(head.len() + body.len() + 1024);
    v.extend_from_slice(head.as_bytes());
    if let Some(elems) = msg.envelope.internal_trace() {
        for e in elems.iter().rev() {
            write!(
                v,
                "Received: by {} (X.400 MTA, {}) with X.400;\r\n\t{}\r\n",
                e.mta_name.as_str(),
                e.global_domain_identifier.to_mnemonic(),
                e.mta_supplied_information.arrival_time.to_rfc2822()
            )
            .map_err(|e| e.to_string())?;
        }
    }
    match seven_bit_crlf(body) {
        Ok(text) if fields.plain() => fields.write_plain(&mut v, &text),
        Ok(text) => fields.builder().body(MimePart::new("text/plain", MimeBody::Text(text.into())).transfer_encoding("7bit")).write_to(&mut v).map_err(|e| e.to_string())?,
        Err(body) => fields.builder().text_body(body.replace("\r\n", "\n")).write_to(&mut v).map_err(|e| e.to_string())?,
    }
    Ok(v)
}

/// The header fields [`p1_to_rfc822`] gives a converted message, in their order.
struct Fields<'a> {
    /// From: the originator's SMTP address.
    from: &'a str,
    /// Subject:, the IPM's subject (empty when it has none).
    subject: &'a str,
    /// To: and Cc: (none when empty).
    to: &'a [String],
    cc: &'a [String],
    /// X-MS-Exchange-MTS-ID:, the P1 MTS identifier in text form.
    mts_identifier: &'a str,
    /// Date:, RFC 5322 §3.3 form.
    date: &'a str,
    /// Message-ID: without its angle brackets (None: mail-builder makes one).
    message_id: Option<&'a str>,
}

impl Fields<'_> {
    /// The fields for mail-builder, which writes them (encoded where they need it) before
    /// the body.
    fn builder(&self) -> MessageBuilder<'_> {
        let mut b = MessageBuilder::new().from(self.from).subject(self.subject);
        if !self.to.is_empty() {
            b = b.to(self.to.iter().map(String::as_str).collect::<Vec<_>>());
        }
        if !self.cc.is_empty() {
            b = b.cc(self.cc.iter().map(String::as_str).collect::<Vec<_>>());
        }
        b = b.header("X-MS-Exchange-MTS-ID", Raw::new(self.mts_identifier)).header("Date", Raw::new(self.date));
        if let Some(id) = self.message_id {
            b = b.message_id(id);
        }
        b
    }

    /// Whether [`Fields::write_plain`] writes what mail-builder would: a Message-ID is given
    /// (else mail-builder makes one) and no value needs encoding. Addresses go into the
    /// message as they are either way; a subject of printable US-ASCII, at most 77 octets
    /// (mail-builder's limit for an unencoded line) and not ending in a space needs none.
    fn plain(&self) -> bool {
        let s = self.subject.as_bytes();
        self.message_id.is_some() && s.len() <= 77 && s.iter().all(|&c| (0x20..0x7f).contains(&c)) && s.last() != Some(&b' ')
    }

    /// The fields and the 7-bit body `text` (CRLF line ends) as mail-builder writes them,
    /// without its builder: the same octets, checked against it by a property test. Only
    /// for [`Fields::plain`] fields. Every message crossing the gateway runs through this.
    fn write_plain(&self, v: &mut Vec<u8>, text: &str) {
        v.extend_from_slice(b"From: <");
        v.extend_from_slice(self.from.as_bytes());
        v.extend_from_slice(b">\r\n");
        push_folded(v, "Subject", self.subject);
        for (name, list) in [("To", self.to), ("Cc", self.cc)] {
            if !list.is_empty() {
                push_address_list(v, name, list);
            }
        }
        push_folded(v, "X-MS-Exchange-MTS-ID", self.mts_identifier);
        push_folded(v, "Date", self.date);
        if let Some(id) = self.message_id {
            v.extend_from_slice(b"Message-ID: <");
            v.extend_from_slice(id.as_bytes());
            v.extend_from_slice(b">\r\n");
        }
        v.extend_from_slice(b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: 7bit\r\n\r\n");
        v.extend_from_slice(text.as_bytes());
    }
}

/// `name: value` and CRLF, folded as mail-builder folds a value it does not encode: once
/// the line has reached 76 octets, before the next white space that is not the last octet.
fn push_folded(v: &mut Vec<u8>, name: &str, value: &str) {
    v.extend_from_slice(name.as_bytes());
    v.extend_from_slice(b": ");
    let start = name.len() + 2;
    let b = value.as_bytes();
    if start + b.len() <= 76 {
        // No octet starts at or after column 76: nothing to fold.
        v.extend_from_slice(b);
    } else {
        let mut col = start;
        for (pos, &c) in b.iter().enumerate() {
            if col >= 76 && c.is_ascii_whitespace() && pos < b.len() - 1 {
                v.extend_from_slice(b"\r\n\t");
                col = 1;
            }
            v.push(c);
            col += 1;
        }
    }
    v.extend_from_slice(b"\r\n");
}

/// `name: <a>, <b>, …` and CRLF as mail-builder writes a list of addresses without display
/// names, its column count included (it adds, for each address, the column it started at
/// and the address's width, and one for the comma and space), so that it folds where
/// mail-builder does.
fn push_address_list(v: &mut Vec<u8>, name: &str, list: &[String]) {
    v.extend_from_slice(name.as_bytes());
    v.extend_from_slice(b": ");
    let mut col = name.len() + 2;
    for (pos, a) in list.iter().enumerate() {
        if col + a.len() + 2 >= 76 {
            v.extend_from_slice(b"\r\n\t");
            col = 1;
        }
        v.push(b'<');
        v.extend_from_slice(a.as_bytes());
        v.push(b'>');
        col += col + a.len() + 2;
        if pos + 1 < list.len() {
            v.extend_from_slice(b", ");
            col += 1;
        }
    }
    v.extend_from_slice(b"\r\n");
}

/// A body text (lines ended by LF or CRLF) with CRLF line ends, when it can go as it is with
/// `Content-Transfer-Encoding: 7bit`: US-ASCII without controls other than tab, no line longer
/// than 76 octets, no space or tab ending a line (RFC 2045 §2.7, and the rule by which
/// mail-builder picks 7bit). A text whose lines all end in CRLF already (as text that came
/// over SMTP does) is given back as it is, without a copy. `Err` with the text when it needs
/// mail-builder's choice of encoding.
fn seven_bit_crlf(body: String) -> Result<String, String> {
    let b = body.as_bytes();
    // Every octet printable US-ASCII, tab, CR or LF, and the CRs counted, in one pass
    // without an early exit inside a chunk, which the compiler turns into vector
    // instructions (this runs over every message body). A chunk's CRs fit a one-octet
    // counter, which vectorises (a count into a usize went 4 octets at a time).
    let bad = |c: u8| u8::from(c.wrapping_sub(0x20) > 0x5e) & u8::from(c != b'\t') & u8::from(c != b'\r') & u8::from(c != b'\n');
    let mut crs = 0usize;
    for ch in b.chunks(64) {
        let (wrong, n) = ch.iter().fold((0u8, 0u8), |(acc, n), &c| (acc | bad(c), n + u8::from(c == b'\r')));
        if wrong != 0 {
            return Err(body);
        }
        crs += usize::from(n);
    }
    let (mut start, mut lfs, mut crlfs) = (0, 0, 0);
    let mut ends = memchr::memchr_iter(b'\n', b).map(Some).chain(std::iter::once(None));
    loop {
        let end = ends.next().flatten();
        let raw = &b[start..end.unwrap_or(b.len())];
        let line = match (end, raw.strip_suffix(b"\r")) {
            (Some(_), Some(l)) => {
                crlfs += 1;
                l
            }
            _ => raw,
        };
        if line.len() > 76 || matches!(line.last(), Some(b' ' | b'\t')) {
            return Err(body);
        }
        match end {
            Some(e) => {
                lfs += 1;
                start = e + 1;
            }
            None => break,
        }
    }
    // A CR other than one ending a line before its LF is left to mail-builder.
    if crs != crlfs {
        return Err(body);
    }
    if crlfs == lfs {
        return Ok(body);
    }
    // Some lines end in LF alone: each such LF becomes CRLF.
    let mut out = Vec::with_capacity(b.len() + (lfs - crlfs));
    for piece in b.split_inclusive(|&c| c == b'\n') {
        match piece.strip_suffix(b"\n") {
            Some(line) if !line.ends_with(b"\r") => {
                out.extend_from_slice(line);
                out.extend_from_slice(b"\r\n");
            }
            _ => out.extend_from_slice(piece),
        }
    }
    // Only US-ASCII went in (checked above).
    String::from_utf8(out).map_err(|_| body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_date_field_is_when_the_message_entered_the_mts() {
        let cfg = crate::config::Config::parse(
            "[organization]\nname = \"ExchangeORG\"\n[site]\nname = \"SiteB\"\n[server]\nname = \"ServerB\"\ndata_dir = \"/nonexistent\"\n\
             [site_addressing]\nsmtp = \"@SiteB.test\"\nx400 = { c = \"US\", p = \"ExchangeORG\", o = \"SiteB\" }\n\
             [[recipients]]\nalias = \"User1\"\ngiven = \"User\"\nsurname = \"One\"\n\
             [ims]\nlisten = \"127.0.0.1:2525\"\n[admin]\nlisten = \"127.0.0.1:2526\"\n",
        )
        .unwrap();
        let dir = crate::build_directory(&cfg).unwrap();
        let entered = "2026-12-04T20:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let msg = rfc822_to_p1(
            &ToP1 {
                data: b"From: <a@SiteA.test>\r\nTo: <User1@SiteB.test>\r\nSubject: hi\r\nDate: Fri, 4 Dec 2026 19:59:58 +0000\r\n\r\nbody\r\n",
                from: "a@SiteA.test",
                rcpts: &["User1@SiteB.test".to_string()],
                prefix: "c=US;p=ExchangeORG;o=SiteB",
                site: &cfg.site_addressing.x400,
                local_id: "1",
                arrival: entered,
                mta_name: "ServerA",
            },
            &dir,
        )
        .unwrap();
        let text = String::from_utf8(p1_to_rfc822(&msg, &dir, &[], "x", "", &mut OrNameMemo::default()).unwrap()).unwrap();
        assert!(text.contains("\r\nDate: Fri, 4 Dec 2026 20:00:00 +0000\r\n"), "{text}");
        assert_eq!(text.matches("\nDate: ").count(), 1, "{text}");
    }

    #[test]
    fn first_chars_cuts_at_a_character_boundary() {
        assert_eq!(first_chars("0000000000001-1", 32), "0000000000001-1");
        assert_eq!(first_chars("abcdef", 3), "abc");
        assert_eq!(first_chars("äöüß", 2), "äö");
        assert_eq!(first_chars("", 2), "");
    }

    #[test]
    fn a_plain_ascii_body_is_taken_as_mail_parser_gives_it() {
        let samples: &[&[u8]] = &[
            b"From: a@b.test\r\nSubject: one\r\n\r\nline 1\r\nline 2\r\n",
            b"From: a@b.test\nSubject: lf only\n\nline 1\nline 2\n",
            b"Subject: typed\r\nContent-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\nbody\r\n\r\n",
            b"Subject: empty\r\n\r\n",
            b"Subject: folded\r\n continued\r\nTo: x@y.test\r\n\r\n.leading dot\r\n",
            b"Received: from a.test ([127.0.0.1]) by b.test with ESMTP id 1;\r\n\tFri, 4 Dec 2026 20:00:00 +0000\r\nFrom: \"A\" <a@a.test>\r\nTo: \"User One\" <User1@b.test>, two@b.test\r\nCc: Group: c@c.test, d@d.test;\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\nMessage-ID: <1.2@a.test>\r\nDate: Fri, 4 Dec 2026 20:00:00 +0000\r\n\r\nbody\r\n",
        ];
        for raw in samples {
            let (fast, body) = parse_for_ipm(raw).unwrap();
            let full = mail_parser::MessageParser::default().parse(*raw).unwrap();
            assert_eq!(body, full.body_text(0).unwrap_or_default(), "{}", String::from_utf8_lossy(raw));
            assert_eq!(fast.subject(), full.subject());
            assert_eq!(fast.to(), full.to());
            assert_eq!(fast.cc(), full.cc());
            assert_eq!(fast.message_id(), full.message_id());
        }
        // Encoded, non-ASCII or multipart: parsed whole.
        let qp = b"Subject: qp\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9\r\n";
        assert_eq!(parse_for_ipm(qp).unwrap().1.trim_end(), "caf\u{e9}");
        let latin1 = b"Subject: l\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\ncaf\xe9\r\n";
        assert_eq!(parse_for_ipm(latin1).unwrap().1.trim_end(), "caf\u{e9}");
        let multi = b"Subject: m\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\ninner\r\n--b--\r\n";
        assert_eq!(parse_for_ipm(multi).unwrap().1.trim_end(), "inner");
    }

    proptest::proptest! {
        /// Plain fields and a 7-bit body come out of [`Fields::write_plain`] octet for octet
        /// as mail-builder writes them, folding included.
        #[test]
        fn plain_fields_are_written_as_mail_builder_writes_them(
            from in "[a-zA-Z0-9.=+-]{1,70}@[a-z.]{1,20}",
            subject in "[ -~]{0,77}",
            to in proptest::collection::vec("[a-zA-Z0-9.=+-]{1,60}@[a-z.]{1,30}", 0..6),
            cc in proptest::collection::vec("[a-zA-Z0-9.=+-]{1,30}@[a-z.]{1,10}", 0..4),
            mts in "[ -~]{1,120}",
            date in "[ -~]{1,90}",
            id in "[!-;=?-~]{1,80}@[a-z]{1,10}",
            text in "([ -~]{0,76}\r\n){0,4}",
        ) {
            let f = Fields { from: &from, subject: &subject, to: &to, cc: &cc, mts_identifier: &mts, date: &date, message_id: Some(&id) };
            proptest::prop_assume!(f.plain());
            let mut ours = Vec::new();
            f.write_plain(&mut ours, &text);
            let mut theirs = Vec::new();
            f.builder()
                .body(MimePart::new("text/plain", MimeBody::Text(text.clone().into())).transfer_encoding("7bit"))
                .write_to(&mut theirs)
                .unwrap();
            proptest::prop_assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&theirs));
        }
    }

    #[test]
    fn fields_that_need_encoding_or_a_made_message_id_are_not_plain() {
        let base = Fields { from: "a@b.test", subject: "hi", to: &[], cc: &[], mts_identifier: "x", date: "d", message_id: Some("1@b.test") };
        assert!(base.plain());
        assert!(!Fields { subject: "caf\u{e9}", ..base }.plain());
        assert!(!Fields { subject: "trailing ", ..base }.plain());
        assert!(!Fields { subject: &"x".repeat(78), ..base }.plain());
        assert!(!Fields { subject: "tab\there", ..base }.plain());
        assert!(!Fields { message_id: None, ..base }.plain());
    }

    /// The plain line-by-line form of [`seven_bit_crlf`], kept to check the fast one.
    fn seven_bit_crlf_reference(body: &str) -> Option<String> {
        let mut out = Vec::new();
        let mut rest = body.as_bytes();
        loop {
            let (line, next) = match rest.iter().position(|&c| c == b'\n') {
                Some(p) => (rest[..p].strip_suffix(b"\r").unwrap_or(&rest[..p]), Some(&rest[p + 1..])),
                None => (rest, None),
            };
            if line.len() > 76 || matches!(line.last(), Some(b' ' | b'\t')) || !line.iter().all(|&c| c == b'\t' || (0x20..=0x7e).contains(&c)) {
                return None;
            }
            out.extend_from_slice(line);
            match next {
                Some(n) => {
                    out.extend_from_slice(b"\r\n");
                    rest = n;
                }
                None => break,
            }
        }
        String::from_utf8(out).ok()
    }

    use proptest::strategy::Strategy;

    proptest::proptest! {
        #[test]
        fn the_fast_seven_bit_check_agrees_with_the_line_by_line_one(pieces in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::sample::select(vec!["a", "xy", " ", "\t", "\r", "\n", "\r\n", "\u{e9}", "\u{1}", "\u{7f}"]).prop_map(str::to_string),
                (70usize..80).prop_map(|n| "w".repeat(n)),
            ],
            0..40,
        )) {
            let body = pieces.concat();
            proptest::prop_assert_eq!(seven_bit_crlf(body.clone()).ok(), seven_bit_crlf_reference(&body), "{:?}", body);
        }
    }

    #[test]
    fn a_seven_bit_body_is_written_as_mail_builder_writes_it() {
        let build = |b: MessageBuilder<'static>| b.from("a@b.test").subject("s").message_id("x@b.test").date(0i64).write_to_string().unwrap();
        let long = "y".repeat(76);
        for body in ["one line\n", "two\nlines", "\ttabbed\n\nblank above\n", long.as_str(), "", "crlf\r\nends\r\n", "mixed\r\nand\nlf"] {
            let text = seven_bit_crlf(body.to_string()).unwrap_or_else(|_| panic!("{body:?} is 7bit"));
            let ours = build(MessageBuilder::new().body(MimePart::new("text/plain", MimeBody::Text(text.into())).transfer_encoding("7bit")));
            let theirs = build(MessageBuilder::new().text_body(body.replace("\r\n", "\n")));
            assert_eq!(ours, theirs, "{body:?}");
        }
        let two_long = format!("{long}\r\n{long}\n");
        for body in [two_long.as_str(), "\r\n", "\n\n\r\n"] {
            assert!(seven_bit_crlf(body.to_string()).is_ok(), "{body:?} is 7bit");
        }
        let longer = "z".repeat(77);
        for body in ["\n\r", "a\r\r\n", "trailing space \nx", "trailing space \r\nx", "trailing tab\t", "cr at end\r", "caf\u{e9}\n", "bell\u{7}\n", "bare\rcr", longer.as_str()] {
            assert!(seven_bit_crlf(body.to_string()).is_err(), "{body:?} is left to mail-builder");
        }
    }

    #[test]
    fn rfc822_dda_round_trip() {
        for a in ["User2@SiteB.microsoft.com", "odd_name%relay!x@example.net", "q\"uote(d)@x"] {
            let e = encode_rfc822_dda(a);
            assert!(!e.contains('@') && !e.contains('_'), "{e}");
            assert_eq!(decode_rfc822_dda(&e).as_deref(), Some(a));
        }
        assert_eq!(encode_rfc822_dda("User2@SiteB.microsoft.com"), "User2(a)SiteB.microsoft.com");
    }

    #[test]
    fn imcea_round_trip() {
        let m = "c=US;a= ;p=ExchangeORG;o=SiteA;s=One;g=User";
        assert_eq!(imcea_escape(m), "c=US+3Ba=+20+3Bp=ExchangeORG+3Bo=SiteA+3Bs=One+3Bg=User");
        assert_eq!(imcea_unescape(&imcea_escape(m)).as_deref(), Some(m));
        // Every octet outside the kept set is `+` and two upper-case hex digits, '.' too.
        let all: String = (0u8..0x80).map(char::from).collect();
        let escaped = imcea_escape(&all);
        assert!(escaped.contains("+2E") && escaped.contains("+7F") && escaped.contains("+00") && !escaped.contains('.'));
        assert_eq!(imcea_unescape(&escaped).as_deref(), Some(all.as_str()));
        assert_eq!(imcea_escape("ü"), "+C3+BC");
    }
}
