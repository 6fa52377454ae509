//! Two associations back to back with a fake clock, and each against the vector peers.

mod common;

use std::time::{Duration, Instant};

use common::*;
use mtalab_osi::acse::{AcseApdu, External};
use mtalab_osi::association::{PartialTransfer, RecoveryPoint};
use mtalab_osi::cotp::Tpdu;
use mtalab_osi::presentation::{AbortPpdu, AruPpdu};
use mtalab_osi::rtse::{self, RtseApdu};
use mtalab_osi::session::{self, Params, Spdu, SpduCode};
use mtalab_osi::{
    AbortReason, Association, AssociationConfig, AssociationError, DialogueMode, Event, OsiError,
    TransferId, tpkt,
};

/// authenticated { initiator-name "percival", initiator-credentials simple "excalibur" }
fn bind_argument() -> Vec<u8> {
    hex("a1178008706572636976616ca10b1609657863616c69627572")
}

/// authenticated { responder-name "guinevere", responder-credentials simple "merlin" }
fn bind_result() -> Vec<u8> {
    hex("a11580096775696e6576657265a10816066d65726c696e")
}

/// An MTS-APDU stand-in: an OCTET STRING of `n` octets (one BER value).
fn apdu(n: usize) -> Vec<u8> {
    let content: Vec<u8> = (0..n).map(|i| (i * 7 + 3) as u8).collect();
    mtalab_osi::ber::wrap(0x04, &content)
}

fn cfg(k: u32, w: u32) -> AssociationConfig {
    AssociationConfig {
        local_tsap: b"MTA".to_vec(),
        remote_tsap: b"MTA".to_vec(),
        local_ssap: b"SS".to_vec(),
        remote_ssap: b"SS".to_vec(),
        local_psap: b"PS".to_vec(),
        remote_psap: b"PS".to_vec(),
        checkpoint_size: k,
        window_size: w,
        ..AssociationConfig::default()
    }
}

struct Net {
    i: Association,
    r: Association,

    now: Instant,
    /// Every frame, in order: (from initiator?, TPKT).
    frames: Vec<(bool, Vec<u8>)>,
    ie: Vec<Event>,
    re: Vec<Event>,
}

impl Net {
    fn new(icfg: AssociationConfig, rcfg: AssociationConfig) -> Net {
        let t0 = Instant::now();
        Net::between(
            Association::initiator(icfg, bind_argument(), t0).unwrap(),
            rcfg,
            t0,
        )
    }

    /// The initiator `i` (made at `t0`) and a fresh responder with `rcfg`.
    fn between(i: Association, rcfg: AssociationConfig, t0: Instant) -> Net {
        Net {
            i,
            r: Association::responder(rcfg).unwrap(),
            now: t0,
            frames: Vec::new(),
            ie: Vec::new(),
            re: Vec::new(),
        }
    }

    /// Moves frames both ways until both sides are quiet.
    fn run(&mut self) {
        loop {
            let mut moved = false;
            while let Some(f) = self.i.poll_transmit() {
                moved = true;
                self.frames.push((true, f.clone()));
                self.r.handle_input(&f, self.now).unwrap();
            }
            while let Some(f) = self.r.poll_transmit() {
                moved = true;
                self.frames.push((false, f.clone()));
                self.i.handle_input(&f, self.now).unwrap();
            }
            while let Some(e) = self.i.poll_event() {
                self.ie.push(e);
            }
            while let Some(e) = self.r.poll_event() {
                self.re.push(e);
            }
            if !moved {
                break;
            }
        }
    }

    fn connect(icfg: AssociationConfig, rcfg: AssociationConfig) -> Net {
        let mut n = Net::new(icfg, rcfg);
        n.run();
        let Some(Event::AssociateIndication(ind)) = n.re.pop() else {
            panic!("{:?}", n.re)
        };
        assert_eq!(ind.bind_argument, bind_argument());
        assert!(ind.bind_argument_tagged);
        assert_eq!(
            (ind.calling_tsap.as_slice(), ind.called_tsap.as_slice()),
            (&b"MTA"[..], &b"MTA"[..])
        );
        assert_eq!(
            (ind.calling_ssap.as_slice(), ind.calling_psap.as_slice()),
            (&b"SS"[..], &b"PS"[..])
        );
        assert_eq!(ind.application_context, [2, 6, 0, 1, 6]);
        n.r.accept(bind_result()).unwrap();
        n.run();
        let Some(Event::AssociateConfirm(c)) = n.ie.pop() else {
            panic!("{:?}", n.ie)
        };
        assert_eq!(c.bind_result, bind_result());
        assert!(n.i.is_established() && n.r.is_established());
        n
    }

    fn stream(&self, from_initiator: bool, since: usize) -> Vec<u8> {
        self.frames[since..]
            .iter()
            .filter(|f| f.0 == from_initiator)
            .flat_map(|f| f.1.clone())
            .collect()
    }
}

fn names_of(stream: &[u8]) -> Vec<String> {
    decode_stream(stream)
        .unwrap()
        .iter()
        .map(|u| match &u.layers {
            Some(l) => l.names.join("+"),
            None => format!("{:?}", u.tpdu.code()),
        })
        .filter(|n| n != "DT")
        .collect()
}

fn serials(stream: &[u8], name: &str) -> Vec<u32> {
    decode_stream(stream)
        .unwrap()
        .iter()
        .filter_map(|u| u.layers.as_ref())
        .filter(|l| l.names.last() == Some(&name))
        .map(|l| l.spdus[1].params.serial_number.unwrap())
        .collect()
}

#[test]
fn transfers_with_checkpoints_and_window() {
    let mut n = Net::connect(cfg(1, 5), cfg(1, 5));
    assert_eq!(n.i.negotiated().unwrap().checkpoint_size, 1);
    for (kib, size) in [(0, 0), (1, 1024), (3, 3 * 1024), (100, 100 * 1024)] {
        let a = apdu(size);
        let ext_len = External::single(None, 5, a.clone()).encode().len();
        let segments = ext_len.div_ceil(1024);
        let mark = n.frames.len();
        let id = n.i.transfer(a.clone()).unwrap();
        n.run();
        assert_eq!(
            n.re.pop(),
            Some(Event::TransferIndication { apdu: a }),
            "{kib} KiB"
        );
        assert_eq!(n.ie.pop(), Some(Event::TransferConfirm { id }));
        let c = n.stream(true, mark);
        let s = n.stream(false, mark);
        let mips: Vec<u32> = (1..segments as u32).collect();
        assert_eq!(
            serials(&c, "MIP"),
            mips,
            "{kib} KiB: a MIP every 1024 octets"
        );
        assert_eq!(serials(&s, "MIA"), mips);
        assert_eq!(serials(&c, "AE"), [segments as u32]);
        assert_eq!(serials(&s, "AEA"), [segments as u32]);
        // every segment but the last is exactly 1024 octets of RTTR
        let segs: Vec<usize> = decode_stream(&c)
            .unwrap()
            .iter()
            .filter_map(|u| u.layers.as_ref())
            .filter_map(|l| match &l.rtse[..] {
                [RtseApdu::Rttr(o)] => Some(o.len()),
                _ => None,
            })
            .collect();
        assert_eq!(segs.len(), segments);
        assert!(segs[..segs.len() - 1].iter().all(|l| *l == 1024));
        assert_eq!(names_of(&c)[0], "GT+AS");
    }
    assert_eq!(n.i.pending_transfers(), 0);
}

#[test]
fn window_limits_outstanding_minor_syncs() {
    let mut n = Net::connect(cfg(1, 5), cfg(1, 5));
    let a = apdu(100 * 1024);
    n.i.transfer(a.clone()).unwrap();
    // hold everything the initiator sends: it stops after 5 unconfirmed MIPs
    let mut held = Vec::new();
    while let Some(f) = n.i.poll_transmit() {
        held.extend(f);
    }
    assert_eq!(names_of(&held).iter().filter(|x| *x == "GT+MIP").count(), 5);
    assert_eq!(names_of(&held).iter().filter(|x| *x == "GT+DT").count(), 5);
    assert!(!names_of(&held).contains(&"GT+AE".to_string()));
    assert!(n.i.poll_timeout().is_some(), "recovery timer armed");
    // the responder confirms; one MIA opens the window by one
    n.r.handle_input(&held, n.now).unwrap();
    let mut mias = Vec::new();
    while let Some(f) = n.r.poll_transmit() {
        mias.push(f);
    }
    assert_eq!(mias.len(), 5);
    n.i.handle_input(&mias[0], n.now).unwrap();
    let mut more = Vec::new();
    while let Some(f) = n.i.poll_transmit() {
        more.extend(f);
    }
    assert_eq!(names_of(&more).iter().filter(|x| *x == "GT+MIP").count(), 1);
    for m in &mias[1..] {
        n.i.handle_input(m, n.now).unwrap();
    }
    n.r.handle_input(&more, n.now).unwrap();
    n.run();
    assert_eq!(n.re.pop(), Some(Event::TransferIndication { apdu: a }));
    assert!(matches!(n.ie.pop(), Some(Event::TransferConfirm { .. })));
    assert_eq!(n.i.poll_timeout(), None);
}

#[test]
fn responder_lowers_checkpoint_and_window() {
    let mut n = Net::connect(cfg(30, 10), cfg(1, 5));
    let neg = n.i.negotiated().unwrap();
    assert_eq!((neg.checkpoint_size, neg.window_size), (1, 5));
    assert_eq!(n.r.negotiated().unwrap().checkpoint_size, 1);
    let mark = n.frames.len();
    n.i.transfer(apdu(3 * 1024)).unwrap();
    n.run();
    assert_eq!(serials(&n.stream(true, mark), "MIP"), [1, 2, 3]);
    assert_eq!(serials(&n.stream(true, mark), "AE"), [4]);
}

#[test]
fn no_checkpointing_sends_one_segment() {
    let mut n = Net::connect(cfg(0, 3), cfg(1, 5));
    assert_eq!(n.i.negotiated().unwrap().checkpoint_size, 0);
    let mark = n.frames.len();
    let a = apdu(20_000);
    n.i.transfer(a.clone()).unwrap();
    n.run();
    assert_eq!(n.re.pop(), Some(Event::TransferIndication { apdu: a }));
    assert_eq!(names_of(&n.stream(true, mark)), ["GT+AS", "GT+DT", "GT+AE"]);
}

#[test]
fn turns_in_two_way_alternate() {
    let mut n = Net::connect(cfg(1, 5), cfg(1, 5));
    assert!(n.i.has_turn() && !n.r.has_turn());
    let mark = n.frames.len();
    let b = apdu(2000);
    let id = n.r.transfer(b.clone()).unwrap();
    n.run();
    assert!(n.ie.contains(&Event::TurnRequested { priority: Some(1) }));
    assert!(n.re.contains(&Event::TurnGiven));
    assert!(n.ie.contains(&Event::TransferIndication { apdu: b }));
    assert!(n.re.contains(&Event::TransferConfirm { id }));
    assert_eq!(
        names_of(&n.stream(false, mark))[..2],
        ["PT".to_string(), "GTA".to_string()]
    );
    assert_eq!(names_of(&n.stream(true, mark))[0], "GTC");
    assert!(n.r.has_turn() && !n.i.has_turn());
    // and back: the initiator asks, the responder gives, the initiator transfers
    let a = apdu(100);
    n.i.transfer(a.clone()).unwrap();
    n.run();
    assert!(n.re.contains(&Event::TransferIndication { apdu: a }));
    assert!(n.i.has_turn());
    // release while the responder holds the turn: the initiator asks for it first
    n.i.transfer(apdu(10)).unwrap();
    n.run();
    n.ie.clear();
    n.re.clear();
    let b2 = apdu(10);
    n.r.transfer(b2.clone()).unwrap();
    n.run();
    assert!(n.r.has_turn());
    n.i.release().unwrap();
    n.run();
    assert_eq!(n.ie.last(), Some(&Event::Released));
    assert_eq!(n.re.last(), Some(&Event::Released));
    assert!(n.i.is_closed() && n.r.is_closed());
}

#[test]
fn monologue_keeps_the_turn_with_the_initiator() {
    let mut icfg = cfg(1, 5);
    icfg.dialogue_mode = DialogueMode::Monologue;
    let mut n = Net::connect(icfg, cfg(1, 5));
    let err = n.r.transfer(apdu(10)).unwrap_err();
    assert!(matches!(
        err,
        OsiError::Association(AssociationError::Api {
            action: "transfer",
            ..
        })
    ));
    assert!(n.r.is_established(), "api misuse changes nothing");
}

#[test]
fn refusal() {
    let mut n = Net::new(cfg(1, 5), cfg(1, 5));
    n.run();
    assert!(matches!(n.re.pop(), Some(Event::AssociateIndication(_))));
    n.r.refuse(vec![0x02, 0x01, 0x02]).unwrap();
    assert!(n.r.is_closed());
    let mark = n.frames.len();
    n.run();
    let Some(Event::AssociateRefused(refusal)) = n.ie.pop() else {
        panic!("{:?}", n.ie)
    };
    assert_eq!(
        refusal.session_reason,
        Some(session::refuse_reason::REJECTED_WITH_DATA)
    );
    assert_eq!(refusal.acse_result, Some(1));
    assert_eq!(refusal.bind_error, Some(vec![0x02, 0x01, 0x02]));
    assert!(n.i.is_closed());
    // on the wire: RF whose Reason Code holds the CPR, the RTORJ's bind error under [18]
    let s = n.stream(false, mark);
    let units = decode_stream(&s).unwrap();
    let l = units[0].layers.as_ref().unwrap();
    assert_eq!(l.names, ["RF"]);
    let [RtseApdu::Rtorj(rj)] = &l.rtse[..] else {
        panic!()
    };
    assert_eq!(
        rj.user_data_rj.as_ref().unwrap().as_bytes(),
        hex("b203020102")
    );
}

#[test]
fn release_and_abort() {
    let mut n = Net::connect(cfg(1, 5), cfg(1, 5));
    let mark = n.frames.len();
    n.i.release().unwrap();
    n.run();
    assert_eq!(
        (n.ie.pop(), n.re.pop()),
        (Some(Event::Released), Some(Event::Released))
    );
    assert_eq!(names_of(&n.stream(true, mark)), ["FN", "DR"]);
    assert_eq!(names_of(&n.stream(false, mark)), ["DN"]);
    assert!(matches!(
        n.r.release(),
        Err(OsiError::Association(AssociationError::Api { .. }))
    ));

    let mut n = Net::connect(cfg(1, 5), cfg(1, 5));
    assert!(matches!(
        n.r.release(),
        Err(OsiError::Association(AssociationError::Api {
            action: "release",
            ..
        }))
    ));
    n.i.abort();
    assert!(n.i.is_closed());
    n.run();
    let Some(Event::Aborted { reason }) = n.re.pop() else {
        panic!("{:?}", n.re)
    };
    assert_eq!(
        reason,
        AbortReason::Peer {
            transport_disconnect: Some(3),
            presentation_reason: None,
            acse_source: Some(0),
            rtse_reason: None
        }
    );
    assert!(n.ie.is_empty(), "a local abort queues no event");
}

#[test]
fn recovery_timeout_aborts_the_transfer() {
    let mut n = Net::connect(cfg(1, 5), cfg(1, 5));
    n.i.transfer(apdu(10 * 1024)).unwrap();
    let mut held = Vec::new();
    while let Some(f) = n.i.poll_transmit() {
        held.extend(f);
    }
    let deadline = n.i.poll_timeout().unwrap();
    assert_eq!(deadline, n.now + Duration::from_secs(60));
    n.i.handle_timeout(deadline - Duration::from_millis(1));
    assert!(n.i.is_established());
    n.i.handle_timeout(deadline);
    assert_eq!(
        n.i.poll_event(),
        Some(Event::Aborted {
            reason: AbortReason::Timeout("minor sync ack")
        })
    );
    let ab: Vec<u8> = std::iter::from_fn(|| n.i.poll_transmit())
        .flatten()
        .collect();
    let units = decode_stream(&ab).unwrap();
    let l = units[0].layers.as_ref().unwrap();
    assert_eq!(l.names, ["AB"]);
    let [RtseApdu::Rtab(rtab)] = &l.rtse[..] else {
        panic!()
    };
    assert_eq!(
        rtab.abort_reason,
        Some(rtse::abort_reason::TEMPORARY_PROBLEM)
    );
    assert!(n.i.is_closed());
}

#[test]
fn silent_sender_mid_activity_aborts_the_receiver() {
    let mut n = Net::connect(cfg(1, 5), cfg(1, 5));
    n.i.transfer(apdu(10 * 1024)).unwrap();
    // The first frames arrive (AS, the first segments), then the link goes silent.
    let frames: Vec<Vec<u8>> = std::iter::from_fn(|| n.i.poll_transmit()).collect();
    let half = frames.len() / 2;
    let t1 = n.now + Duration::from_millis(100);
    for f in &frames[..half] {
        n.r.handle_input(f, t1).unwrap();
    }
    let p = n.i.sending_progress().unwrap();
    // A window of 5 checkpoints of 1 KiB went to the transport, none confirmed yet.
    assert_eq!(
        (p.sent, p.checkpoints_sent, p.checkpoints_confirmed),
        (5 * 1024, 5, 0),
        "{p:?}"
    );
    assert!(p.octets > 10 * 1024);
    let got = n.r.receiving_progress().unwrap();
    assert!(got.octets > 0 && got.octets < p.octets, "{got:?}");
    // Every input restarts the receiver's recovery timer.
    assert_eq!(n.r.poll_timeout(), Some(t1 + Duration::from_secs(60)));
    n.r.handle_timeout(t1 + Duration::from_secs(59));
    assert!(n.r.is_established());
    n.r.handle_timeout(t1 + Duration::from_secs(60));
    assert_eq!(
        n.r.poll_event(),
        Some(Event::Aborted {
            reason: AbortReason::Timeout("transfer data")
        })
    );
    assert!(n.r.is_closed() && n.r.receiving_progress().is_none());
    // No transfer indication: the partial APDU is gone.
    assert!(n.r.poll_event().is_none());
}

#[test]
fn receiver_timer_stops_at_activity_end() {
    let mut n = Net::connect(cfg(1, 5), cfg(1, 5));
    n.i.transfer(apdu(3000)).unwrap();
    n.run();
    assert!(
        n.re.iter()
            .any(|e| matches!(e, Event::TransferIndication { .. }))
    );
    assert!(
        n.ie.iter()
            .any(|e| matches!(e, Event::TransferConfirm { .. }))
    );
    assert_eq!(
        n.r.poll_timeout(),
        None,
        "an idle association has no recovery timer"
    );
    assert_eq!(n.i.poll_timeout(), None);
    assert!(n.i.sending_progress().is_none() && n.r.receiving_progress().is_none());
}

#[test]
fn establishment_timeout() {
    let t0 = Instant::now();
    let mut i = Association::initiator(cfg(1, 5), bind_argument(), t0).unwrap();
    assert_eq!(i.poll_timeout(), Some(t0 + Duration::from_secs(60)));
    i.handle_timeout(t0 + Duration::from_secs(61));
    assert_eq!(
        i.poll_event(),
        Some(Event::Aborted {
            reason: AbortReason::Timeout("cc")
        })
    );
    assert!(i.is_closed());
}

#[test]
fn api_argument_checks() {
    let t0 = Instant::now();
    assert!(
        Association::initiator(cfg(1, 5), vec![0x04, 0x05, 0x00], t0).is_err(),
        "truncated bind argument"
    );
    let mut bad = cfg(1, 0);
    assert!(Association::responder(bad.clone()).is_err());
    bad.window_size = 5;
    bad.local_ssap = vec![0; 17];
    assert!(Association::responder(bad).is_err());
    let mut n = Net::connect(cfg(1, 5), cfg(1, 5));
    assert!(n.i.transfer(vec![0x04, 0x01]).is_err(), "not one ber value");
    assert!(n.r.accept(bind_result()).is_err(), "accept twice");
    assert_eq!(n.i.transfer(apdu(5)).map(|_| ()), Ok(()));
    n.run();
    assert!(matches!(
        n.ie.last(),
        Some(Event::TransferConfirm { id: TransferId(1) })
    ));
}

/// A transfer broken after the receiver confirmed 5 checkpoints and the sender saw 3 of
/// those confirmations (the other 2 lost with the link): both sides time out, keeping what
/// recovery needs.
fn broken_transfer(a: &[u8]) -> (RecoveryPoint, PartialTransfer) {
    let mut n = Net::connect(cfg(1, 5), cfg(1, 5));
    n.i.transfer(a).unwrap();
    let held: Vec<u8> = std::iter::from_fn(|| n.i.poll_transmit())
        .flatten()
        .collect();
    assert_eq!(names_of(&held).iter().filter(|x| *x == "GT+MIP").count(), 5);
    n.r.handle_input(&held, n.now).unwrap();
    let mias: Vec<Vec<u8>> = std::iter::from_fn(|| n.r.poll_transmit()).collect();
    assert_eq!(mias.len(), 5);
    for m in &mias[..3] {
        n.i.handle_input(m, n.now).unwrap();
    }
    // What the initiator sent on (the window opened by 3) never arrives.
    while n.i.poll_transmit().is_some() {}
    assert_eq!(
        n.i.take_recovery_point(),
        None,
        "nothing to recover while open"
    );
    let later = n.now + Duration::from_secs(61);
    n.i.handle_timeout(later);
    n.r.handle_timeout(later);
    assert!(n.i.is_closed() && n.r.is_closed());
    let point = n.i.take_recovery_point().expect("recovery point");
    let partial = n.r.take_partial_transfer().expect("partial transfer");
    assert_eq!(
        n.r.take_recovery_point(),
        None,
        "the responder sent nothing"
    );
    assert_eq!(
        n.i.take_partial_transfer(),
        None,
        "the initiator received nothing"
    );
    (point, partial)
}

#[test]
fn a_broken_transfer_resumes_from_the_last_confirmed_checkpoint() {
    let a = apdu(20 * 1024);
    let ext_len = External::single(None, 5, a.clone()).encode().len();
    let (point, partial) = broken_transfer(&a);
    assert_eq!(
        (point.serial, point.confirmed, point.octets()),
        (3, 3 * 1024, ext_len)
    );
    assert_eq!((partial.checkpoints(), partial.octets()), (5, 5 * 1024));
    assert_eq!(
        point.connection, partial.connection,
        "both name the same session"
    );
    assert_eq!(point.activity_id, partial.activity_id);

    let t0 = Instant::now();
    let (i, id) = Association::initiator_recovering(cfg(1, 5), point, t0).unwrap();
    assert_eq!(i.pending_transfers(), 1);
    let mut n = Net::between(i, cfg(1, 5), t0);
    n.run();
    let Some(Event::AssociateIndication(ind)) = n.re.pop() else {
        panic!("{:?}", n.re)
    };
    assert_eq!(ind.recover.as_ref(), Some(&partial.connection));
    assert!(ind.bind_argument.is_empty());
    assert!(
        n.r.accept(bind_result()).is_err(),
        "a recover is not accepted with a bind result"
    );
    let mut other = partial.clone();
    other.connection.common_reference = chrono::DateTime::from_timestamp(0, 0).unwrap();
    assert!(
        n.r.accept_recovery(other).is_err(),
        "another session's partial transfer"
    );
    let mark = n.frames.len();
    n.r.accept_recovery(partial).unwrap();
    n.run();
    assert!(
        matches!(&n.ie[..], [Event::AssociateConfirm(c), Event::TransferConfirm { id: done }]
            if c.recovered && c.bind_result.is_empty() && *done == id),
        "{:?}",
        n.ie
    );
    assert_eq!(n.re.pop(), Some(Event::TransferIndication { apdu: a }));
    let c = n.stream(true, mark);
    let names = names_of(&c);
    assert_eq!(names[0], "GT+AR", "{names:?}");
    assert!(!names.contains(&"GT+AS".to_string()));
    // The AR resumes at serial 3 (the last the sender saw confirmed); minor syncs go on at 4.
    let units = decode_stream(&c).unwrap();
    let ar = &units.iter().find_map(|u| u.layers.as_ref()).unwrap().spdus[1];
    assert_eq!(ar.params.serial_number, Some(3));
    let linking = ar.params.linking.as_ref().expect("linking information");
    assert_eq!(linking.old_activity_id.as_deref(), Some(&[2, 1, 1][..]));
    assert_eq!(
        linking.connection.calling_ss_user_ref.as_deref(),
        Some(&b"\x04\x06MTALAB"[..])
    );
    assert_ne!(
        ar.params.activity_id, linking.old_activity_id,
        "a new activity identifier"
    );
    let segments = ext_len.div_ceil(1024);
    assert_eq!(serials(&c, "MIP"), (4..segments as u32).collect::<Vec<_>>());
    assert_eq!(serials(&c, "AE"), [segments as u32]);
    // Only what came after the checkpoint went again.
    let sent: usize = units
        .iter()
        .filter_map(|u| u.layers.as_ref())
        .filter_map(|l| match &l.rtse[..] {
            [RtseApdu::Rttr(o)] => Some(o.len()),
            _ => None,
        })
        .sum();
    assert_eq!(sent, ext_len - 3 * 1024);
    assert_eq!(n.i.pending_transfers(), 0);
}

#[test]
fn a_recover_without_its_partial_transfer_is_refused_and_the_point_kept() {
    let (point, _) = broken_transfer(&apdu(20 * 1024));
    let t0 = Instant::now();
    let (i, _) = Association::initiator_recovering(cfg(1, 5), point.clone(), t0).unwrap();
    let mut n = Net::between(i, cfg(1, 5), t0);
    n.run();
    assert!(matches!(n.re.pop(), Some(Event::AssociateIndication(ind)) if ind.recover.is_some()));
    assert!(
        n.r.refuse(vec![2, 1, 2]).is_err(),
        "a recover is refused as a recover"
    );
    n.r.refuse_recovery().unwrap();
    n.run();
    let Some(Event::AssociateRefused(refusal)) = n.ie.pop() else {
        panic!("{:?}", n.ie)
    };
    assert_eq!(
        refusal.rtse_reason,
        Some(rtse::refuse_reason::CANNOT_RECOVER)
    );
    assert!(n.i.is_closed() && n.r.is_closed());
    assert_eq!(
        n.i.take_recovery_point(),
        Some(point),
        "kept for the caller"
    );
}

#[test]
fn an_activity_resume_at_a_point_never_confirmed_aborts() {
    let a = apdu(20 * 1024);
    let (point, partial) = broken_transfer(&a);
    let t0 = Instant::now();
    let (mut i, _) = Association::initiator_recovering(cfg(1, 5), point, t0).unwrap();
    let mut r = Association::responder(cfg(1, 5)).unwrap();
    // CR, then (after the CC) the CN with the recover.
    for _ in 0..2 {
        let out: Vec<u8> = std::iter::from_fn(|| i.poll_transmit()).flatten().collect();
        r.handle_input(&out, t0).unwrap();
        let back: Vec<u8> = std::iter::from_fn(|| r.poll_transmit()).flatten().collect();
        i.handle_input(&back, t0).unwrap();
    }
    assert!(
        matches!(r.poll_event(), Some(Event::AssociateIndication(ind)) if ind.recover.is_some())
    );
    r.accept_recovery(partial).unwrap();
    while r.poll_transmit().is_some() {}
    // The receiver confirmed 5 checkpoints; an AR at serial 6 resumes at none of them.
    let ar = Spdu::with(
        SpduCode::AR,
        Params {
            serial_number: Some(6),
            activity_id: Some(vec![2, 1, 2]),
            ..Params::default()
        },
    );
    let tsdu = session::encode_tsdu(&[Spdu::new(SpduCode::GT), ar]).unwrap();
    let (e, _) = fails(&mut r, &tsdu_frames(&tsdu), t0);
    assert!(e.to_string().contains("serial 6"), "{e}");
    assert!(r.is_closed());
    // Kept for another recover: the broken association's partial transfer is not lost.
    assert_eq!(r.take_partial_transfer().map(|p| p.checkpoints()), Some(5));
}

#[test]
fn an_activity_resume_without_a_recovered_transfer_aborts() {
    let mut n = Net::connect(cfg(1, 5), cfg(1, 5));
    let ar = Spdu::with(
        SpduCode::AR,
        Params {
            serial_number: Some(1),
            activity_id: Some(vec![2, 1, 9]),
            ..Params::default()
        },
    );
    let tsdu = session::encode_tsdu(&[Spdu::new(SpduCode::GT), ar]).unwrap();
    let (e, _) = fails(&mut n.r, &tsdu_frames(&tsdu), n.now);
    assert!(e.to_string().contains("activity resume"), "{e}");
    assert!(n.r.is_closed());
    assert_eq!(n.r.take_partial_transfer(), None);
}

// ----- against the vector peers -----

fn txt_frames(name: &str, from_initiator: bool) -> Vec<Vec<u8>> {
    let bytes: Vec<u8> = read_txt(name)
        .into_iter()
        .filter(|f| f.0 == from_initiator)
        .flat_map(|f| f.1)
        .collect();
    tpkts(&bytes).into_iter().map(|t| framed(&t)).collect()
}

fn capture_frames(name: &str, flow: usize) -> Vec<Vec<u8>> {
    let flows = read_capture(&std::fs::read(vectors_dir().join(name)).unwrap());
    tpkts(&flows[flow].1)
        .into_iter()
        .map(|t| framed(&t))
        .collect()
}

fn framed(tpdu: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    tpkt::encode(tpdu, &mut f).unwrap();
    f
}

fn drain(a: &mut Association) -> (Vec<u8>, Vec<Event>) {
    let tx = std::iter::from_fn(|| a.poll_transmit()).flatten().collect();
    let ev = std::iter::from_fn(|| a.poll_event()).collect();
    (tx, ev)
}

#[test]
fn responder_answers_x400ping() {
    let now = Instant::now();
    let mut r = Association::responder(AssociationConfig::default()).unwrap();
    for f in txt_frames("x400ping.txt", true) {
        r.handle_input(&f, now).unwrap();
    }
    let (tx, ev) = drain(&mut r);
    assert_eq!(names_of(&tx), ["CC"]);
    let [Event::AssociateIndication(ind)] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert!(
        contains(&ind.bind_argument, b"percival.smhs.co.uk")
            && contains(&ind.bind_argument, b"excalibur")
    );
    assert_eq!(
        (ind.checkpoint_size, ind.window_size, ind.dialogue_mode),
        (63, 3, DialogueMode::Monologue)
    );
    assert_eq!(ind.tpdu_size, 2048);
    r.accept(bind_result()).unwrap();
    let (tx, _) = drain(&mut r);
    let units = decode_stream(&tx).unwrap();
    let l = units[0].layers.as_ref().unwrap();
    assert_eq!(l.names, ["AC"]);
    let [RtseApdu::Rtoac(oac)] = &l.rtse[..] else {
        panic!()
    };
    // min(63 proposed, 30 configured); window min(3, 5)
    assert_eq!((oac.checkpoint_size(), oac.window_size()), (30, 3));
}

#[test]
fn responder_receives_pp_checkpointed_transfer() {
    let now = Instant::now();
    let rcfg = AssociationConfig {
        checkpoint_size: 1,
        ..AssociationConfig::default()
    };
    let mut r = Association::responder(rcfg).unwrap();
    let frames = capture_frames("pp-checkpointed-transfer.pcap", 0);
    r.handle_input(&frames[0], now).unwrap();
    r.handle_input(&frames[1], now).unwrap();
    let (_, ev) = drain(&mut r);
    let [Event::AssociateIndication(ind)] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(ind.called_tsap, b"591");
    assert_eq!((ind.checkpoint_size, ind.window_size), (30, 5));
    r.accept(bind_result()).unwrap();
    for f in &frames[2..] {
        r.handle_input(f, now).unwrap();
    }
    let (tx, ev) = drain(&mut r);
    assert_eq!(
        names_of(&tx),
        ["AC", "PT+MIA", "PT+MIA", "PT+MIA", "PT+AEA", "DN"]
    );
    assert_eq!(serials(&tx, "MIA"), [1, 2, 3]);
    assert_eq!(serials(&tx, "AEA"), [4]);
    let [Event::TransferIndication { apdu }, Event::Released] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(apdu.len(), 3330); // EXTERNAL of 3341 octets less its own and [0]'s headers
    assert_eq!(mtalab_osi::ber::scan(apdu, 64), Ok(apdu.len()));
}

#[test]
fn responder_receives_pp_indefinite_lengths() {
    let now = Instant::now();
    let mut r = Association::responder(AssociationConfig::default()).unwrap();
    let frames = capture_frames("pp-initiator-transfer.pcap", 2);
    r.handle_input(&frames[0], now).unwrap();
    r.handle_input(&frames[1], now).unwrap();
    let (_, ev) = drain(&mut r);
    let [Event::AssociateIndication(ind)] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!((ind.checkpoint_size, ind.window_size), (63, 3));
    r.accept(bind_result()).unwrap();
    for f in &frames[2..] {
        r.handle_input(f, now).unwrap();
    }
    let (tx, ev) = drain(&mut r);
    assert_eq!(names_of(&tx), ["AC", "PT+AEA", "DN"]);
    let [Event::TransferIndication { apdu }, Event::Released] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(
        &apdu[..2],
        &[0xa0, 0x80],
        "the MTS-APDU as sent, indefinite length"
    );
}

#[test]
fn initiator_honours_pp_checkpoint_size() {
    // Our initiator proposes K=30; PP's RTOAC answers 1 KiB, window 5.
    let now = Instant::now();
    let pp = capture_frames("pp-checkpointed-transfer.pcap", 1);
    let client = capture_frames("pp-checkpointed-transfer.pcap", 0);
    let mut i = Association::initiator(cfg(30, 5), bind_argument(), now).unwrap();
    i.handle_input(&pp[0], now).unwrap(); // CC
    i.handle_input(&pp[1], now).unwrap(); // AC
    let (_, ev) = drain(&mut i);
    let [Event::AssociateConfirm(c)] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!((c.checkpoint_size, c.window_size), (1, 5));
    assert!(contains(&c.bind_result, b"PPMTA"));
    // transfer the very MTS-APDU of the capture: same segmentation as the capture
    let seg: Vec<u8> = client[3..10]
        .iter()
        .filter_map(|f| decode_stream(f).unwrap().pop().and_then(|u| u.layers))
        .filter_map(|l| match &l.rtse[..] {
            [RtseApdu::Rttr(o)] => Some(o.to_vec()),
            _ => None,
        })
        .flatten()
        .collect();
    let mts_apdu = External::decode(&seg).unwrap().value().unwrap().to_vec();
    let id = i.transfer(mts_apdu).unwrap();
    let (tx, _) = drain(&mut i);
    assert_eq!(
        names_of(&tx),
        [
            "GT+AS", "GT+DT", "GT+MIP", "GT+DT", "GT+MIP", "GT+DT", "GT+MIP", "GT+DT", "GT+AE"
        ]
    );
    for f in &pp[2..6] {
        i.handle_input(f, now).unwrap(); // MIA 1-3, AEA 4
    }
    let (_, ev) = drain(&mut i);
    assert_eq!(ev, [Event::TransferConfirm { id }]);
    i.release().unwrap();
    i.handle_input(&pp[6], now).unwrap(); // DN
    let (tx, ev) = drain(&mut i);
    assert_eq!(names_of(&tx), ["FN", "DR"]);
    assert_eq!(ev, [Event::Released]);
}

#[test]
fn initiator_gets_pp_refusal() {
    let now = Instant::now();
    let mut i = Association::initiator(cfg(30, 5), bind_argument(), now).unwrap();
    let cc = framed(&hex("09d0000174aa00c0010b"));
    i.handle_input(&cc, now).unwrap();
    i.handle_input(&hex(vectors_pp_refusal()), now).unwrap();
    let (_, ev) = drain(&mut i);
    let [Event::AssociateRefused(r)] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(
        r.bind_error,
        Some(vec![0x02, 0x01, 0x02]),
        "accepted without its [18]"
    );
    assert_eq!(
        (r.session_reason, r.acse_result, r.rtse_reason),
        (Some(2), Some(1), None)
    );
    assert!(i.is_closed());
}

fn vectors_pp_refusal() -> &'static str {
    "0300008102f0800c78011a0907040545584348310b0f170d3939313233313233353935395a110101140202493253023050a51b3007800100810251013007800100810251013007800100810251016131302f020101a02a6128a106060456000106a203020101a305a103020101be12281006025101020103a007b205a103020102"
}

// ----- malformed input at each layer, and its wire reaction -----

/// A responder that has accepted the x400ping CR (transport up, awaiting CN).
fn transport_up() -> (Association, Instant) {
    let now = Instant::now();
    let mut r = Association::responder(AssociationConfig::default()).unwrap();
    r.handle_input(&txt_frames("x400ping.txt", true)[0], now)
        .unwrap();
    drain(&mut r);
    (r, now)
}

/// A responder with an accepted association (from the x400ping open).
fn established() -> (Association, Instant) {
    let (mut r, now) = transport_up();
    r.handle_input(&txt_frames("x400ping.txt", true)[1], now)
        .unwrap();
    r.accept(bind_result()).unwrap();
    drain(&mut r);
    (r, now)
}

fn tsdu_frames(tsdu: &[u8]) -> Vec<u8> {
    mtalab_osi::cotp::segment(tsdu, mtalab_osi::cotp::TpduSize::from_code(11).unwrap())
        .iter()
        .flat_map(|t| framed(t))
        .collect()
}

fn cn_with_user_data(user_data: Vec<u8>) -> Vec<u8> {
    let cn = Spdu::with(
        SpduCode::CN,
        Params {
            requirements: Some(0x0249),
            user_data: Some(user_data),
            ..Params::default()
        },
    );
    tsdu_frames(&session::encode_tsdu(&[cn]).unwrap())
}

fn fails(r: &mut Association, input: &[u8], now: Instant) -> (OsiError, Vec<u8>) {
    let e = r.handle_input(input, now).unwrap_err();
    let (tx, ev) = drain(r);
    assert!(
        matches!(
            ev.last(),
            Some(Event::Aborted {
                reason: AbortReason::Protocol(_)
            })
        ),
        "{ev:?}"
    );
    assert!(r.is_closed());
    (e, tx)
}

/// The last TSDU sent, which must be an AB.
fn abort_layers(tx: &[u8]) -> Layers {
    let units = decode_stream(tx).unwrap();
    let l = units.last().unwrap().layers.clone().unwrap();
    assert_eq!(l.names, ["AB"]);
    l
}

#[test]
fn tpkt_error_closes() {
    let (mut r, now) = transport_up();
    let (e, tx) = fails(&mut r, &[4, 0, 0, 7, 2, 0xf0, 0x80], now);
    assert!(matches!(
        e,
        OsiError::Tpkt(mtalab_osi::tpkt::TpktError::BadVersion(4))
    ));
    assert_eq!(e.reaction(), mtalab_osi::Reaction::Close);
    assert!(tx.is_empty());
    let (mut r, now) = transport_up();
    let (e, _) = fails(&mut r, &[3, 0, 0, 2], now);
    assert!(matches!(
        e,
        OsiError::Tpkt(mtalab_osi::tpkt::TpktError::TooShort(2))
    ));
}

#[test]
fn cotp_errors_answer_er_or_dr() {
    let (mut r, now) = transport_up();
    let (e, tx) = fails(&mut r, &framed(&[0x02, 0x60, 0x00]), now); // AK: not class 0
    assert!(matches!(
        e,
        OsiError::Cotp(mtalab_osi::cotp::CotpError::UnsupportedTpdu(_))
    ));
    let [t] = &tpkts(&tx)[..] else { panic!() };
    assert_eq!(
        Tpdu::decode(t).unwrap(),
        Tpdu::Er(mtalab_osi::cotp::ErrorTpdu {
            dst_ref: 1,
            cause: 2,
            invalid_tpdu: None
        })
    );
    // a TSDU past the cap
    let small = AssociationConfig {
        max_tsdu_size: 4096,
        ..AssociationConfig::default()
    };
    let mut r = Association::responder(small).unwrap();
    r.handle_input(&txt_frames("x400ping.txt", true)[0], now)
        .unwrap();
    drain(&mut r);
    let mut dts = Vec::new();
    for _ in 0..3 {
        let mut t = vec![0x02, 0xf0, 0x00];
        t.extend(vec![0u8; 2000]);
        dts.extend(framed(&t));
    }
    let (e, tx) = fails(&mut r, &dts, now);
    assert_eq!(
        e,
        OsiError::Cotp(mtalab_osi::cotp::CotpError::TsduTooLarge(4096))
    );
    assert!(matches!(Tpdu::decode(&tpkts(&tx)[0]).unwrap(), Tpdu::Er(er) if er.cause == 0));
    // a CR for class 4: DR
    let mut r = Association::responder(AssociationConfig::default()).unwrap();
    let (e, tx) = fails(&mut r, &framed(&hex("06e00000000140")), now);
    assert!(matches!(
        e,
        OsiError::Cotp(mtalab_osi::cotp::CotpError::UnsupportedClass(4))
    ));
    assert!(matches!(Tpdu::decode(&tpkts(&tx)[0]).unwrap(), Tpdu::Dr(_)));
}

#[test]
fn session_error_answers_ab() {
    let (mut r, now) = transport_up();
    let (e, tx) = fails(&mut r, &tsdu_frames(&[0x0d, 0x05, 0x01]), now); // truncated CN
    assert!(matches!(e, OsiError::Session(_)));
    let l = abort_layers(&tx);
    assert_eq!(l.spdus[0].params.transport_disconnect, Some(0x05)); // released, protocol error
    assert!(l.spdus[0].params.user_data.is_none());
    // an oversized session selector
    let (mut r, now) = transport_up();
    let cn = Spdu::with(
        SpduCode::CN,
        Params {
            calling_ssap: Some(vec![1; 17]),
            ..Params::default()
        },
    );
    let (e, _) = fails(
        &mut r,
        &tsdu_frames(&session::encode_tsdu(&[cn]).unwrap()),
        now,
    );
    assert_eq!(
        e,
        OsiError::Session(session::SessionError::BadParameter {
            code: 51,
            what: "too long"
        })
    );
}

#[test]
fn presentation_error_answers_arp() {
    let (mut r, now) = transport_up();
    let (e, tx) = fails(&mut r, &cn_with_user_data(hex("3103800101ff")), now);
    assert!(matches!(e, OsiError::Presentation(_)));
    let l = abort_layers(&tx);
    let Some(Ppdu::Abort(AbortPpdu::Arp(arp))) = &l.ppdu else {
        panic!("{:?}", l.ppdu)
    };
    assert_eq!(arp.provider_reason, Some(1));
    // too many contexts
    let (mut r, now) = transport_up();
    let mut cp = hex("31 80 a0 03 80 01 01 a2 80 a4 80");
    for i in 0..33u8 {
        cp.extend(hex("300f0201"));
        cp.push(2 * i + 1);
        cp.extend(hex("0604520100013004060251 01"));
    }
    cp.extend(hex("0000 0000 0000"));
    let (e, _) = fails(&mut r, &cn_with_user_data(cp), now);
    assert_eq!(
        e,
        OsiError::Presentation(mtalab_osi::presentation::PresentationError::TooMany(
            32, "contexts"
        ))
    );
}

#[test]
fn acse_error_answers_abrt() {
    let (mut r, now) = transport_up();
    // the x400ping CP with the AARQ's application tag broken ([APPLICATION 5] instead of 0)
    let mut cn = txt_frames("x400ping.txt", true)[1].clone();
    let pos = cn
        .windows(4)
        .position(|w| w == [0x60, 0x47, 0xa1, 0x06])
        .unwrap();
    cn[pos] = 0x65;
    let (e, tx) = fails(&mut r, &cn, now);
    assert!(matches!(e, OsiError::Acse(_)), "{e}");
    let l = abort_layers(&tx);
    let [AcseApdu::Abrt(abrt)] = &l.acse[..] else {
        panic!()
    };
    assert_eq!(abrt.abort_source, 1); // acse-service-provider
}

#[test]
fn rtse_errors_answer_rtab() {
    // a MIP with the wrong serial number
    let (mut r, now) = established();
    let mut input = tsdu_frames(&hex("01002d03290101"));
    input.extend(tsdu_frames(&hex("010031032a0132")));
    let (e, tx) = fails(&mut r, &input, now);
    assert_eq!(
        e,
        OsiError::Rtse(mtalab_osi::rtse::RtseError::Serial {
            got: 2,
            expected: 1
        })
    );
    let l = abort_layers(&tx);
    let Some(Ppdu::Abort(AbortPpdu::Aru(AruPpdu::NormalModeParameters(_)))) = &l.ppdu else {
        panic!()
    };
    let [RtseApdu::Rtab(rtab)] = &l.rtse[..] else {
        panic!()
    };
    assert_eq!(rtab.abort_reason, Some(rtse::abort_reason::PROTOCOL_ERROR));
    // an APDU over the cap
    let mut rcfg = cfg(1, 5);
    rcfg.max_apdu_size = 2000;
    let mut n = Net::connect(cfg(1, 5), rcfg);
    n.i.transfer(apdu(3000)).unwrap();
    let held: Vec<u8> = std::iter::from_fn(|| n.i.poll_transmit())
        .flatten()
        .collect();
    let (e, tx) = fails(&mut n.r, &held, n.now);
    assert_eq!(
        e,
        OsiError::Rtse(mtalab_osi::rtse::RtseError::ApduTooLarge(2000))
    );
    let [RtseApdu::Rtab(rtab)] = &abort_layers(&tx).rtse[..] else {
        panic!()
    };
    assert_eq!(
        rtab.abort_reason,
        Some(rtse::abort_reason::LOCAL_SYSTEM_PROBLEM)
    );
    n.i.handle_input(&tx, n.now).unwrap();
    assert!(matches!(
        n.i.poll_event(),
        Some(Event::Aborted {
            reason: AbortReason::Peer {
                rtse_reason: Some(0),
                ..
            }
        })
    ));
}

#[test]
fn out_of_state_pdus_are_refused() {
    // data before the association is accepted
    let (mut r, now) = transport_up();
    let (e, _) = fails(&mut r, &tsdu_frames(&hex("01000100")), now);
    assert!(
        matches!(
            e,
            OsiError::Association(AssociationError::Unexpected { pdu: "DT", .. })
        ),
        "{e}"
    );
    // a second CR
    let (mut r, now) = established();
    let (e, _) = fails(&mut r, &txt_frames("x400ping.txt", true)[0], now);
    assert!(matches!(
        e,
        OsiError::Association(AssociationError::Unexpected { pdu: "CR", .. })
    ));
    // input after close is ignored
    assert_eq!(r.handle_input(&[0xff; 10], now), Ok(()));
}

#[test]
fn ae_titles_travel() {
    use mtalab_osi::AeTitle;
    let a = AeTitle {
        ap_title: vec![1, 3, 6, 1, 4, 1, 99],
        ae_qualifier: Some(7),
    };
    let b = AeTitle {
        ap_title: vec![2, 6, 1, 2],
        ae_qualifier: None,
    };
    let mut icfg = cfg(1, 5);
    icfg.local_ae_title = Some(a.clone());
    icfg.remote_ae_title = Some(b.clone());
    let mut rcfg = cfg(1, 5);
    rcfg.local_ae_title = Some(b.clone());
    let mut n = Net::new(icfg, rcfg);
    n.run();
    let Some(Event::AssociateIndication(ind)) = n.re.pop() else {
        panic!()
    };
    assert_eq!(
        (ind.calling_ae_title.as_ref(), ind.called_ae_title.as_ref()),
        (Some(&a), Some(&b))
    );
    n.r.accept(bind_result()).unwrap();
    n.run();
    let Some(Event::AssociateConfirm(c)) = n.ie.pop() else {
        panic!()
    };
    assert_eq!(c.responding_ae_title, Some(b));
}

/// What [`break_at`] left: the APDU sent, what each side kept for recovery, and the APDUs the
/// receiver indicated before the line died.
struct Broken {
    apdu: Vec<u8>,
    point: Option<RecoveryPoint>,
    partial: Option<PartialTransfer>,
    indicated: Vec<Vec<u8>>,
}

/// A transfer of `size` octets at Checkpoint size `k` KiB and Window `w`, its frames moved
/// whole both ways `rounds` times, then only the first `f` of the sender's pending frames and
/// the first `m` of the receiver's before the line dies (both sides time out).
fn break_at(size: usize, k: u32, w: u32, rounds: usize, f: usize, m: usize) -> Broken {
    let mut n = Net::connect(cfg(k, w), cfg(k, w));
    let a = apdu(size);
    n.i.transfer(a.clone()).unwrap();
    for _ in 0..rounds {
        while let Some(x) = n.i.poll_transmit() {
            n.r.handle_input(&x, n.now).unwrap();
        }
        while let Some(x) = n.r.poll_transmit() {
            n.i.handle_input(&x, n.now).unwrap();
        }
    }
    let out: Vec<Vec<u8>> = std::iter::from_fn(|| n.i.poll_transmit()).collect();
    for x in out.iter().take(f) {
        n.r.handle_input(x, n.now).unwrap();
    }
    let back: Vec<Vec<u8>> = std::iter::from_fn(|| n.r.poll_transmit()).collect();
    for x in back.iter().take(m) {
        n.i.handle_input(x, n.now).unwrap();
    }
    let later = n.now + Duration::from_secs(61);
    n.i.handle_timeout(later);
    n.r.handle_timeout(later);
    let indicated = std::iter::from_fn(|| n.r.poll_event())
        .filter_map(|e| match e {
            Event::TransferIndication { apdu } => Some(apdu),
            _ => None,
        })
        .collect();
    Broken {
        apdu: a,
        point: n.i.take_recovery_point(),
        partial: n.r.take_partial_transfer(),
        indicated,
    }
}

/// Wherever a checkpointed transfer breaks, a sender left with a recovery point finds
/// the receiver's partial transfer at or past that point, and the recovered transfer
/// delivers the APDU whole, once. When the break took only the activity's confirmation
/// (the AEA), the receiver has the APDU whole already and nothing to resume: it refuses
/// the recover, and the sender keeps its point (it then sends the APDU again from the
/// start, which the MTA above recognises by its MTS identifier).
/// `broken` is what [`break_at`] left at Checkpoint size `k` KiB and Window `w`.
fn recovered_whole(
    broken: Broken,
    k: u32,
    w: u32,
) -> Result<(), proptest::test_runner::TestCaseError> {
    let Broken {
        apdu: a,
        point,
        partial,
        indicated,
    } = broken;
    proptest::prop_assert!(indicated.len() <= 1);
    let Some(point) = point else {
        return Ok(());
    };
    if let Some(whole) = indicated.first() {
        proptest::prop_assert_eq!(whole, &a);
        proptest::prop_assert!(partial.is_none(), "a partial transfer beside the whole one");
        let t0 = Instant::now();
        let (i, _) = Association::initiator_recovering(cfg(k, w), point.clone(), t0).unwrap();
        let mut n = Net::between(i, cfg(k, w), t0);
        n.run();
        n.r.refuse_recovery().unwrap();
        n.run();
        let refused = matches!(n.ie.last(), Some(Event::AssociateRefused(r)) if r.rtse_reason == Some(rtse::refuse_reason::CANNOT_RECOVER));
        proptest::prop_assert!(refused, "{:?}", n.ie);
        proptest::prop_assert_eq!(n.i.take_recovery_point(), Some(point));
        return Ok(());
    }
    let partial = partial.expect("a confirmed checkpoint was the receiver's");
    proptest::prop_assert!(partial.checkpoints() >= point.serial);
    proptest::prop_assert_eq!(point.confirmed, point.serial as usize * k as usize * 1024);
    let t0 = Instant::now();
    let (i, id) = Association::initiator_recovering(cfg(k, w), point, t0).unwrap();
    let mut n = Net::between(i, cfg(k, w), t0);
    n.run();
    n.re.clear();
    n.r.accept_recovery(partial).unwrap();
    n.run();
    proptest::prop_assert_eq!(&n.re, &[Event::TransferIndication { apdu: a }]);
    proptest::prop_assert_eq!(n.ie.last(), Some(&Event::TransferConfirm { id }));
    Ok(())
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// [`recovered_whole`] wherever the transfer breaks.
    #[test]
    fn a_transfer_broken_anywhere_is_recovered_whole(
        size in 1usize..24 * 1024,
        k in 1u32..4,
        w in 1u32..6,
        rounds in 0usize..4,
        f in 0usize..12,
        m in 0usize..12,
    ) {
        recovered_whole(break_at(size, k, w, rounds, f, m), k, w)?;
    }
}

/// A case the property test found: the line dies after the receiver has the activity's end
/// and before its confirmation reaches the sender.
#[test]
fn a_transfer_broken_after_its_activity_end_is_refused_and_sent_again() {
    let b = break_at(4082, 2, 1, 2, 2, 0);
    assert!(b.point.is_some() && b.partial.is_none() && b.indicated == [b.apdu.clone()]);
    recovered_whole(b, 2, 1).unwrap();
}
