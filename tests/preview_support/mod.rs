//! Shared set-up for the preview tests: a session whose container runs our
//! `preview-upstream` test app, reachable through the preview.
#![allow(dead_code)]

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

pub const PORT: u16 = 8080;

pub struct Preview {
    pub server: Server,
    pub ws: Ws,
    pub sid: String,
    /// The session's container.
    pub cid: String,
    /// Follows no redirects and decodes nothing, so tests see what the proxy sent.
    pub http: reqwest::Client,
}

impl Preview {
    pub async fn start() -> Preview {
        Self::start_with(Server::start().await).await
    }

    pub async fn start_with(server: Server) -> Preview {
        let mut ws = server.ws().await;
        let (sid, cid) = ws.create(json!({})).await;
        let found = ws.run(&sid, "command -v preview-upstream").await;
        assert!(
            found.contains("/bin/preview-upstream"),
            "the test image {} lacks preview-upstream; build it with scripts/build-test-image.sh",
            test_image()
        );
        ws.input(&sid, &format!("preview-upstream {PORT} &\n"))
            .await;
        let (status, body) = server
            .post(
                "/api/preview/configure",
                &json!({"sessionId": sid, "port": PORT}).to_string(),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let p = Preview {
            server,
            ws,
            sid,
            cid,
            http,
        };
        let url = p.url("/small");
        let client = p.http.clone();
        eventually("the upstream app to answer through the preview", || {
            let (client, url) = (client.clone(), url.clone());
            async move {
                client
                    .get(&url)
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status() == 200)
                    .map(|_| ())
            }
        })
        .await;
        p
    }

    /// A URL under this session's preview prefix.
    pub fn url(&self, path: &str) -> String {
        self.server.url(&format!("/preview/{}{path}", self.sid))
    }

    /// The host-based origin's `Host` for this session.
    pub fn preview_host(&self) -> String {
        format!("{PORT}-{}.localhost:{}", self.sid, self.server.addr.port())
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }
}

/// Sends `request` as is over a fresh connection and returns the response
/// head and body (the request should say `Connection: close`).
pub async fn raw(addr: std::net::SocketAddr, request: &str) -> (String, Vec<u8>) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut buf))
        .await
        .expect("raw response")
        .unwrap();
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    (
        String::from_utf8_lossy(&buf[..split]).into_owned(),
        buf[split + 4..].to_vec(),
    )
}

/// The bytes `preview-upstream` serves on `/bin` and `/large`.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// The value of `<script nonce="…">` in a page, and how many scripts carry one.
pub fn nonce_of(page: &str) -> (String, usize) {
    let count = page.matches("<script nonce=\"").count();
    let start =
        page.find("<script nonce=\"").expect("an injected script") + "<script nonce=\"".len();
    let end = start + page[start..].find('"').unwrap();
    (page[start..end].to_string(), count)
}

pub async fn json_of(r: reqwest::Response) -> Value {
    r.json().await.unwrap()
}
