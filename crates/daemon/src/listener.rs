//! Binding the listen address and accepting websocket connections.

use crate::config::ServerConfig;
use crate::connection;
use crate::metrics::{Gauges, Metrics};
use crate::session::SessionRegistry;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;
use exec_server_environment::local::{LocalFileSystem, ReqwestHttpClient};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
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

impl ListenUrl {
    /// Whether only this machine can connect.
    pub fn is_loopback(&self) -> bool {
        match self {
            ListenUrl::WebSocket(addr) => addr.ip().is_loopback(),
        }
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
    /// One HTTP client for the whole server, so its connection pools are shared.
    pub http: Arc<ReqwestHttpClient>,
    pub metrics: Arc<Metrics>,
    /// False once shutdown has begun (`/readyz`).
    pub ready: AtomicBool,
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
        let sessions = SessionRegistry::new(config.session_ttl, config.process.clone())
            .with_max_sessions(config.max_sessions);
        let filesystem = Arc::new(LocalFileSystem::new(config.filesystem.clone()));
        let http = Arc::new(ReqwestHttpClient::new(config.http.clone()));
        Ok(Server {
            listener,
            url,
            state: Arc::new(ServerState {
                config,
                sessions: Arc::new(sessions),
                filesystem,
                http,
                metrics: Arc::new(Metrics::default()),
                ready: AtomicBool::new(true),
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
        state.ready.store(false, Ordering::Relaxed);
        state.sessions.kill_all();
        result
    }

    /// Serves until the listener fails.
    pub async fn serve(self) -> std::io::Result<()> {
        let app = Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
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

/// `GET /healthz`: the process is alive and serving HTTP. Never behind the token.
async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: new sessions are accepted now (false once shutdown began).
async fn readyz(State(state): State<Arc<ServerState>>) -> Response {
    if state.ready.load(Ordering::Relaxed) {
        "ready\n".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    }
}

/// `GET /metrics`: Prometheus text; behind the token when one is configured.
async fn metrics(State(state): State<Arc<ServerState>>, headers: HeaderMap) -> Response {
    if let Err(rejection) = state.config.access.check_token(&headers) {
        return (rejection.status(), rejection.message()).into_response();
    }
    let gauges = Gauges {
        sessions: state.sessions.len() as u64,
        running_processes: state.sessions.running_processes() as u64,
    };
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(gauges),
    )
        .into_response()
}

async fn upgrade(
    State(state): State<Arc<ServerState>>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if let Err(rejection) = state.config.access.admit(&headers) {
        tracing::info!(%peer, ?rejection, "refused a connection");
        return (rejection.status(), rejection.message()).into_response();
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => return e.into_response(),
    };
    if state.metrics.connections_open() >= state.config.max_connections as u64 {
        let message = format!(
            "too many connections: the limit (maxConnections) is {}\n",
            state.config.max_connections
        );
        return (StatusCode::SERVICE_UNAVAILABLE, message).into_response();
    }
    // The websocket layer's hard cap is twice the protocol limit, so a message just over the
    // limit still arrives whole and gets a clean JSON-RPC error instead of a dropped socket.
    let cap = state.config.max_message_bytes.saturating_mul(2);
    ws.max_message_size(cap)
        .max_frame_size(cap)
        .on_upgrade(move |socket| async move {
            let _open = state.metrics.connection_opened();
            connection::serve_websocket(socket, peer.to_string(), state.clone()).await
        })
        .into_response()
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
