//! Local implementations: the real work, on this machine.

mod child_env;
mod filesystem;
pub mod fs_ops;
pub mod fs_sandbox;
mod http;
mod output_log;
mod process_sandbox;
mod process_table;
mod spawn;

pub use child_env::child_environment;
pub use filesystem::{FsConfig, LocalFileSystem};
pub use fs_sandbox::{FsSandbox, SandboxLimits, SandboxedFsRequest, SandboxedFsResponse};
pub use http::{HttpConfig, ReqwestHttpClient};
pub use process_sandbox::{
    launcher_fds_arg, parse_launcher_fds_arg, CommandExit, CommandSpec, LaunchFailure, LauncherFds,
    ProcessSandbox, SandboxLaunch, SandboxRefusal, StatusLine,
};
pub use process_table::{GroupWatcher, ProcessConfig, ProcessTable, SERVER_SECRET_VARIABLES};
