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

/// A file of the container's cgroup, on the host (cgroup v1 or v2 layouts).
fn cgroup_file(cid: &str, controller: &str, file: &str) -> Option<String> {
    [
        format!("/sys/fs/cgroup/{controller}/docker/{cid}/{file}"),
        format!("/sys/fs/cgroup/{controller}/system.slice/docker-{cid}.scope/{file}"),
        format!("/sys/fs/cgroup/docker/{cid}/{file}"),
        format!("/sys/fs/cgroup/system.slice/docker-{cid}.scope/{file}"),
    ]
    .iter()
    .find_map(|p| std::fs::read_to_string(p).ok())
}

/// The settings doing their job, seen from inside a session: a program that
/// takes more memory than the limit is killed, the shell's exit says so,
/// and the session goes on.
#[tokio::test]
async fn a_memory_hog_is_killed_at_the_limit_and_the_session_says_so() {
    let server = Server::start().await;
    let mut ws = server.ws().await;
    let (sid, cid) = ws.create(json!({})).await;
    ws.run(&sid, "true").await;
    // `tail` keeps the last "line" of an endless one whole: it grows
    // until the memory limit (512 MiB, no swap) stops it.
    ws.input(&sid, "exec sh -c 'cat /dev/zero | tail'\n").await;
    let exit = ws.expect("exit").await;
    assert_eq!(exit["code"], 137, "{exit}");
    assert_eq!(exit["signal"], "SIGKILL", "{exit}");
    let oom = cgroup_file(&cid, "memory", "memory.oom_control")
        .or_else(|| cgroup_file(&cid, "memory", "memory.events"))
        .expect("the container's memory cgroup");
    let kills: u64 = oom
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        kills >= 1,
        "the kernel's out-of-memory killer did it: {oom}"
    );
    // The container and the session live on: a new shell on attach.
    ws.send(json!({"type": "attach", "sessionId": sid})).await;
    ws.expect("attached").await;
    let out = ws.run(&sid, "echo alive-$((6*7))").await;
    assert!(out.contains("alive-42"), "{out:?}");
}

/// A fork bomb stops at the pids limit; the server and other sessions stay
/// responsive meanwhile.
#[tokio::test]
async fn a_fork_bomb_stops_at_the_pids_limit_and_others_stay_responsive() {
    let server = Server::start().await;
    let mut ws = server.ws().await;
    let (bomb_sid, bomb_cid) = ws.create(json!({})).await;
    let (other_sid, _) = ws.create(json!({})).await;
    ws.run(&other_sid, "true").await;
    ws.run(&bomb_sid, "true").await;
    ws.input(&bomb_sid, "b() { b | b & }; b\n").await;
    // The kernel refuses forks past the limit (and counts each refusal).
    let refused = eventually("forks refused at the pids limit", || async {
        let events = cgroup_file(&bomb_cid, "pids", "pids.events")?;
        let n: u64 = events
            .lines()
            .find_map(|l| l.strip_prefix("max "))?
            .trim()
            .parse()
            .ok()?;
        (n > 0).then_some(n)
    })
    .await;
    assert!(refused > 0);
    let current: u64 = cgroup_file(&bomb_cid, "pids", "pids.current")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(current <= 256, "{current} processes");
    // Everyone else is served meanwhile.
    let out = ws.run(&other_sid, "echo still-$((6*7))").await;
    assert!(out.contains("still-42"), "{out:?}");
    let (status, _) = server.get("/api/health").await;
    assert_eq!(status, 200);
    let (status, _) = server.delete(&format!("/api/containers/{bomb_sid}")).await;
    assert_eq!(status, 200);
}

/// `/tmp` fills to its size and no further; the root filesystem refuses
/// writes; no operation that needs a capability works.
#[tokio::test]
async fn tmp_is_bounded_the_root_is_read_only_and_no_capability_is_usable() {
    let server = Server::start().await;
    let mut ws = server.ws().await;
    let (sid, _) = ws.create(json!({})).await;
    let out = ws
        .run(
            &sid,
            "dd if=/dev/zero of=/tmp/fill bs=1M count=400 2>&1; echo size=$(wc -c < /tmp/fill); rm /tmp/fill",
        )
        .await;
    assert!(out.contains("No space left on device"), "{out:?}");
    let size: u64 = out
        .split("size=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out:?}"));
    assert!(size <= 256 << 20 && size > 200 << 20, "{size} bytes");

    let out = ws
        .run(
            &sid,
            "echo x > /etc/x 2>&1; echo x > /bin/x 2>&1; echo done",
        )
        .await;
    assert_eq!(out.matches("Read-only file system").count(), 2, "{out:?}");

    // Each of these needs a capability (CHOWN, MKNOD, SYS_CHROOT, SYS_NICE,
    // SYS_ADMIN, NET_ADMIN) or a new user namespace to gain them.
    let attempts = [
        "chown 0 /tmp/t",
        "mknod /tmp/n c 1 3",
        "chroot / true",
        "renice -n -5 $$",
        "hostname elsewhere",
        "ip link add studio0 type dummy",
        "unshare -r true",
    ];
    let script = attempts
        .iter()
        .map(|a| format!("{a} >/dev/null 2>&1 && echo 'ALLOWED: {a}' || echo 'refused: {a}'"))
        .collect::<Vec<_>>()
        .join("; ");
    let out = ws.run(&sid, &format!("touch /tmp/t; {script}")).await;
    assert!(!out.contains("ALLOWED"), "{out:?}");
    assert_eq!(out.matches("refused:").count(), attempts.len(), "{out:?}");
}

/// Two sessions cannot reach each other, though each reaches itself.
#[tokio::test]
async fn two_sessions_cannot_reach_each_other() {
    let server = Server::start().await;
    let mut ws = server.ws().await;
    let (a, a_cid) = ws.create(json!({})).await;
    let (b, _) = ws.create(json!({})).await;
    ws.input(&a, "preview-upstream 8080 &\n").await;
    let info = docker_inspect("container", &a_cid).unwrap();
    let ip = info["NetworkSettings"]["Networks"]
        .as_object()
        .unwrap()
        .values()
        .find_map(|n| n["IPAddress"].as_str().filter(|s| !s.is_empty()))
        .unwrap()
        .to_string();
    let fetch =
        format!("printf 'GET /small HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ip} 8080 2>&1; echo rc=$?");
    // Until session A's app listens (it reaches itself: the server is up).
    let deadline = std::time::Instant::now() + WAIT;
    let own = loop {
        let out = ws.run(&a, &fetch).await;
        if out.contains("200 OK") {
            break out;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "session A's app never answered: {out:?}"
        );
    };
    assert!(own.contains("ok"), "{own:?}");
    let other = ws.run(&b, &fetch).await;
    assert!(
        !other.contains("200 OK"),
        "session B reached session A: {other:?}"
    );
    assert!(!other.contains("rc=0"), "{other:?}");
}
