//! The container runtime behind a narrow trait. Everything the server needs
//! from an engine is here: images, hardened containers, and a TTY shell inside
//! one. Docker is the one implementation today (`docker.rs`); another engine
//! (Kubernetes) would implement the same trait.

pub mod dial;
pub mod docker;
pub mod endpoint;
pub mod engines;
pub mod exit;
pub mod files;
pub mod firewall;
pub mod hijack;
pub mod network;
pub mod procfs;
pub mod spec;

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite};

pub use spec::{ContainerSpec, ShellSpec};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    /// The engine cannot be reached; retrying later may succeed.
    #[error("{0}")]
    Unavailable(String),
    /// The image is neither present nor pullable.
    #[error("image '{0}' not found")]
    ImageNotFound(String),
    /// A pull of the image failed, for the reason given.
    #[error("image '{image}' could not be pulled: {why}")]
    PullFailed { image: String, why: PullFailure },
    /// The container (or exec) does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The container exists but is stopped.
    #[error("{0}")]
    NotRunning(String),
    /// The engine answered with an error.
    #[error("{0}")]
    Engine(String),
}

/// Why a pull failed, as far as the engine's words tell.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PullFailure {
    /// The registry could not be reached (no network, no such host, a
    /// timeout): retrying later may work.
    #[error("its registry could not be reached ({0})")]
    Unreachable(String),
    /// The registry refused access (login needed, denied).
    #[error("the registry refused access ({0})")]
    NotAllowed(String),
    /// Anything else the engine said.
    #[error("{0}")]
    Other(String),
}

impl PullFailure {
    /// Reads an engine's pull error: `None` when it says the image does not
    /// exist (then the image is simply not found).
    pub fn classify(message: &str) -> Option<PullFailure> {
        let m = message.to_ascii_lowercase();
        let has = |words: &[&str]| words.iter().any(|w| m.contains(w));
        if has(&[
            "manifest unknown",
            "not found",
            "does not exist",
            "no such image",
        ]) {
            None
        } else if has(&[
            "dial tcp",
            "connection refused",
            "no such host",
            "i/o timeout",
            "timeout",
            "network is unreachable",
            "temporary failure in name resolution",
            "server misbehaving",
            "connection reset",
            "eof",
        ]) {
            Some(PullFailure::Unreachable(message.to_string()))
        } else if has(&[
            "unauthorized",
            "authentication required",
            "denied",
            "forbidden",
        ]) {
            Some(PullFailure::NotAllowed(message.to_string()))
        } else {
            Some(PullFailure::Other(message.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PullFailure;

    #[test]
    fn pull_errors_say_why_as_the_engine_put_it() {
        for (engine_said, expected) in [
            ("manifest for 127.0.0.1:5000/x:1 not found: manifest unknown", None),
            ("pull access denied for nope, repository does not exist or may require 'docker login'", None),
            (r#"Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io on 10.0.0.53:53: no such host"#, Some("Unreachable")),
            (r#"Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused"#, Some("Unreachable")),
            ("Get https://r.example/v2/: net/http: TLS handshake timeout", Some("Unreachable")),
            ("unauthorized: authentication required", Some("NotAllowed")),
            ("denied: requested access to the resource is denied", Some("NotAllowed")),
            ("something else entirely", Some("Other")),
        ] {
            let got = PullFailure::classify(engine_said).map(|w| match w {
                PullFailure::Unreachable(_) => "Unreachable",
                PullFailure::NotAllowed(_) => "NotAllowed",
                PullFailure::Other(_) => "Other",
            });
            assert_eq!(got, expected, "{engine_said}");
        }
    }
}

/// One step of an image pull, as the engine reports it.
#[derive(Debug, Clone, Default)]
pub struct PullProgress {
    pub message: String,
    pub current: Option<i64>,
    pub total: Option<i64>,
}

/// A container's state, in terms any engine can map to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerStatus {
    /// Made, never started.
    Created,
    Running,
    Paused,
    Restarting,
    /// Ended (exited, or dead); it may be started again.
    Stopped,
    /// Being removed.
    Removing,
}

impl ContainerStatus {
    /// Holds a session's work: adopted after a restart (a stopped one is
    /// started again on its next use).
    pub fn holds_a_session(self) -> bool {
        matches!(
            self,
            ContainerStatus::Running
                | ContainerStatus::Stopped
                | ContainerStatus::Paused
                | ContainerStatus::Restarting
        )
    }
}

/// A container that carries our labels, as listed by the engine.
#[derive(Debug, Clone)]
pub struct ManagedContainer {
    pub id: String,
    pub labels: HashMap<String, String>,
    pub status: ContainerStatus,
    /// Unix seconds.
    pub created: i64,
}

impl ManagedContainer {
    pub fn is_running(&self) -> bool {
        self.status == ContainerStatus::Running
    }
}

/// Opens connections to a container's own TCP ports (the preview's upstream).
#[async_trait]
pub trait PortDialer: Send + Sync {
    async fn dial(&self, port: u16) -> std::io::Result<tokio::net::TcpStream>;
    /// Whether every dial can only ever reach this container, even after it
    /// stopped and another container took its address. A dialer that is not
    /// must not be kept: ask the engine afresh before each new connection.
    fn confined(&self) -> bool;
    /// The container's address on its network, if it has one: a name the
    /// app may use for itself in absolute URLs.
    fn address(&self) -> Option<IpAddr>;
}

/// A command to run apart from the terminal: no TTY, its output in two
/// streams, as the session user, in `cwd`.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    pub cmd: Vec<String>,
    /// `KEY=value` pairs on top of the container's own.
    pub env: Vec<String>,
    pub cwd: String,
}

/// Which stream a piece of a command's output came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

impl OutputStream {
    pub fn name(self) -> &'static str {
        match self {
            OutputStream::Stdout => "stdout",
            OutputStream::Stderr => "stderr",
        }
    }
}

/// What a command's output stream yields: a piece of output, on its stream.
pub type OutputChunk = Result<(OutputStream, bytes::Bytes), RuntimeError>;

/// A started command: its output as it comes, its stdin, its handle.
pub struct CommandIo {
    pub handle: CommandHandle,
    pub output: Pin<Box<dyn futures_util::Stream<Item = OutputChunk> + Send>>,
    /// Shut it down to close the command's stdin.
    pub input: Pin<Box<dyn AsyncWrite + Send>>,
}

/// How the engine knows a started command.
#[derive(Debug, Clone)]
pub struct CommandHandle {
    pub exec_id: String,
    /// Set by the output stream when the command could not start at all
    /// (no such program, no such directory): its exit code as a shell gives
    /// it (127 for a program not found, 126 otherwise); the engine's reason
    /// comes on stderr.
    pub failed_start: Arc<std::sync::OnceLock<i64>>,
}

/// A started TTY shell: its raw byte streams and its engine-side handle.
pub struct ShellIo {
    pub exec_id: String,
    pub output: Pin<Box<dyn AsyncRead + Send>>,
    pub input: Pin<Box<dyn AsyncWrite + Send>>,
}

#[async_trait]
pub trait ContainerRuntime: Send + Sync + 'static {
    /// Cheap liveness check of the engine.
    async fn ping(&self) -> Result<(), RuntimeError>;
    /// The ids of the engines this runtime reaches (each engine's own,
    /// stable across its restarts); the first is where it makes containers.
    async fn engine_ids(&self) -> Result<Vec<String>, RuntimeError> {
        Ok(Vec::new())
    }
    async fn image_present(&self, image: &str) -> Result<bool, RuntimeError>;
    /// The references (`name:tag`) of the images the engine holds.
    async fn list_images(&self) -> Result<Vec<String>, RuntimeError>;
    /// Pulls an image, reporting progress; `ImageNotFound` when it cannot be had.
    async fn pull_image(
        &self,
        image: &str,
        progress: &mut (dyn FnMut(PullProgress) + Send),
    ) -> Result<(), RuntimeError>;
    /// Creates and starts a container; on failure nothing is left behind.
    async fn create_container(&self, spec: &ContainerSpec) -> Result<String, RuntimeError>;
    /// Starts a stopped container again; a running one is left as it is.
    async fn start_container(&self, id: &str) -> Result<(), RuntimeError>;
    /// Removes a container and its anonymous volumes; a missing one is success.
    async fn remove_container(&self, id: &str) -> Result<(), RuntimeError>;
    /// `None` when the container no longer exists.
    async fn container_status(&self, id: &str) -> Result<Option<ContainerStatus>, RuntimeError>;
    /// The running container's init process as this machine sees it;
    /// `None` when it does not run or the engine is elsewhere.
    async fn container_pid(&self, _id: &str) -> Result<Option<u32>, RuntimeError> {
        Ok(None)
    }
    /// Memory the container uses now, as the engine measures it (without
    /// reclaimable file cache); `None` when the engine does not say.
    async fn container_memory(&self, _id: &str) -> Result<Option<u64>, RuntimeError> {
        Ok(None)
    }
    /// How to reach the container's ports; `None` when it is not running.
    async fn port_dialer(&self, id: &str) -> Result<Option<Arc<dyn PortDialer>>, RuntimeError>;
    /// Containers labelled as ours for `instance`.
    async fn list_managed(&self, instance: &str) -> Result<Vec<ManagedContainer>, RuntimeError>;
    /// `NotRunning` when the container is stopped.
    async fn start_shell(
        &self,
        container_id: &str,
        spec: &ShellSpec,
    ) -> Result<ShellIo, RuntimeError>;
    async fn resize_shell(&self, exec_id: &str, cols: u16, rows: u16) -> Result<(), RuntimeError>;
    /// Starts a command (no TTY) in a running container; `NotRunning`
    /// when the container is stopped.
    async fn start_command(
        &self,
        container_id: &str,
        spec: &CommandSpec,
    ) -> Result<CommandIo, RuntimeError>;
    /// Waits for the command's own process to end; its exit code (128 + N
    /// for a process ended by signal N). Each call looks afresh first: call
    /// it again once the output has ended to learn the code at once.
    async fn wait_command(
        &self,
        container_id: &str,
        handle: &CommandHandle,
    ) -> Result<i64, RuntimeError>;
    /// Sends `signal` to every process of the command's process group in
    /// the container (what it started, unless that left the group); how
    /// many got it.
    async fn signal_command(
        &self,
        container_id: &str,
        handle: &CommandHandle,
        signal: i32,
    ) -> Result<usize, RuntimeError>;
    /// The container's files, reached as the session user.
    async fn files(&self, container_id: &str) -> Result<Arc<files::ContainerFiles>, RuntimeError>;
    /// The TCP ports something in the container listens on.
    async fn listening_ports(
        &self,
        container_id: &str,
    ) -> Result<std::collections::BTreeSet<u16>, RuntimeError>;
    /// The shell's exit code once it has ended, `None` while it runs.
    async fn shell_exit_code(&self, exec_id: &str) -> Result<Option<i64>, RuntimeError>;
}
