//! Browser-facing checks: the `Host` a request names (DNS rebinding) and
//! the `Origin` of a WebSocket upgrade or a state-changing API call
//! (cross-site requests).
//!
//! DNS rebinding makes a browser send a page's requests to our address
//! under the attacker's *name*, so a request is answered only when its
//! `Host` is a name the server answers to. An IP literal cannot be
//! rebound, so when the server listens on every interface any IP literal
//! passes too (people reach such a server by its address).

use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;

use crate::config::Settings;

pub struct Names {
    listen: SocketAddr,
    /// The address actually bound (the port differs when listening on :0).
    bound: OnceLock<SocketAddr>,
    preview_domain: String,
    allowed_hosts: Vec<String>,
    allowed_origins: Vec<String>,
}

fn host_literal(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// The name part of a `Host` value: lower-case, without port or final dot.
/// An IPv6 literal followed by anything but a port is no literal: the
/// whole value is the name.
pub fn host_name(host: &str) -> String {
    let h = host.trim();
    let name = if h.starts_with('[') {
        match h.split_once(']') {
            Some((literal, after))
                if after.is_empty()
                    || after
                        .strip_prefix(':')
                        .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit())) =>
            {
                &h[..literal.len() + 1]
            }
            _ => h,
        }
    } else {
        match h.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => h,
        }
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn normalize_origin(o: &str) -> String {
    o.trim().trim_end_matches('/').to_ascii_lowercase()
}

impl Names {
    pub fn new(s: &Settings) -> Names {
        Names {
            listen: s.listen,
            bound: OnceLock::new(),
            preview_domain: s.preview_domain.trim_end_matches('.').to_ascii_lowercase(),
            allowed_hosts: s.allowed_hosts.iter().map(|h| host_name(h)).collect(),
            allowed_origins: s
                .allowed_origins
                .iter()
                .map(|o| normalize_origin(o))
                .collect(),
        }
    }

    pub fn set_bound(&self, addr: SocketAddr) {
        let _ = self.bound.set(addr);
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.bound.get().map_or(self.listen.port(), |a| a.port())
    }

    pub fn preview_domain(&self) -> &str {
        &self.preview_domain
    }

    /// Whether `host` (a `Host` header value) names this server.
    pub fn host_allowed(&self, host: &str) -> bool {
        let name = host_name(host);
        if ["localhost", "127.0.0.1", "[::1]"].contains(&name.as_str()) {
            return true;
        }
        let listen_ip = self.listen.ip();
        if !listen_ip.is_unspecified() && name == host_literal(listen_ip) {
            return true;
        }
        if listen_ip.is_unspecified()
            && name
                .trim_matches(|c| c == '[' || c == ']')
                .parse::<IpAddr>()
                .is_ok()
        {
            return true;
        }
        // Under the preview domain only preview hosts (`PORT-SESSION.domain`)
        // are names of this server: `anything.localhost` is not the API.
        if name == self.preview_domain
            || (is_subdomain(&name, &self.preview_domain)
                && crate::hosts::parse(host, &self.preview_domain).is_some())
        {
            return true;
        }
        self.allowed_hosts
            .iter()
            .any(|h| match h.strip_prefix("*.") {
                Some(parent) => is_subdomain(&name, parent),
                None => *h == name,
            })
    }

    /// The server's own origins, then the configured ones. Preview origins
    /// (`PORT-SESSION.domain`) are deliberately not among them: a previewed
    /// app must never drive the API with the user's credentials.
    pub fn allowed_origins(&self) -> Vec<String> {
        let mut v = self.own_origins();
        v.extend(self.allowed_origins.iter().cloned());
        v
    }

    /// The origins of pages this server itself serves: only path-based
    /// previews.
    pub fn own_origins(&self) -> Vec<String> {
        let port = self.port();
        let mut hosts = vec!["localhost".to_string(), "127.0.0.1".into(), "[::1]".into()];
        if !self.listen.ip().is_unspecified() {
            hosts.push(host_literal(self.listen.ip()));
        }
        let mut v: Vec<String> = Vec::new();
        for h in hosts {
            v.push(format!("http://{h}:{port}"));
            if port == 80 {
                v.push(format!("http://{h}"));
            }
        }
        v
    }

    pub fn origin_allowed(&self, origin: &str) -> bool {
        let o = normalize_origin(origin);
        self.allowed_origins().contains(&o)
    }

    pub fn is_own_origin(&self, origin: &str) -> bool {
        let o = normalize_origin(origin);
        self.own_origins().contains(&o)
    }
}

fn is_subdomain(name: &str, parent: &str) -> bool {
    !parent.is_empty()
        && name.len() > parent.len() + 1
        && name.ends_with(parent)
        && name[..name.len() - parent.len()].ends_with('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(listen: &str, extra_hosts: &[&str], extra_origins: &[&str]) -> Names {
        let s = Settings {
            listen: listen.parse().unwrap(),
            allowed_hosts: extra_hosts.iter().map(|s| s.to_string()).collect(),
            allowed_origins: extra_origins.iter().map(|s| s.to_string()).collect(),
            ..Settings::default()
        };
        Names::new(&s)
    }

    #[test]
    fn hosts_the_server_answers_to() {
        let n = names(
            "127.0.0.1:3333",
            &["studio.example.com", "*.dev.example"],
            &[],
        );
        for ok in [
            "localhost:3333",
            "LOCALHOST",
            "127.0.0.1:3333",
            "[::1]:3333",
            "localhost.",
            "3000-session-AAAAAAAAAAAAAAAAAAAAAA.localhost:3333",
            "studio.example.com",
            "a.dev.example",
        ] {
            assert!(n.host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.com",
            "evil.com:3333",
            "localhost.evil.com",
            "10.0.0.5:3333",
            "xlocalhost",
            "dev.example",
            "studio.example.com.evil",
            "evil.localhost:3333",
            "3000-session-abc.localhost:3333",
        ] {
            assert!(!n.host_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn any_ip_literal_when_listening_everywhere() {
        let n = names("0.0.0.0:3333", &[], &[]);
        assert!(n.host_allowed("10.0.0.5:3333"));
        assert!(n.host_allowed("[2001:db8::1]:3333"));
        assert!(!n.host_allowed("evil.com"));
    }

    /// Found by the `preview_headers` fuzz target (through
    /// `hosts::split_port`, which read hosts the same way): what followed
    /// an IPv6 literal was dropped, so `[::1]evil.example` passed as the
    /// loopback.
    #[test]
    fn an_ipv6_literal_with_anything_but_a_port_after_it_is_not_allowed() {
        for listen in ["127.0.0.1:3333", "0.0.0.0:3333"] {
            let n = names(listen, &[], &[]);
            for bad in [
                "[::1]evil.example",
                "[::1]x:3333",
                "[::1]:x",
                "[2001:db8::1]evil.com",
            ] {
                assert!(!n.host_allowed(bad), "{bad} with {listen}");
            }
            assert!(n.host_allowed("[::1]:3333"));
            assert!(n.host_allowed("[::1]"));
        }
        assert_eq!(host_name("[::1]:3333"), "[::1]");
        assert_eq!(host_name("[::1]evil.example"), "[::1]evil.example");
    }

    #[test]
    fn origins_are_the_servers_own_plus_configured() {
        let n = names("127.0.0.1:0", &[], &["https://ide.example.com/"]);
        n.set_bound("127.0.0.1:41234".parse().unwrap());
        for ok in [
            "http://localhost:41234",
            "http://127.0.0.1:41234",
            "http://[::1]:41234",
            "https://ide.example.com",
            "HTTP://LOCALHOST:41234/",
        ] {
            assert!(n.origin_allowed(ok), "{ok}");
        }
        for bad in [
            "http://evil.com",
            "http://localhost:41235",
            "https://localhost:41234",
            "http://3000-session-abc.localhost:41234",
            "null",
        ] {
            assert!(!n.origin_allowed(bad), "{bad}");
        }
    }
}
