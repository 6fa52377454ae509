//! X.411 P1 for mtalab: what two X.400 MTAs say to each other once RTSE has opened an
//! association (DESIGN §4), plus the O/R addresses and the minimal X.420 content they carry.
//!
//! Sans-IO and clock-free: values in, octets out and back; times are passed in by the
//! caller as [`Time`].
//!
//! | area | types | entry points | clause |
//! |---|---|---|---|
//! | MTA bind | [`MtaBindArgument`], [`MtaBindResult`], [`MtaBindError`], [`BindPdu`], [`Credentials`], [`Password`] | `encode`/`decode` (bare value), `encode_ro_tagged`/`decode_ro` (with the RO bind tags `[16]` `[17]` `[18]`) | X.411 §12.1 |
//! | transfer | [`MtsApdu`] = [`Message`] / [`Report`] / [`ProbeTransferEnvelope`] | [`MtsApdu::encode`]`(Conformance)`, [`MtsApdu::decode`], [`MtsApdu::encode_external`], [`MtsApdu::decode_external`] | X.411 §12.2 |
//! | envelope | [`MessageTransferEnvelope`], [`PerRecipientFields`], [`TraceInformationElement`], [`InternalTraceInformationElement`], [`ExtensionField`], [`Conformance`] | [`MessageTransferEnvelope::new`] | X.411 §12.2.1.1, §9 |
//! | reports | [`Report`], [`ReportType`], [`NonDeliveryReasonCode`], [`NonDeliveryDiagnosticCode`] | [`Report::generate`] | X.411 §12.2.1.3 |
//! | addresses | [`OrName`], [`OrAddress`], [`GlobalDomainIdentifier`], [`MtsIdentifier`], [`MtaName`] | [`OrAddress::parse_mnemonic`], [`OrAddress::to_mnemonic`], [`OrAddress::encode_ber`], [`OrAddress::decode_ber`], same on [`OrName`] | X.402 §18, X.411 §12.2 |
//! | content | [`Ipm`], [`Heading`], [`BodyPart`], [`OrNameMemo`] | [`Ipm::text`], [`Ipm::encode`], [`Ipm::decode`], [`Ipm::decode_with`] (the heading's names from the envelope's, [`MtsApdu::decode_vec_noting`]) | X.420 §7 |
//!
//! Wire facts this crate keeps (DESIGN §4):
//! - the bind PDUs carry `[16]`/`[17]`/`[18]` inside RTORQ/RTOAC/RTORJ; a bind error without
//!   `[18]` (PP) decodes, `[18]` is always sent;
//! - responder credentials may be an OCTET STRING password (PP);
//! - BER indefinite lengths and constructed strings decode (PP's relayed MTS-APDU uses both);
//! - an extension's type decodes in both the 1988 explicit form (`a0 03 02 01 26`) and the
//!   implicit form (`80 01 26`); [`Conformance`] chooses what goes out, or leaves
//!   extensions out;
//! - unknown O/R extension attributes, directory names, heading fields and body parts are
//!   kept as octets and written back unchanged.
//!
//! Caps on lengths, nesting and counts are in [`limits`]; every decoder enforces them.
//! There is one error type, [`Error`].
//!
//! ```
//! use mtalab_p1::chrono::{TimeZone, Utc};
//! use mtalab_p1::*;
//!
//! let from = OrName::parse_mnemonic("c=US;a= ;p=ExchangeORG;o=SiteA;s=Smith;g=John")?;
//! let to = OrName::parse_mnemonic("c=US;a= ;p=ExchangeORG;o=SiteB;s=Doe;g=Jane")?;
//! let domain = GlobalDomainIdentifier::parse_mnemonic("c=US;a= ;p=ExchangeORG")?;
//! let now = Utc.with_ymd_and_hms(1999, 12, 31, 23, 59, 59).unwrap();
//! let id = MtsIdentifier { global_domain_identifier: domain.clone(), local_identifier: "SITEA/0012".into() };
//! let ipm = Ipm::text(IpmIdentifier::default(), from.clone(), vec![to.clone()], vec![], "Hello", "Hi\r\n");
//! let envelope = MessageTransferEnvelope::new(id, from, vec![to], TraceInformationElement::relayed(domain, now));
//! let apdu = MtsApdu::Message(Message { envelope, content: ipm.encode()? });
//!
//! let wire = apdu.encode(Conformance::Explicit1988)?;
//! let MtsApdu::Message(back) = MtsApdu::decode(&wire)? else { unreachable!() };
//! assert_eq!(Ipm::decode(&back.content)?.heading.subject.as_deref(), Some("Hello"));
//!
//! let bind = MtaBindArgument::simple("EXCH1", "secret").encode_ro_tagged()?;
//! assert_eq!(BindPdu::decode_ro(&bind)?, BindPdu::Argument(MtaBindArgument::simple("EXCH1", "secret")));
//! # Ok::<(), Error>(())
//! ```

#![forbid(unsafe_code)]

pub mod address;
pub mod apdu;
pub mod ber;
pub mod bind;
pub mod envelope;
pub mod error;
pub mod ipm;
pub mod limits;
pub mod mnemonic;

pub use address::{
    CountryName, DomainDefinedAttribute, DomainName, ExtensionAttribute, GlobalDomainIdentifier,
    MtaName, MtsIdentifier, OrAddress, OrName, OrNameMemo, PersonalName,
};
pub use apdu::{
    LastTraceInformation, Message, MtsApdu, NonDeliveryDiagnosticCode, NonDeliveryReasonCode,
    PerRecipientReportFields, ProbeTransferEnvelope, RecipientOutcome, Report,
    ReportTransferContent, ReportTransferEnvelope, ReportType, TypeOfMtsUser,
};
pub use ber::{BitString, Oid, Time};
pub use bind::{BindPdu, Credentials, MtaBindArgument, MtaBindError, MtaBindResult, Password};
pub use chrono;
pub use compact_str::{self, CompactString};
pub use envelope::{
    AdditionalActions, Attempted, Conformance, ContentType, DomainSuppliedInformation,
    EncodedInformationTypes, ExtensionField, ExtensionType, ExtensionValue,
    InternalTraceInformationElement, MessageTransferEnvelope, MtaSuppliedInformation,
    PerMessageIndicators, PerRecipientFields, PerRecipientIndicators, Priority, RoutingAction,
    TraceInformationElement,
};
pub use error::{Error, Result};
pub use ipm::{
    BodyPart, Heading, Ipm, IpmIdentifier, OrDescriptor, RecipientSpecifier, Repertoire,
};
pub use mnemonic::{escape_printable, unescape_printable};
