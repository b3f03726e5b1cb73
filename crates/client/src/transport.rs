//! The transports a client can reach a server over, all behind one link interface:
//! `ws://`, `wss://`, `unix:///path` (websockets), and `ssh://[user@]host[:port]`, which runs
//! `exec-server serve --listen stdio` on the far side through the system's `ssh` and speaks
//! line-delimited JSON over its stdin and stdout.

use crate::connection::ClientOptions;
use crate::error::ClientError;
use futures::{Sink, SinkExt, Stream, StreamExt};
use std::pin::Pin;
use std::sync::Arc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// What the client sends on a link.
pub(crate) enum Outgoing {
    Text(String),
    /// A keepalive probe; transports without one ignore it.
    Ping,
}

/// A message from the server: `Some(text)`, or `None` for a control frame (proof of life).
pub(crate) type Incoming = Option<String>;

pub(crate) type LinkSink = Pin<Box<dyn Sink<Outgoing, Error = String> + Send>>;
pub(crate) type LinkStream = Pin<Box<dyn Stream<Item = Result<Incoming, String>> + Send>>;

/// Whether the server answers pings on this kind of link (websockets do; the stdio
/// transport under ssh does not, and ssh has its own keepalive).
pub(crate) fn has_keepalive(url: &str) -> bool {
    !url.starts_with("ssh://")
}

/// Opens a link to `url`.
pub(crate) async fn open(
    url: &str,
    options: &ClientOptions,
) -> Result<(LinkSink, LinkStream), ClientError> {
    let fail = |reason: String| ClientError::Connect {
        url: url.to_owned(),
        reason,
    };
    if let Some(target) = url.strip_prefix("ssh://") {
        return open_ssh(target, options).map_err(fail);
    }
    let config = WebSocketConfig::default()
        .max_message_size(Some(options.max_message_bytes))
        .max_frame_size(Some(options.max_message_bytes));
    let (request_url, unix_path) = match url.strip_prefix("unix://") {
        // The websocket handshake still needs a URL; the host in it is not used.
        Some(path) => ("ws://localhost/".to_owned(), Some(path.to_owned())),
        None => (url.to_owned(), None),
    };
    let mut request = request_url
        .as_str()
        .into_client_request()
        .map_err(|e| fail(e.to_string()))?;
    if let Some(token) = &options.token {
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| fail("the token is not a valid header value".to_owned()))?;
        request.headers_mut().insert("authorization", value);
    }
    if let Some(path) = unix_path {
        let stream = tokio::net::UnixStream::connect(&path)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let (socket, _) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(config))
                .await
                .map_err(|e| fail(e.to_string()))?;
        return Ok(websocket_link(socket));
    }
    if url.starts_with("wss://") {
        let host = request
            .uri()
            .host()
            .ok_or_else(|| fail("no host".to_owned()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = request.uri().port_u16().unwrap_or(443);
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| fail(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let connector = tls_connector(options).map_err(fail)?;
        let name = tokio_rustls::rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| fail(e.to_string()))?;
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| fail(format!("TLS: {e}")))?;
        let (socket, _) = tokio_tungstenite::client_async_with_config(request, tls, Some(config))
            .await
            .map_err(|e| fail(e.to_string()))?;
        return Ok(websocket_link(socket));
    }
    let (socket, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), true)
        .await
        .map_err(|e| fail(e.to_string()))?;
    Ok(websocket_link(socket))
}

fn websocket_link<S>(socket: tokio_tungstenite::WebSocketStream<S>) -> (LinkSink, LinkStream)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sink, stream) = socket.split();
    let sink = sink
        .with(|outgoing: Outgoing| {
            futures::future::ready(Ok::<_, tokio_tungstenite::tungstenite::Error>(
                match outgoing {
                    Outgoing::Text(text) => WsMessage::Text(text.into()),
                    Outgoing::Ping => WsMessage::Ping(Default::default()),
                },
            ))
        })
        .sink_map_err(|e| e.to_string());
    let stream = stream.map(|frame| match frame {
        Ok(WsMessage::Text(text)) => Ok(Some(text.as_str().to_owned())),
        Ok(WsMessage::Binary(bytes)) => String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| "the server sent a binary frame that is not UTF-8".to_owned()),
        Ok(WsMessage::Close(_)) => Err("the server closed the connection".to_owned()),
        Ok(_) => Ok(None),
        Err(e) => Err(e.to_string()),
    });
    (Box::pin(sink), Box::pin(stream))
}

/// Trusts `options.tls_root_certificate` if given, else the system's roots.
fn tls_connector(options: &ClientOptions) -> Result<tokio_rustls::TlsConnector, String> {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::CertificateDer;
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    match &options.tls_root_certificate {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            {
                let cert = cert.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                roots.add(cert).map_err(|e| e.to_string())?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let config = tokio_rustls::rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// `ssh://[user@]host[:port]`: the far side's stdio transport, through the system's ssh.
fn open_ssh(target: &str, options: &ClientOptions) -> Result<(LinkSink, LinkStream), String> {
    use tokio_util::codec::{FramedRead, FramedWrite, LinesCodec};
    let target = target.trim_end_matches('/');
    let (destination, port) = match target.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => (host, Some(port)),
        _ => (target, None),
    };
    let mut command = tokio::process::Command::new("ssh");
    if let Some(port) = port {
        command.args(["-p", port]);
    }
    command
        .arg("--")
        .arg(destination)
        .arg(&options.ssh_remote_command)
        .args(["serve", "--listen", "stdio"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        // The link owns the ssh process: dropping the link ends it.
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run ssh: {e}"))?;
    let stdin = child.stdin.take().expect("stdin is piped");
    let stdout = child.stdout.take().expect("stdout is piped");
    let limit = options.max_message_bytes;
    // Each message is one line (serialized JSON has no raw newline); pings have no line form.
    let sink = FramedWrite::new(stdin, LinesCodec::new())
        .with_flat_map(|outgoing: Outgoing| {
            futures::stream::iter(match outgoing {
                Outgoing::Text(text) => Some(Ok(text)),
                Outgoing::Ping => None,
            })
        })
        .sink_map_err(|e: tokio_util::codec::LinesCodecError| e.to_string());
    let lines = FramedRead::new(stdout, LinesCodec::new_with_max_length(limit));
    let stream = futures::stream::unfold((lines, child), |(mut lines, child)| async move {
        let item = match lines.next().await? {
            Ok(line) => Ok(Some(line)),
            Err(e) => Err(e.to_string()),
        };
        Some((item, (lines, child)))
    });
    Ok((Box::pin(sink), Box::pin(stream)))
}
