//! The sessions' bridge network: Docker allows several networks of one name
//! (servers starting at once on a fresh engine both create it), and a
//! network of our name that lets containers talk to each other must not be
//! joined silently.

mod common;

use std::collections::HashMap;

use bollard::models::NetworkCreateRequest;
use bollard::Docker;
use common::*;

/// Removes every network called `name` when dropped: declared before the
/// server, so it runs after the server's own clean-up has removed the
/// containers attached to them.
struct Networks {
    name: String,
}

impl Networks {
    fn new(prefix: &str) -> Networks {
        Networks {
            name: unique(prefix),
        }
    }

    /// Ids of the networks called exactly `name`.
    fn ids(&self) -> Vec<String> {
        let out = std::process::Command::new("docker")
            .args([
                "network",
                "ls",
                "--no-trunc",
                "--format",
                "{{.ID}} {{.Name}}",
            ])
            .args(["--filter", &format!("name={}", self.name)])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(_, name)| *name == self.name)
            .map(|(id, _)| id.to_string())
            .collect()
    }

    /// Creates one more network called `name` through the Engine API, which
    /// (unlike the CLI) does not refuse a duplicate name.
    async fn create(&self, icc: bool) -> String {
        let docker = Docker::connect_with_local_defaults().unwrap();
        let req = NetworkCreateRequest {
            name: self.name.clone(),
            driver: Some("bridge".into()),
            options: Some(HashMap::from([(
                "com.docker.network.bridge.enable_icc".to_string(),
                icc.to_string(),
            )])),
            labels: Some(HashMap::from([(
                "studio.managed".to_string(),
                "true".to_string(),
            )])),
            ..Default::default()
        };
        docker.create_network(req).await.unwrap().id
    }
}

impl Drop for Networks {
    fn drop(&mut self) {
        for id in self.ids() {
            let _ = std::process::Command::new("docker")
                .args(["network", "rm", &id])
                .output();
        }
    }
}

#[tokio::test]
async fn duplicate_networks_of_our_name_still_give_working_sessions() {
    let nets = Networks::new("studio-dup");
    let mut made = [nets.create(false).await, nets.create(false).await];
    made.sort();
    assert_eq!(nets.ids().len(), 2, "the engine kept both networks");
    let server = Server::builder()
        .args(["--network", &nets.name])
        .start()
        .await;

    let mut ws = server.ws().await;
    let (sid, cid) = ws.create(serde_json::json!({})).await;
    let (_, cid2) = server.create_rest().await;
    for c in [&cid, &cid2] {
        let info = docker_inspect("container", c).unwrap();
        assert_eq!(
            info["HostConfig"]["NetworkMode"], made[0],
            "every process picks the same one of the duplicates"
        );
    }
    assert_eq!(
        nets.ids(),
        vec![made[0].clone()],
        "the empty surplus is gone"
    );
    let out = ws.run(&sid, "echo net-$((6*7))").await;
    assert!(out.contains("net-42"), "{out:?}");
}

#[tokio::test]
async fn a_network_of_our_name_that_allows_inter_container_traffic_is_refused() {
    let nets = Networks::new("studio-icc");
    nets.create(true).await;
    let server = Server::builder()
        .args(["--network", &nets.name])
        .start()
        .await;
    let (status, body) = server.post("/api/containers", "{}").await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"], "ContainerCreationError");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains(&nets.name) && message.contains("inter-container"),
        "{message}"
    );
    assert!(
        instance_containers(&server.instance).is_empty(),
        "no container was made"
    );
}

/// A fresh engine (no network of ours yet) and several servers started at
/// once in processes of their own, each creating sessions at once: one
/// network is made, and every session works.
#[tokio::test]
async fn servers_started_at_once_on_a_fresh_engine_make_one_network() {
    let nets = Networks::new("studio-race");
    assert!(nets.ids().is_empty());
    let servers = futures_util::future::join_all(
        (0..6).map(|_| Server::builder().args(["--network", &nets.name]).start()),
    )
    .await;
    let created = futures_util::future::join_all(servers.iter().map(|s| async move {
        let (status, body) = s.post("/api/containers", "{}").await;
        (status, body)
    }))
    .await;
    for (status, body) in &created {
        assert_eq!(*status, 200, "{body}");
    }
    assert_eq!(nets.ids().len(), 1, "one network of the name");
    for (server, (_, body)) in servers.iter().zip(&created) {
        let mut ws = server.ws().await;
        let sid = body["sessionId"].as_str().unwrap();
        ws.send(serde_json::json!({"type": "attach", "sessionId": sid}))
            .await;
        ws.expect("attached").await;
        let out = ws.run(sid, "echo fresh-$((6*7))").await;
        assert!(out.contains("fresh-42"), "{out:?}");
    }
    drop(servers);
}
