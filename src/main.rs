use clap::Parser;

use claude_studio::config::{Cli, Settings};

/// The proxy and the terminal allocate per request and per message; glibc's
/// allocator showed up at ~8% of a preview profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "claude_studio=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut cli = Cli::parse();
    if cli.docker_host.is_none() {
        cli.docker_host = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty());
    }
    let settings = match Settings::resolve(cli) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("claude-studio: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let code = match claude_studio::server::run(settings).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("claude-studio: {e:#}");
            1
        }
    };
    // `run` has drained what it could within the shutdown grace; whatever
    // is still running (a request that never ends) must not hold the exit
    // up while the runtime waits for it.
    std::process::exit(code)
}
