//! `RemoteFileSystem`: the filesystem capability over an exec-server connection.

use crate::connection::ExecServerClient;
use crate::error::ClientError;
use async_trait::async_trait;
use exec_server_environment::{FileSystem, FsError, FsFeatures};
use exec_server_protocol::fs::{
    CopyParams, CreateDirectoryParams, GetMetadataParams, GetMetadataResponse, ReadDirectoryParams,
    ReadDirectoryResponse, ReadFileParams, ReadFileResponse, RemoveParams, RenameParams,
    WriteFileParams,
};
use exec_server_protocol::{methods, EmptyResponse};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Forwards every filesystem call to the server as the matching `fs/*` request.
pub struct RemoteFileSystem {
    client: ExecServerClient,
}

impl RemoteFileSystem {
    pub fn new(client: ExecServerClient) -> Self {
        RemoteFileSystem { client }
    }

    pub fn client(&self) -> &ExecServerClient {
        &self.client
    }

    async fn call<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<R, FsError> {
        self.client.call(method, params).await.map_err(|e| match e {
            ClientError::Rpc(error) => FsError::Remote(error),
            other => FsError::Transport(other.to_string()),
        })
    }
}

#[async_trait]
impl FileSystem for RemoteFileSystem {
    async fn read_file(&self, params: ReadFileParams) -> Result<ReadFileResponse, FsError> {
        self.call(methods::FS_READ_FILE, &params).await
    }

    async fn write_file(&self, params: WriteFileParams) -> Result<EmptyResponse, FsError> {
        self.call(methods::FS_WRITE_FILE, &params).await
    }

    async fn create_directory(
        &self,
        params: CreateDirectoryParams,
    ) -> Result<EmptyResponse, FsError> {
        self.call(methods::FS_CREATE_DIRECTORY, &params).await
    }

    async fn get_metadata(
        &self,
        params: GetMetadataParams,
    ) -> Result<GetMetadataResponse, FsError> {
        self.call(methods::FS_GET_METADATA, &params).await
    }

    async fn read_directory(
        &self,
        params: ReadDirectoryParams,
    ) -> Result<ReadDirectoryResponse, FsError> {
        self.call(methods::FS_READ_DIRECTORY, &params).await
    }

    async fn remove(&self, params: RemoveParams) -> Result<EmptyResponse, FsError> {
        self.call(methods::FS_REMOVE, &params).await
    }

    async fn copy(&self, params: CopyParams) -> Result<EmptyResponse, FsError> {
        self.call(methods::FS_COPY, &params).await
    }

    async fn rename(&self, params: RenameParams) -> Result<EmptyResponse, FsError> {
        self.call(methods::FS_RENAME, &params).await
    }

    /// What the server advertised at `initialize`; nothing for a server without
    /// capabilities (the April codex server), so callers use whole-file calls there.
    fn features(&self) -> FsFeatures {
        let capabilities = self.client.capabilities().unwrap_or_default();
        FsFeatures {
            ranges: capabilities.features.fs_range,
            rename: capabilities.methods.iter().any(|m| m == methods::FS_RENAME),
            max_read_bytes: capabilities.limits.max_read_bytes,
        }
    }
}
