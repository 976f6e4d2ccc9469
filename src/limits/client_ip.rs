//! The client address every per-IP limit is keyed on: the socket's peer,
//! or with `--trust-proxy` the address the proxy appended to
//! `X-Forwarded-For`. Without `--trust-proxy` the header is ignored, so a
//! client cannot pick its own key.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::http::HeaderMap;

/// Resolved once per request by the access guard and kept as an extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    pub fn resolve(peer: Option<SocketAddr>, headers: &HeaderMap, trust_proxy: bool) -> ClientIp {
        let peer = peer.map(|p| p.ip()).unwrap_or(IpAddr::from([0, 0, 0, 0]));
        if trust_proxy {
            if let Some(ip) = forwarded_for(headers) {
                return ClientIp(ip);
            }
        }
        ClientIp(peer)
    }

    /// The key limits use: IPv4-mapped IPv6 as IPv4, and an IPv6 address by
    /// its /64, since one host commonly holds a whole /64 and could
    /// otherwise take a fresh budget per address.
    pub fn key(&self) -> IpAddr {
        match self.0 {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let s = v6.segments();
                    IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
                }
            },
            v4 => v4,
        }
    }
}

/// The right-most address of `X-Forwarded-For`: the one the trusted proxy
/// appended. Earlier entries come from the client and prove nothing.
fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let last = headers.get_all("x-forwarded-for").iter().next_back()?;
    let entry = last.to_str().ok()?.rsplit(',').next()?.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn forwarded_for_counts_only_when_trusted() {
        let peer = Some(SocketAddr::from(([127, 0, 0, 1], 5000)));
        let h = headers(&["1.2.3.4, 5.6.7.8"]);
        assert_eq!(
            ClientIp::resolve(peer, &h, false).0.to_string(),
            "127.0.0.1"
        );
        assert_eq!(ClientIp::resolve(peer, &h, true).0.to_string(), "5.6.7.8");
        let h = headers(&["1.2.3.4", "9.9.9.9"]);
        assert_eq!(ClientIp::resolve(peer, &h, true).0.to_string(), "9.9.9.9");
        let h = headers(&["garbage"]);
        assert_eq!(ClientIp::resolve(peer, &h, true).0.to_string(), "127.0.0.1");
    }

    #[test]
    fn ipv6_is_keyed_by_its_64() {
        let a = ClientIp("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = ClientIp("2001:db8:1:2:bbbb::9".parse().unwrap());
        assert_eq!(a.key(), b.key());
        assert_ne!(a.key(), ClientIp("2001:db8:1:3::1".parse().unwrap()).key());
        assert_eq!(
            ClientIp("::ffff:10.0.0.1".parse().unwrap())
                .key()
                .to_string(),
            "10.0.0.1"
        );
    }
}
