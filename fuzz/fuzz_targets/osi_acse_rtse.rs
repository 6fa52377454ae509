//! Fuzzes the X.227 ACSE and X.228 RTSE decoders, EXTERNAL, and the MTA bind tag unwrapper.
//!
//! Properties: nothing panics; whatever decodes re-encodes to octets that decode to the same
//! value; an unwrapped bind value re-wraps to a value that unwraps to the same octets; what
//! the data-transfer fast readers (`single_external_of`, `rttr_of`) take, the general
//! decoders take with the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtalab_osi::acse::{AcseApdu, External};
use mtalab_osi::rtse::{self, RtseApdu};

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = AcseApdu::decode(data) {
        assert_eq!(AcseApdu::decode(&v.encode()).as_ref(), Ok(&v));
    }
    if let Ok(v) = RtseApdu::decode(data) {
        assert_eq!(RtseApdu::decode(&v.encode()).as_ref(), Ok(&v));
    }
    if let Ok(v) = External::decode(data) {
        assert_eq!(External::decode(&v.encode()).as_ref(), Ok(&v));
    }
    if let Some((ctx, value)) = mtalab_osi::acse::single_external_of(data) {
        let e = External::decode(data).expect("the fast reader took what the decoder refuses");
        assert_eq!((e.indirect_reference, e.value()), (Some(ctx), Some(value)));
    }
    if let Some(seg) = rtse::rttr_of(data) {
        let r = RtseApdu::decode(data).expect("the fast reader took what the decoder refuses");
        assert_eq!(r, RtseApdu::Rttr(seg.to_vec().into()));
    }
    if let Ok((Some(tag), inner)) = rtse::unwrap_bind(data) {
        let again =
            rtse::unwrap_bind(&rtse::wrap_bind(tag, &inner)).expect("re-wrapped bind value");
        assert_eq!(again, (Some(tag), inner));
    }
});
