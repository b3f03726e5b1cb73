//! The `Environment`: what an agent harness can do on a machine, one trait per capability,
//! and the **local** implementation of each (in-process, no network).
//!
//! The remote implementations live in `exec-server-client` and forward over a connection; the
//! server (`exec-server-daemon`) decodes requests and calls the local implementations here.
//! Behaviour therefore lives in one place, and one test suite runs against both.

mod environment;
pub mod filesystem;
pub mod http;
pub mod local;
pub mod process;

pub use environment::Environment;
pub use filesystem::{FileSystem, FsError, FsFeatures};
pub use http::{HttpBodyStream, HttpClient, HttpError};
pub use process::{ProcessBackend, ProcessError, ProcessEvent, ProcessEvents, StartedProcess};
