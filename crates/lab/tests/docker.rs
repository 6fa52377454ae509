//! The docker backend against real containers.
//!
//! Where Docker is not available (`docker info` fails, or no compose) the tests that need it
//! print "SKIPPED" with the reason and return. Where it is, they need the image
//! `mtalab:local` (`$MTALAB_IMAGE`): CI builds it with `testnet/image/build.sh` before
//! `cargo test`; when it is missing the tests build it the same way first (a release build:
//! minutes). The local backend's runs use the image's own static `mtalab` binary (or
//! `$MTALAB_BIN`), so both backends run the same daemons. Docker labs run one at a time
//! (a lock), except where a test runs two on purpose. They need root (bridges, iptables,
//! tcpdump), as Docker itself does here.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mtalab_lab::docker::compose::Role;
use mtalab_lab::docker::{self, DockerLab, DockerOptions, cli};
use mtalab_lab::{LocalOptions, Scenario};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn image() -> String {
    DockerOptions::default().image
}

/// The lock on docker labs, or None (after saying so) when Docker is not available here.
async fn docker_or_skip(test: &str) -> Option<tokio::sync::MutexGuard<'static, ()>> {
    if let Err(e) = cli::Docker::available() {
        eprintln!("{test}: SKIPPED — Docker is not available here ({e})");
        return None;
    }
    let guard = LOCK.lock().await;
    ensure_image();
    Some(guard)
}

fn ensure_image() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let image = image();
        if cli::image_exists(&image) {
            return;
        }
        eprintln!("image {image} is missing: building it with testnet/image/build.sh (CI builds it before the tests)");
        let st = std::process::Command::new(root().join("testnet/image/build.sh"))
            .env("CARGO_TARGET_DIR", root().join("target/image"))
            .env("MTALAB_IMAGE", &image)
            .status()
            .expect("running testnet/image/build.sh");
        assert!(st.success(), "testnet/image/build.sh failed");
    });
}

/// The `mtalab` binary for local-backend runs and CLI runs: `$MTALAB_BIN`, else the image's
/// static binary copied out of it.
fn host_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("MTALAB_BIN") {
            return PathBuf::from(p);
        }
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mtalab-from-image");
        std::fs::create_dir_all(&dir).unwrap();
        let id = cli::run(&mut cli::docker(["create", &image()])).unwrap().trim().to_string();
        let dest = dir.join("mtalab");
        let r = cli::run(&mut cli::docker(["cp".to_string(), format!("{id}:/mtalab"), dest.to_string_lossy().into_owned()]));
        let _ = cli::run(&mut cli::docker(["rm", &id]));
        r.unwrap();
        dest
    })
    .clone()
}

fn scenarios() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("testnet/scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    v
}

/// Two LANs joined only by a RAS link, static routes both ways (the KB Q255991 topology),
/// mail between them over SMTP, and link faults.
const DUAL_HOMED: &str = r#"
[scenario]
name = "docker-dual-homed"
title = "Two LANs joined only by a RAS link with static routes"
time_scale = 0.01

[[organizations]]
name = "ORG"
[[sites]]
name = "SiteA"
smtp_address = "@SiteA.example"
[[sites]]
name = "SiteB"
smtp_address = "@SiteB.example"

[[networks]]
name = "lan-a"
subnet = "192.168.200.0/24"
[[networks]]
name = "lan-b"
subnet = "192.168.100.0/24"
[[networks]]
name = "ras"
subnet = "192.168.1.0/29"

[[servers]]
name = "ServerA"
site = "SiteA"
address = "192.168.200.10"
recipients = [{ alias = "User1" }]
interfaces = [{ name = "RAS", address = "192.168.1.1" }]
routes = [{ destination = "192.168.100.0/24", interface = "RAS", gateway = "192.168.1.2" }]
[servers.ims]
relay_from = ["192.168.200.0/24"]
email_domains = [{ domain = "SiteB.example", hosts = ["192.168.100.15"] }]
retry_intervals_secs = [60, 120]

[[servers]]
name = "ServerB"
site = "SiteB"
address = "192.168.100.15"
recipients = [{ alias = "User2" }]
interfaces = [{ name = "RAS", address = "192.168.1.2" }]
routes = [{ destination = "192.168.200.0/24", interface = "RAS", gateway = "192.168.1.1" }]
[servers.ims]
relay_from = ["192.168.100.0/24"]
email_domains = [{ domain = "SiteA.example", hosts = ["192.168.200.10"] }]
retry_intervals_secs = [60, 120]

[dns]
address = "10.99.99.2"
zones = []

[[steps]]
action = "send"
server = "ServerA"
from = "User1@SiteA.example"
to = ["User2@SiteB.example"]
subject = "A to B over the RAS link"
[[steps]]
action = "expect_delivery"
server = "ServerB"
mailbox = "User2"
subject = "A to B over the RAS link"
hops = 2
[[steps]]
action = "send"
server = "ServerB"
from = "User2@SiteB.example"
to = ["User1@SiteA.example"]
subject = "B to A over the RAS link"
[[steps]]
action = "expect_delivery"
server = "ServerA"
mailbox = "User1"
subject = "B to A over the RAS link"
hops = 2

# Cut the RAS link; once the idle connection from the first message is gone (5 s), ServerA
# finds no route to SiteB, logs 4006 and keeps the message until the link is back.
[[steps]]
action = "disconnect"
server = "ServerA"
network = "RAS"
[[steps]]
action = "wait"
secs = 6
[[steps]]
action = "send"
server = "ServerA"
from = "User1@SiteA.example"
to = ["User2@SiteB.example"]
subject = "A to B while the link is cut"
[[steps]]
action = "expect_event"
server = "ServerA"
id = 4006
[[steps]]
action = "connect"
server = "ServerA"
network = "RAS"
[[steps]]
action = "wait"
secs = 1.5
[[steps]]
action = "retry_queue"
server = "ServerA"
[[steps]]
action = "expect_delivery"
server = "ServerB"
mailbox = "User2"
subject = "A to B while the link is cut"
hops = 2
[[steps]]
action = "netem"
server = "ServerA"
network = "RAS"
delay_ms = 50
[[steps]]
action = "netem"
server = "ServerA"
network = "RAS"
"#;

fn write_scenario(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn project_gone(project: &str) {
    assert!(cli::project_containers(project).unwrap().is_empty(), "containers of {project} left");
    assert!(cli::project_networks(project).unwrap().is_empty(), "networks of {project} left");
    assert!(cli::project_volumes(project).unwrap().is_empty(), "volumes of {project} left");
}

fn rules_gone(bridge_prefix: &str) {
    if let Ok(out) = std::process::Command::new("iptables").arg("-S").output() {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains(bridge_prefix), "filter rules of {bridge_prefix}* left:\n{text}");
    }
}

/// `iptables -S DOCKER-USER`, or None without iptables.
fn docker_user_rules() -> Option<String> {
    let out = std::process::Command::new("iptables").args(["-w", "-S", "DOCKER-USER"]).output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The guard's rule for a bridge as `iptables -S` lists it.
fn guard_rule(bridge: &str, lab: &str) -> String {
    format!("-A DOCKER-USER -i {bridge} -o {bridge} -m comment --comment \"mtalab lab {lab}\" -j ACCEPT")
}

/// Wait until every container of a compose project (at least `n`) is healthy.
fn wait_healthy(project: &str, n: usize, timeout: Duration) {
    let start = Instant::now();
    loop {
        let ids: Vec<String> = cli::project_containers(project).unwrap().into_iter().map(|(id, _)| id).collect();
        if ids.len() >= n {
            let mut args = vec!["inspect".to_string(), "--format".into(), "{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}".into()];
            args.extend(ids);
            let out = cli::run(&mut cli::docker(args)).unwrap();
            if out.lines().all(|l| l.ends_with(" healthy")) {
                return;
            }
            assert!(start.elapsed() < timeout, "not healthy after {timeout:?}:\n{out}");
        }
        assert!(start.elapsed() < timeout, "{project}: fewer than {n} containers after {timeout:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Poll `url` (JSON) until `ok` holds of it.
async fn poll_json(url: &str, timeout: Duration, ok: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let start = Instant::now();
    loop {
        if let Ok(v) = mtalab_lab::http_get_json::<serde_json::Value>(url).await
            && ok(&v)
        {
            return v;
        }
        assert!(start.elapsed() < timeout, "{url}: not there after {timeout:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn root_compose_file_is_a_fresh_rendering() {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    let header = |key: &str| -> String {
        text.lines()
            .take_while(|l| l.starts_with('#'))
            .find_map(|l| l.strip_prefix(&format!("# {key}: ")))
            .unwrap_or_else(|| panic!("docker-compose.yml has no `# {key}:` header line"))
            .trim()
            .to_string()
    };
    let (scenario, files) = (header("scenario"), header("files"));
    assert_eq!(scenario, "testnet/scenarios/q255991-x400-rras.toml", "the default lab is the KB Q255991 scenario");
    let p = docker::render_default_lab(&root().join(&scenario), &scenario, &files, docker::DEFAULT_IMAGE).unwrap();
    let fix = format!("regenerate with `cargo run -- lab compose {scenario} --files {files}`");
    assert!(text == p.yaml, "docker-compose.yml differs from a fresh rendering of {scenario}: {fix}");
    for (rel, bytes) in &p.files {
        let on_disk = std::fs::read(root().join(&files).join(rel)).unwrap_or_default();
        assert!(on_disk == *bytes, "{files}/{} differs from a fresh rendering: {fix}", rel.display());
    }
    let servers: Vec<String> = std::fs::read_dir(root().join(&files).join("servers")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(servers.len(), p.files.iter().filter(|(r, _)| r.starts_with("servers")).count(), "stale server directories under {files}/servers: {fix}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_gives_the_same_step_results_on_both_backends() {
    let Some(_lock) = docker_or_skip("every_scenario_gives_the_same_step_results_on_both_backends").await else { return };
    let tmp = tempfile::tempdir().unwrap();
    for path in scenarios() {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let local = mtalab_lab::run(&path, Some(tmp.path().join(format!("{name}-local"))), &LocalOptions { exe: host_binary(), port_base: None }, false, None)
            .await
            .unwrap_or_else(|e| panic!("{name} on the local backend: {e:#}"));
        let dock = docker::run(&path, Some(tmp.path().join(format!("{name}-docker"))), &DockerOptions::default(), false, None)
            .await
            .unwrap_or_else(|e| panic!("{name} on the docker backend: {e:#}"));
        let l: Vec<(String, bool)> = local.steps.iter().map(|s| (s.label.clone(), s.ok)).collect();
        let d: Vec<(String, bool)> = dock.steps.iter().map(|s| (s.label.clone(), s.ok)).collect();
        assert!(l == d, "{name}: the backends disagree\n--- local ---\n{}\n--- docker ---\n{}", local.text(), dock.text());
        eprintln!("{name}: {} steps, the same results on both backends ({} passed, {} failed)", l.len(), local.passed, local.failed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_faults_and_the_kernels_source_choice() {
    let Some(_lock) = docker_or_skip("routes_faults_and_the_kernels_source_choice").await else { return };
    let tmp = tempfile::tempdir().unwrap();
    let path = write_scenario(tmp.path(), "dual-homed.toml", DUAL_HOMED);
    let sc = Scenario::load(&path).unwrap();
    let mut lab = DockerLab::up(&path, &sc, &tmp.path().join("lab"), &DockerOptions::default()).await.unwrap();
    // Only the servers with static routes may change routes.
    let server_a = lab.docker.service("ServerA").unwrap().clone();
    assert!(server_a.net_admin && !lab.docker.service("dns").unwrap().net_admin);
    let report = mtalab_lab::runner::run_steps(&mut lab, &sc, 0, |_, _| {}).await;
    assert_eq!(report.failed, 0, "{}", report.text());
    // The IMS binds its NIC address: ServerB sees ServerA's LAN address although the packets
    // crossed the RAS link.
    let m = report.messages.iter().find(|m| m.subject == "A to B over the RAS link").unwrap();
    assert_eq!(m.hops[1].from_ip.as_deref(), Some("192.168.200.10"), "{m:?}");
    let netem = report.steps.iter().rev().nth(1).unwrap();
    eprintln!("netem step: {}", netem.detail);

    // Without a bound source the kernel chooses: the address of the interface on the route
    // to 192.168.100.0/24, the RAS one. Bound to the NIC address, the remote sees that.
    let a = lab.docker.containers[&server_a.key].clone();
    for (subject, source, want) in [("kernel's choice", None, "192.168.1.1"), ("bound to the NIC", Some("192.168.200.10"), "192.168.200.10")] {
        let mut args = vec!["exec", &a, "/mtalab", "send", "--server", "192.168.100.15:25", "--from", "User1@SiteA.example", "--to", "User2@SiteB.example", "--subject", subject];
        if let Some(s) = source {
            args.extend(["--source", s]);
        }
        cli::run(&mut cli::docker(args)).unwrap();
        let base = lab.state.admin_url("ServerB").unwrap();
        // The 250 comes once the message is queued; the mailbox has it a moment later.
        let list = poll_json(&format!("{base}/mailboxes/User2"), Duration::from_secs(10), |v| v.as_array().is_some_and(|a| a.iter().any(|m| m["subject"] == subject))).await;
        let id = list.as_array().unwrap().iter().find(|m| m["subject"] == subject).unwrap()["id"].as_str().unwrap().to_string();
        let raw = reqwest::get(format!("{base}/mailboxes/User2/{id}")).await.unwrap().bytes().await.unwrap();
        let hops = mtalab_lab::runner::hops(&raw);
        assert_eq!(hops[0].from_ip.as_deref(), Some(want), "{subject}: {hops:?}");
    }
    // The guard keeps the RAS bridge open in DOCKER-USER (the only network the routes leave
    // by). Killed outright it cannot delete its rule; `down` does.
    let ras = lab.docker.networks.iter().find(|n| n.name == "ras").unwrap().bridge.clone();
    let guards: Vec<_> = lab.docker.services.iter().filter(|s| s.role == Role::Guard).collect();
    assert_eq!(guards.len(), 1);
    let guard = lab.docker.containers[&guards[0].key].clone();
    if let Some(rules) = docker_user_rules() {
        assert!(rules.contains(&guard_rule(&ras, "docker-dual-homed")), "{rules}");
        assert_eq!(rules.matches("mtalab lab docker-dual-homed").count(), 1, "only the RAS bridge is guarded:\n{rules}");
    }
    cli::run(&mut cli::docker(["kill", "-s", "KILL", &guard])).unwrap();
    if let Some(rules) = docker_user_rules() {
        assert!(rules.contains(&guard_rule(&ras, "docker-dual-homed")), "a killed guard leaves its rule:\n{rules}");
    }
    let prefix = docker::bridge_prefix(&lab.state.dir);
    let project = lab.docker.project.clone();
    lab.down_now();
    project_gone(&project);
    rules_gone(&prefix);
}

/// The root docker-compose.yml with plain compose, as the README runs it: no mtalab on the
/// host. A message from SiteA to SiteB crosses the X.400 connector over the RAS link: refused
/// with 9301 (ServerA comes from its RAS address), delivered once the Stack IP Address
/// Override is set and the MTA restarted. `compose down` leaves no rule behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_compose_file_runs_with_plain_compose() {
    let Some(_lock) = docker_or_skip("the_root_compose_file_runs_with_plain_compose").await else { return };
    if image() != docker::DEFAULT_IMAGE {
        return eprintln!("the_root_compose_file_runs_with_plain_compose: SKIPPED — the root compose file uses {}, not $MTALAB_IMAGE", docker::DEFAULT_IMAGE);
    }
    let dc = cli::Docker::detect().unwrap();
    let file = root().join("docker-compose.yml");
    let project = format!("mtalab-root-test-{}", std::process::id());
    struct Down<'a>(&'a cli::Docker, &'a str, &'a Path);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = cli::run(&mut self.0.compose(self.1, self.2, ["down", "-v", "-t", "5"]));
        }
    }
    let down = Down(&dc, &project, &file);
    cli::run(&mut dc.compose(&project, &file, ["up", "-d"])).unwrap();
    wait_healthy(&project, 4, Duration::from_secs(60));
    let scenario = "testnet/scenarios/q255991-x400-rras.toml";
    let rendered = docker::render_default_lab(&root().join(scenario), scenario, "testnet/image/default-lab", docker::DEFAULT_IMAGE).unwrap();
    assert_eq!(rendered.guarded.len(), 1, "the RAS link is the one routed network");
    let bridge = rendered.guarded[0].clone();
    if let Some(rules) = docker_user_rules() {
        assert!(rules.contains(&guard_rule(&bridge, "q255991-x400-rras")), "{rules}");
    }

    let subject = "Q255991 with plain compose";
    cli::run(&mut dc.compose(
        &project,
        &file,
        ["exec", "-T", "servera", "/mtalab", "send", "--server", "192.168.200.10:25", "--from", "User1@SiteA.microsoft.com", "--to", "User2@SiteB.microsoft.com", "--subject", subject],
    ))
    .unwrap();
    let events = poll_json("http://192.168.100.15:8025/events?id=9301", Duration::from_secs(20), |v| v.as_array().is_some_and(|a| !a.is_empty())).await;
    assert!(events.to_string().contains("C0A80101"), "9301 names the RAS address 192.168.1.1: {events}");
    let http = reqwest::Client::new();
    let r = http
        .post("http://192.168.200.10:8025/actions/set-registry")
        .json(&serde_json::json!({"key": "MSExchangeMTA\\Parameters\\X400 to SiteB", "value": "Stack IP Address Override", "data": "192.168.200.10"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let r = http.post("http://192.168.200.10:8025/actions/restart-service").json(&serde_json::json!({"service": "MSExchangeMTA"})).send().await.unwrap();
    assert!(r.status().is_success());
    poll_json("http://192.168.100.15:8025/mailboxes/User2", Duration::from_secs(20), |v| v.as_array().is_some_and(|a| a.iter().any(|m| m["subject"] == subject))).await;

    drop(down);
    project_gone(&project);
    if let Some(rules) = docker_user_rules() {
        assert!(!rules.contains(&bridge), "compose down left a rule:\n{rules}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_removes_everything_after_a_failed_or_killed_run() {
    let Some(_lock) = docker_or_skip("down_removes_everything_after_a_failed_or_killed_run").await else { return };
    let tmp = tempfile::tempdir().unwrap();

    // A bring-up that fails (ServerA's config does not load: the alias is used twice) takes
    // away what it created.
    let bad = write_scenario(tmp.path(), "bad.toml", &DUAL_HOMED.replacen("recipients = [{ alias = \"User1\" }]", "recipients = [{ alias = \"User1\" }, { alias = \"User1\" }]", 1));
    let sc = Scenario::load(&bad).unwrap();
    let dir = tmp.path().join("bad");
    let e = match DockerLab::up(&bad, &sc, &dir, &DockerOptions::default()).await {
        Ok(_) => panic!("a server with a bad config came up"),
        Err(e) => format!("{e:#}"),
    };
    assert!(e.contains("servera exited"), "{e}");
    let dir = dir.canonicalize().unwrap();
    project_gone(&docker::project_name(&sc.scenario.name, &dir));
    rules_gone(&docker::bridge_prefix(&dir));

    // A `lab run` killed (SIGKILL) in the middle leaves its lab behind; `down` removes it.
    let q = root().join("testnet/scenarios/q196927-single-domain.toml");
    let sc = Scenario::load(&q).unwrap();
    let dir = tmp.path().join("killed");
    std::fs::create_dir_all(&dir).unwrap();
    let dir = dir.canonicalize().unwrap();
    let project = docker::project_name(&sc.scenario.name, &dir);
    let mut child = std::process::Command::new(host_binary())
        .args(["lab", "run", "--backend", "docker"])
        .arg(&q)
        .arg("--dir")
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while cli::project_containers(&project).unwrap().len() < 5 {
        assert!(start.elapsed() < Duration::from_secs(60), "the lab did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!cli::project_containers(&project).unwrap().is_empty());
    let s = docker::down(&dir).unwrap();
    assert_eq!(s.containers, 5);
    project_gone(&project);
    rules_gone(&docker::bridge_prefix(&dir));
    assert!(!dir.join("state.json").exists() && !dir.join("docker-compose.yml").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_labs_in_parallel_do_not_collide() {
    let Some(_lock) = docker_or_skip("two_labs_in_parallel_do_not_collide").await else { return };
    let tmp = tempfile::tempdir().unwrap();
    let q = root().join("testnet/scenarios/q196927-single-domain.toml");
    let dh = write_scenario(tmp.path(), "dual-homed.toml", DUAL_HOMED);
    let opts = DockerOptions::default();
    let (a, b) = tokio::join!(docker::run(&q, Some(tmp.path().join("a")), &opts, false, None), docker::run(&dh, Some(tmp.path().join("b")), &opts, false, None));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.failed, 0, "{}", a.text());
    assert_eq!(b.failed, 0, "{}", b.text());

    // The same scenario twice: its subnets are taken while the first lab is up, and the
    // second one says so without disturbing the first.
    let sc = Scenario::load(&q).unwrap();
    let first = DockerLab::up(&q, &sc, &tmp.path().join("c"), &opts).await.unwrap();
    let e = match DockerLab::up(&q, &sc, &tmp.path().join("d"), &opts).await {
        Ok(_) => panic!("two labs took the same subnet"),
        Err(e) => format!("{e:#}"),
    };
    assert!(e.contains("overlaps"), "{e}");
    assert!(docker::health(Some(&format!("{}/health", first.state.admin_url("ServerA").unwrap())), None).await);
    let project = first.docker.project.clone();
    drop(first);
    project_gone(&project);
}
