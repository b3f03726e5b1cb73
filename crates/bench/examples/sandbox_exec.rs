//! Sandboxed process start cost: `/bin/true`, `process/start` to `process/closed`, p50 and
//! p90, each measured in the same run, interleaved round by round so that drift on a shared
//! machine hits every figure alike:
//!
//! - unsandboxed, through the local environment;
//! - sandboxed (codex 0.171's workspace-write profile, network restricted), locally and
//!   through a real server;
//! - sandboxed with the network enabled (so the server's port is closed to it by Landlock);
//! - `bwrap` alone, confining `/bin/true` about as much: read-only root, a writable
//!   workspace, read-only `.git` in it, new user, pid, IPC and network namespaces, its own
//!   `/dev` and `/proc`, no capabilities (no seccomp or Landlock: bwrap has neither built in);
//! - the floor: `posix_spawn` of `/bin/true` and `waitpid`, from this process.
//!
//! ```text
//! cargo build --release --workspace
//! cargo run --release -p exec-server-bench --example sandbox_exec -- [--rounds 300]
//! ```

#[allow(dead_code)]
#[path = "../src/server.rs"]
mod server;

use clap::Parser;
use exec_server_client::{ClientOptions, ExecServerClient};
use exec_server_environment::local::ProcessConfig;
use exec_server_environment::{Environment, ProcessEvent};
use exec_server_protocol::process::StartParams;
use exec_server_protocol::sandbox::SandboxContext;
use exec_server_protocol::AbsolutePath;
use exec_server_sandbox::{CommandSandbox, SandboxCaps};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
struct Args {
    /// Rounds; each runs every variant once.
    #[arg(long, default_value_t = 300)]
    rounds: usize,
}

fn sandbox(ws: &Path, network: &str) -> SandboxContext {
    let uri = format!("file://{}", ws.display());
    let special = |kind: &str, access: &str| serde_json::json!({"path": {"type": "special", "value": {"kind": kind}}, "access": access});
    let protected = |name: &str| {
        serde_json::json!({"path": {"type": "special", "value": {"kind": "project_roots",
            "subpath": name}}, "access": "read", "missing_path_behavior": "skip"})
    };
    serde_json::from_value(serde_json::json!({
        "permissions": {"type": "managed", "network": network, "file_system": {"type": "restricted",
            "entries": [special("root", "read"), special("project_roots", "write"),
                special("slash_tmp", "write"), special("tmpdir", "write"), protected(".git"),
                protected(".agents"), protected(".codex"), protected(".aws")]}},
        "cwd": uri, "workspaceRoots": [uri]
    }))
    .expect("a valid profile")
}

fn params(id: usize, ws: &Path, sandbox: Option<SandboxContext>) -> StartParams {
    StartParams {
        process_id: format!("t{id}"),
        argv: vec!["/bin/true".to_owned()],
        cwd: AbsolutePath::from_path(ws).expect("absolute"),
        env_policy: None,
        env: BTreeMap::from([("PATH".to_owned(), "/usr/bin:/bin".to_owned())]),
        tty: false,
        pipe_stdin: false,
        arg0: None,
        timeout_ms: None,
        sandbox,
        enforce_managed_network: false,
        managed_network: None,
        network_proxy: None,
        tty_size: None,
    }
}

async fn start_to_closed(env: &Environment, params: StartParams) -> anyhow::Result<Duration> {
    let started_at = Instant::now();
    let mut started = env.processes().start(params).await?;
    while let Some(event) = started.events.next().await {
        match event {
            ProcessEvent::Exited { exit_code, .. } => {
                anyhow::ensure!(exit_code == 0, "exit {exit_code}")
            }
            ProcessEvent::Closed { .. } => return Ok(started_at.elapsed()),
            ProcessEvent::Failed { message } => anyhow::bail!(message),
            _ => {}
        }
    }
    anyhow::bail!("the events ended before closed")
}

fn bwrap_true(ws: &Path) -> anyhow::Result<Duration> {
    let ws = ws.display().to_string();
    let git = format!("{ws}/.git");
    let started_at = Instant::now();
    let status = std::process::Command::new("/usr/bin/bwrap")
        .args(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"])
        .args(["--bind", &ws, &ws, "--ro-bind", &git, &git])
        .args([
            "--unshare-user",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-net",
        ])
        .args([
            "--new-session",
            "--die-with-parent",
            "--cap-drop",
            "ALL",
            "--chdir",
            &ws,
        ])
        .args(["/bin/true"])
        .env_clear()
        .status()?;
    anyhow::ensure!(status.success(), "bwrap failed: {status}");
    Ok(started_at.elapsed())
}

fn spawn_true() -> anyhow::Result<Duration> {
    let started_at = Instant::now();
    let status = std::process::Command::new("/bin/true")
        .env_clear()
        .status()?;
    anyhow::ensure!(status.success());
    Ok(started_at.elapsed())
}

fn summary(name: &str, times: &mut [Duration], floor: Duration) {
    times.sort();
    let p50 = times[times.len() / 2];
    let p90 = times[times.len() * 9 / 10];
    println!(
        "{name:<44} p50 {:>7.2} ms  p90 {:>7.2} ms  ({:.2}x the spawn floor)",
        p50.as_secs_f64() * 1e3,
        p90.as_secs_f64() * 1e3,
        p50.as_secs_f64() / floor.as_secs_f64()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin = server::default_binary()?;
    let local = Environment::local_with(ProcessConfig {
        sandbox: Some(Arc::new(CommandSandbox::new(
            bin.clone(),
            SandboxCaps::probe(),
            Arc::default(),
        ))),
        ..ProcessConfig::default()
    });
    let server = server::LaunchedServer::start(&bin).await?;
    let remote = exec_server_client::environment(
        ExecServerClient::connect(&server.url, ClientOptions::default()).await?,
    );
    let scratch = std::env::var_os("HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(format!(".exec-server-sandbox-exec-{}", std::process::id()));
    let ws = scratch.join("ws");
    std::fs::create_dir_all(ws.join(".git"))?;
    let bwrap = Path::new("/usr/bin/bwrap").exists();
    if !bwrap {
        println!("(bwrap is not installed: apt-get install bubblewrap for its figure)");
    }

    let mut figures: [Vec<Duration>; 6] = Default::default();
    let mut id = 0;
    // Warm up: the sandbox's start-up probe, page cache, the server's first session.
    for _ in 0..5 {
        id += 1;
        start_to_closed(&local, params(id, &ws, Some(sandbox(&ws, "restricted")))).await?;
        start_to_closed(&remote, params(id, &ws, Some(sandbox(&ws, "restricted")))).await?;
    }
    for _ in 0..args.rounds {
        id += 1;
        figures[0].push(spawn_true()?);
        figures[1].push(start_to_closed(&local, params(id, &ws, None)).await?);
        figures[2].push(
            start_to_closed(
                &local,
                params(id + 1_000_000, &ws, Some(sandbox(&ws, "restricted"))),
            )
            .await?,
        );
        figures[3].push(
            start_to_closed(&remote, params(id, &ws, Some(sandbox(&ws, "restricted")))).await?,
        );
        figures[4].push(
            start_to_closed(
                &remote,
                params(id + 2_000_000, &ws, Some(sandbox(&ws, "enabled"))),
            )
            .await?,
        );
        if bwrap {
            figures[5].push(bwrap_true(&ws)?);
        }
    }
    let floor = {
        let mut f = figures[0].clone();
        f.sort();
        f[f.len() / 2]
    };
    println!("/bin/true, start to closed, {} rounds", args.rounds);
    let names = [
        "spawn + wait (floor, no server)",
        "unsandboxed, local environment",
        "sandboxed, local environment",
        "sandboxed, through a server",
        "sandboxed, network enabled, through a server",
        "bwrap alone (same confinement, no seccomp)",
    ];
    for (name, times) in names.iter().zip(figures.iter_mut()) {
        if !times.is_empty() {
            summary(name, times, floor);
        }
    }
    std::fs::remove_dir_all(&scratch)?;
    Ok(())
}
