//! Which server the bridge talks to, and how it trusts it (ARCHITECTURE.md, "MCP").
//!
//! An explicit URL wins. Otherwise the bridge browses mDNS, judges every candidate
//! (pin, then health) and picks by: HTTPS when preferred, then healthy, then lowest
//! latency. HTTPS endpoints are reached with a client that trusts exactly one
//! certificate fingerprint: the configured one, or the one pinned on first use.

use std::time::{Duration, Instant};

use mnemo_api::health::{Health, HealthStatus};
use mnemo_api::mdns::txt;
use mnemo_certs::{Fingerprint, pinned_client_config};
use mnemo_mcp::ops::{OpsError, OpsErrorKind};

use crate::config::Config;
use crate::discovery::{self, Candidate};
use crate::pins::{PinFile, PinStatus};

/// How long a candidate's health check may take.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
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
    /// The trusted certificate, for HTTPS.
    pub fingerprint: Option<Fingerprint>,
}

/// How one candidate was judged.
#[derive(Debug, Clone)]
pub enum Verdict {
    Healthy {
        latency: Duration,
    },
    /// It answered, but not healthy (still loading), or did not answer at all.
    Unhealthy {
        reason: String,
    },
    /// Not trusted: its fingerprint contradicts a pin, or it has none.
    Refused {
        reason: String,
    },
}

/// A candidate with its verdict and the pin status that went into it.
#[derive(Debug, Clone)]
pub struct Judged {
    pub instance: String,
    pub url: String,
    pub https: bool,
    pub fingerprint: Option<Fingerprint>,
    pub pin: Option<PinStatus>,
    pub verdict: Verdict,
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
    auto_discover: bool,
    discovery_timeout: Duration,
    prefer_https: bool,
    pins: PinFile,
}

impl Resolver {
    pub fn new(config: &Config) -> Self {
        Self {
            server_url: config.server_url.clone(),
            fingerprint: config.cert_fingerprint,
            auto_discover: config.auto_discover,
            discovery_timeout: config.discovery_timeout(),
            prefer_https: config.prefer_https,
            pins: PinFile::new(config.pin_file()),
        }
    }

    /// The endpoint to use now.
    pub async fn resolve(&self) -> Result<Endpoint, OpsError> {
        self.report().await.choice
    }

    /// Chooses an endpoint and records why.
    pub async fn report(&self) -> Report {
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
        self.discovered().await
    }

    async fn explicit(&self, url: &str) -> Report {
        let url = url.trim_end_matches('/').to_owned();
        let method = format!("explicit URL {url} (MCP_MEMORY_HTTP_ENDPOINT / --server-url)");
        let https = url.starts_with("https://");
        if !https && !url.starts_with("http://") {
            let error = OpsError::new(
                OpsErrorKind::Invalid,
                format!("the server URL {url:?} must start with http:// or https://"),
            );
            return Report {
                method,
                candidates: Vec::new(),
                choice: Err(error),
            };
        }
        if https && self.fingerprint.is_none() {
            let error = unreachable(format!(
                "{url} is HTTPS but no certificate fingerprint is configured: set \
                 MCP_MEMORY_CERT_FINGERPRINT to the fingerprint the server logs at start \
                 (or leave the URL unset to discover the server and pin it on first use)"
            ));
            return Report {
                method,
                candidates: Vec::new(),
                choice: Err(error),
            };
        }
        let endpoint = match client(self.fingerprint.filter(|_| https)) {
            Ok(http) => Endpoint {
                url: url.clone(),
                http,
                instance: None,
                fingerprint: self.fingerprint.filter(|_| https),
            },
            Err(e) => {
                return Report {
                    method,
                    candidates: Vec::new(),
                    choice: Err(e),
                };
            }
        };
        let verdict = health(&endpoint).await;
        let judged = Judged {
            instance: "(explicit)".into(),
            url,
            https,
            fingerprint: endpoint.fingerprint,
            pin: None,
            verdict,
        };
        // An explicit endpoint is used even when it is down now: it may come back, and
        // each call reports its own failure.
        Report {
            method,
            candidates: vec![judged],
            choice: Ok(endpoint),
        }
    }

    async fn discovered(&self) -> Report {
        let method = format!(
            "mDNS discovery of {} for up to {:.1} s",
            discovery::SERVICE_TYPE,
            self.discovery_timeout.as_secs_f64()
        );
        let found = match discovery::discover(self.discovery_timeout, DISCOVERY_QUIET).await {
            Ok(found) => found,
            Err(e) => {
                return Report {
                    method,
                    candidates: Vec::new(),
                    choice: Err(unreachable(format!("cannot browse mDNS: {e}"))),
                };
            }
        };
        let mut judged = Vec::with_capacity(found.len());
        let mut endpoints = Vec::new();
        for candidate in found {
            let (verdict, pin, endpoint) = self.judge(&candidate).await;
            // A refused candidate has no endpoint; an unhealthy one is kept as a last
            // resort, since a server that is still loading is worth waiting for.
            if let Some(endpoint) = endpoint {
                endpoints.push((judged.len(), endpoint));
            }
            judged.push(Judged {
                instance: candidate.instance.clone(),
                https: candidate.url.starts_with("https://"),
                fingerprint: advertised_fingerprint(&candidate),
                url: candidate.url,
                pin,
                verdict,
            });
        }
        endpoints.sort_by_key(|(i, _)| judged[*i].rank(self.prefer_https));
        let choice = match endpoints.into_iter().next() {
            Some((i, endpoint)) => self.pin_on_first_use(&judged[i], endpoint),
            None if judged.is_empty() => Err(unreachable(format!(
                "no Mnemo server answered mDNS within {:.1} s; is one running with mDNS on, \
                 on this LAN? Or set MCP_MEMORY_HTTP_ENDPOINT",
                self.discovery_timeout.as_secs_f64()
            ))),
            None => Err(unreachable(format!(
                "no usable Mnemo server among those discovered: {}",
                judged
                    .iter()
                    .map(|j| format!("{} ({})", j.instance, j.verdict.describe()))
                    .collect::<Vec<_>>()
                    .join("; ")
            ))),
        };
        Report {
            method,
            candidates: judged,
            choice,
        }
    }

    /// Trust first (the pin), then health.
    async fn judge(&self, candidate: &Candidate) -> (Verdict, Option<PinStatus>, Option<Endpoint>) {
        let refused = |reason: String| (Verdict::Refused { reason }, None, None);
        let https = candidate.url.starts_with("https://");
        let mut pin_status = None;
        let trusted = if https {
            let Some(advertised) = advertised_fingerprint(candidate) else {
                return refused(
                    "it serves HTTPS but publishes no certificate fingerprint (TXT fp)".into(),
                );
            };
            match self.fingerprint {
                Some(configured) if configured != advertised => {
                    return refused(format!(
                        "its certificate {advertised} is not MCP_MEMORY_CERT_FINGERPRINT {configured}"
                    ));
                }
                Some(configured) => Some(configured),
                None => match self.pins.status(&candidate.instance, &advertised) {
                    Err(e) => return refused(e.to_string()),
                    Ok(PinStatus::Mismatch { pinned }) => {
                        let reason = format!(
                            "its certificate {advertised} differs from the one pinned for \"{}\" \
                             on first use ({pinned}). If that server's certificate was \
                             regenerated, remove its entry from {} (or set \
                             MCP_MEMORY_CERT_FINGERPRINT) to pin the new one; otherwise \
                             another machine is posing as it",
                            candidate.instance,
                            self.pins.path().display()
                        );
                        return (
                            Verdict::Refused { reason },
                            Some(PinStatus::Mismatch { pinned }),
                            None,
                        );
                    }
                    Ok(status) => {
                        pin_status = Some(status);
                        Some(advertised)
                    }
                },
            }
        } else {
            None
        };
        let endpoint = match client(trusted) {
            Ok(http) => Endpoint {
                url: candidate.url.clone(),
                http,
                instance: Some(candidate.instance.clone()),
                fingerprint: trusted,
            },
            Err(e) => return refused(e.message),
        };
        let verdict = health(&endpoint).await;
        (verdict, pin_status, Some(endpoint))
    }

    fn pin_on_first_use(&self, judged: &Judged, endpoint: Endpoint) -> Result<Endpoint, OpsError> {
        if let (Some(PinStatus::New), Some(fp)) = (&judged.pin, &endpoint.fingerprint) {
            self.pins
                .pin_if_new(&judged.instance, fp, &endpoint.url)
                .map_err(|e| OpsError::new(OpsErrorKind::Internal, e.to_string()))?;
            tracing::info!(instance = %judged.instance, fingerprint = %fp, pins = %self.pins.path().display(), "pinned the server's certificate on first use");
        }
        Ok(endpoint)
    }
}

impl Judged {
    /// Lower is better: HTTPS first when preferred, then healthy, then latency.
    fn rank(&self, prefer_https: bool) -> (bool, bool, Duration) {
        let (healthy, latency) = match self.verdict {
            Verdict::Healthy { latency } => (true, latency),
            _ => (false, Duration::MAX),
        };
        (prefer_https && !self.https, !healthy, latency)
    }
}

impl Verdict {
    pub fn describe(&self) -> String {
        match self {
            Self::Healthy { latency } => format!("healthy, {:.1} ms", latency.as_secs_f64() * 1e3),
            Self::Unhealthy { reason } => format!("unhealthy: {reason}"),
            Self::Refused { reason } => format!("refused: {reason}"),
        }
    }
}

fn advertised_fingerprint(candidate: &Candidate) -> Option<Fingerprint> {
    candidate.txt.get(txt::FINGERPRINT)?.parse().ok()
}

/// An HTTP client that trusts exactly `pin` for HTTPS (or plain HTTP without one).
fn client(pin: Option<Fingerprint>) -> Result<reqwest::Client, OpsError> {
    let mut builder = reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT);
    if let Some(pin) = pin {
        let mut tls = pinned_client_config(pin);
        // HTTP/1.1 only: the bridge's reqwest has no HTTP/2, and whether hyper-util
        // has it depends on which other crates share the build (the server's do).
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        builder = builder.use_preconfigured_tls(tls);
    }
    builder
        .build()
        .map_err(|e| OpsError::new(OpsErrorKind::Internal, format!("HTTP client: {e}")))
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
            return Verdict::Unhealthy {
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
        Ok(_) => Verdict::Unhealthy {
            reason: "still loading its model and database".into(),
        },
        Err(_) => Verdict::Unhealthy {
            reason: "it does not answer /api/health like a Mnemo server".into(),
        },
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(name: &str, https: bool, verdict: Verdict) -> Judged {
        Judged {
            instance: name.into(),
            url: String::new(),
            https,
            fingerprint: None,
            pin: None,
            verdict,
        }
    }

    fn healthy(ms: u64) -> Verdict {
        Verdict::Healthy {
            latency: Duration::from_millis(ms),
        }
    }

    /// HTTPS when preferred, then healthy, then lowest latency.
    #[test]
    fn candidates_rank_by_https_then_health_then_latency() {
        let loading = Verdict::Unhealthy {
            reason: "loading".into(),
        };
        let list = [
            judged("slow plain", false, healthy(9)),
            judged("fast plain", false, healthy(1)),
            judged("loading tls", true, loading),
            judged("slow tls", true, healthy(30)),
            judged("fast tls", true, healthy(5)),
        ];
        let order = |prefer_https| {
            let mut names: Vec<&Judged> = list.iter().collect();
            names.sort_by_key(|j| j.rank(prefer_https));
            names
                .iter()
                .map(|j| j.instance.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            order(true),
            [
                "fast tls",
                "slow tls",
                "loading tls",
                "fast plain",
                "slow plain"
            ]
        );
        assert_eq!(
            order(false),
            [
                "fast plain",
                "fast tls",
                "slow plain",
                "slow tls",
                "loading tls"
            ]
        );
    }
}
