//! Binding the listen address and accepting websocket connections.

use crate::config::ServerConfig;
use crate::connection;
use crate::metrics::{Gauges, Metrics};
use crate::session::SessionRegistry;
use crate::tls::TlsListener;
use axum::extract::connect_info::Connected;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::{IncomingStream, Listener};
use axum::Router;
use exec_server_environment::local::{LocalFileSystem, ReqwestHttpClient};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::net::{TcpListener, UnixListener};

/// Where to listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenUrl {
    /// `ws://IP:PORT` (a literal address, IPv4 or `[IPv6]`).
    WebSocket(SocketAddr),
    /// `wss://IP:PORT`, with a certificate and key.
    SecureWebSocket(SocketAddr),
    /// `unix:///path`: a Unix socket, created with mode 0600.
    Unix(PathBuf),
    /// `stdio`: one connection of line-delimited JSON over stdin and stdout.
    Stdio,
}

/// A `--listen` value that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ListenUrlError {
    #[error(
        "unsupported --listen URL `{0}`; expected `ws://IP:PORT`, `wss://IP:PORT`, \
         `unix:///path` or `stdio`"
    )]
    Unsupported(String),
    #[error("invalid --listen URL `{0}`; expected `ws://IP:PORT` with a literal IP address")]
    Invalid(String),
}

impl ListenUrl {
    pub const DEFAULT: &'static str = "ws://127.0.0.1:0";

    pub fn parse(url: &str) -> Result<ListenUrl, ListenUrlError> {
        if url == "stdio" || url == "stdio://" {
            return Ok(ListenUrl::Stdio);
        }
        if let Some(path) = url.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(ListenUrlError::Invalid(url.to_owned()));
            }
            return Ok(ListenUrl::Unix(PathBuf::from(path)));
        }
        let (secure, addr) = if let Some(addr) = url.strip_prefix("ws://") {
            (false, addr)
        } else if let Some(addr) = url.strip_prefix("wss://") {
            (true, addr)
        } else {
            return Err(ListenUrlError::Unsupported(url.to_owned()));
        };
        let addr = addr.strip_suffix('/').unwrap_or(addr);
        let addr = addr
            .parse::<SocketAddr>()
            .map_err(|_| ListenUrlError::Invalid(url.to_owned()))?;
        Ok(if secure {
            ListenUrl::SecureWebSocket(addr)
        } else {
            ListenUrl::WebSocket(addr)
        })
    }

    /// Whether only this machine can connect.
    pub fn is_loopback(&self) -> bool {
        match self {
            ListenUrl::WebSocket(addr) | ListenUrl::SecureWebSocket(addr) => {
                addr.ip().is_loopback()
            }
            // File permissions guard the socket; stdio is whoever started us (ssh).
            ListenUrl::Unix(_) | ListenUrl::Stdio => true,
        }
    }
}

impl fmt::Display for ListenUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenUrl::WebSocket(addr) => write!(f, "ws://{addr}"),
            ListenUrl::SecureWebSocket(addr) => write!(f, "wss://{addr}"),
            ListenUrl::Unix(path) => write!(f, "unix://{}", path.display()),
            ListenUrl::Stdio => f.write_str("stdio"),
        }
    }
}

/// How a connection's peer is named in logs and error messages.
#[derive(Debug, Clone)]
pub struct PeerLabel(pub String);

/// A TCP listener that sets TCP_NODELAY on every connection: small JSON-RPC replies must
/// not wait for delayed ACKs (Nagle), a stall of 40 ms per call on the April codex server.
pub(crate) struct NodelayListener(TcpListener);

impl Listener for NodelayListener {
    type Io = tokio::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (tcp, addr) = Listener::accept(&mut self.0).await;
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!("failed to set TCP_NODELAY: {e}");
        }
        (tcp, addr)
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Listener::local_addr(&self.0)
    }
}

impl Connected<IncomingStream<'_, NodelayListener>> for PeerLabel {
    fn connect_info(stream: IncomingStream<'_, NodelayListener>) -> Self {
        PeerLabel(stream.remote_addr().to_string())
    }
}

impl Connected<IncomingStream<'_, UnixListener>> for PeerLabel {
    fn connect_info(_: IncomingStream<'_, UnixListener>) -> Self {
        PeerLabel("unix socket".to_owned())
    }
}

/// TLS settings for `wss://`.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
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

/// What the server accepts connections on.
enum Endpoint {
    Tcp(TcpListener),
    Tls(TlsListener),
    Unix(UnixListener, PathBuf),
    Stdio,
}

/// A bound, not yet serving, server.
pub struct Server {
    endpoint: Endpoint,
    url: ListenUrl,
    state: Arc<ServerState>,
}

impl Server {
    /// Binds the listen address. The bound URL (with the real port) is [`Server::url`].
    pub async fn bind(
        listen: &ListenUrl,
        config: ServerConfig,
        tls: Option<&TlsFiles>,
    ) -> std::io::Result<Server> {
        let (endpoint, url) = match listen {
            ListenUrl::WebSocket(addr) => {
                let listener = TcpListener::bind(addr).await?;
                let url = ListenUrl::WebSocket(listener.local_addr()?);
                (Endpoint::Tcp(listener), url)
            }
            ListenUrl::SecureWebSocket(addr) => {
                let tls = tls.ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "wss:// needs a certificate and a key: pass --tls-cert and --tls-key",
                    )
                })?;
                let acceptor = crate::tls::acceptor(&tls.cert, &tls.key)?;
                let listener = TcpListener::bind(addr).await?;
                let url = ListenUrl::SecureWebSocket(listener.local_addr()?);
                (Endpoint::Tls(TlsListener::new(listener, acceptor)?), url)
            }
            ListenUrl::Unix(path) => {
                let listener = bind_unix(path)?;
                (Endpoint::Unix(listener, path.clone()), listen.clone())
            }
            ListenUrl::Stdio => (Endpoint::Stdio, ListenUrl::Stdio),
        };
        let sessions = SessionRegistry::new(config.session_ttl, config.process.clone())
            .with_max_sessions(config.max_sessions);
        let filesystem = Arc::new(LocalFileSystem::new(config.filesystem.clone()));
        let http = Arc::new(ReqwestHttpClient::new(config.http.clone()));
        Ok(Server {
            endpoint,
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

    /// Serves until `shutdown` completes (or, for stdio, until the one connection ends),
    /// then kills every process tree of every session.
    pub async fn serve_until(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let state = self.state.clone();
        let socket_path = match &self.url {
            ListenUrl::Unix(path) => Some(path.clone()),
            _ => None,
        };
        let result = tokio::select! {
            result = self.serve() => result,
            () = shutdown => Ok(()),
        };
        state.ready.store(false, Ordering::Relaxed);
        state.sessions.kill_all();
        if let Some(path) = socket_path {
            let _ = std::fs::remove_file(path);
        }
        result
    }

    /// Serves until the listener fails (or the stdio connection ends).
    pub async fn serve(self) -> std::io::Result<()> {
        let app = Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .fallback(upgrade)
            .with_state(self.state.clone());
        let service = app.into_make_service_with_connect_info::<PeerLabel>();
        match self.endpoint {
            Endpoint::Tcp(listener) => axum::serve(NodelayListener(listener), service).await,
            Endpoint::Tls(listener) => axum::serve(listener, service).await,
            Endpoint::Unix(listener, path) => {
                let result = axum::serve(listener, service).await;
                let _ = std::fs::remove_file(path);
                result
            }
            Endpoint::Stdio => {
                connection::serve_lines(
                    tokio::io::stdin(),
                    tokio::io::stdout(),
                    "stdio".to_owned(),
                    self.state.clone(),
                )
                .await;
                Ok(())
            }
        }
    }
}

/// Binds a Unix socket that only this user can connect to. A stale socket file left by a
/// dead server is replaced; a live one is an error.
fn bind_unix(path: &Path) -> std::io::Result<UnixListener> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{} is in use by a running server", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    // The umask makes the socket 0600 from the moment it exists; chmod afterwards would
    // leave a window in which others could connect.
    // SAFETY: umask only sets the process's file mode creation mask.
    let previous = unsafe { libc::umask(0o177) };
    let listener = UnixListener::bind(path);
    // SAFETY: as above.
    unsafe { libc::umask(previous) };
    listener
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
    axum::extract::ConnectInfo(PeerLabel(peer)): axum::extract::ConnectInfo<PeerLabel>,
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
            connection::serve_websocket(socket, peer, state.clone()).await
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
