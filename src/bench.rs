//! `mtalab bench`: benchmarks that print figures (docs/BENCHMARKS.md).
//!
//! `bench relay` measures relay throughput through one IMS with the durable queue: Postfix's
//! `smtp-source` sends N messages to the relay under test, which forwards them to Postfix's
//! `smtp-sink` as next hop. A run ends when `smtp-source` has exited and the relay's queue is
//! empty, so every message was accepted (fsynced before 250) and forwarded. The same run
//! measures a private Postfix instance (stock settings, queue files fsynced) side by side,
//! with its queue on the same filesystem.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

/// Benchmarks.
#[derive(Subcommand)]
pub enum BenchCmd {
    /// Relay throughput (messages/s) and peak memory of one IMS with the durable queue,
    /// next to a private Postfix instance on the same machine. Needs Postfix's smtp-source
    /// and smtp-sink (`apt-get install postfix`); the Postfix side needs root.
    Relay(RelayArgs),
    /// The X.400 path against the SMTP path in one run: P1 messages/s over one association
    /// and over Threshold-driven associations, the SMTP relay of the same payload, and
    /// associations opened and bound per second.
    P1(crate::bench_p1::P1Args),
}

/// Options of `bench relay`.
#[derive(Args)]
pub struct RelayArgs {
    /// Messages per run.
    #[arg(long, default_value_t = 5000)]
    pub messages: u32,
    /// Concurrent SMTP sessions of the load generator; one run per value.
    #[arg(long, value_delimiter = ',', default_values_t = [1u32, 20])]
    pub sessions: Vec<u32>,
    /// Message body size in octets (smtp-source adds a few header lines).
    #[arg(long, default_value_t = 1024)]
    pub size: u32,
    /// Measure mtalab only (no Postfix instance; does not need root).
    #[arg(long)]
    pub no_postfix: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Directory for the queues (default $TMPDIR or /tmp). Its filesystem is what is measured:
    /// on tmpfs an fsync costs nothing.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Measure every system and session count this many times; the table shows the median.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// Give up on a run after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
}

/// Run a benchmark subcommand.
pub async fn run(cmd: BenchCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCmd::P1(a) => tokio::select! {
            r = crate::bench_p1::run(a) => r,
            _ = mtalab_lab::wait_for_signal() => bail!("interrupted"),
        },
        BenchCmd::Relay(a) => {
            // Dropping the benchmark future on ^C stops every process it started and removes
            // its directory.
            tokio::select! {
                r = relay(a) => r,
                _ = mtalab_lab::wait_for_signal() => bail!("interrupted"),
            }
        }
    }
}

/// One measured run (or the summary of several).
#[derive(Clone, Copy)]
struct RunResult {
    system: &'static str,
    sessions: u32,
    messages: u32,
    seconds: f64,
    delivered: u64,
    peak_kib: u64,
    pss_kib: u64,
    processes: usize,
    cpu_seconds: f64,
    /// Runs this stands for.
    rounds: usize,
}

impl RunResult {
    fn rate(&self) -> f64 {
        f64::from(self.messages) / self.seconds
    }

    fn json(&self) -> Value {
        json!({
            "system": self.system,
            "sessions": self.sessions,
            "messages": self.messages,
            "seconds": round(self.seconds, 3),
            "msgs_per_sec": round(self.rate(), 1),
            "delivered_to_next_hop": self.delivered,
            "peak_mib": round(self.peak_kib as f64 / 1024.0, 1),
            "peak_pss_mib": round(self.pss_kib as f64 / 1024.0, 1),
            "processes": self.processes,
            "cpu_seconds": round(self.cpu_seconds, 2),
            "cpu_ms_per_msg": round(self.cpu_seconds * 1000.0 / f64::from(self.messages), 3),
            "rounds": self.rounds,
        })
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

struct Tools {
    source: PathBuf,
    sink: PathBuf,
    postfix: Option<PostfixTools>,
}

struct PostfixTools {
    postfix: PathBuf,
    postconf: PathBuf,
    postqueue: PathBuf,
    version: String,
}

async fn relay(a: RelayArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(a.messages > 0, "--messages must be positive");
    anyhow::ensure!(a.rounds > 0, "--rounds must be positive");
    anyhow::ensure!(!a.sessions.is_empty() && a.sessions.iter().all(|&s| s > 0), "--sessions must list positive numbers");
    if cfg!(debug_assertions) {
        eprintln!("mtalab bench: warning: this is a debug build; build with `cargo build --release` for meaningful figures");
    }
    let root = effective_uid() == Some(0);
    let tools = Tools {
        source: find_tool("smtp-source")?,
        sink: find_tool("smtp-sink")?,
        postfix: if a.no_postfix {
            None
        } else {
            anyhow::ensure!(
                root,
                "the Postfix side of the benchmark starts a private Postfix instance and needs root; run as root or pass --no-postfix"
            );
            let postconf = find_tool("postconf")?;
            let version = command_output(&postconf, &["-d", "-h", "mail_version"]).await.unwrap_or_default();
            Some(PostfixTools { postfix: find_tool("postfix")?, postqueue: find_tool("postqueue")?, postconf, version })
        },
    };

    let base = a.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    let work = WorkDir::create(&base)?;
    let fs_type = filesystem_of(&work.path).unwrap_or_else(|| "unknown".into());
    if fs_type == "tmpfs" || fs_type == "ramfs" {
        eprintln!("mtalab bench: warning: {} is on {fs_type}: fsync costs nothing there; pass --work-dir on a disk", work.path.display());
    }

    let load_before = load_average();
    let sink = Sink::start(&tools.sink, root).await?;
    let timeout = Duration::from_secs(a.timeout);
    let mut results = Vec::new();
    for round in 0..a.rounds {
        for &sessions in &a.sessions {
            let spec = RunSpec { sessions, messages: a.messages, size: a.size, timeout };
            // Alternate which system goes first, so drift in the machine's load evens out.
            let postfix_first = round % 2 == 1;
            for system in if postfix_first { ["postfix", "mtalab"] } else { ["mtalab", "postfix"] } {
                let label = format!("round {}/{}: {system}, {sessions} session(s), {} messages", round + 1, a.rounds, a.messages);
                let dir = work.path.join(format!("{system}-r{round}-s{sessions}"));
                let r = match (system, &tools.postfix) {
                    ("mtalab", _) => run_mtalab(&dir, &tools, &sink, &spec).await,
                    (_, Some(pf)) => run_postfix(&dir, pf, &tools, &sink, &spec).await,
                    (_, None) => continue,
                };
                let r = r.with_context(|| label.clone())?;
                eprintln!("mtalab bench: {label}: {:.1} msgs/s", r.rate());
                // The run's queue is no longer needed; keep the disk as it was for the next one.
                let _ = std::fs::remove_dir_all(&dir);
                results.push(r);
            }
        }
    }
    drop(sink);
    let rows = summarize(&results, &a.sessions);

    let machine = json!({
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "memory_mib": mem_total_kib().map_or(0, |k| k / 1024),
        "work_dir": base,
        "filesystem": fs_type,
        "load_average_before": load_before,
        "load_average_after": load_average(),
    });
    if a.json {
        let ratios: Vec<Value> = a
            .sessions
            .iter()
            .filter_map(|s| ratio(&rows, *s).map(|r| json!({"sessions": s, "mtalab_over_postfix": round(r, 3)})))
            .collect();
        let out = json!({
            "benchmark": "relay",
            "date": utc_now(),
            "messages": a.messages,
            "size": a.size,
            "rounds": a.rounds,
            "machine": machine,
            "versions": {
                "mtalab": env!("CARGO_PKG_VERSION"),
                "postfix": tools.postfix.as_ref().map(|p| p.version.clone()),
            },
            "summary": rows.iter().map(RunResult::json).collect::<Vec<_>>(),
            "runs": results.iter().map(RunResult::json).collect::<Vec<_>>(),
            "rate_ratios": ratios,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", table(&a, &rows, &machine, tools.postfix.as_ref().map(|p| p.version.as_str())));
    }
    Ok(ExitCode::SUCCESS)
}

/// One row per system and session count: the median run by rate (its seconds and CPU time
/// with it), and the highest memory figures of all rounds.
fn summarize(results: &[RunResult], sessions: &[u32]) -> Vec<RunResult> {
    let mut rows = Vec::new();
    for &n in sessions {
        for system in ["mtalab", "postfix"] {
            let mut runs: Vec<&RunResult> = results.iter().filter(|r| r.system == system && r.sessions == n).collect();
            if runs.is_empty() {
                continue;
            }
            runs.sort_by(|x, y| x.rate().total_cmp(&y.rate()));
            let median = runs[runs.len() / 2];
            rows.push(RunResult {
                peak_kib: runs.iter().map(|r| r.peak_kib).max().unwrap_or(0),
                pss_kib: runs.iter().map(|r| r.pss_kib).max().unwrap_or(0),
                processes: runs.iter().map(|r| r.processes).max().unwrap_or(0),
                delivered: runs.iter().map(|r| r.delivered).min().unwrap_or(0),
                rounds: runs.len(),
                ..*median
            });
        }
    }
    rows
}

fn ratio(rows: &[RunResult], sessions: u32) -> Option<f64> {
    let m = rows.iter().find(|r| r.system == "mtalab" && r.sessions == sessions)?;
    let p = rows.iter().find(|r| r.system == "postfix" && r.sessions == sessions)?;
    Some(m.rate() / p.rate())
}

fn table(a: &RelayArgs, rows: &[RunResult], machine: &Value, postfix_version: Option<&str>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "relay benchmark, {}: {} messages of {} octets per run, {} round(s), next hop smtp-sink",
        utc_now(),
        a.messages,
        a.size,
        a.rounds
    );
    let _ = writeln!(
        s,
        "machine: {} CPUs, {} MiB memory, load average {} before, {} after; queues on {} ({}); mtalab {}{}",
        machine["cpus"],
        machine["memory_mib"],
        machine["load_average_before"],
        machine["load_average_after"],
        machine["work_dir"].as_str().unwrap_or("?"),
        machine["filesystem"].as_str().unwrap_or("?"),
        env!("CARGO_PKG_VERSION"),
        postfix_version.map_or(String::new(), |v| format!(", postfix {v}")),
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "{:<8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>6} {:>10}",
        "system", "sessions", "messages", "seconds", "msgs/s", "peak MiB", "PSS MiB", "procs", "CPU ms/msg"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{:<8} {:>8} {:>8} {:>8.2} {:>8.1} {:>9.1} {:>8.1} {:>6} {:>10.3}",
            r.system,
            r.sessions,
            r.messages,
            r.seconds,
            r.rate(),
            r.peak_kib as f64 / 1024.0,
            r.pss_kib as f64 / 1024.0,
            r.processes,
            r.cpu_seconds * 1000.0 / f64::from(r.messages)
        );
    }
    let _ = writeln!(s);
    for &n in &a.sessions {
        if let Some(q) = ratio(rows, n) {
            let _ = writeln!(s, "{n} session(s): mtalab relays at {q:.2}× Postfix's rate");
        }
    }
    if a.rounds > 1 {
        let _ = writeln!(s, "seconds, msgs/s, CPU: the median round by rate; memory: the highest of all rounds");
    }
    let _ = writeln!(
        s,
        "peak MiB: mtalab = VmHWM of the server process; postfix = sum of VmHWM over the instance's processes (master and children; shared pages counted in each)"
    );
    let _ = writeln!(s, "PSS MiB: highest sum of proportional set sizes seen while running (shared pages split between processes)");
    let _ = writeln!(
        s,
        "CPU ms/msg: user+system CPU time of the system under test per message (Postfix: master, its children and reaped children)"
    );
    s
}

// ---------------------------------------------------------------------------------------------
// Runs

struct RunSpec {
    sessions: u32,
    messages: u32,
    size: u32,
    timeout: Duration,
}

async fn run_mtalab(dir: &Path, tools: &Tools, sink: &Sink, spec: &RunSpec) -> anyhow::Result<RunResult> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let smtp_port = free_port()?;
    let admin_port = free_port()?;
    let data_dir = dir.join("data");
    let config = format!(
        r#"[organization]
name = "Bench"
[site]
name = "Relay"
[server]
name = "IMS1"
data_dir = {data_dir:?}
[site_addressing]
smtp = "@mtalab.bench.test"
x400 = {{ c = "US", p = "Bench", o = "Relay" }}
[ims]
listen = "127.0.0.1:{smtp_port}"
address_space = ["relay.test"]
relay_from = ["127.0.0.0/8"]
[[ims.email_domains]]
domain = "relay.test"
hosts = ["127.0.0.1:{sink_port}"]
[admin]
listen = "127.0.0.1:{admin_port}"
"#,
        data_dir = data_dir.display().to_string(),
        sink_port = sink.port,
    );
    mtalab_server::config::Config::parse(&config).map_err(|e| anyhow::anyhow!("benchmark server config: {e}"))?;
    let cfg_path = dir.join("server.toml");
    std::fs::write(&cfg_path, &config)?;
    let log_path = dir.join("server.log");
    let log = std::fs::File::create(&log_path)?;
    let exe = std::env::current_exe().context("locating the mtalab executable")?;
    let mut child = Command::new(&exe)
        .arg("server")
        .arg("--config")
        .arg(&cfg_path)
        .env("MTALAB_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {} server", exe.display()))?;
    let pid = child.id().context("server pid")?;
    let admin = format!("http://127.0.0.1:{admin_port}");

    let started = Instant::now();
    loop {
        if let Some(st) = child.try_wait()? {
            bail!("the server exited at start ({st}); its log:\n{}", tail(&log_path, 20));
        }
        if mtalab_lab::http_get_json::<Value>(&format!("{admin}/health")).await.is_ok() {
            break;
        }
        if started.elapsed() > Duration::from_secs(20) {
            bail!("the server did not become healthy in 20 s; its log:\n{}", tail(&log_path, 20));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let procs = Procs::One(pid);
    let sampler = Sampler::start(procs);
    let cpu0 = procs.cpu_ticks();
    let before = sink.count();
    let t0 = Instant::now();
    run_source(&tools.source, smtp_port, spec).await?;
    // Drain: count queue files (cheap, does not disturb the server), then confirm with the
    // admin API that the in-memory queue is empty too.
    let queue_dir = data_dir.join("queue");
    let mut last_check = Instant::now();
    loop {
        if count_queued(&queue_dir) == 0 {
            let q: Vec<Value> = mtalab_lab::http_get_json(&format!("{admin}/queue")).await?;
            if q.is_empty() {
                break;
            }
        } else if last_check.elapsed() > Duration::from_secs(2) {
            last_check = Instant::now();
            let q: Vec<Value> = mtalab_lab::http_get_json(&format!("{admin}/queue")).await?;
            if let Some(e) = q.iter().find(|e| e["attempts"].as_u64().unwrap_or(0) > 0) {
                bail!(
                    "delivery to the next hop failed ({} queued; first error: {})",
                    q.len(),
                    e["last_error"].as_str().unwrap_or("?")
                );
            }
        }
        if t0.elapsed() > spec.timeout {
            bail!("the queue did not drain within {:?}", spec.timeout);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seconds = t0.elapsed().as_secs_f64();
    let delivered = sink.wait_for(before + u64::from(spec.messages), Duration::from_secs(5)).await - before;
    let cpu_seconds = procs.cpu_ticks().saturating_sub(cpu0) as f64 / clock_ticks_per_sec();
    let mem = sampler.finish();
    let peak_kib = status_kib(pid, "VmHWM").unwrap_or(mem.peak_kib).max(mem.peak_kib);

    let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await;
    if tokio::time::timeout(Duration::from_secs(10), child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
    anyhow::ensure!(
        delivered >= u64::from(spec.messages),
        "the next hop received {delivered} of {} messages",
        spec.messages
    );
    Ok(RunResult {
        system: "mtalab",
        sessions: spec.sessions,
        messages: spec.messages,
        seconds,
        delivered,
        peak_kib,
        pss_kib: mem.pss_kib,
        processes: mem.processes,
        cpu_seconds,
        rounds: 1,
    })
}

async fn run_postfix(dir: &Path, pf: &PostfixTools, tools: &Tools, sink: &Sink, spec: &RunSpec) -> anyhow::Result<RunResult> {
    let etc = dir.join("etc");
    let queue = dir.join("queue");
    for d in [&etc, &queue] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let smtp_port = free_port()?;
    let name = format!("postfix-bench-{}", std::process::id());
    let daemon_dir = command_output(&pf.postconf, &["-d", "-h", "daemon_directory"]).await?;
    let shlib_dir = command_output(&pf.postconf, &["-d", "-h", "shlib_directory"]).await.unwrap_or_default();
    let meta_dir = command_output(&pf.postconf, &["-d", "-h", "meta_directory"]).await.unwrap_or_default();
    let command_dir = pf.postfix.parent().map_or_else(|| "/usr/sbin".into(), |p| p.display().to_string());
    let d = dir.display();
    let mut main_cf = format!(
        "# Private Postfix instance of `mtalab bench relay`: stock settings (queue files are
# fsynced before 250), relaying relay.test to smtp-sink.
compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
command_directory = {command_dir}
daemon_directory = {daemon_dir}
mail_owner = postfix
setgid_group = postdrop
syslog_name = {name}
multi_instance_name = {name}
maillog_file = {d}/maillog
maillog_file_prefixes = {d}
myhostname = postfix.bench.test
mydomain = bench.test
myorigin = $myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains = relay.test
relayhost = [127.0.0.1]:{sink_port}
smtp_dns_support_level = disabled
default_process_limit = 100
smtpd_client_restrictions =
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
biff = no
",
        sink_port = sink.port,
    );
    if !shlib_dir.is_empty() {
        let _ = writeln!(main_cf, "shlib_directory = {shlib_dir}");
    }
    if !meta_dir.is_empty() {
        let _ = writeln!(main_cf, "meta_directory = {meta_dir}");
    }
    std::fs::write(etc.join("main.cf"), main_cf)?;
    std::fs::write(etc.join("master.cf"), master_cf(smtp_port))?;
    let etc_s = etc.display().to_string();

    // From here on the instance may be running: the guard stops it whatever happens.
    let mut instance = PostfixInstance { postfix: pf.postfix.clone(), etc: etc.clone(), queue: queue.clone(), master: None, running: false };
    let maillog = dir.join("maillog");
    run_checked(&pf.postfix, &["-c", &etc_s, "check"], &maillog).await?;
    instance.running = true;
    run_checked(&pf.postfix, &["-c", &etc_s, "start"], &maillog).await?;
    let master = instance.wait_master().await.with_context(|| format!("postfix did not start; its log:\n{}", tail(&maillog, 20)))?;
    wait_port(smtp_port, Duration::from_secs(10)).await?;

    let procs = Procs::Tree(master);
    let sampler = Sampler::start(procs);
    let cpu0 = procs.cpu_ticks();
    let before = sink.count();
    let t0 = Instant::now();
    run_source(&tools.source, smtp_port, spec).await?;
    let queue_dirs = ["maildrop", "incoming", "active", "deferred", "hold"].map(|q| queue.join(q));
    loop {
        if count_files(&queue.join("deferred"), true, None) > 0 {
            bail!("postfix deferred messages; its log:\n{}", tail(&maillog, 10));
        }
        if queue_dirs.iter().map(|q| count_files(q, true, None)).sum::<usize>() == 0 {
            let out = command_output(&pf.postqueue, &["-c", &etc_s, "-p"]).await.unwrap_or_default();
            if out.contains("Mail queue is empty") {
                break;
            }
        }
        if t0.elapsed() > spec.timeout {
            bail!("the queue did not drain within {:?}", spec.timeout);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seconds = t0.elapsed().as_secs_f64();
    let delivered = sink.wait_for(before + u64::from(spec.messages), Duration::from_secs(5)).await - before;
    let cpu_seconds = procs.cpu_ticks().saturating_sub(cpu0) as f64 / clock_ticks_per_sec();
    let mem = sampler.finish();
    instance.stop().await;
    anyhow::ensure!(
        delivered >= u64::from(spec.messages),
        "the next hop received {delivered} of {} messages",
        spec.messages
    );
    Ok(RunResult {
        system: "postfix",
        sessions: spec.sessions,
        messages: spec.messages,
        seconds,
        delivered,
        peak_kib: mem.peak_kib,
        pss_kib: mem.pss_kib,
        processes: mem.processes,
        cpu_seconds,
        rounds: 1,
    })
}

/// master.cf of the private instance: the stock service list, nothing chrooted, smtpd on
/// loopback at `port`.
fn master_cf(port: u16) -> String {
    let services = [
        format!("127.0.0.1:{port} inet n - n - - smtpd"),
        "pickup    unix  n       -       n       60      1       pickup".into(),
        "cleanup   unix  n       -       n       -       0       cleanup".into(),
        "qmgr      unix  n       -       n       300     1       qmgr".into(),
        "tlsmgr    unix  -       -       n       1000?   1       tlsmgr".into(),
        "rewrite   unix  -       -       n       -       -       trivial-rewrite".into(),
        "bounce    unix  -       -       n       -       0       bounce".into(),
        "defer     unix  -       -       n       -       0       bounce".into(),
        "trace     unix  -       -       n       -       0       bounce".into(),
        "verify    unix  -       -       n       -       1       verify".into(),
        "flush     unix  n       -       n       1000?   0       flush".into(),
        "proxymap  unix  -       -       n       -       -       proxymap".into(),
        "proxywrite unix -       -       n       -       1       proxymap".into(),
        "smtp      unix  -       -       n       -       -       smtp".into(),
        "relay     unix  -       -       n       -       -       smtp".into(),
        "showq     unix  n       -       n       -       -       showq".into(),
        "error     unix  -       -       n       -       -       error".into(),
        "retry     unix  -       -       n       -       -       error".into(),
        "discard   unix  -       -       n       -       -       discard".into(),
        "local     unix  -       n       n       -       -       local".into(),
        "virtual   unix  -       n       n       -       -       virtual".into(),
        "lmtp      unix  -       -       n       -       -       lmtp".into(),
        "anvil     unix  -       -       n       -       1       anvil".into(),
        "scache    unix  -       -       n       -       1       scache".into(),
        "postlog   unix-dgram n  -       n       -       1       postlogd".into(),
    ];
    let mut s = String::from("# service type private unpriv chroot wakeup maxproc command\n");
    for l in services {
        s.push_str(&l);
        s.push('\n');
    }
    s
}

/// A running private Postfix instance; stopped when dropped.
struct PostfixInstance {
    postfix: PathBuf,
    etc: PathBuf,
    queue: PathBuf,
    master: Option<u32>,
    /// True from `postfix start` until it has been stopped.
    running: bool,
}

impl PostfixInstance {
    async fn wait_master(&mut self) -> anyhow::Result<u32> {
        let pid_file = self.queue.join("pid/master.pid");
        for _ in 0..200 {
            if let Some(pid) = std::fs::read_to_string(&pid_file).ok().and_then(|s| s.trim().parse::<u32>().ok())
                && Path::new(&format!("/proc/{pid}")).exists()
            {
                self.master = Some(pid);
                return Ok(pid);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("no master process ({} not written)", pid_file.display())
    }

    async fn stop(&mut self) {
        self.running = false;
        let etc = self.etc.display().to_string();
        let _ = Command::new(&self.postfix).args(["-c", &etc, "stop"]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status().await;
        if let Some(pid) = self.master.take() {
            for _ in 0..200 {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = Command::new(&self.postfix).args(["-c", &etc, "abort"]).status().await;
        }
    }
}

impl Drop for PostfixInstance {
    fn drop(&mut self) {
        if !self.running {
            return;
        }
        let etc = self.etc.display().to_string();
        let _ = std::process::Command::new(&self.postfix)
            .args(["-c", &etc, "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some(pid) = self.master {
            for _ in 0..100 {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = std::process::Command::new(&self.postfix).args(["-c", &etc, "abort"]).status();
        }
    }
}

/// Run smtp-source against 127.0.0.1:`port`; fails if it does (a refused message aborts it).
async fn run_source(source: &Path, port: u16, spec: &RunSpec) -> anyhow::Result<()> {
    let out = tokio::time::timeout(
        spec.timeout,
        Command::new(source)
            .args(["-s", &spec.sessions.to_string(), "-m", &spec.messages.to_string(), "-l", &spec.size.to_string()])
            .args(["-f", "from@bench.test", "-t", "to@relay.test"])
            .arg(format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .with_context(|| format!("smtp-source did not finish within {:?}", spec.timeout))?
    .context("running smtp-source")?;
    if !out.status.success() {
        bail!(
            "smtp-source failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The next hop

/// smtp-sink on a free loopback port, counting the messages it received.
struct Sink {
    port: u16,
    count: Arc<AtomicU64>,
    _child: Child,
}

impl Sink {
    async fn start(path: &Path, root: bool) -> anyhow::Result<Sink> {
        let port = free_port()?;
        let mut cmd = Command::new(path);
        if root {
            // smtp-sink refuses to keep root privileges.
            cmd.args(["-u", "postfix"]);
        }
        let mut child = cmd
            .args(["-c", &format!("127.0.0.1:{port}"), "1000"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", path.display()))?;
        let count = Arc::new(AtomicU64::new(0));
        // With -c, smtp-sink prints "sess=N quit=N mesg=N\r" after every message.
        let mut out = child.stdout.take().context("smtp-sink stdout")?;
        let c = count.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut line = Vec::new();
            while let Ok(n) = out.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                for &b in &buf[..n] {
                    if b == b'\r' || b == b'\n' {
                        if let Some(m) = parse_mesg(&line) {
                            c.store(m, Ordering::Relaxed);
                        }
                        line.clear();
                    } else {
                        line.push(b);
                    }
                }
            }
        });
        if let Err(e) = wait_port(port, Duration::from_secs(10)).await {
            let mut err = String::new();
            if let Some(mut s) = child.stderr.take() {
                let _ = tokio::time::timeout(Duration::from_millis(500), s.read_to_string(&mut err)).await;
            }
            bail!("smtp-sink did not start: {e} {}", err.trim());
        }
        Ok(Sink { port, count, _child: child })
    }

    fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Wait until the sink has counted `n` messages (or `max` elapsed); returns its count.
    async fn wait_for(&self, n: u64, max: Duration) -> u64 {
        let t = Instant::now();
        while self.count() < n && t.elapsed() < max {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.count()
    }
}

fn parse_mesg(line: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(line).ok()?;
    let i = s.rfind("mesg=")?;
    s[i + 5..].split_whitespace().next()?.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// Memory

/// Which processes make up the system under test.
#[derive(Clone, Copy)]
enum Procs {
    /// One process.
    One(u32),
    /// A process and its children (Postfix's master and its daemons).
    Tree(u32),
}

impl Procs {
    /// User and system CPU time so far, in clock ticks. For a tree this includes the children
    /// the root has reaped (`cutime`, `cstime`), so daemons that exited still count.
    fn cpu_ticks(self) -> u64 {
        self.pids().into_iter().filter_map(cpu_ticks).sum()
    }

    fn pids(self) -> Vec<u32> {
        match self {
            Procs::One(p) => vec![p],
            Procs::Tree(root) => {
                let mut out = vec![root];
                if let Ok(rd) = std::fs::read_dir("/proc") {
                    for e in rd.flatten() {
                        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
                        if pid != root && parent_pid(pid) == Some(root) {
                            out.push(pid);
                        }
                    }
                }
                out
            }
        }
    }
}

#[derive(Default, Clone, Copy)]
struct MemStats {
    /// Highest sum of VmHWM over the live processes.
    peak_kib: u64,
    /// Highest sum of Pss.
    pss_kib: u64,
    /// Most processes seen at once.
    processes: usize,
}

/// Samples the memory of the processes under test every 200 ms on a thread of its own.
struct Sampler {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<MemStats>,
}

impl Sampler {
    fn start(procs: Procs) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut m = MemStats::default();
            loop {
                let done = s.load(Ordering::Relaxed);
                let pids = procs.pids();
                let (mut hwm, mut pss, mut n) = (0, 0, 0);
                let mut seen = HashSet::new();
                for p in pids {
                    if !seen.insert(p) {
                        continue;
                    }
                    if let Some(h) = status_kib(p, "VmHWM") {
                        hwm += h;
                        n += 1;
                        pss += pss_kib(p).unwrap_or(0);
                    }
                }
                m.peak_kib = m.peak_kib.max(hwm);
                m.pss_kib = m.pss_kib.max(pss);
                m.processes = m.processes.max(n);
                if done {
                    return m;
                }
                for _ in 0..20 {
                    if s.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        });
        Sampler { stop, handle }
    }

    /// Take a last sample and return the peaks.
    fn finish(self) -> MemStats {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

/// A `kB` field of /proc/<pid>/status.
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    kib_field(&s, field)
}

fn pss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    kib_field(&s, "Pss")
}

fn kib_field(text: &str, field: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// The fields of /proc/<pid>/stat after the command name, from `state` on.
fn stat_fields(pid: u32) -> Option<Vec<u64>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid …": comm may hold spaces and parentheses.
    let rest = &s[s.rfind(')')? + 1..];
    // The state letter becomes 0.
    Some(rest.split_whitespace().map(|f| f.parse().unwrap_or(0)).collect())
}

/// The processes whose parent is `pid` (from `/proc/<pid>/stat`).
pub(crate) fn children_of(pid: u32) -> Vec<u32> {
    Procs::Tree(pid).pids().into_iter().filter(|&p| p != pid).collect()
}

fn parent_pid(pid: u32) -> Option<u32> {
    u32::try_from(*stat_fields(pid)?.get(1)?).ok()
}

/// utime + stime + cutime + cstime of a process, in clock ticks.
/// User + system CPU time of a process so far, in USER_HZ ticks (/proc/<pid>/stat fields
/// 14–17, children it waited for included).
pub(crate) fn cpu_ticks(pid: u32) -> Option<u64> {
    let f = stat_fields(pid)?;
    Some(f.get(11..15)?.iter().sum())
}

/// USER_HZ, the unit of /proc/<pid>/stat times.
pub(crate) fn clock_ticks_per_sec() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<f64>().ok())
        .filter(|&t| t > 0.0)
        .unwrap_or(100.0)
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// A fresh directory under the work directory, removed when dropped.
struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    fn create(base: &Path) -> anyhow::Result<WorkDir> {
        use std::os::unix::fs::PermissionsExt as _;
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let path = base.join(format!("mtalab-bench-{}-{nanos:08x}", std::process::id()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        // Postfix's daemons run as the postfix user and must reach their queue below it.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        let path = path.canonicalize()?;
        Ok(WorkDir { path })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        for _ in 0..5 {
            if std::fs::remove_dir_all(&self.path).is_ok() || !self.path.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        eprintln!("mtalab bench: could not remove {}", self.path.display());
    }
}

fn find_tool(name: &str) -> anyhow::Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/sbin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .with_context(|| format!("{name} not found in PATH or /usr/sbin: it comes with Postfix (Debian/Ubuntu: `apt-get install postfix`)"))
}

async fn command_output(path: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(path).args(args).stdin(Stdio::null()).output().await.with_context(|| format!("running {}", path.display()))?;
    anyhow::ensure!(out.status.success(), "{} {}: {}", path.display(), args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Run a postfix command; Postfix reports errors to its log, not to a pipe, so show that.
async fn run_checked(path: &Path, args: &[&str], log: &Path) -> anyhow::Result<()> {
    let out = Command::new(path).args(args).stdin(Stdio::null()).output().await.with_context(|| format!("running {}", path.display()))?;
    if !out.status.success() {
        bail!(
            "`{} {}` failed ({}): {}\n{}",
            path.display(),
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            tail(log, 20)
        );
    }
    Ok(())
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

async fn wait_port(port: u16, max: Duration) -> anyhow::Result<()> {
    let t = Instant::now();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if t.elapsed() > max {
            bail!("nothing listens on {addr} after {max:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Files below `dir` (recursively if asked), optionally only those with an extension.
/// Files vanishing during the walk are fine.
fn count_files(dir: &Path, recursive: bool, ext: Option<&str>) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    let mut n = 0;
    for e in rd.flatten() {
        let Ok(t) = e.file_type() else { continue };
        if t.is_dir() {
            if recursive {
                n += count_files(&e.path(), true, ext);
            }
        } else if ext.is_none_or(|x| e.path().extension().is_some_and(|y| y == x)) {
            n += 1;
        }
    }
    n
}

/// Messages in an mtalab queue directory: `*.msg` files that hold a message, not slots made
/// ahead of time (`mtalab_server::queue::holds_message`).
fn count_queued(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "msg") && mtalab_server::queue::holds_message(&e.path()).unwrap_or(false))
        .count()
}

fn effective_uid() -> Option<u32> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let l = s.lines().find(|l| l.starts_with("Uid:"))?;
    l.split_whitespace().nth(2)?.parse().ok()
}

/// The 1-minute load average.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

fn mem_total_kib() -> Option<u64> {
    kib_field(&std::fs::read_to_string("/proc/meminfo").ok()?, "MemTotal")
}

/// The type of the filesystem holding `path` (longest matching mount point in /proc/mounts).
fn filesystem_of(path: &Path) -> Option<String> {
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, mp, ty) = (f.next()?, f.next()?, f.next()?);
            let mp = mp.replace("\\040", " ");
            path.starts_with(&mp).then(|| (mp.len(), ty.to_string()))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, ty)| ty)
}

/// Now as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc_now() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sink_counter() {
        assert_eq!(parse_mesg(b"sess=737 quit=737 mesg=1999"), Some(1999));
        assert_eq!(parse_mesg(b"garbage"), None);
    }

    #[test]
    fn reads_kib_fields() {
        let s = "Name:\tx\nVmHWM:\t    4776 kB\nVmRSS:\t  100 kB\n";
        assert_eq!(kib_field(s, "VmHWM"), Some(4776));
        assert_eq!(kib_field(s, "VmRSS"), Some(100));
        assert_eq!(kib_field(s, "Vm"), None);
    }

    #[test]
    fn master_cf_listens_on_loopback_port() {
        let m = master_cf(2600);
        assert!(m.lines().nth(1).unwrap().starts_with("127.0.0.1:2600 inet n - n - - smtpd"));
        assert!(m.lines().skip(1).all(|l| l.split_whitespace().nth(4) == Some("n")));
    }

    #[test]
    fn date_format() {
        let d = utc_now();
        assert_eq!(d.len(), 20);
        assert!(d.starts_with("20") && d.ends_with('Z'));
    }
}
