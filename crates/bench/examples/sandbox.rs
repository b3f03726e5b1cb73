//! Sandboxed filesystem figures:
//! - the latency of a sandboxed `fs/readFile` of a small file (helper start plus lock-down),
//!   p50 and p99, in process (the local environment) and through a real server, next to the
//!   same call unsandboxed;
//! - the symlink-flip race: a thread flips `root/d` between a link into the root and a link
//!   out of it while sandboxed write, mkdir, remove and copy run through `root/d` (default
//!   10,000 attempts each); the figure that matters is escapes, which must be 0.
//!
//! ```text
//! cargo build --release --workspace
//! cargo run --release -p exec-server-bench --example sandbox -- [--calls 2000] [--race 10000]
//! ```

#[allow(dead_code)]
#[path = "../src/server.rs"]
mod server;

use clap::Parser;
use exec_server_client::{ClientOptions, ExecServerClient};
use exec_server_environment::local::{FsConfig, ProcessConfig};
use exec_server_environment::{Environment, FileSystem};
use exec_server_protocol::fs::{
    CopyParams, CreateDirectoryParams, ReadFileParams, RemoveParams, WriteFileParams,
};
use exec_server_protocol::sandbox::{ReadOnlyAccess, SandboxContext, SandboxPolicy};
use exec_server_protocol::{AbsolutePath, Base64Bytes};
use exec_server_sandbox::{HelperProgram, HelperSandbox, SandboxCaps};
use futures::StreamExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
struct Args {
    /// Sandboxed reads per latency figure.
    #[arg(long, default_value_t = 2000)]
    calls: usize,
    /// Race attempts per operation.
    #[arg(long, default_value_t = 10_000)]
    race: usize,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn abs(path: &Path) -> AbsolutePath {
    AbsolutePath::from_path(path).expect("absolute")
}

async fn read_latency(
    fs: &Arc<dyn FileSystem>,
    file: &AbsolutePath,
    sandbox: Option<SandboxContext>,
    calls: usize,
) -> anyhow::Result<(Duration, Duration)> {
    let mut times = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        let read = fs
            .read_file(ReadFileParams {
                path: file.clone(),
                sandbox: sandbox.clone(),
                offset: None,
                length: None,
            })
            .await?;
        times.push(started.elapsed());
        anyhow::ensure!(&read.data_base64[..] == b"small", "read back differs");
    }
    times.sort();
    Ok((percentile(&times, 0.5), percentile(&times, 0.99)))
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let caps = SandboxCaps::probe();
    if let Some(missing) = caps.fs_helper_unavailable("benchmark") {
        anyhow::bail!("{missing}");
    }
    let bin = server::default_binary()?;
    let server = server::LaunchedServer::start(&bin).await?;
    let client = ExecServerClient::connect(&server.url, ClientOptions::default()).await?;
    let remote = exec_server_client::environment(client.clone());
    let local = Environment::local_with_config(
        ProcessConfig::default(),
        FsConfig {
            sandbox: Some(Arc::new(HelperSandbox::new(
                HelperProgram::open(&bin)?,
                caps,
                FsConfig::default().max_read_bytes,
            ))),
            ..FsConfig::default()
        },
    );

    let scratch =
        std::env::temp_dir().join(format!("exec-server-sandbox-bench-{}", std::process::id()));
    let root = scratch.join("root");
    let outside = scratch.join("outside");
    std::fs::create_dir_all(root.join("real"))?;
    std::fs::create_dir_all(&outside)?;
    std::fs::write(root.join("small.txt"), b"small")?;
    let file = abs(&root.join("small.txt"));
    let read_only = SandboxContext::new(SandboxPolicy::ReadOnly {
        access: ReadOnlyAccess::FullAccess,
        network_access: false,
    });

    println!("| figure | result |");
    println!("|---|---|");
    for (name, env) in [("local", &local), ("remote", &remote)] {
        let fs = env.filesystem();
        let (p50, p99) = read_latency(fs, &file, None, args.calls).await?;
        println!(
            "| {name} fs/readFile 5 B, unsandboxed | p50 {:.3} ms, p99 {:.3} ms |",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
        let (p50, p99) = read_latency(fs, &file, Some(read_only.clone()), args.calls).await?;
        println!(
            "| {name} fs/readFile 5 B, read-only sandbox | p50 {:.3} ms, p99 {:.3} ms |",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    }

    // The race, through the server.
    for i in 0..args.race {
        std::fs::write(outside.join(format!("r{i}")), b"keep")?;
        std::fs::write(root.join(format!("real/r{i}")), b"mine")?;
    }
    let before = names(&outside);
    std::os::unix::fs::symlink(root.join("real"), root.join("d"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let (stop, root, outside) = (stop.clone(), root.clone(), outside.clone());
        std::thread::spawn(move || {
            let mut flips = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let to = if flips.is_multiple_of(2) {
                    &outside
                } else {
                    &root.join("real")
                };
                std::os::unix::fs::symlink(to, root.join("d.next")).unwrap();
                std::fs::rename(root.join("d.next"), root.join("d")).unwrap();
                flips += 1;
            }
            flips
        })
    };
    let mut context = SandboxContext::new(SandboxPolicy::WorkspaceWrite {
        writable_roots: vec![abs(&root)],
        read_only_access: ReadOnlyAccess::FullAccess,
        network_access: false,
        exclude_tmpdir_env_var: true,
        exclude_slash_tmp: true,
    });
    context.sandbox_policy_cwd = Some(abs(&root));
    let fs = remote.filesystem().clone();
    let started = Instant::now();
    let attempts = (0..args.race).flat_map(|i| (0..4).map(move |op| (i, op)));
    let outcomes: Vec<(usize, bool)> = futures::stream::iter(attempts)
        .map(|(i, op)| {
            let (fs, sandbox, root) = (fs.clone(), Some(context.clone()), root.clone());
            async move {
                let target = |name: &str| abs(&root.join(format!("d/{name}{i}")));
                let result = match op {
                    0 => fs
                        .write_file(WriteFileParams {
                            path: target("w"),
                            data_base64: Base64Bytes::from(&b"x"[..]),
                            sandbox,
                            offset: None,
                            append: false,
                        })
                        .await
                        .map(drop),
                    1 => fs
                        .create_directory(CreateDirectoryParams {
                            path: target("m"),
                            recursive: false,
                            sandbox,
                        })
                        .await
                        .map(drop),
                    2 => fs
                        .remove(RemoveParams {
                            path: target("r"),
                            recursive: false,
                            force: false,
                            sandbox,
                        })
                        .await
                        .map(drop),
                    _ => fs
                        .copy(CopyParams {
                            source_path: abs(&root.join("small.txt")),
                            destination_path: target("c"),
                            recursive: false,
                            sandbox,
                        })
                        .await
                        .map(drop),
                };
                (op, result.is_ok())
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let flips = flipper.join().expect("flipper");
    let after = names(&outside);
    let escapes = after.iter().filter(|n| !before.contains(n)).count()
        + before.iter().filter(|n| !after.contains(n)).count()
        + (0..args.race)
            .filter(|i| {
                std::fs::read(outside.join(format!("r{i}"))).ok().as_deref() != Some(&b"keep"[..])
            })
            .count();
    for (op, name) in ["write", "mkdir", "remove", "copy"].iter().enumerate() {
        let landed = outcomes.iter().filter(|(o, ok)| *o == op && *ok).count();
        println!(
            "| race: sandboxed {name} through a flipping link | {} attempts, {landed} landed inside, {} refused |",
            args.race,
            args.race - landed
        );
    }
    println!(
        "| race: escapes (outside entries created, removed or changed) | {escapes} ({} calls in {:.1} s, {flips} flips) |",
        outcomes.len(),
        elapsed.as_secs_f64()
    );
    server.stop(Duration::from_secs(5)).await;
    let _ = std::fs::remove_dir_all(&scratch);
    anyhow::ensure!(escapes == 0, "{escapes} escapes");
    Ok(())
}
