//! A loopback gRPC (HTTP/2 cleartext) proxy that records the `authorization` header of every
//! call before passing it on, to see which credentials a client really sends.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hyper::body::Incoming;
use hyper::{Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

pub struct RecordingProxy {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RecordingProxy {
    /// Listens on a free loopback port and forwards every call to `upstream` (`host:port`).
    pub async fn start(upstream: String) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let client: Client<_, Incoming> = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build_http();
        let recorded = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let client = client.clone();
                let recorded = recorded.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                        let client = client.clone();
                        if let Some(v) = req
                            .headers()
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                        {
                            recorded
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push(v.to_string());
                        }
                        let path = req
                            .uri()
                            .path_and_query()
                            .map(|p| p.as_str().to_string())
                            .unwrap_or_default();
                        let uri: Uri = format!("http://{upstream}{path}")
                            .parse()
                            .expect("upstream uri");
                        *req.uri_mut() = uri;
                        async move { client.request(req).await }
                    });
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, seen, task })
    }

    /// `http://127.0.0.1:PORT`, to use as the Temporal address.
    pub fn address(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every `authorization` value seen so far, oldest first.
    pub fn authorizations(&self) -> Vec<String> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
