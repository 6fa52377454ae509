//! `mtalab bench p1`: the X.400 path against the SMTP path, in one run.
//!
//! Two servers on loopback: A (IMS + MTA) and B (IMS + MTA, mailbox `User1@b.test`). N
//! messages of `--size` octets are submitted to A over SMTP by `--sessions` concurrent
//! clients; A forwards them to B, which delivers them into its Maildir. The rate is N divided
//! by the time from the first submission to the last message in B's mailbox. Three ways
//! from A to B are measured:
//!
//! - `x400-1`: P1 over an X.400 connector with a Threshold no queue reaches (one association);
//! - `x400-threshold`: the same connector with Threshold `--threshold` (a new association per
//!   that many waiting transfers, at most 10);
//! - `smtp`: the IMS's E-Mail Domain route to B's IMS (SMTP relay of the same payload).
//!
//! Then the association set-up rate: associations opened, bound (MTABind) and released per
//! second against B's MTA, one at a time.
//!
//! With `--rounds N` the three runs are made N times, each round starting with the next of
//! them (so no way always follows the same one), with the file system synced before every
//! run (so that no run pays for the write-back of the one before). Medians are printed, and
//! the X.400 Threshold ÷ SMTP ratio of each round.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use mtalab_osi::association::{Association, AssociationConfig, Event};
use mtalab_p1::MtaBindArgument;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// Options of `bench p1`.
#[derive(Args)]
pub struct P1Args {
    /// Messages per run.
    #[arg(long, default_value_t = 2000)]
    pub messages: u32,
    /// Message body size, octets.
    #[arg(long, default_value_t = 4096)]
    pub size: usize,
    /// Concurrent SMTP submission sessions.
    #[arg(long, default_value_t = 20)]
    pub sessions: u32,
    /// Threshold of the multi-association run.
    #[arg(long, default_value_t = 10)]
    pub threshold: u32,
    /// A's IMS in the SMTP relay run: "Maximum number of connections to a single host" (KB
    /// Q146562), by default the most associations an X.400 connector opens to one remote
    /// MTA, so that both ways carry the mail over as many connections at once; 0: no limit
    /// but A's 32 delivery workers.
    #[arg(long, default_value_t = mtalab_server::mta::outbound::MAX_ASSOCIATIONS)]
    pub smtp_connections: usize,
    /// Associations to open for the set-up rate.
    #[arg(long, default_value_t = 300)]
    pub associations: u32,
    /// Rounds of the three runs; each round starts with another of them, and the file
    /// system is synced before every run. The table gives each figure's median, and the
    /// X.400 ÷ SMTP ratio of every round.
    #[arg(long, default_value_t = 1)]
    pub rounds: u32,
    /// Directory for the servers' data (default $TMPDIR or /tmp).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Run each server under this command, split at spaces, with `{name}` in it replaced
    /// by the run and the server (`x400-threshold-A`, `smtp-B`, …): for instance
    /// `valgrind --tool=cachegrind --cachegrind-out-file=/tmp/cg/{name}.out`, whose counts
    /// of instructions per message do not move with the machine's load as times do
    /// (docs/BENCHMARKS.md), or `perf stat -o /tmp/ps/{name}.txt` and `strace -f -c -o
    /// …`, which run the server as their child: that child is the one stopped at the end of
    /// a run, and the wrapper writes its figures as it exits. The servers are then given
    /// 120 s to start instead of 20.
    #[arg(long, value_name = "COMMAND")]
    pub server_wrapper: Option<String>,
}

const A: Ipv4Addr = Ipv4Addr::new(127, 88, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(127, 88, 0, 2);
const SMTP: u16 = 2525;
const ADMIN: u16 = 2526;
const P1: u16 = 2528;

/// The config of server `name` ("A" or "B", the other its peer) for a run over `route`.
fn server_config(name: &str, route: &str, threshold: u32, smtp_connections: usize, data: &Path) -> String {
    let (ip, peer, peer_name) = if name == "A" { (A, B, "B") } else { (B, A, "A") };
    let limit = match smtp_connections {
        0 => String::new(),
        n => format!("max_connections_per_host = {n}\n"),
    };
    let (ims_route, space) = match route {
        "smtp" => (format!("{limit}[[ims.email_domains]]\ndomain = \"{0}.test\"\nhosts = [\"{peer}\"]\n", peer_name.to_ascii_lowercase()), String::new()),
        _ => (
            String::new(),
            format!("address_space = [{{ type = \"SMTP\", address = \"{}.test\", cost = 1 }}]\n", peer_name.to_ascii_lowercase()),
        ),
    };
    format!(
        r#"[organization]
name = "Bench"
[site]
name = "{name}"
[server]
name = "{name}"
data_dir = {data:?}
[site_addressing]
smtp = "@{lname}.test"
x400 = {{ c = "US", p = "Bench", o = "{name}" }}
[[recipients]]
alias = "User1"
given = "User"
surname = "One"
[ims]
listen = "{ip}:{SMTP}"
remote_port = {SMTP}
relay_from = ["127.0.0.0/8"]
max_message_size = 104857600
{ims_route}
[mta]
listen = "{ip}:{P1}"
remote_port = {P1}
password = "pw{name}"
[[mta.connectors]]
name = "to {peer_name}"
remote_mta_name = "{peer_name}"
remote_mta_password = "pw{peer_name}"
stack_address = "{peer}"
{space}[mta.connectors.override]
threshold = {threshold}
[admin]
listen = "{ip}:{ADMIN}"
[registry."MSExchangeMTA\\Parameters\\to {peer_name}"]
"Stack IP Address Override" = "{ip}"
"#,
        lname = name.to_ascii_lowercase(),
        data = data.display().to_string(),
    )
}

struct Server {
    child: Child,
    /// Started under `--server-wrapper`.
    wrapped: bool,
}

impl Server {
    /// Start server `name` of the run in `dir` (its last path component names the run),
    /// under `wrapper` if given (see [`P1Args::server_wrapper`]).
    async fn start(dir: &Path, name: &str, config: &str, ip: Ipv4Addr, wrapper: Option<&str>) -> anyhow::Result<Server> {
        std::fs::create_dir_all(dir)?;
        mtalab_server::config::Config::parse(config).map_err(|e| anyhow::anyhow!("bench config: {e}"))?;
        let cfg = dir.join(format!("{name}.toml"));
        std::fs::write(&cfg, config)?;
        let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
        let run = dir.file_name().and_then(|f| f.to_str()).unwrap_or("run");
        let wrap: Vec<String> = wrapper.unwrap_or_default().split_whitespace().map(|w| w.replace("{name}", &format!("{run}-{name}"))).collect();
        let mut cmd = match wrap.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(std::env::current_exe()?);
                c
            }
            None => Command::new(std::env::current_exe()?),
        };
        // A server left from an earlier run (one whose wrapper was killed, say) would answer
        // in this one's place: its figures would be measured instead.
        let url = format!("http://{ip}:{ADMIN}/health");
        if mtalab_lab::http_get_json::<Value>(&url).await.is_ok() {
            bail!("server {name}: another process already answers at {url} (a server of an earlier bench still running?)");
        }
        let mut child = cmd
            .arg("server")
            .arg("--config")
            .arg(&cfg)
            .env("MTALAB_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()?;
        let t = Instant::now();
        while mtalab_lab::http_get_json::<Value>(&url).await.is_err() {
            if let Some(status) = child.try_wait()? {
                bail!("server {name} exited ({status}) before it answered; its log: {}", dir.join(format!("{name}.log")).display());
            }
            if t.elapsed() > Duration::from_secs(if wrap.is_empty() { 20 } else { 120 }) {
                bail!("server {name} did not start");
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        Ok(Server { child, wrapped: !wrap.is_empty() })
    }

    /// CPU time used so far, in ticks.
    fn cpu(&self) -> u64 {
        self.child.id().and_then(crate::bench::cpu_ticks).unwrap_or(0)
    }

    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // Under a wrapper that runs the server as its child (`perf stat`, `strace -f`), the
            // server is told to stop and the wrapper ends with it, writing its figures: a
            // wrapper told to stop itself may not pass the signal on, and leave the server
            // running. Without one, or under one the server replaces (valgrind), it is `pid`.
            let children = if self.wrapped { crate::bench::children_of(pid) } else { Vec::new() };
            let targets = if children.is_empty() { vec![pid] } else { children };
            for p in targets {
                let _ = Command::new("kill").arg("-TERM").arg(p.to_string()).status().await;
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        let _ = self.child.kill().await;
    }
}

fn count_new(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|r| r.count()).unwrap_or(0)
}

/// One run's figures.
#[derive(Clone, Copy)]
struct Run {
    /// Messages per second, first submission to last delivery.
    rate: f64,
    /// CPU (user + system) of server A per message, milliseconds.
    cpu_a_ms: f64,
    /// The same for server B.
    cpu_b_ms: f64,
}

/// The median of `v` (the mean of the two middle values when their number is even); NaN
/// when `v` is empty.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// A distribution-free confidence interval for the median of `v`, at a confidence of at
/// least 95 %: the `k`-th smallest and `k`-th largest values, `k` the largest rank with
/// P(Binomial(n, ½) < k) ≤ 2.5 % (the sign test's interval: it assumes only that the values
/// are independent draws of one distribution, as the rounds' ratios are). `None` for fewer
/// than six values, for which no such interval exists.
fn median_interval(mut v: Vec<f64>) -> Option<(f64, f64)> {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    // P(B = i) for B ~ Binomial(n, ½), summed from i = 0 while the sum stays ≤ 2.5 %.
    let mut k = 0;
    let mut tail = 0.0;
    let mut p = 0.5f64.powi(i32::try_from(n).ok()?);
    for i in 0..n {
        if tail + p > 0.025 {
            break;
        }
        tail += p;
        k = i + 1;
        p = p * (n - i) as f64 / (i + 1) as f64;
    }
    (k >= 1).then(|| (v[k - 1], v[n - k]))
}

/// The median of each figure over `runs` (not empty).
fn median_run(runs: &[Run]) -> Run {
    let med = |f: fn(&Run) -> f64| median(runs.iter().map(f).collect());
    Run { rate: med(|r| r.rate), cpu_a_ms: med(|r| r.cpu_a_ms), cpu_b_ms: med(|r| r.cpu_b_ms) }
}

/// Write back everything dirty before a run (`sync(1)`; the work directory `dir` is only
/// named in the log), so that a run does not pay for the one before it.
async fn settle(dir: &Path) {
    match Command::new("sync").status().await {
        Ok(s) if s.success() => {}
        other => tracing::warn!(dir = %dir.display(), ?other, "sync before the run failed"),
    }
}

/// One throughput run.
async fn throughput(work: &Path, route: &str, threshold: u32, a: &P1Args) -> anyhow::Result<Run> {
    let dir = work.join(route);
    let _ = std::fs::remove_dir_all(&dir);
    let a_data = dir.join("a");
    let b_data = dir.join("b");
    let wrapper = a.server_wrapper.as_deref();
    let sa = Server::start(&dir, "A", &server_config("A", route, threshold, a.smtp_connections, &a_data), A, wrapper).await?;
    let sb = Server::start(&dir, "B", &server_config("B", route, threshold, a.smtp_connections, &b_data), B, wrapper).await?;
    let body = "x".repeat(75) + "\n";
    let body: String = body.repeat(a.size.div_ceil(76));
    let per = a.messages.div_ceil(a.sessions);
    let (cpu_a0, cpu_b0) = (sa.cpu(), sb.cpu());
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..a.sessions {
        let body = body.clone();
        let n = per.min(a.messages.saturating_sub(s * per));
        tasks.push(tokio::spawn(async move {
            let mut conn = mtalab_server::conn::SmtpConnection::connect(SocketAddr::from((A, SMTP)), Some(IpAddr::V4(A)), "bench", Duration::from_secs(30)).await?;
            for i in 0..n {
                let msg = mtalab_lab::sendmail::Outgoing { from: "User1@a.test".into(), to: vec!["User1@b.test".into()], subject: format!("bench {s}-{i}"), body: body.clone(), body_size: None };
                let r = conn
                    .send(mtalab_smtp::Transaction {
                        from: mtalab_smtp::ReversePath::Mailbox(mtalab_smtp::Mailbox::parse("User1@a.test").expect("valid")),
                        rcpts: vec![mtalab_smtp::Mailbox::parse("User1@b.test").expect("valid")],
                        data: msg.render(),
                    })
                    .await?;
                anyhow::ensure!(r.data.as_ref().is_some_and(|d| d.code == 250), "submission refused: {:?}", r.data);
            }
            conn.quit().await;
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    // B's count of messages delivered into its Maildir (one request on a kept-alive
    // connection every 5 ms); listing the Maildir instead would take CPU from the servers
    // measured, more as it fills.
    let client = reqwest::Client::new();
    let health = format!("http://{B}:{ADMIN}/health");
    let delivered = async || -> u64 {
        match client.get(&health).timeout(Duration::from_secs(10)).send().await {
            Ok(r) => r.json::<Value>().await.ok().and_then(|v| v["mailbox_deliveries"].as_u64()).unwrap_or(0),
            Err(_) => 0,
        }
    };
    loop {
        if delivered().await >= u64::from(a.messages) {
            break;
        }
        if t0.elapsed() > Duration::from_secs(300) {
            bail!("{route}: only {} of {} delivered in 300 s", delivered().await, a.messages);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    let mailbox = b_data.join("mailboxes/User1/new");
    anyhow::ensure!(count_new(&mailbox) >= a.messages as usize, "{route}: B counted {} deliveries but its Maildir holds {}", a.messages, count_new(&mailbox));
    let per_msg = |ticks: u64| ticks as f64 * 1000.0 / crate::bench::clock_ticks_per_sec() / a.messages as f64;
    let (cpu_a_ms, cpu_b_ms) = (per_msg(sa.cpu().saturating_sub(cpu_a0)), per_msg(sb.cpu().saturating_sub(cpu_b0)));
    let opened: Value = mtalab_lab::http_get_json(&format!("http://{A}:{ADMIN}/mta")).await.unwrap_or_default();
    tracing::info!(route, associations = %opened["connectors"][0]["state"]["opened_total"], "run done");
    sa.stop().await;
    sb.stop().await;
    Ok(Run { rate: a.messages as f64 / secs, cpu_a_ms, cpu_b_ms })
}

/// Associations opened, bound and released per second against B's MTA.
async fn setup_rate(work: &Path, a: &P1Args) -> anyhow::Result<f64> {
    let dir = work.join("assoc");
    let _ = std::fs::remove_dir_all(&dir);
    let sb = Server::start(&dir, "B", &server_config("B", "x400", 50, a.smtp_connections, &dir.join("b")), B, a.server_wrapper.as_deref()).await?;
    let bind = MtaBindArgument::simple("A", "pwA").encode().map_err(|e| anyhow::anyhow!("{e}"))?;
    let t0 = Instant::now();
    for _ in 0..a.associations {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::from((A, 0)))?;
        let stream = socket.connect(SocketAddr::from((B, P1))).await?;
        let assoc = Association::initiator(AssociationConfig::default(), bind.clone(), std::time::Instant::now()).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut conn = mtalab_server::mta::assoc::Conn::new(stream, assoc, SocketAddr::from((B, P1)));
        match conn.next_event(Duration::from_secs(10), "bind").await? {
            Event::AssociateConfirm(_) => {}
            other => bail!("association not confirmed: {other:?}"),
        }
        conn.release(Duration::from_secs(10)).await;
    }
    let rate = a.associations as f64 / t0.elapsed().as_secs_f64();
    sb.stop().await;
    Ok(rate)
}

/// Run `bench p1`.
pub async fn run(a: P1Args) -> anyhow::Result<ExitCode> {
    let base = a.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    let work = base.join(format!("mtalab-bench-p1-{}", std::process::id()));
    let result = async {
        let routes = [("x400-1", 1_000_000), ("x400-threshold", a.threshold), ("smtp", 50)];
        let mut runs: [Vec<Run>; 3] = Default::default();
        let mut ratios = Vec::new();
        for round in 0..a.rounds.max(1) as usize {
            let mut this = [None; 3];
            for k in 0..3 {
                let i = (round + k) % 3;
                let (route, threshold) = routes[i];
                settle(&base).await;
                let r = throughput(&work, route, threshold, &a).await.with_context(|| format!("run {route}"))?;
                tracing::info!(round, route, rate = r.rate, "run measured");
                this[i] = Some(r);
                runs[i].push(r);
            }
            if let [_, Some(xt), Some(smtp)] = this {
                ratios.push(xt.rate / smtp.rate);
            }
        }
        let assoc = setup_rate(&work, &a).await.context("association set-up")?;
        let [x1, xt, smtp] = runs.map(|v| median_run(&v));
        anyhow::Ok((x1, xt, smtp, assoc, ratios))
    }
    .await;
    let _ = std::fs::remove_dir_all(&work);
    let (x1, xt, smtp, assoc, ratios) = result?;
    if a.json {
        println!(
            "{}",
            json!({"messages": a.messages, "size": a.size, "sessions": a.sessions, "threshold": a.threshold, "smtp_connections_per_host": a.smtp_connections,
                   "x400_one_association_msgs_per_s": x1.rate, "x400_threshold_msgs_per_s": xt.rate, "smtp_relay_msgs_per_s": smtp.rate,
                   "cpu_ms_per_msg": {"x400_one_association": [x1.cpu_a_ms, x1.cpu_b_ms], "x400_threshold": [xt.cpu_a_ms, xt.cpu_b_ms], "smtp_relay": [smtp.cpu_a_ms, smtp.cpu_b_ms]},
                   "associations_per_s": assoc, "rounds": a.rounds.max(1), "x400_threshold_over_smtp_per_round": ratios,
                   "x400_threshold_over_smtp_median_of_rounds": median(ratios.clone()),
                   "x400_threshold_over_smtp_median_95ci": median_interval(ratios.clone()).map(|(lo, hi)| [lo, hi])})
        );
    } else {
        println!("mtalab bench p1: {} messages of {} octets, {} submission sessions, {} round(s){}", a.messages, a.size, a.sessions, a.rounds.max(1), if a.rounds > 1 { " (medians)" } else { "" });
        println!("  {:<48} {:>10} {:>14}", "", "msgs/s", "CPU ms/msg A+B");
        let row = |name: String, r: Run| println!("  {name:<48} {:>10.1} {:>6.3}+{:<6.3}", r.rate, r.cpu_a_ms, r.cpu_b_ms);
        row("X.400 P1, one association".into(), x1);
        row(format!("X.400 P1, Threshold {} (up to 10 associations)", a.threshold), xt);
        row(
            match a.smtp_connections {
                0 => "SMTP relay (IMS to IMS, 32 delivery workers)".into(),
                n => format!("SMTP relay (IMS to IMS, up to {n} connections)"),
            },
            smtp,
        );
        println!("  {:<48} {:>10.1} /s", "associations opened, bound and released", assoc);
        let shown: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
        println!("  X.400 Threshold {} ÷ SMTP, per round: {}", a.threshold, shown.join(" "));
        if ratios.len() > 1 {
            // The rounds of one machine spread by ±10 % and more: the median of the rounds'
            // ratios, with their range, says more than any one of them.
            let (lo, hi) = ratios.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
            println!("  X.400 Threshold {} ÷ SMTP, median of the rounds: {:.2} (range {lo:.2}–{hi:.2})", a.threshold, median(ratios.clone()));
            // Whether the rounds tell the two ways apart at all, or only that they are level
            // within the spread.
            match median_interval(ratios.clone()) {
                Some((lo, hi)) => {
                    let verdict = if lo >= 1.0 {
                        "the X.400 way is at least as fast"
                    } else if hi < 1.0 {
                        "the X.400 way is slower"
                    } else {
                        "level: the rounds do not tell the two ways apart"
                    };
                    println!("  95 % confidence interval of that median: {lo:.2}–{hi:.2} ({verdict})");
                }
                None => println!("  (6 rounds or more give a confidence interval of that median)"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_no_values() {
        assert_eq!(median(vec![0.97, 0.81, 1.03]), 0.97);
        assert_eq!(median(vec![1.0, 0.8, 0.9, 1.2]), 0.95);
        assert!(median(Vec::new()).is_nan());
    }

    /// The sign test's ranks (k = 1 at n = 6 to 8, 2 at 9 to 11, 3 at 12 to 14, 4 at 15 and
    /// 16, 6 at 20: the textbook table), and none below six values.
    #[test]
    fn median_interval_takes_the_sign_tests_ranks() {
        let ranks = |n: usize| {
            let v: Vec<f64> = (1..=n).rev().map(|i| i as f64).collect();
            median_interval(v).map(|(lo, hi)| (lo as usize, n + 1 - hi as usize))
        };
        for n in 0..6 {
            assert_eq!(ranks(n), None, "n = {n}");
        }
        for (n, k) in [(6, 1), (8, 1), (9, 2), (11, 2), (12, 3), (14, 3), (15, 4), (16, 4), (17, 5), (20, 6), (30, 10)] {
            assert_eq!(ranks(n), Some((k, k)), "n = {n}");
        }
        // Unsorted input, as the rounds come.
        assert_eq!(median_interval(vec![0.92, 1.13, 0.94, 0.85, 1.00, 1.08, 1.03]), Some((0.85, 1.13)));
    }

    #[test]
    fn median_run_takes_each_figure_on_its_own() {
        let r = |rate, a, b| Run { rate, cpu_a_ms: a, cpu_b_ms: b };
        let m = median_run(&[r(3.0, 0.1, 0.9), r(1.0, 0.3, 0.7), r(2.0, 0.2, 0.8)]);
        assert_eq!((m.rate, m.cpu_a_ms, m.cpu_b_ms), (2.0, 0.2, 0.8));
    }
}
