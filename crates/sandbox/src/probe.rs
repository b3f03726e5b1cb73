//! The start-up probe: which of the kernel's sandboxing mechanisms this machine has.
//!
//! Each check is one cheap syscall, run in the server before any helper is spawned, so a
//! policy that needs a missing mechanism fails at once with an error that names it. The
//! helper still insists on every layer itself (a probe can be wrong; the lock-down cannot).

use std::io;

/// Names mechanisms to report as missing whatever the kernel says, so an operator (or a
/// test) can check that the server then refuses sandboxed calls rather than run them
/// unconfined: a comma-separated list of `landlock`, `seccomp`, `userns`. It can only make
/// the server stricter.
pub const ASSUME_MISSING_ENV: &str = "EXEC_SERVER_SANDBOX_ASSUME_MISSING";

/// What the probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxCaps {
    /// The kernel's Landlock ABI version, `None` when Landlock is not built in or disabled.
    pub landlock_abi: Option<u32>,
    /// Seccomp filters (`SECCOMP_MODE_FILTER`) are available.
    pub seccomp: bool,
    /// Unprivileged user namespaces are enabled (reported; the fs helper does not need them).
    pub user_namespaces: bool,
}

impl SandboxCaps {
    /// Probes the running kernel, honouring [`ASSUME_MISSING_ENV`].
    pub fn probe() -> SandboxCaps {
        let assumed_missing = std::env::var(ASSUME_MISSING_ENV).unwrap_or_default();
        let missing = |name: &str| assumed_missing.split(',').any(|m| m.trim() == name);
        SandboxCaps {
            landlock_abi: if missing("landlock") {
                None
            } else {
                landlock_abi().ok()
            },
            seccomp: !missing("seccomp") && seccomp_filters_available(),
            user_namespaces: !missing("userns") && user_namespaces_enabled(),
        }
    }

    /// Why the fs helper cannot run here, naming the missing mechanism; `None` when it can.
    pub fn fs_helper_unavailable(&self, policy: &str) -> Option<String> {
        if self.landlock_abi.is_none() {
            return Some(format!(
                "the {policy} sandbox policy needs Landlock, which this kernel does not provide \
                 (built without it, or not enabled at boot); the call was refused rather than \
                 run unsandboxed"
            ));
        }
        if !self.seccomp {
            return Some(format!(
                "the {policy} sandbox policy needs seccomp filters, which this kernel does not \
                 provide; the call was refused rather than run unsandboxed"
            ));
        }
        None
    }
}

/// `landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)`: the ABI version, or
/// ENOSYS (not built) / EOPNOTSUPP (disabled at boot).
pub fn landlock_abi() -> io::Result<u32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attribute pointer and size 0 the kernel reads no memory.
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if abi < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(abi as u32)
}

/// Asks to install a filter from a null program pointer: a kernel with seccomp filters
/// fails to read it (EFAULT, or EACCES without no_new_privs), one without them says EINVAL.
/// Nothing is installed either way.
fn seccomp_filters_available() -> bool {
    // SAFETY: the kernel validates the (null) pointer and installs nothing.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            std::ptr::null::<libc::c_void>(),
        )
    };
    let errno = io::Error::last_os_error().raw_os_error();
    rc == -1 && matches!(errno, Some(libc::EFAULT) | Some(libc::EACCES))
}

fn user_namespaces_enabled() -> bool {
    std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .is_some_and(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_missing_mechanism() {
        let none = SandboxCaps {
            landlock_abi: None,
            seccomp: true,
            user_namespaces: false,
        };
        assert!(none
            .fs_helper_unavailable("read-only")
            .unwrap()
            .contains("needs Landlock"));
        let no_seccomp = SandboxCaps {
            landlock_abi: Some(7),
            seccomp: false,
            user_namespaces: false,
        };
        assert!(no_seccomp
            .fs_helper_unavailable("workspace-write")
            .unwrap()
            .contains("needs seccomp"));
        let all = SandboxCaps {
            landlock_abi: Some(1),
            seccomp: true,
            user_namespaces: true,
        };
        assert_eq!(all.fs_helper_unavailable("read-only"), None);
    }
}
