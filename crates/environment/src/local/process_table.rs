//! `ProcessTable`: the local process backend. It owns every process it starts.

use async_trait::async_trait;
use bytes::Bytes;
use exec_server_protocol::process::{
    OutputStream, ProcessInfo, ReadParams, ReadResponse, StartParams, WriteStatus,
};
use exec_server_protocol::sandbox::SandboxType;
use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use super::child_env::child_environment;
use super::output_log::OutputLog;
use super::process_sandbox::{
    CommandExit, CommandSpec, LaunchFailure, ProcessSandbox, SandboxLaunch, StatusLine,
};
use super::spawn::{self, ChildIo, Launcher, LauncherChannels, SpawnRequest, StdioMode};
use crate::process::{ProcessBackend, ProcessError, ProcessEvent, ProcessEvents, StartedProcess};
use std::path::PathBuf;

/// Largest output chunk read from a child at once.
pub const OUTPUT_CHUNK_BYTES: usize = 64 * 1024;

/// How far the event subscriber may fall behind before the output reader pauses.
const SUBSCRIBER_WINDOW_BYTES: usize = 512 * 1024;

/// How long the exit event waits for the output streams to end (see `wait_for_exit`).
const EXIT_DRAIN_GRACE: Duration = Duration::from_millis(250);

/// What one queued stdin operation counts against `max_stdin_buffered_bytes` at least, so
/// that a flood of empty writes is bounded too.
const STDIN_OP_COST: usize = 64;

/// The signals `signal` accepts, by name (also accepted without the `SIG` prefix).
const SIGNALS: &[(&str, libc::c_int)] = &[
    ("SIGINT", libc::SIGINT),
    ("SIGTERM", libc::SIGTERM),
    ("SIGKILL", libc::SIGKILL),
    ("SIGHUP", libc::SIGHUP),
    ("SIGQUIT", libc::SIGQUIT),
    ("SIGUSR1", libc::SIGUSR1),
    ("SIGUSR2", libc::SIGUSR2),
    ("SIGSTOP", libc::SIGSTOP),
    ("SIGCONT", libc::SIGCONT),
    ("SIGWINCH", libc::SIGWINCH),
];

/// The number of a signal name such as `"SIGINT"`, `"INT"` or `"sigint"`.
fn signal_number(name: &str) -> Option<libc::c_int> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    SIGNALS
        .iter()
        .find(|(n, _)| *n == full)
        .map(|(_, number)| *number)
}

/// Environment variables that carry the server's secrets: a sandboxed command never gets
/// them, whatever `envPolicy` or `env` say, and whatever its policy.
pub const SERVER_SECRET_VARIABLES: [&str; 1] = ["EXEC_SERVER_TOKEN"];

/// How long a sandbox launcher may take to build the sandbox and execute the command.
const SANDBOX_LAUNCH_TIMEOUT: Duration = Duration::from_secs(30);

/// What in a sandboxed command's output suggests that the sandbox stopped it (codex's
/// heuristic, matched case-insensitively).
const DENIAL_WORDS: &[&str] = &[
    "operation not permitted",
    "permission denied",
    "read-only file system",
    "seccomp",
    "sandbox",
    "landlock",
    "failed to write file",
];

/// Codex's `sandboxDenied`: a sandboxed command that died of SIGSYS (a seccomp kill), or
/// exited non-zero with a denial in its output (codex 0.171 counts any non-zero exit, 127
/// included, as its server answers).
fn looks_denied(
    exit_code: i32,
    signal: Option<i32>,
    output_mentions_denial: impl FnOnce() -> bool,
) -> bool {
    if signal == Some(libc::SIGSYS) {
        return true;
    }
    if exit_code == 0 && signal.is_none() {
        return false;
    }
    output_mentions_denial()
}

/// The terminal's end-of-file character (^D), which `close_stdin` types into a PTY.
const PTY_EOF: u8 = 0x04;

/// Work for a process's stdin writer task, applied in queue order.
#[derive(Debug)]
enum StdinOp {
    Data(Bytes),
    /// Pipes: close the pipe. PTY: type end-of-file.
    Close,
    /// PTY only: set the window size.
    Resize(pty_process::Size),
}

impl StdinOp {
    /// What this operation counts against the queue's byte limit.
    fn cost(&self) -> usize {
        match self {
            StdinOp::Data(bytes) => bytes.len().max(STDIN_OP_COST),
            StdinOp::Close | StdinOp::Resize(_) => STDIN_OP_COST,
        }
    }
}

/// Where a stdin writer task writes.
enum StdinSink {
    Pipe(tokio::net::unix::pipe::Sender),
    Pty(pty_process::OwnedWritePty),
}

/// Told about every process group a table creates and lets go, so that something outside
/// the server (a watchdog process) can kill them all if the server itself is killed.
pub trait GroupWatcher: Send + Sync + std::fmt::Debug {
    fn group_started(&self, pgid: i32);
    fn group_released(&self, pgid: i32);
}

/// Tunables of a process table.
#[derive(Debug, Clone)]
pub struct ProcessConfig {
    /// Output bytes retained per process for `read` (oldest chunks evicted first).
    pub retained_output_bytes: usize,
    /// How long an exited process stays readable (and its id reserved).
    pub exited_retention: Duration,
    /// Most processes (running or retained) in this table at once.
    pub max_processes: usize,
    /// Bytes of stdin a process may have queued (written by clients, not yet read by the
    /// child) before further writes are refused (`maxStdinBufferedBytes`). A write to an
    /// empty queue is always taken, so the bound is this plus one message.
    pub max_stdin_buffered_bytes: usize,
    /// Notified of every process group, if set.
    pub group_watcher: Option<Arc<dyn GroupWatcher>>,
    /// Runs starts that carry a `sandbox`. `None`: such starts are refused.
    pub sandbox: Option<Arc<dyn ProcessSandbox>>,
}

impl Default for ProcessConfig {
    fn default() -> Self {
        ProcessConfig {
            retained_output_bytes: 1024 * 1024,
            exited_retention: Duration::from_secs(30),
            max_processes: 1024,
            max_stdin_buffered_bytes: 8 * 1024 * 1024,
            group_watcher: None,
            sandbox: None,
        }
    }
}

/// The processes of one owner (a session on the server, or a local environment). Dropping
/// the table kills every process group it still runs.
pub struct ProcessTable {
    shared: Arc<TableShared>,
}

struct TableShared {
    config: ProcessConfig,
    slots: Mutex<HashMap<String, Slot>>,
}

enum Slot {
    /// Reserved while the spawn is in flight, so concurrent starts of one id cannot both win.
    Starting,
    Live(Arc<ManagedProcess>),
}

struct ManagedProcess {
    /// Also the process group id: every child leads its own group.
    pid: libc::pid_t,
    state: Mutex<ProcessState>,
    /// Bumped on every change of `state`: wakes long-poll reads and the subscriber.
    changed: watch::Sender<()>,
    /// Bumped when the subscriber takes an event or goes away: wakes paused output readers.
    delivered: watch::Sender<()>,
    /// The writer task's queue: stdin data, close, and (PTY) resizes, in call order. Taken
    /// (dropped) when the process exits, so the writer finishes and lets go of the pipe or
    /// the terminal.
    stdin: Mutex<Option<mpsc::UnboundedSender<StdinOp>>>,
    /// What is queued and not yet written, and whether writes are being refused for it.
    stdin_buffer: Mutex<StdinBuffer>,
    /// Set by `close_stdin`, and at the exit: later writes report `stdinClosed`.
    stdin_closed: AtomicBool,
    /// Turned true at the exit: the writer stops, even in the middle of a write that a
    /// descendant will never read.
    stdin_release: watch::Sender<bool>,
    tty: bool,
    /// `pid` is a sandbox launcher, whose pid namespace holds the command and everything
    /// it starts: it may outlive the command's exit, and killing it kills them all.
    sandboxed: bool,
}

/// The accounting of a process's queued stdin.
#[derive(Debug, Default)]
struct StdinBuffer {
    /// Bytes queued and not yet written to the child (each operation counting at least
    /// [`STDIN_OP_COST`]).
    queued: usize,
    /// A write was refused for the limit: later writes are refused too until the queue is
    /// empty, so that a client that pipelines writes and sends the refused ones again never
    /// gets them reordered.
    refusing: bool,
}

struct ProcessState {
    log: OutputLog,
    /// Set, under this lock, in the same step that reaps the child. Until then the pid cannot
    /// be reused, so signalling the group is safe exactly while this is false.
    reaped: bool,
}

impl ManagedProcess {
    fn state(&self) -> MutexGuard<'_, ProcessState> {
        self.state.lock().expect("process state lock poisoned")
    }

    /// Kills the process group; for a sandboxed process also after the command exited,
    /// while its launcher (and so its pid namespace) lives. Returns whether the process was
    /// still running.
    fn kill_group(&self) -> bool {
        let state = self.state();
        let running = !state.reaped && state.log.exit().is_none();
        if running || (self.sandboxed && !state.reaped) {
            // SAFETY: kill has no memory effects; the group leader is ours and unreaped.
            unsafe { libc::kill(-self.pid, libc::SIGKILL) };
        }
        running
    }

    /// Sends `signal` to the process group, under the state lock and only while the exit is
    /// unrecorded (so the pid, kept reserved by the zombie, is still ours).
    fn signal_group(&self, signal: libc::c_int) -> bool {
        let state = self.state();
        if state.reaped || state.log.exit().is_some() {
            return false;
        }
        // SAFETY: kill has no memory effects; the group is ours and not yet reaped.
        unsafe { libc::kill(-self.pid, signal) };
        true
    }

    /// Queues `op` behind every earlier stdin operation, at once (the queue is bounded by
    /// bytes, in `write`). False when the writer is gone.
    fn queue_stdin(&self, op: StdinOp) -> bool {
        let cost = op.cost();
        let stdin = self.stdin.lock().expect("stdin lock poisoned");
        let Some(stdin) = stdin.as_ref() else {
            return false;
        };
        self.stdin_buffer
            .lock()
            .expect("stdin lock poisoned")
            .queued += cost;
        if stdin.send(op).is_err() {
            self.stdin_written(cost);
            return false;
        }
        true
    }

    /// Takes `data` into the stdin queue, unless that would take the queue over `limit`.
    fn queue_stdin_data(&self, data: Bytes, limit: usize) -> Result<bool, ProcessError> {
        let cost = data.len().max(STDIN_OP_COST);
        {
            let mut buffer = self.stdin_buffer.lock().expect("stdin lock poisoned");
            if buffer.queued > 0 && (buffer.refusing || buffer.queued + cost > limit) {
                buffer.refusing = true;
                return Err(ProcessError::LimitExceeded {
                    limit: crate::process::STDIN_LIMIT,
                    message: format!(
                        "the process has {} bytes of stdin queued that it has not read, and \
                         this write of {} bytes would take it over the limit of {limit} bytes \
                         (maxStdinBufferedBytes); nothing was written: send it again once the \
                         process has read its input",
                        buffer.queued,
                        data.len()
                    ),
                });
            }
            buffer.refusing = false;
        }
        Ok(self.queue_stdin(StdinOp::Data(data)))
    }

    /// The writer has written (or dropped) an operation of `cost`.
    fn stdin_written(&self, cost: usize) {
        let mut buffer = self.stdin_buffer.lock().expect("stdin lock poisoned");
        buffer.queued = buffer.queued.saturating_sub(cost);
    }

    /// At the exit: writes answer `stdinClosed` from now on, and the writer lets go of the
    /// pipe or terminal once it has nothing left it can write.
    fn release_stdin(&self) {
        self.stdin_closed.store(true, Ordering::SeqCst);
        self.stdin.lock().expect("stdin lock poisoned").take();
        self.stdin_release.send_replace(true);
    }
}

impl ProcessTable {
    pub fn new(config: ProcessConfig) -> Self {
        ProcessTable {
            shared: Arc::new(TableShared {
                config,
                slots: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn config(&self) -> &ProcessConfig {
        &self.shared.config
    }

    /// Processes of this table that have not exited yet.
    pub fn running_count(&self) -> usize {
        self.shared
            .slots()
            .values()
            .filter(|s| match s {
                Slot::Live(p) => p.state().log.exit().is_none(),
                Slot::Starting => true,
            })
            .count()
    }

    /// Kills every running process group of this table (session expiry, shutdown).
    pub fn kill_all(&self) {
        self.shared.kill_all();
    }

    fn lookup(&self, process_id: &str) -> Result<Arc<ManagedProcess>, ProcessError> {
        match self.shared.slots().get(process_id) {
            None => Err(ProcessError::UnknownProcess(process_id.to_owned())),
            Some(Slot::Starting) => Err(ProcessError::Starting(process_id.to_owned())),
            Some(Slot::Live(p)) => Ok(p.clone()),
        }
    }
}

impl TableShared {
    fn slots(&self) -> MutexGuard<'_, HashMap<String, Slot>> {
        self.slots.lock().expect("process table lock poisoned")
    }

    /// Kills every process group in the table, including those whose leader has exited
    /// but whose id is still retained: descendants that stayed in such a group die too. (A
    /// group id cannot be reused while any member lives, and the retention window is short,
    /// so this does not reach a stranger's group in practice.)
    fn kill_all(&self) {
        let processes: Vec<_> = self
            .slots()
            .values()
            .filter_map(|s| match s {
                Slot::Live(p) => Some(p.clone()),
                Slot::Starting => None,
            })
            .collect();
        for process in processes {
            if !process.kill_group() {
                // SAFETY: kill has no memory effects.
                unsafe { libc::kill(-process.pid, libc::SIGKILL) };
            }
        }
    }
}

impl Drop for TableShared {
    fn drop(&mut self) {
        self.kill_all();
        if let Some(watcher) = &self.config.group_watcher {
            for slot in self.slots().values() {
                if let Slot::Live(p) = slot {
                    watcher.group_released(p.pid);
                }
            }
        }
    }
}

#[async_trait]
impl ProcessBackend for ProcessTable {
    async fn start(&self, params: StartParams) -> Result<StartedProcess, ProcessError> {
        if params.argv.is_empty() {
            return Err(ProcessError::EmptyArgv);
        }
        refuse_unenforced_network(&params)?;
        check_environment(&params)?;
        let tty_size = params.tty_size;
        if tty_size.is_some_and(|s| s.rows == 0 || s.cols == 0) {
            return Err(ProcessError::InvalidSize);
        }
        let id = params.process_id.clone();
        {
            let mut slots = self.shared.slots();
            if slots.contains_key(&id) {
                return Err(ProcessError::AlreadyExists(id));
            }
            if slots.len() >= self.shared.config.max_processes {
                return Err(ProcessError::LimitExceeded {
                    limit: "maxProcessesPerSession",
                    message: format!(
                        "this session already has {} processes, the limit (maxProcessesPerSession); \
                         wait for some to exit and be released, or raise --max-processes-per-session",
                        self.shared.config.max_processes
                    ),
                });
            }
            slots.insert(id.clone(), Slot::Starting);
        }
        // If this future is dropped mid-spawn, the reservation must not outlive it.
        let reservation = Reservation {
            table: &self.shared,
            id: &id,
            armed: true,
        };

        let mode = if params.tty {
            StdioMode::Pty
        } else {
            StdioMode::Pipes {
                pipe_stdin: params.pipe_stdin,
            }
        };
        let timeout = params.timeout_ms.map(Duration::from_millis);
        let env = child_environment(params.env_policy.as_ref(), &params.env, std::env::vars());
        let command = CommandSpec {
            argv: params.argv,
            arg0: params.arg0,
            cwd: params.cwd.into_path_buf(),
            env,
            tty: params.tty,
        };
        let mut command = command;
        let (launcher, sandbox_type) = match params.sandbox {
            None => (None, SandboxType::None),
            Some(context) => {
                // Whatever the policy, a sandboxed command does not get the server's secrets.
                for name in SERVER_SECRET_VARIABLES {
                    command.env.remove(name);
                }
                let sandbox = self.shared.config.sandbox.as_ref().ok_or_else(|| {
                    ProcessError::SandboxRefused {
                        reason: "processSandboxUnavailable".to_owned(),
                        message: "this environment has no process sandbox, so a start with \
                                  `sandbox` is refused rather than run unconfined"
                            .to_owned(),
                    }
                })?;
                // Off the runtime's threads: it reads the disk, and probes the machine once.
                let (sandbox, spec) = (sandbox.clone(), command.clone());
                let launch = tokio::task::spawn_blocking(move || sandbox.prepare(&context, &spec))
                    .await
                    .map_err(|e| ProcessError::Spawn(io::Error::other(e)))?
                    .map_err(|refusal| ProcessError::SandboxRefused {
                        reason: refusal.reason,
                        message: refusal.message,
                    })?;
                let launcher = match launch {
                    SandboxLaunch::Unconfined => None,
                    SandboxLaunch::Wrapped {
                        program,
                        args,
                        spec,
                    } => Some(Launcher {
                        program,
                        args,
                        spec,
                    }),
                };
                (launcher, SandboxType::LinuxSeccomp)
            }
        };
        let request = SpawnRequest {
            argv: command.argv,
            arg0: command.arg0,
            cwd: command.cwd,
            env: command.env,
            mode,
            pty_size: tty_size.map(|s| (s.rows, s.cols)),
            launcher,
        };
        let mut spawned = spawn::spawn(request).await.map_err(ProcessError::Spawn)?;
        let pid = spawned.pid;
        let status = match spawned.launcher.take() {
            None => None,
            Some(channels) => Some(launched(pid, channels).await?),
        };
        match launch(&self.shared, spawned, mode, status) {
            Ok(process) => {
                if let Some(timeout) = timeout {
                    tokio::spawn(kill_after(Arc::downgrade(&process), timeout));
                }
                let events = subscribe(&process);
                self.shared.slots().insert(id.clone(), Slot::Live(process));
                reservation.disarm();
                Ok(StartedProcess {
                    process_id: id,
                    events,
                    sandbox_type,
                })
            }
            Err(e) => {
                // Spawned but not manageable: it must not run on unsupervised.
                spawn::kill_and_reap(pid);
                Err(ProcessError::Spawn(e))
            }
        }
    }

    async fn read(&self, params: ReadParams) -> Result<ReadResponse, ProcessError> {
        let process = self.lookup(&params.process_id)?;
        let after_seq = params.after_seq.unwrap_or(0);
        let wait = Duration::from_millis(params.wait_ms.unwrap_or(0));
        let deadline = tokio::time::Instant::now() + wait;
        let mut changed = process.changed.subscribe();
        loop {
            changed.borrow_and_update();
            {
                let state = process.state();
                let log = &state.log;
                if log.has_output_after(after_seq)
                    || log.exit().is_some()
                    || tokio::time::Instant::now() >= deadline
                {
                    return Ok(log.read(after_seq, params.max_bytes));
                }
            }
            // Either a change or the deadline; the loop re-checks both.
            let _ = tokio::time::timeout_at(deadline, changed.changed()).await;
        }
    }

    async fn write(&self, process_id: &str, chunk: Bytes) -> Result<WriteStatus, ProcessError> {
        let process = match self.lookup(process_id) {
            Ok(p) => p,
            Err(ProcessError::UnknownProcess(_)) => return Ok(WriteStatus::UnknownProcess),
            Err(ProcessError::Starting(_)) => return Ok(WriteStatus::Starting),
            Err(e) => return Err(e),
        };
        if process.stdin_closed.load(Ordering::SeqCst) {
            return Ok(WriteStatus::StdinClosed);
        }
        let limit = self.shared.config.max_stdin_buffered_bytes;
        if process.queue_stdin_data(chunk, limit)? {
            Ok(WriteStatus::Accepted)
        } else {
            Ok(WriteStatus::StdinClosed)
        }
    }

    async fn terminate(&self, process_id: &str) -> Result<bool, ProcessError> {
        match self.lookup(process_id) {
            Ok(process) => Ok(process.kill_group()),
            Err(ProcessError::UnknownProcess(_) | ProcessError::Starting(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn signal(&self, process_id: &str, signal: &str) -> Result<bool, ProcessError> {
        let number =
            signal_number(signal).ok_or_else(|| ProcessError::UnknownSignal(signal.to_owned()))?;
        Ok(self.lookup(process_id)?.signal_group(number))
    }

    async fn close_stdin(&self, process_id: &str) -> Result<(), ProcessError> {
        let process = self.lookup(process_id)?;
        // Only the first close queues anything: a second ^D would be a second end-of-file.
        if !process.stdin_closed.swap(true, Ordering::SeqCst) {
            // A writer that is already gone (the child closed its stdin or exited) leaves
            // nothing to close.
            process.queue_stdin(StdinOp::Close);
        }
        Ok(())
    }

    async fn list(&self) -> Result<Vec<ProcessInfo>, ProcessError> {
        let processes: Vec<(String, Arc<ManagedProcess>)> = self
            .shared
            .slots()
            .iter()
            .filter_map(|(id, slot)| match slot {
                Slot::Live(p) => Some((id.clone(), p.clone())),
                // Not started yet: there is nothing to report.
                Slot::Starting => None,
            })
            .collect();
        let mut list: Vec<ProcessInfo> = processes
            .into_iter()
            .map(|(process_id, process)| {
                let exit = process.state().log.exit();
                ProcessInfo {
                    process_id,
                    pid: Some(process.pid as u32),
                    tty: process.tty,
                    running: exit.is_none(),
                    exit_code: exit.map(|e| e.exit_code),
                    signal: exit.and_then(|e| e.signal),
                }
            })
            .collect();
        list.sort_by(|a, b| a.process_id.cmp(&b.process_id));
        Ok(list)
    }

    async fn resize(&self, process_id: &str, rows: u16, cols: u16) -> Result<(), ProcessError> {
        let process = self.lookup(process_id)?;
        if !process.tty {
            return Err(ProcessError::NotATerminal(process_id.to_owned()));
        }
        if rows == 0 || cols == 0 {
            return Err(ProcessError::InvalidSize);
        }
        // Queued with the writes, so input written before the resize is typed at the old
        // size. A writer that is gone means the terminal is gone: nothing to resize.
        process.queue_stdin(StdinOp::Resize(pty_process::Size::new(rows, cols)));
        Ok(())
    }
}

/// Names and values the kernel would pass on as something else (`A=B` becomes `A` with a
/// value starting `B=`, an empty name an entry `=x`) or not at all (NUL) are refused.
fn check_environment(params: &StartParams) -> Result<(), ProcessError> {
    let set = params.env_policy.iter().flat_map(|p| &p.set);
    for (name, value) in params.env.iter().chain(set) {
        if name.is_empty() || name.contains(['=', '\0']) || value.contains('\0') {
            return Err(ProcessError::InvalidEnvironment(name.clone()));
        }
    }
    Ok(())
}

/// `enforceManagedNetwork` and `networkProxy` ask for a network proxy this server does not
/// have; ignoring them would leave the network open, so they are refused.
fn refuse_unenforced_network(params: &StartParams) -> Result<(), ProcessError> {
    if params.enforce_managed_network {
        return Err(ProcessError::SandboxRefused {
            reason: "managedNetworkUnsupported".to_owned(),
            message: "enforceManagedNetwork: true needs a managed network proxy, which this \
                      server does not have; the start was refused rather than run with the \
                      network open"
                .to_owned(),
        });
    }
    if params.network_proxy.is_some() {
        return Err(ProcessError::SandboxRefused {
            reason: "networkProxyUnsupported".to_owned(),
            message: "networkProxy is not supported by this server (it does not advertise \
                      networkProxyLaunch); the start was refused"
                .to_owned(),
        });
    }
    Ok(())
}

/// Waits for a sandbox launcher to execute the command, or to report why it could not. On
/// failure the launcher is killed and reaped, and nothing is left running.
async fn launched(pid: libc::pid_t, channels: LauncherChannels) -> Result<OwnedFd, ProcessError> {
    let outcome = tokio::time::timeout(SANDBOX_LAUNCH_TIMEOUT, read_to_end(channels.launch)).await;
    let failure = match outcome {
        Ok(Ok(report)) if report.is_empty() => return Ok(channels.status),
        Ok(Ok(report)) => match serde_json::from_slice::<LaunchFailure>(&report) {
            Ok(LaunchFailure::Setup { reason, message }) => {
                ProcessError::SandboxRefused { reason, message }
            }
            Ok(LaunchFailure::Exec { errno }) => {
                ProcessError::Spawn(io::Error::from_raw_os_error(errno))
            }
            Err(e) => ProcessError::Spawn(io::Error::other(format!(
                "the sandbox launcher sent an unreadable report: {e}"
            ))),
        },
        Ok(Err(e)) => ProcessError::Spawn(io::Error::other(format!(
            "cannot read the sandbox launcher's report: {e}"
        ))),
        Err(_) => ProcessError::SandboxRefused {
            reason: "sandboxSetupTimedOut".to_owned(),
            message: format!(
                "the sandbox was not set up within {SANDBOX_LAUNCH_TIMEOUT:?}; the start was refused"
            ),
        },
    };
    spawn::kill_and_reap(pid);
    Err(failure)
}

/// Reads a non-blocking pipe to its end.
async fn read_to_end(fd: OwnedFd) -> io::Result<Vec<u8>> {
    let mut pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(fd)?;
    let mut bytes = Vec::new();
    pipe.read_to_end(&mut bytes).await?;
    Ok(bytes)
}

/// Enforces `timeoutMs`: kills the process group once `timeout` has passed, unless the
/// process has exited (then `kill_group` does nothing) or left the table (the weak reference
/// is gone) by then.
async fn kill_after(process: Weak<ManagedProcess>, timeout: Duration) {
    tokio::time::sleep(timeout).await;
    if let Some(process) = process.upgrade() {
        process.kill_group();
    }
}

/// Removes a `Starting` slot when dropped, unless disarmed (the process went live).
struct Reservation<'a> {
    table: &'a TableShared,
    id: &'a str,
    armed: bool,
}

impl Reservation<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut slots = self.table.slots();
            if matches!(slots.get(self.id), Some(Slot::Starting)) {
                slots.remove(self.id);
            }
        }
    }
}

/// Wires a spawned child to its tasks: output readers, stdin writer, exit waiter.
fn launch(
    table: &Arc<TableShared>,
    spawned: spawn::SpawnedChild,
    mode: StdioMode,
    sandbox_status: Option<OwnedFd>,
) -> io::Result<Arc<ManagedProcess>> {
    let retention = table.config.retained_output_bytes;
    let (stdin_tx, stdin_rx) = mpsc::unbounded_channel::<StdinOp>();
    // SAFETY: the OwnedFd is moved into the AsyncFd, so it stays open and unchanged for the
    // AsyncFd's whole life.
    let pidfd = unsafe { AsyncFd::register(spawned.pidfd) }.map_err(io::Error::from)?;
    let make = |streams: u8, has_stdin: bool, tty: bool| {
        Arc::new(ManagedProcess {
            pid: spawned.pid,
            state: Mutex::new(ProcessState {
                log: OutputLog::new(retention, streams, has_stdin),
                reaped: false,
            }),
            changed: watch::Sender::new(()),
            delivered: watch::Sender::new(()),
            stdin: Mutex::new(has_stdin.then(|| stdin_tx.clone())),
            stdin_buffer: Mutex::new(StdinBuffer::default()),
            // Without a writable stdin, writes report `stdinClosed` from the start.
            stdin_closed: AtomicBool::new(!has_stdin),
            stdin_release: watch::Sender::new(false),
            tty,
            sandboxed: sandbox_status.is_some(),
        })
    };
    let process = match spawned.io {
        ChildIo::Pipes {
            stdin,
            stdout,
            stderr,
        } => {
            let stdout = tokio::net::unix::pipe::Receiver::from_owned_fd(stdout)?;
            let stderr = tokio::net::unix::pipe::Receiver::from_owned_fd(stderr)?;
            let stdin = stdin
                .map(tokio::net::unix::pipe::Sender::from_owned_fd)
                .transpose()?;
            let process = make(2, stdin.is_some(), false);
            tokio::spawn(read_output(process.clone(), stdout, OutputStream::Stdout));
            tokio::spawn(read_output(process.clone(), stderr, OutputStream::Stderr));
            if let Some(stdin) = stdin {
                tokio::spawn(write_stdin(
                    process.clone(),
                    StdinSink::Pipe(stdin),
                    stdin_rx,
                ));
            }
            process
        }
        ChildIo::Pty { master } => {
            debug_assert_eq!(mode, StdioMode::Pty);
            let (reader, writer) = master.into_split();
            let process = make(1, true, true);
            tokio::spawn(read_output(process.clone(), reader, OutputStream::Pty));
            tokio::spawn(write_stdin(
                process.clone(),
                StdinSink::Pty(writer),
                stdin_rx,
            ));
            process
        }
    };
    if let Some(watcher) = &table.config.group_watcher {
        watcher.group_started(process.pid);
    }
    tokio::spawn(wait_for_exit(
        Arc::downgrade(table),
        process.clone(),
        pidfd,
        sandbox_status,
    ));
    Ok(process)
}

async fn read_output(
    process: Arc<ManagedProcess>,
    mut reader: impl AsyncRead + Unpin,
    stream: OutputStream,
) {
    let mut buf = vec![0u8; OUTPUT_CHUNK_BYTES];
    let mut delivered = process.delivered.subscribe();
    loop {
        wait_for_subscriber(&process, &mut delivered).await;
        match reader.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                let chunk = Bytes::copy_from_slice(&buf[..n]);
                process.state().log.push_output(stream, chunk);
                process.changed.send_replace(());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // A PTY master reads EIO once every holder of the terminal side has closed it:
            // that is its end of file. Any other error also ends the stream.
            Err(_) => break,
        }
    }
    process.state().log.stream_ended();
    process.changed.send_replace(());
}

/// Back-pressure: while a subscriber is attached, pause reading when it is too far behind.
async fn wait_for_subscriber(process: &ManagedProcess, delivered: &mut watch::Receiver<()>) {
    loop {
        delivered.borrow_and_update();
        if process.state().log.undelivered_bytes() < SUBSCRIBER_WINDOW_BYTES {
            return;
        }
        if delivered.changed().await.is_err() {
            return;
        }
    }
}

async fn write_all(writer: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) -> io::Result<()> {
    writer.write_all(bytes).await?;
    writer.flush().await
}

/// Applies a process's stdin operations in order. Returning drops the queue, so later
/// writes report stdinClosed.
async fn write_stdin(
    process: Arc<ManagedProcess>,
    sink: StdinSink,
    mut ops: mpsc::UnboundedReceiver<StdinOp>,
) {
    let mut release = process.stdin_release.subscribe();
    // The exit ends the writer even in the middle of a write that a descendant holding the
    // pipe will never read (the data is discarded: the process it was for has exited).
    tokio::select! {
        () = apply_stdin_ops(&process, sink, &mut ops) => {},
        _ = release.wait_for(|released| *released) => {},
    }
    // Whatever is still queued is dropped.
    while let Ok(op) = ops.try_recv() {
        process.stdin_written(op.cost());
    }
    process.stdin_closed.store(true, Ordering::SeqCst);
    process.state().log.input_ended();
    process.changed.send_replace(());
}

/// Applies a process's stdin operations in order, until the queue closes (the exit) or the
/// child stops reading (closed its stdin, or the terminal is gone).
async fn apply_stdin_ops(
    process: &ManagedProcess,
    mut sink: StdinSink,
    ops: &mut mpsc::UnboundedReceiver<StdinOp>,
) {
    // Whether the terminal's current input line is empty (PTY only).
    let mut at_line_start = true;
    while let Some(op) = ops.recv().await {
        let cost = op.cost();
        let written = match (&mut sink, op) {
            (StdinSink::Pipe(pipe), StdinOp::Data(chunk)) => write_all(pipe, &chunk).await,
            (StdinSink::Pty(pty), StdinOp::Data(chunk)) => {
                if let Some(last) = chunk.last() {
                    at_line_start = matches!(*last, b'\n' | b'\r' | PTY_EOF);
                }
                write_all(pty, &chunk).await
            }
            // Dropping the write end is the end of file the child reads.
            (StdinSink::Pipe(_), StdinOp::Close) => {
                process.stdin_written(cost);
                return;
            }
            (StdinSink::Pty(pty), StdinOp::Close) => {
                // In canonical mode ^D ends the input only on an empty line; on a partial
                // line it hands that line over, and a second ^D then ends the input, as when
                // a user types it twice. The terminal stays open: it carries the output.
                let eof: &[u8] = if at_line_start {
                    &[PTY_EOF]
                } else {
                    &[PTY_EOF, PTY_EOF]
                };
                at_line_start = true;
                write_all(pty, eof).await
            }
            (StdinSink::Pty(pty), StdinOp::Resize(size)) => {
                // TIOCSWINSZ; the kernel sends SIGWINCH to the terminal's foreground group.
                let _ = pty.resize(size);
                Ok(())
            }
            // `resize` refuses processes without a terminal before queueing.
            (StdinSink::Pipe(_), StdinOp::Resize(_)) => Ok(()),
        };
        process.stdin_written(cost);
        if written.is_err() {
            // The child closed its stdin (or the terminal is gone).
            return;
        }
    }
}

/// Decodes a `waitpid` status into (exit code, signal): a signal death is -1 and the signal.
fn decode_wait_status(status: libc::c_int) -> (i32, Option<i32>) {
    if libc::WIFEXITED(status) {
        (libc::WEXITSTATUS(status), None)
    } else if libc::WIFSIGNALED(status) {
        (-1, Some(libc::WTERMSIG(status)))
    } else {
        (-1, None)
    }
}

/// Reaps our exited child `pid`: its wait status, or None when it was not ours to reap.
fn reap(pid: libc::pid_t) -> Option<libc::c_int> {
    let mut status: libc::c_int = 0;
    // SAFETY: reaps our own child, which has exited, so this does not block.
    let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
    (rc == pid).then_some(status)
}

/// Output the child wrote before exiting may still sit in the pipe. Gives the readers a
/// moment to reach end of file, so that such output gets seqs before the exit event. The
/// wait is cut short when descendants keep the streams open.
async fn drain_output(process: &ManagedProcess) {
    let mut changed = process.changed.subscribe();
    let _ = tokio::time::timeout(EXIT_DRAIN_GRACE, async {
        loop {
            changed.borrow_and_update();
            if process.state().log.open_streams() == 0 || changed.changed().await.is_err() {
                return;
            }
        }
    })
    .await;
}

/// Records a process's exit, then lets it go from the table once the retention is over.
///
/// Unsandboxed, the exit is the child's: the pidfd turns readable, and the zombie keeps the
/// pid and process group reserved until it is reaped here, under the state lock, in the same
/// step that records the exit (so terminate never signals a stranger).
///
/// Sandboxed, the child is the launcher, and the command's exit arrives on `sandbox_status`;
/// the launcher lives on while the command's descendants do (they are in its pid namespace),
/// and is reaped whenever it exits. If it dies before reporting (killed), its own status is
/// the command's.
async fn wait_for_exit(
    table: Weak<TableShared>,
    process: Arc<ManagedProcess>,
    pidfd: AsyncFd<OwnedFd>,
    sandbox_status: Option<OwnedFd>,
) {
    let (reported, uncreatable) = match sandbox_status {
        None => (None, Vec::new()),
        Some(status) => read_status(status).await,
    };
    match reported {
        Some(exit) => {
            drain_output(&process).await;
            record_command_exit(&process, &exit);
            process.release_stdin();
            process.changed.send_replace(());
            let launcher = process.clone();
            let table = table.clone();
            tokio::spawn(async move {
                let _ = pidfd.readable().await;
                {
                    let mut state = launcher.state();
                    reap(launcher.pid);
                    state.reaped = true;
                }
                sweep(&table, uncreatable).await;
            });
        }
        None => {
            // A pidfd polls readable once the process has exited (it is then a zombie until
            // reaped).
            let _ = pidfd.readable().await;
            drain_output(&process).await;
            {
                let mut state = process.state();
                let (exit_code, signal) = reap(process.pid).map_or((-1, None), decode_wait_status);
                state.reaped = true;
                let denied = process.sandboxed
                    && looks_denied(exit_code, signal, || state.log.mentions_any(DENIAL_WORDS));
                state.log.record_exit(exit_code, signal, denied);
            }
            process.release_stdin();
            process.changed.send_replace(());
            drop(pidfd);
            sweep(&table, uncreatable).await;
        }
    }

    let Some(retention) = table.upgrade().map(|t| t.config.exited_retention) else {
        process.kill_group();
        return;
    };
    tokio::time::sleep(retention).await;
    // Whatever the command left running in its sandbox goes with it.
    process.kill_group();
    if let Some(table) = table.upgrade() {
        let mut slots = table.slots();
        let before = slots.len();
        slots.retain(|_, slot| !matches!(slot, Slot::Live(p) if Arc::ptr_eq(p, &process)));
        if slots.len() < before {
            if let Some(watcher) = &table.config.group_watcher {
                watcher.group_released(process.pid);
            }
        }
    }
}

/// Reads a launcher's status lines: the protected paths it may not let be created, then the
/// command's exit (`None` when the launcher died before reporting one).
async fn read_status(fd: OwnedFd) -> (Option<CommandExit>, Vec<PathBuf>) {
    use tokio::io::AsyncBufReadExt;
    let mut uncreatable = Vec::new();
    let Ok(pipe) = tokio::net::unix::pipe::Receiver::from_owned_fd(fd) else {
        return (None, uncreatable);
    };
    let mut lines = tokio::io::BufReader::new(pipe).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        match serde_json::from_str::<StatusLine>(&line) {
            Ok(StatusLine::Uncreatable(paths)) => uncreatable = paths,
            Ok(StatusLine::Exited(exit)) => return (Some(exit), uncreatable),
            Err(e) => tracing::warn!("unreadable status from a sandbox launcher: {e}"),
        }
    }
    (None, uncreatable)
}

/// Once a sandbox is gone, removes the protected paths it created although its policy
/// forbids it (its init does so too, unless it was killed first).
async fn sweep(table: &Weak<TableShared>, uncreatable: Vec<PathBuf>) {
    if uncreatable.is_empty() {
        return;
    }
    let Some(sandbox) = table.upgrade().and_then(|t| t.config.sandbox.clone()) else {
        return;
    };
    if let Ok(removed) = tokio::task::spawn_blocking(move || sandbox.sweep(&uncreatable)).await {
        for path in removed {
            tracing::warn!(
                path = %path.display(),
                "removed a protected path that a sandboxed command created after its exit"
            );
        }
    }
}

/// Records the exit a sandbox launcher reported. A protected path the command created is
/// reported in the output (the launcher removed it), turns a clean exit into 1, and counts
/// as a denial, as codex does.
fn record_command_exit(process: &ManagedProcess, exit: &CommandExit) {
    let (mut exit_code, signal) = decode_wait_status(exit.wait_status);
    let mut state = process.state();
    if !exit.removed.is_empty() {
        let mut note = String::new();
        for path in &exit.removed {
            note.push_str(&format!(
                "exec-server: the sandbox removed {}, which the sandbox policy does not let a \
                 command create\n",
                path.display()
            ));
        }
        let stream = if process.tty {
            OutputStream::Pty
        } else {
            OutputStream::Stderr
        };
        state.log.push_output(stream, Bytes::from(note));
        if exit_code == 0 && signal.is_none() {
            exit_code = 1;
        }
    }
    let denied = !exit.removed.is_empty()
        || looks_denied(exit_code, signal, || state.log.mentions_any(DENIAL_WORDS));
    state.log.record_exit(exit_code, signal, denied);
}

/// The event stream handed to the starter of a process.
fn subscribe(process: &Arc<ManagedProcess>) -> ProcessEvents {
    struct Subscription {
        process: Arc<ManagedProcess>,
        changed: watch::Receiver<()>,
        finished: bool,
    }
    impl Drop for Subscription {
        fn drop(&mut self) {
            self.process.state().log.drop_subscriber();
            self.process.delivered.send_replace(());
        }
    }
    let sub = Subscription {
        process: process.clone(),
        changed: process.changed.subscribe(),
        finished: false,
    };
    let stream = futures::stream::unfold(sub, |mut sub| async move {
        if sub.finished {
            return None;
        }
        loop {
            sub.changed.borrow_and_update();
            let next = sub.process.state().log.next_for_subscriber();
            if let Some(event) = next {
                sub.process.delivered.send_replace(());
                sub.finished = matches!(event, ProcessEvent::Closed { .. });
                return Some((event, sub));
            }
            if sub.changed.changed().await.is_err() {
                return None;
            }
        }
    });
    ProcessEvents::new(Box::pin(stream))
}
