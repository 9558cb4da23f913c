//! Whose request this is: the address that failed-key limits count and logs name.
//!
//! It is the peer of the connection, unless that peer is a trusted reverse proxy
//! (`MNEMO_TRUSTED_PROXIES`). Then `X-Forwarded-For` is read from the right, the end
//! the proxies append to, skipping every trusted hop: the first address that is not
//! a trusted proxy is the client. Entries to its left were written by the client
//! itself and prove nothing, so a client cannot pick the address it is limited
//! under. With no trusted proxies (the default) the header is never read.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

/// The client's address, in every request's extensions once [`resolve`] ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// The address [`resolve`] left in the request; "unspecified" outside a server
    /// (a test's `oneshot`).
    pub fn of(extensions: &axum::http::Extensions) -> IpAddr {
        extensions
            .get::<ClientIp>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0)
    }
}

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self(networks)
    }

    fn trusts(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.0.iter().any(|net| net.contains(&address))
    }

    /// The client behind `peer`, given the request's headers.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .collect();
        for hop in hops.iter().rev() {
            match parse_hop(hop) {
                Some(address) => {
                    client = address;
                    if !self.trusts(address) {
                        break;
                    }
                }
                // Garbage is no address: the last trusted hop is the best we know.
                None => break,
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, maybe with a port (`1.2.3.4:5`,
/// `[::1]:5`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(canonical)
}

/// An IPv4 address seen through an IPv6 socket (`::ffff:1.2.3.4`) as IPv4, so one
/// client is one key whichever way it arrived.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

/// Middleware: records the request's [`ClientIp`].
pub async fn resolve(
    State(proxies): State<Arc<TrustedProxies>>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let client = proxies.client(peer, request.headers());
    request.extensions_mut().insert(ClientIp(client));
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append("x-forwarded-for", value.parse().unwrap());
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// Without trusted proxies the header is ignored; from a trusted peer, the
    /// rightmost untrusted hop is the client, whatever the client wrote to its left.
    #[test]
    fn rightmost_untrusted_hop_is_the_client() {
        let none = TrustedProxies::default();
        let spoofed = headers(&["9.9.9.9"]);
        assert_eq!(none.client(ip("127.0.0.1"), &spoofed), ip("127.0.0.1"));

        let proxies = TrustedProxies::new(vec![
            "127.0.0.1/32".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ]);
        // An untrusted peer's header is ignored.
        assert_eq!(proxies.client(ip("192.0.2.7"), &spoofed), ip("192.0.2.7"));
        // nginx appended the real client after the one the client made up.
        let forwarded = headers(&["9.9.9.9, 198.51.100.4"]);
        assert_eq!(
            proxies.client(ip("127.0.0.1"), &forwarded),
            ip("198.51.100.4")
        );
        // Two proxies, the header split across two lines, a port on one hop.
        let chained = headers(&["9.9.9.9", "198.51.100.4:5555, 10.1.2.3"]);
        assert_eq!(
            proxies.client(ip("127.0.0.1"), &chained),
            ip("198.51.100.4")
        );
        // No header, or garbage: the proxy itself, or the last trusted hop.
        assert_eq!(
            proxies.client(ip("127.0.0.1"), &HeaderMap::new()),
            ip("127.0.0.1")
        );
        let garbage = headers(&["1.2.3.4, junk, 10.0.0.9"]);
        assert_eq!(proxies.client(ip("127.0.0.1"), &garbage), ip("10.0.0.9"));
        // A mapped IPv4 peer is trusted as its IPv4 address.
        assert_eq!(
            proxies.client(ip("::ffff:127.0.0.1"), &forwarded),
            ip("198.51.100.4")
        );
    }
}
