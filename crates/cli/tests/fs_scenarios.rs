//! The filesystem scenario suite: every scenario is written once against the `FileSystem`
//! trait and runs against the local environment and a real server on loopback.

mod support;

use exec_server_environment::local::FsConfig;
use exec_server_protocol::fs::{
    CopyParams, CreateDirectoryParams, GetMetadataParams, ReadDirectoryParams, ReadFileParams,
    ReadFileResponse, RemoveParams, RenameParams, WriteFileParams,
};
use exec_server_protocol::sandbox::{NetworkAccess, SandboxContext, SandboxPolicy};
use exec_server_protocol::{AbsolutePath, Base64Bytes};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use support::fs::{code_of, error_of, mkfifo, FsEnv};
use support::{within, Target};

const NOT_FOUND: i64 = -32004;
const INVALID_REQUEST: i64 = -32600;
const INVALID_PARAMS: i64 = -32602;
const INTERNAL: i64 = -32603;

/// Runs each scenario as two tests, `local` and `remote`.
macro_rules! both_targets {
    ($($name:ident => $body:ident;)*) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn local() {
                    super::$body(super::Target::Local).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn remote() {
                    super::$body(super::Target::Remote).await;
                }
            }
        )*
    };
}

both_targets! {
    write_and_read_whole_files => write_and_read_whole_files;
    write_does_not_create_parents => write_does_not_create_parents;
    file_uris_are_paths => file_uris_are_paths;
    create_directory_rules => create_directory_rules;
    metadata_of_files_dirs_and_symlinks => metadata_of_files_dirs_and_symlinks;
    read_directory_follows_symlinks => read_directory_follows_symlinks;
    remove_rules => remove_rules;
    remove_never_follows_symlinks => remove_never_follows_symlinks;
    copy_files_and_symlinks => copy_files_and_symlinks;
    copy_directories => copy_directories;
    copy_refuses_special_files => copy_refuses_special_files;
    rename_moves => rename_moves;
    ranged_reads => ranged_reads;
    ranged_writes => ranged_writes;
    whole_read_limit => whole_read_limit;
    sandbox_policies => sandbox_policies;
}

fn read(path: &AbsolutePath) -> ReadFileParams {
    ReadFileParams {
        path: path.clone(),
        sandbox: None,
        offset: None,
        length: None,
    }
}

fn read_range(path: &AbsolutePath, offset: Option<u64>, length: Option<u64>) -> ReadFileParams {
    ReadFileParams {
        offset,
        length,
        ..read(path)
    }
}

fn write(path: &AbsolutePath, data: &[u8]) -> WriteFileParams {
    WriteFileParams {
        path: path.clone(),
        data_base64: Base64Bytes::from(data),
        sandbox: None,
        offset: None,
        append: false,
    }
}

fn mkdir(path: &AbsolutePath, recursive: bool) -> CreateDirectoryParams {
    CreateDirectoryParams {
        path: path.clone(),
        recursive,
        sandbox: None,
    }
}

fn stat(path: &AbsolutePath) -> GetMetadataParams {
    GetMetadataParams {
        path: path.clone(),
        sandbox: None,
    }
}

fn rm(path: &AbsolutePath, recursive: bool, force: bool) -> RemoveParams {
    RemoveParams {
        path: path.clone(),
        recursive,
        force,
        sandbox: None,
    }
}

fn cp(from: &AbsolutePath, to: &AbsolutePath, recursive: bool) -> CopyParams {
    CopyParams {
        source_path: from.clone(),
        destination_path: to.clone(),
        recursive,
        sandbox: None,
    }
}

fn ls(path: &AbsolutePath) -> ReadDirectoryParams {
    ReadDirectoryParams {
        path: path.clone(),
        sandbox: None,
    }
}

fn bytes(response: &ReadFileResponse) -> &[u8] {
    &response.data_base64
}

async fn write_and_read_whole_files(target: Target) {
    let t = FsEnv::new(target).await;
    let fs = t.fs();
    let file = t.path("a.bin");
    let all: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    within("write", fs.write_file(write(&file, &all)))
        .await
        .unwrap();
    let back = within("read", fs.read_file(read(&file))).await.unwrap();
    assert_eq!(bytes(&back), &all[..]);
    // A whole-file read keeps the April shape: no range fields.
    assert_eq!((back.size, back.eof), (None, None));

    // Writing again truncates.
    within("overwrite", fs.write_file(write(&file, b"short")))
        .await
        .unwrap();
    let back = within("read", fs.read_file(read(&file))).await.unwrap();
    assert_eq!(bytes(&back), b"short");

    within("empty", fs.write_file(write(&file, b"")))
        .await
        .unwrap();
    let back = within("read", fs.read_file(read(&file))).await.unwrap();
    assert!(back.data_base64.is_empty());

    let (code, message) = error_of(within("missing", fs.read_file(read(&t.path("nope")))).await);
    assert_eq!(code, NOT_FOUND);
    assert_eq!(message, "No such file or directory (os error 2)");
    // Reading a directory is an OS error other than not-found.
    let code = code_of(within("dir", fs.read_file(read(&t.path("")))).await);
    assert_eq!(code, INTERNAL);
}

async fn write_does_not_create_parents(target: Target) {
    let t = FsEnv::new(target).await;
    let file = t.path("missing/parent/f.txt");
    let result = within("write", t.fs().write_file(write(&file, b"x"))).await;
    assert_eq!(code_of(result), NOT_FOUND);
    assert!(!t.dir.path().join("missing").exists());
}

async fn file_uris_are_paths(target: Target) {
    let t = FsEnv::new(target).await;
    let native = t.dir.path().join("with space.txt");
    let uri = format!("file://{}", native.to_str().unwrap().replace(' ', "%20"));
    let path = AbsolutePath::parse(&uri).unwrap();
    within("write", t.fs().write_file(write(&path, b"via uri")))
        .await
        .unwrap();
    assert_eq!(fs::read(&native).unwrap(), b"via uri");
    // `..` is normalized lexically.
    let dotted = AbsolutePath::parse(&format!(
        "file://{}/sub/../with%20space.txt",
        t.dir.path().display()
    ))
    .unwrap();
    let back = within("read", t.fs().read_file(read(&dotted)))
        .await
        .unwrap();
    assert_eq!(bytes(&back), b"via uri");
    // Relative paths never reach an implementation: they fail to decode.
    assert!(
        serde_json::from_value::<ReadFileParams>(serde_json::json!({"path": "rel/x"})).is_err()
    );
}

async fn create_directory_rules(target: Target) {
    let t = FsEnv::new(target).await;
    let fs = t.fs();
    let deep = t.path("a/b/c");
    // Recursive by default: parents are created, and an existing directory is fine.
    let params: CreateDirectoryParams =
        serde_json::from_value(serde_json::json!({"path": deep.to_string()})).unwrap();
    within("mkdir -p", fs.create_directory(params.clone()))
        .await
        .unwrap();
    assert!(t.dir.path().join("a/b/c").is_dir());
    within("mkdir -p again", fs.create_directory(params))
        .await
        .unwrap();

    let result = within("mkdir existing", fs.create_directory(mkdir(&deep, false))).await;
    let (code, message) = error_of(result);
    assert_eq!(code, INTERNAL);
    assert_eq!(message, "File exists (os error 17)");
    let orphan = t.path("x/y");
    let result = within("mkdir orphan", fs.create_directory(mkdir(&orphan, false))).await;
    assert_eq!(code_of(result), NOT_FOUND);
    within(
        "mkdir single",
        fs.create_directory(mkdir(&t.path("x"), false)),
    )
    .await
    .unwrap();
    assert!(t.dir.path().join("x").is_dir());
}

async fn metadata_of_files_dirs_and_symlinks(target: Target) {
    let t = FsEnv::new(target).await;
    let root = t.dir.path();
    fs::write(root.join("f"), b"12345").unwrap();
    fs::set_permissions(root.join("f"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::create_dir(root.join("d")).unwrap();
    std::os::unix::fs::symlink(root.join("f"), root.join("link-to-f")).unwrap();
    std::os::unix::fs::symlink(root.join("d"), root.join("link-to-d")).unwrap();
    std::os::unix::fs::symlink(root.join("gone"), root.join("dangling")).unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;

    let fs_ = t.fs();
    let m = within("stat f", fs_.get_metadata(stat(&t.path("f"))))
        .await
        .unwrap();
    assert!(m.is_file && !m.is_directory && !m.is_symlink, "{m:?}");
    assert_eq!((m.size, m.mode), (Some(5), Some(0o640)));
    assert!(
        (m.modified_at_ms - now_ms).abs() < 60_000,
        "modified {} vs now {now_ms}",
        m.modified_at_ms
    );
    assert!(m.created_at_ms == 0 || (m.created_at_ms - now_ms).abs() < 60_000);

    let m = within("stat d", fs_.get_metadata(stat(&t.path("d"))))
        .await
        .unwrap();
    assert!(m.is_directory && !m.is_file && !m.is_symlink, "{m:?}");

    // A symlink to a file: the type follows the link, isSymlink describes the path itself.
    let m = within("stat link", fs_.get_metadata(stat(&t.path("link-to-f"))))
        .await
        .unwrap();
    assert!(m.is_file && m.is_symlink && !m.is_directory, "{m:?}");
    assert_eq!(m.size, Some(5));

    let m = within(
        "stat dir link",
        fs_.get_metadata(stat(&t.path("link-to-d"))),
    )
    .await
    .unwrap();
    assert!(m.is_directory && m.is_symlink && !m.is_file, "{m:?}");

    // A dangling link exists (it can be removed), so it is described, not "not found".
    let m = within("stat dangling", fs_.get_metadata(stat(&t.path("dangling"))))
        .await
        .unwrap();
    assert!(m.is_symlink && !m.is_file && !m.is_directory, "{m:?}");

    let result = within("stat missing", fs_.get_metadata(stat(&t.path("missing")))).await;
    assert_eq!(code_of(result), NOT_FOUND);
}

async fn read_directory_follows_symlinks(target: Target) {
    let t = FsEnv::new(target).await;
    let root = t.dir.path();
    fs::write(root.join("f"), b"").unwrap();
    fs::create_dir(root.join("d")).unwrap();
    std::os::unix::fs::symlink(root.join("d"), root.join("ld")).unwrap();
    std::os::unix::fs::symlink(root.join("f"), root.join("lf")).unwrap();
    std::os::unix::fs::symlink(root.join("gone"), root.join("dangling")).unwrap();

    let listing = within("ls", t.fs().read_directory(ls(&t.path(""))))
        .await
        .unwrap();
    let entries: BTreeMap<String, (bool, bool)> = listing
        .entries
        .into_iter()
        .map(|e| (e.file_name, (e.is_directory, e.is_file)))
        .collect();
    let expected: BTreeMap<String, (bool, bool)> = [
        ("d", (true, false)),
        ("f", (false, true)),
        ("ld", (true, false)),
        ("lf", (false, true)),
        ("dangling", (false, false)),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_owned(), v))
    .collect();
    assert_eq!(entries, expected);

    let result = within("ls missing", t.fs().read_directory(ls(&t.path("missing")))).await;
    assert_eq!(code_of(result), NOT_FOUND);
}

async fn remove_rules(target: Target) {
    let t = FsEnv::new(target).await;
    let root = t.dir.path();
    let fs_ = t.fs();
    fs::create_dir_all(root.join("tree/sub")).unwrap();
    fs::write(root.join("tree/sub/f"), b"x").unwrap();
    fs::write(root.join("file"), b"x").unwrap();

    // Defaults: recursive and force.
    let params: RemoveParams =
        serde_json::from_value(serde_json::json!({"path": t.path("missing").to_string()})).unwrap();
    assert!(params.recursive && params.force);
    within("rm missing (force)", fs_.remove(params))
        .await
        .unwrap();
    let result = within(
        "rm missing",
        fs_.remove(rm(&t.path("missing"), true, false)),
    )
    .await;
    assert_eq!(code_of(result), NOT_FOUND);

    within("rm file", fs_.remove(rm(&t.path("file"), false, false)))
        .await
        .unwrap();
    assert!(!root.join("file").exists());

    let result = within(
        "rmdir non-empty",
        fs_.remove(rm(&t.path("tree"), false, true)),
    )
    .await;
    let (code, message) = error_of(result);
    assert_eq!(code, INTERNAL);
    assert_eq!(message, "Directory not empty (os error 39)");
    assert!(root.join("tree/sub/f").exists());

    within("rm -r", fs_.remove(rm(&t.path("tree"), true, true)))
        .await
        .unwrap();
    assert!(!root.join("tree").exists());

    fs::create_dir(root.join("empty")).unwrap();
    within(
        "rmdir empty",
        fs_.remove(rm(&t.path("empty"), false, false)),
    )
    .await
    .unwrap();
    assert!(!root.join("empty").exists());
}

async fn remove_never_follows_symlinks(target: Target) {
    let t = FsEnv::new(target).await;
    let root = t.dir.path();
    fs::create_dir(root.join("target-dir")).unwrap();
    fs::write(root.join("target-dir/keep"), b"keep").unwrap();
    fs::write(root.join("target-file"), b"keep").unwrap();
    std::os::unix::fs::symlink(root.join("target-dir"), root.join("ld")).unwrap();
    std::os::unix::fs::symlink(root.join("target-file"), root.join("lf")).unwrap();
    std::os::unix::fs::symlink(root.join("gone"), root.join("dangling")).unwrap();

    for link in ["ld", "lf", "dangling"] {
        within(link, t.fs().remove(rm(&t.path(link), true, false)))
            .await
            .unwrap();
        assert!(
            fs::symlink_metadata(root.join(link)).is_err(),
            "{link} remains"
        );
    }
    assert_eq!(fs::read(root.join("target-dir/keep")).unwrap(), b"keep");
    assert_eq!(fs::read(root.join("target-file")).unwrap(), b"keep");
}

async fn copy_files_and_symlinks(target: Target) {
    let t = FsEnv::new(target).await;
    let root = t.dir.path();
    let fs_ = t.fs();
    fs::write(root.join("src"), b"content").unwrap();
    fs::set_permissions(root.join("src"), fs::Permissions::from_mode(0o600)).unwrap();

    within(
        "cp file",
        fs_.copy(cp(&t.path("src"), &t.path("dst"), false)),
    )
    .await
    .unwrap();
    assert_eq!(fs::read(root.join("dst")).unwrap(), b"content");
    // Copying onto an existing file replaces it.
    fs::write(root.join("other"), b"longer old content").unwrap();
    within(
        "cp over",
        fs_.copy(cp(&t.path("src"), &t.path("other"), true)),
    )
    .await
    .unwrap();
    assert_eq!(fs::read(root.join("other")).unwrap(), b"content");

    // A symlink source becomes a new symlink with the same link text, not followed.
    std::os::unix::fs::symlink("src", root.join("rel-link")).unwrap();
    within(
        "cp link",
        fs_.copy(cp(&t.path("rel-link"), &t.path("link-copy"), false)),
    )
    .await
    .unwrap();
    let meta = fs::symlink_metadata(root.join("link-copy")).unwrap();
    assert!(meta.file_type().is_symlink());
    assert_eq!(
        fs::read_link(root.join("link-copy")).unwrap(),
        std::path::PathBuf::from("src")
    );

    let result = within(
        "cp missing",
        fs_.copy(cp(&t.path("nope"), &t.path("x"), false)),
    )
    .await;
    assert_eq!(code_of(result), NOT_FOUND);
    let result = within(
        "cp into missing dir",
        fs_.copy(cp(&t.path("src"), &t.path("no/dir/x"), false)),
    )
    .await;
    assert_eq!(code_of(result), NOT_FOUND);
}

async fn copy_directories(target: Target) {
    let t = FsEnv::new(target).await;
    let root = t.dir.path();
    let fs_ = t.fs();
    fs::create_dir_all(root.join("tree/a/b")).unwrap();
    fs::write(root.join("tree/top"), b"top").unwrap();
    fs::write(root.join("tree/a/b/deep"), b"deep").unwrap();
    std::os::unix::fs::symlink("../top", root.join("tree/a/up")).unwrap();
    mkfifo(&root.join("tree/a/fifo"));

    let result = within(
        "cp dir without recursive",
        fs_.copy(cp(&t.path("tree"), &t.path("copy"), false)),
    )
    .await;
    assert_eq!(
        error_of(result),
        (
            INVALID_REQUEST,
            "fs/copy requires recursive: true when sourcePath is a directory".to_owned()
        )
    );
    assert!(!root.join("copy").exists());

    within(
        "cp -r",
        fs_.copy(cp(&t.path("tree"), &t.path("copy"), true)),
    )
    .await
    .unwrap();
    assert_eq!(fs::read(root.join("copy/top")).unwrap(), b"top");
    assert_eq!(fs::read(root.join("copy/a/b/deep")).unwrap(), b"deep");
    assert!(fs::symlink_metadata(root.join("copy/a/up"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        fs::read_link(root.join("copy/a/up")).unwrap(),
        std::path::PathBuf::from("../top")
    );
    // Special files inside a recursive copy are skipped silently.
    assert!(fs::symlink_metadata(root.join("copy/a/fifo")).is_err());

    let into_itself = "fs/copy cannot copy a directory to itself or one of its descendants";
    for dest in ["tree", "tree/a/inner", "tree/new"] {
        let result = within(dest, fs_.copy(cp(&t.path("tree"), &t.path(dest), true))).await;
        assert_eq!(
            error_of(result),
            (INVALID_REQUEST, into_itself.to_owned()),
            "{dest}"
        );
    }
    // Through a symlink to the source too.
    std::os::unix::fs::symlink(root.join("tree"), root.join("tree-link")).unwrap();
    let result = within(
        "via link",
        fs_.copy(cp(&t.path("tree"), &t.path("tree-link/a/x"), true)),
    )
    .await;
    assert_eq!(error_of(result), (INVALID_REQUEST, into_itself.to_owned()));
    assert!(!root.join("tree/a/inner").exists() && !root.join("tree/a/x").exists());
    // A sibling whose name merely starts with the source's name is fine.
    within(
        "sibling",
        fs_.copy(cp(&t.path("tree"), &t.path("tree2"), true)),
    )
    .await
    .unwrap();
    assert_eq!(fs::read(root.join("tree2/a/b/deep")).unwrap(), b"deep");
}

async fn copy_refuses_special_files(target: Target) {
    let t = FsEnv::new(target).await;
    mkfifo(&t.dir.path().join("fifo"));
    for recursive in [false, true] {
        let result = within(
            "cp fifo",
            t.fs()
                .copy(cp(&t.path("fifo"), &t.path("fifo-copy"), recursive)),
        )
        .await;
        assert_eq!(
            error_of(result),
            (
                INVALID_REQUEST,
                "fs/copy only supports regular files, directories, and symlinks".to_owned()
            )
        );
    }
    assert!(!t.dir.path().join("fifo-copy").exists());
}

async fn rename_moves(target: Target) {
    let t = FsEnv::new(target).await;
    let root = t.dir.path();
    fs::write(root.join("a"), b"new").unwrap();
    fs::write(root.join("b"), b"old").unwrap();
    let rename = |from: &str, to: &str| RenameParams {
        source_path: t.path(from),
        destination_path: t.path(to),
        sandbox: None,
    };
    within("rename", t.fs().rename(rename("a", "b")))
        .await
        .unwrap();
    assert!(!root.join("a").exists());
    assert_eq!(fs::read(root.join("b")).unwrap(), b"new");
    let result = within("rename missing", t.fs().rename(rename("a", "c"))).await;
    assert_eq!(code_of(result), NOT_FOUND);
}

async fn ranged_reads(target: Target) {
    let t = FsEnv::new(target).await;
    let file = t.path("r");
    fs::write(t.dir.path().join("r"), b"hello world").unwrap();
    let fs_ = t.fs();
    // (offset, length, expected bytes, eof)
    type Case = (Option<u64>, Option<u64>, &'static [u8], bool);
    let cases: [Case; 7] = [
        (Some(0), Some(5), b"hello", false),
        (Some(6), Some(5), b"world", true),
        (Some(6), None, b"world", true),
        (None, Some(3), b"hel", false),
        // Past the end: what there is, and eof.
        (Some(8), Some(100), b"rld", true),
        (Some(11), Some(4), b"", true),
        (Some(100), None, b"", true),
    ];
    for (offset, length, expected, eof) in cases {
        let r = within(
            "ranged read",
            fs_.read_file(read_range(&file, offset, length)),
        )
        .await
        .unwrap();
        assert_eq!(bytes(&r), expected, "{offset:?} {length:?}");
        assert_eq!(r.size, Some(11), "{offset:?} {length:?}");
        assert_eq!(r.eof, Some(eof), "{offset:?} {length:?}");
    }
    let result = within(
        "ranged missing",
        fs_.read_file(read_range(&t.path("nope"), Some(0), None)),
    )
    .await;
    assert_eq!(code_of(result), NOT_FOUND);
}

async fn ranged_writes(target: Target) {
    let t = FsEnv::new(target).await;
    let file = t.path("w");
    let on_disk = || fs::read(t.dir.path().join("w")).unwrap();
    let fs_ = t.fs();
    within("create", fs_.write_file(write(&file, b"hello world")))
        .await
        .unwrap();

    // In place, without truncating.
    let mut p = write(&file, b"WORLD");
    p.offset = Some(6);
    within("in place", fs_.write_file(p)).await.unwrap();
    assert_eq!(on_disk(), b"hello WORLD");
    // At exactly the end: extends.
    let mut p = write(&file, b"!");
    p.offset = Some(11);
    within("at end", fs_.write_file(p)).await.unwrap();
    assert_eq!(on_disk(), b"hello WORLD!");
    // Beyond the end: invalid params, nothing written.
    let mut p = write(&file, b"?");
    p.offset = Some(13);
    let (code, message) = error_of(within("beyond", fs_.write_file(p)).await);
    assert_eq!(code, INVALID_PARAMS);
    assert!(message.contains("beyond the end"), "{message}");
    assert_eq!(on_disk(), b"hello WORLD!");
    // Offset together with append: invalid params.
    let mut p = write(&file, b"?");
    p.offset = Some(0);
    p.append = true;
    assert_eq!(
        code_of(within("offset+append", fs_.write_file(p)).await),
        INVALID_PARAMS
    );
    assert_eq!(on_disk(), b"hello WORLD!");

    let mut p = write(&file, b" more");
    p.append = true;
    within("append", fs_.write_file(p)).await.unwrap();
    assert_eq!(on_disk(), b"hello WORLD! more");

    // Append creates a missing file; an offset write needs an existing one.
    let fresh = t.path("fresh");
    let mut p = write(&fresh, b"a");
    p.append = true;
    within("append new", fs_.write_file(p)).await.unwrap();
    assert_eq!(fs::read(t.dir.path().join("fresh")).unwrap(), b"a");
    let mut p = write(&t.path("absent"), b"a");
    p.offset = Some(0);
    assert_eq!(
        code_of(within("offset on missing", fs_.write_file(p)).await),
        NOT_FOUND
    );
}

async fn whole_read_limit(target: Target) {
    let t = FsEnv::with_config(
        target,
        FsConfig {
            max_read_bytes: 1000,
            ..FsConfig::default()
        },
    )
    .await;
    let features = t.fs().features();
    assert!(features.ranges && features.rename, "{features:?}");
    assert_eq!(features.max_read_bytes, Some(1000));

    let data: Vec<u8> = (0..2500u32).map(|i| (i % 251) as u8).collect();
    fs::write(t.dir.path().join("big"), &data).unwrap();
    fs::write(t.dir.path().join("small"), &data[..1000]).unwrap();
    let fs_ = t.fs();

    let small = within("small", fs_.read_file(read(&t.path("small"))))
        .await
        .unwrap();
    assert_eq!(bytes(&small), &data[..1000]);

    let error = within("big", fs_.read_file(read(&t.path("big"))))
        .await
        .unwrap_err()
        .to_error_object();
    assert_eq!(error.code, INVALID_REQUEST);
    assert_eq!(error.data.as_ref().unwrap()["limit"], "maxReadBytes");
    assert!(
        error.message.contains("1000") && error.message.contains("offset"),
        "{}",
        error.message
    );

    // Ranged reads work, a range larger than the limit comes back short, and looping until
    // eof gets every byte.
    let mut got = Vec::new();
    let mut reads = 0;
    loop {
        let r = within(
            "range",
            fs_.read_file(read_range(&t.path("big"), Some(got.len() as u64), None)),
        )
        .await
        .unwrap();
        assert!(r.data_base64.len() <= 1000);
        got.extend_from_slice(bytes(&r));
        reads += 1;
        if r.eof == Some(true) {
            break;
        }
    }
    assert_eq!(got, data);
    assert_eq!(reads, 3);
}

async fn sandbox_policies(target: Target) {
    let t = FsEnv::new(target).await;
    let fs_ = t.fs();
    let file = t.path("s");
    let in_process = [
        SandboxPolicy::DangerFullAccess,
        SandboxPolicy::ExternalSandbox {
            network_access: NetworkAccess::Restricted,
        },
    ];
    for policy in in_process {
        let mut p = write(&file, b"ok");
        p.sandbox = Some(SandboxContext::new(policy.clone()));
        within("in-process policy", fs_.write_file(p))
            .await
            .unwrap_or_else(|e| panic!("{policy:?}: {e}"));
    }
    fs::remove_file(t.dir.path().join("s")).unwrap();

    // read-only and workspace-write: the fs_sandbox suite.

    let mut context = SandboxContext::new(SandboxPolicy::DangerFullAccess);
    context.file_system_sandbox_policy = Some(serde_json::json!({"kind": "restricted"}));
    let mut p = read(&file);
    p.sandbox = Some(context.clone());
    assert_eq!(
        error_of(within("fs policy without cwd", fs_.read_file(p)).await),
        (
            INVALID_REQUEST,
            "fileSystemSandboxPolicy requires sandboxPolicyCwd".to_owned()
        )
    );
}

/// Wire-level checks that only exist remotely: decode errors and the advertised capabilities.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_wire_details() {
    use serde_json::{json, Value};
    let t = FsEnv::new(Target::Remote).await;
    let client = t.raw_client().await;
    let capabilities = client.capabilities().expect("capabilities advertised");
    assert!(capabilities.features.fs_range);
    assert!(capabilities.methods.iter().any(|m| m == "fs/rename"));
    assert_eq!(capabilities.limits.max_read_bytes, Some(64 * 1024 * 1024));

    let call = |method: &'static str, params: Value| {
        let client = client.clone();
        async move {
            within(method, client.call::<_, Value>(method, &params))
                .await
                .map_err(|e| e.code())
        }
    };
    assert_eq!(
        call("fs/readFile", json!({"path": "relative/p"})).await,
        Err(INVALID_PARAMS)
    );
    assert_eq!(call("fs/getMetadata", json!({})).await, Err(INVALID_PARAMS));
    let dir = t.dir.path().display().to_string();
    assert_eq!(
        call(
            "fs/writeFile",
            json!({"path": format!("{dir}/b"), "dataBase64": "!!"})
        )
        .await,
        Err(INVALID_REQUEST)
    );
    // Explicit nulls and unknown fields, as real clients send them.
    let uri = format!("file://{dir}/n");
    assert_eq!(
        call(
            "fs/writeFile",
            json!({"path": uri, "dataBase64": "aGk=", "sandbox": null, "offset": null,
                "append": null, "writeId": "w1"})
        )
        .await,
        Ok(json!({}))
    );
    assert_eq!(
        call("fs/readFile", json!({"path": uri, "sandbox": null})).await,
        Ok(json!({"dataBase64": "aGk="}))
    );
    assert_eq!(
        call("fs/readFile", json!({"path": uri, "offset": 1})).await,
        Ok(json!({"dataBase64": "aQ==", "size": 2, "eof": true}))
    );
    assert_eq!(
        call(
            "fs/remove",
            json!({"path": uri, "recursive": null, "force": null})
        )
        .await,
        Ok(json!({}))
    );
}
