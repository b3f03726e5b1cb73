//! The OS sandbox of this binary's local environment. The fs helper and the process
//! launcher are this very executable, re-executed with a hidden argument (dispatched first
//! thing in `main`), so the server and the local `run`/`fs` commands build their filesystem
//! and process sandboxes here.

use exec_server_environment::local::{FsConfig, ProcessConfig, ProcessSandbox, SandboxLimits};
use exec_server_environment::Environment;
use exec_server_sandbox::{
    CommandSandbox, HelperProgram, HelperSandbox, SandboxCaps, ServerFootprint,
};
use std::sync::Arc;

/// The process sandbox, which keeps sandboxed commands away from what `footprint` names.
/// Without this executable's descriptor, sandboxed starts are refused (never run
/// unconfined), and the reason is logged.
pub fn process_sandbox(footprint: Arc<ServerFootprint>) -> Option<Arc<dyn ProcessSandbox>> {
    match exec_server_sandbox::self_exe::path() {
        Ok(program) => Some(Arc::new(CommandSandbox::new(
            program,
            SandboxCaps::probe(),
            footprint,
        ))),
        Err(e) => {
            tracing::warn!("sandboxed processes will be refused: {e}");
            None
        }
    }
}

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
    let process = ProcessConfig {
        sandbox: process_sandbox(Arc::default()),
        ..ProcessConfig::default()
    };
    Environment::local_with_config(
        process,
        filesystem_config(FsConfig::default().max_read_bytes, SandboxLimits::default()),
    )
}
