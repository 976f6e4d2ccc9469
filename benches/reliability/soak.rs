//! Soak: mixed load for a given time, sampled over time.
//!
//! - `sessions` terminals, each typing a line about once a second (its echo
//!   timed), streaming a burst of output every 15 lines, and now and then
//!   dropping its connection without a goodbye and re-attaching;
//! - five of the sessions run a dev server (`preview-upstream`): preview
//!   HTTP requests (a small body and a 20 KB injected page) and a preview
//!   WebSocket echo, reconnected every 30 s;
//! - a session created, typed into and removed every 3 s;
//!
//! Every sample: the server's RSS, open files and live tasks (`/metrics`),
//! sessions, echo p50/p99 since the last sample, errors so far. At the end
//! every session is removed and the containers left are counted.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{below, ms, pct, Run, Studio, Term};

const DEV_PORT: u16 = 8080;
const DEV_SERVERS: usize = 5;

#[derive(Default)]
struct Load {
    stop: AtomicBool,
    echoes: Mutex<Vec<Duration>>,
    errors: AtomicU64,
    reattaches: AtomicU64,
    preview_requests: AtomicU64,
    preview_ws_messages: AtomicU64,
    churned: AtomicU64,
    streamed_bytes: AtomicU64,
    first_errors: Mutex<Vec<String>>,
}

impl Load {
    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut f = self.first_errors.lock().unwrap();
        if f.len() < 20 {
            eprintln!("soak: error: {what}");
            f.push(what);
        }
    }
    fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed)
    }
}

async fn pause(load: &Load, d: Duration) {
    let end = Instant::now() + d;
    while load.running() && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100).min(end - Instant::now())).await;
    }
}

/// One person at a terminal.
async fn typist(studio: Arc<Studio>, load: Arc<Load>, mut term: Term) {
    let sid = term.session.clone();
    let mut n = 0u64;
    while load.running() {
        pause(&load, Duration::from_millis(500 + below(1000) as u64)).await;
        if !load.running() {
            break;
        }
        n += 1;
        if n.is_multiple_of(15) {
            match term.run("seq 1 3000; ", Duration::from_secs(20)).await {
                Ok(_) => {
                    load.streamed_bytes.fetch_add(14_893, Ordering::Relaxed);
                }
                Err(e) => load.error(format!("{sid}: stream: {e:#}")),
            }
            continue;
        }
        match term.run("", Duration::from_secs(10)).await {
            Ok(d) => load.echoes.lock().unwrap().push(d),
            Err(e) => load.error(format!("{sid}: echo: {e:#}")),
        }
        // About once in 90 lines: vanish and come back.
        if below(90) == 0 {
            term.drop_abruptly();
            term = loop {
                match Term::attach(studio.addr, None, &sid).await {
                    Ok(t) => break t,
                    Err(e) => {
                        load.error(format!("{sid}: re-attach: {e:#}"));
                        pause(&load, Duration::from_secs(1)).await;
                        if !load.running() {
                            return;
                        }
                    }
                }
            };
            load.reattaches.fetch_add(1, Ordering::Relaxed);
        }
    }
    term.close().await;
}

async fn preview_http(studio: Arc<Studio>, load: Arc<Load>, sids: Vec<String>) {
    let mut i = 0usize;
    while load.running() {
        i += 1;
        let sid = &sids[i % sids.len()];
        let path = if i.is_multiple_of(4) {
            "html20k"
        } else {
            "small"
        };
        match studio
            .http
            .get(studio.url(&format!("/preview/{sid}/{path}")))
            .send()
            .await
        {
            Ok(r) if r.status() == 200 => match r.bytes().await {
                Ok(_) => {
                    load.preview_requests.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => load.error(format!("preview body: {e}")),
            },
            Ok(r) => load.error(format!("preview {path}: {}", r.status())),
            Err(e) => load.error(format!("preview {path}: {e}")),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn preview_ws(studio: Arc<Studio>, load: Arc<Load>, sid: String) {
    while load.running() {
        let url = format!("ws://{}/preview/{sid}/ws", studio.addr);
        let mut ws = match tokio_tungstenite::connect_async(url).await {
            Ok((ws, _)) => ws,
            Err(e) => {
                load.error(format!("preview websocket: {e}"));
                pause(&load, Duration::from_secs(1)).await;
                continue;
            }
        };
        let until = Instant::now() + Duration::from_secs(30);
        let mut k = 0u64;
        while load.running() && Instant::now() < until {
            k += 1;
            let msg = format!("echo {k}");
            let back = async {
                ws.send(Message::Text(msg.clone().into())).await?;
                loop {
                    match ws.next().await {
                        Some(Ok(Message::Text(t))) => return anyhow::Ok(t.to_string()),
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => bail!("{e}"),
                        None => bail!("closed"),
                    }
                }
            };
            match tokio::time::timeout(Duration::from_secs(10), back).await {
                Ok(Ok(t)) if t == msg => {
                    load.preview_ws_messages.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Ok(t)) => load.error(format!("preview websocket echoed {t:?} for {msg:?}")),
                Ok(Err(e)) => {
                    load.error(format!("preview websocket: {e:#}"));
                    break;
                }
                Err(_) => {
                    load.error("preview websocket: no echo in 10 s".into());
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = ws.close(None).await;
    }
}

async fn churn(studio: Arc<Studio>, load: Arc<Load>) {
    while load.running() {
        pause(&load, Duration::from_secs(3)).await;
        if !load.running() {
            break;
        }
        let sid = match studio
            .call(Method::POST, "/api/containers", None, Some(json!({})))
            .await
        {
            Ok((200, v)) => v["sessionId"].as_str().unwrap_or_default().to_string(),
            Ok((s, v)) => {
                load.error(format!("churn create: {s} {v}"));
                continue;
            }
            Err(e) => {
                load.error(format!("churn create: {e:#}"));
                continue;
            }
        };
        match Term::attach(studio.addr, None, &sid).await {
            Ok(mut t) => {
                if let Err(e) = t.run("", Duration::from_secs(10)).await {
                    load.error(format!("churn echo: {e:#}"));
                }
                t.close().await;
            }
            Err(e) => load.error(format!("churn attach: {e:#}")),
        }
        match studio
            .call(
                Method::DELETE,
                &format!("/api/containers/{sid}"),
                None,
                None,
            )
            .await
        {
            Ok((200, _)) => {
                load.churned.fetch_add(1, Ordering::Relaxed);
            }
            other => load.error(format!("churn delete: {other:?}")),
        }
    }
}

struct Sample {
    at: Duration,
    rss_kib: u64,
    /// Of the RSS, anonymous memory in transparent huge pages.
    huge_kib: u64,
    threads: u64,
    fds: u64,
    tasks: u64,
    sessions: u64,
    echo_p50: Duration,
    echo_p99: Duration,
    echoes: usize,
    errors: u64,
}

pub async fn run(minutes: f64, sessions: usize) -> Result<()> {
    let run = Run::new("soak");
    let studio = Arc::new(
        run.start(&[
            "--max-connections-per-ip",
            "100000",
            "--session-timeout",
            "2h",
        ])
        .await?,
    );
    let load = Arc::new(Load::default());
    let (rss_idle_start, fds_idle_start) = (studio.status_kib("VmRSS"), studio.open_fds());
    eprintln!("soak: creating {sessions} sessions");
    // Each terminal starts typing as soon as it exists: a client that
    // reads nothing while the others are made would rightly be dropped by
    // the server's heartbeat.
    let mut tasks = Vec::new();
    let mut dev = Vec::new();
    for i in 0..sessions {
        let mut t = Term::create(studio.addr, None).await?;
        if i < DEV_SERVERS {
            t.run(
                &format!("preview-upstream {DEV_PORT} >/dev/null 2>&1 & "),
                Duration::from_secs(10),
            )
            .await?;
            let (s, v) = studio
                .call(
                    Method::POST,
                    "/api/preview/configure",
                    None,
                    Some(json!({"sessionId": t.session, "port": DEV_PORT})),
                )
                .await?;
            if s != 200 {
                bail!("configure preview: {s} {v}");
            }
            dev.push(t.session.clone());
        }
        tasks.push(tokio::spawn(typist(
            Arc::clone(&studio),
            Arc::clone(&load),
            t,
        )));
    }
    // The dev servers answer before the preview load starts.
    for sid in &dev {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = studio
                .http
                .get(studio.url(&format!("/preview/{sid}/small")))
                .send()
                .await;
            if r.is_ok_and(|r| r.status() == 200) {
                break;
            }
            if Instant::now() > deadline {
                bail!("the dev server of {sid} never answered");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    tasks.push(tokio::spawn(preview_http(
        Arc::clone(&studio),
        Arc::clone(&load),
        dev.clone(),
    )));
    for sid in dev.iter().take(2) {
        tasks.push(tokio::spawn(preview_ws(
            Arc::clone(&studio),
            Arc::clone(&load),
            sid.clone(),
        )));
    }
    tasks.push(tokio::spawn(churn(Arc::clone(&studio), Arc::clone(&load))));

    let total = Duration::from_secs_f64(minutes * 60.0);
    let every = (total / 30).max(Duration::from_secs(5));
    let t0 = Instant::now();
    let mut samples = Vec::new();
    eprintln!("soak: load running for {minutes} min, a sample every {every:?}");
    while t0.elapsed() < total {
        tokio::time::sleep(
            every
                .min(total.saturating_sub(t0.elapsed()))
                .max(Duration::from_millis(1)),
        )
        .await;
        let mut echoes = std::mem::take(&mut *load.echoes.lock().unwrap());
        let s = Sample {
            at: t0.elapsed(),
            rss_kib: studio.status_kib("VmRSS"),
            huge_kib: studio.smaps_kib("AnonHugePages"),
            threads: studio.threads(),
            fds: studio.open_fds(),
            tasks: studio.metric(None, "studio_tasks").await.unwrap_or(0),
            sessions: studio.metric(None, "studio_sessions").await.unwrap_or(0),
            echo_p50: pct(&mut echoes, 50.0),
            echo_p99: pct(&mut echoes, 99.0),
            echoes: echoes.len(),
            errors: load.errors.load(Ordering::Relaxed),
        };
        eprintln!(
            "soak: {:>5.0} s  rss {} MiB (huge pages {} MiB)  threads {}  fds {}  tasks {}  sessions {}  echo p99 {}  errors {}",
            s.at.as_secs_f64(),
            s.rss_kib / 1024,
            s.huge_kib / 1024,
            s.threads,
            s.fds,
            s.tasks,
            s.sessions,
            ms(s.echo_p99),
            s.errors
        );
        samples.push(s);
    }
    load.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(60), t).await;
    }
    let (_, list) = studio
        .call(Method::GET, "/api/containers", None, None)
        .await?;
    let mut remove_failures = 0;
    for s in list.as_array().cloned().unwrap_or_default() {
        let sid = s["sessionId"].as_str().unwrap_or_default();
        if !matches!(
            studio
                .call(
                    Method::DELETE,
                    &format!("/api/containers/{sid}"),
                    None,
                    None
                )
                .await,
            Ok((200, _))
        ) {
            remove_failures += 1;
        }
    }
    // Idle again, with no session: what the server still holds.
    let idle_deadline = Instant::now() + Duration::from_secs(30);
    while studio.metric(None, "studio_sessions").await.unwrap_or(0) > 0
        && Instant::now() < idle_deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (rss_idle_end, fds_idle_end, tasks_idle_end) = (
        studio.status_kib("VmRSS"),
        studio.open_fds(),
        studio.metric(None, "studio_tasks").await.unwrap_or(0),
    );
    let studio = Arc::try_unwrap(studio).map_err(|_| anyhow::anyhow!("studio still shared"))?;
    studio.stop().await;
    let left = run.containers().len();

    println!("\n## Soak: {minutes} minutes of mixed load, {sessions} sessions\n");
    println!("| time | server RSS | of it in huge pages | threads | open files | tasks | sessions | echo p50 | echo p99 | echoes | errors so far |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for s in &samples {
        println!(
            "| {:.0} s | {:.1} MiB | {:.1} MiB | {} | {} | {} | {} | {} | {} | {} | {} |",
            s.at.as_secs_f64(),
            s.rss_kib as f64 / 1024.0,
            s.huge_kib as f64 / 1024.0,
            s.threads,
            s.fds,
            s.tasks,
            s.sessions,
            ms(s.echo_p50),
            ms(s.echo_p99),
            s.echoes,
            s.errors
        );
    }
    // Warm-up: the first third; growth is measured over the rest.
    let warm = samples.iter().position(|s| s.at >= total / 3).unwrap_or(0);
    // Medians of five samples, so one busy moment (a burst of queued
    // output, connections mid-churn) does not pass for a trend.
    let median = |v: &[&Sample], f: &dyn Fn(&Sample) -> u64| {
        let mut x: Vec<u64> = v.iter().map(|s| f(s)).collect();
        x.sort();
        x.get(x.len() / 2).copied().unwrap_or(0) as f64
    };
    let growth = |f: &dyn Fn(&Sample) -> u64| {
        let after: Vec<&Sample> = samples[warm..].iter().take(5).collect();
        let last: Vec<&Sample> = samples.iter().rev().take(5).collect();
        let base = median(&after, f);
        (median(&last, f) - base) / base.max(1.0) * 100.0
    };
    println!("\n| figure | value | goal |");
    println!("|---|---:|---|");
    if !samples.is_empty() {
        println!(
            "| RSS growth after warm-up (median of the last 5 samples vs of the 5 after warm-up) | {:+.1} % | < 10 % |",
            growth(&|s| s.rss_kib)
        );
        println!(
            "| highest RSS sample | {:.1} MiB | |",
            samples.iter().map(|s| s.rss_kib).max().unwrap_or(0) as f64 / 1024.0
        );
        println!(
            "| open files growth after warm-up | {:+.1} % | < 10 % |",
            growth(&|s| s.fds)
        );
        println!(
            "| tasks growth after warm-up | {:+.1} % | flat |",
            growth(&|s| s.tasks)
        );
    }
    println!(
        "| idle with no session, before → after the run: RSS | {:.1} MiB → {:.1} MiB | |",
        rss_idle_start as f64 / 1024.0,
        rss_idle_end as f64 / 1024.0
    );
    println!(
        "| idle with no session, before → after the run: open files, tasks | {fds_idle_start} → {fds_idle_end}, {tasks_idle_end} tasks | |"
    );
    let mut all: Vec<Duration> = Vec::new();
    for s in &samples {
        all.push(s.echo_p99);
    }
    println!(
        "| worst interval's echo p99 | {} | |",
        ms(all.iter().copied().max().unwrap_or_default())
    );
    println!("| errors | {} | 0 |", load.errors.load(Ordering::Relaxed));
    println!(
        "| re-attaches after a dropped connection | {} | |",
        load.reattaches.load(Ordering::Relaxed)
    );
    println!(
        "| sessions created and removed while it ran | {} | |",
        load.churned.load(Ordering::Relaxed)
    );
    println!(
        "| preview HTTP requests | {} | |",
        load.preview_requests.load(Ordering::Relaxed)
    );
    println!(
        "| preview WebSocket round trips | {} | |",
        load.preview_ws_messages.load(Ordering::Relaxed)
    );
    println!("| removals at the end that failed | {remove_failures} | 0 |");
    println!("| containers left behind | {left} | 0 |");
    for e in load.first_errors.lock().unwrap().iter() {
        println!("\nerror: {e}");
    }
    Ok(())
}
