//! The `sandbox` object of `fs/*` requests and `process/start` (codex's
//! `FileSystemSandboxContext`), in both of the shapes clients send:
//!
//! - the April shape: `{sandboxPolicy, sandboxPolicyCwd?, ...}`, with codex's `SandboxPolicy`;
//! - the current shape (codex 0.171): `{permissions, cwd?, workspaceRoots?, policyContext?,
//!   userHomeDir?, ...}`, with a [`PermissionProfile`].
//!
//! Exactly one of `sandboxPolicy` and `permissions` must be present. Decoding only checks the
//! shape; what a policy means on a machine (its roots, what exists there) is resolved by the
//! sandbox crate. Anything the types here do not describe is a decode error (-32602), never
//! "no sandbox".
//!
//! The context itself is camelCase; `SandboxPolicy`, `ReadOnlyAccess` and permission profiles
//! keep codex's snake_case field names.

use crate::process::null_as_default;
use crate::AbsolutePath;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The optional `sandbox` member of `fs/*` requests and `process/start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", try_from = "RawSandboxContext")]
// The schema describes the fields; the "exactly one policy" rule is in the docs.
#[schemars(!try_from)]
pub struct FileSystemSandboxContext {
    /// April shape: codex's sandbox policy. Exactly one of this and `permissions` is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_policy: Option<SandboxPolicy>,
    /// April shape: the directory the policy is resolved against (a `workspace-write` policy
    /// makes it writable); default: the server's current directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_policy_cwd: Option<AbsolutePath>,
    /// April shape: codex's split filesystem policy, passed through as is. When present,
    /// `sandboxPolicyCwd` is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_system_sandbox_policy: Option<Value>,
    /// April shape: extra permissions granted on top of the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_permissions: Option<AdditionalPermissions>,
    /// Current shape: the permission profile. Exactly one of this and `sandboxPolicy` is
    /// present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<PermissionProfile>,
    /// Current shape: the base of cwd-relative entries. Default: for `process/start` its
    /// `cwd`, for `fs/*` the server's current directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<AbsolutePath>,
    /// Current shape: what `project_roots` entries expand to (one entry per root).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    // An explicit null is accepted (as the default), so the schema says so.
    #[schemars(with = "Option<Vec<AbsolutePath>>")]
    pub workspace_roots: Vec<AbsolutePath>,
    /// Current shape: the cwd and roots the policy was authored against; when present, its
    /// roots are what `project_roots` expands to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_context: Option<PolicyContext>,
    /// Current shape: the user's home directory, for `~` in entry subpaths. Default: the
    /// server's `$HOME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_home_dir: Option<AbsolutePath>,
    /// Only meaningful on Windows. Codex requires it; accepted as absent here.
    #[serde(default, deserialize_with = "null_as_default")]
    // An explicit null is accepted (as the default), so the schema says so.
    #[schemars(with = "Option<WindowsSandboxLevel>")]
    pub windows_sandbox_level: WindowsSandboxLevel,
    #[serde(default, deserialize_with = "null_as_default")]
    // An explicit null is accepted (as the default), so the schema says so.
    #[schemars(with = "Option<bool>")]
    pub windows_sandbox_private_desktop: bool,
    /// Only meaningful on Windows (`reconcile` or `preserve`); ignored here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows_sandbox_proxy_settings_mode: Option<String>,
    /// Codex's switch to its older, weaker Landlock-only Linux sandbox. Accepted and
    /// ignored: this server always enforces the whole policy.
    #[serde(default, deserialize_with = "null_as_default")]
    // An explicit null is accepted (as the default), so the schema says so.
    #[schemars(with = "Option<bool>")]
    pub use_legacy_landlock: bool,
}

/// Shorter name for [`FileSystemSandboxContext`].
pub type SandboxContext = FileSystemSandboxContext;

/// The wire form of [`FileSystemSandboxContext`], before the check that exactly one policy
/// is present.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSandboxContext {
    #[serde(default)]
    sandbox_policy: Option<SandboxPolicy>,
    #[serde(default)]
    sandbox_policy_cwd: Option<AbsolutePath>,
    #[serde(default)]
    file_system_sandbox_policy: Option<Value>,
    #[serde(default)]
    additional_permissions: Option<AdditionalPermissions>,
    #[serde(default)]
    permissions: Option<PermissionProfile>,
    #[serde(default)]
    cwd: Option<AbsolutePath>,
    #[serde(default, deserialize_with = "null_as_default")]
    workspace_roots: Vec<AbsolutePath>,
    #[serde(default)]
    policy_context: Option<PolicyContext>,
    #[serde(default)]
    user_home_dir: Option<AbsolutePath>,
    #[serde(default, deserialize_with = "null_as_default")]
    windows_sandbox_level: WindowsSandboxLevel,
    #[serde(default, deserialize_with = "null_as_default")]
    windows_sandbox_private_desktop: bool,
    #[serde(default)]
    windows_sandbox_proxy_settings_mode: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    use_legacy_landlock: bool,
}

impl TryFrom<RawSandboxContext> for FileSystemSandboxContext {
    type Error = String;

    fn try_from(raw: RawSandboxContext) -> Result<Self, String> {
        match (&raw.sandbox_policy, &raw.permissions) {
            (None, None) => {
                return Err(
                    "sandbox: missing field `permissions` (a permission profile; \
                            April clients send `sandboxPolicy` instead)"
                        .to_owned(),
                )
            }
            (Some(_), Some(_)) => {
                return Err(
                    "sandbox: both `permissions` and `sandboxPolicy` are present; send \
                            one policy"
                        .to_owned(),
                )
            }
            _ => {}
        }
        Ok(FileSystemSandboxContext {
            sandbox_policy: raw.sandbox_policy,
            sandbox_policy_cwd: raw.sandbox_policy_cwd,
            file_system_sandbox_policy: raw.file_system_sandbox_policy,
            additional_permissions: raw.additional_permissions,
            permissions: raw.permissions,
            cwd: raw.cwd,
            workspace_roots: raw.workspace_roots,
            policy_context: raw.policy_context,
            user_home_dir: raw.user_home_dir,
            windows_sandbox_level: raw.windows_sandbox_level,
            windows_sandbox_private_desktop: raw.windows_sandbox_private_desktop,
            windows_sandbox_proxy_settings_mode: raw.windows_sandbox_proxy_settings_mode,
            use_legacy_landlock: raw.use_legacy_landlock,
        })
    }
}

impl FileSystemSandboxContext {
    /// An April-shape context with only a policy, every other field at its default.
    pub fn new(sandbox_policy: SandboxPolicy) -> Self {
        FileSystemSandboxContext {
            sandbox_policy: Some(sandbox_policy),
            ..Self::empty()
        }
    }

    /// A current-shape context with a permission profile, every other field at its default.
    pub fn from_profile(permissions: PermissionProfile) -> Self {
        FileSystemSandboxContext {
            permissions: Some(permissions),
            ..Self::empty()
        }
    }

    fn empty() -> Self {
        FileSystemSandboxContext {
            sandbox_policy: None,
            sandbox_policy_cwd: None,
            file_system_sandbox_policy: None,
            additional_permissions: None,
            permissions: None,
            cwd: None,
            workspace_roots: Vec::new(),
            policy_context: None,
            user_home_dir: None,
            windows_sandbox_level: WindowsSandboxLevel::Disabled,
            windows_sandbox_private_desktop: false,
            windows_sandbox_proxy_settings_mode: None,
            use_legacy_landlock: false,
        }
    }

    /// Which of the two shapes this is.
    pub fn policy(&self) -> PolicyShape<'_> {
        match (&self.permissions, &self.sandbox_policy) {
            (Some(profile), _) => PolicyShape::Profile(profile),
            (None, Some(policy)) => PolicyShape::April(policy),
            // Decoding refuses a context without a policy; one built in code without either
            // means no restriction was asked for, which only `new`/`from_profile` can build.
            (None, None) => PolicyShape::Profile(&PermissionProfile::Disabled),
        }
    }

    /// True when the policy must be enforced by the OS sandbox rather than in the server:
    /// April `read-only` and `workspace-write`, and a managed profile with restricted
    /// filesystem access that does not grant full-disk write (reference A.5). `disabled`,
    /// `external`, `unrestricted` and full-disk write run in-process.
    pub fn needs_platform_sandbox(&self) -> bool {
        match self.policy() {
            PolicyShape::April(policy) => policy.needs_platform_sandbox(),
            PolicyShape::Profile(profile) => profile.needs_platform_sandbox(),
        }
    }
}

/// The policy of a [`FileSystemSandboxContext`], by shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PolicyShape<'a> {
    April(&'a SandboxPolicy),
    Profile(&'a PermissionProfile),
}

/// The cwd and workspace roots a current-shape policy was authored against.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<AbsolutePath>,
    #[serde(default, deserialize_with = "null_as_default")]
    // An explicit null is accepted (as the default), so the schema says so.
    #[schemars(with = "Option<Vec<AbsolutePath>>")]
    pub workspace_roots: Vec<AbsolutePath>,
}

/// Codex's Windows sandbox level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum WindowsSandboxLevel {
    #[default]
    Disabled,
    RestrictedToken,
    Elevated,
}

/// Codex's permission profile (the current shape): who builds the sandbox, what the
/// filesystem allows, and the network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum PermissionProfile {
    /// The server builds the sandbox from `file_system` and `network`.
    Managed {
        file_system: FileSystemPolicy,
        #[serde(default, deserialize_with = "null_as_default")]
        // An explicit null is accepted (as the default), so the schema says so.
        #[schemars(with = "Option<NetworkPolicy>")]
        network: NetworkPolicy,
    },
    /// No sandbox; the network is enabled.
    Disabled,
    /// Filesystem confinement is done elsewhere (full disk assumed); only `network` applies.
    External {
        #[serde(default, deserialize_with = "null_as_default")]
        // An explicit null is accepted (as the default), so the schema says so.
        #[schemars(with = "Option<NetworkPolicy>")]
        network: NetworkPolicy,
    },
}

impl PermissionProfile {
    /// See [`FileSystemSandboxContext::needs_platform_sandbox`].
    pub fn needs_platform_sandbox(&self) -> bool {
        match self {
            PermissionProfile::Managed {
                file_system: FileSystemPolicy::Restricted { entries, .. },
                ..
            } => !grants_full_disk_write(entries),
            _ => false,
        }
    }

    /// The network policy (`disabled` means enabled).
    pub fn network(&self) -> NetworkPolicy {
        match self {
            PermissionProfile::Managed { network, .. }
            | PermissionProfile::External { network } => *network,
            PermissionProfile::Disabled => NetworkPolicy::Enabled,
        }
    }
}

/// "Full-disk write" (reference A.5): `root: write`, and no entry that narrows it. Narrowing
/// entries: any non-write `path` or `glob_pattern`, `root: deny`, any `deny` (stricter than
/// codex, where a write entry for the same target shadows one, although `deny` wins at equal
/// depth), and a `read` `project_roots`, `tmpdir` or `slash_tmp` entry that no write entry
/// for the same target shadows. `minimal` and `unknown` `read` entries never narrow.
pub fn grants_full_disk_write(entries: &[FileSystemEntry]) -> bool {
    let root_write = entries
        .iter()
        .any(|e| e.access == FileSystemAccess::Write && e.path == FileSystemPath::special_root());
    if !root_write {
        return false;
    }
    let written = |path: &FileSystemPath| {
        entries
            .iter()
            .any(|e| e.access == FileSystemAccess::Write && &e.path == path)
    };
    !entries.iter().any(|e| {
        match e.access {
            FileSystemAccess::Write => return false,
            FileSystemAccess::Deny => return true,
            FileSystemAccess::Read => {}
        }
        match &e.path {
            FileSystemPath::Path { .. } | FileSystemPath::GlobPattern { .. } => true,
            FileSystemPath::Special { value } => match value {
                SpecialPath::Root => false,
                SpecialPath::ProjectRoots { .. } | SpecialPath::Tmpdir | SpecialPath::SlashTmp => {
                    !written(&e.path)
                }
                SpecialPath::Minimal | SpecialPath::Unknown { .. } => false,
            },
        }
    })
}

/// What a managed profile allows on the filesystem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum FileSystemPolicy {
    /// Only what the entries allow; a path no entry covers is denied (not even readable).
    Restricted {
        entries: Vec<FileSystemEntry>,
        /// How deep codex scans for `glob_pattern` matches. Accepted; glob entries are
        /// refused (see the protocol docs).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        glob_scan_max_depth: Option<u32>,
    },
    /// Full read and write.
    Unrestricted,
}

/// One entry of a restricted filesystem policy. The entry with the most path components
/// that covers a path decides; at equal depth `deny` beats `write`, which beats `read`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FileSystemEntry {
    pub path: FileSystemPath,
    pub access: FileSystemAccess,
    /// `skip`: while the path does not exist, the entry does not apply (so a protected name
    /// such as `.git` can still be created, e.g. by `git init`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_path_behavior: Option<MissingPathBehavior>,
}

/// Access granted by a [`FileSystemEntry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileSystemAccess {
    Read,
    /// Implies read.
    Write,
    /// No access at all (`none` is accepted as a synonym).
    #[serde(alias = "none")]
    Deny,
}

/// What an entry does while its path does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MissingPathBehavior {
    Skip,
}

/// The path of a [`FileSystemEntry`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FileSystemPath {
    /// An absolute path (`file://` URI or native).
    Path { path: AbsolutePath },
    /// A glob (deny entries only in codex). Refused by this server, which does not expand
    /// globs.
    GlobPattern { pattern: String },
    /// A path that depends on the machine or the workspace.
    Special { value: SpecialPath },
}

impl FileSystemPath {
    /// `{"type": "special", "value": {"kind": "root"}}`.
    pub fn special_root() -> Self {
        FileSystemPath::Special {
            value: SpecialPath::Root,
        }
    }
}

/// A special path (reference A.4): what it resolves to depends on the machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SpecialPath {
    /// `/`.
    Root,
    /// The platform directories a process needs to run (`/bin`, `/usr`, `/lib`, `/etc`...).
    Minimal,
    /// `$TMPDIR`, when it is set to an absolute path.
    Tmpdir,
    /// `/tmp`, when it is a directory.
    SlashTmp,
    /// Each workspace root, or `root/subpath` (`~` is the user's home; an absolute subpath
    /// replaces the root).
    #[serde(alias = "current_working_directory")]
    ProjectRoots {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subpath: Option<String>,
    },
    /// Ignored (codex's catch-all).
    Unknown {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<Value>,
    },
}

/// The network policy of a permission profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NetworkPolicy {
    /// No IP sockets at all (loopback included).
    #[default]
    Restricted,
    Enabled,
}

/// April shape: extra permissions granted on top of the policy (codex's `PermissionProfile`
/// of that time).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct AdditionalPermissions {
    /// Codex's network permissions object, passed through as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_system: Option<FileSystemPermissions>,
}

/// Extra readable and writable paths of [`AdditionalPermissions`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct FileSystemPermissions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<Vec<AbsolutePath>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write: Option<Vec<AbsolutePath>>,
}

/// Which sandbox a started process runs in (`process/start` result).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SandboxType {
    /// No sandbox was asked for.
    None,
    /// Codex's value for a Linux sandbox; this server reports it whenever `sandbox` was
    /// given, so codex clients treat the process as sandboxed.
    LinuxSeccomp,
    MacosSeatbelt,
    WindowsRestrictedToken,
}

/// Codex's sandbox policy: tagged by `type`, kebab-case variants, snake_case fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum SandboxPolicy {
    /// No restrictions; operations run in the server process.
    DangerFullAccess,
    /// Reads as allowed by `access`, no writes.
    ReadOnly {
        #[serde(
            default,
            deserialize_with = "null_as_default",
            skip_serializing_if = "ReadOnlyAccess::is_full_access"
        )]
        // An explicit null is accepted (as the default), so the schema says so.
        #[schemars(with = "Option<ReadOnlyAccess>")]
        access: ReadOnlyAccess,
        #[serde(default, deserialize_with = "null_as_default")]
        // An explicit null is accepted (as the default), so the schema says so.
        #[schemars(with = "Option<bool>")]
        network_access: bool,
    },
    /// The caller has sandboxed the server already; operations run in the server process.
    ExternalSandbox {
        #[serde(default, deserialize_with = "null_as_default")]
        // An explicit null is accepted (as the default), so the schema says so.
        #[schemars(with = "Option<NetworkAccess>")]
        network_access: NetworkAccess,
    },
    /// Reads as allowed by `read_only_access`; writes only under the writable roots
    /// (`writable_roots`, the policy cwd, `/tmp` and `$TMPDIR` unless excluded), where `.git`,
    /// `.codex` and `.agents` stay read-only.
    WorkspaceWrite {
        #[serde(default, deserialize_with = "null_as_default")]
        // An explicit null is accepted (as the default), so the schema says so.
        #[schemars(with = "Option<Vec<AbsolutePath>>")]
        writable_roots: Vec<AbsolutePath>,
        #[serde(
            default,
            deserialize_with = "null_as_default",
            skip_serializing_if = "ReadOnlyAccess::is_full_access"
        )]
        // An explicit null is accepted (as the default), so the schema says so.
        #[schemars(with = "Option<ReadOnlyAccess>")]
        read_only_access: ReadOnlyAccess,
        #[serde(default, deserialize_with = "null_as_default")]
        // An explicit null is accepted (as the default), so the schema says so.
        #[schemars(with = "Option<bool>")]
        network_access: bool,
        #[serde(default, deserialize_with = "null_as_default")]
        // An explicit null is accepted (as the default), so the schema says so.
        #[schemars(with = "Option<bool>")]
        exclude_tmpdir_env_var: bool,
        #[serde(default, deserialize_with = "null_as_default")]
        // An explicit null is accepted (as the default), so the schema says so.
        #[schemars(with = "Option<bool>")]
        exclude_slash_tmp: bool,
    },
}

impl SandboxPolicy {
    /// True when the policy must be enforced by the OS sandbox (the helper process):
    /// `read-only` and `workspace-write`. `danger-full-access` and `external-sandbox` run
    /// in-process.
    pub fn needs_platform_sandbox(&self) -> bool {
        matches!(
            self,
            SandboxPolicy::ReadOnly { .. } | SandboxPolicy::WorkspaceWrite { .. }
        )
    }
}

/// Which paths a policy may read.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ReadOnlyAccess {
    /// Everything is readable.
    #[default]
    FullAccess,
    /// Only `readable_roots` (plus the platform's defaults when `include_platform_defaults`).
    Restricted {
        #[serde(default = "default_true", deserialize_with = "null_as_true")]
        // An explicit null is accepted (as the default), so the schema says so.
        #[schemars(with = "Option<bool>")]
        include_platform_defaults: bool,
        #[serde(default, deserialize_with = "null_as_default")]
        // An explicit null is accepted (as the default), so the schema says so.
        #[schemars(with = "Option<Vec<AbsolutePath>>")]
        readable_roots: Vec<AbsolutePath>,
    },
}

impl ReadOnlyAccess {
    pub fn is_full_access(&self) -> bool {
        matches!(self, ReadOnlyAccess::FullAccess)
    }
}

/// Network access of an `external-sandbox` policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NetworkAccess {
    #[default]
    Restricted,
    Enabled,
}

pub(crate) fn default_true() -> bool {
    true
}

/// Treats an explicit `null` like an absent field whose default is `true`.
pub(crate) fn null_as_true<'de, D>(deserializer: D) -> Result<bool, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(Option::<bool>::deserialize(deserializer)?.unwrap_or(true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(v: Value) -> SandboxPolicy {
        serde_json::from_value(v).unwrap()
    }

    fn path(s: &str) -> AbsolutePath {
        AbsolutePath::parse(s).unwrap()
    }

    #[test]
    fn parses_late_april_context() {
        let c: FileSystemSandboxContext = serde_json::from_str(
            r#"{
              "sandboxPolicy": {"type": "workspace-write", "writable_roots": ["/workspace"],
                                "read_only_access": {"type": "restricted", "include_platform_defaults": true, "readable_roots": []},
                                "network_access": false, "exclude_tmpdir_env_var": false, "exclude_slash_tmp": false},
              "sandboxPolicyCwd": "/workspace",
              "fileSystemSandboxPolicy": null,
              "windowsSandboxLevel": "disabled",
              "windowsSandboxPrivateDesktop": false,
              "useLegacyLandlock": false,
              "additionalPermissions": null
            }"#,
        )
        .unwrap();
        assert_eq!(
            c.sandbox_policy.clone().unwrap(),
            SandboxPolicy::WorkspaceWrite {
                writable_roots: vec![path("/workspace")],
                read_only_access: ReadOnlyAccess::Restricted {
                    include_platform_defaults: true,
                    readable_roots: vec![],
                },
                network_access: false,
                exclude_tmpdir_env_var: false,
                exclude_slash_tmp: false,
            }
        );
        assert_eq!(c.sandbox_policy_cwd, Some(path("/workspace")));
        assert_eq!(c.file_system_sandbox_policy, None);
        assert_eq!(c.windows_sandbox_level, WindowsSandboxLevel::Disabled);
        assert_eq!(c.additional_permissions, None);
        assert!(c.needs_platform_sandbox());
    }

    #[test]
    fn parses_earliest_context_and_is_lenient() {
        let c: FileSystemSandboxContext = serde_json::from_str(
            r#"{"sandboxPolicy":{"type":"read-only"},"windowsSandboxLevel":"restricted-token",
                "windowsSandboxPrivateDesktop":true,"useLegacyLandlock":true,
                "additionalPermissions":{"network":{"enabled":true},
                  "file_system":{"read":["/r"],"write":["file:///w"]}},"someNewField":[1]}"#,
        )
        .unwrap();
        assert_eq!(
            c.windows_sandbox_level,
            WindowsSandboxLevel::RestrictedToken
        );
        assert!(c.windows_sandbox_private_desktop);
        assert!(c.use_legacy_landlock);
        let perms = c.additional_permissions.unwrap();
        assert_eq!(perms.network, Some(json!({"enabled": true})));
        let fs = perms.file_system.unwrap();
        assert_eq!(fs.read, Some(vec![path("/r")]));
        assert_eq!(fs.write, Some(vec![path("/w")]));

        // Only the policy is required; nulls count as absent.
        let c: FileSystemSandboxContext = serde_json::from_str(
            r#"{"sandboxPolicy":{"type":"danger-full-access"},"sandboxPolicyCwd":null,
                "windowsSandboxLevel":null,"windowsSandboxPrivateDesktop":null,
                "useLegacyLandlock":null}"#,
        )
        .unwrap();
        assert_eq!(
            c,
            FileSystemSandboxContext::new(SandboxPolicy::DangerFullAccess)
        );
        let missing = serde_json::from_str::<FileSystemSandboxContext>("{}").unwrap_err();
        assert!(
            missing.to_string().contains("missing field `permissions`"),
            "{missing}"
        );
    }

    #[test]
    fn parses_every_reference_policy() {
        assert_eq!(
            policy(json!({"type": "danger-full-access"})),
            SandboxPolicy::DangerFullAccess
        );
        assert_eq!(
            policy(json!({"type": "read-only", "access": {"type": "restricted",
                "include_platform_defaults": true, "readable_roots": ["/a"]},
                "network_access": false})),
            SandboxPolicy::ReadOnly {
                access: ReadOnlyAccess::Restricted {
                    include_platform_defaults: true,
                    readable_roots: vec![path("/a")],
                },
                network_access: false,
            }
        );
        assert_eq!(
            policy(json!({"type": "read-only"})),
            SandboxPolicy::ReadOnly {
                access: ReadOnlyAccess::FullAccess,
                network_access: false,
            }
        );
        assert_eq!(
            policy(json!({"type": "external-sandbox", "network_access": "restricted"})),
            SandboxPolicy::ExternalSandbox {
                network_access: NetworkAccess::Restricted,
            }
        );
        assert_eq!(
            policy(json!({"type": "external-sandbox", "network_access": "enabled"})),
            SandboxPolicy::ExternalSandbox {
                network_access: NetworkAccess::Enabled,
            }
        );
        assert_eq!(
            policy(json!({"type": "external-sandbox"})),
            SandboxPolicy::ExternalSandbox {
                network_access: NetworkAccess::Restricted,
            }
        );
        assert_eq!(
            policy(json!({"type": "workspace-write", "writable_roots": ["/a"],
                "read_only_access": {"type": "full-access"}, "network_access": false,
                "exclude_tmpdir_env_var": false, "exclude_slash_tmp": false})),
            SandboxPolicy::WorkspaceWrite {
                writable_roots: vec![path("/a")],
                read_only_access: ReadOnlyAccess::FullAccess,
                network_access: false,
                exclude_tmpdir_env_var: false,
                exclude_slash_tmp: false,
            }
        );
    }

    #[test]
    fn policy_defaults_and_nulls() {
        assert_eq!(
            policy(json!({"type": "workspace-write"})),
            SandboxPolicy::WorkspaceWrite {
                writable_roots: vec![],
                read_only_access: ReadOnlyAccess::FullAccess,
                network_access: false,
                exclude_tmpdir_env_var: false,
                exclude_slash_tmp: false,
            }
        );
        assert_eq!(
            policy(json!({"type": "workspace-write", "writable_roots": null,
                "read_only_access": null, "network_access": null, "exclude_tmpdir_env_var": null,
                "exclude_slash_tmp": null, "unknown": 1})),
            policy(json!({"type": "workspace-write"}))
        );
        assert_eq!(
            policy(json!({"type": "read-only", "access": {"type": "restricted"}})),
            SandboxPolicy::ReadOnly {
                access: ReadOnlyAccess::Restricted {
                    include_platform_defaults: true,
                    readable_roots: vec![],
                },
                network_access: false,
            }
        );
        assert_eq!(
            policy(json!({"type": "read-only", "access": {"type": "restricted",
                "include_platform_defaults": null, "readable_roots": null}})),
            policy(json!({"type": "read-only", "access": {"type": "restricted"}}))
        );
        assert_eq!(
            policy(json!({"type": "read-only", "access": {"type": "restricted",
                "include_platform_defaults": false, "readable_roots": ["file:///x/../y"]}})),
            SandboxPolicy::ReadOnly {
                access: ReadOnlyAccess::Restricted {
                    include_platform_defaults: false,
                    readable_roots: vec![path("/y")],
                },
                network_access: false,
            }
        );
        assert!(serde_json::from_value::<SandboxPolicy>(json!({"type": "bogus"})).is_err());
        assert!(serde_json::from_value::<SandboxPolicy>(json!({})).is_err());
        assert!(serde_json::from_value::<SandboxPolicy>(
            json!({"type": "workspace-write", "writable_roots": ["relative"]})
        )
        .is_err());
    }

    #[test]
    fn platform_sandbox_dispatch() {
        assert!(!SandboxPolicy::DangerFullAccess.needs_platform_sandbox());
        assert!(!policy(json!({"type": "external-sandbox"})).needs_platform_sandbox());
        assert!(policy(json!({"type": "read-only"})).needs_platform_sandbox());
        assert!(policy(json!({"type": "workspace-write"})).needs_platform_sandbox());
    }

    #[test]
    fn serializes_in_codex_shape() {
        assert_eq!(
            serde_json::to_value(policy(json!({"type": "read-only"}))).unwrap(),
            json!({"type": "read-only", "network_access": false})
        );
        let ww = json!({"type": "workspace-write", "writable_roots": ["/a"],
            "read_only_access": {"type": "restricted", "include_platform_defaults": true,
            "readable_roots": ["/b"]}, "network_access": true, "exclude_tmpdir_env_var": false,
            "exclude_slash_tmp": true});
        assert_eq!(serde_json::to_value(policy(ww.clone())).unwrap(), ww);
        assert_eq!(
            serde_json::to_value(FileSystemSandboxContext::new(
                SandboxPolicy::DangerFullAccess
            ))
            .unwrap(),
            json!({"sandboxPolicy": {"type": "danger-full-access"},
                "windowsSandboxLevel": "disabled", "windowsSandboxPrivateDesktop": false,
                "useLegacyLandlock": false})
        );
    }

    /// The `sandbox` of codex 0.171's `fs/writeFile` in workspace-write (its transcript).
    fn codex_0171_workspace_write() -> Value {
        json!({"permissions": {"type": "managed", "file_system": {"type": "restricted", "entries": [
            {"path": {"type": "special", "value": {"kind": "root"}}, "access": "read"},
            {"path": {"type": "special", "value": {"kind": "project_roots"}}, "access": "write"},
            {"path": {"type": "special", "value": {"kind": "slash_tmp"}}, "access": "write"},
            {"path": {"type": "special", "value": {"kind": "tmpdir"}}, "access": "write"},
            {"path": {"type": "special", "value": {"kind": "project_roots", "subpath": ".git"}},
             "access": "read", "missing_path_behavior": "skip"},
            {"path": {"type": "special", "value": {"kind": "project_roots", "subpath": ".aws"}},
             "access": "read", "missing_path_behavior": "skip"}]}, "network": "restricted"},
          "cwd": "file:///workdir/work",
          "policyContext": {"cwd": "file:///workdir/work", "workspaceRoots": ["file:///workdir/work"]},
          "workspaceRoots": ["file:///workdir/work"], "userHomeDir": "file:///home/dev",
          "windowsSandboxLevel": "disabled", "windowsSandboxProxySettingsMode": "reconcile",
          "useLegacyLandlock": false})
    }

    #[test]
    fn parses_codex_0171_profile() {
        let c: FileSystemSandboxContext =
            serde_json::from_value(codex_0171_workspace_write()).unwrap();
        assert_eq!(c.sandbox_policy, None);
        assert_eq!(c.cwd, Some(path("/workdir/work")));
        assert_eq!(c.workspace_roots, vec![path("/workdir/work")]);
        assert_eq!(
            c.policy_context.as_ref().unwrap().workspace_roots,
            vec![path("/workdir/work")]
        );
        assert_eq!(c.user_home_dir, Some(path("/home/dev")));
        let PolicyShape::Profile(PermissionProfile::Managed {
            file_system: FileSystemPolicy::Restricted { entries, .. },
            network,
        }) = c.policy()
        else {
            panic!("expected a managed restricted profile: {c:?}");
        };
        assert_eq!(*network, NetworkPolicy::Restricted);
        assert_eq!(entries.len(), 6);
        assert_eq!(
            entries[4],
            FileSystemEntry {
                path: FileSystemPath::Special {
                    value: SpecialPath::ProjectRoots {
                        subpath: Some(".git".into())
                    }
                },
                access: FileSystemAccess::Read,
                missing_path_behavior: Some(MissingPathBehavior::Skip),
            }
        );
        assert!(c.needs_platform_sandbox());
        // And it round-trips: what the Rust client sends is what it decoded.
        let again: FileSystemSandboxContext =
            serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn every_profile_kind_path_and_access_decodes() {
        let profile = |v: Value| serde_json::from_value::<PermissionProfile>(v);
        assert_eq!(
            profile(json!({"type": "disabled"})).unwrap(),
            PermissionProfile::Disabled
        );
        assert_eq!(
            profile(json!({"type": "external", "network": "enabled"})).unwrap(),
            PermissionProfile::External {
                network: NetworkPolicy::Enabled
            }
        );
        assert_eq!(
            profile(json!({"type": "external", "network": null})).unwrap(),
            PermissionProfile::External {
                network: NetworkPolicy::Restricted
            }
        );
        let managed = profile(
            json!({"type": "managed", "file_system": {"type": "restricted",
            "glob_scan_max_depth": 3, "entries": [
            {"path": {"type": "path", "path": "file:///opt/data"}, "access": "read"},
            {"path": {"type": "path", "path": "/native/ok"}, "access": "none"},
            {"path": {"type": "glob_pattern", "pattern": "**/*.env"}, "access": "deny"},
            {"path": {"type": "special", "value": {"kind": "minimal"}}, "access": "read"},
            {"path": {"type": "special", "value": {"kind": "current_working_directory",
                "subpath": "src"}}, "access": "write"},
            {"path": {"type": "special", "value": {"kind": "unknown", "path": "x"}},
                "access": "read"}]}}),
        )
        .unwrap();
        let PermissionProfile::Managed {
            file_system: FileSystemPolicy::Restricted { entries, .. },
            network,
        } = &managed
        else {
            panic!("{managed:?}");
        };
        assert_eq!(*network, NetworkPolicy::Restricted);
        assert_eq!(entries[1].access, FileSystemAccess::Deny);
        assert_eq!(
            entries[4].path,
            FileSystemPath::Special {
                value: SpecialPath::ProjectRoots {
                    subpath: Some("src".into())
                }
            }
        );
        assert_eq!(
            profile(
                json!({"type": "managed", "file_system": {"type": "unrestricted"},
                "network": "enabled"})
            )
            .unwrap()
            .network(),
            NetworkPolicy::Enabled
        );
        // What the server does not understand is refused, never read as "no sandbox".
        for bad in [
            json!({"type": "bogus"}),
            json!({"type": "managed"}),
            json!({"type": "managed", "file_system": {"type": "weird"}}),
            json!({"type": "managed", "file_system": {"type": "restricted", "entries": [
                {"path": {"type": "special", "value": {"kind": "home"}}, "access": "read"}]}}),
            json!({"type": "managed", "file_system": {"type": "restricted", "entries": [
                {"path": {"type": "special", "value": {"kind": "root"}}, "access": "admin"}]}}),
            json!({"type": "managed", "file_system": {"type": "restricted", "entries": [
                {"path": {"type": "special", "value": {"kind": "root"}}, "access": "read",
                 "missing_path_behavior": "create"}]}}),
            json!({"type": "managed", "file_system": {"type": "restricted", "entries": [
                {"path": {"type": "path", "path": "relative/x"}, "access": "read"}]}}),
            json!({"type": "managed", "file_system": {"type": "restricted", "entries": []},
                "network": "proxied"}),
        ] {
            assert!(profile(bad.clone()).is_err(), "accepted {bad}");
        }
    }

    #[test]
    fn a_context_has_exactly_one_policy() {
        let both = json!({"sandboxPolicy": {"type": "read-only"},
            "permissions": {"type": "disabled"}});
        let err = serde_json::from_value::<FileSystemSandboxContext>(both).unwrap_err();
        assert!(err.to_string().contains("both"), "{err}");
        let only_cwd = json!({"cwd": "/w", "workspaceRoots": null});
        assert!(serde_json::from_value::<FileSystemSandboxContext>(only_cwd).is_err());
    }

    #[test]
    fn full_disk_write_and_where_calls_run() {
        let ctx = |entries: Value| -> FileSystemSandboxContext {
            serde_json::from_value(json!({"permissions": {"type": "managed",
                "file_system": {"type": "restricted", "entries": entries}}}))
            .unwrap()
        };
        let root = |access: &str| {
            json!({"path": {"type": "special", "value": {"kind": "root"}},
            "access": access})
        };
        let special = |kind: &str, access: &str| {
            json!({"path": {"type": "special",
            "value": {"kind": kind}}, "access": access})
        };
        assert!(!ctx(json!([root("write")])).needs_platform_sandbox());
        assert!(!ctx(json!([
            root("write"),
            special("minimal", "read"),
            special("unknown", "read")
        ]))
        .needs_platform_sandbox());
        assert!(ctx(json!([root("read")])).needs_platform_sandbox());
        assert!(ctx(json!([root("write"), root("deny")])).needs_platform_sandbox());
        assert!(ctx(json!([root("write"), special("tmpdir", "read")])).needs_platform_sandbox());
        // A read entry shadowed by a write entry for the same target does not narrow.
        assert!(!ctx(json!([
            root("write"),
            special("tmpdir", "read"),
            special("tmpdir", "write")
        ]))
        .needs_platform_sandbox());
        assert!(ctx(json!([root("write"),
            {"path": {"type": "path", "path": "/w/.git"}, "access": "read"}]))
        .needs_platform_sandbox());
        // A deny is never shadowed by a write for the same target: it wins at equal depth.
        assert!(ctx(json!([
            root("write"),
            special("tmpdir", "deny"),
            special("tmpdir", "write")
        ]))
        .needs_platform_sandbox());
        let unrestricted: FileSystemSandboxContext = serde_json::from_value(json!(
            {"permissions": {"type": "managed", "file_system": {"type": "unrestricted"}}}))
        .unwrap();
        assert!(!unrestricted.needs_platform_sandbox());
        assert!(
            !FileSystemSandboxContext::from_profile(PermissionProfile::Disabled)
                .needs_platform_sandbox()
        );
    }
}
