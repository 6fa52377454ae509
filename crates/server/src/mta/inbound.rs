//! Associations other MTAs open to this one, checked in Exchange's order (DESIGN §4,
//! KB Q189345, Q193380, Q197378):
//!
//! 1. The caller's IP against the Stack address of every local connector. No match → 9301.
//! 2. The reverse lookup of the IP against Stack host names. Still none → a second 9301 and
//!    the connection is dropped (after the caller's COTP CR, so a capture shows the attempt);
//!    nothing is transferred.
//! 3. The called selectors against the connector's incoming selectors, then the MTA bind:
//!    an unknown name or a wrong password → 51, a bind error (authentication-error) and 1293.
//!    The responder answers with its own name and password (Override tab).
//!
//! A recover (RTSE recovery, [`crate::mta::recovery`]) passes steps 1 to 3 up to the
//! selectors, then takes the place of the bind: accepted when this MTA kept the partial
//! transfer of the session connection it names (from this connector), else refused
//! (cannot-recover, 1293).
//!
//! Transfers are decoded and handed to the queue: messages converted to RFC 5322 for local
//! recipients and onward routing, reports converted into DSNs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use mtalab_osi::association::{Association, AssociationConfig, Event};
use mtalab_p1::{
    Conformance, MtaBindArgument, MtaBindError, MtaBindResult, MtsApdu, MtsIdentifier, NonDeliveryDiagnosticCode,
    NonDeliveryReasonCode, OrName, RecipientOutcome, Report, ReportType,
};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use crate::Ctx;
use crate::config::{Selectors, X400Connector};
use crate::events::catalog;
use crate::mta::assoc::Conn;
use crate::mta::{gateway, hex_address, scenario_address, stack_dn};
use crate::queue::{Envelope, X400Origin};

/// The least time an inbound association may sit idle (no input between transfers) before
/// it is taken for dead.
const MIN_IDLE_WAIT: Duration = Duration::from_secs(2);

/// How long an inbound association over connector `c` may stay silent between transfers:
/// the caller releases an idle association after its Disconnect timer, so an association
/// idle for Disconnect + Recovery timeout (on the time scale, at least [`MIN_IDLE_WAIT`]) has
/// lost its caller — a link that died without a disconnect. Within a transfer the Recovery
/// timeout alone applies (the association's own timer: "transfer data").
pub fn idle_wait(ctx: &Ctx, c: &X400Connector) -> Duration {
    ctx.scaled(c.overrides.disconnect + c.overrides.recovery_timeout).max(MIN_IDLE_WAIT)
}

/// Accept associations until shutdown.
pub async fn serve(listener: TcpListener, ctx: Arc<Ctx>) {
    let shutdown = ctx.shutdown.clone();
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    let ctx = ctx.clone();
                    tokio::spawn(async move { handle(stream, peer, ctx).await });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "MTA accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = crate::stopped(shutdown.clone()) => return,
        }
    }
}

/// Does a connector's Stack address name this IP (an IP literal, `ip:port`)?
fn stack_ip_matches(c: &X400Connector, ip: std::net::IpAddr) -> bool {
    let s = c.stack_address.trim();
    s.parse::<std::net::IpAddr>().is_ok_and(|a| a == ip) || s.parse::<SocketAddr>().is_ok_and(|a| a.ip() == ip)
}

/// Step 1 and 2: the connector this caller belongs to, logging 9301 as Exchange does.
async fn match_connector(ctx: &Ctx, peer: SocketAddr) -> Option<usize> {
    let m = ctx.mta.as_ref()?;
    let connectors = m.connectors.read().expect("mta connectors").clone();
    if let Some(i) = connectors.iter().position(|c| stack_ip_matches(c, peer.ip())) {
        return Some(i);
    }
    let (dn, shown) = {
        let cfg = ctx.cfg.read().expect("cfg lock");
        (stack_dn(&cfg), scenario_address(&cfg, peer.ip()))
    };
    ctx.events.log(catalog::MTA_GATEWAY_NOT_FOUND, &[&dn, &hex_address(shown)]);
    // Step 2: the reverse lookup, compared with Stack host names.
    if let Some(r) = &ctx.resolver
        && let Ok(Some(name)) = r.reverse(peer.ip()).await
    {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(i) = connectors.iter().position(|c| {
            let s = c.stack_address.trim().trim_end_matches('.').to_ascii_lowercase();
            s.parse::<std::net::IpAddr>().is_err() && (s == name || name.split('.').next() == Some(s.as_str()))
        }) {
            return Some(i);
        }
    }
    ctx.events.log(catalog::MTA_GATEWAY_NOT_FOUND, &[&dn, &hex_address(shown)]);
    None
}

fn local_association_config(ctx: &Ctx, c: Option<&X400Connector>) -> AssociationConfig {
    let mut a = match c {
        Some(c) => crate::mta::outbound::association_config(ctx, c),
        None => AssociationConfig::default(),
    };
    let local = ctx.mta.as_ref().map(|m| m.cfg.read().expect("mta cfg").selectors.clone()).unwrap_or_default();
    a.local_tsap = Selectors::octets(&local.tsel).unwrap_or_default();
    a.local_ssap = Selectors::octets(&local.ssel).unwrap_or_default();
    a.local_psap = Selectors::octets(&local.psel).unwrap_or_default();
    a
}

#[tracing::instrument(name = "p1-in", skip_all, fields(%peer))]
async fn handle(mut stream: TcpStream, peer: SocketAddr, ctx: Arc<Ctx>) {
    let Some(m) = ctx.mta.as_ref() else { return };
    // The local lab's emulated link towards the caller (crate::links): over a cut link the
    // caller's SYN would not have arrived; hold the connection unanswered until the link is
    // back (its SYN retransmitted) or the caller has long given up.
    let mut link = {
        let cfg = ctx.cfg.read().expect("cfg lock");
        ctx.links.path(&cfg.server, peer.ip())
    };
    if let Some(l) = link.as_mut()
        && !l.state().up
        && !l.wait_up(crate::links::INBOUND_HOLD).await
    {
        tracing::debug!(%peer, link = %l.interface, "connection over a cut link; never answered");
        let mut l = link.take().expect("link");
        let _ = l.wait_up(crate::links::PARK_MAX).await;
        drop(stream);
        return;
    }
    let Some(ci) = match_connector(&ctx, peer).await else {
        // Dropped: wait for the caller's first TPDU (its CR) so the attempt is on the wire,
        // then close without answering.
        let mut buf = [0u8; 512];
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await;
        drop(stream);
        return;
    };
    let c = m.connector(ci).expect("matched connector exists");
    let mut acfg = local_association_config(&ctx, Some(&c));
    // Confirm each transfer (AEA) only once it is in the queue on disk.
    acfg.defer_transfer_confirmation = true;
    let assoc = match Association::responder(acfg) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "cannot make a responder");
            return;
        }
    };
    let mut conn = Conn::new(stream, assoc, peer).with_link(link);
    let (_listed, progress) = m.transfers.list(ci, "in", peer);
    conn.set_progress(Some(progress));
    let shown = ctx.shown_ip(peer.ip());
    // Establishment.
    loop {
        match conn.next_event(Duration::from_secs(60), "the association request").await {
            Ok(Event::AssociateIndication(ind)) => {
                let incoming = c.incoming.clone().unwrap_or_else(|| c.outgoing.clone());
                let want = |s: &str| Selectors::octets(s).unwrap_or_default();
                let selectors_ok = (incoming.tsel.is_empty() || ind.called_tsap == want(&incoming.tsel))
                    && (incoming.ssel.is_empty() || ind.called_ssap == want(&incoming.ssel))
                    && (incoming.psel.is_empty() || ind.called_psap == want(&incoming.psel));
                if let Some(session) = &ind.recover {
                    let partial = if selectors_ok { m.recoveries.claim(ci, session).await } else { None };
                    let Some(partial) = partial else {
                        let why = if selectors_ok {
                            "a recover of a session connection whose transfer is not kept here"
                        } else {
                            "the called selectors do not match the connector's incoming selectors"
                        };
                        ctx.events.log(catalog::MTA_REMOTE_ASSOC_REFUSED, &[&shown.to_string(), why]);
                        let _ = conn.assoc.refuse_recovery();
                        conn.finish(Duration::from_secs(2)).await;
                        return;
                    };
                    let (checkpoints, octets) = (partial.checkpoints(), partial.octets());
                    if let Err(e) = conn.assoc.accept_recovery(partial) {
                        tracing::warn!(error = %e, "accepting the recover failed");
                        return;
                    }
                    m.state.lock().expect("mta state")[ci].resumed_in_total += 1;
                    tracing::info!(connector = %c.name, checkpoints, octets, "recover accepted: the transfer resumes");
                    break;
                }
                let bind = MtaBindArgument::decode(&ind.bind_argument);
                let (name, pw_ok) = match &bind {
                    Ok(MtaBindArgument::Authenticated { initiator_name, initiator_credentials, .. }) => (
                        initiator_name.as_str().to_string(),
                        initiator_credentials.password().map_or(c.remote_mta_password.is_empty(), |p| p.matches(&c.remote_mta_password)),
                    ),
                    Ok(MtaBindArgument::Unauthenticated) => ("(unauthenticated)".to_string(), false),
                    Err(e) => (format!("(unreadable bind argument: {e})"), false),
                };
                let why: Option<String> = if !selectors_ok {
                    Some("the called selectors do not match the connector's incoming selectors".to_string())
                } else if name != c.remote_mta_name {
                    Some(format!("MTA name {name} is not the remote MTA name {} of connector {}", c.remote_mta_name, c.name))
                } else if !pw_ok {
                    Some(format!("the password does not match connector {}", c.name))
                } else {
                    None
                };
                if let Some(why) = why {
                    ctx.events.log(catalog::MTA_UNKNOWN_BIND, &[&name, &shown.to_string(), &why]);
                    ctx.events.log(catalog::MTA_REMOTE_ASSOC_REFUSED, &[&shown.to_string(), &why]);
                    let _ = conn.assoc.refuse(MtaBindError::AUTHENTICATION_ERROR.encode());
                    // Let the refusal reach the caller, and the caller close first.
                    conn.finish(Duration::from_secs(2)).await;
                    return;
                }
                let server_name = ctx.cfg.read().expect("cfg lock").server.name.clone();
                let (lname, lpw) = m.local_credentials(&c, &server_name);
                let result = MtaBindResult::simple(&lname, &lpw).encode().unwrap_or_else(|_| vec![0x05, 0x00]);
                if let Err(e) = conn.assoc.accept(result) {
                    tracing::warn!(error = %e, "accept failed");
                    return;
                }
                tracing::info!(connector = %c.name, mta = %name, "association accepted");
                break;
            }
            Ok(Event::Aborted { reason }) => {
                ctx.events.log(catalog::MTA_ASSOC_ABORTED, &[&shown.to_string(), &reason.to_string()]);
                return;
            }
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "association attempt ended");
                return;
            }
        }
    }
    // Transfers until release. A recover naming this association's session connection ends
    // it (its caller took it for broken); what it received of a broken transfer is kept.
    let idle = idle_wait(&ctx, &c);
    let sender = Sender::new(&ctx, Some(ci), peer);
    let receiving = conn.assoc.peer_session().cloned().map(|s| m.recoveries.receiving(ci, s));
    let stop = receiving.as_ref().map(|r| r.stop.clone());
    let superseded = async {
        match &stop {
            Some(s) => s.notified().await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(superseded);
    loop {
        let event = tokio::select! {
            biased;
            e = conn.next_event(idle, "a transfer or release") => e,
            () = &mut superseded => {
                ctx.events.log(catalog::MTA_ASSOC_ABORTED, &[&c.name, "a recover of its session connection arrived: the caller took it for broken"]);
                conn.assoc.abort();
                crate::mta::recovery::keep_partial(&ctx, m, ci, &c, &mut conn.assoc);
                drop(conn);
                return;
            }
        };
        match event {
            Ok(Event::TransferIndication { apdu }) => match process_apdu(&ctx, &sender, apdu).await {
                Ok(()) => conn.assoc.confirm_transfer(),
                Err(e) => {
                    // Not decoded or not stored: abort, so the sender keeps the message and
                    // tries again.
                    tracing::error!(error = %format!("{e:#}"), "transfer not accepted; aborting the association");
                    ctx.events.log(catalog::MTA_ASSOC_ABORTED, &[&c.name, &format!("transfer not accepted: {e:#}")]);
                    conn.abort().await;
                    return;
                }
            },
            Ok(Event::Released) => {
                conn.finish(Duration::from_secs(2)).await;
                return;
            }
            Ok(Event::Aborted { reason }) => {
                ctx.events.log(catalog::MTA_ASSOC_ABORTED, &[&c.name, &reason.to_string()]);
                crate::mta::recovery::keep_partial(&ctx, m, ci, &c, &mut conn.assoc);
                return;
            }
            Ok(_) => {}
            Err(crate::mta::assoc::DriveError::Eof) => {
                // The association ended, or the caller closed the connection under it: an
                // activity under way is broken (closed here without a word: the connection
                // is gone; what a closed association still had to send goes as before).
                let open = !conn.assoc.is_closed();
                conn.assoc.abort();
                crate::mta::recovery::keep_partial(&ctx, m, ci, &c, &mut conn.assoc);
                if open {
                    conn.drop_connection().await;
                }
                return;
            }
            Err(e) => {
                // Silent for longer than the idle limit (or a protocol error): the caller is
                // gone. Abort our half; a partial activity is kept for a recover.
                ctx.events.log(catalog::MTA_ASSOC_ABORTED, &[&c.name, &e.to_string()]);
                conn.assoc.abort();
                crate::mta::recovery::keep_partial(&ctx, m, ci, &c, &mut conn.assoc);
                conn.abort().await;
                return;
            }
        }
    }
}

/// The sending end of one association, as the APDUs it carries are recorded: worked out
/// once for all its transfers, not for each message.
pub struct Sender {
    /// Its address.
    pub addr: SocketAddr,
    /// The remote MTA's name (its connector's), else the IP address.
    pub mta: String,
    /// `x400:IP`: the queue envelope's peer.
    pub envelope_peer: String,
    /// The IP address shown in `Received:` fields (in a lab, the scenario's address).
    pub shown_ip: String,
}

impl Sender {
    /// The sender at `addr` over connector `ci` (None: not known).
    pub fn new(ctx: &Ctx, ci: Option<usize>, addr: SocketAddr) -> Sender {
        let mta = ci.and_then(|i| ctx.mta.as_ref().and_then(|m| m.connector(i))).map(|c| c.remote_mta_name.clone()).unwrap_or_else(|| addr.ip().to_string());
        Sender { addr, mta, envelope_peer: format!("x400:{}", addr.ip()), shown_ip: ctx.shown_ip(addr.ip()).to_string() }
    }
}

/// Handle one MTS-APDU received from `sender`. Errors when it could not be decoded or not
/// be stored: the caller then must not confirm the transfer. A message whose content cannot
/// be converted is answered by a non-delivery report to its originator (queued before the
/// confirmation).
pub async fn process_apdu(ctx: &Arc<Ctx>, sender: &Sender, apdu: Vec<u8>) -> anyhow::Result<()> {
    let (conn_name, peer) = (&sender.mta, sender.addr);
    // The envelope's O/R names, noted for the IPM heading, which names them again.
    let mut names = mtalab_p1::OrNameMemo::default();
    match MtsApdu::decode_vec_noting(apdu, &mut names) {
        Ok(MtsApdu::Message(mut msg)) => {
            // The identifier's domain in mnemonic form, made once: the text identifier and
            // the queue file's X.400 origin both hold it.
            let gdi = msg.envelope.message_identifier.global_domain_identifier.to_mnemonic();
            let id = gateway::mts_id_text(&gdi, &msg.envelope.message_identifier.local_identifier);
            let rcpts: Vec<String> = msg.envelope.per_recipient_fields.iter().map(|p| p.recipient_name.to_mnemonic()).collect();
            let Some((claim, fresh)) = claim(ctx, conn_name, &id, &rcpts).await else { return Ok(()) };
            if fresh.len() < rcpts.len() {
                // Some recipients were accepted with an earlier transfer of this message.
                let keep: std::collections::HashSet<usize> = fresh.iter().copied().collect();
                let mut i = 0;
                msg.envelope.per_recipient_fields.retain(|_| {
                    i += 1;
                    keep.contains(&(i - 1))
                });
            }
            let carried: Vec<String> = fresh.iter().map(|&i| rcpts[i].clone()).collect();
            accept_message(ctx, sender, msg, names, (&id, gdi), claim, carried).await.context("cannot store the transfer")
        }
        Ok(MtsApdu::Report(r)) => {
            let id = gateway::mts_id(&r.envelope.report_identifier);
            let rcpts = vec![r.envelope.report_destination_name.to_mnemonic()];
            let Some((claim, _)) = claim(ctx, conn_name, &id, &rcpts).await else { return Ok(()) };
            accept_report(ctx, r).await.context("cannot store the transfer")?;
            record(claim, rcpts, false).await;
            Ok(())
        }
        Ok(MtsApdu::Probe(p)) => accept_probe(ctx, peer, p).await.context("cannot store the transfer"),
        // Valid BER, but not an MTS-APDU this MTA can read: there is no originator to report
        // to, so it is not confirmed. The caller aborts the association; the sender keeps the
        // message, tries again and, after its Max transfer retries, reports it undeliverable.
        Err(e) => {
            tracing::warn!(%peer, error = %e, "undecodable MTS-APDU");
            Err(anyhow::anyhow!("undecodable MTS-APDU: {e}"))
        }
    }
}

/// Look a transfer up in the record of accepted MTS identifiers ([`crate::mta::dedup`]):
/// None when every recipient was accepted before (the transfer is then confirmed and nothing
/// delivered), else the claim to commit after the queue commit and the recipients not
/// accepted yet (indices into `rcpts`).
async fn claim(ctx: &Arc<Ctx>, from_mta: &str, id: &str, rcpts: &[String]) -> Option<(crate::mta::dedup::Claim, Vec<usize>)> {
    let m = ctx.mta.as_ref()?;
    match m.dedup.begin(from_mta, id, rcpts).await {
        crate::mta::dedup::Begin::New(c, fresh) => Some((c, fresh)),
        crate::mta::dedup::Begin::Duplicate => {
            tracing::info!(mta = %from_mta, mts_id = %id, "transfer sent again after a lost confirmation: already accepted, confirmed without delivering it twice");
            None
        }
    }
}

/// After the queue commit: record the accepted MTS identifier before the transfer is
/// confirmed. When `in_queue` (the queue file carries the sending MTA, the identifier and
/// every recipient in `rcpts`), the line goes to disk before that file is removed, not now;
/// else it is fsynced now ([`crate::mta::dedup`], "Durability"). A failure to write it is
/// logged (the entry stays in memory; only a restart in between could then let a re-sent
/// transfer through twice).
async fn record(claim: crate::mta::dedup::Claim, rcpts: Vec<String>, in_queue: bool) {
    if in_queue {
        claim.record(&rcpts);
        return;
    }
    // Not `on_disk`: the fsync may be the turn of a task that gathers lines
    // (`Dedup::sync_async`), which a worker held here could keep from running.
    match tokio::task::spawn_blocking(move || claim.commit(&rcpts)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "cannot record an accepted MTS identifier on disk"),
        Err(e) => tracing::error!(error = %e, "recording an accepted MTS identifier failed"),
    }
}

/// Convert and queue a message received from `sender`, whose MTS identifier in text form
/// is `mts_id` ([`gateway::mts_id`]; `mts_gdi`: its domain's part; `names`: the O/R names its
/// decoding noted, for its IPM heading's), and record that
/// identifier (`claim`, for the recipients `carried`) before the message is handed to
/// delivery. When one queue file carries every recipient (see [`X400Origin`]) the record is
/// not fsynced now; when some or all of them are answered otherwise (a non-delivery report,
/// content that cannot be converted) it is.
async fn accept_message(
    ctx: &Arc<Ctx>,
    sender: &Sender,
    msg: mtalab_p1::Message,
    mut names: mtalab_p1::OrNameMemo,
    (mts_id, mts_gdi): (&str, String),
    claim: crate::mta::dedup::Claim,
    carried: Vec<String>,
) -> anyhow::Result<()> {
    let from_mta = sender.mta.as_str();
    let converted = {
        let dir = ctx.directory.read().expect("dir lock");
        let router = ctx.router();
        // The originator's mnemonic goes into the queue file's X.400 origin; made once.
        let originator = msg.envelope.originator_name.to_mnemonic();
        let from = gateway::or_to_smtp_mnemonic(&msg.envelope.originator_name.address, &originator, &dir);
        let mut known = vec![(&msg.envelope.originator_name.address, from.clone())];
        let mut rcpts = Vec::new();
        let mut unknown = Vec::new();
        let mut origin_rcpts = Vec::new();
        for (i, p) in msg.envelope.per_recipient_fields.iter().enumerate() {
            // `carried` holds the mnemonic of each recipient left in the envelope, in order.
            let mnemonic = carried.get(i).cloned().unwrap_or_else(|| p.recipient_name.to_mnemonic());
            let smtp = gateway::or_to_smtp_mnemonic(&p.recipient_name.address, &mnemonic, &dir);
            known.push((&p.recipient_name.address, smtp.clone()));
            if deliverable(ctx, &router, &dir, &smtp) {
                rcpts.push(smtp);
                origin_rcpts.push(mnemonic);
            } else {
                unknown.push(i);
            }
        }
        let origin = X400Origin {
            originator,
            mts_gdi,
            mts_local: msg.envelope.message_identifier.local_identifier.to_string(),
            recipients: origin_rcpts,
        };
        let env = Envelope {
            id: ctx.queue.new_id(),
            from,
            rcpts,
            received: Utc::now(),
            peer: sender.envelope_peer.clone(),
            helo: from_mta.to_string(),
            dsn: false,
            x400: Some(origin),
            p1_apdu: false,
        };
        // This server's Received: field goes first, written into the message's own buffer.
        let received = format!("{from_mta} [{}] (X.400 MTA {from_mta})\r\n\tvia X.400 P1 mts-id {mts_id}", sender.shown_ip);
        let head = crate::ims::received_field(&ctx.hostname, &received, &env);
        (gateway::p1_to_rfc822(&msg, &dir, &known, mts_id, &head, &mut names), env, unknown)
    };
    let (data, env, unknown) = converted;
    let unrecognised = |i: usize| RecipientOutcome {
        recipient: i,
        report_type: ReportType::NonDelivery {
            reason: NonDeliveryReasonCode::TRANSFER_FAILURE,
            diagnostic: Some(NonDeliveryDiagnosticCode::UNRECOGNISED_OR_NAME),
        },
        supplementary_information: Some("recipient not found in the directory".into()),
    };
    let data = match data {
        Ok(d) => d,
        Err(e) => {
            // Content this gateway cannot read as an IPM: every recipient goes back to the
            // originator in a non-delivery report (reason conversion-not-performed, diagnostic
            // content-syntax-error, X.411's NonDeliveryReasonCode and NonDeliveryDiagnosticCode),
            // queued before the transfer is confirmed, so that nothing confirmed is dropped
            // unreported.
            tracing::warn!(error = %e, mts_id, "X.400 message content cannot be converted; non-delivery report queued");
            let outcomes: Vec<RecipientOutcome> = (0..msg.envelope.per_recipient_fields.len())
                .map(|i| {
                    if unknown.contains(&i) {
                        return unrecognised(i);
                    }
                    RecipientOutcome {
                        recipient: i,
                        report_type: ReportType::NonDelivery {
                            reason: NonDeliveryReasonCode::CONVERSION_NOT_PERFORMED,
                            diagnostic: Some(NonDeliveryDiagnosticCode::CONTENT_SYNTAX_ERROR),
                        },
                        supplementary_information: Some(supplementary(&format!("content not converted to RFC 5322: {e}"))),
                    }
                })
                .collect();
            queue_report(ctx, &msg, &outcomes).await?;
            record(claim, carried, false).await;
            return Ok(());
        }
    };
    if !unknown.is_empty() {
        let outcomes: Vec<RecipientOutcome> = unknown.iter().map(|&i| unrecognised(i)).collect();
        queue_report(ctx, &msg, &outcomes).await?;
    }
    if env.rcpts.is_empty() {
        record(claim, carried, false).await;
        return Ok(());
    }
    let (env, data) = crate::delivery::commit(ctx, env, data).await?;
    // Before delivery can remove the queue file (which syncs the record first).
    record(claim, carried, unknown.is_empty()).await;
    crate::delivery::submit(ctx, env, Some(data));
    Ok(())
}

/// `text` as supplementary information of a report: PrintableString (X.680 §41.4; any other
/// character becomes a space) of at most 256 characters (X.411's
/// ub-supplementary-info-length).
fn supplementary(text: &str) -> String {
    text.chars().take(256).map(|c| if mtalab_p1::ber::is_printable_char(c) { c } else { ' ' }).collect()
}

/// Whether mail for `smtp` (a recipient's address after the gateway's mapping) would be
/// delivered here or routed on: a mailbox of this site, or a domain with an IMS or X.400
/// route. Encapsulated X.400 addresses (`IMCEAX400-…`) are not.
fn deliverable(ctx: &Ctx, router: &crate::routing::Router, dir: &mtalab_directory::Directory, smtp: &str) -> bool {
    match smtp.rsplit_once('@') {
        Some((l, d)) if router.is_local(d) => dir.lookup_smtp(l, d).is_some(),
        Some((_, d)) if !smtp.starts_with("IMCEAX400-") => router.has_route(d) || ctx.mta.as_ref().is_some_and(|m| m.has_smtp_route(d)),
        _ => false,
    }
}

/// A probe (X.411 §12.2.1.2): nothing is delivered; a report goes back to the originator
/// with, per recipient, a delivery report when a message would be delivered or routed on
/// from here, else a non-delivery report (unrecognised O/R name).
async fn accept_probe(ctx: &Arc<Ctx>, peer: SocketAddr, probe: mtalab_p1::ProbeTransferEnvelope) -> anyhow::Result<()> {
    let now = Utc::now();
    let outcomes: Vec<RecipientOutcome> = {
        let dir = ctx.directory.read().expect("dir lock");
        let router = ctx.router();
        probe
            .per_recipient_fields
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let smtp = gateway::or_to_smtp(&p.recipient_name.address, &dir);
                let report_type = if deliverable(ctx, &router, &dir, &smtp) {
                    ReportType::Delivery { message_delivery_time: now, type_of_mts_user: mtalab_p1::TypeOfMtsUser::PUBLIC }
                } else {
                    ReportType::NonDelivery {
                        reason: NonDeliveryReasonCode::TRANSFER_FAILURE,
                        diagnostic: Some(NonDeliveryDiagnosticCode::UNRECOGNISED_OR_NAME),
                    }
                };
                RecipientOutcome { recipient: i, report_type, supplementary_information: None }
            })
            .collect()
    };
    tracing::info!(%peer, probe = %probe.probe_identifier.local_identifier, recipients = outcomes.len(), "probe received; reporting");
    if outcomes.is_empty() {
        return Ok(());
    }
    let (gdi, report_id) = report_identifier(ctx);
    let report = Report::generate_for_probe(&probe, report_id, gdi, now, now, &outcomes).map_err(|e| anyhow::anyhow!("probe report: {e}"))?;
    queue_report_apdu(ctx, report, &probe.originator_name, &probe.probe_identifier.local_identifier, &probe.per_recipient_fields).await
}

/// This MTA's global domain identifier and a fresh report identifier.
fn report_identifier(ctx: &Ctx) -> (mtalab_p1::GlobalDomainIdentifier, MtsIdentifier) {
    let gdi = gateway::gdi_of(&ctx.cfg.read().expect("cfg lock").site_addressing.x400);
    let local = ctx.queue.unique_id().chars().take(32).collect();
    (gdi.clone(), MtsIdentifier { global_domain_identifier: gdi, local_identifier: local })
}

/// Queue a non-delivery report about `subject` to its originator (event 290 per recipient).
pub async fn queue_report(ctx: &Arc<Ctx>, subject: &mtalab_p1::Message, outcomes: &[RecipientOutcome]) -> anyhow::Result<()> {
    let (gdi, report_id) = report_identifier(ctx);
    let now = Utc::now();
    let report = Report::generate(subject, report_id, gdi, now, now, outcomes).map_err(|e| anyhow::anyhow!("report: {e}"))?;
    let env = &subject.envelope;
    queue_report_apdu(ctx, report, &env.originator_name, &env.message_identifier.local_identifier, &env.per_recipient_fields).await
}

/// Log event 290 for each non-delivery in `report` and queue it, as an MTS-APDU, to
/// `destination`. `subject_id` and `recipients` are the subject's local identifier and
/// per-recipient fields (for the events).
async fn queue_report_apdu(
    ctx: &Arc<Ctx>,
    report: Report,
    destination: &mtalab_p1::OrName,
    subject_id: &str,
    recipients: &[mtalab_p1::PerRecipientFields],
) -> anyhow::Result<()> {
    let now = Utc::now();
    for p in &report.content.per_recipient_fields {
        if let ReportType::NonDelivery { reason, diagnostic } = &p.last_trace_information.report_type {
            let rcpt = recipients
                .iter()
                .find(|r| r.originally_specified_recipient_number == p.originally_specified_recipient_number)
                .map(|r| r.recipient_name.to_mnemonic())
                .unwrap_or_default();
            ctx.events.log(catalog::MTA_NDR, &[&reason.0.to_string(), &diagnostic.map_or("none".into(), |d| d.0.to_string()), subject_id, &rcpt]);
        }
    }
    let data = MtsApdu::Report(report).encode(Conformance::default()).map_err(|e| anyhow::anyhow!("report: {e}"))?;
    let env = Envelope {
        id: ctx.queue.new_id(),
        from: String::new(),
        rcpts: vec![format!("x400:{}", destination.to_mnemonic())],
        received: now,
        peer: "local".into(),
        helo: ctx.hostname.clone(),
        dsn: true,
        x400: None,
        p1_apdu: true,
    };
    crate::delivery::enqueue(ctx, env, data).await
}

/// RFC 3463 status for an X.400 non-delivery (RFC 2156 §4.7's spirit).
pub fn status_of(reason: NonDeliveryReasonCode, diagnostic: Option<NonDeliveryDiagnosticCode>) -> &'static str {
    match diagnostic {
        Some(NonDeliveryDiagnosticCode::UNRECOGNISED_OR_NAME) => "5.1.1",
        Some(NonDeliveryDiagnosticCode::AMBIGUOUS_OR_NAME) => "5.1.4",
        Some(NonDeliveryDiagnosticCode::MTS_CONGESTION) => "4.4.5",
        Some(NonDeliveryDiagnosticCode::LOOP_DETECTED) => "5.4.6",
        Some(NonDeliveryDiagnosticCode::MAXIMUM_TIME_EXPIRED) => "4.4.7",
        Some(NonDeliveryDiagnosticCode::CONTENT_TOO_LONG) => "5.3.4",
        Some(NonDeliveryDiagnosticCode::TRANSFER_ATTEMPTS_LIMIT_REACHED) => "4.4.1",
        _ if reason == NonDeliveryReasonCode::UNABLE_TO_TRANSFER => "5.4.4",
        // RFC 3463 §3.7: conversion failed.
        _ if reason == NonDeliveryReasonCode::CONVERSION_NOT_PERFORMED => "5.6.5",
        _ => "5.0.0",
    }
}

async fn accept_report(ctx: &Arc<Ctx>, r: Report) -> anyhow::Result<()> {
    let (to, rows) = {
        let dir = ctx.directory.read().expect("dir lock");
        let to = gateway::or_to_smtp(&r.envelope.report_destination_name.address, &dir);
        let rows: Vec<crate::dsn::FailedRcpt> = r
            .content
            .per_recipient_fields
            .iter()
            .map(|p| {
                let rcpt = gateway::or_to_smtp(&p.actual_recipient_name.address, &dir);
                let (status, diag) = match &p.last_trace_information.report_type {
                    ReportType::NonDelivery { reason, diagnostic } => (
                        status_of(*reason, *diagnostic).to_string(),
                        format!(
                            "X-X400; non-delivery reason code {}, diagnostic code {}{}",
                            reason.0,
                            diagnostic.map_or("none".into(), |d| d.0.to_string()),
                            p.supplementary_information.as_ref().map(|s| format!(" ({s})")).unwrap_or_default()
                        ),
                    ),
                    ReportType::Delivery { message_delivery_time, .. } => ("2.0.0".to_string(), format!("X-X400; delivered {}", message_delivery_time.to_rfc2822())),
                };
                crate::dsn::FailedRcpt { rcpt, status, diagnostic: diag, remote_mta: None }
            })
            .collect();
        (to, rows)
    };
    if to.is_empty() || rows.is_empty() {
        return Ok(());
    }
    let subject_id = gateway::mts_id(&r.content.subject_identifier);
    let original = format!(
        "Subject: {}\r\nX-MS-Exchange-MTS-ID: {subject_id}\r\n\r\n",
        r.content.content_identifier.clone().unwrap_or_default()
    );
    let postmaster = ctx.postmaster();
    let body = crate::dsn::build(&crate::dsn::DsnInput {
        reporting_mta: &ctx.hostname,
        postmaster: &postmaster,
        to: &to,
        arrival: Utc::now(),
        original_id: &r.content.subject_identifier.local_identifier,
        original: original.as_bytes(),
        failed: &rows,
    });
    let env = Envelope {
        id: ctx.queue.new_id(),
        from: String::new(),
        rcpts: vec![to],
        received: Utc::now(),
        peer: "local".into(),
        helo: ctx.hostname.clone(),
        dsn: true,
        x400: None,
        p1_apdu: false,
    };
    let data = crate::ims::with_received(&ctx.hostname, "local (X.400 report)", &env, &body);
    crate::delivery::enqueue(ctx, env, data).await
}

/// The O/R name of a queue recipient written `x400:<mnemonic>`.
pub fn x400_rcpt(r: &str) -> Option<OrName> {
    r.strip_prefix("x400:").and_then(|m| OrName::parse_mnemonic(m).ok())
}
