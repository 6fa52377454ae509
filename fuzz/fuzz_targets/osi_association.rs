//! Fuzzes the whole stack: arbitrary bytes fed to a responder association, in pieces, after
//! an optional valid opening so that the data phase is reached: the x400ping CR and CN, or a
//! recovering initiator's CR and CN (RTORQ recover) accepted with the partial transfer of
//! the association it names, so that an activity resume (AR) is awaited.
//!
//! Properties: nothing panics; after an error the association is closed and ignores further
//! input; its output is well-formed TPKT framing.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use mtalab_osi::association::PartialTransfer;
use mtalab_osi::{Association, AssociationConfig, Event, tpkt};

/// x400ping: CR, then the CN with its AARQ/RTORQ (percival/excalibur).
const CR: &str = "0300001813e00000000100c0010bc1034d5441c2034d5441";
const CN: &str = "030000cd02f0800dc4011d0a0a0408506572636976616c0b0f170d3035313030313134343835325a05091301001601021a010014020249c1943180a003800101a280a433300f020101060452010001300406025101300f02010306045600020c300406025101300f0201050604560002073004060251016150304e020101a0496047a106060456000106be3d283b06025101020103a032b03080013f820100a328a026b024a1228013706572636976616c2e736d68732e636f2e756ba10b1609657863616c6962757200000000";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn all_out(a: &mut Association) -> Vec<u8> {
    std::iter::from_fn(|| a.poll_transmit()).flatten().collect()
}

/// A transfer broken after one confirmed checkpoint (the responder's partial transfer), and
/// the CR and CN of an initiator that recovers it.
fn recovery_opening(cfg: &AssociationConfig) -> &'static (Vec<u8>, PartialTransfer) {
    static R: OnceLock<(Vec<u8>, PartialTransfer)> = OnceLock::new();
    R.get_or_init(|| {
        let t0 = Instant::now();
        let mut i = Association::initiator(cfg.clone(), vec![0x05, 0x00], t0).unwrap();
        let mut r = Association::responder(cfg.clone()).unwrap();
        for _ in 0..3 {
            let out = all_out(&mut i);
            r.handle_input(&out, t0).unwrap();
            while let Some(e) = r.poll_event() {
                if matches!(e, Event::AssociateIndication(_)) {
                    r.accept(vec![0x05, 0x00]).unwrap();
                }
            }
            let back = all_out(&mut r);
            i.handle_input(&back, t0).unwrap();
        }
        // An OCTET STRING of 4000 octets: four checkpoints of 1 KiB.
        let mut apdu = vec![0x04, 0x82, 0x0f, 0xa0];
        apdu.extend(std::iter::repeat_n(7u8, 4000));
        i.transfer(apdu).unwrap();
        // Frames up to the first minor sync arrive, its MIA goes back; then the line dies.
        let mut mia = Vec::new();
        while mia.is_empty() {
            let frame = i.poll_transmit().unwrap();
            r.handle_input(&frame, t0).unwrap();
            mia = all_out(&mut r);
        }
        i.handle_input(&mia, t0).unwrap();
        let later = t0 + Duration::from_secs(61);
        i.handle_timeout(later);
        r.handle_timeout(later);
        let point = i.take_recovery_point().unwrap();
        let partial = r.take_partial_transfer().unwrap();
        let (mut i, _) = Association::initiator_recovering(cfg.clone(), point, later).unwrap();
        let mut r0 = Association::responder(cfg.clone()).unwrap();
        let cr = all_out(&mut i);
        r0.handle_input(&cr, later).unwrap();
        let cc = all_out(&mut r0);
        i.handle_input(&cc, later).unwrap();
        let mut opening = cr;
        opening.extend(all_out(&mut i));
        (opening, partial)
    })
}

fn check_output(a: &mut Association) {
    while let Some(frame) = a.poll_transmit() {
        let (_, used) = tpkt::decode(&frame).expect("our tpkt").expect("whole tpkt");
        assert_eq!(used, frame.len());
    }
    while let Some(e) = a.poll_event() {
        if let Event::AssociateIndication(ind) = e {
            // A recover names a session this responder never had: refused.
            let _ = match ind.recover {
                Some(_) => a.refuse_recovery(),
                None => a.accept(vec![0x05, 0x00]),
            };
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    let cfg = AssociationConfig {
        checkpoint_size: 1,
        max_apdu_size: 1 << 16,
        max_tsdu_size: 1 << 17,
        ..AssociationConfig::default()
    };
    let mut a = Association::responder(cfg.clone()).expect("valid config");
    let t0 = Instant::now();
    if mode & 3 == 1 {
        a.handle_input(&hex(CR), t0).expect("valid CR");
        a.handle_input(&hex(CN), t0).expect("valid CN");
        check_output(&mut a);
    } else if mode & 3 == 3 {
        let (opening, partial) = recovery_opening(&cfg);
        a.handle_input(opening, t0).expect("valid recovering CR and CN");
        let Some(Event::AssociateIndication(ind)) = a.poll_event() else {
            panic!("no indication for the recover")
        };
        assert!(ind.recover.is_some());
        a.accept_recovery(partial.clone()).expect("the partial transfer of that session");
        check_output(&mut a);
    }
    let step = usize::from(mode >> 2).max(1);
    for (n, piece) in data.chunks(step).enumerate() {
        let now = t0 + Duration::from_millis(n as u64);
        let result = a.handle_input(piece, now);
        if result.is_err() {
            assert!(a.is_closed());
        }
        check_output(&mut a);
        if let Some(t) = a.poll_timeout() {
            a.handle_timeout(t);
            check_output(&mut a);
        }
        if a.is_closed() {
            assert_eq!(a.handle_input(piece, now), Ok(()));
            break;
        }
    }
});
