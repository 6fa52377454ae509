//! Next-hop selection end to end: E-Mail Domain hosts in round robin with dead ones skipped,
//! RCPT TO unchanged.

use std::net::Ipv4Addr;

use crate::util::*;

#[test]
fn email_domain_hosts_round_robin_and_skip_dead_ones() {
    let a_ip = Ipv4Addr::new(127, 77, 30, 1);
    let route = "[[ims.email_domains]]\ndomain = \"far.test\"\nhosts = [\"127.77.30.2\", \"127.77.30.4\", \"127.77.30.3\"]";
    let a = TestServer::start("Near", a_ip, route);
    let b = TestServer::start("Far", Ipv4Addr::new(127, 77, 30, 2), "");
    let c = TestServer::start("Far", Ipv4Addr::new(127, 77, 30, 3), "");
    // 127.77.30.4 runs nothing: it is skipped.
    for i in 0..12 {
        send_message(a.smtp_addr(), Some(a_ip), "User1@near.test", "User2@far.test", &format!("rr {i}")).assert_code(250);
    }
    let counts = wait_for(15.0, || {
        let (nb, nc) = (b.mailbox("User2").len(), c.mailbox("User2").len());
        (nb + nc == 12).then_some((nb, nc))
    })
    .unwrap_or_else(|| panic!("not all delivered: {} + {}", b.mailbox("User2").len(), c.mailbox("User2").len()));
    assert!(counts.0 >= 3 && counts.1 >= 3, "both live hosts used: {counts:?}");
    // RCPT TO is unchanged by the forwarding.
    let raw = String::from_utf8_lossy(&b.maildir_files("User2").pop().unwrap()).into_owned();
    assert!(raw.contains("Delivered-To: User2@far.test"), "{raw}");
    assert!(wait_for(5.0, || a.queue().is_empty().then_some(())).is_some());
}
