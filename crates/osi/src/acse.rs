//! Association control (X.227 §7 / ISO 8650-1): AARQ, AARE, RLRQ, RLRE, ABRT, and the
//! EXTERNAL that carries user information.
//!
//! ```asn1
//! ACSE-apdu ::= CHOICE { aarq AARQ-apdu, aare AARE-apdu, rlrq RLRQ-apdu, rlre RLRE-apdu,
//!   abrt ABRT-apdu }
//! AARQ-apdu ::= [APPLICATION 0] IMPLICIT SEQUENCE {
//!   protocol-version [0] IMPLICIT BIT STRING { version1(0) } DEFAULT { version1 },
//!   application-context-name [1] OBJECT IDENTIFIER,
//!   called-AP-title [2] AP-title OPTIONAL, called-AE-qualifier [3] AE-qualifier OPTIONAL,
//!   called-AP-invocation-identifier [4] .. OPTIONAL, called-AE-invocation-identifier [5] ..,
//!   calling-AP-title [6] .., calling-AE-qualifier [7] .., calling-AP-invocation-identifier
//!   [8] .., calling-AE-invocation-identifier [9] .., sender-acse-requirements [10] IMPLICIT ..,
//!   mechanism-name [11] IMPLICIT .., calling-authentication-value [12] EXPLICIT ..,
//!   application-context-name-list [13] IMPLICIT .., implementation-information [29] ..,
//!   user-information [30] IMPLICIT SEQUENCE OF EXTERNAL OPTIONAL }
//! AARE-apdu ::= [APPLICATION 1] IMPLICIT SEQUENCE { protocol-version [0] .., application-
//!   context-name [1] .., result [2] INTEGER { accepted(0), rejected-permanent(1),
//!   rejected-transient(2) }, result-source-diagnostic [3] CHOICE { acse-service-user [1]
//!   INTEGER, acse-service-provider [2] INTEGER }, responding-AP-title [4] .. … [10],
//!   application-context-name-list [11] .., implementation-information [29] ..,
//!   user-information [30] .. }
//! RLRQ-apdu ::= [APPLICATION 2] IMPLICIT SEQUENCE { reason [0] IMPLICIT INTEGER OPTIONAL,
//!   user-information [30] IMPLICIT .. OPTIONAL }
//! RLRE-apdu ::= [APPLICATION 3] IMPLICIT SEQUENCE { reason [0] .., user-information [30] .. }
//! ABRT-apdu ::= [APPLICATION 4] IMPLICIT SEQUENCE { abort-source [0] IMPLICIT INTEGER
//!   { acse-service-user(0), acse-service-provider(1) }, abort-diagnostic [1] IMPLICIT ..
//!   OPTIONAL, user-information [30] IMPLICIT .. OPTIONAL }
//! EXTERNAL ::= [UNIVERSAL 8] IMPLICIT SEQUENCE { direct-reference OBJECT IDENTIFIER
//!   OPTIONAL, indirect-reference INTEGER OPTIONAL, data-value-descriptor ObjectDescriptor
//!   OPTIONAL, encoding CHOICE { single-ASN1-type [0] ANY, octet-aligned [1] IMPLICIT OCTET
//!   STRING, arbitrary [2] IMPLICIT BIT STRING } }
//! ```
//! AP-titles and AE-qualifiers are kept as their BER (form 2: an OBJECT IDENTIFIER and an
//! INTEGER; form 1: a directory name).

use rasn::prelude::*;

use crate::Reaction;
use crate::ber::{self, BerError};

/// Largest number of EXTERNALs accepted in user-information.
pub const MAX_EXTERNALS: usize = 8;

/// id-ac-mts-transfer, the MTA application context (X.411 §A).
pub const ID_AC_MTS_TRANSFER: &[u32] = &[2, 6, 0, 1, 6];

/// AARE result values (X.227 §7.1.4.3).
pub mod result {
    /// Accepted.
    pub const ACCEPTED: i64 = 0;
    /// Rejected (permanent).
    pub const REJECTED_PERMANENT: i64 = 1;
    /// Rejected (transient).
    pub const REJECTED_TRANSIENT: i64 = 2;
}

/// acse-service-user diagnostics (X.227 §7.1.4.4).
pub mod user_diagnostic {
    /// Null.
    pub const NULL: i64 = 0;
    /// No reason given.
    pub const NO_REASON_GIVEN: i64 = 1;
    /// Application context name not supported.
    pub const APPLICATION_CONTEXT_NOT_SUPPORTED: i64 = 2;
}

/// ABRT abort-source values.
pub mod abort_source {
    /// ACSE service user.
    pub const SERVICE_USER: i64 = 0;
    /// ACSE service provider.
    pub const SERVICE_PROVIDER: i64 = 1;
}

fn version1() -> BitString {
    let mut b = BitString::new();
    b.push(true);
    b
}

/// An ACSE APDU.
#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq, Eq)]
#[rasn(choice)]
pub enum AcseApdu {
    /// A-ASSOCIATE request.
    Aarq(Aarq),
    /// A-ASSOCIATE response.
    Aare(Aare),
    /// A-RELEASE request.
    Rlrq(Rlrq),
    /// A-RELEASE response.
    Rlre(Rlre),
    /// A-ABORT.
    Abrt(Abrt),
}

/// AARQ-apdu (X.227 §7.1.4.1).
#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq, Eq)]
#[rasn(tag(application, 0))]
pub struct Aarq {
    /// protocol-version (default version1).
    #[rasn(tag(context, 0), default = "version1")]
    pub protocol_version: BitString,
    /// application-context-name.
    #[rasn(tag(explicit(context, 1)))]
    pub application_context_name: ObjectIdentifier,
    /// called-AP-title (BER of the AP-title).
    #[rasn(tag(explicit(context, 2)))]
    pub called_ap_title: Option<Any>,
    /// called-AE-qualifier (BER).
    #[rasn(tag(explicit(context, 3)))]
    pub called_ae_qualifier: Option<Any>,
    /// called-AP-invocation-identifier.
    #[rasn(tag(explicit(context, 4)))]
    pub called_ap_invocation_id: Option<i64>,
    /// called-AE-invocation-identifier.
    #[rasn(tag(explicit(context, 5)))]
    pub called_ae_invocation_id: Option<i64>,
    /// calling-AP-title (BER of the AP-title).
    #[rasn(tag(explicit(context, 6)))]
    pub calling_ap_title: Option<Any>,
    /// calling-AE-qualifier (BER).
    #[rasn(tag(explicit(context, 7)))]
    pub calling_ae_qualifier: Option<Any>,
    /// calling-AP-invocation-identifier.
    #[rasn(tag(explicit(context, 8)))]
    pub calling_ap_invocation_id: Option<i64>,
    /// calling-AE-invocation-identifier.
    #[rasn(tag(explicit(context, 9)))]
    pub calling_ae_invocation_id: Option<i64>,
    /// sender-acse-requirements.
    #[rasn(tag(context, 10))]
    pub sender_acse_requirements: Option<BitString>,
    /// mechanism-name.
    #[rasn(tag(context, 11))]
    pub mechanism_name: Option<ObjectIdentifier>,
    /// calling-authentication-value (BER).
    #[rasn(tag(explicit(context, 12)))]
    pub calling_authentication_value: Option<Any>,
    /// application-context-name-list.
    #[rasn(tag(context, 13))]
    pub application_context_name_list: Option<Vec<ObjectIdentifier>>,
    /// implementation-information (GraphicString octets).
    #[rasn(tag(context, 29))]
    pub implementation_information: Option<OctetString>,
    /// user-information.
    #[rasn(tag(context, 30))]
    pub user_information: Option<Vec<External>>,
}

/// AARE-apdu (X.227 §7.1.4.2).
#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq, Eq)]
#[rasn(tag(application, 1))]
pub struct Aare {
    /// protocol-version (default version1).
    #[rasn(tag(context, 0), default = "version1")]
    pub protocol_version: BitString,
    /// application-context-name.
    #[rasn(tag(explicit(context, 1)))]
    pub application_context_name: ObjectIdentifier,
    /// result, see [`result`].
    #[rasn(tag(explicit(context, 2)))]
    pub result: i64,
    /// result-source-diagnostic.
    #[rasn(tag(explicit(context, 3)))]
    pub result_source_diagnostic: SourceDiagnostic,
    /// responding-AP-title (BER).
    #[rasn(tag(explicit(context, 4)))]
    pub responding_ap_title: Option<Any>,
    /// responding-AE-qualifier (BER).
    #[rasn(tag(explicit(context, 5)))]
    pub responding_ae_qualifier: Option<Any>,
    /// responding-AP-invocation-identifier.
    #[rasn(tag(explicit(context, 6)))]
    pub responding_ap_invocation_id: Option<i64>,
    /// responding-AE-invocation-identifier.
    #[rasn(tag(explicit(context, 7)))]
    pub responding_ae_invocation_id: Option<i64>,
    /// responder-acse-requirements.
    #[rasn(tag(context, 8))]
    pub responder_acse_requirements: Option<BitString>,
    /// mechanism-name.
    #[rasn(tag(context, 9))]
    pub mechanism_name: Option<ObjectIdentifier>,
    /// responding-authentication-value (BER).
    #[rasn(tag(explicit(context, 10)))]
    pub responding_authentication_value: Option<Any>,
    /// application-context-name-list.
    #[rasn(tag(context, 11))]
    pub application_context_name_list: Option<Vec<ObjectIdentifier>>,
    /// implementation-information.
    #[rasn(tag(context, 29))]
    pub implementation_information: Option<OctetString>,
    /// user-information.
    #[rasn(tag(context, 30))]
    pub user_information: Option<Vec<External>>,
}

/// Associate-source-diagnostic (X.227 §7.1.4.4).
#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq, Eq)]
#[rasn(choice)]
pub enum SourceDiagnostic {
    /// acse-service-user, see [`user_diagnostic`].
    #[rasn(tag(explicit(context, 1)))]
    ServiceUser(i64),
    /// acse-service-provider (0 null, 1 no reason given, 2 no common acse version).
    #[rasn(tag(explicit(context, 2)))]
    ServiceProvider(i64),
}

/// RLRQ-apdu (X.227 §7.2.3.1).
#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq, Eq)]
#[rasn(tag(application, 2))]
pub struct Rlrq {
    /// reason: 0 normal, 1 urgent, 30 user-defined.
    #[rasn(tag(context, 0))]
    pub reason: Option<i64>,
    /// user-information.
    #[rasn(tag(context, 30))]
    pub user_information: Option<Vec<External>>,
}

/// RLRE-apdu (X.227 §7.2.3.2).
#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq, Eq)]
#[rasn(tag(application, 3))]
pub struct Rlre {
    /// reason: 0 normal, 1 not-finished, 30 user-defined.
    #[rasn(tag(context, 0))]
    pub reason: Option<i64>,
    /// user-information.
    #[rasn(tag(context, 30))]
    pub user_information: Option<Vec<External>>,
}

/// ABRT-apdu (X.227 §7.3.3.1).
#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq, Eq)]
#[rasn(tag(application, 4))]
pub struct Abrt {
    /// abort-source, see [`abort_source`].
    #[rasn(tag(context, 0))]
    pub abort_source: i64,
    /// abort-diagnostic.
    #[rasn(tag(context, 1))]
    pub abort_diagnostic: Option<i64>,
    /// user-information.
    #[rasn(tag(context, 30))]
    pub user_information: Option<Vec<External>>,
}

/// EXTERNAL (X.208 §34, the 1988 form ACSE uses).
#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq, Eq)]
#[rasn(tag(universal, 8))]
pub struct External {
    /// direct-reference: the transfer syntax (2.1.1 for BER).
    pub direct_reference: Option<ObjectIdentifier>,
    /// indirect-reference: the presentation context identifier.
    pub indirect_reference: Option<i64>,
    /// data-value-descriptor (ObjectDescriptor octets).
    #[rasn(tag(universal, 7))]
    pub data_value_descriptor: Option<OctetString>,
    /// encoding.
    pub encoding: ExternalEncoding,
}

/// The encoding CHOICE of EXTERNAL.
#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq, Eq)]
#[rasn(choice)]
pub enum ExternalEncoding {
    /// single-ASN1-type \[0\]: one BER value.
    #[rasn(tag(explicit(context, 0)))]
    SingleAsn1Type(Any),
    /// octet-aligned \[1\].
    #[rasn(tag(context, 1))]
    OctetAligned(OctetString),
    /// arbitrary \[2\].
    #[rasn(tag(context, 2))]
    Arbitrary(BitString),
}

impl External {
    /// EXTERNAL { [direct-reference,] indirect-reference `context`, single-ASN1-type `value` }.
    pub fn single(
        direct_reference: Option<ObjectIdentifier>,
        context: i64,
        value: Vec<u8>,
    ) -> External {
        External {
            direct_reference,
            indirect_reference: Some(context),
            data_value_descriptor: None,
            encoding: ExternalEncoding::SingleAsn1Type(Any::new(value)),
        }
    }

    /// The single-ASN1-type or octet-aligned value, if the encoding is either.
    pub fn value(&self) -> Option<&[u8]> {
        match &self.encoding {
            ExternalEncoding::SingleAsn1Type(a) => Some(a.as_bytes()),
            ExternalEncoding::OctetAligned(o) => Some(o),
            ExternalEncoding::Arbitrary(_) => None,
        }
    }

    /// Decodes an EXTERNAL filling all of `input`; a single-ASN1-type value must be one
    /// well-formed BER value.
    ///
    /// # Errors
    /// [`AcseError::Ber`].
    pub fn decode(input: &[u8]) -> Result<External, AcseError> {
        let e: External = ber::decode(input)?;
        e.check_open_types()?;
        Ok(e)
    }

    pub(crate) fn check_open_types(&self) -> Result<(), BerError> {
        match &self.encoding {
            ExternalEncoding::SingleAsn1Type(a) => ber::check_one(a.as_bytes()),
            _ => Ok(()),
        }
    }

    /// The BER encoding.
    pub fn encode(&self) -> Vec<u8> {
        ber::encode(self)
    }
}

/// The presentation context (indirect-reference) and single-ASN1-type value of an EXTERNAL
/// with neither direct-reference nor data-value-descriptor — the form a transferred APDU
/// takes (X.228 §10.1) — borrowed from `input`. None for any other form, or for input
/// [`External::decode`] would refuse: decode it with that, which takes every form.
pub fn single_external_of(input: &[u8]) -> Option<(i64, &[u8])> {
    match ber::take_definite(input, 0x28)? {
        (ext, []) => ber::context_and_single_value(ext),
        _ => None,
    }
}

/// The BER of [`External::single`]`(None, context, value)`, written into one buffer.
pub fn encode_single_external(context: i64, value: &[u8]) -> Vec<u8> {
    let inner = ber::context_and_single_value_head_len(context, value.len()) + value.len();
    let mut out = Vec::with_capacity(1 + ber::length_len(inner) + inner);
    out.push(0x28);
    ber::push_length(&mut out, inner);
    ber::push_context_and_single_value_head(&mut out, context, value.len());
    out.extend_from_slice(value);
    out
}

/// X.227 errors. Reaction: an ABRT from the ACSE provider.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcseError {
    /// Not well-formed BER, or not an ACSE APDU.
    #[error("malformed acse apdu: {0}")]
    Ber(#[from] BerError),
    /// More than [`MAX_EXTERNALS`] EXTERNALs of user information.
    #[error("more than {MAX_EXTERNALS} user-information items")]
    TooManyExternals,
    /// An ACSE APDU where another was expected (an AARE in a CP-type...).
    #[error("unexpected {0}")]
    Unexpected(&'static str),
}

impl AcseError {
    /// The wire reaction: [`Reaction::AcseAbort`].
    pub fn reaction(&self) -> Reaction {
        Reaction::AcseAbort
    }
}

impl AcseApdu {
    /// Decodes one ACSE APDU filling all of `input`, checking the user-information cap and
    /// that every open value (AP-titles, AE-qualifiers, authentication values, EXTERNAL
    /// single-ASN1-type) is one well-formed BER value.
    ///
    /// # Errors
    /// [`AcseError::Ber`], [`AcseError::TooManyExternals`].
    pub fn decode(input: &[u8]) -> Result<AcseApdu, AcseError> {
        let apdu: AcseApdu = ber::decode(input)?;
        if apdu.user_information().len() > MAX_EXTERNALS {
            return Err(AcseError::TooManyExternals);
        }
        for e in apdu.user_information() {
            e.check_open_types()?;
        }
        match &apdu {
            AcseApdu::Aarq(a) => {
                for v in [
                    &a.called_ap_title,
                    &a.called_ae_qualifier,
                    &a.calling_ap_title,
                    &a.calling_ae_qualifier,
                    &a.calling_authentication_value,
                ] {
                    ber::check_opt(v)?;
                }
            }
            AcseApdu::Aare(a) => {
                for v in [
                    &a.responding_ap_title,
                    &a.responding_ae_qualifier,
                    &a.responding_authentication_value,
                ] {
                    ber::check_opt(v)?;
                }
            }
            _ => {}
        }
        Ok(apdu)
    }

    /// The BER encoding.
    pub fn encode(&self) -> Vec<u8> {
        ber::encode(self)
    }

    /// The standard name.
    pub fn name(&self) -> &'static str {
        match self {
            AcseApdu::Aarq(_) => "AARQ",
            AcseApdu::Aare(_) => "AARE",
            AcseApdu::Rlrq(_) => "RLRQ",
            AcseApdu::Rlre(_) => "RLRE",
            AcseApdu::Abrt(_) => "ABRT",
        }
    }

    /// The user-information EXTERNALs (empty if absent).
    pub fn user_information(&self) -> &[External] {
        let u = match self {
            AcseApdu::Aarq(a) => &a.user_information,
            AcseApdu::Aare(a) => &a.user_information,
            AcseApdu::Rlrq(a) => &a.user_information,
            AcseApdu::Rlre(a) => &a.user_information,
            AcseApdu::Abrt(a) => &a.user_information,
        };
        u.as_deref().unwrap_or(&[])
    }
}

impl Aarq {
    /// An AARQ with this application context and nothing else.
    pub fn new(application_context_name: ObjectIdentifier) -> Aarq {
        Aarq {
            protocol_version: version1(),
            application_context_name,
            called_ap_title: None,
            called_ae_qualifier: None,
            called_ap_invocation_id: None,
            called_ae_invocation_id: None,
            calling_ap_title: None,
            calling_ae_qualifier: None,
            calling_ap_invocation_id: None,
            calling_ae_invocation_id: None,
            sender_acse_requirements: None,
            mechanism_name: None,
            calling_authentication_value: None,
            application_context_name_list: None,
            implementation_information: None,
            user_information: None,
        }
    }
}

impl Aare {
    /// An AARE with this context, result and diagnostic and nothing else.
    pub fn new(
        application_context_name: ObjectIdentifier,
        result: i64,
        diagnostic: SourceDiagnostic,
    ) -> Aare {
        Aare {
            protocol_version: version1(),
            application_context_name,
            result,
            result_source_diagnostic: diagnostic,
            responding_ap_title: None,
            responding_ae_qualifier: None,
            responding_ap_invocation_id: None,
            responding_ae_invocation_id: None,
            responder_acse_requirements: None,
            mechanism_name: None,
            responding_authentication_value: None,
            application_context_name_list: None,
            implementation_information: None,
            user_information: None,
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
    fn pp_refusal_aare() {
        let b = hex(
            "6128a106060456000106a203020101a305a103020101be12281006025101020103a007b205a103020102",
        );
        let AcseApdu::Aare(a) = AcseApdu::decode(&b).unwrap() else {
            panic!()
        };
        assert_eq!(a.application_context_name.to_vec(), ID_AC_MTS_TRANSFER);
        assert_eq!(a.result, result::REJECTED_PERMANENT);
        assert_eq!(a.result_source_diagnostic, SourceDiagnostic::ServiceUser(1));
        let ext = &a.user_information.as_ref().unwrap()[0];
        assert_eq!(ext.indirect_reference, Some(3));
        assert_eq!(ext.value().unwrap(), &hex("b205a103020102")[..]);
        assert_eq!(AcseApdu::Aare(a).encode(), b);
    }

    #[test]
    fn release_pair() {
        let rq = AcseApdu::decode(&[0x62, 0x03, 0x80, 0x01, 0x00]).unwrap();
        assert_eq!(
            rq,
            AcseApdu::Rlrq(Rlrq {
                reason: Some(0),
                user_information: None
            })
        );
        let re = AcseApdu::decode(&[0x63, 0x03, 0x80, 0x01, 0x00]).unwrap();
        assert_eq!(re.name(), "RLRE");
        assert!(AcseApdu::decode(&[0x65, 0x00]).is_err());
    }
}
