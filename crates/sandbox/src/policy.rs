//! What a `sandbox` object means on this machine: both of its shapes (the April
//! `sandboxPolicy` and the current permission profile) resolved into one [`ResolvedPolicy`]
//! of concrete paths, which the fs helper and the process sandbox enforce.
//!
//! Resolution needs facts about the place the policy applies to (its cwd, the user's home,
//! `$TMPDIR`, whether `/tmp` exists), which [`Surroundings`] carries; it never looks at what
//! lies inside the roots. What exists there (a `.git` file and the gitdir it names, a
//! missing protected name) is the enforcer's business, at the time it enforces.
//!
//! Precedence of profile entries (reference A.5): the entry with the most path components
//! that covers a path decides; at equal depth `deny` beats `write`, which beats `read`; a
//! path no entry covers is denied.

use exec_server_protocol::sandbox::{
    FileSystemAccess, FileSystemEntry, FileSystemPath, FileSystemPolicy, MissingPathBehavior,
    NetworkAccess, NetworkPolicy, PermissionProfile, PolicyShape, ReadOnlyAccess, SandboxContext,
    SandboxPolicy, SpecialPath,
};
use serde::{Deserialize, Serialize};
use std::path::{Component, Path, PathBuf};

/// Names that stay read-only directly under every writable root unless a write entry targets
/// them: git hooks and config, and the agent's own configuration, could be edited to
/// escalate privileges.
pub const PROTECTED_NAMES: [&str; 3] = [".git", ".codex", ".agents"];

/// What a process needs to read to run at all: granted for `minimal` entries, and when a
/// restricted-read April policy asks for `include_platform_defaults`.
pub const PLATFORM_READ_DEFAULTS: [&str; 10] = [
    "/bin",
    "/sbin",
    "/usr",
    "/lib",
    "/lib32",
    "/lib64",
    "/etc",
    "/opt",
    "/nix/store",
    "/run/current-system/sw",
];

/// Most entries a permission profile may have (codex sends eight). Resolution compares
/// entries pairwise, and a sandbox mounts one thing per entry: a bound keeps a crafted
/// policy from costing seconds.
pub const MAX_ENTRIES: usize = 1024;

/// Most paths the entries may resolve to (an entry under `project_roots` yields one per
/// workspace root).
pub const MAX_RESOLVED_PATHS: usize = 4096;

/// A policy as the enforcers see it: concrete paths, lexically normalized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedPolicy {
    /// `None`: every path is readable. Otherwise only these trees are (and the writable
    /// roots).
    pub readable_roots: Option<Vec<PathBuf>>,
    /// Trees that may be written, minus `read_only` and `denied`. Empty for read-only
    /// policies.
    pub writable_roots: Vec<PathBuf>,
    /// Paths beneath writable roots that stay read-only: the protected names
    /// ([`PROTECTED_NAMES`]) of every writable root and explicit `read` entries.
    pub read_only: Vec<ReadOnlyPath>,
    /// Paths with no access at all (profile `deny` entries).
    pub denied: Vec<PathBuf>,
    /// The network of a sandboxed process (the fs helper never has any).
    pub network: NetworkPolicy,
}

/// A read-only carve-out beneath a writable root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadOnlyPath {
    pub path: PathBuf,
    /// While `path` does not exist, it may be created (`missing_path_behavior: skip`: the
    /// entry does not apply until the path exists). Otherwise a missing path must stay
    /// missing.
    pub creatable_while_missing: bool,
    /// A protected name directly under a writable root: when it is a `.git` file, the
    /// gitdir it names is protected too.
    pub metadata: bool,
}

/// The facts about the place a policy applies to that resolution needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Surroundings {
    /// The cwd a `sandbox` without its own resolves against: the server's cwd for `fs/*`,
    /// the process's cwd for `process/start`.
    pub cwd: PathBuf,
    /// `$HOME`, for a `~` in a subpath when the context has no `userHomeDir`.
    pub home: Option<PathBuf>,
    /// `$TMPDIR` of whoever the policy confines: the server's for `fs/*` (its helper gets
    /// the server's), the child's for `process/start`.
    pub tmpdir: Option<PathBuf>,
    /// Whether `/tmp` is a directory here.
    pub slash_tmp_exists: bool,
}

impl Surroundings {
    /// This process's surroundings (for `fs/*` calls).
    pub fn of_this_process() -> Surroundings {
        Surroundings {
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
            home: std::env::var_os("HOME").map(PathBuf::from),
            tmpdir: std::env::var_os("TMPDIR").map(PathBuf::from),
            slash_tmp_exists: Path::new("/tmp").is_dir(),
        }
    }
}

/// A policy this server understands but will not enforce, or one that makes no sense. The
/// request is refused (-32602), never run with less confinement than asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PolicyError {
    pub message: String,
}

impl PolicyError {
    fn new(message: impl Into<String>) -> PolicyError {
        PolicyError {
            message: message.into(),
        }
    }
}

/// How a context is to be enforced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enforcement {
    /// Filesystem access is not restricted (`danger-full-access`, `external-sandbox`,
    /// `disabled`, `external`, `unrestricted`, full-disk write); only the network may be.
    FullDisk { network: NetworkPolicy },
    /// Restricted: enforce this.
    Restricted(ResolvedPolicy),
}

impl Enforcement {
    pub fn network(&self) -> NetworkPolicy {
        match self {
            Enforcement::FullDisk { network } => *network,
            Enforcement::Restricted(policy) => policy.network,
        }
    }
}

/// Resolves `context` in `place`.
pub fn resolve(context: &SandboxContext, place: &Surroundings) -> Result<Enforcement, PolicyError> {
    match context.policy() {
        PolicyShape::April(policy) => resolve_april(context, policy, place),
        PolicyShape::Profile(profile) => resolve_profile(context, profile, place),
    }
}

fn resolve_april(
    context: &SandboxContext,
    policy: &SandboxPolicy,
    place: &Surroundings,
) -> Result<Enforcement, PolicyError> {
    if context.file_system_sandbox_policy.is_some() && context.sandbox_policy_cwd.is_none() {
        return Err(PolicyError::new(
            "fileSystemSandboxPolicy requires sandboxPolicyCwd",
        ));
    }
    let cwd = context
        .sandbox_policy_cwd
        .as_ref()
        .map_or_else(|| place.cwd.clone(), |c| c.as_path().to_path_buf());
    let (mut writable, read_access, network) = match policy {
        SandboxPolicy::DangerFullAccess => {
            return Ok(Enforcement::FullDisk {
                network: NetworkPolicy::Enabled,
            })
        }
        SandboxPolicy::ExternalSandbox { network_access } => {
            return Ok(Enforcement::FullDisk {
                network: match network_access {
                    NetworkAccess::Restricted => NetworkPolicy::Restricted,
                    NetworkAccess::Enabled => NetworkPolicy::Enabled,
                },
            })
        }
        SandboxPolicy::ReadOnly {
            access,
            network_access,
        } => (Vec::new(), access, *network_access),
        SandboxPolicy::WorkspaceWrite {
            writable_roots,
            read_only_access,
            network_access,
            exclude_tmpdir_env_var,
            exclude_slash_tmp,
        } => {
            let mut roots: Vec<PathBuf> = writable_roots
                .iter()
                .map(|r| r.as_path().to_path_buf())
                .collect();
            roots.push(cwd.clone());
            if !exclude_slash_tmp && place.slash_tmp_exists {
                roots.push(PathBuf::from("/tmp"));
            }
            if !exclude_tmpdir_env_var {
                roots.extend(absolute_tmpdir(place));
            }
            (roots, read_only_access, *network_access)
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
    // The April policy protects the names of every writable root, and a missing one may not
    // be created (SPEC section 10).
    let read_only = writable
        .iter()
        .flat_map(|root| {
            PROTECTED_NAMES.iter().map(move |name| ReadOnlyPath {
                path: root.join(name),
                creatable_while_missing: false,
                metadata: true,
            })
        })
        .collect();
    Ok(Enforcement::Restricted(ResolvedPolicy {
        readable_roots,
        writable_roots: writable,
        read_only,
        denied: Vec::new(),
        network: if network {
            NetworkPolicy::Enabled
        } else {
            NetworkPolicy::Restricted
        },
    }))
}

/// One profile entry with its path resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Grant {
    path: PathBuf,
    access: FileSystemAccess,
    skip_while_missing: bool,
}

fn resolve_profile(
    context: &SandboxContext,
    profile: &PermissionProfile,
    place: &Surroundings,
) -> Result<Enforcement, PolicyError> {
    let (file_system, network) = match profile {
        PermissionProfile::Disabled => {
            return Ok(Enforcement::FullDisk {
                network: NetworkPolicy::Enabled,
            })
        }
        PermissionProfile::External { network } => {
            return Ok(Enforcement::FullDisk { network: *network })
        }
        PermissionProfile::Managed {
            file_system,
            network,
        } => (file_system, *network),
    };
    let entries = match file_system {
        FileSystemPolicy::Unrestricted => return Ok(Enforcement::FullDisk { network }),
        FileSystemPolicy::Restricted { entries, .. } => entries,
    };
    if !profile.needs_platform_sandbox() {
        return Ok(Enforcement::FullDisk { network });
    }
    let cwd = context
        .cwd
        .as_ref()
        .map_or_else(|| place.cwd.clone(), |c| c.as_path().to_path_buf());
    let home = context
        .user_home_dir
        .as_ref()
        .map(|h| h.as_path().to_path_buf())
        .or_else(|| place.home.clone());
    // What `project_roots` means: the roots the policy was authored against, else the
    // context's roots, else the cwd.
    let project_roots: Vec<PathBuf> = context
        .policy_context
        .as_ref()
        .map(|p| &p.workspace_roots)
        .filter(|r| !r.is_empty())
        .unwrap_or(&context.workspace_roots)
        .iter()
        .map(|r| r.as_path().to_path_buf())
        .collect();
    let project_roots = if project_roots.is_empty() {
        vec![cwd.clone()]
    } else {
        project_roots
    };
    if entries.len() > MAX_ENTRIES {
        return Err(PolicyError::new(format!(
            "sandbox: {} file system entries, more than the {MAX_ENTRIES} this server takes",
            entries.len()
        )));
    }
    let mut grants = Vec::new();
    for entry in entries {
        for path in resolve_entry_path(entry, &project_roots, home.as_deref(), place)? {
            grants.push(Grant {
                path,
                access: entry.access,
                skip_while_missing: entry.missing_path_behavior == Some(MissingPathBehavior::Skip),
            });
        }
        if grants.len() > MAX_RESOLVED_PATHS {
            return Err(PolicyError::new(format!(
                "sandbox: the entries name more than {MAX_RESOLVED_PATHS} paths"
            )));
        }
    }
    policy_from_grants(&grants, network)
}

fn resolve_entry_path(
    entry: &FileSystemEntry,
    project_roots: &[PathBuf],
    home: Option<&Path>,
    place: &Surroundings,
) -> Result<Vec<PathBuf>, PolicyError> {
    Ok(match &entry.path {
        FileSystemPath::Path { path } => vec![path.as_path().to_path_buf()],
        FileSystemPath::GlobPattern { pattern } => {
            return Err(PolicyError::new(format!(
                "sandbox: glob_pattern entries ({pattern:?}) are not enforced by this server, \
                 which does not expand globs; deny the paths themselves instead"
            )))
        }
        FileSystemPath::Special { value } => match value {
            SpecialPath::Root => vec![PathBuf::from("/")],
            SpecialPath::Minimal => {
                if entry.access != FileSystemAccess::Read {
                    return Err(PolicyError::new(
                        "sandbox: a `minimal` entry may only grant read access",
                    ));
                }
                PLATFORM_READ_DEFAULTS.iter().map(PathBuf::from).collect()
            }
            SpecialPath::Tmpdir => absolute_tmpdir(place).into_iter().collect(),
            SpecialPath::SlashTmp => {
                if place.slash_tmp_exists {
                    vec![PathBuf::from("/tmp")]
                } else {
                    Vec::new()
                }
            }
            SpecialPath::ProjectRoots { subpath } => {
                let mut paths = Vec::new();
                for root in project_roots {
                    paths.push(match subpath.as_deref() {
                        None | Some("") => root.clone(),
                        Some(sub) => under_root(root, sub, home)?,
                    });
                }
                paths
            }
            // Codex ignores these. Ignoring a `deny` would grant more than asked, though.
            SpecialPath::Unknown { .. } if entry.access == FileSystemAccess::Deny => {
                return Err(PolicyError::new(
                    "sandbox: a deny entry for a special path of kind `unknown` cannot be \
                     enforced",
                ))
            }
            SpecialPath::Unknown { .. } => Vec::new(),
        },
    })
}

/// `root/subpath`, lexically normalized; `~` is the home directory and an absolute subpath
/// replaces the root.
fn under_root(root: &Path, subpath: &str, home: Option<&Path>) -> Result<PathBuf, PolicyError> {
    let joined = if subpath == "~" || subpath.starts_with("~/") {
        let home = home.ok_or_else(|| {
            PolicyError::new(format!(
                "sandbox: the subpath {subpath:?} needs the user's home directory, which is \
                 not known (send userHomeDir)"
            ))
        })?;
        home.join(subpath.trim_start_matches('~').trim_start_matches('/'))
    } else {
        root.join(subpath)
    };
    Ok(normalize(&joined))
}

fn absolute_tmpdir(place: &Surroundings) -> Option<PathBuf> {
    place
        .tmpdir
        .as_ref()
        .filter(|t| t.is_absolute())
        .map(|t| normalize(t))
}

/// The access the entries give `path` (reference A.5): the deepest covering entry; at equal
/// depth deny, then write, then read. `None`: no entry covers it (denied).
fn effective_access(grants: &[Grant], path: &Path) -> Option<FileSystemAccess> {
    grants
        .iter()
        .filter(|g| path.starts_with(&g.path))
        .max_by_key(|g| (depth(&g.path), rank(g.access)))
        .map(|g| g.access)
}

fn rank(access: FileSystemAccess) -> u8 {
    match access {
        FileSystemAccess::Read => 0,
        FileSystemAccess::Write => 1,
        FileSystemAccess::Deny => 2,
    }
}

fn depth(path: &Path) -> usize {
    path.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count()
}

fn policy_from_grants(
    grants: &[Grant],
    network: NetworkPolicy,
) -> Result<Enforcement, PolicyError> {
    // An entry that loses to another at its own path (root:read beside root:deny) grants
    // nothing; keep one grant per path, the winner.
    let mut winners: Vec<Grant> = Vec::new();
    for grant in grants {
        let access = effective_access(grants, &grant.path);
        if access == Some(grant.access) && !winners.iter().any(|w| w.path == grant.path) {
            let skip = grants
                .iter()
                .filter(|g| g.path == grant.path && g.access == grant.access)
                .all(|g| g.skip_while_missing);
            winners.push(Grant {
                skip_while_missing: skip,
                ..grant.clone()
            });
        }
    }
    let denied: Vec<PathBuf> = winners
        .iter()
        .filter(|g| g.access == FileSystemAccess::Deny)
        .map(|g| g.path.clone())
        .collect();
    // Access re-opened beneath a denied path would need a mask with holes in it; refuse
    // rather than enforce less.
    for grant in &winners {
        if let Some(deny) = denied
            .iter()
            .find(|d| grant.access != FileSystemAccess::Deny && grant.path.starts_with(d))
        {
            return Err(PolicyError::new(format!(
                "sandbox: the {:?} entry for {} lies beneath the denied {}; this server does \
                 not re-open access inside a denied path",
                grant.access,
                grant.path.display(),
                deny.display()
            )));
        }
    }
    let writable_roots: Vec<PathBuf> = winners
        .iter()
        .filter(|g| g.access == FileSystemAccess::Write)
        .map(|g| g.path.clone())
        .collect();
    let readable_roots = match effective_access(grants, Path::new("/")) {
        Some(FileSystemAccess::Read | FileSystemAccess::Write) => None,
        _ => Some(
            winners
                .iter()
                .filter(|g| g.access == FileSystemAccess::Read)
                .map(|g| g.path.clone())
                .collect(),
        ),
    };

    let mut read_only: Vec<ReadOnlyPath> = Vec::new();
    for grant in winners
        .iter()
        .filter(|g| g.access == FileSystemAccess::Read)
    {
        let Some(root) = writable_roots
            .iter()
            .filter(|w| grant.path.starts_with(w) && grant.path != **w)
            .max_by_key(|w| depth(w))
        else {
            continue;
        };
        // Write access re-opened beneath a read-only carve-out would need the same holes.
        if let Some(inner) = writable_roots
            .iter()
            .find(|w| w.starts_with(&grant.path) && **w != grant.path)
        {
            return Err(PolicyError::new(format!(
                "sandbox: the write entry for {} lies beneath the read-only {} inside the \
                 writable {}; this server does not re-open write access there",
                inner.display(),
                grant.path.display(),
                root.display()
            )));
        }
        read_only.push(ReadOnlyPath {
            path: grant.path.clone(),
            creatable_while_missing: grant.skip_while_missing,
            metadata: grant.path.parent() == Some(root.as_path())
                && grant
                    .path
                    .file_name()
                    .is_some_and(|n| PROTECTED_NAMES.iter().any(|p| n == *p)),
        });
    }
    // The protected names of every writable root, unless a write entry targets them or
    // something inside them (reference A.5), and even when no entry names them.
    for root in &writable_roots {
        for name in PROTECTED_NAMES {
            let path = root.join(name);
            let opened = writable_roots.iter().any(|w| w.starts_with(&path));
            if opened || read_only.iter().any(|r| r.path == path) {
                continue;
            }
            if denied.iter().any(|d| path.starts_with(d)) {
                continue;
            }
            read_only.push(ReadOnlyPath {
                path,
                creatable_while_missing: false,
                metadata: true,
            });
        }
    }
    Ok(Enforcement::Restricted(ResolvedPolicy {
        readable_roots,
        writable_roots,
        read_only,
        denied,
        network,
    }))
}

/// Lexical normalization (`.` dropped, `..` pops), as the protocol does for request paths.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn dedup(paths: &mut Vec<PathBuf>) {
    let mut seen = std::collections::HashSet::new();
    paths.retain(|p| seen.insert(p.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use exec_server_protocol::sandbox::{AdditionalPermissions, FileSystemPermissions};
    use exec_server_protocol::AbsolutePath;
    use serde_json::{json, Value};

    fn abs(p: &str) -> AbsolutePath {
        AbsolutePath::parse(p).unwrap()
    }

    fn place() -> Surroundings {
        Surroundings {
            cwd: PathBuf::from("/srv/cwd"),
            home: Some(PathBuf::from("/home/dev")),
            tmpdir: Some(PathBuf::from("/var/t")),
            slash_tmp_exists: true,
        }
    }

    fn restricted(context: &SandboxContext) -> ResolvedPolicy {
        match resolve(context, &place()).unwrap() {
            Enforcement::Restricted(p) => p,
            other => panic!("expected a restricted policy, got {other:?}"),
        }
    }

    fn paths(list: &[&str]) -> Vec<PathBuf> {
        list.iter().map(PathBuf::from).collect()
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
    fn april_workspace_write_roots_are_codexs() {
        let policy = restricted(&SandboxContext::new(workspace_write(false)));
        assert_eq!(
            policy.writable_roots,
            paths(&["/w", "/srv/cwd", "/tmp", "/var/t"])
        );
        assert_eq!(policy.readable_roots, None);
        assert_eq!(policy.network, NetworkPolicy::Enabled);
        assert_eq!(policy.read_only.len(), 12);
        assert!(policy
            .read_only
            .iter()
            .all(|r| !r.creatable_while_missing && r.metadata));
        assert!(policy
            .read_only
            .iter()
            .any(|r| r.path == Path::new("/w/.git")));

        let mut ctx = SandboxContext::new(workspace_write(true));
        ctx.sandbox_policy_cwd = Some(abs("/given"));
        assert_eq!(restricted(&ctx).writable_roots, paths(&["/w", "/given"]));
    }

    #[test]
    fn april_read_only_restricted_reads_and_additional_permissions() {
        let mut ctx = SandboxContext::new(SandboxPolicy::ReadOnly {
            access: ReadOnlyAccess::Restricted {
                include_platform_defaults: false,
                readable_roots: vec![abs("/r")],
            },
            network_access: false,
        });
        ctx.additional_permissions = Some(AdditionalPermissions {
            network: None,
            file_system: Some(FileSystemPermissions {
                read: Some(vec![abs("/extra-r")]),
                write: Some(vec![abs("/extra-w")]),
            }),
        });
        let policy = restricted(&ctx);
        assert_eq!(policy.writable_roots, paths(&["/extra-w"]));
        assert_eq!(policy.readable_roots, Some(paths(&["/r", "/extra-r"])));
        assert_eq!(policy.network, NetworkPolicy::Restricted);
    }

    #[test]
    fn unrestricted_policies_are_full_disk() {
        for context in [
            SandboxContext::new(SandboxPolicy::DangerFullAccess),
            SandboxContext::from_profile(PermissionProfile::Disabled),
        ] {
            assert_eq!(
                resolve(&context, &place()).unwrap(),
                Enforcement::FullDisk {
                    network: NetworkPolicy::Enabled
                }
            );
        }
        let external = SandboxContext::from_profile(PermissionProfile::External {
            network: NetworkPolicy::Restricted,
        });
        assert_eq!(
            resolve(&external, &place()).unwrap().network(),
            NetworkPolicy::Restricted
        );
    }

    fn profile(entries: Value, extra: Value) -> SandboxContext {
        let mut context = json!({"permissions": {"type": "managed", "network": "restricted",
            "file_system": {"type": "restricted", "entries": entries}}});
        if let (Some(c), Some(e)) = (context.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        serde_json::from_value(context).unwrap()
    }

    fn special(kind: &str, access: &str) -> Value {
        json!({"path": {"type": "special", "value": {"kind": kind}}, "access": access})
    }

    fn project(sub: &str, access: &str, skip: bool) -> Value {
        let mut e = json!({"path": {"type": "special", "value": {"kind": "project_roots",
            "subpath": sub}}, "access": access});
        if skip {
            e["missing_path_behavior"] = json!("skip");
        }
        e
    }

    #[test]
    fn codex_0171_workspace_write_resolves() {
        let ctx = profile(
            json!([
                special("root", "read"),
                special("project_roots", "write"),
                special("slash_tmp", "write"),
                special("tmpdir", "write"),
                project(".git", "read", true),
                project(".agents", "read", true),
                project(".codex", "read", true),
                project(".aws", "read", true)
            ]),
            json!({"cwd": "file:///workdir/work",
                "policyContext": {"cwd": "file:///workdir/work",
                    "workspaceRoots": ["file:///workdir/work"]},
                "workspaceRoots": ["file:///workdir/work"]}),
        );
        let policy = restricted(&ctx);
        assert_eq!(policy.readable_roots, None);
        assert_eq!(
            policy.writable_roots,
            paths(&["/workdir/work", "/tmp", "/var/t"])
        );
        let find = |p: &str| policy.read_only.iter().find(|r| r.path == Path::new(p));
        for name in [".git", ".agents", ".codex"] {
            let entry = find(&format!("/workdir/work/{name}")).unwrap();
            assert!(entry.creatable_while_missing, "{name}");
            assert!(entry.metadata, "{name}");
        }
        let aws = find("/workdir/work/.aws").unwrap();
        assert!(aws.creatable_while_missing && !aws.metadata);
        // /tmp and $TMPDIR got the implicit protection, with no skip.
        let tmp_git = find("/tmp/.git").unwrap();
        assert!(!tmp_git.creatable_while_missing && tmp_git.metadata);
        assert_eq!(policy.network, NetworkPolicy::Restricted);
    }

    #[test]
    fn codex_0171_read_only_resolves() {
        let policy = restricted(&profile(
            json!([special("root", "read")]),
            json!({"cwd": "/w"}),
        ));
        assert_eq!(policy.readable_roots, None);
        assert!(policy.writable_roots.is_empty());
        assert!(policy.read_only.is_empty());
    }

    #[test]
    fn minimal_reads_deny_entries_and_precedence() {
        let ctx = profile(
            json!([special("minimal", "read"), special("project_roots", "write"),
                {"path": {"type": "path", "path": "file:///w/secret"}, "access": "deny"},
                {"path": {"type": "path", "path": "/data"}, "access": "read"},
                {"path": {"type": "path", "path": "/data"}, "access": "none"},
                {"path": {"type": "path", "path": "/data/pub"}, "access": "read"}]),
            json!({"workspaceRoots": ["/w"]}),
        );
        let err = resolve(&ctx, &place()).unwrap_err();
        assert!(err.message.contains("beneath the denied /data"), "{err}");

        let ctx = profile(
            json!([special("minimal", "read"), special("project_roots", "write"),
                {"path": {"type": "path", "path": "file:///w/secret"}, "access": "deny"},
                {"path": {"type": "path", "path": "/data"}, "access": "read"},
                {"path": {"type": "path", "path": "/data"}, "access": "none"}]),
            json!({"workspaceRoots": ["/w"]}),
        );
        let policy = restricted(&ctx);
        let readable = policy.readable_roots.clone().unwrap();
        assert!(readable.contains(&PathBuf::from("/usr")));
        assert!(
            !readable.contains(&PathBuf::from("/data")),
            "deny wins at equal depth"
        );
        assert_eq!(policy.denied, paths(&["/w/secret", "/data"]));
        assert_eq!(policy.writable_roots, paths(&["/w"]));
    }

    #[test]
    fn project_roots_and_subpaths() {
        let ctx = profile(
            json!([
                special("root", "read"),
                project("src", "write", false),
                project("~/.cache", "write", false),
                project("/abs", "write", false),
                project("a/../b", "write", false)
            ]),
            json!({"cwd": "/c", "workspaceRoots": ["/r1", "/r2"],
                "policyContext": {"workspaceRoots": []}}),
        );
        assert_eq!(
            restricted(&ctx).writable_roots,
            paths(&[
                "/r1/src",
                "/r2/src",
                "/home/dev/.cache",
                "/abs",
                "/r1/b",
                "/r2/b"
            ])
        );
        // No roots at all: the cwd is the project root.
        let ctx = profile(
            json!([special("root", "read"), special("project_roots", "write")]),
            json!({"cwd": "/c"}),
        );
        assert_eq!(restricted(&ctx).writable_roots, paths(&["/c"]));
        // Without a cwd either: the place's.
        let ctx = profile(
            json!([special("root", "read"), special("project_roots", "write")]),
            json!({}),
        );
        assert_eq!(restricted(&ctx).writable_roots, paths(&["/srv/cwd"]));
    }

    #[test]
    fn refusals_name_what_is_not_enforced() {
        let glob = profile(
            json!([special("root", "read"),
                {"path": {"type": "glob_pattern", "pattern": "**/*.env"}, "access": "deny"}]),
            json!({}),
        );
        assert!(resolve(&glob, &place())
            .unwrap_err()
            .message
            .contains("glob_pattern"));
        let reopened = profile(
            json!([
                special("root", "read"),
                special("project_roots", "write"),
                project(".git", "read", false),
                project(".git/hooks", "write", false)
            ]),
            json!({"cwd": "/w"}),
        );
        assert!(resolve(&reopened, &place())
            .unwrap_err()
            .message
            .contains("does not re-open write access"));
        let minimal_write = profile(json!([special("minimal", "write")]), json!({}));
        assert!(resolve(&minimal_write, &place()).is_err());
    }

    #[test]
    fn a_write_entry_for_a_protected_name_lifts_its_protection() {
        let ctx = profile(
            json!([
                special("root", "read"),
                special("project_roots", "write"),
                project(".codex", "write", false)
            ]),
            json!({"cwd": "/w"}),
        );
        let policy = restricted(&ctx);
        assert!(!policy
            .read_only
            .iter()
            .any(|r| r.path == Path::new("/w/.codex")));
        assert!(policy
            .read_only
            .iter()
            .any(|r| r.path == Path::new("/w/.git") && !r.creatable_while_missing));
    }

    #[test]
    fn full_disk_write_profiles_need_no_fs_sandbox() {
        let ctx = profile(json!([special("root", "write")]), json!({}));
        assert_eq!(
            resolve(&ctx, &place()).unwrap(),
            Enforcement::FullDisk {
                network: NetworkPolicy::Restricted
            }
        );
    }
}
