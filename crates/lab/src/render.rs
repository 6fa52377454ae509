//! Rendering a scenario into the files a backend runs: one server config per server and the
//! lab DNS zones, with scenario addresses replaced by the backend's real ones.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use mtalab_server::config::{
    AddressPair, AdminConfig, Config, ConnectedSite, EmailDomainRoute, ImsConfig, Named, RecipientConfig, ServerSection,
    SiteAddressingConfig, X400Config,
};

use crate::dns::ZoneSpec;
use crate::mapping::AddressMap;
use crate::scenario::{Scenario, Server};

/// The ports every server of a lab uses (each server has its own address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ports {
    /// SMTP (25 in containers).
    pub smtp: u16,
    /// Admin API.
    pub admin: u16,
    /// Lab DNS (53 in containers).
    pub dns: u16,
}

/// Build the configuration of one server.
pub fn server_config(sc: &Scenario, srv: &Server, map: &AddressMap, ports: Ports, data_dir: PathBuf) -> Result<Config, String> {
    let site = sc.site_of(srv);
    let org = sc.org_of(site).to_string();
    let ip = IpAddr::V4(map.real(srv.address));
    let ims = match &srv.ims {
        None => None,
        Some(i) => {
            let mut c = ImsConfig::disabled();
            c.listen = SocketAddr::new(ip, ports.smtp);
            c.hostname = srv.hostname.clone();
            c.remote_port = ports.smtp;
            c.source_address = Some(ip);
            c.dns_servers = vec![SocketAddr::new(IpAddr::V4(map.real(sc.dns.address)), ports.dns)];
            c.address_space = i.address_space.clone();
            c.relay_from = i
                .relay_from
                .iter()
                .map(|n| map.real_net(*n).map(ipnet::IpNet::V4))
                .collect::<Result<_, _>>()?;
            c.reroute = i.reroute.clone();
            c.email_domains = i
                .email_domains
                .iter()
                .map(|e| EmailDomainRoute { domain: e.domain.clone(), hosts: e.hosts.iter().map(|h| map.real_host(h)).collect() })
                .collect();
            c.connected_sites = i
                .connected_sites
                .iter()
                .map(|s| ConnectedSite { site: s.site.clone(), organization: None, routing_address: s.routing_address.clone(), cost: s.cost })
                .collect();
            if let Some(r) = &i.retry_intervals_secs {
                c.retry_intervals_secs = r.clone();
            }
            if let Some(e) = i.expire_secs {
                c.expire_secs = e;
            }
            Some(c)
        }
    };
    Ok(Config {
        organization: Named { name: org.clone() },
        site: Named { name: site.name.clone() },
        server: ServerSection {
            name: srv.name.clone(),
            data_dir,
            time_scale: sc.scenario.time_scale,
            scenario_address: Some(IpAddr::V4(srv.address)),
            interfaces: Vec::new(),
            routes: Vec::new(),
            emulate_source_selection: false,
            address_map: map.pairs().into_iter().map(|(s, r)| AddressPair { scenario: IpAddr::V4(s), real: IpAddr::V4(r) }).collect(),
        },
        site_addressing: SiteAddressingConfig {
            smtp: site.smtp_address.clone(),
            smtp_generator: site.smtp_generator.clone(),
            x400: X400Config { c: site.x400_country.clone(), a: " ".into(), p: org, o: site.name.clone() },
        },
        recipients: srv
            .recipients
            .iter()
            .map(|r| RecipientConfig { alias: r.alias.clone(), given: r.given.clone(), surname: r.surname.clone(), display_name: None })
            .collect(),
        ims,
        mta: None,
        admin: AdminConfig { listen: SocketAddr::new(ip, ports.admin) },
        registry: BTreeMap::new(),
        base_dir: PathBuf::new(),
    })
}

/// The DNS zones with A and PTR addresses mapped.
pub fn zones(sc: &Scenario, map: &AddressMap) -> Vec<ZoneSpec> {
    sc.dns
        .zones
        .iter()
        .map(|z| {
            let mut z = z.clone();
            for a in &mut z.a {
                a.addr = map.real(a.addr);
            }
            for p in &mut z.ptr {
                p.addr = map.real(p.addr);
            }
            z
        })
        .collect()
}
