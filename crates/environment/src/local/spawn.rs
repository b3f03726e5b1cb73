//! Spawning children: process groups, PTYs, and death with the server.
//!
//! Every child is forked from one dedicated thread that lives as long as the process. Linux
//! delivers `PR_SET_PDEATHSIG` when the *thread* that forked the child exits, not the
//! process; forking from a pool thread that may retire would kill children at random.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc as std_mpsc;
use std::sync::{Mutex, OnceLock};
use tokio::sync::oneshot;

/// What to run.
pub(crate) struct SpawnRequest {
    pub argv: Vec<String>,
    pub arg0: Option<String>,
    pub cwd: PathBuf,
    pub env: BTreeMap<String, String>,
    pub mode: StdioMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StdioMode {
    Pty,
    Pipes { pipe_stdin: bool },
}

/// A spawned child. Nothing here reaps it: the caller waits on `pidfd` and reaps with
/// `waitpid`, so the pid (and process group id) stays reserved until the exit is recorded.
pub(crate) struct SpawnedChild {
    pub pid: libc::pid_t,
    pub pidfd: OwnedFd,
    pub io: ChildIo,
}

pub(crate) enum ChildIo {
    Pipes {
        stdin: Option<OwnedFd>,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    Pty {
        master: pty_process::Pty,
    },
}

/// Default terminal size of a PTY child.
pub(crate) const DEFAULT_PTY_ROWS: u16 = 24;
pub(crate) const DEFAULT_PTY_COLS: u16 = 80;

type Job = Box<dyn FnOnce() + Send>;

fn spawner() -> &'static Mutex<std_mpsc::Sender<Job>> {
    static SPAWNER: OnceLock<Mutex<std_mpsc::Sender<Job>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = std_mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("exec-server-spawner".into())
            .spawn(move || {
                // This thread never returns while the process lives: see the module docs.
                for job in rx {
                    job();
                }
            })
            .expect("failed to start the spawner thread");
        Mutex::new(tx)
    })
}

/// Spawns a child from the spawner thread.
pub(crate) async fn spawn(request: SpawnRequest) -> io::Result<SpawnedChild> {
    let handle = tokio::runtime::Handle::current();
    let (tx, rx) = oneshot::channel();
    let job: Job = Box::new(move || {
        // The PTY master registers with the reactor, so the runtime must be entered.
        let _guard = handle.enter();
        if let Err(Ok(orphan)) = tx.send(spawn_now(request)) {
            // The caller gave up (its future was dropped): nobody will manage this child.
            kill_and_reap(orphan.pid);
        }
    });
    spawner()
        .lock()
        .expect("spawner lock poisoned")
        .send(job)
        .map_err(|_| io::Error::other("spawner thread is gone"))?;
    rx.await
        .map_err(|_| io::Error::other("spawner thread dropped the request"))?
}

fn spawn_now(request: SpawnRequest) -> io::Result<SpawnedChild> {
    let (program, args) = request
        .argv
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "argv must not be empty"))?;
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(&request.env)
        .current_dir(&request.cwd);
    if let Some(arg0) = &request.arg0 {
        command.arg0(arg0);
    }
    let parent_pid = std::process::id() as libc::pid_t;

    match request.mode {
        StdioMode::Pipes { pipe_stdin } => {
            command
                .stdin(if pipe_stdin {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0);
            // SAFETY: the closure only makes async-signal-safe calls (prctl, getppid).
            unsafe {
                command.pre_exec(move || die_with_parent(parent_pid));
            }
            let mut child = command.spawn()?;
            let stdin = child.stdin.take().map(OwnedFd::from);
            let stdout = OwnedFd::from(child.stdout.take().expect("stdout is piped"));
            let stderr = OwnedFd::from(child.stderr.take().expect("stderr is piped"));
            let pid = child.id() as libc::pid_t;
            // Dropping a std Child neither kills nor reaps it; the pidfd takes over.
            let pidfd = pidfd_open(pid)?;
            Ok(SpawnedChild {
                pid,
                pidfd,
                io: ChildIo::Pipes {
                    stdin,
                    stdout,
                    stderr,
                },
            })
        }
        StdioMode::Pty => {
            let (master, pts_handle) = pty_process::open().map_err(io::Error::other)?;
            master
                .resize(pty_process::Size::new(DEFAULT_PTY_ROWS, DEFAULT_PTY_COLS))
                .map_err(io::Error::other)?;
            let pts = pts_handle.as_fd().try_clone_to_owned()?;
            drop(pts_handle);
            command
                .stdin(Stdio::from(pts.try_clone()?))
                .stdout(Stdio::from(pts.try_clone()?))
                .stderr(Stdio::from(pts));
            // SAFETY: setsid, ioctl, prctl and getppid are async-signal-safe. std has already
            // put the terminal on fds 0-2 when pre_exec closures run.
            unsafe {
                command.pre_exec(move || {
                    if libc::setsid() == -1 {
                        return Err(io::Error::last_os_error());
                    }
                    if libc::ioctl(0, libc::TIOCSCTTY as _, 0) == -1 {
                        return Err(io::Error::last_os_error());
                    }
                    die_with_parent(parent_pid)
                });
            }
            let child = command.spawn();
            // `command` still holds the terminal side; drop it so that the master reads EOF
            // (EIO) once the child and its descendants close the terminal.
            drop(command);
            let child = child?;
            let pid = child.id() as libc::pid_t;
            let pidfd = pidfd_open(pid)?;
            Ok(SpawnedChild {
                pid,
                pidfd,
                io: ChildIo::Pty { master },
            })
        }
    }
}

/// Runs in the forked child: ask for SIGKILL when the spawner thread (and so the server)
/// dies, and bail out if it already has.
fn die_with_parent(parent_pid: libc::pid_t) -> io::Result<()> {
    // SAFETY: plain syscalls.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) == -1 {
            return Err(io::Error::last_os_error());
        }
        if libc::getppid() != parent_pid {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
    }
    Ok(())
}

fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this fd and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Kills a child's process group and reaps the child (which has no other owner).
pub(crate) fn kill_and_reap(pid: libc::pid_t) {
    // SAFETY: plain syscalls on our own, unreaped child.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
    }
}
