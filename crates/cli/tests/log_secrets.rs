//! Secrets stay out of the logs, even at `RUST_LOG=trace`: the bearer token, environment
//! values given to processes, and the bytes of files and stdin.

mod support;

use exec_server_protocol::process::StartParams;
use std::collections::BTreeMap;
use std::process::Stdio;
use support::{within, ServerProcess};

const TOKEN: &str = "log-test-token-9f8e7d6c5b4a39281706";
const ENV_SECRET: &str = "env-secret-value-5a4b3c2d1e0f";
const STDIN_SECRET: &str = "stdin-secret-7c6b5a4d3e2f";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_logs_contain_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut server = ServerProcess::start_with(
        &[],
        &[("RUST_LOG", "trace"), ("EXEC_SERVER_TOKEN", TOKEN)],
        Stdio::from(log),
    );
    let options = exec_server_client::ClientOptions {
        token: Some(TOKEN.to_owned()),
        ..Default::default()
    };
    let client = within(
        "connect",
        exec_server_client::ExecServerClient::connect(&server.url, options),
    )
    .await
    .unwrap();
    let env = exec_server_client::environment(client);
    let params = StartParams {
        env: BTreeMap::from([("API_SECRET".to_owned(), ENV_SECRET.to_owned())]),
        pipe_stdin: true,
        ..support::start_params("p", &["/bin/sh", "-c", "read line; echo done"])
    };
    let mut started = within("start", env.processes().start(params))
        .await
        .unwrap();
    env.processes()
        .write("p", format!("{STDIN_SECRET}\n").into())
        .await
        .unwrap();
    within("the process to finish", async {
        while let Some(event) = started.events.next().await {
            if matches!(event, exec_server_environment::ProcessEvent::Closed { .. }) {
                break;
            }
        }
    })
    .await;
    server.stop();

    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.len() > 1000,
        "trace logging must actually have produced logs"
    );
    for secret in [TOKEN, ENV_SECRET, STDIN_SECRET] {
        assert!(!log.contains(secret), "the log contains {secret:?}");
    }
    // Base64 forms too: stdin travels base64-encoded in process/write.
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{STDIN_SECRET}\n"));
    assert!(!log.contains(&encoded), "the log contains stdin in base64");
}
