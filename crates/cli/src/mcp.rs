//! `exec-server mcp`: use an MCP server (Streamable HTTP) from here, or through an exec
//! server so that its HTTP leaves from that machine.

use anyhow::Context;
use exec_server_mcp::rmcp::model::{CallToolResult, ContentBlock, JsonObject};
use exec_server_mcp::{EnvironmentChoice, EnvironmentManager, McpClient, McpClientConfig};
use serde_json::Value;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// How long the progress printer may take to finish after the call.
const PRINTER_DRAIN: Duration = Duration::from_secs(1);

#[derive(clap::Args)]
pub struct McpArgs {
    #[command(subcommand)]
    command: McpCommand,
}

#[derive(clap::Subcommand)]
enum McpCommand {
    /// List the server's tools.
    Tools {
        #[command(flatten)]
        target: McpTarget,
    },
    /// Call one tool and print its result; exits 1 if the tool reports an error.
    Call {
        #[command(flatten)]
        target: McpTarget,
        /// The tool's name.
        tool: String,
        /// The tool's arguments, as a JSON object.
        #[arg(value_name = "JSON_ARGS")]
        arguments: Option<String>,
    },
}

#[derive(clap::Args)]
struct McpTarget {
    /// The MCP server's Streamable HTTP endpoint, e.g. `http://127.0.0.1:8080/mcp`.
    #[arg(long, value_name = "URL")]
    server: String,
    /// Reach the MCP server through this exec server (`ws://HOST:PORT`...), so its HTTP
    /// leaves from that machine; empty for this machine, `none` for no environment.
    /// Default: $EXEC_SERVER_URL, else $CODEX_EXEC_SERVER_URL, else this machine.
    #[arg(long, value_name = "EXEC_SERVER_URL")]
    via: Option<String>,
    /// Give up on a connection or call that takes longer than this many seconds.
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = parse_seconds)]
    timeout: Duration,
    /// Print the result as JSON on stdout, for scripts.
    #[arg(long)]
    json: bool,
}

fn parse_seconds(value: &str) -> Result<Duration, String> {
    match value.parse::<f64>() {
        Ok(seconds) if seconds > 0.0 && seconds.is_finite() => Ok(Duration::from_secs_f64(seconds)),
        _ => Err(format!(
            "expected a positive number of seconds, got {value:?}"
        )),
    }
}

/// Runs one `mcp` subcommand; returns the exit code.
pub async fn run(args: McpArgs) -> anyhow::Result<u8> {
    match args.command {
        McpCommand::Tools { target } => {
            let client = connect(&target).await?;
            // On failure the client is just dropped: ending the session politely could take
            // another timeout.
            let tools = client.list_tools().await?;
            // The answer is in; a failed goodbye does not change it.
            let _ = client.close().await;
            if target.json {
                println!("{}", serde_json::to_string_pretty(&tools)?);
            } else {
                for tool in &tools {
                    let summary = tool
                        .description
                        .as_deref()
                        .and_then(|d| d.lines().next())
                        .unwrap_or_default();
                    println!("{}\t{summary}", tool.name);
                }
            }
            Ok(0)
        }
        McpCommand::Call {
            target,
            tool,
            arguments,
        } => {
            let arguments = arguments.as_deref().map(parse_arguments).transpose()?;
            let client = connect(&target).await?;
            let mut progress = client.progress();
            let printer = tokio::spawn(async move {
                loop {
                    let update = match progress.recv().await {
                        Ok(update) => update,
                        Err(RecvError::Lagged(_)) => continue,
                        Err(RecvError::Closed) => break,
                    };
                    let total = update.total.map(|t| format!("/{t}")).unwrap_or_default();
                    let message = update.message.map(|m| format!(" {m}")).unwrap_or_default();
                    eprintln!("progress {}{total}{message}", update.progress);
                }
            });
            let result = match client.call_tool(&tool, arguments).await {
                Ok(result) => result,
                Err(e) => {
                    printer.abort();
                    return Err(e.into());
                }
            };
            // Closing drops the notification sender once the last notification is handed
            // over, which ends the printer: every progress line is out before the result.
            let _ = client.close().await;
            let _ = tokio::time::timeout(PRINTER_DRAIN, printer).await;
            if target.json {
                println!("{}", serde_json::to_string_pretty(&result)?);
            } else {
                print_result(&result)?;
            }
            Ok(if result.is_error == Some(true) { 1 } else { 0 })
        }
    }
}

fn parse_arguments(text: &str) -> anyhow::Result<JsonObject> {
    match serde_json::from_str(text).context("JSON_ARGS is not valid JSON")? {
        Value::Object(object) => Ok(object),
        other => anyhow::bail!("JSON_ARGS must be a JSON object, got {other}"),
    }
}

async fn connect(target: &McpTarget) -> anyhow::Result<McpClient> {
    let choice = match &target.via {
        Some(via) => EnvironmentChoice::parse(via),
        None => EnvironmentChoice::from_env(),
    };
    let manager = EnvironmentManager::new(choice);
    // The exec server may be the part that is down; it gets the same deadline.
    tokio::time::timeout(target.timeout, manager.environment())
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "the exec server did not answer within {}s",
                target.timeout.as_secs_f64()
            )
        })??;
    let mut config = McpClientConfig::new(&target.server);
    config.timeout = target.timeout;
    Ok(manager.connect_mcp(config).await?)
}

/// Text blocks as they are; anything else (images, resources) as one JSON line each.
fn print_result(result: &CallToolResult) -> anyhow::Result<()> {
    let out = if result.is_error == Some(true) {
        eprintln!("exec-server: the tool reported an error:");
        print_to_stderr
    } else {
        print_to_stdout
    };
    for block in &result.content {
        match block {
            ContentBlock::Text(text) => out(&text.text),
            other => out(&serde_json::to_string(other)?),
        }
    }
    if result.content.is_empty() {
        if let Some(structured) = &result.structured_content {
            out(&serde_json::to_string_pretty(structured)?);
        }
    }
    Ok(())
}

fn print_to_stdout(line: &str) {
    println!("{line}");
}

fn print_to_stderr(line: &str) {
    eprintln!("{line}");
}
