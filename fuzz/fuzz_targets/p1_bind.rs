//! Fuzzes the MTABind decoders (X.411 §12.1) with and without the RO bind tags.
//!
//! Properties: nothing panics; a decoded bind PDU re-encodes to octets that decode to the
//! same PDU, tagged and bare.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtalab_p1::{BindPdu, MtaBindArgument, MtaBindError, MtaBindResult};

fuzz_target!(|data: &[u8]| {
    if let Ok(pdu) = BindPdu::decode_ro(data) {
        let bytes = pdu.encode_ro_tagged().expect("decoded bind PDU re-encodes");
        assert_eq!(BindPdu::decode_ro(&bytes), Ok(pdu));
    }
    if let Ok(arg) = MtaBindArgument::decode(data) {
        let bytes = arg.encode().expect("decoded argument re-encodes");
        assert_eq!(MtaBindArgument::decode(&bytes), Ok(arg));
    }
    if let Ok(res) = MtaBindResult::decode(data) {
        let bytes = res.encode().expect("decoded result re-encodes");
        assert_eq!(MtaBindResult::decode(&bytes), Ok(res));
    }
    if let Ok(err) = MtaBindError::decode_ro(data) {
        assert_eq!(MtaBindError::decode_ro(&err.encode_ro_tagged()), Ok(err));
    }
});
