//! RFC 1006 §6 packet framing ("TPKT") of ISO transport over TCP.
//!
//! ```text
//!  0        1        2        3
//! +--------+--------+--------+--------+-----------------+
//! | vrsn=3 |reserved|  packet length  |  TPDU ...       |
//! +--------+--------+--------+--------+-----------------+
//! ```
//! The packet length counts the whole packet, its own 4-octet header included: at least 7
//! (RFC 1006 §6: the smallest TPDU is 3 octets), at most 65535, so a TPDU of at most
//! [`MAX_PAYLOAD`] = 65531 octets.

use crate::Reaction;

/// TPKT version (RFC 1006 §6).
pub const VERSION: u8 = 3;
/// Octets of the TPKT header.
pub const HEADER_LEN: usize = 4;
/// Smallest packet length admitted (RFC 1006 §6).
pub const MIN_PACKET_LEN: usize = 7;
/// Largest TPDU one packet can carry (65535 − 4).
pub const MAX_PAYLOAD: usize = 65531;

/// RFC 1006 framing errors. Nothing can be answered on a broken framing: the reaction is
/// always [`Reaction::Close`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TpktError {
    /// The first octet is not 3.
    #[error("tpkt version {0} is not 3")]
    BadVersion(u8),
    /// The packet length is below the minimum of 7.
    #[error("tpkt packet length {0} is below the minimum of 7")]
    TooShort(u16),
    /// The caller asked to frame more than [`MAX_PAYLOAD`] octets.
    #[error("tpdu of {0} octets exceeds the tpkt maximum of 65531")]
    PayloadTooLong(usize),
}

impl TpktError {
    /// The wire reaction: always [`Reaction::Close`].
    pub fn reaction(&self) -> Reaction {
        Reaction::Close
    }
}

/// Frames one TPDU, appending the packet to `out`.
///
/// # Errors
/// [`TpktError::PayloadTooLong`] if `tpdu` exceeds [`MAX_PAYLOAD`] octets.
pub fn encode(tpdu: &[u8], out: &mut Vec<u8>) -> Result<(), TpktError> {
    if tpdu.len() > MAX_PAYLOAD {
        return Err(TpktError::PayloadTooLong(tpdu.len()));
    }
    push_header(out, tpdu.len());
    out.extend_from_slice(tpdu);
    Ok(())
}

/// Appends the header of a packet carrying a TPDU of `tpdu_len` octets (at most
/// [`MAX_PAYLOAD`]; the caller checks): version, reserved, and the packet length.
pub fn push_header(out: &mut Vec<u8>, tpdu_len: usize) {
    out.extend_from_slice(&[VERSION, 0]);
    out.extend_from_slice(&((tpdu_len + HEADER_LEN) as u16).to_be_bytes());
}

/// Reads one packet from the start of a byte stream.
///
/// Returns `Ok(None)` while `input` holds less than a whole packet, else the TPDU and the
/// number of octets the packet took. The reserved octet is ignored (RFC 1006 §6 leaves it
/// to the sender).
///
/// # Errors
/// [`TpktError::BadVersion`], [`TpktError::TooShort`].
pub fn decode(input: &[u8]) -> Result<Option<(&[u8], usize)>, TpktError> {
    if let Some(&v) = input.first()
        && v != VERSION
    {
        return Err(TpktError::BadVersion(v));
    }
    if input.len() < HEADER_LEN {
        return Ok(None);
    }
    let len = u16::from_be_bytes([input[2], input[3]]);
    if usize::from(len) < MIN_PACKET_LEN {
        return Err(TpktError::TooShort(len));
    }
    let len = usize::from(len);
    if input.len() < len {
        return Ok(None);
    }
    Ok(Some((&input[HEADER_LEN..len], len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_deframes() {
        let mut out = Vec::new();
        encode(&[0x02, 0xf0, 0x80], &mut out).unwrap();
        assert_eq!(out, [3, 0, 0, 7, 0x02, 0xf0, 0x80]);
        assert_eq!(decode(&out), Ok(Some((&out[4..], 7))));
        for cut in 0..out.len() {
            assert_eq!(decode(&out[..cut]), Ok(None), "cut at {cut}");
        }
        assert_eq!(decode(&[4, 0, 0, 7]), Err(TpktError::BadVersion(4)));
        assert_eq!(decode(&[3, 0, 0, 6, 0, 0]), Err(TpktError::TooShort(6)));
        assert_eq!(
            encode(&vec![0; MAX_PAYLOAD + 1], &mut out),
            Err(TpktError::PayloadTooLong(65532))
        );
        let mut max = Vec::new();
        encode(&vec![0; MAX_PAYLOAD], &mut max).unwrap();
        assert_eq!(&max[..4], &[3, 0, 0xff, 0xff]);
    }
}
