//! `McpClient`: a connected MCP client on rmcp's Streamable HTTP transport, with its HTTP
//! going through an environment ([`McpHttpAdapter`]), and a deadline on every operation.

use crate::http_adapter::{McpHttpAdapter, McpHttpError};
use exec_server_environment::HttpClient;
use http::{HeaderName, HeaderValue};
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation,
    JsonObject, ProgressNotificationParam, ProtocolVersion, ServerPeerInfo, Tool,
};
use rmcp::service::{ClientInitializeError, NotificationContext, RunningService};
use rmcp::transport::common::client_side_sse::ExponentialBackoff;
use rmcp::transport::streamable_http_client::{
    StreamableHttpClientTransportConfig, StreamableHttpError,
};
use rmcp::transport::{DynamicTransportError, StreamableHttpClientTransport};
use rmcp::{ClientHandler, RoleClient, ServiceError, ServiceExt};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// The default deadline of one MCP operation (and of each HTTP response's head).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// SSE reconnects: rmcp's default backoff doubles without end and never gives up, so a
/// server that keeps closing the stream would be retried forever. These bound both.
const RECONNECT_ATTEMPTS: usize = 5;
const RECONNECT_FIRST_DELAY: Duration = Duration::from_millis(500);
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(8);

/// Progress notifications buffered per subscriber before the oldest are dropped.
const PROGRESS_BUFFER: usize = 256;

/// How to reach one MCP server.
#[derive(Clone)]
pub struct McpClientConfig {
    /// The Streamable HTTP endpoint, e.g. `http://127.0.0.1:8080/mcp`.
    pub url: String,
    /// Sent as `Authorization: Bearer <token>` on every request.
    pub bearer_token: Option<String>,
    /// Extra headers sent on every request.
    pub headers: HashMap<HeaderName, HeaderValue>,
    /// Deadline of each operation (connect and initialize, list, call, close) and of each
    /// HTTP response's status line.
    pub timeout: Duration,
    /// The protocol version to offer; `None` offers rmcp's latest. A version with the
    /// `initialize` handshake (up to 2025-11-25) gives a session that can expire and be
    /// re-established transparently.
    pub protocol_version: Option<ProtocolVersion>,
}

/// Leaves the token and header values out: they are often credentials.
impl std::fmt::Debug for McpClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpClientConfig")
            .field("url", &self.url)
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "<redacted>"),
            )
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .field("protocol_version", &self.protocol_version)
            .finish()
    }
}

impl McpClientConfig {
    pub fn new(url: impl Into<String>) -> Self {
        McpClientConfig {
            url: url.into(),
            bearer_token: None,
            headers: HashMap::new(),
            timeout: DEFAULT_TIMEOUT,
            protocol_version: None,
        }
    }
}

/// Why an MCP operation failed.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error("the MCP server URL must be an http:// or https:// URL, got {0:?}")]
    InvalidServerUrl(String),
    #[error(
        "no environment is selected (`none`), so no MCP server can be reached; \
         select one with an exec-server URL, or empty for this machine"
    )]
    NoEnvironment,
    // The causes are part of each message and not also `#[source]`, so that printing the
    // error chain does not repeat them. The client's error already names the URL.
    #[error("{error}")]
    ExecServer {
        url: String,
        error: exec_server_client::ClientError,
    },
    #[error("MCP {operation} with {url} timed out after {}s", .timeout.as_secs_f64())]
    Timeout {
        operation: &'static str,
        url: String,
        timeout: Duration,
    },
    /// The handshake failed; `error` is rmcp's, the message names the cause.
    #[error("MCP initialize with {url} failed: {}", initialize_cause(.error))]
    Initialize {
        url: String,
        error: Box<ClientInitializeError>,
    },
    #[error("MCP {operation} with {url} failed: {}", service_cause(.error))]
    Service {
        operation: &'static str,
        url: String,
        error: ServiceError,
    },
}

// rmcp wraps a failed HTTP exchange in two layers that each print the transport's full
// generic type name; the message keeps only what went wrong. The typed error stays in the
// variant for callers that inspect it (an auth challenge, say).
fn initialize_cause(error: &ClientInitializeError) -> String {
    match error {
        ClientInitializeError::TransportError { error, .. } => transport_cause(error),
        other => other.to_string(),
    }
}

fn service_cause(error: &ServiceError) -> String {
    match error {
        ServiceError::TransportSend(error) => transport_cause(error),
        other => other.to_string(),
    }
}

fn transport_cause(error: &DynamicTransportError) -> String {
    match error
        .error
        .downcast_ref::<StreamableHttpError<McpHttpError>>()
    {
        Some(StreamableHttpError::Client(cause)) => cause.to_string(),
        Some(other) => other.to_string(),
        None => error.error.to_string(),
    }
}

/// The client side's handler: identifies the client and passes progress notifications on.
struct McpClientHandler {
    info: ClientConfig,
    progress: broadcast::Sender<ProgressNotificationParam>,
}

impl ClientHandler for McpClientHandler {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        // Nobody listening is fine: progress is advisory.
        let _ = self.progress.send(params);
    }

    fn get_info(&self) -> ClientConfig {
        self.info.clone()
    }
}

/// A connected MCP client. Every operation is bounded by the configured timeout.
pub struct McpClient {
    service: RunningService<RoleClient, McpClientHandler>,
    url: String,
    timeout: Duration,
}

impl McpClient {
    /// Connects to the MCP server at `config.url` with `http` (an environment's HTTP
    /// capability) and runs the `initialize` handshake.
    pub async fn connect(
        http: Arc<dyn HttpClient>,
        config: McpClientConfig,
    ) -> Result<McpClient, McpError> {
        if !(config.url.starts_with("http://") || config.url.starts_with("https://")) {
            return Err(McpError::InvalidServerUrl(config.url));
        }
        let adapter = McpHttpAdapter::new(http, config.timeout);
        let mut transport_config =
            StreamableHttpClientTransportConfig::with_uri(config.url.as_str())
                .custom_headers(config.headers)
                .reinit_on_expired_session(true);
        if let Some(token) = config.bearer_token {
            transport_config = transport_config.auth_header(token);
        }
        let mut backoff = ExponentialBackoff::default();
        backoff.max_times = Some(RECONNECT_ATTEMPTS);
        backoff.base_duration = RECONNECT_FIRST_DELAY;
        backoff.max_delay = Some(RECONNECT_MAX_DELAY);
        transport_config.retry_config = Arc::new(backoff);
        let transport = StreamableHttpClientTransport::with_client(adapter, transport_config);

        let mut info = ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("exec-server-mcp", env!("CARGO_PKG_VERSION")),
        );
        if let Some(version) = config.protocol_version {
            info = info.with_protocol_version(version);
        }
        let (progress, _) = broadcast::channel(PROGRESS_BUFFER);
        let handler = McpClientHandler { info, progress };
        let url = config.url;
        let service = match tokio::time::timeout(config.timeout, handler.serve(transport)).await {
            Ok(Ok(service)) => service,
            Ok(Err(source)) => {
                return Err(McpError::Initialize {
                    url,
                    error: Box::new(source),
                })
            }
            Err(_) => {
                return Err(McpError::Timeout {
                    operation: "initialize",
                    url,
                    timeout: config.timeout,
                })
            }
        };
        Ok(McpClient {
            service,
            url,
            timeout: config.timeout,
        })
    }

    /// What the server said about itself in the `initialize` result.
    pub fn server_info(&self) -> Option<Arc<ServerPeerInfo>> {
        self.service.peer_info()
    }

    /// Progress notifications from now on (every request carries a progress token, so a
    /// server may send them for any call). A slow subscriber loses the oldest ones.
    pub fn progress(&self) -> broadcast::Receiver<ProgressNotificationParam> {
        self.service.service().progress.subscribe()
    }

    /// Every tool of the server (all pages of `tools/list`).
    pub async fn list_tools(&self) -> Result<Vec<Tool>, McpError> {
        self.bounded("tools/list", self.service.list_all_tools())
            .await
    }

    /// Calls one tool. A result with `isError` is the tool's answer, not an `Err`.
    pub async fn call_tool(
        &self,
        name: &str,
        arguments: Option<JsonObject>,
    ) -> Result<CallToolResult, McpError> {
        let mut params = CallToolRequestParams::new(name.to_owned());
        if let Some(arguments) = arguments {
            params = params.with_arguments(arguments);
        }
        self.bounded("tools/call", self.service.call_tool(params))
            .await
    }

    /// Ends the session (DELETE) and stops the transport.
    pub async fn close(self) -> Result<(), McpError> {
        let url = self.url.clone();
        match tokio::time::timeout(self.timeout, self.service.cancel()).await {
            Ok(_) => Ok(()),
            Err(_) => Err(McpError::Timeout {
                operation: "close",
                url,
                timeout: self.timeout,
            }),
        }
    }

    async fn bounded<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, ServiceError>>,
    ) -> Result<T, McpError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(McpError::Service {
                operation,
                url: self.url.clone(),
                error,
            }),
            Err(_) => Err(McpError::Timeout {
                operation,
                url: self.url.clone(),
                timeout: self.timeout,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use exec_server_environment::Environment;

    #[test]
    fn debug_output_leaves_credentials_out() {
        let mut config = McpClientConfig::new("http://127.0.0.1:1/mcp");
        config.bearer_token = Some("secret-token".into());
        config.headers.insert(
            HeaderName::from_static("x-api-key"),
            HeaderValue::from_static("secret-key"),
        );
        let printed = format!("{config:?}");
        assert!(!printed.contains("secret"), "{printed}");
        assert!(
            printed.contains("x-api-key") && printed.contains("<redacted>"),
            "{printed}"
        );
    }

    #[tokio::test]
    async fn only_http_urls_are_mcp_servers() {
        let http = Environment::local().http().clone();
        for url in ["ws://127.0.0.1:1/mcp", "127.0.0.1:1/mcp", ""] {
            let error = McpClient::connect(http.clone(), McpClientConfig::new(url))
                .await
                .err()
                .expect("not an MCP server URL");
            assert!(
                matches!(&error, McpError::InvalidServerUrl(u) if u == url),
                "{error}"
            );
        }
    }
}
