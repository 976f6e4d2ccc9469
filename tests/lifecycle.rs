//! Session life cycle: expiry, shutdown, re-adoption after a restart,
//! orphan cleanup, heartbeats and slow clients.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn idle_unattached_sessions_expire_and_leave_no_container() {
    let server = Server::builder()
        .args(["--session-timeout", "2s", "--cleanup-interval", "500ms"])
        .start()
        .await;
    // Attached for the whole test: must outlive the others.
    let mut keeper = server.ws().await;
    let (kept, _) = keeper.create(json!({})).await;

    let (rest_sid, rest_cid) = server.create_rest().await;
    let mut ws = server.ws().await;
    let (ws_sid, ws_cid) = ws.create(json!({})).await;
    ws.close().await;

    // Watched from the engine's side: a GET would count as activity.
    for (sid, cid) in [(&rest_sid, &rest_cid), (&ws_sid, &ws_cid)] {
        eventually("container removal", || async {
            docker_inspect("container", cid).is_none().then_some(())
        })
        .await;
        let (status, body) = server.get(&format!("/api/containers/{sid}")).await;
        assert_eq!(status, 404, "{body}");
    }
    let mut late = server.ws().await;
    late.send(json!({"type": "attach", "sessionId": ws_sid}))
        .await;
    let e = late.expect("error").await;
    assert_eq!(e["error"], "ContainerNotFoundError");

    // The attached session outlived them and still works.
    let out = keeper.run(&kept, "echo alive-$((3*3))").await;
    assert!(out.contains("alive-9"));
}

#[tokio::test]
async fn restart_sends_reconnect_keeps_containers_and_readopts_them() {
    let instance = unique("restart");
    let mut first = Server::builder().instance(&instance).start().await;
    let mut ws = first.ws().await;
    let (sid, cid) = ws.create(json!({})).await;
    let out = ws
        .run(&sid, "echo kept-state > /tmp/marker; cat /tmp/marker")
        .await;
    assert_eq!(out.trim(), "kept-state", "{out:?}");

    first.keep_containers();
    let started = Instant::now();
    let status = first.stop().await;
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown within 10 s"
    );
    let reconnect = ws.expect("reconnect").await;
    assert_eq!(reconnect["reason"], "Server restarting");
    assert!(docker_inspect("container", &cid).unwrap()["State"]["Running"] == true);

    let second = Server::builder().instance(&instance).start().await;
    let info = eventually("re-adoption", || async {
        let (status, body) = second.get(&format!("/api/containers/{sid}")).await;
        (status == 200).then_some(body)
    })
    .await;
    assert_eq!(info["containerId"], cid.as_str());
    assert_eq!(info["image"], test_image());

    let mut ws = second.ws().await;
    ws.send(json!({"type": "attach", "sessionId": sid})).await;
    ws.expect("attached").await;
    let out = ws.run(&sid, "cat /tmp/marker").await;
    assert_eq!(out.trim(), "kept-state", "{out:?}");
}

#[tokio::test]
async fn stopped_leftover_containers_are_removed_at_start() {
    let instance = unique("orphan");
    let leftover = docker(&[
        "create",
        "--label",
        &format!("studio.instance={instance}"),
        "--label",
        "studio.session=session-AAAAAAAAAAAAAAAAAAAAAA",
        &test_image(),
        "true",
    ]);
    let server = Server::builder().instance(&instance).start().await;
    eventually("leftover removal", || async {
        docker_inspect("container", &leftover)
            .is_none()
            .then_some(())
    })
    .await;
    let (_, list) = server.get("/api/containers").await;
    assert_eq!(list, json!([]));
}

/// A running container that carries this server's labels but belongs to no
/// session (appeared after start-up) is removed by the sweep; the server's
/// own sessions, made meanwhile, are not touched.
#[tokio::test]
async fn running_orphans_appearing_later_are_swept_and_sessions_kept() {
    let server = Server::builder()
        .args(["--cleanup-interval", "300ms"])
        .start()
        .await;
    let orphan = docker(&[
        "run",
        "-d",
        "--label",
        &format!("studio.instance={}", server.instance),
        "--label",
        "studio.session=session-BBBBBBBBBBBBBBBBBBBBBB",
        "--network",
        "none",
        "--entrypoint",
        "sleep",
        &test_image(),
        "1000",
    ]);
    let mut ws = server.ws().await;
    let mut sessions = Vec::new();
    // Sessions created while the sweep runs every 300 ms.
    for _ in 0..3 {
        sessions.push(ws.create(json!({})).await);
    }
    eventually("the orphan's removal", || async {
        docker_inspect("container", &orphan).is_none().then_some(())
    })
    .await;
    for (sid, cid) in &sessions {
        let (status, body) = server.get(&format!("/api/containers/{sid}")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            docker_inspect("container", cid).unwrap()["State"]["Running"],
            true
        );
    }
    let out = ws.run(&sessions[2].0, "echo still-$((2*3))").await;
    assert!(out.contains("still-6"), "{out:?}");
}

fn docker_stop(container: &str) {
    docker(&["stop", "-t", "1", container]);
}

async fn status_everywhere(server: &Server, sid: &str) -> (String, String) {
    let (_, one) = server.get(&format!("/api/containers/{sid}")).await;
    let (_, all) = server.get("/api/containers").await;
    let listed = all
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["sessionId"] == sid)
        .map(|s| s["status"].as_str().unwrap().to_string())
        .unwrap_or_default();
    (
        one["status"].as_str().unwrap_or_default().to_string(),
        listed,
    )
}

/// A session's container stopped behind the server's back (an engine or
/// host restart, a `docker stop`): every route tells the same status, the
/// session survives the sweep and a server restart, and the next attach
/// starts the container and a shell again.
#[tokio::test]
async fn a_stopped_container_is_reported_alike_and_started_again_on_attach() {
    let instance = unique("stopped");
    let mut first = Server::builder()
        .instance(&instance)
        .args(["--cleanup-interval", "300ms"])
        .start()
        .await;
    let mut ws = first.ws().await;
    let (sid, cid) = ws.create(json!({})).await;
    ws.run(&sid, "true").await;
    docker_stop(&cid);
    let exit = ws.expect("exit").await;
    assert_eq!(exit["sessionId"], sid.as_str());
    let status = status_everywhere(&first, &sid).await;
    assert_eq!(status, ("stopped".into(), "stopped".into()));
    // Sweeps come and go; the session stays.
    let before = first.metric("studio_sweeps_total").await;
    eventually("two more sweeps", || async {
        (first.metric("studio_sweeps_total").await >= before + 2).then_some(())
    })
    .await;
    assert_eq!(status_everywhere(&first, &sid).await.0, "stopped");

    ws.send(json!({"type": "attach", "sessionId": sid})).await;
    ws.expect("attached").await;
    let out = ws.run(&sid, "echo again-$((3*3))").await;
    assert!(out.contains("again-9"), "{out:?}");
    assert_eq!(
        status_everywhere(&first, &sid).await,
        ("running".into(), "running".into())
    );

    // Stopped while the server is down: re-adopted, started on attach.
    docker_stop(&cid);
    first.keep_containers();
    first.stop().await;
    let second = Server::builder().instance(&instance).start().await;
    let info = eventually("re-adoption", || async {
        let (status, body) = second.get(&format!("/api/containers/{sid}")).await;
        (status == 200).then_some(body)
    })
    .await;
    assert_eq!(info["status"], "stopped");
    let mut ws = second.ws().await;
    ws.send(json!({"type": "attach", "sessionId": sid})).await;
    ws.expect("attached").await;
    let out = ws.run(&sid, "echo back-$((4*4))").await;
    assert!(out.contains("back-16"), "{out:?}");
}

/// Opens a WebSocket by hand and then never answers anything: a dead client.
async fn silent_client(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

#[tokio::test]
async fn a_client_that_misses_two_heartbeats_is_closed() {
    let server = Server::builder()
        .args(["--heartbeat-interval", "500ms"])
        .start()
        .await;
    let mut dead = silent_client(server.addr).await;
    let opened = Instant::now();
    let mut pings = 0;
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match dead.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => pings += buf[..n].iter().filter(|&&b| b == 0x89).count(),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server must close a silent client");
    assert!(pings >= 2, "closed after {pings} pings");
    assert!(
        opened.elapsed() >= Duration::from_millis(1000),
        "not before two intervals"
    );

    // A client that answers pings (tungstenite does) stays connected.
    let mut live = server.ws().await;
    let until = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < until {
        if let Ok(msg) = tokio::time::timeout(Duration::from_millis(200), live.next_msg()).await {
            assert!(msg.is_some(), "live client was closed");
        }
    }
    live.send(json!({"type": "ping"})).await;
    live.expect("pong").await;
}

#[tokio::test]
async fn a_client_that_cannot_keep_up_is_told_to_reconnect_and_others_go_on() {
    let server = Server::start().await;
    let mut fast = server.ws().await;
    let (sid, _) = fast.create(json!({})).await;
    fast.run(&sid, "true").await;

    // A second client attaches, then stops reading; a third does the same
    // and never reads again.
    let mut slow = server.ws().await;
    slow.send(json!({"type": "attach", "sessionId": sid})).await;
    slow.expect("attached").await;
    let mut gone = server.ws().await;
    gone.send(json!({"type": "attach", "sessionId": sid})).await;
    gone.expect("attached").await;

    fast.input(
        &sid,
        "head -c 40000000 /dev/zero | tr '\\0' x; echo; echo FLOOD-$((6*7))\n",
    )
    .await;
    let started = Instant::now();
    let out = fast.read_until(&sid, "FLOOD-42").await;
    assert!(out.len() > 40_000_000, "the fast client got everything");
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "the terminal waited for the slow client before dropping it"
    );

    // The slow client finds the reconnect after what was queued for it, then the close.
    let mut reason = None;
    while let Some(v) = slow.next().await {
        if v["type"] == "reconnect" {
            reason = Some(v["reason"].clone());
        }
    }
    assert_eq!(reason, Some(json!("Client too slow")));

    // The one that never reads is closed by the server (once its goodbye
    // has waited 30 s), not kept forever behind a send that cannot
    // complete: only the fast client is left.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if server.metric("studio_websocket_connections").await == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a client that reads nothing is still open"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    drop(gone);
}

/// A removal cut short by a crash (the container going, its record marked
/// `removing`) is finished at the next start: the session is not brought
/// back half-removed, and its container and record are gone. The mark is
/// written before the engine is asked and dropped with the record.
#[tokio::test]
async fn a_removal_cut_short_by_a_crash_is_finished_at_the_next_start() {
    let instance = unique("rm-crash");
    let mut first = Server::builder().instance(&instance).start().await;
    let (sid, cid) = first.create_rest().await;
    let (kept, kept_cid) = first.create_rest().await;
    assert_eq!(first.recorded()[&sid].get("removing"), None);
    first.keep_containers();
    first.kill().await;
    // What the record holds when the server dies between marking the
    // removal and finishing it.
    let dir = state_root(&instance)
        .join("instances")
        .join(&instance)
        .join("sessions");
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            serde_json::from_slice::<Value>(&std::fs::read(p).unwrap()).unwrap()["sessionId"]
                == sid.as_str()
        })
        .expect("the session's record");
    let mut record: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    record["removing"] = json!(true);
    std::fs::write(&file, record.to_string()).unwrap();

    let second = Server::builder().instance(&instance).start().await;
    eventually("the other session re-adopted", || async {
        (second.get(&format!("/api/containers/{kept}")).await.0 == 200).then_some(())
    })
    .await;
    let (status, body) = second.get(&format!("/api/containers/{sid}")).await;
    assert_eq!(status, 404, "{body}");
    eventually("the container removed", || async {
        docker_inspect("container", &cid).is_none().then_some(())
    })
    .await;
    assert!(!second.recorded().contains_key(&sid));
    assert!(docker_inspect("container", &kept_cid).is_some());
}

/// A container of this instance made by another (ended) server process and
/// in no session is removed by the first sweep that sees it, even when the
/// engine finished making it after this server started (a create a crash
/// cut short completes late) and it never ran.
#[tokio::test]
async fn a_late_container_of_an_ended_process_is_swept_at_once() {
    let server = Server::builder()
        .args(["--cleanup-interval", "300ms"])
        .start()
        .await;
    let late = docker(&[
        "create",
        "--label",
        &format!("studio.instance={}", server.instance),
        "--label",
        "studio.session=session-CCCCCCCCCCCCCCCCCCCCCC",
        "--label",
        "studio.process=0123456789abcdef",
        "--network",
        "none",
        &test_image(),
        "true",
    ]);
    // Within `eventually`'s 20 s: well under the 60 s a stopped container of
    // this process is given.
    eventually("the late container removed", || async {
        docker_inspect("container", &late).is_none().then_some(())
    })
    .await;
}

/// The server's memory stays out of transparent huge pages: with them, the
/// kernel's khugepaged filled in the allocator's sparse arenas long after
/// start-up, and a soak whose live memory was flat saw the RSS grow in
/// 20 to 30 MiB steps (docs/reliability.md, "Soak").
#[tokio::test]
async fn the_server_keeps_its_memory_out_of_transparent_huge_pages() {
    let server = Server::start().await;
    let pid = server.pid().expect("the server runs");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let thp = status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .map(str::trim);
    // Kernels before 5.0 do not say; every kernel this runs on here does.
    assert_eq!(thp, Some("0"), "THP_enabled of the server: {thp:?}");
}
