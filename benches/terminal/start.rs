//! Session start: cold (one at a time), burst (many at once) and warm (from
//! the server's pool), each next to the bare-engine baselines.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures_util::future::try_join_all;
use serde_json::Value;

use crate::client::{err_ctx, Created, Ws};
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
    /// Per round: time until every session had shell output, on a server
    /// without a pool (`--warm-pool 0`).
    pub studio_all: Samples,
    pub engine_all: Samples,
    /// The same on a server in its default configuration (a warm pool).
    pub pooled_all: Samples,
    /// Per round, on the default server: sessions served from the pool,
    /// the slowest of those, and the slowest of the rest (cold).
    pub pooled_warm: Vec<usize>,
    pub pooled_warm_max: Samples,
    pub pooled_cold_max: Samples,
    /// Ready containers in the pool before each round.
    pub pooled_ready: Vec<u64>,
}

/// Whether the engine made `container` for a server's warm pool.
async fn from_pool(engine: &Engine, container: &str) -> Result<bool> {
    let c = engine.docker.inspect_container(container, None).await?;
    Ok(c.config
        .and_then(|c| c.labels)
        .is_some_and(|l| l.contains_key("studio.pool")))
}

/// `n` WebSocket creates at once on `server`; returns each session's
/// (id, container, time to first output) and the time until all had it.
async fn studio_burst(
    server: &Server,
    n: usize,
) -> Result<(Vec<(String, Created)>, Vec<Ws>, Duration)> {
    // Connections are opened first: the burst is of creates, not of handshakes.
    let url = server.ws_url();
    let conns = try_join_all((0..n).map(|_| Ws::connect(&url))).await?;
    tokio::time::sleep(SETTLE * 4).await;
    let t0 = Instant::now();
    let handles: Vec<_> = conns
        .into_iter()
        .map(|mut ws| {
            tokio::spawn(async move {
                let (sid, c) = ws.create().await?;
                anyhow::Ok((sid, c, ws))
            })
        })
        .collect();
    let (mut made, mut conns) = (Vec::new(), Vec::new());
    for h in handles {
        let (sid, c, ws) = err_ctx(h.await)??;
        made.push((sid, c));
        conns.push(ws);
    }
    Ok((made, conns, t0.elapsed()))
}

async fn end_burst(server: &Server, made: Vec<(String, Created)>, conns: Vec<Ws>) -> Result<()> {
    for ws in conns {
        ws.close().await;
    }
    for (sid, _) in made {
        server.delete_session(&sid).await?;
    }
    Ok(())
}

/// Rounds of `n` creates at once, the ways taking turns (each round starts
/// with another): a server without a pool, the bare Engine API, and (when
/// given) a server in its default configuration, whose pool is left to
/// settle before its round.
pub async fn burst(
    cold: &Server,
    pooled: Option<&Server>,
    engine: &Engine,
    n: usize,
    rounds: usize,
) -> Result<Burst> {
    let mut r = Burst::default();
    for round in 0..rounds {
        for k in 0..3 {
            match (round + k) % 3 {
                0 => {
                    let (made, conns, all) = studio_burst(cold, n).await?;
                    r.studio_all.push(all);
                    end_burst(cold, made, conns).await?;
                }
                1 => {
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
                _ => {
                    let Some(server) = pooled else { continue };
                    r.pooled_ready.push(settle_pool(server).await);
                    let (made, conns, all) = studio_burst(server, n).await?;
                    r.pooled_all.push(all);
                    let (mut warm, mut warm_max, mut cold_max) =
                        (0, Duration::ZERO, Duration::ZERO);
                    for (_, c) in &made {
                        if from_pool(engine, &c.container_id).await? {
                            warm += 1;
                            warm_max = warm_max.max(c.first_output);
                        } else {
                            cold_max = cold_max.max(c.first_output);
                        }
                    }
                    r.pooled_warm.push(warm);
                    r.pooled_warm_max.push(warm_max);
                    r.pooled_cold_max.push(cold_max);
                    end_burst(server, made, conns).await?;
                }
            }
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
    /// Each start with the pool settled first (nothing being made).
    pub first_output: Samples,
    pub created: Samples,
    /// Ready containers when each settled start began.
    pub ready: Vec<u64>,
    /// Each start split at the client's marks and the engine's exec events.
    pub split: Vec<WarmSplit>,
    /// Creates back to back, `refill_run` at a time, the pool refilling
    /// behind them (settled before each run only).
    pub refill: Samples,
    pub refill_run: usize,
    /// How many of those were served from the pool.
    pub refill_warm: usize,
}

/// Waits until the pool's ready count has held still for a second (a
/// minute at most) and returns it: nothing is being made or removed.
pub async fn settle_pool(server: &Server) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut last, mut since) = (None, Instant::now());
    while Instant::now() < deadline {
        let n = server
            .get("/api/health")
            .await
            .ok()
            .and_then(|h| pool_ready(&h));
        if n != last {
            (last, since) = (n, Instant::now());
        } else if since.elapsed() >= Duration::from_secs(1) && n.is_some_and(|n| n > 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    last.unwrap_or(0)
}

/// Warm starts on a server in its default configuration: `n` with the
/// pool settled before each, then `n` more in runs of `run` back to back
/// (the refill case).
pub async fn warm(server: &Server, engine: &Engine, n: usize, run: usize) -> Result<Warm> {
    let mut r = Warm {
        refill_run: run,
        ..Default::default()
    };
    let events = Events::start(&engine.docker).await;
    for _ in 0..n {
        r.ready.push(settle_pool(server).await);
        let c = studio_once(server).await.context("warm session start")?;
        r.created.push(c.container_created);
        r.first_output.push(c.first_output);
        if let Some(tl) = events.exec_timeline(&c.container_id).await {
            let reported = c.sent_ns + c.container_created.as_nanos() as i64;
            let output = c.sent_ns + c.first_output.as_nanos() as i64;
            r.split
                .extend(WarmSplit::new(&tl, c.sent_ns, reported, output));
        }
    }
    for _ in 0..n.div_ceil(run.max(1)) {
        settle_pool(server).await;
        let mut made = Vec::new();
        for _ in 0..run {
            let mut ws = Ws::connect(&server.ws_url()).await?;
            let (sid, c) = ws.create().await.context("back-to-back start")?;
            r.refill.push(c.first_output);
            made.push((sid, c, ws));
        }
        for (sid, c, ws) in made {
            r.refill_warm += from_pool(engine, &c.container_id).await? as usize;
            ws.close().await;
            server.delete_session(&sid).await?;
        }
    }
    Ok(r)
}
