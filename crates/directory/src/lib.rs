//! The Exchange Server 5.x directory objects mtalab needs: organization, site, server,
//! recipients, site addressing and proxy address generation (KB Q196927; DESIGN §3, §5).
//!
//! A pure library: no I/O, no clock. The `server` crate holds one [`Directory`] per emulated
//! server and answers SMTP `RCPT TO` lookups, DN construction and Site Addressing edits from it.

#![forbid(unsafe_code)]

mod addressing;
mod imceaex;
mod index;

pub use addressing::{
    RecipientSpec, SiteAddressing, UB_GIVEN_NAME_LENGTH, UB_SURNAME_LENGTH, X400SiteAddress,
    generate_smtp_proxy, is_local_part_char, sanitize_local_part, x400_address,
};
pub use imceaex::{IMCEAEX_PREFIX, imceaex_decode, imceaex_encode, imceaex_split, is_imcea_plain};
pub use index::mnemonic_attributes;

use index::Index;

use serde::{Deserialize, Serialize};

/// Longest alias the Exchange 5.5 Administrator program accepts (characters).
pub const MAX_ALIAS_LEN: usize = 64;

/// A mailbox recipient as the directory holds it.
///
/// `smtp` holds the SMTP proxy addresses as `"local@domain"`; index 0 is the primary (reply)
/// address, the others are secondary proxies that still receive mail (KB Q196927: after the
/// site address changes, the old address is kept). `x400` is the X.400 proxy in Exchange
/// mnemonic form, e.g. `"c=US;a= ;p=ExchangeORG;o=SiteA;s=Smith;g=John"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// Alias / directory name (`cn=` of the DN).
    pub alias: String,
    /// Display name.
    pub display_name: String,
    /// Given name (may be empty).
    pub given: String,
    /// Surname (may be empty).
    pub surname: String,
    /// Directory name of the recipient's home site.
    pub site: String,
    /// Directory name of the recipient's home server.
    pub server: String,
    /// SMTP proxy addresses; index 0 = primary.
    pub smtp: Vec<String>,
    /// X.400 proxy address (mnemonic form).
    pub x400: String,
}

impl Recipient {
    /// The primary (reply) SMTP address, if the recipient has any.
    pub fn primary_smtp(&self) -> Option<&str> {
        self.smtp.first().map(String::as_str)
    }

    /// Whether one of the recipient's SMTP proxies is `local@domain`, compared
    /// case-insensitively on both parts.
    pub fn has_smtp(&self, local: &str, domain: &str) -> bool {
        self.smtp.iter().any(|p| match split_addr(p) {
            Some((l, d)) => l.eq_ignore_ascii_case(local) && d.eq_ignore_ascii_case(domain),
            None => false,
        })
    }

    fn spec(&self) -> RecipientSpec {
        RecipientSpec {
            alias: self.alias.clone(),
            given: self.given.clone(),
            surname: self.surname.clone(),
            display_name: Some(self.display_name.clone()),
        }
    }
}

/// Errors from directory edits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// The alias is empty, longer than [`MAX_ALIAS_LEN`], or holds `/` or a control character
    /// (it becomes the `cn=` of a DN).
    #[error("invalid alias {alias:?}: {reason}")]
    InvalidAlias {
        /// The alias as given.
        alias: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// Another recipient already has this alias (aliases compare case-insensitively).
    #[error("alias {0:?} is already in use")]
    DuplicateAlias(String),
    /// The generated SMTP proxy is already held by another recipient (case-insensitive).
    #[error("smtp address {address:?} is already held by {holder:?}")]
    DuplicateProxy {
        /// The colliding address.
        address: String,
        /// Alias of the recipient that holds it.
        holder: String,
    },
    /// Proxy generation left nothing usable as the local part (e.g. `%g` for a recipient with
    /// no given name).
    #[error("generated smtp address {0:?} has an empty local part")]
    EmptyLocalPart(String),
}

/// What [`Directory::update_site_addressing`] did to the recipients.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressingUpdate {
    /// Aliases whose primary SMTP address changed (the old primary stays as a secondary).
    pub updated: Vec<String>,
    /// Recipients left unchanged because their new address could not be used, with the reason.
    pub skipped: Vec<(String, String)>,
}

/// One server's view of the directory: organization, site and server names, the site's
/// addressing, and the local recipients.
///
/// Lookups by alias, SMTP proxy, X.400 proxy and DN go through tables kept with the
/// recipients (not serialized; built again when a directory is deserialized): their cost does
/// not grow with the number of mailboxes, and they answer as a scan in creation order would.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "DirectoryData")]
pub struct Directory {
    org: String,
    site: String,
    server: String,
    addressing: SiteAddressing,
    recipients: Vec<Recipient>,
    #[serde(skip)]
    index: Index,
}

/// [`Directory`] as serialized, without its tables.
#[derive(Deserialize)]
struct DirectoryData {
    org: String,
    site: String,
    server: String,
    addressing: SiteAddressing,
    recipients: Vec<Recipient>,
}

impl From<DirectoryData> for Directory {
    fn from(d: DirectoryData) -> Directory {
        Directory {
            index: Index::build(&d.recipients),
            org: d.org,
            site: d.site,
            server: d.server,
            addressing: d.addressing,
            recipients: d.recipients,
        }
    }
}

/// Equal when the names, the addressing and the recipients (in order) are; the tables follow
/// from them.
impl PartialEq for Directory {
    fn eq(&self, other: &Directory) -> bool {
        self.org == other.org
            && self.site == other.site
            && self.server == other.server
            && self.addressing == other.addressing
            && self.recipients == other.recipients
    }
}

impl Eq for Directory {}

impl Directory {
    /// An empty directory for server `server` of site `site` in organization `org`
    /// (directory names, e.g. `"ExchangeORG"`, `"SiteA"`, `"ServerA"`).
    pub fn new(org: &str, site: &str, server: &str, addressing: SiteAddressing) -> Directory {
        Directory {
            org: org.to_owned(),
            site: site.to_owned(),
            server: server.to_owned(),
            addressing,
            recipients: Vec::new(),
            index: Index::default(),
        }
    }

    /// Organization directory name.
    pub fn org(&self) -> &str {
        &self.org
    }

    /// Site directory name.
    pub fn site(&self) -> &str {
        &self.site
    }

    /// Server (NetBIOS) name.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The site's current Site Addressing.
    pub fn addressing(&self) -> &SiteAddressing {
        &self.addressing
    }

    /// All local recipients, in creation order.
    pub fn recipients(&self) -> &[Recipient] {
        &self.recipients
    }

    /// Create a mailbox on this server: the primary SMTP proxy comes from the site addressing
    /// ([`generate_smtp_proxy`]) and the X.400 proxy from the site X.400 address
    /// ([`x400_address`]). Returns the stored recipient.
    ///
    /// Errors: [`DirectoryError::InvalidAlias`], [`DirectoryError::DuplicateAlias`] (alias
    /// compared case-insensitively), [`DirectoryError::EmptyLocalPart`],
    /// [`DirectoryError::DuplicateProxy`] (the generated address is held by someone else).
    pub fn add_mailbox(&mut self, spec: RecipientSpec) -> Result<&Recipient, DirectoryError> {
        validate_alias(&spec.alias)?;
        if self.lookup_alias(&spec.alias).is_some() {
            return Err(DirectoryError::DuplicateAlias(spec.alias));
        }
        let smtp = self.generated_proxy(&spec)?;
        if let Some(holder) = self.proxy_holder(&smtp) {
            return Err(DirectoryError::DuplicateProxy {
                address: smtp,
                holder: holder.alias.clone(),
            });
        }
        let recipient = Recipient {
            display_name: spec.effective_display_name(),
            x400: x400_address(&self.addressing.x400, &spec),
            smtp: vec![smtp],
            alias: spec.alias,
            given: spec.given,
            surname: spec.surname,
            site: self.site.clone(),
            server: self.server.clone(),
        };
        self.index.insert(self.recipients.len(), &recipient);
        self.recipients.push(recipient);
        Ok(self.recipients.last().expect("just pushed"))
    }

    /// The recipient with this alias (case-insensitive).
    pub fn lookup_alias(&self, alias: &str) -> Option<&Recipient> {
        self.index
            .alias(alias)
            .first()
            .map(|&i| &self.recipients[i])
    }

    /// The recipient holding the SMTP proxy `local@domain` (primary or secondary), comparing
    /// both parts case-insensitively (RFC 5321 §2.4 permits this for the local part; Exchange
    /// does it).
    pub fn lookup_smtp(&self, local: &str, domain: &str) -> Option<&Recipient> {
        self.index.smtp(local, domain).map(|i| &self.recipients[i])
    }

    /// The recipient whose X.400 proxy is the mnemonic O/R address `mnemonic`
    /// (`c=US;a= ;p=ExchangeORG;o=SiteA;s=Smith;g=John`): the first whose proxy is the same
    /// text (ASCII case ignored), else the first whose proxy holds the same attributes in any
    /// order ([`mnemonic_attributes`]; keys and values compared case-insensitively, each
    /// attribute matched by its own one: `ou=A;ou=A` is not `ou=A;ou=B`).
    pub fn lookup_x400(&self, mnemonic: &str) -> Option<&Recipient> {
        self.index
            .x400(&self.recipients, mnemonic)
            .map(|i| &self.recipients[i])
    }

    /// [`Directory::lookup_smtp`] on a whole `"local@domain"` address (split at the last `@`).
    pub fn lookup_smtp_address(&self, address: &str) -> Option<&Recipient> {
        let (local, domain) = split_addr(address)?;
        self.lookup_smtp(local, domain)
    }

    /// The domains this server accepts mail for: the site address's domain and every domain of
    /// a local recipient's proxy addresses, lower-cased, without duplicates, site domain first.
    pub fn local_domains(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let site = self.addressing.smtp_domain();
        let candidates = std::iter::once(site).chain(
            self.recipients
                .iter()
                .flat_map(|r| r.smtp.iter())
                .filter_map(|p| split_addr(p).map(|(_, d)| d)),
        );
        for d in candidates {
            let d = d.to_ascii_lowercase();
            if !d.is_empty() && !out.contains(&d) {
                out.push(d);
            }
        }
        out
    }

    /// Replace the Site Addressing. With `update_all_recipients` (the Administrator's "update
    /// all the recipient mailboxes?" answered Yes, KB Q196927 step 4) every recipient gets a
    /// new primary SMTP proxy generated from the new addressing, its old primary kept as a
    /// secondary proxy, and a new X.400 address. Without it, existing recipients keep their
    /// addresses and only new mailboxes use the new addressing. See
    /// [`Directory::update_site_addressing`] for the per-recipient outcome.
    pub fn set_site_addressing(&mut self, new: SiteAddressing, update_all_recipients: bool) {
        let _ = self.update_site_addressing(new, update_all_recipients);
    }

    /// [`Directory::set_site_addressing`], reporting which recipients changed. A recipient
    /// whose new address would be empty or is held by another recipient keeps its SMTP
    /// proxies unchanged and is listed in `skipped` (its X.400 address is still updated).
    pub fn update_site_addressing(
        &mut self,
        new: SiteAddressing,
        update_all_recipients: bool,
    ) -> AddressingUpdate {
        self.addressing = new;
        let mut report = AddressingUpdate::default();
        if !update_all_recipients {
            return report;
        }
        for i in 0..self.recipients.len() {
            let spec = self.recipients[i].spec();
            let x400 = x400_address(&self.addressing.x400, &spec);
            self.index.remove(i, &self.recipients[i]);
            self.recipients[i].x400 = x400;
            self.index.insert(i, &self.recipients[i]);
            let new_primary = match self.generated_proxy(&spec) {
                Ok(p) => p,
                Err(e) => {
                    report.skipped.push((spec.alias, e.to_string()));
                    continue;
                }
            };
            if let Some(holder) = self.proxy_holder(&new_primary)
                && !holder.alias.eq_ignore_ascii_case(&spec.alias)
            {
                let e = DirectoryError::DuplicateProxy {
                    address: new_primary,
                    holder: holder.alias.clone(),
                };
                report.skipped.push((spec.alias, e.to_string()));
                continue;
            }
            if self.recipients[i]
                .smtp
                .first()
                .is_some_and(|p| p.eq_ignore_ascii_case(&new_primary))
            {
                continue;
            }
            self.index.remove(i, &self.recipients[i]);
            let r = &mut self.recipients[i];
            r.smtp.retain(|p| !p.eq_ignore_ascii_case(&new_primary));
            r.smtp.insert(0, new_primary);
            self.index.insert(i, &self.recipients[i]);
            report.updated.push(spec.alias);
        }
        report
    }

    /// This server's DN: `"/o=ORG/ou=SITE/cn=Configuration/cn=Servers/cn=SRV"`.
    pub fn server_dn(&self) -> String {
        format!(
            "/o={}/ou={}/cn=Configuration/cn=Servers/cn={}",
            self.org, self.site, self.server
        )
    }

    /// This server's directory service agent DN:
    /// `"/o=ORG/ou=SITE/cn=Configuration/cn=Servers/cn=SRV/cn=Microsoft DSA"` (DESIGN §5).
    pub fn dsa_dn(&self) -> String {
        format!("{}/cn=Microsoft DSA", self.server_dn())
    }

    /// A recipient's DN: `"/o=ORG/ou=SITE/cn=Recipients/cn=ALIAS"`, with SITE the recipient's
    /// home site.
    pub fn recipient_dn(&self, r: &Recipient) -> String {
        format!("/o={}/ou={}/cn=Recipients/cn={}", self.org, r.site, r.alias)
    }

    /// The recipient whose DN is `dn` (compared case-insensitively), e.g. after
    /// [`imceaex_decode`]. The DN's last `cn=` is the alias, which holds no `/`
    /// ([`Directory::add_mailbox`] refuses one).
    pub fn lookup_dn(&self, dn: &str) -> Option<&Recipient> {
        let b = dn.as_bytes();
        let at = (0..b.len().saturating_sub(3))
            .rev()
            .find(|&i| b[i] == b'/' && b[i + 1..i + 4].eq_ignore_ascii_case(b"cn="))?;
        let alias = &dn[at + 4..];
        self.index
            .alias(alias)
            .iter()
            .map(|&i| &self.recipients[i])
            .find(|r| self.recipient_dn(r).eq_ignore_ascii_case(dn))
    }

    fn generated_proxy(&self, spec: &RecipientSpec) -> Result<String, DirectoryError> {
        let a = &self.addressing;
        let smtp = generate_smtp_proxy(Some(a.effective_generator()), a.smtp_domain(), spec);
        if smtp.starts_with('@') {
            return Err(DirectoryError::EmptyLocalPart(smtp));
        }
        Ok(smtp)
    }

    fn proxy_holder(&self, address: &str) -> Option<&Recipient> {
        self.lookup_smtp_address(address)
    }
}

/// Split `"local@domain"` at the last `@`.
fn split_addr(addr: &str) -> Option<(&str, &str)> {
    let i = addr.rfind('@')?;
    Some((&addr[..i], &addr[i + 1..]))
}

fn validate_alias(alias: &str) -> Result<(), DirectoryError> {
    let reason = if alias.trim().is_empty() {
        "empty"
    } else if alias.chars().count() > MAX_ALIAS_LEN {
        "longer than 64 characters"
    } else if alias.contains('/') {
        "contains '/'"
    } else if alias.chars().any(char::is_control) {
        "contains a control character"
    } else {
        return Ok(());
    };
    Err(DirectoryError::InvalidAlias {
        alias: alias.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addressing(smtp: &str, generator: Option<&str>) -> SiteAddressing {
        SiteAddressing {
            smtp: smtp.into(),
            smtp_generator: generator.map(Into::into),
            x400: X400SiteAddress {
                c: "US".into(),
                a: " ".into(),
                p: "ExchangeORG".into(),
                o: "SiteA".into(),
            },
        }
    }

    fn spec(alias: &str, given: &str, surname: &str) -> RecipientSpec {
        RecipientSpec {
            alias: alias.into(),
            given: given.into(),
            surname: surname.into(),
            display_name: None,
        }
    }

    fn site_a() -> Directory {
        Directory::new(
            "ExchangeORG",
            "SiteA",
            "ServerA",
            addressing("@SiteA.microsoft.com", None),
        )
    }

    #[test]
    fn add_mailbox_default_addressing() {
        let mut d = site_a();
        let r = d
            .add_mailbox(spec("JohnS", "John", "Smith"))
            .unwrap()
            .clone();
        assert_eq!(r.smtp, vec!["JohnS@SiteA.microsoft.com".to_string()]);
        assert_eq!(r.x400, "c=US;a= ;p=ExchangeORG;o=SiteA;s=Smith;g=John");
        assert_eq!(r.display_name, "John Smith");
        assert_eq!(r.site, "SiteA");
        assert_eq!(r.server, "ServerA");
        assert_eq!(
            d.recipient_dn(&r),
            "/o=ExchangeORG/ou=SiteA/cn=Recipients/cn=JohnS"
        );
        assert_eq!(
            d.server_dn(),
            "/o=ExchangeORG/ou=SiteA/cn=Configuration/cn=Servers/cn=ServerA"
        );
        assert_eq!(
            d.dsa_dn(),
            "/o=ExchangeORG/ou=SiteA/cn=Configuration/cn=Servers/cn=ServerA/cn=Microsoft DSA"
        );
        assert_eq!(
            d.lookup_dn("/O=EXCHANGEORG/OU=SITEA/CN=RECIPIENTS/CN=JOHNS")
                .map(|r| &r.alias),
            Some(&r.alias)
        );
    }

    #[test]
    fn add_mailbox_with_generator() {
        let mut d = Directory::new(
            "ExchangeORG",
            "SiteA",
            "ServerA",
            addressing("@SiteA.microsoft.com", Some("%g.%s")),
        );
        let r = d.add_mailbox(spec("JohnS", "John", "Smith")).unwrap();
        assert_eq!(r.primary_smtp(), Some("John.Smith@SiteA.microsoft.com"));
    }

    #[test]
    fn lookups_are_case_insensitive() {
        let mut d = site_a();
        d.add_mailbox(spec("JohnS", "John", "Smith")).unwrap();
        assert_eq!(
            d.lookup_smtp("johns", "sitea.MICROSOFT.com")
                .map(|r| r.alias.as_str()),
            Some("JohnS")
        );
        assert_eq!(
            d.lookup_smtp_address("JOHNS@SITEA.MICROSOFT.COM")
                .map(|r| r.alias.as_str()),
            Some("JohnS")
        );
        assert!(d.lookup_smtp("johns", "microsoft.com").is_none());
        assert!(d.lookup_smtp("john", "SiteA.microsoft.com").is_none());
        assert_eq!(
            d.lookup_alias("JOHNS").map(|r| r.alias.as_str()),
            Some("JohnS")
        );
    }

    #[test]
    fn rejects_duplicates_and_bad_aliases() {
        let mut d = site_a();
        d.add_mailbox(spec("JohnS", "John", "Smith")).unwrap();
        assert_eq!(
            d.add_mailbox(spec("johns", "Other", "Person")).unwrap_err(),
            DirectoryError::DuplicateAlias("johns".into())
        );
        // a different alias whose generated address collides
        let mut d2 = Directory::new(
            "ExchangeORG",
            "SiteA",
            "ServerA",
            addressing("@SiteA.microsoft.com", Some("%g.%s")),
        );
        d2.add_mailbox(spec("JohnS", "John", "Smith")).unwrap();
        let err = d2
            .add_mailbox(spec("JSmith2", "john", "smith"))
            .unwrap_err();
        assert_eq!(
            err,
            DirectoryError::DuplicateProxy {
                address: "john.smith@SiteA.microsoft.com".into(),
                holder: "JohnS".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "smtp address \"john.smith@SiteA.microsoft.com\" is already held by \"JohnS\""
        );
        assert!(matches!(
            d.add_mailbox(spec("", "a", "b")),
            Err(DirectoryError::InvalidAlias { .. })
        ));
        assert!(matches!(
            d.add_mailbox(spec("a/b", "a", "b")),
            Err(DirectoryError::InvalidAlias { .. })
        ));
        assert!(matches!(
            d.add_mailbox(spec(&"x".repeat(65), "a", "b")),
            Err(DirectoryError::InvalidAlias { .. })
        ));
        let mut d3 = Directory::new(
            "ExchangeORG",
            "SiteA",
            "ServerA",
            addressing("@SiteA.microsoft.com", Some("%g")),
        );
        assert_eq!(
            d3.add_mailbox(spec("Admin", "", "Admin")).unwrap_err(),
            DirectoryError::EmptyLocalPart("@SiteA.microsoft.com".into())
        );
        assert_eq!(d.recipients().len(), 1);
    }

    #[test]
    fn single_domain_update_keeps_old_address() {
        // KB Q196927, "Setting up a Single E-mail Domain": @SiteA.microsoft.com -> @microsoft.com
        let mut d = site_a();
        d.add_mailbox(spec("JohnS", "John", "Smith")).unwrap();
        d.add_mailbox(spec("MaryK", "Mary", "Kay")).unwrap();
        let report = d.update_site_addressing(addressing("@microsoft.com", None), true);
        assert_eq!(
            report.updated,
            vec!["JohnS".to_string(), "MaryK".to_string()]
        );
        assert!(report.skipped.is_empty());
        let john = d.lookup_alias("JohnS").unwrap();
        assert_eq!(
            john.smtp,
            vec![
                "JohnS@microsoft.com".to_string(),
                "JohnS@SiteA.microsoft.com".to_string()
            ]
        );
        assert_eq!(
            d.lookup_smtp("johns", "microsoft.com").unwrap().alias,
            "JohnS"
        );
        assert_eq!(
            d.lookup_smtp("johns", "sitea.microsoft.com").unwrap().alias,
            "JohnS"
        );
        assert_eq!(
            d.local_domains(),
            vec![
                "microsoft.com".to_string(),
                "sitea.microsoft.com".to_string()
            ]
        );
        // new mailboxes use the new addressing
        assert_eq!(
            d.add_mailbox(spec("Pat", "Pat", "Lee")).unwrap().smtp,
            vec!["Pat@microsoft.com".to_string()]
        );
        // applying the same addressing again changes nothing
        let again = d.update_site_addressing(addressing("@microsoft.com", None), true);
        assert!(again.updated.is_empty());
        assert_eq!(d.lookup_alias("JohnS").unwrap().smtp.len(), 2);
        // switching back promotes the old secondary without duplicating it
        d.set_site_addressing(addressing("@SiteA.microsoft.com", None), true);
        assert_eq!(
            d.lookup_alias("JohnS").unwrap().smtp,
            vec![
                "JohnS@SiteA.microsoft.com".to_string(),
                "JohnS@microsoft.com".to_string()
            ]
        );
    }

    #[test]
    fn update_without_recipients_flag() {
        let mut d = site_a();
        d.add_mailbox(spec("JohnS", "John", "Smith")).unwrap();
        let mut new = addressing("@microsoft.com", None);
        new.x400.o = "Other".into();
        d.set_site_addressing(new.clone(), false);
        assert_eq!(d.addressing(), &new);
        let john = d.lookup_alias("JohnS").unwrap();
        assert_eq!(john.smtp, vec!["JohnS@SiteA.microsoft.com".to_string()]);
        assert_eq!(john.x400, "c=US;a= ;p=ExchangeORG;o=SiteA;s=Smith;g=John");
        assert_eq!(
            d.local_domains(),
            vec![
                "microsoft.com".to_string(),
                "sitea.microsoft.com".to_string()
            ]
        );
        d.set_site_addressing(new, true);
        assert_eq!(
            d.lookup_alias("JohnS").unwrap().x400,
            "c=US;a= ;p=ExchangeORG;o=Other;s=Smith;g=John"
        );
    }

    #[test]
    fn update_skips_colliding_addresses() {
        let mut d = site_a();
        d.add_mailbox(spec("JohnS", "John", "Smith")).unwrap();
        d.add_mailbox(spec("JohnS2", "John", "Smith")).unwrap();
        let report = d.update_site_addressing(addressing("@microsoft.com", Some("%g.%s")), true);
        assert_eq!(report.updated, vec!["JohnS".to_string()]);
        assert_eq!(report.skipped.len(), 1);
        assert_eq!(report.skipped[0].0, "JohnS2");
        assert_eq!(
            d.lookup_alias("JohnS2").unwrap().smtp,
            vec!["JohnS2@SiteA.microsoft.com".to_string()]
        );
    }

    #[test]
    fn local_domains_lowercase_dedup() {
        let mut d = site_a();
        assert_eq!(d.local_domains(), vec!["sitea.microsoft.com".to_string()]);
        d.add_mailbox(spec("JohnS", "John", "Smith")).unwrap();
        assert_eq!(d.local_domains(), vec!["sitea.microsoft.com".to_string()]);
    }

    /// The lookups as a scan of the recipients in creation order answers them.
    mod scan {
        use super::*;

        pub fn alias<'a>(d: &'a Directory, alias: &str) -> Option<&'a Recipient> {
            d.recipients()
                .iter()
                .find(|r| r.alias.eq_ignore_ascii_case(alias))
        }

        pub fn smtp<'a>(d: &'a Directory, local: &str, domain: &str) -> Option<&'a Recipient> {
            d.recipients().iter().find(|r| r.has_smtp(local, domain))
        }

        fn pairs(m: &str) -> Vec<(String, String)> {
            let mut v: Vec<_> = mnemonic_attributes(m)
                .map(|(k, v)| (k.to_ascii_lowercase(), v.to_ascii_lowercase()))
                .collect();
            v.sort();
            v
        }

        pub fn x400<'a>(d: &'a Directory, m: &str) -> Option<&'a Recipient> {
            let rs = d.recipients();
            rs.iter()
                .find(|r| r.x400.eq_ignore_ascii_case(m))
                .or_else(|| rs.iter().find(|r| pairs(&r.x400) == pairs(m)))
        }

        pub fn dn<'a>(d: &'a Directory, dn: &str) -> Option<&'a Recipient> {
            d.recipients()
                .iter()
                .find(|r| d.recipient_dn(r).eq_ignore_ascii_case(dn))
        }
    }

    proptest::proptest! {
        /// After mailboxes are added (some refused as duplicates) and the site addressing
        /// changes, every lookup answers as the scan does, for the recipients' own addresses
        /// in other cases and attribute orders, and for addresses nobody holds.
        #[test]
        fn lookups_answer_as_a_scan_does(
            people in proptest::collection::vec((0..6usize, 0..4usize, 0..4usize), 0..24),
            updates in proptest::collection::vec((0..3usize, proptest::bool::ANY), 0..3),
            flip in proptest::bool::ANY,
        ) {
            let mut d = site_a();
            let given = ["John", "Mary", "", "Li"];
            let surname = ["Smith", "Jones", "", "Smith"];
            for &(a, g, s) in &people {
                let _ = d.add_mailbox(spec(&format!("User{a}"), given[g], surname[s]));
            }
            for &(which, all) in &updates {
                let smtp = ["@SiteA.microsoft.com", "@sitea.example", "%g.%s@Example.org"][which];
                let mut a = addressing(smtp, None);
                a.x400.o = ["SiteA", "SITEB", "SiteC"][which].into();
                d.set_site_addressing(a, all);
            }
            let case = |s: &str| if flip { s.to_ascii_uppercase() } else { s.to_ascii_lowercase() };
            let mut aliases = vec!["User9".to_string(), "nobody".to_string()];
            let mut smtps = vec!["nobody@sitea.microsoft.com".to_string(), "a@b@c".to_string()];
            let mut x400s = vec!["c=US;a= ;p=Microsoft;o=Nowhere;s=Smith".to_string(), "s=Smith".to_string()];
            let mut dns = vec!["/o=Microsoft/ou=SiteA/cn=Recipients/cn=nobody".to_string(), "no dn".to_string()];
            for r in d.recipients() {
                aliases.push(case(&r.alias));
                smtps.extend(r.smtp.iter().map(|p| case(p)));
                x400s.push(case(&r.x400));
                // The same attributes in reverse order.
                x400s.push(r.x400.split(';').rev().collect::<Vec<_>>().join(";"));
                dns.push(case(&d.recipient_dn(r)));
            }
            for a in &aliases {
                proptest::prop_assert_eq!(d.lookup_alias(a), scan::alias(&d, a), "alias {}", a);
            }
            for s in &smtps {
                let (l, dom) = s.rsplit_once('@').unwrap_or((s.as_str(), ""));
                proptest::prop_assert_eq!(d.lookup_smtp(l, dom), scan::smtp(&d, l, dom), "smtp {}", s);
            }
            for x in &x400s {
                proptest::prop_assert_eq!(d.lookup_x400(x), scan::x400(&d, x), "x400 {}", x);
            }
            for n in &dns {
                proptest::prop_assert_eq!(d.lookup_dn(n), scan::dn(&d, n), "dn {}", n);
            }
            let back: Directory = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
            for x in &x400s {
                proptest::prop_assert_eq!(back.lookup_x400(x), scan::x400(&d, x), "x400 {} after serde", x);
            }
        }
    }

    #[test]
    fn directory_serde_round_trip() {
        let mut d = site_a();
        d.add_mailbox(spec("JohnS", "John", "Smith")).unwrap();
        let json = serde_json::to_string(&d).unwrap();
        let back: Directory = serde_json::from_str(&json).unwrap();
        assert_eq!(back, d);
    }
}
