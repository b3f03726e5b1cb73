//! Layer 2, seccomp.
//!
//! For the fs helper: the system calls it never needs fail with EPERM, so even a helper
//! subverted mid-operation cannot reach the network, run a program, change the shape of its
//! sandbox, or use root's powers beyond reading and writing files.
//!
//! For a sandboxed command: tracing and io_uring are denied (io_uring can make sockets
//! without `socket()`), and so is typing into a terminal (TIOCSTI); with the network
//! restricted, every socket but a Unix one, and the calls that connect, listen or exchange
//! data on sockets (codex's set, reference B.3).
//!
//! Two filters each, both installed: seccompiler's deny-list, and a small hand-written one
//! for what seccompiler cannot say (x32 syscall numbers, and an errno other than EPERM).

use exec_server_protocol::sandbox::NetworkPolicy;
use seccompiler::{
    apply_filter, sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp,
    SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
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

/// Denied outright (syscall numbers; seccompiler takes them as i64, and the helper supports
/// 64-bit targets only): networking (every socket family: the helper has no use for even a
/// unix socket), running programs, namespaces and mounts, tracing other processes, the
/// kernel interfaces that can do any of that indirectly (io_uring, bpf, keyrings), and the
/// privileged calls a root helper would otherwise keep: device nodes (Landlock allows
/// `mknod` in a writable tree), file handles that bypass paths, modules, kexec, reboot, swap.
fn denied_syscalls() -> Vec<i64> {
    let mut denied = vec![
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
        libc::SYS_mknodat,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_kexec_load,
        libc::SYS_reboot,
        libc::SYS_swapon,
        libc::SYS_swapoff,
    ];
    #[cfg(target_arch = "x86_64")]
    denied.extend([libc::SYS_mknod, libc::SYS_kexec_file_load]);
    denied
}

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

/// The helper's deny-list, compiled.
pub fn deny_list_filter() -> Result<BpfProgram, FilterError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = denied_syscalls()
        .into_iter()
        .map(|nr| (nr, Vec::new()))
        .collect();
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

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

/// The x32 ABI's syscall numbers have this bit set; seccompiler does not look at it, so a
/// filter keyed on numbers would let `socket | X32_BIT` through on a kernel with x32.
const X32_BIT: u32 = 0x4000_0000;

/// The hand-written filter: on this architecture, any x32 syscall is EPERM, and `clone3` is
/// ENOSYS. `clone3` passes its flags in memory, out of any filter's reach; ENOSYS (unlike
/// EPERM) makes glibc fall back to `clone`, whose flags the deny-list checks.
pub fn prefilter() -> BpfProgram {
    prefilter_with(true)
}

/// [`prefilter`], with `clone3` left alone when `clone3_enosys` is false (a sandboxed command
/// may create namespaces of its own inside its sandbox, so its `clone` flags are not
/// checked).
fn prefilter_with(clone3_enosys: bool) -> BpfProgram {
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    // Offsets into `struct seccomp_data`.
    const NR: u32 = 0;
    const ARCH: u32 = 4;
    let insn = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    vec![
        /* 0 */ insn(LD_W_ABS, 0, 0, ARCH),
        /* 1 */
        insn(JEQ_K, 0, 3, AUDIT_ARCH), // another ABI: 5 (allow; the deny-list kills it)
        /* 2 */ insn(LD_W_ABS, 0, 0, NR),
        /* 3 */ insn(JGE_K, 2, 0, X32_BIT), // x32: 6
        /* 4 */
        insn(
            JEQ_K,
            if clone3_enosys { 2 } else { 0 },
            0,
            libc::SYS_clone3 as u32,
        ), // clone3: 7
        /* 5 */ insn(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
        /* 6 */ insn(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        /* 7 */ insn(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
    ]
}

/// Installs both filters on this thread (the helper has no other). Needs no_new_privs,
/// which [`crate::lockdown`] sets first.
pub fn install() -> Result<(), FilterError> {
    apply_filter(&deny_list_filter()?)?;
    apply_filter(&prefilter())?;
    Ok(())
}

/// The syscalls a sandboxed command never gets: tracing other processes or their memory,
/// io_uring (it makes sockets and connections without the calls filtered here), and BPF.
const COMMAND_DENIED: [i64; 7] = [
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_bpf,
];

/// The IP protocols a sandboxed command with the network enabled may open sockets of: the
/// default (0) and explicit TCP, UDP and ICMP (ping). Landlock's TCP port rules, which keep
/// the server's own port closed, see only plain TCP connects: an MPTCP socket (262) reaches a
/// TCP listener without them, so every protocol not listed is refused.
const IP_PROTOCOLS_ALLOWED: [u64; 5] = [0, 1, 6, 17, 58];

/// Socket types other than stream and datagram (raw, reliable datagram, sequenced packet,
/// which may mean SCTP, DCCP, packet): refused for IP sockets.
const IP_SOCKET_TYPES_REFUSED: [u64; 5] = [3, 4, 5, 6, 10];

/// `MSG_FASTOPEN`: `sendto`/`sendmsg` with it connects a TCP socket without `connect()`,
/// and so without Landlock's port rules.
const MSG_FASTOPEN: u64 = 0x2000_0000;

/// With the network restricted, these fail whatever the socket (codex's set).
const COMMAND_NETWORK_DENIED: [i64; 13] = [
    libc::SYS_connect,
    libc::SYS_accept,
    libc::SYS_accept4,
    libc::SYS_bind,
    libc::SYS_listen,
    libc::SYS_getpeername,
    libc::SYS_getsockname,
    libc::SYS_shutdown,
    libc::SYS_sendto,
    libc::SYS_sendmmsg,
    libc::SYS_recvmmsg,
    libc::SYS_getsockopt,
    libc::SYS_setsockopt,
];

/// A sandboxed command's deny-list, compiled.
pub fn command_filter(network: NetworkPolicy) -> Result<BpfProgram, FilterError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = COMMAND_DENIED
        .into_iter()
        .map(|nr| (nr, Vec::new()))
        .collect();
    // Typing into a terminal (and its Linux console cousin) could drive whatever reads it.
    let ioctl = [libc::TIOCSTI, libc::TIOCLINUX]
        .into_iter()
        .map(|request| {
            SeccompRule::new(vec![SeccompCondition::new(
                1,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::Eq,
                request,
            )?])
        })
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_ioctl, ioctl);
    if network == NetworkPolicy::Enabled {
        let mut socket_rules = Vec::new();
        for domain in [libc::AF_INET as u64, libc::AF_INET6 as u64] {
            let is_domain =
                || SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, domain);
            // Any protocol not allowed.
            let mut conditions = vec![is_domain()?];
            for protocol in IP_PROTOCOLS_ALLOWED {
                conditions.push(SeccompCondition::new(
                    2,
                    SeccompCmpArgLen::Dword,
                    SeccompCmpOp::Ne,
                    protocol,
                )?);
            }
            socket_rules.push(SeccompRule::new(conditions)?);
            // Any type but stream and datagram (the type's low bits; the rest are flags).
            for kind in IP_SOCKET_TYPES_REFUSED {
                socket_rules.push(SeccompRule::new(vec![
                    is_domain()?,
                    SeccompCondition::new(
                        1,
                        SeccompCmpArgLen::Dword,
                        SeccompCmpOp::MaskedEq(0xf),
                        kind,
                    )?,
                ])?);
            }
        }
        rules.insert(libc::SYS_socket, socket_rules);
        for (nr, flags_arg) in [
            (libc::SYS_sendto, 3),
            (libc::SYS_sendmsg, 2),
            (libc::SYS_sendmmsg, 3),
        ] {
            rules.insert(
                nr,
                vec![SeccompRule::new(vec![SeccompCondition::new(
                    flags_arg,
                    SeccompCmpArgLen::Dword,
                    SeccompCmpOp::MaskedEq(MSG_FASTOPEN),
                    MSG_FASTOPEN,
                )?])?],
            );
        }
    }
    if network == NetworkPolicy::Restricted {
        rules.extend(
            COMMAND_NETWORK_DENIED
                .into_iter()
                .map(|nr| (nr, Vec::new())),
        );
        for nr in [libc::SYS_socket, libc::SYS_socketpair] {
            rules.insert(
                nr,
                vec![SeccompRule::new(vec![SeccompCondition::new(
                    0,
                    SeccompCmpArgLen::Dword,
                    SeccompCmpOp::Ne,
                    libc::AF_UNIX as u64,
                )?])?],
            );
        }
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        target_arch()?,
    )?;
    Ok(filter.try_into()?)
}

/// Installs a sandboxed command's filters on this thread. Needs no_new_privs.
pub fn install_command_filter(network: NetworkPolicy) -> Result<(), FilterError> {
    apply_filter(&command_filter(network)?)?;
    apply_filter(&prefilter_with(false))?;
    Ok(())
}
