//! `exec-server attach`: resume a session that a client left (`~.` in `run --tty`) and show
//! one of its processes again, like `tmux attach`: what the server still retains of its
//! output is replayed from the start, then it goes on live, with this terminal driving it as
//! `run --tty` does.

use crate::process_io::{Ending, ProcessIo, StdinMode};
use crate::run::{signal_name, EscapeChar, DETACHED_STATUS};
use crate::terminal;
use anyhow::Context;
use exec_server_client::{ClientOptions, ExecServerClient, RemoteProcesses};
use std::sync::Arc;

#[derive(clap::Args)]
#[command(after_help = "\
The keys are those of `run --tty` (see `exec-server run --help`): ~. disconnects again, ~?
lists the escapes, ~~ sends one ~. The session must be resumed before it expires (the
server's --session-ttl after the last client left).")]
pub struct AttachArgs {
    /// The server (`ws://HOST:PORT`) the session is on.
    #[arg(long, env = "EXEC_SERVER_URL")]
    url: String,
    /// The escape character, or `none` to send every key as it is.
    #[arg(long, value_name = "CHAR", default_value = "~", value_parser = crate::run::parse_escape_char)]
    escape_char: EscapeChar,
    /// The session id `run` printed when it disconnected.
    session: String,
    /// The process id `run` printed when it disconnected.
    process: String,
}

pub async fn attach(args: AttachArgs) -> anyhow::Result<u8> {
    let options = ClientOptions {
        resume_session_id: Some(args.session.clone()),
        ..ClientOptions::from_env()
    };
    let client = ExecServerClient::connect(&args.url, options)
        .await
        .with_context(|| {
            format!(
                "cannot resume session {} (a session lasts the server's --session-ttl after \
                 its client left)",
                args.session
            )
        })?;
    let processes = Arc::new(RemoteProcesses::new(client.clone()));
    let events = processes
        .follow(&args.process)
        .await
        .with_context(|| format!("cannot attach to process {}", args.process))?;
    let stdin = if terminal::stdin_is_terminal() {
        StdinMode::Terminal {
            escape: args.escape_char.0,
        }
    } else {
        StdinMode::Copy
    };
    let ending = ProcessIo {
        processes,
        process_id: args.process.clone(),
        events,
        stdin,
        connection: Some(client.watch_connection()),
    }
    .run()
    .await?;
    Ok(match ending {
        Ending::Exited(status) => status,
        Ending::Detached => {
            eprintln!(
                "\nexec-server: disconnected; process {process} keeps running in session \
                 {session} until the session expires. Resume it with:\n  \
                 exec-server attach --url {url} {session} {process}",
                process = args.process,
                session = client.session_id(),
                url = args.url,
            );
            DETACHED_STATUS
        }
        Ending::Signalled(signal) => {
            eprintln!(
                "exec-server: {} received; passed it on to the command and left",
                signal_name(signal)
            );
            (128 + signal).clamp(0, 255) as u8
        }
    })
}
