//! Session protocol, version 2 (X.225 / ISO 8327-1 §8), the subset an RTSE in normal mode
//! uses: CN/AC/RF/FN/DN/AB/AA, DT with given-tokens concatenation, GT/PT/GTC/GTA, activity
//! management AS/AE/AEA (and AI/AIA/AD/ADA), minor synchronization MIP/MIA, exceptions ER/ED.
//!
//! An SPDU is an SI octet (the [`SpduCode`]), a length indicator and parameters
//! (X.225 §8.2.1–8.2.5):
//!
//! ```text
//! SI | LI | PGI or PI units...              LI, and each unit's length, is one octet
//!                                          (0..=254) or FF followed by two (255..=65535)
//! PI unit:  PI code | length | value
//! PGI unit: PGI code | length | PI units...
//! ```
//! A TSDU holds one category 1 SPDU (CN, AC, RF, FN, DN, AB, AA, GTC, GTA...) alone, or a
//! category 0 SPDU (GT or PT) alone, or a category 0 SPDU followed by one category 2 SPDU
//! (DT, AS, AE, AEA, MIP, MIA, AI...) — basic concatenation, X.225 §6.3.7. The SI values of
//! GT and DT (1), AB and AI (25), AA and AIA (26), AE and MAP (41), AEA and MAA (42) are
//! shared and told apart by their position; the DT's user information is the rest of the
//! TSDU after its parameters.
//!
//! [`Spdu`] is one SPDU with all the parameters X.225 defines for the SPDUs above gathered in
//! [`Params`]; which of them an SPDU carries follows from its code (X.225 §8.3). Unknown
//! parameters are kept in [`Params::other`] so they survive a round trip.

use std::fmt;

use crate::Reaction;

/// Maximum number of SPDUs in one TSDU (basic concatenation needs 2).
pub const MAX_SPDUS_PER_TSDU: usize = 2;
/// Maximum number of parameter units in one SPDU or PGI.
pub const MAX_PARAMS: usize = 32;
/// Maximum length of a session selector (X.225 §8.3.1.12: 16 octets).
pub const MAX_SSAP_LEN: usize = 16;
/// Maximum length of an SS-user reference or common reference (X.225 §8.3.1.4: 64 octets).
pub const MAX_REFERENCE_LEN: usize = 64;
/// Maximum length of an activity identifier (X.225 §8.3.29.4: 6 octets).
pub const MAX_ACTIVITY_ID_LEN: usize = 6;
/// Largest serial number (X.225 §8.3.33.3: 0..=999999, up to six IA5 digits).
pub const MAX_SERIAL: u32 = 999_999;
/// User data a CN may carry in PI 193 (X.225 §8.3.1.17); more goes in extended user data.
pub const MAX_CN_USER_DATA_PI193: usize = 512;
/// User data a CN may carry at all, in extended user data PI 194 (X.225 §8.3.1.18).
pub const MAX_CN_USER_DATA: usize = 10240;
/// Largest value of one parameter, and of an SPDU's parameter field (three-octet LI).
pub const MAX_PARAM_LEN: usize = 65535;

/// An SPDU identifier (SI), X.225 §8.3 table 4. Codes shared by two SPDUs have one const per
/// name; [`SpduCode::name`] tells them apart by position. Unknown values are kept and print
/// in hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpduCode(pub u8);

impl SpduCode {
    /// Exception report.
    pub const ER: SpduCode = SpduCode(0);
    /// Data transfer (category 2).
    pub const DT: SpduCode = SpduCode(1);
    /// Give tokens (category 0).
    pub const GT: SpduCode = SpduCode(1);
    /// Please tokens (category 0).
    pub const PT: SpduCode = SpduCode(2);
    /// Expedited data.
    pub const EX: SpduCode = SpduCode(5);
    /// Prepare.
    pub const PR: SpduCode = SpduCode(7);
    /// Not finished.
    pub const NF: SpduCode = SpduCode(8);
    /// Finish.
    pub const FN: SpduCode = SpduCode(9);
    /// Disconnect.
    pub const DN: SpduCode = SpduCode(10);
    /// Refuse.
    pub const RF: SpduCode = SpduCode(12);
    /// Connect.
    pub const CN: SpduCode = SpduCode(13);
    /// Accept.
    pub const AC: SpduCode = SpduCode(14);
    /// Give tokens confirm.
    pub const GTC: SpduCode = SpduCode(21);
    /// Give tokens ack.
    pub const GTA: SpduCode = SpduCode(22);
    /// Abort (category 1).
    pub const AB: SpduCode = SpduCode(25);
    /// Activity interrupt (category 2).
    pub const AI: SpduCode = SpduCode(25);
    /// Abort accept (category 1).
    pub const AA: SpduCode = SpduCode(26);
    /// Activity interrupt ack (category 2).
    pub const AIA: SpduCode = SpduCode(26);
    /// Activity resume.
    pub const AR: SpduCode = SpduCode(29);
    /// Typed data.
    pub const TD: SpduCode = SpduCode(33);
    /// Resynchronize ack.
    pub const RA: SpduCode = SpduCode(34);
    /// Activity end (shares its SI with major sync point).
    pub const AE: SpduCode = SpduCode(41);
    /// Major sync point.
    pub const MAP: SpduCode = SpduCode(41);
    /// Activity end ack (shares its SI with major sync ack).
    pub const AEA: SpduCode = SpduCode(42);
    /// Major sync ack.
    pub const MAA: SpduCode = SpduCode(42);
    /// Activity start.
    pub const AS: SpduCode = SpduCode(45);
    /// Exception data.
    pub const ED: SpduCode = SpduCode(48);
    /// Minor sync point.
    pub const MIP: SpduCode = SpduCode(49);
    /// Minor sync ack.
    pub const MIA: SpduCode = SpduCode(50);
    /// Resynchronize.
    pub const RS: SpduCode = SpduCode(53);
    /// Activity discard.
    pub const AD: SpduCode = SpduCode(57);
    /// Activity discard ack.
    pub const ADA: SpduCode = SpduCode(58);
    /// Capability data.
    pub const CD: SpduCode = SpduCode(61);
    /// Capability data ack.
    pub const CDA: SpduCode = SpduCode(62);

    /// The standard name of this SI in a TSDU position: `category2` for an SPDU that follows
    /// a GT/PT, false for one that stands first. Codes shared by an activity and a
    /// major-sync SPDU are named after the activity one (this stack negotiates activity
    /// management and never major synchronization).
    pub fn name(self, category2: bool) -> Option<&'static str> {
        Some(match (self.0, category2) {
            (0, _) => "ER",
            (1, false) => "GT",
            (1, true) => "DT",
            (2, _) => "PT",
            (5, _) => "EX",
            (7, _) => "PR",
            (8, _) => "NF",
            (9, _) => "FN",
            (10, _) => "DN",
            (12, _) => "RF",
            (13, _) => "CN",
            (14, _) => "AC",
            (21, _) => "GTC",
            (22, _) => "GTA",
            (25, false) => "AB",
            (25, true) => "AI",
            (26, false) => "AA",
            (26, true) => "AIA",
            (29, _) => "AR",
            (33, _) => "TD",
            (34, _) => "RA",
            (41, _) => "AE",
            (42, _) => "AEA",
            (45, _) => "AS",
            (48, _) => "ED",
            (49, _) => "MIP",
            (50, _) => "MIA",
            (53, _) => "RS",
            (57, _) => "AD",
            (58, _) => "ADA",
            (61, _) => "CD",
            (62, _) => "CDA",
            _ => return None,
        })
    }

    /// Whether this SI is a category 0 SPDU when first in a TSDU (GT, PT).
    pub fn is_category0(self) -> bool {
        self.0 == 1 || self.0 == 2
    }
}

impl fmt::Debug for SpduCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpduCode({} {:#04x})", self.0, self.0)
    }
}

impl fmt::Display for SpduCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "spdu {} ({:#04x})", self.0, self.0)
    }
}

/// A PI or PGI code (X.225 §8.3, table 5). Unknown codes are kept.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ParamCode(pub u8);

impl ParamCode {
    /// PGI Connection Identifier (CN, AC, RF, AR).
    pub const CONNECTION_ID: ParamCode = ParamCode(1);
    /// PGI Connect/Accept Item (CN, AC).
    pub const CONNECT_ACCEPT_ITEM: ParamCode = ParamCode(5);
    /// PI Called SS-user Reference (in Connection Identifier).
    pub const CALLED_SS_USER_REF: ParamCode = ParamCode(9);
    /// PI Calling SS-user Reference (in Connection Identifier).
    pub const CALLING_SS_USER_REF: ParamCode = ParamCode(10);
    /// PI Common Reference (in Connection Identifier).
    pub const COMMON_REF: ParamCode = ParamCode(11);
    /// PI Additional Reference Information (in Connection Identifier).
    pub const ADDITIONAL_REF: ParamCode = ParamCode(12);
    /// PI Sync Type Item (MIP).
    pub const SYNC_TYPE_ITEM: ParamCode = ParamCode(15);
    /// PI Token Item (AC, GT, PT).
    pub const TOKEN_ITEM: ParamCode = ParamCode(16);
    /// PI Transport Disconnect (RF, FN, AB).
    pub const TRANSPORT_DISCONNECT: ParamCode = ParamCode(17);
    /// PI Protocol Options (in Connect/Accept Item).
    pub const PROTOCOL_OPTIONS: ParamCode = ParamCode(19);
    /// PI Session User Requirements (CN, AC, RF).
    pub const SESSION_REQUIREMENTS: ParamCode = ParamCode(20);
    /// PI TSDU Maximum Size (in Connect/Accept Item).
    pub const TSDU_MAX_SIZE: ParamCode = ParamCode(21);
    /// PI Version Number (in Connect/Accept Item; RF).
    pub const VERSION_NUMBER: ParamCode = ParamCode(22);
    /// PI Initial Serial Number (in Connect/Accept Item).
    pub const INITIAL_SERIAL: ParamCode = ParamCode(23);
    /// PI Enclosure Item (segmenting).
    pub const ENCLOSURE_ITEM: ParamCode = ParamCode(25);
    /// PI Token Setting Item (in Connect/Accept Item).
    pub const TOKEN_SETTING_ITEM: ParamCode = ParamCode(26);
    /// PGI Linking Information (AR): the interrupted activity's session connection and its
    /// Activity Identifier (X.225 §8.3.29).
    pub const LINKING_INFORMATION: ParamCode = ParamCode(33);
    /// PI Activity Identifier (AS, AR; in Linking Information the Old Activity Identifier).
    pub const ACTIVITY_ID: ParamCode = ParamCode(41);
    /// PI Serial Number (MIP, MIA, AE, AEA).
    pub const SERIAL_NUMBER: ParamCode = ParamCode(42);
    /// PI Reflect Parameter Values (AB, ER).
    pub const REFLECT_PARAMS: ParamCode = ParamCode(49);
    /// PI Reason Code (RF, ED, AI, AD).
    pub const REASON_CODE: ParamCode = ParamCode(50);
    /// PI Calling Session Selector (CN, AC).
    pub const CALLING_SSAP: ParamCode = ParamCode(51);
    /// PI Called (CN) or Responding (AC) Session Selector.
    pub const CALLED_SSAP: ParamCode = ParamCode(52);
    /// PI Data Overflow (CN).
    pub const DATA_OVERFLOW: ParamCode = ParamCode(60);
    /// PI User Data.
    pub const USER_DATA: ParamCode = ParamCode(193);
    /// PI Extended User Data (CN, version 2).
    pub const EXTENDED_USER_DATA: ParamCode = ParamCode(194);
}

impl fmt::Debug for ParamCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ParamCode({} {:#04x})", self.0, self.0)
    }
}

/// Session user requirements bits (PI 20, X.225 §8.3.1.16).
pub mod requirements {
    /// Half-duplex functional unit.
    pub const HALF_DUPLEX: u16 = 0x0001;
    /// Duplex functional unit.
    pub const DUPLEX: u16 = 0x0002;
    /// Expedited data.
    pub const EXPEDITED: u16 = 0x0004;
    /// Minor synchronize.
    pub const MINOR_SYNC: u16 = 0x0008;
    /// Major synchronize.
    pub const MAJOR_SYNC: u16 = 0x0010;
    /// Resynchronize.
    pub const RESYNC: u16 = 0x0020;
    /// Activity management.
    pub const ACTIVITY: u16 = 0x0040;
    /// Negotiated release.
    pub const NEGOTIATED_RELEASE: u16 = 0x0080;
    /// Capability data exchange.
    pub const CAPABILITY_DATA: u16 = 0x0100;
    /// Exceptions.
    pub const EXCEPTIONS: u16 = 0x0200;
    /// Typed data.
    pub const TYPED_DATA: u16 = 0x0400;
    /// What RTSE in normal mode asks for (X.228 §9.1: 0x0249).
    pub const RTSE: u16 = HALF_DUPLEX | MINOR_SYNC | ACTIVITY | EXCEPTIONS;
}

/// Token bits of the Token Item (PI 16, X.225 §8.3.6.2) and, two bits per token, of the
/// Token Setting Item (PI 26: 00 initiator's side, 01 responder's side, 10 called SS-user's
/// choice; data token in bits 1-0, minor sync 3-2, major/activity 5-4, release 7-6).
pub mod tokens {
    /// Data token.
    pub const DATA: u8 = 0x01;
    /// Synchronize-minor token.
    pub const MINOR_SYNC: u8 = 0x04;
    /// Major/activity token.
    pub const MAJOR_ACTIVITY: u8 = 0x10;
    /// Release token.
    pub const RELEASE: u8 = 0x40;
}

/// Transport Disconnect bits (PI 17, X.225 §8.3.5.3).
pub mod disconnect {
    /// The transport connection is released (else kept).
    pub const RELEASE_TRANSPORT: u8 = 0x01;
    /// User abort.
    pub const USER_ABORT: u8 = 0x02;
    /// Protocol error.
    pub const PROTOCOL_ERROR: u8 = 0x04;
    /// No reason.
    pub const NO_REASON: u8 = 0x08;
    /// Implementation restriction.
    pub const IMPLEMENTATION_RESTRICTION: u8 = 0x10;
}

/// RF reason codes (PI 50, X.225 §8.3.4.7).
pub mod refuse_reason {
    /// Rejection by the called SS-user.
    pub const REJECTED_BY_USER: u8 = 0;
    /// Rejection by the called SS-user due to temporary congestion.
    pub const USER_CONGESTION: u8 = 1;
    /// Rejection by the called SS-user, user data follows.
    pub const REJECTED_WITH_DATA: u8 = 2;
    /// Session selector unknown.
    pub const SSAP_UNKNOWN: u8 = 129;
    /// SS-user not attached to the SSAP.
    pub const USER_NOT_ATTACHED: u8 = 130;
    /// Congestion at the SPM.
    pub const SPM_CONGESTION: u8 = 131;
    /// Proposed protocol versions not supported.
    pub const VERSION_NOT_SUPPORTED: u8 = 132;
}

/// An unknown parameter unit kept as it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawParam {
    /// PI or PGI code.
    pub code: ParamCode,
    /// Value octets.
    pub value: Vec<u8>,
}

/// PGI 1, Connection Identifier (X.225 §8.3.1.3): the references RTSE uses to name a session
/// connection for recovery, each typically the BER of the X.228 SessionConnectionIdentifier
/// component (X.228 §9.2: an OCTET STRING or T61String SS-user reference, a UTCTime common
/// reference).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionId {
    /// PI 9, Called SS-user Reference (AC, RF), at most 64 octets.
    pub called_ss_user_ref: Option<Vec<u8>>,
    /// PI 10, Calling SS-user Reference (CN), at most 64 octets.
    pub calling_ss_user_ref: Option<Vec<u8>>,
    /// PI 11, Common Reference, at most 64 octets.
    pub common_ref: Option<Vec<u8>>,
    /// PI 12, Additional Reference Information, at most 4 octets.
    pub additional_ref: Option<Vec<u8>>,
    /// Unknown PIs.
    pub other: Vec<RawParam>,
}

/// PGI 33, Linking Information of an AR SPDU (X.225, the ACTIVITY RESUME SPDU): the session
/// connection the interrupted activity ran on (PIs 9 to 12, as in [`ConnectionId`]) and its
/// activity identifier (PI 41, the Old Activity Identifier, at most 6 octets).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkingInformation {
    /// The old session connection's references.
    pub connection: ConnectionId,
    /// PI 41, Old Activity Identifier.
    pub old_activity_id: Option<Vec<u8>>,
}

/// PGI 5, Connect/Accept Item (X.225 §8.3.1.5).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectAcceptItem {
    /// PI 19, Protocol Options (bit 0: able to receive extended concatenated SPDUs).
    pub protocol_options: Option<u8>,
    /// PI 21, TSDU Maximum Size: (initiator→responder, responder→initiator) in octets,
    /// 0 = unlimited.
    pub tsdu_max_size: Option<(u16, u16)>,
    /// PI 22, Version Number (bit 0 version 1, bit 1 version 2).
    pub version: Option<u8>,
    /// PI 23, Initial Serial Number.
    pub initial_serial: Option<u32>,
    /// PI 26, Token Setting Item.
    pub token_setting: Option<u8>,
    /// Other PIs (second initial serial number, upper limit, large serial numbers...).
    pub other: Vec<RawParam>,
}

/// The parameters of an SPDU (X.225 §8.3). Each SPDU uses the subset its clause lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    /// PGI 1 (CN, AC, RF).
    pub connection_id: Option<ConnectionId>,
    /// PGI 5 (CN, AC).
    pub accept_item: Option<ConnectAcceptItem>,
    /// PGI 33, Linking Information (AR).
    pub linking: Option<LinkingInformation>,
    /// PI 16, Token Item (AC, GT, PT).
    pub token_item: Option<u8>,
    /// PI 17, Transport Disconnect (RF, FN, AB), see [`disconnect`].
    pub transport_disconnect: Option<u8>,
    /// PI 20, Session User Requirements, see [`requirements`].
    pub requirements: Option<u16>,
    /// PI 22 at SPDU level, Version Number (RF).
    pub version: Option<u8>,
    /// PI 15, Sync Type Item (MIP: 1 = no explicit confirmation required).
    pub sync_type: Option<u8>,
    /// PI 42, Serial Number (MIP, MIA, AE, AEA), 0..=999999.
    pub serial_number: Option<u32>,
    /// PI 41, Activity Identifier (AS; AR: the new one), at most 6 octets.
    pub activity_id: Option<Vec<u8>>,
    /// PI 51, Calling Session Selector (CN, AC), at most 16 octets.
    pub calling_ssap: Option<Vec<u8>>,
    /// PI 52, Called (CN) or Responding (AC) Session Selector, at most 16 octets.
    pub called_ssap: Option<Vec<u8>>,
    /// PI 49, Reflect Parameter Values (AB, ER).
    pub reflect: Option<Vec<u8>>,
    /// PI 50, Reason Code: the reason octet, then (RF reason 2) the SS-user's data.
    pub reason: Option<Vec<u8>>,
    /// PI 60, Data Overflow (CN).
    pub data_overflow: Option<u8>,
    /// PI 25, Enclosure Item (bit 0 beginning, bit 1 end of SSDU).
    pub enclosure: Option<u8>,
    /// PI 193 User Data, or for CN PI 194 Extended User Data (the encoder picks PI 194 for
    /// more than 512 octets in a CN).
    pub user_data: Option<Vec<u8>>,
    /// Unknown parameter units, in order.
    pub other: Vec<RawParam>,
}

/// One SPDU.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spdu {
    /// The SI.
    pub code: SpduCode,
    /// Its parameters.
    pub params: Params,
    /// User information after the parameters: only a DT (category 2 SI 1) has any.
    pub user_information: Vec<u8>,
}

impl Default for SpduCode {
    fn default() -> Self {
        SpduCode::DT
    }
}

/// X.225 errors. Reaction: a session AB with "protocol error".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The TSDU ends inside an SPDU header or parameter.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// Octets follow an SPDU that cannot be followed by anything.
    #[error("{0} trailing octets after the spdus")]
    TrailingOctets(usize),
    /// A parameter occurs twice.
    #[error("duplicate parameter {0}")]
    DuplicateParameter(u8),
    /// A parameter's value is out of range.
    #[error("invalid value for parameter {code}: {what}")]
    BadParameter {
        /// PI or PGI code.
        code: u8,
        /// What is wrong.
        what: &'static str,
    },
    /// More than [`MAX_PARAMS`] parameter units.
    #[error("more than {MAX_PARAMS} parameter units")]
    TooManyParams,
    /// An SPDU not admitted in its position (a category 1 SPDU after GT/PT, an empty TSDU).
    #[error("{0} not admitted in this position")]
    BadConcatenation(SpduCode),
    /// An SPDU to encode is too long for the three-octet length form.
    #[error("spdu parameters of {0} octets exceed 65535")]
    TooLong(usize),
}

impl SessionError {
    /// The wire reaction: [`Reaction::SessionAbort`].
    pub fn reaction(&self) -> Reaction {
        Reaction::SessionAbort
    }
}

fn bad(code: ParamCode, what: &'static str) -> SessionError {
    SessionError::BadParameter { code: code.0, what }
}

/// Reads a length indicator: one octet, or FF and two octets.
fn read_len(input: &[u8], what: &'static str) -> Result<(usize, usize), SessionError> {
    match input {
        [0xff, hi, lo, ..] => Ok((usize::from(u16::from_be_bytes([*hi, *lo])), 3)),
        [0xff, ..] | [] => Err(SessionError::Truncated(what)),
        [l, ..] => Ok((usize::from(*l), 1)),
    }
}

fn push_len(out: &mut Vec<u8>, len: usize) -> Result<(), SessionError> {
    if len < 255 {
        out.push(len as u8);
    } else if len <= MAX_PARAM_LEN {
        out.push(0xff);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        return Err(SessionError::TooLong(len));
    }
    Ok(())
}

/// Splits a parameter field into (code, value) units.
fn units(mut input: &[u8]) -> Result<Vec<(ParamCode, &[u8])>, SessionError> {
    let mut out = Vec::new();
    while !input.is_empty() {
        if out.len() == MAX_PARAMS {
            return Err(SessionError::TooManyParams);
        }
        let code = ParamCode(input[0]);
        let (len, n) = read_len(&input[1..], "parameter length")?;
        let start = 1 + n;
        let value = input
            .get(start..start + len)
            .ok_or(SessionError::Truncated("parameter value"))?;
        out.push((code, value));
        input = &input[start + len..];
    }
    Ok(out)
}

fn one_octet(code: ParamCode, v: &[u8]) -> Result<u8, SessionError> {
    match v {
        [b] => Ok(*b),
        _ => Err(bad(code, "length is not 1")),
    }
}

fn bounded(code: ParamCode, v: &[u8], max: usize) -> Result<Vec<u8>, SessionError> {
    if v.len() > max {
        return Err(bad(code, "too long"));
    }
    Ok(v.to_vec())
}

/// Parses a serial number: 1 to 6 IA5 decimal digits (X.225 §8.3.33.3).
fn serial(code: ParamCode, v: &[u8]) -> Result<u32, SessionError> {
    if v.is_empty() || v.len() > 6 || !v.iter().all(u8::is_ascii_digit) {
        return Err(bad(code, "not 1 to 6 decimal digits"));
    }
    Ok(v.iter().fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0')))
}

fn set<T>(slot: &mut Option<T>, code: ParamCode, value: T) -> Result<(), SessionError> {
    if slot.replace(value).is_some() {
        return Err(SessionError::DuplicateParameter(code.0));
    }
    Ok(())
}

impl ConnectionId {
    fn decode(v: &[u8]) -> Result<ConnectionId, SessionError> {
        let mut c = ConnectionId::default();
        for (code, v) in units(v)? {
            match code {
                ParamCode::CALLED_SS_USER_REF => set(
                    &mut c.called_ss_user_ref,
                    code,
                    bounded(code, v, MAX_REFERENCE_LEN)?,
                )?,
                ParamCode::CALLING_SS_USER_REF => set(
                    &mut c.calling_ss_user_ref,
                    code,
                    bounded(code, v, MAX_REFERENCE_LEN)?,
                )?,
                ParamCode::COMMON_REF => set(
                    &mut c.common_ref,
                    code,
                    bounded(code, v, MAX_REFERENCE_LEN)?,
                )?,
                ParamCode::ADDITIONAL_REF => {
                    set(&mut c.additional_ref, code, bounded(code, v, 4)?)?
                }
                _ => c.other.push(RawParam {
                    code,
                    value: v.to_vec(),
                }),
            }
        }
        Ok(c)
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<(), SessionError> {
        let mut v = Vec::new();
        self.encode_units(&mut v)?;
        pi(out, ParamCode::CONNECTION_ID, &v)
    }

    /// The PIs of this group, without the PGI header.
    fn encode_units(&self, v: &mut Vec<u8>) -> Result<(), SessionError> {
        if let Some(r) = &self.called_ss_user_ref {
            pi(v, ParamCode::CALLED_SS_USER_REF, r)?;
        }
        if let Some(r) = &self.calling_ss_user_ref {
            pi(v, ParamCode::CALLING_SS_USER_REF, r)?;
        }
        if let Some(r) = &self.common_ref {
            pi(v, ParamCode::COMMON_REF, r)?;
        }
        if let Some(r) = &self.additional_ref {
            pi(v, ParamCode::ADDITIONAL_REF, r)?;
        }
        for p in &self.other {
            pi(v, p.code, &p.value)?;
        }
        Ok(())
    }
}

impl LinkingInformation {
    fn decode(v: &[u8]) -> Result<LinkingInformation, SessionError> {
        let mut connection = ConnectionId::decode(v)?;
        let mut old_activity_id = None;
        for p in std::mem::take(&mut connection.other) {
            if p.code == ParamCode::ACTIVITY_ID {
                let id = bounded(p.code, &p.value, MAX_ACTIVITY_ID_LEN)?;
                set(&mut old_activity_id, p.code, id)?;
            } else {
                connection.other.push(p);
            }
        }
        Ok(LinkingInformation {
            connection,
            old_activity_id,
        })
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<(), SessionError> {
        let mut v = Vec::new();
        self.connection.encode_units(&mut v)?;
        if let Some(a) = &self.old_activity_id {
            pi(&mut v, ParamCode::ACTIVITY_ID, a)?;
        }
        pi(out, ParamCode::LINKING_INFORMATION, &v)
    }
}

impl ConnectAcceptItem {
    fn decode(v: &[u8]) -> Result<ConnectAcceptItem, SessionError> {
        let mut c = ConnectAcceptItem::default();
        for (code, v) in units(v)? {
            match code {
                ParamCode::PROTOCOL_OPTIONS => {
                    set(&mut c.protocol_options, code, one_octet(code, v)?)?
                }
                ParamCode::TSDU_MAX_SIZE => {
                    let [a, b, x, y] = v else {
                        return Err(bad(code, "length is not 4"));
                    };
                    set(
                        &mut c.tsdu_max_size,
                        code,
                        (u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*x, *y])),
                    )?
                }
                ParamCode::VERSION_NUMBER => set(&mut c.version, code, one_octet(code, v)?)?,
                ParamCode::INITIAL_SERIAL => set(&mut c.initial_serial, code, serial(code, v)?)?,
                ParamCode::TOKEN_SETTING_ITEM => {
                    set(&mut c.token_setting, code, one_octet(code, v)?)?
                }
                _ => c.other.push(RawParam {
                    code,
                    value: v.to_vec(),
                }),
            }
        }
        Ok(c)
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<(), SessionError> {
        let mut v = Vec::new();
        if let Some(o) = self.protocol_options {
            pi(&mut v, ParamCode::PROTOCOL_OPTIONS, &[o])?;
        }
        if let Some((a, b)) = self.tsdu_max_size {
            let mut x = a.to_be_bytes().to_vec();
            x.extend_from_slice(&b.to_be_bytes());
            pi(&mut v, ParamCode::TSDU_MAX_SIZE, &x)?;
        }
        if let Some(o) = self.version {
            pi(&mut v, ParamCode::VERSION_NUMBER, &[o])?;
        }
        if let Some(s) = self.initial_serial {
            pi(&mut v, ParamCode::INITIAL_SERIAL, s.to_string().as_bytes())?;
        }
        if let Some(o) = self.token_setting {
            pi(&mut v, ParamCode::TOKEN_SETTING_ITEM, &[o])?;
        }
        for p in &self.other {
            pi(&mut v, p.code, &p.value)?;
        }
        pi(out, ParamCode::CONNECT_ACCEPT_ITEM, &v)
    }
}

fn pi(out: &mut Vec<u8>, code: ParamCode, value: &[u8]) -> Result<(), SessionError> {
    out.push(code.0);
    push_len(out, value.len())?;
    out.extend_from_slice(value);
    Ok(())
}

impl Params {
    /// Decodes a parameter field (the octets the SPDU's LI covers).
    ///
    /// # Errors
    /// [`SessionError`] for truncation, duplicates, out-of-range values and more than
    /// [`MAX_PARAMS`] units.
    pub fn decode(input: &[u8]) -> Result<Params, SessionError> {
        let mut p = Params::default();
        for (code, v) in units(input)? {
            match code {
                ParamCode::CONNECTION_ID => {
                    set(&mut p.connection_id, code, ConnectionId::decode(v)?)?
                }
                ParamCode::CONNECT_ACCEPT_ITEM => {
                    set(&mut p.accept_item, code, ConnectAcceptItem::decode(v)?)?
                }
                ParamCode::LINKING_INFORMATION => {
                    set(&mut p.linking, code, LinkingInformation::decode(v)?)?
                }
                ParamCode::TOKEN_ITEM => set(&mut p.token_item, code, one_octet(code, v)?)?,
                ParamCode::TRANSPORT_DISCONNECT => {
                    set(&mut p.transport_disconnect, code, one_octet(code, v)?)?
                }
                ParamCode::SESSION_REQUIREMENTS => {
                    let [a, b] = v else {
                        return Err(bad(code, "length is not 2"));
                    };
                    set(&mut p.requirements, code, u16::from_be_bytes([*a, *b]))?
                }
                ParamCode::VERSION_NUMBER => set(&mut p.version, code, one_octet(code, v)?)?,
                ParamCode::SYNC_TYPE_ITEM => set(&mut p.sync_type, code, one_octet(code, v)?)?,
                ParamCode::SERIAL_NUMBER => set(&mut p.serial_number, code, serial(code, v)?)?,
                ParamCode::ACTIVITY_ID => set(
                    &mut p.activity_id,
                    code,
                    bounded(code, v, MAX_ACTIVITY_ID_LEN)?,
                )?,
                ParamCode::CALLING_SSAP => {
                    set(&mut p.calling_ssap, code, bounded(code, v, MAX_SSAP_LEN)?)?
                }
                ParamCode::CALLED_SSAP => {
                    set(&mut p.called_ssap, code, bounded(code, v, MAX_SSAP_LEN)?)?
                }
                ParamCode::REFLECT_PARAMS => set(&mut p.reflect, code, v.to_vec())?,
                ParamCode::REASON_CODE => {
                    if v.is_empty() {
                        return Err(bad(code, "empty"));
                    }
                    set(&mut p.reason, code, v.to_vec())?
                }
                ParamCode::DATA_OVERFLOW => set(&mut p.data_overflow, code, one_octet(code, v)?)?,
                ParamCode::ENCLOSURE_ITEM => set(&mut p.enclosure, code, one_octet(code, v)?)?,
                ParamCode::USER_DATA => set(&mut p.user_data, code, v.to_vec())?,
                ParamCode::EXTENDED_USER_DATA => {
                    set(&mut p.user_data, code, bounded(code, v, MAX_CN_USER_DATA)?)?
                }
                _ => p.other.push(RawParam {
                    code,
                    value: v.to_vec(),
                }),
            }
        }
        Ok(p)
    }

    /// Encodes the parameter field in X.225's order; `code` decides between PI 193 and 194
    /// for the user data (PI 194 only in a CN with more than 512 octets).
    ///
    /// # Errors
    /// [`SessionError::TooLong`] for a unit of more than 65535 octets;
    /// [`SessionError::BadParameter`] for a serial number above [`MAX_SERIAL`].
    pub fn encode(&self, code: SpduCode, out: &mut Vec<u8>) -> Result<(), SessionError> {
        if let Some(c) = &self.connection_id {
            c.encode(out)?;
        }
        if let Some(c) = &self.accept_item {
            c.encode(out)?;
        }
        if let Some(l) = &self.linking {
            l.encode(out)?;
        }
        if let Some(t) = self.token_item {
            pi(out, ParamCode::TOKEN_ITEM, &[t])?;
        }
        if let Some(t) = self.transport_disconnect {
            pi(out, ParamCode::TRANSPORT_DISCONNECT, &[t])?;
        }
        if let Some(r) = self.requirements {
            pi(out, ParamCode::SESSION_REQUIREMENTS, &r.to_be_bytes())?;
        }
        if let Some(v) = self.version {
            pi(out, ParamCode::VERSION_NUMBER, &[v])?;
        }
        if let Some(s) = self.sync_type {
            pi(out, ParamCode::SYNC_TYPE_ITEM, &[s])?;
        }
        if let Some(s) = self.serial_number {
            if s > MAX_SERIAL {
                return Err(bad(ParamCode::SERIAL_NUMBER, "above 999999"));
            }
            pi(out, ParamCode::SERIAL_NUMBER, s.to_string().as_bytes())?;
        }
        if let Some(a) = &self.activity_id {
            pi(out, ParamCode::ACTIVITY_ID, a)?;
        }
        if let Some(s) = &self.calling_ssap {
            pi(out, ParamCode::CALLING_SSAP, s)?;
        }
        if let Some(s) = &self.called_ssap {
            pi(out, ParamCode::CALLED_SSAP, s)?;
        }
        if let Some(r) = &self.reflect {
            pi(out, ParamCode::REFLECT_PARAMS, r)?;
        }
        if let Some(e) = self.enclosure {
            pi(out, ParamCode::ENCLOSURE_ITEM, &[e])?;
        }
        if let Some(r) = &self.reason {
            pi(out, ParamCode::REASON_CODE, r)?;
        }
        if let Some(d) = self.data_overflow {
            pi(out, ParamCode::DATA_OVERFLOW, &[d])?;
        }
        for p in &self.other {
            pi(out, p.code, &p.value)?;
        }
        if let Some(u) = &self.user_data {
            let pi_code = if code == SpduCode::CN && u.len() > MAX_CN_USER_DATA_PI193 {
                ParamCode::EXTENDED_USER_DATA
            } else {
                ParamCode::USER_DATA
            };
            pi(out, pi_code, u)?;
        }
        Ok(())
    }
}

impl Spdu {
    /// An SPDU with no parameters.
    pub fn new(code: SpduCode) -> Spdu {
        Spdu {
            code,
            params: Params::default(),
            user_information: Vec::new(),
        }
    }

    /// An SPDU with these parameters.
    pub fn with(code: SpduCode, params: Params) -> Spdu {
        Spdu {
            code,
            params,
            user_information: Vec::new(),
        }
    }

    /// A DT carrying `data` as its user information (X.225 §8.3.11).
    pub fn data(data: Vec<u8>) -> Spdu {
        Spdu {
            code: SpduCode::DT,
            params: Params::default(),
            user_information: data,
        }
    }

    /// Appends this SPDU (header, parameters, user information) to `out`.
    ///
    /// # Errors
    /// As [`Params::encode`], and [`SessionError::TooLong`] for a parameter field of more
    /// than 65535 octets.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), SessionError> {
        let mut params = Vec::new();
        self.params.encode(self.code, &mut params)?;
        out.push(self.code.0);
        push_len(out, params.len())?;
        out.extend_from_slice(&params);
        out.extend_from_slice(&self.user_information);
        Ok(())
    }

    /// Reads one SPDU header and parameter field from the start of `input`; returns it and
    /// the octets left after its parameters.
    fn decode_one(input: &[u8]) -> Result<(Spdu, &[u8]), SessionError> {
        let (&si, rest) = input.split_first().ok_or(SessionError::Truncated("spdu"))?;
        let (len, n) = read_len(rest, "spdu length")?;
        let body = rest
            .get(n..n + len)
            .ok_or(SessionError::Truncated("spdu parameters"))?;
        let spdu = Spdu::with(SpduCode(si), Params::decode(body)?);
        Ok((spdu, &rest[n + len..]))
    }
}

/// Decodes a TSDU into its SPDUs: one category 1 or 0 SPDU, or a category 0 SPDU followed by
/// a category 2 one whose user information (DT) is the rest of the TSDU.
///
/// # Errors
/// [`SessionError`]: truncation, parameters out of range, octets after an SPDU that admits
/// none ([`SessionError::TrailingOctets`]), an empty TSDU.
pub fn decode_tsdu(input: &[u8]) -> Result<Vec<Spdu>, SessionError> {
    let (first, rest) = Spdu::decode_one(input)?;
    if rest.is_empty() {
        return Ok(vec![first]);
    }
    if !first.code.is_category0() {
        return Err(SessionError::TrailingOctets(rest.len()));
    }
    let (mut second, rest) = Spdu::decode_one(rest)?;
    if second.code == SpduCode::DT {
        second.user_information = rest.to_vec();
    } else if !rest.is_empty() {
        return Err(SessionError::TrailingOctets(rest.len()));
    }
    if matches!(second.code.0, 12 | 13 | 14 | 9 | 10 | 21 | 22) {
        // RF, CN, AC, FN, DN, GTC, GTA are category 1 and never follow GT/PT.
        return Err(SessionError::BadConcatenation(second.code));
    }
    Ok(vec![first, second])
}

/// The user information of a TSDU that is a GT without parameters followed by a DT without
/// parameters (`01 00 01 00 ...`, X.225 §8.3.28 and §8.3.11), borrowed: the form every
/// segment of an RTSE transfer takes. `None` for any other TSDU, which [`decode_tsdu`] then
/// reads (to the same SPDUs where this one answers).
pub fn gt_dt_user_information(tsdu: &[u8]) -> Option<&[u8]> {
    tsdu.strip_prefix(&GT_DT_HEADER[..])
}

/// A GT without parameters and the header of a DT without parameters (SI 1, LI 0 twice):
/// what comes before the user information of every segment of an RTSE transfer, the same
/// octets as [`encode_tsdu`] gives for those two SPDUs.
pub const GT_DT_HEADER: [u8; 4] = [1, 0, 1, 0];

/// Encodes SPDUs into one TSDU.
///
/// # Errors
/// As [`Spdu::encode`].
pub fn encode_tsdu(spdus: &[Spdu]) -> Result<Vec<u8>, SessionError> {
    let mut out = Vec::new();
    for s in spdus {
        s.encode(&mut out)?;
    }
    Ok(out)
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
    fn given_tokens_concatenation() {
        // GT + MIP serial "1" (PP checkpoint)
        let t = hex("010031032a0131");
        let s = decode_tsdu(&t).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].code.name(false), Some("GT"));
        assert_eq!(s[1].code.name(true), Some("MIP"));
        assert_eq!(s[1].params.serial_number, Some(1));
        assert_eq!(encode_tsdu(&s).unwrap(), t);
        // GT + DT with user information
        let t = hex("01000100611e");
        let s = decode_tsdu(&t).unwrap();
        assert_eq!(s[1].code, SpduCode::DT);
        assert_eq!(s[1].user_information, [0x61, 0x1e]);
        assert_eq!(encode_tsdu(&s).unwrap(), t);
    }

    #[test]
    fn three_octet_lengths() {
        let mut s = Spdu::new(SpduCode::AC);
        s.params.user_data = Some(vec![7; 300]);
        let mut out = Vec::new();
        s.encode(&mut out).unwrap();
        assert_eq!(&out[..7], &[14, 0xff, 0x01, 0x30, 193, 0xff, 0x01]);
        assert_eq!(decode_tsdu(&out).unwrap(), vec![s]);
        // CN with more than 512 octets uses extended user data
        let mut cn = Spdu::new(SpduCode::CN);
        cn.params.user_data = Some(vec![1; 600]);
        let mut out = Vec::new();
        cn.encode(&mut out).unwrap();
        assert_eq!(out[4], 194);
        assert_eq!(decode_tsdu(&out).unwrap(), vec![cn]);
    }

    #[test]
    fn malformed() {
        assert_eq!(decode_tsdu(&[]), Err(SessionError::Truncated("spdu")));
        assert_eq!(
            decode_tsdu(&[13, 5, 1]),
            Err(SessionError::Truncated("spdu parameters"))
        );
        assert_eq!(
            decode_tsdu(&[13, 0, 0]),
            Err(SessionError::TrailingOctets(1))
        );
        assert_eq!(
            decode_tsdu(&[49, 3, 42, 1, b'x']),
            Err(SessionError::BadParameter {
                code: 42,
                what: "not 1 to 6 decimal digits"
            })
        );
        assert_eq!(
            decode_tsdu(&[1, 0, 13, 0]),
            Err(SessionError::BadConcatenation(SpduCode::CN))
        );
        assert_eq!(
            decode_tsdu(&[20, 4, 16, 1, 1, 16]).unwrap_err(),
            SessionError::Truncated("parameter length")
        );
        assert_eq!(
            decode_tsdu(&[20, 6, 16, 1, 1, 16, 1, 1]),
            Err(SessionError::DuplicateParameter(16))
        );
        assert_eq!(
            SessionError::TooManyParams.reaction(),
            Reaction::SessionAbort
        );
    }
}
