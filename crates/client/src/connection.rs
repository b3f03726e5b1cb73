//! `ExecServerClient`: a connection to an exec-server that survives drops.
//!
//! It owns one websocket *link* at a time. Calls register a pending reply and go out on the
//! current link; the link's reader completes them and routes process notifications to the
//! process they name (see `routing`). When a link drops, calls in flight on it fail with
//! [`ClientError::ConnectionLost`], and the client reconnects with bounded backoff, resumes
//! its session (`initialize {resumeSessionId}`), and has every live process catch up from the
//! last seq it delivered, so a process's event stream sees every event exactly once, in order.
//! If the session expired meanwhile, everything fails with a message saying so.

use crate::error::ClientError;
use crate::remote_http::HttpBodyRoutes;
use crate::routing::{Route, RouteTable};
use crate::transport::{self, Outgoing};
use exec_server_environment::ProcessEvent;
use exec_server_protocol::envelope;
use exec_server_protocol::http::BodyDeltaNotification;
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
use tokio::sync::{mpsc, oneshot, watch};

/// Connection settings.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub client_name: String,
    pub connect_timeout: Duration,
    pub initialize_timeout: Duration,
    /// Largest message accepted from the server (the server's default limit, with the same
    /// headroom the server gives itself).
    pub max_message_bytes: usize,
    /// Reconnect and resume the session after a dropped connection.
    pub reconnect: ReconnectPolicy,
    /// How often to ping the server, and how long a silent server is given before the link
    /// counts as dead and is replaced.
    pub ping_interval: Duration,
    pub pong_timeout: Duration,
    /// Bearer token sent on the websocket upgrade. `connect_environment` reads it from
    /// EXEC_SERVER_TOKEN.
    pub token: Option<String>,
    /// For `wss://`: trust this PEM certificate (a self-signed server's) instead of the
    /// system's roots.
    pub tls_root_certificate: Option<std::path::PathBuf>,
    /// For `ssh://`: the program to run on the far side.
    pub ssh_remote_command: String,
    /// Attach to this existing session (`initialize {resumeSessionId}`) instead of starting a
    /// new one, as `exec-server attach` does after a client left its processes running.
    /// While the server still counts the session attached to the connection that left (it
    /// has not noticed the close yet), the handshake is retried as `reconnect` allows.
    pub resume_session_id: Option<String>,
}

/// How hard to try to get a dropped connection back.
#[derive(Debug, Clone)]
pub struct ReconnectPolicy {
    /// Attempts before giving up; 0 disables reconnecting.
    pub max_attempts: u32,
    /// Delay before the second attempt (the first is immediate); doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            max_attempts: 20,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_secs(1),
        }
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            client_name: "exec-server-client".to_owned(),
            connect_timeout: Duration::from_secs(10),
            initialize_timeout: Duration::from_secs(10),
            max_message_bytes: 256 * 1024 * 1024,
            reconnect: ReconnectPolicy::default(),
            ping_interval: Duration::from_secs(10),
            pong_timeout: Duration::from_secs(20),
            token: None,
            tls_root_certificate: None,
            ssh_remote_command: "exec-server".to_owned(),
            resume_session_id: None,
        }
    }
}

impl ClientOptions {
    /// The defaults, with the bearer token from `EXEC_SERVER_TOKEN` (trimmed; unset or empty
    /// means none), as the `exec-server` commands use them.
    pub fn from_env() -> Self {
        ClientOptions {
            token: std::env::var("EXEC_SERVER_TOKEN")
                .ok()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty()),
            ..ClientOptions::default()
        }
    }
}

/// What the client's connection is doing (see [`ExecServerClient::watch_connection`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionState {
    Connected,
    /// The link dropped; the client is trying to resume its session.
    Reconnecting,
    /// Gone for good, for this reason; every call fails.
    Closed(String),
}

/// Reports the changes of a client's [`ConnectionState`], so a user can be told that the
/// connection dropped while it is being resumed, not only when that fails.
pub struct ConnectionWatch(watch::Receiver<Link>);

impl ConnectionWatch {
    /// The next state, once it changes; None once the client is gone.
    pub async fn changed(&mut self) -> Option<ConnectionState> {
        self.0.changed().await.ok()?;
        let state = match &*self.0.borrow_and_update() {
            Link::Up { .. } => ConnectionState::Connected,
            Link::Reconnecting => ConnectionState::Reconnecting,
            Link::Down(reason) => ConnectionState::Closed(reason.clone()),
        };
        Some(state)
    }
}

/// A connection to an exec-server, after `initialize`/`initialized`. Cheap to clone.
#[derive(Clone)]
pub struct ExecServerClient {
    inner: Arc<ClientInner>,
}

type PendingReply = oneshot::Sender<Result<Box<RawValue>, ClientError>>;

/// The state of the client's connection.
#[derive(Clone)]
enum Link {
    Up {
        generation: u64,
        outbound: mpsc::UnboundedSender<Outgoing>,
    },
    Reconnecting,
    /// Gone for good; every call fails with this reason.
    Down(String),
}

pub(crate) struct ClientInner {
    url: String,
    options: ClientOptions,
    next_id: AtomicI64,
    link: watch::Sender<Link>,
    state: Mutex<SharedState>,
    pub(crate) routes: RouteTable,
    http_routes: HttpBodyRoutes,
}

#[derive(Default)]
struct SharedState {
    /// Pending replies, with the generation of the link the request went out on.
    pending: HashMap<i64, (u64, PendingReply)>,
    session_id: String,
    capabilities: Option<Capabilities>,
    /// The server sent codex's `environmentInfo` (so it honours `sandbox` on starts).
    environment_info: bool,
    generation: u64,
    /// Links known to be dead (see `open_link`).
    lost_generations: std::collections::BTreeSet<u64>,
}

impl ExecServerClient {
    /// Connects to `url` (`ws://HOST:PORT`) and performs the handshake, starting a new
    /// session or resuming `options.resume_session_id`.
    pub async fn connect(url: &str, options: ClientOptions) -> Result<Self, ClientError> {
        let resume = options.resume_session_id.clone();
        let inner = Arc::new(ClientInner {
            url: url.to_owned(),
            options,
            next_id: AtomicI64::new(1),
            link: watch::Sender::new(Link::Reconnecting),
            state: Mutex::new(SharedState::default()),
            routes: RouteTable::default(),
            http_routes: HttpBodyRoutes::default(),
        });
        match resume {
            None => inner.open_link(None).await?,
            Some(session_id) => inner.resume_first_link(session_id).await?,
        }
        Ok(ExecServerClient { inner })
    }

    /// The session this client is attached to.
    pub fn session_id(&self) -> String {
        self.inner.state().session_id.clone()
    }

    /// The server's advertised additions; `None` for a server without them (codex).
    pub fn capabilities(&self) -> Option<Capabilities> {
        self.inner.state().capabilities.clone()
    }

    /// Whether the server enforces `sandbox` on `process/start`: this server when it
    /// advertises `processSandbox`, and codex's newer servers (which send `environmentInfo`).
    /// An April codex server would ignore the field and run the command unconfined.
    pub fn enforces_process_sandbox(&self) -> bool {
        let state = self.inner.state();
        state.environment_info
            || state
                .capabilities
                .as_ref()
                .is_some_and(|c| c.features.process_sandbox)
    }

    /// Sends a request and waits for its reply. If the connection drops first, the call fails
    /// with [`ClientError::ConnectionLost`]: the server may or may not have acted on it.
    pub async fn call<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<R, ClientError> {
        self.inner.call(method, params).await
    }

    /// Like [`call`](Self::call), for requests that are safe to repeat: retried on the new
    /// connection when the old one drops.
    pub async fn call_idempotent<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<R, ClientError> {
        loop {
            match self.inner.call(method, params).await {
                // Let the reader notice the loss and replace the link before retrying.
                Err(ClientError::ConnectionLost(_)) => tokio::task::yield_now().await,
                other => return other,
            }
        }
    }

    /// Sends a notification on the current connection.
    pub fn notify<P: Serialize>(&self, method: &str, params: &P) -> Result<(), ClientError> {
        match &*self.inner.link.borrow() {
            Link::Up { outbound, .. } => outbound
                .send(Outgoing::Text(envelope::notification(method, params)))
                .map_err(|_| ClientError::ConnectionLost("the writer task is gone".into())),
            Link::Reconnecting => Err(ClientError::ConnectionLost("reconnecting".into())),
            Link::Down(reason) => Err(ClientError::Transport(reason.clone())),
        }
    }

    /// Follows the connection's state from now on.
    pub fn watch_connection(&self) -> ConnectionWatch {
        let mut receiver = self.inner.link.subscribe();
        receiver.mark_unchanged();
        ConnectionWatch(receiver)
    }

    /// Drops the current connection as if the network had failed (for tests and tools that
    /// exercise resume). The client reconnects as configured.
    pub fn drop_connection(&self) {
        let generation = match &*self.inner.link.borrow() {
            Link::Up { generation, .. } => *generation,
            _ => return,
        };
        self.inner
            .clone()
            .connection_lost(generation, "dropped on request".to_owned());
    }

    /// Registers where the events of `process_id` go, starting at seq 1. None if a route for
    /// it exists (the process is still live on this client).
    pub(crate) fn route_process(&self, process_id: &str) -> Option<mpsc::Receiver<ProcessEvent>> {
        if let Link::Down(_) = &*self.inner.link.borrow() {
            // Nothing will ever arrive: hand out a closed stream, the call itself will fail.
            let (_, rx) = mpsc::channel(1);
            return Some(rx);
        }
        self.inner.routes.add(process_id)
    }

    pub(crate) fn unroute_process(&self, process_id: &str) {
        self.inner.routes.remove(process_id);
    }

    /// Has the route of `process_id` read everything it has not delivered yet (all of the
    /// retained output, for a route just added), in the background.
    pub(crate) fn catch_up_process(&self, process_id: &str) {
        if let Some(route) = self.inner.routes.get(process_id) {
            self.inner.catch_up(process_id.to_owned(), route);
        }
    }

    /// A `requestId` for `http/request`, unique for the life of this client.
    pub(crate) fn next_http_request_id(&self) -> String {
        self.inner.http_routes.next_id()
    }

    /// Registers where the `bodyDelta`s of `request_id` go.
    pub(crate) fn route_http_body(
        &self,
        request_id: &str,
    ) -> mpsc::Receiver<BodyDeltaNotification> {
        if let Link::Down(_) = &*self.inner.link.borrow() {
            // Nothing will ever arrive: hand out a closed stream, the call itself will fail.
            let (_, rx) = mpsc::channel(1);
            return rx;
        }
        self.inner.http_routes.add(request_id)
    }

    pub(crate) fn unroute_http_body(&self, request_id: &str) {
        self.inner.http_routes.remove(request_id);
    }
}

impl ClientInner {
    fn state(&self) -> MutexGuard<'_, SharedState> {
        self.state.lock().expect("client state lock poisoned")
    }

    /// Waits for an usable link (while reconnecting), or fails if there will be none.
    async fn current_link(&self) -> Result<(u64, mpsc::UnboundedSender<Outgoing>), ClientError> {
        let mut watch = self.link.subscribe();
        loop {
            match &*watch.borrow_and_update() {
                Link::Up {
                    generation,
                    outbound,
                } => return Ok((*generation, outbound.clone())),
                Link::Down(reason) => return Err(ClientError::Transport(reason.clone())),
                Link::Reconnecting => {}
            }
            if watch.changed().await.is_err() {
                return Err(ClientError::Transport("the client is gone".into()));
            }
        }
    }

    pub(crate) async fn call<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<R, ClientError> {
        let (generation, outbound) = self.current_link().await?;
        let raw = self.call_on(generation, &outbound, method, params).await?;
        serde_json::from_str(raw.get()).map_err(|e| ClientError::Decode {
            method: method.to_owned(),
            reason: e.to_string(),
        })
    }

    async fn call_on<P: Serialize>(
        &self,
        generation: u64,
        outbound: &mpsc::UnboundedSender<Outgoing>,
        method: &str,
        params: &P,
    ) -> Result<Box<RawValue>, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.state();
            if state.lost_generations.contains(&generation) {
                return Err(ClientError::ConnectionLost("the connection closed".into()));
            }
            state.pending.insert(id, (generation, tx));
            // Queued under the lock, so calls made one after another go out in that order.
            let message = envelope::request(&RequestId::Integer(id), method, params);
            if outbound.send(Outgoing::Text(message)).is_err() {
                state.pending.remove(&id);
                return Err(ClientError::ConnectionLost("the connection closed".into()));
            }
        }
        rx.await
            .unwrap_or_else(|_| Err(ClientError::ConnectionLost("the reply was dropped".into())))
    }

    /// Opens a websocket, performs the handshake (resuming `resume` if given), and makes it
    /// the current link.
    async fn open_link(self: &Arc<Self>, resume: Option<String>) -> Result<(), ClientError> {
        let options = &self.options;
        let (mut sink, mut stream) =
            tokio::time::timeout(options.connect_timeout, transport::open(&self.url, options))
                .await
                .map_err(|_| ClientError::Connect {
                    url: self.url.clone(),
                    reason: format!("timed out after {:?}", options.connect_timeout),
                })??;
        let (outbound, mut queue) = mpsc::unbounded_channel::<Outgoing>();
        let generation = {
            let mut state = self.state();
            state.generation += 1;
            state.generation
        };

        let ping_interval = options.ping_interval;
        tokio::spawn(async move {
            let mut ping = tokio::time::interval(ping_interval);
            ping.reset();
            loop {
                let first = tokio::select! {
                    next = queue.recv() => match next {
                        Some(message) => message,
                        None => break,
                    },
                    _ = ping.tick() => Outgoing::Ping,
                };
                let mut batch = vec![first];
                while let Ok(next) = queue.try_recv() {
                    batch.push(next);
                }
                for message in batch {
                    if sink.feed(message).await.is_err() {
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
            let _ = sink.close().await;
        });

        let weak = Arc::downgrade(self);
        // A link without keepalive may be silent for as long as nothing happens.
        let pong_timeout = if transport::has_keepalive(&self.url) {
            options.pong_timeout
        } else {
            Duration::from_secs(365 * 24 * 3600)
        };
        tokio::spawn(async move {
            let reason = loop {
                let frame = match tokio::time::timeout(pong_timeout, stream.next()).await {
                    Err(_) => {
                        break format!("no answer from exec-server for {}s", pong_timeout.as_secs())
                    }
                    Ok(None) => break "the server closed the connection".to_owned(),
                    Ok(Some(Err(e))) => break e.to_string(),
                    Ok(Some(Ok(frame))) => frame,
                };
                let Some(text) = frame else {
                    continue;
                };
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                inner.dispatch(&text).await;
            };
            if let Some(inner) = weak.upgrade() {
                inner.connection_lost(generation, reason);
            }
        });

        let params = InitializeParams {
            client_name: options.client_name.clone(),
            resume_session_id: resume,
        };
        let handshake = async {
            let raw = self
                .call_on(generation, &outbound, methods::INITIALIZE, &params)
                .await?;
            serde_json::from_str::<InitializeResponse>(raw.get()).map_err(|e| ClientError::Decode {
                method: methods::INITIALIZE.to_owned(),
                reason: e.to_string(),
            })
        };
        let response = match tokio::time::timeout(options.initialize_timeout, handshake).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => {
                drop(outbound);
                return Err(e);
            }
            Err(_) => {
                return Err(ClientError::Timeout {
                    method: methods::INITIALIZE.to_owned(),
                    seconds: options.initialize_timeout.as_secs(),
                })
            }
        };
        let initialized = envelope::notification(methods::INITIALIZED, &serde_json::json!({}));
        outbound
            .send(Outgoing::Text(initialized))
            .map_err(|_| ClientError::ConnectionLost("the connection closed".into()))?;
        let mut state = self.state();
        // The link may have died after its handshake answered but before it is installed;
        // `connection_lost` then saw no current link and did not reconnect. Installing it
        // would leave a dead link marked up, so fail instead and let the caller retry. (The
        // check and the install happen under the lock `connection_lost` takes.)
        if state.lost_generations.contains(&generation) {
            return Err(ClientError::ConnectionLost(
                "the connection dropped during the handshake".into(),
            ));
        }
        state.session_id = response.session_id;
        state.capabilities = response.capabilities;
        state.environment_info = response.environment_info.is_some();
        self.link.send_replace(Link::Up {
            generation,
            outbound,
        });
        Ok(())
    }

    /// The first link of a client that resumes `session_id`. A session whose previous client
    /// just went away may still count as attached until the server notices the close, so
    /// that answer is retried with the reconnect backoff; any other failure is final.
    async fn resume_first_link(self: &Arc<Self>, session_id: String) -> Result<(), ClientError> {
        let policy = &self.options.reconnect;
        let mut backoff = policy.initial_backoff;
        let mut attempt = 0;
        loop {
            match self.open_link(Some(session_id.clone())).await {
                Err(ClientError::Rpc(e))
                    if e.message.contains("is already attached")
                        && attempt + 1 < policy.max_attempts =>
                {
                    attempt += 1;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(policy.max_backoff);
                }
                other => return other,
            }
        }
    }

    async fn dispatch(self: &Arc<Self>, text: &str) {
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
                if let Link::Up { outbound, .. } = &*self.link.borrow() {
                    let _ = outbound.send(Outgoing::Text(envelope::error_response(&id, &error)));
                }
            }
            Err(e) => tracing::warn!("ignoring malformed message from exec-server: {e}"),
        }
    }

    fn complete(&self, id: &RequestId, result: Result<Box<RawValue>, ClientError>) {
        let RequestId::Integer(n) = id else {
            return;
        };
        if let Some((_, tx)) = self.state().pending.remove(n) {
            let _ = tx.send(result);
        }
    }

    async fn route_notification(self: &Arc<Self>, method: &str, params: &str) {
        if method == methods::HTTP_REQUEST_BODY_DELTA {
            match serde_json::from_str::<BodyDeltaNotification>(params) {
                // Waits for the consumer, like process events (back-pressure).
                Ok(delta) => self.http_routes.deliver(delta).await,
                Err(e) => tracing::warn!("bad {method} notification: {e}"),
            }
            return;
        }
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
                        sandbox_denied: n.sandbox_denied,
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
        let Some(route) = self.routes.get(&process_id) else {
            return;
        };
        // Waiting here is deliberate: a consumer that falls behind slows the socket, and
        // through it the server's reader of that process (back-pressure, nothing lost).
        if route.offer(event).await.needs_catch_up {
            self.catch_up(process_id, route);
        }
    }

    /// Reads what `route` missed, in the background.
    fn catch_up(self: &Arc<Self>, process_id: String, route: Arc<Route>) {
        let client = ExecServerClient {
            inner: self.clone(),
        };
        tokio::spawn(async move {
            if let Err(e) = route.catch_up(&client, &process_id).await {
                tracing::debug!(process_id, "catch-up stopped: {e}");
            }
            if route.is_finished() {
                client.inner.routes.remove_if_same(&process_id, &route);
            }
        });
    }

    /// The link of `generation` is gone: fail what was in flight on it, then reconnect.
    fn connection_lost(self: Arc<Self>, generation: u64, reason: String) {
        let is_current = {
            let mut state = self.state();
            // Marked lost and drained in one critical section: a call registering on this
            // link afterwards sees it lost (see `call_on`), one before is failed here.
            state.lost_generations.insert(generation);
            // Only links still being set up can be installed later; forget older ones.
            let oldest_relevant = state.generation.saturating_sub(8);
            state.lost_generations.retain(|g| *g >= oldest_relevant);
            let is_current =
                matches!(&*self.link.borrow(), Link::Up { generation: g, .. } if *g == generation);
            let lost: Vec<i64> = state
                .pending
                .iter()
                .filter(|(_, (g, _))| *g == generation)
                .map(|(id, _)| *id)
                .collect();
            for id in lost {
                if let Some((_, tx)) = state.pending.remove(&id) {
                    let _ = tx.send(Err(ClientError::ConnectionLost(reason.clone())));
                }
            }
            is_current
        };
        if !is_current {
            return;
        }
        // The server ends a connection's HTTP streams with it; a resumed session has none.
        self.http_routes.fail_all();
        if self.options.reconnect.max_attempts == 0 {
            self.give_up(reason);
            return;
        }
        tracing::info!(url = %self.url, "exec-server connection lost ({reason}); reconnecting");
        self.link.send_replace(Link::Reconnecting);
        tokio::spawn(self.reconnect(reason));
    }

    async fn reconnect(self: Arc<Self>, first_reason: String) {
        let policy = self.options.reconnect.clone();
        let session_id = self.state().session_id.clone();
        let mut backoff = policy.initial_backoff;
        let mut last_error = first_reason;
        for attempt in 0..policy.max_attempts {
            if attempt > 0 {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(policy.max_backoff);
            }
            match self.open_link(Some(session_id.clone())).await {
                Ok(()) => {
                    tracing::info!(session = %session_id, "exec-server session resumed");
                    for (process_id, route) in self.routes.all() {
                        self.catch_up(process_id, route);
                    }
                    return;
                }
                Err(ClientError::Rpc(e)) if e.message.starts_with("unknown session id") => {
                    let reason = format!(
                        "exec-server session {session_id} expired while the connection was down; \
                         its processes were killed"
                    );
                    return self.give_up(reason);
                }
                // "already attached": the server has not noticed the old link is dead yet.
                Err(e) => {
                    tracing::debug!("resume attempt {attempt} failed: {e}");
                    last_error = e.to_string()
                }
            }
        }
        self.give_up(format!(
            "lost the connection to exec-server at {} and could not resume after {} attempts: {last_error}",
            self.url, policy.max_attempts
        ));
    }

    /// No more connection: fail every pending call and every process stream with `reason`.
    fn give_up(&self, reason: String) {
        self.link.send_replace(Link::Down(reason.clone()));
        let pending: Vec<_> = self.state().pending.drain().collect();
        for (_, (_, tx)) in pending {
            let _ = tx.send(Err(ClientError::Transport(reason.clone())));
        }
        self.routes.fail_all(&reason);
        self.http_routes.fail_all();
    }
}
