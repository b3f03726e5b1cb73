//! A TCP proxy on loopback that can cut every connection through it on demand, and refuse
//! new ones for a while: a network failure the test controls.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

pub struct ChaosProxy {
    pub url: String,
    cuts: watch::Sender<u64>,
    refuse_until: Arc<Mutex<Instant>>,
    accept_task: tokio::task::JoinHandle<()>,
}

impl ChaosProxy {
    /// Proxies `ws://127.0.0.1:<port>` to the server at `target_url` (`ws://IP:PORT`).
    pub async fn start(target_url: &str) -> ChaosProxy {
        let target: SocketAddr = target_url
            .trim_start_matches("ws://")
            .parse()
            .expect("a ws://IP:PORT target");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        let (cuts, _) = watch::channel(0u64);
        let refuse_until = Arc::new(Mutex::new(Instant::now()));
        let accept_task = tokio::spawn({
            let cuts = cuts.clone();
            let refuse_until = refuse_until.clone();
            async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        return;
                    };
                    if Instant::now() < *refuse_until.lock().unwrap() {
                        drop(client);
                        continue;
                    }
                    tokio::spawn(pipe(client, target, cuts.subscribe()));
                }
            }
        });
        ChaosProxy {
            url,
            cuts,
            refuse_until,
            accept_task,
        }
    }

    /// Cuts every live connection and refuses new ones for `outage`.
    pub fn cut(&self, outage: Duration) {
        *self.refuse_until.lock().unwrap() = Instant::now() + outage;
        self.cuts.send_modify(|n| *n += 1);
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        self.accept_task.abort();
        self.cuts.send_modify(|n| *n += 1);
    }
}

async fn pipe(mut client: TcpStream, target: SocketAddr, mut cuts: watch::Receiver<u64>) {
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    cuts.borrow_and_update();
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = cuts.changed() => {
            // An abrupt cut: no websocket close, no FIN-then-drain, just gone.
            let _ = client.set_zero_linger();
            let _ = server.set_zero_linger();
        }
    }
    let _ = client.shutdown().await;
    let _ = server.shutdown().await;
}
