//! Fuzzes the command grammar and the reply parser with arbitrary bytes.
//!
//! Properties: neither panics; a parsed command re-encodes to a line that parses to the same
//! command; a parsed reply re-encodes to bytes that parse to the same reply.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtalab_smtp::{ReplyParser, parse_command};

fuzz_target!(|data: &[u8]| {
    if let Ok(command) = parse_command(data) {
        let mut wire = Vec::new();
        command.encode(&mut wire);
        assert!(wire.ends_with(b"\r\n"));
        let line = &wire[..wire.len() - 2];
        assert!(!line.contains(&b'\r') && !line.contains(&b'\n'));
        assert_eq!(
            parse_command(line).as_ref(),
            Ok(&command),
            "re-encoded as {:?}",
            String::from_utf8_lossy(line)
        );
    }

    let mut parser = ReplyParser::new();
    let step = usize::from(data.first().copied().unwrap_or(1)).max(1);
    for piece in data.chunks(step) {
        parser.push(piece);
        loop {
            match parser.next_reply() {
                Ok(Some(reply)) => {
                    assert!((200..600).contains(&reply.code));
                    // lines near the cap may grow past it when an enhanced code is repeated
                    if reply.lines.iter().all(|l| l.len() < 1000) {
                        let mut again = ReplyParser::new();
                        again.push(&reply.to_bytes());
                        assert_eq!(again.next_reply(), Ok(Some(reply)));
                    }
                }
                Ok(None) => break,
                Err(_) => break,
            }
        }
    }
});
