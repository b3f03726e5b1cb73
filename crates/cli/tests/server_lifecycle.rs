//! What happens to processes when sessions expire and when the server stops or is killed:
//! nothing started through the server may outlive it, grandchildren included.

mod support;

use exec_server_environment::{Environment, ProcessEvent};
use exec_server_protocol::process::StartParams;
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::raw::RawPeer;
use support::{within, ServerProcess};

fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

fn is_alive(pid: u32) -> bool {
    !matches!(proc_state(pid), None | Some('Z') | Some('X'))
}

/// Waits (bounded) until every pid is dead: gone, or a zombie awaiting its reaper.
async fn wait_all_dead(pids: &[u32], what: &str) {
    within(what, async {
        while pids.iter().any(|&p| is_alive(p)) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

/// Starts three kinds of process trees and returns the pids of every process in them:
/// a pipe child with a background grandchild, a child that exits at once and leaves its
/// grandchild behind in the group, and a PTY child with a grandchild.
async fn start_trees(env: &Environment) -> Vec<u32> {
    let scripts = [
        (false, "sleep 1000 & echo PIDS $$ $!; wait"),
        (false, "sleep 1000 & echo PIDS $!"),
        (true, "sleep 1000 & echo PIDS $$ $!; wait"),
    ];
    let mut pids = vec![];
    for (i, (tty, script)) in scripts.into_iter().enumerate() {
        let params = StartParams {
            tty,
            ..support::start_params(&format!("tree-{i}"), &["/bin/sh", "-c", script])
        };
        let mut started = within("start", env.processes().start(params))
            .await
            .unwrap();
        let mut text = String::new();
        within("the PIDS line", async {
            while !text.contains('\n') {
                match started.events.next().await {
                    Some(ProcessEvent::Output { chunk, .. }) => {
                        text.push_str(&String::from_utf8_lossy(&chunk))
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        })
        .await;
        let line = text.lines().find(|l| l.starts_with("PIDS")).unwrap();
        pids.extend(
            line.split_whitespace()
                .skip(1)
                .map(|p| p.parse::<u32>().unwrap()),
        );
    }
    assert_eq!(pids.len(), 5);
    for &pid in &pids {
        assert!(is_alive(pid), "{pid} should be running");
    }
    pids
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill has no memory effects.
    assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_kills_every_tree_and_exits_zero() {
    let mut server = ServerProcess::start(&[]);
    let env = within(
        "connect",
        exec_server_client::connect_environment(&server.url),
    )
    .await
    .unwrap();
    let pids = start_trees(&env).await;
    signal(server.pid(), libc::SIGTERM);
    let status = within("the server to exit", async {
        loop {
            if let Some(status) = server.try_wait() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(status.code(), Some(0), "graceful shutdown exits 0");
    wait_all_dead(&pids, "every process to die after SIGTERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_server_leaves_no_process_behind() {
    let server = ServerProcess::start(&[]);
    let env = within(
        "connect",
        exec_server_client::connect_environment(&server.url),
    )
    .await
    .unwrap();
    let pids = start_trees(&env).await;
    signal(server.pid(), libc::SIGKILL);
    wait_all_dead(&pids, "every process to die after SIGKILL of the server").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_session_kills_its_trees_and_cannot_be_resumed() {
    let server = ServerProcess::start(&["--session-ttl", "1"]);
    let client = within(
        "connect",
        exec_server_client::ExecServerClient::connect(
            &server.url,
            exec_server_client::ClientOptions {
                reconnect: exec_server_client::ReconnectPolicy {
                    max_attempts: 0,
                    ..Default::default()
                },
                ..Default::default()
            },
        ),
    )
    .await
    .unwrap();
    let session_id = client.session_id();
    let env = exec_server_client::environment(client.clone());
    let pids = start_trees(&env).await;
    client.drop_connection();
    wait_all_dead(&pids, "the session's processes to die at expiry").await;
    let mut peer = RawPeer::connect(&server.url).await;
    let r = peer
        .request(json!({"id": 1, "method": "initialize",
            "params": {"clientName": "t", "resumeSessionId": session_id}}))
        .await;
    assert_eq!(r["error"]["code"], -32600, "{r}");
    assert_eq!(
        r["error"]["message"],
        format!("unknown session id {session_id}")
    );
}

#[test]
fn watchdog_kills_registered_groups_when_its_pipe_closes() {
    // The watchdog on its own: register a group, close the pipe, the group dies.
    let mut victim = Command::new("/bin/sleep")
        .arg("1000")
        .process_group(0)
        .spawn()
        .unwrap();
    let mut watchdog = Command::new(env!("CARGO_BIN_EXE_exec-server"))
        .arg(exec_server_daemon::watchdog::WATCHDOG_ARG)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let mut pipe = watchdog.stdin.take().unwrap();
    writeln!(pipe, "+{}", victim.id()).unwrap();
    drop(pipe);
    assert!(watchdog.wait().unwrap().success());
    let status = victim.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL));
}

use std::os::unix::process::CommandExt;
