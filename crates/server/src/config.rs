//! The server configuration file: one TOML document per emulated Exchange server, mirroring
//! the objects of the Exchange Administrator program (organization, site, server, Site
//! Addressing, recipients, Internet Mail Service) — DESIGN §2.
//!
//! Every table uses `deny_unknown_fields`; a parse error names the file, the line and the key.
//!
//! ```toml
//! [organization]
//! name = "ExchangeORG"
//! [site]
//! name = "SiteA"
//! [server]
//! name = "ServerA"
//! data_dir = "data"            # relative to this file
//! [site_addressing]
//! smtp = "@SiteA.microsoft.com"
//! x400 = { c = "US", a = " ", p = "ExchangeORG", o = "SiteA" }
//! [[recipients]]
//! alias = "JohnS"
//! given = "John"
//! surname = "Smith"
//! [ims]
//! listen = "127.10.10.10:2525"
//! [admin]
//! listen = "127.10.10.10:8025"
//! ```

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Errors loading a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// TOML syntax or schema error; the message names the line, column and key.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message (line, column, offending key).
        message: String,
    },
    /// A value that parses but makes no sense (e.g. a duplicate alias).
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
}

/// The whole server configuration (one `server.toml`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The organization object.
    pub organization: Named,
    /// The site object (its directory name, not the display name — KB Q196927).
    pub site: Named,
    /// The server object and daemon-wide settings.
    pub server: ServerSection,
    /// Site Addressing: the SMTP site address and proxy generator, the X.400 site address.
    pub site_addressing: SiteAddressingConfig,
    /// Mailboxes homed on this server.
    #[serde(default)]
    pub recipients: Vec<RecipientConfig>,
    /// Internet Mail Service; absent = the IMS is not installed on this server.
    #[serde(default)]
    pub ims: Option<ImsConfig>,
    /// Message transfer agent (X.400 over RFC 1006); absent = the MTA is not running.
    #[serde(default)]
    pub mta: Option<MtaConfig>,
    /// Admin API (HTTP on loopback).
    pub admin: AdminConfig,
    /// Registry values, keyed by key path below
    /// `HKLM\SYSTEM\CurrentControlSet\Services\` (e.g. `MSExchangeMTA\Parameters\<connector RDN>`),
    /// then value name → REG_SZ data. Read at service start.
    #[serde(default)]
    pub registry: BTreeMap<String, BTreeMap<String, String>>,
    /// Directory of the file this was loaded from (for relative paths); not part of the file.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// An object known by its directory name.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Named {
    /// Directory name (RDN value), e.g. `ExchangeORG`, `SiteA`.
    pub name: String,
}

/// `[server]`: the server object plus daemon settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// NetBIOS name of the server, e.g. `ServerA`.
    pub name: String,
    /// Data directory (queue, mailboxes, event log); relative paths are relative to the config file.
    pub data_dir: PathBuf,
    /// Multiplier applied to every protocol timer (retry intervals, expiry): `0.01` runs a
    /// 600 s interval in 6 s. DESIGN §1. Default 1.0.
    #[serde(default = "default_time_scale")]
    pub time_scale: f64,
    /// The scenario address this server has when the lab maps addresses (shown in events
    /// and reports next to the real one). Optional.
    #[serde(default)]
    pub scenario_address: Option<IpAddr>,
    /// The host's network interfaces (a NIC, a RAS link's WAN wrapper), for source address
    /// selection and the Stack IP Address Override (KB Q255991).
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    /// Static routes (KB Q255991 "Step Two: Create the Static Route").
    #[serde(default)]
    pub routes: Vec<StaticRoute>,
    /// Pick outbound source addresses the way the kernel would from `interfaces` and
    /// `routes` (the local lab backend, where every address lives on `lo` and the kernel
    /// cannot choose). Off in containers, where the kernel chooses. Default false.
    #[serde(default)]
    pub emulate_source_selection: bool,
    /// Add `routes` to the host's routing table at start and keep them there (over netlink;
    /// needs CAP_NET_ADMIN): the docker lab, where each server has a network namespace of its
    /// own and the kernel chooses source addresses. Default false.
    #[serde(default)]
    pub apply_routes: bool,
    /// Scenario address ↔ real address pairs (the local lab maps addresses into
    /// 127.0.0.0/8): events show the scenario address, as the KB articles do.
    #[serde(default)]
    pub address_map: Vec<AddressPair>,
}

/// A network interface of the emulated host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    /// Name, e.g. `LAN` or `RAS`.
    pub name: String,
    /// Its address.
    pub address: IpAddr,
    /// Prefix length of the attached network, e.g. 24 (the connected route).
    pub prefix: u8,
}

/// A static route: a destination network reached through an interface.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StaticRoute {
    /// Destination network, e.g. `192.168.100.0/24`.
    pub destination: ipnet::IpNet,
    /// Interface name (e.g. the demand-dial interface `RAS`).
    pub interface: String,
    /// Gateway as the article gives it (informational on the local backend).
    #[serde(default)]
    pub gateway: Option<IpAddr>,
}

/// One scenario ↔ real address pair.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AddressPair {
    /// Address in the scenario (the KB article's).
    pub scenario: IpAddr,
    /// Address actually used.
    pub real: IpAddr,
}

/// `[mta]` — the message transfer agent (DESIGN §4).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MtaConfig {
    /// RFC 1006 listening address (port 102 in containers, a configured port on loopback).
    pub listen: SocketAddr,
    /// Local MTA name (default: the server name).
    #[serde(default)]
    pub name: Option<String>,
    /// Local MTA password (default empty).
    #[serde(default)]
    pub password: String,
    /// Port of remote MTAs when a Stack address gives none (102 in real life).
    #[serde(default = "default_p1_port")]
    pub remote_port: u16,
    /// Local TSAP/SSAP/PSAP accepted on incoming associations (the MTA's own selectors).
    #[serde(default)]
    pub selectors: Selectors,
    /// X.400 connectors, one per remote MTA.
    #[serde(default)]
    pub connectors: Vec<X400Connector>,
    /// Most messages queued for transfer over one connector at once (waiting for or
    /// crossing an association); Threshold counts them. Beyond it a message waits in the
    /// IMS queue and is tried again after the connector's Transfer interval. Default 256.
    /// Read at MTA start and at an MTA restart (admin action).
    #[serde(default = "default_max_queued", skip_serializing_if = "is_default_max_queued")]
    pub max_queued_per_connector: usize,
}

fn default_p1_port() -> u16 {
    102
}

impl MtaConfig {
    /// The default of [`MtaConfig::max_queued_per_connector`].
    pub const DEFAULT_MAX_QUEUED: usize = 256;
}

fn default_max_queued() -> usize {
    MtaConfig::DEFAULT_MAX_QUEUED
}

fn is_default_max_queued(n: &usize) -> bool {
    *n == default_max_queued()
}

/// Transport, session and presentation selectors. Text is used as its ASCII octets; a
/// value starting `hex:` is hexadecimal octets.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Selectors {
    /// T selector.
    #[serde(default)]
    pub tsel: String,
    /// S selector.
    #[serde(default)]
    pub ssel: String,
    /// P selector.
    #[serde(default)]
    pub psel: String,
}

impl Selectors {
    /// Decode a selector string to octets.
    pub fn octets(s: &str) -> Result<Vec<u8>, String> {
        match s.strip_prefix("hex:") {
            None => Ok(s.as_bytes().to_vec()),
            Some(h) => (0..h.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(h.get(i..i + 2).ok_or("odd hex length")?, 16).map_err(|e| e.to_string()))
                .collect(),
        }
    }
}

/// One X.400 connector (Administrator: General, Stack, Override, Advanced, Address Space,
/// Connected Sites tabs).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct X400Connector {
    /// Directory name (RDN) of the connector; the registry key of its Stack IP Address
    /// Override is `MSExchangeMTA\Parameters\<name>`.
    pub name: String,
    /// General: remote MTA name (at most 32 characters).
    pub remote_mta_name: String,
    /// General: remote MTA password (at most 64, case-sensitive).
    #[serde(default)]
    pub remote_mta_password: String,
    /// Stack: remote host name or IP address (optionally `ip:port`).
    pub stack_address: String,
    /// Stack: outgoing selectors.
    #[serde(default)]
    pub outgoing: Selectors,
    /// Stack: incoming selectors (default: the outgoing ones).
    #[serde(default)]
    pub incoming: Option<Selectors>,
    /// Override tab.
    #[serde(default, rename = "override")]
    pub overrides: Override,
    /// Advanced tab.
    #[serde(default)]
    pub advanced: Advanced,
    /// Address Space tab.
    #[serde(default)]
    pub address_space: Vec<AddressSpace>,
    /// Connected Sites tab.
    #[serde(default)]
    pub connected_sites: Vec<MtaConnectedSite>,
}

/// Override tab. Exchange defaults; KB Q255991 RRAS values in brackets.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Override {
    /// Local MTA name presented to this connector's remote MTA (default: the MTA's name).
    pub local_mta_name: Option<String>,
    /// Local MTA password presented (default: the MTA's password).
    pub local_mta_password: Option<String>,
    /// Checkpoint size, K (30) [15]. 0 = no checkpointing.
    pub checkpoint_size_k: u32,
    /// Recovery timeout, seconds (60) [30].
    pub recovery_timeout: f64,
    /// Window size (5).
    pub window_size: u32,
    /// Max open retries (144) [7].
    pub max_open_retries: u32,
    /// Max transfer retries (2).
    pub max_transfer_retries: u32,
    /// Open interval, seconds (600) [120].
    pub open_interval: f64,
    /// Transfer interval, seconds (120).
    pub transfer_interval: f64,
    /// Association lifetime, seconds (300) [15].
    pub lifetime: f64,
    /// Disconnect timer, seconds (120) [15].
    pub disconnect: f64,
    /// Threshold: queued messages per extra association (50).
    pub threshold: u32,
}

impl Default for Override {
    fn default() -> Self {
        Override {
            local_mta_name: None,
            local_mta_password: None,
            checkpoint_size_k: 30,
            recovery_timeout: 60.0,
            window_size: 5,
            max_open_retries: 144,
            max_transfer_retries: 2,
            open_interval: 600.0,
            transfer_interval: 120.0,
            lifetime: 300.0,
            disconnect: 120.0,
            threshold: 50,
        }
    }
}

/// Advanced tab.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Advanced {
    /// X.400 conformance.
    pub conformance: Conformance,
    /// Two-way alternate dialogue mode (default true).
    pub two_way_alternate: bool,
}

impl Default for Advanced {
    fn default() -> Self {
        Advanced { conformance: Conformance::Normal1988, two_way_alternate: true }
    }
}

/// X.400 conformance (Advanced tab).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Conformance {
    /// 1984.
    #[serde(rename = "1984")]
    X1984,
    /// 1988 X.410 mode.
    #[serde(rename = "1988-x410")]
    X410Mode1988,
    /// 1988 normal mode (default).
    #[serde(rename = "1988-normal")]
    Normal1988,
}

/// An address space entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AddressSpace {
    /// Type: `X400` or `SMTP`.
    #[serde(rename = "type")]
    pub kind: String,
    /// X.400: mnemonic prefix (`c=US;a= ;p=ExchangeORG;o=SiteB`); SMTP: domain pattern.
    pub address: String,
    /// Cost 1–100.
    #[serde(default = "default_cost")]
    pub cost: u8,
}

/// A Connected Sites entry of an X.400 connector.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MtaConnectedSite {
    /// Remote site.
    pub site: String,
    /// Organization (default this one).
    #[serde(default)]
    pub organization: Option<String>,
    /// X.400 routing address (the remote site's X.400 site address).
    pub routing_address: String,
    /// Cost.
    #[serde(default = "default_cost")]
    pub cost: u8,
}

fn default_time_scale() -> f64 {
    1.0
}

/// `[site_addressing]` — Site Addressing object, Site Addressing tab (KB Q196927).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteAddressingConfig {
    /// Site SMTP address, e.g. `@SiteA.microsoft.com`.
    pub smtp: String,
    /// Proxy generator for the local part (`%m` alias — the default, `%g.%s`, `%1g%s`, `%rxy`).
    #[serde(default)]
    pub smtp_generator: Option<String>,
    /// X.400 site address.
    pub x400: X400Config,
}

/// X.400 site address fields (`c=US;a= ;p=ORG;o=SITE`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct X400Config {
    /// Country.
    pub c: String,
    /// ADMD; one space means none.
    #[serde(default = "one_space")]
    pub a: String,
    /// PRMD (the organization by default in Exchange).
    pub p: String,
    /// Organization (the site by default in Exchange).
    pub o: String,
}

fn one_space() -> String {
    " ".into()
}

/// `[[recipients]]` — a mailbox homed on this server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipientConfig {
    /// Alias (mailbox name; also the Maildir directory name).
    pub alias: String,
    /// First name.
    #[serde(default)]
    pub given: String,
    /// Last name.
    #[serde(default)]
    pub surname: String,
    /// Display name; default "Given Surname".
    #[serde(default)]
    pub display_name: Option<String>,
}

/// `[ims]` — the Internet Mail Service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImsConfig {
    /// SMTP listening address (port 25 in containers, an unprivileged port on loopback).
    pub listen: SocketAddr,
    /// Host name used in the greeting, EHLO and Received headers; default `<server>.<site domain>`.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Port used to connect to remote SMTP hosts (25 in real life; a lab-wide port on loopback).
    #[serde(default = "default_smtp_port")]
    pub remote_port: u16,
    /// Source address for outbound SMTP connections; default: the listen address's IP.
    #[serde(default)]
    pub source_address: Option<IpAddr>,
    /// DNS servers (ip:port) used for MX/A lookups; empty = DNS routing unavailable.
    #[serde(default)]
    pub dns_servers: Vec<SocketAddr>,
    /// Address space of the IMS connector: SMTP domains it routes to (`*` all, `*.d`
    /// subdomains of d, or an exact domain). Mail to a remote domain outside it is refused.
    #[serde(default)]
    pub address_space: Vec<String>,
    /// Hosts allowed to relay through this IMS (CIDR). Others may only send to local recipients.
    #[serde(default)]
    pub relay_from: Vec<ipnet::IpNet>,
    /// Routing tab, "Reroute incoming SMTP mail": the routing table. The most specific entry
    /// whose domain matches the recipient's (rightmost whole labels) decides.
    #[serde(default)]
    pub reroute: Vec<RerouteEntry>,
    /// Connections tab → E-Mail Domain: "Forward all messages for this domain to host".
    #[serde(default)]
    pub email_domains: Vec<EmailDomainRoute>,
    /// Connected Sites tab: remote sites reached over this IMS, with their SMTP routing address.
    #[serde(default)]
    pub connected_sites: Vec<ConnectedSite>,
    /// Largest message accepted, octets (SIZE, RFC 1870). Default 10 MiB.
    #[serde(default = "default_max_message_size")]
    pub max_message_size: usize,
    /// Recipients per message (RFC 5321 §4.5.3.1.8 minimum 100). Default 100.
    #[serde(default = "default_max_recipients")]
    pub max_recipients: usize,
    /// Protocol errors before a session is closed with 421. Default 10.
    #[serde(default = "default_max_errors")]
    pub max_errors: u32,
    /// Seconds without a complete line before the session is closed with 421 (RFC 5321
    /// §4.5.3.2.7: 5 minutes). Not scaled by time_scale. Default 300.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: f64,
    /// Largest number of Received: headers before a message is refused as looping. Default 30.
    #[serde(default = "default_max_hops")]
    pub max_hops: usize,
    /// Retry intervals in seconds, the last repeating (Exchange IMS default: 0.15, 0.25, 0.5,
    /// 1 hours). Scaled by time_scale.
    #[serde(default = "default_retry_intervals")]
    pub retry_intervals_secs: Vec<f64>,
    /// Seconds after which an undelivered message expires and is returned with a DSN
    /// (Exchange IMS default 48 hours). Scaled by time_scale.
    #[serde(default = "default_expire")]
    pub expire_secs: f64,
    /// Outbound delivery workers. Each sends over one connection at a time, so this is also
    /// the most outbound SMTP connections in use at once (the Connections tab's "Maximum
    /// number of outbound connections", KB Q146562; idle ones kept for reuse close after 5
    /// s). Default 32.
    #[serde(default = "default_workers")]
    pub delivery_workers: usize,
    /// Connections tab → Advanced, "Maximum number of connections to a single host" (KB
    /// Q146562): at most this many outbound SMTP connections at once to one next-hop address
    /// (1 for a single-threaded gateway such as MS Mail 3.x's). A delivery that finds them
    /// all busy waits for one up to a second, then leaves the message queued and tries again
    /// a second later, without counting a retry. Default: no limit but `delivery_workers`.
    #[serde(default)]
    pub max_connections_per_host: Option<usize>,
    /// Connections tab → Advanced, "Maximum number of messages sent in a connection" (KB
    /// Q146562): after this many a connection is closed (QUIT) instead of kept for the next
    /// message, which then opens a new one. Default: no limit.
    #[serde(default)]
    pub max_messages_per_connection: Option<usize>,
    /// Connections tab → Advanced, "Maximum number of inbound connections" (KB Q146562):
    /// SMTP sessions served at once. A connection beyond them is answered `421 4.3.2` and
    /// closed (RFC 5321 §3.8, RFC 3463 X.3.2). Read when the IMS starts. Default: no limit.
    #[serde(default)]
    pub max_inbound_connections: Option<usize>,
}

fn default_smtp_port() -> u16 {
    25
}
fn default_max_message_size() -> usize {
    10 * 1024 * 1024
}
fn default_max_recipients() -> usize {
    100
}
fn default_max_errors() -> u32 {
    10
}
fn default_idle_timeout() -> f64 {
    300.0
}
fn default_max_hops() -> usize {
    30
}
fn default_retry_intervals() -> Vec<f64> {
    vec![540.0, 900.0, 1800.0, 3600.0]
}
fn default_expire() -> f64 {
    48.0 * 3600.0
}
fn default_workers() -> usize {
    32
}

/// One E-Mail Domain entry (KB Q196927 "Making Domain-Specific Routing Entries").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EmailDomainRoute {
    /// The e-mail domain, e.g. `SiteB.microsoft.com`; also matches its subdomains.
    pub domain: String,
    /// Hosts to forward to: `ip`, `ip:port` or a host name; several = round robin, dead ones skipped.
    pub hosts: Vec<String>,
}

/// One entry of the IMS routing table ("Reroute incoming SMTP mail", Routing tab).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RerouteEntry {
    /// "Sent to" domain; also matches its subdomains.
    pub domain: String,
    /// "Route to": `inbound` (delivered by this site), or a domain whose next hop is used
    /// (RCPT TO unchanged; relay restrictions apply).
    pub route_to: String,
}

impl RerouteEntry {
    /// True for an `<inbound>` entry.
    pub fn is_inbound(&self) -> bool {
        let r = self.route_to.trim_matches(|c| c == '<' || c == '>');
        r.eq_ignore_ascii_case("inbound")
    }
}

/// One Connected Sites entry of the IMS (KB Q196927 "How to Set Up ... Connectors to the Remote Sites").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConnectedSite {
    /// Remote site directory name, e.g. `SiteB`.
    pub site: String,
    /// Organization; default this server's.
    #[serde(default)]
    pub organization: Option<String>,
    /// Routing address of type SMTP, e.g. `@SiteB.microsoft.com`.
    pub routing_address: String,
    /// Cost 1–100. Default 1.
    #[serde(default = "default_cost")]
    pub cost: u8,
}

fn default_cost() -> u8 {
    1
}

/// `[admin]` — the admin API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// HTTP listen address (loopback only in the local lab).
    pub listen: SocketAddr,
}

impl Config {
    /// Load and validate a file. Errors name the file, line and key.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut cfg = Config::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })?;
        cfg.base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        cfg.validate().map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })?;
        Ok(cfg)
    }

    /// Parse TOML text; the error string carries line, column and key.
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str::<Config>(text).map_err(|e| e.to_string().trim_end().to_string())
    }

    /// Serialize back to TOML (the lab renders configs with this).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serializes")
    }

    fn validate(&self) -> Result<(), String> {
        if !(self.server.time_scale > 0.0 && self.server.time_scale.is_finite()) {
            return Err("server.time_scale must be a positive number".into());
        }
        if !self.site_addressing.smtp.starts_with('@') {
            return Err(format!(
                "site_addressing.smtp = {:?}: a site address starts with '@'",
                self.site_addressing.smtp
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, r) in self.recipients.iter().enumerate() {
            if r.alias.is_empty() || r.alias.starts_with('.') {
                return Err(format!("recipients[{i}].alias {:?} is not a valid alias", r.alias));
            }
            if r.alias.contains(['/', '\\']) {
                return Err(format!("recipients[{i}].alias {:?} may not contain '/' or '\\'", r.alias));
            }
            if !seen.insert(r.alias.to_ascii_lowercase()) {
                return Err(format!("recipients[{i}].alias {:?} is a duplicate", r.alias));
            }
        }
        if let Some(ims) = &self.ims {
            if ims.retry_intervals_secs.is_empty() {
                return Err("ims.retry_intervals_secs must not be empty".into());
            }
            for (i, r) in ims.email_domains.iter().enumerate() {
                if r.hosts.is_empty() {
                    return Err(format!("ims.email_domains[{i}] ({}) has no hosts", r.domain));
                }
            }
            for (i, c) in ims.connected_sites.iter().enumerate() {
                if !c.routing_address.starts_with('@') {
                    return Err(format!(
                        "ims.connected_sites[{i}].routing_address {:?} must be an SMTP address like @SiteB.example.com",
                        c.routing_address
                    ));
                }
            }
            if ims.max_recipients == 0 || ims.max_message_size == 0 {
                return Err("ims.max_recipients and ims.max_message_size must be positive".into());
            }
            for (name, v) in [
                ("max_connections_per_host", ims.max_connections_per_host),
                ("max_messages_per_connection", ims.max_messages_per_connection),
                ("max_inbound_connections", ims.max_inbound_connections),
            ] {
                if v == Some(0) {
                    return Err(format!("ims.{name} must be at least 1 (leave it out for no limit)"));
                }
            }
        }
        Ok(())
    }

    /// The data directory, resolved against the config file's directory.
    pub fn data_dir(&self) -> PathBuf {
        if self.server.data_dir.is_absolute() {
            self.server.data_dir.clone()
        } else {
            self.base_dir.join(&self.server.data_dir)
        }
    }

    /// The site's SMTP domain (site address without '@'), lowercase.
    pub fn site_domain(&self) -> String {
        self.site_addressing.smtp.trim_start_matches('@').to_ascii_lowercase()
    }

    /// The IMS host name (greeting, Received headers).
    pub fn ims_hostname(&self) -> String {
        self.ims
            .as_ref()
            .and_then(|i| i.hostname.clone())
            .unwrap_or_else(|| format!("{}.{}", self.server.name, self.site_domain()))
    }

    /// The server DN, `/o=ORG/ou=SITE/cn=Configuration/cn=Servers/cn=SRV` (DESIGN §2).
    pub fn server_dn(&self) -> String {
        format!(
            "/o={}/ou={}/cn=Configuration/cn=Servers/cn={}",
            self.organization.name, self.site.name, self.server.name
        )
    }
}

impl ImsConfig {
    /// Settings of a server without an IMS (every default, nothing routed).
    pub fn disabled() -> ImsConfig {
        toml::from_str("listen = \"127.0.0.1:0\"").expect("defaults parse")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A server of SiteA with one mailbox, an IMS and its admin API (other modules' tests
    /// add their sections to it).
    pub(crate) const SAMPLE: &str = r#"
[organization]
name = "ExchangeORG"
[site]
name = "SiteA"
[server]
name = "ServerA"
data_dir = "data"
[site_addressing]
smtp = "@SiteA.microsoft.com"
x400 = { c = "US", p = "ExchangeORG", o = "SiteA" }
[[recipients]]
alias = "JohnS"
given = "John"
surname = "Smith"
[ims]
listen = "127.10.10.10:2525"
[[ims.email_domains]]
domain = "SiteB.microsoft.com"
hosts = ["127.10.10.15"]
[admin]
listen = "127.10.10.10:8025"
"#;

    #[test]
    fn sample_parses_with_defaults() {
        let c = Config::parse(SAMPLE).unwrap();
        assert_eq!(c.site_addressing.x400.a, " ");
        let ims = c.ims.unwrap();
        assert_eq!(ims.remote_port, 25);
        assert_eq!(ims.max_recipients, 100);
        assert_eq!(ims.email_domains[0].hosts, vec!["127.10.10.15".to_string()]);
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let bad = SAMPLE.replace("listen = \"127.10.10.10:2525\"", "listen = \"127.10.10.10:2525\"\nlisen = 1");
        let err = Config::parse(&bad).unwrap_err();
        assert!(err.contains("lisen"), "{err}");
        assert!(err.contains("line 18"), "{err}");
    }

    #[test]
    fn a_limit_of_zero_connections_or_messages_is_refused() {
        let with = |v: &str| Config::parse(&SAMPLE.replace("[[ims.email_domains]]", &format!("max_connections_per_host = {v}\n[[ims.email_domains]]"))).unwrap();
        assert_eq!(Config::parse(SAMPLE).unwrap().ims.unwrap().max_connections_per_host, None);
        assert_eq!(with("1").ims.as_ref().unwrap().max_connections_per_host, Some(1));
        assert!(with("1").validate().is_ok());
        let err = with("0").validate().unwrap_err();
        assert!(err.contains("max_connections_per_host"), "{err}");
        for name in ["max_messages_per_connection", "max_inbound_connections"] {
            let c = Config::parse(&SAMPLE.replace("[[ims.email_domains]]", &format!("{name} = 0\n[[ims.email_domains]]"))).unwrap();
            let err = c.validate().unwrap_err();
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn round_trips_through_toml() {
        let c = Config::parse(SAMPLE).unwrap();
        let again = Config::parse(&c.to_toml()).unwrap();
        assert_eq!(again.to_toml(), c.to_toml());
    }
}
