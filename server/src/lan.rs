//! The line `--lan` prints for the bridge's configuration. What remains of the server's
//! face to the network once TLS moved to [`crate::tls`] and mDNS to [`crate::mdns`]; it
//! belongs with startup, where it is printed.

use std::net::{IpAddr, SocketAddr};

/// The one line a user pastes into the bridge's configuration (never the key).
pub fn bridge_line(addr: SocketAddr, https: bool, fingerprint: Option<&str>) -> String {
    let scheme = if https { "https" } else { "http" };
    let host = if addr.ip().is_unspecified() {
        local_address().map_or_else(
            || "<this machine's address>".to_owned(),
            |ip| ip.to_string(),
        )
    } else {
        addr.ip().to_string()
    };
    let mut line = format!("MCP_MEMORY_HTTP_ENDPOINT={scheme}://{host}:{}", addr.port());
    if let Some(fp) = fingerprint {
        line.push_str(&format!(" MCP_MEMORY_CERT_FINGERPRINT={fp}"));
    }
    line
}

/// The first non-loopback IPv4 address of this machine.
fn local_address() -> Option<IpAddr> {
    if_addrs::get_if_addrs()
        .ok()?
        .into_iter()
        .map(|i| i.ip())
        .find(|ip| ip.is_ipv4() && !ip.is_loopback())
}
