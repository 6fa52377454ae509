//! Feeds arbitrary bytes, cut into pieces, to a server session that accepts every decision.
//!
//! Properties: no panic; output stays within a fixed factor of the input; buffered input stays
//! within its documented bound; messages stay within the size limit; every output line is a
//! well-formed reply.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mtalab_smtp::server::{INPUT_STEP, MAX_PENDING_INPUT};
use mtalab_smtp::{Reply, ReplyParser, ServerConfig, ServerEvent, ServerSession};

const MAX_MESSAGE: usize = 2048;

fuzz_target!(|data: &[u8]| {
    let (head, input) = data.split_at(data.len().min(2));
    let step = usize::from(head.first().copied().unwrap_or(0)) + 1;
    let reject_mask = head.get(1).copied().unwrap_or(0);
    let mut session = ServerSession::new(ServerConfig {
        hostname: "fuzz.test".into(),
        max_message_size: MAX_MESSAGE,
        max_recipients: 4,
        max_command_line: 128,
        max_text_line: 200,
        max_errors: 50,
        ..ServerConfig::default()
    });
    let mut out = Vec::new();
    let mut fed = 0usize;
    let mut decisions = 0u32;
    for piece in input.chunks(step) {
        session.handle_input(piece);
        fed += piece.len();
        loop {
            while let Some(event) = session.poll_event() {
                if let ServerEvent::Message { data, envelope } = &event {
                    assert!(data.len() <= MAX_MESSAGE);
                    assert!(!envelope.rcpts.is_empty() && envelope.rcpts.len() <= 4);
                }
            }
            if !session.awaiting_decision() {
                break;
            }
            decisions += 1;
            if reject_mask & (1 << (decisions % 8)) != 0 {
                session.reject(Reply::enhanced(550, 5, 7, 1, "refused"));
            } else {
                session.accept(None);
            }
        }
        assert!(session.buffered_input() <= MAX_PENDING_INPUT + INPUT_STEP);
        session.poll_transmit(&mut out);
        assert!(
            out.len() <= 1024 + 64 * fed,
            "{} octets out for {fed} in",
            out.len()
        );
    }
    let mut replies = ReplyParser::new();
    replies.push(&out);
    while let Some(reply) = replies.next_reply().expect("server output is well-formed") {
        assert!((200..600).contains(&reply.code));
    }
});
