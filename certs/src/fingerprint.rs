//! SHA-256 certificate fingerprints, in the form people compare by eye.
//!
//! Display matches `openssl x509 -noout -fingerprint -sha256` byte for byte, because that is
//! the command a user runs to check the value logged by the server or published in mDNS.
//! Parsing is strict apart from letter case: a pin that is almost right must be rejected
//! rather than guessed at.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// SHA-256 of a certificate's DER. Display: uppercase hex pairs joined by ':' exactly as
/// `openssl x509 -noout -fingerprint -sha256` prints after "sha256 Fingerprint=".
/// FromStr accepts that form, lower case, or 64 plain hex chars; anything else is an error.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    pub fn of(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

/// The text was neither 32 colon-separated hex pairs nor 64 hex digits.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{input:?} is not a SHA-256 fingerprint: expected 32 hex pairs separated by ':' \
     (as printed by `openssl x509 -noout -fingerprint -sha256 -in cert.pem`) or 64 hex digits"
)]
pub struct ParseFingerprintError {
    pub input: String,
}

impl FromStr for Fingerprint {
    type Err = ParseFingerprintError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseFingerprintError {
            input: s.to_owned(),
        };
        let digits: String = match s.len() {
            64 => s.to_owned(),
            // 32 pairs and 31 colons; checking each part's length rejects misplaced colons.
            95 => {
                let parts: Vec<&str> = s.split(':').collect();
                if parts.len() != 32 || parts.iter().any(|p| p.len() != 2) {
                    return Err(err());
                }
                parts.concat()
            }
            _ => return Err(err()),
        };
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&digits, &mut bytes).map_err(|_| err())?;
        Ok(Self(bytes))
    }
}

/// The certificate a server presented is not the pinned one.
///
/// [`crate::PinnedVerifier`] returns it inside `rustls::Error::InvalidCertificate(Other(..))`,
/// so a caller can downcast to it and offer to update the pin.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the server presented the key {presented}, but the pin is {pinned}; if the server's key \
     was rotated (`mnemo-server tls rotate`), check the new pin in its log or health endpoint \
     and update the pin"
)]
pub struct FingerprintMismatch {
    pub pinned: Fingerprint,
    pub presented: Fingerprint,
}

/// rustls prints a certificate error's payload with `{:?}`, so Debug carries the sentence
/// that users would otherwise only see through Display.
impl fmt::Debug for FingerprintMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: Fingerprint = Fingerprint([
        0x00, 0x01, 0x0a, 0x1f, 0xab, 0xff, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90,
        0xa0, 0xb0, 0xc0, 0xd0, 0xe0, 0xf0, 0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87,
        0x96, 0xa5,
    ]);

    /// Display is upper-case pairs joined by colons, and parses back to the same value.
    #[test]
    fn display_round_trips() {
        let text = SAMPLE.to_string();
        assert_eq!(
            text,
            "00:01:0A:1F:AB:FF:10:20:30:40:50:60:70:80:90:A0:B0:C0:D0:E0:F0:0F:1E:2D:3C:4B:5A:69:78:87:96:A5"
        );
        assert_eq!(text.parse::<Fingerprint>(), Ok(SAMPLE));
    }

    /// Lower case and plain 64-digit hex are accepted as the same fingerprint.
    #[test]
    fn accepts_lower_case_and_plain_hex() {
        let colons = SAMPLE.to_string();
        assert_eq!(colons.to_lowercase().parse::<Fingerprint>(), Ok(SAMPLE));
        let plain = colons.replace(':', "");
        assert_eq!(plain.len(), 64);
        assert_eq!(plain.parse::<Fingerprint>(), Ok(SAMPLE));
        assert_eq!(plain.to_lowercase().parse::<Fingerprint>(), Ok(SAMPLE));
    }

    /// Anything that is not exactly one of the accepted forms is rejected, naming the input.
    #[test]
    fn rejects_bad_input() {
        let colons = SAMPLE.to_string();
        let plain = colons.replace(':', "");
        let bad = [
            String::new(),
            "not a fingerprint".to_owned(),
            plain[..62].to_owned(),
            format!("{plain}00"),
            plain.replacen('0', "g", 1),
            colons.replacen(':', "-", 1),
            // Right length, colons in the wrong places.
            format!("0:{}", &colons[..93]),
            format!(" {}", &plain[..63]),
            format!("{colons}\n"),
            format!("sha256 Fingerprint={colons}"),
            // Only the first 16 bytes: a SHA-1-length mistake.
            colons[..47].to_owned(),
        ];
        for input in bad {
            let err = input.parse::<Fingerprint>().unwrap_err();
            assert_eq!(err.input, input);
            assert!(err.to_string().contains("64 hex digits"), "{err}");
        }
    }

    /// Fingerprint::of is SHA-256 of the bytes given.
    #[test]
    fn of_is_sha256() {
        // SHA-256("abc") from FIPS 180-2, appendix B.1.
        let expected: Fingerprint =
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
                .parse()
                .unwrap();
        assert_eq!(Fingerprint::of(b"abc"), expected);
    }
}
