//! Site addressing and proxy address generation.
//!
//! Exchange Server 5.x gives every recipient one proxy address per address type from the
//! site's Site Addressing object: an SMTP address built from the site's SMTP address and an
//! optional generator pattern, and an X.400 O/R address built from the site's X.400 address
//! (KB Q196927, "Setting up a Single E-mail Domain"; DESIGN §3).

use serde::{Deserialize, Serialize};

/// The X.400 part of a site's addressing: the O/R address prefix every recipient of the site
/// shares (X.402 §18.3 attributes, Exchange mnemonic form).
///
/// `a` is the ADMD name; Exchange writes a single space (`" "`) when there is no ADMD, and
/// that is kept verbatim here. Field values are PrintableString text (X.411 §12).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct X400SiteAddress {
    /// Country name, e.g. `"US"` (`c=`).
    pub c: String,
    /// ADMD name (`a=`); `" "` (one space) means no ADMD.
    pub a: String,
    /// PRMD name (`p=`); Exchange's default is the organization name.
    pub p: String,
    /// Organization name (`o=`); Exchange's default is the site name.
    pub o: String,
}

impl X400SiteAddress {
    /// The site prefix in Exchange mnemonic form: `"c=US;a= ;p=ExchangeORG;o=SiteA"`.
    pub fn mnemonic(&self) -> String {
        format!("c={};a={};p={};o={}", self.c, self.a, self.p, self.o)
    }
}

/// A site's Site Addressing object (Administrator program, Site Addressing tab).
///
/// `smtp` is the site SMTP address, e.g. `"@SiteA.microsoft.com"` (KB Q196927). Exchange also
/// accepts the generator as the address's local part (`"%g.%s@microsoft.com"`); when
/// `smtp_generator` is `None` such a local part is used as the generator, otherwise the
/// generator defaults to `"%m"` (the alias).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteAddressing {
    /// Site SMTP address, `"@domain"` or `"generator@domain"`.
    pub smtp: String,
    /// Local-part generator (`"%g.%s"`, `"%1g%s"`, `"%r._%m"` ...); `None` = `"%m"`.
    pub smtp_generator: Option<String>,
    /// Site X.400 address.
    pub x400: X400SiteAddress,
}

impl SiteAddressing {
    /// Exchange's defaults for a new site: SMTP `"@SITE.MAIL_DOMAIN"` with the alias as local
    /// part, and X.400 `c=COUNTRY;a= ;p=ORG;o=SITE` (DESIGN §3). `mail_domain` is the DNS
    /// suffix, e.g. `"microsoft.com"` gives `"@SiteA.microsoft.com"` for site `SiteA`.
    pub fn exchange_default(org: &str, site: &str, mail_domain: &str, country: &str) -> Self {
        SiteAddressing {
            smtp: format!("@{site}.{mail_domain}"),
            smtp_generator: None,
            x400: X400SiteAddress {
                c: country.to_owned(),
                a: " ".to_owned(),
                p: org.to_owned(),
                o: site.to_owned(),
            },
        }
    }

    /// The domain part of the site SMTP address (`"@SiteA.microsoft.com"` → `"SiteA.microsoft.com"`),
    /// case preserved. An address without `@` is taken as a bare domain.
    pub fn smtp_domain(&self) -> &str {
        split_site_address(&self.smtp).1
    }

    /// The generator in effect: `smtp_generator`, else the site address's local part, else `"%m"`.
    pub fn effective_generator(&self) -> &str {
        if let Some(g) = self.smtp_generator.as_deref() {
            return g;
        }
        match split_site_address(&self.smtp).0 {
            "" => "%m",
            local => local,
        }
    }
}

/// What a new mailbox is created from: alias (directory name / mailbox name) and the name
/// attributes the proxy generators use. `display_name` defaults to `"Given Surname"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientSpec {
    /// Alias (Exchange "Alias name", also the `cn=` of the recipient's DN), e.g. `"JohnS"`.
    pub alias: String,
    /// Given (first) name, e.g. `"John"`; may be empty.
    pub given: String,
    /// Surname (last name), e.g. `"Smith"`; may be empty.
    pub surname: String,
    /// Display name; `None` = `"Given Surname"` (or the alias when both are empty).
    #[serde(default)]
    pub display_name: Option<String>,
}

impl RecipientSpec {
    /// The display name in effect (see the field's doc).
    pub fn effective_display_name(&self) -> String {
        if let Some(d) = &self.display_name {
            return d.clone();
        }
        let joined = format!("{} {}", self.given.trim(), self.surname.trim());
        let joined = joined.trim();
        if joined.is_empty() {
            self.alias.clone()
        } else {
            joined.to_owned()
        }
    }
}

/// Split a site SMTP address into (local part, domain); no `@` = bare domain.
fn split_site_address(addr: &str) -> (&str, &str) {
    match addr.rfind('@') {
        Some(i) => (&addr[..i], &addr[i + 1..]),
        None => ("", addr),
    }
}

/// Whether `c` may appear in an unquoted SMTP local part: RFC 5322 §3.2.3 `atext` or `.`.
pub fn is_local_part_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c)
}

/// Reduce `s` to a valid dot-atom local part (RFC 5321 §4.1.2): characters outside `atext`
/// and `.` are dropped (Exchange strips spaces and the like), runs of dots collapse to one,
/// and leading/trailing dots go. The result may be empty.
pub fn sanitize_local_part(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().filter(|&c| is_local_part_char(c)) {
        if c == '.' && (out.is_empty() || out.ends_with('.')) {
            continue;
        }
        out.push(c);
    }
    while out.ends_with('.') {
        out.pop();
    }
    out
}

/// Generate a recipient's SMTP proxy address, `"local@domain"`.
///
/// `generator` is the local-part pattern (`None` = the site address's own local part, else
/// `"%m"`); `site_address` is the site SMTP address (`"@SiteA.microsoft.com"`, or a bare
/// domain). Pattern syntax (Exchange 5.5 Site Addressing):
///
/// | token | expands to |
/// |---|---|
/// | `%m` | alias |
/// | `%g` / `%s` / `%d` | given name / surname / display name |
/// | `%Ng` / `%Ns` / `%Nm` / `%Nd` | the first N characters of it (N decimal) |
/// | `%rxy` | from here on, every `x` in an expanded value becomes `y` (`x` = `y` deletes it) |
/// | `%%` | a literal `%` |
///
/// Any other `%` sequence is kept literally. The local part is then sanitized with
/// [`sanitize_local_part`]. Never fails; the local part may come out empty (callers such as
/// `Directory::add_mailbox` reject that).
///
/// Examples (KB Q196927 names): alias `JohnS`, John Smith, site `@SiteA.microsoft.com`:
/// `None` → `JohnS@SiteA.microsoft.com`; `"%g.%s"` → `John.Smith@SiteA.microsoft.com`;
/// `"%1g%s"` → `JSmith@SiteA.microsoft.com`.
pub fn generate_smtp_proxy(
    generator: Option<&str>,
    site_address: &str,
    spec: &RecipientSpec,
) -> String {
    let (site_local, domain) = split_site_address(site_address);
    let pattern = match generator {
        Some(g) => g,
        None if !site_local.is_empty() => site_local,
        None => "%m",
    };
    let local = expand_generator(pattern, spec);
    format!("{}@{}", sanitize_local_part(&local), domain)
}

/// Expand a generator pattern (see [`generate_smtp_proxy`]) without sanitizing.
fn expand_generator(pattern: &str, spec: &RecipientSpec) -> String {
    let display = spec.effective_display_name();
    let mut replacements: Vec<(char, char)> = Vec::new();
    let mut out = String::new();
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '%' {
            out.push(c);
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        let mut digits = String::new();
        while i < chars.len() && chars[i].is_ascii_digit() {
            digits.push(chars[i]);
            i += 1;
        }
        let Some(&kind) = chars.get(i) else {
            out.extend(&chars[start..]);
            break;
        };
        i += 1;
        let value: Option<&str> = match kind.to_ascii_lowercase() {
            'm' => Some(&spec.alias),
            'g' => Some(&spec.given),
            's' => Some(&spec.surname),
            'd' => Some(&display),
            'r' if digits.is_empty() && i + 1 < chars.len() => {
                replacements.push((chars[i], chars[i + 1]));
                i += 2;
                None
            }
            '%' if digits.is_empty() => {
                out.push('%');
                None
            }
            _ => {
                out.extend(&chars[start..i]);
                None
            }
        };
        if let Some(v) = value {
            let v: String = match digits.parse::<usize>() {
                Ok(n) => v.chars().take(n).collect(),
                Err(_) => v.to_owned(),
            };
            out.push_str(&apply_replacements(&v, &replacements));
        }
    }
    out
}

/// Apply `%rxy` replacements in order; `x == y` deletes `x`.
fn apply_replacements(value: &str, replacements: &[(char, char)]) -> String {
    let mut v = value.to_owned();
    for &(from, to) in replacements {
        v = if from == to {
            v.chars().filter(|&c| c != from).collect()
        } else {
            v.chars().map(|c| if c == from { to } else { c }).collect()
        };
    }
    v
}

/// X.411 upper bound on the surname length (ub-surname-length).
pub const UB_SURNAME_LENGTH: usize = 40;
/// X.411 upper bound on the given name length (ub-given-name-length).
pub const UB_GIVEN_NAME_LENGTH: usize = 16;

/// Reduce `s` to X.208 PrintableString characters (anything else becomes `?`), then
/// truncate to `max` characters.
fn printable(s: &str, max: usize) -> String {
    s.trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " '()+,-./:=?".contains(c) {
                c
            } else {
                '?'
            }
        })
        .take(max)
        .collect()
}

/// Generate a recipient's X.400 proxy address in Exchange mnemonic form:
/// `"c=US;a= ;p=ExchangeORG;o=SiteA;s=Smith;g=John"` (DESIGN §3, X.402 §18.3 personal name).
///
/// The surname falls back to the alias when empty; `g=` is omitted when there is no given
/// name. Name characters outside PrintableString become `?`; `s` is cut to 40 and `g` to 16
/// characters (X.411 upper bounds).
pub fn x400_address(site: &X400SiteAddress, spec: &RecipientSpec) -> String {
    let surname = if spec.surname.trim().is_empty() {
        &spec.alias
    } else {
        &spec.surname
    };
    let mut out = format!(
        "{};s={}",
        site.mnemonic(),
        printable(surname, UB_SURNAME_LENGTH)
    );
    let given = printable(&spec.given, UB_GIVEN_NAME_LENGTH);
    if !given.is_empty() {
        out.push_str(";g=");
        out.push_str(&given);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn john() -> RecipientSpec {
        RecipientSpec {
            alias: "JohnS".into(),
            given: "John".into(),
            surname: "Smith".into(),
            display_name: None,
        }
    }

    const SITE: &str = "@SiteA.microsoft.com";

    #[test]
    fn default_generator_is_alias() {
        assert_eq!(
            generate_smtp_proxy(None, SITE, &john()),
            "JohnS@SiteA.microsoft.com"
        );
        assert_eq!(
            generate_smtp_proxy(Some("%m"), SITE, &john()),
            "JohnS@SiteA.microsoft.com"
        );
    }

    #[test]
    fn given_dot_surname() {
        assert_eq!(
            generate_smtp_proxy(Some("%g.%s"), SITE, &john()),
            "John.Smith@SiteA.microsoft.com"
        );
    }

    #[test]
    fn first_n_characters() {
        assert_eq!(
            generate_smtp_proxy(Some("%1g%s"), SITE, &john()),
            "JSmith@SiteA.microsoft.com"
        );
        assert_eq!(
            generate_smtp_proxy(Some("%g%3s"), SITE, &john()),
            "JohnSmi@SiteA.microsoft.com"
        );
        assert_eq!(
            generate_smtp_proxy(Some("%10g"), SITE, &john()),
            "John@SiteA.microsoft.com"
        );
    }

    #[test]
    fn generator_in_site_address_local_part() {
        assert_eq!(
            generate_smtp_proxy(None, "%g.%s@microsoft.com", &john()),
            "John.Smith@microsoft.com"
        );
        // an explicit generator wins
        assert_eq!(
            generate_smtp_proxy(Some("%m"), "%g.%s@microsoft.com", &john()),
            "JohnS@microsoft.com"
        );
    }

    #[test]
    fn spaces_and_invalid_characters_are_stripped() {
        let spec = RecipientSpec {
            alias: "MaryAnn".into(),
            given: "Mary Ann".into(),
            surname: "O'Brien (NY)".into(),
            display_name: None,
        };
        assert_eq!(
            generate_smtp_proxy(Some("%g.%s"), SITE, &spec),
            "MaryAnn.O'BrienNY@SiteA.microsoft.com"
        );
    }

    #[test]
    fn replace_applies_to_following_values() {
        let spec = RecipientSpec {
            alias: "MaryAnn".into(),
            given: "Mary Ann".into(),
            surname: "Smith".into(),
            display_name: None,
        };
        assert_eq!(
            generate_smtp_proxy(Some("%r _%g.%s"), SITE, &spec),
            "Mary_Ann.Smith@SiteA.microsoft.com"
        );
        // x == y deletes
        let spec = RecipientSpec {
            surname: "O'Brien".into(),
            ..spec
        };
        assert_eq!(
            generate_smtp_proxy(Some("%r''%s"), SITE, &spec),
            "OBrien@SiteA.microsoft.com"
        );
        assert_eq!(
            generate_smtp_proxy(
                Some("%rxy%m"),
                SITE,
                &RecipientSpec {
                    alias: "xox".into(),
                    ..john()
                }
            ),
            "yoy@SiteA.microsoft.com"
        );
    }

    #[test]
    fn dots_are_tidied_and_percent_escapes() {
        let spec = RecipientSpec {
            given: String::new(),
            ..john()
        };
        assert_eq!(
            generate_smtp_proxy(Some("%g.%s"), SITE, &spec),
            "Smith@SiteA.microsoft.com"
        );
        assert_eq!(
            generate_smtp_proxy(Some("%m%%x"), SITE, &john()),
            "JohnS%x@SiteA.microsoft.com"
        );
        assert_eq!(
            generate_smtp_proxy(Some("%q%m"), SITE, &john()),
            "%qJohnS@SiteA.microsoft.com"
        );
        assert_eq!(
            generate_smtp_proxy(Some("%m%"), SITE, &john()),
            "JohnS%@SiteA.microsoft.com"
        );
    }

    #[test]
    fn x400_vectors() {
        let site = X400SiteAddress {
            c: "US".into(),
            a: " ".into(),
            p: "ExchangeORG".into(),
            o: "SiteA".into(),
        };
        assert_eq!(
            x400_address(&site, &john()),
            "c=US;a= ;p=ExchangeORG;o=SiteA;s=Smith;g=John"
        );
        let nameless = RecipientSpec {
            alias: "Postmaster".into(),
            given: String::new(),
            surname: String::new(),
            display_name: None,
        };
        assert_eq!(
            x400_address(&site, &nameless),
            "c=US;a= ;p=ExchangeORG;o=SiteA;s=Postmaster"
        );
        let odd = RecipientSpec {
            alias: "x".into(),
            given: "Åsa;Maria-Josefina-Long".into(),
            surname: "Ng".into(),
            display_name: None,
        };
        assert_eq!(
            x400_address(&site, &odd),
            "c=US;a= ;p=ExchangeORG;o=SiteA;s=Ng;g=?sa?Maria-Josefi"
        );
    }

    #[test]
    fn exchange_default_addressing() {
        let a = SiteAddressing::exchange_default("ExchangeORG", "SiteA", "microsoft.com", "US");
        assert_eq!(a.smtp, "@SiteA.microsoft.com");
        assert_eq!(a.smtp_domain(), "SiteA.microsoft.com");
        assert_eq!(a.effective_generator(), "%m");
        assert_eq!(a.x400.mnemonic(), "c=US;a= ;p=ExchangeORG;o=SiteA");
    }
}
