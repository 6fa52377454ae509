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
    /// Outbound delivery workers. Default 32.
    #[serde(default = "default_workers")]
    pub delivery_workers: usize,
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

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
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
    fn round_trips_through_toml() {
        let c = Config::parse(SAMPLE).unwrap();
        let again = Config::parse(&c.to_toml()).unwrap();
        assert_eq!(again.to_toml(), c.to_toml());
    }
}

impl ImsConfig {
    /// Settings of a server without an IMS (every default, nothing routed).
    pub fn disabled() -> ImsConfig {
        toml::from_str("listen = \"127.0.0.1:0\"").expect("defaults parse")
    }
}
