//! The studio page's door: the page Vite built into `web/dist` (committed),
//! embedded in the binary at build time with its gzip and brotli forms (see
//! `build.rs`), served at `/`, `/s/SESSIONID` (the same page: it routes in
//! the browser) and `/assets/…`.
//!
//! The page is the only one served on the server's own origin (previews
//! have origins of their own, see `preview::origin`), so its policy is
//! strict: its own scripts only, its own origin to talk to, previews only
//! in frames, and never framed itself.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// One embedded file of the built page.
pub struct Asset {
    /// From the site's root: `/index.html`, `/assets/index-….js`.
    pub path: &'static str,
    pub content_type: &'static str,
    pub etag: &'static str,
    pub raw: &'static [u8],
    pub gzip: &'static [u8],
    pub brotli: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/studio_assets.rs"));

fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// Which embedded file a studio path stands for: the page itself for `/`
/// and `/s/…`, an asset by its name.
pub fn asset_for(path: &str) -> Option<&'static Asset> {
    if path == "/" || path.starts_with("/s/") {
        find("/index.html")
    } else {
        find(path)
    }
}

/// The encodings a client takes, best first: `br`, `gzip`, none.
fn preferred(headers: &HeaderMap, a: &Asset) -> (&'static [u8], Option<&'static str>) {
    let accepted = |name: &str| {
        headers
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|part| {
                let mut it = part.split(';');
                let coding = it.next().unwrap_or_default().trim();
                let refused =
                    it.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
                coding.eq_ignore_ascii_case(name) && !refused
            })
    };
    // Compression that does not pay (a tiny file) is not worth the header.
    if accepted("br") && a.brotli.len() < a.raw.len() {
        (a.brotli, Some("br"))
    } else if accepted("gzip") && a.gzip.len() < a.raw.len() {
        (a.gzip, Some("gzip"))
    } else {
        (a.raw, None)
    }
}

/// The page's Content-Security-Policy: `host` is the one the browser used
/// (its WebSocket goes there), `preview_domain` where preview frames live.
fn policy(host: Option<&str>, preview_domain: &str) -> String {
    let sockets = host
        .map(|h| format!(" ws://{h} wss://{h}"))
        .unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; connect-src 'self'{sockets}; \
         frame-src http://*.{preview_domain}:* https://*.{preview_domain}:*; \
         frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
    )
}

/// Serves the studio file `path` stands for.
pub fn serve(path: &str, headers: &HeaderMap, preview_domain: &str) -> Response {
    let Some(a) = asset_for(path) else {
        let what = if ASSETS.is_empty() {
            "The studio page is not built into this binary (web/dist was empty when it was compiled)"
        } else {
            "No such file of the studio page"
        };
        return (StatusCode::NOT_FOUND, what).into_response();
    };
    let page = a.path == "/index.html";
    let mut h = HeaderMap::new();
    h.insert(header::ETAG, HeaderValue::from_static(a.etag));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if page {
            // Always asked again, so a new build is picked up at once; its
            // assets' names change with their content.
            "no-cache"
        } else {
            "public, max-age=31536000, immutable"
        }),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if page {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        if let Ok(v) = HeaderValue::from_str(&policy(host, preview_domain)) {
            h.insert(header::CONTENT_SECURITY_POLICY, v);
        }
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
    }
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == a.etag || t.trim() == "*"));
    if unchanged {
        return (StatusCode::NOT_MODIFIED, h).into_response();
    }
    let (body, encoding) = preferred(headers, a);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    if let Some(e) = encoding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(e));
    }
    (StatusCode::OK, h, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_built_in_and_routes_in_the_browser() {
        let index = asset_for("/").expect("web/dist/index.html is embedded");
        assert_eq!(index.path, "/index.html");
        assert!(std::ptr::eq(asset_for("/s/session-abc").unwrap(), index));
        assert!(asset_for("/assets/nope.js").is_none());
        for a in ASSETS {
            assert!(!a.raw.is_empty(), "{}", a.path);
            let mut back = Vec::new();
            use std::io::Read;
            flate2::read::GzDecoder::new(a.gzip)
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, a.raw, "{}", a.path);
        }
    }

    #[test]
    fn the_best_accepted_encoding_is_served() {
        let index = asset_for("/").unwrap();
        let mut h = HeaderMap::new();
        assert_eq!(preferred(&h, index).1, None);
        h.insert(
            header::ACCEPT_ENCODING,
            "gzip, deflate, br".parse().unwrap(),
        );
        assert_eq!(preferred(&h, index).1, Some("br"));
        h.insert(header::ACCEPT_ENCODING, "gzip, br;q=0".parse().unwrap());
        assert_eq!(preferred(&h, index).1, Some("gzip"));
    }
}
