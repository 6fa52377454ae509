//! What the benches of one message share: the server configuration, the message `mtalab
//! bench p1` submits, and the two halves of the X.400 way's conversion.

use mtalab_p1::{Conformance, MtsApdu};
use mtalab_server::config::Config;
use mtalab_server::mta::gateway;

/// Server B of `mtalab bench p1` (one recipient, `User1@b.test`).
pub const CONFIG: &str = r#"[organization]
name = "Bench"
[site]
name = "B"
[server]
name = "B"
data_dir = "/nonexistent"
[site_addressing]
smtp = "@b.test"
x400 = { c = "US", p = "Bench", o = "B" }
[[recipients]]
alias = "User1"
given = "User"
surname = "One"
[ims]
listen = "127.0.0.1:2525"
[admin]
listen = "127.0.0.1:2526"
"#;

/// The message `mtalab bench p1` submits: 4 KiB of 76-octet lines, as A's queue holds it.
pub fn message() -> Vec<u8> {
    let line = "x".repeat(75) + "\r\n";
    format!(
        "From: <User1@a.test>\r\nTo: <User1@b.test>\r\nSubject: bench 1-1\r\nDate: Fri, 4 Dec 2026 20:00:00 +0000\r\nMessage-ID: <1.2@mtalab-lab>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{}",
        line.repeat(4096usize.div_ceil(77))
    )
    .into_bytes()
}

/// What A does with a queued message for an X.400 connector: convert it into a P1 message
/// carrying an IPM, encoded as an MTS-APDU.
pub fn to_p1(cfg: &Config, dir: &mtalab_directory::Directory, data: &[u8]) -> Vec<u8> {
    let msg = gateway::rfc822_to_p1(
        &gateway::ToP1 {
            data,
            from: "User1@a.test",
            rcpts: &["User1@b.test".to_string()],
            prefix: "c=US;p=Bench;o=B",
            site: &cfg.site_addressing.x400,
            local_id: "0000000000001-1",
            arrival: chrono::Utc::now(),
            mta_name: "A",
        },
        dir,
    )
    .expect("converts");
    MtsApdu::Message(msg).encode(Conformance::Implicit).expect("encodes")
}

/// What B does with a received MTS-APDU before its queue commit: decode it, map its
/// originator, convert its IPM into an RFC 5322 message.
pub fn from_p1(dir: &mtalab_directory::Directory, apdu: &[u8]) -> Vec<u8> {
    let mut names = mtalab_p1::OrNameMemo::default();
    let MtsApdu::Message(msg) = MtsApdu::decode_vec_noting(apdu.to_vec(), &mut names).expect("decodes") else { unreachable!("a message") };
    let from = gateway::or_to_smtp(&msg.envelope.originator_name.address, dir);
    let known = vec![(&msg.envelope.originator_name.address, from)];
    gateway::p1_to_rfc822(&msg, dir, &known, &gateway::mts_id(&msg.envelope.message_identifier), "", &mut names).expect("converts")
}
