//! The OS sandbox of this binary's local filesystem. The sandbox helper is this very
//! executable, re-executed with the hidden helper argument (dispatched first thing in
//! `main`), so the server and the local `run`/`fs` commands build their filesystem here.

use exec_server_environment::local::{FsConfig, ProcessConfig};
use exec_server_environment::Environment;
use exec_server_sandbox::{HelperSandbox, SandboxCaps};
use std::sync::Arc;

/// Filesystem settings with the sandbox helper wired in, after probing what the kernel
/// offers. Without the path of this executable, sandboxed calls are refused (never run
/// unconfined), and the reason is logged.
pub fn filesystem_config(max_read_bytes: u64) -> FsConfig {
    let caps = SandboxCaps::probe();
    tracing::info!(
        landlock_abi = ?caps.landlock_abi,
        seccomp = caps.seccomp,
        user_namespaces = caps.user_namespaces,
        "sandbox probe"
    );
    if let Some(missing) = caps.fs_helper_unavailable("read-only and workspace-write") {
        tracing::warn!("sandboxed filesystem calls will be refused: {missing}");
    }
    let sandbox = match std::env::current_exe() {
        Ok(exe) => Some(Arc::new(HelperSandbox::new(exe, caps, max_read_bytes)) as _),
        Err(e) => {
            tracing::warn!("sandboxed filesystem calls will be refused: cannot find this executable to run the sandbox helper: {e}");
            None
        }
    };
    FsConfig {
        max_read_bytes,
        sandbox,
    }
}

/// The local environment of `run` and `fs` without `--url`.
pub fn local_environment() -> Environment {
    Environment::local_with_config(
        ProcessConfig::default(),
        filesystem_config(FsConfig::default().max_read_bytes),
    )
}
