//! Scenario files (`testnet/scenarios/*.toml`): a topology — organizations, sites, servers
//! with their addresses and IMS settings, hosts that act as clients, the lab DNS zones — and
//! the steps to run against it. Every table uses `deny_unknown_fields`.
//!
//! Addresses in a scenario are the KB article's (10.10.10.10 …); a backend maps them to
//! addresses it owns (see [`crate::mapping`]). Nothing ever sends to a scenario address.

use std::net::Ipv4Addr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::dns::ZoneSpec;

/// A whole scenario file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name, title and timing.
    pub scenario: Meta,
    /// Organizations (usually one; two in KB Q170274).
    #[serde(rename = "organizations")]
    pub organizations: Vec<Organization>,
    /// Sites.
    pub sites: Vec<Site>,
    /// Servers (one daemon each).
    pub servers: Vec<Server>,
    /// Networks (LANs, RAS links); optional.
    #[serde(default)]
    pub networks: Vec<Network>,
    /// Hosts that are not Exchange servers (workstations, an Internet host) used as SMTP clients.
    #[serde(default)]
    pub hosts: Vec<Host>,
    /// The lab DNS.
    pub dns: Dns,
    /// Steps, run in order.
    #[serde(default)]
    pub steps: Vec<Step>,
}

/// `[scenario]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    /// Short name, also the default lab directory name.
    pub name: String,
    /// Title (the KB article's).
    #[serde(default)]
    pub title: String,
    /// KB article reproduced, e.g. "Q196927".
    #[serde(default)]
    pub kb: Option<String>,
    /// Lab-wide time scale applied to protocol timers (DESIGN §1). Default 1.
    #[serde(default = "one")]
    pub time_scale: f64,
}

fn one() -> f64 {
    1.0
}

/// `[[organizations]]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Organization {
    /// Directory name, e.g. "ExchangeORG".
    pub name: String,
}

/// `[[sites]]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Site {
    /// Directory name, e.g. "SiteA".
    pub name: String,
    /// Organization; default the first one.
    #[serde(default)]
    pub organization: Option<String>,
    /// Site Addressing: SMTP site address, e.g. "@SiteA.microsoft.com".
    pub smtp_address: String,
    /// Proxy generator (default alias, `%m`).
    #[serde(default)]
    pub smtp_generator: Option<String>,
    /// X.400 country (default "US").
    #[serde(default = "us")]
    pub x400_country: String,
}

fn us() -> String {
    "US".into()
}

/// `[[servers]]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// NetBIOS name, e.g. "ServerA".
    pub name: String,
    /// Site.
    pub site: String,
    /// The server's (NIC) address in the scenario.
    pub address: Ipv4Addr,
    /// Host name (greeting, Received); default `<name>.<site domain>`.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Mailboxes homed here.
    #[serde(default)]
    pub recipients: Vec<Recipient>,
    /// Internet Mail Service settings; absent = no IMS.
    #[serde(default)]
    pub ims: Option<Ims>,
    /// Interfaces besides the NIC (`address`, named `LAN`), e.g. the RAS link's WAN wrapper.
    #[serde(default)]
    pub interfaces: Vec<ServerInterface>,
    /// Static routes (KB Q255991 "Step Two: Create the Static Route").
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Message transfer agent settings; absent = no MTA.
    #[serde(default)]
    pub mta: Option<Mta>,
    /// Registry values (key below `HKLM\SYSTEM\CurrentControlSet\Services` → value → data),
    /// e.g. `"MSExchangeMTA\\Parameters\\X400 to SiteB" = { "Stack IP Address Override" = "192.168.100.10" }`.
    #[serde(default)]
    pub registry: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
}

/// MTA settings of a server; connector Stack addresses are scenario addresses.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mta {
    /// Local MTA name (default: the server name).
    #[serde(default)]
    pub name: Option<String>,
    /// Local MTA password.
    #[serde(default)]
    pub password: String,
    /// X.400 connectors.
    #[serde(default)]
    pub connectors: Vec<mtalab_server::config::X400Connector>,
}

/// An extra interface of a server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerInterface {
    /// Name (`RAS`, …); the NIC is `LAN`.
    pub name: String,
    /// Address; its network is the `[[networks]]` entry whose subnet holds it.
    pub address: Ipv4Addr,
}

/// A static route of a server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Destination network, e.g. 192.168.100.0/24.
    pub destination: ipnet::Ipv4Net,
    /// Interface (`LAN` or one of `interfaces`).
    pub interface: String,
    /// Gateway (next hop on that interface), e.g. the remote end of the RAS link.
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
}

/// A network of the scenario (a LAN, a RAS link). Addresses not inside any declared network
/// get an implicit /24 network each.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Name (used for docker networks and capture files).
    pub name: String,
    /// Subnet.
    pub subnet: ipnet::Ipv4Net,
}

/// A mailbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipient {
    /// Alias.
    pub alias: String,
    /// First name.
    #[serde(default)]
    pub given: String,
    /// Last name.
    #[serde(default)]
    pub surname: String,
}

/// IMS settings of a server, with scenario addresses.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ims {
    /// Address space (`*`, `*.d`, `d`).
    #[serde(default)]
    pub address_space: Vec<String>,
    /// Networks allowed to relay (scenario CIDRs).
    #[serde(default)]
    pub relay_from: Vec<ipnet::Ipv4Net>,
    /// "Reroute incoming SMTP mail" routing table.
    #[serde(default)]
    pub reroute: Vec<mtalab_server::config::RerouteEntry>,
    /// E-Mail Domain entries (hosts are scenario IPs or names).
    #[serde(default)]
    pub email_domains: Vec<EmailDomain>,
    /// Connected Sites.
    #[serde(default)]
    pub connected_sites: Vec<ConnectedSite>,
    /// Retry intervals (nominal seconds; scaled by time_scale).
    #[serde(default)]
    pub retry_intervals_secs: Option<Vec<f64>>,
    /// Expiry (nominal seconds; scaled by time_scale).
    #[serde(default)]
    pub expire_secs: Option<f64>,
}

/// E-Mail Domain entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailDomain {
    /// Domain.
    pub domain: String,
    /// Hosts: scenario IPs or host names.
    pub hosts: Vec<String>,
}

/// Connected Site entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectedSite {
    /// Remote site.
    pub site: String,
    /// SMTP routing address, e.g. "@SiteB.microsoft.com".
    pub routing_address: String,
    /// Cost.
    #[serde(default = "cost1")]
    pub cost: u8,
}

fn cost1() -> u8 {
    1
}

/// A client host.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// Name used by steps (`from_host`).
    pub name: String,
    /// Scenario address.
    pub address: Ipv4Addr,
}

/// `[dns]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dns {
    /// Scenario address of the lab DNS server.
    pub address: Ipv4Addr,
    /// Zones (addresses are scenario addresses; the backend maps them).
    pub zones: Vec<ZoneSpec>,
}

/// One step. `action` selects the kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Send one message with mtalab's SMTP client.
    Send {
        /// Step label.
        #[serde(default)]
        name: Option<String>,
        /// Submit to this server's IMS; or omit and set `via_mx` to use the recipient domain's MX.
        #[serde(default)]
        server: Option<String>,
        /// Look up the first recipient's domain MX in the lab DNS and connect there.
        #[serde(default)]
        via_mx: bool,
        /// Client host (from `[[hosts]]`) the connection comes from; default the server's own address.
        #[serde(default)]
        from_host: Option<String>,
        /// Envelope and header sender.
        from: String,
        /// Recipients.
        to: Vec<String>,
        /// Subject (make it unique: expectations match on it).
        subject: String,
        /// Body text.
        #[serde(default)]
        body: Option<String>,
        /// Pad the body with filler text lines up to this many octets (a message big enough
        /// to still be in transfer over a slow link when a step cuts it).
        #[serde(default)]
        body_size: Option<usize>,
        /// Expected final reply code: 250 (default) for the message, or the code the first
        /// refused RCPT (or MAIL, or DATA) gets, e.g. 550.
        #[serde(default = "c250")]
        expect_reply: u16,
        /// Expected enhanced status code of that reply, e.g. "5.7.1".
        #[serde(default)]
        expect_status: Option<String>,
    },
    /// Wait until a message with this subject is in a mailbox.
    ExpectDelivery {
        /// Step label.
        #[serde(default)]
        name: Option<String>,
        /// Server holding the mailbox.
        server: String,
        /// Mailbox alias.
        mailbox: String,
        /// Subject to find.
        subject: String,
        /// Hops expected (Received: headers), if checked.
        #[serde(default)]
        hops: Option<usize>,
        /// Exactly this many messages with the subject must be in the mailbox once the first
        /// is there (`count = 1`: delivered exactly once), if checked. A copy delivered twice
        /// comes after the sender tried again: put this step after the sender's queue drained.
        #[serde(default)]
        count: Option<usize>,
        /// Seconds to wait (real time).
        #[serde(default = "t10")]
        timeout_secs: f64,
    },
    /// Wait until a DSN about the message with this subject is in the sender's mailbox.
    ExpectBounce {
        /// Step label.
        #[serde(default)]
        name: Option<String>,
        /// Server holding the sender's mailbox.
        server: String,
        /// Sender's mailbox alias.
        mailbox: String,
        /// Subject of the original message.
        subject: String,
        /// Expected `Status:` of the failed recipient, e.g. "5.1.1".
        #[serde(default)]
        status: Option<String>,
        /// Seconds to wait.
        #[serde(default = "t10")]
        timeout_secs: f64,
    },
    /// Assert a mailbox does not get a message with this subject within the time.
    ExpectNoDelivery {
        /// Step label.
        #[serde(default)]
        name: Option<String>,
        /// Server.
        server: String,
        /// Mailbox.
        mailbox: String,
        /// Subject.
        subject: String,
        /// Seconds to watch.
        #[serde(default = "t1")]
        within_secs: f64,
    },
    /// Wait until the server logged an event.
    ExpectEvent {
        /// Step label.
        #[serde(default)]
        name: Option<String>,
        /// Server.
        server: String,
        /// Event ID.
        id: u32,
        /// Text that must appear in the event text.
        #[serde(default)]
        text_contains: Option<String>,
        /// At least this many such events (default 1).
        #[serde(default = "n1")]
        count: usize,
        /// Count only events logged after the step with this `name` began (an earlier step
        /// of the file).
        #[serde(default)]
        after: Option<String>,
        /// Seconds to wait.
        #[serde(default = "t10")]
        timeout_secs: f64,
    },
    /// Wait until a server's MTA has a transfer under way (sending) with at least this many
    /// checkpoints (minor synchronization points) confirmed by the receiving MTA.
    ExpectTransfer {
        /// Step label.
        #[serde(default)]
        name: Option<String>,
        /// The sending server.
        server: String,
        /// The X.400 connector (directory name); default any.
        #[serde(default)]
        connector: Option<String>,
        /// Checkpoints confirmed, at least (default 1).
        #[serde(default = "n1")]
        checkpoints: usize,
        /// Seconds to wait.
        #[serde(default = "t10")]
        timeout_secs: f64,
    },
    /// Wait until a server's queue is empty.
    ExpectQueueEmpty {
        /// Step label.
        #[serde(default)]
        name: Option<String>,
        /// Server.
        server: String,
        /// Seconds to wait.
        #[serde(default = "t10")]
        timeout_secs: f64,
    },
    /// Set (or, with no hosts, remove) an E-Mail Domain entry through the admin API.
    SetEmailDomain {
        /// Step label.
        #[serde(default)]
        name: Option<String>,
        /// Server.
        server: String,
        /// Domain.
        domain: String,
        /// Hosts (scenario IPs or names).
        hosts: Vec<String>,
    },
    /// Wait until a server's queue holds at least this many messages (store and forward).
    ExpectQueued {
        /// Step label.
        #[serde(default)]
        name: Option<String>,
        /// Server.
        server: String,
        /// At least this many (default 1).
        #[serde(default = "n1")]
        count: usize,
        /// Seconds to wait.
        #[serde(default = "t10")]
        timeout_secs: f64,
    },
    /// Set (or with no `data`, delete) a REG_SZ registry value, e.g. the Stack IP Address
    /// Override (KB Q255991). An IPv4 `data` is a scenario address and is mapped.
    SetRegistry {
        /// Step label.
        #[serde(default)]
        name: Option<String>,
        /// Server.
        server: String,
        /// Key below `HKLM\SYSTEM\CurrentControlSet\Services`.
        key: String,
        /// Value name.
        value: String,
        /// REG_SZ data; absent = delete the value.
        #[serde(default)]
        data: Option<String>,
    },
    /// Restart a service (`MSExchangeMTA`); the MTA re-reads the registry.
    RestartService {
        /// Step label.
        #[serde(default)]
        name: Option<String>,
        /// Server.
        server: String,
        /// Service name.
        service: String,
    },
    /// Change an X.400 connector's settings (effective at the next MTA restart).
    SetConnector {
        /// Step label.
        #[serde(default)]
        name: Option<String>,
        /// Server.
        server: String,
        /// Connector directory name.
        connector: String,
        /// General: remote MTA password.
        #[serde(default)]
        remote_mta_password: Option<String>,
        /// Override: local MTA password.
        #[serde(default)]
        local_mta_password: Option<String>,
        /// Override: local MTA name.
        #[serde(default)]
        local_mta_name: Option<String>,
    },
    /// Retry every waiting message now.
    RetryQueue {
        /// Step label.
        #[serde(default)]
        name: Option<String>,
        /// Server.
        server: String,
    },
    /// Stop a server gracefully (SIGTERM).
    Stop {
        /// Step label.
        #[serde(default)]
        name: Option<String>,
        /// Server.
        server: String,
    },
    /// Kill a server (SIGKILL) — a crash.
    Kill {
        /// Step label.
        #[serde(default)]
        name: Option<String>,
        /// Server.
        server: String,
    },
    /// Start a stopped server again and wait for it to be healthy.
    Start {
        /// Step label.
        #[serde(default)]
        name: Option<String>,
        /// Server.
        server: String,
    },
    /// Sleep (real seconds).
    Wait {
        /// Step label.
        #[serde(default)]
        name: Option<String>,
        /// Seconds.
        secs: f64,
    },
    /// Cut a server's link to one of its networks like a pulled cable: connections over it
    /// go silent, new ones fail as unreachable (docker backend: `docker network
    /// disconnect`; local backend: the server's emulated link, `POST /actions/set-link`).
    Disconnect(crate::docker::faults::LinkFault),
    /// Restore a link cut by `disconnect`, with the same address and the static routes over
    /// it (docker backend: `docker network connect`; local backend: the emulated link).
    Connect(crate::docker::faults::LinkFault),
    /// Limit the rate of what a server sends over one of its links — a dial-up or ISDN line
    /// (docker backend: `tc … tbf` on its interface; local backend: the server paces its
    /// connections over the link). The rate stays through `disconnect` / `connect`.
    LinkRate(crate::docker::faults::LinkRate),
    /// Add delay and/or loss to what a server sends over one of its links (docker backend:
    /// tc netem, skipped with a message where the kernel has no netem; local backend:
    /// skipped with a message, it has no emulation of delay and loss).
    Netem(crate::docker::faults::NetemFault),
}

fn c250() -> u16 {
    250
}
fn t10() -> f64 {
    10.0
}
fn t1() -> f64 {
    1.0
}
fn n1() -> usize {
    1
}

impl Step {
    /// The step's `name`, if it has one.
    pub fn name(&self) -> Option<&str> {
        match self {
            Step::Send { name, .. }
            | Step::ExpectDelivery { name, .. }
            | Step::ExpectBounce { name, .. }
            | Step::ExpectNoDelivery { name, .. }
            | Step::ExpectEvent { name, .. }
            | Step::ExpectTransfer { name, .. }
            | Step::ExpectQueueEmpty { name, .. }
            | Step::SetEmailDomain { name, .. }
            | Step::ExpectQueued { name, .. }
            | Step::SetRegistry { name, .. }
            | Step::RestartService { name, .. }
            | Step::SetConnector { name, .. }
            | Step::RetryQueue { name, .. }
            | Step::Stop { name, .. }
            | Step::Kill { name, .. }
            | Step::Start { name, .. }
            | Step::Wait { name, .. } => name.as_deref(),
            Step::Disconnect(l) | Step::Connect(l) => l.name.as_deref(),
            Step::LinkRate(r) => r.name.as_deref(),
            Step::Netem(n) => n.name.as_deref(),
        }
    }

    /// The step's label: its `name`, or a description made from its fields.
    pub fn label(&self) -> String {
        let (name, auto) = match self {
            Step::Send { name, from, to, server, via_mx, expect_reply, .. } => (
                name,
                format!(
                    "send {from} -> {} via {}{}",
                    to.join(","),
                    if *via_mx { "MX".to_string() } else { server.clone().unwrap_or_default() },
                    if *expect_reply != 250 { format!(" (expect {expect_reply})") } else { String::new() }
                ),
            ),
            Step::ExpectDelivery { name, server, mailbox, subject, .. } => (name, format!("expect {subject:?} in {mailbox} on {server}")),
            Step::ExpectBounce { name, server, mailbox, subject, .. } => (name, format!("expect a DSN for {subject:?} in {mailbox} on {server}")),
            Step::ExpectNoDelivery { name, server, mailbox, subject, .. } => (name, format!("expect no {subject:?} in {mailbox} on {server}")),
            Step::ExpectEvent { name, server, id, .. } => (name, format!("expect event {id} on {server}")),
            Step::ExpectTransfer { name, server, checkpoints, .. } => (name, format!("expect a transfer from {server} with {checkpoints}+ checkpoint(s) confirmed")),
            Step::ExpectQueueEmpty { name, server, .. } => (name, format!("expect the queue of {server} to drain")),
            Step::SetEmailDomain { name, server, domain, hosts } => (name, format!("{server}: E-Mail Domain {domain} -> {}", hosts.join(","))),
            Step::RetryQueue { name, server } => (name, format!("{server}: retry the queue")),
            Step::ExpectQueued { name, server, count, .. } => (name, format!("expect {count}+ message(s) queued on {server}")),
            Step::SetRegistry { name, server, key, value, data } => (
                name,
                match data {
                    Some(d) => format!("{server}: set {key}\\{value} = {d}"),
                    None => format!("{server}: delete {key}\\{value}"),
                },
            ),
            Step::RestartService { name, server, service } => (name, format!("{server}: restart {service}")),
            Step::SetConnector { name, server, connector, .. } => (name, format!("{server}: change connector {connector}")),
            Step::Stop { name, server } => (name, format!("stop {server}")),
            Step::Kill { name, server } => (name, format!("kill -9 {server}")),
            Step::Start { name, server } => (name, format!("start {server}")),
            Step::Wait { name, secs } => (name, format!("wait {secs}s")),
            Step::Disconnect(l) => (&l.name, l.label("disconnect")),
            Step::Connect(l) => (&l.name, l.label("connect")),
            Step::LinkRate(r) => (&r.name, r.label()),
            Step::Netem(n) => (&n.name, n.label()),
        };
        name.clone().unwrap_or(auto)
    }
}

impl Scenario {
    /// Every network: the declared ones, then an implicit /24 for each address outside them
    /// (named `net-a-b-c`).
    pub fn all_networks(&self) -> Vec<Network> {
        let mut nets = self.networks.clone();
        for a in self.addresses() {
            if !nets.iter().any(|n| n.subnet.contains(&a)) {
                let o = a.octets();
                let subnet = ipnet::Ipv4Net::new(Ipv4Addr::new(o[0], o[1], o[2], 0), 24).expect("/24");
                nets.push(Network { name: format!("net-{}-{}-{}", o[0], o[1], o[2]), subnet });
            }
        }
        nets
    }

    /// Load and validate a scenario file.
    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let s: Scenario = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().trim_end()))?;
        s.validate().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(s)
    }

    /// Cross-reference checks: every site, server, host and organization named exists.
    pub fn validate(&self) -> Result<(), String> {
        if self.organizations.is_empty() {
            return Err("at least one [[organizations]] entry is needed".into());
        }
        if self.scenario.time_scale.is_nan() || self.scenario.time_scale <= 0.0 {
            return Err("scenario.time_scale must be positive".into());
        }
        for s in &self.sites {
            if let Some(o) = &s.organization
                && !self.organizations.iter().any(|x| &x.name == o)
            {
                return Err(format!("site {} names unknown organization {o}", s.name));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for srv in &self.servers {
            if !self.sites.iter().any(|s| s.name == srv.site) {
                return Err(format!("server {} names unknown site {}", srv.name, srv.site));
            }
            if !names.insert(srv.name.to_ascii_lowercase()) {
                return Err(format!("server name {} is used twice", srv.name));
            }
        }
        let server_names: Vec<&str> = self.servers.iter().map(|s| s.name.as_str()).collect();
        for (i, st) in self.steps.iter().enumerate() {
            let srv = match st {
                Step::Send { server, via_mx, from_host, .. } => {
                    if let Some(h) = from_host
                        && !self.hosts.iter().any(|x| &x.name == h)
                        && !server_names.contains(&h.as_str())
                    {
                        return Err(format!("steps[{i}]: unknown from_host {h}"));
                    }
                    if server.is_none() && !via_mx {
                        return Err(format!("steps[{i}]: send needs server or via_mx = true"));
                    }
                    server.clone()
                }
                Step::ExpectDelivery { server, .. }
                | Step::ExpectBounce { server, .. }
                | Step::ExpectNoDelivery { server, .. }
                | Step::ExpectEvent { server, .. }
                | Step::ExpectTransfer { server, .. }
                | Step::ExpectQueueEmpty { server, .. }
                | Step::SetEmailDomain { server, .. }
                | Step::RetryQueue { server, .. }
                | Step::ExpectQueued { server, .. }
                | Step::SetRegistry { server, .. }
                | Step::RestartService { server, .. }
                | Step::SetConnector { server, .. }
                | Step::Stop { server, .. }
                | Step::Kill { server, .. }
                | Step::Start { server, .. } => Some(server.clone()),
                Step::Disconnect(l) | Step::Connect(l) => Some(l.server.clone()),
                Step::LinkRate(r) => Some(r.server.clone()),
                Step::Netem(n) => Some(n.server.clone()),
                Step::Wait { .. } => None,
            };
            if let Some(s) = srv
                && !server_names.contains(&s.as_str())
            {
                return Err(format!("steps[{i}]: unknown server {s}"));
            }
            if let Step::ExpectEvent { after: Some(a), .. } = st
                && !self.steps[..i].iter().any(|p| p.name() == Some(a.as_str()))
            {
                return Err(format!("steps[{i}]: after = {a:?} names no earlier step"));
            }
        }
        Ok(())
    }

    /// The organization of a site.
    pub fn org_of<'a>(&'a self, site: &'a Site) -> &'a str {
        site.organization.as_deref().unwrap_or(&self.organizations[0].name)
    }

    /// The site of a server.
    pub fn site_of(&self, server: &Server) -> &Site {
        self.sites.iter().find(|s| s.name == server.site).expect("validated")
    }

    /// A server by name.
    pub fn server(&self, name: &str) -> Option<&Server> {
        self.servers.iter().find(|s| s.name.eq_ignore_ascii_case(name))
    }

    /// Every scenario address used (servers and their interfaces, hosts, DNS), for mapping.
    pub fn addresses(&self) -> Vec<Ipv4Addr> {
        let mut v: Vec<Ipv4Addr> = self.servers.iter().map(|s| s.address).collect();
        v.extend(self.servers.iter().flat_map(|s| s.interfaces.iter().map(|i| i.address)));
        v.extend(self.hosts.iter().map(|h| h.address));
        v.push(self.dns.address);
        v
    }
}
