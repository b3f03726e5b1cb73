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

/// `run --sandbox`: the workspace (`--cwd`) and `--writable-root`s are writable, nothing else
/// is; the network is off unless `--network`. Locally and through a server.
fn check_sandbox(url: Option<&str>) {
    use exec_server_environment::local::ProcessSandbox;
    let sandbox = exec_server_sandbox::CommandSandbox::new(
        env!("CARGO_BIN_EXE_exec-server").into(),
        exec_server_sandbox::SandboxCaps::probe(),
        Default::default(),
    );
    if sandbox.mechanisms().is_empty() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI=true, and this machine cannot build the process sandbox"
        );
        eprintln!(
            "\n!!! SKIPPED: `run --sandbox` needs user namespaces, Landlock and seccomp !!!\n"
        );
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("cli-run-sandbox-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let root = dir.path().canonicalize().unwrap();
    let (ws, extra, outside) = (root.join("ws"), root.join("extra"), root.join("outside"));
    for d in [&ws, &extra, &outside] {
        std::fs::create_dir(d).unwrap();
    }
    let cwd = ws.display().to_string();
    let extra_root = extra.display().to_string();
    let script = format!(
        "echo a > {ws}/a && echo b > {extra}/b && echo c > {outside}/c; echo done",
        ws = ws.display(),
        extra = extra.display(),
        outside = outside.display()
    );
    let out = run_with(
        url,
        &[
            "--cwd",
            &cwd,
            "--sandbox",
            "workspace-write",
            "--writable-root",
            &extra_root,
        ],
        &["sh", "-c", &script],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "done\n", "{stderr}");
    assert!(stderr.contains("Read-only file system"), "{stderr}");
    assert!(ws.join("a").exists() && extra.join("b").exists());
    assert!(!outside.join("c").exists());

    let out = run_with(
        url,
        &["--cwd", &cwd, "--sandbox", "read-only"],
        &["sh", "-c", "echo x > ro; echo $?"],
    );
    assert_ne!(String::from_utf8_lossy(&out.stdout), "0\n");
    assert!(!ws.join("ro").exists());

    // Without the sandbox the same write works (the control).
    let out = run_with(url, &["--cwd", &cwd], &["sh", "-c", &script]);
    assert!(out.status.success());
    assert!(outside.join("c").exists());
}

#[test]
fn run_sandboxed_locally() {
    check_sandbox(None);
}

#[test]
fn run_sandboxed_through_a_server() {
    let server = ServerProcess::start(&[]);
    check_sandbox(Some(&server.url));
    // On a server, the workspace must be named.
    let out = run_with(Some(&server.url), &["--sandbox", "read-only"], &["true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--sandbox on a server needs --cwd"));
}
