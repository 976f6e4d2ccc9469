//! The fleet benchmark (issue 16): what relaying costs, and how long a
//! failover takes. It starts Debian's `redis-server` on a free loopback port
//! and release `claude-studio` gateways sharing it (`--store`, one
//! `--instance`) against the real Docker engine, then measures:
//!
//! - Relay: keystroke echo (p50/p99) and throughput of a client on gateway A,
//!   which holds the sessions, against a client on gateway B, which relays to
//!   A, in alternating rounds so that the machine's noise hits both alike.
//!   Each path has its own session (both held by A): a second client attached
//!   to the same shell would be served every flood too, and slow the other.
//! - Failover: with a client attached through B, the holder is killed (-9);
//!   timed from the kill: the attached client's `reconnect`, then a fresh
//!   attach through B (`attached`, the replay) and an echo of new input. Each
//!   run kills a fresh holder (A, then new gateways C1, C2…).
//!
//! Prints markdown on stdout. The terminal bench's client, server guard and
//! measurements are reused (`benches/terminal`), so both benches time the
//! same way.
//!
//! `cargo bench --bench fleet -- [--quick] [--failovers N]`
#[allow(dead_code)]
#[path = "terminal/client.rs"]
mod client;
#[allow(dead_code)]
#[path = "terminal/engine.rs"]
mod engine;
#[allow(dead_code)]
#[path = "terminal/events.rs"]
mod events;
#[allow(dead_code)]
#[path = "terminal/server.rs"]
mod server;
#[allow(dead_code)]
#[path = "terminal/stats.rs"]
mod stats;
#[allow(dead_code)]
#[path = "terminal/stream.rs"]
mod stream;

#[path = "fleet/failover.rs"]
mod failover;
#[path = "fleet/relay.rs"]
mod relay;
#[path = "fleet/report.rs"]
mod report;
#[path = "fleet/setup.rs"]
mod setup;

use std::time::Duration;

use anyhow::{bail, Context, Result};

use failover::failover;
use relay::relay;
use report::{render, sh, Report};
use server::Cleanup;
use setup::{Fleet, Redis};
use stats::ms;

pub const IMAGE: &str = "studio-test-busybox:latest";

pub struct Opts {
    pub echo_samples: usize,
    pub flood_bytes: u64,
    pub flood_rounds: usize,
    pub failovers: usize,
}

impl Opts {
    fn parse() -> Result<Opts> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let quick = args.iter().any(|a| a == "--quick");
        let mut o = Opts {
            echo_samples: if quick { 200 } else { 1000 },
            flood_bytes: if quick { 20_000_000 } else { 100_000_000 },
            flood_rounds: if quick { 2 } else { 5 },
            failovers: if quick { 1 } else { 3 },
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--quick" | "--bench" => {}
                "--failovers" => {
                    o.failovers = it.next().context("--failovers N")?.parse()?;
                }
                other => bail!("unknown argument {other:?}; use --quick, --failovers N"),
            }
        }
        Ok(o)
    }
}

pub fn progress(msg: &str) {
    eprintln!("[fleet bench] {msg}");
}

async fn run(o: &Opts, guard: &Cleanup, redis: &Redis, out: &mut Report) -> Result<()> {
    let fleet = Fleet::new(guard, redis).await?;
    progress(&format!(
        "gateways A and B, instance {}, store {}",
        fleet.instance, fleet.store
    ));
    let a = fleet.gateway("a").await?;
    let b = fleet.gateway("b").await?;
    out.relay = Some(relay(&fleet, &a, &b, o).await?);
    let mut holder = Some(a);
    for k in 0..o.failovers {
        let (g, name) = match holder.take() {
            Some(a) => (a, "A".to_string()),
            None => {
                let name = format!("C{k}");
                (fleet.gateway(&name.to_lowercase()).await?, name)
            }
        };
        progress(&format!("failover {}: killing {name} (-9)", k + 1));
        let f = failover(&fleet, g, &name, &b, k as u32).await?;
        progress(&format!(
            "  fresh attach + echo through B after {}",
            ms(f.echo)
        ));
        out.failovers.push(f);
    }
    out.left = Some(fleet.containers().await?);
    b.stop().await;
    Ok(())
}

fn main() -> std::process::ExitCode {
    let opts = match Opts::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("fleet bench: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    let load_before = sh("cut -d' ' -f1-3 /proc/loadavg");
    // The code the gateways run: cargo built them just now from this tree.
    let mut commit = format!("`{}`", sh("git rev-parse --short HEAD"));
    if !sh("git status --porcelain -- src Cargo.toml Cargo.lock").is_empty() {
        commit.push_str(" (with uncommitted changes in src/)");
    }
    let run_name = format!("fleet-{}", std::process::id());
    let redis = match Redis::start(&run_name) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fleet bench: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let guard = Cleanup::new(&run_name);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut report = Report::default();
    let outcome = rt.block_on(async {
        tokio::select! {
            r = run(&opts, &guard, &redis, &mut report) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    // Gateways (kill_on_drop) go with the runtime; the guard removes their
    // containers; Redis last.
    rt.shutdown_timeout(Duration::from_secs(5));
    progress("removing this run's containers");
    drop(guard);
    drop(redis);
    println!("{}", render(&opts, &report, &commit, &load_before));
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fleet bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
