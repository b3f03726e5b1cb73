//! Layer 0, path discipline: every path the helper operates on is resolved with
//! `openat2(RESOLVE_BENEATH)` from a root the policy names, and mutations are checked against
//! the protected subpaths (`.git`, `.codex`, `.agents`), which Landlock cannot carve out of a
//! writable tree.
//!
//! An operation then runs on `/proc/self/fd/<parent>/<name>`: the parent directory is pinned
//! by the descriptor that was checked, so swapping a path component for a symlink after the
//! check cannot redirect it; the last component is never followed implicitly (the helper
//! follows a final symlink itself, through the same checks).

use crate::policy::{ResolvedPolicy, PROTECTED_NAMES};
use rustix::fs::{openat2, AtFlags, FileType, Mode, OFlags, ResolveFlags};
use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// A directory or file identity: (device, inode).
type Inode = (u64, u64);

/// Most symlinks followed at the end of a written path, as the kernel's own limit.
const MAX_LINK_HOPS: usize = 40;

/// A denial by this layer: EACCES, with the reason, so it maps to -32600 like the kernel's.
fn denied(reason: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "{} (denied by the sandbox: {reason})",
            io::Error::from_raw_os_error(libc::EACCES)
        ),
    )
}

/// openat2 reports a path that leaves its root as EXDEV, and a symlink it refused as ELOOP.
fn escape_is_denial(path: &Path) -> impl Fn(rustix::io::Errno) -> io::Error + '_ {
    move |errno| match errno {
        rustix::io::Errno::XDEV | rustix::io::Errno::LOOP => denied(format_args!(
            "{} leads outside the policy's roots",
            path.display()
        )),
        other => other.into(),
    }
}

const BENEATH: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_MAGICLINKS);

fn inode(fd: impl AsFd) -> io::Result<Inode> {
    let st = rustix::fs::fstat(fd)?;
    Ok((st.st_dev, st.st_ino))
}

/// A root of the policy, open.
struct Root {
    /// As the policy gave it.
    given: PathBuf,
    /// With symlinks resolved, so a request that names the real path of an aliased root
    /// still matches it.
    canonical: Option<PathBuf>,
    fd: OwnedFd,
}

impl Root {
    fn open(path: &Path) -> Option<Root> {
        // A file can be a readable root too.
        let fd = rustix::fs::open(path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).ok()?;
        Some(Root {
            given: path.to_path_buf(),
            canonical: std::fs::canonicalize(path).ok(),
            fd,
        })
    }

    /// `path` relative to this root, when it lies under it.
    fn relative<'p>(&self, path: &'p Path) -> Option<&'p Path> {
        path.strip_prefix(&self.given).ok().or_else(|| {
            self.canonical
                .as_ref()
                .and_then(|c| path.strip_prefix(c).ok())
        })
    }

    /// True when `path` is this root or one of its ancestors.
    fn is_at_or_below(&self, path: &Path) -> bool {
        self.given.starts_with(path) || self.canonical.as_ref().is_some_and(|c| c.starts_with(path))
    }

    /// True when `path` (as the kernel reports an open file's location) lies under this
    /// root.
    fn holds(&self, path: &Path) -> bool {
        path.starts_with(&self.given)
            || self.canonical.as_ref().is_some_and(|c| path.starts_with(c))
    }
}

/// Opens `rel` beneath `root`, then makes sure it landed under one of `roots`.
///
/// `RESOLVE_BENEATH` answers most paths in one syscall, but it also refuses every absolute
/// symlink, even one that points back inside (`ws/d -> /abs/ws/real`), and a relative one
/// that leaves the root for another root. For those (EXDEV) the kernel resolves the path
/// normally, without magic links, and the descriptor's real location, read back from
/// `/proc/self/fd`, must be under one of the roots. Either way the check is on the object
/// the descriptor pins, so a later swap of any component cannot change what it certified.
fn open_beneath(
    roots: &[Root],
    root: &Root,
    rel: &Path,
    flags: OFlags,
    whole: &Path,
) -> io::Result<OwnedFd> {
    let flags = flags | OFlags::PATH | OFlags::CLOEXEC;
    if rel.as_os_str().is_empty() {
        // The root itself, which may be a file (so not `openat(root, ".")`).
        return Ok(rustix::fs::open(
            fd_path(&root.fd, None),
            flags,
            Mode::empty(),
        )?);
    }
    match openat2(&root.fd, rel, flags, Mode::empty(), BENEATH) {
        Ok(fd) => Ok(fd),
        Err(rustix::io::Errno::XDEV) => {
            // Whatever goes wrong from here is reported as a denial: "not found" or "not a
            // directory" would tell a restricted reader what exists outside its roots.
            let outside = || {
                denied(format_args!(
                    "{} leads outside the policy's roots",
                    whole.display()
                ))
            };
            let fd = openat2(
                &root.fd,
                rel,
                flags,
                Mode::empty(),
                ResolveFlags::NO_MAGICLINKS,
            )
            .map_err(|_| outside())?;
            let landed = std::fs::read_link(fd_path(&fd, None)).map_err(|_| outside())?;
            if landed.is_absolute() && roots.iter().any(|r| r.holds(&landed)) {
                Ok(fd)
            } else {
                Err(outside())
            }
        }
        Err(e) => Err(escape_is_denial(whole)(e)),
    }
}

/// `/proc/self/fd/<fd>[/<name>]`: a path through an open descriptor, which the kernel
/// follows to the very file or directory the descriptor holds.
fn fd_path(fd: &OwnedFd, name: Option<&OsStr>) -> PathBuf {
    let mut path = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    if let Some(name) = name {
        path.push(name);
    }
    path
}

/// The longest root that contains `path`, and the rest of the path below it.
fn containing<'r, 'p>(roots: &'r [Root], path: &'p Path) -> Option<(&'r Root, &'p Path)> {
    roots
        .iter()
        .filter_map(|r| r.relative(path).map(|rel| (r, rel)))
        .min_by_key(|(_, rel)| rel.components().count())
}

/// A path to operate on, whose directories were resolved and checked. The descriptors it
/// holds keep them pinned while the operation runs.
#[derive(Debug)]
pub struct Confined {
    path: PathBuf,
    _pins: Vec<OwnedFd>,
}

impl Confined {
    fn pinned(fd: OwnedFd, name: Option<&OsStr>) -> Confined {
        Confined {
            path: fd_path(&fd, name),
            _pins: vec![fd],
        }
    }

    fn unconfined(path: &Path) -> Confined {
        Confined {
            path: path.to_path_buf(),
            _pins: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A target of a mutation: its parent directory, checked and pinned, and its name.
#[derive(Debug)]
pub struct WriteTarget {
    parent: OwnedFd,
    name: OsString,
    lexical: PathBuf,
}

impl WriteTarget {
    /// The path to hand to the operation (`/proc/self/fd/<parent>/<name>`).
    pub fn path(&self) -> PathBuf {
        fd_path(&self.parent, Some(&self.name))
    }

    /// `lstat` of the target: `None` when it does not exist.
    fn lstat(&self) -> io::Result<Option<rustix::fs::Stat>> {
        match rustix::fs::statat(&self.parent, &self.name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// The policy's roots, opened, and the protected directories found in the writable ones.
pub struct Confinement {
    writable: Vec<Root>,
    /// `None`: everything is readable.
    readable: Option<Vec<Root>>,
    /// Protected directories (`.git`, `.codex`, `.agents`, gitdirs): nothing beneath them
    /// may change.
    protected: HashSet<Inode>,
    /// Their ancestors: removing or moving one of these would take a protected directory
    /// with it.
    protected_ancestors: HashSet<Inode>,
    /// The writable roots themselves.
    root_inodes: HashSet<Inode>,
}

impl Confinement {
    /// Opens the roots of `policy`. Roots that do not exist are left out (Landlock grants
    /// nothing there either).
    pub fn new(policy: &ResolvedPolicy) -> io::Result<Confinement> {
        let writable: Vec<Root> = policy
            .writable_roots
            .iter()
            .filter_map(|r| Root::open(r))
            .collect();
        let readable = policy.readable_roots.as_ref().map(|roots| {
            roots
                .iter()
                .chain(&policy.writable_roots)
                .filter_map(|r| Root::open(r))
                .collect()
        });
        let mut confinement = Confinement {
            writable,
            readable,
            protected: HashSet::new(),
            protected_ancestors: HashSet::new(),
            root_inodes: HashSet::new(),
        };
        confinement.find_protected()?;
        Ok(confinement)
    }

    fn find_protected(&mut self) -> io::Result<()> {
        let mut dirs = Vec::new();
        for root in &self.writable {
            self.root_inodes.insert(inode(&root.fd)?);
            for name in PROTECTED_NAMES {
                // Following symlinks wherever they lead: `.git -> /elsewhere/gitdir` protects
                // the gitdir, which may well lie in another writable root (or `/tmp`).
                if let Ok(fd) = rustix::fs::openat(
                    &root.fd,
                    name,
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    dirs.push(fd);
                }
            }
            if let Some(gitdir) = gitdir_of(root) {
                if let Ok(fd) = rustix::fs::open(
                    &gitdir,
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    dirs.push(fd);
                }
            }
        }
        for dir in dirs {
            self.protected.insert(inode(&dir)?);
            for ancestor in ancestors(&dir)? {
                self.protected_ancestors.insert(ancestor);
            }
        }
        Ok(())
    }

    /// A path to read: under the readable roots when reads are restricted (following a
    /// final symlink only when `follow` and only beneath the root), as is otherwise.
    pub fn readable(&self, path: &Path, follow: bool) -> io::Result<Confined> {
        let Some(roots) = &self.readable else {
            return Ok(Confined::unconfined(path));
        };
        let (root, rel) = containing(roots, path).ok_or_else(|| {
            denied(format_args!(
                "{} is outside the readable roots",
                path.display()
            ))
        })?;
        match (follow, rel.file_name(), rel.parent()) {
            (false, Some(name), Some(parent)) => Ok(Confined::pinned(
                open_beneath(roots, root, parent, OFlags::DIRECTORY, path)?,
                Some(name),
            )),
            _ => Ok(Confined::pinned(
                open_beneath(roots, root, rel, OFlags::empty(), path)?,
                None,
            )),
        }
    }

    /// What a symlink at `path` points to, when reads are restricted: only a target beneath
    /// the same readable root can be described.
    pub fn readable_target(&self, path: &Path) -> io::Result<std::fs::Metadata> {
        let target = self.readable(path, true)?;
        std::fs::metadata(target.path())
    }

    /// True when `path` is a writable root or one of its ancestors.
    pub fn is_writable_root_or_above(&self, path: &Path) -> bool {
        self.writable.iter().any(|r| r.is_at_or_below(path))
    }

    /// True when `path` is a writable root (as given, or its real path).
    pub fn is_writable_root(&self, path: &Path) -> bool {
        self.writable
            .iter()
            .any(|r| r.given == path || r.canonical.as_deref() == Some(path))
    }

    /// True when `path` is an existing directory the policy lets the helper write in.
    pub fn is_writable_directory(&self, path: &Path) -> bool {
        containing(&self.writable, path).is_some_and(|(root, rel)| {
            open_beneath(&self.writable, root, rel, OFlags::DIRECTORY, path).is_ok()
        })
    }

    /// True when reads are restricted to roots.
    pub fn reads_restricted(&self) -> bool {
        self.readable.is_some()
    }

    /// The target of a mutation at `path`: under a writable root, not the root itself, not
    /// a protected name directly under a root, and with a parent that is not (beneath) a
    /// protected directory.
    pub fn writable(&self, path: &Path) -> io::Result<WriteTarget> {
        let (root, rel) = containing(&self.writable, path).ok_or_else(|| {
            denied(format_args!(
                "{} is outside the writable roots",
                path.display()
            ))
        })?;
        let mut components = rel.components();
        let Some(Component::Normal(first)) = components.next() else {
            return Err(denied(format_args!(
                "{} is a writable root itself",
                path.display()
            )));
        };
        if PROTECTED_NAMES.iter().any(|p| OsStr::new(p) == first) {
            return Err(denied(format_args!(
                "{} is read-only under the policy ({} is protected)",
                path.display(),
                first.to_string_lossy()
            )));
        }
        let name = rel
            .file_name()
            .ok_or_else(|| denied("the path has no name"))?;
        let parent = open_beneath(
            &self.writable,
            root,
            rel.parent().unwrap_or(Path::new("")),
            OFlags::DIRECTORY,
            path,
        )?;
        self.check_not_protected(&parent, path)?;
        // Reached through a link to another root (or to this one), a protected name must
        // still be refused directly under it.
        if PROTECTED_NAMES.iter().any(|p| OsStr::new(p) == name)
            && self.root_inodes.contains(&inode(&parent)?)
        {
            return Err(denied(format_args!(
                "{} is read-only under the policy ({} is protected)",
                path.display(),
                name.to_string_lossy()
            )));
        }
        Ok(WriteTarget {
            parent,
            name: name.to_os_string(),
            lexical: path.to_path_buf(),
        })
    }

    /// Like [`writable`](Self::writable), then follows a final symlink (through the same
    /// checks) to what it names, as writing to a symlink does.
    pub fn writable_file(&self, path: &Path) -> io::Result<WriteTarget> {
        let mut target = self.writable(path)?;
        for _ in 0..MAX_LINK_HOPS {
            let Some(st) = target.lstat()? else {
                return Ok(target);
            };
            if FileType::from_raw_mode(st.st_mode) != FileType::Symlink {
                return Ok(target);
            }
            let link = rustix::fs::readlinkat(&target.parent, &target.name, Vec::new())?;
            let link = Path::new(OsStr::from_bytes(link.as_bytes()));
            // Relative to where the link really is, and not normalized: `..` after a
            // symlinked component must mean what the kernel makes of it, which the
            // resolution beneath the root then does.
            let next = if link.is_relative() {
                std::fs::read_link(fd_path(&target.parent, None))?.join(link)
            } else {
                link.to_path_buf()
            };
            target = self.writable(&next)?;
        }
        Err(io::Error::from_raw_os_error(libc::ELOOP))
    }

    /// A mutation that removes or replaces the target itself (remove, rename) must not take
    /// a protected directory with it.
    pub fn check_replaceable(&self, target: &WriteTarget) -> io::Result<()> {
        if let Some(st) = target.lstat()? {
            let id = (st.st_dev, st.st_ino);
            if self.protected.contains(&id) || self.protected_ancestors.contains(&id) {
                return Err(denied(format_args!(
                    "{} holds a protected directory",
                    target.lexical.display()
                )));
            }
        }
        Ok(())
    }

    /// Refuses a directory that is, or lies beneath, a protected directory.
    fn check_not_protected(&self, dir: &OwnedFd, path: &Path) -> io::Result<()> {
        if self.protected.is_empty() {
            return Ok(());
        }
        let mut chain = vec![inode(dir)?];
        chain.extend(ancestors(dir)?);
        if chain.iter().any(|id| self.protected.contains(id)) {
            return Err(denied(format_args!(
                "{} is inside a protected directory (.git, .codex, .agents)",
                path.display()
            )));
        }
        Ok(())
    }
}

/// The identities of `dir`'s ancestors, up to the filesystem root.
fn ancestors(dir: &OwnedFd) -> io::Result<Vec<Inode>> {
    let mut found = Vec::new();
    let mut current = rustix::io::dup(dir)?;
    let mut current_id = inode(&current)?;
    // Bounded: a directory tree deeper than this cannot be walked by the kernel either.
    for _ in 0..4096 {
        let parent = rustix::fs::openat(
            &current,
            "..",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let parent_id = inode(&parent)?;
        if parent_id == current_id {
            return Ok(found);
        }
        found.push(parent_id);
        current = parent;
        current_id = parent_id;
    }
    Err(io::Error::from_raw_os_error(libc::ELOOP))
}

/// The directory a `.git` *file* (a worktree or submodule) points to with `gitdir: `.
fn gitdir_of(root: &Root) -> Option<PathBuf> {
    // Followed wherever it leads, as git does: a `.git` symlink to a gitdir file counts.
    let fd = rustix::fs::openat(
        &root.fd,
        ".git",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let file = std::fs::File::from(fd);
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    use std::io::Read;
    file.take(4096).read_to_string(&mut text).ok()?;
    let target = text.lines().next()?.strip_prefix("gitdir:")?.trim();
    let target = Path::new(target);
    Some(normalize(&if target.is_relative() {
        root.given.join(target)
    } else {
        target.to_path_buf()
    }))
}

/// Lexical normalization (`.` dropped, `..` pops), as the protocol does for request paths.
fn normalize(path: &Path) -> PathBuf {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_lexically() {
        assert_eq!(
            normalize(Path::new("/a/b/../c/./d")),
            PathBuf::from("/a/c/d")
        );
        assert_eq!(normalize(Path::new("/../x")), PathBuf::from("/x"));
    }

    #[test]
    fn denials_are_permission_denied() {
        let e = denied("because");
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert!(e.to_string().starts_with("Permission denied (os error 13)"));
    }
}
