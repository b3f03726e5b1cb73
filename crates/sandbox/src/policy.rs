//! What a sandbox policy means on this machine: the directories the helper may write and the
//! ones it may read, resolved once in the server (which knows its cwd and `$TMPDIR`) and sent
//! to the helper, whose environment is cleared.

use exec_server_environment::FsError;
use exec_server_protocol::sandbox::{ReadOnlyAccess, SandboxContext, SandboxPolicy};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Names that stay read-only directly under every writable root, existing or not: git hooks
/// and config, and the agent's own configuration, could be edited to escalate privileges.
pub const PROTECTED_NAMES: [&str; 3] = [".git", ".codex", ".agents"];

/// What a process needs to read to run at all, granted when a restricted-read policy asks
/// for `include_platform_defaults`.
pub const PLATFORM_READ_DEFAULTS: [&str; 9] = [
    "/bin",
    "/sbin",
    "/usr",
    "/lib",
    "/lib32",
    "/lib64",
    "/etc",
    "/opt",
    "/dev/null",
];

/// A policy as the helper enforces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelperPolicy {
    /// Writable (and readable) directory trees, minus [`PROTECTED_NAMES`] and the gitdir a
    /// `.git` file points to. Empty for `read-only`.
    pub writable_roots: Vec<PathBuf>,
    /// Readable trees besides the writable ones; `None` means everything is readable.
    pub readable_roots: Option<Vec<PathBuf>>,
}

impl HelperPolicy {
    /// Resolves `context` as codex does. `cwd` stands in for a missing `sandboxPolicyCwd`;
    /// `tmpdir` is the server's `$TMPDIR`. Network grants are ignored: the helper never has
    /// network.
    pub fn from_context(
        context: &SandboxContext,
        cwd: &Path,
        tmpdir: Option<&Path>,
    ) -> Result<HelperPolicy, FsError> {
        let cwd = context
            .sandbox_policy_cwd
            .as_ref()
            .map_or_else(|| cwd.to_path_buf(), |c| c.as_path().to_path_buf());
        let (mut writable, read_access) = match &context.sandbox_policy {
            SandboxPolicy::ReadOnly { access, .. } => (Vec::new(), access),
            SandboxPolicy::WorkspaceWrite {
                writable_roots,
                read_only_access,
                exclude_tmpdir_env_var,
                exclude_slash_tmp,
                ..
            } => {
                let mut roots: Vec<PathBuf> = writable_roots
                    .iter()
                    .map(|r| r.as_path().to_path_buf())
                    .collect();
                roots.push(cwd.clone());
                if !exclude_slash_tmp && Path::new("/tmp").is_dir() {
                    roots.push(PathBuf::from("/tmp"));
                }
                if let Some(tmpdir) = tmpdir.filter(|t| !t.as_os_str().is_empty()) {
                    if !exclude_tmpdir_env_var && tmpdir.is_absolute() {
                        roots.push(tmpdir.to_path_buf());
                    }
                }
                (roots, read_only_access)
            }
            // The server runs these in-process; reaching here is a caller's bug.
            SandboxPolicy::DangerFullAccess | SandboxPolicy::ExternalSandbox { .. } => {
                return Err(FsError::SandboxHelper(
                    "the sandbox helper was asked to run a policy that needs no sandbox".into(),
                ))
            }
        };
        let extra = context
            .additional_permissions
            .as_ref()
            .and_then(|p| p.file_system.as_ref());
        if let Some(write) = extra.and_then(|fs| fs.write.as_ref()) {
            writable.extend(write.iter().map(|p| p.as_path().to_path_buf()));
        }
        dedup(&mut writable);

        let readable_roots = match read_access {
            ReadOnlyAccess::FullAccess => None,
            ReadOnlyAccess::Restricted {
                include_platform_defaults,
                readable_roots,
            } => {
                let mut roots: Vec<PathBuf> = readable_roots
                    .iter()
                    .map(|r| r.as_path().to_path_buf())
                    .collect();
                if *include_platform_defaults {
                    roots.extend(PLATFORM_READ_DEFAULTS.iter().map(PathBuf::from));
                }
                if let Some(read) = extra.and_then(|fs| fs.read.as_ref()) {
                    roots.extend(read.iter().map(|p| p.as_path().to_path_buf()));
                }
                dedup(&mut roots);
                Some(roots)
            }
        };
        Ok(HelperPolicy {
            writable_roots: writable,
            readable_roots,
        })
    }
}

fn dedup(paths: &mut Vec<PathBuf>) {
    let mut seen = std::collections::HashSet::new();
    paths.retain(|p| seen.insert(p.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use exec_server_protocol::sandbox::{FileSystemPermissions, PermissionProfile};
    use exec_server_protocol::AbsolutePath;

    fn abs(p: &str) -> AbsolutePath {
        AbsolutePath::parse(p).unwrap()
    }

    fn workspace_write(exclude_tmp: bool) -> SandboxPolicy {
        SandboxPolicy::WorkspaceWrite {
            writable_roots: vec![abs("/w")],
            read_only_access: ReadOnlyAccess::FullAccess,
            network_access: true,
            exclude_tmpdir_env_var: exclude_tmp,
            exclude_slash_tmp: exclude_tmp,
        }
    }

    #[test]
    fn workspace_write_roots_are_codexs() {
        let ctx = SandboxContext::new(workspace_write(false));
        let policy =
            HelperPolicy::from_context(&ctx, Path::new("/srv/cwd"), Some(Path::new("/var/t")))
                .unwrap();
        assert_eq!(
            policy.writable_roots,
            ["/w", "/srv/cwd", "/tmp", "/var/t"]
                .map(PathBuf::from)
                .to_vec()
        );
        assert_eq!(policy.readable_roots, None);

        let mut ctx = SandboxContext::new(workspace_write(true));
        ctx.sandbox_policy_cwd = Some(abs("/given"));
        let policy =
            HelperPolicy::from_context(&ctx, Path::new("/srv/cwd"), Some(Path::new("/var/t")))
                .unwrap();
        assert_eq!(
            policy.writable_roots,
            ["/w", "/given"].map(PathBuf::from).to_vec()
        );
    }

    #[test]
    fn read_only_restricted_reads_and_additional_permissions() {
        let mut ctx = SandboxContext::new(SandboxPolicy::ReadOnly {
            access: ReadOnlyAccess::Restricted {
                include_platform_defaults: false,
                readable_roots: vec![abs("/r")],
            },
            network_access: true,
        });
        ctx.additional_permissions = Some(PermissionProfile {
            network: None,
            file_system: Some(FileSystemPermissions {
                read: Some(vec![abs("/extra-r")]),
                write: Some(vec![abs("/extra-w")]),
            }),
        });
        let policy = HelperPolicy::from_context(&ctx, Path::new("/cwd"), None).unwrap();
        assert_eq!(policy.writable_roots, vec![PathBuf::from("/extra-w")]);
        assert_eq!(
            policy.readable_roots,
            Some(vec![PathBuf::from("/r"), PathBuf::from("/extra-r")])
        );
    }

    #[test]
    fn unsandboxed_policies_are_not_the_helpers_business() {
        let ctx = SandboxContext::new(SandboxPolicy::DangerFullAccess);
        assert!(HelperPolicy::from_context(&ctx, Path::new("/"), None).is_err());
    }
}
