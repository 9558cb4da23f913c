//! The names and addresses a generated certificate must cover.
//!
//! The spec is compared with the SANs of the certificate on disk at every start, so it must
//! be canonical: lower-cased names, sorted and without duplicates. Otherwise two starts on the
//! same machine could disagree and replace a certificate, and with it every client's pin, for
//! no reason.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The names and addresses a generated certificate must cover.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertSpec {
    pub hostnames: Vec<String>,
    pub ips: Vec<IpAddr>,
}

impl CertSpec {
    /// localhost, the host name, `<hostname>.local`, 127.0.0.1, ::1, every local interface
    /// address (if-addrs), plus the extra hostnames/IPs (MCP_SSL_ADDITIONAL_HOSTNAMES/_IPS).
    /// Sorted and de-duplicated so that two calls on the same machine compare equal.
    ///
    /// When the host name is qualified (`box.example.com`), it, `box` and `box.local` are all
    /// covered, because mDNS advertises the first label only. Names are lower-cased; empty
    /// names and names with spaces or non-ASCII characters are left out, since a certificate
    /// cannot carry them and `gethostname` can return anything. If interfaces cannot be listed, only the loopback addresses are covered and
    /// a warning is logged.
    pub fn for_this_host(extra_hostnames: &[String], extra_ips: &[IpAddr]) -> Self {
        let mut hostnames = vec!["localhost".to_owned()];
        if let Some(host) = normalize(&gethostname::gethostname().to_string_lossy()) {
            let short = host.split('.').next().unwrap_or(&host).to_owned();
            hostnames.push(format!("{short}.local"));
            hostnames.push(short);
            hostnames.push(host);
        }
        hostnames.extend(extra_hostnames.iter().filter_map(|name| normalize(name)));

        let mut ips = vec![
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ];
        match if_addrs::get_if_addrs() {
            Ok(interfaces) => ips.extend(interfaces.iter().map(if_addrs::Interface::ip)),
            Err(error) => tracing::warn!(
                %error,
                "cannot list network interfaces; the certificate covers loopback and configured \
                 addresses only"
            ),
        }
        ips.extend_from_slice(extra_ips);

        Self::new(hostnames, ips)
    }

    /// Sorts and de-duplicates, so that specs built from the same names compare equal.
    pub fn new(mut hostnames: Vec<String>, mut ips: Vec<IpAddr>) -> Self {
        hostnames.sort();
        hostnames.dedup();
        ips.sort();
        ips.dedup();
        Self { hostnames, ips }
    }
}

/// DNS names are case-insensitive and a trailing dot means the same name; an empty or
/// non-ASCII name cannot go into a certificate.
fn normalize(name: &str) -> Option<String> {
    let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
    let usable = !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic());
    usable.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two calls on the same machine give equal specs, with the fixed names always present.
    #[test]
    fn stable_and_complete() {
        let extra = ["Mnemo.Example.".to_owned(), "mnemo.example".to_owned()];
        let extra_ips = ["192.0.2.7".parse().unwrap()];
        let a = CertSpec::for_this_host(&extra, &extra_ips);
        let b = CertSpec::for_this_host(&extra, &extra_ips);
        assert_eq!(a, b);
        for name in ["localhost", "mnemo.example"] {
            assert!(a.hostnames.iter().any(|h| h == name), "{name} in {a:?}");
        }
        assert_eq!(
            a.hostnames.iter().filter(|h| *h == "mnemo.example").count(),
            1
        );
        for ip in ["127.0.0.1", "::1", "192.0.2.7"] {
            assert!(a.ips.contains(&ip.parse().unwrap()), "{ip} in {a:?}");
        }
        assert!(a.hostnames.is_sorted() && a.ips.is_sorted());
    }

    /// Unusable names are dropped instead of failing certificate generation later.
    #[test]
    fn drops_unusable_names() {
        let spec = CertSpec::for_this_host(&[String::new(), "bad name".into(), "häus".into()], &[]);
        assert!(
            !spec
                .hostnames
                .iter()
                .any(|h| h.is_empty() || h.contains(' ') || !h.is_ascii())
        );
    }
}
