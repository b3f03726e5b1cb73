//! Request handlers, one module per capability. A handler decodes its params, calls the
//! session's local implementation, and queues the reply: nothing more.

mod fs;
pub(crate) mod http;
pub(crate) mod initialize;
mod process;

use crate::metrics::Metrics;
use crate::session::{ConnectionId, Outbound, Session};
use exec_server_environment::local::{LocalFileSystem, ReqwestHttpClient};
use exec_server_protocol::envelope;
use exec_server_protocol::{error_codes, methods, ErrorObject, RequestId};
use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;
use std::sync::Arc;

/// What a handler gets to work with.
pub(crate) struct RequestContext {
    /// The method being served (for metrics).
    pub method: &'static str,
    pub metrics: Arc<Metrics>,
    pub connection: ConnectionId,
    pub session: Arc<Session>,
    pub outbound: Outbound,
    /// The server's one local filesystem, shared by every session (it holds no state).
    pub filesystem: Arc<LocalFileSystem>,
    /// The server's one local HTTP client.
    pub http: Arc<ReqwestHttpClient>,
    /// The connection's streamed HTTP bodies (streams belong to the connection).
    pub http_streams: Arc<http::HttpStreams>,
}

impl RequestContext {
    /// Queues the reply to request `id`.
    pub async fn reply<R: Serialize>(&self, id: &RequestId, result: Result<R, ErrorObject>) {
        let message = match result {
            Ok(result) => {
                self.metrics.replied(self.method, 0);
                envelope::response(id, &result)
            }
            Err(error) => {
                self.metrics.replied(self.method, error.code);
                envelope::error_response(id, &error)
            }
        };
        let _ = self.outbound.send(message).await;
    }
}

type Run = fn(RequestContext, RequestId, Option<Box<RawValue>>) -> BoxFuture<'static, ()>;

pub(crate) struct Handler {
    pub method: &'static str,
    /// Handled in the connection's read loop, in arrival order, instead of in a task. Only
    /// for handlers that never wait long.
    pub inline: bool,
    pub run: Run,
}

/// The handler for a method, or None when the method does not exist.
pub(crate) fn lookup(method: &str) -> Option<Handler> {
    let (inline, run): (bool, Run) = match method {
        methods::PROCESS_START => (false, |c, id, p| Box::pin(process::start(c, id, p))),
        methods::PROCESS_READ => (false, |c, id, p| Box::pin(process::read(c, id, p))),
        methods::PROCESS_WRITE => (true, |c, id, p| Box::pin(process::write(c, id, p))),
        methods::PROCESS_TERMINATE => (true, |c, id, p| Box::pin(process::terminate(c, id, p))),
        // Signal, closeStdin and resize only act or queue work, so they are inline too:
        // calls naming one process apply in arrival order (closeStdin and resize are queued
        // behind earlier writes).
        methods::PROCESS_SIGNAL => (true, |c, id, p| Box::pin(process::signal(c, id, p))),
        methods::PROCESS_CLOSE_STDIN => (true, |c, id, p| Box::pin(process::close_stdin(c, id, p))),
        methods::PROCESS_RESIZE => (true, |c, id, p| Box::pin(process::resize(c, id, p))),
        methods::PROCESS_LIST => (false, |c, id, p| Box::pin(process::list(c, id, p))),
        // Filesystem calls may block on disk for a long time, so each runs in its own task.
        // Two calls on one path are therefore unordered: a client that needs an order (a
        // truncating write before ranged writes) waits for the first reply.
        methods::FS_READ_FILE => (false, |c, id, p| Box::pin(fs::read_file(c, id, p))),
        methods::FS_WRITE_FILE => (false, |c, id, p| Box::pin(fs::write_file(c, id, p))),
        methods::FS_CREATE_DIRECTORY => {
            (false, |c, id, p| Box::pin(fs::create_directory(c, id, p)))
        }
        methods::FS_GET_METADATA => (false, |c, id, p| Box::pin(fs::get_metadata(c, id, p))),
        methods::FS_READ_DIRECTORY => (false, |c, id, p| Box::pin(fs::read_directory(c, id, p))),
        methods::FS_REMOVE => (false, |c, id, p| Box::pin(fs::remove(c, id, p))),
        methods::FS_COPY => (false, |c, id, p| Box::pin(fs::copy(c, id, p))),
        methods::FS_RENAME => (false, |c, id, p| Box::pin(fs::rename(c, id, p))),
        methods::HTTP_REQUEST => (false, |c, id, p| Box::pin(http::request(c, id, p))),
        _ => return None,
    };
    Some(Handler {
        method: methods::known_request(method)?,
        inline,
        run,
    })
}

/// Decodes params; absent or null params decode as `{}`, so a missing field is named.
pub(crate) fn decode<T: DeserializeOwned>(params: Option<Box<RawValue>>) -> Result<T, ErrorObject> {
    let text = match &params {
        Some(raw) if raw.get() != "null" => raw.get(),
        _ => "{}",
    };
    // Params are named. (serde would otherwise read a JSON array as a struct's fields in
    // order, a form the protocol and its schema do not have.)
    if !text.trim_start().starts_with('{') {
        return Err(ErrorObject::new(
            error_codes::INVALID_PARAMS,
            "invalid params: params must be a JSON object",
        ));
    }
    serde_json::from_str(text)
        .map_err(|e| ErrorObject::new(error_codes::INVALID_PARAMS, format!("invalid params: {e}")))
}

/// The error for a request whose session was taken over by a newer connection.
pub(crate) fn resumed_elsewhere() -> ErrorObject {
    ErrorObject::new(
        error_codes::INVALID_REQUEST,
        "session has been resumed by another connection",
    )
}
