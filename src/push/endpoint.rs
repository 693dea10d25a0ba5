//! Where a push may be sent. A subscription's endpoint is a URL the browser hands us,
//! so it is untrusted: without checks, anyone signed in could make the server POST to
//! its own network (request forgery). An endpoint must be `https://` on a public
//! address; `--push-allow-loopback` also admits `http://127.0.0.1:PORT/…` for tests.
//!
//! The check happens twice: when the subscription is stored (the URL's shape and an
//! address literal), and when sending, inside the HTTP client's resolver
//! (`PublicOnly`), which returns only public addresses. The client connects to exactly
//! what the resolver returned, so a name that answers differently later (DNS
//! rebinding) cannot slip a private address in between the check and the connection.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Longest endpoint accepted (real ones are a few hundred characters).
const MAX_LEN: usize = 2_048;

/// The endpoint parsed and checked for its shape, or why it is refused.
pub fn parse(endpoint: &str, allow_loopback: bool) -> Result<Url, &'static str> {
    if endpoint.len() > MAX_LEN {
        return Err("The push endpoint is too long.");
    }
    let url = Url::parse(endpoint).map_err(|_| "The push endpoint is not a URL.")?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("The push endpoint must not carry a user name or password.");
    }
    let Some(host) = url.host() else {
        return Err("The push endpoint has no host.");
    };
    let literal: Option<IpAddr> = match host {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    };
    match url.scheme() {
        "https" => match literal {
            Some(ip) if !is_public(ip) => Err("The push endpoint must be on a public address."),
            _ => Ok(url),
        },
        "http" if allow_loopback && literal == Some(IpAddr::V4(Ipv4Addr::LOCALHOST)) && url.port().is_some() => Ok(url),
        _ => Err("The push endpoint must be an https:// URL."),
    }
}

/// True for addresses on the public internet: not loopback, private (RFC 1918),
/// carrier-grade NAT, link-local, unique-local, multicast, documentation, benchmarking,
/// reserved or unspecified ranges, nor an IPv4 address hidden in an IPv6 one.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link local fe80::/10
                || (first & 0xffc0) == 0xfec0 // site local (deprecated) fec0::/10
                || first == 0x2001 && v6.segments()[1] == 0x0db8 // documentation
                || first == 0x0064 && v6.segments()[1] == 0xff9b // NAT64 64:ff9b::/96 wraps IPv4
                || first == 0x2002 // 6to4 wraps IPv4
                || v6.segments()[..6] == [0; 6]) // IPv4-compatible ::a.b.c.d
        }
    }
}

fn is_public_v4(v4: Ipv4Addr) -> bool {
    let [a, b, c, _] = v4.octets();
    !(v4.is_private()
        || v4.is_loopback()
        || v4.is_link_local()
        || v4.is_broadcast()
        || v4.is_documentation()
        || v4.is_unspecified()
        || v4.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240) // reserved
}

/// The push client's resolver: the system's answer with every non-public address
/// removed; a name with none left fails to resolve.
pub struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        let lookup: Pin<Box<dyn Future<Output = _> + Send>> = Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = found.filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(format!("{host} has no public address").into());
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        });
        lookup
    }
}

/// The origin of `url` as a VAPID audience: scheme, host and a non-default port.
pub fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_on_public_addresses_or_named_hosts() {
        assert!(parse("https://fcm.googleapis.com/fcm/send/abc", false).is_ok());
        assert!(parse("https://8.8.8.8/x", false).is_ok());
        for refused in [
            "http://push.example.com/x",
            "https://127.0.0.1/x",
            "https://10.0.0.1/x",
            "https://192.168.1.1/x",
            "https://169.254.169.254/latest",
            "https://[::1]/x",
            "https://[fd00::1]/x",
            "https://[fe80::1]/x",
            "https://[::ffff:10.0.0.1]/x",
            "https://100.64.0.1/x",
            "https://0.0.0.0/x",
            "https://user:pw@push.example.com/x",
            "ftp://push.example.com/x",
            "not a url",
        ] {
            assert!(parse(refused, false).is_err(), "{refused} must be refused");
        }
    }

    #[test]
    fn loopback_http_only_when_allowed_and_only_127_0_0_1_with_a_port() {
        assert!(parse("http://127.0.0.1:9000/push/1", true).is_ok());
        assert!(parse("http://127.0.0.1:9000/push/1", false).is_err());
        assert!(parse("http://localhost:9000/push/1", true).is_err());
        assert!(parse("http://10.0.0.1:9000/push/1", true).is_err());
        assert!(parse("http://127.0.0.1/push/1", true).is_err());
    }

    /// At send time a name is resolved by `PublicOnly`: one that points at this machine
    /// (as a rebinding attacker's would, later) resolves to nothing the client may use.
    #[tokio::test]
    async fn the_senders_resolver_drops_loopback_and_private_answers() {
        let name: Name = "localhost".parse().expect("a host name");
        let resolved = PublicOnly.resolve(name).await;
        assert!(resolved.is_err(), "localhost must not resolve for pushes: {:?}", resolved.map(|a| a.collect::<Vec<_>>()));
    }

    #[test]
    fn audience_keeps_a_non_default_port() {
        let url = Url::parse("http://127.0.0.1:9000/push/1").expect("url");
        assert_eq!(origin(&url), "http://127.0.0.1:9000");
        let url = Url::parse("https://push.example.com:443/x").expect("url");
        assert_eq!(origin(&url), "https://push.example.com");
    }
}
