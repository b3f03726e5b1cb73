//! The filesystem operations themselves: blocking, path-based, one function per `fs/*`
//! method. [`LocalFileSystem`](super::LocalFileSystem) calls them in the server process; the
//! sandbox helper (`exec-server-sandbox`) calls the same functions, after locking itself down,
//! on paths it has already confined. Behaviour therefore lives here only.

use crate::filesystem::FsError;
use exec_server_protocol::fs::{
    DirectoryEntry, GetMetadataResponse, ReadDirectoryResponse, ReadFileResponse,
};
use exec_server_protocol::Base64Bytes;
use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, CWD};
use std::ffi::CString;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

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
    let mut file = File::open(path)?;
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
/// append. Parents are never created.
pub fn write_file(
    path: &Path,
    data: &[u8],
    offset: Option<u64>,
    append: bool,
    final_link: FinalLink,
) -> Result<(), FsError> {
    let mut options = OpenOptions::new();
    options.custom_flags(final_link.open_flags());
    match (offset, append) {
        (None, false) => options
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?
            .write_all(data)?,
        (None, true) => options
            .append(true)
            .create(true)
            .open(path)?
            .write_all(data)?,
        (Some(offset), false) => {
            // No `create`: writing in place needs an existing file, which is what makes a
            // chunk at an explicit offset safe to retry.
            let file = options.write(true).open(path)?;
            let size = file.metadata()?.len();
            if offset > size {
                return Err(FsError::OffsetBeyondEnd { offset, size });
            }
            file.write_all_at(data, offset)?;
        }
        (Some(_), true) => return Err(FsError::OffsetWithAppend),
    }
    Ok(())
}

/// `fs/createDirectory`.
pub fn create_directory(path: &Path, recursive: bool) -> Result<(), FsError> {
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
    read_directory_with(path, &|entry: &Path| fs::metadata(entry))
}

/// `fs/readDirectory`, asking `follow` what a symlink entry points to (the sandbox helper
/// answers only for targets its policy lets it see).
pub fn read_directory_with(
    path: &Path,
    follow: &dyn Fn(&Path) -> io::Result<Metadata>,
) -> Result<ReadDirectoryResponse, FsError> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(path)? {
        let entry = entry?;
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
/// a regular file as a file; anything else is refused.
pub fn copy(
    source: &Path,
    destination: &Path,
    recursive: bool,
    final_link: FinalLink,
) -> Result<(), FsError> {
    let file_type = fs::symlink_metadata(source)?.file_type();
    if file_type.is_symlink() {
        copy_symlink(source, destination)
    } else if file_type.is_dir() {
        if !recursive {
            return Err(FsError::CopyDirectoryNotRecursive);
        }
        if is_same_or_descendant(destination, source)? {
            return Err(FsError::CopyIntoItself);
        }
        copy_tree(source, destination, final_link)
    } else if file_type.is_file() {
        copy_file(source, destination, final_link)
    } else {
        Err(FsError::CopyUnsupportedFileType)
    }
}

/// Copies a regular file's bytes and permission bits (as `std::fs::copy` does, with control
/// over a symlink at the destination).
fn copy_file(source: &Path, destination: &Path, final_link: FinalLink) -> Result<(), FsError> {
    // The source was seen as a regular file; never follow a link swapped in since.
    let from = File::from(open_nofollow(CWD, source, OFlags::RDONLY)?);
    let to = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(final_link.open_flags())
        .open(destination)?;
    copy_contents(from, to)
}

/// Copies the bytes and the permission bits of an open file into another.
fn copy_contents(mut from: File, mut to: File) -> Result<(), FsError> {
    let mode = from.metadata()?.permissions().mode();
    // `io::copy` between two files uses copy_file_range, so the bytes stay in the kernel.
    io::copy(&mut from, &mut to)?;
    to.set_permissions(fs::Permissions::from_mode(mode))?;
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
    mode: u32,
    pending: Vec<(CString, FileType)>,
}

impl CopyFrame {
    fn new(source: OwnedFd, destination: OwnedFd) -> io::Result<CopyFrame> {
        let mode = rustix::fs::fstat(&source)?.st_mode & 0o7777;
        let mut pending = Vec::new();
        for entry in Dir::read_from(&source)? {
            let entry = entry?;
            let name = entry.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            let file_type = match entry.file_type() {
                // Some filesystems do not report types in listings.
                FileType::Unknown => FileType::from_raw_mode(
                    rustix::fs::statat(&source, name, AtFlags::SYMLINK_NOFOLLOW)?.st_mode,
                ),
                known => known,
            };
            pending.push((name.to_owned(), file_type));
        }
        Ok(CopyFrame {
            source,
            destination,
            mode,
            pending,
        })
    }
}

/// Copies a directory tree: directories, regular files and symlinks (as symlinks); special
/// files are skipped. Copying onto an existing directory merges into it.
///
/// Everything below the top is reached through open directory descriptors and never through
/// a symlink (`O_NOFOLLOW` at every step): an existing destination entry that is a symlink
/// fails the copy rather than sending files, or a `chmod`, wherever it points. Iterative, so a
/// deep tree cannot overflow a blocking-pool thread's stack; directory modes are applied
/// once each directory is filled, so a read-only source directory can still be copied.
fn copy_tree(source: &Path, destination: &Path, final_link: FinalLink) -> Result<(), FsError> {
    let source = open_nofollow(CWD, source, OFlags::RDONLY | OFlags::DIRECTORY)?;
    match rustix::fs::mkdir(destination, Mode::from_raw_mode(0o700)) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(io::Error::from(e).into()),
    }
    let destination = rustix::fs::openat(
        CWD,
        destination,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | final_link.oflags(),
        Mode::empty(),
    )
    .map_err(io::Error::from)?;
    let mut stack = vec![CopyFrame::new(source, destination)?];
    while let Some(frame) = stack.last_mut() {
        let Some((name, file_type)) = frame.pending.pop() else {
            let done = stack.pop().expect("a frame is on the stack");
            rustix::fs::fchmod(&done.destination, Mode::from_raw_mode(done.mode))
                .map_err(io::Error::from)?;
            continue;
        };
        match file_type {
            FileType::Directory => {
                match rustix::fs::mkdirat(&frame.destination, &*name, Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(io::Error::from(e).into()),
                }
                let source =
                    open_nofollow(&frame.source, &*name, OFlags::RDONLY | OFlags::DIRECTORY)?;
                let destination = open_nofollow(
                    &frame.destination,
                    &*name,
                    OFlags::RDONLY | OFlags::DIRECTORY,
                )?;
                stack.push(CopyFrame::new(source, destination)?);
            }
            FileType::RegularFile => {
                let from = open_nofollow(&frame.source, &*name, OFlags::RDONLY)?;
                let to = open_nofollow(
                    &frame.destination,
                    &*name,
                    OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC,
                )?;
                copy_contents(File::from(from), File::from(to))?;
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(&frame.source, &*name, Vec::new())
                    .map_err(io::Error::from)?;
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
        let refused = write_file(&link, b"x", None, false, FinalLink::Refuse).unwrap_err();
        assert_eq!(
            refused.to_string(),
            io::Error::from_raw_os_error(libc::ELOOP).to_string()
        );
        assert_eq!(fs::read(dir.join("target")).unwrap(), b"kept");
        write_file(&link, b"followed", None, false, FinalLink::Follow).unwrap();
        assert_eq!(fs::read(dir.join("target")).unwrap(), b"followed");
        fs::remove_dir_all(&dir).unwrap();
    }
}
