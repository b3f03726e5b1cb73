//! `exec-server serve`.

use anyhow::Context;
use exec_server_daemon::admission::{AccessPolicy, Token};
use exec_server_daemon::watchdog::Watchdog;
use exec_server_daemon::{ListenUrl, Server, ServerConfig, TlsFiles};
use exec_server_environment::local::SandboxLimits;
use exec_server_sandbox::ServerFootprint;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Where to listen: `ws://IP:PORT` (port 0 picks a free port), `wss://IP:PORT` (with
    /// --tls-cert and --tls-key), `unix:///path` (a socket only this user can open), or
    /// `stdio` (one connection of line-delimited JSON on stdin/stdout, e.g. under ssh).
    #[arg(long, default_value = ListenUrl::DEFAULT)]
    listen: String,
    /// Largest JSON-RPC message accepted, in bytes.
    #[arg(long, default_value_t = ServerConfig::default().max_message_bytes)]
    max_message_bytes: usize,
    /// Output bytes retained per process for `process/read`.
    #[arg(long, default_value_t = ServerConfig::default().process.retained_output_bytes)]
    retained_output_bytes: usize,
    /// Most processes one session may hold (running or recently exited).
    #[arg(long, default_value_t = ServerConfig::default().process.max_processes)]
    max_processes_per_session: usize,
    /// Stdin bytes a process may have queued, unread, before further writes are refused
    /// (clients send them again once it has read).
    #[arg(long, default_value_t = ServerConfig::default().process.max_stdin_buffered_bytes)]
    max_stdin_buffered_bytes: usize,
    /// Largest file `fs/readFile` returns whole, in bytes; bigger files are read in ranges.
    #[arg(long, default_value_t = ServerConfig::default().filesystem.max_read_bytes)]
    max_read_bytes: u64,
    /// Milliseconds a sandboxed fs call may take (waiting for a helper slot included); then
    /// its helper is killed and the call fails with -32600 naming fsHelperTimeoutMs.
    #[arg(long, default_value_t = SandboxLimits::default().helper_timeout.as_millis() as u64)]
    fs_helper_timeout_ms: u64,
    /// Most sandbox helper processes running at once; further sandboxed fs calls wait for a
    /// slot within their deadline.
    #[arg(long, default_value_t = SandboxLimits::default().max_concurrent_helpers)]
    max_concurrent_fs_helpers: usize,
    /// Largest response body a buffered `http/request` returns, in bytes; larger bodies must
    /// be streamed (`streamResponse`).
    #[arg(long, default_value_t = ServerConfig::default().http.max_body_bytes)]
    max_http_body_bytes: u64,
    /// Seconds a session survives without a connection before its processes are killed.
    #[arg(long, default_value_t = ServerConfig::default().session_ttl.as_secs())]
    session_ttl: u64,
    /// Seconds of silence (no frame, no pong to the server's pings) after which a connection
    /// counts as dead and its session is detached.
    #[arg(long, default_value_t = ServerConfig::default().peer_timeout.as_secs())]
    peer_timeout: u64,
    /// File holding the bearer token clients must send (`Authorization: Bearer ...`).
    /// Without it, the token is read from EXEC_SERVER_TOKEN if set.
    #[arg(long)]
    token_file: Option<std::path::PathBuf>,
    /// Serve a non-loopback address without a token. Anyone who can reach the port can then
    /// run any command as this user.
    #[arg(long)]
    insecure_no_auth: bool,
    /// A browser origin allowed to open a websocket (repeatable); others get 403.
    #[arg(long = "allow-origin")]
    allowed_origins: Vec<String>,
    /// Most live sessions at once.
    #[arg(long, default_value_t = ServerConfig::default().max_sessions)]
    max_sessions: usize,
    /// Certificate chain (PEM) for `wss://`.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// Private key (PEM) for `wss://`.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Most open connections at once.
    #[arg(long, default_value_t = ServerConfig::default().max_connections)]
    max_connections: usize,
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let listen = ListenUrl::parse(&args.listen)?;
    let mut config = ServerConfig {
        max_message_bytes: args.max_message_bytes,
        session_ttl: Duration::from_secs(args.session_ttl),
        peer_timeout: Duration::from_secs(args.peer_timeout.max(1)),
        ..ServerConfig::default()
    };
    config.access = AccessPolicy {
        token: read_token(args.token_file.as_deref())?,
        allowed_origins: args.allowed_origins.clone(),
    };
    config.max_sessions = args.max_sessions;
    config.max_connections = args.max_connections;
    if !listen.is_loopback() && config.access.token.is_none() && !args.insecure_no_auth {
        anyhow::bail!(
            "refusing to listen on {listen} without authentication: anyone who can reach it \
             could run any command as this user. Give a token with --token-file PATH or \
             EXEC_SERVER_TOKEN, or listen on 127.0.0.1 (and reach it through ssh), or pass \
             --insecure-no-auth if the network itself is trusted"
        );
    }
    config.process.retained_output_bytes = args.retained_output_bytes;
    config.process.max_processes = args.max_processes_per_session;
    config.process.max_stdin_buffered_bytes = args.max_stdin_buffered_bytes;
    config.filesystem = crate::local_sandbox::filesystem_config(
        args.max_read_bytes,
        SandboxLimits {
            helper_timeout: Duration::from_millis(args.fs_helper_timeout_ms.max(1)),
            max_concurrent_helpers: args.max_concurrent_fs_helpers.max(1),
        },
    );
    // What a sandboxed command must not reach of this server; its ports are known after the
    // bind below.
    let footprint = Arc::new(ServerFootprint::default());
    let process_sandbox = crate::local_sandbox::process_sandbox(footprint.clone());
    if let Some(sandbox) = &process_sandbox {
        // Probes the machine now rather than at the first sandboxed start.
        let mechanisms = sandbox.mechanisms();
        if mechanisms.is_empty() {
            tracing::warn!(
                "sandboxed processes will be refused: this machine cannot build the process \
                 sandbox (a start says why)"
            );
        } else {
            tracing::info!(?mechanisms, "process sandbox");
        }
    }
    config.process.sandbox = process_sandbox;
    for secret in [&args.token_file, &args.tls_key, &args.tls_cert]
        .into_iter()
        .flatten()
    {
        footprint.hide(std::fs::canonicalize(secret).unwrap_or_else(|_| secret.clone()));
    }
    config.http.max_body_bytes = args.max_http_body_bytes;

    // Kills our process groups if this process dies without doing it (SIGKILL, crash).
    let exe =
        std::env::current_exe().context("cannot find this executable to start the watchdog")?;
    let watchdog = Arc::new(Watchdog::spawn(&exe).context("failed to start the watchdog")?);
    config.process.group_watcher = Some(watchdog.clone());

    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        (None, None) => None,
        _ => anyhow::bail!("--tls-cert and --tls-key go together"),
    };
    let server = Server::bind(&listen, config, tls.as_ref())
        .await
        .with_context(|| format!("failed to listen on {listen}"))?;
    match server.url() {
        ListenUrl::WebSocket(addr) | ListenUrl::SecureWebSocket(addr) => {
            footprint.set_tcp_ports(vec![addr.port()]);
        }
        ListenUrl::Unix(path) => footprint.hide(path.clone()),
        ListenUrl::Stdio => {}
    }
    if listen != ListenUrl::Stdio {
        // Launchers read this line to learn the port: it must be the first line on stdout.
        // (With stdio, stdout carries the protocol and nothing else.)
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{}", server.url())?;
        stdout.flush()?;
    }
    tracing::info!(url = %server.url(), "serving");
    let served = server.serve_until(shutdown_signal()).await;
    // serve_until has killed every process group; the watchdog has nothing left to do.
    watchdog.disarm();
    served?;
    Ok(())
}

/// The bearer token from `--token-file`, else from EXEC_SERVER_TOKEN.
fn read_token(file: Option<&std::path::Path>) -> anyhow::Result<Option<Token>> {
    let raw = match file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the token file {}", path.display()))?,
        None => match std::env::var("EXEC_SERVER_TOKEN") {
            Ok(value) => value,
            Err(_) => return Ok(None),
        },
    };
    match Token::new(&raw) {
        Some(token) => Ok(Some(token)),
        None => anyhow::bail!("the token is empty; put a long random string in it"),
    }
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot listen for SIGTERM: {e}");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
    tracing::info!("shutting down: killing every managed process");
}
