//! The WebSocket terminal: `protocol` holds the message types, `connection`
//! drives one client, and `handlers` applies each client message.

pub mod connection;
mod handlers;
pub mod protocol;

pub use connection::upgrade;
