//! CORS: closed unless `--cors-origin` lists origins. A listed origin may
//! call the REST API from a browser with `Authorization: Bearer` (no
//! cookies: credentials mode is never allowed), and read the rate-limit
//! headers. Nothing else ever gets an `Access-Control-Allow-Origin`.

use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

pub struct Cors {
    origins: Vec<String>,
}

const EXPOSED: &str =
    "x-ratelimit-limit, x-ratelimit-remaining, x-ratelimit-reset, retry-after, content-range, content-disposition";

impl Cors {
    pub fn new(origins: &[String]) -> Cors {
        Cors {
            origins: origins
                .iter()
                .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
                .collect(),
        }
    }

    /// The request's `Origin`, if it is a listed one.
    pub fn allowed<'a>(&self, headers: &'a HeaderMap) -> Option<&'a HeaderValue> {
        let origin = headers.get(header::ORIGIN)?;
        let o = origin
            .to_str()
            .ok()?
            .trim_end_matches('/')
            .to_ascii_lowercase();
        self.origins.contains(&o).then_some(origin)
    }

    /// A preflight from a listed origin, answered without a token (browsers
    /// never send one on a preflight).
    pub fn preflight(&self, method: &Method, headers: &HeaderMap) -> Option<Response> {
        if method != Method::OPTIONS || !headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return None;
        }
        let origin = self.allowed(headers)?.clone();
        let mut resp = StatusCode::NO_CONTENT.into_response();
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, HEAD, POST, PUT, DELETE"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type, range, accept"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        h.insert(header::VARY, HeaderValue::from_static("origin"));
        Some(resp)
    }

    /// Marks a response to a listed origin as readable by it.
    pub fn decorate(&self, origin: Option<HeaderValue>, resp: &mut Response) {
        let Some(origin) = origin else { return };
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSED),
        );
        h.append(header::VARY, HeaderValue::from_static("origin"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_origins_get_a_preflight() {
        let c = Cors::new(&["https://ide.example.com/".into()]);
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, "https://ide.example.com".parse().unwrap());
        h.insert(
            header::ACCESS_CONTROL_REQUEST_METHOD,
            "POST".parse().unwrap(),
        );
        let r = c.preflight(&Method::OPTIONS, &h).expect("listed origin");
        assert_eq!(
            r.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://ide.example.com"
        );
        assert!(r
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
            .is_none());
        // Every method the API has (files are written with PUT), and the
        // headers its clients send.
        let methods = r.headers()[header::ACCESS_CONTROL_ALLOW_METHODS]
            .to_str()
            .unwrap();
        for m in ["GET", "HEAD", "POST", "PUT", "DELETE"] {
            assert!(methods.contains(m), "{methods}");
        }
        let allowed = r.headers()[header::ACCESS_CONTROL_ALLOW_HEADERS]
            .to_str()
            .unwrap();
        assert!(allowed.contains("range"), "{allowed}");
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(c.preflight(&Method::OPTIONS, &h).is_none());
        assert!(Cors::new(&[]).allowed(&h).is_none());
    }
}
