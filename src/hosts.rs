//! Host names: which ones name a host-based preview
//! (`PORT-SESSIONID.PREVIEW_DOMAIN[:LISTENPORT]`, a port of a session's
//! container on an origin of its own), and the host a request is for. Only a
//! session id and a port come out of a host name; never an address.

use axum::http::{header, HeaderMap, Uri};

/// What a preview host name names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostTarget {
    pub port: u16,
    /// As written in the host name. Browsers lower-case host names, so the
    /// session is looked up without regard to case.
    pub session_label: String,
}

/// The host the request is for: the authority of an absolute-form URI wins
/// over the `Host` header, as RFC 9112 says.
pub fn request_host<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> Option<&'a str> {
    uri.authority()
        .map(|a| a.as_str())
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()))
}

/// A `Host` value's name and port (`[::1]:3333` → `[::1]`, `3333`). An
/// IPv6 literal followed by anything but a port is no literal: the whole
/// value is the name.
pub fn split_port(host: &str) -> (&str, Option<&str>) {
    let name_end = if host.starts_with('[') {
        match host.find(']') {
            Some(i) if host[i + 1..].is_empty() || host[i + 1..].starts_with(':') => i + 1,
            _ => host.len(),
        }
    } else {
        host.rfind(':').unwrap_or(host.len())
    };
    let (name, rest) = host.split_at(name_end);
    (name, rest.strip_prefix(':').filter(|p| !p.is_empty()))
}

/// Parses `PORT-session-XXXX.DOMAIN` with an optional `:port`; `None` for
/// any other host, which then goes to the API.
pub fn parse(host: &str, domain: &str) -> Option<HostTarget> {
    // Host names on the wire are ASCII (browsers send IDNs as punycode);
    // the slicing below relies on it.
    if host.starts_with('[') || domain.is_empty() || !host.is_ascii() {
        return None;
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        Some(_) => return None,
        None => host,
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    let domain = domain.trim_end_matches('.');
    if name.len() <= domain.len() + 1 {
        return None;
    }
    let (label, suffix) = name.split_at(name.len() - domain.len() - 1);
    if !suffix[1..].eq_ignore_ascii_case(domain) || !suffix.starts_with('.') || label.contains('.')
    {
        return None;
    }
    let (port, session) = label.split_once('-')?;
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let ok = session.len() >= "session-".len() + 22
        && session[.."session-".len()].eq_ignore_ascii_case("session-")
        && session
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then(|| HostTarget {
        port,
        session_label: session.to_string(),
    })
}

/// The host-based URL of a session's preview: `PORT-SESSION.DOMAIN`, on the
/// port the browser reached this server on.
pub fn host_url(
    scheme: &str,
    port: u16,
    session_id: &str,
    domain: &str,
    listen_port: Option<&str>,
    path_and_query: &str,
) -> String {
    let at = listen_port.map(|p| format!(":{p}")).unwrap_or_default();
    format!("{scheme}://{port}-{session_id}.{domain}{at}{path_and_query}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SID: &str = "session-Ab-_cdEFghIJklMNopQRst";

    fn t(port: u16, s: &str) -> Option<HostTarget> {
        Some(HostTarget {
            port,
            session_label: s.into(),
        })
    }

    #[test]
    fn parses_port_and_session_with_and_without_listen_port() {
        assert_eq!(
            parse(&format!("8080-{SID}.localhost:3333"), "localhost"),
            t(8080, SID)
        );
        assert_eq!(
            parse(&format!("3000-{SID}.localhost"), "localhost"),
            t(3000, SID)
        );
        assert_eq!(
            parse(
                &format!("1-{SID}.preview.example.com"),
                "preview.example.com"
            ),
            t(1, SID)
        );
        assert_eq!(
            parse(&format!("65535-{SID}.LOCALHOST."), "localhost"),
            t(65535, SID)
        );
    }

    #[test]
    fn lower_cased_hosts_still_parse() {
        let lower = SID.to_ascii_lowercase();
        assert_eq!(
            parse(&format!("8080-{lower}.localhost:1"), "localhost"),
            t(8080, &lower)
        );
    }

    #[test]
    fn session_ids_may_contain_dashes_and_underscores() {
        let sid = &format!("session-{}", "-_".repeat(11));
        assert_eq!(
            parse(&format!("80-{sid}.localhost"), "localhost"),
            t(80, sid)
        );
    }

    #[test]
    fn anything_else_is_not_a_preview_host() {
        for host in [
            "localhost:3333",
            "127.0.0.1:3333",
            "[::1]:3333",
            "localhost",
            &format!("{SID}.localhost"),
            &format!("0-{SID}.localhost"),
            &format!("65536-{SID}.localhost"),
            &format!("123456-{SID}.localhost"),
            &format!("-8080-{SID}.localhost"),
            &format!("8080-{SID}.evil.com"),
            &format!("8080-{SID}.localhost.evil.com"),
            &format!("8080-{SID}.evil-localhost"),
            &format!("x.8080-{SID}.localhost"),
            "8080-session-short.localhost",
            "8080-notasession-AAAAAAAAAAAAAAAAAAAAAA.localhost",
            &format!("8080-{SID}.localhost:abc"),
            &format!("8080-{SID}!.localhost"),
            ".localhost",
        ] {
            assert_eq!(parse(host, "localhost"), None, "{host}");
        }
    }

    #[test]
    fn ports_split_off_names_and_ipv6_literals() {
        assert_eq!(split_port("localhost:3333"), ("localhost", Some("3333")));
        assert_eq!(split_port("localhost"), ("localhost", None));
        assert_eq!(split_port("[::1]:3333"), ("[::1]", Some("3333")));
        assert_eq!(split_port("[::1]"), ("[::1]", None));
        assert_eq!(split_port("127.0.0.1:1"), ("127.0.0.1", Some("1")));
    }

    /// Found by the `preview_headers` fuzz target: a host with a non-ASCII
    /// character where the name was cut panicked instead of being no
    /// preview host.
    #[test]
    fn a_host_that_is_not_ascii_is_no_preview_host() {
        for host in [
            format!("3000-{SID}\u{353}ocalhost:3334"),
            format!("3000-{SID}.\u{e9}ocalhost"),
            format!("3000-s\u{e9}{SID}.localhost"),
            "\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}.localhost".to_string(),
        ] {
            assert_eq!(parse(&host, "localhost"), None, "{host}");
        }
    }

    /// Found by the `preview_headers` fuzz target: what followed an IPv6
    /// literal was dropped, so `[::1]evil.example` read as the loopback.
    #[test]
    fn an_ipv6_literal_with_anything_but_a_port_after_it_is_no_literal() {
        for host in ["[::1]evil.example", "[::1]x:3333", "[::1].", "[::1"] {
            assert_eq!(split_port(host), (host, None), "{host}");
        }
    }

    #[test]
    fn absolute_form_authority_wins_over_the_host_header() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "a.localhost".parse().unwrap());
        assert_eq!(
            request_host(&"/x".parse().unwrap(), &h),
            Some("a.localhost")
        );
        assert_eq!(
            request_host(&"http://b.localhost/x".parse().unwrap(), &h),
            Some("b.localhost")
        );
    }
}
