//! Several gateways on one Redis (`--store redis://…`): any gateway serves
//! any session, a gateway that dies hands its sessions over within 10 s
//! with their replay, Redis going away stops creates but not the sessions
//! already held, and no gateway's sweep touches another's containers.
//! Real gateways, a real engine, Debian's redis-server.

mod common;
mod remote_engine_support;

use std::time::{Duration, Instant};

use common::redis::Redis;
use common::{eventually, instance_containers, unique, Server, Ws};
use remote_engine_support::RemoteEngine;
use serde_json::json;

/// `n` gateways of one fleet (one instance, one Redis). The last one
/// removes the instance's containers when dropped; the others leave them.
async fn fleet(redis: &Redis, n: usize, extra: &[&str]) -> Vec<Server> {
    let instance = unique("fleet");
    let mut gateways = Vec::new();
    for i in 0..n {
        let mut g = Server::builder()
            .instance(&instance)
            .args(["--store", &redis.url()])
            .args(extra.iter().copied())
            .start()
            .await;
        if i + 1 < n {
            g.keep_containers();
        }
        gateways.push(g);
    }
    gateways
}

async fn attach(ws: &mut Ws, sid: &str) -> (serde_json::Value, serde_json::Value) {
    ws.send(json!({"type": "attach", "sessionId": sid})).await;
    let attached = ws.expect("attached").await;
    let replay = ws.expect("output").await;
    assert_eq!(replay["replay"], true, "{replay}");
    (attached, replay)
}

#[tokio::test]
async fn any_gateway_serves_any_session() {
    let redis = Redis::start().await;
    let gw = fleet(&redis, 3, &[]).await;
    let mut a = gw[0].ws().await;
    let (sid, cid) = a.create(json!({})).await;
    a.run(&sid, "echo made-on-$((0+1))").await;

    // REST through the others.
    let (status, info) = gw[1].get(&format!("/api/containers/{sid}")).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["containerId"], cid.as_str());
    assert_eq!(info["status"], "running");
    let (status, list) = gw[2].get("/api/containers").await;
    assert_eq!(status, 200, "{list}");
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["sessionId"].as_str())
        .collect();
    assert_eq!(ids, [sid.as_str()], "{list}");

    // Attach through B: the holder's replay; type through C: every
    // connection sees the output, whichever gateway it reached.
    let mut b = gw[1].ws().await;
    let (attached, replay) = attach(&mut b, &sid).await;
    assert_eq!(attached["containerId"], cid.as_str());
    assert!(
        replay["data"].as_str().unwrap().contains("made-on-1"),
        "{replay}"
    );
    let mut c = gw[2].ws().await;
    c.input(&sid, "echo typed-on-$((1+2))\n").await;
    b.read_until(&sid, "typed-on-3").await;
    a.read_until(&sid, "typed-on-3").await;
    c.read_until(&sid, "typed-on-3").await;

    // A resize through C reaches the shell B's input runs in.
    c.send(json!({"type": "resize", "sessionId": sid, "cols": 123, "rows": 45}))
        .await;
    let mut size = String::new();
    for _ in 0..50 {
        size = b.run(&sid, "stty size").await;
        if size.trim() == "45 123" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(size.trim(), "45 123");

    // The preview, configured through C, served through B (path) and C
    // (host name).
    a.run(
        &sid,
        "mkdir -p /tmp/www && echo preview-ok > /tmp/www/hello.txt && httpd -p 8000 -h /tmp/www",
    )
    .await;
    let body = json!({"sessionId": sid, "port": 8000}).to_string();
    let (status, configured) = gw[2].post("/api/preview/configure", &body).await;
    assert_eq!(status, 200, "{configured}");
    let url = gw[1].url(&format!("/preview/{sid}/hello.txt"));
    let text = eventually("the path preview through another gateway", || async {
        let r = reqwest::get(&url).await.ok()?;
        (r.status() == 200).then_some(())?;
        r.text().await.ok()
    })
    .await;
    assert_eq!(text.trim(), "preview-ok");
    let host = format!(
        "8000-{}.localhost:{}",
        sid.to_lowercase(),
        gw[2].addr.port()
    );
    let r = gw[2]
        .http
        .get(gw[2].url("/hello.txt"))
        .header("host", &host)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap().trim(), "preview-ok");

    // Through a gateway that does not hold the session, request after
    // request (on kept-alive connections to the holder), bodies both ways.
    for _ in 0..30 {
        let r = reqwest::get(&url).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap().trim(), "preview-ok");
    }
    let file = format!("/api/containers/{sid}/files/content?path=/workspace/note.txt");
    let put = gw[1]
        .http
        .put(gw[1].url(&file))
        .body("x".repeat(300_000))
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    let got = gw[2].http.get(gw[2].url(&file)).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().len(), 300_000);

    // Removed through C: gone everywhere.
    let (status, _) = gw[2].delete(&format!("/api/containers/{sid}")).await;
    assert_eq!(status, 200);
    let (status, _) = gw[1].get(&format!("/api/containers/{sid}")).await;
    assert_eq!(status, 404);
    assert!(instance_containers(&gw[0].instance).is_empty());
}

#[tokio::test]
async fn a_killed_gateways_sessions_move_within_ten_seconds_with_their_replay() {
    let redis = Redis::start().await;
    let mut gw = fleet(&redis, 3, &[]).await;
    let mut a = gw[0].ws().await;
    let (sid, cid) = a.create(json!({})).await;
    a.run(&sid, "echo before-$((1+1))").await;
    let mut b = gw[1].ws().await;
    attach(&mut b, &sid).await;
    // The replay mirror runs every 2 s: let it see the last output.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    gw[0].kill().await;
    let killed = Instant::now();
    // A client attached through B, relayed to A, is told to come back.
    let reconnect = b.expect("reconnect").await;
    assert_eq!(reconnect["reason"], "Gateway unavailable", "{reconnect}");

    // Through any gateway it attaches again: same container, its replay,
    // a shell that answers.
    let mut c = gw[2].ws().await;
    let (attached, replay) = attach(&mut c, &sid).await;
    assert_eq!(attached["containerId"], cid.as_str());
    assert!(
        replay["data"].as_str().unwrap().contains("before-2"),
        "{replay}"
    );
    let out = c.run(&sid, "echo after-$((2+2))").await;
    assert!(out.contains("after-4"), "{out}");
    let moved = killed.elapsed();
    assert!(moved < Duration::from_secs(10), "took {moved:?}");

    // B serves it too, now relaying to C; nothing was lost or made.
    let (status, info) = gw[1].get(&format!("/api/containers/{sid}")).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(instance_containers(&gw[1].instance), [cid]);
}

#[tokio::test]
async fn a_gateway_that_stops_hands_over_at_once_and_rejoins_when_it_starts() {
    let redis = Redis::start().await;
    let mut gw = fleet(&redis, 2, &[]).await;
    let instance = gw[0].instance.clone();
    let mut a = gw[0].ws().await;
    let (sid, _) = a.create(json!({})).await;
    gw[0].stop().await;
    // A graceful stop releases the leases: B takes over without waiting
    // for them to run out.
    let started = Instant::now();
    let mut b = gw[1].ws().await;
    attach(&mut b, &sid).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    // A new gateway joins the fleet: it serves the session (relaying to B)
    // and creates its own.
    let mut again = Server::builder()
        .instance(&instance)
        .args(["--store", &redis.url()])
        .start()
        .await;
    again.keep_containers();
    let (status, _) = again.get(&format!("/api/containers/{sid}")).await;
    assert_eq!(status, 200);
    let mut n = again.ws().await;
    let (sid2, _) = n.create(json!({})).await;
    let (status, _) = gw[1].get(&format!("/api/containers/{sid2}")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn with_redis_down_held_sessions_go_on_creates_wait_and_the_fleet_recovers() {
    let mut redis = Redis::start().await;
    let gw = fleet(&redis, 2, &[]).await;
    let mut a = gw[0].ws().await;
    let (sid, _) = a.create(json!({})).await;

    redis.stop().await;
    let out = a.run(&sid, "echo still-$((3+3))").await;
    assert!(out.contains("still-6"), "{out}");
    let (status, err) = gw[0].post("/api/containers", "{}").await;
    assert_eq!(status, 503, "{err}");
    assert_eq!(err["error"], "DockerDaemonError");
    assert_eq!(err["retryable"], true);
    assert!(err["message"].as_str().unwrap().contains("Redis"), "{err}");
    a.send(json!({"type": "create"})).await;
    let refused = a.expect("error").await;
    assert_eq!(refused["error"], "DockerDaemonError", "{refused}");
    assert_eq!(refused["retryable"], true);

    // Redis comes back empty (no persistence): the gateways put back what
    // they hold, and the fleet serves and creates again by itself.
    redis.start_again().await;
    eventually("the session through the other gateway again", || async {
        let (status, _) = gw[1].get(&format!("/api/containers/{sid}")).await;
        (status == 200).then_some(())
    })
    .await;
    let mut b = gw[1].ws().await;
    b.create(json!({})).await;
    assert_eq!(instance_containers(&gw[0].instance).len(), 2);
}

#[tokio::test]
async fn no_gateways_sweep_touches_another_gateways_containers() {
    let redis = Redis::start().await;
    let gw = fleet(&redis, 2, &["--cleanup-interval", "300ms"]).await;
    let mut a = gw[0].ws().await;
    let (sid, cid) = a.create(json!({})).await;
    let swept = gw[1].metric("studio_sweeps_total").await;
    eventually("three sweeps on the other gateway", || async {
        (gw[1].metric("studio_sweeps_total").await >= swept + 3).then_some(())
    })
    .await;
    assert_eq!(instance_containers(&gw[0].instance), [cid]);
    let out = a.run(&sid, "echo alive-$((4+4))").await;
    assert!(out.contains("alive-8"), "{out}");
}

#[tokio::test]
async fn rate_limits_are_counted_once_for_the_whole_fleet() {
    let redis = Redis::start().await;
    let gw = fleet(&redis, 3, &["--rate-limit-general", "6/1m"]).await;
    let mut a = gw[0].ws().await;
    let (sid, _) = a.create(json!({})).await;
    let remaining = |r: &reqwest::Response| -> u64 {
        r.headers()["x-ratelimit-remaining"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    // Each request counts once, whichever gateway it reaches, and a
    // request relayed to the session's holder is not counted there again.
    let mut left = Vec::new();
    for (g, path) in [
        (0, "/api/containers".to_string()),
        (1, format!("/api/containers/{sid}")),
        (2, format!("/api/containers/{sid}")),
        (1, "/api/containers".to_string()),
        (2, "/api/containers".to_string()),
        (0, format!("/api/containers/{sid}")),
    ] {
        let r = gw[g].http.get(gw[g].url(&path)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        left.push(remaining(&r));
    }
    assert_eq!(left, [5, 4, 3, 2, 1, 0]);
    for g in &gw {
        let r = g.http.get(g.url("/api/containers")).send().await.unwrap();
        assert_eq!(r.status(), 429);
        assert!(r.headers().contains_key("retry-after"));
    }
}

#[tokio::test]
async fn a_session_on_a_remote_engine_moves_only_to_a_gateway_that_reaches_that_engine() {
    let engine = RemoteEngine::start();
    let redis = Redis::start().await;
    let instance = unique("fleet");
    let tls = engine.tls.display().to_string();
    let key = |k: &str| format!("studio:{instance}:{k}");
    // B makes its sessions on the remote engine, over TLS; C only reaches
    // the local engine.
    let mut b = Server::builder()
        .instance(&instance)
        .args(["--store", &redis.url(), "--docker-host", &engine.tcp()])
        .args(["--docker-tls-dir", &tls, "--egress", "unfiltered"])
        .start()
        .await;
    b.keep_containers();
    let mut c = Server::builder()
        .instance(&instance)
        .args(["--store", &redis.url()])
        .start()
        .await;
    c.keep_containers();
    let mut on_b = b.ws().await;
    let (sid, cid) = on_b.create(json!({})).await;
    on_b.run(&sid, "echo on-remote-$((5+5))").await;
    assert_eq!(
        engine.instance_containers(&instance),
        std::slice::from_ref(&cid)
    );
    let mut on_c = c.ws().await;
    attach(&mut on_c, &sid).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;

    // B dies. C cannot reach the session's engine: it neither takes the
    // session over nor takes it for gone.
    b.kill().await;
    on_c.expect("reconnect").await;
    let lease = key(&format!("lease:{sid}"));
    eventually("B's lease to run out", || async {
        redis
            .command(&format!("GET {lease}"))
            .await
            .filter(|r| r.starts_with("$-1"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let record = redis
        .command(&format!("EXISTS {}", key(&format!("session:{sid}"))))
        .await;
    assert_eq!(record.as_deref().map(str::trim), Some(":1"));
    assert_eq!(
        engine.instance_containers(&instance),
        std::slice::from_ref(&cid)
    );

    // A gateway that reaches it (--fleet-engine) joins and takes it over;
    // through C the client gets it back: same container, its replay.
    let a = Server::builder()
        .instance(&instance)
        .args(["--store", &redis.url(), "--fleet-engine", &engine.tcp()])
        .args(["--docker-tls-dir", &tls])
        .start()
        .await;
    let mut again = c.ws().await;
    let (attached, replay) = attach(&mut again, &sid).await;
    assert_eq!(attached["containerId"], cid.as_str());
    assert!(
        replay["data"].as_str().unwrap().contains("on-remote-10"),
        "{replay}"
    );
    let host = again.run(&sid, "hostname").await;
    assert!(
        cid.starts_with(host.trim()),
        "hostname {host:?}, container {cid}"
    );
    let holder = redis.command(&format!("GET {lease}")).await.unwrap();
    let (_, health) = a.get("/api/health").await;
    assert_eq!(health["docker"], "connected");
    assert!(!holder.starts_with("$-1"), "{holder}");
    assert_eq!(
        engine.instance_containers(&instance),
        std::slice::from_ref(&cid)
    );
    assert!(instance_containers(&instance).is_empty());
    // Removed through C (relayed to A): gone from the engine it lived on.
    let (status, _) = c.delete(&format!("/api/containers/{sid}")).await;
    assert_eq!(status, 200);
    assert!(engine.instance_containers(&instance).is_empty());
}

#[tokio::test]
async fn a_client_cannot_pass_for_a_relaying_gateway() {
    let redis = Redis::start().await;
    let gw = fleet(
        &redis,
        2,
        &["--api-token", "alpha-token", "--api-token", "beta-token"],
    )
    .await;
    let (status, created) = {
        let r = gw[0]
            .http
            .post(gw[0].url("/api/containers"))
            .bearer_auth("alpha-token")
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        (r.status(), r.json::<serde_json::Value>().await.unwrap())
    };
    assert_eq!(status, 200, "{created}");
    let sid = created["sessionId"].as_str().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let forged = [
        ("x-studio-relay", format!("{now}.{}", "ab".repeat(32))),
        ("x-studio-client-ip", "10.9.8.7".to_string()),
        ("x-studio-owner", String::new()),
    ];
    // Without a token, relay headers of its own making admit nobody…
    let mut r = gw[1].http.get(gw[1].url(&format!("/api/containers/{sid}")));
    for (k, v) in &forged {
        r = r.header(*k, v);
    }
    assert_eq!(r.send().await.unwrap().status(), 401);
    // …and with another owner's token they change nothing: still 404.
    let mut r = gw[1]
        .http
        .get(gw[1].url(&format!("/api/containers/{sid}")))
        .bearer_auth("beta-token");
    for (k, v) in &forged {
        r = r.header(*k, v);
    }
    assert_eq!(r.send().await.unwrap().status(), 404);
    // The owner gets it through either gateway; health says the store answers.
    let r = gw[1]
        .http
        .get(gw[1].url(&format!("/api/containers/{sid}")))
        .bearer_auth("alpha-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, health) = gw[1].get("/api/health").await;
    assert_eq!(health["store"], "connected", "{health}");
}
