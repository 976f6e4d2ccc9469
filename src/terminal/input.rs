//! The shell's input: a queue bounded by bytes, and the task that writes it
//! to the shell's stdin, so that a shell that is not reading (a long
//! command, a big paste) never blocks a connection.

use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// Input bytes queued for a shell that is not reading (two of the largest
/// messages). Each message also counts [`INPUT_OVERHEAD`], so that a flood of
/// one-keystroke messages is bounded too; a burst of keystrokes is queued,
/// not refused.
const INPUT_BUDGET: usize = 2 * 1024 * 1024;
const INPUT_OVERHEAD: usize = 64;

type Chunk = (Bytes, OwnedSemaphorePermit);

/// A queued chunk holds its share of the budget until it is written to the
/// shell.
#[derive(Clone)]
pub struct InputQueue {
    tx: mpsc::UnboundedSender<Chunk>,
    budget: Arc<Semaphore>,
}

impl InputQueue {
    pub fn new() -> (Self, mpsc::UnboundedReceiver<Chunk>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let budget = Arc::new(Semaphore::new(INPUT_BUDGET));
        (Self { tx, budget }, rx)
    }

    /// Queues `data` without waiting; `false` when the budget is spent.
    pub fn push(&self, data: &[u8]) -> bool {
        let cost = (data.len() + INPUT_OVERHEAD).min(INPUT_BUDGET) as u32;
        let Ok(permit) = Arc::clone(&self.budget).try_acquire_many_owned(cost) else {
            return false;
        };
        // A closed queue means the shell just ended; its `exit` tells the client.
        let _ = self.tx.send((Bytes::copy_from_slice(data), permit));
        true
    }
}

/// Writes queued input to the shell's stdin until the queue closes or the
/// shell ends, then closes stdin.
pub async fn feed(
    mut stdin: std::pin::Pin<Box<dyn AsyncWrite + Send>>,
    mut queue: mpsc::UnboundedReceiver<Chunk>,
    done: CancellationToken,
) {
    let mut batch = Vec::new();
    'feed: loop {
        // Whatever has queued up goes out in one flush.
        let n = tokio::select! {
            _ = done.cancelled() => break,
            n = queue.recv_many(&mut batch, 256) => n,
        };
        if n == 0 {
            break;
        }
        for (chunk, _permit) in batch.drain(..) {
            if stdin.write_all(&chunk).await.is_err() {
                break 'feed;
            }
        }
        if stdin.flush().await.is_err() {
            break;
        }
    }
    let _ = stdin.shutdown().await;
}
