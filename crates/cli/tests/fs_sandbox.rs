//! The sandboxed filesystem suite: calls under `read-only` and `workspace-write` policies run
//! in the sandbox helper, locally and through a real server. Every escape is attempted and
//! must be denied with the outside untouched; every allowed operation must still work, so a
//! sandbox that denies everything fails too.
//!
//! Layout of each test's scratch directory:
//! `allowed/` (the policy's root, with `inside.txt`), `outside/secret`, `allowed/link ->
//! outside`, and `secret.txt` next to them.
//!
//! These need Landlock and seccomp. Without them they fail under `CI=true`, and otherwise
//! say loudly that they did not run.

mod support;

use exec_server_client::{ClientOptions, ExecServerClient};
use exec_server_environment::local::FsConfig;
use exec_server_environment::{FileSystem, FsError};
use exec_server_protocol::fs::{
    CopyParams, CreateDirectoryParams, GetMetadataParams, ReadDirectoryParams, ReadFileParams,
    RemoveParams, RenameParams, WriteFileParams,
};
use exec_server_protocol::sandbox::{ReadOnlyAccess, SandboxContext, SandboxPolicy};
use exec_server_protocol::{AbsolutePath, Base64Bytes};
use exec_server_sandbox::{HelperProgram, HelperSandbox, SandboxCaps};
use futures::StreamExt;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use support::fs::{error_of, helpers_of, snapshot, FsEnv};
use support::{within, ServerProcess, Target};

const INVALID_REQUEST: i64 = -32600;
const NOT_FOUND: i64 = -32004;
const INTERNAL: i64 = -32603;

/// Attempts per operation in the symlink-flip race (the benchmark runs 10,000).
const RACE_ATTEMPTS: usize = 1000;

both_targets! {
    positive_controls => super::positive_controls;
    read_only_denies_every_write => super::read_only_denies_every_write;
    symlink_escapes_are_denied => super::symlink_escapes_are_denied;
    restricted_reads_are_confined => super::restricted_reads_are_confined;
    dotdot_never_steps_through_a_symlink => super::dotdot_never_steps_through_a_symlink;
    protected_directories_stay_read_only => super::protected_directories_stay_read_only;
    gitdir_file_target_is_protected => super::gitdir_file_target_is_protected;
    renames_out_of_and_into_roots_are_denied => super::renames_out_of_and_into_roots_are_denied;
    existing_hard_link_is_written_in_place => super::existing_hard_link_is_written_in_place;
    default_roots_include_tmp => super::default_roots_include_tmp;
    helper_is_locked_down => super::helper_is_locked_down;
    symlink_flip_race_never_escapes => super::symlink_flip_race_never_escapes;
    missing_landlock_is_a_clear_error => super::missing_landlock_is_a_clear_error;
    copy_into_an_existing_tree_never_follows_its_links => super::copy_into_an_existing_tree_never_follows_its_links;
    symlinked_git_protects_its_target => super::symlinked_git_protects_its_target;
    restricted_reads_do_not_reveal_what_exists_outside => super::restricted_reads_do_not_reveal_what_exists_outside;
    roots_and_links_resolve_as_the_kernel_does => super::roots_and_links_resolve_as_the_kernel_does;
    the_helper_runs_from_its_descriptor_not_its_path => super::the_helper_runs_from_its_descriptor_not_its_path;
    copies_never_merge_into_protected_directories => super::copies_never_merge_into_protected_directories;
    gitdirs_are_resolved_as_git_resolves_them => super::gitdirs_are_resolved_as_git_resolves_them;
    nested_roots_cannot_be_moved_to_plant_protected_names => super::nested_roots_cannot_be_moved_to_plant_protected_names;
    fifos_and_shared_roots_never_stop_calls => super::fifos_and_shared_roots_never_stop_calls;
    helpers_die_with_their_deadline_and_their_request => super::helpers_die_with_their_deadline_and_their_request;
    concurrent_helpers_are_bounded => super::concurrent_helpers_are_bounded;
    copies_drop_setuid_and_setgid => super::copies_drop_setuid_and_setgid;
    paths_that_are_not_utf8_name_the_same_file => super::paths_that_are_not_utf8_name_the_same_file;
    links_through_outside_paths_are_no_oracle => super::links_through_outside_paths_are_no_oracle;
    deep_trees_are_refused_by_a_named_limit => super::deep_trees_are_refused_by_a_named_limit;
    protected_names_are_compared_without_case => super::protected_names_are_compared_without_case;
    codex_0171_permission_profiles_are_enforced => super::codex_0171_permission_profiles_are_enforced;
}

/// True when the kernel can run the sandbox; otherwise fails under CI or warns and skips.
fn sandbox_available() -> bool {
    if let Some(missing) = SandboxCaps::probe().fs_helper_unavailable("test") {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true, and this machine cannot run the sandbox tests: {missing}");
        }
        eprintln!("\n!!! SKIPPED: sandbox tests need Landlock and seccomp: {missing} !!!\n");
        return false;
    }
    true
}

struct Sandboxed {
    t: FsEnv,
}

impl Sandboxed {
    async fn new(target: Target) -> Option<Sandboxed> {
        if !sandbox_available() {
            return None;
        }
        let t = FsEnv::new(target).await;
        let root = t.dir.path();
        fs::create_dir(root.join("allowed")).unwrap();
        fs::write(root.join("allowed/inside.txt"), b"inside").unwrap();
        fs::create_dir(root.join("outside")).unwrap();
        fs::write(root.join("outside/secret"), b"secret").unwrap();
        symlink(root.join("outside"), root.join("allowed/link")).unwrap();
        fs::write(root.join("secret.txt"), b"top secret").unwrap();
        Some(Sandboxed { t })
    }

    fn fs(&self) -> &Arc<dyn FileSystem> {
        self.t.fs()
    }

    fn path(&self, rel: &str) -> AbsolutePath {
        self.t.path(rel)
    }

    fn real(&self, rel: &str) -> std::path::PathBuf {
        self.t.dir.path().join(rel)
    }

    /// workspace-write on `allowed` (also the policy cwd) and `extra`, with /tmp and
    /// $TMPDIR excluded (the scratch directory itself lives in /tmp).
    fn workspace_write(&self, extra: &[&str], reads: ReadOnlyAccess) -> SandboxContext {
        let mut roots = vec![self.path("allowed")];
        roots.extend(extra.iter().map(|r| self.path(r)));
        let mut context = SandboxContext::new(SandboxPolicy::WorkspaceWrite {
            writable_roots: roots,
            read_only_access: reads,
            network_access: false,
            exclude_tmpdir_env_var: true,
            exclude_slash_tmp: true,
        });
        context.sandbox_policy_cwd = Some(self.path("allowed"));
        context
    }

    fn ww(&self) -> SandboxContext {
        self.workspace_write(&[], ReadOnlyAccess::FullAccess)
    }

    fn read_only(&self, reads: ReadOnlyAccess) -> SandboxContext {
        let mut context = SandboxContext::new(SandboxPolicy::ReadOnly {
            access: reads,
            network_access: false,
        });
        context.sandbox_policy_cwd = Some(self.path("allowed"));
        context
    }

    /// Reads restricted to `allowed`.
    fn only_allowed(&self) -> ReadOnlyAccess {
        ReadOnlyAccess::Restricted {
            include_platform_defaults: false,
            readable_roots: vec![self.path("allowed")],
        }
    }

    async fn read(&self, path: &str, sandbox: &SandboxContext) -> Result<Vec<u8>, FsError> {
        let params = ReadFileParams {
            path: self.path(path),
            sandbox: Some(sandbox.clone()),
            offset: None,
            length: None,
        };
        within("sandboxed read", self.fs().read_file(params))
            .await
            .map(|r| r.data_base64.into_bytes().to_vec())
    }

    async fn write(
        &self,
        path: &str,
        data: &[u8],
        sandbox: &SandboxContext,
    ) -> Result<(), FsError> {
        write_at(self.fs(), self.path(path), data, sandbox).await
    }

    async fn mkdir(
        &self,
        path: &str,
        recursive: bool,
        sandbox: &SandboxContext,
    ) -> Result<(), FsError> {
        let params = CreateDirectoryParams {
            path: self.path(path),
            recursive,
            sandbox: Some(sandbox.clone()),
        };
        within("sandboxed mkdir", self.fs().create_directory(params))
            .await
            .map(drop)
    }

    async fn remove(
        &self,
        path: &str,
        recursive: bool,
        sandbox: &SandboxContext,
    ) -> Result<(), FsError> {
        let params = RemoveParams {
            path: self.path(path),
            recursive,
            force: false,
            sandbox: Some(sandbox.clone()),
        };
        within("sandboxed remove", self.fs().remove(params))
            .await
            .map(drop)
    }

    async fn copy(
        &self,
        from: &str,
        to: &str,
        recursive: bool,
        sandbox: &SandboxContext,
    ) -> Result<(), FsError> {
        copy_at(
            self.fs(),
            self.path(from),
            self.path(to),
            recursive,
            sandbox,
        )
        .await
    }

    async fn rename(&self, from: &str, to: &str, sandbox: &SandboxContext) -> Result<(), FsError> {
        let params = RenameParams {
            source_path: self.path(from),
            destination_path: self.path(to),
            sandbox: Some(sandbox.clone()),
        };
        within("sandboxed rename", self.fs().rename(params))
            .await
            .map(drop)
    }

    async fn stat(
        &self,
        path: &str,
        sandbox: &SandboxContext,
    ) -> Result<exec_server_protocol::fs::GetMetadataResponse, FsError> {
        let params = GetMetadataParams {
            path: self.path(path),
            sandbox: Some(sandbox.clone()),
        };
        within("sandboxed stat", self.fs().get_metadata(params)).await
    }

    async fn list(
        &self,
        path: &str,
        sandbox: &SandboxContext,
    ) -> Result<Vec<(String, bool, bool)>, FsError> {
        let params = ReadDirectoryParams {
            path: self.path(path),
            sandbox: Some(sandbox.clone()),
        };
        let mut entries: Vec<_> = within("sandboxed list", self.fs().read_directory(params))
            .await?
            .entries
            .into_iter()
            .map(|e| (e.file_name, e.is_directory, e.is_file))
            .collect();
        entries.sort();
        Ok(entries)
    }

    /// `outside` still holds exactly `secret`, unchanged, and `secret.txt` is intact.
    fn outside_untouched(&self) {
        assert_eq!(fs::read(self.real("outside/secret")).unwrap(), b"secret");
        assert_eq!(names(&self.real("outside")), ["secret"]);
        assert_eq!(fs::read(self.real("secret.txt")).unwrap(), b"top secret");
    }
}

async fn write_at(
    fs_: &Arc<dyn FileSystem>,
    path: AbsolutePath,
    data: &[u8],
    sandbox: &SandboxContext,
) -> Result<(), FsError> {
    let params = WriteFileParams {
        path,
        data_base64: Base64Bytes::from(data),
        sandbox: Some(sandbox.clone()),
        offset: None,
        append: false,
    };
    within("sandboxed write", fs_.write_file(params))
        .await
        .map(drop)
}

async fn copy_at(
    fs_: &Arc<dyn FileSystem>,
    from: AbsolutePath,
    to: AbsolutePath,
    recursive: bool,
    sandbox: &SandboxContext,
) -> Result<(), FsError> {
    let params = CopyParams {
        source_path: from,
        destination_path: to,
        recursive,
        sandbox: Some(sandbox.clone()),
    };
    within("sandboxed copy", fs_.copy(params)).await.map(drop)
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A denial: -32600 with the OS's words for it.
#[track_caller]
fn assert_denied<T: std::fmt::Debug>(what: &str, result: Result<T, FsError>) {
    let (code, message) = error_of(result);
    assert_eq!(code, INVALID_REQUEST, "{what}: {message}");
    assert!(
        message.contains("Permission denied") || message.contains("Operation not permitted"),
        "{what}: {message}"
    );
}

async fn positive_controls(target: Target) {
    let Some(s) = Sandboxed::new(target).await else {
        return;
    };
    let ww = s.ww();
    // Reads anywhere under full read access.
    assert_eq!(s.read("outside/secret", &ww).await.unwrap(), b"secret");
    assert_eq!(s.read("allowed/inside.txt", &ww).await.unwrap(), b"inside");
    assert!(s.stat("outside/secret", &ww).await.unwrap().is_file);
    assert_eq!(
        s.list("outside", &ww).await.unwrap(),
        [("secret".into(), false, true)]
    );
    // Every mutation inside the root.
    s.write("allowed/new.txt", b"new", &ww).await.unwrap();
    assert_eq!(fs::read(s.real("allowed/new.txt")).unwrap(), b"new");
    s.mkdir("allowed/a/b/c", true, &ww).await.unwrap();
    assert!(s.real("allowed/a/b/c").is_dir());
    s.mkdir("allowed/single", false, &ww).await.unwrap();
    // `recursive` accepts what exists, the root included.
    s.mkdir("allowed/a/b", true, &ww).await.unwrap();
    s.mkdir("allowed", true, &ww).await.unwrap();
    s.copy("allowed/new.txt", "allowed/a/copy.txt", false, &ww)
        .await
        .unwrap();
    assert_eq!(fs::read(s.real("allowed/a/copy.txt")).unwrap(), b"new");
    s.copy("allowed/a", "allowed/a2", true, &ww).await.unwrap();
    assert_eq!(fs::read(s.real("allowed/a2/copy.txt")).unwrap(), b"new");
    s.rename("allowed/a2", "allowed/a3", &ww).await.unwrap();
    assert!(s.real("allowed/a3/b/c").is_dir());
    s.remove("allowed/a3", true, &ww).await.unwrap();
    assert!(!s.real("allowed/a3").exists());
    // A copy from outside into the root is a read plus a write inside: allowed.
    s.copy("outside/secret", "allowed/copied", false, &ww)
        .await
        .unwrap();
    assert_eq!(fs::read(s.real("allowed/copied")).unwrap(), b"secret");
    // Removing a link in the root removes the link, never its target.
    s.remove("allowed/link", false, &ww).await.unwrap();
    assert!(fs::symlink_metadata(s.real("allowed/link")).is_err());
    s.outside_untouched();

    // Restricted reads: what is under the readable root is readable, listable and stat-able.
    let ro = s.read_only(s.only_allowed());
    assert_eq!(s.read("allowed/inside.txt", &ro).await.unwrap(), b"inside");
    assert!(s.stat("allowed/inside.txt", &ro).await.unwrap().is_file);
    assert!(s.stat("allowed", &ro).await.unwrap().is_directory);
    let listing = s.list("allowed", &ro).await.unwrap();
    assert!(
        listing.contains(&("inside.txt".into(), false, true)),
        "{listing:?}"
    );
    // A second writable root works as well as the first.
    fs::create_dir(s.real("second")).unwrap();
    let two = s.workspace_write(&["second"], ReadOnlyAccess::FullAccess);
    s.write("second/x", b"2", &two).await.unwrap();
    assert_eq!(fs::read(s.real("second/x")).unwrap(), b"2");
    // Errors other than denials keep their reference codes.
    assert_eq!(error_of(s.read("allowed/missing", &ww).await).0, NOT_FOUND);
}

async fn read_only_denies_every_write(target: Target) {
    let Some(s) = Sandboxed::new(target).await else {
        return;
    };
    for ro in [
        s.read_only(ReadOnlyAccess::FullAccess),
        s.read_only(s.only_allowed()),
    ] {
        assert_denied("write", s.write("allowed/new.txt", b"x", &ro).await);
        assert_denied("overwrite", s.write("allowed/inside.txt", b"x", &ro).await);
        assert_denied("mkdir", s.mkdir("allowed/d", false, &ro).await);
        assert_denied("mkdir -p", s.mkdir("allowed/d/e", true, &ro).await);
        assert_denied("remove", s.remove("allowed/inside.txt", false, &ro).await);
        assert_denied(
            "copy",
            s.copy("allowed/inside.txt", "allowed/c", false, &ro).await,
        );
        assert_denied(
            "rename",
            s.rename("allowed/inside.txt", "allowed/r", &ro).await,
        );
        assert_eq!(names(&s.real("allowed")), ["inside.txt", "link"]);
        assert_eq!(fs::read(s.real("allowed/inside.txt")).unwrap(), b"inside");
    }
    // Reads still work under full read access.
    let ro = s.read_only(ReadOnlyAccess::FullAccess);
    assert_eq!(s.read("secret.txt", &ro).await.unwrap(), b"top secret");
    // Control: unsandboxed, the same write lands.
    s.write("allowed/new.txt", b"x", &full()).await.unwrap();
    assert_eq!(fs::read(s.real("allowed/new.txt")).unwrap(), b"x");
    s.outside_untouched();
}

async fn symlink_escapes_are_denied(target: Target) {
    let Some(s) = Sandboxed::new(target).await else {
        return;
    };
    let ww = s.ww();
    assert_denied(
        "write through link",
        s.write("allowed/link/x", b"x", &ww).await,
    );
    assert_denied(
        "overwrite through link",
        s.write("allowed/link/secret", b"x", &ww).await,
    );
    assert_denied(
        "mkdir through link",
        s.mkdir("allowed/link/d", false, &ww).await,
    );
    assert_denied(
        "mkdir -p through link",
        s.mkdir("allowed/link/d/e", true, &ww).await,
    );
    assert_denied(
        "remove through link",
        s.remove("allowed/link/secret", false, &ww).await,
    );
    assert_denied(
        "copy to a destination through link",
        s.copy("allowed/inside.txt", "allowed/link/c", false, &ww)
            .await,
    );
    // A final symlink that points out is followed through the checks, and refused.
    symlink(s.real("outside/secret"), s.real("allowed/file-link")).unwrap();
    assert_denied(
        "write to a link out",
        s.write("allowed/file-link", b"x", &ww).await,
    );
    assert_denied(
        "copy onto a link out",
        s.copy("allowed/inside.txt", "allowed/file-link", false, &ww)
            .await,
    );
    // With reads restricted to the root, an outside source cannot be pulled in.
    let restricted = s.workspace_write(&[], s.only_allowed());
    assert_denied(
        "copy from a source through link",
        s.copy("allowed/link/secret", "allowed/stolen", false, &restricted)
            .await,
    );
    assert_denied(
        "copy from an outside source",
        s.copy("outside/secret", "allowed/stolen", false, &restricted)
            .await,
    );
    assert!(!s.real("allowed/stolen").exists());
    // Outright outside paths.
    assert_denied("write outside", s.write("outside/x", b"x", &ww).await);
    assert_denied(
        "remove outside",
        s.remove("outside/secret", false, &ww).await,
    );
    assert_denied("mkdir outside", s.mkdir("outside/d", false, &ww).await);
    s.outside_untouched();
    // Control: unsandboxed, the link leads out.
    s.write("allowed/link/x", b"x", &full()).await.unwrap();
    assert_eq!(fs::read(s.real("outside/x")).unwrap(), b"x");
}

async fn restricted_reads_are_confined(target: Target) {
    let Some(s) = Sandboxed::new(target).await else {
        return;
    };
    let ro = s.read_only(s.only_allowed());
    assert_denied(
        "read through link",
        s.read("allowed/link/secret", &ro).await,
    );
    assert_denied("read outside", s.read("outside/secret", &ro).await);
    assert_denied(
        "stat through link",
        s.stat("allowed/link/secret", &ro).await,
    );
    assert_denied("stat outside", s.stat("outside/secret", &ro).await);
    assert_denied(
        "stat of a link whose target is outside",
        s.stat("allowed/link", &ro).await,
    );
    assert_denied("list through link", s.list("allowed/link", &ro).await);
    assert_denied("list outside", s.list("outside", &ro).await);
    // The link shows in its directory, but what it points to is not described.
    let listing = s.list("allowed", &ro).await.unwrap();
    assert!(
        listing.contains(&("link".into(), false, false)),
        "{listing:?}"
    );
    // A link to somewhere inside the root is described.
    symlink(s.real("allowed/inside.txt"), s.real("allowed/inner-link")).unwrap();
    let meta = s.stat("allowed/inner-link", &ro).await.unwrap();
    assert!(meta.is_symlink && meta.is_file, "{meta:?}");
    s.outside_untouched();
    // Control: unsandboxed, the link leads out.
    assert_eq!(
        s.read("allowed/link/secret", &full()).await.unwrap(),
        b"secret"
    );
}

async fn dotdot_never_steps_through_a_symlink(target: Target) {
    let Some(s) = Sandboxed::new(target).await else {
        return;
    };
    // `allowed/link/../secret.txt` is `allowed/secret.txt` (lexical), not the real
    // `<scratch>/secret.txt` that the kernel would reach through the link.
    for sandbox in [s.read_only(s.only_allowed()), s.ww()] {
        match s.read("allowed/link/../secret.txt", &sandbox).await {
            Ok(data) => panic!("read {:?} through link/..", String::from_utf8_lossy(&data)),
            Err(e) => assert!([NOT_FOUND, INVALID_REQUEST].contains(&e.code()), "{e}"),
        }
    }
    let ww = s.ww();
    s.write("allowed/link/../dotdot.txt", b"x", &ww)
        .await
        .unwrap();
    assert!(s.real("allowed/dotdot.txt").exists());
    assert!(!s.real("dotdot.txt").exists());
    s.outside_untouched();
}

async fn protected_directories_stay_read_only(target: Target) {
    let Some(s) = Sandboxed::new(target).await else {
        return;
    };
    fs::create_dir_all(s.real("allowed/.git/hooks")).unwrap();
    fs::write(s.real("allowed/.git/config"), b"[core]").unwrap();
    fs::create_dir(s.real("allowed/.agents")).unwrap();
    fs::create_dir(s.real("decoy")).unwrap();
    let ww = s.workspace_write(&["decoy"], ReadOnlyAccess::FullAccess);

    assert_denied(
        "write .git/config",
        s.write("allowed/.git/config", b"x", &ww).await,
    );
    assert_denied(
        "new git hook",
        s.write("allowed/.git/hooks/pre-commit", b"x", &ww).await,
    );
    assert_denied(
        "mkdir in .git",
        s.mkdir("allowed/.git/new", false, &ww).await,
    );
    assert_denied("remove .git", s.remove("allowed/.git", true, &ww).await);
    assert_denied(
        "remove .git/config",
        s.remove("allowed/.git/config", false, &ww).await,
    );
    assert_denied(
        "rename .git away",
        s.rename("allowed/.git", "allowed/git-old", &ww).await,
    );
    assert_denied(
        "rename into .git",
        s.rename(
            "allowed/inside.txt",
            "allowed/.git/hooks/post-checkout",
            &ww,
        )
        .await,
    );
    assert_denied(
        "copy into .git",
        s.copy("allowed/inside.txt", "allowed/.git/hooks/x", false, &ww)
            .await,
    );
    assert_denied(
        "write .agents",
        s.write("allowed/.agents/a.md", b"x", &ww).await,
    );
    // A missing .codex cannot be created, as a directory or a file.
    assert_denied("mkdir .codex", s.mkdir("allowed/.codex", false, &ww).await);
    assert_denied(
        "mkdir -p .codex",
        s.mkdir("allowed/.codex/x", true, &ww).await,
    );
    assert_denied("write .codex", s.write("allowed/.codex", b"x", &ww).await);
    assert!(!s.real("allowed/.codex").exists());
    // Nor reached through an alias: a link to .git, or a write through a final link.
    symlink(s.real("allowed/.git"), s.real("allowed/git-alias")).unwrap();
    assert_denied(
        "write through an alias",
        s.write("allowed/git-alias/config", b"x", &ww).await,
    );
    symlink(s.real("allowed/.git/config"), s.real("allowed/config-link")).unwrap();
    assert_denied(
        "write to a link into .git",
        s.write("allowed/config-link", b"x", &ww).await,
    );
    // The root itself cannot be removed (its .git would go with it).
    assert_denied("remove the root", s.remove("allowed", true, &ww).await);
    assert_eq!(fs::read(s.real("allowed/.git/config")).unwrap(), b"[core]");
    assert_eq!(names(&s.real("allowed/.git")), ["config", "hooks"]);
    assert!(names(&s.real("allowed/.git/hooks")).is_empty());
    assert!(names(&s.real("allowed/.agents")).is_empty());

    // `.codex -> decoy` (symlink replacement): writes through it are refused.
    fs::remove_dir(s.real("allowed/.agents")).unwrap();
    symlink(s.real("decoy"), s.real("allowed/.codex")).unwrap();
    assert_denied(
        "write through .codex link",
        s.write("allowed/.codex/config.toml", b"x", &ww).await,
    );
    assert!(names(&s.real("decoy")).is_empty());

    // Positive control: the rest of the root is writable.
    s.write("allowed/src.rs", b"fn main() {}", &ww)
        .await
        .unwrap();
    s.mkdir("allowed/gitlike/.git", true, &ww).await.unwrap();
    assert!(s.real("allowed/gitlike/.git").is_dir());
    s.outside_untouched();
    // Control: unsandboxed, the same writes land.
    s.write("allowed/.git/config", b"x", &full()).await.unwrap();
    s.write("allowed/.codex/config.toml", b"x", &full())
        .await
        .unwrap();
    assert_eq!(fs::read(s.real("decoy/config.toml")).unwrap(), b"x");
}

async fn gitdir_file_target_is_protected(target: Target) {
    let Some(s) = Sandboxed::new(target).await else {
        return;
    };
    // A worktree: `allowed/.git` is a file naming its gitdir, which lives in another root.
    fs::create_dir_all(s.real("shared/gitdirs/w")).unwrap();
    fs::write(s.real("shared/gitdirs/w/HEAD"), b"ref: refs/heads/main").unwrap();
    let gitdir = s.real("shared/gitdirs/w");
    fs::write(
        s.real("allowed/.git"),
        format!("gitdir: {}\n", gitdir.display()),
    )
    .unwrap();
    let ww = s.workspace_write(&["shared"], ReadOnlyAccess::FullAccess);

    assert_denied(
        "write the .git file",
        s.write("allowed/.git", b"gitdir: /tmp", &ww).await,
    );
    assert_denied(
        "write in the gitdir",
        s.write("shared/gitdirs/w/HEAD", b"x", &ww).await,
    );
    assert_denied(
        "mkdir in the gitdir",
        s.mkdir("shared/gitdirs/w/hooks", false, &ww).await,
    );
    assert_denied(
        "remove a parent of the gitdir",
        s.remove("shared/gitdirs", true, &ww).await,
    );
    assert_denied(
        "move a parent of the gitdir",
        s.rename("shared/gitdirs", "shared/moved", &ww).await,
    );
    assert_eq!(
        fs::read(s.real("shared/gitdirs/w/HEAD")).unwrap(),
        b"ref: refs/heads/main"
    );
    // Positive control: the rest of that root is writable.
    s.write("shared/notes.txt", b"ok", &ww).await.unwrap();
    assert_eq!(fs::read(s.real("shared/notes.txt")).unwrap(), b"ok");
    // Control: unsandboxed, the gitdir is writable.
    s.write("shared/gitdirs/w/HEAD", b"x", &full())
        .await
        .unwrap();
}

async fn renames_out_of_and_into_roots_are_denied(target: Target) {
    let Some(s) = Sandboxed::new(target).await else {
        return;
    };
    let ww = s.ww();
    assert_denied(
        "rename out",
        s.rename("allowed/inside.txt", "outside/moved", &ww).await,
    );
    assert_denied(
        "rename out through link",
        s.rename("allowed/inside.txt", "allowed/link/moved", &ww)
            .await,
    );
    assert_denied(
        "rename in",
        s.rename("outside/secret", "allowed/moved", &ww).await,
    );
    assert_eq!(fs::read(s.real("allowed/inside.txt")).unwrap(), b"inside");
    assert!(!s.real("allowed/moved").exists());
    s.outside_untouched();
    // Control: unsandboxed, the rename out works.
    s.rename("allowed/inside.txt", "outside/moved", &full())
        .await
        .unwrap();
    assert!(s.real("outside/moved").exists());
}

/// The documented hole (as in codex): the sandbox is path-based, so a hard link that already
/// exists inside a root is written in place, the same inode. Creating one is not possible
/// through the API, and the lock-down tests show the kernel refuses it.
async fn existing_hard_link_is_written_in_place(target: Target) {
    let Some(s) = Sandboxed::new(target).await else {
        return;
    };
    fs::write(s.real("outside/linked"), b"before").unwrap();
    fs::hard_link(s.real("outside/linked"), s.real("allowed/hl")).unwrap();
    let inode = fs::metadata(s.real("allowed/hl")).unwrap().ino();
    s.write("allowed/hl", b"after", &s.ww()).await.unwrap();
    assert_eq!(fs::metadata(s.real("allowed/hl")).unwrap().ino(), inode);
    assert_eq!(fs::read(s.real("outside/linked")).unwrap(), b"after");
}

async fn default_roots_include_tmp(target: Target) {
    let Some(s) = Sandboxed::new(target).await else {
        return;
    };
    // The scratch directory is under /tmp: with /tmp not excluded, `outside` is writable.
    assert!(
        s.real("").starts_with("/tmp"),
        "the scratch dir is not under /tmp"
    );
    let mut context = s.ww();
    if let Some(SandboxPolicy::WorkspaceWrite {
        exclude_slash_tmp,
        exclude_tmpdir_env_var,
        ..
    }) = &mut context.sandbox_policy
    {
        *exclude_slash_tmp = false;
        *exclude_tmpdir_env_var = false;
    }
    s.write("outside/tmp-is-a-root", b"x", &context)
        .await
        .unwrap();
    assert!(s.real("outside/tmp-is-a-root").exists());
}

async fn helper_is_locked_down(target: Target) {
    let Some(s) = Sandboxed::new(target).await else {
        return;
    };
    // The helper reads its own status: the live process that ran the operation.
    let params = ReadFileParams {
        path: AbsolutePath::parse("/proc/self/status").unwrap(),
        sandbox: Some(s.read_only(ReadOnlyAccess::FullAccess)),
        offset: None,
        length: None,
    };
    let status = within("read the helper's status", s.fs().read_file(params))
        .await
        .unwrap();
    let status = String::from_utf8(status.data_base64.into_bytes().to_vec()).unwrap();
    assert!(status.contains("Seccomp:\t2"), "{status}");
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    let pid: u32 = status
        .lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let server_pid = s.t.server.as_ref().map_or(std::process::id(), |p| p.pid());
    if target == Target::Remote {
        let features = s.t.raw_client().await.capabilities().unwrap().features;
        assert!(
            features.fs_sandbox,
            "the server does not advertise its sandbox"
        );
    }
    assert_ne!(
        pid, server_pid,
        "the operation ran in the server, not a helper"
    );
    let name = status.lines().next().unwrap();
    assert!(name.contains("exec-server"), "{name}");

    // Another process's /proc entries (the server's environment may hold its token) are
    // not readable, not even under full read access, nor through a /proc magic link.
    let ro = s.read_only(ReadOnlyAccess::FullAccess);
    for path in [
        format!("/proc/{server_pid}/environ"),
        format!("/proc/{server_pid}/cmdline"),
        format!("/proc/{server_pid}/task/{server_pid}/environ"),
        "/proc/self/cwd/etc/hostname".to_owned(),
    ] {
        let params = ReadFileParams {
            path: AbsolutePath::parse(&path).unwrap(),
            sandbox: Some(ro.clone()),
            offset: None,
            length: None,
        };
        assert_denied(&path, within("read", s.fs().read_file(params)).await);
    }
    symlink(
        format!("/proc/{server_pid}/environ"),
        s.real("allowed/environ"),
    )
    .unwrap();
    assert_denied("a link to it", s.read("allowed/environ", &ro).await);
    let copy = copy_at(
        s.fs(),
        AbsolutePath::parse(&format!("/proc/{server_pid}/environ")).unwrap(),
        s.path("allowed/stolen"),
        false,
        &s.ww(),
    )
    .await;
    assert_denied("a copy of it", copy);
    assert!(!s.real("allowed/stolen").exists());
    // Control: unsandboxed (in the server), it is readable.
    let params = ReadFileParams {
        path: AbsolutePath::parse(&format!("/proc/{server_pid}/cmdline")).unwrap(),
        sandbox: Some(full()),
        offset: None,
        length: None,
    };
    within("read", s.fs().read_file(params)).await.unwrap();
}

async fn symlink_flip_race_never_escapes(target: Target) {
    let Some(s) = Sandboxed::new(target).await else {
        return;
    };
    fs::create_dir(s.real("allowed/real")).unwrap();
    for i in 0..RACE_ATTEMPTS {
        fs::write(s.real(&format!("outside/r{i}")), b"keep").unwrap();
        fs::write(s.real(&format!("allowed/real/r{i}")), b"mine").unwrap();
    }
    let before = names(&s.real("outside"));
    symlink(s.real("allowed/real"), s.real("allowed/d")).unwrap();

    // Flips `allowed/d` between a link into the root and a link out of it, atomically.
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let stop = stop.clone();
        let inside = s.real("allowed/real");
        let outside = s.real("outside");
        let link = s.real("allowed/d");
        let staging = s.real("allowed/d.next");
        std::thread::spawn(move || {
            let mut flips = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let to = if flips.is_multiple_of(2) {
                    &outside
                } else {
                    &inside
                };
                symlink(to, &staging).unwrap();
                fs::rename(&staging, &link).unwrap();
                flips += 1;
            }
            flips
        })
    };

    let ww = s.ww();
    let fs_ = s.fs().clone();
    let attempts = (0..RACE_ATTEMPTS).flat_map(|i| (0..4).map(move |op| (i, op)));
    let outcomes: Vec<bool> = futures::stream::iter(attempts)
        .map(|(i, op)| {
            let (fs_, ww) = (fs_.clone(), ww.clone());
            let path = |name: &str| s.path(&format!("allowed/d/{name}{i}"));
            let (w, m, r, c) = (path("w"), path("m"), path("r"), path("c"));
            let source = s.path("allowed/inside.txt");
            async move {
                let result = match op {
                    0 => write_at(&fs_, w, b"x", &ww).await,
                    1 => within(
                        "mkdir",
                        fs_.create_directory(CreateDirectoryParams {
                            path: m,
                            recursive: false,
                            sandbox: Some(ww.clone()),
                        }),
                    )
                    .await
                    .map(drop),
                    2 => within(
                        "remove",
                        fs_.remove(RemoveParams {
                            path: r,
                            recursive: false,
                            force: false,
                            sandbox: Some(ww.clone()),
                        }),
                    )
                    .await
                    .map(drop),
                    _ => copy_at(&fs_, source, c, false, &ww).await,
                };
                match result {
                    Ok(()) => true,
                    // Denied (-32600), or the link was mid-flip (not found).
                    Err(e) if [INVALID_REQUEST, NOT_FOUND].contains(&e.code()) => false,
                    Err(e) => panic!("unexpected failure in the race: {e}"),
                }
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    stop.store(true, Ordering::Relaxed);
    let flips = flipper.join().unwrap();

    assert_eq!(
        names(&s.real("outside")),
        before,
        "an operation escaped the root"
    );
    for i in 0..RACE_ATTEMPTS {
        assert_eq!(fs::read(s.real(&format!("outside/r{i}"))).unwrap(), b"keep");
    }
    assert_eq!(fs::read(s.real("outside/secret")).unwrap(), b"secret");
    // The race was real: some operations landed inside, some were refused.
    let landed = outcomes.iter().filter(|&&ok| ok).count();
    assert!(flips > 100, "only {flips} flips");
    assert!(
        landed > 0,
        "no operation succeeded: the race never ran inside the root"
    );
    assert!(
        landed < outcomes.len(),
        "no operation was refused: the link never pointed out"
    );
    // Control: unsandboxed, a write through the link pointing out lands outside.
    fs::remove_file(s.real("allowed/d")).unwrap();
    symlink(s.real("outside"), s.real("allowed/d")).unwrap();
    s.write("allowed/d/escaped", b"x", &full()).await.unwrap();
    assert!(s.real("outside/escaped").exists());
}

async fn missing_landlock_is_a_clear_error(target: Target) {
    if !sandbox_available() {
        return;
    }
    let (env, _server, dir) = match target {
        Target::Local => {
            let caps = SandboxCaps {
                landlock_abi: None,
                ..SandboxCaps::probe()
            };
            let config = FsConfig {
                sandbox: Some(Arc::new(HelperSandbox::new(
                    support::fs::server_binary(),
                    caps,
                    FsConfig::default().max_read_bytes,
                ))),
                ..FsConfig::default()
            };
            let t = FsEnv::with_config(Target::Local, config).await;
            (t.env, None, t.dir)
        }
        Target::Remote => {
            let server = ServerProcess::start_with_env(
                &[],
                &[(exec_server_sandbox::probe::ASSUME_MISSING_ENV, "landlock")],
            );
            let env = within(
                "connect",
                exec_server_client::connect_environment(&server.url),
            )
            .await
            .unwrap();
            let client = within(
                "raw connect",
                ExecServerClient::connect(&server.url, ClientOptions::default()),
            )
            .await
            .unwrap();
            let features = client.capabilities().unwrap().features;
            assert!(!features.fs_sandbox, "advertised a sandbox it cannot run");
            (env, Some(server), tempfile::tempdir().unwrap())
        }
    };
    let root = AbsolutePath::from_path(dir.path()).unwrap();
    let mut context = SandboxContext::new(SandboxPolicy::WorkspaceWrite {
        writable_roots: vec![root.clone()],
        read_only_access: ReadOnlyAccess::FullAccess,
        network_access: false,
        exclude_tmpdir_env_var: true,
        exclude_slash_tmp: true,
    });
    context.sandbox_policy_cwd = Some(root);
    let target_file = dir.path().join("never-written");
    let result = write_at(
        env.filesystem(),
        AbsolutePath::from_path(&target_file).unwrap(),
        b"x",
        &context,
    )
    .await;
    let (code, message) = error_of(result);
    assert_eq!(code, INVALID_REQUEST, "{message}");
    assert!(message.contains("needs Landlock"), "{message}");
    assert!(message.contains("workspace-write"), "{message}");
    assert!(!target_file.exists(), "ran unsandboxed");
    // The in-process policies are unaffected.
    let full = SandboxContext::new(SandboxPolicy::DangerFullAccess);
    write_at(
        env.filesystem(),
        AbsolutePath::from_path(&target_file).unwrap(),
        b"x",
        &full,
    )
    .await
    .unwrap();
}

async fn copy_into_an_existing_tree_never_follows_its_links(target: Target) {
    let Some(s) = Sandboxed::new(target).await else {
        return;
    };
    fs::create_dir_all(s.real("allowed/.git/hooks")).unwrap();
    let ww = s.ww();
    // A merge into `dst`, whose `hooks` is a link into .git.
    fs::create_dir_all(s.real("allowed/src/hooks")).unwrap();
    fs::write(s.real("allowed/src/hooks/pre-commit"), b"evil").unwrap();
    fs::create_dir(s.real("allowed/dst")).unwrap();
    symlink("../.git/hooks", s.real("allowed/dst/hooks")).unwrap();
    assert!(s
        .copy("allowed/src", "allowed/dst", true, &ww)
        .await
        .is_err());
    assert!(
        names(&s.real("allowed/.git/hooks")).is_empty(),
        "a hook was planted"
    );

    // A merge into `dst2`, whose `d` is a link to an outside directory: the copy must not
    // chmod it (Landlock does not cover chmod).
    fs::create_dir_all(s.real("allowed/src2/d")).unwrap();
    fs::set_permissions(s.real("allowed/src2/d"), fs::Permissions::from_mode(0o777)).unwrap();
    fs::create_dir(s.real("allowed/dst2")).unwrap();
    fs::set_permissions(s.real("outside"), fs::Permissions::from_mode(0o700)).unwrap();
    symlink(s.real("outside"), s.real("allowed/dst2/d")).unwrap();
    assert!(s
        .copy("allowed/src2", "allowed/dst2", true, &ww)
        .await
        .is_err());
    let mode = fs::metadata(s.real("outside"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700, "the copy changed an outside directory's mode");
    s.outside_untouched();

    // Positive control: a merge into a real directory works, modes included.
    fs::create_dir(s.real("allowed/dst3")).unwrap();
    s.copy("allowed/src2", "allowed/dst3", true, &ww)
        .await
        .unwrap();
    let mode = fs::metadata(s.real("allowed/dst3/d"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o777);
}

async fn symlinked_git_protects_its_target(target: Target) {
    let Some(s) = Sandboxed::new(target).await else {
        return;
    };
    // `.git` is an absolute symlink to a gitdir in another writable root.
    fs::create_dir_all(s.real("shared/gd/hooks")).unwrap();
    symlink(s.real("shared/gd"), s.real("allowed/.git")).unwrap();
    let ww = s.workspace_write(&["shared"], ReadOnlyAccess::FullAccess);
    assert_denied(
        "write in the linked gitdir",
        s.write("shared/gd/hooks/pre-commit", b"x", &ww).await,
    );
    assert_denied(
        "remove the linked gitdir",
        s.remove("shared/gd", true, &ww).await,
    );
    assert_denied(
        "write through .git",
        s.write("allowed/.git/hooks/pre-commit", b"x", &ww).await,
    );
    assert!(names(&s.real("shared/gd/hooks")).is_empty());
    // The rest of the other root stays writable.
    s.write("shared/other.txt", b"ok", &ww).await.unwrap();
    // Control: unsandboxed, the hook is planted.
    s.write("allowed/.git/hooks/pre-commit", b"x", &full())
        .await
        .unwrap();
    assert_eq!(names(&s.real("shared/gd/hooks")), ["pre-commit"]);
}

async fn restricted_reads_do_not_reveal_what_exists_outside(target: Target) {
    let Some(s) = Sandboxed::new(target).await else {
        return;
    };
    symlink(s.real("outside/secret"), s.real("allowed/to-existing")).unwrap();
    symlink(s.real("outside/missing"), s.real("allowed/to-missing")).unwrap();
    symlink(s.real("outside"), s.real("allowed/to-dir")).unwrap();
    let ro = s.read_only(s.only_allowed());
    // Existing or not, file or directory: the same denial.
    let answers = [
        error_of(s.stat("allowed/to-existing", &ro).await),
        error_of(s.stat("allowed/to-missing", &ro).await),
        error_of(s.stat("allowed/to-dir/secret", &ro).await),
        error_of(s.stat("allowed/to-dir/missing", &ro).await),
        error_of(s.read("allowed/to-dir/missing", &ro).await),
    ];
    for (code, message) in &answers {
        assert_eq!(*code, INVALID_REQUEST, "{message}");
        assert!(
            message.ends_with("leads outside the policy's roots)"),
            "{message}"
        );
    }
    let ww = s.workspace_write(&[], s.only_allowed());
    for link in ["to-dir", "to-existing", "to-missing"] {
        let (code, message) = error_of(s.mkdir(&format!("allowed/{link}/x"), true, &ww).await);
        assert_eq!(code, INVALID_REQUEST, "{message}");
        assert!(
            message.ends_with("leads outside the policy's roots)"),
            "{message}"
        );
    }
    s.outside_untouched();
    // Control: unsandboxed, the answers tell what exists.
    assert!(
        s.stat("allowed/to-existing", &full())
            .await
            .unwrap()
            .is_file
    );
    assert_eq!(
        error_of(s.stat("allowed/to-dir/missing", &full()).await).0,
        NOT_FOUND
    );
}

async fn roots_and_links_resolve_as_the_kernel_does(target: Target) {
    let Some(s) = Sandboxed::new(target).await else {
        return;
    };
    // A root given through a symlinked alias works by either name.
    symlink(s.real("allowed"), s.real("alias")).unwrap();
    let mut aliased = s.workspace_write(&[], ReadOnlyAccess::FullAccess);
    if let Some(SandboxPolicy::WorkspaceWrite { writable_roots, .. }) = &mut aliased.sandbox_policy
    {
        *writable_roots = vec![s.path("alias")];
    }
    aliased.sandbox_policy_cwd = Some(s.path("alias"));
    s.write("alias/via-alias", b"1", &aliased).await.unwrap();
    s.write("allowed/via-real", b"2", &aliased).await.unwrap();
    s.mkdir("allowed/n1/n2", true, &aliased).await.unwrap();
    s.mkdir("alias/n3/n4", true, &aliased).await.unwrap();
    assert!(s.real("allowed/n1/n2").is_dir() && s.real("allowed/n3/n4").is_dir());
    assert_eq!(fs::read(s.real("allowed/via-alias")).unwrap(), b"1");
    // Creating an existing root is "File exists", as without a sandbox.
    let (code, message) = error_of(s.mkdir("allowed", false, &s.ww()).await);
    assert_eq!(code, INTERNAL, "{message}");
    assert!(message.contains("File exists"), "{message}");

    // A final link whose target has `..` after a symlinked component: the kernel's meaning.
    fs::create_dir_all(s.real("allowed/deep/dir")).unwrap();
    symlink("deep/dir", s.real("allowed/sub")).unwrap();
    symlink("sub/../f", s.real("allowed/l")).unwrap();
    s.write("allowed/l", b"where", &s.ww()).await.unwrap();
    assert_eq!(fs::read(s.real("allowed/deep/f")).unwrap(), b"where");
    assert!(!s.real("allowed/f").exists());

    // A readable root can be a single file.
    let one_file = s.read_only(ReadOnlyAccess::Restricted {
        include_platform_defaults: false,
        readable_roots: vec![s.path("outside/secret")],
    });
    assert_eq!(
        s.read("outside/secret", &one_file).await.unwrap(),
        b"secret"
    );
    assert_denied(
        "a sibling of a file root",
        s.read("secret.txt", &one_file).await,
    );
}

/// A helper that dies reports -32603 with its stderr. (Local: the helper program of a
/// server is always its own binary.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_helper_is_an_internal_error_with_its_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("fake-helper");
    fs::write(&fake, "#!/bin/sh\necho 'helper exploded' >&2\nexit 3\n").unwrap();
    fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let caps = SandboxCaps {
        landlock_abi: Some(7),
        seccomp: true,
        user_namespaces: false,
    };
    let config = FsConfig {
        sandbox: Some(Arc::new(HelperSandbox::new(
            HelperProgram::open(&fake).unwrap(),
            caps,
            1024,
        ))),
        ..FsConfig::default()
    };
    let t = FsEnv::with_config(Target::Local, config).await;
    let context = SandboxContext::new(SandboxPolicy::ReadOnly {
        access: ReadOnlyAccess::FullAccess,
        network_access: false,
    });
    let params = ReadFileParams {
        path: t.path(""),
        sandbox: Some(context),
        offset: None,
        length: None,
    };
    let (code, message) = error_of(within("read", t.fs().read_file(params)).await);
    assert_eq!(code, INTERNAL, "{message}");
    assert!(message.contains("helper exploded"), "{message}");
    assert!(message.contains("exit status: 3"), "{message}");
}

// ---------------------------------------------------------------------------------------
// Issue 20: one test per hole. Each reproduces the attack through the protocol, checks the
// victim is byte for byte unchanged, and runs the same operation unsandboxed
// (`danger-full-access`, in the server) as a control that shows the attack is real.
// ---------------------------------------------------------------------------------------

/// The same calls, unsandboxed: the controls.
fn full() -> SandboxContext {
    SandboxContext::new(SandboxPolicy::DangerFullAccess)
}

fn abs(path: &Path) -> AbsolutePath {
    AbsolutePath::from_path(path).unwrap()
}

async fn rename_at(
    fs_: &Arc<dyn FileSystem>,
    from: AbsolutePath,
    to: AbsolutePath,
    sandbox: &SandboxContext,
) -> Result<(), FsError> {
    let params = RenameParams {
        source_path: from,
        destination_path: to,
        sandbox: Some(sandbox.clone()),
    };
    within("rename", fs_.rename(params)).await.map(drop)
}

async fn read_at(
    fs_: &Arc<dyn FileSystem>,
    path: AbsolutePath,
    sandbox: &SandboxContext,
) -> Result<Vec<u8>, FsError> {
    let params = ReadFileParams {
        path,
        sandbox: Some(sandbox.clone()),
        offset: None,
        length: None,
    };
    within("read", fs_.read_file(params))
        .await
        .map(|r| r.data_base64.into_bytes().to_vec())
}

/// workspace-write on `roots` (the first is the policy cwd), /tmp and $TMPDIR excluded.
fn workspace_write_on(roots: &[&Path]) -> SandboxContext {
    let mut context = SandboxContext::new(SandboxPolicy::WorkspaceWrite {
        writable_roots: roots.iter().map(|r| abs(r)).collect(),
        read_only_access: ReadOnlyAccess::FullAccess,
        network_access: false,
        exclude_tmpdir_env_var: true,
        exclude_slash_tmp: true,
    });
    context.sandbox_policy_cwd = Some(abs(roots[0]));
    context
}

/// Hole 1: a sandboxed call replaces the server's binary (it lies under a writable root);
/// the next sandboxed call must still run the helper the server opened at start-up.
async fn the_helper_runs_from_its_descriptor_not_its_path(target: Target) {
    if !sandbox_available() {
        return;
    }
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let w = dir.path().join("w");
    fs::create_dir_all(w.join("bin")).unwrap();
    fs::write(w.join("inside.txt"), b"inside").unwrap();
    let binary = w.join("bin/exec-server");
    if fs::hard_link(env!("CARGO_BIN_EXE_exec-server"), &binary).is_err() {
        fs::copy(env!("CARGO_BIN_EXE_exec-server"), &binary).unwrap();
    }
    let (env, _server) = match target {
        Target::Local => {
            let config = FsConfig {
                sandbox: Some(Arc::new(HelperSandbox::new(
                    HelperProgram::open(&binary).unwrap(),
                    SandboxCaps::probe(),
                    FsConfig::default().max_read_bytes,
                ))),
                ..FsConfig::default()
            };
            let env = exec_server_environment::Environment::local_with_config(
                exec_server_environment::local::ProcessConfig::default(),
                config,
            );
            (env, None)
        }
        Target::Remote => {
            let server = ServerProcess::start_program(
                &binary,
                "ws://127.0.0.1:0",
                &[],
                &[],
                std::process::Stdio::inherit(),
            );
            let env = within(
                "connect",
                exec_server_client::connect_environment(&server.url),
            )
            .await
            .unwrap();
            (env, Some(server))
        }
    };
    let fs_ = env.filesystem();
    let ww = workspace_write_on(&[&w]);
    let marker = dir.path().join("script-ran");
    let script = format!("#!/bin/sh\necho ran > {}\n", marker.display());
    // The attack: an executable file in the root, rewritten as a script, moved onto the path
    // of the binary.
    copy_at(
        fs_,
        abs(Path::new("/bin/true")),
        abs(&w.join("evil")),
        false,
        &ww,
    )
    .await
    .unwrap();
    write_at(fs_, abs(&w.join("evil")), script.as_bytes(), &ww)
        .await
        .unwrap();
    rename_at(fs_, abs(&w.join("evil")), abs(&binary), &ww)
        .await
        .unwrap();
    assert_eq!(fs::read(&binary).unwrap(), script.as_bytes());
    // The next sandboxed calls run the helper that was opened, not the script.
    for _ in 0..2 {
        assert_eq!(
            read_at(fs_, abs(&w.join("inside.txt")), &ww).await.unwrap(),
            b"inside"
        );
    }
    assert!(!marker.exists(), "the replaced binary ran");
    // Control: run by path, as the server used to, the replacement runs.
    let status = std::process::Command::new(&binary)
        .arg(exec_server_sandbox::FS_HELPER_ARG)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(marker.exists(), "the control did not run the replacement");
}

/// Hole 2: a recursive copy merged into protected directories: a gitdir named by a `.git`
/// file (a), the real directory behind a `.git` symlink (b), and a nested root's `.git` and
/// missing `.codex` (c).
async fn copies_never_merge_into_protected_directories(target: Target) {
    let Some(s) = Sandboxed::new(target).await else {
        return;
    };
    // (a)
    fs::create_dir_all(s.real("allowed/gd/hooks")).unwrap();
    fs::write(s.real("allowed/gd/HEAD"), b"ref: refs/heads/main\n").unwrap();
    fs::write(
        s.real("allowed/.git"),
        format!("gitdir: {}\n", s.real("allowed/gd").display()),
    )
    .unwrap();
    fs::create_dir_all(s.real("allowed/src/hooks")).unwrap();
    fs::write(
        s.real("allowed/src/hooks/post-checkout"),
        b"#!/bin/sh\nevil\n",
    )
    .unwrap();
    // (b)
    fs::create_dir_all(s.real("b/realgit")).unwrap();
    fs::write(s.real("b/realgit/config"), b"[core]\n").unwrap();
    fs::set_permissions(s.real("b/realgit"), fs::Permissions::from_mode(0o755)).unwrap();
    symlink("realgit", s.real("b/.git")).unwrap();
    fs::create_dir_all(s.real("allowed/open")).unwrap();
    fs::write(s.real("allowed/open/planted"), b"x").unwrap();
    fs::set_permissions(s.real("allowed/open"), fs::Permissions::from_mode(0o777)).unwrap();
    // (c): roots `allowed` and `allowed/x/ws`.
    fs::create_dir_all(s.real("allowed/x/ws/.git")).unwrap();
    fs::write(s.real("allowed/x/ws/.git/config"), b"[core]\n").unwrap();
    fs::create_dir_all(s.real("allowed/s1/ws/.git")).unwrap();
    fs::write(
        s.real("allowed/s1/ws/.git/config"),
        b"[core]\nfsmonitor = evil\n",
    )
    .unwrap();
    fs::create_dir_all(s.real("allowed/s2/ws/.codex")).unwrap();
    fs::write(s.real("allowed/s2/ws/.codex/config.toml"), b"evil = true\n").unwrap();
    let ww = s.workspace_write(&["b", "allowed/x/ws"], ReadOnlyAccess::FullAccess);

    let victims = ["allowed/gd", "b/realgit", "allowed/x"];
    let before: Vec<_> = victims.iter().map(|v| snapshot(&s.real(v))).collect();
    let attacks = [
        ("allowed/src", "allowed/gd"),
        ("allowed/open", "b/realgit"),
        ("allowed/s1", "allowed/x"),
        ("allowed/s2", "allowed/x"),
    ];
    for (from, to) in attacks {
        assert_denied(
            &format!("copy {from} onto {to}"),
            s.copy(from, to, true, &ww).await,
        );
    }
    for (victim, before) in victims.iter().zip(&before) {
        assert_eq!(&snapshot(&s.real(victim)), before, "{victim} changed");
    }
    // Control: unsandboxed, every one of them lands.
    for (from, to) in attacks {
        s.copy(from, to, true, &full()).await.unwrap();
    }
    assert!(s.real("allowed/gd/hooks/post-checkout").exists());
    assert!(s.real("b/realgit/planted").exists());
    assert_eq!(
        fs::read(s.real("allowed/x/ws/.git/config")).unwrap(),
        b"[core]\nfsmonitor = evil\n"
    );
    assert!(s.real("allowed/x/ws/.codex/config.toml").exists());
}

/// Hole 3: the gitdir protection followed git's rules only in part.
async fn gitdirs_are_resolved_as_git_resolves_them(target: Target) {
    let Some(s) = Sandboxed::new(target).await else {
        return;
    };
    let git_dir = |rel: &str| {
        fs::create_dir_all(s.real(&format!("{rel}/hooks"))).unwrap();
        fs::write(s.real(&format!("{rel}/config")), b"[core]\n").unwrap();
    };
    let gitfile = |root: &str, content: &[u8]| {
        fs::create_dir_all(s.real(root)).unwrap();
        let mut line = b"gitdir: ".to_vec();
        line.extend_from_slice(content);
        line.push(b'\n');
        fs::write(s.real(&format!("{root}/.git")), line).unwrap();
    };
    // r1: a missing gitdir, then a prepared directory renamed into its place.
    gitfile("r1", s.real("r1/gd").as_os_str().as_bytes());
    git_dir("r1/prep");
    // r2: `d/l/../gd`, where `l` is a link: git reaches `real/gd`, not `d/gd`.
    git_dir("r2/real/gd");
    fs::create_dir_all(s.real("r2/real/sub")).unwrap();
    fs::create_dir_all(s.real("r2/d")).unwrap();
    symlink(s.real("r2/real/sub"), s.real("r2/d/l")).unwrap();
    gitfile("r2", b"d/l/../gd");
    // r3: a decoy on the first line; git takes both lines as the path.
    git_dir("r3/decoy");
    let mut two_lines = s.real("r3/decoy").as_os_str().as_bytes().to_vec();
    two_lines.extend_from_slice(b"\nx");
    gitfile("r3", &two_lines);
    // r4: a gitdir whose name is not UTF-8.
    let r4_gd = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(b"g\xffd"));
    git_dir(&format!("r4/{}", r4_gd.to_string_lossy()));
    fs::rename(
        s.real(&format!("r4/{}", r4_gd.to_string_lossy())),
        s.real("r4").join(&r4_gd),
    )
    .unwrap();
    gitfile("r4", b"g\xffd");
    // r5: `.git` is a link to the gitdir *file*.
    git_dir("r5/gd");
    fs::write(
        s.real("r5/gitfile"),
        format!("gitdir: {}\n", s.real("r5/gd").display()),
    )
    .unwrap();
    symlink("gitfile", s.real("r5/.git")).unwrap();
    // r6: `.git -> l/gitfile`, through a link `l` that could be swapped.
    git_dir("r6/gd");
    fs::create_dir_all(s.real("r6/real")).unwrap();
    fs::write(
        s.real("r6/real/gitfile"),
        format!("gitdir: {}\n", s.real("r6/gd").display()),
    )
    .unwrap();
    symlink("real", s.real("r6/l")).unwrap();
    symlink("l/gitfile", s.real("r6/.git")).unwrap();
    fs::create_dir_all(s.real("r6/decoy")).unwrap();
    symlink("decoy", s.real("r6/l2")).unwrap();
    // r7: a linked worktree, whose commondir is the main repository's git directory.
    git_dir("shared/main/.git");
    git_dir("shared/main/.git/worktrees/wt1");
    fs::write(
        s.real("shared/main/.git/worktrees/wt1/commondir"),
        b"../..\n",
    )
    .unwrap();
    gitfile(
        "r7",
        s.real("shared/main/.git/worktrees/wt1")
            .as_os_str()
            .as_bytes(),
    );
    let roots = ["r1", "r2", "r3", "r4", "r5", "r6", "r7", "shared"];
    let ww = s.workspace_write(&roots, ReadOnlyAccess::FullAccess);
    let before: Vec<_> = roots.iter().map(|r| snapshot(&s.real(r))).collect();

    let r3_gitdir = s.real("r3").join(std::ffi::OsStr::from_bytes(b"decoy\nx"));
    let r4_config = s.real("r4").join(&r4_gd).join("config");
    let fs_ = s.fs().clone();
    let attacks = |sandbox: SandboxContext| {
        let (fs_, s) = (fs_.clone(), &s);
        let (r3_gitdir, r4_config) = (r3_gitdir.clone(), r4_config.clone());
        async move {
            vec![
                (
                    "r1: rename a prepared gitdir into place",
                    s.rename("r1/prep", "r1/gd", &sandbox).await,
                ),
                (
                    "r2: write the physically resolved gitdir",
                    s.write("r2/real/gd/config", b"evil", &sandbox).await,
                ),
                (
                    "r3: create the gitdir git really uses",
                    s.mkdir(
                        r3_gitdir
                            .strip_prefix(s.real(""))
                            .unwrap()
                            .to_str()
                            .unwrap(),
                        false,
                        &sandbox,
                    )
                    .await,
                ),
                (
                    "r4: write a gitdir whose name is not UTF-8",
                    write_at(&fs_, abs(&r4_config), b"evil", &sandbox).await,
                ),
                (
                    "r5: redirect the gitdir file behind a .git link",
                    s.write("r5/gitfile", b"gitdir: /tmp/evil\n", &sandbox)
                        .await,
                ),
                (
                    "r6: swap a link on the way to the gitdir file",
                    s.rename("r6/l2", "r6/l", &sandbox).await,
                ),
                (
                    "r7: write the common directory of a worktree",
                    s.write("shared/main/.git/config", b"evil", &sandbox).await,
                ),
            ]
        }
    };
    for (what, result) in attacks(ww).await {
        assert_denied(what, result);
    }
    for (root, before) in roots.iter().zip(&before) {
        assert_eq!(&snapshot(&s.real(root)), before, "{root} changed");
    }
    // Control: unsandboxed, every one of them works.
    for (what, result) in attacks(full()).await {
        assert!(result.is_ok(), "control {what}: {result:?}");
    }
    assert!(s.real("r1/gd/hooks").is_dir());
    assert!(r3_gitdir.is_dir());
    assert_eq!(fs::read(&r4_config).unwrap(), b"evil");
}

/// Hole 4: roots `[P, P/x/ws]`; renaming `P/x` away, creating `.agents` in the moved inner
/// root, and renaming it back would plant a name the inner root protects.
async fn nested_roots_cannot_be_moved_to_plant_protected_names(target: Target) {
    let Some(s) = Sandboxed::new(target).await else {
        return;
    };
    fs::create_dir_all(s.real("allowed/x/ws")).unwrap();
    fs::write(s.real("allowed/x/ws/main.rs"), b"fn main() {}").unwrap();
    let ww = s.workspace_write(&["allowed/x/ws"], ReadOnlyAccess::FullAccess);
    let before = snapshot(&s.real("allowed/x"));
    let s = &s;
    let dance = |sandbox: SandboxContext| async move {
        s.rename("allowed/x", "allowed/y", &sandbox).await?;
        s.mkdir("allowed/y/ws/.agents", false, &sandbox).await?;
        s.rename("allowed/y", "allowed/x", &sandbox).await
    };
    assert_denied("the rename dance", dance(ww.clone()).await);
    // Nor the inner root itself, nor a prepared tree moved onto it.
    assert_denied(
        "move the inner root",
        s.rename("allowed/x/ws", "allowed/ws2", &ww).await,
    );
    fs::create_dir_all(s.real("allowed/prep/.agents")).unwrap();
    assert_denied(
        "replace the inner root",
        s.rename("allowed/prep", "allowed/x/ws", &ww).await,
    );
    assert_eq!(snapshot(&s.real("allowed/x")), before);
    // Control.
    dance(full()).await.unwrap();
    assert!(s.real("allowed/x/ws/.agents").is_dir());
}

/// Hole 5: FIFOs hung the helper (at a root's `.git`, or as the target of a call), and a
/// co-tenant could stop every write in a shared root with a `.git` naming `/`.
async fn fifos_and_shared_roots_never_stop_calls(target: Target) {
    let Some(s) = Sandboxed::new(target).await else {
        return;
    };
    support::fs::mkfifo(&s.real("allowed/.git"));
    support::fs::mkfifo(&s.real("allowed/pipe"));
    fs::create_dir_all(s.real("shared")).unwrap();
    fs::write(s.real("shared/.git"), b"gitdir: /\n").unwrap();
    fs::create_dir_all(s.real("own")).unwrap();
    fs::write(
        s.real("own/.git"),
        format!("gitdir: {}\n", s.real("own").display()),
    )
    .unwrap();
    let ww = s.workspace_write(&["shared", "own"], ReadOnlyAccess::FullAccess);
    // Every call returns (each is bounded by `within`).
    s.write("allowed/x", b"x", &ww).await.unwrap();
    for sandbox in [ww.clone(), full()] {
        let (code, message) = error_of(s.read("allowed/pipe", &sandbox).await);
        assert_eq!(code, INVALID_REQUEST, "{message}");
        assert!(message.contains("FIFO"), "{message}");
        let (code, message) = error_of(s.write("allowed/pipe", b"x", &sandbox).await);
        assert_ne!(code, NOT_FOUND, "{message}");
        let (code, message) = error_of(
            s.copy("allowed/pipe", "allowed/pipe-copy", false, &sandbox)
                .await,
        );
        assert_eq!(code, INVALID_REQUEST, "{message}");
        let (code, message) = error_of(s.copy("allowed/x", "allowed/pipe", false, &sandbox).await);
        assert_ne!(code, NOT_FOUND, "{message}");
    }
    let fifo = fs::symlink_metadata(s.real("allowed/pipe")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&fifo.file_type()));
    // `gitdir: /` in a shared root does not make `/` read-only.
    s.write("shared/notes", b"ok", &ww).await.unwrap();
    // A root that is its own git directory keeps its git entries, and nothing else.
    s.write("own/notes", b"ok", &ww).await.unwrap();
    assert_denied("own/config", s.write("own/config", b"x", &ww).await);
    assert_denied("own/hooks", s.mkdir("own/hooks", false, &ww).await);
    assert!(!s.real("own/config").exists() && !s.real("own/hooks").exists());
    // Control.
    s.write("own/config", b"x", &full()).await.unwrap();
}

/// A tree of `files` files under `dir`, for calls that take a while.
fn many_files(dir: &Path, files: usize) {
    fs::create_dir_all(dir).unwrap();
    for i in 0..files {
        fs::write(dir.join(format!("f{i}")), b"data").unwrap();
    }
}

/// Waits until `check` holds, polling, bounded by `within`.
async fn until(what: &str, check: impl Fn() -> bool) {
    within(what, async {
        while !check() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await
}

/// Hole 5: a helper that runs too long is killed at its deadline, and a helper whose
/// request ends (the caller gives up, the connection closes) is killed with it.
async fn helpers_die_with_their_deadline_and_their_request(target: Target) {
    if !sandbox_available() {
        return;
    }
    let (_binary_dir, binary) = support::fs::private_binary();
    let helper_exe = match target {
        Target::Local => binary.clone(),
        Target::Remote => env!("CARGO_BIN_EXE_exec-server").into(),
    };
    let sandbox = |timeout: std::time::Duration| FsConfig {
        sandbox: Some(Arc::new(HelperSandbox::with_limits(
            HelperProgram::open(&binary).unwrap(),
            SandboxCaps::probe(),
            FsConfig::default().max_read_bytes,
            exec_server_environment::local::SandboxLimits {
                helper_timeout: timeout,
                max_concurrent_helpers: 8,
            },
        ))),
        ..FsConfig::default()
    };
    let t = FsEnv::with(
        target,
        sandbox(std::time::Duration::from_millis(100)),
        &["--fs-helper-timeout-ms", "100"],
    )
    .await;
    let parent = t.server.as_ref().map_or(std::process::id(), |s| s.pid());
    let w = t.dir.path().join("w");
    many_files(&w.join("big"), 20_000);
    let ww = workspace_write_on(&[&w]);
    let result = copy_at(t.fs(), abs(&w.join("big")), abs(&w.join("copy")), true, &ww).await;
    assert_eq!(
        support::fs::limit_of(result).as_deref(),
        Some("fsHelperTimeoutMs")
    );
    until("the helper killed at its deadline", || {
        helpers_of(parent, &helper_exe).is_empty()
    })
    .await;
    let copied = fs::read_dir(w.join("copy")).map_or(0, |d| d.count());
    assert!(
        copied < 20_000,
        "the copy finished: not a test of the deadline"
    );

    // A request that ends takes its helper with it.
    let t = FsEnv::with(target, sandbox(std::time::Duration::from_secs(120)), &[]).await;
    let parent = t.server.as_ref().map_or(std::process::id(), |s| s.pid());
    let w = t.dir.path().join("w");
    many_files(&w.join("big"), 20_000);
    let ww = workspace_write_on(&[&w]);
    let client = match target {
        Target::Remote => Some(t.raw_client().await),
        Target::Local => None,
    };
    let fs_ = match &client {
        Some(client) => exec_server_client::environment(client.clone())
            .filesystem()
            .clone(),
        None => t.fs().clone(),
    };
    let call = tokio::spawn({
        let (from, to) = (abs(&w.join("big")), abs(&w.join("copy")));
        async move { copy_at(&fs_, from, to, true, &ww).await }
    });
    until("the helper started", || {
        !helpers_of(parent, &helper_exe).is_empty()
    })
    .await;
    match &client {
        // The connection goes, and its requests with it.
        Some(client) => client.drop_connection(),
        None => call.abort(),
    }
    until("the helper killed with its request", || {
        helpers_of(parent, &helper_exe).is_empty()
    })
    .await;
    let copied = fs::read_dir(w.join("copy")).map_or(0, |d| d.count());
    assert!(copied < 20_000, "the copy finished: it was not killed");
}

/// Hole 9: at most `maxConcurrentFsHelpers` helpers run at once; the rest wait their turn.
async fn concurrent_helpers_are_bounded(target: Target) {
    if !sandbox_available() {
        return;
    }
    let (_binary_dir, binary) = support::fs::private_binary();
    let helper_exe = match target {
        Target::Local => binary.clone(),
        Target::Remote => env!("CARGO_BIN_EXE_exec-server").into(),
    };
    let limits = exec_server_environment::local::SandboxLimits {
        helper_timeout: std::time::Duration::from_secs(60),
        max_concurrent_helpers: 1,
    };
    let config = FsConfig {
        sandbox: Some(Arc::new(HelperSandbox::with_limits(
            HelperProgram::open(&binary).unwrap(),
            SandboxCaps::probe(),
            FsConfig::default().max_read_bytes,
            limits,
        ))),
        ..FsConfig::default()
    };
    let t = FsEnv::with(target, config, &["--max-concurrent-fs-helpers", "1"]).await;
    let parent = t.server.as_ref().map_or(std::process::id(), |s| s.pid());
    let w = t.dir.path().join("w");
    many_files(&w.join("big"), 3000);
    let ww = workspace_write_on(&[&w]);
    let calls = futures::future::join_all((0..3).map(|i| {
        let (fs_, ww) = (t.fs().clone(), ww.clone());
        let (from, to) = (abs(&w.join("big")), abs(&w.join(format!("copy{i}"))));
        tokio::spawn(async move { copy_at(&fs_, from, to, true, &ww).await })
    }));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn({
        let done = done.clone();
        async move {
            let mut most = 0;
            while !done.load(Ordering::Relaxed) {
                most = most.max(helpers_of(parent, &helper_exe).len());
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            most
        }
    });
    for result in within("three copies", calls).await {
        result.unwrap().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let most = within("the sampler", sampler).await.unwrap();
    assert!(most <= 1, "{most} helpers ran at once");
    for i in 0..3 {
        assert_eq!(
            fs::read_dir(w.join(format!("copy{i}"))).unwrap().count(),
            3000
        );
    }
}

/// Hole 6: a copy kept setuid and setgid, so root's copy of another user's setuid program
/// was a setuid program owned by root.
async fn copies_drop_setuid_and_setgid(target: Target) {
    let Some(s) = Sandboxed::new(target).await else {
        return;
    };
    fs::copy("/bin/true", s.real("allowed/suid")).unwrap();
    std::os::unix::fs::chown(s.real("allowed/suid"), Some(65534), Some(65534)).unwrap();
    fs::set_permissions(s.real("allowed/suid"), fs::Permissions::from_mode(0o6755)).unwrap();
    fs::create_dir_all(s.real("allowed/tree")).unwrap();
    fs::copy(s.real("allowed/suid"), s.real("allowed/tree/suid")).unwrap();
    fs::set_permissions(
        s.real("allowed/tree/suid"),
        fs::Permissions::from_mode(0o6755),
    )
    .unwrap();
    let mode = |rel: &str| fs::metadata(s.real(rel)).unwrap().permissions().mode() & 0o7777;
    s.copy("allowed/suid", "allowed/c1", false, &s.ww())
        .await
        .unwrap();
    s.copy("allowed/tree", "allowed/c2", true, &s.ww())
        .await
        .unwrap();
    assert_eq!(mode("allowed/c1"), 0o755);
    assert_eq!(mode("allowed/c2/suid"), 0o755);
    // The same in the server (one implementation).
    s.copy("allowed/suid", "allowed/c3", false, &full())
        .await
        .unwrap();
    assert_eq!(mode("allowed/c3"), 0o755);
    // Control: a plain copy (what fs/copy did) keeps the bits, owned by whoever copies.
    fs::copy(s.real("allowed/suid"), s.real("allowed/c4")).unwrap();
    assert_eq!(mode("allowed/c4"), 0o6755);

    // Writing into an existing setuid file clears the bits, as for an unprivileged writer
    // (the helper runs without CAP_FSETID), whether written or copied onto.
    s.write("allowed/c4", b"#!/bin/sh\nid\n", &s.ww())
        .await
        .unwrap();
    assert_eq!(mode("allowed/c4"), 0o755);
    fs::set_permissions(s.real("allowed/c4"), fs::Permissions::from_mode(0o6755)).unwrap();
    s.copy("allowed/c1", "allowed/c4", false, &s.ww())
        .await
        .unwrap();
    assert_eq!(mode("allowed/c4"), 0o755);
    // Control: the server (root) writing unsandboxed keeps them.
    fs::set_permissions(s.real("allowed/c4"), fs::Permissions::from_mode(0o6755)).unwrap();
    s.write("allowed/c4", b"#!/bin/sh\nid\n", &full())
        .await
        .unwrap();
    assert_eq!(mode("allowed/c4"), 0o6755);
}

/// Hole 7: a path that is not UTF-8 was rewritten (`n\xff` became `n\u{fffd}`), so a call
/// acted on another file.
async fn paths_that_are_not_utf8_name_the_same_file(target: Target) {
    let Some(s) = Sandboxed::new(target).await else {
        return;
    };
    let name = |bytes: &[u8]| s.real("allowed").join(std::ffi::OsStr::from_bytes(bytes));
    let victim = name(b"n\xff");
    let bystander = s.real("allowed/n\u{fffd}");
    fs::write(&victim, b"victim").unwrap();
    fs::write(&bystander, b"bystander").unwrap();
    let remove = |path: std::path::PathBuf, sandbox: SandboxContext| {
        let fs_ = s.fs().clone();
        async move {
            let params = RemoveParams {
                path: abs(&path),
                recursive: false,
                force: false,
                sandbox: Some(sandbox),
            };
            within("remove", fs_.remove(params)).await.map(drop)
        }
    };
    remove(victim.clone(), s.ww()).await.unwrap();
    assert!(!victim.exists());
    assert_eq!(fs::read(&bystander).unwrap(), b"bystander");
    let written = name(b"w\xfe");
    write_at(s.fs(), abs(&written), b"bytes", &s.ww())
        .await
        .unwrap();
    assert_eq!(fs::read(&written).unwrap(), b"bytes");
    assert_eq!(
        read_at(s.fs(), abs(&written), &s.ww()).await.unwrap(),
        b"bytes"
    );
    // The same through the server process, unsandboxed.
    fs::write(&victim, b"victim").unwrap();
    remove(victim.clone(), full()).await.unwrap();
    assert!(!victim.exists());
    assert_eq!(fs::read(&bystander).unwrap(), b"bystander");
    // Control: the lossy name the path used to become is the bystander's.
    assert_eq!(victim.to_string_lossy(), bystander.to_string_lossy());
}

/// Hole 8: under restricted reads, `R/l -> /out/dir/../../R/pub` was readable exactly when
/// `/out/dir` was a directory: an oracle on what exists outside the readable roots.
async fn links_through_outside_paths_are_no_oracle(target: Target) {
    let Some(s) = Sandboxed::new(target).await else {
        return;
    };
    fs::write(s.real("allowed/pub"), b"public").unwrap();
    fs::create_dir(s.real("outside/dir")).unwrap();
    symlink(
        s.real("outside/dir/../../allowed/pub"),
        s.real("allowed/via-dir"),
    )
    .unwrap();
    symlink(
        s.real("outside/missing/../../allowed/pub"),
        s.real("allowed/via-missing"),
    )
    .unwrap();
    let ro = s.read_only(s.only_allowed());
    let answers = [
        error_of(s.read("allowed/via-dir", &ro).await),
        error_of(s.read("allowed/via-missing", &ro).await),
        error_of(s.stat("allowed/via-dir", &ro).await),
        error_of(s.stat("allowed/via-missing", &ro).await),
    ];
    for (code, message) in &answers {
        assert_eq!(*code, INVALID_REQUEST, "{message}");
        assert!(
            message.ends_with("leads outside the policy's roots)"),
            "{message}"
        );
    }
    // The same answer, but for the name of the link asked about.
    assert_eq!(answers[0].1.replace("via-dir", "via-missing"), answers[1].1);
    // Control: unsandboxed, the answer tells the two apart.
    assert_eq!(s.read("allowed/via-dir", &full()).await.unwrap(), b"public");
    assert_eq!(
        error_of(s.read("allowed/via-missing", &full()).await).0,
        NOT_FOUND
    );
}

/// Hole 9: deep trees cost quadratic time (createDirectory) or every descriptor (copy).
async fn deep_trees_are_refused_by_a_named_limit(target: Target) {
    let Some(s) = Sandboxed::new(target).await else {
        return;
    };
    fs::create_dir_all(s.real("allowed/.git")).unwrap();
    let ww = s.ww();
    let deep = |levels: usize| {
        let mut rel = String::from("allowed/deep");
        for _ in 0..levels {
            rel.push_str("/a");
        }
        rel
    };
    let started = std::time::Instant::now();
    let refused = s.mkdir(&deep(2000), true, &ww).await;
    assert_eq!(
        support::fs::limit_of(refused).as_deref(),
        Some("maxFsTreeDepth")
    );
    assert!(!s.real("allowed/deep").exists());
    s.mkdir(&deep(200), true, &ww).await.unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // A copy of a tree deeper than the limit.
    let mut tree = s.real("allowed/tall");
    for _ in 0..300 {
        tree.push("t");
    }
    fs::create_dir_all(&tree).unwrap();
    for sandbox in [ww.clone(), full()] {
        let refused = s
            .copy("allowed/tall", "allowed/tall-copy", true, &sandbox)
            .await;
        assert_eq!(
            support::fs::limit_of(refused).as_deref(),
            Some("maxFsTreeDepth")
        );
        let _ = fs::remove_dir_all(s.real("allowed/tall-copy"));
    }
    if target == Target::Remote {
        let limits = s.t.raw_client().await.capabilities().unwrap().limits;
        assert_eq!(limits.max_fs_tree_depth, Some(256));
        assert!(limits.fs_helper_timeout_ms.is_some_and(|t| t > 0));
        assert!(limits.max_concurrent_fs_helpers.is_some_and(|n| n > 0));
    }
}

/// A case-insensitive filesystem would find `.GIT` for `.git`: such names cannot be created
/// where the protected one is missing either.
async fn protected_names_are_compared_without_case(target: Target) {
    let Some(s) = Sandboxed::new(target).await else {
        return;
    };
    let ww = s.ww();
    assert_denied("mkdir .GIT", s.mkdir("allowed/.GIT", false, &ww).await);
    assert_denied(
        "mkdir -p .Codex",
        s.mkdir("allowed/.Codex/x", true, &ww).await,
    );
    assert_denied("write .AGENTS", s.write("allowed/.AGENTS", b"x", &ww).await);
    assert_denied(
        "rename to .Git",
        s.rename("allowed/inside.txt", "allowed/.Git", &ww).await,
    );
    assert_eq!(names(&s.real("allowed")), ["inside.txt", "link"]);
    // Control.
    s.mkdir("allowed/.GIT", false, &full()).await.unwrap();
}

/// codex 0.171's own `sandbox` object for fs/writeFile (from the workspace-write session
/// transcript), with its paths moved to `work`.
fn codex_0171_sandbox(work: &Path, extra_entries: &[serde_json::Value]) -> SandboxContext {
    let uri = |p: &Path| format!("file://{}", p.display());
    let special = |kind: &str, access: &str| serde_json::json!({"path": {"type": "special", "value": {"kind": kind}}, "access": access});
    let metadata = |sub: &str| {
        serde_json::json!({"path": {"type": "special", "value": {"kind": "project_roots",
            "subpath": sub}}, "access": "read", "missing_path_behavior": "skip"})
    };
    let mut entries = vec![
        special("root", "read"),
        special("project_roots", "write"),
        special("slash_tmp", "write"),
        special("tmpdir", "write"),
        metadata(".git"),
        metadata(".agents"),
        metadata(".codex"),
        metadata(".aws"),
    ];
    entries.extend_from_slice(extra_entries);
    serde_json::from_value(serde_json::json!({
        "permissions": {"type": "managed", "network": "restricted",
            "file_system": {"type": "restricted", "entries": entries}},
        "cwd": uri(work),
        "policyContext": {"cwd": uri(work), "workspaceRoots": [uri(work)]},
        "workspaceRoots": [uri(work)],
        "userHomeDir": "file:///home/dev",
        "windowsSandboxLevel": "disabled",
        "useLegacyLandlock": false
    }))
    .unwrap()
}

/// The permission profile codex 0.171 sends is enforced whole: writes in the workspace, not
/// outside it nor into its metadata, `git init` under the `skip` entries, `deny` entries,
/// and `minimal` reads. The fixtures are outside /tmp and $TMPDIR, which it makes writable.
async fn codex_0171_permission_profiles_are_enforced(target: Target) {
    if !sandbox_available() {
        return;
    }
    let t = FsEnv::outside_tmp(target).await;
    let real = |rel: &str| t.dir.path().join(rel);
    let path = |rel: &str| abs(&real(rel));
    let work = real("work");
    fs::create_dir_all(work.join(".git/hooks")).unwrap();
    fs::write(work.join(".git/config"), b"[core]\n").unwrap();
    fs::create_dir_all(work.join(".codex")).unwrap();
    fs::create_dir_all(work.join(".aws")).unwrap();
    fs::write(work.join(".aws/credentials"), b"[default]\n").unwrap();
    fs::create_dir_all(work.join("secret")).unwrap();
    fs::write(work.join("secret/key"), b"hunter2").unwrap();
    symlink(work.join("secret"), work.join("alias")).unwrap();
    fs::create_dir_all(real("outside")).unwrap();
    fs::write(real("outside/secret"), b"secret").unwrap();
    let fs_ = t.fs();
    let profile = codex_0171_sandbox(&work, &[]);

    write_at(fs_, path("work/PATCHED.txt"), b"patched-ok\n", &profile)
        .await
        .unwrap();
    assert_eq!(fs::read(work.join("PATCHED.txt")).unwrap(), b"patched-ok\n");
    let before = snapshot(t.dir.path());
    for rel in [
        "outside/x",
        "work/.git/config",
        "work/.git/hooks/post-checkout",
        "work/.codex/config.toml",
        "work/.aws/credentials",
    ] {
        assert_denied(rel, write_at(fs_, path(rel), b"evil", &profile).await);
    }
    assert_eq!(snapshot(t.dir.path()), before);
    // `git init` in a workspace without one: a missing .git may be created (skip), and
    // from then on it is protected.
    let fresh = real("fresh");
    fs::create_dir_all(&fresh).unwrap();
    let fresh_profile = codex_0171_sandbox(&fresh, &[]);
    let mkdir = |rel: &str, sandbox: &SandboxContext| {
        let params = CreateDirectoryParams {
            path: path(rel),
            recursive: true,
            sandbox: Some(sandbox.clone()),
        };
        let fs_ = fs_.clone();
        async move {
            within("mkdir", fs_.create_directory(params))
                .await
                .map(drop)
        }
    };
    mkdir("fresh/.git/hooks", &fresh_profile).await.unwrap();
    write_at(
        fs_,
        path("fresh/.git/HEAD"),
        b"ref: refs/heads/main\n",
        &fresh_profile,
    )
    .await
    .unwrap_err();
    assert!(fresh.join(".git/hooks").is_dir());
    assert!(!fresh.join(".git/HEAD").exists());

    // A `deny` entry: no read, stat, listing or write, by any name.
    let deny = serde_json::json!({"path": {"type": "path",
        "path": format!("file://{}", work.join("secret").display())}, "access": "deny"});
    let denying = codex_0171_sandbox(&work, &[deny]);
    assert_denied(
        "read",
        read_at(fs_, path("work/secret/key"), &denying).await,
    );
    assert_denied(
        "read through a link",
        read_at(fs_, path("work/alias/key"), &denying).await,
    );
    let stat = GetMetadataParams {
        path: path("work/secret/key"),
        sandbox: Some(denying.clone()),
    };
    assert_denied("stat", within("stat", fs_.get_metadata(stat)).await);
    let list = |rel: &str| ReadDirectoryParams {
        path: path(rel),
        sandbox: Some(denying.clone()),
    };
    assert_denied(
        "list",
        within("list", fs_.read_directory(list("work/secret"))).await,
    );
    let listing = within("list", fs_.read_directory(list("work")))
        .await
        .unwrap();
    assert!(
        !listing.entries.iter().any(|e| e.file_name == "secret"),
        "{listing:?}"
    );
    assert_denied(
        "write",
        write_at(fs_, path("work/secret/key"), b"x", &denying).await,
    );
    assert_eq!(fs::read(work.join("secret/key")).unwrap(), b"hunter2");
    // Control.
    assert_eq!(
        read_at(fs_, path("work/alias/key"), &full()).await.unwrap(),
        b"hunter2"
    );

    // `minimal` reads: the platform and the workspace, nothing else.
    let minimal: SandboxContext = serde_json::from_value(serde_json::json!({
        "permissions": {"type": "managed", "network": "restricted",
            "file_system": {"type": "restricted", "entries": [
                {"path": {"type": "special", "value": {"kind": "minimal"}}, "access": "read"},
                {"path": {"type": "special", "value": {"kind": "project_roots"}},
                 "access": "write"}]}},
        "cwd": format!("file://{}", work.display()),
        "workspaceRoots": [format!("file://{}", work.display())],
        "windowsSandboxLevel": "disabled"
    }))
    .unwrap();
    assert_denied(
        "read outside",
        read_at(fs_, path("outside/secret"), &minimal).await,
    );
    assert_eq!(
        read_at(fs_, path("work/PATCHED.txt"), &minimal)
            .await
            .unwrap(),
        b"patched-ok\n"
    );
    read_at(fs_, abs(Path::new("/etc/passwd")), &minimal)
        .await
        .unwrap();
    // Control.
    assert_eq!(
        read_at(fs_, path("outside/secret"), &full()).await.unwrap(),
        b"secret"
    );
}
