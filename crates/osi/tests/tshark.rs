//! Our own traffic as Wireshark sees it: a back-to-back association (bind, one checkpointed
//! transfer of a 3 KiB MTS-APDU, release) written to a pcap and dissected by tshark, which
//! must report no malformed packet and no expert error.
//!
//! Needs `tshark` on the PATH, hence ignored by default:
//! `cargo test -p mtalab-osi --test tshark -- --ignored --nocapture`
//! (`MTALAB_PCAP_OUT=dir` keeps the pcap there).

mod common;

use std::process::Command;
use std::time::Instant;

use common::*;
use mtalab_osi::acse::External;
use mtalab_osi::rtse::{self, RtseApdu};
use mtalab_osi::{Association, AssociationConfig, Event};

/// The x400ping bind argument and result, and the 3 KiB MTS-APDU of the PP capture.
fn vector_values() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let lines = read_txt("x400ping.txt");
    let open = |from_client: bool| {
        let bytes: Vec<u8> = lines
            .iter()
            .filter(|l| l.0 == from_client)
            .flat_map(|l| l.1.clone())
            .collect();
        let units = decode_stream(&bytes).unwrap();
        let l = units[1].layers.as_ref().unwrap();
        let cd = match &l.rtse[0] {
            RtseApdu::Rtorq(q) => q.connection_data_rq.clone(),
            RtseApdu::Rtoac(a) => a.connection_data_ac.clone(),
            _ => panic!(),
        };
        let rtse::ConnectionData::Open(v) = cd else {
            panic!()
        };
        rtse::unwrap_bind(v.as_bytes()).unwrap().1
    };
    let flows =
        read_capture(&std::fs::read(vectors_dir().join("pp-checkpointed-transfer.pcap")).unwrap());
    let seg: Vec<u8> = decode_stream(&flows[0].1)
        .unwrap()
        .into_iter()
        .filter_map(|u| u.layers)
        .filter_map(|l| match &l.rtse[..] {
            [RtseApdu::Rttr(o)] => Some(o.to_vec()),
            _ => None,
        })
        .flatten()
        .collect();
    let mts_apdu = External::decode(&seg).unwrap().value().unwrap().to_vec();
    (open(true), open(false), implicit_extension_types(&mts_apdu))
}

/// Re-encodes a definite-length BER value with every 1988-style explicit extension type
/// `[0] { INTEGER n }` (`a0 03 02 01 nn`) in the implicit form `[0] n` (`80 01 nn`) that
/// Wireshark's X.411 dissector expects (DESIGN §4), fixing the enclosing lengths.
fn implicit_extension_types(v: &[u8]) -> Vec<u8> {
    let h = mtalab_osi::ber::read_header(v).unwrap();
    let len = h.length.expect("definite lengths");
    let whole = &v[..h.header_len + len];
    if let [0xa0, 0x03, 0x02, 0x01, n] = whole {
        return vec![0x80, 0x01, *n];
    }
    if !h.constructed {
        return whole.to_vec();
    }
    let id_len = if v[0] & 0x1f != 0x1f {
        1
    } else {
        1 + v[1..].iter().take_while(|b| *b & 0x80 != 0).count() + 1
    };
    let mut contents = Vec::new();
    let mut rest = &v[h.header_len..h.header_len + len];
    while !rest.is_empty() {
        let c = mtalab_osi::ber::read_header(rest).unwrap();
        let n = c.header_len + c.length.unwrap();
        contents.extend(implicit_extension_types(&rest[..n]));
        rest = &rest[n..];
    }
    let mut out = v[..id_len].to_vec();
    mtalab_osi::ber::push_length(&mut out, contents.len());
    out.extend(contents);
    out
}

/// Runs the association and returns every frame in order (from initiator?, TPKT).
fn conversation() -> Vec<(bool, Vec<u8>)> {
    let (bind_argument, bind_result, mts_apdu) = vector_values();
    assert!(mts_apdu.len() > 3000);
    let now = Instant::now();
    let cfg = AssociationConfig {
        local_tsap: b"MTA".to_vec(),
        remote_tsap: b"MTA".to_vec(),
        checkpoint_size: 1,
        window_size: 5,
        ..AssociationConfig::default()
    };
    let mut i = Association::initiator(cfg.clone(), bind_argument, now).unwrap();
    let mut r = Association::responder(cfg).unwrap();
    let mut frames = Vec::new();
    let step = |i: &mut Association, r: &mut Association, frames: &mut Vec<(bool, Vec<u8>)>| {
        shuttle(i, r, frames, now)
    };
    step(&mut i, &mut r, &mut frames);
    assert!(matches!(
        r.poll_event(),
        Some(Event::AssociateIndication(_))
    ));
    r.accept(bind_result).unwrap();
    step(&mut i, &mut r, &mut frames);
    i.transfer(mts_apdu.clone()).unwrap();
    step(&mut i, &mut r, &mut frames);
    let events: Vec<Event> = std::iter::from_fn(|| r.poll_event()).collect();
    assert_eq!(events, [Event::TransferIndication { apdu: mts_apdu }]);
    i.release().unwrap();
    step(&mut i, &mut r, &mut frames);
    assert!(i.is_closed() && r.is_closed());
    frames
}

/// [`tshark_verbose`], failing on any malformed packet or expert warning/error.
fn tshark_clean(name: &str, frames: &[(bool, Vec<u8>)]) -> String {
    let text = tshark_verbose(name, frames);
    for bad in [
        "Malformed",
        "Error/",
        "Warning/",
        "Dissector bug",
        "Unknown",
    ] {
        let hits: Vec<&str> = text.lines().filter(|l| l.contains(bad)).collect();
        assert!(hits.is_empty(), "{name}: tshark reports {bad}: {hits:#?}");
    }
    text
}

/// Writes `frames` as a pcap, runs tshark on it, and returns the verbose decode.
fn tshark_verbose(name: &str, frames: &[(bool, Vec<u8>)]) -> String {
    let dir =
        std::env::var("MTALAB_PCAP_OUT").unwrap_or_else(|_| env!("CARGO_TARGET_TMPDIR").to_owned());
    let path = std::path::Path::new(&dir).join(format!("osi-{name}.pcap"));
    std::fs::write(&path, write_pcap(frames, 40000, 102)).unwrap();
    let run = |verbose: bool| {
        let mut args = vec!["-r", path.to_str().unwrap(), "-d", "tcp.port==102,tpkt"];
        if verbose {
            args.push("-V");
        }
        let out = Command::new("tshark")
            .args(&args)
            .output()
            .expect("tshark on the PATH");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    println!("== {name}\n{}", run(false));
    run(true)
}

fn shuttle(
    i: &mut Association,
    r: &mut Association,
    frames: &mut Vec<(bool, Vec<u8>)>,
    now: Instant,
) {
    loop {
        let mut moved = false;
        while let Some(f) = i.poll_transmit() {
            moved = true;
            r.handle_input(&f, now).unwrap();
            frames.push((true, f));
        }
        while let Some(f) = r.poll_transmit() {
            moved = true;
            i.handle_input(&f, now).unwrap();
            frames.push((false, f));
        }
        if !moved {
            break;
        }
    }
}

#[test]
#[ignore = "needs tshark"]
fn tshark_decodes_our_traffic_cleanly() {
    let text = tshark_clean("transfer", &conversation());
    for layer in [
        "ISO 8073/X.224 COTP",
        "ISO 8327-1 OSI Session Protocol",
        "ISO 8823 OSI Presentation Protocol",
        "ISO 8650-1 OSI Association Control Service",
        "X.228 OSI Reliable Transfer Service",
        "X.411 Message Transfer Service",
        "MTABindArgument",
        "MTABindResult",
        "MINOR SYNC POINT",
        "ACTIVITY START",
    ] {
        assert!(text.contains(layer), "tshark shows no {layer}");
    }
}

#[test]
#[ignore = "needs tshark"]
fn tshark_decodes_refusal_turns_and_abort() {
    let (bind_argument, bind_result, mts_apdu) = vector_values();
    let now = Instant::now();
    let cfg = AssociationConfig {
        checkpoint_size: 1,
        ..AssociationConfig::default()
    };
    // refusal: RF { CPR { AARE { RTORJ { [18] authentication-error } } } }
    let mut i = Association::initiator(cfg.clone(), bind_argument.clone(), now).unwrap();
    let mut r = Association::responder(cfg.clone()).unwrap();
    let mut frames = Vec::new();
    shuttle(&mut i, &mut r, &mut frames, now);
    r.refuse(vec![0x02, 0x01, 0x02]).unwrap();
    shuttle(&mut i, &mut r, &mut frames, now);
    let text = tshark_clean("refusal", &frames);
    assert!(
        text.contains("REFUSE (RF) SPDU") && text.contains("CPR-PPDU"),
        "refusal decode"
    );
    assert!(text.contains("rtorj-apdu"), "rtorj decode");
    // turns: the responder asks (PT + RTTP), gets control (GTC/GTA), transfers; then abort
    let mut i = Association::initiator(cfg.clone(), bind_argument, now).unwrap();
    let mut r = Association::responder(cfg).unwrap();
    let mut frames = Vec::new();
    shuttle(&mut i, &mut r, &mut frames, now);
    r.accept(bind_result).unwrap();
    shuttle(&mut i, &mut r, &mut frames, now);
    r.transfer(mts_apdu).unwrap();
    shuttle(&mut i, &mut r, &mut frames, now);
    assert!(r.has_turn());
    i.abort();
    shuttle(&mut i, &mut r, &mut frames, now);
    let text = tshark_clean("turns-abort", &frames);
    for s in [
        "Please tokens PDU",
        "GIVE TOKENS CONFIRM (GTC)",
        "GIVE TOKENS ACK (GTA)",
        "ABORT (AB) SPDU",
        "abrt",
    ] {
        assert!(text.contains(s), "turns-abort: no {s}");
    }
}

#[test]
#[ignore = "needs tshark"]
fn tshark_decodes_a_recovery() {
    let (bind_argument, bind_result, mts_apdu) = vector_values();
    let now = Instant::now();
    let cfg = AssociationConfig {
        checkpoint_size: 1,
        window_size: 1,
        ..AssociationConfig::default()
    };
    // The first association breaks after one confirmed checkpoint.
    let mut i = Association::initiator(cfg.clone(), bind_argument, now).unwrap();
    let mut r = Association::responder(cfg.clone()).unwrap();
    let mut frames = Vec::new();
    shuttle(&mut i, &mut r, &mut frames, now);
    r.accept(bind_result).unwrap();
    shuttle(&mut i, &mut r, &mut frames, now);
    i.transfer(mts_apdu.clone()).unwrap();
    let first: Vec<u8> = std::iter::from_fn(|| i.poll_transmit()).flatten().collect();
    r.handle_input(&first, now).unwrap();
    let mia: Vec<u8> = std::iter::from_fn(|| r.poll_transmit()).flatten().collect();
    i.handle_input(&mia, now).unwrap();
    while i.poll_transmit().is_some() {}
    let later = now + std::time::Duration::from_secs(61);
    i.handle_timeout(later);
    r.handle_timeout(later);
    let point = i.take_recovery_point().unwrap();
    let partial = r.take_partial_transfer().unwrap();
    // The recovering association: RTORQ { recover }, RTOAC { recover }, GT+AR, the rest.
    let (mut i, _) = Association::initiator_recovering(cfg.clone(), point, later).unwrap();
    let mut r = Association::responder(cfg).unwrap();
    let mut frames = Vec::new();
    shuttle(&mut i, &mut r, &mut frames, later);
    r.accept_recovery(partial).unwrap();
    shuttle(&mut i, &mut r, &mut frames, later);
    let whole = std::iter::from_fn(|| r.poll_event())
        .filter(|e| matches!(e, Event::TransferIndication { apdu } if *apdu == mts_apdu))
        .count();
    assert_eq!(whole, 1, "the APDU arrives whole");
    i.release().unwrap();
    shuttle(&mut i, &mut r, &mut frames, later);
    // Wireshark's RTSE reassembly knows no activity resume: at the activity end it decodes
    // what this connection carried (the octets after the checkpoint) as the whole EXTERNAL
    // and calls that frame malformed. Every other frame must decode cleanly; that one is
    // checked apart: it is the GT+AE (TPKT 4 + COTP DT 3 octets, then SI 1 LI 0, SI 41).
    let is_ae = |f: &(bool, Vec<u8>)| f.1.get(7..10) == Some(&[0x01, 0x00, 0x29][..]);
    assert_eq!(frames.iter().filter(|f| is_ae(f)).count(), 1);
    let all = tshark_verbose("recovery-whole", &frames);
    let malformed: Vec<&str> = all
        .split("\nFrame ")
        .filter(|f| f.contains("Malformed"))
        .collect();
    assert_eq!(malformed.len(), 1, "one malformed frame, the activity end");
    assert!(malformed[0].contains("MAJOR SYNC POINT") || malformed[0].contains("ACTIVITY END"));
    let rest: Vec<(bool, Vec<u8>)> = frames.into_iter().filter(|f| !is_ae(f)).collect();
    let text = tshark_clean("recovery", &rest);
    for s in [
        "recover",
        "callingSSuserReference",
        "ACTIVITY RESUME (AR) SPDU",
        "Linking Information",
    ] {
        assert!(text.contains(s), "recovery: tshark shows no {s}");
    }
}
