//! The exec-server daemon: accepts connections, speaks the JSON-RPC protocol, and serves each
//! request by calling the local implementations of `exec-server-environment`.
//!
//! - [`listener`]: parses the listen URL, binds, prints the bound URL, routes `/healthz`,
//!   `/readyz`, `/metrics` and websocket upgrades.
//! - [`admission`]: the bearer token and browser-origin checks.
//! - [`metrics`]: counters and gauges, in Prometheus text.
//! - `connection`: one task per connection; framing, size limit, handshake gating, dispatch.
//! - `session`: sessions own processes and outlive connections for a TTL.
//! - `handlers`: one module per capability; each decodes params and calls the environment.
//! - [`watchdog`]: a helper process that kills the server's process groups if it dies.

pub mod admission;
pub mod config;
mod connection;
mod handlers;
pub mod listener;
pub mod metrics;
mod session;
mod tls;
pub mod watchdog;

pub use config::ServerConfig;
pub use listener::{ListenUrl, Server, TlsFiles};
