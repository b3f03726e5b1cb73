//! Wire types of the exec-server protocol.
//!
//! This crate is the single description of what travels over the connection: the JSON-RPC
//! envelope, every method's params and result, notifications and error codes. It does no I/O,
//! so the server, the client and code generators for other languages (through the JSON Schema
//! in `docs/protocol.schema.json`) share one definition.
//!
//! Compatibility rules that shape every type here:
//! - field names are camelCase, except inside `SandboxPolicy`, which codex spells snake_case;
//! - optional fields accept an explicit `null` (real codex clients send them);
//! - unknown fields are ignored, never rejected (newer clients send more);
//! - byte fields are standard padded base64 on the wire and [`Base64Bytes`] in Rust.

mod base64_bytes;
pub mod envelope;
pub mod error_codes;
pub mod fs;
pub mod http;
pub mod initialize;
pub mod methods;
pub mod path;
pub mod process;
pub mod sandbox;
pub mod schema;

pub use base64_bytes::Base64Bytes;
pub use envelope::{EmptyResponse, ErrorObject, Message, RequestId};
pub use path::{AbsolutePath, PathForm};
