//! `LocalFileSystem`: the filesystem capability on this machine.
//!
//! Calls without a sandbox, or with a policy that needs no OS sandbox (`danger-full-access`,
//! `external-sandbox`), run in this process through [`fs_ops`](super::fs_ops). Every operation
//! but `get_metadata` runs as one blocking closure on tokio's blocking pool rather than through
//! `tokio::fs`, which would hop to the pool once per step (open, stat, read...). Calls whose
//! policy needs the OS sandbox go to the configured [`FsSandbox`], or fail.

use super::fs_ops::{self, FinalLink, Unguarded};
use super::fs_sandbox::{unexpected, FsSandbox, SandboxedFsRequest, SandboxedFsResponse};
use crate::filesystem::{FileSystem, FsError, FsFeatures};
use async_trait::async_trait;
use exec_server_protocol::fs::{
    CopyParams, CreateDirectoryParams, GetMetadataParams, GetMetadataResponse, ReadDirectoryParams,
    ReadDirectoryResponse, ReadFileParams, ReadFileResponse, RemoveParams, RenameParams,
    WriteFileParams,
};
use exec_server_protocol::sandbox::SandboxContext;
use exec_server_protocol::EmptyResponse;
use std::io;
use std::sync::Arc;

/// Settings of the local filesystem.
#[derive(Debug, Clone)]
pub struct FsConfig {
    /// Largest file `fs/readFile` returns whole, and the most bytes one ranged read returns.
    /// Bigger files must be read in ranges.
    pub max_read_bytes: u64,
    /// Runs the calls whose policy needs the OS sandbox. `None`: such calls are refused.
    pub sandbox: Option<Arc<dyn FsSandbox>>,
}

impl Default for FsConfig {
    fn default() -> Self {
        FsConfig {
            max_read_bytes: 64 * 1024 * 1024,
            sandbox: None,
        }
    }
}

/// The local filesystem. Stateless apart from its settings, so one instance can serve every
/// session of a server.
#[derive(Debug, Clone, Default)]
pub struct LocalFileSystem {
    config: FsConfig,
}

impl LocalFileSystem {
    pub fn new(config: FsConfig) -> Self {
        LocalFileSystem { config }
    }

    pub fn config(&self) -> &FsConfig {
        &self.config
    }

    /// Where a call runs: `Ok(None)` in this process, `Ok(Some(sandbox))` in the OS sandbox.
    /// A policy that needs the sandbox never falls through to an unconfined run.
    fn placement(
        &self,
        sandbox: Option<&SandboxContext>,
    ) -> Result<Option<&Arc<dyn FsSandbox>>, FsError> {
        let Some(sandbox) = sandbox else {
            return Ok(None);
        };
        if sandbox.file_system_sandbox_policy.is_some() && sandbox.sandbox_policy_cwd.is_none() {
            return Err(FsError::SandboxPolicyCwdRequired);
        }
        if !sandbox.needs_platform_sandbox() {
            return Ok(None);
        }
        self.config
            .sandbox
            .as_ref()
            .map(Some)
            .ok_or(FsError::SandboxNotConfigured)
    }
}

async fn blocking<T, F>(work: F) -> Result<T, FsError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, FsError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| FsError::Io(io::Error::other(format!("filesystem task failed: {e}"))))?
}

fn expect_empty(response: SandboxedFsResponse) -> Result<EmptyResponse, FsError> {
    match response {
        SandboxedFsResponse::Empty(e) => Ok(e),
        other => Err(unexpected(other)),
    }
}

#[async_trait]
impl FileSystem for LocalFileSystem {
    async fn read_file(&self, params: ReadFileParams) -> Result<ReadFileResponse, FsError> {
        if let Some(sandbox) = self.placement(params.sandbox.as_ref())? {
            return match sandbox.run(SandboxedFsRequest::ReadFile(params)).await? {
                SandboxedFsResponse::ReadFile(r) => Ok(r),
                other => Err(unexpected(other)),
            };
        }
        let max = self.config.max_read_bytes;
        blocking(move || fs_ops::read_file(&params.path, params.offset, params.length, max)).await
    }

    async fn write_file(&self, params: WriteFileParams) -> Result<EmptyResponse, FsError> {
        if params.offset.is_some() && params.append {
            return Err(FsError::OffsetWithAppend);
        }
        if let Some(sandbox) = self.placement(params.sandbox.as_ref())? {
            return expect_empty(sandbox.run(SandboxedFsRequest::WriteFile(params)).await?);
        }
        blocking(move || {
            let data = params.data_base64.into_bytes();
            fs_ops::write_file(
                &params.path,
                &data,
                params.offset,
                params.append,
                FinalLink::Follow,
                &Unguarded,
            )
            .map(|()| EmptyResponse {})
        })
        .await
    }

    async fn create_directory(
        &self,
        params: CreateDirectoryParams,
    ) -> Result<EmptyResponse, FsError> {
        if let Some(sandbox) = self.placement(params.sandbox.as_ref())? {
            return expect_empty(
                sandbox
                    .run(SandboxedFsRequest::CreateDirectory(params))
                    .await?,
            );
        }
        blocking(move || {
            fs_ops::create_directory(&params.path, params.recursive).map(|()| EmptyResponse {})
        })
        .await
    }

    async fn get_metadata(
        &self,
        params: GetMetadataParams,
    ) -> Result<GetMetadataResponse, FsError> {
        if let Some(sandbox) = self.placement(params.sandbox.as_ref())? {
            return match sandbox.run(SandboxedFsRequest::GetMetadata(params)).await? {
                SandboxedFsResponse::GetMetadata(r) => Ok(r),
                other => Err(unexpected(other)),
            };
        }
        // Inline, unlike every other operation: it is two stat calls, and the hop to the
        // blocking pool and back cost about 100 us per call, more than the rest of a remote
        // round trip together. The price is that a hung network mount stalls this worker
        // thread (not the others) for as long as the stat hangs.
        fs_ops::get_metadata(&params.path)
    }

    async fn read_directory(
        &self,
        params: ReadDirectoryParams,
    ) -> Result<ReadDirectoryResponse, FsError> {
        if let Some(sandbox) = self.placement(params.sandbox.as_ref())? {
            return match sandbox
                .run(SandboxedFsRequest::ReadDirectory(params))
                .await?
            {
                SandboxedFsResponse::ReadDirectory(r) => Ok(r),
                other => Err(unexpected(other)),
            };
        }
        blocking(move || fs_ops::read_directory(&params.path)).await
    }

    async fn remove(&self, params: RemoveParams) -> Result<EmptyResponse, FsError> {
        if let Some(sandbox) = self.placement(params.sandbox.as_ref())? {
            return expect_empty(sandbox.run(SandboxedFsRequest::Remove(params)).await?);
        }
        blocking(move || {
            fs_ops::remove(&params.path, params.recursive, params.force).map(|()| EmptyResponse {})
        })
        .await
    }

    async fn copy(&self, params: CopyParams) -> Result<EmptyResponse, FsError> {
        if let Some(sandbox) = self.placement(params.sandbox.as_ref())? {
            return expect_empty(sandbox.run(SandboxedFsRequest::Copy(params)).await?);
        }
        blocking(move || {
            let (source, destination) = (&params.source_path, &params.destination_path);
            fs_ops::copy(
                source,
                destination,
                params.recursive,
                FinalLink::Follow,
                &Unguarded,
            )
            .map(|()| EmptyResponse {})
        })
        .await
    }

    async fn rename(&self, params: RenameParams) -> Result<EmptyResponse, FsError> {
        if let Some(sandbox) = self.placement(params.sandbox.as_ref())? {
            return expect_empty(sandbox.run(SandboxedFsRequest::Rename(params)).await?);
        }
        blocking(move || {
            fs_ops::rename(&params.source_path, &params.destination_path).map(|()| EmptyResponse {})
        })
        .await
    }

    fn features(&self) -> FsFeatures {
        FsFeatures {
            ranges: true,
            rename: true,
            max_read_bytes: Some(self.config.max_read_bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use exec_server_protocol::sandbox::SandboxPolicy;
    use exec_server_protocol::AbsolutePath;

    fn read(policy: SandboxPolicy) -> ReadFileParams {
        ReadFileParams {
            path: AbsolutePath::parse("/etc/hostname").unwrap(),
            sandbox: Some(SandboxContext::new(policy)),
            offset: None,
            length: None,
        }
    }

    #[tokio::test]
    async fn restricted_policies_without_a_sandbox_are_refused_never_run() {
        let fs = LocalFileSystem::new(FsConfig::default());
        let read_only = SandboxPolicy::ReadOnly {
            access: Default::default(),
            network_access: false,
        };
        let err = fs.read_file(read(read_only.clone())).await.unwrap_err();
        assert!(matches!(err, FsError::SandboxNotConfigured), "{err:?}");
        assert_eq!(err.code(), -32600);

        let mut with_split_policy = read(read_only);
        with_split_policy
            .sandbox
            .as_mut()
            .unwrap()
            .file_system_sandbox_policy = Some(serde_json::json!({}));
        let err = fs.read_file(with_split_policy).await.unwrap_err();
        assert!(matches!(err, FsError::SandboxPolicyCwdRequired), "{err:?}");
    }
}
