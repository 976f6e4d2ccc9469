//! `claude-studio shell [SESSION]`: an interactive terminal in a session,
//! like `docker exec -it`: this terminal in raw mode, its size sent on
//! every change, the shell's exit code as this program's, and ctrl-p ctrl-q
//! to detach (the shell goes on). When the server restarts it reconnects
//! by itself and attaches again.

use std::io::Write;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use super::api::{Api, CliError, Result};

/// ctrl-p, then ctrl-q: leave the shell running.
const DETACH: [u8; 2] = [0x10, 0x11];

/// This terminal in raw mode until dropped (only when stdin is one).
struct RawMode {
    saved: Option<rustix::termios::Termios>,
}

impl RawMode {
    fn enter() -> RawMode {
        let stdin = rustix::stdio::stdin();
        let Ok(saved) = rustix::termios::tcgetattr(stdin) else {
            return RawMode { saved: None };
        };
        let mut raw = saved.clone();
        raw.make_raw();
        let _ = rustix::termios::tcsetattr(stdin, rustix::termios::OptionalActions::Now, &raw);
        RawMode { saved: Some(saved) }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = rustix::termios::tcsetattr(
                rustix::stdio::stdin(),
                rustix::termios::OptionalActions::Now,
                saved,
            );
        }
    }
}

/// This terminal's size, when it is one.
fn size() -> Option<(u16, u16)> {
    let ws = rustix::termios::tcgetwinsize(rustix::stdio::stdout()).ok()?;
    (ws.ws_col > 0 && ws.ws_row > 0).then_some((ws.ws_col, ws.ws_row))
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(api: &Api) -> Result<Socket> {
    let mut req = api
        .ws_url()
        .into_client_request()
        .map_err(|e| CliError::new("UsageError", format!("bad server address: {e}")))?;
    if let Some(t) = &api.token {
        if let Ok(v) = format!("Bearer {t}").parse() {
            req.headers_mut().insert("authorization", v);
        }
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body = resp.body().as_deref().unwrap_or_default();
            let v: Value = serde_json::from_slice(body).unwrap_or_default();
            Err(CliError::new(
                v["error"].as_str().unwrap_or("ConnectionError"),
                v["message"].as_str().map(String::from).unwrap_or_else(|| {
                    format!("the server refused the WebSocket ({})", resp.status())
                }),
            ))
        }
        Err(e) => Err(CliError::new(
            "ConnectionError",
            format!("cannot reach the server at {} ({e})", api.base),
        )),
    }
}

fn text(v: Value) -> Message {
    Message::Text(v.to_string().into())
}

pub async fn run(api: &Api, session: Option<String>, image: Option<String>) -> Result<i32> {
    let sid = match session {
        Some(s) => {
            // Says clearly when there is no such session, before raw mode.
            api.send(api.request(Method::GET, &format!("/api/containers/{s}")))
                .await?;
            s
        }
        None => {
            let mut body = json!({});
            if let Some(i) = image {
                body["image"] = json!(i);
            }
            let v = api
                .json(api.request(Method::POST, "/api/containers").json(&body))
                .await?;
            let sid = v["sessionId"].as_str().unwrap_or_default().to_string();
            eprintln!("claude-studio: session {sid} (detach with ctrl-p ctrl-q)");
            sid
        }
    };
    let mut ws = connect(api).await?;
    let _raw = RawMode::enter();
    let mut stdout = std::io::stdout();
    let mut stdin = tokio::io::stdin();
    let mut winch = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        .map_err(|e| CliError::new("IoError", e.to_string()))?;
    let attach = |ws_send: &mut Vec<Message>| {
        ws_send.push(text(json!({"type": "attach", "sessionId": sid})));
        if let Some((cols, rows)) = size() {
            ws_send.push(text(
                json!({"type": "resize", "sessionId": sid, "cols": cols, "rows": rows}),
            ));
        }
    };
    let mut first = true;
    let mut buf = vec![0u8; 16 * 1024];
    let mut pending_ctrl_p = false;
    let mut stdin_open = true;
    'connection: loop {
        let mut out = Vec::new();
        attach(&mut out);
        for m in out {
            ws.send(m)
                .await
                .map_err(|e| CliError::new("ConnectionError", e.to_string()))?;
        }
        let mut delay = Duration::from_millis(500);
        loop {
            tokio::select! {
                msg = ws.next() => {
                    let Some(Ok(msg)) = msg else { break };
                    let Message::Text(t) = msg else { continue };
                    let v: Value = serde_json::from_str(&t).unwrap_or_default();
                    match v["type"].as_str() {
                        // The screen shows the past already after a reconnect.
                        Some("output") if v["replay"] != true || first => {
                            let _ = stdout.write_all(v["data"].as_str().unwrap_or_default().as_bytes());
                            let _ = stdout.flush();
                        }
                        Some("attached") => {}
                        Some("exit") => {
                            let code = v["code"].as_i64().unwrap_or(1);
                            return Ok(code as i32);
                        }
                        Some("reconnect") => {
                            delay = Duration::from_millis(v["delay"].as_u64().unwrap_or(1000));
                            break;
                        }
                        Some("error") => {
                            drop(_raw);
                            return Err(CliError::new(
                                v["error"].as_str().unwrap_or("Error"),
                                v["message"].as_str().unwrap_or("").to_string(),
                            ));
                        }
                        _ => {}
                    }
                }
                n = stdin.read(&mut buf), if stdin_open => {
                    let n = n.unwrap_or(0);
                    if n == 0 {
                        // Input ended (a pipe): the shell gets EOF as ctrl-d would.
                        stdin_open = false;
                        let _ = ws.send(text(json!({"type": "input", "sessionId": sid, "data": "\u{4}"}))).await;
                        continue;
                    }
                    let mut data = Vec::with_capacity(n);
                    for &b in &buf[..n] {
                        if pending_ctrl_p {
                            pending_ctrl_p = false;
                            if b == DETACH[1] {
                                let _ = stdout.write_all(format!("\r\ndetached from {sid}\r\n").as_bytes());
                                let _ = stdout.flush();
                                return Ok(0);
                            }
                            data.push(DETACH[0]);
                        }
                        if b == DETACH[0] {
                            pending_ctrl_p = true;
                            continue;
                        }
                        data.push(b);
                    }
                    if !data.is_empty() {
                        let s = String::from_utf8_lossy(&data).into_owned();
                        if ws.send(text(json!({"type": "input", "sessionId": sid, "data": s}))).await.is_err() {
                            break;
                        }
                    }
                }
                _ = winch.recv() => {
                    if let Some((cols, rows)) = size() {
                        let _ = ws.send(text(json!({"type": "resize", "sessionId": sid, "cols": cols, "rows": rows}))).await;
                    }
                }
            }
        }
        // The connection ended: the server restarting, or a network drop.
        first = false;
        let mut tries = 0;
        loop {
            tokio::time::sleep(delay).await;
            match connect(api).await {
                Ok(new) => {
                    ws = new;
                    continue 'connection;
                }
                Err(e) if tries >= 20 => {
                    return Err(CliError::new(
                        &e.name,
                        format!("lost the server: {}", e.message),
                    ))
                }
                Err(_) => {
                    tries += 1;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}
