use crate::local::{ProcessConfig, ProcessTable};
use crate::process::ProcessBackend;
use std::sync::Arc;

/// One machine's capabilities, local or remote. Cheap to clone.
#[derive(Clone)]
pub struct Environment {
    processes: Arc<dyn ProcessBackend>,
}

impl Environment {
    /// Builds an environment from capability implementations (the remote client uses this).
    pub fn new(processes: Arc<dyn ProcessBackend>) -> Self {
        Environment { processes }
    }

    /// The local environment: processes run on this machine, in this process's session.
    /// Must be called inside a tokio runtime.
    pub fn local() -> Self {
        Self::local_with(ProcessConfig::default())
    }

    pub fn local_with(config: ProcessConfig) -> Self {
        Environment::new(Arc::new(ProcessTable::new(config)))
    }

    pub fn processes(&self) -> &Arc<dyn ProcessBackend> {
        &self.processes
    }
}
