//! The seam between [`LocalFileSystem`](super::LocalFileSystem) and the platform sandbox.
//!
//! A call whose `sandbox` policy needs the OS sandbox (`read-only`, `workspace-write`) is
//! handed, whole, to an [`FsSandbox`]: in production the helper process of
//! `exec-server-sandbox`, which locks itself down with Landlock, seccomp and openat2 before it
//! runs the operation through [`fs_ops`](super::fs_ops). The environment crate only knows this
//! trait, so it never depends on the sandbox crate, and a `LocalFileSystem` built without a
//! sandbox refuses such calls instead of running them unconfined.

use crate::filesystem::FsError;
use async_trait::async_trait;
use exec_server_protocol::fs::{
    CopyParams, CreateDirectoryParams, GetMetadataParams, GetMetadataResponse, ReadDirectoryParams,
    ReadDirectoryResponse, ReadFileParams, ReadFileResponse, RemoveParams, RenameParams,
    WriteFileParams,
};
use exec_server_protocol::sandbox::SandboxContext;
use exec_server_protocol::EmptyResponse;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One filesystem call, as handed to the sandbox. Serialized as
/// `{"operation": "fs/readFile", "params": {...}}`, the method name and its wire params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "operation", content = "params")]
pub enum SandboxedFsRequest {
    #[serde(rename = "fs/readFile")]
    ReadFile(ReadFileParams),
    #[serde(rename = "fs/writeFile")]
    WriteFile(WriteFileParams),
    #[serde(rename = "fs/createDirectory")]
    CreateDirectory(CreateDirectoryParams),
    #[serde(rename = "fs/getMetadata")]
    GetMetadata(GetMetadataParams),
    #[serde(rename = "fs/readDirectory")]
    ReadDirectory(ReadDirectoryParams),
    #[serde(rename = "fs/remove")]
    Remove(RemoveParams),
    #[serde(rename = "fs/copy")]
    Copy(CopyParams),
    #[serde(rename = "fs/rename")]
    Rename(RenameParams),
}

impl SandboxedFsRequest {
    /// The `sandbox` member of the call's params.
    pub fn sandbox(&self) -> Option<&SandboxContext> {
        match self {
            SandboxedFsRequest::ReadFile(p) => p.sandbox.as_ref(),
            SandboxedFsRequest::WriteFile(p) => p.sandbox.as_ref(),
            SandboxedFsRequest::CreateDirectory(p) => p.sandbox.as_ref(),
            SandboxedFsRequest::GetMetadata(p) => p.sandbox.as_ref(),
            SandboxedFsRequest::ReadDirectory(p) => p.sandbox.as_ref(),
            SandboxedFsRequest::Remove(p) => p.sandbox.as_ref(),
            SandboxedFsRequest::Copy(p) => p.sandbox.as_ref(),
            SandboxedFsRequest::Rename(p) => p.sandbox.as_ref(),
        }
    }
}

/// The result of a [`SandboxedFsRequest`], one variant per result type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "result", rename_all = "camelCase")]
pub enum SandboxedFsResponse {
    ReadFile(ReadFileResponse),
    GetMetadata(GetMetadataResponse),
    ReadDirectory(ReadDirectoryResponse),
    Empty(EmptyResponse),
}

/// Runs filesystem calls under a policy that needs the OS sandbox.
#[async_trait]
pub trait FsSandbox: Send + Sync + std::fmt::Debug {
    /// Runs `request` confined by the policy in its `sandbox` member. Denials come back as
    /// the OS error ("Permission denied"), a missing mechanism as
    /// [`FsError::SandboxUnavailable`], a helper that died as [`FsError::SandboxHelper`].
    async fn run(&self, request: SandboxedFsRequest) -> Result<SandboxedFsResponse, FsError>;

    /// False when every call would fail for want of a mechanism (what the server advertises
    /// as `features.fsSandbox`).
    fn available(&self) -> bool;

    /// The bounds every call runs under (advertised in `capabilities.limits`).
    fn limits(&self) -> SandboxLimits;
}

/// Bounds on sandboxed calls, each of which costs a process: without them a call that never
/// ends (or many at once) would hold processes and memory for as long as the server lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxLimits {
    /// How long one call may take, from the request to the reply, waiting for a helper
    /// slot included; then its helper is killed and the call fails (`fsHelperTimeoutMs`).
    pub helper_timeout: Duration,
    /// Most helper processes running at once, for the whole server; further calls wait for
    /// a slot within their deadline (`maxConcurrentFsHelpers`).
    pub max_concurrent_helpers: usize,
}

impl SandboxLimits {
    /// Name of [`helper_timeout`](Self::helper_timeout) in `capabilities.limits`.
    pub const TIMEOUT_NAME: &'static str = "fsHelperTimeoutMs";
    /// Name of [`max_concurrent_helpers`](Self::max_concurrent_helpers) there.
    pub const CONCURRENCY_NAME: &'static str = "maxConcurrentFsHelpers";
}

impl Default for SandboxLimits {
    fn default() -> Self {
        SandboxLimits {
            // Long enough to copy a large tree; short enough that a stuck call does not
            // outlive its client by much.
            helper_timeout: Duration::from_secs(120),
            max_concurrent_helpers: 8,
        }
    }
}

/// Unwraps the response a request of a given kind must produce; anything else means the
/// sandbox answered a different question, which is a bug worth reporting, not a panic.
pub(crate) fn unexpected(response: SandboxedFsResponse) -> FsError {
    FsError::SandboxHelper(format!(
        "the sandbox helper answered with an unexpected result: {response:?}"
    ))
}
