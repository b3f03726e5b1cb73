//! `exec-server serve`.

use anyhow::Context;
use exec_server_daemon::watchdog::Watchdog;
use exec_server_daemon::{ListenUrl, Server, ServerConfig};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Where to listen: `ws://IP:PORT` (port 0 picks a free port).
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
    /// Largest file `fs/readFile` returns whole, in bytes; bigger files are read in ranges.
    #[arg(long, default_value_t = ServerConfig::default().filesystem.max_read_bytes)]
    max_read_bytes: u64,
    /// Seconds a session survives without a connection before its processes are killed.
    #[arg(long, default_value_t = ServerConfig::default().session_ttl.as_secs())]
    session_ttl: u64,
    /// Seconds of silence (no frame, no pong to the server's pings) after which a connection
    /// counts as dead and its session is detached.
    #[arg(long, default_value_t = ServerConfig::default().peer_timeout.as_secs())]
    peer_timeout: u64,
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let listen = ListenUrl::parse(&args.listen)?;
    let mut config = ServerConfig {
        max_message_bytes: args.max_message_bytes,
        session_ttl: Duration::from_secs(args.session_ttl),
        peer_timeout: Duration::from_secs(args.peer_timeout.max(1)),
        ..ServerConfig::default()
    };
    config.process.retained_output_bytes = args.retained_output_bytes;
    config.process.max_processes = args.max_processes_per_session;
    config.filesystem.max_read_bytes = args.max_read_bytes;

    // Kills our process groups if this process dies without doing it (SIGKILL, crash).
    let exe =
        std::env::current_exe().context("cannot find this executable to start the watchdog")?;
    let watchdog = Arc::new(Watchdog::spawn(&exe).context("failed to start the watchdog")?);
    config.process.group_watcher = Some(watchdog.clone());

    let server = Server::bind(&listen, config)
        .await
        .with_context(|| format!("failed to listen on {listen}"))?;
    // Launchers read this line to learn the port: it must be the first line on stdout.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", server.url())?;
    stdout.flush()?;
    drop(stdout);
    tracing::info!(url = %server.url(), "serving");
    let served = server.serve_until(shutdown_signal()).await;
    // serve_until has killed every process group; the watchdog has nothing left to do.
    watchdog.disarm();
    served?;
    Ok(())
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
