//! The production lock-down (`exec_server_sandbox::lock_down`, the function the helper
//! calls) applied to a real process, and what that process can no longer do: reach the
//! network, run a program, write outside its roots, or link an outside file into them.
//!
//! Each case re-runs this test binary as a child (`LOCKDOWN_CASE` names the case) so the
//! lock-down never touches the test harness; the child reports by its exit code and
//! stdout. These need Landlock and seccomp: without them they fail under `CI=true` and
//! say loudly that they did not run otherwise.

use exec_server_protocol::sandbox::NetworkPolicy;
use exec_server_sandbox::{lock_down, ResolvedPolicy, SandboxCaps};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;

const CASE_ENV: &str = "LOCKDOWN_CASE";
const ROOT_ENV: &str = "LOCKDOWN_ROOT";

/// True when the kernel can run these tests; otherwise fails under CI or warns and skips.
fn sandbox_available() -> bool {
    let caps = SandboxCaps::probe();
    if let Some(missing) = caps.fs_helper_unavailable("test") {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true, and this machine cannot run the sandbox tests: {missing}");
        }
        eprintln!("\n!!! SKIPPED: sandbox tests need Landlock and seccomp: {missing} !!!\n");
        return false;
    }
    true
}

/// Layout: `<tmp>/ws` (the writable root) and `<tmp>/outside/secret`.
struct Layout {
    dir: tempfile::TempDir,
}

impl Layout {
    fn new() -> Layout {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("ws")).unwrap();
        std::fs::create_dir(dir.path().join("outside")).unwrap();
        std::fs::write(dir.path().join("outside/secret"), b"secret").unwrap();
        Layout { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Runs `case` in a locked-down child; returns what it printed, asserting it exited 0.
    fn run(&self, case: &str) -> String {
        let output = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child", "--nocapture", "--test-threads=1"])
            .env(CASE_ENV, case)
            .env(ROOT_ENV, self.dir.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "case {case} failed: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }
}

/// The child side: locks itself down to `<root>/ws` (everything readable), then runs the
/// case. A failed assertion exits non-zero, which the parent reports.
#[test]
fn child() {
    let Ok(case) = std::env::var(CASE_ENV) else {
        return; // Only meaningful as a child of the tests below.
    };
    let root = PathBuf::from(std::env::var(ROOT_ENV).unwrap());
    lock_down(&ResolvedPolicy {
        writable_roots: vec![root.join("ws")],
        readable_roots: None,
        read_only: Vec::new(),
        denied: Vec::new(),
        network: NetworkPolicy::Restricted,
    })
    .expect("lock down");
    run_case(&case, &root);
    println!("CASE-OK {case}");
}

fn errno(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

fn run_case(case: &str, root: &Path) {
    match case {
        "status" => {
            // The thread's own status: the harness runs this case on a thread of its own,
            // and both layers apply per thread (the helper has only one).
            let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
            assert!(status.contains("Seccomp:\t2"), "{status}");
            assert!(status.contains("NoNewPrivs:\t1"), "{status}");
        }
        "tcp" => {
            let e = std::net::TcpStream::connect("127.0.0.1:9").unwrap_err();
            assert_eq!(errno(&e), libc::EPERM, "{e}");
            let e = std::net::TcpListener::bind("127.0.0.1:0").unwrap_err();
            assert_eq!(errno(&e), libc::EPERM, "{e}");
        }
        "udp" => {
            let e = std::net::UdpSocket::bind("127.0.0.1:0").unwrap_err();
            assert_eq!(errno(&e), libc::EPERM, "{e}");
            let e = std::net::UdpSocket::bind("[::1]:0").unwrap_err();
            assert_eq!(errno(&e), libc::EPERM, "{e}");
        }
        "unix-socket" => {
            let e = std::os::unix::net::UnixStream::pair().unwrap_err();
            assert_eq!(errno(&e), libc::EPERM, "{e}");
        }
        "exec" => {
            let program = c"/bin/true";
            let argv = [program.as_ptr(), std::ptr::null()];
            // SAFETY: valid NUL-terminated strings and a null-terminated argv; on success
            // this process would be replaced, which the assertion below catches.
            let rc = unsafe { libc::execv(program.as_ptr(), argv.as_ptr()) };
            let e = std::io::Error::last_os_error();
            assert_eq!(rc, -1);
            assert_eq!(errno(&e), libc::EPERM, "{e}");
            let e = Command::new("/bin/true").status().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
        }
        "threads" => {
            // clone3 answers ENOSYS, so glibc falls back to clone: threads still work.
            let answer = std::thread::spawn(|| 42).join().unwrap();
            assert_eq!(answer, 42);
        }
        "device-nodes" => {
            let path =
                std::ffi::CString::new(root.join("ws/node").into_os_string().into_encoded_bytes())
                    .unwrap();
            // SAFETY: a valid NUL-terminated path.
            let rc =
                unsafe { libc::mknod(path.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(1, 3)) };
            assert_eq!(rc, -1);
            assert_eq!(errno(&std::io::Error::last_os_error()), libc::EPERM);
            // SAFETY: as above.
            let rc = unsafe { libc::mkfifo(path.as_ptr(), 0o600) };
            assert_eq!(rc, -1);
            assert_eq!(errno(&std::io::Error::last_os_error()), libc::EPERM);
        }
        "namespaces" => {
            // SAFETY: unshare takes flags only.
            let rc = unsafe { libc::unshare(libc::CLONE_NEWUSER) };
            assert_eq!(rc, -1);
            assert_eq!(errno(&std::io::Error::last_os_error()), libc::EPERM);
        }
        "write-outside" => {
            let e = std::fs::write(root.join("outside/new"), b"x").unwrap_err();
            assert_eq!(errno(&e), libc::EACCES, "{e}");
            let e = std::fs::write(root.join("outside/secret"), b"x").unwrap_err();
            assert_eq!(errno(&e), libc::EACCES, "{e}");
            std::fs::write(root.join("ws/inside"), b"x").expect("write inside the root");
        }
        "symlink-out" => {
            std::os::unix::fs::symlink(root.join("outside"), root.join("ws/link")).unwrap();
            let e = std::fs::write(root.join("ws/link/new"), b"x").unwrap_err();
            assert_eq!(errno(&e), libc::EACCES, "{e}");
            let e = std::fs::create_dir(root.join("ws/link/dir")).unwrap_err();
            assert_eq!(errno(&e), libc::EACCES, "{e}");
            let e = std::fs::remove_file(root.join("ws/link/secret")).unwrap_err();
            assert_eq!(errno(&e), libc::EACCES, "{e}");
            let e = std::fs::write(root.join("ws/../outside/new"), b"x").unwrap_err();
            assert_eq!(errno(&e), libc::EACCES, "{e}");
        }
        "hard-link-in" => {
            let e = std::fs::hard_link(root.join("outside/secret"), root.join("ws/stolen"))
                .unwrap_err();
            assert!(
                matches!(errno(&e), libc::EXDEV | libc::EACCES | libc::EPERM),
                "{e}"
            );
        }
        "rename-out" => {
            std::fs::write(root.join("ws/f"), b"x").unwrap();
            let e = std::fs::rename(root.join("ws/f"), root.join("outside/f")).unwrap_err();
            assert!(matches!(errno(&e), libc::EXDEV | libc::EACCES), "{e}");
            let e = std::fs::rename(root.join("outside/secret"), root.join("ws/s")).unwrap_err();
            assert!(matches!(errno(&e), libc::EXDEV | libc::EACCES), "{e}");
        }
        other => panic!("unknown case {other}"),
    }
}

macro_rules! cases {
    ($($name:ident => $check:expr;)*) => {
        $(
            #[test]
            fn $name() {
                if !sandbox_available() {
                    return;
                }
                let layout = Layout::new();
                let out = layout.run(stringify!($name).trim_start_matches("r#").replace('_', "-").as_str());
                assert!(out.contains("CASE-OK"), "{out}");
                #[allow(clippy::redundant_closure_call)]
                ($check)(&layout);
            }
        )*
    };
}

fn secret_intact(layout: &Layout) {
    assert_eq!(
        std::fs::read(layout.path("outside/secret")).unwrap(),
        b"secret"
    );
    let names: Vec<_> = std::fs::read_dir(layout.path("outside"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["secret"], "something appeared outside the root");
}

cases! {
    status => |_: &Layout| {};
    tcp => |_: &Layout| {};
    udp => |_: &Layout| {};
    unix_socket => |_: &Layout| {};
    exec => |_: &Layout| {};
    namespaces => |_: &Layout| {};
    threads => |_: &Layout| {};
    device_nodes => |l: &Layout| assert!(!l.path("ws/node").exists());
    write_outside => |l: &Layout| {
        secret_intact(l);
        assert!(l.path("ws/inside").exists(), "the positive control did not write");
    };
    symlink_out => secret_intact;
    hard_link_in => |l: &Layout| {
        secret_intact(l);
        assert!(!l.path("ws/stolen").exists());
    };
    rename_out => |l: &Layout| {
        secret_intact(l);
        assert!(l.path("ws/f").exists());
        assert!(!l.path("ws/s").exists());
    };
}
