//! What WebSocket clients send. Parsing is strict: a wrong type or an
//! unknown field is a `ValidationError` that names the field, so a typo
//! never silently becomes a default.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::validate::{check_dims, fields, json_type, optional_dims};
use crate::error::ApiError;

/// A new session, as both doors ask for it: the REST body and the
/// WebSocket `create` message have the same fields.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Create {
    pub image: Option<String>,
    pub workspace_dir: Option<String>,
    /// An existing session of the caller's: it is returned (REST) or
    /// joined (WebSocket) instead of creating another, a safe retry. Ids
    /// are never chosen by clients; another id is ignored.
    pub session_id: Option<String>,
    /// The first shell's size.
    pub cols: Option<u16>,
    pub rows: Option<u16>,
    pub env: Option<BTreeMap<String, String>>,
}

impl Create {
    /// Checks what can be checked without the engine.
    pub fn check(&self) -> Result<(), ApiError> {
        optional_dims(self.cols, self.rows).map(|_| ())
    }
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

/// The message types, as the `Unknown message type` error lists them.
const TYPES: &str = "create, input, attach, resize, configure_preview, ping";

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
        Ok(match kind.as_str() {
            "create" => {
                let c: Create = fields(&what, rest)?;
                c.check()?;
                ClientMessage::Create(c)
            }
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
                    "Unknown message type '{shown}'; expected one of {TYPES}"
                )));
            }
        })
    }

    /// The session the message names, if it names one: messages for one
    /// session are applied in order, apart from other sessions' messages.
    pub fn session_id(&self) -> Option<&str> {
        match self {
            ClientMessage::Input(m) => m.session_id.as_deref(),
            ClientMessage::Attach(m) => Some(&m.session_id),
            ClientMessage::Resize(m) => m.session_id.as_deref(),
            ClientMessage::ConfigurePreview(m) => Some(&m.session_id),
            ClientMessage::Create(_) | ClientMessage::Ping => None,
        }
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
        assert!(err(r#"{"type":"create","cols":0}"#).contains("cols"));
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
}
