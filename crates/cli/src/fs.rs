//! `exec-server fs`: file operations on a server (or, without `--url`, on this machine).

use anyhow::Context;
use exec_server_client::transfer::{self, TransferError, DEFAULT_CHUNK_BYTES};
use exec_server_environment::{FileSystem, FsError};
use exec_server_protocol::fs::{
    CopyParams, CreateDirectoryParams, GetMetadataParams, GetMetadataResponse, ReadDirectoryParams,
    RemoveParams, RenameParams,
};
use exec_server_protocol::AbsolutePath;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct FsArgs {
    /// Server to use (`ws://HOST:PORT`); without it the operations run here, in-process.
    #[arg(long, env = "EXEC_SERVER_URL", global = true)]
    url: Option<String>,
    /// Print results (and errors) as JSON on stdout, for scripts.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: FsCommand,
}

#[derive(clap::Subcommand)]
enum FsCommand {
    /// List a directory.
    Ls { path: String },
    /// Show a path's metadata.
    Stat { path: String },
    /// Write a file's contents to stdout.
    Cat { path: String },
    /// Upload a local file (`-` for stdin) to a path, replacing it atomically.
    Put {
        local: PathBuf,
        remote: String,
        /// Bytes per request.
        #[arg(long, default_value_t = DEFAULT_CHUNK_BYTES)]
        chunk_bytes: usize,
    },
    /// Download a file to a local path (`-` for stdout).
    Get {
        remote: String,
        local: PathBuf,
        /// Bytes per request.
        #[arg(long, default_value_t = DEFAULT_CHUNK_BYTES)]
        chunk_bytes: usize,
    },
    /// Create a directory.
    Mkdir {
        path: String,
        /// Create missing parents; no error if it exists.
        #[arg(short, long)]
        parents: bool,
    },
    /// Remove a file, symlink or directory (symlinks are never followed).
    Rm {
        path: String,
        /// Remove directories and their contents.
        #[arg(short, long)]
        recursive: bool,
        /// Ignore a missing path.
        #[arg(short, long)]
        force: bool,
    },
    /// Copy a file, symlink or (with -r) directory.
    Cp {
        source: String,
        destination: String,
        #[arg(short, long)]
        recursive: bool,
    },
    /// Move (rename) a path.
    Mv { source: String, destination: String },
}

/// Runs one `fs` subcommand; returns the exit code.
pub async fn run(args: FsArgs) -> anyhow::Result<u8> {
    let env = match &args.url {
        Some(url) => exec_server_client::connect_environment(url).await?,
        None => crate::local_sandbox::local_environment(),
    };
    let remote = args.url.is_some();
    let fs = env.filesystem().as_ref();
    match execute(fs, &args.command, remote, args.json).await {
        Ok(output) => {
            if args.json {
                println!("{output}");
            }
            Ok(0)
        }
        Err(CommandError::Fs(e)) if args.json => {
            println!("{}", json!({ "error": e.to_error_object() }));
            Ok(1)
        }
        Err(CommandError::Fs(e)) => {
            let object = e.to_error_object();
            anyhow::bail!("{} (code {})", object.message, object.code)
        }
        Err(CommandError::Other(e)) => Err(e),
    }
}

enum CommandError {
    Fs(FsError),
    Other(anyhow::Error),
}

impl From<FsError> for CommandError {
    fn from(e: FsError) -> Self {
        CommandError::Fs(e)
    }
}

impl From<anyhow::Error> for CommandError {
    fn from(e: anyhow::Error) -> Self {
        CommandError::Other(e)
    }
}

impl From<TransferError> for CommandError {
    fn from(e: TransferError) -> Self {
        match e {
            TransferError::Fs(e) => CommandError::Fs(e),
            other => CommandError::Other(other.into()),
        }
    }
}

/// Performs the command, printing human output unless `json`; returns the JSON output.
async fn execute(
    fs: &dyn FileSystem,
    command: &FsCommand,
    remote: bool,
    json: bool,
) -> Result<Value, CommandError> {
    let path = |s: &str| target_path(s, remote);
    Ok(match command {
        FsCommand::Ls { path: p } => {
            let mut listing = fs
                .read_directory(ReadDirectoryParams {
                    path: path(p)?,
                    sandbox: None,
                })
                .await?;
            listing
                .entries
                .sort_by(|a, b| a.file_name.cmp(&b.file_name));
            if !json {
                for entry in &listing.entries {
                    let suffix = if entry.is_directory { "/" } else { "" };
                    println!("{}{suffix}", entry.file_name);
                }
            }
            serde_json::to_value(&listing).context("serialize the listing")?
        }
        FsCommand::Stat { path: p } => {
            let meta = fs
                .get_metadata(GetMetadataParams {
                    path: path(p)?,
                    sandbox: None,
                })
                .await?;
            if !json {
                print_metadata(&meta);
            }
            serde_json::to_value(&meta).context("serialize the metadata")?
        }
        FsCommand::Cat { path: p } => {
            let source = path(p)?;
            transfer::download(
                fs,
                &source,
                tokio::io::stdout(),
                DEFAULT_CHUNK_BYTES,
                |_| {},
            )
            .await?;
            // The bytes went to stdout; `--json` adds nothing after them.
            return Ok(Value::Null);
        }
        FsCommand::Put {
            local,
            remote: r,
            chunk_bytes,
        } => {
            let destination = path(r)?;
            let (bytes, source) = if local == Path::new("-") {
                let bar = progress_bar(None);
                let n = transfer::upload(fs, tokio::io::stdin(), &destination, *chunk_bytes, |n| {
                    bar.set_position(n)
                })
                .await?;
                bar.finish_and_clear();
                (n, "-".to_owned())
            } else {
                let file = tokio::fs::File::open(local)
                    .await
                    .with_context(|| format!("cannot open {}", local.display()))?;
                let size = file.metadata().await.ok().map(|m| m.len());
                let bar = progress_bar(size);
                let n = transfer::upload(fs, file, &destination, *chunk_bytes, |n| {
                    bar.set_position(n)
                })
                .await?;
                bar.finish_and_clear();
                (n, local.display().to_string())
            };
            json!({"bytes": bytes, "source": source, "destination": destination})
        }
        FsCommand::Get {
            remote: r,
            local,
            chunk_bytes,
        } => {
            let source = path(r)?;
            let bytes = if local == Path::new("-") {
                transfer::download(fs, &source, tokio::io::stdout(), *chunk_bytes, |_| {}).await?
            } else {
                download_to_file(fs, &source, local, *chunk_bytes).await?
            };
            json!({"bytes": bytes, "source": source, "destination": local})
        }
        FsCommand::Mkdir { path: p, parents } => {
            fs.create_directory(CreateDirectoryParams {
                path: path(p)?,
                recursive: *parents,
                sandbox: None,
            })
            .await?;
            json!({})
        }
        FsCommand::Rm {
            path: p,
            recursive,
            force,
        } => {
            fs.remove(RemoveParams {
                path: path(p)?,
                recursive: *recursive,
                force: *force,
                sandbox: None,
            })
            .await?;
            json!({})
        }
        FsCommand::Cp {
            source,
            destination,
            recursive,
        } => {
            fs.copy(CopyParams {
                source_path: path(source)?,
                destination_path: path(destination)?,
                recursive: *recursive,
                sandbox: None,
            })
            .await?;
            json!({})
        }
        FsCommand::Mv {
            source,
            destination,
        } => {
            fs.rename(RenameParams {
                source_path: path(source)?,
                destination_path: path(destination)?,
                sandbox: None,
            })
            .await?;
            json!({})
        }
    })
}

/// A path on the target machine. Locally a relative path is taken from this directory; a
/// server's working directory is unknown, so remote paths must be absolute (or `file://`).
fn target_path(s: &str, remote: bool) -> Result<AbsolutePath, CommandError> {
    match AbsolutePath::parse(s) {
        Ok(p) => Ok(p),
        Err(_) if !remote && !s.starts_with("file:") => {
            let cwd = std::env::current_dir().context("cannot read the current directory")?;
            AbsolutePath::from_path(&cwd.join(s))
                .map_err(|e| CommandError::Other(anyhow::anyhow!("{e}")))
        }
        Err(e) => Err(CommandError::Other(anyhow::anyhow!("{e}"))),
    }
}

/// Downloads into a temporary file beside `local` and renames it into place, so an
/// interrupted download never leaves a truncated file under the final name.
async fn download_to_file(
    fs: &dyn FileSystem,
    source: &AbsolutePath,
    local: &Path,
    chunk_bytes: usize,
) -> Result<u64, CommandError> {
    let absolute = std::path::absolute(local)
        .with_context(|| format!("cannot resolve {}", local.display()))?;
    let absolute = AbsolutePath::from_path(&absolute).map_err(|e| anyhow::anyhow!("{e}"))?;
    let temporary = transfer::temporary_sibling(&absolute, "download")?;
    let size = if std::io::stderr().is_terminal() {
        fs.get_metadata(GetMetadataParams {
            path: source.clone(),
            sandbox: None,
        })
        .await
        .ok()
        .and_then(|m| m.size)
    } else {
        None
    };
    let file = tokio::fs::File::create(&temporary)
        .await
        .with_context(|| format!("cannot create {temporary}"))?;
    let bar = progress_bar(size);
    let result = transfer::download(
        fs,
        source,
        tokio::io::BufWriter::with_capacity(1 << 20, file),
        chunk_bytes,
        |n| bar.set_position(n),
    )
    .await;
    bar.finish_and_clear();
    match result {
        Ok(bytes) => {
            tokio::fs::rename(&temporary, &absolute)
                .await
                .with_context(|| format!("cannot rename {temporary} to {absolute}"))?;
            Ok(bytes)
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&temporary).await;
            Err(e.into())
        }
    }
}

/// A byte progress bar on stderr, or a hidden one when stderr is not a terminal.
fn progress_bar(total: Option<u64>) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    match total {
        Some(total) => ProgressBar::new(total).with_style(
            ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {bytes} {binary_bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    }
}

fn print_metadata(meta: &GetMetadataResponse) {
    let kind = if meta.is_directory {
        "directory"
    } else if meta.is_file {
        "file"
    } else if meta.is_symlink {
        "dangling symlink"
    } else {
        "other"
    };
    let link = if meta.is_symlink && (meta.is_file || meta.is_directory) {
        " (via symlink)"
    } else {
        ""
    };
    println!("type: {kind}{link}");
    if let Some(size) = meta.size {
        println!("size: {size}");
    }
    if let Some(mode) = meta.mode {
        println!("mode: {mode:04o}");
    }
    println!("modified_ms: {}", meta.modified_at_ms);
    println!("created_ms: {}", meta.created_at_ms);
}
