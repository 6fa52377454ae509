//! The message transfer agent: X.400 P1 over the OSI upper stack on RFC 1006 (DESIGN §4).
//!
//! - [`gwart`]: the Gateway Address Routing Table and KB Q193322 route selection.

pub mod gwart;
