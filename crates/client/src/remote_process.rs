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
    ReadParams, ReadResponse, StartParams, StartResponse, TerminateParams, TerminateResponse,
    WriteParams, WriteResponse, WriteStatus,
};
use exec_server_protocol::Base64Bytes;

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
        let process_id = params.process_id.clone();
        // Route before asking, so no event can arrive before there is somewhere to put it.
        // An existing route means this connection already has a live process with that id.
        let Some(receiver) = self.client.route_process(&process_id) else {
            return Err(ProcessError::AlreadyExists(process_id));
        };
        match self
            .client
            .call::<_, StartResponse>(methods::PROCESS_START, &params)
            .await
        {
            Ok(_) => Ok(StartedProcess {
                events: remote_events(receiver),
                process_id,
            }),
            Err(e) => {
                self.client.unroute_process(&process_id);
                Err(to_process_error(e))
            }
        }
    }

    async fn read(&self, params: ReadParams) -> Result<ReadResponse, ProcessError> {
        self.client
            .call(methods::PROCESS_READ, &params)
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
        self.client
            .call::<_, TerminateResponse>(methods::PROCESS_TERMINATE, &params)
            .await
            .map(|r| r.running)
            .map_err(to_process_error)
    }
}

/// Turns routed notifications into an event stream that ends with `Closed`, or with `Failed`
/// if the connection drops first.
fn remote_events(receiver: tokio::sync::mpsc::Receiver<ProcessEvent>) -> ProcessEvents {
    let stream = futures::stream::unfold(Some(receiver), |receiver| async move {
        let mut receiver = receiver?;
        match receiver.recv().await {
            Some(event) => {
                let done = matches!(event, ProcessEvent::Closed { .. });
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
