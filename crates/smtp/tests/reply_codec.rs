//! Reply encoding and incremental parsing (RFC 5321 §4.2, RFC 2034 §3).

use mtalab_smtp::reply::{MAX_REPLY_LINE, MAX_REPLY_LINES};
use mtalab_smtp::{EnhancedCode, ParseError, Reply, ReplyParser};

fn encode(reply: &Reply) -> Vec<u8> {
    let mut out = Vec::new();
    reply.encode(&mut out);
    out
}

fn parse_all(bytes: &[u8]) -> Result<Vec<Reply>, ParseError> {
    let mut p = ReplyParser::new();
    p.push(bytes);
    let mut out = Vec::new();
    while let Some(r) = p.next_reply()? {
        out.push(r);
    }
    Ok(out)
}

#[test]
fn encode_vectors() {
    let cases: Vec<(Reply, &[u8])> = vec![
        (
            Reply::new(220, None, "mx.example ESMTP"),
            b"220 mx.example ESMTP\r\n",
        ),
        (Reply::enhanced(250, 2, 1, 0, "OK"), b"250 2.1.0 OK\r\n"),
        (
            Reply::enhanced(250, 2, 0, 0, "a\nb"),
            b"250-2.0.0 a\r\n250 2.0.0 b\r\n",
        ),
        (
            Reply::new(250, None, "mx Hello c\nPIPELINING\nSIZE 100"),
            b"250-mx Hello c\r\n250-PIPELINING\r\n250 SIZE 100\r\n",
        ),
        (Reply::new(250, None, ""), b"250\r\n"),
        (Reply::new(250, None, "a\n"), b"250-a\r\n250\r\n"),
        (Reply::enhanced(250, 2, 0, 0, ""), b"250 2.0.0\r\n"),
        (
            Reply::new(354, None, "Start mail input; end with <CRLF>.<CRLF>"),
            b"354 Start mail input; end with <CRLF>.<CRLF>\r\n",
        ),
        (
            Reply::new(550, None, "caf\u{e9}\r\nx"),
            b"550-caf?\r\n550 x\r\n",
        ),
    ];
    for (reply, wire) in cases {
        assert_eq!(encode(&reply), wire, "{reply:?}");
        assert_eq!(reply.to_bytes(), wire);
    }
}

#[test]
fn display_and_text() {
    let r = Reply::enhanced(550, 5, 1, 1, "no such\nuser");
    assert_eq!(r.to_string(), "550 5.1.1 no such user");
    assert_eq!(r.text(), "no such user");
    assert_eq!(Reply::new(250, None, "").to_string(), "250");
    assert!(r.is_permanent() && !r.is_transient() && !r.is_positive());
    let t = Reply::enhanced(451, 4, 3, 0, "later");
    assert!(t.is_transient() && !t.is_permanent());
    assert!(Reply::new(354, None, "go").is_positive());
    assert!(!Reply::new(354, None, "go").is_completion());
    assert!(Reply::new(250, None, "ok").is_completion());
}

#[test]
fn parses_single_and_multi_line() {
    let replies = parse_all(
        b"220 mx.example ESMTP ready\r\n\
          250-mx.example Hello c\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 ENHANCEDSTATUSCODES\r\n\
          250-2.1.5 first\r\n250 2.1.5 second\r\n\
          550 5.1.1 <u@x>: no such user\r\n\
          221\r\n\
          250-\r\n250 end\r\n",
    )
    .unwrap();
    assert_eq!(replies.len(), 6);
    assert_eq!(replies[0], Reply::new(220, None, "mx.example ESMTP ready"));
    assert_eq!(
        replies[1].lines,
        vec![
            "mx.example Hello c",
            "PIPELINING",
            "SIZE 1000",
            "ENHANCEDSTATUSCODES"
        ]
    );
    assert_eq!(replies[1].enhanced, None);
    assert_eq!(replies[2], Reply::enhanced(250, 2, 1, 5, "first\nsecond"));
    assert_eq!(replies[3].enhanced, Some(EnhancedCode::new(5, 1, 1)));
    assert_eq!(replies[3].text(), "<u@x>: no such user");
    assert_eq!(replies[4], Reply::new(221, None, ""));
    assert_eq!(replies[5].lines, vec!["", "end"]);
}

#[test]
fn enhanced_code_on_first_line_only() {
    let r = &parse_all(b"250-2.0.0 first\r\n250 second\r\n").unwrap()[0];
    assert_eq!(r.enhanced, Some(EnhancedCode::new(2, 0, 0)));
    assert_eq!(r.lines, vec!["first", "second"]);
    // a different code on a later line is text
    let r = &parse_all(b"250-2.0.0 first\r\n250 2.1.0 second\r\n").unwrap()[0];
    assert_eq!(r.lines, vec!["first", "2.1.0 second"]);
}

#[test]
fn incremental_byte_by_byte() {
    let wire = b"250-2.0.0 a\r\n250-2.0.0 b\r\n250 2.0.0 c\r\n354 go\r\n";
    let mut p = ReplyParser::new();
    let mut got = Vec::new();
    for &b in wire.iter() {
        p.push(&[b]);
        while let Some(r) = p.next_reply().unwrap() {
            got.push(r);
        }
    }
    assert_eq!(
        got,
        vec![
            Reply::enhanced(250, 2, 0, 0, "a\nb\nc"),
            Reply::new(354, None, "go")
        ]
    );
}

#[test]
fn bare_lf_line_ends_are_read() {
    assert_eq!(
        parse_all(b"250 ok\n").unwrap(),
        vec![Reply::new(250, None, "ok")]
    );
}

#[test]
fn malformed_replies() {
    let cases: &[&[u8]] = &[
        b"25 ok\r\n",
        b"abc ok\r\n",
        b"150 ok\r\n",
        b"650 ok\r\n",
        b"250x ok\r\n",
        b"250-a\r\n251 b\r\n",
        b"\r\n",
    ];
    for wire in cases {
        assert!(
            matches!(parse_all(wire), Err(ParseError::BadReply(_))),
            "{:?} gave {:?}",
            String::from_utf8_lossy(wire),
            parse_all(wire)
        );
    }
}

#[test]
fn caps() {
    let mut long = b"250 ".to_vec();
    long.extend(std::iter::repeat_n(b'x', MAX_REPLY_LINE));
    // rejected before any line end arrives
    let mut p = ReplyParser::new();
    p.push(&long);
    assert_eq!(p.next_reply(), Err(ParseError::ReplyLineTooLong));
    // and with a line end
    long.extend_from_slice(b"\r\n");
    assert_eq!(parse_all(&long), Err(ParseError::ReplyLineTooLong));
    // a line of exactly the cap is fine
    let mut exact = b"250 ".to_vec();
    exact.extend(std::iter::repeat_n(b'x', MAX_REPLY_LINE - 6));
    exact.extend_from_slice(b"\r\n");
    assert_eq!(exact.len(), MAX_REPLY_LINE);
    assert_eq!(parse_all(&exact).unwrap().len(), 1);

    let mut many = b"250-x\r\n".repeat(MAX_REPLY_LINES);
    many.extend_from_slice(b"250 x\r\n");
    assert_eq!(parse_all(&many), Err(ParseError::TooManyReplyLines));
    let mut enough = b"250-x\r\n".repeat(MAX_REPLY_LINES - 1);
    enough.extend_from_slice(b"250 x\r\n");
    assert_eq!(parse_all(&enough).unwrap()[0].lines.len(), MAX_REPLY_LINES);
}

#[test]
fn parser_state_clears_after_error() {
    let mut p = ReplyParser::new();
    p.push(b"250-a\r\nxyz\r\n");
    assert!(p.next_reply().is_err());
    p.push(b"250 fresh\r\n");
    assert_eq!(p.next_reply(), Ok(Some(Reply::new(250, None, "fresh"))));
}
