//! The Internet Mail Service's SMTP listener: one tokio task per connection driving a
//! sans-IO [`mtalab_smtp::ServerSession`], deciding recipients by the directory and the
//! routing tables, and committing each message to the durable queue before its 250.
//!
//! Recipient policy (DESIGN §3): local domains → the recipient must exist (550 5.1.1);
//! remote domains → the client must be in `relay_from` (else 550 5.7.1) and the domain must
//! have a route (else 550 5.7.1): never an open relay.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use mtalab_smtp::{Reply, ServerConfig, ServerEvent, ServerSession};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::Ctx;
use crate::maildir::count_received;
use crate::queue::Envelope;

/// Accept connections until shutdown; beyond `ims.max_inbound_connections` sessions at once
/// (KB Q146562, read here once) a connection is answered `421 4.3.2` and closed (RFC 5321
/// §3.8).
pub async fn serve(listener: TcpListener, ctx: Arc<Ctx>) {
    let shutdown = ctx.shutdown.clone();
    let limit = ctx.cfg.read().expect("cfg lock").ims.as_ref().and_then(|i| i.max_inbound_connections).map(|n| Arc::new(tokio::sync::Semaphore::new(n)));
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    let ctx = ctx.clone();
                    let permit = match &limit {
                        Some(l) => match l.clone().try_acquire_owned() {
                            Ok(p) => Some(p),
                            Err(_) => {
                                tokio::spawn(too_many(stream, peer, ctx.hostname.clone()));
                                continue;
                            }
                        },
                        None => None,
                    };
                    tokio::spawn(async move {
                        if let Err(e) = session(stream, peer, ctx).await {
                            tracing::debug!(%peer, error = %e, "smtp session ended with an error");
                        }
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = crate::stopped(shutdown.clone()) => return,
        }
    }
}

/// Turn away a connection beyond the inbound limit: `421 4.3.2`, then close (RFC 5321 §3.8:
/// a server that cannot serve answers 421 at once; RFC 3463 X.3.2: not accepting messages).
async fn too_many(mut stream: TcpStream, peer: SocketAddr, hostname: String) {
    tracing::info!(%peer, "inbound connection refused: every inbound connection allowed is in use");
    let reply = format!("421 4.3.2 {hostname} Too many connections, try again later\r\n");
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = stream.write_all(reply.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

fn session_config(ctx: &Ctx) -> (ServerConfig, Duration, usize) {
    let cfg = ctx.cfg.read().expect("cfg lock");
    let ims = cfg.ims.as_ref().expect("IMS configured");
    (
        ServerConfig {
            hostname: ctx.hostname.clone(),
            greeting: "Microsoft Exchange Internet Mail Service (mtalab) ready".into(),
            max_message_size: ims.max_message_size,
            max_recipients: ims.max_recipients,
            max_errors: ims.max_errors,
            ..ServerConfig::default()
        },
        Duration::from_secs_f64(ims.idle_timeout_secs),
        ims.max_hops,
    )
}

#[tracing::instrument(name = "smtp", skip_all, fields(%peer))]
async fn session(mut stream: TcpStream, peer: SocketAddr, ctx: Arc<Ctx>) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (config, idle, max_hops) = session_config(&ctx);
    let mut s = ServerSession::new(config);
    let mut out = Vec::with_capacity(1024);
    let mut buf = vec![0u8; 16 * 1024];
    let mut lines = 0u64;
    let mut deadline = tokio::time::Instant::now() + idle;
    let shutdown = ctx.shutdown.clone();
    loop {
        // Answer every event the session produced.
        while let Some(ev) = s.poll_event() {
            decide(&ctx, &mut s, peer, ev, max_hops).await;
        }
        s.poll_transmit(&mut out);
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        if s.is_closed() {
            let _ = stream.shutdown().await;
            return Ok(());
        }
        tokio::select! {
            r = stream.read(&mut buf) => {
                let n = r?;
                if n == 0 {
                    return Ok(());
                }
                s.handle_input(&buf[..n]);
                if s.lines_received() != lines {
                    lines = s.lines_received();
                    deadline = tokio::time::Instant::now() + idle;
                }
            }
            _ = tokio::time::sleep_until(deadline) => s.on_timeout(),
            _ = crate::stopped(shutdown.clone()) => s.shutdown(),
        }
    }
}

async fn decide(ctx: &Arc<Ctx>, s: &mut ServerSession, peer: SocketAddr, ev: ServerEvent, max_hops: usize) {
    match ev {
        ServerEvent::Helo { .. } | ServerEvent::Reset | ServerEvent::Quit => {}
        ServerEvent::Mail { .. } => s.accept(None),
        ServerEvent::Rcpt { to } => {
            let router = ctx.router();
            if to.domain.is_empty() || router.is_local(&to.domain) {
                let known = to.local.eq_ignore_ascii_case("postmaster")
                    || ctx.directory.read().expect("dir lock").lookup_smtp(&to.local, &to.domain).is_some();
                if known {
                    s.accept(None)
                } else {
                    s.reject(Reply::enhanced(550, 5, 1, 1, format!("<{to}>: recipient unknown")))
                }
            } else if !router.may_relay(peer.ip()) {
                s.reject(Reply::enhanced(550, 5, 7, 1, format!("<{to}>: unable to relay for {} from {}", to.domain, ctx.shown_ip(peer.ip()))))
            } else if !router.has_route(&to.domain) && !ctx.mta.as_ref().is_some_and(|m| m.has_smtp_route(&to.domain)) {
                s.reject(Reply::enhanced(550, 5, 7, 1, format!("<{to}>: no route to {}: relaying denied", to.domain)))
            } else {
                s.accept(None)
            }
        }
        ServerEvent::Message { envelope, data } => {
            let hops = count_received(&data);
            if hops >= max_hops {
                s.reject(Reply::enhanced(554, 5, 4, 6, format!("too many hops ({hops} Received: headers): mail loop")));
                return;
            }
            let env = Envelope {
                id: ctx.queue.new_id(),
                from: envelope.from.to_string(),
                rcpts: dedup_rcpts(&envelope.rcpts),
                received: Utc::now(),
                peer: peer.ip().to_string(),
                helo: envelope.helo.clone(),
                dsn: false,
                x400: None,
                p1_apdu: false,
            };
            let data = with_received(&ctx.hostname, &format!("{} [{}]", envelope.helo, ctx.shown_ip(peer.ip())), &env, &data);
            let id = env.id.clone();
            match crate::delivery::enqueue(ctx, env, data).await {
                Ok(()) => s.accept(Some(&format!("OK queued as {id}"))),
                Err(e) => {
                    tracing::error!(error = %e, "queue commit failed");
                    s.reject(Reply::enhanced(451, 4, 3, 0, "local error: cannot store the message, try again later"));
                }
            }
        }
    }
}

/// Forward paths without repeats (compared case-insensitively), in the order given: a
/// recipient named twice gets one copy (RFC 5321 §3.3 leaves duplicates to the server).
fn dedup_rcpts(rcpts: &[mtalab_smtp::Mailbox]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    rcpts
        .iter()
        .map(|r| r.to_string())
        .filter(|r| seen.insert(r.to_ascii_lowercase()))
        .collect()
}

/// Prepend a `Received:` trace field (RFC 5321 §4.4) to a message.
pub fn with_received(hostname: &str, from: &str, env: &Envelope, data: &[u8]) -> Vec<u8> {
    let header = received_field(hostname, from, env);
    let mut out = Vec::with_capacity(header.len() + data.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// The `Received:` field [`with_received`] adds (RFC 5321 §4.4), CRLF included: `from` is
/// the sending host's part (`name [address]` and a comment), `env` gives the queue id, the
/// recipient (named when there is one) and the time. The X.400 gateway writes it at the head
/// of the message it makes ([`crate::mta::gateway::p1_to_rfc822`]).
pub fn received_field(hostname: &str, from: &str, env: &Envelope) -> String {
    let for_clause = match env.rcpts.as_slice() {
        [one] => format!("\r\n\tfor <{one}>"),
        _ => String::new(),
    };
    format!(
        "Received: from {from}\r\n\tby {hostname} (mtalab IMS) with ESMTP id {}{for_clause};\r\n\t{}\r\n",
        env.id,
        env.received.to_rfc2822()
    )
}
