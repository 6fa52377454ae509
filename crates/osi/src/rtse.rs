//! Reliable transfer, normal mode (X.228 §9 / ISO 9066-2): the RTSE APDUs and the MTA bind
//! value they carry.
//!
//! ```asn1
//! RTSE-apdus ::= CHOICE {
//!   rtorq-apdu [16] IMPLICIT RTORQapdu,  rtoac-apdu [17] IMPLICIT RTOACapdu,
//!   rtorj-apdu [18] IMPLICIT RTORJapdu,  rttp-apdu RTTPapdu,  -- INTEGER (priority)
//!   rttr-apdu  RTTRapdu,                 -- OCTET STRING (a segment of the APDU)
//!   rtab-apdu  [22] IMPLICIT RTABapdu }
//! RTORQapdu ::= SET { checkpointSize [0] IMPLICIT INTEGER DEFAULT 0,
//!   windowSize [1] IMPLICIT INTEGER DEFAULT 3,
//!   dialogueMode [2] IMPLICIT INTEGER { monologue(0), twa(1) } DEFAULT monologue,
//!   connectionDataRQ [3] ConnectionData, applicationProtocol [4] IMPLICIT INTEGER OPTIONAL }
//! RTOACapdu ::= SET { checkpointSize [0] IMPLICIT INTEGER DEFAULT 0,
//!   windowSize [1] IMPLICIT INTEGER DEFAULT 3, connectionDataAC [2] ConnectionData }
//! RTORJapdu ::= SET { refuseReason [0] IMPLICIT RefuseReason OPTIONAL,
//!   userDataRJ [1] OPEN OPTIONAL }
//! RTABapdu ::= SET { abortReason [0] IMPLICIT AbortReason OPTIONAL,
//!   reflectedParameter [1] IMPLICIT BIT STRING OPTIONAL, userdataAB [2] OPEN OPTIONAL }
//! ConnectionData ::= CHOICE { open [0] OPEN,
//!   recover [1] IMPLICIT SessionConnectionIdentifier }
//! ```
//! The checkpoint size counts units of 1024 octets (X.228 §9.3.1.1); 0 means no
//! checkpointing. In an MTA association `open` holds the X.411 bind value under its remote
//! operations tag: \[16\] the MTABindArgument, \[17\] the MTABindResult, \[18\] the MTABindError
//! ([`BindTag`]); some peers send the error without its \[18\], which [`unwrap_bind`] accepts.

use rasn::prelude::*;

use crate::Reaction;
use crate::ber::{self, BerError, Class};

/// Largest checkpoint size accepted from a peer or the caller (in units of 1024 octets).
pub const MAX_CHECKPOINT_SIZE: u32 = 1024;
/// Largest window size accepted (outstanding minor synchronization points).
pub const MAX_WINDOW_SIZE: u32 = 1000;
/// Window size when the APDU omits it (X.228 §9.3.1.2).
pub const DEFAULT_WINDOW_SIZE: u32 = 3;

/// RTORQ/RTOAC dialogue mode values.
pub mod dialogue_mode {
    /// Monologue: only the association-initiator transfers.
    pub const MONOLOGUE: u32 = 0;
    /// Two-way alternate: the turn passes between both sides.
    pub const TWA: u32 = 1;
}

/// RTORJ refuseReason values (X.228 §9.3.3).
pub mod refuse_reason {
    /// RTS busy.
    pub const RTS_BUSY: i64 = 0;
    /// Cannot recover.
    pub const CANNOT_RECOVER: i64 = 1;
    /// Validation failure.
    pub const VALIDATION_FAILURE: i64 = 2;
    /// Unacceptable dialogue mode.
    pub const UNACCEPTABLE_DIALOGUE_MODE: i64 = 3;
}

/// RTAB abortReason values (X.228 §9.3.6).
pub mod abort_reason {
    /// Local system problem.
    pub const LOCAL_SYSTEM_PROBLEM: i64 = 0;
    /// Invalid parameter.
    pub const INVALID_PARAMETER: i64 = 1;
    /// Unrecognized activity.
    pub const UNRECOGNIZED_ACTIVITY: i64 = 2;
    /// Temporary problem.
    pub const TEMPORARY_PROBLEM: i64 = 3;
    /// Protocol error.
    pub const PROTOCOL_ERROR: i64 = 4;
    /// Permanent problem.
    pub const PERMANENT_PROBLEM: i64 = 5;
    /// User error.
    pub const USER_ERROR: i64 = 6;
    /// Transfer completed.
    pub const TRANSFER_COMPLETED: i64 = 7;
}

/// RTSE-apdus (X.228 §9.3).
#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq, Eq)]
#[rasn(choice)]
pub enum RtseApdu {
    /// RT-OPEN request.
    #[rasn(tag(context, 16))]
    Rtorq(Rtorq),
    /// RT-OPEN accept.
    #[rasn(tag(context, 17))]
    Rtoac(Rtoac),
    /// RT-OPEN refuse.
    #[rasn(tag(context, 18))]
    Rtorj(Rtorj),
    /// RT-TURN-PLEASE: the priority.
    Rttp(i64),
    /// RT-TRANSFER: one segment of the APDU.
    Rttr(OctetString),
    /// RT-ABORT.
    #[rasn(tag(context, 22))]
    Rtab(Rtab),
}

/// RTORQapdu (X.228 §9.3.1).
///
/// The DEFAULT fields are kept as sent (`None` when absent) so that a decoded APDU encodes
/// back to the same elements; [`Rtorq::checkpoint_size`] and friends apply the defaults.
#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq, Eq)]
#[rasn(set)]
pub struct Rtorq {
    /// checkpointSize K, in units of 1024 octets; 0 (the default) = no checkpointing.
    #[rasn(tag(context, 0))]
    pub checkpoint_size: Option<u32>,
    /// windowSize: minor synchronization points that may be outstanding (default 3).
    #[rasn(tag(context, 1))]
    pub window_size: Option<u32>,
    /// dialogueMode, see [`dialogue_mode`] (default monologue).
    #[rasn(tag(context, 2))]
    pub dialogue_mode: Option<u32>,
    /// connectionDataRQ: open (the bind argument) or recover.
    #[rasn(tag(explicit(context, 3)))]
    pub connection_data_rq: ConnectionData,
    /// applicationProtocol.
    #[rasn(tag(context, 4))]
    pub application_protocol: Option<i64>,
}

impl Rtorq {
    /// checkpointSize with its default (0).
    pub fn checkpoint_size(&self) -> u32 {
        self.checkpoint_size.unwrap_or(0)
    }

    /// windowSize with its default (3).
    pub fn window_size(&self) -> u32 {
        self.window_size.unwrap_or(DEFAULT_WINDOW_SIZE)
    }

    /// dialogueMode with its default (monologue).
    pub fn dialogue_mode(&self) -> u32 {
        self.dialogue_mode.unwrap_or(dialogue_mode::MONOLOGUE)
    }
}

/// RTOACapdu (X.228 §9.3.2). DEFAULT fields as in [`Rtorq`].
#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq, Eq)]
#[rasn(set)]
pub struct Rtoac {
    /// checkpointSize accepted (≤ the proposal), units of 1024 octets; default 0.
    #[rasn(tag(context, 0))]
    pub checkpoint_size: Option<u32>,
    /// windowSize accepted (≤ the proposal); default 3.
    #[rasn(tag(context, 1))]
    pub window_size: Option<u32>,
    /// connectionDataAC: open (the bind result) or recover.
    #[rasn(tag(explicit(context, 2)))]
    pub connection_data_ac: ConnectionData,
}

impl Rtoac {
    /// checkpointSize with its default (0).
    pub fn checkpoint_size(&self) -> u32 {
        self.checkpoint_size.unwrap_or(0)
    }

    /// windowSize with its default (3).
    pub fn window_size(&self) -> u32 {
        self.window_size.unwrap_or(DEFAULT_WINDOW_SIZE)
    }
}

/// RTORJapdu (X.228 §9.3.3).
#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq, Eq)]
#[rasn(set)]
pub struct Rtorj {
    /// Refused by the RTSE provider, see [`refuse_reason`].
    #[rasn(tag(context, 0))]
    pub refuse_reason: Option<i64>,
    /// Refused by the user: the bind error.
    #[rasn(tag(explicit(context, 1)))]
    pub user_data_rj: Option<Any>,
}

/// RTABapdu (X.228 §9.3.6).
#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq, Eq)]
#[rasn(set)]
pub struct Rtab {
    /// See [`abort_reason`].
    #[rasn(tag(context, 0))]
    pub abort_reason: Option<i64>,
    /// The offending parameter.
    #[rasn(tag(context, 1))]
    pub reflected_parameter: Option<BitString>,
    /// User data of a user abort.
    #[rasn(tag(explicit(context, 2)))]
    pub user_data_ab: Option<Any>,
}

/// ConnectionData (X.228 §9.3.1).
#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq, Eq)]
#[rasn(choice)]
pub enum ConnectionData {
    /// A new association: the open value (an MTA's tagged bind value).
    #[rasn(tag(explicit(context, 0)))]
    Open(Any),
    /// Recovery of an earlier connection.
    #[rasn(tag(context, 1))]
    Recover(SessionConnectionIdentifier),
}

/// SessionConnectionIdentifier (X.228 §9.3.1): the session connection a `recover` names,
/// `SEQUENCE { CallingSSuserReference, CommonReference UTCTime, [0] IMPLICIT
/// AdditionalReferenceInformation OPTIONAL }`.
#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq, Eq)]
pub struct SessionConnectionIdentifier {
    /// CallingSSuserReference.
    pub calling_ss_user_reference: CallingSsUserReference,
    /// CommonReference (UTCTime).
    pub common_reference: UtcTime,
    /// AdditionalReferenceInformation, `[0] IMPLICIT T61String OPTIONAL`.
    #[rasn(tag(context, 0))]
    pub additional_reference_information: Option<TeletexString>,
}

/// CallingSSuserReference (X.228 §9.3.1).
#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq, Eq)]
#[rasn(choice)]
pub enum CallingSsUserReference {
    /// T61String form.
    T61String(TeletexString),
    /// OCTET STRING form.
    OctetString(OctetString),
}

/// The remote operations tag on an MTA bind value (X.411 §12.1, X.410 1984 BIND macro).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindTag {
    /// \[16\]: MTABindArgument.
    Argument,
    /// \[17\]: MTABindResult.
    Result,
    /// \[18\]: MTABindError.
    Error,
}

impl BindTag {
    /// The context tag number.
    pub fn number(self) -> u32 {
        match self {
            BindTag::Argument => 16,
            BindTag::Result => 17,
            BindTag::Error => 18,
        }
    }
}

/// Wraps a plain bind value (one BER TLV) in its remote operations tag: `[16] { value }`
/// and so on, constructed, definite length.
pub fn wrap_bind(tag: BindTag, value: &[u8]) -> Vec<u8> {
    ber::wrap(0xa0 | tag.number() as u8, value)
}

/// Takes the remote operations tag off an open / userDataRJ value: returns the tag if the
/// value is context-specific constructed \[16\], \[17\] or \[18\], and the contents (the plain
/// bind value); any other value comes back whole with `None` (a peer that sent its bind
/// error untagged).
///
/// # Errors
/// [`RtseError::Ber`] if the value is not well-formed BER.
pub fn unwrap_bind(value: &[u8]) -> Result<(Option<BindTag>, Vec<u8>), RtseError> {
    let (h, contents, _) = ber::split(value)?;
    let tag = match (h.class, h.constructed, h.number) {
        (Class::Context, true, 16) => BindTag::Argument,
        (Class::Context, true, 17) => BindTag::Result,
        (Class::Context, true, 18) => BindTag::Error,
        _ => return Ok((None, value.to_vec())),
    };
    Ok((Some(tag), contents.to_vec()))
}

/// X.228 errors. Reaction: an A-ABORT carrying an RTAB ([`Reaction::RtseAbort`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtseError {
    /// The APDU is not well-formed BER or does not match RTSE-apdus.
    #[error("malformed rtse apdu: {0}")]
    Ber(#[from] BerError),
    /// An RTSE APDU the current state does not admit.
    #[error("unexpected {0}")]
    Unexpected(&'static str),
    /// A mandatory element is missing (no RTORQ in the AARQ, no open value...).
    #[error("missing {0}")]
    Missing(&'static str),
    /// A value out of range (checkpoint size above the cap, window 0...).
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// A received APDU grows past the cap.
    #[error("apdu exceeds the cap of {0} octets")]
    ApduTooLarge(usize),
    /// Serial numbers out of step (X.228 §10).
    #[error("minor synchronization serial {got}, expected {expected}")]
    Serial {
        /// Received.
        got: u32,
        /// Expected.
        expected: u32,
    },
}

impl RtseError {
    /// The wire reaction: an RTAB with abortReason protocol error
    /// ([`Reaction::RtseAbort`]); an APDU over the cap is a local limit (local system
    /// problem).
    pub fn reaction(&self) -> Reaction {
        let reason = match self {
            RtseError::ApduTooLarge(_) => abort_reason::LOCAL_SYSTEM_PROBLEM,
            _ => abort_reason::PROTOCOL_ERROR,
        };
        Reaction::RtseAbort { reason }
    }
}

impl ConnectionData {
    pub(crate) fn check_open_types(&self) -> Result<(), BerError> {
        match self {
            ConnectionData::Open(a) => ber::check_one(a.as_bytes()),
            ConnectionData::Recover(_) => Ok(()),
        }
    }
}

impl Rtorq {
    pub(crate) fn check_open_types(&self) -> Result<(), BerError> {
        self.connection_data_rq.check_open_types()
    }
}

impl Rtoac {
    pub(crate) fn check_open_types(&self) -> Result<(), BerError> {
        self.connection_data_ac.check_open_types()
    }
}

impl Rtorj {
    pub(crate) fn check_open_types(&self) -> Result<(), BerError> {
        ber::check_opt(&self.user_data_rj)
    }
}

impl Rtab {
    pub(crate) fn check_open_types(&self) -> Result<(), BerError> {
        ber::check_opt(&self.user_data_ab)
    }
}

/// The segment an RTTR-APDU (X.228 §10.2: an OCTET STRING, primitive) carries, borrowed
/// from `input`. None for any other APDU or form: decode it with [`RtseApdu::decode`].
pub fn rttr_of(input: &[u8]) -> Option<&[u8]> {
    match ber::take_definite(input, 0x04)? {
        (seg, []) => Some(seg),
        _ => None,
    }
}

/// The identifier and length octets of an RTTR-APDU carrying `len` octets (the segment
/// itself follows them).
pub fn rttr_header(len: usize) -> Vec<u8> {
    let mut h = Vec::with_capacity(6);
    h.push(0x04);
    ber::push_length(&mut h, len);
    h
}

impl RtseApdu {
    /// Decodes one RTSE APDU filling all of `input`; every open value (open, userDataRJ,
    /// userdataAB) must be one well-formed BER value.
    ///
    /// # Errors
    /// [`RtseError::Ber`].
    pub fn decode(input: &[u8]) -> Result<RtseApdu, RtseError> {
        let apdu: RtseApdu = ber::decode(input)?;
        match &apdu {
            RtseApdu::Rtorq(a) => a.check_open_types()?,
            RtseApdu::Rtoac(a) => a.check_open_types()?,
            RtseApdu::Rtorj(a) => a.check_open_types()?,
            RtseApdu::Rtab(a) => a.check_open_types()?,
            RtseApdu::Rttp(_) | RtseApdu::Rttr(_) => {}
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
            RtseApdu::Rtorq(_) => "RTORQ",
            RtseApdu::Rtoac(_) => "RTOAC",
            RtseApdu::Rtorj(_) => "RTORJ",
            RtseApdu::Rttp(_) => "RTTP",
            RtseApdu::Rttr(_) => "RTTR",
            RtseApdu::Rtab(_) => "RTAB",
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
    fn x400ping_rtorq() {
        let b = hex(
            "b03080013f820100a328a026b024a1228013706572636976616c2e736d68732e636f2e756ba10b1609657863616c69627572",
        );
        let RtseApdu::Rtorq(r) = RtseApdu::decode(&b).unwrap() else {
            panic!()
        };
        assert_eq!(
            (r.checkpoint_size(), r.window_size(), r.dialogue_mode()),
            (63, 3, 0)
        );
        assert_eq!(r.window_size, None);
        let ConnectionData::Open(open) = &r.connection_data_rq else {
            panic!()
        };
        let (tag, arg) = unwrap_bind(open.as_bytes()).unwrap();
        assert_eq!(tag, Some(BindTag::Argument));
        assert_eq!(&arg[..2], &[0xa1, 0x22]);
        assert_eq!(wrap_bind(BindTag::Argument, &arg), open.as_bytes());
    }

    #[test]
    fn untagged_bind_error() {
        // PP's RTORJ: userDataRJ [1] { INTEGER 2 } without [18]
        let b = hex("b205a103020102");
        let RtseApdu::Rtorj(r) = RtseApdu::decode(&b).unwrap() else {
            panic!()
        };
        assert_eq!(r.refuse_reason, None);
        let (tag, err) = unwrap_bind(r.user_data_rj.unwrap().as_bytes()).unwrap();
        assert_eq!((tag, err), (None, vec![2, 1, 2]));
        let (tag, err) = unwrap_bind(&wrap_bind(BindTag::Error, &[2, 1, 2])).unwrap();
        assert_eq!((tag, err), (Some(BindTag::Error), vec![2, 1, 2]));
    }

    #[test]
    fn rttp_and_rttr() {
        assert_eq!(RtseApdu::decode(&[2, 1, 1]).unwrap(), RtseApdu::Rttp(1));
        let r = RtseApdu::Rttr(OctetString::from(vec![1, 2, 3]));
        assert_eq!(r.encode(), [4, 3, 1, 2, 3]);
        assert!(matches!(
            RtseApdu::decode(&[4, 5, 1]),
            Err(RtseError::Ber(_))
        ));
    }

    #[test]
    fn recover_names_the_session_with_its_additional_reference_under_0() {
        // RTORQ { windowSize 3, connectionDataRQ [3] { recover [1] { OCTET STRING "MT",
        // UTCTime "991231235959Z", [0] "ab" } } }
        let b = hex("b01e810103a319a11704024d54170d3939313233313233353935395a80026162");
        let RtseApdu::Rtorq(r) = RtseApdu::decode(&b).unwrap() else {
            panic!()
        };
        let ConnectionData::Recover(id) = &r.connection_data_rq else {
            panic!()
        };
        assert_eq!(
            id.calling_ss_user_reference,
            CallingSsUserReference::OctetString(OctetString::from_static(b"MT"))
        );
        assert_eq!(
            id.additional_reference_information
                .as_ref()
                .map(|a| a.to_bytes()),
            Some(b"ab".to_vec())
        );
        assert_eq!(RtseApdu::Rtorq(r).encode(), b);
    }
}
