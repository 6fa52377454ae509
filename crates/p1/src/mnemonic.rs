//! The mnemonic text form of O/R addresses as Exchange Server writes them (X.402 §18 and
//! Annex F; Exchange proxy addresses): `c=US;a= ;p=ExchangeORG;o=SiteA;s=Smith;g=John`.
//!
//! Grammar (keys are case-insensitive, values are taken verbatim — no trimming):
//!
//! ```text
//! address   = ["X400:"] attr *(";" attr) [";"]          ; semicolon form
//!           / ["X400:"] "/" attr *("/" attr) ["/"]        ; slash form (MS Mail gateway style)
//! attr      = key "=" value / ("dda:" / "dda\:") type "=" value
//! key       = "c" / "a" / "p" / "o" / "ou1".."ou4" / "s" / "g" / "i" / "q" / "cn"
//!           / "x121" / "t-id" / "n-id"
//! value     = *(char / "$" char)                          ; "$" escapes the next character
//! ```
//!
//! | key | attribute (X.402 §18.3) | wire type |
//! |---|---|---|
//! | `c` | country-name | two letters → iso-3166-alpha2-code, three digits → x121-dcc-code |
//! | `a` | administration-domain-name | all digits → numeric, else printable; `a= ` (one space) = no ADMD |
//! | `p` | private-domain-name | all digits → numeric, else printable |
//! | `o` | organization-name | PrintableString 1..64 |
//! | `ou1`..`ou4` | organizational-unit-names | PrintableString 1..32, contiguous from ou1 |
//! | `s` `g` `i` `q` | personal-name surname / given-name / initials / generation-qualifier | 1..40 / 1..16 / 1..5 / 1..3 |
//! | `cn` | common-name extension attribute (type 1) | PrintableString 1..64 |
//! | `x121` | network-address | NumericString 1..16 |
//! | `t-id` | terminal-identifier | PrintableString 1..24 |
//! | `n-id` | numeric-user-identifier | NumericString 1..32 |
//! | `dda:T=V` | built-in domain-defined attribute | type 1..8, value 1..128, at most 4 |
//!
//! Values must be PrintableStrings. Characters outside that repertoire are written the way
//! Exchange and RFC 1327 §3.4 / RFC 2156 do, as printable escapes inside the value —
//! `(a)` `@`, `(p)` `%`, `(b)` `!`, `(q)` `"`, `(u)` `_`, `(l)` `(`, `(r)` `)`, `(ddd)`
//! decimal — and stay escaped on the wire (KB Q169688); [`escape_printable`] and
//! [`unescape_printable`] convert.
//!
//! [`OrAddress::to_mnemonic`] writes the canonical order `c a p o ou1..ou4 s g i q cn x121
//! t-id n-id dda`, lowercase keys, `;` separators, no trailing `;`; such text round-trips
//! exactly. Extension attributes other than common-name have no key and are left out.

use compact_str::CompactString;
use nom::branch::alt;
use nom::bytes::complete::{tag, tag_no_case, take_while1};
use nom::character::complete::{anychar, char};
use nom::combinator::map;
use nom::multi::fold_many0;
use nom::sequence::preceded;
use nom::{IResult, Parser};

use crate::address::{
    CountryName, DomainDefinedAttribute, DomainName, ExtensionAttribute, GlobalDomainIdentifier,
    OrAddress, OrName, PersonalName,
};
use crate::ber::is_printable_char;
use crate::error::{Error, Result};
use crate::limits::{MAX_DOMAIN_DEFINED_ATTRIBUTES, MAX_MNEMONIC_LEN};

/// One `key=value` as parsed, before interpretation.
struct RawAttr {
    offset: usize,
    key: String,
    dda_type: Option<String>,
    value: String,
}

fn key(input: &str) -> IResult<&str, &str> {
    take_while1(|c: char| c.is_ascii_alphanumeric() || c == '-').parse(input)
}

fn value<'a>(
    sep: char,
) -> impl Parser<&'a str, Output = String, Error = nom::error::Error<&'a str>> {
    fold_many0(
        alt((
            map(
                take_while1(move |c: char| c != sep && c != '$'),
                str::to_string,
            ),
            map(preceded(char('$'), anychar), |c: char| c.to_string()),
        )),
        String::new,
        |mut acc, piece| {
            acc.push_str(&piece);
            acc
        },
    )
}

/// `key=value` or `dda:type=value`; returns (key, dda type, value).
fn attribute(sep: char, input: &str) -> IResult<&str, (String, Option<String>, String)> {
    let (rest, k) = key(input)?;
    if k.eq_ignore_ascii_case("dda") {
        let (rest, _) = alt((tag(":"), tag("\\:"))).parse(rest)?;
        let (rest, ty) = take_while1(move |c: char| c != '=' && c != sep).parse(rest)?;
        let (rest, _) = char('=').parse(rest)?;
        let (rest, v) = value(sep).parse(rest)?;
        Ok((rest, (k.to_ascii_lowercase(), Some(ty.to_string()), v)))
    } else {
        let (rest, _) = char('=').parse(rest)?;
        let (rest, v) = value(sep).parse(rest)?;
        Ok((rest, (k.to_ascii_lowercase(), None, v)))
    }
}

fn err(offset: usize, reason: impl Into<String>) -> Error {
    Error::Mnemonic {
        offset,
        reason: reason.into(),
    }
}

/// Splits the text into raw attributes.
fn lex(text: &str) -> Result<Vec<RawAttr>> {
    if text.len() > MAX_MNEMONIC_LEN {
        return Err(err(
            MAX_MNEMONIC_LEN,
            format!("text longer than {MAX_MNEMONIC_LEN} octets"),
        ));
    }
    let mut input = text;
    if let Ok((rest, _)) = tag_no_case::<&str, &str, nom::error::Error<&str>>("X400:").parse(input)
    {
        input = rest;
    }
    let sep = if let Some(rest) = input.strip_prefix('/') {
        input = rest;
        '/'
    } else {
        ';'
    };
    let offset_of = |rest: &str| text.len() - rest.len();
    let mut attrs = Vec::new();
    if input.is_empty() {
        return Err(err(offset_of(input), "empty address"));
    }
    loop {
        let start = offset_of(input);
        let (rest, (key, dda_type, value)) =
            attribute(sep, input).map_err(|_| err(start, "expected KEY=VALUE"))?;
        attrs.push(RawAttr {
            offset: start,
            key,
            dda_type,
            value,
        });
        if rest.is_empty() {
            break;
        }
        let mut chars = rest.chars();
        if chars.next() != Some(sep) {
            return Err(err(
                offset_of(rest),
                format!("expected {sep:?} between attributes"),
            ));
        }
        input = chars.as_str();
        if input.is_empty() {
            break;
        }
    }
    Ok(attrs)
}

fn check_printable(a: &RawAttr, min: usize, max: usize) -> Result<CompactString> {
    let n = a.value.chars().count();
    if n < min || n > max {
        return Err(err(
            a.offset,
            format!("{}= must hold {min}..={max} characters, not {n}", a.key),
        ));
    }
    if let Some(c) = a.value.chars().find(|c| !is_printable_char(*c)) {
        return Err(err(
            a.offset,
            format!("{c:?} in {}= is not a PrintableString character", a.key),
        ));
    }
    Ok(CompactString::from(a.value.as_str()))
}

fn check_numeric(a: &RawAttr, min: usize, max: usize) -> Result<CompactString> {
    let v = check_printable(a, min, max)?;
    if !v.chars().all(|c| c.is_ascii_digit()) {
        return Err(err(a.offset, format!("{}= must be digits", a.key)));
    }
    Ok(v)
}

fn domain(a: &RawAttr, min: usize) -> Result<DomainName> {
    let v = check_printable(a, min, 16)?;
    if !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()) {
        Ok(DomainName::Numeric(v))
    } else {
        Ok(DomainName::Printable(v))
    }
}

fn put<T>(slot: &mut Option<T>, v: T, a: &RawAttr) -> Result<()> {
    if slot.is_some() {
        return Err(err(a.offset, format!("duplicate {}=", a.key)));
    }
    *slot = Some(v);
    Ok(())
}

impl OrAddress {
    /// Parses the mnemonic form (module docs give the grammar), e.g.
    /// `c=US;a= ;p=ExchangeORG;o=SiteA;s=Smith;g=John`.
    ///
    /// Errors: [`Error::Mnemonic`] with the byte offset of the offending attribute — unknown
    /// key, duplicate key, empty or over-long value, a character outside PrintableString,
    /// `g`/`i`/`q` without `s`, `ou2`.. without the units before it, more than 4 `dda`, a
    /// text longer than [`MAX_MNEMONIC_LEN`].
    pub fn parse_mnemonic(text: &str) -> Result<OrAddress> {
        let attrs = lex(text)?;
        let mut a = OrAddress::default();
        let mut ous: [Option<CompactString>; 4] = Default::default();
        let (mut s, mut g, mut i, mut q, mut cn) = (None, None, None, None, None);
        for at in &attrs {
            match (at.key.as_str(), &at.dda_type) {
                ("dda", Some(ty)) => {
                    if a.domain_defined_attributes.len() == MAX_DOMAIN_DEFINED_ATTRIBUTES {
                        return Err(err(at.offset, "more than 4 domain-defined attributes"));
                    }
                    let ty_attr = RawAttr {
                        offset: at.offset,
                        key: "dda type".into(),
                        dda_type: None,
                        value: ty.clone(),
                    };
                    a.domain_defined_attributes.push(DomainDefinedAttribute {
                        attribute_type: check_printable(&ty_attr, 1, 8)?,
                        value: check_printable(at, 1, 128)?,
                    });
                }
                ("c", None) => {
                    let v = check_printable(at, 2, 3)?;
                    let c = if v.len() == 3 && v.chars().all(|c| c.is_ascii_digit()) {
                        CountryName::X121DccCode(v)
                    } else if v.len() == 2 && v.chars().all(|c| c.is_ascii_alphabetic()) {
                        CountryName::Iso3166Alpha2(v)
                    } else {
                        return Err(err(at.offset, "c= must be two letters or three digits"));
                    };
                    put(&mut a.country, c, at)?;
                }
                ("a", None) => put(&mut a.admd, domain(at, 0)?, at)?,
                ("p", None) => put(&mut a.prmd, domain(at, 1)?, at)?,
                ("o", None) => put(&mut a.organization, check_printable(at, 1, 64)?, at)?,
                ("ou1", None) | ("ou2", None) | ("ou3", None) | ("ou4", None) => {
                    let n = usize::from(at.key.as_bytes()[2] - b'1');
                    put(&mut ous[n], check_printable(at, 1, 32)?, at)?;
                }
                ("s", None) => put(&mut s, check_printable(at, 1, 40)?, at)?,
                ("g", None) => put(&mut g, check_printable(at, 1, 16)?, at)?,
                ("i", None) => put(&mut i, check_printable(at, 1, 5)?, at)?,
                ("q", None) => put(&mut q, check_printable(at, 1, 3)?, at)?,
                ("cn", None) => put(&mut cn, check_printable(at, 1, 64)?, at)?,
                ("x121", None) => put(&mut a.network_address, check_numeric(at, 1, 16)?, at)?,
                ("t-id", None) => put(&mut a.terminal_identifier, check_printable(at, 1, 24)?, at)?,
                ("n-id", None) => put(
                    &mut a.numeric_user_identifier,
                    check_numeric(at, 1, 32)?,
                    at,
                )?,
                (k, _) => return Err(err(at.offset, format!("unknown attribute key {k:?}"))),
            }
        }
        let present = ous.iter().take_while(|o| o.is_some()).count();
        if ous[present..].iter().any(Option::is_some) {
            let at = attrs
                .iter()
                .find(|at| at.key.starts_with("ou"))
                .map_or(0, |at| at.offset);
            return Err(err(
                at,
                format!("ou{} given without ou{}", present + 2, present + 1),
            ));
        }
        a.organizational_units = ous.into_iter().flatten().collect();
        match s {
            Some(surname) => {
                a.personal_name = Some(PersonalName {
                    surname,
                    given_name: g,
                    initials: i,
                    generation_qualifier: q,
                })
            }
            None if g.is_some() || i.is_some() || q.is_some() => {
                let at = attrs
                    .iter()
                    .find(|at| matches!(at.key.as_str(), "g" | "i" | "q"))
                    .map_or(0, |at| at.offset);
                return Err(err(
                    at,
                    "given name, initials or generation qualifier without a surname (s=)",
                ));
            }
            None => {}
        }
        if let Some(cn) = cn {
            a.extension_attributes
                .push(ExtensionAttribute::CommonName(cn));
        }
        Ok(a)
    }

    /// Writes the canonical mnemonic form (see the module docs); attributes without a key
    /// (directory name, extension attributes other than common-name) are left out.
    pub fn to_mnemonic(&self) -> String {
        // Written into one string (this runs for every address of every message crossing
        // the gateway).
        let mut out = String::with_capacity(64);
        // A key is written in one or two parts (`ou` and its number, `dda:` and its type),
        // without the formatting machinery.
        let mut push = |k: &str, k2: &str, v: &str| {
            if !out.is_empty() {
                out.push(';');
            }
            out.push_str(k);
            out.push_str(k2);
            out.push('=');
            push_escaped(&mut out, v);
        };
        if let Some(c) = &self.country {
            push("c", "", c.as_str());
        }
        if let Some(a) = &self.admd {
            push("a", "", a.as_str());
        }
        if let Some(p) = &self.prmd {
            push("p", "", p.as_str());
        }
        if let Some(o) = &self.organization {
            push("o", "", o);
        }
        for (n, ou) in self.organizational_units.iter().enumerate() {
            let number;
            let k2 = match n {
                0 => "1",
                1 => "2",
                2 => "3",
                3 => "4",
                _ => {
                    number = (n + 1).to_string();
                    number.as_str()
                }
            };
            push("ou", k2, ou);
        }
        if let Some(pn) = &self.personal_name {
            push("s", "", &pn.surname);
            if let Some(g) = &pn.given_name {
                push("g", "", g);
            }
            if let Some(i) = &pn.initials {
                push("i", "", i);
            }
            if let Some(q) = &pn.generation_qualifier {
                push("q", "", q);
            }
        }
        if let Some(cn) = self.common_name() {
            push("cn", "", cn);
        }
        if let Some(x) = &self.network_address {
            push("x121", "", x);
        }
        if let Some(t) = &self.terminal_identifier {
            push("t-id", "", t);
        }
        if let Some(n) = &self.numeric_user_identifier {
            push("n-id", "", n);
        }
        for d in &self.domain_defined_attributes {
            push("dda:", &d.attribute_type, &d.value);
        }
        out
    }
}

/// Append `v` to `out` with `;` and `$` escaped by a `$` before them.
fn push_escaped(out: &mut String, v: &str) {
    // Searched octet by octet (both are ASCII, so never inside a multi-octet character):
    // cheaper than a `char` pattern for these short values.
    let mut rest = v;
    while let Some(p) = rest.bytes().position(|b| b == b';' || b == b'$') {
        out.push_str(&rest[..p]);
        out.push('$');
        out.push_str(&rest[p..p + 1]);
        rest = &rest[p + 1..];
    }
    out.push_str(rest);
}

impl std::fmt::Display for OrAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_mnemonic())
    }
}

impl std::str::FromStr for OrAddress {
    type Err = Error;
    fn from_str(s: &str) -> Result<OrAddress> {
        OrAddress::parse_mnemonic(s)
    }
}

impl OrName {
    /// Parses the mnemonic form into an ORName without a directory name
    /// ([`OrAddress::parse_mnemonic`]).
    pub fn parse_mnemonic(text: &str) -> Result<OrName> {
        OrAddress::parse_mnemonic(text).map(OrName::from)
    }

    /// The mnemonic form of the address ([`OrAddress::to_mnemonic`]).
    pub fn to_mnemonic(&self) -> String {
        self.address.to_mnemonic()
    }
}

impl GlobalDomainIdentifier {
    /// Parses `c=..;a=..[;p=..]` (the same keys as an O/R address, no others).
    ///
    /// Errors: [`Error::Mnemonic`] when `c` or `a` is missing or another key is present.
    pub fn parse_mnemonic(text: &str) -> Result<GlobalDomainIdentifier> {
        let a = OrAddress::parse_mnemonic(text)?;
        let (Some(country), Some(admd)) = (a.country.clone(), a.admd.clone()) else {
            return Err(err(0, "a global domain identifier needs c= and a="));
        };
        let gdi = GlobalDomainIdentifier {
            country,
            admd,
            prmd: a.prmd.clone(),
        };
        if a != gdi.to_or_address() {
            return Err(err(
                0,
                "a global domain identifier holds only c=, a= and p=",
            ));
        }
        Ok(gdi)
    }

    /// Writes `c=..;a=..[;p=..]`.
    pub fn to_mnemonic(&self) -> String {
        let mut out = String::with_capacity(32);
        out.push_str("c=");
        push_escaped(&mut out, self.country.as_str());
        out.push_str(";a=");
        push_escaped(&mut out, self.admd.as_str());
        if let Some(p) = &self.prmd {
            out.push_str(";p=");
            push_escaped(&mut out, p.as_str());
        }
        out
    }

    /// The O/R address holding only country, ADMD and PRMD.
    pub fn to_or_address(&self) -> OrAddress {
        OrAddress {
            country: Some(self.country.clone()),
            admd: Some(self.admd.clone()),
            prmd: self.prmd.clone(),
            ..OrAddress::default()
        }
    }
}

/// Maps text onto the PrintableString repertoire the way RFC 1327 §3.4 / RFC 2156 and
/// Exchange do: `@`→`(a)`, `%`→`(p)`, `!`→`(b)`, `"`→`(q)`, `_`→`(u)`, `(`→`(l)`, `)`→`(r)`,
/// any other character outside the repertoire → `(ddd)` with its decimal code (three
/// digits, more when the code point is above 999).
pub fn escape_printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '@' => out.push_str("(a)"),
            '%' => out.push_str("(p)"),
            '!' => out.push_str("(b)"),
            '"' => out.push_str("(q)"),
            '_' => out.push_str("(u)"),
            '(' => out.push_str("(l)"),
            ')' => out.push_str("(r)"),
            c if is_printable_char(c) => out.push(c),
            c => out.push_str(&format!("({:03})", u32::from(c))),
        }
    }
    out
}

/// The inverse of [`escape_printable`]; a `(` that starts no escape is kept as is.
pub fn unescape_printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('(') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let close = after.find(')');
        let decoded = close.and_then(|end| {
            let inner = &after[..end];
            let c = match inner {
                "a" => Some('@'),
                "p" => Some('%'),
                "b" => Some('!'),
                "q" => Some('"'),
                "u" => Some('_'),
                "l" => Some('('),
                "r" => Some(')'),
                d if d.len() >= 3 && d.chars().all(|c| c.is_ascii_digit()) => {
                    d.parse::<u32>().ok().and_then(char::from_u32)
                }
                _ => None,
            };
            c.map(|c| (c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push('(');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}
