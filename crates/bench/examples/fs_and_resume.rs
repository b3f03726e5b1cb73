//! Filesystem and session figures through a real server on loopback:
//! - `fs/writeFile` and `fs/readFile` of one 64 MiB file, whole (MB/s), and `fs/getMetadata`
//!   round trip (p50, p99);
//! - a large file (default 2 GiB) up and down with the client's streaming transfer (ranged
//!   writes to a temporary name, then rename; ranged reads), bytes verified, with the server's
//!   peak resident memory (VmHWM);
//! - the time from a dropped connection to the client having resumed and caught up (a line
//!   written to `cat` after the drop has come back), p50 and p99 over 100 drops.
//!
//! ```text
//! cargo build --release --workspace
//! cargo run --release -p exec-server-bench --example fs_and_resume -- [--big-mib 2048]
//! ```

#[allow(dead_code)]
#[path = "../src/server.rs"]
mod server;

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use exec_server_client::{ClientOptions, ExecServerClient};
use exec_server_environment::ProcessEvent;
use exec_server_protocol::fs::{GetMetadataParams, ReadFileParams, WriteFileParams};
use exec_server_protocol::process::StartParams;
use exec_server_protocol::{AbsolutePath, Base64Bytes};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
struct Args {
    /// Size of the large transfer, in MiB.
    #[arg(long, default_value_t = 2048)]
    big_mib: u64,
    /// Connection drops for the resume figure.
    #[arg(long, default_value_t = 100)]
    drops: usize,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / elapsed.as_secs_f64() / 1e6
}

fn vm_hwm_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kib| kib / 1024.0)
        .unwrap_or(f64::NAN)
}

/// A deterministic pattern, so every byte can be checked.
fn pattern(offset: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| ((offset + i).wrapping_mul(2654435761) >> 13) as u8)
        .collect()
}

// One thread, like the process bench: on 2 vCPUs, cross-thread wake-ups in the client would
// otherwise dominate small round trips.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin = server::default_binary()?;
    let server = server::LaunchedServer::start(&bin).await?;
    let client = ExecServerClient::connect(&server.url, ClientOptions::default()).await?;
    let env = exec_server_client::environment(client.clone());
    let fs = env.filesystem().clone();
    let dir = tempfile_dir()?;

    // 64 MiB whole.
    let path = AbsolutePath::parse(&format!("{dir}/whole.bin"))?;
    let data = pattern(0, 64 << 20);
    let started = Instant::now();
    fs.write_file(WriteFileParams {
        path: path.clone(),
        data_base64: Base64Bytes::from(data.clone()),
        sandbox: None,
        offset: None,
        append: false,
    })
    .await?;
    let write = started.elapsed();
    let started = Instant::now();
    let read = fs
        .read_file(ReadFileParams {
            path: path.clone(),
            sandbox: None,
            offset: None,
            length: None,
        })
        .await?;
    let read_time = started.elapsed();
    anyhow::ensure!(read.data_base64[..] == data[..], "64 MiB read back differs");
    let mut metadata = Vec::new();
    for _ in 0..2000 {
        let started = Instant::now();
        fs.get_metadata(GetMetadataParams {
            path: path.clone(),
            sandbox: None,
        })
        .await?;
        metadata.push(started.elapsed());
    }
    metadata.sort();
    println!(
        "| fs/writeFile 64 MiB whole | {:.0} MB/s |",
        mb_per_s(64 << 20, write)
    );
    println!(
        "| fs/readFile 64 MiB whole | {:.0} MB/s |",
        mb_per_s(64 << 20, read_time)
    );
    println!(
        "| fs/getMetadata round trip | p50 {:.1} µs, p99 {:.1} µs |",
        percentile(&metadata, 0.5).as_secs_f64() * 1e6,
        percentile(&metadata, 0.99).as_secs_f64() * 1e6
    );
    println!(
        "| server peak RSS after the 64 MiB calls | {:.0} MiB |",
        vm_hwm_mib(server.pid)
    );

    // The large transfer, streamed. The source is generated on the fly and the download is
    // checked as it arrives, so the bench itself stays small too.
    let big = args.big_mib << 20;
    let big_path = AbsolutePath::parse(&format!("{dir}/big.bin"))?;
    let (mut writer, reader) = tokio::io::duplex(1 << 20);
    let producer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let mut offset = 0u64;
        while offset < big {
            let n = (big - offset).min(1 << 20) as usize;
            writer.write_all(&pattern(offset, n)).await?;
            offset += n as u64;
        }
        writer.shutdown().await
    });
    let started = Instant::now();
    let sent =
        exec_server_client::transfer::upload(fs.as_ref(), reader, &big_path, 4 << 20, |_| {})
            .await?;
    let up = started.elapsed();
    producer.await??;
    anyhow::ensure!(sent == big, "uploaded {sent} of {big} bytes");
    let checker = VerifyingWriter { offset: 0 };
    let started = Instant::now();
    let mut sink = checker;
    let got =
        exec_server_client::transfer::download(fs.as_ref(), &big_path, &mut sink, 4 << 20, |_| {})
            .await?;
    let down = started.elapsed();
    anyhow::ensure!(
        got == big && sink.offset == big,
        "downloaded {got} of {big} bytes"
    );
    println!(
        "| {} MiB streamed upload / download | {:.0} / {:.0} MB/s, bytes verified |",
        args.big_mib,
        mb_per_s(big, up),
        mb_per_s(big, down)
    );
    println!(
        "| server peak RSS after the large transfer | {:.0} MiB |",
        vm_hwm_mib(server.pid)
    );
    let _ = std::fs::remove_dir_all(&dir);

    // Resume: drop the connection, write a line, wait for it to come back.
    let params = StartParams {
        process_id: "echo".into(),
        argv: vec!["/bin/cat".into()],
        cwd: AbsolutePath::parse("/")?,
        env_policy: None,
        env: Default::default(),
        tty: false,
        pipe_stdin: true,
        arg0: None,
        timeout_ms: None,
        sandbox: None,
        enforce_managed_network: false,
        managed_network: None,
        network_proxy: None,
        tty_size: None,
    };
    let mut started_process = env.processes().start(params).await?;
    let mut resumes = Vec::new();
    for i in 0..args.drops {
        let line = format!("line {i}\n");
        let started = Instant::now();
        client.drop_connection();
        env.processes()
            .write("echo", Bytes::from(line.clone()))
            .await
            .context("write after the drop")?;
        let mut got = Vec::new();
        while got != line.as_bytes() {
            match tokio::time::timeout(Duration::from_secs(10), started_process.events.next())
                .await
                .context("no output within 10 s of a drop")?
            {
                Some(ProcessEvent::Output { chunk, .. }) => got.extend_from_slice(&chunk),
                other => anyhow::bail!("unexpected event {other:?}"),
            }
        }
        resumes.push(started.elapsed());
    }
    resumes.sort();
    println!(
        "| dropped connection to resumed and caught up ({} drops) | p50 {:.2} ms, p99 {:.2} ms |",
        args.drops,
        percentile(&resumes, 0.5).as_secs_f64() * 1e3,
        percentile(&resumes, 0.99).as_secs_f64() * 1e3
    );
    server.stop(Duration::from_secs(5)).await;
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<String> {
    let dir = std::env::temp_dir().join(format!("exec-server-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir.to_string_lossy().into_owned())
}

/// Checks downloaded bytes against the pattern as they arrive.
struct VerifyingWriter {
    offset: u64,
}

impl tokio::io::AsyncWrite for VerifyingWriter {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if buf != pattern(self.offset, buf.len()).as_slice() {
            return std::task::Poll::Ready(Err(std::io::Error::other(format!(
                "downloaded bytes differ near offset {}",
                self.offset
            ))));
        }
        self.offset += buf.len() as u64;
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
