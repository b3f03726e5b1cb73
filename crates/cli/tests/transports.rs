//! Every transport, end to end: a Unix socket (mode 0600), wss:// with a self-signed
//! certificate made here, stdio driven through the binary's stdin/stdout, and ssh:// through
//! a fake `ssh` on PATH that runs the far side locally.

mod support;

use exec_server_client::{ClientOptions, ExecServerClient};
use exec_server_environment::ProcessEvent;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use support::{within, ServerProcess};

/// Runs `echo <word>` through a client and returns what it printed.
async fn echo_through(client: ExecServerClient, word: &str) -> String {
    let env = exec_server_client::environment(client);
    let params = support::start_params(&format!("echo-{word}"), &["/bin/echo", word]);
    let mut started = within("start", env.processes().start(params))
        .await
        .unwrap();
    let mut out = Vec::new();
    within("output", async {
        while let Some(event) = started.events.next().await {
            match event {
                ProcessEvent::Output { chunk, .. } => out.extend_from_slice(&chunk),
                ProcessEvent::Closed { .. } => break,
                ProcessEvent::Failed { message } => panic!("{message}"),
                _ => {}
            }
        }
    })
    .await;
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn unix_socket_is_private_and_works() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exec.sock");
    let listen = format!("unix://{}", path.display());
    let server = ServerProcess::start_on(&listen, &[], &[], Stdio::inherit());
    assert_eq!(server.url, listen);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the socket must be private to its owner");
    let client = within(
        "connect",
        ExecServerClient::connect(&server.url, ClientOptions::default()),
    )
    .await
    .unwrap();
    assert_eq!(echo_through(client, "unix").await, "unix\n");
}

#[tokio::test]
async fn wss_with_a_self_signed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let server = ServerProcess::start_on(
        "wss://127.0.0.1:0",
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &[],
        Stdio::inherit(),
    );
    assert!(server.url.starts_with("wss://127.0.0.1:"), "{}", server.url);

    // Without trusting the certificate, the handshake fails.
    let untrusted = ExecServerClient::connect(&server.url, ClientOptions::default())
        .await
        .err()
        .expect("a self-signed certificate is not trusted by default");
    assert!(untrusted.to_string().contains("TLS"), "{untrusted}");

    let options = ClientOptions {
        tls_root_certificate: Some(cert.clone()),
        ..ClientOptions::default()
    };
    let client = within("connect", ExecServerClient::connect(&server.url, options))
        .await
        .unwrap();
    assert_eq!(echo_through(client, "tls").await, "tls\n");
}

#[test]
fn stdio_speaks_line_delimited_json() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_exec-server"))
        .args(["serve", "--listen", "stdio"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut send = |v: Value| writeln!(stdin, "{v}").unwrap();
    send(json!({"id": 1, "method": "initialize", "params": {"clientName": "stdio-test"}}));
    send(json!({"method": "initialized"}));
    send(
        json!({"id": 2, "method": "process/start", "params": {"processId": "p",
        "argv": ["/bin/echo", "over stdio"], "cwd": "/", "env": {}, "tty": false}}),
    );
    let mut seen = vec![];
    // Every stdout line is one JSON message; read until the process closes.
    for line in lines.by_ref() {
        let message: Value = serde_json::from_str(&line.unwrap()).expect("stdout is only JSON");
        let closed = message["method"] == "process/closed";
        seen.push(message);
        if closed {
            break;
        }
    }
    assert!(seen[0]["result"]["sessionId"].is_string(), "{:?}", seen[0]);
    assert!(seen
        .iter()
        .any(|m| m["method"] == "process/output" && m["params"]["chunk"] == "b3ZlciBzdGRpbwo="));
    // End of input ends the server, cleanly.
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[tokio::test]
async fn ssh_through_a_fake_ssh_on_path() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("ssh");
    // Drops ssh's own arguments, the destination and the program name, then runs the rest
    // with the binary under test.
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nwhile [ \"$1\" != \"--\" ]; do shift; done\nshift 3\n\
             echo \"$@\" > {log}\nexec {bin} \"$@\"\n",
            log = dir.path().join("args").display(),
            bin = env!("CARGO_BIN_EXE_exec-server"),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap()
    );
    // This test binary's only PATH user: every test here finds the fake first, harmlessly.
    std::env::set_var("PATH", path);

    let client = within(
        "connect over ssh",
        ExecServerClient::connect("ssh://agent@build-box:2222", ClientOptions::default()),
    )
    .await
    .unwrap();
    assert_eq!(echo_through(client, "ssh").await, "ssh\n");
    let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
    assert_eq!(args.trim(), "serve --listen stdio");
}
