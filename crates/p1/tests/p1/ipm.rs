//! X.420 IPM building and parsing.

use mtalab_p1::{BodyPart, Error, Ipm, IpmIdentifier, OrName, RecipientSpecifier, Repertoire};

fn name(s: &str) -> OrName {
    OrName::parse_mnemonic(s).unwrap()
}

#[test]
fn text_message_keeps_subject_originator_recipients_and_body() {
    let from = name("c=US;a= ;p=ExchangeORG;o=SiteA;s=Smith;g=John");
    let to = vec![name("c=US;a= ;p=ExchangeORG;o=SiteB;s=Doe;g=Jane")];
    let cc = vec![name("c=US;a= ;p=ExchangeORG;o=SiteC;s=Roe;g=Rick")];
    let ipm = Ipm::text(
        IpmIdentifier {
            user: Some(from.clone()),
            user_relative_identifier: "ABC123".into(),
        },
        from.clone(),
        to.clone(),
        cc.clone(),
        "Quarterly report",
        "Hello Jane,\r\nsee attached.\r\n",
    );
    let bytes = ipm.encode().unwrap();
    assert_eq!(&bytes[..1], &[0xa0], "InformationObject ipm [0]");
    // subject [8] EXPLICIT TeletexString.
    assert!(bytes.windows(4).any(|w| w == [0xa8, 0x12, 0x14, 0x10]));
    let back = Ipm::decode(&bytes).unwrap();
    assert_eq!(back, ipm);
    let h = &back.heading;
    assert_eq!(
        h.originator.as_ref().unwrap().formal_name.as_ref(),
        Some(&from)
    );
    assert_eq!(
        h.primary_recipients,
        vec![RecipientSpecifier::from(to[0].clone())]
    );
    assert_eq!(
        h.copy_recipients[0].recipient.formal_name.as_ref(),
        Some(&cc[0])
    );
    assert_eq!(h.subject.as_deref(), Some("Quarterly report"));
    assert_eq!(back.body_text(), "Hello Jane,\r\nsee attached.\r\n");
    assert!(matches!(
        back.body[0],
        BodyPart::Ia5Text {
            repertoire: Repertoire::Ia5,
            ..
        }
    ));
}

#[test]
fn utf8_body_goes_as_general_text() {
    let ipm = Ipm::text(
        IpmIdentifier::default(),
        name("s=A"),
        vec![name("s=B")],
        vec![],
        "Grüße €",
        "Grüße aus Köln — €5\r\n",
    );
    let bytes = ipm.encode().unwrap();
    let back = Ipm::decode(&bytes).unwrap();
    assert_eq!(back.body_text(), "Grüße aus Köln — €5\r\n");
    match &back.body[0] {
        BodyPart::GeneralText { character_sets, .. } => assert_eq!(character_sets, &[196]),
        other => panic!("{other:?}"),
    }
    // The subject is a TeletexString: Latin-1 survives, the euro sign does not.
    assert_eq!(back.heading.subject.as_deref(), Some("Grüße ?"));
    // id-et-general-text 2.6.1.4.11 and GeneralString data.
    assert!(
        bytes
            .windows(6)
            .any(|w| w == [0x06, 0x04, 0x56, 0x01, 0x04, 0x0b])
    );
}

#[test]
fn pp_content_vector() {
    // The IPM PP carried: heading { this-IPM "1234", subject [8] { T61 "Hello from SiteA" } },
    // body { ia5-text { {} "Test body\r\n" } }.
    let bytes = crate::wire::hex(
        "a031311c6b06130431323334a812141048656c6c6f2066726f6d205369746541\
         3011a00f3100160b5465737420626f64790d0a",
    );
    let ipm = Ipm::decode(&bytes).unwrap();
    assert_eq!(ipm.heading.this_ipm.user_relative_identifier, "1234");
    assert_eq!(ipm.heading.subject.as_deref(), Some("Hello from SiteA"));
    assert!(ipm.heading.originator.is_none() && ipm.heading.primary_recipients.is_empty());
    assert_eq!(ipm.body_text(), "Test body\r\n");
    assert_eq!(ipm.encode().unwrap(), bytes, "re-encodes octet for octet");
}

#[test]
fn tolerated_and_kept_forms() {
    // Implicit subject `88`, an importance field [12] and an unknown g3 body part [3].
    let bytes = [
        0xa0, 0x18, 0x31, 0x0c, 0x6b, 0x03, 0x13, 0x01, b'1', 0x88, 0x02, b'H', b'i', 0x8c, 0x01,
        0x02, 0x30, 0x08, 0xa3, 0x06, 0x31, 0x00, 0x30, 0x02, 0x03, 0x00,
    ];
    let ipm = Ipm::decode(&bytes).unwrap();
    assert_eq!(ipm.heading.subject.as_deref(), Some("Hi"));
    assert_eq!(ipm.heading.other_fields, vec![vec![0x8c, 0x01, 0x02]]);
    assert!(matches!(&ipm.body[0], BodyPart::Other(raw) if raw[0] == 0xa3));
    assert_eq!(ipm.body_text(), "");
    let again = Ipm::decode(&ipm.encode().unwrap()).unwrap();
    assert_eq!(again, ipm);
}

#[test]
fn ipn_is_out_of_scope() {
    let e = Ipm::decode(&[0xa1, 0x00]).unwrap_err();
    assert!(matches!(e, Error::Unsupported(_)));
    assert!(e.to_string().contains("IPN"), "{e}");
    assert!(Ipm::decode(&[0xa2, 0x00]).is_err());
    // Missing this-IPM.
    assert_eq!(
        Ipm::decode(&[0xa0, 0x04, 0x31, 0x00, 0x30, 0x00]),
        Err(Error::Missing("this-IPM"))
    );
}

#[test]
fn into_text_gives_what_as_text_gives() {
    let parts = [
        BodyPart::text("plain 7-bit\r\n"),
        BodyPart::text(String::from("caf\u{e9} in UTF-8\r\n")),
        BodyPart::GeneralText {
            character_sets: vec![mtalab_p1::ipm::CHARSET_UTF8],
            data: vec![b'o', b'k', 0xff, b'!'],
        },
        BodyPart::GeneralText {
            character_sets: vec![100],
            data: vec![b'c', b'a', b'f', 0xe9],
        },
        BodyPart::Other(vec![0x04, 0x01, 0x00]),
    ];
    for p in parts {
        let want = p.as_text();
        assert_eq!(p.clone().into_text(), want, "{p:?}");
    }
    assert!(
        matches!(BodyPart::text(String::from("abc")), BodyPart::Ia5Text { ref text, .. } if text == "abc")
    );
    assert!(
        matches!(BodyPart::text("\u{e9}"), BodyPart::GeneralText { ref data, .. } if data == "\u{e9}".as_bytes())
    );
}

#[test]
fn encode_text_writes_what_text_then_encode_writes() {
    let from = name("c=US;a= ;p=ExchangeORG;o=SiteA;s=Smith;g=John");
    let to = vec![name("c=US;a= ;p=ExchangeORG;o=SiteB;s=Doe;g=Jane")];
    let long = "x".repeat(70_000);
    for body in [
        "Hello Jane,\r\nsee attached.\r\n",
        "",
        "caf\u{e9}\r\n",
        long.as_str(),
    ] {
        let id = IpmIdentifier {
            user: Some(from.clone()),
            user_relative_identifier: "ABC123".into(),
        };
        let want = Ipm::text(
            id.clone(),
            from.clone(),
            to.clone(),
            vec![],
            "Subject",
            body,
        )
        .encode();
        let got = Ipm::encode_text(id, from.clone(), to.clone(), vec![], "Subject", body);
        assert_eq!(got, want, "{} octets of body", body.len());
    }
}
