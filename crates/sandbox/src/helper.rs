//! The helper process: the `exec-server` binary re-executed with [`FS_HELPER_ARG`]. It reads
//! one [`HelperRequest`] from stdin, locks itself down, runs the operation through the same
//! `fs_ops` the server uses unsandboxed, and writes one [`HelperReply`] line to stdout.
//!
//! A reply always comes back for anything the helper can explain (denials, a missing
//! mechanism, a bad request); a non-zero exit means it crashed, and the server reports its
//! stderr.

use crate::confine::{Confined, Confinement};
use crate::lockdown::{lock_down, LockDownError};
use crate::policy::ResolvedPolicy;
use exec_server_environment::local::fs_ops::{self, FinalLink};
use exec_server_environment::local::{SandboxedFsRequest, SandboxedFsResponse};
use exec_server_environment::FsError;
use exec_server_protocol::{error_codes, EmptyResponse, ErrorObject};
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};
use std::path::Path;

/// argv[1] that makes `exec-server` run as the fs helper. Hidden: not a subcommand.
pub const FS_HELPER_ARG: &str = "__exec-server-fs-helper";

/// What the server sends the helper on stdin.
#[derive(Debug, Serialize, Deserialize)]
pub struct HelperRequest {
    pub request: SandboxedFsRequest,
    pub policy: ResolvedPolicy,
    /// The server's whole-file read limit.
    pub max_read_bytes: u64,
}

/// What the helper writes to stdout: `{"ok": ...}` or `{"error": {code, message}}`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HelperReply {
    Ok(SandboxedFsResponse),
    Error(ErrorObject),
}

/// The helper's `main`. Call it before anything else in the process starts a thread: the
/// lock-down applies to the calling thread and what it creates afterwards.
pub fn run_helper() -> i32 {
    // Run from a descriptor, the kernel names this process after its number; say what it is
    // in `ps` instead.
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"exec-server-fs".as_ptr()) };
    let mut input = Vec::new();
    if let Err(e) = io::stdin().read_to_end(&mut input) {
        eprintln!("exec-server fs helper: cannot read the request: {e}");
        return 2;
    }
    let reply = match serde_json::from_slice::<HelperRequest>(&input) {
        Ok(request) => {
            drop(input);
            match serve(request) {
                Ok(response) => HelperReply::Ok(response),
                Err(e) => HelperReply::Error(denial_as_invalid_request(e)),
            }
        }
        Err(e) => HelperReply::Error(ErrorObject::new(
            error_codes::INTERNAL_ERROR,
            format!("the sandbox helper could not decode its request: {e}"),
        )),
    };
    let mut stdout = io::stdout().lock();
    let written = serde_json::to_writer(&mut stdout, &reply)
        .map_err(io::Error::from)
        .and_then(|()| stdout.write_all(b"\n"))
        .and_then(|()| stdout.flush());
    match written {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("exec-server fs helper: cannot write the reply: {e}");
            2
        }
    }
}

fn serve(request: HelperRequest) -> Result<SandboxedFsResponse, FsError> {
    drop_fsetid().map_err(|e| {
        FsError::SandboxHelper(format!("the sandbox helper could not drop CAP_FSETID: {e}"))
    })?;
    lock_down(&request.policy).map_err(|e| match e {
        LockDownError::NoNewPrivs(_) => FsError::SandboxHelper(e.to_string()),
        other => FsError::SandboxUnavailable(other.to_string()),
    })?;
    let confinement = Confinement::new(&request.policy)?;
    execute(request.request, &confinement, request.max_read_bytes)
}

/// Drops `CAP_FSETID`, so that writing to a setuid or setgid file clears those bits, as it
/// does for any unprivileged writer. A helper running as root would otherwise let a
/// sandboxed call put its own bytes into a setuid program that lies in a writable root.
fn drop_fsetid() -> io::Result<()> {
    use rustix::thread::{capabilities, set_capabilities, CapabilitySet};
    let mut sets = capabilities(None)?;
    sets.effective.remove(CapabilitySet::FSETID);
    sets.permitted.remove(CapabilitySet::FSETID);
    sets.inheritable.remove(CapabilitySet::FSETID);
    set_capabilities(None, sets)?;
    Ok(())
}

/// Every denial is -32600 (SPEC section 10): besides EACCES and EPERM, which the reference
/// mapping already sends there, EROFS, and the EXDEV and ELOOP with which openat2 and
/// Landlock refuse a path.
fn denial_as_invalid_request(error: FsError) -> ErrorObject {
    let mut object = error.to_error_object();
    if let FsError::Io(io) = &error {
        if matches!(
            io.raw_os_error(),
            Some(libc::EROFS) | Some(libc::EXDEV) | Some(libc::ELOOP)
        ) {
            object.code = error_codes::INVALID_REQUEST;
        }
    }
    object
}

fn empty(result: Result<(), FsError>) -> Result<SandboxedFsResponse, FsError> {
    result.map(|()| SandboxedFsResponse::Empty(EmptyResponse {}))
}

/// Runs one operation on confined paths.
pub fn execute(
    request: SandboxedFsRequest,
    confinement: &Confinement,
    max_read_bytes: u64,
) -> Result<SandboxedFsResponse, FsError> {
    let guard = confinement.guard();
    match request {
        SandboxedFsRequest::ReadFile(p) => {
            let file = confinement.readable(&p.path, true)?;
            fs_ops::read_file(file.path(), p.offset, p.length, max_read_bytes)
                .map(SandboxedFsResponse::ReadFile)
        }
        SandboxedFsRequest::GetMetadata(p) => {
            get_metadata(confinement, &p.path).map(SandboxedFsResponse::GetMetadata)
        }
        SandboxedFsRequest::ReadDirectory(p) => {
            let dir = confinement.readable(&p.path, true)?;
            let listing = if confinement.reads_confined() {
                // A symlink entry is described only when its target is readable too, and
                // a denied entry is not listed.
                fs_ops::read_directory_with(
                    dir.path(),
                    &|entry: &Path| {
                        let name = entry.file_name().unwrap_or_default();
                        confinement.readable_target(&p.path.join(name))
                    },
                    &|entry| confinement.is_denied_entry(entry),
                )
            } else {
                fs_ops::read_directory(dir.path())
            };
            listing.map(SandboxedFsResponse::ReadDirectory)
        }
        SandboxedFsRequest::WriteFile(p) => {
            let target = confinement.writable_file(&p.path)?;
            confinement.check_writable(&target)?;
            let data = p.data_base64.into_bytes();
            empty(fs_ops::write_file(
                &target.path(),
                &data,
                p.offset,
                p.append,
                FinalLink::Refuse,
                guard,
            ))
        }
        SandboxedFsRequest::CreateDirectory(p) => {
            fs_ops::check_path_depth(&p.path)?;
            empty(create_directory(confinement, &p.path, p.recursive))
        }
        SandboxedFsRequest::Remove(p) => {
            let target = match confinement.writable(&p.path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound && p.force => {
                    return empty(Ok(()));
                }
                other => other?,
            };
            confinement.check_replaceable(&target)?;
            empty(fs_ops::remove(&target.path(), p.recursive, p.force))
        }
        SandboxedFsRequest::Copy(p) => {
            let source = confinement.readable(&p.source_path, false)?;
            let destination = confinement.writable_file(&p.destination_path)?;
            confinement.check_writable(&destination)?;
            empty(fs_ops::copy(
                source.path(),
                &destination.path(),
                p.recursive,
                FinalLink::Refuse,
                guard,
            ))
        }
        SandboxedFsRequest::Rename(p) => {
            let source = confinement.writable(&p.source_path)?;
            confinement.check_replaceable(&source)?;
            let destination = confinement.writable(&p.destination_path)?;
            confinement.check_replaceable(&destination)?;
            confinement.check_creatable(&destination)?;
            empty(fs_ops::rename(&source.path(), &destination.path()))
        }
    }
}

fn get_metadata(
    confinement: &Confinement,
    path: &Path,
) -> Result<exec_server_protocol::fs::GetMetadataResponse, FsError> {
    let entry: Confined = confinement.readable(path, false)?;
    if !confinement.reads_confined() {
        return fs_ops::get_metadata(entry.path());
    }
    // A symlink's target is described only when the policy lets the helper see it.
    fs_ops::get_metadata_with(entry.path(), &|_: &Path| confinement.readable_target(path))
}

/// `fs/createDirectory`: with `recursive`, one component at a time so every directory
/// created is checked ([`Confinement::create_dir_all`]).
fn create_directory(
    confinement: &Confinement,
    path: &Path,
    recursive: bool,
) -> Result<(), FsError> {
    if recursive {
        return Ok(confinement.create_dir_all(path)?);
    }
    if confinement.is_writable_root(path) {
        return Err(FsError::Io(io::Error::from_raw_os_error(libc::EEXIST)));
    }
    let target = confinement.writable(path)?;
    confinement.check_creatable(&target)?;
    fs_ops::create_directory(&target.path(), false)
}
