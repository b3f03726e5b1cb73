//! The HTTP capability: HTTP requests made from the environment's network position.

use async_trait::async_trait;
use bytes::Bytes;
use exec_server_protocol::error_codes;
use exec_server_protocol::http::{HttpRequestParams, HttpRequestResponse};
use exec_server_protocol::ErrorObject;
use futures::stream::{BoxStream, Fuse};
use futures::StreamExt;

/// Makes HTTP requests with the semantics of `http/request`. Implemented locally by
/// [`crate::local::ReqwestHttpClient`] and remotely by the client library.
///
/// Any HTTP status, 4xx and 5xx included, is a successful response. `timeoutMs` bounds the
/// whole request, body included; absent means no timeout.
#[async_trait]
pub trait HttpClient: Send + Sync {
    /// Sends the request and returns the response with its whole body. A body larger than
    /// the implementation's limit fails with [`HttpError::BodyTooLarge`].
    async fn request(&self, params: HttpRequestParams) -> Result<HttpRequestResponse, HttpError>;

    /// Sends the request and returns once the status and headers are in (the response's
    /// `body_base64` is empty); the body follows as a stream of chunks. `stream_response` and
    /// `request_id` in `params` are the implementation's business and are ignored.
    async fn request_stream(
        &self,
        params: HttpRequestParams,
    ) -> Result<(HttpRequestResponse, HttpBodyStream), HttpError>;
}

/// The body of a streamed response: chunks in order. It ends (`None`) after the last chunk
/// when the body is complete, or right after an `Err` when it failed midway, and keeps
/// returning `None` after that. A consumer that stops polling slows the transfer down
/// (back-pressure) rather than buffering it.
pub struct HttpBodyStream(Fuse<BoxStream<'static, Result<Bytes, HttpError>>>);

impl HttpBodyStream {
    pub fn new(stream: BoxStream<'static, Result<Bytes, HttpError>>) -> Self {
        HttpBodyStream(stream.fuse())
    }

    /// The next chunk, `None` once the body is over.
    pub async fn next(&mut self) -> Option<Result<Bytes, HttpError>> {
        self.0.next().await
    }

    /// Reads the rest of the body into memory (for callers that want it whole after all).
    pub async fn collect(mut self) -> Result<Vec<u8>, HttpError> {
        let mut body = Vec::new();
        while let Some(chunk) = self.next().await {
            body.extend_from_slice(&chunk?);
        }
        Ok(body)
    }
}

impl futures::Stream for HttpBodyStream {
    type Item = Result<Bytes, HttpError>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::pin::Pin::new(&mut self.0).poll_next(cx)
    }
}

impl std::fmt::Debug for HttpBodyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpBodyStream")
    }
}

/// Why an HTTP call failed. Each variant maps to the JSON-RPC error the server sends (the
/// messages are the codex server's), and a remote failure carries the server's error
/// unchanged, so callers can match on [`code`](HttpError::code) whichever implementation
/// they use.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("http/request method is invalid: {0}")]
    InvalidMethod(String),
    #[error("http/request url is invalid: {0}")]
    InvalidUrl(String),
    #[error("http/request only supports http and https URLs, got {0}")]
    UnsupportedScheme(String),
    #[error("http/request header name is invalid: {name:?}: {reason}")]
    InvalidHeaderName { name: String, reason: String },
    #[error("http/request header value is invalid for {name}: {reason}")]
    InvalidHeaderValue { name: String, reason: String },
    /// The request could not be sent or answered: connection, TLS, redirect or timeout.
    #[error("http/request failed: {0}")]
    Failed(String),
    /// The body broke off after the status and headers arrived (reset, timeout, truncation).
    #[error("failed to read http/request response body: {0}")]
    Body(String),
    /// A buffered body above the limit; stream the response to receive it.
    #[error(
        "http/request response body exceeds the limit of {limit} bytes (maxHttpBodyBytes); \
         use streamResponse to receive larger bodies"
    )]
    BodyTooLarge { limit: u64 },
    /// An error reply from a remote server, or a remote body stream that ended with an error.
    #[error("{0}")]
    Remote(ErrorObject),
    /// The connection to the server is gone, or it broke the body stream's protocol.
    #[error("{0}")]
    Transport(String),
}

impl HttpError {
    /// The JSON-RPC error code: validation -32602, transport and body failures -32603, the
    /// body limit -32600 (as every exceeded limit is).
    pub fn code(&self) -> i64 {
        match self {
            HttpError::InvalidMethod(_)
            | HttpError::InvalidUrl(_)
            | HttpError::UnsupportedScheme(_)
            | HttpError::InvalidHeaderName { .. }
            | HttpError::InvalidHeaderValue { .. } => error_codes::INVALID_PARAMS,
            HttpError::Failed(_) | HttpError::Body(_) => error_codes::INTERNAL_ERROR,
            HttpError::BodyTooLarge { .. } => error_codes::INVALID_REQUEST,
            HttpError::Remote(e) => e.code,
            HttpError::Transport(_) => error_codes::TRANSPORT_CLOSED,
        }
    }

    /// The JSON-RPC error object the server sends for this failure.
    pub fn to_error_object(&self) -> ErrorObject {
        match self {
            HttpError::Remote(e) => e.clone(),
            HttpError::BodyTooLarge { limit } => ErrorObject::new(self.code(), self.to_string())
                .with_data(serde_json::json!({
                    "limit": "maxHttpBodyBytes",
                    "maxBytes": limit,
                })),
            other => ErrorObject::new(other.code(), other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_codes() {
        assert_eq!(HttpError::InvalidMethod("x".into()).code(), -32602);
        assert_eq!(
            HttpError::UnsupportedScheme("ftp".into()).to_string(),
            "http/request only supports http and https URLs, got ftp"
        );
        assert_eq!(HttpError::Failed("reset".into()).code(), -32603);
        assert_eq!(HttpError::Body("reset".into()).code(), -32603);
        let too_large = HttpError::BodyTooLarge { limit: 10 }.to_error_object();
        assert_eq!(too_large.code, -32600);
        let data = too_large.data.unwrap();
        assert_eq!(data["limit"], "maxHttpBodyBytes");
        assert_eq!(data["maxBytes"], 10);
        let remote = HttpError::Remote(ErrorObject::new(-32602, "bad"));
        assert_eq!(remote.code(), -32602);
        assert_eq!(remote.to_error_object().message, "bad");
    }
}
