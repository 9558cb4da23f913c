//! Authentication without HTTP: which keys exist, what scope each grants, and whether
//! a presented key may do what a request needs.
//!
//! Nothing here knows about requests or responses. The HTTP layer (`http/auth.rs`)
//! finds the key in a request, asks [`Auth::check`] and turns an [`AuthError`] into
//! its answer; the scope each route needs is declared where the route is registered
//! (`http/mod.rs`). See ARCHITECTURE.md, "Authentication".

mod key_file;
mod managed;
mod master_key;
mod ring;
mod scope;

pub use key_file::{KEY_PREFIX, KEYS_FILE, KeyEntry, KeyError, KeyFile, generate_key};
pub use managed::ManagedKeys;
pub use master_key::{DEFAULT_KEY_FILE, load_or_create_default_key};
pub use ring::KeyRing;
pub use scope::{Scope, UnknownScope};

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use mnemo_certs::Fingerprint;
use mnemo_certs::proof::{self, NONCE_MAX, NONCE_MIN};
use thiserror::Error;

/// Why a request was refused. The messages are for the person at the client.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    #[error(
        "an API key is required: send `Authorization: Bearer <key>` or `X-API-Key: <key>` (the event streams also take `?ticket=<ticket>` from POST /api/events/ticket, or `?api_key=<key>`)"
    )]
    Missing,
    #[error("the API key is not valid")]
    Invalid,
    #[error("this key has the {has} scope; this request needs {needs}")]
    Insufficient { has: Scope, needs: Scope },
    #[error("too many failed authentication attempts; retry in {} s", whole_seconds(*retry_after))]
    RateLimited { retry_after: Duration },
    #[error(
        "the nonce must be {} to {} hex digits: a fresh random value of {NONCE_MIN} to \
         {NONCE_MAX} bytes",
        NONCE_MIN * 2,
        NONCE_MAX * 2
    )]
    BadNonce,
}

/// The most proofs one answer of `POST /api/auth/proof` carries: the master key and the
/// first managed keys. It bounds the work a stranger can ask of the server per request.
pub const MAX_PROOFS: usize = 32;

/// `duration` rounded up to whole seconds, at least one: a client that waits the
/// `Retry-After` it was told must not arrive a fraction of a second too early.
pub fn whole_seconds(duration: Duration) -> u64 {
    let up = u64::from(duration.subsec_nanos() > 0);
    (duration.as_secs() + up).max(1)
}

/// What a request presents as its credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    /// Nothing at all: anonymous, when that is allowed.
    Absent,
    /// A key to check.
    Key(&'a str),
    /// Something that cannot be a key (another scheme, bytes that are not text):
    /// refused like a wrong key, never taken for no credential.
    Unreadable,
}

/// The credentials checker shared by every request.
pub struct Auth {
    /// The master key and the managed keys of `keys.json`.
    keys: KeyRing,
    /// `MCP_ALLOW_ANONYMOUS_ACCESS`: requests without any key may read and write.
    anonymous: bool,
    /// Failed attempts per client address; past the quota they are refused outright,
    /// so a LAN host cannot guess keys at line rate.
    failures: Failures,
}

/// Failures per client address, forgetting the quiet ones: every
/// [`Failures::SWEEP_EVERY`] failures, addresses whose quota has refilled are
/// dropped, so a sweep of many source addresses costs memory only while it lasts.
struct Failures<C: Clock = DefaultClock> {
    limiter: RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, C, NoOpMiddleware<C::Instant>>,
    clock: C,
    since_sweep: AtomicU32,
}

impl<C: Clock + Clone> Failures<C> {
    const SWEEP_EVERY: u32 = 1024;

    fn new(per_minute: u32, clock: C) -> Self {
        let quota =
            Quota::per_minute(NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN));
        Self {
            limiter: RateLimiter::new(quota, DefaultKeyedStateStore::default(), clock.clone()),
            clock,
            since_sweep: AtomicU32::new(0),
        }
    }

    /// Counts one failure of `client`: `Err` with the wait when it is over quota.
    fn record(&self, client: IpAddr) -> Result<(), Duration> {
        if self.since_sweep.fetch_add(1, Ordering::Relaxed) + 1 >= Self::SWEEP_EVERY {
            self.since_sweep.store(0, Ordering::Relaxed);
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter
            .check_key(&client)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Addresses remembered now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.limiter.len()
    }
}

impl Auth {
    pub fn new(keys: KeyRing, anonymous: bool, failures_per_minute: u32) -> Self {
        Self {
            keys,
            anonymous,
            failures: Failures::new(failures_per_minute, DefaultClock::default()),
        }
    }

    /// Decides a request from `client` that presents `presented` and needs `required`:
    /// the scope it is granted, or why not.
    pub async fn check(
        &self,
        presented: Credential<'_>,
        client: IpAddr,
        required: Scope,
    ) -> Result<Scope, AuthError> {
        let decided = self.decide(presented, client, required).await;
        if let Err(refused) = &decided {
            count_refusal(refused);
        }
        decided
    }

    /// The decision of [`Auth::check`], which counts its refusals.
    async fn decide(
        &self,
        presented: Credential<'_>,
        client: IpAddr,
        required: Scope,
    ) -> Result<Scope, AuthError> {
        let granted = match presented {
            // A wrong or unreadable credential is refused even when anonymous access is
            // on: only a request that presents nothing may be anonymous.
            Credential::Key(key) => match self.keys.authenticate(key) {
                Some(scope) => Ok(scope),
                None => return self.check_unknown(key, client, required).await,
            },
            Credential::Unreadable => Err(AuthError::Invalid),
            Credential::Absent if self.anonymous && required != Scope::Admin => Ok(Scope::Write),
            Credential::Absent => Err(AuthError::Missing),
        };
        match granted {
            Ok(scope) => Self::allow(scope, required),
            Err(refused) => Err(self.failed(client, refused)),
        }
    }

    /// A key the ring does not hold. It counts as a failure before the slower
    /// lookup where the keys live, so a client guessing keys is refused (and stops
    /// causing lookups) at the same rate as without one.
    async fn check_unknown(
        &self,
        key: &str,
        client: IpAddr,
        required: Scope,
    ) -> Result<Scope, AuthError> {
        let refused = self.failed(client, AuthError::Invalid);
        if refused != AuthError::Invalid {
            return Err(refused);
        }
        match self.keys.authenticate_fresh(key).await {
            Some(scope) => Self::allow(scope, required),
            None => Err(refused),
        }
    }

    /// `scope` if it allows `required`, else why not.
    pub fn allow(scope: Scope, required: Scope) -> Result<Scope, AuthError> {
        if scope.allows(required) {
            Ok(scope)
        } else {
            Err(AuthError::Insufficient {
                has: scope,
                needs: required,
            })
        }
    }

    /// Counts a failure of `client`: `refused`, or rate-limited past the quota.
    fn failed(&self, client: IpAddr, refused: AuthError) -> AuthError {
        match self.failures.record(client) {
            Ok(()) => refused,
            Err(retry_after) => AuthError::RateLimited { retry_after },
        }
    }

    /// The keys this server checks against.
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }
}

impl Auth {
    /// The proofs of every key held (at most [`MAX_PROOFS`]) for `nonce` (hex) and `pin`,
    /// the pin of the certificate the request came over (`None` over plain HTTP).
    ///
    /// Every request counts as a failed attempt of `client`: the server cannot tell whether
    /// its proof convinced the client, and each answer is something to test guesses of a
    /// key against, so a stranger gets no more of them than of failed logins.
    pub fn proofs(
        &self,
        nonce: &str,
        pin: Option<&Fingerprint>,
        client: IpAddr,
    ) -> Result<Vec<String>, AuthError> {
        self.failures.record(client).map_err(|retry_after| {
            let limited = AuthError::RateLimited { retry_after };
            count_refusal(&limited);
            limited
        })?;
        let nonce = hex::decode(nonce.trim()).map_err(|_| AuthError::BadNonce)?;
        if !(NONCE_MIN..=NONCE_MAX).contains(&nonce.len()) {
            return Err(AuthError::BadNonce);
        }
        Ok(self
            .keys
            .digests(MAX_PROOFS)
            .iter()
            .map(|digest| proof::compute(digest, &nonce, pin))
            .collect())
    }
}

/// Counts a refused request in the metrics: rate limiting apart from the other
/// failures, which are labelled with why.
pub(crate) fn count_refusal(refused: &AuthError) {
    let reason = match refused {
        AuthError::RateLimited { .. } => {
            metrics::counter!(crate::telemetry::AUTH_RATE_LIMITED).increment(1);
            return;
        }
        AuthError::Missing => "missing",
        AuthError::Invalid => "invalid",
        AuthError::Insufficient { .. } => "insufficient_scope",
        AuthError::BadNonce => "bad_nonce",
    };
    metrics::counter!(crate::telemetry::AUTH_FAILURES, "reason" => reason).increment(1);
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
    #[tokio::test]
    async fn decides_by_key_and_scope() {
        let dir = tempfile::tempdir().unwrap();
        let auth = auth(dir.path(), false, 100);
        assert_eq!(
            auth.check(Credential::Key("master"), CLIENT, Scope::Admin)
                .await,
            Ok(Scope::Admin)
        );
        assert_eq!(
            auth.check(Credential::Absent, CLIENT, Scope::Read).await,
            Err(AuthError::Missing)
        );
        assert_eq!(
            auth.check(Credential::Key("nope"), CLIENT, Scope::Read)
                .await,
            Err(AuthError::Invalid)
        );
        let (_, reader) = KeyFile::new(dir.path()).add("r", Scope::Read).unwrap();
        assert_eq!(
            auth.check(Credential::Key(&reader), CLIENT, Scope::Write)
                .await,
            Err(AuthError::Insufficient {
                has: Scope::Read,
                needs: Scope::Write
            })
        );
    }

    /// Anonymous access writes without a key, but never with a wrong one, never admin.
    #[tokio::test]
    async fn anonymous_access_has_limits() {
        let dir = tempfile::tempdir().unwrap();
        let auth = auth(dir.path(), true, 100);
        assert_eq!(
            auth.check(Credential::Absent, CLIENT, Scope::Write).await,
            Ok(Scope::Write)
        );
        assert_eq!(
            auth.check(Credential::Absent, CLIENT, Scope::Admin).await,
            Err(AuthError::Missing)
        );
        assert_eq!(
            auth.check(Credential::Key("nope"), CLIENT, Scope::Read)
                .await,
            Err(AuthError::Invalid)
        );
        assert_eq!(
            auth.check(Credential::Unreadable, CLIENT, Scope::Read)
                .await,
            Err(AuthError::Invalid)
        );
    }

    /// Past the quota of failures, a client that keeps guessing is told to wait.
    #[tokio::test]
    async fn failures_are_rate_limited() {
        let dir = tempfile::tempdir().unwrap();
        let auth = auth(dir.path(), false, 2);
        for _ in 0..2 {
            assert_eq!(
                auth.check(Credential::Key("nope"), CLIENT, Scope::Read)
                    .await,
                Err(AuthError::Invalid)
            );
        }
        assert!(matches!(
            auth.check(Credential::Key("nope"), CLIENT, Scope::Read).await,
            Err(AuthError::RateLimited { retry_after }) if retry_after > Duration::ZERO
        ));
    }

    /// One proof per key, master first, each the proof a client with that key expects
    /// for this nonce and pin; a bad nonce is refused; every request counts against the
    /// failure quota.
    #[tokio::test]
    async fn proofs_cover_every_key_and_are_rate_limited() {
        let dir = tempfile::tempdir().unwrap();
        let auth = auth(dir.path(), false, 5);
        let (_, managed) = KeyFile::new(dir.path()).add("m", Scope::Read).unwrap();
        let nonce = [9u8; 16];
        let pin = Fingerprint([3; 32]);
        let proofs = auth
            .proofs(&hex::encode(nonce), Some(&pin), CLIENT)
            .unwrap();
        assert_eq!(proofs.len(), 2);
        assert!(proof::holds(&proofs[..1], "master", &nonce, Some(&pin)));
        assert!(proof::holds(&proofs, &managed, &nonce, Some(&pin)));
        assert!(!proof::holds(&proofs, "master", &nonce, None));
        for bad in ["", "zz", &hex::encode([1u8; 15]), &hex::encode([1u8; 65])] {
            assert_eq!(auth.proofs(bad, None, CLIENT), Err(AuthError::BadNonce));
        }
        assert!(matches!(
            auth.proofs(&hex::encode(nonce), None, CLIENT),
            Err(AuthError::RateLimited { .. })
        ));
        // A login from the same address is then refused too: one quota for both.
        assert!(matches!(
            auth.check(Credential::Key("nope"), CLIENT, Scope::Read)
                .await,
            Err(AuthError::RateLimited { .. })
        ));
    }

    /// At most MAX_PROOFS proofs, however many keys there are.
    #[test]
    fn proofs_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let file = KeyFile::new(dir.path());
        for i in 0..MAX_PROOFS + 5 {
            file.add(&format!("k{i}"), Scope::Read).unwrap();
        }
        let auth = auth(dir.path(), false, 100);
        let proofs = auth.proofs(&hex::encode([0u8; 32]), None, CLIENT).unwrap();
        assert_eq!(proofs.len(), MAX_PROOFS);
    }

    /// `Retry-After` rounds up, so waiting exactly that long is enough.
    #[test]
    fn waits_round_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(whole_seconds(Duration::from_secs(3)), 3);
        assert_eq!(whole_seconds(Duration::ZERO), 1);
        // 2 failures a minute: the third waits 30 s less a hair, told 30 s; 30 s later
        // it is let through.
        let clock = governor::clock::FakeRelativeClock::default();
        let failures = Failures::new(2, clock.clone());
        let client = CLIENT;
        assert!(failures.record(client).is_ok() && failures.record(client).is_ok());
        clock.advance(Duration::from_millis(400));
        let wait = failures.record(client).unwrap_err();
        let told = whole_seconds(wait);
        assert_eq!(told, 30, "{wait:?}");
        clock.advance(Duration::from_secs(told));
        assert!(failures.record(client).is_ok());
    }

    /// 60,000 addresses failing once each are forgotten once they have been quiet for
    /// a minute (their quota has refilled), not kept forever.
    #[test]
    fn quiet_addresses_are_forgotten() {
        let clock = governor::clock::FakeRelativeClock::default();
        let failures = Failures::new(10, clock.clone());
        let address = |i: u32| IpAddr::V6(std::net::Ipv6Addr::from(u128::from(i) + 1));
        for i in 0..60_000 {
            let _ = failures.record(address(i));
        }
        assert!(failures.len() >= 60_000 - Failures::<DefaultClock>::SWEEP_EVERY as usize);
        clock.advance(Duration::from_secs(61));
        for i in 0..Failures::<DefaultClock>::SWEEP_EVERY {
            let _ = failures.record(address(1_000_000 + i));
        }
        assert!(
            failures.len() <= Failures::<DefaultClock>::SWEEP_EVERY as usize,
            "{} addresses remembered",
            failures.len()
        );
    }
}
