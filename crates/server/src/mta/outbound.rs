//! Associations this MTA opens (DESIGN §4, KB Q255991): the source address (the Stack IP
//! Address Override, else the interface on the route), the MTA bind and the check of the
//! responder's credentials (48), Threshold-driven extra associations (up to 10 per remote
//! MTA), Lifetime and Disconnect timers, and the open failures that start the Open Retry
//! timer (9215, 289, 301).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mtalab_osi::association::{AbortReason, Association, AssociationConfig, DialogueMode, Event};
use mtalab_p1::{MtaBindArgument, MtaBindError, MtaBindResult};
use tokio::net::TcpSocket;

use crate::Ctx;
use crate::config::{Selectors, X400Connector};
use crate::events::catalog;
use crate::mta::assoc::{Conn, DriveError};

/// Most associations to one remote MTA (DESIGN §4).
pub const MAX_ASSOCIATIONS: usize = 10;
/// How long establishment (CC, AC) may take.
pub(crate) const OPEN_WAIT: Duration = Duration::from_secs(30);
/// The least Recovery timeout, whatever the time scale makes of the connector's: the time
/// scale compresses the protocol's timers, not the line, and a checkpoint needs time to cross
/// it (and the host time to answer it) before its acknowledgement is overdue.
pub const MIN_RECOVERY_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a transfer may go without an event.
pub(crate) const TRANSFER_WAIT: Duration = Duration::from_secs(120);

struct Pooled {
    conn: Conn,
    opened: Instant,
    idle_since: Instant,
    generation: u64,
}

/// Idle bound associations per connector.
#[derive(Default)]
pub struct Pool {
    idle: std::sync::Mutex<HashMap<usize, Vec<Pooled>>>,
}

/// Why a transfer over a connector failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// No association could be opened (connect, bind, refusal): counts as an open retry.
    #[error("{0}")]
    Open(String),
    /// The association broke during the transfer.
    #[error("{0}")]
    Transfer(String),
    /// The connector's Open Retry timer is running: the message waits this long (it does
    /// not count as an open attempt of the message).
    #[error("waiting for the open retry timer of the connector")]
    Deferred(Duration),
}

fn octets(s: &str) -> Vec<u8> {
    Selectors::octets(s).unwrap_or_else(|_| s.as_bytes().to_vec())
}

/// The association settings of a connector (Stack and Override tabs).
pub fn association_config(ctx: &Ctx, c: &X400Connector) -> AssociationConfig {
    let local = ctx.mta.as_ref().map(|m| m.cfg.read().expect("mta cfg").selectors.clone()).unwrap_or_default();
    let o = &c.overrides;
    AssociationConfig {
        local_tsap: octets(&local.tsel),
        remote_tsap: octets(&c.outgoing.tsel),
        local_ssap: octets(&local.ssel),
        remote_ssap: octets(&c.outgoing.ssel),
        local_psap: octets(&local.psel),
        remote_psap: octets(&c.outgoing.psel),
        checkpoint_size: o.checkpoint_size_k,
        window_size: o.window_size.max(1),
        dialogue_mode: if c.advanced.two_way_alternate { DialogueMode::TwoWayAlternate } else { DialogueMode::Monologue },
        recovery_timeout: crate::mta::recovery::window(ctx, c),
        ..AssociationConfig::default()
    }
}

/// Where a connector's Stack address points.
async fn stack_target(ctx: &Ctx, c: &X400Connector, port: u16) -> Result<SocketAddr, String> {
    let s = c.stack_address.trim();
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Ok(sa);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let r = ctx.resolver.as_ref().ok_or_else(|| format!("cannot resolve Stack host {s}: no DNS server configured"))?;
    let ips = r.host_addrs(s).await.map_err(|e| format!("cannot resolve Stack host {s}: {e}"))?;
    ips.first().map(|ip| SocketAddr::new(*ip, port)).ok_or_else(|| format!("no address for Stack host {s}"))
}

/// The source address of a connector's outbound connections: the Stack IP Address Override
/// when the registry had one at MTA start, else (on the local lab backend) the interface on
/// the route, else the OS's choice.
pub fn source_address(ctx: &Ctx, c: &X400Connector, dest: IpAddr) -> Option<IpAddr> {
    if let Some(ip) = ctx.mta.as_ref().and_then(|m| m.override_for(&c.name)) {
        return Some(ip);
    }
    let cfg = ctx.cfg.read().expect("cfg lock");
    if cfg.server.emulate_source_selection {
        return crate::netsel::route_source(&cfg.server.interfaces, &cfg.server.routes, dest);
    }
    None
}

fn log_open_failed(ctx: &Ctx, ci: usize, c: &X400Connector, why: &str) {
    ctx.events.log(catalog::MTA_OPEN_FAILED, &[&c.name, &c.remote_mta_name, why]);
    if let Some(m) = &ctx.mta {
        let (n, delay) = {
            let mut st = m.state.lock().expect("mta state");
            let s = &mut st[ci];
            s.failures += 1;
            let delay = ctx.scaled(c.overrides.open_interval);
            s.retry_until_ms = Some(chrono::Utc::now().timestamp_millis() + delay.as_millis() as i64);
            (s.failures, delay)
        };
        ctx.events.log(
            catalog::MTA_OPEN_RETRY,
            &[&c.name, &format!("{}", c.overrides.open_interval as u64), &n.to_string(), &c.overrides.max_open_retries.to_string()],
        );
        tracing::info!(connector = %c.name, real_delay = ?delay, "open retry timer started");
    }
}

/// The TCP connection of a new association over connector `c`: to its Stack address, from
/// [`source_address`], over the local lab's emulated link when there is one (returned with
/// it). A failure is logged (9215) and returned as text.
pub async fn connect(ctx: &Ctx, c: &X400Connector) -> Result<(tokio::net::TcpStream, SocketAddr, Option<crate::links::LinkPath>), String> {
    let port = ctx.mta.as_ref().map_or(102, |m| m.cfg.read().expect("mta cfg").remote_port);
    let dest = stack_target(ctx, c, port).await?;
    let src = source_address(ctx, c, dest.ip());
    // Events name the remote MTA's address as the scenario knows it (the local lab maps
    // scenario addresses onto loopback ones); the log keeps the real one.
    let shown = ctx.shown_ip(dest.ip()).to_string();
    // The local lab's emulated link on the route to the remote MTA (crate::links): a cut
    // link refuses the connection at once, as a host whose route went away says.
    let link = {
        let cfg = ctx.cfg.read().expect("cfg lock");
        ctx.links.path(&cfg.server, dest.ip())
    };
    if let Some(l) = &link
        && !l.state().up
    {
        let e = crate::links::unreachable();
        ctx.events.log(catalog::MTA_CONNECT_FAILED, &[&shown, &e.to_string()]);
        return Err(format!("connect to {dest} failed: {e}"));
    }
    let socket = if dest.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }.map_err(|e| e.to_string())?;
    if let Some(s) = src {
        socket.bind(SocketAddr::new(s, 0)).map_err(|e| format!("cannot bind source address {s}: {e}"))?;
    }
    let stream = match tokio::time::timeout(OPEN_WAIT, socket.connect(dest)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            ctx.events.log(catalog::MTA_CONNECT_FAILED, &[&shown, &e.to_string()]);
            return Err(format!("connect to {dest} failed: {e}"));
        }
        Err(_) => {
            ctx.events.log(catalog::MTA_CONNECT_FAILED, &[&shown, "timed out"]);
            return Err(format!("connect to {dest} timed out"));
        }
    };
    tracing::info!(connector = %c.name, %dest, source = ?src, "connected");
    Ok((stream, dest, link))
}

/// The settings of one new outbound association over `c`: the connector's
/// ([`association_config`]) with a session connection identifier of its own (X.225 §8.3.1.3:
/// calling SS-user reference `<server>.<n>`, common reference the time of the open as a
/// UTCTime), which an RTSE recover names later.
pub(crate) fn outbound_config(ctx: &Ctx, c: &X400Connector) -> AssociationConfig {
    let server = ctx.cfg.read().expect("cfg lock").server.name.clone();
    let n = ctx.mta.as_ref().map_or(0, |m| m.next_session.fetch_add(1, Ordering::Relaxed));
    let mut reference = format!(".{n}");
    let mut keep = server.len().min(mtalab_osi::session::MAX_REFERENCE_LEN - 2 - reference.len());
    while !server.is_char_boundary(keep) {
        keep -= 1;
    }
    reference.insert_str(0, &server[..keep]);
    AssociationConfig {
        ss_user_reference: reference.into_bytes(),
        common_reference: chrono::Utc::now().format("%y%m%d%H%M%SZ").to_string(),
        ..association_config(ctx, c)
    }
}

/// Open and bind an association over connector `ci`.
pub async fn open(ctx: &Arc<Ctx>, ci: usize, c: &X400Connector) -> Result<Conn, String> {
    let (stream, dest, link) = connect(ctx, c).await?;
    let server_name = ctx.cfg.read().expect("cfg lock").server.name.clone();
    let (name, password) = ctx.mta.as_ref().expect("mta").local_credentials(c, &server_name);
    let bind = MtaBindArgument::simple(&name, &password).encode().map_err(|e| format!("bind argument: {e}"))?;
    let assoc = Association::initiator(outbound_config(ctx, c), bind, Instant::now()).map_err(|e| e.to_string())?;
    let mut conn = Conn::new(stream, assoc, dest).with_link(link);
    loop {
        match conn.next_event(OPEN_WAIT, "the association to open").await {
            Ok(Event::AssociateConfirm(ac)) => {
                let result = MtaBindResult::decode(&ac.bind_result).map_err(|e| format!("bad bind result: {e}"));
                let ok = match &result {
                    Ok(r) => {
                        let rname = r.responder_name().map(|n| n.as_str().to_string()).unwrap_or_default();
                        let rpw_ok = match r {
                            MtaBindResult::Authenticated { responder_credentials, .. } => match responder_credentials.password() {
                                Some(p) => p.matches(&c.remote_mta_password),
                                None => c.remote_mta_password.is_empty(),
                            },
                            MtaBindResult::Unauthenticated => c.remote_mta_password.is_empty(),
                        };
                        rname == c.remote_mta_name && rpw_ok
                    }
                    Err(_) => false,
                };
                if !ok {
                    let rname = result.as_ref().ok().and_then(|r| r.responder_name()).map(|n| n.as_str().to_string()).unwrap_or_else(|| "(unreadable)".into());
                    ctx.events.log(catalog::MTA_RESPONDER_CREDENTIALS, &[&rname, &c.name]);
                    conn.abort().await;
                    return Err(format!("the responder {rname} answered with credentials that do not match the connector"));
                }
                if let Some(m) = &ctx.mta {
                    let mut st = m.state.lock().expect("mta state");
                    st[ci].failures = 0;
                    st[ci].retry_until_ms = None;
                    st[ci].opened_total += 1;
                }
                return Ok(conn);
            }
            Ok(Event::AssociateRefused(r)) => {
                let why = match r.bind_error.as_deref().map(MtaBindError::decode) {
                    Some(Ok(e)) => format!("bind refused: {}", e.name().unwrap_or("unknown bind error")),
                    _ => format!("association refused (session reason {:?}, acse result {:?})", r.session_reason, r.acse_result),
                };
                ctx.events.log(catalog::MTA_LOCAL_ASSOC_REFUSED, &[&c.name, &why]);
                return Err(why);
            }
            Ok(Event::Aborted { reason }) => return Err(format!("association aborted during open: {reason}")),
            Ok(_) => continue,
            Err(e) => return Err(format!("no association to {dest}: {e}")),
        }
    }
}

impl Pool {
    fn take(&self, ci: usize, generation: u64, lifetime: Duration) -> Option<(Conn, Instant)> {
        let mut idle = self.idle.lock().expect("pool");
        let list = idle.get_mut(&ci)?;
        // Stale ones (older generation, past Lifetime) stay for the reaper to release.
        let i = list.iter().rposition(|p| p.generation == generation && p.opened.elapsed() < lifetime)?;
        let p = list.remove(i);
        Some((p.conn, p.opened))
    }

    /// Put an idle bound association of connector `ci` (opened at `opened`) back.
    pub(crate) fn put(&self, ci: usize, conn: Conn, opened: Instant, generation: u64) {
        self.idle.lock().expect("pool").entry(ci).or_default().push(Pooled { conn, opened, idle_since: Instant::now(), generation });
    }

    fn expired(&self, limits: &dyn Fn(usize) -> (Duration, Duration), generation: u64) -> Vec<(usize, Conn)> {
        let mut idle = self.idle.lock().expect("pool");
        let mut out = Vec::new();
        for (ci, list) in idle.iter_mut() {
            let (lifetime, disconnect) = limits(*ci);
            let mut keep = Vec::new();
            for p in list.drain(..) {
                if p.generation != generation || p.idle_since.elapsed() >= disconnect || p.opened.elapsed() >= lifetime {
                    out.push((*ci, p.conn));
                } else {
                    keep.push(p);
                }
            }
            *list = keep;
        }
        out
    }
}

/// Close idle associations when their Disconnect timer or Lifetime runs out.
pub async fn reap(ctx: Arc<Ctx>) {
    let Some(m) = &ctx.mta else { return };
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let generation = m.generation.load(Ordering::SeqCst);
        let limits = |ci: usize| match m.connector(ci) {
            Some(c) => (ctx.scaled(c.overrides.lifetime), ctx.scaled(c.overrides.disconnect)),
            None => (Duration::ZERO, Duration::ZERO),
        };
        for (ci, conn) in m.pool.expired(&limits, generation) {
            m.association_closed(ci);
            tokio::spawn(conn.release(Duration::from_secs(5)));
            m.notify.notify_waiters();
        }
    }
}

/// APDUs the peer sent back on an outbound association of connector `ci` (rare), handed to
/// the inbound side as if received there (their sender made once).
pub(crate) async fn take_in(ctx: &Arc<Ctx>, ci: usize, peer: SocketAddr, received: Vec<Vec<u8>>) {
    let sender = crate::mta::inbound::Sender::new(ctx, Some(ci), peer);
    for a in received {
        if let Err(e) = Box::pin(crate::mta::inbound::process_apdu(ctx, &sender, a)).await {
            tracing::error!(error = %format!("{e:#}"), "an APDU received on an outbound association was not accepted");
        }
    }
}

/// The MTS identifier of an MTS-APDU, `<GDI mnemonic>;<local identifier>` (message,
/// report or probe identifier), if it decodes.
pub fn mts_id_of(apdu: &[u8]) -> Option<String> {
    let id = match mtalab_p1::MtsApdu::decode(apdu).ok()? {
        mtalab_p1::MtsApdu::Message(m) => m.envelope.message_identifier,
        mtalab_p1::MtsApdu::Report(r) => r.envelope.report_identifier,
        mtalab_p1::MtsApdu::Probe(p) => p.probe_identifier,
    };
    Some(crate::mta::gateway::mts_id(&id))
}

/// Transfer one MTS-APDU over connector `ci`, on an idle association or a new one (a new
/// one per Threshold transfers waiting, at most [`MAX_ASSOCIATIONS`]). `mts_id` gives the
/// APDU's MTS identifier in text form ([`crate::mta::gateway::mts_id`]), the key of its
/// transfer-failure count: made only when a count is kept or looked up.
///
/// A transfer that fails on an open association (it was aborted, or its confirmation did not
/// come within the Recovery timeout) returns [`TransferError::Transfer`]: the message is
/// tried again after the connector's Transfer interval, on a new association. After Max
/// transfer retries such failures of one message (Override tab; Exchange default 2) the next
/// one counts as a failed open instead (289, and the Open Retry timer: 301), so that the
/// message goes on at the Open interval and, after Max open retries, is returned with an NDR.
pub async fn transfer(ctx: &Arc<Ctx>, ci: usize, apdu: Vec<u8>, mts_id: impl FnOnce() -> String) -> Result<(), TransferError> {
    let m = ctx.mta.as_ref().ok_or_else(|| TransferError::Open("the MTA is not running".into()))?;
    let c = m.connector(ci).ok_or_else(|| TransferError::Open(format!("no connector {ci}")))?;
    {
        m.state.lock().expect("mta state")[ci].waiting += 1;
    }
    let r = transfer_inner(ctx, m, ci, &c, apdu).await;
    {
        let mut st = m.state.lock().expect("mta state");
        st[ci].waiting = st[ci].waiting.saturating_sub(1);
        if r.is_ok() {
            st[ci].transferred_total += 1;
        }
    }
    match r {
        Err(TransferError::Transfer(why)) => {
            let key = (ci, mts_id());
            let n = {
                let mut f = m.transfer_failures.lock().expect("transfer failures");
                let n = f.entry(key.clone()).or_insert(0);
                *n += 1;
                *n
            };
            if n > c.overrides.max_transfer_retries {
                m.transfer_failures.lock().expect("transfer failures").remove(&key);
                let why = format!("{why} (transfer attempt {n}; Max transfer retries {})", c.overrides.max_transfer_retries);
                log_open_failed(ctx, ci, &c, &why);
                return Err(TransferError::Open(why));
            }
            tracing::info!(connector = %c.name, mts_id = %key.1, attempt = n, "transfer failed; retrying after the transfer interval");
            Err(TransferError::Transfer(why))
        }
        Ok(()) => {
            // Usually no transfer has failed: no identifier to make, hash and look up.
            if !m.transfer_failures.lock().expect("transfer failures").is_empty() {
                let key = (ci, mts_id());
                m.transfer_failures.lock().expect("transfer failures").remove(&key);
            }
            Ok(())
        }
        other => other,
    }
}

async fn transfer_inner(ctx: &Arc<Ctx>, m: &crate::mta::Mta, ci: usize, c: &X400Connector, apdu: Vec<u8>) -> Result<(), TransferError> {
    let lifetime = ctx.scaled(c.overrides.lifetime);
    let mut fresh_tries = 0;
    loop {
        // Registered before the pool is looked at, so an association put back between the
        // look and the wait still wakes this transfer. One association put back (or one
        // closed) wakes one waiting transfer (`notify_one`), not every waiting delivery
        // worker: with 32 workers and up to 10 associations, waking all of them for each
        // message costs more CPU than the transfer itself.
        let put_back = m.notify.notified();
        tokio::pin!(put_back);
        put_back.as_mut().enable();
        let generation = m.generation.load(Ordering::SeqCst);
        let (mut conn, opened, reused) = match m.pool.take(ci, generation, lifetime) {
            Some((conn, opened)) => (conn, opened, true),
            None => {
                let retry_left = {
                    let st = m.state.lock().expect("mta state");
                    st[ci].retry_until_ms.map(|t| t - chrono::Utc::now().timestamp_millis()).filter(|ms| *ms > 0)
                };
                if let Some(ms) = retry_left {
                    return Err(TransferError::Deferred(Duration::from_millis(ms as u64)));
                }
                let may_open = {
                    let mut st = m.state.lock().expect("mta state");
                    let s = &mut st[ci];
                    let allowed = (1 + s.waiting.saturating_sub(1) / c.overrides.threshold.max(1) as usize).min(MAX_ASSOCIATIONS);
                    if s.open < allowed {
                        s.open += 1;
                        true
                    } else {
                        false
                    }
                };
                if !may_open {
                    let _ = tokio::time::timeout(Duration::from_millis(200), put_back).await;
                    continue;
                }
                fresh_tries += 1;
                // Boxed, as the APDUs below: this future is moved whole into every delivery
                // task that holds a transfer, so it is kept to what a transfer on a pooled
                // association needs (the establishment's state alone is kilobytes).
                match Box::pin(open(ctx, ci, c)).await {
                    Ok(conn) => (conn, Instant::now(), false),
                    Err(why) => {
                        m.association_closed(ci);
                        m.notify.notify_one();
                        log_open_failed(ctx, ci, c, &why);
                        return Err(TransferError::Open(why));
                    }
                }
            }
        };
        let mut received = Vec::new();
        let (listed, progress) = m.transfers.list(ci, "out", conn.peer);
        conn.set_progress(Some(progress));
        let r = conn.transfer(&apdu, TRANSFER_WAIT, &mut received).await;
        conn.set_progress(None);
        drop(listed);
        if !received.is_empty() {
            take_in(ctx, ci, conn.peer, received).await;
        }
        match r {
            Ok(()) => {
                m.pool.put(ci, conn, opened, generation);
                m.notify.notify_one();
                return Ok(());
            }
            Err(e) => {
                m.association_closed(ci);
                m.notify.notify_one();
                // Broken after a confirmed checkpoint: RTSE recovery resumes it there. (A
                // connection lost under an open association closes it here, so that it
                // leaves its recovery point.)
                conn.assoc.abort();
                let point = conn.assoc.take_recovery_point();
                // A transfer that timed out (no checkpoint acknowledged within the Recovery
                // timeout) failed on a live association: a silent link, not a stale one.
                let timed_out = matches!(e, DriveError::Aborted(AbortReason::Timeout(_)) | DriveError::Timeout(_));
                if reused && fresh_tries == 0 && !timed_out && point.is_none() {
                    // The idle association died meanwhile: one more try on a fresh one.
                    tracing::debug!(connector = %c.name, error = %e, "pooled association failed; opening a new one");
                    continue;
                }
                ctx.events.log(catalog::MTA_ASSOC_ABORTED, &[&c.name, &e.to_string()]);
                if let Some(point) = point {
                    drop(conn);
                    match Box::pin(crate::mta::recovery::resume(ctx, ci, c, point, generation)).await {
                        Ok(()) => return Ok(()),
                        Err(why) => tracing::info!(connector = %c.name, error = %why, "recovery gave up; the transfer goes again from its start"),
                    }
                }
                return Err(TransferError::Transfer(e.to_string()));
            }
        }
    }
}
