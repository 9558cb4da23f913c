//! The proof that a server holds the client's API key, bound to the key pair the client saw.
//!
//! `POST /api/auth/proof {nonce}` answers one proof per key the server holds:
//! HMAC-SHA256(SHA-256(key), nonce ‖ pin), where `pin` is the SPKI pin of the certificate the
//! connection was served with (nothing, over plain HTTP). The client computes the proof its
//! own key would give for the pin it saw in the handshake, and sends its key only if the
//! server's list holds it. The HMAC key is the key's SHA-256 because that is all the server
//! keeps of managed keys. A relay that terminates TLS shows its own pin, so the real server's
//! proof (made for the real pin) does not match; a server without the key cannot answer.
//!
//! The client sends only a random nonce, nothing derived from its key: a hash of a weak,
//! user-chosen key would let whoever received it test guesses offline.

use ring::hmac;
use sha2::{Digest, Sha256};

use crate::Fingerprint;

/// Shortest and longest nonce accepted, in bytes (hex on the wire: twice as many digits).
pub const NONCE_MIN: usize = 16;
pub const NONCE_MAX: usize = 64;

/// SHA-256 of an API key, the HMAC key of its proofs.
pub fn key_digest(api_key: &str) -> [u8; 32] {
    Sha256::digest(api_key.as_bytes()).into()
}

/// HMAC-SHA256(`key_digest`, nonce ‖ pin), hex-encoded as it travels.
pub fn compute(key_digest: &[u8; 32], nonce: &[u8], pin: Option<&Fingerprint>) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key_digest);
    let mut context = hmac::Context::with_key(&key);
    context.update(nonce);
    if let Some(pin) = pin {
        context.update(&pin.0);
    }
    hex::encode(context.sign().as_ref())
}

/// A fresh random nonce of 32 bytes.
pub fn nonce() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("the system random source works");
    bytes
}

/// Whether `proofs` holds the proof of `api_key` for `nonce` and `pin`.
pub fn holds(proofs: &[String], api_key: &str, nonce: &[u8], pin: Option<&Fingerprint>) -> bool {
    let mine = compute(&key_digest(api_key), nonce, pin);
    proofs.iter().any(|p| p.eq_ignore_ascii_case(&mine))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The proof is RFC 4231's HMAC-SHA256 of nonce ‖ pin under SHA-256(key), and it
    /// depends on every input.
    #[test]
    fn proof_is_hmac_of_nonce_and_pin() {
        let digest = key_digest("k");
        let pin = Fingerprint([7; 32]);
        let nonce = [1u8; 32];
        let with_pin = compute(&digest, &nonce, Some(&pin));
        let mut message = nonce.to_vec();
        message.extend_from_slice(&pin.0);
        let key = hmac::Key::new(hmac::HMAC_SHA256, &digest);
        assert_eq!(with_pin, hex::encode(hmac::sign(&key, &message).as_ref()));
        assert_ne!(with_pin, compute(&digest, &nonce, None));
        assert_ne!(
            with_pin,
            compute(&digest, &nonce, Some(&Fingerprint([8; 32])))
        );
        assert_ne!(with_pin, compute(&digest, &[2u8; 32], Some(&pin)));
        assert_ne!(with_pin, compute(&key_digest("K"), &nonce, Some(&pin)));
        assert!(holds(
            &["x".into(), with_pin.to_uppercase()],
            "k",
            &nonce,
            Some(&pin)
        ));
        assert!(!holds(&[with_pin], "other", &nonce, Some(&pin)));
        assert_ne!(super::nonce(), super::nonce());
    }
}
