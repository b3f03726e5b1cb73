//! A raw websocket JSON-RPC peer, for tests that check the wire itself.
#![allow(dead_code)]

use super::within;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub struct RawPeer {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Notifications received while waiting for a response.
    pub notifications: Vec<Value>,
}

impl RawPeer {
    pub async fn connect(url: &str) -> RawPeer {
        let (socket, _) = within("websocket connect", tokio_tungstenite::connect_async(url))
            .await
            .expect("websocket connect");
        RawPeer {
            socket,
            notifications: vec![],
        }
    }

    /// Connects and completes the handshake.
    pub async fn initialized(url: &str) -> RawPeer {
        let mut peer = Self::connect(url).await;
        let r = peer
            .request(json!({"id": 0, "method": "initialize", "params": {"clientName": "raw"}}))
            .await;
        assert!(r["result"]["sessionId"].is_string(), "{r}");
        peer.send(json!({"method": "initialized", "params": {}}))
            .await;
        peer
    }

    /// Closes the sending half of the TCP connection, as a peer going away does, while still
    /// reading what the server sends.
    pub async fn half_close(&mut self) {
        use tokio::io::AsyncWriteExt;
        match self.socket.get_mut() {
            MaybeTlsStream::Plain(tcp) => tcp.shutdown().await.expect("shutdown"),
            _ => unreachable!("tests use plain websockets"),
        }
    }

    /// The underlying websocket, for tests that read and write from separate tasks.
    pub fn into_socket(self) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        self.socket
    }

    /// Wraps a socket whose handshake is done.
    pub fn from_socket(socket: WebSocketStream<MaybeTlsStream<TcpStream>>) -> RawPeer {
        RawPeer {
            socket,
            notifications: vec![],
        }
    }

    pub async fn send(&mut self, message: Value) {
        self.send_text(message.to_string()).await;
    }

    pub async fn send_text(&mut self, text: String) {
        within("send", self.socket.send(Message::Text(text.into())))
            .await
            .expect("send");
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        within("send", self.socket.send(Message::Binary(bytes.into())))
            .await
            .expect("send");
    }

    /// The next message, or None if the server closed the connection.
    pub async fn next(&mut self) -> Option<Value> {
        within("a message", async {
            loop {
                match self.socket.next().await {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return None,
                    Some(Ok(Message::Text(t))) => return Some(serde_json::from_str(&t).unwrap()),
                    Some(Ok(Message::Binary(b))) => {
                        return Some(serde_json::from_slice(&b).unwrap())
                    }
                    Some(Ok(_)) => continue,
                }
            }
        })
        .await
    }

    /// The next reply (response or error), keeping notifications aside.
    pub async fn reply(&mut self) -> Value {
        loop {
            let m = self
                .next()
                .await
                .expect("connection closed while waiting for a reply");
            if m.get("id").is_some() {
                return m;
            }
            self.notifications.push(m);
        }
    }

    /// Sends a request and returns the reply with its id.
    pub async fn request(&mut self, message: Value) -> Value {
        let id = message["id"].clone();
        self.send(message).await;
        let r = self.reply().await;
        assert_eq!(r["id"], id, "reply to another request: {r}");
        r
    }
}
