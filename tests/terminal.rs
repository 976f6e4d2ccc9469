//! The WebSocket terminal against a real container.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn create_type_and_read_the_echo() {
    let server = Server::start().await;
    let mut ws = server.ws().await;
    let (sid, cid) = ws.create(json!({})).await;
    assert!(sid.starts_with("session-"), "{sid}");
    assert_eq!(cid.len(), 64, "containerId is the Docker id: {cid}");
    let out = ws.run(&sid, "echo hello-$((40+2))").await;
    assert!(out.contains("hello-42"), "{out:?}");
    // The shell runs as uid 1000 in /workspace with a colour terminal.
    let out = ws.run(&sid, "id -u; pwd; echo $TERM").await;
    assert!(out.contains("1000"), "{out:?}");
    assert!(out.contains("/workspace"), "{out:?}");
    assert!(out.contains("xterm-256color"), "{out:?}");
}

#[tokio::test]
async fn exit_reports_the_code_and_attach_starts_a_fresh_shell() {
    let server = Server::start().await;
    let mut ws = server.ws().await;
    let (sid, _) = ws.create(json!({})).await;
    ws.run(&sid, "true").await;
    ws.input(&sid, "exit 3\n").await;
    let exit = ws.expect("exit").await;
    assert_eq!(exit["sessionId"], sid.as_str());
    assert_eq!(exit["code"], 3);
    assert!(exit["signal"].is_null());
    // The container keeps running; attaching starts a new shell in it.
    ws.send(json!({"type": "attach", "sessionId": sid})).await;
    ws.expect("attached").await;
    let out = ws.run(&sid, "echo again-$((1+1))").await;
    assert!(out.contains("again-2"), "{out:?}");
    // A shell killed by a signal: the code the engine reports, and its signal.
    ws.input(&sid, "kill -KILL $$\n").await;
    let exit = ws.expect("exit").await;
    assert_eq!(exit["code"], 137, "{exit}");
    assert_eq!(exit["signal"], "SIGKILL", "{exit}");
}

#[tokio::test]
async fn second_connection_attaches_with_replay_and_shares_the_terminal() {
    let server = Server::start().await;
    let mut a = server.ws().await;
    let (sid, cid) = a.create(json!({})).await;
    a.run(&sid, "echo first-$((2*3))").await;

    let mut b = server.ws().await;
    b.send(json!({"type": "attach", "sessionId": sid})).await;
    let attached = b.expect("attached").await;
    assert_eq!(attached["sessionId"], sid.as_str());
    assert_eq!(attached["containerId"], cid.as_str());
    assert_eq!(attached["status"], "running");
    let replay = b.expect("output").await;
    assert_eq!(replay["replay"], true);
    assert!(
        replay["data"].as_str().unwrap().contains("first-6"),
        "{replay}"
    );

    // Input from either connection is seen by both.
    b.input(&sid, "echo from-b-$((5+5))\n").await;
    a.read_until(&sid, "from-b-10").await;
    b.read_until(&sid, "from-b-10").await;
}

#[tokio::test]
async fn resize_changes_the_tty_size() {
    let server = Server::start().await;
    let mut ws = server.ws().await;
    let (sid, _) = ws.create(json!({"cols": 100, "rows": 30})).await;
    let out = ws.run(&sid, "stty size").await;
    assert!(out.contains("30 100"), "{out:?}");
    ws.send(json!({"type": "resize", "sessionId": sid, "cols": 132, "rows": 43}))
        .await;
    let out = ws.run(&sid, "stty size").await;
    assert!(out.contains("43 132"), "{out:?}");
}

/// How a shell loop's `line-0` … `line-{lines-1}`, each printed with its own
/// `write` and followed by a busy loop of `pause` turns, reached the client
/// (the first, middle and last lines are checked to arrive).
struct Flood {
    messages: usize,
    /// From the first `output` message to the last.
    lasted: std::time::Duration,
}

async fn print_lines(ws: &mut Ws, sid: &str, lines: usize, pause: usize) -> Flood {
    ws.input(
        sid,
        &format!(
            "i=0; while [ $i -lt {lines} ]; do echo line-$i; j=0; while [ $j -lt {pause} ]; do j=$((j+1)); done; i=$((i+1)); done; echo END-$((9*9))\n"
        ),
    )
    .await;
    let mut messages = 0;
    let mut text = String::new();
    let mut first = None;
    while !text.contains("END-81") {
        let v = ws.next().await.expect("connection stays open");
        if v["type"] == "output" {
            first.get_or_insert_with(std::time::Instant::now);
            messages += 1;
            text.push_str(v["data"].as_str().unwrap());
        }
    }
    for i in [0, 1, lines / 2, lines - 1] {
        assert!(text.contains(&format!("line-{i}\r\n")), "line {i} arrives");
    }
    Flood {
        messages,
        lasted: first.unwrap().elapsed(),
    }
}

/// A shell loop writes every line with its own `write`: even when the server
/// keeps up with each one, a flood must not become one message per line.
#[tokio::test]
async fn output_written_a_line_at_a_time_is_coalesced() {
    let server = Server::start().await;
    let mut ws = server.ws().await;
    let (sid, _) = ws.create(json!({})).await;
    ws.run(&sid, "true").await;
    let lines = 3000;
    let flood = print_lines(&mut ws, &sid, lines, 0).await;
    // A few dozen while the flood is young, then at most about 60 a
    // second however slowly a loaded machine runs the loop (one per line
    // would be 3000).
    let bound = (lines / 20).max((30.0 + 100.0 * flood.lasted.as_secs_f64()) as usize);
    assert!(
        flood.messages < bound,
        "{} messages for {lines} lines written one by one over {:?} (at most {bound})",
        flood.messages,
        flood.lasted
    );
}

/// A program that prints lines slowly, but faster than anyone reads (a build,
/// a slow shell loop, a loaded machine), is batched too: once the flood has
/// lasted a moment, at most about 60 messages a second, however long each
/// line takes. Without it every line would be a message (over 1000 a second).
#[tokio::test]
async fn a_slow_flood_of_lines_is_batched_to_a_few_dozen_messages_a_second() {
    let server = Server::start().await;
    let mut ws = server.ws().await;
    let (sid, _) = ws.create(json!({})).await;
    ws.run(&sid, "true").await;
    let lines = 1000;
    // A busy loop after each line, so lines come a few hundred microseconds
    // apart: slow enough for the server to keep up with each.
    let Flood {
        messages, lasted, ..
    } = print_lines(&mut ws, &sid, lines, 80).await;
    // About 25 messages while the flood is young (2 ms waits growing to
    // 16 ms over its first 128 ms), then one per 16 ms at most.
    let bound = 30.0 + 100.0 * lasted.as_secs_f64();
    assert!(
        (messages as f64) < bound,
        "{messages} messages for {lines} lines over {lasted:?} (at most {bound:.0})"
    );
}

#[tokio::test]
async fn large_utf8_output_is_never_split_and_is_coalesced() {
    let server = Server::start().await;
    let mut ws = server.ws().await;
    let (sid, _) = ws.create(json!({})).await;
    ws.run(&sid, "true").await;
    let lines = 20000;
    // The line is spelled in octal escapes, so that the echo of the typed
    // command (verbatim when the tty echoes it before the shell's line
    // editor takes over) never counts as a line.
    ws.input(
        &sid,
        &format!(
            "yes \"$(printf 'a\\303\\251\\344\\270\\226\\360\\237\\216\\211')\" | head -n {lines}; echo END-$((9*9))\n"
        ),
    )
    .await;
    let mut messages = 0;
    let mut text = String::new();
    loop {
        let v = ws.next().await.expect("connection stays open");
        if v["type"] != "output" {
            continue;
        }
        messages += 1;
        let data = v["data"].as_str().unwrap();
        assert!(!data.contains('\u{FFFD}'), "a character was split");
        text.push_str(data);
        if text.contains("END-81") {
            break;
        }
    }
    assert_eq!(
        text.matches("aé世🎉").count(),
        lines,
        "every line arrives whole"
    );
    // ~240 KB of output must not arrive as one message per line.
    assert!(
        messages < lines / 20,
        "{messages} messages for {lines} lines"
    );
}

#[tokio::test]
async fn bad_messages_get_errors_and_the_connection_stays_open() {
    let server = Server::start().await;
    let mut ws = server.ws().await;
    let cases = [
        ("{not json", "Malformed JSON"),
        ("[]", "JSON object"),
        (r#"{"type":"teleport"}"#, "Unknown message type"),
        (
            r#"{"type":"input","sessionId":"session-x","data":42}"#,
            "data",
        ),
        (
            r#"{"type":"resize","sessionId":"session-x","cols":0,"rows":5}"#,
            "cols",
        ),
        (r#"{"type":"create","image":"Bad Image!"}"#, "image"),
    ];
    for (text, needle) in cases {
        ws.send_text(text).await;
        let e = ws.expect("error").await;
        assert_eq!(e["error"], "ValidationError", "{text}: {e}");
        assert_eq!(e["retryable"], false);
        assert!(
            e["message"].as_str().unwrap().contains(needle),
            "{text}: {e}"
        );
        assert!(e.get("statusCode").is_none());
    }
    for msg in [
        json!({"type": "attach", "sessionId": "session-doesnotexist0000000"}),
        json!({"type": "input", "sessionId": "session-doesnotexist0000000", "data": "ls\n"}),
    ] {
        ws.send(msg).await;
        let e = ws.expect("error").await;
        assert_eq!(e["error"], "ContainerNotFoundError", "{e}");
    }
    let big = format!(
        r#"{{"type":"input","sessionId":"s","data":"{}"}}"#,
        "x".repeat(1024 * 1024 + 10)
    );
    ws.send_text(&big).await;
    let e = ws.expect("error").await;
    assert_eq!(e["error"], "MessageTooLarge", "{e}");
    ws.send(json!({"type": "ping"})).await;
    ws.expect("pong").await;
}

/// The close frame a connection ends with (`None`: it ended without one).
async fn close_frame(ws: &mut Ws) -> Option<(u16, String)> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), ws.stream.next())
            .await
            .expect("the server ends the connection")
        {
            Some(Ok(Message::Close(frame))) => {
                return frame.map(|f| (u16::from(f.code), f.reason.to_string()))
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

#[tokio::test]
async fn closes_are_answered_and_protocol_violations_say_why() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Frame};
    use tokio_tungstenite::tungstenite::Message;
    let server = Server::start().await;

    // A client's close is answered with a close: a clean 1000, not 1006.
    let mut ws = server.ws().await;
    ws.stream
        .send(Message::Close(Some(CloseFrame {
            code: 1000u16.into(),
            reason: "bye".into(),
        })))
        .await
        .unwrap();
    let (code, _) = close_frame(&mut ws).await.expect("a close frame in reply");
    assert_eq!(code, 1000);

    // A text frame that is not UTF-8: 1007.
    let mut ws = server.ws().await;
    let bad = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    ws.stream.send(Message::Frame(bad)).await.unwrap();
    let (code, reason) = close_frame(&mut ws).await.expect("a close frame");
    assert_eq!(code, 1007, "{reason}");
    assert!(reason.contains("UTF-8"), "{reason}");

    // A frame far over the message limit: 1009, without reading it whole.
    let mut ws = server.ws().await;
    let huge = "x".repeat(9 * 1024 * 1024);
    let _ = ws.stream.send(Message::Text(huge.into())).await;
    let (code, reason) = close_frame(&mut ws).await.expect("a close frame");
    assert_eq!(code, 1009, "{reason}");
}

#[tokio::test]
async fn many_small_inputs_in_a_burst_all_arrive() {
    let server = Server::start().await;
    let mut ws = server.ws().await;
    let (sid, _) = ws.create(json!({})).await;
    ws.run(&sid, "true").await;
    // Keystrokes sent faster than the shell takes them (a fast typist, a
    // pasting client, an agent sending character by character) are queued,
    // not refused: the input queue is bounded by bytes, not messages.
    let n = 2000;
    ws.input(
        &sid,
        &format!("stty raw -echo; echo READY-$((6*7)); head -c {n} | wc -c; stty sane\n"),
    )
    .await;
    ws.read_until(&sid, "READY-42").await;
    let before = ws.output[&sid].len();
    for _ in 0..n {
        ws.input(&sid, "k").await;
    }
    loop {
        let v = ws.next().await.expect("connection stays open");
        assert_ne!(v["type"], "error", "input refused: {v}");
        if ws.output[&sid][before..].contains(&n.to_string()) {
            break;
        }
    }
}

#[tokio::test]
async fn a_shell_that_does_not_read_never_blocks_the_connection() {
    let server = Server::start().await;
    let mut ws = server.ws().await;
    let (sid, _) = ws.create(json!({})).await;
    ws.run(&sid, "true").await;
    // A raw tty that nobody reads: the kernel stops taking input once its
    // buffers are full (a canonical tty would discard the excess instead).
    ws.input(&sid, "stty raw -echo; sleep 60\n").await;
    // Far more than the tty, the engine's stream and the input queue hold.
    let chunk = "x".repeat(100 * 1024);
    for _ in 0..40 {
        ws.input(&sid, &chunk).await;
    }
    ws.send(json!({"type": "ping"})).await;
    let mut refused = false;
    loop {
        let v = ws.next().await.expect("connection stays open");
        match v["type"].as_str().unwrap() {
            "error" => {
                assert_eq!(v["error"], "RateLimitError", "{v}");
                assert_eq!(v["retryable"], true);
                assert!(
                    v["message"]
                        .as_str()
                        .unwrap()
                        .contains("not reading its input"),
                    "{v}"
                );
                refused = true;
            }
            "pong" => break,
            _ => {}
        }
    }
    assert!(
        refused,
        "input beyond the queue is refused, not buffered without bound"
    );
}
