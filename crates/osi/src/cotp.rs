//! Connection-oriented transport protocol, class 0 (X.224 §13 / ISO 8073), as carried by
//! RFC 1006.
//!
//! Each TPDU starts with a length indicator (LI, the header length not counting the LI octet
//! itself, at most 254), then the TPDU code; class 0 uses CR, CC, DT, DR and ER:
//!
//! ```text
//! CR/CC  LI | E0/D0 | DST-REF(2) | SRC-REF(2) | class option | parameters...
//! DT     02 | F0    | EOT(1 bit) + TPDU-NR(7 bits) | user data...
//! DR     LI | 80    | DST-REF(2) | SRC-REF(2) | reason | parameters... | user data...
//! ER     LI | 70    | DST-REF(2) | reject cause | parameters (C1 = invalid TPDU)
//! ```
//! Parameters are code (1 octet), length (1 octet), value. CR/CC carry the TPDU size (0xC0,
//! a power of two as its base-2 logarithm: 0x07 = 128 … 0x0D = 8192), the calling (0xC1)
//! and called (0xC2) TSAP selectors. The responder may lower the proposed TPDU size; TSDUs
//! larger than a TPDU are cut into DTs whose last one has EOT set, and reassembled by the
//! receiver ([`Reassembler`], capped).

use std::fmt;

use crate::Reaction;

/// Maximum number of parameters accepted in one TPDU.
pub const MAX_PARAMS: usize = 16;
/// Maximum length of a TSAP selector accepted or sent, in octets.
pub const MAX_TSAP_LEN: usize = 32;
/// Smallest TPDU size (X.224 §13.3.4 b: 128 octets, also the default).
pub const MIN_TPDU_SIZE: usize = 128;
/// Largest TPDU size accepted (8192 octets; class 0 proper stops at 2048, RFC 1006 peers
/// commonly use more).
pub const MAX_TPDU_SIZE: usize = 8192;
/// Octets of a class 0 DT header (LI, code, EOT/NR).
pub const DT_HEADER_LEN: usize = 3;

/// A TPDU code (X.224 §13.2.2.2), the high nibble of the second octet. Unknown values are
/// kept and print in hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TpduCode(pub u8);

impl TpduCode {
    /// Connection request.
    pub const CR: TpduCode = TpduCode(0xE0);
    /// Connection confirm.
    pub const CC: TpduCode = TpduCode(0xD0);
    /// Disconnect request.
    pub const DR: TpduCode = TpduCode(0x80);
    /// Disconnect confirm (not class 0).
    pub const DC: TpduCode = TpduCode(0xC0);
    /// Data.
    pub const DT: TpduCode = TpduCode(0xF0);
    /// Expedited data (not class 0).
    pub const ED: TpduCode = TpduCode(0x10);
    /// Data acknowledgement (not class 0).
    pub const AK: TpduCode = TpduCode(0x60);
    /// Expedited data acknowledgement (not class 0).
    pub const EA: TpduCode = TpduCode(0x20);
    /// Reject (not class 0).
    pub const RJ: TpduCode = TpduCode(0x50);
    /// TPDU error.
    pub const ER: TpduCode = TpduCode(0x70);

    /// The standard name, if known.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            TpduCode::CR => "CR",
            TpduCode::CC => "CC",
            TpduCode::DR => "DR",
            TpduCode::DC => "DC",
            TpduCode::DT => "DT",
            TpduCode::ED => "ED",
            TpduCode::AK => "AK",
            TpduCode::EA => "EA",
            TpduCode::RJ => "RJ",
            TpduCode::ER => "ER",
            _ => return None,
        })
    }
}

impl fmt::Debug for TpduCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n}"),
            None => write!(f, "TpduCode({:#04x})", self.0),
        }
    }
}

impl fmt::Display for TpduCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A TPDU parameter code (X.224 §13.3.4, §13.5.4, §13.12.4). Unknown codes are kept.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ParamCode(pub u8);

impl ParamCode {
    /// TPDU size (CR, CC).
    pub const TPDU_SIZE: ParamCode = ParamCode(0xC0);
    /// Calling transport selector (CR, CC).
    pub const CALLING_TSAP: ParamCode = ParamCode(0xC1);
    /// Called transport selector (CR, CC).
    pub const CALLED_TSAP: ParamCode = ParamCode(0xC2);
    /// Invalid TPDU: the header of the offending TPDU (ER; same code as the calling TSAP).
    pub const INVALID_TPDU: ParamCode = ParamCode(0xC1);
    /// Checksum (class 4).
    pub const CHECKSUM: ParamCode = ParamCode(0xC3);
    /// Version number.
    pub const VERSION: ParamCode = ParamCode(0xC4);
    /// Additional option selection.
    pub const ADDITIONAL_OPTIONS: ParamCode = ParamCode(0xC6);
    /// Alternative protocol classes.
    pub const ALTERNATIVE_CLASSES: ParamCode = ParamCode(0xC7);
    /// Additional information (DR).
    pub const ADDITIONAL_INFO: ParamCode = ParamCode(0xE0);
    /// Preferred maximum TPDU size (in multiples of 128 octets).
    pub const PREFERRED_MAX_TPDU_SIZE: ParamCode = ParamCode(0xF0);
}

impl fmt::Debug for ParamCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ParamCode({:#04x})", self.0)
    }
}

/// A parameter kept as it came: code and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Parameter code.
    pub code: ParamCode,
    /// Value octets (at most 255).
    pub value: Vec<u8>,
}

/// A TPDU size as the base-2 logarithm carried in parameter 0xC0 (7 = 128 … 13 = 8192).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TpduSize(u8);

impl TpduSize {
    /// 128 octets, the default when CR/CC carry no TPDU size.
    pub const DEFAULT: TpduSize = TpduSize(7);

    /// From the parameter value.
    ///
    /// # Errors
    /// `None` outside 7..=13.
    pub fn from_code(code: u8) -> Option<TpduSize> {
        (7..=13).contains(&code).then_some(TpduSize(code))
    }

    /// The largest size not above `octets` (clamped to 128..=8192).
    pub fn at_most(octets: u32) -> TpduSize {
        let mut code = 7u8;
        while code < 13 && (1u32 << (code + 1)) <= octets {
            code += 1;
        }
        TpduSize(code)
    }

    /// The parameter value.
    pub fn code(self) -> u8 {
        self.0
    }

    /// The size in octets.
    pub fn octets(self) -> usize {
        1usize << self.0
    }
}

impl fmt::Debug for TpduSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TpduSize({})", self.octets())
    }
}

/// CR or CC TPDU, class 0 (X.224 §13.3, §13.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectTpdu {
    /// Destination reference (0 in a CR).
    pub dst_ref: u16,
    /// Source reference.
    pub src_ref: u16,
    /// Class and options octet: class in the high nibble (0 here), extended formats bit 1,
    /// no explicit flow control bit 0.
    pub class_option: u8,
    /// Proposed (CR) or selected (CC) TPDU size; absent means 128.
    pub tpdu_size: Option<TpduSize>,
    /// Calling TSAP selector (0xC1).
    pub calling_tsap: Option<Vec<u8>>,
    /// Called TSAP selector (0xC2).
    pub called_tsap: Option<Vec<u8>>,
    /// Other parameters, in order, kept as they came.
    pub other: Vec<Param>,
}

/// DT TPDU, class 0 (X.224 §13.7): normal format, no destination reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataTpdu {
    /// End of TSDU mark.
    pub eot: bool,
    /// TPDU-NR (7 bits; 0 in class 0).
    pub nr: u8,
    /// User data.
    pub user_data: Vec<u8>,
}

/// DR TPDU (X.224 §13.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisconnectTpdu {
    /// Destination reference.
    pub dst_ref: u16,
    /// Source reference.
    pub src_ref: u16,
    /// Reason (X.224 §13.5.3 d): 0 unspecified, 1 congestion, 2 session entity not
    /// attached, 3 address unknown, 0x80 normal, 0x81 remote congestion, ...
    pub reason: u8,
    /// Parameters (0xE0 additional information).
    pub params: Vec<Param>,
    /// User data (not in class 0; kept if a peer sends it).
    pub user_data: Vec<u8>,
}

/// ER TPDU (X.224 §13.12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorTpdu {
    /// Destination reference.
    pub dst_ref: u16,
    /// Reject cause: 0 unspecified, 1 invalid parameter code, 2 invalid TPDU type,
    /// 3 invalid parameter value.
    pub cause: u8,
    /// The header of the rejected TPDU (parameter 0xC1).
    pub invalid_tpdu: Option<Vec<u8>>,
}

/// A class 0 TPDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tpdu {
    /// Connection request.
    Cr(ConnectTpdu),
    /// Connection confirm.
    Cc(ConnectTpdu),
    /// Data.
    Dt(DataTpdu),
    /// Disconnect request.
    Dr(DisconnectTpdu),
    /// TPDU error.
    Er(ErrorTpdu),
}

/// X.224 errors. Reaction: an ER TPDU with the matching reject cause (a DR for a CR of
/// another class).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CotpError {
    /// The TPDU is shorter than its fixed part or than its LI says.
    #[error("truncated {0} tpdu")]
    Truncated(&'static str),
    /// The LI is 255 (reserved) or does not fit the TPDU's fixed part.
    #[error("invalid length indicator {0}")]
    BadLengthIndicator(u8),
    /// A TPDU type class 0 does not use, or an unknown one.
    #[error("unsupported tpdu type {0}")]
    UnsupportedTpdu(TpduCode),
    /// A parameter's value is out of range.
    #[error("invalid value for parameter {code:#04x}: {what}")]
    BadParameter {
        /// Parameter code.
        code: u8,
        /// What is wrong.
        what: &'static str,
    },
    /// A parameter occurs twice.
    #[error("duplicate parameter {0:#04x}")]
    DuplicateParameter(u8),
    /// More than [`MAX_PARAMS`] parameters.
    #[error("more than {MAX_PARAMS} parameters")]
    TooManyParams,
    /// The peer asks for a class other than 0 without offering class 0.
    #[error("protocol class {0} is not supported")]
    UnsupportedClass(u8),
    /// CR/CC carry user data, which class 0 forbids (X.224 §13.3.4 f).
    #[error("user data in a class 0 {0}")]
    UserDataNotAllowed(&'static str),
    /// A reassembled TSDU would exceed the cap.
    #[error("tsdu exceeds the cap of {0} octets")]
    TsduTooLarge(usize),
}

impl CotpError {
    /// The wire reaction: an ER with the matching reject cause (X.224 §13.12.3 c).
    ///
    /// A CR asking for a class other than 0 is refused with a DR instead (reason 0, not
    /// specified: X.224 §6.5.4 leaves no class to fall back to).
    pub fn reaction(&self) -> Reaction {
        let cause = match self {
            CotpError::UnsupportedClass(_) => return Reaction::CotpDisconnect { reason: 0 },
            CotpError::UnsupportedTpdu(_) => 2,
            CotpError::BadParameter { .. } | CotpError::DuplicateParameter(_) => 3,
            _ => 0,
        };
        Reaction::CotpError { cause }
    }
}

impl Tpdu {
    /// The TPDU code.
    pub fn code(&self) -> TpduCode {
        match self {
            Tpdu::Cr(_) => TpduCode::CR,
            Tpdu::Cc(_) => TpduCode::CC,
            Tpdu::Dt(_) => TpduCode::DT,
            Tpdu::Dr(_) => TpduCode::DR,
            Tpdu::Er(_) => TpduCode::ER,
        }
    }

    /// Decodes one TPDU filling all of `input` (the payload of one TPKT).
    ///
    /// # Errors
    /// Any [`CotpError`] but [`CotpError::TsduTooLarge`].
    pub fn decode(input: &[u8]) -> Result<Tpdu, CotpError> {
        let li = *input.first().ok_or(CotpError::Truncated("empty"))?;
        if li == 255 || li == 0 {
            return Err(CotpError::BadLengthIndicator(li));
        }
        let header_end = 1 + usize::from(li);
        if input.len() < header_end {
            return Err(CotpError::Truncated("header"));
        }
        let header = &input[1..header_end];
        let rest = &input[header_end..];
        let code = TpduCode(header[0] & 0xF0);
        match code {
            TpduCode::CR | TpduCode::CC => {
                let name = if code == TpduCode::CR { "CR" } else { "CC" };
                if header.len() < 6 {
                    return Err(CotpError::BadLengthIndicator(li));
                }
                if !rest.is_empty() {
                    return Err(CotpError::UserDataNotAllowed(name));
                }
                let mut c = ConnectTpdu {
                    dst_ref: u16::from_be_bytes([header[1], header[2]]),
                    src_ref: u16::from_be_bytes([header[3], header[4]]),
                    class_option: header[5],
                    tpdu_size: None,
                    calling_tsap: None,
                    called_tsap: None,
                    other: Vec::new(),
                };
                for p in parse_params(&header[6..])? {
                    match p.code {
                        ParamCode::TPDU_SIZE => {
                            if c.tpdu_size.is_some() {
                                return Err(CotpError::DuplicateParameter(p.code.0));
                            }
                            let v = match p.value[..] {
                                [v] => v,
                                _ => return Err(bad(p.code, "length is not 1")),
                            };
                            c.tpdu_size =
                                Some(TpduSize::from_code(v).ok_or(bad(p.code, "not in 7..=13"))?);
                        }
                        ParamCode::CALLING_TSAP | ParamCode::CALLED_TSAP => {
                            if p.value.len() > MAX_TSAP_LEN {
                                return Err(bad(p.code, "tsap selector too long"));
                            }
                            let slot = if p.code == ParamCode::CALLING_TSAP {
                                &mut c.calling_tsap
                            } else {
                                &mut c.called_tsap
                            };
                            if slot.replace(p.value).is_some() {
                                return Err(CotpError::DuplicateParameter(p.code.0));
                            }
                        }
                        _ => c.other.push(p),
                    }
                }
                Ok(if code == TpduCode::CR {
                    Tpdu::Cr(c)
                } else {
                    Tpdu::Cc(c)
                })
            }
            TpduCode::DT => {
                if header.len() != 2 {
                    return Err(CotpError::BadLengthIndicator(li));
                }
                Ok(Tpdu::Dt(DataTpdu {
                    eot: header[1] & 0x80 != 0,
                    nr: header[1] & 0x7f,
                    user_data: rest.to_vec(),
                }))
            }
            TpduCode::DR => {
                if header.len() < 6 {
                    return Err(CotpError::BadLengthIndicator(li));
                }
                Ok(Tpdu::Dr(DisconnectTpdu {
                    dst_ref: u16::from_be_bytes([header[1], header[2]]),
                    src_ref: u16::from_be_bytes([header[3], header[4]]),
                    reason: header[5],
                    params: parse_params(&header[6..])?,
                    user_data: rest.to_vec(),
                }))
            }
            TpduCode::ER => {
                if header.len() < 4 {
                    return Err(CotpError::BadLengthIndicator(li));
                }
                let mut invalid_tpdu = None;
                for p in parse_params(&header[4..])? {
                    if p.code == ParamCode::INVALID_TPDU && invalid_tpdu.replace(p.value).is_some()
                    {
                        return Err(CotpError::DuplicateParameter(p.code.0));
                    }
                }
                Ok(Tpdu::Er(ErrorTpdu {
                    dst_ref: u16::from_be_bytes([header[1], header[2]]),
                    cause: header[3],
                    invalid_tpdu,
                }))
            }
            other => Err(CotpError::UnsupportedTpdu(other)),
        }
    }

    /// Appends the encoded TPDU to `out`.
    ///
    /// # Panics
    /// If the header would exceed 254 octets (TSAPs longer than [`MAX_TSAP_LEN`] or
    /// parameters of more than 255 octets): the caller's values are checked before.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.push(0); // LI, patched below
        match self {
            Tpdu::Cr(c) | Tpdu::Cc(c) => {
                out.push(if matches!(self, Tpdu::Cr(_)) {
                    0xE0
                } else {
                    0xD0
                });
                out.extend_from_slice(&c.dst_ref.to_be_bytes());
                out.extend_from_slice(&c.src_ref.to_be_bytes());
                out.push(c.class_option);
                if let Some(size) = c.tpdu_size {
                    push_param(out, ParamCode::TPDU_SIZE, &[size.code()]);
                }
                if let Some(t) = &c.calling_tsap {
                    push_param(out, ParamCode::CALLING_TSAP, t);
                }
                if let Some(t) = &c.called_tsap {
                    push_param(out, ParamCode::CALLED_TSAP, t);
                }
                for p in &c.other {
                    push_param(out, p.code, &p.value);
                }
                patch_li(out, start);
            }
            Tpdu::Dt(d) => {
                out.push(0xF0);
                out.push(if d.eot { 0x80 } else { 0 } | (d.nr & 0x7f));
                patch_li(out, start);
                out.extend_from_slice(&d.user_data);
            }
            Tpdu::Dr(d) => {
                out.push(0x80);
                out.extend_from_slice(&d.dst_ref.to_be_bytes());
                out.extend_from_slice(&d.src_ref.to_be_bytes());
                out.push(d.reason);
                for p in &d.params {
                    push_param(out, p.code, &p.value);
                }
                patch_li(out, start);
                out.extend_from_slice(&d.user_data);
            }
            Tpdu::Er(e) => {
                out.push(0x70);
                out.extend_from_slice(&e.dst_ref.to_be_bytes());
                out.push(e.cause);
                if let Some(v) = &e.invalid_tpdu {
                    push_param(out, ParamCode::INVALID_TPDU, v);
                }
                patch_li(out, start);
            }
        }
    }

    /// The encoded TPDU.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

fn bad(code: ParamCode, what: &'static str) -> CotpError {
    CotpError::BadParameter { code: code.0, what }
}

fn parse_params(mut input: &[u8]) -> Result<Vec<Param>, CotpError> {
    let mut params = Vec::new();
    while !input.is_empty() {
        if params.len() == MAX_PARAMS {
            return Err(CotpError::TooManyParams);
        }
        let [code, len, rest @ ..] = input else {
            return Err(CotpError::Truncated("parameter"));
        };
        let len = usize::from(*len);
        if rest.len() < len {
            return Err(CotpError::Truncated("parameter"));
        }
        params.push(Param {
            code: ParamCode(*code),
            value: rest[..len].to_vec(),
        });
        input = &rest[len..];
    }
    Ok(params)
}

fn push_param(out: &mut Vec<u8>, code: ParamCode, value: &[u8]) {
    let len = u8::try_from(value.len()).expect("cotp parameter of at most 255 octets");
    out.push(code.0);
    out.push(len);
    out.extend_from_slice(value);
}

fn patch_li(out: &mut [u8], start: usize) {
    let li = out.len() - start - 1;
    out[start] = u8::try_from(li)
        .ok()
        .filter(|l| *l < 255)
        .expect("cotp header of at most 254 octets");
}

/// The DT TPDU headers and user data of a TSDU cut for `tpdu_size` (X.224 §13.7): at least
/// one piece, EOT on the last.
fn dt_pieces(
    tsdu: &[u8],
    tpdu_size: TpduSize,
) -> impl Iterator<Item = ([u8; DT_HEADER_LEN], &[u8])> {
    let room = tpdu_size.octets() - DT_HEADER_LEN;
    let n = tsdu.len().div_ceil(room).max(1);
    (0..n).map(move |i| {
        let chunk = &tsdu[(i * room).min(tsdu.len())..((i + 1) * room).min(tsdu.len())];
        ([0x02, 0xF0, if i + 1 == n { 0x80 } else { 0 }], chunk)
    })
}

/// Cuts a TSDU into encoded class 0 DT TPDUs of at most `tpdu_size` octets each (header
/// included), EOT on the last one. An empty TSDU gives one empty DT with EOT.
pub fn segment(tsdu: &[u8], tpdu_size: TpduSize) -> Vec<Vec<u8>> {
    dt_pieces(tsdu, tpdu_size)
        .map(|(header, chunk)| [&header[..], chunk].concat())
        .collect()
}

/// [`segment`] with each DT TPDU already in its TPKT (RFC 1006 §6): the frames to write,
/// appended to `out` back to back (each TPKT says its own length), the TSDU's octets copied
/// once.
pub fn segment_framed_into(tsdu: &[u8], tpdu_size: TpduSize, out: &mut Vec<u8>) {
    let pieces = tsdu.len().div_ceil(tpdu_size.octets() - DT_HEADER_LEN).max(1);
    out.reserve(tsdu.len() + pieces * (crate::tpkt::HEADER_LEN + DT_HEADER_LEN));
    for (header, chunk) in dt_pieces(tsdu, tpdu_size) {
        crate::tpkt::push_header(out, DT_HEADER_LEN + chunk.len());
        out.extend_from_slice(&header);
        out.extend_from_slice(chunk);
    }
}

/// The EOT mark and user data of `input` (the payload of one TPKT) when it is a class 0 DT
/// (`02 F0 EOT|NR ...`, X.224 §13.7), borrowed; `None` for any other TPDU, which
/// [`Tpdu::decode`] then reads. Accepts exactly what [`Tpdu::decode`] reads as a DT.
pub fn dt_of(input: &[u8]) -> Option<(bool, &[u8])> {
    match input {
        [2, code, eot_nr, user_data @ ..] if TpduCode(code & 0xF0) == TpduCode::DT => Some((eot_nr & 0x80 != 0, user_data)),
        _ => None,
    }
}

/// Reassembles TSDUs from DT TPDUs (X.224 §13.7), refusing to grow past a cap.
#[derive(Debug, Clone)]
pub struct Reassembler {
    buf: Vec<u8>,
    max: usize,
}

impl Reassembler {
    /// A reassembler for TSDUs of at most `max` octets.
    pub fn new(max: usize) -> Self {
        Reassembler {
            buf: Vec::new(),
            max,
        }
    }

    /// Adds one DT's user data; returns the TSDU when `eot` closes it.
    ///
    /// # Errors
    /// [`CotpError::TsduTooLarge`] when the TSDU would exceed the cap (the partial TSDU is
    /// dropped).
    pub fn push(&mut self, user_data: &[u8], eot: bool) -> Result<Option<Vec<u8>>, CotpError> {
        if self.buf.len() + user_data.len() > self.max {
            self.buf = Vec::new();
            return Err(CotpError::TsduTooLarge(self.max));
        }
        self.buf.extend_from_slice(user_data);
        Ok(eot.then(|| std::mem::take(&mut self.buf)))
    }

    /// As [`Reassembler::push`], without a copy for a TSDU that one DT carries whole (`eot`
    /// with nothing held): then the TSDU is `user_data` itself. The first segment of a
    /// longer TSDU sets aside room for four segments, so that a TSDU of a few segments is
    /// not moved as it grows.
    ///
    /// # Errors
    /// As [`Reassembler::push`].
    pub fn push_borrowed<'a>(&mut self, user_data: &'a [u8], eot: bool) -> Result<Option<std::borrow::Cow<'a, [u8]>>, CotpError> {
        if self.buf.is_empty() && user_data.len() <= self.max {
            if eot {
                return Ok(Some(std::borrow::Cow::Borrowed(user_data)));
            }
            self.buf.reserve(user_data.len().saturating_mul(4).min(self.max));
        }
        Ok(self.push(user_data, eot)?.map(std::borrow::Cow::Owned))
    }

    /// Octets held of an unfinished TSDU.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framed_segments_are_tpkts_around_the_segments() {
        for size in [TpduSize::at_most(128), TpduSize::at_most(2048)] {
            for n in [0usize, 1, 124, 125, 126, 2045, 2046, 4700, 9000] {
                let tsdu: Vec<u8> = (0..n).map(|i| i as u8).collect();
                let want: Vec<Vec<u8>> = segment(&tsdu, size)
                    .iter()
                    .map(|t| {
                        let mut f = Vec::new();
                        crate::tpkt::encode(t, &mut f).unwrap();
                        f
                    })
                    .collect();
                let mut out = vec![9u8];
                segment_framed_into(&tsdu, size, &mut out);
                assert_eq!(out, [vec![9u8], want.concat()].concat(), "{n} octets, appended");
            }
        }
    }

    #[test]
    fn x400ping_cr() {
        // LI=0x13 CR dst=0000 src=0001 class 0, tpdu-size 2048, calling "MTA", called "MTA"
        let b = [
            0x13, 0xe0, 0, 0, 0, 1, 0, 0xc0, 1, 0x0b, 0xc1, 3, b'M', b'T', b'A', 0xc2, 3, b'M',
            b'T', b'A',
        ];
        let t = Tpdu::decode(&b).unwrap();
        let Tpdu::Cr(c) = &t else { panic!("{t:?}") };
        assert_eq!((c.dst_ref, c.src_ref, c.class_option), (0, 1, 0));
        assert_eq!(c.tpdu_size.unwrap().octets(), 2048);
        assert_eq!(c.calling_tsap.as_deref(), Some(&b"MTA"[..]));
        assert_eq!(t.to_bytes(), b);
    }

    #[test]
    fn errors_and_reactions() {
        assert_eq!(Tpdu::decode(&[]), Err(CotpError::Truncated("empty")));
        assert_eq!(
            Tpdu::decode(&[0xff, 0xf0]),
            Err(CotpError::BadLengthIndicator(255))
        );
        assert_eq!(
            Tpdu::decode(&[0x05, 0xe0, 0, 0]),
            Err(CotpError::Truncated("header"))
        );
        let e = Tpdu::decode(&[0x02, 0x60, 0]).unwrap_err();
        assert_eq!(e, CotpError::UnsupportedTpdu(TpduCode::AK));
        assert_eq!(e.reaction(), Reaction::CotpError { cause: 2 });
        let e = Tpdu::decode(&[0x09, 0xe0, 0, 0, 0, 1, 0, 0xc0, 1, 0x0e]).unwrap_err();
        assert_eq!(e.reaction(), Reaction::CotpError { cause: 3 });
        assert_eq!(format!("{:?}", TpduCode(0x30)), "TpduCode(0x30)");
    }

    #[test]
    fn segments_and_reassembles() {
        let data: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        let size = TpduSize::from_code(0x0b).unwrap();
        let tpdus = segment(&data, size);
        assert_eq!(tpdus.len(), 3);
        assert!(tpdus.iter().all(|t| t.len() <= 2048));
        let mut r = Reassembler::new(10_000);
        let mut got = None;
        for t in &tpdus {
            let Tpdu::Dt(d) = Tpdu::decode(t).unwrap() else {
                panic!()
            };
            got = r.push(&d.user_data, d.eot).unwrap();
        }
        assert_eq!(got.unwrap(), data);
        assert_eq!(segment(&[], size), vec![vec![0x02, 0xf0, 0x80]]);
        let mut small = Reassembler::new(100);
        assert_eq!(
            small.push(&[0; 101], false),
            Err(CotpError::TsduTooLarge(100))
        );
        assert_eq!(TpduSize::at_most(2048).octets(), 2048);
        assert_eq!(TpduSize::at_most(3000).octets(), 2048);
        assert_eq!(TpduSize::at_most(10).octets(), 128);
        assert_eq!(TpduSize::at_most(65536).octets(), 8192);
    }
}
