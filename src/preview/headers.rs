//! Header and URL rewriting between the browser and the upstream app: hop-by-hop
//! headers, `X-Forwarded-*`, the path under the prefix, and `Location` and
//! cookie paths kept under the prefix. All pure, so all unit-tested.

use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one connection, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Removes every header named in `names` that is present, looking at the
/// request's own headers once rather than hashing each name into the map
/// (most requests carry none of them).
fn remove_present(headers: &mut HeaderMap, names: &[HeaderName]) {
    let present: Vec<HeaderName> = headers
        .keys()
        .filter(|k| names.contains(k))
        .cloned()
        .collect();
    for name in present {
        headers.remove(name);
    }
}

/// Removes hop-by-hop headers, including any the `Connection` header names.
/// With `upgrade`, `Connection: upgrade` and `Upgrade` are kept so a
/// WebSocket handshake passes through.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let upgrade_value = if upgrade {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    };
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    remove_present(headers, &HOP_BY_HOP);
    if let Some(u) = upgrade_value {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, u);
    }
}

/// Whether a request asks for a protocol upgrade (a WebSocket).
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
}

/// What the proxy tells the upstream about the original request.
pub struct Forwarded<'a> {
    /// The client's address as a header value (made once per connection).
    pub client_ip: &'a HeaderValue,
    /// Trust `X-Forwarded-For`/`-Proto` that came in (`--trust-proxy`).
    pub trust_proxy: bool,
    /// The `Host` the browser used.
    pub host: Option<&'a str>,
    /// `/preview/ID`, or `None` on a host-based preview.
    pub prefix: Option<&'a str>,
}

/// Headers a client could send to pass itself off as someone else; only
/// ours reach the app (with `--trust-proxy`, a prior `X-Forwarded-For`
/// chain and `-Proto` are kept and extended).
const FORWARDING: [HeaderName; 6] = [
    header::FORWARDED,
    X_FORWARDED_FOR,
    X_FORWARDED_PROTO,
    X_FORWARDED_HOST,
    X_FORWARDED_PREFIX,
    X_REAL_IP,
];

pub fn set_forwarded(headers: &mut HeaderMap, f: &Forwarded) {
    let (prior_for, prior_proto) = if f.trust_proxy {
        (
            headers.get(X_FORWARDED_FOR).cloned(),
            headers
                .get(X_FORWARDED_PROTO)
                .filter(|p| p.as_bytes() == b"http" || p.as_bytes() == b"https")
                .cloned(),
        )
    } else {
        (None, None)
    };
    remove_present(headers, &FORWARDING);
    let chain = match prior_for.as_ref().and_then(|v| v.to_str().ok()) {
        Some(prior) => {
            let ip = f.client_ip.to_str().unwrap_or_default();
            HeaderValue::from_str(&format!("{prior}, {ip}")).ok()
        }
        None => Some(f.client_ip.clone()),
    };
    if let Some(chain) = chain {
        headers.insert(X_FORWARDED_FOR, chain);
    }
    headers.insert(X_REAL_IP, f.client_ip.clone());
    headers.insert(
        X_FORWARDED_PROTO,
        prior_proto.unwrap_or(HeaderValue::from_static("http")),
    );
    if let Some(v) = f.host.and_then(|h| HeaderValue::from_str(h).ok()) {
        headers.insert(X_FORWARDED_HOST, v);
    }
    if let Some(v) = f.prefix.and_then(|p| HeaderValue::from_str(p).ok()) {
        headers.insert(X_FORWARDED_PREFIX, v);
    }
}

/// Keeps only the content codings the HTML injector can decode, so a page
/// never arrives in one it cannot rewrite. Every `Accept-Encoding` line
/// counts (the upstream reads them as one list); a line that is not text
/// names nothing the injector decodes, and is dropped.
pub fn filter_accept_encoding(headers: &mut HeaderMap) {
    let decodable = |t: &str| {
        let coding = t.split(';').next().unwrap_or("").trim();
        ["gzip", "x-gzip", "deflate", "br", "identity"]
            .iter()
            .any(|k| coding.eq_ignore_ascii_case(k))
    };
    // Most requests carry one line (or none) that names only codings the
    // injector decodes: it stays as it is.
    let mut lines = headers.get_all(header::ACCEPT_ENCODING).iter();
    match (lines.next(), lines.next()) {
        (None, _) => return,
        (Some(v), None)
            if v.to_str()
                .is_ok_and(|v| v.split(',').map(str::trim).all(decodable)) =>
        {
            return
        }
        _ => {}
    }
    let kept: Vec<String> = headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| decodable(t))
        .map(String::from)
        .collect();
    headers.remove(header::ACCEPT_ENCODING);
    if kept.is_empty() {
        return;
    }
    if let Ok(v) = HeaderValue::from_str(&kept.join(", ")) {
        headers.insert(header::ACCEPT_ENCODING, v);
    }
}

/// The upstream request target for the part of the path after the prefix:
/// dot segments are resolved (never above the root), so `..` cannot climb
/// out of the app; the authority is always the container's, whatever the path.
pub fn upstream_target(rest: &str, query: Option<&str>) -> String {
    // Most paths have no dot segment and no leading `//`: nothing to resolve.
    let plain = rest.starts_with('/')
        && !rest.starts_with("//")
        && !rest.contains("/.")
        && !rest
            .as_bytes()
            .windows(3)
            .any(|w| w.eq_ignore_ascii_case(b"%2e"));
    if plain {
        let mut target = String::with_capacity(rest.len() + query.map_or(0, |q| q.len() + 1));
        target.push_str(rest);
        if let Some(q) = query {
            target.push('?');
            target.push_str(q);
        }
        return target;
    }
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = rest.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        let dot = seg.eq_ignore_ascii_case(".") || seg.eq_ignore_ascii_case("%2e");
        let dotdot = ["..", "%2e%2e", ".%2e", "%2e."]
            .iter()
            .any(|d| seg.eq_ignore_ascii_case(d));
        if dotdot {
            out.pop();
        } else if !dot {
            out.push(seg);
            continue;
        }
        if i == last {
            out.push("");
        }
    }
    let mut path = format!("/{}", out.join("/"));
    // Keep `//host` from ever reading as an authority.
    while path.starts_with("//") {
        path.remove(0);
    }
    match query {
        Some(q) => format!("{path}?{q}"),
        None => path,
    }
}

/// Rewrites a `Location` so redirects stay in the preview: an absolute path
/// gets the prefix, and an absolute URL naming the upstream itself becomes
/// a path under the prefix. Other URLs (another site) are left alone.
/// `upstream_hosts` are the authorities the app may call itself by.
pub fn rewrite_location(loc: &str, prefix: &str, upstream_hosts: &[String]) -> Option<String> {
    if let Some(rest) = loc.strip_prefix("//") {
        return self_path(rest, upstream_hosts).map(|p| format!("{prefix}{p}"));
    }
    if loc.starts_with('/') {
        return (!prefix.is_empty()).then(|| format!("{prefix}{loc}"));
    }
    let lower = loc.get(..8).unwrap_or(loc).to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        &loc[7..]
    } else if lower.starts_with("https://") {
        &loc[8..]
    } else {
        return None;
    };
    self_path(rest, upstream_hosts).map(|p| format!("{prefix}{p}"))
}

/// For `authority/path…`, the path when the authority is the upstream's.
fn self_path(rest: &str, upstream_hosts: &[String]) -> Option<String> {
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if !upstream_hosts
        .iter()
        .any(|h| h.eq_ignore_ascii_case(authority))
    {
        return None;
    }
    // An empty path is `/`, also before a query or a fragment: `//app#x`
    // is `/#x`, where `#x` alone would stay on the page it came from.
    // The path's leading slashes (and backslashes, which browsers read as
    // slashes) fold into one: the app's own `http://app//evil.example/x`
    // must not become the protocol-relative `//evil.example/x`, another
    // host, where no prefix comes first (host-based previews).
    let path = rest[end..].trim_start_matches(['/', '\\']);
    Some(format!("/{path}"))
}

/// Rewrites a `Set-Cookie`: `Path` moves under the prefix and `Domain` is
/// dropped, so the cookie stays with this preview and never leaks to the API
/// or another preview.
/// The name of the cookie a `Set-Cookie` value sets.
pub fn cookie_name(set_cookie: &str) -> &str {
    set_cookie
        .split(';')
        .next()
        .and_then(|pair| pair.split('=').next())
        .unwrap_or_default()
        .trim()
}

pub fn rewrite_set_cookie(value: &str, prefix: &str) -> String {
    let mut parts = value.split(';');
    let mut out = vec![parts.next().unwrap_or("").trim().to_string()];
    for attr in parts {
        let attr = attr.trim();
        let (name, val) = attr
            .split_once('=')
            .map(|(n, v)| (n.trim(), Some(v.trim())))
            .unwrap_or((attr, None));
        if name.eq_ignore_ascii_case("domain") || attr.is_empty() {
            continue;
        }
        if name.eq_ignore_ascii_case("path") && !prefix.is_empty() {
            let p = val.filter(|v| v.starts_with('/')).unwrap_or("/");
            out.push(format!("Path={prefix}{p}"));
            continue;
        }
        out.push(attr.to_string());
    }
    out.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn hop_by_hop_headers_and_the_ones_connection_names_are_dropped() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("proxy-authorization", "Basic x"),
            ("accept", "text/html"),
        ]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("accept"));
    }

    #[test]
    fn an_upgrade_keeps_its_two_headers() {
        let mut h = map(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "k"),
        ]);
        assert!(wants_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h["connection"], "upgrade");
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["sec-websocket-key"], "k");
        assert!(!wants_upgrade(&map(&[("upgrade", "websocket")])));
        assert!(wants_upgrade(&map(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket")
        ])));
    }

    #[test]
    fn forwarded_headers_replace_spoofed_ones_unless_the_proxy_is_trusted() {
        let spoofed = [
            ("x-forwarded-for", "6.6.6.6"),
            ("x-real-ip", "6.6.6.6"),
            ("forwarded", "for=6.6.6.6"),
            ("x-forwarded-proto", "https"),
        ];
        let ip = HeaderValue::from_static("127.0.0.1");
        let f = Forwarded {
            client_ip: &ip,
            trust_proxy: false,
            host: Some("localhost:3333"),
            prefix: Some("/preview/s"),
        };
        let mut h = map(&spoofed);
        set_forwarded(&mut h, &f);
        assert_eq!(h["x-forwarded-for"], "127.0.0.1");
        assert_eq!(h["x-real-ip"], "127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "localhost:3333");
        assert_eq!(h["x-forwarded-prefix"], "/preview/s");
        assert!(!h.contains_key("forwarded"));

        let mut h = map(&spoofed);
        set_forwarded(
            &mut h,
            &Forwarded {
                trust_proxy: true,
                prefix: None,
                ..f
            },
        );
        assert_eq!(h["x-forwarded-for"], "6.6.6.6, 127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert!(!h.contains_key("x-forwarded-prefix"));
        assert!(!h.contains_key("forwarded"));
        assert_eq!(h["x-real-ip"], "127.0.0.1");
    }

    #[test]
    fn plain_paths_pass_as_they_are() {
        for (rest, query, want) in [
            ("/", None, "/"),
            ("/a/b.js", Some("v=1"), "/a/b.js?v=1"),
            ("/a//b/", None, "/a//b/"),
            ("/caf%C3%A9", None, "/caf%C3%A9"),
            ("/.well-known/x", None, "/.well-known/x"),
            ("/a/%2E%2e/b", None, "/b"),
            ("//x", None, "/x"),
        ] {
            assert_eq!(upstream_target(rest, query), want, "{rest}");
        }
    }

    #[test]
    fn accept_encoding_keeps_only_decodable_codings() {
        let mut h = map(&[("accept-encoding", "gzip, deflate, br, zstd;q=0.9")]);
        filter_accept_encoding(&mut h);
        assert_eq!(h["accept-encoding"], "gzip, deflate, br");
        let mut h = map(&[("accept-encoding", "zstd")]);
        filter_accept_encoding(&mut h);
        assert!(!h.contains_key("accept-encoding"));
    }

    /// Found by the `preview_headers` fuzz target: a `Location` naming the
    /// upstream with no path but a query or fragment lost its `/`, so the
    /// browser stayed on the page it came from.
    #[test]
    fn a_location_with_no_path_before_its_query_or_fragment_goes_to_the_root() {
        let hosts = vec!["localhost:8080".to_string()];
        for (loc, prefix, want) in [
            ("//localhost:8080#x", "", "/#x"),
            ("http://localhost:8080?a=1", "", "/?a=1"),
            ("http://localhost:8080#x", "/preview/s", "/preview/s/#x"),
            ("http://localhost:8080", "/preview/s", "/preview/s/"),
            ("http://localhost:8080/p?q#f", "", "/p?q#f"),
        ] {
            assert_eq!(
                rewrite_location(loc, prefix, &hosts).as_deref(),
                Some(want),
                "{loc}"
            );
        }
    }

    /// Found by the `preview_headers` fuzz target: only the first line was
    /// read, so a first line that was not text let every line through as
    /// sent (`zstd` included), and a text one replaced the others.
    #[test]
    fn accept_encoding_filters_every_line_and_drops_one_that_is_not_text() {
        let mut h = map(&[("accept-encoding", "gzip"), ("accept-encoding", "zstd, br")]);
        filter_accept_encoding(&mut h);
        let all: Vec<_> = h.get_all("accept-encoding").iter().collect();
        assert_eq!(all, ["gzip, br"]);

        let mut h = HeaderMap::new();
        h.append(
            header::ACCEPT_ENCODING,
            HeaderValue::from_bytes(b"gzip\xff").unwrap(),
        );
        h.append(header::ACCEPT_ENCODING, HeaderValue::from_static("zstd"));
        h.append(header::ACCEPT_ENCODING, HeaderValue::from_static("deflate"));
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        filter_accept_encoding(&mut h);
        let all: Vec<_> = h.get_all("accept-encoding").iter().collect();
        assert_eq!(all, ["deflate"]);
        assert_eq!(h["connection"], "close");

        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_bytes(b"\xff zstd").unwrap(),
        );
        filter_accept_encoding(&mut h);
        assert!(!h.contains_key("accept-encoding"));
    }

    #[test]
    fn upstream_target_strips_dot_segments_and_keeps_the_query() {
        assert_eq!(upstream_target("/", None), "/");
        assert_eq!(upstream_target("/a/b", Some("x=1")), "/a/b?x=1");
        assert_eq!(upstream_target("/../../api/health", None), "/api/health");
        assert_eq!(upstream_target("/a/%2e%2e/%2E%2e/etc", None), "/etc");
        assert_eq!(upstream_target("/a/./b/..", None), "/a/");
        assert_eq!(upstream_target("//evil.example/x", None), "/evil.example/x");
        assert_eq!(upstream_target("/a//b/", None), "/a//b/");
    }

    #[test]
    fn location_stays_under_the_prefix() {
        let hosts = vec!["localhost:8080".to_string(), "172.18.0.2:8080".to_string()];
        let p = "/preview/session-x";
        assert_eq!(
            rewrite_location("/target?x=1", p, &hosts).as_deref(),
            Some("/preview/session-x/target?x=1")
        );
        assert_eq!(
            rewrite_location("http://localhost:8080/a#b", p, &hosts).as_deref(),
            Some("/preview/session-x/a#b")
        );
        assert_eq!(
            rewrite_location("HTTP://172.18.0.2:8080", p, &hosts).as_deref(),
            Some("/preview/session-x/")
        );
        assert_eq!(
            rewrite_location("//localhost:8080/c", p, &hosts).as_deref(),
            Some("/preview/session-x/c")
        );
        assert_eq!(rewrite_location("https://example.com/x", p, &hosts), None);
        assert_eq!(rewrite_location("//example.com/x", p, &hosts), None);
        assert_eq!(rewrite_location("relative/page", p, &hosts), None);
        // Host-based previews have no prefix: absolute paths already work.
        assert_eq!(rewrite_location("/target", "", &hosts), None);
        assert_eq!(
            rewrite_location("http://localhost:8080/t", "", &hosts).as_deref(),
            Some("/t")
        );
    }

    #[test]
    fn cookie_paths_move_under_the_prefix_and_domains_go() {
        let p = "/preview/session-x";
        assert_eq!(
            rewrite_set_cookie("sid=abc; Path=/; HttpOnly", p),
            "sid=abc; Path=/preview/session-x/; HttpOnly"
        );
        assert_eq!(
            rewrite_set_cookie("t=1; path=/app; Domain=localhost; Secure", p),
            "t=1; Path=/preview/session-x/app; Secure"
        );
        assert_eq!(rewrite_set_cookie("t=1", p), "t=1");
        assert_eq!(
            rewrite_set_cookie("t=1; Path=weird", p),
            "t=1; Path=/preview/session-x/"
        );
        assert_eq!(
            rewrite_set_cookie("t=1; Path=/; Domain=.x", ""),
            "t=1; Path=/"
        );
    }

    /// Found by the `preview_headers` fuzz target: the app's redirect to its
    /// own path `//evil.example/x` became a protocol-relative URL, another
    /// host, on a host-based preview (no prefix before it).
    #[test]
    fn a_redirect_to_the_apps_own_path_never_names_another_host() {
        let hosts = vec!["localhost:8080".to_string()];
        for loc in [
            "http://localhost:8080//evil.example/x",
            "http://localhost:8080///evil.example/x",
            "http://localhost:8080/\\evil.example/x",
            "//localhost:8080//evil.example/x",
        ] {
            for prefix in ["", "/preview/s"] {
                let out = rewrite_location(loc, prefix, &hosts).expect(loc);
                assert_eq!(out, format!("{prefix}/evil.example/x"), "{loc}");
            }
        }
        assert_eq!(
            rewrite_location("http://localhost:8080/a//b", "", &hosts).as_deref(),
            Some("/a//b")
        );
    }
}
