//! Shared test support: a real `exec-server` on loopback, and the local/remote switch that
//! lets one scenario run against both environments.
#![allow(dead_code)]

pub mod fs;
pub mod proxy;
pub mod raw;
pub mod rng;

use exec_server_environment::local::ProcessConfig;
use exec_server_environment::Environment;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `process/start` params for `argv` with id `process_id`: cwd `/`, `PATH` the only
/// variable, pipes, stdin `/dev/null`, no timeout. Scenarios change fields from there.
pub fn start_params(process_id: &str, argv: &[&str]) -> exec_server_protocol::process::StartParams {
    exec_server_protocol::process::StartParams {
        process_id: process_id.to_owned(),
        argv: argv.iter().map(|a| a.to_string()).collect(),
        cwd: exec_server_protocol::AbsolutePath::parse("/").expect("/ is absolute"),
        env_policy: None,
        env: std::collections::BTreeMap::from([("PATH".to_owned(), "/usr/bin:/bin".to_owned())]),
        tty: false,
        pipe_stdin: false,
        arg0: None,
        timeout_ms: None,
        sandbox: None,
        enforce_managed_network: false,
        managed_network: None,
        network_proxy: None,
        tty_size: None,
    }
}

/// Every await in these tests is bounded by this.
pub const STEP: Duration = Duration::from_secs(30);

/// Awaits `future`, failing the test (with `what`) if it takes longer than [`STEP`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(STEP, future).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {STEP:?} waiting for {what}"),
    }
}

/// A running `exec-server serve` child, killed on drop.
pub struct ServerProcess {
    child: Child,
    pub url: String,
}

impl ServerProcess {
    /// Starts the real binary on 127.0.0.1:0 with extra `serve` arguments, and reads the URL
    /// it prints as its first stdout line.
    pub fn start(extra_args: &[&str]) -> ServerProcess {
        Self::start_with(extra_args, &[], Stdio::inherit())
    }

    /// Like [`ServerProcess::start`], with extra environment variables and a chosen stderr.
    pub fn start_with(extra_args: &[&str], envs: &[(&str, &str)], stderr: Stdio) -> ServerProcess {
        let server = Self::start_on("ws://127.0.0.1:0", extra_args, envs, stderr);
        assert!(
            server.url.starts_with("ws://127.0.0.1:"),
            "unexpected first line {:?}",
            server.url
        );
        server
    }

    /// Like [`ServerProcess::start`], with extra environment variables for the server.
    pub fn start_with_env(extra_args: &[&str], env: &[(&str, &str)]) -> ServerProcess {
        Self::start_with(extra_args, env, Stdio::inherit())
    }

    /// Starts the server on any `--listen` URL that prints one (every one but stdio).
    pub fn start_on(
        listen: &str,
        extra_args: &[&str],
        envs: &[(&str, &str)],
        stderr: Stdio,
    ) -> ServerProcess {
        Self::start_program(
            std::path::Path::new(env!("CARGO_BIN_EXE_exec-server")),
            listen,
            extra_args,
            envs,
            stderr,
        )
    }

    /// Starts `program` (a copy of the `exec-server` binary) as a server on `listen`.
    pub fn start_program(
        program: &std::path::Path,
        listen: &str,
        extra_args: &[&str],
        envs: &[(&str, &str)],
        stderr: Stdio,
    ) -> ServerProcess {
        let mut child = Command::new(program)
            .args(["serve", "--listen", listen])
            .args(extra_args)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("failed to start exec-server");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("failed to read the server's URL line");
        let url = line.trim().to_owned();
        ServerProcess { child, url }
    }

    /// The server's resident set size, from /proc.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read the server's /proc status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc status");
        kib * 1024
    }

    /// The server's peak resident set size so far (VmHWM), from /proc.
    pub fn peak_rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read the server's /proc status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc status");
        kib * 1024
    }

    /// How many descriptors the server has open.
    pub fn open_descriptors(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("read the server's /proc fd")
            .count()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server and waits for it (so its output is complete).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The exit status, if the server has exited.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the remote half of the suite runs against another implementation (see
/// `scripts/interop-codex.sh`), where this project's additions are absent.
pub fn against_another_server() -> bool {
    std::env::var_os("EXEC_SERVER_TEST_URL").is_some()
}

/// Which implementation a scenario runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Local,
    Remote,
}

/// An environment under test; for remote ones it keeps the server alive.
pub struct TestEnv {
    pub env: Environment,
    pub server: Option<ServerProcess>,
}

impl TestEnv {
    pub async fn new(target: Target) -> TestEnv {
        Self::with_retention(target, None).await
    }

    /// The remote environment of a fresh server started with `serve_args`.
    pub async fn remote(serve_args: &[&str]) -> TestEnv {
        let server = ServerProcess::start(serve_args);
        let env = within(
            "connect",
            exec_server_client::connect_environment(&server.url),
        )
        .await
        .expect("connect to the test server");
        TestEnv {
            env,
            server: Some(server),
        }
    }

    /// With a custom retained-output budget per process.
    pub async fn with_retention(target: Target, retained_output_bytes: Option<usize>) -> TestEnv {
        match target {
            Target::Local => {
                let mut config = ProcessConfig::default();
                if let Some(bytes) = retained_output_bytes {
                    config.retained_output_bytes = bytes;
                }
                TestEnv {
                    env: Environment::local_with(config),
                    server: None,
                }
            }
            Target::Remote => {
                // `scripts/interop-codex.sh` points the remote half of the suite at another
                // server implementation (the codex exec-server) through this variable.
                if let Ok(url) = std::env::var("EXEC_SERVER_TEST_URL") {
                    let env = within("connect", exec_server_client::connect_environment(&url))
                        .await
                        .expect("connect to EXEC_SERVER_TEST_URL");
                    return TestEnv { env, server: None };
                }
                let retention = retained_output_bytes.map(|b| b.to_string());
                let mut args = vec![];
                if let Some(r) = &retention {
                    args.extend(["--retained-output-bytes", r.as_str()]);
                }
                Self::remote(&args).await
            }
        }
    }
}

/// Runs `$name` as two tests, `local` and `remote`, each calling `$body(Target)`.
#[macro_export]
macro_rules! both_targets {
    ($($name:ident => $body:path;)*) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn local() {
                    $body($crate::support::Target::Local).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn remote() {
                    $body($crate::support::Target::Remote).await;
                }
            }
        )*
    };
}
