//! `exec-server run --tty` and `exec-server attach` as a person uses them: the client runs in
//! a real pseudo-terminal that the test types into and reads, locally and through a server.
//!
//! Each client runs under `sh`, which prints the terminal's settings (`stty -g`) before and
//! after it, and its exit status, so every test also checks that the terminal was restored.

mod support;

use std::sync::{Arc, Mutex};
use support::{within, ServerProcess, Target, STEP};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// The remote shell's prompt; unlike any output the tests expect.
const PROMPT: &str = "READY> ";

/// A pseudo-terminal with a program in it: what the test types goes in, and everything the
/// program writes is kept, to wait for.
struct Terminal {
    writer: pty_process::OwnedWritePty,
    output: Arc<Mutex<Vec<u8>>>,
    /// The length of `output`, for waiters.
    grown: watch::Receiver<usize>,
    /// Where the next `wait_for` starts looking.
    cursor: usize,
    child: tokio::process::Child,
}

impl Terminal {
    /// Starts `argv` in a new terminal of `rows` x `cols`, as the session leader with that
    /// terminal as its controlling terminal (as a terminal emulator starts a shell).
    fn start(rows: u16, cols: u16, argv: &[String]) -> Terminal {
        let (pty, pts) = pty_process::open().expect("open a pseudo-terminal");
        pty.resize(pty_process::Size::new(rows, cols))
            .expect("set the terminal size");
        let child = pty_process::Command::new(&argv[0])
            .args(&argv[1..])
            .env("TERM", "xterm")
            .env_remove("EXEC_SERVER_URL")
            .env_remove("EXEC_SERVER_TOKEN")
            .kill_on_drop(true)
            .spawn(pts)
            .expect("start the program in the terminal");
        let (mut reader, writer) = pty.into_split();
        let output = Arc::new(Mutex::new(Vec::new()));
        let (grow, grown) = watch::channel(0);
        let sink = output.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            // EIO once everything in the terminal has exited: the output is complete.
            while let Ok(n @ 1..) = reader.read(&mut buf).await {
                let mut output = sink.lock().unwrap();
                output.extend_from_slice(&buf[..n]);
                grow.send_replace(output.len());
            }
        });
        Terminal {
            writer,
            output,
            grown,
            cursor: 0,
            child,
        }
    }

    /// Starts the client (`exec-server` with `args`) under `sh`, which reports the terminal
    /// settings before and after it and its exit status (see [`Terminal::finish`]).
    fn client(rows: u16, cols: u16, args: &[&str]) -> Terminal {
        let script = r#"printf 'before=%s\n' "$(stty -g)"; "$@"; status=$?; printf 'after=%s status=%s\n' "$(stty -g)" "$status""#;
        let mut argv: Vec<String> = ["sh", "-c", script, "sh", env!("CARGO_BIN_EXE_exec-server")]
            .iter()
            .map(|s| s.to_string())
            .collect();
        argv.extend(args.iter().map(|s| s.to_string()));
        Terminal::start(rows, cols, &argv)
    }

    /// `run --tty` of an interactive bash with [`PROMPT`], here or on `url`.
    fn shell(rows: u16, cols: u16, url: Option<&str>) -> Terminal {
        let mut args = vec!["run", "--tty"];
        if let Some(url) = url {
            args.extend(["--url", url]);
        }
        args.extend([
            "--env",
            "PS1=READY> ",
            "--env",
            "HISTFILE=/dev/null",
            "--",
            "bash",
            "--norc",
            "--noprofile",
        ]);
        Terminal::client(rows, cols, &args)
    }

    async fn type_keys(&mut self, keys: &str) {
        within("typing", async {
            self.writer.write_all(keys.as_bytes()).await?;
            self.writer.flush().await
        })
        .await
        .expect("write to the terminal");
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// Waits until `expected` appears after the last thing waited for, and returns what came
    /// before it.
    async fn wait_for(&mut self, expected: &str) -> String {
        let found = async {
            loop {
                let text = self.text();
                if let Some(at) = text[self.cursor.min(text.len())..].find(expected) {
                    return (text, self.cursor + at);
                }
                if self.grown.changed().await.is_err() {
                    // The reader is done: the output will not grow any more.
                    let text = self.text();
                    panic!("the terminal closed without showing {expected:?}; it showed:\n{text}");
                }
            }
        };
        let (text, at) = match tokio::time::timeout(STEP, found).await {
            Ok(found) => found,
            Err(_) => panic!(
                "timed out waiting for {expected:?}; the terminal showed:\n{}",
                self.text()
            ),
        };
        let before = text[self.cursor..at].to_owned();
        self.cursor = at + expected.len();
        before
    }

    /// Waits for the client to end; returns its exit status, after checking that the
    /// terminal's settings are what they were before it.
    async fn finish(&mut self) -> i32 {
        self.wait_for("after=").await;
        let line = self.wait_for("\n").await;
        let (after, status) = line
            .trim_end()
            .split_once(" status=")
            .expect("sh's after= line");
        let text = self.text();
        let before = text
            .split("before=")
            .nth(1)
            .and_then(|rest| rest.lines().next())
            .expect("sh's before= line");
        assert_eq!(
            before.trim_end(),
            after,
            "the terminal settings changed; the terminal showed:\n{text}"
        );
        within("the client's shell to exit", self.child.wait())
            .await
            .expect("wait for sh");
        status.parse().expect("a numeric exit status")
    }

    /// The pid of the client, the only child of the `sh` that [`Terminal::client`] started.
    fn client_pid(&self) -> i32 {
        let sh = self.child.id().expect("sh is running");
        let children = std::fs::read_to_string(format!("/proc/{sh}/task/{sh}/children"))
            .expect("read sh's children");
        children
            .split_whitespace()
            .next()
            .and_then(|pid| pid.parse().ok())
            .expect("sh has a child")
    }

    fn resize(&self, rows: u16, cols: u16) {
        self.writer
            .resize(pty_process::Size::new(rows, cols))
            .expect("resize the terminal");
    }
}

/// A server for the remote half.
fn server(target: Target) -> Option<ServerProcess> {
    (target == Target::Remote).then(|| ServerProcess::start(&[]))
}

fn url(server: &Option<ServerProcess>) -> Option<&str> {
    server.as_ref().map(|s| s.url.as_str())
}

/// The local terminal is in raw mode, so a typed line is echoed once, by the remote
/// terminal; the command's exit code is the client's.
async fn typed_line_appears_once_and_exit_code_passes(target: Target) {
    let server = server(target);
    let mut term = Terminal::shell(24, 80, url(&server));
    term.wait_for(PROMPT).await;
    term.type_keys("echo $((6*7))\r").await;
    term.wait_for("42\r\n").await;
    term.wait_for(PROMPT).await;
    let typed = term.text().matches("echo $((6*7))").count();
    assert_eq!(
        typed,
        1,
        "the typed line was shown {typed} times:\n{}",
        term.text()
    );
    term.type_keys("exit 7\r").await;
    assert_eq!(term.finish().await, 7);
}

/// The remote terminal starts at the local size and follows each resize.
async fn window_size_follows_the_terminal(target: Target) {
    let server = server(target);
    let mut term = Terminal::shell(30, 100, url(&server));
    term.wait_for(PROMPT).await;
    term.type_keys("stty size\r").await;
    term.wait_for("30 100\r\n").await;
    term.wait_for(PROMPT).await;
    // The trap shows when the resize has reached the remote shell.
    term.type_keys("trap 'echo WINCH $(stty size)' WINCH\r")
        .await;
    term.wait_for(PROMPT).await;
    term.resize(25, 90);
    term.wait_for("WINCH 25 90").await;
    term.type_keys("stty size\r").await;
    term.wait_for("25 90\r\n").await;
    term.wait_for(PROMPT).await;
    term.type_keys("exit\r").await;
    assert_eq!(term.finish().await, 0);
}

/// Ctrl-C travels as a key: it interrupts the remote command, not the client, and the shell
/// goes on.
async fn ctrl_c_interrupts_the_remote_command(target: Target) {
    let server = server(target);
    let mut term = Terminal::shell(24, 80, url(&server));
    term.wait_for(PROMPT).await;
    // `exec` makes the sleep the process that printed, so it is running once this shows.
    term.type_keys("sh -c 'echo sleeping; exec sleep 300'\r")
        .await;
    term.wait_for("sleeping\r\n").await;
    term.type_keys("\x03").await;
    term.wait_for(PROMPT).await;
    term.type_keys("echo status=$?\r").await;
    term.wait_for("status=130\r\n").await;
    term.wait_for(PROMPT).await;
    term.type_keys("exit 3\r").await;
    assert_eq!(term.finish().await, 3);
}

/// `~.` ends the run from this side alone, and the terminal is restored. Through a server
/// the command is left running, with the ids to resume it; here it is stopped.
async fn escape_disconnects(target: Target) {
    let server = server(target);
    let mut term = Terminal::shell(24, 80, url(&server));
    term.wait_for(PROMPT).await;
    // `~?` is for the client: the help shows, and nothing reaches the shell.
    term.type_keys("~?").await;
    term.wait_for("~.   - disconnect").await;
    term.type_keys("~.").await;
    let status = term.finish().await;
    assert_eq!(status, 255);
    let text = term.text();
    match target {
        Target::Remote => assert!(text.contains("exec-server attach --url"), "{text}"),
        Target::Local => assert!(text.contains("it was stopped"), "{text}"),
    }
}

/// A full-screen program draws within the terminal's size: vi's screen, rebuilt from what
/// reached the terminal, wraps a long line at the terminal's width, fills its height, and
/// right-aligns its ruler on the last line. (The terminal has this size from the start:
/// `ttySize`.)
async fn full_screen_program_fits(target: Target) {
    let server = server(target);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("wide.txt");
    let long_line: String = (0..150)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let mut content = format!("{long_line}\n");
    for n in 2..=60 {
        content.push_str(&format!("line {n}\n"));
    }
    std::fs::write(&file, content).expect("write the file");
    let (rows, cols) = (12, 50);
    let file_arg = file.to_str().expect("utf-8 path");
    let mut args = vec!["run", "--tty"];
    if let Some(url) = url(&server) {
        args.extend(["--url", url]);
    }
    // The ruler sits at a place that depends on the width, and unlike the file message it
    // survives the redraw after a resize.
    args.extend(["--", "vi", "-u", "NONE", "-n", "-c", "set ruler", file_arg]);
    let mut term = Terminal::client(rows, cols, &args);
    let expected: Vec<String> = {
        let mut rows_of_text: Vec<String> = long_line
            .as_bytes()
            .chunks(usize::from(cols))
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        let wrapped = rows_of_text.len();
        rows_of_text.extend(
            (2..)
                .take(usize::from(rows) - 1 - wrapped)
                .map(|n| format!("line {n}")),
        );
        rows_of_text
    };
    let screen_lines = |output: &[u8]| -> Vec<String> {
        let mut parser = vt100::Parser::new(rows, cols, 0);
        parser.process(output);
        parser
            .screen()
            .rows(0, cols)
            .map(|line| line.trim_end().to_owned())
            .collect()
    };
    let drawn = async {
        loop {
            let lines = screen_lines(&term.output.lock().unwrap());
            let (text_rows, status_line) = lines.split_at(usize::from(rows) - 1);
            let ruler_fits = status_line[0].ends_with("Top") && status_line[0].contains("1,1");
            if text_rows == expected && ruler_fits {
                return;
            }
            term.grown.changed().await.expect("the terminal is open");
        }
    };
    if tokio::time::timeout(STEP, drawn).await.is_err() {
        let lines = screen_lines(&term.output.lock().unwrap());
        panic!(
            "vi did not draw its screen at {rows}x{cols}; the screen shows:\n{}\nfrom:\n{:?}",
            lines.join("\n"),
            term.text()
        );
    }
    term.type_keys("\x1b:q!\r").await;
    assert_eq!(term.finish().await, 0);
}

/// SIGTERM or SIGHUP to the client: it passes the signal on, restores the terminal, and
/// exits as a shell reports a death by that signal.
async fn signals_restore_the_terminal(target: Target) {
    let server = server(target);
    for (signal, name) in [(libc::SIGTERM, "SIGTERM"), (libc::SIGHUP, "SIGHUP")] {
        let mut term = Terminal::shell(24, 80, url(&server));
        term.wait_for(PROMPT).await;
        let client = term.client_pid();
        // SAFETY: kill(2) with a pid the test started, no memory involved.
        assert_eq!(unsafe { libc::kill(client, signal) }, 0, "kill {client}");
        assert_eq!(term.finish().await, 128 + signal);
        let text = term.text();
        assert!(text.contains(&format!("{name} received")), "{text}");
    }
}

both_targets! {
    typed_line => crate::typed_line_appears_once_and_exit_code_passes;
    window_size => crate::window_size_follows_the_terminal;
    ctrl_c => crate::ctrl_c_interrupts_the_remote_command;
    escape => crate::escape_disconnects;
    full_screen => crate::full_screen_program_fits;
    signals => crate::signals_restore_the_terminal;
}

/// The server dies mid-run: the client says the connection is gone, and the terminal is
/// restored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_server_restores_the_terminal() {
    let mut server = ServerProcess::start(&[]);
    let mut term = Terminal::shell(24, 80, Some(&server.url));
    term.wait_for(PROMPT).await;
    server.stop();
    let status = term.finish().await;
    assert_eq!(status, 1);
    let text = term.text();
    // Told at once, and again when resuming fails.
    assert!(
        text.contains("lost the connection to the server; reconnecting (~. to leave)"),
        "no notice of the drop:\n{text}"
    );
    assert!(
        text.contains("lost the connection to exec-server at"),
        "no clear message:\n{text}"
    );
}

/// `attach` resumes the session a `~.` left, replays the retained output, and goes on live
/// with the terminal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_resumes_the_terminal() {
    let server = ServerProcess::start(&[]);
    let mut term = Terminal::shell(24, 80, Some(&server.url));
    term.wait_for(PROMPT).await;
    term.type_keys("echo marker-$((40+2))\r").await;
    term.wait_for("marker-42\r\n").await;
    term.wait_for(PROMPT).await;
    term.type_keys("~.").await;
    assert_eq!(term.finish().await, 255);
    let text = term.text();
    let command = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("exec-server attach "))
        .expect("the attach command in the message");
    let attach_args: Vec<&str> = std::iter::once("attach")
        .chain(command.split_whitespace())
        .collect();

    let mut again = Terminal::client(24, 80, &attach_args);
    // The replay: the earlier command and its output, from the retained output.
    again.wait_for("echo marker-$((40+2))").await;
    again.wait_for("marker-42\r\n").await;
    again.wait_for(PROMPT).await;
    // And live: the same shell takes keys.
    again.type_keys("echo live-$((2*3))\r").await;
    again.wait_for("live-6\r\n").await;
    again.type_keys("exit 5\r").await;
    assert_eq!(again.finish().await, 5);
}
