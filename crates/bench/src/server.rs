//! Starting and stopping the server under test.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The `exec-server` binary of this build: next to this binary (`target/release`), else the
/// workspace's `target/release`.
pub fn default_binary() -> anyhow::Result<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
    {
        candidates.push(dir.join("exec-server"));
    }
    candidates.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/release/exec-server")
            .to_path_buf(),
    );
    for candidate in &candidates {
        if candidate.is_file() {
            return Ok(candidate.clone());
        }
    }
    bail!(
        "no exec-server binary found (looked at {}); build it first with \
         `cargo build --release --workspace`, or pass --server-bin PATH or --url URL",
        candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// A server this bench started. Killed when dropped.
pub struct LaunchedServer {
    child: Child,
    pub url: String,
    pub pid: u32,
}

impl LaunchedServer {
    /// Runs `BIN serve --listen ws://127.0.0.1:0` and reads the bound URL from its first
    /// stdout line.
    pub async fn start(bin: &Path) -> anyhow::Result<LaunchedServer> {
        let mut command = Command::new(bin);
        command
            .args(["serve", "--listen", "ws://127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if std::env::var_os("RUST_LOG").is_none() {
            // Keep the report readable; RUST_LOG=... overrides.
            command.env("RUST_LOG", "warn");
        }
        let mut child = command.spawn().context("spawn")?;
        let pid = child.id().context("the server exited at once")?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .context("the server did not print its URL within 10 s")?
            .context("reading the server's stdout")?;
        let Some(url) = first else {
            bail!("the server exited before printing its URL");
        };
        let url = url.trim().to_owned();
        if !url.starts_with("ws://") {
            bail!("unexpected first line from the server: {url:?}");
        }
        // Keep draining stdout, so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(LaunchedServer { child, url, pid })
    }

    /// SIGTERM (graceful shutdown), then SIGKILL after `grace`.
    pub async fn stop(mut self, grace: Duration) {
        if let Ok(pid) = libc::pid_t::try_from(self.pid) {
            // SAFETY: signals our own child, which has not been reaped yet (we hold `child`).
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}
