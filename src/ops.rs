//! The operator's HTTP endpoints on `ops.listen`: `/healthz`, `/readyz`, `/metrics`.
//!
//! - `/healthz`: 200 while the process is alive.
//! - `/readyz`: 200 only while every task queue is polling and the last check of the Temporal
//!   server succeeded; otherwise 503 with the reason as the body.
//! - `/metrics`: Prometheus text: the SDK's worker metrics (served by the SDK's exporter on a
//!   private loopback port and relayed here), then each section the process hands to [`serve`]
//!   (the worker: its activity metrics and the workflows' dropped signals; `edgeflow gateway`:
//!   its request metrics), then `edgeflow_worker_ready`, what `/readyz` says as a gauge.
//!
//! This module knows none of those metrics: whoever serves them says what they are, so the
//! gateway serves only its own.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpsSettings {
    /// Address of `/healthz`, `/readyz` and `/metrics`, e.g. `127.0.0.1:9464`.
    pub listen: SocketAddr,
}

/// One section of `/metrics`, rendered at each scrape: Prometheus text exposition, without the
/// OpenMetrics `# EOF` marker.
pub type MetricsSection = Box<dyn Fn() -> String + Send + Sync>;

/// A registry in Prometheus text, without the OpenMetrics `# EOF` marker (`/metrics` appends it
/// to the SDK's exposition).
pub fn render_registry(registry: &prometheus_client::registry::Registry) -> String {
    let mut out = String::new();
    if prometheus_client::encoding::text::encode_registry(&mut out, registry).is_err() {
        out.clear();
    }
    out.lines()
        .filter(|l| *l != "# EOF")
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Whether the worker should receive traffic, and if not, why.
#[derive(Debug)]
pub struct Readiness(RwLock<Result<(), String>>);

impl Readiness {
    pub fn new(initial_reason: &str) -> Arc<Self> {
        Arc::new(Self(RwLock::new(Err(initial_reason.to_string()))))
    }

    pub fn set_ready(&self) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Ok(());
    }

    pub fn set_not_ready(&self, reason: impl Into<String>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Err(reason.into());
    }

    pub fn get(&self) -> Result<(), String> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[derive(Clone)]
struct Ops {
    readiness: Arc<Readiness>,
    sections: Arc<[MetricsSection]>,
    sdk_metrics_url: Option<String>,
    http: reqwest::Client,
}

/// Binds `listen` now (so a bad address fails start-up) and serves until `stop`; `/metrics`
/// relays the SDK's exporter at `sdk_metrics_addr`, if any, then renders `sections` in order.
pub async fn serve(
    listen: SocketAddr,
    readiness: Arc<Readiness>,
    sections: Vec<MetricsSection>,
    sdk_metrics_addr: Option<SocketAddr>,
    stop: CancellationToken,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("ops.listen: cannot bind {listen}: {e}"))?;
    let bound = listener.local_addr()?;
    let state = Ops {
        readiness,
        sections: sections.into(),
        sdk_metrics_url: sdk_metrics_addr.map(|a| format!("http://{a}/metrics")),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?,
    };
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(state);
    let handle = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "ops server stopped");
        }
    });
    Ok((bound, handle))
}

async fn readyz(State(ops): State<Ops>) -> Response {
    match ops.readiness.get() {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        )
            .into_response(),
    }
}

async fn metrics_text(State(ops): State<Ops>) -> Response {
    let mut body = String::new();
    if let Some(url) = &ops.sdk_metrics_url {
        match ops
            .http
            .get(url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
        {
            Ok(resp) => body.push_str(&resp.text().await.unwrap_or_default()),
            Err(e) => tracing::warn!(error = %e, "SDK metrics exporter did not answer"),
        }
    }
    for section in ops.sections.iter() {
        body.push_str(&section());
    }
    // What `/readyz` says, for alerting on it without a second scrape job.
    body.push_str(&format!(
        "# HELP edgeflow_worker_ready 1 while /readyz answers 200 (every task queue polling, Temporal reachable), else 0.\n\
         # TYPE edgeflow_worker_ready gauge\n\
         edgeflow_worker_ready {}\n",
        u8::from(ops.readiness.get().is_ok())
    ));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn metrics_are_the_sections_given_then_readiness() {
        let readiness = Readiness::new("starting");
        let stop = CancellationToken::new();
        let (addr, task) = serve(
            "127.0.0.1:0".parse().unwrap(),
            readiness.clone(),
            vec![
                Box::new(|| "first_total 1\n".to_string()),
                Box::new(|| "second_total 2\n".to_string()),
            ],
            None,
            stop.clone(),
        )
        .await
        .unwrap();
        let get = |path: &str| {
            let url = format!("http://{addr}{path}");
            async move {
                let resp = reqwest::get(url).await.unwrap();
                (resp.status().as_u16(), resp.text().await.unwrap())
            }
        };
        let (status, text) = get("/metrics").await;
        assert_eq!(status, 200);
        assert!(
            text.starts_with("first_total 1\nsecond_total 2\n# HELP edgeflow_worker_ready"),
            "{text}"
        );
        assert!(text.ends_with("edgeflow_worker_ready 0\n"), "{text}");
        // Nothing the process did not hand over, such as the workflows' dropped signals.
        assert!(!text.contains("signals_dropped"), "{text}");
        assert_eq!(get("/readyz").await, (503, "not ready: starting\n".into()));
        readiness.set_ready();
        assert!(
            get("/metrics")
                .await
                .1
                .ends_with("edgeflow_worker_ready 1\n")
        );
        stop.cancel();
        task.await.unwrap();
    }
}
