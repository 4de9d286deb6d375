//! `[telemetry]`: log format and filter, where traces go. The filter and the collector's URL are
//! parsed here, once, when the settings load; their types are all there is to check.

use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{LevelFilter, ParseError};
use url::Url;

use crate::settings::parsed::Parsed;

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
    pub log_level: Parsed<LogFilter>,
    /// OTLP collector for traces, e.g. `http://127.0.0.1:4317`; unset exports none (trace ids
    /// are still continued, logged and passed on).
    pub otlp_endpoint: Option<Parsed<OtlpEndpoint>>,
    /// `grpc` or `http/protobuf`.
    #[serde(default)]
    pub otlp_protocol: OtlpProtocol,
    /// The `service.name` resource attribute.
    pub service_name: String,
    /// The `service.instance.id` resource attribute; unset: the worker's identity.
    #[serde(default)]
    pub service_instance_id: Option<String>,
}

/// `telemetry.log_level`, parsed: the filter of what is logged. Every directive must parse; an
/// empty text logs errors only.
#[derive(Debug, Clone)]
pub struct LogFilter(EnvFilter);

impl LogFilter {
    /// The filter, for the log layer.
    pub fn filter(&self) -> EnvFilter {
        self.0.clone()
    }
}

impl FromStr for LogFilter {
    type Err = ParseError;
    fn from_str(text: &str) -> Result<Self, ParseError> {
        // `EnvFilter::new` would drop a bad directive; the default directive is what `new` has.
        EnvFilter::builder()
            .with_default_directive(LevelFilter::ERROR.into())
            .parse(text)
            .map(Self)
    }
}

/// `telemetry.otlp_endpoint`, parsed: the collector's URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpEndpoint(Url);

impl FromStr for OtlpEndpoint {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        Url::parse(text)
            .map(Self)
            .map_err(|_| format!("`{text}` is not a URL"))
    }
}

impl Parsed<OtlpEndpoint> {
    /// For OTLP/HTTP: a collector's base URL (`http://host:4318`) gets the trace path; a URL
    /// with a path is taken as the full traces URL, as OpenTelemetry's signal-specific endpoint
    /// is.
    pub fn traces_url(&self) -> String {
        let path = self.0.path();
        if path == "/" || path.is_empty() {
            format!("{}/v1/traces", self.text().trim_end_matches('/'))
        } else {
            self.text().to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_collector_url_gets_the_traces_path() {
        let traces_url = |text: &str| text.parse::<Parsed<OtlpEndpoint>>().unwrap().traces_url();
        assert_eq!(
            traces_url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://127.0.0.1:4318/"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("https://otel.example/custom/traces"),
            "https://otel.example/custom/traces"
        );
        assert_eq!(
            "collector".parse::<OtlpEndpoint>().unwrap_err(),
            "`collector` is not a URL"
        );
    }

    #[test]
    fn a_log_filter_with_a_bad_directive_is_refused_not_trimmed() {
        assert!("info,edgeflow=debug".parse::<LogFilter>().is_ok());
        assert!("".parse::<LogFilter>().is_ok());
        assert!("info,edgeflow=loud".parse::<LogFilter>().is_err());
    }
}
