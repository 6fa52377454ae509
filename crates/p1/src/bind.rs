//! MTABind (X.411 §12.1, `MTAAbstractService`): the argument an initiating MTA sends in
//! RTORQ `open`, the result in RTOAC `open`, the error in RTORJ `userDataRJ`.
//!
//! ```text
//! MTABindArgument ::= CHOICE { unauthenticated NULL,
//!     authenticated [1] SET { initiator-name [0] MTAName,
//!                             initiator-credentials [1] InitiatorCredentials,
//!                             security-context [2] SecurityContext OPTIONAL } }
//! MTABindResult   ::= CHOICE { unauthenticated NULL,
//!     authenticated [1] SET { responder-name [0] MTAName,
//!                             responder-credentials [1] ResponderCredentials } }
//! MTABindError    ::= INTEGER { busy(0), authentication-error(2),
//!     unacceptable-dialogue-mode(3), unacceptable-security-context(4),
//!     inadequate-association-confidentiality(5) } (0..ub-integer-options)
//! Credentials     ::= CHOICE { simple Password, strong [0] StrongCredentials,
//!                              protected [1] ProtectedPassword }
//! Password        ::= CHOICE { ia5-string IA5String, octet-string OCTET STRING }
//! ```
//!
//! Inside RTSE the values carry the remote-operations bind tags (X.880 / DESIGN §4):
//! `[16]` argument, `[17]` result, `[18]` error, each an explicit constructed wrapper —
//! the x400-ping argument is `b0 24 a1 22 80 13 "percival.smhs.co.uk" a1 0b 16 09
//! "excalibur"`. Some peers (PP) send the error as a bare INTEGER without `[18]`; decoding
//! accepts both, encoding always writes `[18]`.

use crate::address::{MtaName, check_len, check_opaque, set_once};
use crate::ber::{self, StrKind, Tag, Tlv, Writer, ctx_c};
use crate::error::{Error, Result};
use crate::limits::MAX_PASSWORD_LEN;

/// `Password ::= CHOICE { ia5-string IA5String, octet-string OCTET STRING }` (X.411 §12.1,
/// SIZE 0..[`MAX_PASSWORD_LEN`]). PP sends its passwords as OCTET STRING.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Password {
    /// ia5-string (tag `16`).
    Ia5(String),
    /// octet-string (tag `04`).
    Octets(Vec<u8>),
}

impl Password {
    /// The password octets, whichever form carried them.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Password::Ia5(s) => s.as_bytes(),
            Password::Octets(b) => b,
        }
    }

    /// Case-sensitive comparison with a configured password (DESIGN §4: connector
    /// passwords are case-sensitive), whichever form the peer used.
    pub fn matches(&self, expected: &str) -> bool {
        self.as_bytes() == expected.as_bytes()
    }
}

/// `Credentials` (X.411 §12.1 `InitiatorCredentials` / `ResponderCredentials`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Credentials {
    /// simple: a password.
    Simple(Password),
    /// strong `[0]` StrongCredentials SET: its contents octets, kept opaque.
    Strong(Vec<u8>),
    /// protected `[1]` ProtectedPassword SET: its contents octets, kept opaque.
    Protected(Vec<u8>),
}

impl Credentials {
    /// Simple credentials with an IA5String password, the form Exchange sends.
    pub fn simple(password: &str) -> Credentials {
        Credentials::Simple(Password::Ia5(password.to_string()))
    }

    /// The simple password, if these are simple credentials.
    pub fn password(&self) -> Option<&Password> {
        match self {
            Credentials::Simple(p) => Some(p),
            _ => None,
        }
    }

    fn write(&self, w: &mut Writer) -> Result<()> {
        match self {
            Credentials::Simple(Password::Ia5(s)) => w.string(
                ber::IA5_STRING,
                StrKind::Ia5,
                s,
                "password",
                MAX_PASSWORD_LEN,
            ),
            Credentials::Simple(Password::Octets(b)) => {
                if b.len() > MAX_PASSWORD_LEN {
                    return Err(Error::unencodable(
                        "password",
                        format!("more than {MAX_PASSWORD_LEN} octets"),
                    ));
                }
                w.primitive(ber::OCTET_STRING, b);
                Ok(())
            }
            Credentials::Strong(c) | Credentials::Protected(c) => {
                check_opaque(c, "credentials")?;
                let n = if matches!(self, Credentials::Strong(_)) {
                    0
                } else {
                    1
                };
                w.constructed(ctx_c(n), |w| {
                    w.raw(c);
                    Ok(())
                })
            }
        }
    }

    fn read(t: &Tlv<'_>) -> Result<Credentials> {
        let what = "credentials";
        if t.tag.is(ber::IA5_STRING) {
            Ok(Credentials::Simple(Password::Ia5(t.string(
                StrKind::Ia5,
                "password",
                MAX_PASSWORD_LEN,
            )?)))
        } else if t.tag.is(ber::OCTET_STRING) {
            Ok(Credentials::Simple(Password::Octets(
                t.octets("password", MAX_PASSWORD_LEN)?.into_owned(),
            )))
        } else if t.tag.is(Tag::context(0)) || t.tag.is(Tag::context(1)) {
            let mut r = t.reader(what)?;
            while r.next_tlv()?.is_some() {}
            check_opaque(t.content, what)?;
            Ok(if t.tag.number == 0 {
                Credentials::Strong(t.content.to_vec())
            } else {
                Credentials::Protected(t.content.to_vec())
            })
        } else {
            Err(Error::UnexpectedTag {
                context: what,
                found: t.tag,
            })
        }
    }
}

/// `MTABindArgument` (X.411 §12.1.1.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MtaBindArgument {
    /// unauthenticated: NULL (`05 00`).
    Unauthenticated,
    /// authenticated `[1]` SET.
    Authenticated {
        /// initiator-name `[0]`: the calling MTA's name.
        initiator_name: MtaName,
        /// initiator-credentials `[1]` (explicit, a CHOICE).
        initiator_credentials: Credentials,
        /// security-context `[2]` SET OF SecurityLabel: contents octets, opaque.
        security_context: Option<Vec<u8>>,
    },
}

/// `MTABindResult` (X.411 §12.1.1.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MtaBindResult {
    /// unauthenticated: NULL.
    Unauthenticated,
    /// authenticated `[1]` SET.
    Authenticated {
        /// responder-name `[0]`: the answering MTA's name.
        responder_name: MtaName,
        /// responder-credentials `[1]` (explicit, a CHOICE); PP sends an OCTET STRING.
        responder_credentials: Credentials,
    },
}

/// `MTABindError` (X.411 §12.1.1.3): an INTEGER code (0..=256); unknown codes are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MtaBindError(pub u16);

impl MtaBindError {
    /// busy (0): the responder cannot take another association now.
    pub const BUSY: MtaBindError = MtaBindError(0);
    /// authentication-error (2): unknown MTA name or wrong password (Exchange event 51).
    pub const AUTHENTICATION_ERROR: MtaBindError = MtaBindError(2);
    /// unacceptable-dialogue-mode (3).
    pub const UNACCEPTABLE_DIALOGUE_MODE: MtaBindError = MtaBindError(3);
    /// unacceptable-security-context (4).
    pub const UNACCEPTABLE_SECURITY_CONTEXT: MtaBindError = MtaBindError(4);
    /// inadequate-association-confidentiality (5).
    pub const INADEQUATE_ASSOCIATION_CONFIDENTIALITY: MtaBindError = MtaBindError(5);

    /// The X.411 name of the code, if it is one of the five.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "busy",
            2 => "authentication-error",
            3 => "unacceptable-dialogue-mode",
            4 => "unacceptable-security-context",
            5 => "inadequate-association-confidentiality",
            _ => return None,
        })
    }

    /// The bare INTEGER encoding (`02 01 02` for authentication-error).
    pub fn encode(self) -> Vec<u8> {
        let mut w = Writer::new();
        w.integer(ber::INTEGER, i64::from(self.0));
        w.into_vec()
    }

    /// Decodes the bare INTEGER.
    ///
    /// Errors: not an INTEGER, value outside 0..=256, trailing octets.
    pub fn decode(bytes: &[u8]) -> Result<MtaBindError> {
        check_len(bytes)?;
        let t = ber::read_single(bytes, "MTABindError")?.expect(ber::INTEGER, "MTABindError")?;
        Ok(MtaBindError(t.unsigned("MTABindError", 256)? as u16))
    }

    /// The `[18]`-tagged form for RTORJ `userDataRJ`: `b2 03 02 01 02`.
    pub fn encode_ro_tagged(self) -> Vec<u8> {
        let mut w = Writer::new();
        let inner = self.encode();
        // Infallible: the closure only appends octets.
        let _ = w.constructed(ctx_c(18), |w| {
            w.raw(&inner);
            Ok(())
        });
        w.into_vec()
    }

    /// Decodes the error from RTORJ user data: `[18] { INTEGER }` or a bare INTEGER.
    ///
    /// Errors: another tag, a bad INTEGER, trailing octets.
    pub fn decode_ro(bytes: &[u8]) -> Result<MtaBindError> {
        check_len(bytes)?;
        let t = ber::read_single(bytes, "MTABindError")?;
        if t.tag.is(ber::INTEGER) {
            return MtaBindError::decode(bytes);
        }
        let t = t.expect(ctx_c(18), "MTABindError")?;
        let mut r = t.reader("MTABindError")?;
        let v = r
            .read("MTABindError")?
            .expect(ber::INTEGER, "MTABindError")?;
        r.finish("MTABindError")?;
        Ok(MtaBindError(v.unsigned("MTABindError", 256)? as u16))
    }
}

impl std::fmt::Display for MtaBindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "mta-bind-error {}", self.0),
        }
    }
}

fn write_tagged(tag: u32, f: impl FnOnce(&mut Writer) -> Result<()>) -> Result<Vec<u8>> {
    let mut w = Writer::new();
    w.constructed(ctx_c(tag), f)?;
    Ok(w.into_vec())
}

fn untag(bytes: &[u8], tag: u32, what: &'static str) -> Result<Vec<u8>> {
    check_len(bytes)?;
    let t = ber::read_single(bytes, what)?.expect(ctx_c(tag), what)?;
    let mut r = t.reader(what)?;
    let inner = r.read(what)?;
    r.finish(what)?;
    Ok(inner.raw.to_vec())
}

/// Reads the `authenticated [1] SET` or `unauthenticated NULL` choice; returns None for
/// NULL, else the `[0]`, `[1]`, `[2]` members.
type AuthMembers<'a> = Option<(MtaName, Credentials, Option<Vec<u8>>)>;

fn read_auth<'a>(
    bytes: &'a [u8],
    what: &'static str,
    allow_security_context: bool,
) -> Result<AuthMembers<'a>> {
    check_len(bytes)?;
    let t = ber::read_single(bytes, what)?;
    if t.tag.is(ber::NULL) {
        t.null(what)?;
        return Ok(None);
    }
    let t = t.expect(ctx_c(1), what)?;
    let mut r = t.reader(what)?;
    let (mut name, mut creds, mut sc) = (None, None, None);
    while let Some(m) = r.next_tlv()? {
        if m.tag.is(Tag::context(0)) {
            set_once(&mut name, MtaName::read(&m)?, "mta name")?;
        } else if m.tag.is(Tag::context(1)) {
            let mut cr = m.reader("credentials")?;
            let c = Credentials::read(&cr.read("credentials")?)?;
            cr.finish("credentials")?;
            set_once(&mut creds, c, "credentials")?;
        } else if allow_security_context && m.tag.is(Tag::context(2)) {
            let mut sr = m.reader("security-context")?;
            while sr.next_tlv()?.is_some() {}
            check_opaque(m.content, "security-context")?;
            set_once(&mut sc, m.content.to_vec(), "security-context")?;
        } else {
            return Err(Error::UnexpectedTag {
                context: what,
                found: m.tag,
            });
        }
    }
    Ok(Some((
        name.ok_or(Error::Missing("mta name"))?,
        creds.ok_or(Error::Missing("credentials"))?,
        sc,
    )))
}

fn write_auth(
    w: &mut Writer,
    name: &MtaName,
    creds: &Credentials,
    sc: Option<&Vec<u8>>,
) -> Result<()> {
    w.constructed(ctx_c(1), |w| {
        name.write(w, Tag::context(0))?;
        w.constructed(ctx_c(1), |w| creds.write(w))?;
        if let Some(sc) = sc {
            check_opaque(sc, "security-context")?;
            w.constructed(ctx_c(2), |w| {
                w.raw(sc);
                Ok(())
            })?;
        }
        Ok(())
    })
}

impl MtaBindArgument {
    /// The authenticated argument with simple IA5String credentials, as Exchange sends it.
    pub fn simple(initiator_name: &str, password: &str) -> MtaBindArgument {
        MtaBindArgument::Authenticated {
            initiator_name: MtaName(initiator_name.into()),
            initiator_credentials: Credentials::simple(password),
            security_context: None,
        }
    }

    /// The initiator's MTA name, if authenticated.
    pub fn initiator_name(&self) -> Option<&MtaName> {
        match self {
            MtaBindArgument::Authenticated { initiator_name, .. } => Some(initiator_name),
            MtaBindArgument::Unauthenticated => None,
        }
    }

    fn write(&self, w: &mut Writer) -> Result<()> {
        match self {
            MtaBindArgument::Unauthenticated => {
                w.primitive(ber::NULL, &[]);
                Ok(())
            }
            MtaBindArgument::Authenticated {
                initiator_name,
                initiator_credentials,
                security_context,
            } => write_auth(
                w,
                initiator_name,
                initiator_credentials,
                security_context.as_ref(),
            ),
        }
    }

    /// Encodes the bare MTABindArgument value (`a1 ...` or `05 00`).
    ///
    /// Errors: [`Error::Unencodable`] for an empty or over-long name or password.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut w = Writer::new();
        self.write(&mut w)?;
        Ok(w.into_vec())
    }

    /// Decodes the bare MTABindArgument value.
    ///
    /// Errors: any decoding error; a missing name or credentials is [`Error::Missing`].
    pub fn decode(bytes: &[u8]) -> Result<MtaBindArgument> {
        Ok(match read_auth(bytes, "MTABindArgument", true)? {
            None => MtaBindArgument::Unauthenticated,
            Some((initiator_name, initiator_credentials, security_context)) => {
                MtaBindArgument::Authenticated {
                    initiator_name,
                    initiator_credentials,
                    security_context,
                }
            }
        })
    }

    /// Encodes with the RO bind-argument tag `[16]` (`b0 ..`), for RTORQ `open`.
    pub fn encode_ro_tagged(&self) -> Result<Vec<u8>> {
        write_tagged(16, |w| self.write(w))
    }

    /// Decodes the `[16]`-tagged argument from RTORQ `open`.
    ///
    /// Errors: another outer tag ([`Error::UnexpectedTag`]), or as [`Self::decode`].
    pub fn decode_ro(bytes: &[u8]) -> Result<MtaBindArgument> {
        MtaBindArgument::decode(&untag(bytes, 16, "MTABindArgument")?)
    }
}

impl MtaBindResult {
    /// The authenticated result with simple IA5String credentials.
    pub fn simple(responder_name: &str, password: &str) -> MtaBindResult {
        MtaBindResult::Authenticated {
            responder_name: MtaName(responder_name.into()),
            responder_credentials: Credentials::simple(password),
        }
    }

    /// The responder's MTA name, if authenticated.
    pub fn responder_name(&self) -> Option<&MtaName> {
        match self {
            MtaBindResult::Authenticated { responder_name, .. } => Some(responder_name),
            MtaBindResult::Unauthenticated => None,
        }
    }

    fn write(&self, w: &mut Writer) -> Result<()> {
        match self {
            MtaBindResult::Unauthenticated => {
                w.primitive(ber::NULL, &[]);
                Ok(())
            }
            MtaBindResult::Authenticated {
                responder_name,
                responder_credentials,
            } => write_auth(w, responder_name, responder_credentials, None),
        }
    }

    /// Encodes the bare MTABindResult value.
    ///
    /// Errors: [`Error::Unencodable`] for an empty or over-long name or password.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut w = Writer::new();
        self.write(&mut w)?;
        Ok(w.into_vec())
    }

    /// Decodes the bare MTABindResult value; a security-context member is refused.
    pub fn decode(bytes: &[u8]) -> Result<MtaBindResult> {
        Ok(match read_auth(bytes, "MTABindResult", false)? {
            None => MtaBindResult::Unauthenticated,
            Some((responder_name, responder_credentials, _)) => MtaBindResult::Authenticated {
                responder_name,
                responder_credentials,
            },
        })
    }

    /// Encodes with the RO bind-result tag `[17]` (`b1 ..`), for RTOAC `open`.
    pub fn encode_ro_tagged(&self) -> Result<Vec<u8>> {
        write_tagged(17, |w| self.write(w))
    }

    /// Decodes the `[17]`-tagged result from RTOAC `open`.
    pub fn decode_ro(bytes: &[u8]) -> Result<MtaBindResult> {
        MtaBindResult::decode(&untag(bytes, 17, "MTABindResult")?)
    }
}

/// Any of the three bind PDUs as found in RTSE user data (X.411 §12.1 with the X.880 bind
/// tags).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BindPdu {
    /// `[16]` MTABindArgument (RTORQ).
    Argument(MtaBindArgument),
    /// `[17]` MTABindResult (RTOAC).
    Result(MtaBindResult),
    /// `[18]` MTABindError or a bare INTEGER (RTORJ).
    Error(MtaBindError),
}

impl BindPdu {
    /// Decodes whichever bind PDU `bytes` hold, by its outer tag.
    ///
    /// Errors: an outer tag other than `[16]`, `[17]`, `[18]` or INTEGER, or the errors of
    /// the PDU's own decoder.
    pub fn decode_ro(bytes: &[u8]) -> Result<BindPdu> {
        check_len(bytes)?;
        let t = ber::read_single(bytes, "bind PDU")?;
        if t.tag.is(ber::INTEGER) || t.tag.is(Tag::context(18)) {
            return MtaBindError::decode_ro(bytes).map(BindPdu::Error);
        }
        if t.tag.is(Tag::context(16)) {
            return MtaBindArgument::decode_ro(bytes).map(BindPdu::Argument);
        }
        if t.tag.is(Tag::context(17)) {
            return MtaBindResult::decode_ro(bytes).map(BindPdu::Result);
        }
        Err(Error::UnexpectedTag {
            context: "bind PDU",
            found: t.tag,
        })
    }

    /// Encodes with the RO bind tag (`[16]`, `[17]` or `[18]`).
    pub fn encode_ro_tagged(&self) -> Result<Vec<u8>> {
        match self {
            BindPdu::Argument(a) => a.encode_ro_tagged(),
            BindPdu::Result(r) => r.encode_ro_tagged(),
            BindPdu::Error(e) => Ok(e.encode_ro_tagged()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_wire_forms() {
        let arg = MtaBindArgument::simple("percival.smhs.co.uk", "excalibur");
        let mut want = vec![0xb0, 0x24, 0xa1, 0x22, 0x80, 0x13];
        want.extend_from_slice(b"percival.smhs.co.uk");
        want.extend_from_slice(&[0xa1, 0x0b, 0x16, 0x09]);
        want.extend_from_slice(b"excalibur");
        assert_eq!(arg.encode_ro_tagged().unwrap(), want);
        assert_eq!(
            MtaBindError::AUTHENTICATION_ERROR.encode_ro_tagged(),
            [0xb2, 0x03, 0x02, 0x01, 0x02]
        );
        assert_eq!(
            MtaBindArgument::Unauthenticated.encode_ro_tagged().unwrap(),
            [0xb0, 0x02, 0x05, 0x00]
        );
    }

    #[test]
    fn error_with_and_without_ro_tag() {
        for bytes in [
            &[0xb2u8, 0x03, 0x02, 0x01, 0x00][..],
            &[0x02, 0x01, 0x00][..],
        ] {
            assert_eq!(MtaBindError::decode_ro(bytes).unwrap(), MtaBindError::BUSY);
            assert_eq!(
                BindPdu::decode_ro(bytes).unwrap(),
                BindPdu::Error(MtaBindError::BUSY)
            );
        }
        assert!(MtaBindError::decode_ro(&[0x02, 0x02, 0x01, 0x01]).is_err());
    }

    #[test]
    fn missing_members_and_caps() {
        // [16] { [1] { [0] "A" } } — no credentials.
        assert_eq!(
            MtaBindArgument::decode_ro(&[0xb0, 0x05, 0xa1, 0x03, 0x80, 0x01, b'A']).unwrap_err(),
            Error::Missing("credentials")
        );
        let long = MtaBindArgument::simple(&"x".repeat(33), "pw");
        assert!(matches!(long.encode(), Err(Error::Unencodable { .. })));
        let empty = MtaBindArgument::simple("", "pw");
        assert!(matches!(empty.encode(), Err(Error::Unencodable { .. })));
    }
}
