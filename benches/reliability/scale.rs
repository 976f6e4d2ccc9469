//! Scale: how many concurrent sessions this machine holds. Sessions are
//! created over REST in bursts until the target or the first refusal; then
//! every one is attached and typed into, ATTACH_BURST at a time (echo
//! within 1 s counts as usable);
//! memory is read before, after creating and after attaching: the server's
//! own, the engine's (dockerd, containerd, shims) and the machine's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use reqwest::Method;
use serde_json::json;
use tokio::sync::Semaphore;

use crate::support::{engine_rss_kib, mem_available_kib, ms, pct, Run, Term};

pub async fn run(target: usize, burst: usize, attach_burst: usize) -> Result<()> {
    let run = Run::new("scale");
    let studio = Arc::new(run.start(&["--max-connections-per-ip", "100000"]).await?);
    let (mem0, engine0, server0) = (
        mem_available_kib(),
        engine_rss_kib(),
        studio.status_kib("VmRSS"),
    );
    eprintln!("scale: creating up to {target} sessions, {burst} at a time");
    let t0 = Instant::now();
    let mut sessions: Vec<String> = Vec::new();
    let mut burst_times = Vec::new();
    let mut stopped: Option<String> = None;
    while sessions.len() < target && stopped.is_none() {
        let n = burst.min(target - sessions.len());
        let t = Instant::now();
        let calls = (0..n).map(|_| {
            let s = Arc::clone(&studio);
            tokio::spawn(async move {
                s.call(Method::POST, "/api/containers", None, Some(json!({})))
                    .await
            })
        });
        for r in futures_util::future::join_all(calls).await {
            match r? {
                Ok((200, v)) => sessions.push(v["sessionId"].as_str().unwrap_or_default().into()),
                Ok((status, v)) => stopped = Some(format!("{status} {v}")),
                Err(e) => stopped = Some(format!("no answer: {e:#}")),
            }
        }
        burst_times.push(t.elapsed());
        if sessions.len() % 100 < burst {
            eprintln!(
                "scale: {} sessions after {:.0} s, machine MemAvailable {} MiB",
                sessions.len(),
                t0.elapsed().as_secs_f64(),
                mem_available_kib() / 1024
            );
        }
    }
    let create_time = t0.elapsed();
    let (mem1, engine1, server1) = (
        mem_available_kib(),
        engine_rss_kib(),
        studio.status_kib("VmRSS"),
    );
    let count = sessions.len();
    eprintln!("scale: {count} sessions in {create_time:?}; attaching and typing in each");

    // Every session attached and typed into, ATTACH_BURST at a time; each shell keeps
    // running after its client leaves (a connection held without reading
    // would rightly be dropped by the server's heartbeat).
    let gate = Arc::new(Semaphore::new(attach_burst.max(1)));
    let tasks: Vec<_> = sessions
        .iter()
        .cloned()
        .map(|sid| {
            let (gate, addr) = (Arc::clone(&gate), studio.addr);
            tokio::spawn(async move {
                let _p = gate.acquire().await;
                let t = Instant::now();
                let mut term = Term::attach(addr, None, &sid).await?;
                // The first command also waits for the shell to start.
                term.run("", Duration::from_secs(20)).await?;
                let first = t.elapsed();
                let echo = term.run("", Duration::from_secs(5)).await?;
                term.close().await;
                anyhow::Ok((first, echo))
            })
        })
        .collect();
    let (mut firsts, mut echoes, mut failures) = (Vec::new(), Vec::new(), 0);
    for t in tasks {
        match t.await? {
            Ok((f, e)) => {
                firsts.push(f);
                echoes.push(e);
            }
            Err(e) => {
                failures += 1;
                eprintln!("scale: a session was not usable: {e:#}");
            }
        }
    }
    let within_1s = echoes
        .iter()
        .filter(|d| **d <= Duration::from_secs(1))
        .count();
    let (mem2, engine2, server2) = (
        mem_available_kib(),
        engine_rss_kib(),
        studio.status_kib("VmRSS"),
    );
    let t = Instant::now();
    let gate = Arc::new(Semaphore::new(16));
    let removals: Vec<_> = sessions
        .iter()
        .cloned()
        .map(|sid| {
            let (s, gate) = (Arc::clone(&studio), Arc::clone(&gate));
            tokio::spawn(async move {
                let _p = gate.acquire().await;
                s.call(
                    Method::DELETE,
                    &format!("/api/containers/{sid}"),
                    None,
                    None,
                )
                .await
            })
        })
        .collect();
    let mut remove_failures = 0;
    // Why removals failed, counted by kind (a status, or no answer).
    let mut why: std::collections::BTreeMap<String, usize> = Default::default();
    for h in removals {
        match h.await? {
            Ok((200, _)) => {}
            Ok((status, v)) => {
                remove_failures += 1;
                *why.entry(format!("{status} {}", v["error"].as_str().unwrap_or("?")))
                    .or_default() += 1;
            }
            Err(e) => {
                remove_failures += 1;
                let timed_out = e
                    .downcast_ref::<reqwest::Error>()
                    .is_some_and(|e| e.is_timeout());
                let kind = if timed_out {
                    "no answer within the client's timeout"
                } else {
                    "no answer"
                };
                *why.entry(kind.into()).or_default() += 1;
            }
        }
    }
    let why = why
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ");
    let remove_time = t.elapsed();
    let left = run.containers().len();

    let per =
        |before: u64, after: u64| before.abs_diff(after) as f64 / count.max(1) as f64 / 1024.0;
    println!("\n## Scale: concurrent sessions on this machine\n");
    println!("| figure | value |");
    println!("|---|---:|");
    println!("| sessions asked for | {target} |");
    println!("| sessions created ({burst} at a time) | {count} |");
    println!(
        "| where it stopped | {} |",
        stopped
            .as_deref()
            .unwrap_or("did not stop (target reached)")
    );
    println!(
        "| time to create them all | {:.0} s |",
        create_time.as_secs_f64()
    );
    println!(
        "| burst of {burst}: p50 / p99 | {} / {} |",
        ms(pct(&mut burst_times.clone(), 50.0)),
        ms(pct(&mut burst_times, 99.0))
    );
    println!(
        "| usable (echo within 1 s after attach) | {within_1s} of {count} ({failures} failed) |"
    );
    println!(
        "| attach → first command done (shell start): p50 / p99 | {} / {} |",
        ms(pct(&mut firsts.clone(), 50.0)),
        ms(pct(&mut firsts, 99.0))
    );
    println!(
        "| echo after attach: p50 / p99 | {} / {} |",
        ms(pct(&mut echoes.clone(), 50.0)),
        ms(pct(&mut echoes, 99.0))
    );
    println!(
        "| server memory per session (created / attached) | {:.2} MiB / {:.2} MiB |",
        per(server0, server1),
        per(server0, server2)
    );
    println!(
        "| engine memory per session (dockerd, containerd, shims; created / attached) | {:.2} MiB / {:.2} MiB |",
        per(engine0, engine1),
        per(engine0, engine2)
    );
    println!(
        "| machine memory per session (MemAvailable; created / attached) | {:.2} MiB / {:.2} MiB |",
        per(mem0, mem1),
        per(mem0, mem2)
    );
    println!(
        "| server RSS at {count} attached sessions | {:.0} MiB |",
        server2 as f64 / 1024.0
    );
    println!(
        "| removing them all | {:.0} s, {remove_failures} failures{} |",
        remove_time.as_secs_f64(),
        if why.is_empty() {
            String::new()
        } else {
            format!(" ({why})")
        }
    );
    println!("| containers left behind | {left} |");
    drop(studio);
    Ok(())
}
