//! The terminal benchmark: starts the real `claude-studio` binary against the
//! real Docker engine and measures session start, keystroke echo, throughput,
//! re-attach, warm start and memory per session, each next to a bare-engine
//! baseline taken in the same run (absolute times on a shared machine are
//! noise; ratios are not). Prints a markdown table on stdout.
//!
//! `cargo bench --bench terminal -- [--quick] [--sessions N] [--only LIST]`
//! LIST: comma-separated of start,burst,echo,throughput,reattach,footprint,warm.

mod client;
mod engine;
mod events;
mod report;
mod server;
mod start;
mod stats;
mod stream;

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use engine::Engine;
use report::Results;
use server::{Cleanup, Features, Server};

pub const IMAGE: &str = "studio-test-busybox:latest";
/// Creates back to back in the warm start's refill case.
const REFILL_RUN: usize = 10;

#[derive(Debug, Clone)]
pub struct Opts {
    pub quick: bool,
    pub sessions: usize,
    pub concurrency: usize,
    pub only: Option<Vec<String>>,
    pub start_samples: usize,
    pub burst: usize,
    pub burst_rounds: usize,
    pub echo_samples: usize,
    pub flood_bytes: u64,
    pub flood_rounds: usize,
    pub clients: usize,
    pub reattach_samples: usize,
}

impl Opts {
    fn parse() -> Result<Opts> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let quick = args.iter().any(|a| a == "--quick");
        let mut o = Opts {
            quick,
            sessions: if quick { 20 } else { 200 },
            concurrency: 4,
            only: None,
            start_samples: if quick { 10 } else { 30 },
            burst: 20,
            burst_rounds: if quick { 1 } else { 3 },
            echo_samples: if quick { 200 } else { 1000 },
            flood_bytes: if quick { 20_000_000 } else { 100_000_000 },
            flood_rounds: if quick { 1 } else { 3 },
            clients: 10,
            reattach_samples: if quick { 10 } else { 30 },
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .with_context(|| format!("{name} needs a value"))
                    .cloned()
            };
            match a.as_str() {
                "--quick" | "--bench" => {}
                "--sessions" => o.sessions = value("--sessions")?.parse().context("--sessions")?,
                "--concurrency" => o.concurrency = value("--concurrency")?.parse().context("--concurrency")?,
                "--only" => o.only = Some(value("--only")?.split(',').map(str::to_string).collect()),
                other => bail!("unknown argument {other:?}; use --quick, --sessions N, --concurrency N, --only LIST"),
            }
        }
        Ok(o)
    }

    fn wants(&self, part: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|l| l.iter().any(|p| p == part))
    }
}

fn progress(msg: &str) {
    eprintln!("[bench] {msg}");
}

/// Makes the baselines' containers like the server's (see `Engine::match_server`).
async fn match_server(server: &Server, engine: &Engine) -> Result<()> {
    let mut ws = client::Ws::connect(&server.ws_url()).await?;
    let (sid, c) = ws.create().await?;
    let diff = engine.match_server(&c.container_id).await;
    ws.close().await;
    server.delete_session(&sid).await?;
    for d in diff? {
        progress(&format!(
            "warning: baseline HostConfig differs from the server's: {d}"
        ));
    }
    Ok(())
}

async fn run(opts: &Opts, guard: &Cleanup, r: &mut Results) -> Result<()> {
    let engine = Engine::connect(IMAGE, &guard.bench_label).await?;
    engine
        .docker
        .inspect_image(IMAGE)
        .await
        .with_context(|| format!("image {IMAGE} missing: run scripts/build-test-image.sh first"))?;
    let features = Features::detect().await?;
    let started = Instant::now();

    let needs_main = ["start", "burst", "echo", "throughput", "reattach"]
        .iter()
        .any(|p| opts.wants(p));
    // Cold measurements are of a server without a pool (which would serve
    // them warm, and load the engine in the background).
    let no_pool: Vec<String> = if features.has("--warm-pool") {
        vec!["--warm-pool".into(), "0".into()]
    } else {
        Vec::new()
    };
    if needs_main {
        let server = Server::start(guard, &features, IMAGE, &no_pool).await?;
        match_server(&server, &engine).await?;
        if opts.wants("start") {
            progress(&format!(
                "cold start: {} samples each of studio, Engine API, docker run",
                opts.start_samples
            ));
            r.cold = Some(start::cold(&server, &engine, opts.start_samples).await?);
        }
        if opts.wants("burst") {
            progress(&format!(
                "burst: {} sessions at once, {} round(s)",
                opts.burst, opts.burst_rounds
            ));
            // Next to it, a server in its default configuration (its pool).
            let pooled = Server::start(guard, &features, IMAGE, &[]).await?;
            r.burst = Some(
                start::burst(
                    &server,
                    Some(&pooled),
                    &engine,
                    opts.burst,
                    opts.burst_rounds,
                )
                .await?,
            );
            pooled.stop().await;
        }
        if opts.wants("echo") {
            progress(&format!("keystroke echo: {} samples", opts.echo_samples));
            r.echo = Some(stream::echo(&server, &engine, opts.echo_samples).await?);
        }
        if opts.wants("throughput") {
            progress(&format!(
                "throughput: {} MB, 1 and {} clients",
                opts.flood_bytes / 1_000_000,
                opts.clients
            ));
            r.throughput = Some(
                stream::throughput(
                    &server,
                    &engine,
                    opts.flood_bytes,
                    opts.flood_rounds,
                    opts.clients,
                )
                .await?,
            );
        }
        if opts.wants("reattach") {
            progress(&format!("re-attach: {} samples", opts.reattach_samples));
            r.reattach = Some(stream::reattach(&server, opts.reattach_samples).await?);
        }
        server.stop().await;
    }

    if opts.wants("warm") || opts.wants("start") {
        progress(&format!(
            "exec into a running container: {} samples",
            opts.start_samples
        ));
        r.exec_running = Some(start::exec_into_running(&engine, opts.start_samples).await?);
    }
    if opts.wants("warm") {
        if features.has("--warm-pool") {
            progress(&format!(
                "warm start, default configuration: {} samples with the pool settled, {} back to back in runs of {REFILL_RUN}",
                opts.start_samples, opts.start_samples
            ));
            let server = Server::start(guard, &features, IMAGE, &[]).await?;
            r.warm = Some(start::warm(&server, &engine, opts.start_samples, REFILL_RUN).await?);
            let instance = server.instance.clone();
            server.stop().await;
            engine
                .remove_labelled(&format!("studio.instance={instance}"))
                .await?;
        } else {
            progress("warm start: this server has no --warm-pool; skipped");
        }
    }

    if opts.wants("footprint") {
        progress(&format!(
            "footprint: {} idle attached sessions (concurrency {})",
            opts.sessions, opts.concurrency
        ));
        // A fresh server, so memory the other runs left in the allocator does not count.
        let server = Server::start(guard, &features, IMAGE, &no_pool).await?;
        let f = stream::footprint(&server, opts.sessions, opts.concurrency).await;
        let instance = server.instance.clone();
        server.stop().await;
        progress("footprint: removing containers");
        engine
            .remove_labelled(&format!("studio.instance={instance}"))
            .await?;
        r.footprint = Some(f?);
    }
    r.elapsed = started.elapsed();
    Ok(())
}

fn main() -> std::process::ExitCode {
    let opts = match Opts::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("terminal bench: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    let guard = Cleanup::new(&format!("bench-{}", std::process::id()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut results = Results::default();
    let outcome = rt.block_on(async {
        tokio::select! {
            r = run(&opts, &guard, &mut results) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    // Servers (kill_on_drop) go with the runtime; then the guard removes containers.
    rt.shutdown_timeout(Duration::from_secs(5));
    progress("removing this run's containers");
    drop(guard);
    println!("{}", report::render(&opts, &results));
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("terminal bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
