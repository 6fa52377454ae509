//! IMS routing decisions (DESIGN §3): which recipients are local, which may be relayed, and
//! the next hop of a remote domain — E-Mail Domain table, then Connected Sites routing
//! addresses, then DNS MX/A.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::config::{ConnectedSite, EmailDomainRoute, ImsConfig, RerouteEntry};

/// True when `domain` equals `pattern` or is a subdomain of it (whole labels only), ASCII
/// case-insensitive. `pattern` may start with `*.` (subdomains only) or be `*` (everything).
pub fn domain_matches(pattern: &str, domain: &str) -> bool {
    let p = pattern.trim_end_matches('.');
    let d = domain.trim_end_matches('.');
    if p == "*" {
        return true;
    }
    if let Some(rest) = p.strip_prefix("*.") {
        return d.len() > rest.len() + 1 && ends_with_label(d, rest);
    }
    d.eq_ignore_ascii_case(p) || ends_with_label(d, p)
}

fn ends_with_label(d: &str, suffix: &str) -> bool {
    d.len() > suffix.len()
        && d.as_bytes()[d.len() - suffix.len() - 1] == b'.'
        && d[d.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

/// Specificity of a match: the number of labels of the pattern (most specific wins).
fn specificity(pattern: &str) -> usize {
    if pattern == "*" { 0 } else { pattern.trim_start_matches("*.").split('.').count() }
}

/// Where a remote domain's mail goes next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextHop {
    /// "Forward all messages for this domain to host": the entry's hosts, in round-robin
    /// order starting at `start`.
    Hosts {
        /// The E-Mail Domain entry that matched.
        entry: String,
        /// Hosts (ip, ip:port or host name).
        hosts: Vec<String>,
        /// Round-robin start index.
        start: usize,
    },
    /// DNS MX (then A) of this domain.
    Dns {
        /// Domain to look up.
        domain: String,
    },
}

impl NextHop {
    /// A key grouping recipients that share a next hop.
    pub fn key(&self) -> String {
        match self {
            NextHop::Hosts { entry, .. } => format!("route:{}", entry.to_ascii_lowercase()),
            NextHop::Dns { domain } => format!("dns:{}", domain.to_ascii_lowercase()),
        }
    }
}

/// The routing tables of one IMS, rebuilt when settings change.
#[derive(Debug)]
pub struct Router {
    /// Domains delivered locally (site address domains, proxy domains, reroute domains).
    local_domains: Vec<String>,
    email_domains: Vec<EmailDomainRoute>,
    connected_sites: Vec<ConnectedSite>,
    reroute: Vec<RerouteEntry>,
    address_space: Vec<String>,
    relay_from: Vec<ipnet::IpNet>,
    rr: Vec<AtomicUsize>,
}

impl Router {
    /// Build from the IMS settings and the local domains the directory reports.
    pub fn new(ims: &ImsConfig, directory_domains: Vec<String>) -> Router {
        let mut local_domains = directory_domains;
        local_domains.sort();
        local_domains.dedup();
        Router {
            local_domains,
            rr: ims.email_domains.iter().map(|_| AtomicUsize::new(0)).collect(),
            email_domains: ims.email_domains.clone(),
            connected_sites: ims.connected_sites.clone(),
            reroute: ims.reroute.clone(),
            address_space: ims.address_space.clone(),
            relay_from: ims.relay_from.clone(),
        }
    }

    /// Is this domain delivered by this server: a local domain (exact), or a domain whose
    /// most specific reroute entry is `inbound`?
    pub fn is_local(&self, domain: &str) -> bool {
        let d = domain.trim_end_matches('.');
        self.local_domains.iter().any(|l| l.eq_ignore_ascii_case(d)) || self.reroute_entry(d).is_some_and(|e| e.is_inbound())
    }

    /// The most specific reroute entry matching `domain` (DESIGN §3: rightmost whole-subdomain match).
    pub fn reroute_entry(&self, domain: &str) -> Option<&RerouteEntry> {
        self.reroute.iter().filter(|e| domain_matches(&e.domain, domain)).max_by_key(|e| specificity(&e.domain))
    }

    /// Local domains (lowercase).
    pub fn local_domains(&self) -> &[String] {
        &self.local_domains
    }

    /// May `peer` relay through this IMS?
    pub fn may_relay(&self, peer: IpAddr) -> bool {
        self.relay_from.iter().any(|n| n.contains(&peer))
    }

    /// Is there a route for this remote domain (E-Mail Domain entry, Connected Site routing
    /// address, or the connector's address space)?
    pub fn has_route(&self, domain: &str) -> bool {
        self.email_domain(domain).is_some()
            || self.reroute_entry(domain).is_some()
            || self.connected_site(domain).is_some()
            || self.address_space.iter().any(|p| domain_matches(p, domain))
    }

    /// The Connected Site whose routing address domain is `domain` (or a parent of it).
    pub fn connected_site(&self, domain: &str) -> Option<&ConnectedSite> {
        self.connected_sites
            .iter()
            .filter(|c| domain_matches(c.routing_address.trim_start_matches('@'), domain))
            .min_by_key(|c| c.cost)
    }

    fn email_domain(&self, domain: &str) -> Option<usize> {
        self.email_domains
            .iter()
            .enumerate()
            .filter(|(_, r)| domain_matches(&r.domain, domain))
            .max_by_key(|(_, r)| specificity(&r.domain))
            .map(|(i, _)| i)
    }

    /// The next hop for a remote domain: the most specific E-Mail Domain entry; else a
    /// Connected Site whose routing address covers the domain (its routing domain's own
    /// E-Mail Domain entry, else its DNS); else DNS for the domain itself.
    pub fn next_hop(&self, domain: &str) -> NextHop {
        if let Some(e) = self.reroute_entry(domain)
            && !e.is_inbound()
            && !domain_matches(&e.route_to, domain)
        {
            return self.next_hop_direct(&e.route_to);
        }
        self.next_hop_direct(domain)
    }

    fn next_hop_direct(&self, domain: &str) -> NextHop {
        if let Some(i) = self.email_domain(domain) {
            let r = &self.email_domains[i];
            return NextHop::Hosts {
                entry: r.domain.clone(),
                hosts: r.hosts.clone(),
                start: self.rr[i].fetch_add(1, Ordering::Relaxed) % r.hosts.len(),
            };
        }
        if let Some(site) = self.connected_site(domain) {
            let routing = site.routing_address.trim_start_matches('@').to_string();
            if let Some(i) = self.email_domain(&routing) {
                let r = &self.email_domains[i];
                return NextHop::Hosts {
                    entry: r.domain.clone(),
                    hosts: r.hosts.clone(),
                    start: self.rr[i].fetch_add(1, Ordering::Relaxed) % r.hosts.len(),
                };
            }
            return NextHop::Dns { domain: routing };
        }
        NextHop::Dns { domain: domain.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_is_by_whole_labels() {
        assert!(domain_matches("SiteB.microsoft.com", "siteb.microsoft.com"));
        assert!(domain_matches("microsoft.com", "SiteB.microsoft.com"));
        assert!(!domain_matches("microsoft.com", "notmicrosoft.com"));
        assert!(domain_matches("*.microsoft.com", "SiteB.microsoft.com"));
        assert!(!domain_matches("*.microsoft.com", "microsoft.com"));
        assert!(domain_matches("*", "example.net"));
    }

    fn ims() -> ImsConfig {
        let text = r#"
listen = "127.0.0.1:2525"
address_space = ["*.microsoft.com", "microsoft.com"]
relay_from = ["127.10.10.0/24"]
[[email_domains]]
domain = "microsoft.com"
hosts = ["127.0.0.9"]
[[email_domains]]
domain = "SiteB.microsoft.com"
hosts = ["127.10.10.15", "127.10.10.16"]
[[connected_sites]]
site = "SiteC"
routing_address = "@SiteC.microsoft.com"
[[reroute]]
domain = "corp.example"
route_to = "<inbound>"
[[reroute]]
domain = "old.corp.example"
route_to = "SiteB.microsoft.com"
"#;
        toml::from_str(text).unwrap()
    }

    #[test]
    fn most_specific_entry_wins_and_round_robins() {
        let r = Router::new(&ims(), vec!["sitea.microsoft.com".into()]);
        let a = r.next_hop("SiteB.microsoft.com");
        let b = r.next_hop("siteb.microsoft.com");
        match (a, b) {
            (NextHop::Hosts { entry, hosts, start: s1 }, NextHop::Hosts { start: s2, .. }) => {
                assert_eq!(entry, "SiteB.microsoft.com");
                assert_eq!(hosts.len(), 2);
                assert_ne!(s1, s2);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(r.next_hop("SiteD.microsoft.com"), NextHop::Hosts { entry, .. } if entry == "microsoft.com"));
    }

    #[test]
    fn relay_needs_trust_and_route() {
        let r = Router::new(&ims(), vec!["sitea.microsoft.com".into()]);
        assert!(r.is_local("SiteA.microsoft.com"));
        assert!(r.may_relay("127.10.10.15".parse().unwrap()));
        assert!(!r.may_relay("127.0.0.1".parse().unwrap()));
        assert!(r.has_route("SiteC.microsoft.com"));
        assert!(!r.has_route("example.net"));
    }

    #[test]
    fn reroute_most_specific_entry_wins() {
        let r = Router::new(&ims(), vec![]);
        assert!(r.is_local("corp.example"));
        assert!(r.is_local("mail.corp.example"));
        assert!(!r.is_local("old.corp.example"));
        assert!(!r.is_local("x.old.corp.example"));
        assert!(r.has_route("x.old.corp.example"));
        assert!(matches!(r.next_hop("x.old.corp.example"), NextHop::Hosts { entry, .. } if entry == "SiteB.microsoft.com"));
    }
}
