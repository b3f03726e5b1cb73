//! The `sandbox` object of filesystem requests (codex's `FileSystemSandboxContext`) and the
//! codex `SandboxPolicy` inside it.
//!
//! The context itself is camelCase; `SandboxPolicy`, `ReadOnlyAccess` and the permission
//! profile keep codex's snake_case field names.

use crate::process::null_as_default;
use crate::AbsolutePath;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The optional `sandbox` member of every `fs/*` request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileSystemSandboxContext {
    pub sandbox_policy: SandboxPolicy,
    /// The directory the policy is resolved against (a `workspace-write` policy makes it
    /// writable); default: the server's current directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_policy_cwd: Option<AbsolutePath>,
    /// Codex's split filesystem policy, passed through as is. When present,
    /// `sandboxPolicyCwd` is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_system_sandbox_policy: Option<Value>,
    /// Only meaningful on Windows. Codex requires it; accepted as absent here.
    #[serde(default, deserialize_with = "null_as_default")]
    // An explicit null is accepted (as the default), so the schema says so.
    #[schemars(with = "Option<WindowsSandboxLevel>")]
    pub windows_sandbox_level: WindowsSandboxLevel,
    #[serde(default, deserialize_with = "null_as_default")]
    // An explicit null is accepted (as the default), so the schema says so.
    #[schemars(with = "Option<bool>")]
    pub windows_sandbox_private_desktop: bool,
    /// Codex's switch to its older Landlock-only Linux sandbox.
    #[serde(default, deserialize_with = "null_as_default")]
    // An explicit null is accepted (as the default), so the schema says so.
    #[schemars(with = "Option<bool>")]
    pub use_legacy_landlock: bool,
    /// Extra permissions granted on top of the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_permissions: Option<PermissionProfile>,
}

/// Shorter name for [`FileSystemSandboxContext`].
pub type SandboxContext = FileSystemSandboxContext;

impl FileSystemSandboxContext {
    /// A context with only a policy, every other field at its default.
    pub fn new(sandbox_policy: SandboxPolicy) -> Self {
        FileSystemSandboxContext {
            sandbox_policy,
            sandbox_policy_cwd: None,
            file_system_sandbox_policy: None,
            windows_sandbox_level: WindowsSandboxLevel::Disabled,
            windows_sandbox_private_desktop: false,
            use_legacy_landlock: false,
            additional_permissions: None,
        }
    }
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

/// Codex's `PermissionProfile`: permissions added to the sandbox policy.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct PermissionProfile {
    /// Codex's network permissions object, passed through as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_system: Option<FileSystemPermissions>,
}

/// Extra readable and writable paths of a [`PermissionProfile`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct FileSystemPermissions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<Vec<AbsolutePath>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write: Option<Vec<AbsolutePath>>,
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
            c.sandbox_policy,
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
        assert!(c.sandbox_policy.needs_platform_sandbox());
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
        assert!(serde_json::from_str::<FileSystemSandboxContext>("{}").is_err());
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
}
