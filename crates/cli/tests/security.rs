//! Safe to expose: the token, the origin check, the refusal to serve the network without
//! auth, health and metrics, and limits that answer with an error naming them.

mod support;

use serde_json::json;
use std::process::Command;
use support::raw::RawPeer;
use support::{within, ServerProcess};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const TOKEN: &str = "test-token-with-enough-entropy-0123456789";

/// A server that requires TOKEN, given through a token file.
fn server_with_token(extra: &[&str]) -> (ServerProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let mut args = vec!["--token-file", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    (ServerProcess::start(&args), dir)
}

/// Attempts a websocket upgrade with the given headers; the HTTP status of the answer.
async fn upgrade_status(url: &str, headers: &[(&str, &str)]) -> u16 {
    let mut request = url.into_client_request().unwrap();
    for (k, v) in headers {
        let name: tokio_tungstenite::tungstenite::http::HeaderName = k.parse().unwrap();
        request.headers_mut().insert(name, v.parse().unwrap());
    }
    match within("upgrade", tokio_tungstenite::connect_async(request)).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("unexpected upgrade failure: {e}"),
    }
}

/// A plain HTTP GET on the server's port: (status, body).
async fn get(url: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let addr = url.trim_start_matches("ws://");
    let mut stream = within("connect", tokio::net::TcpStream::connect(addr))
        .await
        .unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    within("response", stream.read_to_string(&mut response))
        .await
        .unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn the_token_is_required_and_checked() {
    let (server, _dir) = server_with_token(&[]);
    assert_eq!(upgrade_status(&server.url, &[]).await, 401);
    let wrong = "Bearer test-token-with-enough-entropy-0123456788";
    assert_eq!(
        upgrade_status(&server.url, &[("authorization", wrong)]).await,
        401
    );
    let right = format!("Bearer {TOKEN}");
    assert_eq!(
        upgrade_status(&server.url, &[("authorization", &right)]).await,
        101
    );

    // The client library sends it and works end to end.
    let options = exec_server_client::ClientOptions {
        token: Some(TOKEN.to_owned()),
        ..Default::default()
    };
    let client = within(
        "connect",
        exec_server_client::ExecServerClient::connect(&server.url, options),
    )
    .await
    .unwrap();
    assert_eq!(client.session_id().len(), 36);
    let without = exec_server_client::ExecServerClient::connect(
        &server.url,
        exec_server_client::ClientOptions::default(),
    )
    .await
    .err()
    .expect("no token, no connection");
    assert!(without.to_string().contains("401"), "{without}");
}

#[test]
fn a_network_address_without_a_token_refuses_to_start() {
    let out = Command::new(env!("CARGO_BIN_EXE_exec-server"))
        .args(["serve", "--listen", "ws://0.0.0.0:0"])
        .env_remove("EXEC_SERVER_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "it must not print a URL");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing to listen on ws://0.0.0.0:0 without authentication"),
        "{stderr}"
    );
    assert!(stderr.contains("--token-file"), "{stderr}");
}

#[tokio::test]
async fn browser_origins_are_refused_unless_allowed() {
    let server = ServerProcess::start(&["--allow-origin", "https://ok.example"]);
    assert_eq!(
        upgrade_status(&server.url, &[("origin", "https://evil.example")]).await,
        403
    );
    assert_eq!(
        upgrade_status(&server.url, &[("origin", "https://ok.example")]).await,
        101
    );
    assert_eq!(upgrade_status(&server.url, &[]).await, 101);
}

#[tokio::test]
async fn health_is_open_and_metrics_need_the_token() {
    let (server, _dir) = server_with_token(&[]);
    assert_eq!(
        get(&server.url, "/healthz", None).await,
        (200, "ok\n".to_owned())
    );
    assert_eq!(
        get(&server.url, "/readyz", None).await,
        (200, "ready\n".to_owned())
    );
    assert_eq!(get(&server.url, "/metrics", None).await.0, 401);
    let (status, body) = get(&server.url, "/metrics", Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert!(body.contains("exec_server_connections 0"), "{body}");
}

/// Reads one sample from a `/metrics` body with a real Prometheus text parser.
fn sample(body: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => panic!("unexpected sample type for {name}"),
        })
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_move_by_exactly_the_work_done() {
    let server = ServerProcess::start(&[]);
    let before = get(&server.url, "/metrics", None).await.1;
    let mut peer = RawPeer::initialized(&server.url).await;
    // 3 successful terminates, 1 unknown method, one process printing 1000 bytes.
    for i in 0..3 {
        let r = peer
            .request(json!({"id": i, "method": "process/terminate", "params": {"processId": "x"}}))
            .await;
        assert!(r.get("result").is_some());
    }
    peer.request(json!({"id": 10, "method": "no/such", "params": {}}))
        .await;
    peer.request(
        json!({"id": 11, "method": "process/start", "params": {"processId": "p",
        "argv": ["/bin/sh", "-c", "head -c 1000 /dev/zero"], "cwd": "/", "env": {}, "tty": false}}),
    )
    .await;
    within("closed", async {
        loop {
            let m = peer.next().await.unwrap();
            if m["method"] == "process/closed" {
                return;
            }
        }
    })
    .await;
    let after = get(&server.url, "/metrics", None).await.1;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        sample(&after, name, labels) - sample(&before, name, labels)
    };
    assert_eq!(
        delta(
            "exec_server_requests_total",
            &[("method", "process/terminate"), ("outcome", "ok")]
        ),
        3.0
    );
    assert_eq!(
        delta(
            "exec_server_requests_total",
            &[("method", "process/start"), ("outcome", "ok")]
        ),
        1.0
    );
    assert_eq!(
        delta(
            "exec_server_requests_total",
            &[("method", "(connection)"), ("code", "-32601")]
        ),
        1.0
    );
    assert_eq!(delta("exec_server_output_bytes_total", &[]), 1000.0);
    assert_eq!(sample(&after, "exec_server_connections", &[]), 1.0);
    assert_eq!(sample(&after, "exec_server_sessions", &[]), 1.0);
    assert_eq!(delta("exec_server_connections_total", &[]), 1.0);
}

#[tokio::test]
async fn limits_answer_with_their_name_and_the_connection_goes_on() {
    let server = ServerProcess::start(&["--max-sessions", "1", "--max-processes-per-session", "1"]);
    let mut first = RawPeer::initialized(&server.url).await;
    let mut second = RawPeer::connect(&server.url).await;
    let r = second
        .request(json!({"id": 1, "method": "initialize", "params": {"clientName": "t"}}))
        .await;
    assert_eq!(r["error"]["code"], -32600, "{r}");
    assert_eq!(r["error"]["data"]["limit"], "maxSessions", "{r}");

    let start = |id: i64, pid: &str| {
        json!({"id": id, "method": "process/start", "params": {"processId": pid,
            "argv": ["/bin/sleep", "100"], "cwd": "/", "env": {}, "tty": false}})
    };
    let r = first.request(start(2, "a")).await;
    assert!(r.get("result").is_some(), "{r}");
    let r = first.request(start(3, "b")).await;
    assert_eq!(r["error"]["code"], -32600, "{r}");
    assert_eq!(r["error"]["data"]["limit"], "maxProcessesPerSession", "{r}");
    // The connection keeps serving.
    let r = first
        .request(json!({"id": 4, "method": "process/terminate", "params": {"processId": "a"}}))
        .await;
    assert_eq!(r["result"]["running"], true, "{r}");
}
