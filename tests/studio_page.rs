//! The studio page in a real browser: its own Playwright tests (`web/tests`,
//! Node's test runner driving Debian's Chromium through playwright-core)
//! run here against the real server serving the page, on the real engine.
//! `scripts/test` installs the page's Node packages first.

mod common;

use common::*;

/// Runs one test file of `web/tests` against `server`; fails with what it
/// printed when any of its tests fails.
async fn web_test(server: &Server, file: &str, env: &[(&str, &str)]) {
    let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    assert!(
        web.join("node_modules/playwright-core").exists(),
        "web/node_modules is missing: scripts/test installs it (cd web && npm ci)"
    );
    let mut cmd = tokio::process::Command::new("node");
    cmd.current_dir(&web)
        .args(["--test", "--test-concurrency=1", &format!("tests/{file}")])
        .env(
            "STUDIO_URL",
            format!("http://127.0.0.1:{}", server.addr.port()),
        )
        .env("STUDIO_IMAGE", test_image())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(240), cmd.output())
        .await
        .expect("the browser tests finish")
        .expect("node runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("# fail 0") && !text.contains("# pass 0"),
        "{file}:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A server as the page tests need it: they open a few sockets each.
async fn server() -> Server {
    Server::builder()
        .args(["--rate-limit-ws", "off"])
        .start()
        .await
}

#[tokio::test]
async fn the_page_creates_a_session_types_utf8_and_resizes() {
    web_test(&server().await, "terminal.test.mjs", &[]).await;
}

#[tokio::test]
async fn the_page_shows_the_preview_and_its_console() {
    web_test(&server().await, "preview.test.mjs", &[]).await;
}

#[tokio::test]
async fn a_reload_comes_back_to_the_session_with_its_replay() {
    web_test(&server().await, "reload.test.mjs", &[]).await;
}

#[tokio::test]
async fn the_page_speaks_the_protocol_as_documented() {
    web_test(&server().await, "contract.test.mjs", &[]).await;
}

#[tokio::test]
async fn with_tokens_the_page_asks_for_one_and_says_when_it_is_wrong() {
    let token = "page-token-0123456789";
    let s = Server::builder()
        .args(["--rate-limit-ws", "off", "--api-token", token])
        .start()
        .await;
    web_test(&s, "auth.test.mjs", &[("STUDIO_TOKEN", token)]).await;
}

/// A newcomer's path: the default image cannot be pulled here, so the page's
/// first session gets the development image scripts/run (and scripts/test)
/// build from Debian's packages; a Node.js server started in its terminal
/// shows in the preview with its console.
#[tokio::test]
async fn a_newcomer_goes_from_nothing_to_an_app_in_the_preview() {
    let dev = "claude-studio-dev:latest";
    assert!(
        docker_inspect("image", dev).is_some(),
        "{dev} is missing: scripts/test builds it (scripts/build-dev-image.sh)"
    );
    let s = Server::builder()
        .args(["--rate-limit-ws", "off", "--fallback-image", dev])
        // An image no registry here can give.
        .args(["--default-image", "studio-absent/node:20-alpine"])
        .start()
        .await;
    web_test(&s, "newcomer.test.mjs", &[]).await;
}

/// The server stops and starts again: the page reconnects by itself to the
/// same session. The test file runs the server binary itself.
#[tokio::test]
async fn the_page_reconnects_by_itself_when_the_server_restarts() {
    let instance = unique("web-restart");
    let state = state_root(&instance);
    let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    let out = tokio::process::Command::new("node")
        .current_dir(&web)
        .args(["--test", "tests/restart.test.mjs"])
        .env("STUDIO_BIN", env!("CARGO_BIN_EXE_claude-studio"))
        .env("STUDIO_INSTANCE", &instance)
        .env("STUDIO_STATE_DIR", &state)
        .env("STUDIO_IMAGE", test_image())
        .env("STUDIO_WARM_POOL", "0")
        .kill_on_drop(true)
        .output()
        .await
        .expect("node runs");
    remove_instance_containers(&instance);
    let _ = std::fs::remove_dir_all(&state);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("# pass 1"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// With the studio page open and holding its token, a previewed page (by
/// host and by path) cannot open a terminal, use the API or read the
/// studio's storage.
#[tokio::test]
async fn a_previewed_page_cannot_drive_the_studio() {
    let token = "page-token-attacks-0123";
    let s = Server::builder()
        .args(["--rate-limit-ws", "off", "--api-token", token])
        .start()
        .await;
    web_test(&s, "attacks.test.mjs", &[("STUDIO_TOKEN", token)]).await;
}

/// A session whose image must be pulled shows the pull's progress.
#[tokio::test]
async fn the_page_shows_an_image_pull() {
    let reg = common::registry::registry_with_test_image().await;
    let s = server().await;
    web_test(&s, "pull.test.mjs", &[("STUDIO_PULL_IMAGE", &reg.image)]).await;
}

/// The README's screenshot is what this test takes: a real session with its
/// terminal, preview and console (written to target/studio-screenshot.png;
/// docs/studio.png is a copy).
#[tokio::test]
async fn a_screenshot_of_a_real_session_shows_terminal_preview_and_console() {
    let s = server().await;
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/studio-screenshot.png");
    let _ = std::fs::remove_file(&out);
    let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    let status = tokio::process::Command::new("node")
        .current_dir(&web)
        .arg("tests/screenshot.mjs")
        .env("STUDIO_URL", format!("http://127.0.0.1:{}", s.addr.port()))
        .env("STUDIO_IMAGE", test_image())
        .env("STUDIO_SCREENSHOT", &out)
        .kill_on_drop(true)
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let png = std::fs::read(&out).expect("the screenshot");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
}
