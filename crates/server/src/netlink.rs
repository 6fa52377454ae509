//! Static routes in the host's own routing table (KB Q255991, "Step Two: Create the Static
//! Route"), for servers that run in a network namespace of their own — a container of the
//! docker lab — with `[server] apply_routes = true`.
//!
//! At start every route of `[server] routes` is added to the main table over netlink: with
//! its gateway (the kernel finds the interface on the gateway's network), or, without one,
//! as a link-scope route on the interface that holds the named interface's address. The
//! kernel then chooses source addresses itself; nothing is emulated.
//!
//! Routes are persistent, as `route -p add` makes them on Windows: while the server runs a
//! task puts back every route that disappeared (a link cut and restored removes the routes
//! over it), once a second.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::sync::watch;

use crate::config::{Interface, StaticRoute};

/// How often routes that went missing are put back.
const KEEP_INTERVAL: Duration = Duration::from_secs(1);

/// One route in kernel terms.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KernelRoute {
    dest: Ipv4Addr,
    prefix: u8,
    gateway: Option<Ipv4Addr>,
    /// Address of the interface for gateway-less routes.
    via_address: Option<Ipv4Addr>,
    text: String,
}

fn kernel_routes(routes: &[StaticRoute], interfaces: &[Interface]) -> anyhow::Result<Vec<KernelRoute>> {
    routes
        .iter()
        .map(|r| {
            let ipnet::IpNet::V4(net) = r.destination else { bail!("route to {}: only IPv4 routes are supported", r.destination) };
            let net = net.trunc();
            let gateway = match r.gateway {
                None => None,
                Some(IpAddr::V4(g)) => Some(g),
                Some(IpAddr::V6(g)) => bail!("route to {net}: IPv6 gateway {g}"),
            };
            let via_address = if gateway.is_none() {
                let i = interfaces
                    .iter()
                    .find(|i| i.name.eq_ignore_ascii_case(&r.interface))
                    .with_context(|| format!("route to {net}: no interface named {}", r.interface))?;
                match i.address {
                    IpAddr::V4(a) => Some(a),
                    IpAddr::V6(a) => bail!("route to {net}: interface {} has IPv6 address {a}", i.name),
                }
            } else {
                None
            };
            let text = match gateway {
                Some(g) => format!("{net} via {g} ({})", r.interface),
                None => format!("{net} dev {}", r.interface),
            };
            Ok(KernelRoute { dest: net.network(), prefix: net.prefix_len(), gateway, via_address, text })
        })
        .collect()
}

/// Outcome of adding one route.
enum Added {
    New,
    Present,
}

async fn link_index_of(handle: &rtnetlink::Handle, addr: Ipv4Addr) -> anyhow::Result<u32> {
    use futures_util::TryStreamExt;
    use rtnetlink::packet_route::address::AddressAttribute;
    let mut s = handle.address().get().execute();
    while let Some(m) = s.try_next().await.context("listing addresses")? {
        let has = m.attributes.iter().any(|a| matches!(a, AddressAttribute::Address(IpAddr::V4(x)) | AddressAttribute::Local(IpAddr::V4(x)) if *x == addr));
        if has {
            return Ok(m.header.index);
        }
    }
    bail!("no interface holds {addr}")
}

async fn add_route(handle: &rtnetlink::Handle, r: &KernelRoute) -> anyhow::Result<Added> {
    use rtnetlink::RouteMessageBuilder;
    use rtnetlink::packet_route::route::RouteScope;
    let mut b = RouteMessageBuilder::<Ipv4Addr>::new().destination_prefix(r.dest, r.prefix);
    if let Some(g) = r.gateway {
        b = b.gateway(g);
    } else if let Some(a) = r.via_address {
        b = b.output_interface(link_index_of(handle, a).await?).scope(RouteScope::Link);
    }
    match handle.route().add(b.build()).execute().await {
        Ok(()) => Ok(Added::New),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -17 => Ok(Added::Present),
        Err(rtnetlink::Error::NetlinkError(e)) => Err(e.to_io()).with_context(|| format!("adding route {}", r.text)),
        Err(e) => Err(anyhow::anyhow!("adding route {}: {e}", r.text)),
    }
}

/// Add every route now (an error names the route and the kernel's reason: no privilege
/// without CAP_NET_ADMIN, an unreachable gateway, …) and keep them in place until `stop`
/// becomes true. Returns the routes' descriptions.
pub async fn start(routes: &[StaticRoute], interfaces: &[Interface], stop: watch::Receiver<bool>) -> anyhow::Result<Vec<String>> {
    let wanted = kernel_routes(routes, interfaces)?;
    let (conn, handle, _) = rtnetlink::new_connection().context("opening a netlink socket")?;
    tokio::spawn(conn);
    for r in &wanted {
        add_route(&handle, r).await.context("applying static routes (the container needs cap_add: NET_ADMIN)")?;
        tracing::info!(route = %r.text, "static route applied");
    }
    let texts = wanted.iter().map(|r| r.text.clone()).collect();
    tokio::spawn(keep(handle, wanted, stop));
    Ok(texts)
}

async fn keep(handle: rtnetlink::Handle, wanted: Vec<KernelRoute>, stop: watch::Receiver<bool>) {
    let mut failing = vec![false; wanted.len()];
    let stopped = crate::stopped(stop);
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            _ = tokio::time::sleep(KEEP_INTERVAL) => {}
        }
        for (r, was_failing) in wanted.iter().zip(failing.iter_mut()) {
            match add_route(&handle, r).await {
                Ok(Added::New) => {
                    tracing::info!(route = %r.text, "static route restored");
                    *was_failing = false;
                }
                Ok(Added::Present) => *was_failing = false,
                Err(e) => {
                    if !*was_failing {
                        tracing::warn!(route = %r.text, "static route cannot be restored yet: {e:#}");
                    }
                    *was_failing = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_in_kernel_terms() {
        let ifaces = vec![
            Interface { name: "LAN".into(), address: "192.168.200.10".parse().unwrap(), prefix: 24 },
            Interface { name: "RAS".into(), address: "192.168.1.1".parse().unwrap(), prefix: 29 },
        ];
        let routes = vec![
            StaticRoute { destination: "192.168.100.7/24".parse().unwrap(), interface: "RAS".into(), gateway: Some("192.168.1.2".parse().unwrap()) },
            StaticRoute { destination: "10.1.0.0/16".parse().unwrap(), interface: "ras".into(), gateway: None },
        ];
        let k = kernel_routes(&routes, &ifaces).unwrap();
        assert_eq!(k[0].dest, Ipv4Addr::new(192, 168, 100, 0));
        assert_eq!(k[0].prefix, 24);
        assert_eq!(k[0].gateway, Some(Ipv4Addr::new(192, 168, 1, 2)));
        assert_eq!(k[0].text, "192.168.100.0/24 via 192.168.1.2 (RAS)");
        assert_eq!(k[1].via_address, Some(Ipv4Addr::new(192, 168, 1, 1)));
        let bad = vec![StaticRoute { destination: "10.1.0.0/16".parse().unwrap(), interface: "WAN".into(), gateway: None }];
        assert!(kernel_routes(&bad, &ifaces).unwrap_err().to_string().contains("no interface named WAN"));
    }
}
