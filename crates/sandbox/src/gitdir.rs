//! Which paths a `.git` entry makes git read, resolved exactly as git resolves them, so a
//! sandbox can keep them read-only.
//!
//! A writable tree must not be able to change what git will run: hooks, `core.fsmonitor`
//! and other commands in a repository's `config`. Those live in the *git directory*, which
//! is not always the `.git` directory beside the work tree:
//!
//! - `.git` may be a file, `gitdir: <path>` (linked worktrees, submodules), naming the git
//!   directory anywhere, relative to the directory that holds the `.git` entry;
//! - `.git` (or any directory on the way) may be a symlink, and git follows it;
//! - a git directory may hold a `commondir` file naming the directory whose `config`, hooks
//!   and objects it shares (every linked worktree has one).
//!
//! [`protected_paths`] follows all of this the way git does (`setup.c`,
//! `read_gitfile_gently` and `get_common_dir_noenv`):
//! - a `.git` file counts when `stat` (following links) says it is a regular file of at most
//!   1 MiB starting with exactly `gitdir: `; the path is everything after that prefix, up to
//!   a NUL byte, with trailing `\n` and `\r` removed (so a "second line" is part of the
//!   path, and the bytes need not be UTF-8);
//! - a relative path is joined to the directory holding the `.git` entry, then resolved
//!   physically, symlink by symlink, as `realpath` does (`d/l/../gd` goes through what `l`
//!   points to, not lexically back to `d`);
//! - `commondir` is read the same way (any size, trailing newlines removed), relative to
//!   the git directory.
//!
//! It answers with paths, not descriptors, and touches nothing; it is used by the fs
//! helper's path layer and can be used to build bind mounts for a process sandbox.
//!
//! What is *not* followed: `include.path` and `includeIf` in a repository's config, and
//! `core.hooksPath`. A config the sandboxed side cannot change can still point into a
//! writable tree; that is the repository owner's setting.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

/// The largest `.git` file git reads (`read_gitfile_gently`'s `max_file_size`).
pub const MAX_GITFILE_BYTES: u64 = 1 << 20;

/// The prefix of a `.git` file, exactly as git requires it.
const GITFILE_PREFIX: &[u8] = b"gitdir: ";

/// Most symlinks followed in one resolution, as the kernel's limit.
const MAX_LINK_HOPS: usize = 40;

/// The entries of a git directory that decide whether git accepts it (`HEAD`, `objects`,
/// `refs`) and what it runs (`config`, `config.worktree`, `hooks`, `commondir`), plus the
/// ones that lead to other git directories (`modules`, `worktrees`) and the state git
/// trusts (`index`, `packed-refs`, `info`). A caller that cannot keep a whole git directory
/// read-only (it is, or holds, a tree that must stay writable) keeps these read-only, and
/// uncreatable while missing, instead.
pub const GIT_DIR_ENTRIES: [&str; 12] = [
    "HEAD",
    "config",
    "config.worktree",
    "hooks",
    "objects",
    "refs",
    "commondir",
    "modules",
    "worktrees",
    "index",
    "packed-refs",
    "info",
];

/// What must stay as it is for a `.git` entry to keep meaning what it means now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitPaths {
    /// Paths that must not change, each to be taken as itself (not followed): the `.git`
    /// entry, every symlink followed on the way to a git directory, the `.git` file (when
    /// `.git` is or leads to one), the `commondir` file, and an existing non-directory
    /// where a directory was named (which could be replaced by one).
    pub read_only: Vec<PathBuf>,
    /// The git directory and the common directory (physical paths, existing directories):
    /// nothing beneath them may change.
    pub git_dirs: Vec<PathBuf>,
    /// Paths that must not be created: for a git directory or common directory named but
    /// missing, the first missing component of its physical path (creating it is what would
    /// let a prepared directory be adopted by git).
    pub must_not_create: Vec<PathBuf>,
}

impl GitPaths {
    fn add(&mut self, resolution: Resolution, want_dir: bool) -> Option<PathBuf> {
        self.read_only.extend(resolution.links);
        match resolution.end {
            End::Exists { path, is_dir } => {
                if want_dir && !is_dir {
                    // Git would refuse it as it is; it must not become something else.
                    self.read_only.push(path);
                    None
                } else {
                    Some(path)
                }
            }
            End::Missing { first_missing } => {
                self.must_not_create.push(first_missing);
                None
            }
            End::Blocked { at } => {
                self.read_only.push(at);
                None
            }
            End::Unresolvable => None,
        }
    }
}

/// Where a physical resolution ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The path exists; this is its physical path (no symlinks in it).
    Exists { path: PathBuf, is_dir: bool },
    /// A component is missing: this is its physical path (its parent exists).
    Missing { first_missing: PathBuf },
    /// A component exists but is not a directory, and more components follow.
    Blocked { at: PathBuf },
    /// Too many symlinks, or a component that cannot be looked at.
    Unresolvable,
}

/// A path resolved component by component, as the kernel and `realpath` do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// Every symlink followed, as its own physical path (parent resolved, name kept).
    pub links: Vec<PathBuf>,
    pub end: End,
}

/// Resolves the absolute `path` physically: each component is looked up (`lstat`), symlinks
/// are followed (relative ones from the directory holding them), and `..` goes to the
/// physical parent of what has been resolved so far.
pub fn resolve_physically(path: &Path) -> Resolution {
    let mut links = Vec::new();
    let mut resolved = PathBuf::from("/");
    let mut pending: VecDeque<OsString> = components(path);
    let mut hops = 0;
    while let Some(component) = pending.pop_front() {
        if component == ".." {
            resolved.pop();
            continue;
        }
        let next = resolved.join(&component);
        let meta = match fs::symlink_metadata(&next) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Resolution {
                    links,
                    end: End::Missing {
                        first_missing: next,
                    },
                }
            }
            Err(_) => {
                return Resolution {
                    links,
                    end: End::Unresolvable,
                }
            }
        };
        if meta.file_type().is_symlink() {
            hops += 1;
            let Ok(target) = fs::read_link(&next) else {
                return Resolution {
                    links,
                    end: End::Unresolvable,
                };
            };
            links.push(next);
            if hops > MAX_LINK_HOPS {
                return Resolution {
                    links,
                    end: End::Unresolvable,
                };
            }
            if target.is_absolute() {
                resolved = PathBuf::from("/");
            }
            for part in components(&target).into_iter().rev() {
                pending.push_front(part);
            }
        } else if meta.is_dir() {
            resolved = next;
        } else if pending.is_empty() {
            return Resolution {
                links,
                end: End::Exists {
                    path: next,
                    is_dir: false,
                },
            };
        } else {
            return Resolution {
                links,
                end: End::Blocked { at: next },
            };
        }
    }
    Resolution {
        links,
        end: End::Exists {
            path: resolved,
            is_dir: true,
        },
    }
}

/// The normal and `..` components of `path` (`.` and the root dropped).
fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// What must stay read-only, and what must not be created, so that the `.git` entry at
/// `dot_git` (a directory, a `gitdir:` file, or a symlink to either) keeps leading git to
/// the same git directory and common directory, with the same contents. `dot_git` is the
/// entry as it sits in its work tree (its parent directories may be symlinks). Nothing is
/// reported when it does not exist: whether it may be created is the policy's business.
pub fn protected_paths(dot_git: &Path) -> GitPaths {
    let mut paths = GitPaths::default();
    if fs::symlink_metadata(dot_git).is_err() {
        return paths;
    }
    paths.read_only.push(dot_git.to_path_buf());
    let Some(entry) = paths.add(resolve_physically(dot_git), false) else {
        return paths;
    };
    let gitdir = match fs::metadata(&entry) {
        Ok(meta) if meta.is_dir() => entry,
        Ok(meta) if meta.is_file() => {
            // A `.git` file: itself read-only (rewriting it would redirect git).
            paths.read_only.push(entry.clone());
            let Some(named) = read_gitfile(&entry) else {
                return paths;
            };
            // Relative to the directory holding the `.git` entry, as git (which reads
            // `.git` from the work tree as its cwd) resolves it.
            let base = dot_git.parent().unwrap_or(Path::new("/"));
            let Some(gitdir) = paths.add(resolve_physically(&base.join(named)), true) else {
                return paths;
            };
            gitdir
        }
        // A FIFO, a device...: git ignores it; it stays read-only as the entry's target.
        _ => {
            paths.read_only.push(entry);
            return paths;
        }
    };
    add_common_dir(&mut paths, &gitdir);
    paths.git_dirs.insert(0, gitdir);
    dedup(&mut paths.read_only);
    paths
}

fn dedup(paths: &mut Vec<PathBuf>) {
    let mut seen = std::collections::HashSet::new();
    paths.retain(|p| seen.insert(p.clone()));
}

/// The path a `.git` file names, as git reads it; `None` when git would not take the file.
fn read_gitfile(file: &Path) -> Option<PathBuf> {
    let content = read_small(file, MAX_GITFILE_BYTES)?;
    let named = content.strip_prefix(GITFILE_PREFIX)?;
    let named = until_nul(trim_newlines(named));
    if named.is_empty() {
        return None;
    }
    Some(PathBuf::from(OsStr::from_bytes(named)))
}

/// Adds the common directory named by `gitdir/commondir`, when there is that file.
fn add_common_dir(paths: &mut GitPaths, gitdir: &Path) {
    let file = gitdir.join("commondir");
    if fs::symlink_metadata(&file).is_err() {
        return;
    }
    // Git reads it following links (`file_exists` is `stat`); the link, or the file it
    // leads to outside the git directory, must stay as it is.
    let Some(file) = paths.add(resolve_physically(&file), false) else {
        return;
    };
    paths.read_only.push(file.clone());
    // Git reads the whole file; a path longer than this is no path at all.
    let Some(content) = read_small(&file, MAX_GITFILE_BYTES) else {
        return;
    };
    let named = PathBuf::from(OsString::from_vec(
        until_nul(trim_newlines(&content)).to_vec(),
    ));
    // An empty `commondir` names the git directory itself (git appends it to `gitdir/`).
    if let Some(common) = paths.add(resolve_physically(&gitdir.join(named)), true) {
        if common != gitdir && !paths.git_dirs.contains(&common) {
            paths.git_dirs.push(common);
        }
    }
}

/// Reads a regular file of at most `limit` bytes, without following a final link (the
/// paths given here are physical) and without waiting on a FIFO swapped in.
fn read_small(path: &Path, limit: u64) -> Option<Vec<u8>> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() > limit {
        return None;
    }
    let mut content = Vec::new();
    file.take(limit + 1).read_to_end(&mut content).ok()?;
    if content.len() as u64 > limit {
        return None;
    }
    Some(content)
}

fn trim_newlines(mut bytes: &[u8]) -> &[u8] {
    while let [rest @ .., b'\n' | b'\r'] = bytes {
        bytes = rest;
    }
    bytes
}

/// Git uses the path as a C string: it ends at the first NUL byte.
fn until_nul(bytes: &[u8]) -> &[u8] {
    bytes.split(|&b| b == 0).next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn scratch() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        (dir, root)
    }

    fn git_dir(path: &Path) {
        fs::create_dir_all(path.join("hooks")).unwrap();
        fs::create_dir_all(path.join("objects")).unwrap();
        fs::create_dir_all(path.join("refs")).unwrap();
        fs::write(path.join("HEAD"), "ref: refs/heads/main\n").unwrap();
    }

    #[test]
    fn a_git_directory_is_itself() {
        let (_d, w) = scratch();
        git_dir(&w.join(".git"));
        let paths = protected_paths(&w.join(".git"));
        assert_eq!(paths.read_only, [w.join(".git")]);
        assert_eq!(paths.git_dirs, [w.join(".git")]);
        assert!(paths.must_not_create.is_empty());
        assert_eq!(protected_paths(&w.join("missing")), GitPaths::default());
    }

    #[test]
    fn a_gitdir_file_is_read_as_git_reads_it() {
        let (_d, w) = scratch();
        git_dir(&w.join("gd"));
        // Relative, with a CR LF ending.
        fs::write(w.join(".git"), "gitdir: gd\r\n").unwrap();
        let paths = protected_paths(&w.join(".git"));
        assert_eq!(paths.git_dirs, [w.join("gd")]);
        assert!(paths.read_only.contains(&w.join(".git")));

        // A second line is part of the path (only trailing newlines go), so the decoy on
        // the first line is not what git uses.
        fs::write(
            w.join(".git"),
            format!("gitdir: {}/decoy\nrest\n", w.display()),
        )
        .unwrap();
        git_dir(&w.join("decoy"));
        let paths = protected_paths(&w.join(".git"));
        assert!(paths.git_dirs.is_empty(), "{paths:?}");
        assert_eq!(paths.must_not_create, [w.join("decoy\nrest")]);

        // Not UTF-8.
        fs::write(w.join(".git"), b"gitdir: g\xffd\n").unwrap();
        let paths = protected_paths(&w.join(".git"));
        assert_eq!(
            paths.must_not_create,
            [w.join(OsStr::from_bytes(b"g\xffd"))]
        );

        // Not git's format: nothing beyond the file itself.
        fs::write(w.join(".git"), "gitdir:gd\n").unwrap();
        let paths = protected_paths(&w.join(".git"));
        assert!(paths.git_dirs.is_empty() && paths.must_not_create.is_empty());
    }

    #[test]
    fn links_are_followed_physically_and_kept() {
        let (_d, w) = scratch();
        git_dir(&w.join("real/gd"));
        fs::create_dir_all(w.join("d")).unwrap();
        // `d/l/../gd`: lexically `d/gd`, physically `real/gd`.
        symlink(w.join("real/sub"), w.join("d/l")).unwrap();
        fs::create_dir_all(w.join("real/sub")).unwrap();
        fs::write(w.join("gitfile"), "gitdir: d/l/../gd\n").unwrap();
        // `.git` is a link to the gitdir *file*, through another link.
        symlink(w.join("gitfile"), w.join("lf")).unwrap();
        symlink("lf", w.join(".git")).unwrap();
        let paths = protected_paths(&w.join(".git"));
        assert_eq!(paths.git_dirs, [w.join("real/gd")]);
        for kept in [
            w.join(".git"),
            w.join("lf"),
            w.join("gitfile"),
            w.join("d/l"),
        ] {
            assert!(paths.read_only.contains(&kept), "{kept:?} in {paths:?}");
        }
    }

    #[test]
    fn a_missing_gitdir_must_not_be_created() {
        let (_d, w) = scratch();
        fs::write(w.join(".git"), "gitdir: a/b/gd\n").unwrap();
        let paths = protected_paths(&w.join(".git"));
        assert_eq!(paths.must_not_create, [w.join("a")]);
        // A file where a directory is named stays a file.
        fs::write(w.join("a"), "x").unwrap();
        let paths = protected_paths(&w.join(".git"));
        assert!(paths.read_only.contains(&w.join("a")), "{paths:?}");
    }

    #[test]
    fn worktrees_protect_their_common_directory() {
        let (_d, w) = scratch();
        git_dir(&w.join("main/.git"));
        let wt = w.join("main/.git/worktrees/wt1");
        fs::create_dir_all(&wt).unwrap();
        fs::write(wt.join("commondir"), "../..\n").unwrap();
        fs::write(w.join(".git"), format!("gitdir: {}\n", wt.display())).unwrap();
        let paths = protected_paths(&w.join(".git"));
        assert_eq!(paths.git_dirs, [wt.clone(), w.join("main/.git")]);
        assert!(paths.read_only.contains(&wt.join("commondir")));

        // A missing common directory must not be created.
        fs::write(wt.join("commondir"), "/nonexistent-common/x\n").unwrap();
        let paths = protected_paths(&w.join(".git"));
        assert_eq!(
            paths.must_not_create,
            [PathBuf::from("/nonexistent-common")]
        );
    }

    #[test]
    fn special_files_are_not_read() {
        let (_d, w) = scratch();
        let fifo = std::ffi::CString::new(w.join(".git").as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        // Returns at once (a FIFO opened for reading would wait for a writer).
        let paths = protected_paths(&w.join(".git"));
        assert!(paths.git_dirs.is_empty());
        assert!(paths.read_only.contains(&w.join(".git")));
    }
}
