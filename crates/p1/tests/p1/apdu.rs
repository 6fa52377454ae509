//! MTS-APDUs built here: extension-type forms, reports, probes and refusals.

use mtalab_p1::chrono::{TimeZone, Utc};
use mtalab_p1::{
    BitString, Conformance, ContentType, Error, ExtensionField, ExtensionType, ExtensionValue,
    GlobalDomainIdentifier, InternalTraceInformationElement, Ipm, IpmIdentifier, Message,
    MessageTransferEnvelope, MtaName, MtsApdu, MtsIdentifier, NonDeliveryDiagnosticCode,
    NonDeliveryReasonCode, Oid, OrName, PerMessageIndicators, PerRecipientFields,
    ProbeTransferEnvelope, RecipientOutcome, Report, ReportType, Time, TraceInformationElement,
    TypeOfMtsUser,
};

pub fn t(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Time {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

fn gdi(prmd: &str) -> GlobalDomainIdentifier {
    GlobalDomainIdentifier::parse_mnemonic(&format!("c=US;a= ;p={prmd}")).unwrap()
}

pub fn sample_message() -> Message {
    let from = OrName::parse_mnemonic("c=US;a= ;p=ExchangeORG;o=SiteA;s=Smith;g=John").unwrap();
    let to = vec![
        OrName::parse_mnemonic("c=US;a= ;p=ExchangeORG;o=SiteB;s=Doe;g=Jane").unwrap(),
        OrName::parse_mnemonic("c=US;a= ;p=ExchangeORG;o=SiteB;s=Roe;g=Rick").unwrap(),
    ];
    let id = MtsIdentifier {
        global_domain_identifier: gdi("ExchangeORG"),
        local_identifier: "SITEA/0001".into(),
    };
    let arrival = t(1999, 12, 31, 23, 59, 59);
    let mut env = MessageTransferEnvelope::new(
        id,
        from.clone(),
        to.clone(),
        TraceInformationElement::relayed(gdi("ExchangeORG"), arrival),
    );
    env.extensions.push(ExtensionField::internal_trace(vec![
        InternalTraceInformationElement::relayed(
            gdi("ExchangeORG"),
            MtaName("EXCH1".into()),
            arrival,
        ),
    ]));
    let ipm = Ipm::text(
        IpmIdentifier {
            user: None,
            user_relative_identifier: "0001".into(),
        },
        from,
        to,
        vec![],
        "Hello",
        "Body\r\n",
    );
    Message {
        envelope: env,
        content: ipm.encode().unwrap(),
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn internal_trace_extension_type_in_both_forms() {
    let apdu = MtsApdu::Message(sample_message());
    let explicit = apdu.encode(Conformance::Explicit1988).unwrap();
    let implicit = apdu.encode(Conformance::Implicit).unwrap();
    let none = apdu.encode(Conformance::NoExtensions).unwrap();
    // `[3] { SEQUENCE { type ...` — the 1988 explicit type vs the implicit one; the
    // explicit envelope is the one the capture shows going to PP (`a3 42 30 40 a0 03 ...`).
    assert!(contains(
        &explicit,
        &[
            0xa3, 0x42, 0x30, 0x40, 0xa0, 0x03, 0x02, 0x01, 0x26, 0xa2, 0x39
        ]
    ));
    assert!(!contains(&explicit, &[0x80, 0x01, 0x26]));
    assert!(contains(
        &implicit,
        &[0xa3, 0x40, 0x30, 0x3e, 0x80, 0x01, 0x26, 0xa2, 0x39]
    ));
    assert!(!contains(&none, &[0x02, 0x01, 0x26]) && !contains(&none, &[0x80, 0x01, 0x26]));
    assert_eq!(implicit.len() + 2, explicit.len());
    // Both decode to the same value.
    let a = MtsApdu::decode(&explicit).unwrap();
    let b = MtsApdu::decode(&implicit).unwrap();
    assert_eq!(a, apdu);
    assert_eq!(b, apdu);
    let MtsApdu::Message(m) = MtsApdu::decode(&none).unwrap() else {
        panic!()
    };
    assert!(m.envelope.extensions.is_empty());
    assert!(m.envelope.internal_trace().is_none());
}

#[test]
fn private_and_opaque_extensions_both_forms() {
    let mut m = sample_message();
    m.envelope.extensions.push(ExtensionField {
        extension_type: ExtensionType::Private(Oid(vec![1, 2, 840, 113556, 3])),
        criticality: BitString::from_bits(&[1]),
        value: ExtensionValue::Encoded(vec![0x04, 0x02, 0xca, 0xfe]),
    });
    m.envelope.extensions.push(ExtensionField {
        extension_type: ExtensionType::Standard(1),
        criticality: BitString::new(),
        value: ExtensionValue::Absent,
    });
    let apdu = MtsApdu::Message(m);
    let explicit = apdu.encode(Conformance::Explicit1988).unwrap();
    let implicit = apdu.encode(Conformance::Implicit).unwrap();
    // [0] { OID } versus [3] IMPLICIT OID; criticality [1] for-transfer.
    assert!(contains(
        &explicit,
        &[
            0xa0, 0x09, 0x06, 0x07, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x14, 0x03, 0x81, 0x02, 0x06,
            0x40
        ]
    ));
    assert!(contains(
        &implicit,
        &[
            0x83, 0x07, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x14, 0x03, 0x81, 0x02, 0x06, 0x40
        ]
    ));
    for bytes in [explicit, implicit] {
        let MtsApdu::Message(d) = MtsApdu::decode(&bytes).unwrap() else {
            panic!()
        };
        assert!(d.envelope.extensions[1].critical_for_transfer());
        assert_eq!(MtsApdu::Message(d), apdu);
    }
}

#[test]
fn extension_type_of_another_shape_is_refused() {
    let explicit = MtsApdu::Message(sample_message())
        .encode(Conformance::Explicit1988)
        .unwrap();
    // `[0] { OCTET STRING }` is neither `[0] { INTEGER }` nor `[0] { OBJECT IDENTIFIER }`.
    let bad = explicit_with(&explicit, &[0xa0, 0x03, 0x04, 0x01, 0x26]);
    assert!(matches!(
        MtsApdu::decode(&bad),
        Err(Error::UnexpectedTag {
            context: "extension type",
            ..
        })
    ));
    // `[1]` primitive in the type position.
    let bad = explicit_with(&explicit, &[0xa1, 0x03, 0x02, 0x01, 0x26]);
    assert!(MtsApdu::decode(&bad).is_err());
}

fn explicit_with(bytes: &[u8], replacement: &[u8]) -> Vec<u8> {
    let pos = bytes
        .windows(5)
        .position(|w| w == [0xa0, 0x03, 0x02, 0x01, 0x26])
        .unwrap();
    let mut out = bytes.to_vec();
    out.splice(pos..pos + 5, replacement.iter().copied());
    out
}

#[test]
fn non_delivery_report_generation() {
    let mut subject = sample_message();
    subject.envelope.per_message_indicators =
        PerMessageIndicators::new(&[PerMessageIndicators::CONTENT_RETURN_REQUEST]);
    let report_id = MtsIdentifier {
        global_domain_identifier: gdi("ExchangeORG"),
        local_identifier: "SITEB/0099".into(),
    };
    let report = Report::generate(
        &subject,
        report_id.clone(),
        gdi("ExchangeORG"),
        t(2000, 1, 1, 0, 0, 5),
        t(2000, 1, 1, 0, 0, 6),
        &[RecipientOutcome {
            recipient: 1,
            report_type: ReportType::NonDelivery {
                reason: NonDeliveryReasonCode::UNABLE_TO_TRANSFER,
                diagnostic: Some(NonDeliveryDiagnosticCode::UNRECOGNISED_OR_NAME),
            },
            supplementary_information: Some("no such user".into()),
        }],
    )
    .unwrap();
    assert!(report.is_non_delivery());
    let bytes = MtsApdu::Report(report.clone())
        .encode(Conformance::Explicit1988)
        .unwrap();
    assert_eq!(bytes[0], 0xa1, "report [1]");
    // last-trace-information [3] { [0] time, [1] { non-delivery [1] { [0] 1, [1] 0 } } }
    assert!(contains(
        &bytes,
        &[0xa1, 0x08, 0xa1, 0x06, 0x80, 0x01, 0x01, 0x81, 0x01, 0x00]
    ));
    let MtsApdu::Report(got) = MtsApdu::decode(&bytes).unwrap() else {
        panic!()
    };
    assert_eq!(got, report);
    assert_eq!(got.envelope.report_identifier, report_id);
    assert_eq!(
        got.envelope.report_destination_name,
        subject.envelope.originator_name
    );
    assert_eq!(
        got.content.subject_identifier,
        subject.envelope.message_identifier
    );
    assert_eq!(
        got.content.subject_intermediate_trace_information,
        subject.envelope.trace_information
    );
    assert_eq!(got.content.content_type, Some(ContentType::P2_1988));
    assert_eq!(
        got.content.returned_content.as_deref(),
        Some(&subject.content[..])
    );
    let p = &got.content.per_recipient_fields[0];
    assert_eq!(
        p.actual_recipient_name.to_mnemonic(),
        "c=US;a= ;p=ExchangeORG;o=SiteB;s=Roe;g=Rick"
    );
    assert_eq!(p.originally_specified_recipient_number, 2);
    assert_eq!(p.supplementary_information.as_deref(), Some("no such user"));
    assert_eq!(
        p.last_trace_information.report_type,
        ReportType::NonDelivery {
            reason: NonDeliveryReasonCode::UNABLE_TO_TRANSFER,
            diagnostic: Some(NonDeliveryDiagnosticCode::UNRECOGNISED_OR_NAME),
        }
    );
}

#[test]
fn delivery_report_generation() {
    let subject = sample_message();
    let report = Report::generate(
        &subject,
        MtsIdentifier {
            global_domain_identifier: gdi("ExchangeORG"),
            local_identifier: "SITEB/0100".into(),
        },
        gdi("ExchangeORG"),
        t(2000, 1, 1, 0, 0, 5),
        t(2000, 1, 1, 0, 0, 6),
        &[
            RecipientOutcome {
                recipient: 0,
                report_type: ReportType::Delivery {
                    message_delivery_time: t(2000, 1, 1, 0, 0, 5),
                    type_of_mts_user: TypeOfMtsUser::PUBLIC,
                },
                supplementary_information: None,
            },
            RecipientOutcome {
                recipient: 1,
                report_type: ReportType::Delivery {
                    message_delivery_time: t(2000, 1, 1, 0, 0, 6),
                    type_of_mts_user: TypeOfMtsUser::MS,
                },
                supplementary_information: None,
            },
        ],
    )
    .unwrap();
    assert!(!report.is_non_delivery());
    assert!(report.content.returned_content.is_none());
    let bytes = MtsApdu::Report(report.clone())
        .encode(Conformance::Implicit)
        .unwrap();
    // report-type [1] { delivery [0] { [0] "000101000005Z" } } — type-of-MTS-user public
    // is the default and left out; ms (2) is written.
    assert!(contains(&bytes, b"\xa1\x11\xa0\x0f\x80\x0d000101000005Z"));
    assert!(contains(
        &bytes,
        b"\xa1\x14\xa0\x12\x80\x0d000101000006Z\x81\x01\x02"
    ));
    assert_eq!(MtsApdu::decode(&bytes).unwrap(), MtsApdu::Report(report));

    assert!(
        Report::generate(
            &subject,
            subject.envelope.message_identifier.clone(),
            gdi("X"),
            t(2000, 1, 1, 0, 0, 0),
            t(2000, 1, 1, 0, 0, 0),
            &[]
        )
        .is_err()
    );
    let out_of_range = RecipientOutcome {
        recipient: 5,
        report_type: ReportType::NonDelivery {
            reason: NonDeliveryReasonCode::TRANSFER_FAILURE,
            diagnostic: None,
        },
        supplementary_information: None,
    };
    assert!(matches!(
        Report::generate(
            &subject,
            subject.envelope.message_identifier.clone(),
            gdi("X"),
            t(2000, 1, 1, 0, 0, 0),
            t(2000, 1, 1, 0, 0, 0),
            &[out_of_range]
        ),
        Err(Error::Unencodable { .. })
    ));
}

#[test]
fn probe_decodes() {
    let m = sample_message();
    let probe = ProbeTransferEnvelope {
        probe_identifier: m.envelope.message_identifier.clone(),
        originator_name: m.envelope.originator_name.clone(),
        original_encoded_information_types: None,
        content_type: ContentType::P2_1984,
        content_identifier: Some("probe-1".into()),
        content_length: Some(4096),
        per_message_indicators: PerMessageIndicators::default(),
        per_domain_bilateral_information: None,
        trace_information: m.envelope.trace_information.clone(),
        extensions: vec![],
        per_recipient_fields: vec![PerRecipientFields::new(
            m.envelope.per_recipient_fields[0].recipient_name.clone(),
            1,
        )],
    };
    let bytes = MtsApdu::Probe(probe.clone())
        .encode(Conformance::Explicit1988)
        .unwrap();
    // probe [2] IMPLICIT SET: starts `a2`, holds `46 01 02` and content-length `80 02 10 00`.
    assert_eq!(bytes[0], 0xa2);
    assert!(contains(&bytes, &[0x46, 0x01, 0x02]));
    assert!(contains(&bytes, &[0x80, 0x02, 0x10, 0x00]));
    assert_eq!(MtsApdu::decode(&bytes).unwrap(), MtsApdu::Probe(probe));
}

#[test]
fn report_about_a_probe() {
    let m = sample_message();
    let probe = ProbeTransferEnvelope {
        probe_identifier: MtsIdentifier {
            global_domain_identifier: gdi("ExchangeORG"),
            local_identifier: "SITEA/PROBE7".into(),
        },
        originator_name: m.envelope.originator_name.clone(),
        original_encoded_information_types: None,
        content_type: ContentType::P2_1984,
        content_identifier: Some("probe-7".into()),
        content_length: Some(4096),
        per_message_indicators: PerMessageIndicators::new(&[PerMessageIndicators::CONTENT_RETURN_REQUEST]),
        per_domain_bilateral_information: None,
        trace_information: m.envelope.trace_information.clone(),
        extensions: vec![],
        per_recipient_fields: vec![
            PerRecipientFields::new(m.envelope.per_recipient_fields[0].recipient_name.clone(), 1),
            PerRecipientFields::new(m.envelope.per_recipient_fields[1].recipient_name.clone(), 2),
        ],
    };
    let at = t(2000, 1, 1, 0, 0, 5);
    let report = Report::generate_for_probe(
        &probe,
        MtsIdentifier { global_domain_identifier: gdi("ExchangeORG"), local_identifier: "SITEB/R1".into() },
        gdi("ExchangeORG"),
        at,
        at,
        &[
            RecipientOutcome {
                recipient: 0,
                report_type: ReportType::Delivery { message_delivery_time: at, type_of_mts_user: TypeOfMtsUser::PUBLIC },
                supplementary_information: None,
            },
            RecipientOutcome {
                recipient: 1,
                report_type: ReportType::NonDelivery {
                    reason: NonDeliveryReasonCode::UNABLE_TO_TRANSFER,
                    diagnostic: Some(NonDeliveryDiagnosticCode::UNRECOGNISED_OR_NAME),
                },
                supplementary_information: None,
            },
        ],
    )
    .unwrap();
    assert_eq!(report.content.subject_identifier, probe.probe_identifier, "subject-identifier = probe-identifier");
    assert_eq!(report.envelope.report_destination_name, probe.originator_name);
    assert_eq!(report.content.content_identifier.as_deref(), Some("probe-7"));
    assert_eq!(report.content.returned_content, None, "a probe has no content to return");
    assert_eq!(report.content.per_recipient_fields.len(), 2);
    assert_eq!(report.content.per_recipient_fields[1].originally_specified_recipient_number, 2);
    let bytes = MtsApdu::Report(report.clone()).encode(Conformance::Explicit1988).unwrap();
    assert_eq!(MtsApdu::decode(&bytes).unwrap(), MtsApdu::Report(report));
    assert!(Report::generate_for_probe(&probe, probe.probe_identifier.clone(), gdi("X"), at, at, &[]).is_err());
}

#[test]
fn external_wrapping() {
    let apdu = MtsApdu::Message(sample_message());
    let ext = apdu.encode_external(5, Conformance::Explicit1988).unwrap();
    assert_eq!(&ext[..1], &[0x28]);
    assert_eq!(MtsApdu::decode_external(&ext).unwrap(), (5, apdu.clone()));
    // octet-aligned [1] with a direct-reference is accepted too.
    let inner = apdu.encode(Conformance::Explicit1988).unwrap();
    let mut body = vec![0x06, 0x02, 0x51, 0x01, 0x02, 0x01, 0x05, 0x81, 0x82];
    body.extend_from_slice(&(inner.len() as u16).to_be_bytes());
    body.extend_from_slice(&inner);
    let mut ext = vec![0x28, 0x82];
    ext.extend_from_slice(&(body.len() as u16).to_be_bytes());
    ext.extend_from_slice(&body);
    assert_eq!(MtsApdu::decode_external(&ext).unwrap(), (5, apdu));
}

#[test]
fn refusals() {
    let good = MtsApdu::Message(sample_message())
        .encode(Conformance::Explicit1988)
        .unwrap();
    // Wrong choice tag, primitive form, trailing octets, truncation.
    let mut wrong = good.clone();
    wrong[0] = 0xa3;
    assert!(matches!(
        MtsApdu::decode(&wrong),
        Err(Error::UnexpectedTag {
            context: "MTS-APDU",
            ..
        })
    ));
    let mut extra = good.clone();
    extra.push(0);
    assert_eq!(MtsApdu::decode(&extra), Err(Error::Trailing("MTS-APDU")));
    assert!(matches!(
        MtsApdu::decode(&good[..good.len() - 1]),
        Err(Error::Truncated(_))
    ));
    // Deep nesting is capped before it can exhaust the stack.
    let mut deep = vec![0xa0, 0x80];
    for _ in 0..100_000 {
        deep.extend_from_slice(&[0x30, 0x80]);
    }
    assert_eq!(
        MtsApdu::decode(&deep),
        Err(Error::TooDeep(mtalab_p1::limits::MAX_DEPTH))
    );

    // Encoding refuses what cannot go out.
    let mut m = sample_message();
    m.envelope.per_recipient_fields.clear();
    assert!(matches!(
        MtsApdu::Message(m).encode(Conformance::Implicit),
        Err(Error::Unencodable { .. })
    ));
    let mut m = sample_message();
    m.envelope.trace_information.clear();
    assert!(matches!(
        MtsApdu::Message(m).encode(Conformance::Implicit),
        Err(Error::Unencodable { .. })
    ));
    let mut m = sample_message();
    m.envelope.deferred_delivery_time = Some(t(2070, 1, 1, 0, 0, 0));
    let e = MtsApdu::Message(m)
        .encode(Conformance::Implicit)
        .unwrap_err();
    assert!(!e.is_peer_fault());
    assert!(e.to_string().contains("UTCTime window"), "{e}");
}

#[test]
fn envelope_fields_round_trip() {
    let mut m = sample_message();
    let e = &mut m.envelope;
    e.content_identifier = Some("cid-1".into());
    e.priority = mtalab_p1::Priority::Urgent;
    e.deferred_delivery_time = Some(t(2001, 2, 3, 4, 5, 6));
    e.per_domain_bilateral_information = Some(vec![0x30, 0x00]);
    e.original_encoded_information_types = Some(mtalab_p1::EncodedInformationTypes {
        built_in: BitString::from_bits(&[mtalab_p1::EncodedInformationTypes::IA5_TEXT]),
        non_basic: vec![vec![0x81, 0x01, 0x00]],
        extended: vec![Oid(vec![2, 6, 3, 4, 2])],
    });
    e.content_type = ContentType::Extended(Oid(vec![1, 3, 6, 1, 4, 1, 99]));
    e.per_recipient_fields[0].explicit_conversion = Some(8);
    let apdu = MtsApdu::Message(m);
    for conf in [Conformance::Explicit1988, Conformance::Implicit] {
        let bytes = apdu.encode(conf).unwrap();
        assert!(contains(&bytes, &[0x47, 0x01, 0x02]), "urgent priority");
        assert!(contains(&bytes, b"\x4a\x05cid-1"));
        assert_eq!(MtsApdu::decode(&bytes).unwrap(), apdu);
    }
}
