//! Commands (`/api/containers/:id/exec` and the WebSocket `exec`), against
//! the real server and engine: exact exit codes, signals and timeouts,
//! stdout and stderr apart, large and binary output, stdin, kill, several
//! at once beside the terminal, and every bad request refused clearly.

mod common;

use std::time::Duration;

use base64::Engine;
use common::*;
use serde_json::{json, Value};

async fn exec(server: &Server, sid: &str, body: Value) -> (u16, Value) {
    server
        .post(&format!("/api/containers/{sid}/exec"), &body.to_string())
        .await
}

/// Runs a command over REST and returns its result (asserting 200).
async fn run(server: &Server, sid: &str, body: Value) -> Value {
    let (status, v) = exec(server, sid, body).await;
    assert_eq!(status, 200, "{v}");
    v
}

#[tokio::test]
async fn exit_codes_signals_and_timeouts_are_exact() {
    let server = Server::start().await;
    let (sid, _) = server.create_rest().await;
    let r = run(&server, &sid, json!({"cmd": "true"})).await;
    assert_eq!(
        (r["exitCode"].clone(), r["signal"].clone()),
        (json!(0), Value::Null)
    );
    assert_eq!(r["timedOut"], false);
    assert_eq!(r["running"], false);
    let r = run(&server, &sid, json!({"cmd": ["sh", "-c", "exit 42"]})).await;
    assert_eq!(r["exitCode"], 42);
    assert_eq!(r["signal"], Value::Null);
    // A process ended by a signal: 128 + N, and the signal's name.
    let r = run(&server, &sid, json!({"cmd": "kill -TERM $$"})).await;
    assert_eq!(
        (r["exitCode"].clone(), r["signal"].clone()),
        (json!(143), json!("SIGTERM"))
    );
    let r = run(&server, &sid, json!({"cmd": "kill -SEGV $$"})).await;
    assert_eq!(r["signal"], "SIGSEGV");
    // A program that does not exist.
    let r = run(&server, &sid, json!({"cmd": ["no-such-program"]})).await;
    assert_eq!(r["exitCode"], 127, "{r}");
    // A timeout kills the whole process group, children included.
    let started = std::time::Instant::now();
    let r = run(
        &server,
        &sid,
        json!({"cmd": "sleep 300 & sleep 301; echo never", "timeout": 0.5}),
    )
    .await;
    assert_eq!(r["timedOut"], true, "{r}");
    assert_eq!(
        (r["exitCode"].clone(), r["signal"].clone()),
        (json!(137), json!("SIGKILL"))
    );
    assert_eq!(r["stdout"], "");
    assert!(started.elapsed() < Duration::from_secs(10));
    let ps = run(&server, &sid, json!({"cmd": "ps -o pid,args"})).await;
    let ps = ps["stdout"].as_str().unwrap();
    assert!(
        !ps.contains("sleep 300") && !ps.contains("sleep 301"),
        "{ps}"
    );
    assert!(r["durationMs"].as_u64().unwrap() >= 500);
}

#[tokio::test]
async fn stdout_and_stderr_stay_apart_and_whole() {
    let server = Server::start().await;
    let (sid, _) = server.create_rest().await;
    // Interleaved writes, one line at a time on each stream.
    let r = run(
        &server,
        &sid,
        json!({"cmd": "i=0; while [ $i -lt 300 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done"}),
    )
    .await;
    let want = |p: &str| (0..300).map(|i| format!("{p}{i}\n")).collect::<String>();
    assert_eq!(r["stdout"], want("out"));
    assert_eq!(r["stderr"], want("err"));
    assert_eq!(r["truncated"], false);
    // Large output arrives whole.
    let r = run(
        &server,
        &sid,
        json!({"cmd": "yes 0123456789abcdef | head -c 6000000"}),
    )
    .await;
    let out = r["stdout"].as_str().unwrap();
    assert_eq!(out.len(), 6_000_000);
    assert!(out.starts_with("0123456789abcdef\n0123"));
    // Beyond the cap it is cut and says so, and the command still ends well.
    let r = run(
        &server,
        &sid,
        json!({"cmd": "head -c 20000000 /dev/zero | tr '\\0' a; echo done >&2"}),
    )
    .await;
    assert_eq!(r["exitCode"], 0);
    assert_eq!(r["truncated"], true);
    assert_eq!(
        r["stdout"].as_str().unwrap().len() + r["stderr"].as_str().unwrap().len(),
        16 * 1024 * 1024
    );
    // Bytes that are not UTF-8 come base64, marked.
    let r = run(
        &server,
        &sid,
        json!({"cmd": "printf '\\377\\376\\000A'; printf 'é' >&2"}),
    )
    .await;
    assert_eq!(r["stdoutEncoding"], "base64", "{r}");
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(r["stdout"].as_str().unwrap())
            .unwrap(),
        vec![0xff, 0xfe, 0x00, b'A']
    );
    assert_eq!(r["stderr"], "é");
    assert!(r.get("stderrEncoding").is_none());
}

#[tokio::test]
async fn commands_run_as_the_session_user_where_and_how_asked() {
    let server = Server::start().await;
    let (sid, _) = server.create_rest().await;
    let r = run(
        &server,
        &sid,
        json!({"cmd": "id -u; id -g; pwd; echo $GREETING", "env": {"GREETING": "hi there"}}),
    )
    .await;
    assert_eq!(r["stdout"], "1000\n1000\n/workspace\nhi there\n");
    let r = run(&server, &sid, json!({"cmd": ["pwd"], "cwd": "/tmp"})).await;
    assert_eq!(r["stdout"], "/tmp\n");
    // Root is out of reach: no su, no capabilities.
    let r = run(&server, &sid, json!({"cmd": "touch /etc/x"})).await;
    assert_ne!(r["exitCode"], 0);
    // stdin given: written, then closed.
    let r = run(&server, &sid, json!({"cmd": "wc -c; cat", "stdin": "abc"})).await;
    assert_eq!(r["stdout"], "3\n");
    let r = run(
        &server,
        &sid,
        json!({"cmd": "cat", "stdin": "line 1\nline 2\n"}),
    )
    .await;
    assert_eq!(r["stdout"], "line 1\nline 2\n");
}

#[tokio::test]
async fn bad_commands_are_refused_with_clear_errors() {
    let server = Server::start().await;
    let (sid, _) = server.create_rest().await;
    for (body, needle) in [
        (json!({}), "cmd"),
        (json!({"cmd": 5}), "cmd must be"),
        (json!({"cmd": []}), "empty"),
        (json!({"cmd": ""}), "empty"),
        (json!({"cmd": ["ls", 3]}), "cmd[1]"),
        (json!({"cmd": "ls", "cwd": "relative"}), "cwd"),
        (json!({"cmd": "ls", "timeout": 0}), "timeout"),
        (json!({"cmd": "ls", "timeout": -1}), "timeout"),
        (json!({"cmd": "ls", "timeout": "5"}), "timeout"),
        (json!({"cmd": "ls", "env": {"BAD-NAME": "x"}}), "BAD-NAME"),
        (json!({"cmd": "ls", "execId": "has space"}), "execId"),
        (json!({"cmd": "ls", "shell": true}), "shell"),
        (
            json!({"cmd": "ls", "sessionId": "session-other"}),
            "differs",
        ),
    ] {
        let (status, v) = exec(&server, &sid, body.clone()).await;
        assert_eq!(status, 400, "{body} -> {v}");
        assert_eq!(v["error"], "ValidationError", "{body}");
        assert!(
            v["message"].as_str().unwrap().contains(needle),
            "{body} -> {v}"
        );
    }
    let (status, v) = exec(&server, "session-nope", json!({"cmd": "ls"})).await;
    assert_eq!(
        (status, v["error"].clone()),
        (404, json!("ContainerNotFoundError"))
    );
    let (status, v) = server
        .get(&format!("/api/containers/{sid}/exec/no-such-command"))
        .await;
    assert_eq!(
        (status, v["error"].clone()),
        (404, json!("CommandNotFoundError"))
    );
    // A client's id is used, and cannot be used twice.
    let r = run(&server, &sid, json!({"cmd": "true", "execId": "build-1"})).await;
    assert_eq!(r["execId"], "build-1");
    let (status, v) = exec(&server, &sid, json!({"cmd": "true", "execId": "build-1"})).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (409, Some("ValidationError")),
        "{v}"
    );
    assert!(v["message"].as_str().unwrap().contains("in use"));
    // Its result stays readable after it ended.
    let (status, v) = server
        .get(&format!("/api/containers/{sid}/exec/build-1"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(v["exitCode"], 0);
    // A body too large is refused before it is read.
    let (status, v) = exec(
        &server,
        &sid,
        json!({"cmd": "true", "stdin": "x".repeat(2 << 20)}),
    )
    .await;
    assert_eq!(
        (status, v["error"].clone()),
        (413, json!("MessageTooLarge"))
    );
}

#[tokio::test]
async fn stdin_kill_and_listing_over_rest_and_websocket() {
    let server = Server::start().await;
    let mut ws = server.ws().await;
    let (sid, _) = ws.create(json!({})).await;
    // Stdin stays open without `stdin`: fed piece by piece, then closed.
    ws.send(json!({"type": "exec", "sessionId": sid, "execId": "cat-1", "cmd": ["cat"]}))
        .await;
    let started = ws.expect("exec_started").await;
    assert_eq!(
        (started["execId"].as_str(), started["sessionId"].as_str()),
        (Some("cat-1"), Some(sid.as_str()))
    );
    ws.send(json!({"type": "exec_input", "sessionId": sid, "execId": "cat-1", "data": "hello\n"}))
        .await;
    let out = ws.expect("exec_output").await;
    assert_eq!(
        (out["stream"].as_str(), out["data"].as_str()),
        (Some("stdout"), Some("hello\n"))
    );
    // Listed while it runs, with its output so far over REST.
    let (_, list) = server.get(&format!("/api/containers/{sid}/exec")).await;
    let ids: Vec<&str> = list["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["execId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["cat-1"]);
    assert_eq!(list["commands"][0]["cmd"], json!(["cat"]));
    let (_, now) = server
        .get(&format!("/api/containers/{sid}/exec/cat-1"))
        .await;
    assert_eq!(
        (now["running"].clone(), now["stdout"].clone()),
        (json!(true), json!("hello\n"))
    );
    // Over REST too, binary this time, then end of input.
    let r = server
        .post(
            &format!("/api/containers/{sid}/exec/cat-1/input"),
            &json!({"data": "AAH/", "encoding": "base64", "eof": true}).to_string(),
        )
        .await;
    assert_eq!(r.0, 204, "{}", r.1);
    let out = ws.expect("exec_output").await;
    assert_eq!(out["encoding"], "base64");
    assert_eq!(out["data"], "AAH/");
    let exit = ws.expect("exec_exit").await;
    assert_eq!(
        (exit["execId"].as_str(), exit["code"].as_i64()),
        (Some("cat-1"), Some(0))
    );
    assert_eq!(exit["timedOut"], false);
    assert!(exit["seq"].as_u64().is_some(), "{exit}");
    // Input to an ended command is refused.
    ws.send(json!({"type": "exec_input", "sessionId": sid, "execId": "cat-1", "data": "x"}))
        .await;
    let err = ws.expect("error").await;
    assert_eq!(
        (err["error"].as_str(), err["execId"].as_str()),
        (Some("ValidationError"), Some("cat-1"))
    );

    // Kill over the WebSocket: SIGKILL unless told otherwise.
    ws.send(json!({"type": "exec", "sessionId": sid, "execId": "sleeper", "cmd": "echo up; exec sleep 300"}))
        .await;
    ws.expect("exec_started").await;
    ws.expect("exec_output").await;
    ws.send(json!({"type": "exec_kill", "sessionId": sid, "execId": "sleeper"}))
        .await;
    let exit = ws.expect("exec_exit").await;
    assert_eq!(
        (exit["code"].as_i64(), exit["signal"].as_str()),
        (Some(137), Some("SIGKILL"))
    );
    // Over REST, with a signal of the caller's choice.
    ws.send(json!({"type": "exec", "sessionId": sid, "execId": "trapper", "cmd": "trap 'echo bye; exit 7' TERM; echo ready; while true; do sleep 0.05; done"}))
        .await;
    ws.expect("exec_started").await;
    let ready = ws.expect("exec_output").await;
    assert_eq!(ready["data"], "ready\n");
    let (status, v) = server
        .delete(&format!(
            "/api/containers/{sid}/exec/trapper?signal=SIGTERM"
        ))
        .await;
    assert_eq!(status, 200, "{v}");
    // (The shell may say on stderr that its sleep was terminated too.)
    let bye = loop {
        let m = ws.expect("exec_output").await;
        if m["stream"] == "stdout" {
            break m;
        }
    };
    assert_eq!(bye["data"], "bye\n");
    let exit = ws.expect("exec_exit").await;
    assert_eq!(
        (exit["code"].as_i64(), exit["signal"].clone()),
        (Some(7), Value::Null)
    );
    let (status, v) = server
        .delete(&format!(
            "/api/containers/{sid}/exec/trapper?signal=SIGNOPE"
        ))
        .await;
    assert_eq!(status, 400, "{v}");
    ws.send(json!({"type": "exec", "sessionId": sid, "execId": "bad-1", "cmd": 7}))
        .await;
    let err = ws.expect("error").await;
    assert_eq!(err["error"], "ValidationError");
    // The error names the session and the command it is about.
    assert_eq!(
        (err["sessionId"].as_str(), err["execId"].as_str()),
        (Some(sid.as_str()), Some("bad-1"))
    );
    // The connection is still usable after every error.
    ws.send(json!({"type": "ping"})).await;
    ws.expect("pong").await;
}

#[tokio::test]
async fn commands_run_side_by_side_with_the_terminal() {
    let server = Server::start().await;
    let mut ws = server.ws().await;
    let (sid, _) = ws.create(json!({})).await;
    // The terminal works while commands run.
    let term = ws.run(&sid, "echo terminal-ok").await;
    assert!(term.contains("terminal-ok"));
    let runs = (0..8).map(|i| {
        let server = &server;
        let sid = sid.clone();
        async move {
            let r = run(
                server,
                &sid,
                json!({"cmd": format!("sleep 0.3; echo out{i}; echo err{i} >&2; exit {i}")}),
            )
            .await;
            (i, r)
        }
    });
    let (results, term) = tokio::join!(
        futures_util::future::join_all(runs),
        ws.run(&sid, "echo still-ok")
    );
    assert!(term.contains("still-ok"));
    for (i, r) in results {
        assert_eq!(r["exitCode"], i, "{r}");
        assert_eq!(r["stdout"], format!("out{i}\n"));
        assert_eq!(r["stderr"], format!("err{i}\n"));
    }
}

#[tokio::test]
async fn commands_per_session_are_capped() {
    let server = Server::start().await;
    let mut ws = server.ws().await;
    let (sid, _) = ws.create(json!({})).await;
    for i in 0..16 {
        ws.send(json!({"type": "exec", "sessionId": sid, "execId": format!("s{i}"), "cmd": "exec sleep 300"}))
            .await;
        ws.expect("exec_started").await;
    }
    let (status, v) = exec(&server, &sid, json!({"cmd": "true"})).await;
    assert_eq!(
        (status, v["error"].clone()),
        (429, json!("RateLimitError")),
        "{v}"
    );
    assert_eq!(v["retryable"], true);
    ws.send(json!({"type": "exec_kill", "sessionId": sid, "execId": "s3"}))
        .await;
    loop {
        let m = ws.expect("exec_exit").await;
        if m["execId"] == "s3" {
            break;
        }
    }
    let r = run(&server, &sid, json!({"cmd": "echo room"})).await;
    assert_eq!(r["stdout"], "room\n");
}

#[tokio::test]
async fn streamed_over_rest_as_json_lines() {
    let server = Server::start().await;
    let (sid, _) = server.create_rest().await;
    let resp = server
        .http
        .post(server.url(&format!("/api/containers/{sid}/exec")))
        .header("accept", "application/x-ndjson")
        .json(&json!({"cmd": "echo one; echo two >&2; exit 3", "execId": "lines"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    let text = resp.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.first().unwrap()["type"], "exec_started");
    assert_eq!(lines.last().unwrap()["type"], "exec_exit");
    assert_eq!(lines.last().unwrap()["code"], 3);
    let stdout: String = lines
        .iter()
        .filter(|l| l["type"] == "exec_output" && l["stream"] == "stdout")
        .map(|l| l["data"].as_str().unwrap())
        .collect();
    let stderr: String = lines
        .iter()
        .filter(|l| l["type"] == "exec_output" && l["stream"] == "stderr")
        .map(|l| l["data"].as_str().unwrap())
        .collect();
    assert_eq!((stdout.as_str(), stderr.as_str()), ("one\n", "two\n"));
}

#[tokio::test]
async fn a_slow_reader_slows_the_command_instead_of_filling_memory() {
    let server = Server::start().await;
    let (sid, _) = server.create_rest().await;
    // A WebSocket that starts a flood of output and then reads nothing.
    let mut quiet = server.ws().await;
    quiet
        .send(json!({"type": "exec", "sessionId": sid, "execId": "flood", "cmd": "yes | head -c 30000000"}))
        .await;
    quiet.expect("exec_started").await;
    // Its output waits in bounded queues, so the command soon stops making
    // progress: what it has written stays the same from one look to the next.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut last = None;
    let stalled = loop {
        let (_, v) = server
            .get(&format!("/api/containers/{sid}/exec/flood"))
            .await;
        let kept = v["stdout"].as_str().map_or(0, str::len);
        if kept > 0 && last == Some(kept) {
            break v;
        }
        last = Some(kept);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the command never stalled"
        );
        // The pause is what is measured: no progress across it.
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(stalled["running"], true, "{stalled}");
    let kept = stalled["stdout"].as_str().unwrap().len();
    assert!(
        kept < 16 * 1024 * 1024,
        "kept {kept} bytes: the command was not slowed"
    );
    // Reading again lets it finish, every byte delivered.
    let mut got = 0;
    loop {
        let m = quiet.next().await.expect("open");
        match m["type"].as_str() {
            Some("exec_output") => got += m["data"].as_str().unwrap().len(),
            Some("exec_exit") => {
                assert_eq!(m["code"], 0);
                break;
            }
            _ => {}
        }
    }
    assert_eq!(got, 30_000_000);
}

#[tokio::test]
async fn a_signal_sent_right_after_the_start_is_not_lost() {
    let server = Server::start().await;
    let mut ws = server.ws().await;
    let (sid, _) = ws.create(json!({})).await;
    for i in 0..5 {
        let id = format!("quick-{i}");
        // The kill follows the start at once: before the engine may know
        // the command's process.
        ws.send(json!({"type": "exec", "sessionId": sid, "execId": id, "cmd": ["sleep", "30"]}))
            .await;
        ws.send(json!({"type": "exec_kill", "sessionId": sid, "execId": id, "signal": "SIGTERM"}))
            .await;
        let t = std::time::Instant::now();
        let exit = loop {
            let m = ws.expect("exec_exit").await;
            if m["execId"] == id.as_str() {
                break m;
            }
        };
        assert_eq!(exit["signal"], "SIGTERM", "{exit}");
        assert!(t.elapsed() < Duration::from_secs(10));
    }
}
