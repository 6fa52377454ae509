//! Fuzzes the X.226 decoders: CP-type, CPA-PPDU, CPR-PPDU, User-data, ARU/ARP-PPDU (BER with
//! definite and indefinite lengths), and the BER scanner under them.
//!
//! Properties: nothing panics; whatever decodes re-encodes to octets that decode to the same
//! value; the scanner never reports a length beyond the input; what the data-transfer fast
//! reader (`single_value_of`) takes, the User-data decoder takes with the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtalab_osi::ber;
use mtalab_osi::presentation::{AbortPpdu, CpType, CpaPpdu, CprPpdu, UserData};

fuzz_target!(|data: &[u8]| {
    if let Ok(n) = ber::scan(data, ber::MAX_DEPTH) {
        assert!(n <= data.len());
    }
    if let Ok(v) = CpType::decode(data) {
        assert_eq!(CpType::decode(&v.encode()).as_ref(), Ok(&v));
    }
    if let Ok(v) = CpaPpdu::decode(data) {
        assert_eq!(CpaPpdu::decode(&v.encode()).as_ref(), Ok(&v));
    }
    if let Ok(v) = CprPpdu::decode(data) {
        assert_eq!(CprPpdu::decode(&v.encode()).as_ref(), Ok(&v));
    }
    if let Ok(v) = UserData::decode(data) {
        assert_eq!(UserData::decode(&v.encode()).as_ref(), Ok(&v));
    }
    if let Some((ctx, value)) = mtalab_osi::presentation::single_value_of(data) {
        let u = UserData::decode(data).expect("the fast reader took what the decoder refuses");
        assert_eq!(u.values(), vec![(ctx, value)]);
    }
    if let Ok(v) = AbortPpdu::decode(data) {
        assert_eq!(AbortPpdu::decode(&v.encode()).as_ref(), Ok(&v));
    }
});
