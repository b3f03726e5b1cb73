//! The wire protocol, driven with raw websocket frames against the real server.

mod support;

use serde_json::{json, Value};
use support::raw::RawPeer;
use support::ServerProcess;

fn start(id: i64, process_id: &str, argv: &[&str]) -> Value {
    json!({"id": id, "method": "process/start", "params": {
        "processId": process_id, "argv": argv, "cwd": "/", "envPolicy": null,
        "env": {"PATH": "/usr/bin:/bin"}, "tty": false, "pipeStdin": false, "arg0": null}})
}

#[tokio::test]
async fn handshake_gating() {
    let server = ServerProcess::start(&[]);
    let mut peer = RawPeer::connect(&server.url).await;
    let r = peer.request(start(1, "p", &["/bin/true"])).await;
    assert_eq!(r["error"]["code"], -32600);
    assert_eq!(
        r["error"]["message"],
        "client must call initialize before using exec methods"
    );
    let r = peer
        .request(json!({"id": 2, "method": "initialize", "params": {"clientName": "t", "resumeSessionId": null}}))
        .await;
    let result = &r["result"];
    assert!(
        result["sessionId"].as_str().is_some_and(|s| s.len() == 36),
        "{r}"
    );
    assert_eq!(result["serverInfo"]["name"], "exec-server");
    assert_eq!(result["capabilities"]["features"]["exitSignal"], true);
    assert!(result["capabilities"]["limits"]["maxMessageBytes"].is_u64());

    let r = peer.request(start(3, "p", &["/bin/true"])).await;
    assert_eq!(
        r["error"]["message"],
        "client must send initialized before using exec methods"
    );
    let r = peer
        .request(json!({"id": 4, "method": "initialize", "params": {"clientName": "t"}}))
        .await;
    assert_eq!(r["error"]["code"], -32600);
    assert_eq!(
        r["error"]["message"],
        "initialize may only be sent once per connection"
    );

    peer.send(json!({"method": "initialized"})).await;
    let r = peer.request(start(5, "p", &["/bin/true"])).await;
    assert_eq!(r["result"]["processId"], "p", "{r}");
}

#[tokio::test]
async fn initialize_requires_client_name() {
    let server = ServerProcess::start(&[]);
    let mut peer = RawPeer::connect(&server.url).await;
    let r = peer
        .request(json!({"id": "s", "method": "initialize", "params": {}}))
        .await;
    assert_eq!(r["error"]["code"], -32602, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("clientName"),
        "{r}"
    );
    // A failed initialize may be retried on the same connection.
    let r = peer
        .request(json!({"id": "t", "method": "initialize", "params": {"clientName": "x"}}))
        .await;
    assert!(r["result"]["sessionId"].is_string(), "{r}");
}

#[tokio::test]
async fn initialized_before_initialize_closes_the_connection() {
    let server = ServerProcess::start(&[]);
    let mut peer = RawPeer::connect(&server.url).await;
    peer.send(json!({"method": "initialized", "params": {}}))
        .await;
    assert_eq!(peer.next().await, None);
}

#[tokio::test]
async fn malformed_json_gets_id_minus_one_and_the_connection_lives() {
    let server = ServerProcess::start(&[]);
    let mut peer = RawPeer::connect(&server.url).await;
    for bad in [
        "{not json",
        "[]",
        "42",
        "{}",
        r#"{"id": 1.5, "method": "x"}"#,
    ] {
        peer.send_text(bad.to_owned()).await;
        let r = peer.reply().await;
        assert_eq!(r["id"], -1, "{bad}: {r}");
        assert_eq!(r["error"]["code"], -32600, "{bad}: {r}");
        let message = r["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("failed to parse websocket JSON-RPC message from"),
            "{message}"
        );
    }
    let r = peer
        .request(json!({"id": 9, "method": "initialize", "params": {"clientName": "t"}}))
        .await;
    assert!(r["result"]["sessionId"].is_string(), "{r}");
}

#[tokio::test]
async fn unknown_methods_and_notifications() {
    let server = ServerProcess::start(&[]);
    let mut peer = RawPeer::initialized(&server.url).await;
    let r = peer
        .request(json!({"id": 1, "method": "process/teleport", "params": {}}))
        .await;
    assert_eq!(r["error"]["code"], -32601, "{r}");
    // Unknown notifications are ignored, not a reason to drop the connection.
    peer.send(json!({"method": "something/else", "params": {"x": 1}}))
        .await;
    // A binary frame carrying JSON is accepted too, with a `jsonrpc` member ignored.
    let msg = json!({"jsonrpc": "2.0", "id": 2, "method": "process/terminate", "params": {"processId": "none"}});
    peer.send_binary(msg.to_string().into_bytes()).await;
    let r = peer.reply().await;
    assert_eq!(r, json!({"id": 2, "result": {"running": false}}));
    assert!(r.get("jsonrpc").is_none());
}

#[tokio::test]
async fn bad_params_are_invalid_params() {
    let server = ServerProcess::start(&[]);
    let mut peer = RawPeer::initialized(&server.url).await;
    let r = peer
        .request(json!({"id": 1, "method": "process/start", "params": {"processId": "x"}}))
        .await;
    assert_eq!(r["error"]["code"], -32602, "{r}");
    let r = peer.request(start(2, "x", &[])).await;
    assert_eq!(r["error"]["code"], -32602, "{r}");
    assert_eq!(r["error"]["message"], "argv must not be empty");
    let mut relative = start(3, "x", &["/bin/true"]);
    relative["params"]["cwd"] = json!("relative/dir");
    let r = peer.request(relative).await;
    assert_eq!(r["error"]["code"], -32602, "{r}");
    let r = peer
        .request(json!({"id": 4, "method": "process/write", "params": {"processId": "x", "chunk": "%%%"}}))
        .await;
    assert_eq!(r["error"]["code"], -32602, "{r}");
}

#[tokio::test]
async fn long_poll_does_not_block_other_requests() {
    let server = ServerProcess::start(&[]);
    let mut peer = RawPeer::initialized(&server.url).await;
    let r = peer
        .request(start(1, "sleeper", &["/bin/sleep", "100"]))
        .await;
    assert!(r.get("result").is_some(), "{r}");
    peer.send(json!({"id": 2, "method": "process/read",
        "params": {"processId": "sleeper", "afterSeq": 0, "waitMs": 60000}}))
        .await;
    // While the read waits, another request on the same connection is answered.
    let r = peer.request(start(3, "other", &["/bin/echo", "hi"])).await;
    assert_eq!(r["result"]["processId"], "other", "{r}");
    let r = peer
        .request(
            json!({"id": 4, "method": "process/terminate", "params": {"processId": "sleeper"}}),
        )
        .await;
    assert_eq!(r["result"]["running"], true, "{r}");
    // The exit ends the long poll.
    let r = peer.reply().await;
    assert_eq!(r["id"], 2, "{r}");
    assert_eq!(r["result"]["exited"], true, "{r}");
    assert_eq!(r["result"]["exitCode"], -1, "{r}");
    assert_eq!(r["result"]["signal"], 9, "{r}");
}

#[tokio::test]
async fn notifications_follow_the_start_response_with_shared_seqs() {
    let server = ServerProcess::start(&[]);
    let mut peer = RawPeer::initialized(&server.url).await;
    peer.send(start(1, "p1", &["/bin/sh", "-c", "printf hi; exit 7"]))
        .await;
    let first = peer.next().await.unwrap();
    // `sandboxType` is what codex's current servers report: `none` without a sandbox.
    assert_eq!(
        first,
        json!({"id": 1, "result": {"processId": "p1", "sandboxType": "none"}})
    );
    let mut events = vec![];
    while events.len() < 3 {
        events.push(peer.next().await.unwrap());
    }
    assert_eq!(
        events,
        vec![
            json!({"method": "process/output", "params": {"processId": "p1", "seq": 1, "stream": "stdout", "chunk": "aGk="}}),
            json!({"method": "process/exited", "params": {"processId": "p1", "seq": 2, "exitCode": 7, "sandboxDenied": false}}),
            json!({"method": "process/closed", "params": {"processId": "p1", "seq": 3}}),
        ]
    );
}

#[tokio::test]
async fn oversized_message_gets_a_clean_error_and_the_connection_lives() {
    let server = ServerProcess::start(&["--max-message-bytes", "4096"]);
    let mut peer = RawPeer::initialized(&server.url).await;
    // Over the 4096-byte limit but under the websocket hard cap (twice the limit).
    let big = "x".repeat(6_000);
    let r = peer
        .request(json!({"id": 77, "method": "process/write", "params": {"processId": "p", "chunk": big}}))
        .await;
    assert_eq!(r["error"]["code"], -32600, "{r}");
    assert_eq!(r["error"]["data"]["limit"], "maxMessageBytes", "{r}");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("4096"),
        "{r}"
    );
    let r = peer
        .request(json!({"id": 78, "method": "process/terminate", "params": {"processId": "p"}}))
        .await;
    assert_eq!(r["result"]["running"], false, "{r}");
}

/// The process additions on the raw wire, in the shapes codex-style clients send (explicit
/// nulls, unknown fields), and advertised in `capabilities.methods`.
#[tokio::test]
async fn process_additions_on_the_wire() {
    let server = ServerProcess::start(&[]);
    let mut peer = RawPeer::connect(&server.url).await;
    let r = peer
        .request(json!({"id": 1, "method": "initialize", "params": {"clientName": "t"}}))
        .await;
    let advertised = &r["result"]["capabilities"]["methods"];
    for method in [
        "process/signal",
        "process/closeStdin",
        "process/list",
        "process/resize",
    ] {
        assert!(
            advertised.as_array().unwrap().contains(&json!(method)),
            "{method} not in {advertised}"
        );
    }
    peer.send(json!({"method": "initialized"})).await;

    let mut cat = start(2, "cat", &["/bin/cat"]);
    cat["params"]["pipeStdin"] = json!(true);
    assert!(peer.request(cat).await.get("result").is_some());
    // Pipelined without waiting: write, close, write. Replies come in order, and the close
    // lands after the first write only.
    peer.send(json!({"id": 3, "method": "process/write", "params": {"processId": "cat", "chunk": "aGkK"}}))
        .await;
    peer.send(json!({"id": 4, "method": "process/closeStdin", "params": {"processId": "cat", "extra": null}}))
        .await;
    peer.send(json!({"id": 5, "method": "process/write", "params": {"processId": "cat", "chunk": "eAo="}}))
        .await;
    assert_eq!(
        peer.reply().await,
        json!({"id": 3, "result": {"status": "accepted"}})
    );
    assert_eq!(peer.reply().await, json!({"id": 4, "result": {}}));
    assert_eq!(
        peer.reply().await,
        json!({"id": 5, "result": {"status": "stdinClosed"}})
    );
    // cat echoes "hi\n", then sees end of file and exits 0.
    // Notifications that arrived while waiting for the replies were kept aside.
    let mut pending = std::mem::take(&mut peer.notifications).into_iter();
    let mut exit = None;
    while exit.is_none() {
        let m = match pending.next() {
            Some(m) => m,
            None => peer.next().await.expect("notification"),
        };
        if m["method"] == "process/output" {
            assert_eq!(m["params"]["chunk"], "aGkK", "{m}");
        }
        if m["method"] == "process/exited" {
            exit = Some(m["params"]["exitCode"].clone());
        }
    }
    assert_eq!(exit, Some(json!(0)));

    let r = peer
        .request(json!({"id": 6, "method": "process/list", "params": null}))
        .await;
    let processes = r["result"]["processes"].as_array().expect("processes");
    assert_eq!(processes.len(), 1, "{r}");
    assert_eq!(processes[0]["processId"], "cat");
    assert_eq!(processes[0]["running"], false);
    assert_eq!(processes[0]["tty"], false);
    assert_eq!(processes[0]["exitCode"], 0);
    assert!(processes[0]["pid"].is_u64(), "{r}");
    assert!(processes[0].get("signal").is_none(), "{r}");

    let r = peer
        .request(json!({"id": 7, "method": "process/signal", "params": {"processId": "cat", "signal": "TERM"}}))
        .await;
    assert_eq!(r["result"], json!({"delivered": false}), "{r}");
    let r = peer
        .request(json!({"id": 8, "method": "process/signal", "params": {"processId": "cat", "signal": null}}))
        .await;
    assert_eq!(r["error"]["code"], -32602, "{r}");
    let r = peer
        .request(json!({"id": 9, "method": "process/signal", "params": {"processId": "cat", "signal": "SIGNOPE"}}))
        .await;
    assert_eq!(r["error"]["code"], -32602, "{r}");
    let r = peer
        .request(json!({"id": 10, "method": "process/resize", "params": {"processId": "cat", "rows": null, "cols": 80}}))
        .await;
    assert_eq!(r["error"]["code"], -32602, "{r}");
    let r = peer
        .request(json!({"id": 11, "method": "process/resize", "params": {"processId": "cat", "rows": 24, "cols": 80}}))
        .await;
    assert_eq!(r["error"]["code"], -32602, "{r}");
    assert_eq!(
        r["error"]["message"],
        "process cat has no terminal to resize (it was started without tty)"
    );
    let r = peer
        .request(json!({"id": 12, "method": "process/closeStdin", "params": {"processId": "nope"}}))
        .await;
    assert_eq!(r["error"]["code"], -32600, "{r}");
    assert_eq!(r["error"]["message"], "unknown process id nope");
}

/// A request whose id is `null` is answered (-32600, id -1), not dropped as if it were a
/// notification, and the connection goes on.
#[tokio::test]
async fn a_null_id_is_answered_with_an_error() {
    let server = ServerProcess::start(&[]);
    let mut peer = RawPeer::initialized(&server.url).await;
    peer.send(json!({"id": null, "method": "process/list", "params": {}}))
        .await;
    let r = peer.reply().await;
    assert_eq!(r["id"], -1, "{r}");
    assert_eq!(r["error"]["code"], -32600, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`id` is null"),
        "{r}"
    );
    let r = peer
        .request(json!({"id": 2, "method": "process/list", "params": {}}))
        .await;
    assert!(r["result"]["processes"].is_array(), "{r}");
}

/// `tty` and `env` are optional, so an explicit `null` means their default.
#[tokio::test]
async fn start_accepts_null_tty_and_env() {
    let server = ServerProcess::start(&[]);
    let mut peer = RawPeer::initialized(&server.url).await;
    let r = peer
        .request(
            json!({"id": 1, "method": "process/start", "params": {"processId": "p",
            "argv": ["/bin/true"], "cwd": "/", "env": null, "tty": null, "pipeStdin": null,
            "arg0": null, "envPolicy": null, "sandbox": null, "timeoutMs": null}}),
        )
        .await;
    assert_eq!(r["result"]["processId"], "p", "{r}");
}
