//! Watching a session's files: `watch` over the WebSocket sends the
//! connection `fs_event {sessionId, path, kind}` for every change under a
//! path, made by anyone (the terminal, a command, the files API).
//!
//! One inotify instance serves the whole server (the kernel allows few per
//! user): a reader task takes its events, maps each watch descriptor to the
//! watches that cover it, and every [`FLUSH_EVERY`] hands each watch its
//! changes, coalesced (one event per path and kind in a flush) and bounded
//! ([`MAX_PER_FLUSH`]; beyond it one event with `overflow: true` says some
//! were left out). The directories are opened beneath the session's places
//! as the session user (`runtime::files`), and watched through their file
//! descriptors, so a watch never follows a symlink out of them.
//!
//! A write through the files API appears as one `created` (a new file) or
//! `modified` (a replaced one) for its path: its temporary file is not
//! reported, and its rename over the target is reported as what it means.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use futures_util::StreamExt;
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::ApiError;
use crate::protocol::ServerMessage;
use crate::runtime::files::{target_of_temp, temp_is_for, ContainerFiles, FileError, WatchTarget};

/// Watches one connection may hold.
pub const MAX_WATCHES_PER_CONNECTION: usize = 16;
/// Directories one recursive watch covers at most.
pub const MAX_DIRS: usize = 1000;
/// How often changes are handed out.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// Events one watch gets per flush at most.
pub const MAX_PER_FLUSH: usize = 256;

const MASK: WatchMask = WatchMask::CREATE
    .union(WatchMask::DELETE)
    .union(WatchMask::MODIFY)
    .union(WatchMask::ATTRIB)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::DELETE_SELF)
    .union(WatchMask::MOVE_SELF)
    .union(WatchMask::EXCL_UNLINK);

struct Watch {
    conn_id: u64,
    session_id: String,
    /// The path as the client named it (no trailing `/`).
    path: String,
    recursive: bool,
    files: Arc<ContainerFiles>,
    /// The watched directory (`None` for a file).
    root: Option<OwnedFd>,
    /// For a file: its name in the directory watched for it.
    only: Option<String>,
    tx: mpsc::Sender<Utf8Bytes>,
    wds: Vec<WatchDescriptor>,
    /// Changes waiting for the next flush: path, kind.
    pending: Vec<(String, &'static str)>,
    overflow: bool,
    /// Renames of the files API's temporary files, by cookie: whether the
    /// target is new.
    renames: HashMap<u32, bool>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    watches: HashMap<u64, Watch>,
    /// Each watch descriptor's watches, with the directory's path below
    /// the watch's root.
    by_wd: HashMap<WatchDescriptor, Vec<(u64, String)>>,
}

/// The server's watches.
pub struct Hub {
    state: Mutex<State>,
    watches: tokio::sync::OnceCell<Watches>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

/// What a new watch covers, for the `watching` answer.
pub struct Started {
    pub directories: usize,
    pub truncated: bool,
}

fn file_error(e: FileError) -> ApiError {
    match e {
        FileError::Invalid(m) => ApiError::Validation(m),
        FileError::NotFound(m) => ApiError::FileNotFound(m),
        FileError::Denied(m) => ApiError::Forbidden(m),
        FileError::NotRunning(m) => ApiError::ContainerNotFound(m),
        FileError::Refused(m) | FileError::TooLarge(m) | FileError::Io(m) => ApiError::Conflict(m),
    }
}

impl Hub {
    pub fn new(tasks: TaskTracker, shutdown: CancellationToken) -> Arc<Hub> {
        Arc::new(Hub {
            state: Mutex::default(),
            watches: tokio::sync::OnceCell::new(),
            tasks,
            shutdown,
        })
    }

    /// The inotify instance, made (with its reader task) on first use.
    async fn watches(self: &Arc<Self>) -> Result<Watches, ApiError> {
        self.watches
            .get_or_try_init(|| async {
                let inotify = Inotify::init().map_err(|e| {
                    ApiError::Unavailable(format!("File watching is not available: {e}"))
                })?;
                let stream = inotify
                    .into_event_stream(vec![0u8; 64 * 1024])
                    .map_err(|e| {
                        ApiError::Unavailable(format!("File watching is not available: {e}"))
                    })?;
                let watches = stream.watches();
                let this = Arc::clone(self);
                self.tasks.spawn(async move { this.read(stream).await });
                Ok(watches)
            })
            .await
            .cloned()
    }

    /// Starts watching `path` of a session for connection `conn_id`.
    #[allow(clippy::too_many_arguments)]
    pub async fn watch(
        self: &Arc<Self>,
        conn_id: u64,
        tx: mpsc::Sender<Utf8Bytes>,
        session_id: &str,
        files: Arc<ContainerFiles>,
        path: &str,
        recursive: bool,
    ) -> Result<Started, ApiError> {
        let mut watches = self.watches().await?;
        let shown = match path.trim_end_matches('/') {
            "" => "/".to_string(),
            p => p.to_string(),
        };
        {
            let state = self.state.lock().unwrap();
            let mine = state.watches.values().filter(|w| w.conn_id == conn_id);
            let mut count = 0;
            for w in mine {
                count += 1;
                if w.session_id == session_id && w.path == shown {
                    return Err(ApiError::validation(format!(
                        "{shown} is watched already on this connection; unwatch it first"
                    )));
                }
            }
            if count >= MAX_WATCHES_PER_CONNECTION {
                return Err(ApiError::AtCapacity {
                    message: format!(
                        "This connection watches {MAX_WATCHES_PER_CONNECTION} paths already; unwatch one first"
                    ),
                    limit: MAX_WATCHES_PER_CONNECTION as u32,
                    retry_after_secs: 1,
                });
            }
        }
        let f = Arc::clone(&files);
        let p = path.to_string();
        let target = tokio::task::spawn_blocking(move || f.watch_target(&p, recursive, MAX_DIRS))
            .await
            .map_err(|e| ApiError::Conflict(e.to_string()))?
            .map_err(file_error)?;
        let (root, dirs, truncated, only) = match target {
            WatchTarget::File { dir, name } => {
                (None, vec![(String::new(), dir)], false, Some(name))
            }
            WatchTarget::Directory {
                root,
                dirs,
                truncated,
            } => (Some(root), dirs, truncated, None),
        };
        let mut state = self.state.lock().unwrap();
        state.next_id += 1;
        let id = state.next_id;
        let mut wds = Vec::with_capacity(dirs.len());
        for (rel, fd) in &dirs {
            match watches.add(format!("/proc/self/fd/{}", fd.as_raw_fd()), MASK) {
                Ok(wd) => {
                    state
                        .by_wd
                        .entry(wd.clone())
                        .or_default()
                        .push((id, rel.clone()));
                    wds.push(wd);
                }
                Err(e) => {
                    for wd in wds {
                        forget_wd(&mut state, &mut watches, &wd, id);
                    }
                    return Err(ApiError::Unavailable(format!(
                        "Could not watch {shown}: {e}"
                    )));
                }
            }
        }
        let directories = if root.is_some() { wds.len() } else { 0 };
        state.watches.insert(
            id,
            Watch {
                conn_id,
                session_id: session_id.to_string(),
                path: shown,
                recursive,
                files,
                root,
                only,
                tx,
                wds,
                pending: Vec::new(),
                overflow: false,
                renames: HashMap::new(),
            },
        );
        Ok(Started {
            directories,
            truncated,
        })
    }

    /// Stops a connection's watch of `path`; `false` when there was none.
    pub async fn unwatch(&self, conn_id: u64, session_id: &str, path: &str) -> bool {
        let shown = match path.trim_end_matches('/') {
            "" => "/",
            p => p,
        };
        self.remove_where(|w| w.conn_id == conn_id && w.session_id == session_id && w.path == shown)
    }

    /// Stops every watch of a connection (it closed).
    pub fn forget_connection(&self, conn_id: u64) {
        self.remove_where(|w| w.conn_id == conn_id);
    }

    fn remove_where(&self, pred: impl Fn(&Watch) -> bool) -> bool {
        let Some(watches) = self.watches.get() else {
            return false;
        };
        let mut watches = watches.clone();
        let mut state = self.state.lock().unwrap();
        let ids: Vec<u64> = state
            .watches
            .iter()
            .filter(|(_, w)| pred(w))
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            if let Some(w) = state.watches.remove(id) {
                for wd in &w.wds {
                    forget_wd(&mut state, &mut watches, wd, *id);
                }
            }
        }
        !ids.is_empty()
    }

    /// Takes the kernel's events until shutdown, handing them out every
    /// [`FLUSH_EVERY`].
    async fn read(self: Arc<Self>, mut stream: inotify::EventStream<Vec<u8>>) {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut watches = stream.watches();
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                event = stream.next() => match event {
                    Some(Ok(e)) => self.note(&mut watches, e),
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "reading file events failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    None => return,
                },
                _ = tick.tick() => self.flush(),
            }
        }
    }

    /// Records one kernel event with the watches it concerns.
    fn note(&self, inotify: &mut Watches, e: inotify::Event<std::ffi::OsString>) {
        let mut state = self.state.lock().unwrap();
        if e.mask.contains(EventMask::Q_OVERFLOW) {
            for w in state.watches.values_mut() {
                w.overflow = true;
            }
            return;
        }
        let Some(targets) = state.by_wd.get(&e.wd).cloned() else {
            return;
        };
        if e.mask.contains(EventMask::IGNORED) {
            // The kernel dropped the watch (its directory is gone).
            state.by_wd.remove(&e.wd);
            for (id, _) in &targets {
                if let Some(w) = state.watches.get_mut(id) {
                    w.wds.retain(|wd| wd != &e.wd);
                }
            }
            return;
        }
        let name = e.name.as_ref().map(|n| n.to_string_lossy().into_owned());
        for (id, rel) in targets {
            let mut add_dir = None;
            if let Some(w) = state.watches.get_mut(&id) {
                let base = if rel.is_empty() {
                    w.path.clone()
                } else {
                    format!("{}/{rel}", w.path.trim_end_matches('/'))
                };
                let Some(name) = name.as_deref() else {
                    if w.only.is_some() {
                        // About the directory of a watched file.
                        continue;
                    }
                    // About the watched directory itself.
                    let kind = if e.mask.contains(EventMask::DELETE_SELF) {
                        "removed"
                    } else if e.mask.contains(EventMask::MOVE_SELF) {
                        "renamed"
                    } else {
                        "modified"
                    };
                    // A subdirectory's own removal is told by its parent.
                    if rel.is_empty() {
                        w.push(base, kind);
                    }
                    continue;
                };
                let temp = target_of_temp(name);
                let path = match w.only.as_deref() {
                    // A watched file: only its name (or its write's
                    // temporary file) in its directory concerns it.
                    Some(only) => {
                        if name != only && temp.is_none_or(|(t, _)| !temp_is_for(t, only)) {
                            continue;
                        }
                        w.path.clone()
                    }
                    None => format!("{}/{name}", base.trim_end_matches('/')),
                };
                let is_dir = e.mask.contains(EventMask::ISDIR);
                if e.mask.contains(EventMask::MOVED_FROM) {
                    match temp {
                        Some((_, new)) => {
                            w.renames.insert(e.cookie, new);
                        }
                        None => w.push(path, "renamed"),
                    }
                } else if e.mask.contains(EventMask::MOVED_TO) {
                    match w.renames.remove(&e.cookie) {
                        Some(true) => w.push(path, "created"),
                        Some(false) => w.push(path, "modified"),
                        None => w.push(path, "renamed"),
                    }
                    if is_dir && w.recursive {
                        add_dir = Some(if rel.is_empty() {
                            name.to_string()
                        } else {
                            format!("{rel}/{name}")
                        });
                    }
                } else if temp.is_some() {
                    // The files API's temporary file: its rename tells.
                } else if e.mask.contains(EventMask::CREATE) {
                    w.push(path, "created");
                    if is_dir && w.recursive {
                        add_dir = Some(if rel.is_empty() {
                            name.to_string()
                        } else {
                            format!("{rel}/{name}")
                        });
                    }
                } else if e.mask.contains(EventMask::DELETE) {
                    w.push(path, "removed");
                } else if e.mask.intersects(EventMask::MODIFY | EventMask::ATTRIB) && !is_dir {
                    w.push(path, "modified");
                }
                if w.renames.len() > 1024 {
                    w.renames.clear();
                }
            }
            if let Some(rel) = add_dir {
                self.watch_new_dir(&mut state, inotify, id, rel);
            }
        }
    }

    /// A directory made (or moved in) under a recursive watch is watched too.
    /// What it holds by the time its watch is in place (made at once with it,
    /// `mkdir -p a/b && touch a/b/c`, or moved in with it) was never seen by
    /// a watch: it is reported as `created`, and its directories watched.
    fn watch_new_dir(&self, state: &mut State, inotify: &mut Watches, id: u64, rel: String) {
        let Some(w) = state.watches.get(&id) else {
            return;
        };
        if w.wds.len() >= MAX_DIRS {
            return;
        }
        let Some(root) = w.root.as_ref() else { return };
        let Ok(fd) = w.files.open_below(root, &rel) else {
            return;
        };
        let Ok(wd) = inotify.add(format!("/proc/self/fd/{}", fd.as_raw_fd()), MASK) else {
            return;
        };
        let entry = state.by_wd.entry(wd.clone()).or_default();
        if !entry.iter().any(|(i, _)| *i == id) {
            entry.push((id, rel.clone()));
        }
        let Some(w) = state.watches.get_mut(&id) else {
            return;
        };
        if !w.wds.contains(&wd) {
            w.wds.push(wd);
        }
        let base = format!("{}/{rel}", w.path.trim_end_matches('/'));
        let mut subdirs = Vec::new();
        for (name, is_dir) in w.files.names_in(&fd) {
            if target_of_temp(&name).is_some() {
                continue;
            }
            w.push(format!("{base}/{name}"), "created");
            if is_dir {
                subdirs.push(format!("{rel}/{name}"));
            }
        }
        for sub in subdirs {
            self.watch_new_dir(state, inotify, id, sub);
        }
    }

    /// Hands each watch its changes since the last flush.
    fn flush(&self) {
        let mut state = self.state.lock().unwrap();
        let mut gone = false;
        for w in state.watches.values_mut() {
            if w.tx.is_closed() {
                gone = true;
                continue;
            }
            if w.pending.is_empty() && !w.overflow {
                continue;
            }
            let pending = std::mem::take(&mut w.pending);
            let mut overflow = std::mem::take(&mut w.overflow);
            for (path, kind) in &pending {
                let msg = ServerMessage::FsEvent {
                    session_id: &w.session_id,
                    path,
                    kind,
                    overflow: false,
                };
                if w.tx.try_send(msg.to_text().into()).is_err() {
                    overflow = true;
                    break;
                }
            }
            if overflow {
                let msg = ServerMessage::FsEvent {
                    session_id: &w.session_id,
                    path: &w.path,
                    kind: "modified",
                    overflow: true,
                };
                // Still full: the next flush says it again.
                if w.tx.try_send(msg.to_text().into()).is_err() {
                    w.overflow = true;
                }
            }
        }
        drop(state);
        if gone {
            // Their connection closed.
            self.remove_where(|w| w.tx.is_closed());
        }
    }
}

impl Watch {
    /// Notes a change, once per path and kind per flush, at most
    /// [`MAX_PER_FLUSH`] of them.
    fn push(&mut self, path: String, kind: &'static str) {
        if self.pending.iter().any(|(p, k)| *p == path && *k == kind) {
            return;
        }
        if self.pending.len() >= MAX_PER_FLUSH {
            self.overflow = true;
            return;
        }
        self.pending.push((path, kind));
    }
}

/// Drops watch `id` from a descriptor, and the descriptor when no watch
/// uses it any more.
fn forget_wd(state: &mut State, inotify: &mut Watches, wd: &WatchDescriptor, id: u64) {
    if let Some(users) = state.by_wd.get_mut(wd) {
        users.retain(|(i, _)| *i != id);
        if users.is_empty() {
            state.by_wd.remove(wd);
            let _ = inotify.remove(wd.clone());
        }
    }
}
