//! What the server sends over WebSocket (and, for events, over REST too).

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage<'a> {
    #[serde(rename_all = "camelCase")]
    ContainerCreated {
        session_id: &'a str,
        container_id: &'a str,
        status: &'a str,
    },
    #[serde(rename_all = "camelCase")]
    Attached {
        session_id: &'a str,
        container_id: &'a str,
        status: &'a str,
    },
    #[serde(rename_all = "camelCase")]
    Output {
        session_id: &'a str,
        data: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        replay: Option<bool>,
    },
    #[serde(rename_all = "camelCase")]
    Exit {
        session_id: &'a str,
        code: Option<i64>,
        signal: Option<&'a str>,
    },
    Pong,
    #[serde(rename_all = "camelCase")]
    Progress {
        stage: &'a str,
        message: &'a str,
        current: Option<i64>,
        total: Option<i64>,
    },
    /// Connect (or attach) again after `delay` ms. With `sessionId`: about
    /// that session only (it was removed or expired, or its terminal ended
    /// with the server's restart of it); without: the whole connection.
    #[serde(rename_all = "camelCase")]
    Reconnect {
        reason: &'a str,
        delay: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        session_id: Option<&'a str>,
    },
    #[serde(rename_all = "camelCase")]
    PreviewConfigured {
        session_id: &'a str,
        preview_url: &'a str,
        target_url: &'a str,
        /// The preview on an origin of its own: the one to open in a browser.
        host_preview_url: &'a str,
    },
    /// A console call, uncaught error or unhandled rejection in a preview page.
    #[serde(rename_all = "camelCase")]
    Console {
        session_id: &'a str,
        level: &'a str,
        args: &'a [Value],
        url: &'a str,
        timestamp: u64,
        /// `uncaught` or `unhandledrejection`; absent for console calls.
        #[serde(skip_serializing_if = "Option::is_none")]
        kind: Option<&'a str>,
    },
    /// A command started (its id, chosen by the client or made by the server).
    #[serde(rename_all = "camelCase")]
    ExecStarted {
        session_id: &'a str,
        exec_id: &'a str,
    },
    /// A piece of a command's output, on `stdout` or `stderr`.
    #[serde(rename_all = "camelCase")]
    ExecOutput {
        session_id: &'a str,
        exec_id: &'a str,
        stream: &'a str,
        data: &'a str,
        /// `base64` when the bytes are not UTF-8; absent for text.
        #[serde(skip_serializing_if = "Option::is_none")]
        encoding: Option<&'a str>,
    },
    /// A command ended.
    #[serde(rename_all = "camelCase")]
    ExecExit {
        session_id: &'a str,
        exec_id: &'a str,
        code: Option<i64>,
        signal: Option<&'a str>,
        duration_ms: u64,
        timed_out: bool,
    },
    /// Something in the session's container listens on `port` now.
    #[serde(rename_all = "camelCase")]
    PortOpened {
        session_id: &'a str,
        port: u16,
        /// The port's preview on an origin of its own (open it with a
        /// token, as any preview URL).
        preview_url: &'a str,
    },
    #[serde(rename_all = "camelCase")]
    PortClosed {
        session_id: &'a str,
        port: u16,
    },
    /// A change under a watched path.
    #[serde(rename_all = "camelCase")]
    FsEvent {
        session_id: &'a str,
        path: &'a str,
        kind: &'a str,
        /// Set when changes came faster than they are reported: some were
        /// left out; read the directory again.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        overflow: bool,
    },
    /// A `watch` is in place: changes from now on are reported.
    /// `directories`: how many it covers (0 for a file); `truncated`: more
    /// were below than a watch covers.
    #[serde(rename_all = "camelCase")]
    Watching {
        session_id: &'a str,
        path: &'a str,
        directories: usize,
        truncated: bool,
    },
    /// An `unwatch` took effect.
    #[serde(rename_all = "camelCase")]
    Unwatched {
        session_id: &'a str,
        path: &'a str,
    },
    /// A change in the session's life: `restarted` (its container had
    /// stopped and was started again), `removed`, `expired`.
    #[serde(rename_all = "camelCase")]
    Lifecycle {
        session_id: &'a str,
        state: &'a str,
        reason: &'a str,
    },
}

impl ServerMessage<'_> {
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("server messages always serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_messages_have_the_documented_shapes() {
        let out = ServerMessage::Output {
            session_id: "s",
            data: "hi",
            replay: None,
        }
        .to_text();
        assert_eq!(out, r#"{"type":"output","sessionId":"s","data":"hi"}"#);
        let exit = ServerMessage::Exit {
            session_id: "s",
            code: Some(0),
            signal: None,
        }
        .to_text();
        assert_eq!(
            exit,
            r#"{"type":"exit","sessionId":"s","code":0,"signal":null}"#
        );
        let created = ServerMessage::ContainerCreated {
            session_id: "s",
            container_id: "c",
            status: "running",
        }
        .to_text();
        assert_eq!(
            created,
            r#"{"type":"container_created","sessionId":"s","containerId":"c","status":"running"}"#
        );
        assert_eq!(ServerMessage::Pong.to_text(), r#"{"type":"pong"}"#);
        let args = [Value::from("hi"), Value::from(1)];
        let console = ServerMessage::Console {
            session_id: "s",
            level: "warn",
            args: &args,
            url: "http://x/",
            timestamp: 5,
            kind: None,
        };
        assert_eq!(
            console.to_text(),
            r#"{"type":"console","sessionId":"s","level":"warn","args":["hi",1],"url":"http://x/","timestamp":5}"#
        );
        assert_eq!(
            ServerMessage::Reconnect {
                reason: "Session expired",
                delay: 1000,
                session_id: None,
            }
            .to_text(),
            r#"{"type":"reconnect","reason":"Session expired","delay":1000}"#
        );
    }
}
