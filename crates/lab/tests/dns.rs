//! The lab DNS server (`dns`) answering the IMS resolver (`resolve`) over real loopback
//! sockets, with the KB Q196927 example zone.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::Duration,
};

use hickory_proto::{
    op::{Message, MessageType, OpCode, Query, ResponseCode},
    rr::{Name, RData, RecordType},
};
use mtalab_lab::dns::{ASpec, DnsServer, MxSpec, PtrSpec, ZoneSpec};
use mtalab_server::resolve::{MailHost, MxResolver, ResolveError};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpStream, UdpSocket},
    time::timeout,
};

const LOOPBACK: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn mx(name: &str, preference: u16, exchange: &str) -> MxSpec {
    MxSpec {
        name: name.into(),
        preference,
        exchange: exchange.into(),
    }
}

fn a(name: &str, addr: &str) -> ASpec {
    ASpec {
        name: name.into(),
        addr: addr.parse().unwrap(),
    }
}

/// KB Q196927 "Prerequisites" step 4, plus a few records for the failure cases.
fn kb_zones() -> Vec<ZoneSpec> {
    vec![ZoneSpec {
        origin: "microsoft.com".into(),
        mx: vec![
            // listed out of order on purpose: the resolver sorts by preference
            mx("microsoft.com", 20, "ServerB.SiteB.microsoft.com"),
            mx("microsoft.com", 10, "Server1.SiteA.microsoft.com"),
            mx("SiteA.microsoft.com", 10, "Server1.SiteA.microsoft.com"),
            mx("SiteB.microsoft.com", 10, "ServerB.SiteB.microsoft.com"),
            mx("nomail.microsoft.com", 0, "."),
            mx("dangling.microsoft.com", 10, "nowhere.microsoft.com"),
        ],
        a: vec![
            a("Server1.SiteA.microsoft.com", "10.10.10.10"),
            a("ServerB.SiteB.microsoft.com", "10.10.10.15"),
            // SiteC has no MX record: implicit MX (RFC 5321 §5.1)
            a("SiteC.microsoft.com", "10.10.10.20"),
            a("multi.microsoft.com", "10.10.10.21"),
            a("multi.microsoft.com", "10.10.10.22"),
        ],
        ptr: vec![
            PtrSpec {
                addr: "10.10.10.10".parse().unwrap(),
                name: "Server1.SiteA.microsoft.com".into(),
            },
            PtrSpec {
                addr: "10.10.10.15".parse().unwrap(),
                name: "ServerB.SiteB.microsoft.com".into(),
            },
        ],
    }]
}

async fn start() -> (DnsServer, MxResolver) {
    let server = DnsServer::start(LOOPBACK, &kb_zones())
        .await
        .expect("dns server starts");
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0);
    (server, MxResolver::new(addr))
}

fn query(name: &str, rtype: RecordType) -> Message {
    let mut m = Message::new(0x4d54, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    m
}

async fn udp_query(server: SocketAddr, msg: &Message) -> Message {
    let sock = UdpSocket::bind(LOOPBACK).await.unwrap();
    sock.send_to(&msg.to_vec().unwrap(), server).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .expect("udp answer")
        .unwrap();
    Message::from_vec(&buf[..n]).unwrap()
}

async fn tcp_query(server: SocketAddr, msg: &Message) -> Message {
    let mut s = TcpStream::connect(server).await.unwrap();
    let bytes = msg.to_vec().unwrap();
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    s.write_all(&framed).await.unwrap();
    let len = timeout(Duration::from_secs(5), s.read_u16())
        .await
        .expect("tcp answer")
        .unwrap();
    let mut buf = vec![0u8; usize::from(len)];
    s.read_exact(&mut buf).await.unwrap();
    Message::from_vec(&buf).unwrap()
}

fn mx_answers(m: &Message) -> Vec<(u16, String)> {
    let mut v: Vec<(u16, String)> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::MX(mx) => Some((mx.preference, mx.exchange.to_string().to_ascii_lowercase())),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn mx_with_two_preferences_sorted_and_resolved() {
    let (server, resolver) = start().await;
    let hosts = resolver.mail_hosts("microsoft.com").await.unwrap();
    assert_eq!(
        hosts,
        vec![
            MailHost {
                preference: 10,
                name: "Server1.SiteA.microsoft.com".into(),
                addrs: vec![ip("10.10.10.10")]
            },
            MailHost {
                preference: 20,
                name: "ServerB.SiteB.microsoft.com".into(),
                addrs: vec![ip("10.10.10.15")]
            },
        ]
    );
    let site_b = resolver.mail_hosts("SiteB.microsoft.com").await.unwrap();
    assert_eq!(site_b.len(), 1);
    assert_eq!(site_b[0].addrs, vec![ip("10.10.10.15")]);
    server.shutdown().await;
}

#[tokio::test]
async fn implicit_mx_falls_back_to_a_records() {
    let (server, resolver) = start().await;
    assert_eq!(
        resolver.mail_hosts("SiteC.microsoft.com").await.unwrap(),
        vec![MailHost {
            preference: 0,
            name: "SiteC.microsoft.com".into(),
            addrs: vec![ip("10.10.10.20")]
        }]
    );
    let multi = resolver.mail_hosts("multi.microsoft.com").await.unwrap();
    assert_eq!(multi.len(), 1);
    let mut addrs = multi[0].addrs.clone();
    addrs.sort();
    assert_eq!(addrs, vec![ip("10.10.10.21"), ip("10.10.10.22")]);
    server.shutdown().await;
}

#[tokio::test]
async fn nxdomain_null_mx_and_dangling_mx_are_permanent() {
    let (server, resolver) = start().await;
    for domain in [
        "nosuch.microsoft.com",
        "example.org",
        "dangling.microsoft.com",
    ] {
        let err = resolver.mail_hosts(domain).await.unwrap_err();
        assert!(matches!(err, ResolveError::NoHost(_)), "{domain}: {err:?}");
        assert!(err.is_permanent());
    }
    let err = resolver
        .mail_hosts("nomail.microsoft.com")
        .await
        .unwrap_err();
    assert_eq!(err, ResolveError::NullMx("nomail.microsoft.com".into()));
    assert!(err.is_permanent());
    // a name that exists but only as a host with no address records of its own
    assert!(matches!(
        resolver.host_addrs("nowhere.microsoft.com").await,
        Err(ResolveError::NoHost(_))
    ));
    server.shutdown().await;
}

#[tokio::test]
async fn ptr_and_host_lookups() {
    let (server, resolver) = start().await;
    assert_eq!(
        resolver
            .reverse(ip("10.10.10.10"))
            .await
            .unwrap()
            .as_deref(),
        Some("Server1.SiteA.microsoft.com")
    );
    assert_eq!(
        resolver
            .reverse(ip("10.10.10.15"))
            .await
            .unwrap()
            .as_deref(),
        Some("ServerB.SiteB.microsoft.com")
    );
    assert_eq!(resolver.reverse(ip("10.10.10.99")).await.unwrap(), None);
    assert_eq!(resolver.reverse(ip("192.0.2.1")).await.unwrap(), None);
    assert_eq!(
        resolver
            .host_addrs("ServerB.SiteB.microsoft.com")
            .await
            .unwrap(),
        vec![ip("10.10.10.15")]
    );
    assert_eq!(
        resolver.host_addrs("10.10.10.15").await.unwrap(),
        vec![ip("10.10.10.15")]
    );
    assert_eq!(
        resolver.mail_hosts("[10.10.10.15]").await.unwrap(),
        vec![MailHost {
            preference: 0,
            name: "[10.10.10.15]".into(),
            addrs: vec![ip("10.10.10.15")]
        }]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn names_are_case_insensitive() {
    let (server, resolver) = start().await;
    let hosts = resolver.mail_hosts("SITEA.MICROSOFT.COM").await.unwrap();
    assert_eq!(hosts.len(), 1);
    assert!(
        hosts[0]
            .name
            .eq_ignore_ascii_case("server1.sitea.microsoft.com")
    );
    assert_eq!(hosts[0].addrs, vec![ip("10.10.10.10")]);
    assert_eq!(
        resolver
            .host_addrs("serverb.siteb.MICROSOFT.com")
            .await
            .unwrap(),
        vec![ip("10.10.10.15")]
    );
    let answer = udp_query(
        server.local_addr(),
        &query("sItEa.MiCrOsOfT.cOm.", RecordType::MX),
    )
    .await;
    assert_eq!(
        mx_answers(&answer),
        vec![(10, "server1.sitea.microsoft.com.".to_string())]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn tcp_answers_like_udp() {
    let (server, _) = start().await;
    let q = query("microsoft.com.", RecordType::MX);
    let over_udp = udp_query(server.local_addr(), &q).await;
    let over_tcp = tcp_query(server.local_addr(), &q).await;
    for m in [&over_udp, &over_tcp] {
        assert_eq!(m.metadata.id, 0x4d54);
        assert_eq!(m.metadata.message_type, MessageType::Response);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.metadata.authoritative);
        assert_eq!(
            mx_answers(m),
            vec![
                (10, "server1.sitea.microsoft.com.".into()),
                (20, "serverb.siteb.microsoft.com.".into())
            ]
        );
    }
    let nx = tcp_query(
        server.local_addr(),
        &query("nosuch.microsoft.com.", RecordType::A),
    )
    .await;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    server.shutdown().await;
}

#[tokio::test]
async fn every_zone_has_soa_and_ns() {
    let (server, _) = start().await;
    let addr = server.local_addr();
    for (name, rtype) in [
        ("microsoft.com.", RecordType::SOA),
        ("microsoft.com.", RecordType::NS),
        ("10.10.10.in-addr.arpa.", RecordType::SOA),
        ("10.10.10.in-addr.arpa.", RecordType::NS),
    ] {
        let m = udp_query(addr, &query(name, rtype)).await;
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NoError,
            "{name} {rtype}"
        );
        assert!(
            m.answers.iter().any(|r| r.record_type() == rtype),
            "{name} {rtype}: {m:?}"
        );
    }
    // the name server's own address is published when bound to a specific address
    let m = udp_query(addr, &query("ns.microsoft.com.", RecordType::A)).await;
    assert!(
        m.answers
            .iter()
            .any(|r| r.data == RData::A(Ipv4Addr::LOCALHOST.into())),
        "{m:?}"
    );
    // a negative answer carries the zone's SOA for negative caching (RFC 2308)
    let m = udp_query(addr, &query("nosuch.microsoft.com.", RecordType::MX)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(
        m.authorities
            .iter()
            .any(|r| r.record_type() == RecordType::SOA)
    );
    server.shutdown().await;
}

#[tokio::test]
async fn survives_garbage_datagrams() {
    let (server, _) = start().await;
    let addr = server.local_addr();
    let sock = UdpSocket::bind(LOOPBACK).await.unwrap();
    let mut garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![0],
        vec![0xff; 12],
        vec![0xff; 512],
        b"EHLO lab\r\n".to_vec(),
    ];
    // a header claiming 65535 questions, and a truncated label
    garbage.push(vec![
        0x12, 0x34, 0x01, 0x00, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0x3f, b'a',
    ]);
    let mut x: u32 = 0x2545_f491;
    garbage.push(
        (0..700)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect(),
    );
    for g in &garbage {
        sock.send_to(g, addr).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let m = udp_query(addr, &query("SiteA.microsoft.com.", RecordType::MX)).await;
    assert_eq!(
        mx_answers(&m),
        vec![(10, "server1.sitea.microsoft.com.".into())]
    );
    // and garbage on TCP: a connection sending junk is dropped, the next one is served
    let mut junk = TcpStream::connect(addr).await.unwrap();
    junk.write_all(&[0x00, 0x05, 0xde, 0xad, 0xbe, 0xef, 0x00])
        .await
        .unwrap();
    junk.write_all(&garbage[6]).await.unwrap();
    drop(junk);
    let m = tcp_query(addr, &query("SiteA.microsoft.com.", RecordType::MX)).await;
    assert_eq!(
        mx_answers(&m),
        vec![(10, "server1.sitea.microsoft.com.".into())]
    );
    let fresh = MxResolver::new(addr);
    assert_eq!(
        fresh.mail_hosts("SiteB.microsoft.com").await.unwrap()[0].addrs,
        vec![ip("10.10.10.15")]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn dead_server_is_a_temporary_failure() {
    // a socket that swallows queries: every attempt times out
    let silent = UdpSocket::bind(LOOPBACK).await.unwrap();
    let resolver = MxResolver::new(silent.local_addr().unwrap());
    let err = timeout(
        Duration::from_secs(30),
        resolver.mail_hosts("microsoft.com"),
    )
    .await
    .expect("gives up")
    .unwrap_err();
    assert!(matches!(err, ResolveError::Temporary(_)), "{err:?}");
    assert!(!err.is_permanent());

    // a stopped server
    let (server, _) = start().await;
    let addr = server.local_addr();
    server.shutdown().await;
    let err = MxResolver::new(addr)
        .host_addrs("Server1.SiteA.microsoft.com")
        .await
        .unwrap_err();
    assert!(matches!(err, ResolveError::Temporary(_)), "{err:?}");
}

#[tokio::test]
async fn zones_from_toml_and_bad_specs() {
    let zones: Vec<ZoneSpec> = toml::from_str::<toml::Table>(
        r#"
        [[zone]]
        origin = "microsoft.com"
        mx = [{ name = "SiteA.microsoft.com", preference = 10, exchange = "Server1.SiteA.microsoft.com" }]
        a = [{ name = "Server1.SiteA.microsoft.com", addr = "10.10.10.10" }]

        [[zone]]
        origin = "lab.example"
        "#,
    )
    .unwrap()["zone"]
        .clone()
        .try_into()
        .unwrap();
    assert_eq!(zones[0].mx[0].preference, 10);
    assert!(zones[1].ptr.is_empty());
    assert!(toml::from_str::<ZoneSpec>("origin = \"x.example\"\ntxt = []\n").is_err());
    assert!(toml::from_str::<ZoneSpec>("origin = \"x.example\"\na = [{ name = \"h.x.example\", addr = \"10.0.0.1\", ttl = 5 }]\n").is_err());

    let server = DnsServer::start(LOOPBACK, &zones).await.unwrap();
    let resolver = MxResolver::new(server.local_addr());
    assert_eq!(
        resolver.mail_hosts("sitea.microsoft.com").await.unwrap()[0].addrs,
        vec![ip("10.10.10.10")]
    );
    // an existing empty zone: the apex exists, so no MX and no A is "no host"
    assert!(matches!(
        resolver.mail_hosts("lab.example").await,
        Err(ResolveError::NoHost(_))
    ));

    // the port is taken now
    assert!(DnsServer::start(server.local_addr(), &zones).await.is_err());
    // records outside their zone are refused
    let mut bad = zones.clone();
    bad[1].a.push(a("host.microsoft.com", "10.0.0.1"));
    assert!(DnsServer::start(LOOPBACK, &bad).await.is_err());
    server.shutdown().await;
}

#[tokio::test]
async fn drop_stops_the_server() {
    let (server, _) = start().await;
    let addr = server.local_addr();
    drop(server);
    // the sockets are released: the same port can be bound again
    let mut rebound = None;
    for _ in 0..50 {
        if let Ok(s) = DnsServer::start(addr, &kb_zones()).await {
            rebound = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rebound = rebound.expect("port released after drop");
    assert_eq!(rebound.local_addr(), addr);
    rebound.shutdown().await;
}

#[tokio::test]
async fn large_answers_fall_back_to_tcp() {
    // 150 A records do not fit a UDP reply (EDNS 1232 bytes): the server truncates, the
    // resolver asks again over TCP and gets them all
    let zone = ZoneSpec {
        origin: "big.example".into(),
        mx: vec![],
        a: (0..150u8)
            .map(|i| a("pool.big.example", &format!("10.20.0.{i}")))
            .collect(),
        ptr: vec![],
    };
    let server = DnsServer::start(LOOPBACK, &[zone]).await.unwrap();
    let over_udp = udp_query(
        server.local_addr(),
        &query("pool.big.example.", RecordType::A),
    )
    .await;
    assert!(over_udp.metadata.truncation, "udp reply is truncated");
    let hosts = MxResolver::new(server.local_addr())
        .mail_hosts("pool.big.example")
        .await
        .unwrap();
    assert_eq!(hosts[0].addrs.len(), 150);
    server.shutdown().await;
}
