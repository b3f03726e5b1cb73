//! One JSON Schema document for the whole protocol (`docs/protocol.schema.json`).
//!
//! The document validates a single wire message (its root is `anyOf` the four message shapes)
//! and carries every params, result and notification type under `$defs`. Three extension
//! keys tie the types to the protocol:
//! - `x-methods`: request method name → `{params, result, addition}` (`$ref`s into `$defs`;
//!   `addition` is true for methods beyond the April codex protocol);
//! - `x-notifications`: notification name → `{params, direction, addition}`;
//! - `x-errorCodes`: error name → `{code, description}`.
//!
//! Object keys are sorted at every level, so the output does not depend on how `serde_json`
//! is compiled and is byte-for-byte stable.

use crate::envelope::{EmptyResponse, ErrorObject, RequestId};
use crate::{error_codes, fs, http, initialize, methods, process};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{json, Map, Value};

const DEFS_PREFIX: &str = "#/$defs/";

/// The protocol's JSON Schema document.
pub fn protocol_schema() -> Value {
    let mut generator = SchemaGenerator::new(SchemaSettings::draft2020_12());
    let g = &mut generator;

    let mut requests = Map::new();
    let mut request = |name: &str, params: Value, result: Value, addition: bool| {
        requests.insert(
            name.to_owned(),
            json!({"params": params, "result": result, "addition": addition}),
        );
    };
    request(
        methods::INITIALIZE,
        def::<initialize::InitializeParams>(g),
        def::<initialize::InitializeResponse>(g),
        false,
    );
    request(
        methods::PROCESS_START,
        def::<process::StartParams>(g),
        def::<process::StartResponse>(g),
        false,
    );
    request(
        methods::PROCESS_READ,
        def::<process::ReadParams>(g),
        def::<process::ReadResponse>(g),
        false,
    );
    request(
        methods::PROCESS_WRITE,
        def::<process::WriteParams>(g),
        def::<process::WriteResponse>(g),
        false,
    );
    request(
        methods::PROCESS_TERMINATE,
        def::<process::TerminateParams>(g),
        def::<process::TerminateResponse>(g),
        false,
    );
    request(
        methods::PROCESS_SIGNAL,
        def::<process::SignalParams>(g),
        def::<process::SignalResponse>(g),
        true,
    );
    request(
        methods::PROCESS_CLOSE_STDIN,
        def::<process::CloseStdinParams>(g),
        def::<EmptyResponse>(g),
        true,
    );
    request(
        methods::PROCESS_LIST,
        def::<process::ListParams>(g),
        def::<process::ListResponse>(g),
        true,
    );
    request(
        methods::PROCESS_RESIZE,
        def::<process::ResizeParams>(g),
        def::<EmptyResponse>(g),
        true,
    );
    request(
        methods::FS_READ_FILE,
        def::<fs::ReadFileParams>(g),
        def::<fs::ReadFileResponse>(g),
        false,
    );
    request(
        methods::FS_WRITE_FILE,
        def::<fs::WriteFileParams>(g),
        def::<EmptyResponse>(g),
        false,
    );
    request(
        methods::FS_CREATE_DIRECTORY,
        def::<fs::CreateDirectoryParams>(g),
        def::<EmptyResponse>(g),
        false,
    );
    request(
        methods::FS_GET_METADATA,
        def::<fs::GetMetadataParams>(g),
        def::<fs::GetMetadataResponse>(g),
        false,
    );
    request(
        methods::FS_READ_DIRECTORY,
        def::<fs::ReadDirectoryParams>(g),
        def::<fs::ReadDirectoryResponse>(g),
        false,
    );
    request(
        methods::FS_REMOVE,
        def::<fs::RemoveParams>(g),
        def::<EmptyResponse>(g),
        false,
    );
    request(
        methods::FS_COPY,
        def::<fs::CopyParams>(g),
        def::<EmptyResponse>(g),
        false,
    );
    request(
        methods::FS_RENAME,
        def::<fs::RenameParams>(g),
        def::<EmptyResponse>(g),
        true,
    );
    request(
        methods::HTTP_REQUEST,
        def::<http::HttpRequestParams>(g),
        def::<http::HttpRequestResponse>(g),
        false,
    );

    let mut notifications = Map::new();
    let mut notification = |name: &str, params: Value, direction: &str| {
        notifications.insert(
            name.to_owned(),
            json!({"params": params, "direction": direction, "addition": false}),
        );
    };
    notification(
        methods::INITIALIZED,
        def::<EmptyResponse>(g),
        "client-to-server",
    );
    notification(
        methods::PROCESS_OUTPUT,
        def::<process::OutputNotification>(g),
        "server-to-client",
    );
    notification(
        methods::PROCESS_EXITED,
        def::<process::ExitedNotification>(g),
        "server-to-client",
    );
    notification(
        methods::PROCESS_CLOSED,
        def::<process::ClosedNotification>(g),
        "server-to-client",
    );
    notification(
        methods::HTTP_REQUEST_BODY_DELTA,
        def::<http::BodyDeltaNotification>(g),
        "server-to-client",
    );

    let request_id = def::<RequestId>(g);
    let error_object = def::<ErrorObject>(g);

    let mut defs = generator.take_definitions(true);
    for (name, schema) in envelope_defs(&request_id, &error_object) {
        let previous = defs.insert(name.clone(), schema);
        assert!(previous.is_none(), "$defs name `{name}` is used twice");
    }

    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "exec-server protocol",
        "description": "Wire protocol of exec-server, a codex exec-server compatible JSON-RPC \
            remote execution server. One JSON message per websocket frame: JSON-RPC 2.0 \
            shapes without the \"jsonrpc\" member (accepted and ignored when sent). Every \
            optional field also accepts an explicit null, and unknown fields are ignored.",
        "anyOf": [
            {"$ref": "#/$defs/RequestMessage"},
            {"$ref": "#/$defs/NotificationMessage"},
            {"$ref": "#/$defs/ResponseMessage"},
            {"$ref": "#/$defs/ErrorMessage"}
        ],
        "$defs": defs,
        "x-methods": requests,
        "x-notifications": notifications,
        "x-errorCodes": error_code_table(),
    });
    sort_keys(root)
}

/// [`protocol_schema`] as pretty JSON with a trailing newline (the content of
/// `docs/protocol.schema.json`).
pub fn protocol_schema_string() -> String {
    let mut s = serde_json::to_string_pretty(&protocol_schema()).expect("schema serializes");
    s.push('\n');
    s
}

/// Registers `T` in the generator and returns its `$ref`, refusing silent renames (schemars
/// appends a number when two types share a name).
fn def<T: JsonSchema>(generator: &mut SchemaGenerator) -> Value {
    let schema = generator.subschema_for::<T>().to_value();
    let expected = format!("{DEFS_PREFIX}{}", T::schema_name());
    assert_eq!(
        schema.get("$ref").and_then(Value::as_str),
        Some(expected.as_str()),
        "schema name of {} collides with another type",
        std::any::type_name::<T>()
    );
    schema
}

/// The four message shapes of the envelope.
fn envelope_defs(request_id: &Value, error_object: &Value) -> Vec<(String, Value)> {
    let method = json!({"type": "string"});
    vec![
        (
            "RequestMessage".to_owned(),
            json!({
                "description": "A request; the reply carries the same id.",
                "type": "object",
                "properties": {"id": request_id, "method": method, "params": {}},
                "required": ["id", "method"]
            }),
        ),
        (
            "NotificationMessage".to_owned(),
            json!({
                "description": "A notification: a method without an id.",
                "type": "object",
                "properties": {"method": method, "params": {}},
                "required": ["method"],
                "not": {"required": ["id"]}
            }),
        ),
        (
            "ResponseMessage".to_owned(),
            json!({
                "description": "A successful reply.",
                "type": "object",
                "properties": {"id": request_id, "result": {}},
                "required": ["id", "result"]
            }),
        ),
        (
            "ErrorMessage".to_owned(),
            json!({
                "description": "An error reply. The id is -1 when the request's id could not \
                    be read.",
                "type": "object",
                "properties": {"id": request_id, "error": error_object},
                "required": ["id", "error"]
            }),
        ),
    ]
}

fn error_code_table() -> Value {
    let codes = [
        (
            "INVALID_REQUEST",
            error_codes::INVALID_REQUEST,
            "Malformed message, lifecycle/gating errors, unknown or attached session, \
             duplicate process id, unknown process on read, fs invalid input or permission \
             denied (sandbox denials included), exceeded limits (data.limit names the limit).",
        ),
        (
            "METHOD_NOT_FOUND",
            error_codes::METHOD_NOT_FOUND,
            "Unknown request method.",
        ),
        (
            "INVALID_PARAMS",
            error_codes::INVALID_PARAMS,
            "Params that fail to decode or validate.",
        ),
        (
            "INTERNAL_ERROR",
            error_codes::INTERNAL_ERROR,
            "Spawn failures, I/O errors other than not-found/invalid/permission, sandbox \
             helper failures, HTTP transport failures.",
        ),
        (
            "NOT_FOUND",
            error_codes::NOT_FOUND,
            "A filesystem path that does not exist.",
        ),
        (
            "TRANSPORT_CLOSED",
            error_codes::TRANSPORT_CLOSED,
            "Client side only: the connection closed before the reply arrived.",
        ),
    ];
    let mut table = Map::new();
    for (name, code, description) in codes {
        table.insert(
            name.to_owned(),
            json!({"code": code, "description": description}),
        );
    }
    Value::Object(table)
}

/// Rebuilds every object with its keys in sorted order.
fn sort_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sort_keys(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sort_keys).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r.clone()),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn is_deterministic() {
        assert_eq!(protocol_schema_string(), protocol_schema_string());
        assert!(protocol_schema_string().ends_with("}\n"));
    }

    #[test]
    fn every_ref_resolves() {
        let schema = protocol_schema();
        let defs = schema["$defs"].as_object().unwrap();
        let mut all = Vec::new();
        refs(&schema, &mut all);
        assert!(!all.is_empty());
        for r in all {
            let name = r
                .strip_prefix(DEFS_PREFIX)
                .unwrap_or_else(|| panic!("unexpected $ref {r}"));
            assert!(defs.contains_key(name), "dangling $ref {r}");
        }
    }

    #[test]
    fn lists_every_method_and_notification() {
        let schema = protocol_schema();
        let requests = schema["x-methods"].as_object().unwrap();
        for m in [
            methods::INITIALIZE,
            methods::PROCESS_START,
            methods::PROCESS_READ,
            methods::PROCESS_WRITE,
            methods::PROCESS_TERMINATE,
            methods::FS_READ_FILE,
            methods::FS_WRITE_FILE,
            methods::FS_CREATE_DIRECTORY,
            methods::FS_GET_METADATA,
            methods::FS_READ_DIRECTORY,
            methods::FS_REMOVE,
            methods::FS_COPY,
            methods::FS_RENAME,
            methods::HTTP_REQUEST,
        ] {
            let entry = &requests[m];
            assert!(entry["params"]["$ref"].is_string(), "{m}");
            assert!(entry["result"]["$ref"].is_string(), "{m}");
        }
        assert_eq!(requests[methods::FS_RENAME]["addition"], true);
        let notifications = schema["x-notifications"].as_object().unwrap();
        for n in [
            methods::INITIALIZED,
            methods::PROCESS_OUTPUT,
            methods::PROCESS_EXITED,
            methods::PROCESS_CLOSED,
            methods::HTTP_REQUEST_BODY_DELTA,
        ] {
            assert!(notifications[n]["params"]["$ref"].is_string(), "{n}");
        }
        assert_eq!(schema["x-errorCodes"]["NOT_FOUND"]["code"], -32004);
        for name in [
            "RequestId",
            "ErrorObject",
            "SandboxPolicy",
            "ReadOnlyAccess",
        ] {
            assert!(schema["$defs"].get(name).is_some(), "{name}");
        }
    }
}
