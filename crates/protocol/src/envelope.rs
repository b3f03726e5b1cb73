//! The JSON-RPC envelope: JSON-RPC 2.0 shapes without the `"jsonrpc"` member.
//!
//! An incoming `"jsonrpc"` member is accepted and ignored; outgoing messages never carry it.
//! Messages are told apart by shape: `id` + `method` is a request, `method` alone a
//! notification, `id` + `result` a response, `id` + `error` an error.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use std::fmt;

/// A request id: an integer or a string, echoed back verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RequestId {
    Integer(i64),
    String(String),
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestId::Integer(n) => write!(f, "{n}"),
            RequestId::String(s) => write!(f, "{s:?}"),
        }
    }
}

/// The id the server uses when it cannot tell which request a reply belongs to
/// (unparsable or oversized messages).
pub const UNKNOWN_REQUEST_ID: RequestId = RequestId::Integer(-1);

/// The `error` member of an error reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorObject {
    pub code: i64,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl ErrorObject {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        ErrorObject {
            code,
            message: message.into(),
            data: None,
        }
    }

    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }
}

impl fmt::Display for ErrorObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.message, self.code)
    }
}

/// The result (or params) `{}` of methods that return nothing. Any object is accepted on
/// input, whatever its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct EmptyResponse {}

/// One decoded message. `params` and `result` stay raw JSON so that each handler decodes
/// exactly the type it expects, and the error for bad params names the field at fault.
#[derive(Debug)]
pub enum Message {
    Request {
        id: RequestId,
        method: String,
        params: Option<Box<RawValue>>,
    },
    Notification {
        method: String,
        params: Option<Box<RawValue>>,
    },
    Response {
        id: RequestId,
        result: Box<RawValue>,
    },
    Error {
        id: RequestId,
        error: ErrorObject,
    },
}

/// Why a text could not be read as a message.
#[derive(Debug)]
pub struct MalformedMessage(pub String);

impl fmt::Display for MalformedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MalformedMessage {}

#[derive(Deserialize)]
struct RawEnvelope {
    /// `None` when absent; `Some(None)` for an explicit `"id": null`, which is neither a
    /// request (no usable id) nor a notification (it has an id member).
    #[serde(default, deserialize_with = "present")]
    id: Option<Option<RequestId>>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    params: Option<Box<RawValue>>,
    #[serde(default)]
    result: Option<Box<RawValue>>,
    #[serde(default)]
    error: Option<ErrorObject>,
}

/// Deserializes a member that is present, `null` included, as `Some`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// [`RawEnvelope`] with its id checked.
struct Parsed {
    id: Option<RequestId>,
    method: Option<String>,
    params: Option<Box<RawValue>>,
    result: Option<Box<RawValue>>,
    error: Option<ErrorObject>,
}

impl Message {
    /// Decodes one message from the text of a websocket frame (or one stdio line).
    pub fn parse(text: &str) -> Result<Message, MalformedMessage> {
        let raw: RawEnvelope =
            serde_json::from_str(text).map_err(|e| MalformedMessage(e.to_string()))?;
        let id = match raw.id {
            None => None,
            Some(Some(id)) => Some(id),
            Some(None) => {
                return Err(MalformedMessage(
                    "`id` is null; a request id is an integer or a string".to_owned(),
                ))
            }
        };
        let raw = Parsed {
            id,
            method: raw.method,
            params: raw.params,
            result: raw.result,
            error: raw.error,
        };
        match raw {
            Parsed {
                id: Some(id),
                method: Some(method),
                params,
                ..
            } => Ok(Message::Request { id, method, params }),
            Parsed {
                id: None,
                method: Some(method),
                params,
                ..
            } => Ok(Message::Notification { method, params }),
            Parsed {
                id: Some(id),
                error: Some(error),
                ..
            } => Ok(Message::Error { id, error }),
            Parsed {
                id: Some(id),
                result: Some(result),
                ..
            } => Ok(Message::Response { id, result }),
            Parsed {
                id: Some(id),
                result: None,
                ..
            } => Ok(Message::Response {
                // `"result": null` deserializes as None; a response with a null result is
                // still a response.
                id,
                result: RawValue::from_string("null".to_owned()).expect("null is valid JSON"),
            }),
            _ => Err(MalformedMessage(
                "message has neither `method` nor `id`".to_owned(),
            )),
        }
    }

    /// Best-effort recovery of the id of a message that failed to decode as a whole, so that
    /// the error reply can still name it.
    pub fn sniff_id(text: &str) -> Option<RequestId> {
        #[derive(Deserialize)]
        struct IdOnly {
            id: Option<RequestId>,
        }
        serde_json::from_str::<IdOnly>(text).ok().and_then(|m| m.id)
    }
}

/// Serializes a request.
pub fn request<P: Serialize>(id: &RequestId, method: &str, params: &P) -> String {
    #[derive(Serialize)]
    struct Out<'a, P> {
        id: &'a RequestId,
        method: &'a str,
        params: &'a P,
    }
    serde_json::to_string(&Out { id, method, params }).expect("request serializes")
}

/// Serializes a notification.
pub fn notification<P: Serialize>(method: &str, params: &P) -> String {
    #[derive(Serialize)]
    struct Out<'a, P> {
        method: &'a str,
        params: &'a P,
    }
    serde_json::to_string(&Out { method, params }).expect("notification serializes")
}

/// Serializes a successful response.
pub fn response<R: Serialize>(id: &RequestId, result: &R) -> String {
    #[derive(Serialize)]
    struct Out<'a, R> {
        id: &'a RequestId,
        result: &'a R,
    }
    serde_json::to_string(&Out { id, result }).expect("response serializes")
}

/// Serializes an error response.
pub fn error_response(id: &RequestId, error: &ErrorObject) -> String {
    #[derive(Serialize)]
    struct Out<'a> {
        id: &'a RequestId,
        error: &'a ErrorObject,
    }
    serde_json::to_string(&Out { id, error }).expect("error serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_by_shape_and_ignores_jsonrpc_member() {
        let m = Message::parse(r#"{"jsonrpc":"2.0","id":"a","method":"x","params":null}"#);
        assert!(
            matches!(m, Ok(Message::Request { id: RequestId::String(ref s), ref method, .. }) if s == "a" && method == "x")
        );
        let m = Message::parse(r#"{"method":"initialized"}"#).unwrap();
        assert!(matches!(m, Message::Notification { .. }));
        let m = Message::parse(r#"{"id":3,"result":{}}"#).unwrap();
        assert!(matches!(m, Message::Response { .. }));
        let m = Message::parse(r#"{"id":3,"result":null}"#).unwrap();
        assert!(matches!(m, Message::Response { .. }));
        let m = Message::parse(r#"{"id":3,"error":{"code":-32600,"message":"m"}}"#).unwrap();
        assert!(matches!(m, Message::Error { .. }));
        assert!(Message::parse("[]").is_err());
        // A null id is not an absent one: no notification, an error (answered with id -1).
        let err = Message::parse(r#"{"id":null,"method":"process/list"}"#).unwrap_err();
        assert!(err.to_string().contains("`id` is null"), "{err}");
        assert!(Message::parse("{}").is_err());
        assert!(Message::parse("{").is_err());
    }

    #[test]
    fn empty_response_is_an_empty_object() {
        assert_eq!(serde_json::to_string(&EmptyResponse {}).unwrap(), "{}");
        let _: EmptyResponse = serde_json::from_str(r#"{"extra":1}"#).unwrap();
    }

    #[test]
    fn error_data_is_omitted_when_absent() {
        let s = error_response(&RequestId::Integer(1), &ErrorObject::new(-32600, "bad"));
        assert_eq!(s, r#"{"id":1,"error":{"code":-32600,"message":"bad"}}"#);
    }
}
