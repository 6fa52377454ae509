//! Property tests: decode(encode(x)) == x for O/R addresses (both forms), bind PDUs and
//! MTS-APDUs, and decoders never panic on arbitrary octets.

use mtalab_p1::chrono::{TimeZone, Utc};
use mtalab_p1::{
    BindPdu, CompactString, Conformance, CountryName, Credentials, DomainDefinedAttribute, DomainName,
    ExtensionAttribute, ExtensionField, GlobalDomainIdentifier, InternalTraceInformationElement,
    Ipm, Message, MessageTransferEnvelope, MtaBindArgument, MtaBindError, MtaBindResult, MtaName,
    MtsApdu, MtsIdentifier, NonDeliveryDiagnosticCode, NonDeliveryReasonCode, OrAddress, OrName,
    OrNameMemo, Password, PerMessageIndicators, PersonalName, Priority, RecipientOutcome, Report, ReportType,
    Time, TraceInformationElement, TypeOfMtsUser,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

const PRINTABLE: &str =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?";

fn printable(min: usize, max: usize) -> impl Strategy<Value = CompactString> {
    vec(
        proptest::sample::select(PRINTABLE.chars().collect::<Vec<_>>()),
        min..=max,
    )
    .prop_map(|v| v.into_iter().collect())
}

fn digits(min: usize, max: usize) -> impl Strategy<Value = CompactString> {
    vec(
        proptest::sample::select(('0'..='9').collect::<Vec<_>>()),
        min..=max,
    )
    .prop_map(|v| v.into_iter().collect())
}

/// As the mnemonic parser builds it: numeric iff non-empty and all digits.
fn domain(min: usize) -> impl Strategy<Value = DomainName> {
    printable(min, 16).prop_map(|s| {
        if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) {
            DomainName::Numeric(s)
        } else {
            DomainName::Printable(s)
        }
    })
}

fn country() -> impl Strategy<Value = CountryName> {
    prop_oneof![
        "[A-Za-z]{2}".prop_map(|s| CountryName::Iso3166Alpha2(s.into())),
        digits(3, 3).prop_map(CountryName::X121DccCode),
    ]
}

fn personal_name() -> impl Strategy<Value = PersonalName> {
    (
        printable(1, 40),
        option::of(printable(1, 16)),
        option::of(printable(1, 5)),
        option::of(printable(1, 3)),
    )
        .prop_map(
            |(surname, given_name, initials, generation_qualifier)| PersonalName {
                surname,
                given_name,
                initials,
                generation_qualifier,
            },
        )
}

/// O/R addresses the mnemonic form can express.
fn mnemonic_address() -> impl Strategy<Value = OrAddress> {
    (
        (
            option::of(country()),
            option::of(prop_oneof![
                Just(DomainName::Printable(" ".into())),
                domain(0)
            ]),
        ),
        (
            option::of(domain(1)),
            option::of(printable(1, 64)),
            vec(printable(1, 32), 0..=4),
        ),
        (option::of(personal_name()), option::of(printable(1, 64))),
        (
            option::of(digits(1, 16)),
            option::of(printable(1, 24)),
            option::of(digits(1, 32)),
        ),
        vec(
            ("[A-Za-z0-9 '()+,./:?-]{1,8}", printable(1, 128)).prop_map(
                |(attribute_type, value)| DomainDefinedAttribute {
                    attribute_type: attribute_type.into(),
                    value,
                },
            ),
            0..=4,
        ),
    )
        .prop_map(
            |((country, admd), (prmd, organization, ous), (pn, cn), (x121, tid, nid), ddas)| {
                OrAddress {
                    country,
                    admd,
                    network_address: x121,
                    terminal_identifier: tid,
                    prmd,
                    organization,
                    numeric_user_identifier: nid,
                    personal_name: pn,
                    organizational_units: ous,
                    domain_defined_attributes: ddas,
                    extension_attributes: cn
                        .map(ExtensionAttribute::CommonName)
                        .into_iter()
                        .collect(),
                }
            },
        )
        .prop_filter("an address needs at least one attribute", |a| {
            *a != OrAddress::default()
        })
}

/// O/R names with what only the binary form holds: opaque extension attributes and a
/// directory name.
fn binary_name() -> impl Strategy<Value = OrName> {
    (
        mnemonic_address(),
        vec(
            (2u32..=256, printable(0, 20)).prop_map(|(t, s)| {
                let mut value = vec![0x13, s.len() as u8];
                value.extend_from_slice(s.as_bytes());
                ExtensionAttribute::Other {
                    attribute_type: t,
                    value,
                }
            }),
            0..3,
        ),
        option::of(Just(vec![0x30, 0x06, 0x31, 0x04, 0x30, 0x02, 0x05, 0x00])),
    )
        .prop_map(|(mut address, extra, directory_name)| {
            address.extension_attributes.extend(extra);
            OrName {
                address,
                directory_name,
            }
        })
}

fn time() -> impl Strategy<Value = Time> {
    // 1970-01-01 .. 2069-12-31, whole seconds: the UTCTime window.
    (0i64..=3_155_759_999).prop_map(|s| Utc.timestamp_opt(s, 0).unwrap())
}

fn gdi() -> impl Strategy<Value = GlobalDomainIdentifier> {
    (country(), domain(0), option::of(domain(1))).prop_map(|(country, admd, prmd)| {
        GlobalDomainIdentifier {
            country,
            admd,
            prmd,
        }
    })
}

fn mts_identifier() -> impl Strategy<Value = MtsIdentifier> {
    (gdi(), "[ -~]{1,32}").prop_map(
        |(global_domain_identifier, local_identifier)| MtsIdentifier {
            global_domain_identifier,
            local_identifier: local_identifier.into(),
        },
    )
}

fn mta_name() -> impl Strategy<Value = MtaName> {
    "[!-~]{1,32}".prop_map(|s| MtaName(s.into()))
}

fn message() -> impl Strategy<Value = Message> {
    (
        (mts_identifier(), binary_name(), vec(binary_name(), 1..4)),
        (
            vec((gdi(), time()), 1..4),
            option::of(vec((gdi(), mta_name(), time()), 1..3)),
        ),
        (
            prop_oneof![
                Just(Priority::Normal),
                Just(Priority::NonUrgent),
                Just(Priority::Urgent)
            ],
            vec(0usize..8, 0..3),
        ),
        (option::of("[A-Za-z0-9]{1,16}"), vec(any::<u8>(), 0..200)),
    )
        .prop_map(
            |((id, from, to), (trace, internal), (priority, pmi), (cid, content))| {
                let mut trace = trace
                    .into_iter()
                    .map(|(g, t)| TraceInformationElement::relayed(g, t));
                let mut env = MessageTransferEnvelope::new(
                    id,
                    from,
                    to.into_iter().collect(),
                    trace.next().unwrap(),
                );
                env.trace_information.extend(trace);
                if let Some(it) = internal {
                    env.extensions.push(ExtensionField::internal_trace(
                        it.into_iter()
                            .map(|(g, m, t)| InternalTraceInformationElement::relayed(g, m, t))
                            .collect(),
                    ));
                }
                env.priority = priority;
                env.per_message_indicators = PerMessageIndicators::new(&pmi);
                env.content_identifier = cid;
                Message {
                    envelope: env,
                    content,
                }
            },
        )
}

fn outcome() -> impl Strategy<Value = ReportType> {
    prop_oneof![
        (time(), 0u16..7).prop_map(|(t, u)| ReportType::Delivery {
            message_delivery_time: t,
            type_of_mts_user: TypeOfMtsUser(u)
        }),
        (0u16..9, option::of(0u16..79)).prop_map(|(r, d)| ReportType::NonDelivery {
            reason: NonDeliveryReasonCode(r),
            diagnostic: d.map(NonDeliveryDiagnosticCode),
        }),
    ]
}

fn credentials() -> impl Strategy<Value = Credentials> {
    prop_oneof![
        "[ -~]{0,64}".prop_map(|s| Credentials::Simple(Password::Ia5(s))),
        vec(any::<u8>(), 0..=64).prop_map(|b| Credentials::Simple(Password::Octets(b))),
        Just(Credentials::Strong(vec![0xa0, 0x00])),
    ]
}

fn bind_pdu() -> impl Strategy<Value = BindPdu> {
    prop_oneof![
        Just(BindPdu::Argument(MtaBindArgument::Unauthenticated)),
        (
            mta_name(),
            credentials(),
            option::of(Just(vec![0x31, 0x00]))
        )
            .prop_map(
                |(n, c, sc)| BindPdu::Argument(MtaBindArgument::Authenticated {
                    initiator_name: n,
                    initiator_credentials: c,
                    security_context: sc
                })
            ),
        Just(BindPdu::Result(MtaBindResult::Unauthenticated)),
        (mta_name(), credentials()).prop_map(|(n, c)| BindPdu::Result(
            MtaBindResult::Authenticated {
                responder_name: n,
                responder_credentials: c
            }
        )),
        (0u16..=256).prop_map(|c| BindPdu::Error(MtaBindError(c))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn or_address_mnemonic_round_trip(a in mnemonic_address()) {
        let text = a.to_mnemonic();
        let back = OrAddress::parse_mnemonic(&text).unwrap();
        prop_assert_eq!(&back, &a);
        prop_assert_eq!(back.to_mnemonic(), text);
    }

    #[test]
    fn global_domain_identifier_mnemonic_is_its_o_r_address_form(a in mnemonic_address()) {
        if let (Some(country), Some(admd)) = (a.country.clone(), a.admd.clone()) {
            let gdi = GlobalDomainIdentifier { country, admd, prmd: a.prmd.clone() };
            let text = gdi.to_mnemonic();
            prop_assert_eq!(&text, &gdi.to_or_address().to_mnemonic());
            prop_assert_eq!(GlobalDomainIdentifier::parse_mnemonic(&text).unwrap(), gdi);
        }
    }

    #[test]
    fn or_name_binary_round_trip(n in binary_name()) {
        let bytes = n.encode_ber().unwrap();
        prop_assert_eq!(bytes[0], 0x60);
        let back = OrName::decode_ber(&bytes).unwrap();
        prop_assert_eq!(&back, &n);
        prop_assert_eq!(back.encode_ber().unwrap(), bytes);
        let addr = OrAddress::decode_ber(&n.address.encode_ber().unwrap()).unwrap();
        prop_assert_eq!(addr, n.address);
    }

    #[test]
    fn bind_pdu_round_trip(p in bind_pdu()) {
        let bytes = p.encode_ro_tagged().unwrap();
        prop_assert_eq!(bytes[0], match p { BindPdu::Argument(_) => 0xb0, BindPdu::Result(_) => 0xb1, BindPdu::Error(_) => 0xb2 });
        prop_assert_eq!(BindPdu::decode_ro(&bytes).unwrap(), p.clone());
        match &p {
            BindPdu::Argument(a) => prop_assert_eq!(&MtaBindArgument::decode(&a.encode().unwrap()).unwrap(), a),
            BindPdu::Result(r) => prop_assert_eq!(&MtaBindResult::decode(&r.encode().unwrap()).unwrap(), r),
            BindPdu::Error(e) => prop_assert_eq!(&MtaBindError::decode(&e.encode()).unwrap(), e),
        }
    }

    #[test]
    fn message_round_trip(m in message()) {
        let apdu = MtsApdu::Message(m);
        for conf in [Conformance::Explicit1988, Conformance::Implicit] {
            let bytes = apdu.encode(conf).unwrap();
            let back = MtsApdu::decode(&bytes).unwrap();
            prop_assert_eq!(&back, &apdu);
            prop_assert_eq!(&MtsApdu::decode_vec(bytes.clone()).unwrap(), &apdu);
            prop_assert_eq!(back.encode(conf).unwrap(), bytes);
        }
    }

    #[test]
    fn report_round_trip(m in message(), outcomes in vec(outcome(), 1..4), ids in (mts_identifier(), gdi(), time(), time())) {
        let outcomes: Vec<RecipientOutcome> = outcomes
            .into_iter()
            .enumerate()
            .map(|(i, report_type)| RecipientOutcome {
                recipient: i % m.envelope.per_recipient_fields.len(),
                report_type,
                supplementary_information: None,
            })
            .collect();
        let report = Report::generate(&m, ids.0, ids.1, ids.2, ids.3, &outcomes).unwrap();
        let apdu = MtsApdu::Report(report);
        for conf in [Conformance::Explicit1988, Conformance::Implicit] {
            prop_assert_eq!(MtsApdu::decode(&apdu.encode(conf).unwrap()).unwrap(), apdu.clone());
            prop_assert_eq!(MtsApdu::decode_vec(apdu.encode(conf).unwrap()).unwrap(), apdu.clone());
        }
    }

    #[test]
    fn ipm_round_trip(from in binary_name(), to in vec(binary_name(), 0..3), subject in "[ -~\u{a0}-\u{ff}]{0,60}", body in "\\PC{0,200}") {
        let ipm = Ipm::text(mtalab_p1::IpmIdentifier { user: None, user_relative_identifier: "x".into() }, from, to, vec![], &subject, &body);
        let back = Ipm::decode(&ipm.encode().unwrap()).unwrap();
        prop_assert_eq!(back.body_text(), body);
        prop_assert_eq!(back, ipm);
    }

    /// An IPM decoded with the O/R names its envelope's decoding noted is the IPM decoded
    /// without them; the heading's names that are the envelope's (the IPM's originator, its
    /// `this-IPM` user, a recipient the envelope names) come from the memo.
    #[test]
    fn ipm_names_from_the_envelope_change_nothing(
        m in message(),
        others in vec(binary_name(), 0..2),
        which in vec(any::<bool>(), 1..4),
        subject in "[ -~]{0,20}",
    ) {
        let env = &m.envelope;
        // The heading names the envelope's originator, some of its recipients, and others.
        let mut to: Vec<OrName> = env.per_recipient_fields.iter().zip(which.iter().cycle()).filter(|(_, w)| **w).map(|(p, _)| p.recipient_name.clone()).collect();
        to.extend(others);
        let id = mtalab_p1::IpmIdentifier { user: Some(env.originator_name.clone()), user_relative_identifier: "1@x".into() };
        let ipm = Ipm::text(id, env.originator_name.clone(), to, vec![], &subject, "text\r\n");
        let apdu = MtsApdu::Message(Message { envelope: m.envelope.clone(), content: ipm.encode().unwrap() });
        for conf in [Conformance::Explicit1988, Conformance::Implicit] {
            let mut names = OrNameMemo::default();
            let back = MtsApdu::decode_vec_noting(apdu.encode(conf).unwrap(), &mut names).unwrap();
            prop_assert_eq!(&back, &apdu);
            let MtsApdu::Message(back) = back else { unreachable!() };
            prop_assert_eq!(Ipm::decode_with(&back.content, &mut names).unwrap(), ipm.clone());
            // The originator (this-IPM's user and the originator field) from the envelope's
            // when it is a name the memo keeps.
            let kept = |n: &OrName| n.directory_name.is_none() && n.address.extension_attributes.is_empty() && n.encode_ber().unwrap().len() <= OrNameMemo::MAX_ENCODING;
            if kept(&env.originator_name) {
                prop_assert!(names.hits() >= 2, "{} hits", names.hits());
            }
        }
    }

    #[test]
    fn decoders_never_panic(bytes in vec(any::<u8>(), 0..300)) {
        // The buffer-taking decoder answers as the borrowing one, error or value.
        prop_assert_eq!(MtsApdu::decode(&bytes).map_err(|e| e.to_string()), MtsApdu::decode_vec(bytes.clone()).map_err(|e| e.to_string()));
        let _ = MtsApdu::decode_external(&bytes);
        let _ = BindPdu::decode_ro(&bytes);
        let _ = OrName::decode_ber(&bytes);
        let _ = Ipm::decode(&bytes);
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = OrAddress::parse_mnemonic(text);
        }
    }
}

/// Inputs the fuzz targets once failed on, replayed: each decodes, re-encodes in both
/// extension-type forms and decodes to the same APDU.
#[test]
fn fuzz_regressions_replay() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/regressions");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let apdu = MtsApdu::decode(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(MtsApdu::decode_vec(bytes.clone()).unwrap(), apdu, "{}", path.display());
        for conf in [Conformance::Explicit1988, Conformance::Implicit] {
            let again = apdu.encode(conf).unwrap();
            assert_eq!(MtsApdu::decode(&again).unwrap(), apdu, "{}", path.display());
        }
        seen += 1;
    }
    assert!(seen > 0);
}
