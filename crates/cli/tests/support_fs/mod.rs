//! Support for the filesystem suites: a real `exec-server serve` on loopback, and an
//! environment (local or remote) with a scratch directory.
#![allow(dead_code)]

use exec_server_client::{ClientOptions, ExecServerClient};
use exec_server_environment::local::{FsConfig, ProcessConfig};
use exec_server_environment::{Environment, FileSystem, FsError};
use exec_server_protocol::AbsolutePath;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// Every await in these tests is bounded by this.
pub const STEP: Duration = Duration::from_secs(30);

/// Awaits `future`, failing the test (naming `what`) if it takes longer than [`STEP`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(STEP, future).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {STEP:?} waiting for {what}"),
    }
}

/// A running `exec-server serve` child, killed on drop.
pub struct ServerProcess {
    child: Child,
    pub url: String,
}

impl ServerProcess {
    /// Starts the real binary on 127.0.0.1:0 and reads the URL it prints first.
    pub fn start(extra_args: &[&str]) -> ServerProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_exec-server"))
            .args(["serve", "--listen", "ws://127.0.0.1:0"])
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("failed to start exec-server");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("failed to read the server's URL line");
        let url = line.trim().to_owned();
        assert!(
            url.starts_with("ws://127.0.0.1:"),
            "unexpected first line {url:?}"
        );
        ServerProcess { child, url }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Local,
    Remote,
}

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

    /// With custom filesystem settings (passed as `serve` flags to a remote server).
    pub async fn with_config(target: Target, config: FsConfig) -> FsEnv {
        let dir = tempfile::tempdir().expect("create a scratch directory");
        match target {
            Target::Local => FsEnv {
                env: Environment::local_with_config(ProcessConfig::default(), config),
                server: None,
                dir,
            },
            Target::Remote => {
                let limit = config.max_read_bytes.to_string();
                let server = ServerProcess::start(&["--max-read-bytes", &limit]);
                let env = within(
                    "connect",
                    exec_server_client::connect_environment(&server.url),
                )
                .await
                .expect("connect to the test server");
                FsEnv {
                    env,
                    server: Some(server),
                    dir,
                }
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
