//! The agent API's costs, each next to a baseline measured in the same run:
//!
//! - a command (`true`) from request to exit code, over REST, against the
//!   same command through the Engine API directly (create, start attached,
//!   read to the end, inspect), on the same container, rounds interleaved;
//! - a file written then read back (1 KiB and 10 MiB) through the files
//!   API, against `docker cp` in and out (on a container like a session's
//!   but with a writable root: `docker cp` cannot write into the tmpfs
//!   mounts of a session's read-only container at all);
//! - a port opened in the container → `port_opened` delivered to an
//!   attached WebSocket (the command says "go" right before it listens).
//!
//!   cargo bench --bench agent              # 200 commands, 20 file rounds, 30 ports
//!   cargo bench --bench agent -- --quick   # a tenth of that

use std::process::Stdio;
use std::time::{Duration, Instant};

use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::ExecConfig;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

const IMAGE: &str = "studio-test-busybox:latest";

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

struct Guard {
    instance: String,
    label: String,
    child: Option<tokio::process::Child>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.start_kill();
        }
        for filter in [
            format!("label=studio.instance={}", self.instance),
            format!("label=studio.bench={}", self.label),
        ] {
            let out = std::process::Command::new("docker")
                .args(["ps", "-aq", "--filter", &filter])
                .output()
                .expect("docker");
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = std::process::Command::new("docker")
                    .args(["rm", "-f", "-v", id])
                    .output();
            }
        }
    }
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = |n: usize| if quick { (n / 10).max(3) } else { n };
    let run = std::process::id();
    let mut guard = Guard {
        instance: format!("bench-agent-{run}"),
        label: format!("bench-agent-{run}"),
        child: None,
    };
    let state = std::env::temp_dir().join(&guard.instance);
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_claude-studio"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--instance",
            &guard.instance,
            "--default-image",
            IMAGE,
        ])
        .args([
            "--rate-limit-general",
            "off",
            "--rate-limit-container",
            "off",
        ])
        .arg("--state-dir")
        .arg(&state)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the release server (cargo bench builds it)");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next_line().await.unwrap().expect("server exited");
        if let Some(a) = line.strip_prefix("claude-studio listening on http://") {
            break a.trim().to_string();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    guard.child = Some(child);
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");
    let created: Value = http
        .post(format!("{base}/api/containers"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sid = created["sessionId"].as_str().unwrap().to_string();
    let container = created["containerId"].as_str().unwrap().to_string();
    let docker = bollard::Docker::connect_with_local_defaults().unwrap();

    // 1. `true`, start to exit code.
    let rounds = scale(200);
    let (mut ours, mut engine) = (Vec::new(), Vec::new());
    let exec_url = format!("{base}/api/containers/{sid}/exec");
    for i in 0..rounds + 10 {
        let t = Instant::now();
        let r: Value = http
            .post(&exec_url)
            .json(&json!({"cmd": ["true"]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(r["exitCode"], 0, "{r}");
        let a = t.elapsed();
        let t = Instant::now();
        let exec = docker
            .create_exec(
                &container,
                ExecConfig {
                    attach_stdin: Some(true),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    cmd: Some(vec!["true".into()]),
                    user: Some("1000:1000".into()),
                    working_dir: Some("/workspace".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        if let StartExecResults::Attached { mut output, .. } = docker
            .start_exec(&exec.id, Some(StartExecOptions::default()))
            .await
            .unwrap()
        {
            while output.next().await.is_some() {}
        }
        let code = loop {
            let info = docker.inspect_exec(&exec.id).await.unwrap();
            if info.running != Some(true) {
                break info.exit_code;
            }
        };
        assert_eq!(code, Some(0));
        let b = t.elapsed();
        if i >= 10 {
            ours.push(a);
            engine.push(b);
        }
    }
    println!("\n## Commands: `true`, request → exit code ({rounds} rounds, interleaved)\n");
    println!("| | p50 | p99 |");
    println!("|---|---:|---:|");
    let (o50, o99) = (pct(&mut ours, 50.0), pct(&mut ours, 99.0));
    let (e50, e99) = (pct(&mut engine, 50.0), pct(&mut engine, 99.0));
    println!("| claude-studio `POST /exec` | {} | {} |", ms(o50), ms(o99));
    println!(
        "| Engine API direct (create, start, read, inspect) | {} | {} |",
        ms(e50),
        ms(e99)
    );
    println!(
        "| ratio | {:.2}× | {:.2}× |",
        o50.as_secs_f64() / e50.as_secs_f64(),
        o99.as_secs_f64() / e99.as_secs_f64()
    );

    // 2. Files: write then read back, against docker cp in and out.
    let plain = docker
        .create_container(
            Some(
                bollard::query_parameters::CreateContainerOptionsBuilder::default()
                    .name(&format!("bench-agent-cp-{run}"))
                    .build(),
            ),
            bollard::models::ContainerCreateBody {
                image: Some(IMAGE.into()),
                cmd: Some(vec!["sleep".into(), "3600".into()]),
                labels: Some([("studio.bench".to_string(), guard.label.clone())].into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    docker
        .start_container(
            &plain.id,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("bench-agent-{run}"));
    std::fs::create_dir_all(&dir).unwrap();
    println!(
        "\n## Files: write then read back ({} rounds each, interleaved)\n",
        scale(20)
    );
    println!("| size | files API p50 | `docker cp` in + out p50 | ratio |");
    println!("|---|---:|---:|---:|");
    for (label, size) in [("1 KiB", 1024usize), ("10 MiB", 10 << 20)] {
        let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        let src = dir.join("in.bin");
        std::fs::write(&src, &data).unwrap();
        let (mut api, mut cp) = (Vec::new(), Vec::new());
        let url = format!("{base}/api/containers/{sid}/files/content?path=/workspace/f.bin");
        for i in 0..scale(20) + 2 {
            let t = Instant::now();
            let w = http.put(&url).body(data.clone()).send().await.unwrap();
            assert!(w.status().is_success());
            let back = http.get(&url).send().await.unwrap().bytes().await.unwrap();
            assert_eq!(back.len(), size);
            let a = t.elapsed();
            let t = Instant::now();
            let ok = std::process::Command::new("docker")
                .args([
                    "cp",
                    src.to_str().unwrap(),
                    &format!("{}:/tmp/f.bin", plain.id),
                ])
                .status()
                .unwrap()
                .success();
            assert!(ok);
            let out = dir.join("out.bin");
            let ok = std::process::Command::new("docker")
                .args([
                    "cp",
                    &format!("{}:/tmp/f.bin", plain.id),
                    out.to_str().unwrap(),
                ])
                .status()
                .unwrap()
                .success();
            assert!(ok);
            assert_eq!(std::fs::metadata(&out).unwrap().len() as usize, size);
            let b = t.elapsed();
            if i >= 2 {
                api.push(a);
                cp.push(b);
            }
        }
        let (a, b) = (pct(&mut api, 50.0), pct(&mut cp, 50.0));
        println!(
            "| {label} | {} | {} | {:.2}× |",
            ms(a),
            ms(b),
            a.as_secs_f64() / b.as_secs_f64()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);

    // 3. Port opened → port_opened delivered.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    let send = |v: Value| tokio_tungstenite::tungstenite::Message::Text(v.to_string().into());
    ws.send(send(json!({"type": "attach", "sessionId": sid})))
        .await
        .unwrap();
    let mut seen = Vec::new();
    let ports = scale(30);
    for i in 0..ports {
        let port = 20000 + i as u16;
        let id = format!("p{i}");
        ws.send(send(json!({"type": "exec", "sessionId": sid, "execId": id,
            "cmd": format!("echo go; exec nc -ll -p {port} -e cat")})))
            .await
            .unwrap();
        let mut go = None;
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .expect("port_opened in time")
                .unwrap()
                .unwrap();
            let Ok(text) = msg.to_text() else { continue };
            let v: Value = serde_json::from_str(text).unwrap_or_default();
            if v["type"] == "exec_output" && v["execId"] == id.as_str() {
                go = Some(Instant::now());
            }
            if v["type"] == "port_opened" && v["port"] == port {
                seen.push(go.expect("the command spoke first").elapsed());
                break;
            }
        }
        ws.send(send(
            json!({"type": "exec_kill", "sessionId": sid, "execId": id}),
        ))
        .await
        .unwrap();
    }
    let (p50, p99) = (pct(&mut seen, 50.0), pct(&mut seen, 99.0));
    println!("\n## Ports: listening → `port_opened` delivered ({ports} ports)\n");
    println!("| p50 | p99 | goal |");
    println!("|---:|---:|---|");
    println!(
        "| {} | {} | p50 < 250 ms: {} |",
        ms(p50),
        ms(p99),
        if p50 < Duration::from_millis(250) {
            "met"
        } else {
            "NOT met"
        }
    );
    drop(guard);
    let _ = std::fs::remove_dir_all(&state);
}
