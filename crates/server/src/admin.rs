//! The admin API: HTTP/JSON on loopback, the runtime face of the Administrator program.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/health` | `{"status":"ok","server":…,"site":…,"services":{…},"mailbox_deliveries":N}` (N: messages this process delivered into mailboxes) |
//! | GET | `/queue` | queued messages with per-recipient outcomes, attempts, next attempt |
//! | GET | `/mailboxes` | `[{"alias":…,"count":…}]` |
//! | GET | `/mailboxes/{alias}` | messages in the mailbox (subject, from, hops, …) |
//! | GET | `/mailboxes/{alias}/{id}` | the raw message |
//! | GET | `/events?since=N&id=ID` | Application Log records after record N |
//! | GET | `/recipients` | the directory's recipients with their proxy addresses |
//! | GET | `/config` | the current configuration (JSON) |
//! | POST | `/actions/email-domain` | `{"domain":…,"hosts":[…]}` sets an E-Mail Domain entry; no hosts removes it |
//! | POST | `/actions/ims-settings` | `{"address_space"?,"relay_from"?,"reroute"?}` replaces those lists |
//! | POST | `/actions/retry-queue` | retry every waiting message now |
//! | GET | `/mta` | MTA state: connectors with open associations, retry timers, transfers under way (direction, octets, checkpoints), overrides in force, the GWART |
//! | POST | `/actions/set-registry` | `{"key":…,"value":…,"data":…}` sets a REG_SZ value (`data: null` deletes it); read at service start |
//! | POST | `/actions/restart-service` | `{"service":"MSExchangeMTA"}` restarts the MTA (re-reads the registry: KB Q255991) |
//! | POST | `/actions/recalculate-routing` | rebuilds the GWART (Recalculate Routing) |
//! | GET | `/links` | the emulated links (local lab backend): `{"LAN": {"up": true, "rate_kbit": null}, "RAS": …}` |
//! | POST | `/actions/set-link` | `{"interface":…,"up"?:bool,"rate_kbit"?:u32}` cuts (`up: false`) or restores a link, or limits what this server sends over it (`rate_kbit`, 0 = unlimited) — see `crate::links` |
//! | POST | `/actions/set-connector` | `{"connector":…,"remote_mta_password"?,"local_mta_password"?,"local_mta_name"?}` changes a connector (effective at the next MTA restart) |
//!
//! Errors are `{"error": "..."}` with 400 (bad request) or 404 (unknown mailbox/message).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Ctx;
use crate::config::EmailDomainRoute;

type Shared = State<Arc<Ctx>>;

/// Serve the API until shutdown.
pub async fn serve(listener: tokio::net::TcpListener, ctx: Arc<Ctx>) {
    let shutdown = ctx.shutdown.clone();
    let app = Router::new()
        .route("/health", get(health))
        .route("/queue", get(queue))
        .route("/mailboxes", get(mailboxes))
        .route("/mailboxes/{alias}", get(mailbox))
        .route("/mailboxes/{alias}/{id}", get(message))
        .route("/events", get(events))
        .route("/recipients", get(recipients))
        .route("/config", get(config))
        .route("/actions/email-domain", post(set_email_domain))
        .route("/actions/ims-settings", post(ims_settings))
        .route("/actions/retry-queue", post(retry_queue))
        .route("/mta", get(mta_state))
        .route("/actions/set-registry", post(set_registry))
        .route("/actions/restart-service", post(restart_service))
        .route("/actions/recalculate-routing", post(recalculate_routing))
        .route("/actions/set-connector", post(set_connector))
        .route("/links", get(links))
        .route("/actions/set-link", post(set_link))
        .with_state(ctx);
    let r = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = crate::stopped(shutdown.clone()).await;
        })
        .await;
    if let Err(e) = r {
        tracing::error!(error = %e, "admin API stopped");
    }
}

fn error(code: StatusCode, msg: impl Into<String>) -> Response {
    (code, Json(json!({ "error": msg.into() }))).into_response()
}

async fn health(State(ctx): Shared) -> Json<Value> {
    let cfg = ctx.cfg.read().expect("cfg lock");
    Json(json!({
        "status": "ok",
        "organization": cfg.organization.name,
        "site": cfg.site.name,
        "server": cfg.server.name,
        "hostname": ctx.hostname,
        "pid": std::process::id(),
        "services": { "ims": cfg.ims.as_ref().map(|i| json!({"listen": i.listen.to_string()})) },
        "mailbox_deliveries": ctx.mailboxes.delivered_total(),
    }))
}

async fn queue(State(ctx): Shared) -> Json<Value> {
    let entries = ctx.entries.lock().expect("entries lock");
    let mut list: Vec<_> = entries.values().cloned().collect();
    list.sort_by_key(|e| e.envelope.received);
    Json(json!(list))
}

async fn mailboxes(State(ctx): Shared) -> Response {
    let aliases = match ctx.mailboxes.aliases() {
        Ok(a) => a,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let list: Vec<Value> = aliases
        .into_iter()
        .map(|a| {
            let n = ctx.mailboxes.list(&a).map(|l| l.len()).unwrap_or(0);
            json!({"alias": a, "count": n})
        })
        .collect();
    Json(json!(list)).into_response()
}

async fn mailbox(State(ctx): Shared, Path(alias): Path<String>) -> Response {
    let c = ctx.clone();
    match tokio::task::spawn_blocking(move || c.mailboxes.list(&alias)).await {
        Ok(Ok(l)) => Json(json!(l)).into_response(),
        Ok(Err(e)) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn message(State(ctx): Shared, Path((alias, id)): Path<(String, String)>) -> Response {
    match ctx.mailboxes.read(&alias, &id) {
        Ok(d) => ([(header::CONTENT_TYPE, "message/rfc822")], d).into_response(),
        Err(e) => error(StatusCode::NOT_FOUND, e.to_string()),
    }
}

#[derive(Deserialize)]
struct EventQuery {
    #[serde(default)]
    since: u64,
    id: Option<u32>,
}

async fn events(State(ctx): Shared, Query(q): Query<EventQuery>) -> Json<Value> {
    Json(json!(ctx.events.query(q.since, q.id)))
}

async fn recipients(State(ctx): Shared) -> Json<Value> {
    let dir = ctx.directory.read().expect("dir lock");
    Json(json!(dir.recipients()))
}

async fn config(State(ctx): Shared) -> Json<Value> {
    Json(json!(*ctx.cfg.read().expect("cfg lock")))
}

async fn set_email_domain(State(ctx): Shared, Json(route): Json<EmailDomainRoute>) -> Response {
    if route.domain.trim().is_empty() {
        return error(StatusCode::BAD_REQUEST, "domain is empty");
    }
    {
        let mut cfg = ctx.cfg.write().expect("cfg lock");
        let Some(ims) = cfg.ims.as_mut() else {
            return error(StatusCode::BAD_REQUEST, "the Internet Mail Service is not installed on this server");
        };
        ims.email_domains.retain(|r| !r.domain.eq_ignore_ascii_case(&route.domain));
        if !route.hosts.is_empty() {
            ims.email_domains.push(route.clone());
        }
    }
    ctx.rebuild_router();
    Json(json!({"ok": true, "email_domains": ctx.cfg.read().expect("cfg lock").ims.as_ref().map(|i| i.email_domains.clone())})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImsSettings {
    address_space: Option<Vec<String>>,
    relay_from: Option<Vec<ipnet::IpNet>>,
    reroute: Option<Vec<crate::config::RerouteEntry>>,
}

async fn ims_settings(State(ctx): Shared, Json(s): Json<ImsSettings>) -> Response {
    {
        let mut cfg = ctx.cfg.write().expect("cfg lock");
        let Some(ims) = cfg.ims.as_mut() else {
            return error(StatusCode::BAD_REQUEST, "the Internet Mail Service is not installed on this server");
        };
        if let Some(v) = s.address_space {
            ims.address_space = v;
        }
        if let Some(v) = s.relay_from {
            ims.relay_from = v;
        }
        if let Some(v) = s.reroute {
            ims.reroute = v;
        }
    }
    ctx.rebuild_router();
    Json(json!({"ok": true})).into_response()
}

async fn retry_queue(State(ctx): Shared) -> Json<Value> {
    let n = crate::delivery::retry_all_now(&ctx);
    Json(json!({"ok": true, "retried": n}))
}

async fn mta_state(State(ctx): Shared) -> Response {
    let Some(m) = &ctx.mta else { return error(StatusCode::NOT_FOUND, "the MTA is not running on this server") };
    let cfg = m.cfg.read().expect("mta cfg").clone();
    let mut state = m.state.lock().expect("mta state").clone();
    for (i, s) in state.iter_mut().enumerate() {
        s.transfers = m.transfers.of(i);
    }
    let connectors: Vec<Value> = cfg
        .connectors
        .iter()
        .zip(state)
        .map(|(c, s)| {
            json!({
                "name": c.name,
                "remote_mta_name": c.remote_mta_name,
                "stack_address": c.stack_address,
                "stack_ip_address_override": m.override_for(&c.name).map(|ip| ip.to_string()),
                "state": s,
            })
        })
        .collect();
    Json(json!({
        "name": cfg.name,
        "listen": cfg.listen.to_string(),
        "connectors": connectors,
        "gwart": *m.gwart.read().expect("gwart"),
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetRegistry {
    key: String,
    value: String,
    data: Option<String>,
}

async fn set_registry(State(ctx): Shared, Json(r): Json<SetRegistry>) -> Response {
    let key = r.key.trim_start_matches("HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Services\\").trim_start_matches("HKLM\\SYSTEM\\CurrentControlSet\\Services\\").to_string();
    if key.is_empty() || r.value.is_empty() {
        return error(StatusCode::BAD_REQUEST, "key and value are required");
    }
    let mut cfg = ctx.cfg.write().expect("cfg lock");
    let existing = cfg.registry.keys().find(|k| k.eq_ignore_ascii_case(&key)).cloned().unwrap_or(key);
    let vals = cfg.registry.entry(existing.clone()).or_default();
    vals.retain(|n, _| !n.eq_ignore_ascii_case(&r.value));
    if let Some(d) = r.data.clone() {
        vals.insert(r.value.clone(), d);
    }
    Json(json!({"ok": true, "key": existing, "values": cfg.registry.get(&existing)})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RestartService {
    service: String,
}

async fn restart_service(State(ctx): Shared, Json(r): Json<RestartService>) -> Response {
    if !r.service.eq_ignore_ascii_case("MSExchangeMTA") {
        return error(StatusCode::BAD_REQUEST, format!("cannot restart {:?}: only MSExchangeMTA can be restarted", r.service));
    }
    let Some(m) = &ctx.mta else { return error(StatusCode::NOT_FOUND, "the MTA is not running on this server") };
    let cfg = ctx.cfg.read().expect("cfg lock").clone();
    m.restart(&cfg, &ctx.events);
    let overrides: Vec<Value> = m.overrides.read().expect("overrides").iter().map(|(k, v)| json!({"connector": k, "override": v.to_string()})).collect();
    Json(json!({"ok": true, "overrides": overrides})).into_response()
}

async fn recalculate_routing(State(ctx): Shared) -> Response {
    let Some(m) = &ctx.mta else { return error(StatusCode::NOT_FOUND, "the MTA is not running on this server") };
    let cfg = ctx.cfg.read().expect("cfg lock").clone();
    m.recalculate_routing(&cfg);
    Json(json!({"ok": true, "gwart": *m.gwart.read().expect("gwart")})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetConnector {
    connector: String,
    remote_mta_password: Option<String>,
    local_mta_password: Option<String>,
    local_mta_name: Option<String>,
}

async fn set_connector(State(ctx): Shared, Json(r): Json<SetConnector>) -> Response {
    let mut cfg = ctx.cfg.write().expect("cfg lock");
    let Some(mta) = cfg.mta.as_mut() else { return error(StatusCode::NOT_FOUND, "the MTA is not configured on this server") };
    let Some(c) = mta.connectors.iter_mut().find(|c| c.name.eq_ignore_ascii_case(&r.connector)) else {
        return error(StatusCode::NOT_FOUND, format!("no connector {:?}", r.connector));
    };
    if let Some(p) = r.remote_mta_password {
        c.remote_mta_password = p;
    }
    if let Some(p) = r.local_mta_password {
        c.overrides.local_mta_password = Some(p);
    }
    if let Some(n) = r.local_mta_name {
        c.overrides.local_mta_name = Some(n);
    }
    Json(json!({"ok": true, "connector": c.name})).into_response()
}

/// The links by their configured interface names.
fn link_states(ctx: &Ctx) -> Value {
    let states = ctx.links.states();
    let cfg = ctx.cfg.read().expect("cfg lock");
    let mut out = serde_json::Map::new();
    for i in &cfg.server.interfaces {
        if let Some(st) = states.get(&i.name.to_ascii_lowercase()) {
            out.insert(i.name.clone(), json!(st));
        }
    }
    Value::Object(out)
}

async fn links(State(ctx): Shared) -> Json<Value> {
    Json(link_states(&ctx))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetLink {
    interface: String,
    up: Option<bool>,
    rate_kbit: Option<u32>,
}

async fn set_link(State(ctx): Shared, Json(r): Json<SetLink>) -> Response {
    match ctx.links.set(&r.interface, r.up, r.rate_kbit) {
        Ok(st) => {
            tracing::info!(interface = %r.interface, up = st.up, rate_kbit = ?st.rate_kbit, "emulated link changed");
            Json(json!({"ok": true, "interface": r.interface, "link": st, "links": link_states(&ctx)})).into_response()
        }
        Err(e) => error(StatusCode::NOT_FOUND, e),
    }
}
