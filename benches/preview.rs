//! The preview proxy's benchmark: `cargo bench --bench preview`.
//!
//! One session runs `preview-upstream` in its container; the same requests go
//! (a) through the preview, (b) straight to the container's own address, and
//! (c) through Debian's nginx as a reverse proxy to that same address, and
//! (d) through a bare hyper forwarder (no routing, checks or rewriting: the
//! floor for any proxy built on hyper; a process of its own, this binary
//! run with `--bare-forwarder ADDR`), all in one run. The preview runs with
//! the default rate limits; a second server with every limit off is
//! measured beside it. HTTP load comes from `wrk` (fixed duration, fixed
//! connections), and any answer but a 2xx fails the run; WebSocket round
//! trips are timed here, one message at a time, the paths taking turns.
//! Prints a markdown table. Loopback and the container's address only.

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

const PORT: u16 = 8080;
const DURATION: &str = "2s";
/// Runs per path and workload; the table shows medians.
const ROUNDS: usize = 3;
const CONNECTIONS: &str = "16";
const WS_ROUNDS: usize = 3000;

struct Http {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    requests: f64,
}

/// The arguments that make this binary the bare forwarder (see
/// [`bare_forwarder_main`]).
const BARE_FORWARDER: &str = "--bare-forwarder";

/// CPU time (user + system) the processes `pids` have used so far, in µs.
fn cpu_us(pids: &[u32]) -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .map(|stat| {
            // Fields after the command name, which is in parentheses.
            let rest = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            // utime and stime: fields 14 and 15 of stat, 12 and 13 here.
            ticks(11) + ticks(12)
        })
        .sum::<f64>()
        * 1e6
        / hz
}

/// The processes whose parent is `parent` (nginx's workers).
fn children(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    let rest = &s[s.rfind(')')? + 2..];
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

fn need(cmd: &str, package: &str) {
    let found = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .output()
        .unwrap()
        .status
        .success();
    if !found {
        eprintln!("bench: '{cmd}' is missing; installing Debian's {package}");
        let ok = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq {package} >/dev/null"))
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "install {package} (apt-get install {package}) and run again"
        );
    }
}

/// The floor: a forwarder with nothing but hyper in it, built like the
/// preview (each browser-side connection keeps its own upstream connection
/// alive). It is this binary run again with `--bare-forwarder ADDR`, so that
/// its CPU is counted from its own process as the server's is, on a tokio
/// runtime with one worker per core as the server's. Plain HTTP only, no
/// upgrades, no routing, checks or rewriting. Prints its port, then serves
/// until killed.
fn bare_forwarder_main(upstream: SocketAddr) {
    use hyper::body::Incoming;
    use hyper_util::rt::TokioIo;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap().port());
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                let Ok(up) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = up.set_nodelay(true);
                let Ok((sender, conn)) =
                    hyper::client::conn::http1::handshake::<_, Incoming>(TokioIo::new(up)).await
                else {
                    return;
                };
                tokio::spawn(conn);
                let sender = std::sync::Arc::new(tokio::sync::Mutex::new(sender));
                let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let sender = sender.clone();
                    async move {
                        let mut sender = sender.lock().await;
                        sender.ready().await?;
                        sender.send_request(req).await
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
}

/// The bare forwarder's process; killed when dropped.
struct BareForwarder {
    child: std::process::Child,
    port: u16,
}

impl BareForwarder {
    fn start(upstream: SocketAddr) -> BareForwarder {
        use std::io::BufRead;
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .arg(BARE_FORWARDER)
            .arg(upstream.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the bare forwarder");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the bare forwarder's port");
        BareForwarder { child, port }
    }
}

impl Drop for BareForwarder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// nginx as a plain reverse proxy to the container, with upstream keep-alive
/// and WebSocket upgrades: the usual production configuration.
struct Nginx {
    child: std::process::Child,
    dir: std::path::PathBuf,
    port: u16,
}

impl Nginx {
    fn start(upstream: IpAddr) -> Nginx {
        let dir = std::env::temp_dir().join(unique("studio-bench-nginx"));
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let d = dir.display();
        let user = if unsafe_is_root() { "user root;" } else { "" };
        let conf = format!(
            r#"{user}
worker_processes auto;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}
  upstream app {{ server {upstream}:{PORT}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Host $host;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Real-IP $remote_addr;
    }}
  }}
}}
"#
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let child = std::process::Command::new("nginx")
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-p")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start nginx");
        Nginx { child, dir, port }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, so the master stops its workers too (a SIGKILLed master
        // leaves them running).
        // SAFETY: signals our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn unsafe_is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// `10.5us`, `1.2ms`, `2s` → microseconds.
fn micros(v: &str) -> f64 {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
    let n: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n,
        "ms" => n * 1e3,
        "s" => n * 1e6,
        _ => f64::NAN,
    }
}

fn wrk(url: &str) -> Http {
    let out = std::process::Command::new("wrk")
        .args(["-t1", "-c", CONNECTIONS, "-d", DURATION, "--latency", url])
        .output()
        .expect("run wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut h = Http {
        rps: f64::NAN,
        p50_us: f64::NAN,
        p99_us: f64::NAN,
        requests: f64::NAN,
    };
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["50%", v] => h.p50_us = micros(v),
            ["99%", v] => h.p99_us = micros(v),
            ["Requests/sec:", v] => h.rps = v.parse().unwrap_or(f64::NAN),
            [n, "requests", "in", ..] => h.requests = n.parse().unwrap_or(f64::NAN),
            _ => {}
        }
        // wrk counts every answer it parsed as a request served, errors
        // included: a fast refusal would look like speed.
        if let Some(n) = line.trim().strip_prefix("Non-2xx or 3xx responses:") {
            let n: u64 = n.trim().parse().unwrap_or(u64::MAX);
            panic!("wrk {url}: {n} answers were not 2xx; the figures would count them as served");
        }
        if line.contains("Socket errors") {
            eprintln!("bench: wrk {url}: {line}");
        }
    }
    assert!(
        out.status.success() && h.requests > 0.0,
        "wrk {url} failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    h
}

/// Round-trip times of one small message at a time over each of `urls`,
/// in microseconds: (p50, p99) per URL. The paths take turns message by
/// message (the first of each turn rotating), so a burst of load from
/// elsewhere on the machine hits all of them alike.
async fn ws_rtt(urls: &[String]) -> Vec<(f64, f64)> {
    let mut sockets = Vec::new();
    for url in urls {
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap_or_else(|e| panic!("websocket {url}: {e}"));
        sockets.push(ws);
    }
    let n = sockets.len();
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(WS_ROUNDS); n];
    for i in 0..(WS_ROUNDS + 200) {
        for k in 0..n {
            let j = (i + k) % n;
            let ws = &mut sockets[j];
            let msg = format!("echo {i:08}");
            let t = Instant::now();
            ws.send(Message::Text(msg.clone().into())).await.unwrap();
            let back = ws.next().await.unwrap().unwrap();
            let dt = t.elapsed();
            assert_eq!(back.into_text().unwrap().as_str(), msg);
            if i >= 200 {
                times[j].push(dt.as_secs_f64() * 1e6);
            }
        }
    }
    for mut ws in sockets {
        let _ = ws.close(None).await;
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort_by(|a, b| a.partial_cmp(b).unwrap());
            (t[t.len() / 2], t[t.len() * 99 / 100])
        })
        .collect()
}

/// One request to each path before the runs: every one must answer 200
/// with the same body as the container itself. (wrk counts only answers
/// of 400 and up as errors; a redirect would pass as a served request.)
async fn check_answers(bases: &[&str], path: &str) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut first: Option<bytes::Bytes> = None;
    for base in bases {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{base}{path}");
        let body = r.bytes().await.unwrap();
        match &first {
            None => first = Some(body),
            // The preview's page carries the script: at least as long.
            Some(f) if path.starts_with("/html") => assert!(body.len() >= f.len(), "{base}{path}"),
            Some(f) => assert_eq!(&body, f, "{base}{path}"),
        }
    }
}

/// A server with `args`, one session running `preview-upstream`, its
/// preview configured and answering. (server, session id, container id)
async fn preview_server(args: &[&str]) -> (Server, String, String) {
    let server = Server::builder()
        .args(args.iter().copied())
        .env("RUST_LOG", "claude_studio=warn")
        .start()
        .await;
    let mut ws = server.ws().await;
    let (sid, cid) = ws.create(json!({})).await;
    ws.input(&sid, &format!("preview-upstream {PORT} &\n"))
        .await;
    let (status, v) = server
        .post(
            "/api/preview/configure",
            &json!({"sessionId": sid, "port": PORT}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let http = reqwest::Client::new();
    let small = server.url(&format!("/preview/{sid}/small"));
    eventually("the upstream app", || {
        let (h, u) = (http.clone(), small.clone());
        async move {
            let r = h.get(&u).send().await;
            if let Ok(r) = &r {
                if r.status() != 200 {
                    eprintln!("bench: {u}: {}", r.status());
                }
            }
            r.ok().filter(|r| r.status() == 200).map(|_| ())
        }
    })
    .await;
    (server, sid, cid)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn fmt_rps(v: f64) -> String {
    format!("{v:.0}")
}

fn fmt_us(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.2} ms", v / 1000.0)
    } else {
        format!("{v:.0} µs")
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == BARE_FORWARDER {
            let upstream = args.next().expect("--bare-forwarder ADDR:PORT");
            return bare_forwarder_main(upstream.parse().expect("an address and port"));
        }
    }
    tokio::runtime::Runtime::new().unwrap().block_on(bench());
}

/// Every rate limit off, for the row beside the preview's default limits.
const LIMITS_OFF: [&str; 10] = [
    "--rate-limit-general",
    "off",
    "--rate-limit-container",
    "off",
    "--rate-limit-preview",
    "off",
    "--rate-limit-ws",
    "off",
    "--rate-limit-auth",
    "off",
];

async fn bench() {
    need("wrk", "wrk");
    need("nginx", "nginx");
    // The image must carry preview-upstream: (re)build it, as scripts/test does.
    let built = std::process::Command::new("scripts/build-test-image.sh")
        .stdout(Stdio::null())
        .status()
        .expect("build the test image");
    assert!(built.success(), "scripts/build-test-image.sh failed");
    // The preview as it ships: default rate limits.
    let (server, sid, cid) = preview_server(&[]).await;
    let (unlimited, sid_off, _) = preview_server(&LIMITS_OFF).await;
    let ip: IpAddr = docker_inspect("container", &cid).unwrap()["NetworkSettings"]["Networks"]
        .as_object()
        .unwrap()
        .values()
        .find_map(|n| {
            n["IPAddress"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap())
        })
        .expect("container address");
    let preview = server.url(&format!("/preview/{sid}"));
    let preview_off = unlimited.url(&format!("/preview/{sid_off}"));
    let http = reqwest::Client::new();
    let nginx = Nginx::start(ip);
    let nginx_base = format!("http://127.0.0.1:{}", nginx.port);
    eventually("nginx", || {
        let (h, u) = (http.clone(), format!("{nginx_base}/small"));
        async move {
            h.get(u)
                .send()
                .await
                .ok()
                .filter(|r| r.status() == 200)
                .map(|_| ())
        }
    })
    .await;
    let direct = format!("http://{ip}:{PORT}");
    let forwarder = BareForwarder::start(SocketAddr::new(ip, PORT));
    let bare = format!("http://127.0.0.1:{}", forwarder.port);

    let cases = [
        ("small response (3 B)", "/small"),
        ("20 KB HTML (injected via preview)", "/html20k"),
        ("1 MiB body", "/large"),
    ];
    // Whose CPU time counts for each path: the proxy's own processes.
    let nginx_workers = children(nginx.child.id());
    let targets = [
        (
            "preview",
            preview.clone(),
            vec![server.pid().expect("server running")],
        ),
        ("direct to container", direct.clone(), Vec::new()),
        ("nginx", nginx_base.clone(), nginx_workers),
        (
            "bare hyper forwarder (floor)",
            bare.clone(),
            vec![forwarder.child.id()],
        ),
        (
            "preview, every rate limit off",
            preview_off.clone(),
            vec![unlimited.pid().expect("server running")],
        ),
    ];
    for (_, path) in cases {
        let bases: Vec<&str> = targets.iter().map(|(_, b, _)| b.as_str()).collect();
        // The container first: the others are compared with its answer.
        let mut bases = bases;
        bases.swap(0, 1);
        check_answers(&bases, path).await;
    }
    println!(
        "\nHTTP: wrk -t1 -c{CONNECTIONS} -d{DURATION}, median of {ROUNDS} interleaved runs, no answer but 200; WebSocket: {WS_ROUNDS} round trips of a 14-byte text frame per path, the paths taking turns.\n"
    );
    println!("| workload | path | requests/s | p50 | p99 | proxy CPU per request |");
    println!("|---|---|---:|---:|---:|---:|");
    let mut ratios = Vec::new();
    for (name, path) in cases {
        // Rounds interleave the paths, so a burst of load from elsewhere on
        // the machine hits all of them alike; medians are shown.
        let mut runs: Vec<Vec<Http>> = (0..targets.len()).map(|_| Vec::new()).collect();
        for (_, base, _) in &targets {
            let _ = std::process::Command::new("wrk")
                .args([
                    "-t1",
                    "-c",
                    CONNECTIONS,
                    "-d",
                    "1s",
                    &format!("{base}{path}"),
                ])
                .output();
        }
        // CPU µs and requests, summed over the rounds, per path.
        let mut cpu = vec![(0.0, 0.0); targets.len()];
        for _ in 0..ROUNDS {
            for (i, (_, base, pids)) in targets.iter().enumerate() {
                let before = cpu_us(pids);
                let h = wrk(&format!("{base}{path}"));
                cpu[i].0 += cpu_us(pids) - before;
                cpu[i].1 += h.requests;
                runs[i].push(h);
            }
        }
        let mut rps = Vec::new();
        for (i, (tname, _, pids)) in targets.iter().enumerate() {
            let m = |f: fn(&Http) -> f64| median(runs[i].iter().map(f).collect());
            let (r, p50, p99) = (m(|h| h.rps), m(|h| h.p50_us), m(|h| h.p99_us));
            let per_request = if pids.is_empty() {
                "–".to_string()
            } else {
                format!("{:.0} µs", cpu[i].0 / cpu[i].1)
            };
            println!(
                "| {name} | {tname} | {} | {} | {} | {per_request} |",
                fmt_rps(r),
                fmt_us(p50),
                fmt_us(p99)
            );
            rps.push(r);
        }
        ratios.push((name, rps[0] / rps[2], rps[3] / rps[2], rps[4] / rps[2]));
    }
    let ws_targets = [
        ("preview", format!("ws://{}/preview/{sid}/ws", server.addr)),
        ("direct to container", format!("ws://{ip}:{PORT}/ws")),
        ("nginx", format!("ws://127.0.0.1:{}/ws", nginx.port)),
    ];
    let urls: Vec<String> = ws_targets.iter().map(|(_, u)| u.clone()).collect();
    let rtts = ws_rtt(&urls).await;
    for ((tname, _), (p50, p99)) in ws_targets.iter().zip(&rtts) {
        println!(
            "| WebSocket echo round trip | {tname} | – | {} | {} | |",
            fmt_us(*p50),
            fmt_us(*p99)
        );
    }
    let p50s: Vec<f64> = rtts.iter().map(|(p50, _)| *p50).collect();
    println!("\n| target | measured | goal |");
    println!("|---|---:|---|");
    for (name, r, floor, off) in &ratios {
        let goal = if name.starts_with("20 KB") {
            0.9
        } else if name.starts_with("1 MiB") {
            1.3
        } else {
            1.0
        };
        let met = if *r >= goal { "met" } else { "NOT met" };
        println!("| {name}: preview ÷ nginx requests/s | {r:.2}× | ≥ {goal}× ({met}) |");
        println!("| {name}: bare hyper forwarder ÷ nginx requests/s | {floor:.2}× | (reference) |");
        println!("| {name}: preview with every rate limit off ÷ nginx requests/s | {off:.2}× | (reference) |");
    }
    let added = p50s[0] - p50s[1];
    let nginx_added = p50s[2] - p50s[1];
    let met = if added <= nginx_added {
        "met"
    } else {
        "NOT met"
    };
    println!(
        "| WebSocket echo: preview p50 − direct p50 | {added:.0} µs | ≤ nginx's {nginx_added:.0} µs ({met}) |"
    );
    drop(forwarder);
    drop(nginx);
    drop(unlimited);
    tokio::time::sleep(Duration::from_millis(10)).await;
}
