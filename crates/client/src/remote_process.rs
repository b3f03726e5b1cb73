//! `RemoteProcesses`: the process capability over an exec-server connection.

use crate::connection::ExecServerClient;
use crate::error::ClientError;
use async_trait::async_trait;
use bytes::Bytes;
use exec_server_environment::{
    ProcessBackend, ProcessError, ProcessEvent, ProcessEvents, StartedProcess,
};
use exec_server_protocol::methods;
use exec_server_protocol::process::{
    CloseStdinParams, ListParams, ListResponse, ProcessInfo, ReadParams, ReadResponse,
    ResizeParams, SignalParams, SignalResponse, StartParams, StartResponse, TerminateParams,
    TerminateResponse, WriteParams, WriteResponse, WriteStatus,
};
use exec_server_protocol::sandbox::SandboxType;
use exec_server_protocol::{Base64Bytes, EmptyResponse};

/// Forwards every process call to the server; events arrive as notifications.
pub struct RemoteProcesses {
    client: ExecServerClient,
}

impl RemoteProcesses {
    pub fn new(client: ExecServerClient) -> Self {
        RemoteProcesses { client }
    }

    pub fn client(&self) -> &ExecServerClient {
        &self.client
    }

    /// Refuses a method the server did not advertise in `capabilities.methods` (a codex
    /// server advertises nothing), instead of sending it and getting -32601.
    fn require(&self, method: &'static str) -> Result<(), ProcessError> {
        let advertised = self
            .client
            .capabilities()
            .is_some_and(|c| c.methods.iter().any(|m| m == method));
        if advertised {
            Ok(())
        } else {
            Err(ProcessError::Unsupported(method))
        }
    }

    /// The events of a process this session already has (started by an earlier client of a
    /// resumed session, see `ClientOptions::resume_session_id`): everything still retained,
    /// read from seq 1 (evicted output shows as a `Gap`), then live events, each exactly
    /// once and in seq order, as for a process started here.
    pub async fn follow(&self, process_id: &str) -> Result<ProcessEvents, ProcessError> {
        // Route first: notifications arriving from now on are kept, and the catch-up read
        // fills in everything before them.
        let Some(receiver) = self.client.route_process(process_id) else {
            return Err(ProcessError::AlreadyExists(process_id.to_owned()));
        };
        match self.exists(process_id).await {
            Ok(true) => {}
            Ok(false) => {
                self.client.unroute_process(process_id);
                return Err(ProcessError::UnknownProcess(process_id.to_owned()));
            }
            Err(e) => {
                self.client.unroute_process(process_id);
                return Err(to_process_error(e));
            }
        }
        self.client.catch_up_process(process_id);
        Ok(remote_events(receiver))
    }

    /// Whether the server knows `process_id` (after a start whose reply was lost).
    async fn exists(&self, process_id: &str) -> Result<bool, ClientError> {
        let params = ReadParams {
            process_id: process_id.to_owned(),
            after_seq: None,
            max_bytes: Some(0),
            wait_ms: Some(0),
        };
        match self
            .client
            .call_idempotent::<_, ReadResponse>(methods::PROCESS_READ, &params)
            .await
        {
            Ok(_) => Ok(true),
            Err(ClientError::Rpc(e)) if e.message.starts_with("unknown process id") => Ok(false),
            // "is starting": it exists.
            Err(ClientError::Rpc(_)) => Ok(true),
            Err(e) => Err(e),
        }
    }
}

fn to_process_error(e: ClientError) -> ProcessError {
    match e {
        ClientError::Rpc(error) => ProcessError::Remote(error),
        other => ProcessError::Transport(other.to_string()),
    }
}

#[async_trait]
impl ProcessBackend for RemoteProcesses {
    async fn start(&self, params: StartParams) -> Result<StartedProcess, ProcessError> {
        // A server without the feature would ignore the field and let the process run on.
        let enforces_timeouts = self
            .client
            .capabilities()
            .is_some_and(|c| c.features.process_timeout);
        if params.timeout_ms.is_some() && !enforces_timeouts {
            return Err(ProcessError::Unsupported("process/start timeoutMs"));
        }
        let sandboxed = params.sandbox.is_some();
        if sandboxed && !self.client.enforces_process_sandbox() {
            return Err(ProcessError::Unsupported("process/start sandbox"));
        }
        let process_id = params.process_id.clone();
        // Route before asking, so no event can arrive before there is somewhere to put it.
        // An existing route means this client already has a live process with that id.
        let Some(receiver) = self.client.route_process(&process_id) else {
            return Err(ProcessError::AlreadyExists(process_id));
        };
        let outcome = loop {
            match self
                .client
                .call::<_, StartResponse>(methods::PROCESS_START, &params)
                .await
            {
                Ok(response) => break Ok(response.sandbox_type),
                // The reply was lost with the connection: whether the process started decides
                // between done (its events are caught up after the resume) and trying again.
                Err(ClientError::ConnectionLost(_)) => match self.exists(&process_id).await {
                    // A server that took the start took its sandbox too: it never reaches
                    // this point without enforcing it (or refusing).
                    Ok(true) => break Ok(sandboxed.then_some(SandboxType::LinuxSeccomp)),
                    Ok(false) => continue,
                    Err(e) => break Err(e),
                },
                Err(e) => break Err(e),
            }
        };
        match outcome {
            // Asked for a sandbox, and the server does not say it used one: it ignored the
            // field. The process must not run on unconfined.
            Ok(None | Some(SandboxType::None)) if sandboxed => {
                let _ = self.terminate(&process_id).await;
                self.client.unroute_process(&process_id);
                Err(ProcessError::SandboxRefused {
                    reason: "sandboxIgnored".to_owned(),
                    message: "the exec server started the process without the requested \
                              sandbox; it was terminated"
                        .to_owned(),
                })
            }
            Ok(sandbox_type) => Ok(StartedProcess {
                events: remote_events(receiver),
                process_id,
                sandbox_type: sandbox_type.unwrap_or(SandboxType::None),
            }),
            Err(e) => {
                self.client.unroute_process(&process_id);
                Err(to_process_error(e))
            }
        }
    }

    async fn read(&self, params: ReadParams) -> Result<ReadResponse, ProcessError> {
        self.client
            .call_idempotent(methods::PROCESS_READ, &params)
            .await
            .map_err(to_process_error)
    }

    async fn write(&self, process_id: &str, chunk: Bytes) -> Result<WriteStatus, ProcessError> {
        let params = WriteParams {
            process_id: process_id.to_owned(),
            chunk: Base64Bytes(chunk),
        };
        self.client
            .call::<_, WriteResponse>(methods::PROCESS_WRITE, &params)
            .await
            .map(|r| r.status)
            .map_err(to_process_error)
    }

    async fn terminate(&self, process_id: &str) -> Result<bool, ProcessError> {
        let params = TerminateParams {
            process_id: process_id.to_owned(),
        };
        // Killing twice is harmless, so a terminate whose reply was lost is simply repeated.
        self.client
            .call_idempotent::<_, TerminateResponse>(methods::PROCESS_TERMINATE, &params)
            .await
            .map(|r| r.running)
            .map_err(to_process_error)
    }

    async fn signal(&self, process_id: &str, signal: &str) -> Result<bool, ProcessError> {
        self.require(methods::PROCESS_SIGNAL)?;
        let params = SignalParams {
            process_id: process_id.to_owned(),
            signal: signal.to_owned(),
        };
        // Not retried after a lost reply: a second SIGINT or SIGSTOP is not harmless.
        self.client
            .call::<_, SignalResponse>(methods::PROCESS_SIGNAL, &params)
            .await
            .map(|r| r.delivered)
            .map_err(to_process_error)
    }

    async fn close_stdin(&self, process_id: &str) -> Result<(), ProcessError> {
        self.require(methods::PROCESS_CLOSE_STDIN)?;
        let params = CloseStdinParams {
            process_id: process_id.to_owned(),
        };
        // The server ignores a second close, so a close whose reply was lost is repeated.
        self.client
            .call_idempotent::<_, EmptyResponse>(methods::PROCESS_CLOSE_STDIN, &params)
            .await
            .map(|_| ())
            .map_err(to_process_error)
    }

    async fn list(&self) -> Result<Vec<ProcessInfo>, ProcessError> {
        self.require(methods::PROCESS_LIST)?;
        self.client
            .call_idempotent::<_, ListResponse>(methods::PROCESS_LIST, &ListParams {})
            .await
            .map(|r| r.processes)
            .map_err(to_process_error)
    }

    async fn resize(&self, process_id: &str, rows: u16, cols: u16) -> Result<(), ProcessError> {
        self.require(methods::PROCESS_RESIZE)?;
        let params = ResizeParams {
            process_id: process_id.to_owned(),
            rows,
            cols,
        };
        self.client
            .call_idempotent::<_, EmptyResponse>(methods::PROCESS_RESIZE, &params)
            .await
            .map(|_| ())
            .map_err(to_process_error)
    }
}

/// The stream of routed events; it ends after `Closed` or `Failed`, or with a `Failed` if
/// the route goes away without either.
fn remote_events(receiver: tokio::sync::mpsc::Receiver<ProcessEvent>) -> ProcessEvents {
    let stream = futures::stream::unfold(Some(receiver), |receiver| async move {
        let mut receiver = receiver?;
        match receiver.recv().await {
            Some(event) => {
                let done = matches!(
                    event,
                    ProcessEvent::Closed { .. } | ProcessEvent::Failed { .. }
                );
                Some((event, (!done).then_some(receiver)))
            }
            None => Some((
                ProcessEvent::Failed {
                    message: "exec-server connection lost before the process closed".to_owned(),
                },
                None,
            )),
        }
    });
    ProcessEvents::new(Box::pin(stream))
}
