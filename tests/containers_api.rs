//! The REST container API and its error shapes.

mod common;

use common::*;
use serde_json::Value;

fn assert_error(status: u16, body: &Value, want_status: u16, name: &str, needle: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"], name, "{body}");
    assert_eq!(body["statusCode"], want_status, "{body}");
    assert!(body["retryable"].is_boolean(), "{body}");
    let msg = body["message"].as_str().unwrap();
    assert!(
        msg.contains(needle),
        "message {msg:?} should mention {needle:?}"
    );
}

#[tokio::test]
async fn health_reports_docker_and_uptime() {
    let server = Server::start().await;
    let (status, body) = server.get("/api/health").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["docker"], "connected");
    assert!(body["uptime"].is_u64(), "{body}");
}

#[tokio::test]
async fn create_inspect_list_and_delete() {
    let server = Server::start().await;
    let (sid, cid) = server.create_rest().await;

    let (status, info) = server.get(&format!("/api/containers/{sid}")).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["sessionId"], sid.as_str());
    assert_eq!(info["containerId"], cid.as_str());
    assert_eq!(info["status"], "running");
    assert_eq!(info["image"], test_image());

    let (status, list) = server.get("/api/containers").await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sessionId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![sid.as_str()]);

    let (status, body) = server.delete(&format!("/api/containers/{sid}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"], "Container removed successfully");
    assert!(
        docker_inspect("container", &cid).is_none(),
        "container must be gone after DELETE"
    );

    let (status, body) = server.get(&format!("/api/containers/{sid}")).await;
    assert_error(status, &body, 404, "ContainerNotFoundError", &sid);
    let (status, body) = server.delete(&format!("/api/containers/{sid}")).await;
    assert_error(status, &body, 404, "ContainerNotFoundError", &sid);
}

#[tokio::test]
async fn passing_an_existing_session_id_returns_it_instead_of_a_new_one() {
    let server = Server::start().await;
    let (sid, cid) = server.create_rest().await;
    let (status, body) = server
        .post("/api/containers", &format!(r#"{{"sessionId":"{sid}"}}"#))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sessionId"], sid.as_str());
    assert_eq!(body["containerId"], cid.as_str());
    assert_eq!(instance_containers(&server.instance).len(), 1);
    // The same over WebSocket: `create` naming the session joins it.
    let mut ws = server.ws().await;
    ws.send(serde_json::json!({"type": "create", "sessionId": sid}))
        .await;
    let created = ws.expect("container_created").await;
    assert_eq!(created["sessionId"], sid.as_str());
    assert_eq!(created["containerId"], cid.as_str());
    let out = ws.run(&sid, "echo joined-$((5*5))").await;
    assert!(out.contains("joined-25"), "{out:?}");
    assert_eq!(instance_containers(&server.instance).len(), 1);
}

#[tokio::test]
async fn a_rest_create_may_size_the_first_shell() {
    let server = Server::start().await;
    let (status, body) = server
        .post("/api/containers", r#"{"cols": 0, "rows": 30}"#)
        .await;
    assert_error(status, &body, 400, "ValidationError", "cols");
    let (status, body) = server
        .post("/api/containers", r#"{"cols": 132, "rows": 43}"#)
        .await;
    assert_eq!(status, 200, "{body}");
    let sid = body["sessionId"].as_str().unwrap();
    let mut ws = server.ws().await;
    ws.send(serde_json::json!({"type": "attach", "sessionId": sid}))
        .await;
    ws.expect("attached").await;
    let out = ws.run(sid, "stty size").await;
    assert!(out.contains("43 132"), "{out:?}");
}

#[tokio::test]
async fn bad_create_requests_are_validation_errors() {
    let server = Server::builder()
        .arg("--allowed-image")
        .arg("studio-test-*")
        .start()
        .await;
    let cases = [
        // JSON announced, nothing sent: not "all defaults".
        ("", "empty"),
        ("{", "Malformed JSON"),
        ("[1]", "JSON object"),
        (r#"{"image": 5}"#, "image"),
        (r#"{"image": "Not A Valid Ref"}"#, "Not A Valid Ref"),
        (r#"{"image": "node:20-alpine"}"#, "not allowed"),
        (r#"{"workspaceDir": 7}"#, "workspaceDir"),
        (r#"{"workspaceDir": "relative/dir"}"#, "absolute"),
        (r#"{"imgae": "typo"}"#, "imgae"),
        (r#"{"env": {"1BAD": "x"}}"#, "1BAD"),
    ];
    for (body, needle) in cases {
        let (status, resp) = server.post("/api/containers", body).await;
        assert_error(status, &resp, 400, "ValidationError", needle);
    }
    assert!(
        instance_containers(&server.instance).is_empty(),
        "no container for a refused request"
    );
}

#[tokio::test]
async fn a_missing_image_is_a_creation_error_naming_it() {
    let server = Server::start().await;
    let (status, body) = server
        .post("/api/containers", r#"{"image":"studio-no-such-image:v9"}"#)
        .await;
    assert_error(
        status,
        &body,
        500,
        "ContainerCreationError",
        "studio-no-such-image:v9",
    );
    assert_eq!(body["retryable"], false);
    assert!(instance_containers(&server.instance).is_empty());
}

#[tokio::test]
async fn a_missing_image_over_websocket_is_a_creation_error_and_the_socket_stays_usable() {
    let server = Server::start().await;
    let mut ws = server.ws().await;
    ws.send(serde_json::json!({"type": "create", "image": "studio-no-such-image:v9"}))
        .await;
    let err = ws.expect("error").await;
    assert_eq!(err["error"], "ContainerCreationError");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("studio-no-such-image:v9"),
        "{err}"
    );
    ws.send(serde_json::json!({"type": "ping"})).await;
    ws.expect("pong").await;
}

#[tokio::test]
async fn unknown_routes_and_sessions_are_404s_in_the_error_shape() {
    let server = Server::start().await;
    let (status, body) = server
        .get("/api/containers/session-AAAAAAAAAAAAAAAAAAAAAA")
        .await;
    assert_error(
        status,
        &body,
        404,
        "ContainerNotFoundError",
        "session-AAAAAAAAAAAAAAAAAAAAAA",
    );
    let (status, body) = server.get("/api/nothing-here").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["statusCode"], 404);
    // A known path with a method it does not take: 405 in the error shape,
    // with the methods it does take.
    for (method, path) in [
        ("PUT", "/api/containers"),
        ("PATCH", "/api/containers/session-x"),
        ("GET", "/api/preview/configure"),
        ("POST", "/api/health"),
    ] {
        let r = server
            .http
            .request(method.parse().unwrap(), server.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "{method} {path}");
        assert!(r.headers().contains_key("allow"), "{method} {path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_error(405, &body, 405, "ValidationError", method);
    }
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let server = Server::start().await;
    let big = format!(r#"{{"image":"{}"}}"#, "a".repeat(200 * 1024));
    let (status, body) = server.post("/api/containers", &big).await;
    assert_error(status, &body, 413, "MessageTooLarge", "limit");
}

#[tokio::test]
async fn metrics_are_prometheus_text_and_track_sessions() {
    let server = Server::start().await;
    let _ws = server.ws().await;
    server.create_rest().await;
    let r = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = r.text().await.unwrap();
    for line in [
        "studio_sessions 1",
        "studio_docker_up 1",
        "studio_websocket_connections 1",
        "# TYPE studio_sessions gauge",
        "# TYPE studio_tasks gauge",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    // The process figures a soak watches: tasks, memory, open files.
    let value = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    };
    assert!(value("studio_tasks") >= 1);
    assert!(value("process_resident_memory_bytes") > 1 << 20);
    assert!(value("process_open_fds") >= 3);
}

#[tokio::test]
async fn the_openapi_document_describes_every_rest_route() {
    let server = Server::start().await;
    let (status, doc) = server.get("/api/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/health",
        "/api/containers",
        "/api/containers/{sessionId}",
        "/api/preview/configure",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    assert!(doc["paths"]["/api/containers"]["post"].is_object());
    assert!(doc["paths"]["/api/containers/{sessionId}"]["delete"].is_object());
    // Without API tokens no operation needs one (a tester that believed the
    // document sent tokens nobody asked for, and expected 401s that never come).
    assert_eq!(doc["security"], serde_json::json!([]));
    assert!(doc["paths"]["/api/containers"]["get"]["responses"]
        .get("401")
        .is_none());
}

#[tokio::test]
async fn with_api_tokens_the_openapi_document_asks_for_one() {
    let server = Server::builder()
        .args(["--api-token", "openapi-test-token"])
        .start()
        .await;
    let (status, doc) = server.get("/api/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(doc["security"], serde_json::json!([{ "bearer": [] }]));
    assert!(doc["paths"]["/api/containers"]["get"]["responses"]["401"].is_object());
    assert_eq!(
        doc["paths"]["/api/health"]["get"]["security"],
        serde_json::json!([])
    );
}

#[tokio::test]
async fn a_create_whose_client_hangs_up_still_ends_as_a_listed_session() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let server = Server::start().await;
    // The engine's events say when the container exists but is not started
    // yet: the moment a hang-up would cut a create in half.
    // `--since` replays what happened from now on, so no event is missed
    // while the command subscribes.
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        - 1.0;
    let mut events = tokio::process::Command::new("docker")
        .args([
            "events",
            "--since",
            &format!("{since:.3}"),
            "--filter",
            &format!("label=studio.instance={}", server.instance),
            "--filter",
            "event=create",
            "--format",
            "{{.Actor.ID}}",
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut created = BufReader::new(events.stdout.take().unwrap()).lines();
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let body = "{}";
    tcp.write_all(
        format!(
            "POST /api/containers HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            server.addr,
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let cid = tokio::time::timeout(std::time::Duration::from_secs(30), created.next_line())
        .await
        .expect("the container is created")
        .unwrap()
        .unwrap();
    // The case under test: the client is gone before the server answered.
    let mut early = [0u8; 64];
    match tcp.try_read(&mut early) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the server answered before the hang-up ({other:?}): nothing tested"),
    }
    drop(tcp);
    // The create runs to its end: one session, listed, owning that container,
    // and no other container.
    let listed = eventually("the session to be listed", || async {
        let (_, list) = server.get("/api/containers").await;
        let list = list.as_array().cloned().unwrap_or_default();
        (list.len() == 1 && list[0]["status"] == "running").then(|| list[0].clone())
    })
    .await;
    assert_eq!(listed["containerId"], cid.as_str());
    assert_eq!(instance_containers(&server.instance), vec![cid]);
    let sid = listed["sessionId"].as_str().unwrap();
    let (status, _) = server.delete(&format!("/api/containers/{sid}")).await;
    assert_eq!(status, 200);
    assert!(instance_containers(&server.instance).is_empty());
}

/// No body and no JSON content type means "all defaults".
#[tokio::test]
async fn a_create_without_a_body_takes_the_defaults() {
    let server = Server::start().await;
    let r = server
        .http
        .post(server.url("/api/containers"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["image"], test_image().as_str(), "{body}");
}
