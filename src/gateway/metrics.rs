//! The gateway's request metrics on `/metrics`: `edgeflow_gateway_requests_total{operation,
//! status}` (refusals included, as operation `refused` when no operation was matched) and
//! `edgeflow_gateway_request_duration_seconds{operation}`.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    operation: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabel {
    operation: String,
}

pub struct GatewayMetrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    duration: Family<OperationLabel, Histogram>,
}

impl GatewayMetrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("edgeflow_gateway");
        let requests = Family::<Labels, Counter>::default();
        let duration = Family::<OperationLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0,
            ])
        });
        registry.register(
            "requests",
            "Requests answered by the gateway, by operation and HTTP status",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from a request's arrival to its answer, Temporal's part included",
            duration.clone(),
        );
        Arc::new(Self {
            registry,
            requests,
            duration,
        })
    }

    pub fn observe(&self, operation: &str, status: u16, took: Duration) {
        self.requests
            .get_or_create(&Labels {
                operation: operation.to_string(),
                status,
            })
            .inc();
        self.duration
            .get_or_create(&OperationLabel {
                operation: operation.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// Prometheus text exposition of the gateway's metrics.
    pub fn render(&self) -> String {
        crate::ops::render_registry(&self.registry)
    }
}
