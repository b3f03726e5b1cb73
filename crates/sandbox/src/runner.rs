//! The server's side: [`HelperSandbox`] runs each sandboxed call in a fresh helper process.
//!
//! Three things bound what a call can cost the server, whatever the client sends:
//! - the helper is executed from a descriptor opened when the server started
//!   ([`HelperProgram`]), never by path, so a sandboxed call that replaced the file at that
//!   path (it may lie under a writable root) cannot have its replacement run unconfined;
//! - every call has a deadline ([`SandboxLimits::helper_timeout`]), after which its helper
//!   is killed; so is the helper of a call whose future is dropped (its request ended);
//! - at most [`SandboxLimits::max_concurrent_helpers`] helpers run at once, and a helper's
//!   reply is read up to a bound, so memory stays proportional to that number.

use crate::helper::{HelperReply, HelperRequest, FS_HELPER_ARG};
use crate::policy::{self, Enforcement, Surroundings};
use crate::probe::SandboxCaps;
use async_trait::async_trait;
use exec_server_environment::local::{
    FsSandbox, SandboxLimits, SandboxedFsRequest, SandboxedFsResponse,
};
use exec_server_environment::FsError;
use exec_server_protocol::sandbox::{PolicyShape, SandboxContext, SandboxPolicy};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// Most bytes of a helper's stderr read (for an error message).
const STDERR_LIMIT: u64 = 64 * 1024;

/// The program a helper process runs, held open: it is executed through its descriptor
/// (`/proc/self/fd/N`), so it is always the file that was opened, whatever happens to its
/// path afterwards.
#[derive(Debug, Clone)]
pub struct HelperProgram {
    /// What to execute: `/proc/self/fd/N`.
    exec_path: PathBuf,
    /// The descriptor, when this program opened it itself. The child gets it without
    /// close-on-exec, so that a script (tests use one) can be run too: its interpreter opens
    /// the script by that path after the exec.
    fd: Option<Arc<OwnedFd>>,
    /// What to call it in errors.
    name: String,
}

impl HelperProgram {
    /// This executable, as opened first thing in `main` ([`crate::self_exe`]).
    pub fn this_executable() -> io::Result<HelperProgram> {
        let exec_path = crate::self_exe::path()?;
        Ok(HelperProgram {
            exec_path,
            fd: None,
            name: std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "this executable".into()),
        })
    }

    /// Opens the executable at `path` now; later calls run this file even if the path is
    /// replaced.
    pub fn open(path: &Path) -> io::Result<HelperProgram> {
        let fd = rustix::fs::open(
            path,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?;
        Ok(HelperProgram {
            exec_path: PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())),
            fd: Some(Arc::new(fd)),
            name: path.display().to_string(),
        })
    }
}

/// Runs sandboxed filesystem calls in helper processes: [`HelperProgram`] (the
/// `exec-server` binary) re-executed with [`FS_HELPER_ARG`], one process per call, its
/// environment cleared except `PATH`.
#[derive(Debug, Clone)]
pub struct HelperSandbox {
    program: HelperProgram,
    caps: SandboxCaps,
    max_read_bytes: u64,
    limits: SandboxLimits,
    /// One permit per helper allowed to run; shared by every clone.
    slots: Arc<Semaphore>,
}

impl HelperSandbox {
    /// A sandbox that runs `program` as the helper, with the mechanisms `caps` found and the
    /// default [`SandboxLimits`].
    pub fn new(program: HelperProgram, caps: SandboxCaps, max_read_bytes: u64) -> Self {
        Self::with_limits(program, caps, max_read_bytes, SandboxLimits::default())
    }

    /// Like [`new`](Self::new), with explicit limits.
    pub fn with_limits(
        program: HelperProgram,
        caps: SandboxCaps,
        max_read_bytes: u64,
        limits: SandboxLimits,
    ) -> Self {
        HelperSandbox {
            program,
            caps,
            max_read_bytes,
            limits,
            slots: Arc::new(Semaphore::new(limits.max_concurrent_helpers.max(1))),
        }
    }

    /// The most a helper may write to stdout: the largest reply is a read of
    /// `max_read_bytes` (base64, a third larger) or a big directory listing.
    fn reply_limit(&self) -> u64 {
        self.max_read_bytes
            .saturating_mul(2)
            .saturating_add(16 * 1024 * 1024)
    }

    fn timed_out(&self, waiting_for_slot: bool) -> FsError {
        let timeout = self.limits.helper_timeout;
        if waiting_for_slot {
            let max = self.limits.max_concurrent_helpers;
            FsError::LimitExceeded {
                limit: SandboxLimits::CONCURRENCY_NAME,
                max: max as u64,
                message: format!(
                    "the sandboxed call waited {} ms (fsHelperTimeoutMs) for one of the {max} \
                     sandbox helper slots (maxConcurrentFsHelpers) and was not run",
                    timeout.as_millis()
                ),
            }
        } else {
            FsError::LimitExceeded {
                limit: SandboxLimits::TIMEOUT_NAME,
                max: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                message: format!(
                    "the sandboxed call did not finish within {} ms (fsHelperTimeoutMs); its \
                     helper was killed, and what it had done so far stays done",
                    timeout.as_millis()
                ),
            }
        }
    }

    /// Runs one helper to completion: writes `input`, reads the reply and stderr (each up to
    /// a bound), waits for the exit. Dropping this future kills the helper.
    async fn run_helper(&self, input: Vec<u8>) -> Result<HelperOutput, FsError> {
        let mut command = Command::new(&self.program.exec_path);
        command
            .arg(FS_HELPER_ARG)
            .env_clear()
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A call abandoned by its caller, or past its deadline, takes its helper with it.
            .kill_on_drop(true);
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        let inherited = self.program.fd.as_ref().map(|fd| fd.as_raw_fd());
        // SAFETY: prctl and fcntl are async-signal-safe and touch no memory of the parent.
        // The parent-death signal fires when the thread that spawned the helper exits: `run`
        // is async, so that is a runtime thread, which lives as long as the runtime (the
        // server). Never call it from `spawn_blocking`, whose threads retire when idle.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(io::Error::last_os_error());
                }
                if let Some(fd) = inherited {
                    if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let mut child = command.spawn().map_err(|e| {
            FsError::SandboxHelper(format!(
                "cannot start the sandbox helper {}: {e}",
                self.program.name
            ))
        })?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        // Written concurrently with reading the output, though the helper only answers
        // after reading everything: a helper that dies early must not block the write.
        let writer = async move {
            let written = stdin.write_all(&input).await;
            drop(stdin);
            written
        };
        let (written, stdout, stderr) = tokio::join!(
            writer,
            read_bounded(stdout, self.reply_limit()),
            read_bounded(stderr, STDERR_LIMIT),
        );
        let vanished =
            |e: io::Error| FsError::SandboxHelper(format!("the sandbox helper vanished: {e}"));
        let stdout = match stdout.map_err(vanished)? {
            Bounded::Complete(bytes) => bytes,
            Bounded::Truncated(_) => {
                let _ = child.start_kill();
                return Err(FsError::SandboxHelper(format!(
                    "the sandbox helper's reply exceeded {} bytes and was refused",
                    self.reply_limit()
                )));
            }
        };
        let stderr = match stderr.map_err(vanished)? {
            Bounded::Complete(bytes) => bytes,
            // Something is badly wrong; the helper would block on a full pipe otherwise.
            Bounded::Truncated(bytes) => {
                let _ = child.start_kill();
                bytes
            }
        };
        let status = child.wait().await.map_err(vanished)?;
        Ok(HelperOutput {
            status,
            stdout,
            stderr,
            written,
        })
    }
}

struct HelperOutput {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    written: io::Result<()>,
}

enum Bounded {
    Complete(Vec<u8>),
    /// There was more than the limit; these are the first `limit` bytes.
    Truncated(Vec<u8>),
}

/// Reads `reader` to its end, or until it has given more than `limit` bytes.
async fn read_bounded(reader: impl AsyncRead + Unpin, limit: u64) -> io::Result<Bounded> {
    let mut kept = Vec::new();
    reader.take(limit + 1).read_to_end(&mut kept).await?;
    Ok(if kept.len() as u64 > limit {
        kept.truncate(limit as usize);
        Bounded::Truncated(kept)
    } else {
        Bounded::Complete(kept)
    })
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

    fn limits(&self) -> SandboxLimits {
        self.limits
    }

    async fn run(&self, request: SandboxedFsRequest) -> Result<SandboxedFsResponse, FsError> {
        let deadline = Instant::now() + self.limits.helper_timeout;
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
        .map_err(|e| {
            // A path the helper request cannot carry (the policy's paths travel as UTF-8) is
            // refused rather than sent as some other path.
            FsError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot hand this call to the sandbox helper: {e}"),
            ))
        })?;

        let _slot = tokio::time::timeout_at(deadline, self.slots.acquire())
            .await
            .map_err(|_| self.timed_out(true))?
            .map_err(|_| FsError::SandboxHelper("the sandbox helper slots were closed".into()))?;
        let output = tokio::time::timeout_at(deadline, self.run_helper(input))
            .await
            .map_err(|_| self.timed_out(false))??;

        let stderr = String::from_utf8_lossy(&output.stderr);
        let reply = serde_json::from_slice::<HelperReply>(&output.stdout);
        match (output.status.success(), reply) {
            (true, Ok(HelperReply::Ok(response))) => Ok(response),
            (true, Ok(HelperReply::Error(error))) => Err(FsError::Sandboxed(error)),
            (_, _) => Err(FsError::SandboxHelper(format!(
                "the sandbox helper failed ({}{}): {}",
                output.status,
                match output.written {
                    Err(e) => format!(", request not delivered: {e}"),
                    Ok(()) => String::new(),
                },
                stderr.trim()
            ))),
        }
    }
}
