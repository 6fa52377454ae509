//! Sans-IO OSI upper stack for X.400 P1 over RFC 1006 (TCP 102).
//!
//! Bottom up, one module per layer, each with its PDU types, one error enum and the wire
//! reaction of each error ([`Reaction`]):
//!
//! | module | layer | spec |
//! |---|---|---|
//! | [`tpkt`] | ISO transport over TCP framing | RFC 1006 §6 |
//! | [`cotp`] | connection-oriented transport, class 0: CR/CC/DT/DR/ER | X.224 §13 |
//! | [`session`] | session protocol version 2: CN/AC/RF/FN/DN/AB, DT, GT/PT/GTC/GTA, AS/AE/AEA, MIP/MIA | X.225 §8 |
//! | [`presentation`] | presentation, normal mode: CP-type/CPA-PPDU/CPR-PPDU, user data | X.226 §8 |
//! | [`acse`] | association control: AARQ/AARE/RLRQ/RLRE/ABRT | X.227 §7 |
//! | [`rtse`] | reliable transfer, normal mode: RTORQ/RTOAC/RTORJ/RTTR/RTTP/RTAB | X.228 §9 |
//! | [`association`] | all of the above as one state machine for an MTA, both roles | X.228, X.411 §12 |
//!
//! The [`Association`] is a pure state machine: [`Association::handle_input`] takes the bytes read
//! from TCP and the current time; [`Association::poll_transmit`] hands back TPKT frames to
//! write, [`Association::poll_event`] the indications for the MTA and
//! [`Association::poll_timeout`] the next instant at which [`Association::handle_timeout`] must
//! be called. Nothing here opens a socket, reads a clock or spawns a thread.
//!
//! # Decoding rules
//!
//! Only the stream-level decoder, [`tpkt::decode`], sees partial input: it returns `Ok(None)`
//! until a whole packet is there. Every PDU above it arrives whole, delimited by the layer
//! below (a TPKT, a reassembled TSDU, a length-prefixed parameter or BER value), so a
//! truncated PDU is an error, as are octets left over inside any length-prefixed field.
//! Wire codes are newtypes with named constants ([`cotp::TpduCode::CR`],
//! [`session::SpduCode::CN`]) so unknown values survive and print in hex. Each layer has one
//! error enum; [`OsiError`] wraps them all, and [`OsiError::reaction`] names what goes on the
//! wire.
//!
//! # Caps
//!
//! Every length, nesting depth and count read from the wire is capped; the numbers are the
//! `MAX_*` constants of each module and of [`AssociationConfig`]:
//!
//! - TPKT: total length 7..=65535 octets ([`tpkt::MAX_PAYLOAD`] = 65531 octets of payload).
//! - COTP: TPDU size 128..=8192 octets, at most [`cotp::MAX_PARAMS`] parameters per TPDU, TSAP
//!   selectors of at most [`cotp::MAX_TSAP_LEN`] octets, reassembled TSDUs of at most
//!   [`AssociationConfig::max_tsdu_size`] octets.
//! - Session: at most [`session::MAX_SPDUS_PER_TSDU`] SPDUs per TSDU, [`session::MAX_PARAMS`]
//!   parameters per SPDU, SSAP selectors of at most [`session::MAX_SSAP_LEN`] octets, serial
//!   numbers of at most 6 digits, CN user data of at most [`session::MAX_CN_USER_DATA`] octets.
//! - BER (presentation, ACSE, RTSE): constructed nesting at most [`ber::MAX_DEPTH`] levels,
//!   at most [`presentation::MAX_CONTEXTS`] presentation contexts and
//!   [`presentation::MAX_PDVS`] PDV lists, at most [`acse::MAX_EXTERNALS`] EXTERNALs of user
//!   information.
//! - RTSE: an APDU of at most [`AssociationConfig::max_apdu_size`] octets, checkpoint size at
//!   most [`rtse::MAX_CHECKPOINT_SIZE`] (× 1024 octets), window at most [`rtse::MAX_WINDOW_SIZE`].
#![forbid(unsafe_code)]

pub mod acse;
pub mod association;
pub mod ber;
pub mod cotp;
mod error;
pub mod presentation;
pub mod rtse;
pub mod session;
pub mod tpkt;

pub use association::{
    AbortReason, AeTitle, AssociateConfirm, AssociateIndication, Association, AssociationConfig,
    DialogueMode, Event, ReceiveProgress, Refusal, Role, SendProgress, TransferId,
};
pub use error::{AssociationError, OsiError, Reaction};
