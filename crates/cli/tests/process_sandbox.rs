//! Sandboxed processes (`process/start` with `sandbox`): one scenario suite, run against the
//! local environment and through a real server on loopback.
//!
//! Every attack is run twice on fresh fixtures: confined, where it must fail and leave its
//! victim byte-for-byte unchanged, and unsandboxed, where it must succeed (the control that
//! shows the attack is real). Fixtures live under the target directory, outside `/tmp` and
//! `$TMPDIR`, which are writable roots of codex's workspace-write profile.
//!
//! These need user namespaces, Landlock and seccomp. Without them they fail under `CI=true`,
//! and otherwise say so loudly and pass without running.

mod support;

use bytes::Bytes;
use exec_server_environment::local::{ProcessConfig, ProcessSandbox};
use exec_server_environment::{Environment, ProcessEvent, ProcessEvents};
use exec_server_protocol::process::{EnvInherit, EnvPolicy, ReadParams, StartParams};
use exec_server_protocol::sandbox::{SandboxContext, SandboxType};
use exec_server_protocol::AbsolutePath;
use exec_server_sandbox::{CommandSandbox, SandboxCaps, ServerFootprint};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use support::{within, ServerProcess, Target};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

both_targets! {
    workspace_writes_are_confined => super::workspace_writes_are_confined;
    git_metadata_stays_intact => super::git_metadata_stays_intact;
    missing_git_can_be_created_under_skip => super::missing_git_can_be_created_under_skip;
    symlinks_do_not_lead_out => super::symlinks_do_not_lead_out;
    read_only_profile_reads_but_never_writes => super::read_only_profile_reads_but_never_writes;
    minimal_reads_and_deny_entries => super::minimal_reads_and_deny_entries;
    detached_and_reexecuted_children_stay_confined => super::detached_and_reexecuted_children_stay_confined;
    network_restricted_and_enabled => super::network_restricted_and_enabled;
    no_way_back_to_the_server => super::no_way_back_to_the_server;
    no_capabilities_and_no_new_privs => super::no_capabilities_and_no_new_privs;
    pty_gets_resize_and_ctrl_c => super::pty_gets_resize_and_ctrl_c;
    signals_and_exit_statuses_are_the_commands => super::signals_and_exit_statuses_are_the_commands;
    terminate_kills_everything_in_the_sandbox => super::terminate_kills_everything_in_the_sandbox;
    sandbox_denied_is_reported => super::sandbox_denied_is_reported;
    missing_mechanism_refuses_and_spawns_nothing => super::missing_mechanism_refuses_and_spawns_nothing;
    policies_it_cannot_enforce_are_refused => super::policies_it_cannot_enforce_are_refused;
    server_port_stays_closed_to_other_protocols => super::server_port_stays_closed_to_other_protocols;
    gitdir_of_a_git_file_is_protected => super::gitdir_of_a_git_file_is_protected;
    protected_names_created_by_background_children_are_removed => super::protected_names_created_by_background_children_are_removed;
    paths_to_protected_things_cannot_be_swapped => super::paths_to_protected_things_cannot_be_swapped;
    planted_symlinks_refuse_the_launch => super::planted_symlinks_refuse_the_launch;
    machine_wide_proc_stays_read_only => super::machine_wide_proc_stays_read_only;
    inherited_descriptors_do_not_reach_the_command => super::inherited_descriptors_do_not_reach_the_command;
    huge_policies_are_refused_quickly => super::huge_policies_are_refused_quickly;
}

/// True when the machine can run the process sandbox; otherwise fails under CI or warns and
/// skips.
fn sandbox_available() -> bool {
    let sandbox = local_sandbox(SandboxCaps::probe(), Arc::default());
    if sandbox.mechanisms().is_empty() {
        let missing = "user namespaces, Landlock or seccomp (the start-up probe failed)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true, and this machine cannot run the process sandbox tests: {missing}");
        }
        eprintln!("\n!!! SKIPPED: process sandbox tests need {missing} !!!\n");
        return false;
    }
    true
}

fn local_sandbox(caps: SandboxCaps, footprint: Arc<ServerFootprint>) -> Arc<dyn ProcessSandbox> {
    Arc::new(CommandSandbox::new(
        PathBuf::from(env!("CARGO_BIN_EXE_exec-server")),
        caps,
        footprint,
    ))
}

/// An environment under test: local (with the real launcher binary) or a fresh server.
struct Sandboxed {
    env: Environment,
    server: Option<ServerProcess>,
}

impl Sandboxed {
    async fn new(target: Target) -> Option<Sandboxed> {
        Self::with(target, &[], &[], None).await
    }

    /// `serve_args`, `serve_env` and the client's `token` only matter for a remote target.
    async fn with(
        target: Target,
        serve_args: &[&str],
        serve_env: &[(&str, &str)],
        token: Option<&str>,
    ) -> Option<Sandboxed> {
        if !sandbox_available() {
            return None;
        }
        Some(match target {
            Target::Local => {
                let config = ProcessConfig {
                    sandbox: Some(local_sandbox(SandboxCaps::probe(), Arc::default())),
                    ..ProcessConfig::default()
                };
                Sandboxed {
                    env: Environment::local_with(config),
                    server: None,
                }
            }
            Target::Remote => {
                // `scripts/interop-codex.sh` points the remote half at codex's own server.
                if let Ok(url) = std::env::var("EXEC_SERVER_TEST_URL") {
                    let env = within("connect", exec_server_client::connect_environment(&url))
                        .await
                        .expect("connect to EXEC_SERVER_TEST_URL");
                    return Some(Sandboxed { env, server: None });
                }
                let server = ServerProcess::start_with(
                    serve_args,
                    serve_env,
                    std::process::Stdio::inherit(),
                );
                let options = exec_server_client::ClientOptions {
                    token: token.map(str::to_owned),
                    ..Default::default()
                };
                let client = within(
                    "connect",
                    exec_server_client::ExecServerClient::connect(&server.url, options),
                )
                .await
                .expect("connect to the test server");
                let env = exec_server_client::environment(client);
                Sandboxed {
                    env,
                    server: Some(server),
                }
            }
        })
    }

    /// The pid of whoever runs the processes: the server, or this test process.
    fn server_pid(&self) -> u32 {
        self.server.as_ref().map_or(std::process::id(), |s| s.pid())
    }

    async fn start(
        &self,
        params: StartParams,
    ) -> Result<Started, exec_server_environment::ProcessError> {
        let id = params.process_id.clone();
        let started = within("start", self.env.processes().start(params)).await?;
        Ok(Started {
            id,
            sandbox_type: started.sandbox_type,
            events: started.events,
        })
    }

    /// Runs to completion.
    async fn run(&self, params: StartParams) -> Outcome {
        let mut started = self.start(params).await.expect("start");
        let outcome = started.finish().await;
        Outcome {
            sandbox_type: started.sandbox_type,
            ..outcome
        }
    }
}

struct Started {
    id: String,
    sandbox_type: SandboxType,
    events: ProcessEvents,
}

impl Started {
    async fn finish(&mut self) -> Outcome {
        let events = within("the process to close", async {
            let mut out = vec![];
            while let Some(event) = self.events.next().await {
                let done = matches!(
                    event,
                    ProcessEvent::Closed { .. } | ProcessEvent::Failed { .. }
                );
                out.push(event);
                if done {
                    break;
                }
            }
            out
        })
        .await;
        let mut outcome = Outcome {
            output: String::new(),
            exit_code: i32::MIN,
            signal: None,
            sandbox_denied: false,
            sandbox_type: self.sandbox_type,
        };
        for event in events {
            match event {
                ProcessEvent::Output { chunk, .. } => {
                    outcome.output.push_str(&String::from_utf8_lossy(&chunk))
                }
                ProcessEvent::Exited {
                    exit_code,
                    signal,
                    sandbox_denied,
                    ..
                } => {
                    outcome.exit_code = exit_code;
                    outcome.signal = signal;
                    outcome.sandbox_denied = sandbox_denied;
                }
                ProcessEvent::Failed { message } => panic!("the process failed: {message}"),
                _ => {}
            }
        }
        outcome
    }

    /// Reads output until `needle` appears (the process keeps running).
    async fn wait_for_output(&mut self, needle: &str) -> String {
        within(&format!("output {needle:?}"), async {
            let mut seen = String::new();
            while let Some(event) = self.events.next().await {
                match event {
                    ProcessEvent::Output { chunk, .. } => {
                        seen.push_str(&String::from_utf8_lossy(&chunk));
                        if seen.contains(needle) {
                            return seen;
                        }
                    }
                    other => panic!("expected {needle:?}, got {other:?} after {seen:?}"),
                }
            }
            panic!("the events ended before {needle:?}: {seen:?}")
        })
        .await
    }
}

#[derive(Debug)]
struct Outcome {
    output: String,
    exit_code: i32,
    signal: Option<i32>,
    sandbox_denied: bool,
    sandbox_type: SandboxType,
}

/// A workspace and, outside it, a victim.
struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    ws: PathBuf,
    outside: PathBuf,
}

const VICTIM: &[u8] = b"victim: must not change\n";
const GIT_CONFIG: &[u8] = b"[core]\n\trepositoryformatversion = 0\n";

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("process-sandbox-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        let root = dir.path().canonicalize().unwrap();
        let ws = root.join("ws");
        let outside = root.join("outside");
        std::fs::create_dir_all(ws.join(".git/hooks")).unwrap();
        std::fs::write(ws.join(".git/config"), GIT_CONFIG).unwrap();
        std::fs::write(ws.join(".git/HEAD"), b"ref: refs/heads/main\n").unwrap();
        std::fs::write(ws.join("code.txt"), b"code\n").unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("victim"), VICTIM).unwrap();
        Fixture {
            _dir: dir,
            root,
            ws,
            outside,
        }
    }

    fn victim(&self) -> Vec<u8> {
        std::fs::read(self.outside.join("victim")).unwrap_or_default()
    }

    fn assert_untouched(&self) {
        assert_eq!(self.victim(), VICTIM, "the victim changed");
        let mut names: Vec<String> = std::fs::read_dir(&self.outside)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["victim"], "something was created outside");
    }

    /// Every entry under `.git` (relative to the workspace) with its content; a directory
    /// has none. Empty when `.git` is gone.
    fn git_snapshot(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut files = vec![];
        let mut stack = vec![self.ws.join(".git")];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                let relative = path.strip_prefix(&self.ws).unwrap().to_path_buf();
                if path.is_dir() {
                    stack.push(path);
                    files.push((relative, vec![]));
                } else {
                    files.push((relative, std::fs::read(&path).unwrap()));
                }
            }
        }
        files.sort();
        files
    }
}

fn uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

fn entry(kind: &str, access: &str) -> Value {
    json!({"path": {"type": "special", "value": {"kind": kind}}, "access": access})
}

fn protected(name: &str) -> Value {
    json!({"path": {"type": "special", "value": {"kind": "project_roots", "subpath": name}},
        "access": "read", "missing_path_behavior": "skip"})
}

/// A `sandbox` object in codex 0.171's shape, with these entries and network, for `ws`.
fn profile(ws: &Path, entries: Value, network: &str) -> SandboxContext {
    serde_json::from_value(json!({
        "permissions": {"type": "managed", "network": network,
            "file_system": {"type": "restricted", "entries": entries}},
        "cwd": uri(ws), "workspaceRoots": [uri(ws)],
        "windowsSandboxLevel": "disabled", "useLegacyLandlock": false
    }))
    .unwrap()
}

/// Codex 0.171's workspace-write profile, as its transcript has it.
fn workspace_write(ws: &Path, network: &str) -> SandboxContext {
    profile(
        ws,
        json!([
            entry("root", "read"),
            entry("project_roots", "write"),
            entry("slash_tmp", "write"),
            entry("tmpdir", "write"),
            protected(".git"),
            protected(".agents"),
            protected(".codex"),
            protected(".aws")
        ]),
        network,
    )
}

/// Codex 0.171's read-only profile.
fn read_only(ws: &Path) -> SandboxContext {
    profile(ws, json!([entry("root", "read")]), "restricted")
}

fn shell(cwd: &Path, script: &str, sandbox: Option<SandboxContext>) -> StartParams {
    let mut p = support::start_params(
        &format!("sbx{}", NEXT_ID.fetch_add(1, Ordering::Relaxed)),
        &["/bin/bash", "-c", script],
    );
    // As a `file://` URI, the form codex's current servers require.
    p.cwd = AbsolutePath::parse(&uri(cwd)).unwrap();
    p.env = BTreeMap::from([
        ("PATH".to_owned(), "/usr/local/bin:/usr/bin:/bin".to_owned()),
        ("HOME".to_owned(), cwd.display().to_string()),
    ]);
    p.sandbox = sandbox;
    p
}

/// Runs `script` in `ws` confined by `sandbox`, and again unsandboxed on a fresh fixture:
/// returns (confined, control) outcomes and fixtures.
async fn attack(
    t: &Sandboxed,
    script: impl Fn(&Fixture) -> String,
    sandbox: impl Fn(&Fixture) -> SandboxContext,
) -> ((Outcome, Fixture), (Outcome, Fixture)) {
    let confined = Fixture::new();
    let outcome = t
        .run(shell(
            &confined.ws,
            &script(&confined),
            Some(sandbox(&confined)),
        ))
        .await;
    assert_eq!(
        outcome.sandbox_type,
        SandboxType::LinuxSeccomp,
        "{outcome:?}"
    );
    let control = Fixture::new();
    let control_outcome = t.run(shell(&control.ws, &script(&control), None)).await;
    assert_eq!(control_outcome.sandbox_type, SandboxType::None);
    ((outcome, confined), (control_outcome, control))
}

async fn workspace_writes_are_confined(target: Target) {
    let Some(t) = Sandboxed::new(target).await else {
        return;
    };
    let fixture = Fixture::new();
    let inside = t
        .run(shell(
            &fixture.ws,
            "echo new > made.txt && mkdir -p sub/dir && echo more >> code.txt && mv made.txt sub/ && cat sub/made.txt",
            Some(workspace_write(&fixture.ws, "restricted")),
        ))
        .await;
    assert_eq!(
        (inside.exit_code, inside.output.as_str()),
        (0, "new\n"),
        "{inside:?}"
    );
    assert_eq!(
        std::fs::read(fixture.ws.join("code.txt")).unwrap(),
        b"code\nmore\n"
    );

    // Overwrite, append, create, rename, remove and chmod outside: each on its own, so one
    // success cannot hide behind another's failure.
    for attempt in [
        "echo owned > {out}/victim",
        "echo owned >> {out}/victim",
        "echo new > {out}/created",
        "mkdir {out}/dir",
        "mv {out}/victim {ws}/stolen",
        "mv {out}/victim {out}/renamed",
        "rm -f {out}/victim",
        "ln {out}/victim {ws}/hardlink && echo owned >> {ws}/hardlink",
        "truncate -s 0 {out}/victim",
        "chmod 000 {out}/victim && echo owned > {out}/victim",
    ] {
        let script = |f: &Fixture| {
            attempt
                .replace("{out}", &f.outside.display().to_string())
                .replace("{ws}", &f.ws.display().to_string())
        };
        let ((confined, fixture), (control, control_fixture)) =
            attack(&t, script, |f| workspace_write(&f.ws, "restricted")).await;
        assert_ne!(confined.exit_code, 0, "{attempt}: {confined:?}");
        fixture.assert_untouched();
        assert_eq!(control.exit_code, 0, "control {attempt}: {control:?}");
        let changed = control_fixture.victim() != VICTIM
            || std::fs::read_dir(&control_fixture.outside).unwrap().count() != 1;
        assert!(changed, "control {attempt} changed nothing");
    }
}

async fn git_metadata_stays_intact(target: Target) {
    let Some(t) = Sandboxed::new(target).await else {
        return;
    };
    for attempt in [
        "echo '[core] fsmonitor = evil' >> .git/config",
        "echo evil > .git/hooks/post-checkout && chmod +x .git/hooks/post-checkout",
        "rm -rf .git",
        "mv .git .git-old && mkdir .git",
        "umount .git",
        "umount -l .git",
        "unshare -Urm sh -c 'umount .git && echo x >> .git/config'",
    ] {
        let ((confined, fixture), (control, control_fixture)) = attack(
            &t,
            |_| attempt.to_owned(),
            |f| workspace_write(&f.ws, "restricted"),
        )
        .await;
        let pristine = Fixture::new().git_snapshot();
        assert_ne!(confined.exit_code, 0, "{attempt}: {confined:?}");
        assert_eq!(fixture.git_snapshot(), pristine, "{attempt} changed .git");
        assert!(!fixture.ws.join(".git-old").exists(), "{attempt}");
        // Unmounting needs a privilege nobody has unsandboxed either; the others work there.
        if !attempt.contains("umount") {
            assert_eq!(control.exit_code, 0, "control {attempt}: {control:?}");
            assert_ne!(
                control_fixture.git_snapshot(),
                pristine,
                "control {attempt} changed nothing"
            );
        }
    }
}

async fn missing_git_can_be_created_under_skip(target: Target) {
    let Some(t) = Sandboxed::new(target).await else {
        return;
    };
    // (Codex 0.171's own server refuses the writes inside a `.git` created under its skip
    // entry, unlike SPEC section 10: the interop run leaves this scenario out.)
    let fixture = Fixture::new();
    std::fs::remove_dir_all(fixture.ws.join(".git")).unwrap();
    let outcome = t
        .run(shell(
            &fixture.ws,
            "git init -q . && git config user.name t && echo ok",
            Some(workspace_write(&fixture.ws, "restricted")),
        ))
        .await;
    assert_eq!(
        (outcome.exit_code, outcome.output.as_str()),
        (0, "ok\n"),
        "{outcome:?}"
    );
    assert!(fixture.ws.join(".git/HEAD").is_file());

    if support::against_another_server() {
        return; // What follows is this server's rule.
    }
    // Without the skip entries (the April rule, and a profile that names no metadata), a
    // missing .codex may not be created: the sandbox removes it and says so.
    let fixture = Fixture::new();
    let strict = profile(
        &fixture.ws,
        json!([entry("root", "read"), entry("project_roots", "write")]),
        "restricted",
    );
    let outcome = t
        .run(shell(
            &fixture.ws,
            "mkdir .codex && echo evil > .codex/config.toml",
            Some(strict),
        ))
        .await;
    assert!(!fixture.ws.join(".codex").exists(), "{outcome:?}");
    assert_eq!(outcome.exit_code, 1, "{outcome:?}");
    assert!(outcome.sandbox_denied, "{outcome:?}");
    assert!(
        outcome.output.contains("the sandbox removed"),
        "{outcome:?}"
    );
}

async fn symlinks_do_not_lead_out(target: Target) {
    let Some(t) = Sandboxed::new(target).await else {
        return;
    };
    let script = |f: &Fixture| {
        format!(
            "ln -s {out} escape && echo owned > escape/victim",
            out = f.outside.display()
        )
    };
    let ((confined, fixture), (control, control_fixture)) =
        attack(&t, script, |f| workspace_write(&f.ws, "restricted")).await;
    assert_ne!(confined.exit_code, 0, "{confined:?}");
    fixture.assert_untouched();
    assert_eq!(control.exit_code, 0, "{control:?}");
    assert_eq!(control_fixture.victim(), b"owned\n");
}

async fn read_only_profile_reads_but_never_writes(target: Target) {
    let Some(t) = Sandboxed::new(target).await else {
        return;
    };
    let fixture = Fixture::new();
    let outcome = t
        .run(shell(
            &fixture.ws,
            &format!("cat code.txt {out}/victim", out = fixture.outside.display()),
            Some(read_only(&fixture.ws)),
        ))
        .await;
    assert_eq!(outcome.exit_code, 0, "{outcome:?}");
    assert_eq!(
        outcome.output,
        format!("code\n{}", String::from_utf8_lossy(VICTIM))
    );
    let ((confined, fixture), (control, _)) = attack(
        &t,
        |_| "echo changed > code.txt".to_owned(),
        |f| read_only(&f.ws),
    )
    .await;
    assert_ne!(confined.exit_code, 0, "{confined:?}");
    assert!(
        confined.output.contains("Read-only file system"),
        "{confined:?}"
    );
    assert_eq!(
        std::fs::read(fixture.ws.join("code.txt")).unwrap(),
        b"code\n"
    );
    assert_eq!(control.exit_code, 0);
}

async fn minimal_reads_and_deny_entries(target: Target) {
    let Some(t) = Sandboxed::new(target).await else {
        return;
    };
    let fixture = Fixture::new();
    std::fs::write(fixture.ws.join("secret.env"), b"TOKEN=1\n").unwrap();
    std::fs::create_dir(fixture.ws.join("private")).unwrap();
    std::fs::write(fixture.ws.join("private/key"), b"key\n").unwrap();
    let sandbox = |f: &Fixture| {
        profile(
            &f.ws,
            json!([entry("minimal", "read"), entry("project_roots", "write"),
                {"path": {"type": "path", "path": uri(&f.ws.join("secret.env"))}, "access": "deny"},
                {"path": {"type": "path", "path": uri(&f.ws.join("private"))}, "access": "deny"}]),
            "restricted",
        )
    };
    // The platform directories run the shell; the workspace is readable and writable.
    let outcome = t
        .run(shell(
            &fixture.ws,
            "cat code.txt && echo w > w.txt && cat /etc/hostname > /dev/null && echo ok",
            Some(sandbox(&fixture)),
        ))
        .await;
    assert_eq!(outcome.exit_code, 0, "{outcome:?}");
    assert_eq!(outcome.output, "code\nok\n");
    for attempt in [
        "cat secret.env",
        "cat private/key",
        "ls private",
        "echo x > secret.env",
        "rm -rf private",
        "cat {out}/victim",
        "ls {out}",
    ] {
        let script = attempt.replace("{out}", &fixture.outside.display().to_string());
        let outcome = t
            .run(shell(&fixture.ws, &script, Some(sandbox(&fixture))))
            .await;
        assert_ne!(outcome.exit_code, 0, "{attempt}: {outcome:?}");
        assert!(!outcome.output.contains("TOKEN"), "{attempt}: {outcome:?}");
        assert!(!outcome.output.contains("key\n"), "{attempt}: {outcome:?}");
        assert!(
            !outcome.output.contains("must not change"),
            "{attempt}: {outcome:?}"
        );
    }
    assert_eq!(
        std::fs::read(fixture.ws.join("secret.env")).unwrap(),
        b"TOKEN=1\n"
    );
    assert_eq!(
        std::fs::read(fixture.ws.join("private/key")).unwrap(),
        b"key\n"
    );
    // Control: without the sandbox the same reads work.
    let control = t
        .run(shell(&fixture.ws, "cat secret.env private/key", None))
        .await;
    assert_eq!(control.output, "TOKEN=1\nkey\n");
}

async fn detached_and_reexecuted_children_stay_confined(target: Target) {
    let Some(t) = Sandboxed::new(target).await else {
        return;
    };
    for attempt in [
        // The parent exits at once; the detached child writes later, from a new session.
        "setsid bash -c 'sleep 0.2; echo owned > {out}/victim; echo child-done' &",
        // A double fork whose grandchild is re-parented.
        "( ( sleep 0.2; echo owned > {out}/victim; echo grandchild-done ) & ) ; exit 0",
        // A fresh shell with a cleared environment.
        "exec env -i /bin/sh -c 'echo owned > {out}/victim'",
        "nohup sh -c 'echo owned > {out}/victim' >/dev/null 2>&1; sleep 0.1",
    ] {
        let script = |f: &Fixture| attempt.replace("{out}", &f.outside.display().to_string());
        let ((confined, fixture), (_, control_fixture)) =
            attack(&t, script, |f| workspace_write(&f.ws, "restricted")).await;
        fixture.assert_untouched();
        assert_eq!(control_fixture.victim(), b"owned\n", "control {attempt}");
        let _ = confined;
    }
}

async fn network_restricted_and_enabled(target: Target) {
    let Some(t) = Sandboxed::new(target).await else {
        return;
    };
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (tcp_port, udp_port) = (
        tcp.local_addr().unwrap().port(),
        udp.local_addr().unwrap().port(),
    );
    let script = format!(
        "echo hello-tcp > /dev/tcp/127.0.0.1/{tcp_port}; echo tcp=$?; \
         echo hello-udp > /dev/udp/127.0.0.1/{udp_port}; echo udp=$?"
    );
    let fixture = Fixture::new();
    let restricted = t
        .run(shell(
            &fixture.ws,
            &script,
            Some(workspace_write(&fixture.ws, "restricted")),
        ))
        .await;
    assert!(
        restricted.output.contains("tcp=1") && restricted.output.contains("udp=1"),
        "{restricted:?}"
    );
    // The listener saw nothing: no connection is pending, no datagram arrived.
    assert!(
        tokio::time::timeout(std::time::Duration::ZERO, tcp.accept())
            .await
            .is_err(),
        "a restricted command reached the TCP listener"
    );
    let mut buf = [0u8; 64];
    assert!(
        udp.try_recv(&mut buf).is_err(),
        "a restricted command reached the UDP socket"
    );

    let enabled = t
        .run(shell(
            &fixture.ws,
            &script,
            Some(workspace_write(&fixture.ws, "enabled")),
        ))
        .await;
    assert!(
        enabled.output.contains("tcp=0") && enabled.output.contains("udp=0"),
        "{enabled:?}"
    );
    within("the TCP connection", tcp.accept()).await.unwrap();
    let n = within("the datagram", udp.recv(&mut buf)).await.unwrap();
    assert_eq!(&buf[..n], b"hello-udp\n");
}

async fn no_way_back_to_the_server(target: Target) {
    let token_dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let token_file = token_dir.path().join("token");
    std::fs::write(&token_file, "s3cret-token-value").unwrap();
    // Over TCP, with a token in a file and in the environment the command inherits from.
    let token_path = token_file.display().to_string();
    let serve_args = ["--token-file", token_path.as_str()];
    let serve_env = [
        ("EXEC_SERVER_TOKEN", "s3cret-token-value"),
        ("XS_PLAIN", "plain"),
    ];
    let Some(mut t) =
        Sandboxed::with(target, &serve_args, &serve_env, Some("s3cret-token-value")).await
    else {
        return;
    };
    if target == Target::Local {
        // Locally there is no server; the sandbox hides what it is told to, all the same.
        let footprint = Arc::new(ServerFootprint::default());
        footprint.hide(token_file.clone());
        let config = ProcessConfig {
            sandbox: Some(local_sandbox(SandboxCaps::probe(), footprint)),
            ..ProcessConfig::default()
        };
        t.env = Environment::local_with(config);
    }
    let pid = t.server_pid();
    let port = t
        .server
        .as_ref()
        .map(|s| s.url.rsplit(':').next().unwrap().to_owned());
    let fixture = Fixture::new();
    let mut script = format!(
        "env | grep -c s3cret; cat {token} 2>/dev/null | grep -c s3cret; \
         kill -STOP {pid} 2>/dev/null && echo stopped; cat /proc/{pid}/environ >/dev/null 2>&1 && echo environ-read; \
         cat /proc/{pid}/mem >/dev/null 2>&1 && echo mem-read; echo end",
        token = token_file.display()
    );
    if let Some(port) = &port {
        script.push_str(&format!(
            "; echo x > /dev/tcp/127.0.0.1/{port} 2>/dev/null && echo reached-server"
        ));
    }
    let mut params = shell(
        &fixture.ws,
        &script,
        Some(workspace_write(&fixture.ws, "enabled")),
    );
    // As codex 0.171 sends it: inherit everything, default excludes ignored.
    params.env_policy = Some(EnvPolicy {
        inherit: EnvInherit::All,
        ignore_default_excludes: true,
        ..EnvPolicy::default()
    });
    params.env.insert(
        "EXEC_SERVER_TOKEN".to_owned(),
        "s3cret-token-value".to_owned(),
    );
    let outcome = t.run(params).await;
    assert!(
        outcome.output.starts_with("0\n0\n"),
        "a secret leaked: {outcome:?}"
    );
    for leak in ["stopped", "environ-read", "mem-read", "reached-server"] {
        assert!(!outcome.output.contains(leak), "{leak}: {outcome:?}");
    }
    assert!(outcome.output.contains("end"), "{outcome:?}");
    // The server is alive and well.
    let after = t.run(shell(&fixture.ws, "echo still-serving", None)).await;
    assert_eq!(after.output, "still-serving\n");
    if target == Target::Remote {
        // Control: unsandboxed, the token file and the port are reachable.
        let control = t
            .run(shell(
                &fixture.ws,
                &format!("cat {}", token_file.display()),
                None,
            ))
            .await;
        assert_eq!(control.output, "s3cret-token-value");
    }

    // A server on a Unix socket: the socket is covered in the sandbox's view.
    if target == Target::Remote {
        let socket_dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let socket = socket_dir.path().join("xs.sock");
        let listen = format!("unix://{}", socket.display());
        let server = ServerProcess::start_on(&listen, &[], &[], std::process::Stdio::inherit());
        let env = within(
            "connect",
            exec_server_client::connect_environment(&server.url),
        )
        .await
        .unwrap();
        let t = Sandboxed {
            env,
            server: Some(server),
        };
        let script = format!(
            "python3 -c 'import socket; s=socket.socket(socket.AF_UNIX); s.connect(\"{}\"); print(\"connected\")'",
            socket.display()
        );
        let confined = t
            .run(shell(
                &fixture.ws,
                &script,
                Some(workspace_write(&fixture.ws, "enabled")),
            ))
            .await;
        assert!(!confined.output.contains("connected"), "{confined:?}");
        let control = t.run(shell(&fixture.ws, &script, None)).await;
        assert!(control.output.contains("connected"), "{control:?}");
    }
}

async fn no_capabilities_and_no_new_privs(target: Target) {
    let Some(t) = Sandboxed::new(target).await else {
        return;
    };
    let fixture = Fixture::new();
    let outcome = t
        .run(shell(
            &fixture.ws,
            "grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status",
            Some(workspace_write(&fixture.ws, "restricted")),
        ))
        .await;
    for line in [
        "CapEff:\t0000000000000000",
        "CapPrm:\t0000000000000000",
        "CapBnd:\t0000000000000000",
        "NoNewPrivs:\t1",
        "Seccomp:\t2",
    ] {
        assert!(outcome.output.contains(line), "{line} in {outcome:?}");
    }
}

async fn pty_gets_resize_and_ctrl_c(target: Target) {
    let Some(t) = Sandboxed::new(target).await else {
        return;
    };
    let fixture = Fixture::new();
    let mut params = shell(
        &fixture.ws,
        "trap 'echo size=$(stty size)' WINCH; trap 'echo got-int; exit 5' INT; \
         echo size=$(stty size); echo ready; while :; do sleep 0.05; done",
        Some(workspace_write(&fixture.ws, "restricted")),
    );
    params.tty = true;
    let mut started = t.start(params).await.unwrap();
    started.wait_for_output("ready").await;
    let processes = t.env.processes();
    within("resize", processes.resize(&started.id, 33, 101))
        .await
        .unwrap();
    started.wait_for_output("size=33 101").await;
    within(
        "ctrl-c",
        processes.write(&started.id, Bytes::from_static(b"\x03")),
    )
    .await
    .unwrap();
    let outcome = started.finish().await;
    assert!(outcome.output.contains("got-int"), "{outcome:?}");
    assert_eq!(outcome.exit_code, 5, "{outcome:?}");
}

async fn signals_and_exit_statuses_are_the_commands(target: Target) {
    let Some(t) = Sandboxed::new(target).await else {
        return;
    };
    let fixture = Fixture::new();
    let sandbox = || Some(workspace_write(&fixture.ws, "restricted"));
    let code = t.run(shell(&fixture.ws, "exit 7", sandbox())).await;
    assert_eq!((code.exit_code, code.signal), (7, None));
    let killed = t.run(shell(&fixture.ws, "kill -9 $$", sandbox())).await;
    assert_eq!((killed.exit_code, killed.signal), (-1, Some(libc::SIGKILL)));
    let segv = t.run(shell(&fixture.ws, "kill -SEGV $$", sandbox())).await;
    assert_eq!((segv.exit_code, segv.signal), (-1, Some(libc::SIGSEGV)));

    // process/signal reaches the command's group, whose traps run; the wrapper survives it.
    let mut started = t
        .start(shell(
            &fixture.ws,
            "trap 'echo got-term; exit 9' TERM; trap 'echo got-usr1' USR1; echo ready; while :; do sleep 0.05; done",
            sandbox(),
        ))
        .await
        .unwrap();
    started.wait_for_output("ready").await;
    let processes = t.env.processes();
    assert!(within("signal", processes.signal(&started.id, "SIGUSR1"))
        .await
        .unwrap());
    started.wait_for_output("got-usr1").await;
    assert!(within("signal", processes.signal(&started.id, "SIGTERM"))
        .await
        .unwrap());
    let outcome = started.finish().await;
    assert!(outcome.output.contains("got-term"), "{outcome:?}");
    assert_eq!(
        (outcome.exit_code, outcome.signal),
        (9, None),
        "{outcome:?}"
    );

    // A SIGTERM the command does not handle kills it, as unsandboxed.
    let mut started = t
        .start(shell(&fixture.ws, "echo ready; exec sleep 100", sandbox()))
        .await
        .unwrap();
    started.wait_for_output("ready").await;
    assert!(within("signal", processes.signal(&started.id, "TERM"))
        .await
        .unwrap());
    let outcome = started.finish().await;
    assert_eq!(
        (outcome.exit_code, outcome.signal),
        (-1, Some(libc::SIGTERM))
    );
}

/// Killed by SIGKILL: `exitCode` -1 and `signal` 9 here; codex's server reports 137.
fn assert_killed(outcome: &Outcome) {
    if support::against_another_server() {
        assert!(matches!(outcome.exit_code, 137 | -1), "{outcome:?}");
    } else {
        assert_eq!(
            (outcome.exit_code, outcome.signal),
            (-1, Some(libc::SIGKILL)),
            "{outcome:?}"
        );
    }
}

/// The pids of `sleep` processes whose argument starts with `marker`.
fn processes_with(marker: &str) -> Vec<u32> {
    let prefix = format!("sleep\0{marker}");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).starts_with(&prefix))
        })
        .collect()
}

/// Waits (bounded) until `count` sleeps carry `marker`.
async fn until_running(marker: &str, count: usize) {
    within(&format!("{count} {marker} processes"), async {
        while processes_with(marker).len() < count {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
}

/// Waits (bounded) until no process carries `marker`.
async fn until_gone(marker: &str) {
    within(&format!("every {marker} process to die"), async {
        while !processes_with(marker).is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
}

async fn terminate_kills_everything_in_the_sandbox(target: Target) {
    let Some(t) = Sandboxed::new(target).await else {
        return;
    };
    let fixture = Fixture::new();
    let processes = t.env.processes();
    let unique = format!(
        "{}{}",
        std::process::id(),
        NEXT_ID.fetch_add(1, Ordering::Relaxed)
    );
    // A daemon that leaves its session and its stdout, and a background job in the group.
    let script = format!(
        "setsid sleep 9{unique}1 </dev/null >/dev/null 2>&1 & \
         ( sleep 9{unique}2 & ) ; echo ready; exec sleep 9{unique}3"
    );
    let mut started = t
        .start(shell(
            &fixture.ws,
            &script,
            Some(workspace_write(&fixture.ws, "restricted")),
        ))
        .await
        .unwrap();
    started.wait_for_output("ready").await;
    until_running(&format!("9{unique}"), 3).await;
    assert!(within("terminate", processes.terminate(&started.id))
        .await
        .unwrap());
    let outcome = started.finish().await;
    assert_killed(&outcome);
    until_gone(&format!("9{unique}")).await;
    if support::against_another_server() {
        // Codex's sandbox ends with the command, and its client has no timeoutMs.
        return;
    }

    // After the command exits, what it left behind still dies with terminate.
    let script = format!("setsid sleep 8{unique} </dev/null >/dev/null 2>&1 & echo ready");
    let mut started = t
        .start(shell(
            &fixture.ws,
            &script,
            Some(workspace_write(&fixture.ws, "restricted")),
        ))
        .await
        .unwrap();
    let outcome = started.finish().await;
    assert_eq!(outcome.exit_code, 0);
    // The daemon runs on after the command exited.
    until_running(&format!("8{unique}"), 1).await;
    assert!(!within("terminate", processes.terminate(&started.id))
        .await
        .unwrap());
    until_gone(&format!("8{unique}")).await;

    // The start timeout too.
    let mut params = shell(
        &fixture.ws,
        &format!("setsid sleep 7{unique} </dev/null >/dev/null 2>&1 & exec sleep 7{unique}"),
        Some(workspace_write(&fixture.ws, "restricted")),
    );
    params.timeout_ms = Some(300);
    let outcome = t.run(params).await;
    assert_killed(&outcome);
    until_gone(&format!("7{unique}")).await;
}

async fn sandbox_denied_is_reported(target: Target) {
    let Some(t) = Sandboxed::new(target).await else {
        return;
    };
    let fixture = Fixture::new();
    let script = format!("echo owned > {}/victim", fixture.outside.display());
    let mut denied = t
        .start(shell(
            &fixture.ws,
            &script,
            Some(workspace_write(&fixture.ws, "restricted")),
        ))
        .await
        .unwrap();
    let outcome = denied.finish().await;
    assert!(outcome.sandbox_denied, "{outcome:?}");
    let read = within(
        "read",
        t.env.processes().read(ReadParams {
            process_id: denied.id.clone(),
            ..ReadParams::default()
        }),
    )
    .await
    .unwrap();
    assert!(read.sandbox_denied);
    let clean = t
        .run(shell(
            &fixture.ws,
            "true",
            Some(workspace_write(&fixture.ws, "restricted")),
        ))
        .await;
    assert!(!clean.sandbox_denied, "{clean:?}");
    // A failure of the command's own is not a denial.
    let own = t
        .run(shell(
            &fixture.ws,
            "echo no such file; exit 127",
            Some(workspace_write(&fixture.ws, "restricted")),
        ))
        .await;
    assert!(!own.sandbox_denied, "{own:?}");
    // Unsandboxed, never.
    let plain = t
        .run(shell(
            &fixture.ws,
            &script.replace("victim", "missing/x"),
            None,
        ))
        .await;
    assert!(!plain.sandbox_denied, "{plain:?}");
}

async fn missing_mechanism_refuses_and_spawns_nothing(target: Target) {
    if !sandbox_available() {
        return;
    }
    let env = match target {
        Target::Local => {
            let mut caps = SandboxCaps::probe();
            caps.user_namespaces = false;
            let config = ProcessConfig {
                sandbox: Some(local_sandbox(caps, Arc::default())),
                ..ProcessConfig::default()
            };
            Sandboxed {
                env: Environment::local_with(config),
                server: None,
            }
        }
        Target::Remote => Sandboxed::with(
            target,
            &[],
            &[("EXEC_SERVER_SANDBOX_ASSUME_MISSING", "userns")],
            None,
        )
        .await
        .unwrap(),
    };
    let fixture = Fixture::new();
    let marker = fixture.ws.join("ran");
    let err = env
        .start(shell(
            &fixture.ws,
            &format!("touch {}", marker.display()),
            Some(workspace_write(&fixture.ws, "restricted")),
        ))
        .await
        .err()
        .expect("refused");
    let object = err.to_error_object();
    assert_eq!(object.code, -32602, "{object:?}");
    assert_eq!(object.data.unwrap()["reason"], "userNamespacesUnavailable");
    assert!(!marker.exists(), "the command ran");
    // Unsandboxed starts still work there.
    let plain = env.run(shell(&fixture.ws, "echo fine", None)).await;
    assert_eq!(plain.output, "fine\n");
}

async fn policies_it_cannot_enforce_are_refused(target: Target) {
    let Some(t) = Sandboxed::new(target).await else {
        return;
    };
    let fixture = Fixture::new();
    let marker = fixture.ws.join("ran");
    let touch = format!("touch {}", marker.display());
    let glob = profile(
        &fixture.ws,
        json!([entry("root", "read"), {"path": {"type": "glob_pattern", "pattern": "**/*.env"}, "access": "deny"}]),
        "restricted",
    );
    let mut managed = shell(
        &fixture.ws,
        &touch,
        Some(workspace_write(&fixture.ws, "restricted")),
    );
    managed.enforce_managed_network = true;
    let mut proxy = shell(
        &fixture.ws,
        &touch,
        Some(workspace_write(&fixture.ws, "restricted")),
    );
    proxy.network_proxy = Some(json!({"proxy": {}}));
    for (params, reason) in [
        (
            shell(&fixture.ws, &touch, Some(glob)),
            "unsupportedSandboxPolicy",
        ),
        (managed, "managedNetworkUnsupported"),
        (proxy, "networkProxyUnsupported"),
    ] {
        let err = t.start(params).await.err().expect("refused");
        let object = err.to_error_object();
        assert_eq!(object.code, -32602, "{object:?}");
        assert_eq!(object.data.unwrap()["reason"], reason);
        assert!(!marker.exists());
    }
    // `disabled` runs as it is, but reports the sandbox type codex reports.
    let disabled: SandboxContext =
        serde_json::from_value(json!({"permissions": {"type": "disabled"}})).unwrap();
    let outcome = t.run(shell(&fixture.ws, "echo free", Some(disabled))).await;
    assert_eq!(
        (outcome.output.as_str(), outcome.sandbox_type),
        ("free\n", SandboxType::LinuxSeccomp)
    );
}

/// What codex 0.171 sent (`data/codex-0.171-*-session.jsonl`, copied from `shared/interop/`):
/// the sandboxed `process/start` of each transcript and the sandboxed `fs/writeFile` of the
/// workspace-write one, replayed with `/workdir` and `/parentdir` moved into a fixture. The
/// answers carry the transcript's values (`sandboxType`, success), and the disk shows the
/// same effects: `RESULT` written in workspace-write only, the outside write refused in
/// both, the patch written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_0171_sandboxed_requests_replay() {
    if !sandbox_available() {
        return;
    }
    let server = ServerProcess::start(&[]);
    for (transcript, writes_result) in [
        (
            include_str!("data/codex-0.171-workspace-write-session.jsonl"),
            true,
        ),
        (
            include_str!("data/codex-0.171-read-only-session.jsonl"),
            false,
        ),
    ] {
        let fixture = Fixture::new();
        let (workdir, parentdir) = (fixture.root.join("workdir"), fixture.root.join("parentdir"));
        std::fs::create_dir_all(workdir.join("work")).unwrap();
        std::fs::create_dir_all(&parentdir).unwrap();
        let rebase = |text: &str| {
            text.replace("/workdir", &workdir.display().to_string())
                .replace("/parentdir", &parentdir.display().to_string())
        };
        let lines: Vec<Value> = transcript
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let mut peer = support::raw::RawPeer::initialized(&server.url).await;
        let mut replayed = 0;
        for (i, line) in lines.iter().enumerate() {
            let method = line["msg"]["method"].as_str().unwrap_or_default();
            let sandboxed = !line["msg"]["params"]["sandbox"].is_null();
            if line["dir"] != "c2s"
                || !sandboxed
                || !matches!(method, "process/start" | "fs/writeFile")
            {
                continue;
            }
            let message: Value = serde_json::from_str(&rebase(&line["msg"].to_string())).unwrap();
            let id = &message["id"];
            let reference = lines[i + 1..]
                .iter()
                .find(|l| l["dir"] == "s2c" && l["msg"]["id"] == *id)
                .map(|l| &l["msg"])
                .expect("the transcript answers every request");
            let ours = peer.request(message.clone()).await;
            assert_eq!(ours.get("error"), None, "{method}: {ours}");
            match method {
                "process/start" => {
                    assert_eq!(
                        ours["result"]["sandboxType"],
                        reference["result"]["sandboxType"]
                    );
                    assert_eq!(ours["result"]["sandboxType"], "linuxSeccomp");
                    // Its notifications: the exit as the transcript has it, then close.
                    let process_id = &message["params"]["processId"];
                    let exited = within("the exit", async {
                        loop {
                            let note = peer.next().await.expect("connection open");
                            if note["method"] == "process/exited"
                                && note["params"]["processId"] == *process_id
                            {
                                return note;
                            }
                        }
                    })
                    .await;
                    let reference_exit = lines
                        .iter()
                        .find(|l| l["msg"]["method"] == "process/exited")
                        .map(|l| &l["msg"]["params"])
                        .unwrap();
                    assert_eq!(exited["params"]["exitCode"], reference_exit["exitCode"]);
                    assert_eq!(
                        exited["params"]["sandboxDenied"],
                        reference_exit["sandboxDenied"]
                    );
                }
                _ => assert_eq!(ours["result"], reference["result"]),
            }
            replayed += 1;
        }
        assert!(replayed >= 1);
        let work = workdir.join("work");
        assert_eq!(
            work.join("RESULT").exists(),
            writes_result,
            "RESULT in {}",
            work.display()
        );
        assert!(
            !parentdir.join("ESCAPED_HOME").exists(),
            "the outside write escaped"
        );
        if writes_result {
            assert_eq!(
                std::fs::read(work.join("PATCHED.txt")).unwrap(),
                b"patched-ok\n"
            );
        }
    }
}

/// Landlock's TCP port rules see plain TCP connects only: with the network enabled, an
/// MPTCP socket or a TCP Fast Open `sendto` would reach the server's port without them. Both
/// are refused, while plain TCP to other ports still works.
async fn server_port_stays_closed_to_other_protocols(target: Target) {
    let Some(t) = Sandboxed::new(target).await else {
        return;
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other_port = listener.local_addr().unwrap().port();
    let server_port = match &t.server {
        Some(server) => server.url.rsplit(':').next().unwrap().to_owned(),
        None => {
            // Locally there is no server; close a port of our own the same way.
            drop(t);
            return server_port_stays_closed_locally(other_port).await;
        }
    };
    let fixture = Fixture::new();
    let probe = |port: &str| {
        format!(
            "import socket\n\
             def attempt(name, make):\n\
             \x20   try:\n\
             \x20       make(); print(name, 'connected')\n\
             \x20   except OSError as e: print(name, 'refused', e.errno)\n\
             def tcp():\n\
             \x20   s = socket.socket(); s.settimeout(2); s.connect(('127.0.0.1', {port}))\n\
             def mptcp():\n\
             \x20   s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262); s.settimeout(2)\n\
             \x20   s.connect(('127.0.0.1', {port}))\n\
             def fastopen():\n\
             \x20   s = socket.socket(); s.settimeout(2)\n\
             \x20   s.sendto(b'GET /healthz HTTP/1.0\\r\\n\\r\\n', 0x20000000, ('127.0.0.1', {port}))\n\
             \x20   assert s.recv(100)\n\
             def sctp():\n\
             \x20   socket.socket(socket.AF_INET, socket.SOCK_SEQPACKET, 0)\n\
             for name, make in [('tcp', tcp), ('mptcp', mptcp), ('fastopen', fastopen), ('sctp', sctp)]:\n\
             \x20   attempt(name, make)\n"
        )
    };
    let run = |port: &str, sandbox: Option<SandboxContext>| {
        let script = "python3 -c \"$PROBE\"";
        let mut p = shell(&fixture.ws, script, sandbox);
        p.env.insert("PROBE".to_owned(), probe(port));
        p
    };
    let confined = t
        .run(run(
            &server_port,
            Some(workspace_write(&fixture.ws, "enabled")),
        ))
        .await;
    for attempt in ["tcp", "mptcp", "fastopen", "sctp"] {
        assert!(
            confined.output.contains(&format!("{attempt} refused")),
            "{attempt}: {confined:?}"
        );
    }
    // The network is on: plain TCP elsewhere connects.
    let elsewhere = t
        .run(run(
            &other_port.to_string(),
            Some(workspace_write(&fixture.ws, "enabled")),
        ))
        .await;
    assert!(elsewhere.output.contains("tcp connected"), "{elsewhere:?}");
    // Control: unsandboxed, the server's port answers over plain TCP and MPTCP (Fast Open
    // needs the client side enabled in the kernel's tcp_fastopen setting).
    let control = t.run(run(&server_port, None)).await;
    for attempt in ["tcp connected", "mptcp connected"] {
        assert!(control.output.contains(attempt), "{attempt}: {control:?}");
    }
}

async fn server_port_stays_closed_locally(port: u16) {
    let footprint = Arc::new(ServerFootprint::default());
    footprint.set_tcp_ports(vec![port]);
    let t = Sandboxed {
        env: Environment::local_with(ProcessConfig {
            sandbox: Some(local_sandbox(SandboxCaps::probe(), footprint)),
            ..ProcessConfig::default()
        }),
        server: None,
    };
    let fixture = Fixture::new();
    let script = format!(
        "python3 -c \"import socket\nfor proto in (0, 262):\n  try:\n    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, proto)\n    s.connect(('127.0.0.1', {port})); print(proto, 'connected')\n  except OSError: print(proto, 'refused')\""
    );
    let confined = t
        .run(shell(
            &fixture.ws,
            &script,
            Some(workspace_write(&fixture.ws, "enabled")),
        ))
        .await;
    assert!(
        confined.output.contains("0 refused") && confined.output.contains("262 refused"),
        "{confined:?}"
    );
    let control = t.run(shell(&fixture.ws, &script, None)).await;
    assert!(control.output.contains("0 connected"), "{control:?}");
}

/// A `.git` *file* names the git directory git reads (`--separate-git-dir`, worktrees,
/// submodules): that directory stays read-only too.
async fn gitdir_of_a_git_file_is_protected(target: Target) {
    let Some(t) = Sandboxed::new(target).await else {
        return;
    };
    let setup = |f: &Fixture| {
        std::fs::remove_dir_all(f.ws.join(".git")).unwrap();
        let store = f.ws.join(".gitstore");
        std::fs::create_dir_all(store.join("hooks")).unwrap();
        std::fs::write(store.join("config"), GIT_CONFIG).unwrap();
        std::fs::write(f.ws.join(".git"), format!("gitdir: {}\n", store.display())).unwrap();
    };
    let attack = "echo '[core] fsmonitor = evil' >> .gitstore/config; \
                  echo evil > .gitstore/hooks/post-checkout; echo 'gitdir: /elsewhere' > .git";
    let (confined, control) = (Fixture::new(), Fixture::new());
    setup(&confined);
    setup(&control);
    let outcome = t
        .run(shell(
            &confined.ws,
            attack,
            Some(workspace_write(&confined.ws, "restricted")),
        ))
        .await;
    assert!(outcome.sandbox_denied, "{outcome:?}");
    assert_eq!(
        std::fs::read(confined.ws.join(".gitstore/config")).unwrap(),
        GIT_CONFIG
    );
    assert!(!confined.ws.join(".gitstore/hooks/post-checkout").exists());
    assert!(std::fs::read_to_string(confined.ws.join(".git"))
        .unwrap()
        .contains(".gitstore"));
    t.run(shell(&control.ws, attack, None)).await;
    assert_ne!(
        std::fs::read(control.ws.join(".gitstore/config")).unwrap(),
        GIT_CONFIG
    );
}

/// A protected name that was missing (and may not be created) is removed whenever it shows
/// up: when the command exits, and when the sandbox empties, so a background child that
/// creates it after the command's exit does not keep it either.
async fn protected_names_created_by_background_children_are_removed(target: Target) {
    let Some(t) = Sandboxed::new(target).await else {
        return;
    };
    let fixture = Fixture::new();
    let strict = profile(
        &fixture.ws,
        json!([entry("root", "read"), entry("project_roots", "write")]),
        "restricted",
    );
    let script = "(setsid sh -c 'sleep 0.3; mkdir .codex && echo evil > .codex/config.toml && \
                  echo created' &); exit 0";
    let outcome = t.run(shell(&fixture.ws, script, Some(strict))).await;
    assert!(outcome.output.contains("created"), "{outcome:?}");
    // The background child has exited (closed came after it let go of stdout); the sandbox
    // is emptying, and takes .codex with it.
    within("the sandbox to remove .codex", async {
        while fixture.ws.join(".codex").exists() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// Directories between a writable root and something protected below it cannot be renamed
/// while a command runs, so a later launch cannot be made to protect a decoy.
async fn paths_to_protected_things_cannot_be_swapped(target: Target) {
    let Some(t) = Sandboxed::new(target).await else {
        return;
    };
    let fixture = Fixture::new();
    // The project is below another writable root (as a workspace under /tmp is).
    let outer = fixture.root.clone();
    let project = fixture.ws.clone();
    let nested = |f: &Path| {
        profile(
            f,
            json!([entry("root", "read"), entry("project_roots", "write"),
                {"path": {"type": "path", "path": uri(&outer)}, "access": "write"},
                protected(".git")]),
            "restricted",
        )
    };
    for attempt in [
        "cd .. && mv ws ws.real && mkdir ws && echo moved",
        "cd .. && mv ws/.git ws/.git-old && echo moved",
    ] {
        let outcome = t
            .run(shell(&project, attempt, Some(nested(&project))))
            .await;
        assert!(!outcome.output.contains("moved"), "{attempt}: {outcome:?}");
        assert_eq!(
            std::fs::read(project.join(".git/config")).unwrap(),
            GIT_CONFIG
        );
    }
    // A server secret inside a writable root: its directory cannot be renamed to read it.
    let secrets = fixture.ws.join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    std::fs::write(secrets.join("token"), "s3cret").unwrap();
    if target == Target::Local {
        let footprint = Arc::new(ServerFootprint::default());
        footprint.hide(secrets.join("token"));
        let local = Sandboxed {
            env: Environment::local_with(ProcessConfig {
                sandbox: Some(local_sandbox(SandboxCaps::probe(), footprint)),
                ..ProcessConfig::default()
            }),
            server: None,
        };
        let outcome = local
            .run(shell(
                &fixture.ws,
                "cat secrets/token; mv secrets s2 && cat s2/token",
                Some(workspace_write(&fixture.ws, "restricted")),
            ))
            .await;
        assert!(!outcome.output.contains("s3cret"), "{outcome:?}");
        assert!(secrets.join("token").exists());
    }
}

/// A symlink a sandboxed command could have planted inside a writable tree, on the way to a
/// writable root or a protected path, refuses the launch instead of redirecting a mount.
async fn planted_symlinks_refuse_the_launch(target: Target) {
    let Some(t) = Sandboxed::new(target).await else {
        return;
    };
    let fixture = Fixture::new();
    let victim_dir = fixture.outside.clone();
    // $TMPDIR inside the workspace, replaced by a link to the victim's directory.
    let tmpdir = fixture.ws.join("tmpd");
    std::os::unix::fs::symlink(&victim_dir, &tmpdir).unwrap();
    let mut params = shell(
        &fixture.ws,
        &format!("echo owned > {}/victim", victim_dir.display()),
        Some(workspace_write(&fixture.ws, "restricted")),
    );
    params
        .env
        .insert("TMPDIR".to_owned(), tmpdir.display().to_string());
    let err = t.start(params).await.err().expect("refused");
    let object = err.to_error_object();
    assert_eq!(object.code, -32602, "{object:?}");
    assert_eq!(object.data.unwrap()["reason"], "unsupportedSandboxPolicy");
    fixture.assert_untouched();

    // A project whose path crosses a link inside another writable root.
    let fixture = Fixture::new();
    std::os::unix::fs::symlink(&fixture.ws, fixture.root.join("link")).unwrap();
    let linked = fixture.root.join("link");
    let sandbox = profile(
        &linked,
        json!([entry("root", "read"), entry("project_roots", "write"),
            {"path": {"type": "path", "path": uri(&fixture.root)}, "access": "write"},
            protected(".git")]),
        "restricted",
    );
    let err = t
        .start(shell(&fixture.ws, "true", Some(sandbox)))
        .await
        .err()
        .expect("refused");
    assert_eq!(err.to_error_object().code, -32602);
}

/// Kernel settings, SysRq and the like change the whole machine: read-only in every policy,
/// the full-disk ones included (the command's user may be the machine's root).
async fn machine_wide_proc_stays_read_only(target: Target) {
    let Some(t) = Sandboxed::new(target).await else {
        return;
    };
    let fixture = Fixture::new();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let script = format!(
        "echo {host} > /proc/sys/kernel/hostname && echo wrote-sysctl; \
         echo > /sys/kernel/uevent_helper 2>/dev/null && echo wrote-sys; echo end",
        host = hostname.trim()
    );
    for sandbox in [
        serde_json::from_value::<SandboxContext>(
            json!({"permissions": {"type": "external", "network": "restricted"}}),
        )
        .unwrap(),
        workspace_write(&fixture.ws, "restricted"),
    ] {
        let outcome = t.run(shell(&fixture.ws, &script, Some(sandbox))).await;
        assert!(outcome.output.contains("end"), "{outcome:?}");
        assert!(!outcome.output.contains("wrote"), "{outcome:?}");
    }
    // Control: unsandboxed root writes it (the same value back).
    let control = t.run(shell(&fixture.ws, &script, None)).await;
    assert!(control.output.contains("wrote-sysctl"), "{control:?}");
}

/// A descriptor the server inherited without close-on-exec does not reach a sandboxed
/// command.
async fn inherited_descriptors_do_not_reach_the_command(target: Target) {
    let Some(t) = Sandboxed::new(target).await else {
        return;
    };
    let fixture = Fixture::new();
    let leaked = if target == Target::Local {
        // This test process plays the server: a descriptor without close-on-exec.
        let path =
            std::ffi::CString::new(fixture.outside.join("victim").display().to_string()).unwrap();
        // SAFETY: open with a valid path; the descriptor is closed below.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_APPEND) };
        assert!(fd > 2);
        Some(fd)
    } else {
        None
    };
    let outcome = t
        .run(shell(
            &fixture.ws,
            "ls /proc/self/fd | tr '\\n' ' '",
            Some(workspace_write(&fixture.ws, "restricted")),
        ))
        .await;
    // bash's own, ls's directory, and the standard three: nothing else.
    let fds: Vec<&str> = outcome.output.split_whitespace().collect();
    assert!(
        fds.len() <= 4,
        "descriptors reached the command: {outcome:?}"
    );
    if let Some(fd) = leaked {
        let write = t
            .run(shell(
                &fixture.ws,
                &format!("echo owned >&{fd}"),
                Some(workspace_write(&fixture.ws, "restricted")),
            ))
            .await;
        assert_ne!(write.exit_code, 0, "{write:?}");
        fixture.assert_untouched();
        // SAFETY: our own descriptor.
        unsafe { libc::close(fd) };
    }
}

/// A policy with thousands of entries is refused at once (resolution compares entries
/// pairwise).
async fn huge_policies_are_refused_quickly(target: Target) {
    let Some(t) = Sandboxed::new(target).await else {
        return;
    };
    let fixture = Fixture::new();
    let entries: Vec<Value> = (0..5000)
        .map(|i| json!({"path": {"type": "path", "path": format!("/p/{i}")}, "access": "read"}))
        .collect();
    let sandbox = profile(&fixture.ws, Value::Array(entries), "restricted");
    let err = t
        .start(shell(&fixture.ws, "true", Some(sandbox)))
        .await
        .err()
        .expect("refused");
    let object = err.to_error_object();
    assert_eq!(object.code, -32602, "{object:?}");
    assert!(object.message.contains("entries"), "{object:?}");
}
