//! IMCEA encapsulation of Exchange distinguished names in SMTP addresses.
//!
//! When an Exchange-internal (`EX`) address has to cross SMTP, the IMS wraps it as
//! `IMCEAEX-<encoded DN>@<domain>` (DESIGN §3): `/` becomes `_`, the characters listed in
//! [`is_imcea_plain`] stay as they are, and every other byte of the DN's UTF-8 form is written
//! `+XX` (two upper-case hex digits). `+` and `_` are therefore always escaped, so decoding is
//! unambiguous. The `IMCEAEX-` prefix is case-sensitive.

/// The case-sensitive prefix of an encapsulated `EX` address.
pub const IMCEAEX_PREFIX: &str = "IMCEAEX-";

/// Whether `c` is copied unchanged into an IMCEA local part: ASCII letters and digits and
/// ``! # $ % & ' * - = ? ^ ` { | } ~``. Everything else (including `.`, `_`, `+`, `@`, space
/// and all non-ASCII) is `+XX`-escaped, except `/`, which maps to `_`.
pub fn is_imcea_plain(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*-=?^`{|}~".contains(c)
}

/// Encapsulate an Exchange DN as an SMTP address:
/// `imceaex_encode("/o=ORG/ou=SITE/cn=Recipients/cn=JohnS", "SiteA.microsoft.com")` →
/// `"IMCEAEX-_o=ORG_ou=SITE_cn=Recipients_cn=JohnS@SiteA.microsoft.com"`; a space becomes
/// `+20`, a `+` becomes `+2B`, non-ASCII characters become their UTF-8 bytes as `+XX`.
/// `domain` is appended unchanged. Never fails.
pub fn imceaex_encode(dn: &str, domain: &str) -> String {
    let mut out = String::with_capacity(IMCEAEX_PREFIX.len() + dn.len() + domain.len() + 1);
    out.push_str(IMCEAEX_PREFIX);
    let mut buf = [0u8; 4];
    for c in dn.chars() {
        if c == '/' {
            out.push('_');
        } else if is_imcea_plain(c) {
            out.push(c);
        } else {
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push('+');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0x0f)]));
            }
        }
    }
    out.push('@');
    out.push_str(domain);
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Decode an `IMCEAEX-...@domain` address back to the DN (the domain is dropped; use
/// [`imceaex_split`] to keep it).
///
/// Returns `None` when the address does not start with the exact (case-sensitive) prefix
/// `IMCEAEX-`, has no `@`, holds a `+` not followed by two hex digits (either case), or
/// decodes to bytes that are not UTF-8. Characters that should have been escaped but were
/// not are taken literally.
pub fn imceaex_decode(addr: &str) -> Option<String> {
    imceaex_split(addr).map(|(dn, _)| dn)
}

/// Like [`imceaex_decode`], also returning the domain part (text after the first `@`).
pub fn imceaex_split(addr: &str) -> Option<(String, &str)> {
    let rest = addr.strip_prefix(IMCEAEX_PREFIX)?;
    let at = rest.find('@')?;
    let (encoded, domain) = (&rest[..at], &rest[at + 1..]);
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'_' => {
                out.push(b'/');
                i += 1;
            }
            b'+' => {
                let hi = hex_value(*bytes.get(i + 1)?)?;
                let lo = hex_value(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some((String::from_utf8(out).ok()?, domain))
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encodes_site_recipient() {
        assert_eq!(
            imceaex_encode(
                "/o=ExchangeORG/ou=SiteA/cn=Recipients/cn=JohnS",
                "SiteA.microsoft.com"
            ),
            "IMCEAEX-_o=ExchangeORG_ou=SiteA_cn=Recipients_cn=JohnS@SiteA.microsoft.com"
        );
    }

    #[test]
    fn escapes_space_plus_dot_underscore_at() {
        let dn = "/O=First Organization/OU=Site A+B/CN=john.smith_x@y";
        let enc = imceaex_encode(dn, "microsoft.com");
        assert_eq!(
            enc,
            "IMCEAEX-_O=First+20Organization_OU=Site+20A+2BB_CN=john+2Esmith+5Fx+40y@microsoft.com"
        );
        assert_eq!(imceaex_decode(&enc).as_deref(), Some(dn));
        assert_eq!(imceaex_split(&enc).map(|(_, d)| d), Some("microsoft.com"));
    }

    #[test]
    fn non_ascii_round_trips() {
        let dn = "/o=Org/ou=Zürich/cn=Recipients/cn=Jürgen";
        let enc = imceaex_encode(dn, "example.com");
        assert!(enc.contains("Z+C3+BCrich"));
        assert_eq!(imceaex_decode(&enc).as_deref(), Some(dn));
    }

    #[test]
    fn decode_rejects_malformed() {
        assert_eq!(
            imceaex_decode("imceaex-_o=ORG@x.com"),
            None,
            "prefix is case-sensitive"
        );
        assert_eq!(imceaex_decode("IMCEAEX-_o=ORG"), None, "no domain");
        assert_eq!(imceaex_decode("IMCEAEX-_o=A+2@x.com"), None, "short escape");
        assert_eq!(imceaex_decode("IMCEAEX-_o=A+ZZ@x.com"), None, "bad hex");
        assert_eq!(imceaex_decode("IMCEAEX-+FF@x.com"), None, "not utf-8");
        assert_eq!(
            imceaex_decode("IMCEAEX-_o=a+2bb@x.com").as_deref(),
            Some("/o=a+b")
        );
        assert_eq!(imceaex_decode("IMCEAEX-@x.com").as_deref(), Some(""));
    }

    proptest! {
        #[test]
        fn round_trip(dn in any::<String>(), domain in "[A-Za-z0-9.-]{1,30}") {
            let enc = imceaex_encode(&dn, &domain);
            prop_assert!(enc.starts_with(IMCEAEX_PREFIX));
            let local = &enc[..enc.rfind('@').unwrap()];
            prop_assert!(local.chars().all(|c| c == '_' || c == '+' || is_imcea_plain(c)));
            let (back, d) = imceaex_split(&enc).unwrap();
            prop_assert_eq!(back, dn);
            prop_assert_eq!(d, domain.as_str());
        }

        #[test]
        fn round_trip_dn_like(dn in "(/(o|ou|cn)=[ -~]{0,12}){1,6}") {
            prop_assert_eq!(imceaex_decode(&imceaex_encode(&dn, "example.com")), Some(dn));
        }
    }
}
