//! RTSE recovery (X.228's recovery of RT-TRANSFER; Exchange's Recovery timeout, Override
//! tab, DESIGN §4): a transfer that breaks after the receiver confirmed a checkpoint goes on
//! from that checkpoint on a new association, instead of from its start.
//!
//! - **Sender** ([`resume`]): when an association breaks in the middle of a transfer whose
//!   receiver confirmed at least one minor synchronization point (1294 is logged for it as
//!   before), the MTA opens recovering associations over the same connector — RTORQ {
//!   recover } naming the broken association's session connection, no bind — for at most the
//!   Recovery timeout, one try every fifth of it. Accepted, the transfer resumes with GT+AR
//!   at the last checkpoint the sender saw confirmed and ends as any other; the association
//!   then serves further transfers as a bound one. Refused (the receiver kept nothing), or
//!   with the Recovery timeout over, the transfer fails as before and goes again from its
//!   start after the Transfer interval.
//! - **Receiver** ([`Recoveries`]): an inbound association that ends in the middle of a
//!   transfer after a confirmed checkpoint leaves what it received up to the last one here,
//!   for twice the Recovery timeout (the sender may notice the break up to one Recovery
//!   timeout after this side did), at most [`MAX_HELD`] transfers and [`MAX_HELD_OCTETS`]
//!   octets. A recover from the same
//!   connector's Stack address naming that session connection takes it back; a recover for
//!   an association still waiting for data ends that association first.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mtalab_osi::association::{Association, Event, PartialTransfer, RecoveryPoint};
use mtalab_osi::rtse::SessionConnectionIdentifier;
use tokio::sync::Notify;

use crate::Ctx;
use crate::config::X400Connector;
use crate::events::catalog;
use crate::mta::Mta;
use crate::mta::assoc::Conn;
use crate::mta::outbound::{self, MIN_RECOVERY_TIMEOUT};

/// Partial incoming transfers held at most; the oldest goes first.
pub const MAX_HELD: usize = 16;
/// Octets of partial incoming transfers held at most (four APDUs of the largest size an
/// association accepts by default); the oldest go first.
pub const MAX_HELD_OCTETS: usize = 64 << 20;
/// How long a recover waits for the association it ended to leave its partial transfer.
const INTERRUPT_WAIT: Duration = Duration::from_secs(2);

/// The Recovery timeout of connector `c` on the time scale (at least
/// [`MIN_RECOVERY_TIMEOUT`]): how long a sender keeps trying to recover.
pub fn window(ctx: &Ctx, c: &X400Connector) -> Duration {
    ctx.scaled(c.overrides.recovery_timeout).max(MIN_RECOVERY_TIMEOUT)
}

struct Held {
    ci: usize,
    partial: PartialTransfer,
    until: Instant,
}

struct Live {
    id: u64,
    ci: usize,
    session: SessionConnectionIdentifier,
    stop: Arc<Notify>,
}

#[derive(Default)]
struct Inner {
    held: VecDeque<Held>,
    live: Vec<Live>,
    next: u64,
}

/// The receiving side's part: partial transfers kept for a recover, and the inbound
/// associations receiving (by connector and the session connection their caller's CN named).
#[derive(Default)]
pub struct Recoveries {
    inner: Mutex<Inner>,
}

/// An inbound association listed in [`Recoveries`] until dropped; `stop` is notified when a
/// recover names its session connection.
pub struct Receiving<'a> {
    recoveries: &'a Recoveries,
    id: u64,
    /// Notified when a recover names this association.
    pub stop: Arc<Notify>,
}

impl Drop for Receiving<'_> {
    fn drop(&mut self) {
        self.recoveries.inner.lock().expect("recoveries").live.retain(|l| l.id != self.id);
    }
}

impl Recoveries {
    /// List an inbound association of connector `ci` whose caller named `session`.
    pub fn receiving(&self, ci: usize, session: SessionConnectionIdentifier) -> Receiving<'_> {
        let stop = Arc::new(Notify::new());
        let mut inner = self.inner.lock().expect("recoveries");
        inner.next += 1;
        let id = inner.next;
        inner.live.push(Live { id, ci, session, stop: stop.clone() });
        Receiving { recoveries: self, id, stop }
    }

    /// Keep a partial transfer of connector `ci` for `hold` (dropping expired ones, and the
    /// oldest past [`MAX_HELD`]).
    pub fn hold(&self, ci: usize, partial: PartialTransfer, hold: Duration) {
        let now = Instant::now();
        let mut inner = self.inner.lock().expect("recoveries");
        inner.held.retain(|h| h.until > now && !(h.ci == ci && h.partial.connection == partial.connection));
        inner.held.push_back(Held { ci, partial, until: now + hold });
        while inner.held.len() > MAX_HELD || inner.held.iter().map(|h| h.partial.octets()).sum::<usize>() > MAX_HELD_OCTETS {
            inner.held.pop_front();
        }
    }

    /// Take the partial transfer of connector `ci` kept for `session`, if still held.
    pub fn take(&self, ci: usize, session: &SessionConnectionIdentifier) -> Option<PartialTransfer> {
        let now = Instant::now();
        let mut inner = self.inner.lock().expect("recoveries");
        inner.held.retain(|h| h.until > now);
        let i = inner.held.iter().position(|h| h.ci == ci && h.partial.connection == *session)?;
        inner.held.remove(i).map(|h| h.partial)
    }

    /// Partial transfers held now.
    pub fn held(&self) -> usize {
        let now = Instant::now();
        self.inner.lock().expect("recoveries").held.iter().filter(|h| h.until > now).count()
    }

    /// What a recover for `session` over connector `ci` resumes: the partial transfer held,
    /// else, when an association of that session is still receiving (this side has not
    /// noticed the break yet), that association is ended and its partial transfer taken
    /// (waiting at most [`INTERRUPT_WAIT`]). None when nothing of it is kept.
    pub async fn claim(&self, ci: usize, session: &SessionConnectionIdentifier) -> Option<PartialTransfer> {
        if let Some(p) = self.take(ci, session) {
            return Some(p);
        }
        let interrupted = {
            let inner = self.inner.lock().expect("recoveries");
            let live: Vec<&Live> = inner.live.iter().filter(|l| l.ci == ci && l.session == *session).collect();
            // A permit is stored when the association is not waiting at this moment.
            live.iter().for_each(|l| l.stop.notify_one());
            !live.is_empty()
        };
        if !interrupted {
            return None;
        }
        let until = tokio::time::Instant::now() + INTERRUPT_WAIT;
        while tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if let Some(p) = self.take(ci, session) {
                return Some(p);
            }
        }
        None
    }
}

/// Receiver: after an inbound association of connector `c` (index `ci`) closed, keep what it
/// received of a broken transfer for a recover ([`Recoveries::hold`]).
pub fn keep_partial(ctx: &Ctx, m: &Mta, ci: usize, c: &X400Connector, assoc: &mut Association) {
    if let Some(p) = assoc.take_partial_transfer() {
        tracing::info!(connector = %c.name, checkpoints = p.checkpoints(), octets = p.octets(), "partial transfer kept for a recover");
        m.recoveries.hold(ci, p, 2 * window(ctx, c));
    }
}

/// Sender: resume a transfer over connector `ci` that broke at `point` (see the module
/// documentation). `generation`: the MTA's, for the association's place in the pool. Ok once
/// the receiver confirmed the whole transfer; else why recovery gave up.
pub async fn resume(ctx: &Arc<Ctx>, ci: usize, c: &X400Connector, mut point: RecoveryPoint, generation: u64) -> Result<(), String> {
    let m = ctx.mta.as_ref().ok_or("the MTA is not running")?;
    let window = window(ctx, c);
    let until = Instant::now() + window;
    let pause = window / 5;
    loop {
        match attempt(ctx, m, ci, c, point, generation).await {
            Ok(()) => return Ok(()),
            Err((why, None)) => return Err(why),
            Err((why, Some(p))) => {
                if Instant::now() + pause >= until {
                    return Err(format!("{why}; the Recovery timeout passed"));
                }
                tracing::debug!(connector = %c.name, error = %why, "recovery attempt failed; trying again");
                point = p;
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// One recovering association: Err carries the point back when another try may serve.
async fn attempt(ctx: &Arc<Ctx>, m: &Mta, ci: usize, c: &X400Connector, point: RecoveryPoint, generation: u64) -> Result<(), (String, Option<RecoveryPoint>)> {
    let (stream, dest, link) = match outbound::connect(ctx, c).await {
        Ok(s) => s,
        Err(e) => return Err((e, Some(point))),
    };
    let confirmed = point.confirmed;
    let (assoc, id) = Association::initiator_recovering(outbound::outbound_config(ctx, c), point, Instant::now()).map_err(|e| (e.to_string(), None))?;
    let mut conn = Conn::new(stream, assoc, dest).with_link(link);
    m.state.lock().expect("mta state")[ci].open += 1;
    tracing::info!(connector = %c.name, %dest, confirmed, "recovering the broken association");
    loop {
        match conn.next_event(outbound::OPEN_WAIT, "the recover to be accepted").await {
            Ok(Event::AssociateConfirm(ac)) if ac.recovered => break,
            Ok(Event::AssociateRefused(r)) => {
                m.association_closed(ci);
                return Err((format!("recover refused (rtse refuse reason {:?})", r.rtse_reason), None));
            }
            Ok(Event::Aborted { reason }) => {
                m.association_closed(ci);
                return Err((format!("recovering association aborted: {reason}"), conn.assoc.take_recovery_point()));
            }
            Ok(_) => continue,
            Err(e) => {
                m.association_closed(ci);
                conn.assoc.abort();
                return Err((format!("no recovering association to {dest}: {e}"), conn.assoc.take_recovery_point()));
            }
        }
    }
    let mut received = Vec::new();
    let (listed, progress) = m.transfers.list(ci, "out", conn.peer);
    conn.set_progress(Some(progress));
    let r = conn.confirmation(id, outbound::TRANSFER_WAIT, &mut received).await;
    conn.set_progress(None);
    drop(listed);
    if !received.is_empty() {
        outbound::take_in(ctx, ci, conn.peer, received).await;
    }
    match r {
        Ok(()) => {
            {
                let mut st = m.state.lock().expect("mta state");
                st[ci].recovered_total += 1;
                st[ci].recovered_octets += confirmed as u64;
            }
            tracing::info!(connector = %c.name, octets_not_sent_again = confirmed, "transfer resumed at its checkpoint and confirmed");
            // Bound by the association it recovers: pooled as any other (the reaper closes it
            // after a restart, as it does the others of an older generation).
            m.pool.put(ci, conn, Instant::now(), generation);
            m.notify.notify_one();
            Ok(())
        }
        Err(e) => {
            m.association_closed(ci);
            m.notify.notify_one();
            ctx.events.log(catalog::MTA_ASSOC_ABORTED, &[&c.name, &e.to_string()]);
            conn.assoc.abort();
            Err((e.to_string(), conn.assoc.take_recovery_point()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mtalab_osi::association::AssociationConfig;

    /// The partial transfer a responder keeps of a 10 KiB transfer broken after 2
    /// checkpoints of 1 KiB, its caller's CN naming the session `reference`.
    fn partial(reference: &str) -> PartialTransfer {
        let cfg = AssociationConfig { checkpoint_size: 1, window_size: 2, ..AssociationConfig::default() };
        let icfg = AssociationConfig { ss_user_reference: reference.as_bytes().to_vec(), ..cfg.clone() };
        let t0 = std::time::Instant::now();
        let mut i = Association::initiator(icfg, vec![0x05, 0x00], t0).unwrap();
        let mut r = Association::responder(cfg).unwrap();
        let shuttle = |i: &mut Association, r: &mut Association| {
            for _ in 0..4 {
                while let Some(f) = i.poll_transmit() {
                    r.handle_input(&f, t0).unwrap();
                }
                while let Some(e) = r.poll_event() {
                    if matches!(e, Event::AssociateIndication(_)) {
                        r.accept(vec![0x05, 0x00]).unwrap();
                    }
                }
                while let Some(f) = r.poll_transmit() {
                    i.handle_input(&f, t0).unwrap();
                }
            }
        };
        shuttle(&mut i, &mut r);
        let mut apdu = vec![0x04, 0x82, 0x28, 0x00];
        apdu.extend(std::iter::repeat_n(1u8, 10 * 1024));
        i.transfer(apdu).unwrap();
        // The first window (2 segments and their minor syncs) arrives; then the line dies.
        while let Some(f) = i.poll_transmit() {
            r.handle_input(&f, t0).unwrap();
        }
        r.handle_timeout(t0 + Duration::from_secs(61));
        r.take_partial_transfer().expect("partial transfer")
    }

    #[test]
    fn a_partial_transfer_is_taken_once_by_its_connector_and_session_until_it_expires() {
        let r = Recoveries::default();
        let p = partial("A.1");
        assert_eq!(p.checkpoints(), 2);
        let session = p.connection.clone();
        r.hold(0, p.clone(), Duration::from_secs(60));
        assert_eq!(r.held(), 1);
        assert!(r.take(1, &session).is_none(), "another connector's caller");
        assert!(r.take(0, &partial("A.2").connection).is_none(), "another session");
        assert_eq!(r.take(0, &session), Some(p.clone()));
        assert!(r.take(0, &session).is_none(), "taken once");
        r.hold(0, p, Duration::ZERO);
        assert!(r.take(0, &session).is_none(), "expired");
        assert_eq!(r.held(), 0);
    }

    #[test]
    fn the_oldest_partial_transfers_go_past_the_cap() {
        let r = Recoveries::default();
        let all: Vec<PartialTransfer> = (0..=MAX_HELD).map(|n| partial(&format!("A.{n}"))).collect();
        for p in &all {
            r.hold(0, p.clone(), Duration::from_secs(60));
        }
        assert_eq!(r.held(), MAX_HELD);
        assert!(r.take(0, &all[0].connection).is_none(), "the oldest went");
        assert!(r.take(0, &all[MAX_HELD].connection).is_some());
    }

    #[tokio::test]
    async fn a_recover_ends_the_association_still_receiving_and_takes_what_it_kept() {
        let r = Arc::new(Recoveries::default());
        let p = partial("A.7");
        let session = p.connection.clone();
        assert!(r.claim(0, &session).await.is_none(), "nothing kept, nothing receiving");
        // The association of that session, still waiting for data: a recover ends it, and it
        // leaves its partial transfer as it closes.
        let receiving = {
            let r = r.clone();
            let session = session.clone();
            let p = p.clone();
            tokio::spawn(async move {
                let listed = r.receiving(0, session);
                listed.stop.notified().await;
                drop(listed);
                r.hold(0, p, Duration::from_secs(60));
            })
        };
        tokio::task::yield_now().await;
        assert_eq!(r.claim(0, &session).await, Some(p));
        receiving.await.unwrap();
        assert!(r.inner.lock().unwrap().live.is_empty(), "the association left the list");
    }
}
