//! Start-up and shutdown: bind, serve, and on SIGTERM/SIGINT stop accepting,
//! tell every WebSocket to reconnect, and wait (at most 10 s) for the tasks.
//! `listener` accepts and serves the connections.

mod listener;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::app::App;
use crate::config::Settings;
use crate::fleet::Fleet;
use crate::runtime::docker::DockerRuntime;
use crate::runtime::firewall::EgressMode;
use crate::runtime::ContainerRuntime;
use crate::store::{FileStore, SessionStore};

/// From the signal to the end of `run`: in-flight requests, WebSocket
/// goodbyes and tasks get this long. It leaves room in the contract's 10 s
/// for the process to exit after it (which `main` does at once).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(6);
/// How long start-up waits for a fleet's Redis to answer.
const FLEET_PATIENCE: Duration = Duration::from_secs(10);

/// The URL the fleet's other gateways reach this one at: `--advertise-url`,
/// else the bound address (loopback for an unspecified one).
fn advertised(settings: &Settings, local: std::net::SocketAddr) -> String {
    if let Some(u) = &settings.advertise_url {
        return u.trim_end_matches('/').to_string();
    }
    let ip = match local.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    format!("http://{}", std::net::SocketAddr::new(ip, local.port()))
}

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    raise_open_file_limit();
    if settings.egress != EgressMode::Unfiltered {
        crate::runtime::firewall::available().map_err(|e| {
            anyhow::anyhow!(
                "sessions are isolated from this machine's networks by filter rules the server \
                 installs, but {e}; run it as root with iptables, or pass --egress unfiltered \
                 to run without that isolation"
            )
        })?;
    }
    let settings = Arc::new(settings);
    let own: Arc<dyn ContainerRuntime> = Arc::new(
        DockerRuntime::new(
            settings.docker_host.as_deref(),
            settings.docker_tls_dir.as_deref(),
            &settings.network,
            settings.egress_policy(),
        )
        .map_err(anyhow::Error::msg)?,
    );
    // A fleet's other engines: this gateway only serves sessions there
    // (taken over from a gateway that is gone), never makes containers or
    // networks, so no egress rules of its own apply.
    let runtime: Arc<dyn ContainerRuntime> = if settings.fleet_engines.is_empty() {
        own
    } else {
        let mut others: Vec<Arc<dyn ContainerRuntime>> = Vec::new();
        for host in &settings.fleet_engines {
            others.push(Arc::new(
                DockerRuntime::new(
                    Some(host),
                    settings.docker_tls_dir.as_deref(),
                    &settings.network,
                    crate::runtime::firewall::Egress {
                        mode: EgressMode::Unfiltered,
                        allow: Vec::new(),
                    },
                )
                .map_err(|e| anyhow::anyhow!("--fleet-engine {host}: {e}"))?,
            ));
        }
        Arc::new(crate::runtime::engines::Engines::new(own, others))
    };
    // A fleet keeps its state in Redis; one server in its state directory.
    let fleet = match &settings.store {
        Some(url) => Some(Arc::new(
            Fleet::connect(
                url,
                &settings.instance,
                format!("{:016x}", rand::random::<u64>()),
                FLEET_PATIENCE,
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        )),
        None => None,
    };
    let store: Arc<dyn SessionStore> = match &fleet {
        Some(f) => Arc::clone(f) as Arc<dyn SessionStore>,
        None => Arc::new(
            FileStore::open(&settings.instance_state_dir()).map_err(|e| anyhow::anyhow!("{e}"))?,
        ),
    };
    let app = App::new(
        Arc::clone(&settings),
        Arc::clone(&runtime),
        store,
        fleet.clone(),
    )
    .map_err(anyhow::Error::msg)?;

    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let local = listener.local_addr()?;
    app.access.set_bound(local);
    if let Some(f) = &fleet {
        f.set_url(advertised(&settings, local));
        f.register()
            .await
            .map_err(|e| anyhow::anyhow!("could not join the fleet: {e}"))?;
        tracing::info!(gateway = %f.gateway, url = %f.url(), "joined the fleet");
    }
    let mut ping = runtime.ping().await;
    // A request that lost a race with a connection failing its TLS
    // handshake learns only that the connection "was not ready": ask
    // again, so the warning says why (a refused certificate, say).
    for _ in 0..2 {
        match &ping {
            Err(e) if e.to_string().contains("was not ready") => ping = runtime.ping().await,
            _ => break,
        }
    }
    match ping {
        Ok(()) => tracing::info!("Docker engine connected"),
        Err(e) => {
            tracing::warn!(error = %e, "Docker engine unreachable; serving anyway and retrying")
        }
    }
    app.sessions.start_background().await;
    app.limits.spawn_pruner(&app.tasks, app.shutdown.clone());
    // Before the port is announced: from then on a stop is graceful.
    let signalled = shutdown_signal()?;
    // Tests and scripts read this line to learn the port (a closed stdout
    // is theirs to mind, not a reason to stop).
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "claude-studio listening on http://{local}");
        let _ = out.flush();
    }

    let shutdown = app.shutdown.clone();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            signalled.await;
            shutdown.cancel();
            tracing::info!("shutting down");
        }
    });

    let accepting = app.tasks.spawn(
        listener::Listener {
            listener,
            front: crate::http::Front::new(Arc::clone(&app)),
            limit: Arc::new(Semaphore::new(settings.max_connections)),
            // An idle keep-alive connection is closed at the idle timeout
            // too, when that is the shorter.
            head_timeout: settings
                .request_head_timeout
                .min(settings.connection_idle_timeout),
            idle_timeout: settings.connection_idle_timeout,
            // Behind a trusted proxy every connection comes from the proxy.
            per_ip: listener::PerIp::new(if settings.trust_proxy {
                0
            } else {
                settings.max_connections_per_ip
            }),
            tasks: app.tasks.clone(),
            shutdown: shutdown.clone(),
        }
        .run(),
    );
    shutdown.cancelled().await;

    app.tasks.close();
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        // Waiting pool containers are not sessions: nothing to keep.
        app.sessions.drain_pool().await;
        let _ = accepting.await;
        app.tasks.wait().await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!("tasks still running after {SHUTDOWN_GRACE:?}; exiting anyway");
    }
    Ok(())
}

/// Installs the SIGTERM/SIGINT handlers now (so that a signal arriving any
/// time after start-up is a graceful stop, never the default kill) and
/// returns the wait for either.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// Every HTTP connection, kept-alive preview upstream and terminal stream is
/// a file descriptor; the soft limit is often 1024, well under what
/// `--max-connections` allows. Raise it to the hard limit, as servers do.
fn raise_open_file_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a stack struct of the right type.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 || lim.rlim_cur >= lim.rlim_max {
            return;
        }
        let soft = lim.rlim_cur;
        lim.rlim_cur = lim.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
            tracing::debug!(from = soft, to = lim.rlim_max, "raised the open-file limit");
        }
    }
}
