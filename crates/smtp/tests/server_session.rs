//! Scripted conversations with the server session, exact reply bytes.

use mtalab_smtp::server::MAX_PENDING_INPUT;
use mtalab_smtp::{
    BodyType, Envelope, MailParams, Mailbox, Reply, ReversePath, ServerConfig, ServerEvent,
    ServerSession,
};

const EHLO_REPLY: &str = "250-mx.test Hello c.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 10485760\r\n250 ENHANCEDSTATUSCODES\r\n";

fn cfg() -> ServerConfig {
    ServerConfig {
        hostname: "mx.test".into(),
        greeting: "ESMTP test".into(),
        ..ServerConfig::default()
    }
}

fn take(s: &mut ServerSession) -> String {
    let mut out = Vec::new();
    s.poll_transmit(&mut out);
    String::from_utf8(out).expect("replies are ASCII")
}

fn events(s: &mut ServerSession) -> Vec<ServerEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

/// A session past its greeting and EHLO, output and events drained.
fn ready(config: ServerConfig) -> ServerSession {
    let mut s = ServerSession::new(config);
    assert_eq!(take(&mut s), "220 mx.test ESMTP test\r\n");
    s.handle_input(b"EHLO c.test\r\n");
    take(&mut s);
    assert_eq!(
        events(&mut s),
        vec![ServerEvent::Helo {
            name: "c.test".into(),
            extended: true
        }]
    );
    s
}

/// MAIL and RCPTs accepted, DATA answered 354.
fn in_data(config: ServerConfig) -> ServerSession {
    let mut s = ready(config);
    s.handle_input(b"MAIL FROM:<a@x.test>\r\n");
    s.accept(None);
    s.handle_input(b"RCPT TO:<b@y.test>\r\n");
    s.accept(None);
    s.handle_input(b"DATA\r\n");
    assert_eq!(
        take(&mut s),
        "250 2.1.0 OK\r\n250 2.1.5 OK\r\n354 Start mail input; end with <CRLF>.<CRLF>\r\n"
    );
    events(&mut s);
    s
}

fn mb(l: &str, d: &str) -> Mailbox {
    Mailbox::new(l, d)
}

#[test]
fn full_conversation() {
    let mut s = ServerSession::new(cfg());
    assert_eq!(take(&mut s), "220 mx.test ESMTP test\r\n");
    s.handle_input(b"EHLO c.test\r\n");
    assert_eq!(take(&mut s), EHLO_REPLY);
    assert_eq!(
        events(&mut s),
        vec![ServerEvent::Helo {
            name: "c.test".into(),
            extended: true
        }]
    );
    assert!(!s.awaiting_decision());

    s.handle_input(b"MAIL FROM:<a@x.test> BODY=8BITMIME SIZE=30\r\n");
    assert!(s.awaiting_decision());
    assert_eq!(take(&mut s), "");
    let params = MailParams {
        size: Some(30),
        body: Some(BodyType::EightBitMime),
        other: vec![],
    };
    assert_eq!(
        events(&mut s),
        vec![ServerEvent::Mail {
            from: ReversePath::Mailbox(mb("a", "x.test")),
            params: params.clone()
        }]
    );
    s.accept(None);
    assert_eq!(take(&mut s), "250 2.1.0 OK\r\n");

    s.handle_input(b"RCPT TO:<b@y.test>\r\n");
    assert_eq!(
        events(&mut s),
        vec![ServerEvent::Rcpt {
            to: mb("b", "y.test")
        }]
    );
    s.accept(Some("recipient ok"));
    assert_eq!(take(&mut s), "250 2.1.5 recipient ok\r\n");

    s.handle_input(b"DATA\r\n");
    assert_eq!(
        take(&mut s),
        "354 Start mail input; end with <CRLF>.<CRLF>\r\n"
    );
    s.handle_input(b"Subject: t\r\n\r\n..leading dot\r\n\xe9t\xe9\r\n.\r\n");
    assert!(s.awaiting_decision());
    assert_eq!(
        events(&mut s),
        vec![ServerEvent::Message {
            envelope: Envelope {
                helo: "c.test".into(),
                esmtp: true,
                from: ReversePath::Mailbox(mb("a", "x.test")),
                params,
                rcpts: vec![mb("b", "y.test")],
            },
            data: b"Subject: t\r\n\r\n.leading dot\r\n\xe9t\xe9\r\n".to_vec(),
        }]
    );
    s.accept(Some("queued as 1A"));
    assert_eq!(take(&mut s), "250 2.0.0 queued as 1A\r\n");

    // the transaction was reset: RCPT needs a new MAIL
    s.handle_input(b"RCPT TO:<b@y.test>\r\n");
    assert_eq!(take(&mut s), "503 5.5.1 need MAIL command\r\n");

    s.handle_input(b"QUIT\r\n");
    assert_eq!(take(&mut s), "221 2.0.0 mx.test closing connection\r\n");
    assert_eq!(events(&mut s), vec![ServerEvent::Quit]);
    assert!(s.is_closed());
    s.handle_input(b"NOOP\r\n");
    assert_eq!(take(&mut s), "");
}

#[test]
fn helo_gives_plain_250_and_no_parameters() {
    let mut s = ServerSession::new(cfg());
    take(&mut s);
    s.handle_input(b"HELO EXCH_01\r\n");
    assert_eq!(take(&mut s), "250 mx.test Hello EXCH_01\r\n");
    assert_eq!(
        events(&mut s),
        vec![ServerEvent::Helo {
            name: "EXCH_01".into(),
            extended: false
        }]
    );
    s.handle_input(b"MAIL FROM:<a@b> SIZE=10\r\n");
    assert_eq!(take(&mut s), "555 5.5.4 parameters need EHLO\r\n");
    s.handle_input(b"MAIL FROM:<a@b>\r\n");
    assert!(s.awaiting_decision());
}

#[test]
fn strict_order() {
    let mut s = ServerSession::new(cfg());
    take(&mut s);
    s.handle_input(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
    assert_eq!(
        take(&mut s),
        "503 5.5.1 send HELO or EHLO first\r\n503 5.5.1 need MAIL command\r\n503 5.5.1 need MAIL command\r\n"
    );
    s.handle_input(b"EHLO c.test\r\nRCPT TO:<c@d>\r\nDATA\r\n");
    assert_eq!(
        take(&mut s),
        format!("{EHLO_REPLY}503 5.5.1 need MAIL command\r\n503 5.5.1 need MAIL command\r\n")
    );
    s.handle_input(b"MAIL FROM:<a@b>\r\n");
    s.accept(None);
    s.handle_input(b"MAIL FROM:<a@b>\r\nDATA\r\n");
    assert_eq!(
        take(&mut s),
        "250 2.1.0 OK\r\n503 5.5.1 sender already specified\r\n503 5.5.1 no valid recipients\r\n"
    );
    assert_eq!(s.error_count(), 7);
    // none of these asked for a decision
    assert!(
        events(&mut s)
            .iter()
            .all(|e| !matches!(e, ServerEvent::Rcpt { .. }))
    );
}

#[test]
fn rset_noop_vrfy_expn_help() {
    let mut s = ready(cfg());
    s.handle_input(b"MAIL FROM:<a@b>\r\n");
    s.accept(None);
    s.handle_input(b"RSET\r\nNOOP\r\nVRFY john\r\nEXPN staff\r\nHELP\r\nRCPT TO:<c@d>\r\n");
    assert_eq!(
        take(&mut s),
        "250 2.1.0 OK\r\n\
         250 2.0.0 OK\r\n\
         250 2.0.0 OK\r\n\
         252 2.5.2 cannot VRFY user, but will accept message and attempt delivery\r\n\
         502 5.5.1 EXPN not supported\r\n\
         214 2.0.0 commands: EHLO HELO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT\r\n\
         503 5.5.1 need MAIL command\r\n"
    );
    let ev = events(&mut s);
    assert!(ev.contains(&ServerEvent::Reset));
}

#[test]
fn second_ehlo_resets_transaction() {
    let mut s = ready(cfg());
    s.handle_input(b"MAIL FROM:<a@b>\r\n");
    s.accept(None);
    events(&mut s);
    s.handle_input(b"EHLO again.test\r\nRCPT TO:<c@d>\r\n");
    assert_eq!(
        events(&mut s),
        vec![
            ServerEvent::Reset,
            ServerEvent::Helo {
                name: "again.test".into(),
                extended: true
            }
        ]
    );
    let out = take(&mut s);
    assert!(
        out.ends_with("250 ENHANCEDSTATUSCODES\r\n503 5.5.1 need MAIL command\r\n"),
        "{out}"
    );
}

#[test]
fn pipelined_envelope_in_one_packet() {
    let mut s = ready(cfg());
    s.handle_input(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<nobody@y.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n");
    // only MAIL is acted on until it is decided
    assert_eq!(take(&mut s), "");
    assert_eq!(events(&mut s).len(), 1);
    s.accept(None);
    assert_eq!(take(&mut s), "250 2.1.0 OK\r\n");
    assert_eq!(
        events(&mut s),
        vec![ServerEvent::Rcpt {
            to: mb("b", "y.test")
        }]
    );
    s.accept(None);
    assert_eq!(
        events(&mut s),
        vec![ServerEvent::Rcpt {
            to: mb("nobody", "y.test")
        }]
    );
    s.reject(Reply::enhanced(550, 5, 1, 1, "no such user"));
    assert_eq!(
        events(&mut s),
        vec![ServerEvent::Rcpt {
            to: mb("c", "y.test")
        }]
    );
    s.accept(None);
    assert_eq!(
        take(&mut s),
        "250 2.1.5 OK\r\n550 5.1.1 no such user\r\n250 2.1.5 OK\r\n354 Start mail input; end with <CRLF>.<CRLF>\r\n"
    );
    s.handle_input(b"hi\r\n.\r\n");
    match events(&mut s).as_slice() {
        [ServerEvent::Message { envelope, data }] => {
            assert_eq!(envelope.rcpts, vec![mb("b", "y.test"), mb("c", "y.test")]);
            assert_eq!(data, b"hi\r\n");
        }
        other => panic!("{other:?}"),
    }
    // refused recipients are not errors
    assert_eq!(s.error_count(), 0);
}

#[test]
fn all_recipients_refused_gives_554_at_data() {
    let mut s = ready(cfg());
    s.handle_input(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<n1@y.test>\r\nRCPT TO:<n2@y.test>\r\nDATA\r\nhello\r\n.\r\n");
    s.accept(None);
    s.reject(Reply::enhanced(550, 5, 1, 1, "no such user"));
    s.reject(Reply::enhanced(550, 5, 1, 1, "no such user"));
    // the pipelined message text lines after the refused DATA are taken as commands
    assert_eq!(
        take(&mut s),
        "250 2.1.0 OK\r\n550 5.1.1 no such user\r\n550 5.1.1 no such user\r\n554 5.5.1 no valid recipients\r\n\
         500 5.5.1 command unrecognized\r\n500 5.5.1 command unrecognized\r\n"
    );
}

#[test]
fn refused_mail_excuses_the_pipelined_rest() {
    let mut s = ready(ServerConfig {
        max_errors: 2,
        ..cfg()
    });
    s.handle_input(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n");
    s.reject(Reply::enhanced(550, 5, 7, 1, "sender refused"));
    assert_eq!(
        take(&mut s),
        "550 5.7.1 sender refused\r\n503 5.5.1 need MAIL command\r\n503 5.5.1 need MAIL command\r\n503 5.5.1 need MAIL command\r\n"
    );
    assert_eq!(s.error_count(), 0);
    assert!(!s.is_closed());
    s.handle_input(b"RSET\r\nMAIL FROM:<a@x.test>\r\n");
    assert!(s.awaiting_decision());
}

#[test]
fn pipelined_quit_after_final_dot_waits_for_the_decision() {
    let mut s = in_data(cfg());
    s.handle_input(b"line\r\n.\r\nQUIT\r\n");
    assert!(s.awaiting_decision());
    assert_eq!(take(&mut s), "");
    assert!(matches!(
        events(&mut s).as_slice(),
        [ServerEvent::Message { .. }]
    ));
    assert!(!s.is_closed());
    s.accept(None);
    assert_eq!(
        take(&mut s),
        "250 2.0.0 OK\r\n221 2.0.0 mx.test closing connection\r\n"
    );
    assert_eq!(events(&mut s), vec![ServerEvent::Quit]);
    assert!(s.is_closed());
}

#[test]
fn rejected_message_then_pipelined_commands() {
    let mut s = in_data(cfg());
    s.handle_input(b"x\r\n.\r\nMAIL FROM:<a@b>\r\n");
    s.reject(Reply::enhanced(554, 5, 7, 1, "content refused"));
    assert_eq!(take(&mut s), "554 5.7.1 content refused\r\n");
    assert!(s.awaiting_decision());
    assert_eq!(events(&mut s).len(), 2);
}

#[test]
fn reject_with_421_closes() {
    let mut s = ready(cfg());
    s.handle_input(b"MAIL FROM:<a@b>\r\nNOOP\r\n");
    s.reject(Reply::enhanced(421, 4, 3, 0, "mx.test queue full, closing"));
    assert_eq!(take(&mut s), "421 4.3.0 mx.test queue full, closing\r\n");
    assert!(s.is_closed());
}

#[test]
fn reject_with_positive_reply_is_replaced() {
    let mut s = ready(cfg());
    s.handle_input(b"MAIL FROM:<a@b>\r\n");
    s.reject(Reply::enhanced(250, 2, 0, 0, "oops"));
    assert_eq!(
        take(&mut s),
        "451 4.3.0 requested action aborted: local error in processing\r\n"
    );
    s.handle_input(b"RCPT TO:<c@d>\r\n");
    assert_eq!(take(&mut s), "503 5.5.1 need MAIL command\r\n");
}

#[test]
fn dot_unstuffing_and_crlf_dot_crlf() {
    let mut s = in_data(cfg());
    s.handle_input(b"..\r\n...x\r\n.y\r\nz.\r\n \r\n.\r\n");
    match events(&mut s).as_slice() {
        [ServerEvent::Message { data, .. }] => assert_eq!(data, b".\r\n..x\r\ny\r\nz.\r\n \r\n"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn empty_message() {
    let mut s = in_data(cfg());
    s.handle_input(b".\r\n");
    match events(&mut s).as_slice() {
        [ServerEvent::Message { data, .. }] => assert!(data.is_empty()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn lf_dot_lf_does_not_end_data() {
    // the SMTP smuggling pattern: a bare-LF "end" followed by a second transaction
    let mut s = in_data(cfg());
    s.handle_input(b"Subject: a\r\n\r\nbody\n.\nMAIL FROM:<evil@x.test>\r\nRCPT TO:<v@y.test>\r\nDATA\r\nforged\r\n.\r\n");
    assert!(!s.awaiting_decision());
    assert_eq!(events(&mut s), vec![]);
    assert_eq!(
        take(&mut s),
        "554 5.6.2 bare LF or bare CR in message not allowed (RFC 5321 section 2.3.8)\r\n"
    );
    // and the variants LF.CRLF and CRLF.LF
    s.handle_input(b"MAIL FROM:<a@b>\r\n");
    s.accept(None);
    s.handle_input(b"RCPT TO:<c@d>\r\n");
    s.accept(None);
    s.handle_input(b"DATA\r\nx\n.\r\ny\r\n.\nz\r\n.\r\nNOOP\r\n");
    assert_eq!(
        take(&mut s),
        "250 2.1.0 OK\r\n250 2.1.5 OK\r\n354 Start mail input; end with <CRLF>.<CRLF>\r\n\
         554 5.6.2 bare LF or bare CR in message not allowed (RFC 5321 section 2.3.8)\r\n250 2.0.0 OK\r\n"
    );
    assert!(
        events(&mut s)
            .iter()
            .all(|e| !matches!(e, ServerEvent::Message { .. }))
    );
}

#[test]
fn bare_cr_and_nul_in_data() {
    let mut s = in_data(cfg());
    s.handle_input(b"a\rb\r\n.\r\n");
    assert_eq!(
        take(&mut s),
        "554 5.6.2 bare LF or bare CR in message not allowed (RFC 5321 section 2.3.8)\r\n"
    );
    let mut s = in_data(cfg());
    s.handle_input(b"a\0b\r\n.\r\n");
    assert_eq!(
        take(&mut s),
        "554 5.6.0 NUL octet in message not allowed\r\n"
    );
    assert_eq!(events(&mut s), vec![]);
    // the session goes on
    s.handle_input(b"NOOP\r\n");
    assert_eq!(take(&mut s), "250 2.0.0 OK\r\n");
}

#[test]
fn bare_lf_cr_and_nul_in_commands() {
    let mut s = ready(cfg());
    s.handle_input(b"NOOP\n");
    assert_eq!(
        take(&mut s),
        "500 5.5.2 bare LF not allowed (RFC 5321 section 2.3.8)\r\n"
    );
    s.handle_input(b"NO\0OP\r\n");
    assert_eq!(
        take(&mut s),
        "500 5.5.2 NUL octet not allowed in a command\r\n"
    );
    s.handle_input(b"NO\rOP\r\n");
    assert_eq!(
        take(&mut s),
        "500 5.5.2 bare CR not allowed (RFC 5321 section 2.3.8)\r\n"
    );
    // a bare LF cannot split a line into two commands
    s.handle_input(b"MAIL FROM:<a@b>\nRCPT TO:<c@d>\r\n");
    assert_eq!(
        take(&mut s),
        "500 5.5.2 bare LF not allowed (RFC 5321 section 2.3.8)\r\n503 5.5.1 need MAIL command\r\n"
    );
    assert!(!s.awaiting_decision());
    s.handle_input(b"NOOP\r\n");
    assert_eq!(take(&mut s), "250 2.0.0 OK\r\n");
    assert_eq!(s.error_count(), 5);
}

#[test]
fn overlong_command_line() {
    let mut s = ready(cfg());
    let exact = format!("NOOP {}\r\n", "x".repeat(512 - 7));
    assert_eq!(exact.len(), 512);
    s.handle_input(exact.as_bytes());
    assert_eq!(take(&mut s), "250 2.0.0 OK\r\n");
    let long = format!("NOOP {}\r\nNOOP\r\n", "x".repeat(512 - 6));
    s.handle_input(long.as_bytes());
    assert_eq!(take(&mut s), "500 5.5.2 line too long\r\n250 2.0.0 OK\r\n");
    // arriving in pieces, the refusal comes once the limit is passed, the rest is discarded
    let mut s = ready(cfg());
    s.handle_input(format!("MAIL FROM:<a@b> {}", "X".repeat(600)).as_bytes());
    assert_eq!(take(&mut s), "500 5.5.2 line too long\r\n");
    s.handle_input(&[b'Y'; 10_000]);
    s.handle_input(b"\r\nRCPT TO:<c@d>\r\n");
    assert_eq!(take(&mut s), "503 5.5.1 need MAIL command\r\n");
    assert!(!s.awaiting_decision());
    assert_eq!(s.lines_received(), 3);
}

#[test]
fn overlong_command_line_byte_by_byte() {
    let mut s = ready(cfg());
    let input = format!("NOOP {}\r\nNOOP\r\n", "x".repeat(1000));
    for b in input.bytes() {
        s.handle_input(&[b]);
    }
    assert_eq!(take(&mut s), "500 5.5.2 line too long\r\n250 2.0.0 OK\r\n");
}

#[test]
fn overlong_text_line_refused_at_end_of_data() {
    let mut s = in_data(cfg());
    // 998 + CRLF = 1000 is the limit; a stuffing dot does not count
    let ok = format!("{}\r\n.{}\r\n", "a".repeat(998), ".".repeat(998));
    s.handle_input(ok.as_bytes());
    s.handle_input(b".\r\n");
    match events(&mut s).as_slice() {
        [ServerEvent::Message { data, .. }] => assert_eq!(data.len(), 2000),
        other => panic!("{other:?}"),
    }
    s.accept(None);
    take(&mut s);

    s.handle_input(b"MAIL FROM:<a@b>\r\n");
    s.accept(None);
    s.handle_input(b"RCPT TO:<c@d>\r\n");
    s.accept(None);
    s.handle_input(b"DATA\r\n");
    take(&mut s);
    events(&mut s);
    s.handle_input(format!("{}\r\n", "b".repeat(999)).as_bytes());
    s.handle_input(&[b'c'; 5000]);
    s.handle_input(b"c\r\nmore\r\n");
    assert_eq!(take(&mut s), "");
    s.handle_input(b".\r\n");
    assert_eq!(take(&mut s), "500 5.5.2 line too long\r\n");
    assert_eq!(events(&mut s), vec![]);
    s.handle_input(b"NOOP\r\n");
    assert_eq!(take(&mut s), "250 2.0.0 OK\r\n");
}

#[test]
fn oversized_message() {
    let mut s = in_data(ServerConfig {
        max_message_size: 100,
        ..cfg()
    });
    // exactly 100 octets is accepted
    s.handle_input(format!("{}\r\n.\r\n", "a".repeat(98)).as_bytes());
    assert!(s.awaiting_decision());
    s.accept(None);
    take(&mut s);
    s.handle_input(b"MAIL FROM:<a@b>\r\n");
    s.accept(None);
    s.handle_input(b"RCPT TO:<c@d>\r\n");
    s.accept(None);
    s.handle_input(b"DATA\r\n");
    take(&mut s);
    events(&mut s);
    for _ in 0..1000 {
        s.handle_input(b"0123456789012345678901234567890123456789\r\n");
    }
    assert_eq!(take(&mut s), "");
    s.handle_input(b".\r\n");
    assert_eq!(
        take(&mut s),
        "552 5.3.4 message size exceeds fixed maximum message size\r\n"
    );
    assert_eq!(events(&mut s), vec![]);
    assert_eq!(s.error_count(), 0);
    s.handle_input(b"MAIL FROM:<a@b>\r\n");
    assert!(s.awaiting_decision());
}

#[test]
fn size_parameter() {
    let mut s = ready(ServerConfig {
        max_message_size: 100,
        ..cfg()
    });
    s.handle_input(b"MAIL FROM:<a@b> SIZE=101\r\n");
    assert_eq!(
        take(&mut s),
        "552 5.3.4 message size exceeds fixed maximum message size\r\n"
    );
    assert!(!s.awaiting_decision());
    s.handle_input(b"MAIL FROM:<a@b> SIZE=100\r\n");
    assert!(s.awaiting_decision());
}

#[test]
fn unsupported_parameters() {
    let mut s = ready(cfg());
    s.handle_input(b"MAIL FROM:<a@b> RET=HDRS\r\n");
    assert_eq!(take(&mut s), "555 5.5.4 parameter RET not supported\r\n");
    s.handle_input(b"MAIL FROM:<a@b>\r\n");
    s.accept(None);
    s.handle_input(b"RCPT TO:<c@d> NOTIFY=NEVER\r\n");
    assert_eq!(
        take(&mut s),
        "250 2.1.0 OK\r\n555 5.5.4 parameter NOTIFY not supported\r\n"
    );
    s.handle_input(b"MAIL FROM:<a@b> BODY=BINARYMIME\r\n");
    assert_eq!(
        take(&mut s),
        "501 5.5.4 bad parameter: BODY must be 7BIT or 8BITMIME\r\n"
    );
}

#[test]
fn syntax_error_codes() {
    let mut s = ready(cfg());
    s.handle_input(b"MAIL FROM:<a@@b>\r\n");
    assert_eq!(
        take(&mut s),
        "501 5.1.7 bad sender address syntax: malformed domain\r\n"
    );
    s.handle_input(b"MAIL FROM:<a@b>\r\n");
    s.accept(None);
    s.handle_input(b"RCPT TO:<c@>\r\n");
    assert_eq!(
        take(&mut s),
        "250 2.1.0 OK\r\n501 5.1.3 bad recipient address syntax: malformed domain\r\n"
    );
    s.handle_input(b"FROB\r\n");
    assert_eq!(take(&mut s), "500 5.5.1 command unrecognized\r\n");
}

#[test]
fn too_many_recipients() {
    let mut s = ready(ServerConfig {
        max_recipients: 2,
        ..cfg()
    });
    s.handle_input(
        b"MAIL FROM:<a@b>\r\nRCPT TO:<r1@d>\r\nRCPT TO:<r2@d>\r\nRCPT TO:<r3@d>\r\nDATA\r\n",
    );
    s.accept(None);
    s.accept(None);
    s.accept(None);
    assert!(!s.awaiting_decision());
    assert_eq!(
        take(&mut s),
        "250 2.1.0 OK\r\n250 2.1.5 OK\r\n250 2.1.5 OK\r\n452 4.5.3 too many recipients\r\n354 Start mail input; end with <CRLF>.<CRLF>\r\n"
    );
    let rcpt_events = events(&mut s)
        .into_iter()
        .filter(|e| matches!(e, ServerEvent::Rcpt { .. }))
        .count();
    assert_eq!(rcpt_events, 2);
}

#[test]
fn error_count_closes_with_421() {
    let mut s = ready(ServerConfig {
        max_errors: 3,
        ..cfg()
    });
    s.handle_input(b"FOO\r\nBAR\r\nNOOP\r\nMAIL FROM:<x>\r\nNOOP\r\n");
    assert_eq!(
        take(&mut s),
        "500 5.5.1 command unrecognized\r\n500 5.5.1 command unrecognized\r\n250 2.0.0 OK\r\n\
         501 5.1.7 bad sender address syntax: missing @domain\r\n421 4.7.0 mx.test too many errors, closing\r\n"
    );
    assert!(s.is_closed());
}

#[test]
fn default_error_limit_is_ten() {
    let mut s = ready(cfg());
    s.handle_input(&b"XX\r\n".repeat(20));
    let out = take(&mut s);
    assert_eq!(out.matches("500 5.5.1").count(), 10);
    assert!(out.ends_with("421 4.7.0 mx.test too many errors, closing\r\n"));
}

#[test]
fn idle_timeout_and_shutdown() {
    let mut s = ready(cfg());
    s.on_timeout();
    assert_eq!(take(&mut s), "421 4.4.2 mx.test idle timeout, closing\r\n");
    assert!(s.is_closed());
    s.handle_input(b"NOOP\r\n");
    s.on_timeout();
    s.shutdown();
    assert_eq!(take(&mut s), "");

    let mut s = in_data(cfg());
    s.handle_input(b"partial");
    s.shutdown();
    assert_eq!(take(&mut s), "421 4.3.2 mx.test service shutting down\r\n");
    assert!(s.is_closed());
}

#[test]
fn timeout_while_decision_pending_drops_it() {
    let mut s = ready(cfg());
    s.handle_input(b"MAIL FROM:<a@b>\r\n");
    s.on_timeout();
    s.accept(None);
    assert_eq!(take(&mut s), "421 4.4.2 mx.test idle timeout, closing\r\n");
}

#[test]
fn lines_received_counts_commands_and_text() {
    let mut s = ServerSession::new(cfg());
    assert_eq!(s.lines_received(), 0);
    s.handle_input(b"EHLO c\r\nMAIL FROM:<a@b>\r\n");
    assert_eq!(s.lines_received(), 2);
    s.handle_input(b"RCPT TO:<c@d>\r\nDATA\r\n");
    // buffered behind the pending decision, not yet counted
    assert_eq!(s.lines_received(), 2);
    s.accept(None);
    s.accept(None);
    assert_eq!(s.lines_received(), 4);
    s.handle_input(b"a\r\nb\r\npartial");
    assert_eq!(s.lines_received(), 6);
}

#[test]
fn pipelining_abuse_is_capped() {
    let mut s = ready(cfg());
    s.handle_input(b"MAIL FROM:<a@b>\r\n");
    assert!(s.awaiting_decision());
    let flood = b"NOOP\r\n".repeat(MAX_PENDING_INPUT / 6 + 10);
    s.handle_input(&flood);
    assert_eq!(take(&mut s), "");
    assert!(!s.is_closed());
    s.accept(None);
    assert_eq!(
        take(&mut s),
        "250 2.1.0 OK\r\n421 4.7.0 mx.test too much pipelined input, closing\r\n"
    );
    assert!(s.is_closed());
}

#[test]
fn pipelined_input_below_the_cap_is_served() {
    let mut s = ready(cfg());
    s.handle_input(b"MAIL FROM:<a@b>\r\n");
    let burst = b"NOOP\r\n".repeat(MAX_PENDING_INPUT / 6 - 10);
    s.handle_input(&burst);
    s.accept(None);
    let out = take(&mut s);
    assert_eq!(
        out.matches("250 2.0.0 OK\r\n").count(),
        MAX_PENDING_INPUT / 6 - 10
    );
    assert!(!s.is_closed());
}

#[test]
fn postmaster_without_domain() {
    let mut s = ready(cfg());
    s.handle_input(b"MAIL FROM:<>\r\n");
    assert_eq!(
        events(&mut s),
        vec![ServerEvent::Mail {
            from: ReversePath::Null,
            params: MailParams::default()
        }]
    );
    s.accept(None);
    s.handle_input(b"RCPT TO:<Postmaster>\r\n");
    assert_eq!(
        events(&mut s),
        vec![ServerEvent::Rcpt {
            to: Mailbox::postmaster()
        }]
    );
}

#[test]
fn accept_and_reject_without_pending_do_nothing() {
    let mut s = ready(cfg());
    s.accept(None);
    s.reject(Reply::enhanced(550, 5, 0, 0, "x"));
    assert_eq!(take(&mut s), "");
}

#[test]
fn chunking_does_not_change_the_conversation() {
    let script: &[u8] = b"EHLO c.test\r\nMAIL FROM:<a@b> SIZE=12\r\nRCPT TO:<c@d>\r\nDATA\r\n..x\r\nbody\r\n.\r\nNOOP\r\nFOO\r\nQUIT\r\n";
    let run = |step: usize| {
        let mut s = ServerSession::new(cfg());
        let mut all = Vec::new();
        for piece in script.chunks(step) {
            s.handle_input(piece);
            while s.awaiting_decision() {
                s.accept(None);
            }
            all.extend(events(&mut s));
        }
        (take(&mut s), all)
    };
    let whole = run(script.len());
    for step in 1..20 {
        assert_eq!(run(step), whole, "step {step}");
    }
    assert!(whole.0.ends_with("250 2.0.0 OK\r\n250 2.0.0 OK\r\n500 5.5.1 command unrecognized\r\n221 2.0.0 mx.test closing connection\r\n"));
}

#[test]
fn buffered_input_stays_bounded() {
    use mtalab_smtp::server::INPUT_STEP;
    let mut s = ready(cfg());
    // a command line that never ends
    s.handle_input(&vec![b'A'; 1 << 20]);
    assert_eq!(s.buffered_input(), 0);
    s.handle_input(b"\r\nNOOP\r\nNOO");
    assert_eq!(take(&mut s), "500 5.5.2 line too long\r\n250 2.0.0 OK\r\n");
    assert_eq!(s.buffered_input(), 3);
    s.handle_input(b"P\r\n");
    // a message text line that never ends, and a large message
    let mut s = in_data(ServerConfig { max_message_size: 1000, ..cfg() });
    s.handle_input(&vec![b'B'; 1 << 20]);
    assert!(s.buffered_input() <= 1001);
    s.handle_input(b"\r\n");
    s.handle_input(&b"0123456789\r\n".repeat(100_000));
    assert!(s.buffered_input() <= 1001);
    s.handle_input(b".\r\n");
    assert_eq!(take(&mut s), "552 5.3.4 message size exceeds fixed maximum message size\r\n");
    // behind a pending decision
    s.handle_input(b"MAIL FROM:<a@b>\r\n");
    s.handle_input(&b"NOOP\r\n".repeat(100_000));
    assert!(s.buffered_input() <= MAX_PENDING_INPUT + INPUT_STEP);
}
