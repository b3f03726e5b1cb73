//! `exec-server`: run a server, or use one.

mod attach;
mod escape;
mod fs;
mod local_sandbox;
mod mcp;
mod process_io;
mod run;
mod serve;
mod terminal;

use clap::{Parser, Subcommand};
use exec_server_daemon::watchdog::WATCHDOG_ARG;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "exec-server",
    version,
    about = "A remote execution server for AI agents, and its client"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server; prints the URL it bound as the first line of stdout.
    Serve(serve::ServeArgs),
    /// Run a command locally or on a server, streaming its output; exits with its exit code.
    Run(run::RunArgs),
    /// Show a process that `run --tty` left running (`~.`) again: resume its session, replay
    /// its retained output, and go on live.
    Attach(attach::AttachArgs),
    /// File operations on a server, or here without `--url`: ls, stat, cat, put, get, mkdir,
    /// rm, cp, mv.
    Fs(fs::FsArgs),
    /// Use an MCP server (Streamable HTTP), from here or through an exec server (`--via`).
    Mcp(mcp::McpArgs),
}

/// `RUST_LOG` (default `warn`), except that the websocket and HTTP libraries never log at
/// trace: there they print whole messages and headers, which carry bearer tokens, process
/// environments, stdin and file contents.
fn log_filter() -> tracing_subscriber::EnvFilter {
    const VERBATIM_LOGGERS: &[&str] = &[
        "tungstenite",
        "tokio_tungstenite",
        "hyper",
        "hyper_util",
        "h2",
        "axum",
        "reqwest",
        "rustls",
    ];
    let requested = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned());
    let mut directives = requested.clone();
    // rmcp logs whole MCP messages at info and repeats, as errors, failures that the mcp
    // command already reports clearly: silent unless asked for by name.
    if !requested.contains("rmcp") {
        directives.push_str(",rmcp=off");
    }
    if requested.contains("trace") {
        for target in VERBATIM_LOGGERS {
            directives.push_str(&format!(",{target}=debug"));
        }
    }
    tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"))
}

fn main() -> ExitCode {
    // Before anything else: the sandbox's helpers run this very file, not whatever may sit at
    // its path later.
    exec_server_sandbox::self_exe::open_at_start();
    // The sandbox helper must lock itself down while it is the only thread, so it runs
    // before clap, logging or a runtime exist.
    if std::env::args_os().nth(1).as_deref() == Some(exec_server_sandbox::FS_HELPER_ARG.as_ref()) {
        return ExitCode::from(exec_server_sandbox::run_helper() as u8);
    }
    // The process sandbox's launcher enters user namespaces, which needs a single thread.
    if std::env::args_os().nth(1).as_deref() == Some(exec_server_sandbox::LAUNCHER_ARG.as_ref()) {
        return ExitCode::from(exec_server_sandbox::run_launcher().clamp(0, 255) as u8);
    }
    // The watchdog is this binary re-executed by `serve`; it needs neither clap nor a runtime.
    if std::env::args_os().nth(1).as_deref() == Some(WATCHDOG_ARG.as_ref()) {
        return match exec_server_daemon::watchdog::run_watchdog() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("exec-server watchdog: {e}");
                ExitCode::from(1)
            }
        };
    }
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(log_filter())
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("exec-server: failed to start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::serve(args).await.map(|()| 0),
            Command::Run(args) => run::run(args).await,
            Command::Attach(args) => attach::attach(args).await,
            Command::Fs(args) => fs::run(args).await,
            Command::Mcp(args) => mcp::run(args).await,
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("exec-server: {e:#}");
            ExitCode::from(1)
        }
    }
}
