//! Fuzzes the O/R address forms (X.402 §18): the Exchange mnemonic parser on text and the
//! BER ORName decoder on octets.
//!
//! Properties: nothing panics; a parsed mnemonic prints canonically, and the canonical text
//! parses to the same address and prints identically; every parsed address survives
//! BER encode → decode; a decoded ORName re-encodes to octets that decode to the same name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtalab_p1::{OrAddress, OrName};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(address) = OrAddress::parse_mnemonic(text)
    {
        let canonical = address.to_mnemonic();
        let again = OrAddress::parse_mnemonic(&canonical).expect("canonical text parses");
        assert_eq!(again, address, "{canonical:?}");
        assert_eq!(again.to_mnemonic(), canonical);
        let bytes = address.encode_ber().expect("parsed address encodes");
        assert_eq!(OrAddress::decode_ber(&bytes), Ok(address));
    }
    if let Ok(name) = OrName::decode_ber(data) {
        let bytes = name.encode_ber().expect("decoded name re-encodes");
        assert_eq!(OrName::decode_ber(&bytes), Ok(name));
    }
});
