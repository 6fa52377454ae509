//! A ClientSession and a ServerSession wired back to back in memory.

use mtalab_smtp::data::message_size;
use mtalab_smtp::{
    BodyType, ClientConfig, ClientError, ClientEvent, ClientSession, Mailbox, Reply, ReversePath,
    ServerConfig, ServerEvent, ServerSession, Transaction, TransactionResult,
};

type Policy = Box<dyn FnMut(&ServerEvent) -> Option<Reply>>;
type Filter = Box<dyn FnMut(Vec<u8>) -> Vec<u8>>;

/// The two sessions, what crossed the wire, and what each side reported.
struct Pair {
    client: ClientSession,
    server: ServerSession,
    /// Decides Mail/Rcpt/Message events: `None` accepts, `Some(reply)` rejects.
    policy: Policy,
    /// Rewrites server-to-client bytes (to play a server with other extensions).
    filter: Filter,
    /// Largest piece handed to either side at once.
    chunk: usize,
    c2s: Vec<u8>,
    client_events: Vec<ClientEvent>,
    server_events: Vec<ServerEvent>,
}

impl Pair {
    fn new(config: ServerConfig) -> Pair {
        Pair {
            client: ClientSession::new(ClientConfig {
                helo: "client.test".into(),
            }),
            server: ServerSession::new(config),
            policy: Box::new(|_| None),
            filter: Box::new(|b| b),
            chunk: usize::MAX,
            c2s: Vec::new(),
            client_events: Vec::new(),
            server_events: Vec::new(),
        }
    }

    fn pump(&mut self) {
        loop {
            let mut progressed = false;
            let mut s2c = Vec::new();
            self.server.poll_transmit(&mut s2c);
            let s2c = (self.filter)(s2c);
            for piece in s2c.chunks(self.chunk.max(1)) {
                self.client.handle_input(piece).expect("server speaks SMTP");
                progressed = true;
            }
            let mut c2s = Vec::new();
            self.client.poll_transmit(&mut c2s);
            for piece in c2s.chunks(self.chunk.max(1)) {
                self.c2s.extend_from_slice(piece);
                self.server.handle_input(piece);
                progressed = true;
            }
            while let Some(ev) = self.server.poll_event() {
                if matches!(
                    ev,
                    ServerEvent::Mail { .. }
                        | ServerEvent::Rcpt { .. }
                        | ServerEvent::Message { .. }
                ) {
                    assert!(self.server.awaiting_decision());
                    match (self.policy)(&ev) {
                        None => self.server.accept(None),
                        Some(reply) => self.server.reject(reply),
                    }
                }
                self.server_events.push(ev);
                progressed = true;
            }
            while let Some(ev) = self.client.poll_event() {
                self.client_events.push(ev);
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
    }

    fn messages(&self) -> Vec<(mtalab_smtp::Envelope, Vec<u8>)> {
        self.server_events
            .iter()
            .filter_map(|e| match e {
                ServerEvent::Message { envelope, data } => Some((envelope.clone(), data.clone())),
                _ => None,
            })
            .collect()
    }

    fn results(&self) -> Vec<TransactionResult> {
        self.client_events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Done(r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    }
}

fn cfg() -> ServerConfig {
    ServerConfig {
        hostname: "mx.test".into(),
        greeting: "ESMTP test".into(),
        ..ServerConfig::default()
    }
}

fn mb(s: &str) -> Mailbox {
    Mailbox::parse(s).unwrap()
}

fn txn(from: &str, rcpts: &[&str], data: &[u8]) -> Transaction {
    Transaction {
        from: if from.is_empty() {
            ReversePath::Null
        } else {
            ReversePath::Mailbox(mb(from))
        },
        rcpts: rcpts.iter().map(|r| mb(r)).collect(),
        data: data.to_vec(),
    }
}

/// What the server must store for `body`: CRLF line ends, last line terminated.
fn normalized(body: &[u8]) -> Vec<u8> {
    let mut wire = Vec::new();
    mtalab_smtp::dot_stuff(body, &mut wire);
    let mut out = Vec::new();
    let body_wire = &wire[..wire.len() - 3];
    for line in body_wire.split_inclusive(|&c| c == b'\n') {
        out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
    }
    out
}

fn bodies() -> Vec<Vec<u8>> {
    vec![
        b"Subject: plain\r\n\r\nhello\r\n".to_vec(),
        b"Subject: dots\r\n\r\n.\r\n..\r\n.leading\r\n...\r\nend.\r\n".to_vec(),
        b"Subject: 8bit\r\n\r\ncaf\xc3\xa9 \xff\x80\r\n".to_vec(),
        b"Subject: bare lf\n\nunix line ends\n.dot\nno final newline".to_vec(),
        Vec::new(),
        b".".to_vec(),
    ]
}

#[test]
fn pipelined_transactions_deliver_exact_bytes() {
    for chunk in [usize::MAX, 7, 1] {
        let mut p = Pair::new(cfg());
        p.chunk = chunk;
        p.pump();
        assert_eq!(
            p.client_events,
            vec![ClientEvent::Ready {
                esmtp: true,
                pipelining: true,
                size: Some(10 * 1024 * 1024),
                eightbitmime: true
            }]
        );
        let bodies = bodies();
        for (i, body) in bodies.iter().enumerate() {
            let from = if i == 4 { "" } else { "sender@a.test" };
            p.client.send(txn(
                from,
                &["r1@b.test", "\"r two\"@b.test", "Postmaster"],
                body,
            ));
        }
        p.client.quit();
        p.pump();

        let msgs = p.messages();
        assert_eq!(msgs.len(), bodies.len());
        for ((envelope, data), body) in msgs.iter().zip(&bodies) {
            assert_eq!(data, &normalized(body), "chunk {chunk}");
            assert_eq!(
                envelope.rcpts,
                vec![
                    mb("r1@b.test"),
                    Mailbox::new("r two", "b.test"),
                    Mailbox::postmaster()
                ]
            );
            assert_eq!(envelope.params.size, Some(message_size(body)));
            assert_eq!(data.len() as u64, message_size(body));
            let eight = body.iter().any(|&c| c >= 0x80);
            assert_eq!(
                envelope.params.body,
                eight.then_some(BodyType::EightBitMime)
            );
            assert_eq!(envelope.helo, "client.test");
            assert!(envelope.esmtp);
        }
        assert_eq!(msgs[4].0.from, ReversePath::Null);
        let results = p.results();
        assert_eq!(results.len(), bodies.len());
        for r in &results {
            assert!(r.all_delivered());
            assert_eq!(r.delivered().len(), 3);
            assert_eq!(r.data, Some(Reply::enhanced(250, 2, 0, 0, "OK")));
        }
        assert_eq!(p.client_events.last(), Some(&ClientEvent::Closed));
        assert!(p.client.is_closed());
        assert!(p.server.is_closed());
        // one pipelined group per transaction: no RSET was needed
        assert!(!String::from_utf8_lossy(&p.c2s).contains("RSET"));
    }
}

#[test]
fn first_transaction_goes_out_as_one_group() {
    let mut p = Pair::new(cfg());
    p.pump();
    p.client
        .send(txn("a@x.test", &["b@y.test", "c@y.test"], b"hi\r\n"));
    let mut group = Vec::new();
    p.client.poll_transmit(&mut group);
    assert_eq!(
        String::from_utf8(group).unwrap(),
        "MAIL FROM:<a@x.test> SIZE=4\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n"
    );
}

/// Removes PIPELINING from the EHLO reply, leaving the rest.
fn without_pipelining(bytes: Vec<u8>) -> Vec<u8> {
    let s = String::from_utf8(bytes).unwrap();
    s.replace("250-PIPELINING\r\n", "").into_bytes()
}

#[test]
fn lock_step_without_pipelining() {
    let mut p = Pair::new(cfg());
    p.filter = Box::new(without_pipelining);
    p.pump();
    assert_eq!(
        p.client_events,
        vec![ClientEvent::Ready {
            esmtp: true,
            pipelining: false,
            size: Some(10 * 1024 * 1024),
            eightbitmime: true
        }]
    );
    p.client.send(txn(
        "a@x.test",
        &["b@y.test", "c@y.test"],
        b".hidden\r\nbody\r\n",
    ));
    // lock-step: only MAIL goes out before its reply
    let mut first = Vec::new();
    p.client.poll_transmit(&mut first);
    assert_eq!(first, b"MAIL FROM:<a@x.test> SIZE=15\r\n");
    p.server.handle_input(&first);
    p.c2s.extend_from_slice(&first);
    p.pump();
    p.client
        .send(txn("a@x.test", &["d@y.test"], b"second\xe9\r\n"));
    p.client.quit();
    p.pump();
    let wire = String::from_utf8_lossy(&p.c2s).into_owned();
    assert_eq!(
        wire,
        "EHLO client.test\r\n\
         MAIL FROM:<a@x.test> SIZE=15\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n..hidden\r\nbody\r\n.\r\n\
         MAIL FROM:<a@x.test> SIZE=9 BODY=8BITMIME\r\nRCPT TO:<d@y.test>\r\nDATA\r\nsecond\u{fffd}\r\n.\r\n\
         QUIT\r\n"
    );
    let msgs = p.messages();
    assert_eq!(msgs[0].1, b".hidden\r\nbody\r\n");
    assert_eq!(msgs[1].1, b"second\xe9\r\n");
    assert_eq!(p.results().len(), 2);
}

#[test]
fn helo_fallback_when_ehlo_is_refused() {
    let mut p = Pair::new(cfg());
    let mut first = true;
    p.filter = Box::new(move |bytes| {
        let s = String::from_utf8(bytes).unwrap();
        if first && s.contains("ENHANCEDSTATUSCODES") {
            first = false;
            let tail = s
                .split("250 ENHANCEDSTATUSCODES\r\n")
                .nth(1)
                .unwrap_or("")
                .to_string();
            return format!("500 5.5.1 command unrecognized\r\n{tail}").into_bytes();
        }
        s.into_bytes()
    });
    p.pump();
    assert_eq!(
        p.client_events,
        vec![ClientEvent::Ready {
            esmtp: false,
            pipelining: false,
            size: None,
            eightbitmime: false
        }]
    );
    p.client
        .send(txn("a@x.test", &["b@y.test"], b"8bit \xe9 sent as is\r\n"));
    p.pump();
    let wire = String::from_utf8_lossy(&p.c2s).into_owned();
    assert!(wire.starts_with("EHLO client.test\r\nHELO client.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n"), "{wire}");
    let msgs = p.messages();
    assert_eq!(msgs.len(), 1);
    assert!(!msgs[0].0.esmtp);
    assert_eq!(msgs[0].1, b"8bit \xe9 sent as is\r\n");
}

#[test]
fn refused_recipients_are_reported_and_others_delivered() {
    for pipelining in [true, false] {
        let mut p = Pair::new(cfg());
        if !pipelining {
            p.filter = Box::new(without_pipelining);
        }
        p.policy = Box::new(|ev| match ev {
            ServerEvent::Rcpt { to } if to.local == "nobody" => {
                Some(Reply::enhanced(550, 5, 1, 1, "no such user"))
            }
            ServerEvent::Rcpt { to } if to.local == "full" => {
                Some(Reply::enhanced(452, 4, 2, 2, "mailbox full"))
            }
            _ => None,
        });
        p.pump();
        p.client.send(txn(
            "a@x.test",
            &["b@y.test", "nobody@y.test", "full@y.test", "c@y.test"],
            b"x\r\n",
        ));
        p.pump();
        let r = &p.results()[0];
        assert_eq!(r.delivered(), vec![&mb("b@y.test"), &mb("c@y.test")]);
        let failed: Vec<(String, u16)> = r
            .failed()
            .iter()
            .map(|(m, r)| (m.to_string(), r.code))
            .collect();
        assert_eq!(
            failed,
            vec![
                ("nobody@y.test".to_string(), 550),
                ("full@y.test".to_string(), 452)
            ]
        );
        assert!(!r.all_delivered());
        assert_eq!(
            p.messages()[0].0.rcpts,
            vec![mb("b@y.test"), mb("c@y.test")]
        );
    }
}

#[test]
fn no_recipient_accepted_sends_no_body_then_rset() {
    for pipelining in [true, false] {
        let mut p = Pair::new(cfg());
        if !pipelining {
            p.filter = Box::new(without_pipelining);
        }
        p.policy = Box::new(|ev| match ev {
            ServerEvent::Rcpt { to } if to.local.starts_with("no") => {
                Some(Reply::enhanced(550, 5, 1, 1, "no such user"))
            }
            _ => None,
        });
        p.pump();
        p.client.send(txn(
            "a@x.test",
            &["no1@y.test", "no2@y.test"],
            b"SECRET BODY\r\n",
        ));
        p.client
            .send(txn("a@x.test", &["yes@y.test"], b"second\r\n"));
        p.pump();
        let results = p.results();
        assert_eq!(results.len(), 2);
        assert_eq!(results[0].data, None);
        assert!(results[0].delivered().is_empty());
        assert_eq!(results[0].failed().len(), 2);
        if pipelining {
            assert_eq!(results[0].rcpts.len(), 2);
        }
        assert!(results[1].all_delivered());
        let wire = String::from_utf8_lossy(&p.c2s).into_owned();
        assert!(!wire.contains("SECRET"), "{wire}");
        assert!(
            wire.contains("RSET\r\nMAIL FROM:<a@x.test> SIZE=8\r\n"),
            "{wire}"
        );
        assert_eq!(
            wire.matches("DATA\r\n").count(),
            if pipelining { 2 } else { 1 }
        );
        assert_eq!(p.messages().len(), 1);
        assert_eq!(p.messages()[0].1, b"second\r\n");
        assert_eq!(p.server.error_count(), 0);
    }
}

#[test]
fn refused_sender() {
    for pipelining in [true, false] {
        let mut p = Pair::new(cfg());
        if !pipelining {
            p.filter = Box::new(without_pipelining);
        }
        p.policy = Box::new(|ev| match ev {
            ServerEvent::Mail {
                from: ReversePath::Mailbox(m),
                ..
            } if m.local == "spammer" => Some(Reply::enhanced(550, 5, 7, 1, "sender refused")),
            _ => None,
        });
        p.pump();
        p.client
            .send(txn("spammer@x.test", &["b@y.test", "c@y.test"], b"buy\r\n"));
        p.client
            .send(txn("friend@x.test", &["b@y.test"], b"hello\r\n"));
        p.pump();
        let results = p.results();
        assert_eq!(results[0].mail.code, 550);
        assert_eq!(results[0].data, None);
        assert_eq!(results[0].rcpts.len(), 2);
        assert!(results[0].failed().iter().all(|(_, r)| r.code == 550));
        assert!(results[1].all_delivered());
        assert_eq!(p.messages().len(), 1);
        assert_eq!(p.server.error_count(), 0);
    }
}

#[test]
fn refused_message_text() {
    let mut p = Pair::new(cfg());
    p.policy = Box::new(|ev| match ev {
        ServerEvent::Message { data, .. } if data.starts_with(b"virus") => {
            Some(Reply::enhanced(554, 5, 7, 1, "infected"))
        }
        _ => None,
    });
    p.pump();
    p.client.send(txn("a@x.test", &["b@y.test"], b"virus\r\n"));
    p.client.send(txn("a@x.test", &["b@y.test"], b"clean\r\n"));
    p.pump();
    let results = p.results();
    assert_eq!(results[0].data.as_ref().map(|r| r.code), Some(554));
    assert!(results[0].delivered().is_empty());
    assert_eq!(results[0].failed()[0].1.code, 554);
    assert!(results[1].all_delivered());
    // the transaction ended with its text reply: no RSET needed
    assert!(!String::from_utf8_lossy(&p.c2s).contains("RSET"));
}

#[test]
fn oversized_message_refused_at_mail() {
    let mut p = Pair::new(ServerConfig {
        max_message_size: 100,
        ..cfg()
    });
    p.pump();
    assert!(matches!(
        p.client_events[0],
        ClientEvent::Ready {
            size: Some(100),
            ..
        }
    ));
    p.client.send(txn("a@x.test", &["b@y.test"], &[b'x'; 200]));
    p.pump();
    let r = &p.results()[0];
    assert_eq!(r.mail.code, 552);
    assert_eq!(r.data, None);
    assert!(!String::from_utf8_lossy(&p.c2s).contains("xxxx"));
}

#[test]
fn too_many_recipients_are_reported_transient() {
    let mut p = Pair::new(ServerConfig {
        max_recipients: 2,
        ..cfg()
    });
    p.pump();
    p.client.send(txn(
        "a@x.test",
        &["r1@y.test", "r2@y.test", "r3@y.test"],
        b"x\r\n",
    ));
    p.pump();
    let r = &p.results()[0];
    assert_eq!(r.delivered().len(), 2);
    let failed = r.failed();
    assert_eq!(failed.len(), 1);
    assert!(failed[0].1.is_transient());
    assert_eq!(failed[0].1.to_string(), "452 4.5.3 too many recipients");
}

#[test]
fn server_421_makes_the_client_unusable() {
    let mut p = Pair::new(cfg());
    p.policy = Box::new(|ev| match ev {
        ServerEvent::Rcpt { .. } => Some(Reply::enhanced(421, 4, 3, 0, "mx.test going down")),
        _ => None,
    });
    p.pump();
    p.client
        .send(txn("a@x.test", &["b@y.test", "c@y.test"], b"x\r\n"));
    p.pump();
    assert_eq!(
        p.client_events.last(),
        Some(&ClientEvent::Rejected(Reply::enhanced(
            421,
            4,
            3,
            0,
            "mx.test going down"
        )))
    );
    assert!(p.client.is_closed());
    assert!(p.server.is_closed());
    assert!(p.results().is_empty());
}

#[test]
fn server_shutdown_mid_session() {
    let mut p = Pair::new(cfg());
    p.pump();
    p.server.shutdown();
    p.pump();
    assert!(matches!(p.client_events.last(), Some(ClientEvent::Rejected(r)) if r.code == 421));
}

#[test]
fn refused_greeting() {
    let mut c = ClientSession::new(ClientConfig { helo: "c".into() });
    c.handle_input(b"554 5.3.2 no service here\r\n").unwrap();
    assert_eq!(
        c.poll_event(),
        Some(ClientEvent::Rejected(Reply::enhanced(
            554,
            5,
            3,
            2,
            "no service here"
        )))
    );
    let mut out = Vec::new();
    c.poll_transmit(&mut out);
    assert_eq!(out, b"QUIT\r\n");
    assert!(c.is_closed());
}

#[test]
fn ehlo_and_helo_refused() {
    let mut c = ClientSession::new(ClientConfig { helo: "c".into() });
    c.handle_input(b"220 mx\r\n").unwrap();
    c.handle_input(b"502 5.5.1 no EHLO\r\n").unwrap();
    c.handle_input(b"550 5.7.1 go away\r\n").unwrap();
    assert!(matches!(c.poll_event(), Some(ClientEvent::Rejected(r)) if r.code == 550));
    let mut out = Vec::new();
    c.poll_transmit(&mut out);
    assert_eq!(out, b"EHLO c\r\nHELO c\r\nQUIT\r\n");
}

#[test]
fn protocol_violations_are_errors() {
    let mut c = ClientSession::new(ClientConfig { helo: "c".into() });
    c.handle_input(b"220 mx\r\n250 mx\r\n").unwrap();
    assert!(matches!(
        c.poll_event(),
        Some(ClientEvent::Ready { esmtp: true, .. })
    ));
    assert!(matches!(
        c.handle_input(b"250 nobody asked\r\n"),
        Err(ClientError::UnexpectedReply(_))
    ));
    assert!(c.is_closed());

    let mut c = ClientSession::new(ClientConfig { helo: "c".into() });
    assert!(matches!(
        c.handle_input(b"hello\r\n"),
        Err(ClientError::BadReply(_))
    ));
    assert!(c.is_closed());
    assert_eq!(c.handle_input(b"220 late\r\n"), Ok(()));
}

#[test]
fn unwanted_354_after_pipelined_data_gets_a_lone_dot() {
    let mut c = ClientSession::new(ClientConfig { helo: "c".into() });
    c.handle_input(b"220 mx\r\n250-mx\r\n250 PIPELINING\r\n")
        .unwrap();
    c.poll_event();
    c.send(txn("a@x.test", &["b@y.test"], b"BODY\r\n"));
    let mut out = Vec::new();
    c.poll_transmit(&mut out);
    out.clear();
    c.handle_input(b"250 ok\r\n550 no\r\n354 go ahead\r\n")
        .unwrap();
    c.poll_transmit(&mut out);
    assert_eq!(out, b".\r\n");
    c.handle_input(b"250 empty message taken\r\n").unwrap();
    match c.poll_event() {
        Some(ClientEvent::Done(r)) => {
            assert_eq!(r.data, None);
            assert!(r.delivered().is_empty());
        }
        other => panic!("{other:?}"),
    }
    c.quit();
    out.clear();
    c.poll_transmit(&mut out);
    assert_eq!(out, b"QUIT\r\n");
    c.handle_input(b"221 bye\r\n").unwrap();
    assert_eq!(c.poll_event(), Some(ClientEvent::Closed));
}

#[test]
fn send_before_ready_is_queued() {
    let mut p = Pair::new(cfg());
    p.client.send(txn("a@x.test", &["b@y.test"], b"early\r\n"));
    p.client.quit();
    p.pump();
    assert_eq!(p.messages().len(), 1);
    assert!(matches!(
        p.client_events.as_slice(),
        [
            ClientEvent::Ready { .. },
            ClientEvent::Done(_),
            ClientEvent::Closed
        ]
    ));
}

#[test]
fn smuggling_attempt_through_the_client_is_neutralised() {
    // a body holding an LF.LF "end" and a second transaction arrives as one message
    let mut p = Pair::new(cfg());
    p.pump();
    let body = b"Subject: x\r\n\r\ntext\n.\nMAIL FROM:<evil@x.test>\nRCPT TO:<victim@y.test>\nDATA\nforged\n";
    p.client.send(txn("a@x.test", &["b@y.test"], body));
    p.pump();
    let msgs = p.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].1, normalized(body));
    assert!(p.server_events.iter().all(|e| !matches!(e, ServerEvent::Mail { from: ReversePath::Mailbox(m), .. } if m.local == "evil")));
}
