//! `process/*`: thin adapters over the session's `ProcessTable`.

use super::{decode, resumed_elsewhere, RequestContext};
use crate::session::Session;
use exec_server_environment::{ProcessBackend, ProcessEvent, ProcessEvents};
use exec_server_protocol::envelope;
use exec_server_protocol::methods;
use exec_server_protocol::process::{
    ClosedNotification, ExitedNotification, OutputNotification, ReadParams, StartParams,
    StartResponse, TerminateParams, TerminateResponse, WriteParams, WriteResponse,
};
use exec_server_protocol::{Base64Bytes, RequestId};
use serde_json::value::RawValue;
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
            };
            ctx.reply(&id, Ok(response)).await;
            // Only now, with the response queued, may the process's notifications follow.
            tokio::spawn(forward_events(
                ctx.session.clone(),
                started.process_id,
                started.events,
            ));
        }
        Err(e) => ctx.reply::<()>(&id, Err(e.to_error_object())).await,
    }
}

/// Sends a process's events as notifications to whichever connection the session is
/// attached to at the time. While detached, events are dropped (they stay readable through
/// `process/read`) and never wait, so the output reader keeps draining into retention.
async fn forward_events(session: Arc<Session>, process_id: String, mut events: ProcessEvents) {
    while let Some(event) = events.next().await {
        let Some(outbound) = session.outbound() else {
            continue;
        };
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
            } => envelope::notification(
                methods::PROCESS_EXITED,
                &ExitedNotification {
                    process_id: process_id.clone(),
                    seq,
                    exit_code,
                    signal,
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
    let result = ctx.session.processes.read(params).await;
    // A long poll may outlive this connection's hold on the session.
    if !ctx.session.is_attached_to(ctx.connection) {
        return ctx.reply::<()>(&id, Err(resumed_elsewhere())).await;
    }
    ctx.reply(&id, result.map_err(|e| e.to_error_object()))
        .await;
}

pub(super) async fn write(ctx: RequestContext, id: RequestId, params: Option<Box<RawValue>>) {
    let params: WriteParams = match decode(params) {
        Ok(p) => p,
        Err(e) => return ctx.reply::<()>(&id, Err(e)).await,
    };
    let result = ctx
        .session
        .processes
        .write(&params.process_id, params.chunk.into_bytes())
        .await
        .map(|status| WriteResponse { status })
        .map_err(|e| e.to_error_object());
    ctx.reply(&id, result).await;
}

pub(super) async fn terminate(ctx: RequestContext, id: RequestId, params: Option<Box<RawValue>>) {
    let params: TerminateParams = match decode(params) {
        Ok(p) => p,
        Err(e) => return ctx.reply::<()>(&id, Err(e)).await,
    };
    let result = ctx
        .session
        .processes
        .terminate(&params.process_id)
        .await
        .map(|running| TerminateResponse { running })
        .map_err(|e| e.to_error_object());
    ctx.reply(&id, result).await;
}
