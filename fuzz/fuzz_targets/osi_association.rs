//! Fuzzes the whole stack: arbitrary bytes fed to a responder association, in pieces, after
//! an optional valid opening (the x400ping CR and CN) so that the data phase is reached.
//!
//! Properties: nothing panics; after an error the association is closed and ignores further
//! input; its output is well-formed TPKT framing.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
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
    let mut a = Association::responder(cfg).expect("valid config");
    let t0 = Instant::now();
    if mode & 1 == 1 {
        a.handle_input(&hex(CR), t0).expect("valid CR");
        a.handle_input(&hex(CN), t0).expect("valid CN");
        check_output(&mut a);
    }
    let step = usize::from(mode >> 1).max(1);
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
