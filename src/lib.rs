//! Claude Studio: each user (a person in a browser or an AI agent) gets an
//! isolated Docker container as a workspace, reached three ways.
//!
//! # Module map
//!
//! Layers, top to bottom; a module imports only from layers below it.
//!
//! 1. [`server`]: binds the listener, accepts and serves connections (a
//!    bounded number, idle ones timed out), and shuts down gracefully.
//! 2. [`http`]: the front door every request enters: `route` classifies it
//!    once (resource, session, auth rule, limits), `guard` checks `Host`,
//!    `Origin` and the token, then the route's handler runs.
//! 3. The doors: [`api`] (REST handlers, one file per resource), [`ws`]
//!    (the WebSocket: socket, client, message handlers), [`preview`] (the
//!    live preview's reverse proxy and its console reports) and [`web`]
//!    (the studio page, built into the binary).
//! 4. [`ops`]: the operations both doors offer (create, configure preview,
//!    remove, inspect, commands, files, events), each written once.
//!    [`relay`]: in a fleet, the doors' way to a session another gateway
//!    holds: `http` passes the whole request to that gateway, `link` its
//!    terminal messages over one WebSocket link per client connection and
//!    session; the holder trusts a relay by a proof, an HMAC keyed with
//!    the fleet's secret over the time, the request line and the client
//!    and owner it names.
//! 5. [`app`]: the shared state handlers get: settings, sessions, runtime,
//!    access, limits, metrics, tasks.
//! 6. [`session`]: the session table and its life cycle (create, look up by
//!    owner, remove, expire, re-adopt after a restart, the warm pool).
//! 7. Per session: [`terminal`] (the TTY shell, its replay buffer, and the
//!    fan-out of its output to attached connections with bounded queues),
//!    [`exec`] (commands with exit codes and stdout/stderr apart, bounded
//!    output, timeouts and signals), [`events`] (the session's event log
//!    that outlives a connection: `since`, `GET …/events`), [`watch`] (file
//!    change notifications from one inotify hub).
//! 8. [`runtime`]: the container engine behind the `ContainerRuntime` trait
//!    (`runtime::docker` is the Docker implementation, `runtime::spec` fixes
//!    the hardening every container gets, `runtime::endpoint` reaches a
//!    local or remote engine, `runtime::files` and `runtime::procfs` reach
//!    a container's files, ports and processes through the host's `/proc`
//!    when the engine is on this machine, `runtime::engines` puts a fleet
//!    gateway's own engine and its `--fleet-engine`s behind the one trait:
//!    calls about a container go to the engine that has it, containers are
//!    made on the own engine only); [`store`]: the state store
//!    (what a session keeps across restarts), behind `SessionStore`;
//!    [`fleet`]: the fleet's shared state in Redis (`--store redis://…`):
//!    session records (it is the store then), leases, gateways, replay
//!    tails, the fleet's secret (the rate limits' windows beside them are
//!    `limits`'). Who holds what, and taking over, is `session`'s business.
//! 9. Leaves: [`auth`] (tokens, owners, allowed names and origins, signed
//!    preview access), [`limits`] (the rate limits: N per window, per client
//!    IP, in the fleet's Redis when there is one), [`protocol`] (the messages and checks both doors share),
//!    [`config`], [`error`] (the one error enum, mapping 1:1 to the
//!    documented names), [`metrics`], [`hosts`], [`mime`], [`image`],
//!    [`workspace`], [`clock`].
//!
//! Beside the server: [`cli`], the `claude-studio` subcommands that use a
//! running server as a client (through its public API only).
//!
//! Data flow for a keystroke: WebSocket frame → `ws::socket` →
//! `ws::handlers::input` → `terminal::Terminal::input` → the exec's raw
//! stream. Output goes back the other way: the terminal's pump task reads the
//! exec, decodes UTF-8, records the replay, and queues one frame per client.
//! In a fleet, a message for a session another gateway holds leaves at
//! `ws::handlers::handle_for` through `relay::link` to that gateway, whose
//! output comes back the same way.

pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod error;
pub mod events;
pub mod exec;
pub mod fleet;
pub mod hosts;
pub mod http;
pub mod image;
pub mod limits;
pub mod metrics;
pub mod mime;
pub mod ops;
pub mod preview;
pub mod protocol;
pub mod relay;
pub mod runtime;
pub mod server;
pub mod session;
pub mod store;
pub mod terminal;
pub mod watch;
pub mod web;
pub mod workspace;
pub mod ws;
