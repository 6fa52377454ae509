//! The MessageTransferEnvelope and the parameter types that envelopes, probes and reports
//! share (X.411 §12.2.1.1, §12.2.1.1.1 "per-recipient fields", §9 extensions, §12.2.1.1.1.
//! trace, internal trace).

use crate::address::{
    GlobalDomainIdentifier, MtaName, MtsIdentifier, OrName, OrNameMemo, check_opaque, set_once,
};
use crate::ber::{self, BitString, Oid, StrKind, Tag, Time, Tlv, Writer, app_c, ctx_c};
use crate::error::{Error, Result};
use crate::limits::{MAX_EXTENSIONS, MAX_RECIPIENTS, MAX_STRING_LEN, MAX_TRACE_ELEMENTS};

/// What to send for envelope extensions (DESIGN §4 "conformance mode" of a connector).
///
/// 1988-era peers (PP, Exchange's "1988 normal" mode) encode an extension's type as an
/// explicit `[0] INTEGER` — `a0 03 02 01 26` for internal trace — and abort on the later
/// implicit form `80 01 26`, which is what Wireshark's X.411 dissector expects. Decoding
/// always accepts both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Conformance {
    /// Extension type as `[0] { INTEGER }` / `[0] { OBJECT IDENTIFIER }` (X.411 (1988)).
    #[default]
    Explicit1988,
    /// Extension type as `[0] IMPLICIT INTEGER` / `[3] IMPLICIT OBJECT IDENTIFIER`
    /// (X.411 (1992) onwards; decodes in Wireshark).
    Implicit,
    /// Send no `extensions` at all (envelope, per-recipient and report extension sets are
    /// left out).
    NoExtensions,
}

/// `ContentType ::= CHOICE { built-in BuiltInContentType ([APPLICATION 6] INTEGER),
/// extended ExtendedContentType (OBJECT IDENTIFIER) }` (X.411 §12.2.1.1.1.4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ContentType {
    /// built-in (0..=32767), wire `46 01 16` for P2 1988.
    BuiltIn(u16),
    /// extended: an object identifier.
    Extended(Oid),
}

impl ContentType {
    /// unidentified (0).
    pub const UNIDENTIFIED: ContentType = ContentType::BuiltIn(0);
    /// external (1).
    pub const EXTERNAL: ContentType = ContentType::BuiltIn(1);
    /// interpersonal-messaging-1984 (2): P2 1984.
    pub const P2_1984: ContentType = ContentType::BuiltIn(2);
    /// interpersonal-messaging-1988 (22): P2 1988 (X.420).
    pub const P2_1988: ContentType = ContentType::BuiltIn(22);

    pub(crate) fn write(&self, w: &mut Writer) -> Result<()> {
        match self {
            ContentType::BuiltIn(n) => {
                if *n > 32767 {
                    return Err(Error::unencodable(
                        "built-in content type",
                        "above ub-built-in-content-type",
                    ));
                }
                w.integer(Tag::application(6), i64::from(*n));
                Ok(())
            }
            ContentType::Extended(oid) => w.oid(ber::OID, oid, "extended content type"),
        }
    }

    fn read(t: &Tlv<'_>) -> Result<ContentType> {
        if t.tag.is(Tag::application(6)) {
            Ok(ContentType::BuiltIn(
                t.unsigned("built-in content type", 32767)? as u16,
            ))
        } else {
            Ok(ContentType::Extended(t.oid("extended content type")?))
        }
    }

    fn is_content_type_tag(tag: Tag) -> bool {
        tag.is(Tag::application(6)) || tag.is(ber::OID)
    }
}

/// `Priority ::= [APPLICATION 7] ENUMERATED { normal(0), non-urgent(1), urgent(2) }`
/// (X.411 §12.2.1.1.1.6), DEFAULT normal (left out when normal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Priority {
    /// normal (0).
    #[default]
    Normal,
    /// non-urgent (1).
    NonUrgent,
    /// urgent (2).
    Urgent,
}

impl Priority {
    fn read(t: &Tlv<'_>) -> Result<Priority> {
        Ok(match t.unsigned("priority", 2)? {
            0 => Priority::Normal,
            1 => Priority::NonUrgent,
            _ => Priority::Urgent,
        })
    }
    fn code(self) -> i64 {
        match self {
            Priority::Normal => 0,
            Priority::NonUrgent => 1,
            Priority::Urgent => 2,
        }
    }
}

/// `PerMessageIndicators ::= [APPLICATION 8] BIT STRING` (X.411 §12.2.1.1.1.7), DEFAULT `{}`
/// (left out when it has no bits at all).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PerMessageIndicators(pub BitString);

impl PerMessageIndicators {
    /// disclosure-of-other-recipients (0).
    pub const DISCLOSURE_OF_OTHER_RECIPIENTS: usize = 0;
    /// implicit-conversion-prohibited (1).
    pub const IMPLICIT_CONVERSION_PROHIBITED: usize = 1;
    /// alternate-recipient-allowed (2).
    pub const ALTERNATE_RECIPIENT_ALLOWED: usize = 2;
    /// content-return-request (3).
    pub const CONTENT_RETURN_REQUEST: usize = 3;
    /// service-message (7).
    pub const SERVICE_MESSAGE: usize = 7;

    /// The shortest indicators with the named bits set.
    pub fn new(bits: &[usize]) -> PerMessageIndicators {
        PerMessageIndicators(BitString::from_bits(bits))
    }

    /// Whether bit `bit` is set.
    pub fn get(&self, bit: usize) -> bool {
        self.0.get(bit)
    }
}

/// `PerRecipientIndicators ::= BIT STRING (SIZE 8..ub-bit-options)` (X.411 §12.2.1.1.1.10).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PerRecipientIndicators(pub BitString);

impl PerRecipientIndicators {
    /// responsibility (0): this MTA is responsible for the recipient.
    pub const RESPONSIBILITY: usize = 0;
    /// originating-MTA-report (1).
    pub const ORIGINATING_MTA_REPORT: usize = 1;
    /// originating-MTA-non-delivery-report (2).
    pub const ORIGINATING_MTA_NON_DELIVERY_REPORT: usize = 2;
    /// originator-report (3).
    pub const ORIGINATOR_REPORT: usize = 3;
    /// originator-non-delivery-report (4).
    pub const ORIGINATOR_NON_DELIVERY_REPORT: usize = 4;

    /// Eight bits with the named bits set.
    pub fn new(bits: &[usize]) -> PerRecipientIndicators {
        PerRecipientIndicators(BitString::with_bits(8, bits))
    }

    /// The usual value for a newly submitted recipient: responsible, non-delivery reports
    /// requested by both the originating MTA and the originator (`00 a8` on the wire).
    pub fn responsible_ndr_only() -> PerRecipientIndicators {
        PerRecipientIndicators::new(&[
            Self::RESPONSIBILITY,
            Self::ORIGINATING_MTA_NON_DELIVERY_REPORT,
            Self::ORIGINATOR_NON_DELIVERY_REPORT,
        ])
    }

    /// Whether bit `bit` is set.
    pub fn get(&self, bit: usize) -> bool {
        self.0.get(bit)
    }

    /// Whether the originating MTA asked for a delivery report (bit 1).
    pub fn wants_delivery_report(&self) -> bool {
        self.get(Self::ORIGINATING_MTA_REPORT)
    }
}

/// `EncodedInformationTypes ::= [APPLICATION 5] SET { built-in-encoded-information-types
/// [0] BIT STRING, non-basic-parameters [1]/[2], extended-encoded-information-types [4]
/// SET OF OBJECT IDENTIFIER OPTIONAL }` (X.411 §12.2.1.1.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct EncodedInformationTypes {
    /// The built-in types (bits: undefined 0, telex 1, ia5-text 2, g3-facsimile 3,
    /// g4-class-1 4, teletex 5, videotex 6, voice 7, sfd 8, mixed-mode 9).
    pub built_in: BitString,
    /// Non-basic parameters (`[1]`, `[2]`, ...): each element's whole encoding, opaque.
    pub non_basic: Vec<Vec<u8>>,
    /// Extended encoded information types.
    pub extended: Vec<Oid>,
}

impl EncodedInformationTypes {
    /// The ia5-text built-in bit (2).
    pub const IA5_TEXT: usize = 2;

    pub(crate) fn write(&self, w: &mut Writer) -> Result<()> {
        w.constructed(app_c(5), |w| {
            w.bit_string(Tag::context(0), &self.built_in);
            for nb in &self.non_basic {
                check_opaque(nb, "non-basic parameters")?;
                w.raw(nb);
            }
            if !self.extended.is_empty() {
                w.constructed(ctx_c(4), |w| {
                    for oid in &self.extended {
                        w.oid(ber::OID, oid, "extended encoded information type")?;
                    }
                    Ok(())
                })?;
            }
            Ok(())
        })
    }

    pub(crate) fn read(t: &Tlv<'_>) -> Result<EncodedInformationTypes> {
        let what = "EncodedInformationTypes";
        let mut r = t.reader(what)?;
        let mut built_in = None;
        let mut e = EncodedInformationTypes::default();
        let mut extended_seen = false;
        while let Some(m) = r.next_tlv()? {
            if m.tag.is(Tag::context(0)) {
                set_once(
                    &mut built_in,
                    m.bit_string("built-in encoded information types")?,
                    "built-in encoded information types",
                )?;
            } else if m.tag.is(Tag::context(4)) {
                if extended_seen {
                    return Err(Error::Duplicate("extended encoded information types"));
                }
                extended_seen = true;
                let mut xr = m.reader("extended encoded information types")?;
                while let Some(o) = xr.next_tlv()? {
                    if e.extended.len() == MAX_EXTENSIONS {
                        return Err(Error::TooMany {
                            what: "extended encoded information types",
                            cap: MAX_EXTENSIONS,
                        });
                    }
                    e.extended.push(
                        o.expect(ber::OID, "extended encoded information type")?
                            .oid("extended encoded information type")?,
                    );
                }
            } else if m.tag.class == ber::Class::Context {
                if e.non_basic.len() == MAX_EXTENSIONS {
                    return Err(Error::TooMany {
                        what: "non-basic parameters",
                        cap: MAX_EXTENSIONS,
                    });
                }
                check_opaque(m.raw, "non-basic parameters")?;
                e.non_basic.push(m.raw.to_vec());
            } else {
                return Err(Error::UnexpectedTag {
                    context: what,
                    found: m.tag,
                });
            }
        }
        e.built_in = built_in.ok_or(Error::Missing("built-in encoded information types"))?;
        Ok(e)
    }
}

/// `RoutingAction ::= ENUMERATED { relayed(0), rerouted(1) }` (X.411 §12.2.1.1.1.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RoutingAction {
    /// relayed (0).
    #[default]
    Relayed,
    /// rerouted (1).
    Rerouted,
}

impl RoutingAction {
    fn read(t: &Tlv<'_>) -> Result<RoutingAction> {
        Ok(if t.unsigned("routing-action", 1)? == 0 {
            RoutingAction::Relayed
        } else {
            RoutingAction::Rerouted
        })
    }
    fn code(self) -> i64 {
        match self {
            RoutingAction::Relayed => 0,
            RoutingAction::Rerouted => 1,
        }
    }
}

/// The components of `AdditionalActions ::= SET { deferred-time [1] Time OPTIONAL,
/// converted-encoded-information-types OPTIONAL, other-actions [3] BIT STRING DEFAULT {} }`
/// that trace and internal-trace entries carry (X.411 §12.2.1.1.1.12).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct AdditionalActions {
    /// deferred-time `[1]`.
    pub deferred_time: Option<Time>,
    /// converted-encoded-information-types (`65`).
    pub converted_encoded_information_types: Option<EncodedInformationTypes>,
    /// other-actions `[3]`: redirected (0), dl-operation (1); left out when empty.
    pub other_actions: BitString,
}

impl AdditionalActions {
    fn write(&self, w: &mut Writer) -> Result<()> {
        if let Some(t) = &self.deferred_time {
            w.utc_time(Tag::context(1), t, "deferred-time")?;
        }
        if let Some(e) = &self.converted_encoded_information_types {
            e.write(w)?;
        }
        if !self.other_actions.is_empty() {
            w.bit_string(Tag::context(3), &self.other_actions);
        }
        Ok(())
    }

    /// Takes `m` if it is one of the additional-action members; returns whether it was.
    fn take(&mut self, m: &Tlv<'_>) -> Result<bool> {
        if m.tag.is(Tag::context(1)) {
            set_once(
                &mut self.deferred_time,
                m.utc_time("deferred-time")?,
                "deferred-time",
            )?;
        } else if m.tag.is(Tag::application(5)) {
            set_once(
                &mut self.converted_encoded_information_types,
                EncodedInformationTypes::read(m)?,
                "converted-encoded-information-types",
            )?;
        } else if m.tag.is(Tag::context(3)) {
            self.other_actions = m.bit_string("other-actions")?;
        } else {
            return Ok(false);
        }
        Ok(true)
    }
}

/// `DomainSuppliedInformation ::= SET { arrival-time [0] Time, routing-action [2]
/// RoutingAction, attempted-domain GlobalDomainIdentifier OPTIONAL, COMPONENTS OF
/// AdditionalActions }` (X.411 §12.2.1.1.1.12).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DomainSuppliedInformation {
    /// arrival-time `[0]`: when the message entered the domain.
    pub arrival_time: Time,
    /// routing-action `[2]`.
    pub routing_action: RoutingAction,
    /// attempted-domain: a domain tried and given up on before rerouting.
    pub attempted_domain: Option<GlobalDomainIdentifier>,
    /// deferred-time, converted EITs, other-actions.
    pub additional_actions: AdditionalActions,
}

/// `TraceInformationElement ::= SEQUENCE { global-domain-identifier, domain-supplied-
/// information }`; `TraceInformation ::= [APPLICATION 9] SEQUENCE SIZE (1..ub-transfers) OF
/// TraceInformationElement` (X.411 §12.2.1.1.1.12). Wire shape `69 { 30 { 63 {..} 31 {
/// 80 arrival, 82 action, ... } } ... }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TraceInformationElement {
    /// The domain that added the element.
    pub global_domain_identifier: GlobalDomainIdentifier,
    /// What happened there.
    pub domain_supplied_information: DomainSuppliedInformation,
}

impl TraceInformationElement {
    /// An element saying the message arrived in `domain` at `arrival_time` and was relayed.
    pub fn relayed(domain: GlobalDomainIdentifier, arrival_time: Time) -> TraceInformationElement {
        TraceInformationElement {
            global_domain_identifier: domain,
            domain_supplied_information: DomainSuppliedInformation {
                arrival_time,
                routing_action: RoutingAction::Relayed,
                attempted_domain: None,
                additional_actions: AdditionalActions::default(),
            },
        }
    }
}

/// Writes `TraceInformation` (APPLICATION 9) — at least one element.
pub(crate) fn write_trace(
    w: &mut Writer,
    trace: &[TraceInformationElement],
    what: &'static str,
) -> Result<()> {
    if trace.is_empty() {
        return Err(Error::unencodable(
            what,
            "trace information needs at least one element",
        ));
    }
    if trace.len() > MAX_TRACE_ELEMENTS {
        return Err(Error::unencodable(
            what,
            format!("more than {MAX_TRACE_ELEMENTS} elements"),
        ));
    }
    w.constructed(app_c(9), |w| {
        for e in trace {
            w.constructed(ber::SEQUENCE, |w| {
                e.global_domain_identifier.write(w)?;
                let d = &e.domain_supplied_information;
                w.constructed(ber::SET, |w| {
                    w.utc_time(Tag::context(0), &d.arrival_time, "arrival-time")?;
                    w.integer(Tag::context(2), d.routing_action.code());
                    if let Some(a) = &d.attempted_domain {
                        a.write(w)?;
                    }
                    d.additional_actions.write(w)
                })
            })?;
        }
        Ok(())
    })
}

/// Reads `TraceInformation` (APPLICATION 9 already matched).
pub(crate) fn read_trace(t: &Tlv<'_>) -> Result<Vec<TraceInformationElement>> {
    let what = "trace-information";
    let mut r = t.reader(what)?;
    let mut out = Vec::new();
    while let Some(e) = r.next_tlv()? {
        if out.len() == MAX_TRACE_ELEMENTS {
            return Err(Error::TooMany {
                what: "trace elements",
                cap: MAX_TRACE_ELEMENTS,
            });
        }
        let mut er = e
            .expect(ber::SEQUENCE, "TraceInformationElement")?
            .reader("TraceInformationElement")?;
        let gdi = GlobalDomainIdentifier::read(
            &er.read("global-domain-identifier")?
                .expect(app_c(3), "TraceInformationElement")?,
        )?;
        let dsi = er
            .read("domain-supplied-information")?
            .expect(ber::SET, "TraceInformationElement")?;
        er.finish("TraceInformationElement")?;
        let mut dr = dsi.reader("DomainSuppliedInformation")?;
        let (mut arrival, mut action, mut attempted) = (None, None, None);
        let mut additional = AdditionalActions::default();
        while let Some(m) = dr.next_tlv()? {
            if m.tag.is(Tag::context(0)) {
                set_once(&mut arrival, m.utc_time("arrival-time")?, "arrival-time")?;
            } else if m.tag.is(Tag::context(2)) {
                set_once(&mut action, RoutingAction::read(&m)?, "routing-action")?;
            } else if m.tag.is(Tag::application(3)) {
                set_once(
                    &mut attempted,
                    GlobalDomainIdentifier::read(&m)?,
                    "attempted-domain",
                )?;
            } else if !additional.take(&m)? {
                return Err(Error::UnexpectedTag {
                    context: "DomainSuppliedInformation",
                    found: m.tag,
                });
            }
        }
        out.push(TraceInformationElement {
            global_domain_identifier: gdi,
            domain_supplied_information: DomainSuppliedInformation {
                arrival_time: arrival.ok_or(Error::Missing("arrival-time"))?,
                routing_action: action.ok_or(Error::Missing("routing-action"))?,
                attempted_domain: attempted,
                additional_actions: additional,
            },
        });
    }
    if out.is_empty() {
        return Err(Error::invalid(what, "no trace elements"));
    }
    Ok(out)
}

/// `attempted CHOICE { mta MTAName, domain GlobalDomainIdentifier }` of internal trace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Attempted {
    /// An MTA that was tried.
    Mta(MtaName),
    /// A domain that was tried.
    Domain(GlobalDomainIdentifier),
}

/// `MTASuppliedInformation ::= SET { arrival-time [0] Time, routing-action [2],
/// attempted CHOICE OPTIONAL, COMPONENTS OF InternalAdditionalActions }` (X.411 §12.2.1.1.1.13).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MtaSuppliedInformation {
    /// arrival-time `[0]`: when the message reached this MTA.
    pub arrival_time: Time,
    /// routing-action `[2]`.
    pub routing_action: RoutingAction,
    /// attempted MTA or domain.
    pub attempted: Option<Attempted>,
    /// deferred-time, converted EITs, other-actions.
    pub additional_actions: AdditionalActions,
}

/// `InternalTraceInformationElement ::= SEQUENCE { global-domain-identifier, mta-name
/// MTAName, mta-supplied-information }` (X.411 §12.2.1.1.1.13); the value of the
/// internal-trace-information extension (standard extension 38). Wire shape `30 { 63 {..}
/// 16 "EXCH1" 31 { 80 .. 82 .. } }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InternalTraceInformationElement {
    /// The MTA's domain.
    pub global_domain_identifier: GlobalDomainIdentifier,
    /// The MTA that added the element.
    pub mta_name: MtaName,
    /// What happened there.
    pub mta_supplied_information: MtaSuppliedInformation,
}

impl InternalTraceInformationElement {
    /// An element saying `mta` in `domain` relayed the message that arrived at `arrival_time`.
    pub fn relayed(
        domain: GlobalDomainIdentifier,
        mta: MtaName,
        arrival_time: Time,
    ) -> InternalTraceInformationElement {
        InternalTraceInformationElement {
            global_domain_identifier: domain,
            mta_name: mta,
            mta_supplied_information: MtaSuppliedInformation {
                arrival_time,
                routing_action: RoutingAction::Relayed,
                attempted: None,
                additional_actions: AdditionalActions::default(),
            },
        }
    }

    fn write(&self, w: &mut Writer) -> Result<()> {
        w.constructed(ber::SEQUENCE, |w| {
            self.global_domain_identifier.write(w)?;
            self.mta_name.write(w, ber::IA5_STRING)?;
            let m = &self.mta_supplied_information;
            w.constructed(ber::SET, |w| {
                w.utc_time(Tag::context(0), &m.arrival_time, "arrival-time")?;
                w.integer(Tag::context(2), m.routing_action.code());
                match &m.attempted {
                    Some(Attempted::Mta(n)) => n.write(w, ber::IA5_STRING)?,
                    Some(Attempted::Domain(d)) => d.write(w)?,
                    None => {}
                }
                m.additional_actions.write(w)
            })
        })
    }

    fn read(t: &Tlv<'_>) -> Result<InternalTraceInformationElement> {
        let what = "InternalTraceInformationElement";
        let mut r = t.expect(ber::SEQUENCE, what)?.reader(what)?;
        let gdi = GlobalDomainIdentifier::read(
            &r.read("global-domain-identifier")?.expect(app_c(3), what)?,
        )?;
        let mta = MtaName::read(&r.read("mta-name")?.expect(ber::IA5_STRING, what)?)?;
        let msi = r.read("mta-supplied-information")?.expect(ber::SET, what)?;
        r.finish(what)?;
        let mut mr = msi.reader("MTASuppliedInformation")?;
        let (mut arrival, mut action, mut attempted) = (None, None, None);
        let mut additional = AdditionalActions::default();
        while let Some(m) = mr.next_tlv()? {
            if m.tag.is(Tag::context(0)) {
                set_once(&mut arrival, m.utc_time("arrival-time")?, "arrival-time")?;
            } else if m.tag.is(Tag::context(2)) {
                set_once(&mut action, RoutingAction::read(&m)?, "routing-action")?;
            } else if m.tag.is(ber::IA5_STRING) {
                set_once(
                    &mut attempted,
                    Attempted::Mta(MtaName::read(&m)?),
                    "attempted",
                )?;
            } else if m.tag.is(Tag::application(3)) {
                set_once(
                    &mut attempted,
                    Attempted::Domain(GlobalDomainIdentifier::read(&m)?),
                    "attempted",
                )?;
            } else if !additional.take(&m)? {
                return Err(Error::UnexpectedTag {
                    context: "MTASuppliedInformation",
                    found: m.tag,
                });
            }
        }
        Ok(InternalTraceInformationElement {
            global_domain_identifier: gdi,
            mta_name: mta,
            mta_supplied_information: MtaSuppliedInformation {
                arrival_time: arrival.ok_or(Error::Missing("arrival-time"))?,
                routing_action: action.ok_or(Error::Missing("routing-action"))?,
                attempted,
                additional_actions: additional,
            },
        })
    }
}

/// `ExtensionType ::= CHOICE { standard-extension [0] INTEGER (0..ub-extension-types),
/// private-extension [3] OBJECT IDENTIFIER }` (X.411 §9.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ExtensionType {
    /// A standard extension number, e.g. 38 internal-trace-information.
    Standard(u16),
    /// A private extension.
    Private(Oid),
}

impl ExtensionType {
    /// internal-trace-information (38).
    pub const INTERNAL_TRACE_INFORMATION: ExtensionType = ExtensionType::Standard(38);
    /// trace-information (37).
    pub const TRACE_INFORMATION: ExtensionType = ExtensionType::Standard(37);
}

/// The value of an extension field.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ExtensionValue {
    /// No `[2]` value (DEFAULT NULL).
    Absent,
    /// internal-trace-information (38): SEQUENCE SIZE (1..ub-transfers) OF
    /// InternalTraceInformationElement.
    InternalTrace(Vec<InternalTraceInformationElement>),
    /// Any other value: the BER encoding inside the `[2]` wrapper, opaque.
    Encoded(Vec<u8>),
}

/// `ExtensionField ::= SEQUENCE { type ExtensionType, criticality [1] Criticality DEFAULT {},
/// value [2] ANY DEFAULT NULL }` (X.411 §9.1).
///
/// The type goes out as [`Conformance`] says: `a0 03 02 01 26` (1988) or `80 01 26`
/// (implicit); both decode.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExtensionField {
    /// The extension's identity.
    pub extension_type: ExtensionType,
    /// criticality `[1]` (for-submission 0, for-transfer 1, for-delivery 2); left out when
    /// empty.
    pub criticality: BitString,
    /// value `[2]`.
    pub value: ExtensionValue,
}

impl ExtensionField {
    /// A non-critical internal-trace-information extension.
    pub fn internal_trace(elements: Vec<InternalTraceInformationElement>) -> ExtensionField {
        ExtensionField {
            extension_type: ExtensionType::INTERNAL_TRACE_INFORMATION,
            criticality: BitString::new(),
            value: ExtensionValue::InternalTrace(elements),
        }
    }

    /// Whether the extension is marked critical for transfer (Criticality bit 1): an MTA
    /// that does not understand such an extension must not relay the message (X.411 §9.1).
    pub fn critical_for_transfer(&self) -> bool {
        self.criticality.get(1)
    }

    fn write(&self, w: &mut Writer, conformance: Conformance) -> Result<()> {
        w.constructed(ber::SEQUENCE, |w| {
            match (&self.extension_type, conformance) {
                (ExtensionType::Standard(n), Conformance::Implicit) => {
                    w.integer(Tag::context(0), i64::from(*n))
                }
                (ExtensionType::Private(oid), Conformance::Implicit) => {
                    w.oid(Tag::context(3), oid, "private extension")?
                }
                (ExtensionType::Standard(n), _) => w.constructed(ctx_c(0), |w| {
                    w.integer(ber::INTEGER, i64::from(*n));
                    Ok(())
                })?,
                (ExtensionType::Private(oid), _) => {
                    w.constructed(ctx_c(0), |w| w.oid(ber::OID, oid, "private extension"))?
                }
            }
            if let ExtensionType::Standard(n) = self.extension_type
                && n > 256
            {
                return Err(Error::unencodable(
                    "extension type",
                    "above ub-extension-types (256)",
                ));
            }
            if !self.criticality.is_empty() {
                w.bit_string(Tag::context(1), &self.criticality);
            }
            match &self.value {
                ExtensionValue::Absent => Ok(()),
                ExtensionValue::Encoded(v) => {
                    check_opaque(v, "extension value")?;
                    w.constructed(ctx_c(2), |w| {
                        w.raw(v);
                        Ok(())
                    })
                }
                ExtensionValue::InternalTrace(elements) => {
                    if elements.is_empty() || elements.len() > MAX_TRACE_ELEMENTS {
                        return Err(Error::unencodable(
                            "internal-trace-information",
                            "needs 1..=512 elements",
                        ));
                    }
                    w.constructed(ctx_c(2), |w| {
                        w.constructed(ber::SEQUENCE, |w| {
                            for e in elements {
                                e.write(w)?;
                            }
                            Ok(())
                        })
                    })
                }
            }
        })
    }

    fn read(t: &Tlv<'_>) -> Result<ExtensionField> {
        let what = "ExtensionField";
        let mut r = t.expect(ber::SEQUENCE, what)?.reader(what)?;
        let ty = r.read("extension type")?;
        let extension_type = match (ty.tag.class, ty.tag.number, ty.tag.constructed) {
            // X.411 (1992) on: [0] IMPLICIT INTEGER, [3] IMPLICIT OBJECT IDENTIFIER.
            (ber::Class::Context, 0, false) => {
                ExtensionType::Standard(ty.unsigned("standard extension", 256)? as u16)
            }
            (ber::Class::Context, 3, false) => ExtensionType::Private(ty.oid("private extension")?),
            // X.411 (1988): [0] { INTEGER | OBJECT IDENTIFIER }.
            (ber::Class::Context, 0, true) => {
                let mut tr = ty.reader("extension type")?;
                let inner = tr.read("extension type")?;
                tr.finish("extension type")?;
                if inner.tag.is(ber::INTEGER) {
                    ExtensionType::Standard(inner.unsigned("standard extension", 256)? as u16)
                } else if inner.tag.is(ber::OID) {
                    ExtensionType::Private(inner.oid("private extension")?)
                } else {
                    return Err(Error::UnexpectedTag {
                        context: "extension type",
                        found: inner.tag,
                    });
                }
            }
            _ => {
                return Err(Error::UnexpectedTag {
                    context: "extension type",
                    found: ty.tag,
                });
            }
        };
        let criticality = match r.optional(Tag::context(1))? {
            Some(c) => c.bit_string("criticality")?,
            None => BitString::new(),
        };
        let value = match r.optional(Tag::context(2))? {
            None => ExtensionValue::Absent,
            Some(v) => {
                let mut vr = v.reader("extension value")?;
                if extension_type == ExtensionType::INTERNAL_TRACE_INFORMATION {
                    let seq = vr
                        .read("internal-trace-information")?
                        .expect(ber::SEQUENCE, "internal-trace-information")?;
                    vr.finish("internal-trace-information")?;
                    let mut sr = seq.reader("internal-trace-information")?;
                    let mut elements = Vec::new();
                    while let Some(e) = sr.next_tlv()? {
                        if elements.len() == MAX_TRACE_ELEMENTS {
                            return Err(Error::TooMany {
                                what: "internal trace elements",
                                cap: MAX_TRACE_ELEMENTS,
                            });
                        }
                        elements.push(InternalTraceInformationElement::read(&e)?);
                    }
                    if elements.is_empty() {
                        return Err(Error::invalid("internal-trace-information", "no elements"));
                    }
                    ExtensionValue::InternalTrace(elements)
                } else {
                    while vr.next_tlv()?.is_some() {}
                    check_opaque(v.content, "extension value")?;
                    ExtensionValue::Encoded(v.content.to_vec())
                }
            }
        };
        r.finish(what)?;
        Ok(ExtensionField {
            extension_type,
            criticality,
            value,
        })
    }
}

/// Writes `tag { ExtensionField ... }` unless the set is empty or conformance says none.
pub(crate) fn write_extensions(
    w: &mut Writer,
    tag: u32,
    exts: &[ExtensionField],
    conformance: Conformance,
) -> Result<()> {
    if exts.is_empty() || conformance == Conformance::NoExtensions {
        return Ok(());
    }
    if exts.len() > MAX_EXTENSIONS {
        return Err(Error::unencodable(
            "extensions",
            format!("more than {MAX_EXTENSIONS} fields"),
        ));
    }
    w.constructed(ctx_c(tag), |w| {
        for e in exts {
            e.write(w, conformance)?;
        }
        Ok(())
    })
}

/// Reads a SET OF ExtensionField (its tag already matched).
pub(crate) fn read_extensions(t: &Tlv<'_>, out: &mut Vec<ExtensionField>) -> Result<()> {
    if !out.is_empty() {
        return Err(Error::Duplicate("extensions"));
    }
    let mut r = t.reader("extensions")?;
    while let Some(e) = r.next_tlv()? {
        if out.len() == MAX_EXTENSIONS {
            return Err(Error::TooMany {
                what: "extension fields",
                cap: MAX_EXTENSIONS,
            });
        }
        out.push(ExtensionField::read(&e)?);
    }
    Ok(())
}

/// `PerRecipientMessageTransferFields` (X.411 §12.2.1.1.1) — also the shape of
/// `PerRecipientProbeTransferFields`:
/// `SET { recipient-name ORName, originally-specified-recipient-number [0] INTEGER,
/// per-recipient-indicators [1] BIT STRING, explicit-conversion [2] INTEGER OPTIONAL,
/// extensions [3] SET OF ExtensionField DEFAULT {} }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PerRecipientFields {
    /// recipient-name.
    pub recipient_name: OrName,
    /// originally-specified-recipient-number `[0]` (1..=32767): the recipient's position
    /// in the originator's submission, carried unchanged into reports.
    pub originally_specified_recipient_number: u16,
    /// per-recipient-indicators `[1]`.
    pub per_recipient_indicators: PerRecipientIndicators,
    /// explicit-conversion `[2]`.
    pub explicit_conversion: Option<u16>,
    /// extensions `[3]`.
    pub extensions: Vec<ExtensionField>,
}

impl PerRecipientFields {
    /// A recipient the sending MTA is responsible for, asking for non-delivery reports only.
    pub fn new(recipient_name: OrName, number: u16) -> PerRecipientFields {
        PerRecipientFields {
            recipient_name,
            originally_specified_recipient_number: number,
            per_recipient_indicators: PerRecipientIndicators::responsible_ndr_only(),
            explicit_conversion: None,
            extensions: Vec::new(),
        }
    }

    fn write(&self, w: &mut Writer, conformance: Conformance) -> Result<()> {
        w.constructed(ber::SET, |w| {
            self.recipient_name.write(w, app_c(0))?;
            w.integer(
                Tag::context(0),
                i64::from(self.originally_specified_recipient_number),
            );
            w.bit_string(Tag::context(1), &self.per_recipient_indicators.0);
            if let Some(c) = self.explicit_conversion {
                w.integer(Tag::context(2), i64::from(c));
            }
            write_extensions(w, 3, &self.extensions, conformance)
        })
    }

    fn read(t: &Tlv<'_>, mut names: Option<&mut OrNameMemo>) -> Result<PerRecipientFields> {
        let what = "per-recipient fields";
        let mut r = t.expect(ber::SET, what)?.reader(what)?;
        let (mut name, mut number, mut pri, mut conv) = (None, None, None, None);
        let mut extensions = Vec::new();
        while let Some(m) = r.next_tlv()? {
            if m.tag.is(Tag::application(0)) {
                set_once(&mut name, OrName::read_noting(&m, names.as_deref_mut())?, "recipient-name")?;
            } else if m.tag.is(Tag::context(0)) {
                let n = m.unsigned(
                    "originally-specified-recipient-number",
                    MAX_RECIPIENTS as u32,
                )? as u16;
                set_once(&mut number, n, "originally-specified-recipient-number")?;
            } else if m.tag.is(Tag::context(1)) {
                set_once(
                    &mut pri,
                    PerRecipientIndicators(m.bit_string("per-recipient-indicators")?),
                    "per-recipient-indicators",
                )?;
            } else if m.tag.is(Tag::context(2)) {
                set_once(
                    &mut conv,
                    m.unsigned("explicit-conversion", 256)? as u16,
                    "explicit-conversion",
                )?;
            } else if m.tag.is(Tag::context(3)) {
                read_extensions(&m, &mut extensions)?;
            } else {
                return Err(Error::UnexpectedTag {
                    context: what,
                    found: m.tag,
                });
            }
        }
        Ok(PerRecipientFields {
            recipient_name: name.ok_or(Error::Missing("recipient-name"))?,
            originally_specified_recipient_number: number
                .ok_or(Error::Missing("originally-specified-recipient-number"))?,
            per_recipient_indicators: pri.ok_or(Error::Missing("per-recipient-indicators"))?,
            explicit_conversion: conv,
            extensions,
        })
    }
}

pub(crate) fn write_recipients(
    w: &mut Writer,
    tag: u32,
    recips: &[PerRecipientFields],
    conformance: Conformance,
) -> Result<()> {
    if recips.is_empty() || recips.len() > MAX_RECIPIENTS {
        return Err(Error::unencodable(
            "per-recipient-fields",
            format!("needs 1..={MAX_RECIPIENTS} recipients"),
        ));
    }
    w.constructed(ctx_c(tag), |w| {
        for p in recips {
            p.write(w, conformance)?;
        }
        Ok(())
    })
}

/// Reads per-recipient fields, noting the recipients' names in `names` when given.
pub(crate) fn read_recipients(t: &Tlv<'_>, mut names: Option<&mut OrNameMemo>) -> Result<Vec<PerRecipientFields>> {
    let mut r = t.reader("per-recipient-fields")?;
    let mut out = Vec::new();
    while let Some(p) = r.next_tlv()? {
        if out.len() == MAX_RECIPIENTS {
            return Err(Error::TooMany {
                what: "recipients",
                cap: MAX_RECIPIENTS,
            });
        }
        out.push(PerRecipientFields::read(&p, names.as_deref_mut())?);
    }
    if out.is_empty() {
        return Err(Error::invalid("per-recipient-fields", "no recipients"));
    }
    Ok(out)
}

/// `MessageTransferEnvelope ::= SET { COMPONENTS OF PerMessageTransferFields,
/// per-recipient-fields [2] SEQUENCE SIZE (1..ub-recipients) OF
/// PerRecipientMessageTransferFields }` (X.411 §12.2.1.1).
///
/// Wire order written: `64` message-identifier, `60` originator-name, `65`
/// original-encoded-information-types, `46` content-type, `4a` content-identifier, `47`
/// priority, `48` per-message-indicators, `[0]` deferred-delivery-time, `[1]`
/// per-domain-bilateral-information, `69` trace-information, `[3]` extensions, `[2]`
/// per-recipient-fields — the order PP uses. Any order decodes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageTransferEnvelope {
    /// message-identifier (MTSIdentifier, `64`).
    pub message_identifier: MtsIdentifier,
    /// originator-name (ORName, `60`).
    pub originator_name: OrName,
    /// original-encoded-information-types (`65`).
    pub original_encoded_information_types: Option<EncodedInformationTypes>,
    /// content-type.
    pub content_type: ContentType,
    /// content-identifier (`[APPLICATION 10]` PrintableString 1..16).
    pub content_identifier: Option<String>,
    /// priority (DEFAULT normal).
    pub priority: Priority,
    /// per-message-indicators (DEFAULT `{}`).
    pub per_message_indicators: PerMessageIndicators,
    /// deferred-delivery-time `[0]`.
    pub deferred_delivery_time: Option<Time>,
    /// per-domain-bilateral-information `[1]`: the contents octets, opaque.
    pub per_domain_bilateral_information: Option<Vec<u8>>,
    /// trace-information (`69`), oldest first; at least one element.
    pub trace_information: Vec<TraceInformationElement>,
    /// extensions `[3]`, e.g. internal trace.
    pub extensions: Vec<ExtensionField>,
    /// per-recipient-fields `[2]`; at least one.
    pub per_recipient_fields: Vec<PerRecipientFields>,
}

impl MessageTransferEnvelope {
    /// An envelope for P2 1988 content from `originator` to `recipients` (numbered from 1,
    /// responsible, NDRs requested) with one trace element.
    pub fn new(
        message_identifier: MtsIdentifier,
        originator: OrName,
        recipients: Vec<OrName>,
        trace: TraceInformationElement,
    ) -> MessageTransferEnvelope {
        MessageTransferEnvelope {
            message_identifier,
            originator_name: originator,
            original_encoded_information_types: None,
            content_type: ContentType::P2_1988,
            content_identifier: None,
            priority: Priority::Normal,
            per_message_indicators: PerMessageIndicators::default(),
            deferred_delivery_time: None,
            per_domain_bilateral_information: None,
            trace_information: vec![trace],
            extensions: Vec::new(),
            per_recipient_fields: recipients
                .into_iter()
                .enumerate()
                .map(|(i, r)| PerRecipientFields::new(r, (i + 1).min(MAX_RECIPIENTS) as u16))
                .collect(),
        }
    }

    /// The internal trace elements of the internal-trace-information extension, if any.
    pub fn internal_trace(&self) -> Option<&[InternalTraceInformationElement]> {
        self.extensions.iter().find_map(|e| match &e.value {
            ExtensionValue::InternalTrace(v) => Some(v.as_slice()),
            _ => None,
        })
    }

    /// Writes the SET contents (tag `tag`).
    pub(crate) fn write(&self, w: &mut Writer, tag: Tag, conformance: Conformance) -> Result<()> {
        w.constructed(tag, |w| {
            self.message_identifier.write(w)?;
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
            if self.priority != Priority::Normal {
                w.integer(Tag::application(7), self.priority.code());
            }
            if !self.per_message_indicators.0.is_empty() {
                w.bit_string(Tag::application(8), &self.per_message_indicators.0);
            }
            if let Some(t) = &self.deferred_delivery_time {
                w.utc_time(Tag::context(0), t, "deferred-delivery-time")?;
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

    /// Reads the envelope in `t`, noting its originator and recipient names in `names`
    /// when given ([`OrNameMemo`]).
    pub(crate) fn read(t: &Tlv<'_>, mut names: Option<&mut OrNameMemo>) -> Result<MessageTransferEnvelope> {
        let what = "MessageTransferEnvelope";
        let mut r = t.reader(what)?;
        let mut f = CommonFields::default();
        let (mut priority, mut deferred, mut recips) = (None, None, None);
        while let Some(m) = r.next_tlv()? {
            if f.take(&m, names.as_deref_mut())? {
                continue;
            }
            if m.tag.is(Tag::application(7)) {
                set_once(&mut priority, Priority::read(&m)?, "priority")?;
            } else if m.tag.is(Tag::context(0)) {
                set_once(
                    &mut deferred,
                    m.utc_time("deferred-delivery-time")?,
                    "deferred-delivery-time",
                )?;
            } else if m.tag.is(Tag::context(2)) {
                set_once(&mut recips, read_recipients(&m, names.as_deref_mut())?, "per-recipient-fields")?;
            } else {
                return Err(Error::UnexpectedTag {
                    context: what,
                    found: m.tag,
                });
            }
        }
        Ok(MessageTransferEnvelope {
            message_identifier: f.identifier.ok_or(Error::Missing("message-identifier"))?,
            originator_name: f.originator.ok_or(Error::Missing("originator-name"))?,
            original_encoded_information_types: f.oeit,
            content_type: f.content_type.ok_or(Error::Missing("content-type"))?,
            content_identifier: f.content_identifier,
            priority: priority.unwrap_or_default(),
            per_message_indicators: f.pmi.unwrap_or_default(),
            deferred_delivery_time: deferred,
            per_domain_bilateral_information: f.pdbi,
            trace_information: f.trace.ok_or(Error::Missing("trace-information"))?,
            extensions: f.extensions,
            per_recipient_fields: recips.ok_or(Error::Missing("per-recipient-fields"))?,
        })
    }
}

/// The members message and probe envelopes share.
#[derive(Default)]
pub(crate) struct CommonFields {
    pub identifier: Option<MtsIdentifier>,
    pub originator: Option<OrName>,
    pub oeit: Option<EncodedInformationTypes>,
    pub content_type: Option<ContentType>,
    pub content_identifier: Option<String>,
    pub pmi: Option<PerMessageIndicators>,
    pub pdbi: Option<Vec<u8>>,
    pub trace: Option<Vec<TraceInformationElement>>,
    pub extensions: Vec<ExtensionField>,
}

impl CommonFields {
    /// Takes `m` when it is one of the shared members (the originator's name noted in
    /// `names` when given); false when it is not.
    pub fn take(&mut self, m: &Tlv<'_>, names: Option<&mut OrNameMemo>) -> Result<bool> {
        let tag = m.tag;
        if tag.is(Tag::application(4)) {
            set_once(&mut self.identifier, MtsIdentifier::read(m)?, "identifier")?;
        } else if tag.is(Tag::application(0)) {
            set_once(&mut self.originator, OrName::read_noting(m, names)?, "originator-name")?;
        } else if tag.is(Tag::application(5)) {
            set_once(
                &mut self.oeit,
                EncodedInformationTypes::read(m)?,
                "original-encoded-information-types",
            )?;
        } else if ContentType::is_content_type_tag(tag) {
            set_once(
                &mut self.content_type,
                ContentType::read(m)?,
                "content-type",
            )?;
        } else if tag.is(Tag::application(10)) {
            set_once(
                &mut self.content_identifier,
                m.string(StrKind::Printable, "content-identifier", MAX_STRING_LEN)?,
                "content-identifier",
            )?;
        } else if tag.is(Tag::application(8)) {
            set_once(
                &mut self.pmi,
                PerMessageIndicators(m.bit_string("per-message-indicators")?),
                "per-message-indicators",
            )?;
        } else if tag.is(Tag::context(1)) {
            let mut pr = m.reader("per-domain-bilateral-information")?;
            while pr.next_tlv()?.is_some() {}
            check_opaque(m.content, "per-domain-bilateral-information")?;
            set_once(
                &mut self.pdbi,
                m.content.to_vec(),
                "per-domain-bilateral-information",
            )?;
        } else if tag.is(Tag::application(9)) {
            set_once(&mut self.trace, read_trace(m)?, "trace-information")?;
        } else if tag.is(Tag::context(3)) {
            read_extensions(m, &mut self.extensions)?;
        } else {
            return Ok(false);
        }
        Ok(true)
    }
}
