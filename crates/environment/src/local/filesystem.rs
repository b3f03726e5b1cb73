//! `LocalFileSystem`: the filesystem capability on this machine, in this process.
//!
//! Every operation but `get_metadata` runs as one blocking closure on tokio's blocking pool
//! rather than through `tokio::fs`, which would hop to the pool once per step (open, stat,
//! read...). A 64 MiB read is then one `read` loop into a buffer sized from `fstat`, with no
//! intermediate copies.

use crate::filesystem::{FileSystem, FsError, FsFeatures};
use async_trait::async_trait;
use exec_server_protocol::fs::{
    CopyParams, CreateDirectoryParams, DirectoryEntry, GetMetadataParams, GetMetadataResponse,
    ReadDirectoryParams, ReadDirectoryResponse, ReadFileParams, ReadFileResponse, RemoveParams,
    RenameParams, WriteFileParams,
};
use exec_server_protocol::sandbox::SandboxContext;
use exec_server_protocol::{Base64Bytes, EmptyResponse};
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Settings of the local filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsConfig {
    /// Largest file `fs/readFile` returns whole, and the most bytes one ranged read returns.
    /// Bigger files must be read in ranges.
    pub max_read_bytes: u64,
}

impl Default for FsConfig {
    fn default() -> Self {
        FsConfig {
            max_read_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The local filesystem. Stateless apart from its settings, so one instance can serve every
/// session of a server.
#[derive(Debug, Clone, Default)]
pub struct LocalFileSystem {
    config: FsConfig,
}

impl LocalFileSystem {
    pub fn new(config: FsConfig) -> Self {
        LocalFileSystem { config }
    }

    pub fn config(&self) -> &FsConfig {
        &self.config
    }
}

/// Refuses what this server cannot do safely. A policy that needs the OS sandbox must never
/// fall through to an unsandboxed run, so it is an error until the sandbox helper exists.
fn check_sandbox(sandbox: Option<&SandboxContext>) -> Result<(), FsError> {
    let Some(sandbox) = sandbox else {
        return Ok(());
    };
    if sandbox.file_system_sandbox_policy.is_some() && sandbox.sandbox_policy_cwd.is_none() {
        return Err(FsError::SandboxPolicyCwdRequired);
    }
    if sandbox.sandbox_policy.needs_platform_sandbox() {
        return Err(FsError::SandboxUnsupported);
    }
    Ok(())
}

async fn blocking<T, F>(work: F) -> Result<T, FsError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, FsError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| FsError::Io(io::Error::other(format!("filesystem task failed: {e}"))))?
}

#[async_trait]
impl FileSystem for LocalFileSystem {
    async fn read_file(&self, params: ReadFileParams) -> Result<ReadFileResponse, FsError> {
        check_sandbox(params.sandbox.as_ref())?;
        let max = self.config.max_read_bytes;
        blocking(move || read_file(&params, max)).await
    }

    async fn write_file(&self, params: WriteFileParams) -> Result<EmptyResponse, FsError> {
        if params.offset.is_some() && params.append {
            return Err(FsError::OffsetWithAppend);
        }
        check_sandbox(params.sandbox.as_ref())?;
        blocking(move || write_file(params).map(|()| EmptyResponse {})).await
    }

    async fn create_directory(
        &self,
        params: CreateDirectoryParams,
    ) -> Result<EmptyResponse, FsError> {
        check_sandbox(params.sandbox.as_ref())?;
        blocking(move || {
            if params.recursive {
                fs::create_dir_all(&params.path)?;
            } else {
                fs::create_dir(&params.path)?;
            }
            Ok(EmptyResponse {})
        })
        .await
    }

    async fn get_metadata(
        &self,
        params: GetMetadataParams,
    ) -> Result<GetMetadataResponse, FsError> {
        check_sandbox(params.sandbox.as_ref())?;
        // Inline, unlike every other operation: it is two stat calls, and the hop to the
        // blocking pool and back cost about 100 us per call, more than the rest of a remote
        // round trip together. The price is that a hung network mount stalls this worker
        // thread (not the others) for as long as the stat hangs.
        get_metadata(&params.path)
    }

    async fn read_directory(
        &self,
        params: ReadDirectoryParams,
    ) -> Result<ReadDirectoryResponse, FsError> {
        check_sandbox(params.sandbox.as_ref())?;
        blocking(move || read_directory(&params.path)).await
    }

    async fn remove(&self, params: RemoveParams) -> Result<EmptyResponse, FsError> {
        check_sandbox(params.sandbox.as_ref())?;
        blocking(move || remove(&params).map(|()| EmptyResponse {})).await
    }

    async fn copy(&self, params: CopyParams) -> Result<EmptyResponse, FsError> {
        check_sandbox(params.sandbox.as_ref())?;
        blocking(move || copy(&params).map(|()| EmptyResponse {})).await
    }

    async fn rename(&self, params: RenameParams) -> Result<EmptyResponse, FsError> {
        check_sandbox(params.sandbox.as_ref())?;
        blocking(move || {
            fs::rename(&params.source_path, &params.destination_path)?;
            Ok(EmptyResponse {})
        })
        .await
    }

    fn features(&self) -> FsFeatures {
        FsFeatures {
            ranges: true,
            rename: true,
            max_read_bytes: Some(self.config.max_read_bytes),
        }
    }
}

fn read_file(params: &ReadFileParams, max: u64) -> Result<ReadFileResponse, FsError> {
    let mut file = File::open(&params.path)?;
    let meta = file.metadata()?;
    let size = meta.len();
    if !params.is_ranged() {
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

    let offset = params.offset.unwrap_or(0);
    // A range bigger than the limit is answered short (eof false), as a POSIX read would be,
    // so a client looping until eof never needs to know the limit.
    let wanted = params.length.unwrap_or(u64::MAX).min(max);
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

fn write_file(params: WriteFileParams) -> Result<(), FsError> {
    let data = params.data_base64.into_bytes();
    match (params.offset, params.append) {
        (None, false) => fs::write(&params.path, &data)?,
        (None, true) => OpenOptions::new()
            .append(true)
            .create(true)
            .open(&params.path)?
            .write_all(&data)?,
        (Some(offset), false) => {
            // No `create`: writing in place needs an existing file, which is what makes a
            // chunk at an explicit offset safe to retry.
            let file = OpenOptions::new().write(true).open(&params.path)?;
            let size = file.metadata()?.len();
            if offset > size {
                return Err(FsError::OffsetBeyondEnd { offset, size });
            }
            file.write_all_at(&data, offset)?;
        }
        (Some(_), true) => return Err(FsError::OffsetWithAppend),
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

fn get_metadata(path: &Path) -> Result<GetMetadataResponse, FsError> {
    let link = fs::symlink_metadata(path)?;
    let is_symlink = link.file_type().is_symlink();
    // A dangling (or looping) symlink still exists, and can be removed or replaced: describe
    // the link itself rather than failing with not-found.
    let target: Option<Metadata> = if is_symlink {
        fs::metadata(path).ok()
    } else {
        None
    };
    let meta = target.as_ref().unwrap_or(&link);
    let followed = !is_symlink || target.is_some();
    Ok(GetMetadataResponse {
        is_directory: followed && meta.is_dir(),
        is_file: followed && meta.is_file(),
        is_symlink,
        created_at_ms: millis(meta.created()),
        modified_at_ms: millis(meta.modified()),
        size: Some(meta.len()),
        mode: Some(meta.mode() & 0o7777),
    })
}

fn read_directory(path: &Path) -> Result<ReadDirectoryResponse, FsError> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(path)? {
        let entry = entry?;
        let file_type = entry.file_type()?;
        let (is_directory, is_file) = if file_type.is_symlink() {
            // One dangling link must not hide the rest of the listing.
            fs::metadata(entry.path()).map_or((false, false), |m| (m.is_dir(), m.is_file()))
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

fn remove(params: &RemoveParams) -> Result<(), FsError> {
    let ignore_missing = |result: io::Result<()>| match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound && params.force => Ok(()),
        other => other,
    };
    // lstat: a symlink is removed itself, never what it points to.
    let meta = match fs::symlink_metadata(&params.path) {
        Ok(meta) => meta,
        Err(e) => return Ok(ignore_missing(Err(e))?),
    };
    let result = if !meta.file_type().is_dir() {
        fs::remove_file(&params.path)
    } else if params.recursive {
        fs::remove_dir_all(&params.path)
    } else {
        fs::remove_dir(&params.path)
    };
    Ok(ignore_missing(result)?)
}

fn copy(params: &CopyParams) -> Result<(), FsError> {
    let source = params.source_path.as_path();
    let destination = params.destination_path.as_path();
    let file_type = fs::symlink_metadata(source)?.file_type();
    if file_type.is_symlink() {
        copy_symlink(source, destination)
    } else if file_type.is_dir() {
        if !params.recursive {
            return Err(FsError::CopyDirectoryNotRecursive);
        }
        if is_same_or_descendant(destination, source)? {
            return Err(FsError::CopyIntoItself);
        }
        copy_tree(source, destination)
    } else if file_type.is_file() {
        fs::copy(source, destination)?;
        Ok(())
    } else {
        Err(FsError::CopyUnsupportedFileType)
    }
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

/// Copies a directory tree: directories, regular files and symlinks (as symlinks); special
/// files are skipped. Iterative, so a deep tree cannot overflow a blocking-pool thread's stack.
fn copy_tree(source: &Path, destination: &Path) -> Result<(), FsError> {
    let mut pending = vec![(source.to_path_buf(), destination.to_path_buf())];
    // Directory modes are applied last, so a read-only source directory can still be filled.
    let mut modes = Vec::new();
    while let Some((from, to)) = pending.pop() {
        fs::create_dir_all(&to)?;
        modes.push((to.clone(), fs::metadata(&from)?.permissions().mode()));
        for entry in fs::read_dir(&from)? {
            let entry = entry?;
            let file_type = entry.file_type()?;
            let target = to.join(entry.file_name());
            if file_type.is_dir() {
                pending.push((entry.path(), target));
            } else if file_type.is_file() {
                fs::copy(entry.path(), &target)?;
            } else if file_type.is_symlink() {
                copy_symlink(&entry.path(), &target)?;
            }
        }
    }
    for (dir, mode) in modes.into_iter().rev() {
        fs::set_permissions(&dir, fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use exec_server_protocol::sandbox::SandboxPolicy;
    use exec_server_protocol::AbsolutePath;

    fn abs(p: &str) -> AbsolutePath {
        AbsolutePath::parse(p).unwrap()
    }

    #[test]
    fn sandbox_dispatch() {
        assert!(check_sandbox(None).is_ok());
        let ctx = SandboxContext::new(SandboxPolicy::DangerFullAccess);
        assert!(check_sandbox(Some(&ctx)).is_ok());
        let mut ctx = SandboxContext::new(SandboxPolicy::ReadOnly {
            access: Default::default(),
            network_access: false,
        });
        assert!(matches!(
            check_sandbox(Some(&ctx)),
            Err(FsError::SandboxUnsupported)
        ));
        ctx.file_system_sandbox_policy = Some(serde_json::json!({}));
        assert!(matches!(
            check_sandbox(Some(&ctx)),
            Err(FsError::SandboxPolicyCwdRequired)
        ));
    }

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
        assert!(is_same_or_descendant(&abs("/a/b/c"), &abs("/a/b")).unwrap());
        assert!(!is_same_or_descendant(&abs("/a/bc"), &abs("/a/b")).unwrap_or(false));
    }
}
