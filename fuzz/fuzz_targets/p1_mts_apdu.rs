//! Fuzzes the MTS-APDU decoder (X.411 §12.2), bare and inside the RTTR EXTERNAL, and the
//! X.420 IPM decoder on message content.
//!
//! Properties: nothing panics; `decode_vec` and `decode_vec_noting` give what `decode`
//! gives, and an IPM decoded with the O/R names the envelope's decoding noted
//! (`Ipm::decode_with`) is what `Ipm::decode` gives, error or value; a decoded APDU either re-encodes in both extension-type
//! forms to octets that decode to the same APDU (and re-encode identically), or is refused
//! as unencodable (a UTCTime whose offset moves it out of the 1970..=2069 window); a decoded
//! IPM re-encodes, and its encoding is a fixed point.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtalab_p1::{Conformance, Error, Ipm, MtsApdu, OrNameMemo};

fn check(apdu: &MtsApdu) {
    for conformance in [Conformance::Explicit1988, Conformance::Implicit] {
        match apdu.encode(conformance) {
            Ok(bytes) => {
                let again = MtsApdu::decode(&bytes).expect("re-encoded APDU decodes");
                assert_eq!(&again, apdu);
                assert_eq!(again.encode(conformance).as_ref(), Ok(&bytes));
            }
            Err(e) => assert!(matches!(e, Error::Unencodable { .. }), "{e}"),
        }
    }
    if let MtsApdu::Message(m) = apdu
        && let Ok(ipm) = Ipm::decode(&m.content)
        && let Ok(bytes) = ipm.encode()
    {
        let again = Ipm::decode(&bytes).expect("re-encoded IPM decodes");
        assert_eq!(again.encode().as_ref(), Ok(&bytes));
    }
}

fuzz_target!(|data: &[u8]| {
    let decoded = MtsApdu::decode(data);
    // The decoder that takes the buffer over answers exactly as the borrowing one.
    assert_eq!(
        MtsApdu::decode_vec(data.to_vec()).map_err(|e| e.to_string()),
        decoded.clone().map_err(|e| e.to_string())
    );
    let mut names = OrNameMemo::default();
    let noting = MtsApdu::decode_vec_noting(data.to_vec(), &mut names);
    assert_eq!(noting.as_ref().map_err(|e| e.to_string()), decoded.as_ref().map_err(|e| e.to_string()));
    if let Ok(MtsApdu::Message(m)) = &noting {
        assert_eq!(
            Ipm::decode_with(&m.content, &mut names).map_err(|e| e.to_string()),
            Ipm::decode(&m.content).map_err(|e| e.to_string())
        );
    }
    // Names noted from these octets, then the same octets read as an IPM.
    assert_eq!(Ipm::decode_with(data, &mut names).map_err(|e| e.to_string()), Ipm::decode(data).map_err(|e| e.to_string()));
    if let Ok(apdu) = decoded {
        check(&apdu);
    }
    if let Ok((_, apdu)) = MtsApdu::decode_external(data) {
        check(&apdu);
    }
    if let Ok(ipm) = Ipm::decode(data) {
        let _ = ipm.encode();
    }
});
