//! Helpers: start `mtalab server` with a generated config, a raw SMTP client with reply
//! assertions, and admin API polling.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The mtalab binary under test.
pub fn mtalab() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mtalab"))
}

/// SMTP port used by test servers (each has its own address).
pub const SMTP: u16 = 2525;
/// Admin port used by test servers.
pub const ADMIN: u16 = 2526;

/// A running `mtalab server` child.
pub struct TestServer {
    pub ip: Ipv4Addr,
    pub dir: PathBuf,
    pub config: PathBuf,
    child: Option<Child>,
    _tmp: Option<tempfile::TempDir>,
}

/// Server config text for `name` at `ip`: site SiteT, domain site.test, mailboxes User1..User3;
/// `extra_ims` is appended inside `[ims]`, `extra` at the end.
pub fn config_text(name: &str, ip: Ipv4Addr, extra_ims: &str, extra: &str) -> String {
    format!(
        r#"
[organization]
name = "TestORG"
[site]
name = "Site{name}"
[server]
name = "{name}"
data_dir = "data"
time_scale = 0.01
[site_addressing]
smtp = "@{lname}.test"
x400 = {{ c = "US", p = "TestORG", o = "Site{name}" }}
[[recipients]]
alias = "User1"
given = "User"
surname = "One"
[[recipients]]
alias = "User2"
given = "User"
surname = "Two"
[ims]
listen = "{ip}:{SMTP}"
remote_port = {SMTP}
relay_from = ["127.77.0.0/16"]
retry_intervals_secs = [20]
{extra_ims}
[admin]
listen = "{ip}:{ADMIN}"
{extra}
"#,
        lname = name.to_ascii_lowercase()
    )
}

impl TestServer {
    /// Write the config into a fresh temp dir and start the server.
    pub fn start(name: &str, ip: Ipv4Addr, extra_ims: &str) -> TestServer {
        TestServer::start_with(name, ip, extra_ims, "")
    }

    /// As [`TestServer::start`], with `extra` appended after `[admin]` (e.g. an `[mta]`).
    pub fn start_with(name: &str, ip: Ipv4Addr, extra_ims: &str, extra: &str) -> TestServer {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let config = dir.join("server.toml");
        std::fs::write(&config, config_text(name, ip, extra_ims, extra)).unwrap();
        let mut s = TestServer { ip, dir, config, child: None, _tmp: Some(tmp) };
        s.spawn();
        s
    }

    /// Start (again) with the same config and data.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none());
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("server.log")).unwrap();
        let child = Command::new(mtalab())
            .args(["server", "--config"])
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.get("/health").is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("server at {} did not become healthy: {}", self.ip, self.log());
    }

    /// SIGKILL the process (a crash) and reap it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    pub fn smtp_addr(&self) -> SocketAddr {
        SocketAddr::from((self.ip, SMTP))
    }

    /// GET an admin path; None on any failure.
    pub fn get(&self, path: &str) -> Option<serde_json::Value> {
        http_get(SocketAddr::from((self.ip, ADMIN)), path)
    }

    /// Messages in a mailbox (admin API).
    pub fn mailbox(&self, alias: &str) -> Vec<serde_json::Value> {
        self.get(&format!("/mailboxes/{alias}")).and_then(|v| v.as_array().cloned()).unwrap_or_default()
    }

    /// Queue entries.
    pub fn queue(&self) -> Vec<serde_json::Value> {
        self.get("/queue").and_then(|v| v.as_array().cloned()).unwrap_or_default()
    }

    /// Maildir files of a mailbox, read from disk (works while the server is down).
    pub fn maildir_files(&self, alias: &str) -> Vec<Vec<u8>> {
        let d = self.dir.join("data/mailboxes").join(alias).join("new");
        let Ok(rd) = std::fs::read_dir(d) else { return vec![] };
        rd.filter_map(|e| e.ok()).map(|e| std::fs::read(e.path()).unwrap()).collect()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Minimal HTTP/1.1 GET returning parsed JSON.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<serde_json::Value> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    serde_json::from_str(body).ok()
}

/// Wait until `f` returns Some, up to `secs`.
pub fn wait_for<T>(secs: f64, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    loop {
        if let Some(t) = f() {
            return Some(t);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A raw SMTP client for scripted conversations.
pub struct Raw {
    pub w: TcpStream,
    r: BufReader<TcpStream>,
}

/// One reply: code and its lines' text.
#[derive(Debug, Clone)]
pub struct ReplyLines {
    pub code: u16,
    pub text: String,
}

impl ReplyLines {
    #[track_caller]
    pub fn assert_code(&self, code: u16) -> &Self {
        assert_eq!(self.code, code, "reply was {} {}", self.code, self.text);
        self
    }
    #[track_caller]
    pub fn assert_contains(&self, s: &str) -> &Self {
        assert!(self.text.contains(s), "reply {} {:?} lacks {s:?}", self.code, self.text);
        self
    }
}

impl Raw {
    /// Connect from `src` (a loopback address) and read the greeting.
    pub fn connect(to: SocketAddr, src: Option<Ipv4Addr>) -> Raw {
        let s = match src {
            None => TcpStream::connect(to).unwrap(),
            Some(ip) => socket2_connect(ip, to),
        };
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut c = Raw { w: s.try_clone().unwrap(), r: BufReader::new(s) };
        c.reply().assert_code(220);
        c
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).unwrap();
    }

    /// Send a line (CRLF added) and read one reply.
    pub fn cmd(&mut self, line: &str) -> ReplyLines {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// Read one (possibly multi-line) reply.
    pub fn reply(&mut self) -> ReplyLines {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            let n = self.r.read_line(&mut line).unwrap();
            assert!(n > 0, "connection closed while waiting for a reply (so far: {text:?})");
            let code: u16 = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("bad reply line {line:?}"));
            text.push_str(line.get(4..).unwrap_or("").trim_end());
            text.push(' ');
            if line.as_bytes().get(3) != Some(&b'-') {
                return ReplyLines { code, text: text.trim_end().to_string() };
            }
        }
    }

    /// True when the server closed the connection (EOF).
    pub fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.r.read(&mut b), Ok(0))
    }
}

fn socket2_connect(src: Ipv4Addr, to: SocketAddr) -> TcpStream {
    // std cannot bind a source address before connect; tokio's TcpSocket can.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let s = rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind(SocketAddr::from((src, 0))).unwrap();
        s.connect(to).await.unwrap().into_std().unwrap()
    });
    s.set_nonblocking(false).unwrap();
    s
}

/// Send one message with a raw session; returns the final reply.
pub fn send_message(to: SocketAddr, src: Option<Ipv4Addr>, from: &str, rcpt: &str, subject: &str) -> ReplyLines {
    let mut c = Raw::connect(to, src);
    c.cmd("EHLO client.test").assert_code(250);
    c.cmd(&format!("MAIL FROM:<{from}>")).assert_code(250);
    c.cmd(&format!("RCPT TO:<{rcpt}>")).assert_code(250);
    c.cmd("DATA").assert_code(354);
    c.send(format!("Subject: {subject}\r\nFrom: <{from}>\r\n\r\nbody of {subject}\r\n.\r\n").as_bytes());
    let r = c.reply();
    let _ = c.cmd("QUIT");
    r
}
