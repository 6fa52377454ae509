//! Fuzzes RFC 1006 framing, the X.224 class 0 TPDU decoder and TSDU reassembly.
//!
//! Properties: nothing panics; a decoded TPDU re-encodes to octets that decode to the same
//! TPDU; the reassembler never holds more than its cap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtalab_osi::cotp::{Reassembler, Tpdu};
use mtalab_osi::tpkt;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    let mut reassembler = Reassembler::new(4096);
    while let Ok(Some((payload, used))) = tpkt::decode(rest) {
        assert!(used >= tpkt::MIN_PACKET_LEN && used <= rest.len());
        if let Ok(tpdu) = Tpdu::decode(payload) {
            let again = Tpdu::decode(&tpdu.to_bytes()).expect("re-encoded tpdu decodes");
            assert_eq!(again, tpdu);
            if let Tpdu::Dt(dt) = &tpdu {
                let _ = reassembler.push(&dt.user_data, dt.eot);
                assert!(reassembler.pending() <= 4096);
            }
        }
        rest = &rest[used..];
    }
    // the whole input as one TPDU, too
    if let Ok(tpdu) = Tpdu::decode(data) {
        assert_eq!(Tpdu::decode(&tpdu.to_bytes()).as_ref(), Ok(&tpdu));
    }
});
