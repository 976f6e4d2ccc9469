//! The server under test: the release `claude-studio` binary spawned as a
//! child on a free loopback port with its own `--instance` label, plus the
//! [`Cleanup`] guard that removes every container this run made, whatever
//! way the run ends.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const BIN: &str = env!("CARGO_BIN_EXE_claude-studio");

/// Removes this run's containers and stops its servers when dropped: on
/// success, on error, on panic and after Ctrl-C alike.
pub struct Cleanup {
    /// Value of the `studio.bench` label on every baseline container.
    pub bench_label: String,
    instances: Mutex<Vec<String>>,
    pids: Mutex<Vec<u32>>,
}

impl Cleanup {
    pub fn new(run: &str) -> Cleanup {
        Cleanup {
            bench_label: run.to_string(),
            instances: Mutex::new(Vec::new()),
            pids: Mutex::new(Vec::new()),
        }
    }

    fn remove_by_label(label: &str) {
        let out = std::process::Command::new("docker")
            .args(["ps", "-aq", "--filter", &format!("label={label}")])
            .output();
        let Ok(out) = out else { return };
        let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(String::from)
            .collect();
        for chunk in ids.chunks(50) {
            let _ = std::process::Command::new("docker")
                .args(["rm", "-f", "-v"])
                .args(chunk)
                .output();
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for pid in self.pids.lock().unwrap().drain(..) {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        for inst in self.instances.lock().unwrap().drain(..) {
            Self::remove_by_label(&format!("studio.instance={inst}"));
        }
        Self::remove_by_label(&format!("studio.bench={}", self.bench_label));
    }
}

/// What the binary's `--help` offers, so optional features are detected
/// rather than assumed.
pub struct Features {
    help: String,
}

impl Features {
    pub async fn detect() -> Result<Features> {
        let out = Command::new(BIN)
            .arg("--help")
            .output()
            .await
            .context("run claude-studio --help")?;
        Ok(Features {
            help: String::from_utf8_lossy(&out.stdout).into_owned(),
        })
    }
    pub fn has(&self, flag: &str) -> bool {
        self.help.contains(flag)
    }
}

pub struct Server {
    child: Child,
    pub pid: u32,
    pub addr: SocketAddr,
    pub instance: String,
    http: reqwest::Client,
}

impl Server {
    pub async fn start(
        guard: &Cleanup,
        features: &Features,
        image: &str,
        extra: &[String],
    ) -> Result<Server> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let instance = format!("{}-{n}", guard.bench_label);
        Server::start_in(guard, features, image, &instance, &instance, extra).await
    }

    /// A server with the given `--instance` (the gateways of a fleet share
    /// one); `name` tells its log apart (`bench-server-NAME.log`).
    pub async fn start_in(
        guard: &Cleanup,
        features: &Features,
        image: &str,
        instance: &str,
        name: &str,
        extra: &[String],
    ) -> Result<Server> {
        let instance = instance.to_string();
        guard.instances.lock().unwrap().push(instance.clone());
        let mut cmd = Command::new(BIN);
        cmd.args([
            "--listen",
            "127.0.0.1:0",
            "--instance",
            &instance,
            "--default-image",
            image,
        ]);
        // The benchmark makes hundreds of sessions from one IP on purpose.
        for limit in ["general", "container", "ws", "preview", "auth"] {
            let flag = format!("--rate-limit-{limit}");
            if features.has(&flag) {
                cmd.args([flag.as_str(), "off"]);
            }
        }
        // ...and holds them all as one owner (auth is off).
        if features.has("--max-sessions-per-owner") {
            cmd.args(["--max-sessions-per-owner", "100000"]);
        }
        let log_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
        let log = std::fs::File::create(log_dir.join(format!("bench-server-{name}.log")))?;
        cmd.args(extra)
            .env(
                "RUST_LOG",
                std::env::var("BENCH_SERVER_LOG").unwrap_or_else(|_| "claude_studio=warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("spawn claude-studio")?;
        let pid = child.id().ok_or_else(|| anyhow!("server exited at once"))?;
        guard.pids.lock().unwrap().push(pid);
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(rest) = line.strip_prefix("claude-studio listening on http://") {
                    return Ok(rest.trim().parse::<SocketAddr>()?);
                }
            }
            bail!(
                "claude-studio exited before listening (see {})",
                log_dir.display()
            )
        })
        .await
        .context("claude-studio did not start listening")??;
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Server {
            child,
            pid,
            addr,
            instance,
            http: reqwest::Client::new(),
        })
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        let r = self
            .http
            .get(format!("http://{}{path}", self.addr))
            .send()
            .await?;
        Ok(r.json().await?)
    }

    /// Removes a session (and its container) through the API.
    pub async fn delete_session(&self, id: &str) -> Result<()> {
        let r = self
            .http
            .delete(format!("http://{}/api/containers/{id}", self.addr))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("DELETE {id} answered {}", r.status());
        }
        Ok(())
    }

    /// `(VmRSS, VmHWM)` in KiB from /proc.
    pub fn memory_kib(&self) -> Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .ok_or_else(|| anyhow!("no {name} in /proc/{}/status", self.pid))
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

/// Samples the server's VmRSS until stopped; returns the peak in KiB.
pub struct RssSampler {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<u64>,
}

impl RssSampler {
    pub fn start(pid: u32) -> RssSampler {
        let (stop, mut rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut peak = 0;
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            loop {
                tokio::select! {
                    _ = &mut rx => return peak,
                    _ = tick.tick() => {
                        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                        let rss = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))
                            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok()).unwrap_or(0);
                        peak = peak.max(rss);
                    }
                }
            }
        });
        RssSampler { stop, task }
    }

    pub async fn finish(self) -> u64 {
        let _ = self.stop.send(());
        self.task.await.unwrap_or(0)
    }
}
