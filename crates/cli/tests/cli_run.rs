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

/// Runs `exec-server run` with `input` on its stdin (a pipe, not a terminal).
fn run_with_input(url: Option<&str>, options: &[&str], command: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_exec-server"));
    cmd.arg("run").args(options);
    if let Some(url) = url {
        cmd.args(["--url", url]);
    }
    let mut child = cmd
        .arg("--")
        .args(command)
        .env_remove("EXEC_SERVER_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("failed to run exec-server run");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    stdin.write_all(input).expect("write the client's stdin");
    drop(stdin);
    child.wait_with_output().expect("wait for exec-server run")
}

/// Without --tty, stdin reaches the command through a pipe and its end closes it; with
/// --tty but no terminal here, the command still gets a terminal and stdin is copied to it
/// as it is: no escapes (`~.` is just text), as `ssh -tt` does.
fn check_stdin(url: Option<&str>) {
    let out = run_with_input(url, &[], &["sh", "-c", "cat; echo done"], b"hello\n");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\ndone\n");
    assert_eq!(out.status.code(), Some(0));

    let out = run_with_input(
        url,
        &["--tty", "--env", "GREETING=hi there"],
        &["sh", "-c", "test -t 0 && echo is-a-terminal; exec sh"],
        b"~.\necho \"typed-$((1+1)) $GREETING\"\nexit 4\n",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("is-a-terminal"), "{stdout}");
    assert!(stdout.contains("typed-2 hi there"), "{stdout}");
    assert_eq!(out.status.code(), Some(4), "{stdout}");
}

#[test]
fn stdin_locally() {
    check_stdin(None);
}

#[test]
fn stdin_through_a_server() {
    let server = ServerProcess::start(&[]);
    check_stdin(Some(&server.url));
}
