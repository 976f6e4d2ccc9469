//! The baselines: the same hardened container made straight through the
//! Docker Engine API and through the `docker run -d` CLI. The baseline's TTY
//! stream is bollard's own attached exec (its upgrade, its reader), not the
//! server's exec-stream code, so a cost in that code cannot hide on both
//! sides; `docker exec -t` (the CLI) is a second baseline for throughput.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{ListContainersOptionsBuilder, RemoveContainerOptionsBuilder};
use bollard::Docker;
use claude_studio::config::Settings;
use claude_studio::runtime::docker::container_body;
use claude_studio::runtime::{network, ContainerSpec};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::client::MarkerScan;

pub const SOCKET: &str = "/var/run/docker.sock";
/// The server's default network, which the baselines join too.
pub const NETWORK: &str = "claude-studio";
const KEEPALIVE: &str = "sleep infinity 2>/dev/null || exec tail -f /dev/null";

/// Phase timings of one bare start, each from the previous phase's end.
#[derive(Debug, Clone, Copy, Default)]
pub struct Phases {
    /// Wall clock (Unix nanos) at the start, to line up with engine events.
    pub sent_ns: i64,
    pub create: Duration,
    pub start: Duration,
    pub exec_create: Duration,
    pub exec_start: Duration,
    pub first_output: Duration,
}

impl Phases {
    pub fn total(&self) -> Duration {
        self.create + self.start + self.exec_create + self.exec_start + self.first_output
    }
    pub fn created(&self) -> Duration {
        self.create + self.start
    }
}

/// A shell in a bare container: bollard's attached exec, its TTY output
/// as the library reads it, and its input.
pub struct RawShell {
    pub container: String,
    output: BoxStream<'static, Result<LogOutput, bollard::errors::Error>>,
    input: std::pin::Pin<Box<dyn AsyncWrite + Send>>,
}

impl RawShell {
    /// Reads until `pred` holds for a chunk; returns the bytes read.
    pub async fn read_until(
        &mut self,
        deadline: Instant,
        mut pred: impl FnMut(&[u8]) -> bool,
    ) -> Result<u64> {
        let mut total = 0u64;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, self.output.next())
                .await
                .map_err(|_| anyhow!("timed out reading the exec stream"))?
                .ok_or_else(|| anyhow!("exec stream ended"))??
                .into_bytes();
            total += chunk.len() as u64;
            if !chunk.is_empty() && pred(&chunk) {
                return Ok(total);
            }
        }
    }

    pub async fn write(&mut self, data: &[u8]) -> Result<()> {
        self.input.write_all(data).await?;
        self.input.flush().await?;
        Ok(())
    }

    pub async fn read_to_marker(&mut self, marker: &str, deadline: Instant) -> Result<u64> {
        let mut scan = MarkerScan::new(marker);
        self.read_until(deadline, |c| scan.feed(c)).await
    }
}

#[derive(Clone)]
pub struct Engine {
    pub docker: Docker,
    image: String,
    label: String,
    /// The id of the server's network (found or made as the server does).
    network: String,
}

impl Engine {
    pub async fn connect(image: &str, label: &str) -> Result<Engine> {
        let docker = Docker::connect_with_unix(SOCKET, 120, bollard::API_DEFAULT_VERSION)?
            .negotiate_version()
            .await
            .context("connect to the Docker engine")?;
        let network = network::ensure(&docker, SOCKET, NETWORK)
            .await
            .map_err(|e| anyhow!("network {NETWORK}: {e}"))?
            .id;
        Ok(Engine {
            docker,
            image: image.to_string(),
            label: label.to_string(),
            network,
        })
    }

    /// The hardening fields in which the baseline's HostConfig differs from
    /// that of a container the server made (none, as both come from
    /// `container_body`; checked all the same).
    pub async fn match_server(&self, container: &str) -> Result<Vec<String>> {
        let theirs = self
            .docker
            .inspect_container(container, None)
            .await?
            .host_config
            .unwrap_or_default();
        let ours = self.body().host_config.unwrap_or_default();
        let mut diff = Vec::new();
        let mut check = |name: &str, a: String, b: String| {
            if a != b {
                diff.push(format!("{name}: server {a}, baseline {b}"));
            }
        };
        check(
            "ReadonlyRootfs",
            format!("{:?}", theirs.readonly_rootfs),
            format!("{:?}", ours.readonly_rootfs),
        );
        check(
            "Memory",
            format!("{:?}", theirs.memory),
            format!("{:?}", ours.memory),
        );
        check(
            "MemorySwap",
            format!("{:?}", theirs.memory_swap),
            format!("{:?}", ours.memory_swap),
        );
        check(
            "NanoCpus",
            format!("{:?}", theirs.nano_cpus),
            format!("{:?}", ours.nano_cpus),
        );
        check(
            "PidsLimit",
            format!("{:?}", theirs.pids_limit),
            format!("{:?}", ours.pids_limit),
        );
        check(
            "CapDrop",
            format!("{:?}", theirs.cap_drop),
            format!("{:?}", ours.cap_drop),
        );
        check(
            "SecurityOpt",
            format!("{:?}", theirs.security_opt),
            format!("{:?}", ours.security_opt),
        );
        check(
            "Init",
            format!("{:?}", theirs.init),
            format!("{:?}", ours.init),
        );
        check(
            "NetworkMode",
            format!("{:?}", theirs.network_mode),
            format!("{:?}", ours.network_mode),
        );
        check(
            "IpcMode",
            format!("{:?}", theirs.ipc_mode),
            format!("{:?}", ours.ipc_mode),
        );
        Ok(diff)
    }

    /// The server's own container body (`runtime::docker::container_body`),
    /// with the default limits and a label of the benchmark's.
    fn body(&self) -> ContainerCreateBody {
        let spec = ContainerSpec {
            name: String::new(),
            image: self.image.clone(),
            labels: BTreeMap::from([("studio.bench".to_string(), self.label.clone())]),
            env: ContainerSpec::base_env(),
            workspace: None,
            workspace_slot: false,
            limits: Settings::default().container_limits(),
            network: NETWORK.to_string(),
        };
        container_body(&spec, &self.network)
    }

    /// How long an image inspect takes (the server does one per create).
    pub async fn inspect_image(&self) -> Result<Duration> {
        let t = Instant::now();
        self.docker.inspect_image(&self.image).await?;
        Ok(t.elapsed())
    }

    /// Create + start + exec a TTY shell, until the shell's first output.
    pub async fn start_shell(&self) -> Result<(RawShell, Phases)> {
        let mut p = Phases {
            sent_ns: crate::events::now_nanos(),
            ..Default::default()
        };
        let t = Instant::now();
        let id = self.docker.create_container(None, self.body()).await?.id;
        p.create = t.elapsed();
        let t = Instant::now();
        if let Err(e) = self.docker.start_container(&id, None).await {
            let _ = self.remove(&id).await;
            return Err(e.into());
        }
        p.start = t.elapsed();
        let shell = self.exec_shell(&id, &mut p).await?;
        Ok((shell, p))
    }

    /// Starts a TTY shell in a running container, until its first output;
    /// fills the exec phases of `p`.
    pub async fn exec_shell(&self, id: &str, p: &mut Phases) -> Result<RawShell> {
        let t = Instant::now();
        let opts = CreateExecOptions::<String> {
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(true),
            cmd: Some(vec!["/bin/sh".into()]),
            ..Default::default()
        };
        let exec = self.docker.create_exec(id, opts).await?;
        p.exec_create = t.elapsed();
        let t = Instant::now();
        let start = StartExecOptions {
            detach: false,
            tty: true,
            // Bollard's own default is per line; a flood has long ones.
            output_capacity: Some(64 * 1024),
        };
        let StartExecResults::Attached { output, input } =
            self.docker.start_exec(&exec.id, Some(start)).await?
        else {
            bail!("exec started detached");
        };
        p.exec_start = t.elapsed();
        let t = Instant::now();
        let mut shell = RawShell {
            container: id.to_string(),
            output: output.boxed(),
            input,
        };
        shell
            .read_until(Instant::now() + Duration::from_secs(60), |_| true)
            .await?;
        p.first_output = t.elapsed();
        Ok(shell)
    }

    /// `docker run -d` with the same flags; returns the CLI's wall time.
    pub async fn docker_run(&self) -> Result<(String, Duration)> {
        let tmpfs: Vec<String> = (self
            .body()
            .host_config
            .and_then(|h| h.tmpfs)
            .unwrap_or_default()
            .iter())
        .flat_map(|(k, v)| ["--tmpfs".to_string(), format!("{k}:{v}")])
        .collect();
        let t = Instant::now();
        let out = tokio::process::Command::new("docker")
            .args([
                "run",
                "-d",
                "--read-only",
                "--user",
                "1000:1000",
                "--memory",
                "512m",
                "--memory-swap",
                "512m",
            ])
            .args([
                "--cpus",
                "1",
                "--pids-limit",
                "256",
                "--cap-drop",
                "ALL",
                "--security-opt",
                "no-new-privileges",
            ])
            .args([
                "--init",
                "--ipc",
                "private",
                "--network",
                &self.network,
                "-w",
                "/workspace",
            ])
            .args(&tmpfs)
            .args([
                "-e",
                "TERM=xterm-256color",
                "-e",
                "HOME=/home/studio",
                "-e",
                "LANG=C.UTF-8",
            ])
            .args([
                "--label",
                &format!("studio.bench={}", self.label),
                "--entrypoint",
                "/bin/sh",
                &self.image,
                "-c",
            ])
            .arg(KEEPALIVE)
            .output()
            .await?;
        let elapsed = t.elapsed();
        if !out.status.success() {
            bail!(
                "docker run failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok((
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            elapsed,
        ))
    }

    pub async fn remove(&self, id: &str) -> Result<()> {
        let opts = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        self.docker.remove_container(id, Some(opts)).await?;
        Ok(())
    }

    /// Removes every container carrying `label`, a few at a time.
    pub async fn remove_labelled(&self, label: &str) -> Result<usize> {
        let filters = HashMap::from([("label".to_string(), vec![label.to_string()])]);
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let ids: Vec<String> = self
            .docker
            .list_containers(Some(opts))
            .await?
            .into_iter()
            .filter_map(|c| c.id)
            .collect();
        let n = ids.len();
        for chunk in ids.chunks(8) {
            futures_util::future::join_all(chunk.iter().map(|id| self.remove(id))).await;
        }
        Ok(n)
    }
}
