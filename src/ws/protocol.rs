//! The WebSocket protocol's values: one enum of what clients send, one of
//! what the server sends. Parsing is strict: a wrong type or an unknown field
//! is a `ValidationError` that names the field, so a typo never silently
//! becomes a default.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ApiError;

/// Frames larger than this are answered with `MessageTooLarge`.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// Terminal sizes outside 1..=1000 are refused.
pub const MAX_TERMINAL_DIM: u16 = 1000;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Create {
    pub image: Option<String>,
    pub workspace_dir: Option<String>,
    /// As over REST: an existing session of the caller's is joined instead
    /// of creating another (a safe retry); other ids are ignored.
    pub session_id: Option<String>,
    pub cols: Option<u16>,
    pub rows: Option<u16>,
    pub env: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Input {
    pub session_id: Option<String>,
    pub data: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Attach {
    pub session_id: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Resize {
    pub session_id: Option<String>,
    pub cols: u16,
    pub rows: u16,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigurePreview {
    pub session_id: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    Create(Create),
    Input(Input),
    Attach(Attach),
    Resize(Resize),
    ConfigurePreview(ConfigurePreview),
    Ping,
}

/// Deserializes `value` (the message without its `type`) into `T`, with an
/// error that names the offending field.
/// `what` names the thing parsed, e.g. `'create' message` or `request body`.
pub fn fields<T: DeserializeOwned>(what: &str, value: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let detail = inner.to_string();
        if path == "." || path.is_empty() {
            ApiError::validation(format!("Invalid {what}: {detail}"))
        } else {
            ApiError::validation(format!("Invalid {what}: field '{path}': {detail}"))
        }
    })
}

pub fn check_dims(cols: u16, rows: u16) -> Result<(), ApiError> {
    for (name, v) in [("cols", cols), ("rows", rows)] {
        if v == 0 || v > MAX_TERMINAL_DIM {
            return Err(ApiError::validation(format!(
                "{name} must be between 1 and {MAX_TERMINAL_DIM}, got {v}"
            )));
        }
    }
    Ok(())
}

impl ClientMessage {
    pub fn parse(text: &str) -> Result<ClientMessage, ApiError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| ApiError::validation(format!("Malformed JSON: {e}")))?;
        let Value::Object(mut map) = value else {
            return Err(ApiError::validation(
                "Message must be a JSON object with a 'type' field",
            ));
        };
        let kind = match map.remove("type") {
            Some(Value::String(s)) => s,
            Some(other) => {
                return Err(ApiError::validation(format!(
                    "Field 'type' must be a string, got {}",
                    json_type(&other)
                )))
            }
            None => return Err(ApiError::validation("Message has no 'type' field")),
        };
        let rest = Value::Object(map);
        let what = format!("'{kind}' message");
        let msg = match kind.as_str() {
            "create" => ClientMessage::Create(fields(&what, rest)?),
            "input" => ClientMessage::Input(fields(&what, rest)?),
            "attach" => ClientMessage::Attach(fields(&what, rest)?),
            "resize" => {
                let r: Resize = fields(&what, rest)?;
                check_dims(r.cols, r.rows)?;
                ClientMessage::Resize(r)
            }
            "configure_preview" => ClientMessage::ConfigurePreview(fields(&what, rest)?),
            // A ping may carry anything (a timestamp, say); it is answered all the same.
            "ping" => ClientMessage::Ping,
            other => {
                let shown: String = other.chars().take(64).collect();
                return Err(ApiError::validation(format!(
                    "Unknown message type '{shown}'; expected one of create, input, attach, resize, configure_preview, ping"
                )));
            }
        };
        if let ClientMessage::Create(c) = &msg {
            if let (Some(cols), Some(rows)) = (c.cols, c.rows) {
                check_dims(cols, rows)?;
            } else if c.cols.is_some() || c.rows.is_some() {
                check_dims(c.cols.unwrap_or(80), c.rows.unwrap_or(24))?;
            }
        }
        Ok(msg)
    }
}

pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

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
    Reconnect {
        reason: &'a str,
        delay: u64,
    },
    #[serde(rename_all = "camelCase")]
    PreviewConfigured {
        session_id: &'a str,
        preview_url: &'a str,
        target_url: &'a str,
    },
    /// A console call, uncaught error or unhandled rejection in a preview page.
    #[serde(rename_all = "camelCase")]
    Console {
        session_id: &'a str,
        level: &'a str,
        args: &'a [Value],
        url: &'a str,
        timestamp: u64,
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

    fn err(text: &str) -> String {
        let e = ClientMessage::parse(text).unwrap_err();
        assert_eq!(e.name(), "ValidationError");
        e.to_string()
    }

    #[test]
    fn parses_every_client_message() {
        assert_eq!(
            ClientMessage::parse(r#"{"type":"ping"}"#).unwrap(),
            ClientMessage::Ping
        );
        let ClientMessage::Create(c) = ClientMessage::parse(
            r#"{"type":"create","image":"node:20-alpine","workspaceDir":"/w","cols":120,"rows":40,"env":{"A":"1"}}"#,
        )
        .unwrap() else { panic!() };
        assert_eq!(c.image.as_deref(), Some("node:20-alpine"));
        assert_eq!(c.workspace_dir.as_deref(), Some("/w"));
        assert_eq!((c.cols, c.rows), (Some(120), Some(40)));
        assert!(matches!(
            ClientMessage::parse(r#"{"type":"input","sessionId":"s","data":"ls\n"}"#).unwrap(),
            ClientMessage::Input(Input { data, .. }) if data == "ls\n"
        ));
        assert!(matches!(
            ClientMessage::parse(r#"{"type":"attach","sessionId":"s"}"#).unwrap(),
            ClientMessage::Attach(_)
        ));
        assert!(matches!(
            ClientMessage::parse(r#"{"type":"resize","sessionId":"s","cols":100,"rows":30}"#)
                .unwrap(),
            ClientMessage::Resize(Resize {
                cols: 100,
                rows: 30,
                ..
            })
        ));
        assert!(matches!(
            ClientMessage::parse(r#"{"type":"configure_preview","sessionId":"s","port":3000}"#)
                .unwrap(),
            ClientMessage::ConfigurePreview(ConfigurePreview { port: 3000, .. })
        ));
    }

    #[test]
    fn bad_messages_say_what_is_wrong() {
        assert!(err("{not json").contains("Malformed JSON"));
        assert!(err("[1,2]").contains("JSON object"));
        assert!(err(r#"{"data":"x"}"#).contains("no 'type'"));
        assert!(err(r#"{"type":5}"#).contains("must be a string"));
        assert!(err(r#"{"type":"launch"}"#).contains("Unknown message type 'launch'"));
        assert!(err(r#"{"type":"input","sessionId":"s","data":5}"#).contains("field 'data'"));
        assert!(err(r#"{"type":"input","sessionId":"s"}"#).contains("data"));
        assert!(err(r#"{"type":"attach","sessionId":42}"#).contains("field 'sessionId'"));
        assert!(err(r#"{"type":"create","imgae":"x"}"#).contains("imgae"));
        assert!(
            err(r#"{"type":"resize","sessionId":"s","cols":0,"rows":10}"#)
                .contains("cols must be between 1 and 1000")
        );
        assert!(err(r#"{"type":"resize","sessionId":"s","cols":10,"rows":1001}"#).contains("rows"));
        assert!(err(r#"{"type":"resize","sessionId":"s","cols":-1,"rows":10}"#).contains("cols"));
        assert!(
            err(r#"{"type":"configure_preview","sessionId":"s","port":"3000"}"#).contains("port")
        );
        assert!(
            err(r#"{"type":"configure_preview","sessionId":"s","port":70000}"#).contains("port")
        );
        assert!(
            err(r#"{"type":"configure_preview","sessionId":"s","port":3000,"host":"evil"}"#)
                .contains("host")
        );
    }

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
        };
        assert_eq!(
            console.to_text(),
            r#"{"type":"console","sessionId":"s","level":"warn","args":["hi",1],"url":"http://x/","timestamp":5}"#
        );
        assert_eq!(
            ServerMessage::Reconnect {
                reason: "Session expired",
                delay: 1000
            }
            .to_text(),
            r#"{"type":"reconnect","reason":"Session expired","delay":1000}"#
        );
    }
}
