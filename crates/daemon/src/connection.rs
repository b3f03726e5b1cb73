//! One connection: framing, the size limit, handshake gating and dispatch.
//!
//! Ordering rules (SPEC section 10): `initialize` and `initialized` are handled inline, in
//! arrival order. `process/write`, `process/terminate`, `process/signal`,
//! `process/closeStdin` and `process/resize` are also handled inline, because they only act
//! or queue work and must take effect in arrival order. Every other request runs in
//! its own task, so a long-poll `process/read` never blocks the connection. All replies and
//! notifications go through one outbound queue drained by one writer task.

use crate::handlers::http::HttpStreams;
use crate::handlers::{self, RequestContext};
use crate::listener::ServerState;
use crate::session::{ConnectionId, Outbound, Session};
use axum::extract::ws::{Message as WsMessage, WebSocket};
use exec_server_protocol::envelope::{self, UNKNOWN_REQUEST_ID};
use exec_server_protocol::{error_codes, methods, ErrorObject, Message, RequestId};
use futures::{SinkExt, StreamExt};
use serde_json::value::RawValue;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::Instrument;

/// Messages queued for the writer before producers wait (back-pressure on output readers).
const OUTBOUND_QUEUE_MESSAGES: usize = 128;

static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

/// A frame from the peer, whatever the transport.
pub(crate) enum Inbound {
    /// A websocket text frame.
    WsText(axum::extract::ws::Utf8Bytes),
    /// A websocket binary frame (must hold UTF-8 JSON).
    Binary(bytes::Bytes),
    /// One line of a line-delimited transport (stdio).
    Line(String),
    /// A line longer than the transport accepts; it was discarded.
    TooLong,
    /// The peer closed the connection.
    Close,
    /// Pings, pongs: proof of life, nothing to handle.
    Control,
}

/// What the writer sends.
pub(crate) enum Outgoing {
    Text(String),
    Ping,
}

/// Serves one websocket until it closes.
pub(crate) async fn serve_websocket(socket: WebSocket, peer: String, state: Arc<ServerState>) {
    let (sink, stream) = socket.split();
    let sink = sink.with(|outgoing: Outgoing| {
        futures::future::ready(Ok::<_, axum::Error>(match outgoing {
            Outgoing::Text(text) => WsMessage::Text(text.into()),
            Outgoing::Ping => WsMessage::Ping(Default::default()),
        }))
    });
    let stream = stream.map(|frame| match frame {
        Ok(WsMessage::Text(text)) => Ok(Inbound::WsText(text)),
        Ok(WsMessage::Binary(bytes)) => Ok(Inbound::Binary(bytes)),
        Ok(WsMessage::Close(_)) => Ok(Inbound::Close),
        Ok(WsMessage::Ping(_) | WsMessage::Pong(_)) => Ok(Inbound::Control),
        Err(e) => Err(e.to_string()),
    });
    // Websocket peers answer pings, so silence means a dead peer.
    let keepalive = Some(state.config.peer_timeout);
    serve(stream, sink, peer, state, keepalive).await;
}

/// Serves one connection of line-delimited JSON (one message per line) over a reader and a
/// writer: the stdio transport, which SSH carries. There are no pings; the connection lasts
/// until end of input.
pub(crate) async fn serve_lines<R, W>(reader: R, writer: W, peer: String, state: Arc<ServerState>)
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use tokio_util::codec::{FramedRead, FramedWrite, LinesCodec, LinesCodecError};
    let hard_cap = state.config.max_message_bytes.saturating_mul(2);
    let stream =
        FramedRead::new(reader, LinesCodec::new_with_max_length(hard_cap)).map(|line| match line {
            Ok(line) => Ok(Inbound::Line(line)),
            Err(LinesCodecError::MaxLineLengthExceeded) => Ok(Inbound::TooLong),
            Err(LinesCodecError::Io(e)) => Err(e.to_string()),
        });
    let sink = FramedWrite::new(writer, LinesCodec::new()).with(|outgoing: Outgoing| {
        futures::future::ready(match outgoing {
            // Serialized JSON never contains a raw newline, so a message is one line.
            Outgoing::Text(text) => Ok::<_, LinesCodecError>(text),
            // Never sent: this transport runs without keepalive.
            Outgoing::Ping => Ok(String::new()),
        })
    });
    serve(stream, sink, peer, state, None).await;
}

/// Serves one connection over any transport until it closes.
async fn serve<S, K, E>(
    stream: S,
    mut sink: K,
    peer: String,
    state: Arc<ServerState>,
    keepalive: Option<std::time::Duration>,
) where
    S: futures::Stream<Item = Result<Inbound, String>> + Unpin + Send,
    K: futures::Sink<Outgoing, Error = E> + Unpin + Send + 'static,
{
    let (outbound, mut queue) = mpsc::channel::<String>(OUTBOUND_QUEUE_MESSAGES);
    // Without keepalive the timers still need a period; they never fire in practice.
    let peer_timeout = keepalive.unwrap_or(std::time::Duration::from_secs(365 * 24 * 3600));
    let writer = tokio::spawn(async move {
        // Pings let a silent peer be told apart from a dead one (see the read loop).
        let mut ping = tokio::time::interval(peer_timeout / 2);
        ping.reset();
        loop {
            let first = tokio::select! {
                next = queue.recv() => match next {
                    Some(text) => Outgoing::Text(text),
                    None => break,
                },
                _ = ping.tick(), if keepalive.is_some() => Outgoing::Ping,
            };
            let write = async {
                sink.feed(first).await?;
                // Batch whatever else is ready into one flush.
                while let Ok(next) = queue.try_recv() {
                    sink.feed(Outgoing::Text(next)).await?;
                }
                sink.flush().await
            };
            // A peer that stops reading would otherwise hold this task (and, through the
            // bounded queue, the producers) forever.
            match tokio::time::timeout(peer_timeout, write).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return,
            }
        }
        let _ = tokio::time::timeout(peer_timeout, sink.close()).await;
    });

    let connection = Connection::new(state, outbound, peer);
    let span = tracing::info_span!("connection", id = connection.id, peer = %connection.peer);
    read_loop(connection, stream, peer_timeout)
        .instrument(span)
        .await;
    // Once the peer has closed or failed, the connection cannot carry anything more.
    writer.abort();
}

async fn read_loop<S>(mut connection: Connection, mut stream: S, peer_timeout: std::time::Duration)
where
    S: futures::Stream<Item = Result<Inbound, String>> + Unpin,
{
    tracing::debug!("connection opened");
    loop {
        let frame = match tokio::time::timeout(peer_timeout, stream.next()).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(_) => {
                tracing::info!(
                    connection = connection.id,
                    "peer silent for {peer_timeout:?}; dropping it"
                );
                break;
            }
        };
        match frame {
            Ok(Inbound::WsText(text)) => connection.handle_text(text.as_str()).await,
            Ok(Inbound::Line(line)) => {
                // Blank lines between messages are harmless on a line transport.
                if !line.trim().is_empty() {
                    connection.handle_text(&line).await
                }
            }
            Ok(Inbound::Binary(bytes)) => match std::str::from_utf8(&bytes) {
                Ok(text) => connection.handle_text(text).await,
                Err(e) => {
                    connection
                        .malformed(&format!("binary frame is not UTF-8: {e}"))
                        .await
                }
            },
            Ok(Inbound::TooLong) => {
                let limit = connection.state.config.max_message_bytes;
                let error = ErrorObject::new(
                    error_codes::INVALID_REQUEST,
                    format!(
                        "a message exceeded twice the limit of {limit} bytes (maxMessageBytes) \
                         and was discarded"
                    ),
                )
                .with_data(serde_json::json!({ "limit": "maxMessageBytes", "maxBytes": limit }));
                connection.send_error(&UNKNOWN_REQUEST_ID, error).await;
            }
            Ok(Inbound::Close) => break,
            Ok(Inbound::Control) => {}
            Err(e) => {
                tracing::debug!(connection = connection.id, "read failed: {e}");
                break;
            }
        }
        if connection.closing {
            break;
        }
    }
    connection.disconnect();
}

struct Connection {
    id: ConnectionId,
    state: Arc<ServerState>,
    outbound: Outbound,
    peer: String,
    session: Option<Arc<Session>>,
    initialized: bool,
    closing: bool,
    /// HTTP body streams are per connection and end with it.
    http_streams: Arc<HttpStreams>,
    /// The fs requests in flight. Their replies can only go to this connection, so they end
    /// with it: aborting one drops its sandbox helper, which kills it.
    fs_requests: Vec<tokio::task::AbortHandle>,
}

impl Connection {
    fn new(state: Arc<ServerState>, outbound: Outbound, peer: String) -> Self {
        Connection {
            id: NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed),
            state,
            outbound,
            peer,
            session: None,
            initialized: false,
            closing: false,
            http_streams: Arc::default(),
            fs_requests: Vec::new(),
        }
    }

    async fn send(&self, message: String) {
        // Fails only when the writer is gone, i.e. the connection is closing anyway.
        let _ = self.outbound.send(message).await;
    }

    async fn send_error(&self, id: &RequestId, error: ErrorObject) {
        // Errors the connection answers itself (parsing, gating, unknown methods, initialize).
        self.state.metrics.replied("(connection)", error.code);
        self.send(envelope::error_response(id, &error)).await;
    }

    async fn malformed(&self, reason: &str) {
        let error = ErrorObject::new(
            error_codes::INVALID_REQUEST,
            format!(
                "failed to parse websocket JSON-RPC message from {}: {reason}",
                self.peer
            ),
        );
        self.send_error(&UNKNOWN_REQUEST_ID, error).await;
    }

    async fn handle_text(&mut self, text: &str) {
        let limit = self.state.config.max_message_bytes;
        if text.len() > limit {
            let id = Message::sniff_id(text).unwrap_or(UNKNOWN_REQUEST_ID);
            let error = ErrorObject::new(
                error_codes::INVALID_REQUEST,
                format!(
                    "message of {} bytes exceeds the limit of {limit} bytes (maxMessageBytes); \
                     send large files in ranges (fs/readFile offset/length, fs/writeFile offset)",
                    text.len()
                ),
            )
            .with_data(serde_json::json!({ "limit": "maxMessageBytes", "maxBytes": limit }));
            self.send_error(&id, error).await;
            return;
        }
        match Message::parse(text) {
            Err(e) => self.malformed(&e.to_string()).await,
            Ok(Message::Request { id, method, params }) => {
                self.handle_request(id, method, params).await
            }
            Ok(Message::Notification { method, params: _ }) => self.handle_notification(&method),
            Ok(Message::Response { id, .. } | Message::Error { id, .. }) => {
                // The server never sends requests, so there is nothing to match this to.
                tracing::warn!(connection = self.id, %id, "ignoring unexpected response from client");
            }
        }
    }

    fn handle_notification(&mut self, method: &str) {
        if method == methods::INITIALIZED {
            match &self.session {
                Some(session) if session.is_attached_to(self.id) => self.initialized = true,
                // As in the reference: `initialized` out of order is a protocol violation
                // with no id to answer, so the connection is closed.
                _ => {
                    tracing::warn!(
                        connection = self.id,
                        "`initialized` before a successful `initialize`; closing"
                    );
                    self.closing = true;
                }
            }
        } else {
            // Debug, not warn: a client must not be able to flood the logs.
            tracing::debug!(
                connection = self.id,
                method,
                "ignoring unknown notification"
            );
        }
    }

    async fn handle_request(
        &mut self,
        id: RequestId,
        method: String,
        params: Option<Box<RawValue>>,
    ) {
        if method == methods::INITIALIZE {
            let result = self.initialize(params);
            match result {
                Ok(response) => self.send(envelope::response(&id, &response)).await,
                Err(error) => self.send_error(&id, error).await,
            }
            return;
        }
        let Some(handler) = handlers::lookup(&method) else {
            let error = ErrorObject::new(
                error_codes::METHOD_NOT_FOUND,
                format!("exec-server does not implement `{method}`"),
            );
            self.send_error(&id, error).await;
            return;
        };
        let family = methods::family(&method).unwrap_or("exec");
        let Some(session) = self.session.clone() else {
            let message = format!("client must call initialize before using {family} methods");
            self.send_error(&id, ErrorObject::new(error_codes::INVALID_REQUEST, message))
                .await;
            return;
        };
        if !self.initialized {
            let message = format!("client must send initialized before using {family} methods");
            self.send_error(&id, ErrorObject::new(error_codes::INVALID_REQUEST, message))
                .await;
            return;
        }
        if !session.is_attached_to(self.id) {
            self.send_error(&id, handlers::resumed_elsewhere()).await;
            return;
        }
        let context = RequestContext {
            method: handler.method,
            metrics: self.state.metrics.clone(),
            connection: self.id,
            session,
            outbound: self.outbound.clone(),
            filesystem: self.state.filesystem.clone(),
            http: self.state.http.clone(),
            http_streams: self.http_streams.clone(),
        };
        // One span per request: the method and id only, never params (they carry
        // environments, stdin and file contents).
        let span = tracing::debug_span!("request", method = handler.method, %id);
        tracing::debug!(parent: &span, "request");
        if handler.inline {
            (handler.run)(context, id, params).instrument(span).await;
        } else {
            let task = tokio::spawn((handler.run)(context, id, params).instrument(span));
            if methods::family(handler.method) == Some("filesystem") {
                self.fs_requests.retain(|t| !t.is_finished());
                self.fs_requests.push(task.abort_handle());
            }
        }
    }

    fn initialize(
        &mut self,
        params: Option<Box<RawValue>>,
    ) -> Result<exec_server_protocol::initialize::InitializeResponse, ErrorObject> {
        if self.session.is_some() {
            return Err(ErrorObject::new(
                error_codes::INVALID_REQUEST,
                "initialize may only be sent once per connection",
            ));
        }
        let params: exec_server_protocol::initialize::InitializeParams = handlers::decode(params)?;
        let sessions = &self.state.sessions;
        let session = match params.resume_session_id {
            Some(id) => sessions
                .resume(&id, self.id, self.outbound.clone())
                .map_err(|e| ErrorObject::new(error_codes::INVALID_REQUEST, e.to_string()))?,
            None => sessions
                .create(self.id, self.outbound.clone())
                .map_err(|e| e.to_error_object())?,
        };
        tracing::info!(connection = self.id, session = %session.id, client = %params.client_name, "initialized");
        let response = handlers::initialize::response(&self.state.config, &session);
        self.session = Some(session);
        Ok(response)
    }

    fn disconnect(&mut self) {
        self.http_streams.close();
        for request in self.fs_requests.drain(..) {
            request.abort();
        }
        if let Some(session) = self.session.take() {
            self.state.sessions.detach(&session, self.id);
        }
        tracing::debug!(connection = self.id, "connection closed");
    }
}
