//! The watchdog: a small process that kills the server's process groups if the server dies
//! without doing it itself (SIGKILL, OOM kill, crash).
//!
//! Each child already gets `PR_SET_PDEATHSIG(SIGKILL)`, but that does not reach grandchildren.
//! So the server starts the watchdog (its own binary, re-executed with a hidden argument) with
//! a pipe on its stdin and reports every process group on it (`+PGID`, `-PGID`). When the
//! server dies the kernel closes the pipe; the watchdog reads end of file, kills every group
//! still registered, and exits. After a graceful shutdown the server sends `disarm` first.

use exec_server_environment::local::GroupWatcher;
use std::collections::BTreeSet;
use std::io::{self, BufRead, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::Mutex;

/// The hidden argument that makes the binary run [`run_watchdog`].
pub const WATCHDOG_ARG: &str = "__exec-server-watchdog";

/// The server's end of the pipe to its watchdog.
#[derive(Debug)]
pub struct Watchdog {
    pipe: Mutex<Option<ChildStdin>>,
}

impl Watchdog {
    /// Starts the watchdog: `exe` re-executed with [`WATCHDOG_ARG`].
    pub fn spawn(exe: &Path) -> io::Result<Watchdog> {
        let mut child = Command::new(exe)
            .arg(WATCHDOG_ARG)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            // Its own group, so a Ctrl-C aimed at the server's group does not stop it early.
            .process_group(0)
            .spawn()?;
        let pipe = child.stdin.take().expect("stdin is piped");
        // The watchdog outlives us by design; it exits on its own when the pipe closes.
        drop(child);
        Ok(Watchdog {
            pipe: Mutex::new(Some(pipe)),
        })
    }

    fn send(&self, line: &str) {
        let mut pipe = self.pipe.lock().expect("watchdog lock poisoned");
        if let Some(p) = pipe.as_mut() {
            // A few bytes into a pipe nobody else writes: this does not block in practice.
            if let Err(e) = writeln!(p, "{line}") {
                tracing::error!("the watchdog is gone ({e}); a server crash would leak processes");
                *pipe = None;
            }
        }
    }

    /// Graceful shutdown: the server has killed its groups itself.
    pub fn disarm(&self) {
        self.send("disarm");
        self.pipe.lock().expect("watchdog lock poisoned").take();
    }
}

impl GroupWatcher for Watchdog {
    fn group_started(&self, pgid: i32) {
        self.send(&format!("+{pgid}"));
    }

    fn group_released(&self, pgid: i32) {
        self.send(&format!("-{pgid}"));
    }
}

/// The watchdog's main: track groups from stdin; at end of file, kill them.
pub fn run_watchdog() -> io::Result<()> {
    let mut groups = BTreeSet::new();
    for line in io::stdin().lock().lines() {
        let line = line?;
        if line == "disarm" {
            return Ok(());
        }
        let (sign, pgid) = line.split_at(1.min(line.len()));
        match (sign, pgid.parse::<i32>()) {
            ("+", Ok(pgid)) if pgid > 1 => {
                groups.insert(pgid);
            }
            ("-", Ok(pgid)) => {
                groups.remove(&pgid);
            }
            _ => {}
        }
    }
    for pgid in groups {
        // SAFETY: kill has no memory effects.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    }
    Ok(())
}
