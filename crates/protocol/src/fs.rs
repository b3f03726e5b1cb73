//! `fs/*` params and results.
//!
//! Methods that return nothing reply with [`EmptyResponse`](crate::EmptyResponse) (`{}`).
//! Every request takes an optional `sandbox` ([`SandboxContext`]); without one, or with a
//! policy that does not need the platform sandbox, the operation runs in the server process.

use crate::process::null_as_default;
use crate::sandbox::{default_true, null_as_true, SandboxContext};
use crate::{AbsolutePath, Base64Bytes};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `fs/readFile` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadFileParams {
    pub path: AbsolutePath,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxContext>,
    /// Addition: read from this byte offset (default 0). With `offset` or `length`, the
    /// result carries `size` and `eof`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Addition: read at most this many bytes (default: to the end of the file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
}

impl ReadFileParams {
    /// True when the request asks for a byte range rather than the whole file.
    pub fn is_ranged(&self) -> bool {
        self.offset.is_some() || self.length.is_some()
    }
}

/// `fs/readFile` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadFileResponse {
    pub data_base64: Base64Bytes,
    /// Addition (ranged reads): the file's current size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Addition (ranged reads): true when the returned range reaches the end of the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eof: Option<bool>,
}

/// `fs/writeFile` params. Without `offset` or `append` the file is created or truncated;
/// parent directories are never created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WriteFileParams {
    pub path: AbsolutePath,
    pub data_base64: Base64Bytes,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxContext>,
    /// Addition: write in place at this byte offset without truncating; must not be beyond
    /// the current size. Not together with `append`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Addition: append to the end of the file (created if missing). Not together with
    /// `offset`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_false"
    )]
    // An explicit null is accepted (as the default), so the schema says so.
    #[schemars(with = "Option<bool>")]
    pub append: bool,
}

/// `fs/createDirectory` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateDirectoryParams {
    pub path: AbsolutePath,
    /// Create missing parents, and succeed when the directory exists (default true).
    #[serde(default = "default_true", deserialize_with = "null_as_true")]
    // An explicit null is accepted (as the default), so the schema says so.
    #[schemars(with = "Option<bool>")]
    pub recursive: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxContext>,
}

/// `fs/getMetadata` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GetMetadataParams {
    pub path: AbsolutePath,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxContext>,
}

/// `fs/getMetadata` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GetMetadataResponse {
    /// Follows symlinks.
    pub is_directory: bool,
    /// Follows symlinks.
    pub is_file: bool,
    /// Describes the path itself (not followed). Absent from early-April codex servers.
    #[serde(default)]
    pub is_symlink: bool,
    /// Milliseconds since the Unix epoch; 0 when unavailable.
    pub created_at_ms: i64,
    /// Milliseconds since the Unix epoch; 0 when unavailable.
    pub modified_at_ms: i64,
    /// Addition: size in bytes (of the symlink target when the path is a symlink).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Addition: Unix permission bits (`st_mode & 0o7777`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

/// `fs/readDirectory` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadDirectoryParams {
    pub path: AbsolutePath,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxContext>,
}

/// `fs/readDirectory` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadDirectoryResponse {
    /// In OS order (unsorted).
    pub entries: Vec<DirectoryEntry>,
}

/// One entry of a directory listing; types follow symlinks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryEntry {
    pub file_name: String,
    pub is_directory: bool,
    pub is_file: bool,
}

/// `fs/remove` params. A symlink is removed itself, never its target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemoveParams {
    pub path: AbsolutePath,
    /// Remove a directory with its contents (default true); false removes only an empty one.
    #[serde(default = "default_true", deserialize_with = "null_as_true")]
    // An explicit null is accepted (as the default), so the schema says so.
    #[schemars(with = "Option<bool>")]
    pub recursive: bool,
    /// Succeed when the path does not exist (default true).
    #[serde(default = "default_true", deserialize_with = "null_as_true")]
    // An explicit null is accepted (as the default), so the schema says so.
    #[schemars(with = "Option<bool>")]
    pub force: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxContext>,
}

/// `fs/copy` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CopyParams {
    pub source_path: AbsolutePath,
    pub destination_path: AbsolutePath,
    /// Required, and must be true when the source is a directory.
    pub recursive: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxContext>,
}

/// `fs/rename` params (addition): moves `sourcePath` onto `destinationPath`, replacing a
/// file there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RenameParams {
    pub source_path: AbsolutePath,
    pub destination_path: AbsolutePath,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxContext>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::SandboxPolicy;
    use crate::EmptyResponse;
    use serde_json::json;
    use std::path::Path;

    #[test]
    fn read_file_with_null_sandbox_and_unknown_fields() {
        let p: ReadFileParams =
            serde_json::from_str(r#"{"path":"/tmp/a","sandbox":null,"metadata":{"x":1}}"#).unwrap();
        assert_eq!(p.path.as_path(), Path::new("/tmp/a"));
        assert_eq!(p.sandbox, None);
        assert!(!p.is_ranged());
        let p: ReadFileParams =
            serde_json::from_str(r#"{"path":"file:///tmp/a","offset":10,"length":null}"#).unwrap();
        assert_eq!((p.offset, p.length), (Some(10), None));
        assert!(p.is_ranged());
        assert!(serde_json::from_str::<ReadFileParams>(r#"{"path":"rel"}"#).is_err());
    }

    #[test]
    fn read_file_with_sandbox() {
        let p: ReadFileParams = serde_json::from_value(json!({
            "path": "/w/f",
            "sandbox": {"sandboxPolicy": {"type": "read-only"}, "sandboxPolicyCwd": "/w",
                "fileSystemSandboxPolicy": null, "windowsSandboxLevel": "disabled",
                "windowsSandboxPrivateDesktop": false, "useLegacyLandlock": false,
                "additionalPermissions": null}
        }))
        .unwrap();
        let sandbox = p.sandbox.unwrap();
        assert!(sandbox.needs_platform_sandbox());
        assert_eq!(
            sandbox.sandbox_policy_cwd.unwrap().as_path(),
            Path::new("/w")
        );
    }

    #[test]
    fn read_file_result_omits_range_fields_when_absent() {
        let r = ReadFileResponse {
            data_base64: Base64Bytes::from("hi"),
            size: None,
            eof: None,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"dataBase64":"aGk="}"#
        );
        let r = ReadFileResponse {
            size: Some(2),
            eof: Some(true),
            ..r
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"dataBase64":"aGk=","size":2,"eof":true}"#
        );
        let back: ReadFileResponse = serde_json::from_str(r#"{"dataBase64":""}"#).unwrap();
        assert!(back.data_base64.is_empty());
    }

    #[test]
    fn write_file_shapes() {
        let p: WriteFileParams = serde_json::from_str(
            r#"{"path":"/a","dataBase64":"aGk=","sandbox":null,"offset":null,"append":null,"writeId":"w1"}"#,
        )
        .unwrap();
        assert_eq!(&p.data_base64[..], b"hi");
        assert_eq!((p.offset, p.append), (None, false));
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"path":"/a","dataBase64":"aGk="}"#
        );
        let p: WriteFileParams =
            serde_json::from_str(r#"{"path":"/a","dataBase64":"","offset":5,"append":true}"#)
                .unwrap();
        assert_eq!((p.offset, p.append), (Some(5), true));
        let err = serde_json::from_str::<WriteFileParams>(r#"{"path":"/a","dataBase64":"!!"}"#)
            .unwrap_err();
        assert!(err.to_string().contains("invalid base64"), "{err}");
    }

    #[test]
    fn create_directory_and_remove_defaults() {
        let p: CreateDirectoryParams = serde_json::from_str(r#"{"path":"/d"}"#).unwrap();
        assert!(p.recursive);
        let p: CreateDirectoryParams =
            serde_json::from_str(r#"{"path":"/d","recursive":null,"sandbox":null}"#).unwrap();
        assert!(p.recursive);
        let p: CreateDirectoryParams =
            serde_json::from_str(r#"{"path":"/d","recursive":false}"#).unwrap();
        assert!(!p.recursive);

        let p: RemoveParams = serde_json::from_str(r#"{"path":"/d"}"#).unwrap();
        assert!(p.recursive && p.force);
        let p: RemoveParams =
            serde_json::from_str(r#"{"path":"/d","recursive":null,"force":null,"sandbox":null}"#)
                .unwrap();
        assert!(p.recursive && p.force);
        let p: RemoveParams =
            serde_json::from_str(r#"{"path":"/d","recursive":false,"force":false}"#).unwrap();
        assert!(!p.recursive && !p.force);
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"path":"/d","recursive":false,"force":false}"#
        );
    }

    #[test]
    fn get_metadata_result_matches_reference_shape() {
        let r = GetMetadataResponse {
            is_directory: false,
            is_file: true,
            is_symlink: false,
            created_at_ms: 0,
            modified_at_ms: 1,
            size: None,
            mode: None,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"isDirectory":false,"isFile":true,"isSymlink":false,"createdAtMs":0,"modifiedAtMs":1}"#
        );
        let r = GetMetadataResponse {
            size: Some(3),
            mode: Some(0o644),
            ..r
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"isDirectory":false,"isFile":true,"isSymlink":false,"createdAtMs":0,
                "modifiedAtMs":1,"size":3,"mode":420})
        );
        // An early-April server sends no isSymlink.
        let old: GetMetadataResponse = serde_json::from_str(
            r#"{"isDirectory":true,"isFile":false,"createdAtMs":5,"modifiedAtMs":6}"#,
        )
        .unwrap();
        assert!(old.is_directory && !old.is_symlink && old.size.is_none());
        let p: GetMetadataParams = serde_json::from_str(r#"{"path":"/x","sandbox":null}"#).unwrap();
        assert_eq!(p.sandbox, None);
    }

    #[test]
    fn read_directory_shapes() {
        let p: ReadDirectoryParams = serde_json::from_str(r#"{"path":"/x"}"#).unwrap();
        assert_eq!(p.path.as_path(), Path::new("/x"));
        let r = ReadDirectoryResponse {
            entries: vec![DirectoryEntry {
                file_name: "a".into(),
                is_directory: false,
                is_file: true,
            }],
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"entries":[{"fileName":"a","isDirectory":false,"isFile":true}]}"#
        );
    }

    #[test]
    fn copy_requires_recursive_and_rename_parses() {
        assert!(serde_json::from_str::<CopyParams>(
            r#"{"sourcePath":"/a","destinationPath":"/b"}"#
        )
        .is_err());
        let p: CopyParams = serde_json::from_str(
            r#"{"sourcePath":"/a","destinationPath":"/b","recursive":true,"sandbox":null}"#,
        )
        .unwrap();
        assert!(p.recursive);
        let p: RenameParams = serde_json::from_value(json!({
            "sourcePath": "/a/.tmp", "destinationPath": "file:///a/b",
            "sandbox": {"sandboxPolicy": {"type": "danger-full-access"}}
        }))
        .unwrap();
        assert_eq!(p.destination_path.as_path(), Path::new("/a/b"));
        assert_eq!(
            p.sandbox.unwrap().sandbox_policy,
            Some(SandboxPolicy::DangerFullAccess)
        );
    }

    #[test]
    fn empty_results() {
        assert_eq!(serde_json::to_string(&EmptyResponse {}).unwrap(), "{}");
    }
}
