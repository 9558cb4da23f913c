//! Which server the bridge talks to, and how it trusts it (ARCHITECTURE.md, "MCP").
//!
//! The bridge trusts servers, not names: a server is its key pair (the SPKI pin it shows
//! in the TLS handshake) and its instance id. It sends the API key, or any memory, only
//! to a server whose pin is `MCP_MEMORY_CERT_FINGERPRINT` or in the trust store
//! ([`crate::trust`]), or to one that has just proved it holds that key
//! (`POST /api/auth/proof`, bound to the pin this connection saw), which then joins the
//! store.
//!
//! An explicit URL wins. Otherwise the bridge browses mDNS and judges every candidate.
//! Trusted candidates are health-checked and ranked: the last one used first (sticky),
//! then HTTPS, then healthy, then latency. Only when none of them answers are the others
//! asked for a proof, one at a time, and the first that passes is used. Candidates whose
//! pin is unknown are contacted for nothing but the handshake and the proof.

use std::time::{Duration, Instant};

use mnemo_api::Secret;
use mnemo_api::health::{Health, HealthStatus};
use mnemo_api::mdns::txt;
use mnemo_api::rest::{ProofRequest, ProofResponse};
use mnemo_certs::{Fingerprint, first_use_client_config, pinned_client_config, proof};
use mnemo_mcp::ops::{OpsError, OpsErrorKind};

use crate::config::Config;
use crate::discovery::{self, Candidate};
use crate::trust::{TrustStore, TrustedServer};

/// How long a candidate's health check may take.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a proof (handshake included) may take.
const PROOF_TIMEOUT: Duration = Duration::from_secs(3);
/// How long discovery keeps listening after the last new answer.
const DISCOVERY_QUIET: Duration = Duration::from_millis(750);
/// How long opening a TCP connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A chosen server and a client that trusts it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: String,
    pub http: reqwest::Client,
    /// The mDNS instance name, for a discovered server.
    pub instance: Option<String>,
    /// The trusted pin, for HTTPS.
    pub pin: Option<Fingerprint>,
}

/// How a candidate answered its health check.
#[derive(Debug, Clone)]
pub enum Verdict {
    Healthy {
        latency: Duration,
    },
    /// It answered, but is still loading.
    Loading,
    /// It did not answer like a Mnemo server, or not at all.
    Down {
        reason: String,
    },
}

/// How far a candidate is trusted before any proof.
#[derive(Debug, Clone, PartialEq)]
pub enum Trust {
    /// Its pin is `MCP_MEMORY_CERT_FINGERPRINT`.
    Configured,
    /// Its pin is in the trust store.
    Trusted,
    /// Unknown: usable only once it proves it holds the API key.
    NotTrusted,
    /// Its instance id is trusted with another pin: its key was rotated, or another
    /// machine uses its id. Never trusted by proof; the user decides.
    KeyChanged { trusted: String },
    /// Cannot be used at all.
    Refused(String),
}

/// The outcome of `POST /api/auth/proof` for a candidate.
#[derive(Debug, Clone, PartialEq)]
pub enum Proof {
    NotTried,
    Passed,
    Failed(String),
}

/// A candidate with everything the bridge learned about it.
#[derive(Debug, Clone)]
pub struct Judged {
    pub instance: String,
    pub url: String,
    pub https: bool,
    /// The advertised instance id.
    pub id: Option<String>,
    /// The advertised pin, or the one seen in a proof's handshake.
    pub pin: Option<Fingerprint>,
    pub trust: Trust,
    pub proof: Proof,
    /// `None`: its health was not checked.
    pub verdict: Option<Verdict>,
    /// Why it was chosen or skipped.
    pub outcome: String,
}

/// Everything the bridge learned while choosing: what `--check` prints.
#[derive(Debug)]
pub struct Report {
    /// How the endpoint is chosen: "explicit URL …" or "mDNS discovery …".
    pub method: String,
    pub candidates: Vec<Judged>,
    pub choice: Result<Endpoint, OpsError>,
}

/// Chooses endpoints per the configuration.
#[derive(Debug, Clone)]
pub struct Resolver {
    server_url: Option<String>,
    fingerprint: Option<Fingerprint>,
    api_key: Option<Secret>,
    auto_discover: bool,
    discovery_timeout: Duration,
    prefer_https: bool,
    trust: TrustStore,
}

impl Resolver {
    pub fn new(config: &Config) -> Self {
        Self {
            server_url: config.server_url.clone(),
            fingerprint: config.cert_fingerprint,
            api_key: config.api_key.clone(),
            auto_discover: config.auto_discover,
            discovery_timeout: config.discovery_timeout(),
            prefer_https: config.prefer_https,
            trust: TrustStore::new(config.trust_file()),
        }
    }

    pub fn trust_store(&self) -> &TrustStore {
        &self.trust
    }

    /// The endpoint to use now.
    pub async fn resolve(&self) -> Result<Endpoint, OpsError> {
        self.report(false).await.choice
    }

    /// Chooses an endpoint and records why. With `prove_all` (for `--check`), every
    /// candidate that is not trusted is asked for a proof, so the report can show it.
    pub async fn report(&self, prove_all: bool) -> Report {
        if let Some(url) = &self.server_url {
            return self.explicit(url).await;
        }
        if !self.auto_discover {
            return Report {
                method: "none: no server URL and discovery is off".into(),
                candidates: Vec::new(),
                choice: Err(unreachable(
                    "no server is configured: set MCP_MEMORY_HTTP_ENDPOINT (or --server-url), \
                     or turn discovery on with MCP_MEMORY_AUTO_DISCOVER=true",
                )),
            };
        }
        self.discovered(prove_all).await
    }

    async fn explicit(&self, url: &str) -> Report {
        let url = url.trim_end_matches('/').to_owned();
        let method = format!("explicit URL {url} (MCP_MEMORY_HTTP_ENDPOINT / --server-url)");
        let fail = |error: OpsError, candidates: Vec<Judged>| Report {
            method: method.clone(),
            candidates,
            choice: Err(error),
        };
        let https = url.starts_with("https://");
        if !https && !url.starts_with("http://") {
            let error = OpsError::new(
                OpsErrorKind::Misconfigured,
                format!(
                    "the server URL {url:?} (MCP_MEMORY_HTTP_ENDPOINT) must start with \
                     http:// or https://; correct it in the env block of mnemo-bridge in the \
                     MCP client's configuration"
                ),
            );
            return fail(error, Vec::new());
        }
        let mut judged = Judged {
            instance: "(explicit)".into(),
            url: url.clone(),
            https,
            id: None,
            pin: None,
            trust: Trust::NotTrusted,
            proof: Proof::NotTried,
            verdict: None,
            outcome: String::new(),
        };
        let stored = match self.trust.list() {
            Ok(list) => list.into_iter().find(|s| s.address == url),
            Err(e) => return fail(internal(e.to_string()), Vec::new()),
        };
        let known = match (
            https,
            self.fingerprint,
            stored.as_ref().and_then(TrustedServer::pin),
        ) {
            (false, _, _) => None,
            (true, Some(configured), _) => Some((configured, Trust::Configured)),
            (true, None, Some(pin)) => Some((pin, Trust::Trusted)),
            (true, None, None) => None,
        };
        let endpoint = if let Some((pin, trust)) = known {
            judged.pin = Some(pin);
            judged.trust = trust;
            match pinned(&url, None, pin) {
                Ok(endpoint) => endpoint,
                Err(e) => return fail(e, vec![judged]),
            }
        } else {
            // Plain HTTP (no pin to bind, the proof still shows the key is held), or
            // HTTPS never used before: trust on first proof, pinned after it.
            match self.prove(&url, https).await {
                Ok((endpoint, seen)) => {
                    judged.proof = Proof::Passed;
                    judged.pin = seen;
                    if let Some(pin) = seen {
                        if let Err(e) = self.trust.record_use(&pin, "", &url, &url) {
                            return fail(internal(e.to_string()), vec![judged]);
                        }
                        tracing::info!(%url, %pin, trust = %self.trust.path().display(), "trusted the server after its proof");
                    }
                    endpoint
                }
                Err(failure) => {
                    judged.proof = Proof::Failed(failure.message.clone());
                    judged.outcome = "not used: its proof failed".into();
                    return fail(failure, vec![judged]);
                }
            }
        };
        judged.verdict = Some(health(&endpoint).await);
        judged.outcome = "chosen: it is the configured URL".into();
        // An explicit endpoint is used even when it is down now: it may come back, and
        // each call reports its own failure.
        Report {
            method,
            candidates: vec![judged],
            choice: Ok(endpoint),
        }
    }

    async fn discovered(&self, prove_all: bool) -> Report {
        let method = format!(
            "mDNS discovery of {} for up to {:.1} s",
            discovery::SERVICE_TYPE,
            self.discovery_timeout.as_secs_f64()
        );
        let report = |candidates, choice| Report {
            method: method.clone(),
            candidates,
            choice,
        };
        let trusted = match self.trust.list() {
            Ok(list) => list,
            Err(e) => return report(Vec::new(), Err(internal(e.to_string()))),
        };
        let trusted_pins: Vec<Fingerprint> = match self.fingerprint {
            Some(configured) => vec![configured],
            None => trusted.iter().filter_map(TrustedServer::pin).collect(),
        };
        let wanted = |c: &Candidate| {
            trusted_pins.is_empty()
                || c.txt
                    .get(txt::FINGERPRINT)
                    .and_then(|fp| fp.parse().ok())
                    .is_some_and(|pin| trusted_pins.contains(&pin))
        };
        let found = match discovery::discover(self.discovery_timeout, DISCOVERY_QUIET, wanted).await
        {
            Ok(found) => found,
            Err(e) => {
                return report(
                    Vec::new(),
                    Err(unreachable(format!("cannot browse mDNS: {e}"))),
                );
            }
        };
        if found.is_empty() {
            return report(
                Vec::new(),
                Err(unreachable(format!(
                    "no Mnemo server answered mDNS within {:.1} s; is one running with mDNS \
                     on, on this LAN? Or set MCP_MEMORY_HTTP_ENDPOINT",
                    self.discovery_timeout.as_secs_f64()
                ))),
            );
        }
        // The most recently used trusted server is preferred while it answers.
        let sticky = trusted.first().and_then(TrustedServer::pin);
        let mut judged: Vec<Judged> = found.iter().map(|c| self.classify(c, &trusted)).collect();

        let mut usable = Vec::new();
        for (i, candidate) in found.iter().enumerate() {
            let j = &mut judged[i];
            let pin = match (&j.trust, j.pin) {
                (Trust::Configured, _) => self.fingerprint,
                (Trust::Trusted, pin) => pin,
                _ => None,
            };
            let Some(pin) = pin else {
                continue;
            };
            match pinned(&candidate.url, Some(&candidate.instance), pin) {
                Ok(endpoint) => {
                    j.verdict = Some(health(&endpoint).await);
                    usable.push((i, endpoint));
                }
                Err(e) => j.trust = Trust::Refused(e.message),
            }
        }
        usable.retain(|(i, _)| !matches!(judged[*i].verdict, Some(Verdict::Down { .. })));
        usable.sort_by_key(|(i, _)| judged[*i].rank(self.prefer_https, sticky));
        let mut choice = usable.into_iter().next();
        if let Some((i, _)) = &choice {
            judged[*i].outcome =
                "chosen: trusted, and first by last use, HTTPS, health, latency".into();
        }

        // No trusted server answers: a server that proves it holds the key is the user's
        // own (the first use, or a second server sharing the key).
        if choice.is_none() || prove_all {
            let mut order: Vec<usize> = (0..judged.len())
                .filter(|&i| judged[i].trust == Trust::NotTrusted)
                .collect();
            order.sort_by_key(|&i| {
                (
                    self.prefer_https && !judged[i].https,
                    judged[i].instance.clone(),
                )
            });
            for i in order {
                let j = &mut judged[i];
                match self.prove(&j.url, j.https).await {
                    Ok((endpoint, seen)) => {
                        j.proof = Proof::Passed;
                        j.pin = seen.or(j.pin);
                        if choice.is_none() {
                            j.verdict = Some(health(&endpoint).await);
                            let endpoint = Endpoint {
                                instance: Some(j.instance.clone()),
                                ..endpoint
                            };
                            j.outcome =
                                "chosen: no trusted server answers, and it proved it holds \
                                         the API key"
                                    .into();
                            choice = Some((i, endpoint));
                        }
                    }
                    Err(e) => j.proof = Proof::Failed(e.message),
                }
            }
        }
        for j in &mut judged {
            if j.outcome.is_empty() {
                j.outcome = j.skipped();
            }
        }
        let Some((i, endpoint)) = choice else {
            let why = judged
                .iter()
                .map(|j| format!("{} ({})", j.instance, j.outcome))
                .collect::<Vec<_>>()
                .join("; ");
            let message = if trusted.is_empty() {
                format!("no usable Mnemo server among those discovered: {why}")
            } else {
                format!(
                    "no trusted server answers, and none of the others proved it holds the API \
                     key: {why}"
                )
            };
            return report(judged, Err(unreachable(message)));
        };
        if let Some(pin) = endpoint.pin {
            let j = &judged[i];
            let id = j.id.clone().unwrap_or_default();
            if let Err(e) = self.trust.record_use(&pin, &id, &j.instance, &j.url) {
                return report(judged, Err(internal(e.to_string())));
            }
        }
        report(judged, Ok(endpoint))
    }

    /// What the trust store and the configuration say about a candidate, before contact.
    fn classify(&self, candidate: &Candidate, trusted: &[TrustedServer]) -> Judged {
        let https = candidate.url.starts_with("https://");
        let id = candidate
            .txt
            .get(txt::ID)
            .filter(|id| !id.is_empty())
            .cloned();
        let pin: Option<Fingerprint> = candidate
            .txt
            .get(txt::FINGERPRINT)
            .and_then(|fp| fp.parse().ok());
        let trust = match (https, pin, self.fingerprint) {
            (true, None, _) => {
                Trust::Refused("it serves HTTPS but publishes no pin (TXT fp)".into())
            }
            // A configured certificate fingerprint (as pins were before servers published
            // key pins) never equals an advertised pin: the pinned handshake decides.
            (true, Some(_), Some(_)) => Trust::Configured,
            (false, _, Some(configured)) => Trust::Refused(format!(
                "it serves plain HTTP, and MCP_MEMORY_CERT_FINGERPRINT {configured} names a \
                 TLS key"
            )),
            (true, Some(pin), None) => {
                if trusted.iter().any(|s| s.pin() == Some(pin)) {
                    Trust::Trusted
                } else if let Some(known) = trusted
                    .iter()
                    .find(|s| !s.id.is_empty() && Some(&s.id) == id.as_ref())
                {
                    Trust::KeyChanged {
                        trusted: known.pin.clone(),
                    }
                } else {
                    Trust::NotTrusted
                }
            }
            (false, _, None) => Trust::NotTrusted,
        };
        Judged {
            instance: candidate.instance.clone(),
            url: candidate.url.clone(),
            https,
            id,
            pin,
            trust,
            proof: Proof::NotTried,
            verdict: None,
            outcome: String::new(),
        }
    }

    /// Asks the server at `url` to prove it holds the API key, over a fresh client that
    /// accepts the first certificate it sees, records its pin, and from then on accepts
    /// only that pin. Returns an endpoint over that client and the pin; nothing derived
    /// from the key is sent.
    async fn prove(
        &self,
        url: &str,
        https: bool,
    ) -> Result<(Endpoint, Option<Fingerprint>), OpsError> {
        let Some(key) = &self.api_key else {
            return Err(unreachable(
                "no API key (MCP_API_KEY) to check the server against: set it, or name the \
                 server's pin in MCP_MEMORY_CERT_FINGERPRINT",
            ));
        };
        let (http, seen) = if https {
            let (mut tls, seen) = first_use_client_config();
            tls.alpn_protocols = vec![b"http/1.1".to_vec()];
            let http = builder().use_preconfigured_tls(tls).build();
            (http, Some(seen))
        } else {
            (builder().build(), None)
        };
        let http = http.map_err(|e| internal(format!("HTTP client: {e}")))?;
        let nonce = proof::nonce();
        let answer = http
            .post(format!("{url}/api/auth/proof"))
            .json(&ProofRequest {
                nonce: hex_encode(&nonce),
            })
            .timeout(PROOF_TIMEOUT)
            .send()
            .await
            .map_err(|e| {
                unreachable(format!(
                    "the memory server at {url} did not answer: {}",
                    describe(&e)
                ))
            })?;
        let status = answer.status();
        let bytes = answer.bytes().await.map_err(|e| {
            unreachable(format!(
                "the memory server at {url} did not answer: {}",
                describe(&e)
            ))
        })?;
        if status.as_u16() == 429 {
            return Err(OpsError::from_http(429, &bytes));
        }
        let proofs = match serde_json::from_slice::<ProofResponse>(&bytes) {
            Ok(body) if status.is_success() => body.proofs,
            _ => {
                return Err(refused(format!(
                    "{url} does not offer proof that it holds the API key (HTTP {}): an older \
                     Mnemo, or not Mnemo; the key was not sent",
                    status.as_u16()
                )));
            }
        };
        let pin = seen.as_ref().and_then(|seen| seen.get());
        if https && pin.is_none() {
            return Err(internal("the TLS handshake recorded no pin"));
        }
        if !proof::holds(&proofs, key.expose(), &nonce, pin.as_ref()) {
            return Err(refused(format!(
                "{url} did not prove that it holds the API key (its proof does not match the \
                 key, or the pin of the connection it answered on); the key was not sent"
            )));
        }
        // The same client: its open connection is reused, and its verifier accepts only
        // the proven pin from now on.
        let endpoint = Endpoint {
            url: url.to_owned(),
            http,
            instance: None,
            pin,
        };
        Ok((endpoint, pin))
    }
}

impl Judged {
    /// Lower is better: answered before down, the last used, HTTPS when preferred, then
    /// healthy, then latency.
    fn rank(
        &self,
        prefer_https: bool,
        sticky: Option<Fingerprint>,
    ) -> (bool, bool, bool, Duration) {
        let (healthy, latency) = match self.verdict {
            Some(Verdict::Healthy { latency }) => (true, latency),
            _ => (false, Duration::MAX),
        };
        let last_used = sticky.is_some() && self.pin == sticky;
        (!last_used, prefer_https && !self.https, !healthy, latency)
    }

    /// Why a candidate that was not chosen was skipped.
    fn skipped(&self) -> String {
        match (&self.trust, &self.proof, &self.verdict) {
            (Trust::Refused(reason), _, _) => format!("refused: {reason}"),
            (Trust::KeyChanged { trusted }, _, _) => format!(
                "refused: its instance id is trusted with another pin ({trusted}); if its key \
                 was rotated (`mnemo-server tls rotate`), run `mnemo-bridge trust remove {}` \
                 and it is trusted again once it proves it holds the API key",
                self.id.as_deref().unwrap_or(trusted)
            ),
            (_, _, Some(Verdict::Down { reason })) => {
                format!("not used: it does not answer: {reason}")
            }
            (Trust::NotTrusted, Proof::NotTried, _) => {
                "not used: not trusted, and a trusted server answers (contacted for nothing)".into()
            }
            (Trust::NotTrusted, Proof::Failed(reason), _) => {
                format!("not used: not trusted: {reason}")
            }
            _ => "not used: another server ranks first".into(),
        }
    }
}

impl Verdict {
    pub fn describe(&self) -> String {
        match self {
            Self::Healthy { latency } => format!("healthy, {:.1} ms", latency.as_secs_f64() * 1e3),
            Self::Loading => "still loading its model and database".into(),
            Self::Down { reason } => format!("down: {reason}"),
        }
    }
}

fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT)
}

/// An endpoint at `url` whose client trusts exactly `pin`.
fn pinned(url: &str, instance: Option<&str>, pin: Fingerprint) -> Result<Endpoint, OpsError> {
    let mut tls = pinned_client_config(pin);
    // HTTP/1.1 only: the bridge's reqwest has no HTTP/2, and whether hyper-util has it
    // depends on which other crates share the build (the server's do).
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let http = builder()
        .use_preconfigured_tls(tls)
        .build()
        .map_err(|e| internal(format!("HTTP client: {e}")))?;
    Ok(Endpoint {
        url: url.to_owned(),
        http,
        instance: instance.map(str::to_owned),
        pin: Some(pin),
    })
}

/// `GET /api/health`, which needs no key, timed.
async fn health(endpoint: &Endpoint) -> Verdict {
    let started = Instant::now();
    let answer = endpoint
        .http
        .get(format!("{}/api/health", endpoint.url))
        .timeout(HEALTH_TIMEOUT)
        .send()
        .await;
    let response = match answer {
        Ok(response) => response,
        Err(e) => {
            return Verdict::Down {
                reason: describe(&e),
            };
        }
    };
    let latency = started.elapsed();
    match response.json::<Health>().await {
        Ok(Health {
            status: HealthStatus::Healthy,
            ..
        }) => Verdict::Healthy { latency },
        Ok(_) => Verdict::Loading,
        Err(_) => Verdict::Down {
            reason: "it does not answer /api/health like a Mnemo server".into(),
        },
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An error and its causes on one line: reqwest's own text hides the TLS reason
/// (such as a certificate that does not match the pin) in its sources.
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

pub fn unreachable(message: impl Into<String>) -> OpsError {
    OpsError::new(OpsErrorKind::Unreachable, message)
}

fn refused(message: impl Into<String>) -> OpsError {
    OpsError::new(OpsErrorKind::Unreachable, message)
}

fn internal(message: impl Into<String>) -> OpsError {
    OpsError::new(OpsErrorKind::Internal, message)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use clap::Parser;

    use super::*;

    /// Before any contact: a pin in the store is trusted, an unknown one is not, a
    /// trusted id with another pin is a changed key, HTTPS without `fp` is refused, and a
    /// configured pin makes every HTTPS candidate a pinned handshake.
    #[test]
    fn candidates_are_classified_by_pin_and_id() {
        let dir = tempfile::tempdir().unwrap();
        let trust = dir.path().join("trust.json").display().to_string();
        let resolver = |extra: &[&str]| {
            let mut args = vec!["mnemo-bridge", "--trust-file", &trust];
            args.extend_from_slice(extra);
            Resolver::new(&Config::parse_from(args))
        };
        let candidate = |https: bool, fp: Option<Fingerprint>, id: &str| {
            let mut txt = BTreeMap::from([
                (
                    "https".to_owned(),
                    if https { "True" } else { "False" }.to_owned(),
                ),
                ("id".to_owned(), id.to_owned()),
            ]);
            if let Some(fp) = fp {
                txt.insert("fp".to_owned(), fp.to_string());
            }
            Candidate::new(
                "n".into(),
                "h".into(),
                1,
                vec!["10.0.0.2".parse().unwrap()],
                txt,
            )
        };
        let (known, other) = (Fingerprint([1; 32]), Fingerprint([2; 32]));
        let stored = [TrustedServer {
            id: "id-1".into(),
            pin: known.to_string(),
            name: "n".into(),
            address: String::new(),
            first_used: 0,
            last_used: 0,
        }];
        let plain = resolver(&[]);
        let trust_of = |r: &Resolver, c: &Candidate| r.classify(c, &stored).trust;
        assert_eq!(
            trust_of(&plain, &candidate(true, Some(known), "x")),
            Trust::Trusted
        );
        assert_eq!(
            trust_of(&plain, &candidate(true, Some(other), "x")),
            Trust::NotTrusted
        );
        assert_eq!(
            trust_of(&plain, &candidate(true, Some(other), "id-1")),
            Trust::KeyChanged {
                trusted: known.to_string()
            }
        );
        assert!(matches!(
            trust_of(&plain, &candidate(true, None, "x")),
            Trust::Refused(_)
        ));
        assert_eq!(
            trust_of(&plain, &candidate(false, None, "x")),
            Trust::NotTrusted
        );
        let configured = resolver(&["--cert-fingerprint", &other.to_string()]);
        assert_eq!(
            trust_of(&configured, &candidate(true, Some(known), "x")),
            Trust::Configured
        );
        assert!(matches!(
            trust_of(&configured, &candidate(false, None, "x")),
            Trust::Refused(_)
        ));
    }

    fn judged(name: &str, https: bool, pin: u8, verdict: Verdict) -> Judged {
        Judged {
            instance: name.into(),
            url: String::new(),
            https,
            id: None,
            pin: Some(Fingerprint([pin; 32])),
            trust: Trust::Trusted,
            proof: Proof::NotTried,
            verdict: Some(verdict),
            outcome: String::new(),
        }
    }

    fn healthy(ms: u64) -> Verdict {
        Verdict::Healthy {
            latency: Duration::from_millis(ms),
        }
    }

    /// The last used first, then HTTPS when preferred, then healthy, then lowest latency.
    #[test]
    fn candidates_rank_by_last_use_then_https_then_health_then_latency() {
        let list = [
            judged("slow plain", false, 1, healthy(9)),
            judged("fast plain", false, 2, healthy(1)),
            judged("loading tls", true, 3, Verdict::Loading),
            judged("slow tls", true, 4, healthy(30)),
            judged("fast tls", true, 5, healthy(5)),
        ];
        let order = |prefer_https, sticky: Option<u8>| {
            let sticky = sticky.map(|b| Fingerprint([b; 32]));
            let mut names: Vec<&Judged> = list.iter().collect();
            names.sort_by_key(|j| j.rank(prefer_https, sticky));
            names
                .iter()
                .map(|j| j.instance.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            order(true, None),
            [
                "fast tls",
                "slow tls",
                "loading tls",
                "fast plain",
                "slow plain"
            ]
        );
        assert_eq!(
            order(false, None),
            [
                "fast plain",
                "fast tls",
                "slow plain",
                "slow tls",
                "loading tls"
            ]
        );
        assert_eq!(order(true, Some(4))[0], "slow tls");
        assert_eq!(order(true, Some(3))[0], "loading tls");
    }
}
