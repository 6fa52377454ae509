//! Mail host resolution for the IMS: DNS MX/A lookups against one configured name server.
//!
//! The IMS routes outbound mail through its E-Mail Domain table, then Connected Sites routing
//! addresses, then DNS (DESIGN §3). In a lab the only DNS is the lab's own authoritative
//! server, so [`MxResolver`] talks to exactly that server (UDP, TCP on truncation or failure),
//! reads no system configuration (`resolv.conf`, hosts file) and appends no search domains.
//! The answers follow RFC 5321 §5.1 (MX, implicit MX, preference order) and RFC 7505 (null MX).

#![forbid(unsafe_code)]

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use hickory_resolver::{
    TokioResolver,
    config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts},
    net::{DnsError, NetError, runtime::TokioRuntimeProvider},
    proto::rr::{Name, RData, Record},
};

/// Timeout of one DNS query attempt.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// Tries per query in all (the first and one retry), each bounded by [`QUERY_TIMEOUT`].
pub const QUERY_ATTEMPTS: usize = 2;
/// Longest time a positive answer is cached, whatever its TTL says.
pub const MAX_POSITIVE_TTL: Duration = Duration::from_secs(60);
/// Longest time a negative answer (NXDOMAIN / no data) is cached.
pub const MAX_NEGATIVE_TTL: Duration = Duration::from_secs(5);

/// One mail host to try, from an MX record or the implicit MX (RFC 5321 §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailHost {
    /// MX preference (lower first); 0 for the implicit MX and address literals.
    pub preference: u16,
    /// Host name without the trailing dot, e.g. `"Server1.SiteA.microsoft.com"`, or the address
    /// literal as given (`"[10.10.10.15]"`).
    pub name: String,
    /// Its addresses (A records; AAAA only when there is no A record); never empty.
    pub addrs: Vec<IpAddr>,
}

/// Why no mail host could be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The domain or host does not exist, or has neither MX nor address records, or none of
    /// its mail exchangers has an address. Permanent: the IMS returns an NDR.
    #[error("no mail host for {0}")]
    NoHost(String),
    /// The domain publishes a null MX (RFC 7505 §3): it accepts no mail. Permanent.
    #[error("{0} does not accept mail (null mx)")]
    NullMx(String),
    /// Timeout, SERVFAIL, REFUSED, network error: try again later (RFC 5321 §4.5.4.1).
    #[error("temporary dns failure: {0}")]
    Temporary(String),
}

impl ResolveError {
    /// `true` for [`ResolveError::NoHost`] and [`ResolveError::NullMx`] (the message is
    /// returned as undeliverable), `false` for [`ResolveError::Temporary`] (it stays queued).
    pub fn is_permanent(&self) -> bool {
        !matches!(self, ResolveError::Temporary(_))
    }
}

/// A DNS resolver bound to one name server (the lab DNS).
///
/// Configuration: only `dns_server` (UDP first, TCP when a reply is truncated or UDP fails),
/// no system configuration, no search domains, [`QUERY_TIMEOUT`] × [`QUERY_ATTEMPTS`], a small
/// cache that honours record TTLs up to [`MAX_POSITIVE_TTL`] / [`MAX_NEGATIVE_TTL`].
#[derive(Clone)]
pub struct MxResolver {
    resolver: Result<TokioResolver, String>,
    server: SocketAddr,
}

impl std::fmt::Debug for MxResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MxResolver")
            .field("server", &self.server)
            .finish()
    }
}

impl MxResolver {
    /// A resolver that asks only `dns_server` (any port). Never fails: should the resolver
    /// not be constructible, every lookup reports [`ResolveError::Temporary`].
    pub fn new(dns_server: SocketAddr) -> MxResolver {
        let mut ns = NameServerConfig::udp_and_tcp(dns_server.ip());
        for c in &mut ns.connections {
            c.port = dns_server.port();
        }
        let config = ResolverConfig::from_name_servers(vec![ns]);
        let mut opts = ResolverOpts::default();
        opts.timeout = QUERY_TIMEOUT;
        // hickory counts retries after the first try
        opts.attempts = QUERY_ATTEMPTS - 1;
        opts.ndots = 0;
        opts.num_concurrent_reqs = 1;
        opts.try_tcp_on_error = true;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.cache_size = 256;
        opts.positive_max_ttl = Some(MAX_POSITIVE_TTL);
        opts.negative_max_ttl = Some(MAX_NEGATIVE_TTL);
        opts.preserve_intermediates = true;
        let resolver = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(opts)
            .build()
            .map_err(|e| format!("cannot build dns resolver for {dns_server}: {e}"));
        MxResolver {
            resolver,
            server: dns_server,
        }
    }

    /// The name server this resolver asks.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    fn resolver(&self) -> Result<&TokioResolver, ResolveError> {
        self.resolver
            .as_ref()
            .map_err(|e| ResolveError::Temporary(e.clone()))
    }

    /// The mail hosts for `domain`, in the order to try them (RFC 5321 §5.1):
    ///
    /// - MX records sorted by preference (equal preferences keep the server's order); each
    ///   exchange resolved to its addresses; exchanges without addresses are left out;
    /// - no MX records but the domain exists → the domain's own addresses as an implicit MX of
    ///   preference 0;
    /// - an address literal `"[10.10.10.15]"` → that address, without DNS.
    ///
    /// Errors: [`ResolveError::NullMx`] when an MX record has the root as exchange (RFC 7505);
    /// [`ResolveError::NoHost`] for NXDOMAIN, no MX and no address, an invalid name, or MX
    /// exchanges none of which has an address; [`ResolveError::Temporary`] for timeouts,
    /// SERVFAIL and other failures (also when some exchange lookups failed temporarily and no
    /// usable host remains).
    pub async fn mail_hosts(&self, domain: &str) -> Result<Vec<MailHost>, ResolveError> {
        if let Some(ip) = address_literal(domain) {
            return Ok(vec![MailHost {
                preference: 0,
                name: domain.trim().to_owned(),
                addrs: vec![ip],
            }]);
        }
        let resolver = self.resolver()?;
        let name = absolute_name(domain).ok_or_else(|| ResolveError::NoHost(domain.to_owned()))?;
        let mut mxs: Vec<(u16, Name)> = match resolver.mx_lookup(name.clone()).await {
            Ok(lookup) => lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::MX(mx) => Some((mx.preference, mx.exchange.clone())),
                    _ => None,
                })
                .collect(),
            Err(e) => match classify(&e, domain) {
                NoData::Empty => Vec::new(),
                NoData::NxDomain => return Err(ResolveError::NoHost(domain.to_owned())),
                NoData::Failed(err) => return Err(err),
            },
        };

        if mxs.is_empty() {
            // RFC 5321 §5.1: no MX → the domain itself is the implicit MX, preference 0.
            let addrs = self.addrs_of(resolver, &name, domain).await?;
            return Ok(vec![MailHost {
                preference: 0,
                name: display(&name),
                addrs,
            }]);
        }
        if mxs.iter().any(|(_, exchange)| exchange.is_root()) {
            return Err(ResolveError::NullMx(domain.to_owned()));
        }

        mxs.sort_by_key(|(pref, _)| *pref);
        let mut hosts: Vec<MailHost> = Vec::with_capacity(mxs.len());
        let mut temporary: Option<ResolveError> = None;
        for (preference, exchange) in mxs {
            let host = display(&exchange);
            if hosts.iter().any(|h| h.name.eq_ignore_ascii_case(&host)) {
                continue;
            }
            match self.addrs_of(resolver, &exchange, &host).await {
                Ok(addrs) => hosts.push(MailHost {
                    preference,
                    name: host,
                    addrs,
                }),
                Err(ResolveError::Temporary(msg)) => {
                    tracing::debug!(%domain, exchange = %host, error = %msg, "mx host lookup failed");
                    temporary.get_or_insert(ResolveError::Temporary(msg));
                }
                Err(e) => {
                    tracing::debug!(%domain, exchange = %host, error = %e, "mx host has no address");
                }
            }
        }
        if hosts.is_empty() {
            return Err(temporary.unwrap_or_else(|| ResolveError::NoHost(domain.to_owned())));
        }
        Ok(hosts)
    }

    /// The PTR name of `ip` (`a.b.c.d` → `d.c.b.a.in-addr.arpa`, IPv6 → `ip6.arpa` nibbles),
    /// trailing dot removed; `Ok(None)` when there is no PTR record (NXDOMAIN or no data).
    /// Errors: [`ResolveError::Temporary`] only.
    pub async fn reverse(&self, ip: IpAddr) -> Result<Option<String>, ResolveError> {
        let resolver = self.resolver()?;
        let name = absolute_name(&reverse_name(ip))
            .ok_or_else(|| ResolveError::Temporary(format!("cannot form reverse name of {ip}")))?;
        match resolver.reverse_lookup(name).await {
            Ok(lookup) => Ok(lookup.answers().iter().find_map(|r| match &r.data {
                RData::PTR(ptr) => Some(display(&ptr.0)),
                _ => None,
            })),
            Err(e) => match classify(&e, &ip.to_string()) {
                NoData::Empty | NoData::NxDomain => Ok(None),
                NoData::Failed(err) => Err(err),
            },
        }
    }

    /// The addresses of host `name` (A records; AAAA only when there is no A record); an IP address
    /// given as text is returned as is. Used for E-Mail Domain entries given as host names
    /// (KB Q196927 "Forward all messages for this domain to host").
    ///
    /// Errors: [`ResolveError::NoHost`] (no such host, or no address records),
    /// [`ResolveError::Temporary`].
    pub async fn host_addrs(&self, name: &str) -> Result<Vec<IpAddr>, ResolveError> {
        let trimmed = name.trim().trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = trimmed.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let resolver = self.resolver()?;
        let host = absolute_name(name).ok_or_else(|| ResolveError::NoHost(name.to_owned()))?;
        self.addrs_of(resolver, &host, name).await
    }

    /// A records of `host`; AAAA records only when the name has no A record (the lab
    /// publishes IPv4 only). A failed A query is not followed by an AAAA query.
    async fn addrs_of(
        &self,
        resolver: &TokioResolver,
        host: &Name,
        label: &str,
    ) -> Result<Vec<IpAddr>, ResolveError> {
        let v4 = match resolver.ipv4_lookup(host.clone()).await {
            Ok(lookup) => collect_addrs(lookup.answers()),
            Err(e) => match classify(&e, label) {
                NoData::NxDomain => return Err(ResolveError::NoHost(label.to_owned())),
                NoData::Empty => Vec::new(),
                NoData::Failed(err) => return Err(err),
            },
        };
        if !v4.is_empty() {
            return Ok(v4);
        }
        match resolver.ipv6_lookup(host.clone()).await {
            Ok(lookup) => match collect_addrs(lookup.answers()) {
                v6 if v6.is_empty() => Err(ResolveError::NoHost(label.to_owned())),
                v6 => Ok(v6),
            },
            Err(e) => match classify(&e, label) {
                NoData::Empty | NoData::NxDomain => Err(ResolveError::NoHost(label.to_owned())),
                NoData::Failed(err) => Err(err),
            },
        }
    }
}

/// The A/AAAA addresses among `records`, in order, without duplicates.
fn collect_addrs(records: &[Record]) -> Vec<IpAddr> {
    let mut addrs: Vec<IpAddr> = Vec::new();
    for r in records {
        let ip = match &r.data {
            RData::A(a) => IpAddr::V4(a.0),
            RData::AAAA(aaaa) => IpAddr::V6(aaaa.0),
            _ => continue,
        };
        if !addrs.contains(&ip) {
            addrs.push(ip);
        }
    }
    addrs
}

/// How a failed lookup ended.
enum NoData {
    /// The name exists but has no record of the type asked (NOERROR, empty answer).
    Empty,
    /// The name does not exist (NXDOMAIN).
    NxDomain,
    /// Anything else: timeout, SERVFAIL, REFUSED, I/O.
    Failed(ResolveError),
}

fn classify(e: &NetError, what: &str) -> NoData {
    if e.is_nx_domain() {
        return NoData::NxDomain;
    }
    if let NetError::Dns(DnsError::NoRecordsFound(_)) = e {
        return NoData::Empty;
    }
    NoData::Failed(ResolveError::Temporary(format!("{what}: {e}")))
}

/// `"[10.0.0.1]"` / `"[IPv6:::1]"` (RFC 5321 §4.1.3) → the address.
fn address_literal(domain: &str) -> Option<IpAddr> {
    let inner = domain.trim().strip_prefix('[')?.strip_suffix(']')?;
    let inner = match inner.get(..5) {
        Some(p) if p.eq_ignore_ascii_case("IPv6:") => &inner[5..],
        _ => inner,
    };
    inner.parse().ok()
}

/// Parse `s` (with or without trailing dot) as an absolute name; `None` when invalid or empty.
fn absolute_name(s: &str) -> Option<Name> {
    let t = s.trim();
    if t.is_empty() || t == "." {
        return None;
    }
    let mut name = Name::from_ascii(t).ok()?;
    name.set_fqdn(true);
    Some(name)
}

/// A name as text without the trailing dot.
fn display(name: &Name) -> String {
    let s = name.to_string();
    s.strip_suffix('.').map(str::to_owned).unwrap_or(s)
}

/// The reverse-mapping name of `ip` (RFC 1035 §3.5, RFC 3596 §2.5), without trailing dot.
fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa")
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(72);
            for byte in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", byte & 0x0f, byte >> 4));
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_name("10.10.10.15".parse().unwrap()),
            "15.10.10.10.in-addr.arpa"
        );
        assert_eq!(
            reverse_name("2001:db8::1".parse().unwrap()),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
        );
    }

    #[test]
    fn address_literals() {
        assert_eq!(
            address_literal("[10.10.10.15]"),
            Some("10.10.10.15".parse().unwrap())
        );
        assert_eq!(address_literal("[IPv6:::1]"), Some("::1".parse().unwrap()));
        assert_eq!(address_literal("10.10.10.15"), None);
        assert_eq!(address_literal("[SiteB.microsoft.com]"), None);
    }

    #[test]
    fn names() {
        assert_eq!(
            display(&absolute_name("SiteA.microsoft.com").unwrap()),
            "SiteA.microsoft.com"
        );
        assert_eq!(
            display(&absolute_name("SiteA.microsoft.com.").unwrap()),
            "SiteA.microsoft.com"
        );
        assert!(absolute_name("").is_none());
        assert!(absolute_name("a..b").is_none());
    }

    #[test]
    fn permanence() {
        assert!(ResolveError::NoHost("x".into()).is_permanent());
        assert!(ResolveError::NullMx("x".into()).is_permanent());
        assert!(!ResolveError::Temporary("x".into()).is_permanent());
        assert_eq!(
            ResolveError::NullMx("example.com".into()).to_string(),
            "example.com does not accept mail (null mx)"
        );
    }
}
