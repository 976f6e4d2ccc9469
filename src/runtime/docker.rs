//! The Docker Engine implementation of [`ContainerRuntime`], over bollard.
//!
//! The client is made on first use and version-negotiated then, so the server
//! starts while the engine is down and picks it up when it appears; the same
//! client keeps working across engine restarts because every request opens
//! its own socket connection when the old one is gone.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ExecConfig, HostConfig, Mount, MountBindOptions,
    MountBindOptionsPropagationEnum, MountType,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;
use tokio::sync::Mutex;

use super::dial::NetnsDialer;
use super::endpoint::Endpoint;
use super::files::ContainerFiles;
use super::firewall::{self, Egress};
use super::hijack;
use super::network;
use super::procfs::{self, Process};
use super::spec::{self, ContainerSpec, ShellSpec};
use super::{
    CommandHandle, CommandIo, CommandSpec, ContainerRuntime, ContainerStatus, ManagedContainer,
    OutputStream, PortDialer, PullFailure, PullProgress, RuntimeError, ShellIo,
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for one engine call (streamed pulls and shells excepted once
/// they have started): an engine that accepts and never answers is reported
/// unreachable instead of holding requests for minutes.
const REQUEST_TIMEOUT_SECS: u64 = 30;
/// While the engine is suspect, each call first checks it is back this fast.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

pub struct DockerRuntime {
    engine: Endpoint,
    client: Mutex<Option<Docker>>,
    network: String,
    /// The network's id once found or made: Docker allows duplicate names,
    /// so containers join by id (see `network`).
    network_id: Mutex<Option<String>>,
    /// What sessions may reach; installed on the network's bridge when the
    /// network is first found or made.
    egress: Egress,

    /// Set when a call found the engine unreachable or unresponsive: until a
    /// ping answers again, calls fail after a quick ping instead of each
    /// waiting out the request timeout on a hung engine.
    suspect: std::sync::atomic::AtomicBool,
    /// Each running container's init process and files, by container id,
    /// found once and kept while the process lives.
    local: std::sync::Mutex<HashMap<String, Arc<ContainerFiles>>>,
    /// The engine's own id, once asked.
    engine_id: std::sync::OnceLock<String>,
}

/// Maps a bollard error: engine answers keep their status, anything else
/// means the engine could not be reached.
pub(super) fn map_err(e: BollardError) -> RuntimeError {
    match e {
        BollardError::DockerResponseServerError {
            status_code: 404,
            message,
        } => RuntimeError::NotFound(message),
        BollardError::DockerResponseServerError { message, .. } => RuntimeError::Engine(message),
        BollardError::JsonDataError { message, .. } => RuntimeError::Engine(message),
        other => RuntimeError::Unavailable(with_causes(&other)),
    }
}

/// An error's message followed by its causes': a transport error's own text
/// ("client error (SendRequest)") does not say what went wrong, its causes
/// do (a refused connection; a TLS alert from an engine that refuses our
/// client certificate, or a certificate of the engine's we do not trust).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        // Some errors repeat their cause's text in their own.
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        next = cause.source();
    }
    message
}

/// Docker's state words, in the runtime's terms.
fn status_of(word: Option<&str>) -> ContainerStatus {
    match word.unwrap_or_default() {
        "running" => ContainerStatus::Running,
        "paused" => ContainerStatus::Paused,
        "restarting" => ContainerStatus::Restarting,
        "created" => ContainerStatus::Created,
        "removing" => ContainerStatus::Removing,
        // exited, dead, and whatever a later engine adds
        _ => ContainerStatus::Stopped,
    }
}

impl DockerRuntime {
    /// `host`: see [`Endpoint::parse`] (`None`: the local socket);
    /// `tls_dir`: the remote engine's client certificates.
    pub fn new(
        host: Option<&str>,
        tls_dir: Option<&std::path::Path>,
        network: &str,
        egress: Egress,
    ) -> Result<DockerRuntime, String> {
        let engine = Endpoint::parse(host, tls_dir)?;
        Ok(DockerRuntime {
            engine,
            client: Mutex::new(None),
            network: network.to_string(),
            network_id: Mutex::new(None),
            egress,
            suspect: Default::default(),
            local: Default::default(),
            engine_id: Default::default(),
        })
    }

    /// `None`: no such container.
    async fn inspect(&self, id: &str) -> Result<Option<ContainerInspectResponse>, RuntimeError> {
        let docker = self.client().await?;
        match docker.inspect_container(id, None).await {
            Ok(i) => Ok(Some(i)),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// The running container's files (and so its init process), found
    /// through the engine once and kept while that process lives.
    async fn local(&self, id: &str) -> Result<Arc<ContainerFiles>, RuntimeError> {
        if let Some(f) = self.local.lock().unwrap().get(id).filter(|f| f.alive()) {
            return Ok(Arc::clone(f));
        }
        let not_running = || RuntimeError::NotRunning(format!("container {id} is not running"));
        let info = self
            .inspect(id)
            .await?
            .ok_or_else(|| RuntimeError::NotFound(format!("container {id} not found")))?;
        let state = info.state.unwrap_or_default();
        let pid = state
            .pid
            .filter(|_| state.running.unwrap_or(false))
            .and_then(|p| u32::try_from(p).ok())
            .filter(|p| *p > 0)
            .ok_or_else(not_running)?;
        let process = match Process::hold(pid) {
            Ok(p) => p,
            // A running container whose process this machine lacks is on
            // another machine, unless it has just ended.
            Err(_) if !self.engine.is_local_socket() && self.still_running(id, pid).await => {
                return Err(self.elsewhere())
            }
            Err(_) => return Err(not_running()),
        };
        // An engine reached over TCP may be on another machine, where this
        // pid is some other process: only a process whose root holds the
        // container's own hostname file is taken for it.
        if !self.engine.is_local_socket() {
            let want = info
                .config
                .as_ref()
                .and_then(|c| c.hostname.clone())
                .unwrap_or_default();
            let here = process
                .open("root/etc/hostname", false)
                .ok()
                .and_then(|mut f| {
                    let mut s = String::new();
                    std::io::Read::read_to_string(&mut f, &mut s)
                        .ok()
                        .map(|_| s)
                })
                .unwrap_or_default();
            if want.is_empty() || here.trim() != want {
                return Err(self.elsewhere());
            }
        }
        let files = Arc::new(ContainerFiles::new(Arc::new(process)).map_err(|e| match e {
            super::files::FileError::NotRunning(_) => not_running(),
            e => RuntimeError::Engine(e.to_string()),
        })?);
        let mut local = self.local.lock().unwrap();
        local.retain(|_, f| f.alive());
        local.insert(id.to_string(), Arc::clone(&files));
        Ok(files)
    }

    /// What is reached through a container's processes, asked of an engine
    /// on another machine.
    fn elsewhere(&self) -> RuntimeError {
        RuntimeError::Engine(format!(
            "the engine ({}) is not on this machine: a session's files, ports, preview and \
             command signals are reached from the engine's machine",
            self.engine.label()
        ))
    }

    /// Whether the engine still reports the container running as `pid`.
    async fn still_running(&self, id: &str, pid: u32) -> bool {
        self.inspect(id).await.ok().flatten().is_some_and(|i| {
            let s = i.state.unwrap_or_default();
            s.running == Some(true) && s.pid == Some(i64::from(pid))
        })
    }

    /// Maps a failed call, and marks the engine suspect when it could not
    /// be reached or did not answer.
    fn fail(&self, e: BollardError) -> RuntimeError {
        let err = map_err(e);
        if matches!(err, RuntimeError::Unavailable(_)) {
            self.suspect.store(true, Ordering::Relaxed);
        }
        err
    }

    /// The client for a call: while the engine is suspect, only once a quick
    /// ping shows it answers again.
    async fn client(&self) -> Result<Docker, RuntimeError> {
        let docker = self.connection().await?;
        if self.suspect.load(Ordering::Relaxed) {
            self.probe(&docker).await?;
        }
        Ok(docker)
    }

    /// A ping within [`PROBE_TIMEOUT`]; it clears or sets the suspicion.
    async fn probe(&self, docker: &Docker) -> Result<(), RuntimeError> {
        match tokio::time::timeout(PROBE_TIMEOUT, docker.ping()).await {
            Ok(Ok(_)) => {
                self.suspect.store(false, Ordering::Relaxed);
                Ok(())
            }
            Ok(Err(e)) => Err(self.fail(e)),
            Err(_) => {
                self.suspect.store(true, Ordering::Relaxed);
                Err(RuntimeError::Unavailable(
                    "Docker engine did not answer a ping".into(),
                ))
            }
        }
    }

    /// The engine client, connected once (and again after a failed connect).
    async fn connection(&self) -> Result<Docker, RuntimeError> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let v = bollard::API_DEFAULT_VERSION;
        let c = match &self.engine {
            Endpoint::Unix(path) => {
                Docker::connect_with_unix(&path.to_string_lossy(), REQUEST_TIMEOUT_SECS, v)
            }
            Endpoint::Tcp { addr, tls: None } => {
                Docker::connect_with_http(&format!("http://{addr}"), REQUEST_TIMEOUT_SECS, v)
            }
            Endpoint::Tcp { addr, tls: Some(f) } => {
                Docker::connect_with_ssl(addr, &f.key, &f.cert, &f.ca, REQUEST_TIMEOUT_SECS, v)
            }
        }
        .map_err(|e| RuntimeError::Unavailable(e.to_string()))?;
        let c = tokio::time::timeout(CONNECT_TIMEOUT, c.negotiate_version())
            .await
            .map_err(|_| {
                RuntimeError::Unavailable("timed out connecting to the Docker engine".into())
            })?
            .map_err(|e| match self.fail(e) {
                // The engine's own words for a client without TLS.
                RuntimeError::Engine(m) if m.contains("HTTP request to an HTTPS server") => {
                    RuntimeError::Unavailable(format!(
                        "the engine at {} wants TLS ({}): give the directory of its client \
                         certificates, ca.pem, cert.pem and key.pem, with --docker-tls-dir or \
                         DOCKER_CERT_PATH",
                        self.engine.label(),
                        m.trim()
                    ))
                }
                e => e,
            })?;
        *slot = Some(c.clone());
        Ok(c)
    }

    async fn ensure_network(&self, docker: &Docker) -> Result<String, RuntimeError> {
        let mut id = self.network_id.lock().await;
        if let Some(id) = id.as_ref() {
            return Ok(id.clone());
        }
        let found = network::ensure(docker, &self.engine.label(), &self.network).await?;
        // No session joins the network before its isolation is in place:
        // rules that cannot be installed fail the create. An engine on
        // another machine has its bridge there, out of this server's reach.
        let (bridge, egress) = (found.bridge.clone(), self.egress.clone());
        if egress.mode != firewall::EgressMode::Unfiltered
            && !std::path::Path::new("/sys/class/net")
                .join(&bridge)
                .exists()
        {
            return Err(RuntimeError::Engine(format!(
                "network isolation could not be installed: the engine's bridge {bridge} is not on \
                 this machine (a remote engine); isolate sessions on the engine's machine and \
                 start this server with --egress unfiltered"
            )));
        }
        tokio::task::spawn_blocking(move || firewall::install(&bridge, &egress))
            .await
            .map_err(|e| RuntimeError::Engine(e.to_string()))?
            .map_err(|e| {
                RuntimeError::Engine(format!("network isolation could not be installed: {e}"))
            })?;
        *id = Some(found.id.clone());
        Ok(found.id)
    }
}

/// The Engine API body of a session container: `spec` with the hardening
/// every container gets, on network `network_id`. Public so that the
/// benchmarks' baseline makes exactly the same container.
pub fn container_body(spec: &ContainerSpec, network_id: &str) -> ContainerCreateBody {
    let mut tmpfs = HashMap::from([
        // Owned by the session user: runc keeps the image's mountpoint mode
        // (often root 0755), so `mode=` alone would leave /tmp unwritable.
        // `exec`, because Docker mounts tmpfs noexec by default and dev tools
        // run binaries from /tmp, the home and the workspace.
        (
            "/tmp".to_string(),
            format!(
                "rw,nosuid,nodev,exec,mode=1777,uid=1000,gid=1000,{}",
                spec::TMP_SIZE
            ),
        ),
        (
            spec::HOME.to_string(),
            format!(
                "rw,nosuid,nodev,exec,mode=0755,uid=1000,gid=1000,{}",
                spec::HOME_SIZE
            ),
        ),
    ]);
    let mounts = match &spec.workspace {
        Some(dir) => vec![Mount {
            target: Some(spec::WORKDIR.into()),
            source: Some(dir.to_string_lossy().into_owned()),
            typ: Some(MountType::BIND),
            read_only: Some(false),
            bind_options: spec.workspace_slot.then(|| MountBindOptions {
                propagation: Some(MountBindOptionsPropagationEnum::RSLAVE),
                ..Default::default()
            }),
            ..Default::default()
        }],
        None => {
            tmpfs.insert(
                spec::WORKDIR.to_string(),
                format!(
                    "rw,nosuid,nodev,exec,mode=0755,uid=1000,gid=1000,{}",
                    spec::WORKSPACE_SIZE
                ),
            );
            Vec::new()
        }
    };
    let memory = spec.limits.memory_bytes as i64;
    let host = HostConfig {
        readonly_rootfs: Some(true),
        memory: Some(memory),
        memory_swap: Some(memory),
        nano_cpus: Some(spec.limits.nano_cpus),
        pids_limit: Some(spec.limits.pids),
        cap_drop: Some(vec!["ALL".into()]),
        security_opt: Some(vec!["no-new-privileges".into()]),
        privileged: Some(false),
        init: Some(true),
        tmpfs: Some(tmpfs),
        mounts: Some(mounts),
        network_mode: Some(network_id.to_string()),
        ipc_mode: Some("private".into()),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        entrypoint: Some(ContainerSpec::keepalive_cmd()),
        user: Some(spec::USER.into()),
        working_dir: Some(spec::WORKDIR.into()),
        env: Some(spec.env.clone()),
        labels: Some(spec.labels.clone().into_iter().collect()),
        host_config: Some(host),
        ..Default::default()
    }
}

#[async_trait]
impl ContainerRuntime for DockerRuntime {
    async fn ping(&self) -> Result<(), RuntimeError> {
        let docker = self.connection().await?;
        self.probe(&docker).await
    }

    async fn engine_ids(&self) -> Result<Vec<String>, RuntimeError> {
        if let Some(id) = self.engine_id.get() {
            return Ok(vec![id.clone()]);
        }
        let docker = self.client().await?;
        let info = docker.info().await.map_err(|e| self.fail(e))?;
        // The daemon's id with its data root: Docker 20.10's id is its
        // machine's trust key, which two engines on one machine share.
        let id = info
            .id
            .filter(|i| !i.is_empty())
            .map(|i| format!("{i}@{}", info.docker_root_dir.unwrap_or_default()))
            .ok_or_else(|| RuntimeError::Unavailable("the engine gives no id".into()))?;
        Ok(vec![self.engine_id.get_or_init(|| id).clone()])
    }

    async fn image_present(&self, image: &str) -> Result<bool, RuntimeError> {
        let docker = self.client().await?;
        match docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(e) => Err(self.fail(e)),
        }
    }

    async fn list_images(&self) -> Result<Vec<String>, RuntimeError> {
        let docker = self.client().await?;
        let images = docker
            .list_images(None::<bollard::query_parameters::ListImagesOptions>)
            .await
            .map_err(|e| self.fail(e))?;
        Ok(images
            .into_iter()
            .flat_map(|i| i.repo_tags)
            .filter(|t| t != "<none>:<none>")
            .collect())
    }

    async fn pull_image(
        &self,
        image: &str,
        progress: &mut (dyn FnMut(PullProgress) + Send),
    ) -> Result<(), RuntimeError> {
        let docker = self.client().await?;
        let opts = CreateImageOptionsBuilder::default()
            .from_image(image)
            .build();
        let mut stream = docker.create_image(Some(opts), None, None);
        // The engine's reason, read into why the pull failed.
        let failed = |message: String| match PullFailure::classify(&message) {
            None => RuntimeError::ImageNotFound(image.to_string()),
            Some(why) => RuntimeError::PullFailed {
                image: image.to_string(),
                why,
            },
        };
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(err) = info.error_detail.and_then(|d| d.message) {
                        tracing::info!(image, %err, "pull failed");
                        return Err(failed(err));
                    }
                    let detail = info.progress_detail.unwrap_or_default();
                    progress(PullProgress {
                        message: info.status.unwrap_or_default(),
                        current: detail.current,
                        total: detail.total,
                    });
                }
                Err(e) => {
                    return match self.fail(e) {
                        RuntimeError::Unavailable(m) => Err(RuntimeError::Unavailable(m)),
                        other => {
                            tracing::info!(image, err = %other, "pull failed");
                            Err(failed(other.to_string()))
                        }
                    };
                }
            }
        }
        if self.image_present(image).await? {
            Ok(())
        } else {
            Err(RuntimeError::ImageNotFound(image.to_string()))
        }
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        let docker = self.client().await?;
        let opts = Some(
            CreateContainerOptionsBuilder::default()
                .name(&spec.name)
                .build(),
        );
        // A second try, once, when the network was removed behind our back
        // or turned out to exist twice (found again, copies resolved).
        let mut retried = false;
        loop {
            let network_id = self.ensure_network(&docker).await?;
            let body = container_body(spec, &network_id);
            let created = match docker.create_container(opts.clone(), body).await {
                Ok(c) => c,
                Err(BollardError::DockerResponseServerError {
                    status_code: 404,
                    message,
                }) if message.contains("network") && !retried => {
                    *self.network_id.lock().await = None;
                    retried = true;
                    continue;
                }
                Err(BollardError::DockerResponseServerError {
                    status_code: 404, ..
                }) => {
                    return Err(RuntimeError::ImageNotFound(spec.image.clone()));
                }
                Err(e) => return Err(self.fail(e)),
            };
            match docker.start_container(&created.id, None).await {
                Ok(()) => return Ok(created.id),
                Err(e) => {
                    let _ = self.remove_container(&created.id).await;
                    let ambiguous = matches!(&e, BollardError::DockerResponseServerError { message, .. }
                        if network::is_ambiguous(message));
                    if ambiguous && !retried {
                        tracing::warn!(network = %self.network, "the session network exists twice; resolving");
                        *self.network_id.lock().await = None;
                        retried = true;
                        continue;
                    }
                    return Err(self.fail(e));
                }
            }
        }
    }

    async fn start_container(&self, id: &str) -> Result<(), RuntimeError> {
        let docker = self.client().await?;
        match docker.start_container(id, None).await {
            // 304: already running.
            Ok(())
            | Err(BollardError::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    async fn remove_container(&self, id: &str) -> Result<(), RuntimeError> {
        self.local.lock().unwrap().remove(id);
        let docker = self.client().await?;
        let opts = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match docker.remove_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            // Already being removed by an earlier call.
            Err(BollardError::DockerResponseServerError {
                status_code: 409,
                message,
            }) if message.contains("already in progress") => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    async fn container_status(&self, id: &str) -> Result<Option<ContainerStatus>, RuntimeError> {
        let Some(info) = self.inspect(id).await? else {
            return Ok(None);
        };
        let state = info.state.unwrap_or_default();
        Ok(Some(status_of(
            state.status.map(|s| s.to_string()).as_deref(),
        )))
    }

    async fn container_pid(&self, id: &str) -> Result<Option<u32>, RuntimeError> {
        let Some(info) = self.inspect(id).await? else {
            return Ok(None);
        };
        let state = info.state.unwrap_or_default();
        Ok(state
            .running
            .unwrap_or(false)
            .then_some(state.pid)
            .flatten()
            .and_then(|p| u32::try_from(p).ok()))
    }

    async fn container_memory(&self, id: &str) -> Result<Option<u64>, RuntimeError> {
        let docker = self.client().await?;
        // One sample, without waiting for a second one to compute rates.
        let opts = bollard::query_parameters::StatsOptionsBuilder::default()
            .stream(false)
            .one_shot(true)
            .build();
        let Some(stats) = docker.stats(id, Some(opts)).next().await else {
            return Ok(None);
        };
        let mem = stats.map_err(|e| self.fail(e))?.memory_stats;
        Ok(mem.and_then(|m| {
            // As `docker stats` counts it: cgroup v2 calls the cache
            // `inactive_file`, v1 `total_inactive_file`.
            let cache = m.stats.as_ref().and_then(|s| {
                s.get("inactive_file")
                    .or_else(|| s.get("total_inactive_file"))
                    .copied()
            });
            m.usage.map(|u| u.saturating_sub(cache.unwrap_or(0)))
        }))
    }

    async fn port_dialer(&self, id: &str) -> Result<Option<Arc<dyn PortDialer>>, RuntimeError> {
        let Some(info) = self.inspect(id).await? else {
            return Ok(None);
        };
        let state = info.state.unwrap_or_default();
        if !state.running.unwrap_or(false) {
            return Ok(None);
        }
        let ip = info
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|mut nets| nets.remove(&self.network))
            .and_then(|n| n.ip_address)
            .and_then(|ip| ip.parse().ok());
        // An engine reached over TCP may be on another machine, where the
        // pid it reports is some process of this one (a kernel thread, in
        // this machine's own network namespace) and the address may be one
        // on a network of this machine's (another session's container):
        // only a process shown to be the container's is dialled into, and
        // otherwise the preview is refused.
        if !self.engine.is_local_socket() {
            let files = match self.local(id).await {
                Ok(f) => f,
                Err(RuntimeError::NotRunning(_) | RuntimeError::NotFound(_)) => return Ok(None),
                Err(e) => return Err(e),
            };
            return Ok(files.process().open("ns/net", false).ok().map(|netns| {
                Arc::new(NetnsDialer::in_namespace(netns, ip)) as Arc<dyn PortDialer>
            }));
        }
        let pid = state.pid.and_then(|p| u32::try_from(p).ok());
        Ok(Some(Arc::new(NetnsDialer::new(pid, ip))))
    }

    async fn list_managed(&self, instance: &str) -> Result<Vec<ManagedContainer>, RuntimeError> {
        let docker = self.client().await?;
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{}={instance}", spec::LABEL_INSTANCE)],
        )]);
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let list = docker
            .list_containers(Some(opts))
            .await
            .map_err(|e| self.fail(e))?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                Some(ManagedContainer {
                    id: c.id?,
                    status: status_of(c.state.map(|s| s.to_string()).as_deref()),
                    labels: c.labels.unwrap_or_default(),
                    created: c.created.unwrap_or(0),
                })
            })
            .collect())
    }

    async fn start_shell(
        &self,
        container_id: &str,
        spec: &ShellSpec,
    ) -> Result<ShellIo, RuntimeError> {
        let docker = self.client().await?;
        let exec = docker
            .create_exec(
                container_id,
                ExecConfig {
                    attach_stdin: Some(true),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(true),
                    cmd: Some(spec.cmd.clone()),
                    env: (!spec.env.is_empty()).then(|| spec.env.clone()),
                    // Honoured by engines with API 1.42+; older ones start at
                    // 80x24 until the terminal's first resize.
                    console_size: Some(vec![spec.rows as usize, spec.cols as usize]),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| match e {
                BollardError::DockerResponseServerError {
                    status_code: 409,
                    message,
                } if message.contains("not running") => RuntimeError::NotRunning(message),
                e => self.fail(e),
            })?;
        let version = docker.client_version().to_string();
        let stream = tokio::time::timeout(
            Duration::from_secs(REQUEST_TIMEOUT_SECS),
            hijack::start_exec(&self.engine, &version, &exec.id),
        )
        .await
        .map_err(|_| {
            self.suspect.store(true, Ordering::Relaxed);
            RuntimeError::Unavailable("Docker engine did not start the shell in time".into())
        })??;
        let (output, input) = tokio::io::split(stream);
        Ok(ShellIo {
            exec_id: exec.id,
            output: Box::pin(output),
            input: Box::pin(input),
        })
    }

    async fn resize_shell(&self, exec_id: &str, cols: u16, rows: u16) -> Result<(), RuntimeError> {
        let docker = self.client().await?;
        let opts = bollard::query_parameters::ResizeExecOptions {
            h: rows as i32,
            w: cols as i32,
        };
        docker
            .resize_exec(exec_id, opts)
            .await
            .map_err(|e| self.fail(e))
    }

    async fn start_command(
        &self,
        container_id: &str,
        spec: &CommandSpec,
    ) -> Result<CommandIo, RuntimeError> {
        let docker = self.client().await?;
        let exec = docker
            .create_exec(
                container_id,
                ExecConfig {
                    attach_stdin: Some(true),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(false),
                    cmd: Some(spec.cmd.clone()),
                    env: (!spec.env.is_empty()).then(|| spec.env.clone()),
                    working_dir: Some(spec.cwd.clone()),
                    user: Some(spec::USER.to_string()),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| match e {
                BollardError::DockerResponseServerError {
                    status_code: 409,
                    message,
                } if message.contains("not running") => RuntimeError::NotRunning(message),
                BollardError::DockerResponseServerError {
                    status_code: 404,
                    message,
                } => RuntimeError::NotFound(message),
                e => self.fail(e),
            })?;
        let started = tokio::time::timeout(
            Duration::from_secs(REQUEST_TIMEOUT_SECS),
            docker.start_exec(
                &exec.id,
                Some(StartExecOptions {
                    detach: false,
                    tty: false,
                    output_capacity: Some(64 * 1024),
                }),
            ),
        )
        .await
        .map_err(|_| {
            self.suspect.store(true, Ordering::Relaxed);
            RuntimeError::Unavailable("Docker engine did not start the command in time".into())
        })?
        .map_err(|e| self.fail(e))?;
        let StartExecResults::Attached { output, input } = started else {
            return Err(RuntimeError::Engine(
                "the engine started the command detached".into(),
            ));
        };
        // The engine's reason when the command cannot start comes as its
        // only output (on stdout, with a CR): it goes to stderr, as a
        // shell would say it, and sets the exit code a shell would give.
        let failed_start: Arc<std::sync::OnceLock<i64>> = Arc::default();
        let failed = Arc::clone(&failed_start);
        let mut first = true;
        let output = output.filter_map(move |item| {
            let was_first = std::mem::replace(&mut first, false);
            let failed = Arc::clone(&failed);
            async move {
                match item {
                    Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message })
                        if was_first && message.starts_with(b"OCI runtime exec failed") =>
                    {
                        let said = String::from_utf8_lossy(&message).replace("\r\n", "\n");
                        let not_found = said.contains("executable file not found")
                            || (said.contains("no such file or directory")
                                && said.contains("exec:"));
                        let _ = failed.set(if not_found { 127 } else { 126 });
                        Some(Ok((
                            OutputStream::Stderr,
                            bytes::Bytes::from(said.into_bytes()),
                        )))
                    }
                    Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                        Some(Ok((OutputStream::Stdout, message)))
                    }
                    Ok(LogOutput::StdErr { message }) => Some(Ok((OutputStream::Stderr, message))),
                    Ok(LogOutput::StdIn { .. }) => None,
                    Err(e) => Some(Err(map_err(e))),
                }
            }
        });
        Ok(CommandIo {
            handle: CommandHandle {
                exec_id: exec.id,
                failed_start,
            },
            output: Box::pin(output),
            input,
        })
    }

    async fn wait_command(
        &self,
        container_id: &str,
        handle: &CommandHandle,
    ) -> Result<i64, RuntimeError> {
        let docker = self.client().await?;
        let mut pause = Duration::from_millis(5);
        loop {
            let info = docker
                .inspect_exec(&handle.exec_id)
                .await
                .map_err(|e| self.fail(e))?;
            if !info.running.unwrap_or(false) {
                if let Some(code) = info.exit_code {
                    return Ok(handle.failed_start.get().copied().unwrap_or(code));
                }
            }
            // Once its process is known, the process itself (held by a
            // pidfd) tells when it ends, without asking the engine again.
            let pid = info.pid.and_then(|p| u32::try_from(p).ok()).unwrap_or(0);
            if pid > 0 {
                if let (Ok(p), Ok(container)) = (Process::hold(pid), self.local(container_id).await)
                {
                    if p.shares_pid_namespace(container.process()) {
                        let _ = p.exited().await;
                        // The engine notes the end a moment later.
                        pause = Duration::from_millis(1);
                        continue;
                    }
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    async fn signal_command(
        &self,
        container_id: &str,
        handle: &CommandHandle,
        signal: i32,
    ) -> Result<usize, RuntimeError> {
        let docker = self.client().await?;
        // runc makes each exec'd process a session (and group) leader: the
        // group has its pid, even after it ended and left children behind.
        // Right after the start the engine may not know the pid yet: a
        // signal waits for it (or for the command's end) rather than be lost.
        let mut pause = Duration::from_millis(2);
        let mut group = 0;
        for _ in 0..60 {
            let info = docker
                .inspect_exec(&handle.exec_id)
                .await
                .map_err(|e| self.fail(e))?;
            group = info.pid.and_then(|p| u32::try_from(p).ok()).unwrap_or(0);
            if group > 0 || !info.running.unwrap_or(false) && info.exit_code.is_some() {
                break;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
        if group == 0 {
            return Ok(0);
        }
        let files = self.local(container_id).await?;
        let process = Arc::clone(files.process());
        tokio::task::spawn_blocking(move || procfs::signal_group(&process, group, signal))
            .await
            .map_err(|e| RuntimeError::Engine(e.to_string()))?
            .map_err(|e| {
                RuntimeError::NotRunning(format!("container {container_id} is not running: {e}"))
            })
    }

    async fn files(&self, container_id: &str) -> Result<Arc<ContainerFiles>, RuntimeError> {
        self.local(container_id).await
    }

    async fn listening_ports(
        &self,
        container_id: &str,
    ) -> Result<std::collections::BTreeSet<u16>, RuntimeError> {
        let files = self.local(container_id).await?;
        let process = Arc::clone(files.process());
        tokio::task::spawn_blocking(move || procfs::listening_ports(&process))
            .await
            .map_err(|e| RuntimeError::Engine(e.to_string()))?
            .map_err(|e| {
                RuntimeError::NotRunning(format!("container {container_id} is not running: {e}"))
            })
    }

    async fn shell_exit_code(&self, exec_id: &str) -> Result<Option<i64>, RuntimeError> {
        let docker = self.client().await?;
        let info = docker
            .inspect_exec(exec_id)
            .await
            .map_err(|e| self.fail(e))?;
        if info.running.unwrap_or(false) {
            return Ok(None);
        }
        Ok(info.exit_code)
    }
}
