//! The filesystem capability: read, write and manage files on the environment's machine.

use async_trait::async_trait;
use exec_server_protocol::error_codes;
use exec_server_protocol::fs::{
    CopyParams, CreateDirectoryParams, GetMetadataParams, GetMetadataResponse, ReadDirectoryParams,
    ReadDirectoryResponse, ReadFileParams, ReadFileResponse, RemoveParams, RenameParams,
    WriteFileParams,
};
use exec_server_protocol::{EmptyResponse, ErrorObject};
use std::io;

/// File operations with the semantics of the `fs/*` methods. Implemented locally by
/// [`crate::local::LocalFileSystem`] and remotely by the client library.
///
/// Paths are absolute (the params types guarantee it). Every call takes the optional
/// `sandbox` of its params: `read-only` and `workspace-write` policies run confined by the OS
/// sandbox (a helper process locked down with Landlock, seccomp and openat2), or fail; they
/// never run unconfined.
#[async_trait]
pub trait FileSystem: Send + Sync {
    /// Reads the whole file, or with `offset`/`length` a byte range (the result then carries
    /// `size` and `eof`).
    async fn read_file(&self, params: ReadFileParams) -> Result<ReadFileResponse, FsError>;

    /// Creates or truncates the file (parents are not created), or with `offset` writes in
    /// place, or with `append` appends.
    async fn write_file(&self, params: WriteFileParams) -> Result<EmptyResponse, FsError>;

    async fn create_directory(
        &self,
        params: CreateDirectoryParams,
    ) -> Result<EmptyResponse, FsError>;

    async fn get_metadata(&self, params: GetMetadataParams)
        -> Result<GetMetadataResponse, FsError>;

    async fn read_directory(
        &self,
        params: ReadDirectoryParams,
    ) -> Result<ReadDirectoryResponse, FsError>;

    /// Removes a file, a symlink (never its target) or a directory.
    async fn remove(&self, params: RemoveParams) -> Result<EmptyResponse, FsError>;

    async fn copy(&self, params: CopyParams) -> Result<EmptyResponse, FsError>;

    /// Moves `sourcePath` onto `destinationPath` (an addition to the April protocol).
    async fn rename(&self, params: RenameParams) -> Result<EmptyResponse, FsError>;

    /// Which additions this implementation supports. A remote one answers from what the
    /// server advertised, so callers can fall back against a server without them.
    fn features(&self) -> FsFeatures {
        FsFeatures::default()
    }
}

/// Optional filesystem features of an implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsFeatures {
    /// Ranged reads and ranged or appending writes.
    pub ranges: bool,
    /// `fs/rename`.
    pub rename: bool,
    /// Largest whole-file read, when known.
    pub max_read_bytes: Option<u64>,
}

impl Default for FsFeatures {
    fn default() -> Self {
        FsFeatures {
            ranges: true,
            rename: true,
            max_read_bytes: None,
        }
    }
}

/// Why a filesystem call failed. Each variant maps to the JSON-RPC error the server sends;
/// a remote failure carries the server's error unchanged, so callers can match on
/// [`code`](FsError::code) whichever implementation they use.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// An OS error, reported with the OS's text ("No such file or directory (os error 2)").
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("fs/copy requires recursive: true when sourcePath is a directory")]
    CopyDirectoryNotRecursive,
    #[error("fs/copy cannot copy a directory to itself or one of its descendants")]
    CopyIntoItself,
    #[error("fs/copy only supports regular files, directories, and symlinks")]
    CopyUnsupportedFileType,
    /// A FIFO or socket where `operation` needs a file: opening one could block forever (a
    /// FIFO waits for its other end), so it is refused rather than opened.
    #[error("{operation} does not read or write FIFOs or sockets")]
    SpecialFile { operation: &'static str },
    /// A server limit was reached; `limit` is its name in `capabilities.limits`.
    #[error("{message}")]
    LimitExceeded {
        limit: &'static str,
        max: u64,
        message: String,
    },
    #[error("fs/writeFile cannot combine offset and append")]
    OffsetWithAppend,
    #[error("fs/writeFile offset {offset} is beyond the end of the file ({size} bytes)")]
    OffsetBeyondEnd { offset: u64, size: u64 },
    #[error(
        "file is {size} bytes, above the whole-file read limit of {limit} bytes \
         (maxReadBytes); read it in ranges with fs/readFile offset and length"
    )]
    FileTooLarge { size: u64, limit: u64 },
    #[error("fileSystemSandboxPolicy requires sandboxPolicyCwd")]
    SandboxPolicyCwdRequired,
    #[error(
        "sandboxed filesystem operations (read-only, workspace-write) need the sandbox \
         helper, and this environment was built without one"
    )]
    SandboxNotConfigured,
    /// The policy needs an OS mechanism this machine lacks (the message names it).
    #[error("{0}")]
    SandboxUnavailable(String),
    /// A `sandbox` this server understands but does not enforce, or one that makes no
    /// sense (a glob entry, access re-opened beneath a denied path): refused rather than run
    /// with less confinement than asked for.
    #[error("{0}")]
    SandboxPolicyUnsupported(String),
    /// The sandbox helper failed before it could answer (the message carries its stderr).
    #[error("{0}")]
    SandboxHelper(String),
    /// The sandbox helper's answer: the operation's own error, already in wire form.
    #[error("{}", .0.message)]
    Sandboxed(ErrorObject),
    /// An error reply from a remote server.
    #[error("{0}")]
    Remote(ErrorObject),
    /// The connection to the server is gone.
    #[error("{0}")]
    Transport(String),
}

impl FsError {
    /// The JSON-RPC error code for this failure: the reference's mapping of I/O errors
    /// (not found -32004, invalid input or permission denied -32600, anything else -32603).
    pub fn code(&self) -> i64 {
        match self {
            FsError::Io(e) => match e.kind() {
                io::ErrorKind::NotFound => error_codes::NOT_FOUND,
                io::ErrorKind::InvalidInput | io::ErrorKind::PermissionDenied => {
                    error_codes::INVALID_REQUEST
                }
                _ => error_codes::INTERNAL_ERROR,
            },
            FsError::CopyDirectoryNotRecursive
            | FsError::CopyIntoItself
            | FsError::CopyUnsupportedFileType
            | FsError::SpecialFile { .. }
            | FsError::LimitExceeded { .. }
            | FsError::FileTooLarge { .. }
            | FsError::SandboxPolicyCwdRequired
            | FsError::SandboxNotConfigured
            | FsError::SandboxUnavailable(_) => error_codes::INVALID_REQUEST,
            FsError::SandboxHelper(_) => error_codes::INTERNAL_ERROR,
            FsError::OffsetWithAppend
            | FsError::OffsetBeyondEnd { .. }
            | FsError::SandboxPolicyUnsupported(_) => error_codes::INVALID_PARAMS,
            FsError::Remote(e) | FsError::Sandboxed(e) => e.code,
            FsError::Transport(_) => error_codes::TRANSPORT_CLOSED,
        }
    }

    /// The JSON-RPC error object the server sends for this failure.
    pub fn to_error_object(&self) -> ErrorObject {
        match self {
            FsError::Remote(e) | FsError::Sandboxed(e) => e.clone(),
            FsError::FileTooLarge { size, limit } => {
                ErrorObject::new(self.code(), self.to_string()).with_data(serde_json::json!({
                    "limit": "maxReadBytes",
                    "maxBytes": limit,
                    "size": size,
                }))
            }
            FsError::LimitExceeded { limit, max, .. } => {
                ErrorObject::new(self.code(), self.to_string())
                    .with_data(serde_json::json!({ "limit": limit, "max": max }))
            }
            other => ErrorObject::new(other.code(), other.to_string()),
        }
    }

    /// True when the path does not exist, whichever implementation reported it.
    pub fn is_not_found(&self) -> bool {
        self.code() == error_codes::NOT_FOUND
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_map_as_the_reference_does() {
        let not_found = FsError::Io(io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(not_found.code(), -32004);
        assert_eq!(
            not_found.to_error_object().message,
            "No such file or directory (os error 2)"
        );
        assert_eq!(
            FsError::Io(io::Error::from_raw_os_error(libc::EACCES)).code(),
            -32600
        );
        assert_eq!(
            FsError::Io(io::Error::from(io::ErrorKind::InvalidInput)).code(),
            -32600
        );
        let other = FsError::Io(io::Error::from_raw_os_error(libc::EISDIR));
        assert_eq!(other.code(), -32603);
        assert_eq!(
            other.to_error_object().message,
            "Is a directory (os error 21)"
        );
    }

    #[test]
    fn typed_errors_map_to_codes() {
        assert_eq!(FsError::OffsetWithAppend.code(), -32602);
        assert_eq!(
            FsError::OffsetBeyondEnd { offset: 5, size: 1 }.code(),
            -32602
        );
        assert_eq!(FsError::CopyIntoItself.code(), -32600);
        assert_eq!(FsError::SandboxNotConfigured.code(), -32600);
        assert_eq!(
            FsError::SandboxUnavailable("no landlock".into()).code(),
            -32600
        );
        assert_eq!(FsError::SandboxHelper("crashed".into()).code(), -32603);
        let too_large = FsError::FileTooLarge { size: 10, limit: 5 }.to_error_object();
        assert_eq!(too_large.code, -32600);
        assert_eq!(too_large.data.unwrap()["limit"], "maxReadBytes");
        assert!(too_large.message.contains("offset and length"));
        let remote = FsError::Remote(ErrorObject::new(-32004, "gone"));
        assert_eq!(remote.code(), -32004);
        assert!(remote.is_not_found());
    }
}
