//! The browser's request body on its way to the app, watched: whether it
//! failed on the browser's side (a malformed chunk, a stall), which makes a
//! failed exchange the client's fault (400) rather than the app's (502);
//! and when it has been sent whole, from which the app's answer is timed.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::Notify;

#[derive(Default)]
pub struct Watch {
    failed: OnceLock<String>,
    sent: std::sync::atomic::AtomicBool,
    notify: Notify,
}

impl Watch {
    /// Why the browser's body failed, if it did.
    pub fn failure(&self) -> Option<&str> {
        self.failed.get().map(String::as_str)
    }

    /// Waits until the body has been sent whole (or has failed).
    pub async fn sent(&self) {
        loop {
            let notified = self.notify.notified();
            if self.sent.load(std::sync::atomic::Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    fn finish(&self) {
        self.sent.store(true, std::sync::atomic::Ordering::Release);
        self.notify.notify_waiters();
    }
}

pub struct Watched {
    inner: Body,
    watch: Arc<Watch>,
}

impl Watched {
    pub fn new(inner: Body) -> (Watched, Arc<Watch>) {
        let watch = Arc::new(Watch::default());
        if http_body::Body::is_end_stream(&inner) {
            watch.finish();
        }
        (
            Watched {
                inner,
                watch: Arc::clone(&watch),
            },
            watch,
        )
    }
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.watch.finish(),
            Poll::Ready(Some(Err(e))) => {
                let _ = self.watch.failed.set(e.to_string());
                self.watch.finish();
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
