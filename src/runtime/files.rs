//! A session's files, read and written from the engine's machine through the
//! container's root (`/proc/PID/root`), as the session user would: every
//! operation runs on a thread whose filesystem ids are the session user's
//! (`setfsuid`/`setfsgid`, which also drops the root privileges that would
//! bypass file permissions), so what it may read and write is exactly what
//! the user may in the shell, and what it creates is the user's (uid 1000).
//! It works the same for a bind-mounted `workspaceDir`, the tmpfs workspace,
//! `/tmp` and the home, and needs nothing inside the container.
//!
//! Only the places a session may write are reachable: `/workspace`, the home
//! (`/home/studio`) and `/tmp`. A client path must be absolute, under one of
//! them, and free of `..`; it is then resolved from that place's directory
//! with `openat2(RESOLVE_BENEATH)`, so no symlink (absolute, relative, or
//! swapped in while the operation runs) leads out of it, let alone onto the
//! machine. Every later step works on file descriptors, never on a path
//! resolved again.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::sync::Arc;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags};

use super::procfs::Process;
use super::spec::{HOME, WORKDIR};

/// The places a session's files may be reached in.
pub const PLACES: [&str; 3] = [WORKDIR, HOME, "/tmp"];
/// Entries a listing returns at most (a recursive one says `truncated`).
pub const MAX_LIST: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The path is not one a session may name (relative, `..`, outside the
    /// places), or leads outside them.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// Not as things are (a directory that is not empty, a name that
    /// exists, not a directory).
    #[error("{0}")]
    Refused(String),
    /// File permissions do not let the session user do it.
    #[error("{0}")]
    Denied(String),
    #[error("{0}")]
    TooLarge(String),
    /// The container is not running (or is gone).
    #[error("{0}")]
    NotRunning(String),
    #[error("{0}")]
    Io(String),
}

/// What an `io::Error` on `path` means to the client.
fn fail(path: &str, e: io::Error) -> FileError {
    match e.raw_os_error() {
        Some(libc::ENOENT) => FileError::NotFound(format!("No such file or directory: {path}")),
        Some(libc::EXDEV) | Some(libc::ELOOP) => FileError::Invalid(format!(
            "{path} leads outside the session's places (a symlink or '..' out of {}): not allowed",
            place_of(path).unwrap_or("its place")
        )),
        Some(libc::EACCES) | Some(libc::EPERM) => {
            FileError::Denied(format!("Permission denied for the session user: {path}"))
        }
        Some(libc::ENOTDIR) => FileError::Refused(format!("Not a directory on the way to {path}")),
        Some(libc::EISDIR) => FileError::Refused(format!("{path} is a directory")),
        // Moving a directory into itself (or another rename that cannot be).
        Some(libc::EINVAL) => FileError::Refused(format!("{path}: not possible ({e})")),
        Some(libc::ENOTEMPTY) => FileError::Refused(format!(
            "Directory {path} is not empty: pass recursive=true to remove it with its contents"
        )),
        Some(libc::EEXIST) => FileError::Refused(format!("{path} exists already")),
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => {
            FileError::TooLarge(format!("No space left for {path} (the place is full)"))
        }
        Some(libc::ENAMETOOLONG) => FileError::Invalid(format!("Name too long: {path}")),
        _ => FileError::Io(format!("{path}: {e}")),
    }
}

fn place_of(path: &str) -> Option<&'static str> {
    PLACES
        .iter()
        .find(|p| path == **p || path.strip_prefix(**p).is_some_and(|r| r.starts_with('/')))
        .copied()
}

/// A client's path, checked: its place, and the rest of it below the place
/// (empty for the place itself). `/workspace//a/./b/` is `/workspace`, `a/b`.
pub fn locate(path: &str) -> Result<(&'static str, String), FileError> {
    if !path.starts_with('/') || path.contains('\0') || path.len() > 4096 {
        return Err(FileError::Invalid(format!(
            "Path must be absolute (under {}): {path:?}",
            PLACES.join(", ")
        )));
    }
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return Err(FileError::Invalid(format!(
            "Path must not contain '..': {path:?}"
        )));
    }
    let normal = format!("/{}", parts.join("/"));
    let place = place_of(&normal).ok_or_else(|| {
        FileError::Invalid(format!(
            "Path {normal} is not under a place a session may use: {}",
            PLACES.join(", ")
        ))
    })?;
    let rest = normal[place.len()..].trim_start_matches('/').to_string();
    Ok((place, rest))
}

/// The kind of a directory entry, as the API names it.
fn kind(t: FileType) -> &'static str {
    match t {
        FileType::RegularFile => "file",
        FileType::Directory => "directory",
        FileType::Symlink => "symlink",
        _ => "other",
    }
}

/// One file or directory, as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Entry {
    /// The name (in a recursive listing: the path below the listed directory).
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub size: u64,
    /// Permission bits, as octal text (`0644`).
    pub mode: String,
    /// Unix seconds.
    pub mtime: i64,
    /// Where a symlink points (never followed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

fn entry(name: String, st: &rustix::fs::Stat, target: Option<String>) -> Entry {
    Entry {
        name,
        kind: kind(FileType::from_raw_mode(st.st_mode)),
        size: st.st_size as u64,
        mode: format!("{:04o}", st.st_mode & 0o7777),
        mtime: st.st_mtime,
        target,
    }
}

/// A session's files.
pub struct ContainerFiles {
    process: Arc<Process>,
    /// The machine's ids for the session user (1000:1000 inside), through
    /// the container's user namespace, if it has one.
    uid: u32,
    gid: u32,
}

/// The filesystem identity of this thread, the session user's until dropped.
struct AsUser {
    uid: u32,
    gid: u32,
}

impl AsUser {
    fn enter(uid: u32, gid: u32) -> io::Result<AsUser> {
        // Per thread: the kernel's fs ids and supplementary groups belong to
        // the calling thread (the raw calls; glibc's setgroups would change
        // every thread). Groups first, while still privileged.
        rustix::thread::set_thread_groups(&[rustix::fs::Gid::from_raw(gid)])?;
        // SAFETY: setfsgid/setfsuid only change this thread's fs ids.
        unsafe {
            libc::setfsgid(gid);
            libc::setfsuid(uid);
            // They report the previous id; read back to know it took.
            if libc::setfsuid(u32::MAX) as u32 != uid {
                libc::setfsuid(0);
                libc::setfsgid(0);
                return Err(io::Error::other(
                    "could not take the session user's identity",
                ));
            }
        }
        Ok(AsUser { uid, gid })
    }
}

impl Drop for AsUser {
    fn drop(&mut self) {
        let _ = (self.uid, self.gid);
        // SAFETY: back to root's fs ids on this (pooled) thread, which also
        // restores the file capabilities the switch dropped.
        unsafe {
            libc::setfsuid(0);
            libc::setfsgid(0);
        }
        let _ = rustix::thread::set_thread_groups(&[rustix::fs::Gid::ROOT]);
    }
}

/// The machine's id for `inside` in a `/proc/PID/{uid,gid}_map`.
fn map_id(map: &str, inside: u32) -> Option<u32> {
    map.lines().find_map(|l| {
        let mut f = l.split_whitespace().map(|n| n.parse::<u32>().ok());
        let (start, outside, count) = (f.next()??, f.next()??, f.next()??);
        (inside >= start && inside - start < count).then(|| outside + (inside - start))
    })
}

const DIR: OFlags = OFlags::PATH.union(OFlags::DIRECTORY).union(OFlags::CLOEXEC);
const BENEATH: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_MAGICLINKS);

impl ContainerFiles {
    /// The files of the container whose init is `process`.
    pub fn new(process: Arc<Process>) -> Result<ContainerFiles, FileError> {
        let read = |what| {
            let mut s = String::new();
            process
                .open(what, false)
                .and_then(|mut f| f.read_to_string(&mut s))
                .map_err(|e| FileError::NotRunning(format!("The container is not running: {e}")))?;
            Ok::<_, FileError>(s)
        };
        let uid = map_id(&read("uid_map")?, 1000)
            .ok_or_else(|| FileError::Io("the session user has no id on this machine".into()))?;
        let gid = map_id(&read("gid_map")?, 1000)
            .ok_or_else(|| FileError::Io("the session group has no id on this machine".into()))?;
        Ok(ContainerFiles { process, uid, gid })
    }

    pub fn alive(&self) -> bool {
        self.process.alive()
    }

    /// The container's init process.
    pub fn process(&self) -> &Arc<Process> {
        &self.process
    }

    /// Runs `f` as the session user. Blocking: call from a blocking thread.
    fn as_user<T>(&self, f: impl FnOnce() -> Result<T, FileError>) -> Result<T, FileError> {
        let _user = AsUser::enter(self.uid, self.gid).map_err(|e| FileError::Io(e.to_string()))?;
        f()
    }

    /// The directory of `place` (`/workspace`…), itself never a symlink.
    fn place_dir(&self, place: &str) -> Result<OwnedFd, FileError> {
        let root = self
            .process
            .open("root", true)
            .map_err(|e| FileError::NotRunning(format!("The container is not running: {e}")))?;
        rustix::fs::openat2(
            &root,
            place.trim_start_matches('/'),
            DIR,
            Mode::empty(),
            ResolveFlags::IN_ROOT
                .union(ResolveFlags::NO_SYMLINKS)
                .union(ResolveFlags::NO_MAGICLINKS),
        )
        .map_err(|e| fail(place, e.into()))
    }

    /// Opens `rest` below `dir` (`.` for `dir` itself).
    fn open_in(
        dir: BorrowedFd<'_>,
        rest: &str,
        flags: OFlags,
        mode: Mode,
        path: &str,
    ) -> Result<OwnedFd, FileError> {
        let rel = if rest.is_empty() { "." } else { rest };
        rustix::fs::openat2(dir, rel, flags | OFlags::CLOEXEC, mode, BENEATH)
            .map_err(|e| fail(path, e.into()))
    }

    /// The directory holding `rest` (opened), and its last name. The place
    /// itself has no parent a client may touch.
    fn parent_of(
        &self,
        place: &str,
        rest: &str,
        create: bool,
        path: &str,
    ) -> Result<(OwnedFd, String), FileError> {
        let (dir_part, name) = match rest.rsplit_once('/') {
            Some((d, n)) => (d, n),
            None if rest.is_empty() => {
                return Err(FileError::Invalid(format!(
                    "{path} is one of the session's places; name something in it"
                )))
            }
            None => ("", rest),
        };
        let place_fd = self.place_dir(place)?;
        if create && !dir_part.is_empty() {
            mkdirs(place_fd.as_fd(), dir_part, path)?;
        }
        let dir = Self::open_in(place_fd.as_fd(), dir_part, DIR, Mode::empty(), path)?;
        Ok((dir, name.to_string()))
    }

    /// What `path` is: a file's entry, or a directory's with its entries
    /// (`recursive`: every entry below it, at most [`MAX_LIST`]).
    pub fn stat(&self, path: &str, recursive: bool) -> Result<Stat, FileError> {
        let (place, rest) = locate(path)?;
        self.as_user(|| {
            let place_fd = self.place_dir(place)?;
            let fd = Self::open_in(place_fd.as_fd(), &rest, OFlags::PATH, Mode::empty(), path)?;
            let st = rustix::fs::fstat(&fd).map_err(|e| fail(path, e.into()))?;
            let name = rest
                .rsplit('/')
                .next()
                .filter(|n| !n.is_empty())
                .unwrap_or(place.trim_start_matches('/'));
            let me = entry(name.to_string(), &st, None);
            if me.kind != "directory" {
                return Ok(Stat::File(me));
            }
            let dir = Self::open_in(
                place_fd.as_fd(),
                &rest,
                OFlags::RDONLY | OFlags::DIRECTORY,
                Mode::empty(),
                path,
            )?;
            let mut entries = Vec::new();
            let truncated = list(&dir, "", recursive, &mut entries, path)?;
            Ok(Stat::Directory {
                entry: me,
                entries,
                truncated,
            })
        })
    }

    /// Opens a file for reading; returns it with its size.
    pub fn open_read(&self, path: &str) -> Result<(std::fs::File, u64), FileError> {
        let (place, rest) = locate(path)?;
        self.as_user(|| {
            let place_fd = self.place_dir(place)?;
            // Non-blocking: opening a fifo would otherwise wait for a writer
            // (for ever, holding a blocking thread); a regular file ignores it.
            let fd = Self::open_in(
                place_fd.as_fd(),
                &rest,
                OFlags::RDONLY | OFlags::NONBLOCK,
                Mode::empty(),
                path,
            )?;
            let st = rustix::fs::fstat(&fd).map_err(|e| fail(path, e.into()))?;
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                return Err(FileError::Refused(format!(
                    "{path} is a directory: list it with GET /files?path=, or download it with /files/archive"
                )));
            }
            if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                return Err(FileError::Refused(format!("{path} is not a regular file")));
            }
            Ok((std::fs::File::from(fd), st.st_size as u64))
        })
    }

    /// Starts an atomic write of `path`: a new file beside it, to be filled
    /// and then renamed over it by [`Pending::commit`] (a reader never sees
    /// half a file). `parents`: make the missing directories on the way.
    pub fn start_write(self: &Arc<Self>, path: &str, parents: bool) -> Result<Pending, FileError> {
        let (place, rest) = locate(path)?;
        self.as_user(|| {
            let (dir, name) = self.parent_of(place, &rest, parents, path)?;
            // An existing file keeps its permission bits; a new one is 0644.
            let mode = rustix::fs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
                .ok()
                .filter(|st| FileType::from_raw_mode(st.st_mode) == FileType::RegularFile)
                .map_or(0o644, |st| st.st_mode & 0o7777);
            if rustix::fs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
            {
                return Err(FileError::Refused(format!("{path} is a directory")));
            }
            let existed =
                rustix::fs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW).is_ok();
            let temp = temp_name(&name, !existed);
            let fd = rustix::fs::openat(
                &dir,
                temp.as_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                Mode::from_raw_mode(0o600),
            )
            .map_err(|e| fail(path, e.into()))?;
            Ok(Pending {
                files: Arc::clone(self),
                dir,
                temp,
                name,
                mode,
                path: path.to_string(),
                file: Some(std::fs::File::from(fd)),
                done: false,
                existed,
            })
        })
    }

    /// Makes a directory (`parents`: and the missing ones on the way; an
    /// existing directory is then no error). `true` when it was made.
    pub fn mkdir(&self, path: &str, parents: bool) -> Result<bool, FileError> {
        let (place, rest) = locate(path)?;
        self.as_user(|| {
            if rest.is_empty() {
                return Ok(false);
            }
            if parents {
                let place_fd = self.place_dir(place)?;
                let existed =
                    Self::open_in(place_fd.as_fd(), &rest, DIR, Mode::empty(), path).is_ok();
                mkdirs(place_fd.as_fd(), &rest, path)?;
                return Ok(!existed);
            }
            let (dir, name) = self.parent_of(place, &rest, false, path)?;
            rustix::fs::mkdirat(&dir, name.as_str(), Mode::from_raw_mode(0o755))
                .map_err(|e| fail(path, e.into()))?;
            Ok(true)
        })
    }

    /// Removes a file, a symlink, or (`recursive`) a directory and all in it.
    pub fn remove(&self, path: &str, recursive: bool) -> Result<(), FileError> {
        let (place, rest) = locate(path)?;
        self.as_user(|| {
            let (dir, name) = self.parent_of(place, &rest, false, path)?;
            let st = rustix::fs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| fail(path, e.into()))?;
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                if recursive {
                    empty_dir(dir.as_fd(), &name, path)?;
                }
                rustix::fs::unlinkat(&dir, name.as_str(), AtFlags::REMOVEDIR)
                    .map_err(|e| fail(path, e.into()))
            } else {
                rustix::fs::unlinkat(&dir, name.as_str(), AtFlags::empty())
                    .map_err(|e| fail(path, e.into()))
            }
        })
    }

    /// Renames `from` to `to` (both in the session's places; across places
    /// a file is copied, as the places are different filesystems).
    pub fn rename(&self, from: &str, to: &str) -> Result<(), FileError> {
        let (fplace, frest) = locate(from)?;
        let (tplace, trest) = locate(to)?;
        self.as_user(|| {
            let (fdir, fname) = self.parent_of(fplace, &frest, false, from)?;
            let (tdir, tname) = self.parent_of(tplace, &trest, false, to)?;
            match rustix::fs::renameat(&fdir, fname.as_str(), &tdir, tname.as_str()) {
                Ok(()) => Ok(()),
                Err(e) if e == rustix::io::Errno::XDEV => {
                    let st = rustix::fs::statat(&fdir, fname.as_str(), AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(|e| fail(from, e.into()))?;
                    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                        return Err(FileError::Refused(format!(
                            "{from} and {to} are on different filesystems: only a file moves between them"
                        )));
                    }
                    let src = Self::open_in(fdir.as_fd(), &fname, OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK, Mode::empty(), from)?;
                    // What was opened, not what was there a moment before.
                    if !rustix::fs::fstat(&src).is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::RegularFile) {
                        return Err(FileError::Refused(format!(
                            "{from} and {to} are on different filesystems: only a file moves between them"
                        )));
                    }
                    let mut src = std::fs::File::from(src);
                    let existed = rustix::fs::statat(&tdir, tname.as_str(), AtFlags::SYMLINK_NOFOLLOW).is_ok();
                    let temp = temp_name(&tname, !existed);
                    let mut dst = std::fs::File::from(
                        rustix::fs::openat(
                            &tdir,
                            temp.as_str(),
                            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                            Mode::from_raw_mode(st.st_mode & 0o7777),
                        )
                        .map_err(|e| fail(to, e.into()))?,
                    );
                    let copied = io::copy(&mut src, &mut dst).and_then(|_| dst.sync_all());
                    let renamed = copied.map_err(|e| fail(to, e)).and_then(|()| {
                        rustix::fs::renameat(&tdir, temp.as_str(), &tdir, tname.as_str())
                            .map_err(|e| fail(to, e.into()))
                    });
                    if let Err(e) = renamed {
                        let _ = rustix::fs::unlinkat(&tdir, temp.as_str(), AtFlags::empty());
                        return Err(e);
                    }
                    rustix::fs::unlinkat(&fdir, fname.as_str(), AtFlags::empty())
                        .map_err(|e| fail(from, e.into()))
                }
                Err(e) => Err(fail(from, e.into())),
            }
        })
    }

    /// Writes `path` (a directory) as a tar archive into `out`, at most
    /// `limit` bytes of file content. Blocking for as long as it writes.
    pub fn archive(&self, path: &str, out: impl Write, limit: u64) -> Result<(), FileError> {
        let (place, rest) = locate(path)?;
        self.as_user(|| {
            let place_fd = self.place_dir(place)?;
            let dir = Self::open_in(
                place_fd.as_fd(),
                &rest,
                OFlags::RDONLY | OFlags::DIRECTORY,
                Mode::empty(),
                path,
            )?;
            let mut tar = tar::Builder::new(out);
            tar.follow_symlinks(false);
            let mut budget = limit;
            pack(&mut tar, &dir, "", path, &mut budget)?;
            tar.finish()
                .map_err(|e| FileError::Io(format!("writing the archive: {e}")))
        })
    }

    /// Unpacks the tar archive read from `input` into the directory `path`
    /// (made if missing), at most `limit` bytes of file content. Entries
    /// that would land outside it (absolute names, `..`, through a symlink)
    /// are refused; files are the session user's.
    pub fn unpack(&self, path: &str, input: impl Read, limit: u64) -> Result<usize, FileError> {
        let (place, rest) = locate(path)?;
        self.as_user(|| {
            let place_fd = self.place_dir(place)?;
            if !rest.is_empty() {
                mkdirs(place_fd.as_fd(), &rest, path)?;
            }
            let dir = Self::open_in(place_fd.as_fd(), &rest, DIR, Mode::empty(), path)?;
            let mut archive = tar::Archive::new(input);
            let mut budget = limit;
            let mut count = 0;
            for e in archive
                .entries()
                .map_err(|e| FileError::Invalid(format!("Not a tar archive: {e}")))?
            {
                let mut e = e.map_err(|e| FileError::Invalid(format!("Broken tar archive: {e}")))?;
                // Archive-wide metadata (`git archive` writes one, with the
                // commit; others name it `/tmp/GlobalHead…`), not a file.
                if e.header().entry_type() == tar::EntryType::XGlobalHeader {
                    continue;
                }
                let name = e
                    .path()
                    .map_err(|e| FileError::Invalid(format!("Bad name in the archive: {e}")))?
                    .to_string_lossy()
                    .into_owned();
                let clean: Vec<&str> = name.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
                if name.starts_with('/') || clean.contains(&"..") {
                    return Err(FileError::Invalid(format!(
                        "Archive entry {name:?} would land outside {path}"
                    )));
                }
                if clean.is_empty() {
                    continue;
                }
                let rel = clean.join("/");
                let shown = format!("{path}/{rel}");
                let mode = e.header().mode().unwrap_or(0o644) & 0o777;
                let (parent, leaf) = match rel.rsplit_once('/') {
                    Some((p, l)) => {
                        mkdirs(dir.as_fd(), p, &shown)?;
                        (Self::open_in(dir.as_fd(), p, DIR, Mode::empty(), &shown)?, l.to_string())
                    }
                    None => (
                        Self::open_in(dir.as_fd(), "", DIR, Mode::empty(), &shown)?,
                        rel.clone(),
                    ),
                };
                match e.header().entry_type() {
                    tar::EntryType::Directory => {
                        match rustix::fs::mkdirat(&parent, leaf.as_str(), Mode::from_raw_mode(mode | 0o700)) {
                            Ok(()) => {}
                            Err(err) if err == rustix::io::Errno::EXIST => {}
                            Err(err) => return Err(fail(&shown, err.into())),
                        }
                    }
                    tar::EntryType::Regular | tar::EntryType::Continuous => {
                        let size = e.header().size().unwrap_or(0);
                        if size > budget {
                            return Err(FileError::TooLarge(format!(
                                "The archive holds more than {limit} bytes of files"
                            )));
                        }
                        budget -= size;
                        let _ = rustix::fs::unlinkat(&parent, leaf.as_str(), AtFlags::empty());
                        let fd = rustix::fs::openat(
                            &parent,
                            leaf.as_str(),
                            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                            Mode::from_raw_mode(mode),
                        )
                        .map_err(|err| fail(&shown, err.into()))?;
                        let mut f = std::fs::File::from(fd);
                        io::copy(&mut (&mut e).take(size), &mut f).map_err(|err| fail(&shown, err))?;
                    }
                    tar::EntryType::Symlink => {
                        let target = e
                            .link_name()
                            .ok()
                            .flatten()
                            .map(|t| t.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        let _ = rustix::fs::unlinkat(&parent, leaf.as_str(), AtFlags::empty());
                        // A link is made as it is (reading through it later is
                        // held beneath the place like any path).
                        rustix::fs::symlinkat(target.as_str(), &parent, leaf.as_str())
                            .map_err(|err| fail(&shown, err.into()))?;
                    }
                    // Hard links, devices, fifos: not for a workspace.
                    other => {
                        return Err(FileError::Invalid(format!(
                            "Archive entry {name:?} is a {other:?}; only files, directories and symlinks are taken"
                        )))
                    }
                }
                count += 1;
            }
            Ok(count)
        })
    }
}

/// What a watch is on: one file, or a directory and the directories below
/// it (for a recursive watch), each opened beneath the session's place.
pub enum WatchTarget {
    /// A file is watched through its directory, by name: watching its inode
    /// would go deaf at the first atomic replace (an editor's save, the
    /// files API's own write), which puts a new inode under the name.
    File {
        /// The directory holding it.
        dir: OwnedFd,
        name: String,
    },
    Directory {
        /// The watched directory itself (kept to open new ones below it).
        root: OwnedFd,
        /// The directories to watch, with their paths below `root` (`""`
        /// for the root itself), breadth first.
        dirs: Vec<(String, OwnedFd)>,
        /// More directories were below than `max_dirs`.
        truncated: bool,
    },
}

impl ContainerFiles {
    /// Opens what a watch of `path` covers: at most `max_dirs` directories.
    pub fn watch_target(
        &self,
        path: &str,
        recursive: bool,
        max_dirs: usize,
    ) -> Result<WatchTarget, FileError> {
        let (place, rest) = locate(path)?;
        self.as_user(|| {
            let place_fd = self.place_dir(place)?;
            let fd = Self::open_in(place_fd.as_fd(), &rest, OFlags::PATH, Mode::empty(), path)?;
            let st = rustix::fs::fstat(&fd).map_err(|e| fail(path, e.into()))?;
            if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                let (dir_part, name) = rest.rsplit_once('/').unwrap_or(("", rest.as_str()));
                let dir = Self::open_in(
                    place_fd.as_fd(),
                    dir_part,
                    OFlags::RDONLY | OFlags::DIRECTORY,
                    Mode::empty(),
                    path,
                )?;
                return Ok(WatchTarget::File {
                    dir,
                    name: name.to_string(),
                });
            }
            let root = Self::open_in(place_fd.as_fd(), &rest, DIR, Mode::empty(), path)?;
            let mut dirs = vec![(
                String::new(),
                Self::open_in(
                    root.as_fd(),
                    "",
                    OFlags::RDONLY | OFlags::DIRECTORY,
                    Mode::empty(),
                    path,
                )?,
            )];
            let mut truncated = false;
            let mut next = 0;
            while recursive && next < dirs.len() {
                let names: Vec<String> = Dir::read_from(&dirs[next].1)
                    .map(|d| {
                        d.filter_map(|e| e.ok().as_ref().and_then(name_of))
                            .collect()
                    })
                    .unwrap_or_default();
                let prefix = dirs[next].0.clone();
                for name in names {
                    let Ok(st) =
                        rustix::fs::statat(&dirs[next].1, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
                    else {
                        continue;
                    };
                    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                        continue;
                    }
                    if dirs.len() >= max_dirs {
                        truncated = true;
                        break;
                    }
                    let rel = if prefix.is_empty() {
                        name
                    } else {
                        format!("{prefix}/{name}")
                    };
                    if let Ok(sub) = below(&root, &rel) {
                        dirs.push((rel, sub));
                    }
                }
                if truncated {
                    break;
                }
                next += 1;
            }
            Ok(WatchTarget::Directory {
                root,
                dirs,
                truncated,
            })
        })
    }

    /// Opens the directory `rel` below a watched `root`, never through a symlink.
    pub fn open_below(&self, root: &OwnedFd, rel: &str) -> Result<OwnedFd, FileError> {
        self.as_user(|| below(root, rel))
    }

    /// The names in a directory opened by [`Self::open_below`], each with
    /// whether it is a directory (not through a symlink).
    pub fn names_in(&self, dir: &OwnedFd) -> Vec<(String, bool)> {
        self.as_user(|| Ok(names_in(dir))).unwrap_or_default()
    }
}

fn names_in(dir: &OwnedFd) -> Vec<(String, bool)> {
    let Ok(d) = Dir::read_from(dir) else {
        return Vec::new();
    };
    let mut names: Vec<(String, bool)> = d
        .filter_map(|e| e.ok().as_ref().and_then(name_of))
        .map(|n| {
            let is_dir = rustix::fs::statat(dir, n.as_str(), AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory);
            (n, is_dir)
        })
        .collect();
    names.sort();
    names
}

/// The directory `rel` below `root`, never through a symlink.
fn below(root: &OwnedFd, rel: &str) -> Result<OwnedFd, FileError> {
    rustix::fs::openat2(
        root,
        rel,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        BENEATH.union(ResolveFlags::NO_SYMLINKS),
    )
    .map_err(|e| fail(rel, e.into()))
}

/// Bytes of a target's name a temporary name keeps: with its dot, suffix
/// and marker it stays within the 255 bytes a name may have, whatever the
/// target's length.
pub const TEMP_NAME_KEEPS: usize = 255 - ".".len() - ".studio-new-".len() - 16;

/// The name of a write's new file beside its target `name` until it is
/// renamed over it: hidden, and telling a watcher (see `watch`) whether the
/// target is new (`created`) or replaced (`modified`). A long target name
/// is cut (at a character boundary) to [`TEMP_NAME_KEEPS`] bytes.
pub fn temp_name(name: &str, new: bool) -> String {
    let kind = if new { "new" } else { "upd" };
    let mut end = name.len().min(TEMP_NAME_KEEPS);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        ".{}.studio-{kind}-{:016x}",
        &name[..end],
        rand::random::<u64>()
    )
}

/// Whether `temp` (what [`target_of_temp`] found in a temporary name) is
/// the beginning kept of `name`.
pub fn temp_is_for(temp: &str, name: &str) -> bool {
    temp == name || (temp.len() + 3 >= TEMP_NAME_KEEPS && name.starts_with(temp))
}

/// For a name made by [`temp_name`]: its target's name, and whether the
/// target is new.
pub fn target_of_temp(temp: &str) -> Option<(&str, bool)> {
    let rest = temp.strip_prefix('.')?;
    let (name, tail) = rest.rsplit_once(".studio-")?;
    let (kind, hex) = tail.split_once('-')?;
    if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) || name.is_empty() {
        return None;
    }
    match kind {
        "new" => Some((name, true)),
        "upd" => Some((name, false)),
        _ => None,
    }
}

/// What `stat` found.
pub enum Stat {
    File(Entry),
    Directory {
        entry: Entry,
        entries: Vec<Entry>,
        truncated: bool,
    },
}

/// Makes each missing directory of `rel` below `dir`.
fn mkdirs(dir: BorrowedFd<'_>, rel: &str, path: &str) -> Result<(), FileError> {
    let mut at = String::new();
    for part in rel.split('/').filter(|p| !p.is_empty()) {
        if !at.is_empty() {
            at.push('/');
        }
        at.push_str(part);
        match rustix::fs::openat2(dir, at.as_str(), DIR, Mode::empty(), BENEATH) {
            Ok(_) => continue,
            Err(e) if e == rustix::io::Errno::NOENT => {}
            Err(e) => return Err(fail(path, e.into())),
        }
        let (parent, name) = match at.rsplit_once('/') {
            Some((p, n)) => (
                rustix::fs::openat2(dir, p, DIR, Mode::empty(), BENEATH)
                    .map_err(|e| fail(path, e.into()))?,
                n,
            ),
            None => (
                rustix::fs::openat2(dir, ".", DIR, Mode::empty(), BENEATH)
                    .map_err(|e| fail(path, e.into()))?,
                at.as_str(),
            ),
        };
        match rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(0o755)) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::EXIST => {}
            Err(e) => return Err(fail(path, e.into())),
        }
    }
    Ok(())
}

fn name_of(e: &rustix::fs::DirEntry) -> Option<String> {
    let n = e.file_name().to_bytes();
    if n == b"." || n == b".." {
        return None;
    }
    Some(
        OsString::from_vec(n.to_vec())
            .to_string_lossy()
            .into_owned(),
    )
}

/// Lists `dir` into `out` (names prefixed with `prefix`); `true` when the
/// list was cut at [`MAX_LIST`].
fn list(
    dir: &OwnedFd,
    prefix: &str,
    recursive: bool,
    out: &mut Vec<Entry>,
    path: &str,
) -> Result<bool, FileError> {
    let mut names: Vec<String> = Dir::read_from(dir)
        .map_err(|e| fail(path, e.into()))?
        .filter_map(|e| e.ok().as_ref().and_then(name_of))
        .collect();
    names.sort();
    for name in names {
        if out.len() >= MAX_LIST {
            return Ok(true);
        }
        let Ok(st) = rustix::fs::statat(dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) else {
            continue; // gone meanwhile
        };
        let t = FileType::from_raw_mode(st.st_mode);
        let target = (t == FileType::Symlink)
            .then(|| rustix::fs::readlinkat(dir, name.as_str(), Vec::new()).ok())
            .flatten()
            .map(|c| c.to_string_lossy().into_owned());
        let full = format!("{prefix}{name}");
        out.push(entry(full.clone(), &st, target));
        if recursive && t == FileType::Directory {
            let sub = rustix::fs::openat2(
                dir,
                name.as_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                BENEATH.union(ResolveFlags::NO_SYMLINKS),
            );
            if let Ok(sub) = sub {
                if list(&sub, &format!("{full}/"), true, out, path)? {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}

/// Removes everything in the directory `name` of `parent`.
fn empty_dir(parent: BorrowedFd<'_>, name: &str, path: &str) -> Result<(), FileError> {
    let dir = rustix::fs::openat2(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        BENEATH.union(ResolveFlags::NO_SYMLINKS),
    )
    .map_err(|e| fail(path, e.into()))?;
    let names: Vec<String> = Dir::read_from(&dir)
        .map_err(|e| fail(path, e.into()))?
        .filter_map(|e| e.ok().as_ref().and_then(name_of))
        .collect();
    for n in names {
        let st = match rustix::fs::statat(&dir, n.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(_) => continue,
        };
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            empty_dir(dir.as_fd(), &n, path)?;
            rustix::fs::unlinkat(&dir, n.as_str(), AtFlags::REMOVEDIR)
                .map_err(|e| fail(path, e.into()))?;
        } else {
            rustix::fs::unlinkat(&dir, n.as_str(), AtFlags::empty())
                .map_err(|e| fail(path, e.into()))?;
        }
    }
    Ok(())
}

/// Appends `dir` (as `prefix`) to the archive, within `budget` bytes.
fn pack<W: Write>(
    tar: &mut tar::Builder<W>,
    dir: &OwnedFd,
    prefix: &str,
    path: &str,
    budget: &mut u64,
) -> Result<(), FileError> {
    let mut names: Vec<String> = Dir::read_from(dir)
        .map_err(|e| fail(path, e.into()))?
        .filter_map(|e| e.ok().as_ref().and_then(name_of))
        .collect();
    names.sort();
    let io = |e: io::Error| FileError::Io(format!("writing the archive: {e}"));
    for name in names {
        let Ok(st) = rustix::fs::statat(dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        let rel = format!("{prefix}{name}");
        let mut h = tar::Header::new_gnu();
        h.set_mode(st.st_mode & 0o7777);
        h.set_mtime(st.st_mtime.max(0) as u64);
        h.set_uid(1000);
        h.set_gid(1000);
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                tar.append_data(&mut h, format!("{rel}/"), io::empty())
                    .map_err(io)?;
                let sub = rustix::fs::openat2(
                    dir,
                    name.as_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                    BENEATH.union(ResolveFlags::NO_SYMLINKS),
                )
                .map_err(|e| fail(path, e.into()))?;
                pack(tar, &sub, &format!("{rel}/"), path, budget)?;
            }
            FileType::RegularFile => {
                let f = rustix::fs::openat2(
                    dir,
                    name.as_str(),
                    OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK,
                    Mode::empty(),
                    BENEATH,
                )
                .map_err(|e| fail(path, e.into()))?;
                // The file as opened (it may have been swapped meanwhile).
                let st = rustix::fs::fstat(&f).map_err(|e| fail(path, e.into()))?;
                if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                    continue;
                }
                let size = st.st_size as u64;
                if size > *budget {
                    return Err(FileError::TooLarge(format!(
                        "{path} holds more than the archive limit allows"
                    )));
                }
                *budget -= size;
                h.set_mode(st.st_mode & 0o7777);
                h.set_mtime(st.st_mtime.max(0) as u64);
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(size);
                // Exactly `size` bytes, as the header says, even if the file
                // shrinks while it is read (zeros make up the rest, as GNU
                // tar does): a short entry would corrupt all that follows.
                let data = std::fs::File::from(f)
                    .take(size)
                    .chain(io::repeat(0))
                    .take(size);
                tar.append_data(&mut h, &rel, data).map_err(io)?;
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(dir, name.as_str(), Vec::new())
                    .map_err(|e| fail(path, e.into()))?;
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                let target = target.as_bytes();
                if target.len() < 100 {
                    // As it is: `set_link_name` would rewrite it (`/` as `//`).
                    h.set_link_name_literal(target).map_err(io)?;
                    tar.append_data(&mut h, &rel, io::empty()).map_err(io)?;
                } else {
                    tar.append_link(&mut h, &rel, String::from_utf8_lossy(target).as_ref())
                        .map_err(io)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// An atomic write under way: the new file beside the target, renamed over
/// it by `commit`, removed if dropped before.
pub struct Pending {
    files: Arc<ContainerFiles>,
    dir: OwnedFd,
    temp: String,
    name: String,
    mode: u32,
    path: String,
    file: Option<std::fs::File>,
    done: bool,
    existed: bool,
}

impl Pending {
    /// Whether the write replaces a file that was there.
    pub fn existed(&self) -> bool {
        self.existed
    }

    /// The new file, to fill (any thread: its permissions were checked when
    /// it was made).
    pub fn file(&mut self) -> std::fs::File {
        self.file.take().expect("the file is taken once")
    }

    /// Makes the write durable and puts the file in place.
    pub fn commit(mut self, file: std::fs::File) -> Result<(), FileError> {
        let path = self.path.clone();
        let files = Arc::clone(&self.files);
        files.as_user(|| {
            rustix::fs::fchmod(&file, Mode::from_raw_mode(self.mode))
                .map_err(|e| fail(&path, e.into()))?;
            file.sync_all().map_err(|e| fail(&path, e))?;
            rustix::fs::renameat(&self.dir, self.temp.as_str(), &self.dir, self.name.as_str())
                .map_err(|e| fail(&path, e.into()))?;
            self.done = true;
            Ok(())
        })
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.done {
            let _ = rustix::fs::unlinkat(&self.dir, self.temp.as_str(), AtFlags::empty());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked_before_anything_is_touched() {
        assert_eq!(locate("/workspace").unwrap(), ("/workspace", String::new()));
        assert_eq!(
            locate("/workspace//a/./b/").unwrap(),
            ("/workspace", "a/b".into())
        );
        assert_eq!(
            locate("/home/studio/.bashrc").unwrap(),
            ("/home/studio", ".bashrc".into())
        );
        assert_eq!(locate("/tmp/x").unwrap(), ("/tmp", "x".into()));
        for bad in [
            "workspace/a",
            "/etc/passwd",
            "/workspacex/a",
            "/workspace/../etc/passwd",
            "/tmp/a/../../etc",
            "/",
            "",
            "/proc/1/root",
            "/tmp/a\0b",
        ] {
            assert!(matches!(locate(bad), Err(FileError::Invalid(_))), "{bad:?}");
        }
    }

    #[test]
    fn temporary_names_fit_whatever_the_target() {
        for name in ["a", &"n".repeat(255), &"é".repeat(127)] {
            let t = temp_name(name, true);
            assert!(t.len() <= 255, "{}", t.len());
            let (kept, new) = target_of_temp(&t).unwrap();
            assert!(new && temp_is_for(kept, name), "{name}");
        }
        assert!(!temp_is_for("ab", "abc"));
    }

    #[test]
    fn ids_map_through_a_user_namespace() {
        assert_eq!(
            map_id("         0          0 4294967295\n", 1000),
            Some(1000)
        );
        assert_eq!(map_id("0 100000 65536\n", 1000), Some(101000));
        assert_eq!(map_id("0 100000 500\n", 1000), None);
    }
}
