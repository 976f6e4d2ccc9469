//! Accepting connections and serving each one: HTTP/1.1 with upgrades (the
//! WebSocket terminal and proxied WebSockets), a bounded number at once,
//! idle and half-sent request heads timed out, and a graceful close on
//! shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::http::Front;

pub struct Listener {
    pub listener: TcpListener,
    pub front: Front,
    /// One permit per open HTTP connection (upgraded ones give theirs back).
    pub limit: Arc<Semaphore>,
    /// A request head must arrive within this, and so must the next request
    /// on an idle kept-alive connection: half-open and idle connections
    /// cannot pile up (slowloris).
    pub idle_timeout: Duration,
    pub tasks: TaskTracker,
    pub shutdown: CancellationToken,
}

impl Listener {
    /// Accepts until shutdown. At the connection limit it stops accepting
    /// (new clients wait in the kernel's backlog) rather than refusing.
    pub async fn run(self) {
        loop {
            let permit = tokio::select! {
                p = Arc::clone(&self.limit).acquire_owned() => p.expect("never closed"),
                _ = self.shutdown.cancelled() => return,
            };
            let (tcp, peer) = tokio::select! {
                a = self.listener.accept() => match a {
                    Ok(a) => a,
                    Err(e) => {
                        backoff(e).await;
                        continue;
                    }
                },
                _ = self.shutdown.cancelled() => return,
            };
            let front = self.front.for_connection(peer);
            let shutdown = self.shutdown.clone();
            let idle = self.idle_timeout;
            self.tasks.spawn(async move {
                serve(tcp, peer, front, idle, shutdown).await;
                drop(permit);
            });
        }
    }
}

/// Per-connection accept errors (the peer gave up) are nothing; running out
/// of file descriptors is worth a pause for some to close.
async fn backoff(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed; pausing");
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// Probes after 60 s of silence, every 10 s, 3 unanswered mean the peer is gone.
const KEEPALIVE: socket2::TcpKeepalive = socket2::TcpKeepalive::new()
    .with_time(Duration::from_secs(60))
    .with_interval(Duration::from_secs(10))
    .with_retries(3);

async fn serve(
    tcp: TcpStream,
    peer: SocketAddr,
    front: Front,
    idle_timeout: Duration,
    shutdown: CancellationToken,
) {
    // No Nagle delay on small writes: keystrokes and proxied WebSocket frames.
    let _ = tcp.set_nodelay(true);
    // A peer that vanished without closing (a laptop lid, a dropped network)
    // is found by the kernel: what it held open (a terminal WebSocket, a
    // preview tunnel) ends within about a minute and a half.
    let _ = socket2::SockRef::from(&tcp).set_tcp_keepalive(&KEEPALIVE);
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        front
            .clone()
            .call(req.map(|b| Body::new(IdleTimeout::new(b, idle_timeout))))
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(idle_timeout)
        .serve_connection(TokioIo::new(tcp), service)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown.cancelled() => {
            // Finish the request in flight, then close.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// A request body that fails once no data has come for `limit` while it is
/// being read: a client that announces a body and stalls cannot hold its
/// connection (and a `--max-connections` slot) forever. The clock runs only
/// while a reader waits for the next piece.
struct IdleTimeout<B> {
    inner: B,
    limit: Duration,
    /// Made at the first wait, re-armed at each later one.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Whether the timer runs for the current wait.
    armed: bool,
}

impl<B> IdleTimeout<B> {
    fn new(inner: B, limit: Duration) -> Self {
        IdleTimeout {
            inner,
            limit,
            timer: None,
            armed: false,
        }
    }
}

impl<B> http_body::Body for IdleTimeout<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.armed = false;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let was_armed = std::mem::replace(&mut this.armed, true);
                let deadline = || tokio::time::Instant::now() + this.limit;
                let timer = match &mut this.timer {
                    Some(t) if was_armed => t,
                    Some(t) => {
                        t.as_mut().reset(deadline());
                        t
                    }
                    None => this
                        .timer
                        .insert(Box::pin(tokio::time::sleep_until(deadline()))),
                };
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(format!(
                        "no request body data for {}",
                        humantime::format_duration(this.limit)
                    )
                    .into()))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
