//! A loopback gRPC (HTTP/2 cleartext) proxy that records every call (its method, and its
//! `authorization` and `temporal-namespace` headers) before passing it on, to see which calls and
//! credentials a client really sends.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hyper::body::Incoming;
use hyper::{Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// One gRPC call as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Call {
    /// `/package.Service/Method`, e.g. `/temporal.api.workflowservice.v1.WorkflowService/StartWorkflowExecution`.
    pub path: String,
    pub authorization: Option<String>,
    pub namespace: Option<String>,
}

impl Call {
    /// The method's name alone, e.g. `StartWorkflowExecution`.
    pub fn method(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or_default()
    }
}

pub struct RecordingProxy {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Call>>>,
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
                        let header = |name: &str| {
                            req.headers()
                                .get(name)
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_string)
                        };
                        let call = Call {
                            path: req.uri().path().to_string(),
                            authorization: header("authorization"),
                            namespace: header("temporal-namespace"),
                        };
                        recorded
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(call);
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
        self.calls()
            .into_iter()
            .filter_map(|c| c.authorization)
            .collect()
    }

    /// Every call seen so far, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
