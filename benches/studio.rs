//! The studio page's budget: what a first load costs on the wire, and how
//! long a page opening an existing session takes to show its terminal with
//! the replay, in Chromium, next to a bare WebSocket `attach` from the same
//! browser in the same run.
//!
//!   cargo bench --bench studio            # 30 opens
//!   cargo bench --bench studio -- --runs 10

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

fn gzip(bytes: &[u8]) -> usize {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap().len()
}

fn brotli(bytes: &[u8]) -> usize {
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 11, 22);
        w.write_all(bytes).unwrap();
    }
    out.len()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let runs: usize = std::env::args()
        .skip_while(|a| a != "--runs")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(30);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dist = root.join("web/dist");

    // 1. What the first load costs: the page and what it loads.
    let index = std::fs::read_to_string(dist.join("index.html")).expect("web/dist is built");
    let mut files = vec![("index.html".to_string(), index.clone().into_bytes())];
    for part in index.split('"') {
        if let Some(asset) = part.strip_prefix("/assets/") {
            files.push((
                format!("assets/{asset}"),
                std::fs::read(dist.join("assets").join(asset)).unwrap(),
            ));
        }
    }
    println!("\n## First load (what the page fetches before it runs)\n");
    println!("| file | raw | gzip | brotli |");
    println!("|---|---:|---:|---:|");
    let (mut raw_total, mut gz_total, mut br_total) = (0, 0, 0);
    for (name, bytes) in &files {
        let (g, b) = (gzip(bytes), brotli(bytes));
        raw_total += bytes.len();
        gz_total += g;
        br_total += b;
        println!(
            "| {name} | {:.1} KB | {:.1} KB | {:.1} KB |",
            bytes.len() as f64 / 1e3,
            g as f64 / 1e3,
            b as f64 / 1e3
        );
    }
    println!(
        "| **total** | {:.1} KB | {:.1} KB | {:.1} KB |",
        raw_total as f64 / 1e3,
        gz_total as f64 / 1e3,
        br_total as f64 / 1e3
    );
    println!("\nbudget: compressed first load ≤ 250 KB: {:.1} KB gzip ({}), {:.1} KB brotli (what the server sends to browsers that take it)",
        gz_total as f64 / 1e3,
        if gz_total <= 250_000 { "met" } else { "NOT met" },
        br_total as f64 / 1e3);

    // 2. Page open → terminal with its replay, against the release server.
    let instance = format!("bench-studio-{}", std::process::id());
    let state = std::env::temp_dir().join(&instance);
    let image =
        std::env::var("STUDIO_TEST_IMAGE").unwrap_or_else(|_| "studio-test-busybox:latest".into());
    let mut server = Command::new(env!("CARGO_BIN_EXE_claude-studio"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--instance",
            &instance,
            "--default-image",
            &image,
        ])
        .args(["--rate-limit-ws", "off", "--rate-limit-general", "off"])
        .arg("--state-dir")
        .arg(&state)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the server");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let addr = line.trim().rsplit("http://").next().unwrap().to_string();
    let base = format!("http://{addr}");
    let cleanup = |server: &mut std::process::Child| {
        let _ = server.kill();
        let _ = server.wait();
        let out = Command::new("docker")
            .args([
                "ps",
                "-aq",
                "--filter",
                &format!("label=studio.instance={instance}"),
            ])
            .output()
            .unwrap();
        for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new("docker").args(["rm", "-f", id]).output();
        }
        let _ = std::fs::remove_dir_all(&state);
    };
    let created = Command::new("curl")
        .args([
            "-s",
            "-XPOST",
            &format!("{base}/api/containers"),
            "-H",
            "content-type: application/json",
            "-d",
            "{}",
        ])
        .output()
        .expect("curl");
    let created: serde_json::Value = serde_json::from_slice(&created.stdout).expect("a session");
    let sid = created["sessionId"]
        .as_str()
        .expect("a session id")
        .to_string();
    // Some history to replay (about 20 KB), ending with a marker, typed
    // through a browser's socket (Node 20 has no WebSocket of its own).
    let marker = "replay-marker-4711";
    let status = Command::new("node")
        .current_dir(root.join("web"))
        .arg("--input-type=module")
        .arg("-e")
        .arg(format!(
            "import {{ launch }} from './tests/helpers.mjs';
             const b = await launch(); const p = await b.newPage(); await p.goto('{base}/');
             await p.evaluate(() => new Promise((res) => {{
               const ws = new WebSocket('ws://{addr}/ws');
               ws.onopen = () => ws.send(JSON.stringify({{type: 'input', sessionId: '{sid}', data: 'seq 1 4000; echo {marker}-$((1+1))\\n'}}));
               ws.onmessage = (e) => {{ if (String(e.data).includes('{marker}-2')) {{ ws.close(); res(); }} }};
             }}));
             await b.close();"
        ))
        .status()
        .expect("node");
    assert!(status.success(), "typing the history failed");
    let out = Command::new("node")
        .current_dir(root.join("web"))
        .arg("bench/open.mjs")
        .env("STUDIO_URL", &base)
        .env("STUDIO_SESSION", &sid)
        .env("STUDIO_MARKER", format!("{marker}-2"))
        .env("STUDIO_RUNS", runs.to_string())
        .output()
        .expect("node bench/open.mjs");
    cleanup(&mut server);
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(text.lines().last().unwrap_or("{}"))
        .unwrap_or_else(|_| {
            panic!(
                "bench/open.mjs: {text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let sorted = |k: &str| {
        let mut xs: Vec<f64> = v[k]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|x| x.as_f64())
            .collect();
        xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
        xs
    };
    let (page, bare) = (sorted("page"), sorted("bare"));
    println!("\n## Page open → terminal with its replay (existing session, about 20 KB of history, n={runs})\n");
    println!("| path | p50 | p95 | max |");
    println!("|---|---:|---:|---:|");
    for (name, xs) in [
        ("studio page: navigation → replay on screen", &page),
        (
            "bare WebSocket from the same page: open → attach → replay",
            &bare,
        ),
    ] {
        println!(
            "| {name} | {:.0} ms | {:.0} ms | {:.0} ms |",
            percentile(xs, 0.5),
            percentile(xs, 0.95),
            xs[xs.len() - 1]
        );
    }
    let p50 = percentile(&page, 0.5);
    println!(
        "\ngoal: page open → replay shown p50 < 300 ms: {p50:.0} ms ({})",
        if p50 < 300.0 { "met" } else { "NOT met" }
    );
    std::thread::sleep(Duration::from_millis(10));
}
