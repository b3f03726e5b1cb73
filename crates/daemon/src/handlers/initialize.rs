//! The `initialize` result: session id, server identity and capabilities.

use crate::config::ServerConfig;
use crate::session::Session;
use exec_server_environment::local::fs_ops;
use exec_server_protocol::initialize::{
    Capabilities, Features, InitializeResponse, Limits, ServerInfo,
};
use exec_server_protocol::methods;

pub(crate) fn response(config: &ServerConfig, session: &Session) -> InitializeResponse {
    let process_sandbox_mechanisms = config
        .process
        .sandbox
        .as_ref()
        .map(|sandbox| sandbox.mechanisms())
        .unwrap_or_default();
    let sandbox_limits = config
        .filesystem
        .sandbox
        .as_ref()
        .map(|sandbox| sandbox.limits());
    InitializeResponse {
        session_id: session.id.clone(),
        server_info: Some(ServerInfo {
            name: "exec-server".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }),
        capabilities: Some(Capabilities {
            methods: [
                methods::PROCESS_SIGNAL,
                methods::PROCESS_CLOSE_STDIN,
                methods::PROCESS_LIST,
                methods::PROCESS_RESIZE,
                methods::FS_RENAME,
            ]
            .map(str::to_owned)
            .to_vec(),
            features: Features {
                fs_range: true,
                exit_signal: true,
                first_retained_seq: true,
                session_resume: true,
                event_seqs: true,
                process_timeout: true,
                process_sandbox: config.process.sandbox.is_some(),
                tty_size: true,
                process_sandbox_mechanisms,
                fs_sandbox: config
                    .filesystem
                    .sandbox
                    .as_ref()
                    .is_some_and(|sandbox| sandbox.available()),
                ..Features::default()
            },
            limits: Limits {
                max_message_bytes: Some(config.max_message_bytes as u64),
                max_read_bytes: Some(config.filesystem.max_read_bytes),
                retained_output_bytes: Some(config.process.retained_output_bytes as u64),
                max_processes_per_session: Some(config.process.max_processes as u64),
                max_http_body_bytes: Some(config.http.max_body_bytes),
                max_stdin_buffered_bytes: Some(config.process.max_stdin_buffered_bytes as u64),
                fs_helper_timeout_ms: sandbox_limits
                    .map(|l| u64::try_from(l.helper_timeout.as_millis()).unwrap_or(u64::MAX)),
                max_concurrent_fs_helpers: sandbox_limits.map(|l| l.max_concurrent_helpers as u64),
                max_fs_tree_depth: Some(fs_ops::MAX_TREE_DEPTH as u64),
            },
        }),
        environment_info: None,
    }
}
