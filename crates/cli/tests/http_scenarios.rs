//! The HTTP scenario suite: every scenario is written once against the `HttpClient` trait and
//! runs against the local environment and against a real server on loopback, with a real
//! HTTP server on 127.0.0.1 (started by the test) as the peer. The wire-level rules (response
//! before deltas, seqs, one terminal frame, duplicate ids, streams ending with their
//! connection) are checked with raw websocket frames at the end.

mod support;
mod support_http;

use exec_server_environment::local::HttpConfig;
use exec_server_environment::{Environment, HttpBodyStream, HttpClient, HttpError};
use exec_server_protocol::http::{HttpHeader, HttpRequestParams};
use exec_server_protocol::Base64Bytes;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::raw::RawPeer;
use support::{within, ServerProcess, Target, TestEnv};
use support_http::{pattern, HttpPeer, PatternCheck};

const INVALID_REQUEST: i64 = -32600;
const INVALID_PARAMS: i64 = -32602;
const INTERNAL: i64 = -32603;
const MIB: u64 = 1024 * 1024;

both_targets! {
    buffered_round_trip => crate::buffered_round_trip;
    any_status_is_a_result => crate::any_status_is_a_result;
    streamed_body_arrives_in_order => crate::streamed_body_arrives_in_order;
    broken_body_is_an_error => crate::broken_body_is_an_error;
    large_streamed_body_is_complete => crate::large_streamed_body_is_complete;
    slow_reader_gets_back_pressure => crate::slow_reader_gets_back_pressure;
    timeouts => crate::timeouts;
    invalid_requests_are_rejected => crate::invalid_requests_are_rejected;
    unreachable_peer_is_a_failure => crate::unreachable_peer_is_a_failure;
    buffered_body_limit => crate::buffered_body_limit;
}

fn get(url: impl Into<String>) -> HttpRequestParams {
    HttpRequestParams {
        method: "GET".into(),
        url: url.into(),
        headers: vec![],
        body_base64: None,
        timeout_ms: None,
        request_id: String::new(),
        stream_response: false,
    }
}

fn http(t: &TestEnv) -> &Arc<dyn HttpClient> {
    t.env.http()
}

/// An environment whose buffered body limit is `limit` bytes.
async fn env_with_body_limit(target: Target, limit: u64) -> TestEnv {
    match target {
        Target::Local => TestEnv {
            env: Environment::local_with_http(HttpConfig {
                max_body_bytes: limit,
            }),
            server: None,
        },
        Target::Remote => TestEnv::remote(&["--max-http-body-bytes", &limit.to_string()]).await,
    }
}

/// Reads the rest of `body` through `check`; returns the error if the body failed.
async fn drain(body: &mut HttpBodyStream, check: &mut PatternCheck) -> Option<HttpError> {
    within("the body", async {
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(bytes) => check.feed(&bytes),
                Err(e) => return Some(e),
            }
        }
        None
    })
    .await
}

async fn buffered_round_trip(target: Target) {
    let peer = HttpPeer::start().await;
    let t = TestEnv::new(target).await;
    let body = b"\x00binary\xff body \r\n".to_vec();
    let params = HttpRequestParams {
        method: "PUT".into(),
        headers: vec![
            HttpHeader::new("x-rep", "1"),
            HttpHeader::new("X-Other", "o"),
            HttpHeader::new("X-Rep", "2"),
            HttpHeader::new("x-rep", "3"),
            HttpHeader::new("content-type", "application/x-test"),
        ],
        body_base64: Some(Base64Bytes::from(body.clone())),
        ..get(peer.url("/echo?q=1&r=two"))
    };
    let r = within("request", http(&t).request(params))
        .await
        .expect("request");

    let seen = peer.state.last_received();
    assert_eq!(seen.method, "PUT");
    assert_eq!(seen.uri, "/echo?q=1&r=two");
    assert_eq!(seen.values("x-rep"), ["1", "2", "3"], "{:?}", seen.headers);
    assert_eq!(seen.values("x-other"), ["o"]);
    assert_eq!(seen.values("content-type"), ["application/x-test"]);
    assert_eq!(seen.body, body);

    assert_eq!(r.status, 201);
    assert_eq!(&r.body_base64[..], &body[..]);
    let names: Vec<&str> = r.headers.iter().map(|h| h.name.as_str()).collect();
    assert!(
        names.iter().all(|n| *n == n.to_ascii_lowercase()),
        "{names:?}"
    );
    let multi: Vec<&str> = r
        .headers
        .iter()
        .filter(|h| h.name == "x-multi")
        .map(|h| h.value.as_str())
        .collect();
    assert_eq!(multi, ["one", "two", "three"]);
    assert!(r.headers.contains(&HttpHeader::new("x-mixed-case", "yes")));
    assert!(r
        .headers
        .contains(&HttpHeader::new("content-type", "application/octet-stream")));

    // Any method token reaches the peer, and a request without a body has none.
    let r = within(
        "request",
        http(&t).request(HttpRequestParams {
            method: "PURGE".into(),
            ..get(peer.url("/echo"))
        }),
    )
    .await
    .expect("request");
    assert_eq!(r.status, 201);
    let seen = peer.state.last_received();
    assert_eq!(seen.method, "PURGE");
    assert!(seen.body.is_empty());
}

async fn any_status_is_a_result(target: Target) {
    let peer = HttpPeer::start().await;
    let t = TestEnv::new(target).await;
    for code in [204u16, 404, 500, 503] {
        let r = within(
            "request",
            http(&t).request(get(peer.url(&format!("/status/{code}")))),
        )
        .await
        .unwrap_or_else(|e| panic!("status {code} is a result, got {e}"));
        assert_eq!(r.status, code);
        if code != 204 {
            assert_eq!(&r.body_base64[..], format!("status {code}").as_bytes());
        }
        let (head, body) = within(
            "stream",
            http(&t).request_stream(get(peer.url(&format!("/status/{code}")))),
        )
        .await
        .unwrap();
        assert_eq!(head.status, code);
        within("body", body.collect()).await.unwrap();
    }
}

async fn streamed_body_arrives_in_order(target: Target) {
    let peer = HttpPeer::start().await;
    let t = TestEnv::new(target).await;
    // The stream flag and id of the params belong to the implementation: ignored here.
    let params = HttpRequestParams {
        request_id: "ignored".into(),
        stream_response: false,
        ..get(peer.url("/stream/40/10000"))
    };
    let (head, mut body) = within("stream", http(&t).request_stream(params))
        .await
        .expect("stream");
    assert_eq!(head.status, 200);
    assert!(head.body_base64.is_empty());
    let mut check = PatternCheck::default();
    assert!(drain(&mut body, &mut check).await.is_none());
    assert_eq!(check.len(), 400_000);
    assert!(within("the end", body.next()).await.is_none());

    // Several streams at once keep their bodies apart.
    let mut bodies = vec![];
    for size in [1000u64, 70_000, 300_000] {
        let (_, body) = within(
            "stream",
            http(&t).request_stream(get(peer.url(&format!("/stream/3/{size}")))),
        )
        .await
        .unwrap();
        bodies.push((size, body));
    }
    for (size, body) in bodies.into_iter().rev() {
        let bytes = within("body", body.collect()).await.unwrap();
        assert_eq!(bytes, pattern(0, 3 * size as usize));
    }
}

async fn broken_body_is_an_error(target: Target) {
    let peer = HttpPeer::start().await;
    let t = TestEnv::new(target).await;
    let (head, mut body) = within(
        "stream",
        http(&t).request_stream(get(peer.url("/break/100000"))),
    )
    .await
    .expect("the head arrives before the body breaks");
    assert_eq!(head.status, 200);
    let mut check = PatternCheck::default();
    let error = drain(&mut body, &mut check)
        .await
        .expect("a broken body ends with an error");
    assert!(check.len() <= 100_000);
    assert_eq!(error.code(), INTERNAL, "{error}");
    assert!(
        error
            .to_string()
            .starts_with("failed to read http/request response body: "),
        "{error}"
    );
    assert!(within("the end", body.next()).await.is_none());

    let error = within("request", http(&t).request(get(peer.url("/break/100000"))))
        .await
        .unwrap_err();
    assert_eq!(error.code(), INTERNAL, "{error}");
    assert!(
        error
            .to_string()
            .starts_with("failed to read http/request response body: "),
        "{error}"
    );
}

async fn large_streamed_body_is_complete(target: Target) {
    let peer = HttpPeer::start().await;
    let t = TestEnv::new(target).await;
    let size = 64 * MIB;
    let (head, mut body) = within(
        "stream",
        http(&t).request_stream(get(peer.url(&format!("/big/{size}")))),
    )
    .await
    .expect("stream");
    assert_eq!(head.status, 200);
    let mut check = PatternCheck::default();
    if let Some(e) = drain(&mut body, &mut check).await {
        panic!("the body failed after {} bytes: {e}", check.len());
    }
    assert_eq!(check.len(), size);
}

/// A consumer that stops reading stalls the transfer: the peer stops being read, and the
/// server's memory does not grow with the body.
async fn slow_reader_gets_back_pressure(target: Target) {
    let peer = HttpPeer::start().await;
    let t = TestEnv::new(target).await;
    // The first request builds the HTTP client (trust roots and all): not part of the body.
    within("warm-up", http(&t).request(get(peer.url("/status/200"))))
        .await
        .unwrap();
    let idle_rss = t.server.as_ref().map(ServerProcess::rss_bytes);

    let total = 128 * MIB;
    let (_, mut body) = within(
        "stream",
        http(&t).request_stream(get(peer.url(&format!("/big/{total}")))),
    )
    .await
    .expect("stream");
    let mut check = PatternCheck::default();
    while check.len() < MIB {
        let chunk = within("a chunk", body.next()).await.unwrap().unwrap();
        check.feed(&chunk);
    }

    // Stop reading until the peer has not been able to send anything for a second: the
    // whole path is full. Meanwhile, watch the server's memory.
    let mut max_rss = 0;
    let mut sent = peer.state.big_sent.load(Ordering::Relaxed);
    within("the peer to stall", async {
        let mut unchanged = 0;
        while unchanged < 10 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if let Some(server) = &t.server {
                max_rss = max_rss.max(server.rss_bytes());
            }
            let now = peer.state.big_sent.load(Ordering::Relaxed);
            unchanged = if now == sent { unchanged + 1 } else { 0 };
            sent = now;
        }
    })
    .await;
    let in_flight = sent - check.len();
    eprintln!(
        "paused reader: {} KiB in flight, server RSS idle {:?} KiB, max {} KiB",
        in_flight / 1024,
        idle_rss.map(|r| r / 1024),
        max_rss / 1024
    );
    assert!(
        in_flight < 64 * MIB,
        "{} MiB left the peer while the reader paused",
        in_flight / MIB
    );
    if let Some(idle) = idle_rss {
        let growth = max_rss.saturating_sub(idle);
        assert!(
            growth < 64 * MIB,
            "the server's RSS grew by {} MiB (idle {} MiB) while the reader paused",
            growth / MIB,
            idle / MIB
        );
    }

    // Reading again resumes the transfer, and nothing was lost.
    if let Some(e) = drain(&mut body, &mut check).await {
        panic!("the body failed after {} bytes: {e}", check.len());
    }
    assert_eq!(check.len(), total);
}

async fn timeouts(target: Target) {
    let peer = HttpPeer::start().await;
    let t = TestEnv::new(target).await;

    // No timeout: the request waits as long as the peer does.
    let untimed = tokio::spawn({
        let http = http(&t).clone();
        let url = peer.url("/gate");
        async move { http.request(get(url)).await }
    });
    within(
        "the untimed request to arrive",
        peer.state.arrived.subscribe().wait_for(|n| *n >= 1),
    )
    .await
    .unwrap();

    let started = Instant::now();
    let error = within(
        "a timed-out request",
        http(&t).request(HttpRequestParams {
            timeout_ms: Some(200),
            ..get(peer.url("/hang"))
        }),
    )
    .await
    .unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(error.code(), INTERNAL, "{error}");
    assert!(
        error.to_string().starts_with("http/request failed: "),
        "{error}"
    );

    // Past that deadline, the untimed request is still waiting; it completes when the peer
    // answers.
    assert!(!untimed.is_finished());
    peer.state.open_gate();
    let r = within("the untimed request", untimed)
        .await
        .unwrap()
        .expect("no timeout applies");
    assert_eq!(&r.body_base64[..], b"opened");

    // The deadline covers the body too: a stream whose body stalls fails midway.
    let (head, mut body) = within(
        "stream",
        http(&t).request_stream(HttpRequestParams {
            timeout_ms: Some(300),
            ..get(peer.url("/slow-body"))
        }),
    )
    .await
    .expect("the head arrives before the deadline");
    assert_eq!(head.status, 200);
    let mut received = vec![];
    let error = within("the body to time out", async {
        loop {
            match body.next().await {
                Some(Ok(chunk)) => received.extend_from_slice(&chunk),
                Some(Err(e)) => return e,
                None => panic!("the stalled body ended cleanly"),
            }
        }
    })
    .await;
    assert_eq!(received, b"first");
    assert_eq!(error.code(), INTERNAL, "{error}");
    assert!(within("the end", body.next()).await.is_none());
}

async fn invalid_requests_are_rejected(target: Target) {
    let peer = HttpPeer::start().await;
    let t = TestEnv::new(target).await;
    let with_header = |name: &str, value: &str| HttpRequestParams {
        headers: vec![HttpHeader::new(name, value)],
        ..get(peer.url("/echo"))
    };
    let cases = [
        (
            HttpRequestParams {
                method: "GE T".into(),
                ..get(peer.url("/echo"))
            },
            "http/request method is invalid: ",
        ),
        (
            HttpRequestParams {
                method: String::new(),
                ..get(peer.url("/echo"))
            },
            "http/request method is invalid: ",
        ),
        (get("not a url"), "http/request url is invalid: "),
        (
            get(format!("ftp://{}/file", peer.addr)),
            "http/request only supports http and https URLs, got ftp",
        ),
        (
            get("file:///etc/passwd"),
            "http/request only supports http and https URLs, got file",
        ),
        (
            with_header("bad name", "v"),
            "http/request header name is invalid: ",
        ),
        (
            with_header("x-ok", "line\r\nx-injected: 1"),
            "http/request header value is invalid for x-ok: ",
        ),
    ];
    for (params, expected) in cases {
        let buffered = within("request", http(&t).request(params.clone()))
            .await
            .unwrap_err();
        let streamed = within("stream", http(&t).request_stream(params))
            .await
            .unwrap_err();
        for error in [buffered, streamed] {
            assert_eq!(error.code(), INVALID_PARAMS, "{error}");
            assert!(error.to_string().starts_with(expected), "{error}");
        }
    }
    assert!(peer.state.received.lock().unwrap().is_empty());
}

async fn unreachable_peer_is_a_failure(target: Target) {
    let t = TestEnv::new(target).await;
    // A port nobody listens on any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/");
    let buffered = within("request", http(&t).request(get(&url)))
        .await
        .unwrap_err();
    let streamed = within("stream", http(&t).request_stream(get(&url)))
        .await
        .unwrap_err();
    for error in [buffered, streamed] {
        assert_eq!(error.code(), INTERNAL, "{error}");
        assert!(
            error.to_string().starts_with("http/request failed: "),
            "{error}"
        );
    }
}

async fn buffered_body_limit(target: Target) {
    let peer = HttpPeer::start().await;
    let t = env_with_body_limit(target, MIB).await;
    let r = within(
        "request",
        http(&t).request(get(peer.url(&format!("/fixed/{MIB}")))),
    )
    .await
    .expect("a body at the limit");
    assert_eq!(&r.body_base64[..], &pattern(0, MIB as usize)[..]);

    // Over the limit, with a content-length and without one (chunked).
    for path in [format!("/fixed/{}", MIB + 1), "/stream/3/400000".to_owned()] {
        let error = within("request", http(&t).request(get(peer.url(&path))))
            .await
            .unwrap_err();
        assert_eq!(error.code(), INVALID_REQUEST, "{error}");
        let object = error.to_error_object();
        assert!(object.message.contains("maxHttpBodyBytes"), "{error}");
        let data = object.data.expect("the limit is named in data");
        assert_eq!(data["limit"], "maxHttpBodyBytes");
        assert_eq!(data["maxBytes"], MIB);
    }

    // Streamed bodies have no limit.
    let (_, body) = within(
        "stream",
        http(&t).request_stream(get(peer.url(&format!("/fixed/{}", 2 * MIB)))),
    )
    .await
    .unwrap();
    let bytes = within("body", body.collect()).await.unwrap();
    assert_eq!(bytes.len() as u64, 2 * MIB);
}

/// Requests to loopback go direct even when the server's environment names a proxy; other
/// destinations use it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_bypasses_the_proxy() {
    let peer = HttpPeer::start().await;
    let proxy = HttpPeer::start_proxy().await;
    let proxy_url = format!("http://{}", proxy.addr);
    let server = ServerProcess::start_with_env(
        &[],
        &[
            ("HTTP_PROXY", &proxy_url),
            ("http_proxy", &proxy_url),
            ("ALL_PROXY", &proxy_url),
            ("NO_PROXY", ""),
            ("no_proxy", ""),
        ],
    );
    let env = within(
        "connect",
        exec_server_client::connect_environment(&server.url),
    )
    .await
    .unwrap();
    let r = within("request", env.http().request(get(peer.url("/status/200"))))
        .await
        .unwrap();
    assert_eq!(&r.body_base64[..], b"status 200");
    // The proxy answers for a name that never resolves (`.invalid` is reserved), which shows
    // that the proxy setting is honoured where it applies.
    let r = within(
        "request",
        env.http()
            .request(get("http://exec-server-test.invalid/via")),
    )
    .await
    .unwrap();
    assert_eq!(
        std::str::from_utf8(&r.body_base64).unwrap(),
        "via proxy http://exec-server-test.invalid/via"
    );
}

// ---- The wire, with raw frames ----

fn stream_request(id: i64, request_id: &str, url: &str) -> Value {
    json!({"id": id, "method": "http/request", "params": {
        "method": "GET", "url": url, "headers": null, "bodyBase64": null, "timeoutMs": null,
        "requestId": request_id, "streamResponse": true}})
}

/// Reads messages until `done` says stop, returning them all.
async fn read_until(peer: &mut RawPeer, mut done: impl FnMut(&Value) -> bool) -> Vec<Value> {
    let mut seen = vec![];
    loop {
        let m = peer.next().await.expect("the server closed the connection");
        let stop = done(&m);
        seen.push(m);
        if stop {
            return seen;
        }
    }
}

fn is_delta_of(m: &Value, request_id: &str) -> bool {
    m["method"] == "http/request/bodyDelta" && m["params"]["requestId"] == request_id
}

fn is_done_of(m: &Value, request_id: &str) -> bool {
    is_delta_of(m, request_id) && m["params"]["done"] == true
}

/// The bytes of the deltas of `request_id`, checking seqs from 1, one terminal frame, last.
fn body_of(messages: &[Value], request_id: &str) -> Vec<u8> {
    use base64::Engine as _;
    let deltas: Vec<&Value> = messages
        .iter()
        .filter(|m| is_delta_of(m, request_id))
        .map(|m| &m["params"])
        .collect();
    let mut body = vec![];
    for (i, delta) in deltas.iter().enumerate() {
        assert_eq!(delta["seq"], i as u64 + 1, "seqs are contiguous from 1");
        let last = i + 1 == deltas.len();
        assert_eq!(
            delta["done"], last,
            "exactly one terminal frame, at the end"
        );
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(delta["deltaBase64"].as_str().unwrap())
            .unwrap();
        body.extend(bytes);
    }
    body
}

#[tokio::test]
async fn streamed_wire_order() {
    let http_peer = HttpPeer::start().await;
    let server = ServerProcess::start(&[]);
    let mut peer = RawPeer::initialized(&server.url).await;
    peer.send(stream_request(1, "s1", &http_peer.url("/stream/5/100000")))
        .await;
    let first = peer.next().await.unwrap();
    assert_eq!(first["id"], 1, "the response comes first: {first}");
    assert_eq!(first["result"]["status"], 200);
    assert_eq!(first["result"]["bodyBase64"], "");
    let messages = read_until(&mut peer, |m| is_done_of(m, "s1")).await;
    let done = &messages.last().unwrap()["params"];
    assert_eq!(done["error"], Value::Null);
    assert_eq!(done["deltaBase64"], "");
    assert_eq!(body_of(&messages, "s1"), pattern(0, 500_000));

    // Nothing of s1 follows its terminal frame.
    peer.send(json!({"id": 2, "method": "http/request", "params": {
        "method": "GET", "url": http_peer.url("/status/200"), "requestId": "b"}}))
        .await;
    let messages = read_until(&mut peer, |m| m["id"] == 2).await;
    assert!(!messages.iter().any(|m| is_delta_of(m, "s1")));
    assert_eq!(messages.last().unwrap()["result"]["status"], 200);

    // A broken body ends with one terminal frame that carries the error.
    peer.send(stream_request(3, "broken", &http_peer.url("/break/1000")))
        .await;
    let messages = read_until(&mut peer, |m| is_done_of(m, "broken")).await;
    assert_eq!(messages[0]["id"], 3, "the response comes first");
    let body = body_of(&messages, "broken");
    assert!(body.len() <= 1000);
    let error = &messages.last().unwrap()["params"]["error"];
    assert!(
        error
            .as_str()
            .is_some_and(|e| e.starts_with("failed to read http/request response body: ")),
        "{error}"
    );
}

#[tokio::test]
async fn duplicate_active_request_id_is_refused() {
    let http_peer = HttpPeer::start().await;
    let server = ServerProcess::start(&[]);
    let mut peer = RawPeer::initialized(&server.url).await;
    peer.send(stream_request(1, "dup", &http_peer.url("/held")))
        .await;
    let messages = read_until(&mut peer, |m| is_delta_of(m, "dup")).await;
    assert_eq!(messages[0]["id"], 1);

    let r = peer
        .request(stream_request(2, "dup", &http_peer.url("/stream/1/10")))
        .await;
    assert_eq!(r["error"]["code"], INVALID_PARAMS, "{r}");
    assert_eq!(
        r["error"]["message"],
        "http/request streamResponse requestId `dup` is already active"
    );
    // Another id streams meanwhile.
    peer.send(stream_request(3, "other", &http_peer.url("/stream/1/10")))
        .await;
    let messages = read_until(&mut peer, |m| is_done_of(m, "other")).await;
    assert_eq!(body_of(&messages, "other"), pattern(0, 10));

    // Once the stream ends, its id is free again.
    http_peer.state.open_gate();
    let messages = read_until(&mut peer, |m| is_done_of(m, "dup")).await;
    assert_eq!(messages.iter().filter(|m| is_done_of(m, "dup")).count(), 1);
    let r = peer
        .request(stream_request(4, "dup", &http_peer.url("/stream/1/10")))
        .await;
    assert_eq!(r["result"]["status"], 200, "{r}");

    // A streamed request needs an id.
    let r = peer
        .request(json!({"id": 5, "method": "http/request", "params": {
            "method": "GET", "url": http_peer.url("/stream/1/10"), "streamResponse": true}}))
        .await;
    assert_eq!(r["error"]["code"], INVALID_PARAMS, "{r}");
}

#[tokio::test]
async fn streams_end_with_their_connection() {
    let http_peer = HttpPeer::start().await;
    let server = ServerProcess::start(&[]);
    let mut peer = RawPeer::initialized(&server.url).await;
    peer.send(stream_request(1, "held", &http_peer.url("/held")))
        .await;
    read_until(&mut peer, |m| is_delta_of(m, "held")).await;
    drop(peer);
    // The server aborts the stream, which drops the peer's connection and with it the body.
    within(
        "the held body to be dropped",
        http_peer
            .state
            .held_dropped
            .subscribe()
            .wait_for(|n| *n >= 1),
    )
    .await
    .unwrap();

    // A request still waiting for its response is abandoned with its connection too.
    let mut peer = RawPeer::initialized(&server.url).await;
    peer.send(json!({"id": 1, "method": "http/request", "params": {
        "method": "GET", "url": http_peer.url("/hang-counted"), "requestId": "w"}}))
        .await;
    within(
        "the request to reach the peer",
        http_peer.state.arrived.subscribe().wait_for(|n| *n >= 2),
    )
    .await
    .unwrap();
    drop(peer);
    within(
        "the hanging request to be dropped",
        http_peer
            .state
            .hang_dropped
            .subscribe()
            .wait_for(|n| *n >= 1),
    )
    .await
    .unwrap();

    // The same id is fine on another connection (streams belong to connections).
    let mut other = RawPeer::initialized(&server.url).await;
    let r = other
        .request(stream_request(1, "held", &http_peer.url("/stream/1/10")))
        .await;
    assert_eq!(r["result"]["status"], 200, "{r}");
}

#[tokio::test]
async fn http_requests_need_the_handshake() {
    let http_peer = HttpPeer::start().await;
    let server = ServerProcess::start(&[]);
    let mut peer = RawPeer::connect(&server.url).await;
    let r = peer
        .request(stream_request(1, "x", &http_peer.url("/status/200")))
        .await;
    assert_eq!(r["error"]["code"], INVALID_REQUEST);
    assert_eq!(
        r["error"]["message"],
        "client must call initialize before using http methods"
    );
    // The limit is advertised.
    let r = peer
        .request(json!({"id": 2, "method": "initialize", "params": {"clientName": "t"}}))
        .await;
    assert_eq!(
        r["result"]["capabilities"]["limits"]["maxHttpBodyBytes"],
        64 * MIB
    );
}

/// A body stream of the client library fails, with a clear error, when its connection is
/// lost; the client reconnects and new requests work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_streams_fail_on_connection_loss() {
    let http_peer = HttpPeer::start().await;
    let server = ServerProcess::start(&[]);
    let client = within(
        "connect",
        exec_server_client::ExecServerClient::connect(
            &server.url,
            exec_server_client::ClientOptions::default(),
        ),
    )
    .await
    .unwrap();
    let env = exec_server_client::environment(client.clone());
    let (_, mut body) = within(
        "stream",
        env.http().request_stream(get(http_peer.url("/held"))),
    )
    .await
    .unwrap();
    let first = within("the first chunk", body.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"first");

    client.drop_connection();
    let error = within("the stream to fail", body.next())
        .await
        .expect("an error, not a clean end")
        .unwrap_err();
    assert!(error.to_string().contains("connection lost"), "{error}");
    assert!(within("the end", body.next()).await.is_none());

    let r = within(
        "a request after the reconnect",
        env.http().request(get(http_peer.url("/status/200"))),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
}
