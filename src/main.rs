use std::io::IsTerminal;
use std::path::PathBuf;

use claude_studio::config::{command, Fallbacks, Settings};

/// The proxy and the terminal allocate per request and per message; glibc's
/// allocator showed up at ~8% of a preview profile.
/// (`--features system-allocator` builds with the C library's instead.)
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Says `msg` on stderr; a stderr nobody reads any more is no reason to panic.
fn say(msg: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "claude-studio: {msg}");
}

/// The environment beyond `STUDIO_*` that some defaults depend on: read
/// here, once, and passed down.
fn fallbacks() -> Fallbacks {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    Fallbacks {
        docker_host: var("DOCKER_HOST").and_then(|v| v.into_string().ok()),
        state_home: var("XDG_STATE_HOME")
            .map(PathBuf::from)
            .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".local/state"))),
        docker_cert_path: var("DOCKER_TLS_VERIFY")
            .filter(|v| v != "0")
            .and(var("DOCKER_CERT_PATH"))
            .map(PathBuf::from),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // `claude-studio shell|run|exec|…`: a client of a running server.
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(first) = args.get(1).and_then(|a| a.to_str()) {
        if claude_studio::cli::is_client_command(first) {
            let code = claude_studio::cli::main(args).await;
            // A read of stdin may still be pending on a blocking thread the
            // runtime would wait for: leave now, output flushed.
            use std::io::Write;
            let _ = std::io::stdout().flush();
            std::process::exit(code);
        }
        // `claude-studio serve …` is the server, as `claude-studio …` is.
        if first == "serve" {
            args.remove(1);
        }
    }
    // No transparent huge pages for the server's memory: the allocator
    // asks for them on its arenas, and the kernel's khugepaged then fills
    // in sparse 2 MiB ranges by itself, long after start-up, so a server
    // whose live memory is flat kept growing in 20 to 30 MiB steps
    // (measured by the soak harness; docs/reliability.md). The cost is a
    // few more TLB misses on a heap that is small anyway.
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    // Logs go through a queue to a thread of their own: a stderr that is
    // full (a parent that does not read it) or closed never blocks or
    // breaks the server; lines that do not fit are dropped instead. Colour
    // only when a person reads them on a terminal.
    let (writer, log_guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .thread_name("claude-studio-log")
        .finish(std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "claude_studio=info".into()),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer)
        .log_internal_errors(false)
        .init();
    let matches = command().get_matches_from(args);
    let settings = match Settings::resolve(&matches, &fallbacks()) {
        Ok(s) => s,
        Err(e) => {
            say(format_args!("{e}"));
            return std::process::ExitCode::from(2);
        }
    };
    let code = match claude_studio::server::run(settings).await {
        Ok(()) => 0,
        Err(e) => {
            say(format_args!("{e:#}"));
            1
        }
    };
    // Queued log lines are written out (for at most about a second).
    drop(log_guard);
    // `run` has drained what it could within the shutdown grace; whatever
    // is still running (a request that never ends) must not hold the exit
    // up while the runtime waits for it.
    std::process::exit(code)
}
