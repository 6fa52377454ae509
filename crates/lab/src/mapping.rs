//! Mapping scenario addresses onto loopback for the local backend.
//!
//! `a.b.c.d` maps to `127.b.c.d`: the first octet is replaced, the other three kept, so
//! 10.10.10.10 becomes 127.10.10.10 and a /24 (or any prefix of 8 bits or more) maps onto a
//! loopback network of the same size. Linux routes all of 127.0.0.0/8 to `lo`, so every
//! mapped address can be bound without root. Two scenario addresses that differ only in the
//! first octet would collide; [`AddressMap::new`] refuses them.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// A deterministic scenario → real address map.
#[derive(Debug, Clone, Default)]
pub struct AddressMap {
    map: BTreeMap<Ipv4Addr, Ipv4Addr>,
    identity: bool,
}

/// Map one address (`a.b.c.d` → `127.b.c.d`).
pub fn to_loopback(ip: Ipv4Addr) -> Ipv4Addr {
    let o = ip.octets();
    Ipv4Addr::new(127, o[1], o[2], o[3])
}

impl AddressMap {
    /// Build the map for these scenario addresses; errors on a collision or an address that
    /// would map to 127.0.0.0 or 127.255.255.255.
    pub fn new(addrs: &[Ipv4Addr]) -> Result<AddressMap, String> {
        let mut map = BTreeMap::new();
        let mut back: BTreeMap<Ipv4Addr, Ipv4Addr> = BTreeMap::new();
        for &a in addrs {
            let m = to_loopback(a);
            if m == Ipv4Addr::new(127, 0, 0, 0) || m == Ipv4Addr::new(127, 255, 255, 255) {
                return Err(format!("scenario address {a} maps to {m}, which cannot be used"));
            }
            if let Some(prev) = back.get(&m)
                && *prev != a
            {
                return Err(format!("scenario addresses {prev} and {a} both map to {m}"));
            }
            back.insert(m, a);
            map.insert(a, m);
        }
        Ok(AddressMap { map, identity: false })
    }

    /// The identity map (the docker backend, where scenario addresses are real inside the
    /// lab's own networks): every address and network maps to itself.
    pub fn identity(addrs: &[Ipv4Addr]) -> AddressMap {
        AddressMap { map: addrs.iter().map(|a| (*a, *a)).collect(), identity: true }
    }

    /// The real address of a scenario address (mapping unknown ones the same way).
    pub fn real(&self, ip: Ipv4Addr) -> Ipv4Addr {
        if self.identity {
            return ip;
        }
        self.map.get(&ip).copied().unwrap_or_else(|| to_loopback(ip))
    }

    /// Map a network: `10.10.10.0/24` → `127.10.10.0/24`. Prefixes shorter than 8 cannot be mapped.
    pub fn real_net(&self, net: ipnet::Ipv4Net) -> Result<ipnet::Ipv4Net, String> {
        if self.identity {
            return Ok(net);
        }
        if net.prefix_len() < 8 {
            return Err(format!("network {net} is wider than /8 and cannot be mapped onto loopback"));
        }
        ipnet::Ipv4Net::new(to_loopback(net.network()), net.prefix_len()).map_err(|e| e.to_string())
    }

    /// Map a host string: an IPv4 literal is mapped, a name is kept.
    pub fn real_host(&self, host: &str) -> String {
        match host.parse::<Ipv4Addr>() {
            Ok(ip) => self.real(ip).to_string(),
            Err(_) => host.to_string(),
        }
    }

    /// Pairs (scenario, real), sorted.
    pub fn pairs(&self) -> Vec<(Ipv4Addr, Ipv4Addr)> {
        self.map.iter().map(|(a, b)| (*a, *b)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_kb_addresses() {
        let m = AddressMap::new(&["10.10.10.10".parse().unwrap(), "192.168.100.15".parse().unwrap()]).unwrap();
        assert_eq!(m.real("10.10.10.10".parse().unwrap()), Ipv4Addr::new(127, 10, 10, 10));
        assert_eq!(m.real("192.168.100.15".parse().unwrap()), Ipv4Addr::new(127, 168, 100, 15));
        assert_eq!(m.real_net("10.10.10.0/24".parse().unwrap()).unwrap().to_string(), "127.10.10.0/24");
        assert_eq!(m.real_host("10.10.10.15"), "127.10.10.15");
        assert_eq!(m.real_host("ServerB.SiteB.microsoft.com"), "ServerB.SiteB.microsoft.com");
    }

    #[test]
    fn refuses_collisions() {
        let e = AddressMap::new(&["10.1.1.1".parse().unwrap(), "192.1.1.1".parse().unwrap()]).unwrap_err();
        assert!(e.contains("both map to 127.1.1.1"), "{e}");
        assert!(AddressMap::new(&["10.0.0.0".parse().unwrap()]).is_err());
    }
}
