//! JSON-RPC error codes used by the protocol (the codex set, unchanged).

/// Malformed message, lifecycle/gating errors, unknown or attached session, duplicate process
/// id, unknown process on read, fs invalid input or permission denied, exceeded limits.
pub const INVALID_REQUEST: i64 = -32600;
/// Unknown request method.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Params that fail to decode or validate.
pub const INVALID_PARAMS: i64 = -32602;
/// Spawn failures, I/O errors other than not-found/invalid/permission, transport failures.
pub const INTERNAL_ERROR: i64 = -32603;
/// A filesystem path that does not exist.
pub const NOT_FOUND: i64 = -32004;
/// Client side only: the connection closed before the reply arrived.
pub const TRANSPORT_CLOSED: i64 = -32000;
