//! The lab's own authoritative DNS server.
//!
//! A lab is its own little Internet: KB Q196927 (prerequisites 3 and 4) has every site publish
//! an MX record for its e-mail domain and an A record for its mail host, and the IMS falls back
//! to DNS MX/A lookups (RFC 5321 §5.1) when neither the E-Mail Domain table nor a Connected
//! Sites routing address applies (DESIGN §3). [`DnsServer`] serves a scenario's zones
//! ([`ZoneSpec`]) over UDP and TCP on one socket address (RFC 1035 §4.2), using hickory-server's
//! in-memory zone handlers.
//!
//! What is served:
//! - every [`ZoneSpec`] becomes a primary zone with an automatic SOA (serial 1, negative TTL
//!   [`NEGATIVE_TTL`] s) and NS record (`ns.<origin>`, with an A record for it when the server
//!   is bound to a specific IPv4 address and the zone does not define that name itself);
//! - [`PtrSpec`] records go to the most specific zone containing their `in-addr.arpa` name; when
//!   there is none, the server creates the classful reverse zone (`c.b.a.in-addr.arpa` for
//!   `a.b.c.d`);
//! - unless a zone spec is the root itself, the server is also authoritative for the root zone,
//!   so names outside every zone get an authoritative NXDOMAIN rather than REFUSED: in a lab
//!   there is no other DNS, and a mail domain that is not in it does not exist.
//!
//! Names compare case-insensitively (RFC 4343) and are answered with the case they were
//! declared in. All records carry a TTL of [`RECORD_TTL`] seconds.

#![forbid(unsafe_code)]

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, bail};
use hickory_proto::rr::{
    LowerName, Name, RData, Record, RecordType,
    rdata::{A, MX, NS, PTR, SOA},
};
use hickory_server::{
    Server,
    store::in_memory::InMemoryZoneHandler,
    zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType},
};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, UdpSocket};

/// TTL of every served record, in seconds. Short, so a lab that restarts its DNS with other
/// zones is seen quickly.
pub const RECORD_TTL: u32 = 30;

/// SOA MINIMUM of every zone: the TTL of negative answers (RFC 2308 §4), in seconds.
pub const NEGATIVE_TTL: u32 = 5;

/// How long an idle TCP client may keep its connection before the server closes it.
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// One zone of a scenario, e.g. KB Q196927's `microsoft.com` as TOML:
///
/// ```toml
/// origin = "microsoft.com"
/// mx = [{ name = "SiteA.microsoft.com", preference = 10, exchange = "Server1.SiteA.microsoft.com" }]
/// a = [{ name = "Server1.SiteA.microsoft.com", addr = "10.10.10.10" }]
/// ptr = [{ addr = "10.10.10.10", name = "Server1.SiteA.microsoft.com" }]
/// ```
///
/// Names are absolute, written without the trailing dot (one is accepted). MX and A owner
/// names must lie inside `origin`; PTR records are served under `in-addr.arpa` whatever zone
/// lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneSpec {
    /// Zone apex, e.g. `"microsoft.com"`.
    pub origin: String,
    /// MX records (RFC 1035 §3.3.9).
    #[serde(default)]
    pub mx: Vec<MxSpec>,
    /// A records (RFC 1035 §3.4.1).
    #[serde(default)]
    pub a: Vec<ASpec>,
    /// PTR records for reverse lookups (RFC 1035 §3.5).
    #[serde(default)]
    pub ptr: Vec<PtrSpec>,
}

/// An MX record: mail for `name` goes to `exchange`, lower `preference` first (RFC 5321 §5.1).
/// `exchange = "."` publishes a null MX (RFC 7505: the domain accepts no mail; use
/// preference 0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MxSpec {
    /// Owner name (the mail domain), e.g. `"SiteA.microsoft.com"`.
    pub name: String,
    /// Preference, lower is tried first.
    pub preference: u16,
    /// Mail exchanger host name, e.g. `"Server1.SiteA.microsoft.com"`, or `"."`.
    pub exchange: String,
}

/// An A record: host `name` has IPv4 address `addr`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ASpec {
    /// Host name, e.g. `"ServerA.SiteA.microsoft.com"`.
    pub name: String,
    /// Its address.
    pub addr: Ipv4Addr,
}

/// A PTR record: address `addr` maps back to host `name` (`d.c.b.a.in-addr.arpa`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PtrSpec {
    /// The address, e.g. `10.10.10.10`.
    pub addr: Ipv4Addr,
    /// The host name it maps to.
    pub name: String,
}

/// A running lab DNS server (UDP and TCP on one address).
///
/// Dropping the handle stops the server (its tasks are aborted); [`DnsServer::shutdown`] stops
/// it gracefully and waits until the sockets are closed.
pub struct DnsServer {
    server: Server<Catalog>,
    local_addr: SocketAddr,
}

impl std::fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsServer")
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

impl DnsServer {
    /// Bind UDP and TCP on `bind` and serve `zones`. With port 0 an ephemeral port free for
    /// both protocols is chosen; [`DnsServer::local_addr`] tells which.
    ///
    /// Errors: an invalid name or origin, a duplicate zone origin, an MX/A record outside its
    /// zone, or a socket that cannot be bound (address in use, privileged port).
    pub async fn start(bind: SocketAddr, zones: &[ZoneSpec]) -> anyhow::Result<DnsServer> {
        let catalog = build_catalog(zones, bind.ip())?;
        let (udp, tcp) = bind_both(bind).await?;
        let local_addr = udp.local_addr().context("udp local address")?;
        let mut server = Server::new(catalog);
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE_TIMEOUT, 32);
        tracing::info!(
            addr = %local_addr,
            zones = ?zones.iter().map(|z| z.origin.as_str()).collect::<Vec<_>>(),
            "lab dns server listening"
        );
        Ok(DnsServer { server, local_addr })
    }

    /// The address the server answers on (UDP and TCP), with the actual port.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stop accepting queries, wait for the server tasks to end and close the sockets.
    pub async fn shutdown(mut self) {
        if let Err(e) = self.server.shutdown_gracefully().await {
            tracing::warn!(error = %e, addr = %self.local_addr, "lab dns server stopped with an error");
        }
    }
}

/// Bind a UDP socket and a TCP listener on the same address. For port 0 the TCP listener takes
/// the port the UDP socket got, retrying with a new port if that one is taken for TCP.
async fn bind_both(bind: SocketAddr) -> anyhow::Result<(UdpSocket, TcpListener)> {
    let attempts = if bind.port() == 0 { 16 } else { 1 };
    let mut last_err = None;
    for _ in 0..attempts {
        let udp = UdpSocket::bind(bind)
            .await
            .with_context(|| format!("binding dns udp socket on {bind}"))?;
        let addr = udp.local_addr().context("udp local address")?;
        match TcpListener::bind(addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => {
                last_err = Some(
                    anyhow::Error::new(e).context(format!("binding dns tcp listener on {addr}")),
                )
            }
        }
    }
    Err(last_err.unwrap_or_else(|| anyhow::anyhow!("binding dns sockets on {bind}")))
}

/// Parse an absolute domain name given with or without the trailing dot; `""` and `"."` are
/// the root.
fn parse_name(s: &str) -> anyhow::Result<Name> {
    let t = s.trim();
    if t.is_empty() || t == "." {
        return Ok(Name::root());
    }
    let mut name = Name::from_ascii(t).with_context(|| format!("invalid domain name {s:?}"))?;
    name.set_fqdn(true);
    Ok(name)
}

/// `a.b.c.d` → `d.c.b.a.in-addr.arpa.` (RFC 1035 §3.5).
fn reverse_name(addr: Ipv4Addr) -> anyhow::Result<Name> {
    let [a, b, c, d] = addr.octets();
    parse_name(&format!("{d}.{c}.{b}.{a}.in-addr.arpa"))
}

/// The classful /24 reverse zone for `addr`: `c.b.a.in-addr.arpa.`.
fn reverse_zone(addr: Ipv4Addr) -> anyhow::Result<Name> {
    let [a, b, c, _] = addr.octets();
    parse_name(&format!("{c}.{b}.{a}.in-addr.arpa"))
}

struct ZoneBuild {
    origin: Name,
    records: Vec<Record>,
}

/// The zones being assembled, keyed by lower-cased origin.
#[derive(Default)]
struct Zones(BTreeMap<LowerName, ZoneBuild>);

impl Zones {
    fn add_zone(&mut self, origin: Name) -> anyhow::Result<()> {
        let key = LowerName::new(&origin);
        if self.0.contains_key(&key) {
            bail!("duplicate dns zone {origin}");
        }
        self.0.insert(
            key,
            ZoneBuild {
                origin,
                records: Vec::new(),
            },
        );
        Ok(())
    }

    /// The most specific zone containing `name`.
    fn zone_for(&mut self, name: &Name) -> Option<&mut ZoneBuild> {
        self.0
            .values_mut()
            .filter(|z| z.origin.zone_of(name))
            .max_by_key(|z| z.origin.num_labels())
    }

    fn insert(&mut self, name: Name, rdata: RData) -> anyhow::Result<()> {
        let zone = self
            .zone_for(&name)
            .with_context(|| format!("no dns zone contains {name}"))?;
        zone.records
            .push(Record::from_rdata(name, RECORD_TTL, rdata));
        Ok(())
    }
}

/// Turn zone specs into a catalog of in-memory primary zones (see the module docs).
fn build_catalog(specs: &[ZoneSpec], bind_ip: IpAddr) -> anyhow::Result<Catalog> {
    let mut zones = Zones::default();
    let mut origins = Vec::with_capacity(specs.len());
    for spec in specs {
        let origin =
            parse_name(&spec.origin).with_context(|| format!("zone origin {:?}", spec.origin))?;
        zones.add_zone(origin.clone())?;
        origins.push(origin);
    }

    for (spec, origin) in specs.iter().zip(&origins) {
        let in_zone = |name: &Name, what: &str| -> anyhow::Result<()> {
            if origin.zone_of(name) {
                Ok(())
            } else {
                bail!("{what} record {name} is outside zone {origin}")
            }
        };
        for mx in &spec.mx {
            let name = parse_name(&mx.name)?;
            in_zone(&name, "mx")?;
            let exchange = parse_name(&mx.exchange)?;
            zones.insert(name, RData::MX(MX::new(mx.preference, exchange)))?;
        }
        for a in &spec.a {
            let name = parse_name(&a.name)?;
            in_zone(&name, "a")?;
            zones.insert(name, RData::A(A(a.addr)))?;
        }
    }

    // PTR records: into a declared zone when one contains the reverse name, else into the
    // classful reverse zone (created on first use).
    for spec in specs {
        for ptr in &spec.ptr {
            let owner = reverse_name(ptr.addr)?;
            if zones.zone_for(&owner).is_none() {
                zones.add_zone(reverse_zone(ptr.addr)?)?;
            }
            zones.insert(owner, RData::PTR(PTR(parse_name(&ptr.name)?)))?;
        }
    }

    if !zones.0.contains_key(&LowerName::new(&Name::root())) {
        zones.add_zone(Name::root())?;
    }

    let glue = match bind_ip {
        IpAddr::V4(v4) if !v4.is_unspecified() => Some(v4),
        _ => None,
    };

    let mut catalog = Catalog::new();
    for zone in zones.0.into_values() {
        let origin = zone.origin;
        let ns_host = parse_name("ns")?
            .append_domain(&origin)
            .with_context(|| format!("name server name for zone {origin}"))?;
        let hostmaster = parse_name("hostmaster")?
            .append_domain(&origin)
            .with_context(|| format!("hostmaster name for zone {origin}"))?;
        let soa = SOA::new(
            ns_host.clone(),
            hostmaster,
            1,
            3600,
            600,
            86_400,
            NEGATIVE_TTL,
        );

        let mut handler: InMemoryZoneHandler =
            InMemoryZoneHandler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
        let mut upsert = |record: Record| -> anyhow::Result<()> {
            let desc = format!("{} {}", record.name, record.record_type());
            if handler.upsert_mut(record, 1) {
                Ok(())
            } else {
                bail!("cannot add {desc} to dns zone {origin}")
            }
        };
        upsert(Record::from_rdata(
            origin.clone(),
            RECORD_TTL,
            RData::SOA(soa),
        ))?;
        upsert(Record::from_rdata(
            origin.clone(),
            RECORD_TTL,
            RData::NS(NS(ns_host.clone())),
        ))?;
        let ns_defined = zone.records.iter().any(|r| {
            r.record_type() == RecordType::A && LowerName::new(&r.name) == LowerName::new(&ns_host)
        });
        if let (Some(ip), false) = (glue, ns_defined) {
            upsert(Record::from_rdata(ns_host, RECORD_TTL, RData::A(A(ip))))?;
        }
        for record in zone.records {
            upsert(record)?;
        }
        let handler: Arc<dyn ZoneHandler> = Arc::new(handler);
        catalog.upsert(LowerName::new(&origin), vec![handler]);
    }
    Ok(catalog)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(origin: &str) -> ZoneSpec {
        ZoneSpec {
            origin: origin.into(),
            mx: vec![],
            a: vec![],
            ptr: vec![],
        }
    }

    #[test]
    fn names_parse_with_or_without_dot() {
        assert_eq!(
            parse_name("SiteA.microsoft.com").unwrap(),
            parse_name("sitea.microsoft.com.").unwrap()
        );
        assert!(parse_name(".").unwrap().is_root());
        assert_eq!(
            reverse_name(Ipv4Addr::new(10, 10, 10, 15))
                .unwrap()
                .to_string(),
            "15.10.10.10.in-addr.arpa."
        );
        assert_eq!(
            reverse_zone(Ipv4Addr::new(10, 10, 10, 15))
                .unwrap()
                .to_string(),
            "10.10.10.in-addr.arpa."
        );
    }

    #[test]
    fn rejects_bad_specs() {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert!(build_catalog(&[zone("microsoft.com"), zone("Microsoft.COM.")], ip).is_err());
        let mut z = zone("microsoft.com");
        z.a.push(ASpec {
            name: "host.example.org".into(),
            addr: Ipv4Addr::LOCALHOST,
        });
        let err = build_catalog(&[z], ip).err().expect("refused").to_string();
        assert!(err.contains("outside zone"), "{err}");
        let mut z = zone("microsoft.com");
        z.mx.push(MxSpec {
            name: "bad..name".into(),
            preference: 10,
            exchange: "x.microsoft.com".into(),
        });
        assert!(build_catalog(&[z], ip).is_err());
    }
}
