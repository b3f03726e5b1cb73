//! The client's stdin, stdout, terminal and signals, joined to one process, for `run` and
//! `attach`: output is written as it comes, stdin is forwarded, the window size follows the
//! local terminal, and the run ends with the process's exit, an escape, or a signal.

use crate::escape::{self, EscapeScanner, Typed};
use crate::terminal;
use bytes::Bytes;
use exec_server_client::{ConnectionState, ConnectionWatch};
use exec_server_environment::{ProcessBackend, ProcessError, ProcessEvent, ProcessEvents};
use exec_server_protocol::process::{OutputStream, WriteStatus};
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{mpsc, watch};

/// How the client's stdin reaches the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdinMode {
    /// A terminal, in raw mode for the whole run: every key is sent as its bytes, an escape
    /// (`escape`, if any) at a line start is for the client, and window sizes follow it.
    Terminal { escape: Option<u8> },
    /// Copied as is; its end closes the process's stdin (for a PTY, types ^D).
    Copy,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The process exited; its status as a shell reports it (128 + signal for a signal
    /// death).
    Exited(u8),
    /// The user typed the disconnect escape; the process was left running.
    Detached,
    /// This client got SIGTERM or SIGHUP, passed it on to the process, and left.
    Signalled(i32),
}

/// One process joined to this client's stdin and stdout.
pub struct ProcessIo {
    pub processes: Arc<dyn ProcessBackend>,
    pub process_id: String,
    pub events: ProcessEvents,
    pub stdin: StdinMode,
    /// The server connection, if any, so the user hears when it drops and comes back.
    pub connection: Option<ConnectionWatch>,
}

/// Bytes read from stdin at a time.
const STDIN_READ_BYTES: usize = 16 * 1024;

/// How long passing a signal on may hold up leaving: the client was asked to go.
const SIGNAL_FORWARD_TIMEOUT: Duration = Duration::from_secs(2);

/// What the keyboard asks of the client itself.
enum Command {
    Disconnect,
}

impl ProcessIo {
    /// Runs until the process closes, the user disconnects, or a signal ends the client. In
    /// terminal mode the terminal is in raw mode meanwhile, and restored before this returns
    /// (whatever it returns) or when the client panics.
    pub async fn run(self) -> anyhow::Result<Ending> {
        let ProcessIo {
            processes,
            process_id,
            mut events,
            stdin,
            mut connection,
        } = self;
        let mut signals = ClientSignals::new()?;
        let raw_mode = match stdin {
            StdinMode::Terminal { .. } => Some(
                terminal::RawMode::enter()
                    .map_err(|e| anyhow::anyhow!("cannot put the terminal in raw mode: {e}"))?,
            ),
            StdinMode::Copy => None,
        };
        // The remote terminal starts at the local size; later sizes follow SIGWINCH.
        let (sizes, size_updates) = watch::channel(terminal::window_size());
        let resizer = matches!(stdin, StdinMode::Terminal { .. }).then(|| {
            tokio::spawn(follow_window_size(
                processes.clone(),
                process_id.clone(),
                size_updates,
            ))
        });
        let (commands, mut command_rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(forward_stdin(
            processes.clone(),
            process_id.clone(),
            read_stdin(stdin, commands),
        ));

        let newline = if raw_mode.is_some() { "\r\n" } else { "\n" };
        let mut exit_status = None;
        let ending = loop {
            let event = tokio::select! {
                event = events.next() => event,
                Some(Command::Disconnect) = command_rx.recv() => break Ok(Ending::Detached),
                state = next_state(&mut connection) => {
                    match state {
                        ConnectionState::Reconnecting => eprint!(
                            "{newline}exec-server: lost the connection to the server; \
                             reconnecting{}{newline}",
                            if raw_mode.is_some() { " (~. to leave)" } else { "" }
                        ),
                        ConnectionState::Connected => {
                            eprint!("exec-server: reconnected{newline}")
                        }
                        // The process's events fail with the reason next.
                        ConnectionState::Closed(_) => {}
                    }
                    continue;
                }
                _ = signals.window_changed.recv() => {
                    sizes.send_replace(terminal::window_size());
                    continue;
                }
                _ = signals.interrupt.recv() => {
                    // Only `kill -INT` gets here in raw mode (keys make no signals there):
                    // stop the command, as Ctrl-C does to a local one, and report its exit.
                    let _ = processes.terminate(&process_id).await;
                    continue;
                }
                _ = signals.terminate.recv() => {
                    break Ok(leave_on_signal(&*processes, &process_id, libc::SIGTERM).await);
                }
                _ = signals.hangup.recv() => {
                    break Ok(leave_on_signal(&*processes, &process_id, libc::SIGHUP).await);
                }
            };
            match event {
                Some(ProcessEvent::Output { stream, chunk, .. }) => {
                    let written = match stream {
                        OutputStream::Stderr => write_all(&mut std::io::stderr().lock(), &chunk),
                        OutputStream::Stdout | OutputStream::Pty => {
                            write_all(&mut std::io::stdout().lock(), &chunk)
                        }
                    };
                    if let Err(e) = written {
                        break Err(anyhow::anyhow!("cannot write the command's output: {e}"));
                    }
                }
                Some(ProcessEvent::Exited {
                    exit_code, signal, ..
                }) => {
                    // A shell's status: 128 + the signal for a signal death. The close
                    // follows once the rest of the output is written.
                    let status = signal.map_or(exit_code, |signal| 128 + signal);
                    exit_status = Some(status.clamp(0, 255) as u8);
                }
                Some(ProcessEvent::Closed { .. }) | None => {
                    break match exit_status {
                        Some(status) => Ok(Ending::Exited(status)),
                        None => Err(anyhow::anyhow!(
                            "the command's event stream ended without an exit status"
                        )),
                    }
                }
                Some(ProcessEvent::Failed { message }) => break Err(anyhow::anyhow!("{message}")),
                Some(ProcessEvent::Gap { from_seq, to_seq }) => {
                    eprint!(
                        "exec-server: output chunks {from_seq}..={to_seq} are no longer \
                         retained by the server (they were evicted while no client was \
                         reading; see the server's --retained-output-bytes){newline}"
                    );
                }
            }
        };
        writer.abort();
        if let Some(resizer) = resizer {
            resizer.abort();
        }
        drop(raw_mode);
        ending
    }
}

/// The next connection state; never, without a connection or once the client is gone.
async fn next_state(connection: &mut Option<ConnectionWatch>) -> ConnectionState {
    if let Some(watch) = connection {
        if let Some(state) = watch.changed().await {
            return state;
        }
    }
    std::future::pending().await
}

/// The signals this client handles itself instead of dying of them.
struct ClientSignals {
    window_changed: Signal,
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

impl ClientSignals {
    fn new() -> anyhow::Result<Self> {
        let listen = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|e| anyhow::anyhow!("cannot handle {name}: {e}"))
        };
        Ok(ClientSignals {
            window_changed: listen(SignalKind::window_change(), "SIGWINCH")?,
            interrupt: listen(SignalKind::interrupt(), "SIGINT")?,
            terminate: listen(SignalKind::terminate(), "SIGTERM")?,
            hangup: listen(SignalKind::hangup(), "SIGHUP")?,
        })
    }
}

/// SIGTERM or SIGHUP reached this client: pass it on to the process (as a terminal hangup
/// or a kill would reach a local one), without waiting long for a server that may be gone,
/// and leave.
async fn leave_on_signal(processes: &dyn ProcessBackend, process_id: &str, signal: i32) -> Ending {
    let name = if signal == libc::SIGHUP {
        "SIGHUP"
    } else {
        "SIGTERM"
    };
    let forward = async {
        // A server without process/signal: end the process the one way it has.
        if let Err(ProcessError::Unsupported(_)) = processes.signal(process_id, name).await {
            let _ = processes.terminate(process_id).await;
        }
    };
    let _ = tokio::time::timeout(SIGNAL_FORWARD_TIMEOUT, forward).await;
    Ending::Signalled(signal)
}

/// Resizes the remote terminal to each new local size, in order, skipping sizes that a
/// newer one replaced before they were sent.
async fn follow_window_size(
    processes: Arc<dyn ProcessBackend>,
    process_id: String,
    mut sizes: watch::Receiver<Option<(u16, u16)>>,
) {
    loop {
        let size = *sizes.borrow_and_update();
        if let Some((rows, cols)) = size {
            if let Err(e) = processes.resize(&process_id, rows, cols).await {
                tracing::debug!(process_id, "resize failed: {e}");
            }
        }
        if sizes.changed().await.is_err() {
            return;
        }
    }
}

/// What the stdin thread read.
enum Input {
    Bytes(Bytes),
    /// End of input: the process's stdin is closed. (The channel closing without this means
    /// the reader stopped for another reason, a disconnect: the process's input is left as
    /// it is.)
    End,
}

/// Starts reading stdin on a thread of its own and returns what it read, chunk by chunk,
/// then [`Input::End`] at end of input. In terminal mode, escape commands go to `commands`
/// at once instead (never queued behind writes that may be waiting for the server), and
/// the help is printed from here.
///
/// A plain thread, not the runtime's blocking pool: a read of a terminal cannot be
/// cancelled, and the runtime would wait for it at shutdown until the next key.
fn read_stdin(mode: StdinMode, commands: mpsc::UnboundedSender<Command>) -> mpsc::Receiver<Input> {
    // Keys are small and few, so in terminal mode the queue is long enough never to hold
    // up reading (and so the escape) while the server is slow; copied input waits for the
    // process instead of piling up here.
    let capacity = match mode {
        StdinMode::Terminal { .. } => 4096,
        StdinMode::Copy => 8,
    };
    let (chunks, chunk_rx) = mpsc::channel(capacity);
    let mut scanner = match mode {
        StdinMode::Terminal {
            escape: Some(escape),
        } => Some((EscapeScanner::new(escape), escape)),
        _ => None,
    };
    let spawned = std::thread::Builder::new()
        .name("stdin".to_owned())
        .spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = vec![0u8; STDIN_READ_BYTES];
            loop {
                let n = match stdin.read(&mut buf) {
                    Ok(0) => {
                        let _ = chunks.blocking_send(Input::End);
                        return;
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        tracing::debug!("stdin: {e}");
                        return;
                    }
                };
                let typed = match &mut scanner {
                    Some((scanner, _)) => scanner.scan(&buf[..n]),
                    None => vec![Typed::Send(buf[..n].to_vec())],
                };
                for item in typed {
                    match item {
                        Typed::Send(bytes) => {
                            if chunks
                                .blocking_send(Input::Bytes(Bytes::from(bytes)))
                                .is_err()
                            {
                                return;
                            }
                        }
                        Typed::Disconnect => {
                            // Not the end of input: the command must not see its stdin close
                            // (a shell would exit) before the client has left.
                            let _ = commands.send(Command::Disconnect);
                            return;
                        }
                        Typed::Help => {
                            if let Some((_, escape)) = &scanner {
                                let _ = write_all(
                                    &mut std::io::stderr().lock(),
                                    escape::help(char::from(*escape)).as_bytes(),
                                );
                            }
                        }
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot read stdin: {e}");
    }
    chunk_rx
}

/// Writes stdin's chunks to the process in order, waiting while its stdin queue is full;
/// at end of input closes its stdin. Stops writing (but keeps draining, so reading goes on
/// for the escape) once the process takes no more input.
async fn forward_stdin(
    processes: Arc<dyn ProcessBackend>,
    process_id: String,
    mut chunks: mpsc::Receiver<Input>,
) {
    let mut accepting = true;
    let mut ended = false;
    while let Some(input) = chunks.recv().await {
        let chunk = match input {
            Input::Bytes(chunk) => chunk,
            Input::End => {
                ended = true;
                break;
            }
        };
        if !accepting {
            continue;
        }
        match processes.write_waiting(&process_id, chunk).await {
            Ok(WriteStatus::Accepted) => {}
            Ok(status) => {
                tracing::debug!(process_id, ?status, "stdin no longer accepted");
                accepting = false;
            }
            // The connection dropped with the write in flight: it may or may not have
            // arrived. Later input goes to the resumed session (or fails with the session).
            Err(ProcessError::Transport(e)) => tracing::debug!(process_id, "stdin write: {e}"),
            Err(e) => {
                tracing::debug!(process_id, "stdin write refused: {e}");
                accepting = false;
            }
        }
    }
    if accepting && ended {
        match processes.close_stdin(&process_id).await {
            // A server without process/closeStdin: the process sees no end of input.
            Ok(()) | Err(ProcessError::Unsupported(_)) => {}
            Err(e) => tracing::debug!(process_id, "closing stdin: {e}"),
        }
    }
}

fn write_all(out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    out.write_all(bytes)?;
    out.flush()
}
