//! Streamed HTTP throughput through the remote path: a body served by an HTTP peer on
//! 127.0.0.1 is fetched with `request_stream` through an exec-server (`http/request` with
//! `streamResponse`, `bodyDelta` notifications), and, for comparison, with the local
//! implementation directly.
//!
//! ```text
//! cargo build --release --workspace
//! cargo run --release -p exec-server-bench --example http_throughput -- [--mib 256] [--runs 3]
//! ```
//!
//! `--url ws://...` benches an already running server instead of starting one.

#[allow(dead_code)]
#[path = "../src/server.rs"]
mod server;

use anyhow::{bail, Context};
use clap::Parser;
use exec_server_environment::{Environment, HttpClient};
use exec_server_protocol::http::HttpRequestParams;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Parser, Debug)]
struct Args {
    /// Body size per request, in MiB.
    #[arg(long, default_value_t = 256)]
    mib: u64,
    /// Measured requests per path (after one warm-up request of the same size).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// The exec-server binary to start. Default: the workspace's `target/release/exec-server`.
    #[arg(long, conflicts_with = "url")]
    server_bin: Option<std::path::PathBuf>,
    /// Bench an already running server instead of starting one.
    #[arg(long)]
    url: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bytes = args.mib * 1024 * 1024;
    let peer = serve_bodies().await?;
    let url = format!("http://{peer}/{bytes}");

    let launched = match (&args.url, &args.server_bin) {
        (Some(_), _) => None,
        (None, Some(bin)) => Some(server::LaunchedServer::start(bin).await?),
        (None, None) => Some(server::LaunchedServer::start(&server::default_binary()?).await?),
    };
    let server_url = match (&args.url, &launched) {
        (Some(url), _) => url.clone(),
        (None, Some(server)) => server.url.clone(),
        (None, None) => unreachable!("a server was started"),
    };
    let remote = exec_server_client::connect_environment(&server_url)
        .await
        .context("connect to the exec-server")?;
    let local = Environment::local();

    println!(
        "streamed HTTP body of {} MiB from an HTTP peer on 127.0.0.1, {} runs each",
        args.mib, args.runs
    );
    for (name, env) in [
        ("local (reqwest, in-process)", &local),
        ("remote (http/request)", &remote),
    ] {
        let http = env.http().clone();
        fetch(&http, &url, bytes).await?; // warm-up: connection pools, trust roots
        let mut rates = Vec::new();
        for _ in 0..args.runs {
            let elapsed = fetch(&http, &url, bytes).await?;
            rates.push(bytes as f64 / (1024.0 * 1024.0) / elapsed.as_secs_f64());
        }
        rates.sort_by(f64::total_cmp);
        println!(
            "{name:<30} median {:>8.1} MiB/s   (min {:.1}, max {:.1})",
            rates[rates.len() / 2],
            rates[0],
            rates[rates.len() - 1]
        );
    }
    if let Some(server) = launched {
        server.stop(Duration::from_secs(5)).await;
    }
    Ok(())
}

/// Fetches `url` with `request_stream` and checks the body's length; returns the time from
/// the request to the last byte.
async fn fetch(http: &Arc<dyn HttpClient>, url: &str, bytes: u64) -> anyhow::Result<Duration> {
    let params = HttpRequestParams {
        method: "GET".into(),
        url: url.into(),
        headers: vec![],
        body_base64: None,
        timeout_ms: Some(600_000),
        request_id: String::new(),
        stream_response: true,
    };
    let started = Instant::now();
    let (head, mut body) = http.request_stream(params).await?;
    if head.status != 200 {
        bail!("the peer answered {}", head.status);
    }
    let mut received = 0u64;
    while let Some(chunk) = body.next().await {
        received += chunk?.len() as u64;
    }
    let elapsed = started.elapsed();
    if received != bytes {
        bail!("received {received} bytes of {bytes}");
    }
    Ok(elapsed)
}

/// A minimal HTTP/1.1 peer on 127.0.0.1: `GET /N` answers with N bytes (content-length),
/// written from one reused buffer so the peer itself costs next to nothing.
async fn serve_bodies() -> anyhow::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let block: Arc<[u8]> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
        while let Ok((mut socket, _)) = listener.accept().await {
            let block = block.clone();
            tokio::spawn(async move {
                let _ = socket.set_nodelay(true);
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let len: u64 = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|path| path.trim_start_matches('/').parse().ok())
                    .unwrap_or(0);
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n"
                );
                if socket.write_all(response.as_bytes()).await.is_err() {
                    return;
                }
                let mut left = len;
                while left > 0 {
                    let take = left.min(block.len() as u64) as usize;
                    if socket.write_all(&block[..take]).await.is_err() {
                        return;
                    }
                    left -= take as u64;
                }
                let _ = socket.shutdown().await;
            });
        }
    });
    Ok(addr)
}
