//! How long a failover takes: the holder killed under a client attached
//! through another gateway, timed until a fresh attach there works.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::client::{with_marker, MarkerScan, Ws, STEP};
use crate::relay::attach;
use crate::server::Server;
use crate::setup::Fleet;
use crate::stats::ms;
use crate::stream::studio_echo;

/// One failover, timed from the kill.
pub struct Failover {
    pub holder: String,
    /// When the client attached through B got its `reconnect`, with the
    /// reason and delay it gave.
    pub reconnect: Option<(Duration, String)>,
    pub attached: Duration,
    pub replay: Duration,
    /// Whether the replay had the output from before the kill.
    pub replay_kept: bool,
    pub echo: Duration,
    /// `error` answers on the way, with when they came.
    pub errors: Vec<String>,
    /// The instance's containers once B holds the session (1 expected).
    pub containers: usize,
}

/// Sends `msg` and reads until `done`; an `error` answer is noted and the
/// message sent again a moment later (what a client would do).
async fn insist(
    ws: &mut Ws,
    msg: &Value,
    t0: Instant,
    errors: &mut Vec<String>,
    mut done: impl FnMut(&Value) -> bool,
) -> Result<()> {
    let deadline = t0 + Duration::from_secs(60);
    ws.send(msg.clone()).await?;
    loop {
        let t = ws.text(deadline).await?;
        let v: Value = serde_json::from_str(&t)?;
        if v["type"] == "error" {
            errors.push(format!(
                "{} after the kill, to `{}`: {}",
                ms(t0.elapsed()),
                msg["type"].as_str().unwrap_or("?"),
                v["message"].as_str().unwrap_or(t.as_str())
            ));
            tokio::time::sleep(Duration::from_millis(250)).await;
            ws.send(msg.clone()).await?;
        } else if done(&v) {
            return Ok(());
        }
    }
}

/// Waits for the `reconnect` of a client whose gateway's link broke.
async fn reconnected(mut ws: Ws, t0: Instant) -> Option<(Duration, String)> {
    let deadline = t0 + Duration::from_secs(20);
    loop {
        let t = ws.text(deadline).await.ok()?;
        let v: Value = serde_json::from_str(&t).ok()?;
        if v["type"] == "reconnect" {
            let why = format!("{} (delay {})", v["reason"], v["delay"]);
            return Some((t0.elapsed(), why));
        }
    }
}

pub async fn failover(
    fleet: &Fleet<'_>,
    holder: Server,
    name: &str,
    b: &Server,
    k: u32,
) -> Result<Failover> {
    let mut ws = Ws::connect(&holder.ws_url()).await?;
    let (sid, _) = ws.create().await?;
    let (cmd, before) = with_marker("echo before the kill", 40 + k);
    ws.input(&sid, &cmd).await?;
    ws.read_to_marker(&sid, &before, Instant::now() + STEP)
        .await?;
    ws.close().await;
    let mut x = Ws::connect(&b.ws_url()).await?;
    attach(&mut x, &sid).await?;
    studio_echo(&mut x, &sid).await?;
    fleet
        .expect_holder(&sid, &holder, "before the kill")
        .await?;
    // The holder mirrors the replay's tail to Redis every 2 s.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let t0 = Instant::now();
    holder.stop().await;
    let old = tokio::spawn(reconnected(x, t0));
    let mut y = Ws::connect(&b.ws_url()).await?;
    let mut errors = Vec::new();
    let (mut attached, mut replay, mut text) = (None, Duration::ZERO, String::new());
    let msg = json!({"type": "attach", "sessionId": sid});
    insist(&mut y, &msg, t0, &mut errors, |v| {
        if v["type"] == "attached" {
            attached = Some(t0.elapsed());
        }
        let done = v["type"] == "output" && v["replay"] == true;
        if done {
            replay = t0.elapsed();
            text = v["data"].as_str().unwrap_or_default().to_string();
        }
        done
    })
    .await?;
    let (cmd, after) = with_marker("echo after the kill", 60 + k);
    let msg = json!({"type": "input", "sessionId": sid, "data": cmd});
    let mut scan = MarkerScan::new(&after);
    insist(&mut y, &msg, t0, &mut errors, |v| {
        v["type"] == "output" && scan.feed(v["data"].as_str().unwrap_or_default().as_bytes())
    })
    .await?;
    let echo = t0.elapsed();
    fleet.expect_holder(&sid, b, "after the failover").await?;
    let containers = fleet.containers().await?;
    y.close().await;
    b.delete_session(&sid).await?;
    Ok(Failover {
        holder: name.to_string(),
        reconnect: old.await.ok().flatten(),
        attached: attached.context("no `attached` before the replay")?,
        replay,
        replay_kept: text.contains(&before),
        echo,
        errors,
        containers,
    })
}
