//! Delivery status notifications (RFC 3464, RFC 3462 multipart/report) for recipients that
//! failed permanently or expired. Subject and sender follow Exchange's IMS NDRs
//! ("Undeliverable: <subject>", from the System Administrator).

use chrono::{DateTime, Utc};
use mail_builder::MessageBuilder;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;

use crate::maildir::find_header_end;

/// One failed recipient in a DSN.
#[derive(Debug, Clone)]
pub struct FailedRcpt {
    /// The recipient as given in RCPT TO.
    pub rcpt: String,
    /// RFC 3463 status, e.g. "5.1.1" or "4.4.7" (expired).
    pub status: String,
    /// Diagnostic, e.g. "smtp; 550 5.1.1 unknown user" or a local explanation.
    pub diagnostic: String,
    /// The remote MTA that refused it, if one did.
    pub remote_mta: Option<String>,
}

/// Inputs of a DSN.
#[derive(Debug, Clone)]
pub struct DsnInput<'a> {
    /// The reporting MTA's host name (`Reporting-MTA: dns; ...`).
    pub reporting_mta: &'a str,
    /// Address the DSN comes from (`postmaster@<site domain>`).
    pub postmaster: &'a str,
    /// The original sender (the DSN's recipient).
    pub to: &'a str,
    /// When the original arrived.
    pub arrival: DateTime<Utc>,
    /// Original queue id (`X-Original-Queue-Id`, and in the text).
    pub original_id: &'a str,
    /// The original message (its header section is returned).
    pub original: &'a [u8],
    /// Failed recipients.
    pub failed: &'a [FailedRcpt],
}

/// Build the DSN message octets (CRLF).
pub fn build(input: &DsnInput<'_>) -> Vec<u8> {
    let headers_end = find_header_end(input.original);
    let original_headers = String::from_utf8_lossy(&input.original[..headers_end]).into_owned();
    let subject = mail_parser::MessageParser::default()
        .parse_headers(input.original)
        .and_then(|m| m.subject().map(str::to_string))
        .unwrap_or_default();

    let mut human = String::from(
        "Your message did not reach some or all of the intended recipients.\r\n\r\n",
    );
    if !subject.is_empty() {
        human.push_str(&format!("      Subject:\t{subject}\r\n"));
    }
    human.push_str(&format!("      Sent:\t{}\r\n\r\n", input.arrival.to_rfc2822()));
    human.push_str("The following recipient(s) could not be reached:\r\n\r\n");
    for f in input.failed {
        human.push_str(&format!("      {} on {}\r\n            {}\r\n\r\n", f.rcpt, Utc::now().to_rfc2822(), f.diagnostic));
    }

    let mut status = format!(
        "Reporting-MTA: dns; {}\r\nX-Original-Queue-Id: {}\r\nArrival-Date: {}\r\n",
        input.reporting_mta,
        input.original_id,
        input.arrival.to_rfc2822()
    );
    for f in input.failed {
        let action = "failed";
        status.push_str(&format!(
            "\r\nFinal-Recipient: rfc822; {}\r\nAction: {action}\r\nStatus: {}\r\n",
            f.rcpt, f.status
        ));
        if let Some(r) = &f.remote_mta {
            status.push_str(&format!("Remote-MTA: dns; {r}\r\n"));
        }
        let diag = if f.diagnostic.starts_with("smtp;") { f.diagnostic.clone() } else { format!("X-mtalab; {}", f.diagnostic) };
        status.push_str(&format!("Diagnostic-Code: {diag}\r\n"));
    }

    let report = MimePart::new(
        ContentType::new("multipart/report").attribute("report-type", "delivery-status"),
        vec![
            MimePart::new(ContentType::new("text/plain").attribute("charset", "us-ascii"), human),
            MimePart::new(ContentType::new("message/delivery-status"), status),
            MimePart::new(ContentType::new("text/rfc822-headers"), original_headers),
        ],
    );
    MessageBuilder::new()
        .from(("System Administrator", input.postmaster))
        .to(input.to)
        .subject(format!("Undeliverable: {subject}"))
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .body(report)
        .write_to_vec()
        .expect("writing to a Vec cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MimeHeaders;

    #[test]
    fn dsn_is_a_delivery_status_report() {
        let failed = [FailedRcpt {
            rcpt: "nobody@SiteB.microsoft.com".into(),
            status: "5.1.1".into(),
            diagnostic: "smtp; 550 5.1.1 recipient unknown".into(),
            remote_mta: Some("ServerB.SiteB.microsoft.com".into()),
        }];
        let out = build(&DsnInput {
            reporting_mta: "ServerA.SiteA.microsoft.com",
            postmaster: "postmaster@SiteA.microsoft.com",
            to: "JohnS@SiteA.microsoft.com",
            arrival: Utc::now(),
            original_id: "ABC",
            original: b"Subject: hello\r\nFrom: JohnS@SiteA.microsoft.com\r\n\r\nbody\r\n",
            failed: &failed,
        });
        let m = mail_parser::MessageParser::default().parse(&out).unwrap();
        assert_eq!(m.subject(), Some("Undeliverable: hello"));
        let ct = m.content_type().unwrap();
        assert_eq!(ct.ctype(), "multipart");
        assert_eq!(ct.subtype(), Some("report"));
        assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("Final-Recipient: rfc822; nobody@SiteB.microsoft.com"));
        assert!(text.contains("Status: 5.1.1"));
        assert!(text.contains("Content-Type: message/delivery-status"));
        assert!(!text.contains("body\r\n"), "only the headers are returned");
    }
}
