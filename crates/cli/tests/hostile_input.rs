//! Hostile input: a seeded stream of malformed, truncated, oversized and type-confused
//! messages against a live server. It must answer every request (id -1 for what it cannot
//! parse), never crash, keep its memory bounded, and serve a well-formed session afterwards.
//!
//! `HOSTILE_MESSAGES=100000 cargo test --release -p exec-server --test hostile_input` is the
//! soak run; the seed is printed and `HOSTILE_SEED` repeats a run.

mod support;

use serde_json::{json, Value};
use std::collections::BTreeSet;
use support::raw::RawPeer;
use support::rng::{seed_from_env, Rng};
use support::{within, ServerProcess};
use tokio_tungstenite::tungstenite::Message;

const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// A JSON value of a random type: what a confused client puts where something else belongs.
fn confused(rng: &mut Rng) -> Value {
    match rng.below(9) {
        0 => Value::Null,
        1 => json!(rng.next() as i64),
        2 => json!(-1),
        3 => json!(1.5),
        4 => json!("not what you wanted"),
        5 => json!([]),
        6 => json!([1, "two", null]),
        7 => json!({"nested": {"deeper": [true]}}),
        _ => json!(true),
    }
}

const METHODS: &[&str] = &[
    "process/start",
    "process/read",
    "process/write",
    "process/terminate",
    "fs/readFile",
    "fs/writeFile",
    "fs/getMetadata",
    "fs/remove",
    "fs/copy",
    "initialize",
    "no/such/method",
    "",
];

/// Params that never decode into a valid, harmful request: every known field gets a value of
/// the wrong type (so nothing is spawned, written or removed).
fn confused_params(rng: &mut Rng) -> Value {
    let fields = [
        "processId",
        "argv",
        "cwd",
        "env",
        "tty",
        "chunk",
        "afterSeq",
        "maxBytes",
        "path",
        "dataBase64",
        "sourcePath",
        "recursive",
        "clientName",
    ];
    let mut params = serde_json::Map::new();
    for _ in 0..rng.below(5) {
        let field = *rng.pick(&fields);
        let value = match field {
            // The only string-typed fields: give them a non-string.
            "processId" | "cwd" | "chunk" | "path" | "dataBase64" | "sourcePath" | "clientName" => {
                json!({"not": "a string"})
            }
            "argv" => json!([]),
            _ => confused(rng),
        };
        params.insert(field.to_owned(), value);
    }
    match rng.below(4) {
        0 => confused(rng),
        _ => Value::Object(params),
    }
}

/// One hostile message, and whether the server must answer it (and with which id).
enum Expect {
    Reply(i64),
    ParseError,
    Nothing,
}

fn hostile(rng: &mut Rng, id: i64) -> (String, Expect) {
    match rng.below(10) {
        // Garbage bytes that are not JSON.
        0 => {
            let len = 1 + rng.below(200) as usize;
            let text: String = (0..len)
                .map(|_| char::from(b' ' + (rng.below(94) as u8)))
                .collect();
            let text = format!("{{{text}");
            (text, Expect::ParseError)
        }
        // A valid request cut short.
        1 => {
            let full = json!({"id": id, "method": "process/read", "params": {"processId": "x"}})
                .to_string();
            let cut = 1 + rng.below(full.len() as u64 - 2) as usize;
            (full[..cut].to_owned(), Expect::ParseError)
        }
        // Shapes that are JSON but not messages.
        2 => {
            let text = rng
                .pick(&[
                    "[]",
                    "[1,2]",
                    "42",
                    "\"str\"",
                    "null",
                    "{}",
                    "{\"id\":{}}",
                    "{\"id\":1.5,\"method\":\"x\"}",
                ])
                .to_string();
            (text, Expect::ParseError)
        }
        // Over the size limit (but under the websocket hard cap of twice the limit).
        3 if rng.below(10) == 0 => {
            let pad = "x".repeat(MAX_MESSAGE_BYTES + 1 + rng.below(1000) as usize);
            let text = json!({"id": id, "method": "process/write",
                "params": {"processId": "p", "chunk": pad}})
            .to_string();
            (text, Expect::Reply(id))
        }
        // Notifications nobody knows: ignored, no answer.
        4 => {
            let text =
                json!({"method": format!("noise/{}", rng.below(100)), "params": confused(rng)})
                    .to_string();
            (text, Expect::Nothing)
        }
        // Type-confused requests to real and unknown methods.
        _ => {
            let method = *rng.pick(METHODS);
            let text =
                json!({"id": id, "method": method, "params": confused_params(rng)}).to_string();
            (text, Expect::Reply(id))
        }
    }
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_messages_are_all_answered_and_the_server_survives() {
    let count: i64 = std::env::var("HOSTILE_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    eprintln!("hostile input: {count} messages");
    let seed = seed_from_env("HOSTILE_SEED", "hostile input");
    let limit = MAX_MESSAGE_BYTES.to_string();
    let mut server = ServerProcess::start(&["--max-message-bytes", &limit]);
    let peer = RawPeer::initialized(&server.url).await;
    let idle_rss = vm_rss_kib(server.pid());

    let mut rng = Rng::new(seed);
    let mut expected_ids = BTreeSet::new();
    let mut expected_parse_errors = 0u64;
    let mut batch = Vec::new();
    for id in 1..=count {
        let (text, expect) = hostile(&mut rng, id);
        match expect {
            Expect::Reply(id) => {
                expected_ids.insert(id);
            }
            Expect::ParseError => expected_parse_errors += 1,
            Expect::Nothing => {}
        }
        batch.push(text);
    }
    let expected_answers = expected_ids.len() as u64 + expected_parse_errors;

    // Send from one task while reading here: the server applies back-pressure to a peer
    // that only writes.
    let (mut sink, mut stream) = futures::StreamExt::split(peer.into_socket());
    let sender = tokio::spawn(async move {
        use futures::SinkExt;
        for text in batch {
            sink.send(Message::Text(text.into())).await.expect("send");
        }
        sink
    });
    let (mut answered_ids, mut parse_errors) = (BTreeSet::new(), 0u64);
    within("every answer", async {
        while (answered_ids.len() as u64 + parse_errors) < expected_answers {
            let frame = futures::StreamExt::next(&mut stream)
                .await
                .expect("the server closed the connection")
                .expect("websocket error");
            let Message::Text(text) = frame else { continue };
            let m: Value = serde_json::from_str(&text).unwrap();
            if m.get("method").is_some() {
                continue;
            }
            assert!(m.get("error").is_some() || m.get("result").is_some(), "{m}");
            match m["id"].as_i64() {
                Some(-1) => {
                    assert_eq!(m["error"]["code"], -32600, "{m}");
                    parse_errors += 1;
                }
                Some(id) => assert!(answered_ids.insert(id), "answered twice: {m}"),
                None => panic!("answer without an integer id: {m}"),
            }
        }
    })
    .await;
    let sink = within("the sender", sender).await.unwrap();
    let mut peer = RawPeer::from_socket(sink.reunite(stream).expect("same socket"));
    assert_eq!(
        answered_ids, expected_ids,
        "every request answered once, by its id"
    );
    assert_eq!(
        parse_errors, expected_parse_errors,
        "one id -1 answer per unparsable message"
    );

    assert!(
        server.try_wait().is_none(),
        "the server must still be running"
    );
    let grown_kib = vm_rss_kib(server.pid()).saturating_sub(idle_rss);
    assert!(
        grown_kib < 64 * 1024,
        "RSS grew by {grown_kib} KiB over idle; the bound is 64 MiB"
    );

    // A well-formed session on the same connection still works.
    let r = peer
        .request(
            json!({"id": "ok", "method": "process/start", "params": {"processId": "fine",
            "argv": ["/bin/echo", "still here"], "cwd": "/", "env": {}, "tty": false}}),
        )
        .await;
    assert_eq!(r["result"]["processId"], "fine", "{r}");
    let output = within("output", async {
        loop {
            let m = peer.next().await.unwrap();
            if m["method"] == "process/output" {
                return m;
            }
        }
    })
    .await;
    assert_eq!(output["params"]["chunk"], "c3RpbGwgaGVyZQo=");
}
