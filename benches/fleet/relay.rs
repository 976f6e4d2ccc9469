//! What relaying costs: echo and throughput through the holder and through
//! another gateway, in turns.

use std::time::Instant;

use anyhow::Result;
use serde_json::json;

use crate::client::{with_marker, Ws, STEP};
use crate::server::Server;
use crate::setup::Fleet;
use crate::stats::Samples;
use crate::stream::{mbps, studio_echo, studio_flood, MB_FILE};
use crate::{progress, Opts};

/// Echo samples per path per round (the paths take turns between rounds).
const ECHO_ROUND: usize = 50;
const ECHO_WARMUP: usize = 20;

/// `attach` until `attached` and the replay; returns the replay's text.
pub async fn attach(ws: &mut Ws, sid: &str) -> Result<String> {
    ws.send(json!({"type": "attach", "sessionId": sid})).await?;
    let deadline = Instant::now() + STEP;
    ws.until(deadline, |m| (m.kind == "attached").then_some(()))
        .await?;
    ws.until(deadline, |m| {
        (m.kind == "output" && m.replay == Some(true))
            .then(|| m.data.as_deref().unwrap_or_default().to_string())
    })
    .await
}

/// One path to the sessions: a client and its session.
pub struct Path {
    ws: Option<Ws>,
    sid: String,
    pub echo: Samples,
    pub mbps: Vec<f64>,
    /// Redis commands served during this path's echo rounds (the fleet's
    /// own renewals included), and the `input` messages sent in them.
    pub redis_commands: u64,
    pub inputs: u64,
}

impl Path {
    async fn echo(&mut self, n: usize, keep: bool) -> Result<()> {
        let ws = self.ws.as_mut().expect("client");
        for _ in 0..n {
            let d = studio_echo(ws, &self.sid).await?;
            if keep {
                self.echo.push(d);
            }
        }
        Ok(())
    }

    async fn flood(&mut self, bytes: u64, n: u32) -> Result<()> {
        let ws = self.ws.take().expect("client");
        let (ws, _, d) = studio_flood(ws, self.sid.clone(), bytes, n).await?;
        self.ws = Some(ws);
        self.mbps.push(mbps(bytes, d));
        Ok(())
    }
}

/// Echo and throughput through A (the holder) and through B, in turns.
pub async fn relay(fleet: &Fleet<'_>, a: &Server, b: &Server, o: &Opts) -> Result<(Path, Path)> {
    let mut ws = Ws::connect(&a.ws_url()).await?;
    let (s1, _) = ws.create().await?;
    let mut direct = Path {
        ws: Some(ws),
        sid: s1,
        echo: Samples::default(),
        mbps: Vec::new(),
        redis_commands: 0,
        inputs: 0,
    };
    let mut maker = Ws::connect(&a.ws_url()).await?;
    let (s2, _) = maker.create().await?;
    maker.close().await;
    let mut ws = Ws::connect(&b.ws_url()).await?;
    attach(&mut ws, &s2).await?;
    let mut relayed = Path {
        ws: Some(ws),
        sid: s2,
        echo: Samples::default(),
        mbps: Vec::new(),
        redis_commands: 0,
        inputs: 0,
    };
    for p in [&direct, &relayed] {
        fleet
            .expect_holder(&p.sid, a, "before the relay runs")
            .await?;
    }
    for p in [&mut direct, &mut relayed] {
        let (cmd, marker) = with_marker(MB_FILE, 3);
        let ws = p.ws.as_mut().expect("client");
        ws.input(&p.sid, &cmd).await?;
        ws.read_to_marker(&p.sid, &marker, Instant::now() + STEP)
            .await?;
        p.echo(ECHO_WARMUP, false).await?;
    }

    let rounds = o.echo_samples.div_ceil(ECHO_ROUND);
    progress(&format!(
        "echo: {rounds} rounds of {ECHO_ROUND} per path, A and B in turns"
    ));
    for round in 0..rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for k in order {
            let p = if k == 0 { &mut direct } else { &mut relayed };
            let before = fleet.redis_commands().await?;
            p.echo(ECHO_ROUND, true).await?;
            p.redis_commands += fleet.redis_commands().await? - before;
            // Each sample is two: the key and the backspace.
            p.inputs += 2 * ECHO_ROUND as u64;
        }
    }
    progress(&format!(
        "throughput: {} rounds of {} MB per path, A and B in turns",
        o.flood_rounds,
        o.flood_bytes / 1_000_000
    ));
    for round in 0..o.flood_rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for k in order {
            let p = if k == 0 { &mut direct } else { &mut relayed };
            p.flood(o.flood_bytes, 10 + round as u32).await?;
        }
    }
    for p in [&direct, &relayed] {
        fleet
            .expect_holder(&p.sid, a, "after the relay runs")
            .await?;
    }
    for p in [&mut direct, &mut relayed] {
        if let Some(ws) = p.ws.take() {
            ws.close().await;
        }
        a.delete_session(&p.sid).await?;
    }
    Ok((direct, relayed))
}
