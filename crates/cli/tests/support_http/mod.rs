//! A real HTTP server on 127.0.0.1 for the `http/request` scenarios. It records what it
//! receives and serves bodies shaped for each scenario: echoed, large and verifiable, broken
//! midway, held open until the test says so, or never answered.
#![allow(dead_code)]

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use futures::{stream, StreamExt};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::watch;

/// One request as the peer saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Every header in the order the peer's HTTP stack reports them.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    /// The values of `name`, in order.
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

#[derive(Default)]
pub struct PeerState {
    pub received: Mutex<Vec<Received>>,
    /// Body bytes `/big` has handed to its HTTP stack so far.
    pub big_sent: AtomicU64,
    /// Opens `/gate` responses and the second half of `/held` bodies.
    gate: watch::Sender<bool>,
    /// Requests that reached `/gate` or `/held`.
    pub arrived: watch::Sender<u64>,
    /// `/held` bodies dropped before they finished (their connection went away).
    pub held_dropped: watch::Sender<u64>,
    /// `/hang-counted` requests dropped (their connection went away).
    pub hang_dropped: watch::Sender<u64>,
}

impl PeerState {
    pub fn open_gate(&self) {
        self.gate.send_replace(true);
    }

    pub fn last_received(&self) -> Received {
        self.received
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("the peer received no request")
    }
}

/// The peer; stops serving when dropped.
pub struct HttpPeer {
    pub addr: SocketAddr,
    /// Where `/break/{bytes}` is served (see [`serve_broken_bodies`]).
    break_addr: Option<SocketAddr>,
    break_task: Option<tokio::task::JoinHandle<()>>,
    pub state: Arc<PeerState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HttpPeer {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(task) = &self.break_task {
            task.abort();
        }
    }
}

impl HttpPeer {
    pub async fn start() -> HttpPeer {
        let state = Arc::new(PeerState::default());
        let app = Router::new()
            .route("/echo", any(echo))
            .route("/status/{code}", any(status))
            .route("/stream/{chunks}/{size}", get(chunked))
            .route("/big/{bytes}", get(big))
            .route("/fixed/{bytes}", get(fixed))
            .route("/hang", get(hang))
            .route("/hang-counted", get(hang_counted))
            .route("/slow-body", get(slow_body))
            .route("/gate", get(gate))
            .route("/held", get(held))
            .with_state(state.clone());
        let mut peer = Self::serve(app, state).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the broken-body peer");
        peer.break_addr = Some(listener.local_addr().unwrap());
        peer.break_task = Some(tokio::spawn(serve_broken_bodies(listener)));
        peer
    }

    /// A stand-in forward proxy: answers every request, in whatever form, with
    /// `via proxy <request target>`.
    pub async fn start_proxy() -> HttpPeer {
        let state = Arc::new(PeerState::default());
        let app = Router::new()
            .fallback(|uri: Uri| async move { format!("via proxy {uri}") })
            .with_state(state.clone());
        Self::serve(app, state).await
    }

    async fn serve(app: Router, state: Arc<PeerState>) -> HttpPeer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the HTTP peer");
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("HTTP peer failed");
        });
        HttpPeer {
            addr,
            break_addr: None,
            break_task: None,
            state,
            task,
        }
    }

    /// `path` on the peer, except `/break/{bytes}`, which is served by the broken-body peer.
    pub fn url(&self, path: &str) -> String {
        match (path.starts_with("/break/"), self.break_addr) {
            (true, Some(addr)) => format!("http://{addr}{path}"),
            _ => format!("http://{}{path}", self.addr),
        }
    }
}

async fn echo(
    State(state): State<Arc<PeerState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.received.lock().unwrap().push(Received {
        method: method.to_string(),
        uri: uri.to_string(),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("<binary>").to_owned()))
            .collect(),
        body: body.to_vec(),
    });
    Response::builder()
        .status(StatusCode::CREATED)
        .header("content-type", "application/octet-stream")
        .header("x-multi", "one")
        .header("X-Mixed-Case", "yes")
        .header("x-multi", "two")
        .header("x-multi", "three")
        .body(Body::from(body))
        .unwrap()
}

async fn status(Path(code): Path<u16>) -> Response {
    let status = StatusCode::from_u16(code).unwrap();
    (status, format!("status {code}")).into_response()
}

/// `chunks` chunks of `size` pattern bytes, chunked transfer encoding.
async fn chunked(Path((chunks, size)): Path<(u64, u64)>) -> Response {
    let body = stream::iter(0..chunks)
        .map(move |i| Ok::<_, std::io::Error>(Bytes::from(pattern(i * size, size as usize))));
    Body::from_stream(body).into_response()
}

/// `bytes` pattern bytes in 64 KiB chunks, counted in `big_sent` as the HTTP stack takes them.
async fn big(State(state): State<Arc<PeerState>>, Path(bytes): Path<u64>) -> Response {
    const CHUNK: u64 = 64 * 1024;
    let body = stream::unfold(0u64, move |offset| {
        let state = state.clone();
        async move {
            if offset >= bytes {
                return None;
            }
            let len = CHUNK.min(bytes - offset);
            state.big_sent.fetch_add(len, Ordering::Relaxed);
            let chunk = Bytes::from(pattern(offset, len as usize));
            Some((Ok::<_, std::io::Error>(chunk), offset + len))
        }
    });
    Body::from_stream(body).into_response()
}

/// `bytes` pattern bytes with a content-length.
async fn fixed(Path(bytes): Path<u64>) -> Response {
    Body::from(pattern(0, bytes as usize)).into_response()
}

/// Answers `GET /break/{bytes}` with a head promising twice `bytes`, then `bytes` pattern
/// bytes, then closes the connection: the body breaks midway, after the head is out. (A
/// body error inside hyper may be noticed before the head is flushed, so this is written by
/// hand.)
async fn serve_broken_bodies(listener: tokio::net::TcpListener) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let Ok((mut socket, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let head = String::from_utf8_lossy(&head);
            let bytes: usize = head
                .split_whitespace()
                .nth(1)
                .and_then(|path| path.strip_prefix("/break/"))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n\
                 content-length: {}\r\n\r\n",
                2 * bytes
            );
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.write_all(&pattern(0, bytes)).await;
            let _ = socket.shutdown().await;
        });
    }
}

async fn hang() -> Response {
    std::future::pending().await
}

/// Counts a `/hang-counted` request whose handler was dropped.
struct HangGuard(Arc<PeerState>);

impl Drop for HangGuard {
    fn drop(&mut self) {
        self.0.hang_dropped.send_modify(|n| *n += 1);
    }
}

/// Never answers, and counts in `hang_dropped` when the client gives up.
async fn hang_counted(State(state): State<Arc<PeerState>>) -> Response {
    state.arrived.send_modify(|n| *n += 1);
    let _guard = HangGuard(state);
    std::future::pending().await
}

/// Headers and a first chunk at once, then nothing, ever.
async fn slow_body() -> Response {
    let body = stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"first"))])
        .chain(stream::pending());
    Body::from_stream(body).into_response()
}

/// Answers once the test opens the gate.
async fn gate(State(state): State<Arc<PeerState>>) -> Response {
    state.arrived.send_modify(|n| *n += 1);
    let mut gate = state.gate.subscribe();
    let _ = gate.wait_for(|open| *open).await;
    "opened".into_response()
}

/// Counts a `/held` body that was dropped before it finished.
struct HeldGuard {
    state: Arc<PeerState>,
    finished: bool,
}

impl Drop for HeldGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.state.held_dropped.send_modify(|n| *n += 1);
        }
    }
}

/// Answers at once with a body of `first`, then `last` once the gate opens.
async fn held(State(state): State<Arc<PeerState>>) -> Response {
    state.arrived.send_modify(|n| *n += 1);
    let guard = HeldGuard {
        state: state.clone(),
        finished: false,
    };
    let body = stream::unfold((0, guard), |(step, mut guard)| async move {
        match step {
            0 => Some((
                Ok::<_, std::io::Error>(Bytes::from_static(b"first")),
                (1, guard),
            )),
            1 => {
                let mut gate = guard.state.gate.subscribe();
                let _ = gate.wait_for(|open| *open).await;
                guard.finished = true;
                Some((Ok(Bytes::from_static(b"last")), (2, guard)))
            }
            _ => None,
        }
    });
    Body::from_stream(body).into_response()
}

const BLOCK: usize = 64 * 1024;

/// 64 KiB of arbitrary bytes, the base of every block of the pattern.
fn base_block() -> &'static [u8] {
    static BASE: OnceLock<Vec<u8>> = OnceLock::new();
    BASE.get_or_init(|| {
        let mut x: u32 = 0x1234_5678;
        (0..BLOCK)
            .map(|_| {
                // xorshift32: cheap, and no byte value or period lines up with chunk sizes.
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    })
}

/// The pattern's block `index`: the base with the block's index in its first 8 bytes, so a
/// duplicated, dropped or reordered block is caught.
fn block(index: u64) -> Vec<u8> {
    let mut block = base_block().to_vec();
    block[..8].copy_from_slice(&index.to_le_bytes());
    block
}

/// `len` bytes of the pattern from `offset`.
pub fn pattern(offset: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut at = offset;
    while out.len() < len {
        let index = at / BLOCK as u64;
        let within = (at % BLOCK as u64) as usize;
        let take = (BLOCK - within).min(len - out.len());
        out.extend_from_slice(&block(index)[within..within + take]);
        at += take as u64;
    }
    out
}

/// Checks a body against the pattern chunk by chunk, without keeping it.
#[derive(Default)]
pub struct PatternCheck {
    offset: u64,
    cached: Option<(u64, Vec<u8>)>,
}

impl PatternCheck {
    /// Checks the next chunk; panics at the first wrong byte.
    pub fn feed(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() {
            let index = self.offset / BLOCK as u64;
            let within = (self.offset % BLOCK as u64) as usize;
            if self.cached.as_ref().is_none_or(|(i, _)| *i != index) {
                self.cached = Some((index, block(index)));
            }
            let expected = &self.cached.as_ref().unwrap().1[within..];
            let take = expected.len().min(chunk.len());
            if chunk[..take] != expected[..take] {
                let at = (0..take).find(|&i| chunk[i] != expected[i]).unwrap();
                panic!(
                    "body differs from the pattern at byte {}",
                    self.offset + at as u64
                );
            }
            chunk = &chunk[take..];
            self.offset += take as u64;
        }
    }

    pub fn len(&self) -> u64 {
        self.offset
    }
}
