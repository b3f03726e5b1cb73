//! This executable, opened once at start-up. The sandbox's helper processes (the fs helper,
//! the process launcher) are this binary re-executed, and running them by path would run
//! whatever sits at that path at the time: a sandboxed call that may write where the binary
//! lives could have replaced it with a script, which would then run unconfined. A
//! descriptor keeps the very file that is running, whatever happens to its path later.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::OnceLock;

static SELF_EXE: OnceLock<Result<OwnedFd, String>> = OnceLock::new();

/// Opens this executable (`/proc/self/exe`, resolved now) if it is not open yet. Call it
/// first thing in `main`, before anything could have changed the file at that path.
pub fn open_at_start() {
    SELF_EXE.get_or_init(|| {
        rustix::fs::open(
            "/proc/self/exe",
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| format!("cannot open this executable through /proc/self/exe: {e}"))
    });
}

/// A path that executes this very executable: `/proc/self/fd/N` of the descriptor opened at
/// start-up. (The descriptor is close-on-exec, but the kernel resolves the path before it
/// closes anything, so a child runs it.)
pub fn path() -> io::Result<PathBuf> {
    open_at_start();
    match SELF_EXE.get().expect("initialized above") {
        Ok(fd) => Ok(PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))),
        Err(e) => Err(io::Error::other(e.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_names_this_executable() {
        let path = path().unwrap();
        let target = std::fs::read_link(&path).unwrap();
        assert_eq!(target, std::env::current_exe().unwrap());
    }
}
