//! One emulated Exchange 5.5 server as a daemon (DESIGN §2): the Internet Mail Service
//! (SMTP in and out), the durable queue, local delivery to Maildirs, routing, the event log
//! and the admin API. This crate is the tokio glue around the sans-IO protocol crates.
//!
//! Entry point: [`run`] with a loaded [`config::Config`]; `mtalab server --config FILE` calls it.
#![forbid(unsafe_code)]

pub mod admin;
pub mod config;
pub mod conn;
pub mod delivery;
pub mod dsn;
pub mod events;
pub mod ims;
pub mod jsonl;
pub mod links;
pub mod maildir;
pub mod mta;
pub mod netsel;
#[cfg(target_os = "linux")]
pub mod netlink;
pub mod queue;
pub mod resolve;
pub mod routing;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use mtalab_directory::{Directory, RecipientSpec, SiteAddressing, X400SiteAddress};
use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::events::{EventLog, catalog};

/// State shared by every task of one server.
pub struct Ctx {
    /// The configuration (admin actions change parts of it at run time).
    pub cfg: RwLock<Config>,
    /// IMS host name (greeting, Received headers, Reporting-MTA).
    pub hostname: String,
    /// The durable queue.
    pub queue: queue::Queue,
    /// Local mailboxes.
    pub mailboxes: maildir::Mailboxes,
    /// The Application Log.
    pub events: EventLog,
    /// The directory (recipients, site addressing).
    pub directory: RwLock<Directory>,
    /// IMS routing tables.
    pub router: RwLock<Arc<routing::Router>>,
    /// MX/A resolver against the configured DNS server.
    pub resolver: Option<resolve::MxResolver>,
    /// In-memory view of the queue: id → entry.
    pub entries: Mutex<HashMap<String, delivery::Entry>>,
    /// Delivery jobs.
    pub jobs: mpsc::UnboundedSender<delivery::Job>,
    /// The message bodies those jobs hold, and their budget.
    pub bodies: delivery::BodyBudget,
    /// Idle outbound connections.
    pub pool: delivery::Pool,
    /// Delivered messages waiting to be removed from the queue, in batches.
    pub removals: delivery::Removals,
    /// Becomes true when the server shuts down.
    pub shutdown: watch::Receiver<bool>,
    /// The message transfer agent, when `[mta]` is configured.
    pub mta: Option<mta::Mta>,
    /// The host's links as the local lab emulates them (cut, rate): [`links`].
    pub links: links::Links,
}

impl Ctx {
    /// The address a peer has in the scenario, for what users read (events, `Received:`
    /// fields): the local lab backend maps scenario addresses onto loopback ones
    /// (`[server] address_map`); elsewhere the address itself.
    pub fn shown_ip(&self, real: std::net::IpAddr) -> std::net::IpAddr {
        crate::mta::scenario_address(&self.cfg.read().expect("cfg lock"), real)
    }

    /// Scale a nominal protocol duration by the server's time_scale (DESIGN §1).
    pub fn scaled(&self, secs: f64) -> Duration {
        let scale = self.cfg.read().expect("cfg lock").server.time_scale;
        Duration::from_secs_f64((secs * scale).max(0.0))
    }

    /// Rebuild the routing tables after a settings or directory change.
    pub fn rebuild_router(&self) {
        let cfg = self.cfg.read().expect("cfg lock");
        if let Some(ims) = &cfg.ims {
            let domains = self.directory.read().expect("dir lock").local_domains();
            *self.router.write().expect("router lock") = Arc::new(routing::Router::new(ims, domains));
        }
    }

    /// The current routing tables.
    pub fn router(&self) -> Arc<routing::Router> {
        self.router.read().expect("router lock").clone()
    }

    /// `postmaster@<site domain>`, the sender of DSNs.
    pub fn postmaster(&self) -> String {
        format!("postmaster@{}", self.cfg.read().expect("cfg lock").site_addressing.smtp.trim_start_matches('@'))
    }
}

/// [`on_disk`]'s work panicked; the message says where.
#[derive(Debug, thiserror::Error)]
#[error("disk work panicked: {0}")]
pub struct DiskPanic(pub String);

/// Disk work that takes less than this is short enough to run on the task's own thread
/// ([`on_disk`]): tokio's guidance for the time between two awaits of a task is 10–100 µs,
/// and handing work to the blocking pool and the task back costs more than that (two thread
/// wake-ups, hundreds of microseconds on a loaded machine; docs/BENCHMARKS.md).
pub const INLINE_DISK_MAX: Duration = Duration::from_micros(100);

/// How many of the last [`DISK_WINDOW`] works of [`on_disk`] may have taken
/// [`INLINE_DISK_MAX`] or more for the next one still to run on the task's thread. Not
/// zero: on a busy machine a short write is now and then descheduled mid-way, and that says
/// nothing about the disk.
pub const DISK_SLOW_ALLOWED: u32 = 3;

/// The works [`on_disk`] remembers the times of.
pub const DISK_WINDOW: u32 = 16;

/// The last works of [`on_disk`], newest in bit 0: 1 for one that took [`INLINE_DISK_MAX`]
/// or more.
#[derive(Debug, Default)]
pub struct DiskTimes(std::sync::atomic::AtomicU32);

impl DiskTimes {
    /// Note a work that took `took`.
    pub fn note(&self, took: Duration) {
        let slow = u32::from(took >= INLINE_DISK_MAX);
        let _ = self.0.fetch_update(std::sync::atomic::Ordering::Relaxed, std::sync::atomic::Ordering::Relaxed, |h| Some((h << 1) | slow));
    }

    /// Whether the next work should run on the task's thread: at most
    /// [`DISK_SLOW_ALLOWED`] of the last [`DISK_WINDOW`] were slow.
    pub fn inline(&self) -> bool {
        let window = (1u32 << DISK_WINDOW) - 1;
        (self.0.load(std::sync::atomic::Ordering::Relaxed) & window).count_ones() <= DISK_SLOW_ALLOWED
    }
}

/// The times of this process's disk work ([`on_disk`]).
static DISK_TIMES: DiskTimes = DiskTimes(std::sync::atomic::AtomicU32::new(0));

/// Run `f`, short work that blocks on the disk (a queue file's write and its fsync, a
/// Maildir delivery, removals), from a task, and give its result.
///
/// On tokio's multi-thread runtime, while such work has lately taken less than
/// [`INLINE_DISK_MAX`] (tmpfs, a disk whose cache answers fsync; [`DiskTimes::inline`]),
/// it runs right here on the worker thread: the task waits only for the disk. Otherwise,
/// and on a current-thread runtime, it goes to the blocking pool (`spawn_blocking`), so
/// that a slow fsync holds no worker and several can be in flight at once (a journaling
/// file system commits them together). Both ways time the work, and the times choose the
/// way of the next.
///
/// `f` must not wait for a task (a lock or condition a task releases): run inline it may
/// hold the very worker that task needs. Waiting for other threads is fine.
///
/// # Errors
/// [`DiskPanic`] when `f` panicked (the task and its worker go on).
pub async fn on_disk<T, F>(f: F) -> Result<T, DiskPanic>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let panicked = |p: Box<dyn std::any::Any + Send>| {
        DiskPanic(p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default())
    };
    let timed = move || {
        let t = std::time::Instant::now();
        let r = f();
        DISK_TIMES.note(t.elapsed());
        r
    };
    let multi = matches!(tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()), Ok(tokio::runtime::RuntimeFlavor::MultiThread));
    if multi && DISK_TIMES.inline() {
        return std::panic::catch_unwind(std::panic::AssertUnwindSafe(timed)).map_err(panicked);
    }
    tokio::task::spawn_blocking(timed).await.map_err(|e| match e.try_into_panic() {
        Ok(p) => panicked(p),
        Err(e) => DiskPanic(e.to_string()),
    })
}

/// Resolves when the shutdown flag becomes true (never, if the sender is gone without it).
pub async fn stopped(mut rx: watch::Receiver<bool>) {
    loop {
        let stop = *rx.borrow_and_update();
        if stop {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Build the directory of this server from its config.
pub fn build_directory(cfg: &Config) -> anyhow::Result<Directory> {
    let sa = &cfg.site_addressing;
    let addressing = SiteAddressing {
        smtp: sa.smtp.clone(),
        smtp_generator: sa.smtp_generator.clone(),
        x400: X400SiteAddress {
            c: sa.x400.c.clone(),
            a: sa.x400.a.clone(),
            p: sa.x400.p.clone(),
            o: sa.x400.o.clone(),
        },
    };
    let mut dir = Directory::new(&cfg.organization.name, &cfg.site.name, &cfg.server.name, addressing);
    for r in &cfg.recipients {
        dir.add_mailbox(RecipientSpec {
            alias: r.alias.clone(),
            given: r.given.clone(),
            surname: r.surname.clone(),
            display_name: r.display_name.clone(),
        })
        .with_context(|| format!("recipient {}", r.alias))?;
    }
    Ok(dir)
}

/// Run the server until SIGINT/SIGTERM (or `stop` becomes true).
pub async fn run(cfg: Config, stop: watch::Receiver<bool>) -> anyhow::Result<()> {
    let data_dir = cfg.data_dir();
    std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let events = EventLog::open(&data_dir, &cfg.server.name).context("opening the event log")?;
    let queue = queue::Queue::open(&data_dir).context("opening the queue")?;
    let mailboxes = maildir::Mailboxes::new(&data_dir).context("opening mailboxes")?;
    let directory = build_directory(&cfg)?;
    #[cfg(target_os = "linux")]
    if cfg.server.apply_routes {
        netlink::start(&cfg.server.routes, &cfg.server.interfaces, stop.clone()).await?;
    }
    let hostname = cfg.ims_hostname();
    let resolver = cfg
        .ims
        .as_ref()
        .and_then(|i| i.dns_servers.first().copied())
        .map(resolve::MxResolver::new);
    let router = match &cfg.ims {
        Some(ims) => routing::Router::new(ims, directory.local_domains()),
        None => routing::Router::new(&config::ImsConfig::disabled(), directory.local_domains()),
    };
    let (jobs_tx, jobs_rx) = mpsc::unbounded_channel();
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let workers = cfg.ims.as_ref().map_or(4, |i| i.delivery_workers.max(1));
    let ims_cfg = cfg.ims.clone();
    let mta_listen = cfg.mta.as_ref().map(|m| m.listen);
    let mta = mta::Mta::start(&cfg, &events)?;
    let links = links::Links::new(&cfg.server.interfaces);
    let admin_listen = cfg.admin.listen;
    let ctx = Arc::new(Ctx {
        cfg: RwLock::new(cfg),
        hostname,
        queue,
        mailboxes,
        events,
        directory: RwLock::new(directory),
        router: RwLock::new(Arc::new(router)),
        resolver,
        entries: Mutex::new(HashMap::new()),
        jobs: jobs_tx,
        bodies: delivery::BodyBudget::default(),
        pool: delivery::Pool::default(),
        removals: delivery::Removals::default(),
        shutdown: shutdown_rx,
        mta,
        links,
    });

    // Bind everything before reporting ready, so a lab can connect as soon as we say so.
    let admin_listener = tokio::net::TcpListener::bind(admin_listen)
        .await
        .with_context(|| format!("admin API cannot listen on {admin_listen}"))?;
    let smtp_listener = match &ims_cfg {
        Some(ims) => Some(
            tokio::net::TcpListener::bind(ims.listen)
                .await
                .with_context(|| format!("IMS cannot listen on {}", ims.listen))?,
        ),
        None => None,
    };

    let mta_listener = match mta_listen {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.with_context(|| format!("MTA cannot listen on {addr}"))?),
        None => None,
    };

    delivery::recover(&ctx).await.context("recovering the queue")?;
    if let Some(l) = mta_listener {
        tokio::spawn(mta::inbound::serve(l, ctx.clone()));
        tokio::spawn(mta::outbound::reap(ctx.clone()));
    }
    delivery::start_workers(&ctx, jobs_rx, workers);
    tokio::spawn(delivery::reap_idle(ctx.clone()));
    tokio::spawn(admin::serve(admin_listener, ctx.clone()));
    if let (Some(l), Some(ims)) = (smtp_listener, &ims_cfg) {
        ctx.events.log(catalog::IMC_STARTED, &[&ims.listen.to_string(), &ctx.hostname]);
        tokio::spawn(ims::serve(l, ctx.clone()));
    }
    tracing::info!(server = %ctx.cfg.read().expect("cfg lock").server.name, admin = %admin_listen, "server ready");

    stopped(stop).await;
    let _ = shutdown_tx.send(true);
    if ims_cfg.is_some() {
        ctx.events.log(catalog::IMC_STOPPED, &[]);
    }
    if ctx.mta.is_some() {
        ctx.events.log(catalog::MTA_STOPPED, &[mta::VERSION.0, mta::VERSION.1]);
    }
    // Give sessions a moment to say 421 and in-flight deliveries to record their outcome.
    tokio::time::sleep(Duration::from_millis(200)).await;
    if let Some(m) = &ctx.mta {
        // Accepted MTS identifiers not yet on disk (their queue files still carry them).
        if let Err(e) = m.dedup.sync() {
            tracing::warn!(error = %e, "cannot write the record of accepted MTS identifiers at stop");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_work_goes_to_the_blocking_pool_once_it_is_slow_and_comes_back_when_fast() {
        let t = DiskTimes::default();
        assert!(t.inline(), "nothing known yet: inline");
        let fast = INLINE_DISK_MAX / 4;
        let slow = INLINE_DISK_MAX;
        for _ in 0..DISK_SLOW_ALLOWED {
            t.note(slow);
        }
        assert!(t.inline(), "a few slow ones among fast ones (a descheduled write) change nothing");
        t.note(slow);
        assert!(!t.inline(), "one more slow one: the blocking pool");
        // The slow ones leave the window one by one; once no more than allowed are in it,
        // the work is inline again.
        t.note(fast);
        assert!(!t.inline());
        for _ in 1..(DISK_WINDOW - DISK_SLOW_ALLOWED) {
            t.note(fast);
        }
        assert!(t.inline());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn disk_work_gives_its_result_and_a_panic_as_an_error_on_either_way() {
        // Inline (fast work) or in the blocking pool (after slow work), the same results.
        for sleep in [Duration::ZERO, INLINE_DISK_MAX * 2] {
            for _ in 0..(DISK_WINDOW + 1) {
                assert_eq!(on_disk(move || { std::thread::sleep(sleep); 7 }).await.unwrap(), 7);
            }
            let e = on_disk(|| -> u8 { panic!("the disk is on fire") }).await.unwrap_err();
            assert!(e.0.contains("the disk is on fire"), "{e}");
        }
        // The worker that ran a panicking work inline goes on serving tasks.
        assert_eq!(tokio::spawn(async { on_disk(|| 1).await.unwrap() }).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn disk_work_on_a_current_thread_runtime_goes_to_the_blocking_pool() {
        let here = std::thread::current().id();
        let there = on_disk(|| std::thread::current().id()).await.unwrap();
        assert_ne!(here, there);
    }
}
