//! Replays what a real codex 0.123 client sent to a codex exec-server (running a command,
//! reading files, applying a patch; `data/codex-0.123-client-session.jsonl`, copied from
//! `shared/interop/`) against this server, with paths rebased into a temporary directory, and
//! checks that every answer has the shape the codex server gave: same result or error, same
//! error code, and every field of the codex result present with the same JSON type.

mod support;

use serde_json::Value;
use support::raw::RawPeer;
use support::ServerProcess;

const SESSION: &str = include_str!("data/codex-0.123-client-session.jsonl");

/// Whether `ours` has every field of `reference`, with the same JSON type. A `null` in the
/// reference matches anything (it is a value that depends on timing, like `exitCode`).
fn same_shape(reference: &Value, ours: &Value, path: &str) -> Result<(), String> {
    match (reference, ours) {
        (Value::Null, _) => Ok(()),
        (Value::Object(r), Value::Object(o)) => {
            for (key, rv) in r {
                let ov = o
                    .get(key)
                    .ok_or_else(|| format!("{path}.{key} is missing"))?;
                same_shape(rv, ov, &format!("{path}.{key}"))?;
            }
            Ok(())
        }
        (Value::Array(r), Value::Array(o)) => match (r.first(), o.first()) {
            (Some(rv), Some(ov)) => same_shape(rv, ov, &format!("{path}[0]")),
            _ => Ok(()),
        },
        (Value::Bool(_), Value::Bool(_))
        | (Value::Number(_), Value::Number(_))
        | (Value::String(_), Value::String(_)) => Ok(()),
        _ => Err(format!("{path}: expected {reference}, got {ours}")),
    }
}

#[tokio::test]
async fn codex_client_session_replays_with_the_reference_shapes() {
    let root = tempfile::tempdir().unwrap();
    let root_path = root.path().canonicalize().unwrap();
    let rebase = |text: &str| text.replace("/workdir", &format!("{}/workdir", root_path.display()));
    let work = root_path.join("workdir/work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("AGENTS.md"), "Keep answers short.\n").unwrap();

    let lines: Vec<Value> = SESSION
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let server = ServerProcess::start(&[]);
    let mut peer = RawPeer::connect(&server.url).await;
    let mut checked = 0;
    for (i, line) in lines.iter().enumerate() {
        if line["dir"] != "c2s" {
            continue;
        }
        let message: Value = serde_json::from_str(&rebase(&line["msg"].to_string())).unwrap();
        let Some(id) = message.get("id").cloned() else {
            peer.send(message).await;
            continue;
        };
        let reference = lines[i + 1..]
            .iter()
            .find(|l| l["dir"] == "s2c" && l["msg"]["id"] == id)
            .map(|l| &l["msg"])
            .expect("the recording answers every request");
        // The recording's reads do not wait. Where the codex server had already seen the
        // process exit, wait for the same state here, so the answers are comparable.
        if message["method"] == "process/read" && reference["result"]["exited"] == true {
            wait_for_exit(&mut peer, &message["params"]["processId"]).await;
        }
        let ours = peer.request(message.clone()).await;
        match (reference.get("error"), ours.get("error")) {
            (Some(r), Some(o)) => assert_eq!(
                r["code"], o["code"],
                "request {id} ({}): codex answered {reference}, we answered {ours}",
                message["method"]
            ),
            (None, None) => same_shape(&reference["result"], &ours["result"], "result")
                .unwrap_or_else(|e| panic!("request {id} ({}): {e}", message["method"])),
            _ => panic!(
                "request {id} ({}): codex answered {reference}, we answered {ours}",
                message["method"]
            ),
        }
        checked += 1;
    }
    assert_eq!(checked, 39, "every request of the recording was replayed");
    // The command ran and the patch was applied, in the rebased directory.
    wait_for_exit(&mut peer, &serde_json::json!("72664")).await;
    assert_eq!(
        std::fs::read_to_string(work.join("RESULT")).unwrap(),
        "interop-ok\n"
    );
    assert_eq!(
        std::fs::read_to_string(work.join("PATCHED.txt")).unwrap(),
        "patched-ok\n"
    );
}

/// Long-polls until the process has exited.
async fn wait_for_exit(peer: &mut RawPeer, process_id: &Value) {
    loop {
        let r = peer
            .request(serde_json::json!({"id": "wait", "method": "process/read",
                "params": {"processId": process_id, "afterSeq": 0, "waitMs": 10000}}))
            .await;
        if r["result"]["exited"] == true {
            assert_eq!(r["result"]["exitCode"], 0, "{r}");
            return;
        }
    }
}
