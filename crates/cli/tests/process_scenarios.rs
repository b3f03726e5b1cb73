//! The process scenario suite: written once against `ProcessBackend`, run against the local
//! environment and against the remote one (the real server binary on loopback).

mod support;

use bytes::Bytes;
use exec_server_environment::{ProcessEvent, ProcessEvents};
use exec_server_protocol::process::{
    EnvInherit, EnvPolicy, OutputStream, ReadParams, StartParams, WriteStatus,
};
use exec_server_protocol::{error_codes, AbsolutePath};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use support::{within, Target, TestEnv};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn params(argv: &[&str]) -> StartParams {
    support::start_params(
        &format!("p{}", NEXT_ID.fetch_add(1, Ordering::Relaxed)),
        argv,
    )
}

fn sh(script: &str) -> StartParams {
    params(&["/bin/sh", "-c", script])
}

/// `timeoutMs` on `process/start`: the server kills the whole group when it expires, and a
/// process that ends first is left alone.
async fn start_timeout_kills_the_group(target: Target) {
    let env = TestEnv::new(target).await;
    let processes = env.env.processes();
    if target == Target::Remote && support::against_another_server() {
        // A server without the feature would ignore the field; the client refuses instead.
        let mut p = sh("sleep 30");
        p.timeout_ms = Some(100);
        match within("refused start", processes.start(p)).await {
            Ok(_) => panic!("a start with timeoutMs was sent to a server without the feature"),
            Err(err) => assert_eq!(err.code(), error_codes::METHOD_NOT_FOUND, "{err}"),
        }
        return;
    }
    // The background sleep keeps stdout open: `closed` only comes if the group died too.
    let mut p = sh("sleep 30 & echo started; wait");
    p.timeout_ms = Some(300);
    let mut started = within("start", processes.start(p)).await.unwrap();
    let events = all_events(&mut started.events).await;
    assert_eq!(output(&events), b"started\n");
    assert_eq!(exit_of(&events), (-1, Some(libc::SIGKILL)));
    assert!(
        matches!(events.last(), Some(ProcessEvent::Closed { .. })),
        "{events:?}"
    );

    let mut p = sh("exit 7");
    p.timeout_ms = Some(60_000);
    let mut quick = within("start", processes.start(p)).await.unwrap();
    assert_eq!(exit_of(&all_events(&mut quick.events).await), (7, None));
}

/// Collects events until `Closed` (or the stream ends).
async fn all_events(events: &mut ProcessEvents) -> Vec<ProcessEvent> {
    within("the process to close", async {
        let mut out = vec![];
        while let Some(event) = events.next().await {
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
    .await
}

fn output(events: &[ProcessEvent]) -> Vec<u8> {
    events
        .iter()
        .filter_map(|e| match e {
            ProcessEvent::Output { chunk, .. } => Some(chunk.to_vec()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn exit_of(events: &[ProcessEvent]) -> (i32, Option<i32>) {
    events
        .iter()
        .find_map(|e| match e {
            ProcessEvent::Exited {
                exit_code, signal, ..
            } => Some((*exit_code, *signal)),
            _ => None,
        })
        .expect("no exit event")
}

/// Asserts a death by `signal`: `exitCode: -1` and the signal number. Against another server
/// (interop runs) only a non-zero code is required: `signal` is our addition, and the codex
/// server reports a PTY child's signal death as exit code 1.
fn assert_killed_by(events: &[ProcessEvent], signal: i32) {
    let (code, sig) = exit_of(events);
    if support::against_another_server() {
        assert_ne!(code, 0, "{events:?}");
        return;
    }
    assert_eq!((code, sig), (-1, Some(signal)), "{events:?}");
}

/// Runs a process to completion and returns its events.
async fn run(env: &TestEnv, p: StartParams) -> Vec<ProcessEvent> {
    let mut started = within("start", env.env.processes().start(p))
        .await
        .expect("start");
    all_events(&mut started.events).await
}

/// Reads output via `process/read` until at least `want` bytes arrived.
async fn read_until(env: &TestEnv, id: &str, want: &[u8]) -> Vec<u8> {
    within("output via read", async {
        let mut after = 0;
        let mut got = vec![];
        loop {
            let r = env
                .env
                .processes()
                .read(ReadParams {
                    process_id: id.to_owned(),
                    after_seq: Some(after),
                    max_bytes: None,
                    wait_ms: Some(5_000),
                })
                .await
                .expect("read");
            for c in &r.chunks {
                got.extend_from_slice(&c.chunk);
            }
            after = r.next_seq - 1;
            if got.windows(want.len()).any(|w| w == want) || r.closed {
                return got;
            }
        }
    })
    .await
}

async fn exit_codes(target: Target) {
    let env = TestEnv::new(target).await;
    assert_eq!(exit_of(&run(&env, sh("exit 0")).await), (0, None));
    assert_eq!(exit_of(&run(&env, sh("exit 7")).await), (7, None));
    assert_killed_by(&run(&env, sh("kill -TERM $$")).await, libc::SIGTERM);
    let mut tty = sh("kill -KILL $$");
    tty.tty = true;
    assert_killed_by(&run(&env, tty).await, libc::SIGKILL);
}

async fn seq_order_and_contiguity(target: Target) {
    let env = TestEnv::new(target).await;
    // The child prints to stderr only after the test has seen its stdout, so the order of
    // the two streams is known without relying on timing.
    let mut p = sh("printf out; read go; printf err >&2; exit 3");
    p.pipe_stdin = true;
    let id = p.process_id.clone();
    let mut started = within("start", env.env.processes().start(p)).await.unwrap();
    let first = within("stdout", started.events.next()).await.unwrap();
    assert!(matches!(
        &first,
        ProcessEvent::Output {
            stream: OutputStream::Stdout,
            ..
        }
    ));
    env.env
        .processes()
        .write(&id, Bytes::from_static(b"\n"))
        .await
        .unwrap();
    let mut events = vec![first];
    events.extend(all_events(&mut started.events).await);
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| match e {
            ProcessEvent::Output { seq, .. }
            | ProcessEvent::Exited { seq, .. }
            | ProcessEvent::Closed { seq } => *seq,
            other => panic!("unexpected event {other:?}"),
        })
        .collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "{events:?}"
    );
    let n = events.len();
    // Output written before the exit precedes it here; the codex server may number a late
    // stderr chunk after the exit, so interop runs only check that the exit is there.
    if support::against_another_server() {
        assert_eq!(exit_of(&events), (3, None));
    } else {
        assert!(matches!(
            events[n - 2],
            ProcessEvent::Exited { exit_code: 3, .. }
        ));
    }
    assert!(matches!(events[n - 1], ProcessEvent::Closed { .. }));
    let streams: Vec<(OutputStream, Vec<u8>)> = events
        .iter()
        .filter_map(|e| match e {
            ProcessEvent::Output { stream, chunk, .. } => Some((*stream, chunk.to_vec())),
            _ => None,
        })
        .collect();
    assert_eq!(
        streams,
        vec![
            (OutputStream::Stdout, b"out".to_vec()),
            (OutputStream::Stderr, b"err".to_vec())
        ]
    );
    // The same history through `process/read`.
    let id = {
        let p = sh("printf a; exit 0");
        let id = p.process_id.clone();
        run(&env, p).await;
        id
    };
    let r = env
        .env
        .processes()
        .read(ReadParams {
            process_id: id,
            ..ReadParams::default()
        })
        .await
        .unwrap();
    assert_eq!(r.chunks.len(), 1);
    assert_eq!((r.exited, r.exit_code, r.closed), (true, Some(0), true));
    assert_eq!(r.next_seq, r.chunks[0].seq + 1);
    // `firstRetainedSeq` is our addition; the codex server (interop runs) has no such field,
    // and may number the exit before the output.
    if !support::against_another_server() {
        assert_eq!(r.chunks[0].seq, 1);
        assert_eq!(r.first_retained_seq, Some(1));
    }
}

async fn binary_safe_output(target: Target) {
    let env = TestEnv::new(target).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bytes");
    let all: Vec<u8> = (0..=255u8).cycle().take(256 * 300).collect();
    std::fs::write(&file, &all).unwrap();
    let events = run(&env, params(&["/bin/cat", file.to_str().unwrap()])).await;
    assert_eq!(output(&events), all);
}

async fn pty_echoes_written_input(target: Target) {
    let env = TestEnv::new(target).await;
    let mut p = params(&["/bin/cat"]);
    p.tty = true;
    let id = p.process_id.clone();
    let started = within("start", env.env.processes().start(p)).await.unwrap();
    drop(started.events);
    let status = env
        .env
        .processes()
        .write(&id, Bytes::from_static(b"hello pty\n"))
        .await
        .unwrap();
    assert_eq!(status, WriteStatus::Accepted);
    // The terminal echoes the line, then cat prints it again: two copies, CRLF-translated.
    let got = read_until(&env, &id, b"hello pty\r\nhello pty\r\n").await;
    assert!(
        got.windows(22).any(|w| w == b"hello pty\r\nhello pty\r\n"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    let chunks = env
        .env
        .processes()
        .read(ReadParams {
            process_id: id.clone(),
            ..ReadParams::default()
        })
        .await
        .unwrap()
        .chunks;
    assert!(chunks.iter().all(|c| c.stream == OutputStream::Pty));
    assert!(env.env.processes().terminate(&id).await.unwrap());
}

async fn pipe_stdin_write_then_read(target: Target) {
    let env = TestEnv::new(target).await;
    let mut p = params(&["/bin/cat"]);
    p.pipe_stdin = true;
    let id = p.process_id.clone();
    let started = within("start", env.env.processes().start(p)).await.unwrap();
    drop(started.events);
    let status = env
        .env
        .processes()
        .write(&id, Bytes::from_static(b"ping\n"))
        .await
        .unwrap();
    assert_eq!(status, WriteStatus::Accepted);
    assert_eq!(read_until(&env, &id, b"ping\n").await, b"ping\n");
    assert!(env.env.processes().terminate(&id).await.unwrap());
}

async fn pipelined_writes_arrive_in_order(target: Target) {
    let env = TestEnv::new(target).await;
    let mut p = params(&["/usr/bin/head", "-n", "1000"]);
    p.pipe_stdin = true;
    let id = p.process_id.clone();
    let mut started = within("start", env.env.processes().start(p)).await.unwrap();
    let processes = env.env.processes().clone();
    // All writes are issued before any reply is awaited.
    let writes = (0..1000).map(|i| {
        let processes = processes.clone();
        let id = id.clone();
        async move {
            processes
                .write(&id, Bytes::from(format!("line {i}\n")))
                .await
        }
    });
    let statuses = within("1000 writes", futures::future::join_all(writes)).await;
    assert!(statuses
        .iter()
        .all(|s| matches!(s, Ok(WriteStatus::Accepted))));
    let events = all_events(&mut started.events).await;
    let expected: String = (0..1000).map(|i| format!("line {i}\n")).collect();
    assert_eq!(String::from_utf8(output(&events)).unwrap(), expected);
    assert_eq!(exit_of(&events), (0, None));
}

async fn write_without_stdin_is_stdin_closed(target: Target) {
    let env = TestEnv::new(target).await;
    let p = sh("cat; echo saw-eof");
    let id = p.process_id.clone();
    let mut started = within("start", env.env.processes().start(p)).await.unwrap();
    let status = env
        .env
        .processes()
        .write(&id, Bytes::from_static(b"x\n"))
        .await
        .unwrap();
    assert_eq!(status, WriteStatus::StdinClosed);
    let events = all_events(&mut started.events).await;
    assert_eq!(output(&events), b"saw-eof\n");
    let unknown = env
        .env
        .processes()
        .write("no-such-process", Bytes::from_static(b"x"))
        .await
        .unwrap();
    assert_eq!(unknown, WriteStatus::UnknownProcess);
}

async fn terminate_then_exit_then_not_running(target: Target) {
    let env = TestEnv::new(target).await;
    let p = params(&["/bin/sleep", "100"]);
    let id = p.process_id.clone();
    let mut started = within("start", env.env.processes().start(p)).await.unwrap();
    assert!(env.env.processes().terminate(&id).await.unwrap());
    let events = all_events(&mut started.events).await;
    assert_killed_by(&events, libc::SIGKILL);
    assert!(!env.env.processes().terminate(&id).await.unwrap());
    assert!(!env
        .env
        .processes()
        .terminate("never-started")
        .await
        .unwrap());
}

/// State letter from /proc/PID/stat, or None when the process is gone.
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

async fn terminate_kills_grandchild_that_traps_term(target: Target) {
    for tty in [false, true] {
        let env = TestEnv::new(target).await;
        let mut p =
            sh(r#"sh -c 'trap "" TERM; echo GRANDCHILD=$$; while :; do sleep 1; done' & wait"#);
        p.tty = tty;
        let id = p.process_id.clone();
        let mut started = within("start", env.env.processes().start(p)).await.unwrap();
        let mut seen = vec![];
        let pid: u32 = within("grandchild pid", async {
            loop {
                match started.events.next().await {
                    Some(ProcessEvent::Output { chunk, .. }) => {
                        seen.extend_from_slice(&chunk);
                        let text = String::from_utf8_lossy(&seen).into_owned();
                        if let Some(line) = text.lines().find(|l| l.starts_with("GRANDCHILD=")) {
                            if text.contains('\n') {
                                break line["GRANDCHILD=".len()..].trim().parse().unwrap();
                            }
                        }
                    }
                    other => panic!("unexpected event {other:?}"),
                }
            }
        })
        .await;
        assert!(
            matches!(proc_state(pid), Some(s) if s != 'Z'),
            "grandchild should be alive"
        );
        assert!(env.env.processes().terminate(&id).await.unwrap());
        let events = all_events(&mut started.events).await;
        assert!(matches!(events.last(), Some(ProcessEvent::Closed { .. })));
        // Closed means every holder of the output pipe or terminal has closed it, which a
        // SIGKILLed process does early in its exit; wait for the exit to finish. It may then
        // linger as a zombie until its new parent reaps it, but it is dead.
        within("the grandchild to die after terminate", async {
            loop {
                let state = proc_state(pid);
                if state.is_none() || state == Some('Z') {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
        .await;
    }
}

fn test_env_vars() -> &'static [(&'static str, &'static str)] {
    &[
        ("XS_TEST_PLAIN", "plain"),
        ("XS_TEST_API_KEY", "key"),
        ("xs_test_secret_lower", "secret"),
        ("XS_TEST_TOKEN", "token"),
        ("XS_TEST_DROP_ME", "drop"),
    ]
}

/// The variables the env tests look for, present in this process (the local environment's
/// server) and inherited by every server it starts. Set once, before any test reads them.
fn ensure_test_env() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for (k, v) in test_env_vars() {
            std::env::set_var(k, v);
        }
    });
}

async fn child_env(
    env: &TestEnv,
    policy: Option<EnvPolicy>,
    overlay: &[(&str, &str)],
) -> BTreeMap<String, String> {
    let mut p = params(&["/usr/bin/env"]);
    p.env_policy = policy;
    p.env = overlay
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let out = String::from_utf8(output(&run(env, p).await)).unwrap();
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

async fn environment_is_exact_and_policies_apply(target: Target) {
    ensure_test_env();
    let env = TestEnv::new(target).await;
    let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };

    // No policy: exactly `env`, nothing of the server's leaks.
    assert_eq!(
        child_env(&env, None, &[("ONLY", "1")]).await,
        map(&[("ONLY", "1")])
    );

    // inherit all: server variables, minus default excludes (case-insensitive).
    let all = child_env(&env, Some(EnvPolicy::default()), &[]).await;
    assert_eq!(all.get("XS_TEST_PLAIN").map(String::as_str), Some("plain"));
    assert!(all.contains_key("PATH"));
    for hidden in ["XS_TEST_API_KEY", "xs_test_secret_lower", "XS_TEST_TOKEN"] {
        assert!(
            !all.contains_key(hidden),
            "{hidden} should be excluded by default"
        );
    }

    // ignoreDefaultExcludes keeps them; `exclude` globs are case-insensitive.
    let kept = child_env(
        &env,
        Some(EnvPolicy {
            ignore_default_excludes: true,
            exclude: vec!["xs_test_d?op_*".into()],
            ..EnvPolicy::default()
        }),
        &[],
    )
    .await;
    assert_eq!(kept.get("XS_TEST_TOKEN").map(String::as_str), Some("token"));
    assert_eq!(
        kept.get("xs_test_secret_lower").map(String::as_str),
        Some("secret")
    );
    assert!(!kept.contains_key("XS_TEST_DROP_ME"));

    // inherit core: only core names survive.
    let core = child_env(
        &env,
        Some(EnvPolicy {
            inherit: EnvInherit::Core,
            ..EnvPolicy::default()
        }),
        &[],
    )
    .await;
    assert!(core.contains_key("PATH"));
    assert!(!core.contains_key("XS_TEST_PLAIN"));
    let core_names = [
        "HOME", "LANG", "LC_ALL", "LC_CTYPE", "LOGNAME", "PATH", "SHELL", "TEMP", "TMP", "TMPDIR",
        "USER",
    ];
    assert!(
        core.keys().all(|k| core_names.contains(&k.as_str())),
        "{core:?}"
    );

    // inherit none + set + includeOnly, then the overlay wins and is kept.
    let none = child_env(
        &env,
        Some(EnvPolicy {
            inherit: EnvInherit::None,
            set: map(&[("SET_A", "a"), ("SET_B", "b"), ("OVER", "from-set")]),
            include_only: vec!["set_a".into(), "OVER".into()],
            ..EnvPolicy::default()
        }),
        &[("OVER", "from-env"), ("EXTRA", "x")],
    )
    .await;
    assert_eq!(
        none,
        map(&[("SET_A", "a"), ("OVER", "from-env"), ("EXTRA", "x")])
    );
}

async fn cwd_is_honoured(target: Target) {
    let env = TestEnv::new(target).await;
    let dir = tempfile::tempdir().unwrap();
    let canonical = dir.path().canonicalize().unwrap();
    let mut p = params(&["/bin/pwd", "-P"]);
    p.cwd = AbsolutePath::from_path(&canonical).unwrap();
    let out = output(&run(&env, p).await);
    assert_eq!(
        String::from_utf8(out).unwrap().trim_end(),
        canonical.to_str().unwrap()
    );
}

async fn duplicate_ids_and_empty_argv(target: Target) {
    let env = TestEnv::new(target).await;
    let p = params(&["/bin/sleep", "100"]);
    let id = p.process_id.clone();
    let _started = within("start", env.env.processes().start(p.clone()))
        .await
        .unwrap();
    let err = env
        .env
        .processes()
        .start(p)
        .await
        .err()
        .expect("duplicate must fail");
    assert_eq!(err.code(), error_codes::INVALID_REQUEST, "{err}");
    assert!(err.to_string().contains("already exists"), "{err}");
    env.env.processes().terminate(&id).await.unwrap();

    // Concurrent starts of one id: exactly one wins.
    let p = params(&["/bin/sleep", "100"]);
    let id = p.process_id.clone();
    let starts = (0..8).map(|_| env.env.processes().start(p.clone()));
    let results = within("concurrent starts", futures::future::join_all(starts)).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(r.code(), error_codes::INVALID_REQUEST, "{r}");
    }
    env.env.processes().terminate(&id).await.unwrap();

    let err = env
        .env
        .processes()
        .start(params(&[]))
        .await
        .err()
        .expect("empty argv");
    assert_eq!(err.code(), error_codes::INVALID_PARAMS, "{err}");

    let err = env
        .env
        .processes()
        .start(params(&["/definitely/not/a/program"]))
        .await
        .err()
        .expect("missing program");
    assert_eq!(err.code(), error_codes::INTERNAL_ERROR, "{err}");

    let err = env
        .env
        .processes()
        .read(ReadParams {
            process_id: "nope".into(),
            ..ReadParams::default()
        })
        .await
        .expect_err("unknown process");
    assert_eq!(err.code(), error_codes::INVALID_REQUEST);
    assert!(err.to_string().contains("unknown process id nope"), "{err}");
}

async fn long_poll_returns_when_output_arrives(target: Target) {
    if support::against_another_server() {
        // The codex server serves one request at a time per connection, so the write that
        // would end the poll waits behind it (sometimes the write wins the race; not always).
        eprintln!("SKIPPED long poll: needs a server that handles requests concurrently");
        return;
    }
    let env = TestEnv::new(target).await;
    let mut p = sh("read line; echo got-$line");
    p.pipe_stdin = true;
    let id = p.process_id.clone();
    let started = within("start", env.env.processes().start(p)).await.unwrap();
    drop(started.events);
    let processes = env.env.processes().clone();
    let poll_id = id.clone();
    // The process prints nothing until it is written to, so the read can only return early
    // (with output) because the output arrived; a timeout would return no chunks.
    let poll = tokio::spawn(async move {
        processes
            .read(ReadParams {
                process_id: poll_id,
                after_seq: Some(0),
                max_bytes: None,
                wait_ms: Some(60_000),
            })
            .await
    });
    let status = env
        .env
        .processes()
        .write(&id, Bytes::from_static(b"x\n"))
        .await
        .unwrap();
    assert_eq!(status, WriteStatus::Accepted);
    let r = within("the long poll", poll).await.unwrap().unwrap();
    let text: Vec<u8> = r.chunks.iter().flat_map(|c| c.chunk.to_vec()).collect();
    assert!(
        text.starts_with(b"got-x"),
        "{:?}",
        String::from_utf8_lossy(&text)
    );
}

async fn max_bytes_is_respected_and_chunks_never_split(target: Target) {
    let env = TestEnv::new(target).await;
    // Many writes of assorted sizes; well under the default retention.
    let p = sh(
        "i=0; while [ $i -lt 200 ]; do head -c $((i * 37 % 3000 + 1)) /dev/zero; i=$((i+1)); done",
    );
    let id = p.process_id.clone();
    let events = run(&env, p).await;
    let whole = output(&events);
    let chunk_sizes: BTreeMap<u64, usize> = events
        .iter()
        .filter_map(|e| match e {
            ProcessEvent::Output { seq, chunk, .. } => Some((*seq, chunk.len())),
            _ => None,
        })
        .collect();
    for max in [1u64, 100, 1000, 4096, 10_000] {
        let mut after = 0;
        let mut got = vec![];
        loop {
            let r = env
                .env
                .processes()
                .read(ReadParams {
                    process_id: id.clone(),
                    after_seq: Some(after),
                    max_bytes: Some(max),
                    wait_ms: None,
                })
                .await
                .unwrap();
            if r.chunks.is_empty() {
                break;
            }
            let total: u64 = r.chunks.iter().map(|c| c.chunk.len() as u64).sum();
            assert!(
                total <= max || r.chunks.len() == 1,
                "maxBytes {max} exceeded by {} chunks totalling {total}",
                r.chunks.len()
            );
            for c in &r.chunks {
                assert_eq!(
                    chunk_sizes[&c.seq],
                    c.chunk.len(),
                    "chunk {} was split",
                    c.seq
                );
                got.extend_from_slice(&c.chunk);
            }
            after = r.next_seq - 1;
        }
        assert_eq!(
            got, whole,
            "paging with maxBytes {max} lost or duplicated bytes"
        );
    }
}

async fn eviction_reports_first_retained_seq(target: Target) {
    const RETAINED: usize = 64 * 1024;
    if support::against_another_server() {
        eprintln!("SKIPPED eviction: it needs a server started with a small retention");
        return;
    }
    let env = TestEnv::with_retention(target, Some(RETAINED)).await;
    // 1 MiB of patterned output, far more than the retention budget.
    let p = sh("i=0; while [ $i -lt 4096 ]; do printf '%0255d\\n' $i; i=$((i+1)); done");
    let id = p.process_id.clone();
    let events = run(&env, p).await;
    let chunks: Vec<(u64, Vec<u8>)> = events
        .iter()
        .filter_map(|e| match e {
            ProcessEvent::Output { seq, chunk, .. } => Some((*seq, chunk.to_vec())),
            _ => None,
        })
        .collect();
    let whole: Vec<u8> = chunks.iter().flat_map(|(_, c)| c.clone()).collect();
    assert_eq!(whole.len(), 4096 * 256, "the live stream must lose nothing");

    // Expected retention: evict oldest whole chunks while over budget.
    let mut retained: std::collections::VecDeque<&(u64, Vec<u8>)> = chunks.iter().collect();
    let mut total: usize = chunks.iter().map(|(_, c)| c.len()).sum();
    let mut expected_first = 1;
    while total > RETAINED {
        let (seq, c) = retained.pop_front().unwrap();
        total -= c.len();
        expected_first = seq + 1;
    }
    let r = env
        .env
        .processes()
        .read(ReadParams {
            process_id: id,
            ..ReadParams::default()
        })
        .await
        .unwrap();
    assert!(expected_first > 1, "the test must evict something");
    assert_eq!(r.first_retained_seq, Some(expected_first));
    assert_eq!(r.chunks.first().map(|c| c.seq), Some(expected_first));
    let kept: Vec<u8> = r.chunks.iter().flat_map(|c| c.chunk.to_vec()).collect();
    assert!(kept.len() <= RETAINED);
    assert_eq!(
        kept[..],
        whole[whole.len() - kept.len()..],
        "retained bytes must be the tail"
    );
}

/// The process additions (signal, closeStdin, list, resize) exist on this project's server
/// only. In interop runs against another server, the remote client must refuse them with a
/// typed error instead of sending them; check that and tell the scenario to stop.
async fn additions_absent(env: &TestEnv, target: Target) -> bool {
    if target != Target::Remote || !support::against_another_server() {
        return false;
    }
    let err = env.env.processes().list().await.expect_err("list refused");
    assert_eq!(err.code(), error_codes::METHOD_NOT_FOUND, "{err}");
    assert!(
        err.to_string().contains("does not support process/list"),
        "{err}"
    );
    let err = env.env.processes().signal("p", "SIGINT").await.unwrap_err();
    assert_eq!(err.code(), error_codes::METHOD_NOT_FOUND, "{err}");
    true
}

/// Takes events until the output seen so far contains `want`; fails on an exit first.
async fn output_until(events: &mut ProcessEvents, seen: &mut Vec<u8>, want: &[u8]) {
    within("output", async {
        while !seen.windows(want.len()).any(|w| w == want) {
            match events.next().await {
                Some(ProcessEvent::Output { chunk, .. }) => seen.extend_from_slice(&chunk),
                other => panic!(
                    "expected {:?} in the output, got {other:?} after {:?}",
                    String::from_utf8_lossy(want),
                    String::from_utf8_lossy(seen)
                ),
            }
        }
    })
    .await
}

/// Declares each scenario `$name(target)` as `$steps(target)` bounded as a whole by
/// `within`, so every call of the scenario is bounded, not only its waits.
macro_rules! bounded_scenarios {
    ($($name:ident => $steps:ident;)*) => {
        $(
            async fn $name(target: Target) {
                within(stringify!($name), $steps(target)).await;
            }
        )*
    };
}

bounded_scenarios! {
    signal_reaches_trapping_script => signal_reaches_trapping_script_steps;
    stop_and_continue => stop_and_continue_steps;
    signal_errors_and_after_exit => signal_errors_and_after_exit_steps;
    close_stdin_ends_input_after_queued_writes => close_stdin_ends_input_after_queued_writes_steps;
    list_reports_running_and_exited => list_reports_running_and_exited_steps;
    resize_changes_the_terminal_size => resize_changes_the_terminal_size_steps;
    resize_of_a_pipes_process_is_an_error => resize_of_a_pipes_process_is_an_error_steps;
}

async fn signal_reaches_trapping_script_steps(target: Target) {
    let env = TestEnv::new(target).await;
    if additions_absent(&env, target).await {
        return;
    }
    // Any accepted spelling: with and without the prefix, any case.
    for (name, trapped, code) in [
        ("SIGINT", "INT", 42),
        ("TERM", "TERM", 43),
        ("sigusr1", "USR1", 44),
    ] {
        // The background sleep keeps the group busy; the trap reports the signal, kills it
        // and exits with a known code, so the exit proves the trap ran.
        let p = sh(&format!(
            "trap 'echo got-{trapped}; kill $! 2>/dev/null; exit {code}' {trapped}; \
             sleep 100 >/dev/null 2>&1 & echo ready; wait"
        ));
        let id = p.process_id.clone();
        let mut started = within("start", env.env.processes().start(p)).await.unwrap();
        let mut seen = vec![];
        output_until(&mut started.events, &mut seen, b"ready\n").await;
        let delivered = within("signal", env.env.processes().signal(&id, name))
            .await
            .unwrap();
        assert!(delivered, "{name}");
        let events = all_events(&mut started.events).await;
        seen.extend(output(&events));
        assert_eq!(
            String::from_utf8_lossy(&seen),
            format!("ready\ngot-{trapped}\n")
        );
        assert_eq!(exit_of(&events), (code, None), "{name}: {events:?}");
    }
}

async fn stop_and_continue_steps(target: Target) {
    let env = TestEnv::new(target).await;
    if additions_absent(&env, target).await {
        return;
    }
    let mut p = sh("echo $$; exec cat");
    p.pipe_stdin = true;
    let id = p.process_id.clone();
    let mut started = within("start", env.env.processes().start(p)).await.unwrap();
    let mut seen = vec![];
    output_until(&mut started.events, &mut seen, b"\n").await;
    let pid: u32 = String::from_utf8_lossy(&seen).trim().parse().unwrap();
    seen.clear();

    assert!(env.env.processes().signal(&id, "SIGSTOP").await.unwrap());
    within("the process to stop", async {
        while proc_state(pid) != Some('T') {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
    let status = env
        .env
        .processes()
        .write(&id, Bytes::from_static(b"while-stopped\n"))
        .await
        .unwrap();
    assert_eq!(status, WriteStatus::Accepted);
    // Stopped, cat cannot echo what was written.
    let r = env
        .env
        .processes()
        .read(ReadParams {
            process_id: id.clone(),
            after_seq: Some(1),
            ..ReadParams::default()
        })
        .await
        .unwrap();
    assert!(r.chunks.is_empty() && !r.exited, "{r:?}");

    assert!(env.env.processes().signal(&id, "CONT").await.unwrap());
    output_until(&mut started.events, &mut seen, b"while-stopped\n").await;
    assert_ne!(proc_state(pid), Some('T'));
    env.env.processes().close_stdin(&id).await.unwrap();
    let events = all_events(&mut started.events).await;
    assert_eq!(exit_of(&events), (0, None));
}

async fn signal_errors_and_after_exit_steps(target: Target) {
    let env = TestEnv::new(target).await;
    if additions_absent(&env, target).await {
        return;
    }
    let p = params(&["/bin/sleep", "100"]);
    let id = p.process_id.clone();
    let mut started = within("start", env.env.processes().start(p)).await.unwrap();
    for bad in ["SIGBOGUS", "9", "", "SIGSEGV"] {
        let err = env.env.processes().signal(&id, bad).await.unwrap_err();
        assert_eq!(err.code(), error_codes::INVALID_PARAMS, "{bad}: {err}");
        assert!(err.to_string().contains("unknown signal"), "{err}");
    }
    let err = env
        .env
        .processes()
        .signal("no-such-process", "SIGTERM")
        .await
        .unwrap_err();
    assert_eq!(err.code(), error_codes::INVALID_REQUEST, "{err}");
    assert!(
        err.to_string()
            .contains("unknown process id no-such-process"),
        "{err}"
    );

    // The bad calls did nothing: the process is still running.
    assert!(env.env.processes().signal(&id, "SIGKILL").await.unwrap());
    let events = all_events(&mut started.events).await;
    assert_killed_by(&events, libc::SIGKILL);
    // Exited: nothing is delivered any more.
    assert!(!env.env.processes().signal(&id, "SIGTERM").await.unwrap());
    assert!(!env.env.processes().signal(&id, "SIGCONT").await.unwrap());
}

async fn close_stdin_ends_input_after_queued_writes_steps(target: Target) {
    let env = TestEnv::new(target).await;
    if additions_absent(&env, target).await {
        return;
    }
    let mut p = sh("cat; echo saw-eof");
    p.pipe_stdin = true;
    let id = p.process_id.clone();
    let mut started = within("start", env.env.processes().start(p)).await.unwrap();
    let processes = env.env.processes().clone();
    // Pipelined: the close is issued before any reply is awaited, and still comes after
    // the writes.
    let (one, two, closed) = within(
        "writes and close",
        futures::future::join3(
            processes.write(&id, Bytes::from_static(b"one\n")),
            processes.write(&id, Bytes::from_static(b"two\n")),
            processes.close_stdin(&id),
        ),
    )
    .await;
    assert_eq!(one.unwrap(), WriteStatus::Accepted);
    assert_eq!(two.unwrap(), WriteStatus::Accepted);
    closed.unwrap();
    let late = processes
        .write(&id, Bytes::from_static(b"three\n"))
        .await
        .unwrap();
    assert_eq!(late, WriteStatus::StdinClosed);
    processes
        .close_stdin(&id)
        .await
        .expect("closing twice is fine");
    let events = all_events(&mut started.events).await;
    assert_eq!(
        String::from_utf8_lossy(&output(&events)),
        "one\ntwo\nsaw-eof\n"
    );
    assert_eq!(exit_of(&events), (0, None));

    // A PTY: ^D ends the input, after handing over a partial line.
    let mut p = params(&["/bin/cat"]);
    p.tty = true;
    let id = p.process_id.clone();
    let mut started = within("start", env.env.processes().start(p)).await.unwrap();
    let status = processes
        .write(&id, Bytes::from_static(b"partial"))
        .await
        .unwrap();
    assert_eq!(status, WriteStatus::Accepted);
    processes.close_stdin(&id).await.unwrap();
    let events = all_events(&mut started.events).await;
    let text = String::from_utf8_lossy(&output(&events)).into_owned();
    // The terminal's echo, then cat's copy.
    assert_eq!(text.matches("partial").count(), 2, "{text:?}");
    assert_eq!(exit_of(&events), (0, None));

    let err = processes.close_stdin("no-such-process").await.unwrap_err();
    assert_eq!(err.code(), error_codes::INVALID_REQUEST, "{err}");
}

async fn list_reports_running_and_exited_steps(target: Target) {
    let env = TestEnv::new(target).await;
    if additions_absent(&env, target).await {
        return;
    }
    let processes = env.env.processes().clone();
    assert_eq!(processes.list().await.unwrap(), vec![]);

    let sleeper = sh("echo $$; exec sleep 100");
    let sleeper_id = sleeper.process_id.clone();
    let mut sleeper_started = within("start", processes.start(sleeper)).await.unwrap();
    let mut seen = vec![];
    output_until(&mut sleeper_started.events, &mut seen, b"\n").await;
    let sleeper_pid: u32 = String::from_utf8_lossy(&seen).trim().parse().unwrap();

    let mut tty = params(&["/bin/sleep", "100"]);
    tty.tty = true;
    let tty_id = tty.process_id.clone();
    let _tty_started = within("start", processes.start(tty)).await.unwrap();

    let exited = sh("exit 3");
    let exited_id = exited.process_id.clone();
    run(&env, exited).await;

    let killed = params(&["/bin/sleep", "100"]);
    let killed_id = killed.process_id.clone();
    let mut killed_started = within("start", processes.start(killed)).await.unwrap();
    assert!(processes.signal(&killed_id, "SIGTERM").await.unwrap());
    all_events(&mut killed_started.events).await;

    let list = processes.list().await.unwrap();
    let ids: Vec<&str> = list.iter().map(|p| p.process_id.as_str()).collect();
    let mut sorted = vec![
        sleeper_id.as_str(),
        tty_id.as_str(),
        exited_id.as_str(),
        killed_id.as_str(),
    ];
    sorted.sort();
    assert_eq!(ids, sorted, "{list:?}");
    let find = |id: &str| list.iter().find(|p| p.process_id == id).unwrap().clone();

    let s = find(&sleeper_id);
    assert_eq!(s.pid, Some(sleeper_pid));
    assert!(
        s.running && !s.tty && s.exit_code.is_none() && s.signal.is_none(),
        "{s:?}"
    );
    let t = find(&tty_id);
    assert!(
        t.running && t.tty && t.pid.is_some() && t.exit_code.is_none(),
        "{t:?}"
    );
    let e = find(&exited_id);
    assert!(!e.running && !e.tty, "{e:?}");
    assert_eq!((e.exit_code, e.signal), (Some(3), None));
    let k = find(&killed_id);
    assert!(!k.running, "{k:?}");
    assert_eq!((k.exit_code, k.signal), (Some(-1), Some(libc::SIGTERM)));

    assert!(processes.terminate(&sleeper_id).await.unwrap());
    assert!(processes.terminate(&tty_id).await.unwrap());
    all_events(&mut sleeper_started.events).await;
    let s = processes
        .list()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.process_id == sleeper_id)
        .unwrap();
    assert!(!s.running, "{s:?}");
    assert_eq!((s.exit_code, s.signal), (Some(-1), Some(libc::SIGKILL)));
}

/// `ttySize` on `process/start`: the terminal has the client's size from the first
/// instruction on.
async fn tty_starts_at_the_given_size(target: Target) {
    let env = TestEnv::new(target).await;
    if additions_absent(&env, target).await {
        return;
    }
    let mut p = sh("stty size");
    p.tty = true;
    p.tty_size = Some(exec_server_protocol::process::TtySize {
        rows: 33,
        cols: 101,
    });
    let events = run(&env, p).await;
    assert_eq!(output(&events), b"33 101\r\n");
    let mut p = sh("stty size");
    p.tty = true;
    p.tty_size = Some(exec_server_protocol::process::TtySize { rows: 0, cols: 101 });
    let err = within("start", env.env.processes().start(p))
        .await
        .err()
        .expect("refused");
    assert_eq!(err.code(), error_codes::INVALID_PARAMS);
}

async fn resize_changes_the_terminal_size_steps(target: Target) {
    let env = TestEnv::new(target).await;
    if additions_absent(&env, target).await {
        return;
    }
    let processes = env.env.processes().clone();
    let mut p = sh("stty size; read x; stty size; read y; stty size");
    p.tty = true;
    let id = p.process_id.clone();
    let mut started = within("start", processes.start(p)).await.unwrap();
    let mut seen = vec![];
    output_until(&mut started.events, &mut seen, b"24 80\r\n").await;
    processes.resize(&id, 40, 132).await.unwrap();
    processes
        .write(&id, Bytes::from_static(b"\n"))
        .await
        .unwrap();
    output_until(&mut started.events, &mut seen, b"40 132\r\n").await;
    // Pipelined: the resize applies between the two writes' worth of input.
    let (resized, written) = within(
        "resize and write",
        futures::future::join(
            processes.resize(&id, 50, 100),
            processes.write(&id, Bytes::from_static(b"\n")),
        ),
    )
    .await;
    resized.unwrap();
    assert_eq!(written.unwrap(), WriteStatus::Accepted);
    output_until(&mut started.events, &mut seen, b"50 100\r\n").await;
    let events = all_events(&mut started.events).await;
    assert_eq!(exit_of(&events), (0, None));

    let err = processes.resize(&id, 0, 80).await.unwrap_err();
    assert_eq!(err.code(), error_codes::INVALID_PARAMS, "{err}");
    let err = processes
        .resize("no-such-process", 10, 10)
        .await
        .unwrap_err();
    assert_eq!(err.code(), error_codes::INVALID_REQUEST, "{err}");
}

async fn resize_of_a_pipes_process_is_an_error_steps(target: Target) {
    let env = TestEnv::new(target).await;
    if additions_absent(&env, target).await {
        return;
    }
    let p = params(&["/bin/sleep", "100"]);
    let id = p.process_id.clone();
    let mut started = within("start", env.env.processes().start(p)).await.unwrap();
    let err = env.env.processes().resize(&id, 40, 100).await.unwrap_err();
    assert_eq!(err.code(), error_codes::INVALID_PARAMS, "{err}");
    assert!(err.to_string().contains("no terminal"), "{err}");
    // The process is unaffected.
    assert!(env.env.processes().terminate(&id).await.unwrap());
    assert_killed_by(&all_events(&mut started.events).await, libc::SIGKILL);
}

/// A process that does not read its stdin cannot make the server buffer without bound: past
/// `maxStdinBufferedBytes` writes are refused, naming the limit, and nothing of a refused
/// write is taken; `write_waiting` gets every byte through, in order, to a slow reader.
async fn stdin_queue_is_bounded_and_nothing_is_lost(target: Target) {
    if support::against_another_server() {
        return; // The limit is this server's.
    }
    let env = TestEnv::new(target).await;
    let processes = env.env.processes();
    let mut p = params(&["/bin/sleep", "1000"]);
    p.pipe_stdin = true;
    let id = p.process_id.clone();
    within("start", processes.start(p)).await.unwrap();
    let peak_before = env.server.as_ref().map(|s| s.peak_rss_bytes());
    // The issue's reproduction is 64 writes of 16 MiB; 24 of 8 MiB (the default limit) show
    // the same in a fifth of the time.
    let chunk = Bytes::from(vec![b'x'; 8 * 1024 * 1024]);
    // The first write is taken whole (the queue was empty); then the queue is at the limit
    // and stays so, since sleep never reads.
    let first = within("write", processes.write(&id, chunk.clone()))
        .await
        .unwrap();
    assert_eq!(first, WriteStatus::Accepted);
    for _ in 0..23 {
        let err = within("write", processes.write(&id, chunk.clone()))
            .await
            .expect_err("the queue is full");
        assert_eq!(err.code(), error_codes::INVALID_REQUEST, "{err}");
        assert_eq!(err.limit(), Some("maxStdinBufferedBytes"), "{err}");
    }
    if let (Some(server), Some(before)) = (&env.server, peak_before) {
        // 192 MiB was offered (unbounded, all of it would stay); what may stay is the limit
        // plus one write, and what passes through decoding one write at a time: its frame,
        // its JSON text and its bytes, about four copies of an 11 MiB message.
        let grown = server.peak_rss_bytes().saturating_sub(before);
        assert!(grown < 96 * 1024 * 1024, "the server grew by {grown} bytes");
    }
    within("terminate", processes.terminate(&id)).await.unwrap();

    // A slow reader: every byte of 40 MiB arrives, in order.
    let mut p = sh("sleep 0.3; cksum");
    p.pipe_stdin = true;
    let id = p.process_id.clone();
    let mut started = within("start", processes.start(p)).await.unwrap();
    let mut sent = Vec::new();
    for i in 0..40u8 {
        let block: Vec<u8> = (0..1024 * 1024)
            .map(|j| (j as u8).wrapping_mul(i | 1))
            .collect();
        sent.extend_from_slice(&block);
        let status = within("write", processes.write_waiting(&id, Bytes::from(block)))
            .await
            .unwrap();
        assert_eq!(status, WriteStatus::Accepted);
    }
    within("close", processes.close_stdin(&id)).await.unwrap();
    let events = all_events(&mut started.events).await;
    assert_eq!(output(&events), cksum(&sent));
}

/// What `cksum` prints for `bytes` (its CRC and length), from the tool the process used.
fn cksum(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = std::process::Command::new("cksum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    out.stdout
}

/// At `closed` a process holds nothing of the server's any more: its PTY and stdin pipe are
/// released then, not when it leaves the table 30 s later, and writes after the exit say
/// `stdinClosed`.
async fn descriptors_are_released_at_closed(target: Target) {
    let env = TestEnv::new(target).await;
    let processes = env.env.processes();
    let baseline = env.server.as_ref().map(|s| s.open_descriptors());
    for _ in 0..200 {
        let mut p = params(&["/bin/true"]);
        p.tty = true;
        let id = p.process_id.clone();
        let mut started = within("start", processes.start(p)).await.unwrap();
        all_events(&mut started.events).await;
        if !support::against_another_server() {
            let status = within("write", processes.write(&id, Bytes::from_static(b"x")))
                .await
                .unwrap();
            assert_eq!(status, WriteStatus::StdinClosed);
        }
    }
    if let (Some(server), Some(baseline)) = (&env.server, baseline) {
        assert_eq!(
            server.open_descriptors(),
            baseline,
            "descriptors held after closed"
        );
    }
    // A pipe process: the first write after its exit is refused too.
    let mut p = sh("exit 0");
    p.pipe_stdin = true;
    let id = p.process_id.clone();
    let mut started = within("start", processes.start(p)).await.unwrap();
    all_events(&mut started.events).await;
    if !support::against_another_server() {
        let status = within("write", processes.write(&id, Bytes::from_static(b"x")))
            .await
            .unwrap();
        assert_eq!(status, WriteStatus::StdinClosed);
    }
}

/// Environment names the kernel would pass on as something else are refused.
async fn environment_names_are_checked(target: Target) {
    if support::against_another_server() {
        return;
    }
    let env = TestEnv::new(target).await;
    for (name, value) in [("A=B", "c"), ("", "x"), ("NUL\0", "x"), ("OK", "nul\0")] {
        let mut p = sh("env");
        p.env.insert(name.to_owned(), value.to_owned());
        let err = within("start", env.env.processes().start(p))
            .await
            .err()
            .expect("refused");
        assert_eq!(err.code(), error_codes::INVALID_PARAMS, "{name:?}: {err}");
    }
}

both_targets! {
    start_timeout_kills_the_group => crate::start_timeout_kills_the_group;
    stdin_queue_is_bounded => crate::stdin_queue_is_bounded_and_nothing_is_lost;
    descriptors_released_at_closed => crate::descriptors_are_released_at_closed;
    environment_names => crate::environment_names_are_checked;
    exit_codes_and_signals => crate::exit_codes;
    seqs_are_ordered_and_contiguous => crate::seq_order_and_contiguity;
    output_is_binary_safe => crate::binary_safe_output;
    pty_echoes_input => crate::pty_echoes_written_input;
    pipe_stdin_round_trip => crate::pipe_stdin_write_then_read;
    pipelined_writes_in_order => crate::pipelined_writes_arrive_in_order;
    write_without_stdin => crate::write_without_stdin_is_stdin_closed;
    terminate_semantics => crate::terminate_then_exit_then_not_running;
    terminate_kills_the_tree => crate::terminate_kills_grandchild_that_traps_term;
    environment_policies => crate::environment_is_exact_and_policies_apply;
    cwd => crate::cwd_is_honoured;
    duplicates_and_bad_starts => crate::duplicate_ids_and_empty_argv;
    long_poll => crate::long_poll_returns_when_output_arrives;
    max_bytes => crate::max_bytes_is_respected_and_chunks_never_split;
    eviction => crate::eviction_reports_first_retained_seq;
    signal_reaches_trap => crate::signal_reaches_trapping_script;
    signal_stop_and_continue => crate::stop_and_continue;
    signal_errors_and_after_exit => crate::signal_errors_and_after_exit;
    close_stdin => crate::close_stdin_ends_input_after_queued_writes;
    list => crate::list_reports_running_and_exited;
    resize => crate::resize_changes_the_terminal_size;
    tty_size => crate::tty_starts_at_the_given_size;
    resize_pipes_is_an_error => crate::resize_of_a_pipes_process_is_an_error;
}
