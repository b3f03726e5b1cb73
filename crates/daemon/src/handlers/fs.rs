//! `fs/*`: thin adapters over the server's `LocalFileSystem`.

use super::{decode, RequestContext};
use exec_server_environment::local::LocalFileSystem;
use exec_server_environment::{FileSystem, FsError};
use exec_server_protocol::fs::{
    CopyParams, CreateDirectoryParams, GetMetadataParams, ReadDirectoryParams, ReadFileParams,
    RemoveParams, RenameParams, WriteFileParams,
};
use exec_server_protocol::{error_codes, ErrorObject, RequestId};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;
use std::future::Future;
use std::sync::Arc;

/// Decodes `P`, runs `op` on the local filesystem, and replies with its result.
async fn serve<P, R, F, Fut>(
    ctx: RequestContext,
    id: RequestId,
    params: Option<Box<RawValue>>,
    op: F,
) where
    P: DeserializeOwned,
    R: Serialize,
    F: FnOnce(Arc<LocalFileSystem>, P) -> Fut,
    Fut: Future<Output = Result<R, FsError>>,
{
    let params: P = match decode(params) {
        Ok(p) => p,
        Err(e) => return ctx.reply::<()>(&id, Err(e)).await,
    };
    let result = op(ctx.filesystem.clone(), params)
        .await
        .map_err(|e| e.to_error_object());
    ctx.reply(&id, result).await;
}

pub(super) async fn read_file(ctx: RequestContext, id: RequestId, params: Option<Box<RawValue>>) {
    serve(ctx, id, params, |fs, p: ReadFileParams| async move {
        fs.read_file(p).await
    })
    .await
}

pub(super) async fn write_file(ctx: RequestContext, id: RequestId, params: Option<Box<RawValue>>) {
    let params = match decode::<WriteFileParams>(params) {
        Ok(p) => p,
        Err(e) => return ctx.reply::<()>(&id, Err(write_decode_error(e))).await,
    };
    let result = ctx
        .filesystem
        .write_file(params)
        .await
        .map_err(|e| e.to_error_object());
    ctx.reply(&id, result).await;
}

/// The reference reports bad base64 in `dataBase64` as an invalid request (-32600), not as
/// invalid params; codex clients match on that.
fn write_decode_error(error: ErrorObject) -> ErrorObject {
    if error.message.contains("invalid base64") {
        let detail = error
            .message
            .strip_prefix("invalid params: ")
            .unwrap_or(&error.message);
        ErrorObject::new(
            error_codes::INVALID_REQUEST,
            format!("fs/writeFile requires valid base64 dataBase64: {detail}"),
        )
    } else {
        error
    }
}

pub(super) async fn create_directory(
    ctx: RequestContext,
    id: RequestId,
    params: Option<Box<RawValue>>,
) {
    serve(ctx, id, params, |fs, p: CreateDirectoryParams| async move {
        fs.create_directory(p).await
    })
    .await
}

pub(super) async fn get_metadata(
    ctx: RequestContext,
    id: RequestId,
    params: Option<Box<RawValue>>,
) {
    serve(ctx, id, params, |fs, p: GetMetadataParams| async move {
        fs.get_metadata(p).await
    })
    .await
}

pub(super) async fn read_directory(
    ctx: RequestContext,
    id: RequestId,
    params: Option<Box<RawValue>>,
) {
    serve(ctx, id, params, |fs, p: ReadDirectoryParams| async move {
        fs.read_directory(p).await
    })
    .await
}

pub(super) async fn remove(ctx: RequestContext, id: RequestId, params: Option<Box<RawValue>>) {
    serve(ctx, id, params, |fs, p: RemoveParams| async move {
        fs.remove(p).await
    })
    .await
}

pub(super) async fn copy(ctx: RequestContext, id: RequestId, params: Option<Box<RawValue>>) {
    serve(ctx, id, params, |fs, p: CopyParams| async move {
        fs.copy(p).await
    })
    .await
}

pub(super) async fn rename(ctx: RequestContext, id: RequestId, params: Option<Box<RawValue>>) {
    serve(ctx, id, params, |fs, p: RenameParams| async move {
        fs.rename(p).await
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_base64_is_an_invalid_request() {
        let decoded = decode::<WriteFileParams>(Some(
            RawValue::from_string(r#"{"path":"/a","dataBase64":"!!"}"#.to_owned()).unwrap(),
        ))
        .unwrap_err();
        let error = write_decode_error(decoded);
        assert_eq!(error.code, error_codes::INVALID_REQUEST);
        assert!(
            error
                .message
                .starts_with("fs/writeFile requires valid base64 dataBase64: invalid base64"),
            "{}",
            error.message
        );
        let relative = decode::<WriteFileParams>(Some(
            RawValue::from_string(r#"{"path":"a","dataBase64":""}"#.to_owned()).unwrap(),
        ))
        .unwrap_err();
        assert_eq!(
            write_decode_error(relative).code,
            error_codes::INVALID_PARAMS
        );
    }
}
