//! The filesystem a sandboxed command sees, built by the launcher in its own mount namespace
//! (inside a user namespace, so no privilege is needed), before the command exists:
//!
//! 1. every mount becomes private and read-only (`mount_setattr`, recursively), with
//!    `nosuid`;
//! 2. `/dev` is replaced by a minimal one (null, zero, full, random, urandom, tty, a private
//!    `devpts` and `shm`), so no disk or other device is reachable;
//! 3. each writable root gets back a read-write copy of its mounts, taken before step 1;
//! 4. each read-only carve-out inside them (`.git`, `.codex`, `.agents`, explicit `read`
//!    entries) is bound read-only onto itself; a symlink is pinned in place too (a mount
//!    point cannot be removed or renamed), and the directory it leads to is protected;
//! 5. denied paths are covered by an empty, read-only, mode-000 directory or file;
//! 6. the server's secrets and its Unix socket are covered the same way.
//!
//! Targets are opened without following symlinks (the paths were made physical first), so a
//! symlink planted while the view is built makes the launch fail instead of redirecting a
//! mount. Landlock, applied later to the command itself, adds what mounts cannot say:
//! restricted reads, and no mount changes at all from inside.

use crate::policy::ResolvedPolicy;
use rustix::fs::{self as rfs, Mode, OFlags, ResolveFlags};
use rustix::mount::{
    move_mount, open_tree, MountFlags, MountPropagationFlags, MoveMountFlags, OpenTreeFlags,
};
use std::collections::HashSet;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Why the view could not be built; the start is refused and nothing runs.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct ViewError {
    pub what: String,
    #[source]
    pub source: io::Error,
}

fn failed(what: impl Into<String>) -> impl FnOnce(io::Error) -> ViewError {
    let what = what.into();
    move |source| ViewError { what, source }
}

fn errno(what: impl Into<String>) -> impl FnOnce(rustix::io::Errno) -> ViewError {
    let what = what.into();
    move |e| ViewError {
        what,
        source: e.into(),
    }
}

/// What the launcher must check after the command exits: protected paths that did not exist
/// and may not be created (a mount cannot cover a missing name).
#[derive(Debug, Default)]
pub struct BuiltView {
    pub uncreatable: Vec<PathBuf>,
}

/// The device nodes the minimal `/dev` has, bound from the real ones.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Where the masks' empty file is made, inside the new `/dev`, then unlinked.
const MASK_FILE: &str = "/dev/.exec-server-mask";

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

/// `path` with every symlink in its directories resolved, its last component kept as is (a
/// protected symlink is protected as a symlink). `None` when a directory is missing.
fn physical(path: &Path) -> Option<PathBuf> {
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => Some(std::fs::canonicalize(parent).ok()?.join(name)),
        _ => Some(path.to_path_buf()),
    }
}

/// Opens `path` (physical) as `O_PATH`, refusing any symlink on the way (and, unless
/// `follow_last`, at the end): the path must be exactly what was resolved.
fn open_exact(path: &Path, follow_last: bool) -> rustix::io::Result<OwnedFd> {
    let mut flags = OFlags::PATH | OFlags::CLOEXEC;
    if !follow_last {
        flags |= OFlags::NOFOLLOW;
    }
    rfs::openat2(
        rfs::CWD,
        path,
        flags,
        Mode::empty(),
        ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
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

/// A read-only copy of whatever is at `target` (a directory tree with its mounts, a file, or
/// a symlink), attached on top of it.
fn bind_read_only_onto_itself(target: &OwnedFd) -> io::Result<()> {
    let tree = open_tree(
        target,
        "",
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_RECURSIVE
            | OpenTreeFlags::AT_EMPTY_PATH,
    )?;
    mount_setattr(&tree, Path::new(""), true, MOUNT_ATTR_RDONLY)?;
    attach(&tree, target)?;
    Ok(())
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
        cover_with_null(hidden)?;
        return Ok(BuiltView::default());
    };

    // Read-write copies of the writable roots, taken while everything is still writable.
    let mut writable: Vec<(PathBuf, OwnedFd)> = Vec::new();
    let mut roots: Vec<PathBuf> = policy
        .writable_roots
        .iter()
        .filter_map(|r| std::fs::canonicalize(r).ok())
        .collect();
    roots.sort_by_key(|r| depth(r));
    roots.dedup();
    for root in roots {
        if writable.iter().any(|(outer, _)| root.starts_with(outer)) {
            continue; // Inside a writable root already.
        }
        let tree = open_tree(
            rfs::CWD,
            &root,
            OpenTreeFlags::OPEN_TREE_CLONE
                | OpenTreeFlags::OPEN_TREE_CLOEXEC
                | OpenTreeFlags::AT_RECURSIVE,
        )
        .map_err(errno(format!("copying the mounts of {}", root.display())))?;
        writable.push((root, tree));
    }
    let devices = open_devices(tty)?;

    mount_setattr(
        rfs::CWD,
        Path::new("/"),
        true,
        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID,
    )
    .map_err(failed("making every mount read-only"))?;
    minimal_dev(&devices)?;

    for (root, tree) in &writable {
        let target =
            open_exact(root, true).map_err(errno(format!("reopening {}", root.display())))?;
        attach(tree, &target)
            .map_err(errno(format!("making {} writable again", root.display())))?;
    }

    let mut view = BuiltView::default();
    let mut read_only = policy.read_only.clone();
    read_only.sort_by_key(|r| depth(&r.path));
    let mut protected = HashSet::new();
    for entry in &read_only {
        let Some(path) = physical(&entry.path) else {
            if !entry.creatable_while_missing {
                view.uncreatable.push(entry.path.clone());
            }
            continue;
        };
        protect(
            &path,
            entry.creatable_while_missing,
            &mut protected,
            &mut view,
            0,
        )?;
    }

    let mut denied = policy.denied.clone();
    denied.sort_by_key(|d| depth(d));
    for path in &denied {
        let Some(path) = physical(path) else { continue };
        mask(&path)?;
    }
    cover_with_mask(hidden)?;
    finish_dev()?;
    Ok(view)
}

/// Makes `path` read-only. A missing path is recorded unless it may be created; a symlink
/// is pinned, and what it leads to is protected in turn (a few hops at most).
fn protect(
    path: &Path,
    creatable_while_missing: bool,
    protected: &mut HashSet<PathBuf>,
    view: &mut BuiltView,
    hops: usize,
) -> Result<(), ViewError> {
    if !protected.insert(path.to_path_buf()) {
        return Ok(());
    }
    let target = match open_exact(path, false) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => {
            if !creatable_while_missing {
                view.uncreatable.push(path.to_path_buf());
            }
            return Ok(());
        }
        Err(e) => {
            return Err(errno(format!("opening {} to protect it", path.display()))(
                e,
            ));
        }
    };
    let stat = rfs::fstat(&target).map_err(errno(format!("inspecting {}", path.display())))?;
    bind_read_only_onto_itself(&target)
        .map_err(failed(format!("making {} read-only", path.display())))?;
    if rfs::FileType::from_raw_mode(stat.st_mode) == rfs::FileType::Symlink && hops < 8 {
        // The link itself can no longer be replaced; what it names must not change either.
        if let Ok(resolved) = std::fs::canonicalize(path) {
            protect(&resolved, true, protected, view, hops + 1)?;
        }
    }
    Ok(())
}

/// Covers an existing `path` with an empty, read-only, mode-000 directory or file.
fn mask(path: &Path) -> Result<(), ViewError> {
    let target = match open_exact(path, false) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(errno(format!("opening {} to deny it", path.display()))(e)),
    };
    let stat = rfs::fstat(&target).map_err(errno(format!("inspecting {}", path.display())))?;
    if rfs::FileType::from_raw_mode(stat.st_mode) == rfs::FileType::Directory {
        let proc_path = format!("/proc/self/fd/{}", target.as_raw_fd());
        rustix::mount::mount(
            "tmpfs",
            proc_path.as_str(),
            "tmpfs",
            MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
            Some(c"mode=000,size=4k"),
        )
        .map_err(errno(format!("masking the directory {}", path.display())))?;
    } else {
        let empty =
            open_exact(Path::new(MASK_FILE), false).map_err(errno("opening the mask file"))?;
        let tree = open_tree(
            &empty,
            "",
            OpenTreeFlags::OPEN_TREE_CLONE
                | OpenTreeFlags::OPEN_TREE_CLOEXEC
                | OpenTreeFlags::AT_EMPTY_PATH,
        )
        .map_err(errno("copying the mask file"))?;
        attach(&tree, &target).map_err(errno(format!("masking {}", path.display())))?;
    }
    Ok(())
}

/// Covers the server's secrets and its socket with the empty mask file.
fn cover_with_mask(hidden: &[PathBuf]) -> Result<(), ViewError> {
    for path in hidden {
        if let Some(path) = physical(path) {
            mask(&path)?;
        }
    }
    Ok(())
}

/// Without a view of our own (full disk), covers with `/dev/null`.
fn cover_with_null(hidden: &[PathBuf]) -> Result<(), ViewError> {
    for path in hidden {
        let Some(path) = physical(path) else { continue };
        let target = match open_exact(&path, false) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => continue,
            Err(e) => return Err(errno(format!("opening {} to hide it", path.display()))(e)),
        };
        let null = open_tree(
            rfs::CWD,
            "/dev/null",
            OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
        )
        .map_err(errno("copying /dev/null"))?;
        attach(&null, &target).map_err(errno(format!("hiding {}", path.display())))?;
    }
    Ok(())
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
            return Err(ViewError {
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
    let target = rfs::openat(
        dev,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno(format!("opening /dev/{name}")))?;
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

/// Mounts the pid namespace's own `/proc` (run by the namespace's first process). False
/// when the kernel refuses (a container that masks parts of its `/proc`): the host's stays,
/// read-only, and Landlock's ptrace scoping keeps other processes' memory and environment
/// out of reach.
pub fn mount_private_proc() -> bool {
    rustix::mount::mount(
        "proc",
        "/proc",
        "proc",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        None,
    )
    .is_ok()
}
