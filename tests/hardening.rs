//! Every container is hardened as the contract says, checked through the
//! engine's own inspect output and from inside the shell.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn containers_carry_every_hardening_setting_and_the_labels() {
    let server = Server::start().await;
    let mut ws = server.ws().await;
    let (sid, cid) = ws.create(json!({})).await;
    let info = docker_inspect("container", &cid).expect("container exists");
    let host = &info["HostConfig"];
    assert_eq!(host["ReadonlyRootfs"], true);
    assert_eq!(info["Config"]["User"], "1000:1000");
    assert_eq!(host["Memory"], 512 * 1024 * 1024);
    assert_eq!(
        host["MemorySwap"],
        512 * 1024 * 1024,
        "no swap beyond memory"
    );
    assert_eq!(host["NanoCpus"], 1_000_000_000i64);
    assert_eq!(host["PidsLimit"], 256);
    assert_eq!(host["CapDrop"], json!(["ALL"]));
    assert!(host["CapAdd"].is_null());
    assert_eq!(host["SecurityOpt"], json!(["no-new-privileges"]));
    assert_eq!(host["Privileged"], false);
    assert_eq!(host["Init"], true);
    let tmpfs = host["Tmpfs"].as_object().expect("tmpfs mounts");
    for path in ["/tmp", "/home/studio", "/workspace"] {
        let opts = tmpfs[path]
            .as_str()
            .unwrap_or_else(|| panic!("{path} is a tmpfs"));
        assert!(opts.contains("size="), "{path} is size-limited: {opts}");
    }
    let network = host["NetworkMode"].as_str().unwrap().to_string();
    assert_ne!(network, "bridge");
    assert_ne!(network, "host");
    let net = docker_inspect("network", &network).expect("network exists");
    assert_eq!(net["Driver"], "bridge");
    assert_eq!(
        net["Options"]["com.docker.network.bridge.enable_icc"],
        "false"
    );

    let labels = &info["Config"]["Labels"];
    assert_eq!(labels["studio.session"], sid.as_str());
    assert_eq!(labels["studio.image"], test_image());
    assert_eq!(labels["studio.owner"], "");
    assert!(labels["studio.created"]
        .as_str()
        .unwrap()
        .parse::<i64>()
        .is_ok());

    // From inside: uid 1000, read-only root, writable /tmp, home and workspace.
    let out = ws
        .run(&sid, "id -u; id -g; touch /rootfile 2>&1 || echo ROOT-RO; touch /tmp/a /workspace/b $HOME/c && echo RW-OK")
        .await;
    assert!(out.contains("1000\r\n1000"), "{out:?}");
    assert!(out.contains("Read-only file system"), "{out:?}");
    assert!(out.contains("ROOT-RO"), "{out:?}");
    assert!(out.contains("RW-OK"), "{out:?}");
    // No capabilities at all, and no way to gain them.
    let out = ws
        .run(
            &sid,
            "grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status",
        )
        .await;
    assert!(out.contains("CapEff:\t0000000000000000"), "{out:?}");
    assert!(out.contains("CapBnd:\t0000000000000000"), "{out:?}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out:?}");
}

#[tokio::test]
async fn configured_limits_reach_the_container() {
    let server = Server::builder()
        .args(["--memory", "256m", "--cpus", "0.5", "--pids-limit", "64"])
        .start()
        .await;
    let (_, cid) = server.create_rest().await;
    let info = docker_inspect("container", &cid).unwrap();
    assert_eq!(info["HostConfig"]["Memory"], 256 * 1024 * 1024);
    assert_eq!(info["HostConfig"]["NanoCpus"], 500_000_000i64);
    assert_eq!(info["HostConfig"]["PidsLimit"], 64);
}

#[tokio::test]
async fn env_reaches_the_shell() {
    let server = Server::start().await;
    let mut ws = server.ws().await;
    let (sid, _) = ws.create(json!({"env": {"GREETING": "hi there"}})).await;
    let out = ws.run(&sid, "echo \"[$GREETING]\"").await;
    assert!(out.contains("[hi there]"), "{out:?}");
}
