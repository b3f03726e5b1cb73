//! Client library: a connection to an exec-server, and the **remote** implementations of the
//! `Environment` traits, which forward each call over that connection.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let env = exec_server_client::connect_environment("ws://127.0.0.1:4000").await?;
//! # Ok(()) }
//! ```

mod connection;
mod error;
mod remote_filesystem;
mod remote_http;
mod remote_process;
mod routing;
pub mod transfer;
mod transport;

pub use connection::{
    ClientOptions, ConnectionState, ConnectionWatch, ExecServerClient, ReconnectPolicy,
};
pub use error::ClientError;
pub use remote_filesystem::RemoteFileSystem;
pub use remote_http::RemoteHttpClient;
pub use remote_process::RemoteProcesses;

use exec_server_environment::Environment;
use std::sync::Arc;

/// Connects to the server at `url` and returns the remote environment over it.
pub async fn connect_environment(url: &str) -> Result<Environment, ClientError> {
    let client = ExecServerClient::connect(url, ClientOptions::from_env()).await?;
    Ok(environment(client))
}

/// The remote environment over an existing connection.
pub fn environment(client: ExecServerClient) -> Environment {
    Environment::new(
        Arc::new(RemoteProcesses::new(client.clone())),
        Arc::new(RemoteFileSystem::new(client.clone())),
        Arc::new(RemoteHttpClient::new(client)),
    )
}
