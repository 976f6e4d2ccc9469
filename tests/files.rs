//! The files API (`/api/containers/:sessionId/files…`) and file watches,
//! over real HTTP and WebSocket against the real engine: what a client
//! sends and gets back, byte for byte, and that no path, symlink or race
//! ever reaches outside the session's places.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::time::Duration;

use common::*;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use rand::RngCore;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const A: &str = "token-files-alpha-0123456789";
const B: &str = "token-files-bravo-9876543210";

/// A server whose rate limits stay out of the way of many quick requests.
fn server() -> ServerBuilder {
    Server::builder().args([
        "--rate-limit-general",
        "off",
        "--rate-limit-container",
        "off",
        "--rate-limit-ws",
        "off",
    ])
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    bytes: Vec<u8>,
    /// The body arrived whole (a streamed one may be cut short).
    complete: bool,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A documented error: its status and name, in the error body.
    #[track_caller]
    fn error(&self, status: u16, name: &str) {
        let body = self.json();
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(body["error"], name, "{}", self.text());
        assert_eq!(body["statusCode"], status, "{}", self.text());
        assert!(body["retryable"].is_boolean(), "{}", self.text());
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}",
            self.text()
        );
    }

    #[track_caller]
    fn ok(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}", self.text());
        assert!(self.complete, "the body was cut short");
        self.json()
    }
}

/// One session's files, as a client with (or without) a token sees them.
struct Files<'a> {
    server: &'a Server,
    sid: String,
    token: Option<&'a str>,
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

impl<'a> Files<'a> {
    fn new(server: &'a Server, sid: &str) -> Files<'a> {
        Files {
            server,
            sid: sid.to_string(),
            token: None,
        }
    }

    fn as_token(&self, token: &'a str) -> Files<'a> {
        Files {
            server: self.server,
            sid: self.sid.clone(),
            token: Some(token),
        }
    }

    fn url(&self, route: &str, path: Option<&str>, flags: &[&str]) -> String {
        let mut u = self
            .server
            .url(&format!("/api/containers/{}/{route}", self.sid));
        let mut q: Vec<String> = Vec::new();
        if let Some(p) = path {
            q.push(format!("path={}", enc(p)));
        }
        q.extend(flags.iter().map(|f| format!("{f}=true")));
        if !q.is_empty() {
            u.push('?');
            u.push_str(&q.join("&"));
        }
        u
    }

    async fn send(
        &self,
        method: &str,
        url: String,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.server.http.request(method, url);
        if let Some(t) = self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let (bytes, complete) = match r.bytes().await {
            Ok(b) => (b.to_vec(), true),
            Err(_) => (Vec::new(), false),
        };
        Reply {
            status,
            headers,
            bytes,
            complete,
        }
    }

    async fn read(&self, path: &str) -> Reply {
        self.send("GET", self.url("files/content", Some(path), &[]), &[], None)
            .await
    }

    async fn read_range(&self, path: &str, range: &str) -> Reply {
        self.send(
            "GET",
            self.url("files/content", Some(path), &[]),
            &[("range", range)],
            None,
        )
        .await
    }

    async fn write(&self, path: &str, data: &[u8]) -> Reply {
        self.send(
            "PUT",
            self.url("files/content", Some(path), &[]),
            &[],
            Some(data.to_vec()),
        )
        .await
    }

    async fn write_parents(&self, path: &str, data: &[u8]) -> Reply {
        self.send(
            "PUT",
            self.url("files/content", Some(path), &["parents"]),
            &[],
            Some(data.to_vec()),
        )
        .await
    }

    async fn info(&self, path: &str) -> Reply {
        self.send("GET", self.url("files", Some(path), &[]), &[], None)
            .await
    }

    async fn info_recursive(&self, path: &str) -> Reply {
        self.send(
            "GET",
            self.url("files", Some(path), &["recursive"]),
            &[],
            None,
        )
        .await
    }

    async fn remove(&self, path: &str, recursive: bool) -> Reply {
        let flags: &[&str] = if recursive { &["recursive"] } else { &[] };
        self.send("DELETE", self.url("files", Some(path), flags), &[], None)
            .await
    }

    async fn mkdir(&self, path: &str, parents: bool) -> Reply {
        let flags: &[&str] = if parents { &["parents"] } else { &[] };
        self.send(
            "POST",
            self.url("files/mkdir", Some(path), flags),
            &[],
            None,
        )
        .await
    }

    async fn mv(&self, from: &str, to: &str) -> Reply {
        self.send(
            "POST",
            self.url("files/move", None, &[]),
            &[("content-type", "application/json")],
            Some(json!({"from": from, "to": to}).to_string().into_bytes()),
        )
        .await
    }

    async fn archive(&self, path: &str) -> Reply {
        self.send("GET", self.url("files/archive", Some(path), &[]), &[], None)
            .await
    }

    async fn unpack(&self, path: &str, tar: Vec<u8>) -> Reply {
        self.send(
            "PUT",
            self.url("files/archive", Some(path), &[]),
            &[("content-type", "application/x-tar")],
            Some(tar),
        )
        .await
    }

    /// Runs a command in the container (as uid 1000) and waits for it.
    async fn exec(&self, cmd: Value) -> Value {
        let r = self
            .send(
                "POST",
                self.url("exec", None, &[]),
                &[("content-type", "application/json")],
                Some(
                    json!({ "cmd": cmd, "timeout": 60 })
                        .to_string()
                        .into_bytes(),
                ),
            )
            .await;
        r.ok(200)
    }

    /// Runs a shell command that must succeed; returns its stdout.
    async fn sh(&self, cmd: &str) -> String {
        let out = self.exec(Value::from(cmd)).await;
        assert_eq!(out["exitCode"], 0, "{cmd}: {out}");
        out["stdout"].as_str().unwrap_or_default().to_string()
    }
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::rng().fill_bytes(&mut v);
    v
}

fn all_byte_values() -> Vec<u8> {
    (0..=255u8).collect()
}

/// Names of a listing's entries.
fn names(listing: &Value) -> BTreeSet<String> {
    listing["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("no entries in {listing}"))
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

fn entry<'v>(listing: &'v Value, name: &str) -> &'v Value {
    listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {listing}"))
}

/// `uid:gid mode` of a path in the container, as `stat` there says.
async fn owner_and_mode(f: &Files<'_>, path: &str) -> String {
    f.sh(&format!("stat -c '%u:%g %a' '{path}'"))
        .await
        .trim()
        .to_string()
}

// ---------------------------------------------------------------------------
// Reading and writing

#[tokio::test]
async fn content_round_trips_byte_for_byte_with_ranges_and_owner() {
    let server = server().start().await;
    let (sid, _) = server.create_rest().await;
    let f = Files::new(&server, &sid);

    // Every byte value, into a new file: 201, then read back exactly.
    let bytes = all_byte_values();
    let r = f.write("/workspace/all.bin", &bytes).await;
    assert_eq!(
        r.ok(201),
        json!({"path": "/workspace/all.bin", "size": 256})
    );
    let r = f.read("/workspace/all.bin").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.header("content-length"), Some("256"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(r.bytes, bytes);
    // The command line sees the very same bytes, owned by the session user.
    let out = f
        .exec(json!([
            "sh",
            "-c",
            "od -An -tx1 -v /workspace/all.bin | tr -d ' \\n'"
        ]))
        .await;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(out["stdout"], hex.as_str(), "{out}");
    assert_eq!(
        owner_and_mode(&f, "/workspace/all.bin").await,
        "1000:1000 644"
    );

    // A few MiB of random bytes: replaced (200), read back whole.
    let big = random_bytes(3 * 1024 * 1024 + 17);
    let r = f.write("/workspace/all.bin", &big).await;
    assert_eq!(r.ok(200)["size"], big.len() as u64);
    let r = f.read("/workspace/all.bin").await;
    assert_eq!(r.status, 200);
    assert!(r.bytes == big, "the big file came back different");
    let sum = f.sh("sha256sum /workspace/all.bin").await;
    assert!(sum.starts_with(&sha256_hex(&big)), "{sum}");

    // HEAD: the headers, no body.
    let r = f
        .send(
            "HEAD",
            f.url("files/content", Some("/workspace/all.bin"), &[]),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some(big.len().to_string().as_str())
    );
    assert!(r.bytes.is_empty());

    // Ranges.
    let size = big.len();
    for (range, start, end) in [
        ("bytes=0-9", 0, 9),
        ("bytes=1000-", 1000, size - 1),
        ("bytes=-5", size - 5, size - 1),
        ("bytes=100-99999999", 100, size - 1),
        (
            &*format!("bytes={}-{}", size - 1, size - 1),
            size - 1,
            size - 1,
        ),
    ] {
        let r = f.read_range("/workspace/all.bin", range).await;
        assert_eq!(r.status, 206, "{range}: {}", r.text());
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {start}-{end}/{size}").as_str()),
            "{range}"
        );
        assert!(r.bytes == big[start..=end], "{range}: wrong bytes");
    }
    for range in [
        format!("bytes={size}-"),
        "bytes=5-2".to_string(),
        "bytes=-0".into(),
    ] {
        let r = f.read_range("/workspace/all.bin", &range).await;
        r.error(416, "ValidationError");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes */{size}").as_str()),
            "{range}"
        );
    }
    // Several ranges are not served as such: the whole file, as HTTP allows.
    let r = f.read_range("/workspace/all.bin", "bytes=0-1,5-6").await;
    assert_eq!(r.status, 200);
    assert!(r.bytes == big);

    // An empty file.
    assert_eq!(f.write("/workspace/empty", b"").await.ok(201)["size"], 0);
    let r = f.read("/workspace/empty").await;
    assert_eq!((r.status, r.bytes.len()), (200, 0));
    f.read_range("/workspace/empty", "bytes=0-0")
        .await
        .error(416, "ValidationError");

    // A replaced file keeps its permission bits; it stays the user's.
    f.sh("chmod 600 /workspace/empty").await;
    f.write("/workspace/empty", b"now with text").await.ok(200);
    assert_eq!(
        owner_and_mode(&f, "/workspace/empty").await,
        "1000:1000 600"
    );

    // The home and /tmp are places too.
    for p in ["/home/studio/notes.txt", "/tmp/scratch.bin"] {
        f.write(p, &bytes).await.ok(201);
        assert_eq!(f.read(p).await.bytes, bytes);
        assert_eq!(owner_and_mode(&f, p).await, "1000:1000 644");
    }

    // Missing: the file, or its directory (unless parents=true).
    f.read("/workspace/nope.txt")
        .await
        .error(404, "FileNotFoundError");
    f.write("/workspace/no/such/dir/x", b"x")
        .await
        .error(404, "FileNotFoundError");
    // Refused before its (large) body was read: the connection is not
    // kept for the next request, which would find it dropped.
    for _ in 0..3 {
        let r = f.write("/workspace/no/such/dir/x", &big).await;
        r.error(404, "FileNotFoundError");
        assert_eq!(r.header("connection"), Some("close"));
        assert_eq!(f.read("/workspace/empty").await.status, 200);
        f.unpack("/etc", big.clone())
            .await
            .error(400, "ValidationError");
        assert_eq!(f.read("/workspace/empty").await.status, 200);
    }
    let r = f
        .write_parents("/workspace/made/on/the/way.txt", b"deep")
        .await;
    assert_eq!(r.ok(201)["size"], 4);
    assert_eq!(
        f.read("/workspace/made/on/the/way.txt").await.bytes,
        b"deep"
    );
    assert_eq!(
        owner_and_mode(&f, "/workspace/made/on").await,
        "1000:1000 755"
    );
    // A directory is not a file to read or replace; a place is not a file.
    f.read("/workspace/made")
        .await
        .error(409, "ValidationError");
    f.write("/workspace/made", b"x")
        .await
        .error(409, "ValidationError");
    f.write("/workspace", b"x")
        .await
        .error(400, "ValidationError");
    // Nothing but the files written is left behind (no temporary files).
    let ls = f.sh("ls -A /workspace").await;
    let got: BTreeSet<&str> = ls.split_whitespace().collect();
    assert_eq!(got, BTreeSet::from(["all.bin", "empty", "made"]), "{ls}");
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn a_fifo_is_refused_not_waited_on() {
    let server = server().start().await;
    let (sid, _) = server.create_rest().await;
    let f = Files::new(&server, &sid);
    f.sh("mkfifo /workspace/pipe && mkdir /workspace/d && mkfifo /workspace/d/p2 && echo hi > /workspace/d/f")
        .await;
    let r = tokio::time::timeout(Duration::from_secs(10), f.read("/workspace/pipe"))
        .await
        .expect("reading a fifo must not hang");
    r.error(409, "ValidationError");
    assert_eq!(f.info("/workspace/pipe").await.ok(200)["type"], "other");
    // A move of a fifo to another place is refused, not blocked on.
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        f.mv("/workspace/pipe", "/tmp/pipe"),
    )
    .await
    .expect("moving a fifo must not hang");
    r.error(409, "ValidationError");
    // An archive leaves it out.
    let r = tokio::time::timeout(Duration::from_secs(10), f.archive("/workspace/d"))
        .await
        .expect("packing a fifo must not hang");
    assert_eq!(r.status, 200);
    let got = untar(&r.bytes);
    assert_eq!(got.keys().collect::<Vec<_>>(), vec!["f"]);
}

#[tokio::test]
async fn listing_mkdir_remove_and_move() {
    let server = server().start().await;
    let (sid, _) = server.create_rest().await;
    let f = Files::new(&server, &sid);

    // mkdir: 201 made; 409 when there without parents; 200 with.
    let r = f.mkdir("/workspace/proj", false).await;
    assert_eq!(r.ok(201)["created"], true);
    f.mkdir("/workspace/proj", false)
        .await
        .error(409, "ValidationError");
    assert_eq!(
        f.mkdir("/workspace/proj", true).await.ok(200)["created"],
        false
    );
    f.mkdir("/workspace/a/b/c", false)
        .await
        .error(404, "FileNotFoundError");
    assert_eq!(
        f.mkdir("/workspace/a/b/c", true).await.ok(201)["created"],
        true
    );
    assert_eq!(owner_and_mode(&f, "/workspace/a/b").await, "1000:1000 755");

    f.write("/workspace/proj/main.rs", b"fn main() {}\n")
        .await
        .ok(201);
    f.mkdir("/workspace/proj/src", false).await.ok(201);
    f.write("/workspace/proj/src/lib.rs", &all_byte_values())
        .await
        .ok(201);
    f.sh("ln -s src/lib.rs /workspace/proj/link && chmod 755 /workspace/proj/main.rs")
        .await;

    // A file: its entry, with the path asked for.
    let info = f.info("/workspace/proj/main.rs").await.ok(200);
    assert_eq!(info["name"], "main.rs");
    assert_eq!(info["type"], "file");
    assert_eq!(info["size"], 13);
    assert_eq!(info["mode"], "0755");
    assert_eq!(info["path"], "/workspace/proj/main.rs");
    assert!(info["mtime"].as_i64().unwrap() > 1_600_000_000, "{info}");
    assert!(info.get("entries").is_none(), "{info}");

    // A directory: its entries, symlinks not followed.
    let dir = f.info("/workspace/proj").await.ok(200);
    assert_eq!(dir["type"], "directory");
    assert_eq!(dir["path"], "/workspace/proj");
    assert_eq!(dir["truncated"], false);
    assert_eq!(
        names(&dir),
        BTreeSet::from(["link".into(), "main.rs".into(), "src".into()])
    );
    assert_eq!(entry(&dir, "src")["type"], "directory");
    assert_eq!(entry(&dir, "link")["type"], "symlink");
    assert_eq!(entry(&dir, "link")["target"], "src/lib.rs");
    assert_eq!(entry(&dir, "main.rs")["size"], 13);
    assert!(entry(&dir, "main.rs").get("target").is_none());
    // Recursive: everything below, by path.
    let all = f.info_recursive("/workspace/proj").await.ok(200);
    assert_eq!(
        names(&all),
        BTreeSet::from([
            "link".into(),
            "main.rs".into(),
            "src".into(),
            "src/lib.rs".into()
        ])
    );
    assert_eq!(entry(&all, "src/lib.rs")["size"], 256);
    // A place itself can be listed.
    assert!(names(&f.info("/workspace").await.ok(200)).contains("proj"));
    f.info("/workspace/ghost")
        .await
        .error(404, "FileNotFoundError");

    // move: within a place, and across places (different filesystems).
    let r = f
        .mv("/workspace/proj/main.rs", "/workspace/proj/src/main.rs")
        .await;
    assert_eq!(
        r.ok(200),
        json!({"from": "/workspace/proj/main.rs", "to": "/workspace/proj/src/main.rs"})
    );
    f.read("/workspace/proj/main.rs")
        .await
        .error(404, "FileNotFoundError");
    let big = random_bytes(1024 * 1024 + 3);
    f.write("/workspace/big.bin", &big).await.ok(201);
    f.mv("/workspace/big.bin", "/tmp/big.bin").await.ok(200);
    assert!(f.read("/tmp/big.bin").await.bytes == big);
    f.read("/workspace/big.bin")
        .await
        .error(404, "FileNotFoundError");
    assert_eq!(owner_and_mode(&f, "/tmp/big.bin").await, "1000:1000 644");
    f.mv("/tmp/big.bin", "/home/studio/big.bin").await.ok(200);
    assert!(f.read("/home/studio/big.bin").await.bytes == big);
    // A directory moves within its place, not across.
    f.mv("/workspace/a", "/workspace/proj/a").await.ok(200);
    assert_eq!(
        f.info("/workspace/proj/a/b/c").await.ok(200)["type"],
        "directory"
    );
    f.mv("/workspace/proj/a", "/tmp/a")
        .await
        .error(409, "ValidationError");
    // Nor into itself.
    f.mv("/workspace/proj/a", "/workspace/proj/a/b/a")
        .await
        .error(409, "ValidationError");
    f.mv("/workspace/nothing", "/workspace/x")
        .await
        .error(404, "FileNotFoundError");
    f.mv("/workspace/nothing", "/tmp/x")
        .await
        .error(404, "FileNotFoundError");
    f.mv("/workspace", "/tmp/ws")
        .await
        .error(400, "ValidationError");
    let r = f
        .send(
            "POST",
            f.url("files/move", None, &[]),
            &[("content-type", "application/json")],
            Some(br#"{"from":"/workspace/x"}"#.to_vec()),
        )
        .await;
    r.error(400, "ValidationError");

    // remove: a file, a symlink (not what it points to), directories.
    f.remove("/workspace/proj/link", false).await.ok(200);
    assert_eq!(
        f.read("/workspace/proj/src/lib.rs").await.bytes,
        all_byte_values()
    );
    let r = f.remove("/workspace/proj/src/main.rs", false).await;
    assert_eq!(
        r.ok(200),
        json!({"path": "/workspace/proj/src/main.rs", "removed": true})
    );
    f.remove("/workspace/proj/src/main.rs", false)
        .await
        .error(404, "FileNotFoundError");
    f.remove("/workspace/proj", false)
        .await
        .error(409, "ValidationError");
    f.remove("/workspace/proj", true).await.ok(200);
    f.info("/workspace/proj")
        .await
        .error(404, "FileNotFoundError");
    f.mkdir("/workspace/empty", false).await.ok(201);
    f.remove("/workspace/empty", false).await.ok(200);
    // The places themselves stay.
    for p in ["/workspace", "/tmp", "/home/studio"] {
        f.remove(p, true).await.error(400, "ValidationError");
    }
    // A query without a path, or with a flag it does not know.
    f.send("GET", f.url("files", None, &[]), &[], None)
        .await
        .error(400, "ValidationError");
    f.send(
        "GET",
        f.url("files", Some("/workspace"), &["bogus"]),
        &[],
        None,
    )
    .await
    .error(400, "ValidationError");
}

#[tokio::test]
async fn writes_over_the_size_limit_are_refused() {
    let server = server().args(["--max-file-size", "64k"]).start().await;
    let (sid, _) = server.create_rest().await;
    let f = Files::new(&server, &sid);
    let limit = 64 * 1024;
    let exact = random_bytes(limit);
    f.write("/workspace/f.bin", &exact).await.ok(201);
    // Declared too large: refused at once.
    f.write("/workspace/f.bin", &random_bytes(limit + 1))
        .await
        .error(413, "MessageTooLarge");
    // Too large without a declared length (chunked): refused as it streams.
    let r = chunked_put(
        &server,
        &f.url("files/content", Some("/workspace/f.bin"), &[]),
        &random_bytes(limit + 4096),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    assert!(r.contains("MessageTooLarge"), "{r}");
    let r = chunked_put(
        &server,
        &f.url("files/content", Some("/workspace/new.bin"), &[]),
        &random_bytes(limit + 1),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    // The file is as it was; no partial or temporary file is left.
    assert!(f.read("/workspace/f.bin").await.bytes == exact);
    assert_eq!(f.sh("ls -A /workspace").await.trim(), "f.bin");
    // A small chunked write works.
    let r = chunked_put(
        &server,
        &f.url("files/content", Some("/workspace/small.txt"), &[]),
        b"chunked body",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 201"), "{r}");
    assert_eq!(f.read("/workspace/small.txt").await.bytes, b"chunked body");

    // Archives are held to it too: unpacking, and packing.
    let mut t = tar::Builder::new(Vec::new());
    add_file(&mut t, "big.bin", &random_bytes(limit + 1), 0o644);
    f.unpack("/workspace/up", t.into_inner().unwrap())
        .await
        .error(413, "MessageTooLarge");
    f.write("/workspace/two/a.bin", &random_bytes(limit / 2 + 1))
        .await
        .error(404, "FileNotFoundError");
    f.write_parents("/workspace/two/a.bin", &random_bytes(limit / 2 + 1))
        .await
        .ok(201);
    f.write_parents("/workspace/two/b.bin", &random_bytes(limit / 2 + 1))
        .await
        .ok(201);
    // Found out early on (in the first piece): answered as the error.
    f.archive("/workspace/two")
        .await
        .error(413, "MessageTooLarge");
    // Found out later (many small files first, then one over what is
    // left): the download is cut short, never a tar that looks whole.
    f.sh("mkdir /workspace/three && cd /workspace/three && for i in $(seq 100 199); do echo x > s$i; done")
        .await;
    f.write("/workspace/three/z.bin", &random_bytes(limit))
        .await
        .ok(201);
    let r = f.archive("/workspace/three").await;
    assert_eq!(r.status, 200);
    assert!(
        !r.complete,
        "an archive over the limit must not arrive whole"
    );
}

/// A PUT with a chunked body, over a raw connection; the whole answer.
async fn chunked_put(server: &Server, url: &str, body: &[u8]) -> String {
    let path = url
        .strip_prefix(&format!("http://{}", server.addr))
        .unwrap();
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        server.addr
    );
    s.write_all(head.as_bytes()).await.unwrap();
    for c in body.chunks(8192) {
        let mut frame = format!("{:x}\r\n", c.len()).into_bytes();
        frame.extend_from_slice(c);
        frame.extend_from_slice(b"\r\n");
        // The server may answer (and stop reading) before the end.
        if s.write_all(&frame).await.is_err() {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------
// Staying inside

/// Paths that are no session path at all.
const NOT_PLACES: &[&str] = &[
    "workspace/a.txt",
    "a.txt",
    "./a.txt",
    "",
    "/",
    "/workspace/../etc/passwd",
    "/workspace/./../etc/passwd",
    "/workspace/sub/../../etc/passwd",
    "/tmp/../etc/passwd",
    "/home/studio/../../etc/passwd",
    "/home",
    "/etc/passwd",
    "/etc",
    "/proc/1/root/etc/passwd",
    "/proc/self/root/etc/passwd",
    "/proc/self/cwd",
    "/workspacex/a",
    "/tmpx",
    "/workspace/a\0b",
];

/// Every operation refuses every path that is no session path, and every
/// way out through a symlink; nothing outside is read or written.
/// `tag` is unique: files an escape would make are named with it.
async fn assert_paths_stay_inside(f: &Files<'_>, tag: &str) {
    let passwd_before = f.sh("md5sum /etc/passwd").await;
    f.write("/workspace/mine.txt", b"mine").await.ok(201);

    for p in NOT_PLACES {
        f.read(p).await.error(400, "ValidationError");
        f.info(p).await.error(400, "ValidationError");
        f.archive(p).await.error(400, "ValidationError");
        f.remove(p, true).await.error(400, "ValidationError");
        f.mv(p, "/workspace/stolen")
            .await
            .error(400, "ValidationError");
    }
    for dir in [
        "/etc",
        "/",
        "/proc/1/root/tmp",
        "/workspace/..",
        "tmp",
        "/workspace/../tmp",
    ] {
        let target = format!("{}/{tag}", dir.trim_end_matches('/'));
        f.write(&target, tag.as_bytes())
            .await
            .error(400, "ValidationError");
        f.write_parents(&target, tag.as_bytes())
            .await
            .error(400, "ValidationError");
        f.mkdir(&target, true).await.error(400, "ValidationError");
        f.mv("/workspace/mine.txt", &target)
            .await
            .error(400, "ValidationError");
        f.unpack(dir, tar_with_file(tag))
            .await
            .error(400, "ValidationError");
    }

    // Symlinks inside the workspace that lead out of it.
    f.sh(
        "cd /workspace && ln -s /etc/passwd abs-file && ln -s / abs-root && \
         ln -s ../../etc rel-etc && ln -s /etc out && mkdir -p deep/er && \
         ln -s ../../../etc deep/er/up && ln -s /proc/1/root proc-root && \
         ln -s /proc/self/root self-root && ln -s /tmp tmp-link && ln -s ../.. dotdot",
    )
    .await;
    let victim = format!("victim-{}", tag.replace("escape", "v"));
    f.sh(&format!("echo victim > /tmp/{victim}")).await;
    for p in [
        "/workspace/abs-file",
        "/workspace/abs-root/etc/passwd",
        "/workspace/rel-etc/passwd",
        "/workspace/out/passwd",
        "/workspace/deep/er/up/passwd",
        "/workspace/proc-root/etc/passwd",
        "/workspace/self-root/etc/passwd",
        "/workspace/dotdot/etc/passwd",
        &format!("/workspace/tmp-link/{victim}"),
    ] {
        let r = f.read(p).await;
        assert!(
            !r.text().contains("root:"),
            "{p} read outside: {}",
            r.text()
        );
        r.error(400, "ValidationError");
        let r = f.read_range(p, "bytes=0-3").await;
        r.error(400, "ValidationError");
        f.info(p).await.error(400, "ValidationError");
        if p != "/workspace/abs-file" {
            // (That one names the link itself, which is the session's.)
            f.mv(p, "/workspace/stolen")
                .await
                .error(400, "ValidationError");
            f.remove(p, false).await.error(400, "ValidationError");
        }
    }
    for p in [
        "/workspace/abs-root",
        "/workspace/abs-root/etc",
        "/workspace/out",
        "/workspace/rel-etc",
        "/workspace/deep/er/up",
        "/workspace/proc-root",
        "/workspace/dotdot",
        "/workspace/tmp-link",
    ] {
        f.info(p).await.error(400, "ValidationError");
        f.info_recursive(p).await.error(400, "ValidationError");
        f.archive(p).await.error(400, "ValidationError");
        f.unpack(p, tar_with_file(tag))
            .await
            .error(400, "ValidationError");
        f.remove(&format!("{p}/{tag}"), true)
            .await
            .error(400, "ValidationError");
        let target = format!("{p}/{tag}");
        f.write(&target, tag.as_bytes())
            .await
            .error(400, "ValidationError");
        f.write_parents(&format!("{p}/sub/{tag}"), tag.as_bytes())
            .await
            .error(400, "ValidationError");
        f.mkdir(&target, false).await.error(400, "ValidationError");
        f.mkdir(&format!("{p}/sub/{tag}"), true)
            .await
            .error(400, "ValidationError");
        f.mv("/workspace/mine.txt", &target)
            .await
            .error(400, "ValidationError");
    }
    for p in ["/workspace/abs-root/tmp", "/workspace/abs-root/workspace"] {
        let target = format!("{p}/{tag}");
        f.write(&target, tag.as_bytes())
            .await
            .error(400, "ValidationError");
        f.write_parents(&target, tag.as_bytes())
            .await
            .error(400, "ValidationError");
    }
    f.remove(&format!("/workspace/abs-root/tmp/{victim}"), false)
        .await
        .error(400, "ValidationError");
    f.remove(&format!("/workspace/tmp-link/{victim}"), false)
        .await
        .error(400, "ValidationError");
    // An archive entry may not go through one either, nor name one.
    let mut t = tar::Builder::new(Vec::new());
    add_file(
        &mut t,
        &format!("abs-root/tmp/{tag}"),
        tag.as_bytes(),
        0o644,
    );
    f.unpack("/workspace", t.into_inner().unwrap())
        .await
        .error(400, "ValidationError");
    let mut t = tar::Builder::new(Vec::new());
    add_file(&mut t, &format!("out/{tag}"), tag.as_bytes(), 0o644);
    f.unpack("/workspace", t.into_inner().unwrap())
        .await
        .error(400, "ValidationError");

    // The links themselves are listed (not followed) and archived as links.
    let ws = f.info("/workspace").await.ok(200);
    assert_eq!(entry(&ws, "abs-file")["type"], "symlink");
    assert_eq!(entry(&ws, "abs-file")["target"], "/etc/passwd");
    assert_eq!(entry(&ws, "abs-root")["target"], "/");
    assert_eq!(entry(&ws, "rel-etc")["target"], "../../etc");
    let listed = f.info_recursive("/workspace").await.ok(200);
    assert!(
        names(&listed).iter().all(|n| !n.starts_with("abs-root/")),
        "a recursive listing followed a link: {listed}"
    );
    let r = f.archive("/workspace").await;
    assert_eq!(r.status, 200);
    for (name, e) in untar(&r.bytes) {
        assert!(
            !String::from_utf8_lossy(&e.data).contains("root:"),
            "{name} in the archive holds /etc/passwd"
        );
        assert!(
            !name.starts_with("abs-root/"),
            "the archive followed a link"
        );
    }
    assert_eq!(untar(&r.bytes)["abs-root"].link.as_deref(), Some("/"));

    // Removing or replacing a link touches the link, never its target.
    f.remove("/workspace/abs-file", false).await.ok(200);
    assert_eq!(
        f.write("/workspace/rel-etc", b"plain").await.ok(200)["size"],
        5
    );
    assert_eq!(f.info("/workspace/rel-etc").await.ok(200)["type"], "file");
    f.mv("/workspace/out", "/workspace/out-moved").await.ok(200);
    assert_eq!(
        entry(&f.info("/workspace").await.ok(200), "out-moved")["target"],
        "/etc"
    );
    f.remove("/workspace/abs-root", true).await.ok(200);
    assert_eq!(f.sh("md5sum /etc/passwd").await, passwd_before);
    assert_eq!(f.sh(&format!("cat /tmp/{victim}")).await, "victim\n");
    assert_nowhere(f, tag).await;
}

/// No file whose name holds `tag` exists in the container (outside
/// /proc) or anywhere on this machine's root filesystem.
async fn assert_nowhere(f: &Files<'_>, tag: &str) {
    let found = f
        .exec(json!([
            "sh",
            "-c",
            format!("find / -path /proc -prune -o -name '*{tag}*' -print 2>/dev/null")
        ]))
        .await;
    assert_eq!(found["stdout"], "", "made in the container: {found}");
    for dir in ["/", "/tmp", "/etc", "/root"] {
        let p = std::path::Path::new(dir).join(tag);
        assert!(!p.exists(), "{} exists on the machine", p.display());
    }
    let out = tokio::process::Command::new("find")
        .args(["/", "-xdev", "-name", &format!("*{tag}*")])
        .stderr(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "",
        "made on the machine"
    );
}

fn tar_with_file(name: &str) -> Vec<u8> {
    let mut t = tar::Builder::new(Vec::new());
    add_file(&mut t, name, name.as_bytes(), 0o644);
    t.into_inner().unwrap()
}

#[tokio::test]
async fn no_path_leads_outside_the_tmpfs_workspace() {
    let server = server().start().await;
    let (sid, _) = server.create_rest().await;
    let f = Files::new(&server, &sid);
    assert_paths_stay_inside(&f, &unique("escape")).await;
}

/// A host directory for a bind-mounted workspace; removed when dropped.
struct HostDirs {
    base: std::path::PathBuf,
    root: std::path::PathBuf,
    proj: std::path::PathBuf,
    outside: std::path::PathBuf,
}

impl Drop for HostDirs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

fn host_dirs() -> HostDirs {
    let base = std::env::temp_dir().join(unique("studio-files"));
    let root = base.join("root");
    let proj = root.join("proj");
    let outside = base.join("outside");
    std::fs::create_dir_all(&proj).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(proj.join("from-host.txt"), "made on the host\n").unwrap();
    std::fs::write(outside.join("secret.txt"), "top-secret\n").unwrap();
    // Links the host made, to the host's files beside the workspace.
    std::os::unix::fs::symlink(&outside, proj.join("host-abs")).unwrap();
    std::os::unix::fs::symlink("../../outside", proj.join("host-rel")).unwrap();
    let st = std::process::Command::new("chown")
        .args(["-hR", "1000:1000"])
        .arg(&proj)
        .status()
        .unwrap();
    assert!(st.success());
    HostDirs {
        base,
        root,
        proj,
        outside,
    }
}

async fn mounted_session(server: &Server, proj: &std::path::Path) -> String {
    let (status, body) = server
        .post(
            "/api/containers",
            &json!({"workspaceDir": proj.to_str().unwrap()}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["sessionId"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_mounted_workspace_round_trips_and_keeps_inside() {
    use std::os::unix::fs::MetadataExt;
    let dirs = host_dirs();
    let server = server()
        .arg("--workspace-root")
        .arg(dirs.root.to_str().unwrap())
        .start()
        .await;
    let sid = mounted_session(&server, &dirs.proj).await;
    let f = Files::new(&server, &sid);

    // The host's file is the session's; the session's are the host's.
    assert_eq!(
        f.read("/workspace/from-host.txt").await.bytes,
        b"made on the host\n"
    );
    let bytes = all_byte_values();
    f.write("/workspace/all.bin", &bytes).await.ok(201);
    assert_eq!(std::fs::read(dirs.proj.join("all.bin")).unwrap(), bytes);
    let big = random_bytes(2 * 1024 * 1024 + 1);
    f.write_parents("/workspace/sub/big.bin", &big)
        .await
        .ok(201);
    assert!(std::fs::read(dirs.proj.join("sub/big.bin")).unwrap() == big);
    assert!(f.read("/workspace/sub/big.bin").await.bytes == big);
    for p in ["all.bin", "sub", "sub/big.bin"] {
        let m = std::fs::metadata(dirs.proj.join(p)).unwrap();
        assert_eq!((m.uid(), m.gid()), (1000, 1000), "{p} on the host");
    }
    let r = f.read_range("/workspace/sub/big.bin", "bytes=-100").await;
    assert_eq!(r.status, 206);
    assert!(r.bytes == big[big.len() - 100..]);
    f.mv("/workspace/all.bin", "/tmp/all.bin").await.ok(200);
    assert!(!dirs.proj.join("all.bin").exists());
    assert_eq!(f.read("/tmp/all.bin").await.bytes, bytes);
    f.mv("/tmp/all.bin", "/workspace/back.bin").await.ok(200);
    assert_eq!(std::fs::read(dirs.proj.join("back.bin")).unwrap(), bytes);

    // The host's own links lead nowhere either.
    let tag = unique("escape");
    for p in [
        "/workspace/host-abs/secret.txt",
        "/workspace/host-rel/secret.txt",
    ] {
        let r = f.read(p).await;
        assert!(!r.text().contains("top-secret"), "{p}: {}", r.text());
        assert!(r.status == 400 || r.status == 404, "{p}: {}", r.text());
    }
    f.read("/workspace/host-rel/secret.txt")
        .await
        .error(400, "ValidationError");
    for p in ["/workspace/host-abs", "/workspace/host-rel"] {
        let r = f.info(p).await;
        assert!(r.status == 400 || r.status == 404, "{p}: {}", r.text());
        assert!(!r.text().contains("secret"), "{p}: {}", r.text());
        let target = format!("{p}/{tag}");
        let r = f.write(&target, b"x").await;
        assert!(r.status == 400 || r.status == 404, "{target}: {}", r.text());
        let r = f.write_parents(&target, b"x").await;
        assert!(r.status == 400 || r.status == 404, "{target}: {}", r.text());
        let r = f.unpack(p, tar_with_file(&tag)).await;
        assert!(r.status == 400 || r.status == 404, "{p}: {}", r.text());
    }
    f.write("/workspace/host-rel/x", b"x")
        .await
        .error(400, "ValidationError");
    let outside: Vec<_> = std::fs::read_dir(&dirs.outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside, vec![std::ffi::OsString::from("secret.txt")]);
    assert!(!dirs.root.join(&tag).exists() && !dirs.base.join(&tag).exists());

    // And everything the tmpfs workspace refuses.
    assert_paths_stay_inside(&f, &tag).await;
    let left: BTreeSet<String> = std::fs::read_dir(&dirs.base)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, BTreeSet::from(["outside".into(), "root".into()]));
}

#[tokio::test]
async fn a_symlink_swapped_in_a_race_never_leads_outside() {
    let server = server().start().await;
    let (sid, _) = server.create_rest().await;
    let f = Files::new(&server, &sid);
    let tag = unique("escape");
    // `real` holds what the race may legitimately reach; `link` is `/`. A
    // command keeps swapping the two in and out of the name `d`.
    f.sh(&format!(
        "cd /workspace && mkdir -p real/etc real/tmp && echo inside-passwd > real/etc/passwd && \
         ln -s / link && echo marker > /tmp/outside-{tag}"
    ))
    .await;
    let swapper = {
        let url = f.url("exec", None, &[]);
        let http = server.http.clone();
        tokio::spawn(async move {
            let cmd = "cd /workspace && while [ ! -e stop ]; do \
                       mv real d; mv d real; mv link d; mv d link; done";
            let r = http
                .post(url)
                .json(&json!({"cmd": cmd, "timeout": 120}))
                .send()
                .await
                .unwrap();
            r.json::<Value>().await.unwrap()
        })
    };

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let enough =
        |ok: usize, refused: usize, n: usize| (ok >= 3 && refused >= 3 && n >= 150) || n >= 3000;
    let reads = async {
        let (mut ok, mut refused, mut n) = (0, 0, 0);
        while !enough(ok, refused, n) && tokio::time::Instant::now() < deadline {
            n += 1;
            let r = f.read("/workspace/d/etc/passwd").await;
            assert!(!r.text().contains("root:"), "read outside: {}", r.text());
            match r.status {
                200 => {
                    assert_eq!(r.bytes, b"inside-passwd\n");
                    ok += 1;
                }
                400 => {
                    r.error(400, "ValidationError");
                    refused += 1;
                }
                404 => r.error(404, "FileNotFoundError"),
                _ => panic!("unexpected answer: {} {}", r.status, r.text()),
            }
        }
        (ok, refused, n)
    };
    let mut written = BTreeSet::new();
    let writes = async {
        let (mut ok, mut refused, mut n) = (0, 0, 0);
        while !enough(ok, refused, n) && tokio::time::Instant::now() < deadline {
            n += 1;
            let name = format!("{tag}-{n}");
            let path = format!("/workspace/d/tmp/{name}");
            let r = if n % 3 == 0 {
                f.mkdir(&path, false).await
            } else {
                f.write(&path, name.as_bytes()).await
            };
            match r.status {
                200 | 201 => {
                    written.insert(name);
                    ok += 1;
                }
                400 => {
                    r.error(400, "ValidationError");
                    refused += 1;
                }
                404 => r.error(404, "FileNotFoundError"),
                // The name was swapped away while the write went on.
                409 => r.error(409, "ValidationError"),
                _ => panic!("unexpected answer: {} {}", r.status, r.text()),
            }
        }
        (ok, refused, n)
    };
    let lists = async {
        let (mut ok, mut refused, mut n) = (0, 0, 0);
        while !enough(ok, refused, n) && tokio::time::Instant::now() < deadline {
            n += 1;
            let r = if n % 2 == 0 {
                f.info("/workspace/d/tmp").await
            } else {
                f.archive("/workspace/d/etc").await
            };
            match r.status {
                // Cut short: a failed download, which is an error too
                // (the directory was swapped between the checks and the
                // packing).
                200 if !r.complete => refused += 1,
                200 if n % 2 == 0 => {
                    let l = r.json();
                    assert!(
                        !names(&l).iter().any(|n| n.starts_with("outside-")),
                        "listed /tmp: {l}"
                    );
                    ok += 1;
                }
                200 => {
                    let got = untar(&r.bytes);
                    assert_eq!(got.len(), 1, "archived outside: {:?}", got.keys());
                    assert_eq!(got["passwd"].data, b"inside-passwd\n");
                    ok += 1;
                }
                400 => {
                    r.error(400, "ValidationError");
                    refused += 1;
                }
                404 => r.error(404, "FileNotFoundError"),
                409 => r.error(409, "ValidationError"),
                _ => panic!("unexpected answer: {} {}", r.status, r.text()),
            }
        }
        (ok, refused, n)
    };
    let (reads, writes, lists) = tokio::join!(reads, writes, lists);
    f.write("/workspace/stop", b"").await.ok(201);
    let swapped = tokio::time::timeout(WAIT, swapper)
        .await
        .expect("the swapping command stops")
        .unwrap();
    assert_eq!(swapped["exitCode"], 0, "{swapped}");
    // The race did happen: each kind of call both got through and was refused.
    for (what, (ok, refused, n)) in [("reads", reads), ("writes", writes), ("lists", lists)] {
        assert!(
            ok > 0 && refused > 0,
            "{what}: {ok} ok, {refused} refused of {n}"
        );
    }
    // Every write that succeeded is inside; nothing is anywhere else.
    let inside: BTreeSet<String> = f
        .sh("ls -A /workspace/real/tmp")
        .await
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(inside, written);
    assert_eq!(
        f.sh("ls -A /tmp")
            .await
            .split_whitespace()
            .collect::<Vec<_>>(),
        vec![format!("outside-{tag}")]
    );
    assert_eq!(
        f.sh("cat /workspace/real/etc/passwd").await,
        "inside-passwd\n"
    );
    // Only the names the test made: the swap's, and real's contents.
    let find = f
        .exec(json!([
            "sh",
            "-c",
            format!("find / -path /proc -prune -o -path /workspace/real -prune -o -name '*{tag}*' -print 2>/dev/null")
        ]))
        .await;
    assert_eq!(
        find["stdout"].as_str().unwrap().trim(),
        format!("/tmp/outside-{tag}"),
        "{find}"
    );
    let out = tokio::process::Command::new("find")
        .args(["/", "-xdev", "-name", &format!("*{tag}*")])
        .stderr(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "",
        "made on the machine"
    );
}

#[tokio::test]
async fn a_replaced_file_is_never_read_half_written() {
    let server = server().start().await;
    let (sid, _) = server.create_rest().await;
    let f = Files::new(&server, &sid);
    const SIZE: usize = 2 * 1024 * 1024;
    const VERSIONS: u8 = 24;
    let version = |v: u8| vec![v; SIZE];
    f.write("/workspace/at/file.bin", b"x")
        .await
        .error(404, "FileNotFoundError");
    f.write_parents("/workspace/at/file.bin", &version(1))
        .await
        .ok(201);
    let done = std::sync::atomic::AtomicBool::new(false);
    let writer = async {
        for v in 2..=VERSIONS {
            f.write("/workspace/at/file.bin", &version(v)).await.ok(200);
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    let reader = |tail: bool| {
        let done = &done;
        let f = &f;
        async move {
            let mut seen = BTreeSet::new();
            let mut reads = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let r = if tail {
                    f.read_range("/workspace/at/file.bin", "bytes=-65536").await
                } else {
                    f.read("/workspace/at/file.bin").await
                };
                let want = if tail { 65536 } else { SIZE };
                assert_eq!(r.status, if tail { 206 } else { 200 }, "{}", r.text());
                assert_eq!(r.bytes.len(), want, "a partial file was read");
                let v = r.bytes[0];
                assert!((1..=VERSIONS).contains(&v), "never written: {v}");
                assert!(r.bytes.iter().all(|b| *b == v), "a read mixed versions");
                seen.insert(v);
                reads += 1;
            }
            (reads, seen)
        }
    };
    let ((), (reads, seen), (tail_reads, _)) = tokio::join!(writer, reader(false), reader(true));
    assert!(
        reads >= 2 && tail_reads >= 2,
        "{reads} reads, {tail_reads} tail reads"
    );
    assert!(seen.len() >= 2, "the reads saw one version only: {seen:?}");
    assert_eq!(
        f.read("/workspace/at/file.bin").await.bytes,
        version(VERSIONS)
    );
    // Only the file is there: no temporary file was left behind.
    assert_eq!(f.sh("ls -A /workspace/at").await, "file.bin\n");
}

// ---------------------------------------------------------------------------
// Archives

#[derive(Debug, PartialEq)]
struct TarEntry {
    kind: char,
    data: Vec<u8>,
    link: Option<String>,
    mode: u32,
}

/// A tar's entries by name (without a directory's trailing `/`).
fn untar(bytes: &[u8]) -> BTreeMap<String, TarEntry> {
    let mut a = tar::Archive::new(bytes);
    let mut out = BTreeMap::new();
    for e in a.entries().expect("a tar") {
        let mut e = e.expect("a whole tar");
        let name = e
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches('/')
            .to_string();
        let kind = match e.header().entry_type() {
            tar::EntryType::Directory => 'd',
            tar::EntryType::Regular => 'f',
            tar::EntryType::Symlink => 'l',
            other => panic!("{name}: unexpected {other:?}"),
        };
        let link = e
            .link_name()
            .unwrap()
            .map(|l| l.to_string_lossy().into_owned());
        let mode = e.header().mode().unwrap() & 0o7777;
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.insert(
            name,
            TarEntry {
                kind,
                data,
                link,
                mode,
            },
        );
    }
    out
}

fn add_file(t: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8], mode: u32) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(data.len() as u64);
    h.set_mode(mode);
    h.set_mtime(1_700_000_000);
    t.append_data(&mut h, name, data).unwrap();
}

fn add_dir(t: &mut tar::Builder<Vec<u8>>, name: &str) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    h.set_mode(0o755);
    t.append_data(&mut h, name, std::io::empty()).unwrap();
}

fn add_link(t: &mut tar::Builder<Vec<u8>>, name: &str, target: &str) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    t.append_link(&mut h, name, target).unwrap();
}

/// An entry with the name written as is (the tar crate refuses to write
/// `..` or absolute names itself, as a careful packer would).
fn add_raw(
    t: &mut tar::Builder<Vec<u8>>,
    kind: tar::EntryType,
    name: &str,
    link: &str,
    data: &[u8],
) {
    let mut h = tar::Header::new_old();
    {
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    t.append(&h, data).unwrap();
}

#[tokio::test]
async fn archives_round_trip_and_stay_inside() {
    let server = server().start().await;
    let (sid, _) = server.create_rest().await;
    let f = Files::new(&server, &sid);

    let random = random_bytes(300 * 1024 + 5);
    let long_name = format!("nested/{}.txt", "l".repeat(140));
    let mut t = tar::Builder::new(Vec::new());
    add_dir(&mut t, "nested/");
    add_dir(&mut t, "nested/deeper/");
    add_file(&mut t, "nested/deeper/all.bin", &all_byte_values(), 0o644);
    add_file(&mut t, "nested/random.bin", &random, 0o644);
    add_file(&mut t, "run.sh", b"#!/bin/sh\necho ran\n", 0o755);
    add_file(&mut t, "empty", b"", 0o644);
    add_file(
        &mut t,
        "implied/dir/file.txt",
        b"parents made on the way",
        0o644,
    );
    add_file(&mut t, &long_name, b"a long name", 0o644);
    add_link(&mut t, "nested/link", "deeper/all.bin");
    let tar = t.into_inner().unwrap();

    let r = f.unpack("/workspace/up", tar.clone()).await;
    assert_eq!(r.ok(200), json!({"path": "/workspace/up", "entries": 9}));
    assert_eq!(
        f.read("/workspace/up/nested/deeper/all.bin").await.bytes,
        all_byte_values()
    );
    assert!(f.read("/workspace/up/nested/random.bin").await.bytes == random);
    // Reading through the (inside) link reaches its target.
    assert_eq!(
        f.read("/workspace/up/nested/link").await.bytes,
        all_byte_values()
    );
    assert_eq!(
        f.read(&format!("/workspace/up/{long_name}")).await.bytes,
        b"a long name"
    );
    let nested = f.info("/workspace/up/nested").await.ok(200);
    assert_eq!(entry(&nested, "link")["type"], "symlink");
    assert_eq!(entry(&nested, "link")["target"], "deeper/all.bin");
    assert_eq!(
        owner_and_mode(&f, "/workspace/up/run.sh").await,
        "1000:1000 755"
    );
    let owners = f
        .sh("find /workspace/up -exec stat -c '%u:%g' {} \\; | sort -u")
        .await;
    assert_eq!(owners, "1000:1000\n");

    // Down again: the same entries, byte for byte.
    let r = f.archive("/workspace/up").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-tar"));
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"up.tar\"")
    );
    let got = untar(&r.bytes);
    let mut want = untar(&tar);
    // Directories the archive implied are made, and so archived.
    for d in ["implied", "implied/dir"] {
        want.insert(
            d.into(),
            TarEntry {
                kind: 'd',
                data: vec![],
                link: None,
                mode: 0o755,
            },
        );
    }
    for e in want.values_mut() {
        // A link's own permission bits are not kept by Linux.
        if e.kind == 'l' {
            e.mode = 0o777;
        }
    }
    let summary = |m: &BTreeMap<String, TarEntry>| {
        m.iter()
            .map(|(n, e)| (n.clone(), e.kind, e.data.len(), e.link.clone(), e.mode))
            .collect::<Vec<_>>()
    };
    assert_eq!(summary(&got), summary(&want));
    assert!(got == want, "contents differ");

    // Into an existing directory, over what is there.
    let mut t = tar::Builder::new(Vec::new());
    add_file(&mut t, "run.sh", b"replaced", 0o644);
    let r = f.unpack("/workspace/up", t.into_inner().unwrap()).await;
    assert_eq!(r.ok(200)["entries"], 1);
    assert_eq!(f.read("/workspace/up/run.sh").await.bytes, b"replaced");

    // A tar with a pax global header (as `git archive` makes).
    let mut t = tar::Builder::new(Vec::new());
    let comment = b"52 comment=0123456789abcdef0123456789abcdef01234567\n";
    let mut h = tar::Header::new_ustar();
    h.set_path("pax_global_header").unwrap();
    h.set_entry_type(tar::EntryType::XGlobalHeader);
    h.set_size(comment.len() as u64);
    h.set_mode(0o666);
    h.set_cksum();
    t.append(&h, &comment[..]).unwrap();
    // (GNU tar and bsdtar name theirs after a path under /tmp.)
    add_raw(
        &mut t,
        tar::EntryType::XGlobalHeader,
        "/tmp/GlobalHead.0.0",
        "",
        b"16 path=ignored\n",
    );
    add_dir(&mut t, "repo/");
    add_file(&mut t, "repo/README", b"readme", 0o644);
    let r = f.unpack("/workspace/git", t.into_inner().unwrap()).await;
    assert_eq!(r.ok(200), json!({"path": "/workspace/git", "entries": 2}));
    assert_eq!(f.read("/workspace/git/repo/README").await.bytes, b"readme");
    assert!(f.info("/workspace/git/pax_global_header").await.status == 404);

    // Entries that would land outside are refused, and nothing lands.
    let tag = unique("escape");
    f.sh("mkdir /workspace/target && ln -s /tmp /workspace/target/tmp-link")
        .await;
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("dotdot", {
            let mut t = tar::Builder::new(Vec::new());
            add_raw(
                &mut t,
                tar::EntryType::Regular,
                &format!("../{tag}"),
                "",
                b"x",
            );
            t.into_inner().unwrap()
        }),
        ("inner dotdot", {
            let mut t = tar::Builder::new(Vec::new());
            add_raw(
                &mut t,
                tar::EntryType::Regular,
                &format!("a/../../{tag}"),
                "",
                b"x",
            );
            t.into_inner().unwrap()
        }),
        ("absolute", {
            let mut t = tar::Builder::new(Vec::new());
            add_raw(
                &mut t,
                tar::EntryType::Regular,
                &format!("/tmp/{tag}"),
                "",
                b"x",
            );
            t.into_inner().unwrap()
        }),
        ("through its own link", {
            let mut t = tar::Builder::new(Vec::new());
            add_link(&mut t, "lnk", "/tmp");
            add_file(&mut t, &format!("lnk/{tag}"), b"x", 0o644);
            t.into_inner().unwrap()
        }),
        ("through its own relative link", {
            let mut t = tar::Builder::new(Vec::new());
            add_link(&mut t, "rel", "../../tmp");
            add_file(&mut t, &format!("rel/{tag}"), b"x", 0o644);
            t.into_inner().unwrap()
        }),
        ("through a link there", {
            let mut t = tar::Builder::new(Vec::new());
            add_file(&mut t, &format!("tmp-link/{tag}"), b"x", 0o644);
            t.into_inner().unwrap()
        }),
        ("hard link", {
            let mut t = tar::Builder::new(Vec::new());
            add_raw(
                &mut t,
                tar::EntryType::Link,
                &format!("{tag}-hl"),
                "/etc/passwd",
                b"",
            );
            t.into_inner().unwrap()
        }),
        (
            "not a tar",
            b"this is not a tar archive at all, just text".repeat(20),
        ),
    ];
    for (what, tar) in bad {
        let r = f.unpack("/workspace/target", tar).await;
        r.error(400, "ValidationError");
        let _ = what;
    }
    f.sh("rm /workspace/target/tmp-link").await;
    assert_nowhere(&f, &tag).await;

    // An archive is of a directory that exists.
    f.archive("/workspace/up/run.sh")
        .await
        .error(409, "ValidationError");
    f.archive("/workspace/nothing")
        .await
        .error(404, "FileNotFoundError");
}

#[tokio::test]
async fn an_archive_of_files_changing_meanwhile_is_well_formed() {
    let server = server().start().await;
    let (sid, _) = server.create_rest().await;
    let f = Files::new(&server, &sid);
    // `a.bin` keeps growing and shrinking while archives of its directory
    // are made; the entry after it must always read back as it is.
    f.write_parents("/workspace/d/z-after.txt", b"after the changing file")
        .await
        .ok(201);
    f.write("/workspace/d/a.bin", b"").await.ok(201);
    let changer = {
        let url = f.url("exec", None, &[]);
        let http = server.http.clone();
        tokio::spawn(async move {
            let cmd = "cd /workspace && while [ ! -e stop ]; do \
                       head -c 1000000 /dev/zero > d/a.bin; : > d/a.bin; done";
            http.post(url)
                .json(&json!({"cmd": cmd, "timeout": 120}))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    let (mut sizes, mut n) = (BTreeSet::new(), 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while (n < 40 || sizes.len() < 3) && n < 400 && tokio::time::Instant::now() < deadline {
        n += 1;
        let r = f.archive("/workspace/d").await;
        assert!(r.complete && r.status == 200, "{}", r.text());
        let got = untar(&r.bytes);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            vec!["a.bin", "z-after.txt"],
            "a broken archive"
        );
        assert_eq!(got["z-after.txt"].data, b"after the changing file");
        let a = &got["a.bin"].data;
        assert!(a.iter().all(|b| *b == 0), "a.bin holds what it never held");
        sizes.insert(a.len());
    }
    f.write("/workspace/stop", b"").await.ok(201);
    let done = tokio::time::timeout(WAIT, changer).await.unwrap().unwrap();
    assert_eq!(done["exitCode"], 0, "{done}");
    assert!(
        sizes.len() >= 2,
        "the file never changed under an archive: {sizes:?}"
    );
}

// ---------------------------------------------------------------------------
// Watching

/// Reads `fs_event`s until one for `path` of `kind`; returns all read.
async fn until_event(ws: &mut Ws, sid: &str, path: &str, kind: &str) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    loop {
        let v = ws.expect("fs_event").await;
        assert_eq!(v["sessionId"], sid, "{v}");
        let p = v["path"].as_str().unwrap().to_string();
        let k = v["kind"].as_str().unwrap().to_string();
        assert!(
            !p.contains(".studio-"),
            "a temporary file was reported: {v}"
        );
        assert!(v.get("overflow").is_none(), "{v}");
        let done = p == path && k == kind;
        seen.push((p, k));
        if done {
            return seen;
        }
    }
}

fn kinds_of<'e>(events: &'e [(String, String)], path: &str) -> Vec<&'e str> {
    events
        .iter()
        .filter(|(p, _)| p == path)
        .map(|(_, k)| k.as_str())
        .collect()
}

#[tokio::test]
async fn watches_report_changes_by_commands_and_by_the_api() {
    let server = server().start().await;
    let (sid, _) = server.create_rest().await;
    let f = Files::new(&server, &sid);
    f.mkdir("/workspace/w", false).await.ok(201);
    f.mkdir("/workspace/w2", false).await.ok(201);
    let mut ws = server.ws().await;
    ws.send(json!({"type": "watch", "sessionId": sid, "path": "/workspace/w", "recursive": false}))
        .await;
    let w = ws.expect("watching").await;
    assert_eq!(w["sessionId"], sid.as_str());
    assert_eq!(w["path"], "/workspace/w");
    assert_eq!(w["directories"], 1);
    assert_eq!(w["truncated"], false);

    // By a command.
    f.sh("echo one > /workspace/w/cmd.txt").await;
    until_event(&mut ws, &sid, "/workspace/w/cmd.txt", "created").await;
    f.sh("echo two >> /workspace/w/cmd.txt").await;
    until_event(&mut ws, &sid, "/workspace/w/cmd.txt", "modified").await;
    f.sh("mv /workspace/w/cmd.txt /workspace/w/cmd2.txt").await;
    let ev = until_event(&mut ws, &sid, "/workspace/w/cmd2.txt", "renamed").await;
    assert!(
        kinds_of(&ev, "/workspace/w/cmd.txt").contains(&"renamed"),
        "{ev:?}"
    );
    f.sh("rm /workspace/w/cmd2.txt").await;
    until_event(&mut ws, &sid, "/workspace/w/cmd2.txt", "removed").await;
    f.sh("mkdir /workspace/w/cmd-dir").await;
    until_event(&mut ws, &sid, "/workspace/w/cmd-dir", "created").await;

    // By the files API: a new file is one `created`, a replace one
    // `modified`; the temporary file never shows. A command after each
    // marks where its events end.
    f.write("/workspace/w/api.txt", b"v1").await.ok(201);
    f.sh("touch /workspace/w/mark1").await;
    let ev = until_event(&mut ws, &sid, "/workspace/w/mark1", "created").await;
    assert_eq!(
        kinds_of(&ev, "/workspace/w/api.txt"),
        vec!["created"],
        "{ev:?}"
    );
    assert_eq!(ev.len(), 2, "{ev:?}");
    f.write("/workspace/w/api.txt", &random_bytes(256 * 1024))
        .await
        .ok(200);
    f.sh("touch /workspace/w/mark2").await;
    let ev = until_event(&mut ws, &sid, "/workspace/w/mark2", "created").await;
    assert_eq!(
        kinds_of(&ev, "/workspace/w/api.txt"),
        vec!["modified"],
        "{ev:?}"
    );
    assert_eq!(ev.len(), 2, "{ev:?}");
    f.mv("/workspace/w/api.txt", "/workspace/w/api2.txt")
        .await
        .ok(200);
    let ev = until_event(&mut ws, &sid, "/workspace/w/api2.txt", "renamed").await;
    assert_eq!(
        kinds_of(&ev, "/workspace/w/api.txt"),
        vec!["renamed"],
        "{ev:?}"
    );
    f.remove("/workspace/w/api2.txt", false).await.ok(200);
    until_event(&mut ws, &sid, "/workspace/w/api2.txt", "removed").await;
    f.mkdir("/workspace/w/api-dir", false).await.ok(201);
    until_event(&mut ws, &sid, "/workspace/w/api-dir", "created").await;
    f.remove("/workspace/w/api-dir", false).await.ok(200);
    until_event(&mut ws, &sid, "/workspace/w/api-dir", "removed").await;
    // Moved in from another place (copied there): one `created`.
    f.write("/tmp/elsewhere.txt", b"from tmp").await.ok(201);
    f.mv("/tmp/elsewhere.txt", "/workspace/w/moved-in.txt")
        .await
        .ok(200);
    f.sh("touch /workspace/w/mark3").await;
    let ev = until_event(&mut ws, &sid, "/workspace/w/mark3", "created").await;
    assert_eq!(
        kinds_of(&ev, "/workspace/w/moved-in.txt"),
        vec!["created"],
        "{ev:?}"
    );
    // And out to another place: `removed` here.
    f.mv("/workspace/w/moved-in.txt", "/tmp/moved-out.txt")
        .await
        .ok(200);
    until_event(&mut ws, &sid, "/workspace/w/moved-in.txt", "removed").await;
    // Unpacked into it.
    f.unpack("/workspace/w", tar_with_file("from-tar.txt"))
        .await
        .ok(200);
    until_event(&mut ws, &sid, "/workspace/w/from-tar.txt", "created").await;

    // The same path twice on one connection is an error; so are paths
    // outside, and missing ones.
    ws.send(json!({"type": "watch", "sessionId": sid, "path": "/workspace/w"}))
        .await;
    let e = ws.expect("error").await;
    assert_eq!(e["error"], "ValidationError", "{e}");
    assert_eq!(e["path"], "/workspace/w", "{e}");
    for (p, name) in [
        ("/etc", "ValidationError"),
        ("/workspace/../etc", "ValidationError"),
        ("relative", "ValidationError"),
        ("/workspace/missing", "FileNotFoundError"),
    ] {
        ws.send(json!({"type": "watch", "sessionId": sid, "path": p}))
            .await;
        let e = ws.expect("error").await;
        assert_eq!(e["error"], name, "{p}: {e}");
        assert_eq!(e["sessionId"], sid.as_str(), "{e}");
    }
    f.sh("ln -s / /workspace/w-root").await;
    ws.send(json!({"type": "watch", "sessionId": sid, "path": "/workspace/w-root/etc"}))
        .await;
    assert_eq!(ws.expect("error").await["error"], "ValidationError");

    // Unwatched: nothing more about it. A second watch's event marks the point.
    ws.send(json!({"type": "unwatch", "sessionId": sid, "path": "/workspace/w"}))
        .await;
    let u = ws.expect("unwatched").await;
    assert_eq!(u["path"], "/workspace/w");
    ws.send(json!({"type": "watch", "sessionId": sid, "path": "/workspace/w2"}))
        .await;
    ws.expect("watching").await;
    f.sh("touch /workspace/w/after-unwatch && touch /workspace/w2/mark")
        .await;
    let ev = until_event(&mut ws, &sid, "/workspace/w2/mark", "created").await;
    assert_eq!(ev.len(), 1, "{ev:?}");
    ws.send(json!({"type": "unwatch", "sessionId": sid, "path": "/workspace/w"}))
        .await;
    assert_eq!(ws.expect("error").await["error"], "ValidationError");
}

#[tokio::test]
async fn a_recursive_watch_sees_new_directories() {
    let server = server().start().await;
    let (sid, _) = server.create_rest().await;
    let f = Files::new(&server, &sid);
    f.mkdir("/workspace/r/pre", true).await.ok(201);
    let mut ws = server.ws().await;
    ws.send(json!({"type": "watch", "sessionId": sid, "path": "/workspace/r", "recursive": true}))
        .await;
    assert_eq!(ws.expect("watching").await["directories"], 2);
    f.sh("touch /workspace/r/pre/a").await;
    until_event(&mut ws, &sid, "/workspace/r/pre/a", "created").await;

    // A directory made after the watch began, then a file in it.
    f.sh("mkdir /workspace/r/sub").await;
    until_event(&mut ws, &sid, "/workspace/r/sub", "created").await;
    f.sh("echo x > /workspace/r/sub/f").await;
    until_event(&mut ws, &sid, "/workspace/r/sub/f", "created").await;
    f.write("/workspace/r/sub/api.txt", b"api").await.ok(201);
    until_event(&mut ws, &sid, "/workspace/r/sub/api.txt", "created").await;

    // Directories and files made at once, before the watch could know.
    f.sh("mkdir -p /workspace/r/x/y && echo 1 > /workspace/r/x/y/z")
        .await;
    until_event(&mut ws, &sid, "/workspace/r/x/y/z", "created").await;
    f.sh("echo 2 > /workspace/r/x/y/z2").await;
    until_event(&mut ws, &sid, "/workspace/r/x/y/z2", "created").await;
    let mut t = tar::Builder::new(Vec::new());
    add_dir(&mut t, "n/");
    add_dir(&mut t, "n/m/");
    add_file(&mut t, "n/m/deep.txt", b"deep", 0o644);
    f.unpack("/workspace/r/arc", t.into_inner().unwrap())
        .await
        .ok(200);
    until_event(&mut ws, &sid, "/workspace/r/arc/n/m/deep.txt", "created").await;
    f.write("/workspace/r/arc/n/m/later.txt", b"later")
        .await
        .ok(201);
    until_event(&mut ws, &sid, "/workspace/r/arc/n/m/later.txt", "created").await;
    // A directory moved in, with what it holds.
    f.sh("mkdir -p /workspace/elsewhere/inner && mv /workspace/elsewhere /workspace/r/moved")
        .await;
    until_event(&mut ws, &sid, "/workspace/r/moved", "renamed").await;
    f.sh("touch /workspace/r/moved/inner/new").await;
    until_event(&mut ws, &sid, "/workspace/r/moved/inner/new", "created").await;
    f.remove("/workspace/r/sub", true).await.ok(200);
    until_event(&mut ws, &sid, "/workspace/r/sub", "removed").await;
}

#[tokio::test]
async fn a_watched_file_keeps_being_watched_when_replaced() {
    let server = server().start().await;
    let (sid, _) = server.create_rest().await;
    let f = Files::new(&server, &sid);
    f.write("/workspace/one.txt", b"1").await.ok(201);
    let mut ws = server.ws().await;
    ws.send(json!({"type": "watch", "sessionId": sid, "path": "/workspace/one.txt"}))
        .await;
    assert_eq!(ws.expect("watching").await["directories"], 0);
    f.sh("echo more >> /workspace/one.txt").await;
    until_event(&mut ws, &sid, "/workspace/one.txt", "modified").await;
    f.write("/workspace/one.txt", b"replaced").await.ok(200);
    until_event(&mut ws, &sid, "/workspace/one.txt", "modified").await;
    // Still watched after the replace.
    f.sh("echo again >> /workspace/one.txt").await;
    until_event(&mut ws, &sid, "/workspace/one.txt", "modified").await;
    f.remove("/workspace/one.txt", false).await.ok(200);
    until_event(&mut ws, &sid, "/workspace/one.txt", "removed").await;
}

// ---------------------------------------------------------------------------
// Owners and the container's life

#[tokio::test]
async fn another_owner_is_refused_on_every_files_route() {
    let server = server()
        .args([
            "--api-token",
            A,
            "--api-token",
            B,
            "--rate-limit-auth",
            "off",
        ])
        .start()
        .await;
    let r = server
        .http
        .post(server.url("/api/containers"))
        .header("authorization", format!("Bearer {A}"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let sid = r.json::<Value>().await.unwrap()["sessionId"]
        .as_str()
        .unwrap()
        .to_string();
    let anon = Files::new(&server, &sid);
    let a = anon.as_token(A);
    let b = anon.as_token(B);
    a.write("/workspace/a.txt", b"owned by a").await.ok(201);
    a.mkdir("/workspace/adir", false).await.ok(201);

    for who in [&b, &anon] {
        let (status, name) = if who.token.is_some() {
            (404, "ContainerNotFoundError")
        } else {
            (401, "AuthenticationError")
        };
        who.read("/workspace/a.txt").await.error(status, name);
        who.read_range("/workspace/a.txt", "bytes=0-1")
            .await
            .error(status, name);
        let r = who
            .send(
                "HEAD",
                who.url("files/content", Some("/workspace/a.txt"), &[]),
                &[],
                None,
            )
            .await;
        assert_eq!(r.status, status);
        who.info("/workspace").await.error(status, name);
        who.info_recursive("/workspace").await.error(status, name);
        who.write("/workspace/a.txt", b"b was here")
            .await
            .error(status, name);
        who.write_parents("/workspace/b/new.txt", b"b")
            .await
            .error(status, name);
        who.remove("/workspace/a.txt", false)
            .await
            .error(status, name);
        who.remove("/workspace/adir", true)
            .await
            .error(status, name);
        who.mkdir("/workspace/bdir", true).await.error(status, name);
        who.mv("/workspace/a.txt", "/workspace/stolen.txt")
            .await
            .error(status, name);
        who.archive("/workspace").await.error(status, name);
        who.unpack("/workspace", tar_with_file("from-b"))
            .await
            .error(status, name);
        let r = who
            .send(
                "POST",
                who.url("exec", None, &[]),
                &[("content-type", "application/json")],
                Some(br#"{"cmd":"touch /workspace/by-b"}"#.to_vec()),
            )
            .await;
        r.error(status, name);
    }
    // Nothing B asked for happened.
    assert_eq!(a.read("/workspace/a.txt").await.bytes, b"owned by a");
    assert_eq!(
        names(&a.info("/workspace").await.ok(200)),
        BTreeSet::from(["a.txt".into(), "adir".into()])
    );

    // Nor may B watch it.
    let mut wb = Ws::connect_with(
        &server.ws_url(),
        &[("authorization", &format!("Bearer {B}"))],
    )
    .await;
    wb.send(json!({"type": "watch", "sessionId": sid, "path": "/workspace"}))
        .await;
    let e = wb.expect("error").await;
    assert_eq!(e["error"], "ContainerNotFoundError", "{e}");
    let mut wa = Ws::connect_with(
        &server.ws_url(),
        &[("authorization", &format!("Bearer {A}"))],
    )
    .await;
    wa.send(json!({"type": "watch", "sessionId": sid, "path": "/workspace"}))
        .await;
    wa.expect("watching").await;
    // B's unwatch of A's watch is no unwatch.
    wb.send(json!({"type": "unwatch", "sessionId": sid, "path": "/workspace"}))
        .await;
    assert_eq!(wb.expect("error").await["error"], "ValidationError");
    a.write("/workspace/seen.txt", b"x").await.ok(201);
    until_event(&mut wa, &sid, "/workspace/seen.txt", "created").await;
}

#[tokio::test]
async fn a_stopped_container_is_started_again_by_a_files_call() {
    let server = server().start().await;
    let (sid, cid) = server.create_rest().await;
    let f = Files::new(&server, &sid);
    f.write("/workspace/before.txt", b"x").await.ok(201);
    docker(&["stop", "-t", "1", &cid]);
    assert_eq!(
        docker_inspect("container", &cid).unwrap()["State"]["Running"],
        false
    );
    // The workspace is a tmpfs: it starts empty again, but it answers.
    let dir = f.info("/workspace").await.ok(200);
    assert_eq!(dir["type"], "directory");
    assert_eq!(
        docker_inspect("container", &cid).unwrap()["State"]["Running"],
        true
    );
    let bytes = all_byte_values();
    f.write("/workspace/after.bin", &bytes).await.ok(201);
    assert_eq!(f.read("/workspace/after.bin").await.bytes, bytes);
    assert_eq!(
        owner_and_mode(&f, "/workspace/after.bin").await,
        "1000:1000 644"
    );

    // Each kind of call starts it.
    docker(&["stop", "-t", "1", &cid]);
    f.write("/workspace/again.txt", b"again").await.ok(201);
    docker(&["stop", "-t", "1", &cid]);
    f.read("/workspace/again.txt")
        .await
        .error(404, "FileNotFoundError");
    let (status, info) = server.get(&format!("/api/containers/{sid}")).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["status"], "running", "{info}");
}
