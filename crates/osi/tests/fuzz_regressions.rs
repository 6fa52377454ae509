//! Inputs the fuzz targets (`fuzz/fuzz_targets/osi_*.rs`) found, replayed with the targets'
//! properties: whatever decodes re-encodes to octets that decode to the same value.

use mtalab_osi::acse::{AcseApdu, External};
use mtalab_osi::presentation::{AbortPpdu, CpType, CpaPpdu, CprPpdu, UserData};
use mtalab_osi::rtse::RtseApdu;

fn presentation_property(data: &[u8]) {
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
    if let Ok(v) = AbortPpdu::decode(data) {
        assert_eq!(AbortPpdu::decode(&v.encode()).as_ref(), Ok(&v));
    }
}

fn acse_rtse_property(data: &[u8]) {
    if let Ok(v) = AcseApdu::decode(data) {
        assert_eq!(AcseApdu::decode(&v.encode()).as_ref(), Ok(&v));
    }
    if let Ok(v) = RtseApdu::decode(data) {
        assert_eq!(RtseApdu::decode(&v.encode()).as_ref(), Ok(&v));
    }
    if let Ok(v) = External::decode(data) {
        assert_eq!(External::decode(&v.encode()).as_ref(), Ok(&v));
    }
}

/// An RTAB (X.410-mode ARU) whose userdataAB [2] came primitive, holding octets that are no
/// BER value: the open value must be refused at decode time.
#[test]
fn primitive_explicit_tag_around_an_open_value_in_aru() {
    let data = [
        0x31, 0x80, 0x82, 0x09, 0xe9, 0x07, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0,
    ];
    assert!(AbortPpdu::decode(&data).is_err());
    presentation_property(&data);
}

/// An EXTERNAL whose single-ASN1-type [0] came primitive around a truncated value.
#[test]
fn primitive_explicit_tag_around_an_open_value_in_external() {
    let data = [0x28, 0x06, 0x80, 0x04, 0x3d, 0x02, 0x00, 0x02];
    assert!(External::decode(&data).is_err());
    acse_rtse_property(&data);
    // a primitive [0] around a well-formed value is accepted and re-encodes constructed
    let ok = [0x28, 0x05, 0x80, 0x03, 0x02, 0x01, 0x05];
    assert_eq!(
        External::decode(&ok).unwrap().value(),
        Some(&[0x02, 0x01, 0x05][..])
    );
    acse_rtse_property(&ok);
}
