//! Sans-IO SMTP for mtalab: the server and client sessions of the Internet Mail Service
//! as state machines fed bytes, returning bytes to send and events for the caller.
//!
//! Nothing here touches a socket, a file or a clock: the caller (the `server` crate's IMS,
//! the lab's client) moves bytes and tells the session when a timer fired.
//!
//! - [`command`]: the command grammar of RFC 5321 §4.1 (parsed with nom).
//! - [`reply`]: replies with RFC 3463 enhanced status codes (RFC 2034), multi-line form.
//! - [`server`]: [`server::ServerSession`], strict command order, limits, PIPELINING (RFC 2920),
//!   SIZE (RFC 1870), 8BITMIME (RFC 6152), dot-unstuffing.
//! - [`client`]: [`client::ClientSession`], EHLO/HELO fallback, pipelined envelope, dot-stuffing.
#![forbid(unsafe_code)]

pub mod address;
pub mod client;
pub mod command;
pub mod data;
pub mod reply;
pub mod server;

pub use address::{Mailbox, ReversePath};
pub use client::{
    ClientConfig, ClientError, ClientEvent, ClientSession, Transaction, TransactionResult,
};
pub use command::{BodyType, Command, MailParams, ParseError, parse_command};
pub use data::dot_stuff;
pub use reply::{EnhancedCode, Reply, ReplyParser};
pub use server::{Envelope, ServerConfig, ServerEvent, ServerSession};
