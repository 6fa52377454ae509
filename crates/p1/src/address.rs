//! O/R names and addresses (X.402 §18, X.411 §12.2 `ORName` / `ORAddress`), global domain
//! identifiers, MTS identifiers and MTA names, in their binary (BER) form.
//!
//! The Exchange mnemonic text form (`c=US;a= ;p=ExchangeORG;o=SiteA;s=Smith;g=John`) is in
//! [`crate::mnemonic`].
//!
//! Attribute values are [`CompactString`]s: a value of up to 24 octets (nearly every
//! attribute X.402 defines; the caps are 2..128) is held inline, so decoding or cloning an
//! O/R name of a dozen attributes allocates nothing for them.

use compact_str::CompactString;

use crate::ber::{self, Reader, StrKind, Tag, Tlv, Writer, app_c, ctx_c};
use crate::error::{Error, Result};
use crate::limits::{
    MAX_DEPTH, MAX_DOMAIN_DEFINED_ATTRIBUTES, MAX_EXTENSION_ATTRIBUTES, MAX_MTA_NAME_LEN, MAX_OPAQUE_LEN,
    MAX_ORGANIZATIONAL_UNITS, MAX_PDU_LEN, MAX_STRING_LEN,
};

/// `CountryName ::= [APPLICATION 1] CHOICE { x121-dcc-code NumericString (SIZE 3),
/// iso-3166-alpha2-code PrintableString (SIZE 2) }` (X.411 §12.2, X.402 §18.3.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CountryName {
    /// x121-dcc-code: three digits.
    X121DccCode(CompactString),
    /// iso-3166-alpha2-code: two letters, e.g. `US`.
    Iso3166Alpha2(CompactString),
}

impl CountryName {
    /// The code as text.
    pub fn as_str(&self) -> &str {
        match self {
            CountryName::X121DccCode(s) | CountryName::Iso3166Alpha2(s) => s,
        }
    }
}

/// A domain name CHOICE { numeric NumericString, printable PrintableString }, the shape
/// of `AdministrationDomainName` ([APPLICATION 2], SIZE 0..16), `PrivateDomainName`
/// (`[2]`, SIZE 1..16) and `PrivateDomainIdentifier` (X.411 §12.2, X.402 §18.3.1/§18.3.9).
///
/// An ADMD of one space, `Printable(" ")`, is how X.400 (1988) writes "no ADMD" (Exchange's
/// `a= `); it is kept as the one-space string on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DomainName {
    /// NumericString form.
    Numeric(CompactString),
    /// PrintableString form.
    Printable(CompactString),
}

impl DomainName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        match self {
            DomainName::Numeric(s) | DomainName::Printable(s) => s,
        }
    }
}

/// `PersonalName ::= SET { surname [0], given-name [1] OPTIONAL, initials [2] OPTIONAL,
/// generation-qualifier [3] OPTIONAL }`, all PrintableString (X.411 §12.2, X.402 §18.3.12).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PersonalName {
    /// surname `s=` (1..40 characters).
    pub surname: CompactString,
    /// given-name `g=` (1..16).
    pub given_name: Option<CompactString>,
    /// initials `i=` (1..5).
    pub initials: Option<CompactString>,
    /// generation-qualifier `q=` (1..3).
    pub generation_qualifier: Option<CompactString>,
}

/// `BuiltInDomainDefinedAttribute ::= SEQUENCE { type PrintableString (SIZE 1..8),
/// value PrintableString (SIZE 1..128) }` (X.402 §18.3.6), written `dda:TYPE=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DomainDefinedAttribute {
    /// The attribute type.
    pub attribute_type: CompactString,
    /// The attribute value.
    pub value: CompactString,
}

/// `ExtensionAttribute ::= SEQUENCE { extension-attribute-type [0] INTEGER,
/// extension-attribute-value [1] ANY }` (X.411 §12.2, X.402 §18.4).
///
/// common-name (type 1, PrintableString, the mnemonic `cn=`) is understood; every other
/// attribute is kept as the octets of its value so that it round-trips unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ExtensionAttribute {
    /// common-name (1): PrintableString (SIZE 1..64).
    CommonName(CompactString),
    /// Any other attribute.
    Other {
        /// extension-attribute-type (0..=256).
        attribute_type: u32,
        /// The BER encoding inside the `[1]` wrapper (one or more complete elements).
        value: Vec<u8>,
    },
}

/// The common-name extension attribute type (X.411 §12.2).
pub const EXTENSION_ATTRIBUTE_COMMON_NAME: u32 = 1;

/// `ORAddress ::= SEQUENCE { built-in-standard-attributes, built-in-domain-defined-attributes
/// OPTIONAL, extension-attributes OPTIONAL }` (X.411 §12.2, X.402 §18.5).
///
/// Wire shape: `30 { 30 {BuiltInStandardAttributes} [30 {DDAs}] [31 {extension attributes}] }`.
/// Inside BuiltInStandardAttributes: country-name `61`, administration-domain-name `62`,
/// network-address `[0]`, terminal-identifier `[1]`, private-domain-name `[2]` (explicit,
/// a CHOICE), organization-name `[3]`, numeric-user-identifier `[4]`, personal-name `[5]`,
/// organizational-unit-names `[6]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct OrAddress {
    /// country-name `c=`.
    pub country: Option<CountryName>,
    /// administration-domain-name `a=`.
    pub admd: Option<DomainName>,
    /// network-address (X121Address, NumericString 1..16) `x121=`.
    pub network_address: Option<CompactString>,
    /// terminal-identifier (PrintableString 1..24) `t-id=`.
    pub terminal_identifier: Option<CompactString>,
    /// private-domain-name `p=`.
    pub prmd: Option<DomainName>,
    /// organization-name (PrintableString 1..64) `o=`.
    pub organization: Option<CompactString>,
    /// numeric-user-identifier (NumericString 1..32) `n-id=`.
    pub numeric_user_identifier: Option<CompactString>,
    /// personal-name `s=`, `g=`, `i=`, `q=`.
    pub personal_name: Option<PersonalName>,
    /// organizational-unit-names, at most 4, each 1..32 characters: `ou1=`..`ou4=`.
    pub organizational_units: Vec<CompactString>,
    /// built-in-domain-defined-attributes, at most 4: `dda:TYPE=VALUE`.
    pub domain_defined_attributes: Vec<DomainDefinedAttribute>,
    /// extension-attributes, at most 256, in received order.
    pub extension_attributes: Vec<ExtensionAttribute>,
}

impl OrAddress {
    /// The common-name extension attribute (`cn=`), if present.
    pub fn common_name(&self) -> Option<&str> {
        self.extension_attributes.iter().find_map(|a| match a {
            ExtensionAttribute::CommonName(s) => Some(s.as_str()),
            ExtensionAttribute::Other { .. } => None,
        })
    }

    /// Encodes as a standalone `ORAddress` SEQUENCE.
    ///
    /// Errors: [`Error::Unencodable`] for a string outside its repertoire or caps.
    pub fn encode_ber(&self) -> Result<Vec<u8>> {
        let mut w = Writer::new();
        w.constructed(ber::SEQUENCE, |w| self.write_components(w))?;
        Ok(w.into_vec())
    }

    /// Decodes a standalone `ORAddress` SEQUENCE (definite or indefinite lengths).
    ///
    /// Errors: any decoding error of [`Error`]; trailing octets are refused.
    pub fn decode_ber(bytes: &[u8]) -> Result<OrAddress> {
        check_len(bytes)?;
        let tlv = ber::read_single(bytes, "ORAddress")?.expect(ber::SEQUENCE, "ORAddress")?;
        let mut r = tlv.reader("ORAddress")?;
        let a = OrAddress::read_components(&mut r)?;
        r.finish("ORAddress")?;
        Ok(a)
    }

    pub(crate) fn write_components(&self, w: &mut Writer) -> Result<()> {
        w.constructed(ber::SEQUENCE, |w| {
            if let Some(c) = &self.country {
                write_country(w, c)?;
            }
            if let Some(a) = &self.admd {
                w.constructed(app_c(2), |w| {
                    write_domain(w, a, "administration-domain-name")
                })?;
            }
            if let Some(s) = &self.network_address {
                w.string(
                    Tag::context(0),
                    StrKind::Numeric,
                    s,
                    "network-address",
                    MAX_STRING_LEN,
                )?;
            }
            if let Some(s) = &self.terminal_identifier {
                w.string(
                    Tag::context(1),
                    StrKind::Printable,
                    s,
                    "terminal-identifier",
                    MAX_STRING_LEN,
                )?;
            }
            if let Some(p) = &self.prmd {
                w.constructed(ctx_c(2), |w| write_domain(w, p, "private-domain-name"))?;
            }
            if let Some(s) = &self.organization {
                w.string(
                    Tag::context(3),
                    StrKind::Printable,
                    s,
                    "organization-name",
                    MAX_STRING_LEN,
                )?;
            }
            if let Some(s) = &self.numeric_user_identifier {
                w.string(
                    Tag::context(4),
                    StrKind::Numeric,
                    s,
                    "numeric-user-identifier",
                    MAX_STRING_LEN,
                )?;
            }
            if let Some(pn) = &self.personal_name {
                w.constructed(ctx_c(5), |w| {
                    let p = StrKind::Printable;
                    w.string(Tag::context(0), p, &pn.surname, "surname", MAX_STRING_LEN)?;
                    if let Some(s) = &pn.given_name {
                        w.string(Tag::context(1), p, s, "given-name", MAX_STRING_LEN)?;
                    }
                    if let Some(s) = &pn.initials {
                        w.string(Tag::context(2), p, s, "initials", MAX_STRING_LEN)?;
                    }
                    if let Some(s) = &pn.generation_qualifier {
                        w.string(
                            Tag::context(3),
                            p,
                            s,
                            "generation-qualifier",
                            MAX_STRING_LEN,
                        )?;
                    }
                    Ok(())
                })?;
            }
            if !self.organizational_units.is_empty() {
                if self.organizational_units.len() > MAX_ORGANIZATIONAL_UNITS {
                    return Err(Error::unencodable(
                        "organizational-unit-names",
                        "more than 4 units",
                    ));
                }
                w.constructed(ctx_c(6), |w| {
                    for ou in &self.organizational_units {
                        w.string(
                            ber::PRINTABLE_STRING,
                            StrKind::Printable,
                            ou,
                            "organizational-unit-name",
                            MAX_STRING_LEN,
                        )?;
                    }
                    Ok(())
                })?;
            }
            Ok(())
        })?;
        if !self.domain_defined_attributes.is_empty() {
            if self.domain_defined_attributes.len() > MAX_DOMAIN_DEFINED_ATTRIBUTES {
                return Err(Error::unencodable(
                    "built-in-domain-defined-attributes",
                    "more than 4 attributes",
                ));
            }
            w.constructed(ber::SEQUENCE, |w| {
                for d in &self.domain_defined_attributes {
                    w.constructed(ber::SEQUENCE, |w| {
                        w.string(
                            ber::PRINTABLE_STRING,
                            StrKind::Printable,
                            &d.attribute_type,
                            "domain-defined type",
                            MAX_STRING_LEN,
                        )?;
                        w.string(
                            ber::PRINTABLE_STRING,
                            StrKind::Printable,
                            &d.value,
                            "domain-defined value",
                            MAX_STRING_LEN,
                        )
                    })?;
                }
                Ok(())
            })?;
        }
        if !self.extension_attributes.is_empty() {
            if self.extension_attributes.len() > MAX_EXTENSION_ATTRIBUTES {
                return Err(Error::unencodable(
                    "extension-attributes",
                    "more than 256 attributes",
                ));
            }
            w.constructed(ber::SET, |w| {
                for e in &self.extension_attributes {
                    w.constructed(ber::SEQUENCE, |w| match e {
                        ExtensionAttribute::CommonName(s) => {
                            w.integer(Tag::context(0), i64::from(EXTENSION_ATTRIBUTE_COMMON_NAME));
                            w.constructed(ctx_c(1), |w| {
                                w.string(
                                    ber::PRINTABLE_STRING,
                                    StrKind::Printable,
                                    s,
                                    "common-name",
                                    MAX_STRING_LEN,
                                )
                            })
                        }
                        ExtensionAttribute::Other {
                            attribute_type,
                            value,
                        } => {
                            if *attribute_type > 256 {
                                return Err(Error::unencodable(
                                    "extension-attribute-type",
                                    "above ub-extension-attributes (256)",
                                ));
                            }
                            check_opaque(value, "extension-attribute-value")?;
                            w.integer(Tag::context(0), i64::from(*attribute_type));
                            w.constructed(ctx_c(1), |w| {
                                w.raw(value);
                                Ok(())
                            })
                        }
                    })?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Reads BuiltInStandardAttributes and the optional DDA and extension-attribute
    /// components from `r`, leaving what follows.
    pub(crate) fn read_components(r: &mut Reader<'_>) -> Result<OrAddress> {
        let bisa = r
            .read("built-in-standard-attributes")?
            .expect(ber::SEQUENCE, "built-in-standard-attributes")?;
        let mut a = OrAddress::default();
        let mut br = bisa.reader("built-in-standard-attributes")?;
        while let Some(t) = br.next_tlv()? {
            let tag = t.tag;
            let what = "built-in-standard-attributes";
            if tag.is(Tag::application(1)) {
                set_once(&mut a.country, read_country(&t)?, "country-name")?;
            } else if tag.is(Tag::application(2)) {
                set_once(
                    &mut a.admd,
                    read_domain_choice(&t, "administration-domain-name")?,
                    "administration-domain-name",
                )?;
            } else if tag.is(Tag::context(0)) {
                set_once(
                    &mut a.network_address,
                    t.string(StrKind::Numeric, "network-address", MAX_STRING_LEN)?,
                    "network-address",
                )?;
            } else if tag.is(Tag::context(1)) {
                set_once(
                    &mut a.terminal_identifier,
                    t.string(StrKind::Printable, "terminal-identifier", MAX_STRING_LEN)?,
                    "terminal-identifier",
                )?;
            } else if tag.is(Tag::context(2)) {
                set_once(
                    &mut a.prmd,
                    read_domain_choice(&t, "private-domain-name")?,
                    "private-domain-name",
                )?;
            } else if tag.is(Tag::context(3)) {
                set_once(
                    &mut a.organization,
                    t.string(StrKind::Printable, "organization-name", MAX_STRING_LEN)?,
                    "organization-name",
                )?;
            } else if tag.is(Tag::context(4)) {
                set_once(
                    &mut a.numeric_user_identifier,
                    t.string(StrKind::Numeric, "numeric-user-identifier", MAX_STRING_LEN)?,
                    "numeric-user-identifier",
                )?;
            } else if tag.is(Tag::context(5)) {
                set_once(
                    &mut a.personal_name,
                    read_personal_name(&t)?,
                    "personal-name",
                )?;
            } else if tag.is(Tag::context(6)) {
                if !a.organizational_units.is_empty() {
                    return Err(Error::Duplicate("organizational-unit-names"));
                }
                let mut ous = t.reader("organizational-unit-names")?;
                while let Some(ou) = ous.next_tlv()? {
                    if a.organizational_units.len() == MAX_ORGANIZATIONAL_UNITS {
                        return Err(Error::TooMany {
                            what: "organizational-unit-names",
                            cap: MAX_ORGANIZATIONAL_UNITS,
                        });
                    }
                    let ou = ou.expect(ber::PRINTABLE_STRING, "organizational-unit-name")?;
                    a.organizational_units.push(ou.string(
                        StrKind::Printable,
                        "organizational-unit-name",
                        MAX_STRING_LEN,
                    )?);
                }
                if a.organizational_units.is_empty() {
                    return Err(Error::invalid(
                        "organizational-unit-names",
                        "empty sequence",
                    ));
                }
            } else {
                return Err(Error::UnexpectedTag {
                    context: what,
                    found: tag,
                });
            }
        }
        if let Some(dda) = r.optional(ber::SEQUENCE)? {
            let mut dr = dda.reader("built-in-domain-defined-attributes")?;
            while let Some(item) = dr.next_tlv()? {
                if a.domain_defined_attributes.len() == MAX_DOMAIN_DEFINED_ATTRIBUTES {
                    return Err(Error::TooMany {
                        what: "domain-defined attributes",
                        cap: MAX_DOMAIN_DEFINED_ATTRIBUTES,
                    });
                }
                let mut ir = item
                    .expect(ber::SEQUENCE, "built-in-domain-defined-attribute")?
                    .reader("built-in-domain-defined-attribute")?;
                let ty = ir
                    .read("domain-defined type")?
                    .expect(ber::PRINTABLE_STRING, "domain-defined type")?;
                let va = ir
                    .read("domain-defined value")?
                    .expect(ber::PRINTABLE_STRING, "domain-defined value")?;
                ir.finish("built-in-domain-defined-attribute")?;
                a.domain_defined_attributes.push(DomainDefinedAttribute {
                    attribute_type: ty.string(
                        StrKind::Printable,
                        "domain-defined type",
                        MAX_STRING_LEN,
                    )?,
                    value: va.string(StrKind::Printable, "domain-defined value", MAX_STRING_LEN)?,
                });
            }
        }
        if let Some(ext) = r.optional(ber::SET)? {
            let mut er = ext.reader("extension-attributes")?;
            while let Some(item) = er.next_tlv()? {
                if a.extension_attributes.len() == MAX_EXTENSION_ATTRIBUTES {
                    return Err(Error::TooMany {
                        what: "extension attributes",
                        cap: MAX_EXTENSION_ATTRIBUTES,
                    });
                }
                a.extension_attributes
                    .push(read_extension_attribute(&item)?);
            }
        }
        Ok(a)
    }
}

fn read_extension_attribute(item: &Tlv<'_>) -> Result<ExtensionAttribute> {
    let what = "extension-attribute";
    let mut ir = item.expect(ber::SEQUENCE, what)?.reader(what)?;
    let attribute_type = ir
        .read("extension-attribute-type")?
        .expect(Tag::context(0), "extension-attribute-type")?;
    let attribute_type = attribute_type.unsigned("extension-attribute-type", 256)?;
    let value = ir
        .read("extension-attribute-value")?
        .expect(Tag::context(1), "extension-attribute-value")?;
    ir.finish(what)?;
    let mut vr = value.reader("extension-attribute-value")?;
    if attribute_type == EXTENSION_ATTRIBUTE_COMMON_NAME
        && let Some(Some(t)) = vr.peek_tag().ok()
        && t.is(ber::PRINTABLE_STRING)
    {
        let s =
            vr.read("common-name")?
                .string(StrKind::Printable, "common-name", MAX_STRING_LEN)?;
        if vr.is_empty() {
            return Ok(ExtensionAttribute::CommonName(s));
        }
    }
    // Walk the value so that malformed nested encodings are refused here.
    let mut vr = value.reader("extension-attribute-value")?;
    while vr.next_tlv()?.is_some() {}
    check_opaque(value.content, "extension-attribute-value")?;
    Ok(ExtensionAttribute::Other {
        attribute_type,
        value: value.content.to_vec(),
    })
}

fn write_country(w: &mut Writer, c: &CountryName) -> Result<()> {
    w.constructed(app_c(1), |w| match c {
        CountryName::X121DccCode(s) => {
            w.string(ber::NUMERIC_STRING, StrKind::Numeric, s, "country-name", 3)
        }
        CountryName::Iso3166Alpha2(s) => w.string(
            ber::PRINTABLE_STRING,
            StrKind::Printable,
            s,
            "country-name",
            2,
        ),
    })
}

fn write_domain(w: &mut Writer, d: &DomainName, what: &'static str) -> Result<()> {
    match d {
        DomainName::Numeric(s) => w.string(
            ber::NUMERIC_STRING,
            StrKind::Numeric,
            s,
            what,
            MAX_STRING_LEN,
        ),
        DomainName::Printable(s) => w.string(
            ber::PRINTABLE_STRING,
            StrKind::Printable,
            s,
            what,
            MAX_STRING_LEN,
        ),
    }
}

/// Reads `CHOICE { numeric NumericString, printable PrintableString }` wrapped in the
/// explicit tag `t`.
fn read_domain_choice(t: &Tlv<'_>, what: &'static str) -> Result<DomainName> {
    let mut r = t.reader(what)?;
    let d = read_domain_value(&r.read(what)?, what)?;
    r.finish(what)?;
    Ok(d)
}

/// Reads an untagged `CHOICE { numeric, printable }`.
pub(crate) fn read_domain_value(v: &Tlv<'_>, what: &'static str) -> Result<DomainName> {
    if v.tag.is(ber::NUMERIC_STRING) {
        Ok(DomainName::Numeric(v.string(
            StrKind::Numeric,
            what,
            MAX_STRING_LEN,
        )?))
    } else if v.tag.is(ber::PRINTABLE_STRING) {
        Ok(DomainName::Printable(v.string(
            StrKind::Printable,
            what,
            MAX_STRING_LEN,
        )?))
    } else {
        Err(Error::UnexpectedTag {
            context: what,
            found: v.tag,
        })
    }
}

fn read_country(t: &Tlv<'_>) -> Result<CountryName> {
    let what = "country-name";
    let mut r = t.reader(what)?;
    let v = r.read(what)?;
    r.finish(what)?;
    if v.tag.is(ber::NUMERIC_STRING) {
        Ok(CountryName::X121DccCode(v.string(
            StrKind::Numeric,
            what,
            3,
        )?))
    } else if v.tag.is(ber::PRINTABLE_STRING) {
        Ok(CountryName::Iso3166Alpha2(v.string(
            StrKind::Printable,
            what,
            2,
        )?))
    } else {
        Err(Error::UnexpectedTag {
            context: what,
            found: v.tag,
        })
    }
}

fn read_personal_name(t: &Tlv<'_>) -> Result<PersonalName> {
    let what = "personal-name";
    let mut r = t.reader(what)?;
    let mut surname = None;
    let mut pn = PersonalName::default();
    while let Some(f) = r.next_tlv()? {
        let p = StrKind::Printable;
        match (f.tag.class, f.tag.number) {
            (ber::Class::Context, 0) => set_once(
                &mut surname,
                f.string(p, "surname", MAX_STRING_LEN)?,
                "surname",
            )?,
            (ber::Class::Context, 1) => set_once(
                &mut pn.given_name,
                f.string(p, "given-name", MAX_STRING_LEN)?,
                "given-name",
            )?,
            (ber::Class::Context, 2) => set_once(
                &mut pn.initials,
                f.string(p, "initials", MAX_STRING_LEN)?,
                "initials",
            )?,
            (ber::Class::Context, 3) => set_once(
                &mut pn.generation_qualifier,
                f.string(p, "generation-qualifier", MAX_STRING_LEN)?,
                "generation-qualifier",
            )?,
            _ => {
                return Err(Error::UnexpectedTag {
                    context: what,
                    found: f.tag,
                });
            }
        }
    }
    pn.surname = surname.ok_or(Error::Missing("surname"))?;
    Ok(pn)
}

pub(crate) fn set_once<T>(slot: &mut Option<T>, value: T, what: &'static str) -> Result<()> {
    if slot.is_some() {
        return Err(Error::Duplicate(what));
    }
    *slot = Some(value);
    Ok(())
}

pub(crate) fn check_len(bytes: &[u8]) -> Result<()> {
    if bytes.len() > MAX_PDU_LEN {
        return Err(Error::TooLong {
            what: "input",
            len: bytes.len(),
            cap: MAX_PDU_LEN,
        });
    }
    Ok(())
}

pub(crate) fn check_opaque(bytes: &[u8], what: &'static str) -> Result<()> {
    if bytes.len() > MAX_OPAQUE_LEN {
        return Err(Error::TooLong {
            what,
            len: bytes.len(),
            cap: MAX_OPAQUE_LEN,
        });
    }
    Ok(())
}

/// `ORName ::= [APPLICATION 0] SEQUENCE { COMPONENTS OF ORAddress, directory-name [0] Name
/// OPTIONAL }` (X.411 §12.2, X.402 §18.1). Wire shape `60 { 30 {...} [30 {...}] [31 {...}]
/// [a0 {Name}] }`; where a field is IMPLICITly tagged (report actual-recipient-name `[0]`)
/// the `60` is replaced by that tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct OrName {
    /// The O/R address.
    pub address: OrAddress,
    /// directory-name: the BER encoding inside the `[0]` wrapper (an X.501 Name), kept
    /// as octets.
    pub directory_name: Option<Vec<u8>>,
}

impl From<OrAddress> for OrName {
    fn from(address: OrAddress) -> OrName {
        OrName {
            address,
            directory_name: None,
        }
    }
}

impl OrName {
    /// Encodes as `[APPLICATION 0]` ORName.
    ///
    /// Errors: [`Error::Unencodable`] as for [`OrAddress::encode_ber`].
    pub fn encode_ber(&self) -> Result<Vec<u8>> {
        let mut w = Writer::new();
        self.write(&mut w, app_c(0))?;
        Ok(w.into_vec())
    }

    /// Decodes an `[APPLICATION 0]` ORName.
    ///
    /// Errors: any decoding error of [`Error`]; trailing octets are refused.
    pub fn decode_ber(bytes: &[u8]) -> Result<OrName> {
        check_len(bytes)?;
        let tlv = ber::read_single(bytes, "ORName")?.expect(app_c(0), "ORName")?;
        OrName::read(&tlv)
    }

    /// Writes the ORName components under `tag`.
    pub(crate) fn write(&self, w: &mut Writer, tag: Tag) -> Result<()> {
        w.constructed(tag, |w| {
            self.address.write_components(w)?;
            if let Some(dn) = &self.directory_name {
                check_opaque(dn, "directory-name")?;
                w.constructed(ctx_c(0), |w| {
                    w.raw(dn);
                    Ok(())
                })?;
            }
            Ok(())
        })
    }

    /// Reads the ORName components inside `tlv` (whatever its tag).
    pub(crate) fn read(tlv: &Tlv<'_>) -> Result<OrName> {
        let mut r = tlv.reader("ORName")?;
        let address = OrAddress::read_components(&mut r)?;
        let directory_name = match r.optional(ctx_c(0))? {
            Some(dn) => {
                let mut dr = dn.reader("directory-name")?;
                while dr.next_tlv()?.is_some() {}
                check_opaque(dn.content, "directory-name")?;
                Some(dn.content.to_vec())
            }
            None => None,
        };
        r.finish("ORName")?;
        Ok(OrName {
            address,
            directory_name,
        })
    }
}

/// O/R names already decoded, by their encoding. A message's envelope and the IPM heading it
/// carries name the same originator and recipients (a gateway writes the envelope's names
/// into the heading, X.420 §7.2.1–§7.2.4, as mtalab's does), and a heading usually names its
/// originator twice (`this-IPM` and `originator`): the heading's decoder takes a name it has
/// seen as a copy instead of reading it again.
///
/// Filled by [`crate::MtsApdu::decode_vec_noting`], read by [`crate::Ipm::decode_with`].
/// Holds at most [`OrNameMemo::MAX_ENTRIES`] names of at most [`OrNameMemo::MAX_ENCODING`]
/// octets each, and only names without extension attributes or a directory name. A name is
/// taken from the memo only where reading it again would not go deeper than
/// [`crate::limits::MAX_DEPTH`] (the levels of nesting inside each kept encoding are kept
/// with it), so a decoder with a memo gives exactly what one without it gives, errors
/// included.
#[derive(Debug, Default, Clone)]
pub struct OrNameMemo {
    /// The encodings (identifier, length, contents) one after another.
    encodings: Vec<u8>,
    /// Each name with the end of its encoding in `encodings` and the levels of nesting
    /// inside that encoding ([`Tlv::nesting`]).
    names: Vec<(usize, usize, OrName)>,
    /// Names taken from the memo.
    hits: usize,
}

impl OrNameMemo {
    /// Names kept.
    pub const MAX_ENTRIES: usize = 8;
    /// Longest encoding kept, octets.
    pub const MAX_ENCODING: usize = 512;

    /// Names kept.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether no name is kept.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Names taken from the memo instead of decoded.
    pub fn hits(&self) -> usize {
        self.hits
    }

    /// The name whose whole encoding is `raw`, if kept and if reading it again at `depth`
    /// would not go deeper than the cap.
    fn get(&self, raw: &[u8], depth: usize) -> Option<&OrName> {
        let mut start = 0;
        for (end, nesting, name) in &self.names {
            if self.encodings[start..*end] == *raw {
                return (depth + nesting <= MAX_DEPTH).then_some(name);
            }
            start = *end;
        }
        None
    }

    /// Keeps `name`, decoded from `tlv`, when it is of the kind kept and there is room.
    fn note(&mut self, tlv: &Tlv<'_>, name: &OrName) {
        if self.names.len() == Self::MAX_ENTRIES
            || tlv.raw.len() > Self::MAX_ENCODING
            || name.directory_name.is_some()
            || !name.address.extension_attributes.is_empty()
        {
            return;
        }
        // It was just read, so its nesting reads without an error.
        let Ok(nesting) = tlv.nesting() else { return };
        self.encodings.extend_from_slice(tlv.raw);
        self.names.push((self.encodings.len(), nesting, name.clone()));
    }
}

impl OrName {
    /// [`OrName::read`], taking the name from `memo` when its encoding is there and noting it
    /// there when not (`memo` None: plain [`OrName::read`]).
    pub(crate) fn read_noting(tlv: &Tlv<'_>, memo: Option<&mut OrNameMemo>) -> Result<OrName> {
        let Some(memo) = memo else { return OrName::read(tlv) };
        if let Some(name) = memo.get(tlv.raw, tlv.depth()) {
            let name = name.clone();
            memo.hits += 1;
            return Ok(name);
        }
        let name = OrName::read(tlv)?;
        memo.note(tlv, &name);
        Ok(name)
    }
}

/// `GlobalDomainIdentifier ::= [APPLICATION 3] SEQUENCE { country-name CountryName,
/// administration-domain-name AdministrationDomainName, private-domain-identifier
/// PrivateDomainIdentifier OPTIONAL }` (X.411 §12.2). Wire shape `63 { 61 {..} 62 {..}
/// [12|13 ..] }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GlobalDomainIdentifier {
    /// country-name.
    pub country: CountryName,
    /// administration-domain-name (one space for "no ADMD").
    pub admd: DomainName,
    /// private-domain-identifier.
    pub prmd: Option<DomainName>,
}

impl GlobalDomainIdentifier {
    pub(crate) fn write(&self, w: &mut Writer) -> Result<()> {
        w.constructed(app_c(3), |w| {
            write_country(w, &self.country)?;
            w.constructed(app_c(2), |w| {
                write_domain(w, &self.admd, "administration-domain-name")
            })?;
            if let Some(p) = &self.prmd {
                write_domain(w, p, "private-domain-identifier")?;
            }
            Ok(())
        })
    }

    pub(crate) fn read(tlv: &Tlv<'_>) -> Result<GlobalDomainIdentifier> {
        let what = "GlobalDomainIdentifier";
        let mut r = tlv.reader(what)?;
        let country = read_country(&r.read("country-name")?.expect(app_c(1), what)?)?;
        let admd = read_domain_choice(
            &r.read("administration-domain-name")?
                .expect(app_c(2), what)?,
            "administration-domain-name",
        )?;
        let prmd = match r.next_tlv()? {
            Some(v) => Some(read_domain_value(&v, "private-domain-identifier")?),
            None => None,
        };
        r.finish(what)?;
        Ok(GlobalDomainIdentifier {
            country,
            admd,
            prmd,
        })
    }
}

/// `MTSIdentifier ::= [APPLICATION 4] SEQUENCE { global-domain-identifier
/// GlobalDomainIdentifier, local-identifier IA5String (SIZE 1..32) }` (X.411 §12.2), the
/// shape of message, probe, report and subject identifiers. Wire shape `64 { 63 {..} 16 ..}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MtsIdentifier {
    /// The domain that assigned the identifier.
    pub global_domain_identifier: GlobalDomainIdentifier,
    /// The domain-unique part, e.g. `SITEA/0012`.
    pub local_identifier: CompactString,
}

impl MtsIdentifier {
    pub(crate) fn write(&self, w: &mut Writer) -> Result<()> {
        w.constructed(app_c(4), |w| {
            self.global_domain_identifier.write(w)?;
            w.string(
                ber::IA5_STRING,
                StrKind::Ia5,
                &self.local_identifier,
                "local-identifier",
                MAX_STRING_LEN,
            )
        })
    }

    pub(crate) fn read(tlv: &Tlv<'_>) -> Result<MtsIdentifier> {
        let what = "MTSIdentifier";
        let mut r = tlv.reader(what)?;
        let gdi = GlobalDomainIdentifier::read(
            &r.read("global-domain-identifier")?.expect(app_c(3), what)?,
        )?;
        let local = r
            .read("local-identifier")?
            .expect(ber::IA5_STRING, "local-identifier")?;
        r.finish(what)?;
        Ok(MtsIdentifier {
            global_domain_identifier: gdi,
            local_identifier: local.string(StrKind::Ia5, "local-identifier", MAX_STRING_LEN)?,
        })
    }
}

/// `MTAName ::= IA5String (SIZE 1..ub-mta-name-length)` (X.411 §12.1), at most
/// [`MAX_MTA_NAME_LEN`] characters, compared case-sensitively (DESIGN §4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MtaName(pub CompactString);

impl MtaName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn write(&self, w: &mut Writer, tag: Tag) -> Result<()> {
        if self.0.is_empty() {
            return Err(Error::unencodable("MTAName", "empty"));
        }
        w.string(tag, StrKind::Ia5, &self.0, "MTAName", MAX_MTA_NAME_LEN)
    }

    pub(crate) fn read(tlv: &Tlv<'_>) -> Result<MtaName> {
        let s: CompactString = tlv.string(StrKind::Ia5, "MTAName", MAX_MTA_NAME_LEN)?;
        if s.is_empty() {
            return Err(Error::invalid("MTAName", "empty"));
        }
        Ok(MtaName(s))
    }
}

impl std::fmt::Display for MtaName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `depth` SEQUENCEs around `inner`, each with a short length.
    fn wrapped(inner: &[u8], depth: usize) -> Vec<u8> {
        let mut v = inner.to_vec();
        for _ in 0..depth {
            let mut w = vec![0x30, v.len() as u8];
            w.extend_from_slice(&v);
            v = w;
        }
        v
    }

    /// The element `depth` levels inside `outer` ([`wrapped`]).
    fn at_depth(outer: &[u8], depth: usize) -> Tlv<'_> {
        let mut t = ber::read_single(outer, "test").unwrap();
        for _ in 0..depth {
            t = t.reader("test").unwrap().read("test").unwrap();
        }
        t
    }

    #[test]
    fn a_kept_name_is_taken_only_where_reading_it_again_stays_within_the_depth_cap() {
        let name = OrName::parse_mnemonic("c=US;a= ;p=ExchangeORG;o=SiteA;s=Smith;g=John").unwrap().encode_ber().unwrap();
        let inside = OrName::decode_ber(&name).unwrap();
        let nesting = ber::read_single(&name, "test").unwrap().nesting().unwrap();
        assert_eq!(nesting, 3, "ORName, its built-in attributes, personal-name, surname");
        let mut memo = OrNameMemo::default();
        let first = wrapped(&name, 1);
        assert_eq!(OrName::read_noting(&at_depth(&first, 1), Some(&mut memo)).unwrap(), inside);
        assert_eq!((memo.len(), memo.hits()), (1, 0));
        // Deepest place where it still reads: taken from the memo.
        let deep = wrapped(&name, MAX_DEPTH - nesting);
        assert_eq!(OrName::read_noting(&at_depth(&deep, MAX_DEPTH - nesting), Some(&mut memo)).unwrap(), inside);
        assert_eq!(memo.hits(), 1);
        // One level deeper the surname is beyond the cap: the error, as without the memo.
        let deeper = wrapped(&name, MAX_DEPTH - nesting + 1);
        let t = at_depth(&deeper, MAX_DEPTH - nesting + 1);
        assert!(matches!(OrName::read(&t), Err(Error::TooDeep(_))));
        assert!(matches!(OrName::read_noting(&t, Some(&mut memo)), Err(Error::TooDeep(_))));
        assert_eq!(memo.hits(), 1);
    }

    #[test]
    fn names_with_extension_attributes_or_a_directory_name_are_not_kept() {
        let mut n = OrName::parse_mnemonic("c=US;a= ;p=P;o=O;s=S").unwrap();
        n.directory_name = Some(vec![0x30, 0x00]);
        let bytes = n.encode_ber().unwrap();
        let mut memo = OrNameMemo::default();
        assert_eq!(OrName::read_noting(&ber::read_single(&bytes, "test").unwrap(), Some(&mut memo)).unwrap(), n);
        assert!(memo.is_empty());
    }
}
