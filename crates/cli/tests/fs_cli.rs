//! `exec-server fs` subcommands as a script would use them: separate processes, `--json`,
//! exit codes; against a server and in-process.

mod support;

use serde_json::{json, Value};
use std::path::Path;
use std::process::Stdio;
use support::{within, ServerProcess};

struct Output {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

async fn fs_cli(url: Option<&str>, args: &[&str], stdin: Option<&[u8]>) -> Output {
    use tokio::io::AsyncWriteExt;
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_exec-server"));
    command.arg("fs");
    if let Some(url) = url {
        command.args(["--url", url]);
    }
    let mut child = command
        .args(args)
        .env_remove("EXEC_SERVER_URL")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the CLI");
    if let Some(data) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        within("stdin", pipe.write_all(data)).await.unwrap();
        drop(pipe);
    }
    let out = within(&format!("fs {args:?}"), child.wait_with_output())
        .await
        .unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn json_of(url: Option<&str>, args: &[&str]) -> Value {
    let mut with_json = args.to_vec();
    with_json.push("--json");
    let out = fs_cli(url, &with_json, None).await;
    assert_eq!(out.code, 0, "fs {args:?}: {}", out.stderr);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("fs {args:?} printed no JSON ({e}): {:?}", out.stdout))
}

async fn scenario(url: Option<&str>, root: &Path) {
    let r = |p: &str| root.join(p).to_str().unwrap().to_owned();

    assert_eq!(json_of(url, &["mkdir", "-p", &r("a/b")]).await, json!({}));
    let out = fs_cli(url, &["put", "-", &r("a/b/f.txt")], Some(b"hello\n")).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(std::fs::read(root.join("a/b/f.txt")).unwrap(), b"hello\n");

    let out = fs_cli(url, &["cat", &r("a/b/f.txt")], None).await;
    assert_eq!((out.code, &out.stdout[..]), (0, &b"hello\n"[..]));

    let stat = json_of(url, &["stat", &r("a/b/f.txt")]).await;
    assert_eq!((&stat["isFile"], &stat["size"]), (&json!(true), &json!(6)));
    let out = fs_cli(url, &["stat", &r("a/b/f.txt")], None).await;
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("type: file") && text.contains("size: 6"),
        "{text}"
    );

    assert_eq!(
        json_of(url, &["cp", "-r", &r("a"), &r("c")]).await,
        json!({})
    );
    assert_eq!(json_of(url, &["mv", &r("c"), &r("d")]).await, json!({}));
    let listing = json_of(url, &["ls", &r("")]).await;
    let names: Vec<&str> = listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["fileName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "d"]);
    let out = fs_cli(url, &["ls", &r("d/b")], None).await;
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "f.txt\n");

    let got = r("got.txt");
    let copied = json_of(url, &["get", &r("d/b/f.txt"), &got]).await;
    assert_eq!(copied["bytes"], json!(6));
    assert_eq!(std::fs::read(&got).unwrap(), b"hello\n");

    // rm is not recursive by default, as on the command line.
    let out = fs_cli(url, &["rm", &r("d")], None).await;
    assert_eq!(out.code, 1);
    assert!(root.join("d").exists());
    assert_eq!(json_of(url, &["rm", "-r", &r("d")]).await, json!({}));
    assert!(!root.join("d").exists());

    // Errors: a message and exit 1, or with --json the error object on stdout.
    let out = fs_cli(url, &["stat", &r("missing")], None).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("-32004"), "{}", out.stderr);
    let out = fs_cli(url, &["stat", &r("missing"), "--json"], None).await;
    assert_eq!(out.code, 1);
    let error: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(error["error"]["code"], json!(-32004));
    assert_eq!(json_of(url, &["rm", "-f", &r("missing")]).await, json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_subcommands_against_a_server() {
    let server = ServerProcess::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    scenario(Some(&server.url), dir.path()).await;
    // A server's working directory is unknown, so relative paths are refused.
    let out = fs_cli(Some(&server.url), &["ls", "relative"], None).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("not absolute"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_subcommands_in_process() {
    let dir = tempfile::tempdir().unwrap();
    scenario(None, dir.path()).await;
}
