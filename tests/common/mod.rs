//! The integration-test harness: starts the real `claude-studio` binary on a
//! free loopback port against the real Docker engine, and gives tests typed
//! helpers to speak its REST and WebSocket protocols. Every server gets its
//! own `--instance` label; dropping the `Server` kills it and removes every
//! container carrying that label, even when the test failed.
#![allow(dead_code)]

pub mod redis;
pub mod registry;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const WAIT: Duration = Duration::from_secs(20);

pub fn test_image() -> String {
    std::env::var("STUDIO_TEST_IMAGE").unwrap_or_else(|_| "studio-test-busybox:latest".into())
}

pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Where a test server of `instance` keeps its state store (shared by the
/// servers of one instance, as a restart's are).
pub fn state_root(instance: &str) -> std::path::PathBuf {
    std::env::temp_dir()
        .join("studio-test-state")
        .join(instance)
}

pub struct Server {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub instance: String,
    pub http: reqwest::Client,
    cleanup: bool,
}

#[derive(Clone)]
pub struct ServerBuilder {
    args: Vec<String>,
    env: Vec<(String, String)>,
    instance: String,
    /// Whether the server keeps its default warm pool (see `default_pool`).
    pool: bool,
}

impl ServerBuilder {
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, a: I) -> Self {
        self.args.extend(a.into_iter().map(Into::into));
        self
    }
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }
    /// Keeps the server's default warm pool. Test servers run without one
    /// (`--warm-pool 0`) unless a test asks, here or with its own
    /// `--warm-pool` (the later flag counts): most tests count containers,
    /// and a pool filling in the background would make those counts, and
    /// the engine's load, depend on timing.
    pub fn default_pool(mut self) -> Self {
        self.pool = true;
        self
    }
    /// Reuse another server's label scope (for restart tests).
    pub fn instance(mut self, i: &str) -> Self {
        self.instance = i.into();
        self
    }
    pub async fn start(self) -> Server {
        self.start_on("127.0.0.1:0").await
    }
    pub async fn start_on(self, listen: &str) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_claude-studio"));
        cmd.arg("--listen")
            .arg(listen)
            .arg("--instance")
            .arg(&self.instance)
            .arg("--default-image")
            .arg(test_image())
            .arg("--state-dir")
            .arg(state_root(&self.instance))
            .args(if self.pool {
                &[][..]
            } else {
                &["--warm-pool", "0"][..]
            })
            .args(&self.args)
            .env("RUST_LOG", "claude_studio=debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start claude-studio");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let addr = tokio::time::timeout(WAIT, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(rest) = line.strip_prefix("claude-studio listening on http://") {
                    return rest.trim().parse::<SocketAddr>().unwrap();
                }
            }
            panic!("claude-studio exited before listening");
        })
        .await
        .expect("claude-studio did not start listening");
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Server {
            child: Some(child),
            addr,
            instance: self.instance,
            http: reqwest::Client::new(),
            cleanup: true,
        }
    }
}

impl Server {
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            args: Vec::new(),
            env: Vec::new(),
            instance: unique("t"),
            pool: false,
        }
    }

    pub async fn start() -> Server {
        Server::builder().start().await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(self.url(path)).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        let r = self.http.delete(self.url(path)).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Creates a session over REST; returns (sessionId, containerId).
    pub async fn create_rest(&self) -> (String, String) {
        let (status, body) = self.post("/api/containers", "{}").await;
        assert_eq!(status, 200, "{body}");
        (
            body["sessionId"].as_str().unwrap().into(),
            body["containerId"].as_str().unwrap().into(),
        )
    }

    pub async fn ws(&self) -> Ws {
        Ws::connect(&self.ws_url()).await
    }

    /// The value of one `/metrics` series (a request that touches no session).
    pub async fn metric(&self, name: &str) -> u64 {
        let text = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in /metrics:\n{text}"))
    }

    /// Sends SIGTERM and waits for the process to end; containers are kept.
    pub async fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("server already stopped");
        let pid = child.id().unwrap() as i32;
        unsafe_kill(pid, 15);
        tokio::time::timeout(Duration::from_secs(15), child.wait())
            .await
            .expect("server did not stop")
            .unwrap()
    }

    /// Kills the server with SIGKILL (no graceful stop) and waits for it.
    pub async fn kill(&mut self) {
        let mut child = self.child.take().expect("server already stopped");
        child.kill().await.unwrap();
    }

    /// Leaves this server's containers to whoever takes over the instance.
    pub fn keep_containers(&mut self) {
        self.cleanup = false;
    }

    /// The sessions the state store holds, by id.
    pub fn recorded(&self) -> std::collections::HashMap<String, Value> {
        recorded_sessions(&self.instance)
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }
}

fn unsafe_kill(pid: i32, sig: i32) {
    let _ = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// Removes every container of a label scope (runs in Drop, so blocking).
pub fn remove_instance_containers(instance: &str) {
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=studio.instance={instance}"),
        ])
        .output();
    if let Ok(out) = out {
        let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(String::from)
            .collect();
        if !ids.is_empty() {
            let _ = std::process::Command::new("docker")
                .arg("rm")
                .arg("-f")
                .args(&ids)
                .output();
        }
    }
}

/// The warm workspace slots of a label scope (see `session::slot`).
pub fn slots_dir(instance: &str) -> std::path::PathBuf {
    std::path::Path::new("/run/claude-studio/instances")
        .join(instance)
        .join("slots")
}

/// Unmounts and removes a label scope's slots, which a killed server
/// leaves mounted; never a recursive removal, which would reach into a
/// mounted workspace.
pub fn release_slots(instance: &str) {
    let dir = slots_dir(instance);
    for slot in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        for _ in 0..8 {
            let ok = std::process::Command::new("umount")
                .arg("-l")
                .arg(slot.path())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                break;
            }
        }
        let _ = std::fs::remove_dir(slot.path());
    }
    let _ = std::fs::remove_dir(&dir);
    let _ = dir.parent().map(std::fs::remove_dir);
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.start_kill();
        }
        if self.cleanup {
            remove_instance_containers(&self.instance);
            release_slots(&self.instance);
            let _ = std::fs::remove_dir_all(state_root(&self.instance));
        }
    }
}

/// The session records of a label scope's state store, by session id.
pub fn recorded_sessions(instance: &str) -> std::collections::HashMap<String, Value> {
    let dir = state_root(instance)
        .join("instances")
        .join(instance)
        .join("sessions");
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| serde_json::from_slice::<Value>(&std::fs::read(e.path()).ok()?).ok())
        .map(|v| (v["sessionId"].as_str().unwrap_or_default().to_string(), v))
        .collect()
}

/// Containers of a label scope, as the engine lists them.
pub fn instance_containers(instance: &str) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            &format!("label=studio.instance={instance}"),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// Runs the docker CLI, which must succeed; returns what it printed, trimmed.
pub fn docker(args: &[&str]) -> String {
    let out = std::process::Command::new("docker")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn docker_inspect(kind: &str, id: &str) -> Option<Value> {
    let out = std::process::Command::new("docker")
        .args([kind, "inspect", id])
        .output()
        .unwrap();
    if !out.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    v.get(0).cloned()
}

/// Polls `f` until it returns Some, or panics after `WAIT`.
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub struct Ws {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Terminal text seen so far, per session, from `output` messages.
    pub output: std::collections::HashMap<String, String>,
}

impl Ws {
    pub async fn connect(url: &str) -> Ws {
        let (stream, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket connect");
        Ws {
            stream,
            output: Default::default(),
        }
    }

    /// Connects with extra request headers (a bearer token, say).
    pub async fn connect_with(url: &str, headers: &[(&str, &str)]) -> Ws {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = url.into_client_request().unwrap();
        for (k, v) in headers {
            req.headers_mut().insert(
                reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let (stream, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("websocket connect");
        Ws {
            stream,
            output: Default::default(),
        }
    }

    pub async fn send(&mut self, v: Value) {
        self.stream
            .send(Message::Text(v.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn send_text(&mut self, s: &str) {
        self.stream
            .send(Message::Text(s.to_string().into()))
            .await
            .unwrap();
    }

    /// Next JSON message; `None` when the connection closed.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("timed out waiting for a message")?;
            match msg {
                Ok(Message::Text(t)) => {
                    let v: Value = serde_json::from_str(&t).expect("server sent invalid JSON");
                    if v["type"] == "output" {
                        let sid = v["sessionId"].as_str().unwrap_or_default().to_string();
                        self.output
                            .entry(sid)
                            .or_default()
                            .push_str(v["data"].as_str().unwrap_or_default());
                    }
                    return Some(v);
                }
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    /// Reads until a message of `kind` arrives and returns it.
    pub async fn expect(&mut self, kind: &str) -> Value {
        loop {
            match self.next().await {
                Some(v) if v["type"] == kind => return v,
                Some(v) if v["type"] == "error" && kind != "error" => {
                    panic!("expected {kind}, got error {v}")
                }
                Some(_) => continue,
                None => panic!("connection closed while waiting for {kind}"),
            }
        }
    }

    /// Creates a session and returns (sessionId, containerId). The terminal
    /// is wide unless `extra` says otherwise, so typed lines never wrap.
    pub async fn create(&mut self, extra: Value) -> (String, String) {
        let mut msg = json!({"type": "create", "cols": 500, "rows": 50});
        if let Value::Object(m) = extra {
            for (k, v) in m {
                msg[k] = v;
            }
        }
        self.send(msg).await;
        let created = self.expect("container_created").await;
        assert_eq!(created["status"], "running");
        (
            created["sessionId"].as_str().unwrap().into(),
            created["containerId"].as_str().unwrap().into(),
        )
    }

    pub async fn input(&mut self, session: &str, data: &str) {
        self.send(json!({"type": "input", "sessionId": session, "data": data}))
            .await;
    }

    /// Reads messages until the session's output contains `needle`; returns all output so far.
    pub async fn read_until(&mut self, session: &str, needle: &str) -> String {
        let from = self.output.get(session).map(|o| o.len()).unwrap_or(0);
        self.read_until_after(session, needle, from).await
    }

    /// Like `read_until`, but only output after byte `from` counts. Only the
    /// new tail is searched each time, so long outputs stay linear.
    async fn read_until_after(&mut self, session: &str, needle: &str, from: usize) -> String {
        let mut searched = from;
        loop {
            if let Some(o) = self.output.get(session) {
                let mut start = searched.saturating_sub(needle.len()).max(from);
                while !o.is_char_boundary(start) {
                    start -= 1;
                }
                if o.len() > start && o[start..].contains(needle) {
                    return o.clone();
                }
                searched = o.len();
            }
            match self.next().await {
                Some(v) if v["type"] == "error" => {
                    panic!("error while waiting for {needle:?}: {v}")
                }
                Some(_) => {}
                None => panic!(
                    "connection closed while waiting for {needle:?}; output so far: {:?}",
                    self.output.get(session)
                ),
            }
        }
    }

    /// Runs a command in the shell and returns what it printed, without the
    /// terminal's echo of the typed line: the output is what comes between
    /// two markers the shell computes (`$((…))`), so no echo of the typed
    /// line can match them, however the line editor redraws or wraps it.
    pub async fn run(&mut self, session: &str, cmd: &str) -> String {
        let n: u32 = rand_marker();
        let start = format!("__start_{}__", n + 2);
        let marker = format!("__done_{}__", n + 1);
        let before = self.output.get(session).map(|s| s.len()).unwrap_or(0);
        self.input(
            session,
            &format!("echo __start_$(({n}+2))__; {cmd}; echo __done_$(({n}+1))__\n"),
        )
        .await;
        let all = self.read_until_after(session, &marker, before).await;
        let fresh = &all[before..];
        let end = fresh.find(&marker).expect("marker");
        let begin = fresh[..end]
            .find(&start)
            .expect("the shell prints the start marker before the end marker")
            + start.len();
        let out = &fresh[begin..end];
        // The start marker's own line end.
        out.strip_prefix("\r\n").unwrap_or(out).to_string()
    }

    /// The next raw frame (answers pings as a live client does); `None` on close.
    pub async fn next_msg(&mut self) -> Option<Message> {
        match self.stream.next().await {
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => None,
            Some(Ok(m)) => Some(m),
        }
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}

fn rand_marker() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(1000);
    N.fetch_add(7, Ordering::Relaxed) + std::process::id() % 1000
}
