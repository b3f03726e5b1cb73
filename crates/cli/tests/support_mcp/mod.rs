//! A real MCP server for the mcp scenarios: rmcp's Streamable HTTP server on 127.0.0.1
//! (sessions on, as rmcp serves by default), behind a layer that records every HTTP request
//! it answers, so a test can count them and see sessions come and go.
#![allow(dead_code)]

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ProgressNotificationParam, RequestMetaObject};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{schemars, tool, tool_handler, tool_router, ErrorData, Peer, RoleServer, ServerHandler};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

use crate::support::within;

/// One HTTP request as the MCP server saw it, with its response's head.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `POST`, `GET` or `DELETE`.
    pub method: String,
    /// The JSON-RPC method of a POSTed request or notification.
    pub rpc_method: Option<String>,
    /// The `mcp-session-id` the request carried.
    pub session: Option<String>,
    pub status: u16,
    /// The `mcp-session-id` the response handed out.
    pub new_session: Option<String>,
    pub content_type: Option<String>,
}

impl Seen {
    pub fn is_rpc(&self, method: &str) -> bool {
        self.rpc_method.as_deref() == Some(method)
    }
}

#[derive(Default)]
pub struct RequestLog {
    seen: Mutex<Vec<Seen>>,
    /// How many requests have been answered so far.
    answered: watch::Sender<usize>,
}

/// The server; stops serving when dropped.
pub struct McpPeer {
    pub addr: SocketAddr,
    /// The MCP endpoint.
    pub url: String,
    sessions: Arc<LocalSessionManager>,
    log: Arc<RequestLog>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for McpPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl McpPeer {
    pub async fn start() -> McpPeer {
        let sessions = Arc::new(LocalSessionManager::default());
        let service = StreamableHttpService::new(
            || Ok(TestTools::new()),
            sessions.clone(),
            // No keep-alive comments: they would only add noise to the streams.
            StreamableHttpServerConfig::default().with_sse_keep_alive(None),
        );
        let log = Arc::new(RequestLog::default());
        let app = Router::new()
            .nest_service("/mcp", service)
            .layer(axum::middleware::from_fn_with_state(log.clone(), record));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the MCP peer");
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("MCP peer failed");
        });
        McpPeer {
            addr,
            url: format!("http://{addr}/mcp"),
            sessions,
            log,
            task,
        }
    }

    /// Every request answered so far, in the order the responses were sent.
    pub fn seen(&self) -> Vec<Seen> {
        self.log.seen.lock().unwrap().clone()
    }

    /// Drops every session, as a server restart or an idle timeout would: requests that
    /// carry their ids get 404 from now on.
    pub async fn forget_sessions(&self) {
        self.sessions.sessions.write().await.clear();
    }

    /// Waits until `done` holds for the requests answered so far.
    pub async fn wait_until(&self, what: &str, done: impl Fn(&[Seen]) -> bool) {
        let mut answered = self.log.answered.subscribe();
        within(what, async {
            loop {
                if done(&self.seen()) {
                    return;
                }
                answered
                    .changed()
                    .await
                    .expect("the log lives as long as the peer");
            }
        })
        .await
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Records each request once its response's head is ready (an SSE body may go on after).
async fn record(State(log): State<Arc<RequestLog>>, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let session = header(request.headers(), "mcp-session-id");
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 16 << 20)
        .await
        .expect("read the request body");
    let rpc_method = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("method")?.as_str().map(str::to_owned));
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    let seen = Seen {
        method,
        rpc_method,
        session,
        status: response.status().as_u16(),
        new_session: header(response.headers(), "mcp-session-id"),
        content_type: header(response.headers(), "content-type"),
    };
    log.seen.lock().unwrap().push(seen);
    log.answered.send_modify(|n| *n += 1);
    response
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct EchoArgs {
    pub text: String,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct CountArgs {
    /// How many progress notifications to send before the result.
    pub steps: u32,
}

#[derive(Clone)]
pub struct TestTools {
    tool_router: ToolRouter<Self>,
}

impl TestTools {
    fn new() -> Self {
        TestTools {
            tool_router: Self::tool_router(),
        }
    }
}

#[tool_router]
impl TestTools {
    #[tool(description = "Returns its text.")]
    fn echo(&self, Parameters(EchoArgs { text }): Parameters<EchoArgs>) -> String {
        text
    }

    #[tool(description = "Reports progress 1..=steps, then returns `counted <steps>`.")]
    async fn count(
        &self,
        Parameters(CountArgs { steps }): Parameters<CountArgs>,
        meta: RequestMetaObject,
        client: Peer<RoleServer>,
    ) -> Result<String, ErrorData> {
        let token = meta
            .get_progress_token()
            .ok_or_else(|| ErrorData::invalid_params("count needs a progress token", None))?;
        for step in 1..=steps {
            client
                .notify_progress(
                    ProgressNotificationParam::new(token.clone(), f64::from(step))
                        .with_total(f64::from(steps))
                        .with_message(format!("step {step}")),
                )
                .await
                .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        }
        Ok(format!("counted {steps}"))
    }
}

#[tool_handler(name = "exec-server-test-peer", version = "1.0.0")]
impl ServerHandler for TestTools {}
