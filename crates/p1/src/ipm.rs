//! A minimal X.420 (P22, 1988 onwards) interpersonal message: enough for mail crossing
//! the SMTP ↔ X.400 gateway to keep its subject, originator, recipients and text body.
//!
//! ```text
//! InformationObject ::= CHOICE { ipm [0] IPM, ipn [1] IPN }
//! IPM     ::= SEQUENCE { heading Heading, body Body }
//! Heading ::= SET { this-IPM ThisIPMField ([APPLICATION 11]), originator [0] OPTIONAL,
//!     authorizing-users [1] OPTIONAL, primary-recipients [2] DEFAULT {},
//!     copy-recipients [3] DEFAULT {}, blind-copy-recipients [4] OPTIONAL,
//!     replied-to-IPM [5] OPTIONAL, ..., subject [8] EXPLICIT SubjectField OPTIONAL, ... }
//! Body     ::= SEQUENCE OF BodyPart
//! BodyPart ::= CHOICE { basic CHOICE { ia5-text [0] IA5TextBodyPart, ... },
//!                       extended [15] ExtendedBodyPart }
//! ```
//!
//! The subject goes out as `[8] { TeletexString }` — the explicit tag X.420 gives it, what
//! PP sends and what Wireshark expects; an implicit `[8]` is accepted too. Heading fields
//! not modelled here (obsoleted, related IPMs, expiry and reply times, importance, ...) are
//! kept as their encodings and written back unchanged. IPNs (X.420 §8) are out of scope:
//! decoding one gives [`Error::Unsupported`].

use crate::address::{OrName, OrNameMemo, check_len, check_opaque, set_once};
use crate::ber::{self, BitString, Oid, StrKind, Tag, Tlv, Writer, app_c, ctx_c};
use crate::error::{Error, Result};
use crate::limits::{MAX_BODY_PARTS, MAX_PDU_LEN, MAX_STRING_LEN};

/// `IPMIdentifier ::= [APPLICATION 11] SET { user ORName OPTIONAL, user-relative-identifier
/// LocalIPMIdentifier (PrintableString 0..64) }` (X.420 §7.2.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct IpmIdentifier {
    /// The user that assigned the identifier.
    pub user: Option<OrName>,
    /// The user-relative part.
    pub user_relative_identifier: String,
}

impl IpmIdentifier {
    fn write(&self, w: &mut Writer, tag: Tag) -> Result<()> {
        w.constructed(tag, |w| {
            if let Some(u) = &self.user {
                u.write(w, app_c(0))?;
            }
            w.string(
                ber::PRINTABLE_STRING,
                StrKind::Printable,
                &self.user_relative_identifier,
                "user-relative-identifier",
                MAX_STRING_LEN,
            )
        })
    }

    fn read(t: &Tlv<'_>, mut names: Option<&mut OrNameMemo>) -> Result<IpmIdentifier> {
        let what = "IPMIdentifier";
        let mut r = t.reader(what)?;
        let (mut user, mut local) = (None, None);
        while let Some(m) = r.next_tlv()? {
            if m.tag.is(Tag::application(0)) {
                set_once(&mut user, OrName::read_noting(&m, names.as_deref_mut())?, "user")?;
            } else if m.tag.is(ber::PRINTABLE_STRING) {
                set_once(
                    &mut local,
                    m.string(
                        StrKind::Printable,
                        "user-relative-identifier",
                        MAX_STRING_LEN,
                    )?,
                    "user-relative-identifier",
                )?;
            } else {
                return Err(Error::UnexpectedTag {
                    context: what,
                    found: m.tag,
                });
            }
        }
        Ok(IpmIdentifier {
            user,
            user_relative_identifier: local.ok_or(Error::Missing("user-relative-identifier"))?,
        })
    }
}

/// `ORDescriptor ::= SET { formal-name ORName OPTIONAL, free-form-name [0] TeletexString
/// OPTIONAL, telephone-number [1] PrintableString OPTIONAL }` (X.420 §7.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct OrDescriptor {
    /// The O/R name.
    pub formal_name: Option<OrName>,
    /// A display name (TeletexString, mapped onto U+0000..U+00FF).
    pub free_form_name: Option<String>,
    /// A telephone number.
    pub telephone_number: Option<String>,
}

impl From<OrName> for OrDescriptor {
    fn from(n: OrName) -> OrDescriptor {
        OrDescriptor {
            formal_name: Some(n),
            ..OrDescriptor::default()
        }
    }
}

impl OrDescriptor {
    fn write(&self, w: &mut Writer, tag: Tag) -> Result<()> {
        w.constructed(tag, |w| {
            if let Some(n) = &self.formal_name {
                n.write(w, app_c(0))?;
            }
            if let Some(s) = &self.free_form_name {
                w.primitive(
                    Tag::context(0),
                    &lossy_eight_bit(s, MAX_STRING_LEN, "free-form-name")?,
                );
            }
            if let Some(s) = &self.telephone_number {
                w.string(
                    Tag::context(1),
                    StrKind::Printable,
                    s,
                    "telephone-number",
                    MAX_STRING_LEN,
                )?;
            }
            Ok(())
        })
    }

    fn read(t: &Tlv<'_>, mut names: Option<&mut OrNameMemo>) -> Result<OrDescriptor> {
        let what = "ORDescriptor";
        let mut r = t.reader(what)?;
        let mut d = OrDescriptor::default();
        while let Some(m) = r.next_tlv()? {
            if m.tag.is(Tag::application(0)) {
                set_once(&mut d.formal_name, OrName::read_noting(&m, names.as_deref_mut())?, "formal-name")?;
            } else if m.tag.is(Tag::context(0)) {
                set_once(
                    &mut d.free_form_name,
                    m.string(StrKind::EightBit, "free-form-name", MAX_STRING_LEN)?,
                    "free-form-name",
                )?;
            } else if m.tag.is(Tag::context(1)) {
                set_once(
                    &mut d.telephone_number,
                    m.string(StrKind::Printable, "telephone-number", MAX_STRING_LEN)?,
                    "telephone-number",
                )?;
            } else {
                return Err(Error::UnexpectedTag {
                    context: what,
                    found: m.tag,
                });
            }
        }
        Ok(d)
    }
}

/// `RecipientSpecifier ::= SET { recipient [0] ORDescriptor, notification-requests [1]
/// BIT STRING DEFAULT {}, reply-requested [2] BOOLEAN DEFAULT FALSE, recipient-extensions
/// [3] OPTIONAL }` (X.420 §7.1.4).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct RecipientSpecifier {
    /// The recipient.
    pub recipient: OrDescriptor,
    /// notification-requests: rn (0), nrn (1), ipm-return (2); left out when empty.
    pub notification_requests: BitString,
    /// reply-requested.
    pub reply_requested: bool,
    /// recipient-extensions `[3]`: contents octets, opaque.
    pub recipient_extensions: Option<Vec<u8>>,
}

impl From<OrName> for RecipientSpecifier {
    fn from(n: OrName) -> RecipientSpecifier {
        RecipientSpecifier {
            recipient: n.into(),
            ..RecipientSpecifier::default()
        }
    }
}

impl RecipientSpecifier {
    fn write(&self, w: &mut Writer) -> Result<()> {
        w.constructed(ber::SET, |w| {
            self.recipient.write(w, ctx_c(0))?;
            if !self.notification_requests.is_empty() {
                w.bit_string(Tag::context(1), &self.notification_requests);
            }
            if self.reply_requested {
                w.boolean(Tag::context(2), true);
            }
            if let Some(x) = &self.recipient_extensions {
                check_opaque(x, "recipient-extensions")?;
                w.constructed(ctx_c(3), |w| {
                    w.raw(x);
                    Ok(())
                })?;
            }
            Ok(())
        })
    }

    fn read(t: &Tlv<'_>, mut names: Option<&mut OrNameMemo>) -> Result<RecipientSpecifier> {
        let what = "RecipientSpecifier";
        let mut r = t.expect(ber::SET, what)?.reader(what)?;
        let (mut recipient, mut nr, mut rr, mut ext) = (None, None, None, None);
        while let Some(m) = r.next_tlv()? {
            match (m.tag.class, m.tag.number) {
                (ber::Class::Context, 0) => {
                    set_once(&mut recipient, OrDescriptor::read(&m, names.as_deref_mut())?, "recipient")?
                }
                (ber::Class::Context, 1) => set_once(
                    &mut nr,
                    m.bit_string("notification-requests")?,
                    "notification-requests",
                )?,
                (ber::Class::Context, 2) => {
                    set_once(&mut rr, m.boolean("reply-requested")?, "reply-requested")?
                }
                (ber::Class::Context, 3) => {
                    let mut xr = m.reader("recipient-extensions")?;
                    while xr.next_tlv()?.is_some() {}
                    check_opaque(m.content, "recipient-extensions")?;
                    set_once(&mut ext, m.content.to_vec(), "recipient-extensions")?;
                }
                _ => {
                    return Err(Error::UnexpectedTag {
                        context: what,
                        found: m.tag,
                    });
                }
            }
        }
        Ok(RecipientSpecifier {
            recipient: recipient.ok_or(Error::Missing("recipient"))?,
            notification_requests: nr.unwrap_or_default(),
            reply_requested: rr.unwrap_or(false),
            recipient_extensions: ext,
        })
    }
}

/// The IPM heading (X.420 §7.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Heading {
    /// this-IPM (`6b`).
    pub this_ipm: IpmIdentifier,
    /// originator `[0]`.
    pub originator: Option<OrDescriptor>,
    /// authorizing-users `[1]`; left out when empty.
    pub authorizing_users: Vec<OrDescriptor>,
    /// primary-recipients `[2]` (To).
    pub primary_recipients: Vec<RecipientSpecifier>,
    /// copy-recipients `[3]` (Cc).
    pub copy_recipients: Vec<RecipientSpecifier>,
    /// blind-copy-recipients `[4]` (Bcc); left out when empty.
    pub blind_copy_recipients: Vec<RecipientSpecifier>,
    /// replied-to-IPM `[5]`.
    pub replied_to_ipm: Option<IpmIdentifier>,
    /// subject `[8]` (TeletexString, 0..128 characters in X.420; up to
    /// [`MAX_STRING_LEN`] octets accepted). Characters above U+00FF go out as `?`.
    pub subject: Option<String>,
    /// Heading fields not modelled above, each as its whole encoding, in received order.
    pub other_fields: Vec<Vec<u8>>,
}

fn write_descriptors(w: &mut Writer, tag: u32, v: &[OrDescriptor]) -> Result<()> {
    if v.is_empty() {
        return Ok(());
    }
    if v.len() > MAX_BODY_PARTS {
        return Err(Error::unencodable(
            "heading",
            format!("more than {MAX_BODY_PARTS} entries in a field"),
        ));
    }
    w.constructed(ctx_c(tag), |w| {
        for d in v {
            d.write(w, ber::SET)?;
        }
        Ok(())
    })
}

fn write_recipients(w: &mut Writer, tag: u32, v: &[RecipientSpecifier]) -> Result<()> {
    if v.is_empty() {
        return Ok(());
    }
    if v.len() > MAX_BODY_PARTS {
        return Err(Error::unencodable(
            "heading",
            format!("more than {MAX_BODY_PARTS} recipients in a field"),
        ));
    }
    w.constructed(ctx_c(tag), |w| {
        for r in v {
            r.write(w)?;
        }
        Ok(())
    })
}

fn read_list<T>(
    t: &Tlv<'_>,
    what: &'static str,
    mut f: impl FnMut(&Tlv<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut r = t.reader(what)?;
    let mut out = Vec::new();
    while let Some(m) = r.next_tlv()? {
        if out.len() == MAX_BODY_PARTS {
            return Err(Error::TooMany {
                what,
                cap: MAX_BODY_PARTS,
            });
        }
        out.push(f(&m)?);
    }
    Ok(out)
}

/// Maps text onto octets U+0000..U+00FF, `?` for anything above, capped at `cap` octets.
fn lossy_eight_bit(s: &str, cap: usize, what: &'static str) -> Result<Vec<u8>> {
    let out: Vec<u8> = s
        .chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect();
    if out.len() > cap {
        return Err(Error::unencodable(
            what,
            format!("{} octets exceed the cap of {cap}", out.len()),
        ));
    }
    Ok(out)
}

impl Heading {
    fn write(&self, w: &mut Writer) -> Result<()> {
        w.constructed(ber::SET, |w| {
            self.this_ipm.write(w, app_c(11))?;
            if let Some(o) = &self.originator {
                o.write(w, ctx_c(0))?;
            }
            write_descriptors(w, 1, &self.authorizing_users)?;
            write_recipients(w, 2, &self.primary_recipients)?;
            write_recipients(w, 3, &self.copy_recipients)?;
            write_recipients(w, 4, &self.blind_copy_recipients)?;
            if let Some(r) = &self.replied_to_ipm {
                r.write(w, ctx_c(5))?;
            }
            if let Some(s) = &self.subject {
                let octets = lossy_eight_bit(s, MAX_STRING_LEN, "subject")?;
                w.constructed(ctx_c(8), |w| {
                    w.primitive(ber::TELETEX_STRING, &octets);
                    Ok(())
                })?;
            }
            for f in &self.other_fields {
                check_opaque(f, "heading field")?;
                w.raw(f);
            }
            Ok(())
        })
    }

    /// Reads a heading, its O/R names taken from or noted in `names` ([`OrNameMemo`]).
    fn read(t: &Tlv<'_>, mut names: Option<&mut OrNameMemo>) -> Result<Heading> {
        let what = "Heading";
        let mut r = t.expect(ber::SET, what)?.reader(what)?;
        let mut h = Heading::default();
        let mut this = None;
        let mut seen = [false; 16];
        while let Some(m) = r.next_tlv()? {
            if m.tag.is(Tag::application(11)) {
                set_once(&mut this, IpmIdentifier::read(&m, names.as_deref_mut())?, "this-IPM")?;
                continue;
            }
            if m.tag.class != ber::Class::Context || m.tag.number > 15 {
                return Err(Error::UnexpectedTag {
                    context: what,
                    found: m.tag,
                });
            }
            let n = m.tag.number as usize;
            if seen[n] {
                return Err(Error::Duplicate("heading field"));
            }
            seen[n] = true;
            match n {
                0 => h.originator = Some(OrDescriptor::read(&m, names.as_deref_mut())?),
                1 => h.authorizing_users = read_list(&m, "authorizing-users", |t| OrDescriptor::read(t, names.as_deref_mut()))?,
                2 => h.primary_recipients = read_list(&m, "primary-recipients", |t| RecipientSpecifier::read(t, names.as_deref_mut()))?,
                3 => h.copy_recipients = read_list(&m, "copy-recipients", |t| RecipientSpecifier::read(t, names.as_deref_mut()))?,
                4 => h.blind_copy_recipients = read_list(&m, "blind-copy-recipients", |t| RecipientSpecifier::read(t, names.as_deref_mut()))?,
                5 => h.replied_to_ipm = Some(IpmIdentifier::read(&m, names.as_deref_mut())?),
                8 => h.subject = Some(read_subject(&m)?),
                _ => {
                    check_opaque(m.raw, "heading field")?;
                    if m.tag.constructed {
                        let mut fr = m.reader("heading field")?;
                        while fr.next_tlv()?.is_some() {}
                    }
                    h.other_fields.push(m.raw.to_vec());
                }
            }
        }
        h.this_ipm = this.ok_or(Error::Missing("this-IPM"))?;
        Ok(h)
    }
}

/// subject `[8]`: explicit `a8 { 14 .. }` (any string type inside), or implicit `88 ..`.
fn read_subject(m: &Tlv<'_>) -> Result<String> {
    if !m.tag.constructed {
        return m.string(StrKind::EightBit, "subject", MAX_STRING_LEN);
    }
    let mut r = m.reader("subject")?;
    let inner = r.read("subject")?;
    r.finish("subject")?;
    if inner.tag.class != ber::Class::Universal {
        return Err(Error::UnexpectedTag {
            context: "subject",
            found: inner.tag,
        });
    }
    if inner.tag.number == 12 {
        let octets = inner.octets("subject", MAX_STRING_LEN)?;
        return String::from_utf8(octets.into_owned())
            .map_err(|_| Error::invalid("subject", "invalid UTF-8"));
    }
    inner.string(StrKind::EightBit, "subject", MAX_STRING_LEN)
}

/// `Repertoire ::= ENUMERATED { ita2(2), ia5(5) }` of an IA5 text body part, DEFAULT ia5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Repertoire {
    /// ia5 (5), the default (left out on the wire).
    #[default]
    Ia5,
    /// ita2 (2).
    Ita2,
}

/// id-et-general-text {id-et 11} = 2.6.1.4.11 (X.420 §7.4.11).
pub const ID_ET_GENERAL_TEXT: [u32; 5] = [2, 6, 1, 4, 11];
/// id-ep-general-text {id-ep 11} = 2.6.1.11.11.
pub const ID_EP_GENERAL_TEXT: [u32; 5] = [2, 6, 1, 11, 11];
/// The ISO-IR registration of UTF-8 (ESC % G) used in general-text parameters.
pub const CHARSET_UTF8: u16 = 196;
/// ISO-IR registrations read as UTF-8: 196 and the implementation levels 190, 191, 192.
const UTF8_CHARSETS: [u16; 4] = [196, 190, 191, 192];

/// One body part (X.420 §7.3, §7.4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BodyPart {
    /// ia5-text `[0]`: `a0 { 31 { [80 repertoire] } 16 text }`.
    Ia5Text {
        /// The repertoire parameter.
        repertoire: Repertoire,
        /// The text, 7-bit.
        text: String,
    },
    /// The general-text extended body part `[15]` (X.420 §7.4.11): `af { a0 { 06
    /// id-ep-general-text a0 { 31 { 02 charset.. } } } 28 { 06 id-et-general-text a0 { 1b
    /// data } } }`.
    GeneralText {
        /// ISO-IR character set registrations (196 = UTF-8).
        character_sets: Vec<u16>,
        /// The GeneralString octets.
        data: Vec<u8>,
    },
    /// Any other body part: its whole encoding.
    Other(Vec<u8>),
}

/// Octets reserved for an IPM heading when an IPM is encoded (a few O/R names, a subject).
const HEADING_SIZE_HINT: usize = 1024;
/// Octets an ia5-text body part takes beyond its text, at most (tags, lengths, repertoire).
const IA5_TEXT_OVERHEAD: usize = 32;

impl BodyPart {
    /// Octets of this body part's data (text or encoded value), fewer than its encoding
    /// takes.
    fn data_len(&self) -> usize {
        match self {
            BodyPart::Ia5Text { text, .. } => text.len(),
            BodyPart::GeneralText { data, .. } => data.len(),
            BodyPart::Other(v) => v.len(),
        }
    }

    /// About the octets of this body part's encoding (its data plus the tags and lengths
    /// around it), to size the encoder's buffer.
    fn encoded_size_hint(&self) -> usize {
        self.data_len()
            + match self {
                BodyPart::Ia5Text { .. } => IA5_TEXT_OVERHEAD,
                BodyPart::GeneralText { character_sets, .. } => 2 * character_sets.len() + 64,
                BodyPart::Other(_) => 0,
            }
    }

    /// A text body part: ia5-text when `text` is 7-bit, else UTF-8 general text. Takes a
    /// `String` without copying it (a message body is most of a message).
    pub fn text(text: impl Into<String>) -> BodyPart {
        let text = text.into();
        if text.is_ascii() {
            BodyPart::Ia5Text {
                repertoire: Repertoire::Ia5,
                text,
            }
        } else {
            BodyPart::GeneralText {
                character_sets: vec![CHARSET_UTF8],
                data: text.into_bytes(),
            }
        }
    }

    /// [`BodyPart::as_text`] taking the part: IA5 text and UTF-8 general text are given
    /// back without a copy.
    pub fn into_text(self) -> Option<String> {
        match self {
            BodyPart::Ia5Text { text, .. } => Some(text),
            BodyPart::GeneralText {
                character_sets,
                data,
            } if character_sets.iter().any(|c| UTF8_CHARSETS.contains(c)) => Some(
                String::from_utf8(data)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            ),
            other => other.as_text(),
        }
    }

    /// The text of a text body part: IA5 as is, general text as UTF-8 when a UTF-8
    /// registration is listed, else as Latin-1. `None` for other body parts.
    pub fn as_text(&self) -> Option<String> {
        match self {
            BodyPart::Ia5Text { text, .. } => Some(text.clone()),
            BodyPart::GeneralText {
                character_sets,
                data,
            } => {
                if character_sets.iter().any(|c| UTF8_CHARSETS.contains(c)) {
                    Some(String::from_utf8_lossy(data).into_owned())
                } else {
                    Some(data.iter().map(|b| char::from(*b)).collect())
                }
            }
            BodyPart::Other(_) => None,
        }
    }

    fn write(&self, w: &mut Writer) -> Result<()> {
        match self {
            BodyPart::Ia5Text { repertoire, text } => write_ia5_text(w, *repertoire, text),
            BodyPart::GeneralText {
                character_sets,
                data,
            } => w.constructed(ctx_c(15), |w| {
                w.constructed(ctx_c(0), |w| {
                    w.oid(
                        ber::OID,
                        &Oid(ID_EP_GENERAL_TEXT.to_vec()),
                        "id-ep-general-text",
                    )?;
                    w.constructed(ctx_c(0), |w| {
                        w.constructed(ber::SET, |w| {
                            for c in character_sets {
                                w.integer(ber::INTEGER, i64::from(*c));
                            }
                            Ok(())
                        })
                    })
                })?;
                w.constructed(ber::EXTERNAL, |w| {
                    w.oid(
                        ber::OID,
                        &Oid(ID_ET_GENERAL_TEXT.to_vec()),
                        "id-et-general-text",
                    )?;
                    w.constructed(ctx_c(0), |w| {
                        w.primitive(ber::GENERAL_STRING, data);
                        Ok(())
                    })
                })
            }),
            BodyPart::Other(raw) => {
                w.raw(raw);
                Ok(())
            }
        }
    }

    fn read(t: &Tlv<'_>) -> Result<BodyPart> {
        if t.tag == ctx_c(0) {
            let what = "IA5TextBodyPart";
            let mut r = t.reader(what)?;
            let params = r.read("parameters")?.expect(ber::SET, what)?;
            let data = r.read("data")?.expect(ber::IA5_STRING, what)?;
            r.finish(what)?;
            let mut pr = params.reader("IA5TextParameters")?;
            let mut repertoire = Repertoire::Ia5;
            if let Some(rep) = pr.optional(Tag::context(0))? {
                repertoire = match rep.integer("repertoire")? {
                    2 => Repertoire::Ita2,
                    5 => Repertoire::Ia5,
                    v => return Err(Error::invalid("repertoire", format!("{v}"))),
                };
            }
            pr.finish("IA5TextParameters")?;
            let text = data.string(StrKind::Ia5, "ia5-text", MAX_PDU_LEN)?;
            return Ok(BodyPart::Ia5Text { repertoire, text });
        }
        if t.tag == ctx_c(15)
            && let Some(bp) = read_general_text(t)?
        {
            return Ok(bp);
        }
        // Walk any other body part so malformed nesting is refused, then keep it.
        if t.tag.constructed {
            let mut r = t.reader("body part")?;
            while r.next_tlv()?.is_some() {}
        }
        Ok(BodyPart::Other(t.raw.to_vec()))
    }
}

/// Decodes an extended body part if it is general text; `None` for other extended types.
fn read_general_text(t: &Tlv<'_>) -> Result<Option<BodyPart>> {
    let what = "ExtendedBodyPart";
    let mut r = t.reader(what)?;
    let params = r.optional(Tag::context(0))?;
    let data = r.read("data")?;
    r.finish(what)?;
    if !data.tag.is(ber::EXTERNAL) {
        return Err(Error::UnexpectedTag {
            context: what,
            found: data.tag,
        });
    }
    let mut dr = data.reader(what)?;
    let oid = dr
        .read("data type")?
        .expect(ber::OID, what)?
        .oid("data type")?;
    if oid.0 != ID_ET_GENERAL_TEXT {
        return Ok(None);
    }
    let value = dr.read("data value")?.expect(ctx_c(0), what)?;
    dr.finish(what)?;
    let mut vr = value.reader(what)?;
    let text = vr.read("general text")?;
    vr.finish(what)?;
    if text.tag.class != ber::Class::Universal {
        return Err(Error::UnexpectedTag {
            context: "general text",
            found: text.tag,
        });
    }
    let data = text.octets("general text", MAX_PDU_LEN)?.into_owned();
    let mut character_sets = Vec::new();
    if let Some(p) = params {
        let mut pr = p.reader(what)?;
        pr.read("parameters type")?.expect(ber::OID, what)?;
        let pv = pr.read("parameters value")?.expect(ctx_c(0), what)?;
        pr.finish(what)?;
        let mut vr = pv.reader(what)?;
        let set = vr.read("GeneralTextParameters")?.expect(ber::SET, what)?;
        vr.finish(what)?;
        character_sets = read_list(&set, "character set registrations", |m| {
            Ok(m.expect(ber::INTEGER, "CharacterSetRegistration")?
                .unsigned("CharacterSetRegistration", 32767)? as u16)
        })?;
    }
    Ok(Some(BodyPart::GeneralText {
        character_sets,
        data,
    }))
}

/// `IPM ::= SEQUENCE { heading Heading, body Body }` (X.420 §7), carried as
/// `InformationObject` `ipm [0]`: wire shape `a0 { 31 {heading} 30 {body parts} }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Ipm {
    /// The heading.
    pub heading: Heading,
    /// The body parts, in order.
    pub body: Vec<BodyPart>,
}

/// An ia5-text body part `a0 { 31 { [80 repertoire] } 16 text }` (X.420 §7.4.1).
fn write_ia5_text(w: &mut Writer, repertoire: Repertoire, text: &str) -> Result<()> {
    w.constructed_sized(ctx_c(0), text.len(), |w| {
        w.constructed(ber::SET, |w| {
            if repertoire == Repertoire::Ita2 {
                w.integer(Tag::context(0), 2);
            }
            Ok(())
        })?;
        w.string(ber::IA5_STRING, StrKind::Ia5, text, "ia5-text", MAX_PDU_LEN)
    })
}

/// `InformationObject` `ipm [0] { heading, body SEQUENCE { body parts } }` (X.420 §7),
/// the body parts written by `body`, into a buffer sized for the heading and `body_size`
/// octets of body; `body_at_least` octets of them at least (their texts), so that the
/// levels around the body set their length octets aside before it is written.
fn write_information_object(
    heading: &Heading,
    body_size: usize,
    body_at_least: usize,
    body: impl FnOnce(&mut Writer) -> Result<()>,
) -> Result<Vec<u8>> {
    let mut w = Writer::with_capacity(body_size + HEADING_SIZE_HINT);
    w.constructed_sized(ctx_c(0), body_at_least, |w| {
        heading.write(w)?;
        w.constructed_sized(ber::SEQUENCE, body_at_least, body)
    })?;
    Ok(w.into_vec())
}

/// The heading of [`Ipm::text`].
fn text_heading(
    this_ipm: IpmIdentifier,
    originator: OrName,
    to: Vec<OrName>,
    cc: Vec<OrName>,
    subject: &str,
) -> Heading {
    Heading {
        this_ipm,
        originator: Some(originator.into()),
        primary_recipients: to.into_iter().map(RecipientSpecifier::from).collect(),
        copy_recipients: cc.into_iter().map(RecipientSpecifier::from).collect(),
        subject: Some(subject.to_string()),
        ..Heading::default()
    }
}

impl Ipm {
    /// A plain text message: originator, To and Cc recipients, subject, one text body part
    /// ([`BodyPart::text`]).
    pub fn text(
        this_ipm: IpmIdentifier,
        originator: OrName,
        to: Vec<OrName>,
        cc: Vec<OrName>,
        subject: &str,
        body: impl Into<String>,
    ) -> Ipm {
        Ipm {
            heading: text_heading(this_ipm, originator, to, cc, subject),
            body: vec![BodyPart::text(body)],
        }
    }

    /// [`Ipm::text`] encoded at once: the octets of `Ipm::text(..).encode()`, with a 7-bit
    /// `body` written from where it is, not copied into the IPM first (a message body is
    /// most of a message).
    ///
    /// Errors: as [`Ipm::encode`].
    pub fn encode_text(
        this_ipm: IpmIdentifier,
        originator: OrName,
        to: Vec<OrName>,
        cc: Vec<OrName>,
        subject: &str,
        body: &str,
    ) -> Result<Vec<u8>> {
        if !body.is_ascii() {
            return Ipm::text(this_ipm, originator, to, cc, subject, body).encode();
        }
        let heading = text_heading(this_ipm, originator, to, cc, subject);
        write_information_object(&heading, body.len() + IA5_TEXT_OVERHEAD, body.len(), |w| {
            write_ia5_text(w, Repertoire::Ia5, body)
        })
    }

    /// The text of all text body parts, concatenated in order.
    pub fn body_text(&self) -> String {
        self.body.iter().filter_map(BodyPart::as_text).collect()
    }

    /// Encodes as `InformationObject` `ipm [0]` — the MTS-APDU content for content type 22.
    ///
    /// Errors: [`Error::Unencodable`] for non-7-bit IA5 text or a value over its cap.
    pub fn encode(&self) -> Result<Vec<u8>> {
        if self.body.len() > MAX_BODY_PARTS {
            return Err(Error::unencodable(
                "body",
                format!("more than {MAX_BODY_PARTS} body parts"),
            ));
        }
        let body_size = self.body.iter().map(BodyPart::encoded_size_hint).sum();
        let body_at_least = self.body.iter().map(BodyPart::data_len).sum();
        write_information_object(&self.heading, body_size, body_at_least, |w| {
            for b in &self.body {
                b.write(w)?;
            }
            Ok(())
        })
    }

    /// Decodes an `InformationObject` holding an IPM.
    ///
    /// Errors: [`Error::Unsupported`] for an IPN (`[1]`, X.420 §8); any decoding error.
    pub fn decode(bytes: &[u8]) -> Result<Ipm> {
        Ipm::decode_names(bytes, None)
    }

    /// [`Ipm::decode`], taking the heading's O/R names from `names` where their encodings
    /// are there (a gateway passes the memo its envelope's decoding filled,
    /// [`crate::MtsApdu::decode_vec_noting`]) and noting the others in it. Decodes exactly
    /// what [`Ipm::decode`] decodes, to the same value.
    ///
    /// Errors: as [`Ipm::decode`].
    pub fn decode_with(bytes: &[u8], names: &mut OrNameMemo) -> Result<Ipm> {
        Ipm::decode_names(bytes, Some(names))
    }

    fn decode_names(bytes: &[u8], names: Option<&mut OrNameMemo>) -> Result<Ipm> {
        check_len(bytes)?;
        let t = ber::read_single(bytes, "InformationObject")?;
        if t.tag.is(Tag::context(1)) {
            return Err(Error::Unsupported(
                "X.420 IPN (receipt or non-receipt notification, InformationObject [1]); only IPMs are handled".into(),
            ));
        }
        let t = t.expect(ctx_c(0), "InformationObject")?;
        let mut r = t.reader("IPM")?;
        let heading = Heading::read(&r.read("heading")?, names)?;
        let body = r.read("body")?.expect(ber::SEQUENCE, "IPM")?;
        r.finish("IPM")?;
        let body = read_list(&body, "body parts", BodyPart::read)?;
        Ok(Ipm { heading, body })
    }
}
