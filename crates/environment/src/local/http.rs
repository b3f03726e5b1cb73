//! `ReqwestHttpClient`: the HTTP capability on this machine, over reqwest (rustls).

use crate::http::{HttpBodyStream, HttpClient, HttpError};
use async_trait::async_trait;
use bytes::Bytes;
use exec_server_protocol::http::{HttpHeader, HttpRequestParams, HttpRequestResponse};
use exec_server_protocol::Base64Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use std::error::Error as _;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Duration;

/// Settings of the local HTTP client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Largest response body a buffered request returns; streamed bodies have no limit.
    pub max_body_bytes: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_body_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The local HTTP client. One instance serves every session of a server: its connection
/// pools are the only state, and sharing them is what a pool is for.
#[derive(Debug, Default)]
pub struct ReqwestHttpClient {
    config: HttpConfig,
    /// Honours the environment's proxy settings (`HTTP_PROXY`, `NO_PROXY`, ...).
    proxied: OnceLock<Result<reqwest::Client, String>>,
    /// Never uses a proxy: for loopback destinations, which a proxy on another machine
    /// would resolve to itself (SPEC section 10).
    direct: OnceLock<Result<reqwest::Client, String>>,
}

impl ReqwestHttpClient {
    pub fn new(config: HttpConfig) -> Self {
        ReqwestHttpClient {
            config,
            ..ReqwestHttpClient::default()
        }
    }

    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// The reqwest client for `url`, built on first use: building one loads the platform's
    /// trust roots, which is too slow to repeat per request.
    fn client_for(&self, url: &Url) -> Result<reqwest::Client, HttpError> {
        let (cell, direct) = if is_loopback(url) {
            (&self.direct, true)
        } else {
            (&self.proxied, false)
        };
        cell.get_or_init(|| {
            let mut builder = reqwest::Client::builder();
            if direct {
                builder = builder.no_proxy();
            }
            builder.build().map_err(|e| error_chain(&e))
        })
        .clone()
        .map_err(|e| HttpError::Failed(format!("failed to build the HTTP client: {e}")))
    }

    /// Validates `params` and sends the request, returning the response once its status and
    /// headers are in.
    async fn send(&self, params: HttpRequestParams) -> Result<reqwest::Response, HttpError> {
        let method = Method::from_bytes(params.method.as_bytes())
            .map_err(|e| HttpError::InvalidMethod(format!("{:?} ({e})", params.method)))?;
        let url = Url::parse(&params.url)
            .map_err(|e| HttpError::InvalidUrl(format!("{:?} ({e})", params.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(HttpError::UnsupportedScheme(url.scheme().to_owned()));
        }
        let mut headers = HeaderMap::with_capacity(params.headers.len());
        for header in params.headers {
            let name = HeaderName::from_bytes(header.name.as_bytes()).map_err(|e| {
                HttpError::InvalidHeaderName {
                    name: header.name.clone(),
                    reason: e.to_string(),
                }
            })?;
            let value = HeaderValue::from_str(&header.value).map_err(|e| {
                HttpError::InvalidHeaderValue {
                    name: header.name.clone(),
                    reason: e.to_string(),
                }
            })?;
            // `append`, not `insert`: every repeated value is sent, in order within its name.
            headers.append(name, value);
        }
        let mut request = self.client_for(&url)?.request(method, url).headers(headers);
        if let Some(body) = params.body_base64 {
            request = request.body(body.into_bytes());
        }
        // reqwest's request timeout runs until the body has been read, which is the
        // protocol's whole-request deadline. None means no deadline at all.
        if let Some(ms) = params.timeout_ms {
            request = request.timeout(Duration::from_millis(ms));
        }
        request
            .send()
            .await
            .map_err(|e| HttpError::Failed(error_chain(&e)))
    }
}

#[async_trait]
impl HttpClient for ReqwestHttpClient {
    async fn request(&self, params: HttpRequestParams) -> Result<HttpRequestResponse, HttpError> {
        let mut response = self.send(params).await?;
        let limit = self.config.max_body_bytes;
        let too_large = HttpError::BodyTooLarge { limit };
        if response.content_length().is_some_and(|len| len > limit) {
            return Err(too_large);
        }
        let mut head = head_of(&response);
        let capacity = response.content_length().unwrap_or(0).min(limit);
        let mut body = Vec::with_capacity(capacity as usize);
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| HttpError::Body(error_chain(&e)))?
        {
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(too_large);
            }
            body.extend_from_slice(&chunk);
        }
        head.body_base64 = Base64Bytes::from(body);
        Ok(head)
    }

    async fn request_stream(
        &self,
        params: HttpRequestParams,
    ) -> Result<(HttpRequestResponse, HttpBodyStream), HttpError> {
        let response = self.send(params).await?;
        let head = head_of(&response);
        // Each poll reads one chunk from the connection, so nothing is read ahead of the
        // consumer beyond hyper's own buffer: a slow consumer slows the peer (TCP window).
        let body = futures::stream::unfold(Some(response), |response| async move {
            let mut response = response?;
            match response.chunk().await {
                Ok(Some(chunk)) => Some((Ok::<Bytes, HttpError>(chunk), Some(response))),
                Ok(None) => None,
                Err(e) => Some((Err(HttpError::Body(error_chain(&e))), None)),
            }
        });
        Ok((head, HttpBodyStream::new(Box::pin(body))))
    }
}

/// The status and headers of `response`, with an empty body. Header names come lowercase
/// from the HTTP stack; values that are not UTF-8 are dropped, as the protocol says.
fn head_of(response: &reqwest::Response) -> HttpRequestResponse {
    let headers = response
        .headers()
        .iter()
        .filter_map(|(name, value)| {
            let value = std::str::from_utf8(value.as_bytes()).ok()?;
            Some(HttpHeader::new(name.as_str(), value))
        })
        .collect();
    HttpRequestResponse {
        status: response.status().as_u16(),
        headers,
        body_base64: Base64Bytes::default(),
    }
}

/// Whether `url` names this machine literally: a loopback IP, `localhost` or a name under
/// `.localhost` (RFC 6761 reserves those for loopback).
fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return match ip {
            IpAddr::V4(v4) => v4.is_loopback(),
            IpAddr::V6(v6) => {
                v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
        };
    }
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// reqwest's message with its causes ("error sending request ...: client error (Connect):
/// tcp connect error: Connection refused"), since the top-level text alone rarely says why.
fn error_chain(error: &reqwest::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        // hyper and reqwest sometimes repeat their cause in their own text.
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(method: &str, url: &str) -> HttpRequestParams {
        HttpRequestParams {
            method: method.into(),
            url: url.into(),
            headers: vec![],
            body_base64: None,
            timeout_ms: None,
            request_id: String::new(),
            stream_response: false,
        }
    }

    #[test]
    fn loopback_destinations() {
        for url in [
            "http://127.0.0.1:1/",
            "http://127.3.4.5/",
            "http://[::1]:80/x",
            "http://[::ffff:127.0.0.1]/",
            "http://localhost:8080/",
            "https://LOCALHOST./",
            "http://api.localhost/",
        ] {
            assert!(is_loopback(&Url::parse(url).unwrap()), "{url}");
        }
        for url in [
            "http://10.0.0.1/",
            "http://example.com/",
            "http://localhost.example.com/",
            "http://[::2]/",
        ] {
            assert!(!is_loopback(&Url::parse(url).unwrap()), "{url}");
        }
    }

    #[tokio::test]
    async fn validation_comes_before_any_network_use() {
        let client = ReqwestHttpClient::default();
        let cases = [
            (
                params("GE T", "http://127.0.0.1:1/"),
                "http/request method is invalid: ",
            ),
            (params("GET", "not a url"), "http/request url is invalid: "),
            (
                params("GET", "ftp://127.0.0.1/"),
                "http/request only supports http and https URLs, got ftp",
            ),
            (
                HttpRequestParams {
                    headers: vec![HttpHeader::new("bad name", "v")],
                    ..params("GET", "http://127.0.0.1:1/")
                },
                "http/request header name is invalid: ",
            ),
            (
                HttpRequestParams {
                    headers: vec![HttpHeader::new("x-ok", "line\nbreak")],
                    ..params("GET", "http://127.0.0.1:1/")
                },
                "http/request header value is invalid for x-ok: ",
            ),
        ];
        for (p, expected) in cases {
            let error = client.request(p).await.unwrap_err();
            assert_eq!(error.code(), -32602, "{error}");
            assert!(error.to_string().starts_with(expected), "{error}");
        }
    }
}
