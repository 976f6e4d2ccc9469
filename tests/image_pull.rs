//! A missing image is pulled, with progress over the WebSocket. The registry
//! is Debian's `docker-registry`, run by the test on a loopback port and fed
//! with the locally built test image (the engine treats 127.0.0.0/8
//! registries as plain HTTP).

mod common;

use common::registry::registry_with_test_image;
use common::*;
use serde_json::json;

#[tokio::test]
async fn a_missing_image_is_pulled_with_progress_then_used() {
    let reg = registry_with_test_image().await;
    let server = Server::start().await;
    let mut ws = server.ws().await;
    ws.send(json!({"type": "create", "image": reg.image})).await;
    let mut progress = Vec::new();
    let created = loop {
        let m = ws.next().await.expect("open");
        match m["type"].as_str().unwrap() {
            "progress" => progress.push(m),
            "container_created" => break m,
            other => panic!("unexpected {other}: {m}"),
        }
    };
    assert!(!progress.is_empty(), "pull progress was reported");
    for p in &progress {
        assert_eq!(p["stage"], "pull", "{p}");
        assert!(p["message"].is_string(), "{p}");
        assert!(
            p.get("current").is_some() && p.get("total").is_some(),
            "{p}"
        );
    }
    assert!(
        progress
            .iter()
            .any(|p| p["total"].as_i64().unwrap_or(0) > 0),
        "byte counts were reported: {progress:?}"
    );
    let sid = created["sessionId"].as_str().unwrap().to_string();
    let out = ws.run(&sid, "echo pulled-$((2+3))").await;
    assert!(out.contains("pulled-5"), "{out:?}");
}

/// A pull that fails says why: the image's registry out of reach, or the
/// image not in it (both ContainerCreationError, naming the image).
#[tokio::test]
async fn a_failed_pull_says_why() {
    let reg = registry_with_test_image().await;
    let server = Server::start().await;
    let registry = reg.image.split('/').next().unwrap().to_string();
    for (image, why) in [
        // Nothing listens on port 1.
        (
            "127.0.0.1:1/studio/none:v1".to_string(),
            "could not be reached",
        ),
        (format!("{registry}/studio/missing:v1"), "not found"),
    ] {
        let (status, body) = server
            .post("/api/containers", &json!({"image": image}).to_string())
            .await;
        assert_eq!(status, 500, "{body}");
        assert_eq!(body["error"], "ContainerCreationError");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(&format!("'{image}'")), "{message}");
        assert!(message.contains(why), "{image}: {message}");
    }
    assert!(instance_containers(&server.instance).is_empty());
}
