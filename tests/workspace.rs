//! `workspaceDir`: mounted when inside a workspace root, refused otherwise.

mod common;

use common::*;
use serde_json::json;

struct Dirs {
    base: std::path::PathBuf,
}
impl Drop for Dirs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

fn dirs() -> (Dirs, std::path::PathBuf, std::path::PathBuf) {
    let base = std::env::temp_dir().join(unique("studio-ws"));
    let root = base.join("root");
    let outside = base.join("outside");
    std::fs::create_dir_all(root.join("proj")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(root.join("proj/hello.txt"), "from-the-host\n").unwrap();
    std::fs::write(outside.join("secret.txt"), "top-secret\n").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
    // The container user (1000) must be able to write the mounted workspace.
    let _ = std::process::Command::new("chown")
        .args(["-R", "1000:1000"])
        .arg(root.join("proj"))
        .status();
    (Dirs { base }, root, outside)
}

#[tokio::test]
async fn a_workspace_inside_the_root_is_mounted_read_write() {
    let (_d, root, _) = dirs();
    let server = Server::builder()
        .arg("--workspace-root")
        .arg(root.to_str().unwrap())
        .start()
        .await;
    let mut ws = server.ws().await;
    let proj = root.join("proj");
    let (sid, _) = ws
        .create(json!({"workspaceDir": proj.to_str().unwrap()}))
        .await;
    let out = ws
        .run(
            &sid,
            "cat /workspace/hello.txt; echo made > /workspace/new.txt",
        )
        .await;
    assert!(out.contains("from-the-host"), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(proj.join("new.txt")).unwrap(),
        "made\n"
    );
}

#[tokio::test]
async fn traversal_symlinks_and_outside_paths_are_refused() {
    let (_d, root, outside) = dirs();
    let server = Server::builder()
        .arg("--workspace-root")
        .arg(root.to_str().unwrap())
        .start()
        .await;
    let traversal = format!("{}/proj/../../outside", root.display());
    let escape = format!("{}/escape", root.display());
    let missing = format!("{}/missing", root.display());
    let file = format!("{}/proj/hello.txt", root.display());
    for (path, needle) in [
        (traversal.as_str(), "outside the allowed workspace roots"),
        (escape.as_str(), "outside the allowed workspace roots"),
        (
            outside.to_str().unwrap(),
            "outside the allowed workspace roots",
        ),
        ("/etc", "outside the allowed workspace roots"),
        (missing.as_str(), "does not exist"),
        (file.as_str(), "not a directory"),
        ("proj", "absolute"),
    ] {
        let body = json!({ "workspaceDir": path }).to_string();
        let (status, resp) = server.post("/api/containers", &body).await;
        assert_eq!(status, 400, "{path}: {resp}");
        assert_eq!(resp["error"], "ValidationError");
        let msg = resp["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{path}: {msg}");
        // Never reveal the resolved host path of a symlink.
        if path == escape {
            assert!(!msg.contains(outside.to_str().unwrap()), "{msg}");
        }
    }
    // Over WebSocket too.
    let mut ws = server.ws().await;
    ws.send(json!({"type": "create", "workspaceDir": escape}))
        .await;
    let e = ws.expect("error").await;
    assert_eq!(e["error"], "ValidationError");
    assert!(instance_containers(&server.instance).is_empty());
}
