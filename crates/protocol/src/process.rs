//! `process/*` params, results and notifications.

use crate::sandbox::{SandboxContext, SandboxType};
use crate::{AbsolutePath, Base64Bytes};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `process/start` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StartParams {
    /// Caller-chosen key, unique within the session (not an OS pid).
    pub process_id: String,
    /// Program and arguments; must not be empty.
    pub argv: Vec<String>,
    /// Working directory of the child.
    pub cwd: AbsolutePath,
    /// How to derive the child environment from the server's own; null = start from nothing.
    #[serde(default)]
    pub env_policy: Option<EnvPolicy>,
    /// Variables set in the child, applied last (they win over `envPolicy`). A name must not
    /// be empty or contain `=` or NUL (-32602).
    #[serde(default, deserialize_with = "null_as_default")]
    // An explicit null is accepted (as the default), so the schema says so.
    #[schemars(with = "Option<BTreeMap<String, String>>")]
    pub env: BTreeMap<String, String>,
    /// Run under a pseudo-terminal (stdout and stderr merged as stream `pty`).
    #[serde(default, deserialize_with = "null_as_default")]
    // An explicit null is accepted (as the default), so the schema says so.
    #[schemars(with = "Option<bool>")]
    pub tty: bool,
    /// Without a PTY: keep stdin open as a pipe for `process/write` (else it is /dev/null).
    #[serde(default, deserialize_with = "null_as_default")]
    // An explicit null is accepted (as the default), so the schema says so.
    #[schemars(with = "Option<bool>")]
    pub pipe_stdin: bool,
    /// Override for argv[0] as the child sees it.
    #[serde(default)]
    pub arg0: Option<String>,
    /// Addition (`features.processTimeout`): the server kills the process group (SIGKILL)
    /// this many milliseconds after the start, if it is still running. Absent or null: no
    /// limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Run the command and every descendant confined by this policy (either shape of the
    /// `sandbox` object). A policy the server cannot enforce is refused with -32602 and
    /// nothing is spawned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxContext>,
    /// Codex's managed-network switch. Only `false` is accepted: this server has no network
    /// proxy, so `true` is refused (-32602) rather than ignored.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_false"
    )]
    // An explicit null is accepted (as the default), so the schema says so.
    #[schemars(with = "Option<bool>")]
    pub enforce_managed_network: bool,
    /// Codex's managed-network settings. Accepted and ignored (they only matter with
    /// `enforceManagedNetwork`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_network: Option<serde_json::Value>,
    /// Codex's network proxy launch request. This server does not launch proxies (it does not
    /// advertise `networkProxyLaunch`), so anything but null is refused (-32602).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_proxy: Option<serde_json::Value>,
    /// Addition (`features.ttySize`): the PTY's window size from the start (default 24×80),
    /// so a program that reads it at once sees the client's. A server without the feature
    /// ignores it; `process/resize` then sets the size right after the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty_size: Option<TtySize>,
}

/// A terminal's size, each at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TtySize {
    pub rows: u16,
    pub cols: u16,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// Which part of the server's environment a child starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EnvInherit {
    /// Every variable of the server.
    #[default]
    All,
    /// Only the core variables (HOME, LANG, LC_ALL, LC_CTYPE, LOGNAME, PATH, SHELL, TEMP, TMP,
    /// TMPDIR, USER).
    Core,
    /// Nothing.
    None,
}

/// Codex's shell environment policy, applied to the server's environment before `env`.
///
/// Order: inherit, drop default excludes (`*KEY*`, `*SECRET*`, `*TOKEN*`) unless
/// `ignoreDefaultExcludes`, drop `exclude`, add `set`, keep only `includeOnly` when non-empty.
/// Patterns are case-insensitive globs with `*` and `?`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvPolicy {
    #[serde(default, deserialize_with = "null_as_default")]
    // An explicit null is accepted (as the default), so the schema says so.
    #[schemars(with = "Option<EnvInherit>")]
    pub inherit: EnvInherit,
    #[serde(default, deserialize_with = "null_as_default")]
    // An explicit null is accepted (as the default), so the schema says so.
    #[schemars(with = "Option<bool>")]
    pub ignore_default_excludes: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    // An explicit null is accepted (as the default), so the schema says so.
    #[schemars(with = "Option<Vec<String>>")]
    pub exclude: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    // An explicit null is accepted (as the default), so the schema says so.
    #[schemars(with = "Option<BTreeMap<String, String>>")]
    pub set: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_as_default")]
    // An explicit null is accepted (as the default), so the schema says so.
    #[schemars(with = "Option<Vec<String>>")]
    pub include_only: Vec<String>,
}

/// `process/start` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StartResponse {
    pub process_id: String,
    /// Which sandbox the process runs in: `none` without `sandbox`, `linuxSeccomp` with one.
    /// Absent from older servers (codex April), which a client reads as "not reported".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_type: Option<SandboxType>,
}

/// `process/read` params.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadParams {
    pub process_id: String,
    /// Return only chunks with `seq > afterSeq` (default 0).
    #[serde(default)]
    pub after_seq: Option<u64>,
    /// Soft byte budget: chunks are never split, and the first chunk is always returned.
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// Long-poll: wait up to this long for a chunk or the exit.
    #[serde(default)]
    pub wait_ms: Option<u64>,
}

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutputStream {
    Stdout,
    Stderr,
    Pty,
}

/// One chunk of retained output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutputChunk {
    pub seq: u64,
    pub stream: OutputStream,
    pub chunk: Base64Bytes,
}

/// `process/read` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadResponse {
    pub chunks: Vec<OutputChunk>,
    /// Last returned seq + 1, or the next unassigned seq when no chunk was returned.
    pub next_seq: u64,
    pub exited: bool,
    pub exit_code: Option<i32>,
    pub closed: bool,
    /// Set by a client library to report a transport failure; always null from the server.
    pub failure: Option<String>,
    /// Addition: the smallest seq from which every output chunk is still retained. A reader
    /// has a gap exactly when `afterSeq + 1 < firstRetainedSeq`. Absent from codex servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_retained_seq: Option<u64>,
    /// Addition: the signal that killed the process, when it died of one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Addition: the seq of the `process/exited` event, once the process has exited, so a
    /// client that missed notifications can replay the exit in its exact place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exited_seq: Option<u64>,
    /// Addition: the seq of the `process/closed` event, once the process has closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_seq: Option<u64>,
    /// True when a sandboxed process exited non-zero in a way that looks like the sandbox
    /// stopped it (codex's heuristic: a denial message in its output, or death by SIGSYS).
    /// Always false for unsandboxed processes and before the exit.
    #[serde(default)]
    pub sandbox_denied: bool,
}

/// `process/write` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WriteParams {
    pub process_id: String,
    /// Bytes for the child's stdin.
    pub chunk: Base64Bytes,
}

/// Outcome of a write: these are results, not errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum WriteStatus {
    /// Queued for the child's stdin, in order after every earlier write.
    Accepted,
    UnknownProcess,
    Starting,
    /// The process has no writable stdin (neither PTY nor `pipeStdin`), or it was closed.
    StdinClosed,
}

/// `process/write` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WriteResponse {
    pub status: WriteStatus,
}

/// `process/terminate` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TerminateParams {
    pub process_id: String,
}

/// `process/terminate` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TerminateResponse {
    /// True when the process was running and has been killed (its exit follows as usual).
    pub running: bool,
}

/// `process/signal` params (addition).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignalParams {
    pub process_id: String,
    /// One of SIGINT, SIGTERM, SIGKILL, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGSTOP, SIGCONT,
    /// SIGWINCH, with or without the `SIG` prefix, any case. Anything else is -32602.
    pub signal: String,
}

/// `process/signal` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignalResponse {
    /// True when the process had not exited and its process group was sent the signal;
    /// false when it has already exited (nothing was sent).
    pub delivered: bool,
}

/// `process/closeStdin` params (addition). The result is `{}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloseStdinParams {
    pub process_id: String,
}

/// `process/list` params (addition): none.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListParams {}

/// One process of the session, as `process/list` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProcessInfo {
    pub process_id: String,
    /// The OS pid (also its process group id). Once the process has exited the pid may
    /// belong to someone else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Started with `tty: true`.
    pub tty: bool,
    /// Not yet exited.
    pub running: bool,
    /// The exit status once exited (-1 for a signal death).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The signal that killed it, when it died of one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
}

/// `process/list` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListResponse {
    /// Live and retained processes, sorted by `processId`.
    pub processes: Vec<ProcessInfo>,
}

/// `process/resize` params (addition): the PTY window size. The result is `{}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResizeParams {
    pub process_id: String,
    /// At least 1.
    pub rows: u16,
    /// At least 1.
    pub cols: u16,
}

/// `process/output` notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutputNotification {
    pub process_id: String,
    pub seq: u64,
    pub stream: OutputStream,
    pub chunk: Base64Bytes,
}

/// `process/exited` notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExitedNotification {
    pub process_id: String,
    pub seq: u64,
    /// The exit status, or -1 when the process died of a signal.
    pub exit_code: i32,
    /// Addition: the signal number when the process died of a signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// See [`ReadResponse::sandbox_denied`].
    #[serde(default)]
    pub sandbox_denied: bool,
}

/// `process/closed` notification: the last event of a process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClosedNotification {
    pub process_id: String,
    pub seq: u64,
}

/// Treats an explicit `null` like an absent field.
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_accepts_codex_client_shape_with_nulls() {
        let p: StartParams = serde_json::from_str(
            r#"{"processId":"72664","argv":["/bin/bash","-lc","true"],"cwd":"/tmp",
                "envPolicy":{"inherit":"all","ignoreDefaultExcludes":true,"exclude":[],"set":{},"includeOnly":[]},
                "env":{"TERM":"dumb"},"tty":false,"pipeStdin":false,"arg0":null,"unknownField":1}"#,
        )
        .unwrap();
        assert_eq!(p.env_policy.unwrap().inherit, EnvInherit::All);
        assert_eq!(p.arg0, None);
    }

    #[test]
    fn read_accepts_null_options() {
        let p: ReadParams =
            serde_json::from_str(r#"{"processId":"p","afterSeq":null,"maxBytes":null,"waitMs":0}"#)
                .unwrap();
        assert_eq!(p.after_seq, None);
        assert_eq!(p.wait_ms, Some(0));
    }

    #[test]
    fn read_response_matches_reference_shape() {
        let r = ReadResponse {
            chunks: vec![],
            next_seq: 1,
            exited: false,
            exit_code: None,
            closed: false,
            failure: None,
            first_retained_seq: Some(1),
            signal: None,
            exited_seq: None,
            closed_seq: None,
            sandbox_denied: false,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"chunks":[],"nextSeq":1,"exited":false,"exitCode":null,"closed":false,"failure":null,"firstRetainedSeq":1,"sandboxDenied":false}"#
        );
    }
}
