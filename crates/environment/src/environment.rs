use crate::filesystem::FileSystem;
use crate::local::{FsConfig, LocalFileSystem, ProcessConfig, ProcessTable};
use crate::process::ProcessBackend;
use std::sync::Arc;

/// One machine's capabilities, local or remote. Cheap to clone.
#[derive(Clone)]
pub struct Environment {
    processes: Arc<dyn ProcessBackend>,
    filesystem: Arc<dyn FileSystem>,
}

impl Environment {
    /// Builds an environment from capability implementations (the remote client uses this).
    pub fn new(processes: Arc<dyn ProcessBackend>, filesystem: Arc<dyn FileSystem>) -> Self {
        Environment {
            processes,
            filesystem,
        }
    }

    /// The local environment: processes run on this machine, in this process's session.
    /// Must be called inside a tokio runtime.
    pub fn local() -> Self {
        Self::local_with(ProcessConfig::default())
    }

    pub fn local_with(config: ProcessConfig) -> Self {
        Self::local_with_config(config, FsConfig::default())
    }

    pub fn local_with_config(processes: ProcessConfig, filesystem: FsConfig) -> Self {
        Environment::new(
            Arc::new(ProcessTable::new(processes)),
            Arc::new(LocalFileSystem::new(filesystem)),
        )
    }

    pub fn processes(&self) -> &Arc<dyn ProcessBackend> {
        &self.processes
    }

    pub fn filesystem(&self) -> &Arc<dyn FileSystem> {
        &self.filesystem
    }
}
