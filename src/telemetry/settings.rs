//! `[telemetry]`: log format and filter, where traces go; and their checks.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::settings::error::{SettingError, problem};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// How traces travel to the collector: the values of OpenTelemetry's `OTEL_EXPORTER_OTLP_PROTOCOL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
pub enum OtlpProtocol {
    /// OTLP/gRPC, usually port 4317.
    #[default]
    #[serde(rename = "grpc")]
    Grpc,
    /// OTLP/HTTP with protobuf bodies, usually port 4318 (`/v1/traces` is added to a bare URL).
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    pub log_format: LogFormat,
    /// A `tracing` filter such as `info` or `info,edgeflow=debug`; `RUST_LOG` overrides it.
    pub log_level: String,
    /// OTLP collector for traces, e.g. `http://127.0.0.1:4317`; unset exports none (trace ids
    /// are still continued, logged and passed on).
    pub otlp_endpoint: Option<String>,
    /// `grpc` or `http/protobuf`.
    #[serde(default)]
    pub otlp_protocol: OtlpProtocol,
    /// The `service.name` resource attribute.
    pub service_name: String,
    /// The `service.instance.id` resource attribute; unset: the worker's identity.
    #[serde(default)]
    pub service_instance_id: Option<String>,
}

impl TelemetrySettings {
    /// A collector URL that parses, a log filter whose every directive parses.
    pub fn validate(&self) -> Vec<SettingError> {
        let mut out = Vec::new();
        if let Some(endpoint) = &self.otlp_endpoint
            && url::Url::parse(endpoint).is_err()
        {
            out.push(problem(
                "telemetry.otlp_endpoint",
                format!("`{endpoint}` is not a URL"),
            ));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log_level) {
            out.push(problem("telemetry.log_level", e.to_string()));
        }
        out
    }
}
