//! Tests of the P1 crate against real captures, round trips and table-driven vectors.

mod apdu;
mod bind;
mod ipm;
mod mnemonic;
mod roundtrip;
mod vectors;
mod wire;
