//! Source address selection for outbound connections of a multihomed host (KB Q255991,
//! KB Q197378): the Stack IP Address Override when the registry has one for the connector,
//! else the address of the interface on the route to the destination — what the kernel does
//! on a real host. On the local lab backend every address lives on `lo`, so the kernel cannot
//! choose; [`route_source`] emulates its choice from the configured interfaces and routes.

use std::net::IpAddr;

use crate::config::{Interface, StaticRoute};

/// The registry key of a connector's MTA parameters, below `HKLM\SYSTEM\CurrentControlSet\Services`.
pub fn mta_parameters_key(connector: &str) -> String {
    format!("MSExchangeMTA\\Parameters\\{connector}")
}

/// The REG_SZ value name of the override (KB Q255991 step four, 3.d).
pub const STACK_IP_ADDRESS_OVERRIDE: &str = "Stack IP Address Override";

/// The interface address the kernel would use as source towards `dest`: the longest-prefix
/// match among the connected networks of `interfaces` and the static `routes`. None when
/// nothing matches (the kernel would use the default route; the caller then lets the OS pick).
pub fn route_source(interfaces: &[Interface], routes: &[StaticRoute], dest: IpAddr) -> Option<IpAddr> {
    route_interface(interfaces, routes, dest).map(|i| i.address)
}

/// The interface the kernel would send through towards `dest`: the longest-prefix match
/// among the connected networks of `interfaces` and the static `routes` (on a tie, the
/// connected network). None when nothing matches.
pub fn route_interface<'a>(interfaces: &'a [Interface], routes: &[StaticRoute], dest: IpAddr) -> Option<&'a Interface> {
    let mut best: Option<(u8, &Interface)> = None;
    let mut consider = |prefix: u8, i: &'a Interface| {
        if best.is_none_or(|(p, _)| prefix > p) {
            best = Some((prefix, i));
        }
    };
    for i in interfaces {
        if let Ok(net) = ipnet::IpNet::new(i.address, i.prefix)
            && net.trunc().contains(&dest)
        {
            consider(i.prefix, i);
        }
    }
    for r in routes {
        if r.destination.trunc().contains(&dest)
            && let Some(i) = interfaces.iter().find(|i| i.name.eq_ignore_ascii_case(&r.interface))
        {
            consider(r.destination.prefix_len(), i);
        }
    }
    best.map(|(_, i)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ifaces() -> Vec<Interface> {
        vec![
            Interface { name: "LAN".into(), address: "192.168.200.10".parse().unwrap(), prefix: 24 },
            Interface { name: "RAS".into(), address: "192.168.1.1".parse().unwrap(), prefix: 29 },
        ]
    }

    #[test]
    fn static_route_over_the_ras_link_picks_the_wan_address() {
        let routes = vec![StaticRoute { destination: "192.168.100.0/24".parse().unwrap(), interface: "RAS".into(), gateway: None }];
        assert_eq!(route_source(&ifaces(), &routes, "192.168.100.15".parse().unwrap()), Some("192.168.1.1".parse().unwrap()));
        assert_eq!(route_source(&ifaces(), &routes, "192.168.200.7".parse().unwrap()), Some("192.168.200.10".parse().unwrap()));
        assert_eq!(route_source(&ifaces(), &routes, "10.0.0.1".parse().unwrap()), None);
        assert_eq!(route_interface(&ifaces(), &routes, "192.168.100.15".parse().unwrap()).map(|i| i.name.as_str()), Some("RAS"));
    }
}
