//! The exec-server daemon: accepts connections, speaks the JSON-RPC protocol, and serves each
//! request by calling the local implementations of `exec-server-environment`.
//!
//! - [`listener`]: parses the listen URL, binds, prints the bound URL, accepts websockets.
//! - `connection`: one task per connection; framing, size limit, handshake gating, dispatch.
//! - `session`: sessions own processes and outlive connections for a TTL.
//! - `handlers`: one module per capability; each decodes params and calls the environment.
//! - [`watchdog`]: a helper process that kills the server's process groups if it dies.

pub mod config;
mod connection;
mod handlers;
pub mod listener;
mod session;
pub mod watchdog;

pub use config::ServerConfig;
pub use listener::{ListenUrl, Server};
