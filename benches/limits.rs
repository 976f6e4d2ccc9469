//! The rate limiter's cost per request: the same route (`GET
//! /api/containers`, no Docker work) served with every limit on (budgets
//! high enough that nothing is refused, so each request does the full
//! check and gets the headers) and with every limit off. Loopback only,
//! bounded: a fixed number of requests per run.
//!
//! `cargo bench --bench limits` prints a markdown table.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const REQUESTS: usize = 20_000;
const CONCURRENCY: usize = 16;
const ROUNDS: usize = 3;

async fn start(args: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_claude-studio"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--instance",
            &format!("bench-limits-{}", std::process::id()),
        ])
        .args(args)
        .env("RUST_LOG", "claude_studio=warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start claude-studio");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while let Some(line) = lines.next_line().await.unwrap() {
        if let Some(addr) = line.strip_prefix("claude-studio listening on ") {
            return (child, format!("{}/api/containers", addr.trim()));
        }
    }
    panic!("server exited before listening");
}

struct Run {
    rps: f64,
    p50: Duration,
    p99: Duration,
}

async fn load(url: &str) -> Run {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .unwrap();
    // Warm up connections and code paths.
    for _ in 0..200 {
        client.get(url).send().await.unwrap().bytes().await.unwrap();
    }
    let started = Instant::now();
    let per_task = REQUESTS / CONCURRENCY;
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let client = client.clone();
            let url = url.to_string();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per_task);
                for _ in 0..per_task {
                    let t = Instant::now();
                    let r = client.get(&url).send().await.unwrap();
                    assert_eq!(
                        r.status(),
                        200,
                        "a request was refused; raise the bench budgets"
                    );
                    r.bytes().await.unwrap();
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::with_capacity(REQUESTS);
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    all.sort();
    Run {
        rps: all.len() as f64 / elapsed.as_secs_f64(),
        p50: all[all.len() / 2],
        p99: all[all.len() * 99 / 100],
    }
}

/// The limiter alone, in process: what the middleware adds per request,
/// without the noise of a shared machine's HTTP round trips.
fn limiter_ns_per_check() -> f64 {
    use claude_studio::limits::{ClientIp, Limits, RateLimit, RateLimits};
    let high = RateLimit::parse("4000000000/1m").unwrap();
    let l = Limits::new(&RateLimits {
        general: high,
        container: high,
        preview: high,
        ws: high,
        auth: high,
    });
    const N: u32 = 2_000_000;
    let started = Instant::now();
    for i in 0..N {
        let ip = ClientIp(std::net::IpAddr::from(
            (0x0a00_0000u32 + i % 1000).to_be_bytes(),
        ));
        // A lone gateway's check is ready at once: no runtime needed.
        let outcome = futures_util::FutureExt::now_or_never(l.general(ip));
        let info = outcome.expect("ready at once").unwrap().unwrap();
        std::hint::black_box(info.reset_at());
    }
    started.elapsed().as_nanos() as f64 / f64::from(N)
}

fn best(runs: &[Run]) -> &Run {
    runs.iter().max_by(|a, b| a.rps.total_cmp(&b.rps)).unwrap()
}

#[tokio::main]
async fn main() {
    let on = [
        "--rate-limit-general",
        "4000000000/1m",
        "--rate-limit-container",
        "4000000000/1m",
        "--rate-limit-preview",
        "4000000000/1m",
        "--rate-limit-ws",
        "4000000000/1m",
        "--rate-limit-auth",
        "4000000000/1m",
    ];
    let off = [
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
    let (_a, url_on) = start(&on).await;
    let (_b, url_off) = start(&off).await;
    let (mut runs_on, mut runs_off) = (Vec::new(), Vec::new());
    // Interleaved, so drift on a shared machine hits both alike.
    for _ in 0..ROUNDS {
        runs_off.push(load(&url_off).await);
        runs_on.push(load(&url_on).await);
    }
    let (on, off) = (best(&runs_on), best(&runs_off));
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!("GET /api/containers, {REQUESTS} requests, {CONCURRENCY} concurrent, loopback, best of {ROUNDS}\n");
    println!("| limits | requests/s | p50 (µs) | p99 (µs) |");
    println!("|---|---:|---:|---:|");
    println!(
        "| off | {:.0} | {:.0} | {:.0} |",
        off.rps,
        us(off.p50),
        us(off.p99)
    );
    println!(
        "| on | {:.0} | {:.0} | {:.0} |",
        on.rps,
        us(on.p50),
        us(on.p99)
    );
    println!(
        "| on / off | {:.3} | {:.3} | {:.3} |",
        on.rps / off.rps,
        us(on.p50) / us(off.p50),
        us(on.p99) / us(off.p99)
    );
    println!(
        "\nLimiter alone (in process, 1000 client IPs, check + reset time): {:.0} ns per request",
        limiter_ns_per_check()
    );
}
