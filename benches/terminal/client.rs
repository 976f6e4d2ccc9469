//! A minimal WebSocket client of the terminal protocol, written for timing:
//! it parses only the fields it needs and borrows the output text.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Longest wait for any single protocol step.
pub const STEP: Duration = Duration::from_secs(60);

#[derive(Deserialize)]
pub struct Msg<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    #[serde(rename = "sessionId", borrow, default)]
    pub session_id: Option<Cow<'a, str>>,
    #[serde(rename = "containerId", borrow, default)]
    pub container_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub data: Option<Cow<'a, str>>,
    #[serde(default)]
    pub replay: Option<bool>,
    #[serde(borrow, default)]
    pub message: Option<Cow<'a, str>>,
}

/// When the phases of one WebSocket `create` ended, from the send.
#[derive(Debug, Clone)]
pub struct Created {
    pub container_id: String,
    /// Wall clock (Unix nanos) when `create` was sent, to line up with engine events.
    pub sent_ns: i64,
    pub container_created: Duration,
    pub first_output: Duration,
}

pub struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    pub async fn connect(url: &str) -> Result<Ws> {
        let (stream, _) = tokio::time::timeout(STEP, tokio_tungstenite::connect_async(url))
            .await
            .context("websocket connect timed out")??;
        Ok(Ws { stream })
    }

    pub async fn send(&mut self, v: Value) -> Result<()> {
        self.stream
            .send(Message::Text(v.to_string().into()))
            .await?;
        Ok(())
    }

    pub async fn input(&mut self, session: &str, data: &str) -> Result<()> {
        self.send(json!({"type": "input", "sessionId": session, "data": data}))
            .await
    }

    /// Next text frame, by `deadline`.
    pub async fn text(
        &mut self,
        deadline: Instant,
    ) -> Result<tokio_tungstenite::tungstenite::Utf8Bytes> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.stream.next()).await {
                Err(_) => bail!("timed out waiting for a message"),
                Ok(None) => bail!("connection closed"),
                Ok(Some(Err(e))) => bail!("websocket error: {e}"),
                Ok(Some(Ok(Message::Text(t)))) => return Ok(t),
                Ok(Some(Ok(Message::Close(_)))) => bail!("connection closed"),
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// Reads until `f` returns Some for a message; `error` messages fail.
    pub async fn until<T>(
        &mut self,
        deadline: Instant,
        mut f: impl FnMut(&Msg<'_>) -> Option<T>,
    ) -> Result<T> {
        loop {
            let t = self.text(deadline).await?;
            let m: Msg<'_> =
                serde_json::from_str(&t).with_context(|| format!("bad message {t}"))?;
            if m.kind == "error" {
                bail!("server error: {}", m.message.as_deref().unwrap_or(&t));
            }
            if let Some(v) = f(&m) {
                return Ok(v);
            }
        }
    }

    /// Sends `create` and waits for `container_created` and then the
    /// session's first output (the shell prompt). Returns the session id.
    pub async fn create(&mut self) -> Result<(String, Created)> {
        let sent_ns = crate::events::now_nanos();
        let t0 = Instant::now();
        self.send(json!({"type": "create", "cols": 80, "rows": 24}))
            .await?;
        let deadline = t0 + STEP;
        let (sid, container_id, created) = self
            .until(deadline, |m| {
                (m.kind == "container_created").then(|| {
                    let sid = m.session_id.as_deref().unwrap_or_default().to_string();
                    (
                        sid,
                        m.container_id.as_deref().unwrap_or_default().to_string(),
                        t0.elapsed(),
                    )
                })
            })
            .await?;
        self.output_containing(&sid, "", deadline).await?;
        let first_output = t0.elapsed();
        Ok((
            sid,
            Created {
                container_id,
                sent_ns,
                container_created: created,
                first_output,
            },
        ))
    }

    /// Waits for an `output` of `session` whose text contains `needle`
    /// (any output when `needle` is empty).
    pub async fn output_containing(
        &mut self,
        session: &str,
        needle: &str,
        deadline: Instant,
    ) -> Result<()> {
        self.until(deadline, |m| {
            let ours = m.kind == "output" && m.session_id.as_deref() == Some(session);
            (ours
                && m.data
                    .as_deref()
                    .is_some_and(|d| !d.is_empty() && d.contains(needle)))
            .then_some(())
        })
        .await
    }

    /// Reads output of `session` until `marker` has been seen (across frame
    /// boundaries); returns the number of output bytes read.
    pub async fn read_to_marker(
        &mut self,
        session: &str,
        marker: &str,
        deadline: Instant,
    ) -> Result<u64> {
        let mut bytes = 0u64;
        let mut scan = MarkerScan::new(marker);
        self.until(deadline, |m| {
            if m.kind != "output" || m.session_id.as_deref() != Some(session) {
                return None;
            }
            let d = m.data.as_deref().unwrap_or_default();
            bytes += d.len() as u64;
            scan.feed(d.as_bytes()).then_some(())
        })
        .await?;
        Ok(bytes)
    }

    /// Keeps reading (so pings are answered) until the connection ends.
    pub fn drain(self) -> tokio::task::JoinHandle<()> {
        let mut stream = self.stream;
        tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} })
    }

    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.stream.close(None)).await;
    }
}

/// A shell command line whose completion is recognisable: the marker is
/// computed by the shell, so the echo of the typed line does not contain it.
pub fn with_marker(cmd: &str, n: u32) -> (String, String) {
    (
        format!("{cmd}; echo __E$(({n}+1))E__\n"),
        format!("__E{}E__", n + 1),
    )
}

pub fn err_ctx<T>(r: std::result::Result<T, tokio::task::JoinError>) -> Result<T> {
    r.map_err(|e| anyhow!("benchmark task failed: {e}"))
}

/// Finds a marker in a stream that arrives in chunks.
pub struct MarkerScan {
    marker: String,
    /// The stream's last `marker.len() - 1` bytes.
    tail: Vec<u8>,
}

impl MarkerScan {
    pub fn new(marker: &str) -> MarkerScan {
        MarkerScan {
            marker: marker.to_string(),
            tail: Vec::new(),
        }
    }

    /// Whether the marker has been seen, up to and including `chunk`.
    pub fn feed(&mut self, chunk: &[u8]) -> bool {
        let k = self.marker.len();
        self.tail.extend_from_slice(&chunk[..chunk.len().min(k)]);
        if self.find(chunk) || self.find(&self.tail) {
            return true;
        }
        if chunk.len() >= k {
            self.tail.clear();
            self.tail.extend_from_slice(&chunk[chunk.len() + 1 - k..]);
        } else if self.tail.len() >= k {
            self.tail.drain(..self.tail.len() + 1 - k);
        }
        false
    }

    fn find(&self, hay: &[u8]) -> bool {
        // str::contains has a vectorised fast path; terminal output is text.
        match std::str::from_utf8(hay) {
            Ok(s) => s.contains(self.marker.as_str()),
            Err(_) => hay
                .windows(self.marker.len())
                .any(|w| w == self.marker.as_bytes()),
        }
    }
}
