//! Reliability harnesses that run against the release server and the real
//! engine and print Markdown tables (docs/reliability.md has the latest):
//!
//!   cargo bench --bench reliability -- scale [SESSIONS] [BURST] [ATTACH_BURST]   (1000, 16, 8)
//!   cargo bench --bench reliability -- crash [KILLS] [ENGINE_RESTARTS]   (100, 0)
//!   cargo bench --bench reliability -- soak [MINUTES] [SESSIONS]   (30, 50)
//!
//! Each uses its own `--instance` label and removes every container it
//! made however it ends. `crash` with engine restarts stops and starts the
//! machine's dockerd: run it only where nothing else uses the engine.

mod crash;
mod scale;
mod soak;
mod support;

use anyhow::{bail, Result};

#[tokio::main]
async fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; only our own words count.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let num = |i: usize, default: f64| -> Result<f64> {
        match args.get(i) {
            Some(v) => Ok(v.parse()?),
            None => Ok(default),
        }
    };
    let harness = async {
        match args.first().map(String::as_str) {
            Some("scale") => {
                scale::run(
                    num(1, 1000.0)? as usize,
                    num(2, 16.0)? as usize,
                    num(3, 8.0)? as usize,
                )
                .await
            }
            Some("crash") => crash::run(num(1, 100.0)? as usize, num(2, 0.0)? as usize).await,
            Some("soak") => soak::run(num(1, 30.0)?, num(2, 50.0)? as usize).await,
            _ => bail!("say which harness: scale, crash or soak (see benches/reliability/main.rs)"),
        }
    };
    // Interrupted (Ctrl-C, SIGTERM): the harness is dropped, and with it
    // the run's guard, which stops its server and removes its containers.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = harness => r,
        _ = tokio::signal::ctrl_c() => bail!("interrupted"),
        _ = term.recv() => bail!("terminated"),
    }
}
