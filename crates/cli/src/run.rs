//! `exec-server run`: one command, output streamed live, exit code passed through.

use anyhow::Context;
use bytes::Bytes;
use exec_server_environment::ProcessEvent;
use exec_server_protocol::process::{EnvInherit, EnvPolicy, OutputStream, StartParams};
use exec_server_protocol::sandbox::{
    FileSystemAccess, FileSystemEntry, FileSystemPath, FileSystemPolicy, MissingPathBehavior,
    NetworkPolicy, PermissionProfile, SandboxContext, SpecialPath,
};
use exec_server_protocol::AbsolutePath;
use std::collections::BTreeMap;
use std::io::Write;
use tokio::io::AsyncReadExt;

#[derive(clap::Args)]
pub struct RunArgs {
    /// Server to run on (`ws://HOST:PORT`); without it the command runs here, in-process.
    #[arg(long, env = "EXEC_SERVER_URL")]
    url: Option<String>,
    /// Run under a pseudo-terminal and forward this program's stdin to it.
    #[arg(long)]
    tty: bool,
    /// Working directory (default: this directory locally, `/` on a server).
    #[arg(long)]
    cwd: Option<String>,
    /// Kill the command and its process group after this many seconds (enforced by the
    /// server, so it holds even if this client goes away).
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<f64>,
    /// Run the command, and everything it starts, in the kernel sandbox: `read-only` (it
    /// reads everything and writes nothing) or `workspace-write` (it also writes under --cwd
    /// and each --writable-root, where .git, .codex and .agents stay read-only unless they
    /// are missing). The network is off unless --network. With --url, --cwd is required.
    #[arg(long, value_enum, value_name = "POLICY")]
    sandbox: Option<SandboxMode>,
    /// Another directory a `workspace-write` sandbox may write (repeatable).
    #[arg(long = "writable-root", value_name = "DIR", requires = "sandbox")]
    writable_roots: Vec<String>,
    /// Let the sandboxed command use the network.
    #[arg(long, requires = "sandbox")]
    network: bool,
    /// The command and its arguments.
    #[arg(required = true, last = true)]
    command: Vec<String>,
}

/// `--sandbox` policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SandboxMode {
    ReadOnly,
    WorkspaceWrite,
}

/// The permission profile (codex's current shape) for `--sandbox`: read everything; with
/// `workspace-write`, write the workspace (the cwd) and the writable roots, whose `.git`,
/// `.codex` and `.agents` stay read-only while they exist (so `git init` still works).
fn sandbox_context(
    mode: SandboxMode,
    cwd: &AbsolutePath,
    writable_roots: &[String],
    network: bool,
) -> anyhow::Result<SandboxContext> {
    let special = |value: SpecialPath, access: FileSystemAccess| FileSystemEntry {
        path: FileSystemPath::Special { value },
        access,
        missing_path_behavior: None,
    };
    let mut entries = vec![special(SpecialPath::Root, FileSystemAccess::Read)];
    if mode == SandboxMode::WorkspaceWrite {
        entries.push(special(
            SpecialPath::ProjectRoots { subpath: None },
            FileSystemAccess::Write,
        ));
        for root in writable_roots {
            let path = AbsolutePath::parse(root)
                .map_err(|e| anyhow::anyhow!("--writable-root {root}: {e}"))?;
            entries.push(FileSystemEntry {
                path: FileSystemPath::Path { path },
                access: FileSystemAccess::Write,
                missing_path_behavior: None,
            });
        }
        for name in [".git", ".agents", ".codex"] {
            entries.push(FileSystemEntry {
                missing_path_behavior: Some(MissingPathBehavior::Skip),
                ..special(
                    SpecialPath::ProjectRoots {
                        subpath: Some(name.to_owned()),
                    },
                    FileSystemAccess::Read,
                )
            });
        }
    } else if !writable_roots.is_empty() {
        anyhow::bail!("--writable-root needs --sandbox workspace-write");
    }
    let mut context = SandboxContext::from_profile(PermissionProfile::Managed {
        file_system: FileSystemPolicy::Restricted {
            entries,
            glob_scan_max_depth: None,
        },
        network: if network {
            NetworkPolicy::Enabled
        } else {
            NetworkPolicy::Restricted
        },
    });
    context.cwd = Some(cwd.clone());
    context.workspace_roots = vec![cwd.clone()];
    Ok(context)
}

pub async fn run(args: RunArgs) -> anyhow::Result<u8> {
    if args.sandbox.is_some() && args.url.is_some() && args.cwd.is_none() {
        anyhow::bail!(
            "--sandbox on a server needs --cwd: the workspace the command may write (or read) \
             is its working directory on that machine"
        );
    }
    let (env, cwd) = match &args.url {
        Some(url) => (
            exec_server_client::connect_environment(url).await?,
            args.cwd.clone().unwrap_or_else(|| "/".to_owned()),
        ),
        None => (
            crate::local_sandbox::local_environment(),
            match &args.cwd {
                Some(cwd) => cwd.clone(),
                None => std::env::current_dir()
                    .context("cannot read the current directory")?
                    .to_string_lossy()
                    .into_owned(),
            },
        ),
    };
    let cwd = AbsolutePath::parse(&cwd).map_err(|e| anyhow::anyhow!("--cwd: {e}"))?;
    let sandbox = args
        .sandbox
        .map(|mode| sandbox_context(mode, &cwd, &args.writable_roots, args.network))
        .transpose()?;
    let process_id = format!("run-{}-{}", std::process::id(), nanos());
    let processes = env.processes().clone();
    let started = processes
        .start(StartParams {
            process_id: process_id.clone(),
            argv: args.command.clone(),
            cwd,
            // The command sees the environment of wherever it runs, as a shell would give it.
            env_policy: Some(EnvPolicy {
                inherit: EnvInherit::All,
                ignore_default_excludes: true,
                ..EnvPolicy::default()
            }),
            env: BTreeMap::new(),
            tty: args.tty,
            pipe_stdin: false,
            arg0: None,
            timeout_ms: args.timeout.map(|s| (s.max(0.0) * 1000.0).round() as u64),
            sandbox,
            enforce_managed_network: false,
            managed_network: None,
            network_proxy: None,
        })
        .await
        .with_context(|| format!("failed to start `{}`", args.command.join(" ")))?;

    if args.tty {
        let processes = processes.clone();
        let id = process_id.clone();
        tokio::spawn(async move {
            let mut stdin = tokio::io::stdin();
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n) = stdin.read(&mut buf).await {
                if n == 0
                    || processes
                        .write_waiting(&id, Bytes::copy_from_slice(&buf[..n]))
                        .await
                        .is_err()
                {
                    break;
                }
            }
        });
    }

    let mut events = started.events;
    let mut exit = None;
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            _ = tokio::signal::ctrl_c() => {
                let _ = processes.terminate(&process_id).await;
                continue;
            }
        };
        match event {
            Some(ProcessEvent::Output { stream, chunk, .. }) => {
                let result = match stream {
                    OutputStream::Stderr => write_all(&mut std::io::stderr().lock(), &chunk),
                    OutputStream::Stdout | OutputStream::Pty => {
                        write_all(&mut std::io::stdout().lock(), &chunk)
                    }
                };
                result.context("cannot write the command's output")?;
            }
            Some(ProcessEvent::Exited {
                exit_code, signal, ..
            }) => exit = Some((exit_code, signal)),
            Some(ProcessEvent::Closed { .. }) | None => break,
            Some(ProcessEvent::Failed { message }) => anyhow::bail!("{message}"),
            Some(ProcessEvent::Gap { from_seq, to_seq }) => {
                eprintln!(
                    "exec-server: output chunks {from_seq}..={to_seq} were lost while the \
                     connection was down (raise the server's --retained-output-bytes)"
                );
            }
        }
    }
    Ok(match exit {
        Some((_, Some(signal))) => (128 + signal).clamp(0, 255) as u8,
        Some((code, None)) => code.clamp(0, 255) as u8,
        None => anyhow::bail!("the command's event stream ended without an exit status"),
    })
}

fn write_all(out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    out.write_all(bytes)?;
    out.flush()
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}
