//! `exec-server run`, as a user runs it: a separate process, locally and through a server.

mod support;

use std::process::{Command, Output, Stdio};
use support::ServerProcess;

fn run(url: Option<&str>, command: &[&str]) -> Output {
    run_with(url, &[], command)
}

fn run_with(url: Option<&str>, options: &[&str], command: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_exec-server"));
    cmd.arg("run").args(options);
    if let Some(url) = url {
        cmd.args(["--url", url]);
    }
    cmd.arg("--")
        .args(command)
        .env_remove("EXEC_SERVER_URL")
        .stdin(Stdio::null())
        .output()
        .expect("failed to run exec-server run")
}

fn check_echo_and_exit_code(url: Option<&str>) {
    let out = run(url, &["sh", "-c", "echo hi; echo oops >&2; exit 3"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");
    assert_eq!(out.status.code(), Some(3));

    let out = run(url, &["sh", "-c", "kill -TERM $$"]);
    assert_eq!(out.status.code(), Some(128 + libc::SIGTERM));

    // --timeout: the server kills the command's group; the exit code says SIGKILL.
    let out = run_with(
        url,
        &["--timeout", "0.3"],
        &["sh", "-c", "echo started; sleep 30"],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "started\n");
    assert_eq!(out.status.code(), Some(128 + libc::SIGKILL));

    let out = run(url, &["/no/such/program"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("failed to start"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn run_locally() {
    check_echo_and_exit_code(None);
}

#[test]
fn run_through_a_server() {
    let server = ServerProcess::start(&[]);
    check_echo_and_exit_code(Some(&server.url));
}

#[test]
fn run_against_a_dead_url_says_so() {
    let out = run(Some("ws://127.0.0.1:1"), &["true"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("failed to connect to exec-server at ws://127.0.0.1:1"),
        "{stderr}"
    );
}
