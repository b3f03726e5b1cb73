use crate::filesystem::FileSystem;
use crate::http::HttpClient;
use crate::local::{
    FsConfig, HttpConfig, LocalFileSystem, ProcessConfig, ProcessTable, ReqwestHttpClient,
};
use crate::process::ProcessBackend;
use std::sync::Arc;

/// One machine's capabilities, local or remote. Cheap to clone.
#[derive(Clone)]
pub struct Environment {
    processes: Arc<dyn ProcessBackend>,
    filesystem: Arc<dyn FileSystem>,
    http: Arc<dyn HttpClient>,
}

impl Environment {
    /// Builds an environment from capability implementations (the remote client uses this).
    pub fn new(
        processes: Arc<dyn ProcessBackend>,
        filesystem: Arc<dyn FileSystem>,
        http: Arc<dyn HttpClient>,
    ) -> Self {
        Environment {
            processes,
            filesystem,
            http,
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
        Self::local_with_configs(processes, filesystem, HttpConfig::default())
    }

    /// The local environment with custom HTTP settings (the buffered body limit).
    pub fn local_with_http(http: HttpConfig) -> Self {
        Self::local_with_configs(ProcessConfig::default(), FsConfig::default(), http)
    }

    pub fn local_with_configs(
        processes: ProcessConfig,
        filesystem: FsConfig,
        http: HttpConfig,
    ) -> Self {
        Environment::new(
            Arc::new(ProcessTable::new(processes)),
            Arc::new(LocalFileSystem::new(filesystem)),
            Arc::new(ReqwestHttpClient::new(http)),
        )
    }

    pub fn processes(&self) -> &Arc<dyn ProcessBackend> {
        &self.processes
    }

    pub fn filesystem(&self) -> &Arc<dyn FileSystem> {
        &self.filesystem
    }

    pub fn http(&self) -> &Arc<dyn HttpClient> {
        &self.http
    }
}
