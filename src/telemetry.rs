//! Logs and traces, set up once for the whole process.
//!
//! One `tracing` subscriber serves edgeflow's own code and the Temporal SDK's core (it is handed
//! to the SDK runtime as its subscriber): readable lines in development, JSON lines in
//! production, and, when `telemetry.otlp_endpoint` is set, spans exported over OTLP/gRPC.

use std::sync::Arc;

use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use tracing::Subscriber;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::settings::{LogFormat, TelemetrySettings};

/// Keeps the trace exporter alive; flushes it on drop.
pub struct Telemetry {
    pub subscriber: Arc<dyn Subscriber + Send + Sync>,
    tracer_provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.tracer_provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Installs the process-wide subscriber. Call once, inside the tokio runtime (the OTLP exporter
/// needs it).
pub fn init(settings: &TelemetrySettings) -> anyhow::Result<Telemetry> {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(&settings.log_level));
    let fmt_layer = match settings.log_format {
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .with_target(false)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
    };

    let (otel_layer, tracer_provider) = match &settings.otlp_endpoint {
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .build()
                .context("building the OTLP span exporter")?;
            let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(
                    opentelemetry_sdk::Resource::builder()
                        .with_service_name(settings.service_name.clone())
                        .build(),
                )
                .build();
            let tracer = provider.tracer("edgeflow");
            (
                Some(tracing_opentelemetry::layer().with_tracer(tracer).boxed()),
                Some(provider),
            )
        }
        None => (None, None),
    };

    let subscriber: Arc<dyn Subscriber + Send + Sync> = Arc::new(
        Registry::default()
            .with(filter)
            .with(fmt_layer)
            .with(otel_layer),
    );
    tracing::subscriber::set_global_default(subscriber.clone())
        .context("a tracing subscriber was already installed")?;
    Ok(Telemetry {
        subscriber,
        tracer_provider,
    })
}

/// Logs an error with its whole cause chain, as one line.
pub fn chain(err: &anyhow::Error) -> String {
    format!("{err:#}")
}
