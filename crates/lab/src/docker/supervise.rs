//! `mtalab supervise -- ARGS…`: the first process of a server's container. It runs
//! `mtalab ARGS…` (the server) as its child, so that the emulated server can stop, crash and
//! start again while its host — the container, its network namespace and its addresses —
//! stays up, as a Windows host stays up while its Exchange services stop. A connection to a
//! stopped server is then refused at once, as on the local backend, instead of going
//! unanswered.
//!
//! Signals, sent with `docker kill -s SIGNAL <container>`:
//! - `SIGUSR2`: stop the server gracefully (SIGTERM to it); the container stays up.
//! - `SIGHUP`: kill the server (SIGKILL, a crash); the container stays up.
//! - `SIGUSR1`: start the server again (when it is not running).
//! - `SIGTERM`, `SIGINT` (`docker stop`, `compose down`): stop the server and exit with it.
//!
//! When the server exits without being asked to (a bad config at start-up), the supervisor
//! exits with its status, so the container stops and its log shows why.

use std::process::ExitCode;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};

fn spawn(args: &[String]) -> std::io::Result<Child> {
    let exe = std::env::current_exe()?;
    Command::new(exe).args(args).kill_on_drop(false).spawn()
}

fn signal_child(child: &Child, sig: Signal) {
    if let Some(pid) = child.id() {
        let _ = kill(Pid::from_raw(pid as i32), sig);
    }
}

/// Run the supervisor until SIGTERM/SIGINT or an unrequested exit of the server.
pub async fn supervise(args: Vec<String>) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(!args.is_empty(), "supervise needs the command to run, e.g. `mtalab supervise server --config FILE`");
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut child: Option<Child> = Some(spawn(&args)?);
    let mut asked_to_stop = false;
    // SIGUSR1 while a requested stop is still under way: start again once it has ended.
    let mut start_after_stop = false;
    loop {
        tokio::select! {
            status = async {
                match child.as_mut() {
                    Some(c) => c.wait().await,
                    None => std::future::pending().await,
                }
            } => {
                let status = status?;
                child = None;
                if asked_to_stop {
                    eprintln!("mtalab supervise: server stopped ({status}); the host stays up (SIGUSR1 starts it)");
                    asked_to_stop = false;
                    if std::mem::take(&mut start_after_stop) {
                        eprintln!("mtalab supervise: starting the server");
                        child = Some(spawn(&args)?);
                    }
                } else {
                    eprintln!("mtalab supervise: server exited by itself ({status})");
                    return Ok(ExitCode::from(status.code().map_or(1, |c| c.clamp(1, 255) as u8)));
                }
            }
            _ = usr1.recv() => {
                if child.is_none() {
                    eprintln!("mtalab supervise: starting the server");
                    child = Some(spawn(&args)?);
                } else if asked_to_stop {
                    start_after_stop = true;
                }
            }
            _ = usr2.recv() => {
                if let Some(c) = &child {
                    asked_to_stop = true;
                    signal_child(c, Signal::SIGTERM);
                }
            }
            _ = hup.recv() => {
                if let Some(c) = &child {
                    asked_to_stop = true;
                    signal_child(c, Signal::SIGKILL);
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    if let Some(mut c) = child {
        signal_child(&c, Signal::SIGTERM);
        let _ = c.wait().await;
    }
    Ok(ExitCode::SUCCESS)
}
