//! `process/*`: thin adapters over the session's `ProcessTable`.

use super::{decode, resumed_elsewhere, RequestContext};
use crate::metrics::Metrics;
use crate::session::Session;
use exec_server_environment::{ProcessBackend, ProcessError, ProcessEvent, ProcessEvents};
use exec_server_protocol::envelope;
use exec_server_protocol::methods;
use exec_server_protocol::process::{
    CloseStdinParams, ClosedNotification, ExitedNotification, ListParams, ListResponse,
    OutputNotification, ReadParams, ResizeParams, SignalParams, SignalResponse, StartParams,
    StartResponse, TerminateParams, TerminateResponse, WriteParams, WriteResponse,
};
use exec_server_protocol::{Base64Bytes, EmptyResponse, RequestId};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;
use std::future::Future;
use std::sync::Arc;

pub(super) async fn start(ctx: RequestContext, id: RequestId, params: Option<Box<RawValue>>) {
    let params: StartParams = match decode(params) {
        Ok(p) => p,
        Err(e) => return ctx.reply::<()>(&id, Err(e)).await,
    };
    match ctx.session.processes.start(params).await {
        Ok(started) => {
            let response = StartResponse {
                process_id: started.process_id.clone(),
                sandbox_type: Some(started.sandbox_type),
            };
            ctx.reply(&id, Ok(response)).await;
            // Only now, with the response queued, may the process's notifications follow.
            tokio::spawn(forward_events(
                ctx.session.clone(),
                started.process_id,
                started.events,
                ctx.metrics.clone(),
            ));
        }
        Err(e) => ctx.reply::<()>(&id, Err(e.to_error_object())).await,
    }
}

/// Sends a process's events as notifications to whichever connection the session is
/// attached to at the time. While detached, events are dropped (they stay readable through
/// `process/read`) and never wait, so the output reader keeps draining into retention.
async fn forward_events(
    session: Arc<Session>,
    process_id: String,
    mut events: ProcessEvents,
    metrics: Arc<Metrics>,
) {
    while let Some(event) = events.next().await {
        let Some(outbound) = session.outbound() else {
            continue;
        };
        if let ProcessEvent::Output { chunk, .. } = &event {
            metrics.output_streamed(chunk.len());
        }
        let message = match event {
            ProcessEvent::Output { seq, stream, chunk } => envelope::notification(
                methods::PROCESS_OUTPUT,
                &OutputNotification {
                    process_id: process_id.clone(),
                    seq,
                    stream,
                    chunk: Base64Bytes(chunk),
                },
            ),
            ProcessEvent::Exited {
                seq,
                exit_code,
                signal,
                sandbox_denied,
            } => envelope::notification(
                methods::PROCESS_EXITED,
                &ExitedNotification {
                    process_id: process_id.clone(),
                    seq,
                    exit_code,
                    signal,
                    sandbox_denied,
                },
            ),
            ProcessEvent::Closed { seq } => envelope::notification(
                methods::PROCESS_CLOSED,
                &ClosedNotification {
                    process_id: process_id.clone(),
                    seq,
                },
            ),
            ProcessEvent::Failed { .. } | ProcessEvent::Gap { .. } => continue,
        };
        let _ = outbound.send(message).await;
    }
}

pub(super) async fn read(ctx: RequestContext, id: RequestId, params: Option<Box<RawValue>>) {
    let params: ReadParams = match decode(params) {
        Ok(p) => p,
        Err(e) => return ctx.reply::<()>(&id, Err(e)).await,
    };
    // A long poll may outlive this connection's hold on the session: once another
    // connection resumes it (or it expires), the poll ends with an error, at once.
    let result = tokio::select! {
        result = ctx.session.processes.read(params) => result,
        () = ctx.session.displaced_from(ctx.connection) => {
            return ctx.reply::<()>(&id, Err(resumed_elsewhere())).await;
        }
    };
    let attached_elsewhere =
        !ctx.session.is_attached_to(ctx.connection) && ctx.session.outbound().is_some();
    if attached_elsewhere {
        return ctx.reply::<()>(&id, Err(resumed_elsewhere())).await;
    }
    ctx.reply(&id, result.map_err(|e| e.to_error_object()))
        .await;
}

/// Decodes `P`, runs `op` on the session's process table, and replies with its result: the
/// whole of a handler whose method maps one-to-one onto a `ProcessBackend` call.
async fn serve<P, R, F, Fut>(
    ctx: RequestContext,
    id: RequestId,
    params: Option<Box<RawValue>>,
    op: F,
) where
    P: DeserializeOwned,
    R: Serialize,
    F: FnOnce(Arc<Session>, P) -> Fut,
    Fut: Future<Output = Result<R, ProcessError>>,
{
    let params: P = match decode(params) {
        Ok(p) => p,
        Err(e) => return ctx.reply::<()>(&id, Err(e)).await,
    };
    let result = op(ctx.session.clone(), params)
        .await
        .map_err(|e| e.to_error_object());
    ctx.reply(&id, result).await;
}

pub(super) async fn write(ctx: RequestContext, id: RequestId, params: Option<Box<RawValue>>) {
    serve(ctx, id, params, |session, p: WriteParams| async move {
        let status = session
            .processes
            .write(&p.process_id, p.chunk.into_bytes())
            .await?;
        Ok(WriteResponse { status })
    })
    .await
}

pub(super) async fn terminate(ctx: RequestContext, id: RequestId, params: Option<Box<RawValue>>) {
    serve(ctx, id, params, |session, p: TerminateParams| async move {
        let running = session.processes.terminate(&p.process_id).await?;
        Ok(TerminateResponse { running })
    })
    .await
}

pub(super) async fn signal(ctx: RequestContext, id: RequestId, params: Option<Box<RawValue>>) {
    serve(ctx, id, params, |session, p: SignalParams| async move {
        let delivered = session.processes.signal(&p.process_id, &p.signal).await?;
        Ok(SignalResponse { delivered })
    })
    .await
}

pub(super) async fn close_stdin(ctx: RequestContext, id: RequestId, params: Option<Box<RawValue>>) {
    serve(ctx, id, params, |session, p: CloseStdinParams| async move {
        session.processes.close_stdin(&p.process_id).await?;
        Ok(EmptyResponse {})
    })
    .await
}

pub(super) async fn list(ctx: RequestContext, id: RequestId, params: Option<Box<RawValue>>) {
    serve(ctx, id, params, |session, _: ListParams| async move {
        let processes = session.processes.list().await?;
        Ok(ListResponse { processes })
    })
    .await
}

pub(super) async fn resize(ctx: RequestContext, id: RequestId, params: Option<Box<RawValue>>) {
    serve(ctx, id, params, |session, p: ResizeParams| async move {
        session
            .processes
            .resize(&p.process_id, p.rows, p.cols)
            .await?;
        Ok(EmptyResponse {})
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SessionRegistry;
    use exec_server_environment::local::{FsConfig, LocalFileSystem, ProcessConfig};
    use std::time::Duration;
    use tokio::sync::mpsc;

    #[tokio::test]
    async fn long_poll_fails_once_another_connection_resumes_the_session() {
        let registry = Arc::new(SessionRegistry::new(
            Duration::from_secs(30),
            ProcessConfig::default(),
        ));
        let (old_out, mut old_queue) = mpsc::channel(8);
        let session = registry.create(1, old_out.clone()).unwrap();
        let context = |connection, outbound| RequestContext {
            method: "process/read",
            metrics: Default::default(),
            connection,
            session: session.clone(),
            outbound,
            filesystem: Arc::new(LocalFileSystem::new(FsConfig::default())),
            http: Default::default(),
            http_streams: Default::default(),
        };
        let start: Box<RawValue> = serde_json::from_str(
            r#"{"processId":"p","argv":["/bin/sleep","1000"],"cwd":"/","env":{},"tty":false}"#,
        )
        .unwrap();
        super::start(
            context(1, old_out.clone()),
            RequestId::Integer(1),
            Some(start),
        )
        .await;
        assert!(old_queue.recv().await.unwrap().contains(r#""result""#));

        let read: Box<RawValue> =
            serde_json::from_str(r#"{"processId":"p","afterSeq":0,"waitMs":600000}"#).unwrap();
        let poll = tokio::spawn(super::read(
            context(1, old_out.clone()),
            RequestId::Integer(2),
            Some(read),
        ));
        registry.detach(&session, 1);
        let (new_out, _new_queue) = mpsc::channel(8);
        registry.resume(&session.id, 2, new_out).unwrap();

        tokio::time::timeout(Duration::from_secs(10), poll)
            .await
            .expect("the long poll ends when the session is resumed elsewhere")
            .unwrap();
        let reply = old_queue.recv().await.unwrap();
        assert_eq!(
            reply,
            r#"{"id":2,"error":{"code":-32600,"message":"session has been resumed by another connection"}}"#
        );
        session.processes.kill_all();
    }
}
