//! Session start: cold (one at a time), burst (many at once) and warm (from
//! the server's pool), each next to the bare-engine baselines.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures_util::future::try_join_all;
use serde_json::Value;

use crate::client::{err_ctx, Ws};
use crate::engine::Engine;
use crate::events::{Events, Split, WarmSplit};
use crate::server::Server;
use crate::stats::Samples;

#[derive(Debug, Default)]
pub struct ColdStart {
    pub studio_created: Samples,
    pub studio_first_output: Samples,
    pub engine_created: Samples,
    pub engine_first_output: Samples,
    pub docker_run: Samples,
    pub inspect: Samples,
    /// Engine-event splits of each start (see `events`).
    pub studio_split: Vec<Split>,
    pub engine_split: Vec<Split>,
    pub docker_run_split: Vec<Split>,
}

/// Median of each phase over `splits`.
pub fn split_p50(splits: &[Split]) -> Split {
    let p = |f: fn(&Split) -> Duration| splits.iter().map(f).collect::<Samples>().p50();
    Split {
        to_create: p(|x| x.to_create),
        create_to_start: p(|x| x.create_to_start),
        start_to_reported: p(|x| x.start_to_reported),
        reported_to_exec_create: p(|x| x.reported_to_exec_create),
        exec_create_to_start: p(|x| x.exec_create_to_start),
        exec_start_to_output: p(|x| x.exec_start_to_output),
    }
}

/// One WebSocket session start, removed afterwards.
async fn studio_once(server: &Server) -> Result<crate::client::Created> {
    let mut ws = Ws::connect(&server.ws_url()).await?;
    let (sid, created) = ws.create().await?;
    ws.close().await;
    server.delete_session(&sid).await?;
    Ok(created)
}

/// Pause before each start: the engine finishes tearing down the previous
/// sample's container in the background after `rm -f` answers, and that work
/// would otherwise land on whichever way happens to come next.
const SETTLE: Duration = Duration::from_millis(300);
/// Every order of the three ways, cycled, so each follows each equally often.
const ORDERS: [[usize; 3]; 6] = [
    [0, 1, 2],
    [0, 2, 1],
    [1, 0, 2],
    [1, 2, 0],
    [2, 0, 1],
    [2, 1, 0],
];

/// `n` samples of each of the three ways, interleaved (in every order) so
/// that drift in the machine's load hits all three alike.
pub async fn cold(server: &Server, engine: &Engine, n: usize) -> Result<ColdStart> {
    let mut r = ColdStart::default();
    let events = Events::start(&engine.docker).await;
    // Warm-up: first use of each path pays one-off costs (connections, caches).
    studio_once(server).await?;
    let (sh, _) = engine.start_shell().await?;
    engine.remove(&sh.container).await?;
    for i in 0..n {
        for way in ORDERS[i % ORDERS.len()] {
            tokio::time::sleep(SETTLE).await;
            match way {
                0 => {
                    let c = studio_once(server).await.context("studio session start")?;
                    r.studio_created.push(c.container_created);
                    r.studio_first_output.push(c.first_output);
                    let reported = c.sent_ns + c.container_created.as_nanos() as i64;
                    let output = c.sent_ns + c.first_output.as_nanos() as i64;
                    if let Some(tl) = events.timeline(&c.container_id, true).await {
                        r.studio_split
                            .extend(Split::new(&tl, c.sent_ns, reported, output));
                    }
                }
                1 => {
                    r.inspect.push(engine.inspect_image().await?);
                    let (sh, p) = engine.start_shell().await.context("bare engine start")?;
                    if let Some(tl) = events.timeline(&sh.container, true).await {
                        let reported = p.sent_ns + p.created().as_nanos() as i64;
                        r.engine_split.extend(Split::new(
                            &tl,
                            p.sent_ns,
                            reported,
                            p.sent_ns + p.total().as_nanos() as i64,
                        ));
                    }
                    engine.remove(&sh.container).await?;
                    r.engine_created.push(p.created());
                    r.engine_first_output.push(p.total());
                }
                _ => {
                    let sent = crate::events::now_nanos();
                    let (id, t) = engine.docker_run().await?;
                    if let Some(tl) = events.timeline(&id, false).await {
                        r.docker_run_split.extend(Split::container(
                            &tl,
                            sent,
                            sent + t.as_nanos() as i64,
                        ));
                    }
                    engine.remove(&id).await?;
                    r.docker_run.push(t);
                }
            }
        }
    }
    Ok(r)
}

#[derive(Debug, Default)]
pub struct Burst {
    /// Per round: time until every session had shell output.
    pub studio_all: Samples,
    pub engine_all: Samples,
}

pub async fn burst(server: &Server, engine: &Engine, n: usize, rounds: usize) -> Result<Burst> {
    let mut r = Burst::default();
    for _ in 0..rounds {
        // Connections are opened first: the burst is of creates, not of handshakes.
        let url = server.ws_url();
        let conns = try_join_all((0..n).map(|_| Ws::connect(&url))).await?;
        tokio::time::sleep(SETTLE * 4).await;
        let t0 = Instant::now();
        let handles: Vec<_> = conns
            .into_iter()
            .map(|mut ws| {
                tokio::spawn(async move {
                    let (sid, _) = ws.create().await?;
                    anyhow::Ok((sid, t0.elapsed(), ws))
                })
            })
            .collect();
        let mut done = Vec::new();
        for h in handles {
            done.push(err_ctx(h.await)??);
        }
        r.studio_all
            .push(done.iter().map(|d| d.1).max().unwrap_or_default());
        for (sid, _, ws) in done {
            ws.close().await;
            server.delete_session(&sid).await?;
        }

        tokio::time::sleep(SETTLE * 4).await;
        let t0 = Instant::now();
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let e = engine.clone();
                tokio::spawn(async move {
                    let (sh, _) = e.start_shell().await?;
                    anyhow::Ok((sh, t0.elapsed()))
                })
            })
            .collect();
        let mut done = Vec::new();
        for h in handles {
            done.push(err_ctx(h.await)??);
        }
        r.engine_all
            .push(done.iter().map(|d| d.1).max().unwrap_or_default());
        for (sh, _) in done {
            engine.remove(&sh.container).await?;
        }
    }
    Ok(r)
}

/// Ready containers in the pool as `/api/health` reports them: a number, or
/// an object with a count in one of a few plausible fields.
pub fn pool_ready(health: &Value) -> Option<u64> {
    let w = health.get("warmPool")?;
    if let Some(n) = w.as_u64() {
        return Some(n);
    }
    for key in ["ready", "available", "idle", "warm", "size", "count"] {
        if let Some(n) = w.get(key).and_then(Value::as_u64) {
            return Some(n);
        }
    }
    // Per image: sum the counts.
    w.as_object().map(|m| {
        m.values()
            .filter_map(|v| v.as_u64().or_else(|| pool_ready_inner(v)))
            .sum()
    })
}

fn pool_ready_inner(v: &Value) -> Option<u64> {
    ["ready", "available", "idle", "warm", "size", "count"]
        .iter()
        .find_map(|k| v.get(k).and_then(Value::as_u64))
}

/// Waits (bounded) for the pool to hold `target` containers; returns whether it did.
pub async fn wait_pool(server: &Server, target: u64, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(h) = server.get("/api/health").await {
            if pool_ready(&h).is_some_and(|n| n >= target) {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// The floor of a pool that keeps started containers but no shells: exec a
/// TTY shell into an idle running container until its first output. The
/// second set does the same while another container is being started next to
/// it, as a pool's refill does right after a hand-out.
pub async fn exec_into_running(engine: &Engine, n: usize) -> Result<(Samples, Samples)> {
    let (mut first, _) = engine.start_shell().await?;
    let id = first.container.clone();
    first.write(b"exit\n").await?;
    drop(first);
    let (mut alone, mut beside) = (Samples::default(), Samples::default());
    for i in 0..2 * n {
        tokio::time::sleep(SETTLE).await;
        let refill = (i % 2 == 1).then(|| {
            let e = engine.clone();
            tokio::spawn(async move { e.start_shell().await.map(|(sh, _)| sh.container) })
        });
        let mut p = crate::engine::Phases::default();
        let t = Instant::now();
        let mut sh = engine.exec_shell(&id, &mut p).await?;
        let took = t.elapsed();
        sh.write(b"exit\n").await?;
        match refill {
            None => alone.push(took),
            Some(h) => {
                beside.push(took);
                engine.remove(&err_ctx(h.await)??).await?;
            }
        }
    }
    engine.remove(&id).await?;
    Ok((alone, beside))
}

#[derive(Debug, Default)]
pub struct Warm {
    pub first_output: Samples,
    pub created: Samples,
    /// Samples taken before the pool reported itself full again.
    pub unrefilled: usize,
    /// Each start split at the client's marks and the engine's exec events.
    pub split: Vec<WarmSplit>,
}

pub async fn warm(server: &Server, engine: &Engine, pool: u64, n: usize) -> Result<Warm> {
    let mut r = Warm::default();
    let events = Events::start(&engine.docker).await;
    wait_pool(server, pool, Duration::from_secs(60)).await;
    for _ in 0..n {
        let c = studio_once(server).await.context("warm session start")?;
        r.created.push(c.container_created);
        r.first_output.push(c.first_output);
        if let Some(tl) = events.exec_timeline(&c.container_id).await {
            let reported = c.sent_ns + c.container_created.as_nanos() as i64;
            let output = c.sent_ns + c.first_output.as_nanos() as i64;
            r.split
                .extend(WarmSplit::new(&tl, c.sent_ns, reported, output));
        }
        if !wait_pool(server, pool, Duration::from_secs(20)).await {
            r.unrefilled += 1;
        }
    }
    Ok(r)
}
