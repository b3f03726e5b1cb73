//! `exec-server run`: one command, output streamed live, stdin forwarded, exit code passed
//! through; with `--tty`, under a remote pseudo-terminal driven from this one as `ssh -t`
//! does.

use crate::process_io::{Ending, ProcessIo, StdinMode};
use crate::terminal;
use anyhow::Context;
use exec_server_client::{ClientOptions, ExecServerClient};
use exec_server_protocol::process::{EnvInherit, EnvPolicy, StartParams, TtySize};
use exec_server_protocol::sandbox::{
    FileSystemAccess, FileSystemEntry, FileSystemPath, FileSystemPolicy, MissingPathBehavior,
    NetworkPolicy, PermissionProfile, SandboxContext, SpecialPath,
};
use exec_server_protocol::AbsolutePath;
use std::collections::BTreeMap;

/// The help after `run --help`'s options: what the keys do under `--tty`.
const TTY_HELP: &str = "\
With --tty and a terminal on stdin, this terminal is in raw mode until the command ends, as
with `ssh -t`: every key goes to the command as the bytes it sends (Ctrl-C, Ctrl-Z, Ctrl-D,
Ctrl-\\, arrows, pasted text), and the remote terminal follows this one's size. The client
acts on one thing only, an escape at the start of a line (after Enter, or as the first key):
  ~.  disconnect: the client exits (status 255) and prints the session and process ids; the
      command keeps running until its session expires (the server's --session-ttl), and
      `exec-server attach --url URL SESSION PROCESS` shows its terminal again
  ~?  list the escapes
  ~~  send one ~
Without a terminal on stdin, --tty still gives the command a terminal and copies stdin to it
as it is (as `ssh -tt` does); without --tty, stdin goes to the command through a pipe, closed
at its end. The exit status is the command's, or 128 + the signal that killed it.";

#[derive(clap::Args)]
#[command(after_help = TTY_HELP)]
pub struct RunArgs {
    /// Server to run on (`ws://HOST:PORT`); without it the command runs here, in-process.
    #[arg(long, env = "EXEC_SERVER_URL")]
    url: Option<String>,
    /// Run under a pseudo-terminal of this terminal's size, with this terminal in raw mode
    /// (see below). TERM is passed on unless --env sets it.
    #[arg(long, short = 't')]
    tty: bool,
    /// Set an environment variable for the command (repeatable); it wins over the
    /// environment the command inherits from wherever it runs.
    #[arg(long = "env", short = 'e', value_name = "NAME=VALUE", value_parser = parse_env_var)]
    env: Vec<(String, String)>,
    /// The escape character of --tty (see below), or `none` to send every key as it is.
    #[arg(long, value_name = "CHAR", default_value = "~", value_parser = parse_escape_char)]
    escape_char: EscapeChar,
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

/// `--escape-char`: one ASCII character, or none.
#[derive(Debug, Clone, Copy)]
pub struct EscapeChar(pub Option<u8>);

pub fn parse_escape_char(value: &str) -> Result<EscapeChar, String> {
    match value.as_bytes() {
        b"none" => Ok(EscapeChar(None)),
        [byte] if byte.is_ascii_graphic() => Ok(EscapeChar(Some(*byte))),
        _ => Err(format!(
            "{value:?} is not one printable ASCII character or `none`"
        )),
    }
}

/// `--env NAME=VALUE`.
fn parse_env_var(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("{value:?} is not NAME=VALUE")),
    }
}

/// The variables `run` sets: TERM from here under a terminal (where the command draws on
/// this terminal, so it must know its kind), then each `--env`, the last of a name winning.
fn command_env(
    tty: bool,
    local_term: Option<String>,
    set: &[(String, String)],
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    if let (true, Some(term)) = (tty, local_term) {
        env.insert("TERM".to_owned(), term);
    }
    env.extend(set.iter().cloned());
    env
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
    let (env, client, cwd) = match &args.url {
        Some(url) => {
            let client = ExecServerClient::connect(url, ClientOptions::from_env()).await?;
            (
                exec_server_client::environment(client.clone()),
                Some(client),
                args.cwd.clone().unwrap_or_else(|| "/".to_owned()),
            )
        }
        None => (
            crate::local_sandbox::local_environment(),
            None,
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
            env: command_env(args.tty, std::env::var("TERM").ok(), &args.env),
            tty: args.tty,
            // Without a terminal, stdin is a pipe; under one, the terminal is stdin.
            pipe_stdin: !args.tty,
            arg0: None,
            timeout_ms: args.timeout.map(|s| (s.max(0.0) * 1000.0).round() as u64),
            sandbox,
            enforce_managed_network: false,
            managed_network: None,
            network_proxy: None,
            // The remote terminal starts at this one's size (later sizes follow SIGWINCH).
            tty_size: args
                .tty
                .then(terminal::window_size)
                .flatten()
                .map(|(rows, cols)| TtySize { rows, cols }),
        })
        .await
        .with_context(|| format!("failed to start `{}`", args.command.join(" ")))?;

    let stdin = if args.tty && terminal::stdin_is_terminal() {
        StdinMode::Terminal {
            escape: args.escape_char.0,
        }
    } else {
        StdinMode::Copy
    };
    let ending = ProcessIo {
        processes: processes.clone(),
        process_id: process_id.clone(),
        events: started.events,
        stdin,
        connection: client.as_ref().map(ExecServerClient::watch_connection),
    }
    .run()
    .await?;
    Ok(match ending {
        Ending::Exited(status) => status,
        Ending::Detached => {
            match (&client, &args.url) {
                (Some(client), Some(url)) => eprintln!(
                    "\nexec-server: disconnected; process {process_id} keeps running in session \
                     {session} until the session expires. Resume it with:\n  \
                     exec-server attach --url {url} {session} {process_id}",
                    session = client.session_id(),
                ),
                _ => {
                    // A local command lives in this client: it cannot outlive it.
                    let _ = processes.terminate(&process_id).await;
                    eprintln!(
                        "exec-server: disconnected; the command ran inside this client, so it \
                         was stopped (with --url it would keep running on the server)"
                    );
                }
            }
            DETACHED_STATUS
        }
        Ending::Signalled(signal) => {
            eprintln!(
                "exec-server: {} received; passed it on to the command and left",
                signal_name(signal)
            );
            (128 + signal).clamp(0, 255) as u8
        }
    })
}

/// The exit status after `~.`, as ssh's.
pub const DETACHED_STATUS: u8 = 255;

/// The name of a signal this client passes on.
pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn term_comes_from_here_under_a_terminal_unless_set() {
        let set = vec![("A".to_owned(), "1".to_owned())];
        let env = command_env(true, Some("xterm".to_owned()), &set);
        assert_eq!(env.get("TERM").map(String::as_str), Some("xterm"));
        assert_eq!(env.get("A").map(String::as_str), Some("1"));
        let set = vec![("TERM".to_owned(), "dumb".to_owned())];
        let env = command_env(true, Some("xterm".to_owned()), &set);
        assert_eq!(env.get("TERM").map(String::as_str), Some("dumb"));
        assert!(command_env(false, Some("xterm".to_owned()), &[]).is_empty());
    }

    #[test]
    fn env_and_escape_arguments() {
        assert_eq!(
            parse_env_var("A=b=c"),
            Ok(("A".to_owned(), "b=c".to_owned()))
        );
        assert!(parse_env_var("=x").is_err());
        assert!(parse_env_var("A").is_err());
        assert_eq!(parse_escape_char("%").map(|e| e.0), Ok(Some(b'%')));
        assert_eq!(parse_escape_char("none").map(|e| e.0), Ok(None));
        assert!(parse_escape_char("ab").is_err());
    }
}
