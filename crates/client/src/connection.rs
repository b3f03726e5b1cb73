//! `ExecServerClient`: one websocket to a server, JSON-RPC calls with pending-reply tracking,
//! and routing of process notifications to the process they name.

use crate::error::ClientError;
use exec_server_environment::ProcessEvent;
use exec_server_protocol::envelope;
use exec_server_protocol::initialize::{Capabilities, InitializeParams, InitializeResponse};
use exec_server_protocol::process::{ClosedNotification, ExitedNotification, OutputNotification};
use exec_server_protocol::{error_codes, methods, ErrorObject, Message, RequestId};
use futures::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Events buffered per process before the connection's reader waits for the consumer.
pub(crate) const PROCESS_EVENT_QUEUE: usize = 256;

/// Connection settings.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub client_name: String,
    pub connect_timeout: Duration,
    pub initialize_timeout: Duration,
    /// Largest message accepted from the server (matches the server's default limit, with
    /// the same headroom the server gives itself).
    pub max_message_bytes: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            client_name: "exec-server-client".to_owned(),
            connect_timeout: Duration::from_secs(10),
            initialize_timeout: Duration::from_secs(10),
            max_message_bytes: 256 * 1024 * 1024,
        }
    }
}

/// A live connection to an exec-server, after `initialize`/`initialized`. Cheap to clone.
#[derive(Clone)]
pub struct ExecServerClient {
    inner: Arc<ClientInner>,
}

type PendingReply = oneshot::Sender<Result<Box<RawValue>, ClientError>>;

pub(crate) struct ClientInner {
    outbound: mpsc::UnboundedSender<String>,
    next_id: AtomicI64,
    state: Mutex<SharedState>,
    session_id: Mutex<String>,
    capabilities: Mutex<Option<Capabilities>>,
}

#[derive(Default)]
struct SharedState {
    pending: HashMap<i64, PendingReply>,
    routes: HashMap<String, mpsc::Sender<ProcessEvent>>,
    /// Set once the connection is gone; every later call fails with it.
    closed: Option<String>,
}

impl ExecServerClient {
    /// Connects to `url` (`ws://HOST:PORT`) and performs the handshake.
    pub async fn connect(url: &str, options: ClientOptions) -> Result<Self, ClientError> {
        let config = WebSocketConfig::default()
            .max_message_size(Some(options.max_message_bytes))
            .max_frame_size(Some(options.max_message_bytes));
        let connect = tokio_tungstenite::connect_async_with_config(url, Some(config), true);
        let (socket, _) = tokio::time::timeout(options.connect_timeout, connect)
            .await
            .map_err(|_| ClientError::Connect {
                url: url.to_owned(),
                reason: format!("timed out after {:?}", options.connect_timeout),
            })?
            .map_err(|e| ClientError::Connect {
                url: url.to_owned(),
                reason: e.to_string(),
            })?;
        let (mut sink, mut stream) = socket.split();
        let (outbound, mut queue) = mpsc::unbounded_channel::<String>();
        let inner = Arc::new(ClientInner {
            outbound,
            next_id: AtomicI64::new(1),
            state: Mutex::new(SharedState::default()),
            session_id: Mutex::new(String::new()),
            capabilities: Mutex::new(None),
        });

        tokio::spawn(async move {
            while let Some(first) = queue.recv().await {
                if sink.feed(WsMessage::Text(first.into())).await.is_err() {
                    break;
                }
                while let Ok(next) = queue.try_recv() {
                    if sink.feed(WsMessage::Text(next.into())).await.is_err() {
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        });

        let reader_inner = Arc::downgrade(&inner);
        tokio::spawn(async move {
            let reason = loop {
                let frame = match stream.next().await {
                    None => break "the server closed the connection".to_owned(),
                    Some(Err(e)) => break e.to_string(),
                    Some(Ok(frame)) => frame,
                };
                let text = match &frame {
                    WsMessage::Text(t) => t.as_str(),
                    WsMessage::Binary(b) => match std::str::from_utf8(b) {
                        Ok(t) => t,
                        Err(_) => continue,
                    },
                    WsMessage::Close(_) => break "the server closed the connection".to_owned(),
                    _ => continue,
                };
                let Some(inner) = reader_inner.upgrade() else {
                    return;
                };
                inner.dispatch(text).await;
            };
            if let Some(inner) = reader_inner.upgrade() {
                inner.fail_all(&reason);
            }
        });

        let client = ExecServerClient { inner };
        let params = InitializeParams {
            client_name: options.client_name.clone(),
            resume_session_id: None,
        };
        let response: InitializeResponse = tokio::time::timeout(
            options.initialize_timeout,
            client.call(methods::INITIALIZE, &params),
        )
        .await
        .map_err(|_| ClientError::Timeout {
            method: methods::INITIALIZE.to_owned(),
            seconds: options.initialize_timeout.as_secs(),
        })??;
        *client.inner.session_id.lock().expect("lock") = response.session_id;
        *client.inner.capabilities.lock().expect("lock") = response.capabilities;
        client.notify(methods::INITIALIZED, &serde_json::json!({}))?;
        Ok(client)
    }

    /// The session this connection is attached to.
    pub fn session_id(&self) -> String {
        self.inner.session_id.lock().expect("lock").clone()
    }

    /// The server's advertised additions; `None` for a server without them (codex).
    pub fn capabilities(&self) -> Option<Capabilities> {
        self.inner.capabilities.lock().expect("lock").clone()
    }

    /// Sends a request and waits for its reply.
    pub async fn call<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<R, ClientError> {
        let raw = self.call_raw(method, params).await?;
        serde_json::from_str(raw.get()).map_err(|e| ClientError::Decode {
            method: method.to_owned(),
            reason: e.to_string(),
        })
    }

    async fn call_raw<P: Serialize>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<Box<RawValue>, ClientError> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.inner.state();
            if let Some(reason) = &state.closed {
                return Err(ClientError::Transport(reason.clone()));
            }
            state.pending.insert(id, tx);
            // Queued under the lock, so calls made one after another go out in that order.
            let message = envelope::request(&RequestId::Integer(id), method, params);
            if self.inner.outbound.send(message).is_err() {
                state.pending.remove(&id);
                return Err(ClientError::Transport("the writer task is gone".to_owned()));
            }
        }
        rx.await
            .unwrap_or_else(|_| Err(ClientError::Transport("the connection was dropped".into())))
    }

    /// Sends a notification.
    pub fn notify<P: Serialize>(&self, method: &str, params: &P) -> Result<(), ClientError> {
        self.inner
            .outbound
            .send(envelope::notification(method, params))
            .map_err(|_| ClientError::Transport("the writer task is gone".to_owned()))
    }

    /// Registers where the events of `process_id` go. Returns None if a route for it exists
    /// (the process is still live on this connection).
    pub(crate) fn route_process(&self, process_id: &str) -> Option<mpsc::Receiver<ProcessEvent>> {
        let mut state = self.inner.state();
        if state.routes.contains_key(process_id) {
            return None;
        }
        let (tx, rx) = mpsc::channel(PROCESS_EVENT_QUEUE);
        if state.closed.is_none() {
            state.routes.insert(process_id.to_owned(), tx);
        }
        Some(rx)
    }

    pub(crate) fn unroute_process(&self, process_id: &str) {
        self.inner.state().routes.remove(process_id);
    }
}

impl ClientInner {
    fn state(&self) -> MutexGuard<'_, SharedState> {
        self.state.lock().expect("client state lock poisoned")
    }

    async fn dispatch(&self, text: &str) {
        match Message::parse(text) {
            Ok(Message::Response { id, result }) => self.complete(&id, Ok(result)),
            Ok(Message::Error { id, error }) => self.complete(&id, Err(ClientError::Rpc(error))),
            Ok(Message::Notification { method, params }) => {
                let params = params.as_ref().map_or("null", |p| p.get());
                self.route_notification(&method, params).await;
            }
            Ok(Message::Request { id, method, .. }) => {
                let error = ErrorObject::new(
                    error_codes::METHOD_NOT_FOUND,
                    format!("client does not handle `{method}`"),
                );
                let _ = self.outbound.send(envelope::error_response(&id, &error));
            }
            Err(e) => tracing::warn!("ignoring malformed message from exec-server: {e}"),
        }
    }

    fn complete(&self, id: &RequestId, result: Result<Box<RawValue>, ClientError>) {
        let RequestId::Integer(n) = id else {
            return;
        };
        if let Some(tx) = self.state().pending.remove(n) {
            let _ = tx.send(result);
        }
    }

    async fn route_notification(&self, method: &str, params: &str) {
        let (process_id, event) = match method {
            methods::PROCESS_OUTPUT => match serde_json::from_str::<OutputNotification>(params) {
                Ok(n) => (
                    n.process_id,
                    ProcessEvent::Output {
                        seq: n.seq,
                        stream: n.stream,
                        chunk: n.chunk.into_bytes(),
                    },
                ),
                Err(e) => return tracing::warn!("bad {method} notification: {e}"),
            },
            methods::PROCESS_EXITED => match serde_json::from_str::<ExitedNotification>(params) {
                Ok(n) => (
                    n.process_id,
                    ProcessEvent::Exited {
                        seq: n.seq,
                        exit_code: n.exit_code,
                        signal: n.signal,
                    },
                ),
                Err(e) => return tracing::warn!("bad {method} notification: {e}"),
            },
            methods::PROCESS_CLOSED => match serde_json::from_str::<ClosedNotification>(params) {
                Ok(n) => (n.process_id, ProcessEvent::Closed { seq: n.seq }),
                Err(e) => return tracing::warn!("bad {method} notification: {e}"),
            },
            _ => return tracing::debug!(method, "ignoring notification"),
        };
        let closed = matches!(event, ProcessEvent::Closed { .. });
        let route = {
            let mut state = self.state();
            if closed {
                state.routes.remove(&process_id)
            } else {
                state.routes.get(&process_id).cloned()
            }
        };
        if let Some(route) = route {
            // Waiting here is deliberate: a consumer that falls behind slows the socket, and
            // through it the server's reader of that process (back-pressure, nothing lost).
            let _ = route.send(event).await;
        }
    }

    fn fail_all(&self, reason: &str) {
        let mut state = self.state();
        state.closed = Some(reason.to_owned());
        for (_, tx) in state.pending.drain() {
            let _ = tx.send(Err(ClientError::Transport(reason.to_owned())));
        }
        // Dropping the senders ends each process's event stream with a failure.
        state.routes.clear();
    }
}
