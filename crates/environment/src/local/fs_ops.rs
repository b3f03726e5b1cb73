//! The filesystem operations themselves: blocking, path-based, one function per `fs/*`
//! method. [`LocalFileSystem`](super::LocalFileSystem) calls them in the server process; the
//! sandbox helper (`exec-server-sandbox`) calls the same functions, after locking itself down,
//! on paths it has already confined. Behaviour therefore lives here only.

use crate::filesystem::FsError;
use exec_server_protocol::fs::{
    DirectoryEntry, GetMetadataResponse, ReadDirectoryResponse, ReadFileResponse,
};
use exec_server_protocol::Base64Bytes;
use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, Stat, CWD};
use std::ffi::{CString, OsStr};
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The deepest level a recursive `fs/copy` descends below its source, and the most
/// components in a path `fs/createDirectory` creates. A copy holds two descriptors per level
/// (and a server's descriptors are shared by every connection), so without a bound a deep
/// tree would exhaust them and leave a partial copy behind after a long time.
pub const MAX_TREE_DEPTH: usize = 256;

/// The name of [`MAX_TREE_DEPTH`] in `capabilities.limits` and in `data.limit` of errors.
pub const TREE_DEPTH_LIMIT: &str = "maxFsTreeDepth";

fn too_deep(what: std::fmt::Arguments<'_>) -> FsError {
    FsError::LimitExceeded {
        limit: TREE_DEPTH_LIMIT,
        max: MAX_TREE_DEPTH as u64,
        message: format!("{what} is deeper than {MAX_TREE_DEPTH} levels (maxFsTreeDepth)"),
    }
}

/// Refuses a path with more than [`MAX_TREE_DEPTH`] components.
pub fn check_path_depth(path: &Path) -> Result<(), FsError> {
    let depth = path
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count();
    if depth > MAX_TREE_DEPTH {
        return Err(too_deep(format_args!("the path {}", path.display())));
    }
    Ok(())
}

/// What the sandbox checks, from inside an operation, about each entry the operation reads
/// or changes below the paths it was given (which the sandbox checked before the call). A
/// recursive copy meets entries nobody named, and every one of them must pass the same
/// checks as a direct write would. In the server process nothing is checked ([`Unguarded`]).
pub trait EntryGuard {
    /// An entry a copy is about to read (`st`: its `lstat`, or `fstat` once open).
    fn check_source(&self, st: &Stat) -> io::Result<()>;
    /// An existing entry an operation is about to change: a file it writes, a directory a
    /// copy merges into (`st`: `fstat` of the open entry).
    fn check_existing(&self, st: &Stat) -> io::Result<()>;
    /// About to create `name` in the directory `dir`.
    fn check_new(&self, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()>;
}

/// No checks: operations in the server process, whose policy needs no sandbox.
#[derive(Debug, Clone, Copy)]
pub struct Unguarded;

impl EntryGuard for Unguarded {
    fn check_source(&self, _: &Stat) -> io::Result<()> {
        Ok(())
    }
    fn check_existing(&self, _: &Stat) -> io::Result<()> {
        Ok(())
    }
    fn check_new(&self, _: BorrowedFd<'_>, _: &OsStr) -> io::Result<()> {
        Ok(())
    }
}

/// `fstat`, with the error as an `io::Error`.
fn fstat(fd: impl AsFd) -> io::Result<Stat> {
    Ok(rustix::fs::fstat(fd)?)
}

/// Refuses a FIFO or a socket, which [`open_nonblocking`] opened without waiting but which
/// no operation reads or writes: a FIFO would block on its other end.
fn refuse_special(st: &Stat, operation: &'static str) -> Result<(), FsError> {
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Fifo | FileType::Socket => Err(FsError::SpecialFile { operation }),
        _ => Ok(()),
    }
}

/// Permission bits a copy gives what it creates: the source's, without setuid and setgid,
/// as `cp` does when it does not preserve ownership (a copy made by root of another user's
/// setuid program must not become a setuid program owned by root).
fn copied_mode(source_mode: u32) -> Mode {
    Mode::from_raw_mode(source_mode & 0o1777)
}

/// What to do when the last component of a path that is written to is a symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalLink {
    /// Write to what it points to, as `open(2)` does.
    Follow,
    /// Fail with `ELOOP`. The sandbox helper resolves links itself, through its checks, and
    /// uses this so a link swapped in after the check is never followed.
    Refuse,
}

impl FinalLink {
    fn oflags(self) -> OFlags {
        match self {
            FinalLink::Follow => OFlags::empty(),
            FinalLink::Refuse => OFlags::NOFOLLOW,
        }
    }

    fn open_flags(self) -> i32 {
        self.oflags().bits() as i32
    }
}

/// `fs/readFile`: the whole file, or with `offset`/`length` a range (then with `size` and
/// `eof`). Never more than `max` bytes.
pub fn read_file(
    path: &Path,
    offset: Option<u64>,
    length: Option<u64>,
    max: u64,
) -> Result<ReadFileResponse, FsError> {
    // Non-blocking, so a FIFO (or a device with nothing to read) cannot hang the call; a
    // FIFO is then refused, and regular files ignore the flag.
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    refuse_special(&fstat(&file)?, "fs/readFile")?;
    let meta = file.metadata()?;
    let size = meta.len();
    if offset.is_none() && length.is_none() {
        if meta.is_file() && size > max {
            return Err(FsError::FileTooLarge { size, limit: max });
        }
        // `size` is only a hint (the file may grow, and /proc files report 0): the `take`
        // is what bounds memory.
        let mut data = Vec::with_capacity(size.min(max) as usize);
        (&mut file).take(max + 1).read_to_end(&mut data)?;
        if data.len() as u64 > max {
            return Err(FsError::FileTooLarge {
                size: size.max(data.len() as u64),
                limit: max,
            });
        }
        return Ok(ReadFileResponse {
            data_base64: Base64Bytes::from(data),
            size: None,
            eof: None,
        });
    }

    let offset = offset.unwrap_or(0);
    // A range bigger than the limit is answered short (eof false), as a POSIX read would be,
    // so a client looping until eof never needs to know the limit.
    let wanted = length.unwrap_or(u64::MAX).min(max);
    let expected = if meta.is_file() {
        wanted.min(size.saturating_sub(offset))
    } else {
        0
    };
    let mut data = Vec::with_capacity(expected as usize);
    if wanted > 0 {
        file.seek(SeekFrom::Start(offset))?;
        (&mut file).take(wanted).read_to_end(&mut data)?;
    }
    let end = offset.saturating_add(data.len() as u64);
    // Bytes past the size `fstat` reported mean the file grew while being read.
    let size = if data.is_empty() { size } else { size.max(end) };
    let eof = if meta.is_file() {
        end >= size
    } else {
        (data.len() as u64) < wanted
    };
    Ok(ReadFileResponse {
        data_base64: Base64Bytes::from(data),
        size: Some(size),
        eof: Some(eof),
    })
}

/// `fs/writeFile`: create or truncate, or with `offset` write in place, or with `append`
/// append. Parents are never created. `guard` vets an existing file before it changes.
pub fn write_file(
    path: &Path,
    data: &[u8],
    offset: Option<u64>,
    append: bool,
    final_link: FinalLink,
    guard: &dyn EntryGuard,
) -> Result<(), FsError> {
    let mut options = OpenOptions::new();
    // Non-blocking: opening a FIFO for writing would wait for a reader.
    options.custom_flags(final_link.open_flags() | libc::O_NONBLOCK);
    match (offset, append) {
        (None, false) => options.write(true).create(true),
        (None, true) => options.append(true).create(true),
        // No `create`: writing in place needs an existing file, which is what makes a
        // chunk at an explicit offset safe to retry.
        (Some(_), false) => options.write(true),
        (Some(_), true) => return Err(FsError::OffsetWithAppend),
    };
    let mut file = options.open(path)?;
    let st = fstat(&file)?;
    refuse_special(&st, "fs/writeFile")?;
    guard.check_existing(&st)?;
    match offset {
        None => {
            // Truncated only now that it was checked (devices cannot be truncated).
            if !append && FileType::from_raw_mode(st.st_mode) == FileType::RegularFile {
                file.set_len(0)?;
            }
            file.write_all(data)?;
        }
        Some(offset) => {
            let size = st.st_size as u64;
            if offset > size {
                return Err(FsError::OffsetBeyondEnd { offset, size });
            }
            file.write_all_at(data, offset)?;
        }
    }
    Ok(())
}

/// `fs/createDirectory`.
pub fn create_directory(path: &Path, recursive: bool) -> Result<(), FsError> {
    check_path_depth(path)?;
    if recursive {
        fs::create_dir_all(path)?;
    } else {
        fs::create_dir(path)?;
    }
    Ok(())
}

fn millis(time: io::Result<SystemTime>) -> i64 {
    match time.map(|t| t.duration_since(UNIX_EPOCH)) {
        Ok(Ok(d)) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Ok(Err(before_epoch)) => {
            -i64::try_from(before_epoch.duration().as_millis()).unwrap_or(i64::MAX)
        }
        Err(_) => 0,
    }
}

/// `fs/getMetadata`.
pub fn get_metadata(path: &Path) -> Result<GetMetadataResponse, FsError> {
    // Here, a link that cannot be followed for any reason is described as dangling.
    get_metadata_with(path, &|link: &Path| {
        fs::metadata(link).map_err(|_| io::Error::from(io::ErrorKind::NotFound))
    })
}

/// `fs/getMetadata`, asking `follow` what a symlink points to (the sandbox helper answers
/// only for targets its policy lets it see, and refuses the rest). A dangling (or looping)
/// symlink still exists, and can be removed or replaced: it is described as itself rather
/// than failing with not-found; any other failure of `follow` fails the call.
pub fn get_metadata_with(
    path: &Path,
    follow: &dyn Fn(&Path) -> io::Result<Metadata>,
) -> Result<GetMetadataResponse, FsError> {
    let link = fs::symlink_metadata(path)?;
    let target = if link.file_type().is_symlink() {
        match follow(path) {
            Ok(meta) => Some(meta),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) || e.raw_os_error() == Some(libc::ELOOP) =>
            {
                None
            }
            Err(e) => return Err(e.into()),
        }
    } else {
        None
    };
    Ok(metadata_response(&link, target.as_ref()))
}

fn metadata_response(link: &Metadata, target: Option<&Metadata>) -> GetMetadataResponse {
    let is_symlink = link.file_type().is_symlink();
    let meta = target.unwrap_or(link);
    let followed = !is_symlink || target.is_some();
    GetMetadataResponse {
        is_directory: followed && meta.is_dir(),
        is_file: followed && meta.is_file(),
        is_symlink,
        created_at_ms: millis(meta.created()),
        modified_at_ms: millis(meta.modified()),
        size: Some(meta.len()),
        mode: Some(meta.mode() & 0o7777),
    }
}

/// `fs/readDirectory`.
pub fn read_directory(path: &Path) -> Result<ReadDirectoryResponse, FsError> {
    read_directory_with(path, &|entry: &Path| fs::metadata(entry), &|_| false)
}

/// `fs/readDirectory`, asking `follow` what a symlink entry points to (the sandbox helper
/// answers only for targets its policy lets it see), and leaving out the entries `hide`
/// names (those the policy denies any access to).
pub fn read_directory_with(
    path: &Path,
    follow: &dyn Fn(&Path) -> io::Result<Metadata>,
    hide: &dyn Fn(&fs::DirEntry) -> bool,
) -> Result<ReadDirectoryResponse, FsError> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(path)? {
        let entry = entry?;
        if hide(&entry) {
            continue;
        }
        let file_type = entry.file_type()?;
        let (is_directory, is_file) = if file_type.is_symlink() {
            // One dangling link must not hide the rest of the listing.
            follow(&entry.path()).map_or((false, false), |m| (m.is_dir(), m.is_file()))
        } else {
            (file_type.is_dir(), file_type.is_file())
        };
        entries.push(DirectoryEntry {
            file_name: entry.file_name().to_string_lossy().into_owned(),
            is_directory,
            is_file,
        });
    }
    Ok(ReadDirectoryResponse { entries })
}

/// `fs/remove`: a file, a symlink (never its target) or a directory.
pub fn remove(path: &Path, recursive: bool, force: bool) -> Result<(), FsError> {
    let ignore_missing = |result: io::Result<()>| match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound && force => Ok(()),
        other => other,
    };
    // lstat: a symlink is removed itself, never what it points to.
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) => return Ok(ignore_missing(Err(e))?),
    };
    let result = if !meta.file_type().is_dir() {
        fs::remove_file(path)
    } else if recursive {
        fs::remove_dir_all(path)
    } else {
        fs::remove_dir(path)
    };
    Ok(ignore_missing(result)?)
}

/// `fs/rename`.
pub fn rename(source: &Path, destination: &Path) -> Result<(), FsError> {
    fs::rename(source, destination)?;
    Ok(())
}

/// `fs/copy`: a symlink is copied as a symlink, a directory (with `recursive`) as a tree,
/// a regular file as a file; anything else is refused. `guard` vets everything the copy
/// reads or changes below `source` and `destination`, and what it finds at `destination`.
pub fn copy(
    source: &Path,
    destination: &Path,
    recursive: bool,
    final_link: FinalLink,
    guard: &dyn EntryGuard,
) -> Result<(), FsError> {
    let st = rustix::fs::lstat(source).map_err(io::Error::from)?;
    guard.check_source(&st)?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Symlink => copy_symlink(source, destination),
        FileType::Directory => {
            if !recursive {
                return Err(FsError::CopyDirectoryNotRecursive);
            }
            if is_same_or_descendant(destination, source)? {
                return Err(FsError::CopyIntoItself);
            }
            copy_tree(source, destination, final_link, guard)
        }
        FileType::RegularFile => copy_file(source, destination, final_link, guard),
        _ => Err(FsError::CopyUnsupportedFileType),
    }
}

/// Opens a source file that was seen as a regular file: never through a link swapped in
/// since, never waiting on a FIFO swapped in since (which is then refused).
fn open_source_file(dir: impl AsFd, name: impl rustix::path::Arg) -> Result<(File, Stat), FsError> {
    let fd = open_nofollow(dir, name, OFlags::RDONLY | OFlags::NONBLOCK)?;
    let st = fstat(&fd)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(FsError::CopyUnsupportedFileType);
    }
    Ok((File::from(fd), st))
}

/// Copies a regular file's bytes, with control over a symlink at the destination. A file
/// the copy creates gets the source's permission bits (see [`copied_mode`]); an existing one
/// keeps its own, as with `cp`.
fn copy_file(
    source: &Path,
    destination: &Path,
    final_link: FinalLink,
    guard: &dyn EntryGuard,
) -> Result<(), FsError> {
    let (from, source_st) = open_source_file(CWD, source)?;
    guard.check_source(&source_st)?;
    let mut options = OpenOptions::new();
    options
        .write(true)
        .mode(0o600)
        .custom_flags(final_link.open_flags() | libc::O_NONBLOCK);
    let (to, created) = match options.clone().create_new(true).open(destination) {
        Ok(to) => (to, true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => (options.open(destination)?, false),
        Err(e) => return Err(e.into()),
    };
    fill_copy(from, &source_st, to, created, guard)
}

/// Checks the open destination of a file copy, then replaces its contents with the
/// source's; a destination the copy `created` gets the source's permission bits.
fn fill_copy(
    mut from: File,
    source_st: &Stat,
    mut to: File,
    created: bool,
    guard: &dyn EntryGuard,
) -> Result<(), FsError> {
    let st = fstat(&to)?;
    refuse_special(&st, "fs/copy")?;
    guard.check_existing(&st)?;
    // Devices cannot be truncated.
    if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile {
        to.set_len(0)?;
    }
    // `io::copy` between two files uses copy_file_range, so the bytes stay in the kernel.
    io::copy(&mut from, &mut to)?;
    if created {
        rustix::fs::fchmod(&to, copied_mode(source_st.st_mode)).map_err(io::Error::from)?;
    }
    Ok(())
}

fn open_nofollow(
    dir: impl AsFd,
    name: impl rustix::path::Arg,
    flags: OFlags,
) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

fn copy_symlink(source: &Path, destination: &Path) -> Result<(), FsError> {
    let target = fs::read_link(source)?;
    std::os::unix::fs::symlink(target, destination)?;
    Ok(())
}

/// Whether `path` is `ancestor` or lies under it, lexically or once symlinks in either are
/// resolved (copying `/a` to `/link-to-a/sub` must be refused too).
fn is_same_or_descendant(path: &Path, ancestor: &Path) -> Result<bool, FsError> {
    if path.starts_with(ancestor) {
        return Ok(true);
    }
    let ancestor = fs::canonicalize(ancestor)?;
    Ok(resolve_existing_prefix(path).starts_with(ancestor))
}

/// Canonicalizes the longest existing prefix of `path` and appends the rest unchanged.
fn resolve_existing_prefix(path: &Path) -> PathBuf {
    let mut existing = path;
    let mut rest = Vec::new();
    loop {
        if let Ok(resolved) = fs::canonicalize(existing) {
            return rest
                .iter()
                .rev()
                .fold(resolved, |acc: PathBuf, part: &&std::ffi::OsStr| {
                    acc.join(part)
                });
        }
        match (existing.parent(), existing.components().next_back()) {
            (Some(parent), Some(Component::Normal(name))) => {
                rest.push(name);
                existing = parent;
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// One directory of a tree copy: the source and destination directories, open, and the
/// source entries still to copy.
struct CopyFrame {
    source: OwnedFd,
    destination: OwnedFd,
    /// The source directory's permission bits.
    mode: u32,
    /// Whether the copy created the destination directory. Only those get the source's
    /// permission bits: a directory merged into keeps its own (as with `cp`), so a copy
    /// cannot change the mode of a directory it merely passes through.
    created: bool,
    pending: Vec<(CString, FileType)>,
}

impl CopyFrame {
    fn new(
        source: OwnedFd,
        destination: OwnedFd,
        created: bool,
        guard: &dyn EntryGuard,
    ) -> Result<CopyFrame, FsError> {
        let source_st = fstat(&source)?;
        guard.check_source(&source_st)?;
        if !created {
            guard.check_existing(&fstat(&destination)?)?;
        }
        let mut pending = Vec::new();
        for entry in Dir::read_from(&source).map_err(io::Error::from)? {
            let entry = entry.map_err(io::Error::from)?;
            let name = entry.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            let file_type = match entry.file_type() {
                // Some filesystems do not report types in listings.
                FileType::Unknown => FileType::from_raw_mode(
                    rustix::fs::statat(&source, name, AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(io::Error::from)?
                        .st_mode,
                ),
                known => known,
            };
            pending.push((name.to_owned(), file_type));
        }
        Ok(CopyFrame {
            source,
            destination,
            mode: source_st.st_mode,
            created,
            pending,
        })
    }
}

/// `lstat` of `name` in `dir`: `None` when there is nothing there.
fn entry_stat(dir: impl AsFd, name: &CString) -> io::Result<Option<Stat>> {
    match rustix::fs::statat(dir, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn name_of(name: &CString) -> &OsStr {
    OsStr::from_bytes(name.as_bytes())
}

/// Copies a directory tree: directories, regular files and symlinks (as symlinks); special
/// files are skipped. Copying onto an existing directory merges into it.
///
/// Everything below the top is reached through open directory descriptors and never through
/// a symlink (`O_NOFOLLOW` at every step): an existing destination entry that is a symlink
/// fails the copy rather than sending files, or a `chmod`, wherever it points. Every entry
/// read, changed or created passes `guard` first. Iterative, so a deep tree cannot overflow a
/// blocking-pool thread's stack, and bounded by [`MAX_TREE_DEPTH`]; directory modes are
/// applied once each directory is filled, so a read-only source directory can still be
/// copied.
fn copy_tree(
    source: &Path,
    destination: &Path,
    final_link: FinalLink,
    guard: &dyn EntryGuard,
) -> Result<(), FsError> {
    let source = open_nofollow(CWD, source, OFlags::RDONLY | OFlags::DIRECTORY)?;
    let created = match rustix::fs::mkdir(destination, Mode::from_raw_mode(0o700)) {
        Ok(()) => true,
        Err(rustix::io::Errno::EXIST) => false,
        Err(e) => return Err(io::Error::from(e).into()),
    };
    let destination = rustix::fs::openat(
        CWD,
        destination,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | final_link.oflags(),
        Mode::empty(),
    )
    .map_err(io::Error::from)?;
    let mut stack = vec![CopyFrame::new(source, destination, created, guard)?];
    while let Some(frame) = stack.last_mut() {
        let Some((name, file_type)) = frame.pending.pop() else {
            let done = stack.pop().expect("a frame is on the stack");
            if done.created {
                rustix::fs::fchmod(&done.destination, copied_mode(done.mode))
                    .map_err(io::Error::from)?;
            }
            continue;
        };
        match file_type {
            FileType::Directory => {
                if stack.len() >= MAX_TREE_DEPTH {
                    return Err(too_deep(format_args!("the copied tree")));
                }
                let frame = stack.last_mut().expect("a frame is on the stack");
                let created = match entry_stat(&frame.destination, &name)? {
                    Some(_) => false,
                    None => {
                        guard.check_new(frame.destination.as_fd(), name_of(&name))?;
                        match rustix::fs::mkdirat(
                            &frame.destination,
                            &*name,
                            Mode::from_raw_mode(0o700),
                        ) {
                            Ok(()) => true,
                            Err(rustix::io::Errno::EXIST) => false,
                            Err(e) => return Err(io::Error::from(e).into()),
                        }
                    }
                };
                let source =
                    open_nofollow(&frame.source, &*name, OFlags::RDONLY | OFlags::DIRECTORY)?;
                let destination = open_nofollow(
                    &frame.destination,
                    &*name,
                    OFlags::RDONLY | OFlags::DIRECTORY,
                )?;
                let next = CopyFrame::new(source, destination, created, guard)?;
                stack.push(next);
            }
            FileType::RegularFile => {
                let (from, source_st) = open_source_file(&frame.source, &*name)?;
                guard.check_source(&source_st)?;
                let mut flags = OFlags::WRONLY | OFlags::NONBLOCK;
                let created = entry_stat(&frame.destination, &name)?.is_none();
                if created {
                    guard.check_new(frame.destination.as_fd(), name_of(&name))?;
                    flags |= OFlags::CREATE | OFlags::EXCL;
                }
                let to = rustix::fs::openat(
                    &frame.destination,
                    &*name,
                    flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(io::Error::from)?;
                fill_copy(from, &source_st, File::from(to), created, guard)?;
            }
            FileType::Symlink => {
                guard.check_source(
                    &rustix::fs::statat(&frame.source, &*name, AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(io::Error::from)?,
                )?;
                let target = rustix::fs::readlinkat(&frame.source, &*name, Vec::new())
                    .map_err(io::Error::from)?;
                guard.check_new(frame.destination.as_fd(), name_of(&name))?;
                rustix::fs::symlinkat(&*target, &frame.destination, &*name)
                    .map_err(io::Error::from)?;
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_missing_suffixes() {
        let tmp = std::env::temp_dir();
        let resolved = resolve_existing_prefix(&tmp.join("no-such-dir-xyz/child"));
        assert_eq!(
            resolved,
            fs::canonicalize(&tmp)
                .unwrap()
                .join("no-such-dir-xyz/child")
        );
        assert!(is_same_or_descendant(Path::new("/a/b/c"), Path::new("/a/b")).unwrap());
        assert!(!is_same_or_descendant(Path::new("/a/bc"), Path::new("/a/b")).unwrap_or(false));
    }

    #[test]
    fn refusing_a_final_link_leaves_its_target_alone() {
        let dir = std::env::temp_dir().join(format!("fs-ops-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("target"), b"kept").unwrap();
        let link = dir.join("link");
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(dir.join("target"), &link).unwrap();
        let refused =
            write_file(&link, b"x", None, false, FinalLink::Refuse, &Unguarded).unwrap_err();
        assert_eq!(
            refused.to_string(),
            io::Error::from_raw_os_error(libc::ELOOP).to_string()
        );
        assert_eq!(fs::read(dir.join("target")).unwrap(), b"kept");
        write_file(
            &link,
            b"followed",
            None,
            false,
            FinalLink::Follow,
            &Unguarded,
        )
        .unwrap();
        assert_eq!(fs::read(dir.join("target")).unwrap(), b"followed");
        fs::remove_dir_all(&dir).unwrap();
    }
}
