//! The Gateway Address Routing Table (GWART) and route selection (KB Q193322).
//!
//! Every address space of every connector on this server — the IMS's SMTP address space and
//! each X.400 connector's X400 and SMTP address spaces and Connected Sites routing addresses —
//! becomes a line. Routing finds the lines whose address space matches a recipient (most
//! specific first); selection then picks a connector by the elimination steps of KB Q193322.

use crate::config::Config;
use crate::routing::domain_matches;

/// Address type of a GWART line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum AddrType {
    /// SMTP domain pattern.
    Smtp,
    /// X.400 O/R address prefix (mnemonic).
    X400,
}

/// What a line routes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Target {
    /// This site (its own X.400 site address).
    Local,
    /// The Internet Mail Service.
    Ims,
    /// The X.400 connector with this index in `[mta] connectors`.
    X400(usize),
}

/// One GWART line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Line {
    /// Address type.
    pub kind: AddrType,
    /// The address space.
    pub address: String,
    /// Cost 1–100.
    pub cost: u8,
    /// Where it goes.
    pub target: Target,
    /// Where the line came from ("address space", "connected site SiteB").
    pub origin: String,
}

/// The table.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Gwart {
    /// Lines, in build order.
    pub lines: Vec<Line>,
}

pub use mtalab_directory::mnemonic_attributes;

/// Parse an X.400 mnemonic into (key, value) pairs, keys lowercase, values trimmed
/// (`a= ` stays one space). Empty parts are skipped.
pub fn mnemonic_pairs(s: &str) -> Vec<(String, String)> {
    mnemonic_attributes(s).map(|(k, v)| (k.to_ascii_lowercase(), v.to_string())).collect()
}

/// True when every attribute of the X.400 address space `space` is present with an equal
/// value (case-insensitive) in `addr`. The number of attributes is the match's specificity.
pub fn x400_matches(space: &str, addr: &str) -> Option<usize> {
    let sp = mnemonic_pairs(space);
    let ad = mnemonic_pairs(addr);
    let all = sp.iter().all(|(k, v)| {
        ad.iter().any(|(k2, v2)| k2 == k && (v2.eq_ignore_ascii_case(v) || v == "*"))
    });
    all.then_some(sp.len())
}

impl Gwart {
    /// Build the table from a server's configuration.
    pub fn build(cfg: &Config) -> Gwart {
        let mut lines = Vec::new();
        let x = &cfg.site_addressing.x400;
        lines.push(Line {
            kind: AddrType::X400,
            address: format!("c={};a={};p={};o={}", x.c, x.a, x.p, x.o),
            cost: 1,
            target: Target::Local,
            origin: "site address".into(),
        });
        if let Some(ims) = &cfg.ims {
            for a in &ims.address_space {
                lines.push(Line { kind: AddrType::Smtp, address: a.clone(), cost: 1, target: Target::Ims, origin: "IMS address space".into() });
            }
        }
        if let Some(mta) = &cfg.mta {
            for (i, c) in mta.connectors.iter().enumerate() {
                for a in &c.address_space {
                    let kind = if a.kind.eq_ignore_ascii_case("smtp") { AddrType::Smtp } else { AddrType::X400 };
                    lines.push(Line { kind, address: a.address.clone(), cost: a.cost, target: Target::X400(i), origin: format!("{} address space", c.name) });
                }
                for s in &c.connected_sites {
                    lines.push(Line {
                        kind: AddrType::X400,
                        address: s.routing_address.clone(),
                        cost: s.cost,
                        target: Target::X400(i),
                        origin: format!("{} connected site {}", c.name, s.site),
                    });
                }
            }
        }
        Gwart { lines }
    }

    /// Lines matching an SMTP domain, most specific first.
    pub fn route_smtp(&self, domain: &str) -> Vec<&Line> {
        let mut v: Vec<(usize, &Line)> = self
            .lines
            .iter()
            .filter(|l| l.kind == AddrType::Smtp && domain_matches(&l.address, domain))
            .map(|l| (if l.address == "*" { 0 } else { l.address.trim_start_matches("*.").split('.').count() }, l))
            .collect();
        v.sort_by_key(|e| std::cmp::Reverse(e.0));
        best_group(v)
    }

    /// Lines matching an X.400 O/R address (mnemonic), most specific first.
    pub fn route_x400(&self, addr: &str) -> Vec<&Line> {
        let mut v: Vec<(usize, &Line)> = self
            .lines
            .iter()
            .filter(|l| l.kind == AddrType::X400)
            .filter_map(|l| x400_matches(&l.address, addr).map(|n| (n, l)))
            .collect();
        v.sort_by_key(|e| std::cmp::Reverse(e.0));
        best_group(v)
    }
}

/// Keep only the most specific matches (an address space that matches more closely wins
/// before selection looks at costs).
fn best_group(v: Vec<(usize, &Line)>) -> Vec<&Line> {
    let top = v.first().map(|x| x.0);
    v.into_iter().filter(|x| Some(x.0) == top).map(|x| x.1).collect()
}

/// What selection knows about a candidate connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// The line's target.
    pub target: Target,
    /// Its cost.
    pub cost: u8,
    /// This message's retry count on this connector.
    pub retries: u32,
    /// The connector's Max open retries (u32::MAX for the IMS).
    pub max_open_retries: u32,
    /// The connector's Open Retry timer is running.
    pub retrying: bool,
    /// The message came in over this connector.
    pub inbound: bool,
}

/// KB Q193322 selection, in its elimination order: not the inbound connector; not at max
/// retry; (activation schedule: all connectors are "Active Now" here); fewest tries; not
/// currently retrying; lowest cost; (local over remote: all are local here); then the first
/// (load balancing is left to round robin by the caller). A step that would eliminate every
/// candidate is skipped, as the article's "passed to the next step" implies for the timers.
pub fn select(cands: &[Candidate]) -> Option<Candidate> {
    let mut c: Vec<Candidate> = cands.iter().copied().filter(|c| !c.inbound).collect();
    c.retain(|c| c.retries < c.max_open_retries);
    if c.is_empty() {
        return None;
    }
    let fewest = c.iter().map(|c| c.retries).min().unwrap_or(0);
    c.retain(|c| c.retries == fewest);
    if c.iter().any(|c| !c.retrying) {
        c.retain(|c| !c.retrying);
    }
    let cheapest = c.iter().map(|c| c.cost).min().unwrap_or(0);
    c.retain(|c| c.cost == cheapest);
    c.first().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x400_prefix_match() {
        let sp = "c=US;a= ;p=ExchangeORG;o=SiteB";
        assert_eq!(x400_matches(sp, "c=US;a= ;p=ExchangeORG;o=SiteB;s=Two;g=User"), Some(4));
        assert_eq!(x400_matches(sp, "c=us;a= ;p=exchangeorg;o=siteb;s=Two"), Some(4));
        assert_eq!(x400_matches(sp, "c=US;a= ;p=ExchangeORG;o=SiteA;s=One"), None);
    }

    fn cand(t: usize, cost: u8, retries: u32, retrying: bool) -> Candidate {
        Candidate { target: Target::X400(t), cost, retries, max_open_retries: 3, retrying, inbound: false }
    }

    #[test]
    fn selection_follows_q193322_order() {
        // Cheapest wins among equals.
        assert_eq!(select(&[cand(0, 5, 0, false), cand(1, 1, 0, false)]).unwrap().target, Target::X400(1));
        // A connector retrying loses to one that is not, whatever the cost (preemptive rerouting).
        assert_eq!(select(&[cand(0, 1, 0, true), cand(1, 9, 0, false)]).unwrap().target, Target::X400(1));
        // Fewest tries before cost.
        assert_eq!(select(&[cand(0, 1, 2, false), cand(1, 9, 1, false)]).unwrap().target, Target::X400(1));
        // At max retry: eliminated; none left -> None (NDR).
        assert_eq!(select(&[cand(0, 1, 3, false)]), None);
        let mut inbound = cand(0, 1, 0, false);
        inbound.inbound = true;
        assert_eq!(select(&[inbound, cand(1, 9, 0, false)]).unwrap().target, Target::X400(1));
    }
}
