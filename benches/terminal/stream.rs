//! Measurements on live sessions: keystroke echo, terminal throughput,
//! re-attach, and the server's memory per idle attached session.

use std::time::{Duration, Instant};

use anyhow::Result;
use futures_util::{StreamExt, TryStreamExt};
use serde_json::json;

use crate::client::{err_ctx, with_marker, Ws, STEP};
use crate::engine::{Engine, RawShell};
use crate::server::{RssSampler, Server};
use crate::stats::Samples;

/// Backspace's echo: `\b` (or a cursor move) erases the typed character.
fn erased(d: &[u8]) -> bool {
    d.contains(&0x08) || d.contains(&0x1b)
}

/// One character in, its echo out; the line is erased again after each
/// sample so the shell's line editor never has to redraw a long line.
pub async fn echo(server: &Server, engine: &Engine, n: usize) -> Result<(Samples, Samples)> {
    let mut ws = Ws::connect(&server.ws_url()).await?;
    let (sid, _) = ws.create().await?;
    let (mut sh, _) = engine.start_shell().await?;
    let mut studio = Samples::default();
    let mut raw = Samples::default();
    let warmup = 20;
    for i in 0..n + warmup {
        let deadline = Instant::now() + STEP;
        let s = studio_echo(&mut ws, &sid).await?;

        let t = Instant::now();
        sh.write(b"x").await?;
        sh.read_until(deadline, |c| c.contains(&b'x')).await?;
        let r = t.elapsed();
        sh.write(b"\x7f").await?;
        sh.read_until(deadline, erased).await?;
        if i >= warmup {
            studio.push(s);
            raw.push(r);
        }
    }
    ws.close().await;
    server.delete_session(&sid).await?;
    engine.remove(&sh.container).await?;
    Ok((studio, raw))
}

/// One keystroke's echo through the server (the time to it), then the
/// line erased again. Shared with the fleet bench.
pub async fn studio_echo(ws: &mut Ws, sid: &str) -> Result<Duration> {
    let deadline = Instant::now() + STEP;
    let t = Instant::now();
    ws.input(sid, "x").await?;
    ws.output_containing(sid, "x", deadline).await?;
    let took = t.elapsed();
    ws.input(sid, "\x7f").await?;
    ws.until(deadline, |m| {
        let ours = m.kind == "output" && m.session_id.as_deref() == Some(sid);
        (ours && m.data.as_deref().is_some_and(|d| erased(d.as_bytes()))).then_some(())
    })
    .await?;
    Ok(took)
}

#[derive(Debug, Default)]
pub struct Throughput {
    /// MB/s (10^6 bytes), median over rounds.
    pub one_studio: f64,
    /// Bollard's attached exec stream.
    pub one_raw: f64,
    /// `docker exec -t`, from its first output byte.
    pub one_cli: f64,
    /// Aggregate MB/s over all clients, median over rounds.
    pub many_studio: f64,
    pub many_raw: f64,
    pub many_cli: f64,
    pub clients: usize,
    pub rss_before_kib: u64,
    pub rss_peak_one_kib: u64,
    pub rss_peak_many_kib: u64,
    pub hwm_kib: u64,
}

/// Makes /tmp/mb (1 MB of `a`, no newline) in a shell, untimed: the flood
/// then only `cat`s it, so the producer is never the bottleneck.
pub const MB_FILE: &str = "head -c 1000000 /dev/zero | tr '\\000' a > /tmp/mb";

/// Prints `bytes` (a multiple of 1 MB) of `a`.
fn flood(bytes: u64, n: u32) -> (String, String) {
    let times = bytes / 1_000_000;
    with_marker(
        &format!("i=0; while [ $i -lt {times} ]; do cat /tmp/mb; i=$((i+1)); done"),
        n,
    )
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

pub async fn studio_flood(
    mut ws: Ws,
    sid: String,
    bytes: u64,
    n: u32,
) -> Result<(Ws, String, Duration)> {
    let (cmd, marker) = flood(bytes, n);
    let t = Instant::now();
    ws.input(&sid, &cmd).await?;
    let got = ws
        .read_to_marker(&sid, &marker, Instant::now() + Duration::from_secs(600))
        .await?;
    check_bytes(got, bytes, "studio")?;
    Ok((ws, sid, t.elapsed()))
}

async fn raw_flood(mut sh: RawShell, bytes: u64, n: u32) -> Result<(RawShell, Duration)> {
    let (cmd, marker) = flood(bytes, n);
    let t = Instant::now();
    sh.write(cmd.as_bytes()).await?;
    let got = sh
        .read_to_marker(&marker, Instant::now() + Duration::from_secs(600))
        .await?;
    check_bytes(got, bytes, "raw exec")?;
    Ok((sh, t.elapsed()))
}

/// The flood through the docker CLI (`docker exec -t`, no stdin), in the
/// container of a raw shell (which made /tmp/mb). Timed from the first
/// output byte: the CLI's own start and its exec create and start do not
/// count against the baseline.
async fn cli_flood(container: String, bytes: u64, n: u32) -> Result<Duration> {
    use tokio::io::AsyncReadExt;
    let times = bytes / 1_000_000;
    let marker = format!("__E{}E__", n + 1);
    let script = format!(
        "i=0; while [ $i -lt {times} ]; do cat /tmp/mb; i=$((i+1)); done; echo __E$(({n}+1))E__"
    );
    let mut child = tokio::process::Command::new("docker")
        .args(["exec", "-t", &container, "sh", "-c", &script])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let mut out = child.stdout.take().expect("piped");
    let mut buf = vec![0u8; 64 * 1024];
    let mut scan = crate::client::MarkerScan::new(&marker);
    let (mut got, mut first) = (0u64, None);
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let k = tokio::time::timeout(left, out.read(&mut buf))
            .await
            .map_err(|_| anyhow::anyhow!("timed out reading docker exec -t"))??;
        if k == 0 {
            anyhow::bail!("docker exec -t ended before its marker");
        }
        let t = *first.get_or_insert_with(Instant::now);
        got += k as u64;
        if scan.feed(&buf[..k]) {
            let took = t.elapsed();
            let _ = child.wait().await;
            check_bytes(got, bytes, "docker exec -t")?;
            return Ok(took);
        }
    }
}

/// A flood that printed an error instead of its bytes must not pass for a fast one.
fn check_bytes(got: u64, want: u64, what: &str) -> Result<()> {
    if got < want {
        anyhow::bail!("{what} flood delivered {got} bytes, expected at least {want}");
    }
    Ok(())
}

pub fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

pub async fn throughput(
    server: &Server,
    engine: &Engine,
    bytes: u64,
    rounds: usize,
    clients: usize,
) -> Result<Throughput> {
    let mut r = Throughput {
        clients,
        ..Default::default()
    };
    let mut sessions = Vec::new();
    let mut shells = Vec::new();
    for _ in 0..clients {
        let mut ws = Ws::connect(&server.ws_url()).await?;
        let (sid, _) = ws.create().await?;
        let (cmd, marker) = with_marker(MB_FILE, 3);
        ws.input(&sid, &cmd).await?;
        ws.read_to_marker(&sid, &marker, Instant::now() + STEP)
            .await?;
        sessions.push((ws, sid));
        let mut sh = engine.start_shell().await?.0;
        sh.write(cmd.as_bytes()).await?;
        sh.read_to_marker(&marker, Instant::now() + STEP).await?;
        shells.push(sh);
    }
    r.rss_before_kib = server.memory_kib()?.0;

    let containers: Vec<String> = shells.iter().map(|sh| sh.container.clone()).collect();
    // The three ways take turns, and each round starts with another, so
    // that drift in the machine's load hits all three alike.
    let (mut one_s, mut one_r, mut one_c) = (Vec::new(), Vec::new(), Vec::new());
    let sampler = RssSampler::start(server.pid);
    for round in 0..rounds as u32 {
        for k in 0..3 {
            match (round as usize + k) % 3 {
                0 => {
                    let (ws, sid) = sessions.remove(0);
                    let (ws, sid, d) = studio_flood(ws, sid, bytes, round).await?;
                    sessions.insert(0, (ws, sid));
                    one_s.push(mbps(bytes, d));
                }
                1 => {
                    let (sh, d) = raw_flood(shells.remove(0), bytes, round).await?;
                    shells.insert(0, sh);
                    one_r.push(mbps(bytes, d));
                }
                _ => {
                    let d = cli_flood(containers[0].clone(), bytes, round).await?;
                    one_c.push(mbps(bytes, d));
                }
            }
        }
    }
    r.rss_peak_one_kib = sampler.finish().await;
    r.one_studio = median(one_s);
    r.one_raw = median(one_r);
    r.one_cli = median(one_c);

    let total = bytes * clients as u64;
    let (mut many_s, mut many_r, mut many_c) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds as u32 {
        let n = 100 + round;
        for k in 0..3 {
            match (round as usize + k) % 3 {
                0 => {
                    let sampler = RssSampler::start(server.pid);
                    let t = Instant::now();
                    let hs: Vec<_> = sessions
                        .drain(..)
                        .map(|(ws, sid)| tokio::spawn(studio_flood(ws, sid, bytes, n)))
                        .collect();
                    for h in hs {
                        let (ws, sid, _) = err_ctx(h.await)??;
                        sessions.push((ws, sid));
                    }
                    many_s.push(mbps(total, t.elapsed()));
                    r.rss_peak_many_kib = r.rss_peak_many_kib.max(sampler.finish().await);
                }
                1 => {
                    let t = Instant::now();
                    let hs: Vec<_> = shells
                        .drain(..)
                        .map(|sh| tokio::spawn(raw_flood(sh, bytes, n)))
                        .collect();
                    for h in hs {
                        shells.push(err_ctx(h.await)??.0);
                    }
                    many_r.push(mbps(total, t.elapsed()));
                }
                _ => {
                    // Each from its own first byte to the last one's end.
                    let hs: Vec<_> = containers
                        .iter()
                        .map(|c| tokio::spawn(cli_flood(c.clone(), bytes, n)))
                        .collect();
                    let mut longest = Duration::ZERO;
                    for h in hs {
                        longest = longest.max(err_ctx(h.await)??);
                    }
                    many_c.push(mbps(total, longest));
                }
            }
        }
    }
    r.many_studio = median(many_s);
    r.many_raw = median(many_r);
    r.many_cli = median(many_c);
    r.hwm_kib = server.memory_kib()?.1;

    for (ws, sid) in sessions {
        ws.close().await;
        server.delete_session(&sid).await?;
    }
    for sh in shells {
        engine.remove(&sh.container).await?;
    }
    Ok(r)
}

/// `attach` on a fresh connection until the replay arrives; next to a
/// `ping`→`pong` round trip on another fresh connection (the floor of any
/// request on this server).
pub async fn reattach(server: &Server, n: usize) -> Result<(Samples, Samples)> {
    let mut owner = Ws::connect(&server.ws_url()).await?;
    let (sid, _) = owner.create().await?;
    // Fill the replay buffer (64 KiB) so the replay is as large as it gets.
    let (cmd, marker) = with_marker("head -c 70000 /dev/zero | tr '\\000' b", 7);
    owner.input(&sid, &cmd).await?;
    owner
        .read_to_marker(&sid, &marker, Instant::now() + STEP)
        .await?;
    let keep = owner.drain();
    let (mut attach, mut ping) = (Samples::default(), Samples::default());
    for _ in 0..n {
        let mut ws = Ws::connect(&server.ws_url()).await?;
        let t = Instant::now();
        ws.send(json!({"type": "ping"})).await?;
        ws.until(Instant::now() + STEP, |m| (m.kind == "pong").then_some(()))
            .await?;
        ping.push(t.elapsed());
        ws.close().await;

        let mut ws = Ws::connect(&server.ws_url()).await?;
        let t = Instant::now();
        ws.send(json!({"type": "attach", "sessionId": sid})).await?;
        ws.until(Instant::now() + STEP, |m| {
            (m.kind == "output"
                && m.replay == Some(true)
                && m.session_id.as_deref() == Some(sid.as_str()))
            .then_some(())
        })
        .await?;
        attach.push(t.elapsed());
        ws.close().await;
    }
    keep.abort();
    server.delete_session(&sid).await?;
    Ok((attach, ping))
}

#[derive(Debug, Default)]
pub struct Footprint {
    pub sessions: usize,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub setup: Duration,
}

impl Footprint {
    pub fn per_session_kib(&self) -> f64 {
        (self.rss_after_kib as f64 - self.rss_before_kib as f64) / self.sessions.max(1) as f64
    }
}

/// Server RSS with `n` idle sessions, each with its own attached connection.
/// The caller removes the containers (by the server's instance label).
pub async fn footprint(server: &Server, n: usize, concurrency: usize) -> Result<Footprint> {
    let mut ws = Ws::connect(&server.ws_url()).await?;
    let (sid, _) = ws.create().await?;
    ws.close().await;
    server.delete_session(&sid).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before_kib = server.memory_kib()?.0;

    let t = Instant::now();
    let url = server.ws_url();
    let conns: Vec<Ws> = futures_util::stream::iter(0..n)
        .map(|_| {
            let url = url.clone();
            async move {
                let mut ws = Ws::connect(&url).await?;
                ws.create().await?;
                anyhow::Ok(ws)
            }
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    let setup = t.elapsed();
    let drains: Vec<_> = conns.into_iter().map(Ws::drain).collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after_kib = server.memory_kib()?.0;
    for d in drains {
        d.abort();
    }
    Ok(Footprint {
        sessions: n,
        rss_before_kib,
        rss_after_kib,
        setup,
    })
}
