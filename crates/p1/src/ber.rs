//! The BER layer (X.690 §8) under every P1 and X.420 production.
//!
//! Decoding walks the input with a capped reader of our own: definite and indefinite
//! lengths (X.690 §8.1.3), constructed string encodings (§8.23.6, PP sends its content
//! OCTET STRING that way), nesting depth capped at [`crate::limits::MAX_DEPTH`]. The leaf
//! values that have a precise grammar of their own, UTCTime (X.680 §47) and OBJECT
//! IDENTIFIER (X.690 §8.19), are decoded and encoded by `rasn`'s BER codec. Encoding always
//! uses the definite form with minimal length octets, which every peer accepts.
//!
//! The structure is not derived through `rasn` because P1 needs what a derived codec does
//! not offer: the same context tag number in primitive and constructed form meaning two
//! encodings of one value (the 1988 explicit `[0] INTEGER` extension type versus the later
//! implicit one, X.411 §9.1 / DESIGN §4), unknown members kept as opaque octets so they
//! round-trip, and a fixed component order on output.

use std::borrow::Cow;
use std::fmt;

use crate::error::{Error, Result};
use crate::limits::{MAX_DEPTH, MAX_OID_LEN, MAX_STRING_LEN};

/// The class of a BER tag (X.690 §8.1.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// UNIVERSAL (bits 00).
    Universal,
    /// APPLICATION (bits 01).
    Application,
    /// Context-specific (bits 10), written `[n]`.
    Context,
    /// PRIVATE (bits 11).
    Private,
}

/// A BER identifier: class, primitive/constructed bit and tag number (X.690 §8.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tag {
    /// Tag class.
    pub class: Class,
    /// Constructed (true) or primitive (false) encoding.
    pub constructed: bool,
    /// Tag number.
    pub number: u32,
}

impl Tag {
    /// A primitive universal tag.
    pub const fn universal(number: u32) -> Tag {
        Tag {
            class: Class::Universal,
            constructed: false,
            number,
        }
    }
    /// A primitive context-specific tag `[number]`.
    pub const fn context(number: u32) -> Tag {
        Tag {
            class: Class::Context,
            constructed: false,
            number,
        }
    }
    /// A primitive APPLICATION tag.
    pub const fn application(number: u32) -> Tag {
        Tag {
            class: Class::Application,
            constructed: false,
            number,
        }
    }
    /// The same tag with the constructed bit set.
    pub const fn constructed(self) -> Tag {
        Tag {
            class: self.class,
            constructed: true,
            number: self.number,
        }
    }
    /// Same class and number, whatever the constructed bit.
    pub const fn is(self, other: Tag) -> bool {
        self.number == other.number
            && matches!(
                (self.class, other.class),
                (Class::Universal, Class::Universal)
                    | (Class::Application, Class::Application)
                    | (Class::Context, Class::Context)
                    | (Class::Private, Class::Private)
            )
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let form = if self.constructed {
            "constructed"
        } else {
            "primitive"
        };
        match self.class {
            Class::Universal => write!(f, "[UNIVERSAL {}] {form}", self.number),
            Class::Application => write!(f, "[APPLICATION {}] {form}", self.number),
            Class::Context => write!(f, "[{}] {form}", self.number),
            Class::Private => write!(f, "[PRIVATE {}] {form}", self.number),
        }
    }
}

pub(crate) const INTEGER: Tag = Tag::universal(2);
pub(crate) const OCTET_STRING: Tag = Tag::universal(4);
pub(crate) const NULL: Tag = Tag::universal(5);
pub(crate) const OID: Tag = Tag::universal(6);
pub(crate) const EXTERNAL: Tag = Tag::universal(8).constructed();
pub(crate) const SEQUENCE: Tag = Tag::universal(16).constructed();
pub(crate) const SET: Tag = Tag::universal(17).constructed();
pub(crate) const NUMERIC_STRING: Tag = Tag::universal(18);
pub(crate) const PRINTABLE_STRING: Tag = Tag::universal(19);
pub(crate) const TELETEX_STRING: Tag = Tag::universal(20);
pub(crate) const IA5_STRING: Tag = Tag::universal(22);
pub(crate) const GENERAL_STRING: Tag = Tag::universal(27);

/// A context tag `[n]` in constructed form.
pub(crate) const fn ctx_c(n: u32) -> Tag {
    Tag::context(n).constructed()
}
/// An APPLICATION tag in constructed form.
pub(crate) const fn app_c(n: u32) -> Tag {
    Tag::application(n).constructed()
}

/// Length octets (X.690 §8.1.3).
enum Length {
    Definite(usize),
    Indefinite,
}

/// The tag the first identifier octet gives (X.690 §8.1.2.2–3): class, form, and the tag
/// number of the low form (31 announces the high form, whose octets follow).
fn first_octet_tag(first: u8) -> Tag {
    let class = match first >> 6 {
        0 => Class::Universal,
        1 => Class::Application,
        2 => Class::Context,
        _ => Class::Private,
    };
    Tag { class, constructed: first & 0x20 != 0, number: u32::from(first & 0x1f) }
}

/// Parses identifier and length octets; returns tag, length and header size.
fn header(input: &[u8]) -> Result<(Tag, Length, usize)> {
    let first = *input.first().ok_or(Error::Truncated("identifier octets"))?;
    let Tag { class, constructed, mut number } = first_octet_tag(first);
    let mut pos = 1;
    if number == 0x1f {
        // High tag number form (§8.1.2.4): base 128, at most 4 octets here.
        number = 0;
        loop {
            let b = *input
                .get(pos)
                .ok_or(Error::Truncated("identifier octets"))?;
            if pos == 1 && b == 0x80 {
                return Err(Error::Malformed("tag number with a leading zero octet"));
            }
            if pos > 4 {
                return Err(Error::Malformed("tag number too large"));
            }
            number = (number << 7) | u32::from(b & 0x7f);
            pos += 1;
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    let tag = Tag {
        class,
        constructed,
        number,
    };
    let l = *input.get(pos).ok_or(Error::Truncated("length octets"))?;
    pos += 1;
    let length = match l {
        0x80 if constructed => Length::Indefinite,
        0x80 => {
            return Err(Error::Malformed(
                "indefinite length on a primitive encoding",
            ));
        }
        0xff => return Err(Error::Malformed("reserved length octet 0xff")),
        l if l < 0x80 => Length::Definite(usize::from(l)),
        l => {
            let n = usize::from(l & 0x7f);
            if n > 4 {
                return Err(Error::Malformed("length of more than four octets"));
            }
            let bytes = input
                .get(pos..pos + n)
                .ok_or(Error::Truncated("length octets"))?;
            pos += n;
            Length::Definite(
                bytes
                    .iter()
                    .fold(0usize, |acc, b| (acc << 8) | usize::from(*b)),
            )
        }
    };
    Ok((tag, length, pos))
}

/// One decoded element: its tag, contents octets and the whole encoding.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tlv<'a> {
    pub tag: Tag,
    /// Contents octets; for the indefinite form, the nested encodings without the
    /// end-of-contents octets.
    pub content: &'a [u8],
    /// Identifier, length, contents and (indefinite form) end-of-contents octets.
    pub raw: &'a [u8],
    depth: usize,
}

/// Reads one element from `input` at nesting `depth`; returns it and the rest.
fn read_tlv(input: &[u8], depth: usize) -> Result<(Tlv<'_>, &[u8])> {
    if depth > MAX_DEPTH {
        return Err(Error::TooDeep(MAX_DEPTH));
    }
    // The usual element of an envelope or a heading: one identifier octet (tag number below
    // 31, not end-of-contents) and a short definite length; read here without the general
    // header's cases. Everything else, errors included, goes the general way below.
    if let [first, len, ..] = *input
        && first & 0x1f != 0x1f
        && first & 0xdf != 0
        && len < 0x80
    {
        let end = 2 + usize::from(len);
        if end <= input.len() {
            let tlv = Tlv {
                tag: first_octet_tag(first),
                content: &input[2..end],
                raw: &input[..end],
                depth,
            };
            return Ok((tlv, &input[end..]));
        }
    }
    read_tlv_general(input, depth)
}

/// [`read_tlv`] for every form: high tag numbers, long and indefinite lengths, and the
/// errors.
fn read_tlv_general(input: &[u8], depth: usize) -> Result<(Tlv<'_>, &[u8])> {
    let (tag, length, hlen) = header(input)?;
    if tag.class == Class::Universal && tag.number == 0 {
        return Err(Error::Malformed("unexpected end-of-contents octets"));
    }
    match length {
        Length::Definite(len) => {
            let end = hlen
                .checked_add(len)
                .ok_or(Error::Malformed("length overflow"))?;
            if end > input.len() {
                return Err(Error::Truncated("contents octets"));
            }
            let tlv = Tlv {
                tag,
                content: &input[hlen..end],
                raw: &input[..end],
                depth,
            };
            Ok((tlv, &input[end..]))
        }
        Length::Indefinite => {
            let mut pos = hlen;
            loop {
                let rest = &input[pos..];
                if rest.len() < 2 {
                    return Err(Error::Truncated("end-of-contents octets"));
                }
                if rest[0] == 0 && rest[1] == 0 {
                    break;
                }
                let (_, after) = read_tlv(rest, depth + 1)?;
                pos = input.len() - after.len();
            }
            let tlv = Tlv {
                tag,
                content: &input[hlen..pos],
                raw: &input[..pos + 2],
                depth,
            };
            Ok((tlv, &input[pos + 2..]))
        }
    }
}

/// Reads exactly one element spanning all of `input`.
pub(crate) fn read_single<'a>(input: &'a [u8], what: &'static str) -> Result<Tlv<'a>> {
    let (tlv, rest) = read_tlv(input, 0)?;
    if !rest.is_empty() {
        return Err(Error::Trailing(what));
    }
    Ok(tlv)
}

/// [`Tlv::nesting`] of a constructed value whose contents are `content`, read without
/// [`Tlv`]s when every element inside has a one-octet tag and a short definite length (as
/// an O/R name's usually have); None for anything else (the general way then decides,
/// errors included).
fn short_nesting(content: &[u8]) -> Option<usize> {
    // The ends of the constructed values open around the element at `i`.
    let mut ends = [0usize; MAX_DEPTH + 1];
    let (mut open, mut most, mut i) = (0, 0, 0);
    while i < content.len() {
        while open > 0 && i == ends[open - 1] {
            open -= 1;
        }
        let (first, len) = (content[i], usize::from(*content.get(i + 1)?));
        if first & 0x1f == 0x1f || first & 0xdf == 0 || len & 0x80 != 0 {
            return None;
        }
        let end = i + 2 + len;
        if end > content.len() || (open > 0 && end > ends[open - 1]) {
            return None;
        }
        most = most.max(open + 1);
        if first & 0x20 != 0 && len > 0 {
            if open == MAX_DEPTH {
                return None;
            }
            ends[open] = end;
            open += 1;
            i += 2;
        } else {
            i = end;
        }
    }
    Some(most)
}

/// A cursor over the elements inside a constructed value.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
    depth: usize,
}

impl<'a> Reader<'a> {
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next element, or `None` at the end.
    pub fn next_tlv(&mut self) -> Result<Option<Tlv<'a>>> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let (tlv, rest) = read_tlv(self.rest, self.depth)?;
        self.rest = rest;
        Ok(Some(tlv))
    }

    /// The next element; `Missing(what)` at the end.
    pub fn read(&mut self, what: &'static str) -> Result<Tlv<'a>> {
        self.next_tlv()?.ok_or(Error::Missing(what))
    }

    /// The tag of the next element, without consuming it.
    pub fn peek_tag(&self) -> Result<Option<Tag>> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        header(self.rest).map(|(tag, _, _)| Some(tag))
    }

    /// The next element if its class and number are those of `tag`.
    pub fn optional(&mut self, tag: Tag) -> Result<Option<Tlv<'a>>> {
        match self.peek_tag()? {
            Some(t) if t.is(tag) => self.next_tlv(),
            _ => Ok(None),
        }
    }

    /// Ends the reader: trailing elements are an error.
    pub fn finish(&self, what: &'static str) -> Result<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(Error::Trailing(what))
        }
    }
}

impl<'a> Tlv<'a> {
    /// Its nesting depth: 0 for an outermost element.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Levels of constructed values inside it: 0 for a primitive or empty value, else one
    /// more than the most of its elements. Reading every element inside it reaches depth
    /// `self.depth() + self.nesting()`.
    ///
    /// Errors: as [`Reader::next_tlv`].
    pub fn nesting(&self) -> Result<usize> {
        if !self.tag.constructed {
            return Ok(0);
        }
        match short_nesting(self.content) {
            Some(n) => Ok(n),
            None => self.nesting_general(),
        }
    }

    /// [`Tlv::nesting`] element by element, for every form.
    fn nesting_general(&self) -> Result<usize> {
        if !self.tag.constructed {
            return Ok(0);
        }
        let mut r = self.reader("nesting")?;
        let mut most = 0;
        while let Some(t) = r.next_tlv()? {
            most = most.max(1 + t.nesting_general()?);
        }
        Ok(most)
    }

    /// The elements inside a constructed value.
    pub fn reader(&self, what: &'static str) -> Result<Reader<'a>> {
        if !self.tag.constructed {
            return Err(Error::UnexpectedTag {
                context: what,
                found: self.tag,
            });
        }
        Ok(Reader {
            rest: self.content,
            depth: self.depth + 1,
        })
    }

    /// Checks class and number against `tag`.
    pub fn expect(self, tag: Tag, what: &'static str) -> Result<Tlv<'a>> {
        if self.tag.is(tag) {
            Ok(self)
        } else {
            Err(Error::UnexpectedTag {
                context: what,
                found: self.tag,
            })
        }
    }

    /// The contents of a primitive encoding.
    pub fn primitive(&self, what: &'static str) -> Result<&'a [u8]> {
        if self.tag.constructed {
            return Err(Error::UnexpectedTag {
                context: what,
                found: self.tag,
            });
        }
        Ok(self.content)
    }

    /// The octets of a string type, primitive or constructed (X.690 §8.23.6), capped at
    /// `cap` octets.
    pub fn octets(&self, what: &'static str, cap: usize) -> Result<Cow<'a, [u8]>> {
        if !self.tag.constructed {
            if self.content.len() > cap {
                return Err(Error::TooLong {
                    what,
                    len: self.content.len(),
                    cap,
                });
            }
            return Ok(Cow::Borrowed(self.content));
        }
        let mut out = Vec::new();
        self.gather(&mut out, what, cap)?;
        Ok(Cow::Owned(out))
    }

    fn gather(&self, out: &mut Vec<u8>, what: &'static str, cap: usize) -> Result<()> {
        let mut r = self.reader(what)?;
        while let Some(seg) = r.next_tlv()? {
            if seg.tag.class != Class::Universal {
                return Err(Error::UnexpectedTag {
                    context: what,
                    found: seg.tag,
                });
            }
            if seg.tag.constructed {
                seg.gather(out, what, cap)?;
            } else {
                if out.len() + seg.content.len() > cap {
                    return Err(Error::TooLong {
                        what,
                        len: out.len() + seg.content.len(),
                        cap,
                    });
                }
                out.extend_from_slice(seg.content);
            }
        }
        Ok(())
    }

    /// An INTEGER or ENUMERATED value (X.690 §8.3) in `i64`.
    pub fn integer(&self, what: &'static str) -> Result<i64> {
        let c = self.primitive(what)?;
        if c.is_empty() {
            return Err(Error::invalid(what, "empty integer"));
        }
        // Leading sign-extension octets are tolerated.
        let mut c = c;
        while c.len() > 8 && (c[0] == 0 && c[1] & 0x80 == 0 || c[0] == 0xff && c[1] & 0x80 != 0) {
            c = &c[1..];
        }
        if c.len() > 8 {
            return Err(Error::invalid(what, "integer out of range"));
        }
        let mut v: i64 = if c[0] & 0x80 != 0 { -1 } else { 0 };
        for b in c {
            v = (v << 8) | i64::from(*b);
        }
        Ok(v)
    }

    /// A non-negative INTEGER no greater than `max`.
    pub fn unsigned(&self, what: &'static str, max: u32) -> Result<u32> {
        let v = self.integer(what)?;
        if v < 0 || v > i64::from(max) {
            return Err(Error::invalid(what, format!("{v} outside 0..={max}")));
        }
        Ok(v as u32)
    }

    /// A BOOLEAN (X.690 §8.2): any non-zero octet is TRUE.
    pub fn boolean(&self, what: &'static str) -> Result<bool> {
        match self.primitive(what)? {
            [b] => Ok(*b != 0),
            _ => Err(Error::invalid(what, "boolean of other than one octet")),
        }
    }

    /// A NULL (X.690 §8.8).
    pub fn null(&self, what: &'static str) -> Result<()> {
        if self.primitive(what)?.is_empty() {
            Ok(())
        } else {
            Err(Error::invalid(what, "non-empty null"))
        }
    }

    /// A BIT STRING (X.690 §8.6), primitive or constructed.
    pub fn bit_string(&self, what: &'static str) -> Result<BitString> {
        if !self.tag.constructed {
            return BitString::from_wire(self.content, what);
        }
        let mut r = self.reader(what)?;
        let mut out = BitString::new();
        while let Some(seg) = r.next_tlv()? {
            let part = seg.bit_string(what)?;
            if !out.len.is_multiple_of(8) {
                return Err(Error::invalid(
                    what,
                    "unused bits in a segment other than the last",
                ));
            }
            if out.bytes.len() + part.bytes.len() > MAX_STRING_LEN {
                return Err(Error::TooLong {
                    what,
                    len: out.bytes.len() + part.bytes.len(),
                    cap: MAX_STRING_LEN,
                });
            }
            out.bytes.extend_from_slice(&part.bytes);
            out.len += part.len;
        }
        Ok(out)
    }

    /// A character string of `kind`, capped at `cap` octets, as a `String` or, for the short
    /// values of O/R names, a [`compact_str::CompactString`] (inline up to 24 octets, no
    /// allocation).
    pub fn string<S: TextOut>(&self, kind: StrKind, what: &'static str, cap: usize) -> Result<S> {
        let octets = self.octets(what, cap)?;
        kind.decode(&octets, what)
    }

    /// An OBJECT IDENTIFIER (X.690 §8.19), decoded by `rasn`.
    pub fn oid(&self, what: &'static str) -> Result<Oid> {
        Oid::from_content(self.primitive(what)?, what)
    }

    /// A UTCTime (X.680 §47), decoded by `rasn`.
    pub fn utc_time(&self, what: &'static str) -> Result<Time> {
        let octets = self.octets(what, MAX_TIME_LEN)?;
        time_from_content(&octets, what)
    }
}

/// What a decoded character string is made into: `String`, or `CompactString` for the
/// short values of O/R names and identifiers.
pub trait TextOut: for<'a> From<&'a str> + FromIterator<char> {}

impl TextOut for String {}
impl TextOut for compact_str::CompactString {}

/// `octets`, known to be ASCII, as text: a body text (kilobytes) through `simdutf8`'s
/// vectorised UTF-8 check, a short value through the standard one.
fn ascii_str(octets: &[u8]) -> &str {
    if octets.len() >= 64 {
        simdutf8::basic::from_utf8(octets).unwrap_or_default()
    } else {
        std::str::from_utf8(octets).unwrap_or_default()
    }
}

/// The restricted character string types used by P1 and X.420.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StrKind {
    /// NumericString: digits and space.
    Numeric,
    /// PrintableString (X.680 §41.4).
    Printable,
    /// IA5String: 7-bit.
    Ia5,
    /// TeletexString / GeneralString: octets mapped one to one onto U+0000..U+00FF.
    EightBit,
}

impl StrKind {
    /// Decoding is lenient: the 7-bit types accept any 7-bit octet (peers put `@` and `_`
    /// in PrintableStrings); the 8-bit types map octets onto Latin-1.
    fn decode<S: TextOut>(self, octets: &[u8], what: &'static str) -> Result<S> {
        match self {
            // ASCII octets are their own UTF-8: one check and one copy (a body text is
            // kilobytes), the character by character mapping only for the rest.
            _ if octets.is_ascii() => Ok(S::from(ascii_str(octets))),
            StrKind::EightBit => Ok(octets.iter().map(|b| char::from(*b)).collect()),
            _ => {
                let b = octets.iter().find(|b| **b >= 0x80).copied().unwrap_or_default();
                Err(Error::invalid(
                    what,
                    format!("octet {b:#04x} outside the 7-bit repertoire"),
                ))
            }
        }
    }

    /// Encoding holds the 7-bit types to 7-bit octets, the same rule as decoding, so that
    /// whatever was decoded re-encodes; the stricter repertoires (PrintableString,
    /// NumericString) are enforced where values are made: the mnemonic parser and the
    /// constructors.
    pub fn encode(self, s: &str, what: &'static str) -> Result<Vec<u8>> {
        match self {
            StrKind::Numeric | StrKind::Printable | StrKind::Ia5 if s.is_ascii() => {}
            StrKind::Numeric | StrKind::Printable | StrKind::Ia5 => {
                if let Some(c) = s.chars().find(|c| !c.is_ascii()) {
                    return Err(Error::unencodable(
                        what,
                        format!("{c:?} is not a 7-bit character"),
                    ));
                }
            }
            StrKind::EightBit if s.is_ascii() => {}
            StrKind::EightBit => {
                if let Some(c) = s.chars().find(|c| u32::from(*c) > 0xff) {
                    return Err(Error::unencodable(
                        what,
                        format!("{c:?} is outside U+0000..U+00FF"),
                    ));
                }
                return Ok(s.chars().map(|c| u32::from(c) as u8).collect());
            }
        }
        Ok(s.as_bytes().to_vec())
    }
}

/// Whether `c` is in the PrintableString repertoire (X.680 §41.4).
pub fn is_printable_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || " '()+,-./:=?".contains(c)
}

/// A BIT STRING value: `len` bits, bit 0 being the most significant bit of the first octet
/// (X.690 §8.6.2). Unused trailing bits are kept zero.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct BitString {
    bytes: Vec<u8>,
    len: usize,
}

impl BitString {
    /// The empty bit string `{}`.
    pub fn new() -> BitString {
        BitString::default()
    }

    /// The bit string of `len` bits with the named `bits` set (the others zero).
    ///
    /// Panics never; bits at or beyond `len` extend it.
    pub fn with_bits(len: usize, bits: &[usize]) -> BitString {
        let mut b = BitString {
            bytes: vec![0; len.div_ceil(8)],
            len,
        };
        for bit in bits {
            b.set(*bit, true);
        }
        b
    }

    /// The shortest bit string with the named `bits` set (X.690 §11.2.2 style).
    pub fn from_bits(bits: &[usize]) -> BitString {
        BitString::with_bits(0, bits)
    }

    /// Bit `bit`, false beyond the end.
    pub fn get(&self, bit: usize) -> bool {
        bit < self.len && self.bytes[bit / 8] & (0x80 >> (bit % 8)) != 0
    }

    /// Sets bit `bit`, growing the string if needed.
    pub fn set(&mut self, bit: usize, value: bool) {
        if bit >= self.len {
            if !value {
                return;
            }
            self.len = bit + 1;
            self.bytes.resize(self.len.div_ceil(8), 0);
        }
        if value {
            self.bytes[bit / 8] |= 0x80 >> (bit % 8);
        } else {
            self.bytes[bit / 8] &= !(0x80 >> (bit % 8));
        }
    }

    /// Number of bits.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for `{}`.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when no bit is set.
    pub fn none_set(&self) -> bool {
        self.bytes.iter().all(|b| *b == 0)
    }

    /// The bits as octets, most significant bit first, unused bits zero.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The indexes of the set bits.
    pub fn ones(&self) -> Vec<usize> {
        (0..self.len).filter(|b| self.get(*b)).collect()
    }

    /// Builds from primitive contents octets: an unused-bits count then the bits.
    fn from_wire(content: &[u8], what: &'static str) -> Result<BitString> {
        let (&unused, bits) = content
            .split_first()
            .ok_or_else(|| Error::invalid(what, "empty bit string"))?;
        if unused > 7 || (bits.is_empty() && unused != 0) {
            return Err(Error::invalid(what, format!("{unused} unused bits")));
        }
        if bits.len() > MAX_STRING_LEN {
            return Err(Error::TooLong {
                what,
                len: bits.len(),
                cap: MAX_STRING_LEN,
            });
        }
        let mut bytes = bits.to_vec();
        if let Some(last) = bytes.last_mut() {
            *last &= 0xffu8 << unused;
        }
        Ok(BitString {
            len: bits.len() * 8 - usize::from(unused),
            bytes,
        })
    }

    fn to_wire(&self) -> Vec<u8> {
        let unused = (self.bytes.len() * 8 - self.len) as u8;
        let mut out = Vec::with_capacity(self.bytes.len() + 1);
        out.push(unused);
        out.extend_from_slice(&self.bytes);
        out
    }
}

/// An OBJECT IDENTIFIER as its arcs (X.680 §32).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Oid(pub Vec<u32>);

impl Oid {
    fn from_content(content: &[u8], what: &'static str) -> Result<Oid> {
        if content.len() > MAX_OID_LEN {
            return Err(Error::TooLong {
                what,
                len: content.len(),
                cap: MAX_OID_LEN,
            });
        }
        let mut der = Vec::with_capacity(content.len() + 2);
        der.push(0x06);
        der.push(content.len() as u8);
        der.extend_from_slice(content);
        let oid: rasn::types::ObjectIdentifier =
            rasn::ber::decode(&der).map_err(|e| Error::invalid(what, e.to_string()))?;
        Ok(Oid(oid.to_vec()))
    }

    fn to_content(&self, what: &'static str) -> Result<Vec<u8>> {
        let oid = rasn::types::ObjectIdentifier::new(self.0.clone()).ok_or_else(|| {
            Error::unencodable(what, "an object identifier needs two valid first arcs")
        })?;
        let der = rasn::ber::encode(&oid).map_err(|e| Error::unencodable(what, e.to_string()))?;
        let (_, _, hlen) = header(&der).map_err(|e| Error::unencodable(what, e.to_string()))?;
        let content = der[hlen..].to_vec();
        if content.len() > MAX_OID_LEN {
            return Err(Error::unencodable(
                what,
                format!("more than {MAX_OID_LEN} contents octets"),
            ));
        }
        Ok(content)
    }
}

impl fmt::Display for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let arcs: Vec<String> = self.0.iter().map(u32::to_string).collect();
        f.write_str(&arcs.join("."))
    }
}

/// A point in time as carried by UTCTime (X.411 `Time ::= UTCTime`), second precision.
///
/// Two-digit years map onto 1970..=2069 (70–99 → 19xx, 00–69 → 20xx), the window of
/// `rasn`'s UTCTime codec; encoding a time outside it is [`Error::Unencodable`].
/// Sub-second precision is dropped on encoding.
pub type Time = chrono::DateTime<chrono::Utc>;

/// The longest UTCTime content read, in octets (`YYMMDDhhmmss+hhmm` is 17).
const MAX_TIME_LEN: usize = 32;

fn time_from_content(content: &[u8], what: &'static str) -> Result<Time> {
    // Wrapped back into its TLV on the stack for rasn.
    let len = content.len();
    if len > MAX_TIME_LEN {
        return Err(Error::TooLong { what, len, cap: MAX_TIME_LEN });
    }
    let mut der = [0u8; MAX_TIME_LEN + 2];
    der[0] = 0x17;
    der[1] = len as u8;
    der[2..2 + len].copy_from_slice(content);
    let t = rasn::ber::decode::<rasn::types::UtcTime>(&der[..2 + len]).map_err(|e| {
        Error::invalid(what, format!("{:?}: {e}", String::from_utf8_lossy(content)))
    })?;
    // A leap second (second 60) arrives as :59 plus a second of nanoseconds; it is kept
    // as :59 so that the value re-encodes to what it decodes from.
    use chrono::Timelike;
    Ok(t.with_nanosecond(0).unwrap_or(t))
}

/// UTCTime content `YYMMDDhhmmssZ` (X.680 §47.3 b), the form rasn writes, without its
/// allocations: two per time, a buffer of a kilobyte and the copy.
fn time_to_content(t: &Time, what: &'static str) -> Result<[u8; 13]> {
    use chrono::{Datelike, Timelike};
    if !(1970..=2069).contains(&t.year()) {
        return Err(Error::unencodable(
            what,
            format!(
                "year {} is outside the UTCTime window 1970..=2069",
                t.year()
            ),
        ));
    }
    let mut out = [b'Z'; 13];
    let fields = [t.year() as u32 % 100, t.month(), t.day(), t.hour(), t.minute(), t.second()];
    for (pair, v) in out.chunks_exact_mut(2).zip(fields) {
        pair[0] = b'0' + (v / 10) as u8;
        pair[1] = b'0' + (v % 10) as u8;
    }
    Ok(out)
}

/// Definite-length BER output.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    buf: Vec<u8>,
}

/// Octets of a definite length `len` in the fewest octets (X.690 §8.1.3): one below 128,
/// else one plus the octets of the number.
fn length_octets(len: usize) -> usize {
    if len < 0x80 {
        1
    } else {
        1 + (usize::BITS - len.leading_zeros()).div_ceil(8) as usize
    }
}

/// Write the definite length `len` into `dst`, which holds [`length_octets`]`(len)` octets
/// (X.690 §8.1.3: short form below 128, else the count of octets and the number).
fn write_length(dst: &mut [u8], len: usize) {
    if len < 0x80 {
        dst[0] = len as u8;
    } else {
        let n = dst.len() - 1;
        dst[0] = 0x80 | n as u8;
        dst[1..].copy_from_slice(&(len as u64).to_be_bytes()[8 - n..]);
    }
}

fn push_header(buf: &mut Vec<u8>, tag: Tag, len: usize) {
    let class = match tag.class {
        Class::Universal => 0x00,
        Class::Application => 0x40,
        Class::Context => 0x80,
        Class::Private => 0xc0,
    };
    let form = if tag.constructed { 0x20 } else { 0 };
    if tag.number < 0x1f {
        buf.push(class | form | tag.number as u8);
    } else {
        buf.push(class | form | 0x1f);
        let mut groups = Vec::new();
        let mut n = tag.number;
        loop {
            groups.push((n & 0x7f) as u8);
            n >>= 7;
            if n == 0 {
                break;
            }
        }
        for (i, g) in groups.iter().rev().enumerate() {
            buf.push(if i + 1 < groups.len() { g | 0x80 } else { *g });
        }
    }
    let at = buf.len();
    buf.resize(at + length_octets(len), 0);
    write_length(&mut buf[at..], len);
}

impl Writer {
    pub fn new() -> Writer {
        Writer::default()
    }

    /// A writer whose buffer holds `n` octets before it grows: for an encoding whose size is
    /// known roughly in advance (a message around its content), one allocation instead of a
    /// doubling series, each step copying what was written.
    pub fn with_capacity(n: usize) -> Writer {
        Writer {
            buf: Vec::with_capacity(n),
        }
    }

    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }

    /// A primitive element.
    pub fn primitive(&mut self, tag: Tag, content: &[u8]) {
        push_header(
            &mut self.buf,
            Tag {
                constructed: false,
                ..tag
            },
            content.len(),
        );
        self.buf.extend_from_slice(content);
    }

    /// A constructed element whose contents `f` writes.
    pub fn constructed(
        &mut self,
        tag: Tag,
        f: impl FnOnce(&mut Writer) -> Result<()>,
    ) -> Result<()> {
        self.constructed_sized(tag, 0, f)
    }

    /// [`Writer::constructed`] for contents known to take at least `at_least` octets (the
    /// message body they hold): the length octets for that size are set aside before the
    /// contents are written, so that they need not move afterwards. The encoding is the same
    /// whatever `at_least` is — lengths in the fewest octets (X.690 §10.1) — only the work
    /// differs: a wrong guess costs one move of the contents.
    pub fn constructed_sized(
        &mut self,
        tag: Tag,
        at_least: usize,
        f: impl FnOnce(&mut Writer) -> Result<()>,
    ) -> Result<()> {
        // Written in place behind the length octets of `at_least`, which are widened or
        // narrowed afterwards if the contents need another count of them: at most one move
        // of the contents instead of a buffer per level (a message body sits several levels
        // deep).
        let start = self.buf.len();
        push_header(&mut self.buf, tag.constructed(), at_least);
        let reserved = length_octets(at_least);
        let at = self.buf.len();
        if let Err(e) = f(self) {
            self.buf.truncate(start);
            return Err(e);
        }
        let len = self.buf.len() - at;
        let need = length_octets(len);
        let first = at - reserved;
        if need > reserved {
            self.buf
                .splice(at..at, std::iter::repeat_n(0, need - reserved));
        } else if need < reserved {
            self.buf.drain(first + need..at);
        }
        write_length(&mut self.buf[first..first + need], len);
        Ok(())
    }

    /// Octets that are already a BER encoding.
    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    pub fn integer(&mut self, tag: Tag, v: i64) {
        let bytes = v.to_be_bytes();
        let mut start = 0;
        while start < 7
            && ((bytes[start] == 0 && bytes[start + 1] & 0x80 == 0)
                || (bytes[start] == 0xff && bytes[start + 1] & 0x80 != 0))
        {
            start += 1;
        }
        self.primitive(tag, &bytes[start..]);
    }

    pub fn boolean(&mut self, tag: Tag, v: bool) {
        self.primitive(tag, &[if v { 0xff } else { 0 }]);
    }

    pub fn bit_string(&mut self, tag: Tag, v: &BitString) {
        self.primitive(tag, &v.to_wire());
    }

    pub fn string(
        &mut self,
        tag: Tag,
        kind: StrKind,
        s: &str,
        what: &'static str,
        cap: usize,
    ) -> Result<()> {
        // ASCII text is its own octets in every kind: written without a copy first.
        if s.is_ascii() && s.len() <= cap {
            self.primitive(tag, s.as_bytes());
            return Ok(());
        }
        let octets = kind.encode(s, what)?;
        if octets.len() > cap {
            return Err(Error::unencodable(
                what,
                format!("{} octets exceed the cap of {cap}", octets.len()),
            ));
        }
        self.primitive(tag, &octets);
        Ok(())
    }

    pub fn oid(&mut self, tag: Tag, oid: &Oid, what: &'static str) -> Result<()> {
        let content = oid.to_content(what)?;
        self.primitive(tag, &content);
        Ok(())
    }

    pub fn utc_time(&mut self, tag: Tag, t: &Time, what: &'static str) -> Result<()> {
        let content = time_to_content(t, what)?;
        self.primitive(tag, &content);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn nesting_counts_the_levels_inside() {
        // SEQUENCE { [5] { [0] "a" } OCTET STRING (constructed) { OCTET STRING "b" } [1] {} }
        let input = [0x30, 0x0c, 0xa5, 0x03, 0x80, 0x01, b'a', 0x24, 0x03, 0x04, 0x01, b'b', 0xa1, 0x00];
        let t = read_single(&input, "test").unwrap();
        assert_eq!(short_nesting(t.content), Some(2));
        assert_eq!(t.nesting().unwrap(), 2);
        // The same with an indefinite length inside: the general way counts it.
        let input = [0x30, 0x80, 0xa5, 0x80, 0x80, 0x01, b'a', 0, 0, 0, 0];
        let t = read_single(&input, "test").unwrap();
        assert_eq!(short_nesting(t.content), None);
        assert_eq!(t.nesting().unwrap(), 2);
        assert_eq!(read_single(&[0x04, 0x01, 0], "test").unwrap().nesting().unwrap(), 0);
    }

    #[test]
    fn indefinite_lengths_and_constructed_strings() {
        // [0] { OCTET STRING (constructed, indefinite) { "ab" "c" } } with indefinite outer.
        let input = [
            0xa0, 0x80, 0x24, 0x80, 0x04, 0x02, b'a', b'b', 0x04, 0x01, b'c', 0, 0, 0, 0,
        ];
        let tlv = read_single(&input, "test").unwrap();
        assert_eq!(tlv.tag, ctx_c(0));
        let mut r = tlv.reader("test").unwrap();
        let s = r.read("string").unwrap();
        assert_eq!(&*s.octets("string", 10).unwrap(), b"abc");
        assert!(r.is_empty());
        assert!(matches!(s.octets("string", 2), Err(Error::TooLong { .. })));
    }

    /// The definite length octets of `len` written the plain way (X.690 §8.1.3).
    fn reference_length(len: usize) -> Vec<u8> {
        if len < 0x80 {
            return vec![len as u8];
        }
        let bytes = (len as u64).to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let mut v = vec![0x80 | (8 - skip) as u8];
        v.extend_from_slice(&bytes[skip..]);
        v
    }

    /// Encodings of nested elements: primitive and constructed, with short, long and
    /// (constructed) indefinite lengths.
    fn nested_encoding() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let with_length = |tag: u8, content: Vec<u8>, form: u8| {
            let mut v = vec![tag];
            match form {
                0 if content.len() < 0x80 => v.push(content.len() as u8),
                1 if tag & 0x20 != 0 => {
                    v.push(0x80);
                    v.extend_from_slice(&content);
                    v.extend_from_slice(&[0, 0]);
                    return v;
                }
                _ => v.extend_from_slice(&reference_length(content.len())),
            }
            v.extend_from_slice(&content);
            v
        };
        let leaf = (prop_oneof![Just(0x04u8), Just(0x13), Just(0x80), Just(0x1f)], proptest::collection::vec(any::<u8>(), 0..4), 0u8..3)
            .prop_map(move |(tag, content, form)| with_length(tag, content, if form == 2 { 2 } else { 0 }));
        leaf.prop_recursive(6, 48, 4, move |inner| {
            (prop_oneof![Just(0x30u8), Just(0x31), Just(0xa0), Just(0x24), Just(0x60)], proptest::collection::vec(inner, 0..4), 0u8..4)
                .prop_map(move |(tag, children, form)| with_length(tag, children.concat(), form.min(2)))
        })
    }

    proptest::proptest! {
        /// The short way of `Tlv::nesting` counts what the general way counts, and leaves to it
        /// (None) whatever it does not read.
        #[test]
        fn nesting_agrees_with_the_general_count(children in proptest::collection::vec(nested_encoding(), 0..4), noise in proptest::collection::vec(proptest::num::u8::ANY, 0..6)) {
            for content in [children.concat(), [children.concat(), noise.clone()].concat(), noise.clone()] {
                let mut outer = vec![0x30];
                outer.extend_from_slice(&reference_length(content.len()));
                outer.extend_from_slice(&content);
                let Ok(t) = read_single(&outer, "test") else { continue };
                if let Some(n) = short_nesting(t.content) {
                    proptest::prop_assert_eq!(t.nesting_general().map_err(|e| e.to_string()), Ok(n));
                }
                proptest::prop_assert_eq!(t.nesting().map_err(|e| e.to_string()), t.nesting_general().map_err(|e| e.to_string()));
            }
        }

        /// The short way of `read_tlv` (one identifier octet, short length) reads every
        /// input as the general way does: the same element and rest, or the same error.
        #[test]
        fn read_tlv_agrees_with_the_general_reader(
            input in proptest::collection::vec(proptest::prop_oneof![
                proptest::num::u8::ANY,
                proptest::strategy::Just(0u8),
                proptest::strategy::Just(0x20u8),
                proptest::strategy::Just(0x30u8),
                proptest::strategy::Just(0x80u8),
                proptest::strategy::Just(0x1fu8),
            ], 0..40),
            depth in proptest::prop_oneof![0usize..3, proptest::strategy::Just(MAX_DEPTH), proptest::strategy::Just(MAX_DEPTH + 1)],
        ) {
            let general = if depth > MAX_DEPTH { Err(Error::TooDeep(MAX_DEPTH)) } else { read_tlv_general(&input, depth) };
            proptest::prop_assert_eq!(format!("{:?}", read_tlv(&input, depth)), format!("{general:?}"));
        }

        /// Whatever size is guessed for the contents, the encoding is the one with the
        /// fewest length octets, at every level.
        #[test]
        fn a_guessed_size_changes_nothing_on_the_wire(
            inner in proptest::prop_oneof![0usize..300, 60_000usize..70_000],
            guess_outer in proptest::prop_oneof![0usize..300, 60_000usize..70_000, proptest::strategy::Just(1usize << 24)],
            guess_inner in proptest::prop_oneof![0usize..300, 60_000usize..70_000],
        ) {
            let content = vec![0x55u8; inner];
            let mut w = Writer::new();
            w.constructed_sized(ctx_c(0), guess_outer, |w| {
                w.primitive(Tag::context(1), b"x");
                w.constructed_sized(SEQUENCE, guess_inner, |w| {
                    w.primitive(OCTET_STRING, &content);
                    Ok(())
                })
            })
            .unwrap();
            let mut octets = vec![0x04];
            octets.extend(reference_length(inner));
            octets.extend(&content);
            let mut seq = vec![0x30];
            seq.extend(reference_length(octets.len()));
            seq.extend(&octets);
            let mut outer_contents = vec![0x81, 0x01, b'x'];
            outer_contents.extend(&seq);
            let mut expected = vec![0xa0];
            expected.extend(reference_length(outer_contents.len()));
            expected.extend(&outer_contents);
            proptest::prop_assert_eq!(w.into_vec(), expected);
        }

        /// A UTCTime goes out as rasn writes it, for every second of the window, and
        /// reads back to the same second.
        #[test]
        fn utc_time_written_as_rasn_writes_it(secs in 0i64..3_155_760_000, nanos in 0u32..2_000_000_000) {
            let t = chrono::DateTime::from_timestamp(secs, nanos.min(1_999_999_999)).unwrap_or_default();
            let whole = chrono::Timelike::with_nanosecond(&t, 0).unwrap_or(t);
            let der = rasn::ber::encode(&whole).unwrap();
            let ours = time_to_content(&t, "t").unwrap();
            proptest::prop_assert_eq!(&ours[..], &der[2..]);
            proptest::prop_assert_eq!(time_from_content(&ours, "t").unwrap(), whole);
        }
    }

    #[test]
    fn depth_is_capped() {
        let mut input = Vec::new();
        for _ in 0..(MAX_DEPTH + 2) {
            input.extend_from_slice(&[0x30, 0x80]);
        }
        for _ in 0..(MAX_DEPTH + 2) {
            input.extend_from_slice(&[0, 0]);
        }
        assert_eq!(
            read_single(&input, "test").unwrap_err(),
            Error::TooDeep(MAX_DEPTH)
        );
    }

    #[test]
    fn truncation_and_bad_lengths() {
        assert_eq!(
            read_single(&[0x30, 0x05, 0x02], "t").unwrap_err(),
            Error::Truncated("contents octets")
        );
        assert!(matches!(
            read_single(&[0x02, 0x80, 0, 0], "t"),
            Err(Error::Malformed(_))
        ));
        assert!(matches!(
            read_single(&[0x30, 0x80, 0x02, 0x01, 0x01], "t"),
            Err(Error::Truncated(_))
        ));
        assert!(matches!(
            read_single(&[0x30, 0x85, 1, 1, 1, 1, 1], "t"),
            Err(Error::Malformed(_))
        ));
    }

    #[test]
    fn integers_round_trip() {
        for v in [
            0i64,
            1,
            127,
            128,
            255,
            256,
            -1,
            -128,
            -129,
            i64::MAX,
            i64::MIN,
        ] {
            let mut w = Writer::new();
            w.integer(INTEGER, v);
            let bytes = w.into_vec();
            assert_eq!(
                read_single(&bytes, "i").unwrap().integer("i").unwrap(),
                v,
                "{bytes:02x?}"
            );
        }
        let mut w = Writer::new();
        w.integer(INTEGER, 128);
        assert_eq!(w.into_vec(), [0x02, 0x02, 0x00, 0x80]);
    }

    #[test]
    fn long_lengths_and_high_tags() {
        let mut w = Writer::new();
        w.primitive(Tag::context(40), &[7u8; 300]);
        let bytes = w.into_vec();
        assert_eq!(&bytes[..5], &[0x9f, 0x28, 0x82, 0x01, 0x2c]);
        let tlv = read_single(&bytes, "t").unwrap();
        assert_eq!(tlv.tag, Tag::context(40));
        assert_eq!(tlv.content.len(), 300);
    }

    #[test]
    fn bit_strings() {
        // PP's per-recipient-indicators: 9 bits, bits 0, 2 and 4 set.
        let b = BitString::from_wire(&[0x07, 0xa8, 0x00], "b").unwrap();
        assert_eq!(b.len(), 9);
        assert_eq!(b.ones(), vec![0, 2, 4]);
        assert_eq!(b.to_wire(), vec![0x07, 0xa8, 0x00]);
        assert_eq!(
            BitString::with_bits(8, &[0, 2, 4]).to_wire(),
            vec![0x00, 0xa8]
        );
        assert_eq!(BitString::new().to_wire(), vec![0x00]);
        assert!(BitString::from_wire(&[0x08, 0x00], "b").is_err());
    }

    #[test]
    fn utc_time_through_rasn() {
        let t = time_from_content(b"991231235959Z", "t").unwrap();
        assert_eq!(
            t,
            chrono::Utc
                .with_ymd_and_hms(1999, 12, 31, 23, 59, 59)
                .unwrap()
        );
        assert_eq!(time_to_content(&t, "t").unwrap(), *b"991231235959Z");
        let t = chrono::Utc
            .with_ymd_and_hms(2026, 11, 21, 23, 54, 18)
            .unwrap();
        assert_eq!(time_to_content(&t, "t").unwrap(), *b"261121235418Z");
        assert!(time_from_content(b"not a time", "t").is_err());
        let leap = time_from_content(b"991231235960Z", "t").unwrap();
        assert_eq!(
            leap,
            chrono::Utc
                .with_ymd_and_hms(1999, 12, 31, 23, 59, 59)
                .unwrap()
        );
        assert_eq!(time_to_content(&leap, "t").unwrap(), *b"991231235959Z");
        // Offsets and minute precision are accepted and normalised to UTC.
        let t = time_from_content(b"9912312359+0100", "t").unwrap();
        assert_eq!(time_to_content(&t, "t").unwrap(), *b"991231225900Z");
        let far = chrono::Utc.with_ymd_and_hms(2070, 1, 1, 0, 0, 0).unwrap();
        assert!(
            time_to_content(
                &chrono::Utc.with_ymd_and_hms(1969, 12, 31, 0, 0, 0).unwrap(),
                "t"
            )
            .is_err()
        );
        let t = time_from_content(b"691231235959Z", "t").unwrap();
        assert_eq!(
            t,
            chrono::Utc
                .with_ymd_and_hms(2069, 12, 31, 23, 59, 59)
                .unwrap()
        );
        assert!(time_to_content(&far, "t").is_err());
    }

    #[test]
    fn oids_through_rasn() {
        let oid = Oid(vec![2, 6, 1, 4, 11]);
        let content = oid.to_content("o").unwrap();
        assert_eq!(content, [0x56, 0x01, 0x04, 0x0b]);
        assert_eq!(Oid::from_content(&content, "o").unwrap(), oid);
        assert_eq!(oid.to_string(), "2.6.1.4.11");
    }
}
