//! Running the `docker` and compose command-line tools.
//!
//! Compose is `docker compose` (the v2 plugin) when the Docker CLI has it, else the
//! standalone `docker-compose` (v1, as Debian packages it); both take the same arguments for
//! what the lab uses.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use anyhow::{Context, bail};

/// The docker and compose commands of this host.
#[derive(Debug, Clone)]
pub struct Docker {
    /// The compose command and its first arguments: `["docker", "compose"]` or `["docker-compose"]`.
    pub compose: Vec<String>,
}

fn output(cmd: &mut Command) -> std::io::Result<Output> {
    cmd.stdin(Stdio::null()).output()
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program().to_string_lossy().into_owned())
        .chain(cmd.get_args().map(|a| a.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Run a command; its stdout on success, an error with its stderr otherwise.
pub fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = output(cmd).with_context(|| format!("running {}", describe(cmd)))?;
    if !out.status.success() {
        bail!("{} failed ({}): {}", describe(cmd), out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Run a command without waiting on the async runtime's threads.
pub async fn run_async(mut cmd: Command) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || run(&mut cmd)).await.context("joining a docker command")?
}

/// A `docker …` command.
pub fn docker<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut c = Command::new("docker");
    c.args(args);
    c
}

impl Docker {
    /// Check that the Docker engine answers and find the compose command. The error says
    /// plainly what is missing.
    pub fn detect() -> anyhow::Result<Docker> {
        match output(Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"])) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!("the docker backend needs Docker: the `docker` command is not installed"),
            Err(e) => bail!("the docker backend needs Docker: cannot run `docker info`: {e}"),
            Ok(o) if !o.status.success() => bail!("the docker backend needs Docker: `docker info` failed: {}", String::from_utf8_lossy(&o.stderr).trim()),
            Ok(_) => {}
        }
        if output(Command::new("docker").args(["compose", "version"])).is_ok_and(|o| o.status.success()) {
            return Ok(Docker { compose: vec!["docker".into(), "compose".into()] });
        }
        // Found on PATH is enough: starting the Python v1 only to ask its version takes longer
        // than Docker takes to start a container.
        if in_path("docker-compose") {
            return Ok(Docker { compose: vec!["docker-compose".into()] });
        }
        bail!("the docker backend needs Docker Compose: neither `docker compose` nor `docker-compose` works here")
    }

    /// Whether Docker answers at all (for tests that skip without it).
    pub fn available() -> Result<(), String> {
        Docker::detect().map(|_| ()).map_err(|e| e.to_string())
    }

    /// A compose command for project `project` and file `file`.
    pub fn compose<I, S>(&self, project: &str, file: &Path, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut c = Command::new(&self.compose[0]);
        c.args(&self.compose[1..]).arg("-p").arg(project).arg("-f").arg(file).args(args);
        c
    }
}

/// Whether an executable of this name is on `PATH`.
fn in_path(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| std::fs::metadata(d.join(name)).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)))
}

/// Whether an image is present locally.
pub fn image_exists(image: &str) -> bool {
    output(&mut docker(["image", "inspect", "--format", "{{.Id}}", image])).is_ok_and(|o| o.status.success())
}

/// Containers of a compose project: (id, service), running or not.
pub fn project_containers(project: &str) -> anyhow::Result<Vec<(String, String)>> {
    let out = run(&mut docker([
        "ps",
        "-a",
        "--no-trunc",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--format",
        "{{.ID}} {{.Label \"com.docker.compose.service\"}}",
    ]))?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(id, svc)| (id.to_string(), svc.trim().to_string())))
        .collect())
}

/// Networks of a compose project (names).
pub fn project_networks(project: &str) -> anyhow::Result<Vec<String>> {
    let out = run(&mut docker(["network", "ls", "--filter", &format!("label=com.docker.compose.project={project}"), "--format", "{{.Name}}"]))?;
    Ok(out.lines().map(str::to_string).filter(|s| !s.is_empty()).collect())
}

/// Volumes of a compose project (names).
pub fn project_volumes(project: &str) -> anyhow::Result<Vec<String>> {
    let out = run(&mut docker(["volume", "ls", "-q", "--filter", &format!("label=com.docker.compose.project={project}")]))?;
    Ok(out.lines().map(str::to_string).filter(|s| !s.is_empty()).collect())
}
