//! `claude-studio cp SRC DST`: files and directories between this machine
//! and a session, one side written `SESSION:/path` (as `docker cp` does).
//! A file goes through the files API's content route, a directory as a tar
//! archive. Copying into an existing directory puts the source inside it
//! under its own name; otherwise the destination is the copy (its missing
//! parent directories are made in a session).

use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};

use super::api::{Api, CliError, Result};

/// `SESSION:/path`: the session and the path; `None` for a local path.
fn remote(arg: &str) -> Option<(&str, &str)> {
    let (sid, path) = arg.split_once(':')?;
    (!sid.is_empty() && !sid.contains('/') && path.starts_with('/')).then_some((sid, path))
}

fn io(what: &str, e: std::io::Error) -> CliError {
    CliError::new("IoError", format!("{what}: {e}"))
}

fn q(path: &str) -> String {
    percent_encoding::utf8_percent_encode(path, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn base_name(path: &str) -> &str {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(path)
}

pub async fn run(api: &Api, src: &str, dst: &str, json: bool) -> Result<()> {
    match (remote(src), remote(dst)) {
        (None, Some((sid, path))) => upload(api, Path::new(src), sid, path, json).await,
        (Some((sid, path)), None) => download(api, sid, path, Path::new(dst), json).await,
        (Some(_), Some(_)) => Err(CliError::new(
            "UsageError",
            "copy between two sessions is not supported: copy to this machine first",
        )),
        (None, None) => Err(CliError::new(
            "UsageError",
            "one side must be SESSION:/path (an absolute path in the session)",
        )),
    }
}

/// What the session has at `path`: `Some(is_dir)`, `None` when nothing.
async fn remote_kind(api: &Api, sid: &str, path: &str) -> Result<Option<bool>> {
    let resp = api
        .send(api.request(
            Method::GET,
            &format!("/api/containers/{sid}/files?path={}", q(path)),
        ))
        .await;
    match resp {
        Ok(r) => {
            let v: Value = r.json().await.unwrap_or_default();
            Ok(Some(v["type"] == "directory"))
        }
        Err(e) if e.name == "FileNotFoundError" => Ok(None),
        Err(e) => Err(e),
    }
}

async fn upload(api: &Api, src: &Path, sid: &str, path: &str, json: bool) -> Result<()> {
    let meta = std::fs::metadata(src).map_err(|e| io(&src.display().to_string(), e))?;
    let name = src
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "copy".into());
    let into_dir = remote_kind(api, sid, path).await? == Some(true);
    let target = if into_dir {
        format!("{}/{name}", path.trim_end_matches('/'))
    } else {
        path.to_string()
    };
    if meta.is_dir() {
        // The directory's contents as a tar, unpacked at the target.
        let src = src.to_path_buf();
        let tar = tokio::task::spawn_blocking(move || {
            let mut b = tar::Builder::new(Vec::new());
            b.follow_symlinks(false);
            b.append_dir_all(".", &src)?;
            b.into_inner()
        })
        .await
        .map_err(|e| CliError::new("IoError", e.to_string()))?
        .map_err(|e| io("packing the directory", e))?;
        let v = api
            .json(
                api.request(
                    Method::PUT,
                    &format!("/api/containers/{sid}/files/archive?path={}", q(&target)),
                )
                .header("content-type", "application/x-tar")
                .body(tar),
            )
            .await?;
        report(
            json,
            &v,
            &format!("{} → {sid}:{target}", src_display(&meta, &name)),
        );
    } else {
        let file = tokio::fs::File::open(src)
            .await
            .map_err(|e| io(&src.display().to_string(), e))?;
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
        let v = api
            .json(
                api.request(
                    Method::PUT,
                    &format!(
                        "/api/containers/{sid}/files/content?path={}&parents=true",
                        q(&target)
                    ),
                )
                .header("content-type", "application/octet-stream")
                .header("content-length", meta.len())
                .body(body),
            )
            .await?;
        report(
            json,
            &v,
            &format!("{name} → {sid}:{target} ({} bytes)", meta.len()),
        );
    }
    Ok(())
}

fn src_display(_meta: &std::fs::Metadata, name: &str) -> String {
    format!("{name}/")
}

fn report(json: bool, v: &Value, human: &str) {
    if json {
        println!("{v}");
    } else {
        println!("{human}");
    }
}

async fn download(api: &Api, sid: &str, path: &str, dst: &Path, json: bool) -> Result<()> {
    let is_dir = remote_kind(api, sid, path).await?.ok_or_else(|| {
        CliError::new(
            "FileNotFoundError",
            format!("No such file or directory: {sid}:{path}"),
        )
    })?;
    let name = base_name(path).to_string();
    let target: PathBuf = if dst.is_dir() {
        dst.join(&name)
    } else {
        dst.to_path_buf()
    };
    if is_dir {
        let resp = api
            .send(api.request(
                Method::GET,
                &format!("/api/containers/{sid}/files/archive?path={}", q(path)),
            ))
            .await?;
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| CliError::new("ConnectionError", format!("the archive broke off: {e}")))?;
        let t = target.clone();
        let entries = tokio::task::spawn_blocking(move || -> std::io::Result<usize> {
            std::fs::create_dir_all(&t)?;
            let mut a = tar::Archive::new(std::io::Cursor::new(bytes));
            a.set_preserve_permissions(true);
            let mut n = 0;
            for e in a.entries()? {
                let mut e = e?;
                // Entries are checked by `unpack_in`: nothing lands outside.
                e.unpack_in(&t)?;
                n += 1;
            }
            Ok(n)
        })
        .await
        .map_err(|e| CliError::new("IoError", e.to_string()))?
        .map_err(|e| io("unpacking", e))?;
        report(
            json,
            &json!({"path": target, "entries": entries}),
            &format!("{sid}:{path} → {} ({entries} entries)", target.display()),
        );
    } else {
        let resp = api
            .send(api.request(
                Method::GET,
                &format!("/api/containers/{sid}/files/content?path={}", q(path)),
            ))
            .await?;
        // Written beside the target, then renamed over it.
        let temp = target.with_file_name(format!(
            ".{}.claude-studio-{:08x}",
            target
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            rand::random::<u32>()
        ));
        let mut out = tokio::fs::File::create(&temp)
            .await
            .map_err(|e| io(&temp.display().to_string(), e))?;
        let mut stream = resp.bytes_stream();
        let mut size = 0u64;
        let written: Result<()> = async {
            use tokio::io::AsyncWriteExt;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| {
                    CliError::new("ConnectionError", format!("the file broke off: {e}"))
                })?;
                size += chunk.len() as u64;
                out.write_all(&chunk).await.map_err(|e| io("writing", e))?;
            }
            out.flush().await.map_err(|e| io("writing", e))
        }
        .await;
        if let Err(e) = written {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(e);
        }
        tokio::fs::rename(&temp, &target)
            .await
            .map_err(|e| io(&target.display().to_string(), e))?;
        report(
            json,
            &json!({"path": target, "size": size}),
            &format!("{sid}:{path} → {} ({size} bytes)", target.display()),
        );
    }
    Ok(())
}
