//! Server settings.

use crate::admission::AccessPolicy;
use exec_server_environment::local::{FsConfig, HttpConfig, ProcessConfig};
use std::time::Duration;

/// Everything a running server is configured with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest inbound message the server will decode. Larger ones get a -32600 naming the
    /// limit; the websocket layer itself accepts up to twice this, so the connection survives.
    pub max_message_bytes: usize,
    /// How long a session whose connection dropped keeps its processes.
    pub session_ttl: Duration,
    /// Per-session process settings (retention, limits).
    pub process: ProcessConfig,
    /// Filesystem settings (the whole-file read limit).
    pub filesystem: FsConfig,
    /// HTTP settings (the buffered response body limit).
    pub http: HttpConfig,
    /// A connection that sends nothing (not even a pong to our pings, sent every half of
    /// this) for this long is dead: it is dropped and its session detached.
    pub peer_timeout: Duration,
    /// Bearer token and allowed browser origins.
    pub access: AccessPolicy,
    /// Most live sessions (attached or detached) at once.
    pub max_sessions: usize,
    /// Most open connections at once.
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_message_bytes: 128 * 1024 * 1024,
            session_ttl: Duration::from_secs(30),
            process: ProcessConfig::default(),
            filesystem: FsConfig::default(),
            http: HttpConfig::default(),
            peer_timeout: Duration::from_secs(20),
            access: AccessPolicy::default(),
            max_sessions: 256,
            max_connections: 512,
        }
    }
}
