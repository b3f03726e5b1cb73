//! The helper's lock-down, in order: no_new_privs, Landlock, seccomp. It runs in the helper
//! before the operation touches anything, and it is all or nothing.

use crate::policy::ResolvedPolicy;
use crate::{probe, ruleset, syscall_filter};

/// Why the helper could not lock itself down; the operation is refused.
#[derive(Debug, thiserror::Error)]
pub enum LockDownError {
    #[error("the sandbox could not set no_new_privs: {0}")]
    NoNewPrivs(std::io::Error),
    #[error("the sandbox needs Landlock: {0}")]
    Landlock(#[from] ruleset::RulesetError),
    #[error("the sandbox needs seccomp: {0}")]
    Seccomp(#[from] syscall_filter::FilterError),
}

/// Locks the calling process down to `policy`. Must run while the process has one thread:
/// both Landlock and seccomp apply to the calling thread and what it creates afterwards.
pub fn lock_down(policy: &ResolvedPolicy) -> Result<(), LockDownError> {
    // Required by both layers for an unprivileged process, and what stops a setuid program
    // from regaining privileges (the filter denies exec anyway).
    rustix::thread::set_no_new_privs(true).map_err(|e| LockDownError::NoNewPrivs(e.into()))?;
    let abi = probe::landlock_abi()
        .map_err(|_| LockDownError::Landlock(ruleset::RulesetError::Unavailable))?;
    ruleset::restrict_self(policy, abi)?;
    syscall_filter::install()?;
    Ok(())
}
