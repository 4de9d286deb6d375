//! An OTLP trace receiver on loopback, built on the OTLP protobuf definitions: a real
//! OTLP/gRPC server (`opentelemetry.proto.collector.trace.v1.TraceService/Export`) and an
//! OTLP/HTTP one (`POST /v1/traces`, protobuf or JSON), each on its own free port. It keeps every
//! span it receives, so a test can ask which spans of a trace arrived and from whom.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;

/// One span as received.
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits.
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    /// The span's attributes, values as text.
    pub attributes: BTreeMap<String, String>,
    /// The resource's attributes (`service.name`…), values as text.
    pub resource: BTreeMap<String, String>,
    /// `grpc`, `http/protobuf` or `http/json`: how it arrived.
    pub protocol: &'static str,
}

type Spans = Arc<Mutex<Vec<ReceivedSpan>>>;

/// The receiver; stops when dropped.
pub struct OtlpReceiver {
    /// OTLP/gRPC: use `http://{grpc}` as the endpoint.
    pub grpc: SocketAddr,
    /// OTLP/HTTP: use `http://{http}` (the exporter adds `/v1/traces`).
    pub http: SocketAddr,
    spans: Spans,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OtlpReceiver {
    /// Listens on two free loopback ports, served from a thread of its own.
    pub fn start() -> anyhow::Result<Self> {
        let grpc = std::net::TcpListener::bind("127.0.0.1:0")?;
        let http = std::net::TcpListener::bind("127.0.0.1:0")?;
        grpc.set_nonblocking(true)?;
        http.set_nonblocking(true)?;
        let (grpc_addr, http_addr) = (grpc.local_addr()?, http.local_addr()?);
        let spans = Spans::default();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let kept = spans.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let grpc = tokio::net::TcpListener::from_std(grpc).expect("gRPC listener");
                let http = tokio::net::TcpListener::from_std(http).expect("HTTP listener");
                let grpc_server = tonic::transport::Server::builder()
                    .add_service(TraceServiceServer::new(Collector(kept.clone())))
                    .serve_with_incoming(tonic::transport::server::TcpIncoming::from(grpc));
                tokio::select! {
                    _ = stopped => {}
                    _ = grpc_server => {}
                    _ = serve_http(http, kept) => {}
                }
            })
        });
        Ok(Self {
            grpc: grpc_addr,
            http: http_addr,
            spans,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT` of the gRPC receiver.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// `http://127.0.0.1:PORT` of the HTTP receiver.
    pub fn http_endpoint(&self) -> String {
        format!("http://{}", self.http)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The spans of `trace_id` received so far.
    pub fn trace(&self, trace_id: &str) -> Vec<ReceivedSpan> {
        self.spans()
            .into_iter()
            .filter(|s| s.trace_id == trace_id)
            .collect()
    }

    /// Waits until `done` holds for the spans of `trace_id` (exporters batch, so spans arrive
    /// a few seconds late); returns them either way once `limit` has passed.
    pub fn wait_for_trace(
        &self,
        trace_id: &str,
        limit: Duration,
        done: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Vec<ReceivedSpan> {
        let started = Instant::now();
        loop {
            let spans = self.trace(trace_id);
            if done(&spans) || started.elapsed() > limit {
                return spans;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Collector(Spans);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        keep(&self.0, request.into_inner(), "grpc");
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

async fn serve_http(listener: tokio::net::TcpListener, spans: Spans) {
    while let Ok((stream, _)) = listener.accept().await {
        let spans = spans.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let spans = spans.clone();
                async move { Ok::<_, std::convert::Infallible>(http_export(req, &spans).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn http_export(req: Request<Incoming>, spans: &Spans) -> Response<Full<Bytes>> {
    let answer = |status: StatusCode, body: &str| {
        Response::builder()
            .status(status)
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("response")
    };
    if req.method() != hyper::Method::POST || req.uri().path() != "/v1/traces" {
        return answer(StatusCode::NOT_FOUND, "POST /v1/traces only");
    }
    let json = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
        return answer(StatusCode::BAD_REQUEST, "unreadable body");
    };
    let decoded = if json {
        serde_json::from_slice::<ExportTraceServiceRequest>(&body).map_err(|e| e.to_string())
    } else {
        ExportTraceServiceRequest::decode(body).map_err(|e| e.to_string())
    };
    match decoded {
        Ok(request) => {
            keep(
                spans,
                request,
                if json { "http/json" } else { "http/protobuf" },
            );
            let mut response = Response::builder().status(StatusCode::OK);
            if json {
                response = response.header(hyper::header::CONTENT_TYPE, "application/json");
                response
                    .body(Full::new(Bytes::from("{}")))
                    .expect("response")
            } else {
                response = response.header(hyper::header::CONTENT_TYPE, "application/x-protobuf");
                let body = ExportTraceServiceResponse {
                    partial_success: None,
                }
                .encode_to_vec();
                response
                    .body(Full::new(Bytes::from(body)))
                    .expect("response")
            }
        }
        Err(e) => answer(StatusCode::BAD_REQUEST, &e),
    }
}

fn keep(spans: &Spans, request: ExportTraceServiceRequest, protocol: &'static str) {
    let mut kept = spans.lock().unwrap_or_else(|p| p.into_inner());
    for resource_spans in request.resource_spans {
        let resource = resource_spans
            .resource
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                kept.push(ReceivedSpan {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    name: span.name,
                    attributes: attributes(&span.attributes),
                    resource: resource.clone(),
                    protocol,
                });
            }
        }
    }
}

fn attributes(list: &[KeyValue]) -> BTreeMap<String, String> {
    list.iter()
        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
        .collect()
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
