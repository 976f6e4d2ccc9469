//! The `claude-studio` client subcommands against the real server and
//! engine: the shared client scenarios (`clients/scenarios.json`), `shell`
//! through a real pseudo-terminal (raw mode, resize, exit code, detach),
//! `exec`/`run` exit codes and streams, `cp` both ways, `logs`, and errors.

mod common;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_claude-studio");

/// What one CLI run said.
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    /// The error name of a `--json` failure.
    fn error(&self) -> Value {
        serde_json::from_str(self.stderr.lines().last().unwrap_or("")).unwrap_or(Value::Null)
    }
}

async fn cli(server: &Server, token: Option<&str>, args: &[&str]) -> Out {
    cli_in(server, token, args, None).await
}

async fn cli_in(server: &Server, token: Option<&str>, args: &[&str], stdin: Option<&[u8]>) -> Out {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args)
        .env("STUDIO_URL", format!("http://{}", server.addr))
        .env_remove("STUDIO_TOKEN")
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(t) = token {
        cmd.env("STUDIO_TOKEN", t);
    }
    let mut child = cmd.spawn().expect("the CLI runs");
    if let Some(data) = stdin {
        use tokio::io::AsyncWriteExt;
        let mut w = child.stdin.take().unwrap();
        w.write_all(data).await.unwrap();
        drop(w);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the CLI finishes")
        .unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `claude-studio shell …` on a real pseudo-terminal (its controlling one).
struct Pty {
    master: tokio::fs::File,
    child: tokio::process::Child,
    seen: String,
}

impl Pty {
    fn spawn(server: &Server, args: &[&str], token: Option<&str>) -> Pty {
        let (mut master, mut slave) = (0, 0);
        let ws = libc::winsize {
            ws_row: 24,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty fills two fds; the pointers are valid for the call.
        let r = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &ws,
            )
        };
        assert_eq!(r, 0, "openpty");
        // SAFETY: both fds were just opened and are owned here.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.args(args)
            .env("STUDIO_URL", format!("http://{}", server.addr))
            .env_remove("STUDIO_TOKEN")
            .env("XDG_CONFIG_HOME", "/nonexistent")
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave.try_clone().unwrap()))
            .kill_on_drop(true);
        if let Some(t) = token {
            cmd.env("STUDIO_TOKEN", t);
        }
        let slave_fd = slave.as_raw_fd();
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setsid() < 0 || libc::ioctl(slave_fd, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("the CLI runs");
        drop(slave);
        Pty {
            master: tokio::fs::File::from_std(std::fs::File::from(master)),
            child,
            seen: String::new(),
        }
    }

    async fn write(&mut self, data: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.master.write_all(data).await.unwrap();
    }

    /// Reads until the screen shows `needle` (after what was read before).
    async fn read_until(&mut self, needle: &str) -> String {
        use tokio::io::AsyncReadExt;
        let start = self.seen.len();
        let mut buf = [0u8; 4096];
        tokio::time::timeout(WAIT, async {
            while !self.seen[start..].contains(needle) {
                let n = self.master.read(&mut buf).await.unwrap_or(0);
                assert!(
                    n > 0,
                    "the terminal closed before {needle:?}: {:?}",
                    self.seen
                );
                let got = String::from_utf8_lossy(&buf[..n]).into_owned();
                // A terminal answers a cursor position query (busybox's
                // line editor asks before each prompt).
                for _ in 0..got.matches("\x1b[6n").count() {
                    use tokio::io::AsyncWriteExt;
                    self.master.write_all(b"\x1b[1;1R").await.unwrap();
                }
                self.seen.push_str(&got);
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {needle:?} on the terminal; it shows {:?}", self.seen));
        self.seen[start..].to_string()
    }

    fn resize(&self, cols: u16, rows: u16) {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer.
        let r = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        assert_eq!(r, 0);
    }

    async fn exit_code(mut self) -> i32 {
        use tokio::io::AsyncReadExt;
        // Keep reading so the child never blocks on a full terminal.
        let mut buf = [0u8; 4096];
        let status = tokio::time::timeout(WAIT, async {
            loop {
                tokio::select! {
                    s = self.child.wait() => return s.unwrap(),
                    n = self.master.read(&mut buf) => if n.unwrap_or(0) == 0 { return self.child.wait().await.unwrap() },
                }
            }
        })
        .await
        .expect("the CLI ends");
        status.code().unwrap_or(-1)
    }
}

#[tokio::test]
async fn shell_is_an_interactive_terminal() {
    let server = Server::start().await;
    let mut pty = Pty::spawn(&server, &["shell"], None);
    let said = pty.read_until("detach with ctrl-p ctrl-q").await;
    let sid = said
        .split_whitespace()
        .find(|w| w.starts_with("session-"))
        .expect("the new session's id")
        .to_string();
    pty.read_until("$ ").await;
    // Typed keys go through as they are (raw mode: no local echo doubling).
    pty.write(b"echo sum=$((6*7))\r").await;
    pty.read_until("sum=42").await;
    // The terminal's size follows the window's.
    pty.resize(123, 37);
    pty.read_until("").await;
    let (_, info) = server.get(&format!("/api/containers/{sid}")).await;
    assert_eq!(info["status"], "running");
    let mut sized = false;
    for _ in 0..50 {
        pty.write(b"stty size\r").await;
        let out = pty.read_until("$ ").await;
        if out.contains("37 123") {
            sized = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(sized, "the shell never saw the new size: {:?}", pty.seen);
    // ctrl-c reaches the shell's program, not this one.
    pty.write(b"sleep 100\r").await;
    eventually("sleep to run", || async {
        let (_, r) = server
            .post(
                &format!("/api/containers/{sid}/exec"),
                r#"{"cmd":"ps -o args | grep -qx 'sleep 100'"}"#,
            )
            .await;
        (r["exitCode"] == 0).then_some(())
    })
    .await;
    pty.write(&[0x03]).await;
    pty.write(b"echo after=$((1+1))\r").await;
    pty.read_until("after=2").await;
    // The shell's exit code is the program's.
    pty.write(b"exit 3\r").await;
    assert_eq!(pty.exit_code().await, 3);

    // Detach leaves the shell running; attach again by name.
    let mut pty = Pty::spawn(&server, &["shell", &sid], None);
    pty.write(b"echo back=$((2*2))\r").await;
    pty.read_until("back=4").await;
    pty.write(&[0x10, 0x11]).await;
    pty.read_until("detached from").await;
    assert_eq!(pty.exit_code().await, 0);
    let (_, info) = server.get(&format!("/api/containers/{sid}")).await;
    assert_eq!(info["status"], "running");
}

#[tokio::test]
async fn exec_run_cp_logs_and_errors() {
    let server = Server::start().await;
    let created = cli(&server, None, &["create"]).await;
    assert_eq!(created.code, 0, "{}", created.stderr);
    let sid = created.stdout.trim().to_string();
    assert!(sid.starts_with("session-"));
    // Output as it comes on the right stream, the command's code as ours.
    let out = cli(
        &server,
        None,
        &[
            "exec",
            &sid,
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 4",
        ],
    )
    .await;
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (4, "out\n", "err\n")
    );
    let out = cli_in(
        &server,
        None,
        &["exec", "-i", &sid, "--", "wc", "-c"],
        Some(b"12345"),
    )
    .await;
    assert_eq!((out.code, out.stdout.trim()), (0, "5"));
    let out = cli(
        &server,
        None,
        &[
            "exec",
            "--cwd",
            "/tmp",
            "-e",
            "A=b c",
            &sid,
            "--",
            "sh",
            "-c",
            "pwd; echo $A",
        ],
    )
    .await;
    assert_eq!(out.stdout, "/tmp\nb c\n");
    let out = cli(
        &server,
        None,
        &["exec", "--timeout", "0.5", &sid, "--", "sleep", "30"],
    )
    .await;
    assert_eq!(out.code, 137);
    assert!(out.stderr.contains("timed out"), "{}", out.stderr);
    let out = cli(
        &server,
        None,
        &[
            "run",
            "--rm",
            &test_image(),
            "--",
            "sh",
            "-c",
            "echo ran; exit 6",
        ],
    )
    .await;
    assert_eq!((out.code, out.stdout.as_str()), (6, "ran\n"));
    // cp both ways, a file and a directory, byte for byte.
    let dir = std::env::temp_dir().join(unique("cli-cp"));
    std::fs::create_dir_all(dir.join("tree/sub")).unwrap();
    let bytes: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    std::fs::write(dir.join("tree/sub/data.bin"), &bytes).unwrap();
    std::fs::write(dir.join("one.txt"), "one\n").unwrap();
    let p = |x: &str| dir.join(x).to_string_lossy().into_owned();
    let out = cli(
        &server,
        None,
        &[
            "cp",
            &p("one.txt"),
            &format!("{sid}:/workspace/new/one.txt"),
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = cli(
        &server,
        None,
        &["cp", &p("tree"), &format!("{sid}:/workspace")],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = cli(
        &server,
        None,
        &[
            "exec",
            &sid,
            "--",
            "sh",
            "-c",
            "cat /workspace/new/one.txt; md5sum < /workspace/tree/sub/data.bin",
        ],
    )
    .await;
    let local_md5 = std::process::Command::new("md5sum")
        .arg(p("tree/sub/data.bin"))
        .output()
        .unwrap();
    let local_md5 = String::from_utf8_lossy(&local_md5.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(out.stdout, format!("one\n{local_md5}  -\n"));
    let out = cli(
        &server,
        None,
        &["cp", &format!("{sid}:/workspace/tree"), &p("back")],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(std::fs::read(dir.join("back/sub/data.bin")).unwrap(), bytes);
    let out = cli(
        &server,
        None,
        &["cp", &format!("{sid}:/workspace/new/one.txt"), &p("back")],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.join("back/one.txt")).unwrap(),
        "one\n"
    );
    let out = cli(
        &server,
        None,
        &["cp", &format!("{sid}:/etc/passwd"), &p("x")],
    )
    .await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("ValidationError"), "{}", out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    // logs: the session's events, and the exit codes above among them.
    let out = cli(&server, None, &["logs", &sid]).await;
    assert!(out.stdout.contains("session created"), "{}", out.stdout);
    assert!(out.stdout.contains("exited 4"), "{}", out.stdout);
    let out = cli(&server, None, &["logs", "--json", &sid]).await;
    let first: Value = serde_json::from_str(out.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["type"], "lifecycle");
    // preview prints the URL to open.
    let out = cli(&server, None, &["preview", &sid, "3000"]).await;
    assert_eq!(
        out.stdout.trim(),
        format!("http://3000-{sid}.localhost:{}/", server.addr.port())
    );
    // ls and rm.
    let out = cli(&server, None, &["ls"]).await;
    assert!(
        out.stdout.contains(&sid) && out.stdout.contains("running"),
        "{}",
        out.stdout
    );
    let out = cli(&server, None, &["rm", &sid]).await;
    assert_eq!((out.code, out.stdout.trim()), (0, sid.as_str()));
    // Errors: one line, non-zero; JSON with --json.
    let out = cli(&server, None, &["rm", &sid]).await;
    assert_eq!(out.code, 1);
    assert_eq!(out.stderr.lines().count(), 2, "{}", out.stderr);
    assert!(out.stderr.contains("ContainerNotFoundError"));
    let out = cli(&server, None, &["inspect", "--json", &sid]).await;
    assert_eq!(out.error()["error"], "ContainerNotFoundError");
    let out = tokio::process::Command::new(BIN)
        .args(["ls", "--url", "http://127.0.0.1:1"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach the server at http://127.0.0.1:1"),
        "{err}"
    );
    let out = cli(&server, None, &["exec", "session-x"]).await;
    assert_eq!(out.code, 2, "a usage error: {}", out.stderr);
}

/// Runs every scenario of `clients/scenarios.json` through the CLI.
#[tokio::test]
async fn the_shared_client_scenarios() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/scenarios.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for scenario in doc["scenarios"].as_array().unwrap() {
        run_scenario(scenario).await;
    }
}

fn subst(v: &Value, vars: &std::collections::HashMap<String, String>) -> Value {
    match v {
        Value::String(s) => {
            let mut out = s.clone();
            for (k, val) in vars {
                out = out.replace(&format!("${k}"), val);
            }
            Value::String(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| subst(x, vars)).collect()),
        Value::Object(o) => {
            Value::Object(o.iter().map(|(k, x)| (k.clone(), subst(x, vars))).collect())
        }
        other => other.clone(),
    }
}

async fn run_scenario(scenario: &Value) {
    let name = scenario["name"].as_str().unwrap();
    let args: Vec<String> = scenario["server"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let server = Server::builder().args(args).start().await;
    let tokens = scenario["tokens"].as_object().cloned().unwrap_or_default();
    let first_token = tokens
        .values()
        .next()
        .and_then(|t| t.as_str())
        .map(String::from);
    let mut vars = std::collections::HashMap::new();
    let mut shells: std::collections::HashMap<String, Pty> = Default::default();
    let dir = std::env::temp_dir().join(unique("cli-scenario"));
    std::fs::create_dir_all(&dir).unwrap();
    for raw in scenario["steps"].as_array().unwrap() {
        let step = subst(raw, &vars);
        let what = format!("{name}: {step}");
        let token = match step["as"].as_str() {
            Some(n) => tokens[n].as_str().map(String::from),
            None => first_token.clone(),
        };
        let t = token.as_deref();
        let s = step["session"].as_str().unwrap_or_default().to_string();
        let mut base = vec!["--json".to_string()];
        if let Some(r) = step["retries"].as_u64() {
            base.extend(["--retries".into(), r.to_string()]);
        }
        // The subcommand first, then its flags and the global ones.
        let with = |extra: &[&str]| -> Vec<String> {
            let mut v: Vec<String> = extra[..1].iter().map(|x| x.to_string()).collect();
            v.extend(base.iter().cloned());
            v.extend(extra[1..].iter().map(|x| x.to_string()));
            v
        };
        let run = |argv: Vec<String>| {
            let server = &server;
            async move {
                let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
                cli(server, t, &refs).await
            }
        };
        let out = match step["do"].as_str().unwrap() {
            "health" => run(with(&["health"])).await,
            "create" => run(with(&["create"])).await,
            "get" => run(with(&["inspect", &s])).await,
            "list" => run(with(&["ls"])).await,
            "remove" => run(with(&["rm", &s])).await,
            "configure_preview" => run(with(&["preview", &s, &step["port"].to_string()])).await,
            "exec" => {
                let mut argv = vec!["exec".to_string()];
                if let Some(tm) = step["timeout"].as_f64() {
                    argv.extend(["--timeout".into(), tm.to_string()]);
                }
                argv.extend([s.clone(), "--".into()]);
                match &step["cmd"] {
                    Value::String(c) => argv.extend(["sh".into(), "-c".into(), c.clone()]),
                    Value::Array(a) => {
                        argv.extend(a.iter().map(|x| x.as_str().unwrap().to_string()))
                    }
                    _ => unreachable!(),
                }
                // Without --json: the streams as they are, the code as ours.
                let mut v = vec![argv.remove(0)];
                v.extend(base.iter().filter(|a| *a != "--json").cloned());
                v.extend(argv);
                let refs: Vec<&str> = v.iter().map(String::as_str).collect();
                let mut o = cli(&server, t, &refs).await;
                if step.get("expect_error").is_some() {
                    // An error before the command ran: read its name from the one line.
                    let name = o.stderr.split(':').nth(1).unwrap_or("").trim().to_string();
                    o.stderr = json!({"error": name}).to_string();
                }
                o
            }
            "write_file" => {
                let local = dir.join("upload");
                let bytes = match step["content"].as_str() {
                    Some(c) => c.as_bytes().to_vec(),
                    None => base64_decode(step["content_base64"].as_str().unwrap()),
                };
                std::fs::write(&local, bytes).unwrap();
                let dst = format!("{s}:{}", step["path"].as_str().unwrap());
                run(with(&["cp", local.to_str().unwrap(), &dst])).await
            }
            "read_file" => {
                let local = dir.join(unique("download"));
                let src = format!("{s}:{}", step["path"].as_str().unwrap());
                let o = run(with(&["cp", &src, local.to_str().unwrap()])).await;
                if o.code == 0 {
                    let got = std::fs::read(&local).unwrap();
                    if let Some(c) = step["expect_content"].as_str() {
                        assert_eq!(String::from_utf8_lossy(&got), c, "{what}");
                    }
                    if let Some(c) = step["expect_content_base64"].as_str() {
                        assert_eq!(got, base64_decode(c), "{what}");
                    }
                }
                o
            }
            "list_files" => {
                // The command line has no listing of its own: ls in the session.
                let mut v = vec!["exec".to_string()];
                v.extend(base.iter().filter(|a| *a != "--json").cloned());
                v.extend([
                    s.clone(),
                    "--".into(),
                    "ls".into(),
                    "-1A".into(),
                    step["path"].as_str().unwrap().into(),
                ]);
                let refs: Vec<&str> = v.iter().map(String::as_str).collect();
                let o = cli(&server, t, &refs).await;
                let names: Vec<&str> = o.stdout.lines().collect();
                let want: Vec<&str> = step["expect_names"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n.as_str().unwrap())
                    .collect();
                assert_eq!(names, want, "{what}");
                o
            }
            "type" => {
                let pty = match shells.remove(&s) {
                    Some(p) => p,
                    None => Pty::spawn(&server, &["shell", s.as_str()], t),
                };
                let mut pty = pty;
                let data = step["data"].as_str().unwrap().replace('\n', "\r");
                pty.write(data.as_bytes()).await;
                shells.insert(s.clone(), pty);
                Out {
                    code: 0,
                    stdout: String::new(),
                    stderr: String::new(),
                }
            }
            "read_output" => {
                let pty = shells.get_mut(&s).expect("a shell was typed into first");
                pty.read_until(step["until"].as_str().unwrap()).await;
                Out {
                    code: 0,
                    stdout: String::new(),
                    stderr: String::new(),
                }
            }
            other => panic!("unknown step {other} in {name}"),
        };
        if let Some(err) = step.get("expect_error") {
            assert_ne!(out.code, 0, "{what}: expected an error, got {}", out.stdout);
            let got = out.error();
            assert_eq!(got["error"], err["error"], "{what}: {}", out.stderr);
            continue;
        }
        assert!(
            out.code == 0 || step["do"] == "exec",
            "{what}: {} {}",
            out.stdout,
            out.stderr
        );
        let value: Value = out
            .stdout
            .lines()
            .next()
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or(Value::Null);
        if let Some(save) = step["save"].as_str() {
            vars.insert(
                save.to_string(),
                value["sessionId"].as_str().unwrap().to_string(),
            );
        }
        if let Some(exp) = step["expect"].as_object() {
            for (k, want) in exp {
                match (step["do"].as_str().unwrap(), k.as_str()) {
                    ("exec", "exitCode") => {
                        assert_eq!(json!(out.code), *want, "{what}: {}", out.stderr)
                    }
                    ("exec", "stdout") => assert_eq!(json!(out.stdout), *want, "{what}"),
                    ("exec", "stderr") => assert_eq!(json!(out.stderr), *want, "{what}"),
                    ("exec", "timedOut") => assert_eq!(
                        out.stderr.contains("timed out"),
                        *want == json!(true),
                        "{what}"
                    ),
                    ("exec", "signal") => {
                        let sig = claude_studio::runtime::exit::signal_name(i64::from(out.code));
                        assert_eq!(json!(sig), *want, "{what}");
                    }
                    _ => assert_eq!(value[k], *want, "{what}: {value}"),
                }
            }
        }
        if let Some(needle) = step["expect_contains"].as_str() {
            assert!(out.stdout.contains(needle), "{what}: {}", out.stdout);
        }
        if let Some(needle) = step["expect_url_contains"].as_str() {
            assert!(
                value["previewUrl"]
                    .as_str()
                    .unwrap_or_default()
                    .contains(needle),
                "{what}: {value}"
            );
        }
    }
    drop(shells);
    let _ = std::fs::remove_dir_all(&dir);
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}
