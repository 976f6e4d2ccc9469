//! The pump: reads the shell's raw output, decodes it into text without
//! splitting characters, batches floods (see `coalesce`), records the
//! replay, and hands one `output` frame to every attached client; when the
//! shell ends, its `exit`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use futures_util::FutureExt;
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use super::coalesce::Burst;
use super::utf8::Utf8Decoder;
use super::{Terminal, READ_CHUNK, SMALL_READ};
use crate::protocol::ServerMessage;
use crate::runtime::exit::signal_name;

impl Terminal {
    pub(super) async fn pump(
        self: Arc<Self>,
        exec_id: String,
        mut output: std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>,
        done: CancellationToken,
    ) {
        let mut decoder = Utf8Decoder::new();
        let mut burst = Burst::new(Instant::now());
        // An idle shell holds only a small buffer; a busy one reads in large
        // chunks (fewer, bigger messages) until it quiets down again.
        let mut small = [0u8; SMALL_READ];
        let mut big: Option<Vec<u8>> = None;
        loop {
            let buf: &mut [u8] = match big.as_mut() {
                Some(b) => b,
                None => &mut small,
            };
            let cap = buf.len();
            let n = tokio::select! {
                _ = self.stop.cancelled() => { done.cancel(); return; }
                n = output.read(buf) => n,
            };
            let mut n = match n {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let first_read = Instant::now();
            let flowing = burst.linger(first_read);
            let busy = flowing.is_some();
            // Output that answers input goes out as it comes.
            let answers_input = self.input_pending.take();
            let linger = flowing.filter(|_| !answers_input);
            burst.record(n, first_read);
            // Take whatever else has already arrived, without waiting, so a
            // flood goes out in few large messages rather than many small ones;
            // while output flows fast, also wait a little for more (see
            // `coalesce`).
            let mut ended = false;
            while n < cap {
                let more = match (output.read(&mut buf[n..]).now_or_never(), linger) {
                    (Some(result), _) => result,
                    (None, Some(wait)) => {
                        match tokio::time::timeout_at(
                            (first_read + wait).into(),
                            output.read(&mut buf[n..]),
                        )
                        .await
                        {
                            Ok(result) => result,
                            Err(_) => break,
                        }
                    }
                    (None, None) => break,
                };
                match more {
                    Ok(0) | Err(_) => {
                        ended = true;
                        break;
                    }
                    Ok(m) => {
                        burst.record(m, Instant::now());
                        n += m;
                    }
                }
            }
            let text = decoder.decode(&buf[..n]);
            if (n == cap || busy) && big.is_none() {
                big = Some(vec![0u8; READ_CHUNK]);
            } else if n < SMALL_READ && !busy && big.is_some() {
                big = None;
            }
            if !text.is_empty() {
                self.send_output(&text).await;
            }
            if ended {
                break;
            }
        }
        let tail = decoder.finish();
        if !tail.is_empty() {
            self.send_output(&tail).await;
        }
        done.cancel();
        let code = self.exit_code(&exec_id).await;
        self.publish(&ServerMessage::Exit {
            session_id: &self.session_id,
            code,
            signal: code.and_then(signal_name),
        })
        .await;
    }

    /// The engine may report the exec as running for a moment after its
    /// stream ends; ask a few times.
    async fn exit_code(&self, exec_id: &str) -> Option<i64> {
        for _ in 0..50 {
            match self.runtime.shell_exit_code(exec_id).await {
                Ok(Some(code)) => return Some(code),
                Ok(None) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(_) => return None,
            }
        }
        None
    }

    async fn send_output(&self, text: &str) {
        let frame: Utf8Bytes = ServerMessage::Output {
            session_id: &self.session_id,
            data: text,
            replay: None,
        }
        .to_text()
        .into();
        let mut shared = self.shared.lock().await;
        shared.replay.push(text);
        shared.subscribers.send(frame).await;
        self.count_attached(&shared);
    }
}
