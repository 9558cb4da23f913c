//! The facts about an end-entity certificate that the loaders decide on: its validity window
//! and the names it covers.
//!
//! Times are converted to `SystemTime` here, once, so the rest of the crate compares plain
//! `SystemTime`s against the caller's `now` and never needs a date library.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::time::ASN1Time;

use crate::{CertError, Fingerprint};

pub(crate) struct CertFacts {
    pub(crate) not_before: SystemTime,
    pub(crate) not_after: SystemTime,
    /// For messages: "2030-01-31 12:00:00 UTC".
    pub(crate) not_before_text: String,
    pub(crate) not_after_text: String,
    pub(crate) dns_names: Vec<String>,
    pub(crate) ips: Vec<IpAddr>,
    /// SHA-256 of the SubjectPublicKeyInfo: the server's pin.
    pub(crate) pin: Fingerprint,
}

pub(crate) fn inspect(der: &[u8], path: &Path) -> Result<CertFacts, CertError> {
    let bad = |reason: String| CertError::BadCertificate {
        path: path.to_owned(),
        reason,
    };
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| bad(e.to_string()))?;
    let validity = cert.validity();
    let mut dns_names = Vec::new();
    let mut ips = Vec::new();
    let san = cert
        .subject_alternative_name()
        .map_err(|e| bad(format!("subject alternative names: {e}")))?;
    for name in san.iter().flat_map(|san| &san.value.general_names) {
        match name {
            GeneralName::DNSName(name) => dns_names.push((*name).to_owned()),
            GeneralName::IPAddress(bytes) => {
                if let Some(ip) = ip_from_bytes(bytes) {
                    ips.push(ip);
                }
            }
            _ => {}
        }
    }
    Ok(CertFacts {
        not_before: system_time(&validity.not_before),
        not_after: system_time(&validity.not_after),
        not_before_text: utc_text(&validity.not_before),
        not_after_text: utc_text(&validity.not_after),
        dns_names,
        ips,
        pin: Fingerprint::of(cert.tbs_certificate.subject_pki.raw),
    })
}

/// SHA-256 of the certificate's SubjectPublicKeyInfo (the HPKP `pin-sha256` digest), or
/// `None` when the DER is not a certificate.
pub fn spki_pin(der: &[u8]) -> Option<Fingerprint> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    Some(Fingerprint::of(cert.tbs_certificate.subject_pki.raw))
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

fn system_time(t: &ASN1Time) -> SystemTime {
    let secs = t.timestamp();
    let offset = Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 {
        UNIX_EPOCH + offset
    } else {
        UNIX_EPOCH - offset
    }
}

fn utc_text(t: &ASN1Time) -> String {
    let dt = t.to_datetime();
    format!(
        "{}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// The inverse of `system_time`, for writing a certificate's dates; whole seconds, as X.509
/// stores them.
pub(crate) fn asn1_time(t: SystemTime) -> Option<ASN1Time> {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).ok()?,
        Err(before) => -i64::try_from(before.duration().as_secs()).ok()?,
    };
    ASN1Time::from_timestamp(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dates in messages are plain UTC, and survive the round trip through `ASN1Time`.
    #[test]
    fn dates_are_utc_text() {
        let t = UNIX_EPOCH + Duration::from_secs(86_400 * 365 + 3_723);
        let asn1 = asn1_time(t).unwrap();
        assert_eq!(utc_text(&asn1), "1971-01-01 01:02:03 UTC");
        assert_eq!(system_time(&asn1), t);
    }
}
