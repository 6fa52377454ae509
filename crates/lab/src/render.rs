//! Rendering a scenario into the files a backend runs: one server config per server and the
//! lab DNS zones, with scenario addresses replaced by the backend's real ones.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use mtalab_server::config::{
    AddressPair, AdminConfig, Config, Interface, MtaConfig, StaticRoute, ConnectedSite, EmailDomainRoute, ImsConfig, Named, RecipientConfig, ServerSection,
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
    /// X.400 P1 over RFC 1006 (102 in containers).
    pub p1: u16,
}

/// Build the configuration of one server. `emulate_source_selection` is set on the local
/// backend, where the kernel cannot choose between interfaces that all live on `lo`.
pub fn server_config(sc: &Scenario, srv: &Server, map: &AddressMap, ports: Ports, data_dir: PathBuf, emulate_source_selection: bool) -> Result<Config, String> {
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
            interfaces: interfaces(sc, srv, map),
            routes: srv
                .routes
                .iter()
                .map(|r| {
                    Ok(StaticRoute {
                        destination: ipnet::IpNet::V4(map.real_net(r.destination)?),
                        interface: r.interface.clone(),
                        gateway: r.gateway.map(|g| IpAddr::V4(map.real(g))),
                    })
                })
                .collect::<Result<_, String>>()?,
            emulate_source_selection,
            apply_routes: false,
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
        mta: srv.mta.as_ref().map(|m| MtaConfig {
            max_queued_per_connector: MtaConfig::DEFAULT_MAX_QUEUED,
            listen: SocketAddr::new(ip, ports.p1),
            name: m.name.clone(),
            password: m.password.clone(),
            remote_port: ports.p1,
            selectors: Default::default(),
            connectors: m
                .connectors
                .iter()
                .map(|c| {
                    let mut c = c.clone();
                    c.stack_address = map.real_host(&c.stack_address);
                    c
                })
                .collect(),
        }),
        admin: AdminConfig { listen: SocketAddr::new(ip, ports.admin) },
        registry: srv
            .registry
            .iter()
            .map(|(k, vals)| {
                let vals: BTreeMap<String, String> = vals
                    .iter()
                    .map(|(n, v)| {
                        let v = if n.eq_ignore_ascii_case(mtalab_server::netsel::STACK_IP_ADDRESS_OVERRIDE) { map.real_host(v) } else { v.clone() };
                        (n.clone(), v)
                    })
                    .collect();
                (k.clone(), vals)
            })
            .collect(),
        base_dir: PathBuf::new(),
    })
}

/// A server's interfaces, real addresses: the NIC (`LAN`, the server's address) and the
/// extra ones, each with the prefix of its scenario network.
pub fn interfaces(sc: &Scenario, srv: &Server, map: &AddressMap) -> Vec<Interface> {
    let nets = sc.all_networks();
    let prefix = |a: std::net::Ipv4Addr| nets.iter().find(|n| n.subnet.contains(&a)).map_or(24, |n| n.subnet.prefix_len());
    let mut v = vec![Interface { name: "LAN".into(), address: IpAddr::V4(map.real(srv.address)), prefix: prefix(srv.address) }];
    v.extend(srv.interfaces.iter().map(|i| Interface { name: i.name.clone(), address: IpAddr::V4(map.real(i.address)), prefix: prefix(i.address) }));
    v
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
