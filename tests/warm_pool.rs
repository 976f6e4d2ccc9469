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

#[tokio::test]
async fn a_workspace_session_is_made_on_demand() {
    let root = std::env::temp_dir().join(unique("studio-pool-ws"));
    std::fs::create_dir_all(root.join("p")).unwrap();
    let server = Server::builder()
        .args([
            "--warm-pool",
            "1",
            "--workspace-root",
            root.to_str().unwrap(),
        ])
        .start()
        .await;
    pool_ready(&server, 1).await;
    let waiting = pooled_ids(&server.instance);
    let body = json!({"workspaceDir": root.join("p").to_str().unwrap()}).to_string();
    let (status, created) = server.post("/api/containers", &body).await;
    assert_eq!(status, 200, "{created}");
    assert!(!waiting.contains(&created["containerId"].as_str().unwrap().to_string()));
    std::fs::remove_dir_all(root).ok();
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
