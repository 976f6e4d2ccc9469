//! `claude-studio logs SESSION [-f]`: the session's events, one per line.

use reqwest::Method;
use serde_json::Value;

use super::api::{Api, Result};

/// One event for people: its time (when it says), kind and what happened.
pub fn describe(e: &Value) -> String {
    let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
    match e["type"].as_str().unwrap_or_default() {
        "console" => {
            let args: Vec<String> = e["args"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|x| {
                            x.as_str()
                                .map(String::from)
                                .unwrap_or_else(|| x.to_string())
                        })
                        .collect()
                })
                .unwrap_or_default();
            let kind = e["kind"]
                .as_str()
                .map(|k| format!(" ({k})"))
                .unwrap_or_default();
            format!(
                "console {}{kind}: {}  [{}]",
                s("level"),
                args.join(" "),
                s("url")
            )
        }
        "port_opened" => format!("port {} opened: {}", e["port"], s("previewUrl")),
        "port_closed" => format!("port {} closed", e["port"]),
        "exec_exit" => {
            let how = match e["signal"].as_str() {
                Some(sig) => format!("{} ({sig})", e["code"]),
                None => e["code"].to_string(),
            };
            let t = if e["timedOut"] == true {
                ", timed out"
            } else {
                ""
            };
            format!(
                "command {} exited {how} after {} ms{t}",
                s("execId"),
                e["durationMs"]
            )
        }
        "exit" => format!("terminal shell exited {}", e["code"]),
        "lifecycle" => format!("session {}: {}", s("state"), s("reason")),
        other => format!("{other} {e}"),
    }
}

pub async fn run(api: &Api, sid: &str, since: u64, follow: bool, json: bool) -> Result<i32> {
    let mut since = since;
    loop {
        let wait = if follow { "&wait=30" } else { "" };
        let v = api
            .json(api.request(
                Method::GET,
                &format!("/api/containers/{sid}/events?since={since}{wait}"),
            ))
            .await?;
        for e in v["events"].as_array().cloned().unwrap_or_default() {
            if json {
                println!("{e}");
            } else {
                println!("{:>20}  {}", e["seq"], describe(&e));
            }
        }
        if v["missed"] == true && !json {
            eprintln!("claude-studio: some earlier events were dropped from the session's log");
        }
        since = v["next"].as_u64().unwrap_or(since);
        if !follow {
            return Ok(0);
        }
    }
}
