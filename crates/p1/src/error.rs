//! The one error type of the P1 layer.

use crate::ber::Tag;

/// Everything that can go wrong while decoding or encoding P1, X.420 or an O/R address.
///
/// Errors split in two families (see [`Error::is_peer_fault`]):
/// - the peer sent something malformed or out of bounds (decoding errors). The MTA reacts
///   to those on the wire: a malformed MTABind is refused (RTORJ / bind error), a malformed
///   MTS-APDU aborts the transfer (RTAB) — X.411 §12.1 and §12.2, X.228 §7;
/// - the caller asked for something that cannot be encoded ([`Error::Unencodable`],
///   [`Error::Mnemonic`] for text that the caller supplied).
///
/// Messages are lowercase without a trailing period.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The input ended inside a BER element (X.690 §8.1).
    #[error("truncated ber encoding: {0}")]
    Truncated(&'static str),
    /// The octets are not valid BER (X.690 §8.1): bad identifier or length octets.
    #[error("malformed ber encoding: {0}")]
    Malformed(&'static str),
    /// A value is longer than the cap the crate puts on it.
    #[error("{what} of {len} octets exceeds the cap of {cap}")]
    TooLong {
        /// What was too long.
        what: &'static str,
        /// Its length in octets.
        len: usize,
        /// The cap in octets.
        cap: usize,
    },
    /// Constructed values are nested deeper than [`crate::limits::MAX_DEPTH`].
    #[error("ber nesting deeper than {0} levels")]
    TooDeep(usize),
    /// A SET OF / SEQUENCE OF or a repeated attribute has more members than its cap.
    #[error("more than {cap} {what}")]
    TooMany {
        /// What was counted.
        what: &'static str,
        /// The cap on the count.
        cap: usize,
    },
    /// An element carried a tag that is not allowed at that place.
    #[error("unexpected {found} in {context}")]
    UnexpectedTag {
        /// The ASN.1 production being decoded.
        context: &'static str,
        /// The tag that was found.
        found: Tag,
    },
    /// A mandatory component is absent.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A SET component appeared twice.
    #[error("duplicate {0}")]
    Duplicate(&'static str),
    /// Octets follow the end of a value that must stand alone.
    #[error("trailing octets after {0}")]
    Trailing(&'static str),
    /// A primitive value does not meet its type (bad INTEGER, time, character).
    #[error("invalid {what}: {reason}")]
    InvalidValue {
        /// The ASN.1 production.
        what: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// The value is well formed but this crate does not handle it (for example an X.420
    /// IPN, §8, which is out of scope).
    #[error("unsupported {0}")]
    Unsupported(String),
    /// A mnemonic O/R address (X.402 Annex F style, as Exchange writes it) does not parse.
    #[error("mnemonic o/r address: {reason} at offset {offset}")]
    Mnemonic {
        /// Byte offset into the text where the problem was seen.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
    /// The caller built a value that cannot be put on the wire (empty recipient list, a
    /// time outside the UTCTime window, a string outside its character set).
    #[error("cannot encode {what}: {reason}")]
    Unencodable {
        /// The ASN.1 production.
        what: &'static str,
        /// Why it cannot be encoded.
        reason: String,
    },
}

impl Error {
    /// True when the error describes bytes received from a peer (the MTA answers with a
    /// refusal or abort); false when the caller misused the API (nothing goes on the wire).
    pub fn is_peer_fault(&self) -> bool {
        !matches!(self, Error::Unencodable { .. } | Error::Mnemonic { .. })
    }

    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Error {
        Error::InvalidValue {
            what,
            reason: reason.into(),
        }
    }

    pub(crate) fn unencodable(what: &'static str, reason: impl Into<String>) -> Error {
        Error::Unencodable {
            what,
            reason: reason.into(),
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;
