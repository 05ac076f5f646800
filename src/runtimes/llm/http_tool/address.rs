//! Which hosts and addresses an HTTP tool may reach.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

/// Host names a tool may name: exact names, or `*.example.com` for its subdomains.
#[derive(Clone, Debug)]
pub struct HostList(Vec<String>);

impl HostList {
    pub fn new(hosts: &[String]) -> Self {
        HostList(hosts.iter().map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase()).collect())
    }

    fn allows(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.0.iter().any(|allowed| match allowed.strip_prefix("*.") {
            Some(domain) => host.strip_suffix(domain).is_some_and(|sub| sub.ends_with('.') && sub.len() > 1),
            None => *allowed == host,
        })
    }
}

#[derive(Clone, Debug)]
pub struct AddressPolicy {
    pub hosts: HostList,
    pub allow_private: bool,
}

impl AddressPolicy {
    /// A resolver that drops the addresses this policy forbids, so a permitted name
    /// that resolves to the node's own network is refused when connecting.
    pub fn resolver(&self) -> PolicyResolver {
        PolicyResolver { allow_private: self.allow_private }
    }
}

/// Checks a URL before it is requested: scheme, host on the list, and (for an address
/// written in the URL, which no resolver sees) the address itself.
pub fn check_url(url: &Url, policy: &AddressPolicy) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("scheme '{}' is not http or https", url.scheme()));
    }
    let host = url.host_str().ok_or_else(|| format!("'{url}' names no host"))?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if !policy.hosts.allows(bare) {
        return Err(format!("host '{bare}' is not in the tool's allow_hosts"));
    }
    if let Ok(ip) = bare.parse::<IpAddr>() {
        if let Some(kind) = forbidden(ip).filter(|_| !policy.allow_private) {
            return Err(format!("{ip} is a {kind} address (set allow_private to permit it)"));
        }
    }
    Ok(())
}

/// What kind of address this is, when it is one a tool must not reach by default: the
/// node itself, its networks, or addresses that are not a single public host.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => forbidden_v4(v4),
            None => forbidden_v6(v6),
        },
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared (carrier-grade NAT)")
    } else if (a == 192 && b == 0 && ip.octets()[2] == 0) || (a == 198 && (18..20).contains(&b)) {
        Some("reserved (protocol assignments or benchmarking)")
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        Some("multicast or reserved")
    } else {
        None
    }
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    // Forms that carry an IPv4 address in their low 32 bits: IPv4-compatible (::/96) and
    // NAT64 (64:ff9b::/96, which a DNS64 resolver makes up for a private A record).
    if s[..6] == [0; 6] && !ip.is_loopback() && !ip.is_unspecified() || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let v4 = Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7]));
        return forbidden_v4(v4);
    }
    // Tunnels and translators whose far end cannot be checked here: local-use NAT64
    // (64:ff9b:1::/48), 6to4 (2002::/16) and Teredo (2001::/32); and site-local fec0::/10.
    if s[..3] == [0x64, 0xff9b, 1] || s[0] == 0x2002 || (s[0] == 0x2001 && s[1] == 0) {
        return Some("tunnelled or translated");
    }
    if s[0] & 0xffc0 == 0xfec0 {
        return Some("site-local");
    }
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if ip.is_unicast_link_local() {
        Some("link-local")
    } else if ip.is_unique_local() {
        Some("private (unique local)")
    } else if ip.is_multicast() {
        Some("multicast or reserved")
    } else {
        None
    }
}

/// Resolves with the system resolver, then keeps only permitted addresses.
pub struct PolicyResolver {
    allow_private: bool,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if allow_private {
                return Ok(Box::new(all.into_iter()) as Addrs);
            }
            let (allowed, refused): (Vec<_>, Vec<_>) =
                all.into_iter().partition(|a| forbidden(a.ip()).is_none());
            if allowed.is_empty() {
                let kinds: Vec<String> = refused
                    .iter()
                    .filter_map(|a| forbidden(a.ip()).map(|kind| format!("{} ({kind})", a.ip())))
                    .collect();
                let message = format!(
                    "{host} resolves only to addresses a tool may not reach: {} (set allow_private to permit them)",
                    kinds.join(", ")
                );
                return Err(message.into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_classified() {
        let kind = |s: &str| forbidden(s.parse().unwrap());
        assert_eq!(kind("127.0.0.1"), Some("loopback"));
        assert_eq!(kind("10.0.0.1"), Some("private"));
        assert_eq!(kind("172.16.5.4"), Some("private"));
        assert_eq!(kind("192.168.1.1"), Some("private"));
        assert_eq!(kind("169.254.169.254"), Some("link-local"));
        assert_eq!(kind("0.0.0.0"), Some("unspecified"));
        assert_eq!(kind("100.64.0.1"), Some("shared (carrier-grade NAT)"));
        assert_eq!(kind("224.0.0.1"), Some("multicast or reserved"));
        assert_eq!(kind("::1"), Some("loopback"));
        assert_eq!(kind("fe80::1"), Some("link-local"));
        assert_eq!(kind("fd00::1"), Some("private (unique local)"));
        assert_eq!(kind("::ffff:127.0.0.1"), Some("loopback"));
        assert_eq!(kind("::7f00:1"), Some("loopback"), "IPv4-compatible");
        assert_eq!(kind("64:ff9b::a00:1"), Some("private"), "NAT64 of 10.0.0.1");
        assert_eq!(kind("64:ff9b::5db8:d822"), None, "NAT64 of a public address");
        assert_eq!(kind("2002:7f00:1::"), Some("tunnelled or translated"));
        assert_eq!(kind("2001:0:4136:e378::1"), Some("tunnelled or translated"));
        assert_eq!(kind("fec0::1"), Some("site-local"));
        assert_eq!(kind("198.18.0.1"), Some("reserved (protocol assignments or benchmarking)"));
        assert_eq!(kind("93.184.216.34"), None);
        assert_eq!(kind("2606:4700::1111"), None);
    }

    #[test]
    fn host_lists_match_exact_names_and_subdomains() {
        let list = HostList::new(&["API.example.com".into(), "*.corp.example".into()]);
        assert!(list.allows("api.example.com"));
        assert!(list.allows("api.example.com."));
        assert!(!list.allows("example.com"));
        assert!(!list.allows("evilapi.example.com"));
        assert!(list.allows("x.corp.example"));
        assert!(list.allows("a.b.corp.example"));
        assert!(!list.allows("corp.example"));
        assert!(!list.allows("xcorp.example"));
    }

    #[tokio::test]
    async fn names_resolving_to_the_node_are_refused_when_connecting() {
        let strict = PolicyResolver { allow_private: false };
        let error = strict.resolve("localhost".parse().unwrap()).await.err().expect("refused");
        assert!(error.to_string().contains("loopback"), "{error}");
        let open = PolicyResolver { allow_private: true };
        let addrs: Vec<_> = open.resolve("localhost".parse().unwrap()).await.unwrap().collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
    }
}
