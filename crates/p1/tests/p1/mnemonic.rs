//! Table-driven vectors for the mnemonic O/R address form.

use mtalab_p1::{
    CountryName, DomainDefinedAttribute, DomainName, Error, ExtensionAttribute,
    GlobalDomainIdentifier, OrAddress, PersonalName, escape_printable, unescape_printable,
};

fn exchange_user(site: &str, s: &str, g: &str) -> OrAddress {
    OrAddress {
        country: Some(CountryName::Iso3166Alpha2("US".into())),
        admd: Some(DomainName::Printable(" ".into())),
        prmd: Some(DomainName::Printable("ExchangeORG".into())),
        organization: Some(site.into()),
        personal_name: Some(PersonalName {
            surname: s.into(),
            given_name: Some(g.into()),
            ..PersonalName::default()
        }),
        ..OrAddress::default()
    }
}

#[test]
fn canonical_texts_parse_and_print_back() {
    // (text, expected value); every text is canonical, so it prints back unchanged.
    let full = OrAddress {
        country: Some(CountryName::X121DccCode("310".into())),
        admd: Some(DomainName::Numeric("0012".into())),
        prmd: Some(DomainName::Numeric("42".into())),
        organization: Some("Org".into()),
        organizational_units: vec!["A".into(), "B".into(), "C".into(), "D".into()],
        personal_name: Some(PersonalName {
            surname: "Smith".into(),
            given_name: Some("John".into()),
            initials: Some("JQ".into()),
            generation_qualifier: Some("Jr".into()),
        }),
        extension_attributes: vec![ExtensionAttribute::CommonName("John Smith".into())],
        network_address: Some("12345".into()),
        terminal_identifier: Some("T1".into()),
        numeric_user_identifier: Some("999".into()),
        domain_defined_attributes: vec![
            DomainDefinedAttribute {
                attribute_type: "RFC-822".into(),
                value: "john(a)example.com".into(),
            },
            DomainDefinedAttribute {
                attribute_type: "ID".into(),
                value: "003749395".into(),
            },
        ],
    };
    let cases: Vec<(&str, OrAddress)> = vec![
        // DESIGN §3 site addressing: `a= ` (one space) is the no-ADMD ADMD.
        (
            "c=US;a= ;p=ExchangeORG;o=SiteA;s=Smith;g=John",
            exchange_user("SiteA", "Smith", "John"),
        ),
        (
            "c=US",
            OrAddress {
                country: Some(CountryName::Iso3166Alpha2("US".into())),
                ..OrAddress::default()
            },
        ),
        (
            "a=",
            OrAddress {
                admd: Some(DomainName::Printable("".into())),
                ..OrAddress::default()
            },
        ),
        (
            "o=a=b",
            OrAddress {
                organization: Some("a=b".into()),
                ..OrAddress::default()
            },
        ),
        (
            "c=310;a=0012;p=42;o=Org;ou1=A;ou2=B;ou3=C;ou4=D;s=Smith;g=John;i=JQ;q=Jr;cn=John Smith;x121=12345;t-id=T1;n-id=999;dda:RFC-822=john(a)example.com;dda:ID=003749395",
            full,
        ),
    ];
    for (text, want) in cases {
        let got = OrAddress::parse_mnemonic(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(got, want, "{text}");
        assert_eq!(got.to_mnemonic(), text);
        assert_eq!(got.to_string(), text);
        assert_eq!(text.parse::<OrAddress>().unwrap(), got);
        // And through BER.
        assert_eq!(
            OrAddress::decode_ber(&got.encode_ber().unwrap()).unwrap(),
            got
        );
    }
}

#[test]
fn accepted_variants_normalise() {
    // (input, canonical output)
    let cases = [
        // Upper-case keys and a trailing separator (Exchange migration files).
        (
            "C=US;A= ;P=NWTraders;G=Joe;S=Parkes;",
            "c=US;a= ;p=NWTraders;s=Parkes;g=Joe",
        ),
        // The slash form of the MS Mail gateway and Exchange migration, `$/` escaping `/`.
        (
            "/C=US/A=TELENET/P=ABC/O=P$/Q/G=JOHN/S=STEEL",
            "c=US;a=TELENET;p=ABC;o=P/Q;s=STEEL;g=JOHN",
        ),
        // A proxy-address type prefix and the one-off `dda\:` spelling (KB Q147413).
        (
            "X400:c=us;a= ;p=xyz;o=abc;dda\\:id=003749395",
            "c=us;a= ;p=xyz;o=abc;dda:id=003749395",
        ),
        // Attribute order does not matter.
        (
            "g=John;s=Smith;o=SiteA;p=ExchangeORG;a= ;c=US",
            "c=US;a= ;p=ExchangeORG;o=SiteA;s=Smith;g=John",
        ),
    ];
    for (input, canonical) in cases {
        let a = OrAddress::parse_mnemonic(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(a.to_mnemonic(), canonical, "{input}");
    }
}

#[test]
fn errors_name_the_offset_and_reason() {
    // (input, byte offset, part of the reason)
    let cases = [
        ("", 0, "empty address"),
        ("c=US;zz=1", 5, "unknown attribute key \"zz\""),
        ("c=US;c=DE", 5, "duplicate c="),
        ("c=USA", 0, "two letters or three digits"),
        ("c=U1", 0, "two letters or three digits"),
        ("c=US;g=John", 5, "without a surname"),
        ("c=US;ou2=B", 5, "ou2 given without ou1"),
        ("c=US;s=", 5, "s= must hold 1..=40 characters, not 0"),
        (
            "c=US;s=Sm@th",
            5,
            "'@' in s= is not a PrintableString character",
        ),
        ("c=US;o=Ünicode", 5, "is not a PrintableString character"),
        ("c=US;p=ABCDEFGHIJKLMNOPQ", 5, "p= must hold 1..=16"),
        ("c=US;x121=12a", 5, "x121= must be digits"),
        ("c=US;;s=X", 5, "expected KEY=VALUE"),
        ("c=US;s", 5, "expected KEY=VALUE"),
        ("c=US;dda=X", 5, "expected KEY=VALUE"),
        ("c=US;s=X$", 8, "expected ';' between attributes"),
        (
            "dda:A=1;dda:B=2;dda:C=3;dda:D=4;dda:E=5",
            32,
            "more than 4 domain-defined attributes",
        ),
        ("dda:ABCDEFGHI=1", 0, "dda type= must hold 1..=8"),
    ];
    for (input, offset, reason) in cases {
        match OrAddress::parse_mnemonic(input) {
            Err(Error::Mnemonic {
                offset: o,
                reason: r,
            }) => {
                assert_eq!(o, offset, "{input}: {r}");
                assert!(
                    r.contains(reason),
                    "{input}: {r:?} does not contain {reason:?}"
                );
            }
            other => panic!("{input}: {other:?}"),
        }
    }
    let long = format!("o={}", "x".repeat(3000));
    assert!(matches!(
        OrAddress::parse_mnemonic(&long),
        Err(Error::Mnemonic { .. })
    ));
    assert!(
        !Error::Mnemonic {
            offset: 0,
            reason: String::new()
        }
        .is_peer_fault()
    );
}

#[test]
fn global_domain_identifier_text() {
    let g = GlobalDomainIdentifier::parse_mnemonic("c=US;a= ;p=ExchangeORG").unwrap();
    assert_eq!(g.prmd, Some(DomainName::Printable("ExchangeORG".into())));
    assert_eq!(g.to_mnemonic(), "c=US;a= ;p=ExchangeORG");
    assert!(GlobalDomainIdentifier::parse_mnemonic("c=US").is_err());
    assert!(GlobalDomainIdentifier::parse_mnemonic("c=US;a= ;o=X").is_err());
}

#[test]
fn printable_escapes() {
    let cases = [
        ("john_smith@example.com", "john(u)smith(a)example.com"),
        ("100% \"sure\"!", "100(p) (q)sure(q)(b)"),
        ("UserA & UserB", "UserA (038) UserB"),
        ("(x)", "(l)x(r)"),
        ("é", "(233)"),
    ];
    for (raw, escaped) in cases {
        assert_eq!(escape_printable(raw), escaped);
        assert_eq!(unescape_printable(escaped), raw);
        assert!(OrAddress::parse_mnemonic(&format!("s={escaped}")).is_ok());
    }
    // Parentheses that start no escape stay.
    assert_eq!(unescape_printable("a (z) c (12) (x"), "a (z) c (12) (x");
}
