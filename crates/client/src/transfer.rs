//! Streaming file transfers over any [`FileSystem`], in bounded memory.
//!
//! Upload (SPEC section 10): one truncating write to a temporary name beside the target, then
//! chunks at explicit offsets, then `fs/rename` onto the target. Explicit offsets (rather than
//! `append`) make a chunk safe to send again after a reconnect, and the rename means a reader
//! never sees a half-written target. Download reads consecutive ranges until `eof`.
//!
//! Against a server that does not advertise ranges (or `fs/rename`), both fall back to one
//! whole-file call, which needs the whole file in memory.

use exec_server_environment::{FileSystem, FsError};
use exec_server_protocol::fs::{ReadFileParams, RemoveParams, RenameParams, WriteFileParams};
use exec_server_protocol::{AbsolutePath, Base64Bytes};
use std::io;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Bytes per request of a streaming transfer: large enough that per-request overhead is
/// small, small enough that a few in flight keep both ends far below 128 MiB.
pub const DEFAULT_CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// Why a transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The filesystem (local or remote) refused an operation.
    #[error("{0}")]
    Fs(#[from] FsError),
    /// Reading the source or writing the sink on this side failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("upload destination `{0}` must name a file")]
    NotAFileName(AbsolutePath),
}

/// Copies everything `reader` yields into the file at `destination`, replacing it, and
/// returns the number of bytes written. `progress` is called with the running total.
pub async fn upload<R>(
    fs: &dyn FileSystem,
    mut reader: R,
    destination: &AbsolutePath,
    chunk_bytes: usize,
    mut progress: impl FnMut(u64) + Send,
) -> Result<u64, TransferError>
where
    R: AsyncRead + Unpin + Send,
{
    let chunk_bytes = chunk_bytes.max(1);
    let features = fs.features();
    if !(features.ranges && features.rename) {
        let mut data = Vec::new();
        reader.read_to_end(&mut data).await?;
        let total = data.len() as u64;
        fs.write_file(whole_write(destination, data)).await?;
        progress(total);
        return Ok(total);
    }

    let temporary = temporary_sibling(destination, "upload")?;
    let result = upload_ranges(fs, reader, &temporary, chunk_bytes, &mut progress).await;
    let result = match result {
        Ok(total) => fs
            .rename(RenameParams {
                source_path: temporary.clone(),
                destination_path: destination.clone(),
                sandbox: None,
            })
            .await
            .map(|_| total)
            .map_err(TransferError::from),
        Err(e) => Err(e),
    };
    if result.is_err() {
        // Best effort: the original error is the one worth reporting.
        let _ = fs
            .remove(RemoveParams {
                path: temporary,
                recursive: false,
                force: true,
                sandbox: None,
            })
            .await;
    }
    result
}

async fn upload_ranges<R>(
    fs: &dyn FileSystem,
    mut reader: R,
    temporary: &AbsolutePath,
    chunk_bytes: usize,
    progress: &mut (impl FnMut(u64) + Send),
) -> Result<u64, TransferError>
where
    R: AsyncRead + Unpin + Send,
{
    let mut chunk = read_chunk(&mut reader, chunk_bytes).await?;
    let mut offset = 0u64;
    let mut first = true;
    loop {
        let len = chunk.len() as u64;
        let params = if first {
            whole_write(temporary, chunk)
        } else {
            WriteFileParams {
                offset: Some(offset),
                ..whole_write(temporary, chunk)
            }
        };
        // Read the next chunk from the source while this one is on its way. Only one write
        // is in flight: a ranged write must not start beyond the end the previous one makes.
        let (written, next) =
            tokio::join!(fs.write_file(params), read_chunk(&mut reader, chunk_bytes));
        written?;
        offset += len;
        progress(offset);
        chunk = next?;
        first = false;
        if chunk.is_empty() {
            return Ok(offset);
        }
    }
}

/// Copies the file at `source` into `writer` and returns the number of bytes copied.
/// `progress` is called with the running total.
pub async fn download<W>(
    fs: &dyn FileSystem,
    source: &AbsolutePath,
    mut writer: W,
    chunk_bytes: usize,
    mut progress: impl FnMut(u64) + Send,
) -> Result<u64, TransferError>
where
    W: AsyncWrite + Unpin + Send,
{
    let chunk_bytes = chunk_bytes.max(1) as u64;
    if !fs.features().ranges {
        let whole = fs
            .read_file(ReadFileParams {
                path: source.clone(),
                sandbox: None,
                offset: None,
                length: None,
            })
            .await?;
        writer.write_all(&whole.data_base64).await?;
        writer.flush().await?;
        let total = whole.data_base64.len() as u64;
        progress(total);
        return Ok(total);
    }

    let range = |offset: u64| ReadFileParams {
        path: source.clone(),
        sandbox: None,
        offset: Some(offset),
        length: Some(chunk_bytes),
    };
    let mut offset = 0u64;
    let mut current = fs.read_file(range(0)).await?;
    loop {
        let len = current.data_base64.len() as u64;
        // An empty range without eof (a file that shrank) ends the transfer too, rather than
        // asking for the same offset forever.
        let done = current.eof != Some(false) || len == 0;
        if done {
            writer.write_all(&current.data_base64).await?;
            offset += len;
            progress(offset);
            break;
        }
        // Ask for the next range while this one is written out.
        let (written, next) = tokio::join!(
            writer.write_all(&current.data_base64),
            fs.read_file(range(offset + len))
        );
        written?;
        offset += len;
        progress(offset);
        current = next?;
    }
    writer.flush().await?;
    Ok(offset)
}

fn whole_write(path: &AbsolutePath, data: Vec<u8>) -> WriteFileParams {
    WriteFileParams {
        path: path.clone(),
        data_base64: Base64Bytes::from(data),
        sandbox: None,
        offset: None,
        append: false,
    }
}

/// Reads until `limit` bytes or the end of the source.
async fn read_chunk<R: AsyncRead + Unpin>(reader: &mut R, limit: usize) -> io::Result<Vec<u8>> {
    let mut chunk = Vec::with_capacity(limit);
    while chunk.len() < limit {
        if reader.read_buf(&mut chunk).await? == 0 {
            break;
        }
    }
    Ok(chunk)
}

/// A hidden name in the same directory as `path`, so the final rename stays on one
/// filesystem and is atomic.
pub fn temporary_sibling(
    path: &AbsolutePath,
    purpose: &str,
) -> Result<AbsolutePath, TransferError> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(TransferError::NotAFileName(path.clone()));
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let temporary = parent.join(format!(
        ".{}.{purpose}-{}-{nanos}",
        name.to_string_lossy(),
        std::process::id()
    ));
    AbsolutePath::from_path(&temporary).map_err(|_| TransferError::NotAFileName(path.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use exec_server_environment::local::{FsConfig, LocalFileSystem};
    use exec_server_environment::FsFeatures;
    use exec_server_protocol::fs::{
        CopyParams, CreateDirectoryParams, GetMetadataParams, GetMetadataResponse,
        ReadDirectoryParams, ReadDirectoryResponse, ReadFileResponse,
    };
    use exec_server_protocol::EmptyResponse;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A local filesystem that pretends to be a server without the additions, and counts
    /// ranged calls (there must be none).
    struct Plain {
        inner: LocalFileSystem,
        ranged_calls: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl FileSystem for Plain {
        async fn read_file(&self, p: ReadFileParams) -> Result<ReadFileResponse, FsError> {
            if p.is_ranged() {
                self.ranged_calls.fetch_add(1, Ordering::Relaxed);
            }
            self.inner.read_file(p).await
        }
        async fn write_file(&self, p: WriteFileParams) -> Result<EmptyResponse, FsError> {
            if p.offset.is_some() || p.append {
                self.ranged_calls.fetch_add(1, Ordering::Relaxed);
            }
            self.inner.write_file(p).await
        }
        async fn create_directory(
            &self,
            p: CreateDirectoryParams,
        ) -> Result<EmptyResponse, FsError> {
            self.inner.create_directory(p).await
        }
        async fn get_metadata(&self, p: GetMetadataParams) -> Result<GetMetadataResponse, FsError> {
            self.inner.get_metadata(p).await
        }
        async fn read_directory(
            &self,
            p: ReadDirectoryParams,
        ) -> Result<ReadDirectoryResponse, FsError> {
            self.inner.read_directory(p).await
        }
        async fn remove(&self, p: RemoveParams) -> Result<EmptyResponse, FsError> {
            self.inner.remove(p).await
        }
        async fn copy(&self, p: CopyParams) -> Result<EmptyResponse, FsError> {
            self.inner.copy(p).await
        }
        async fn rename(&self, _: RenameParams) -> Result<EmptyResponse, FsError> {
            self.ranged_calls.fetch_add(1, Ordering::Relaxed);
            Err(FsError::Transport("no fs/rename on this server".into()))
        }
        fn features(&self) -> FsFeatures {
            FsFeatures {
                ranges: false,
                rename: false,
                max_read_bytes: None,
            }
        }
    }

    fn scratch() -> (tempfile::TempDir, AbsolutePath) {
        let dir = tempfile::tempdir().unwrap();
        let path = AbsolutePath::from_path(&dir.path().join("f")).unwrap();
        (dir, path)
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[tokio::test]
    async fn ranged_round_trip_in_small_chunks() {
        let (dir, path) = scratch();
        let fs = LocalFileSystem::new(FsConfig::default());
        let source = data(10_000);
        for len in [0, 1, 999, 1000, 1001, 10_000] {
            let mut seen = Vec::new();
            let n = upload(&fs, &source[..len], &path, 1000, |t| seen.push(t))
                .await
                .unwrap();
            assert_eq!(n, len as u64);
            assert_eq!(std::fs::read(&path).unwrap(), &source[..len]);
            assert_eq!(seen.last().copied(), Some(len as u64));
            let mut back = Vec::new();
            let n = download(&fs, &path, &mut back, 1000, |_| {}).await.unwrap();
            assert_eq!((n, &back[..]), (len as u64, &source[..len]));
        }
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[tokio::test]
    async fn falls_back_to_whole_files_without_ranges() {
        let (_dir, path) = scratch();
        let fs = Plain {
            inner: LocalFileSystem::default(),
            ranged_calls: AtomicUsize::new(0),
        };
        let source = data(5000);
        upload(&fs, &source[..], &path, 1000, |_| {}).await.unwrap();
        let mut back = Vec::new();
        download(&fs, &path, &mut back, 1000, |_| {}).await.unwrap();
        assert_eq!(back, source);
        assert_eq!(fs.ranged_calls.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn failed_upload_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        // The destination is a directory: the rename fails after the data went up.
        std::fs::create_dir_all(dir.path().join("d/inner")).unwrap();
        let path = AbsolutePath::from_path(&dir.path().join("d")).unwrap();
        let fs = LocalFileSystem::default();
        let result = upload(&fs, &b"abc"[..], &path, 2, |_| {}).await;
        assert!(result.is_err());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("d")]);
    }
}
