//! The process capability: start a program, stream its output, write its stdin, kill it.

use async_trait::async_trait;
use bytes::Bytes;
use exec_server_protocol::error_codes;
use exec_server_protocol::process::{
    OutputStream, ProcessInfo, ReadParams, ReadResponse, StartParams, WriteStatus,
};
use exec_server_protocol::sandbox::SandboxType;
use exec_server_protocol::ErrorObject;
use futures::stream::BoxStream;
use futures::StreamExt;

/// Starts and controls processes. Implemented locally by [`crate::local::ProcessTable`] and
/// remotely by the client library; the semantics are those of the `process/*` methods.
#[async_trait]
pub trait ProcessBackend: Send + Sync {
    /// Spawns a process. Its events (output, exit, close) are delivered through the returned
    /// stream, in seq order, starting from seq 1. A consumer that stops polling the stream
    /// eventually pauses the process's output (back-pressure); drop the stream if you only
    /// want to use [`ProcessBackend::read`].
    async fn start(&self, params: StartParams) -> Result<StartedProcess, ProcessError>;

    /// Reads retained output after a seq, optionally waiting for some to arrive.
    async fn read(&self, params: ReadParams) -> Result<ReadResponse, ProcessError>;

    /// Queues bytes for the process's stdin. Writes to one process apply in call order.
    ///
    /// The queue is bounded (`maxStdinBufferedBytes`): a write that would take it over the
    /// bound is refused ([`ProcessError::limit`] names the limit) and nothing of it is
    /// written; later writes are refused too until the process has read what is queued, so
    /// sending them again in order never reorders them. [`write_waiting`](Self::write_waiting)
    /// does that.
    async fn write(&self, process_id: &str, chunk: Bytes) -> Result<WriteStatus, ProcessError>;

    /// Like [`write`](Self::write), but while the process's stdin queue is full, waits for the
    /// process to read and sends the chunk again: a producer faster than the process loses
    /// nothing and does not grow anyone's memory. Write one chunk at a time (await each) for
    /// the order to hold.
    async fn write_waiting(
        &self,
        process_id: &str,
        chunk: Bytes,
    ) -> Result<WriteStatus, ProcessError> {
        let mut pause = std::time::Duration::from_millis(1);
        loop {
            match self.write(process_id, chunk.clone()).await {
                Err(e) if e.limit() == Some(STDIN_LIMIT) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_millis(50));
                }
                other => return other,
            }
        }
    }

    /// Kills the process's whole process group. Returns whether it was still running.
    async fn terminate(&self, process_id: &str) -> Result<bool, ProcessError>;

    /// Sends a signal (a name such as `"SIGINT"` or `"INT"`) to the process's whole process
    /// group. Returns whether it was delivered: false once the process has exited.
    async fn signal(&self, process_id: &str, signal: &str) -> Result<bool, ProcessError>;

    /// Closes the process's stdin once every write queued before it has been written. For a
    /// PTY process this types the terminal's end-of-file character (^D) instead, since the
    /// terminal itself stays open. Later writes report `stdinClosed`; closing twice is fine.
    async fn close_stdin(&self, process_id: &str) -> Result<(), ProcessError>;

    /// The processes of this owner (running, and exited ones still retained), sorted by id.
    async fn list(&self) -> Result<Vec<ProcessInfo>, ProcessError>;

    /// Sets a PTY process's window size (the child gets SIGWINCH), in order with writes.
    async fn resize(&self, process_id: &str, rows: u16, cols: u16) -> Result<(), ProcessError>;
}

/// A started process and the stream of its events.
pub struct StartedProcess {
    pub process_id: String,
    pub events: ProcessEvents,
    /// The sandbox the process runs in (`None` when no `sandbox` was given).
    pub sandbox_type: SandboxType,
}

/// One event of a process. Output, exit and close share one seq counter per process.
#[derive(Debug, Clone, PartialEq)]
pub enum ProcessEvent {
    Output {
        seq: u64,
        stream: OutputStream,
        chunk: Bytes,
    },
    Exited {
        seq: u64,
        /// The exit status, or -1 for a signal death.
        exit_code: i32,
        signal: Option<i32>,
        /// The sandbox probably stopped it (see `ReadResponse::sandbox_denied`).
        sandbox_denied: bool,
    },
    /// The last event: the process exited and all its output streams ended.
    Closed { seq: u64 },
    /// Output chunks with seqs `from_seq..=to_seq` were evicted from the server's retention
    /// while this client was disconnected, and are lost. Reported in their place in the seq
    /// order; never produced by the local implementation.
    Gap { from_seq: u64, to_seq: u64 },
    /// The implementation can no longer deliver events (for example, the connection to the
    /// server was lost). Nothing follows it.
    Failed { message: String },
}

/// The event stream of one process. Ends after `Closed` or `Failed`.
pub struct ProcessEvents(BoxStream<'static, ProcessEvent>);

impl ProcessEvent {
    /// The seq this event takes (for a gap, its first seq); None for `Failed`.
    pub fn seq(&self) -> Option<u64> {
        match self {
            ProcessEvent::Output { seq, .. }
            | ProcessEvent::Exited { seq, .. }
            | ProcessEvent::Closed { seq } => Some(*seq),
            ProcessEvent::Gap { from_seq, .. } => Some(*from_seq),
            ProcessEvent::Failed { .. } => None,
        }
    }
}

impl ProcessEvents {
    pub fn new(stream: BoxStream<'static, ProcessEvent>) -> Self {
        ProcessEvents(stream)
    }

    /// The next event, or `None` once the stream is over.
    pub async fn next(&mut self) -> Option<ProcessEvent> {
        self.0.next().await
    }
}

impl futures::Stream for ProcessEvents {
    type Item = ProcessEvent;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<ProcessEvent>> {
        self.0.as_mut().poll_next(cx)
    }
}

/// Why a process call failed. Each variant maps to the JSON-RPC error the server sends, and a
/// remote failure carries the server's error unchanged, so callers can match on [`code`]
/// whichever implementation they use.
///
/// [`code`]: ProcessError::code
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("argv must not be empty")]
    EmptyArgv,
    /// An environment variable the kernel cannot pass on as given.
    #[error("invalid environment variable {0:?}: a name must not be empty or contain `=` or NUL, and a value must not contain NUL")]
    InvalidEnvironment(String),
    #[error("process {0} already exists")]
    AlreadyExists(String),
    #[error("unknown process id {0}")]
    UnknownProcess(String),
    #[error("process id {0} is starting")]
    Starting(String),
    #[error("{0}")]
    Spawn(#[source] std::io::Error),
    #[error("failed to write to process stdin")]
    StdinGone,
    #[error("unknown signal {0:?}: expected one of SIGINT, SIGTERM, SIGKILL, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGSTOP, SIGCONT, SIGWINCH")]
    UnknownSignal(String),
    #[error("process {0} has no terminal to resize (it was started without tty)")]
    NotATerminal(String),
    #[error("rows and cols must be at least 1")]
    InvalidSize,
    /// The server did not advertise this method in `capabilities.methods` (an older or
    /// another implementation), so the client does not send it.
    #[error("the exec server does not support {0} (it is not in the server's capabilities)")]
    Unsupported(&'static str),
    /// A `sandbox` (or a network setting) this server will not enforce, or a mechanism the
    /// machine lacks: refused, nothing spawned. `reason` goes in `data.reason`.
    #[error("{message}")]
    SandboxRefused { reason: String, message: String },
    #[error("{message}")]
    LimitExceeded {
        limit: &'static str,
        message: String,
    },
    /// An error reply from a remote server.
    #[error("{0}")]
    Remote(ErrorObject),
    /// The connection to the server is gone.
    #[error("{0}")]
    Transport(String),
}

/// The limit on a process's queued stdin, as `data.limit` names it.
pub const STDIN_LIMIT: &str = "maxStdinBufferedBytes";

impl ProcessError {
    /// The limit this error reports (`data.limit`), whichever implementation reported it.
    pub fn limit(&self) -> Option<&str> {
        match self {
            ProcessError::LimitExceeded { limit, .. } => Some(limit),
            ProcessError::Remote(e) => e.data.as_ref()?.get("limit")?.as_str(),
            _ => None,
        }
    }

    /// The JSON-RPC error code for this failure.
    pub fn code(&self) -> i64 {
        match self {
            ProcessError::EmptyArgv
            | ProcessError::InvalidEnvironment(_)
            | ProcessError::UnknownSignal(_)
            | ProcessError::NotATerminal(_)
            | ProcessError::InvalidSize
            | ProcessError::SandboxRefused { .. } => error_codes::INVALID_PARAMS,
            ProcessError::Unsupported(_) => error_codes::METHOD_NOT_FOUND,
            ProcessError::AlreadyExists(_)
            | ProcessError::UnknownProcess(_)
            | ProcessError::Starting(_)
            | ProcessError::LimitExceeded { .. } => error_codes::INVALID_REQUEST,
            ProcessError::Spawn(_) | ProcessError::StdinGone => error_codes::INTERNAL_ERROR,
            ProcessError::Remote(e) => e.code,
            ProcessError::Transport(_) => error_codes::TRANSPORT_CLOSED,
        }
    }

    /// The JSON-RPC error object the server sends for this failure.
    pub fn to_error_object(&self) -> ErrorObject {
        match self {
            ProcessError::Remote(e) => e.clone(),
            ProcessError::LimitExceeded { limit, message } => {
                ErrorObject::new(self.code(), message.clone()).with_data(serde_json_limit(limit))
            }
            ProcessError::SandboxRefused { reason, message } => {
                ErrorObject::new(self.code(), message.clone())
                    .with_data(serde_json::json!({ "reason": reason }))
            }
            other => ErrorObject::new(other.code(), other.to_string()),
        }
    }
}

fn serde_json_limit(limit: &str) -> serde_json::Value {
    serde_json::json!({ "limit": limit })
}
