//! The connections attached to a terminal, and handing each of them a
//! frame: without waiting while a client's queue has room, waiting (so the
//! shell is read more slowly) while it is full, and kicking a client that
//! stays full for [`SLOW_CLIENT_TIMEOUT`].

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use futures_util::future::join_all;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub const SLOW_CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// One attached WebSocket connection, as the terminal sees it.
#[derive(Clone, Debug)]
pub struct Subscriber {
    pub conn_id: u64,
    pub tx: mpsc::Sender<Utf8Bytes>,
    /// Cancelled (with a reason set) to make the connection send `reconnect` and close.
    pub kick: Kick,
}

/// Tells a connection to leave with a `reconnect` reason.
#[derive(Clone, Debug, Default)]
pub struct Kick {
    token: CancellationToken,
    reason: Arc<std::sync::OnceLock<&'static str>>,
}

impl Kick {
    pub fn kick(&self, reason: &'static str) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }
    pub async fn kicked(&self) -> &'static str {
        self.token.cancelled().await;
        self.reason.get().copied().unwrap_or("Server restarting")
    }
}

/// The attached connections.
#[derive(Default)]
pub struct Subscribers(Vec<Subscriber>);

impl Subscribers {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn contains(&self, conn_id: u64) -> bool {
        self.0.iter().any(|s| s.conn_id == conn_id)
    }

    /// Adds `sub` unless it is attached already or its connection is gone.
    pub fn add(&mut self, sub: Subscriber) {
        if !self.contains(sub.conn_id) && !sub.tx.is_closed() {
            self.0.push(sub);
        }
    }

    /// `true` when `conn_id` was attached.
    pub fn remove(&mut self, conn_id: u64) -> bool {
        let before = self.0.len();
        self.0.retain(|s| s.conn_id != conn_id);
        before != self.0.len()
    }

    /// Drops the subscribers whose connection has gone.
    pub fn prune(&mut self) {
        self.0.retain(|s| !s.tx.is_closed());
    }

    pub fn drain(&mut self) -> impl Iterator<Item = Subscriber> + '_ {
        self.0.drain(..)
    }

    /// Hands `frame` to every subscriber; drops the closed ones and kicks the
    /// ones that stay full too long.
    pub async fn send(&mut self, frame: Utf8Bytes) {
        let mut pending = Vec::new();
        self.0.retain(|s| match s.tx.try_send(frame.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Closed(_)) => false,
            Err(mpsc::error::TrySendError::Full(_)) => {
                pending.push(s.clone());
                true
            }
        });
        if !pending.is_empty() {
            let results =
                join_all(pending.iter().map(|s| send_with_timeout(s, frame.clone()))).await;
            let gone: Vec<u64> = pending
                .iter()
                .zip(results)
                .filter(|(_, ok)| !ok)
                .map(|(s, _)| s.conn_id)
                .collect();
            self.0.retain(|s| !gone.contains(&s.conn_id));
        }
    }
}

/// Sends within [`SLOW_CLIENT_TIMEOUT`]; a client that cannot take it is kicked.
pub async fn send_with_timeout(sub: &Subscriber, frame: Utf8Bytes) -> bool {
    match tokio::time::timeout(SLOW_CLIENT_TIMEOUT, sub.tx.send(frame)).await {
        Ok(Ok(())) => true,
        Ok(Err(_)) => false,
        Err(_) => {
            sub.kick.kick("Client too slow");
            false
        }
    }
}
