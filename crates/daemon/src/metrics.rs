//! Server metrics, rendered in the Prometheus text exposition format at `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Counters and gauges of one server. Cheap to update from any task.
#[derive(Debug, Default)]
pub struct Metrics {
    connections_open: AtomicU64,
    connections_total: AtomicU64,
    output_bytes: AtomicU64,
    /// Requests answered, by (method, error code); code 0 is success.
    replies: Mutex<BTreeMap<(String, i64), u64>>,
}

/// Decrements the open-connection gauge when the connection ends.
pub struct ConnectionGuard<'a>(&'a Metrics);

impl Drop for ConnectionGuard<'_> {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Values read from elsewhere at render time.
pub struct Gauges {
    pub sessions: u64,
    pub running_processes: u64,
}

impl Metrics {
    pub fn connection_opened(&self) -> ConnectionGuard<'_> {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(self)
    }

    pub fn connections_open(&self) -> u64 {
        self.connections_open.load(Ordering::Relaxed)
    }

    pub fn output_streamed(&self, bytes: usize) {
        self.output_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts one reply to `method`: `code` is the JSON-RPC error code, or 0 for success.
    pub fn replied(&self, method: &str, code: i64) {
        let mut replies = self.replies.lock().expect("metrics lock poisoned");
        *replies.entry((method.to_owned(), code)).or_insert(0) += 1;
    }

    pub fn render(&self, gauges: Gauges) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        };
        metric(
            "exec_server_connections",
            "gauge",
            "Open client connections.",
            self.connections_open.load(Ordering::Relaxed),
        );
        metric(
            "exec_server_connections_total",
            "counter",
            "Client connections accepted since start.",
            self.connections_total.load(Ordering::Relaxed),
        );
        metric(
            "exec_server_sessions",
            "gauge",
            "Live sessions, attached or detached.",
            gauges.sessions,
        );
        metric(
            "exec_server_running_processes",
            "gauge",
            "Processes that have not exited yet.",
            gauges.running_processes,
        );
        metric(
            "exec_server_output_bytes_total",
            "counter",
            "Bytes of process output sent to clients as process/output notifications.",
            self.output_bytes.load(Ordering::Relaxed),
        );
        let replies = self.replies.lock().expect("metrics lock poisoned");
        let _ = writeln!(
            out,
            "# HELP exec_server_requests_total Requests answered, by method and outcome."
        );
        let _ = writeln!(out, "# TYPE exec_server_requests_total counter");
        for ((method, code), n) in replies.iter() {
            let outcome = if *code == 0 { "ok" } else { "error" };
            let _ = writeln!(
                out,
                "exec_server_requests_total{{method=\"{}\",outcome=\"{outcome}\",code=\"{code}\"}} {n}",
                escape_label(method)
            );
        }
        out
    }
}

/// Escapes a label value (method names come from clients).
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
