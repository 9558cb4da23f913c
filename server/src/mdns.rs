//! Advertising the server over mDNS as `_mcp-memory._tcp.local.`, so that the bridge and
//! other clients on the LAN find it without being told its address.
//!
//! [`Advertiser::start`] decides whether there is anything to advertise *before* it
//! creates an mdns-sd daemon, because a daemon joins the multicast group on every
//! interface the moment it starts: a server bound to loopback only must not create one
//! at all (see ARCHITECTURE.md). Once running, the daemon is told to ignore every
//! interface address the server does not listen on, so it neither announces nor answers
//! there.
//! Dropping the [`Advertiser`] withdraws the service with a goodbye packet.
//!
//! [`advertise`] is the server's entry point: it reads the settings, keeps the stable
//! instance id in the data directory, and logs rather than fails, because a server that
//! cannot advertise still serves by address.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use if_addrs::Interface;
use mdns_sd::{IfKind, IfPredicate, ServiceDaemon, ServiceInfo, UnregisterStatus};
use mnemo_certs::private_file;
use tracing::{debug, warn};

/// The DNS-SD service type Mnemo advertises and the bridge browses for.
pub use mnemo_api::mdns::SERVICE_TYPE;
use mnemo_api::mdns::txt;

/// `MCP_MDNS_SERVICE_NAME` when it is not set; the instance name adds the host name.
pub const DEFAULT_SERVICE_NAME: &str = "MCP Memory Service";

/// How long dropping an [`Advertiser`] waits for the goodbye to leave and the daemon
/// thread to stop. Both take milliseconds; the bound only matters if the daemon hangs.
const GOODBYE_WAIT: Duration = Duration::from_secs(1);

/// A DNS label holds at most 63 bytes; the instance name is one label.
const MAX_INSTANCE_BYTES: usize = 63;

/// What to advertise.
#[derive(Debug, Clone)]
pub struct Advertisement {
    /// `MCP_MDNS_SERVICE_NAME`; the instance is `"<service_name> (<hostname>)"`.
    pub service_name: String,
    pub port: u16,
    /// The address the server listens on: `0.0.0.0` or `::` means every interface.
    pub bound: IpAddr,
    pub https: bool,
    pub auth_required: bool,
    /// A stable id for this server, published as the `id` TXT record.
    pub instance_id: String,
    /// The server's pin (SHA-256 of its public key, `AB:CD:…`) when TLS is on.
    pub fingerprint: Option<String>,
}

/// A live mDNS registration. Dropping it sends the goodbye and stops the daemon,
/// blocking for at most about a second.
pub struct Advertiser {
    /// The handle to mdns-sd's daemon thread, which owns the sockets and answers queries
    /// for as long as it runs.
    daemon: ServiceDaemon,
    /// `<instance>._mcp-memory._tcp.local.`: what to unregister on drop.
    fullname: String,
    /// `<service name> (<hostname>)`.
    instance: String,
    /// The addresses advertised at start. The daemon follows later address changes on
    /// the same interfaces by itself.
    addresses: Vec<IpAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum MdnsError {
    #[error("cannot list the network interfaces: {0}")]
    Interfaces(#[source] std::io::Error),
    #[error("mDNS: {0}")]
    Daemon(#[from] mdns_sd::Error),
    #[error("cannot read or write the instance id at {}: {error}", path.display())]
    InstanceId {
        path: PathBuf,
        error: std::io::Error,
    },
}

impl Advertiser {
    /// Advertises `ad` on the addresses the server listens on. Returns `Ok(None)`, and
    /// creates no daemon, when `ad.bound` is loopback or no interface carries an
    /// address to advertise.
    pub fn start(ad: &Advertisement) -> Result<Option<Advertiser>, MdnsError> {
        if ad.bound.is_loopback() {
            return Ok(None);
        }
        let interfaces = if_addrs::get_if_addrs().map_err(MdnsError::Interfaces)?;
        let addresses = advertised_addresses(ad.bound, &interfaces);
        if addresses.is_empty() {
            return Ok(None);
        }

        let host = host_label();
        let instance = instance_name(&ad.service_name, &host);
        let info = ServiceInfo::new(
            SERVICE_TYPE,
            &instance,
            &format!("{host}.local."),
            (),
            ad.port,
            &txt_records(ad)[..],
        )?
        // The daemon fills in the addresses of the interfaces left enabled below, and
        // keeps them current when DHCP moves them.
        .enable_addr_auto();

        let advertiser = Advertiser {
            daemon: ServiceDaemon::new()?,
            fullname: info.get_fullname().to_owned(),
            instance,
            addresses,
        };
        // Commands run in order on the daemon thread, so the interfaces are narrowed
        // before the first announcement goes out. From here on an early return drops
        // `advertiser`, which stops the daemon.
        let bound = ad.bound;
        let others = IfPredicate::new(move |intf| !serves(bound, intf));
        advertiser
            .daemon
            .disable_interface(IfKind::Predicate(others))?;
        advertiser.daemon.register(info)?;
        debug!(instance = %advertiser.instance, addresses = ?advertiser.addresses, "mDNS registration sent");
        Ok(Some(advertiser))
    }

    /// `"<service name> (<hostname>)"`, as browsers show it.
    pub fn instance_name(&self) -> &str {
        &self.instance
    }

    /// The addresses advertised when the registration started.
    pub fn addresses(&self) -> &[IpAddr] {
        &self.addresses
    }
}

impl Drop for Advertiser {
    fn drop(&mut self) {
        let deadline = Instant::now() + GOODBYE_WAIT;
        // The daemon answers only after it has multicast the goodbye (TTL 0 records).
        match self.daemon.unregister(&self.fullname) {
            Ok(status) => match status.recv_deadline(deadline) {
                Ok(UnregisterStatus::OK) => debug!(instance = %self.instance, "mDNS goodbye sent"),
                Ok(UnregisterStatus::NotFound) => {
                    warn!(instance = %self.instance, "mDNS daemon had no registration to withdraw")
                }
                Err(e) => {
                    warn!(instance = %self.instance, error = %e, "no mDNS goodbye confirmation")
                }
            },
            Err(e) => {
                warn!(instance = %self.instance, error = %e, "cannot withdraw the mDNS registration")
            }
        }
        match self.daemon.shutdown() {
            Ok(status) => {
                if let Err(e) = status.recv_deadline(deadline) {
                    warn!(error = %e, "mDNS daemon did not confirm shutdown");
                }
            }
            Err(e) => debug!(error = %e, "mDNS daemon already stopped"),
        }
    }
}

/// A random id kept in `<data dir>/instance_id`, so the advertisement names the same
/// server across restarts.
pub fn instance_id(data_dir: &Path) -> Result<String, MdnsError> {
    let path = data_dir.join("instance_id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(MdnsError::InstanceId { path, error }),
    }
    let id = hex::encode(rand::random::<[u8; 16]>());
    private_file::write(&path, format!("{id}\n").as_bytes()).map_err(|e| {
        MdnsError::InstanceId {
            path: e.path,
            error: e.cause,
        }
    })?;
    Ok(id)
}

/// Whether a server bound to `bound` listens on `intf`'s address: every non-loopback
/// IPv4 address for `0.0.0.0`; for `::` (dual-stack) those plus every IPv6 address that
/// is not link-local, since a link-local address is useless in a URL without its zone;
/// otherwise exactly `bound`.
fn serves(bound: IpAddr, intf: &Interface) -> bool {
    if intf.is_loopback() {
        return false;
    }
    match (bound, intf.ip()) {
        (IpAddr::V4(any), ip) if any.is_unspecified() => ip.is_ipv4(),
        (IpAddr::V6(any), IpAddr::V6(ip)) if any.is_unspecified() => !ip.is_unicast_link_local(),
        (IpAddr::V6(any), IpAddr::V4(_)) if any.is_unspecified() => true,
        (bound, ip) => ip == bound,
    }
}

/// The addresses to advertise now, IPv4 first. Interfaces that are down or
/// point-to-point are skipped, as mdns-sd skips them.
fn advertised_addresses(bound: IpAddr, interfaces: &[Interface]) -> Vec<IpAddr> {
    let mut addresses: Vec<IpAddr> = interfaces
        .iter()
        .filter(|intf| intf.is_oper_up() && !intf.is_p2p() && serves(bound, intf))
        .map(Interface::ip)
        .collect();
    addresses.sort_by_key(|ip| (ip.is_ipv6(), *ip));
    addresses.dedup();
    addresses
}

/// The machine's host name up to its first dot, which names it in `.local.`.
fn host_label() -> String {
    let name = gethostname::gethostname().to_string_lossy().into_owned();
    match name.split('.').next().map(str::trim) {
        Some(label) if !label.is_empty() => label.to_owned(),
        _ => "mnemo".to_owned(),
    }
}

/// `"<service_name> (<host>)"`, shortening the service name if the whole would not fit
/// in one DNS label, so that the host part (what keeps two servers apart) survives.
fn instance_name(service_name: &str, host: &str) -> String {
    let suffix = format!(" ({host})");
    let room = MAX_INSTANCE_BYTES.saturating_sub(suffix.len());
    let name = format!("{}{suffix}", truncate(service_name.trim(), room));
    truncate(&name, MAX_INSTANCE_BYTES).to_owned()
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The TXT records ARCHITECTURE.md lists, with mcp-memory-service's spelling of booleans.
fn txt_records(ad: &Advertisement) -> Vec<(&'static str, String)> {
    let flag = |on: bool| if on { "True" } else { "False" }.to_owned();
    let mut records = vec![
        (txt::API_VERSION, "1".to_owned()),
        (txt::HTTPS, flag(ad.https)),
        (txt::AUTH_REQUIRED, flag(ad.auth_required)),
        (txt::API_PATH, "/api".to_owned()),
        (txt::SSE_PATH, "/api/events".to_owned()),
        (txt::DOCS_PATH, "/api/docs".to_owned()),
        (txt::MCP_PATH, "/mcp".to_owned()),
        (txt::ID, ad.instance_id.clone()),
    ];
    if let Some(fp) = &ad.fingerprint {
        records.push((txt::FINGERPRINT, fp.clone()));
    }
    records
}

// These tests never create a daemon: anything that multicasts runs only inside the
// network namespaces of `e2e/tests/mdns.rs`.
#[cfg(test)]
mod tests {
    use super::*;
    use if_addrs::{IfAddr, IfOperStatus, Ifv4Addr, Ifv6Addr};
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(name: &str, ip: [u8; 4], prefix: u8) -> Interface {
        let netmask = Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0));
        Interface {
            name: name.to_owned(),
            addr: IfAddr::V4(Ifv4Addr {
                ip: ip.into(),
                netmask,
                prefixlen: prefix,
                broadcast: None,
            }),
            index: Some(1),
            oper_status: IfOperStatus::Up,
            is_p2p: false,
        }
    }

    fn v6(name: &str, ip: &str) -> Interface {
        Interface {
            name: name.to_owned(),
            addr: IfAddr::V6(Ifv6Addr {
                ip: ip.parse().unwrap(),
                netmask: Ipv6Addr::from(u128::MAX << 64),
                prefixlen: 64,
                broadcast: None,
            }),
            index: Some(2),
            oper_status: IfOperStatus::Up,
            is_p2p: false,
        }
    }

    fn machine() -> Vec<Interface> {
        vec![
            v4("lo", [127, 0, 0, 1], 8),
            v6("lo", "::1"),
            v4("eth0", [192, 168, 1, 20], 24),
            v6("eth0", "fe80::1"),
            v6("eth0", "fd00::20"),
            v4("wlan0", [10, 0, 0, 5], 24),
        ]
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    /// `0.0.0.0` advertises every non-loopback IPv4 address and nothing over IPv6.
    #[test]
    fn ipv4_any_advertises_every_non_loopback_ipv4_address() {
        let got = advertised_addresses(Ipv4Addr::UNSPECIFIED.into(), &machine());
        assert_eq!(got, ips(&["10.0.0.5", "192.168.1.20"]));
    }

    /// `::` adds the routable IPv6 addresses, never a link-local one, IPv4 first.
    #[test]
    fn ipv6_any_adds_routable_ipv6_addresses_after_ipv4() {
        let got = advertised_addresses(Ipv6Addr::UNSPECIFIED.into(), &machine());
        assert_eq!(got, ips(&["10.0.0.5", "192.168.1.20", "fd00::20"]));
    }

    /// A specific bind address advertises exactly that address, or nothing if no
    /// interface has it; loopback is never advertised.
    #[test]
    fn a_specific_address_advertises_only_itself() {
        let got = advertised_addresses("192.168.1.20".parse().unwrap(), &machine());
        assert_eq!(got, ips(&["192.168.1.20"]));
        assert!(advertised_addresses("192.168.9.9".parse().unwrap(), &machine()).is_empty());
        assert!(advertised_addresses("127.0.0.1".parse().unwrap(), &machine()).is_empty());
    }

    /// Down and point-to-point interfaces are left out, as mdns-sd leaves them out.
    #[test]
    fn down_and_point_to_point_interfaces_are_skipped() {
        let mut down = v4("eth1", [192, 168, 2, 1], 24);
        down.oper_status = IfOperStatus::Down;
        let mut tunnel = v4("tun0", [10, 8, 0, 1], 24);
        tunnel.is_p2p = true;
        let got = advertised_addresses(Ipv4Addr::UNSPECIFIED.into(), &[down, tunnel]);
        assert!(got.is_empty());
    }

    /// A loopback bind has nothing to advertise, even on a machine whose only
    /// interface is loopback, so `start` returns before creating a daemon.
    #[test]
    fn loopback_binds_have_nothing_to_advertise() {
        for bound in ["127.0.0.1", "::1", "127.0.0.53", "0.0.0.0", "::"] {
            let only_lo = [v4("lo", [127, 0, 0, 1], 8), v6("lo", "::1")];
            let got = advertised_addresses(bound.parse().unwrap(), &only_lo);
            assert!(got.is_empty(), "{bound}: {got:?}");
        }
    }

    /// The TXT records are exactly those ARCHITECTURE.md lists, with `fp` only when TLS is on.
    #[test]
    fn txt_records_match_the_design() {
        let mut ad = Advertisement {
            service_name: "x".to_owned(),
            port: 8443,
            bound: Ipv4Addr::UNSPECIFIED.into(),
            https: false,
            auth_required: true,
            instance_id: "0a1b".to_owned(),
            fingerprint: None,
        };
        let records = |ad: &Advertisement| -> Vec<String> {
            txt_records(ad)
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect()
        };
        assert_eq!(
            records(&ad),
            [
                "api_version=1",
                "https=False",
                "auth_required=True",
                "api_path=/api",
                "sse_path=/api/events",
                "docs_path=/api/docs",
                "mcp_path=/mcp",
                "id=0a1b",
            ]
        );
        ad.https = true;
        ad.auth_required = false;
        ad.fingerprint = Some("AB:CD".to_owned());
        let with_tls = records(&ad);
        assert!(with_tls.contains(&"https=True".to_owned()));
        assert!(with_tls.contains(&"auth_required=False".to_owned()));
        assert_eq!(with_tls.last().unwrap(), "fp=AB:CD");
    }

    /// The instance name fits one DNS label and keeps the host part whole.
    #[test]
    fn instance_names_fit_one_label_and_keep_the_host() {
        assert_eq!(
            instance_name(DEFAULT_SERVICE_NAME, "nas"),
            "MCP Memory Service (nas)"
        );
        let long = instance_name(&"é".repeat(40), "kitchen-pc");
        assert!(long.len() <= MAX_INSTANCE_BYTES, "{}", long.len());
        assert!(long.ends_with(" (kitchen-pc)"), "{long}");
    }

    /// The instance id is made once, kept private in the data directory and read back
    /// on the next start; an empty file gets a fresh id.
    #[test]
    fn instance_id_is_stable_across_starts() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let id = instance_id(&data_dir).unwrap();
        assert_eq!(id.len(), 32);
        assert_eq!(instance_id(&data_dir).unwrap(), id);
        let path = data_dir.join("instance_id");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        std::fs::write(&path, "\n").unwrap();
        let fresh = instance_id(&data_dir).unwrap();
        assert_ne!(fresh, id);
        assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), fresh);
    }
}
