//! An X.411 probe over a real association: the MTA delivers nothing and queues a report
//! to the probe's originator — a delivery report for a mailbox it has, a non-delivery report
//! (event 290) for one it does not.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use mtalab_osi::association::{Association, AssociationConfig, Event};
use mtalab_p1::{ContentType, Conformance, MtaBindArgument, MtsApdu, MtsIdentifier, OrName, PerMessageIndicators, PerRecipientFields, ProbeTransferEnvelope, TraceInformationElement};

use crate::util::*;

#[test]
fn probe_gets_a_report_and_delivers_nothing() {
    let b_ip = Ipv4Addr::new(127, 77, 27, 2);
    let a_ip = Ipv4Addr::new(127, 77, 27, 1);
    // B knows an MTA "A" at a_ip (nothing listens there: the report stays queued at B).
    let mta = format!(
        r#"[mta]
listen = "{b_ip}:2528"
remote_port = 2528
password = "pwProbe"
[[mta.connectors]]
name = "to A"
remote_mta_name = "A"
remote_mta_password = "pwA"
stack_address = "{a_ip}"
address_space = [{{ type = "X400", address = "c=US;a= ;p=TestORG;o=SiteA", cost = 1 }}]
"#
    );
    let b = TestServer::start_with("Probe", b_ip, "", &mta);
    let gdi = mtalab_p1::GlobalDomainIdentifier::parse_mnemonic("c=US;a= ;p=TestORG").unwrap();
    let originator = OrName::parse_mnemonic("c=US;a= ;p=TestORG;o=SiteA;s=Smith;g=John").unwrap();
    let probe = ProbeTransferEnvelope {
        probe_identifier: MtsIdentifier { global_domain_identifier: gdi.clone(), local_identifier: "PROBE-1".into() },
        originator_name: originator.clone(),
        original_encoded_information_types: None,
        content_type: ContentType::P2_1988,
        content_identifier: None,
        content_length: Some(4096),
        per_message_indicators: PerMessageIndicators::default(),
        per_domain_bilateral_information: None,
        trace_information: vec![TraceInformationElement::relayed(gdi, mtalab_p1::chrono::Utc::now())],
        extensions: vec![],
        per_recipient_fields: vec![
            PerRecipientFields::new(OrName::parse_mnemonic("c=US;a= ;p=TestORG;o=SiteProbe;s=One;g=User").unwrap(), 1),
            PerRecipientFields::new(OrName::parse_mnemonic("c=US;a= ;p=TestORG;o=SiteProbe;s=Nobody;g=No").unwrap(), 2),
        ],
    };
    let apdu = MtsApdu::Probe(probe).encode(Conformance::default()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from((a_ip, 0))).unwrap();
        let to = SocketAddr::from((b_ip, 2528));
        let stream = socket.connect(to).await.unwrap();
        let bind = MtaBindArgument::simple("A", "pwA").encode().unwrap();
        let assoc = Association::initiator(AssociationConfig::default(), bind, Instant::now()).unwrap();
        let mut conn = mtalab_server::mta::assoc::Conn::new(stream, assoc, to);
        match conn.next_event(Duration::from_secs(10), "bind").await.unwrap() {
            Event::AssociateConfirm(_) => {}
            other => panic!("association not confirmed: {other:?}"),
        }
        let mut received = Vec::new();
        conn.transfer(apdu, Duration::from_secs(10), &mut received).await.expect("the probe transfer is confirmed");
        conn.release(Duration::from_secs(5)).await;
    });
    // The report waits in B's queue for the connector to A, addressed to the originator.
    let report = wait_for(10.0, || b.queue().into_iter().find(|e| e["envelope"]["p1_apdu"] == true)).expect("a report is queued");
    assert_eq!(report["envelope"]["rcpts"][0], format!("x400:{}", originator.to_mnemonic()));
    // One non-delivery (the unknown recipient), logged as 290; nothing delivered.
    let ndrs = b.get("/events?id=290").unwrap();
    let ndrs = ndrs.as_array().unwrap();
    assert_eq!(ndrs.len(), 1, "{ndrs:?}");
    assert!(ndrs[0]["text"].as_str().unwrap().contains("PROBE-1"), "{ndrs:?}");
    assert!(b.mailbox("User1").is_empty(), "a probe is never delivered");
}
