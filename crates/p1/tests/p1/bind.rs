//! MTABind forms beyond the captures.

use mtalab_p1::{
    BindPdu, Credentials, Error, MtaBindArgument, MtaBindError, MtaBindResult, MtaName, Password,
};

#[test]
fn unauthenticated_and_opaque_credentials() {
    assert_eq!(
        MtaBindArgument::decode(&[0x05, 0x00]).unwrap(),
        MtaBindArgument::Unauthenticated
    );
    assert_eq!(
        MtaBindResult::decode_ro(&[0xb1, 0x02, 0x05, 0x00]).unwrap(),
        MtaBindResult::Unauthenticated
    );

    // strong [0] SET { bind-token [0] ... } and a security context survive as octets.
    let arg = MtaBindArgument::Authenticated {
        initiator_name: MtaName("MTA-A".into()),
        initiator_credentials: Credentials::Strong(vec![0xa0, 0x02, 0x05, 0x00]),
        security_context: Some(vec![0x31, 0x00]),
    };
    let bytes = arg.encode_ro_tagged().unwrap();
    assert_eq!(
        bytes,
        [
            0xb0, 0x15, 0xa1, 0x13, 0x80, 0x05, b'M', b'T', b'A', b'-', b'A', 0xa1, 0x06, 0xa0,
            0x04, 0xa0, 0x02, 0x05, 0x00, 0xa2, 0x02, 0x31, 0x00
        ]
    );
    assert_eq!(MtaBindArgument::decode_ro(&bytes).unwrap(), arg);

    let res = MtaBindResult::Authenticated {
        responder_name: MtaName("B".into()),
        responder_credentials: Credentials::Protected(vec![0x30, 0x00]),
    };
    assert_eq!(MtaBindResult::decode(&res.encode().unwrap()).unwrap(), res);
}

#[test]
fn indefinite_lengths_decode() {
    // [16] { [1] { [0] "A", [1] { 04 "pw" } } } with every constructed length indefinite.
    let bytes = [
        0xb0, 0x80, 0xa1, 0x80, 0x80, 0x01, b'A', 0xa1, 0x80, 0x04, 0x02, b'p', b'w', 0, 0, 0, 0,
        0, 0,
    ];
    let arg = MtaBindArgument::decode_ro(&bytes).unwrap();
    assert_eq!(arg.initiator_name().unwrap().as_str(), "A");
    let MtaBindArgument::Authenticated {
        initiator_credentials,
        ..
    } = arg
    else {
        panic!()
    };
    assert_eq!(
        initiator_credentials,
        Credentials::Simple(Password::Octets(b"pw".to_vec()))
    );
}

#[test]
fn refused_shapes() {
    // (input, what is wrong)
    let cases: [(&[u8], &str); 8] = [
        (
            &[0xb1, 0x02, 0x05, 0x00],
            "result tag where the argument is expected",
        ),
        (&[0xa1, 0x00], "missing initiator name"),
        (
            &[0xb0, 0x04, 0x05, 0x00, 0x05, 0x00],
            "two values inside [16]",
        ),
        (
            &[0xa1, 0x05, 0x80, 0x01, b'A', 0x82, 0x00],
            "[2] security context must be constructed",
        ),
        (
            &[0xa1, 0x08, 0x80, 0x01, b'A', 0xa1, 0x03, 0x02, 0x01, 0x00],
            "credentials of the wrong type",
        ),
        (
            &[0xa1, 0x06, 0x80, 0x00, 0xa1, 0x02, 0x16, 0x00],
            "empty MTA name",
        ),
        (&[0x05, 0x01, 0x00], "NULL with contents"),
        (&[0x05, 0x00, 0x00], "trailing octet"),
    ];
    for (bytes, why) in cases {
        let r = if bytes[0] == 0xb0 || bytes[0] == 0xb1 {
            MtaBindArgument::decode_ro(bytes)
        } else {
            MtaBindArgument::decode(bytes)
        };
        let e = r.expect_err(why);
        assert!(e.is_peer_fault(), "{why}: {e}");
    }
    // The result never carries a security context.
    assert!(
        MtaBindResult::decode(&[
            0xa1, 0x0b, 0x80, 0x01, b'A', 0xa1, 0x02, 0x16, 0x00, 0xa2, 0x02, 0x31, 0x00
        ])
        .is_err()
    );
    // Over-long password from a peer.
    let mut long = vec![0xa1, 0x48, 0x80, 0x01, b'A', 0xa1, 0x43, 0x16, 0x41];
    long.extend(std::iter::repeat_n(b'x', 65));
    assert!(matches!(
        MtaBindArgument::decode(&long),
        Err(Error::TooLong { .. })
    ));
}

#[test]
fn bind_errors_by_code() {
    for (code, name) in [
        (MtaBindError::BUSY, "busy"),
        (MtaBindError::AUTHENTICATION_ERROR, "authentication-error"),
        (
            MtaBindError::UNACCEPTABLE_DIALOGUE_MODE,
            "unacceptable-dialogue-mode",
        ),
        (
            MtaBindError::UNACCEPTABLE_SECURITY_CONTEXT,
            "unacceptable-security-context",
        ),
        (
            MtaBindError::INADEQUATE_ASSOCIATION_CONFIDENTIALITY,
            "inadequate-association-confidentiality",
        ),
    ] {
        assert_eq!(code.to_string(), name);
        assert_eq!(
            MtaBindError::decode_ro(&code.encode_ro_tagged()).unwrap(),
            code
        );
        assert_eq!(MtaBindError::decode(&code.encode()).unwrap(), code);
    }
    assert_eq!(MtaBindError(7).to_string(), "mta-bind-error 7");
    assert!(
        MtaBindError::decode(&[0x02, 0x02, 0x01, 0x01]).is_err(),
        "257 is above ub-integer-options"
    );
    assert!(
        MtaBindError::decode(&[0x02, 0x01, 0xff]).is_err(),
        "negative"
    );
    assert!(BindPdu::decode_ro(&[0xb3, 0x00]).is_err());
}
