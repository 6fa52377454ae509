//! Lookup tables over a [`crate::Directory`]'s recipients, so that the lookups a server makes
//! for every message (`RCPT TO`, local delivery, the O/R addresses of a message crossing the
//! gateway, a DN) take the same time with ten mailboxes as with ten thousand.
//!
//! Each table maps a key to the positions of the recipients holding it, in ascending order:
//! its first position is what a scan of the recipients in creation order would find first,
//! so the tables answer exactly as that scan does, duplicates included.

use std::collections::HashMap;

use crate::{Recipient, split_addr};

/// The `key=value` attributes of an X.400 address in Exchange's mnemonic form
/// (`c=US;a= ;p=ExchangeORG;o=SiteA;s=Smith;g=John`), borrowed: split at `;` and at the first
/// `=` of each part, key and value trimmed, a value of blanks only given as one space (`a= `,
/// the one-space ADMD name Exchange writes), parts without a key skipped; the key in its own
/// case.
pub fn mnemonic_attributes(s: &str) -> impl Iterator<Item = (&str, &str)> {
    s.split(';').filter_map(|p| {
        let (k, v) = p.split_once('=')?;
        let k = k.trim();
        let v = if v.trim().is_empty() && !v.is_empty() {
            " "
        } else {
            v.trim()
        };
        (!k.is_empty()).then_some((k, v))
    })
}

/// The tables; see the module documentation.
#[derive(Debug, Clone, Default)]
pub(crate) struct Index {
    /// Alias, lower-cased.
    alias: HashMap<String, Vec<usize>>,
    /// Each SMTP proxy that has an `@`: [`smtp_key`] of its two parts.
    smtp: HashMap<String, Vec<usize>>,
    /// The X.400 proxy's attributes: [`x400_hash`].
    x400_attributes: HashMap<u64, Vec<usize>>,
}

/// The key of SMTP address `local@domain`: both parts lower-cased (ASCII), the local part's
/// length first, so that `a@b` + `c` and `a` + `b@c` stay apart (a proxy splits at its last
/// `@`).
pub(crate) fn smtp_key(local: &str, domain: &str) -> String {
    let mut k = String::with_capacity(local.len() + domain.len() + 6);
    push_counted_lower(&mut k, local);
    k.push('@');
    push_lower(&mut k, domain);
    k
}

/// A hash of an X.400 mnemonic's attributes ([`mnemonic_attributes`]) that does not depend on
/// their order or on ASCII case: the sum of a hash of each `key=value`, lower-cased. Equal for
/// two addresses that hold the same attributes ([`same_attributes`]); addresses that do not
/// may share one, so a hit is checked. One pass over the text, nothing allocated.
pub(crate) fn x400_hash(mnemonic: &str) -> u64 {
    mnemonic_attributes(mnemonic).fold(0u64, |sum, (k, v)| {
        // FNV-1a over `key=value` (a key holds no `=`), then SplitMix64's finalizer so that
        // the sum of several mixes every bit.
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for b in k.bytes().chain([b'=']).chain(v.bytes()) {
            h = (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(0x0000_0100_0000_01b3);
        }
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        sum.wrapping_add(h ^ (h >> 31))
    })
}

/// Whether two mnemonic O/R addresses hold the same attributes ([`mnemonic_attributes`]), in
/// any order, keys and values compared case-insensitively (ASCII); each attribute of one is
/// matched with its own one of the other (`ou=A;ou=A` is not `ou=A;ou=B`).
pub(crate) fn same_attributes(a: &str, b: &str) -> bool {
    let want: Vec<(&str, &str)> = mnemonic_attributes(a).collect();
    if want.len() > 64 {
        // More attributes than the bit set below holds (an O/R address has far fewer).
        let key = |(k, v): (&str, &str)| (k.to_ascii_lowercase(), v.to_ascii_lowercase());
        let mut x: Vec<_> = want.into_iter().map(key).collect();
        let mut y: Vec<_> = mnemonic_attributes(b).map(key).collect();
        x.sort();
        y.sort();
        return x == y;
    }
    // Each attribute of `b` takes an equal one of `want` not taken yet; equality of
    // attributes is an equivalence, so taking the first free one never blocks a later match.
    let mut used = 0u64;
    let mut n = 0;
    for (k2, v2) in mnemonic_attributes(b) {
        n += 1;
        let hit = want.iter().enumerate().find(|(i, (k, v))| {
            used & (1 << i) == 0 && k2.eq_ignore_ascii_case(k) && v2.eq_ignore_ascii_case(v)
        });
        match hit {
            Some((i, _)) => used |= 1 << i,
            None => return false,
        }
    }
    n == want.len()
}

/// `s` in ASCII lower case after its length in octets and a `:`.
fn push_counted_lower(out: &mut String, s: &str) {
    out.push_str(&s.len().to_string());
    out.push(':');
    push_lower(out, s);
}

fn push_lower(out: &mut String, s: &str) {
    let start = out.len();
    out.push_str(s);
    out[start..].make_ascii_lowercase();
}

fn add<K: std::hash::Hash + Eq>(table: &mut HashMap<K, Vec<usize>>, key: K, i: usize) {
    let slots = table.entry(key).or_default();
    if let Err(at) = slots.binary_search(&i) {
        slots.insert(at, i);
    }
}

fn remove<K: std::hash::Hash + Eq>(table: &mut HashMap<K, Vec<usize>>, key: &K, i: usize) {
    if let Some(slots) = table.get_mut(key) {
        slots.retain(|&s| s != i);
        if slots.is_empty() {
            table.remove(key);
        }
    }
}

impl Index {
    /// Tables over `recipients`.
    pub(crate) fn build(recipients: &[Recipient]) -> Index {
        let mut index = Index::default();
        for (i, r) in recipients.iter().enumerate() {
            index.insert(i, r);
        }
        index
    }

    /// Add recipient `r` at position `i`.
    pub(crate) fn insert(&mut self, i: usize, r: &Recipient) {
        add(&mut self.alias, r.alias.to_ascii_lowercase(), i);
        for (l, d) in r.smtp.iter().filter_map(|p| split_addr(p)) {
            add(&mut self.smtp, smtp_key(l, d), i);
        }
        add(&mut self.x400_attributes, x400_hash(&r.x400), i);
    }

    /// Take recipient `r` at position `i` out (before it changes).
    pub(crate) fn remove(&mut self, i: usize, r: &Recipient) {
        remove(&mut self.alias, &r.alias.to_ascii_lowercase(), i);
        for (l, d) in r.smtp.iter().filter_map(|p| split_addr(p)) {
            remove(&mut self.smtp, &smtp_key(l, d), i);
        }
        remove(&mut self.x400_attributes, &x400_hash(&r.x400), i);
    }

    /// Positions of the recipients with this alias (any case).
    pub(crate) fn alias(&self, alias: &str) -> &[usize] {
        self.alias
            .get(&alias.to_ascii_lowercase())
            .map_or(&[], Vec::as_slice)
    }

    /// The first recipient holding the SMTP proxy `local@domain` (any case).
    pub(crate) fn smtp(&self, local: &str, domain: &str) -> Option<usize> {
        self.smtp
            .get(&smtp_key(local, domain))
            .and_then(|s| s.first().copied())
    }

    /// The first of `recipients` whose X.400 proxy is `mnemonic`'s text (any case), else the
    /// first whose proxy holds the same attributes. (The same text holds the same attributes,
    /// so the text is compared only among those.)
    pub(crate) fn x400(&self, recipients: &[Recipient], mnemonic: &str) -> Option<usize> {
        let mut first = None;
        for &i in self.x400_attributes.get(&x400_hash(mnemonic))? {
            let x400 = &recipients[i].x400;
            if x400.eq_ignore_ascii_case(mnemonic) {
                return Some(i);
            }
            if first.is_none() && same_attributes(mnemonic, x400) {
                first = Some(i);
            }
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn o_r_addresses_match_attribute_by_attribute() {
        let yes = [
            (
                "c=US;a= ;p=ExchangeORG;o=SiteA;s=Smith;g=John",
                "g=john;s=SMITH;o=SiteA;p=exchangeorg;a= ;c=us",
            ),
            ("c=US;a=  ;p=P", " c = US ; a= ;p=P;"),
            ("ou=A;ou=b;c=US", "ou=B;c=us;ou=a"),
        ];
        for (a, b) in yes {
            assert!(same_attributes(a, b) && same_attributes(b, a), "{a} = {b}");
            assert_eq!(x400_hash(a), x400_hash(b), "{a} = {b}");
        }
        let no = [
            ("c=US;ou=A;ou=A", "c=US;ou=A;ou=B"),
            ("c=US;s=Smith", "c=US;s=Smith;g=John"),
            ("c=US;s=Smith", "c=US;g=Smith"),
            ("c=US;a= ", "c=US;a=x"),
            // A key or value holding what the key's own layout uses.
            ("k=1:v", "k=1;v="),
            ("s=a2:gb", "s=a;g=b"),
        ];
        for (a, b) in no {
            assert!(
                !same_attributes(a, b) && !same_attributes(b, a),
                "{a} != {b}"
            );
            assert_ne!(x400_hash(a), x400_hash(b), "{a} != {b}");
        }
        let many: String = (0..70).map(|i| format!("dda:k{i}=v{i};")).collect();
        let reversed: String = (0..70).rev().map(|i| format!("DDA:K{i}=V{i};")).collect();
        assert!(same_attributes(&many, &reversed));
        assert_eq!(x400_hash(&many), x400_hash(&reversed));
        assert!(!same_attributes(&many, &reversed.replace("V3;", "V4;")));
    }

    #[test]
    fn smtp_keys_keep_the_split_at_the_last_at() {
        assert_eq!(
            smtp_key("John", "SiteA.Example"),
            smtp_key("john", "sitea.example")
        );
        assert_ne!(smtp_key("a@b", "c"), smtp_key("a", "b@c"));
    }

    proptest::proptest! {
        /// Two addresses match when their attributes, keys and values in lower case, are the
        /// same multiset, whatever their order and case.
        #[test]
        fn o_r_addresses_match_as_multisets_of_attributes(
            a in proptest::collection::vec((0..3usize, 0..3usize, proptest::bool::ANY), 0..6),
            b in proptest::collection::vec((0..3usize, 0..3usize, proptest::bool::ANY), 0..6),
        ) {
            let text = |v: &[(usize, usize, bool)]| -> String {
                v.iter().map(|&(k, x, up)| {
                    let attr = format!("{}={}", ["s", "ou", "dda:k"][k], ["Smith", "a", "b"][x]);
                    if up { attr.to_ascii_uppercase() } else { attr }
                }).collect::<Vec<_>>().join(";")
            };
            let set = |v: &[(usize, usize, bool)]| { let mut s: Vec<_> = v.iter().map(|&(k, x, _)| (k, x)).collect(); s.sort(); s };
            let (ta, tb) = (text(&a), text(&b));
            proptest::prop_assert_eq!(same_attributes(&ta, &tb), set(&a) == set(&b), "{} / {}", ta, tb);
            proptest::prop_assert_eq!(same_attributes(&tb, &ta), set(&a) == set(&b), "{} / {}", tb, ta);
            if set(&a) == set(&b) {
                proptest::prop_assert_eq!(x400_hash(&ta), x400_hash(&tb), "{} / {}", ta, tb);
            }
        }
    }
}
