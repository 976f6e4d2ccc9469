//! The fleet under test: a throwaway Redis, gateways sharing it, and what
//! Redis and the engine say about them.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::server::{Cleanup, Features, Server};
use crate::IMAGE;

pub const REDIS: &str = "/usr/bin/redis-server";

/// A throwaway `redis-server`: loopback, a free port, its own directory, no
/// persistence; killed and its directory removed when dropped.
pub struct Redis {
    child: std::process::Child,
    dir: std::path::PathBuf,
    pub url: String,
}

impl Redis {
    pub fn start(run: &str) -> Result<Redis> {
        let dir = std::env::temp_dir().join(format!("studio-{run}-redis"));
        std::fs::create_dir_all(&dir)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = std::fs::File::create(dir.join("redis.log"))?;
        let child = std::process::Command::new(REDIS)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::from(log))
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("start {REDIS} (apt-get install redis-server)"))?;
        Ok(Redis {
            child,
            dir,
            url: format!("redis://127.0.0.1:{port}/0"),
        })
    }

    async fn connect(&self) -> Result<redis::aio::MultiplexedConnection> {
        let client = redis::Client::open(self.url.as_str())?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match client.get_multiplexed_async_connection().await {
                Ok(c) => return Ok(c),
                Err(e) if Instant::now() > deadline => bail!("redis-server does not answer: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The fleet under test: its instance, its Redis, how gateways start.
pub struct Fleet<'a> {
    guard: &'a Cleanup,
    features: Features,
    /// The gateways' `--instance` (the run's name) and `--store`.
    pub instance: String,
    pub store: String,
    redis: redis::aio::MultiplexedConnection,
}

impl<'a> Fleet<'a> {
    pub async fn new(guard: &'a Cleanup, redis: &Redis) -> Result<Fleet<'a>> {
        Ok(Fleet {
            guard,
            features: Features::detect().await?,
            instance: guard.bench_label.clone(),
            store: redis.url.clone(),
            redis: redis.connect().await?,
        })
    }

    pub async fn gateway(&self, name: &str) -> Result<Server> {
        let extra: Vec<String> = ["--warm-pool", "0", "--store", &self.store]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let name = format!("{}-{name}", self.instance);
        Server::start_in(
            self.guard,
            &self.features,
            IMAGE,
            &self.instance,
            &name,
            &extra,
        )
        .await
    }

    /// The URL of the gateway holding session `sid`, as Redis says.
    pub async fn holder(&self, sid: &str) -> Result<Option<String>> {
        let mut c = self.redis.clone();
        let p = format!("studio:{}:", self.instance);
        let gw: Option<String> = redis::cmd("GET")
            .arg(format!("{p}lease:{sid}"))
            .query_async(&mut c)
            .await?;
        let Some(gw) = gw else { return Ok(None) };
        Ok(redis::cmd("GET")
            .arg(format!("{p}gw:{gw}"))
            .query_async(&mut c)
            .await?)
    }

    pub async fn expect_holder(&self, sid: &str, g: &Server, what: &str) -> Result<()> {
        let want = format!("http://{}", g.addr);
        match self.holder(sid).await? {
            Some(h) if h == want => Ok(()),
            other => bail!("{what}: session {sid} is held by {other:?}, not {want}"),
        }
    }

    /// Commands Redis has served so far.
    pub async fn redis_commands(&self) -> Result<u64> {
        let mut c = self.redis.clone();
        let info: String = redis::cmd("INFO").arg("stats").query_async(&mut c).await?;
        info.lines()
            .find_map(|l| l.strip_prefix("total_commands_processed:"))
            .and_then(|n| n.trim().parse().ok())
            .context("no total_commands_processed in INFO stats")
    }

    /// Containers of the fleet's instance, as the engine lists them.
    pub async fn containers(&self) -> Result<usize> {
        let out = tokio::process::Command::new("docker")
            .args(["ps", "-aq", "--filter"])
            .arg(format!("label=studio.instance={}", self.instance))
            .output()
            .await?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .count())
    }
}
