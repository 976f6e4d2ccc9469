//! Claude Studio: each user (a person in a browser or an AI agent) gets an
//! isolated Docker container as a workspace, reached three ways.
//!
//! # Module map
//!
//! - [`server`]: binds the listener, accepts and serves connections (a
//!   bounded number, idle ones timed out), and shuts down gracefully.
//! - [`api`]: the HTTP surface. `api::front` is the one service every
//!   request enters (guard, then preview or rate limits and `api::router`,
//!   which lays out the API's URLs); REST handlers, one file per resource.
//! - [`ws`]: the WebSocket terminal. `protocol` holds the message enums,
//!   `connection` drives one socket (reader, writer, heartbeat, flow control),
//!   `handlers` applies each client message.
//! - [`session`]: the session table and its life cycle: create, look up by
//!   owner, remove, expire on inactivity, re-adopt containers after a restart.
//! - [`terminal`]: one session's TTY shell, its replay buffer, and the fan-out
//!   of its output to attached connections with bounded queues.
//! - [`runtime`]: the container engine behind the `ContainerRuntime` trait;
//!   `runtime::docker` is the Docker implementation, `runtime::spec` fixes the
//!   hardening every container gets.
//! - [`preview`]: the live preview reverse proxy (path- and host-based), the
//!   console-capture script it injects into HTML, and the console reports.
//! - [`workspace`], [`image`]: validation of client-supplied host paths and
//!   image references.
//! - [`auth`]: API tokens and owners, `Host`/`Origin` checks, and signed
//!   preview access; `auth::guard` admits or refuses every request.
//! - [`limits`]: the rate limits (governor GCRA, per client IP) and their
//!   headers; `limits::policy` decides which limits a request counts against.
//! - [`config`]: settings from flags, `STUDIO_*` variables and a TOML file.
//! - [`error`]: the one error enum, mapping 1:1 to the documented names.
//!
//! Data flow for a keystroke: WebSocket frame → `ws::connection` →
//! `ws::handlers::input` → `terminal::Terminal::input` → the exec's raw
//! stream. Output goes back the other way: the terminal's pump task reads the
//! exec, decodes UTF-8, records the replay, and queues one frame per client.

pub mod api;
pub mod app;
pub mod auth;
pub mod config;
pub mod error;
pub mod image;
pub mod limits;
pub mod preview;
pub mod runtime;
pub mod server;
pub mod session;
pub mod terminal;
pub mod workspace;
pub mod ws;
