//! Layer 0, path discipline: every path the helper operates on is resolved from a root the
//! policy names, without leaving the policy's trees, and every access is checked against
//! what Landlock cannot express inside a granted tree: the policy's read-only paths
//! (`.git`, `.codex`, `.agents`, explicit `read` entries, and the git directories a `.git`
//! leads to) and its denied paths.
//!
//! Those are found once, when the helper starts, and held as identities (device, inode):
//! - **read-only**: objects that must not change, nor anything beneath them; a symlink on
//!   the way to one is read-only itself (swapping it would redirect the path);
//! - **denied**: objects nothing may read, list, stat or change, nor anything beneath them;
//! - **anchors**: every directory holding one of those, or a writable root, up to `/`. An
//!   anchor may not be removed, renamed or replaced: moving one would carry what it holds
//!   to a path the policy does not protect (and bring an unprotected tree to where it was);
//! - **not creatable**: for a protected path that is missing (and may not be created) the
//!   first missing component, as (parent directory, name). Names compare case-insensitively,
//!   as a case-folding filesystem would compare them.
//!
//! An operation then runs on `/proc/self/fd/<parent>/<name>`: the parent directory is pinned
//! by the descriptor that was checked, so swapping a path component for a symlink after the
//! check cannot redirect it; the last component is never followed implicitly (the helper
//! follows a final symlink itself, through the same checks). Entries an operation meets
//! below the paths it was given (a recursive copy) pass the same checks through
//! [`EntryGuard`].

use crate::gitdir::{self, End, Resolution, GIT_DIR_ENTRIES};
use crate::policy::{ReadOnlyPath, ResolvedPolicy};
use exec_server_environment::local::fs_ops::EntryGuard;
use rustix::fs::{openat2, AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};
use std::collections::{HashSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// A directory or file identity: (device, inode).
type Inode = (u64, u64);

/// Most symlinks followed while resolving one path, as the kernel's own limit.
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

fn leads_outside(path: &Path) -> io::Error {
    denied(format_args!(
        "{} leads outside the policy's roots",
        path.display()
    ))
}

/// openat2 reports a path that leaves its root as EXDEV, and a symlink it refused as ELOOP.
fn escape_is_denial(path: &Path) -> impl Fn(rustix::io::Errno) -> io::Error + '_ {
    move |errno| match errno {
        rustix::io::Errno::XDEV | rustix::io::Errno::LOOP => leads_outside(path),
        other => other.into(),
    }
}

const BENEATH: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_MAGICLINKS);

fn id(st: &Stat) -> Inode {
    (st.st_dev, st.st_ino)
}

fn inode(fd: impl AsFd) -> io::Result<Inode> {
    Ok(id(&rustix::fs::fstat(fd)?))
}

/// `fstat`'s file type.
fn file_type(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// A name as a case-insensitive filesystem could see it, for comparing names that must not
/// be created: on a case-folding directory (ext4 `casefold`, vfat, CIFS) `.GIT`, `.Git` or
/// `.gıt` would be found by a lookup of `.git`. Each character is case-mapped both ways
/// (which also folds `ſ` to `s` and the Kelvin sign to `k`), and characters that some
/// kernels ignore in folded names (default-ignorable code points) are dropped. Matching more
/// names than a given filesystem would only refuses more creations.
pub fn fold_name(name: &OsStr) -> Vec<u8> {
    match name.to_str() {
        Some(text) => text
            .chars()
            .filter(|c| !is_default_ignorable(*c))
            .flat_map(char::to_uppercase)
            .flat_map(char::to_lowercase)
            .collect::<String>()
            .into_bytes(),
        None => name.as_bytes().to_ascii_lowercase(),
    }
}

/// Unicode's Default_Ignorable_Code_Point ranges.
fn is_default_ignorable(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x034F | 0x061C | 0x115F..=0x1160 | 0x17B4..=0x17B5 | 0x180B..=0x180F
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F
        | 0xFEFF | 0xFFA0 | 0xFFF0..=0xFFF8 | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A
        | 0xE0000..=0xE0FFF)
}

/// A root of the policy, open.
struct Root {
    /// As the policy gave it.
    given: PathBuf,
    /// With symlinks resolved, so a request that names the real path of an aliased root
    /// still matches it.
    canonical: Option<PathBuf>,
    fd: OwnedFd,
    id: Inode,
}

impl Root {
    fn open(path: &Path) -> Option<Root> {
        // A file can be a readable root too.
        let fd = rustix::fs::open(path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).ok()?;
        let id = inode(&fd).ok()?;
        Some(Root {
            given: path.to_path_buf(),
            canonical: std::fs::canonicalize(path).ok(),
            fd,
            id,
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

    /// True when `path` names this root.
    fn is(&self, path: &Path) -> bool {
        self.given == path || self.canonical.as_deref() == Some(path)
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

    /// Where the kernel's `..` from this root leads: the parent of its real path.
    fn physical_parent(&self) -> PathBuf {
        let real = self.canonical.as_ref().unwrap_or(&self.given);
        real.parent().unwrap_or(Path::new("/")).to_path_buf()
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
fn containing<'p>(roots: &[Root], path: &'p Path) -> Option<(usize, &'p Path)> {
    roots
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.relative(path).map(|rel| (i, rel)))
        .min_by_key(|(_, rel)| rel.components().count())
}

/// The normal and `..` components of a path (`.` and the root dropped).
fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
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
    fn lstat(&self) -> io::Result<Option<Stat>> {
        match rustix::fs::statat(&self.parent, &self.name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// Where a step-by-step resolution stands.
enum Place {
    /// In the tree of `roots[root]`, at the directory `dir`.
    Inside { dir: OwnedFd, root: usize },
    /// At a directory above the roots, known only by this (lexical) path: never looked up,
    /// so nothing outside the roots is ever touched, and the outcome cannot tell what
    /// exists there.
    Above(PathBuf),
}

/// The identities this layer enforces (see the module documentation).
#[derive(Debug, Default)]
pub struct Guard {
    read_only: HashSet<Inode>,
    /// The symlinks among `read_only`: a write never goes through one. (Their targets are
    /// read-only too, except a directory that is or holds a writable root; the root stays
    /// writable by its own path, not through the protected name.)
    links: HashSet<Inode>,
    denied: HashSet<Inode>,
    anchors: HashSet<Inode>,
    not_creatable: HashSet<(Inode, Vec<u8>)>,
    /// The writable roots and every directory above them.
    roots_and_above: HashSet<Inode>,
}

impl Guard {
    fn refuse_denied(&self, st: &Stat, path: &Path) -> io::Result<()> {
        if self.denied.contains(&id(st)) {
            return Err(denied(format_args!(
                "{} is denied by the policy",
                path.display()
            )));
        }
        Ok(())
    }

    fn refuse_read_only(&self, st: &Stat, path: &Path) -> io::Result<()> {
        self.refuse_denied(st, path)?;
        if self.read_only.contains(&id(st)) {
            return Err(denied(format_args!(
                "{} is read-only under the policy",
                path.display()
            )));
        }
        Ok(())
    }

    fn refuse_creation(&self, dir: BorrowedFd<'_>, name: &OsStr, path: &Path) -> io::Result<()> {
        if self.not_creatable.is_empty() {
            return Ok(());
        }
        if self.not_creatable.contains(&(inode(dir)?, fold_name(name))) {
            return Err(denied(format_args!(
                "{} is protected by the policy and must not be created",
                path.display()
            )));
        }
        Ok(())
    }

    /// Refuses `dir` when it, or a directory above it, is read-only (with `read_only`) or
    /// denied.
    fn refuse_within(&self, dir: &OwnedFd, read_only: bool, path: &Path) -> io::Result<()> {
        if self.denied.is_empty() && (!read_only || self.read_only.is_empty()) {
            return Ok(());
        }
        for ancestor in std::iter::once(inode(dir)).chain(Ancestors::of(dir)?) {
            let ancestor = ancestor?;
            if self.denied.contains(&ancestor) {
                return Err(denied(format_args!(
                    "{} is inside a path the policy denies",
                    path.display()
                )));
            }
            if read_only && self.read_only.contains(&ancestor) {
                return Err(denied(format_args!(
                    "{} is inside a read-only path of the policy",
                    path.display()
                )));
            }
        }
        Ok(())
    }

    /// Adds the directory `parent` and every directory above it as anchors.
    fn anchor_from(&mut self, parent: &Path) {
        let Ok(dir) = rustix::fs::open(
            parent,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            return;
        };
        let Ok(first) = inode(&dir) else {
            return;
        };
        if !self.anchors.insert(first) {
            return;
        }
        let Ok(chain) = Ancestors::of(&dir) else {
            return;
        };
        for ancestor in chain {
            match ancestor {
                // Already there: so is everything above it.
                Ok(ancestor) if self.anchors.insert(ancestor) => {}
                _ => return,
            }
        }
    }

    /// Keeps the path itself (not followed) read-only, or denied.
    fn keep(&mut self, path: &Path, deny: bool) {
        if let Ok(st) = rustix::fs::lstat(path) {
            if deny {
                self.denied.insert(id(&st));
            } else {
                self.read_only.insert(id(&st));
                if file_type(&st) == FileType::Symlink {
                    self.links.insert(id(&st));
                }
            }
            if let Some(parent) = path.parent() {
                self.anchor_from(parent);
            }
        }
    }

    /// Refuses creating the (missing) `path`.
    fn forbid_creating(&mut self, path: &Path) {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return;
        };
        if let Ok(dir) = rustix::fs::open(
            parent,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            if let Ok(parent_id) = inode(&dir) {
                self.not_creatable.insert((parent_id, fold_name(name)));
                self.anchor_from(parent);
            }
        }
    }

    /// True when the directory at `path` is a writable root or holds one.
    fn holds_a_root(&self, path: &Path) -> bool {
        rustix::fs::stat(path).is_ok_and(|st| self.roots_and_above.contains(&id(&st)))
    }

    /// Protects what `resolution` reached from a protected (or denied) entry: every link on
    /// the way, and the object at the end (or its first missing component).
    ///
    /// A directory that is, or holds, a writable root is not made read-only as a whole:
    /// that would forbid every write in the root, and anyone who can write a shared root
    /// such as `/tmp` could use a `.codex -> /` link to stop every sandboxed write. Only
    /// the entry and its links are kept then, and writes never go through those links (a
    /// git directory gets its git entries kept, by the caller).
    fn protect_resolution(&mut self, resolution: Resolution, deny: bool) {
        for link in &resolution.links {
            self.keep(link, false);
        }
        match resolution.end {
            End::Exists { path, is_dir } => {
                if deny || !(is_dir && self.holds_a_root(&path)) {
                    // Followed: the object itself, whatever name reaches it.
                    if let Ok(st) = rustix::fs::stat(&path) {
                        if deny {
                            self.denied.insert(id(&st));
                        } else {
                            self.read_only.insert(id(&st));
                        }
                    }
                    if let Some(parent) = path.parent() {
                        self.anchor_from(parent);
                    }
                }
            }
            End::Missing { first_missing } => self.forbid_creating(&first_missing),
            End::Blocked { at } => self.keep(&at, false),
            End::Unresolvable => {}
        }
    }

    fn protect_read_only(&mut self, entry: &ReadOnlyPath) {
        let exists = rustix::fs::lstat(&entry.path).is_ok();
        if !exists && entry.creatable_while_missing {
            return;
        }
        if exists {
            self.keep(&entry.path, false);
        }
        self.protect_resolution(gitdir::resolve_physically(&entry.path), false);
        if entry.metadata && entry.path.file_name() == Some(OsStr::new(".git")) {
            self.protect_git(&entry.path);
        }
    }

    /// What the `.git` entry at `dot_git` leads git to ([`gitdir::protected_paths`]).
    fn protect_git(&mut self, dot_git: &Path) {
        let git = gitdir::protected_paths(dot_git);
        for path in &git.read_only {
            self.keep(path, false);
        }
        for path in &git.must_not_create {
            self.forbid_creating(path);
        }
        for dir in &git.git_dirs {
            if self.holds_a_root(dir) {
                for name in GIT_DIR_ENTRIES {
                    let entry = dir.join(name);
                    if rustix::fs::lstat(&entry).is_ok() {
                        self.keep(&entry, false);
                        self.protect_resolution(gitdir::resolve_physically(&entry), false);
                    } else {
                        self.forbid_creating(&entry);
                    }
                }
            } else if let Ok(st) = rustix::fs::stat(dir) {
                self.read_only.insert(id(&st));
                if let Some(parent) = dir.parent() {
                    self.anchor_from(parent);
                }
            }
        }
    }

    fn protect_denied(&mut self, path: &Path) {
        self.keep(path, true);
        let resolution = gitdir::resolve_physically(path);
        // Links on the way to a denied path are not the denied thing itself.
        self.protect_resolution(
            Resolution {
                links: Vec::new(),
                end: resolution.end,
            },
            true,
        );
    }
}

impl EntryGuard for Guard {
    fn check_source(&self, st: &Stat) -> io::Result<()> {
        self.refuse_denied(st, Path::new("an entry of the copied tree"))
    }

    fn check_existing(&self, st: &Stat) -> io::Result<()> {
        self.refuse_read_only(st, Path::new("an existing entry of the destination"))
    }

    fn check_new(&self, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
        self.refuse_creation(dir, name, Path::new(name))
    }
}

/// The identities of a directory's ancestors, up to the filesystem root (walked through
/// `..`, so the kernel's view, not a path's).
struct Ancestors {
    current: Option<OwnedFd>,
    current_id: Inode,
    steps: usize,
}

impl Ancestors {
    fn of(dir: &OwnedFd) -> io::Result<Ancestors> {
        Ok(Ancestors {
            current: Some(rustix::io::dup(dir)?),
            current_id: inode(dir)?,
            steps: 0,
        })
    }
}

impl Iterator for Ancestors {
    type Item = io::Result<Inode>;

    fn next(&mut self) -> Option<io::Result<Inode>> {
        let current = self.current.take()?;
        // Bounded: a directory tree deeper than this cannot be walked by the kernel either.
        self.steps += 1;
        if self.steps > 4096 {
            return Some(Err(io::Error::from_raw_os_error(libc::ELOOP)));
        }
        let parent = match rustix::fs::openat(
            &current,
            "..",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(parent) => parent,
            Err(e) => return Some(Err(e.into())),
        };
        let parent_id = match inode(&parent) {
            Ok(id) => id,
            Err(e) => return Some(Err(e)),
        };
        if parent_id == self.current_id {
            return None;
        }
        self.current = Some(parent);
        self.current_id = parent_id;
        Some(Ok(parent_id))
    }
}

/// The policy's roots, opened, and the identities it protects.
pub struct Confinement {
    writable: Vec<Root>,
    /// `None`: everything is readable and nothing is denied. Otherwise reads are resolved
    /// from these roots: the readable roots and the writable ones, or `/` when only some
    /// paths are denied.
    readable: Option<Vec<Root>>,
    /// Resolve step by step (never letting the kernel walk outside the roots or through a
    /// denied directory), because a failure's nature would otherwise tell a reader about
    /// what it may not see.
    careful: bool,
    guard: Guard,
}

/// What a path is resolved for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Read,
    /// A mutation: never through a protected symlink.
    Write,
}

impl Confinement {
    /// Opens the roots of `policy` and finds what it protects. Roots that do not exist are
    /// left out (Landlock grants nothing there either).
    pub fn new(policy: &ResolvedPolicy) -> io::Result<Confinement> {
        let writable: Vec<Root> = policy
            .writable_roots
            .iter()
            .filter_map(|r| Root::open(r))
            .collect();
        let readable = match &policy.readable_roots {
            Some(roots) => Some(
                roots
                    .iter()
                    .chain(&policy.writable_roots)
                    .filter_map(|r| Root::open(r))
                    .collect(),
            ),
            None if !policy.denied.is_empty() => {
                Some(Root::open(Path::new("/")).into_iter().collect())
            }
            None => None,
        };
        let mut guard = Guard::default();
        for root in &writable {
            guard.roots_and_above.insert(root.id);
            for ancestor in Ancestors::of(&root.fd)? {
                guard.roots_and_above.insert(ancestor?);
            }
        }
        guard.anchors = guard.roots_and_above.clone();
        for entry in &policy.read_only {
            guard.protect_read_only(entry);
        }
        for path in &policy.denied {
            guard.protect_denied(path);
        }
        Ok(Confinement {
            writable,
            readable,
            careful: policy.readable_roots.is_some() || !policy.denied.is_empty(),
            guard,
        })
    }

    /// What a recursive operation checks every entry against.
    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// Opens `rel` beneath `roots[start]`, with `flags`, following a final symlink when
    /// `follow`; the result lies under one of `roots`.
    #[allow(clippy::too_many_arguments)]
    fn open_beneath(
        &self,
        roots: &[Root],
        start: usize,
        rel: &Path,
        flags: OFlags,
        follow: bool,
        purpose: Purpose,
        whole: &Path,
    ) -> io::Result<OwnedFd> {
        let root = &roots[start];
        let flags = flags | OFlags::PATH | OFlags::CLOEXEC;
        if rel.as_os_str().is_empty() {
            // The root itself, which may be a file (so not `openat(root, ".")`).
            return Ok(rustix::fs::open(
                fd_path(&root.fd, None),
                flags,
                Mode::empty(),
            )?);
        }
        let nofollow = if follow {
            OFlags::empty()
        } else {
            OFlags::NOFOLLOW
        };
        // With denied paths, not even one kernel walk: it could pass through a denied
        // directory (`l -> denied/x/../../pub` succeeds exactly when `denied/x` exists).
        // Nor for a write when there are protected links: the kernel would not say whether
        // it went through one.
        if !self.guard.denied.is_empty()
            || (purpose == Purpose::Write && !self.guard.links.is_empty())
        {
            return self.walk(roots, start, rel, flags, follow, purpose, whole);
        }
        match openat2(&root.fd, rel, flags | nofollow, Mode::empty(), BENEATH) {
            Ok(fd) => Ok(fd),
            Err(rustix::io::Errno::XDEV) if self.careful => {
                self.walk(roots, start, rel, flags, follow, purpose, whole)
            }
            // An absolute symlink (BENEATH refuses every one, even one that points back
            // inside) or a relative one that leaves the root for another root: the kernel
            // resolves the path normally, without magic links, and the descriptor's real
            // location must be under one of the roots. Reads are not restricted here, so
            // what the kernel's walk could reveal is readable anyway.
            Err(rustix::io::Errno::XDEV) => {
                let fd = openat2(
                    &root.fd,
                    rel,
                    flags | nofollow,
                    Mode::empty(),
                    ResolveFlags::NO_MAGICLINKS,
                )
                .map_err(|_| leads_outside(whole))?;
                let landed =
                    std::fs::read_link(fd_path(&fd, None)).map_err(|_| leads_outside(whole))?;
                if landed.is_absolute() && roots.iter().any(|r| r.holds(&landed)) {
                    Ok(fd)
                } else {
                    Err(leads_outside(whole))
                }
            }
            Err(e) => Err(escape_is_denial(whole)(e)),
        }
    }

    /// Resolves `rel` beneath `roots[start]` one component at a time. Inside a root each
    /// component is looked up without following it, checked against the denied paths, and
    /// a symlink is followed by reading it; `..` at the top of a root, and absolute
    /// symlinks, leave the roots for lexical positions above them, which are never looked
    /// up: from there a path may only lead back into a root.
    #[allow(clippy::too_many_arguments)]
    fn walk(
        &self,
        roots: &[Root],
        start: usize,
        rel: &Path,
        flags: OFlags,
        follow: bool,
        purpose: Purpose,
        whole: &Path,
    ) -> io::Result<OwnedFd> {
        let mut place = Place::Inside {
            dir: rustix::io::dup(&roots[start].fd)?,
            root: start,
        };
        let mut pending = components(rel);
        let mut hops = 0;
        while let Some(name) = pending.pop_front() {
            place = match place {
                Place::Above(path) => {
                    let next = if name == ".." {
                        path.parent().unwrap_or(Path::new("/")).to_path_buf()
                    } else {
                        path.join(&name)
                    };
                    enter(roots, next, whole)?
                }
                Place::Inside { dir, root } if name == ".." => {
                    if inode(&dir)? == roots[root].id {
                        enter(roots, roots[root].physical_parent(), whole)?
                    } else {
                        let parent = rustix::fs::openat(
                            &dir,
                            "..",
                            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                            Mode::empty(),
                        )?;
                        Place::Inside { dir: parent, root }
                    }
                }
                Place::Inside { dir, root } => {
                    let child = rustix::fs::openat(
                        &dir,
                        &name,
                        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )?;
                    let st = rustix::fs::fstat(&child)?;
                    self.guard.refuse_denied(&st, whole)?;
                    let is_link = file_type(&st) == FileType::Symlink;
                    if is_link && (follow || !pending.is_empty()) {
                        if purpose == Purpose::Write && self.guard.links.contains(&id(&st)) {
                            return Err(denied(format_args!(
                                "{} goes through a protected link",
                                whole.display()
                            )));
                        }
                        hops += 1;
                        if hops > MAX_LINK_HOPS {
                            return Err(io::Error::from_raw_os_error(libc::ELOOP));
                        }
                        let target = rustix::fs::readlinkat(&child, "", Vec::new())?;
                        let target = Path::new(OsStr::from_bytes(target.as_bytes()));
                        for part in components(target).into_iter().rev() {
                            pending.push_front(part);
                        }
                        if target.is_absolute() {
                            enter(roots, PathBuf::from("/"), whole)?
                        } else {
                            Place::Inside { dir, root }
                        }
                    } else {
                        Place::Inside { dir: child, root }
                    }
                }
            };
        }
        let Place::Inside { dir, .. } = place else {
            return Err(leads_outside(whole));
        };
        if flags.contains(OFlags::DIRECTORY)
            && file_type(&rustix::fs::fstat(&dir)?) != FileType::Directory
        {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        Ok(dir)
    }

    /// A path to read: under the readable roots when reads are restricted (following a
    /// final symlink only when `follow`, and only to where the policy lets it read),
    /// anywhere otherwise but through a `/proc` magic link; never a denied path, nor another
    /// process's `/proc` entries.
    pub fn readable(&self, path: &Path, follow: bool) -> io::Result<Confined> {
        let (dir, name) = match &self.readable {
            None => open_anywhere(path, follow)?,
            Some(roots) => {
                let (root, rel) = containing(roots, path).ok_or_else(|| {
                    denied(format_args!(
                        "{} is outside the readable roots",
                        path.display()
                    ))
                })?;
                match (follow, rel.file_name(), rel.parent()) {
                    (false, Some(name), Some(parent)) => {
                        let dir = self.open_beneath(
                            roots,
                            root,
                            parent,
                            OFlags::DIRECTORY,
                            true,
                            Purpose::Read,
                            path,
                        )?;
                        self.guard.refuse_within(&dir, false, path)?;
                        match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                            Ok(st) => self.guard.refuse_denied(&st, path)?,
                            Err(rustix::io::Errno::NOENT) => {}
                            Err(e) => return Err(e.into()),
                        }
                        (dir, Some(name.to_os_string()))
                    }
                    _ => {
                        let fd = self.open_beneath(
                            roots,
                            root,
                            rel,
                            OFlags::empty(),
                            true,
                            Purpose::Read,
                            path,
                        )?;
                        self.guard.refuse_within(&fd, false, path)?;
                        (fd, None)
                    }
                }
            }
        };
        refuse_other_process(&dir, path)?;
        if let Some(name) = &name {
            if let Ok(entry) = rustix::fs::openat(
                &dir,
                name,
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                refuse_other_process(&entry, path)?;
            }
        }
        Ok(Confined::pinned(dir, name.as_deref()))
    }

    /// What a symlink at `path` points to, when reads are confined: only a target the
    /// policy lets the helper read can be described.
    pub fn readable_target(&self, path: &Path) -> io::Result<std::fs::Metadata> {
        let target = self.readable(path, true)?;
        std::fs::metadata(target.path())
    }

    /// True when the directory entry is denied (and so left out of listings).
    pub fn is_denied_entry(&self, entry: &std::fs::DirEntry) -> bool {
        use std::os::unix::fs::MetadataExt;
        !self.guard.denied.is_empty()
            && entry
                .metadata()
                .is_ok_and(|m| self.guard.denied.contains(&(m.dev(), m.ino())))
    }

    /// True when reads are resolved and checked (restricted to roots, or with denied paths):
    /// a symlink's target is then described only when it may be read.
    pub fn reads_confined(&self) -> bool {
        self.readable.is_some()
    }

    /// True when `path` is a writable root or one of its ancestors.
    pub fn is_writable_root_or_above(&self, path: &Path) -> bool {
        self.writable.iter().any(|r| r.is_at_or_below(path))
    }

    /// True when `path` is a writable root (as given, or its real path).
    pub fn is_writable_root(&self, path: &Path) -> bool {
        self.writable.iter().any(|r| r.is(path))
    }

    /// The target of a mutation at `path`: under a writable root, not the root itself, and
    /// with a parent that is neither (beneath) a read-only path nor a denied one. What the
    /// mutation does to the target itself is checked by [`check_writable`],
    /// [`check_creatable`] or [`check_replaceable`].
    ///
    /// [`check_writable`]: Self::check_writable
    /// [`check_creatable`]: Self::check_creatable
    /// [`check_replaceable`]: Self::check_replaceable
    pub fn writable(&self, path: &Path) -> io::Result<WriteTarget> {
        let (root, rel) = containing(&self.writable, path).ok_or_else(|| {
            denied(format_args!(
                "{} is outside the writable roots",
                path.display()
            ))
        })?;
        let Some(name) = rel.file_name() else {
            return Err(denied(format_args!(
                "{} is a writable root itself",
                path.display()
            )));
        };
        let parent = self.open_beneath(
            &self.writable,
            root,
            rel.parent().unwrap_or(Path::new("")),
            OFlags::DIRECTORY,
            true,
            Purpose::Write,
            path,
        )?;
        self.guard.refuse_within(&parent, true, path)?;
        refuse_other_process(&parent, path)?;
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
            if file_type(&st) != FileType::Symlink {
                return Ok(target);
            }
            if self.guard.links.contains(&id(&st)) {
                return Err(denied(format_args!(
                    "{} is a protected link",
                    target.lexical.display()
                )));
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

    /// A mutation that writes into the target or creates it (write, copy onto): an existing
    /// target must not be read-only or denied, a missing one must be creatable.
    pub fn check_writable(&self, target: &WriteTarget) -> io::Result<()> {
        match target.lstat()? {
            Some(st) => self.guard.refuse_read_only(&st, &target.lexical),
            None => self.check_creatable(target),
        }
    }

    /// A mutation that creates the target (mkdir, the destination of a rename): the policy
    /// must not forbid creating it.
    pub fn check_creatable(&self, target: &WriteTarget) -> io::Result<()> {
        self.guard
            .refuse_creation(target.parent.as_fd(), &target.name, &target.lexical)
    }

    /// A mutation that removes or replaces the target itself (remove, rename): it must not
    /// be read-only, denied, or hold something protected (an anchor). A missing target
    /// passes (removing it fails as not found; creating it is [`check_creatable`]'s).
    ///
    /// [`check_creatable`]: Self::check_creatable
    pub fn check_replaceable(&self, target: &WriteTarget) -> io::Result<()> {
        let Some(st) = target.lstat()? else {
            return Ok(());
        };
        self.guard.refuse_read_only(&st, &target.lexical)?;
        if self.guard.anchors.contains(&id(&st)) {
            return Err(denied(format_args!(
                "{} holds a path the policy protects, or a writable root",
                target.lexical.display()
            )));
        }
        Ok(())
    }

    /// `mkdir -p path`, one component at a time from the root that holds it: each existing
    /// directory is entered without following it (a symlink is resolved again from the
    /// root, through every check), each missing one is created only where the policy
    /// allows it, and nothing is created inside a read-only or denied directory. Linear in
    /// the path's length.
    pub fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        if self.is_writable_root_or_above(path) {
            // It exists (or, for a missing root, nothing may be created there).
            return Ok(());
        }
        let (root, rel) = containing(&self.writable, path).ok_or_else(|| {
            denied(format_args!(
                "{} is outside the writable roots",
                path.display()
            ))
        })?;
        let names: Vec<&OsStr> = rel.iter().collect();
        let mut dir = rustix::io::dup(&self.writable[root].fd)?;
        self.guard.refuse_within(&dir, true, path)?;
        let mut prefix = self.writable[root].given.clone();
        for (i, name) in names.iter().enumerate() {
            prefix.push(name);
            let last = i + 1 == names.len();
            let existing = match rustix::fs::statat(&dir, *name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => Some(st),
                Err(rustix::io::Errno::NOENT) => None,
                Err(e) => return Err(e.into()),
            };
            let st = match existing {
                Some(st) => st,
                None => {
                    self.guard.refuse_creation(dir.as_fd(), name, &prefix)?;
                    match rustix::fs::mkdirat(&dir, *name, Mode::from_raw_mode(0o777)) {
                        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    rustix::fs::statat(&dir, *name, AtFlags::SYMLINK_NOFOLLOW)?
                }
            };
            dir = match file_type(&st) {
                FileType::Directory => {
                    let next = rustix::fs::openat(
                        &dir,
                        *name,
                        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )?;
                    let next_st = rustix::fs::fstat(&next)?;
                    self.guard.refuse_denied(&next_st, &prefix)?;
                    if !last {
                        self.guard.refuse_read_only(&next_st, &prefix)?;
                    }
                    next
                }
                // Resolved again from the root, through every check.
                FileType::Symlink => {
                    match self.open_beneath(
                        &self.writable,
                        root,
                        &rel.iter().take(i + 1).collect::<PathBuf>(),
                        OFlags::DIRECTORY,
                        true,
                        Purpose::Write,
                        &prefix,
                    ) {
                        Ok(next) => {
                            if !last {
                                self.guard.refuse_within(&next, true, &prefix)?;
                            }
                            next
                        }
                        // At the end, a link to somewhere this policy does not reach is
                        // just something that exists.
                        Err(e) if last && e.kind() != io::ErrorKind::NotFound => {
                            return Err(io::Error::from_raw_os_error(libc::EEXIST))
                        }
                        Err(e) => return Err(e),
                    }
                }
                _ if last => return Err(io::Error::from_raw_os_error(libc::EEXIST)),
                _ => return Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
            };
        }
        Ok(())
    }
}

/// Opens `path` (its parent, when not `follow`ing a final symlink) where reads are not
/// restricted: anywhere, but never through a `/proc` magic link (`/proc/<pid>/root`, `cwd`,
/// `fd/N`), which would lead into another process's view of the filesystem.
fn open_anywhere(path: &Path, follow: bool) -> io::Result<(OwnedFd, Option<OsString>)> {
    let open = |path: &Path, flags: OFlags| {
        openat2(
            rustix::fs::CWD,
            path,
            flags | OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(|e| match e {
            rustix::io::Errno::LOOP => denied(format_args!(
                "{} goes through a /proc magic link, or loops",
                path.display()
            )),
            other => other.into(),
        })
    };
    match (follow, path.file_name(), path.parent()) {
        (false, Some(name), Some(parent)) => {
            Ok((open(parent, OFlags::DIRECTORY)?, Some(name.to_os_string())))
        }
        _ => Ok((open(path, OFlags::empty())?, None)),
    }
}

/// The filesystem type of procfs (`PROC_SUPER_MAGIC`).
const PROC_SUPER_MAGIC: u64 = 0x9fa0;

fn is_procfs(st: &rustix::fs::StatFs) -> bool {
    st.f_type as u64 == PROC_SUPER_MAGIC
}

/// Refuses what lies in another process's `/proc/<pid>` directory. Landlock lets a sandboxed
/// reader see, for instance, the server's `environ` (which can hold its token); codex's
/// helper runs in a pid namespace of its own and sees no other process there. The helper's
/// own entries stay readable.
fn refuse_other_process(fd: &OwnedFd, path: &Path) -> io::Result<()> {
    if !is_procfs(&rustix::fs::fstatfs(fd)?) {
        return Ok(());
    }
    let location = std::fs::read_link(fd_path(fd, None))?;
    // The mount point of this procfs: the highest ancestor still on it.
    let mount = location
        .ancestors()
        .take_while(|a| rustix::fs::statfs(*a).is_ok_and(|st| is_procfs(&st)))
        .last();
    let first = mount
        .and_then(|m| location.strip_prefix(m).ok())
        .and_then(|rel| rel.components().next());
    if let Some(Component::Normal(name)) = first {
        let is_pid = name
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
        if is_pid && name.to_str() != Some(&std::process::id().to_string()) {
            return Err(denied(format_args!(
                "{} belongs to another process",
                path.display()
            )));
        }
    }
    Ok(())
}

/// The place at the lexical `path`, which lies at or above the roots: a root it names, a
/// directory inside a root it reached back into (after `..` from a root nested in another),
/// still above the roots when it leads toward one, else outside.
fn enter(roots: &[Root], path: PathBuf, whole: &Path) -> io::Result<Place> {
    if let Some(root) = roots.iter().position(|r| r.is(&path)) {
        return Ok(Place::Inside {
            dir: rustix::io::dup(&roots[root].fd)?,
            root,
        });
    }
    if let Some((root, rel)) = containing(roots, &path) {
        // A physical path (a root's real parent), so it has no symlinks to follow.
        let dir = openat2(
            &roots[root].fd,
            rel,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            BENEATH | ResolveFlags::NO_SYMLINKS,
        )
        .map_err(|_| leads_outside(whole))?;
        return Ok(Place::Inside { dir, root });
    }
    if roots.iter().any(|r| r.is_at_or_below(&path)) {
        return Ok(Place::Above(path));
    }
    Err(leads_outside(whole))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denials_are_permission_denied() {
        let e = denied("because");
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert!(e.to_string().starts_with("Permission denied (os error 13)"));
    }

    #[test]
    fn names_fold_as_a_case_insensitive_filesystem_could() {
        let git = fold_name(OsStr::new(".git"));
        for same in [".GIT", ".Git", ".g\u{200B}it", ".gıt"] {
            assert_eq!(fold_name(OsStr::new(same)), git, "{same}");
        }
        assert_eq!(
            fold_name(OsStr::new(".agentſ")),
            fold_name(OsStr::new(".agents"))
        );
        assert_eq!(
            fold_name(OsStr::new("\u{212A}")),
            fold_name(OsStr::new("k"))
        );
        assert_ne!(fold_name(OsStr::new(".gitx")), git);
        assert_eq!(
            fold_name(OsStr::from_bytes(b".G\xffT")),
            b".g\xfft".to_vec()
        );
    }
}
