//! MCP over the environment: an rmcp Streamable HTTP server on 127.0.0.1 (started by the
//! test) reached through the local environment and through a real exec server, and the
//! `exec-server mcp` command. The exec server's `/metrics` shows whose HTTP it was.

mod support;
mod support_mcp;

use exec_server_environment::Environment;
use exec_server_mcp::rmcp::model::{CallToolResult, ProtocolVersion};
use exec_server_mcp::{McpClient, McpClientConfig, McpError};
use serde_json::{json, Value};
use std::process::Output;
use std::time::{Duration, Instant};
use support::{within, ServerProcess, Target, TestEnv};
use support_mcp::McpPeer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

both_targets! {
    initialize_list_and_call => crate::initialize_list_and_call;
    progress_arrives_over_sse => crate::progress_arrives_over_sse;
    http_goes_through_the_selected_environment => crate::http_goes_through_the_selected_environment;
    expired_session_is_reinitialized_once => crate::expired_session_is_reinitialized_once;
    a_down_server_fails_clearly_within_the_timeout => crate::a_down_server_fails_clearly_within_the_timeout;
}

async fn connect(env: &Environment, url: &str) -> McpClient {
    let mut config = McpClientConfig::new(url);
    config.timeout = support::STEP;
    within(
        "MCP connect",
        McpClient::connect(env.http().clone(), config),
    )
    .await
    .expect("connect to the MCP peer")
}

fn text_of(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|block| block.as_text())
        .map(|t| t.text.as_str())
        .collect()
}

async fn echo(client: &McpClient, text: &str) -> String {
    let args = json!({ "text": text }).as_object().cloned();
    let result = within("tools/call echo", client.call_tool("echo", args))
        .await
        .expect("echo");
    assert_ne!(result.is_error, Some(true), "{result:?}");
    text_of(&result)
}

async fn initialize_list_and_call(target: Target) {
    let t = TestEnv::new(target).await;
    let peer = McpPeer::start().await;
    let client = connect(&t.env, &peer.url).await;

    let info = client.server_info().expect("the initialize result");
    let server = info.server_info.as_ref().expect("the server names itself");
    assert_eq!(server.name, "exec-server-test-peer");

    let tools = within("tools/list", client.list_tools()).await.unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| &*t.name).collect();
    names.sort();
    assert_eq!(names, ["count", "echo"]);
    let echo_tool = tools.iter().find(|t| t.name == "echo").unwrap();
    assert_eq!(echo_tool.description.as_deref(), Some("Returns its text."));
    assert!(echo_tool.input_schema["properties"]["text"].is_object());

    assert_eq!(echo(&client, "hello over MCP").await, "hello over MCP");
    // A tool error is the tool's answer, not a transport failure.
    let missing = within(
        "tools/call with bad arguments",
        client.call_tool("echo", None),
    )
    .await;
    assert!(
        matches!(
            &missing,
            Err(McpError::Service {
                operation: "tools/call",
                ..
            })
        ) || matches!(&missing, Ok(r) if r.is_error == Some(true)),
        "{missing:?}"
    );
    within("close", client.close()).await.unwrap();
    let seen = peer.seen();
    assert!(
        seen.iter().any(|s| s.method == "DELETE" && s.status < 300),
        "close ends the session: {seen:#?}"
    );
}

async fn progress_arrives_over_sse(target: Target) {
    let t = TestEnv::new(target).await;
    let peer = McpPeer::start().await;
    let client = connect(&t.env, &peer.url).await;
    let mut progress = client.progress();

    let args = json!({ "steps": 5 }).as_object().cloned();
    let result = within("tools/call count", client.call_tool("count", args))
        .await
        .unwrap();
    assert_eq!(text_of(&result), "counted 5");
    // rmcp hands each notification to the handler in a task of its own, so they may still be
    // on their way when the response is in, and in any order.
    let mut steps = Vec::new();
    while steps.len() < 5 {
        let update = within("a progress notification", progress.recv())
            .await
            .expect("progress");
        assert_eq!(update.total, Some(5.0));
        assert_eq!(
            update.message.as_deref(),
            Some(format!("step {}", update.progress).as_str())
        );
        steps.push(update.progress);
    }
    steps.sort_by(f64::total_cmp);
    assert_eq!(steps, [1.0, 2.0, 3.0, 4.0, 5.0]);
    let call = peer
        .seen()
        .into_iter()
        .find(|s| s.is_rpc("tools/call"))
        .expect("the call reached the peer");
    assert_eq!(call.content_type.as_deref(), Some("text/event-stream"));
    within("close", client.close()).await.unwrap();
}

/// A plain HTTP GET of `path` on the exec server's port.
async fn get_text(server_url: &str, path: &str) -> String {
    let addr = server_url.trim_start_matches("ws://");
    let mut stream = within("connect", tokio::net::TcpStream::connect(addr))
        .await
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    within("response", stream.read_to_string(&mut response))
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

/// `http/request` calls the exec server has answered, whatever their outcome.
async fn http_requests_answered(server: &ServerProcess) -> u64 {
    let body = get_text(&server.url, "/metrics").await;
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned())))
        .expect("valid Prometheus text");
    scrape
        .samples
        .iter()
        .filter(|s| {
            s.metric == "exec_server_requests_total"
                && s.labels.get("method") == Some("http/request")
        })
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v as u64,
            _ => panic!("unexpected sample type"),
        })
        .sum()
}

async fn http_goes_through_the_selected_environment(target: Target) {
    // One exec server either way: the remote path goes through it, the local path must not.
    let t = TestEnv::remote(&[]).await;
    let server = t.server.as_ref().unwrap();
    let env = match target {
        Target::Local => Environment::local(),
        Target::Remote => t.env.clone(),
    };
    let peer = McpPeer::start().await;
    let before = http_requests_answered(server).await;

    let client = connect(&env, &peer.url).await;
    within("tools/list", client.list_tools()).await.unwrap();
    assert_eq!(echo(&client, "which way?").await, "which way?");
    within("close", client.close()).await.unwrap();

    let seen = peer.seen().len() as u64;
    // initialize, initialized, tools/list, tools/call, DELETE (and the SSE GET, if it was
    // opened before the close).
    assert!(seen >= 5, "{:#?}", peer.seen());
    match target {
        Target::Local => assert_eq!(http_requests_answered(server).await - before, 0),
        Target::Remote => {
            // The last answer may still be on its way to /metrics when the peer has seen its
            // request; wait for the count to reach the peer's, then require it equal.
            let delta = within("the exec server's count to catch up", async {
                loop {
                    let delta = http_requests_answered(server).await - before;
                    if delta >= seen {
                        return delta;
                    }
                    tokio::task::yield_now().await;
                }
            })
            .await;
            assert_eq!(delta, seen, "{:#?}", peer.seen());
        }
    }
}

async fn expired_session_is_reinitialized_once(target: Target) {
    let t = TestEnv::new(target).await;
    let peer = McpPeer::start().await;
    let mut config = McpClientConfig::new(&peer.url);
    config.timeout = support::STEP;
    // A version with the initialize handshake, hence with sessions that can expire.
    config.protocol_version = Some(ProtocolVersion::LATEST_WITH_INITIALIZE);
    let client = within("connect", McpClient::connect(t.env.http().clone(), config))
        .await
        .unwrap();
    assert_eq!(echo(&client, "first").await, "first");
    let first_session = peer
        .seen()
        .iter()
        .find(|s| s.is_rpc("initialize"))
        .and_then(|s| s.new_session.clone())
        .expect("initialize opened a session");
    let earlier = peer.seen().len();

    peer.forget_sessions().await;
    assert_eq!(echo(&client, "second").await, "second");

    let after = peer.seen().split_off(earlier);
    let not_found: Vec<_> = after.iter().filter(|s| s.status == 404).collect();
    assert_eq!(not_found.len(), 1, "exactly one 404: {after:#?}");
    assert_eq!(not_found[0].method, "POST");
    assert!(not_found[0].is_rpc("tools/call"), "{after:#?}");
    assert_eq!(not_found[0].session.as_ref(), Some(&first_session));

    let reinit: Vec<_> = after.iter().filter(|s| s.is_rpc("initialize")).collect();
    assert_eq!(reinit.len(), 1, "exactly one re-initialization: {after:#?}");
    assert_eq!(reinit[0].session, None);
    let second_session = reinit[0].new_session.clone().expect("a new session");
    assert_ne!(second_session, first_session);

    let retried = after
        .iter()
        .filter(|s| s.is_rpc("tools/call") && s.status == 200)
        .collect::<Vec<_>>();
    assert_eq!(retried.len(), 1, "{after:#?}");
    assert_eq!(retried[0].session.as_ref(), Some(&second_session));
    within("close", client.close()).await.unwrap();
}

async fn a_down_server_fails_clearly_within_the_timeout(target: Target) {
    let t = TestEnv::new(target).await;
    let timeout = Duration::from_secs(2);
    // The margin covers process and runtime scheduling, not a second timeout.
    let deadline = timeout + Duration::from_secs(3);

    // Nothing listens: refused at once. The port stays bound (without listening) so that no
    // other test's listener can take it meanwhile.
    let closed = tokio::net::TcpSocket::new_v4().unwrap();
    closed.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let url = format!("http://{}/mcp", closed.local_addr().unwrap());
    let mut config = McpClientConfig::new(&url);
    config.timeout = timeout;
    let started = Instant::now();
    let error = within(
        "connect to nothing",
        McpClient::connect(t.env.http().clone(), config),
    )
    .await
    .err()
    .expect("nothing listens there");
    assert!(started.elapsed() < deadline, "{:?}", started.elapsed());
    let message = error.to_string();
    assert!(matches!(error, McpError::Initialize { .. }), "{message}");
    assert!(message.contains(&url), "{message}");
    assert!(message.contains("http/request failed"), "{message}");
    assert!(
        message.to_lowercase().contains("connection refused"),
        "{message}"
    );
    drop(closed);

    // A server that accepts connections and never answers: the timeout ends it.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", silent.local_addr().unwrap());
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let mut config = McpClientConfig::new(&url);
    config.timeout = timeout;
    let started = Instant::now();
    let error = within(
        "connect to a silent server",
        McpClient::connect(t.env.http().clone(), config),
    )
    .await
    .err()
    .expect("a silent server never initializes");
    let elapsed = started.elapsed();
    assert!(elapsed >= timeout && elapsed < deadline, "{elapsed:?}");
    let message = error.to_string();
    assert!(message.contains(&url), "{message}");
    assert!(
        message.contains("timed out after 2s") || message.contains("within 2s"),
        "{message}"
    );
    holder.abort();
}

// ---------------------------------------------------------------------------------------
// The command line.

/// How one run selects its environment: extra arguments, and environment variables.
type EnvironmentSelection<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)]);

/// Runs `exec-server mcp ARGS` with `envs` (and neither environment variable otherwise).
async fn mcp_cli(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_exec-server"));
    command
        .arg("mcp")
        .args(args)
        .env_remove("EXEC_SERVER_URL")
        .env_remove("CODEX_EXEC_SERVER_URL")
        .envs(envs.iter().copied())
        .kill_on_drop(true);
    within("exec-server mcp", command.output())
        .await
        .expect("run exec-server mcp")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_lists_and_calls_tools_here_and_through_a_server() {
    let server = ServerProcess::start(&[]);
    let peer = McpPeer::start().await;
    let url = peer.url.as_str();

    // Here: the exec server sees no HTTP.
    let before = http_requests_answered(&server).await;
    let out = mcp_cli(&["tools", "--server", url, "--json"], &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let tools: Value = serde_json::from_str(&stdout(&out)).expect("--json prints JSON");
    let mut names: Vec<&str> = tools
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["count", "echo"]);
    let out = mcp_cli(&["tools", "--server", url], &[]).await;
    assert!(
        stdout(&out).contains("echo\tReturns its text.\n"),
        "{}",
        stdout(&out)
    );
    assert_eq!(http_requests_answered(&server).await, before);

    // Through the server, chosen by --via, by EXEC_SERVER_URL, and by codex's variable:
    // each run's HTTP goes through it.
    let runs: [EnvironmentSelection; 3] = [
        (&["--via", &server.url], &[]),
        (&[], &[("EXEC_SERVER_URL", &server.url)]),
        (&[], &[("CODEX_EXEC_SERVER_URL", &server.url)]),
    ];
    for (via, envs) in runs {
        let before = http_requests_answered(&server).await;
        let mut args = vec!["call", "--server", url];
        args.extend_from_slice(via);
        args.extend(["echo", r#"{"text":"hi from afar"}"#]);
        let out = mcp_cli(&args, envs).await;
        assert!(out.status.success(), "{via:?} {envs:?}: {}", stderr(&out));
        assert_eq!(stdout(&out), "hi from afar\n");
        assert!(
            http_requests_answered(&server).await > before,
            "{via:?} {envs:?} did not go through the exec server"
        );
    }

    // Progress goes to stderr as it arrives; --json prints the whole result.
    let out = mcp_cli(
        &[
            "call",
            "--server",
            url,
            "--via",
            &server.url,
            "--json",
            "count",
            r#"{"steps":3}"#,
        ],
        &[],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let progress_lines = stderr(&out)
        .lines()
        .filter(|l| l.starts_with("progress "))
        .count();
    assert_eq!(progress_lines, 3, "{}", stderr(&out));
    for step in 1..=3 {
        let line = format!("progress {step}/3 step {step}\n");
        assert!(stderr(&out).contains(&line), "{}", stderr(&out));
    }
    let result: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(result["content"][0]["text"], "counted 3");

    let out = mcp_cli(&["call", "--server", url, "echo", "[1]"], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("JSON_ARGS must be a JSON object"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_reports_a_down_server_or_no_environment_clearly() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", silent.local_addr().unwrap());
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let started = Instant::now();
    let out = mcp_cli(&["tools", "--server", &url, "--timeout", "1"], &[]).await;
    let elapsed = started.elapsed();
    assert_eq!(out.status.code(), Some(1));
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    let message = stderr(&out);
    assert!(
        message.contains(&format!("exec-server: MCP initialize with {url}")),
        "{message}"
    );
    assert!(message.contains(&url), "{message}");
    assert!(
        message.contains("timed out after 1s") || message.contains("within 1s"),
        "{message}"
    );
    holder.abort();

    let out = mcp_cli(&["tools", "--server", &url, "--via", "none"], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no environment is selected"),
        "{}",
        stderr(&out)
    );
}
