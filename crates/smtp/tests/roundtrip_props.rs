//! Property tests: command and reply round trips, dot-stuffing against the server's
//! unstuffing, and the server's indifference to how input is cut into pieces.

use mtalab_smtp::{
    BodyType, Command, EnhancedCode, MailParams, Mailbox, Reply, ReplyParser, ReversePath,
    ServerConfig, ServerEvent, ServerSession, dot_stuff, parse_command,
};
use proptest::prelude::*;

fn label() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9]([a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?"
}

fn domain() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::collection::vec(label(), 1..4).prop_map(|l| l.join(".")),
        1 => (0u8..=255, 0u8..=255).prop_map(|(a, b)| format!("[192.0.{a}.{b}]")),
        1 => Just("[IPv6:2001:db8::25]".to_string()),
    ]
}

fn local() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]{1,10}(\\.[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]{1,10}){0,2}",
        1 => "[ -~]{0,20}",
    ]
}

fn mailbox() -> impl Strategy<Value = Mailbox> {
    (local(), domain()).prop_map(|(l, d)| Mailbox::new(l, d))
}

fn printable_word() -> impl Strategy<Value = String> {
    "[!-~]{1,40}"
}

fn free_text() -> impl Strategy<Value = String> {
    "[!-~]([ -~]{0,30}[!-~])?"
}

fn keyword() -> impl Strategy<Value = String> {
    "[A-Z][A-Z0-9-]{0,8}".prop_filter("SIZE and BODY are typed", |k| k != "SIZE" && k != "BODY")
}

fn params() -> impl Strategy<Value = Vec<(String, Option<String>)>> {
    prop::collection::btree_map(keyword(), prop::option::of("[!-<>-~]{1,10}"), 0..4)
        .prop_map(|m| m.into_iter().collect())
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        printable_word().prop_map(Command::Ehlo),
        printable_word().prop_map(Command::Helo),
        (
            prop::option::of(mailbox()),
            prop::option::of(any::<u64>()),
            prop::option::of(prop_oneof![
                Just(BodyType::SevenBit),
                Just(BodyType::EightBitMime)
            ]),
            params()
        )
            .prop_map(|(from, size, body, other)| Command::Mail {
                from: from.map_or(ReversePath::Null, ReversePath::Mailbox),
                params: MailParams { size, body, other },
            }),
        (
            prop_oneof![4 => mailbox(), 1 => Just(Mailbox::postmaster())],
            params()
        )
            .prop_map(|(to, params)| Command::Rcpt { to, params }),
        Just(Command::Data),
        Just(Command::Rset),
        Just(Command::Noop),
        Just(Command::Quit),
        free_text().prop_map(Command::Vrfy),
        free_text().prop_map(Command::Expn),
        prop::option::of(free_text()).prop_map(Command::Help),
    ]
}

fn reply() -> impl Strategy<Value = Reply> {
    (
        2u16..=5,
        0u16..100,
        prop::option::of((
            prop_oneof![Just(2u8), Just(4), Just(5)],
            0u16..1000,
            0u16..1000,
        )),
        // no digits, so no text can pass for an enhanced code
        prop::collection::vec("[a-zA-Z \t,;:<>@.()\\[\\]-]{0,40}", 1..6),
    )
        .prop_map(|(hundreds, rest, enhanced, lines)| Reply {
            code: hundreds * 100 + rest,
            enhanced: enhanced.map(|(c, s, d)| EnhancedCode::new(c, s, d)),
            lines,
        })
}

/// A CRLF message body: lines of any octets but CR, LF and NUL.
fn crlf_body() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        3 => prop::collection::vec(prop::num::u8::ANY.prop_filter("no line-end or NUL octets", |c| !matches!(c, b'\r' | b'\n' | 0)), 0..120),
        1 => prop::collection::vec(prop_oneof![Just(b'.'), Just(b' '), Just(b'x')], 0..5),
    ];
    prop::collection::vec(line, 0..20).prop_map(|lines| {
        let mut body = Vec::new();
        for l in lines {
            body.extend_from_slice(&l);
            body.extend_from_slice(b"\r\n");
        }
        body
    })
}

fn cut_points(len: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0..=len, 0..8).prop_map(|mut v| {
        v.sort_unstable();
        v
    })
}

fn pieces<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    for &c in cuts {
        let c = c.min(bytes.len());
        out.push(&bytes[start..c.max(start)]);
        start = c.max(start);
    }
    out.push(&bytes[start..]);
    out
}

/// Runs `pieces` through a fresh server that accepts every decision; returns all its output
/// and events.
fn run_server(pieces: &[&[u8]]) -> (Vec<u8>, Vec<ServerEvent>) {
    let mut s = ServerSession::new(ServerConfig {
        max_message_size: 4096,
        max_recipients: 3,
        max_command_line: 64,
        max_text_line: 80,
        ..ServerConfig::default()
    });
    let mut out = Vec::new();
    let mut events = Vec::new();
    for piece in pieces {
        s.handle_input(piece);
        loop {
            while let Some(e) = s.poll_event() {
                events.push(e);
            }
            if !s.awaiting_decision() {
                break;
            }
            s.accept(None);
        }
    }
    s.poll_transmit(&mut out);
    (out, events)
}

fn smtp_ish_input() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b"EHLO x\r\n".to_vec()),
        Just(b"HELO x\r\n".to_vec()),
        Just(b"MAIL FROM:<a@b>\r\n".to_vec()),
        Just(b"MAIL FROM:<a@b> SIZE=99999\r\n".to_vec()),
        Just(b"RCPT TO:<c@d>\r\n".to_vec()),
        Just(b"DATA\r\n".to_vec()),
        Just(b"RSET\r\n".to_vec()),
        Just(b"NOOP\r\n".to_vec()),
        Just(b".\r\n".to_vec()),
        Just(b"..x\r\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\0".to_vec()),
        Just(vec![b'z'; 100]),
        Just(b"QUIT\r\n".to_vec()),
        prop::collection::vec(any::<u8>(), 0..20),
    ];
    prop::collection::vec(token, 0..40).prop_map(|t| t.concat())
}

proptest! {
    #[test]
    fn command_encode_parse_round_trip(cmd in command()) {
        let mut wire = Vec::new();
        cmd.encode(&mut wire);
        prop_assert!(wire.ends_with(b"\r\n"));
        let line = &wire[..wire.len() - 2];
        prop_assert!(!line.contains(&b'\n') && !line.contains(&b'\r'));
        prop_assert_eq!(parse_command(line), Ok(cmd));
    }

    #[test]
    fn mailbox_display_parse_round_trip(m in mailbox()) {
        prop_assert_eq!(Mailbox::parse(&m.to_string()), Ok(m));
    }

    #[test]
    fn reply_encode_parse_round_trip(r in reply(), cuts in cut_points(400)) {
        let mut wire = Vec::new();
        r.encode(&mut wire);
        wire.extend_from_slice(b"250 next\r\n");
        let mut p = ReplyParser::new();
        let mut got = Vec::new();
        for piece in pieces(&wire, &cuts) {
            p.push(piece);
            while let Some(reply) = p.next_reply().unwrap() {
                got.push(reply);
            }
        }
        prop_assert_eq!(got, vec![r, Reply::new(250, None, "next")]);
    }

    #[test]
    fn parse_command_never_panics(line in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_command(&line);
    }

    #[test]
    fn dot_stuff_then_server_unstuff_is_identity(body in crlf_body(), cuts in cut_points(3000)) {
        let mut wire = b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n".to_vec();
        dot_stuff(&body, &mut wire);
        wire.extend_from_slice(b"QUIT\r\n");
        let mut s = ServerSession::new(ServerConfig::default());
        let mut messages = Vec::new();
        for piece in pieces(&wire, &cuts) {
            s.handle_input(piece);
            loop {
                while let Some(e) = s.poll_event() {
                    if let ServerEvent::Message { data, .. } = e {
                        messages.push(data);
                    }
                }
                if !s.awaiting_decision() {
                    break;
                }
                s.accept(None);
            }
        }
        prop_assert!(s.is_closed());
        prop_assert_eq!(messages, vec![body]);
    }

    #[test]
    fn server_output_does_not_depend_on_chunking(input in smtp_ish_input(), cuts in cut_points(2000)) {
        let whole = run_server(&[&input]);
        let cut = run_server(&pieces(&input, &cuts));
        prop_assert_eq!(&whole, &cut);
        let bytewise: Vec<&[u8]> = input.chunks(1).collect();
        prop_assert_eq!(&whole, &run_server(&bytewise));
        // every reply line is well formed
        let mut p = ReplyParser::new();
        p.push(&whole.0);
        while let Some(r) = p.next_reply().unwrap() {
            prop_assert!((200..600).contains(&r.code));
        }
    }
}
