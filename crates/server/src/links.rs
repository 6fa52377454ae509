//! Emulated network links (the local lab backend): a link of the host can be cut and
//! restored, and its rate limited, through the admin API (`POST /actions/set-link`).
//!
//! On the local backend every lab address lives on `lo`, so there is no cable to pull and no
//! slow line: the server emulates them for its MTA's connections, the way it emulates the
//! kernel's source choice ([`crate::netsel`]). A connection belongs to the link of the
//! interface on the route to its peer ([`crate::netsel::route_interface`]: the connected
//! network or the static route, longest prefix first) — for KB Q255991's servers, every
//! association to the remote site runs over the RAS link, whatever its source address.
//!
//! - **Cut** (`up = false`) behaves like a pulled cable, not like a reset: connections over
//!   the link go silent — nothing is read, nothing is written, no FIN, no RST; a connection
//!   closed meanwhile keeps its last bytes and its FIN until the link is back (as TCP's
//!   retransmissions would deliver them) or for [`PARK_MAX`]; a new outbound connection fails
//!   at once with `ENETUNREACH` ("Network is unreachable"), as a host whose route went away
//!   with the interface says; an inbound connection over the link is held unanswered until
//!   the link is back (its SYN would be retransmitted) or for [`INBOUND_HOLD`].
//! - **Rate** (`rate_kbit`) paces what this server sends over the link: every connection
//!   over it shares one token bucket of `rate_kbit` × 1000 bit/s. What the peer sends is
//!   paced by the peer's own setting (as `tc … tbf` on each end's interface would).
//!
//! In containers (the docker backend) the lab cuts links with `docker network disconnect`
//! and limits them with `tc qdisc … tbf` instead; these settings then stay at their defaults
//! (up, no rate limit).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::{Interface, ServerSection};

/// How long a connection closed while its link is cut keeps its unsent bytes and its FIN
/// (about the time TCP keeps retransmitting, `tcp_retries2` = 15: 924 s).
pub const PARK_MAX: Duration = Duration::from_secs(924);

/// How long an inbound connection over a cut link is held before it is handled anyway (about
/// the time a caller's SYN retransmissions last, `tcp_syn_retries` = 6: 127 s).
pub const INBOUND_HOLD: Duration = Duration::from_secs(127);

/// Most connections parked at once; beyond it a closed connection over a cut link is dropped.
const MAX_PARKED: usize = 256;

/// The state of one link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkState {
    /// Connected (true) or cut (false).
    pub up: bool,
    /// Rate limit of what this server sends over the link, kbit/s (1 kbit = 1000 bit); None
    /// = unlimited.
    pub rate_kbit: Option<u32>,
}

impl Default for LinkState {
    fn default() -> Self {
        LinkState {
            up: true,
            rate_kbit: None,
        }
    }
}

/// Pacing of one link: when it may send next.
#[derive(Debug, Default)]
struct Pacer {
    next_free: Option<Instant>,
}

/// The links of this host, one per interface (keys: interface names in lower case).
pub struct Links {
    tx: watch::Sender<BTreeMap<String, LinkState>>,
    pacers: HashMap<String, Arc<Mutex<Pacer>>>,
    parked: Arc<std::sync::atomic::AtomicUsize>,
}

/// The error a connection attempt over a cut link gets: `ENETUNREACH`, "Network is
/// unreachable (os error 101)" on Linux — what `connect()` says once the route over the
/// removed interface is gone.
pub fn unreachable() -> std::io::Error {
    #[cfg(target_os = "linux")]
    {
        std::io::Error::from_raw_os_error(101)
    }
    #[cfg(not(target_os = "linux"))]
    {
        std::io::Error::new(
            std::io::ErrorKind::NetworkUnreachable,
            "Network is unreachable",
        )
    }
}

impl Links {
    /// Every interface up and unlimited.
    pub fn new(interfaces: &[Interface]) -> Links {
        let names: Vec<String> = interfaces
            .iter()
            .map(|i| i.name.to_ascii_lowercase())
            .collect();
        let (tx, _) = watch::channel(
            names
                .iter()
                .map(|n| (n.clone(), LinkState::default()))
                .collect(),
        );
        Links {
            tx,
            pacers: names.into_iter().map(|n| (n, Arc::default())).collect(),
            parked: Arc::default(),
        }
    }

    /// Every link's state, by interface name (lower case).
    pub fn states(&self) -> BTreeMap<String, LinkState> {
        self.tx.borrow().clone()
    }

    /// Cut or restore a link (`up`) and/or set its rate (`rate_kbit`, 0 = unlimited); fields
    /// left `None` keep their value. Returns the new state.
    ///
    /// # Errors
    /// The interface is not one of this host's (names compare case-insensitively).
    pub fn set(
        &self,
        interface: &str,
        up: Option<bool>,
        rate_kbit: Option<u32>,
    ) -> Result<LinkState, String> {
        let key = interface.to_ascii_lowercase();
        let mut out = Err(format!(
            "no interface {interface:?} on this server (its interfaces: {})",
            self.tx
                .borrow()
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
        self.tx.send_if_modified(|m| {
            let Some(st) = m.get_mut(&key) else {
                return false;
            };
            let before = *st;
            if let Some(u) = up {
                st.up = u;
            }
            if let Some(r) = rate_kbit {
                st.rate_kbit = (r > 0).then_some(r);
            }
            out = Ok(*st);
            *st != before
        });
        out
    }

    /// The link a connection to or from `peer` runs over: the interface on the route to it
    /// (see the module documentation). None when no interface or route covers `peer`; such a
    /// connection is never cut or paced.
    pub fn path(&self, server: &ServerSection, peer: IpAddr) -> Option<LinkPath> {
        let i = crate::netsel::route_interface(&server.interfaces, &server.routes, peer)?;
        let key = i.name.to_ascii_lowercase();
        let pacer = self.pacers.get(&key)?.clone();
        Some(LinkPath {
            interface: i.name.clone(),
            key,
            rx: self.tx.subscribe(),
            pacer,
            parked: self.parked.clone(),
        })
    }
}

/// A connection's view of its link.
pub struct LinkPath {
    /// The interface name as configured (`RAS`, `LAN`, …).
    pub interface: String,
    key: String,
    rx: watch::Receiver<BTreeMap<String, LinkState>>,
    pacer: Arc<Mutex<Pacer>>,
    parked: Arc<std::sync::atomic::AtomicUsize>,
}

impl LinkPath {
    /// The link's state now.
    pub fn state(&self) -> LinkState {
        self.rx.borrow().get(&self.key).copied().unwrap_or_default()
    }

    /// Resolves when any link changes (then look at [`LinkPath::state`] again); never when
    /// the server is going away.
    pub async fn changed(&mut self) {
        if self.rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Wait until the link is up, at most `max`; true when it is.
    pub async fn wait_up(&mut self, max: Duration) -> bool {
        let deadline = Instant::now() + max;
        while !self.state().up {
            if tokio::time::timeout_at(deadline, self.changed())
                .await
                .is_err()
            {
                return self.state().up;
            }
        }
        true
    }

    /// The pacing of a write of up to `want` octets now: when it may start (None = at once)
    /// and how many octets it may carry (about 20 ms of the link's rate, at least 512).
    pub fn pace(&self, want: usize) -> (Option<Instant>, usize) {
        let Some(kbit) = self.state().rate_kbit else {
            return (None, want);
        };
        let bytes_per_sec = u64::from(kbit) * 1000 / 8;
        let chunk = ((bytes_per_sec / 50) as usize).max(512).min(want);
        let at = self
            .pacer
            .lock()
            .expect("pacer")
            .next_free
            .filter(|t| *t > Instant::now());
        (at, chunk)
    }

    /// Account `n` octets just written: the link is busy with them for n × 8 / rate.
    pub fn sent(&self, n: usize) {
        let Some(kbit) = self.state().rate_kbit else {
            return;
        };
        let busy = Duration::from_secs_f64(n as f64 * 8.0 / (f64::from(kbit) * 1000.0));
        let mut p = self.pacer.lock().expect("pacer");
        let now = Instant::now();
        let start = p.next_free.filter(|t| *t > now).unwrap_or(now);
        p.next_free = Some(start + busy);
    }

    /// Take a parking slot for a connection closed while the link is cut; false when
    /// [`MAX_PARKED`] are parked already. Give it back with [`LinkPath::unpark`].
    pub fn try_park(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.parked
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < MAX_PARKED).then_some(n + 1)
            })
            .is_ok()
    }

    /// Give back a parking slot.
    pub fn unpark(&self) {
        self.parked
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StaticRoute;

    fn server() -> ServerSection {
        let mut s: ServerSection =
            toml::from_str("name = \"ServerA\"\ndata_dir = \"data\"").unwrap();
        s.interfaces = vec![
            Interface {
                name: "LAN".into(),
                address: "127.168.200.10".parse().unwrap(),
                prefix: 24,
            },
            Interface {
                name: "RAS".into(),
                address: "127.168.1.1".parse().unwrap(),
                prefix: 29,
            },
        ];
        s.routes = vec![StaticRoute {
            destination: "127.168.100.0/24".parse().unwrap(),
            interface: "RAS".into(),
            gateway: None,
        }];
        s
    }

    #[tokio::test]
    async fn a_cut_link_is_seen_by_its_connections_only() {
        let srv = server();
        let links = Links::new(&srv.interfaces);
        let mut ras = links.path(&srv, "127.168.100.15".parse().unwrap()).unwrap();
        let lan = links.path(&srv, "127.168.200.7".parse().unwrap()).unwrap();
        assert_eq!(
            (ras.interface.as_str(), lan.interface.as_str()),
            ("RAS", "LAN")
        );
        assert!(links.path(&srv, "127.0.0.1".parse().unwrap()).is_none());
        assert!(ras.state().up);
        assert_eq!(
            links.set("ras", Some(false), None).unwrap(),
            LinkState {
                up: false,
                rate_kbit: None
            }
        );
        assert!(!ras.state().up && lan.state().up);
        assert!(!ras.wait_up(Duration::from_millis(20)).await);
        let waiter = tokio::spawn(async move { ras.wait_up(Duration::from_secs(5)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        links.set("RAS", Some(true), None).unwrap();
        assert!(waiter.await.unwrap());
        assert!(
            links
                .set("WAN", Some(false), None)
                .unwrap_err()
                .contains("lan, ras")
        );
        assert_eq!(
            unreachable().to_string(),
            "Network is unreachable (os error 101)"
        );
    }

    #[tokio::test]
    async fn the_rate_paces_every_connection_of_the_link() {
        let srv = server();
        let links = Links::new(&srv.interfaces);
        let a = links.path(&srv, "127.168.100.15".parse().unwrap()).unwrap();
        let b = links.path(&srv, "127.168.100.16".parse().unwrap()).unwrap();
        assert_eq!(a.pace(100_000), (None, 100_000));
        links.set("RAS", None, Some(800)).unwrap();
        // 800 kbit/s = 100 000 octets/s: 2000-octet chunks (20 ms).
        let (at, chunk) = a.pace(100_000);
        assert_eq!((at, chunk), (None, 2000));
        a.sent(10_000);
        // The link is busy for 100 ms, for the other connection too.
        let (at, _) = b.pace(100);
        let wait = at.unwrap() - Instant::now();
        assert!(
            wait > Duration::from_millis(80) && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        assert_eq!(links.set("RAS", None, Some(0)).unwrap().rate_kbit, None);
        assert_eq!(b.pace(100), (None, 100));
    }
}
