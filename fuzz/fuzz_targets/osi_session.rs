//! Fuzzes the X.225 TSDU decoder (SPDUs, parameter groups, both length forms,
//! concatenation).
//!
//! Properties: nothing panics; decoded SPDUs re-encode to a TSDU that decodes to the same
//! SPDUs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtalab_osi::session;

fuzz_target!(|data: &[u8]| {
    if let Ok(spdus) = session::decode_tsdu(data) {
        assert!(!spdus.is_empty() && spdus.len() <= session::MAX_SPDUS_PER_TSDU);
        let tsdu = session::encode_tsdu(&spdus).expect("decoded spdus re-encode");
        assert_eq!(session::decode_tsdu(&tsdu).as_ref(), Ok(&spdus));
    }
});
