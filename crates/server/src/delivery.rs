//! Delivery of queued messages: local recipients into their Maildir, remote ones to the next
//! hop chosen by [`crate::routing`], with retries on the IMS retry intervals, expiry, and a
//! DSN (RFC 3464) to the sender for every recipient that failed permanently or expired.
//!
//! Every outcome is fsynced to the message's queue log before it is acted on, so a crash at
//! any point loses nothing: at worst a recipient whose delivery was in flight gets it twice.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use mtalab_smtp::{Mailbox, ReversePath, Transaction};
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::Ctx;
use crate::conn::{ConnError, SmtpConnection};
use crate::dsn::{self, FailedRcpt};
use crate::events::catalog;
use crate::queue::{Envelope, LogLine, Outcome};
use crate::routing::NextHop;

/// A delivery job: a queued message to attempt now. `data` is the message when the caller
/// still holds it (fresh from SMTP) and [`BodyBudget`] lets it wait with the job, else it is
/// read from the queue file.
#[derive(Debug)]
pub struct Job {
    /// Queue id.
    pub id: String,
    /// The message octets, if at hand.
    pub data: Option<Arc<Vec<u8>>>,
}

/// Octets of message bodies that fresh delivery jobs may hold while they wait for a
/// worker ([`BodyBudget`]): 16 MiB, a few thousand messages of a few KiB.
pub const MAX_QUEUED_BODIES: usize = 16 << 20;

/// The message bodies held by delivery jobs not yet taken by a worker. When mail comes in
/// faster than it goes out (an X.400 connector at its associations, a slow next hop), the
/// jobs wait in an unbounded channel; past the budget a job goes without its body, which its
/// worker reads back from the queue file, so that memory stays bounded however long the
/// backlog (nothing is lost: the queue file was fsynced before the job was made).
#[derive(Debug)]
pub struct BodyBudget {
    held: std::sync::atomic::AtomicUsize,
    max: usize,
}

impl BodyBudget {
    /// A budget of `max` octets.
    pub fn new(max: usize) -> BodyBudget {
        BodyBudget { held: std::sync::atomic::AtomicUsize::new(0), max }
    }

    /// Whether a body of `len` octets may wait with its job; when it may, it counts as held
    /// until [`BodyBudget::release`].
    fn take(&self, len: usize) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        self.held.fetch_update(Relaxed, Relaxed, |held| held.checked_add(len).filter(|&h| h <= self.max)).is_ok()
    }

    /// A body of `len` octets taken by a worker.
    fn release(&self, len: usize) {
        self.held.fetch_sub(len, std::sync::atomic::Ordering::Relaxed);
    }

    /// Octets held now.
    pub fn held(&self) -> usize {
        self.held.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Default for BodyBudget {
    fn default() -> BodyBudget {
        BodyBudget::new(MAX_QUEUED_BODIES)
    }
}

/// In-memory state of one queued message.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Its envelope (shared: a delivery attempt takes a copy of the entry, not of the
    /// envelope's strings).
    pub envelope: Arc<Envelope>,
    /// Per recipient (same order as the envelope): None while pending.
    pub outcomes: Vec<Option<Outcome>>,
    /// Attempts that ended with recipients pending.
    pub attempts: u32,
    /// When the next attempt is due (None while one runs).
    pub next_attempt: Option<DateTime<Utc>>,
    /// The last transient error.
    pub last_error: Option<String>,
    /// This message's retry count per X.400 connector (KB Q193322 "Retry Count").
    #[serde(default)]
    pub mta_retries: std::collections::BTreeMap<usize, u32>,
    /// The delay the last failure asks for (an X.400 connector's Open interval), if any.
    #[serde(skip)]
    pub retry_delay: Option<Duration>,
    /// The pass now ending only waited for a full connector queue: it tried nothing, so it
    /// is not one of [`Entry::attempts`].
    #[serde(skip)]
    pub deferral: bool,
}

/// A pool key: next-hop address and the source address bound, if any.
type PoolKey = (SocketAddr, Option<IpAddr>);

/// Outbound SMTP connections: the idle ones kept for reuse, per next-hop address, and the
/// limit of connections open at once to one host (`ims.max_connections_per_host`).
#[derive(Default)]
pub struct Pool {
    /// Per key, the idle connections and when each was put back.
    idle: Mutex<HashMap<PoolKey, Vec<(SmtpConnection, Instant)>>>,
    /// Per next-hop address, the limit its permits were made for and the permits: a
    /// delivery holds one from before it takes or opens a connection until it has put the
    /// connection back, so that no more than the limit are ever open to the host (a new one
    /// is opened only when none is idle).
    slots: Mutex<HashMap<SocketAddr, (usize, Arc<Semaphore>)>>,
}

/// How long an idle outbound connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(5);
/// Connections kept per next hop.
const POOL_PER_HOST: usize = 32;
/// Connect and reply timeout for outbound SMTP.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a delivery worker waits for room in an X.400 connector's queue before it leaves
/// the message in the IMS queue for the connector's Transfer interval, or for one of the
/// connections a host is allowed (`ims.max_connections_per_host`) before it leaves the
/// message queued for [`HOST_BUSY_RETRY`].
const QUEUE_WAIT: Duration = Duration::from_secs(1);
/// When a message whose next hop had every connection it is allowed busy is tried again
/// (not counted as a retry: nothing was tried).
const HOST_BUSY_RETRY: Duration = Duration::from_secs(1);

impl Pool {
    /// A permit for one connection to `addr`, out of `max`: waits up to [`QUEUE_WAIT`] for
    /// one; `None` when they stayed all in use. A changed limit takes effect for permits
    /// asked for from then on.
    async fn slot(&self, addr: SocketAddr, max: usize) -> Option<OwnedSemaphorePermit> {
        let sem = {
            let mut slots = self.slots.lock().expect("pool lock");
            let e = slots.entry(addr).or_insert_with(|| (max, Arc::new(Semaphore::new(max))));
            if e.0 != max {
                *e = (max, Arc::new(Semaphore::new(max)));
            }
            e.1.clone()
        };
        tokio::time::timeout(QUEUE_WAIT, sem.acquire_owned()).await.ok()?.ok()
    }

    fn take(&self, addr: SocketAddr, src: Option<IpAddr>) -> Option<SmtpConnection> {
        let mut idle = self.idle.lock().expect("pool lock");
        let list = idle.get_mut(&(addr, src))?;
        while let Some((c, t)) = list.pop() {
            if t.elapsed() < POOL_IDLE {
                return Some(c);
            }
        }
        None
    }

    fn put(&self, addr: SocketAddr, src: Option<IpAddr>, conn: SmtpConnection) -> Option<SmtpConnection> {
        let mut idle = self.idle.lock().expect("pool lock");
        let list = idle.entry((addr, src)).or_default();
        if list.len() >= POOL_PER_HOST {
            return Some(conn);
        }
        list.push((conn, Instant::now()));
        None
    }

    fn expired(&self) -> Vec<SmtpConnection> {
        let mut idle = self.idle.lock().expect("pool lock");
        let mut out = Vec::new();
        for list in idle.values_mut() {
            let mut keep = Vec::new();
            for (c, t) in list.drain(..) {
                if t.elapsed() >= POOL_IDLE { out.push(c) } else { keep.push((c, t)) }
            }
            *list = keep;
        }
        out
    }
}

/// Close idle outbound connections after [`POOL_IDLE`].
pub async fn reap_idle(ctx: Arc<Ctx>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        for c in ctx.pool.expired() {
            tokio::spawn(c.quit());
        }
    }
}

/// Commit a message the server made or received over X.400 to the queue, then schedule it.
pub async fn enqueue(ctx: &Arc<Ctx>, env: Envelope, data: Vec<u8>) -> anyhow::Result<()> {
    let (env, data) = commit(ctx, env, data).await?;
    submit(ctx, env, Some(data));
    Ok(())
}

/// Commit a message to the durable queue (see [`crate::queue::Queue::commit`]) without
/// handing it to delivery yet; [`submit`] does that. Returns the envelope and the data,
/// shared (the queue's entry and the delivery workers hold them without copies).
///
/// # Errors
/// The queue file cannot be written or synced.
pub async fn commit(ctx: &Arc<Ctx>, env: Envelope, data: Vec<u8>) -> anyhow::Result<(Arc<Envelope>, Arc<Vec<u8>>)> {
    let c = ctx.clone();
    let (env, data) = (Arc::new(env), Arc::new(data));
    let (e2, d2) = (env.clone(), data.clone());
    crate::on_disk(move || c.queue.commit(&e2, &d2)).await??;
    Ok((env, data))
}

/// Queue a freshly committed message for delivery.
pub fn submit(ctx: &Ctx, envelope: Arc<Envelope>, data: Option<Arc<Vec<u8>>>) {
    let id = envelope.id.clone();
    let n = envelope.rcpts.len();
    ctx.entries.lock().expect("entries lock").insert(
        id.clone(),
        Entry { envelope, outcomes: vec![None; n], attempts: 0, next_attempt: None, last_error: None, mta_retries: Default::default(), retry_delay: None, deferral: false },
    );
    let data = data.filter(|d| ctx.bodies.take(d.len()));
    let _ = ctx.jobs.send(Job { id, data });
}

/// Before removing a queue file that carries an X.400 origin (`x400`): put the record of
/// accepted MTS identifiers on disk, since that file was the durable copy of its line
/// ([`crate::mta::dedup`], "Durability"). Waits for the record's next write (which gathers
/// the lines of [`crate::mta::dedup::SYNC_GATHER`]) without holding a thread.
async fn sync_accepted(ctx: &Ctx, x400: bool) -> std::io::Result<()> {
    match (&ctx.mta, x400) {
        (Some(m), true) => m.dedup.sync_async().await,
        _ => Ok(()),
    }
}

/// Rebuild the in-memory queue from disk at start-up and schedule every message now. The
/// MTS identifiers of messages received over X.400 go back into the MTA's record of accepted
/// identifiers first, and on disk, before any queue file is removed.
pub async fn recover(ctx: &Arc<Ctx>) -> anyhow::Result<()> {
    let c = ctx.clone();
    let loaded = tokio::task::spawn_blocking(move || c.queue.load()).await??;
    let count = loaded.len();
    if let Some(m) = &ctx.mta {
        for l in &loaded {
            if let Some(o) = &l.envelope.x400 {
                let id = crate::mta::gateway::mts_id_text(&o.mts_gdi, &o.mts_local);
                m.dedup.adopt(&l.envelope.helo, &id, &o.recipients, l.envelope.received.timestamp_millis());
            }
        }
        let c = ctx.clone();
        tokio::task::spawn_blocking(move || c.mta.as_ref().map_or(Ok(()), |m| m.dedup.sync())).await??;
    }
    for l in loaded {
        let mut outcomes = vec![None; l.envelope.rcpts.len()];
        let mut attempts = 0;
        let mut retries_by_name = std::collections::BTreeMap::new();
        let mut dsn_queued = false;
        for line in l.log {
            match line {
                LogLine::Rcpt { index, outcome } if index < outcomes.len() => outcomes[index] = Some(outcome),
                LogLine::Attempt { n, connector_retries, .. } => {
                    // Lines are in the order written: the last attempt's counts hold.
                    retries_by_name = connector_retries;
                    attempts = attempts.max(n);
                }
                LogLine::DsnQueued { .. } => dsn_queued = true,
                LogLine::Rcpt { .. } => {}
            }
        }
        let id = l.envelope.id.clone();
        if dsn_queued {
            let c = ctx.clone();
            let _ = crate::on_disk(move || c.queue.remove(&id)).await?;
            continue;
        }
        ctx.entries.lock().expect("entries lock").insert(
            id.clone(),
            Entry { envelope: Arc::new(l.envelope), outcomes, attempts, next_attempt: None, last_error: None, mta_retries: connector_indices(ctx, &retries_by_name), retry_delay: None, deferral: false },
        );
        let _ = ctx.jobs.send(Job { id, data: None });
    }
    if count > 0 {
        tracing::info!(count, "recovered queued messages");
    }
    Ok(())
}

/// Start `n` delivery workers reading jobs.
pub fn start_workers(ctx: &Arc<Ctx>, rx: mpsc::UnboundedReceiver<Job>, n: usize) {
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    for _ in 0..n {
        let ctx = ctx.clone();
        let rx = rx.clone();
        tokio::spawn(async move {
            loop {
                let job = { rx.lock().await.recv().await };
                let Some(job) = job else { return };
                if let Some(d) = &job.data {
                    ctx.bodies.release(d.len());
                }
                if *ctx.shutdown.borrow() {
                    return;
                }
                let id = job.id.clone();
                if let Err(e) = attempt(&ctx, job).await {
                    tracing::error!(id, error = %e, "delivery attempt failed; retrying later");
                    schedule_retry(&ctx, &id, format!("internal error: {e}"));
                }
            }
        });
    }
}

/// Re-queue every waiting message now (admin "retry now").
pub fn retry_all_now(ctx: &Ctx) -> usize {
    let ids: Vec<String> = {
        let mut entries = ctx.entries.lock().expect("entries lock");
        entries
            .iter_mut()
            .filter(|(_, e)| e.next_attempt.is_some())
            .map(|(id, e)| {
                e.next_attempt = None;
                id.clone()
            })
            .collect()
    };
    for id in &ids {
        let _ = ctx.jobs.send(Job { id: id.clone(), data: None });
    }
    ids.len()
}

enum Pending {
    Local { index: usize, alias: String },
    Unknown { index: usize },
    Remote { index: usize, mailbox: Mailbox },
    X400 { index: usize, connector: usize },
    Ndr { index: usize, why: String },
}

/// The MTA's choice for a recipient (KB Q193322), when a GWART line routes it over an X.400
/// connector: `Some(Ok(connector))`, `Some(Err(why))` when every X.400 route is at its Max
/// open retries (an NDR is due), `None` when the IMS routes it.
fn mta_choice(ctx: &Ctx, entry: &Entry, lines: Vec<crate::mta::gwart::Line>, ims_routes: bool) -> Option<Result<usize, String>> {
    use crate::mta::gwart::{Candidate, Target, select};
    let m = ctx.mta.as_ref()?;
    if !lines.iter().any(|l| matches!(l.target, Target::X400(_))) {
        return None;
    }
    let now = Utc::now().timestamp_millis();
    // Only the Open Retry timer of each connector is read, under the lock, per line: the
    // state as a whole (with its transfers under way) is not copied for every message.
    let retrying = |i: usize| m.state.lock().expect("mta state").get(i).and_then(|s| s.retry_until_ms).is_some_and(|t| t > now);
    let cands: Vec<Candidate> = lines
        .iter()
        .filter(|l| ims_routes || l.target != Target::Ims)
        .filter(|l| l.target != Target::Local)
        .map(|l| match l.target {
            Target::X400(i) => Candidate {
                target: l.target,
                cost: l.cost,
                retries: entry.mta_retries.get(&i).copied().unwrap_or(0),
                max_open_retries: m.connector(i).map_or(0, |c| c.overrides.max_open_retries),
                retrying: retrying(i),
                inbound: false,
            },
            _ => Candidate { target: l.target, cost: l.cost, retries: 0, max_open_retries: u32::MAX, retrying: false, inbound: false },
        })
        .collect();
    match select(&cands) {
        Some(Candidate { target: Target::X400(i), .. }) => Some(Ok(i)),
        Some(_) => None,
        None => Some(Err("the maximum number of open retries was reached on every X.400 route".into())),
    }
}

fn parse_rcpt(s: &str) -> Mailbox {
    Mailbox::parse(s).unwrap_or_else(|_| match s.rsplit_once('@') {
        Some((l, d)) => Mailbox { local: l.to_string(), domain: d.to_string() },
        None => Mailbox { local: s.to_string(), domain: String::new() },
    })
}

async fn attempt(ctx: &Arc<Ctx>, job: Job) -> anyhow::Result<()> {
    let Some(entry) = ctx.entries.lock().expect("entries lock").get_mut(&job.id).map(|e| {
        e.next_attempt = None;
        e.clone()
    }) else {
        return Ok(());
    };
    let data = match job.data {
        Some(d) => d,
        None => {
            let c = ctx.clone();
            let id = job.id.clone();
            Arc::new(crate::on_disk(move || c.queue.read_data(&id)).await??)
        }
    };

    // Classify pending recipients.
    let router = ctx.router();
    let mut pending = Vec::new();
    {
        let dir = ctx.directory.read().expect("dir lock");
        for (index, rcpt) in entry.envelope.rcpts.iter().enumerate() {
            if entry.outcomes[index].is_some() {
                continue;
            }
            let mb = parse_rcpt(rcpt);
            if !entry.envelope.p1_apdu && (mb.domain.is_empty() || router.is_local(&mb.domain)) {
                if mb.local.eq_ignore_ascii_case("postmaster") {
                    pending.push(Pending::Local { index, alias: "postmaster".into() });
                } else {
                    match dir.lookup_smtp(&mb.local, &mb.domain) {
                        Some(r) => pending.push(Pending::Local { index, alias: r.alias.clone() }),
                        None => pending.push(Pending::Unknown { index }),
                    }
                }
            } else if entry.envelope.p1_apdu {
                let lines = ctx.mta.as_ref().map(|m| m.gwart.read().expect("gwart").route_x400(rcpt.trim_start_matches("x400:")).into_iter().cloned().collect()).unwrap_or_default();
                match mta_choice(ctx, &entry, lines, false) {
                    Some(Ok(connector)) => pending.push(Pending::X400 { index, connector }),
                    Some(Err(why)) => pending.push(Pending::Ndr { index, why }),
                    None => pending.push(Pending::Ndr { index, why: format!("no X.400 route to {rcpt}") }),
                }
            } else {
                let lines: Vec<crate::mta::gwart::Line> =
                    ctx.mta.as_ref().map(|m| m.gwart.read().expect("gwart").route_smtp(&mb.domain).into_iter().cloned().collect()).unwrap_or_default();
                match mta_choice(ctx, &entry, lines, router.has_route(&mb.domain)) {
                    Some(Ok(connector)) => pending.push(Pending::X400 { index, connector }),
                    Some(Err(why)) => pending.push(Pending::Ndr { index, why }),
                    None => pending.push(Pending::Remote { index, mailbox: mb }),
                }
            }
        }
    }

    let mut results: Vec<(usize, Outcome)> = Vec::new();
    let mut transient: Option<String> = None;
    let mut remote: BTreeMap<String, (NextHop, Vec<(usize, Mailbox)>)> = BTreeMap::new();
    let mut x400: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for p in pending {
        match p {
            Pending::Local { index, alias } => {
                let c = ctx.clone();
                let d = data.clone();
                let rp = entry.envelope.from.clone();
                let to = entry.envelope.rcpts[index].clone();
                let a = alias.clone();
                match crate::on_disk(move || c.mailboxes.deliver(&a, &rp, &to, &d)).await? {
                    Ok(_) => results.push((index, Outcome::Delivered { to: format!("mailbox {alias}") })),
                    Err(e) => transient = Some(format!("local delivery to {alias} failed: {e}")),
                }
            }
            Pending::Unknown { index } => results.push((
                index,
                Outcome::Failed {
                    code: 550,
                    status: "5.1.1".into(),
                    diagnostic: format!("recipient {} is not known at {}", entry.envelope.rcpts[index], ctx.hostname),
                    remote: None,
                },
            )),
            Pending::Remote { index, mailbox } => {
                let hop = router.next_hop(&mailbox.domain);
                remote.entry(hop.key()).or_insert_with(|| (hop, Vec::new())).1.push((index, mailbox));
            }
            Pending::X400 { index, connector } => x400.entry(connector).or_default().push(index),
            Pending::Ndr { index, why } => {
                ctx.events.log(catalog::MTA_NDR, &["1", "49", &job.id, &entry.envelope.rcpts[index]]);
                results.push((index, Outcome::Failed { code: 0, status: "4.4.1".into(), diagnostic: why, remote: None }));
            }
        }
    }

    // Only hosts at their connection limit kept recipients pending: the message waits
    // [`HOST_BUSY_RETRY`], and the pass is not a retry.
    let mut only_busy = transient.is_none();
    let mut busy = false;
    for (_, (hop, rcpts)) in remote {
        let (outs, wait) = deliver_remote(ctx, &entry.envelope, &data, &hop, &rcpts).await;
        results.extend(outs);
        match wait {
            Some(RemoteWait::Busy(why)) => {
                busy = true;
                transient = Some(why);
            }
            Some(RemoteWait::Failed(why)) => {
                only_busy = false;
                transient = Some(why);
            }
            None => {}
        }
    }
    if busy && only_busy {
        defer(ctx, &job.id, HOST_BUSY_RETRY);
    }

    if x400.is_empty() {
        return conclude(ctx, &job.id, &entry, &data, results, transient, x400).await;
    }
    // Recipients for X.400 connectors: the message goes to the MTA's connector queues, and
    // this worker to its next message. A transfer waits there for an association, and the
    // number waiting is what Threshold counts (a worker held per waiting transfer would cap
    // it at the number of workers).
    let Some(m) = ctx.mta.as_ref() else {
        return conclude(ctx, &job.id, &entry, &data, results, transient, x400).await;
    };
    // A permit of each connector's queue; a queue that stays full for QUEUE_WAIT (a connector
    // whose transfers hang on a silent link) leaves the message in the IMS queue for the
    // connector's Transfer interval, and this worker free for other mail.
    let mut permits = Vec::with_capacity(x400.len());
    for &ci in x400.keys() {
        match tokio::time::timeout(QUEUE_WAIT, m.connector_queue(ci).acquire_owned()).await {
            Ok(Ok(p)) => permits.push(p),
            _ => {
                drop(permits);
                let c = m.connector(ci);
                let name = c.as_ref().map_or_else(|| format!("connector {ci}"), |c| c.name.clone());
                let delay = ctx.scaled(c.map_or(60.0, |c| c.overrides.transfer_interval));
                tracing::info!(id = %job.id, connector = %name, "connector queue full; the message waits in the IMS queue");
                defer(ctx, &job.id, delay);
                let why = format!("{name}: the connector's queue is full");
                return conclude(ctx, &job.id, &entry, &data, results, Some(why), BTreeMap::new()).await;
            }
        }
    }
    let c = ctx.clone();
    // Boxed: the task's future (kilobytes, the transfer's state included) is then put on the
    // heap once, not moved through the task's construction for every message.
    tokio::spawn(Box::pin(async move {
        let id = job.id;
        if let Err(e) = conclude(&c, &id, &entry, &data, results, transient, x400).await {
            tracing::error!(id, error = %e, "delivery attempt failed; retrying later");
            schedule_retry(&c, &id, format!("internal error: {e}"));
        }
        drop(permits);
    }));
    Ok(())
}

/// Mark the pass of message `id` now ending as a deferral: nothing was tried (a full connector
/// queue, a host with every connection it is allowed in use), so it is not one of
/// [`Entry::attempts`], and the message is tried again after `delay`.
fn defer(ctx: &Ctx, id: &str, delay: Duration) {
    if let Some(en) = ctx.entries.lock().expect("entries lock").get_mut(id) {
        en.retry_delay = Some(delay);
        en.deferral = true;
    }
}

/// The rest of a delivery attempt of message `id`: the X.400 transfers (`x400`, connector →
/// recipient indices), then the outcomes (`results`, with those of local and SMTP delivery)
/// recorded, and the message finished or scheduled again (after the delay a connector asked
/// for, if one did, with `transient` as the reason).
async fn conclude(
    ctx: &Arc<Ctx>,
    id: &str,
    entry: &Entry,
    data: &Arc<Vec<u8>>,
    mut results: Vec<(usize, Outcome)>,
    mut transient: Option<String>,
    x400: BTreeMap<usize, Vec<usize>>,
) -> anyhow::Result<()> {
    let mut retry_delay: Option<Duration> = None;
    for (ci, indices) in x400 {
        let (outs, pending) = deliver_x400(ctx, entry, data, ci, &indices).await;
        results.extend(outs);
        if let Some(p) = pending {
            transient = Some(p.error);
            retry_delay = retry_delay.max(p.delay);
            if let Some(en) = ctx.entries.lock().expect("entries lock").get_mut(id) {
                if p.attempted {
                    *en.mta_retries.entry(ci).or_insert(0) += 1;
                    // A transfer was tried: the pass counts, whatever an SMTP host did.
                    en.deferral = false;
                }
                en.retry_delay = retry_delay;
            }
        }
    }

    // Record outcomes durably before acting on them — except when every recipient was
    // delivered at this first attempt: then the message is simply removed next, and a crash
    // before that removal delivers it again (a duplicate, never a loss), as Postfix does.
    let first_time_all_delivered = entry.attempts == 0
        && entry.outcomes.iter().all(Option::is_none)
        && results.len() == entry.outcomes.len()
        && results.iter().all(|(_, o)| matches!(o, Outcome::Delivered { .. }));
    if !results.is_empty() && !first_time_all_delivered {
        let c = ctx.clone();
        let id = id.to_string();
        let lines: Vec<LogLine> = results
            .iter()
            .map(|(index, outcome)| LogLine::Rcpt { index: *index, outcome: outcome.clone() })
            .collect();
        crate::on_disk(move || lines.iter().try_for_each(|l| c.queue.record(&id, l))).await??;
    }
    let still_pending = {
        let mut entries = ctx.entries.lock().expect("entries lock");
        let Some(e) = entries.get_mut(id) else { return Ok(()) };
        for (i, o) in results {
            e.outcomes[i] = Some(o);
        }
        e.outcomes.iter().any(Option::is_none)
    };
    if still_pending {
        schedule_retry(ctx, id, transient.unwrap_or_else(|| "delivery deferred".into()));
        Ok(())
    } else {
        finish(ctx, id, Some(data)).await
    }
}

/// Why a connector's recipients stay pending after [`deliver_x400`].
struct X400Pending {
    /// The transient error, for the queue view and the log.
    error: String,
    /// How long the connector asks to wait (Open interval, Transfer interval, or what is left
    /// of a running open retry timer), if it says.
    delay: Option<Duration>,
    /// False when nothing was tried because the connector's open retry timer was still
    /// running: such a pass does not count against the message's retries (Max open retries
    /// counts association attempts, not queue passes; DESIGN §4, connector Override tab).
    attempted: bool,
}

impl X400Pending {
    fn tried(error: String, delay: Option<Duration>) -> Option<X400Pending> {
        Some(X400Pending { error, delay, attempted: true })
    }
}

/// Transfer one message's recipients over X.400 connector `ci`. Returns the final outcomes,
/// and when the recipients stay pending, why and for how long.
async fn deliver_x400(ctx: &Arc<Ctx>, entry: &Entry, data: &Arc<Vec<u8>>, ci: usize, indices: &[usize]) -> (Vec<(usize, Outcome)>, Option<X400Pending>) {
    let Some(m) = ctx.mta.as_ref() else { return (vec![], X400Pending::tried("the MTA is not running".into(), None)) };
    let Some(c) = m.connector(ci) else { return (vec![], X400Pending::tried(format!("no connector {ci}"), None)) };
    // The MTS identifier in text form is made only if the transfer's failure count needs it.
    let (apdu, mts_identifier) = if entry.envelope.p1_apdu {
        (data.to_vec(), None)
    } else {
        let rcpts: Vec<String> = indices.iter().map(|&i| entry.envelope.rcpts[i].clone()).collect();
        // Read under the configuration's lock, held for the conversion (no await in it).
        let cfg = ctx.cfg.read().expect("cfg lock");
        let site = &cfg.site_addressing.x400;
        let prefix: std::borrow::Cow<'_, str> = c
            .address_space
            .iter()
            .find(|a| a.kind.eq_ignore_ascii_case("x400"))
            .map(|a| a.address.as_str().into())
            .or_else(|| c.connected_sites.first().map(|s| s.routing_address.as_str().into()))
            .unwrap_or_else(|| format!("c={};a={};p={};o={}", site.c, site.a, site.p, site.o).into());
        let mta_name = m.local_mta_name(&c, &cfg.server.name);
        let built = {
            let dir = ctx.directory.read().expect("dir lock");
            crate::mta::gateway::rfc822_to_p1(
                &crate::mta::gateway::ToP1 {
                    data,
                    from: &entry.envelope.from,
                    rcpts: &rcpts,
                    prefix: &prefix,
                    site,
                    local_id: &entry.envelope.id,
                    arrival: entry.envelope.received,
                    mta_name: &mta_name,
                },
                &dir,
            )
        };
        let conformance = match c.advanced.conformance {
            crate::config::Conformance::X1984 => mtalab_p1::Conformance::NoExtensions,
            crate::config::Conformance::X410Mode1988 => mtalab_p1::Conformance::Explicit1988,
            crate::config::Conformance::Normal1988 => mtalab_p1::Conformance::Implicit,
        };
        let encoded = built.and_then(|msg| {
            let id = msg.envelope.message_identifier.clone();
            mtalab_p1::MtsApdu::Message(msg).encode(conformance).map(|a| (a, Some(id))).map_err(|e| e.to_string())
        });
        match encoded {
            Ok(a) => a,
            Err(why) => {
                let outs = indices
                    .iter()
                    .map(|&i| (i, Outcome::Failed { code: 0, status: "5.6.0".into(), diagnostic: format!("cannot convert to X.400: {why}"), remote: None }))
                    .collect();
                return (outs, None);
            }
        }
    };
    let mts_id = || match &mts_identifier {
        Some(id) => crate::mta::gateway::mts_id(id),
        None => crate::mta::outbound::mts_id_of(data).unwrap_or_default(),
    };
    match crate::mta::outbound::transfer(ctx, ci, apdu, mts_id).await {
        Ok(()) => (indices.iter().map(|&i| (i, Outcome::Delivered { to: format!("MTA {} over {}", c.remote_mta_name, c.name) })).collect(), None),
        Err(crate::mta::outbound::TransferError::Open(why)) => (vec![], X400Pending::tried(format!("{}: {why}", c.name), Some(ctx.scaled(c.overrides.open_interval)))),
        Err(crate::mta::outbound::TransferError::Transfer(why)) => (vec![], X400Pending::tried(format!("{}: {why}", c.name), Some(ctx.scaled(c.overrides.transfer_interval)))),
        Err(crate::mta::outbound::TransferError::Deferred(left)) => (
            vec![],
            Some(X400Pending {
                error: format!("{}: waiting for the connector's open retry timer", c.name),
                delay: Some(left + Duration::from_millis(10)),
                attempted: false,
            }),
        ),
    }
}

/// Why [`deliver_remote`] left recipients pending.
enum RemoteWait {
    /// Every address of the next hop had all the connections it is allowed in use
    /// (`ims.max_connections_per_host`): nothing was tried.
    Busy(String),
    /// A transient failure: no address, a host that could not be reached, a 4xx reply.
    Failed(String),
}

/// Deliver one group of remote recipients sharing a next hop. Returns the final outcomes
/// and, when some stay pending, why.
async fn deliver_remote(
    ctx: &Arc<Ctx>,
    env: &Envelope,
    data: &Arc<Vec<u8>>,
    hop: &NextHop,
    rcpts: &[(usize, Mailbox)],
) -> (Vec<(usize, Outcome)>, Option<RemoteWait>) {
    let domain = rcpts.first().map(|(_, m)| m.domain.clone()).unwrap_or_default();
    let addrs = match resolve_hop(ctx, hop).await {
        Ok(a) if !a.is_empty() => a,
        Ok(_) => return (vec![], Some(RemoteWait::Failed(format!("no address for next hop of {domain}")))),
        Err(HopError::Permanent(why)) => {
            ctx.events.log(catalog::IMC_DELIVERY_FAILED, &[&domain, &why]);
            let outs = rcpts
                .iter()
                .map(|(i, _)| (*i, Outcome::Failed { code: 0, status: "5.4.4".into(), diagnostic: why.clone(), remote: None }))
                .collect();
            return (outs, None);
        }
        Err(HopError::Temporary(why)) => return (vec![], Some(RemoteWait::Failed(why))),
    };
    let (src, helo, max, per_connection) = {
        let cfg = ctx.cfg.read().expect("cfg lock");
        let ims = cfg.ims.as_ref();
        (
            ims.and_then(|i| i.source_address.or(Some(i.listen.ip()))),
            ctx.hostname.clone(),
            ims.and_then(|i| i.max_connections_per_host),
            ims.and_then(|i| i.max_messages_per_connection),
        )
    };
    let from = if env.from.is_empty() { ReversePath::Null } else { ReversePath::Mailbox(parse_rcpt(&env.from)) };
    let mut last_err = None;
    let mut busy = Vec::new();
    for (host_name, addr) in addrs {
        // Held until the connection is back in the pool or closed.
        let permit = match max {
            Some(max) => match ctx.pool.slot(addr, max).await {
                Some(p) => Some(p),
                None => {
                    busy.push(format!("{host_name} ({addr})"));
                    continue;
                }
            },
            None => None,
        };
        let txn = Transaction { from: from.clone(), rcpts: rcpts.iter().map(|(_, m)| m.clone()).collect(), data: data.to_vec() };
        let result = match ctx.pool.take(addr, src) {
            Some(mut c) => match c.send(txn.clone()).await {
                Ok(r) => Ok((c, r)),
                // A pooled connection the peer closed meanwhile: open a fresh one.
                Err(_) => fresh_send(addr, src, &helo, txn).await,
            },
            None => fresh_send(addr, src, &helo, txn).await,
        };
        match result {
            Ok((conn, r)) => {
                // Its last message if it has carried "Maximum number of messages sent in a
                // connection" (KB Q146562).
                let spent = per_connection.is_some_and(|m| conn.transactions >= m);
                if let Some(c) = if spent { Some(conn) } else { ctx.pool.put(addr, src, conn) } {
                    // The host's permit goes once the connection is closed.
                    tokio::spawn(async move {
                        c.quit().await;
                        drop(permit);
                    });
                }
                let (outs, transient) = map_result(ctx, &domain, &host_name, rcpts, r);
                return (outs, transient.map(RemoteWait::Failed));
            }
            Err(e) => {
                last_err = Some(format!("{host_name} ({addr}): {e}"));
                ctx.events.log(catalog::IMC_HOST_FAILED, &[&format!("{host_name} ({addr})"), &domain, &e.to_string()]);
            }
        }
    }
    let wait = match last_err {
        Some(e) => RemoteWait::Failed(e),
        None => RemoteWait::Busy(format!("{}: every connection allowed to a single host is in use", busy.join(", "))),
    };
    (vec![], Some(wait))
}

async fn fresh_send(addr: SocketAddr, src: Option<IpAddr>, helo: &str, txn: Transaction) -> Result<(SmtpConnection, mtalab_smtp::TransactionResult), ConnError> {
    let mut c = SmtpConnection::connect(addr, src, helo, SMTP_TIMEOUT).await?;
    let r = c.send(txn).await?;
    Ok((c, r))
}

fn map_result(
    ctx: &Ctx,
    domain: &str,
    host: &str,
    rcpts: &[(usize, Mailbox)],
    r: mtalab_smtp::TransactionResult,
) -> (Vec<(usize, Outcome)>, Option<String>) {
    let mut outs = Vec::new();
    let mut transient = None;
    let fail = |reply: &mtalab_smtp::Reply| Outcome::Failed {
        code: reply.code,
        status: reply.enhanced.map_or_else(|| format!("{}.0.0", reply.code / 100), |e| e.to_string()),
        diagnostic: format!("smtp; {reply}"),
        remote: Some(host.to_string()),
    };
    if r.mail.is_permanent() {
        for (i, _) in rcpts {
            outs.push((*i, fail(&r.mail)));
        }
        ctx.events.log(catalog::IMC_DELIVERY_FAILED, &[domain, &r.mail.to_string()]);
        return (outs, None);
    }
    if !r.mail.is_positive() {
        return (outs, Some(format!("{host}: {}", r.mail)));
    }
    for (i, mb) in rcpts {
        let Some((_, reply)) = r.rcpts.iter().find(|(m, _)| m == mb) else {
            transient = Some(format!("{host}: no reply for {mb}"));
            continue;
        };
        if reply.is_permanent() {
            outs.push((*i, fail(reply)));
            ctx.events.log(catalog::IMC_DELIVERY_FAILED, &[domain, &reply.to_string()]);
        } else if !reply.is_positive() {
            transient = Some(format!("{host}: {reply}"));
        } else {
            match &r.data {
                Some(d) if d.is_positive() => outs.push((*i, Outcome::Delivered { to: host.to_string() })),
                Some(d) if d.is_permanent() => outs.push((*i, fail(d))),
                Some(d) => transient = Some(format!("{host}: {d}")),
                None => transient = Some(format!("{host}: no reply to DATA")),
            }
        }
    }
    (outs, transient)
}

enum HopError {
    Permanent(String),
    Temporary(String),
}

async fn resolve_hop(ctx: &Ctx, hop: &NextHop) -> Result<Vec<(String, SocketAddr)>, HopError> {
    let port = ctx.cfg.read().expect("cfg lock").ims.as_ref().map_or(25, |i| i.remote_port);
    match hop {
        NextHop::Hosts { hosts, start, .. } => {
            let mut out = Vec::new();
            for k in 0..hosts.len() {
                let h = &hosts[(start + k) % hosts.len()];
                if let Ok(sa) = h.parse::<SocketAddr>() {
                    out.push((h.clone(), sa));
                } else if let Ok(ip) = h.parse::<IpAddr>() {
                    out.push((h.clone(), SocketAddr::new(ip, port)));
                } else if let Some(r) = &ctx.resolver {
                    match r.host_addrs(h).await {
                        Ok(ips) => out.extend(ips.into_iter().map(|ip| (h.clone(), SocketAddr::new(ip, port)))),
                        Err(e) => tracing::warn!(host = %h, error = %e, "cannot resolve E-Mail Domain host"),
                    }
                }
            }
            if out.is_empty() {
                return Err(HopError::Temporary(format!("no usable host among {hosts:?}")));
            }
            Ok(out)
        }
        NextHop::Dns { domain } => {
            let Some(r) = &ctx.resolver else {
                return Err(HopError::Temporary(format!("no DNS server configured to route {domain}")));
            };
            match r.mail_hosts(domain).await {
                Ok(hosts) => Ok(hosts
                    .into_iter()
                    .flat_map(|h| h.addrs.into_iter().map(move |ip| (h.name.clone(), SocketAddr::new(ip, port))))
                    .collect()),
                Err(e) if e.is_permanent() => Err(HopError::Permanent(format!("DNS: {e}"))),
                Err(e) => Err(HopError::Temporary(format!("DNS: {e}"))),
            }
        }
    }
}

/// A message's per-connector retry counts keyed by connector name (for the queue log).
fn connector_names(ctx: &Ctx, by_index: &std::collections::BTreeMap<usize, u32>) -> std::collections::BTreeMap<String, u32> {
    let Some(m) = ctx.mta.as_ref() else { return Default::default() };
    let cfg = m.cfg.read().expect("mta cfg");
    by_index.iter().filter_map(|(&i, &n)| Some((cfg.connectors.get(i)?.name.clone(), n))).collect()
}

/// The reverse of [`connector_names`] with the connectors configured now; counts of
/// connectors no longer configured are dropped.
fn connector_indices(ctx: &Ctx, by_name: &std::collections::BTreeMap<String, u32>) -> std::collections::BTreeMap<usize, u32> {
    let Some(m) = ctx.mta.as_ref() else { return Default::default() };
    let cfg = m.cfg.read().expect("mta cfg");
    cfg.connectors.iter().enumerate().filter_map(|(i, c)| Some((i, *by_name.get(&c.name)?))).collect()
}

fn schedule_retry(ctx: &Arc<Ctx>, id: &str, error: String) {
    let (expired, delay, n, retries) = {
        let mut entries = ctx.entries.lock().expect("entries lock");
        let Some(e) = entries.get_mut(id) else { return };
        let counted = !std::mem::take(&mut e.deferral);
        if counted {
            e.attempts += 1;
        }
        e.last_error = Some(error.clone());
        let cfg = ctx.cfg.read().expect("cfg lock");
        let (intervals, expire) = cfg
            .ims
            .as_ref()
            .map_or((vec![60.0], 172800.0), |i| (i.retry_intervals_secs.clone(), i.expire_secs));
        let scale = cfg.server.time_scale;
        let age = (Utc::now() - e.envelope.received).to_std().unwrap_or_default();
        let expired = age.as_secs_f64() >= expire * scale;
        let idx = (e.attempts as usize).saturating_sub(1).min(intervals.len() - 1);
        let delay = e.retry_delay.take().unwrap_or_else(|| Duration::from_secs_f64(intervals[idx] * scale));
        if !expired {
            e.next_attempt = Some(Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default());
        }
        (expired, delay, counted.then_some(e.attempts), e.mta_retries.clone())
    };
    let connector_retries = connector_names(ctx, &retries);
    let ctx = ctx.clone();
    let id = id.to_string();
    tokio::spawn(async move {
        let c = ctx.clone();
        let i = id.clone();
        // A deferral changed nothing on disk: no log line, no fsync.
        if let Some(n) = n {
            let line = LogLine::Attempt { n, error: error.clone(), connector_retries };
            let _ = crate::on_disk(move || c.queue.record(&i, &line)).await;
        }
        if expired {
            if let Err(e) = expire(&ctx, &id, &error).await {
                tracing::error!(id, error = %e, "cannot expire message");
            }
            return;
        }
        let shutdown = ctx.shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = crate::stopped(shutdown.clone()) => return,
        }
        let due = ctx.entries.lock().expect("entries lock").get(&id).is_some_and(|e| e.next_attempt.is_some());
        if due {
            let _ = ctx.jobs.send(Job { id, data: None });
        }
    });
}

async fn expire(ctx: &Arc<Ctx>, id: &str, error: &str) -> anyhow::Result<()> {
    let lines: Vec<(usize, Outcome)> = {
        let entries = ctx.entries.lock().expect("entries lock");
        let Some(e) = entries.get(id) else { return Ok(()) };
        e.outcomes
            .iter()
            .enumerate()
            .filter(|(_, o)| o.is_none())
            .map(|(i, _)| {
                (i, Outcome::Failed {
                    code: 0,
                    status: "4.4.7".into(),
                    diagnostic: format!("message expired after {} attempts; last error: {error}", e.attempts),
                    remote: None,
                })
            })
            .collect()
    };
    let domain_list: Vec<String> = {
        let entries = ctx.entries.lock().expect("entries lock");
        entries.get(id).map_or_else(Vec::new, |e| lines.iter().map(|(i, _)| e.envelope.rcpts[*i].clone()).collect())
    };
    ctx.events.log(catalog::IMC_DELIVERY_FAILED, &[&domain_list.join(", "), &format!("the message expired ({error})")]);
    let c = ctx.clone();
    let i = id.to_string();
    let l2 = lines.clone();
    crate::on_disk(move || {
        l2.iter().try_for_each(|(index, outcome)| c.queue.record(&i, &LogLine::Rcpt { index: *index, outcome: outcome.clone() }))
    })
    .await??;
    if let Some(e) = ctx.entries.lock().expect("entries lock").get_mut(id) {
        for (i, o) in lines {
            e.outcomes[i] = Some(o);
        }
    }
    finish(ctx, id, None).await
}

/// Every recipient is final: send the DSN owed (or set a failed DSN aside), then remove.
async fn finish(ctx: &Arc<Ctx>, id: &str, data: Option<&Arc<Vec<u8>>>) -> anyhow::Result<()> {
    let Some(entry) = ctx.entries.lock().expect("entries lock").get(id).cloned() else { return Ok(()) };
    let failed: Vec<FailedRcpt> = entry
        .outcomes
        .iter()
        .zip(&entry.envelope.rcpts)
        .filter_map(|(o, rcpt)| match o {
            Some(Outcome::Failed { status, diagnostic, remote, .. }) => Some(FailedRcpt {
                rcpt: rcpt.clone(),
                status: status.clone(),
                diagnostic: diagnostic.clone(),
                remote_mta: remote.clone(),
            }),
            _ => None,
        })
        .collect();
    if !failed.is_empty() {
        return finish_failed(ctx, id, &entry, data, failed).await;
    }
    // Every recipient delivered: the queue file goes in a batch with others, and the worker
    // goes on to its next message. One blocking call per message woke a thread of the
    // blocking pool each time, a good part of a relay's CPU. A message received over X.400
    // also waits for the record of accepted MTS identifiers to reach the disk
    // (`sync_accepted`): up to SYNC_GATHER and a write; held, that wait would cap the
    // receiving MTA's deliveries at 32 per write of the record, and the messages behind
    // them would pile up in memory.
    queue_removal(ctx, id, entry.envelope.x400.is_some());
    Ok(())
}

/// Delivered messages whose queue files wait to be removed ([`finish`]); one task removes
/// them in batches: one sync of the record of accepted MTS identifiers (when a message of
/// the batch came over X.400) and one blocking call per batch.
#[derive(Default)]
pub struct Removals {
    /// The ids waiting (each with whether it came over X.400), and whether the task is
    /// running.
    state: Mutex<(Vec<(String, bool)>, bool)>,
}

/// Hand a delivered message's queue file to the [`Removals`] task (started if idle); `x400`:
/// it came over X.400 (its queue file is the durable copy of its line in the record of
/// accepted MTS identifiers).
fn queue_removal(ctx: &Arc<Ctx>, id: &str, x400: bool) {
    let start = {
        let mut st = ctx.removals.state.lock().expect("removals lock");
        st.0.push((id.to_string(), x400));
        !std::mem::replace(&mut st.1, true)
    };
    if start {
        let ctx = ctx.clone();
        tokio::spawn(async move { remove_batches(&ctx).await });
    }
}

/// The [`Removals`] task: take the ids waiting, sync the record when one of them came over
/// X.400 (it then holds the lines of every such one, recorded before their delivery), remove
/// their queue files, and again until none is waiting. A failure leaves the message for a
/// retry, as a failure in [`finish`] does.
async fn remove_batches(ctx: &Arc<Ctx>) {
    loop {
        let ids = {
            let mut st = ctx.removals.state.lock().expect("removals lock");
            if st.0.is_empty() {
                st.1 = false;
                return;
            }
            std::mem::take(&mut st.0)
        };
        // As a failure in a worker's attempt is handled (`start_workers`).
        let retry_later = |id: &str, e: &dyn std::fmt::Display| {
            tracing::error!(id, error = %e, "removing a delivered message failed; retrying later");
            schedule_retry(ctx, id, format!("internal error: {e}"));
        };
        if let Err(e) = sync_accepted(ctx, ids.iter().any(|(_, x400)| *x400)).await {
            ids.iter().for_each(|(id, _)| retry_later(id, &e));
            continue;
        }
        let c = ctx.clone();
        let removed = crate::on_disk(move || ids.into_iter().map(|(id, _)| {
            let r = c.queue.remove(&id);
            (id, r)
        }).collect::<Vec<_>>())
        .await;
        let removed = match removed {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "removing delivered messages failed; they stay queued until the next start");
                continue;
            }
        };
        for (id, r) in removed {
            match r {
                Ok(()) => {
                    ctx.entries.lock().expect("entries lock").remove(&id);
                }
                Err(e) => retry_later(&id, &e),
            }
        }
    }
}

/// The end of [`finish`] for a message with `failed` recipients (not empty): its queue file
/// is set aside (a DSN that failed itself) or replaced by the DSN for them, and the message
/// leaves the in-memory queue. (Without failures the file goes through [`Removals`].)
async fn finish_failed(ctx: &Arc<Ctx>, id: &str, entry: &Entry, data: Option<&Arc<Vec<u8>>>, failed: Vec<FailedRcpt>) -> anyhow::Result<()> {
    let c = ctx.clone();
    let idc = id.to_string();
    sync_accepted(ctx, entry.envelope.x400.is_some()).await?;
    if entry.envelope.from.is_empty() {
        // A DSN that failed itself: never bounce a bounce (RFC 5321 §6.1); set it aside.
        let path = crate::on_disk(move || c.queue.set_aside(&idc)).await??;
        let why = failed.iter().map(|f| format!("{}: {}", f.rcpt, f.diagnostic)).collect::<Vec<_>>().join("; ");
        ctx.events.log(catalog::IMC_SYSTEM_MESSAGE_SET_ASIDE, &[id, &format!("{why} ({})", path.display())]);
    } else {
        let original = match data {
            Some(d) => d.clone(),
            None => {
                let c = ctx.clone();
                let i = id.to_string();
                Arc::new(crate::on_disk(move || c.queue.read_data(&i)).await??)
            }
        };
        let postmaster = ctx.postmaster();
        let body = dsn::build(&dsn::DsnInput {
            reporting_mta: &ctx.hostname,
            postmaster: &postmaster,
            to: &entry.envelope.from,
            arrival: entry.envelope.received,
            original_id: id,
            original: &original,
            failed: &failed,
        });
        let dsn_id = ctx.queue.new_id();
        let dsn_env = Envelope {
            id: dsn_id.clone(),
            from: String::new(),
            rcpts: vec![entry.envelope.from.clone()],
            received: Utc::now(),
            peer: "local".into(),
            helo: ctx.hostname.clone(),
            dsn: true,
            x400: None,
            p1_apdu: false,
        };
        let data = Arc::new(crate::ims::with_received(&ctx.hostname, "local", &dsn_env, &body));
        let dsn_env = Arc::new(dsn_env);
        let c = ctx.clone();
        let env2 = dsn_env.clone();
        let data2 = data.clone();
        let idc2 = idc.clone();
        crate::on_disk(move || {
            c.queue.commit(&env2, &data2)?;
            c.queue.record(&idc2, &LogLine::DsnQueued { dsn_id: env2.id.clone() })?;
            c.queue.remove(&idc2)
        })
        .await??;
        submit(ctx, dsn_env, Some(data));
    }
    ctx.entries.lock().expect("entries lock").remove(id);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_wait_with_their_jobs_up_to_the_budget_and_not_beyond() {
        let b = BodyBudget::new(10_000);
        assert!(b.take(4_000));
        assert!(b.take(4_000));
        // A third would pass the budget: that job goes without its body.
        assert!(!b.take(4_000));
        assert_eq!(b.held(), 8_000);
        // A smaller one still fits.
        assert!(b.take(2_000));
        assert!(!b.take(1));
        // Taken by a worker: room again.
        b.release(4_000);
        assert!(b.take(4_000));
        assert_eq!(b.held(), 10_000);
        assert!(!b.take(usize::MAX));
        assert_eq!(BodyBudget::default().max, MAX_QUEUED_BODIES);
    }
}
