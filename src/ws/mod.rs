//! The WebSocket door: `socket` drives one client's socket (reader, writer,
//! heartbeat, flow control), `client` is what the handlers know of that
//! client, `lanes` applies each session's messages in order off the reader,
//! and `handlers` applies each message, through the same operations
//! (`crate::ops`) as the REST handlers.

mod client;
mod handlers;
mod lanes;
mod socket;

use axum::extract::ws::WebSocketUpgrade;
use axum::response::Response;

use crate::app::AppState;
use crate::auth::Owner;
use crate::limits::ClientIp;
use crate::protocol::MAX_MESSAGE_BYTES;

/// Frames up to this size are read (and answered with `MessageTooLarge` when
/// over [`MAX_MESSAGE_BYTES`]); larger ones close the connection.
const HARD_FRAME_LIMIT: usize = 8 * MAX_MESSAGE_BYTES;
const READ_BUFFER: usize = 4 * 1024;

/// Accepts an upgrade the front door has authenticated as `owner`.
pub fn upgrade(
    app: AppState,
    owner: Owner,
    ip: ClientIp,
    host: Option<String>,
    ws: WebSocketUpgrade,
) -> Response {
    let tasks = app.tasks.clone();
    // tungstenite preallocates its read buffer (128 KiB by default) for every
    // connection; client messages are small, and big ones still get room.
    // A page that offers `claude-studio` (beside its token's subprotocol)
    // gets it back, as browsers require when they offered any.
    ws.protocols(["claude-studio"])
        .read_buffer_size(READ_BUFFER)
        .max_message_size(HARD_FRAME_LIMIT)
        .max_frame_size(HARD_FRAME_LIMIT)
        .on_upgrade(move |socket| tasks.track_future(socket::serve(socket, app, owner, ip, host)))
}
