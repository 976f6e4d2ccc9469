//! WebSocket client messages: `protocol::ClientMessage::parse` on any text.
//!
//! Invariants: it never panics; every refusal is a `ValidationError`, sent
//! as the documented error message (`type`, `error`, `message`,
//! `retryable`: false); an accepted message passes the checks its handler
//! relies on (argv, cwd, timeout, stdin bytes, signal, terminal size); a
//! `create`'s image and environment, which the session manager checks next
//! (`SessionManager::check`), are accepted or refused as a
//! `ValidationError`, never a panic; and parsing is strict: the same object
//! with one unknown field more is refused (but `ping`, which may carry
//! anything).
#![no_main]

use claude_studio::error::ApiError;
use claude_studio::image::ImageRef;
use claude_studio::protocol::client::{check_exec_id, parse_signal, Create};
use claude_studio::protocol::validate::{env_pairs, optional_dims, MAX_TERMINAL_DIM};
use claude_studio::protocol::ClientMessage;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// A refusal as the client sees it.
fn check_refusal(e: &ApiError) {
    assert_eq!(e.name(), "ValidationError", "{e}");
    let v = e.to_ws_json(None);
    let Value::Object(m) = &v else {
        panic!("{v}");
    };
    let mut keys: Vec<&str> = m.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["error", "message", "retryable", "type"], "{v}");
    assert_eq!(v["type"], "error");
    assert_eq!(v["retryable"], false);
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
}

/// What the session manager checks of a parsed `create` without the
/// engine (its workspace directory is the `workspace_path` target's).
fn check_create(c: &Create) {
    c.check().expect("create checked");
    match optional_dims(c.cols, c.rows).expect("size checked") {
        Some((cols, rows)) => {
            assert!((1..=MAX_TERMINAL_DIM).contains(&cols), "{c:?}");
            assert!((1..=MAX_TERMINAL_DIM).contains(&rows), "{c:?}");
        }
        None => assert!(c.cols.is_none() && c.rows.is_none()),
    }
    if let Some(image) = &c.image {
        let _ = ImageRef::parse(image);
    }
    match env_pairs(&c.env.clone().unwrap_or_default()) {
        Ok(pairs) => {
            for (pair, (k, v)) in pairs.iter().zip(c.env.iter().flatten()) {
                assert_eq!(pair, &format!("{k}={v}"));
                assert!(
                    !k.is_empty() && !k.contains(['=', '\0']) && !v.contains('\0'),
                    "{pair:?}"
                );
            }
        }
        Err(e) => check_refusal(&e),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = ClientMessage::parse(text);
    let msg = match parsed {
        Ok(m) => m,
        Err(e) => {
            check_refusal(&e);
            return;
        }
    };
    // What the handlers rely on once a message is accepted.
    let _ = msg.session_id();
    match &msg {
        ClientMessage::Create(c) => check_create(c),
        ClientMessage::Resize(r) => {
            assert!((1..=MAX_TERMINAL_DIM).contains(&r.cols), "{r:?}");
            assert!((1..=MAX_TERMINAL_DIM).contains(&r.rows), "{r:?}");
        }
        ClientMessage::Exec(e) => {
            let argv = e.argv().expect("argv checked");
            assert!(!argv.is_empty() && !argv[0].is_empty());
            assert!(argv.iter().all(|a| !a.contains('\0')));
            assert!(e.cwd().expect("cwd checked").starts_with('/'));
            e.timeout().expect("timeout checked");
            if let Some(id) = &e.exec_id {
                check_exec_id(id).expect("execId checked");
            }
        }
        ClientMessage::ExecInput(m) => {
            assert!(m.exec_id.is_some());
            m.bytes().expect("data checked");
        }
        ClientMessage::ExecKill(m) => {
            parse_signal(m.signal.as_ref()).expect("signal checked");
        }
        _ => {}
    }
    // Strict: one unknown field more is refused, naming it.
    if msg == ClientMessage::Ping {
        return;
    }
    let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(text) else {
        panic!("an accepted message is a JSON object");
    };
    map.insert("zzUnknownField".into(), Value::from(1));
    let with_extra = Value::Object(map).to_string();
    let e = ClientMessage::parse(&with_extra).expect_err("an unknown field is refused");
    check_refusal(&e);
    assert!(e.to_string().contains("zzUnknownField"), "{e}");
});
