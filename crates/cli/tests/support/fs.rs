//! Filesystem suites' support: an environment (local or remote) with a scratch directory,
//! and helpers for asserting fs errors.

use super::{within, ServerProcess, Target, TestEnv};
use exec_server_client::{ClientOptions, ExecServerClient};
use exec_server_environment::local::{FsConfig, ProcessConfig};
use exec_server_environment::{Environment, FileSystem, FsError};
use exec_server_protocol::AbsolutePath;
use exec_server_sandbox::{HelperSandbox, SandboxCaps};
use std::path::Path;
use std::sync::Arc;

/// An environment under test and a scratch directory for it.
pub struct FsEnv {
    pub env: Environment,
    pub server: Option<ServerProcess>,
    pub dir: tempfile::TempDir,
}

impl FsEnv {
    pub async fn new(target: Target) -> FsEnv {
        Self::with_config(target, FsConfig::default()).await
    }

    /// With custom filesystem settings (passed as `serve` flags to a remote server). The
    /// local environment gets the sandbox helper the server has (the `exec-server` binary),
    /// unless `config` brings its own.
    pub async fn with_config(target: Target, mut config: FsConfig) -> FsEnv {
        let dir = tempfile::tempdir().expect("create a scratch directory");
        match target {
            Target::Local => FsEnv {
                env: {
                    if config.sandbox.is_none() {
                        config.sandbox = Some(Arc::new(HelperSandbox::new(
                            env!("CARGO_BIN_EXE_exec-server").into(),
                            SandboxCaps::probe(),
                            config.max_read_bytes,
                        )));
                    }
                    Environment::local_with_config(ProcessConfig::default(), config)
                },
                server: None,
                dir,
            },
            Target::Remote => {
                let limit = config.max_read_bytes.to_string();
                let TestEnv { env, server } = TestEnv::remote(&["--max-read-bytes", &limit]).await;
                FsEnv { env, server, dir }
            }
        }
    }

    pub fn fs(&self) -> &Arc<dyn FileSystem> {
        self.env.filesystem()
    }

    /// The absolute path of `relative` inside the scratch directory.
    pub fn path(&self, relative: &str) -> AbsolutePath {
        AbsolutePath::from_path(&self.dir.path().join(relative))
            .expect("scratch paths are absolute")
    }

    /// A second, raw connection to the remote server, for wire-level checks.
    pub async fn raw_client(&self) -> ExecServerClient {
        let server = self.server.as_ref().expect("a remote environment");
        within(
            "raw connect",
            ExecServerClient::connect(&server.url, ClientOptions::default()),
        )
        .await
        .expect("connect a raw client")
    }
}

/// The JSON-RPC code of a failed call; panics on success.
#[track_caller]
pub fn code_of<T: std::fmt::Debug>(result: Result<T, FsError>) -> i64 {
    match result {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.code(),
    }
}

/// The JSON-RPC error (code and message) of a failed call; panics on success.
#[track_caller]
pub fn error_of<T: std::fmt::Debug>(result: Result<T, FsError>) -> (i64, String) {
    match result {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => {
            let object = e.to_error_object();
            (object.code, object.message)
        }
    }
}

/// Creates a FIFO at `path`.
pub fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("no NUL in path");
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
    assert_eq!(
        rc,
        0,
        "mkfifo {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}
