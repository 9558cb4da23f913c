//! Self-signed certificate generation, PEM persistence, SHA-256 fingerprints and a
//! rustls verifier that pins one fingerprint.
//!
//! Empty for now: HTTPS and pinning arrive with the TLS issue. The crate exists so the
//! workspace already shows where that code will live.
