//! Running a scenario's steps against a lab, with live progress, and the report: each step
//! with pass/fail and time, and for each message found its hops from the Received headers.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::local::{LabState, LocalLab};
use crate::scenario::{Scenario, Step};

/// Outcome of one step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepResult {
    /// 1-based index.
    pub index: usize,
    /// Label.
    pub label: String,
    /// Passed?
    pub ok: bool,
    /// Wall time, milliseconds.
    pub ms: u64,
    /// What happened (reply, found message, error).
    pub detail: String,
}

/// One hop of a message, from a Received: header (newest first in the message; listed here
/// oldest first).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hop {
    /// `from` clause host.
    pub from: String,
    /// Sending IP, if given.
    pub from_ip: Option<String>,
    /// `by` clause host.
    pub by: String,
    /// Queue id at that hop.
    pub id: Option<String>,
    /// Time stamp.
    pub date: Option<String>,
}

/// A message the steps found in a mailbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageTrace {
    /// Subject.
    pub subject: String,
    /// Server holding it.
    pub server: String,
    /// Mailbox.
    pub mailbox: String,
    /// Hops, oldest first.
    pub hops: Vec<Hop>,
}

/// The report of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Title.
    pub title: String,
    /// KB article.
    pub kb: Option<String>,
    /// Backend.
    pub backend: String,
    /// Start time.
    pub started: DateTime<Utc>,
    /// Total milliseconds (bring-up, steps, teardown not included).
    pub ms: u64,
    /// Bring-up milliseconds.
    pub up_ms: u64,
    /// Steps passed.
    pub passed: usize,
    /// Steps failed.
    pub failed: usize,
    /// Servers with scenario and real addresses.
    pub servers: Vec<crate::local::ServerInfo>,
    /// Steps.
    pub steps: Vec<StepResult>,
    /// Messages traced.
    pub messages: Vec<MessageTrace>,
}

impl Report {
    /// Write `report.json` and `report.txt` into `dir`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::write(dir.join("report.json"), serde_json::to_vec_pretty(self)?)?;
        std::fs::write(dir.join("report.txt"), self.text())?;
        Ok(())
    }

    /// The readable text form.
    pub fn text(&self) -> String {
        let mut s = format!(
            "mtalab lab report: {}{}\n{}\nbackend {}, started {}, bring-up {:.2}s, steps {:.2}s: {} passed, {} failed\n\nServers (scenario address -> real address)\n",
            self.scenario,
            self.kb.as_ref().map(|k| format!(" (KB {k})")).unwrap_or_default(),
            self.title,
            self.backend,
            self.started.format("%Y-%m-%d %H:%M:%S UTC"),
            self.up_ms as f64 / 1000.0,
            self.ms as f64 / 1000.0,
            self.passed,
            self.failed
        );
        for srv in &self.servers {
            s.push_str(&format!(
                "  {:<10} {:<8} {:<16} -> {:<16} smtp {:<6} admin {}\n",
                srv.name,
                srv.site,
                srv.scenario_address.to_string(),
                srv.address.to_string(),
                srv.smtp_port.map_or("-".into(), |p| p.to_string()),
                srv.admin_port
            ));
        }
        s.push_str("\nSteps\n");
        for st in &self.steps {
            s.push_str(&format!(
                "  [{:>2}] {} {:>7.2}s  {}\n        {}\n",
                st.index,
                if st.ok { "PASS" } else { "FAIL" },
                st.ms as f64 / 1000.0,
                st.label,
                st.detail
            ));
        }
        if !self.messages.is_empty() {
            s.push_str("\nMessages\n");
            for m in &self.messages {
                s.push_str(&format!("  {:?} in {} on {} ({} hops)\n", m.subject, m.mailbox, m.server, m.hops.len()));
                for (i, h) in m.hops.iter().enumerate() {
                    s.push_str(&format!(
                        "    {}. from {}{} by {}{}\n",
                        i + 1,
                        h.from,
                        h.from_ip.as_ref().map(|ip| format!(" [{ip}]")).unwrap_or_default(),
                        h.by,
                        h.id.as_ref().map(|id| format!(" id {id}")).unwrap_or_default()
                    ));
                }
            }
        }
        s
    }
}

/// Extract the hops of a message from its Received: headers, oldest first.
pub fn hops(raw: &[u8]) -> Vec<Hop> {
    let Some(m) = mail_parser::MessageParser::default().parse_headers(raw) else { return vec![] };
    let mut v: Vec<Hop> = m
        .received_all()
        .map(|r| Hop {
            from: r.from().map(|h| h.to_string()).or_else(|| r.helo().map(|h| h.to_string())).unwrap_or_default(),
            from_ip: r.from_ip().map(|i| i.to_string()),
            by: r.by().map(|h| h.to_string()).unwrap_or_default(),
            id: r.id().map(str::to_string),
            date: r.date().map(|d| d.to_rfc3339()),
        })
        .collect();
    v.reverse();
    v
}

/// What the runner needs from a backend.
pub trait LabBackend {
    /// The lab's state (addresses, ports).
    fn state(&self) -> &LabState;
    /// Stop a server (hard = kill -9).
    fn stop(&mut self, name: &str, hard: bool) -> impl std::future::Future<Output = anyhow::Result<()>>;
    /// Start a server and wait for health.
    fn start(&mut self, name: &str) -> impl std::future::Future<Output = anyhow::Result<()>>;
    /// Map a scenario host string (IP literal or name) to the backend's.
    fn real_host(&self, host: &str) -> String;
    /// Submit the message of a `send` step; returns the decisive reply and where it went.
    /// The default connects from this process, bound to the client host's (or the target
    /// server's) real address.
    fn submit(&mut self, sub: &Submission<'_>) -> impl std::future::Future<Output = anyhow::Result<(mtalab_smtp::Reply, String)>> {
        submit_from_here(self.state(), sub)
    }
    /// Run a fault step (`disconnect`, `connect`, `link_rate`, `netem`). The default
    /// refuses: the backend has no links to cut.
    fn fault(&mut self, step: &Step) -> impl std::future::Future<Output = anyhow::Result<String>> {
        let msg = format!("{}: link faults are not available on the {} backend (they need --backend docker)", step.label(), self.state().backend);
        async move { Err(anyhow::anyhow!(msg)) }
    }
}

/// The message of a `send` step, for [`LabBackend::submit`].
#[derive(Debug, Clone)]
pub struct Submission<'a> {
    /// Target server (its IMS), unless `via_mx`.
    pub server: Option<&'a str>,
    /// Look up the first recipient domain's MX in the lab DNS and connect there.
    pub via_mx: bool,
    /// Client host (or server) the connection comes from.
    pub from_host: Option<&'a str>,
    /// HELO name.
    pub helo: String,
    /// The message.
    pub msg: crate::sendmail::Outgoing,
}

/// Submit from this process (the local backend): connect to the target's real address,
/// bound to the client host's real address, or to the target's own without a client host.
pub async fn submit_from_here(st: &LabState, sub: &Submission<'_>) -> anyhow::Result<(mtalab_smtp::Reply, String)> {
    let (target, label) = if sub.via_mx {
        let domain = sub.msg.to.first().and_then(|t| t.rsplit_once('@')).map(|(_, d)| d.to_string()).context("no recipient domain")?;
        let r = mtalab_server::resolve::MxResolver::new(st.dns_socket());
        let hosts = r.mail_hosts(&domain).await.with_context(|| format!("MX lookup of {domain} in the lab DNS"))?;
        let h = hosts.first().context("no mail host")?;
        let ip = *h.addrs.first().context("mail host without address")?;
        (SocketAddr::new(ip, st.ports.smtp), format!("MX {} ({ip})", h.name))
    } else {
        let name = sub.server.context("send needs a server or via_mx")?;
        let s = st.server(name).with_context(|| format!("unknown server {name}"))?;
        let port = s.smtp_port.with_context(|| format!("server {name} has no IMS"))?;
        (SocketAddr::new(IpAddr::V4(s.address), port), format!("{} ({})", s.name, s.address))
    };
    let source = match sub.from_host {
        Some(h) => st.host_address(h).with_context(|| format!("unknown host {h}"))?,
        None => match target.ip() {
            IpAddr::V4(v4) => v4,
            IpAddr::V6(_) => bail!("IPv6 target"),
        },
    };
    let decisive = crate::sendmail::send(target, Some(IpAddr::V4(source)), &sub.helo, &sub.msg).await?;
    Ok((decisive, label))
}

impl LabBackend for LocalLab {
    fn state(&self) -> &LabState {
        &self.state
    }
    async fn stop(&mut self, name: &str, hard: bool) -> anyhow::Result<()> {
        self.stop_server(name, hard).await
    }
    async fn start(&mut self, name: &str) -> anyhow::Result<()> {
        self.start_server(name).await
    }
    fn real_host(&self, host: &str) -> String {
        self.map.real_host(host)
    }
    async fn fault(&mut self, step: &Step) -> anyhow::Result<String> {
        self.fault_step(step).await
    }
}

/// Run every step; `progress` sees each result as it completes.
pub async fn run_steps<B: LabBackend>(lab: &mut B, sc: &Scenario, up_ms: u64, mut progress: impl FnMut(&StepResult, usize)) -> Report {
    let started = Utc::now();
    let t0 = Instant::now();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("http client");
    let mut steps = Vec::new();
    let mut messages = Vec::new();
    let mut began: std::collections::HashMap<String, DateTime<Utc>> = std::collections::HashMap::new();
    let total = sc.steps.len();
    for (i, step) in sc.steps.iter().enumerate() {
        let t = Instant::now();
        if let Some(n) = step.name() {
            began.insert(n.to_string(), Utc::now());
        }
        let r = run_step(lab, sc, &http, step, &mut messages, &began).await;
        let (ok, detail) = match r {
            Ok(d) => (true, d),
            Err(e) => (false, format!("{e:#}")),
        };
        let res = StepResult { index: i + 1, label: step.label(), ok, ms: t.elapsed().as_millis() as u64, detail };
        progress(&res, total);
        steps.push(res);
    }
    let passed = steps.iter().filter(|s| s.ok).count();
    Report {
        scenario: sc.scenario.name.clone(),
        title: sc.scenario.title.clone(),
        kb: sc.scenario.kb.clone(),
        backend: lab.state().backend.clone(),
        started,
        ms: t0.elapsed().as_millis() as u64,
        up_ms,
        passed,
        failed: steps.len() - passed,
        servers: lab.state().servers.clone(),
        steps,
        messages,
    }
}

fn admin(st: &LabState, server: &str) -> anyhow::Result<String> {
    st.admin_url(server).with_context(|| format!("unknown server {server}"))
}

async fn get_json(http: &reqwest::Client, url: &str) -> anyhow::Result<Value> {
    let r = http.get(url).send().await.with_context(|| format!("GET {url}"))?;
    let status = r.status();
    let v: Value = r.json().await.with_context(|| format!("GET {url}: bad JSON"))?;
    if !status.is_success() {
        bail!("GET {url}: {status}: {v}");
    }
    Ok(v)
}

async fn poll<T>(timeout: f64, mut f: impl AsyncFnMut() -> anyhow::Result<Option<T>>) -> anyhow::Result<Option<T>> {
    let deadline = Instant::now() + Duration::from_secs_f64(timeout);
    loop {
        // Errors while polling (a server restarting) count as "not yet".
        if let Ok(Some(t)) = f().await {
            return Ok(Some(t));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn find_message(http: &reqwest::Client, base: &str, mailbox: &str, pred: impl Fn(&Value) -> bool) -> anyhow::Result<Option<Value>> {
    let v = get_json(http, &format!("{base}/mailboxes/{mailbox}")).await?;
    Ok(v.as_array().and_then(|a| a.iter().find(|m| pred(m)).cloned()))
}

async fn run_step<B: LabBackend>(
    lab: &mut B,
    sc: &Scenario,
    http: &reqwest::Client,
    step: &Step,
    messages: &mut Vec<MessageTrace>,
    began: &std::collections::HashMap<String, DateTime<Utc>>,
) -> anyhow::Result<String> {
    match step {
        Step::Send { server, via_mx, from_host, from, to, subject, body, body_size, expect_reply, expect_status, .. } => {
            let sub = Submission {
                server: server.as_deref(),
                via_mx: *via_mx,
                from_host: from_host.as_deref(),
                helo: from_host.clone().unwrap_or_else(|| "mtalab-lab".into()),
                msg: crate::sendmail::Outgoing {
                    from: from.clone(),
                    to: to.clone(),
                    subject: subject.clone(),
                    body: body.clone().unwrap_or_else(|| format!("Sent by the mtalab lab ({}).", sc.scenario.name)),
                    body_size: *body_size,
                },
            };
            let (decisive, label) = lab.submit(&sub).await?;
            let code_ok = decisive.code == *expect_reply;
            let status_ok = expect_status.as_ref().is_none_or(|s| decisive.enhanced.is_some_and(|e| &e.to_string() == s));
            let detail = format!("to {label}: {decisive}");
            if code_ok && status_ok {
                Ok(detail)
            } else {
                bail!("expected {expect_reply}{}, got {decisive} ({label})", expect_status.as_ref().map(|s| format!(" {s}")).unwrap_or_default())
            }
        }
        Step::ExpectDelivery { server, mailbox, subject, hops: want_hops, count, timeout_secs, .. } => {
            let base = admin(lab.state(), server)?;
            let found = poll(*timeout_secs, async || find_message(http, &base, mailbox, |m| m["subject"].as_str() == Some(subject.as_str())).await).await?;
            let Some(m) = found else { bail!("no message {subject:?} in {mailbox} on {server} after {timeout_secs}s") };
            let copies = get_json(http, &format!("{base}/mailboxes/{mailbox}"))
                .await?
                .as_array()
                .map_or(0, |a| a.iter().filter(|m| m["subject"].as_str() == Some(subject.as_str())).count());
            if let Some(want) = count
                && copies != *want
            {
                bail!("{copies} messages {subject:?} in {mailbox} on {server}, expected {want}");
            }
            let id = m["id"].as_str().unwrap_or_default();
            let raw = http.get(format!("{base}/mailboxes/{mailbox}/{id}")).send().await?.bytes().await?;
            let h = hops(&raw);
            let n = h.len();
            messages.push(MessageTrace { subject: subject.clone(), server: server.clone(), mailbox: mailbox.clone(), hops: h });
            if let Some(w) = want_hops
                && *w != n
            {
                bail!("found {subject:?} but with {n} hops, expected {w}");
            }
            Ok(match count {
                Some(_) => format!("found in {mailbox} on {server} after {n} hops, {copies} cop{}", if copies == 1 { "y" } else { "ies" }),
                None => format!("found in {mailbox} on {server} after {n} hops"),
            })
        }
        Step::ExpectBounce { server, mailbox, subject, status, timeout_secs, .. } => {
            let base = admin(lab.state(), server)?;
            let want = format!("Undeliverable: {subject}");
            let found = poll(*timeout_secs, async || find_message(http, &base, mailbox, |m| m["subject"].as_str() == Some(want.as_str())).await).await?;
            let Some(m) = found else { bail!("no DSN for {subject:?} in {mailbox} on {server} after {timeout_secs}s") };
            let id = m["id"].as_str().unwrap_or_default();
            let raw = http.get(format!("{base}/mailboxes/{mailbox}/{id}")).send().await?.text().await?;
            if !raw.contains("message/delivery-status") {
                bail!("the bounce is not an RFC 3464 delivery-status report");
            }
            let got_status = raw.lines().find_map(|l| l.strip_prefix("Status: ")).map(str::trim).unwrap_or("").to_string();
            if let Some(s) = status
                && &got_status != s
            {
                bail!("DSN status {got_status}, expected {s}");
            }
            Ok(format!("DSN in {mailbox} on {server}, Status: {got_status}"))
        }
        Step::ExpectNoDelivery { server, mailbox, subject, within_secs, .. } => {
            let base = admin(lab.state(), server)?;
            tokio::time::sleep(Duration::from_secs_f64(*within_secs)).await;
            if find_message(http, &base, mailbox, |m| m["subject"].as_str() == Some(subject.as_str())).await?.is_some() {
                bail!("{subject:?} arrived in {mailbox} on {server}");
            }
            Ok(format!("nothing in {mailbox} after {within_secs}s"))
        }
        Step::ExpectEvent { server, id, text_contains, count, after, timeout_secs, .. } => {
            let base = admin(lab.state(), server)?;
            let url = format!("{base}/events?id={id}");
            let since: Option<DateTime<Utc>> = match after {
                Some(a) => Some(*began.get(a).with_context(|| format!("no step named {a:?} ran before"))?),
                None => None,
            };
            let logged_after = |e: &Value| {
                since.is_none_or(|t| e["time"].as_str().and_then(|x| DateTime::parse_from_rfc3339(x).ok()).is_some_and(|x| x >= t))
            };
            let found = poll(*timeout_secs, async || {
                let v = get_json(http, &url).await?;
                let hits: Vec<Value> = v
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter(|e| logged_after(e))
                            .filter(|e| text_contains.as_ref().is_none_or(|t| e["text"].as_str().is_some_and(|x| x.contains(t.as_str()))))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                Ok((hits.len() >= *count).then_some(hits))
            })
            .await?;
            match found {
                Some(h) => Ok(format!("{} x event {id}: {}", h.len(), h[0]["text"].as_str().unwrap_or_default())),
                None => bail!(
                    "event {id}{}{} not logged {count} time(s) on {server} within {timeout_secs}s",
                    text_contains.as_ref().map(|t| format!(" containing {t:?}")).unwrap_or_default(),
                    after.as_ref().map(|a| format!(" after {a:?}")).unwrap_or_default()
                ),
            }
        }
        Step::ExpectTransfer { server, connector, checkpoints, timeout_secs, .. } => {
            let base = admin(lab.state(), server)?;
            let url = format!("{base}/mta");
            let found = poll(*timeout_secs, async || {
                let v = get_json(http, &url).await?;
                let hit = v["connectors"].as_array().into_iter().flatten().filter(|c| connector.as_ref().is_none_or(|n| c["name"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(n)))).find_map(|c| {
                    c["state"]["transfers"].as_array().into_iter().flatten().find(|t| t["direction"] == "out" && t["checkpoints_confirmed"].as_u64().is_some_and(|n| n as usize >= *checkpoints)).map(|t| (c["name"].clone(), t.clone()))
                });
                Ok(hit)
            })
            .await?;
            match found {
                Some((c, t)) => Ok(format!(
                    "transfer over {} under way: {} of {} octets sent, {} of {} checkpoints confirmed",
                    c.as_str().unwrap_or_default(),
                    t["done"],
                    t["octets"],
                    t["checkpoints_confirmed"],
                    t["checkpoints"]
                )),
                None => bail!("no transfer from {server} with {checkpoints} checkpoint(s) confirmed within {timeout_secs}s"),
            }
        }
        Step::ExpectQueueEmpty { server, timeout_secs, .. } => {
            let base = admin(lab.state(), server)?;
            let done = poll(*timeout_secs, async || Ok(get_json(http, &format!("{base}/queue")).await?.as_array().is_some_and(|a| a.is_empty()).then_some(()))).await?;
            match done {
                Some(()) => Ok("queue empty".into()),
                None => bail!("queue of {server} not empty after {timeout_secs}s"),
            }
        }
        Step::SetEmailDomain { server, domain, hosts, .. } => {
            let base = admin(lab.state(), server)?;
            let hosts: Vec<String> = hosts.iter().map(|h| lab.real_host(h)).collect();
            let r = http.post(format!("{base}/actions/email-domain")).json(&serde_json::json!({"domain": domain, "hosts": hosts})).send().await?;
            if !r.status().is_success() {
                bail!("admin API refused: {}", r.text().await.unwrap_or_default());
            }
            Ok(format!("E-Mail Domain {domain} -> {}", hosts.join(",")))
        }
        Step::ExpectQueued { server, count, timeout_secs, .. } => {
            let base = admin(lab.state(), server)?;
            let n = poll(*timeout_secs, async || {
                let n = get_json(http, &format!("{base}/queue")).await?.as_array().map_or(0, |a| a.len());
                Ok((n >= *count).then_some(n))
            })
            .await?;
            match n {
                Some(n) => Ok(format!("{n} message(s) queued")),
                None => bail!("fewer than {count} message(s) queued on {server} after {timeout_secs}s"),
            }
        }
        Step::SetRegistry { server, key, value, data, .. } => {
            let base = admin(lab.state(), server)?;
            let data = data.as_ref().map(|d| lab.real_host(d));
            let r = http.post(format!("{base}/actions/set-registry")).json(&serde_json::json!({"key": key, "value": value, "data": data})).send().await?;
            if !r.status().is_success() {
                bail!("admin API refused: {}", r.text().await.unwrap_or_default());
            }
            Ok(match data {
                Some(d) => format!("{key}\\{value} = {d}"),
                None => format!("{key}\\{value} deleted"),
            })
        }
        Step::RestartService { server, service, .. } => {
            let base = admin(lab.state(), server)?;
            let r = http.post(format!("{base}/actions/restart-service")).json(&serde_json::json!({"service": service})).send().await?;
            let ok = r.status().is_success();
            let body: Value = r.json().await.unwrap_or_default();
            if !ok {
                bail!("admin API refused: {body}");
            }
            Ok(format!("{service} restarted; overrides in force: {}", body["overrides"]))
        }
        Step::SetConnector { server, connector, remote_mta_password, local_mta_password, local_mta_name, .. } => {
            let base = admin(lab.state(), server)?;
            let r = http
                .post(format!("{base}/actions/set-connector"))
                .json(&serde_json::json!({"connector": connector, "remote_mta_password": remote_mta_password, "local_mta_password": local_mta_password, "local_mta_name": local_mta_name}))
                .send()
                .await?;
            if !r.status().is_success() {
                bail!("admin API refused: {}", r.text().await.unwrap_or_default());
            }
            Ok(format!("connector {connector} changed"))
        }
        Step::RetryQueue { server, .. } => {
            let base = admin(lab.state(), server)?;
            let v: Value = http.post(format!("{base}/actions/retry-queue")).send().await?.json().await?;
            Ok(format!("{} message(s) retried", v["retried"]))
        }
        Step::Stop { server, .. } => lab.stop(server, false).await.map(|_| "stopped".into()),
        Step::Kill { server, .. } => lab.stop(server, true).await.map(|_| "killed".into()),
        Step::Start { server, .. } => lab.start(server).await.map(|_| "started and healthy".into()),
        Step::Wait { secs, .. } => {
            tokio::time::sleep(Duration::from_secs_f64(*secs)).await;
            Ok(format!("waited {secs}s"))
        }
        Step::Disconnect(_) | Step::Connect(_) | Step::LinkRate(_) | Step::Netem(_) => lab.fault(step).await,
    }
}
