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
    /// Replay the session's events after this `seq` (0: all kept).
    pub since: Option<u64>,
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

/// A command to run, as both doors take it: the REST body
/// (`POST /api/containers/:sessionId/exec`) and the WebSocket `exec`
/// message have the same fields.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Exec {
    /// Over the WebSocket: the session (else the connection's current one).
    /// Over REST the path names it.
    pub session_id: Option<String>,
    /// The client's id for the command (1 to 64 of `A-Za-z0-9_-`).
    pub exec_id: Option<String>,
    /// An argument vector, or a string run by `/bin/sh -c`.
    pub cmd: Value,
    pub cwd: Option<String>,
    pub env: Option<BTreeMap<String, String>>,
    /// Written to stdin, which is then closed; absent, stdin stays open
    /// for `exec_input`.
    pub stdin: Option<String>,
    /// Seconds; then the command's process group is killed.
    pub timeout: Option<f64>,
}

/// Longest command line (all arguments together).
pub const MAX_CMD_BYTES: usize = 256 * 1024;
const MAX_ARGS: usize = 4096;

impl Exec {
    /// The argument vector: `cmd` itself, or `/bin/sh -c CMD` for a string.
    pub fn argv(&self) -> Result<Vec<String>, ApiError> {
        let argv = match &self.cmd {
            Value::String(s) if s.trim().is_empty() => {
                return Err(ApiError::validation("cmd is empty"))
            }
            Value::String(s) => vec!["/bin/sh".to_string(), "-c".to_string(), s.clone()],
            Value::Array(items) => {
                if items.is_empty() {
                    return Err(ApiError::validation("cmd is an empty array"));
                }
                if items.len() > MAX_ARGS {
                    return Err(ApiError::validation(format!(
                        "cmd has {} arguments; at most {MAX_ARGS} are allowed",
                        items.len()
                    )));
                }
                let mut argv = Vec::with_capacity(items.len());
                for (i, v) in items.iter().enumerate() {
                    match v {
                        Value::String(s) => argv.push(s.clone()),
                        other => {
                            return Err(ApiError::validation(format!(
                                "cmd[{i}] must be a string, got {}",
                                json_type(other)
                            )))
                        }
                    }
                }
                if argv[0].is_empty() {
                    return Err(ApiError::validation("cmd[0] (the program) is empty"));
                }
                argv
            }
            other => {
                return Err(ApiError::validation(format!(
                    "cmd must be an array of strings or a string, got {}",
                    json_type(other)
                )))
            }
        };
        let size: usize = argv.iter().map(|a| a.len() + 1).sum();
        if size > MAX_CMD_BYTES {
            return Err(ApiError::validation(format!(
                "cmd is {size} bytes; at most {MAX_CMD_BYTES} are allowed"
            )));
        }
        if argv.iter().any(|a| a.contains('\0')) {
            return Err(ApiError::validation("cmd must not contain NUL characters"));
        }
        Ok(argv)
    }

    /// The working directory: absolute, [`crate::runtime::spec::WORKDIR`]
    /// when absent.
    pub fn cwd(&self) -> Result<String, ApiError> {
        match self.cwd.as_deref() {
            None => Ok(crate::runtime::spec::WORKDIR.to_string()),
            Some(c) if c.starts_with('/') && !c.contains('\0') && c.len() <= 4096 => {
                Ok(c.to_string())
            }
            Some(c) => {
                let shown: String = c.chars().take(64).collect();
                Err(ApiError::validation(format!(
                    "cwd must be an absolute path in the container, got {shown:?}"
                )))
            }
        }
    }

    /// The timeout, if any: more than 0 and at most 24 hours.
    pub fn timeout(&self) -> Result<Option<std::time::Duration>, ApiError> {
        match self.timeout {
            None => Ok(None),
            Some(t) if t > 0.0 && t <= 86_400.0 => Ok(Some(std::time::Duration::from_secs_f64(t))),
            Some(t) => Err(ApiError::validation(format!(
                "timeout must be more than 0 and at most 86400 seconds, got {t}"
            ))),
        }
    }
}

/// Stdin for a running command.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExecInput {
    /// Over the WebSocket only (REST: the path).
    pub session_id: Option<String>,
    pub exec_id: Option<String>,
    #[serde(default)]
    pub data: String,
    /// `base64` when `data` is base64 of bytes; absent for text.
    pub encoding: Option<String>,
    /// Close stdin after `data`.
    #[serde(default)]
    pub eof: bool,
}

impl ExecInput {
    pub fn bytes(&self) -> Result<Vec<u8>, ApiError> {
        decode_data(&self.data, self.encoding.as_deref())
    }
}

/// `data` as bytes: text, or base64 with `encoding: "base64"`.
pub fn decode_data(data: &str, encoding: Option<&str>) -> Result<Vec<u8>, ApiError> {
    use base64::Engine;
    match encoding {
        None | Some("utf8" | "utf-8") => Ok(data.as_bytes().to_vec()),
        Some("base64") => base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| ApiError::validation(format!("data is not valid base64: {e}"))),
        Some(other) => {
            let shown: String = other.chars().take(32).collect();
            Err(ApiError::validation(format!(
                "Unknown encoding '{shown}'; expected base64, or none for text"
            )))
        }
    }
}

/// A signal for a running command.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExecKill {
    pub session_id: Option<String>,
    pub exec_id: String,
    /// `SIGTERM`, `TERM`, `15`…; `SIGKILL` when absent.
    pub signal: Option<Value>,
}

/// The signals a client may send a command, by name.
const SIGNALS: [(&str, i32); 10] = [
    ("SIGHUP", libc::SIGHUP),
    ("SIGINT", libc::SIGINT),
    ("SIGQUIT", libc::SIGQUIT),
    ("SIGKILL", libc::SIGKILL),
    ("SIGUSR1", libc::SIGUSR1),
    ("SIGUSR2", libc::SIGUSR2),
    ("SIGTERM", libc::SIGTERM),
    ("SIGCONT", libc::SIGCONT),
    ("SIGSTOP", libc::SIGSTOP),
    ("SIGWINCH", libc::SIGWINCH),
];

/// A signal as a client names it (`SIGTERM`, `TERM`, `term`, `15`);
/// `SIGKILL` when absent.
pub fn parse_signal(v: Option<&Value>) -> Result<i32, ApiError> {
    let listed = || {
        SIGNALS
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let refuse = |shown: String| {
        ApiError::validation(format!(
            "Unknown signal {shown}; expected one of {}",
            listed()
        ))
    };
    match v {
        None | Some(Value::Null) => Ok(libc::SIGKILL),
        Some(Value::Number(n)) => n
            .as_i64()
            .and_then(|n| SIGNALS.iter().find(|(_, s)| i64::from(*s) == n))
            .map(|(_, s)| *s)
            .ok_or_else(|| refuse(n.to_string())),
        Some(Value::String(s)) => {
            if let Ok(n) = s.parse::<i64>() {
                return parse_signal(Some(&Value::from(n)));
            }
            let upper = s.to_ascii_uppercase();
            let name = if upper.starts_with("SIG") {
                upper
            } else {
                format!("SIG{upper}")
            };
            SIGNALS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, s)| *s)
                .ok_or_else(|| refuse(format!("{:?}", s.chars().take(32).collect::<String>())))
        }
        Some(other) => Err(ApiError::validation(format!(
            "signal must be a name or a number, got {}",
            json_type(other)
        ))),
    }
}

/// Watch a path of the session for changes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Watch {
    pub session_id: String,
    pub path: String,
    #[serde(default)]
    pub recursive: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Unwatch {
    pub session_id: String,
    pub path: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    Create(Create),
    Input(Input),
    Attach(Attach),
    Resize(Resize),
    ConfigurePreview(ConfigurePreview),
    Exec(Exec),
    ExecInput(ExecInput),
    ExecKill(ExecKill),
    Watch(Watch),
    Unwatch(Unwatch),
    Ping,
}

/// The message types, as the `Unknown message type` error lists them.
const TYPES: &str = "create, input, attach, resize, configure_preview, exec, exec_input, exec_kill, watch, unwatch, ping";

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
            "exec" => {
                let e: Exec = fields(&what, rest)?;
                e.argv()?;
                e.cwd()?;
                e.timeout()?;
                if let Some(id) = &e.exec_id {
                    check_exec_id(id)?;
                }
                ClientMessage::Exec(e)
            }
            "exec_input" => {
                let m: ExecInput = fields(&what, rest)?;
                if m.exec_id.is_none() {
                    return Err(ApiError::validation(
                        "Invalid 'exec_input' message: missing field 'execId'",
                    ));
                }
                m.bytes()?;
                ClientMessage::ExecInput(m)
            }
            "exec_kill" => {
                let m: ExecKill = fields(&what, rest)?;
                parse_signal(m.signal.as_ref())?;
                ClientMessage::ExecKill(m)
            }
            "watch" => ClientMessage::Watch(fields(&what, rest)?),
            "unwatch" => ClientMessage::Unwatch(fields(&what, rest)?),
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
            ClientMessage::Exec(m) => m.session_id.as_deref(),
            ClientMessage::ExecInput(m) => m.session_id.as_deref(),
            ClientMessage::ExecKill(m) => m.session_id.as_deref(),
            ClientMessage::Watch(m) => Some(&m.session_id),
            ClientMessage::Unwatch(m) => Some(&m.session_id),
            ClientMessage::Create(_) | ClientMessage::Ping => None,
        }
    }
}

/// Checks a client's command id: 1 to 64 of letters, digits, `-` and `_`.
pub fn check_exec_id(id: &str) -> Result<(), ApiError> {
    if (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(())
    } else {
        let shown: String = id.chars().take(64).collect();
        Err(ApiError::validation(format!(
            "execId must be 1 to 64 letters, digits, '-' or '_', got {shown:?}"
        )))
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
