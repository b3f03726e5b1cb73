//! The OS sandbox of this binary's local filesystem. The sandbox helper is this very
//! executable, re-executed with the hidden helper argument (dispatched first thing in
//! `main`), so the server and the local `run`/`fs` commands build their filesystem here.

use exec_server_environment::local::{FsConfig, ProcessConfig, SandboxLimits};
use exec_server_environment::Environment;
use exec_server_sandbox::{HelperProgram, HelperSandbox, SandboxCaps};
use std::sync::Arc;

/// Filesystem settings with the sandbox helper wired in, after probing what the kernel
/// offers. The helper runs from the descriptor of this executable opened at start-up, never
/// from its path (which a sandboxed call may have replaced). Without that descriptor,
/// sandboxed calls are refused (never run unconfined), and the reason is logged.
pub fn filesystem_config(max_read_bytes: u64, limits: SandboxLimits) -> FsConfig {
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
    let sandbox = match HelperProgram::this_executable() {
        Ok(program) => Some(Arc::new(HelperSandbox::with_limits(
            program,
            caps,
            max_read_bytes,
            limits,
        )) as _),
        Err(e) => {
            tracing::warn!("sandboxed filesystem calls will be refused: cannot open this executable to run the sandbox helper: {e}");
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
        filesystem_config(FsConfig::default().max_read_bytes, SandboxLimits::default()),
    )
}
