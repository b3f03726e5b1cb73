//! The server's side: [`HelperSandbox`] runs each sandboxed call in a fresh helper process.

use crate::helper::{HelperReply, HelperRequest, FS_HELPER_ARG};
use crate::policy::{self, Enforcement, Surroundings};
use crate::probe::SandboxCaps;
use async_trait::async_trait;
use exec_server_environment::local::{FsSandbox, SandboxedFsRequest, SandboxedFsResponse};
use exec_server_environment::FsError;
use exec_server_protocol::sandbox::{PolicyShape, SandboxContext, SandboxPolicy};
use std::path::PathBuf;
use std::process::Stdio;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Runs sandboxed filesystem calls in helper processes: `program` (the `exec-server`
/// binary) re-executed with [`FS_HELPER_ARG`], one process per call, its environment
/// cleared except `PATH`.
#[derive(Debug, Clone)]
pub struct HelperSandbox {
    program: PathBuf,
    caps: SandboxCaps,
    max_read_bytes: u64,
}

impl HelperSandbox {
    /// A sandbox that runs `program` as the helper, with the mechanisms `caps` found.
    pub fn new(program: PathBuf, caps: SandboxCaps, max_read_bytes: u64) -> Self {
        HelperSandbox {
            program,
            caps,
            max_read_bytes,
        }
    }
}

/// The policy's name in errors: the April policy's type, or "permission profile".
fn policy_name(context: &SandboxContext) -> &'static str {
    match context.policy() {
        PolicyShape::April(SandboxPolicy::ReadOnly { .. }) => "read-only",
        PolicyShape::April(SandboxPolicy::WorkspaceWrite { .. }) => "workspace-write",
        PolicyShape::April(SandboxPolicy::DangerFullAccess) => "danger-full-access",
        PolicyShape::April(SandboxPolicy::ExternalSandbox { .. }) => "external-sandbox",
        PolicyShape::Profile(_) => "permission profile",
    }
}

#[async_trait]
impl FsSandbox for HelperSandbox {
    fn available(&self) -> bool {
        self.caps.fs_helper_unavailable("any").is_none()
    }

    async fn run(&self, request: SandboxedFsRequest) -> Result<SandboxedFsResponse, FsError> {
        let context = request
            .sandbox()
            .ok_or_else(|| FsError::SandboxHelper("a sandboxed call without a sandbox".into()))?;
        if let Some(missing) = self.caps.fs_helper_unavailable(policy_name(context)) {
            return Err(FsError::SandboxUnavailable(missing));
        }
        let policy = match policy::resolve(context, &Surroundings::of_this_process()) {
            Ok(Enforcement::Restricted(policy)) => policy,
            // The local filesystem runs these in-process; reaching here is a caller's bug.
            Ok(Enforcement::FullDisk { .. }) => {
                return Err(FsError::SandboxHelper(
                    "the sandbox helper was asked to run a policy that needs no sandbox".into(),
                ))
            }
            Err(e) => return Err(FsError::SandboxPolicyUnsupported(e.message)),
        };
        let input = serde_json::to_vec(&HelperRequest {
            request,
            policy,
            max_read_bytes: self.max_read_bytes,
        })
        .map_err(|e| FsError::SandboxHelper(format!("cannot encode the helper request: {e}")))?;

        let mut command = Command::new(&self.program);
        command
            .arg(FS_HELPER_ARG)
            .env_clear()
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A call abandoned by its caller takes its helper with it.
            .kill_on_drop(true);
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent. The signal
        // fires when the thread that spawned the helper exits: `run` is async, so that is a
        // runtime thread, which lives as long as the runtime (the server). Never call it from
        // `spawn_blocking`, whose threads retire when idle.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn().map_err(|e| {
            FsError::SandboxHelper(format!(
                "cannot start the sandbox helper {}: {e}",
                self.program.display()
            ))
        })?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        // Written concurrently with reading the output, though the helper only answers
        // after reading everything: a helper that dies early must not block the write.
        let writer = async move {
            let written = stdin.write_all(&input).await;
            drop(stdin);
            written
        };
        let (written, output) = tokio::join!(writer, child.wait_with_output());
        let output = output
            .map_err(|e| FsError::SandboxHelper(format!("the sandbox helper vanished: {e}")))?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        let reply = serde_json::from_slice::<HelperReply>(&output.stdout);
        match (output.status.success(), reply) {
            (true, Ok(HelperReply::Ok(response))) => Ok(response),
            (true, Ok(HelperReply::Error(error))) => Err(FsError::Sandboxed(error)),
            (_, _) => Err(FsError::SandboxHelper(format!(
                "the sandbox helper failed ({}{}): {}",
                output.status,
                match written {
                    Err(e) => format!(", request not delivered: {e}"),
                    Ok(()) => String::new(),
                },
                stderr.trim()
            ))),
        }
    }
}
