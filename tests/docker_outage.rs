//! The engine going away and coming back, simulated by a proxy in front of
//! the Docker socket that the test can break and restore (no mock engine:
//! every request that gets through reaches the real one).

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

struct ChaosProxy {
    path: PathBuf,
    up: Arc<AtomicBool>,
    /// Accept connections and never answer on them (a hung engine).
    hung: Arc<AtomicBool>,
    /// Cancelled to cut every connection open through the proxy.
    cut: std::sync::Mutex<CancellationToken>,
    stop: CancellationToken,
}

impl ChaosProxy {
    fn start(up: bool) -> Arc<ChaosProxy> {
        let path = std::env::temp_dir().join(format!("{}.sock", unique("chaos")));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let proxy = Arc::new(ChaosProxy {
            path,
            up: Arc::new(AtomicBool::new(up)),
            hung: Arc::new(AtomicBool::new(false)),
            cut: std::sync::Mutex::new(CancellationToken::new()),
            stop: CancellationToken::new(),
        });
        let p = Arc::clone(&proxy);
        tokio::spawn(async move {
            loop {
                let (mut client, _) = tokio::select! {
                    _ = p.stop.cancelled() => return,
                    r = listener.accept() => r.unwrap(),
                };
                if !p.up.load(Ordering::SeqCst) {
                    drop(client); // the engine "refuses"
                    continue;
                }
                let cut = p.cut.lock().unwrap().clone();
                if p.hung.load(Ordering::SeqCst) {
                    // Held open, never answered, until the hang ends.
                    tokio::spawn(async move {
                        cut.cancelled().await;
                        drop(client);
                    });
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(mut engine) = UnixStream::connect("/var/run/docker.sock").await else {
                        return;
                    };
                    tokio::select! {
                        _ = cut.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut client, &mut engine) => {}
                    }
                });
            }
        });
        proxy
    }

    fn host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// Hangs (or un-hangs) the engine: every connection open now is cut, and
    /// new ones are held without an answer while hung.
    fn set_hung(&self, hung: bool) {
        self.hung.store(hung, Ordering::SeqCst);
        let mut cut = self.cut.lock().unwrap();
        cut.cancel();
        *cut = CancellationToken::new();
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            let mut cut = self.cut.lock().unwrap();
            cut.cancel();
            *cut = CancellationToken::new();
        }
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        self.stop.cancel();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A server whose engine is reached through `proxy`.
fn through(proxy: &ChaosProxy) -> ServerBuilder {
    Server::builder().arg("--docker-host").arg(proxy.host())
}

async fn health(server: &Server) -> serde_json::Value {
    let (status, body) = server.get("/api/health").await;
    assert_eq!(status, 200, "health always answers: {body}");
    body
}

#[tokio::test]
async fn the_server_starts_without_docker_and_recovers_when_it_appears() {
    let proxy = ChaosProxy::start(false);
    let server = through(&proxy).start().await;

    let h = health(&server).await;
    assert_eq!(h["docker"], "disconnected");
    assert_eq!(h["status"], "degraded");
    let (status, body) = server.post("/api/containers", "{}").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "DockerDaemonError");
    assert_eq!(body["retryable"], true);
    assert_eq!(body["statusCode"], 503);
    // The engine's socket path and the client library's words stay in the
    // server's log.
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("Docker daemon is not responding"),
        "{message}"
    );
    assert!(
        !message.contains(proxy.host().trim_start_matches("unix://")),
        "{message}"
    );
    assert!(!message.to_ascii_lowercase().contains("hyper"), "{message}");
    let mut ws = server.ws().await;
    ws.send(serde_json::json!({"type": "create"})).await;
    let e = ws.expect("error").await;
    assert_eq!(e["error"], "DockerDaemonError");
    assert_eq!(e["retryable"], true);

    proxy.set_up(true);
    eventually("docker connected", || async {
        (health(&server).await["docker"] == "connected").then_some(())
    })
    .await;
    let (sid, _) = ws.create(serde_json::json!({})).await;
    let out = ws.run(&sid, "echo back-$((4+4))").await;
    assert!(out.contains("back-8"), "{out:?}");
}

#[tokio::test]
async fn an_outage_mid_session_is_reported_and_survived() {
    let proxy = ChaosProxy::start(true);
    let server = through(&proxy).start().await;
    let (sid, cid) = server.create_rest().await;

    proxy.set_up(false);
    assert_eq!(health(&server).await["docker"], "disconnected");
    let (status, body) = server.post("/api/containers", "{}").await;
    assert_eq!(status, 503, "{body}");
    // A delete that cannot reach the engine fails and keeps the session.
    let (status, body) = server.delete(&format!("/api/containers/{sid}")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "DockerDaemonError");

    proxy.set_up(true);
    eventually("docker connected", || async {
        (health(&server).await["docker"] == "connected").then_some(())
    })
    .await;
    let (status, body) = server.get(&format!("/api/containers/{sid}")).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = server.delete(&format!("/api/containers/{sid}")).await;
    assert_eq!(status, 200);
    assert!(docker_inspect("container", &cid).is_none());
}

#[tokio::test]
async fn sessions_are_never_reported_gone_while_the_engine_is_down_at_start() {
    let proxy = ChaosProxy::start(true);
    let instance = unique("outage-restart");
    let mut first = through(&proxy).instance(&instance).start().await;
    let (sid, cid) = first.create_rest().await;
    first.keep_containers();
    first.stop().await;

    // The next start finds the engine down: the session is not known yet,
    // and saying 404 would tell the client, for good, that it is gone.
    proxy.set_up(false);
    let second = through(&proxy).instance(&instance).start().await;
    let (status, body) = second.get(&format!("/api/containers/{sid}")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "DockerDaemonError");
    assert_eq!(body["retryable"], true);
    let (status, body) = second.get("/api/containers").await;
    assert_eq!(status, 503, "{body}");

    // Back: the session is there, with its container.
    proxy.set_up(true);
    let (status, list) = second.get("/api/containers").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list[0]["sessionId"], sid.as_str(), "{list}");
    let (status, info) = second.get(&format!("/api/containers/{sid}")).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["containerId"], cid.as_str());
}

#[tokio::test]
async fn a_hung_engine_is_reported_promptly_and_survived() {
    let proxy = ChaosProxy::start(true);
    let server = through(&proxy).start().await;
    let (sid, _) = server.create_rest().await;

    // The engine accepts connections and never answers.
    proxy.set_hung(true);
    let started = std::time::Instant::now();
    let (status, body) = server.post("/api/containers", "{}").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "DockerDaemonError");
    // Once found unresponsive, later calls fail after one quick ping (5 s)
    // instead of waiting out the request timeout each.
    let again = std::time::Instant::now();
    let (status, body) = server.get("/api/containers").await;
    assert_eq!(status, 503, "{body}");
    // One probe (5 s) at most, far from the 30 s call timeout it replaces.
    assert!(
        again.elapsed() < std::time::Duration::from_secs(20),
        "a second call took {:?} (the first {:?})",
        again.elapsed(),
        again - started
    );
    assert!(health(&server).await["docker"] == "disconnected");

    // The engine answers again: so does the server, without a restart.
    proxy.set_hung(false);
    let (status, list) = server.get("/api/containers").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list[0]["sessionId"], sid.as_str());
}

/// A hung engine holds up only the session whose message needs it: the
/// connection goes on answering its other messages meanwhile.
#[tokio::test]
async fn a_hung_engine_call_does_not_stall_the_connection() {
    let proxy = ChaosProxy::start(true);
    let server = through(&proxy).start().await;
    let mut ws = server.ws().await;
    let (sid, _) = ws.create(serde_json::json!({})).await;
    ws.run(&sid, "true").await;

    proxy.set_hung(true);
    // Resizing asks the engine, which never answers (until the call times out).
    ws.send(serde_json::json!({"type": "resize", "sessionId": sid, "cols": 90, "rows": 30}))
        .await;
    ws.send(serde_json::json!({"type": "ping"})).await;
    let started = std::time::Instant::now();
    loop {
        let m = ws.next().await.expect("connection open");
        match m["type"].as_str() {
            Some("pong") => break,
            // The resize failing first would mean the ping waited behind it.
            Some("error") => panic!("the resize finished before the ping was answered: {m}"),
            _ => {}
        }
    }
    // Behind the resize it would wait for the engine call's 30 s timeout.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "the ping took {:?}",
        started.elapsed()
    );
    proxy.set_hung(false);
}
