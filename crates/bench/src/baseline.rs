//! The same work done locally by this bench, with no server in the way: what the machine
//! itself allows, so that each figure can be read against its floor (or ceiling).
//!
//! Everything here blocks; call it through `spawn_blocking`.

use anyhow::{bail, Context};
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How a local child is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpawnKind {
    /// std's default: `posix_spawn` (a vfork-style clone that shares the parent's memory).
    PosixSpawn,
    /// A `pre_exec` hook, which makes std fall back to `fork`: what the server does, for its
    /// parent-death signal.
    Fork,
}

/// Spawns `program` and waits for it, `iterations` times; returns each run's duration.
pub fn spawn_and_wait(
    program: &str,
    kind: SpawnKind,
    iterations: usize,
    warmup: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(iterations);
    for i in 0..warmup + iterations {
        let mut command = Command::new(program);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if kind == SpawnKind::Fork {
            // SAFETY: the hook does nothing; it only forces std onto its fork path.
            unsafe { command.pre_exec(|| Ok(())) };
        }
        let t = Instant::now();
        let status = command.output().context(program.to_owned())?.status;
        let elapsed = t.elapsed();
        if !status.success() {
            bail!("{program}: {status}");
        }
        if i >= warmup {
            samples.push(elapsed);
        }
    }
    Ok(samples)
}

/// `count` children of `sh -c 'sleep 1; echo ok'` started back to back, then all waited
/// for. Returns (time to start them all, time until all finished).
pub fn concurrent_sleepers(sh: &str, count: usize) -> anyhow::Result<(Duration, Duration)> {
    let t = Instant::now();
    let mut children = Vec::with_capacity(count);
    for _ in 0..count {
        let child = Command::new(sh)
            .args(["-c", "sleep 1; echo ok"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning sh")?;
        children.push(child);
    }
    let started = t.elapsed();
    for child in children {
        let output = child.wait_with_output()?;
        if !output.status.success() || output.stdout != b"ok\n" {
            bail!("local sh -c 'sleep 1; echo ok' failed: {}", output.status);
        }
    }
    Ok((started, t.elapsed()))
}

/// Reads `bytes` of /dev/zero from `head` through a pipe (`tty` false) or a PTY master
/// (`tty` true) in 64 KiB reads. Returns the elapsed time.
pub fn read_output(head: &str, bytes: u64, tty: bool) -> anyhow::Result<Duration> {
    let mut command = Command::new(head);
    command
        .args(["-c", &bytes.to_string(), "/dev/zero"])
        .stdin(Stdio::null());
    let t = Instant::now();
    let (mut child, mut reader): (_, Box<dyn Read>) = if tty {
        let (master, slave) = open_pty()?;
        command
            .stdout(Stdio::from(slave.try_clone()?))
            .stderr(Stdio::from(slave.try_clone()?));
        // SAFETY: setsid is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
        };
        let child = command.spawn().context("spawning head on a PTY")?;
        // Only the child may hold the terminal side, so the master reads EIO at its end.
        drop(command);
        drop(slave);
        (child, Box::new(std::fs::File::from(master)))
    } else {
        command.stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = command.spawn().context("spawning head")?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        (child, Box::new(stdout))
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // EIO: every holder of the terminal side closed it.
            Err(e) if tty && e.raw_os_error() == Some(libc::EIO) => break,
            Err(e) => return Err(e).context("reading head's output"),
        }
    }
    let status = child.wait()?;
    let elapsed = t.elapsed();
    if !status.success() || total != bytes {
        bail!("local head: {status}, read {total} of {bytes} bytes");
    }
    Ok(elapsed)
}

/// A new pseudo-terminal: (master, slave).
fn open_pty() -> anyhow::Result<(OwnedFd, OwnedFd)> {
    // SAFETY: plain libc calls on fds this function owns; ptsname_r writes into `name`,
    // which is NUL-terminated on success.
    unsafe {
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        if master < 0 {
            return Err(std::io::Error::last_os_error()).context("posix_openpt");
        }
        let master = OwnedFd::from_raw_fd(master);
        let raw = std::os::fd::AsRawFd::as_raw_fd(&master);
        if libc::grantpt(raw) != 0 || libc::unlockpt(raw) != 0 {
            return Err(std::io::Error::last_os_error()).context("grantpt/unlockpt");
        }
        let mut name = [0 as libc::c_char; 128];
        if libc::ptsname_r(raw, name.as_mut_ptr(), name.len()) != 0 {
            return Err(std::io::Error::last_os_error()).context("ptsname_r");
        }
        let slave = libc::open(
            name.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if slave < 0 {
            return Err(std::io::Error::last_os_error()).context("opening the PTY slave");
        }
        Ok((master, OwnedFd::from_raw_fd(slave)))
    }
}

/// Round trips of a 64-byte message over loopback TCP (TCP_NODELAY) between this thread and
/// an echoing thread: the transport floor under any RPC, without websocket or JSON.
pub fn tcp_ping_pong(iterations: usize, warmup: usize) -> anyhow::Result<Vec<Duration>> {
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut peer, _) = listener.accept()?;
        peer.set_nodelay(true)?;
        let mut buf = [0u8; 64];
        loop {
            match peer.read(&mut buf)? {
                0 => return Ok(()),
                n => peer.write_all(&buf[..n])?,
            }
        }
    });
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let message = [b'x'; 64];
    let mut reply = [0u8; 64];
    let mut samples = Vec::with_capacity(iterations);
    for i in 0..warmup + iterations {
        let t = Instant::now();
        stream.write_all(&message)?;
        stream.read_exact(&mut reply)?;
        if i >= warmup {
            samples.push(t.elapsed());
        }
    }
    drop(stream);
    echo.join()
        .map_err(|_| anyhow::anyhow!("echo thread panicked"))??;
    Ok(samples)
}

/// A short line written to a local `cat` through a pipe and read back, no server: the floor
/// under the stdin echo round trip.
pub fn pipe_echo(cat: &str, iterations: usize, warmup: usize) -> anyhow::Result<Vec<Duration>> {
    use std::io::Write;
    let mut child = Command::new(cat)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("spawning cat")?;
    let mut stdin = child.stdin.take().context("no stdin pipe")?;
    let mut stdout = child.stdout.take().context("no stdout pipe")?;
    let mut samples = Vec::with_capacity(iterations);
    let mut buf = [0u8; 64];
    for i in 0..warmup + iterations {
        let line = format!("line {i:08}\n");
        let t = Instant::now();
        stdin.write_all(line.as_bytes())?;
        let mut got = 0;
        while got < line.len() {
            match stdout.read(&mut buf[got..])? {
                0 => bail!("cat closed its stdout"),
                n => got += n,
            }
        }
        let elapsed = t.elapsed();
        if &buf[..got] != line.as_bytes() {
            bail!(
                "local cat echoed {:?}",
                String::from_utf8_lossy(&buf[..got])
            );
        }
        if i >= warmup {
            samples.push(elapsed);
        }
    }
    drop(stdin);
    child.wait()?;
    Ok(samples)
}
