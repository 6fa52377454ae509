//! Presentation, normal mode (X.226 §8 / ISO 8823-1): CP-type, CPA-PPDU, CPR-PPDU,
//! ARU-PPDU/ARP-PPDU and the user data of P-DATA, P-RELEASE and P-TOKEN-PLEASE.
//!
//! ```asn1
//! CP-type ::= SET { mode-selector [0] IMPLICIT Mode-selector,
//!   x410-mode-parameters [1] IMPLICIT RTORQapdu OPTIONAL,
//!   normal-mode-parameters [2] IMPLICIT SEQUENCE {
//!     protocol-version [0] IMPLICIT BIT STRING { version-1(0) } DEFAULT { version-1 },
//!     calling-presentation-selector [1] IMPLICIT OCTET STRING OPTIONAL,
//!     called-presentation-selector [2] IMPLICIT OCTET STRING OPTIONAL,
//!     presentation-context-definition-list [4] IMPLICIT Context-list OPTIONAL,
//!     default-context-name [6] IMPLICIT Default-context-name OPTIONAL,
//!     presentation-requirements [8] IMPLICIT BIT STRING OPTIONAL,
//!     user-session-requirements [9] IMPLICIT BIT STRING OPTIONAL,
//!     protocol-options [11] .., initiators-nominated-context [12] .., user-data User-data
//!     OPTIONAL } OPTIONAL }
//! CPA-PPDU ::= SET { mode-selector [0] .., x410-mode-parameters [1] IMPLICIT RTOACapdu
//!   OPTIONAL, normal-mode-parameters [2] IMPLICIT SEQUENCE { protocol-version [0] ..,
//!   responding-presentation-selector [3] .., presentation-context-definition-result-list [5]
//!   IMPLICIT Result-list OPTIONAL, presentation-requirements [8] .., user-session-requirements
//!   [9] .., protocol-options [11] .., responders-nominated-context [13] .., user-data .. } }
//! CPR-PPDU ::= CHOICE { x400-mode-parameters RTORJapdu, normal-mode-parameters SEQUENCE {
//!   protocol-version [0] .., responding-presentation-selector [3] .., presentation-context-
//!   definition-result-list [5] .., default-context-result [7] .., provider-reason [10] ..,
//!   user-data .. } }
//! User-data ::= CHOICE { simply-encoded-data [APPLICATION 0] IMPLICIT OCTET STRING,
//!   fully-encoded-data [APPLICATION 1] IMPLICIT SEQUENCE OF PDV-list }
//! PDV-list ::= SEQUENCE { transfer-syntax-name OBJECT IDENTIFIER OPTIONAL,
//!   presentation-context-identifier INTEGER, presentation-data-values CHOICE {
//!   single-ASN1-type [0] ANY, octet-aligned [1] IMPLICIT OCTET STRING,
//!   arbitrary [2] IMPLICIT BIT STRING } }
//! ```
//! An MTA association defines three contexts, all with transfer syntax BER 2.1.1:
//! 1 = ACSE 2.2.1.0.1, 3 = id-as-mta-rtse 2.6.0.2.12, 5 = id-as-mtse 2.6.0.2.7.

use rasn::prelude::*;

use crate::Reaction;
use crate::ber::{self, BerError, Class};
use crate::rtse::{Rtab, Rtoac, Rtorj, Rtorq};

/// Largest number of presentation contexts accepted in a definition or result list.
pub const MAX_CONTEXTS: usize = 32;
/// Largest number of transfer syntaxes accepted per proposed context.
pub const MAX_TRANSFER_SYNTAXES: usize = 8;
/// Largest number of PDV lists accepted in one fully-encoded user data.
pub const MAX_PDVS: usize = 8;
/// Largest presentation selector accepted, in octets.
pub const MAX_PSAP_LEN: usize = 64;

/// Abstract syntax of ACSE (X.227 §A: 2.2.1.0.1).
pub const ID_AS_ACSE: &[u32] = &[2, 2, 1, 0, 1];
/// Abstract syntax id-as-mta-rtse (X.411 §A: 2.6.0.2.12).
pub const ID_AS_MTA_RTSE: &[u32] = &[2, 6, 0, 2, 12];
/// Abstract syntax id-as-mtse (X.411 §A: 2.6.0.2.7).
pub const ID_AS_MTSE: &[u32] = &[2, 6, 0, 2, 7];
/// Transfer syntax basic-encoding (X.690: 2.1.1).
pub const BER_TRANSFER_SYNTAX: &[u32] = &[2, 1, 1];

/// The context identifiers of an MTA association.
pub mod context {
    /// ACSE.
    pub const ACSE: i64 = 1;
    /// id-as-mta-rtse.
    pub const MTA_RTSE: i64 = 3;
    /// id-as-mtse.
    pub const MTSE: i64 = 5;
}

/// Result-list result values (X.226 §8.2).
pub mod result {
    /// Acceptance.
    pub const ACCEPTANCE: i64 = 0;
    /// User rejection.
    pub const USER_REJECTION: i64 = 1;
    /// Provider rejection.
    pub const PROVIDER_REJECTION: i64 = 2;
}

/// An OBJECT IDENTIFIER from its arcs.
///
/// # Panics
/// For arcs that are no OID (fewer than two, first above 2): only constants are passed.
pub fn oid(arcs: &[u32]) -> ObjectIdentifier {
    ObjectIdentifier::new(arcs.to_vec()).expect("valid object identifier")
}

fn version1() -> BitString {
    let mut b = BitString::new();
    b.push(true);
    b
}

/// Mode-selector (X.226 §8.2): 0 x410-1984-mode, 1 normal-mode.
#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq, Eq)]
#[rasn(set)]
pub struct ModeSelector {
    /// mode-value.
    #[rasn(tag(context, 0))]
    pub mode_value: i64,
}

impl ModeSelector {
    /// normal-mode.
    pub fn normal() -> ModeSelector {
        ModeSelector { mode_value: 1 }
    }
}

/// CP-type (X.226 §8.2.1).
#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq, Eq)]
#[rasn(set)]
pub struct CpType {
    /// mode-selector.
    #[rasn(tag(context, 0))]
    pub mode_selector: ModeSelector,
    /// x410-mode-parameters.
    #[rasn(tag(context, 1))]
    pub x410_mode_parameters: Option<Rtorq>,
    /// normal-mode-parameters.
    #[rasn(tag(context, 2))]
    pub normal_mode_parameters: Option<CpNormalMode>,
}

/// CP-type normal-mode-parameters.
#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq, Eq)]
pub struct CpNormalMode {
    /// protocol-version.
    #[rasn(tag(context, 0), default = "version1")]
    pub protocol_version: BitString,
    /// calling-presentation-selector.
    #[rasn(tag(context, 1))]
    pub calling_presentation_selector: Option<OctetString>,
    /// called-presentation-selector.
    #[rasn(tag(context, 2))]
    pub called_presentation_selector: Option<OctetString>,
    /// presentation-context-definition-list.
    #[rasn(tag(context, 4))]
    pub presentation_context_definition_list: Option<Vec<ContextDefinition>>,
    /// default-context-name.
    #[rasn(tag(context, 6))]
    pub default_context_name: Option<DefaultContextName>,
    /// presentation-requirements.
    #[rasn(tag(context, 8))]
    pub presentation_requirements: Option<BitString>,
    /// user-session-requirements.
    #[rasn(tag(context, 9))]
    pub user_session_requirements: Option<BitString>,
    /// protocol-options.
    #[rasn(tag(context, 11))]
    pub protocol_options: Option<BitString>,
    /// initiators-nominated-context.
    #[rasn(tag(context, 12))]
    pub initiators_nominated_context: Option<i64>,
    /// user-data.
    pub user_data: Option<UserData>,
}

/// One item of a Context-list.
#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq, Eq)]
pub struct ContextDefinition {
    /// presentation-context-identifier (odd for the initiator's contexts).
    pub presentation_context_identifier: i64,
    /// abstract-syntax-name.
    pub abstract_syntax_name: ObjectIdentifier,
    /// transfer-syntax-name-list.
    pub transfer_syntax_name_list: Vec<ObjectIdentifier>,
}

/// Default-context-name.
#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq, Eq)]
pub struct DefaultContextName {
    /// abstract-syntax-name.
    #[rasn(tag(context, 0))]
    pub abstract_syntax_name: ObjectIdentifier,
    /// transfer-syntax-name.
    #[rasn(tag(context, 1))]
    pub transfer_syntax_name: ObjectIdentifier,
}

/// CPA-PPDU (X.226 §8.2.2).
#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq, Eq)]
#[rasn(set)]
pub struct CpaPpdu {
    /// mode-selector.
    #[rasn(tag(context, 0))]
    pub mode_selector: ModeSelector,
    /// x410-mode-parameters.
    #[rasn(tag(context, 1))]
    pub x410_mode_parameters: Option<Rtoac>,
    /// normal-mode-parameters.
    #[rasn(tag(context, 2))]
    pub normal_mode_parameters: Option<CpaNormalMode>,
}

/// CPA-PPDU normal-mode-parameters.
#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq, Eq)]
pub struct CpaNormalMode {
    /// protocol-version.
    #[rasn(tag(context, 0), default = "version1")]
    pub protocol_version: BitString,
    /// responding-presentation-selector.
    #[rasn(tag(context, 3))]
    pub responding_presentation_selector: Option<OctetString>,
    /// presentation-context-definition-result-list.
    #[rasn(tag(context, 5))]
    pub presentation_context_definition_result_list: Option<Vec<ContextResult>>,
    /// presentation-requirements.
    #[rasn(tag(context, 8))]
    pub presentation_requirements: Option<BitString>,
    /// user-session-requirements.
    #[rasn(tag(context, 9))]
    pub user_session_requirements: Option<BitString>,
    /// protocol-options.
    #[rasn(tag(context, 11))]
    pub protocol_options: Option<BitString>,
    /// responders-nominated-context.
    #[rasn(tag(context, 13))]
    pub responders_nominated_context: Option<i64>,
    /// user-data.
    pub user_data: Option<UserData>,
}

/// One item of a Result-list.
#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq, Eq)]
pub struct ContextResult {
    /// result, see [`result`].
    #[rasn(tag(context, 0))]
    pub result: i64,
    /// transfer-syntax-name.
    #[rasn(tag(context, 1))]
    pub transfer_syntax_name: Option<ObjectIdentifier>,
    /// provider-reason: 0 reason-not-specified, 1 abstract-syntax-not-supported,
    /// 2 proposed-transfer-syntaxes-not-supported, 3 local-limit-on-DCS-exceeded.
    #[rasn(tag(context, 2))]
    pub provider_reason: Option<i64>,
}

/// CPR-PPDU (X.226 §8.2.3).
#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq, Eq)]
#[rasn(choice)]
pub enum CprPpdu {
    /// x400-mode-parameters.
    X400ModeParameters(Rtorj),
    /// normal-mode-parameters.
    NormalModeParameters(CprNormalMode),
}

/// CPR-PPDU normal-mode-parameters.
#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq, Eq)]
pub struct CprNormalMode {
    /// protocol-version.
    #[rasn(tag(context, 0), default = "version1")]
    pub protocol_version: BitString,
    /// responding-presentation-selector.
    #[rasn(tag(context, 3))]
    pub responding_presentation_selector: Option<OctetString>,
    /// presentation-context-definition-result-list.
    #[rasn(tag(context, 5))]
    pub presentation_context_definition_result_list: Option<Vec<ContextResult>>,
    /// default-context-result.
    #[rasn(tag(context, 7))]
    pub default_context_result: Option<i64>,
    /// provider-reason: 0 reason-not-specified, 1 temporary-congestion, 2 local-limit-
    /// exceeded, 3 called-presentation-address-unknown, 4 protocol-version-not-supported,
    /// 5 default-context-not-supported, 6 user-data-not-readable, 7 no-PSAP-available.
    #[rasn(tag(context, 10))]
    pub provider_reason: Option<i64>,
    /// user-data.
    pub user_data: Option<UserData>,
}

/// ARU-PPDU (X.226 §8.4.1).
#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq, Eq)]
#[rasn(choice)]
pub enum AruPpdu {
    /// x400-mode-parameters.
    X400ModeParameters(Rtab),
    /// normal-mode-parameters.
    #[rasn(tag(context, 0))]
    NormalModeParameters(AruNormalMode),
}

/// ARU-PPDU normal-mode-parameters.
#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq, Eq)]
pub struct AruNormalMode {
    /// presentation-context-identifier-list.
    #[rasn(tag(context, 0))]
    pub presentation_context_identifier_list: Option<Vec<ContextIdentifierItem>>,
    /// user-data.
    pub user_data: Option<UserData>,
}

/// One item of a Presentation-context-identifier-list.
#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq, Eq)]
pub struct ContextIdentifierItem {
    /// presentation-context-identifier.
    pub presentation_context_identifier: i64,
    /// transfer-syntax-name.
    pub transfer_syntax_name: ObjectIdentifier,
}

/// ARP-PPDU (X.226 §8.4.2).
#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq, Eq)]
pub struct ArpPpdu {
    /// provider-reason: 0 reason-not-specified, 1 unrecognized-ppdu, 2 unexpected-ppdu,
    /// 3 unexpected-session-service-primitive, 4 unrecognized-ppdu-parameter,
    /// 5 unexpected-ppdu-parameter, 6 invalid-ppdu-parameter-value.
    #[rasn(tag(context, 0))]
    pub provider_reason: Option<i64>,
    /// event-identifier.
    #[rasn(tag(context, 1))]
    pub event_identifier: Option<i64>,
}

/// What a session AB carries: an ARU-PPDU or an ARP-PPDU (X.226 §8.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AbortPpdu {
    /// User abort.
    Aru(AruPpdu),
    /// Provider abort.
    Arp(ArpPpdu),
}

/// User-data (X.226 §8.4).
#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq, Eq)]
#[rasn(choice)]
pub enum UserData {
    /// simply-encoded-data.
    #[rasn(tag(application, 0))]
    SimplyEncoded(OctetString),
    /// fully-encoded-data.
    #[rasn(tag(application, 1))]
    FullyEncoded(Vec<PdvList>),
}

/// PDV-list.
#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq, Eq)]
pub struct PdvList {
    /// transfer-syntax-name.
    pub transfer_syntax_name: Option<ObjectIdentifier>,
    /// presentation-context-identifier.
    pub presentation_context_identifier: i64,
    /// presentation-data-values.
    pub presentation_data_values: PdvValues,
}

/// presentation-data-values.
#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq, Eq)]
#[rasn(choice)]
pub enum PdvValues {
    /// single-ASN1-type \[0\]: one BER value of the context's abstract syntax.
    #[rasn(tag(explicit(context, 0)))]
    SingleAsn1Type(Any),
    /// octet-aligned \[1\].
    #[rasn(tag(context, 1))]
    OctetAligned(OctetString),
    /// arbitrary \[2\].
    #[rasn(tag(context, 2))]
    Arbitrary(BitString),
}

/// X.226 errors. Reaction: a session AB with an ARP-PPDU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresentationError {
    /// Not well-formed BER, or not the expected PPDU.
    #[error("malformed ppdu: {0}")]
    Ber(#[from] BerError),
    /// The PPDU is in X.410-1984 mode or lacks normal-mode parameters.
    #[error("not a normal-mode ppdu")]
    NotNormalMode,
    /// More contexts, transfer syntaxes or PDV lists than the caps.
    #[error("more than {0} {1}")]
    TooMany(usize, &'static str),
    /// A selector longer than [`MAX_PSAP_LEN`].
    #[error("presentation selector longer than {MAX_PSAP_LEN} octets")]
    SelectorTooLong,
    /// A mandatory element is missing.
    #[error("missing {0}")]
    Missing(&'static str),
    /// User data naming a context that was not defined, or not in the expected form.
    #[error("user data for undefined presentation context {0}")]
    UnknownContext(i64),
}

impl PresentationError {
    /// The wire reaction: an ARP-PPDU with a provider-reason matching the error.
    pub fn reaction(&self) -> Reaction {
        let provider_reason = match self {
            PresentationError::Ber(_) => 1,
            PresentationError::Missing(_) => 4,
            _ => 6,
        };
        Reaction::PresentationAbort { provider_reason }
    }
}

/// Checks the PDV cap and that every single-ASN1-type value is one well-formed BER value.
fn check_user_data(u: &Option<UserData>) -> Result<(), PresentationError> {
    if let Some(UserData::FullyEncoded(p)) = u {
        if p.len() > MAX_PDVS {
            return Err(PresentationError::TooMany(MAX_PDVS, "pdv lists"));
        }
        for pdv in p {
            if let PdvValues::SingleAsn1Type(a) = &pdv.presentation_data_values {
                ber::check_one(a.as_bytes())?;
            }
        }
    }
    Ok(())
}

fn check_selector(s: &Option<OctetString>) -> Result<(), PresentationError> {
    match s {
        Some(s) if s.len() > MAX_PSAP_LEN => Err(PresentationError::SelectorTooLong),
        _ => Ok(()),
    }
}

fn check_results(r: &Option<Vec<ContextResult>>) -> Result<(), PresentationError> {
    match r {
        Some(r) if r.len() > MAX_CONTEXTS => {
            Err(PresentationError::TooMany(MAX_CONTEXTS, "contexts"))
        }
        _ => Ok(()),
    }
}

impl CpType {
    /// Decodes a CP-type filling all of `input` and checks the caps.
    ///
    /// # Errors
    /// [`PresentationError::Ber`], [`PresentationError::TooMany`],
    /// [`PresentationError::SelectorTooLong`].
    pub fn decode(input: &[u8]) -> Result<CpType, PresentationError> {
        let cp: CpType = ber::decode(input)?;
        if let Some(x) = &cp.x410_mode_parameters {
            x.check_open_types()?;
        }
        if let Some(n) = &cp.normal_mode_parameters {
            check_selector(&n.calling_presentation_selector)?;
            check_selector(&n.called_presentation_selector)?;
            if let Some(l) = &n.presentation_context_definition_list {
                if l.len() > MAX_CONTEXTS {
                    return Err(PresentationError::TooMany(MAX_CONTEXTS, "contexts"));
                }
                if l.iter()
                    .any(|c| c.transfer_syntax_name_list.len() > MAX_TRANSFER_SYNTAXES)
                {
                    return Err(PresentationError::TooMany(
                        MAX_TRANSFER_SYNTAXES,
                        "transfer syntaxes",
                    ));
                }
            }
            check_user_data(&n.user_data)?;
        }
        Ok(cp)
    }

    /// The BER encoding.
    pub fn encode(&self) -> Vec<u8> {
        ber::encode(self)
    }
}

impl CpaPpdu {
    /// Decodes a CPA-PPDU filling all of `input` and checks the caps.
    ///
    /// # Errors
    /// As [`CpType::decode`].
    pub fn decode(input: &[u8]) -> Result<CpaPpdu, PresentationError> {
        let cpa: CpaPpdu = ber::decode(input)?;
        if let Some(x) = &cpa.x410_mode_parameters {
            x.check_open_types()?;
        }
        if let Some(n) = &cpa.normal_mode_parameters {
            check_selector(&n.responding_presentation_selector)?;
            check_results(&n.presentation_context_definition_result_list)?;
            check_user_data(&n.user_data)?;
        }
        Ok(cpa)
    }

    /// The BER encoding.
    pub fn encode(&self) -> Vec<u8> {
        ber::encode(self)
    }
}

impl CprPpdu {
    /// Decodes a CPR-PPDU filling all of `input` and checks the caps.
    ///
    /// # Errors
    /// As [`CpType::decode`].
    pub fn decode(input: &[u8]) -> Result<CprPpdu, PresentationError> {
        let cpr: CprPpdu = ber::decode(input)?;
        match &cpr {
            CprPpdu::NormalModeParameters(n) => {
                check_selector(&n.responding_presentation_selector)?;
                check_results(&n.presentation_context_definition_result_list)?;
                check_user_data(&n.user_data)?;
            }
            CprPpdu::X400ModeParameters(x) => x.check_open_types()?,
        }
        Ok(cpr)
    }

    /// The BER encoding.
    pub fn encode(&self) -> Vec<u8> {
        ber::encode(self)
    }
}

/// The presentation context and value of User-data in the form every P-DATA of a transfer
/// takes — fully-encoded data with one PDV list, no transfer-syntax-name, a single-ASN1-type
/// value (X.226 §8.4.2) — borrowed from `input`, without the general decoder's copies. None
/// for any other form, or for input the general decoder would refuse: decode it with
/// [`UserData::decode`], which takes every form and names the error.
pub fn single_value_of(input: &[u8]) -> Option<(i64, &[u8])> {
    let (list, []) = ber::take_definite(input, 0x61)? else {
        return None;
    };
    let (pdv, []) = ber::take_definite(list, 0x30)? else {
        return None;
    };
    ber::context_and_single_value(pdv)
}

/// The BER of [`UserData::single`]`(context, value)` where `value` is the concatenation of
/// `parts`, written into one buffer (a transfer's segments pass through here).
pub fn encode_single(context: i64, parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_single_into(&mut out, context, parts);
    out
}

/// [`encode_single`] appended to `out` (after a session header, say), room set aside first.
pub fn encode_single_into(out: &mut Vec<u8>, context: i64, parts: &[&[u8]]) {
    let vlen: usize = parts.iter().map(|p| p.len()).sum();
    let pdv = ber::context_and_single_value_head_len(context, vlen) + vlen;
    let list = 1 + ber::length_len(pdv) + pdv;
    out.reserve(1 + ber::length_len(list) + list);
    out.push(0x61);
    ber::push_length(out, list);
    out.push(0x30);
    ber::push_length(out, pdv);
    ber::push_context_and_single_value_head(out, context, vlen);
    for p in parts {
        out.extend_from_slice(p);
    }
}

impl UserData {
    /// Decodes User-data filling all of `input` (the user data of P-DATA, P-RELEASE,
    /// P-TOKEN-PLEASE...).
    ///
    /// # Errors
    /// [`PresentationError::Ber`], [`PresentationError::TooMany`].
    pub fn decode(input: &[u8]) -> Result<UserData, PresentationError> {
        let u: UserData = ber::decode(input)?;
        check_user_data(&Some(u.clone()))?;
        Ok(u)
    }

    /// The BER encoding.
    pub fn encode(&self) -> Vec<u8> {
        ber::encode(self)
    }

    /// Fully-encoded data with one PDV list holding `value` as single-ASN1-type in `context`.
    pub fn single(context: i64, value: Vec<u8>) -> UserData {
        UserData::FullyEncoded(vec![PdvList {
            transfer_syntax_name: None,
            presentation_context_identifier: context,
            presentation_data_values: PdvValues::SingleAsn1Type(Any::new(value)),
        }])
    }

    /// The (context, value) pairs of fully-encoded data whose values are single-ASN1-type or
    /// octet-aligned; simply-encoded data gives one pair with context 0.
    pub fn values(&self) -> Vec<(i64, &[u8])> {
        match self {
            UserData::SimplyEncoded(o) => vec![(0, &o[..])],
            UserData::FullyEncoded(l) => l
                .iter()
                .filter_map(|p| match &p.presentation_data_values {
                    PdvValues::SingleAsn1Type(a) => {
                        Some((p.presentation_context_identifier, a.as_bytes()))
                    }
                    PdvValues::OctetAligned(o) => Some((p.presentation_context_identifier, &o[..])),
                    PdvValues::Arbitrary(_) => None,
                })
                .collect(),
        }
    }
}

impl AbortPpdu {
    /// Decodes the user data of a session AB: an ARU-PPDU (normal mode \[0\], or an X.410-mode
    /// RTABapdu SET) or an ARP-PPDU (SEQUENCE).
    ///
    /// # Errors
    /// [`PresentationError::Ber`], [`PresentationError::TooMany`].
    pub fn decode(input: &[u8]) -> Result<AbortPpdu, PresentationError> {
        let h = ber::read_header(input)?;
        if (h.class, h.number) == (Class::Universal, 16) {
            return Ok(AbortPpdu::Arp(ber::decode(input)?));
        }
        let aru: AruPpdu = ber::decode(input)?;
        match &aru {
            AruPpdu::NormalModeParameters(n) => check_user_data(&n.user_data)?,
            AruPpdu::X400ModeParameters(x) => x.check_open_types()?,
        }
        Ok(AbortPpdu::Aru(aru))
    }

    /// The BER encoding.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            AbortPpdu::Aru(a) => ber::encode(a),
            AbortPpdu::Arp(a) => ber::encode(a),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn pp_cpr() {
        let b = hex(
            "3050a51b3007800100810251013007800100810251013007800100810251016131302f020101a02a6128a106060456000106a203020101a305a103020101be12281006025101020103a007b205a103020102",
        );
        let CprPpdu::NormalModeParameters(n) = CprPpdu::decode(&b).unwrap() else {
            panic!()
        };
        assert_eq!(
            n.presentation_context_definition_result_list
                .as_ref()
                .unwrap()
                .len(),
            3
        );
        let u = n.user_data.as_ref().unwrap();
        assert_eq!(u.values()[0].0, context::ACSE);
        assert_eq!(CprPpdu::NormalModeParameters(n).encode(), b);
    }

    #[test]
    fn abort_forms() {
        let aru = AbortPpdu::Aru(AruPpdu::NormalModeParameters(AruNormalMode {
            presentation_context_identifier_list: None,
            user_data: Some(UserData::single(1, vec![0x64, 0x03, 0x80, 0x01, 0x00])),
        }));
        let b = aru.encode();
        assert_eq!(b[0], 0xa0);
        assert_eq!(AbortPpdu::decode(&b).unwrap(), aru);
        let arp = AbortPpdu::Arp(ArpPpdu {
            provider_reason: Some(1),
            event_identifier: None,
        });
        assert_eq!(arp.encode(), [0x30, 0x03, 0x80, 0x01, 0x01]);
        assert_eq!(AbortPpdu::decode(&arp.encode()).unwrap(), arp);
    }

    #[test]
    fn caps() {
        let many = UserData::FullyEncoded(
            (0..9)
                .map(|_| PdvList {
                    transfer_syntax_name: None,
                    presentation_context_identifier: 1,
                    presentation_data_values: PdvValues::OctetAligned(OctetString::from(vec![])),
                })
                .collect(),
        );
        let e = UserData::decode(&many.encode()).unwrap_err();
        assert_eq!(e, PresentationError::TooMany(MAX_PDVS, "pdv lists"));
        assert_eq!(
            e.reaction(),
            Reaction::PresentationAbort { provider_reason: 6 }
        );
    }
}
