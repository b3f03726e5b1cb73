//! Delivery of process events to their streams, exactly once and in seq order.
//!
//! Events reach a process's route from two places: live notifications, and `process/read`
//! catch-up after a reconnect (or after any out-of-order arrival). The route delivers seq
//! `next_seq` and nothing else: older events are duplicates and dropped, newer ones wait in
//! `ahead` until the gap before them is filled. A gap that cannot be filled, because the
//! server's retention evicted those chunks, is delivered as one `ProcessEvent::Gap` in its
//! place, so a caller can always tell lost output from no output.

use crate::connection::ExecServerClient;
use crate::error::ClientError;
use exec_server_environment::ProcessEvent;
use exec_server_protocol::methods;
use exec_server_protocol::process::{ReadParams, ReadResponse};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::mpsc;

/// Events buffered per process before delivery waits for the consumer.
const PROCESS_EVENT_QUEUE: usize = 256;

/// Bytes asked for per catch-up read, so a long backlog does not become one huge message.
const CATCH_UP_READ_BYTES: u64 = 4 * 1024 * 1024;

/// The routes of one client, by process id.
#[derive(Default)]
pub(crate) struct RouteTable {
    routes: Mutex<HashMap<String, Arc<Route>>>,
}

impl RouteTable {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Route>>> {
        self.routes.lock().expect("route table lock poisoned")
    }

    /// A new route for `process_id`, or None if it already has one.
    pub fn add(&self, process_id: &str) -> Option<mpsc::Receiver<ProcessEvent>> {
        let mut routes = self.lock();
        if routes.contains_key(process_id) {
            return None;
        }
        let (tx, rx) = mpsc::channel(PROCESS_EVENT_QUEUE);
        routes.insert(process_id.to_owned(), Arc::new(Route::new(tx)));
        Some(rx)
    }

    pub fn get(&self, process_id: &str) -> Option<Arc<Route>> {
        self.lock().get(process_id).cloned()
    }

    pub fn remove(&self, process_id: &str) {
        self.lock().remove(process_id);
    }

    pub fn remove_if_same(&self, process_id: &str, route: &Arc<Route>) {
        let mut routes = self.lock();
        if routes
            .get(process_id)
            .is_some_and(|r| Arc::ptr_eq(r, route))
        {
            routes.remove(process_id);
        }
    }

    pub fn all(&self) -> Vec<(String, Arc<Route>)> {
        self.lock()
            .iter()
            .map(|(id, r)| (id.clone(), r.clone()))
            .collect()
    }

    /// Ends every stream with `Failed { reason }`.
    pub fn fail_all(&self, reason: &str) {
        let routes: Vec<_> = self.lock().drain().map(|(_, r)| r).collect();
        for route in routes {
            let message = reason.to_owned();
            tokio::spawn(async move { route.fail(message).await });
        }
    }
}

/// Where one process's events go.
pub(crate) struct Route {
    state: tokio::sync::Mutex<RouteState>,
    catching_up: AtomicBool,
    /// Catch-ups asked for so far (see `catch_up`).
    catch_up_requests: AtomicU64,
    finished: AtomicBool,
}

struct RouteState {
    tx: mpsc::Sender<ProcessEvent>,
    next_seq: u64,
    ahead: BTreeMap<u64, ProcessEvent>,
}

/// What an offered event left behind.
pub(crate) struct Offered {
    /// Events are waiting for earlier ones that did not come: read them.
    pub needs_catch_up: bool,
}

impl Route {
    fn new(tx: mpsc::Sender<ProcessEvent>) -> Self {
        Route {
            state: tokio::sync::Mutex::new(RouteState {
                tx,
                next_seq: 1,
                ahead: BTreeMap::new(),
            }),
            catching_up: AtomicBool::new(false),
            catch_up_requests: AtomicU64::new(0),
            finished: AtomicBool::new(false),
        }
    }

    /// Whether the stream has delivered its last event.
    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    pub async fn offer(&self, event: ProcessEvent) -> Offered {
        let mut state = self.state.lock().await;
        self.accept(&mut state, event).await;
        Offered {
            needs_catch_up: !state.ahead.is_empty(),
        }
    }

    async fn accept(&self, state: &mut RouteState, event: ProcessEvent) {
        let Some(seq) = event.seq() else {
            return self.deliver(state, event).await;
        };
        if self.is_finished() || seq < state.next_seq {
            return;
        }
        if seq > state.next_seq {
            state.ahead.insert(seq, event);
            return;
        }
        self.deliver(state, event).await;
        while let Some(next) = state.ahead.remove(&state.next_seq) {
            self.deliver(state, next).await;
        }
        // Anything still buffered below the new position was covered by a gap.
        let next_seq = state.next_seq;
        state.ahead = state.ahead.split_off(&next_seq);
    }

    async fn deliver(&self, state: &mut RouteState, event: ProcessEvent) {
        match &event {
            ProcessEvent::Gap { to_seq, .. } => state.next_seq = to_seq + 1,
            ProcessEvent::Failed { .. } => self.finished.store(true, Ordering::Release),
            other => {
                state.next_seq = other.seq().unwrap_or(state.next_seq) + 1;
                if matches!(other, ProcessEvent::Closed { .. }) {
                    self.finished.store(true, Ordering::Release);
                }
            }
        }
        // A dropped stream just means nobody listens any more.
        let _ = state.tx.send(event).await;
    }

    async fn fail(&self, message: String) {
        if self.is_finished() {
            return;
        }
        let mut state = self.state.lock().await;
        self.deliver(&mut state, ProcessEvent::Failed { message })
            .await;
    }

    /// Reads what the stream has not delivered yet and feeds it through `offer`, until the
    /// server has nothing more or the stream is finished. One catch-up runs at a time.
    ///
    /// Every request counts: one that arrives while a catch-up is finishing makes it run
    /// again, so a request (after a reconnect, say) can never be lost to that race and
    /// leave the stream waiting for events that only a read would bring.
    pub async fn catch_up(
        &self,
        client: &ExecServerClient,
        process_id: &str,
    ) -> Result<(), ClientError> {
        self.catch_up_requests.fetch_add(1, Ordering::AcqRel);
        loop {
            if self.catching_up.swap(true, Ordering::AcqRel) {
                // The running catch-up will see our request.
                return Ok(());
            }
            let seen = self.catch_up_requests.load(Ordering::Acquire);
            let result = self.catch_up_passes(client, process_id).await;
            self.catching_up.store(false, Ordering::Release);
            result?;
            if self.is_finished() || self.catch_up_requests.load(Ordering::Acquire) == seen {
                return Ok(());
            }
        }
    }

    async fn catch_up_passes(
        &self,
        client: &ExecServerClient,
        process_id: &str,
    ) -> Result<(), ClientError> {
        loop {
            let before = self.state.lock().await.next_seq;
            self.read_backlog(client, process_id).await?;
            let state = self.state.lock().await;
            // Events that arrived meanwhile may still wait for something; go again, but only
            // while passes make progress.
            if self.is_finished() || state.ahead.is_empty() || state.next_seq == before {
                return Ok(());
            }
        }
    }

    async fn read_backlog(
        &self,
        client: &ExecServerClient,
        process_id: &str,
    ) -> Result<(), ClientError> {
        loop {
            if self.is_finished() {
                return Ok(());
            }
            let after = self.state.lock().await.next_seq - 1;
            let params = ReadParams {
                process_id: process_id.to_owned(),
                after_seq: Some(after),
                max_bytes: Some(CATCH_UP_READ_BYTES),
                wait_ms: Some(0),
            };
            tracing::debug!(process_id, after, "catch-up read");
            let response: ReadResponse =
                match client.call_idempotent(methods::PROCESS_READ, &params).await {
                    Ok(r) => r,
                    Err(ClientError::Rpc(e)) => {
                        let message = format!(
                            "exec-server no longer knows process {process_id} ({}); its \
                             remaining events are lost",
                            e.message
                        );
                        self.fail(message).await;
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                };
            let done = response.chunks.is_empty();
            tracing::debug!(process_id, chunks = response.chunks.len(), next = response.next_seq, first = ?response.first_retained_seq, exited = response.exited, "catch-up got");
            let mut state = self.state.lock().await;
            for event in events_from_read(after, &response) {
                self.accept(&mut state, event).await;
            }
            if done {
                return Ok(());
            }
        }
    }
}

/// The events a `process/read` after `after` reveals, in seq order: a gap where retention
/// evicted chunks, the chunks, and the exit and close where the server says their seqs.
fn events_from_read(after: u64, r: &ReadResponse) -> Vec<ProcessEvent> {
    let mut events = Vec::new();
    let mut exited_seq = r.exited_seq;
    let mut closed_seq = r.closed_seq;
    if r.exited && exited_seq.is_none() && r.chunks.is_empty() {
        // A server without `exitedSeq` (codex): with no output left, the exit and close are
        // the last seqs it assigned.
        if r.closed {
            exited_seq = r.next_seq.checked_sub(2);
            closed_seq = r.next_seq.checked_sub(1);
        } else {
            exited_seq = r.next_seq.checked_sub(1);
        }
    }
    let first_retained = r.first_retained_seq.unwrap_or(1);
    if first_retained > after + 1 {
        // Evicted: after+1 ..= first_retained-1, except the exit and close, never evicted.
        let mut start = after + 1;
        let end = first_retained - 1;
        let mut specials: Vec<u64> = [exited_seq, closed_seq]
            .into_iter()
            .flatten()
            .filter(|s| (start..=end).contains(s))
            .collect();
        specials.sort_unstable();
        for special in specials {
            if special > start {
                events.push(ProcessEvent::Gap {
                    from_seq: start,
                    to_seq: special - 1,
                });
            }
            start = special + 1;
        }
        if start <= end {
            events.push(ProcessEvent::Gap {
                from_seq: start,
                to_seq: end,
            });
        }
    }
    events.extend(r.chunks.iter().map(|c| ProcessEvent::Output {
        seq: c.seq,
        stream: c.stream,
        chunk: c.chunk.0.clone(),
    }));
    if let (true, Some(seq)) = (r.exited, exited_seq) {
        events.push(ProcessEvent::Exited {
            seq,
            exit_code: r.exit_code.unwrap_or(-1),
            signal: r.signal,
            sandbox_denied: r.sandbox_denied,
        });
    }
    if let (true, Some(seq)) = (r.closed, closed_seq) {
        events.push(ProcessEvent::Closed { seq });
    }
    events.sort_by_key(|e| e.seq());
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use exec_server_protocol::process::{OutputChunk, OutputStream};

    fn output(seq: u64) -> ProcessEvent {
        ProcessEvent::Output {
            seq,
            stream: OutputStream::Stdout,
            chunk: Bytes::from(seq.to_string()),
        }
    }

    async fn drain(rx: &mut mpsc::Receiver<ProcessEvent>) -> Vec<ProcessEvent> {
        let mut out = vec![];
        while let Ok(e) = rx.try_recv() {
            out.push(e);
        }
        out
    }

    #[tokio::test]
    async fn delivers_in_order_once() {
        let (tx, mut rx) = mpsc::channel(16);
        let route = Route::new(tx);
        assert!(!route.offer(output(1)).await.needs_catch_up);
        assert!(route.offer(output(3)).await.needs_catch_up);
        route.offer(output(1)).await;
        route.offer(output(2)).await;
        route.offer(output(3)).await;
        let seqs: Vec<_> = drain(&mut rx)
            .await
            .iter()
            .map(|e| e.seq().unwrap())
            .collect();
        assert_eq!(seqs, vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn gap_stands_in_for_evicted_chunks() {
        let (tx, mut rx) = mpsc::channel(16);
        let route = Route::new(tx);
        route.offer(output(1)).await;
        route.offer(output(6)).await; // live, ahead of a gap
        let read = ReadResponse {
            chunks: vec![OutputChunk {
                seq: 5,
                stream: OutputStream::Stdout,
                chunk: "5".into(),
            }],
            next_seq: 6,
            exited: false,
            exit_code: None,
            closed: false,
            failure: None,
            first_retained_seq: Some(5),
            signal: None,
            exited_seq: None,
            closed_seq: None,
            sandbox_denied: false,
        };
        let mut state = route.state.lock().await;
        for e in events_from_read(1, &read) {
            route.accept(&mut state, e).await;
        }
        drop(state);
        let events = drain(&mut rx).await;
        assert_eq!(
            events[1],
            ProcessEvent::Gap {
                from_seq: 2,
                to_seq: 4
            }
        );
        let seqs: Vec<_> = events.iter().map(|e| e.seq().unwrap()).collect();
        assert_eq!(seqs, vec![1, 2, 5, 6]);
    }

    #[test]
    fn gap_skips_exit_and_close_seqs() {
        let read = ReadResponse {
            chunks: vec![],
            next_seq: 10,
            exited: true,
            exit_code: Some(0),
            closed: true,
            failure: None,
            first_retained_seq: Some(10),
            signal: None,
            exited_seq: Some(4),
            closed_seq: Some(9),
            sandbox_denied: false,
        };
        let events = events_from_read(0, &read);
        assert_eq!(
            events,
            vec![
                ProcessEvent::Gap {
                    from_seq: 1,
                    to_seq: 3
                },
                ProcessEvent::Exited {
                    seq: 4,
                    exit_code: 0,
                    signal: None,
                    sandbox_denied: false
                },
                ProcessEvent::Gap {
                    from_seq: 5,
                    to_seq: 8
                },
                ProcessEvent::Closed { seq: 9 },
            ]
        );
    }
}
