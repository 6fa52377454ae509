//! Table-driven vectors for the command grammar (RFC 5321 §4.1) and its wire reactions.

use mtalab_smtp::{BodyType, Command, MailParams, Mailbox, ParseError, ReversePath, parse_command};

fn mb(local: &str, domain: &str) -> Mailbox {
    Mailbox::new(local, domain)
}

fn mail(from: ReversePath, params: MailParams) -> Command {
    Command::Mail { from, params }
}

fn rcpt(to: Mailbox) -> Command {
    Command::Rcpt { to, params: vec![] }
}

fn from(local: &str, domain: &str) -> ReversePath {
    ReversePath::Mailbox(mb(local, domain))
}

#[test]
fn valid_lines() {
    let cases: Vec<(&[u8], Command)> = vec![
        (
            b"EHLO client.example",
            Command::Ehlo("client.example".into()),
        ),
        (
            b"ehlo client.example",
            Command::Ehlo("client.example".into()),
        ),
        (b"EhLo [192.0.2.7]", Command::Ehlo("[192.0.2.7]".into())),
        (b"HELO EXCH_01", Command::Helo("EXCH_01".into())),
        (b"HELO host  ", Command::Helo("host".into())),
        (
            b"MAIL FROM:<a@b.example>",
            mail(from("a", "b.example"), MailParams::default()),
        ),
        (
            b"mail from:<a@b.example>",
            mail(from("a", "b.example"), MailParams::default()),
        ),
        (
            b"MAIL FROM: <a@b.example>",
            mail(from("a", "b.example"), MailParams::default()),
        ),
        (
            b"MAIL FROM:<>",
            mail(ReversePath::Null, MailParams::default()),
        ),
        (
            b"MAIL FROM:<> ",
            mail(ReversePath::Null, MailParams::default()),
        ),
        (
            b"MAIL FROM:<a@b> SIZE=12345",
            mail(
                from("a", "b"),
                MailParams {
                    size: Some(12345),
                    ..MailParams::default()
                },
            ),
        ),
        (
            b"MAIL FROM:<a@b> BODY=8BITMIME SIZE=0",
            mail(
                from("a", "b"),
                MailParams {
                    size: Some(0),
                    body: Some(BodyType::EightBitMime),
                    other: vec![],
                },
            ),
        ),
        (
            b"MAIL FROM:<a@b> body=7bit",
            mail(
                from("a", "b"),
                MailParams {
                    body: Some(BodyType::SevenBit),
                    ..MailParams::default()
                },
            ),
        ),
        (
            b"MAIL FROM:<a@b>  ret=HDRS   envid=x+2Bz",
            mail(
                from("a", "b"),
                MailParams {
                    other: vec![
                        ("RET".into(), Some("HDRS".into())),
                        ("ENVID".into(), Some("x+2Bz".into())),
                    ],
                    ..MailParams::default()
                },
            ),
        ),
        (
            b"MAIL FROM:<a@b> SMTPUTF8",
            mail(
                from("a", "b"),
                MailParams {
                    other: vec![("SMTPUTF8".into(), None)],
                    ..MailParams::default()
                },
            ),
        ),
        (
            b"MAIL FROM:<@relay.example:a@b>",
            mail(from("a", "b"), MailParams::default()),
        ),
        (
            b"MAIL FROM:<\"john q\"@b>",
            mail(from("john q", "b"), MailParams::default()),
        ),
        (b"RCPT TO:<x@y.example>", rcpt(mb("x", "y.example"))),
        (b"rcpt to: <x@y.example>", rcpt(mb("x", "y.example"))),
        (b"RCPT TO:<Postmaster>", rcpt(Mailbox::postmaster())),
        (b"RCPT TO:<postmaster>", rcpt(Mailbox::postmaster())),
        (
            b"RCPT TO:<Postmaster@y.example>",
            rcpt(mb("Postmaster", "y.example")),
        ),
        (
            b"RCPT TO:<@a,@b.c:x@[10.0.0.1]>",
            rcpt(mb("x", "[10.0.0.1]")),
        ),
        (b"RCPT TO:<x@[IPv6:::1]>", rcpt(mb("x", "[IPv6:::1]"))),
        (
            b"RCPT TO:<x@y> NOTIFY=NEVER",
            Command::Rcpt {
                to: mb("x", "y"),
                params: vec![("NOTIFY".into(), Some("NEVER".into()))],
            },
        ),
        (b"DATA", Command::Data),
        (b"data ", Command::Data),
        (b"RSET", Command::Rset),
        (b"NOOP", Command::Noop),
        (b"NOOP anything at all", Command::Noop),
        (b"QUIT", Command::Quit),
        (b"VRFY john", Command::Vrfy("john".into())),
        (b"VRFY <a@b>", Command::Vrfy("<a@b>".into())),
        (b"EXPN staff list", Command::Expn("staff list".into())),
        (b"HELP", Command::Help(None)),
        (b"HELP MAIL", Command::Help(Some("MAIL".into()))),
    ];
    for (line, expected) in cases {
        assert_eq!(
            parse_command(line),
            Ok(expected),
            "line {:?}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn invalid_lines_and_their_replies() {
    // (line, reply code, enhanced code)
    let cases: &[(&[u8], u16, &str)] = &[
        (b"", 500, "5.5.1"),
        (b"FOO bar", 500, "5.5.1"),
        (b"STARTTLS", 500, "5.5.1"),
        (b"MAILFROM:<a@b>", 500, "5.5.1"),
        (b"MAIL:FROM:<a@b>", 500, "5.5.1"),
        (b" MAIL FROM:<a@b>", 500, "5.5.1"),
        (b"EHLO", 501, "5.5.4"),
        (b"EHLO   ", 501, "5.5.4"),
        (b"HELO two words", 501, "5.5.4"),
        (b"MAIL", 501, "5.5.4"),
        (b"MAIL TO:<a@b>", 501, "5.5.4"),
        (b"MAIL FROM <a@b>", 501, "5.5.4"),
        (b"MAIL FROM:a@b", 501, "5.1.7"),
        (b"MAIL FROM:<a@b", 501, "5.1.7"),
        (b"MAIL FROM:<a>", 501, "5.1.7"),
        (b"MAIL FROM:<postmaster>", 501, "5.1.7"),
        (b"MAIL FROM:<a..b@c>", 501, "5.1.7"),
        (b"MAIL FROM:<a@b>x", 501, "5.5.4"),
        (b"MAIL FROM:<a@b> SIZE", 501, "5.5.4"),
        (b"MAIL FROM:<a@b> SIZE=abc", 501, "5.5.4"),
        (
            b"MAIL FROM:<a@b> SIZE=99999999999999999999999",
            501,
            "5.5.4",
        ),
        (b"MAIL FROM:<a@b> BODY=BINARYMIME", 501, "5.5.4"),
        (b"MAIL FROM:<a@b> SIZE=1 SIZE=2", 501, "5.5.4"),
        (b"MAIL FROM:<a@b> =x", 501, "5.5.4"),
        (b"MAIL FROM:<a@b> K=a=b", 501, "5.5.4"),
        (
            b"MAIL FROM:<a@b> A B C D E F G H I J K L M N O P Q",
            501,
            "5.5.4",
        ),
        (b"RCPT", 501, "5.5.4"),
        (b"RCPT TO:", 501, "5.1.3"),
        (b"RCPT TO:<>", 501, "5.1.3"),
        (b"RCPT TO:<x@-bad>", 501, "5.1.3"),
        (b"RCPT TO:<x@y>>", 501, "5.5.4"),
        (b"DATA now", 501, "5.5.4"),
        (b"QUIT please", 501, "5.5.4"),
        (b"VRFY", 501, "5.5.4"),
        (b"EXPN ", 501, "5.5.4"),
        (b"VRFY caf\xc3\xa9", 501, "5.5.4"),
        (b"MAIL FROM:<a\0@b>", 500, "5.5.2"),
        (b"NOOP\r", 500, "5.5.2"),
        (b"NO\rOP", 500, "5.5.2"),
        (b"NOOP\nQUIT", 500, "5.5.2"),
    ];
    for (line, code, enhanced) in cases {
        let err = parse_command(line)
            .expect_err(&format!("line {:?} parsed", String::from_utf8_lossy(line)));
        let reply = err.reply();
        assert_eq!(
            (reply.code, reply.enhanced.map(|e| e.to_string())),
            (*code, Some(enhanced.to_string())),
            "line {:?} gave {err:?}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn specific_errors() {
    assert_eq!(parse_command(b"XYZZY"), Err(ParseError::UnknownCommand));
    assert_eq!(parse_command(b"NOOP\0"), Err(ParseError::Nul));
    assert_eq!(parse_command(b"NOOP\nx"), Err(ParseError::BareLf));
    assert_eq!(parse_command(b"NOOP\rx"), Err(ParseError::BareCr));
    assert_eq!(
        parse_command(&vec![b'A'; 70_000]),
        Err(ParseError::LineTooLong)
    );
    let long_local = format!("MAIL FROM:<{}@b>", "a".repeat(65));
    assert!(matches!(
        parse_command(long_local.as_bytes()),
        Err(ParseError::BadSender(_))
    ));
    let long_path = format!("RCPT TO:<a@{}>", vec!["d".repeat(60); 5].join("."));
    assert!(matches!(
        parse_command(long_path.as_bytes()),
        Err(ParseError::BadRecipient(_))
    ));
    assert_eq!(
        ParseError::BareLf.reply().to_string(),
        "500 5.5.2 bare LF not allowed (RFC 5321 section 2.3.8)"
    );
    assert_eq!(
        ParseError::LineTooLong.reply().to_string(),
        "500 5.5.2 line too long"
    );
    assert_eq!(
        ParseError::UnknownCommand.reply().to_string(),
        "500 5.5.1 command unrecognized"
    );
}

#[test]
fn encode_vectors() {
    let cases: Vec<(Command, &[u8])> = vec![
        (Command::Ehlo("c.example".into()), b"EHLO c.example\r\n"),
        (Command::Helo("c".into()), b"HELO c\r\n"),
        (
            mail(ReversePath::Null, MailParams::default()),
            b"MAIL FROM:<>\r\n",
        ),
        (
            mail(
                from("a b", "c"),
                MailParams {
                    size: Some(10),
                    body: Some(BodyType::EightBitMime),
                    other: vec![
                        ("RET".into(), Some("FULL".into())),
                        ("SMTPUTF8".into(), None),
                    ],
                },
            ),
            b"MAIL FROM:<\"a b\"@c> SIZE=10 BODY=8BITMIME RET=FULL SMTPUTF8\r\n",
        ),
        (rcpt(Mailbox::postmaster()), b"RCPT TO:<postmaster>\r\n"),
        (rcpt(mb("x", "[10.1.1.1]")), b"RCPT TO:<x@[10.1.1.1]>\r\n"),
        (Command::Data, b"DATA\r\n"),
        (Command::Rset, b"RSET\r\n"),
        (Command::Noop, b"NOOP\r\n"),
        (Command::Quit, b"QUIT\r\n"),
        (Command::Vrfy("x".into()), b"VRFY x\r\n"),
        (Command::Expn("x".into()), b"EXPN x\r\n"),
        (Command::Help(None), b"HELP\r\n"),
        (Command::Help(Some("DATA".into())), b"HELP DATA\r\n"),
        // an argument cannot smuggle a second command
        (Command::Helo("x\r\nQUIT".into()), b"HELO x??QUIT\r\n"),
    ];
    for (command, wire) in cases {
        let mut out = Vec::new();
        command.encode(&mut out);
        assert_eq!(out, wire, "{command:?}");
    }
}
