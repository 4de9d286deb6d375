//! Logs and traces, set up once for the whole process.
//!
//! One `tracing` subscriber serves edgeflow's own code and the Temporal SDK's core (it is handed
//! to the SDK runtime as its subscriber): readable lines in development; in production one JSON
//! object per line with the fields of every enclosing span flattened onto it (so an activity's
//! lines all carry `workflow_id`, `trace_id`, `edge_request_id`… however deep they are logged).
//!
//! Traces: one OpenTelemetry tracer provider, handed to the SDK's OpenTelemetry plugin
//! ([`Telemetry::temporal_plugin`]), which continues the `_tracer-data` header's trace (the edge's
//! `traceparent`, or another SDK's) through workflows and activities. Its ids are replay-safe
//! ([`WorkflowIdGenerator`]). When `telemetry.otlp_endpoint` is set, those spans and the
//! activity families' own (`http.call`, `db.statement`, `email.send`, `webhook.notify`) are
//! exported over OTLP/gRPC or OTLP/HTTP with the service's name, version and instance.
//!
//! [`settings`]: the `[telemetry]` section, its log filter and collector URL parsed at load.

pub mod settings;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider};
use temporalio_sdk::opentelemetry::{
    OpenTelemetryPlugin, WorkflowIdGenerator, WorkflowSpanProcessor,
};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::settings::parsed::Parsed;
use settings::{LogFormat, OtlpEndpoint, OtlpProtocol, TelemetrySettings};

/// Keeps the trace exporter alive; flushes it on drop.
pub struct Telemetry {
    pub subscriber: Arc<dyn Subscriber + Send + Sync>,
    tracer_provider: SdkTracerProvider,
}

impl Telemetry {
    /// The SDK's OpenTelemetry plugin on this process's tracer: install it on the Temporal
    /// client, and every worker made from that client continues the callers' traces.
    pub fn temporal_plugin(&self) -> temporalio_sdk::SimplePlugin {
        OpenTelemetryPlugin::builder()
            .tracer(self.tracer_provider.tracer("edgeflow"))
            .build()
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        let _ = self.tracer_provider.shutdown();
    }
}

/// Installs the process-wide subscriber. Call once, inside the tokio runtime (the exporters
/// run on it). `instance` is the default `service.instance.id`.
pub fn init(settings: &TelemetrySettings, instance: &str) -> anyhow::Result<Telemetry> {
    // Per layer: the log level decides what is logged, not what is traced.
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| settings.log_level.filter());
    let fmt_layer = match settings.log_format {
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .fmt_fields(JsonFields::new())
            .event_format(FlatJson)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
    };

    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(settings.service_name.clone())
        .with_attributes([
            opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            opentelemetry::KeyValue::new(
                "service.instance.id",
                settings
                    .service_instance_id
                    .clone()
                    .unwrap_or_else(|| instance.to_string()),
            ),
        ])
        .build();
    let mut provider = SdkTracerProvider::builder()
        .with_id_generator(WorkflowIdGenerator::default())
        .with_resource(resource);
    let export = settings.otlp_endpoint.as_ref();
    if let Some(endpoint) = export {
        let exporter = span_exporter(endpoint, settings.otlp_protocol)?;
        provider = provider.with_span_processor(WorkflowSpanProcessor::new(
            BatchSpanProcessor::builder(exporter).build(),
        ));
    }
    let tracer_provider = provider.build();
    // The families' spans (and the events inside them) join the trace; the SDK core's and the
    // per-attempt log span (`crate::observe::LOG_TARGET`) do not, the SDK plugin's span being
    // the attempt's. Without an exporter there is nothing to build them for.
    let otel_layer = export.map(|_| {
        tracing_opentelemetry::layer()
            .with_tracer(tracer_provider.tracer("edgeflow"))
            .with_filter(Targets::new().with_target("edgeflow_activities", LevelFilter::INFO))
    });

    let subscriber: Arc<dyn Subscriber + Send + Sync> =
        Arc::new(Registry::default().with(fmt_layer).with(otel_layer));
    tracing::subscriber::set_global_default(subscriber.clone())
        .context("a tracing subscriber was already installed")?;
    if let Some(endpoint) = export {
        tracing::info!(
            %endpoint,
            protocol = ?settings.otlp_protocol,
            "exporting traces over OTLP"
        );
    }
    Ok(Telemetry {
        subscriber,
        tracer_provider,
    })
}

fn span_exporter(
    endpoint: &Parsed<OtlpEndpoint>,
    protocol: OtlpProtocol,
) -> anyhow::Result<opentelemetry_otlp::SpanExporter> {
    let exporter = match protocol {
        OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.text())
            .build(),
        OtlpProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_http_client(ReqwestOnTokio {
                client: reqwest::Client::new(),
                runtime: tokio::runtime::Handle::current(),
            })
            .with_endpoint(endpoint.traces_url())
            .build(),
    };
    exporter.context("building the OTLP span exporter")
}

/// OTLP/HTTP over the worker's own reqwest (with its rustls). The batch processor exports from
/// its own thread, outside tokio, so each request is run on the runtime it was built in.
#[derive(Debug)]
struct ReqwestOnTokio {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for ReqwestOnTokio {
    async fn send_bytes(
        &self,
        request: opentelemetry_http::Request<opentelemetry_http::Bytes>,
    ) -> Result<
        opentelemetry_http::Response<opentelemetry_http::Bytes>,
        opentelemetry_http::HttpError,
    > {
        let request: reqwest::Request = request.try_into()?;
        let client = self.client.clone();
        self.runtime
            .spawn(async move {
                let response = client.execute(request).await?.error_for_status()?;
                let mut answer = opentelemetry_http::Response::builder().status(response.status());
                for (name, value) in response.headers() {
                    answer = answer.header(name, value);
                }
                let body = response.bytes().await?;
                Ok::<_, opentelemetry_http::HttpError>(answer.body(body)?)
            })
            .await?
    }
}

/// One JSON object per line: `timestamp`, `level`, `target`, the fields of every span the event
/// is in (outermost first, inner spans winning a clash), then the event's own, `message` among
/// them; `spans` names the spans. A log pipeline can then filter any line by `workflow_id` or
/// `trace_id` without knowing which span set it.
struct FlatJson;

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = serde_json::Map::new();
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let meta = event.metadata();
        line.insert("timestamp".into(), timestamp.into());
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        if let Some(scope) = ctx.event_scope() {
            let mut names = Vec::new();
            for span in scope.from_root() {
                names.push(span.name());
                let extensions = span.extensions();
                let Some(fields) = extensions.get::<FormattedFields<N>>() else {
                    continue;
                };
                if let Ok(serde_json::Value::Object(fields)) =
                    serde_json::from_str::<serde_json::Value>(fields)
                {
                    // `otel.*` fields steer trace export; they say nothing in a log line.
                    line.extend(fields.into_iter().filter(|(k, _)| !k.starts_with("otel.")));
                }
            }
            if !names.is_empty() {
                line.insert("spans".into(), names.join(":").into());
            }
        }
        let mut own = EventFields(BTreeMap::new());
        event.record(&mut own);
        line.extend(own.0);
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// An event's fields as JSON values.
struct EventFields(BTreeMap<String, serde_json::Value>);

impl tracing::field::Visit for EventFields {
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

/// Logs an error with its whole cause chain, as one line.
pub fn chain(err: &anyhow::Error) -> String {
    format!("{err:#}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_carry_every_enclosing_spans_fields() {
        use std::io::Write;
        use std::sync::Mutex;

        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = Registry::default().with(
            tracing_subscriber::fmt::layer()
                .fmt_fields(JsonFields::new())
                .event_format(FlatJson)
                .with_writer(move || writer.clone()),
        );
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!(
                "activity",
                workflow_id = "order-1",
                attempt = 2u32,
                trace_id = tracing::field::Empty
            );
            outer.record("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736");
            let _outer = outer.enter();
            let inner =
                tracing::info_span!("http.call", otel.kind = "client", service = "payments");
            let _inner = inner.enter();
            tracing::warn!(status = 503u16, "payments answered \"busy\"");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.trim()).expect(&text);
        assert_eq!(line["workflow_id"], "order-1");
        assert_eq!(line["attempt"], 2);
        assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(line["service"], "payments");
        assert_eq!(line["status"], 503);
        assert_eq!(line["message"], "payments answered \"busy\"");
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["spans"], "activity:http.call");
        assert!(line.get("otel.kind").is_none(), "{line}");
    }
}
