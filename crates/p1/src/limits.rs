//! Caps on lengths, nesting and counts.
//!
//! Every decoder in the crate enforces these; encoders enforce the same numbers so that
//! what we send, we would also accept. Where X.411 §16 / Annex upper bounds
//! (`MTSUpperBounds`) name a bound, the cap is that bound.

/// Largest MTS-APDU, MTABind PDU or X.420 content accepted or produced, in octets.
pub const MAX_PDU_LEN: usize = 32 * 1024 * 1024;

/// Deepest nesting of constructed BER values (an MTS-APDU needs about 12).
pub const MAX_DEPTH: usize = 32;

/// Longest character string in an envelope, address or heading, in octets (the largest
/// X.411 bound is ub-unformatted-address-length = 180; X.420 subjects are bounded at 128).
pub const MAX_STRING_LEN: usize = 1024;

/// Longest OBJECT IDENTIFIER contents, in octets.
pub const MAX_OID_LEN: usize = 64;

/// Longest opaque value kept as octets (extension values, directory names, unknown
/// heading fields), in octets.
pub const MAX_OPAQUE_LEN: usize = 64 * 1024;

/// MTAName: ub-mta-name-length (X.411 §12.1); Exchange's connector allows the same 32.
pub const MAX_MTA_NAME_LEN: usize = 32;

/// Password in MTABind credentials. ub-password-length is 62; Exchange's connector
/// General tab accepts 64, so the cap is 64.
pub const MAX_PASSWORD_LEN: usize = 64;

/// Recipients per envelope or report: ub-recipients.
pub const MAX_RECIPIENTS: usize = 32767;

/// Trace and internal-trace elements: ub-transfers.
pub const MAX_TRACE_ELEMENTS: usize = 512;

/// Extension fields per `extensions` SET: ub-extension-types.
pub const MAX_EXTENSIONS: usize = 256;

/// Organizational unit names in an O/R address: ub-organizational-units.
pub const MAX_ORGANIZATIONAL_UNITS: usize = 4;

/// Domain-defined attributes in an O/R address: ub-domain-defined-attributes.
pub const MAX_DOMAIN_DEFINED_ATTRIBUTES: usize = 4;

/// Extension attributes in an O/R address: ub-extension-attributes.
pub const MAX_EXTENSION_ATTRIBUTES: usize = 256;

/// Body parts in an IPM body and recipients per IPM heading field.
pub const MAX_BODY_PARTS: usize = 1024;

/// Longest mnemonic O/R address text accepted, in octets.
pub const MAX_MNEMONIC_LEN: usize = 2048;
