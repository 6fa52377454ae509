//! Round-trip properties: decode(encode(x)) == x for every PDU type of every layer.

use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;
use rasn::types::{Any, BitString, ObjectIdentifier, OctetString};

use mtalab_osi::acse::{
    Aare, Aarq, Abrt, AcseApdu, External, ExternalEncoding, Rlre, Rlrq, SourceDiagnostic,
};
use mtalab_osi::ber;
use mtalab_osi::cotp::{self, ConnectTpdu, DataTpdu, DisconnectTpdu, ErrorTpdu, Tpdu, TpduSize};
use mtalab_osi::presentation::{
    AbortPpdu, ArpPpdu, AruNormalMode, AruPpdu, ContextDefinition, ContextIdentifierItem,
    ContextResult, CpNormalMode, CpType, CpaNormalMode, CpaPpdu, CprNormalMode, CprPpdu,
    DefaultContextName, ModeSelector, PdvList, PdvValues, UserData,
};
use mtalab_osi::rtse::{
    CallingSsUserReference, ConnectionData, Rtab, Rtoac, Rtorj, Rtorq, RtseApdu,
    SessionConnectionIdentifier,
};
use mtalab_osi::session::{
    self, ConnectAcceptItem, ConnectionId, LinkingInformation, ParamCode, Params, RawParam, Spdu,
    SpduCode,
};
use mtalab_osi::tpkt;

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..=max)
}

// ----- TPKT and COTP -----

fn cotp_param() -> impl Strategy<Value = cotp::Param> {
    (
        prop::sample::select(vec![0xc3u8, 0xc4, 0xc6, 0xc7, 0xf0, 0x85]),
        bytes(8),
    )
        .prop_map(|(c, v)| cotp::Param {
            code: cotp::ParamCode(c),
            value: v,
        })
}

fn connect_tpdu() -> impl Strategy<Value = ConnectTpdu> {
    (
        any::<u16>(),
        any::<u16>(),
        0u8..16,
        of(7u8..=13),
        of(bytes(32)),
        of(bytes(32)),
        vec(cotp_param(), 0..4),
    )
        .prop_map(|(d, s, opt, size, calling, called, other)| ConnectTpdu {
            dst_ref: d,
            src_ref: s,
            class_option: opt,
            tpdu_size: size.and_then(TpduSize::from_code),
            calling_tsap: calling,
            called_tsap: called,
            other,
        })
}

fn tpdu() -> impl Strategy<Value = Tpdu> {
    prop_oneof![
        connect_tpdu().prop_map(Tpdu::Cr),
        connect_tpdu().prop_map(Tpdu::Cc),
        (any::<bool>(), 0u8..128, bytes(300)).prop_map(|(eot, nr, d)| Tpdu::Dt(DataTpdu {
            eot,
            nr,
            user_data: d
        })),
        (
            any::<u16>(),
            any::<u16>(),
            any::<u8>(),
            of(bytes(20)),
            bytes(20)
        )
            .prop_map(|(d, s, r, info, u)| {
                Tpdu::Dr(DisconnectTpdu {
                    dst_ref: d,
                    src_ref: s,
                    reason: r,
                    params: info
                        .into_iter()
                        .map(|v| cotp::Param {
                            code: cotp::ParamCode::ADDITIONAL_INFO,
                            value: v,
                        })
                        .collect(),
                    user_data: u,
                })
            }),
        (any::<u16>(), any::<u8>(), of(bytes(40))).prop_map(|(d, c, i)| Tpdu::Er(ErrorTpdu {
            dst_ref: d,
            cause: c,
            invalid_tpdu: i
        })),
    ]
}

proptest! {
    #[test]
    fn tpkt_roundtrip(payload in bytes(2000)) {
        let mut out = Vec::new();
        tpkt::encode(&payload, &mut out).unwrap();
        // payloads shorter than 3 octets make packets below the minimum length
        if payload.len() >= 3 {
            prop_assert_eq!(tpkt::decode(&out).unwrap(), Some((&payload[..], out.len())));
        } else {
            prop_assert!(tpkt::decode(&out).is_err());
        }
    }

    #[test]
    fn tpdu_roundtrip(t in tpdu()) {
        prop_assert_eq!(Tpdu::decode(&t.to_bytes()).unwrap(), t);
    }

    #[test]
    fn segment_reassemble(tsdu in bytes(20_000), code in 7u8..=13) {
        let size = TpduSize::from_code(code).unwrap();
        let mut r = cotp::Reassembler::new(20_000);
        let mut out = None;
        for t in cotp::segment(&tsdu, size) {
            prop_assert!(t.len() <= size.octets());
            let Tpdu::Dt(d) = Tpdu::decode(&t).unwrap() else { panic!() };
            prop_assert!(out.is_none());
            out = r.push(&d.user_data, d.eot).unwrap();
        }
        prop_assert_eq!(out, Some(tsdu));
    }

    /// The borrowed DT reader answers for exactly the inputs the general decoder reads as a
    /// DT, with the same EOT mark and user data (DTs and near-DTs drawn on purpose).
    #[test]
    fn dt_of_agrees_with_decode(
        head in prop::sample::select(vec![vec![2u8, 0xf0, 0x80], vec![2, 0xf0, 0x00], vec![2, 0xf1, 0x85], vec![3, 0xf0, 0x80, 0], vec![2, 0xe0, 0x80], vec![1, 0xf0]]),
        tail in bytes(64),
        random in bytes(8),
        pick in any::<bool>(),
    ) {
        let input = if pick { [head, tail].concat() } else { random };
        match (cotp::dt_of(&input), Tpdu::decode(&input)) {
            (Some((eot, data)), Ok(Tpdu::Dt(d))) => {
                prop_assert_eq!(eot, d.eot);
                prop_assert_eq!(data, &d.user_data[..]);
            }
            (None, Ok(Tpdu::Dt(_))) => prop_assert!(false, "a DT not read in place"),
            (Some(_), other) => prop_assert!(false, "read in place but decoded as {:?}", other),
            (None, _) => {}
        }
    }

    /// `push_borrowed` gives the TSDUs `push` gives, segment after segment.
    #[test]
    fn push_borrowed_agrees_with_push(segments in vec((bytes(300), any::<bool>()), 1..12), max in 1usize..2000) {
        let (mut a, mut b) = (cotp::Reassembler::new(max), cotp::Reassembler::new(max));
        for (data, eot) in &segments {
            let (x, y) = (a.push(data, *eot), b.push_borrowed(data, *eot));
            prop_assert_eq!(x, y.map(|o| o.map(|c| c.into_owned())));
            prop_assert_eq!(a.pending(), b.pending());
        }
    }
}

// ----- session -----

const KNOWN: [u8; 23] = [
    1, 5, 9, 10, 11, 12, 15, 16, 17, 19, 20, 21, 22, 23, 25, 26, 33, 41, 42, 49, 50, 51, 52,
];

fn raw_param() -> impl Strategy<Value = RawParam> {
    (
        any::<u8>().prop_filter("unknown code", |c| {
            !KNOWN.contains(c) && *c != 60 && *c < 193
        }),
        bytes(10),
    )
        .prop_map(|(c, v)| RawParam {
            code: ParamCode(c),
            value: v,
        })
}

fn connection_id() -> impl Strategy<Value = ConnectionId> {
    (of(bytes(64)), of(bytes(64)), of(bytes(64)), of(bytes(4))).prop_map(|(a, b, c, d)| {
        ConnectionId {
            called_ss_user_ref: a,
            calling_ss_user_ref: b,
            common_ref: c,
            additional_ref: d,
            other: Vec::new(),
        }
    })
}

/// Boxed: the parameter strategy's type is deep enough already for a debug build's stack.
fn linking() -> BoxedStrategy<LinkingInformation> {
    (connection_id(), of(bytes(6)))
        .prop_map(|(connection, old_activity_id)| LinkingInformation {
            connection,
            old_activity_id,
        })
        .boxed()
}

fn accept_item() -> impl Strategy<Value = ConnectAcceptItem> {
    (
        of(any::<u8>()),
        of((any::<u16>(), any::<u16>())),
        of(any::<u8>()),
        of(0u32..=999_999),
        of(any::<u8>()),
    )
        .prop_map(|(o, t, v, s, k)| ConnectAcceptItem {
            protocol_options: o,
            tsdu_max_size: t,
            version: v,
            initial_serial: s,
            token_setting: k,
            other: Vec::new(),
        })
}

fn params() -> impl Strategy<Value = Params> {
    (
        (
            of(connection_id()),
            of(accept_item()),
            of(any::<u8>()),
            of(any::<u8>()),
            of(any::<u16>()),
            of(any::<u8>()),
        ),
        (
            of(any::<u8>()),
            of(0u32..=999_999),
            of(bytes(6)),
            of(bytes(16)),
            of(bytes(16)),
            of(bytes(8)),
        ),
        (
            of(vec(any::<u8>(), 1..300)),
            of(any::<u8>()),
            of(any::<u8>()),
            of(bytes(1200)),
            vec(raw_param(), 0..3),
            of(linking()),
        ),
    )
        .prop_map(
            |(
                (ci, ai, ti, td, rq, v),
                (st, sn, aid, cs, cd, rf),
                (re, dov, enc, ud, other, li),
            )| {
                Params {
                    connection_id: ci,
                    accept_item: ai,
                    linking: li,
                    token_item: ti,
                    transport_disconnect: td,
                    requirements: rq,
                    version: v,
                    sync_type: st,
                    serial_number: sn,
                    activity_id: aid,
                    calling_ssap: cs,
                    called_ssap: cd,
                    reflect: rf,
                    reason: re,
                    data_overflow: dov,
                    enclosure: enc,
                    user_data: ud,
                    other,
                }
            },
        )
}

fn tsdu() -> impl Strategy<Value = Vec<Spdu>> {
    let category1 = (any::<u8>(), params()).prop_map(|(c, p)| vec![Spdu::with(SpduCode(c), p)]);
    let category2 = (
        prop::sample::select(vec![SpduCode::GT, SpduCode::PT]),
        params(),
        prop::sample::select(vec![1u8, 25, 26, 29, 41, 42, 45, 48, 49, 50, 57, 58]),
        params(),
        bytes(500),
    )
        .prop_map(|(first, p0, code, p1, ui)| {
            let mut second = Spdu::with(SpduCode(code), p1);
            if code == 1 {
                second.user_information = ui;
            }
            vec![Spdu::with(first, p0), second]
        });
    prop_oneof![category1, category2]
}

proptest! {
    #[test]
    fn spdu_roundtrip(spdus in tsdu()) {
        let tsdu = session::encode_tsdu(&spdus).unwrap();
        prop_assert_eq!(session::decode_tsdu(&tsdu).unwrap(), spdus.clone());
        gt_dt_agrees(&tsdu, false)?;
    }

    /// The form of a transfer's segments, read by the borrowed GT+DT reader.
    #[test]
    fn gt_dt_segments(ui in bytes(40)) {
        let tsdu = [&session::GT_DT_HEADER[..], &ui].concat();
        // What the sender writes in one piece is what the general encoder makes of a GT
        // and a DT carrying `ui`.
        prop_assert_eq!(&tsdu, &session::encode_tsdu(&[Spdu::new(SpduCode::GT), Spdu::data(ui.clone())]).unwrap());
        gt_dt_agrees(&tsdu, true)?;
    }
}

/// Where the borrowed GT+DT reader answers, the general decoder reads a GT without
/// parameters and a DT without parameters carrying the same user information; `expected`:
/// it must answer.
fn gt_dt_agrees(tsdu: &[u8], expected: bool) -> Result<(), TestCaseError> {
    match session::gt_dt_user_information(tsdu) {
        Some(got) => {
            let want = vec![
                Spdu::new(SpduCode::GT),
                Spdu {
                    user_information: got.to_vec(),
                    ..Spdu::new(SpduCode::DT)
                },
            ];
            prop_assert_eq!(session::decode_tsdu(tsdu).unwrap(), want);
        }
        None => prop_assert!(!expected, "a GT+DT not read in place"),
    }
    Ok(())
}

// ----- BER: presentation, ACSE, RTSE -----

fn oid() -> impl Strategy<Value = ObjectIdentifier> {
    (0u32..=2, 0u32..=39, vec(0u32..100_000, 0..6)).prop_map(|(a, b, rest)| {
        let mut arcs = vec![a, b];
        arcs.extend(rest);
        ObjectIdentifier::new(arcs).unwrap()
    })
}

fn octets(max: usize) -> impl Strategy<Value = OctetString> {
    bytes(max).prop_map(OctetString::from)
}

fn bits() -> impl Strategy<Value = BitString> {
    vec(any::<bool>(), 0..20).prop_map(|b| b.into_iter().collect())
}

/// One BER value: an INTEGER, an OCTET STRING, or a SEQUENCE of them.
fn any_value() -> impl Strategy<Value = Any> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(|i| ber::encode(&i)),
        bytes(40).prop_map(|b| ber::wrap(0x04, &b)),
    ];
    prop_oneof![
        leaf.clone(),
        vec(leaf, 0..4).prop_map(|items| ber::wrap(0x30, &items.concat())),
    ]
    .prop_map(Any::new)
}

fn user_data() -> impl Strategy<Value = UserData> {
    let pdv_values = prop_oneof![
        any_value().prop_map(PdvValues::SingleAsn1Type),
        octets(40).prop_map(PdvValues::OctetAligned),
        bits().prop_map(PdvValues::Arbitrary),
    ];
    let pdv = (of(oid()), any::<i64>(), pdv_values).prop_map(|(t, id, v)| PdvList {
        transfer_syntax_name: t,
        presentation_context_identifier: id,
        presentation_data_values: v,
    });
    prop_oneof![
        octets(50).prop_map(UserData::SimplyEncoded),
        vec(pdv, 1..4).prop_map(UserData::FullyEncoded)
    ]
}

fn external() -> impl Strategy<Value = External> {
    let enc = prop_oneof![
        any_value().prop_map(ExternalEncoding::SingleAsn1Type),
        octets(40).prop_map(ExternalEncoding::OctetAligned),
        bits().prop_map(ExternalEncoding::Arbitrary),
    ];
    (of(oid()), of(any::<i64>()), of(octets(10)), enc).prop_map(|(d, i, desc, e)| External {
        direct_reference: d,
        indirect_reference: i,
        data_value_descriptor: desc,
        encoding: e,
    })
}

fn connection_data() -> impl Strategy<Value = ConnectionData> {
    prop_oneof![
        any_value().prop_map(ConnectionData::Open),
        (octets(20), 0i64..3_155_760_000, of(vec(b'a'..=b'z', 0..8))).prop_map(|(r, secs, add)| {
            ConnectionData::Recover(SessionConnectionIdentifier {
                calling_ss_user_reference: CallingSsUserReference::OctetString(r),
                // rasn reads two-digit UTCTime years as 1970..2069; whole seconds
                common_reference: chrono::DateTime::from_timestamp(secs, 0).unwrap(),
                additional_reference_information: add
                    .map(|a| rasn::types::TeletexString::from_bytes(&a).unwrap()),
            })
        }),
    ]
}

fn rtorq() -> impl Strategy<Value = Rtorq> {
    (
        of(0u32..2000),
        of(0u32..2000),
        of(0u32..2),
        connection_data(),
        of(any::<i64>()),
    )
        .prop_map(|(k, w, d, c, a)| Rtorq {
            checkpoint_size: k,
            window_size: w,
            dialogue_mode: d,
            connection_data_rq: c,
            application_protocol: a,
        })
}

fn rtoac() -> impl Strategy<Value = Rtoac> {
    (of(0u32..2000), of(0u32..2000), connection_data()).prop_map(|(k, w, c)| Rtoac {
        checkpoint_size: k,
        window_size: w,
        connection_data_ac: c,
    })
}

fn rtorj() -> impl Strategy<Value = Rtorj> {
    (of(0i64..4), of(any_value())).prop_map(|(r, u)| Rtorj {
        refuse_reason: r,
        user_data_rj: u,
    })
}

fn rtab() -> impl Strategy<Value = Rtab> {
    (of(0i64..8), of(bits()), of(any_value())).prop_map(|(r, b, u)| Rtab {
        abort_reason: r,
        reflected_parameter: b,
        user_data_ab: u,
    })
}

fn rtse_apdu() -> impl Strategy<Value = RtseApdu> {
    prop_oneof![
        rtorq().prop_map(RtseApdu::Rtorq),
        rtoac().prop_map(RtseApdu::Rtoac),
        rtorj().prop_map(RtseApdu::Rtorj),
        any::<i64>().prop_map(RtseApdu::Rttp),
        octets(3000).prop_map(RtseApdu::Rttr),
        rtab().prop_map(RtseApdu::Rtab),
    ]
}

fn user_info() -> impl Strategy<Value = Option<Vec<External>>> {
    of(vec(external(), 0..3))
}

fn acse_apdu() -> impl Strategy<Value = AcseApdu> {
    let aarq = (
        (
            bits(),
            oid(),
            of(any_value()),
            of(any_value()),
            of(any::<i64>()),
            of(any::<i64>()),
        ),
        (
            of(any_value()),
            of(any_value()),
            of(any::<i64>()),
            of(any::<i64>()),
            of(bits()),
            of(oid()),
        ),
        (
            of(any_value()),
            of(vec(oid(), 0..3)),
            of(octets(10)),
            user_info(),
        ),
    )
        .prop_map(
            |(
                (pv, ac, cdap, cdae, cdapi, cdaei),
                (cgap, cgae, cgapi, cgaei, req, mech),
                (auth, acl, impl_, ui),
            )| {
                Aarq {
                    protocol_version: pv,
                    application_context_name: ac,
                    called_ap_title: cdap,
                    called_ae_qualifier: cdae,
                    called_ap_invocation_id: cdapi,
                    called_ae_invocation_id: cdaei,
                    calling_ap_title: cgap,
                    calling_ae_qualifier: cgae,
                    calling_ap_invocation_id: cgapi,
                    calling_ae_invocation_id: cgaei,
                    sender_acse_requirements: req,
                    mechanism_name: mech,
                    calling_authentication_value: auth,
                    application_context_name_list: acl,
                    implementation_information: impl_,
                    user_information: ui,
                }
            },
        );
    let diag = prop_oneof![
        any::<i64>().prop_map(SourceDiagnostic::ServiceUser),
        any::<i64>().prop_map(SourceDiagnostic::ServiceProvider)
    ];
    let aare = (
        (oid(), 0i64..3, diag, of(any_value()), of(any_value())),
        (of(bits()), user_info()),
    )
        .prop_map(|((ac, r, d, ap, ae), (req, ui))| {
            let mut a = Aare::new(ac, r, d);
            a.responding_ap_title = ap;
            a.responding_ae_qualifier = ae;
            a.responder_acse_requirements = req;
            a.user_information = ui;
            a
        });
    prop_oneof![
        aarq.prop_map(AcseApdu::Aarq),
        aare.prop_map(AcseApdu::Aare),
        (of(any::<i64>()), user_info()).prop_map(|(r, u)| AcseApdu::Rlrq(Rlrq {
            reason: r,
            user_information: u
        })),
        (of(any::<i64>()), user_info()).prop_map(|(r, u)| AcseApdu::Rlre(Rlre {
            reason: r,
            user_information: u
        })),
        (0i64..2, of(any::<i64>()), user_info()).prop_map(|(s, d, u)| AcseApdu::Abrt(Abrt {
            abort_source: s,
            abort_diagnostic: d,
            user_information: u
        })),
    ]
}

fn context_results() -> impl Strategy<Value = Option<Vec<ContextResult>>> {
    of(vec(
        (0i64..3, of(oid()), of(0i64..4)).prop_map(|(r, t, p)| ContextResult {
            result: r,
            transfer_syntax_name: t,
            provider_reason: p,
        }),
        0..4,
    ))
}

fn cp_type() -> impl Strategy<Value = CpType> {
    let ctx = (any::<i64>(), oid(), vec(oid(), 1..3)).prop_map(|(i, a, t)| ContextDefinition {
        presentation_context_identifier: i,
        abstract_syntax_name: a,
        transfer_syntax_name_list: t,
    });
    let normal = (
        (bits(), of(octets(8)), of(octets(8)), of(vec(ctx, 0..4))),
        (
            of((oid(), oid())),
            of(bits()),
            of(bits()),
            of(bits()),
            of(any::<i64>()),
            of(user_data()),
        ),
    )
        .prop_map(
            |((pv, cg, cd, list), (dflt, preq, ureq, popt, inc, ud))| CpNormalMode {
                protocol_version: pv,
                calling_presentation_selector: cg,
                called_presentation_selector: cd,
                presentation_context_definition_list: list,
                default_context_name: dflt.map(|(a, t)| DefaultContextName {
                    abstract_syntax_name: a,
                    transfer_syntax_name: t,
                }),
                presentation_requirements: preq,
                user_session_requirements: ureq,
                protocol_options: popt,
                initiators_nominated_context: inc,
                user_data: ud,
            },
        );
    (0i64..2, of(rtorq()), of(normal)).prop_map(|(m, x, n)| CpType {
        mode_selector: ModeSelector { mode_value: m },
        x410_mode_parameters: x,
        normal_mode_parameters: n,
    })
}

fn cpa_ppdu() -> impl Strategy<Value = CpaPpdu> {
    let normal = (
        bits(),
        of(octets(8)),
        context_results(),
        of(bits()),
        of(any::<i64>()),
        of(user_data()),
    )
        .prop_map(|(pv, rs, rl, ureq, rnc, ud)| CpaNormalMode {
            protocol_version: pv,
            responding_presentation_selector: rs,
            presentation_context_definition_result_list: rl,
            presentation_requirements: None,
            user_session_requirements: ureq,
            protocol_options: None,
            responders_nominated_context: rnc,
            user_data: ud,
        });
    (0i64..2, of(rtoac()), of(normal)).prop_map(|(m, x, n)| CpaPpdu {
        mode_selector: ModeSelector { mode_value: m },
        x410_mode_parameters: x,
        normal_mode_parameters: n,
    })
}

fn cpr_ppdu() -> impl Strategy<Value = CprPpdu> {
    prop_oneof![
        rtorj().prop_map(CprPpdu::X400ModeParameters),
        (
            bits(),
            of(octets(8)),
            context_results(),
            of(0i64..3),
            of(0i64..8),
            of(user_data())
        )
            .prop_map(|(pv, rs, rl, dcr, pr, ud)| CprPpdu::NormalModeParameters(
                CprNormalMode {
                    protocol_version: pv,
                    responding_presentation_selector: rs,
                    presentation_context_definition_result_list: rl,
                    default_context_result: dcr,
                    provider_reason: pr,
                    user_data: ud,
                }
            )),
    ]
}

fn abort_ppdu() -> impl Strategy<Value = AbortPpdu> {
    let item = (any::<i64>(), oid()).prop_map(|(i, t)| ContextIdentifierItem {
        presentation_context_identifier: i,
        transfer_syntax_name: t,
    });
    prop_oneof![
        rtab().prop_map(|r| AbortPpdu::Aru(AruPpdu::X400ModeParameters(r))),
        (of(vec(item, 0..3)), of(user_data())).prop_map(|(l, u)| AbortPpdu::Aru(
            AruPpdu::NormalModeParameters(AruNormalMode {
                presentation_context_identifier_list: l,
                user_data: u
            })
        )),
        (of(0i64..7), of(any::<i64>())).prop_map(|(r, e)| AbortPpdu::Arp(ArpPpdu {
            provider_reason: r,
            event_identifier: e
        })),
    ]
}

proptest! {
    #[test]
    fn rtse_roundtrip(a in rtse_apdu()) {
        prop_assert_eq!(RtseApdu::decode(&a.encode()).unwrap(), a);
    }

    #[test]
    fn acse_roundtrip(a in acse_apdu()) {
        prop_assert_eq!(AcseApdu::decode(&a.encode()).unwrap(), a);
    }

    #[test]
    fn external_roundtrip(e in external()) {
        prop_assert_eq!(External::decode(&e.encode()).unwrap(), e);
    }

    #[test]
    fn cp_type_roundtrip(p in cp_type()) {
        prop_assert_eq!(CpType::decode(&p.encode()).unwrap(), p);
    }

    #[test]
    fn cpa_roundtrip(p in cpa_ppdu()) {
        prop_assert_eq!(CpaPpdu::decode(&p.encode()).unwrap(), p);
    }

    #[test]
    fn cpr_roundtrip(p in cpr_ppdu()) {
        prop_assert_eq!(CprPpdu::decode(&p.encode()).unwrap(), p);
    }

    #[test]
    fn user_data_roundtrip(u in user_data()) {
        prop_assert_eq!(UserData::decode(&u.encode()).unwrap(), u);
    }

    #[test]
    fn abort_roundtrip(a in abort_ppdu()) {
        prop_assert_eq!(AbortPpdu::decode(&a.encode()).unwrap(), a);
    }

    /// The BER scanner agrees with the encoders on the length of every value, and no
    /// prefix of a value scans as complete.
    #[test]
    fn scan_measures_values(a in rtse_apdu()) {
        let b = a.encode();
        prop_assert_eq!(ber::scan(&b, ber::MAX_DEPTH), Ok(b.len()));
        prop_assert!(ber::scan(&b[..b.len() - 1], ber::MAX_DEPTH).is_err());
    }
}

/// One BER value (an OCTET STRING of `len` octets, or an INTEGER) as a transfer carries it.
fn ber_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (0usize..70_000).prop_map(|n| RtseApdu::Rttr(OctetString::from(vec![0x5a; n])).encode()),
        any::<i64>().prop_map(|v| ber::encode(&v)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The data-transfer fast paths write what the general encoders write, and read back
    /// what they wrote.
    #[test]
    fn transfer_fast_paths_agree_with_the_general_codecs(ctx in prop_oneof![-300i64..70_000, any::<i64>()], value in ber_value()) {
        let mut int = Vec::new();
        ber::push_integer(&mut int, ctx);
        prop_assert_eq!(&int, &ber::encode(&ctx));
        prop_assert_eq!(ber::length_len(value.len()), { let mut l = Vec::new(); ber::push_length(&mut l, value.len()); l.len() });

        let (a, b) = value.split_at(value.len() / 2);
        let pdata = mtalab_osi::presentation::encode_single(ctx, &[a, b]);
        prop_assert_eq!(&pdata, &UserData::single(ctx, value.clone()).encode());
        prop_assert_eq!(mtalab_osi::presentation::single_value_of(&pdata), Some((ctx, &value[..])));

        let ext = mtalab_osi::acse::encode_single_external(ctx, &value);
        prop_assert_eq!(&ext, &External::single(None, ctx, value.clone()).encode());
        prop_assert_eq!(mtalab_osi::acse::single_external_of(&ext), Some((ctx, &value[..])));

        let mut rttr = mtalab_osi::rtse::rttr_header(value.len());
        rttr.extend_from_slice(&value);
        prop_assert_eq!(&rttr, &RtseApdu::Rttr(OctetString::from(value.clone())).encode());
        prop_assert_eq!(mtalab_osi::rtse::rttr_of(&rttr), Some(&value[..]));
    }

    /// Whatever the fast readers take, the general decoders take the same way; what they
    /// leave, the general decoders decide.
    #[test]
    fn transfer_fast_readers_never_take_what_the_decoders_refuse(
        which in 0usize..3, ctx in -2i64..300, value in bytes(200), at in any::<usize>(), to in any::<u8>(), cut in any::<bool>()
    ) {
        // A valid encoding of each form, with one octet changed or the end cut off.
        let v = RtseApdu::Rttr(OctetString::from(value)).encode();
        let mut input = match which {
            0 => UserData::single(ctx, v).encode(),
            1 => External::single(None, ctx, v).encode(),
            _ => v,
        };
        let at = at % input.len();
        if cut { input.truncate(at) } else { input[at] = to }
        if let Some((ctx, value)) = mtalab_osi::presentation::single_value_of(&input) {
            let u = UserData::decode(&input).expect("the general decoder takes it too");
            prop_assert_eq!(u.values(), vec![(ctx, value)]);
        }
        if let Some((ctx, value)) = mtalab_osi::acse::single_external_of(&input) {
            let e = External::decode(&input).expect("the general decoder takes it too");
            prop_assert_eq!((e.indirect_reference, e.value()), (Some(ctx), Some(value)));
        }
        if let Some(seg) = mtalab_osi::rtse::rttr_of(&input) {
            prop_assert_eq!(RtseApdu::decode(&input).expect("the general decoder takes it too"), RtseApdu::Rttr(OctetString::from(seg.to_vec())));
        }
    }
}

#[test]
fn transfer_fast_readers_leave_other_forms_to_the_decoders() {
    // Indefinite length, a transfer-syntax-name, octet-aligned, two PDV lists, a
    // direct-reference: all read by the general decoders only.
    let v = RtseApdu::Rttr(OctetString::from(vec![1, 2, 3])).encode();
    let indefinite = [
        &[0x61, 0x80][..],
        &UserData::single(3, v.clone()).encode()[2..],
        &[0, 0],
    ]
    .concat();
    assert_eq!(mtalab_osi::presentation::single_value_of(&indefinite), None);
    let two = UserData::FullyEncoded(vec![
        PdvList {
            transfer_syntax_name: None,
            presentation_context_identifier: 3,
            presentation_data_values: PdvValues::SingleAsn1Type(Any::new(v.clone()))
        };
        2
    ])
    .encode();
    assert_eq!(mtalab_osi::presentation::single_value_of(&two), None);
    assert_eq!(UserData::decode(&two).unwrap().values().len(), 2);
    let direct = External::single(
        Some(ObjectIdentifier::new(vec![2, 1, 1]).unwrap()),
        3,
        v.clone(),
    )
    .encode();
    assert_eq!(mtalab_osi::acse::single_external_of(&direct), None);
    assert_eq!(External::decode(&direct).unwrap().value(), Some(&v[..]));
    let constructed = [0x24, 0x05, 0x04, 0x03, 1, 2, 3];
    assert_eq!(mtalab_osi::rtse::rttr_of(&constructed), None);
}
