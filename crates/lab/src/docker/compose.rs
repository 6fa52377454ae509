//! Rendering a scenario as a compose project: the compose file, one server config per
//! server and the DNS zones, with the scenario's own addresses (they are real inside the
//! lab's networks).
//!
//! - One network per scenario network (`[[networks]]`), with the scenario's subnet, marked
//!   `internal: true` (no route out of the lab, no NAT). Addresses outside every declared
//!   network share one more network, the smallest subnet that holds them all, as they share
//!   the loopback interface on the local backend (a `net-a-b-c` /24 when they fit in one).
//!   Each network's bridge carries the host's end of it at the highest free address (the
//!   host reaches the lab's containers through it; nothing in the lab routes through it).
//! - One service per server (`mtalab server`, under `mtalab supervise` so that the server
//!   can stop and start while its container stays up), one for the lab DNS (`mtalab dns`) and one
//!   per client host (`mtalab idle`, used to send mail from its address), each with fixed
//!   addresses on its networks and a healthcheck. Servers with static routes get
//!   `cap_add: [NET_ADMIN]` and apply the routes at start; servers on several networks get
//!   `rp_filter` off (replies may leave by another interface than the request came in on).
//! - One guard service ([`super::netguard`], `mtalab lab netguard`, host network, `NET_ADMIN`)
//!   when a server has a static route: it lets the routed traffic cross the networks the routes
//!   leave by, which Docker's rules for internal networks would drop; every server starts once
//!   it is healthy (its rules are in place).
//! - Server data lives in a named volume per server, removed by `down -v`.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::yaml::{Yaml, map, strs};
use crate::mapping::AddressMap;
use crate::render::{self, Ports};
use crate::scenario::Scenario;

/// The ports every service uses inside its container.
pub const PORTS: Ports = Ports { smtp: 25, admin: 8025, dns: 53, p1: 102 };

/// Where a server's config is mounted inside its container.
pub const CONFIG_PATH: &str = "/lab/server.toml";
/// Where the DNS zones are mounted inside the DNS container.
pub const ZONES_PATH: &str = "/lab/zones.json";
/// The data directory of a server inside its container (a named volume).
pub const DATA_DIR: &str = "/data";

/// Options of a rendering.
#[derive(Debug, Clone)]
pub struct ComposeOptions {
    /// Image of every service, e.g. `mtalab:local`.
    pub image: String,
    /// Directory of the rendered configs, relative to the compose file's directory
    /// (`.` for a lab directory).
    pub files_dir: String,
    /// Prefix of the bridge interface names (at most 10 characters); the bridges are
    /// `<prefix><index>`.
    pub bridge_prefix: String,
    /// Comment lines written at the top of the compose file.
    pub header: Vec<String>,
}

/// A network of the rendered project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkPlan {
    /// Scenario name (a `[[networks]]` name, or `net-…` for the one holding undeclared addresses).
    pub name: String,
    /// Key in the compose file.
    pub key: String,
    /// Subnet.
    pub subnet: Ipv4Net,
    /// The host's address on the bridge (the network's gateway in docker's terms; no
    /// container routes through it).
    pub gateway: Ipv4Addr,
    /// Bridge interface name on the host.
    pub bridge: String,
}

/// What a service is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// An emulated Exchange server.
    Server,
    /// The lab DNS.
    Dns,
    /// A client host.
    Host,
    /// The guard of routed networks ([`super::netguard`]): host network, no lab address.
    Guard,
}

/// A service of the rendered project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicePlan {
    /// Key in the compose file (the compose service name).
    pub key: String,
    /// What it is.
    pub role: Role,
    /// Scenario name (server or host name; `dns`).
    pub name: String,
    /// Its main address (the server's NIC, the host's or the DNS address; unspecified,
    /// 0.0.0.0, for the guard, which is on the host's network).
    pub address: Ipv4Addr,
    /// Its attachments: (interface name, network key, address); the first is the main one
    /// (none for the guard).
    pub attachments: Vec<(String, String, Ipv4Addr)>,
    /// Whether the service has `cap_add: [NET_ADMIN]`.
    pub net_admin: bool,
}

/// A rendered project: the compose file text and the files it mounts.
#[derive(Debug, Clone)]
pub struct Project {
    /// The compose file.
    pub yaml: String,
    /// Files to write below `files_dir`: relative path → contents.
    pub files: Vec<(PathBuf, Vec<u8>)>,
    /// Networks.
    pub networks: Vec<NetworkPlan>,
    /// Services.
    pub services: Vec<ServicePlan>,
    /// Bridges of the networks that carry routed traffic, which the guard service keeps open
    /// (empty: no guard).
    pub guarded: Vec<String>,
}

impl Project {
    /// The network plan with this compose key.
    pub fn network(&self, key: &str) -> Option<&NetworkPlan> {
        self.networks.iter().find(|n| n.key == key)
    }
}

/// A stable 64-bit FNV-1a hash, for names derived from paths.
pub fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A name usable as a compose key, project or volume name: lowercase ASCII letters, digits,
/// `-` and `_`; anything else becomes `-`.
pub fn sanitize(s: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c.to_ascii_lowercase() } else { '-' })
        .collect();
    let t = t.trim_matches('-').to_string();
    if t.is_empty() { "x".into() } else { t }
}

/// The networks of the docker lab: the declared ones, then one holding every address outside
/// them (the smallest subnet containing them all, when it overlaps no declared network;
/// otherwise one implicit /24 each, as [`Scenario::all_networks`] gives).
pub fn lab_networks(sc: &Scenario) -> Vec<crate::scenario::Network> {
    let mut nets = sc.networks.clone();
    let loose: Vec<Ipv4Addr> = sc.addresses().into_iter().filter(|a| !nets.iter().any(|n| n.subnet.contains(a))).collect();
    let Some(first) = loose.first() else { return nets };
    let mut prefix = 24u8;
    let covering = loop {
        let net = Ipv4Net::new(*first, prefix).expect("prefix").trunc();
        if loose.iter().all(|a| net.contains(a)) {
            break Some(net);
        }
        if prefix == 8 {
            break None;
        }
        prefix -= 1;
    };
    match covering {
        Some(net) if !nets.iter().any(|n| n.subnet.contains(&net.network()) || net.contains(&n.subnet.network())) => {
            let o = net.network().octets();
            let name = if net.prefix_len() == 24 { format!("net-{}-{}-{}", o[0], o[1], o[2]) } else { format!("net-{}-{}-{}-{}-{}", o[0], o[1], o[2], o[3], net.prefix_len()) };
            nets.push(crate::scenario::Network { name, subnet: net });
            nets
        }
        _ => sc.all_networks(),
    }
}

/// The host's address on a network: the highest host address no scenario address uses.
fn host_end(net: &Ipv4Net, used: &BTreeSet<Ipv4Addr>) -> anyhow::Result<Ipv4Addr> {
    if net.prefix_len() > 30 {
        bail!("network {net} is too small for a docker bridge (at most /30)");
    }
    let mut a = u32::from(net.broadcast()) - 1;
    let low = u32::from(net.network());
    while a > low {
        let ip = Ipv4Addr::from(a);
        if !used.contains(&ip) {
            return Ok(ip);
        }
        a -= 1;
    }
    bail!("network {net} has no free address left for the host's end of its bridge")
}

/// The networks a server's static route leaves by: the one holding the route's gateway, or,
/// for a route without one, the one holding the address of the named interface (`LAN` is the
/// server's own address). Their bridges carry traffic from and to other subnets.
pub fn routed_networks(sc: &Scenario, networks: &[NetworkPlan]) -> Vec<String> {
    let mut keys = BTreeSet::new();
    for srv in &sc.servers {
        for r in &srv.routes {
            let via = r.gateway.or_else(|| {
                if r.interface.eq_ignore_ascii_case("LAN") {
                    Some(srv.address)
                } else {
                    srv.interfaces.iter().find(|i| i.name.eq_ignore_ascii_case(&r.interface)).map(|i| i.address)
                }
            });
            if let Some(n) = via.and_then(|a| networks.iter().find(|n| n.subnet.contains(&a))) {
                keys.insert(n.key.clone());
            }
        }
    }
    networks.iter().filter(|n| keys.contains(&n.key)).map(|n| n.key.clone()).collect()
}

fn healthcheck(test: Vec<String>) -> Yaml {
    map([
        ("test", strs(test)),
        ("interval", "1s".into()),
        ("timeout", "3s".into()),
        ("retries", Yaml::Int(3)),
        ("start_period", "60s".into()),
    ])
}

/// Render `sc` as a compose project.
pub fn render(sc: &Scenario, opts: &ComposeOptions) -> anyhow::Result<Project> {
    anyhow::ensure!(opts.bridge_prefix.len() <= 10, "bridge prefix {:?} is longer than 10 characters", opts.bridge_prefix);
    let used: BTreeSet<Ipv4Addr> = sc.addresses().into_iter().collect();
    let mut networks = Vec::new();
    let mut keys = BTreeSet::new();
    for (i, n) in lab_networks(sc).iter().enumerate() {
        let key = sanitize(&n.name);
        if !keys.insert(key.clone()) {
            bail!("two networks are both named {key:?} once made compose keys");
        }
        let subnet = n.subnet.trunc();
        networks.push(NetworkPlan {
            name: n.name.clone(),
            key,
            subnet,
            gateway: host_end(&subnet, &used).with_context(|| format!("network {}", n.name))?,
            bridge: format!("{}{i}", opts.bridge_prefix),
        });
    }
    let net_of = |a: Ipv4Addr| -> anyhow::Result<String> {
        networks.iter().find(|n| n.subnet.contains(&a)).map(|n| n.key.clone()).with_context(|| format!("address {a} is in no network"))
    };
    let attach = |pairs: Vec<(String, Ipv4Addr)>| -> anyhow::Result<Vec<(String, String, Ipv4Addr)>> {
        let mut seen = BTreeSet::new();
        let mut v = Vec::new();
        for (iface, a) in pairs {
            let k = net_of(a)?;
            if !seen.insert(k.clone()) {
                bail!("two addresses of one container are on network {k} (a container has one address per network)");
            }
            v.push((iface, k, a));
        }
        Ok(v)
    };

    let map_ids = AddressMap::identity(&sc.addresses());
    let mut services: Vec<ServicePlan> = Vec::new();
    let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    let mut svc_keys: BTreeSet<String> = BTreeSet::new();
    let mut unique_key = |want: String, alt: String| -> anyhow::Result<String> {
        if svc_keys.insert(want.clone()) {
            return Ok(want);
        }
        if svc_keys.insert(alt.clone()) {
            return Ok(alt);
        }
        bail!("two services would both be named {want:?}")
    };
    for srv in &sc.servers {
        let key = unique_key(sanitize(&srv.name), format!("server-{}", sanitize(&srv.name)))?;
        let mut pairs = vec![("LAN".to_string(), srv.address)];
        pairs.extend(srv.interfaces.iter().map(|i| (i.name.clone(), i.address)));
        let mut cfg = render::server_config(sc, srv, &map_ids, PORTS, PathBuf::from(DATA_DIR), false).map_err(|e| anyhow::anyhow!("server {}: {e}", srv.name))?;
        cfg.server.apply_routes = !srv.routes.is_empty();
        cfg.server.address_map.clear();
        files.push((PathBuf::from("servers").join(&srv.name).join("server.toml"), cfg.to_toml().into_bytes()));
        services.push(ServicePlan { key, role: Role::Server, name: srv.name.clone(), address: srv.address, attachments: attach(pairs)?, net_admin: !srv.routes.is_empty() });
    }
    let dns_key = unique_key("dns".into(), "lab-dns".into())?;
    services.push(ServicePlan {
        key: dns_key,
        role: Role::Dns,
        name: "dns".into(),
        address: sc.dns.address,
        attachments: attach(vec![("LAN".into(), sc.dns.address)])?,
        net_admin: false,
    });
    files.push((PathBuf::from("dns").join("zones.json"), serde_json::to_vec_pretty(&render::zones(sc, &map_ids))?));
    for h in &sc.hosts {
        let key = unique_key(sanitize(&h.name), format!("host-{}", sanitize(&h.name)))?;
        services.push(ServicePlan { key, role: Role::Host, name: h.name.clone(), address: h.address, attachments: attach(vec![("LAN".into(), h.address)])?, net_admin: false });
    }

    let guarded: Vec<String> = routed_networks(sc, &networks).iter().filter_map(|k| networks.iter().find(|n| &n.key == k)).map(|n| n.bridge.clone()).collect();
    let guard_key = if guarded.is_empty() {
        None
    } else {
        let key = unique_key(super::netguard::SERVICE.into(), format!("lab-{}", super::netguard::SERVICE))?;
        services.push(ServicePlan { key: key.clone(), role: Role::Guard, name: super::netguard::SERVICE.into(), address: Ipv4Addr::UNSPECIFIED, attachments: vec![], net_admin: true });
        Some(key)
    };

    // Compose reads a short-syntax volume source as a path only when it starts with `.` or
    // `/`; anything else would name a volume.
    let files_dir = opts.files_dir.trim_end_matches('/');
    let files_dir = if files_dir.starts_with('.') || files_dir.starts_with('/') { files_dir.to_string() } else { format!("./{files_dir}") };
    let mut svc_yaml = Vec::new();
    let mut volumes = Vec::new();
    for s in &services {
        if s.role == Role::Guard {
            // On the host's network: no hostname (Docker refuses one there), no lab address.
            let mut test = vec!["CMD".to_string(), "/mtalab".into()];
            test.extend(super::netguard::command(&sc.scenario.name, &guarded));
            test.insert(4, "--check".into());
            let m = map([
                ("image", opts.image.as_str().into()),
                ("pull_policy", "never".into()),
                ("command", strs(super::netguard::command(&sc.scenario.name, &guarded))),
                ("network_mode", "host".into()),
                ("cap_add", strs(["NET_ADMIN"])),
                ("healthcheck", healthcheck(test)),
                ("stop_grace_period", "5s".into()),
            ]);
            svc_yaml.push((s.key.clone(), m));
            continue;
        }
        let mut m: Vec<(String, Yaml)> = vec![("image".into(), opts.image.as_str().into()), ("pull_policy".into(), "never".into()), ("hostname".into(), s.name.as_str().into())];
        let (command, mounts, test) = match s.role {
            Role::Server => {
                let vol = format!("{}-data", s.key);
                volumes.push((vol.clone(), Yaml::Map(vec![])));
                (
                    vec!["supervise".to_string(), "server".into(), "--config".into(), CONFIG_PATH.into()],
                    vec![format!("{files_dir}/servers/{}/server.toml:{CONFIG_PATH}:ro", s.name), format!("{vol}:{DATA_DIR}")],
                    vec!["CMD".to_string(), "/mtalab".into(), "health".into(), "--url".into(), format!("http://{}:{}/health", s.address, PORTS.admin)],
                )
            }
            Role::Dns => (
                vec!["dns".to_string(), "--zones".into(), ZONES_PATH.into(), "--listen".into(), format!("{}:{}", s.address, PORTS.dns)],
                vec![format!("{files_dir}/dns/zones.json:{ZONES_PATH}:ro")],
                vec!["CMD".to_string(), "/mtalab".into(), "health".into(), "--tcp".into(), format!("{}:{}", s.address, PORTS.dns)],
            ),
            Role::Host => (vec!["idle".to_string()], vec![], vec!["CMD".to_string(), "/mtalab".into(), "health".into()]),
            Role::Guard => unreachable!("rendered above"),
        };
        m.push(("command".into(), strs(command)));
        if !mounts.is_empty() {
            m.push(("volumes".into(), strs(mounts)));
        }
        m.push((
            "networks".into(),
            Yaml::Map(s.attachments.iter().map(|(_, k, a)| (k.clone(), map([("ipv4_address", Yaml::Str(a.to_string()))]))).collect()),
        ));
        if s.net_admin {
            m.push(("cap_add".into(), strs(["NET_ADMIN"])));
        }
        if s.attachments.len() > 1 {
            m.push(("sysctls".into(), map([("net.ipv4.conf.all.rp_filter", "0".into()), ("net.ipv4.conf.default.rp_filter", "0".into())])));
        }
        if let (Role::Server, Some(g)) = (s.role, &guard_key) {
            m.push(("depends_on".into(), map([(g.clone(), map([("condition", "service_healthy".into())]))])));
        }
        m.push(("healthcheck".into(), healthcheck(test)));
        m.push(("stop_grace_period".into(), "5s".into()));
        svc_yaml.push((s.key.clone(), Yaml::Map(m)));
    }
    let net_yaml: Vec<(String, Yaml)> = networks
        .iter()
        .map(|n| {
            (
                n.key.clone(),
                map([
                    ("internal", true.into()),
                    ("driver", "bridge".into()),
                    ("driver_opts", map([("com.docker.network.bridge.name", Yaml::Str(n.bridge.clone()))])),
                    ("ipam", map([("config", Yaml::List(vec![map([("subnet", Yaml::Str(n.subnet.to_string())), ("gateway", Yaml::Str(n.gateway.to_string()))])]))])),
                ]),
            )
        })
        .collect();
    let mut doc = vec![("services".to_string(), Yaml::Map(svc_yaml)), ("networks".to_string(), Yaml::Map(net_yaml))];
    if !volumes.is_empty() {
        doc.push(("volumes".into(), Yaml::Map(volumes)));
    }
    let mut yaml = String::new();
    for h in &opts.header {
        yaml.push_str(&format!("# {h}\n").replace("# \n", "#\n"));
    }
    yaml.push_str(&super::yaml::to_string(&Yaml::Map(doc)));
    Ok(Project { yaml, files, networks, services, guarded })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(text: &str) -> Scenario {
        let s: Scenario = toml::from_str(text).unwrap();
        s.validate().unwrap();
        s
    }

    const BASE: &str = r#"
[scenario]
name = "t"
[[organizations]]
name = "O"
[[sites]]
name = "SiteA"
smtp_address = "@a.example"
[[sites]]
name = "SiteB"
smtp_address = "@b.example"
[[servers]]
name = "ServerA"
site = "SiteA"
address = "192.168.200.10"
interfaces = [{ name = "RAS", address = "192.168.1.1" }]
routes = [{ destination = "192.168.100.0/24", interface = "RAS", gateway = "192.168.1.2" }]
[servers.ims]
relay_from = ["192.168.200.0/24"]
[[servers]]
name = "ServerB"
site = "SiteB"
address = "192.168.100.15"
interfaces = [{ name = "RAS", address = "192.168.1.2" }]
[servers.ims]
[[networks]]
name = "LAN-A"
subnet = "192.168.200.0/24"
[[networks]]
name = "LAN-B"
subnet = "192.168.100.0/24"
[[networks]]
name = "RAS"
subnet = "192.168.1.0/29"
[[hosts]]
name = "internet"
address = "10.10.20.99"
[dns]
address = "10.10.10.2"
zones = []
"#;

    fn opts() -> ComposeOptions {
        ComposeOptions { image: "mtalab:local".into(), files_dir: ".".into(), bridge_prefix: "mtlabc-".into(), header: vec!["test".into()] }
    }

    #[test]
    fn networks_servers_routes_and_addresses() {
        let p = render(&scenario(BASE), &opts()).unwrap();
        let names: Vec<&str> = p.networks.iter().map(|n| n.name.as_str()).collect();
        // The two undeclared addresses (10.10.10.2, 10.10.20.99) share one flat network.
        assert_eq!(names, ["LAN-A", "LAN-B", "RAS", "net-10-10-0-0-19"]);
        let ras = p.network("ras").unwrap();
        assert_eq!(ras.gateway, Ipv4Addr::new(192, 168, 1, 6));
        assert_eq!(ras.bridge, "mtlabc-2");
        let a = &p.services[0];
        assert_eq!(a.key, "servera");
        assert!(a.net_admin);
        assert_eq!(a.attachments, vec![("LAN".into(), "lan-a".into(), Ipv4Addr::new(192, 168, 200, 10)), ("RAS".into(), "ras".into(), Ipv4Addr::new(192, 168, 1, 1))]);
        assert!(!p.services[1].net_admin);
        assert!(p.yaml.starts_with("# test\nservices:\n  servera:\n"));
        assert!(p.yaml.contains("    cap_add: [\"NET_ADMIN\"]\n"));
        // ServerA and the guard.
        assert_eq!(p.yaml.matches("cap_add").count(), 2);
        assert!(p.yaml.contains("net.ipv4.conf.all.rp_filter: \"0\""));
        assert!(p.yaml.contains("      ras:\n        ipv4_address: \"192.168.1.1\"\n"));
        assert_eq!(p.yaml.matches("internal: true").count(), 4);
        assert!(p.yaml.contains("command: [\"idle\"]"));
        // Configs carry the scenario's addresses, unmapped, and the routes to apply.
        let cfg = String::from_utf8(p.files[0].1.clone()).unwrap();
        let cfg = mtalab_server::config::Config::parse(&cfg).unwrap();
        assert!(cfg.server.apply_routes);
        assert!(!cfg.server.emulate_source_selection);
        assert_eq!(cfg.admin.listen.to_string(), "192.168.200.10:8025");
        assert_eq!(cfg.ims.as_ref().unwrap().dns_servers[0].to_string(), "10.10.10.2:53");
        assert_eq!(cfg.ims.as_ref().unwrap().relay_from[0].to_string(), "192.168.200.0/24");
        assert_eq!(cfg.server.routes[0].gateway, Some("192.168.1.2".parse().unwrap()));
    }

    #[test]
    fn a_guard_for_the_networks_routes_leave_by() {
        let p = render(&scenario(BASE), &opts()).unwrap();
        // ServerA's route to LAN-B goes via 192.168.1.2, on the RAS network (bridge mtlabc-2).
        assert_eq!(p.guarded, ["mtlabc-2"]);
        let g = p.services.last().unwrap();
        assert_eq!((g.key.as_str(), g.role, g.net_admin), ("netguard", Role::Guard, true));
        assert!(g.attachments.is_empty());
        let want = concat!(
            "  netguard:\n",
            "    image: \"mtalab:local\"\n",
            "    pull_policy: \"never\"\n",
            "    command: [\"lab\", \"netguard\", \"--lab\", \"t\", \"--bridge\", \"mtlabc-2\"]\n",
            "    network_mode: \"host\"\n",
            "    cap_add: [\"NET_ADMIN\"]\n",
            "    healthcheck:\n",
            "      test: [\"CMD\", \"/mtalab\", \"lab\", \"netguard\", \"--check\", \"--lab\", \"t\", \"--bridge\", \"mtlabc-2\"]\n",
        );
        assert!(p.yaml.contains(want), "{}", p.yaml);
        // Both servers wait for it; the DNS and the client host do not.
        assert_eq!(p.yaml.matches("    depends_on:\n      netguard:\n        condition: \"service_healthy\"\n").count(), 2, "{}", p.yaml);
        // A gateway-less route leaves by its interface's network.
        let text = BASE.replace("routes = [{ destination = \"192.168.100.0/24\", interface = \"RAS\", gateway = \"192.168.1.2\" }]", "routes = [{ destination = \"10.1.0.0/16\", interface = \"LAN\" }]");
        assert_eq!(render(&scenario(&text), &opts()).unwrap().guarded, ["mtlabc-0"]);
        // No static route, no guard.
        let text = BASE.replace("routes = [{ destination = \"192.168.100.0/24\", interface = \"RAS\", gateway = \"192.168.1.2\" }]", "");
        let p = render(&scenario(&text), &opts()).unwrap();
        assert!(p.guarded.is_empty() && !p.services.iter().any(|s| s.role == Role::Guard) && !p.yaml.contains("netguard"));
    }

    #[test]
    fn one_implicit_network_keeps_its_24_name() {
        let text = BASE.replace("address = \"10.10.20.99\"", "address = \"10.10.10.99\"");
        let p = render(&scenario(&text), &opts()).unwrap();
        assert_eq!(p.networks[3].name, "net-10-10-10");
        assert_eq!(p.networks[3].gateway, Ipv4Addr::new(10, 10, 10, 254));
    }
}
