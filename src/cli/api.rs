//! The server's API as the command line uses it: REST calls with the token,
//! errors read from the documented shape, and rate limits waited out as
//! the seed's recipe says (`Retry-After`, then `X-RateLimit-Reset`).

use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;

/// What went wrong, as one line: the server's error name and message, or
/// what kept the command from reaching it.
#[derive(Debug, Clone)]
pub struct CliError {
    pub name: String,
    pub message: String,
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

impl CliError {
    pub fn new(name: &str, message: impl Into<String>) -> CliError {
        CliError {
            name: name.into(),
            message: message.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, CliError>;

/// Waits for rate limits at most this many times per call, by default.
const RETRIES: u32 = 3;
/// Longest wait for one rate-limit retry.
const MAX_WAIT: Duration = Duration::from_secs(60);

pub struct Api {
    pub http: reqwest::Client,
    /// `http://host:port` (no trailing `/`).
    pub base: String,
    pub token: Option<String>,
    /// Waits for rate limits at most this many times per call.
    pub retries: u32,
}

fn unreachable(base: &str, e: &reqwest::Error) -> CliError {
    let why = if e.is_connect() {
        "connection refused or no route".to_string()
    } else if e.is_timeout() {
        "timed out".to_string()
    } else {
        e.to_string()
    };
    CliError::new(
        "ConnectionError",
        format!("cannot reach the server at {base} ({why}); start it with scripts/run, or give --url / STUDIO_URL"),
    )
}

/// How long a 429 asks to wait: `Retry-After` seconds, else until
/// `X-RateLimit-Reset` (Unix seconds).
fn wait_for(resp: &Response) -> Duration {
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    if let Some(s) = header("retry-after") {
        return Duration::from_secs(s.max(1));
    }
    if let Some(reset) = header("x-ratelimit-reset") {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        return Duration::from_secs(reset.saturating_sub(now).max(1));
    }
    Duration::from_secs(1)
}

impl Api {
    pub fn new(base: &str, token: Option<String>) -> Api {
        Api {
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client"),
            base: base.trim_end_matches('/').to_string(),
            token,
            retries: RETRIES,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The WebSocket URL (`ws://…/ws`).
    pub fn ws_url(&self) -> String {
        let rest = self
            .base
            .strip_prefix("https://")
            .map(|r| format!("wss://{r}"))
            .or_else(|| {
                self.base
                    .strip_prefix("http://")
                    .map(|r| format!("ws://{r}"))
            })
            .unwrap_or_else(|| self.base.clone());
        format!("{rest}/ws")
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let r = self.http.request(method, self.url(path));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Sends a request, waiting out rate limits (when the request can be
    /// sent again), and turns an error answer into a [`CliError`].
    pub async fn send(&self, req: RequestBuilder) -> Result<Response> {
        let mut req = req;
        let mut attempt = 0;
        loop {
            let spare = req.try_clone();
            let resp = req.send().await.map_err(|e| unreachable(&self.base, &e))?;
            if resp.status() == StatusCode::TOO_MANY_REQUESTS && attempt < self.retries {
                let wait = wait_for(&resp);
                if let Some(spare) = spare.filter(|_| wait <= MAX_WAIT) {
                    attempt += 1;
                    tokio::time::sleep(wait).await;
                    req = spare;
                    continue;
                }
            }
            if resp.status().is_success() {
                return Ok(resp);
            }
            return Err(error_of(resp).await);
        }
    }

    pub async fn json(&self, req: RequestBuilder) -> Result<Value> {
        let resp = self.send(req).await?;
        resp.json().await.map_err(|e| {
            CliError::new(
                "ProtocolError",
                format!("the server's answer is not JSON: {e}"),
            )
        })
    }
}

/// The documented error of an answer, or what the status says.
pub async fn error_of(resp: Response) -> CliError {
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    match serde_json::from_str::<Value>(&text) {
        Ok(v) if v["error"].is_string() => CliError::new(
            v["error"].as_str().unwrap_or("Error"),
            v["message"].as_str().unwrap_or("").to_string(),
        ),
        _ => CliError::new(
            "HttpError",
            format!("{status}: {}", text.chars().take(200).collect::<String>()),
        ),
    }
}
