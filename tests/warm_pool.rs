//! `--warm-pool`: sessions from pre-started containers, hardened the same,
//! handed out once, refilled, and surviving a restart only when handed out.

mod common;

use common::*;
use serde_json::{json, Value};

async fn pool_ready(server: &Server, n: u64) {
    eventually("warm pool to fill", || async {
        let (_, h) = server.get("/api/health").await;
        (h["warmPool"] == n).then_some(())
    })
    .await;
}

/// Pool containers not handed out yet: made for the pool, and no session
/// recorded for them in the state store.
fn pooled_ids(instance: &str) -> Vec<String> {
    let recorded = recorded_sessions(instance);
    instance_containers(instance)
        .into_iter()
        .filter(|id| {
            docker_inspect("container", id)
                .map(|c| {
                    let labels = &c["Config"]["Labels"];
                    labels["studio.pool"] == "1"
                        && !recorded.contains_key(labels["studio.session"].as_str().unwrap_or(""))
                })
                .unwrap_or(false)
        })
        .collect()
}

fn hardening(c: &Value) -> Value {
    let h = &c["HostConfig"];
    json!([
        h["ReadonlyRootfs"],
        h["Memory"],
        h["MemorySwap"],
        h["NanoCpus"],
        h["PidsLimit"],
        h["CapDrop"],
        h["SecurityOpt"],
        h["Privileged"],
        h["Init"],
        h["Tmpfs"],
        h["NetworkMode"],
        c["Config"]["User"]
    ])
}

#[tokio::test]
async fn sessions_come_from_the_pool_which_refills_with_fresh_containers() {
    let server = Server::builder().args(["--warm-pool", "2"]).start().await;
    pool_ready(&server, 2).await;
    let waiting = pooled_ids(&server.instance);
    assert_eq!(waiting.len(), 2, "{waiting:?}");

    let mut ws = server.ws().await;
    let (sid, cid) = ws.create(json!({"env": {"FROM_POOL": "yes"}})).await;
    assert!(waiting.contains(&cid), "the session got a pooled container");
    let out = ws
        .run(&sid, "echo \"[$FROM_POOL]\"; id -u; stty size")
        .await;
    assert!(out.contains("[yes]"), "{out:?}");
    assert!(out.contains("1000"), "{out:?}");
    assert!(out.contains("50 500"), "{out:?}");

    // Same hardening as a container made on demand.
    let cold = Server::start().await;
    let (_, cold_cid) = cold.create_rest().await;
    assert_eq!(
        hardening(&docker_inspect("container", &cid).unwrap()),
        hardening(&docker_inspect("container", &cold_cid).unwrap())
    );

    // Recorded as handed out, and replaced by a new container.
    assert_eq!(server.recorded()[&sid]["containerId"], cid.as_str());
    pool_ready(&server, 2).await;
    let now_waiting = pooled_ids(&server.instance);
    assert!(
        !now_waiting.contains(&cid),
        "a handed-out container never returns to the pool"
    );

    // A second session gets a different container, whose shell was already
    // running: its prompt comes straight after `container_created`, at the
    // size asked for.
    let (sid2, cid2) = ws.create(json!({})).await;
    assert_ne!(sid2, sid);
    assert_ne!(cid2, cid);
    let first = ws.expect("output").await;
    assert_eq!(first["sessionId"], sid2.as_str());
    assert!(first.get("replay").is_none(), "{first}");
    assert!(
        first["data"].as_str().unwrap().contains("$ "),
        "the prompt: {first}"
    );
    let out = ws.run(&sid2, "stty size").await;
    assert!(out.contains("50 500"), "{out:?}");
}

/// A session with a `workspaceDir` is served warm too: a pooled container
/// whose slot receives the workspace at hand-out. It sees its own workspace
/// and nothing of another; the slot goes when the session does, and the
/// workspace's files stay.
#[tokio::test]
async fn a_workspace_session_is_served_warm_and_sees_only_its_workspace() {
    let root = std::env::temp_dir().join(unique("studio-pool-ws"));
    for (dir, file) in [("p", "mine.txt"), ("q", "theirs.txt")] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
        std::fs::write(root.join(dir).join(file), format!("{dir}-secret")).unwrap();
    }
    docker_chown(&root.join("p"));
    let server = Server::builder()
        .args([
            "--warm-pool",
            "1",
            "--workspace-root",
            root.to_str().unwrap(),
        ])
        .start()
        .await;
    // One plain, one with a slot.
    pool_ready(&server, 2).await;
    let waiting = pooled_ids(&server.instance);

    let mut ws = server.ws().await;
    let p = root.join("p");
    let (sid, cid) = ws
        .create(json!({"workspaceDir": p.to_str().unwrap()}))
        .await;
    assert!(waiting.contains(&cid), "served from the pool: {cid}");
    let out = ws
        .run(
            &sid,
            "pwd; ls /workspace; cat /workspace/mine.txt; echo made > /workspace/new.txt",
        )
        .await;
    assert!(out.contains("/workspace"), "{out:?}");
    assert!(out.contains("p-secret"), "{out:?}");
    assert!(!out.contains("theirs"), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(p.join("new.txt")).unwrap(),
        "made\n"
    );
    // Its container binds only its own slot.
    let c = docker_inspect("container", &cid).unwrap();
    let mounts = c["Mounts"].as_array().unwrap();
    assert_eq!(mounts.len(), 1, "{mounts:?}");
    assert_eq!(mounts[0]["Destination"], "/workspace");
    let slot = slots_dir(&server.instance).join(&sid);
    assert_eq!(mounts[0]["Source"], slot.to_str().unwrap());
    assert_eq!(mounts[0]["Propagation"], "rslave");
    // On the host the slots are root's alone.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(slots_dir(&server.instance))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "{mode:o}");

    // Removed: the slot is unmounted and gone, the workspace's files stay.
    let (status, _) = server.delete(&format!("/api/containers/{sid}")).await;
    assert_eq!(status, 200);
    assert!(!slot.exists(), "the slot is released");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mountinfo.contains(slot.to_str().unwrap()), "{mountinfo}");
    assert_eq!(
        std::fs::read_to_string(p.join("mine.txt")).unwrap(),
        "p-secret"
    );
    drop(server);
    std::fs::remove_dir_all(root).ok();
}

/// Makes a directory the session user's (uid 1000), as a workspace is.
fn docker_chown(dir: &std::path::Path) {
    let status = std::process::Command::new("chown")
        .args(["-R", "1000:1000"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn after_a_restart_handed_out_containers_are_sessions_and_waiting_ones_are_gone() {
    let instance = unique("pool-restart");
    let mut first = Server::builder()
        .instance(&instance)
        .args(["--warm-pool", "2"])
        .start()
        .await;
    pool_ready(&first, 2).await;
    let mut ws = first.ws().await;
    let (sid, cid) = ws.create(json!({})).await;
    // Claimed before the client is told: a restart (or a kill) right after
    // `container_created` can never take it for an unused pool container.
    assert_eq!(first.recorded()[&sid]["containerId"], cid.as_str());
    first.keep_containers();
    first.stop().await;

    let second = Server::builder().instance(&instance).start().await;
    let (status, info) = second.get(&format!("/api/containers/{sid}")).await;
    let info = if status == 200 {
        info
    } else {
        eventually("re-adoption", || async {
            let (status, body) = second.get(&format!("/api/containers/{sid}")).await;
            (status == 200).then_some(body)
        })
        .await
    };
    assert_eq!(info["containerId"], cid.as_str());
    eventually("no waiting pool containers left", || async {
        pooled_ids(&instance).is_empty().then_some(())
    })
    .await;
    let (_, list) = second.get("/api/containers").await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
}

#[tokio::test]
async fn a_pooled_container_removed_behind_the_servers_back_is_never_handed_out() {
    let server = Server::builder().args(["--warm-pool", "1"]).start().await;
    pool_ready(&server, 1).await;
    let waiting = pooled_ids(&server.instance);
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    docker(&["rm", "-f", &waiting[0]]);
    // The create still gets a working session: a fresh container, not the
    // dead one.
    let mut ws = server.ws().await;
    let (sid, cid) = ws.create(json!({})).await;
    assert_ne!(cid, waiting[0]);
    let out = ws.run(&sid, "echo alive-$((3*3))").await;
    assert!(out.contains("alive-9"), "{out:?}");
}

/// What a newcomer gets: a server started with no pool flag keeps a small
/// pool of the default image, hands out warm sessions from it, never shows
/// or counts its containers as anyone's sessions, and removes the waiting
/// ones when it stops.
#[tokio::test]
async fn with_no_flag_the_default_image_is_warm() {
    let mut server = Server::builder()
        .default_pool()
        .args(["--max-sessions-per-owner", "1"])
        .start()
        .await;
    // The floor of the automatic size: two ready containers.
    pool_ready(&server, 2).await;
    let waiting = pooled_ids(&server.instance);
    assert_eq!(waiting.len(), 2, "{waiting:?}");
    let (_, list) = server.get("/api/containers").await;
    assert_eq!(list, json!([]), "waiting containers are nobody's sessions");
    let (_, health) = server.get("/api/health").await;
    assert_eq!(health["sessions"], 0, "{health}");

    // Served warm: a pooled container whose prompt follows at once.
    let mut ws = server.ws().await;
    let (sid, cid) = ws.create(json!({})).await;
    assert!(waiting.contains(&cid), "a pooled container: {cid}");
    let first = ws.expect("output").await;
    assert_eq!(first["sessionId"], sid.as_str());
    assert!(first["data"].as_str().unwrap().contains("$ "), "{first}");
    let (_, list) = server.get("/api/containers").await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");

    // Only the handed-out container counts against the owner's limit.
    let (status, refused) = server.post("/api/containers", "{}").await;
    assert_eq!(status, 429, "{refused}");

    // One request is demand for one more: the pool grows to three.
    pool_ready(&server, 3).await;
    server.stop().await;
    let left = instance_containers(&server.instance);
    assert_eq!(
        left,
        vec![cid.clone()],
        "only the session's container is kept"
    );
}

/// (Created, StartedAt) of a container, as RFC 3339 text (which sorts).
fn created_and_started(id: &str) -> (String, String) {
    let c = docker_inspect("container", id).unwrap();
    (
        c["Created"].as_str().unwrap().to_string(),
        c["State"]["StartedAt"].as_str().unwrap().to_string(),
    )
}

/// Polls `/api/health` until `done` holds for its `warmPool`, for at most
/// `limit` (nothing tells a client when the pool changes); returns the
/// largest count seen.
async fn watch_pool(server: &Server, limit: u64, mut done: impl FnMut(u64, u64) -> bool) -> u64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(limit);
    let mut most = 0;
    loop {
        let (_, h) = server.get("/api/health").await;
        let n = h["warmPool"].as_u64().unwrap_or(0);
        most = most.max(n);
        if done(n, most) {
            return most;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the pool did not get there in {limit} s: {h}, most {most}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// A burst drains the pool; the creates it could not serve take the cold
/// path, and the refill then makes the pool bigger, several containers at
/// a time.
#[tokio::test]
async fn a_burst_grows_the_pool_which_refills_in_parallel() {
    let server = Server::builder()
        .args(["--warm-pool", "5", "--warm-pool-min", "1"])
        .args(["--rate-limit-container", "off"])
        .start()
        .await;
    pool_ready(&server, 1).await;
    let before = pooled_ids(&server.instance);

    let creates = (0..4).map(|_| server.post("/api/containers", "{}"));
    let made = futures_util::future::join_all(creates).await;
    let mut warm = 0;
    for (status, body) in &made {
        assert_eq!(*status, 200, "{body}");
        warm += before.contains(&body["containerId"].as_str().unwrap().to_string()) as usize;
    }
    assert_eq!(warm, 1, "one of the burst was served warm, the rest cold");

    // Four requests within --warm-pool-idle (2m): the floor plus four, its
    // most (a busy engine may take a while to make them).
    watch_pool(&server, 100, |n, _| n == 5).await;
    let mut refilled: Vec<(String, String)> = pooled_ids(&server.instance)
        .iter()
        .map(|id| created_and_started(id))
        .collect();
    refilled.sort();
    assert!(
        refilled.windows(2).any(|w| w[1].0 < w[0].1),
        "some refill container was created before the one before it had started: {refilled:?}"
    );
    let (_, list) = server.get("/api/containers").await;
    assert_eq!(list.as_array().unwrap().len(), 4, "{list}");
}

/// Demand grows the pool above its floor; once the creates are older than
/// `--warm-pool-idle`, the surplus is removed and the sessions are kept.
#[tokio::test]
async fn the_pool_shrinks_to_its_floor_when_idle() {
    let server = Server::builder()
        .args(["--warm-pool", "3", "--warm-pool-min", "1"])
        .args(["--warm-pool-idle", "20s"])
        .start()
        .await;
    pool_ready(&server, 1).await;
    server.create_rest().await;
    server.create_rest().await;
    // Above the floor at some point, then back to it, the surplus removed.
    let most = watch_pool(&server, 120, |n, most| most >= 2 && n == 1).await;
    assert!(most >= 2, "{most}");
    eventually("the surplus containers removed", || async {
        (pooled_ids(&server.instance).len() == 1).then_some(())
    })
    .await;
    let (_, list) = server.get("/api/containers").await;
    assert_eq!(
        list.as_array().unwrap().len(),
        2,
        "sessions are untouched: {list}"
    );
}

/// `--warm-pool 0` turns the pool off: nothing is made ahead of demand.
#[tokio::test]
async fn warm_pool_zero_is_off() {
    let server = Server::builder()
        .default_pool()
        .args(["--warm-pool", "0"])
        .start()
        .await;
    let (_, cid) = server.create_rest().await;
    // The pool would have been filled before a create's own container.
    let (_, h) = server.get("/api/health").await;
    assert_eq!(h["warmPool"], 0, "{h}");
    assert_eq!(instance_containers(&server.instance), vec![cid]);
}
