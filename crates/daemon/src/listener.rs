//! Binding the listen address and accepting websocket connections.

use crate::config::ServerConfig;
use crate::connection;
use crate::session::SessionRegistry;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::serve::ListenerExt;
use axum::Router;
use exec_server_environment::local::LocalFileSystem;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Where to listen. Today: `ws://IP:PORT` (a literal address, IPv4 or `[IPv6]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenUrl {
    WebSocket(SocketAddr),
}

/// A `--listen` value that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ListenUrlError {
    #[error("unsupported --listen URL `{0}`; expected `ws://IP:PORT`")]
    Unsupported(String),
    #[error("invalid websocket --listen URL `{0}`; expected `ws://IP:PORT`")]
    Invalid(String),
}

impl ListenUrl {
    pub const DEFAULT: &'static str = "ws://127.0.0.1:0";

    pub fn parse(url: &str) -> Result<ListenUrl, ListenUrlError> {
        let Some(addr) = url.strip_prefix("ws://") else {
            return Err(ListenUrlError::Unsupported(url.to_owned()));
        };
        let addr = addr.strip_suffix('/').unwrap_or(addr);
        addr.parse::<SocketAddr>()
            .map(ListenUrl::WebSocket)
            .map_err(|_| ListenUrlError::Invalid(url.to_owned()))
    }
}

impl fmt::Display for ListenUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenUrl::WebSocket(addr) => write!(f, "ws://{addr}"),
        }
    }
}

/// Shared by every connection of one server.
pub(crate) struct ServerState {
    pub config: ServerConfig,
    pub sessions: Arc<SessionRegistry>,
    /// One filesystem for the whole server rather than one per session: it has no state of
    /// its own (files outlive sessions anyway), so nothing is gained by separating them.
    pub filesystem: Arc<LocalFileSystem>,
}

/// A bound, not yet serving, server.
pub struct Server {
    listener: TcpListener,
    url: ListenUrl,
    state: Arc<ServerState>,
}

impl Server {
    /// Binds the listen address. The bound URL (with the real port) is [`Server::url`].
    pub async fn bind(listen: &ListenUrl, config: ServerConfig) -> std::io::Result<Server> {
        let ListenUrl::WebSocket(addr) = listen;
        let listener = TcpListener::bind(addr).await?;
        let url = ListenUrl::WebSocket(listener.local_addr()?);
        let sessions = SessionRegistry::new(config.session_ttl, config.process.clone());
        let filesystem = Arc::new(LocalFileSystem::new(config.filesystem.clone()));
        Ok(Server {
            listener,
            url,
            state: Arc::new(ServerState {
                config,
                sessions: Arc::new(sessions),
                filesystem,
            }),
        })
    }

    pub fn url(&self) -> &ListenUrl {
        &self.url
    }

    /// Serves until `shutdown` completes, then kills every process tree of every session.
    pub async fn serve_until(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let state = self.state.clone();
        let result = tokio::select! {
            result = self.serve() => result,
            () = shutdown => Ok(()),
        };
        state.sessions.kill_all();
        result
    }

    /// Serves until the listener fails.
    pub async fn serve(self) -> std::io::Result<()> {
        let app = Router::new()
            .fallback(upgrade)
            .with_state(self.state.clone());
        // Small JSON-RPC replies must not wait for delayed ACKs (Nagle): that stall was 40 ms
        // per call on the April codex server.
        let listener = self.listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::warn!("failed to set TCP_NODELAY: {e}");
            }
        });
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    }
}

async fn upgrade(
    State(state): State<Arc<ServerState>>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>,
    ws: WebSocketUpgrade,
) -> impl IntoResponse {
    // The websocket layer's hard cap is twice the protocol limit, so a message just over the
    // limit still arrives whole and gets a clean JSON-RPC error instead of a dropped socket.
    let cap = state.config.max_message_bytes.saturating_mul(2);
    ws.max_message_size(cap)
        .max_frame_size(cap)
        .on_upgrade(move |socket| connection::serve_websocket(socket, peer.to_string(), state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listen_urls() {
        assert_eq!(
            ListenUrl::parse("ws://127.0.0.1:0").unwrap().to_string(),
            "ws://127.0.0.1:0"
        );
        assert_eq!(
            ListenUrl::parse("ws://[::1]:8080").unwrap().to_string(),
            "ws://[::1]:8080"
        );
        assert!(matches!(
            ListenUrl::parse("http://127.0.0.1:1"),
            Err(ListenUrlError::Unsupported(_))
        ));
        assert!(matches!(
            ListenUrl::parse("ws://localhost:1"),
            Err(ListenUrlError::Invalid(_))
        ));
    }
}
