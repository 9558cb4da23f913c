//! Finding Mnemo servers on the LAN by browsing mDNS for `_mcp-memory._tcp.local.`.
//!
//! Each browse creates its own mdns-sd daemon and stops it before returning, so the
//! bridge holds no multicast sockets between discoveries. A [`Browser`] reports each
//! resolution and each goodbye as it arrives (what a watcher needs); [`discover`]
//! collects a fixed window of them into a list of [`Candidate`]s (what endpoint
//! selection needs, since it cannot know when the last server has answered).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use mdns_sd::{Receiver, ResolvedService, ServiceDaemon, ServiceEvent};

/// The DNS-SD service type Mnemo servers advertise.
pub use mnemo_api::mdns::SERVICE_TYPE;

/// How long closing a [`Browser`] waits for its daemon thread to confirm it stopped.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(1);

/// One advertised server.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The instance name, e.g. `"MCP Memory Service (nas)"`.
    pub instance: String,
    /// The SRV target, e.g. `"nas.local."`.
    pub host: String,
    pub port: u16,
    /// Every advertised address, IPv4 first.
    pub addresses: Vec<IpAddr>,
    /// The TXT records; a key without a value maps to `""`.
    pub txt: BTreeMap<String, String>,
    /// `https://IP:port` or `http://IP:port` per the `https` TXT record, on the first
    /// IPv4 address (else the first routable IPv6 one).
    pub url: String,
}

impl Candidate {
    /// A candidate from its advertised parts; sorts the addresses and derives the URL.
    pub fn new(
        instance: String,
        host: String,
        port: u16,
        mut addresses: Vec<IpAddr>,
        txt: BTreeMap<String, String>,
    ) -> Candidate {
        addresses.sort_by_key(|ip| (ip.is_ipv6(), *ip));
        addresses.dedup();
        let https = txt
            .get(mnemo_api::mdns::txt::HTTPS)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let scheme = if https { "https" } else { "http" };
        // A link-local IPv6 address needs its zone to be reachable, which URLs cannot
        // carry portably; use one only when nothing else was advertised.
        let usable = |ip: &&IpAddr| match ip {
            IpAddr::V4(_) => true,
            IpAddr::V6(v6) => !v6.is_unicast_link_local(),
        };
        let url = match addresses.iter().find(usable).or(addresses.first()) {
            Some(IpAddr::V4(ip)) => format!("{scheme}://{ip}:{port}"),
            Some(IpAddr::V6(ip)) => format!("{scheme}://[{ip}]:{port}"),
            None => String::new(),
        };
        Candidate {
            instance,
            host,
            port,
            addresses,
            txt,
            url,
        }
    }

    /// A candidate from mdns-sd's resolution, or `None` when it carries no address.
    fn from_resolved(service: &ResolvedService) -> Option<Candidate> {
        if service.addresses.is_empty() {
            return None;
        }
        let txt = service
            .txt_properties
            .iter()
            .map(|p| (p.key().to_owned(), p.val_str().to_owned()))
            .collect();
        Some(Candidate::new(
            instance_label(&service.fullname).to_owned(),
            service.host.clone(),
            service.port,
            service.addresses.iter().map(|a| a.to_ip_addr()).collect(),
            txt,
        ))
    }
}

/// What a [`Browser`] saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Sighting {
    /// A server was resolved, or its records changed.
    Resolved(Candidate),
    /// A server withdrew (its goodbye) or its records expired.
    Removed { instance: String },
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("mDNS: {0}")]
    Mdns(#[from] mdns_sd::Error),
}

/// A running browse for [`SERVICE_TYPE`] with its own mdns-sd daemon. Prefer
/// [`Browser::close`], which waits for the daemon to stop; dropping it only asks.
pub struct Browser {
    /// The daemon thread that sends the queries and owns the sockets.
    daemon: ServiceDaemon,
    /// Its events for our service type, in arrival order.
    events: Receiver<ServiceEvent>,
    /// Set by `close`, so that `Drop` does not ask a second time.
    closed: bool,
}

impl Browser {
    /// Starts a daemon and browses on every interface it can use.
    pub fn start() -> Result<Browser, DiscoveryError> {
        let daemon = ServiceDaemon::new()?;
        let events = match daemon.browse(SERVICE_TYPE) {
            Ok(events) => events,
            Err(e) => {
                let _ = daemon.shutdown();
                return Err(e.into());
            }
        };
        Ok(Browser {
            daemon,
            events,
            closed: false,
        })
    }

    /// Waits for the next resolution or removal; `None` once the browse has stopped.
    pub async fn next(&mut self) -> Option<Sighting> {
        loop {
            match self.events.recv_async().await.ok()? {
                ServiceEvent::ServiceResolved(service) => {
                    if let Some(candidate) = Candidate::from_resolved(&service) {
                        return Some(Sighting::Resolved(candidate));
                    }
                }
                ServiceEvent::ServiceRemoved(_, fullname) => {
                    let instance = instance_label(&fullname).to_owned();
                    return Some(Sighting::Removed { instance });
                }
                ServiceEvent::SearchStopped(_) => return None,
                _ => {}
            }
        }
    }

    /// Stops the daemon and waits (at most about a second) until it has.
    pub async fn close(mut self) {
        self.closed = true;
        if let Ok(status) = self.daemon.shutdown() {
            let _ = tokio::time::timeout(SHUTDOWN_WAIT, status.recv_async()).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.closed {
            let _ = self.daemon.shutdown();
        }
    }
}

/// Browses for up to `timeout` and returns every server resolved and not withdrawn,
/// one per instance name (the latest records win), sorted by instance name. Once a
/// server for which `wanted` holds has answered, the browse ends after `quiet` without
/// news: servers on one LAN answer within moments of each other, so the full window is
/// only paid when no wanted server answers. (A stranger that answers at once must not
/// end the browse before a trusted server's answer, which can take a second.)
pub async fn discover(
    timeout: Duration,
    quiet: Duration,
    wanted: impl Fn(&Candidate) -> bool,
) -> Result<Vec<Candidate>, DiscoveryError> {
    let mut browser = Browser::start()?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut found = BTreeMap::new();
    loop {
        let until = match found.values().any(&wanted) {
            false => deadline,
            true => deadline.min(tokio::time::Instant::now() + quiet),
        };
        let Ok(Some(sighting)) = tokio::time::timeout_at(until, browser.next()).await else {
            break;
        };
        match sighting {
            Sighting::Resolved(candidate) => {
                found.insert(candidate.instance.clone(), candidate);
            }
            Sighting::Removed { instance } => {
                found.remove(&instance);
            }
        }
    }
    browser.close().await;
    Ok(found.into_values().collect())
}

/// The instance part of `"<instance>._mcp-memory._tcp.local."`. mdns-sd hands names
/// over with dots inside labels unescaped, so only the known suffix can be cut.
fn instance_label(fullname: &str) -> &str {
    fullname
        .strip_suffix(SERVICE_TYPE)
        .and_then(|rest| rest.strip_suffix('.'))
        .unwrap_or(fullname)
}

// No test here browses: multicast runs only inside the network namespaces of
// `e2e/tests/mdns.rs`, which drives this module through `mnemo-discover`.
#[cfg(test)]
mod tests {
    use super::*;

    fn txt(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    /// The URL's scheme follows the `https` record, case-insensitively.
    #[test]
    fn the_scheme_follows_the_https_record() {
        let make = |https: &str| {
            Candidate::new(
                "a".into(),
                "h.local.".into(),
                8443,
                ips(&["10.0.0.2"]),
                txt(&[("https", https)]),
            )
            .url
        };
        assert_eq!(make("True"), "https://10.0.0.2:8443");
        assert_eq!(make("true"), "https://10.0.0.2:8443");
        assert_eq!(make("False"), "http://10.0.0.2:8443");
        let none = Candidate::new("a".into(), "h".into(), 80, ips(&["10.0.0.2"]), txt(&[]));
        assert_eq!(none.url, "http://10.0.0.2:80");
    }

    /// IPv4 comes first; IPv6 is bracketed; link-local IPv6 is a last resort.
    #[test]
    fn the_url_prefers_ipv4_then_routable_ipv6() {
        let c = Candidate::new(
            "a".into(),
            "h".into(),
            8000,
            ips(&["fd00::5", "fe80::1", "192.168.1.9", "192.168.1.9"]),
            txt(&[]),
        );
        assert_eq!(c.addresses, ips(&["192.168.1.9", "fd00::5", "fe80::1"]));
        assert_eq!(c.url, "http://192.168.1.9:8000");
        let v6 = Candidate::new(
            "a".into(),
            "h".into(),
            80,
            ips(&["fe80::1", "fd00::5"]),
            txt(&[]),
        );
        assert_eq!(v6.url, "http://[fd00::5]:80");
        let ll = Candidate::new("a".into(), "h".into(), 80, ips(&["fe80::1"]), txt(&[]));
        assert_eq!(ll.url, "http://[fe80::1]:80");
    }

    /// The instance name is the full name minus the service type, dots and all.
    #[test]
    fn instance_labels_keep_inner_dots() {
        assert_eq!(
            instance_label("MCP Memory Service (nas)._mcp-memory._tcp.local."),
            "MCP Memory Service (nas)"
        );
        assert_eq!(
            instance_label("Mnemo v1.2 (a.b)._mcp-memory._tcp.local."),
            "Mnemo v1.2 (a.b)"
        );
        assert_eq!(
            instance_label("other._http._tcp.local."),
            "other._http._tcp.local."
        );
    }
}
