//! `http/request`: a thin adapter over the server's `ReqwestHttpClient`, and the
//! connection-scoped bookkeeping of streamed bodies.
//!
//! HTTP state belongs to the connection, not the session (as in the reference): a
//! `requestId` is reserved on its connection from the request until the stream ends, and
//! when the connection closes every stream it still has is aborted without a terminal frame.
//! Requests still waiting for their response are abandoned then too: their reply could only
//! go to that connection, and a peer that never answers must not hold a task forever.

use super::{decode, RequestContext};
use crate::session::Outbound;
use exec_server_environment::{HttpBodyStream, HttpClient};
use exec_server_protocol::envelope;
use exec_server_protocol::http::{BodyDeltaNotification, HttpRequestParams};
use exec_server_protocol::{error_codes, methods, Base64Bytes, ErrorObject, RequestId};
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;
use tokio::task::AbortHandle;

/// Largest body slice per `bodyDelta`. The connection's outbound queue holds a bounded number
/// of messages, so this bounds the memory one slow reader can pin on the server (128
/// messages of about 85 KiB of JSON each), whatever chunk sizes the HTTP stack delivers.
const MAX_DELTA_BYTES: usize = 64 * 1024;

pub(super) async fn request(ctx: RequestContext, id: RequestId, params: Option<Box<RawValue>>) {
    let params: HttpRequestParams = match decode(params) {
        Ok(p) => p,
        Err(e) => return ctx.reply::<()>(&id, Err(e)).await,
    };
    let closed = ctx.http_streams.clone();
    if !params.stream_response {
        let result = tokio::select! {
            result = ctx.http.request(params) => result,
            () = closed.closed() => return,
        };
        return ctx
            .reply(&id, result.map_err(|e| e.to_error_object()))
            .await;
    }
    let request_id = params.request_id.clone();
    if request_id.is_empty() {
        let error = ErrorObject::new(
            error_codes::INVALID_PARAMS,
            "http/request streamResponse requires requestId",
        );
        return ctx.reply::<()>(&id, Err(error)).await;
    }
    let Some(reservation) = ctx.http_streams.reserve(&request_id) else {
        let error = ErrorObject::new(
            error_codes::INVALID_PARAMS,
            format!("http/request streamResponse requestId `{request_id}` is already active"),
        );
        return ctx.reply::<()>(&id, Err(error)).await;
    };
    let result = tokio::select! {
        result = ctx.http.request_stream(params) => result,
        () = closed.closed() => return,
    };
    match result {
        Ok((head, body)) => {
            ctx.reply(&id, Ok(head)).await;
            // Only now, with the response queued, may the body's deltas follow.
            let key = reservation.key;
            let task = tokio::spawn(forward_body(ctx.outbound.clone(), reservation, body));
            ctx.http_streams
                .attach(&request_id, key, task.abort_handle());
        }
        // Dropping the reservation releases the id.
        Err(e) => ctx.reply::<()>(&id, Err(e.to_error_object())).await,
    }
}

/// Sends the body as `bodyDelta` notifications with seqs from 1, then one terminal frame
/// (with `error` if the body failed midway). Each send waits for room in the connection's
/// bounded queue, so a slow reader pauses the body (and, through TCP, the peer) instead of
/// growing the server's memory.
async fn forward_body(outbound: Outbound, reservation: Reservation, mut body: HttpBodyStream) {
    let request_id = reservation.id.clone();
    let delta = |seq, bytes, done, error| {
        envelope::notification(
            methods::HTTP_REQUEST_BODY_DELTA,
            &BodyDeltaNotification {
                request_id: request_id.clone(),
                seq,
                delta_base64: Base64Bytes(bytes),
                done,
                error,
            },
        )
    };
    let mut seq = 0;
    let error = loop {
        match body.next().await {
            Some(Ok(mut chunk)) => {
                while !chunk.is_empty() {
                    let piece = chunk.split_to(chunk.len().min(MAX_DELTA_BYTES));
                    seq += 1;
                    if outbound.send(delta(seq, piece, false, None)).await.is_err() {
                        // The connection is gone; so is whoever wanted the body.
                        return;
                    }
                }
            }
            Some(Err(e)) => break Some(e.to_string()),
            None => break None,
        }
    };
    // Released before the terminal frame is queued, so a client that reuses the id as soon
    // as it sees `done` is never refused.
    drop(reservation);
    let _ = outbound
        .send(delta(seq + 1, Default::default(), true, error))
        .await;
}

/// The HTTP state of one connection: its streamed bodies by `requestId`, and whether it has
/// closed.
#[derive(Default)]
pub(crate) struct HttpStreams {
    state: Mutex<StreamsState>,
    /// Becomes true when the connection closes.
    closed: watch::Sender<bool>,
}

#[derive(Default)]
struct StreamsState {
    /// Set when the connection has closed: streams attached later are aborted at once.
    closed: bool,
    next_key: u64,
    /// Reserved ids; the key tells one reservation of an id from a later one, and the
    /// handle is there once the body task runs.
    active: HashMap<String, (u64, Option<AbortHandle>)>,
}

/// A reserved `requestId`; dropping it releases the id.
struct Reservation {
    streams: Arc<HttpStreams>,
    id: String,
    key: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut state = self.streams.lock();
        if state
            .active
            .get(&self.id)
            .is_some_and(|(k, _)| *k == self.key)
        {
            state.active.remove(&self.id);
        }
    }
}

impl HttpStreams {
    fn lock(&self) -> MutexGuard<'_, StreamsState> {
        self.state.lock().expect("http streams lock poisoned")
    }

    /// Reserves `id`, or None while a stream with that id is active on this connection.
    fn reserve(self: &Arc<Self>, id: &str) -> Option<Reservation> {
        let mut state = self.lock();
        if state.active.contains_key(id) {
            return None;
        }
        state.next_key += 1;
        let key = state.next_key;
        state.active.insert(id.to_owned(), (key, None));
        Some(Reservation {
            streams: self.clone(),
            id: id.to_owned(),
            key,
        })
    }

    /// Records the body task of reservation `key`, so that closing the connection aborts it.
    fn attach(&self, id: &str, key: u64, task: AbortHandle) {
        let mut state = self.lock();
        if state.closed {
            task.abort();
        } else if let Some((k, slot)) = state.active.get_mut(id) {
            // A different key means the stream already ended and the id was reused.
            if *k == key {
                *slot = Some(task);
            }
        }
    }

    /// Completes once the connection has closed.
    async fn closed(&self) {
        let mut closed = self.closed.subscribe();
        // Cannot fail: `self` holds the sender.
        let _ = closed.wait_for(|closed| *closed).await;
    }

    /// The connection closed: abort every stream (no terminal frames; nobody would read
    /// them) and any that starts from now on, and abandon requests still in flight.
    pub fn close(&self) {
        self.closed.send_replace(true);
        let mut state = self.lock();
        state.closed = true;
        for (_, (_, task)) in state.active.drain() {
            if let Some(task) = task {
                task.abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ids_are_reserved_until_released() {
        let streams = Arc::new(HttpStreams::default());
        let first = streams.reserve("a").unwrap();
        assert!(streams.reserve("a").is_none());
        let other = streams.reserve("b").unwrap();
        drop(first);
        let again = streams.reserve("a").unwrap();
        assert_ne!(again.key, other.key);
        drop(other);
        drop(again);
        assert!(streams.lock().active.is_empty());
    }

    #[tokio::test]
    async fn close_aborts_attached_and_later_streams() {
        let streams = Arc::new(HttpStreams::default());
        let reservation = streams.reserve("a").unwrap();
        let key = reservation.key;
        let running = tokio::spawn(std::future::pending::<()>());
        streams.attach("a", key, running.abort_handle());
        let waiting = tokio::spawn({
            let streams = streams.clone();
            async move { streams.closed().await }
        });
        streams.close();
        waiting.await.unwrap();
        streams.closed().await;
        assert!(running.await.unwrap_err().is_cancelled());
        drop(reservation);

        let late = streams.reserve("b").unwrap();
        let task = tokio::spawn(std::future::pending::<()>());
        streams.attach("b", late.key, task.abort_handle());
        assert!(task.await.unwrap_err().is_cancelled());
    }
}
