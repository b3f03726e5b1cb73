//! The process launcher: the `exec-server` binary re-executed with [`LAUNCHER_ARG`] in place
//! of a sandboxed command. Three processes, each with one job:
//!
//! - **the launcher** (the server's child, which the server tracks, signals and kills): it
//!   makes new user, mount, pid and IPC namespaces (and a network namespace when the network
//!   is restricted), builds the command's view of the filesystem ([`crate::view`]), and
//!   forks the namespace's init. It ignores the signals meant for the command, and ends as
//!   its init ends; killing it kills the init (parent-death signal), and with the init the
//!   kernel kills every process in the namespace, however it detached.
//! - **the init** (pid 1 of the new pid namespace): mounts the namespace's own `/proc`, forks
//!   the command, reports the command's exit on the status descriptor, and reaps whatever
//!   the command leaves behind until nothing is left.
//! - **the command**: drops every capability, sets no_new_privs, restricts itself with
//!   Landlock and seccomp, and executes the program.
//!
//! All three share the command's process group (and terminal): `process/signal` and a
//! terminal's Ctrl-C reach the command directly; the launcher ignores them and the init is
//! immune to them, as pid 1 is. Failures before the exec are reported on the launch
//! descriptor (see `exec_server_environment::local::ProcessSandbox`).

use crate::policy::ResolvedPolicy;
use crate::{ruleset, syscall_filter, view};
use exec_server_environment::local::{
    parse_launcher_fds_arg, CommandExit, LaunchFailure, LauncherFds, StatusLine,
};
use exec_server_protocol::sandbox::NetworkPolicy;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

/// argv[1] that makes `exec-server` run as the process launcher. Hidden: not a subcommand.
pub const LAUNCHER_ARG: &str = "__exec-server-sandbox";

/// argv[2] for the start-up probe: build a sandbox like a real launch would, but end
/// instead of executing a command (see [`crate::process_sandbox`]).
pub const PROBE_ARG: &str = "--probe";

/// Everything the launcher needs, read from the spec descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchSpec {
    pub argv: Vec<String>,
    pub arg0: Option<String>,
    pub cwd: PathBuf,
    pub env: BTreeMap<String, String>,
    pub tty: bool,
    /// `None`: the filesystem is not restricted (only the network and the server's secrets
    /// are).
    pub policy: Option<ResolvedPolicy>,
    pub network: NetworkPolicy,
    /// Paths the command must not see: the server's secrets and its Unix socket.
    pub hidden: Vec<PathBuf>,
    /// TCP ports the command may not connect to, on any address: the server's own, when the
    /// network is enabled.
    pub blocked_tcp_ports: Vec<u16>,
}

/// A failure before the command could run, as the launcher reports it.
struct Failure {
    reason: &'static str,
    message: String,
}

impl Failure {
    fn new(reason: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            reason,
            message: message.into(),
        }
    }
}

/// The signals meant for the command, which the launcher must survive (it would take the
/// whole sandbox with it).
const COMMAND_SIGNALS: [libc::c_int; 10] = [
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGTSTP,
    libc::SIGTTIN,
    libc::SIGTTOU,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGPIPE,
];

/// The launcher's `main`. Call it first thing, while the process has one thread: user
/// namespaces can only be entered by a single-threaded process.
pub fn run_launcher() -> i32 {
    let args: Vec<String> = std::env::args().collect();
    if args.get(2).map(String::as_str) == Some(PROBE_ARG) {
        return run_probe();
    }
    let Some(fds) = args.last().and_then(|a| parse_launcher_fds_arg(a)) else {
        eprintln!("exec-server sandbox launcher: run by the server only");
        return 2;
    };
    for signal in COMMAND_SIGNALS {
        // SAFETY: setting a signal's disposition to ignore has no memory effects.
        unsafe { libc::signal(signal, libc::SIG_IGN) };
    }
    // Whatever the server inherited and did not mark close-on-exec (from whoever started
    // it) must not reach the command.
    close_all_but(&[0, 1, 2, fds.spec, fds.status, fds.launch]);
    // The command must inherit neither: the launch descriptor closes when it executes
    // (which is how the server learns it did), the status one is the init's to write.
    set_cloexec(fds.status);
    set_cloexec(fds.launch);
    let spec = match read_spec(fds.spec) {
        Ok(spec) => spec,
        Err(e) => {
            report(
                fds.launch,
                &Failure::new(
                    "sandboxSetupFailed",
                    format!("cannot read the launch spec: {e}"),
                ),
            );
            return 1;
        }
    };
    match launch(&spec, fds) {
        Ok(code) => code,
        Err(failure) => {
            report(fds.launch, &failure);
            1
        }
    }
}

/// Closes every descriptor of this process but `keep`.
fn close_all_but(keep: &[RawFd]) {
    let mut keep = keep.to_vec();
    keep.sort_unstable();
    keep.dedup();
    let mut from: libc::c_uint = 0;
    for &fd in &keep {
        let fd = fd as libc::c_uint;
        if fd > from {
            // SAFETY: close_range closes descriptors; nothing of ours is in the range.
            unsafe { libc::syscall(libc::SYS_close_range, from, fd - 1, 0) };
        }
        from = fd + 1;
    }
    // SAFETY: as above.
    unsafe { libc::syscall(libc::SYS_close_range, from, libc::c_uint::MAX, 0) };
}

fn set_cloexec(fd: RawFd) {
    // SAFETY: fcntl on an inherited descriptor.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
}

fn read_spec(fd: RawFd) -> io::Result<LaunchSpec> {
    // SAFETY: the server passed this descriptor for us to own.
    let mut file = unsafe { File::from_raw_fd(fd) };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    serde_json::from_slice(&bytes).map_err(io::Error::other)
}

/// A view that could not be built: a policy the disk does not let us enforce is the
/// policy's problem, anything else the machine's.
fn view_failure(error: view::ViewError) -> Failure {
    match error {
        view::ViewError::Unenforceable(message) => {
            Failure::new("unsupportedSandboxPolicy", message)
        }
        other => Failure::new(
            "sandboxSetupFailed",
            format!("building the sandbox's view of the filesystem: {other}"),
        ),
    }
}

fn write_status(fd: RawFd, line: &StatusLine) {
    let mut bytes = serde_json::to_vec(line).unwrap_or_default();
    bytes.push(b'\n');
    write_fd(fd, &bytes);
}

fn report(fd: RawFd, failure: &Failure) {
    let line = serde_json::to_vec(&LaunchFailure::Setup {
        reason: failure.reason.to_owned(),
        message: failure.message.clone(),
    })
    .unwrap_or_default();
    write_fd(fd, &line);
}

fn write_fd(fd: RawFd, bytes: &[u8]) {
    // SAFETY: borrowed for the write; ManuallyDrop keeps the descriptor open.
    let mut file = std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(fd) });
    let _ = file.write_all(bytes);
}

/// The launcher's part: namespaces, the view, then the init; returns when the init ends.
fn launch(spec: &LaunchSpec, fds: LauncherFds) -> Result<i32, Failure> {
    enter_namespaces(spec.network)?;
    let view = view::build(spec.policy.as_ref(), &spec.hidden, spec.tty).map_err(view_failure)?;
    if !view.uncreatable.is_empty() {
        write_status(
            fds.status,
            &StatusLine::Uncreatable(view.uncreatable.clone()),
        );
    }
    let (lifeline_read, lifeline_write) = pipe()?;
    // SAFETY: the child only calls async-signal-safe functions until it is the init (this
    // process has a single thread, so anything else would be safe too).
    let init = unsafe { libc::fork() };
    match init {
        -1 => Err(Failure::new(
            "sandboxSetupFailed",
            format!(
                "cannot fork the sandbox's init: {}",
                io::Error::last_os_error()
            ),
        )),
        0 => {
            drop(lifeline_write);
            std::process::exit(run_init(spec, fds, &view, lifeline_read));
        }
        init => {
            drop(lifeline_read);
            // The init holds the streams, the status and launch descriptors now; keeping our
            // copies open would keep the server from seeing them end.
            release_stdio();
            // SAFETY: closing descriptors this process no longer uses.
            unsafe {
                libc::close(fds.status);
                libc::close(fds.launch);
            }
            let status = wait_for(init);
            drop(lifeline_write);
            Ok(mirror(status))
        }
    }
}

/// Enters new user, mount, pid (for the children), IPC and, when the network is
/// restricted, network namespaces, and maps our own user and group into the new user
/// namespace.
fn enter_namespaces(network: NetworkPolicy) -> Result<(), Failure> {
    // SAFETY: plain syscalls.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let mut flags =
        libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWIPC;
    if network == NetworkPolicy::Restricted {
        flags |= libc::CLONE_NEWNET;
    }
    // SAFETY: unshare takes flags only.
    if unsafe { libc::unshare(flags) } == -1 {
        let e = io::Error::last_os_error();
        return Err(Failure::new(
            "userNamespacesUnavailable",
            format!(
                "cannot create the sandbox's namespaces ({e}); the machine must allow \
                 unprivileged user namespaces (see docs/DEPLOYMENT.md)"
            ),
        ));
    }
    let write = |file: &str, text: String| {
        std::fs::write(file, text).map_err(|e| {
            Failure::new(
                "userNamespacesUnavailable",
                format!("cannot write {file} for the sandbox's user namespace: {e}"),
            )
        })
    };
    write("/proc/self/setgroups", "deny".to_owned())?;
    write("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
    write("/proc/self/gid_map", format!("{gid} {gid} 1"))?;
    Ok(())
}

fn pipe() -> Result<(OwnedFd, OwnedFd), Failure> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(Failure::new(
            "sandboxSetupFailed",
            format!("cannot make a pipe: {}", io::Error::last_os_error()),
        ));
    }
    // SAFETY: both are new descriptors that nobody else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Points stdin, stdout and stderr at `/dev/null`, so that this process no longer holds the
/// command's terminal or pipes.
fn release_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

/// Waits for our child `pid`, retrying on EINTR.
fn wait_for(pid: libc::pid_t) -> libc::c_int {
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            return status;
        }
        if rc == -1 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return 0;
        }
    }
}

/// Ends this process the way `status` says its child ended: the same exit code, or death by
/// the same signal.
fn mirror(status: libc::c_int) -> i32 {
    if libc::WIFSIGNALED(status) {
        let signal = libc::WTERMSIG(status);
        // SAFETY: restoring the default action and raising the signal on ourselves.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
            let mut set = std::mem::zeroed::<libc::sigset_t>();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, signal);
            libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::kill(libc::getpid(), signal);
        }
        128 + signal
    } else {
        libc::WEXITSTATUS(status)
    }
}

/// The init: pid 1 of the sandbox's pid namespace.
fn run_init(spec: &LaunchSpec, fds: LauncherFds, view: &view::BuiltView, lifeline: OwnedFd) -> i32 {
    // Die with the launcher, and with it the whole namespace. If the launcher is already
    // gone, the lifeline pipe says so.
    // SAFETY: plain syscalls.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
    let mut poll = libc::pollfd {
        fd: lifeline.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd, no wait.
    if unsafe { libc::poll(&mut poll, 1, 0) } != 0 {
        return 1;
    }
    drop(lifeline);
    if let Err(e) = view::mount_private_proc() {
        report(
            fds.launch,
            &Failure::new(
                "sandboxSetupFailed",
                format!("mounting the sandbox's /proc: {e}"),
            ),
        );
        return 1;
    }
    // SAFETY: single-threaded: the child may do anything.
    let command = unsafe { libc::fork() };
    if command == -1 {
        report(
            fds.launch,
            &Failure::new(
                "sandboxSetupFailed",
                format!("cannot fork the command: {}", io::Error::last_os_error()),
            ),
        );
        return 1;
    }
    if command == 0 {
        let failure = run_command(spec, fds);
        report(fds.launch, &failure);
        // SAFETY: leaving the forked child without running the parent's destructors.
        unsafe { libc::_exit(127) };
    }
    release_stdio();
    // SAFETY: the command holds its own copy; the server must see end of file once it
    // executed.
    unsafe { libc::close(fds.launch) };
    let mut status_fd = Some(fds.status);
    loop {
        let mut status = 0;
        // SAFETY: reaps any child of ours (we are the namespace's init).
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid == -1 {
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                _ => break, // ECHILD: nothing left.
            }
        }
        if pid == command {
            if let Some(fd) = status_fd.take() {
                let removed = remove_uncreatable(&view.uncreatable);
                let exit = CommandExit {
                    wait_status: status,
                    removed,
                };
                write_status(fd, &StatusLine::Exited(exit));
                // SAFETY: our own descriptor, written once.
                unsafe { libc::close(fd) };
            }
        }
    }
    // The sandbox is empty: what a background child created after the command's exit goes
    // too. (If the sandbox is killed instead, the server sweeps once the launcher is gone.)
    remove_uncreatable(&view.uncreatable);
    0
}

/// Removes the protected paths the command created although the policy forbids it (a mount
/// cannot cover a name that does not exist, so this is checked after the fact, as codex
/// does). The init sees the command's view, so it can only remove what the command could.
fn remove_uncreatable(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    for path in paths {
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            continue;
        };
        let gone = if meta.is_dir() {
            std::fs::remove_dir_all(path)
        } else {
            std::fs::remove_file(path)
        };
        if gone.is_ok() {
            removed.push(path.clone());
        }
    }
    removed
}

/// The command's part: lock down, then execute. Returns only on failure.
fn run_command(spec: &LaunchSpec, fds: LauncherFds) -> Failure {
    let _ = fds;
    // SAFETY: resetting signal state inherited from the launcher, in a single-threaded
    // child.
    unsafe {
        for signal in 1..libc::SIGRTMAX() {
            if signal != libc::SIGKILL && signal != libc::SIGSTOP {
                libc::signal(signal, libc::SIG_DFL);
            }
        }
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
    if let Err(failure) = lock_down_command(spec) {
        return failure;
    }
    let (program, args) = spec
        .argv
        .split_first()
        .expect("the table refuses an empty argv");
    let mut command = std::process::Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(&spec.env)
        .current_dir(&spec.cwd);
    if let Some(arg0) = &spec.arg0 {
        command.arg0(arg0);
    }
    let error = command.exec();
    let errno = error.raw_os_error().unwrap_or(libc::ENOEXEC);
    let line = serde_json::to_vec(&LaunchFailure::Exec { errno }).unwrap_or_default();
    write_fd(fds.launch, &line);
    // SAFETY: leaving the forked child.
    unsafe { libc::_exit(127) }
}

/// Leaves the command no capability, sets no_new_privs, then Landlock and seccomp.
fn lock_down_command(spec: &LaunchSpec) -> Result<(), Failure> {
    drop_capabilities()?;
    rustix::thread::set_no_new_privs(true).map_err(|e| {
        Failure::new(
            "sandboxSetupFailed",
            format!("cannot set no_new_privs: {e}"),
        )
    })?;
    let abi = crate::probe::landlock_abi().map_err(|e| {
        Failure::new(
            "landlockUnavailable",
            format!("the process sandbox needs Landlock, which this kernel does not provide ({e})"),
        )
    })?;
    ruleset::restrict_command(spec.policy.as_ref(), &spec.blocked_tcp_ports, abi)
        .map_err(|e| Failure::new("landlockUnavailable", e.to_string()))?;
    syscall_filter::install_command_filter(spec.network)
        .map_err(|e| Failure::new("seccompUnavailable", e.to_string()))?;
    Ok(())
}

/// Empties the bounding and ambient sets, locks root out of regaining capabilities through
/// exec, and drops every capability now: the command starts with none (`CapEff` 0), so it
/// cannot undo a mount, whatever its user id in the namespace.
fn drop_capabilities() -> Result<(), Failure> {
    let fail = |what: &str| {
        Failure::new(
            "sandboxSetupFailed",
            format!(
                "cannot drop capabilities ({what}): {}",
                io::Error::last_os_error()
            ),
        )
    };
    // SAFETY: prctl and capset with valid arguments.
    unsafe {
        for capability in 0..64 {
            if libc::prctl(libc::PR_CAPBSET_DROP, capability, 0, 0, 0) == -1
                && io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL)
            {
                return Err(fail("bounding set"));
            }
        }
        if libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        ) == -1
        {
            return Err(fail("ambient set"));
        }
        // SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP(_LOCKED) |
        // SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE(_LOCKED)
        let securebits: libc::c_ulong = 0x01 | 0x02 | 0x04 | 0x08 | 0x20 | 0x40 | 0x80;
        if libc::prctl(libc::PR_SET_SECUREBITS, securebits, 0, 0, 0) == -1 {
            return Err(fail("securebits"));
        }
    }
    let none = rustix::thread::CapabilitySet::empty();
    let sets = rustix::thread::CapabilitySets {
        effective: none,
        permitted: none,
        inheritable: none,
    };
    rustix::thread::set_capabilities(None, sets).map_err(|e| {
        Failure::new(
            "sandboxSetupFailed",
            format!("cannot drop capabilities: {e}"),
        )
    })?;
    Ok(())
}

/// The start-up probe: everything a real launch does (namespaces, a view with a writable
/// root and a carve-out, the init with its own `/proc`, the command's lock-down), then the
/// would-be command exits 0. Prints a [`LaunchFailure`] on stderr and exits 1 on failure;
/// the server reads that as the reason sandboxed starts are refused.
fn run_probe() -> i32 {
    let scratch = std::env::temp_dir();
    let spec = LaunchSpec {
        argv: vec!["/bin/true".to_owned()],
        arg0: None,
        cwd: PathBuf::from("/"),
        env: BTreeMap::new(),
        tty: false,
        policy: Some(ResolvedPolicy {
            readable_roots: None,
            writable_roots: vec![scratch.clone()],
            read_only: vec![crate::policy::ReadOnlyPath {
                path: scratch.join(".exec-server-probe"),
                creatable_while_missing: true,
                metadata: false,
            }],
            denied: Vec::new(),
            network: NetworkPolicy::Restricted,
        }),
        network: NetworkPolicy::Restricted,
        hidden: Vec::new(),
        blocked_tcp_ports: Vec::new(),
    };
    let fail = |failure: Failure| {
        let line = serde_json::to_string(&LaunchFailure::Setup {
            reason: failure.reason.to_owned(),
            message: failure.message,
        })
        .unwrap_or_default();
        eprintln!("{line}");
        1
    };
    if let Err(failure) = enter_namespaces(spec.network) {
        return fail(failure);
    }
    if let Err(e) = view::build(spec.policy.as_ref(), &[], false) {
        return fail(view_failure(e));
    }
    // SAFETY: single-threaded.
    match unsafe { libc::fork() } {
        -1 => fail(Failure::new("sandboxSetupFailed", "cannot fork")),
        0 => {
            let code = match view::mount_private_proc() {
                Err(e) => fail(Failure::new(
                    "sandboxSetupFailed",
                    format!("mounting /proc: {e}"),
                )),
                Ok(private_proc) => match lock_down_command(&spec) {
                    Ok(()) => i32::from(!private_proc) * 3,
                    Err(failure) => fail(failure),
                },
            };
            // SAFETY: leaving the forked child.
            unsafe { libc::_exit(code) }
        }
        child => {
            let status = wait_for(child);
            if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                fail(Failure::new("sandboxSetupFailed", "the probe's init died"))
            }
        }
    }
}
