//! End-to-end tests: real `mtalab` processes, real sockets, real files.
//!
//! Every test owns its own loopback addresses (127.77.<test>.x) and data directories, and
//! cleans up in `Drop`.

mod util;

mod bad_input;
mod bench;
mod durability;
mod lab;
mod probe;
mod routing;
mod x400;
