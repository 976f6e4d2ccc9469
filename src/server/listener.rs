//! Accepting connections and serving each one: HTTP/1.1 with upgrades (the
//! WebSocket terminal and proxied WebSockets), a bounded number at once and
//! per client address, request heads that must arrive whole within a
//! deadline, request bodies that must keep a minimum rate, and a graceful
//! close on shutdown.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
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
    /// Open HTTP connections per client address.
    pub per_ip: Arc<PerIp>,
    /// A request head must arrive whole within this, and so must the next
    /// request on an idle kept-alive connection: half-sent and idle
    /// connections cannot pile up (slowloris), however slowly they trickle.
    pub head_timeout: Duration,
    /// A request body from which nothing arrives for this long fails; and
    /// once it has waited this long in all, it must keep [`MIN_BODY_RATE`].
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
            let Some(place) = self.per_ip.take(peer.ip()) else {
                // One address holds its share: told so, and closed. Only a
                // bounded number are told at once; past that, closed at once.
                drop(permit);
                if let Ok(telling) = Arc::clone(&self.per_ip.refusals).try_acquire_owned() {
                    let max = self.per_ip.max;
                    self.tasks.spawn(async move {
                        refuse(tcp, max).await;
                        drop(telling);
                    });
                }
                continue;
            };
            let front = self.front.for_connection(peer);
            let shutdown = self.shutdown.clone();
            let (head, idle) = (self.head_timeout, self.idle_timeout);
            self.tasks.spawn(async move {
                serve(tcp, peer, front, head, idle, shutdown).await;
                drop(place);
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

/// Open connections per client address, at most `max` each (0: no cap).
pub struct PerIp {
    open: std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>,
    pub max: usize,
    /// Refusals being written at once.
    refusals: Arc<Semaphore>,
}

impl PerIp {
    pub fn new(max: usize) -> Arc<PerIp> {
        Arc::new(PerIp {
            open: Default::default(),
            max,
            refusals: Arc::new(Semaphore::new(256)),
        })
    }

    /// A place for one more connection from `ip`, if it has one left.
    fn take(self: &Arc<Self>, ip: IpAddr) -> Option<Place> {
        if self.max == 0 {
            return Some(Place { per_ip: None, ip });
        }
        let mut open = self.open.lock().unwrap();
        let n = open.entry(ip).or_default();
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Place {
            per_ip: Some(Arc::clone(self)),
            ip,
        })
    }
}

/// One connection's place in its address's share; given back on drop.
struct Place {
    per_ip: Option<Arc<PerIp>>,
    ip: IpAddr,
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Some(per_ip) = &self.per_ip {
            let mut open = per_ip.open.lock().unwrap();
            if let Some(n) = open.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&self.ip);
                }
            }
        }
    }
}

/// Answers a connection over its address's share with a 429 and closes it,
/// having read what the client sent first (for at most a moment), so that
/// closing does not reset the connection under the answer.
async fn refuse(mut tcp: TcpStream, max: usize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut head = vec![0u8; 16 * 1024];
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        let mut got = 0;
        while got < head.len() {
            match tcp.read(&mut head[got..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
            if head[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    let body = crate::error::ApiError::RateLimit(format!(
        "Too many connections from your address: at most {max} at once (--max-connections-per-ip)"
    ))
    .to_json()
    .to_string();
    let answer = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = tcp.write_all(answer.as_bytes()).await;
        let _ = tcp.shutdown().await;
    })
    .await;
}

async fn serve(
    tcp: TcpStream,
    peer: SocketAddr,
    front: Front,
    head_timeout: Duration,
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
        // A request without a body (most) has nothing to time, nor to box.
        let body = |b: Incoming| {
            if http_body::Body::is_end_stream(&b) {
                Body::empty()
            } else {
                Body::new(IdleTimeout::new(b, idle_timeout))
            }
        };
        front.clone().call(req.map(body))
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout)
        .serve_connection(TokioIo::new(tcp), service)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        // In order: this runs at every wake-up of the connection, and a
        // random draw each time buys nothing (shutdown is seen either way).
        biased;
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

/// The slowest a request body may arrive, on average, once it has taken
/// longer than the idle timeout: a client that trickles a byte now and
/// then, never idle for long, cannot hold its connection for good.
pub const MIN_BODY_RATE: u64 = 500;

/// A request body that fails once no data has come for `limit` while it is
/// being read, or once the time spent waiting for it exceeds `limit` plus
/// one second per [`MIN_BODY_RATE`] bytes received: a client that announces
/// a body and stalls, or trickles it, cannot hold its connection (and a
/// `--max-connections` slot) forever. The clocks run only while a reader
/// waits for the next piece, so a server that reads slowly is not the
/// client's fault.
struct IdleTimeout<B> {
    inner: B,
    limit: Duration,
    /// Made at the first wait, re-armed at each later one.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// When the current wait began, while one runs.
    waiting_since: Option<tokio::time::Instant>,
    /// Time spent waiting in all, before the current wait.
    waited: Duration,
    received: u64,
}

impl<B> IdleTimeout<B> {
    fn new(inner: B, limit: Duration) -> Self {
        IdleTimeout {
            inner,
            limit,
            timer: None,
            waiting_since: None,
            waited: Duration::ZERO,
            received: 0,
        }
    }

    /// How much longer the current wait may last.
    fn allowance(&self) -> Duration {
        let budget =
            self.limit + Duration::from_secs_f64(self.received as f64 / MIN_BODY_RATE as f64);
        budget.saturating_sub(self.waited).min(self.limit)
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
                if let Some(since) = this.waiting_since.take() {
                    this.waited += since.elapsed();
                }
                if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(|f| f.data_ref())) {
                    this.received += data.map_or(0, |d| d.len() as u64);
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                if this.waiting_since.is_none() {
                    let now = tokio::time::Instant::now();
                    this.waiting_since = Some(now);
                    let deadline = now + this.allowance();
                    match &mut this.timer {
                        Some(t) => t.as_mut().reset(deadline),
                        None => this.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
                    }
                }
                let timer = this.timer.as_mut().expect("armed above");
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        let stalled = this.allowance() >= this.limit;
                        Poll::Ready(Some(Err(if stalled {
                            format!(
                                "no request body data for {}",
                                humantime::format_duration(this.limit)
                            )
                        } else {
                            format!(
                                "the request body arrives too slowly: {} bytes in {} (at least {MIN_BODY_RATE} bytes a second once it takes over {})",
                                this.received,
                                humantime::format_duration(Duration::from_secs(this.waited.as_secs())),
                                humantime::format_duration(this.limit)
                            )
                        }
                        .into())))
                    }
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
