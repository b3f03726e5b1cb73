//! Layer 1, Landlock: the kernel confines every path the helper touches to the policy's
//! trees, checked on inodes at access time, so symlinks, `..`, races and hard links cannot
//! lead out of them.

use crate::policy::ResolvedPolicy;
use landlock::{
    Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath, PathFd,
    Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};
use std::path::{Path, PathBuf};

/// Why Landlock could not be put in place. The helper refuses to run the operation.
#[derive(Debug, thiserror::Error)]
pub enum RulesetError {
    #[error("Landlock is not available on this kernel")]
    Unavailable,
    #[error("Landlock could not be enforced: {0}")]
    Kernel(#[from] landlock::RulesetError),
    #[error(
        "Landlock was only partially enforced (ABI {0}); refusing to run with a weaker sandbox"
    )]
    PartiallyEnforced(u32),
}

/// The newest ABI whose rights we ask for. Later ABIs add network and scope rights, which
/// the seccomp filter covers for the helper.
const NEWEST_USED_ABI: u32 = 5;

/// The ABI that brought scopes (signals, abstract Unix sockets).
const SCOPES_ABI: u32 = 6;

/// The ABI that brought TCP port rules.
const NETWORK_ABI: u32 = 4;

fn abi_from(version: u32) -> Option<ABI> {
    Some(match version.min(NEWEST_USED_ABI) {
        1 => ABI::V1,
        2 => ABI::V2,
        3 => ABI::V3,
        4 => ABI::V4,
        5 => ABI::V5,
        _ => return None,
    })
}

/// Restricts this thread (and what it spawns) to `policy`: read-only on the readable trees
/// (everything when reads are unrestricted), every filesystem right on the writable ones.
/// Every right of the kernel's ABI (up to [`NEWEST_USED_ABI`]) is handled, as a hard
/// requirement, and anything short of full enforcement is an error.
pub fn restrict_self(policy: &ResolvedPolicy, kernel_abi: u32) -> Result<(), RulesetError> {
    let abi = abi_from(kernel_abi).ok_or(RulesetError::Unavailable)?;
    let all = AccessFs::from_all(abi);
    let read = AccessFs::from_read(abi);
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(all)?
        .create()?;
    let readable: Vec<&Path> = match &policy.readable_roots {
        None => vec![Path::new("/")],
        Some(roots) => roots.iter().map(|r| r.as_path()).collect(),
    };
    for root in readable {
        ruleset = add_rule(ruleset, root, read, abi)?;
    }
    for root in &policy.writable_roots {
        ruleset = add_rule(ruleset, root, all, abi)?;
    }
    let status = ruleset.restrict_self()?;
    if status.ruleset != RulesetStatus::FullyEnforced {
        return Err(RulesetError::PartiallyEnforced(kernel_abi));
    }
    Ok(())
}

/// Grants `access` beneath `path`. A path that does not exist grants nothing (there is
/// nothing there to allow); a file gets only the rights that apply to files.
fn add_rule(
    ruleset: landlock::RulesetCreated,
    path: &Path,
    access: BitFlags<AccessFs>,
    abi: ABI,
) -> Result<landlock::RulesetCreated, RulesetError> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(ruleset);
    };
    let Ok(fd) = PathFd::new(path) else {
        return Ok(ruleset);
    };
    let access = if meta.is_dir() {
        access
    } else {
        access & AccessFs::from_file(abi)
    };
    Ok(ruleset.add_rule(PathBeneath::new(fd, access))?)
}

/// Restricts a sandboxed command (and everything it starts) to `policy`: reads on the
/// readable trees (everything when reads are unrestricted), every right on the writable
/// ones and on the sandbox's own `/dev`; with a restricted read policy `/proc` stays
/// readable too. The mount namespace already makes everything else read-only and masks
/// carve-outs; Landlock adds what mounts cannot say (restricted reads), forbids any mount
/// change, and keeps ptrace and `/proc/<pid>` of processes outside the sandbox out of reach.
///
/// With ABI 6 and later, signals and abstract Unix sockets are scoped to the sandbox. When
/// `blocked_tcp_ports` is not empty, TCP connections to those ports are refused (ABI 4 and
/// later; on an older kernel the launch is refused instead).
///
/// `policy` `None` leaves the filesystem alone (a full-disk policy).
pub fn restrict_command(
    policy: Option<&ResolvedPolicy>,
    blocked_tcp_ports: &[u16],
    kernel_abi: u32,
) -> Result<(), RulesetError> {
    let abi = abi_from(kernel_abi).ok_or(RulesetError::Unavailable)?;
    let mut ruleset = Ruleset::default().set_compatibility(CompatLevel::HardRequirement);
    if policy.is_some() {
        ruleset = ruleset.handle_access(AccessFs::from_all(abi))?;
    }
    if kernel_abi >= SCOPES_ABI {
        ruleset = ruleset.scope(Scope::from_all(ABI::V6))?;
    }
    if !blocked_tcp_ports.is_empty() {
        if kernel_abi < NETWORK_ABI {
            return Err(RulesetError::PartiallyEnforced(kernel_abi));
        }
        ruleset = ruleset.handle_access(AccessNet::ConnectTcp)?;
    }
    if policy.is_none() && kernel_abi < SCOPES_ABI && blocked_tcp_ports.is_empty() {
        // Nothing this kernel can add for a full-disk policy.
        return Ok(());
    }
    let mut ruleset = ruleset.create()?;
    if let Some(policy) = policy {
        let all = AccessFs::from_all(abi);
        let read = AccessFs::from_read(abi);
        match &policy.readable_roots {
            None => ruleset = add_rule(ruleset, Path::new("/"), read, abi)?,
            Some(roots) => {
                for root in roots
                    .iter()
                    .map(PathBuf::as_path)
                    .chain([Path::new("/proc")])
                {
                    ruleset = add_rule(ruleset, root, read, abi)?;
                }
            }
        }
        for root in policy
            .writable_roots
            .iter()
            .map(PathBuf::as_path)
            .chain([Path::new("/dev")])
        {
            ruleset = add_rule(ruleset, root, all, abi)?;
        }
    }
    if !blocked_tcp_ports.is_empty() {
        let blocked: std::collections::HashSet<u16> = blocked_tcp_ports.iter().copied().collect();
        for port in (0..=u16::MAX).filter(|p| !blocked.contains(p)) {
            ruleset = ruleset.add_rule(NetPort::new(port, AccessNet::ConnectTcp))?;
        }
    }
    let status = ruleset.restrict_self()?;
    if status.ruleset != RulesetStatus::FullyEnforced {
        return Err(RulesetError::PartiallyEnforced(kernel_abi));
    }
    Ok(())
}
