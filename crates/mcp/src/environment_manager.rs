//! Which environment MCP servers are reached through: this machine, an exec server, or none.

use crate::client::{McpClient, McpClientConfig, McpError};
use exec_server_environment::Environment;
use tokio::sync::OnceCell;

/// The variable that selects the environment.
pub const EXEC_SERVER_URL_VAR: &str = "EXEC_SERVER_URL";
/// Codex's name for the same setting, read when [`EXEC_SERVER_URL_VAR`] is unset.
pub const CODEX_EXEC_SERVER_URL_VAR: &str = "CODEX_EXEC_SERVER_URL";

/// The configured environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvironmentChoice {
    /// This machine: HTTP goes out from this process.
    Local,
    /// The exec server at this URL: HTTP goes out from that machine (`http/request`).
    Remote(String),
    /// No environment: nothing can be reached.
    Disabled,
}

impl EnvironmentChoice {
    /// An exec-server URL selects that server, empty (or blank) this machine, and `none`
    /// (any case) no environment.
    pub fn parse(value: &str) -> EnvironmentChoice {
        let value = value.trim();
        if value.is_empty() {
            EnvironmentChoice::Local
        } else if value.eq_ignore_ascii_case("none") {
            EnvironmentChoice::Disabled
        } else {
            EnvironmentChoice::Remote(value.to_owned())
        }
    }

    /// From `EXEC_SERVER_URL`, else `CODEX_EXEC_SERVER_URL`; unset means this machine.
    /// `EXEC_SERVER_URL` wins even when empty, so it can force the local environment under
    /// a codex configuration.
    pub fn from_env() -> EnvironmentChoice {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> EnvironmentChoice {
        match lookup(EXEC_SERVER_URL_VAR).or_else(|| lookup(CODEX_EXEC_SERVER_URL_VAR)) {
            Some(value) => Self::parse(&value),
            None => EnvironmentChoice::Local,
        }
    }
}

/// Owns the selected environment, connected on first use and shared afterwards, and
/// connects MCP clients through it.
pub struct EnvironmentManager {
    choice: EnvironmentChoice,
    environment: OnceCell<Environment>,
}

impl EnvironmentManager {
    pub fn new(choice: EnvironmentChoice) -> Self {
        EnvironmentManager {
            choice,
            environment: OnceCell::new(),
        }
    }

    /// The environment the process's variables select (see [`EnvironmentChoice::from_env`]).
    pub fn from_env() -> Self {
        Self::new(EnvironmentChoice::from_env())
    }

    /// Uses an environment that is already connected (tests, or a caller that shares one).
    pub fn with_environment(choice: EnvironmentChoice, environment: Environment) -> Self {
        EnvironmentManager {
            choice,
            environment: OnceCell::new_with(Some(environment)),
        }
    }

    pub fn choice(&self) -> &EnvironmentChoice {
        &self.choice
    }

    /// The selected environment; a remote one is connected on the first call.
    pub async fn environment(&self) -> Result<&Environment, McpError> {
        self.environment
            .get_or_try_init(|| async {
                match &self.choice {
                    EnvironmentChoice::Local => Ok(Environment::local()),
                    EnvironmentChoice::Remote(url) => exec_server_client::connect_environment(url)
                        .await
                        .map_err(|error| McpError::ExecServer {
                            url: url.clone(),
                            error,
                        }),
                    EnvironmentChoice::Disabled => Err(McpError::NoEnvironment),
                }
            })
            .await
    }

    /// Connects to an MCP server with the selected environment's HTTP.
    pub async fn connect_mcp(&self, config: McpClientConfig) -> Result<McpClient, McpError> {
        let environment = self.environment().await?;
        McpClient::connect(environment.http().clone(), config).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choice(vars: &[(&str, &str)]) -> EnvironmentChoice {
        EnvironmentChoice::from_vars(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn values_select_remote_local_or_none() {
        assert_eq!(
            EnvironmentChoice::parse("ws://10.0.0.2:4000"),
            EnvironmentChoice::Remote("ws://10.0.0.2:4000".into())
        );
        assert_eq!(EnvironmentChoice::parse(""), EnvironmentChoice::Local);
        assert_eq!(EnvironmentChoice::parse("  "), EnvironmentChoice::Local);
        assert_eq!(
            EnvironmentChoice::parse("none"),
            EnvironmentChoice::Disabled
        );
        assert_eq!(
            EnvironmentChoice::parse("NONE"),
            EnvironmentChoice::Disabled
        );
    }

    #[test]
    fn exec_server_url_wins_over_the_codex_name() {
        assert_eq!(choice(&[]), EnvironmentChoice::Local);
        assert_eq!(
            choice(&[(CODEX_EXEC_SERVER_URL_VAR, "ws://codex:1")]),
            EnvironmentChoice::Remote("ws://codex:1".into())
        );
        assert_eq!(
            choice(&[
                (EXEC_SERVER_URL_VAR, "ws://ours:2"),
                (CODEX_EXEC_SERVER_URL_VAR, "ws://codex:1")
            ]),
            EnvironmentChoice::Remote("ws://ours:2".into())
        );
        assert_eq!(
            choice(&[
                (EXEC_SERVER_URL_VAR, ""),
                (CODEX_EXEC_SERVER_URL_VAR, "ws://codex:1")
            ]),
            EnvironmentChoice::Local
        );
        assert_eq!(
            choice(&[(CODEX_EXEC_SERVER_URL_VAR, "none")]),
            EnvironmentChoice::Disabled
        );
    }

    #[tokio::test]
    async fn no_environment_reaches_nothing() {
        let manager = EnvironmentManager::new(EnvironmentChoice::Disabled);
        let error = manager
            .connect_mcp(McpClientConfig::new("http://127.0.0.1:1/mcp"))
            .await
            .err()
            .expect("no environment, no client");
        assert!(matches!(error, McpError::NoEnvironment), "{error}");
    }
}
