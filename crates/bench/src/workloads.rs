//! The measured workloads. Each opens its own connection (so its own session, and its own
//! process limit), drives the server through the client library's `ProcessBackend`, checks
//! that the work was done correctly, and returns its table rows.

use crate::baseline::{self, spawn_and_wait, SpawnKind};
use crate::machine::cpu_time;
use crate::report::{Goal, Row, Value};
use crate::stats::{format_duration, Samples};
use anyhow::{bail, ensure, Context};
use bytes::Bytes;
use exec_server_client::{environment, ClientOptions, ExecServerClient};
use exec_server_environment::{ProcessBackend, ProcessEvent, ProcessEvents};
use exec_server_protocol::process::{OutputStream, ReadParams, StartParams, WriteStatus};
use exec_server_protocol::AbsolutePath;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the pipelined-start workload may take before it is reported as stalled.
const CONCURRENT_DEADLINE: Duration = Duration::from_secs(60);

/// The server under test.
pub struct Target {
    pub url: String,
    /// Set when this bench started the server: its CPU time is then reported.
    pub server_pid: Option<u32>,
    /// Also measure the same work locally without a server (floors and ceilings).
    pub baselines: bool,
}

impl Target {
    pub fn new(url: String, server_pid: Option<u32>, baselines: bool) -> Target {
        Target {
            url,
            server_pid,
            baselines,
        }
    }

    async fn connect(&self) -> anyhow::Result<(ExecServerClient, Arc<dyn ProcessBackend>)> {
        let options = ClientOptions {
            client_name: "exec-server-bench".to_owned(),
            ..ClientOptions::default()
        };
        let client = ExecServerClient::connect(&self.url, options)
            .await
            .with_context(|| format!("connecting to {}", self.url))?;
        let processes = environment(client.clone()).processes().clone();
        Ok((client, processes))
    }
}

/// An absolute path for `name`, found in this machine's PATH (the server runs on loopback, so
/// on this machine), so that the child needs no PATH lookup of its own.
fn program(name: &str) -> String {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| format!("/bin/{name}"))
}

fn start_params(process_id: &str, argv: &[&str], tty: bool, pipe_stdin: bool) -> StartParams {
    let env = BTreeMap::from([
        ("PATH".to_owned(), "/usr/local/bin:/usr/bin:/bin".to_owned()),
        ("LC_ALL".to_owned(), "C".to_owned()),
    ]);
    StartParams {
        process_id: process_id.to_owned(),
        argv: argv.iter().map(|s| (*s).to_owned()).collect(),
        cwd: AbsolutePath::parse("/").expect("/ is absolute"),
        env_policy: None,
        env,
        tty,
        pipe_stdin,
        arg0: None,
        timeout_ms: None,
        sandbox: None,
        enforce_managed_network: false,
        managed_network: None,
        network_proxy: None,
        tty_size: None,
    }
}

/// Everything a process's event stream delivered.
#[derive(Debug, Default)]
struct Outcome {
    stdout: u64,
    stderr: u64,
    pty: u64,
    output_events: u64,
    captured: Vec<u8>,
    exit: Option<(i32, Option<i32>)>,
    closed: bool,
    failure: Option<String>,
    seq_errors: u64,
    /// The first discontinuity: (expected seq, received seq).
    first_seq_error: Option<(u64, u64)>,
}

impl Outcome {
    /// Closed after a clean exit 0, with contiguous seqs.
    fn ensure_clean(&self, what: &str) -> anyhow::Result<()> {
        if let Some(f) = &self.failure {
            bail!("{what}: event stream failed: {f}");
        }
        ensure!(
            self.closed,
            "{what}: event stream ended without process/closed"
        );
        ensure!(
            self.exit == Some((0, None)),
            "{what}: exited with {:?}, expected 0",
            self.exit
        );
        if let Some((expected, got)) = self.first_seq_error {
            bail!(
                "{what}: {} seq discontinuities, the first: seq {got} where {expected} was due",
                self.seq_errors
            );
        }
        Ok(())
    }
}

/// Consumes events until `closed` (or a failure), counting output bytes per stream.
async fn drain(events: &mut ProcessEvents, capture: bool) -> Outcome {
    let mut outcome = Outcome::default();
    let mut expected_seq = 1;
    let mut check_seq = |seq: u64, outcome: &mut Outcome| {
        if seq != expected_seq {
            outcome.seq_errors += 1;
            outcome.first_seq_error.get_or_insert((expected_seq, seq));
        }
        expected_seq = seq + 1;
    };
    while let Some(event) = events.next().await {
        match event {
            ProcessEvent::Output { seq, stream, chunk } => {
                check_seq(seq, &mut outcome);
                outcome.output_events += 1;
                let n = chunk.len() as u64;
                match stream {
                    OutputStream::Stdout => outcome.stdout += n,
                    OutputStream::Stderr => outcome.stderr += n,
                    OutputStream::Pty => outcome.pty += n,
                }
                if capture {
                    outcome.captured.extend_from_slice(&chunk);
                }
            }
            ProcessEvent::Exited {
                seq,
                exit_code,
                signal,
                ..
            } => {
                check_seq(seq, &mut outcome);
                outcome.exit = Some((exit_code, signal));
            }
            ProcessEvent::Closed { seq } => {
                check_seq(seq, &mut outcome);
                outcome.closed = true;
                break;
            }
            ProcessEvent::Failed { message } => {
                outcome.failure = Some(message);
                break;
            }
            ProcessEvent::Gap { from_seq, to_seq } => {
                outcome.failure = Some(format!("output seqs {from_seq}..={to_seq} were lost"));
                break;
            }
        }
    }
    outcome
}

fn warmup_for(iterations: usize, max: usize) -> usize {
    (iterations / 10).clamp(3, max)
}

/// process/start to process/closed of `/bin/true`, one after another.
pub async fn exec_latency(target: &Target, iterations: usize) -> anyhow::Result<Vec<Row>> {
    let (samples, note) = exec_samples(target, iterations, target.baselines).await?;
    Ok(vec![
        Row::new(
            "exec latency p50 (/bin/true, start to closed)",
            Value::Time(samples.p50()),
            Goal::Under(Duration::from_millis(1)),
            "48 ms (5.8 ms without the ACK stall)",
        )
        .with_note(note),
        Row::new(
            "exec latency p99",
            Value::Time(samples.p99()),
            Goal::None,
            "",
        ),
    ])
}

/// The same, on a server that has just run the pipelined starts (its memory has grown).
pub async fn exec_latency_after_burst(
    target: &Target,
    iterations: usize,
) -> anyhow::Result<Vec<Row>> {
    let (samples, note) = exec_samples(target, iterations, false).await?;
    Ok(vec![Row::new(
        "exec latency p50, right after the pipelined starts",
        Value::Time(samples.p50()),
        Goal::Under(Duration::from_millis(1)),
        "",
    )
    .with_note(note)])
}

/// The server's resident memory, when it runs on this machine and this bench started it.
fn server_rss(target: &Target) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", target.server_pid?)).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    Some(line.trim_start_matches("VmRSS:").trim().to_owned())
}

async fn exec_samples(
    target: &Target,
    iterations: usize,
    baselines: bool,
) -> anyhow::Result<(Samples, String)> {
    let (_client, processes) = target.connect().await?;
    let true_bin = if std::path::Path::new("/bin/true").is_file() {
        "/bin/true".to_owned()
    } else {
        program("true")
    };
    let warmup = warmup_for(iterations, 20);
    let mut total = Vec::with_capacity(iterations);
    let mut replies = Vec::with_capacity(iterations);
    for i in 0..warmup + iterations {
        let id = format!("exec-{i}");
        let params = start_params(&id, &[&true_bin], false, false);
        let t = Instant::now();
        let mut started = processes.start(params).await.context("process/start")?;
        let replied = t.elapsed();
        let outcome = drain(&mut started.events, false).await;
        let elapsed = t.elapsed();
        outcome.ensure_clean(&id)?;
        if i >= warmup {
            total.push(elapsed);
            replies.push(replied);
        }
    }
    let total = Samples::new(total);
    let replies = Samples::new(replies);
    let mut note = format!(
        "process/start reply p50 {}, p99 {}",
        format_duration(replies.p50()),
        format_duration(replies.p99()),
    );
    if let Some(rss) = server_rss(target) {
        note += &format!("; server resident memory {rss}");
    }
    if baselines {
        let program = true_bin.clone();
        let (spawn, fork) = blocking(move || {
            let warmup = warmup_for(iterations, 20);
            let spawn = spawn_and_wait(&program, SpawnKind::PosixSpawn, iterations, warmup)?;
            let fork = spawn_and_wait(&program, SpawnKind::Fork, iterations, warmup)?;
            Ok((Samples::new(spawn), Samples::new(fork)))
        })
        .await?;
        note += &format!(
            "; local floor, spawn and wait of {true_bin} by this bench without a server: \
             posix_spawn p50 {} (p99 {}), fork+exec p50 {} (p99 {})",
            format_duration(spawn.p50()),
            format_duration(spawn.p99()),
            format_duration(fork.p50()),
            format_duration(fork.p99()),
        );
    }
    Ok((total, note))
}

/// Runs a blocking baseline off the runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .context("baseline task panicked")?
}

/// `bytes` of /dev/zero through `process/output` notifications, every byte counted.
pub async fn output_throughput(target: &Target, bytes: u64, tty: bool) -> anyhow::Result<Vec<Row>> {
    let (_client, processes) = target.connect().await?;
    let head = program("head");
    let count = bytes.to_string();
    let id = if tty { "output-pty" } else { "output-pipes" };
    // /dev/zero has no newline, so a PTY's output processing (ONLCR) leaves it unchanged.
    let params = start_params(id, &[&head, "-c", &count, "/dev/zero"], tty, false);

    let server_cpu = target.server_pid.and_then(|pid| cpu_time(Some(pid)));
    let client_cpu = cpu_time(None);
    let t = Instant::now();
    let mut started = processes.start(params).await.context("process/start")?;
    let outcome = drain(&mut started.events, false).await;
    let elapsed = t.elapsed();
    let server_cpu = target
        .server_pid
        .and_then(|pid| cpu_time(Some(pid)))
        .zip(server_cpu)
        .map(|(after, before)| after.saturating_sub(before));
    let client_cpu = cpu_time(None)
        .zip(client_cpu)
        .map(|(after, before)| after.saturating_sub(before));

    let (metric, goal, codex) = if tty {
        ("output throughput, PTY", 300.0, "92 MiB/s")
    } else {
        ("output throughput, pipes", 600.0, "264 MiB/s")
    };
    let (received, stray) = if tty {
        (outcome.pty, outcome.stdout + outcome.stderr)
    } else {
        (outcome.stdout, outcome.stderr + outcome.pty)
    };
    let secs = elapsed.as_secs_f64();
    // Every byte must arrive: a lost or extra byte makes the figure a failure, but the rate
    // is still shown (a server that drops output looks fast).
    let mut problems = Vec::new();
    if let Err(e) = outcome.ensure_clean(id) {
        problems.push(format!("{e:#}"));
    }
    if received != bytes || stray != 0 {
        problems.push(format!(
            "received {received} of {bytes} bytes (+{stray} on other streams)"
        ));
    }
    if !problems.is_empty() {
        let reason = format!(
            "{} MB/s counted, but {}",
            (received as f64 / secs / 1e6).round(),
            problems.join("; ")
        );
        return Ok(vec![Row::new(
            metric,
            Value::Failed(reason),
            Goal::None,
            codex,
        )]);
    }

    let mut note = format!(
        "{} MiB in {:.3} s, {} process/output notifications (avg {:.1} KiB of payload)",
        bytes >> 20,
        secs,
        outcome.output_events,
        bytes as f64 / outcome.output_events.max(1) as f64 / 1024.0,
    );
    let cpu_share = |cpu: Duration| 100.0 * cpu.as_secs_f64() / secs;
    if let Some(cpu) = server_cpu {
        note += &format!(
            "; server CPU {:.2} s ({:.0}% of one core)",
            cpu.as_secs_f64(),
            cpu_share(cpu)
        );
    }
    if let Some(cpu) = client_cpu {
        note += &format!(
            "; bench client CPU {:.2} s ({:.0}%)",
            cpu.as_secs_f64(),
            cpu_share(cpu)
        );
    }
    if target.baselines {
        let head = head.clone();
        let local = blocking(move || baseline::read_output(&head, bytes, tty)).await?;
        note += &format!(
            "; local floor, this bench reading the same {} directly: {:.0} MB/s",
            if tty { "PTY master" } else { "pipe" },
            bytes as f64 / local.as_secs_f64() / 1e6
        );
    }
    Ok(vec![Row::new(
        metric,
        Value::rate(bytes, elapsed),
        Goal::AtLeastMbS(goal),
        codex,
    )
    .with_note(note)])
}

/// A short line written to `cat` (pipeStdin) until its echo arrives as process/output.
pub async fn echo_round_trip(target: &Target, iterations: usize) -> anyhow::Result<Vec<Row>> {
    let (_client, processes) = target.connect().await?;
    let id = "echo-cat";
    let cat = program("cat");
    let mut started = processes
        .start(start_params(id, &[&cat], false, true))
        .await
        .context("process/start")?;
    let events = &mut started.events;

    let warmup = warmup_for(iterations, 100);
    let mut echoes = Vec::with_capacity(iterations);
    let mut write_replies = Vec::with_capacity(iterations);
    for i in 0..warmup + iterations {
        let line = format!("line {i:08}\n");
        let expected = line.len();
        let t = Instant::now();
        let write = async {
            let status = processes.write(id, Bytes::from(line.clone())).await;
            (status, t.elapsed())
        };
        let echo = async {
            let mut got = Vec::with_capacity(expected);
            while got.len() < expected {
                match events.next().await {
                    Some(ProcessEvent::Output { chunk, .. }) => got.extend_from_slice(&chunk),
                    other => bail!("waiting for the echo of line {i}, got {other:?}"),
                }
            }
            Ok((got, t.elapsed()))
        };
        let ((status, replied), echoed) = tokio::join!(write, echo);
        let status = status.context("process/write")?;
        ensure!(
            status == WriteStatus::Accepted,
            "process/write answered {status:?}"
        );
        let (got, elapsed) = echoed?;
        ensure!(
            got == line.as_bytes(),
            "echo mismatch: wrote {line:?}, read {:?}",
            String::from_utf8_lossy(&got)
        );
        if i >= warmup {
            echoes.push(elapsed);
            write_replies.push(replied);
        }
    }
    processes.terminate(id).await.context("process/terminate")?;
    let _ = drain(events, false).await;

    let echoes = Samples::new(echoes);
    let replies = Samples::new(write_replies);
    let mut note = format!(
        "process/write reply p50 {}, p99 {} (sent together with the wait for the echo)",
        format_duration(replies.p50()),
        format_duration(replies.p99())
    );
    if target.baselines {
        let (cat, n) = (cat.clone(), iterations);
        let (pipe, tcp) = blocking(move || {
            let pipe = baseline::pipe_echo(&cat, n, warmup_for(n, 100))?;
            let tcp = baseline::tcp_ping_pong(n, warmup_for(n, 100))?;
            Ok((Samples::new(pipe), Samples::new(tcp)))
        })
        .await?;
        note += &format!(
            "; local floors, no server: the same line through a local cat p50 {}, plus a \
             loopback TCP round trip p50 {} (their sum is the floor)",
            format_duration(pipe.p50()),
            format_duration(tcp.p50())
        );
    }
    Ok(vec![
        Row::new(
            "stdin echo round trip p50 (cat)",
            Value::Time(echoes.p50()),
            Goal::Under(Duration::from_micros(60)),
            "44 ms (0.12 ms without the ACK stall)",
        )
        .with_note(note),
        Row::new(
            "stdin echo round trip p99",
            Value::Time(echoes.p99()),
            Goal::None,
            "",
        ),
    ])
}

/// Minimal requests, one at a time: `process/read` (waitMs 0) of an exited process, and
/// `process/terminate` of an unknown id.
pub async fn rpc_round_trip(target: &Target, iterations: usize) -> anyhow::Result<Vec<Row>> {
    let (_client, processes) = target.connect().await?;
    let id = "rpc-exited";
    let mut started = processes
        .start(start_params(id, &[&program("true")], false, false))
        .await
        .context("process/start")?;
    drain(&mut started.events, false).await.ensure_clean(id)?;

    let warmup = warmup_for(iterations, 200);
    let read = ReadParams {
        process_id: id.to_owned(),
        after_seq: None,
        max_bytes: None,
        wait_ms: Some(0),
    };
    let mut reads = Vec::with_capacity(iterations);
    for i in 0..warmup + iterations {
        let t = Instant::now();
        let response = processes.read(read.clone()).await.context("process/read")?;
        let elapsed = t.elapsed();
        ensure!(response.exited, "process/read: {id} is not reported exited");
        if i >= warmup {
            reads.push(elapsed);
        }
    }
    let mut terminates = Vec::with_capacity(iterations);
    for i in 0..warmup + iterations {
        let t = Instant::now();
        let running = processes
            .terminate("rpc-no-such-process")
            .await
            .context("process/terminate")?;
        let elapsed = t.elapsed();
        ensure!(
            !running,
            "process/terminate of an unknown id answered running"
        );
        if i >= warmup {
            terminates.push(elapsed);
        }
    }
    let reads = Samples::new(reads);
    let terminates = Samples::new(terminates);
    let mut note = format!(
        "process/read p99 {}; process/terminate of an unknown id p50 {}, p99 {}",
        format_duration(reads.p99()),
        format_duration(terminates.p50()),
        format_duration(terminates.p99())
    );
    if target.baselines {
        let tcp = blocking(move || {
            baseline::tcp_ping_pong(iterations, warmup_for(iterations, 200)).map(Samples::new)
        })
        .await?;
        note += &format!(
            "; local floor, a 64-byte loopback TCP round trip between two threads of this \
             bench (no websocket, no JSON): p50 {}, p99 {}",
            format_duration(tcp.p50()),
            format_duration(tcp.p99())
        );
    }
    Ok(vec![
        Row::new(
            "RPC round trip p50 (process/read waitMs 0)",
            Value::Time(reads.p50()),
            Goal::Under(Duration::from_micros(50)),
            "",
        )
        .with_note(note),
        Row::new(
            "RPC round trip p50 (process/terminate, unknown id)",
            Value::Time(terminates.p50()),
            Goal::Under(Duration::from_micros(50)),
            "",
        ),
    ])
}

/// `count` processes of `sh -c 'sleep 1; echo ok'`, every start request sent before any
/// reply is awaited; wall time until all of them closed with exit 0 and printed `ok`.
pub async fn concurrent_starts(target: &Target, count: usize) -> anyhow::Result<Vec<Row>> {
    let (_client, processes) = target.connect().await?;
    let sh = program("sh");
    let acked = Arc::new(AtomicUsize::new(0));
    let succeeded = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let runs = (0..count).map(|i| {
        let processes = processes.clone();
        let acked = acked.clone();
        let succeeded = succeeded.clone();
        let sh = sh.clone();
        async move {
            let id = format!("concurrent-{i}");
            let params = start_params(&id, &[&sh, "-c", "sleep 1; echo ok"], false, false);
            let mut started = processes
                .start(params)
                .await
                .map_err(|e| format!("{id}: process/start: {e}"))?;
            let replied = t0.elapsed();
            acked.fetch_add(1, Ordering::Relaxed);
            let outcome = drain(&mut started.events, true).await;
            let closed = t0.elapsed();
            outcome.ensure_clean(&id).map_err(|e| e.to_string())?;
            if outcome.captured != b"ok\n" {
                return Err(format!(
                    "{id}: printed {:?}, expected \"ok\\n\"",
                    String::from_utf8_lossy(&outcome.captured)
                ));
            }
            succeeded.fetch_add(1, Ordering::Relaxed);
            Ok::<_, String>((replied, closed))
        }
    });
    // join_all polls every future once before waiting: all requests are queued at once.
    let all = futures::future::join_all(runs);
    let metric = format!("{count} pipelined starts, wall until all closed ok");
    let goal = Goal::Under(Duration::from_millis(1500));
    let codex = "wedges (4.5 s at 128 in flight)";
    let results = match tokio::time::timeout(CONCURRENT_DEADLINE, all).await {
        Ok(results) => results,
        Err(_) => {
            let acked = acked.load(Ordering::Relaxed);
            let succeeded = succeeded.load(Ordering::Relaxed);
            let reason = format!(
                "stalled: after {} s, {acked} of {count} start replies, {succeeded} closed ok",
                CONCURRENT_DEADLINE.as_secs()
            );
            return Ok(vec![Row::new(&metric, Value::Failed(reason), goal, codex)]);
        }
    };
    let wall = t0.elapsed();
    let mut failures = Vec::new();
    let mut last_reply = Duration::ZERO;
    let mut first_close = Duration::MAX;
    for result in &results {
        match result {
            Ok((replied, closed)) => {
                last_reply = last_reply.max(*replied);
                first_close = first_close.min(*closed);
            }
            Err(e) => failures.push(e.clone()),
        }
    }
    let mut note = format!(
        "{} of {count} ok; last process/start reply after {}, first close after {}; \
         `sleep 1` is the floor, so the overhead is {}",
        count - failures.len(),
        format_duration(last_reply),
        if first_close == Duration::MAX {
            "-".to_owned()
        } else {
            format_duration(first_close)
        },
        format_duration(wall.saturating_sub(Duration::from_secs(1)))
    );
    if target.baselines {
        let (sh, n) = (sh.clone(), count);
        let (spawned, finished) = blocking(move || baseline::concurrent_sleepers(&sh, n)).await?;
        note += &format!(
            "; local floor, this bench spawning {count} of them directly: all started after {}, \
             all finished after {}",
            format_duration(spawned),
            format_duration(finished)
        );
    }
    if !failures.is_empty() {
        note += &format!(
            "; {} failed, first: {}",
            failures.len(),
            failures
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    let value = if failures.is_empty() {
        Value::Time(wall)
    } else {
        Value::Failed(format!(
            "{} of {count} failed (wall {})",
            failures.len(),
            format_duration(wall)
        ))
    };
    Ok(vec![Row::new(&metric, value, goal, codex).with_note(note)])
}
