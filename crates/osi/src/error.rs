//! The stack-wide error: one variant per layer, each wrapping that layer's error.

use crate::{acse::AcseError, cotp::CotpError, presentation::PresentationError, rtse::RtseError};
use crate::{session::SessionError, tpkt::TpktError};

/// What goes on the wire when an error is detected, before the transport is closed.
///
/// The [`crate::Association`] carries the reaction out itself (queues the PDU and closes);
/// a caller that decodes PDUs directly can use it to do the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaction {
    /// Nothing can be said on the wire (the framing itself is broken): close TCP.
    Close,
    /// Send a COTP DR with this reason (X.224 §13.5.3 d), e.g. 0x80 normal, then close.
    /// Used while the transport connection is being set up.
    CotpDisconnect {
        /// DR reason octet.
        reason: u8,
    },
    /// Send a COTP ER with this reject cause (X.224 §13.12.3 c: 0 unspecified, 1 invalid
    /// parameter code, 2 invalid TPDU type, 3 invalid parameter value), then close.
    CotpError {
        /// ER reject cause octet.
        cause: u8,
    },
    /// Send a session AB SPDU with transport disconnect "protocol error" (X.225 §8.3.9),
    /// no user data, then close.
    SessionAbort,
    /// Send a session AB carrying an ARP-PPDU with this provider reason (X.226 §8.4.2:
    /// 1 unrecognized-ppdu, 2 unexpected-ppdu, 4 unrecognized-ppdu-parameter,
    /// 5 invalid-ppdu-parameter-value), then close.
    PresentationAbort {
        /// ARP-PPDU provider-reason.
        provider_reason: i64,
    },
    /// Send a session AB carrying an ARU-PPDU with an ACSE ABRT, abort-source
    /// acse-service-provider (X.227 §7.3.3.3), then close.
    AcseAbort,
    /// Send a session AB carrying an ARU-PPDU with an ACSE ABRT (abort-source
    /// acse-service-user: RTSE is the ACSE user) whose user information is an RTAB with this
    /// abortReason (X.228 §9.3.6, e.g. 4 protocol error), then close.
    RtseAbort {
        /// RTAB abortReason.
        reason: i64,
    },
}

/// Misuse of the association's API by its caller, or a PDU arriving in a state that does not
/// admit it (peer misbehaviour, kept apart from the codec errors of each layer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssociationError {
    /// The peer sent a PDU the current state does not admit (X.225 §A state tables, X.228 §10).
    #[error("unexpected {pdu} in state {state}")]
    Unexpected {
        /// The PDU's standard name.
        pdu: &'static str,
        /// The state it arrived in.
        state: &'static str,
    },
    /// A mandatory element is missing from a peer's PDU.
    #[error("missing {0}")]
    Missing(&'static str),
    /// The peer's negotiation left no usable option.
    #[error("negotiation failed: {0}")]
    Negotiation(&'static str),
    /// The caller asked for something the current state or role does not allow.
    #[error("cannot {action} in state {state}")]
    Api {
        /// What the caller asked for.
        action: &'static str,
        /// The state the association was in.
        state: &'static str,
    },
    /// The caller's value is out of range (selector too long, APDU larger than the cap...).
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
}

impl AssociationError {
    /// Whether the caller (not the peer) is at fault: nothing is sent and the association is
    /// left as it was.
    pub fn is_api_misuse(&self) -> bool {
        matches!(
            self,
            AssociationError::Api { .. } | AssociationError::InvalidArgument(_)
        )
    }
}

/// An error of the OSI stack: one variant per layer, each wrapping that layer's error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OsiError {
    /// RFC 1006 framing.
    #[error("tpkt: {0}")]
    Tpkt(#[from] TpktError),
    /// X.224 transport.
    #[error("cotp: {0}")]
    Cotp(#[from] CotpError),
    /// X.225 session.
    #[error("session: {0}")]
    Session(#[from] SessionError),
    /// X.226 presentation.
    #[error("presentation: {0}")]
    Presentation(#[from] PresentationError),
    /// X.227 ACSE.
    #[error("acse: {0}")]
    Acse(#[from] AcseError),
    /// X.228 RTSE.
    #[error("rtse: {0}")]
    Rtse(#[from] RtseError),
    /// State machine or API misuse.
    #[error("association: {0}")]
    Association(#[from] AssociationError),
}

impl OsiError {
    /// The wire reaction to this error (see [`Reaction`]).
    pub fn reaction(&self) -> Reaction {
        match self {
            OsiError::Tpkt(e) => e.reaction(),
            OsiError::Cotp(e) => e.reaction(),
            OsiError::Session(e) => e.reaction(),
            OsiError::Presentation(e) => e.reaction(),
            OsiError::Acse(e) => e.reaction(),
            OsiError::Rtse(e) => e.reaction(),
            OsiError::Association(_) => Reaction::SessionAbort,
        }
    }
}
