//! Layer 2, seccomp: the system calls the helper never needs fail with EPERM, so even a
//! helper subverted mid-operation cannot reach the network, run a program, or change the
//! shape of its sandbox.

use seccompiler::{
    apply_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

/// Why the filter could not be installed. The helper refuses to run the operation.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("seccomp is not supported on this architecture ({0})")]
    Architecture(&'static str),
    #[error("the seccomp filter could not be built: {0}")]
    Build(#[from] seccompiler::BackendError),
    #[error("the seccomp filter could not be installed: {0}")]
    Install(#[from] seccompiler::Error),
}

/// Syscall numbers (seccompiler takes them as i64; the helper supports 64-bit targets only).
///
/// Denied outright: networking (every socket family: the helper has no use for even a unix
/// socket), running programs, namespaces and mounts, tracing other processes, and the
/// kernel interfaces that can do any of that indirectly (io_uring, bpf, keyrings).
const DENIED: &[i64] = &[
    libc::SYS_socket,
    libc::SYS_socketpair,
    libc::SYS_connect,
    libc::SYS_bind,
    libc::SYS_listen,
    libc::SYS_accept,
    libc::SYS_accept4,
    libc::SYS_sendto,
    libc::SYS_sendmsg,
    libc::SYS_sendmmsg,
    libc::SYS_recvmmsg,
    libc::SYS_execve,
    libc::SYS_execveat,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_bpf,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_open_tree,
    libc::SYS_move_mount,
    libc::SYS_fsopen,
    libc::SYS_fsmount,
    // clone3 passes its flags in memory, out of a filter's reach; glibc falls back to clone.
    libc::SYS_clone3,
];

/// `clone` flags that would make a new namespace.
const NAMESPACE_FLAGS: &[libc::c_int] = &[
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWNS,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWCGROUP,
];

fn target_arch() -> Result<TargetArch, FilterError> {
    TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|_| FilterError::Architecture(std::env::consts::ARCH))
}

/// The helper's filter, compiled.
pub fn helper_filter() -> Result<BpfProgram, FilterError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        DENIED.iter().map(|&nr| (nr, Vec::new())).collect();
    let clone_rules = NAMESPACE_FLAGS
        .iter()
        .map(|&flag| {
            let flag = flag as u64;
            SeccompRule::new(vec![SeccompCondition::new(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(flag),
                flag,
            )?])
        })
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_clone, clone_rules);
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        target_arch()?,
    )?;
    Ok(filter.try_into()?)
}

/// Installs the helper's filter on this thread (the helper has no other). Needs
/// no_new_privs, which [`crate::lockdown`] sets first.
pub fn install() -> Result<(), FilterError> {
    let program = helper_filter()?;
    apply_filter(&program)?;
    Ok(())
}
