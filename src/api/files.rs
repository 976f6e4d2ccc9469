//! `/api/containers/:sessionId/files`: a session's files over REST.

use std::io::{Read, Write};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::body;
use crate::app::App;
use crate::auth::Owner;
use crate::error::ApiError;
use crate::ops;
use crate::runtime::files::{Stat, MAX_LIST};

/// Pieces of a streamed file or archive in flight at once.
const STREAM_QUEUE: usize = 16;
const CHUNK: usize = 64 * 1024;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PathQuery {
    path: String,
    #[serde(default)]
    recursive: bool,
    #[serde(default)]
    parents: bool,
}

fn path_query(req: &Request) -> Result<PathQuery, ApiError> {
    if req
        .uri()
        .query()
        .is_none_or(|q| !q.split('&').any(|p| p.starts_with("path=")))
    {
        return Err(ApiError::validation(
            "Query parameter 'path' is required: an absolute path in the session (under /workspace, /home/studio or /tmp)",
        ));
    }
    body::query(req.uri())
}

/// `GET …/files?path=P[&recursive=true]`: a file's stat, or a directory's
/// with its entries (recursive: all below it, at most [`MAX_LIST`]).
pub async fn info(
    app: &App,
    owner: &Owner,
    session_id: &str,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let q = path_query(&req)?;
    let shown = q.path.clone();
    match ops::files::stat(app, owner, session_id, q.path, q.recursive).await? {
        Stat::File(e) => {
            let mut v = serde_json::to_value(e).unwrap_or_default();
            v["path"] = Value::from(shown);
            Ok(Json(v))
        }
        Stat::Directory {
            entry,
            entries,
            truncated,
        } => {
            let mut v = serde_json::to_value(entry).unwrap_or_default();
            v["path"] = Value::from(shown);
            v["entries"] = serde_json::to_value(entries).unwrap_or_default();
            v["truncated"] = Value::from(truncated);
            if truncated {
                v["limit"] = Value::from(MAX_LIST);
            }
            Ok(Json(v))
        }
    }
}

/// A single byte range of a file of `size` bytes: `bytes=A-B`, `bytes=A-`,
/// `bytes=-N`. `Ok(None)` when there is no `Range` (or one this does not
/// serve, like several ranges: then the whole file is sent, as HTTP allows).
fn range(headers: &HeaderMap, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
    else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = match (a.parse::<u64>().ok(), b.parse::<u64>().ok()) {
        (Some(s), Some(e)) if s <= e => (s, e.min(size.saturating_sub(1))),
        (Some(s), None) if b.is_empty() => (s, size.saturating_sub(1)),
        (None, Some(n)) if a.is_empty() && n > 0 => {
            (size.saturating_sub(n), size.saturating_sub(1))
        }
        _ => return Err(()),
    };
    if start >= size {
        return Err(());
    }
    Ok(Some((start, end)))
}

/// `GET …/files/content?path=P`: the file's bytes (`Range` honoured).
pub async fn read(
    app: &App,
    owner: &Owner,
    session_id: &str,
    req: Request,
) -> Result<Response, ApiError> {
    let q = path_query(&req)?;
    let (file, size) = ops::files::read(app, owner, session_id, q.path).await?;
    let (status, start, len) = match range(req.headers(), size) {
        Ok(None) => (StatusCode::OK, 0, size),
        Ok(Some((s, e))) => (StatusCode::PARTIAL_CONTENT, s, e - s + 1),
        Err(()) => {
            let mut resp = ApiError::RangeNotSatisfiable(format!(
                "Range not satisfiable for a file of {size} bytes"
            ))
            .into_response();
            resp.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{size}")).expect("ascii"),
            );
            return Ok(resp);
        }
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if status == StatusCode::PARTIAL_CONTENT {
        headers.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes {start}-{}/{size}", start + len - 1))
                .expect("ascii"),
        );
    }
    if req.method() == Method::HEAD {
        return Ok((status, headers).into_response());
    }
    let mut file = tokio::fs::File::from_std(file);
    if start > 0 {
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(|e| ApiError::DockerDaemon(format!("The session's files failed: {e}")))?;
    }
    // Exactly the length announced, even if the file grows meanwhile.
    let stream = tokio_util::io::ReaderStream::with_capacity(file.take(len), CHUNK);
    Ok((status, headers, Body::from_stream(stream)).into_response())
}

/// An error answered to a request whose body may not have been read (all of
/// it): the connection closes after it. Kept open, the client would send
/// its next request on a connection the server is about to drop, as it
/// cannot read a request after the unread rest of this one's body.
fn closing(e: ApiError) -> Response {
    let mut resp = e.into_response();
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// `PUT …/files/content?path=P[&parents=true]`: writes the file from the
/// body, atomically (it appears whole or not at all).
pub async fn write(
    app: &App,
    owner: &Owner,
    session_id: &str,
    req: Request,
) -> Result<Response, ApiError> {
    Ok(write_body(app, owner, session_id, req)
        .await
        .unwrap_or_else(closing))
}

async fn write_body(
    app: &App,
    owner: &Owner,
    session_id: &str,
    req: Request,
) -> Result<Response, ApiError> {
    let q = path_query(&req)?;
    let limit = app.settings.max_file_size;
    let too_large = || {
        ApiError::MessageTooLarge(format!(
            "The file exceeds the limit of {limit} bytes (--max-file-size)"
        ))
    };
    if let Some(n) = declared_length(req.headers()).filter(|n| *n > limit) {
        if n <= body::DRAIN_BYTES {
            body::drain(req.into_body()).await;
        }
        return Err(too_large());
    }
    let shown = q.path.clone();
    let mut pending = ops::files::start_write(app, owner, session_id, q.path, q.parents).await?;
    let existed = pending.existed();
    let mut file = tokio::fs::File::from_std(pending.file());
    let mut body = req.into_body();
    let mut written: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::validation(format!("The request body could not be read: {e}"))
        })?;
        if let Ok(data) = frame.into_data() {
            written += data.len() as u64;
            if written > limit {
                body::drain(body).await;
                return Err(too_large());
            }
            file.write_all(&data)
                .await
                .map_err(|e| ApiError::from(crate::runtime::files::FileError::Io(e.to_string())))?;
        }
    }
    file.flush()
        .await
        .map_err(|e| ApiError::DockerDaemon(e.to_string()))?;
    ops::files::commit(pending, file.into_std().await).await?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(json!({ "path": shown, "size": written }))).into_response())
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// `DELETE …/files?path=P[&recursive=true]`.
pub async fn remove(
    app: &App,
    owner: &Owner,
    session_id: &str,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let q = path_query(&req)?;
    let shown = q.path.clone();
    ops::files::remove(app, owner, session_id, q.path, q.recursive).await?;
    Ok(Json(json!({ "path": shown, "removed": true })))
}

/// `POST …/files/mkdir?path=P[&parents=true]`.
pub async fn mkdir(
    app: &App,
    owner: &Owner,
    session_id: &str,
    req: Request,
) -> Result<Response, ApiError> {
    let q = path_query(&req)?;
    let shown = q.path.clone();
    let made = ops::files::mkdir(app, owner, session_id, q.path, q.parents).await?;
    let status = if made {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!({ "path": shown, "created": made }))).into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Move {
    from: String,
    to: String,
}

/// `POST …/files/move` with `{"from", "to"}`.
pub async fn rename(
    app: &App,
    owner: &Owner,
    session_id: &str,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    app.sessions.get(session_id, owner)?;
    let m: Move = body::json(req).await?;
    ops::files::rename(app, owner, session_id, m.from.clone(), m.to.clone()).await?;
    Ok(Json(json!({ "from": m.from, "to": m.to })))
}

/// Bytes written on a blocking thread, read as a body.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, crate::runtime::files::FileError>>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client left"))
    }
}

/// `GET …/files/archive?path=P`: the directory as a tar archive, streamed.
pub async fn download(
    app: &App,
    owner: &Owner,
    session_id: &str,
    req: Request,
) -> Result<Response, ApiError> {
    let q = path_query(&req)?;
    let (_, files) = ops::files::open(app, owner, session_id).await?;
    // What can fail before a byte is sent fails as a proper error.
    let path = q.path.clone();
    let check =
        ops::files::blocking(std::sync::Arc::clone(&files), move |f| f.stat(&path, false)).await?;
    if matches!(check, Stat::File(_)) {
        return Err(ApiError::Conflict(format!(
            "{} is a file: read it with /files/content; an archive is of a directory",
            q.path
        )));
    }
    let limit = app.settings.max_file_size;
    let (tx, mut rx) = tokio::sync::mpsc::channel(STREAM_QUEUE);
    let path = q.path.clone();
    tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let done = files.archive(&path, &mut w, limit).and_then(|()| {
            w.flush()
                .map_err(|e| crate::runtime::files::FileError::Io(e.to_string()))
        });
        if let Err(e) = done {
            // Cut the body short: the client sees a failed download, never
            // a tar that looks whole.
            let _ = tx.blocking_send(Err(e));
        }
    });
    // The first piece (up to CHUNK bytes) before answering: what fails
    // by then (the directory swapped for a symlink out since the check
    // above, an archive over the limit early on) is answered as the error
    // it is, not as a connection dropped before any answer.
    let first = match rx.recv().await {
        Some(Err(e)) => return Err(ApiError::from(e)),
        first => first,
    };
    let stream = futures_util::stream::iter(first)
        .chain(cut_after_flush(rx))
        .map(|piece| piece.map_err(|e| std::io::Error::other(e.to_string())));
    let name = q
        .path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|n| {
            !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        })
        .unwrap_or("archive")
        .to_string();
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.tar\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok((headers, Body::from_stream(stream)).into_response())
}

/// The pieces from `rx`, where an error (which makes the server drop the
/// connection) comes one poll late: the body answers "not yet" first, and
/// the connection writes out what it holds (the status line and headers
/// among it) before it is cut. Without that, an error that is already
/// queued behind the first piece drops the head unsent, and the client
/// sees a connection closed without any answer instead of a `200` whose
/// download stops short.
fn cut_after_flush<T, E>(
    mut rx: tokio::sync::mpsc::Receiver<Result<T, E>>,
) -> impl futures_util::Stream<Item = Result<T, E>> {
    let mut held: Option<E> = None;
    futures_util::stream::poll_fn(move |cx| {
        if let Some(e) = held.take() {
            return std::task::Poll::Ready(Some(Err(e)));
        }
        match rx.poll_recv(cx) {
            std::task::Poll::Ready(Some(Err(e))) => {
                held = Some(e);
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
            other => other,
        }
    })
}

/// A body read on a blocking thread.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, String>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

/// `PUT …/files/archive?path=P`: unpacks the tar in the body into the
/// directory (made if missing).
pub async fn upload(
    app: &App,
    owner: &Owner,
    session_id: &str,
    req: Request,
) -> Result<Response, ApiError> {
    Ok(match unpack_body(app, owner, session_id, req).await {
        Ok(v) => v.into_response(),
        Err(e) => closing(e),
    })
}

async fn unpack_body(
    app: &App,
    owner: &Owner,
    session_id: &str,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let q = path_query(&req)?;
    let limit = app.settings.max_file_size;
    // The archive's own headers and padding on top of its files' bytes.
    let body_limit = limit + limit / 4 + (1 << 20);
    let too_large = || {
        ApiError::MessageTooLarge(format!(
            "The archive exceeds the limit of {limit} bytes of files (--max-file-size)"
        ))
    };
    if let Some(n) = declared_length(req.headers()).filter(|n| *n > body_limit) {
        if n <= body::DRAIN_BYTES {
            body::drain(req.into_body()).await;
        }
        return Err(too_large());
    }
    let (_, files) = ops::files::open(app, owner, session_id).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, String>>(STREAM_QUEUE);
    let path = q.path.clone();
    let unpacking = ops::files::blocking(files, move |f| {
        f.unpack(
            &path,
            ChannelReader {
                rx,
                current: Bytes::new(),
            },
            limit,
        )
    });
    let feeding = async move {
        let mut body = req.into_body();
        let mut read: u64 = 0;
        while let Some(frame) = body.frame().await {
            let data = match frame {
                Ok(f) => match f.into_data() {
                    Ok(d) => d,
                    Err(_) => continue,
                },
                Err(e) => {
                    let _ = tx
                        .send(Err(format!("the request body could not be read: {e}")))
                        .await;
                    return Err(ApiError::validation(format!(
                        "The request body could not be read: {e}"
                    )));
                }
            };
            read += data.len() as u64;
            if read > body_limit {
                let _ = tx.send(Err("too large".into())).await;
                return Err(too_large());
            }
            if tx.send(Ok(data)).await.is_err() {
                // The unpacking stopped (and says why).
                return Ok(());
            }
        }
        Ok(())
    };
    let (fed, unpacked) = tokio::join!(feeding, unpacking);
    fed?;
    let count = unpacked?;
    Ok(Json(json!({ "path": q.path, "entries": count })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(v: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::RANGE, HeaderValue::from_str(v).unwrap());
        m
    }

    #[test]
    fn ranges_are_read_as_http_says() {
        assert_eq!(range(&HeaderMap::new(), 10), Ok(None));
        assert_eq!(range(&h("bytes=0-3"), 10), Ok(Some((0, 3))));
        assert_eq!(range(&h("bytes=5-"), 10), Ok(Some((5, 9))));
        assert_eq!(range(&h("bytes=-4"), 10), Ok(Some((6, 9))));
        assert_eq!(range(&h("bytes=-40"), 10), Ok(Some((0, 9))));
        assert_eq!(range(&h("bytes=8-100"), 10), Ok(Some((8, 9))));
        assert_eq!(range(&h("bytes=0-1,4-5"), 10), Ok(None));
        assert_eq!(range(&h("bytes=10-"), 10), Err(()));
        assert_eq!(range(&h("bytes=5-2"), 10), Err(()));
        assert_eq!(range(&h("bytes=x-2"), 10), Err(()));
        assert_eq!(range(&h("bytes=0-0"), 0), Err(()));
    }

    #[tokio::test]
    async fn a_queued_error_comes_after_one_pending_poll() {
        use futures_util::StreamExt;
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<u8, &str>>(4);
        tx.send(Ok(1)).await.unwrap();
        tx.send(Err("over")).await.unwrap();
        let mut s = std::pin::pin!(cut_after_flush(rx));
        let waker = futures_util::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        assert_eq!(
            s.poll_next_unpin(&mut cx),
            std::task::Poll::Ready(Some(Ok(1)))
        );
        // The error is there, but the body says "not yet" once, so the
        // connection flushes what it holds before it is cut.
        assert_eq!(s.poll_next_unpin(&mut cx), std::task::Poll::Pending);
        assert_eq!(
            s.poll_next_unpin(&mut cx),
            std::task::Poll::Ready(Some(Err("over")))
        );
    }
}
