//! The guard service of a docker lab (`mtalab lab netguard`): it lets routed traffic cross the
//! lab's networks that carry it, for as long as the lab is up.
//!
//! Wherever bridged traffic passes iptables (`net.bridge.bridge-nf-call-iptables = 1`,
//! Docker's default), Docker's rules for `internal` networks drop every packet on a bridge whose
//! source or destination lies outside that network's subnet. That is exactly what a RAS link
//! carries when a static route sends a remote LAN's traffic over it (KB Q255991: ServerA's
//! packets to 192.168.100.15 cross the 192.168.1.0/29 link). The guard inserts, for each such
//! network's bridge, the rule `iptables -I DOCKER-USER -i BRIDGE -o BRIDGE -j ACCEPT` (frames
//! that stay on one lab network are never dropped), commented `mtalab lab <lab name>`, through
//! nf_tables netlink ([`super::nft`]; the image has no iptables binary).
//!
//! The compose project renders it as a service ([`super::compose`]): image `mtalab:local`,
//! `network_mode: host` (the rules are the host's), `cap_add: [NET_ADMIN]`, healthy when its
//! rules are present (`--check`), and every server `depends_on` it being healthy. It inserts
//! idempotently (a bridge that already has such a rule gets no second one), puts back a rule
//! that disappears, and deletes its own rules on SIGTERM or SIGINT (`docker compose down`,
//! Ctrl-C of `docker compose up`). A guard killed outright leaves its rules; `mtalab lab down`
//! deletes them by bridge ([`remove_leftovers`]).
//!
//! Which networks: those a server's static route leaves by — the network of the route's
//! gateway, or, for a route without one, the network of the named interface's address. Other
//! networks carry only their own subnet's traffic, which Docker lets through; a lab without
//! static routes gets no guard.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};

use super::nft::{self, Nft, NftError};

/// The compose service name of the guard (`lab-netguard` if a scenario name takes it).
pub const SERVICE: &str = "netguard";

/// How long the guard waits for the chain `DOCKER-USER` to appear before giving up.
pub const CHAIN_WAIT: Duration = Duration::from_secs(10);

/// How often the guard checks that its rules are still there.
const RECHECK: Duration = Duration::from_secs(2);

/// The rule comment of a lab's guard: `mtalab lab <lab name>`.
pub fn comment(lab: &str) -> String {
    let mut c = format!("mtalab lab {lab}");
    c.truncate(nft::MAX_COMMENT);
    c
}

/// The guard's command line after `mtalab` (without `--check`).
pub fn command(lab: &str, bridges: &[String]) -> Vec<String> {
    let mut v = vec!["lab".to_string(), "netguard".into(), "--lab".into(), lab.into()];
    for b in bridges {
        v.extend(["--bridge".to_string(), b.clone()]);
    }
    v
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, NftError> + Send + 'static) -> anyhow::Result<T> {
    Ok(tokio::task::spawn_blocking(f).await.context("joining a netlink call")??)
}

fn rule_text(b: &str) -> String {
    format!("DOCKER-USER -i {b} -o {b} -j ACCEPT")
}

fn no_chain_message() -> String {
    format!(
        "chain {} of table ip {} does not exist after {} s: it is dockerd's, made at its start with iptables-nft. \
         Is Docker running with its iptables rules (`iptables -S DOCKER-USER`), and is the host's iptables the nf_tables variant \
         (`iptables --version` says nf_tables)? On a host with iptables-legacy insert the rule by hand: iptables -I DOCKER-USER -i BRIDGE -o BRIDGE -j ACCEPT",
        nft::CHAIN,
        nft::TABLE,
        CHAIN_WAIT.as_secs()
    )
}

/// Insert the missing rules now; waits up to [`CHAIN_WAIT`] for the chain to exist.
async fn insert_when_chain_exists(bridges: &[String], comment: &str) -> anyhow::Result<Vec<String>> {
    let start = Instant::now();
    let mut said = false;
    loop {
        let (b, c) = (bridges.to_vec(), comment.to_string());
        let r = blocking(move || {
            let mut n = Nft::open()?;
            if !n.chain_exists()? {
                return Ok(None);
            }
            nft::ensure_same_bridge_rules(&mut n, &b, &c).map(Some)
        })
        .await;
        match r {
            Ok(Some(inserted)) => return Ok(inserted),
            Ok(None) if start.elapsed() < CHAIN_WAIT => {
                if !said {
                    eprintln!("mtalab netguard: chain {} of table ip {} does not exist yet; waiting up to {} s", nft::CHAIN, nft::TABLE, CHAIN_WAIT.as_secs());
                    said = true;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Ok(None) => anyhow::bail!(no_chain_message()),
            Err(e) => {
                let perm = e.downcast_ref::<NftError>().is_some_and(NftError::is_permission);
                if perm {
                    return Err(e.context("the guard needs CAP_NET_ADMIN in the host's network namespace (cap_add: [NET_ADMIN], network_mode: host)"));
                }
                return Err(e);
            }
        }
    }
}

/// Run the guard: insert the rules (waiting for the chain), keep them, delete them on
/// SIGTERM/SIGINT. Exits non-zero when the rules cannot be inserted.
pub async fn run(lab: &str, bridges: &[String]) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(!bridges.is_empty(), "netguard needs at least one --bridge");
    let comment = comment(lab);
    // Handlers first: a stop during start-up still removes what was inserted.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let inserted = tokio::select! {
        r = insert_when_chain_exists(bridges, &comment) => Some(r),
        _ = term.recv() => None,
        _ = int.recv() => None,
    };
    match inserted {
        Some(Ok(inserted)) => {
            for b in bridges {
                let how = if inserted.contains(b) { "inserted" } else { "already present" };
                eprintln!("mtalab netguard: {} ({how}; comment {comment:?})", rule_text(b));
            }
            keep(bridges, &comment, &mut term, &mut int).await;
        }
        Some(Err(e)) => {
            let _ = remove(bridges.to_vec(), comment.clone()).await;
            return Err(e);
        }
        None => {}
    }
    let n = remove(bridges.to_vec(), comment.clone()).await?;
    eprintln!("mtalab netguard: {n} rule(s) commented {comment:?} deleted");
    Ok(ExitCode::SUCCESS)
}

/// Until SIGTERM/SIGINT: every [`RECHECK`], put back any rule that disappeared.
async fn keep(bridges: &[String], comment: &str, term: &mut tokio::signal::unix::Signal, int: &mut tokio::signal::unix::Signal) {
    let mut warned = false;
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = tokio::time::sleep(RECHECK) => {}
        }
        let (b, c) = (bridges.to_vec(), comment.to_string());
        match blocking(move || {
            let mut n = Nft::open()?;
            nft::ensure_same_bridge_rules(&mut n, &b, &c)
        })
        .await
        {
            Ok(again) => {
                for b in again {
                    eprintln!("mtalab netguard: {} was gone; inserted again", rule_text(&b));
                }
                warned = false;
            }
            Err(e) if !warned => {
                eprintln!("mtalab netguard: warning: cannot check the rules: {e:#}");
                warned = true;
            }
            Err(_) => {}
        }
    }
}

async fn remove(bridges: Vec<String>, comment: String) -> anyhow::Result<usize> {
    blocking(move || {
        let mut n = Nft::open()?;
        nft::remove_same_bridge_rules(&mut n, &bridges, Some(&comment))
    })
    .await
}

/// The guard's healthcheck (`--check`): exit 0 when every bridge has its rule.
pub fn check(bridges: &[String]) -> anyhow::Result<ExitCode> {
    let mut n = Nft::open()?;
    let missing = nft::missing_same_bridge_rules(&mut n, bridges)?;
    if missing.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("mtalab netguard: no rule yet for {}", missing.join(", "));
    Ok(ExitCode::FAILURE)
}

/// Delete every `DOCKER-USER -i B -o B -j ACCEPT` of these bridges, whatever its comment:
/// what a guard killed outright (or an older mtalab) left behind. `lab down` calls it after
/// the containers are gone. Returns how many were deleted; a missing chain means none.
pub fn remove_leftovers(bridges: &[String]) -> Result<usize, NftError> {
    let mut n = Nft::open()?;
    match nft::remove_same_bridge_rules(&mut n, bridges, None) {
        Err(e) if e.is_missing() => Ok(0),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comment_and_command() {
        assert_eq!(comment("q255991-x400-rras"), "mtalab lab q255991-x400-rras");
        assert!(comment(&"x".repeat(400)).len() <= nft::MAX_COMMENT);
        assert_eq!(command("l", &["b0".into(), "b1".into()]), ["lab", "netguard", "--lab", "l", "--bridge", "b0", "--bridge", "b1"]);
    }

    /// Inserts, lists (with `iptables -S DOCKER-USER`, which must show it as its own rule) and
    /// deletes a rule for a bridge name no interface has. Needs root and dockerd's chain;
    /// says SKIPPED otherwise.
    #[test]
    fn inserts_lists_and_deletes_a_rule_on_this_host() {
        let mut n = match Nft::open().and_then(|mut n| n.chain_exists().map(|e| (n, e))) {
            Ok((n, true)) => n,
            Ok((_, false)) => return eprintln!("SKIPPED: no chain ip filter DOCKER-USER on this host (Docker with iptables-nft makes it)"),
            Err(e) => return eprintln!("SKIPPED: cannot use nf_tables here: {e}"),
        };
        let bridge = format!("mtlt{:06x}-0", std::process::id() & 0xff_ffff);
        let bridges = vec![bridge.clone()];
        let c = comment("nft-test");
        assert_eq!(nft::ensure_same_bridge_rules(&mut n, &bridges, &c).unwrap(), bridges);
        // Idempotent: present, so not inserted twice.
        assert!(nft::ensure_same_bridge_rules(&mut n, &bridges, &c).unwrap().is_empty());
        let ours: Vec<_> = n.rules().unwrap().into_iter().filter(|r| r.is_same_bridge_accept(&bridge)).collect();
        assert_eq!(ours.len(), 1, "{ours:?}");
        assert_eq!(ours[0].comment.as_deref(), Some(c.as_str()));
        assert_eq!(check(&bridges).unwrap(), ExitCode::SUCCESS);
        match std::process::Command::new("iptables").args(["-w", "-S", "DOCKER-USER"]).output() {
            Ok(o) => {
                let text = String::from_utf8_lossy(&o.stdout);
                let want = format!("-A DOCKER-USER -i {bridge} -o {bridge} -m comment --comment \"{c}\" -j ACCEPT");
                assert!(text.lines().any(|l| l == want), "iptables -S DOCKER-USER does not list {want:?}:\n{text}");
                // Inserted ahead of dockerd's closing RETURN, as iptables -I puts it.
                let pos = |pat: &str| text.lines().position(|l| l.contains(pat));
                if let (Some(ours), Some(ret)) = (pos(&want), pos("-j RETURN")) {
                    assert!(ours < ret, "after RETURN:\n{text}");
                }
            }
            Err(e) => eprintln!("iptables not run ({e}); the rule was checked over netlink only"),
        }
        // Deleting by another comment leaves it; by its own, removes it.
        assert_eq!(nft::remove_same_bridge_rules(&mut n, &bridges, Some("mtalab lab other")).unwrap(), 0);
        assert_eq!(nft::remove_same_bridge_rules(&mut n, &bridges, Some(&c)).unwrap(), 1);
        assert!(!n.rules().unwrap().iter().any(|r| r.iifname.as_deref() == Some(bridge.as_str())));
        // A leftover with any comment goes with remove_leftovers.
        n.insert_same_bridge_accept(&bridge, "something else").unwrap();
        assert_eq!(remove_leftovers(&bridges).unwrap(), 1);
        if let Ok(o) = std::process::Command::new("iptables").args(["-w", "-S", "DOCKER-USER"]).output() {
            let text = String::from_utf8_lossy(&o.stdout);
            assert!(!text.contains(&bridge), "left behind:\n{text}");
        }
    }
}
