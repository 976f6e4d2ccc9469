//! The request head, as the front door and the preview read it: the head
//! checks (`http::guard::check_head_for`: size, `Host`), host names
//! (`hosts`, `auth::Names`), routing (`http::route::classify`), the client
//! address, and the preview's header rewriting both ways (hop-by-hop,
//! `X-Forwarded-*`, `Accept-Encoding`, the upstream path, `Location`,
//! `Set-Cookie`, the preview gate and the credentials it strips).
//!
//! Besides "no panic", each rewrite is checked against what it promises,
//! with a browser's reading of URLs (the `url` crate, WHATWG) as the
//! judge of where a rewritten `Location` leads.
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use claude_studio::auth::preview_gate::{is_reserved_cookie, strip_credentials, COOKIE};
use claude_studio::auth::preview_token::{Purpose, COOKIE_TTL, LINK_TTL};
use claude_studio::auth::{Access, Names, Owner, PreviewAccess};
use claude_studio::config::Settings;
use claude_studio::hosts;
use claude_studio::http::guard::check_head_for;
use claude_studio::http::route::{classify, Route};
use claude_studio::limits::size::{head_bytes, MAX_HEAD_BYTES};
use claude_studio::limits::ClientIp;
use claude_studio::preview::fuzzing as p;
use libfuzzer_sys::fuzz_target;
use url::Url;

const SID: &str = "session-AAAAAAAAAAAAAAAAAAAAAA";
const TOKEN: &str = "tok-fuzz-secret";
const DOMAINS: [&str; 3] = ["localhost", "preview.example.com", "Preview.Test."];
const UPSTREAM: [&str; 2] = ["localhost:8080", "127.0.0.1:8080"];

/// The input, as text: a request head, a blank line, then the response
/// side and options:
///
/// ```text
/// GET /preview/session-x/a?b HTTP/1.1
/// Host: localhost:3333
/// Connection: keep-alive, x-secret
///
/// Location: http://localhost:8080/next
/// Set-Cookie: sid=1; Path=/; Domain=example.com
/// Options: trust-proxy path-preview bearer link cookie domain=1
/// ```
struct Input<'a> {
    method: &'a [u8],
    target: &'a str,
    headers: Vec<(&'a [u8], &'a [u8])>,
    trust_proxy: bool,
    domain: usize,
    path_preview: bool,
    /// Valid credentials to add: bearer (1), link token (2), cookie (4).
    credentials: u8,
    location: &'a str,
    set_cookie: &'a str,
}

fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
}

fn field(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = line.iter().position(|&b| b == b':')?;
    let v = &line[i + 1..];
    let start = v
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(v.len());
    Some((&line[..i], &v[start..]))
}

impl<'a> Input<'a> {
    fn parse(data: &'a [u8]) -> Input<'a> {
        let text = |b: &'a [u8]| std::str::from_utf8(b).unwrap_or("");
        let mut it = lines(data);
        let request = it.next().unwrap_or_default();
        let mut words = request.splitn(3, |&b| b == b' ');
        let method = words.next().unwrap_or_default();
        let target = text(words.next().unwrap_or_default());
        let mut input = Input {
            method,
            target,
            headers: Vec::new(),
            trust_proxy: false,
            domain: 0,
            path_preview: false,
            credentials: 0,
            location: "",
            set_cookie: "",
        };
        for line in it.by_ref() {
            if line.is_empty() {
                break;
            }
            if let Some(f) = field(line) {
                input.headers.push(f);
            }
        }
        for line in it {
            let Some((name, value)) = field(line) else {
                continue;
            };
            match &name.to_ascii_lowercase()[..] {
                b"location" => input.location = text(value),
                b"set-cookie" => input.set_cookie = text(value),
                b"options" => {
                    for o in text(value).split_ascii_whitespace() {
                        match o {
                            "trust-proxy" => input.trust_proxy = true,
                            "path-preview" => input.path_preview = true,
                            "bearer" => input.credentials |= 1,
                            "link" => input.credentials |= 2,
                            "cookie" => input.credentials |= 4,
                            _ => {
                                if let Some(d) = o.strip_prefix("domain=") {
                                    input.domain = d.parse().unwrap_or(0);
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        input
    }
}

struct Fixed {
    names: Vec<Names>,
    access: Access,
    owner: Owner,
    link: String,
    cookie: String,
}

fn fixed() -> &'static Fixed {
    static F: OnceLock<Fixed> = OnceLock::new();
    F.get_or_init(|| {
        let names = DOMAINS
            .iter()
            .map(|d| {
                Names::new(&Settings {
                    preview_domain: d.to_string(),
                    allowed_hosts: vec!["studio.example.com".into(), "*.dev.example".into()],
                    allowed_origins: vec!["https://ide.example.com".into()],
                    ..Settings::default()
                })
            })
            .collect();
        let access = Access::new(&Settings {
            api_tokens: vec![TOKEN.into()],
            ..Settings::default()
        });
        let owner = access.tokens.verify(TOKEN).unwrap();
        let now = claude_studio::clock::now_millis() / 1000;
        // Far from expiring whatever the run's length.
        let link = access
            .preview
            .mint(Purpose::Link, SID, &owner, now, LINK_TTL * 100);
        let cookie = access
            .preview
            .mint(Purpose::Cookie, SID, &owner, now, COOKIE_TTL * 10);
        Fixed {
            names,
            access,
            owner,
            link,
            cookie,
        }
    })
}

fn header_map(pairs: &[(&[u8], &[u8])]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs.iter().take(64) {
        let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) else {
            continue;
        };
        h.append(n, v);
    }
    h
}

fn is_dot_segment(seg: &str) -> bool {
    [".", "%2e", "..", "%2e%2e", ".%2e", "%2e."]
        .iter()
        .any(|d| seg.eq_ignore_ascii_case(d))
}

fn check_hosts(host: &str, domain: &str) {
    let (name, port) = hosts::split_port(host);
    let rest = host.strip_prefix(name).expect("the name starts the host");
    match port {
        Some(p) => assert_eq!(rest, format!(":{p}"), "{host:?}"),
        None => assert!(rest.is_empty() || rest == ":", "{host:?}"),
    }
    if let Some(t) = hosts::parse(host, domain) {
        assert_ne!(t.port, 0);
        assert!(t.session_label.len() >= 30, "{t:?}");
        assert!(t
            .session_label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        // The URL made for a target names it again.
        let again = format!("{}-{}.{}", t.port, t.session_label, domain);
        assert_eq!(hosts::parse(&again, domain).as_ref(), Some(&t), "{again}");
    }
}

/// An IPv6 literal is a name only when a port or nothing follows it:
/// `[::1]evil.example` is not the loopback.
fn check_host_name(host: &str) {
    let h = host.trim();
    let name = claude_studio::auth::origin::host_name(h);
    let Some((_, after)) = h.split_once(']').filter(|_| h.starts_with('[')) else {
        return;
    };
    let port_or_nothing = after.is_empty()
        || after
            .strip_prefix(':')
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()));
    if !port_or_nothing {
        assert_eq!(
            name.len(),
            h.trim_end_matches('.').len(),
            "{host:?} is read as {name:?}"
        );
    }
}

fn check_hop_by_hop(before: &HeaderMap, upgrade: bool) -> HeaderMap {
    let mut h = before.clone();
    p::strip_hop_by_hop(&mut h, upgrade);
    let named: Vec<HeaderName> = before
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    let hop = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ];
    let kept_upgrade = upgrade && before.contains_key(header::UPGRADE);
    for name in hop.iter().map(|n| HeaderName::from_static(n)).chain(named) {
        if kept_upgrade && (name == header::CONNECTION || name == header::UPGRADE) {
            continue;
        }
        assert!(!h.contains_key(&name), "{name} survives in {h:?}");
    }
    if kept_upgrade {
        assert_eq!(h.get_all(header::CONNECTION).iter().count(), 1);
        assert_eq!(h[header::CONNECTION], "upgrade");
        assert_eq!(h.get(header::UPGRADE), before.get(header::UPGRADE));
    }
    // Everything else passes with all its values.
    for (k, v) in before {
        if h.contains_key(k) && k != header::CONNECTION && k != header::UPGRADE {
            assert!(h.get_all(k).iter().any(|x| x == v), "{k} lost a value");
        }
    }
    h
}

fn check_forwarded(
    before: &HeaderMap,
    trust_proxy: bool,
    host: Option<&str>,
    prefix: Option<&str>,
) {
    let ip = HeaderValue::from_static("192.0.2.7");
    let mut h = before.clone();
    let f = p::Forwarded {
        client_ip: &ip,
        trust_proxy,
        host,
        prefix,
    };
    p::set_forwarded(&mut h, &f);
    let one = |name: &str| {
        let all: Vec<&HeaderValue> = h.get_all(name).iter().collect();
        assert!(all.len() <= 1, "{name}: {all:?}");
        all.first().copied()
    };
    assert_eq!(one("x-real-ip"), Some(&ip));
    assert!(!h.contains_key(header::FORWARDED));
    let xff = one("x-forwarded-for").expect("x-forwarded-for");
    let proto = one("x-forwarded-proto").expect("x-forwarded-proto");
    assert!(proto == "http" || proto == "https", "{proto:?}");
    if trust_proxy {
        assert!(xff.as_bytes().ends_with(ip.as_bytes()), "{xff:?}");
    } else {
        assert_eq!(xff, &ip);
        assert_eq!(proto, "http");
    }
    let valid = |v: Option<&str>| v.and_then(|v| HeaderValue::from_str(v).ok());
    assert_eq!(one("x-forwarded-host").cloned(), valid(host));
    assert_eq!(one("x-forwarded-prefix").cloned(), valid(prefix));
}

fn check_accept_encoding(before: &HeaderMap) {
    let mut h = before.clone();
    p::filter_accept_encoding(&mut h);
    for v in h.get_all(header::ACCEPT_ENCODING) {
        let v = v.to_str().expect("a kept Accept-Encoding is text");
        for t in v.split(',') {
            let coding = t.split(';').next().unwrap_or("").trim();
            assert!(
                ["gzip", "x-gzip", "deflate", "br", "identity"]
                    .iter()
                    .any(|k| coding.eq_ignore_ascii_case(k)),
                "{coding:?} in {v:?}"
            );
            // ... and every one the upstream may pick, the injector decodes.
            let mut resp = HeaderMap::new();
            resp.insert(
                header::CONTENT_ENCODING,
                HeaderValue::from_str(coding).unwrap(),
            );
            assert!(p::Decoder::for_headers(&resp).is_some(), "{coding}");
        }
    }
}

fn check_upstream_target(rest: &str, query: Option<&str>) {
    let t = p::upstream_target(rest, query);
    assert!(
        t.starts_with('/') && !t.starts_with("//"),
        "{rest:?} -> {t:?}"
    );
    let path = match query {
        Some(q) => t.strip_suffix(&format!("?{q}")).expect("the query is kept"),
        None => &t,
    };
    assert!(
        !path.split('/').any(is_dot_segment),
        "{rest:?} -> {t:?} keeps a dot segment"
    );
    let plain =
        rest.starts_with('/') && !rest.starts_with("//") && !rest.split('/').any(is_dot_segment);
    if plain {
        assert_eq!(path, rest, "a plain path passes as it is");
    }
}

fn check_location(loc: &str, prefix: &str) {
    let hosts: Vec<String> = UPSTREAM.iter().map(|s| s.to_string()).collect();
    let Some(new) = p::rewrite_location(loc, prefix, &hosts) else {
        return;
    };
    assert!(HeaderValue::from_str(&new).is_ok() || HeaderValue::from_str(loc).is_err());
    // Where the browser goes: on the preview's own origin, under the prefix,
    // to what the app meant on its own.
    let preview = Url::parse(&format!("http://3000-{SID}.localhost:3333{prefix}/page/x")).unwrap();
    let upstream = Url::parse(&format!("http://{}/page/x", UPSTREAM[0])).unwrap();
    let Ok(meant) = upstream.join(loc) else {
        return;
    };
    let went = preview
        .join(&new)
        .unwrap_or_else(|e| panic!("{loc:?} -> {new:?}: {e}"));
    assert_eq!(
        went.origin(),
        preview.origin(),
        "{loc:?} -> {new:?} leaves the preview"
    );
    if meant.origin() == upstream.origin() {
        // Leading slashes fold into one: `//x` must never reach a browser
        // as a protocol-relative URL (another host).
        assert_eq!(
            went.path(),
            format!("{prefix}/{}", meant.path().trim_start_matches('/')),
            "{loc:?} -> {new:?}"
        );
        assert_eq!(went.query(), meant.query(), "{loc:?} -> {new:?}");
        assert_eq!(went.fragment(), meant.fragment(), "{loc:?} -> {new:?}");
    }
}

/// A cookie's name as a browser reads a `Set-Cookie` (RFC 6265bis 5.6).
fn browser_cookie_name(v: &str) -> &str {
    let pair = v.split(';').next().unwrap_or("");
    match pair.split_once('=') {
        Some((n, _)) => n.trim_matches([' ', '\t']),
        None => "",
    }
}

fn check_set_cookie(v: &str, prefix: &str) {
    let name = p::cookie_name(v);
    if browser_cookie_name(v).starts_with(COOKIE) {
        assert!(
            is_reserved_cookie(name),
            "{v:?} passes as the preview's cookie"
        );
    }
    let out = p::rewrite_set_cookie(v, prefix);
    let mut parts = out.split(';');
    assert_eq!(
        parts.next().unwrap_or(""),
        v.split(';').next().unwrap_or("").trim()
    );
    for attr in parts {
        let (n, val) = attr.split_once('=').unwrap_or((attr, ""));
        let n = n.trim();
        assert!(!n.eq_ignore_ascii_case("domain"), "{v:?} -> {out:?}");
        if n.eq_ignore_ascii_case("path") && !prefix.is_empty() {
            assert!(
                val.trim().starts_with(&format!("{prefix}/")),
                "{v:?} -> {out:?}"
            );
        }
    }
    if HeaderValue::from_str(v).is_ok() {
        assert!(HeaderValue::from_str(&out).is_ok(), "{v:?} -> {out:?}");
    }
}

fn check_gate(
    f: &Fixed,
    headers: &HeaderMap,
    uri: &Uri,
    cookie_path: &str,
    own_host: &str,
    added: bool,
) {
    let gate = f.access.preview_gate();
    let verdict = gate.check(SID, &f.owner, headers, uri, cookie_path, own_host);
    match &verdict {
        PreviewAccess::Exchange { location, .. } => {
            // The exchange's redirect stays on the preview's origin.
            let base = Url::parse("http://3000-x.localhost/").unwrap();
            let to = base.join(location).expect("a redirect the browser follows");
            assert_eq!(to.origin(), base.origin(), "exchange to {location:?}");
            let query = location.split_once('?').map_or("", |(_, q)| q);
            assert!(
                !query.split('&').any(|kv| kv.starts_with("token=")),
                "{location:?}"
            );
        }
        PreviewAccess::Allowed | PreviewAccess::Denied => {}
    }
    if !added {
        assert_eq!(
            verdict,
            PreviewAccess::Denied,
            "no credential, yet {verdict:?}"
        );
    }
    // What the app gets: none of our credentials.
    let mut h = headers.clone();
    strip_credentials(&f.access, &mut h);
    if let Some(t) = claude_studio::auth::tokens::bearer(&h) {
        assert!(f.access.tokens.verify(t).is_none());
    }
    for v in h.get_all(header::COOKIE) {
        let v = v.to_str().expect("kept cookies are text");
        for pair in v.split(';') {
            let name = pair.split_once('=').map_or(pair, |(k, _)| k).trim();
            assert!(!is_reserved_cookie(name), "{v:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let input = Input::parse(data);
    let f = fixed();
    let domain_i = input.domain % DOMAINS.len();
    let domain = DOMAINS[domain_i];
    let names = &f.names[domain_i];
    let method = Method::from_bytes(input.method).unwrap_or(Method::GET);
    let mut headers = header_map(&input.headers);
    let mut target = input.target.to_string();
    let mut added = false;
    if input.credentials & 1 != 0 {
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {TOKEN}")).unwrap(),
        );
        added = true;
    }
    if input.credentials & 2 != 0 {
        target.push(if target.contains('?') { '&' } else { '?' });
        target.push_str(&format!("token={}", f.link));
        added = true;
    }
    if input.credentials & 4 != 0 {
        headers.append(
            header::COOKIE,
            HeaderValue::from_str(&format!("{COOKIE}={}", f.cookie)).unwrap(),
        );
        added = true;
    }
    let uri = Uri::try_from(target.as_str()).unwrap_or_else(|_| Uri::from_static("/"));
    let mut req = Request::builder()
        .method(method.clone())
        .uri(uri.clone())
        .body(Body::empty())
        .unwrap();
    *req.headers_mut() = headers.clone();

    // The guard's head checks.
    let n = head_bytes(&req);
    if check_head_for(names, &req).is_ok() {
        assert!(n <= MAX_HEAD_BYTES);
        assert!(headers.get_all(header::HOST).iter().count() <= 1);
        assert!(uri.authority().is_some() || headers.contains_key(header::HOST));
    }
    // Host names as any text (the guard reads the bytes as UTF-8).
    let any_text = input
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"host") || n.eq_ignore_ascii_case(b"origin"))
        .filter_map(|(_, v)| std::str::from_utf8(v).ok());
    for h in any_text.chain([input.location]) {
        check_hosts(h, domain);
        let allowed = names.host_allowed(h);
        assert_eq!(
            allowed,
            names.host_allowed(&h.to_ascii_uppercase()),
            "{h:?}"
        );
        check_host_name(h);
        let _ = names.origin_allowed(h);
        let _ = names.is_own_origin(h);
    }
    // Routing.
    let upgrade = claude_studio::http::is_websocket_upgrade(&headers);
    let host = hosts::request_host(&uri, &headers);
    let preview_host = host.and_then(|h| {
        check_hosts(h, domain);
        hosts::parse(h, domain)
    });
    let route = classify(&method, uri.path(), upgrade, preview_host.clone());
    let _ = (route.auth(), route.limit(), route.is_terminal());
    match (&preview_host, &route) {
        (Some(t), Route::HostPreview(r)) => assert_eq!(t, r),
        (Some(_), r) => panic!("a preview host routed to {r:?}"),
        (None, Route::PathPreview) => assert!(uri.path().starts_with("/preview/")),
        (None, r) => assert!(!uri.path().starts_with("/preview/"), "{r:?}"),
    }
    let peer: SocketAddr = "[2001:db8::1]:5000".parse().unwrap();
    let _ = ClientIp::resolve(Some(peer), &headers, input.trust_proxy).key();
    let cors = claude_studio::auth::cors::Cors::new(&["https://ide.example.com".into()]);
    let _ = cors.preflight(&method, &headers);

    // The preview's side: the path after the prefix, as `preview::serve_path` splits it.
    let (prefix, rest) = if input.path_preview {
        let after = uri.path().strip_prefix("/preview/").unwrap_or(uri.path());
        let (id, rest) = match after.find('/') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, ""),
        };
        (format!("/preview/{id}"), rest.to_string())
    } else {
        (String::new(), uri.path().to_string())
    };
    check_upstream_target(&rest, uri.query());
    let wants = p::wants_upgrade(&headers);
    let stripped = check_hop_by_hop(&headers, wants);
    check_forwarded(
        &stripped,
        input.trust_proxy,
        host,
        (!prefix.is_empty()).then_some(prefix.as_str()),
    );
    check_accept_encoding(&headers);
    let cookie_path = if prefix.is_empty() { "/" } else { &prefix };
    check_gate(
        f,
        &headers,
        &uri,
        cookie_path,
        host.unwrap_or_default(),
        added,
    );

    // The response's side.
    let sid_prefix = if input.path_preview {
        format!("/preview/{SID}")
    } else {
        String::new()
    };
    check_location(input.location, &sid_prefix);
    check_set_cookie(input.set_cookie, &sid_prefix);
    let _ = p::looks_like_html(input.set_cookie.as_bytes());
    let _ = p::not_ascii_compatible(Some(input.location), input.set_cookie.as_bytes());
});
