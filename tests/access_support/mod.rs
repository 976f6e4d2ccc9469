//! Helpers for the access tests: requests with chosen headers, and
//! WebSocket upgrades whose refusal we can inspect.

#![allow(dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Error as WsError;

use crate::common::{Server, Ws};

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn num(&self, name: &str) -> u64 {
        self.header(name)
            .unwrap_or_else(|| panic!("no {name} header (status {}, {})", self.status, self.body))
            .parse()
            .unwrap()
    }

    /// `X-RateLimit-Limit`, `-Remaining`; and checks `-Reset` is a Unix time
    /// no later than `window_secs` from now.
    pub fn rate(&self, window_secs: u64) -> (u64, u64) {
        let reset = self.num("x-ratelimit-reset");
        let now = unix_now();
        assert!(
            reset >= now && reset <= now + window_secs + 1,
            "X-RateLimit-Reset {reset} should be within {window_secs}s of {now}"
        );
        (
            self.num("x-ratelimit-limit"),
            self.num("x-ratelimit-remaining"),
        )
    }

    pub fn assert_error(&self, status: u16, name: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.body["error"], name, "{}", self.body);
        assert!(
            self.body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}",
            self.body
        );
    }

    /// The documented 429: headers, `Retry-After`, `RateLimitError` body.
    pub fn assert_limited(&self, limit: u64) {
        self.assert_error(429, "RateLimitError");
        assert_eq!(self.body["retryable"], true, "{}", self.body);
        assert_eq!(self.body["statusCode"], 429, "{}", self.body);
        let (l, remaining) = self.rate(15 * 60);
        assert_eq!((l, remaining), (limit, 0));
        let retry = self.num("retry-after");
        assert!(retry >= 1, "Retry-After {retry}");
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub async fn send(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Reply {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = server.http.request(method, server.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.json().await.unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
    }
}

pub async fn get(server: &Server, path: &str, headers: &[(&str, &str)]) -> Reply {
    send(server, "GET", path, headers, None).await
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A WebSocket upgrade to `path_and_query` with extra headers: the
/// connection, or the HTTP refusal.
pub async fn ws_connect(
    server: &Server,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> Result<Ws, Reply> {
    let url = format!("ws://{}{}", server.addr, path_and_query);
    let mut req = url.into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(
            reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((stream, _)) => Ok(Ws {
            stream,
            output: Default::default(),
        }),
        Err(WsError::Http(resp)) => {
            let status = resp.status().as_u16();
            let mut headers = reqwest::header::HeaderMap::new();
            for (k, v) in resp.headers() {
                headers.insert(
                    reqwest::header::HeaderName::from_bytes(k.as_str().as_bytes()).unwrap(),
                    reqwest::header::HeaderValue::from_bytes(v.as_bytes()).unwrap(),
                );
            }
            let body = resp
                .body()
                .as_ref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            Err(Reply {
                status,
                headers,
                body,
            })
        }
        Err(e) => panic!("websocket connect failed: {e}"),
    }
}

/// Sends one message and returns the next reply (skipping output/progress).
pub async fn ask(ws: &mut Ws, msg: Value) -> Value {
    ws.send(msg).await;
    loop {
        let v = ws.next().await.expect("connection closed");
        if v["type"] != "output" && v["type"] != "progress" {
            return v;
        }
    }
}

/// The connection still answers.
pub async fn still_open(ws: &mut Ws) {
    let v = ask(ws, serde_json::json!({"type": "ping"})).await;
    assert_eq!(v["type"], "pong", "{v}");
}
