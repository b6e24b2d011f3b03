//! Requests the chat service makes to URLs its users name (a bot's `interactions_url`).
//!
//! Such a URL must never let a user reach what only the server can: loopback, private
//! networks, link-local addresses (the cloud metadata service at 169.254.169.254
//! among them). The rule is applied to the address actually connected to, not only to
//! the URL's text: a literal IP in the URL is checked when the URL is stored and again
//! before each request, and a host name is resolved by [`GuardedResolver`], which drops
//! every forbidden address it resolves to. Redirects are never followed, and no proxy
//! from the environment is used (it would resolve names where this check cannot see).
//! The operator may allow ranges (`PARLOR_OUTGOING_ALLOW`), for bots in development.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::error::ChatError;
use crate::service::auth::Cidr;

/// Which addresses outgoing requests may reach.
#[derive(Debug, Clone, Default)]
pub struct OutgoingPolicy {
    /// Ranges allowed although internal.
    pub allow: Vec<Cidr>,
}

/// The IPv4 address an IPv6 address carries, if it is a mapped, compatible or NAT64 one.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    // 64:ff9b::/96 (NAT64) and the deprecated IPv4-compatible ::a.b.c.d.
    let nat64 = s[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    let compatible = s[..6] == [0; 6] && u32::from(tail) > 1;
    (nat64 || compatible).then_some(tail)
}

/// Whether an address belongs to this host or a network only the server should reach:
/// unspecified, loopback, private (RFC 1918, IPv6 unique-local), link-local (the metadata
/// service included), carrier-grade NAT, benchmarking, IETF protocol assignments,
/// multicast, reserved and broadcast.
pub fn is_internal(ip: IpAddr) -> bool {
    let v4 = match ip {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => v4,
            None => {
                let first = v6.segments()[0];
                return v6.is_unspecified()
                    || v6.is_loopback()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                    || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                    || (first & 0xffc0) == 0xfec0; // site-local fec0::/10 (deprecated)
            }
        },
    };
    let [a, b, c, _] = v4.octets();
    a == 0
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b))
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 168)
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (18..20).contains(&b))
        || a >= 224
}

impl OutgoingPolicy {
    /// `PARLOR_OUTGOING_ALLOW`: comma-separated addresses or CIDR blocks.
    pub fn parse_allow(list: &str) -> Result<Vec<Cidr>, String> {
        Cidr::parse_list(list)
    }

    pub fn permits(&self, ip: IpAddr) -> bool {
        !is_internal(ip) || self.allow.iter().any(|c| c.contains(ip))
    }

    /// Checks a URL a user wants the server to call: `http(s)`, at most 2048 bytes, and
    /// no literal address the policy forbids. Host names are checked when connecting.
    pub fn check_url(&self, url: &str) -> Result<Url, ChatError> {
        let parsed = Url::parse(url)
            .ok()
            .filter(|u| {
                matches!(u.scheme(), "http" | "https") && u.host().is_some() && url.len() <= 2048
            })
            .ok_or_else(|| {
                ChatError::bad_request(
                    "invalid_url",
                    "interactions_url is an http(s) URL of at most 2048 bytes",
                )
            })?;
        if let Some(ip) = literal_ip(&parsed)
            && !self.permits(ip)
        {
            return Err(ChatError::bad_request(
                "forbidden_url",
                format!(
                    "{ip} is a loopback, private, link-local or otherwise internal address; \
                     the operator can allow it with PARLOR_OUTGOING_ALLOW"
                ),
            ));
        }
        Ok(parsed)
    }

    /// An HTTP client whose connections go only to addresses this policy permits.
    pub fn client(&self, timeout: Duration) -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver {
                policy: self.clone(),
            }))
            .build()
            .unwrap_or_default()
    }
}

/// The address a URL's host spells, if it is an IP literal (in any spelling the URL
/// parser accepts: `0x7f.1` and `2130706433` are 127.0.0.1).
pub fn literal_ip(url: &Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// Resolves host names with the system resolver and keeps only the addresses the
/// policy permits; a name left with none fails to resolve.
#[derive(Debug)]
pub struct GuardedResolver {
    policy: OutgoingPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| policy.permits(a.ip()))
                .collect();
            if kept.is_empty() {
                return Err(format!(
                    "{host} resolves only to addresses outgoing requests may not reach ({found:?})"
                )
                .into());
            }
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn internal(s: &str) -> bool {
        is_internal(s.parse().unwrap())
    }

    #[test]
    fn internal_ranges() {
        for ip in [
            "127.0.0.1",
            "127.255.0.9",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::7f00:1",
            "::127.0.0.1",
            "ff02::1",
        ] {
            assert!(internal(ip), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "1.1.1.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!internal(ip), "{ip}");
        }
    }

    #[test]
    fn the_allow_list_opens_ranges() {
        let p = OutgoingPolicy {
            allow: OutgoingPolicy::parse_allow("127.0.0.1, 10.0.0.0/8").unwrap(),
        };
        assert!(p.permits("127.0.0.1".parse().unwrap()));
        assert!(p.permits("10.9.8.7".parse().unwrap()));
        assert!(!p.permits("127.0.0.2".parse().unwrap()));
        assert!(!p.permits("169.254.169.254".parse().unwrap()));
        assert!(OutgoingPolicy::parse_allow("nope").is_err());
    }

    #[test]
    fn urls_are_checked_by_the_address_they_spell() {
        let p = OutgoingPolicy::default();
        let code = |u: &str| p.check_url(u).err().map(|e| e.code().to_owned());
        assert_eq!(code("https://bot.example/i"), None);
        assert_eq!(code("ftp://bot.example/"), Some("invalid_url".into()));
        assert_eq!(code("not a url"), Some("invalid_url".into()));
        // Other spellings of 127.0.0.1 parse to the same address.
        for u in [
            "http://127.0.0.1/",
            "http://0x7f.1/",
            "http://2130706433/",
            "http://017700000001/",
            "http://[::ffff:7f00:1]/",
        ] {
            assert_eq!(code(u), Some("forbidden_url".into()), "{u}");
        }
    }
}
