//! Who may open a session's preview, and what reaches the previewed app.
//!
//! The preview proxy calls [`PreviewGate::check`] once it knows the session
//! a request is for (path `/preview/:sessionId/…` or host
//! `PORT-SESSIONID.domain`), and [`strip_credentials`] on the headers it
//! forwards. With auth off every preview is open. With auth on a request
//! passes with the owner's bearer token, with a valid preview cookie, or
//! with a valid link token, which is exchanged for the cookie by a redirect
//! that drops it from the address bar. Anything else is the same 404 as an
//! unknown session, so a preview URL reveals nothing.
//!
//! The cookie is an ambient credential, so it counts only for the
//! preview's own requests (fetch metadata says `same-origin` or `none`, or
//! none is sent) and for navigations; a request another page makes (a
//! cross-site fetch, a WebSocket whose `Origin` is another origin) does not
//! get in with it, so one preview's page cannot read another's. The cookie
//! is set twice: `SameSite=Lax` for the preview in a tab of its own, and
//! `Partitioned; SameSite=None; Secure` for the preview embedded in the
//! studio page (a third-party context, where browsers send no other kind;
//! `*.localhost` counts as secure).

use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::owner::Owner;
use super::preview_token::{Purpose, COOKIE_TTL};
use super::Access;
use crate::clock::now_millis;
use crate::error::ApiError;

pub const COOKIE: &str = "studio_preview";
/// The partitioned copy, for the preview embedded in the studio page.
pub const EMBEDDED_COOKIE: &str = "studio_preview_p";

/// Whether a cookie name is the server's own (or could pass for it): such
/// cookies never reach the browser from the previewed app.
pub fn is_reserved_cookie(name: &str) -> bool {
    name.len() >= COOKIE.len() && name[..COOKIE.len()].eq_ignore_ascii_case(COOKIE)
}

#[derive(Debug, PartialEq, Eq)]
pub enum PreviewAccess {
    /// Forward the request.
    Allowed,
    /// Answer `302 Location` with these `Set-Cookie`s.
    Exchange {
        location: String,
        set_cookies: Vec<HeaderValue>,
    },
    /// Answer as for an unknown session.
    Denied,
}

impl PreviewAccess {
    /// The answer to send instead of forwarding, if any: the cookie
    /// exchange's redirect, or the same 404 as an unknown session.
    pub fn refusal(self, session_id: &str) -> Option<Response> {
        match self {
            PreviewAccess::Allowed => None,
            PreviewAccess::Exchange {
                location,
                set_cookies,
            } => {
                let mut r = StatusCode::FOUND.into_response();
                if let Ok(loc) = HeaderValue::try_from(location) {
                    r.headers_mut().insert(header::LOCATION, loc);
                }
                for c in set_cookies {
                    r.headers_mut().append(header::SET_COOKIE, c);
                }
                r.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                Some(r)
            }
            PreviewAccess::Denied => Some(ApiError::session_not_found(session_id).into_response()),
        }
    }
}

pub struct PreviewGate<'a> {
    pub access: &'a Access,
}

fn now_secs() -> u64 {
    now_millis() / 1000
}

/// Values of our cookies in `Cookie` headers (one per path it was set for).
fn cookie_values(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(k, _)| *k == COOKIE || *k == EMBEDDED_COOKIE)
        .map(|(_, v)| v)
}

/// Whether a request comes from the preview's own pages or is a
/// navigation, the only requests its cookie counts for. `own_host`: the
/// request's `Host` (the preview's origin, but for the scheme).
fn from_its_own_pages(headers: &HeaderMap, own_host: &str) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let navigation = text("sec-fetch-mode").is_some_and(|m| m.eq_ignore_ascii_case("navigate"));
    let foreign_site = text("sec-fetch-site").is_some_and(|s| {
        s.eq_ignore_ascii_case("same-site") || s.eq_ignore_ascii_case("cross-site")
    });
    if foreign_site && !navigation {
        return false;
    }
    // An `Origin` (what a WebSocket handshake or a POST carries) must be the
    // preview's own; a navigation's GET carries none.
    match text("origin") {
        None => true,
        Some(o) => o
            .split_once("://")
            .is_some_and(|(_, host)| host.trim_end_matches('/').eq_ignore_ascii_case(own_host)),
    }
}

/// The `token` query parameter, and the URI without it: a path on this
/// origin, its leading slashes folded into one (`//evil.example/x` would
/// be another host to a browser).
fn split_token(uri: &Uri) -> (Option<String>, String) {
    let path = format!("/{}", uri.path().trim_start_matches(['/', '\\']));
    let Some(q) = uri.query() else {
        return (None, path);
    };
    let mut token = None;
    let rest: Vec<&str> = q
        .split('&')
        .filter(|kv| match kv.strip_prefix("token=") {
            Some(t) => {
                token = Some(t.to_string());
                false
            }
            None => true,
        })
        .collect();
    let location = if rest.is_empty() {
        path
    } else {
        format!("{path}?{}", rest.join("&"))
    };
    (token, location)
}

impl PreviewGate<'_> {
    /// `cookie_path`: `/preview/SESSION` for path previews, `/` on a preview
    /// host; `own_host`: the request's `Host`.
    pub fn check(
        &self,
        session_id: &str,
        owner: &Owner,
        headers: &HeaderMap,
        uri: &Uri,
        cookie_path: &str,
        own_host: &str,
    ) -> PreviewAccess {
        let access = self.access;
        if !access.tokens.enabled() {
            return PreviewAccess::Allowed;
        }
        let now = now_secs();
        // A link token first: it is exchanged (and so dropped from the URL)
        // even when a cookie would do, so the app never receives it.
        let (token, location) = split_token(uri);
        if token.is_some_and(|t| {
            access
                .preview
                .verify(&t, Purpose::Link, session_id, owner, now)
        }) {
            let cookie = access
                .preview
                .mint(Purpose::Cookie, session_id, owner, now, COOKIE_TTL);
            let age = COOKIE_TTL.as_secs();
            let set_cookies = [
                format!(
                    "{COOKIE}={cookie}; Path={cookie_path}; Max-Age={age}; HttpOnly; SameSite=Lax"
                ),
                format!(
                    "{EMBEDDED_COOKIE}={cookie}; Path={cookie_path}; Max-Age={age}; HttpOnly; \
                     SameSite=None; Secure; Partitioned"
                ),
            ]
            .into_iter()
            .map(HeaderValue::try_from)
            .collect::<Result<Vec<_>, _>>();
            return match set_cookies {
                Ok(set_cookies) => PreviewAccess::Exchange {
                    location,
                    set_cookies,
                },
                Err(_) => PreviewAccess::Denied,
            };
        }
        if super::tokens::bearer(headers)
            .and_then(|t| access.tokens.verify(t))
            .as_ref()
            == Some(owner)
        {
            return PreviewAccess::Allowed;
        }
        if from_its_own_pages(headers, own_host)
            && cookie_values(headers).any(|c| {
                access
                    .preview
                    .verify(c, Purpose::Cookie, session_id, owner, now)
            })
        {
            return PreviewAccess::Allowed;
        }
        PreviewAccess::Denied
    }

    /// The `previewUrl` to hand the owner: with a link token when auth is on.
    pub fn preview_url(&self, base: &str, session_id: &str, owner: &Owner) -> String {
        if !self.access.tokens.enabled() {
            return base.to_string();
        }
        let t = self.access.preview.mint(
            Purpose::Link,
            session_id,
            owner,
            now_secs(),
            super::preview_token::LINK_TTL,
        );
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}token={t}")
    }
}

/// Removes the API's and the preview's credentials from headers bound for
/// the previewed app: it must never see the user's token or our cookie. An
/// `Authorization` that is not one of our tokens is the app's own (HTTP
/// auth in the previewed app) and passes.
pub fn strip_credentials(access: &Access, headers: &mut HeaderMap) {
    let ours = super::tokens::bearer(headers).is_some_and(|t| access.tokens.verify(t).is_some());
    if ours {
        headers.remove(header::AUTHORIZATION);
    }
    // Most requests carry one `Cookie` line (or none) with none of ours
    // and no empty pair to tidy: it passes as it is.
    let mut lines = headers.get_all(header::COOKIE).iter();
    let plain = match (lines.next(), lines.next()) {
        (None, _) => true,
        (Some(v), None) => v.to_str().is_ok_and(|v| {
            v.split(';').map(str::trim).all(|pair| {
                !pair.is_empty()
                    && !is_reserved_cookie(pair.split_once('=').map_or(pair, |(k, _)| k))
            })
        }),
        _ => false,
    };
    if plain {
        return;
    }
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| {
            !pair.is_empty() && !is_reserved_cookie(pair.split_once('=').map_or(*pair, |(k, _)| k))
        })
        .map(String::from)
        .collect();
    headers.remove(header::COOKIE);
    if !kept.is_empty() {
        if let Ok(v) = HeaderValue::try_from(kept.join("; ")) {
            headers.insert(header::COOKIE, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn access(tokens: &[&str]) -> Access {
        let s = Settings {
            api_tokens: tokens.iter().map(|t| t.to_string()).collect(),
            ..Settings::default()
        };
        Access::new(&s, None)
    }

    #[test]
    fn open_without_auth() {
        let a = access(&[]);
        let g = PreviewGate { access: &a };
        let uri: Uri = "/preview/session-a/".parse().unwrap();
        assert_eq!(
            g.check(
                "session-a",
                &Owner::default(),
                &HeaderMap::new(),
                &uri,
                "/preview/session-a",
                "localhost:1"
            ),
            PreviewAccess::Allowed
        );
        assert_eq!(
            g.preview_url("/preview/session-a", "session-a", &Owner::default()),
            "/preview/session-a"
        );
    }

    /// Found by the `preview_headers` fuzz target: on a preview host the
    /// exchange redirected to the path as sent, so `//evil.example/x`
    /// left for another host.
    #[test]
    fn the_exchange_redirect_stays_on_the_preview_origin() {
        let a = access(&["tok-1"]);
        let g = PreviewGate { access: &a };
        let owner = a.tokens.verify("tok-1").unwrap();
        for (path, want) in [
            ("//evil.example/x", "/evil.example/x?y=1"),
            ("///evil.example", "/evil.example?y=1"),
            ("/", "/?y=1"),
            ("/a//b", "/a//b?y=1"),
        ] {
            let uri: Uri = g
                .preview_url(&format!("{path}?y=1"), "session-a", &owner)
                .parse()
                .unwrap();
            let verdict = g.check("session-a", &owner, &HeaderMap::new(), &uri, "/", "h:1");
            let PreviewAccess::Exchange { location, .. } = verdict else {
                panic!("{path}: {verdict:?}");
            };
            assert_eq!(location, want, "{path}");
        }
    }

    #[test]
    fn link_token_is_exchanged_for_a_cookie_that_then_opens_the_preview() {
        let a = access(&["tok-1", "tok-2"]);
        let g = PreviewGate { access: &a };
        let owner = a.tokens.verify("tok-1").unwrap();
        let other = a.tokens.verify("tok-2").unwrap();
        let url = g.preview_url("/preview/session-a", "session-a", &owner);
        let uri: Uri = format!(
            "{}&x=1",
            url.replacen("session-a", "session-a/index.html", 1)
        )
        .parse()
        .unwrap();
        let none = HeaderMap::new();
        let PreviewAccess::Exchange {
            location,
            set_cookies,
        } = g.check(
            "session-a",
            &owner,
            &none,
            &uri,
            "/preview/session-a",
            "localhost:1",
        )
        else {
            panic!("link token not accepted")
        };
        assert_eq!(location, "/preview/session-a/index.html?x=1");
        let exchange = PreviewAccess::Exchange {
            location: location.clone(),
            set_cookies: set_cookies.clone(),
        };
        let r = exchange.refusal("session-a").unwrap();
        assert_eq!(r.status(), 302);
        assert_eq!(
            r.headers()[header::LOCATION],
            "/preview/session-a/index.html?x=1"
        );
        assert_eq!(
            PreviewAccess::Denied.refusal("session-a").unwrap().status(),
            404
        );
        assert!(PreviewAccess::Allowed.refusal("session-a").is_none());
        assert_eq!(set_cookies.len(), 2);
        let sc = set_cookies[0].to_str().unwrap();
        assert!(
            sc.contains("HttpOnly")
                && sc.contains("Path=/preview/session-a;")
                && sc.contains("SameSite=Lax"),
            "{sc}"
        );
        let embedded = set_cookies[1].to_str().unwrap();
        assert!(
            embedded.starts_with("studio_preview_p=")
                && embedded.contains("Partitioned")
                && embedded.contains("SameSite=None; Secure"),
            "{embedded}"
        );
        // The same link does not open another owner's or another session's preview.
        assert_eq!(
            g.check("session-a", &other, &none, &uri, "/", "localhost:1"),
            PreviewAccess::Denied
        );
        assert_eq!(
            g.check("session-b", &owner, &none, &uri, "/", "localhost:1"),
            PreviewAccess::Denied
        );

        let cookie = sc.split(';').next().unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            format!("theme=dark; {cookie}").parse().unwrap(),
        );
        let plain: Uri = "/preview/session-a/app.js".parse().unwrap();
        assert_eq!(
            g.check("session-a", &owner, &h, &plain, "/", "localhost:1"),
            PreviewAccess::Allowed
        );
        assert_eq!(
            g.check("session-a", &other, &h, &plain, "/", "localhost:1"),
            PreviewAccess::Denied
        );
        assert_eq!(
            g.check("session-a", &owner, &none, &plain, "/", "localhost:1"),
            PreviewAccess::Denied
        );

        let mut bearer = HeaderMap::new();
        bearer.insert(header::AUTHORIZATION, "Bearer tok-1".parse().unwrap());
        assert_eq!(
            g.check("session-a", &owner, &bearer, &plain, "/", "localhost:1"),
            PreviewAccess::Allowed
        );
        bearer.insert(header::AUTHORIZATION, "Bearer tok-2".parse().unwrap());
        assert_eq!(
            g.check("session-a", &owner, &bearer, &plain, "/", "localhost:1"),
            PreviewAccess::Denied
        );

        // What the app behind the preview gets: neither credential.
        h.insert(header::AUTHORIZATION, "Bearer tok-1".parse().unwrap());
        strip_credentials(&a, &mut h);
        assert!(h.get(header::AUTHORIZATION).is_none());
        assert_eq!(h[header::COOKIE], "theme=dark");
    }

    #[test]
    fn the_cookie_counts_only_for_the_previews_own_requests_and_navigations() {
        let a = access(&["tok-1"]);
        let g = PreviewGate { access: &a };
        let owner = a.tokens.verify("tok-1").unwrap();
        let cookie = a
            .preview
            .mint(Purpose::Cookie, "session-a", &owner, now_secs(), COOKIE_TTL);
        let uri: Uri = "/app.js".parse().unwrap();
        let host = "3000-session-a.localhost:1";
        let with = |extra: &[(&str, &str)]| {
            let mut h = HeaderMap::new();
            h.insert(
                header::COOKIE,
                format!("{COOKIE}={cookie}").parse().unwrap(),
            );
            for (k, v) in extra {
                h.insert(
                    axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
            g.check("session-a", &owner, &h, &uri, "/", host)
        };
        // Its own pages, the address bar, clients without fetch metadata.
        assert_eq!(with(&[]), PreviewAccess::Allowed);
        assert_eq!(
            with(&[("sec-fetch-site", "same-origin")]),
            PreviewAccess::Allowed
        );
        assert_eq!(with(&[("sec-fetch-site", "none")]), PreviewAccess::Allowed);
        // Embedded in the studio, or opened from a link: navigations.
        assert_eq!(
            with(&[
                ("sec-fetch-site", "cross-site"),
                ("sec-fetch-mode", "navigate")
            ]),
            PreviewAccess::Allowed
        );
        // Another page's fetch or socket does not get in with the cookie.
        assert_eq!(
            with(&[("sec-fetch-site", "same-site"), ("sec-fetch-mode", "cors")]),
            PreviewAccess::Denied
        );
        assert_eq!(
            with(&[
                ("sec-fetch-site", "cross-site"),
                ("sec-fetch-mode", "no-cors")
            ]),
            PreviewAccess::Denied
        );
        assert_eq!(
            with(&[("origin", "http://3000-session-b.localhost:1")]),
            PreviewAccess::Denied
        );
        assert_eq!(with(&[("origin", "null")]), PreviewAccess::Denied);
        assert_eq!(
            with(&[("origin", &format!("http://{host}"))]),
            PreviewAccess::Allowed
        );
        // A form posted to it from another page: not its own either.
        assert_eq!(
            with(&[
                ("sec-fetch-site", "cross-site"),
                ("sec-fetch-mode", "navigate"),
                ("origin", "http://evil.example")
            ]),
            PreviewAccess::Denied
        );
    }
}
