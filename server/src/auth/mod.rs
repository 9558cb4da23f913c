//! Authentication without HTTP: which keys exist, what scope each grants, and whether
//! a presented key may do what a request needs.
//!
//! Nothing here knows about requests or responses. The HTTP layer (`http/auth.rs`)
//! finds the key in a request, asks [`Auth::check`] and turns an [`AuthError`] into
//! its answer; the scope each route needs is declared where the route is registered
//! (`http/mod.rs`). See ARCHITECTURE.md, "Authentication".

mod key_file;
mod master_key;
mod ring;
mod scope;

pub use key_file::{KEY_PREFIX, KEYS_FILE, KeyEntry, KeyError, KeyFile, generate_key};
pub use master_key::{DEFAULT_KEY_FILE, load_or_create_default_key};
pub use ring::KeyRing;
pub use scope::Scope;

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use thiserror::Error;

/// Why a request was refused. The messages are for the person at the client.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    #[error(
        "an API key is required: send `Authorization: Bearer <key>`, `X-API-Key: <key>` or `?api_key=<key>`"
    )]
    Missing,
    #[error("the API key is not valid")]
    Invalid,
    #[error("this key has the {has} scope; this request needs {needs}")]
    Insufficient { has: Scope, needs: Scope },
    #[error("too many failed authentication attempts; retry in {} s", retry_after.as_secs())]
    RateLimited { retry_after: Duration },
}

/// The credentials checker shared by every request.
pub struct Auth {
    /// The master key and the managed keys of `keys.json`.
    keys: KeyRing,
    /// `MCP_ALLOW_ANONYMOUS_ACCESS`: requests without any key may read and write.
    anonymous: bool,
    /// Failed attempts per client address; past the quota they are refused outright,
    /// so a LAN host cannot guess keys at line rate.
    failures: DefaultKeyedRateLimiter<IpAddr>,
}

impl Auth {
    pub fn new(keys: KeyRing, anonymous: bool, failures_per_minute: u32) -> Self {
        let quota = Quota::per_minute(
            NonZeroU32::new(failures_per_minute.max(1)).unwrap_or(NonZeroU32::MIN),
        );
        Self {
            keys,
            anonymous,
            failures: RateLimiter::keyed(quota),
        }
    }

    /// Decides a request from `client` that presents `presented` and needs `required`:
    /// the scope it is granted, or why not.
    pub fn check(
        &self,
        presented: Option<&str>,
        client: IpAddr,
        required: Scope,
    ) -> Result<Scope, AuthError> {
        let granted = match presented {
            // A wrong key is refused even when anonymous access is on.
            Some(key) => self.keys.authenticate(key).ok_or(AuthError::Invalid),
            None if self.anonymous && required != Scope::Admin => Ok(Scope::Write),
            None => Err(AuthError::Missing),
        };
        match granted {
            Ok(scope) if scope.allows(required) => Ok(scope),
            Ok(has) => Err(AuthError::Insufficient {
                has,
                needs: required,
            }),
            Err(refused) => {
                if let Err(not_until) = self.failures.check_key(&client) {
                    let retry_after = not_until
                        .wait_time_from(DefaultClock::default().now())
                        .max(Duration::from_secs(1));
                    return Err(AuthError::RateLimited { retry_after });
                }
                Err(refused)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn auth(dir: &std::path::Path, anonymous: bool, failures_per_minute: u32) -> Auth {
        let ring = KeyRing::new(Some("master".into()), KeyFile::new(dir));
        Auth::new(ring, anonymous, failures_per_minute)
    }

    const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    /// The master key has every scope; no key and a wrong key are told apart.
    #[test]
    fn decides_by_key_and_scope() {
        let dir = tempfile::tempdir().unwrap();
        let auth = auth(dir.path(), false, 100);
        assert_eq!(
            auth.check(Some("master"), CLIENT, Scope::Admin),
            Ok(Scope::Admin)
        );
        assert_eq!(
            auth.check(None, CLIENT, Scope::Read),
            Err(AuthError::Missing)
        );
        assert_eq!(
            auth.check(Some("nope"), CLIENT, Scope::Read),
            Err(AuthError::Invalid)
        );
        let (_, reader) = KeyFile::new(dir.path()).add("r", Scope::Read).unwrap();
        assert_eq!(
            auth.check(Some(&reader), CLIENT, Scope::Write),
            Err(AuthError::Insufficient {
                has: Scope::Read,
                needs: Scope::Write
            })
        );
    }

    /// Anonymous access writes without a key, but never with a wrong one, never admin.
    #[test]
    fn anonymous_access_has_limits() {
        let dir = tempfile::tempdir().unwrap();
        let auth = auth(dir.path(), true, 100);
        assert_eq!(auth.check(None, CLIENT, Scope::Write), Ok(Scope::Write));
        assert_eq!(
            auth.check(None, CLIENT, Scope::Admin),
            Err(AuthError::Missing)
        );
        assert_eq!(
            auth.check(Some("nope"), CLIENT, Scope::Read),
            Err(AuthError::Invalid)
        );
    }

    /// Past the quota of failures, a client that keeps guessing is told to wait.
    #[test]
    fn failures_are_rate_limited() {
        let dir = tempfile::tempdir().unwrap();
        let auth = auth(dir.path(), false, 2);
        for _ in 0..2 {
            assert_eq!(
                auth.check(Some("nope"), CLIENT, Scope::Read),
                Err(AuthError::Invalid)
            );
        }
        assert!(matches!(
            auth.check(Some("nope"), CLIENT, Scope::Read),
            Err(AuthError::RateLimited { retry_after }) if retry_after >= Duration::from_secs(1)
        ));
    }
}
