//! `exec-server run`: one command, output streamed live, exit code passed through.

use anyhow::Context;
use bytes::Bytes;
use exec_server_environment::ProcessEvent;
use exec_server_protocol::process::{EnvInherit, EnvPolicy, OutputStream, StartParams};
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
    /// The command and its arguments.
    #[arg(required = true, last = true)]
    command: Vec<String>,
}

pub async fn run(args: RunArgs) -> anyhow::Result<u8> {
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
            sandbox: None,
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
                        .write(&id, Bytes::copy_from_slice(&buf[..n]))
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
