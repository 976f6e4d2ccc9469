//! Workspace slots: how a warm container gets its `workspaceDir` after it
//! started, though Docker cannot add a bind mount to a running container.
//!
//! A pooled container for workspace sessions binds, at `/workspace`, a
//! directory of its own under the server's state directory (its *slot*),
//! which the server first made a shared mount point; the bind receives
//! later mounts (`rslave`). At hand-out the server bind-mounts the session's
//! resolved `workspaceDir` onto the slot, on the host: the mount propagates
//! into that one container, and no other (no other container binds the
//! slot; a slave mount propagates nothing back, and the session cannot
//! mount anyway). Before the client is told, the server checks through the
//! container's own root (`/proc/PID/root/workspace`) that the directory it
//! sees is the workspace; a container where it is not is discarded and the
//! create goes the cold way.
//!
//! This needs the server on the engine's machine, as root, in the engine's
//! mount namespace (as the preview's namespace dialling already does);
//! elsewhere slots are off and workspace sessions are made on demand.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub struct Slots {
    root: PathBuf,
}

fn c_path(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::other("path with a NUL byte"))
}

fn mount(source: &Path, target: &Path, flags: libc::c_ulong) -> io::Result<()> {
    let (src, dst) = (c_path(source)?, c_path(target)?);
    // SAFETY: valid NUL-terminated paths; no filesystem type or data for a
    // bind or a propagation change.
    let r = unsafe {
        libc::mount(
            src.as_ptr(),
            dst.as_ptr(),
            std::ptr::null(),
            flags,
            std::ptr::null(),
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl Slots {
    /// Slots under `root`.
    pub fn new(root: PathBuf) -> Slots {
        Slots { root }
    }

    /// Where an instance's slots live: under `/run`, not the state
    /// directory, because a slot's mount lasts until the machine restarts,
    /// as `/run` does, and because a recursive removal of a directory that
    /// holds a session's mounted workspace would remove the workspace's
    /// files (nobody removes `/run/claude-studio` by hand to start afresh).
    pub fn root(instance: &str) -> PathBuf {
        PathBuf::from("/run/claude-studio/instances")
            .join(instance)
            .join("slots")
    }

    pub fn path(&self, session_id: &str) -> PathBuf {
        self.root.join(session_id)
    }

    /// Makes the slot of `session_id`: an empty directory that is a shared
    /// mount point of its own.
    pub fn prepare(&self, session_id: &str) -> io::Result<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        // Root's alone: a workspace mounted here is reachable by this path
        // on the host, which must not let other users past the permissions
        // of the directories above the workspace's own path.
        std::fs::create_dir_all(&self.root)?;
        std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o700))?;
        let dir = self.path(session_id);
        std::fs::create_dir(&dir).or_else(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => Ok(()),
            _ => Err(e),
        })?;
        let made = mount(&dir, &dir, libc::MS_BIND)
            .and_then(|()| mount(Path::new("none"), &dir, libc::MS_PRIVATE))
            .and_then(|()| mount(Path::new("none"), &dir, libc::MS_SHARED));
        if let Err(e) = made {
            self.release(session_id);
            return Err(e);
        }
        Ok(dir)
    }

    /// Mounts `workspace` (resolved, inside a workspace root) on the slot,
    /// with what is mounted below it, as Docker's own bind does.
    pub fn attach(&self, session_id: &str, workspace: &Path) -> io::Result<()> {
        mount(
            workspace,
            &self.path(session_id),
            libc::MS_BIND | libc::MS_REC,
        )
    }

    /// Whether the container whose init process is `pid` sees `workspace`
    /// at `/workspace` (the same directory, not one of the same name).
    pub fn sees(pid: u32, workspace: &Path) -> bool {
        let inside = std::fs::metadata(format!("/proc/{pid}/root/workspace"));
        let host = std::fs::metadata(workspace);
        matches!((inside, host), (Ok(a), Ok(b)) if a.dev() == b.dev() && a.ino() == b.ino())
    }

    /// Unmounts whatever the slot holds and removes it; a slot that is not
    /// there is fine. Failures are logged: the sweep tries again.
    pub fn release(&self, session_id: &str) {
        let dir = self.path(session_id);
        if !dir.exists() {
            return;
        }
        let Ok(target) = c_path(&dir) else { return };
        // The workspace, then the slot's own bind; lazily, so a process of
        // a container being removed cannot hold it up.
        for _ in 0..8 {
            // SAFETY: a valid NUL-terminated path.
            if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } != 0 {
                break;
            }
        }
        if let Err(e) = std::fs::remove_dir(&dir) {
            tracing::warn!(slot = %dir.display(), error = %e, "could not remove a workspace slot");
        }
    }

    /// Session ids of the slots that exist.
    pub fn existing(&self) -> Vec<String> {
        std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(String::from))
            .collect()
    }
}
