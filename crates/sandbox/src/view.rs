//! The filesystem a sandboxed command sees, built by the launcher in its own mount namespace
//! (inside a user namespace, so no privilege is needed), before the command exists:
//!
//! 1. every mount becomes private and read-only (`mount_setattr`, recursively), with
//!    `nosuid`;
//! 2. `/dev` is replaced by a minimal one (null, zero, full, random, urandom, tty, a private
//!    `devpts` and `shm`), so no disk or other device is reachable;
//! 3. each writable root gets back a read-write (`nosuid`) copy of its mounts, taken before
//!    step 1;
//! 4. every directory between a writable root and something protected below it (a nested
//!    writable root, a carve-out, a denied or hidden path) is bound onto itself, so that it
//!    cannot be renamed or removed while the command runs: a name that leads to something
//!    protected keeps leading there;
//! 5. each read-only carve-out (`.git`, `.codex`, `.agents`, explicit `read` entries, and
//!    what a `.git` file makes git read) is bound read-only onto itself; a symlink is pinned
//!    in place too (a mount point cannot be removed or renamed), and what it leads to is
//!    protected;
//! 6. denied paths are covered by an empty, read-only, mode-000 directory or file;
//! 7. the server's secrets and its Unix socket are covered the same way.
//!
//! Paths are resolved component by component, from descriptors, without trusting anything
//! a sandboxed command could have changed: a symlink inside a writable tree on the way to a
//! root or a protected path refuses the launch (an earlier command may have planted it),
//! while symlinks elsewhere are followed. Every mount is made onto the descriptor that was
//! checked. Landlock, applied later to the command itself, adds what mounts cannot say:
//! restricted reads, and no mount changes at all from inside.

use crate::gitdir;
use crate::policy::ResolvedPolicy;
use rustix::fs::{self as rfs, Mode, OFlags, ResolveFlags};
use rustix::mount::{
    move_mount, open_tree, MountFlags, MountPropagationFlags, MoveMountFlags, OpenTreeFlags,
};
use std::collections::{HashSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Why the view could not be built; the start is refused and nothing runs.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// A system call failed.
    #[error("{what}: {source}")]
    Failed {
        what: String,
        #[source]
        source: io::Error,
    },
    /// The policy cannot be enforced as the disk stands (a symlink a sandboxed command could
    /// have planted, a denied path that does not exist in a writable tree).
    #[error("{0}")]
    Unenforceable(String),
}

fn failed(what: impl Into<String>) -> impl FnOnce(io::Error) -> ViewError {
    let what = what.into();
    move |source| ViewError::Failed { what, source }
}

fn errno(what: impl Into<String>) -> impl FnOnce(rustix::io::Errno) -> ViewError {
    let what = what.into();
    move |e| ViewError::Failed {
        what,
        source: e.into(),
    }
}

/// What the launcher must check after the command exits: protected paths that did not exist
/// and may not be created (a mount cannot cover a missing name), as physical paths.
#[derive(Debug, Default)]
pub struct BuiltView {
    pub uncreatable: Vec<PathBuf>,
}

/// The device nodes the minimal `/dev` has, bound from the real ones.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Where the masks' empty file is made, inside the new `/dev`, then unlinked.
const MASK_FILE: &str = "/dev/.exec-server-mask";

/// Most symlinks followed while resolving one path, as the kernel's limit.
const MAX_LINK_HOPS: usize = 40;

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;

/// `mount_setattr(2)`, which rustix does not wrap.
fn mount_setattr(dirfd: impl AsFd, path: &Path, recursive: bool, set: u64) -> io::Result<()> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= 0x8000; // AT_RECURSIVE
    }
    // SAFETY: a valid path string, a properly sized attribute struct, both live for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd.as_fd().as_raw_fd(),
            path.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The number of normal components: shallower mounts go first, so deeper ones land on top.
fn depth(path: &Path) -> usize {
    path.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count()
}

fn open_path(dir: impl AsFd, name: &OsStr) -> rustix::io::Result<OwnedFd> {
    rfs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn file_type(fd: impl AsFd) -> rustix::io::Result<rfs::FileType> {
    Ok(rfs::FileType::from_raw_mode(rfs::fstat(fd)?.st_mode))
}

/// Attaches the detached mount `tree` on the object `target` refers to.
fn attach(tree: &OwnedFd, target: &OwnedFd) -> rustix::io::Result<()> {
    move_mount(
        tree,
        "",
        target,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
}

/// A copy of whatever is at `target` (a directory tree with its mounts, a file, or a
/// symlink), read-only if `read_only`, attached on top of it.
fn bind_onto_itself(target: &OwnedFd, read_only: bool) -> io::Result<()> {
    let tree = open_tree(
        target,
        "",
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_RECURSIVE
            | OpenTreeFlags::AT_EMPTY_PATH,
    )?;
    if read_only {
        mount_setattr(&tree, Path::new(""), true, MOUNT_ATTR_RDONLY)?;
    }
    attach(&tree, target)?;
    Ok(())
}

/// Where a path led, looked up from descriptors.
enum Found {
    /// It exists: its physical path, and itself (open, not followed).
    Exists { path: PathBuf, object: OwnedFd },
    /// Its parent exists and it does not: its physical path.
    Missing { path: PathBuf },
    /// A directory on the way is missing: the first missing component's physical path.
    ParentMissing { first_missing: PathBuf },
}

/// Resolves paths in the view as it is being built, by the rule of this module: symlinks
/// outside the writable trees are followed, one inside a writable tree on the way refuses
/// the launch; directories between a writable root and the target are pinned (bound onto
/// themselves) when asked.
struct Resolver<'a> {
    /// The writable roots, as physical paths.
    writable: &'a [PathBuf],
    /// Directories already bound onto themselves, by physical path.
    pinned: HashSet<PathBuf>,
}

impl Resolver<'_> {
    /// The writable root `path` lies strictly below, if any.
    fn writable_tree_of(&self, path: &Path) -> Option<&Path> {
        self.writable
            .iter()
            .filter(|root| path.starts_with(root) && path != root.as_path())
            .max_by_key(|root| depth(root))
            .map(PathBuf::as_path)
    }

    /// Looks `path` up. Its last component is not followed; the ones before it are, unless
    /// they lie in a writable tree (then the launch is refused). With `pin`, every directory
    /// strictly between a writable root and the last component is bound onto itself first.
    fn find(&mut self, path: &Path, pin: bool) -> Result<Found, ViewError> {
        let mut pending: VecDeque<OsString> = path
            .components()
            .filter_map(|c| match c {
                Component::Normal(name) => Some(name.to_os_string()),
                Component::ParentDir => Some(OsString::from("..")),
                _ => None,
            })
            .collect();
        let mut dir = rfs::open(
            "/",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno("opening /"))?;
        let mut dir_path = PathBuf::from("/");
        let mut hops = 0;
        let Some(last) = pending.pop_back() else {
            return Err(ViewError::Unenforceable(
                "the root directory cannot be protected or masked".to_owned(),
            ));
        };
        while let Some(name) = pending.pop_front() {
            if name == ".." {
                dir_path.pop();
                dir = reopen(&dir_path)?;
                continue;
            }
            let here = dir_path.join(&name);
            let found = match open_path(&dir, &name) {
                Ok(fd) => fd,
                Err(rustix::io::Errno::NOENT) => {
                    return Ok(Found::ParentMissing {
                        first_missing: here,
                    })
                }
                Err(e) => return Err(errno(format!("looking up {}", here.display()))(e)),
            };
            match file_type(&found).map_err(errno(format!("inspecting {}", here.display())))? {
                rfs::FileType::Symlink => {
                    if let Some(root) = self.writable_tree_of(&here) {
                        return Err(ViewError::Unenforceable(format!(
                            "{} passes through the symlink {} inside the writable {}, which a \
                             sandboxed command could have planted; the launch was refused",
                            path.display(),
                            here.display(),
                            root.display()
                        )));
                    }
                    hops += 1;
                    if hops > MAX_LINK_HOPS {
                        return Err(ViewError::Unenforceable(format!(
                            "too many symlinks on the way to {}",
                            path.display()
                        )));
                    }
                    let target = rfs::readlinkat(&dir, &name, Vec::new())
                        .map_err(errno(format!("reading the link {}", here.display())))?;
                    let target = PathBuf::from(OsStr::from_bytes(target.as_bytes()));
                    if target.is_absolute() {
                        dir_path = PathBuf::from("/");
                        dir = reopen(&dir_path)?;
                    }
                    for part in target.components().rev() {
                        match part {
                            Component::Normal(n) => pending.push_front(n.to_os_string()),
                            Component::ParentDir => pending.push_front("..".into()),
                            _ => {}
                        }
                    }
                }
                rfs::FileType::Directory => {
                    let inside = self.writable_tree_of(&here).is_some();
                    if pin && inside && !self.pinned.contains(&here) {
                        bind_onto_itself(&found, false)
                            .map_err(failed(format!("pinning {}", here.display())))?;
                        self.pinned.insert(here.clone());
                    }
                    // Reopened by name, so that it is the mount now on top, if any.
                    dir = open_path(&dir, &name)
                        .map_err(errno(format!("reopening {}", here.display())))?;
                    dir_path = here;
                }
                _ => {
                    return Ok(Found::ParentMissing {
                        first_missing: here,
                    })
                }
            }
        }
        let path = dir_path.join(&last);
        match open_path(&dir, &last) {
            Ok(object) => Ok(Found::Exists { path, object }),
            Err(rustix::io::Errno::NOENT) => Ok(Found::Missing { path }),
            Err(e) => Err(errno(format!("looking up {}", path.display()))(e)),
        }
    }
}

fn reopen(physical: &Path) -> Result<OwnedFd, ViewError> {
    rfs::openat2(
        rfs::CWD,
        physical,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::NO_SYMLINKS,
    )
    .map_err(errno(format!("reopening {}", physical.display())))
}

/// The writable roots as physical paths, each checked by the resolver's rule against all
/// of them (a root reached through a symlink inside another root is refused). Missing
/// roots grant nothing and are left out.
fn physical_roots(given: &[PathBuf]) -> Result<Vec<(PathBuf, OwnedFd)>, ViewError> {
    let canonical: Vec<PathBuf> = given
        .iter()
        .filter_map(|r| std::fs::canonicalize(r).ok())
        .collect();
    let mut resolver = Resolver {
        writable: &canonical,
        pinned: HashSet::new(),
    };
    let mut roots: Vec<(PathBuf, OwnedFd)> = Vec::new();
    for root in given {
        if root == Path::new("/") {
            let fd = reopen(Path::new("/"))?;
            roots.push((PathBuf::from("/"), fd));
            continue;
        }
        let mut path = root.clone();
        let mut hops = 0;
        while let Found::Exists {
            object,
            path: found,
        } = resolver.find(&path, false)?
        {
            {
                {
                    match file_type(&object)
                        .map_err(errno(format!("inspecting {}", found.display())))?
                    {
                        rfs::FileType::Symlink => {
                            // The root itself is a link: followed, unless a sandboxed command
                            // could have made it.
                            if let Some(outer) = resolver.writable_tree_of(&found) {
                                return Err(ViewError::Unenforceable(format!(
                                    "the writable root {} is the symlink {} inside the writable \
                                     {}, which a sandboxed command could have planted; the \
                                     launch was refused",
                                    root.display(),
                                    found.display(),
                                    outer.display()
                                )));
                            }
                            hops += 1;
                            if hops > MAX_LINK_HOPS {
                                return Err(ViewError::Unenforceable(format!(
                                    "too many symlinks on the way to {}",
                                    root.display()
                                )));
                            }
                            let target = std::fs::read_link(&found)
                                .map_err(failed(format!("reading the link {}", found.display())))?;
                            path = found.parent().unwrap_or(Path::new("/")).join(target);
                        }
                        _ => {
                            if !roots.iter().any(|(p, _)| *p == found) {
                                roots.push((found, object));
                            }
                            break;
                        }
                    }
                }
            }
        }
    }
    roots.sort_by_key(|(p, _)| depth(p));
    Ok(roots)
}

/// Builds the view for `policy` (`None`: the whole disk stays as it is) and covers
/// `hidden`. Runs in the launcher, in its new mount namespace, as root of its new user
/// namespace.
pub fn build(
    policy: Option<&ResolvedPolicy>,
    hidden: &[PathBuf],
    tty: bool,
) -> Result<BuiltView, ViewError> {
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(errno("making the mounts private"))?;
    let Some(policy) = policy else {
        // The whole disk is writable; /sys stays out of reach still, and the secrets.
        mount_setattr(
            rfs::CWD,
            Path::new("/sys"),
            true,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID,
        )
        .map_err(failed("making /sys read-only"))?;
        let mut resolver = Resolver {
            writable: &[],
            pinned: HashSet::new(),
        };
        for path in hidden {
            cover(&mut resolver, path, Cover::Null)?;
        }
        return Ok(BuiltView::default());
    };

    let roots = physical_roots(&policy.writable_roots)?;
    let root_paths: Vec<PathBuf> = roots.iter().map(|(p, _)| p.clone()).collect();
    // Read-write copies of the outermost writable roots, taken while everything is still
    // writable (a root inside another is part of its copy).
    let mut copies: Vec<(&Path, &OwnedFd, OwnedFd)> = Vec::new();
    for (root, fd) in &roots {
        if copies.iter().any(|(outer, _, _)| root.starts_with(outer)) {
            continue;
        }
        let tree = open_tree(
            fd,
            "",
            OpenTreeFlags::OPEN_TREE_CLONE
                | OpenTreeFlags::OPEN_TREE_CLOEXEC
                | OpenTreeFlags::AT_RECURSIVE
                | OpenTreeFlags::AT_EMPTY_PATH,
        )
        .map_err(errno(format!("copying the mounts of {}", root.display())))?;
        mount_setattr(&tree, Path::new(""), true, MOUNT_ATTR_NOSUID)
            .map_err(failed(format!("making {} nosuid", root.display())))?;
        copies.push((root, fd, tree));
    }
    let devices = open_devices(tty)?;

    let whole_disk_writable = root_paths.iter().any(|r| r == Path::new("/"));
    if !whole_disk_writable {
        mount_setattr(
            rfs::CWD,
            Path::new("/"),
            true,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID,
        )
        .map_err(failed("making every mount read-only"))?;
    }
    minimal_dev(&devices)?;
    for (root, target, tree) in &copies {
        if *root == Path::new("/") {
            continue; // Never made read-only.
        }
        attach(tree, target).map_err(errno(format!("making {} writable again", root.display())))?;
    }

    let mut resolver = Resolver {
        writable: &root_paths,
        pinned: HashSet::new(),
    };
    // A root inside another cannot be renamed away (or replaced) while the command runs.
    let nested: Vec<PathBuf> = root_paths
        .iter()
        .filter(|r| resolver.writable_tree_of(r).is_some())
        .cloned()
        .collect();
    for root in &nested {
        if let Found::Exists { object, path, .. } = resolver.find(root, true)? {
            if file_type(&object).map_err(errno("inspecting a root"))? == rfs::FileType::Directory
                && resolver.pinned.insert(path.clone())
            {
                bind_onto_itself(&object, false)
                    .map_err(failed(format!("pinning {}", path.display())))?;
            }
        }
    }

    let mut view = BuiltView::default();
    let mut read_only = policy.read_only.clone();
    read_only.sort_by_key(|r| depth(&r.path));
    let mut protected = HashSet::new();
    for entry in &read_only {
        if entry.metadata && entry.path.file_name() == Some(OsStr::new(".git")) {
            protect_git(
                &mut resolver,
                &entry.path,
                entry.creatable_while_missing,
                &mut protected,
                &mut view,
            )?;
        } else {
            protect(
                &mut resolver,
                &entry.path,
                entry.creatable_while_missing,
                &mut protected,
                &mut view,
                0,
            )?;
        }
    }

    let mut denied = policy.denied.clone();
    denied.sort_by_key(|d| depth(d));
    for path in &denied {
        cover(&mut resolver, path, Cover::Deny)?;
    }
    for path in hidden {
        cover(&mut resolver, path, Cover::Mask)?;
    }
    finish_dev()?;
    Ok(view)
}

/// Makes `path` read-only. A missing path is recorded unless it may be created; a symlink
/// is pinned, and what it leads to is protected in turn (a few hops at most).
fn protect(
    resolver: &mut Resolver,
    path: &Path,
    creatable_while_missing: bool,
    protected: &mut HashSet<PathBuf>,
    view: &mut BuiltView,
    hops: usize,
) -> Result<(), ViewError> {
    match resolver.find(path, true)? {
        Found::Exists {
            path: physical,
            object,
            ..
        } => {
            if !protected.insert(physical.clone()) {
                return Ok(());
            }
            let kind =
                file_type(&object).map_err(errno(format!("inspecting {}", physical.display())))?;
            bind_onto_itself(&object, true)
                .map_err(failed(format!("making {} read-only", physical.display())))?;
            if kind == rfs::FileType::Symlink && hops < 8 {
                // The link itself can no longer be replaced; what it names must not change
                // either. (Where it points is resolved as the command would: physically.)
                if let Ok(next) = std::fs::canonicalize(&physical) {
                    if resolver.writable_tree_of(&next).is_some() {
                        protect(resolver, &next, true, protected, view, hops + 1)?;
                    }
                }
            }
        }
        Found::Missing { path: physical } => {
            if !creatable_while_missing {
                view.uncreatable.push(physical);
            }
        }
        Found::ParentMissing { first_missing } => {
            if !creatable_while_missing && resolver.writable_tree_of(&first_missing).is_some() {
                view.uncreatable.push(first_missing);
            }
        }
    }
    Ok(())
}

/// A protected `.git`: itself, and what it makes git read (a `gitdir:` file's git
/// directory, a worktree's common directory), as [`gitdir::protected_paths`] says.
fn protect_git(
    resolver: &mut Resolver,
    dot_git: &Path,
    creatable_while_missing: bool,
    protected: &mut HashSet<PathBuf>,
    view: &mut BuiltView,
) -> Result<(), ViewError> {
    protect(
        resolver,
        dot_git,
        creatable_while_missing,
        protected,
        view,
        0,
    )?;
    let git = gitdir::protected_paths(dot_git);
    for path in git.read_only.iter().chain(&git.git_dirs) {
        if resolver.writable_tree_of(path).is_some() {
            protect(resolver, path, true, protected, view, 0)?;
        }
    }
    for path in &git.must_not_create {
        if resolver.writable_tree_of(path).is_some() {
            view.uncreatable.push(path.clone());
        }
    }
    Ok(())
}

/// How to cover a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cover {
    /// A denied path: it must exist to be masked.
    Deny,
    /// A server secret: masked if it exists.
    Mask,
    /// A server secret when there is no view of our own: `/dev/null` over it.
    Null,
}

/// Covers an existing `path` with an empty, read-only, mode-000 directory or file (or
/// `/dev/null`).
fn cover(resolver: &mut Resolver, path: &Path, how: Cover) -> Result<(), ViewError> {
    let (physical, target) = match resolver.find(path, how != Cover::Null)? {
        Found::Exists { path, object, .. } => (path, object),
        Found::Missing { path: missing }
        | Found::ParentMissing {
            first_missing: missing,
        } => {
            if how == Cover::Deny && resolver.writable_tree_of(&missing).is_some() {
                return Err(ViewError::Unenforceable(format!(
                    "the denied path {} does not exist inside a writable root, so it cannot be \
                     masked and a command could create it; create it first or deny its parent",
                    path.display()
                )));
            }
            return Ok(());
        }
    };
    let kind = file_type(&target).map_err(errno(format!("inspecting {}", physical.display())))?;
    let source = if how == Cover::Null {
        "/dev/null"
    } else if kind == rfs::FileType::Directory {
        let proc_path = format!("/proc/self/fd/{}", target.as_raw_fd());
        return rustix::mount::mount(
            "tmpfs",
            proc_path.as_str(),
            "tmpfs",
            MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
            Some(c"mode=000,size=4k"),
        )
        .map_err(errno(format!(
            "masking the directory {}",
            physical.display()
        )));
    } else {
        MASK_FILE
    };
    let file = rfs::open(source, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
        .map_err(errno(format!("opening {source}")))?;
    let tree = open_tree(
        &file,
        "",
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_EMPTY_PATH,
    )
    .map_err(errno(format!("copying {source}")))?;
    attach(&tree, &target).map_err(errno(format!("covering {}", physical.display())))
}

/// The real device nodes the minimal `/dev` binds, opened (by path: a mount can only be
/// copied from this namespace, and descriptors opened before it existed are not in it)
/// before `/dev` is covered. With `tty`, the command's terminal too, as `console`: glibc's
/// `ttyname` finds it there when `/dev/pts` is the sandbox's own.
fn open_devices(tty: bool) -> Result<Vec<(&'static str, OwnedFd)>, ViewError> {
    let mut devices = Vec::new();
    if tty {
        let terminal = std::fs::read_link("/proc/self/fd/0")
            .map_err(failed("finding the command's terminal"))?;
        let fd = rfs::open(
            &terminal,
            OFlags::PATH | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        )
        .map_err(errno(format!("opening {}", terminal.display())))?;
        let (ours, found) = (
            rfs::fstat(std::io::stdin().as_fd()).map_err(errno("inspecting the terminal"))?,
            rfs::fstat(&fd).map_err(errno("inspecting the terminal"))?,
        );
        if ours.st_rdev != found.st_rdev {
            return Err(ViewError::Failed {
                what: format!("{} is not the command's terminal", terminal.display()),
                source: io::Error::from_raw_os_error(libc::ENOTTY),
            });
        }
        devices.push(("console", fd));
    }
    for name in DEVICES {
        let path = format!("/dev/{name}");
        match rfs::open(
            path.as_str(),
            OFlags::PATH | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        ) {
            Ok(fd) => devices.push((name, fd)),
            Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(errno(format!("opening {path}"))(e)),
        }
    }
    Ok(devices)
}

/// A fresh `/dev`: a tmpfs with the real null, zero, full, random, urandom and tty bound in,
/// a private `devpts` (so `/dev/ptmx` gives terminals of the sandbox's own), `shm`, the
/// usual symlinks, and the command's terminal as `/dev/console`.
fn minimal_dev(devices: &[(&'static str, OwnedFd)]) -> Result<(), ViewError> {
    rustix::mount::mount(
        "tmpfs",
        "/dev",
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NOEXEC,
        Some(c"mode=0755,size=1m"),
    )
    .map_err(errno("mounting a tmpfs on /dev"))?;
    let dev = rfs::open("/dev", OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(errno("opening the new /dev"))?;
    for (name, fd) in devices {
        bind_device(&dev, name, fd)?;
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        rfs::symlinkat(target, &dev, link).map_err(errno(format!("linking /dev/{link}")))?;
    }
    rfs::mkdirat(&dev, "pts", Mode::from_raw_mode(0o755)).map_err(errno("creating /dev/pts"))?;
    rustix::mount::mount(
        "devpts",
        "/dev/pts",
        "devpts",
        MountFlags::NOSUID | MountFlags::NOEXEC,
        Some(c"newinstance,ptmxmode=0666,mode=0620"),
    )
    .map_err(errno("mounting a private devpts"))?;
    rfs::mkdirat(&dev, "shm", Mode::from_raw_mode(0o1777)).map_err(errno("creating /dev/shm"))?;
    rustix::mount::mount(
        "tmpfs",
        "/dev/shm",
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        Some(c"mode=1777"),
    )
    .map_err(errno("mounting /dev/shm"))?;
    let mask = rfs::openat(
        &dev,
        OsStr::from_bytes(&MASK_FILE.as_bytes()[5..]),
        OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno("creating the mask file"))?;
    drop(mask);
    Ok(())
}

/// Binds the device `fd` refers to onto `/dev/<name>` (a new empty file).
fn bind_device(dev: &OwnedFd, name: &str, fd: &OwnedFd) -> Result<(), ViewError> {
    let file = rfs::openat(
        dev,
        name,
        OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o666),
    )
    .map_err(errno(format!("creating /dev/{name}")))?;
    drop(file);
    let target = open_path(dev, OsStr::new(name)).map_err(errno(format!("opening /dev/{name}")))?;
    let tree = open_tree(
        fd,
        "",
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_EMPTY_PATH,
    )
    .map_err(errno(format!("copying /dev/{name}")))?;
    attach(&tree, &target).map_err(errno(format!("binding /dev/{name}")))?;
    Ok(())
}

/// The mask file has been bound wherever it was needed: remove its name, and make `/dev`
/// itself read-only (its pts and shm stay writable).
fn finish_dev() -> Result<(), ViewError> {
    rfs::unlink(MASK_FILE).map_err(errno("removing the mask file"))?;
    mount_setattr(rfs::CWD, Path::new("/dev"), false, MOUNT_ATTR_RDONLY)
        .map_err(failed("making /dev read-only"))
}

/// The parts of `/proc` that change the whole machine, not the sandbox: kernel settings,
/// the magic SysRq key, interrupts, buses. They stay read-only whatever the policy (the
/// command's user may be the machine's root).
const PROC_READ_ONLY: [&str; 4] = ["sys", "sysrq-trigger", "irq", "bus"];

/// Mounts the pid namespace's own `/proc` (run by the namespace's first process), with its
/// machine-wide parts read-only. False when the kernel refuses (a container that masks parts
/// of its `/proc`): the host's stays, read-only, and Landlock's ptrace scoping keeps other
/// processes' memory and environment out of reach.
pub fn mount_private_proc() -> Result<bool, ViewError> {
    if rustix::mount::mount(
        "proc",
        "/proc",
        "proc",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        None,
    )
    .is_err()
    {
        return Ok(false);
    }
    let proc = rfs::open(
        "/proc",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno("opening the new /proc"))?;
    for name in PROC_READ_ONLY {
        match open_path(&proc, OsStr::new(name)) {
            Ok(fd) => bind_onto_itself(&fd, true)
                .map_err(failed(format!("making /proc/{name} read-only")))?,
            Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(errno(format!("opening /proc/{name}"))(e)),
        }
    }
    Ok(true)
}
