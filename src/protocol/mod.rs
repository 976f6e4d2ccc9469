//! The values both doors speak, below both of them: REST bodies and
//! WebSocket messages are parsed and checked here, and the server's
//! messages are built here, so the terminal, the preview's console and
//! the REST handlers never depend on the WebSocket module.
//!
//! - `client`: one enum of what WebSocket clients send, strictly parsed.
//! - `server`: one enum of what the server sends.
//! - `validate`: field-naming parsing, terminal sizes, client env.

pub mod client;
pub mod server;
pub mod validate;

pub use client::ClientMessage;
pub use server::ServerMessage;

/// Frames larger than this are answered with `MessageTooLarge`.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
