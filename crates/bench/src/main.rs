//! `exec-server-bench`: measures the process capability of an exec-server over loopback.
//!
//! By default it starts the real server (`exec-server serve --listen ws://127.0.0.1:0`, the
//! binary next to this one in `target/release`) and drives it with the project's own client
//! library, exactly as a harness would. `--url` benches an already running server instead
//! (for example a codex exec-server), `--quick` makes every workload smaller.
//!
//! ```text
//! cargo build --release --workspace && cargo run --release -p exec-server-bench
//! ```

mod baseline;
mod codec;
mod machine;
mod report;
mod server;
mod stats;
mod workloads;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use report::{Report, Row};
use std::path::PathBuf;
use std::time::Duration;

/// Benchmark of an exec-server's process capability over loopback.
#[derive(Parser, Debug)]
#[command(name = "exec-server-bench", version)]
struct Args {
    /// The exec-server binary to start with `serve --listen ws://127.0.0.1:0`. Default: the
    /// `exec-server` next to this binary (build it with `cargo build --release --workspace`).
    #[arg(long, conflicts_with = "url")]
    server_bin: Option<PathBuf>,
    /// Bench an already running server (`ws://HOST:PORT`) instead of starting one.
    #[arg(long)]
    url: Option<String>,
    /// With --url: the pid of that server, when it runs on this machine, so that its CPU time
    /// is reported and not counted as other processes' load.
    #[arg(long, requires = "url")]
    server_pid: Option<u32>,
    /// A smaller run (fewer iterations, 32 MiB of output, 100 concurrent processes).
    #[arg(long)]
    quick: bool,
    /// Run only these workloads (comma separated). Default: all.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Workload>,
    /// Sequential `/bin/true` runs for the exec latency.
    #[arg(long)]
    exec_iterations: Option<usize>,
    /// Bytes of output for each throughput workload (pipes and PTY).
    #[arg(long)]
    output_bytes: Option<u64>,
    /// Lines echoed through `cat` for the stdin round trip.
    #[arg(long)]
    echo_iterations: Option<usize>,
    /// Calls for each RPC round-trip measurement.
    #[arg(long)]
    rpc_iterations: Option<usize>,
    /// Processes started at once by pipelined `process/start` requests.
    #[arg(long)]
    concurrent: Option<usize>,
    /// Repeat every workload this many times and report the median (and the range) of each
    /// figure: useful on a shared or noisy machine.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// On a shared machine: wait before each run until other processes use less than this
    /// percentage of all CPUs, and discard (and redo) a run during which they used more.
    #[arg(long, value_name = "PERCENT")]
    max_other_load: Option<f64>,
    /// Skip the local floors (the same work done by this bench without a server).
    #[arg(long)]
    no_baselines: bool,
    /// Worker threads of the bench's own tokio runtime; 0 = a single-threaded runtime.
    #[arg(long, default_value_t = 0)]
    client_threads: usize,
}

/// One measured workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// process/start to process/closed of /bin/true.
    Exec,
    /// Bulk stdout through pipes.
    Output,
    /// Bulk output through a PTY.
    Pty,
    /// A line written to `cat` and echoed back.
    Echo,
    /// A minimal request/response.
    Rpc,
    /// Many `sleep 1; echo ok` processes started at once.
    Concurrent,
    /// The CPU cost of encoding and decoding one output notification, no I/O.
    Codec,
}

/// The sizes of one run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub exec_iterations: usize,
    pub output_bytes: u64,
    pub echo_iterations: usize,
    pub rpc_iterations: usize,
    pub concurrent: usize,
    pub runs: usize,
    pub quick: bool,
}

impl Plan {
    fn from_args(args: &Args) -> Plan {
        let base = if args.quick {
            Plan {
                exec_iterations: 50,
                output_bytes: 32 << 20,
                echo_iterations: 200,
                rpc_iterations: 500,
                concurrent: 100,
                runs: 1,
                quick: true,
            }
        } else {
            Plan {
                exec_iterations: 200,
                output_bytes: 256 << 20,
                echo_iterations: 2000,
                rpc_iterations: 5000,
                concurrent: 500,
                runs: 1,
                quick: false,
            }
        };
        Plan {
            exec_iterations: args.exec_iterations.unwrap_or(base.exec_iterations).max(1),
            output_bytes: args.output_bytes.unwrap_or(base.output_bytes),
            echo_iterations: args.echo_iterations.unwrap_or(base.echo_iterations).max(1),
            rpc_iterations: args.rpc_iterations.unwrap_or(base.rpc_iterations).max(1),
            concurrent: args.concurrent.unwrap_or(base.concurrent).max(1),
            runs: args.runs.max(1),
            quick: args.quick,
        }
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = if args.client_threads == 0 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.client_threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("exec-server-bench: cannot start a tokio runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("exec-server-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs every selected workload and prints the report. Returns false if a workload failed
/// (a missed target is reported, not a failure).
async fn run(args: Args) -> anyhow::Result<bool> {
    let plan = Plan::from_args(&args);
    let selected = |w: Workload| args.only.is_empty() || args.only.contains(&w);

    let bin = match (&args.url, &args.server_bin) {
        (Some(_), _) => None,
        (None, Some(p)) => Some(p.clone()),
        (None, None) => Some(server::default_binary()?),
    };

    let machine = machine::Machine::describe();
    let mut report = Report::new(machine, plan.clone());
    report.server = match (&bin, &args.url) {
        (Some(bin), _) => format!(
            "{} serve --listen ws://127.0.0.1:0 (a fresh server for each run)",
            bin.display()
        ),
        (None, Some(url)) => format!("{url} (already running)"),
        (None, None) => unreachable!("either a binary or a URL"),
    };
    eprintln!("exec-server-bench: server {}", report.server);

    let max_attempts = if args.max_other_load.is_some() {
        plan.runs * 4
    } else {
        plan.runs
    };
    let mut attempts = 0;
    while report.runs.len() < plan.runs && attempts < max_attempts {
        attempts += 1;
        if let Some(limit) = args.max_other_load {
            wait_for_quiet(limit, args.server_pid).await;
        }
        eprintln!(
            "exec-server-bench: run {} of {}",
            report.runs.len() + 1,
            plan.runs
        );
        // A fresh server per run, so that every run starts from the same state.
        let launched = match &bin {
            Some(bin) => Some(
                server::LaunchedServer::start(bin)
                    .await
                    .with_context(|| format!("failed to start {}", bin.display()))?,
            ),
            None => None,
        };
        let target = match (&launched, &args.url) {
            (Some(l), _) => workloads::Target::new(l.url.clone(), Some(l.pid), !args.no_baselines),
            (None, Some(url)) => {
                workloads::Target::new(url.clone(), args.server_pid, !args.no_baselines)
            }
            (None, None) => unreachable!("either a binary or a URL"),
        };
        let load = machine::ForeignLoad::start(args.server_pid);
        let rows = run_once(&target, &plan, &selected).await;
        let other = load.finish();
        if let Some(launched) = launched {
            launched.stop(Duration::from_secs(5)).await;
        }
        if let (Some(limit), Some(other)) = (args.max_other_load, other) {
            if other > limit {
                eprintln!(
                    "exec-server-bench: discarding the run: other processes used {other:.0}% \
                     of the machine (limit {limit:.0}%)"
                );
                report.discarded += 1;
                continue;
            }
        }
        report.runs.push(rows);
        report.foreign_load.push(other);
    }
    if report.runs.is_empty() {
        anyhow::bail!(
            "no run stayed under --max-other-load in {attempts} attempts: the machine is busy"
        );
    }
    let ok = report.runs.iter().flatten().all(|r| !r.is_failed());
    print!("{}", report.render());
    Ok(ok)
}

/// Waits (up to 10 minutes) until other processes use less than `limit` percent of the
/// machine over a second.
async fn wait_for_quiet(limit: f64, server_pid: Option<u32>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    let mut said = false;
    while std::time::Instant::now() < deadline {
        let load = machine::ForeignLoad::start(server_pid);
        tokio::time::sleep(Duration::from_secs(1)).await;
        match load.finish() {
            Some(other) if other > limit => {
                if !said {
                    eprintln!(
                        "exec-server-bench: waiting for the machine to quiet down (other \
                         processes use {other:.0}%)"
                    );
                    said = true;
                }
            }
            _ => return,
        }
    }
}

/// Every selected workload once. A workload that fails becomes a failed row.
async fn run_once(
    target: &workloads::Target,
    plan: &Plan,
    selected: &dyn Fn(Workload) -> bool,
) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    let mut record = |name: &str, result: anyhow::Result<Vec<Row>>| match result {
        Ok(mut r) => rows.append(&mut r),
        Err(e) => {
            eprintln!("exec-server-bench: {name} failed: {e:#}");
            rows.push(Row::failed(name, &format!("{e:#}")));
        }
    };
    if selected(Workload::Exec) {
        eprintln!(
            "exec-server-bench: exec latency ({} runs)",
            plan.exec_iterations
        );
        record(
            "exec latency",
            workloads::exec_latency(target, plan.exec_iterations).await,
        );
    }
    if selected(Workload::Output) {
        eprintln!(
            "exec-server-bench: output through pipes ({} bytes)",
            plan.output_bytes
        );
        record(
            "output, pipes",
            workloads::output_throughput(target, plan.output_bytes, false).await,
        );
    }
    if selected(Workload::Pty) {
        eprintln!(
            "exec-server-bench: output through a PTY ({} bytes)",
            plan.output_bytes
        );
        record(
            "output, PTY",
            workloads::output_throughput(target, plan.output_bytes, true).await,
        );
    }
    if selected(Workload::Echo) {
        eprintln!(
            "exec-server-bench: stdin echo ({} lines)",
            plan.echo_iterations
        );
        record(
            "stdin echo",
            workloads::echo_round_trip(target, plan.echo_iterations).await,
        );
    }
    if selected(Workload::Rpc) {
        eprintln!(
            "exec-server-bench: RPC round trip ({} calls)",
            plan.rpc_iterations
        );
        record(
            "RPC round trip",
            workloads::rpc_round_trip(target, plan.rpc_iterations).await,
        );
    }
    if selected(Workload::Concurrent) {
        eprintln!("exec-server-bench: {} pipelined starts", plan.concurrent);
        record(
            "pipelined starts",
            workloads::concurrent_starts(target, plan.concurrent).await,
        );
    }
    if selected(Workload::Exec) && selected(Workload::Concurrent) {
        eprintln!(
            "exec-server-bench: exec latency again, after the pipelined starts ({} runs)",
            plan.exec_iterations
        );
        record(
            "exec latency after the burst",
            workloads::exec_latency_after_burst(target, plan.exec_iterations).await,
        );
    }
    if selected(Workload::Codec) {
        eprintln!("exec-server-bench: codec cost per 64 KiB output chunk");
        let iterations = if plan.quick { 300 } else { 2000 };
        let result = tokio::task::spawn_blocking(move || codec::codec_costs(iterations))
            .await
            .map_err(anyhow::Error::from)
            .and_then(|r| r);
        record("codec", result);
    }
    rows
}
