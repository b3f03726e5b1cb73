//! `McpHttpAdapter`: rmcp's Streamable HTTP client trait on top of an environment's
//! [`HttpClient`], so one implementation serves the local environment (reqwest, here) and a
//! remote one (`http/request` on an exec server, with the body streamed back as deltas).
//!
//! rmcp keeps the MCP state machine (session ids, SSE parsing and reconnects, the initialize
//! handshake and its replay after a session expires); this adapter only turns one rmcp
//! operation into one HTTP exchange and classifies the answer the way rmcp expects:
//!
//! | answer | POST | GET (SSE) | DELETE |
//! |---|---|---|---|
//! | 202 / 204 | accepted | - | ok |
//! | 404 | session expired if a session id was sent | ends the stream | ok |
//! | 405 | - | no SSE stream | ok |
//! | 401 / 403 with `www-authenticate` | auth challenge | auth challenge | - |
//! | 429 / 5xx | HTTP status error (a JSON-RPC error body wins) | HTTP status error | error |

use crate::sse_limit::{limit_event_size, SseEventTooLarge};
use bytes::Bytes;
use exec_server_environment::{HttpBodyStream, HttpClient, HttpError};
use exec_server_protocol::http::{HttpHeader, HttpRequestParams, HttpRequestResponse};
use exec_server_protocol::Base64Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use http::{HeaderName, HeaderValue};
use rmcp::model::{ClientJsonRpcMessage, JsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::common::http_header::{
    EVENT_STREAM_MIME_TYPE, HEADER_LAST_EVENT_ID, HEADER_MCP_PROTOCOL_VERSION, HEADER_SESSION_ID,
    JSON_MIME_TYPE,
};
use rmcp::transport::streamable_http_client::{
    AuthRequiredError, HttpStatusError, InsufficientScopeError, StreamableHttpClient,
    StreamableHttpError, StreamableHttpPostResponse, StreamableHttpResponseLimits,
};
use sse_stream::{Error as SseError, Sse, SseStream};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// What every POST and GET accepts: a Streamable HTTP server answers with either.
const ACCEPT_SSE_OR_JSON: &str = "text/event-stream, application/json";

/// Why one HTTP exchange with the MCP server failed below the MCP layer.
#[derive(Debug, thiserror::Error)]
pub enum McpHttpError {
    /// The environment's HTTP capability failed: connection refused, DNS, TLS, a broken
    /// body, or (remote) the exec server's error or a lost connection to it.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The MCP server accepted the request but sent no status line in time.
    #[error("no response from the MCP server within {}s", .timeout.as_secs_f64())]
    NoResponse { timeout: Duration },
    #[error(transparent)]
    SseEventTooLarge(#[from] SseEventTooLarge),
    /// `http/request` carries header values as strings.
    #[error("header {name} cannot be sent: its value is not valid UTF-8")]
    HeaderNotUtf8 { name: String },
    #[error("failed to encode the JSON-RPC message: {0}")]
    Encode(#[source] serde_json::Error),
    #[error("the MCP server refused to end the session: HTTP {status}")]
    DeleteRefused { status: u16 },
}

type AdapterError = StreamableHttpError<McpHttpError>;

impl From<McpHttpError> for AdapterError {
    fn from(e: McpHttpError) -> Self {
        StreamableHttpError::Client(e)
    }
}

/// rmcp's `StreamableHttpClient` over an environment's HTTP capability. Cheap to clone.
#[derive(Clone)]
pub struct McpHttpAdapter {
    http: Arc<dyn HttpClient>,
    response_timeout: Duration,
}

impl McpHttpAdapter {
    /// `response_timeout` bounds the wait for each response's status and headers (and the
    /// whole of a DELETE); bodies may stream for as long as the server keeps them open.
    pub fn new(http: Arc<dyn HttpClient>, response_timeout: Duration) -> Self {
        McpHttpAdapter {
            http,
            response_timeout,
        }
    }

    async fn send_streamed(
        &self,
        method: &str,
        uri: &str,
        headers: Vec<HttpHeader>,
        body: Option<Vec<u8>>,
    ) -> Result<(HttpRequestResponse, HttpBodyStream), AdapterError> {
        let params = HttpRequestParams {
            method: method.to_owned(),
            url: uri.to_owned(),
            headers,
            body_base64: body.map(Base64Bytes::from),
            // An SSE body lives as long as the server keeps it open; only the wait for the
            // head is bounded, below.
            timeout_ms: None,
            request_id: String::new(),
            stream_response: true,
        };
        match tokio::time::timeout(self.response_timeout, self.http.request_stream(params)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(McpHttpError::Http(e).into()),
            Err(_) => Err(McpHttpError::NoResponse {
                timeout: self.response_timeout,
            }
            .into()),
        }
    }

    async fn post(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_token: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> Result<StreamableHttpPostResponse, AdapterError> {
        let mut headers = vec![
            HttpHeader::new("accept", ACCEPT_SSE_OR_JSON),
            HttpHeader::new("content-type", JSON_MIME_TYPE),
        ];
        let session_was_sent = session_id.is_some();
        if let Some(session_id) = session_id {
            headers.push(HttpHeader::new(HEADER_SESSION_ID, &*session_id));
        }
        add_auth_and_custom(&mut headers, auth_token, custom_headers)?;
        // Only a request is owed an answer; a POSTed notification or reply needs nothing
        // from the body, whatever the server puts there.
        let awaits_no_response = !matches!(message, JsonRpcMessage::Request(_));
        let body = serde_json::to_vec(&message).map_err(McpHttpError::Encode)?;

        let (head, body) = self
            .send_streamed("POST", &uri, headers, Some(body))
            .await?;
        if let Some(challenge) = auth_challenge(&head) {
            return Err(challenge);
        }
        match head.status {
            202 | 204 => return Ok(StreamableHttpPostResponse::Accepted),
            // The server no longer knows the session: rmcp replays initialize and retries
            // this POST once. Without a session id a 404 is just a wrong URL.
            404 if session_was_sent => return Err(StreamableHttpError::SessionExpired),
            _ => {}
        }
        let content_type = header(&head, "content-type");
        let is_json = content_type.is_some_and(|ct| media_type_is(ct, JSON_MIME_TYPE));
        let new_session_id = header(&head, HEADER_SESSION_ID).map(str::to_owned);

        if !(200..300).contains(&head.status) {
            let diagnostic = if is_json && !matches!(head.status, 401 | 403 | 429) {
                // A JSON-RPC error sent with an error status is still the server's answer to
                // this request, so it goes to the caller as such.
                let raw = read_bounded(body, limits.max_json_response_size).await?;
                if let Ok(error @ JsonRpcMessage::Error(_)) =
                    serde_json::from_slice::<ServerJsonRpcMessage>(&raw)
                {
                    return Ok(StreamableHttpPostResponse::Json(error, new_session_id));
                }
                lossy_prefix(&raw, limits.max_error_response_size)
            } else {
                let prefix = read_prefix(body, limits.max_error_response_size).await;
                lossy_prefix(&prefix, limits.max_error_response_size)
            };
            if let Some(status_error) = retryable_status(&head) {
                return Err(status_error.into());
            }
            return Err(StreamableHttpError::UnexpectedServerResponse(Cow::Owned(
                format!("HTTP {}: {diagnostic}", head.status),
            )));
        }
        if awaits_no_response && header(&head, "content-length") == Some("0") {
            return Ok(StreamableHttpPostResponse::Accepted);
        }
        match content_type {
            Some(ct) if media_type_is(ct, EVENT_STREAM_MIME_TYPE) => {
                Ok(StreamableHttpPostResponse::Sse(
                    sse_events(body, limits.max_sse_event_size),
                    new_session_id,
                ))
            }
            Some(_) if is_json => {
                let raw = read_bounded(body, limits.max_json_response_size).await?;
                match serde_json::from_slice::<ServerJsonRpcMessage>(&raw) {
                    Ok(message) => Ok(StreamableHttpPostResponse::Json(message, new_session_id)),
                    Err(_) if awaits_no_response => Ok(StreamableHttpPostResponse::Accepted),
                    Err(e) => Err(StreamableHttpError::UnexpectedServerResponse(Cow::Owned(
                        format!(
                            "the MCP server's JSON is not a JSON-RPC message: {e}: {}",
                            lossy_prefix(&raw, 256)
                        ),
                    ))),
                }
            }
            _ if awaits_no_response => Ok(StreamableHttpPostResponse::Accepted),
            other => Err(StreamableHttpError::UnexpectedContentType(
                other.map(str::to_owned),
            )),
        }
    }

    async fn get(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_token: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, AdapterError> {
        let mut headers = vec![HttpHeader::new("accept", ACCEPT_SSE_OR_JSON)];
        if let Some(session_id) = session_id {
            headers.push(HttpHeader::new(HEADER_SESSION_ID, &*session_id));
        }
        if let Some(last_event_id) = last_event_id {
            headers.push(HttpHeader::new(HEADER_LAST_EVENT_ID, last_event_id));
        }
        add_auth_and_custom(&mut headers, auth_token, custom_headers)?;

        let (head, body) = self.send_streamed("GET", &uri, headers, None).await?;
        match head.status {
            405 => return Err(StreamableHttpError::ServerDoesNotSupportSse),
            404 => {
                // The session is gone. This ends the stream rather than reporting expiry:
                // the next POST notices it and recovers. rmcp's reconnect loop stops only on
                // a few errors, and an empty stream would be reconnected forever, so "no SSE
                // here" is the one answer that ends it.
                tracing::debug!("MCP server answered the SSE GET with 404; ending the stream");
                return Err(StreamableHttpError::ServerDoesNotSupportSse);
            }
            _ => {}
        }
        if let Some(challenge) = auth_challenge(&head) {
            return Err(challenge);
        }
        if let Some(status_error) = retryable_status(&head) {
            return Err(status_error.into());
        }
        if !(200..300).contains(&head.status) {
            return Err(StreamableHttpError::UnexpectedServerResponse(Cow::Owned(
                format!("HTTP {} to the SSE GET", head.status),
            )));
        }
        match header(&head, "content-type") {
            Some(ct)
                if media_type_is(ct, EVENT_STREAM_MIME_TYPE)
                    || media_type_is(ct, JSON_MIME_TYPE) =>
            {
                Ok(sse_events(body, max_sse_event_size))
            }
            other => Err(StreamableHttpError::UnexpectedContentType(
                other.map(str::to_owned),
            )),
        }
    }
}

impl StreamableHttpClient for McpHttpAdapter {
    type Error = McpHttpError;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_token: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, AdapterError> {
        let limits = StreamableHttpResponseLimits::default();
        self.post(uri, message, session_id, auth_token, custom_headers, limits)
            .await
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_token: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<StreamableHttpPostResponse, AdapterError> {
        let mut limits = StreamableHttpResponseLimits::default();
        limits.max_sse_event_size = max_sse_event_size;
        self.post(uri, message, session_id, auth_token, custom_headers, limits)
            .await
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_token: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> Result<StreamableHttpPostResponse, AdapterError> {
        self.post(uri, message, session_id, auth_token, custom_headers, limits)
            .await
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_token: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), AdapterError> {
        let mut headers = vec![HttpHeader::new(HEADER_SESSION_ID, &*session_id)];
        add_auth_and_custom(&mut headers, auth_token, custom_headers)?;
        let params = HttpRequestParams {
            method: "DELETE".to_owned(),
            url: uri.to_string(),
            headers,
            body_base64: None,
            timeout_ms: Some(self.response_timeout.as_millis() as u64),
            request_id: String::new(),
            stream_response: false,
        };
        let response = self
            .http
            .request(params)
            .await
            .map_err(McpHttpError::Http)?;
        match response.status {
            // 405: the server does not support ending sessions; 404: it already forgot this
            // one. Either way there is nothing left to end.
            200..=299 | 404 | 405 => Ok(()),
            status => Err(McpHttpError::DeleteRefused { status }.into()),
        }
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_token: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, AdapterError> {
        let max_sse_event_size = StreamableHttpResponseLimits::default().max_sse_event_size;
        self.get(
            uri,
            session_id,
            last_event_id,
            auth_token,
            custom_headers,
            max_sse_event_size,
        )
        .await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_token: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, AdapterError> {
        self.get(
            uri,
            session_id,
            last_event_id,
            auth_token,
            custom_headers,
            max_sse_event_size,
        )
        .await
    }
}

/// Adds `Authorization: Bearer` and every custom header. rmcp puts protocol headers
/// (`mcp-protocol-version`, SEP-2243's `Mcp-Method`...) among the custom ones, so all must go;
/// only the names this adapter owns are refused, as rmcp's own clients do.
fn add_auth_and_custom(
    headers: &mut Vec<HttpHeader>,
    auth_token: Option<String>,
    custom_headers: HashMap<HeaderName, HeaderValue>,
) -> Result<(), AdapterError> {
    if let Some(token) = auth_token {
        headers.push(HttpHeader::new("authorization", format!("Bearer {token}")));
    }
    for (name, value) in custom_headers {
        let reserved = ["accept", HEADER_SESSION_ID, HEADER_LAST_EVENT_ID]
            .iter()
            .any(|r| name.as_str().eq_ignore_ascii_case(r))
            && !name
                .as_str()
                .eq_ignore_ascii_case(HEADER_MCP_PROTOCOL_VERSION);
        if reserved {
            return Err(StreamableHttpError::ReservedHeaderConflict(
                name.to_string(),
            ));
        }
        let value = value.to_str().map_err(|_| McpHttpError::HeaderNotUtf8 {
            name: name.to_string(),
        })?;
        headers.push(HttpHeader::new(name.as_str(), value));
    }
    Ok(())
}

/// The first value of a response header (`http/request` reports names in lowercase).
fn header<'a>(response: &'a HttpRequestResponse, name: &str) -> Option<&'a str> {
    response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

/// Whether a `Content-Type` value names `expected`, ignoring case and parameters.
fn media_type_is(content_type: &str, expected: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(expected))
}

/// A 401 or 403 that carries a challenge, as the auth error rmcp (and an OAuth layer on
/// top of it) acts on.
fn auth_challenge(response: &HttpRequestResponse) -> Option<AdapterError> {
    let challenge = header(response, "www-authenticate")?.to_owned();
    match response.status {
        401 => Some(StreamableHttpError::AuthRequired(AuthRequiredError::new(
            challenge,
        ))),
        403 => {
            let scope = challenge_scope(&challenge);
            Some(StreamableHttpError::InsufficientScope(
                InsufficientScopeError::new(challenge, scope),
            ))
        }
        _ => None,
    }
}

/// The `scope` parameter of a `WWW-Authenticate` challenge, quoted or not.
fn challenge_scope(challenge: &str) -> Option<String> {
    let start = challenge.to_ascii_lowercase().find("scope=")? + "scope=".len();
    let rest = &challenge[start..];
    let scope = match rest.strip_prefix('"') {
        Some(quoted) => &quoted[..quoted.find('"')?],
        None => rest.split([',', ' ']).next().unwrap_or_default(),
    };
    Some(scope.to_owned())
}

/// 429 and 5xx: failures a caller may retry later, reported with `Retry-After` only.
fn retryable_status(response: &HttpRequestResponse) -> Option<HttpStatusError> {
    (response.status == 429 || (500..600).contains(&response.status)).then(|| {
        HttpStatusError::new(
            response.status,
            header(response, "retry-after").map(str::to_owned),
        )
    })
}

/// The body parsed as SSE as it arrives, one event at most `max_event_size` bytes.
fn sse_events(
    body: HttpBodyStream,
    max_event_size: usize,
) -> BoxStream<'static, Result<Sse, SseError>> {
    let body = body.map(|chunk| chunk.map_err(McpHttpError::Http));
    SseStream::from_bytes_stream(limit_event_size(body, max_event_size)).boxed()
}

/// The whole body, or `ResponseBodyTooLarge` as soon as it passes `max_size`.
async fn read_bounded(mut body: HttpBodyStream, max_size: usize) -> Result<Bytes, AdapterError> {
    let mut buffer = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(McpHttpError::Http)?;
        if chunk.len() > max_size - buffer.len() {
            return Err(StreamableHttpError::ResponseBodyTooLarge { max_size });
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buffer))
}

/// Up to `max_size` bytes of an error body, for a diagnostic; a body that fails midway
/// gives what arrived.
async fn read_prefix(mut body: HttpBodyStream, max_size: usize) -> Vec<u8> {
    let mut prefix = Vec::new();
    while prefix.len() < max_size {
        match body.next().await {
            Some(Ok(chunk)) => {
                let take = chunk.len().min(max_size - prefix.len());
                prefix.extend_from_slice(&chunk[..take]);
            }
            Some(Err(_)) | None => break,
        }
    }
    prefix
}

fn lossy_prefix(bytes: &[u8], max_size: usize) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(max_size)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use rmcp::model::{
        ClientNotification, ClientRequest, InitializedNotification, NumberOrString, PingRequest,
        RequestId,
    };
    use std::sync::Mutex;

    /// An `HttpClient` that answers every request with one canned response and records
    /// what it was asked.
    struct CannedHttp {
        status: u16,
        headers: Vec<HttpHeader>,
        body: &'static str,
        seen: Mutex<Vec<HttpRequestParams>>,
    }

    impl CannedHttp {
        fn new(status: u16, headers: &[(&str, &str)], body: &'static str) -> Arc<Self> {
            Arc::new(CannedHttp {
                status,
                headers: headers
                    .iter()
                    .map(|(n, v)| HttpHeader::new(*n, *v))
                    .collect(),
                body,
                seen: Mutex::new(Vec::new()),
            })
        }

        fn last(&self) -> HttpRequestParams {
            self.seen
                .lock()
                .unwrap()
                .last()
                .cloned()
                .expect("a request")
        }

        fn head(&self) -> HttpRequestResponse {
            HttpRequestResponse {
                status: self.status,
                headers: self.headers.clone(),
                body_base64: Base64Bytes::default(),
            }
        }
    }

    #[async_trait]
    impl HttpClient for CannedHttp {
        async fn request(
            &self,
            params: HttpRequestParams,
        ) -> Result<HttpRequestResponse, HttpError> {
            self.seen.lock().unwrap().push(params);
            let mut response = self.head();
            response.body_base64 = Base64Bytes::from(self.body);
            Ok(response)
        }

        async fn request_stream(
            &self,
            params: HttpRequestParams,
        ) -> Result<(HttpRequestResponse, HttpBodyStream), HttpError> {
            self.seen.lock().unwrap().push(params);
            // Split in two so parsers see a chunk boundary inside the body.
            let (a, b) = self.body.split_at(self.body.len() / 2);
            let chunks = vec![Ok(Bytes::from(a)), Ok(Bytes::from(b))];
            Ok((
                self.head(),
                HttpBodyStream::new(futures::stream::iter(chunks).boxed()),
            ))
        }
    }

    fn adapter(http: &Arc<CannedHttp>) -> McpHttpAdapter {
        McpHttpAdapter::new(http.clone(), Duration::from_secs(5))
    }

    fn ping() -> ClientJsonRpcMessage {
        ClientJsonRpcMessage::request(
            ClientRequest::PingRequest(PingRequest::default()),
            RequestId::Number(7),
        )
    }

    fn initialized() -> ClientJsonRpcMessage {
        ClientJsonRpcMessage::notification(ClientNotification::InitializedNotification(
            InitializedNotification::default(),
        ))
    }

    const URI: &str = "http://127.0.0.1:1/mcp";

    async fn post(
        http: &Arc<CannedHttp>,
        message: ClientJsonRpcMessage,
        session: Option<&str>,
    ) -> Result<StreamableHttpPostResponse, AdapterError> {
        let mut custom = HashMap::new();
        custom.insert(
            HeaderName::from_static("mcp-protocol-version"),
            HeaderValue::from_static("2025-11-25"),
        );
        adapter(http)
            .post_message(
                URI.into(),
                message,
                session.map(Arc::from),
                Some("tok".into()),
                custom,
            )
            .await
    }

    fn sent(params: &HttpRequestParams, name: &str) -> Vec<String> {
        params
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.clone())
            .collect()
    }

    #[tokio::test]
    async fn post_sends_the_streamable_http_headers_and_the_message() {
        let http = CannedHttp::new(
            200,
            &[
                ("content-type", "application/json; charset=utf-8"),
                ("mcp-session-id", "s-2"),
            ],
            r#"{"jsonrpc":"2.0","id":7,"result":{}}"#,
        );
        let response = post(&http, ping(), Some("s-1")).await.unwrap();
        let StreamableHttpPostResponse::Json(JsonRpcMessage::Response(reply), session) = response
        else {
            panic!("expected a JSON response, got {response:?}");
        };
        assert_eq!(reply.id, NumberOrString::Number(7));
        assert_eq!(session.as_deref(), Some("s-2"));
        let request = http.last();
        assert_eq!(request.method, "POST");
        assert_eq!(request.url, URI);
        assert!(request.stream_response);
        assert_eq!(sent(&request, "accept"), [ACCEPT_SSE_OR_JSON]);
        assert_eq!(sent(&request, "content-type"), ["application/json"]);
        assert_eq!(sent(&request, "mcp-session-id"), ["s-1"]);
        assert_eq!(sent(&request, "authorization"), ["Bearer tok"]);
        assert_eq!(sent(&request, "mcp-protocol-version"), ["2025-11-25"]);
        let body: serde_json::Value =
            serde_json::from_slice(&request.body_base64.unwrap()).unwrap();
        assert_eq!(body["method"], "ping");
        assert_eq!(body["id"], 7);
    }

    #[tokio::test]
    async fn post_statuses_map_as_rmcp_expects() {
        let accepted = CannedHttp::new(202, &[], "");
        assert!(matches!(
            post(&accepted, initialized(), Some("s")).await,
            Ok(StreamableHttpPostResponse::Accepted)
        ));
        let gone = CannedHttp::new(404, &[], "session not found");
        assert!(matches!(
            post(&gone, ping(), Some("s")).await,
            Err(StreamableHttpError::SessionExpired)
        ));
        // Without a session a 404 is a wrong URL, not an expiry to recover from.
        match post(&gone, ping(), None).await {
            Err(StreamableHttpError::UnexpectedServerResponse(m)) => {
                assert_eq!(m, "HTTP 404: session not found")
            }
            other => panic!("unexpected {other:?}"),
        }
        let challenge = CannedHttp::new(401, &[("www-authenticate", "Bearer realm=\"x\"")], "");
        match post(&challenge, ping(), None).await {
            Err(StreamableHttpError::AuthRequired(e)) => {
                assert_eq!(e.www_authenticate_header, "Bearer realm=\"x\"")
            }
            other => panic!("unexpected {other:?}"),
        }
        let scope = CannedHttp::new(
            403,
            &[(
                "www-authenticate",
                "Bearer error=\"insufficient_scope\", scope=\"a b\"",
            )],
            "",
        );
        match post(&scope, ping(), None).await {
            Err(StreamableHttpError::InsufficientScope(e)) => {
                assert_eq!(e.required_scope.as_deref(), Some("a b"))
            }
            other => panic!("unexpected {other:?}"),
        }
        let busy = CannedHttp::new(503, &[("retry-after", "7")], "busy");
        match post(&busy, ping(), None).await {
            Err(StreamableHttpError::HttpStatus(e)) => {
                assert_eq!((e.status, e.retry_after.as_deref()), (503, Some("7")))
            }
            other => panic!("unexpected {other:?}"),
        }
        let rpc_error = CannedHttp::new(
            400,
            &[("content-type", "application/json")],
            r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"bad"}}"#,
        );
        assert!(matches!(
            post(&rpc_error, ping(), None).await,
            Ok(StreamableHttpPostResponse::Json(
                JsonRpcMessage::Error(_),
                _
            ))
        ));
        let html = CannedHttp::new(200, &[("content-type", "text/html")], "<html>");
        assert!(matches!(
            post(&html, ping(), None).await,
            Err(StreamableHttpError::UnexpectedContentType(Some(ct))) if ct == "text/html"
        ));
        // A notification needs nothing from the body.
        assert!(matches!(
            post(&html, initialized(), None).await,
            Ok(StreamableHttpPostResponse::Accepted)
        ));
    }

    #[tokio::test]
    async fn post_parses_an_sse_body_incrementally() {
        let http = CannedHttp::new(
            200,
            &[("content-type", "text/event-stream")],
            "id: 1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":1}}\n\n\
             id: 2\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}\n\n",
        );
        let Ok(StreamableHttpPostResponse::Sse(events, _)) = post(&http, ping(), None).await else {
            panic!("expected SSE");
        };
        let events: Vec<Sse> = events.map(Result::unwrap).collect().await;
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].id.as_deref(), Some("1"));
        assert!(events[1].data.as_deref().unwrap().contains("\"id\":7"));
    }

    async fn get(http: &Arc<CannedHttp>) -> Result<Vec<Sse>, AdapterError> {
        let events = adapter(http)
            .get_stream(
                URI.into(),
                Some("s-1".into()),
                Some("41".into()),
                Some("tok".into()),
                HashMap::new(),
            )
            .await?;
        Ok(events.map(Result::unwrap).collect().await)
    }

    #[tokio::test]
    async fn get_opens_sse_and_ends_on_405_and_404() {
        let http = CannedHttp::new(200, &[("content-type", "text/event-stream")], "data: x\n\n");
        assert_eq!(get(&http).await.unwrap().len(), 1);
        let request = http.last();
        assert_eq!(request.method, "GET");
        assert_eq!(sent(&request, "mcp-session-id"), ["s-1"]);
        assert_eq!(sent(&request, "last-event-id"), ["41"]);
        assert_eq!(sent(&request, "authorization"), ["Bearer tok"]);
        for status in [404, 405] {
            let http = CannedHttp::new(status, &[], "");
            assert!(
                matches!(
                    get(&http).await,
                    Err(StreamableHttpError::ServerDoesNotSupportSse)
                ),
                "GET {status}"
            );
        }
    }

    #[tokio::test]
    async fn delete_succeeds_unless_the_server_refuses() {
        for (status, ok) in [
            (200, true),
            (204, true),
            (404, true),
            (405, true),
            (500, false),
        ] {
            let http = CannedHttp::new(status, &[], "");
            let result = adapter(&http)
                .delete_session(URI.into(), "s-1".into(), None, HashMap::new())
                .await;
            assert_eq!(result.is_ok(), ok, "DELETE {status}: {result:?}");
            let request = http.last();
            assert_eq!(request.method, "DELETE");
            assert_eq!(sent(&request, "mcp-session-id"), ["s-1"]);
            assert!(request.timeout_ms.is_some(), "a DELETE must not hang");
        }
    }

    #[tokio::test]
    async fn reserved_custom_headers_are_refused() {
        let http = CannedHttp::new(202, &[], "");
        let mut custom = HashMap::new();
        custom.insert(
            HeaderName::from_static("mcp-session-id"),
            HeaderValue::from_static("forged"),
        );
        let result = adapter(&http)
            .post_message(URI.into(), ping(), None, None, custom)
            .await;
        assert!(matches!(
            result,
            Err(StreamableHttpError::ReservedHeaderConflict(_))
        ));
    }

    #[test]
    fn scopes_are_read_from_challenges() {
        assert_eq!(
            challenge_scope("Bearer scope=\"a b\"").as_deref(),
            Some("a b")
        );
        assert_eq!(
            challenge_scope("Bearer scope=read, x=1").as_deref(),
            Some("read")
        );
        assert_eq!(challenge_scope("Bearer realm=\"x\""), None);
    }
}
