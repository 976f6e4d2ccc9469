//! `claude-studio` as a client of a running server: `shell`, `run`, `exec`,
//! `create`, `ls`, `rm`, `preview`, `cp` and `logs`, like the Docker CLI
//! for containers. The server is `claude-studio` with no subcommand (or
//! `claude-studio serve`).
//!
//! The server's address and token come from `--url`/`--token`, then
//! `STUDIO_URL`/`STUDIO_TOKEN`, then the file
//! `$XDG_CONFIG_HOME/claude-studio/client.toml` (`url = "…"`, `token = "…"`),
//! then `http://localhost:3333`. Output is for people by default, JSON with
//! `--json`; an error is one line on stderr and a non-zero exit.

pub mod api;
mod copy;
mod logs;
mod shell;

use std::ffi::OsString;
use std::io::Write;

use base64::Engine;
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};

use api::{Api, CliError, Result};

/// The subcommands that make `claude-studio` a client.
pub const COMMANDS: [&str; 11] = [
    "shell", "run", "exec", "create", "ls", "inspect", "rm", "preview", "cp", "logs", "health",
];

/// Whether `arg` (the first argument) names a client subcommand.
pub fn is_client_command(arg: &str) -> bool {
    COMMANDS.contains(&arg)
}

fn command() -> clap::Command {
    use clap::{Arg, ArgAction, Command};
    let session = || {
        Arg::new("session")
            .required(true)
            .help("Session id (session-…)")
    };
    let cmd = || {
        Arg::new("cmd")
            .num_args(1..)
            .required(true)
            .trailing_var_arg(true)
            .allow_hyphen_values(true)
            .help("The command and its arguments, after `--` (run through a shell: sh -c '…')")
    };
    let exec_opts = |c: Command| {
        c.arg(
            Arg::new("cwd")
                .long("cwd")
                .short('w')
                .help("Working directory in the container [default: /workspace]"),
        )
        .arg(
            Arg::new("env")
                .long("env")
                .short('e')
                .action(ArgAction::Append)
                .help("KEY=VALUE for the command (repeatable)"),
        )
        .arg(
            Arg::new("timeout")
                .long("timeout")
                .value_parser(clap::value_parser!(f64))
                .help("Seconds; then the command's process group is killed"),
        )
        .arg(
            Arg::new("interactive")
                .long("interactive")
                .short('i')
                .action(ArgAction::SetTrue)
                .help("Pass this program's stdin to the command"),
        )
    };
    Command::new("claude-studio")
        .about("Claude Studio from the command line (the server itself: claude-studio [serve] [OPTIONS])")
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand_required(true)
        .arg(Arg::new("url").long("url").global(true).help("Server address [env: STUDIO_URL] [default: http://localhost:3333]"))
        .arg(Arg::new("token").long("token").global(true).help("API token [env: STUDIO_TOKEN]"))
        .arg(Arg::new("json").long("json").global(true).action(ArgAction::SetTrue).help("Machine-readable output"))
        .arg(Arg::new("retries").long("retries").global(true).value_parser(clap::value_parser!(u32)).help("Waits for a rate limit at most this many times per call [default: 3]"))
        .subcommand(
            Command::new("shell")
                .about("An interactive terminal in a session (a new one when none is named); detach with ctrl-p ctrl-q")
                .arg(Arg::new("session").help("Session id; omitted: create one"))
                .arg(Arg::new("image").long("image").help("Image of the new session [default: the server's]")),
        )
        .subcommand(exec_opts(
            Command::new("run")
                .about("Create a session from IMAGE and run a command in it; exits with its code")
                .arg(Arg::new("rm").long("rm").action(ArgAction::SetTrue).help("Remove the session afterwards"))
                .arg(Arg::new("image").required(true))
                .arg(cmd()),
        ))
        .subcommand(exec_opts(
            Command::new("exec")
                .about("Run a command in a session; its output as it comes, its exit code as this program's")
                .arg(session())
                .arg(cmd()),
        ))
        .subcommand(
            Command::new("create")
                .about("Create a session; prints its id")
                .arg(Arg::new("image").long("image"))
                .arg(Arg::new("workspace-dir").long("workspace-dir").help("Host directory mounted at /workspace")),
        )
        .subcommand(Command::new("ls").about("List your sessions"))
        .subcommand(Command::new("inspect").about("One session's state, ports and preview").arg(session()))
        .subcommand(Command::new("health").about("Whether the server and its engine are up"))
        .subcommand(
            Command::new("rm")
                .about("Remove sessions and their containers")
                .arg(Arg::new("session").num_args(1..).required(true)),
        )
        .subcommand(
            Command::new("preview")
                .about("Point a session's preview at PORT; prints the URL to open")
                .arg(session())
                .arg(Arg::new("port").required(true).value_parser(clap::value_parser!(u16))),
        )
        .subcommand(
            Command::new("cp")
                .about("Copy files between this machine and a session: cp SRC DST, one of them SESSION:/path")
                .arg(Arg::new("src").required(true))
                .arg(Arg::new("dst").required(true)),
        )
        .subcommand(
            Command::new("logs")
                .about("A session's events: console messages, ports, command and terminal exits, lifecycle")
                .arg(session())
                .arg(Arg::new("follow").long("follow").short('f').action(ArgAction::SetTrue).help("Keep printing new events"))
                .arg(Arg::new("since").long("since").value_parser(clap::value_parser!(u64)).help("Only events after this seq")),
        )
}

/// The address and token, from flags, the environment, then the file.
fn connection(m: &clap::ArgMatches) -> (String, Option<String>) {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let file: Value = std::env::var_os("XDG_CONFIG_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".config")))
        .map(|d| d.join("claude-studio/client.toml"))
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| toml::from_str::<toml::Value>(&t).ok())
        .and_then(|v| serde_json::to_value(v).ok())
        .unwrap_or_default();
    let url = m
        .get_one::<String>("url")
        .cloned()
        .or_else(|| env("STUDIO_URL"))
        .or_else(|| file["url"].as_str().map(String::from))
        .unwrap_or_else(|| "http://localhost:3333".into());
    // A ws:// address (as the seed's client takes) names the same server.
    let url = url
        .replacen("ws://", "http://", 1)
        .replacen("wss://", "https://", 1);
    let token = m
        .get_one::<String>("token")
        .cloned()
        .or_else(|| env("STUDIO_TOKEN"))
        .or_else(|| file["token"].as_str().map(String::from));
    (url, token)
}

/// Runs a client subcommand (`args` includes the program name); the
/// process's exit code.
pub async fn main(args: Vec<OsString>) -> i32 {
    let m = match command().try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let (url, token) = connection(&m);
    let mut api = Api::new(&url, token);
    if let Some(r) = m.get_one::<u32>("retries") {
        api.retries = *r;
    }
    let json = m.get_flag("json");
    let result = match m.subcommand() {
        Some(("shell", s)) => {
            shell::run(
                &api,
                s.get_one::<String>("session").cloned(),
                s.get_one::<String>("image").cloned(),
            )
            .await
        }
        Some(("run", s)) => run(&api, s, json).await,
        Some(("exec", s)) => {
            let sid = s.get_one::<String>("session").unwrap().clone();
            exec(&api, &sid, s, json).await
        }
        Some(("create", s)) => create(&api, s, json).await.map(|_| 0),
        Some(("ls", _)) => ls(&api, json).await.map(|_| 0),
        Some(("inspect", s)) => {
            let sid = s.get_one::<String>("session").unwrap();
            api.json(api.request(Method::GET, &format!("/api/containers/{sid}")))
                .await
                .map(|v| {
                    println!(
                        "{}",
                        if json {
                            v.to_string()
                        } else {
                            serde_json::to_string_pretty(&v).unwrap_or_default()
                        }
                    );
                    0
                })
        }
        Some(("health", _)) => api
            .json(api.request(Method::GET, "/api/health"))
            .await
            .map(|v| {
                if json {
                    print_json(&v);
                } else {
                    println!(
                        "{} (engine {}, {} sessions, up {} s)",
                        v["status"].as_str().unwrap_or("?"),
                        v["docker"].as_str().unwrap_or("?"),
                        v["sessions"],
                        v["uptime"]
                    );
                }
                i32::from(v["status"] != "ok")
            }),
        Some(("rm", s)) => rm(&api, s, json).await.map(|_| 0),
        Some(("preview", s)) => preview(&api, s, json).await.map(|_| 0),
        Some(("cp", s)) => copy::run(
            &api,
            s.get_one::<String>("src").unwrap(),
            s.get_one::<String>("dst").unwrap(),
            json,
        )
        .await
        .map(|_| 0),
        Some(("logs", s)) => logs::run(
            &api,
            s.get_one::<String>("session").unwrap(),
            s.get_one::<u64>("since").copied().unwrap_or(0),
            s.get_flag("follow"),
            json,
        )
        .await
        .map(|_| 0),
        _ => Err(CliError::new("UsageError", "no such command")),
    };
    match result {
        Ok(code) => code.clamp(0, 255),
        Err(e) => {
            if json {
                let _ = writeln!(
                    std::io::stderr(),
                    "{}",
                    json!({"error": e.name, "message": e.message})
                );
            } else {
                let _ = writeln!(std::io::stderr(), "claude-studio: {e}");
            }
            1
        }
    }
}

fn print_json(v: &Value) {
    let _ = writeln!(std::io::stdout(), "{v}");
}

async fn create_session(
    api: &Api,
    image: Option<&String>,
    workspace: Option<&String>,
) -> Result<Value> {
    let mut body = json!({});
    if let Some(i) = image {
        body["image"] = json!(i);
    }
    if let Some(w) = workspace {
        body["workspaceDir"] = json!(w);
    }
    api.json(api.request(Method::POST, "/api/containers").json(&body))
        .await
}

async fn create(api: &Api, s: &clap::ArgMatches, json: bool) -> Result<()> {
    let v = create_session(
        api,
        s.get_one::<String>("image"),
        s.get_one::<String>("workspace-dir"),
    )
    .await?;
    if json {
        print_json(&v);
    } else {
        println!("{}", v["sessionId"].as_str().unwrap_or_default());
    }
    Ok(())
}

async fn run(api: &Api, s: &clap::ArgMatches, json: bool) -> Result<i32> {
    let image = s.get_one::<String>("image");
    let v = create_session(api, image, None).await?;
    let sid = v["sessionId"].as_str().unwrap_or_default().to_string();
    if !s.get_flag("rm") && !json {
        eprintln!("claude-studio: session {sid}");
    }
    let code = exec(api, &sid, s, json).await;
    if s.get_flag("rm") {
        let removed = api
            .send(api.request(Method::DELETE, &format!("/api/containers/{sid}")))
            .await;
        if let Err(e) = removed {
            eprintln!("claude-studio: could not remove {sid}: {e}");
        }
    }
    code
}

/// The command's body from the subcommand's arguments.
fn exec_body(s: &clap::ArgMatches, exec_id: &str) -> Result<Value> {
    let cmd: Vec<String> = s.get_many::<String>("cmd").unwrap().cloned().collect();
    let mut body = json!({"cmd": cmd, "execId": exec_id});
    if let Some(c) = s.get_one::<String>("cwd") {
        body["cwd"] = json!(c);
    }
    if let Some(t) = s.get_one::<f64>("timeout") {
        body["timeout"] = json!(t);
    }
    if let Some(env) = s.get_many::<String>("env") {
        let mut map = serde_json::Map::new();
        for kv in env {
            let (k, v) = kv.split_once('=').ok_or_else(|| {
                CliError::new("UsageError", format!("--env takes KEY=VALUE, got {kv:?}"))
            })?;
            map.insert(k.to_string(), json!(v));
        }
        body["env"] = Value::Object(map);
    }
    Ok(body)
}

/// Runs a command, streaming its output to ours; its exit code.
async fn exec(api: &Api, sid: &str, s: &clap::ArgMatches, json: bool) -> Result<i32> {
    let exec_id = format!("cli-{:016x}", rand::random::<u64>());
    let body = exec_body(s, &exec_id)?;
    let resp = api
        .send(
            api.request(Method::POST, &format!("/api/containers/{sid}/exec"))
                .header("accept", "application/x-ndjson")
                .json(&body),
        )
        .await?;
    if s.get_flag("interactive") {
        feed_stdin(api, sid, &exec_id);
    }
    let mut lines = resp.bytes_stream();
    let mut pending = Vec::new();
    let mut code = 1;
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    while let Some(chunk) = lines.next().await {
        let chunk = chunk.map_err(|e| {
            CliError::new(
                "ConnectionError",
                format!("the command's stream broke: {e}"),
            )
        })?;
        pending.extend_from_slice(&chunk);
        while let Some(nl) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=nl).collect();
            let Ok(v) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            if json {
                print_json(&v);
            }
            match v["type"].as_str() {
                Some("exec_output") if !json => {
                    let data = v["data"].as_str().unwrap_or_default();
                    let bytes = if v["encoding"] == "base64" {
                        base64::engine::general_purpose::STANDARD
                            .decode(data)
                            .unwrap_or_default()
                    } else {
                        data.as_bytes().to_vec()
                    };
                    let w: &mut dyn Write = if v["stream"] == "stderr" {
                        &mut err
                    } else {
                        &mut out
                    };
                    let _ = w.write_all(&bytes);
                    let _ = w.flush();
                }
                Some("exec_exit") => {
                    code = v["code"].as_i64().unwrap_or(1) as i32;
                    if v["timedOut"] == true && !json {
                        eprintln!("claude-studio: the command timed out and was killed");
                    }
                }
                _ => {}
            }
        }
    }
    Ok(code)
}

/// Passes this program's stdin to the command as it comes, then closes it.
fn feed_stdin(api: &Api, sid: &str, exec_id: &str) {
    let path = format!("/api/containers/{sid}/exec/{exec_id}/input");
    let http = api.request(Method::POST, &path);
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = stdin.read(&mut buf).await.unwrap_or(0);
            let body = json!({
                "data": base64::engine::general_purpose::STANDARD.encode(&buf[..n]),
                "encoding": "base64",
                "eof": n == 0,
            });
            let Some(req) = http.try_clone() else { return };
            if req.json(&body).send().await.is_err() || n == 0 {
                return;
            }
        }
    });
}

async fn ls(api: &Api, json: bool) -> Result<()> {
    let v = api
        .json(api.request(Method::GET, "/api/containers"))
        .await?;
    if json {
        print_json(&v);
        return Ok(());
    }
    let rows = v.as_array().cloned().unwrap_or_default();
    println!(
        "{:<32}  {:<9}  {:<28}  {:<20}  PORTS",
        "SESSION", "STATUS", "IMAGE", "CREATED"
    );
    for r in rows {
        let created = r["createdAt"].as_i64().map(ago).unwrap_or_default();
        let ports: Vec<String> = r["ports"]
            .as_array()
            .map(|p| p.iter().map(|x| x.to_string()).collect())
            .unwrap_or_default();
        let preview = r["previewPort"]
            .as_u64()
            .map(|p| format!(" (preview {p})"))
            .unwrap_or_default();
        println!(
            "{:<32}  {:<9}  {:<28}  {:<20}  {}{}",
            r["sessionId"].as_str().unwrap_or_default(),
            r["status"].as_str().unwrap_or_default(),
            r["image"].as_str().unwrap_or_default(),
            created,
            ports.join(","),
            preview
        );
    }
    Ok(())
}

/// "5 minutes ago", from Unix seconds.
fn ago(secs: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(secs);
    let d = (now - secs).max(0);
    let (n, unit) = match d {
        0..=59 => (d, "second"),
        60..=3599 => (d / 60, "minute"),
        3600..=86399 => (d / 3600, "hour"),
        _ => (d / 86400, "day"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

async fn rm(api: &Api, s: &clap::ArgMatches, json: bool) -> Result<()> {
    let mut failed = None;
    for sid in s.get_many::<String>("session").unwrap() {
        match api
            .send(api.request(Method::DELETE, &format!("/api/containers/{sid}")))
            .await
        {
            Ok(_) if json => print_json(&json!({"sessionId": sid, "removed": true})),
            Ok(_) => println!("{sid}"),
            Err(e) => {
                eprintln!("claude-studio: {sid}: {e}");
                failed = Some(e);
            }
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

async fn preview(api: &Api, s: &clap::ArgMatches, json: bool) -> Result<()> {
    let sid = s.get_one::<String>("session").unwrap();
    let port = *s.get_one::<u16>("port").unwrap();
    let v = api
        .json(
            api.request(Method::POST, "/api/preview/configure")
                .json(&json!({"sessionId": sid, "port": port})),
        )
        .await?;
    if json {
        print_json(&v);
    } else {
        // The URL to open: the preview on an origin of its own.
        let url = v["hostPreviewUrl"]
            .as_str()
            .or(v["previewUrl"].as_str())
            .unwrap_or_default();
        let url = if url.starts_with('/') {
            api.url(url)
        } else {
            url.to_string()
        };
        println!("{url}");
    }
    Ok(())
}
