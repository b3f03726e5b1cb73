//! `RemoteHttpClient`: the HTTP capability over an exec-server connection.
//!
//! A buffered request is one `http/request` call. A streamed one gets a connection-local
//! `requestId` (`http-<n>`), a route registered before the call so no delta can arrive with
//! nowhere to go, and a bounded channel the connection's reader feeds `bodyDelta`s into.
//! The reader waits for room in that channel, so a slow consumer slows the websocket and,
//! through it, the server's read of the body (back-pressure, nothing dropped).
//!
//! Streams do not survive a reconnect: the server aborts a connection's streams when it
//! closes, so on connection loss every open body stream fails with a clear error.

use crate::connection::ExecServerClient;
use crate::error::ClientError;
use async_trait::async_trait;
use bytes::Bytes;
use exec_server_environment::{HttpBodyStream, HttpClient, HttpError};
use exec_server_protocol::http::{BodyDeltaNotification, HttpRequestParams, HttpRequestResponse};
use exec_server_protocol::methods;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use tokio::sync::mpsc;

/// How `HttpError::Body` begins (see the server's terminal frames).
const BODY_ERROR_PREFIX: &str = "failed to read http/request response body: ";

/// Deltas buffered per stream before the connection's reader waits for the consumer.
const BODY_DELTA_QUEUE: usize = 64;

/// Forwards HTTP requests to the server's `http/request`.
pub struct RemoteHttpClient {
    client: ExecServerClient,
}

impl RemoteHttpClient {
    pub fn new(client: ExecServerClient) -> Self {
        RemoteHttpClient { client }
    }

    pub fn client(&self) -> &ExecServerClient {
        &self.client
    }
}

fn to_http_error(e: ClientError) -> HttpError {
    match e {
        ClientError::Rpc(error) => HttpError::Remote(error),
        other => HttpError::Transport(other.to_string()),
    }
}

#[async_trait]
impl HttpClient for RemoteHttpClient {
    async fn request(
        &self,
        mut params: HttpRequestParams,
    ) -> Result<HttpRequestResponse, HttpError> {
        params.stream_response = false;
        if params.request_id.is_empty() {
            // The codex server requires an id on every request, streamed or not.
            params.request_id = self.client.next_http_request_id();
        }
        // Not retried after a lost connection: the request may have reached the peer, and
        // HTTP requests are not idempotent in general.
        self.client
            .call(methods::HTTP_REQUEST, &params)
            .await
            .map_err(to_http_error)
    }

    async fn request_stream(
        &self,
        mut params: HttpRequestParams,
    ) -> Result<(HttpRequestResponse, HttpBodyStream), HttpError> {
        let request_id = self.client.next_http_request_id();
        params.request_id = request_id.clone();
        params.stream_response = true;
        let deltas = self.client.route_http_body(&request_id);
        match self
            .client
            .call::<_, HttpRequestResponse>(methods::HTTP_REQUEST, &params)
            .await
        {
            Ok(head) => {
                let client = self.client.clone();
                let id = request_id.clone();
                let body = remote_body(request_id, deltas, move || client.unroute_http_body(&id));
                Ok((head, body))
            }
            Err(e) => {
                self.client.unroute_http_body(&request_id);
                Err(to_http_error(e))
            }
        }
    }
}

/// The routes of one client's open body streams, by `requestId`.
#[derive(Default)]
pub(crate) struct HttpBodyRoutes {
    next: AtomicU64,
    routes: Mutex<HashMap<String, mpsc::Sender<BodyDeltaNotification>>>,
}

impl HttpBodyRoutes {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, mpsc::Sender<BodyDeltaNotification>>> {
        self.routes.lock().expect("http route table lock poisoned")
    }

    /// A fresh id, unique for the life of this client (so never reused across reconnects).
    pub fn next_id(&self) -> String {
        format!("http-{}", self.next.fetch_add(1, Ordering::Relaxed) + 1)
    }

    pub fn add(&self, request_id: &str) -> mpsc::Receiver<BodyDeltaNotification> {
        let (tx, rx) = mpsc::channel(BODY_DELTA_QUEUE);
        self.lock().insert(request_id.to_owned(), tx);
        rx
    }

    pub fn remove(&self, request_id: &str) {
        self.lock().remove(request_id);
    }

    /// Hands a delta to its stream, waiting for room (back-pressure). Deltas of streams
    /// nobody reads any more are dropped.
    pub async fn deliver(&self, delta: BodyDeltaNotification) {
        let route = {
            let mut routes = self.lock();
            // Nothing follows the terminal frame, so the route can go now.
            if delta.done {
                routes.remove(&delta.request_id)
            } else {
                routes.get(&delta.request_id).cloned()
            }
        };
        let Some(route) = route else {
            return;
        };
        let request_id = delta.request_id.clone();
        if route.send(delta).await.is_err() {
            self.remove(&request_id);
        }
    }

    /// The connection is gone: end every stream. Dropping the senders closes the channels,
    /// which the streams report as a lost connection after the deltas already queued.
    pub fn fail_all(&self) {
        self.lock().clear();
    }
}

/// Runs its closure (unrouting the stream) when the body ends or is dropped.
struct OnDrop(Option<Box<dyn FnOnce() + Send>>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

struct BodyState {
    request_id: String,
    deltas: mpsc::Receiver<BodyDeltaNotification>,
    next_seq: u64,
    _unroute: OnDrop,
    /// An error to report after the bytes of a terminal frame that carried both.
    pending_error: Option<HttpError>,
}

/// The body as the consumer sees it: bytes of each delta in seq order, ending after the
/// `done` frame, or with an error on an `error` frame, a seq gap or a lost connection.
fn remote_body(
    request_id: String,
    deltas: mpsc::Receiver<BodyDeltaNotification>,
    unroute: impl FnOnce() + Send + 'static,
) -> HttpBodyStream {
    let state = BodyState {
        request_id,
        deltas,
        next_seq: 1,
        _unroute: OnDrop(Some(Box::new(unroute))),
        pending_error: None,
    };
    let stream = futures::stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        if let Some(error) = state.pending_error.take() {
            return Some((Err(error), None));
        }
        loop {
            let id = &state.request_id;
            let Some(delta) = state.deltas.recv().await else {
                let error = HttpError::Transport(format!(
                    "exec-server connection lost before the HTTP response body of `{id}` \
                     ended; streams do not survive a reconnect"
                ));
                return Some((Err(error), None));
            };
            if delta.seq != state.next_seq {
                let error = HttpError::Transport(format!(
                    "http/request/bodyDelta for `{id}` jumped from seq {} to {}",
                    state.next_seq, delta.seq
                ));
                return Some((Err(error), None));
            }
            state.next_seq += 1;
            let bytes: Bytes = delta.delta_base64.into_bytes();
            let error = delta.error.map(|message| {
                // The same error as the local implementation's. This server sends that
                // error's full text; others may send only the cause.
                let cause = message
                    .strip_prefix(BODY_ERROR_PREFIX)
                    .unwrap_or(&message)
                    .to_owned();
                HttpError::Body(cause)
            });
            match (delta.done, error, bytes.is_empty()) {
                (_, Some(error), true) => return Some((Err(error), None)),
                (_, Some(error), false) => {
                    state.pending_error = Some(error);
                    return Some((Ok(bytes), Some(state)));
                }
                (true, None, true) => return None,
                (true, None, false) => return Some((Ok(bytes), None)),
                (false, None, true) => continue,
                (false, None, false) => return Some((Ok(bytes), Some(state))),
            }
        }
    });
    HttpBodyStream::new(Box::pin(stream))
}

#[cfg(test)]
mod tests {
    use super::*;
    use exec_server_protocol::{error_codes, Base64Bytes};
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    fn delta(seq: u64, bytes: &[u8], done: bool, error: Option<&str>) -> BodyDeltaNotification {
        BodyDeltaNotification {
            request_id: "r".into(),
            seq,
            delta_base64: Base64Bytes::from(bytes),
            done,
            error: error.map(str::to_owned),
        }
    }

    /// Feeds `deltas` to a body stream and collects what it yields.
    async fn run(deltas: Vec<BodyDeltaNotification>, close: bool) -> (Vec<u8>, Option<HttpError>) {
        let (tx, rx) = mpsc::channel(16);
        let unrouted = Arc::new(AtomicBool::new(false));
        let flag = unrouted.clone();
        let mut body = remote_body("r".into(), rx, move || flag.store(true, Ordering::SeqCst));
        for d in deltas {
            tx.send(d).await.unwrap();
        }
        if close {
            drop(tx);
        }
        let mut bytes = vec![];
        let mut error = None;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(b) => bytes.extend_from_slice(&b),
                Err(e) => error = Some(e),
            }
        }
        assert!(body.next().await.is_none(), "the body stays ended");
        drop(body);
        assert!(unrouted.load(Ordering::SeqCst));
        (bytes, error)
    }

    #[tokio::test]
    async fn deltas_in_order_then_done() {
        let (bytes, error) = run(
            vec![
                delta(1, b"ab", false, None),
                delta(2, b"", false, None),
                delta(3, b"c", false, None),
                delta(4, b"", true, None),
            ],
            false,
        )
        .await;
        assert_eq!(bytes, b"abc");
        assert!(error.is_none());
        // A terminal frame may carry bytes.
        let (bytes, error) = run(
            vec![delta(1, b"a", false, None), delta(2, b"z", true, None)],
            false,
        )
        .await;
        assert_eq!(bytes, b"az");
        assert!(error.is_none());
    }

    #[tokio::test]
    async fn error_frame_fails_the_body_after_its_bytes() {
        let (bytes, error) = run(
            vec![
                delta(1, b"a", false, None),
                delta(
                    2,
                    b"b",
                    true,
                    Some("failed to read http/request response body: reset"),
                ),
            ],
            false,
        )
        .await;
        assert_eq!(bytes, b"ab");
        let error = error.expect("an error");
        assert_eq!(error.code(), error_codes::INTERNAL_ERROR);
        assert_eq!(
            error.to_string(),
            "failed to read http/request response body: reset"
        );
    }

    #[tokio::test]
    async fn gaps_and_lost_connections_fail_the_body() {
        let (bytes, error) = run(
            vec![delta(1, b"a", false, None), delta(3, b"c", false, None)],
            false,
        )
        .await;
        assert_eq!(bytes, b"a");
        let error = error.expect("a gap is an error");
        assert!(
            error.to_string().contains("jumped from seq 2 to 3"),
            "{error}"
        );

        let (bytes, error) = run(vec![delta(1, b"a", false, None)], true).await;
        assert_eq!(bytes, b"a");
        let error = error.expect("a closed route is an error");
        assert!(error.to_string().contains("connection lost"), "{error}");
        assert_eq!(error.code(), error_codes::TRANSPORT_CLOSED);
    }
}
