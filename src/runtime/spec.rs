//! Engine-neutral descriptions of what to run: the hardened session container
//! and the shell inside it. The hardening itself is fixed here, not chosen by
//! callers, so no code path can create a weaker container.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::config::ContainerLimits;

pub const LABEL_SESSION: &str = "studio.session";
pub const LABEL_OWNER: &str = "studio.owner";
pub const LABEL_IMAGE: &str = "studio.image";
pub const LABEL_CREATED: &str = "studio.created";
pub const LABEL_INSTANCE: &str = "studio.instance";
/// Set on warm-pool containers, which are made before anyone owns them:
/// one is a session only once the state store records its owner.
pub const LABEL_POOL: &str = "studio.pool";
/// The server process that made the container (random per start): a
/// container of another process that belongs to no session is a leftover
/// at once, however recently the engine finished making it.
pub const LABEL_PROCESS: &str = "studio.process";

/// The uid:gid every session process runs as.
pub const USER: &str = "1000:1000";
pub const HOME: &str = "/home/studio";
pub const WORKDIR: &str = "/workspace";
/// Size caps of the writable tmpfs mounts.
pub const TMP_SIZE: &str = "size=256m";
pub const HOME_SIZE: &str = "size=128m";
pub const WORKSPACE_SIZE: &str = "size=512m";

#[derive(Debug, Clone)]
pub struct ContainerSpec {
    /// The container's name (`studio-SESSIONID`), fixed for its life.
    pub name: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    /// `KEY=value` pairs for every process in the container.
    pub env: Vec<String>,
    /// Resolved host directory mounted read-write at `/workspace`.
    pub workspace: Option<PathBuf>,
    /// The workspace bind receives what the host mounts below it later
    /// (`rslave`): a warm container's slot (`session::slot`).
    pub workspace_slot: bool,
    pub limits: ContainerLimits,
    pub network: String,
}

impl ContainerSpec {
    /// The environment every container gets, before the client's own.
    pub fn base_env() -> Vec<String> {
        vec![
            "TERM=xterm-256color".into(),
            format!("HOME={HOME}"),
            "LANG=C.UTF-8".into(),
        ]
    }

    /// The container's own process: it only keeps the container alive, so the
    /// shell can end and be restarted without the workspace going away.
    pub fn keepalive_cmd() -> Vec<String> {
        vec![
            "/bin/sh".into(),
            "-c".into(),
            "sleep infinity 2>/dev/null || exec tail -f /dev/null".into(),
        ]
    }
}

/// A TTY shell to start. The runtime may apply `cols`/`rows` at creation;
/// the terminal resizes it again once its output is being read, because an
/// engine may only answer a resize after the process is running.
#[derive(Debug, Clone)]
pub struct ShellSpec {
    pub cmd: Vec<String>,
    /// `KEY=value` pairs for the shell on top of the container's own.
    pub env: Vec<String>,
    pub cols: u16,
    pub rows: u16,
}
