//! Decoding real traffic: the x400-ping bind, PP's bind exchanges and refusal, and the P1
//! messages PP accepted and relayed.

use mtalab_p1::{
    BindPdu, Conformance, ContentType, CountryName, Credentials, DomainName, ExtensionType, Ipm,
    Message, MtaBindArgument, MtaBindError, MtaBindResult, MtsApdu, OrName, Password,
    PerRecipientIndicators, RoutingAction,
};

use crate::wire::{self, El};

/// The user data of the session SPDU parameter `pi` of TPKT `frame` (CN/AC: 0xc1 User
/// Data; RF: 0x32 Reason Code, whose first octet is the reason).
fn session_user_data(frame: &[u8], pi: u8) -> Vec<u8> {
    let spdus = wire::cotp_dt_data(frame).expect("COTP DT");
    let (_, value) = wire::session_param(spdus, pi).expect("session parameter");
    value.to_vec()
}

/// The bind PDU inside an RTSE APDU (`b0` RTORQ → `a3` → `a0` open; `b1` RTOAC → `a2` →
/// `a0` open) found in presentation/ACSE user data.
fn bind_value(user_data: &[u8], rtse_tag: u8) -> Vec<u8> {
    let rtse: El<'_> = wire::find(user_data, rtse_tag).expect("RTSE APDU");
    let conn = wire::child(&rtse, if rtse_tag == 0xb0 { 0xa3 } else { 0xa2 });
    let open = wire::child(&conn, 0xa0);
    wire::children(open.content)[0].raw.to_vec()
}

fn frame_payload(frame: &[u8]) -> &[u8] {
    &frame[4..]
}

#[test]
fn x400ping_bind_argument_and_result() {
    let frames = wire::txt_frames("x400ping.txt");
    // Frames: COTP CR, CC, then session CN (RTORQ) and AC (RTOAC).
    let cn = session_user_data(frame_payload(&frames[2].1), 0xc1);
    let arg_bytes = bind_value(&cn, 0xb0);
    assert_eq!(&arg_bytes[..4], &[0xb0, 0x24, 0xa1, 0x22]);
    let arg = MtaBindArgument::decode_ro(&arg_bytes).unwrap();
    match &arg {
        MtaBindArgument::Authenticated {
            initiator_name,
            initiator_credentials,
            security_context,
        } => {
            assert_eq!(initiator_name.as_str(), "percival.smhs.co.uk");
            assert_eq!(
                initiator_credentials,
                &Credentials::Simple(Password::Ia5("excalibur".into()))
            );
            assert!(security_context.is_none());
        }
        other => panic!("unexpected {other:?}"),
    }
    // Re-encoding gives the captured octets back.
    assert_eq!(arg.encode_ro_tagged().unwrap(), arg_bytes);
    assert_eq!(
        BindPdu::decode_ro(&arg_bytes).unwrap(),
        BindPdu::Argument(arg)
    );

    let ac = session_user_data(frame_payload(&frames[3].1), 0xc1);
    let res_bytes = bind_value(&ac, 0xb1);
    let res = MtaBindResult::decode_ro(&res_bytes).unwrap();
    assert_eq!(res, MtaBindResult::simple("guinevere.smhs.co.uk", "merlin"));
    assert_eq!(res.encode_ro_tagged().unwrap(), res_bytes);
    // The inner value alone decodes as well.
    let inner = wire::children(wire::element(&res_bytes).0.content)[0].raw;
    assert_eq!(MtaBindResult::decode(inner).unwrap(), res);
}

#[test]
fn pp_bind_with_octet_string_passwords() {
    let segs = wire::tcp_segments(&wire::data("pp-initiator-transfer.pcap"));
    // First association: a caller binds to PP as EXCH1/secret; PP answers PPMTA/pppass.
    let client = wire::clients(&segs, 102)[0];
    let up = wire::tpkts(&wire::stream(&segs, client, 102));
    let down = wire::tpkts(&wire::stream(&segs, 102, client));
    let arg =
        MtaBindArgument::decode_ro(&bind_value(&session_user_data(&up[1], 0xc1), 0xb0)).unwrap();
    assert_eq!(arg, MtaBindArgument::simple("EXCH1", "secret"));
    let res =
        MtaBindResult::decode_ro(&bind_value(&session_user_data(&down[1], 0xc1), 0xb1)).unwrap();
    let MtaBindResult::Authenticated {
        responder_name,
        responder_credentials,
    } = &res
    else {
        panic!("{res:?}")
    };
    assert_eq!(responder_name.as_str(), "PPMTA");
    assert_eq!(
        responder_credentials,
        &Credentials::Simple(Password::Octets(b"pppass".to_vec()))
    );
    assert!(responder_credentials.password().unwrap().matches("pppass"));
    // The octet-string form re-encodes as such (`04 06 ...`).
    assert!(res.encode().unwrap().windows(2).any(|w| w == [0x04, 0x06]));

    // Second association: PP initiates towards TCP 10102 with an OCTET STRING password.
    let client = wire::clients(&segs, 10102)[0];
    let up = wire::tpkts(&wire::stream(&segs, client, 10102));
    let arg =
        MtaBindArgument::decode_ro(&bind_value(&session_user_data(&up[1], 0xc1), 0xb0)).unwrap();
    let MtaBindArgument::Authenticated {
        initiator_name,
        initiator_credentials,
        ..
    } = &arg
    else {
        panic!()
    };
    assert_eq!(initiator_name.as_str(), "PPMTA");
    assert_eq!(
        initiator_credentials.password(),
        Some(&Password::Octets(b"pppass".to_vec()))
    );
}

/// The PP refusal frame from vectors/README.md: session RF whose Reason Code carries a CPR
/// with an AARE (rejected) whose user information holds RTORJ `b2 { a1 { 02 01 02 } }` —
/// the bind error as a bare INTEGER, without `[18]`.
const PP_REFUSAL: &str = "0300008102f0800c78011a0907040545584348310b0f170d3939313233313233353935395a110101140202493253023050a51b3007800100810251013007800100810251013007800100810251016131302f020101a02a6128a106060456000106a203020101a305a103020102be12281006025101020103a007b205a103020102";

#[test]
fn pp_refusal_bind_error_without_ro_tag() {
    let frame = wire::hex(PP_REFUSAL);
    let rf = session_user_data(frame_payload(&frame), 0x32);
    assert_eq!(
        rf[0], 2,
        "reason: rejection by the called SS-user with user data"
    );
    let rtorj = wire::find(&rf[1..], 0xb2).expect("RTORJ");
    let user_data_rj = wire::child(&rtorj, 0xa1);
    let error = wire::children(user_data_rj.content)[0].raw;
    assert_eq!(error, [0x02, 0x01, 0x02]);
    let e = MtaBindError::decode_ro(error).unwrap();
    assert_eq!(e, MtaBindError::AUTHENTICATION_ERROR);
    assert_eq!(e.to_string(), "authentication-error");
    assert_eq!(BindPdu::decode_ro(error).unwrap(), BindPdu::Error(e));
    // What we send instead carries [18].
    assert_eq!(e.encode_ro_tagged(), [0xb2, 0x03, 0x02, 0x01, 0x02]);
}

/// The MTS-APDUs of every association towards `server_port` in a capture.
fn transfers(file: &str, server_port: u16) -> Vec<(Vec<u8>, MtsApdu)> {
    let segs = wire::tcp_segments(&wire::data(file));
    wire::clients(&segs, server_port)
        .into_iter()
        .map(|client| {
            let rttr: Vec<u8> =
                wire::rttr_segments(&wire::stream(&segs, client, server_port)).concat();
            let (pcid, apdu) = MtsApdu::decode_external(&rttr).unwrap();
            assert_eq!(pcid, 5, "indirect-reference of id-as-mtse");
            (rttr, apdu)
        })
        .collect()
}

fn message(apdu: &MtsApdu) -> &Message {
    match apdu {
        MtsApdu::Message(m) => m,
        other => panic!("not a message: {other:?}"),
    }
}

#[test]
fn pp_accepted_and_relayed_message() {
    let accepted = transfers("pp-initiator-transfer.pcap", 102);
    let relayed = transfers("pp-initiator-transfer.pcap", 10102);
    assert_eq!((accepted.len(), relayed.len()), (1, 1));
    let (in_bytes, in_apdu) = &accepted[0];
    let (out_bytes, out_apdu) = &relayed[0];
    // PP relays with indefinite lengths and a constructed content OCTET STRING.
    assert!(!wire::element(in_bytes).0.indefinite);
    assert!(wire::element(out_bytes).0.indefinite);
    let m_in = message(in_apdu);
    let m_out = message(out_apdu);

    for m in [m_in, m_out] {
        let e = &m.envelope;
        let gdi = &e.message_identifier.global_domain_identifier;
        assert_eq!(gdi.country, CountryName::Iso3166Alpha2("US".into()));
        assert_eq!(gdi.admd, DomainName::Printable(" ".into()));
        assert_eq!(gdi.prmd, Some(DomainName::Printable("ExchangeORG".into())));
        assert_eq!(e.message_identifier.local_identifier, "SITEA/0012");
        assert_eq!(
            e.originator_name.to_mnemonic(),
            "c=US;a= ;p=ExchangeORG;o=SiteA;ou1=Recipients;s=Smith;g=John"
        );
        assert_eq!(e.content_type, ContentType::P2_1988);
        assert_eq!(e.per_recipient_fields.len(), 1);
        let r = &e.per_recipient_fields[0];
        assert_eq!(
            r.recipient_name,
            OrName::parse_mnemonic("c=US;a= ;p=ExchangeORG;o=SiteB;s=Doe;g=Jane").unwrap()
        );
        assert_eq!(r.originally_specified_recipient_number, 1);
        assert!(
            r.per_recipient_indicators
                .get(PerRecipientIndicators::RESPONSIBILITY)
        );
        assert!(
            r.per_recipient_indicators
                .get(PerRecipientIndicators::ORIGINATOR_NON_DELIVERY_REPORT)
        );
        let first = &e.trace_information[0];
        assert_eq!(first.global_domain_identifier, gdi.clone());
        assert_eq!(
            first.domain_supplied_information.arrival_time.to_rfc3339(),
            "1999-12-31T23:59:59+00:00"
        );
        assert_eq!(
            first.domain_supplied_information.routing_action,
            RoutingAction::Relayed
        );
        // Internal trace in the 1988 explicit extension-type form.
        assert_eq!(
            e.extensions[0].extension_type,
            ExtensionType::INTERNAL_TRACE_INFORMATION
        );
        let it = e.internal_trace().expect("internal trace");
        assert_eq!(it[0].mta_name.as_str(), "EXCH1");
        // Content is the same IPM on both legs.
        let ipm = Ipm::decode(&m.content).unwrap();
        assert_eq!(ipm.heading.subject.as_deref(), Some("Hello from SiteA"));
        assert_eq!(ipm.heading.this_ipm.user_relative_identifier, "1234");
        assert_eq!(ipm.body_text(), "Test body\r\n");
    }
    assert_eq!(m_in.content, m_out.content);
    assert_eq!(m_in.envelope.trace_information.len(), 1);

    // PP added its own trace element (PPDOM) and internal trace element (pp.test).
    let e = &m_out.envelope;
    assert_eq!(e.trace_information.len(), 2);
    let pp = &e.trace_information[1];
    assert_eq!(
        pp.global_domain_identifier.prmd,
        Some(DomainName::Printable("PPDOM".into()))
    );
    assert_eq!(
        pp.domain_supplied_information.arrival_time.to_rfc3339(),
        "2026-11-21T23:54:18+00:00"
    );
    let it = e.internal_trace().unwrap();
    assert_eq!(
        it.iter().map(|i| i.mta_name.as_str()).collect::<Vec<_>>(),
        ["EXCH1", "pp.test"]
    );
    // PP added original-encoded-information-types (empty built-in set) and sent nine
    // per-recipient indicator bits.
    assert!(
        e.original_encoded_information_types
            .as_ref()
            .unwrap()
            .built_in
            .is_empty()
    );
    assert_eq!(
        e.per_recipient_fields[0].per_recipient_indicators.0.len(),
        9
    );

    // The definite-length leg re-encodes octet for octet in the 1988 conformance mode.
    let reencoded = in_apdu
        .encode_external(5, Conformance::Explicit1988)
        .unwrap();
    assert_eq!(&reencoded, in_bytes);
    // Both legs survive decode → encode → decode in every conformance mode.
    for apdu in [in_apdu, out_apdu] {
        for conf in [Conformance::Explicit1988, Conformance::Implicit] {
            assert_eq!(&MtsApdu::decode(&apdu.encode(conf).unwrap()).unwrap(), apdu);
        }
        let bare = MtsApdu::decode(&apdu.encode(Conformance::NoExtensions).unwrap()).unwrap();
        assert!(message(&bare).envelope.extensions.is_empty());
    }
}

#[test]
fn pp_checkpointed_three_kilobyte_message() {
    let segs = wire::tcp_segments(&wire::data("pp-checkpointed-transfer.pcap"));
    let client = wire::clients(&segs, 102)[0];
    let segments = wire::rttr_segments(&wire::stream(&segs, client, 102));
    // Checkpoint size 1 KiB: three full segments and the rest.
    assert_eq!(
        segments.iter().map(Vec::len).collect::<Vec<_>>()[..3],
        [1024, 1024, 1024]
    );
    let (pcid, apdu) = MtsApdu::decode_external(&segments.concat()).unwrap();
    assert_eq!(pcid, 5);
    let m = message(&apdu);
    assert_eq!(m.envelope.message_identifier.local_identifier, "SITEA/0013");
    let ipm = Ipm::decode(&m.content).unwrap();
    let text = ipm.body_text();
    assert_eq!(ipm.heading.subject.as_deref(), Some("Big message"));
    assert_eq!(text.len(), 3000);
    // Lines 00000..=00090 of 33 octets, cut at 3000 octets.
    assert_eq!(text.lines().count(), 91);
    assert!(
        text.ends_with("Line 00090 of a long test body"),
        "{:?}",
        &text[text.len() - 40..]
    );
    assert!(
        text.starts_with("Line 00000 of a long test body.\r\nLine 00001 of"),
        "{text:.60}"
    );
}
