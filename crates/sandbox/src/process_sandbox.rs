//! The server's side of sandboxed processes: [`CommandSandbox`] checks a `process/start`'s
//! `sandbox` and turns it into a launch of [`crate::launcher`], or refuses it.
//!
//! Fail closed: a policy this server does not enforce, or a mechanism this machine lacks,
//! refuses the start with -32602 and a `data.reason` naming it; nothing is spawned. Whether
//! the machine has what it takes is found out once, by a probe that builds a real sandbox
//! (namespaces, the mount view, Landlock, seccomp) and runs nothing in it.

use crate::launcher::{LaunchSpec, LAUNCHER_ARG, PROBE_ARG};
use crate::policy::{self, Enforcement, Surroundings};
use crate::probe::SandboxCaps;
use exec_server_environment::local::{
    CommandSpec, LaunchFailure, ProcessSandbox, SandboxLaunch, SandboxRefusal,
};
use exec_server_protocol::sandbox::{NetworkPolicy, SandboxContext};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};

/// What a sandboxed command must not reach of the server that runs it. Filled in by `serve`
/// once it has bound its listener.
#[derive(Debug, Default)]
pub struct ServerFootprint {
    inner: RwLock<Footprint>,
}

#[derive(Debug, Default, Clone)]
struct Footprint {
    tcp_ports: Vec<u16>,
    hidden_paths: Vec<PathBuf>,
}

impl ServerFootprint {
    /// The server listens on these TCP ports; with the network enabled, a sandboxed command
    /// may not connect to them (on any address: Landlock's rules are by port).
    pub fn set_tcp_ports(&self, ports: Vec<u16>) {
        self.inner
            .write()
            .expect("footprint lock poisoned")
            .tcp_ports = ports;
    }

    /// Files a sandboxed command must not see (the token file, TLS keys, the server's Unix
    /// socket): they are covered by an empty file in its view.
    pub fn hide(&self, path: PathBuf) {
        self.inner
            .write()
            .expect("footprint lock poisoned")
            .hidden_paths
            .push(path);
    }

    fn get(&self) -> Footprint {
        self.inner.read().expect("footprint lock poisoned").clone()
    }
}

/// How the probe went: the mechanisms in use, or why sandboxed starts are refused.
#[derive(Debug, Clone)]
enum Readiness {
    Ready { private_proc: bool },
    Refused(SandboxRefusal),
}

/// Runs sandboxed commands in namespaces, locked down with Landlock and seccomp.
#[derive(Debug)]
pub struct CommandSandbox {
    /// The `exec-server` binary, run as the launcher (in production
    /// [`self_exe::path`](crate::self_exe::path), never a path that could be replaced).
    program: PathBuf,
    caps: SandboxCaps,
    footprint: Arc<ServerFootprint>,
    readiness: OnceLock<Readiness>,
}

impl CommandSandbox {
    /// A sandbox that runs `program` as its launcher, with the mechanisms `caps` found,
    /// keeping commands away from what `footprint` names.
    pub fn new(
        program: PathBuf,
        caps: SandboxCaps,
        footprint: Arc<ServerFootprint>,
    ) -> CommandSandbox {
        CommandSandbox {
            program,
            caps,
            footprint,
            readiness: OnceLock::new(),
        }
    }

    fn readiness(&self) -> &Readiness {
        self.readiness.get_or_init(|| self.probe())
    }

    /// Refusals that need no probe (what `SandboxCaps` says is missing, including what an
    /// operator told it to assume), then a real launch that runs nothing.
    fn probe(&self) -> Readiness {
        let refuse = |reason: &str, message: &str| {
            Readiness::Refused(SandboxRefusal {
                reason: reason.to_owned(),
                message: format!(
                    "{message}; the start was refused rather than run unconfined (see \
                     docs/DEPLOYMENT.md)"
                ),
            })
        };
        if !self.caps.user_namespaces {
            return refuse(
                "userNamespacesUnavailable",
                "the process sandbox needs unprivileged user namespaces, which this machine \
                 does not allow",
            );
        }
        if self.caps.landlock_abi.is_none() {
            return refuse(
                "landlockUnavailable",
                "the process sandbox needs Landlock, which this kernel does not provide",
            );
        }
        if !self.caps.seccomp {
            return refuse(
                "seccompUnavailable",
                "the process sandbox needs seccomp filters, which this kernel does not provide",
            );
        }
        let output = std::process::Command::new(&self.program)
            .args([LAUNCHER_ARG, PROBE_ARG])
            .env_clear()
            .stdin(std::process::Stdio::null())
            .output();
        match output {
            Ok(out) if out.status.code() == Some(0) => Readiness::Ready { private_proc: true },
            // The sandbox works, but the kernel would not mount a /proc of its own.
            Ok(out) if out.status.code() == Some(3) => Readiness::Ready {
                private_proc: false,
            },
            Ok(out) => {
                let line = String::from_utf8_lossy(&out.stderr);
                match serde_json::from_str::<LaunchFailure>(line.trim()) {
                    Ok(LaunchFailure::Setup { reason, message }) => {
                        Readiness::Refused(SandboxRefusal {
                            reason,
                            message: format!("{message}; sandboxed starts are refused"),
                        })
                    }
                    _ => refuse(
                        "sandboxSetupFailed",
                        &format!(
                            "the process sandbox's start-up check failed ({}): {}",
                            out.status,
                            line.trim()
                        ),
                    ),
                }
            }
            Err(e) => refuse(
                "sandboxSetupFailed",
                &format!("cannot run the process sandbox's start-up check: {e}"),
            ),
        }
    }
}

/// Removes `path` (a physical path) if something is there now: a protected name a sandboxed
/// command created although the policy forbids it. Its parent is reached without following
/// any symlink, and the entry itself is never followed, so this only ever removes what is
/// at that very place.
fn remove_created(path: &Path) -> std::io::Result<bool> {
    use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, ResolveFlags};
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(false);
    };
    let dir = match rfs::openat2(
        rfs::CWD,
        parent,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::NO_SYMLINKS,
    ) {
        Ok(dir) => dir,
        Err(rustix::io::Errno::NOENT) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let stat = match rfs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => stat,
        Err(rustix::io::Errno::NOENT) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    if rfs::FileType::from_raw_mode(stat.st_mode) == rfs::FileType::Directory {
        // Through the descriptor: std's remove_dir_all never follows a link inside.
        let through = PathBuf::from(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&dir)
        ))
        .join(name);
        std::fs::remove_dir_all(through)?;
    } else {
        rfs::unlinkat(&dir, name, AtFlags::empty())?;
    }
    Ok(true)
}

impl ProcessSandbox for CommandSandbox {
    fn prepare(
        &self,
        context: &SandboxContext,
        command: &CommandSpec,
    ) -> Result<SandboxLaunch, SandboxRefusal> {
        let unsupported = |message: String| SandboxRefusal {
            reason: "unsupportedSandboxPolicy".to_owned(),
            message,
        };
        let place = Surroundings {
            cwd: command.cwd.clone(),
            home: command
                .env
                .get("HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(PathBuf::from)),
            // `tmpdir` is the command's: it is the one that will use it.
            tmpdir: command.env.get("TMPDIR").map(PathBuf::from),
            slash_tmp_exists: Path::new("/tmp").is_dir(),
        };
        let enforcement = policy::resolve(context, &place).map_err(|e| unsupported(e.message))?;
        let (policy, network) = match enforcement {
            // Nothing to confine (`disabled`, or the whole disk with the network on): codex
            // runs these as they are, and so do we.
            Enforcement::FullDisk {
                network: NetworkPolicy::Enabled,
            } => return Ok(SandboxLaunch::Unconfined),
            Enforcement::FullDisk { network } => (None, network),
            Enforcement::Restricted(policy) => {
                let network = policy.network;
                (Some(policy), network)
            }
        };
        if let Readiness::Refused(refusal) = self.readiness() {
            return Err(refusal.clone());
        }
        if let Some(policy) = &policy {
            // A mount can only mask what exists; a denied path that a command could create
            // in a writable root would not be denied at all.
            for denied in &policy.denied {
                let under_writable = policy.writable_roots.iter().any(|w| denied.starts_with(w));
                if under_writable && std::fs::symlink_metadata(denied).is_err() {
                    return Err(unsupported(format!(
                        "sandbox: the denied path {} does not exist inside a writable root, so \
                         it cannot be masked; create it first or deny its existing parent",
                        denied.display()
                    )));
                }
            }
        }
        let footprint = self.footprint.get();
        // With the network restricted, the command has no network at all.
        let blocked_tcp_ports = if network == NetworkPolicy::Enabled {
            footprint.tcp_ports.clone()
        } else {
            Vec::new()
        };
        // (The table has removed the server's secrets from it.)
        let env = command.env.clone();
        let spec = LaunchSpec {
            argv: command.argv.clone(),
            arg0: command.arg0.clone(),
            cwd: command.cwd.clone(),
            env,
            tty: command.tty,
            policy,
            network,
            hidden: footprint.hidden_paths,
            blocked_tcp_ports,
        };
        let spec = serde_json::to_vec(&spec).map_err(|e| SandboxRefusal {
            reason: "unsupportedSandboxPolicy".to_owned(),
            message: format!("the sandboxed command cannot be described to the launcher: {e}"),
        })?;
        Ok(SandboxLaunch::Wrapped {
            program: self.program.clone(),
            args: vec![LAUNCHER_ARG.into()],
            spec,
        })
    }

    fn sweep(&self, uncreatable: &[PathBuf]) -> Vec<PathBuf> {
        uncreatable
            .iter()
            .filter(|path| remove_created(path).unwrap_or(false))
            .cloned()
            .collect()
    }

    fn mechanisms(&self) -> Vec<String> {
        match self.readiness() {
            Readiness::Refused(_) => Vec::new(),
            Readiness::Ready { private_proc } => {
                let mut mechanisms: Vec<String> = [
                    "userNamespace",
                    "mountNamespace",
                    "pidNamespace",
                    "ipcNamespace",
                    "networkNamespace",
                    "seccomp",
                ]
                .map(str::to_owned)
                .to_vec();
                if let Some(abi) = self.caps.landlock_abi {
                    mechanisms.push(format!("landlockAbi{abi}"));
                }
                mechanisms.push(
                    if *private_proc {
                        "privateProc"
                    } else {
                        "hostProc"
                    }
                    .to_owned(),
                );
                mechanisms
            }
        }
    }
}
