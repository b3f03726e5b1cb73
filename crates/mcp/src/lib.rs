//! MCP over the environment: an MCP Streamable HTTP client (on `rmcp`) whose HTTP requests
//! go out through an [`Environment`](exec_server_environment::Environment)'s HTTP capability,
//! so an MCP server that only a remote machine can reach is used from here as if it were
//! local.
//!
//! ```no_run
//! # async fn demo() -> Result<(), exec_server_mcp::McpError> {
//! use exec_server_mcp::{EnvironmentManager, McpClientConfig};
//! // EXEC_SERVER_URL=ws://10.0.0.2:4000 reaches the MCP server from that machine.
//! let manager = EnvironmentManager::from_env();
//! let client = manager.connect_mcp(McpClientConfig::new("http://127.0.0.1:8080/mcp")).await?;
//! for tool in client.list_tools().await? {
//!     println!("{}", tool.name);
//! }
//! client.close().await
//! # }
//! ```

mod client;
mod environment_manager;
mod http_adapter;
mod sse_limit;

pub use client::{McpClient, McpClientConfig, McpError, DEFAULT_TIMEOUT};
pub use environment_manager::{
    EnvironmentChoice, EnvironmentManager, CODEX_EXEC_SERVER_URL_VAR, EXEC_SERVER_URL_VAR,
};
pub use http_adapter::{McpHttpAdapter, McpHttpError};
/// The rmcp this crate is built on, for its model types (`Tool`, `CallToolResult`, ...).
pub use rmcp;
pub use sse_limit::SseEventTooLarge;
