//! The whole stack as one sans-IO state machine: an RTS association of an X.400 MTA
//! (X.411 §12 over X.228 normal mode), in either role.
//!
//! # Wire shape
//!
//! | service | what goes on the wire |
//! |---|---|
//! | connect | COTP CR/CC, then session CN { CP-type { contexts 1 ACSE, 3 mta-rtse, 5 mtse; AARQ { id-ac-mts-transfer, EXTERNAL { 2.1.1, 3, RTORQ { open \[16\] bind argument } } } } } |
//! | accept | session AC { CPA-PPDU { results; AARE accepted { RTOAC { open \[17\] bind result } } } } |
//! | refuse | session RF { Reason Code 2 + CPR-PPDU { AARE rejected-permanent { RTORJ { userDataRJ \[18\] bind error } } } } |
//! | transfer | GT+AS; GT+DT { RTTR segment } every K×1024 octets followed by GT+MIP (answered PT+MIA), at most W outstanding; GT+AE (answered PT+AEA) |
//! | turn | PT { RTTP priority } asks for the turn; GTC gives it (answered GTA) |
//! | release | FN { RLRQ } answered DN { RLRE } (the initiator then sends a COTP DR) |
//! | abort | AB { ARU-PPDU { ABRT { RTAB } } } |
//! | recover | as connect, with RTORQ { recover \[1\] SessionConnectionIdentifier } (no bind: the association it names was bound); accepted with RTOAC { recover }, refused with RTORJ { refuseReason cannot-recover } |
//! | resume | GT+AR { Linking Information { old session's references, old activity id }, Serial Number of the last confirmed minor sync, new activity id }, then the transfer's segments after that checkpoint as above |
//!
//! The APDU of a transfer is carried as EXTERNAL { indirect-reference = the mtse context (5),
//! single-ASN1-type = the MTS-APDU }, cut into RTTR octet strings.
//!
//! # Driving it
//!
//! Feed every byte read from TCP to [`Association::handle_input`] with the current time;
//! after each call (and after each API call) write out everything
//! [`Association::poll_transmit`] returns, handle every [`Association::poll_event`], and
//! call [`Association::handle_timeout`] at [`Association::poll_timeout`]. Once
//! [`Association::is_closed`] is true and the transmit queue is empty, close the TCP
//! connection. API calls that arm timers (transfer, release) measure from the last `now`
//! the machine was given.
//!
//! # Recovery
//!
//! An association that ends in the middle of a transfer (abort, timeout, lost transport)
//! keeps what recovery needs (X.228's recovery of RT-TRANSFER; Exchange's Recovery timeout,
//! Override tab): the initiator that was sending a [`RecoveryPoint`] (the transfer, the
//! last minor synchronization point the receiver confirmed, the session and activity it ran
//! on), the responder that was receiving a [`PartialTransfer`] (the octets up to each
//! confirmed point). Take them with [`Association::take_recovery_point`] and
//! [`Association::take_partial_transfer`]. The initiator opens a new association with
//! [`Association::initiator_recovering`]; the responder answers its indication (with
//! [`AssociateIndication::recover`] set) with [`Association::accept_recovery`] and the partial
//! transfer of that session, or [`Association::refuse_recovery`]; the transfer then goes on
//! from the checkpoint (S-ACTIVITY-RESUME) and ends as any other, in an
//! [`Event::TransferIndication`] with the whole APDU.
//!
//! An error in the peer's input is carried out on the wire (see [`crate::Reaction`]), an
//! [`Event::Aborted`] is queued and the error is returned; the association is then closed.
//! API misuse returns an error and changes nothing.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use rasn::types::{Any, ObjectIdentifier, OctetString};

use crate::acse::{self, Aare, Aarq, Abrt, AcseApdu, External, Rlre, Rlrq, SourceDiagnostic};
use crate::cotp::{self, ConnectTpdu, DisconnectTpdu, ErrorTpdu, Reassembler, Tpdu, TpduSize};
use crate::presentation::{
    self, AbortPpdu, ArpPpdu, AruNormalMode, AruPpdu, ContextDefinition, ContextResult,
    CpNormalMode, CpType, CpaNormalMode, CpaPpdu, CprNormalMode, CprPpdu, ModeSelector, UserData,
    oid,
};
use crate::rtse::{
    self, BindTag, CallingSsUserReference, ConnectionData, Rtab, Rtoac, Rtorj, Rtorq, RtseApdu,
    RtseError, SessionConnectionIdentifier,
};
use crate::session::{
    self, ConnectAcceptItem, ConnectionId, LinkingInformation, Params, Spdu, SpduCode, disconnect,
    requirements, tokens,
};
use crate::{AssociationError, OsiError, Reaction, ber, tpkt};

/// Which side opened the association.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sent the CR/CN/AARQ/RTORQ.
    Initiator,
    /// Answered them.
    Responder,
}

/// RTSE dialogue mode (X.228 §9.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogueMode {
    /// Only the initiator transfers.
    Monologue,
    /// The turn passes between both sides (Exchange's default).
    TwoWayAlternate,
}

impl DialogueMode {
    fn value(self) -> u32 {
        match self {
            DialogueMode::Monologue => rtse::dialogue_mode::MONOLOGUE,
            DialogueMode::TwoWayAlternate => rtse::dialogue_mode::TWA,
        }
    }
}

/// An AE-title in form 2 (X.227 §7.1.4.1): AP-title an OBJECT IDENTIFIER, AE-qualifier an
/// INTEGER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AeTitle {
    /// AP-title arcs.
    pub ap_title: Vec<u32>,
    /// AE-qualifier.
    pub ae_qualifier: Option<i64>,
}

/// The configuration of one association. Selectors are raw octets (empty = absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssociationConfig {
    /// Our TSAP selector (calling in the CR we send; the responder does not check it).
    pub local_tsap: Vec<u8>,
    /// The peer's TSAP selector (called in the CR we send).
    pub remote_tsap: Vec<u8>,
    /// Our session selector.
    pub local_ssap: Vec<u8>,
    /// The peer's session selector.
    pub remote_ssap: Vec<u8>,
    /// Our presentation selector.
    pub local_psap: Vec<u8>,
    /// The peer's presentation selector.
    pub remote_psap: Vec<u8>,
    /// TPDU size to propose (initiator) or accept at most (responder), octets, 128..=8192;
    /// rounded down to a power of two. Default 2048.
    pub tpdu_size: u32,
    /// Checkpoint size K in units of 1024 octets, 0 = no checkpointing (default 30, as
    /// Exchange). The responder lowers a larger proposal to this.
    pub checkpoint_size: u32,
    /// Window size: outstanding minor synchronization points (default 5).
    pub window_size: u32,
    /// Dialogue mode the initiator proposes (default two-way alternate).
    pub dialogue_mode: DialogueMode,
    /// Application context (default id-ac-mts-transfer 2.6.0.1.6).
    pub application_context: Vec<u32>,
    /// Our AE-title (calling in the AARQ, responding in the AARE), if any.
    pub local_ae_title: Option<AeTitle>,
    /// The peer's AE-title (called in the AARQ), if any.
    pub remote_ae_title: Option<AeTitle>,
    /// Calling SS-user reference (X.228 §9.2), sent as the BER of an OCTET STRING
    /// (default `MTALAB`).
    pub ss_user_reference: Vec<u8>,
    /// Common reference, a UTCTime string (default `991231235959Z`).
    pub common_reference: String,
    /// Our COTP reference (source reference of the CR or CC; default 1).
    pub cotp_reference: u16,
    /// How long to wait for CC, AC and DN (default 60 s).
    pub establishment_timeout: Duration,
    /// How long to wait for a minor sync or activity end confirmation before giving the
    /// transfer up and aborting (Exchange's "recovery timeout", default 60 s). The receiver
    /// of an activity uses it too: when the sender falls silent for this long in the middle
    /// of an activity (no input at all), the association aborts and the partial APDU is
    /// discarded — a link that went dead without a disconnect.
    pub recovery_timeout: Duration,
    /// Cap on an APDU received or sent, octets (default 16 MiB).
    pub max_apdu_size: usize,
    /// Cap on a reassembled TSDU, octets (default 16 MiB + 64 KiB: a whole APDU may come in
    /// one P-DATA when checkpointing is off).
    pub max_tsdu_size: usize,
    /// Hold the activity-end confirmation (AEA) of a received transfer until the user calls
    /// [`Association::confirm_transfer`] — after it has stored the APDU durably — instead of
    /// sending it as soon as the APDU is whole (default false). The sender keeps the APDU
    /// until then (X.228 §8: the transfer is not complete before the confirmation).
    pub defer_transfer_confirmation: bool,
}

impl Default for AssociationConfig {
    fn default() -> Self {
        AssociationConfig {
            local_tsap: Vec::new(),
            remote_tsap: Vec::new(),
            local_ssap: Vec::new(),
            remote_ssap: Vec::new(),
            local_psap: Vec::new(),
            remote_psap: Vec::new(),
            tpdu_size: 2048,
            checkpoint_size: 30,
            window_size: 5,
            dialogue_mode: DialogueMode::TwoWayAlternate,
            application_context: acse::ID_AC_MTS_TRANSFER.to_vec(),
            local_ae_title: None,
            remote_ae_title: None,
            ss_user_reference: b"MTALAB".to_vec(),
            common_reference: "991231235959Z".to_owned(),
            cotp_reference: 1,
            establishment_timeout: Duration::from_secs(60),
            recovery_timeout: Duration::from_secs(60),
            max_apdu_size: 16 << 20,
            max_tsdu_size: (16 << 20) + (64 << 10),
            defer_transfer_confirmation: false,
        }
    }
}

/// How far the transfer being sent has got ([`Association::sending_progress`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendProgress {
    /// The transfer.
    pub id: TransferId,
    /// Octets of the transfer (the EXTERNAL carrying the APDU).
    pub octets: usize,
    /// Octets handed to the transport so far.
    pub sent: usize,
    /// Minor synchronization points sent (MIP), one per Checkpoint Size K octets.
    pub checkpoints_sent: u32,
    /// Minor synchronization points the receiver confirmed (MIA).
    pub checkpoints_confirmed: u32,
}

/// How far the activity being received has got ([`Association::receiving_progress`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiveProgress {
    /// Octets received so far (the EXTERNAL carrying the APDU, as far as it came).
    pub octets: usize,
    /// Minor synchronization points received (and confirmed with MIA).
    pub checkpoints: u32,
}

/// Names one [`Association::transfer`] for its [`Event::TransferConfirm`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransferId(pub u64);

/// What a responder learns from the peer's open (RT-OPEN indication).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssociateIndication {
    /// Calling TSAP selector from the CR (empty if absent).
    pub calling_tsap: Vec<u8>,
    /// Called TSAP selector from the CR.
    pub called_tsap: Vec<u8>,
    /// Calling session selector from the CN.
    pub calling_ssap: Vec<u8>,
    /// Called session selector from the CN.
    pub called_ssap: Vec<u8>,
    /// Calling presentation selector from the CP.
    pub calling_psap: Vec<u8>,
    /// Called presentation selector from the CP.
    pub called_psap: Vec<u8>,
    /// Application context name from the AARQ.
    pub application_context: Vec<u32>,
    /// Calling AE-title, when in form 2.
    pub calling_ae_title: Option<AeTitle>,
    /// Called AE-title, when in form 2.
    pub called_ae_title: Option<AeTitle>,
    /// The MTABindArgument, its \[16\] tag removed (the raw open value if it had none);
    /// empty for a recover.
    pub bind_argument: Vec<u8>,
    /// Whether the open value carried the \[16\] tag.
    pub bind_argument_tagged: bool,
    /// Checkpoint size the initiator proposed (units of 1024 octets).
    pub checkpoint_size: u32,
    /// Window size the initiator proposed.
    pub window_size: u32,
    /// Dialogue mode the initiator proposed.
    pub dialogue_mode: DialogueMode,
    /// Negotiated TPDU size, octets.
    pub tpdu_size: usize,
    /// The RTORQ asks to recover this earlier session connection instead of a new open:
    /// answer with [`Association::accept_recovery`] or [`Association::refuse_recovery`].
    pub recover: Option<SessionConnectionIdentifier>,
}

/// What an initiator learns from an accepted open (RT-OPEN confirm, positive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssociateConfirm {
    /// The MTABindResult, its \[17\] tag removed (the raw open value if it had none).
    pub bind_result: Vec<u8>,
    /// Negotiated checkpoint size (units of 1024 octets, 0 = none).
    pub checkpoint_size: u32,
    /// Negotiated window size.
    pub window_size: u32,
    /// Dialogue mode.
    pub dialogue_mode: DialogueMode,
    /// Responding AE-title, when in form 2.
    pub responding_ae_title: Option<AeTitle>,
    /// The peer accepted a recover ([`Association::initiator_recovering`]): no bind result;
    /// the interrupted transfer goes on.
    pub recovered: bool,
}

/// Where an interrupted outgoing transfer can go on ([`Association::take_recovery_point`]):
/// its APDU (as the EXTERNAL sent), the last minor synchronization point the receiver
/// confirmed, and the session connection and activity it ran on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryPoint {
    /// The session connection the transfer ran on: the RTORQ's `recover` value.
    pub connection: SessionConnectionIdentifier,
    /// The interrupted activity's identifier (the AS's PI 41).
    pub activity_id: Vec<u8>,
    /// Serial number of the last minor synchronization point the receiver confirmed (≥ 1).
    pub serial: u32,
    /// Octets of the transfer sent up to that point: what need not be sent again.
    pub confirmed: usize,
    data: Vec<u8>,
}

impl RecoveryPoint {
    /// Octets of the whole transfer (the EXTERNAL carrying the APDU).
    pub fn octets(&self) -> usize {
        self.data.len()
    }
}

/// What the receiver keeps of an interrupted incoming transfer
/// ([`Association::take_partial_transfer`]): the octets received up to the last minor
/// synchronization point it confirmed, and where each confirmed point fell, for a sender that
/// resumes from an earlier one (its last confirmation lost with the connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialTransfer {
    /// The session connection it came on, as the peer's CN named it: the `recover` value a
    /// resuming sender sends.
    pub connection: SessionConnectionIdentifier,
    /// The interrupted activity's identifier.
    pub activity_id: Vec<u8>,
    /// Octets received at each confirmed point (index = serial number - 1).
    checkpoints: Vec<usize>,
    data: Vec<u8>,
}

impl PartialTransfer {
    /// Minor synchronization points confirmed (the last one's serial number).
    pub fn checkpoints(&self) -> u32 {
        self.checkpoints.len() as u32
    }

    /// Octets kept (up to the last confirmed point).
    pub fn octets(&self) -> usize {
        self.data.len()
    }
}

/// Why an open was refused (RT-OPEN confirm, negative).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The RF reason code (X.225 §8.3.4.7), or `None` when the refusal came in an AC.
    pub session_reason: Option<u8>,
    /// CPR provider-reason, if any.
    pub presentation_reason: Option<i64>,
    /// AARE result (1 rejected-permanent, 2 rejected-transient), if any.
    pub acse_result: Option<i64>,
    /// AARE result-source-diagnostic, if any.
    pub acse_diagnostic: Option<SourceDiagnostic>,
    /// RTORJ refuseReason, if any.
    pub rtse_reason: Option<i64>,
    /// The MTABindError, its \[18\] tag removed if it had one.
    pub bind_error: Option<Vec<u8>>,
}

/// Why an association ended abnormally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AbortReason {
    /// The peer aborted (session AB); what its abort carried.
    Peer {
        /// Transport Disconnect bits of the AB, if present.
        transport_disconnect: Option<u8>,
        /// ARP-PPDU provider-reason, for a presentation provider abort.
        presentation_reason: Option<i64>,
        /// ABRT abort-source (0 user, 1 provider), if an ABRT came.
        acse_source: Option<i64>,
        /// RTAB abortReason, if an RTAB came.
        rtse_reason: Option<i64>,
    },
    /// The peer closed the transport (COTP DR, or ER: the reason or cause octet).
    Transport {
        /// The TPDU that ended it.
        tpdu: &'static str,
        /// DR reason or ER cause.
        code: u8,
    },
    /// The peer's input was malformed or out of sequence; we aborted.
    Protocol(String),
    /// A confirmation did not arrive in time; we aborted.
    Timeout(&'static str),
    /// The peer reported an exception (session ER/ED) during our transfer; we aborted.
    Exception(Option<u8>),
}

impl fmt::Display for AbortReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AbortReason::Peer {
                transport_disconnect,
                presentation_reason,
                acse_source,
                rtse_reason,
            } => {
                write!(f, "aborted by peer")?;
                if let Some(t) = transport_disconnect {
                    write!(f, ", transport disconnect {t:#04x}")?;
                }
                if let Some(r) = presentation_reason {
                    write!(f, ", presentation provider reason {r}")?;
                }
                if let Some(s) = acse_source {
                    write!(
                        f,
                        ", acse source {}",
                        if *s == 0 { "user" } else { "provider" }
                    )?;
                }
                if let Some(r) = rtse_reason {
                    write!(f, ", rtse abort reason {r}")?;
                }
                Ok(())
            }
            AbortReason::Transport { tpdu, code } => {
                write!(f, "transport closed by peer {tpdu} {code:#04x}")
            }
            AbortReason::Protocol(e) => write!(f, "protocol error: {e}"),
            AbortReason::Timeout(what) => write!(f, "timed out waiting for {what}"),
            AbortReason::Exception(r) => write!(f, "peer reported an exception ({r:?})"),
        }
    }
}

/// Indications and confirmations for the MTA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Responder: a peer asks to open; answer with [`Association::accept`] or
    /// [`Association::refuse`].
    AssociateIndication(Box<AssociateIndication>),
    /// Initiator: the peer accepted.
    AssociateConfirm(AssociateConfirm),
    /// Initiator: the peer refused; the association is closed.
    AssociateRefused(Refusal),
    /// An APDU arrived whole (after the peer's activity end, which has been confirmed).
    TransferIndication {
        /// The MTS-APDU (the value inside the EXTERNAL), as BER.
        apdu: Vec<u8>,
    },
    /// The peer confirmed the activity end of a transfer: it has the APDU.
    TransferConfirm {
        /// The transfer.
        id: TransferId,
    },
    /// The peer gave us the turn.
    TurnGiven,
    /// The peer asks for the turn (it will be given once our queue is empty).
    TurnRequested {
        /// RTTP priority, if the request carried one.
        priority: Option<i64>,
    },
    /// The association was released normally; the association is closed.
    Released,
    /// The association ended abnormally; the association is closed.
    Aborted {
        /// Why.
        reason: AbortReason,
    },
}

/// Negotiated parameters of an established association.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// TPDU size, octets.
    pub tpdu_size: usize,
    /// Checkpoint size, units of 1024 octets (0 = none).
    pub checkpoint_size: u32,
    /// Window size.
    pub window_size: u32,
    /// Dialogue mode.
    pub dialogue_mode: DialogueMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitingCr,
    AwaitingCc,
    AwaitingCn,
    AwaitingAc,
    AwaitingUserResponse,
    Established,
    AwaitingDn,
    Closed,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::AwaitingCr => "awaiting-cr",
            State::AwaitingCc => "awaiting-cc",
            State::AwaitingCn => "awaiting-cn",
            State::AwaitingAc => "awaiting-ac",
            State::AwaitingUserResponse => "awaiting-user-response",
            State::Established => "established",
            State::AwaitingDn => "awaiting-dn",
            State::Closed => "closed",
        }
    }
}

/// The open the responder holds until the user answers it.
#[derive(Debug, Clone)]
struct PendingOpen {
    connection_id: Option<ConnectionId>,
    recover: Option<SessionConnectionIdentifier>,
    requirements: u16,
    version: u8,
    token_setting: Option<u8>,
    results: Vec<ContextResult>,
    application_context: ObjectIdentifier,
}

/// An outgoing transfer in progress.
#[derive(Debug)]
struct Sending {
    id: TransferId,
    data: Vec<u8>,
    offset: usize,
    started: bool,
    next_serial: u32,
    acked_serial: u32,
    ae_serial: Option<u32>,
    activity_id: Vec<u8>,
    /// Minor syncs sent and not yet confirmed: (serial number, octets sent before it).
    mips: VecDeque<(u32, usize)>,
    /// Octets sent before the last confirmed minor sync.
    confirmed: usize,
}

impl Sending {
    fn new(id: TransferId, data: Vec<u8>) -> Sending {
        Sending {
            id,
            data,
            offset: 0,
            started: false,
            next_serial: 1,
            acked_serial: 0,
            ae_serial: None,
            activity_id: Vec::new(),
            mips: VecDeque::new(),
            confirmed: 0,
        }
    }
}

/// An incoming transfer in progress.
#[derive(Debug)]
struct Receiving {
    data: Vec<u8>,
    next_serial: u32,
    activity_id: Vec<u8>,
    /// Octets received at each minor sync (index = serial number - 1).
    checkpoints: Vec<usize>,
}

/// What an association keeps for RTSE recovery (see the module documentation).
#[derive(Debug, Default)]
struct Recovery {
    /// Initiator: the session connection the RTORQ asks to recover.
    ask: Option<SessionConnectionIdentifier>,
    /// Initiator: the transfer to resume once the recover is accepted.
    resume_out: Option<(TransferId, RecoveryPoint)>,
    /// Initiator: where the transfer under way stood when the association ended.
    point: Option<RecoveryPoint>,
    /// Responder: the peer's session connection (from its CN).
    peer_session: Option<SessionConnectionIdentifier>,
    /// Responder: the partial transfer a recover was accepted for, until the AR.
    resume_in: Option<PartialTransfer>,
    /// Responder: what was received of the transfer under way when the association ended.
    partial: Option<PartialTransfer>,
}

/// One RTS association (see the module documentation).
#[derive(Debug)]
pub struct Association {
    role: Role,
    cfg: AssociationConfig,
    /// Serial number of a received activity end not yet confirmed (deferred AEA).
    unconfirmed_activity_end: Option<u32>,
    state: State,
    now: Option<Instant>,
    rx: Vec<u8>,
    /// TPKT frames to send, back to back (each says its own length, RFC 1006 §6).
    tx: Vec<u8>,
    /// A TSDU being written before it is cut into DTs: kept between TSDUs, so that sending
    /// one does not allocate.
    tsdu: Vec<u8>,
    events: VecDeque<Event>,
    deadline: Option<(Instant, &'static str)>,
    // transport
    tpdu_size: TpduSize,
    remote_ref: u16,
    reassembler: Reassembler,
    session_up: bool,
    // presentation contexts
    acse_ctx: i64,
    rtse_ctx: i64,
    mtse_ctx: i64,
    // initiator's open
    bind_argument: Vec<u8>,
    // responder's indication data
    pending_tsaps: Option<(Vec<u8>, Vec<u8>)>,
    pending: Option<PendingOpen>,
    // data phase
    checkpoint_size: u32,
    window_size: u32,
    dialogue_mode: DialogueMode,
    have_turn: bool,
    turn_requested: bool,
    peer_wants_turn: bool,
    awaiting_gta: bool,
    release_pending: bool,
    outgoing: VecDeque<(TransferId, Vec<u8>)>,
    sending: Option<Sending>,
    receiving: Option<Receiving>,
    next_transfer: u64,
    activity_counter: u8,
    /// Boxed: past a responder's `peer_session`, noted at the CN, only associations that
    /// recover or break in the middle of a transfer fill it.
    recovery: Box<Recovery>,
}

fn ber_octet_string(v: &[u8]) -> Vec<u8> {
    ber::wrap(0x04, v)
}

fn ber_integer(v: i64) -> Vec<u8> {
    ber::encode(&v)
}

fn ae_title_any(t: &AeTitle) -> (Option<Any>, Option<Any>) {
    let ap = ObjectIdentifier::new(t.ap_title.clone()).map(|o| Any::new(ber::encode(&o)));
    (ap, t.ae_qualifier.map(|q| Any::new(ber_integer(q))))
}

fn ae_title_from(ap: &Option<Any>, ae: &Option<Any>) -> Option<AeTitle> {
    let ap: ObjectIdentifier = ber::decode(ap.as_ref()?.as_bytes()).ok()?;
    let q = ae
        .as_ref()
        .and_then(|a| ber::decode::<i64>(a.as_bytes()).ok());
    Some(AeTitle {
        ap_title: ap.to_vec(),
        ae_qualifier: q,
    })
}

fn check_single_value(v: &[u8], what: &'static str) -> Result<(), AssociationError> {
    match ber::scan(v, ber::MAX_DEPTH) {
        Ok(n) if n == v.len() => Ok(()),
        _ => Err(AssociationError::InvalidArgument(what)),
    }
}

/// [`check_single_value`] for an APDU to transfer, kilobytes or more: when its outer length
/// is definite, that length ending exactly at the end of `v` makes it one value, and its
/// contents (the caller's encoding, read octet by octet by the receiver) are not walked
/// here; an indefinite outer length is scanned to find its end.
fn check_single_apdu(v: &[u8], what: &'static str) -> Result<(), AssociationError> {
    match ber::read_header(v) {
        Ok(ber::Header {
            length: Some(len),
            header_len,
            ..
        }) if header_len.checked_add(len) == Some(v.len()) => Ok(()),
        Ok(ber::Header {
            length: Some(_), ..
        })
        | Err(_) => Err(AssociationError::InvalidArgument(what)),
        Ok(_) => check_single_value(v, what),
    }
}

/// The session connection an initiator's CN names (its Connection Identifier), as RTSE's
/// `recover` names it: `None` when the common reference is no UTCTime.
fn own_session(cfg: &AssociationConfig) -> Option<SessionConnectionIdentifier> {
    Some(SessionConnectionIdentifier {
        calling_ss_user_reference: CallingSsUserReference::OctetString(
            cfg.ss_user_reference.clone().into(),
        ),
        common_reference: ber::decode(&ber::wrap(0x17, cfg.common_reference.as_bytes())).ok()?,
        additional_reference_information: None,
    })
}

/// The session connection a peer's CN names, read as RTSE's `recover` names it (X.228
/// SessionConnectionIdentifier: the calling SS-user reference and the common reference each
/// the BER of its type): `None` when they are absent or not in that form.
fn session_of(c: &ConnectionId) -> Option<SessionConnectionIdentifier> {
    let calling = ber::decode::<CallingSsUserReference>(c.calling_ss_user_ref.as_deref()?).ok()?;
    let common = ber::decode(c.common_ref.as_deref()?).ok()?;
    let additional = match &c.additional_ref {
        Some(a) => Some(rasn::types::TeletexString::from_bytes(a).ok()?),
        None => None,
    };
    Some(SessionConnectionIdentifier {
        calling_ss_user_reference: calling,
        common_reference: common,
        additional_reference_information: additional,
    })
}

fn selector(v: &[u8]) -> Option<Vec<u8>> {
    (!v.is_empty()).then(|| v.to_vec())
}

impl Association {
    fn new(role: Role, cfg: AssociationConfig, state: State) -> Association {
        let tpdu_size = TpduSize::at_most(cfg.tpdu_size);
        let max_tsdu = cfg.max_tsdu_size;
        Association {
            role,
            unconfirmed_activity_end: None,
            state,
            now: None,
            rx: Vec::new(),
            tx: Vec::new(),
            tsdu: Vec::new(),
            events: VecDeque::new(),
            deadline: None,
            tpdu_size,
            remote_ref: 0,
            reassembler: Reassembler::new(max_tsdu),
            session_up: false,
            acse_ctx: presentation::context::ACSE,
            rtse_ctx: presentation::context::MTA_RTSE,
            mtse_ctx: presentation::context::MTSE,
            bind_argument: Vec::new(),
            pending_tsaps: None,
            pending: None,
            checkpoint_size: 0,
            window_size: rtse::DEFAULT_WINDOW_SIZE,
            dialogue_mode: cfg.dialogue_mode,
            have_turn: false,
            turn_requested: false,
            peer_wants_turn: false,
            awaiting_gta: false,
            release_pending: false,
            outgoing: VecDeque::new(),
            sending: None,
            receiving: None,
            next_transfer: 1,
            activity_counter: 0,
            recovery: Box::default(),
            cfg,
        }
    }

    fn validate(cfg: &AssociationConfig) -> Result<(), AssociationError> {
        if cfg.local_tsap.len() > cotp::MAX_TSAP_LEN || cfg.remote_tsap.len() > cotp::MAX_TSAP_LEN {
            return Err(AssociationError::InvalidArgument(
                "tsap selector longer than 32 octets",
            ));
        }
        if cfg.local_ssap.len() > session::MAX_SSAP_LEN
            || cfg.remote_ssap.len() > session::MAX_SSAP_LEN
        {
            return Err(AssociationError::InvalidArgument(
                "ssap selector longer than 16 octets",
            ));
        }
        if cfg.local_psap.len() > presentation::MAX_PSAP_LEN
            || cfg.remote_psap.len() > presentation::MAX_PSAP_LEN
        {
            return Err(AssociationError::InvalidArgument(
                "psap selector longer than 64 octets",
            ));
        }
        if cfg.checkpoint_size > rtse::MAX_CHECKPOINT_SIZE {
            return Err(AssociationError::InvalidArgument(
                "checkpoint size above 1024",
            ));
        }
        if cfg.window_size == 0 || cfg.window_size > rtse::MAX_WINDOW_SIZE {
            return Err(AssociationError::InvalidArgument(
                "window size not in 1..=1000",
            ));
        }
        if ObjectIdentifier::new(cfg.application_context.clone()).is_none() {
            return Err(AssociationError::InvalidArgument(
                "application context is no object identifier",
            ));
        }
        if cfg.ss_user_reference.len() > session::MAX_REFERENCE_LEN - 2
            || cfg.common_reference.len() > session::MAX_REFERENCE_LEN - 2
        {
            return Err(AssociationError::InvalidArgument(
                "session reference longer than 62 octets",
            ));
        }
        Ok(())
    }

    /// An initiator: queues the CR and arms the establishment timer.
    ///
    /// `bind_argument` is the BER of the plain MTABindArgument (X.411 §12.1: `NULL` or
    /// `[1] authenticated SET {...}`), without the \[16\] remote operations tag: the
    /// association adds it.
    ///
    /// # Errors
    /// [`AssociationError::InvalidArgument`] for selectors over their caps, a checkpoint or
    /// window size out of range, or a bind argument that is not exactly one BER value.
    pub fn initiator(
        cfg: AssociationConfig,
        bind_argument: Vec<u8>,
        now: Instant,
    ) -> Result<Association, OsiError> {
        Self::validate(&cfg)?;
        check_single_value(&bind_argument, "bind argument is not one ber value")?;
        let mut a = Association::new(Role::Initiator, cfg, State::AwaitingCc);
        a.bind_argument = bind_argument;
        a.connect(now);
        Ok(a)
    }

    /// An initiator that recovers the session connection of `point` (RTORQ { recover }, no
    /// bind) and, once the responder accepts, resumes its transfer from the last confirmed
    /// checkpoint: GT+AR, then the rest. Returns the id the transfer's
    /// [`Event::TransferConfirm`] will carry. A refusal ([`Event::AssociateRefused`] with
    /// `rtse_reason` cannot-recover) or an association that ends before the AR is sent leaves
    /// the point to [`Association::take_recovery_point`] again.
    ///
    /// # Errors
    /// As [`Association::initiator`], for the configuration.
    pub fn initiator_recovering(
        cfg: AssociationConfig,
        point: RecoveryPoint,
        now: Instant,
    ) -> Result<(Association, TransferId), OsiError> {
        Self::validate(&cfg)?;
        let mut a = Association::new(Role::Initiator, cfg, State::AwaitingCc);
        let id = TransferId(a.next_transfer);
        a.next_transfer += 1;
        a.recovery.ask = Some(point.connection.clone());
        a.recovery.resume_out = Some((id, point));
        a.connect(now);
        Ok((a, id))
    }

    /// Queues the CR and arms the establishment timer.
    fn connect(&mut self, now: Instant) {
        let a = self;
        a.now = Some(now);
        a.deadline = Some((now + a.cfg.establishment_timeout, "cc"));
        let cr = Tpdu::Cr(ConnectTpdu {
            dst_ref: 0,
            src_ref: a.cfg.cotp_reference,
            class_option: 0,
            tpdu_size: Some(a.tpdu_size),
            calling_tsap: selector(&a.cfg.local_tsap),
            called_tsap: selector(&a.cfg.remote_tsap),
            other: Vec::new(),
        });
        a.send_tpdu(&cr);
    }

    /// A responder waiting for a CR.
    ///
    /// # Errors
    /// As [`Association::initiator`], for the configuration.
    pub fn responder(cfg: AssociationConfig) -> Result<Association, OsiError> {
        Self::validate(&cfg)?;
        Ok(Association::new(Role::Responder, cfg, State::AwaitingCr))
    }

    /// This association's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether the association is established (bind accepted, not yet releasing).
    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }

    /// Whether the association is over: close the transport once the transmit queue is
    /// empty.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Whether we hold the turn (all the tokens).
    pub fn has_turn(&self) -> bool {
        self.have_turn
    }

    /// Transfers queued or in progress (not yet confirmed), a transfer to resume included.
    pub fn pending_transfers(&self) -> usize {
        self.outgoing.len()
            + usize::from(self.sending.is_some())
            + usize::from(self.recovery.resume_out.is_some())
    }

    /// Responder: the session connection the peer's CN named, read as an RTSE recover names
    /// it (None before the CN, or when its references are not in that form): the key under
    /// which a recover asks for this association's partial transfer.
    pub fn peer_session(&self) -> Option<&SessionConnectionIdentifier> {
        self.recovery.peer_session.as_ref()
    }

    /// Initiator, once closed: where the transfer under way stood, if the association ended
    /// in the middle of one after at least one checkpoint was confirmed (or a recovering
    /// association ended before it resumed). For [`Association::initiator_recovering`].
    pub fn take_recovery_point(&mut self) -> Option<RecoveryPoint> {
        self.recovery.point.take()
    }

    /// Responder, once closed: what arrived of the transfer under way, if the association
    /// ended in the middle of one after at least one checkpoint was confirmed (or a
    /// recovered association ended before the transfer resumed). For
    /// [`Association::accept_recovery`].
    pub fn take_partial_transfer(&mut self) -> Option<PartialTransfer> {
        self.recovery.partial.take()
    }

    /// The transfer being sent, if one is under way (started, not yet confirmed).
    pub fn sending_progress(&self) -> Option<SendProgress> {
        let s = self.sending.as_ref().filter(|s| s.started)?;
        Some(SendProgress {
            id: s.id,
            octets: s.data.len(),
            sent: s.offset,
            checkpoints_sent: s.next_serial - 1,
            checkpoints_confirmed: s.acked_serial,
        })
    }

    /// The activity being received, if one is under way (after AS, before AE).
    pub fn receiving_progress(&self) -> Option<ReceiveProgress> {
        self.receiving.as_ref().map(|r| ReceiveProgress {
            octets: r.data.len(),
            checkpoints: r.next_serial - 1,
        })
    }

    /// The negotiated parameters, once established.
    pub fn negotiated(&self) -> Option<Negotiated> {
        matches!(self.state, State::Established | State::AwaitingDn).then_some(Negotiated {
            tpdu_size: self.tpdu_size.octets(),
            checkpoint_size: self.checkpoint_size,
            window_size: self.window_size,
            dialogue_mode: self.dialogue_mode,
        })
    }

    /// The next TPKT frame to write to TCP, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        let len = match self.tx[..] {
            [_, _, hi, lo, ..] => usize::from(u16::from_be_bytes([hi, lo])),
            _ => return None,
        };
        Some(self.tx.drain(..len).collect())
    }

    /// Every TPKT frame to write to TCP, appended to `out` (the frames [`poll_transmit`]
    /// would give one by one). Into an empty `out` the frames are handed over without a
    /// copy: `out` takes the association's buffer and leaves its own, allocation and all.
    ///
    /// [`poll_transmit`]: Association::poll_transmit
    pub fn transmit_into(&mut self, out: &mut Vec<u8>) {
        if out.is_empty() {
            std::mem::swap(out, &mut self.tx);
        } else {
            out.append(&mut self.tx);
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Association::handle_timeout`] must be called next, if at all.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline.map(|(t, _)| t)
    }

    /// Fires the timer if `now` has reached it: the association aborts with
    /// [`AbortReason::Timeout`] (a DR while awaiting the CN, an AB while awaiting the AC, an
    /// AB carrying an RTAB "temporary problem" once established).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = Some(now);
        if let Some((t, what)) = self.deadline
            && now >= t
        {
            self.deadline = None;
            match self.state {
                State::Closed => return,
                State::AwaitingCr | State::AwaitingCc => {}
                State::AwaitingCn => self.send_dr(0),
                State::AwaitingAc | State::AwaitingUserResponse => {
                    self.send_ab(disconnect::RELEASE_TRANSPORT, None)
                }
                State::Established | State::AwaitingDn => {
                    self.send_abort_pdu(Reaction::RtseAbort {
                        reason: rtse::abort_reason::TEMPORARY_PROBLEM,
                    })
                }
            }
            self.close(Some(AbortReason::Timeout(what)));
        }
    }

    /// Feeds bytes read from TCP.
    ///
    /// # Errors
    /// The first error in the peer's input. Its [`Reaction`] has been queued for
    /// transmission, an [`Event::Aborted`] queued, and the association is closed. Input
    /// after the association closed is ignored.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) -> Result<(), OsiError> {
        self.now = Some(now);
        if self.state == State::Closed {
            return Ok(());
        }
        if self.role == Role::Responder
            && self.state == State::AwaitingCr
            && self.deadline.is_none()
        {
            self.deadline = Some((now + self.cfg.establishment_timeout, "cr"));
        }
        // The TPDUs are read where they lie: in `bytes` itself when nothing was left over
        // from the last input (the usual case), else after that remainder. Only what ends
        // in the middle of a TPKT is kept.
        let mut rx = std::mem::take(&mut self.rx);
        let input: &[u8] = if rx.is_empty() {
            bytes
        } else {
            rx.extend_from_slice(bytes);
            &rx
        };
        let mut pos = 0;
        let result = loop {
            match tpkt::decode(&input[pos..]) {
                Ok(None) => break Ok(()),
                Err(e) => break Err(OsiError::from(e)),
                Ok(Some((tpdu, used))) => {
                    pos += used;
                    if let Err(e) = self.on_tpdu(tpdu) {
                        break Err(e);
                    }
                    if self.state == State::Closed {
                        break Ok(());
                    }
                }
            }
        };
        if self.state != State::Closed {
            let rest = input.len() - pos;
            if rx.is_empty() {
                rx.extend_from_slice(&bytes[pos..]);
            } else {
                rx.drain(..pos);
            }
            debug_assert_eq!(rx.len(), rest);
            self.rx = rx;
        }
        self.arm_receive_timer(now);
        result.map_err(|e| self.fail(e))
    }

    /// Receiving an activity: every input restarts the recovery timer ("transfer data"); it
    /// stops when the activity ends (or is interrupted or discarded).
    fn arm_receive_timer(&mut self, now: Instant) {
        const WHAT: &str = "transfer data";
        let receiving = self.receiving.is_some()
            && self.sending.is_none()
            && matches!(self.state, State::Established | State::AwaitingDn);
        if receiving {
            self.deadline = Some((now + self.cfg.recovery_timeout, WHAT));
        } else if matches!(self.deadline, Some((_, w)) if w == WHAT) {
            self.deadline = None;
        }
    }

    /// Responder: accepts the open with this bind result (the BER of the plain
    /// MTABindResult; the association adds the \[17\] tag). Sends the AC.
    ///
    /// # Errors
    /// [`AssociationError::Api`] outside the awaiting-user-response state or for a recover
    /// (see [`Association::accept_recovery`]), [`AssociationError::InvalidArgument`] if
    /// `bind_result` is not one BER value.
    pub fn accept(&mut self, bind_result: Vec<u8>) -> Result<(), OsiError> {
        let p = self.pending_open("accept", false)?;
        if let Err(e) = check_single_value(&bind_result, "bind result is not one ber value") {
            self.pending = Some(p);
            return Err(e.into());
        }
        let data = ConnectionData::Open(Any::new(rtse::wrap_bind(BindTag::Result, &bind_result)));
        self.send_accept(p, data)
    }

    /// Responder: accepts a recover ([`AssociateIndication::recover`]) with the partial
    /// transfer of that session connection, kept from the association that broke
    /// ([`Association::take_partial_transfer`]). Sends the AC with RTOAC { recover }; the
    /// sender's AR must then resume that transfer's activity at one of its confirmed points.
    ///
    /// # Errors
    /// [`AssociationError::Api`] outside the awaiting-user-response state or for an open
    /// that is no recover; [`AssociationError::InvalidArgument`] for a partial transfer of
    /// another session connection (nothing is sent: answer with
    /// [`Association::refuse_recovery`]).
    pub fn accept_recovery(&mut self, partial: PartialTransfer) -> Result<(), OsiError> {
        let p = self.pending_open("accept_recovery", true)?;
        let Some(id) = p.recover.clone().filter(|id| *id == partial.connection) else {
            self.pending = Some(p);
            return Err(AssociationError::InvalidArgument(
                "partial transfer of another session connection",
            )
            .into());
        };
        self.recovery.resume_in = Some(partial);
        self.send_accept(p, ConnectionData::Recover(id))
    }

    /// Responder: refuses a recover ([`AssociateIndication::recover`]) this side cannot
    /// serve (no partial transfer of that session connection is kept): RF { CPR { AARE
    /// rejected-permanent { RTORJ { refuseReason cannot-recover } } } }, then closes. The
    /// sender then opens anew and transfers from the start.
    ///
    /// # Errors
    /// [`AssociationError::Api`] outside the awaiting-user-response state or for an open
    /// that is no recover.
    pub fn refuse_recovery(&mut self) -> Result<(), OsiError> {
        let p = self.pending_open("refuse_recovery", true)?;
        self.send_refusal(
            p,
            Rtorj {
                refuse_reason: Some(rtse::refuse_reason::CANNOT_RECOVER),
                user_data_rj: None,
            },
        )
    }

    /// The open awaiting the user's answer, if it is (`recover`) or is not a recover.
    fn pending_open(
        &mut self,
        action: &'static str,
        recover: bool,
    ) -> Result<PendingOpen, OsiError> {
        match self.pending.take() {
            Some(p)
                if self.state == State::AwaitingUserResponse && p.recover.is_some() == recover =>
            {
                Ok(p)
            }
            other => {
                self.pending = other;
                Err(self.api(action).into())
            }
        }
    }

    /// Sends the AC { CPA { AARE accepted { RTOAC { `data` } } } } and enters the data phase.
    fn send_accept(&mut self, p: PendingOpen, data: ConnectionData) -> Result<(), OsiError> {
        let rtoac = RtseApdu::Rtoac(Rtoac {
            checkpoint_size: (self.checkpoint_size > 0).then_some(self.checkpoint_size),
            window_size: Some(self.window_size),
            connection_data_ac: data,
        });
        let mut aare = Aare::new(
            p.application_context.clone(),
            acse::result::ACCEPTED,
            SourceDiagnostic::ServiceUser(0),
        );
        if let Some(t) = &self.cfg.local_ae_title {
            (aare.responding_ap_title, aare.responding_ae_qualifier) = ae_title_any(t);
        }
        aare.user_information = Some(vec![self.rtse_external(rtoac.encode())]);
        let cpa = CpaPpdu {
            mode_selector: ModeSelector::normal(),
            x410_mode_parameters: None,
            normal_mode_parameters: Some(CpaNormalMode {
                protocol_version: version1(),
                responding_presentation_selector: selector(&self.cfg.local_psap)
                    .map(OctetString::from),
                presentation_context_definition_result_list: Some(p.results.clone()),
                presentation_requirements: None,
                user_session_requirements: None,
                protocol_options: None,
                responders_nominated_context: None,
                user_data: Some(UserData::single(
                    self.acse_ctx,
                    AcseApdu::Aare(aare).encode(),
                )),
            }),
        };
        let params = Params {
            connection_id: Some(Self::echo_connection_id(&p.connection_id)),
            accept_item: Some(ConnectAcceptItem {
                protocol_options: Some(0),
                version: Some(p.version),
                token_setting: p.token_setting,
                ..ConnectAcceptItem::default()
            }),
            requirements: Some(p.requirements),
            called_ssap: Some(self.cfg.local_ssap.clone()),
            user_data: Some(cpa.encode()),
            ..Params::default()
        };
        self.send_spdus(&[Spdu::with(SpduCode::AC, params)])?;
        self.session_up = true;
        self.state = State::Established;
        self.deadline = None;
        self.pump();
        Ok(())
    }

    /// Responder: refuses the open with this bind error (the BER of the plain MTABindError,
    /// e.g. `02 01 02` authentication-error; sent under the \[18\] tag). Sends RF { Reason
    /// Code 2 + CPR { AARE rejected-permanent { RTORJ { userDataRJ } } } } and closes.
    ///
    /// # Errors
    /// As [`Association::accept`].
    pub fn refuse(&mut self, bind_error: Vec<u8>) -> Result<(), OsiError> {
        let p = self.pending_open("refuse", false)?;
        if let Err(e) = check_single_value(&bind_error, "bind error is not one ber value") {
            self.pending = Some(p);
            return Err(e.into());
        }
        let rtorj = Rtorj {
            refuse_reason: None,
            user_data_rj: Some(Any::new(rtse::wrap_bind(BindTag::Error, &bind_error))),
        };
        self.send_refusal(p, rtorj)
    }

    /// Sends the RF { Reason Code 2 + CPR { AARE rejected-permanent { `rtorj` } } } and closes.
    fn send_refusal(&mut self, p: PendingOpen, rtorj: Rtorj) -> Result<(), OsiError> {
        let rtorj = RtseApdu::Rtorj(rtorj);
        let mut aare = Aare::new(
            p.application_context.clone(),
            acse::result::REJECTED_PERMANENT,
            SourceDiagnostic::ServiceUser(acse::user_diagnostic::NO_REASON_GIVEN),
        );
        aare.user_information = Some(vec![self.rtse_external(rtorj.encode())]);
        let cpr = CprPpdu::NormalModeParameters(CprNormalMode {
            protocol_version: version1(),
            responding_presentation_selector: selector(&self.cfg.local_psap).map(OctetString::from),
            presentation_context_definition_result_list: Some(p.results.clone()),
            default_context_result: None,
            provider_reason: None,
            user_data: Some(UserData::single(
                self.acse_ctx,
                AcseApdu::Aare(aare).encode(),
            )),
        });
        let mut reason = vec![session::refuse_reason::REJECTED_WITH_DATA];
        reason.extend_from_slice(&cpr.encode());
        let params = Params {
            connection_id: Some(Self::echo_connection_id(&p.connection_id)),
            transport_disconnect: Some(disconnect::RELEASE_TRANSPORT),
            requirements: Some(p.requirements),
            reason: Some(reason),
            ..Params::default()
        };
        self.send_spdus(&[Spdu::with(SpduCode::RF, params)])?;
        self.close(None);
        Ok(())
    }

    /// Queues one MTS-APDU (its BER) for RT-TRANSFER. The APDU goes out when we hold the
    /// turn and earlier transfers are confirmed; without the turn it is requested with a PT
    /// carrying an RTTP (priority 1). [`Event::TransferConfirm`] with the returned id follows
    /// the peer's activity end ack. The APDU is copied into the transfer's EXTERNAL, so the
    /// caller keeps its buffer (to send it again on another association after a failure).
    ///
    /// # Errors
    /// [`AssociationError::Api`] unless established (or, for a responder in monologue mode,
    /// at all); [`AssociationError::InvalidArgument`] for an APDU that is not one BER value
    /// or exceeds [`AssociationConfig::max_apdu_size`].
    pub fn transfer(&mut self, apdu: impl AsRef<[u8]>) -> Result<TransferId, OsiError> {
        let apdu = apdu.as_ref();
        if self.state != State::Established
            || self.release_pending
            || (self.role == Role::Responder && self.dialogue_mode == DialogueMode::Monologue)
        {
            return Err(self.api("transfer").into());
        }
        if apdu.len() > self.cfg.max_apdu_size {
            return Err(AssociationError::InvalidArgument("apdu exceeds max_apdu_size").into());
        }
        check_single_apdu(apdu, "apdu is not one ber value")?;
        let id = TransferId(self.next_transfer);
        self.next_transfer += 1;
        let external = acse::encode_single_external(self.mtse_ctx, apdu);
        self.outgoing.push_back((id, external));
        self.pump();
        Ok(id)
    }

    /// Initiator: releases the association (RT-CLOSE: FN { RLRQ }, answered DN { RLRE })
    /// once queued transfers are confirmed, asking for the turn first if needed.
    ///
    /// # Errors
    /// [`AssociationError::Api`] for a responder (X.228 §9.4: only the association-initiator
    /// closes) or unless established.
    pub fn release(&mut self) -> Result<(), OsiError> {
        if self.role != Role::Initiator || self.state != State::Established || self.release_pending
        {
            return Err(self.api("release").into());
        }
        self.release_pending = true;
        self.pump();
        Ok(())
    }

    /// Aborts at once (RT-U-ABORT: AB { ARU { ABRT { RTAB } } } when a session exists, a
    /// COTP DR when only the transport does) and closes. No event follows.
    pub fn abort(&mut self) {
        if self.state == State::Closed {
            return;
        }
        match self.state {
            State::AwaitingCr | State::AwaitingCc => {}
            State::AwaitingCn => self.send_dr(0),
            _ => {
                let abrt = Abrt {
                    abort_source: acse::abort_source::SERVICE_USER,
                    abort_diagnostic: None,
                    user_information: Some(vec![
                        self.rtse_external(
                            RtseApdu::Rtab(Rtab {
                                abort_reason: None,
                                reflected_parameter: None,
                                user_data_ab: None,
                            })
                            .encode(),
                        ),
                    ]),
                };
                self.send_ab(
                    disconnect::RELEASE_TRANSPORT | disconnect::USER_ABORT,
                    Some(self.aru(abrt)),
                );
            }
        }
        self.close(None);
    }

    // ----- internals: output -----

    fn api(&self, action: &'static str) -> AssociationError {
        AssociationError::Api {
            action,
            state: self.state.name(),
        }
    }

    fn send_tpdu(&mut self, t: &Tpdu) {
        tpkt::encode(&t.to_bytes(), &mut self.tx).expect("control tpdu fits a tpkt");
    }

    fn send_dr(&mut self, reason: u8) {
        let dr = Tpdu::Dr(DisconnectTpdu {
            dst_ref: self.remote_ref,
            src_ref: self.cfg.cotp_reference,
            reason,
            params: Vec::new(),
            user_data: Vec::new(),
        });
        self.send_tpdu(&dr);
    }

    fn send_tsdu(&mut self, tsdu: &[u8]) {
        cotp::segment_framed_into(tsdu, self.tpdu_size, &mut self.tx);
    }

    /// Keeps a TSDU buffer for the next one, unless it grew past 64 KiB (an APDU sent
    /// without checkpoints): that much is not held for the life of the association.
    fn keep_tsdu(&mut self, tsdu: Vec<u8>) {
        if tsdu.capacity() <= 64 * 1024 {
            self.tsdu = tsdu;
        }
    }

    fn send_spdus(&mut self, spdus: &[Spdu]) -> Result<(), OsiError> {
        let mut tsdu = std::mem::take(&mut self.tsdu);
        tsdu.clear();
        let r = spdus.iter().try_for_each(|s| s.encode(&mut tsdu));
        if r.is_ok() {
            self.send_tsdu(&tsdu);
        }
        self.keep_tsdu(tsdu);
        Ok(r?)
    }

    /// GT or PT (empty) followed by a category 2 SPDU.
    fn send_aea(&mut self, serial_number: u32) {
        let aea = Spdu::with(
            SpduCode::AEA,
            Params {
                serial_number: Some(serial_number),
                ..Params::default()
            },
        );
        self.send_cat2(false, aea);
    }

    /// With [`AssociationConfig::defer_transfer_confirmation`]: confirm the last
    /// [`Event::TransferIndication`] (sends the AEA). Does nothing when none is pending.
    pub fn confirm_transfer(&mut self) {
        if let Some(n) = self.unconfirmed_activity_end.take() {
            self.send_aea(n);
        }
    }

    fn send_cat2(&mut self, giver: bool, spdu: Spdu) {
        let first = Spdu::new(if giver { SpduCode::GT } else { SpduCode::PT });
        // Our own category 2 SPDUs have small parameters; DT user information is unbounded.
        self.send_spdus(&[first, spdu])
            .expect("category 2 spdu parameters fit");
    }

    fn send_ab(&mut self, transport_disconnect: u8, user_data: Option<Vec<u8>>) {
        let params = Params {
            transport_disconnect: Some(transport_disconnect),
            user_data,
            ..Params::default()
        };
        self.send_spdus(&[Spdu::with(SpduCode::AB, params)])
            .expect("abort spdu fits");
    }

    fn aru(&self, abrt: Abrt) -> Vec<u8> {
        AbortPpdu::Aru(AruPpdu::NormalModeParameters(AruNormalMode {
            presentation_context_identifier_list: None,
            user_data: Some(UserData::single(
                self.acse_ctx,
                AcseApdu::Abrt(abrt).encode(),
            )),
        }))
        .encode()
    }

    fn rtse_external(&self, value: Vec<u8>) -> External {
        External::single(
            Some(oid(presentation::BER_TRANSFER_SYNTAX)),
            self.rtse_ctx,
            value,
        )
    }

    fn pdata(&self, apdu: &RtseApdu) -> Vec<u8> {
        UserData::single(self.rtse_ctx, apdu.encode()).encode()
    }

    fn echo_connection_id(cn: &Option<ConnectionId>) -> ConnectionId {
        let cn = cn.clone().unwrap_or_default();
        ConnectionId {
            called_ss_user_ref: cn.calling_ss_user_ref,
            common_ref: cn.common_ref,
            additional_ref: cn.additional_ref,
            ..ConnectionId::default()
        }
    }

    /// Carries out the wire reaction to an error, queues the Aborted event, closes.
    fn fail(&mut self, e: OsiError) -> OsiError {
        if let OsiError::Association(a) = &e
            && a.is_api_misuse()
        {
            return e;
        }
        self.send_abort_pdu(e.reaction());
        self.close(Some(AbortReason::Protocol(e.to_string())));
        e
    }

    fn send_abort_pdu(&mut self, reaction: Reaction) {
        // TPDUs can answer anything once TCP carries a CR or CC; SPDUs need the transport.
        let tcp_up = self.state != State::Closed;
        let transport_up = !matches!(
            self.state,
            State::AwaitingCr | State::AwaitingCc | State::Closed
        );
        // Once the transport is up, any SPDU the peer sent (even a malformed CN) is answered
        // with an AB.
        let session_phase = transport_up;
        match reaction {
            Reaction::Close => {}
            Reaction::CotpDisconnect { reason } => {
                if tcp_up {
                    self.send_dr(reason);
                }
            }
            Reaction::CotpError { cause } => {
                if tcp_up {
                    self.send_tpdu(&Tpdu::Er(ErrorTpdu {
                        dst_ref: self.remote_ref,
                        cause,
                        invalid_tpdu: None,
                    }));
                }
            }
            _ if !session_phase => {
                if transport_up {
                    self.send_dr(0);
                }
            }
            Reaction::SessionAbort => {
                self.send_ab(
                    disconnect::RELEASE_TRANSPORT | disconnect::PROTOCOL_ERROR,
                    None,
                );
            }
            Reaction::PresentationAbort { provider_reason } => {
                let arp = AbortPpdu::Arp(ArpPpdu {
                    provider_reason: Some(provider_reason),
                    event_identifier: None,
                });
                self.send_ab(
                    disconnect::RELEASE_TRANSPORT | disconnect::PROTOCOL_ERROR,
                    Some(arp.encode()),
                );
            }
            Reaction::AcseAbort => {
                let abrt = Abrt {
                    abort_source: acse::abort_source::SERVICE_PROVIDER,
                    abort_diagnostic: None,
                    user_information: None,
                };
                self.send_ab(
                    disconnect::RELEASE_TRANSPORT | disconnect::USER_ABORT,
                    Some(self.aru(abrt)),
                );
            }
            Reaction::RtseAbort { reason } => {
                let rtab = RtseApdu::Rtab(Rtab {
                    abort_reason: Some(reason),
                    reflected_parameter: None,
                    user_data_ab: None,
                });
                let abrt = Abrt {
                    abort_source: acse::abort_source::SERVICE_USER,
                    abort_diagnostic: None,
                    user_information: Some(vec![self.rtse_external(rtab.encode())]),
                };
                self.send_ab(
                    disconnect::RELEASE_TRANSPORT | disconnect::USER_ABORT,
                    Some(self.aru(abrt)),
                );
            }
        }
    }

    fn close(&mut self, reason: Option<AbortReason>) {
        if let Some(reason) = reason {
            self.events.push_back(Event::Aborted { reason });
        }
        self.state = State::Closed;
        self.deadline = None;
        self.pending = None;
        self.keep_for_recovery();
        self.outgoing.clear();
    }

    /// At close: what a transfer under way leaves for recovery (see the module
    /// documentation). Only the initiator recovers an association, so only an initiator's
    /// outgoing and a responder's incoming transfer are kept, and only past a confirmed
    /// checkpoint.
    fn keep_for_recovery(&mut self) {
        let sending = self.sending.take();
        let receiving = self.receiving.take();
        let rec = &mut *self.recovery;
        if let Some((_, point)) = rec.resume_out.take() {
            rec.point = Some(point);
        }
        if let Some(partial) = rec.resume_in.take() {
            rec.partial = Some(partial);
        }
        if self.role == Role::Initiator
            && let Some(s) = sending.filter(|s| s.started && s.acked_serial > 0)
            && let Some(connection) = own_session(&self.cfg)
        {
            rec.point = Some(RecoveryPoint {
                connection,
                activity_id: s.activity_id,
                serial: s.acked_serial,
                confirmed: s.confirmed,
                data: s.data,
            });
        }
        if self.role == Role::Responder
            && let Some(mut r) = receiving.filter(|r| !r.checkpoints.is_empty())
            && let Some(connection) = rec.peer_session.clone()
        {
            r.data.truncate(r.checkpoints.last().copied().unwrap_or(0));
            rec.partial = Some(PartialTransfer {
                connection,
                activity_id: r.activity_id,
                checkpoints: r.checkpoints,
                data: r.data,
            });
        }
    }

    fn unexpected(&self, pdu: &'static str) -> OsiError {
        AssociationError::Unexpected {
            pdu,
            state: self.state.name(),
        }
        .into()
    }

    // ----- internals: input -----

    fn on_tpdu(&mut self, bytes: &[u8]) -> Result<(), OsiError> {
        // A DT once connected, the TPDU of every transfer: its user data read in place, and
        // a TSDU that one DT carries whole not copied at all.
        if let Some((eot, user_data)) = cotp::dt_of(bytes)
            && !matches!(self.state, State::AwaitingCr | State::AwaitingCc)
        {
            return match self.reassembler.push_borrowed(user_data, eot)? {
                Some(tsdu) => self.on_tsdu(&tsdu),
                None => Ok(()),
            };
        }
        let tpdu = Tpdu::decode(bytes)?;
        match (self.state, tpdu) {
            (_, Tpdu::Dr(dr)) => {
                self.close(Some(AbortReason::Transport {
                    tpdu: "DR",
                    code: dr.reason,
                }));
                Ok(())
            }
            (_, Tpdu::Er(er)) => {
                self.close(Some(AbortReason::Transport {
                    tpdu: "ER",
                    code: er.cause,
                }));
                Ok(())
            }
            (State::AwaitingCr, Tpdu::Cr(cr)) => self.on_cr(cr),
            (State::AwaitingCc, Tpdu::Cc(cc)) => self.on_cc(cc),
            (State::AwaitingCr | State::AwaitingCc, Tpdu::Dt(_)) => Err(self.unexpected("DT")),
            (_, Tpdu::Dt(dt)) => match self.reassembler.push(&dt.user_data, dt.eot)? {
                Some(tsdu) => self.on_tsdu(&tsdu),
                None => Ok(()),
            },
            (_, Tpdu::Cr(_)) => Err(self.unexpected("CR")),
            (_, Tpdu::Cc(_)) => Err(self.unexpected("CC")),
        }
    }

    fn on_cr(&mut self, cr: ConnectTpdu) -> Result<(), OsiError> {
        if cr.class_option >> 4 != 0 {
            return Err(cotp::CotpError::UnsupportedClass(cr.class_option >> 4).into());
        }
        let proposed = cr.tpdu_size.unwrap_or(TpduSize::DEFAULT);
        self.tpdu_size = proposed.min(TpduSize::at_most(self.cfg.tpdu_size));
        self.remote_ref = cr.src_ref;
        let cc = Tpdu::Cc(ConnectTpdu {
            dst_ref: cr.src_ref,
            src_ref: self.cfg.cotp_reference,
            class_option: 0,
            tpdu_size: Some(self.tpdu_size),
            calling_tsap: cr.calling_tsap.clone(),
            called_tsap: cr.called_tsap.clone(),
            other: Vec::new(),
        });
        self.send_tpdu(&cc);
        self.pending_tsaps = Some((
            cr.calling_tsap.unwrap_or_default(),
            cr.called_tsap.unwrap_or_default(),
        ));
        self.state = State::AwaitingCn;
        if let Some(now) = self.now {
            self.deadline = Some((now + self.cfg.establishment_timeout, "cn"));
        }
        Ok(())
    }

    fn on_cc(&mut self, cc: ConnectTpdu) -> Result<(), OsiError> {
        if cc.class_option >> 4 != 0 {
            return Err(cotp::CotpError::UnsupportedClass(cc.class_option >> 4).into());
        }
        self.tpdu_size = cc
            .tpdu_size
            .unwrap_or(TpduSize::DEFAULT)
            .min(self.tpdu_size);
        self.remote_ref = cc.src_ref;
        let cn = self.build_cn()?;
        self.send_spdus(&[cn])?;
        self.state = State::AwaitingAc;
        if let Some(now) = self.now {
            self.deadline = Some((now + self.cfg.establishment_timeout, "ac"));
        }
        Ok(())
    }

    fn build_cn(&self) -> Result<Spdu, OsiError> {
        let cfg = &self.cfg;
        let rtorq = RtseApdu::Rtorq(Rtorq {
            checkpoint_size: (cfg.checkpoint_size > 0).then_some(cfg.checkpoint_size),
            window_size: Some(cfg.window_size),
            dialogue_mode: Some(cfg.dialogue_mode.value()),
            connection_data_rq: match &self.recovery.ask {
                Some(id) => ConnectionData::Recover(id.clone()),
                None => ConnectionData::Open(Any::new(rtse::wrap_bind(
                    BindTag::Argument,
                    &self.bind_argument,
                ))),
            },
            application_protocol: None,
        });
        let mut aarq = Aarq::new(oid(&cfg.application_context));
        if let Some(t) = &cfg.remote_ae_title {
            (aarq.called_ap_title, aarq.called_ae_qualifier) = ae_title_any(t);
        }
        if let Some(t) = &cfg.local_ae_title {
            (aarq.calling_ap_title, aarq.calling_ae_qualifier) = ae_title_any(t);
        }
        aarq.user_information = Some(vec![self.rtse_external(rtorq.encode())]);
        let contexts = [
            (self.acse_ctx, presentation::ID_AS_ACSE),
            (self.rtse_ctx, presentation::ID_AS_MTA_RTSE),
            (self.mtse_ctx, presentation::ID_AS_MTSE),
        ]
        .into_iter()
        .map(|(id, abs)| ContextDefinition {
            presentation_context_identifier: id,
            abstract_syntax_name: oid(abs),
            transfer_syntax_name_list: vec![oid(presentation::BER_TRANSFER_SYNTAX)],
        })
        .collect();
        let cp = CpType {
            mode_selector: ModeSelector::normal(),
            x410_mode_parameters: None,
            normal_mode_parameters: Some(CpNormalMode {
                protocol_version: version1(),
                calling_presentation_selector: selector(&cfg.local_psap).map(OctetString::from),
                called_presentation_selector: selector(&cfg.remote_psap).map(OctetString::from),
                presentation_context_definition_list: Some(contexts),
                default_context_name: None,
                presentation_requirements: None,
                user_session_requirements: None,
                protocol_options: None,
                initiators_nominated_context: None,
                user_data: Some(UserData::single(
                    self.acse_ctx,
                    AcseApdu::Aarq(aarq).encode(),
                )),
            }),
        };
        let user_data = cp.encode();
        if user_data.len() > session::MAX_CN_USER_DATA {
            return Err(AssociationError::InvalidArgument(
                "connect user data exceeds 10240 octets",
            )
            .into());
        }
        let params = Params {
            connection_id: Some(ConnectionId {
                calling_ss_user_ref: Some(ber_octet_string(&cfg.ss_user_reference)),
                common_ref: Some(ber::wrap(0x17, cfg.common_reference.as_bytes())),
                ..ConnectionId::default()
            }),
            accept_item: Some(ConnectAcceptItem {
                protocol_options: Some(0),
                version: Some(0x02),
                token_setting: Some(0x00),
                ..ConnectAcceptItem::default()
            }),
            requirements: Some(requirements::RTSE),
            calling_ssap: selector(&cfg.local_ssap),
            called_ssap: selector(&cfg.remote_ssap),
            user_data: Some(user_data),
            ..Params::default()
        };
        Ok(Spdu::with(SpduCode::CN, params))
    }

    fn on_tsdu(&mut self, tsdu: &[u8]) -> Result<(), OsiError> {
        if let Some(user_information) = session::gt_dt_user_information(tsdu) {
            return self.on_dt(SpduCode::GT, user_information);
        }
        let spdus = session::decode_tsdu(tsdu)?;
        let first = &spdus[0];
        if let Some(second) = spdus.get(1) {
            return self.on_category2(first.code, second);
        }
        let spdu = &spdus[0];
        match (self.state, spdu.code) {
            (State::AwaitingCn, SpduCode::CN) => self.on_cn(spdu),
            (State::AwaitingAc, SpduCode::AC) => self.on_ac(spdu),
            (State::AwaitingAc, SpduCode::RF) => self.on_rf(spdu),
            (_, SpduCode::AB) => {
                self.on_ab(spdu);
                Ok(())
            }
            (State::Established, SpduCode::PT) => self.on_pt(spdu),
            (State::Established, SpduCode::GT) => {
                if spdu
                    .params
                    .token_item
                    .is_some_and(|t| t & tokens::DATA != 0)
                {
                    self.take_turn();
                }
                Ok(())
            }
            (State::Established, SpduCode::GTC) => {
                if self.have_turn {
                    return Err(self.unexpected("GTC"));
                }
                self.send_spdus(&[Spdu::new(SpduCode::GTA)])?;
                self.take_turn();
                Ok(())
            }
            (State::Established, SpduCode::GTA) if self.awaiting_gta => {
                self.awaiting_gta = false;
                Ok(())
            }
            (State::Established, SpduCode::FN) if self.role == Role::Responder => self.on_fn(),
            (State::AwaitingDn, SpduCode::DN) => {
                self.send_dr(0x80);
                self.close(None);
                self.events.push_back(Event::Released);
                Ok(())
            }
            (State::Established | State::AwaitingDn, SpduCode::ER) => {
                self.on_exception(None);
                Ok(())
            }
            (_, code) => Err(self.unexpected(code.name(false).unwrap_or("unknown spdu"))),
        }
    }

    fn take_turn(&mut self) {
        self.have_turn = true;
        self.turn_requested = false;
        self.events.push_back(Event::TurnGiven);
        self.pump();
    }

    fn on_exception(&mut self, reason: Option<u8>) {
        self.send_abort_pdu(Reaction::RtseAbort {
            reason: rtse::abort_reason::TEMPORARY_PROBLEM,
        });
        self.close(Some(AbortReason::Exception(reason)));
    }

    /// A DT (category 2, after a GT): one RTTR segment of the transfer being received,
    /// appended to it (X.228 §7.8; X.225 §7.11).
    fn on_dt(&mut self, first: SpduCode, user_information: &[u8]) -> Result<(), OsiError> {
        const NAME: &str = "DT";
        if self.state != State::Established && self.state != State::AwaitingDn {
            return Err(self.unexpected(NAME));
        }
        // From the turn holder, so never while we hold it.
        if self.have_turn || first != SpduCode::GT {
            return Err(self.unexpected(NAME));
        }
        let Some(r) = self.receiving.as_mut() else {
            return Err(self.unexpected(NAME));
        };
        // The form every segment of a transfer takes is read in place; anything
        // else goes through the general decoders.
        let (single, general, general_values);
        let values: &[(i64, &[u8])] = match presentation::single_value_of(user_information) {
            Some(v) => {
                single = [v];
                &single
            }
            None => {
                general = UserData::decode(user_information)?;
                general_values = general.values();
                &general_values
            }
        };
        for &(ctx, value) in values {
            if ctx != self.rtse_ctx {
                return Err(presentation::PresentationError::UnknownContext(ctx).into());
            }
            let decoded;
            let seg: &[u8] = match rtse::rttr_of(value) {
                Some(seg) => seg,
                None => {
                    decoded = RtseApdu::decode(value)?;
                    match &decoded {
                        RtseApdu::Rttr(seg) => seg,
                        _ => {
                            return Err(RtseError::Unexpected(
                                "rtse apdu other than RTTR in P-DATA",
                            )
                            .into());
                        }
                    }
                }
            };
            if r.data.len() + seg.len() > self.cfg.max_apdu_size {
                return Err(RtseError::ApduTooLarge(self.cfg.max_apdu_size).into());
            }
            r.data.extend_from_slice(seg);
        }
        Ok(())
    }

    fn on_category2(&mut self, first: SpduCode, s: &Spdu) -> Result<(), OsiError> {
        if s.code == SpduCode::DT {
            return self.on_dt(first, &s.user_information);
        }
        let name = s.code.name(true).unwrap_or("unknown spdu");
        if self.state != State::Established && self.state != State::AwaitingDn {
            return Err(self.unexpected(name));
        }
        let serial = |s: &Spdu| {
            s.params
                .serial_number
                .ok_or(AssociationError::Missing("serial number"))
        };
        match s.code.0 {
            // AS, AR, DT, MIP, AE, AI, AD: from the turn holder, so never while we hold it.
            45 | 29 | 1 | 49 | 41 | 25 | 57 if self.have_turn || first != SpduCode::GT => {
                Err(self.unexpected(name))
            }
            45 => {
                if self.receiving.is_some() {
                    return Err(self.unexpected(name));
                }
                self.receiving = Some(Receiving {
                    data: Vec::new(),
                    next_serial: 1,
                    activity_id: s.params.activity_id.clone().unwrap_or_default(),
                    checkpoints: Vec::new(),
                });
                Ok(())
            }
            29 => self.on_ar(s),
            49 => {
                let n = serial(s)?;
                let Some(r) = self.receiving.as_mut() else {
                    return Err(self.unexpected(name));
                };
                if n != r.next_serial {
                    return Err(RtseError::Serial {
                        got: n,
                        expected: r.next_serial,
                    }
                    .into());
                }
                r.next_serial += 1;
                r.checkpoints.push(r.data.len());
                if s.params.sync_type != Some(1) {
                    let mia = Spdu::with(
                        SpduCode::MIA,
                        Params {
                            serial_number: Some(n),
                            ..Params::default()
                        },
                    );
                    self.send_cat2(false, mia);
                }
                Ok(())
            }
            41 => {
                let n = serial(s)?;
                let Some(r) = self.receiving.take() else {
                    return Err(self.unexpected(name));
                };
                if n != r.next_serial {
                    return Err(RtseError::Serial {
                        got: n,
                        expected: r.next_serial,
                    }
                    .into());
                }
                let apdu = match acse::single_external_of(&r.data) {
                    // The MTS-APDU moved to the front of the buffer it was gathered in, not
                    // copied out of it.
                    Some((_, value)) => {
                        let start = value.as_ptr() as usize - r.data.as_ptr() as usize;
                        let end = start + value.len();
                        let mut data = r.data;
                        data.truncate(end);
                        data.drain(..start);
                        data
                    }
                    None => External::decode(&r.data)
                        .map_err(|_| RtseError::Invalid("transfer external"))?
                        .value()
                        .ok_or(RtseError::Invalid("transfer external encoding"))?
                        .to_vec(),
                };
                if self.cfg.defer_transfer_confirmation {
                    self.unconfirmed_activity_end = Some(n);
                } else {
                    self.send_aea(n);
                }
                self.events.push_back(Event::TransferIndication { apdu });
                Ok(())
            }
            25 | 57 => {
                // Activity interrupt / discard by the sender: drop the partial APDU.
                self.receiving = None;
                let ack = if s.code.0 == 25 {
                    SpduCode::AIA
                } else {
                    SpduCode::ADA
                };
                self.send_cat2(false, Spdu::new(ack));
                Ok(())
            }
            // MIA, AEA: confirmations of our own transfer.
            50 | 42 => self.on_confirmation(s.code.0 == 42, serial(s)?),
            48 => {
                // ED: exception data from the receiver.
                self.on_exception(s.params.reason.as_ref().and_then(|r| r.first().copied()));
                Ok(())
            }
            _ => Err(self.unexpected(name)),
        }
    }

    /// AR: the sender of a transfer this side accepted a recover for resumes it at one of
    /// the points this side confirmed; what came after that point is dropped.
    fn on_ar(&mut self, s: &Spdu) -> Result<(), OsiError> {
        if self.receiving.is_some() {
            return Err(self.unexpected("AR"));
        }
        // Checked before it is taken: an AR in error leaves the partial transfer for another
        // recover (the association closes, and keeps it).
        let Some(part) = self.recovery.resume_in.as_ref() else {
            return Err(
                RtseError::Unexpected("activity resume without a recovered transfer").into(),
            );
        };
        let n = s
            .params
            .serial_number
            .ok_or(AssociationError::Missing("serial number"))?;
        let linking = s.params.linking.as_ref();
        let old = linking.and_then(|l| l.old_activity_id.as_deref());
        let old_session = linking.and_then(|l| session_of(&l.connection));
        if old.is_some_and(|o| o != part.activity_id)
            || old_session.is_some_and(|c| c != part.connection)
        {
            return Err(RtseError::Unexpected("activity resume of another activity").into());
        }
        if n == 0 || n > part.checkpoints() {
            return Err(RtseError::Serial {
                got: n,
                expected: part.checkpoints(),
            }
            .into());
        }
        let mut part = self.recovery.resume_in.take().expect("checked above");
        part.checkpoints.truncate(n as usize);
        part.data.truncate(part.checkpoints[n as usize - 1]);
        self.receiving = Some(Receiving {
            data: part.data,
            next_serial: n + 1,
            activity_id: s.params.activity_id.clone().unwrap_or_default(),
            checkpoints: part.checkpoints,
        });
        Ok(())
    }

    fn on_confirmation(&mut self, activity_end: bool, n: u32) -> Result<(), OsiError> {
        let name = if activity_end { "AEA" } else { "MIA" };
        let Some(s) = self.sending.as_mut() else {
            return Err(self.unexpected(name));
        };
        if activity_end {
            if s.ae_serial != Some(n) {
                return Err(RtseError::Serial {
                    got: n,
                    expected: s.ae_serial.unwrap_or(0),
                }
                .into());
            }
            let id = s.id;
            self.sending = None;
            self.deadline = None;
            self.events.push_back(Event::TransferConfirm { id });
        } else {
            if n <= s.acked_serial || n >= s.next_serial {
                return Err(RtseError::Serial {
                    got: n,
                    expected: s.acked_serial + 1,
                }
                .into());
            }
            s.acked_serial = n;
            while let Some(&(serial, at)) = s.mips.front()
                && serial <= n
            {
                s.confirmed = at;
                s.mips.pop_front();
            }
            let outstanding = s.next_serial - 1 > s.acked_serial || s.ae_serial.is_some();
            self.deadline = match (outstanding, self.now) {
                (true, Some(now)) => Some((now + self.cfg.recovery_timeout, "minor sync ack")),
                _ => None,
            };
        }
        self.pump();
        Ok(())
    }

    fn on_pt(&mut self, spdu: &Spdu) -> Result<(), OsiError> {
        let mut priority = None;
        if let Some(u) = &spdu.params.user_data {
            let u = UserData::decode(u)?;
            for (_, value) in u.values() {
                match RtseApdu::decode(value)? {
                    RtseApdu::Rttp(p) => priority = Some(p),
                    _ => {
                        return Err(RtseError::Unexpected(
                            "rtse apdu other than RTTP in P-TOKEN-PLEASE",
                        )
                        .into());
                    }
                }
            }
        }
        if self.dialogue_mode == DialogueMode::Monologue && self.role == Role::Initiator {
            return Err(RtseError::Unexpected("turn request in monologue").into());
        }
        self.events.push_back(Event::TurnRequested { priority });
        if self.have_turn {
            self.peer_wants_turn = true;
            self.pump();
        }
        Ok(())
    }

    fn on_fn(&mut self) -> Result<(), OsiError> {
        if self.receiving.is_some() || self.sending.is_some() || self.have_turn {
            return Err(self.unexpected("FN"));
        }
        let rlre = AcseApdu::Rlre(Rlre {
            reason: Some(0),
            user_information: None,
        });
        let params = Params {
            user_data: Some(UserData::single(self.acse_ctx, rlre.encode()).encode()),
            ..Params::default()
        };
        self.send_spdus(&[Spdu::with(SpduCode::DN, params)])?;
        self.close(None);
        self.events.push_back(Event::Released);
        Ok(())
    }

    fn on_ab(&mut self, spdu: &Spdu) {
        let mut presentation_reason = None;
        let mut acse_source = None;
        let mut rtse_reason = None;
        if let Some(Ok(ppdu)) = spdu.params.user_data.as_deref().map(AbortPpdu::decode) {
            match ppdu {
                AbortPpdu::Arp(arp) => presentation_reason = arp.provider_reason,
                AbortPpdu::Aru(AruPpdu::X400ModeParameters(rtab)) => {
                    rtse_reason = rtab.abort_reason
                }
                AbortPpdu::Aru(AruPpdu::NormalModeParameters(n)) => {
                    for (_, v) in n
                        .user_data
                        .as_ref()
                        .map(UserData::values)
                        .unwrap_or_default()
                    {
                        if let Ok(AcseApdu::Abrt(abrt)) = AcseApdu::decode(v) {
                            acse_source = Some(abrt.abort_source);
                            for ext in abrt.user_information.as_deref().unwrap_or(&[]) {
                                if let Some(Ok(RtseApdu::Rtab(rtab))) =
                                    ext.value().map(RtseApdu::decode)
                                {
                                    rtse_reason = rtab.abort_reason;
                                }
                            }
                        }
                    }
                }
            }
        }
        self.close(Some(AbortReason::Peer {
            transport_disconnect: spdu.params.transport_disconnect,
            presentation_reason,
            acse_source,
            rtse_reason,
        }));
    }

    fn on_cn(&mut self, spdu: &Spdu) -> Result<(), OsiError> {
        let p = &spdu.params;
        let proposed = p.requirements.unwrap_or(requirements::HALF_DUPLEX);
        let needed = requirements::HALF_DUPLEX | requirements::ACTIVITY | requirements::MINOR_SYNC;
        if proposed & needed != needed {
            return Err(AssociationError::Negotiation(
                "session requirements lack half-duplex, activity or minor sync",
            )
            .into());
        }
        let item = p.accept_item.clone().unwrap_or_default();
        let versions = item.version.unwrap_or(0x01);
        let version = if versions & 0x02 != 0 {
            0x02
        } else if versions & 0x01 != 0 {
            0x01
        } else {
            return Err(AssociationError::Negotiation("no common session version").into());
        };
        let user_data = p
            .user_data
            .as_deref()
            .ok_or(AssociationError::Missing("connect user data"))?;
        let cp = CpType::decode(user_data)?;
        let normal = cp
            .normal_mode_parameters
            .ok_or(presentation::PresentationError::NotNormalMode)?;
        if cp.mode_selector.mode_value != 1 {
            return Err(presentation::PresentationError::NotNormalMode.into());
        }
        let mut results = Vec::new();
        let (mut acse_ctx, mut rtse_ctx, mut mtse_ctx) = (None, None, None);
        let ber_ts = oid(presentation::BER_TRANSFER_SYNTAX);
        for c in normal
            .presentation_context_definition_list
            .as_deref()
            .unwrap_or(&[])
        {
            let has_ber = c.transfer_syntax_name_list.contains(&ber_ts);
            let abs = c.abstract_syntax_name.to_vec();
            if has_ber {
                let id = c.presentation_context_identifier;
                match &abs[..] {
                    presentation::ID_AS_ACSE => acse_ctx = acse_ctx.or(Some(id)),
                    presentation::ID_AS_MTA_RTSE => rtse_ctx = rtse_ctx.or(Some(id)),
                    presentation::ID_AS_MTSE => mtse_ctx = mtse_ctx.or(Some(id)),
                    _ => {}
                }
            }
            results.push(if has_ber {
                ContextResult {
                    result: presentation::result::ACCEPTANCE,
                    transfer_syntax_name: Some(ber_ts.clone()),
                    provider_reason: None,
                }
            } else {
                ContextResult {
                    result: presentation::result::PROVIDER_REJECTION,
                    transfer_syntax_name: None,
                    provider_reason: Some(2),
                }
            });
        }
        self.acse_ctx = acse_ctx.ok_or(presentation::PresentationError::Missing(
            "acse presentation context",
        ))?;
        self.rtse_ctx = rtse_ctx.ok_or(presentation::PresentationError::Missing(
            "mta-rtse presentation context",
        ))?;
        self.mtse_ctx = mtse_ctx.unwrap_or(presentation::context::MTSE);
        let ud = normal
            .user_data
            .as_ref()
            .ok_or(presentation::PresentationError::Missing(
                "connect user data",
            ))?;
        let aarq_bytes = ud
            .values()
            .into_iter()
            .find(|(ctx, _)| *ctx == self.acse_ctx)
            .ok_or(presentation::PresentationError::UnknownContext(0))?
            .1;
        let AcseApdu::Aarq(aarq) = AcseApdu::decode(aarq_bytes)? else {
            return Err(acse::AcseError::Unexpected("acse apdu other than AARQ in CP-type").into());
        };
        let rtorq = aarq
            .user_information
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .filter_map(External::value)
            .find_map(|v| match RtseApdu::decode(v) {
                Ok(RtseApdu::Rtorq(r)) => Some(r),
                _ => None,
            })
            .ok_or(RtseError::Missing("RTORQ in the AARQ user information"))?;
        let (tag, bind_argument, recover) = match &rtorq.connection_data_rq {
            ConnectionData::Open(open) => {
                let (tag, arg) = rtse::unwrap_bind(open.as_bytes())?;
                (tag, arg, None)
            }
            ConnectionData::Recover(id) => (None, Vec::new(), Some(id.clone())),
        };
        self.recovery.peer_session = p.connection_id.as_ref().and_then(session_of);
        let proposed_checkpoint = rtorq.checkpoint_size();
        let proposed_window = rtorq.window_size();
        if proposed_checkpoint > rtse::MAX_CHECKPOINT_SIZE {
            return Err(RtseError::Invalid("checkpoint size").into());
        }
        if proposed_window == 0 || proposed_window > rtse::MAX_WINDOW_SIZE {
            return Err(RtseError::Invalid("window size").into());
        }
        let dialogue_mode = match rtorq.dialogue_mode() {
            rtse::dialogue_mode::MONOLOGUE => DialogueMode::Monologue,
            rtse::dialogue_mode::TWA => DialogueMode::TwoWayAlternate,
            _ => return Err(RtseError::Invalid("dialogue mode").into()),
        };
        self.checkpoint_size = if proposed_checkpoint == 0 || self.cfg.checkpoint_size == 0 {
            0
        } else {
            proposed_checkpoint.min(self.cfg.checkpoint_size)
        };
        self.window_size = proposed_window.min(self.cfg.window_size);
        self.dialogue_mode = dialogue_mode;
        // Data token on the responder's side (token setting 01) gives us the first turn.
        self.have_turn = item.token_setting.is_some_and(|t| t & 0x03 == 0x01);
        let (calling_tsap, called_tsap) = self.pending_tsaps.take().unwrap_or_default();
        let octets = |o: &Option<OctetString>| o.as_ref().map(|o| o.to_vec()).unwrap_or_default();
        let indication = AssociateIndication {
            calling_tsap,
            called_tsap,
            calling_ssap: p.calling_ssap.clone().unwrap_or_default(),
            called_ssap: p.called_ssap.clone().unwrap_or_default(),
            calling_psap: octets(&normal.calling_presentation_selector),
            called_psap: octets(&normal.called_presentation_selector),
            application_context: aarq.application_context_name.to_vec(),
            calling_ae_title: ae_title_from(&aarq.calling_ap_title, &aarq.calling_ae_qualifier),
            called_ae_title: ae_title_from(&aarq.called_ap_title, &aarq.called_ae_qualifier),
            bind_argument,
            bind_argument_tagged: tag == Some(BindTag::Argument),
            checkpoint_size: proposed_checkpoint,
            window_size: proposed_window,
            dialogue_mode,
            tpdu_size: self.tpdu_size.octets(),
            recover: recover.clone(),
        };
        self.pending = Some(PendingOpen {
            connection_id: p.connection_id.clone(),
            recover,
            requirements: proposed & requirements::RTSE,
            version,
            token_setting: item.token_setting,
            results,
            application_context: aarq.application_context_name.clone(),
        });
        self.state = State::AwaitingUserResponse;
        self.deadline = None;
        self.events
            .push_back(Event::AssociateIndication(Box::new(indication)));
        Ok(())
    }

    fn on_ac(&mut self, spdu: &Spdu) -> Result<(), OsiError> {
        let p = &spdu.params;
        let req = p.requirements.unwrap_or(requirements::HALF_DUPLEX);
        let needed = requirements::HALF_DUPLEX | requirements::ACTIVITY | requirements::MINOR_SYNC;
        if req & needed != needed {
            return Err(AssociationError::Negotiation(
                "accepted session requirements lack half-duplex, activity or minor sync",
            )
            .into());
        }
        let user_data = p
            .user_data
            .as_deref()
            .ok_or(AssociationError::Missing("accept user data"))?;
        let cpa = CpaPpdu::decode(user_data)?;
        let normal = cpa
            .normal_mode_parameters
            .ok_or(presentation::PresentationError::NotNormalMode)?;
        let results = normal
            .presentation_context_definition_result_list
            .unwrap_or_default();
        let accepted = |i: usize| {
            results
                .get(i)
                .is_some_and(|r| r.result == presentation::result::ACCEPTANCE)
        };
        if !accepted(0) || !accepted(1) {
            return Err(AssociationError::Negotiation(
                "acse or mta-rtse presentation context rejected",
            )
            .into());
        }
        let ud = normal
            .user_data
            .as_ref()
            .ok_or(presentation::PresentationError::Missing("accept user data"))?;
        let (_, aare_bytes) = ud
            .values()
            .into_iter()
            .find(|(ctx, _)| *ctx == self.acse_ctx)
            .ok_or(presentation::PresentationError::UnknownContext(0))?;
        let AcseApdu::Aare(aare) = AcseApdu::decode(aare_bytes)? else {
            return Err(
                acse::AcseError::Unexpected("acse apdu other than AARE in CPA-PPDU").into(),
            );
        };
        let rtse_apdu = aare
            .user_information
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .filter_map(External::value)
            .find_map(|v| RtseApdu::decode(v).ok());
        if aare.result != acse::result::ACCEPTED {
            let (rtse_reason, bind_error) = match rtse_apdu {
                Some(RtseApdu::Rtorj(rj)) => (rj.refuse_reason, Self::bind_error(&rj)),
                _ => (None, None),
            };
            self.close(None);
            self.events.push_back(Event::AssociateRefused(Refusal {
                session_reason: None,
                presentation_reason: None,
                acse_result: Some(aare.result),
                acse_diagnostic: Some(aare.result_source_diagnostic),
                rtse_reason,
                bind_error,
            }));
            return Ok(());
        }
        let Some(RtseApdu::Rtoac(rtoac)) = rtse_apdu else {
            return Err(RtseError::Missing("RTOAC in the AARE user information").into());
        };
        let (bind_result, recovered) = match (&rtoac.connection_data_ac, &self.recovery.ask) {
            (ConnectionData::Open(open), None) => (rtse::unwrap_bind(open.as_bytes())?.1, false),
            (ConnectionData::Recover(id), Some(asked)) if id == asked => (Vec::new(), true),
            (ConnectionData::Recover(_), _) => {
                return Err(RtseError::Unexpected("recover in RTOAC").into());
            }
            (ConnectionData::Open(_), Some(_)) => {
                return Err(RtseError::Unexpected("open in the RTOAC answering a recover").into());
            }
        };
        let k = rtoac.checkpoint_size();
        if k > rtse::MAX_CHECKPOINT_SIZE {
            return Err(RtseError::Invalid("checkpoint size").into());
        }
        self.checkpoint_size = if self.cfg.checkpoint_size == 0 {
            0
        } else {
            k.min(self.cfg.checkpoint_size)
        };
        self.window_size = rtoac.window_size().clamp(1, self.cfg.window_size);
        self.have_turn = true;
        self.session_up = true;
        self.state = State::Established;
        self.deadline = None;
        self.events
            .push_back(Event::AssociateConfirm(AssociateConfirm {
                bind_result,
                checkpoint_size: self.checkpoint_size,
                window_size: self.window_size,
                dialogue_mode: self.dialogue_mode,
                responding_ae_title: ae_title_from(
                    &aare.responding_ap_title,
                    &aare.responding_ae_qualifier,
                ),
                recovered,
            }));
        self.pump();
        Ok(())
    }

    fn bind_error(rj: &Rtorj) -> Option<Vec<u8>> {
        let v = rj.user_data_rj.as_ref()?;
        Some(
            rtse::unwrap_bind(v.as_bytes())
                .map(|(_, e)| e)
                .unwrap_or_else(|_| v.as_bytes().to_vec()),
        )
    }

    fn on_rf(&mut self, spdu: &Spdu) -> Result<(), OsiError> {
        let reason = spdu.params.reason.as_deref().unwrap_or(&[]);
        let mut refusal = Refusal {
            session_reason: reason.first().copied(),
            presentation_reason: None,
            acse_result: None,
            acse_diagnostic: None,
            rtse_reason: None,
            bind_error: None,
        };
        if reason.len() > 1 {
            match CprPpdu::decode(&reason[1..])? {
                CprPpdu::X400ModeParameters(rj) => {
                    refusal.rtse_reason = rj.refuse_reason;
                    refusal.bind_error = Self::bind_error(&rj);
                }
                CprPpdu::NormalModeParameters(n) => {
                    refusal.presentation_reason = n.provider_reason;
                    for (ctx, v) in n
                        .user_data
                        .as_ref()
                        .map(UserData::values)
                        .unwrap_or_default()
                    {
                        if ctx != self.acse_ctx {
                            continue;
                        }
                        if let AcseApdu::Aare(aare) = AcseApdu::decode(v)? {
                            refusal.acse_result = Some(aare.result);
                            refusal.acse_diagnostic = Some(aare.result_source_diagnostic.clone());
                            for ext in aare.user_information.as_deref().unwrap_or(&[]) {
                                if let Some(RtseApdu::Rtorj(rj)) =
                                    ext.value().map(RtseApdu::decode).transpose()?
                                {
                                    refusal.rtse_reason = rj.refuse_reason;
                                    refusal.bind_error = Self::bind_error(&rj);
                                }
                            }
                        }
                    }
                }
            }
        }
        self.close(None);
        self.events.push_back(Event::AssociateRefused(refusal));
        Ok(())
    }

    // ----- internals: the sender -----

    /// Moves outgoing work forward: starts the next transfer, sends segments while the
    /// window allows, ends the activity, then gives the turn, releases, or asks for the turn.
    fn pump(&mut self) {
        if self.state != State::Established {
            return;
        }
        loop {
            if !self.have_turn {
                if (!self.outgoing.is_empty() || self.release_pending) && !self.turn_requested {
                    self.turn_requested = true;
                    let pt = Params {
                        token_item: Some(tokens::DATA),
                        user_data: Some(self.pdata(&RtseApdu::Rttp(1))),
                        ..Params::default()
                    };
                    self.send_spdus(&[Spdu::with(SpduCode::PT, pt)])
                        .expect("pt fits");
                }
                return;
            }
            if self.sending.is_none() {
                if let Some((id, point)) = self.recovery.resume_out.take() {
                    self.resume(id, point);
                } else {
                    match self.outgoing.pop_front() {
                        Some((id, data)) => self.sending = Some(Sending::new(id, data)),
                        None => break,
                    }
                }
            }
            if !self.pump_sending() {
                return;
            }
        }
        // Idle with the turn.
        if self.release_pending && self.role == Role::Initiator {
            let rlrq = AcseApdu::Rlrq(Rlrq {
                reason: Some(0),
                user_information: None,
            });
            let params = Params {
                transport_disconnect: Some(disconnect::RELEASE_TRANSPORT),
                user_data: Some(UserData::single(self.acse_ctx, rlrq.encode()).encode()),
                ..Params::default()
            };
            self.send_spdus(&[Spdu::with(SpduCode::FN, params)])
                .expect("fn fits");
            self.state = State::AwaitingDn;
            if let Some(now) = self.now {
                self.deadline = Some((now + self.cfg.establishment_timeout, "dn"));
            }
            return;
        }
        if self.peer_wants_turn && self.dialogue_mode == DialogueMode::TwoWayAlternate {
            self.peer_wants_turn = false;
            self.have_turn = false;
            self.awaiting_gta = true;
            self.send_spdus(&[Spdu::new(SpduCode::GTC)])
                .expect("gtc fits");
        }
    }

    /// Resumes the transfer of a recovered association at its last confirmed checkpoint:
    /// GT+AR { Linking Information { the old session's references, the old activity id },
    /// Serial Number, a new Activity Identifier } (X.225, the ACTIVITY RESUME SPDU); the
    /// segments after the checkpoint follow with their minor syncs numbered on from it.
    fn resume(&mut self, id: TransferId, point: RecoveryPoint) {
        let mut activity_id = self.next_activity_id();
        if activity_id == point.activity_id {
            // A new identifier for the resumed activity, not the one it resumes.
            activity_id = self.next_activity_id();
        }
        let c = &point.connection;
        let calling = match &c.calling_ss_user_reference {
            CallingSsUserReference::OctetString(o) => ber_octet_string(o),
            CallingSsUserReference::T61String(t) => ber::wrap(0x14, &t.to_bytes()),
        };
        let linking = LinkingInformation {
            connection: ConnectionId {
                calling_ss_user_ref: Some(calling),
                common_ref: Some(ber::encode(&c.common_reference)),
                additional_ref: c
                    .additional_reference_information
                    .as_ref()
                    .map(|a| a.to_bytes()),
                ..ConnectionId::default()
            },
            old_activity_id: Some(point.activity_id.clone()),
        };
        let ar = Spdu::with(
            SpduCode::AR,
            Params {
                linking: Some(linking),
                serial_number: Some(point.serial),
                activity_id: Some(activity_id.clone()),
                ..Params::default()
            },
        );
        self.send_cat2(true, ar);
        self.sending = Some(Sending {
            id,
            offset: point.confirmed,
            started: true,
            next_serial: point.serial + 1,
            acked_serial: point.serial,
            ae_serial: None,
            activity_id,
            mips: VecDeque::new(),
            confirmed: point.confirmed,
            data: point.data,
        });
    }

    /// The next activity identifier: a BER INTEGER 1..=255, counting on.
    fn next_activity_id(&mut self) -> Vec<u8> {
        self.activity_counter = self.activity_counter.wrapping_add(1).max(1);
        vec![0x02, 0x01, self.activity_counter]
    }

    /// Sends what the window allows of the current transfer; true when it is confirmed
    /// already (never: confirmation is asynchronous) — returns false while waiting.
    fn pump_sending(&mut self) -> bool {
        let k = self.checkpoint_size as usize * 1024;
        let window = self.window_size;
        let Some(mut s) = self.sending.take() else {
            return true;
        };
        if !s.started {
            s.started = true;
            s.activity_id = self.next_activity_id();
            let asp = Spdu::with(
                SpduCode::AS,
                Params {
                    activity_id: Some(s.activity_id.clone()),
                    ..Params::default()
                },
            );
            self.send_cat2(true, asp);
        }
        while s.ae_serial.is_none() {
            let remaining = s.data.len() - s.offset;
            let outstanding = s.next_serial - 1 - s.acked_serial;
            if k > 0 && remaining > 0 && outstanding >= window {
                break;
            }
            if remaining > 0 || s.offset == 0 {
                let len = if k > 0 { remaining.min(k) } else { remaining };
                let seg = &s.data[s.offset..s.offset + len];
                s.offset += len;
                // GT+DT { P-DATA { RTTR { segment } } }, the segment copied once into the
                // TSDU (the GT and the DT have no parameters).
                let mut tsdu = std::mem::take(&mut self.tsdu);
                tsdu.clear();
                tsdu.extend_from_slice(&session::GT_DT_HEADER);
                presentation::encode_single_into(
                    &mut tsdu,
                    self.rtse_ctx,
                    &[&rtse::rttr_header(len), seg],
                );
                self.send_tsdu(&tsdu);
                self.keep_tsdu(tsdu);
            }
            if s.offset < s.data.len() {
                let serial = s.next_serial;
                s.next_serial += 1;
                s.mips.push_back((serial, s.offset));
                let mip = Spdu::with(
                    SpduCode::MIP,
                    Params {
                        serial_number: Some(serial),
                        ..Params::default()
                    },
                );
                self.send_cat2(true, mip);
                self.arm_recovery("minor sync ack");
            } else {
                let serial = s.next_serial;
                s.ae_serial = Some(serial);
                let ae = Spdu::with(
                    SpduCode::AE,
                    Params {
                        serial_number: Some(serial),
                        ..Params::default()
                    },
                );
                self.send_cat2(true, ae);
                self.arm_recovery("activity end ack");
            }
        }
        self.sending = Some(s);
        false
    }

    fn arm_recovery(&mut self, what: &'static str) {
        if let Some(now) = self.now {
            self.deadline = Some((now + self.cfg.recovery_timeout, what));
        }
    }
}

fn version1() -> rasn::types::BitString {
    let mut b = rasn::types::BitString::new();
    b.push(true);
    b
}
