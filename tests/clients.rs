//! The client libraries' own test suites, run from the README's test
//! command against the real server binary and engine: the Python package
//! (`clients/python`, pytest) and the TypeScript package
//! (`clients/typescript`, Node's test runner). Each suite starts the
//! servers it needs from `STUDIO_BIN` (with the shared scenarios of
//! `clients/scenarios.json` among its tests) and removes their containers.
//! `scripts/test` installs what they need first.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `program args` in `dir` with the server binary and test image
/// named; fails with everything it printed unless it succeeds.
async fn suite(dir: &Path, program: &Path, args: &[&str], what: &str) -> String {
    assert!(
        program.exists(),
        "{} is missing: scripts/test installs it",
        program.display()
    );
    let out = tokio::time::timeout(
        Duration::from_secs(600),
        tokio::process::Command::new(program)
            .args(args)
            .current_dir(dir)
            .env("STUDIO_BIN", env!("CARGO_BIN_EXE_claude-studio"))
            .env("STUDIO_IMAGE", test_image())
            // The servers the suites start run without a warm pool, as the
            // harness's do (see `ServerBuilder::default_pool`): the suites
            // count the containers their sessions leave.
            .env("STUDIO_WARM_POOL", "0")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("the {what} suite finishes"))
    .expect("it runs");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what}:\n{text}");
    text
}

#[tokio::test]
async fn the_python_client_passes_its_suite() {
    let dir = root().join("clients/python");
    let text = suite(
        &dir,
        &dir.join(".venv/bin/python"),
        &["-m", "pytest", "-q", "-p", "no:cacheprovider"],
        "Python client",
    )
    .await;
    assert!(text.contains(" passed"), "{text}");
    assert!(!text.contains(" failed"), "{text}");
}

#[tokio::test]
async fn the_python_client_type_checks() {
    let dir = root().join("clients/python");
    suite(&dir, &dir.join(".venv/bin/mypy"), &[], "Python type check").await;
}

fn npm() -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("npm"))
                .find(|f| f.exists())
        })
        .expect("npm on the PATH")
}

#[tokio::test]
async fn the_typescript_client_passes_its_suite() {
    let dir = root().join("clients/typescript");
    assert!(
        dir.join("node_modules/typescript").exists(),
        "clients/typescript/node_modules is missing: scripts/test installs it (npm ci)"
    );
    let text = suite(&dir, &npm(), &["test"], "TypeScript client").await;
    assert!(
        text.contains("# fail 0") && !text.contains("# pass 0"),
        "{text}"
    );
}

#[tokio::test]
async fn the_typescript_client_type_checks() {
    let dir = root().join("clients/typescript");
    suite(&dir, &npm(), &["run", "typecheck"], "TypeScript type check").await;
}
