//! A session's files, for both doors: every operation checks the caller
//! owns the session, reaches the container's files as the session user
//! (see `runtime::files`) and runs on a blocking thread.

use std::sync::Arc;

use crate::app::App;
use crate::auth::Owner;
use crate::error::ApiError;
use crate::runtime::files::{ContainerFiles, FileError, Pending, Stat};
use crate::runtime::RuntimeError;
use crate::session::Session;

impl From<FileError> for ApiError {
    fn from(e: FileError) -> ApiError {
        match e {
            FileError::Invalid(m) => ApiError::Validation(m),
            FileError::NotFound(m) => ApiError::FileNotFound(m),
            FileError::Refused(m) => ApiError::Conflict(m),
            FileError::Denied(m) => ApiError::Forbidden(m),
            FileError::TooLarge(m) => ApiError::MessageTooLarge(m),
            FileError::NotRunning(m) => ApiError::ContainerNotFound(m),
            FileError::Io(m) => ApiError::DockerDaemon(format!("The session's files failed: {m}")),
        }
    }
}

/// The caller's session and its files; a stopped container is started again.
pub async fn open(
    app: &App,
    owner: &Owner,
    session_id: &str,
) -> Result<(Arc<Session>, Arc<ContainerFiles>), ApiError> {
    let session = app.sessions.get(session_id, owner)?;
    let files = match app.runtime.files(&session.container_id).await {
        Err(RuntimeError::NotRunning(_)) => {
            app.runtime
                .start_container(&session.container_id)
                .await
                .map_err(ApiError::engine)?;
            session.terminal.restarted().await;
            app.runtime.files(&session.container_id).await
        }
        other => other,
    }
    .map_err(ApiError::engine)?;
    Ok((session, files))
}

/// Runs `f` with the session's files on a blocking thread.
pub async fn blocking<T: Send + 'static>(
    files: Arc<ContainerFiles>,
    f: impl FnOnce(&ContainerFiles) -> Result<T, FileError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(move || f(&files))
        .await
        .map_err(|e| ApiError::DockerDaemon(format!("The session's files failed: {e}")))?
        .map_err(ApiError::from)
}

/// A file's stat, or a directory's with its entries.
pub async fn stat(
    app: &App,
    owner: &Owner,
    session_id: &str,
    path: String,
    recursive: bool,
) -> Result<Stat, ApiError> {
    let (_, files) = open(app, owner, session_id).await?;
    blocking(files, move |f| f.stat(&path, recursive)).await
}

/// Opens a file to read: the file and its size.
pub async fn read(
    app: &App,
    owner: &Owner,
    session_id: &str,
    path: String,
) -> Result<(std::fs::File, u64), ApiError> {
    let (_, files) = open(app, owner, session_id).await?;
    blocking(files, move |f| f.open_read(&path)).await
}

/// Starts an atomic write (see [`Pending`]).
pub async fn start_write(
    app: &App,
    owner: &Owner,
    session_id: &str,
    path: String,
    parents: bool,
) -> Result<Pending, ApiError> {
    let (_, files) = open(app, owner, session_id).await?;
    let f = Arc::clone(&files);
    blocking(files, move |_| f.start_write(&path, parents)).await
}

/// Puts a write's file in place.
pub async fn commit(pending: Pending, file: std::fs::File) -> Result<(), ApiError> {
    tokio::task::spawn_blocking(move || pending.commit(file))
        .await
        .map_err(|e| ApiError::DockerDaemon(format!("The session's files failed: {e}")))?
        .map_err(ApiError::from)
}

pub async fn remove(
    app: &App,
    owner: &Owner,
    session_id: &str,
    path: String,
    recursive: bool,
) -> Result<(), ApiError> {
    let (_, files) = open(app, owner, session_id).await?;
    blocking(files, move |f| f.remove(&path, recursive)).await
}

/// `true` when the directory was made (not there before).
pub async fn mkdir(
    app: &App,
    owner: &Owner,
    session_id: &str,
    path: String,
    parents: bool,
) -> Result<bool, ApiError> {
    let (_, files) = open(app, owner, session_id).await?;
    blocking(files, move |f| f.mkdir(&path, parents)).await
}

pub async fn rename(
    app: &App,
    owner: &Owner,
    session_id: &str,
    from: String,
    to: String,
) -> Result<(), ApiError> {
    let (_, files) = open(app, owner, session_id).await?;
    blocking(files, move |f| f.rename(&from, &to)).await
}
