//! The seam between [`ProcessTable`](super::ProcessTable) and the process sandbox.
//!
//! A `process/start` with a `sandbox` is handed to a [`ProcessSandbox`] (in production the
//! one of `exec-server-sandbox`), which refuses it or prepares a [`SandboxLaunch`]: a
//! launcher program that the spawner runs in place of the command, with an empty environment
//! and the command's stdio. The launcher builds the sandbox, runs the command inside, and
//! talks back over three inherited descriptors, whose numbers it gets as its last argument
//! ([`launcher_fds_arg`]) and whose protocol is defined here so that both sides share it:
//!
//! - spec: the launch spec (opaque to this crate), readable from offset 0;
//! - launch: at most one [`LaunchFailure`] line. End of file without one means the command
//!   was executed (the descriptor is close-on-exec in the command);
//! - status: [`StatusLine`]s: what the sandbox must keep from being created (once the
//!   sandbox is built), then the command's exit when it exits. End of file without an exit
//!   means the launcher died first (killed), and its own wait status stands for the
//!   command's.
//!
//! The environment crate only knows this trait, so it never depends on the sandbox crate,
//! and a table built without a sandbox refuses sandboxed starts instead of running them
//! unconfined.

use exec_server_protocol::sandbox::SandboxContext;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

/// The descriptors a launcher inherits, by number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LauncherFds {
    pub spec: i32,
    pub status: i32,
    pub launch: i32,
}

/// The launcher's last argument: `--fds=SPEC,STATUS,LAUNCH`.
pub fn launcher_fds_arg(fds: LauncherFds) -> String {
    format!("--fds={},{},{}", fds.spec, fds.status, fds.launch)
}

/// Parses [`launcher_fds_arg`].
pub fn parse_launcher_fds_arg(arg: &str) -> Option<LauncherFds> {
    let mut numbers = arg.strip_prefix("--fds=")?.split(',').map(str::parse);
    let fds = LauncherFds {
        spec: numbers.next()?.ok()?,
        status: numbers.next()?.ok()?,
        launch: numbers.next()?.ok()?,
    };
    numbers.next().is_none().then_some(fds)
}

/// The command a sandboxed start would run, as the table resolved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    pub argv: Vec<String>,
    pub arg0: Option<String>,
    pub cwd: PathBuf,
    /// The environment the command gets (after `envPolicy` and `env`).
    pub env: BTreeMap<String, String>,
    pub tty: bool,
}

/// How to start a sandboxed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SandboxLaunch {
    /// The policy restricts nothing (`disabled`, or full disk with the network enabled): run
    /// the command as if no sandbox had been given.
    Unconfined,
    /// Run `program args --fds=...` instead of the command, with an empty environment, the
    /// command's stdio, and `spec` on the spec descriptor.
    Wrapped {
        program: PathBuf,
        args: Vec<OsString>,
        spec: Vec<u8>,
    },
}

/// Why a sandboxed start is refused: a policy this server does not enforce, or a mechanism
/// this machine lacks. Nothing was spawned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxRefusal {
    /// Machine-readable, in `data.reason` (e.g. `userNamespacesUnavailable`).
    pub reason: String,
    pub message: String,
}

/// Runs commands confined by a `sandbox` policy.
pub trait ProcessSandbox: Send + Sync + std::fmt::Debug {
    /// Checks `context` for `command` and prepares its launch. Nothing runs yet.
    fn prepare(
        &self,
        context: &SandboxContext,
        command: &CommandSpec,
    ) -> Result<SandboxLaunch, SandboxRefusal>;

    /// The mechanisms sandboxed processes run under on this machine (for `capabilities` and
    /// the logs); empty when every sandboxed start is refused.
    fn mechanisms(&self) -> Vec<String>;

    /// Once a sandbox has ended (its launcher reaped, whether or not its init could clean up),
    /// removes what it created of `uncreatable` (as the launcher reported them). Returns what
    /// was removed. Blocking.
    fn sweep(&self, uncreatable: &[PathBuf]) -> Vec<PathBuf>;
}

/// What the launcher writes on the launch descriptor when the command could not be started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "camelCase")]
pub enum LaunchFailure {
    /// Building the sandbox failed: the start is refused (-32602) with this reason.
    Setup { reason: String, message: String },
    /// The sandbox was built, but the command could not be executed (errno), as an
    /// unsandboxed spawn would fail.
    Exec { errno: i32 },
}

/// One line on the status descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StatusLine {
    /// The sandbox is built; these protected paths were missing and may not be created (the
    /// init removes them when the command exits and when the sandbox empties; the server
    /// once more when the launcher is gone).
    Uncreatable(Vec<PathBuf>),
    /// The command exited.
    Exited(CommandExit),
}

/// What the launcher reports when the command exits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandExit {
    /// The raw `waitpid` status.
    pub wait_status: i32,
    /// Protected paths the command created although the policy forbids it; the launcher
    /// removed them (and the exit counts as a sandbox denial).
    #[serde(default)]
    pub removed: Vec<PathBuf>,
}
