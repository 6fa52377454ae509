//! The message transfer agent: X.400 P1 over the OSI upper stack on RFC 1006 (DESIGN §4).
//!
//! - [`gwart`]: the Gateway Address Routing Table and KB Q193322 route selection.
//! - [`gateway`]: RFC 5322 ↔ P1/IPM conversion, SMTP ↔ O/R address mapping.
//! - [`assoc`]: the tokio driver of one association.
//! - [`outbound`]: associations we open: source address (Stack IP Address Override), bind,
//!   Threshold-driven extra associations, Lifetime and Disconnect timers, open retries.
//! - [`inbound`]: associations we accept: the Stack address check (9301), reverse lookup,
//!   selectors, the bind check (51), transfers into the queue.
//! - [`dedup`]: the MTS identifiers accepted, so that a transfer sent again after a lost
//!   confirmation is acknowledged without a second delivery.
//! - [`recovery`]: RTSE recovery of a transfer broken after a confirmed checkpoint, resumed
//!   there on a new association within the Recovery timeout (both ends).

pub mod assoc;
pub mod dedup;
pub mod gateway;
pub mod gwart;
pub mod inbound;
pub mod outbound;
pub mod recovery;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::config::{Config, MtaConfig, X400Connector};
use crate::events::catalog;
use crate::netsel::{STACK_IP_ADDRESS_OVERRIDE, mta_parameters_key};

/// The version and build the MTA reports in 9298/9299 (Exchange 5.5 SP4's MTA build).
pub const VERSION: (&str, &str) = ("5.5", "2653.23");

/// Per-connector run-time state.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ConnectorState {
    /// Associations open (idle or busy).
    pub open: usize,
    /// Transfers waiting for or using an association.
    pub waiting: usize,
    /// Consecutive failed opens.
    pub failures: u32,
    /// The Open Retry timer runs until then (ms since the UNIX epoch), if running.
    pub retry_until_ms: Option<i64>,
    /// Associations opened since start.
    pub opened_total: u64,
    /// Messages transferred since start.
    pub transferred_total: u64,
    /// Of those, transfers that broke after a confirmed checkpoint and were resumed there on
    /// a recovering association ([`recovery`]).
    pub recovered_total: u64,
    /// Octets those resumed transfers did not send again (the confirmed part).
    pub recovered_octets: u64,
    /// Incoming transfers resumed here after a recover the sender asked for.
    pub resumed_in_total: u64,
    /// Transfers under way on this connector's associations, both directions (filled in
    /// when the admin API shows the state).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub transfers: Vec<TransferStatus>,
}

/// A transfer under way, as `GET /mta` shows it (per connector, `state.transfers`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TransferStatus {
    /// `out` (we send) or `in` (we receive).
    pub direction: &'static str,
    /// The peer's address (real, as the socket sees it).
    pub peer: String,
    /// Octets of the transfer when known (sending), else 0.
    pub octets: usize,
    /// Octets sent (out) or received (in) so far.
    pub done: usize,
    /// Minor synchronization points (checkpoints) sent (out) or received (in).
    pub checkpoints: u32,
    /// Checkpoints the receiver confirmed (out; equal to `checkpoints` for in).
    pub checkpoints_confirmed: u32,
}

/// One listed association: (id, connector index, direction, peer, progress).
type ListedEntry = (u64, usize, &'static str, std::net::SocketAddr, Arc<Mutex<assoc::Progress>>);

/// The associations of the MTA whose transfers the admin API shows.
#[derive(Default)]
pub struct Transfers {
    next: AtomicU64,
    list: Mutex<Vec<ListedEntry>>,
}

/// Keeps an association listed in [`Transfers`] until dropped.
pub struct Listed<'a> {
    transfers: &'a Transfers,
    id: u64,
}

impl Transfers {
    /// List an association of connector `ci` (`direction` `out` or `in`) whose progress is
    /// published into the returned handle ([`assoc::Conn::set_progress`]).
    pub fn list(&self, ci: usize, direction: &'static str, peer: std::net::SocketAddr) -> (Listed<'_>, Arc<Mutex<assoc::Progress>>) {
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        let p = Arc::new(Mutex::new(assoc::Progress::default()));
        // The address is formatted when the admin API shows it, not for every transfer.
        self.list.lock().expect("transfers").push((id, ci, direction, peer, p.clone()));
        (Listed { transfers: self, id }, p)
    }

    /// The transfers under way on connector `ci`.
    pub fn of(&self, ci: usize) -> Vec<TransferStatus> {
        let list = self.list.lock().expect("transfers");
        list.iter()
            .filter(|e| e.1 == ci)
            .filter_map(|(_, _, direction, peer, p)| {
                let p = *p.lock().expect("progress");
                match *direction {
                    "out" => p.sending.map(|s| TransferStatus {
                        direction,
                        peer: peer.to_string(),
                        octets: s.octets,
                        done: s.sent,
                        checkpoints: s.checkpoints_sent,
                        checkpoints_confirmed: s.checkpoints_confirmed,
                    }),
                    _ => p.receiving.map(|r| TransferStatus {
                        direction,
                        peer: peer.to_string(),
                        octets: 0,
                        done: r.octets,
                        checkpoints: r.checkpoints,
                        checkpoints_confirmed: r.checkpoints,
                    }),
                }
            })
            .collect()
    }
}

impl Drop for Listed<'_> {
    fn drop(&mut self) {
        self.transfers.list.lock().expect("transfers").retain(|e| e.0 != self.id);
    }
}

/// The MTA service of one server.
pub struct Mta {
    /// Settings as of the last (re)start.
    pub cfg: RwLock<MtaConfig>,
    /// `cfg.connectors`, each shared: what [`Mta::connector`] hands out for every message
    /// (a clone of a connector's settings is a dozen allocations).
    connectors: RwLock<Vec<Arc<X400Connector>>>,
    /// Stack IP Address Override per connector (lowercase name), read from the registry at start.
    pub overrides: RwLock<HashMap<String, IpAddr>>,
    /// Per connector, same order as `cfg.connectors`.
    pub state: Mutex<Vec<ConnectorState>>,
    /// The routing table.
    pub gwart: RwLock<gwart::Gwart>,
    /// Idle outbound associations.
    pub pool: outbound::Pool,
    /// Wakes transfers waiting for an association.
    pub notify: tokio::sync::Notify,
    /// Bumped by a restart: pooled associations of an older generation are closed.
    pub generation: AtomicU64,
    /// The MTS identifiers accepted (a transfer sent again is not delivered twice).
    pub dedup: dedup::Dedup,
    /// Associations with their transfer progress (admin API).
    pub transfers: Transfers,
    /// Failed transfers per (connector, MTS identifier), against Max transfer retries.
    pub transfer_failures: Mutex<HashMap<(usize, String), u32>>,
    /// Numbers the session connections of outbound associations (their calling SS-user
    /// reference), so that a recover names one association.
    pub next_session: AtomicU64,
    /// Incoming transfers kept for RTSE recovery, and the associations receiving.
    pub recoveries: recovery::Recoveries,
    /// Per connector index: the messages handed from the delivery workers to that
    /// connector's queue and not yet done, at most `[mta] max_queued_per_connector`
    /// ([`Mta::connector_queue`]). Threshold counts them, as Exchange's MTA counts its
    /// connector queues (DESIGN §4, Override tab). One connector's full queue (a silent
    /// link holds its transfers until the Recovery timeout) never holds up another's.
    queued: Mutex<ConnectorQueues>,
}

/// The connector queues' permits ([`Mta::connector_queue`]), made again at each (re)start:
/// the connectors' indices and `max_queued_per_connector` may have changed. A transfer that
/// holds a permit of the queues before gives it back to them, not to the new ones.
struct ConnectorQueues {
    /// `[mta] max_queued_per_connector` as of the last (re)start, at least 1.
    max: usize,
    /// Per connector index.
    by_connector: HashMap<usize, Arc<tokio::sync::Semaphore>>,
}

impl ConnectorQueues {
    fn new(m: &MtaConfig) -> ConnectorQueues {
        ConnectorQueues { max: m.max_queued_per_connector.max(1), by_connector: HashMap::new() }
    }
}

/// How long a sender may keep trying one message over `c`: Max open retries × Open interval
/// plus (Max transfer retries + 1) × Transfer interval, nominal seconds.
pub fn retry_horizon_secs(c: &X400Connector) -> f64 {
    let o = &c.overrides;
    f64::from(o.max_open_retries) * o.open_interval + f64::from(o.max_transfer_retries + 1) * o.transfer_interval
}

fn shared_connectors(m: &MtaConfig) -> Vec<Arc<X400Connector>> {
    m.connectors.iter().cloned().map(Arc::new).collect()
}

/// Read the Stack IP Address Override of every connector from the registry (KB Q255991).
pub fn read_overrides(cfg: &Config, mta: &MtaConfig) -> HashMap<String, IpAddr> {
    let mut out = HashMap::new();
    for c in &mta.connectors {
        let key = mta_parameters_key(&c.name);
        let val = cfg
            .registry
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&key))
            .and_then(|(_, vals)| vals.iter().find(|(n, _)| n.eq_ignore_ascii_case(STACK_IP_ADDRESS_OVERRIDE)))
            .map(|(_, v)| v.trim().to_string());
        if let Some(v) = val {
            match v.parse::<IpAddr>() {
                Ok(ip) => {
                    out.insert(c.name.to_ascii_lowercase(), ip);
                }
                Err(_) => tracing::warn!(connector = %c.name, value = %v, "Stack IP Address Override is not an IP address; ignored"),
            }
        }
    }
    out
}

impl Mta {
    /// The MTA of a server with an `[mta]` section (None without one); logs 9298. Opens the
    /// record of accepted MTS identifiers in `<data_dir>/mta/`, kept for the longest retry
    /// horizon of the connectors ([`retry_horizon_secs`], on the time scale, at least
    /// [`dedup::MIN_RETENTION`]).
    ///
    /// # Errors
    /// The record cannot be opened (see [`dedup::Dedup::open`]).
    pub fn start(cfg: &Config, events: &crate::events::EventLog) -> anyhow::Result<Option<Mta>> {
        let Some(m) = cfg.mta.as_ref() else { return Ok(None) };
        let horizon = m.connectors.iter().map(retry_horizon_secs).fold(0.0, f64::max) * cfg.server.time_scale;
        let dir = cfg.data_dir().join("mta");
        let dedup = dedup::Dedup::open(&dir, Duration::from_secs_f64(horizon.max(0.0)))
            .map_err(|e| anyhow::anyhow!("opening the record of accepted MTS identifiers in {}: {e}", dir.display()))?;
        let mta = Mta {
            dedup,
            transfers: Transfers::default(),
            transfer_failures: Mutex::new(HashMap::new()),
            next_session: AtomicU64::new(1),
            recoveries: recovery::Recoveries::default(),
            overrides: RwLock::new(read_overrides(cfg, m)),
            state: Mutex::new(vec![ConnectorState::default(); m.connectors.len()]),
            gwart: RwLock::new(gwart::Gwart::build(cfg)),
            connectors: RwLock::new(shared_connectors(m)),
            cfg: RwLock::new(m.clone()),
            pool: outbound::Pool::default(),
            notify: tokio::sync::Notify::new(),
            generation: AtomicU64::new(0),
            queued: Mutex::new(ConnectorQueues::new(m)),
        };
        events.log(catalog::MTA_STARTED, &[VERSION.0, VERSION.1]);
        Ok(Some(mta))
    }

    /// Restart the service (admin action): 9299, re-read the registry and the connectors
    /// (with `max_queued_per_connector`), close pooled associations, reset the Open Retry
    /// timers, 9298.
    pub fn restart(&self, cfg: &Config, events: &crate::events::EventLog) {
        events.log(catalog::MTA_STOPPED, &[VERSION.0, VERSION.1]);
        if let Some(m) = &cfg.mta {
            *self.cfg.write().expect("mta cfg") = m.clone();
            *self.connectors.write().expect("mta connectors") = shared_connectors(m);
            *self.overrides.write().expect("overrides") = read_overrides(cfg, m);
            *self.state.lock().expect("mta state") = vec![ConnectorState::default(); m.connectors.len()];
            *self.queued.lock().expect("connector queues") = ConnectorQueues::new(m);
        }
        self.recalculate_routing(cfg);
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_waiters();
        events.log(catalog::MTA_STARTED, &[VERSION.0, VERSION.1]);
    }

    /// An association of connector `ci` closed (or failed to open): one fewer counted open.
    /// An index a restart left behind changes nothing (the restart reset the counts).
    pub fn association_closed(&self, ci: usize) {
        if let Some(s) = self.state.lock().expect("mta state").get_mut(ci) {
            s.open = s.open.saturating_sub(1);
        }
    }

    /// The queue of connector `ci`: a permit per message queued for transfer over it (see
    /// `[mta] max_queued_per_connector`). A worker takes a permit before it hands a message
    /// to the connector, and the transfer's task gives it back when done.
    pub fn connector_queue(&self, ci: usize) -> Arc<tokio::sync::Semaphore> {
        let mut q = self.queued.lock().expect("connector queues");
        let max = q.max;
        q.by_connector.entry(ci).or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(max))).clone()
    }

    /// Rebuild the GWART (Recalculate Routing).
    pub fn recalculate_routing(&self, cfg: &Config) {
        *self.gwart.write().expect("gwart") = gwart::Gwart::build(cfg);
    }

    /// A connector by index (its settings as of the last (re)start, shared).
    pub fn connector(&self, i: usize) -> Option<Arc<X400Connector>> {
        self.connectors.read().expect("mta connectors").get(i).cloned()
    }

    /// The override of a connector, if the registry had one at start.
    pub fn override_for(&self, connector: &str) -> Option<IpAddr> {
        self.overrides.read().expect("overrides").get(&connector.to_ascii_lowercase()).copied()
    }

    /// The local MTA name and password presented on a connector (Override tab, else the MTA's).
    pub fn local_credentials(&self, c: &X400Connector, server_name: &str) -> (String, String) {
        let pw = c.overrides.local_mta_password.clone().unwrap_or_else(|| self.cfg.read().expect("mta cfg").password.clone());
        (self.local_mta_name(c, server_name), pw)
    }

    /// The local MTA name of [`Mta::local_credentials`] alone (what a transfer's trace
    /// names), without the password.
    pub fn local_mta_name(&self, c: &X400Connector, server_name: &str) -> String {
        c.overrides.local_mta_name.clone().or_else(|| self.cfg.read().expect("mta cfg").name.clone()).unwrap_or_else(|| server_name.to_string())
    }

    /// Is any X.400 connector routing this SMTP domain (an SMTP address space)?
    pub fn has_smtp_route(&self, domain: &str) -> bool {
        self.gwart.read().expect("gwart").route_smtp(domain).iter().any(|l| matches!(l.target, gwart::Target::X400(_)))
    }
}

/// The local stack object's DN, the %1 of event 9301:
/// `/o=ORG/ou=SITE/cn=Configuration/cn=Servers/cn=SRV/cn=TCP (SRV)`.
pub fn stack_dn(cfg: &Config) -> String {
    format!("{}/cn=TCP ({})", cfg.server_dn(), cfg.server.name)
}

/// An IPv4 address as the 9301 event prints it: the octets in hex (145.245.193.27 → `91F5C11B`).
pub fn hex_address(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.octets().iter().map(|o| format!("{o:02X}")).collect(),
        IpAddr::V6(v6) => v6.octets().iter().map(|o| format!("{o:02X}")).collect(),
    }
}

/// The scenario address of a real one (the local lab maps addresses), else itself.
pub fn scenario_address(cfg: &Config, real: IpAddr) -> IpAddr {
    cfg.server.address_map.iter().find(|p| p.real == real).map_or(real, |p| p.scenario)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_reads_max_queued_per_connector_again() {
        let text = |max: usize| {
            format!(
                r#"{}
[mta]
listen = "127.0.0.1:0"
password = "pwA"
max_queued_per_connector = {max}
[[mta.connectors]]
name = "X400 to SiteB"
remote_mta_name = "ServerB"
remote_mta_password = "pwB"
stack_address = "127.0.0.2"
"#,
                crate::config::tests::SAMPLE
            )
        };
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::parse(&text(2)).unwrap();
        cfg.server.data_dir = dir.path().to_path_buf();
        let events = crate::events::EventLog::open(dir.path(), "ServerA").unwrap();
        let m = Mta::start(&cfg, &events).unwrap().unwrap();
        let before = m.connector_queue(0);
        assert_eq!(before.available_permits(), 2);
        let held = before.clone().try_acquire_owned().unwrap();
        let mut again = Config::parse(&text(5)).unwrap();
        again.server.data_dir = dir.path().to_path_buf();
        m.restart(&again, &events);
        let after = m.connector_queue(0);
        assert_eq!(after.available_permits(), 5);
        // A permit taken before the restart goes back where it came from.
        drop(held);
        assert_eq!((before.available_permits(), after.available_permits()), (2, 5));
    }

    #[test]
    fn hex_address_as_in_the_kb() {
        assert_eq!(hex_address("145.245.193.27".parse().unwrap()), "91F5C11B");
        assert_eq!(hex_address("192.168.1.1".parse().unwrap()), "C0A80101");
    }
}
