//! The sandbox helper: filesystem calls under a `read-only` or `workspace-write` policy run
//! in a short-lived process that locks itself down before it touches anything.
//!
//! Layers, outermost first (see docs/ARCHITECTURE.md, "Sandbox"):
//! - [`ruleset`]: Landlock confines every access to the policy's trees, in the kernel;
//! - [`syscall_filter`]: seccomp denies the network, exec, mounts and namespaces;
//! - [`confine`]: openat2 `RESOLVE_BENEATH` path discipline, which also keeps the policy's
//!   read-only paths (`.git`, `.codex`, `.agents`, the git directories a `.git` leads to,
//!   found by [`gitdir`]) read-only inside writable roots, and its denied paths out of reach.
//!
//! [`runner::HelperSandbox`] is the server's side (an
//! [`FsSandbox`](exec_server_environment::local::FsSandbox)); [`helper::run_helper`] is the
//! helper's `main`; [`probe`] says up front which mechanisms the machine has.

pub mod confine;
pub mod gitdir;
pub mod helper;
pub mod launcher;
pub mod lockdown;
pub mod policy;
pub mod probe;
pub mod process_sandbox;
pub mod ruleset;
pub mod runner;
pub mod self_exe;
pub mod syscall_filter;
pub mod view;

pub use helper::{run_helper, FS_HELPER_ARG};
pub use launcher::{run_launcher, LAUNCHER_ARG};
pub use lockdown::lock_down;
pub use policy::{resolve, Enforcement, PolicyError, ResolvedPolicy, Surroundings};
pub use probe::SandboxCaps;
pub use process_sandbox::{CommandSandbox, ServerFootprint};
pub use runner::{HelperProgram, HelperSandbox};
