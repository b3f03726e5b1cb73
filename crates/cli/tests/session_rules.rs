//! The session resume rules, against the real server, with raw websocket peers.

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::raw::RawPeer;
use support::{within, ServerProcess};

async fn initialize(peer: &mut RawPeer, resume: Option<&str>) -> Value {
    peer.request(json!({"id": "init", "method": "initialize",
        "params": {"clientName": "rules", "resumeSessionId": resume}}))
        .await
}

/// Resumes `session` from a new connection, retrying while the server has not yet noticed
/// that the old connection is gone.
async fn resume(url: &str, session: &str) -> RawPeer {
    within("resume", async {
        loop {
            let mut peer = RawPeer::connect(url).await;
            let r = initialize(&mut peer, Some(session)).await;
            if r["result"]["sessionId"] == session {
                peer.send(json!({"method": "initialized"})).await;
                return peer;
            }
            let message = r["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            assert!(message.contains("already attached"), "{r}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

fn start_cat(id: i64, process_id: &str) -> Value {
    json!({"id": id, "method": "process/start", "params": {"processId": process_id,
        "argv": ["/bin/cat"], "cwd": "/", "env": {}, "tty": false, "pipeStdin": true}})
}

#[tokio::test]
async fn unknown_session_is_rejected() {
    let server = ServerProcess::start(&[]);
    let mut peer = RawPeer::connect(&server.url).await;
    let r = initialize(&mut peer, Some("no-such-session")).await;
    assert_eq!(r["error"]["code"], -32600);
    assert_eq!(r["error"]["message"], "unknown session id no-such-session");
}

#[tokio::test]
async fn a_live_session_cannot_be_taken_over() {
    let server = ServerProcess::start(&[]);
    let mut owner = RawPeer::connect(&server.url).await;
    let r = initialize(&mut owner, None).await;
    let session = r["result"]["sessionId"].as_str().unwrap().to_owned();
    owner.send(json!({"method": "initialized"})).await;

    let mut thief = RawPeer::connect(&server.url).await;
    let r = initialize(&mut thief, Some(&session)).await;
    assert_eq!(r["error"]["code"], -32600, "{r}");
    assert_eq!(
        r["error"]["message"],
        format!("session {session} is already attached to another connection")
    );
    // The owner is unaffected.
    let r = owner.request(start_cat(1, "still-mine")).await;
    assert_eq!(r["result"]["processId"], "still-mine", "{r}");
}

/// (A long poll on the old connection ending with "session has been resumed by another
/// connection" cannot be observed over the wire: a websocket peer that has closed cannot be
/// written to. `handlers::process` tests it at the handler level.)
#[tokio::test]
async fn resume_moves_notifications_to_the_new_connection() {
    let server = ServerProcess::start(&[]);
    let mut old = RawPeer::connect(&server.url).await;
    let r = initialize(&mut old, None).await;
    let session = r["result"]["sessionId"].as_str().unwrap().to_owned();
    old.send(json!({"method": "initialized"})).await;
    let r = old.request(start_cat(1, "cat")).await;
    assert_eq!(r["result"]["processId"], "cat", "{r}");
    // The old peer goes away; the server detaches the session.
    old.half_close().await;

    let mut new = resume(&server.url, &session).await;
    let r = new
        .request(json!({"id": 3, "method": "process/write",
            "params": {"processId": "cat", "chunk": "aGkK"}}))
        .await;
    assert_eq!(r["result"]["status"], "accepted", "{r}");
    let output = within("output on the new connection", async {
        loop {
            let m = new.next().await.expect("new connection open");
            if m["method"] == "process/output" {
                return m;
            }
        }
    })
    .await;
    assert_eq!(output["params"]["chunk"], "aGkK", "{output}");
    // The old connection got nothing after it left.
    assert_eq!(old.next().await, None);
}

#[tokio::test]
async fn a_silent_peer_is_dropped_so_its_session_can_be_resumed() {
    let server = ServerProcess::start(&["--peer-timeout", "1"]);
    let mut silent = RawPeer::connect(&server.url).await;
    let r = initialize(&mut silent, None).await;
    let session = r["result"]["sessionId"].as_str().unwrap().to_owned();
    // `silent` neither reads nor answers pings from here on. Within about the peer timeout
    // the server must drop it, which is what lets this resume succeed.
    // Bounded well under the 20 s default, so only detection at the configured 1 s passes.
    let _new = tokio::time::timeout(Duration::from_secs(10), resume(&server.url, &session))
        .await
        .expect("the silent peer was not dropped within 10 s");
    drop(silent);
}
