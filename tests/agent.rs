//! What an agent drives from code besides commands and files: ports that
//! open and close (noticed by the server, nothing added to the container),
//! and the session's event log, replayed after a reconnect and read over
//! REST with long polls. Ends with a whole agent's run, every step from code.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

async fn run(server: &Server, sid: &str, cmd: &str) -> Value {
    let (status, v) = server
        .post(
            &format!("/api/containers/{sid}/exec"),
            &json!({ "cmd": cmd }).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    v
}

/// Starts `cmd` in the background over the WebSocket (it keeps running).
/// Its `exec_started` is not waited for: a port it opens may be reported
/// before it.
async fn start(ws: &mut Ws, sid: &str, id: &str, cmd: &str) {
    ws.send(json!({"type": "exec", "sessionId": sid, "execId": id, "cmd": cmd}))
        .await;
}

/// The next message of `kind` about `port`.
async fn port_event(ws: &mut Ws, kind: &str, port: u16) -> Value {
    loop {
        let m = ws.expect(kind).await;
        if m["port"] == port {
            return m;
        }
    }
}

async fn events(server: &Server, sid: &str, query: &str) -> Value {
    let (status, v) = server
        .get(&format!("/api/containers/{sid}/events?{query}"))
        .await;
    assert_eq!(status, 200, "{v}");
    v
}

#[tokio::test]
async fn ports_opening_and_closing_are_noticed() {
    let server = Server::start().await;
    let mut ws = server.ws().await;
    let (sid, _) = ws.create(json!({})).await;
    // One server on every address, one on loopback only.
    start(&mut ws, &sid, "any", "exec nc -ll -p 8080 -e cat").await;
    let opened = port_event(&mut ws, "port_opened", 8080).await;
    assert_eq!(opened["sessionId"], sid.as_str());
    let url = opened["previewUrl"].as_str().unwrap();
    assert!(
        url.starts_with(&format!(
            "http://8080-{sid}.localhost:{}/",
            server.addr.port()
        )),
        "{url}"
    );
    assert!(opened["seq"].as_u64().is_some());
    start(&mut ws, &sid, "local", "exec httpd -f -p 127.0.0.1:8081").await;
    port_event(&mut ws, "port_opened", 8081).await;
    let (_, info) = server.get(&format!("/api/containers/{sid}")).await;
    assert_eq!(info["ports"], json!([8080, 8081]), "{info}");
    // The first port to open became the preview's.
    assert_eq!(info["previewPort"], 8080, "{info}");
    ws.send(json!({"type": "exec_kill", "sessionId": sid, "execId": "local"}))
        .await;
    let closed = port_event(&mut ws, "port_closed", 8081).await;
    assert_eq!(closed["sessionId"], sid.as_str());
    let (_, info) = server.get(&format!("/api/containers/{sid}")).await;
    assert_eq!(info["ports"], json!([8080]));
    // Ports opened by the terminal count too.
    ws.input(&sid, "httpd -p 9090\n").await;
    port_event(&mut ws, "port_opened", 9090).await;
}

#[tokio::test]
async fn a_port_is_reported_quickly() {
    let server = Server::start().await;
    let mut ws = server.ws().await;
    let (sid, _) = ws.create(json!({})).await;
    // From asking for the server to hearing of its port.
    let t = Instant::now();
    start(&mut ws, &sid, "srv", "exec nc -ll -p 7000 -e cat").await;
    port_event(&mut ws, "port_opened", 7000).await;
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

#[tokio::test]
async fn events_are_replayed_after_a_reconnect_and_read_over_rest() {
    let server = Server::start().await;
    let (sid, _) = server.create_rest().await;
    // The log starts with the session's creation.
    let first = events(&server, &sid, "since=0").await;
    let list = first["events"].as_array().unwrap();
    assert_eq!(list[0]["type"], "lifecycle", "{first}");
    assert_eq!(list[0]["state"], "created");
    let mark = first["next"].as_u64().unwrap();
    assert_eq!(mark, list.last().unwrap()["seq"].as_u64().unwrap());
    // Things happen while no one is connected.
    let (status, _) = server
        .post(
            "/api/preview/configure",
            &json!({"sessionId": sid, "port": 3000}).to_string(),
        )
        .await;
    assert_eq!(status, 200);
    let mark = events(&server, &sid, &format!("since={mark}")).await["next"]
        .as_u64()
        .unwrap();
    let r = run(&server, &sid, "echo gone; exit 5").await;
    let exec_id = r["execId"].as_str().unwrap().to_string();
    let console = json!({"level": "error", "args": ["Uncaught boom"], "url": "http://app/", "kind": "uncaught"});
    let resp = server
        .http
        .post(server.url(&format!("/preview/{sid}/__studio/console")))
        .json(&console)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    // REST: only what came after the mark, in order, with increasing seq.
    let later = events(&server, &sid, &format!("since={mark}")).await;
    let list = later["events"].as_array().unwrap();
    let kinds: Vec<&str> = list.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["exec_exit", "console"], "{later}");
    assert_eq!(list[0]["execId"], exec_id.as_str());
    assert_eq!(list[0]["code"], 5);
    assert_eq!(list[1]["args"], json!(["Uncaught boom"]));
    assert_eq!(list[1]["kind"], "uncaught");
    assert!(list[0]["seq"].as_u64() < list[1]["seq"].as_u64());
    assert!(list[0]["seq"].as_u64().unwrap() > mark);
    let next = later["next"].as_u64().unwrap();
    assert_eq!(next, list[1]["seq"].as_u64().unwrap());
    // A WebSocket attaching with `since` gets the same events, then live ones.
    let mut ws = server.ws().await;
    ws.send(json!({"type": "attach", "sessionId": sid, "since": mark}))
        .await;
    ws.expect("attached").await;
    let replayed = ws.expect("exec_exit").await;
    assert_eq!(replayed, list[0]);
    let replayed = ws.expect("console").await;
    assert_eq!(replayed, list[1]);
    run(&server, &sid, "exit 6").await;
    let live = ws.expect("exec_exit").await;
    assert_eq!(live["code"], 6);
    assert_eq!(
        live["seq"].as_u64().unwrap(),
        next + 1,
        "nothing lost or repeated"
    );
    // Nothing new: an empty list, and the same mark back.
    let now = events(&server, &sid, &format!("since={}", next + 1)).await;
    assert_eq!(now["events"], json!([]));
    assert_eq!(now["next"].as_u64(), Some(next + 1));
    // A long poll returns as soon as something happens.
    let poll = {
        let server = &server;
        let sid = sid.clone();
        async move {
            let t = Instant::now();
            let v = events(server, &sid, &format!("since={}&wait=20", next + 1)).await;
            (v, t.elapsed())
        }
    };
    let trigger = async {
        // Let the poll start waiting first: it is answered by the event either way.
        tokio::time::sleep(Duration::from_millis(300)).await;
        run(&server, &sid, "exit 9").await;
    };
    let ((polled, took), _) = tokio::join!(poll, trigger);
    assert_eq!(polled["events"][0]["code"], 9, "{polled}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    // A long poll with nothing to say ends at its wait.
    let t = Instant::now();
    let last = polled["next"].as_u64().unwrap();
    let empty = events(&server, &sid, &format!("since={last}&wait=0.5")).await;
    assert_eq!(empty["events"], json!([]));
    assert!(t.elapsed() >= Duration::from_millis(450));
    for bad in ["since=x", "wait=-1", "wait=abc", "other=1"] {
        let (status, v) = server
            .get(&format!("/api/containers/{sid}/events?{bad}"))
            .await;
        assert_eq!(
            (status, v["error"].as_str()),
            (400, Some("ValidationError")),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn another_owners_token_is_refused_everywhere() {
    const A: &str = "token-agent-alpha-01";
    const B: &str = "token-agent-bravo-02";
    let server = Server::builder()
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
    let as_ = |token: &str, method: reqwest::Method, path: String| {
        server
            .http
            .request(method, server.url(&path))
            .bearer_auth(token)
    };
    let made: Value = as_(A, reqwest::Method::POST, "/api/containers".into())
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sid = made["sessionId"].as_str().unwrap().to_string();
    // A command of the owner's, left running (its stream is dropped).
    let started = as_(
        A,
        reqwest::Method::POST,
        format!("/api/containers/{sid}/exec"),
    )
    .json(&json!({"cmd": "exec sleep 300", "execId": "mine", "timeout": 60}))
    .header("accept", "application/x-ndjson")
    .send()
    .await
    .unwrap();
    assert_eq!(started.status(), 200);
    drop(started);
    use reqwest::Method as M;
    let routes = [
        (M::GET, format!("/api/containers/{sid}/exec")),
        (M::POST, format!("/api/containers/{sid}/exec")),
        (M::GET, format!("/api/containers/{sid}/exec/mine")),
        (M::DELETE, format!("/api/containers/{sid}/exec/mine")),
        (M::POST, format!("/api/containers/{sid}/exec/mine/input")),
        (
            M::GET,
            format!("/api/containers/{sid}/files?path=/workspace"),
        ),
        (
            M::DELETE,
            format!("/api/containers/{sid}/files?path=/workspace/x"),
        ),
        (
            M::GET,
            format!("/api/containers/{sid}/files/content?path=/workspace/x"),
        ),
        (
            M::PUT,
            format!("/api/containers/{sid}/files/content?path=/workspace/x"),
        ),
        (
            M::POST,
            format!("/api/containers/{sid}/files/mkdir?path=/workspace/d"),
        ),
        (M::POST, format!("/api/containers/{sid}/files/move")),
        (
            M::GET,
            format!("/api/containers/{sid}/files/archive?path=/workspace"),
        ),
        (
            M::PUT,
            format!("/api/containers/{sid}/files/archive?path=/workspace"),
        ),
        (M::GET, format!("/api/containers/{sid}/events?since=0")),
    ];
    for (method, path) in routes {
        let resp = as_(B, method.clone(), path.clone())
            .header("content-type", "application/json")
            .body(
                json!({"cmd": "true", "data": "x", "from": "/workspace/a", "to": "/workspace/b"})
                    .to_string(),
            )
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 404, "{method} {path}: {body}");
        assert_eq!(body["error"], "ContainerNotFoundError", "{method} {path}");
        let resp = server
            .http
            .request(method.clone(), server.url(&path))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{method} {path} without a token");
    }
    // Over the WebSocket too: exec, watch and attach with since.
    let mut ws = Ws::connect_with(
        &server.ws_url(),
        &[("authorization", &format!("Bearer {B}"))],
    )
    .await;
    for msg in [
        json!({"type": "exec", "sessionId": sid, "cmd": "true"}),
        json!({"type": "exec_kill", "sessionId": sid, "execId": "mine"}),
        json!({"type": "exec_input", "sessionId": sid, "execId": "mine", "data": "x"}),
        json!({"type": "watch", "sessionId": sid, "path": "/workspace"}),
        json!({"type": "attach", "sessionId": sid, "since": 0}),
    ] {
        ws.send(msg.clone()).await;
        let err = ws.expect("error").await;
        assert_eq!(err["error"], "ContainerNotFoundError", "{msg} -> {err}");
    }
    // The owner's command was never touched.
    let (_, v) = {
        let resp = as_(A, M::GET, format!("/api/containers/{sid}/exec/mine"))
            .send()
            .await
            .unwrap();
        (resp.status(), resp.json::<Value>().await.unwrap())
    };
    assert_eq!(v["running"], true, "{v}");
}

/// An agent's whole run, from code: create a session, write a project,
/// run its install and tests with exact exit codes, start its server and
/// learn the port from an event, read what the page's console said (even
/// though the agent was not connected when it said it), and fetch results.
#[tokio::test]
async fn an_agent_drives_a_workspace_from_code() {
    let server = Server::start().await;
    let (sid, _) = server.create_rest().await;
    let put = |path: &str, body: &'static str| {
        server
            .http
            .put(server.url(&format!(
                "/api/containers/{sid}/files/content?path={path}&parents=true"
            )))
            .body(body)
            .send()
    };
    // The project: an "install" step, a test that fails then passes, a server.
    for (path, body) in [
        ("/workspace/app/install.sh", "mkdir -p deps && echo lib > deps/lib.txt && echo installed\n"),
        ("/workspace/app/test.sh", "[ -f deps/lib.txt ] || { echo 'missing deps' >&2; exit 1; }\ngrep -q fixed src.txt || { echo 'FAIL: not fixed' >&2; exit 2; }\necho 'all tests passed'\n"),
        ("/workspace/app/src.txt", "broken\n"),
        ("/workspace/app/www/index.html", "<h1>app</h1>\n"),
    ] {
        let r = put(path, body).await.unwrap();
        assert_eq!(r.status(), 201, "{path}");
    }
    let (srv, s) = (&server, &sid);
    let exec = |cmd: &str| {
        let body = json!({"cmd": cmd, "cwd": "/workspace/app"}).to_string();
        async move {
            let (status, v) = srv.post(&format!("/api/containers/{s}/exec"), &body).await;
            assert_eq!(status, 200, "{v}");
            v
        }
    };
    let r = exec("sh test.sh").await;
    assert_eq!(
        (r["exitCode"].as_i64(), r["stderr"].as_str()),
        (Some(1), Some("missing deps\n"))
    );
    let r = exec("sh install.sh").await;
    assert_eq!(
        (r["exitCode"].as_i64(), r["stdout"].as_str()),
        (Some(0), Some("installed\n"))
    );
    let r = exec("sh test.sh").await;
    assert_eq!(
        (r["exitCode"].as_i64(), r["stderr"].as_str()),
        (Some(2), Some("FAIL: not fixed\n"))
    );
    assert_eq!(
        put("/workspace/app/src.txt", "fixed\n")
            .await
            .unwrap()
            .status(),
        200
    );
    let r = exec("sh test.sh").await;
    assert_eq!(
        (r["exitCode"].as_i64(), r["stdout"].as_str()),
        (Some(0), Some("all tests passed\n"))
    );
    // The dev server, started in the background; its port comes as an event.
    let mark = events(&server, &sid, "since=0").await["next"]
        .as_u64()
        .unwrap();
    let resp = server
        .http
        .post(server.url(&format!("/api/containers/{sid}/exec")))
        .header("accept", "application/x-ndjson")
        .json(&json!({"cmd": "exec httpd -f -p 3000 -h www", "cwd": "/workspace/app", "execId": "dev"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut since = mark;
    let port = loop {
        let got = events(&server, &sid, &format!("since={since}&wait=20")).await;
        since = got["next"].as_u64().unwrap();
        if let Some(e) = got["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["type"] == "port_opened")
        {
            break e["port"].as_u64().unwrap();
        }
    };
    assert_eq!(port, 3000);
    // The preview took that port by itself.
    let page = server
        .http
        .get(server.url(&format!("/preview/{sid}/")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("<h1>app</h1>"), "{html}");
    // The page's console said something while the agent was away (the
    // injected script's report, as a browser sends it).
    let report = json!({"level": "error", "args": ["TypeError: x is undefined"], "url": format!("http://localhost/preview/{sid}/")});
    let r = server
        .http
        .post(server.url(&format!("/preview/{sid}/__studio/console")))
        .json(&report)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // The agent comes back and reads it.
    let got = events(&server, &sid, &format!("since={since}")).await;
    let console: Vec<&Value> = got["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "console")
        .collect();
    assert_eq!(console.len(), 1, "{got}");
    assert_eq!(console[0]["args"], json!(["TypeError: x is undefined"]));
    // Results fetched as files.
    let r = exec("sh test.sh > report.txt").await;
    assert_eq!(r["exitCode"], 0);
    let body = server
        .http
        .get(server.url(&format!(
            "/api/containers/{sid}/files/content?path=/workspace/app/report.txt"
        )))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "all tests passed\n");
    let (status, _) = server
        .delete(&format!("/api/containers/{sid}/exec/dev"))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_removed_session_says_so_to_its_clients() {
    let server = Server::start().await;
    let mut ws = server.ws().await;
    let (sid, _) = ws.create(json!({})).await;
    let (status, _) = server.delete(&format!("/api/containers/{sid}")).await;
    assert_eq!(status, 200);
    // The event first (a client learns what happened), then the
    // `reconnect`, which names the session it is about.
    let gone = ws.expect("lifecycle").await;
    assert_eq!(
        (gone["state"].as_str(), gone["sessionId"].as_str()),
        (Some("removed"), Some(sid.as_str()))
    );
    let reconnect = ws.expect("reconnect").await;
    assert_eq!(reconnect["reason"], "Session removed");
    assert_eq!(reconnect["sessionId"], sid.as_str());
}
