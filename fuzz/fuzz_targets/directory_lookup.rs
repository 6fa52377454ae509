//! Fuzzes the directory's lookup tables (`crates/directory/src/index.rs`) with arbitrary
//! text: the X.400 lookup (a hash of the mnemonic's attributes, independent of their order
//! and case, checked attribute by attribute), the SMTP lookup and the alias lookup, on a
//! directory of mailboxes whose names the input may also imitate.
//!
//! Properties: nothing panics; every lookup answers as a scan of the recipients does — for
//! X.400 the scan compares the sorted, lowercased attribute lists (`mnemonic_attributes`),
//! an oracle apart from the index's own matching.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mtalab_directory::{Directory, RecipientSpec, SiteAddressing, mnemonic_attributes};

fn directory() -> &'static Directory {
    static D: OnceLock<Directory> = OnceLock::new();
    D.get_or_init(|| {
        let addressing =
            SiteAddressing::exchange_default("ExchangeORG", "SiteA", "sitea.example", "US");
        let mut d = Directory::new("ExchangeORG", "SiteA", "ServerA", addressing);
        for (alias, given, surname) in [
            ("User1", "User", "One"),
            ("User2", "User", "Two"),
            ("JSmith", "John", "Smith"),
            ("Odd", "", ""),
            ("Spaces", " a b ", "c;d"),
        ] {
            d.add_mailbox(RecipientSpec {
                alias: alias.into(),
                given: given.into(),
                surname: surname.into(),
                display_name: None,
            })
            .expect("mailbox");
        }
        d
    })
}

fn attributes(s: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = mnemonic_attributes(s)
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_ascii_lowercase()))
        .collect();
    v.sort();
    v
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let d = directory();
    // Half the inputs are spliced into a real proxy, so that hits are common.
    let spliced;
    let text = match (data.first(), text.get(1..)) {
        (Some(b), Some(noise)) if b % 2 == 0 => {
            let r = &d.recipients()[usize::from(*b / 2) % d.recipients().len()];
            spliced = shuffle(&r.x400, noise);
            spliced.as_str()
        }
        _ => text,
    };
    let want = attributes(text);
    let scan = d.recipients().iter().find(|r| attributes(&r.x400) == want);
    assert_eq!(
        d.lookup_x400(text).map(|r| &r.alias),
        scan.map(|r| &r.alias),
        "x400 {text:?}"
    );
    // Proxies are `local@domain` with one `@`: equal ignoring case exactly when the lookup,
    // which splits at the last `@` and compares both parts ignoring case, finds them.
    let scan = d
        .recipients()
        .iter()
        .find(|r| r.smtp.iter().any(|p| p.eq_ignore_ascii_case(text)));
    assert_eq!(
        d.lookup_smtp_address(text).map(|r| &r.alias),
        scan.map(|r| &r.alias),
        "smtp {text:?}"
    );
    let scan = d.recipients().iter().find(|r| r.alias.eq_ignore_ascii_case(text));
    assert_eq!(
        d.lookup_alias(text).map(|r| &r.alias),
        scan.map(|r| &r.alias),
        "alias {text:?}"
    );
});

/// The attributes of `proxy` reordered and recased by the octets of `noise`, with `noise`'s
/// text appended to one value when its first octet says so.
fn shuffle(proxy: &str, noise: &str) -> String {
    let mut parts: Vec<String> = proxy.split(';').map(str::to_string).collect();
    for (i, b) in noise.bytes().enumerate() {
        let n = parts.len();
        match b % 4 {
            0 => parts.swap(i % n, usize::from(b) % n),
            1 => parts[i % n] = parts[i % n].to_ascii_uppercase(),
            2 => parts[i % n] = format!(" {} ", parts[i % n]),
            _ => {}
        }
    }
    if noise.as_bytes().first().is_some_and(|b| b % 7 == 0) {
        parts[0].push_str(noise);
    }
    parts.join(";")
}
