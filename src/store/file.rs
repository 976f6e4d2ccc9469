//! The embedded state store: `DIR/sessions/SESSIONID.json`, one file per
//! session. A write goes to a temporary file that is synced and renamed over
//! the old one, so a crash at any moment leaves the old record or the new
//! one. Writes are rare (create, preview port, remove) and small, so a file
//! each is simpler and safer than one shared file rewritten whole.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;

use super::{SessionRecord, SessionStore, StoreError};

#[derive(Clone)]
pub struct FileStore {
    dir: Arc<PathBuf>,
}

fn io(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError(format!("{what} {}: {e}", path.display()))
}

impl FileStore {
    /// Opens (creating it if needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<FileStore, StoreError> {
        let dir = dir.join("sessions");
        std::fs::create_dir_all(&dir).map_err(|e| io("cannot create", &dir, e))?;
        Ok(FileStore { dir: Arc::new(dir) })
    }

    fn path(&self, session_id: &str) -> Result<PathBuf, StoreError> {
        // Ids are ours, but a file name is no place to trust one blindly.
        let plain = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        if session_id.is_empty() || session_id.len() > 128 || !session_id.bytes().all(plain) {
            return Err(StoreError(format!("malformed session id {session_id:?}")));
        }
        Ok(self.dir.join(format!("{session_id}.json")))
    }

    fn write(&self, record: &SessionRecord) -> Result<(), StoreError> {
        let path = self.path(&record.session_id)?;
        let tmp = path.with_extension("json.tmp");
        let data = serde_json::to_vec(record).map_err(|e| StoreError(e.to_string()))?;
        let mut f = std::fs::File::create(&tmp).map_err(|e| io("cannot write", &tmp, e))?;
        f.write_all(&data)
            .and_then(|()| f.sync_data())
            .map_err(|e| io("cannot write", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io("cannot rename", &tmp, e))?;
        sync_dir(&self.dir);
        Ok(())
    }

    fn delete(&self, session_id: &str) -> Result<(), StoreError> {
        let path = self.path(session_id)?;
        match std::fs::remove_file(&path) {
            Ok(()) => {
                sync_dir(&self.dir);
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("cannot remove", &path, e)),
        }
    }

    fn read_all(&self) -> Result<Vec<SessionRecord>, StoreError> {
        let entries = std::fs::read_dir(&*self.dir).map_err(|e| io("cannot list", &self.dir, e))?;
        let mut records = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                // A temporary file left by a crash mid-write: the record it
                // was replacing is still there.
                if path.extension().and_then(|e| e.to_str()) == Some("tmp") {
                    let _ = std::fs::remove_file(&path);
                }
                continue;
            }
            let parsed = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<SessionRecord>(&b).ok());
            match parsed {
                Some(r) if path.file_stem().and_then(|s| s.to_str()) == Some(&r.session_id) => {
                    records.push(r)
                }
                _ => {
                    tracing::warn!(path = %path.display(), "ignoring an unreadable session record")
                }
            }
        }
        Ok(records)
    }
}

/// Makes a rename or removal in `dir` durable.
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[async_trait]
impl SessionStore for FileStore {
    async fn put(&self, record: &SessionRecord) -> Result<(), StoreError> {
        let record = record.clone();
        let store = self.clone();
        blocking(move || store.write(&record)).await
    }

    async fn remove(&self, session_id: &str) -> Result<(), StoreError> {
        let id = session_id.to_string();
        let store = self.clone();
        blocking(move || store.delete(&id)).await
    }

    async fn list(&self) -> Result<Vec<SessionRecord>, StoreError> {
        let store = self.clone();
        blocking(move || store.read_all()).await
    }
}

/// File I/O with an fsync off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError(format!("store task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, port: Option<u16>) -> SessionRecord {
        SessionRecord {
            session_id: id.into(),
            container_id: "c1".into(),
            owner: Some("ab12".into()),
            image: "img:1".into(),
            created: 1,
            preview_port: port,
            removing: false,
            engine: None,
        }
    }

    #[tokio::test]
    async fn records_round_trip_and_are_replaced_whole() {
        let dir = std::env::temp_dir().join(format!("studio-store-{}", std::process::id()));
        let store = FileStore::open(&dir).unwrap();
        let a = "session-AAAAAAAAAAAAAAAAAAAAAA";
        let b = "session-BBBBBBBBBBBBBBBBBBBBBB";
        store.put(&record(a, None)).await.unwrap();
        store.put(&record(b, Some(3000))).await.unwrap();
        store.put(&record(a, Some(5173))).await.unwrap();
        // A crash mid-write leaves a temporary file; the record stays.
        std::fs::write(dir.join("sessions").join(format!("{b}.json.tmp")), b"{").unwrap();
        let mut all = FileStore::open(&dir).unwrap().list().await.unwrap();
        all.sort_by(|x, y| x.session_id.cmp(&y.session_id));
        assert_eq!(all, vec![record(a, Some(5173)), record(b, Some(3000))]);
        store.remove(a).await.unwrap();
        store.remove(a).await.unwrap();
        assert_eq!(store.list().await.unwrap(), vec![record(b, Some(3000))]);
        assert!(store.put(&record("../../etc/passwd", None)).await.is_err());
        std::fs::remove_dir_all(dir).ok();
    }
}
