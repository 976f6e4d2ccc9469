//! End to end in a real headless Chromium: a preview page logs, throws and
//! rejects, and a WebSocket client of the session receives each as a
//! `console` message, on the path preview, on the host-based origin, and on
//! a page whose Content-Security-Policy would otherwise block the script.

mod common;
#[path = "preview_support/mod.rs"]
mod support;

use std::process::Stdio;

use common::*;
use serde_json::Value;
use support::*;

const CHROMIUM: &str = "/usr/bin/chromium";

/// A headless Chromium showing one page; killed (and its profile removed)
/// when dropped, whatever the test's outcome.
struct Browser {
    child: tokio::process::Child,
    profile: std::path::PathBuf,
}

impl Browser {
    fn open(url: &str) -> Browser {
        assert!(
            std::path::Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is missing; scripts/test installs Debian's chromium"
        );
        let profile = std::env::temp_dir().join(unique("studio-chromium"));
        std::fs::create_dir_all(&profile).unwrap();
        let child = tokio::process::Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--no-first-run",
                "--no-default-browser-check",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromium");
        Browser { child, profile }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        // Let the process go before its profile does.
        if let Some(pid) = self.child.id() {
            for _ in 0..50 {
                if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Collects `console` messages until `done` says all expected ones are in.
async fn console_messages(ws: &mut Ws, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let mut seen = Vec::new();
    while !done(&seen) {
        seen.push(ws.expect("console").await);
    }
    seen
}

fn has(seen: &[Value], level: &str, needle: &str) -> bool {
    seen.iter()
        .any(|m| m["level"] == level && m["args"].to_string().contains(needle))
}

fn page_is_complete(seen: &[Value]) -> bool {
    has(seen, "log", "hello from preview")
        && has(seen, "warn", "careful")
        && has(seen, "error", "boom")
        && has(seen, "error", "nope")
}

fn check_console_page(seen: &[Value], sid: &str, url_end: &str) {
    let log = seen.iter().find(|m| m["level"] == "log").unwrap();
    assert_eq!(
        log["args"],
        serde_json::json!(["hello from preview", 42, {"a": 1}]),
        "{log}"
    );
    for m in seen {
        assert_eq!(m["sessionId"], sid);
        assert!(m["url"].as_str().unwrap().ends_with(url_end), "{m}");
        assert!(m["timestamp"].as_u64().unwrap() > 0);
    }
    let boom = seen
        .iter()
        .find(|m| m["args"].to_string().contains("boom"))
        .unwrap();
    assert!(
        boom["args"][0].as_str().unwrap().starts_with("Uncaught"),
        "{boom}"
    );
    assert_eq!(boom["kind"], "uncaught", "{boom}");
    assert!(
        log.get("kind").is_none(),
        "a console call has no kind: {log}"
    );
    let nope = seen
        .iter()
        .find(|m| m["args"].to_string().contains("nope"))
        .unwrap();
    assert!(
        nope["args"][0]
            .as_str()
            .unwrap()
            .starts_with("Unhandled promise rejection"),
        "{nope}"
    );
    assert_eq!(nope["kind"], "unhandledrejection", "{nope}");
}

#[tokio::test]
async fn a_real_browser_page_reports_its_console_to_the_session() {
    let mut p = Preview::start().await;
    // A path-based preview opened in a browser: it is sent to the preview's
    // own origin, where the page runs (and reports).
    let host_origin = format!("http://{}", p.preview_host().to_ascii_lowercase());
    let browser = Browser::open(&p.url("/console.html"));
    let seen = console_messages(&mut p.ws, page_is_complete).await;
    check_console_page(&seen, &p.sid, "/console.html");
    assert!(
        seen[0]["url"].as_str().unwrap().starts_with(&host_origin),
        "the page ran on its own origin: {}",
        seen[0]["url"]
    );
    drop(browser);

    // The host-based origin directly (Chromium resolves *.localhost to
    // loopback and lower-cases the host name).
    let url = format!("http://{}/console.html", p.preview_host());
    let browser = Browser::open(&url);
    let seen = console_messages(&mut p.ws, page_is_complete).await;
    check_console_page(&seen, &p.sid, "/console.html");
    assert!(seen[0]["url"].as_str().unwrap().starts_with(&host_origin));
    drop(browser);

    // A page whose CSP allows only same-origin scripts and no connections.
    let browser = Browser::open(&p.url("/csp-console.html"));
    let seen = console_messages(&mut p.ws, |s| has(s, "error", "from a strict page")).await;
    assert!(seen.last().unwrap()["args"][1]
        .as_str()
        .unwrap()
        .ends_with("/csp-console.html"));
    drop(browser);
}

/// A previewed page, opened by path or by host, tries the API, a terminal
/// and the studio page's storage with the browser's credentials: each fails.
#[tokio::test]
async fn a_preview_page_cannot_drive_the_api_or_other_terminals() {
    let mut p = Preview::start().await;
    let (victim, victim_cid) = p.server.create_rest().await;
    let api = format!("http://127.0.0.1:{}", p.server.addr.port());
    let query = format!("/attack.html?victim={victim}&api={api}");
    for url in [p.url(&query), format!("http://{}{query}", p.preview_host())] {
        let before = instance_containers(&p.server.instance).len();
        let browser = Browser::open(&url);
        let done = |s: &[Value]| {
            has(s, "log", "api ")
                && (has(s, "log", "ws refused") || has(s, "log", "ws open"))
                && has(s, "log", "storage ")
                && has(s, "log", "create ")
        };
        let seen = console_messages(&mut p.ws, done).await;
        drop(browser);
        assert!(has(&seen, "log", "api unreadable"), "{url}: {seen:?}");
        assert!(has(&seen, "log", "ws refused"), "{url}: {seen:?}");
        assert!(has(&seen, "log", "storage blocked"), "{url}: {seen:?}");
        assert_eq!(
            instance_containers(&p.server.instance).len(),
            before,
            "{url}: a session was created from a preview page"
        );
        // Asked of the victim's container itself (the exec must work: a
        // container that is gone proves nothing).
        let seen = docker(&[
            "exec",
            &victim_cid,
            "sh",
            "-c",
            "test -e /tmp/pwned && echo typed-into || echo untouched",
        ]);
        assert_eq!(
            seen, "untouched",
            "{url}: the victim's terminal was typed into"
        );
    }
}
