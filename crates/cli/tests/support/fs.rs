//! Filesystem suites' support: an environment (local or remote) with a scratch directory,
//! and helpers for asserting fs errors.

use super::{within, ServerProcess, Target, TestEnv};
use exec_server_client::{ClientOptions, ExecServerClient};
use exec_server_environment::local::{FsConfig, ProcessConfig};
use exec_server_environment::{Environment, FileSystem, FsError};
use exec_server_protocol::AbsolutePath;
use exec_server_sandbox::{HelperProgram, HelperSandbox, SandboxCaps};
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

    /// With the scratch directory outside `/tmp` and `$TMPDIR` (under the build's own
    /// temporary directory), for policies that make those writable roots.
    pub async fn outside_tmp(target: Target) -> FsEnv {
        let mut env = Self::new(target).await;
        env.dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("create a scratch directory in the target directory");
        env
    }

    /// With custom filesystem settings (passed as `serve` flags to a remote server). The
    /// local environment gets the sandbox helper the server has (the `exec-server` binary),
    /// unless `config` brings its own.
    pub async fn with_config(target: Target, config: FsConfig) -> FsEnv {
        let limit = config.max_read_bytes.to_string();
        Self::with(target, config, &["--max-read-bytes", &limit]).await
    }

    /// With `config` for a local environment, or a server started with `serve_args`.
    pub async fn with(target: Target, mut config: FsConfig, serve_args: &[&str]) -> FsEnv {
        let dir = tempfile::tempdir().expect("create a scratch directory");
        match target {
            Target::Local => FsEnv {
                env: {
                    if config.sandbox.is_none() {
                        config.sandbox = Some(Arc::new(HelperSandbox::new(
                            server_binary(),
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
                let TestEnv { env, server } = TestEnv::remote(serve_args).await;
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

/// A link to (or a copy of) the `exec-server` binary of this test's own, in a directory
/// that lives as long as the returned guard: its helpers can be told from other tests'.
pub fn private_binary() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("create a directory");
    let path = dir.path().join("exec-server");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_exec-server"), &path).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_exec-server"), &path).expect("copy the binary");
    }
    (dir, path)
}

/// The `exec-server` binary, opened, as the sandbox helper of a local environment.
pub fn server_binary() -> HelperProgram {
    HelperProgram::open(Path::new(env!("CARGO_BIN_EXE_exec-server")))
        .expect("open the exec-server binary")
}

/// `data.limit` of a failed call's error, when it names a limit.
pub fn limit_of<T: std::fmt::Debug>(result: Result<T, FsError>) -> Option<String> {
    match result {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e
            .to_error_object()
            .data
            .and_then(|d| d.get("limit").and_then(|l| l.as_str()).map(str::to_owned)),
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

/// One entry of a [`snapshot`]: its type, permission bits, owner, and contents (a file's
/// bytes, a symlink's target).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub content: Vec<u8>,
}

/// Everything under `dir` (itself included, as ""), byte for byte, without following links:
/// two equal snapshots mean nothing there changed.
pub fn snapshot(dir: &Path) -> std::collections::BTreeMap<std::path::PathBuf, Entry> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    let mut out = std::collections::BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let rel = path.strip_prefix(dir).unwrap().to_path_buf();
        let file_type = meta.file_type();
        let (kind, content) = if file_type.is_symlink() {
            let target = std::fs::read_link(&path).unwrap();
            ("symlink", target.as_os_str().as_bytes().to_vec())
        } else if file_type.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                pending.push(entry.unwrap().path());
            }
            ("dir", Vec::new())
        } else if file_type.is_file() {
            ("file", std::fs::read(&path).unwrap())
        } else {
            ("special", Vec::new())
        };
        out.insert(
            rel,
            Entry {
                kind,
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                content,
            },
        );
    }
    out
}

/// The sandbox helpers running `program` as children of `parent` (found by their hidden
/// argument and their executable in /proc; zombies do not count). Tests of one process share
/// their parent, so each local test that counts helpers runs its own copy of the binary.
pub fn helpers_of(parent: u32, program: &Path) -> Vec<u32> {
    let program = std::fs::canonicalize(program).unwrap_or_else(|_| program.to_path_buf());
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`; comm may hold spaces, so split after its `)`.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or_default();
        let ppid = fields.next().and_then(|p| p.parse::<u32>().ok());
        if ppid != Some(parent) || state == "Z" {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let is_helper = cmdline
            .split(|&b| b == 0)
            .nth(1)
            .is_some_and(|arg| arg == exec_server_sandbox::FS_HELPER_ARG.as_bytes());
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
        if is_helper && exe.as_deref() == Some(program.as_path()) {
            found.push(pid);
        }
    }
    found
}
