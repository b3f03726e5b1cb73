//! Local implementations: the real work, in this process.

mod child_env;
mod filesystem;
mod http;
mod output_log;
mod process_table;
mod spawn;

pub use child_env::child_environment;
pub use filesystem::{FsConfig, LocalFileSystem};
pub use http::{HttpConfig, ReqwestHttpClient};
pub use process_table::{GroupWatcher, ProcessConfig, ProcessTable};
