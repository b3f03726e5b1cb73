//! `initialize` and the capabilities this server advertises.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `initialize` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InitializeParams {
    pub client_name: String,
    /// Resume this detached session instead of creating a new one.
    #[serde(default)]
    pub resume_session_id: Option<String>,
}

/// `initialize` result. `serverInfo` and `capabilities` are additions; a codex server sends
/// only `sessionId`, so a client must treat them as optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InitializeResponse {
    pub session_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_info: Option<ServerInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    /// Sent by codex's own newer servers (0.16x and later), which honour `sandbox` on
    /// `process/start`. Kept as received: a client only needs to know it is there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_info: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerInfo {
    pub name: String,
    pub version: String,
}

/// What this server supports beyond the April codex protocol. All additive: a client uses an
/// addition only when it is advertised here.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    /// Names of methods beyond the April protocol.
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub features: Features,
    #[serde(default)]
    pub limits: Limits,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Features {
    /// `fs/readFile` `offset`/`length` and `fs/writeFile` `offset`/`append`.
    #[serde(default)]
    pub fs_range: bool,
    /// `signal` in `process/exited` and `process/read` results.
    #[serde(default)]
    pub exit_signal: bool,
    /// `firstRetainedSeq` in `process/read` results.
    #[serde(default)]
    pub first_retained_seq: bool,
    /// Binary websocket frames for bulk output (opt-in).
    #[serde(default)]
    pub binary_output: bool,
    /// Sessions survive a dropped connection and can be resumed.
    #[serde(default)]
    pub session_resume: bool,
    /// `exitedSeq` and `closedSeq` in `process/read` results.
    #[serde(default)]
    pub event_seqs: bool,
    /// `read-only` and `workspace-write` fs calls run confined in the sandbox helper (this
    /// machine has Landlock and seccomp); false: they are refused with -32600.
    #[serde(default)]
    pub fs_sandbox: bool,
    /// `timeoutMs` on `process/start`, enforced by the server.
    #[serde(default)]
    pub process_timeout: bool,
    /// `sandbox` on `process/start` is honoured: the command runs confined, or the start is
    /// refused with -32602 and a `data.reason` (when this machine lacks a mechanism, see
    /// `processSandboxMechanisms`); it is never ignored.
    #[serde(default)]
    pub process_sandbox: bool,
    /// The mechanisms sandboxed processes run under here (e.g. `userNamespace`,
    /// `mountNamespace`, `pidNamespace`, `networkNamespace`, `landlock`, `seccomp`); empty
    /// when they are refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub process_sandbox_mechanisms: Vec<String>,
    /// `ttySize` on `process/start`: a PTY starts at the client's size.
    #[serde(default)]
    pub tty_size: bool,
}

/// Server limits; exceeding one is a -32600 error whose `data.limit` names it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_message_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_read_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retained_output_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_processes_per_session: Option<u64>,
    /// Largest response body a buffered `http/request` returns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_http_body_bytes: Option<u64>,
    /// Stdin bytes a process may have queued, unread, before writes are refused (a write to
    /// an empty queue is always taken).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_stdin_buffered_bytes: Option<u64>,
    /// How long one sandboxed fs call may take before its helper is killed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_helper_timeout_ms: Option<u64>,
    /// Most sandbox helper processes running at once on the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_fs_helpers: Option<u64>,
    /// Deepest tree a recursive `fs/copy` descends, and most components in a path that
    /// `fs/createDirectory` creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_fs_tree_depth: Option<u64>,
}
