//! Sessions that survive a dropped connection: the client reconnects, resumes and catches up.

mod support;

use exec_server_client::{ClientOptions, ExecServerClient, ReconnectPolicy};
use exec_server_environment::ProcessEvent;
use std::time::Duration;
use support::proxy::ChaosProxy;
use support::rng::{seed_from_env, Rng};
use support::{within, ServerProcess};

/// The output of `seq 1 N`, which the processes below print.
fn seq_output(n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 1..=n {
        out.extend_from_slice(i.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

fn resilient_options() -> ClientOptions {
    ClientOptions {
        reconnect: ReconnectPolicy {
            max_attempts: 200,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(50),
        },
        ..ClientOptions::default()
    }
}

struct Received {
    /// Contiguous runs of bytes, split where a gap was reported.
    segments: Vec<Vec<u8>>,
    /// (from_seq, to_seq) of every gap.
    gaps: Vec<(u64, u64)>,
    /// Every seq delivered, gaps expanded, in delivery order.
    seqs: Vec<u64>,
    exit_code: i32,
}

/// Where the cuts fall: at random byte offsets of the output, or at random seqs among the
/// first few hundred (which every run reaches, even when gaps skip bytes).
#[derive(Clone, Copy)]
enum CutsAt {
    Bytes,
    FirstSeqs(u64),
}

/// Streams `seq 1 N` through a proxy that cuts the connection `cuts` times at random points.
async fn stream_through_cuts(n: u64, retained_bytes: usize, cuts: usize, at: CutsAt) -> Received {
    let retention = retained_bytes.to_string();
    let server = ServerProcess::start(&["--retained-output-bytes", &retention]);
    let proxy = ChaosProxy::start(&server.url).await;
    let client = within(
        "connect",
        ExecServerClient::connect(&proxy.url, resilient_options()),
    )
    .await
    .unwrap();
    let env = exec_server_client::environment(client);
    let total = seq_output(n).len() as u64;

    let mut rng = Rng::new(seed_from_env("CHAOS_SEED", "chaos"));
    let range = match at {
        CutsAt::Bytes => total,
        CutsAt::FirstSeqs(seqs) => seqs,
    };
    let mut cut_points: Vec<u64> = (0..cuts).map(|_| 1 + rng.next() % range).collect();
    cut_points.sort_unstable();
    let outages: Vec<Duration> = (0..cuts)
        .map(|_| Duration::from_millis(rng.next() % 40))
        .collect();

    let params = support::start_params("chaos", &["seq", "1", &n.to_string()]);
    let mut started = within("start", env.processes().start(params))
        .await
        .unwrap();
    let mut received = Received {
        segments: vec![vec![]],
        gaps: vec![],
        seqs: vec![],
        exit_code: i32::MIN,
    };
    let mut bytes_seen = 0u64;
    let mut next_cut = 0;
    let cut_when = |progress: u64, next_cut: &mut usize| {
        while *next_cut < cut_points.len() && progress >= cut_points[*next_cut] {
            proxy.cut(outages[*next_cut]);
            *next_cut += 1;
        }
    };
    // 32 MiB in a debug build through 25 cuts on a loaded 2-core machine: a wider bound than
    // one step, still finite.
    tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(event) = started.events.next().await {
            match event {
                ProcessEvent::Output { seq, chunk, .. } => {
                    received.seqs.push(seq);
                    bytes_seen += chunk.len() as u64;
                    received
                        .segments
                        .last_mut()
                        .unwrap()
                        .extend_from_slice(&chunk);
                    let progress = match at {
                        CutsAt::Bytes => bytes_seen,
                        CutsAt::FirstSeqs(_) => seq,
                    };
                    cut_when(progress, &mut next_cut);
                }
                ProcessEvent::Gap { from_seq, to_seq } => {
                    received.gaps.push((from_seq, to_seq));
                    received.seqs.extend(from_seq..=to_seq);
                    received.segments.push(vec![]);
                    if let CutsAt::FirstSeqs(_) = at {
                        cut_when(to_seq, &mut next_cut);
                    }
                }
                ProcessEvent::Exited { seq, exit_code, .. } => {
                    received.seqs.push(seq);
                    received.exit_code = exit_code;
                }
                ProcessEvent::Closed { seq } => {
                    received.seqs.push(seq);
                    break;
                }
                ProcessEvent::Failed { message } => panic!("stream failed: {message}"),
            }
        }
    })
    .await
    .expect("timed out after 120 s waiting for the whole stream");
    assert_eq!(
        next_cut, cuts,
        "every planned cut happened while output was streaming"
    );
    received
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_byte_exactly_once_through_connection_cuts() {
    const N: u64 = 4_400_000; // 32.5 MiB of output
    let received = stream_through_cuts(N, 64 * 1024 * 1024, 25, CutsAt::Bytes).await;
    assert!(
        received.gaps.is_empty(),
        "retention covers everything: {:?}",
        received.gaps
    );
    assert_eq!(received.exit_code, 0);
    let expected = seq_output(N);
    assert!(expected.len() >= 32 * 1024 * 1024);
    let got = &received.segments[0];
    assert_eq!(got.len(), expected.len(), "byte count");
    assert!(got == &expected, "bytes differ from the process's output");
    let n = received.seqs.len() as u64;
    assert_eq!(
        received.seqs,
        (1..=n).collect::<Vec<_>>(),
        "seqs delivered once, in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_retention_reports_exactly_the_evicted_seqs() {
    const N: u64 = 4_400_000;
    let received = stream_through_cuts(N, 128 * 1024, 25, CutsAt::FirstSeqs(400)).await;
    assert_eq!(received.exit_code, 0);
    assert!(
        !received.gaps.is_empty(),
        "outages with a small retention must evict something"
    );
    // Delivered seqs and gap seqs together are every seq exactly once, in order: the gaps are
    // exactly the seqs the client never received.
    let n = received.seqs.len() as u64;
    assert_eq!(received.seqs, (1..=n).collect::<Vec<_>>());
    // Each run of bytes between gaps is the process's output at some later offset.
    let expected = seq_output(N);
    let mut offset = 0usize;
    for (i, segment) in received.segments.iter().enumerate() {
        if segment.is_empty() {
            continue;
        }
        let at = if i == 0 {
            0
        } else {
            offset
                + expected[offset..]
                    .windows(segment.len().min(64))
                    .position(|w| w == &segment[..segment.len().min(64)])
                    .unwrap_or_else(|| panic!("segment {i} is not in the output"))
        };
        assert!(i == 0 || at > offset, "a gap must lose bytes");
        assert_eq!(
            &expected[at..at + segment.len()],
            &segment[..],
            "segment {i} differs from the output at offset {at}"
        );
        offset = at + segment.len();
    }
    assert_eq!(
        offset,
        expected.len(),
        "the last segment ends with the output"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_fails_streams_and_calls_with_a_clear_error() {
    let server = ServerProcess::start(&["--session-ttl", "1"]);
    let proxy = ChaosProxy::start(&server.url).await;
    let client = within(
        "connect",
        ExecServerClient::connect(&proxy.url, resilient_options()),
    )
    .await
    .unwrap();
    let env = exec_server_client::environment(client);
    let params = support::start_params("sleeper", &["sleep", "1000"]);
    let mut started = within("start", env.processes().start(params))
        .await
        .unwrap();
    // Down for longer than the TTL: the session expires before the client gets back.
    proxy.cut(Duration::from_secs(3));
    let event = within("the stream to fail", started.events.next()).await;
    let Some(ProcessEvent::Failed { message }) = event else {
        panic!("expected a failure, got {event:?}");
    };
    assert!(message.contains("expired"), "{message}");
    let err = env
        .processes()
        .terminate("sleeper")
        .await
        .expect_err("calls fail once the session is gone");
    assert!(err.to_string().contains("expired"), "{err}");
}
