//! What the reliability harnesses share: the release server spawned (and
//! respawned) on a loopback port with a fixed instance and state directory,
//! a cleanup guard that removes every container of the run however it ends,
//! plain HTTP calls that report failures instead of panicking, a terminal
//! client that times keystroke echoes, and the machine's memory figures.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const BIN: &str = env!("CARGO_BIN_EXE_claude-studio");
pub const IMAGE: &str = "studio-test-busybox:latest";

/// One run's scope: its `--instance` label and state directory. Dropping it
/// kills the server and removes every container carrying the label.
pub struct Run {
    pub instance: String,
    pub state: PathBuf,
    pids: std::sync::Mutex<Vec<u32>>,
}

impl Run {
    pub fn new(kind: &str) -> Run {
        let instance = format!("rel-{kind}-{}", std::process::id());
        let state = std::env::temp_dir().join(&instance);
        let _ = std::fs::remove_dir_all(&state);
        Run {
            instance,
            state,
            pids: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Containers of this run, as the engine lists them.
    pub fn containers(&self) -> Vec<String> {
        let out = std::process::Command::new("docker")
            .args([
                "ps",
                "-aq",
                "--no-trunc",
                "--filter",
                &format!("label=studio.instance={}", self.instance),
            ])
            .output()
            .expect("docker ps");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(String::from)
            .collect()
    }

    /// Starts the release server for this run. `extra` adds flags.
    pub async fn start(&self, extra: &[&str]) -> Result<Studio> {
        let log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("{}.log", self.instance));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        // `RELIABILITY_BIN`: another build of the server (say, one with
        // `--features system-allocator` for a heap profiler).
        let bin = std::env::var_os("RELIABILITY_BIN").unwrap_or_else(|| BIN.into());
        let mut cmd = Command::new(bin);
        cmd.args(["--listen", "127.0.0.1:0", "--instance", &self.instance])
            .args(["--default-image", IMAGE])
            .arg("--state-dir")
            .arg(&self.state)
            // The harness is one client address making thousands of calls.
            .args([
                "--rate-limit-general",
                "off",
                "--rate-limit-container",
                "off",
            ])
            .args(["--rate-limit-ws", "off", "--rate-limit-preview", "off"])
            .args(["--max-sessions-per-owner", "100000"])
            .args(extra)
            .env("RUST_LOG", "claude_studio=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("spawn claude-studio")?;
        let pid = child.id().ok_or_else(|| anyhow!("server exited at once"))?;
        self.pids.lock().unwrap().push(pid);
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(rest) = line.strip_prefix("claude-studio listening on http://") {
                    return Ok(rest.trim().parse::<SocketAddr>()?);
                }
            }
            bail!("claude-studio exited before listening")
        })
        .await
        .context("claude-studio did not start listening")??;
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Studio {
            child,
            pid,
            addr,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .pool_max_idle_per_host(64)
                .build()?,
        })
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        for pid in self.pids.lock().unwrap().drain(..) {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let ids = self.containers();
        for chunk in ids.chunks(50) {
            let _ = std::process::Command::new("docker")
                .args(["rm", "-f", "-v"])
                .args(chunk)
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

pub struct Studio {
    child: Child,
    pub pid: u32,
    pub addr: SocketAddr,
    pub http: reqwest::Client,
}

impl Studio {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// One API call; `Err` only when no answer came (connection refused or
    /// reset, timeout).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await?;
        let status = r.status().as_u16();
        let text = r.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// The value of one `/metrics` series.
    pub async fn metric(&self, token: Option<&str>, name: &str) -> Result<u64> {
        let mut req = self.http.get(self.url("/metrics"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let text = req.send().await?.text().await?;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .ok_or_else(|| anyhow!("no {name} in /metrics"))
    }

    /// Kills the process with SIGKILL and waits for it.
    pub async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// SIGTERM, and waits (up to 30 s) for a graceful end.
    pub async fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
    }

    pub fn status_kib(&self, field: &str) -> u64 {
        proc_status_kib(self.pid, field).unwrap_or(0)
    }

    /// How many threads the server runs.
    pub fn threads(&self) -> u64 {
        proc_status_kib(self.pid, "Threads").unwrap_or(0)
    }

    /// A field of `/proc/PID/smaps_rollup` (KiB), e.g. `AnonHugePages`.
    pub fn smaps_kib(&self, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/smaps_rollup", self.pid))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                    .and_then(|v| v.split_whitespace().next()?.parse().ok())
            })
            .unwrap_or(0)
    }

    pub fn open_fds(&self) -> u64 {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .map(|d| d.count() as u64)
            .unwrap_or(0)
    }
}

pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// `MemAvailable` of the machine, KiB.
pub fn mem_available_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Resident memory of the engine's processes (dockerd, containerd and the
/// per-container shims), KiB.
pub fn engine_rss_kib() -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let comm = comm.trim();
        if comm == "dockerd" || comm == "containerd" || comm.starts_with("containerd-shim") {
            total += proc_status_kib(pid, "VmRSS").unwrap_or(0);
        }
    }
    total
}

pub fn pct(v: &mut [Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// A terminal client: one WebSocket, attached to one session.
pub struct Term {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub session: String,
    /// The tail of the session's output seen so far (for markers split
    /// across messages).
    tail: String,
    n: u64,
}

impl Term {
    async fn connect(
        addr: SocketAddr,
        token: Option<&str>,
    ) -> Result<WebSocketStream<MaybeTlsStream<TcpStream>>> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = format!("ws://{addr}/ws").into_client_request()?;
        if let Some(t) = token {
            req.headers_mut()
                .insert("authorization", format!("Bearer {t}").parse()?);
        }
        let (ws, _) = tokio::time::timeout(
            Duration::from_secs(20),
            tokio_tungstenite::connect_async(req),
        )
        .await
        .context("websocket connect timed out")??;
        Ok(ws)
    }

    /// Creates a session over the WebSocket and waits for its prompt.
    pub async fn create(addr: SocketAddr, token: Option<&str>) -> Result<Term> {
        let mut ws = Self::connect(addr, token).await?;
        ws.send(Message::Text(
            json!({"type": "create", "cols": 200, "rows": 50})
                .to_string()
                .into(),
        ))
        .await?;
        let mut t = Term {
            ws,
            session: String::new(),
            tail: String::new(),
            n: rand_u32() as u64,
        };
        let created = t
            .until(Duration::from_secs(60), |v| {
                v["type"] == "container_created"
            })
            .await?;
        t.session = created["sessionId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        t.until(Duration::from_secs(20), |v| v["type"] == "output")
            .await?;
        Ok(t)
    }

    /// Attaches to a session; returns once `attached` arrived.
    pub async fn attach(addr: SocketAddr, token: Option<&str>, session: &str) -> Result<Term> {
        let mut ws = Self::connect(addr, token).await?;
        ws.send(Message::Text(
            json!({"type": "attach", "sessionId": session})
                .to_string()
                .into(),
        ))
        .await?;
        let mut t = Term {
            ws,
            session: session.to_string(),
            tail: String::new(),
            n: rand_u32() as u64,
        };
        t.until(Duration::from_secs(20), |v| v["type"] == "attached")
            .await?;
        Ok(t)
    }

    /// Reads until `f` accepts a message; an `error` message or the end of
    /// the connection fails.
    pub async fn until(&mut self, within: Duration, f: impl Fn(&Value) -> bool) -> Result<Value> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = match tokio::time::timeout(left, self.ws.next()).await {
                Err(_) => bail!("timed out after {within:?}"),
                Ok(None) | Ok(Some(Ok(Message::Close(_)))) => bail!("connection closed"),
                Ok(Some(Err(e))) => bail!("websocket: {e}"),
                Ok(Some(Ok(Message::Text(t)))) => t,
                Ok(Some(Ok(_))) => continue,
            };
            let v: Value = serde_json::from_str(&msg)?;
            if v["type"] == "error" {
                bail!("error message: {v}");
            }
            if v["type"] == "output" && v["sessionId"] == self.session.as_str() {
                self.tail.push_str(v["data"].as_str().unwrap_or_default());
                if self.tail.len() > 4096 {
                    let mut cut = self.tail.len() - 256;
                    while !self.tail.is_char_boundary(cut) {
                        cut += 1;
                    }
                    self.tail.drain(..cut);
                }
            }
            if f(&v) {
                return Ok(v);
            }
        }
    }

    /// Types `cmd; echo MARKER` and waits (up to `within`) for the marker,
    /// which the shell computes so the typed line cannot match it. Returns
    /// the time from sending to the marker.
    pub async fn run(&mut self, cmd: &str, within: Duration) -> Result<Duration> {
        self.n += 1;
        let n = self.n;
        let marker = format!("M{}M", n + 1);
        self.tail.clear();
        let t = Instant::now();
        self.ws
            .send(Message::Text(
                json!({"type": "input", "sessionId": self.session,
                       "data": format!("{cmd}echo M$(({n}+1))M\n")})
                .to_string()
                .into(),
            ))
            .await?;
        let deadline = t + within;
        while !self.tail.contains(&marker) {
            let left = deadline.saturating_duration_since(Instant::now());
            self.until(left.max(Duration::from_millis(1)), |v| {
                v["type"] == "output"
            })
            .await
            .with_context(|| format!("waiting for {marker}"))?;
        }
        Ok(t.elapsed())
    }

    /// Closes politely.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.ws.close(None)).await;
    }

    /// Drops the TCP connection without a close frame (a client that
    /// vanished).
    pub fn drop_abruptly(self) {
        drop(self.ws);
    }
}

pub fn rand_u32() -> u32 {
    rand::random_range(0..1_000_000)
}

/// A uniformly random index below `n` (n > 0).
pub fn below(n: usize) -> usize {
    rand::random_range(0..n)
}
