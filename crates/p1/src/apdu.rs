//! MTS-APDU (X.411 §12.2): what travels in an RTSE transfer between two MTAs.
//!
//! ```text
//! MTS-APDU ::= CHOICE { message [0] Message, report [1] Report, probe [2] Probe }
//! Message  ::= SEQUENCE { envelope MessageTransferEnvelope, content Content }
//! Report   ::= SEQUENCE { envelope ReportTransferEnvelope, content ReportTransferContent }
//! Probe    ::= ProbeTransferEnvelope
//! ```
//!
//! Inside RTSE the APDU is wrapped as `EXTERNAL { indirect-reference 5 (the mtse
//! presentation context), single-ASN1-type [0] MTS-APDU }` (DESIGN §4); see
//! [`MtsApdu::decode_external`] / [`MtsApdu::encode_external`].

use crate::address::{
    GlobalDomainIdentifier, MtsIdentifier, OrName, OrNameMemo, check_len, check_opaque, set_once,
};
use crate::ber::{self, StrKind, Tag, Time, Tlv, Writer, app_c, ctx_c};
use crate::envelope::{
    CommonFields, Conformance, ContentType, EncodedInformationTypes, ExtensionField,
    MessageTransferEnvelope, PerMessageIndicators, PerRecipientFields, PerRecipientIndicators,
    TraceInformationElement, read_extensions, read_recipients, read_trace, write_extensions,
    write_recipients, write_trace,
};
use crate::error::{Error, Result};
use crate::limits::{MAX_PDU_LEN, MAX_RECIPIENTS, MAX_STRING_LEN};

/// One MTS-APDU.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MtsApdu {
    /// message `[0]`.
    Message(Message),
    /// report `[1]`.
    Report(Report),
    /// probe `[2]`.
    Probe(ProbeTransferEnvelope),
}

/// Octets reserved for a message's envelope when a message is encoded (it grows past this
/// only with many recipients or a long trace).
const ENVELOPE_SIZE_HINT: usize = 1024;

impl MtsApdu {
    /// Encodes the APDU (definite lengths). `conformance` decides how extensions go out.
    ///
    /// Errors: [`Error::Unencodable`] when a mandatory list is empty, a time is outside
    /// the UTCTime window, a string leaves its repertoire or a cap is exceeded.
    pub fn encode(&self, conformance: Conformance) -> Result<Vec<u8>> {
        // A message is mostly its content; the envelope takes well under a kilobyte for a
        // few recipients.
        let mut w = match self {
            MtsApdu::Message(m) => Writer::with_capacity(m.content.len() + ENVELOPE_SIZE_HINT),
            _ => Writer::new(),
        };
        match self {
            MtsApdu::Message(m) => m.write(&mut w, conformance)?,
            MtsApdu::Report(r) => r.write(&mut w, conformance)?,
            MtsApdu::Probe(p) => p.write(&mut w, ctx_c(2), conformance)?,
        }
        let out = w.into_vec();
        if out.len() > MAX_PDU_LEN {
            return Err(Error::unencodable(
                "MTS-APDU",
                format!("{} octets exceed the cap of {MAX_PDU_LEN}", out.len()),
            ));
        }
        Ok(out)
    }

    /// Decodes one MTS-APDU spanning all of `bytes`; definite and indefinite lengths and
    /// constructed strings are accepted.
    ///
    /// Errors: any decoding error; [`Error::TooLong`] above [`MAX_PDU_LEN`].
    pub fn decode(bytes: &[u8]) -> Result<MtsApdu> {
        check_len(bytes)?;
        let t = ber::read_single(bytes, "MTS-APDU")?;
        MtsApdu::read(&t)
    }

    /// [`MtsApdu::decode`] of a buffer the caller hands over: a message's content (a
    /// primitive OCTET STRING, as it usually is) is moved to the front of `bytes` and kept
    /// there, not copied into a buffer of its own. Decodes exactly what [`MtsApdu::decode`]
    /// decodes, to the same value.
    ///
    /// Errors: as [`MtsApdu::decode`].
    pub fn decode_vec(bytes: Vec<u8>) -> Result<MtsApdu> {
        MtsApdu::decode_vec_with(bytes, None)
    }

    /// [`MtsApdu::decode_vec`], noting a message envelope's originator and recipient names
    /// in `names` for the decoding of the IPM it carries ([`crate::Ipm::decode_with`]).
    /// Decodes exactly what [`MtsApdu::decode`] decodes, to the same value.
    ///
    /// Errors: as [`MtsApdu::decode`].
    pub fn decode_vec_noting(bytes: Vec<u8>, names: &mut OrNameMemo) -> Result<MtsApdu> {
        MtsApdu::decode_vec_with(bytes, Some(names))
    }

    fn decode_vec_with(mut bytes: Vec<u8>, names: Option<&mut OrNameMemo>) -> Result<MtsApdu> {
        check_len(&bytes)?;
        let t = ber::read_single(&bytes, "MTS-APDU")?;
        if !(t.tag.class == ber::Class::Context && t.tag.number == 0 && t.tag.constructed) {
            return MtsApdu::read(&t);
        }
        let (envelope, content) = Message::read_parts(&t, names)?;
        let span = match &content {
            std::borrow::Cow::Borrowed(c) => Some((c.as_ptr() as usize - bytes.as_ptr() as usize, c.len())),
            std::borrow::Cow::Owned(_) => None,
        };
        let content = match span {
            Some((start, len)) => {
                drop(content);
                bytes.truncate(start + len);
                bytes.drain(..start);
                bytes
            }
            None => content.into_owned(),
        };
        Ok(MtsApdu::Message(Message { envelope, content }))
    }

    fn read(t: &Tlv<'_>) -> Result<MtsApdu> {
        match (t.tag.class, t.tag.number, t.tag.constructed) {
            (ber::Class::Context, 0, true) => Ok(MtsApdu::Message(Message::read(t)?)),
            (ber::Class::Context, 1, true) => Ok(MtsApdu::Report(Report::read(t)?)),
            (ber::Class::Context, 2, true) => Ok(MtsApdu::Probe(ProbeTransferEnvelope::read(t)?)),
            _ => Err(Error::UnexpectedTag {
                context: "MTS-APDU",
                found: t.tag,
            }),
        }
    }

    /// Decodes the RTTR payload `EXTERNAL { [direct-reference OID] indirect-reference
    /// INTEGER, encoding single-ASN1-type [0] MTS-APDU | octet-aligned [1] }` (X.690 §8.18,
    /// X.228 §8); returns the presentation context identifier (5 for id-as-mtse) and the APDU.
    ///
    /// Errors: not an EXTERNAL, no indirect-reference, an arbitrary `[2]` encoding, or the
    /// APDU's own errors.
    pub fn decode_external(bytes: &[u8]) -> Result<(i64, MtsApdu)> {
        check_len(bytes)?;
        let what = "EXTERNAL";
        let t = ber::read_single(bytes, what)?.expect(ber::EXTERNAL, what)?;
        let mut r = t.reader(what)?;
        r.optional(ber::OID)?;
        let pcid = r
            .read("indirect-reference")?
            .expect(ber::INTEGER, "indirect-reference")?
            .integer("indirect-reference")?;
        if r.peek_tag()?.is_some_and(|t| t.is(Tag::universal(7))) {
            r.next_tlv()?;
        }
        let enc = r.read("EXTERNAL encoding")?;
        r.finish(what)?;
        let apdu = match (enc.tag.class, enc.tag.number) {
            (ber::Class::Context, 0) => {
                let mut er = enc.reader("single-ASN1-type")?;
                let inner = er.read("MTS-APDU")?;
                er.finish("single-ASN1-type")?;
                MtsApdu::read(&inner)?
            }
            (ber::Class::Context, 1) => {
                MtsApdu::decode(&enc.octets("octet-aligned", MAX_PDU_LEN)?)?
            }
            _ => {
                return Err(Error::UnexpectedTag {
                    context: "EXTERNAL encoding",
                    found: enc.tag,
                });
            }
        };
        Ok((pcid, apdu))
    }

    /// Encodes `EXTERNAL { indirect-reference pcid, single-ASN1-type [0] MTS-APDU }`, the
    /// RTTR payload (`pcid` is 5 for id-as-mtse in the usual context list).
    pub fn encode_external(&self, pcid: i64, conformance: Conformance) -> Result<Vec<u8>> {
        let inner = self.encode(conformance)?;
        let mut w = Writer::with_capacity(inner.len() + 16);
        w.constructed(ber::EXTERNAL, |w| {
            w.integer(ber::INTEGER, pcid);
            w.constructed(ctx_c(0), |w| {
                w.raw(&inner);
                Ok(())
            })
        })?;
        Ok(w.into_vec())
    }
}

/// `Message ::= SEQUENCE { envelope MessageTransferEnvelope, content Content }`
/// (X.411 §12.2.1.1). Wire shape `a0 { 31 {envelope} 04 {content} }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Message {
    /// The transfer envelope.
    pub envelope: MessageTransferEnvelope,
    /// Content: the octets of the content type's encoding (an X.420 InformationObject
    /// for P2), carried unchanged.
    pub content: Vec<u8>,
}

impl Message {
    /// Encodes as an MTS-APDU `[0]`.
    pub fn encode(&self, conformance: Conformance) -> Result<Vec<u8>> {
        let mut w = Writer::with_capacity(self.content.len() + ENVELOPE_SIZE_HINT);
        self.write(&mut w, conformance)?;
        Ok(w.into_vec())
    }

    fn write(&self, w: &mut Writer, conformance: Conformance) -> Result<()> {
        w.constructed_sized(ctx_c(0), self.content.len(), |w| {
            self.envelope.write(w, ber::SET, conformance)?;
            w.primitive(ber::OCTET_STRING, &self.content);
            Ok(())
        })
    }

    fn read(t: &Tlv<'_>) -> Result<Message> {
        let (envelope, content) = Message::read_parts(t, None)?;
        Ok(Message { envelope, content: content.into_owned() })
    }

    /// The envelope, and the content borrowed from `t` when it is primitive.
    fn read_parts<'a>(t: &Tlv<'a>, names: Option<&mut OrNameMemo>) -> Result<(MessageTransferEnvelope, std::borrow::Cow<'a, [u8]>)> {
        let what = "Message";
        let mut r = t.reader(what)?;
        let env = r.read("envelope")?.expect(ber::SET, what)?;
        let content = r.read("content")?.expect(ber::OCTET_STRING, what)?;
        r.finish(what)?;
        Ok((MessageTransferEnvelope::read(&env, names)?, content.octets("content", MAX_PDU_LEN)?))
    }
}

/// `ProbeTransferEnvelope ::= SET { probe-identifier, originator-name,
/// original-encoded-information-types OPTIONAL, content-type, content-identifier OPTIONAL,
/// content-length [0] INTEGER OPTIONAL, per-message-indicators DEFAULT {},
/// per-domain-bilateral-information [1] OPTIONAL, trace-information, extensions [3] DEFAULT {},
/// per-recipient-fields [2] SEQUENCE OF PerRecipientProbeTransferFields }` (X.411 §12.2.1.2).
/// As MTS-APDU `probe [2]` the `[2]` replaces the SET tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProbeTransferEnvelope {
    /// probe-identifier (`64`).
    pub probe_identifier: MtsIdentifier,
    /// originator-name.
    pub originator_name: OrName,
    /// original-encoded-information-types.
    pub original_encoded_information_types: Option<EncodedInformationTypes>,
    /// content-type.
    pub content_type: ContentType,
    /// content-identifier.
    pub content_identifier: Option<String>,
    /// content-length `[0]` in octets.
    pub content_length: Option<u32>,
    /// per-message-indicators.
    pub per_message_indicators: PerMessageIndicators,
    /// per-domain-bilateral-information `[1]`: contents octets, opaque.
    pub per_domain_bilateral_information: Option<Vec<u8>>,
    /// trace-information.
    pub trace_information: Vec<TraceInformationElement>,
    /// extensions `[3]`.
    pub extensions: Vec<ExtensionField>,
    /// per-recipient-fields `[2]`.
    pub per_recipient_fields: Vec<PerRecipientFields>,
}

impl ProbeTransferEnvelope {
    fn write(&self, w: &mut Writer, tag: Tag, conformance: Conformance) -> Result<()> {
        w.constructed(tag, |w| {
            self.probe_identifier.write(w)?;
            self.originator_name.write(w, app_c(0))?;
            if let Some(e) = &self.original_encoded_information_types {
                e.write(w)?;
            }
            self.content_type.write(w)?;
            if let Some(c) = &self.content_identifier {
                w.string(
                    Tag::application(10),
                    StrKind::Printable,
                    c,
                    "content-identifier",
                    MAX_STRING_LEN,
                )?;
            }
            if let Some(n) = self.content_length {
                w.integer(Tag::context(0), i64::from(n));
            }
            if !self.per_message_indicators.0.is_empty() {
                w.bit_string(Tag::application(8), &self.per_message_indicators.0);
            }
            if let Some(p) = &self.per_domain_bilateral_information {
                check_opaque(p, "per-domain-bilateral-information")?;
                w.constructed(ctx_c(1), |w| {
                    w.raw(p);
                    Ok(())
                })?;
            }
            write_trace(w, &self.trace_information, "trace-information")?;
            write_extensions(w, 3, &self.extensions, conformance)?;
            write_recipients(w, 2, &self.per_recipient_fields, conformance)
        })
    }

    fn read(t: &Tlv<'_>) -> Result<ProbeTransferEnvelope> {
        let what = "ProbeTransferEnvelope";
        let mut r = t.reader(what)?;
        let mut f = CommonFields::default();
        let (mut length, mut recips) = (None, None);
        while let Some(m) = r.next_tlv()? {
            if f.take(&m, None)? {
                continue;
            }
            if m.tag.is(Tag::context(0)) {
                set_once(
                    &mut length,
                    m.unsigned("content-length", i32::MAX as u32)?,
                    "content-length",
                )?;
            } else if m.tag.is(Tag::context(2)) {
                set_once(&mut recips, read_recipients(&m, None)?, "per-recipient-fields")?;
            } else {
                return Err(Error::UnexpectedTag {
                    context: what,
                    found: m.tag,
                });
            }
        }
        Ok(ProbeTransferEnvelope {
            probe_identifier: f.identifier.ok_or(Error::Missing("probe-identifier"))?,
            originator_name: f.originator.ok_or(Error::Missing("originator-name"))?,
            original_encoded_information_types: f.oeit,
            content_type: f.content_type.ok_or(Error::Missing("content-type"))?,
            content_identifier: f.content_identifier,
            content_length: length,
            per_message_indicators: f.pmi.unwrap_or_default(),
            per_domain_bilateral_information: f.pdbi,
            trace_information: f.trace.ok_or(Error::Missing("trace-information"))?,
            extensions: f.extensions,
            per_recipient_fields: recips.ok_or(Error::Missing("per-recipient-fields"))?,
        })
    }
}

/// `NonDeliveryReasonCode` (X.411 §12.2.1.3.1.2, 0..=32767); unknown codes are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NonDeliveryReasonCode(pub u16);

impl NonDeliveryReasonCode {
    /// transfer-failure (0).
    pub const TRANSFER_FAILURE: NonDeliveryReasonCode = NonDeliveryReasonCode(0);
    /// unable-to-transfer (1).
    pub const UNABLE_TO_TRANSFER: NonDeliveryReasonCode = NonDeliveryReasonCode(1);
    /// conversion-not-performed (2).
    pub const CONVERSION_NOT_PERFORMED: NonDeliveryReasonCode = NonDeliveryReasonCode(2);
    /// physical-rendition-not-performed (3).
    pub const PHYSICAL_RENDITION_NOT_PERFORMED: NonDeliveryReasonCode = NonDeliveryReasonCode(3);
    /// physical-delivery-not-performed (4).
    pub const PHYSICAL_DELIVERY_NOT_PERFORMED: NonDeliveryReasonCode = NonDeliveryReasonCode(4);
    /// restricted-delivery (5).
    pub const RESTRICTED_DELIVERY: NonDeliveryReasonCode = NonDeliveryReasonCode(5);
    /// directory-operation-unsuccessful (6).
    pub const DIRECTORY_OPERATION_UNSUCCESSFUL: NonDeliveryReasonCode = NonDeliveryReasonCode(6);
    /// deferred-delivery-not-performed (7).
    pub const DEFERRED_DELIVERY_NOT_PERFORMED: NonDeliveryReasonCode = NonDeliveryReasonCode(7);
    /// transfer-failure-for-security-reason (8).
    pub const TRANSFER_FAILURE_FOR_SECURITY_REASON: NonDeliveryReasonCode =
        NonDeliveryReasonCode(8);
}

/// `NonDeliveryDiagnosticCode` (X.411 §12.2.1.3.1.3, 0..=32767); unknown codes are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NonDeliveryDiagnosticCode(pub u16);

impl NonDeliveryDiagnosticCode {
    /// unrecognised-OR-name (0).
    pub const UNRECOGNISED_OR_NAME: NonDeliveryDiagnosticCode = NonDeliveryDiagnosticCode(0);
    /// ambiguous-OR-name (1).
    pub const AMBIGUOUS_OR_NAME: NonDeliveryDiagnosticCode = NonDeliveryDiagnosticCode(1);
    /// mts-congestion (2).
    pub const MTS_CONGESTION: NonDeliveryDiagnosticCode = NonDeliveryDiagnosticCode(2);
    /// loop-detected (3).
    pub const LOOP_DETECTED: NonDeliveryDiagnosticCode = NonDeliveryDiagnosticCode(3);
    /// recipient-unavailable (4).
    pub const RECIPIENT_UNAVAILABLE: NonDeliveryDiagnosticCode = NonDeliveryDiagnosticCode(4);
    /// maximum-time-expired (5).
    pub const MAXIMUM_TIME_EXPIRED: NonDeliveryDiagnosticCode = NonDeliveryDiagnosticCode(5);
    /// encoded-information-types-unsupported (6).
    pub const ENCODED_INFORMATION_TYPES_UNSUPPORTED: NonDeliveryDiagnosticCode =
        NonDeliveryDiagnosticCode(6);
    /// content-too-long (7).
    pub const CONTENT_TOO_LONG: NonDeliveryDiagnosticCode = NonDeliveryDiagnosticCode(7);
    /// content-syntax-error (12).
    pub const CONTENT_SYNTAX_ERROR: NonDeliveryDiagnosticCode = NonDeliveryDiagnosticCode(12);
    /// protocol-violation (14).
    pub const PROTOCOL_VIOLATION: NonDeliveryDiagnosticCode = NonDeliveryDiagnosticCode(14);
    /// content-type-not-supported (15).
    pub const CONTENT_TYPE_NOT_SUPPORTED: NonDeliveryDiagnosticCode = NonDeliveryDiagnosticCode(15);
    /// too-many-recipients (16).
    pub const TOO_MANY_RECIPIENTS: NonDeliveryDiagnosticCode = NonDeliveryDiagnosticCode(16);
    /// no-bilateral-agreement (17).
    pub const NO_BILATERAL_AGREEMENT: NonDeliveryDiagnosticCode = NonDeliveryDiagnosticCode(17);
    /// unsupported-critical-function (18).
    pub const UNSUPPORTED_CRITICAL_FUNCTION: NonDeliveryDiagnosticCode =
        NonDeliveryDiagnosticCode(18);
    /// unable-to-complete-transfer (48).
    pub const UNABLE_TO_COMPLETE_TRANSFER: NonDeliveryDiagnosticCode =
        NonDeliveryDiagnosticCode(48);
    /// transfer-attempts-limit-reached (49).
    pub const TRANSFER_ATTEMPTS_LIMIT_REACHED: NonDeliveryDiagnosticCode =
        NonDeliveryDiagnosticCode(49);
}

/// `TypeOfMTSUser ::= INTEGER { public(0), private(1), ms(2), dl(3), pdau(4),
/// physical-recipient(5), other(6) }` (X.411 §12.2.1.3.1.1); unknown values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TypeOfMtsUser(pub u16);

impl TypeOfMtsUser {
    /// public (0), the DEFAULT.
    pub const PUBLIC: TypeOfMtsUser = TypeOfMtsUser(0);
    /// private (1).
    pub const PRIVATE: TypeOfMtsUser = TypeOfMtsUser(1);
    /// ms (2): a message store.
    pub const MS: TypeOfMtsUser = TypeOfMtsUser(2);
    /// dl (3): a distribution list.
    pub const DL: TypeOfMtsUser = TypeOfMtsUser(3);
    /// other (6).
    pub const OTHER: TypeOfMtsUser = TypeOfMtsUser(6);
}

/// `ReportType ::= CHOICE { delivery [0] DeliveryReport, non-delivery [1] NonDeliveryReport }`
/// (X.411 §12.2.1.3.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReportType {
    /// `DeliveryReport ::= SET { message-delivery-time [0] Time, type-of-MTS-user [1]
    /// DEFAULT public }`.
    Delivery {
        /// When the message was delivered.
        message_delivery_time: Time,
        /// The kind of recipient (left out when public).
        type_of_mts_user: TypeOfMtsUser,
    },
    /// `NonDeliveryReport ::= SET { non-delivery-reason-code [0], non-delivery-diagnostic-code
    /// [1] OPTIONAL }`.
    NonDelivery {
        /// Why the message was not delivered.
        reason: NonDeliveryReasonCode,
        /// More detail.
        diagnostic: Option<NonDeliveryDiagnosticCode>,
    },
}

impl ReportType {
    fn write(&self, w: &mut Writer) -> Result<()> {
        match self {
            ReportType::Delivery {
                message_delivery_time,
                type_of_mts_user,
            } => w.constructed(ctx_c(0), |w| {
                w.utc_time(
                    Tag::context(0),
                    message_delivery_time,
                    "message-delivery-time",
                )?;
                if *type_of_mts_user != TypeOfMtsUser::PUBLIC {
                    w.integer(Tag::context(1), i64::from(type_of_mts_user.0));
                }
                Ok(())
            }),
            ReportType::NonDelivery { reason, diagnostic } => w.constructed(ctx_c(1), |w| {
                w.integer(Tag::context(0), i64::from(reason.0));
                if let Some(d) = diagnostic {
                    w.integer(Tag::context(1), i64::from(d.0));
                }
                Ok(())
            }),
        }
    }

    fn read(t: &Tlv<'_>) -> Result<ReportType> {
        let what = "ReportType";
        let mut r = t.reader(what)?;
        if t.tag.is(Tag::context(0)) {
            let (mut time, mut user) = (None, None);
            while let Some(m) = r.next_tlv()? {
                if m.tag.is(Tag::context(0)) {
                    set_once(
                        &mut time,
                        m.utc_time("message-delivery-time")?,
                        "message-delivery-time",
                    )?;
                } else if m.tag.is(Tag::context(1)) {
                    set_once(
                        &mut user,
                        TypeOfMtsUser(m.unsigned("type-of-MTS-user", 256)? as u16),
                        "type-of-MTS-user",
                    )?;
                } else {
                    return Err(Error::UnexpectedTag {
                        context: "DeliveryReport",
                        found: m.tag,
                    });
                }
            }
            Ok(ReportType::Delivery {
                message_delivery_time: time.ok_or(Error::Missing("message-delivery-time"))?,
                type_of_mts_user: user.unwrap_or_default(),
            })
        } else if t.tag.is(Tag::context(1)) {
            let (mut reason, mut diag) = (None, None);
            while let Some(m) = r.next_tlv()? {
                if m.tag.is(Tag::context(0)) {
                    set_once(
                        &mut reason,
                        NonDeliveryReasonCode(m.unsigned("non-delivery-reason-code", 32767)? as u16),
                        "non-delivery-reason-code",
                    )?;
                } else if m.tag.is(Tag::context(1)) {
                    set_once(
                        &mut diag,
                        NonDeliveryDiagnosticCode(
                            m.unsigned("non-delivery-diagnostic-code", 32767)? as u16,
                        ),
                        "non-delivery-diagnostic-code",
                    )?;
                } else {
                    return Err(Error::UnexpectedTag {
                        context: "NonDeliveryReport",
                        found: m.tag,
                    });
                }
            }
            Ok(ReportType::NonDelivery {
                reason: reason.ok_or(Error::Missing("non-delivery-reason-code"))?,
                diagnostic: diag,
            })
        } else {
            Err(Error::UnexpectedTag {
                context: what,
                found: t.tag,
            })
        }
    }
}

/// `LastTraceInformation ::= SET { arrival-time [0] Time, converted-encoded-information-types
/// OPTIONAL, report-type [1] ReportType }` (X.411 §12.2.1.3.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LastTraceInformation {
    /// When the subject arrived at the reporting MTA.
    pub arrival_time: Time,
    /// converted-encoded-information-types.
    pub converted_encoded_information_types: Option<EncodedInformationTypes>,
    /// Delivery or non-delivery.
    pub report_type: ReportType,
}

/// `PerRecipientReportTransferFields ::= SET { actual-recipient-name [0] ORName,
/// originally-specified-recipient-number [1], per-recipient-indicators [2],
/// last-trace-information [3], originally-intended-recipient-name [4] OPTIONAL,
/// supplementary-information [5] PrintableString OPTIONAL, extensions [6] DEFAULT {} }`
/// (X.411 §12.2.1.3.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PerRecipientReportFields {
    /// actual-recipient-name `[0]`.
    pub actual_recipient_name: OrName,
    /// originally-specified-recipient-number `[1]`.
    pub originally_specified_recipient_number: u16,
    /// per-recipient-indicators `[2]`.
    pub per_recipient_indicators: PerRecipientIndicators,
    /// last-trace-information `[3]`.
    pub last_trace_information: LastTraceInformation,
    /// originally-intended-recipient-name `[4]`.
    pub originally_intended_recipient_name: Option<OrName>,
    /// supplementary-information `[5]` (PrintableString 1..256).
    pub supplementary_information: Option<String>,
    /// extensions `[6]`.
    pub extensions: Vec<ExtensionField>,
}

impl PerRecipientReportFields {
    fn write(&self, w: &mut Writer, conformance: Conformance) -> Result<()> {
        w.constructed(ber::SET, |w| {
            self.actual_recipient_name.write(w, ctx_c(0))?;
            w.integer(
                Tag::context(1),
                i64::from(self.originally_specified_recipient_number),
            );
            w.bit_string(Tag::context(2), &self.per_recipient_indicators.0);
            let l = &self.last_trace_information;
            w.constructed(ctx_c(3), |w| {
                w.utc_time(Tag::context(0), &l.arrival_time, "arrival-time")?;
                if let Some(e) = &l.converted_encoded_information_types {
                    e.write(w)?;
                }
                w.constructed(ctx_c(1), |w| l.report_type.write(w))
            })?;
            if let Some(n) = &self.originally_intended_recipient_name {
                n.write(w, ctx_c(4))?;
            }
            if let Some(s) = &self.supplementary_information {
                w.string(
                    Tag::context(5),
                    StrKind::Printable,
                    s,
                    "supplementary-information",
                    MAX_STRING_LEN,
                )?;
            }
            write_extensions(w, 6, &self.extensions, conformance)
        })
    }

    fn read(t: &Tlv<'_>) -> Result<PerRecipientReportFields> {
        let what = "PerRecipientReportTransferFields";
        let mut r = t.expect(ber::SET, what)?.reader(what)?;
        let (mut name, mut number, mut pri, mut last, mut oirn, mut supp) =
            (None, None, None, None, None, None);
        let mut extensions = Vec::new();
        while let Some(m) = r.next_tlv()? {
            match (m.tag.class, m.tag.number) {
                (ber::Class::Context, 0) => {
                    set_once(&mut name, OrName::read(&m)?, "actual-recipient-name")?
                }
                (ber::Class::Context, 1) => set_once(
                    &mut number,
                    m.unsigned(
                        "originally-specified-recipient-number",
                        MAX_RECIPIENTS as u32,
                    )? as u16,
                    "originally-specified-recipient-number",
                )?,
                (ber::Class::Context, 2) => set_once(
                    &mut pri,
                    PerRecipientIndicators(m.bit_string("per-recipient-indicators")?),
                    "per-recipient-indicators",
                )?,
                (ber::Class::Context, 3) => {
                    set_once(&mut last, read_last_trace(&m)?, "last-trace-information")?
                }
                (ber::Class::Context, 4) => set_once(
                    &mut oirn,
                    OrName::read(&m)?,
                    "originally-intended-recipient-name",
                )?,
                (ber::Class::Context, 5) => set_once(
                    &mut supp,
                    m.string(
                        StrKind::Printable,
                        "supplementary-information",
                        MAX_STRING_LEN,
                    )?,
                    "supplementary-information",
                )?,
                (ber::Class::Context, 6) => read_extensions(&m, &mut extensions)?,
                _ => {
                    return Err(Error::UnexpectedTag {
                        context: what,
                        found: m.tag,
                    });
                }
            }
        }
        Ok(PerRecipientReportFields {
            actual_recipient_name: name.ok_or(Error::Missing("actual-recipient-name"))?,
            originally_specified_recipient_number: number
                .ok_or(Error::Missing("originally-specified-recipient-number"))?,
            per_recipient_indicators: pri.ok_or(Error::Missing("per-recipient-indicators"))?,
            last_trace_information: last.ok_or(Error::Missing("last-trace-information"))?,
            originally_intended_recipient_name: oirn,
            supplementary_information: supp,
            extensions,
        })
    }
}

fn read_last_trace(t: &Tlv<'_>) -> Result<LastTraceInformation> {
    let what = "LastTraceInformation";
    let mut r = t.reader(what)?;
    let (mut arrival, mut conv, mut rt) = (None, None, None);
    while let Some(m) = r.next_tlv()? {
        if m.tag.is(Tag::context(0)) {
            set_once(&mut arrival, m.utc_time("arrival-time")?, "arrival-time")?;
        } else if m.tag.is(Tag::application(5)) {
            set_once(
                &mut conv,
                EncodedInformationTypes::read(&m)?,
                "converted-encoded-information-types",
            )?;
        } else if m.tag.is(Tag::context(1)) {
            let mut rr = m.reader("report-type")?;
            let choice = rr.read("report-type")?;
            rr.finish("report-type")?;
            set_once(&mut rt, ReportType::read(&choice)?, "report-type")?;
        } else {
            return Err(Error::UnexpectedTag {
                context: what,
                found: m.tag,
            });
        }
    }
    Ok(LastTraceInformation {
        arrival_time: arrival.ok_or(Error::Missing("arrival-time"))?,
        converted_encoded_information_types: conv,
        report_type: rt.ok_or(Error::Missing("report-type"))?,
    })
}

/// `ReportTransferEnvelope ::= SET { report-identifier, report-destination-name ORName,
/// trace-information, extensions [1] DEFAULT {} }` (X.411 §12.2.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReportTransferEnvelope {
    /// report-identifier (`64`).
    pub report_identifier: MtsIdentifier,
    /// report-destination-name: the subject's originator.
    pub report_destination_name: OrName,
    /// trace-information of the report itself.
    pub trace_information: Vec<TraceInformationElement>,
    /// extensions `[1]`.
    pub extensions: Vec<ExtensionField>,
}

/// `ReportTransferContent ::= SET { subject-identifier, subject-intermediate-trace-information
/// OPTIONAL, original-encoded-information-types OPTIONAL, content-type OPTIONAL,
/// content-identifier OPTIONAL, returned-content [1] OPTIONAL, additional-information [2]
/// OPTIONAL, extensions [3] DEFAULT {}, per-recipient-fields [0] SEQUENCE OF ... }`
/// (X.411 §12.2.1.3.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReportTransferContent {
    /// subject-identifier: the message (or probe) identifier being reported on.
    pub subject_identifier: MtsIdentifier,
    /// subject-intermediate-trace-information: the subject's trace.
    pub subject_intermediate_trace_information: Vec<TraceInformationElement>,
    /// original-encoded-information-types.
    pub original_encoded_information_types: Option<EncodedInformationTypes>,
    /// content-type of the subject.
    pub content_type: Option<ContentType>,
    /// content-identifier of the subject.
    pub content_identifier: Option<String>,
    /// returned-content `[1]`: the subject's content.
    pub returned_content: Option<Vec<u8>>,
    /// additional-information `[2]`: the encoding inside the wrapper, opaque.
    pub additional_information: Option<Vec<u8>>,
    /// extensions `[3]`.
    pub extensions: Vec<ExtensionField>,
    /// per-recipient-fields `[0]`: one per reported recipient.
    pub per_recipient_fields: Vec<PerRecipientReportFields>,
}

/// `Report ::= SEQUENCE { envelope ReportTransferEnvelope, content ReportTransferContent }`
/// (X.411 §12.2.1.3). Wire shape `a1 { 31 {envelope} 31 {content} }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Report {
    /// The report transfer envelope.
    pub envelope: ReportTransferEnvelope,
    /// The report transfer content.
    pub content: ReportTransferContent,
}

/// The outcome for one recipient of the subject, to build a report with [`Report::generate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientOutcome {
    /// Index into the subject envelope's per-recipient-fields.
    pub recipient: usize,
    /// Delivered or not.
    pub report_type: ReportType,
    /// supplementary-information, e.g. a human-readable reason.
    pub supplementary_information: Option<String>,
}

/// What a report needs of its subject, a message or a probe (X.411 §12.2.1.3.2
/// ReportTransferContent).
struct Subject<'a> {
    identifier: &'a MtsIdentifier,
    originator: &'a OrName,
    trace: &'a [TraceInformationElement],
    eits: &'a Option<EncodedInformationTypes>,
    content_type: &'a ContentType,
    content_identifier: &'a Option<String>,
    recipients: &'a [PerRecipientFields],
    returned_content: Option<Vec<u8>>,
}

impl Report {
    /// Builds the report an MTA generates about `subject` (X.411 §14.3.1 report generation):
    /// destination = the subject's originator, subject-identifier = its message identifier,
    /// subject-intermediate-trace = its trace, one per-recipient entry per `outcomes` item
    /// (name, number and indicators copied), last-trace arrival time = `arrival_time`, the
    /// report's own trace = one element `relayed` by `reporting_domain` at `report_time`.
    /// For a non-delivery report the content is returned when the subject asked for it
    /// (per-message-indicators content-return-request).
    ///
    /// Errors: [`Error::Unencodable`] when `outcomes` is empty or names a recipient index
    /// the subject does not have.
    pub fn generate(
        subject: &Message,
        report_identifier: MtsIdentifier,
        reporting_domain: GlobalDomainIdentifier,
        arrival_time: Time,
        report_time: Time,
        outcomes: &[RecipientOutcome],
    ) -> Result<Report> {
        let env = &subject.envelope;
        let return_content = outcomes.iter().any(|o| matches!(o.report_type, ReportType::NonDelivery { .. }))
            && env.per_message_indicators.get(PerMessageIndicators::CONTENT_RETURN_REQUEST);
        Report::build(
            Subject {
                identifier: &env.message_identifier,
                originator: &env.originator_name,
                trace: &env.trace_information,
                eits: &env.original_encoded_information_types,
                content_type: &env.content_type,
                content_identifier: &env.content_identifier,
                recipients: &env.per_recipient_fields,
                returned_content: return_content.then(|| subject.content.clone()),
            },
            report_identifier,
            reporting_domain,
            arrival_time,
            report_time,
            outcomes,
        )
    }

    /// Builds the report an MTA generates about a probe (X.411 §12.2.1.2, §14.3.1): as
    /// [`Report::generate`], with subject-identifier = the probe-identifier. A delivery
    /// outcome says a message with the probe's characteristics would have been delivered to
    /// that recipient; a probe has no content, so none is ever returned.
    ///
    /// Errors: as [`Report::generate`].
    pub fn generate_for_probe(
        probe: &ProbeTransferEnvelope,
        report_identifier: MtsIdentifier,
        reporting_domain: GlobalDomainIdentifier,
        arrival_time: Time,
        report_time: Time,
        outcomes: &[RecipientOutcome],
    ) -> Result<Report> {
        Report::build(
            Subject {
                identifier: &probe.probe_identifier,
                originator: &probe.originator_name,
                trace: &probe.trace_information,
                eits: &probe.original_encoded_information_types,
                content_type: &probe.content_type,
                content_identifier: &probe.content_identifier,
                recipients: &probe.per_recipient_fields,
                returned_content: None,
            },
            report_identifier,
            reporting_domain,
            arrival_time,
            report_time,
            outcomes,
        )
    }

    fn build(
        subject: Subject<'_>,
        report_identifier: MtsIdentifier,
        reporting_domain: GlobalDomainIdentifier,
        arrival_time: Time,
        report_time: Time,
        outcomes: &[RecipientOutcome],
    ) -> Result<Report> {
        if outcomes.is_empty() {
            return Err(Error::unencodable("report", "no recipient outcomes"));
        }
        let mut per_recipient = Vec::with_capacity(outcomes.len());
        for o in outcomes {
            let p = subject.recipients.get(o.recipient).ok_or_else(|| {
                Error::unencodable(
                    "report",
                    format!("recipient index {} out of range", o.recipient),
                )
            })?;
            per_recipient.push(PerRecipientReportFields {
                actual_recipient_name: p.recipient_name.clone(),
                originally_specified_recipient_number: p.originally_specified_recipient_number,
                per_recipient_indicators: p.per_recipient_indicators.clone(),
                last_trace_information: LastTraceInformation {
                    arrival_time,
                    converted_encoded_information_types: None,
                    report_type: o.report_type.clone(),
                },
                originally_intended_recipient_name: None,
                supplementary_information: o.supplementary_information.clone(),
                extensions: Vec::new(),
            });
        }
        Ok(Report {
            envelope: ReportTransferEnvelope {
                report_identifier,
                report_destination_name: subject.originator.clone(),
                trace_information: vec![TraceInformationElement::relayed(
                    reporting_domain,
                    report_time,
                )],
                extensions: Vec::new(),
            },
            content: ReportTransferContent {
                subject_identifier: subject.identifier.clone(),
                subject_intermediate_trace_information: subject.trace.to_vec(),
                original_encoded_information_types: subject.eits.clone(),
                content_type: Some(subject.content_type.clone()),
                content_identifier: subject.content_identifier.clone(),
                returned_content: subject.returned_content,
                additional_information: None,
                extensions: Vec::new(),
                per_recipient_fields: per_recipient,
            },
        })
    }

    /// Whether any recipient entry is a non-delivery.
    pub fn is_non_delivery(&self) -> bool {
        self.content.per_recipient_fields.iter().any(|p| {
            matches!(
                p.last_trace_information.report_type,
                ReportType::NonDelivery { .. }
            )
        })
    }

    fn write(&self, w: &mut Writer, conformance: Conformance) -> Result<()> {
        w.constructed(ctx_c(1), |w| {
            let e = &self.envelope;
            w.constructed(ber::SET, |w| {
                e.report_identifier.write(w)?;
                e.report_destination_name.write(w, app_c(0))?;
                write_trace(w, &e.trace_information, "trace-information")?;
                write_extensions(w, 1, &e.extensions, conformance)
            })?;
            let c = &self.content;
            w.constructed(ber::SET, |w| {
                c.subject_identifier.write(w)?;
                if !c.subject_intermediate_trace_information.is_empty() {
                    write_trace(
                        w,
                        &c.subject_intermediate_trace_information,
                        "subject-intermediate-trace-information",
                    )?;
                }
                if let Some(e) = &c.original_encoded_information_types {
                    e.write(w)?;
                }
                if let Some(t) = &c.content_type {
                    t.write(w)?;
                }
                if let Some(s) = &c.content_identifier {
                    w.string(
                        Tag::application(10),
                        StrKind::Printable,
                        s,
                        "content-identifier",
                        MAX_STRING_LEN,
                    )?;
                }
                if let Some(rc) = &c.returned_content {
                    w.primitive(Tag::context(1), rc);
                }
                if let Some(ai) = &c.additional_information {
                    check_opaque(ai, "additional-information")?;
                    w.constructed(ctx_c(2), |w| {
                        w.raw(ai);
                        Ok(())
                    })?;
                }
                write_extensions(w, 3, &c.extensions, conformance)?;
                if c.per_recipient_fields.is_empty()
                    || c.per_recipient_fields.len() > MAX_RECIPIENTS
                {
                    return Err(Error::unencodable(
                        "report per-recipient-fields",
                        "needs 1..=32767 entries",
                    ));
                }
                w.constructed(ctx_c(0), |w| {
                    for p in &c.per_recipient_fields {
                        p.write(w, conformance)?;
                    }
                    Ok(())
                })
            })
        })
    }

    fn read(t: &Tlv<'_>) -> Result<Report> {
        let mut r = t.reader("Report")?;
        let env = r.read("report envelope")?.expect(ber::SET, "Report")?;
        let content = r.read("report content")?.expect(ber::SET, "Report")?;
        r.finish("Report")?;

        let what = "ReportTransferEnvelope";
        let mut er = env.reader(what)?;
        let (mut id, mut dest, mut trace) = (None, None, None);
        let mut env_ext = Vec::new();
        while let Some(m) = er.next_tlv()? {
            if m.tag.is(Tag::application(4)) {
                set_once(&mut id, MtsIdentifier::read(&m)?, "report-identifier")?;
            } else if m.tag.is(Tag::application(0)) {
                set_once(&mut dest, OrName::read(&m)?, "report-destination-name")?;
            } else if m.tag.is(Tag::application(9)) {
                set_once(&mut trace, read_trace(&m)?, "trace-information")?;
            } else if m.tag.is(Tag::context(1)) {
                read_extensions(&m, &mut env_ext)?;
            } else {
                return Err(Error::UnexpectedTag {
                    context: what,
                    found: m.tag,
                });
            }
        }

        let what = "ReportTransferContent";
        let mut cr = content.reader(what)?;
        let (mut subject, mut sit, mut oeit, mut ct, mut cid, mut rc, mut ai, mut recips) =
            (None, None, None, None, None, None, None, None);
        let mut c_ext = Vec::new();
        while let Some(m) = cr.next_tlv()? {
            let tag = m.tag;
            if tag.is(Tag::application(4)) {
                set_once(&mut subject, MtsIdentifier::read(&m)?, "subject-identifier")?;
            } else if tag.is(Tag::application(9)) {
                set_once(
                    &mut sit,
                    read_trace(&m)?,
                    "subject-intermediate-trace-information",
                )?;
            } else if tag.is(Tag::application(5)) {
                set_once(
                    &mut oeit,
                    EncodedInformationTypes::read(&m)?,
                    "original-encoded-information-types",
                )?;
            } else if tag.is(Tag::application(6)) || tag.is(ber::OID) {
                let v = if tag.is(ber::OID) {
                    ContentType::Extended(m.oid("extended content type")?)
                } else {
                    ContentType::BuiltIn(m.unsigned("built-in content type", 32767)? as u16)
                };
                set_once(&mut ct, v, "content-type")?;
            } else if tag.is(Tag::application(10)) {
                set_once(
                    &mut cid,
                    m.string(StrKind::Printable, "content-identifier", MAX_STRING_LEN)?,
                    "content-identifier",
                )?;
            } else if tag.is(Tag::context(1)) {
                set_once(
                    &mut rc,
                    m.octets("returned-content", MAX_PDU_LEN)?.into_owned(),
                    "returned-content",
                )?;
            } else if tag.is(Tag::context(2)) {
                let mut ar = m.reader("additional-information")?;
                while ar.next_tlv()?.is_some() {}
                check_opaque(m.content, "additional-information")?;
                set_once(&mut ai, m.content.to_vec(), "additional-information")?;
            } else if tag.is(Tag::context(3)) {
                read_extensions(&m, &mut c_ext)?;
            } else if tag.is(Tag::context(0)) {
                let mut pr = m.reader("report per-recipient-fields")?;
                let mut v = Vec::new();
                while let Some(p) = pr.next_tlv()? {
                    if v.len() == MAX_RECIPIENTS {
                        return Err(Error::TooMany {
                            what: "report recipients",
                            cap: MAX_RECIPIENTS,
                        });
                    }
                    v.push(PerRecipientReportFields::read(&p)?);
                }
                if v.is_empty() {
                    return Err(Error::invalid("report per-recipient-fields", "no entries"));
                }
                set_once(&mut recips, v, "report per-recipient-fields")?;
            } else {
                return Err(Error::UnexpectedTag {
                    context: what,
                    found: tag,
                });
            }
        }
        Ok(Report {
            envelope: ReportTransferEnvelope {
                report_identifier: id.ok_or(Error::Missing("report-identifier"))?,
                report_destination_name: dest.ok_or(Error::Missing("report-destination-name"))?,
                trace_information: trace.ok_or(Error::Missing("trace-information"))?,
                extensions: env_ext,
            },
            content: ReportTransferContent {
                subject_identifier: subject.ok_or(Error::Missing("subject-identifier"))?,
                subject_intermediate_trace_information: sit.unwrap_or_default(),
                original_encoded_information_types: oeit,
                content_type: ct,
                content_identifier: cid,
                returned_content: rc,
                additional_information: ai,
                extensions: c_ext,
                per_recipient_fields: recips
                    .ok_or(Error::Missing("report per-recipient-fields"))?,
            },
        })
    }
}
