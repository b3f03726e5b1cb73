//! A large file goes to a server and back through `exec-server fs put` and `fs get`, run as
//! separate processes, in bounded memory on both sides.
//!
//! This is the only test in its binary on purpose: the CLI's peak RSS is read with
//! `getrusage(RUSAGE_CHILDREN)`, which covers every child this process has waited for.

mod support;

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use support::ServerProcess;

const MIB: u64 = 1024 * 1024;
/// Peak resident memory allowed to the server and to each CLI process.
const RSS_LIMIT_KIB: u64 = 128 * 1024;
/// Debug builds encode base64 slowly; this bounds each whole transfer, not each step.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(600);

/// Size of the file moved; `FS_TRANSFER_MIB` overrides the 512 MiB default.
fn transfer_bytes() -> u64 {
    std::env::var("FS_TRANSFER_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(512)
        * MIB
}

/// Writes `size` bytes of pseudo-random data, each MiB stamped with its index, so a lost,
/// repeated or reordered chunk shows up as a mismatch.
fn write_source(path: &Path, size: u64) {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut block = vec![0u8; MIB as usize];
    for word in block.chunks_exact_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        word.copy_from_slice(&state.to_le_bytes());
    }
    let mut out = BufWriter::new(File::create(path).unwrap());
    let mut written = 0u64;
    let mut index = 0u64;
    while written < size {
        block[..8].copy_from_slice(&index.to_le_bytes());
        let n = (size - written).min(MIB) as usize;
        out.write_all(&block[..n]).unwrap();
        written += n as u64;
        index += 1;
    }
    out.flush().unwrap();
}

fn assert_same_contents(a: &Path, b: &Path) {
    let (mut fa, mut fb) = (File::open(a).unwrap(), File::open(b).unwrap());
    assert_eq!(
        fa.metadata().unwrap().len(),
        fb.metadata().unwrap().len(),
        "sizes differ"
    );
    let (mut ba, mut bb) = (vec![0u8; MIB as usize], vec![0u8; MIB as usize]);
    let mut offset = 0u64;
    loop {
        let n = read_full(&mut fa, &mut ba);
        let m = read_full(&mut fb, &mut bb);
        assert_eq!(n, m, "lengths differ near offset {offset}");
        assert!(
            ba[..n] == bb[..n],
            "contents differ in the MiB at offset {offset}"
        );
        if n == 0 {
            return;
        }
        offset += n as u64;
    }
}

fn read_full(file: &mut File, buf: &mut [u8]) -> usize {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]).unwrap() {
            0 => break,
            n => filled += n,
        }
    }
    filled
}

/// The peak resident set of `pid` so far, in KiB.
fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc status")
}

/// The largest peak resident set of any child waited for so far, in KiB.
fn children_max_rss_kib() -> u64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` is a valid, writable rusage for the duration of the call.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()) };
    assert_eq!(rc, 0, "getrusage: {}", std::io::Error::last_os_error());
    // SAFETY: getrusage succeeded, so it filled the struct.
    let usage = unsafe { usage.assume_init() };
    usage.ru_maxrss as u64
}

async fn cli(args: &[&str]) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_exec-server"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start the CLI");
    let status = tokio::time::timeout(TRANSFER_TIMEOUT, child.wait())
        .await
        .unwrap_or_else(|_| panic!("`exec-server {}` timed out", args.join(" ")))
        .expect("wait for the CLI");
    assert!(
        status.success(),
        "`exec-server {}`: {status}",
        args.join(" ")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_file_round_trip_in_bounded_memory() {
    let size = transfer_bytes();
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source.bin");
    let on_server = dir.path().join("on-server.bin");
    let back = dir.path().join("back.bin");
    write_source(&source, size);

    let server = ServerProcess::start(&[]);
    let (source_s, on_server_s, back_s) = (
        source.to_str().unwrap(),
        on_server.to_str().unwrap(),
        back.to_str().unwrap(),
    );
    cli(&["fs", "--url", &server.url, "put", source_s, on_server_s]).await;
    assert_same_contents(&source, &on_server);
    let _ = std::fs::remove_file(&source);
    cli(&["fs", "--url", &server.url, "get", on_server_s, back_s]).await;
    // `source` is gone to save disk; the server's copy was verified against it.
    assert_same_contents(&on_server, &back);

    let server_peak = vm_hwm_kib(server.pid());
    let cli_peak = children_max_rss_kib();
    eprintln!(
        "moved {} MiB each way; peak RSS: server {server_peak} KiB, CLI {cli_peak} KiB",
        size / MIB
    );
    assert!(
        server_peak < RSS_LIMIT_KIB,
        "server peak RSS {server_peak} KiB"
    );
    assert!(cli_peak < RSS_LIMIT_KIB, "CLI peak RSS {cli_peak} KiB");
}
