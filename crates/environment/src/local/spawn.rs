//! Spawning children: process groups, PTYs, and death with the server.
//!
//! Every child is forked from one dedicated thread that lives as long as the process. Linux
//! delivers `PR_SET_PDEATHSIG` when the *thread* that forked the child exits, not the
//! process; forking from a pool thread that may retire would kill children at random.

use super::process_sandbox::{launcher_fds_arg, LauncherFds};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{self, Seek, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
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
    /// The PTY's size from the start (rows, cols); default 24×80.
    pub pty_size: Option<(u16, u16)>,
    /// Run this sandbox launcher in place of the command (which its spec describes).
    pub launcher: Option<Launcher>,
}

/// A sandbox launcher to run instead of the command (see `process_sandbox`).
pub(crate) struct Launcher {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub spec: Vec<u8>,
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
    /// The read ends of a launcher's launch and status descriptors (non-blocking).
    pub launcher: Option<LauncherChannels>,
}

/// What a sandbox launcher reports on, read by the table.
pub(crate) struct LauncherChannels {
    pub launch: OwnedFd,
    pub status: OwnedFd,
}

/// The parent's side of a launcher's descriptors while it is spawned: the child's ends,
/// duplicated above the standard descriptors and close-on-exec until the child's
/// `pre_exec` clears that flag on exactly these.
struct LauncherPlumbing {
    spec: OwnedFd,
    status_write: OwnedFd,
    launch_write: OwnedFd,
    channels: LauncherChannels,
}

impl LauncherPlumbing {
    fn new(spec: &[u8]) -> io::Result<LauncherPlumbing> {
        let memfd =
            rustix::fs::memfd_create("exec-server-sandbox-spec", rustix::fs::MemfdFlags::CLOEXEC)?;
        let mut file = std::fs::File::from(memfd);
        file.write_all(spec)?;
        file.rewind()?;
        let (status_read, status_write) = pipe()?;
        let (launch_read, launch_write) = pipe()?;
        Ok(LauncherPlumbing {
            spec: above_stdio(OwnedFd::from(file))?,
            status_write: above_stdio(status_write)?,
            launch_write: above_stdio(launch_write)?,
            channels: LauncherChannels {
                launch: nonblocking(launch_read)?,
                status: nonblocking(status_read)?,
            },
        })
    }

    fn fds(&self) -> LauncherFds {
        LauncherFds {
            spec: self.spec.as_raw_fd(),
            status: self.status_write.as_raw_fd(),
            launch: self.launch_write.as_raw_fd(),
        }
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both are new descriptors that nobody else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A close-on-exec duplicate numbered 10 or above, so that the child's descriptors never
/// collide with the ones std sets up for it.
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor or -1.
    let dup = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) };
    if dup == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just made it, and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(dup) })
}

fn nonblocking(fd: OwnedFd) -> io::Result<OwnedFd> {
    // SAFETY: plain fcntl calls on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags == -1 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) == -1
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(fd)
}

/// Runs in the forked child: lets `fds` survive the exec.
fn inherit(fds: [RawFd; 3]) -> io::Result<()> {
    for fd in fds {
        // SAFETY: fcntl on a descriptor the child inherited.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
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
    let plumbing = request
        .launcher
        .as_ref()
        .map(|l| LauncherPlumbing::new(&l.spec))
        .transpose()?;
    let mut command = match (&request.launcher, &plumbing) {
        (Some(launcher), Some(plumbing)) => {
            // The launcher gets no environment of the command's (LD_PRELOAD and friends come
            // from the client): its spec carries the command's.
            let mut command = Command::new(&launcher.program);
            command
                .args(&launcher.args)
                .arg(launcher_fds_arg(plumbing.fds()))
                .env_clear()
                .current_dir("/");
            command
        }
        _ => {
            let mut command = Command::new(program);
            command
                .args(args)
                .env_clear()
                .envs(&request.env)
                .current_dir(&request.cwd);
            if let Some(arg0) = &request.arg0 {
                command.arg0(arg0);
            }
            command
        }
    };
    let parent_pid = std::process::id() as libc::pid_t;
    // A sandboxed command leads a session of its own even without a PTY: otherwise it would
    // share the server's controlling terminal, and could type into it (TIOCSTI).
    let new_session = plumbing.is_some();
    let inherited = plumbing.as_ref().map(|p| {
        let fds = p.fds();
        [fds.spec, fds.status, fds.launch]
    });

    match request.mode {
        StdioMode::Pipes { pipe_stdin } => {
            command
                .stdin(if pipe_stdin {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            if !new_session {
                command.process_group(0);
            }
            // SAFETY: the closure only makes async-signal-safe calls (setsid, fcntl, prctl,
            // getppid).
            unsafe {
                command.pre_exec(move || {
                    if new_session && libc::setsid() == -1 {
                        return Err(io::Error::last_os_error());
                    }
                    if let Some(fds) = inherited {
                        inherit(fds)?;
                    }
                    die_with_parent(parent_pid)
                });
            }
            let mut child = command.spawn()?;
            let stdin = child.stdin.take().map(OwnedFd::from);
            let stdout = OwnedFd::from(child.stdout.take().expect("stdout is piped"));
            let stderr = OwnedFd::from(child.stderr.take().expect("stderr is piped"));
            let pid = child.id() as libc::pid_t;
            // Dropping a std Child neither kills nor reaps it; the pidfd takes over.
            let pidfd = supervise(pid)?;
            Ok(SpawnedChild {
                pid,
                pidfd,
                io: ChildIo::Pipes {
                    stdin,
                    stdout,
                    stderr,
                },
                launcher: plumbing.map(|p| p.channels),
            })
        }
        StdioMode::Pty => {
            let (master, pts_handle) = pty_process::open().map_err(io::Error::other)?;
            master
                .resize({
                    let (rows, cols) = request
                        .pty_size
                        .unwrap_or((DEFAULT_PTY_ROWS, DEFAULT_PTY_COLS));
                    pty_process::Size::new(rows, cols)
                })
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
                    if let Some(fds) = inherited {
                        inherit(fds)?;
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
            let pidfd = supervise(pid)?;
            Ok(SpawnedChild {
                pid,
                pidfd,
                io: ChildIo::Pty { master },
                launcher: plumbing.map(|p| p.channels),
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

/// A pidfd for a child that was just spawned. Without one the child could be neither
/// supervised nor safely killed later, so when the kernel refuses (EMFILE, an old kernel) the
/// child is killed and reaped here, and the spawn fails.
fn supervise(pid: libc::pid_t) -> io::Result<OwnedFd> {
    pidfd_open(pid).inspect_err(|_| kill_and_reap(pid))
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
