use exec_server_protocol::{error_codes, ErrorObject};

/// Why a client call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error("failed to connect to exec-server at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("exec-server did not answer `{method}` within {seconds} s")]
    Timeout { method: String, seconds: u64 },
    /// The server answered with a JSON-RPC error.
    #[error("{0}")]
    Rpc(ErrorObject),
    /// The connection dropped before the reply arrived. The server may or may not have acted
    /// on the request; the client is reconnecting.
    #[error("exec-server connection lost before the reply arrived: {0}")]
    ConnectionLost(String),
    /// The connection is gone for good (closed, or the session could not be resumed).
    #[error("exec-server connection closed: {0}")]
    Transport(String),
    /// The server's reply did not have the expected shape.
    #[error("unexpected reply to `{method}` from exec-server: {reason}")]
    Decode { method: String, reason: String },
}

impl ClientError {
    /// The JSON-RPC error code (-32000 for a closed transport, as codex's client reports).
    pub fn code(&self) -> i64 {
        match self {
            ClientError::Rpc(e) => e.code,
            ClientError::Transport(_)
            | ClientError::ConnectionLost(_)
            | ClientError::Connect { .. }
            | ClientError::Timeout { .. } => error_codes::TRANSPORT_CLOSED,
            ClientError::Decode { .. } => error_codes::INTERNAL_ERROR,
        }
    }
}
