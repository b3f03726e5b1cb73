//! `http/request` and its `http/request/bodyDelta` notification.

use crate::process::null_as_default;
use crate::Base64Bytes;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One HTTP header. Lists of headers keep wire order, and repeated names are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpHeader {
    pub name: String,
    pub value: String,
}

impl HttpHeader {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        HttpHeader {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// `http/request` params: an HTTP request made from the server's network position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRequestParams {
    /// Any valid HTTP method token.
    pub method: String,
    /// Absolute `http` or `https` URL.
    pub url: String,
    #[serde(default, deserialize_with = "null_as_default")]
    // An explicit null is accepted (as the default), so the schema says so.
    #[schemars(with = "Option<Vec<HttpHeader>>")]
    pub headers: Vec<HttpHeader>,
    /// Request body; absent or null = no body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<Base64Bytes>,
    /// Deadline for the whole request, body included; absent or null = no timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Caller-chosen id naming the body stream in `http/request/bodyDelta`; unique on the
    /// connection until the terminal delta. Required by codex; accepted as absent here (only
    /// a streamed request needs one).
    #[serde(default, deserialize_with = "null_as_default")]
    // An explicit null is accepted (as the default), so the schema says so.
    #[schemars(with = "Option<String>")]
    pub request_id: String,
    /// Return after the response headers and stream the body as notifications.
    #[serde(default, deserialize_with = "null_as_default")]
    // An explicit null is accepted (as the default), so the schema says so.
    #[schemars(with = "Option<bool>")]
    pub stream_response: bool,
}

/// `http/request` result. Any HTTP status, 4xx and 5xx included, is a result, not an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRequestResponse {
    pub status: u16,
    /// Response headers in wire order, names lowercase; values that are not UTF-8 are dropped.
    pub headers: Vec<HttpHeader>,
    /// The whole body, or empty when the body is streamed.
    pub body_base64: Base64Bytes,
}

/// `http/request/bodyDelta` notification: one chunk of a streamed response body.
///
/// `seq` starts at 1 and is contiguous per request. The last frame has `done: true` (and
/// `error` when the body failed mid-way); it usually carries no bytes, but may.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BodyDeltaNotification {
    pub request_id: String,
    pub seq: u64,
    pub delta_base64: Base64Bytes,
    #[serde(default, deserialize_with = "null_as_default")]
    // An explicit null is accepted (as the default), so the schema says so.
    #[schemars(with = "Option<bool>")]
    pub done: bool,
    #[serde(default)]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_reference_request() {
        let p: HttpRequestParams = serde_json::from_value(json!({
            "method": "POST",
            "url": "https://mcp.example.com/mcp",
            "headers": [{"name": "accept", "value": "application/json, text/event-stream"},
                        {"name": "x-a", "value": "1"}, {"name": "x-a", "value": "2"}],
            "bodyBase64": "eyJqc29ucnBjIjoiMi4wIn0=",
            "timeoutMs": 30000,
            "requestId": "http-7",
            "streamResponse": true
        }))
        .unwrap();
        assert_eq!(p.method, "POST");
        assert_eq!(p.headers.len(), 3);
        assert_eq!(p.headers[2], HttpHeader::new("x-a", "2"));
        assert_eq!(&p.body_base64.unwrap()[..], br#"{"jsonrpc":"2.0"}"#);
        assert_eq!(p.timeout_ms, Some(30000));
        assert_eq!(p.request_id, "http-7");
        assert!(p.stream_response);
    }

    #[test]
    fn request_defaults_and_nulls() {
        let minimal = HttpRequestParams {
            method: "GET".into(),
            url: "http://127.0.0.1/".into(),
            headers: vec![],
            body_base64: None,
            timeout_ms: None,
            request_id: String::new(),
            stream_response: false,
        };
        let p: HttpRequestParams =
            serde_json::from_str(r#"{"method":"GET","url":"http://127.0.0.1/"}"#).unwrap();
        assert_eq!(p, minimal);
        let p: HttpRequestParams = serde_json::from_str(
            r#"{"method":"GET","url":"http://127.0.0.1/","headers":null,"bodyBase64":null,
                "timeoutMs":null,"requestId":null,"streamResponse":null,"future":true}"#,
        )
        .unwrap();
        assert_eq!(p, minimal);
        assert_eq!(
            serde_json::to_value(&minimal).unwrap(),
            json!({"method":"GET","url":"http://127.0.0.1/","headers":[],"requestId":"",
                "streamResponse":false})
        );
    }

    #[test]
    fn response_matches_reference_shape() {
        let r = HttpRequestResponse {
            status: 200,
            headers: vec![HttpHeader::new("content-type", "text/event-stream")],
            body_base64: Base64Bytes::default(),
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"status":200,"headers":[{"name":"content-type","value":"text/event-stream"}],"bodyBase64":""}"#
        );
        let back: HttpRequestResponse =
            serde_json::from_str(r#"{"status":404,"headers":[],"bodyBase64":"aGk=","extra":1}"#)
                .unwrap();
        assert_eq!(back.status, 404);
        assert_eq!(&back.body_base64[..], b"hi");
    }

    #[test]
    fn body_delta_shapes() {
        let d: BodyDeltaNotification = serde_json::from_value(json!({
            "requestId": "http-7", "seq": 1, "deltaBase64": "ZGF0YTog", "done": false, "error": null
        }))
        .unwrap();
        assert_eq!(&d.delta_base64[..], b"data: ");
        assert!(!d.done);
        assert_eq!(d.error, None);
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"requestId":"http-7","seq":1,"deltaBase64":"ZGF0YTog","done":false,"error":null}"#
        );
        // done/error default to false/null when absent; a terminal frame may carry bytes.
        let d: BodyDeltaNotification =
            serde_json::from_str(r#"{"requestId":"r","seq":2,"deltaBase64":""}"#).unwrap();
        assert!(!d.done && d.error.is_none());
        let d: BodyDeltaNotification = serde_json::from_str(
            r#"{"requestId":"r","seq":3,"deltaBase64":"aGk=","done":true,"error":"reset"}"#,
        )
        .unwrap();
        assert!(d.done);
        assert_eq!(d.error.as_deref(), Some("reset"));
        assert_eq!(&d.delta_base64[..], b"hi");
    }
}
