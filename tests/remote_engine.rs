//! An engine reached over TCP with TLS client certificates, as a remote
//! engine is: a second `dockerd` on this machine with a TLS listener on
//! loopback (`tests/remote_engine_support`). The server runs against it
//! with `--docker-host tcp://127.0.0.1:PORT --docker-tls-dir DIR` (or
//! `https://`, or `DOCKER_CERT_PATH`), and `--egress unfiltered`, as
//! against any engine whose bridge it cannot filter.

mod common;
mod remote_engine_support;

use std::path::Path;

use common::*;
use remote_engine_support::RemoteEngine;
use serde_json::json;

/// A test server against `engine` with the client files in `tls`.
fn against(engine: &str, tls: &Path) -> ServerBuilder {
    Server::builder().args([
        "--docker-host",
        engine,
        "--docker-tls-dir",
        &tls.display().to_string(),
        "--egress",
        "unfiltered",
    ])
}

#[tokio::test]
async fn sessions_live_on_the_remote_engine_over_tls() {
    let engine = RemoteEngine::start();
    let server = against(&engine.tcp(), &engine.tls).start().await;
    let (_, health) = server.get("/api/health").await;
    assert_eq!(health["docker"], "connected", "{health}");

    // A session made over REST is a container of the second engine, and
    // of that engine only.
    let (sid, cid) = server.create_rest().await;
    assert_eq!(
        engine.instance_containers(&server.instance),
        vec![cid.clone()],
        "the session's container on the second engine"
    );
    assert!(
        docker_inspect("container", &cid).is_none(),
        "the first engine knows the second's container {cid}"
    );
    assert_eq!(instance_containers(&server.instance), Vec::<String>::new());

    // Its terminal, over the WebSocket, through the engine's TLS stream.
    let mut ws = server.ws().await;
    ws.send(json!({"type": "attach", "sessionId": sid})).await;
    ws.expect("attached").await;
    ws.input(&sid, "echo remote-$((6*7))\n").await;
    ws.read_until(&sid, "remote-42").await;
    // Its hostname is the container's: the shell runs on the second engine.
    let host = ws.run(&sid, "hostname").await;
    assert!(
        cid.starts_with(host.trim()),
        "hostname {host:?}, container {cid}"
    );

    // A command, with its output and exit code.
    let (status, r) = server
        .post(
            &format!("/api/containers/{sid}/exec"),
            &json!({"cmd": "echo out; echo err >&2; exit 7"}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        (&r["exitCode"], &r["stdout"], &r["stderr"]),
        (&json!(7), &json!("out\n"), &json!("err\n")),
        "{r}"
    );
    // Its files, read back as the command wrote them.
    let (status, r) = server
        .post(
            &format!("/api/containers/{sid}/exec"),
            &json!({"cmd": "printf hi > /workspace/f"}).to_string(),
        )
        .await;
    assert_eq!((status, &r["exitCode"]), (200, &json!(0)), "{r}");
    let body = server
        .http
        .get(server.url(&format!(
            "/api/containers/{sid}/files/content?path=/workspace/f"
        )))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "hi");

    // An app in it: its port is seen opening, and the preview reaches it
    // (the engine is on this machine, and shown to be).
    ws.input(&sid, "preview-upstream 8080 &\n").await;
    let opened = ws.expect("port_opened").await;
    assert_eq!(opened["port"], 8080, "{opened}");
    let (status, r) = server
        .post(
            "/api/preview/configure",
            &json!({"sessionId": sid, "port": 8080}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    let r = server
        .http
        .get(server.url(&format!("/preview/{sid}/small")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Removed: gone from the second engine, never on the first.
    let (status, r) = server.delete(&format!("/api/containers/{sid}")).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        engine.instance_containers(&server.instance),
        Vec::<String>::new()
    );
    let out = engine.docker(&["inspect", &cid]);
    assert!(!out.status.success(), "the container is still there");
    assert_eq!(instance_containers(&server.instance), Vec::<String>::new());
    ws.close().await;
}

/// What a user sees: `/api/health` says the engine is disconnected, and a
/// create is refused in the documented error shape, retryable.
async fn refused(server: &Server) {
    let (status, health) = server.get("/api/health").await;
    assert_eq!(status, 200);
    assert_eq!(
        (&health["status"], &health["docker"]),
        (&json!("degraded"), &json!("disconnected")),
        "{health}"
    );
    let (status, err) = server.post("/api/containers", "{}").await;
    assert_eq!(status, 503, "{err}");
    assert_eq!(
        (&err["error"], &err["retryable"], &err["statusCode"]),
        (&json!("DockerDaemonError"), &json!(true), &json!(503)),
        "{err}"
    );
    assert!(err["message"].is_string(), "{err}");
}

/// What the server logs at start about the engine (the operator's side of
/// it): the line that says whether it answered, and if not, why.
async fn startup_log(args: &[&str]) -> String {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let state = std::env::temp_dir().join(unique("remote-state"));
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_claude-studio"))
        .args(["--listen", "127.0.0.1:0", "--warm-pool", "0"])
        .args(["--instance", &unique("t")])
        .arg("--state-dir")
        .arg(&state)
        .args(args)
        .env("RUST_LOG", "claude_studio=info")
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CERT_PATH")
        .env_remove("DOCKER_TLS_VERIFY")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("Docker engine") {
                return line;
            }
        }
        panic!("the server ended without a word about the engine");
    })
    .await
    .expect("the server said nothing about the engine");
    let _ = child.kill().await;
    let _ = std::fs::remove_dir_all(state);
    line
}

#[tokio::test]
async fn a_client_the_engine_does_not_trust_is_told_why() {
    let engine = RemoteEngine::start();
    // The same engine with the right files answers (so what follows is
    // about the certificates), here through DOCKER_CERT_PATH and https://.
    let good = Server::builder()
        .args(["--docker-host", &engine.https(), "--egress", "unfiltered"])
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", &engine.tls.display().to_string())
        .start()
        .await;
    let (_, health) = good.get("/api/health").await;
    assert_eq!(health["docker"], "connected", "{health}");

    let cases = [
        (
            "a client certificate of another CA, which the engine refuses",
            Some(&engine.foreign_client),
            "BadCertificate",
        ),
        (
            "a CA that did not sign the engine's certificate, so we refuse the engine",
            Some(&engine.foreign_ca),
            "UnknownIssuer",
        ),
        (
            "no certificate at all, over tcp://, to an engine that wants TLS",
            None,
            "wants TLS",
        ),
    ];
    for (what, tls, why) in cases {
        let mut args = vec!["--docker-host".to_string(), engine.tcp()];
        args.extend(["--egress".into(), "unfiltered".into()]);
        if let Some(dir) = tls {
            args.extend(["--docker-tls-dir".into(), dir.display().to_string()]);
        }
        let server = Server::builder().args(args.iter().cloned()).start().await;
        refused(&server).await;
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let line = startup_log(&args).await;
        assert!(
            line.contains("Docker engine unreachable") && line.contains(why),
            "{what}: {line}"
        );
    }

    // https:// with no certificates: start-up says what is missing.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_claude-studio"))
        .args(["--listen", "127.0.0.1:0", "--egress", "unfiltered"])
        .args(["--docker-host", &engine.https()])
        .env_remove("DOCKER_CERT_PATH")
        .env_remove("DOCKER_TLS_VERIFY")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("--docker-tls-dir"), "{stderr}");
}

/// An engine whose process ids are not this machine's (as on another
/// machine; here a second engine in PID and mount namespaces of its own):
/// terminals and commands work through the engine, while what is reached
/// through a container's processes (files, the preview) is refused rather
/// than taken from whichever process of this machine has the id the engine
/// reports, whose network may be this machine's own loopback.
#[tokio::test]
async fn an_engine_elsewhere_never_has_this_machine_taken_for_its_containers() {
    use tokio::io::AsyncWriteExt;
    let engine = RemoteEngine::start_apart();
    // A service on this machine's loopback that no preview may reach.
    let local = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = local.local_addr().unwrap().port();
    let reached = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let service = tokio::spawn({
        let reached = std::sync::Arc::clone(&reached);
        async move {
            while let Ok((mut c, _)) = local.accept().await {
                reached.store(true, std::sync::atomic::Ordering::SeqCst);
                let _ = c
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\nconnection: close\r\n\r\nhost-private")
                    .await;
            }
        }
    });

    let server = against(&engine.tcp(), &engine.tls).start().await;
    let (sid, cid) = server.create_rest().await;
    assert_eq!(engine.instance_containers(&server.instance), vec![cid]);
    let mut ws = server.ws().await;
    ws.send(json!({"type": "attach", "sessionId": sid})).await;
    ws.expect("attached").await;
    ws.input(&sid, "echo apart-$((6*7))\n").await;
    ws.read_until(&sid, "apart-42").await;
    let (status, r) = server
        .post(
            &format!("/api/containers/{sid}/exec"),
            &json!({"cmd": "echo hi; exit 3"}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!((&r["exitCode"], &r["stdout"]), (&json!(3), &json!("hi\n")));

    // The preview of the port this machine's service listens on: refused,
    // and the service never reached.
    ws.send(json!({"type": "configure_preview", "sessionId": sid, "port": port}))
        .await;
    ws.expect("preview_configured").await;
    let r = server
        .http
        .get(server.url(&format!("/preview/{sid}/")))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    assert!(
        !body.contains("host-private") && !reached.load(std::sync::atomic::Ordering::SeqCst),
        "the preview reached this machine's loopback: {status} {body}"
    );
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("not on this machine"), "{body}");
    // The files API: refused, saying why.
    let (status, err) = server
        .get(&format!("/api/containers/{sid}/files?path=/workspace"))
        .await;
    assert_eq!(status, 503, "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not on this machine"),
        "{err}"
    );

    service.abort();
    ws.close().await;
}
