//! The one `Settings` tree: layered, checked as a whole, then turned into typed values.
//!
//! Layers, later ones winning: `config/default.toml` → `config/{EDGEFLOW_ENV}.toml` → Temporal's
//! standard client configuration (`TEMPORAL_*` variables, a `temporal.toml` profile; see
//! [`crate::temporal_env`]) → environment variables `EDGEFLOW__SECTION__KEY` → the file given with
//! `--config`.
//! `config/default.toml` is the single place that holds every default and documents every key.
//!
//! Loading never stops at the first problem. The merged tree is checked against the JSON Schema
//! generated from these types (unknown keys, wrong types, missing keys), then each section's own
//! `validate` checks what a schema can't (URLs parse, files are readable, listen addresses are
//! addresses). Every problem is reported at once, each with its key path.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use edgeflow_activities::db::DbSettings;
use edgeflow_activities::email::EmailSettings;
use edgeflow_activities::http::HttpSettings;
pub use edgeflow_activities::settings::{Secret, SettingError};
use edgeflow_activities::webhook::WebhookSettings;
use edgeflow_workflows::order::OrderSettings;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schedules::ScheduleSettings;
use crate::temporal_env::TemporalClientEnv;

/// Where the layered files live unless `EDGEFLOW_CONFIG_DIR` says otherwise.
pub const DEFAULT_CONFIG_DIR: &str = "config";

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub temporal: TemporalSettings,
    pub worker: WorkerSettings,
    /// Task queues this process polls, under a local label (`[task_queues.main]`), so one
    /// environment variable can rename a queue: `EDGEFLOW__TASK_QUEUES__MAIN__NAME`.
    pub task_queues: BTreeMap<String, TaskQueueSettings>,
    pub shutdown: ShutdownSettings,
    pub ops: OpsSettings,
    pub telemetry: TelemetrySettings,
    /// Named microservices for `http.call`.
    pub services: HttpSettings,
    /// The database of `db.execute` and of the idempotency ledgers.
    pub database: DbSettings,
    /// Templates and transport of `email.send`.
    pub email: EmailSettings,
    /// Named endpoints for `webhook.notify`.
    pub webhooks: WebhookSettings,
    /// Settings each workflow reads (through a local activity, so they are in its history).
    pub workflows: WorkflowsSettings,
    /// Temporal Schedules that `edgeflow schedules sync` keeps in line, by name.
    #[serde(default)]
    pub schedules: BTreeMap<String, ScheduleSettings>,
    /// Used only by `edgeflow gateway` (and `edgeflow dev`, which runs one).
    pub gateway: GatewaySettings,
    /// Used only by `edgeflow dev`.
    pub dev: DevSettings,
}

/// `edgeflow gateway`: the edge's HTTP door to Temporal, verifying a short-lived token per request.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GatewaySettings {
    /// Address the gateway serves Temporal's HTTP API shape on, e.g. `127.0.0.1:8790`.
    pub listen: SocketAddr,
    /// `aud` every token must carry: names this gateway.
    pub audience: String,
    /// `iss` every token must carry: names the edge that signs them.
    pub issuer: String,
    /// The edge's public keys as a JWKS file; re-read when it changes. Set this or `jwks_url`.
    pub jwks_file: Option<PathBuf>,
    /// The edge's public keys as a JWKS URL, fetched every `keys_refresh_secs`.
    pub jwks_url: Option<String>,
    /// How often the key file is checked or the key URL fetched; an unknown `kid` also triggers
    /// a reload, at most once a second.
    pub keys_refresh_secs: u64,
    /// Longest a token may live (`exp - iat`), at most 60.
    pub max_token_age_secs: u64,
    /// Clock difference tolerated between the edge and the gateway.
    pub clock_skew_secs: u64,
    /// Token ids remembered to refuse replays (each for its token's lifetime); when full, new
    /// tokens are refused with 503 rather than forgetting one early.
    pub replay_cache_entries: usize,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Deadline of each call to Temporal (the history long poll returns earlier by itself).
    pub call_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowsSettings {
    pub order: OrderSettings,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DevSettings {
    /// Where the dev stack keeps its state (Temporal's database, logs, the issuer's key).
    pub var_dir: PathBuf,
    pub temporal_ui_port: u16,
    /// Port of the dev server's HTTP API (the edge Worker talks to it).
    pub temporal_http_port: u16,
    /// The edge Worker in `wrangler dev`: the one local URL of the whole system.
    pub edge_port: u16,
    /// Start the edge Worker (needs Node.js and `edge/node_modules`).
    pub start_edge: bool,
    /// The development token issuer the edge trusts.
    pub issuer_port: u16,
    /// `aud` of development tokens.
    pub token_audience: String,
    /// The demo inventory, payments and shipping services.
    pub demo_services_port: u16,
    /// `none`, `flaky:<service>` (503 twice per order), `down:<service>` (422 every time),
    /// `slow:<service>:<secs>` (works, then answers late) or `errors:<percent>` (random 503s on
    /// every call). See `src/dev/demo.rs`.
    pub demo_failure: String,
    /// How the edge reaches Temporal: through `edgeflow gateway` (run by the dev stack) or
    /// straight to the dev server's HTTP API.
    pub edge_transport: EdgeTransport,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EdgeTransport {
    Gateway,
    TemporalHttp,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemporalSettings {
    /// gRPC address of the frontend: `host:port` (as the `temporal` CLI and every SDK take it;
    /// TLS when `[temporal.tls]` or an API key asks for it), `http://host:port` or
    /// `https://host:port`.
    pub address: String,
    pub namespace: String,
    /// API key given inline. Prefer `api_key_env` or `api_key_file`.
    pub api_key: Option<Secret>,
    /// Name of an environment variable holding the API key.
    pub api_key_env: Option<String>,
    /// File holding the API key; re-read when it changes, without a restart.
    pub api_key_file: Option<PathBuf>,
    pub connect_timeout_secs: u64,
    /// How often the API key and client certificate files are checked for changes.
    pub credentials_check_secs: u64,
    /// gRPC message compression: `gzip` saves bandwidth over a wide-area link (e.g. to Temporal
    /// Cloud); `none` saves the worker about a third of its CPU on loopback or a LAN; `auto` picks
    /// `none` when the address is loopback or private, `gzip` otherwise.
    pub grpc_compression: GrpcCompression,
    pub tls: TlsSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GrpcCompression {
    Auto,
    Gzip,
    None,
}

impl TemporalSettings {
    /// The address as a URL. `host:port` takes `https://` when `tls` (TLS is wanted for other
    /// reasons: `[temporal.tls]`, an API key), else `http://`.
    pub fn endpoint(&self, tls: bool) -> Result<url::Url, String> {
        let address = self.address.trim();
        let text = if address.contains("://") {
            address.to_string()
        } else {
            format!("{}://{address}", if tls { "https" } else { "http" })
        };
        let url =
            url::Url::parse(&text).map_err(|e| format!("`{address}` is not an address: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(format!(
                "`{address}` must be host:port, http://host:port or https://host:port"
            ));
        }
        if !address.contains("://") && url.port().is_none() {
            return Err(format!("`{address}` needs a port, e.g. `{address}:7233`"));
        }
        Ok(url)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// Use TLS even without a CA or client certificate (an API key turns it on as well).
    pub enabled: bool,
    /// PEM file of the CA that signed the server's certificate (default: the system's roots).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate for mTLS; re-read when it changes.
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key for `client_cert_file`.
    pub client_key_file: Option<PathBuf>,
    /// Server name to verify the certificate against, when it differs from the address's host.
    pub domain: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    /// Identity shown in Temporal's UI and history (default: `edgeflow-<pid>@<host>`).
    pub identity: Option<String>,
    /// Build id of this worker (default: a hash of the running executable).
    pub build_id: Option<String>,
    /// Worker Deployment name; with `use_worker_versioning`, tasks are routed by version.
    pub deployment_name: Option<String>,
    pub use_worker_versioning: bool,
    pub max_cached_workflows: usize,
    /// Defaults for every task queue; each `[task_queues.NAME]` may override them.
    pub max_concurrent_activities: usize,
    pub max_concurrent_workflow_tasks: usize,
    pub max_concurrent_local_activities: usize,
    pub workflow_pollers: usize,
    pub activity_pollers: usize,
    /// How long a workflow task may wait on this worker's sticky queue, and, once the worker
    /// has stopped, on the normal queue it is moved to, before the server times it out.
    pub sticky_schedule_to_start_timeout_secs: u64,
    /// How often readiness asks the Temporal server whether it is reachable.
    pub readiness_check_secs: u64,
    /// Run `edgeflow schedules sync` before polling.
    pub sync_schedules_on_start: bool,
}

/// What a task queue runs in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Runs {
    Workflows,
    Activities,
    Both,
}

impl Runs {
    pub fn workflows(self) -> bool {
        matches!(self, Runs::Workflows | Runs::Both)
    }
    pub fn activities(self) -> bool {
        matches!(self, Runs::Activities | Runs::Both)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskQueueSettings {
    /// The task queue's name in Temporal.
    pub name: String,
    pub runs: Runs,
    pub max_concurrent_activities: Option<usize>,
    pub max_concurrent_workflow_tasks: Option<usize>,
    pub workflow_pollers: Option<usize>,
    pub activity_pollers: Option<usize>,
    /// Caps activities started per second by this worker on this queue.
    pub max_activities_per_sec: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShutdownSettings {
    /// On SIGTERM/SIGINT, in-flight activities get this long to finish before they are cancelled.
    pub grace_period_secs: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpsSettings {
    /// Address of `/healthz`, `/readyz` and `/metrics`, e.g. `127.0.0.1:9464`.
    pub listen: SocketAddr,
}

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

/// Every problem found while loading settings.
#[derive(Debug, thiserror::Error)]
pub struct SettingsErrors(pub Vec<SettingError>);

impl fmt::Display for SettingsErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} problem(s) in settings:", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  {}: {}", e.path, e.message)?;
        }
        Ok(())
    }
}

pub fn problem(path: impl Into<String>, message: impl Into<String>) -> SettingError {
    SettingError::new(path, message)
}

/// Where settings come from; built from the process environment by [`Sources::from_env`].
#[derive(Debug, Clone)]
pub struct Sources {
    pub config_dir: PathBuf,
    /// `EDGEFLOW_ENV`, selecting `config/{env}.toml`.
    pub env: Option<String>,
    /// `EDGEFLOW__…` variables, already read.
    pub vars: BTreeMap<String, String>,
    pub file: Option<PathBuf>,
    /// Temporal's own client variables and profile file.
    pub temporal_client: TemporalClientEnv,
}

impl Sources {
    pub fn from_env(file: Option<PathBuf>) -> Self {
        Self {
            config_dir: std::env::var_os("EDGEFLOW_CONFIG_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_DIR)),
            env: std::env::var("EDGEFLOW_ENV").ok().filter(|e| !e.is_empty()),
            vars: std::env::vars()
                .filter(|(k, _)| k.starts_with("EDGEFLOW__"))
                .collect(),
            file,
            temporal_client: TemporalClientEnv::from_process(),
        }
    }
}

impl Settings {
    /// Loads, checks and returns the settings, or every problem found.
    ///
    /// Each section that matches the schema is also checked for what the schema can't express,
    /// so one run reports a wrong type in one section and an unreadable file in another.
    pub fn load(sources: &Sources) -> Result<Settings, SettingsErrors> {
        let tree = merged_tree(sources)?;
        let mut problems = check_against_schema(&tree);
        let clean = |section: &str, problems: &[SettingError]| {
            !problems
                .iter()
                .any(|p| p.path == section || p.path.starts_with(&format!("{section}.")))
        };
        let mut semantic = Vec::new();
        macro_rules! check_section {
            ($name:literal, $ty:ty, $check:expr) => {
                // An absent section takes its defaults when the whole tree is read.
                if clean($name, &problems) && !tree[$name].is_null() {
                    // What the schema lets through but the type refuses (an address that does
                    // not parse, a number out of range) is reported at its own key.
                    match serde_path_to_error::deserialize::<_, $ty>(tree[$name].clone()) {
                        Ok(section) => semantic.extend($check(&section)),
                        Err(e) => semantic.push(problem(
                            join_path($name, &e.path().to_string().trim_start_matches('.')),
                            e.inner().to_string(),
                        )),
                    }
                }
            };
        }
        check_section!("temporal", TemporalSettings, validate_temporal);
        check_section!("worker", WorkerSettings, validate_worker);
        check_section!("task_queues", BTreeMap<String, TaskQueueSettings>, validate_task_queues);
        check_section!("ops", OpsSettings, typed_only);
        check_section!("telemetry", TelemetrySettings, validate_telemetry);
        check_section!("services", HttpSettings, HttpSettings::validate);
        check_section!("database", DbSettings, DbSettings::validate);
        check_section!("email", EmailSettings, EmailSettings::validate);
        check_section!("webhooks", WebhookSettings, WebhookSettings::validate);
        check_section!("schedules", BTreeMap<String, ScheduleSettings>, crate::schedules::validate);
        check_section!("gateway", GatewaySettings, validate_gateway);
        check_section!("dev", DevSettings, validate_dev);
        problems.extend(semantic);
        if !problems.is_empty() {
            return Err(SettingsErrors(problems));
        }
        let settings: Settings = serde_path_to_error::deserialize(tree).map_err(|e| {
            // Every checked section passed, so this is something the schema can't express in a
            // section without its own check (e.g. a number out of range for its Rust type).
            let path = e.path().to_string();
            SettingsErrors(vec![problem(
                path.trim_start_matches('.'),
                e.inner().to_string(),
            )])
        })?;
        let crossed = settings.check_references();
        if crossed.is_empty() {
            Ok(settings)
        } else {
            Err(SettingsErrors(crossed))
        }
    }

    /// Names one section uses that another must define: the services and webhook `order` calls.
    fn check_references(&self) -> Vec<SettingError> {
        let order = &self.workflows.order;
        let mut out = Vec::new();
        for (key, job) in [
            ("reserve_inventory", &order.reserve_inventory),
            ("charge_payment", &order.charge_payment),
            ("notify_shipping", &order.notify_shipping),
            ("release_inventory", &order.release_inventory),
            ("refund_payment", &order.refund_payment),
        ] {
            if !self.services.services.contains_key(&job.service) {
                out.push(problem(
                    format!("workflows.order.{key}.service"),
                    format!("`{}` is not a configured [services.NAME]", job.service),
                ));
            }
        }
        if !self
            .webhooks
            .endpoints
            .contains_key(&order.completion_webhook)
        {
            out.push(problem(
                "workflows.order.completion_webhook",
                format!(
                    "`{}` is not a configured [webhooks.NAME]",
                    order.completion_webhook
                ),
            ));
        }
        out
    }

    /// The effective settings as JSON with every secret shown as `[redacted]`.
    pub fn redacted(&self) -> serde_json::Value {
        let mut tree = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        redact_credentials(&mut tree);
        tree
    }

    /// The task queue workflows are started on when nothing names one (the edge through the
    /// gateway, `edgeflow start`, schedules without a `task_queue`, the exported contract): the
    /// first `[task_queues.NAME]` that runs workflows.
    pub fn workflow_task_queue(&self) -> Option<&str> {
        self.task_queues
            .values()
            .find(|q| q.runs.workflows())
            .map(|q| q.name.as_str())
    }
}

/// Besides the `Secret` settings (redacted by their own serialization), credentials hide in two
/// places: static request headers (`services.NAME.headers`: API keys) and URLs (a password in the
/// userinfo, a token in the query string). Their values are replaced wherever they appear.
fn redact_credentials(value: &mut serde_json::Value) {
    const REDACTED: &str = "[redacted]";
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if key == "headers" {
                    if let serde_json::Value::Object(headers) = child {
                        for v in headers.values_mut() {
                            *v = serde_json::Value::String(REDACTED.into());
                        }
                    }
                } else {
                    redact_credentials(child);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_credentials),
        serde_json::Value::String(text) => {
            if let Ok(mut url) = url::Url::parse(text)
                && url.has_host()
                && (url.password().is_some() || url.query().is_some())
            {
                if url.password().is_some() {
                    let _ = url.set_password(Some(REDACTED));
                }
                if url.query().is_some() {
                    url.set_query(Some(REDACTED));
                }
                *text = url.to_string();
            }
        }
        _ => {}
    }
}

// Checks of what the schema can't express, one function per section.

/// The longest token lifetime the gateway accepts, whatever the settings say.
pub const MAX_TOKEN_AGE_LIMIT_SECS: u64 = 60;

fn validate_gateway(g: &GatewaySettings) -> Vec<SettingError> {
    let mut out = Vec::new();
    for (key, value) in [("audience", &g.audience), ("issuer", &g.issuer)] {
        if value.trim().is_empty() {
            out.push(problem(format!("gateway.{key}"), "must not be empty"));
        }
    }
    if g.jwks_file.is_some() && g.jwks_url.is_some() {
        out.push(problem(
            "gateway.jwks_url",
            "set at most one of jwks_file and jwks_url",
        ));
    }
    check_readable(&mut out, "gateway.jwks_file", g.jwks_file.as_deref());
    if let Some(url) = &g.jwks_url {
        match url::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => out.push(problem(
                "gateway.jwks_url",
                format!("`{url}` is not an http:// or https:// URL"),
            )),
        }
    }
    if !(1..=MAX_TOKEN_AGE_LIMIT_SECS).contains(&g.max_token_age_secs) {
        out.push(problem(
            "gateway.max_token_age_secs",
            format!("must be between 1 and {MAX_TOKEN_AGE_LIMIT_SECS}"),
        ));
    }
    if g.clock_skew_secs > 30 {
        out.push(problem("gateway.clock_skew_secs", "must be at most 30"));
    }
    for (key, value) in [
        ("keys_refresh_secs", g.keys_refresh_secs),
        ("call_timeout_secs", g.call_timeout_secs),
        ("replay_cache_entries", g.replay_cache_entries as u64),
        ("max_body_bytes", g.max_body_bytes as u64),
    ] {
        if value == 0 {
            out.push(problem(format!("gateway.{key}"), "must be at least 1"));
        }
    }
    out
}

impl GatewaySettings {
    /// What `edgeflow gateway` needs beyond a valid tree: somewhere to read the edge's keys from.
    /// (A worker never reads them, so an unset key source is no problem for it.)
    pub fn check_serving(&self) -> Vec<SettingError> {
        if self.jwks_file.is_none() && self.jwks_url.is_none() {
            vec![problem(
                "gateway.jwks_file",
                "set jwks_file or jwks_url: the edge's public keys, to verify its tokens",
            )]
        } else {
            vec![]
        }
    }
}

fn validate_dev(dev: &DevSettings) -> Vec<SettingError> {
    match crate::dev::demo::Failure::parse(&dev.demo_failure) {
        Ok(_) => vec![],
        Err(e) => vec![problem("dev.demo_failure", e)],
    }
}

fn validate_temporal(t: &TemporalSettings) -> Vec<SettingError> {
    let mut out = Vec::new();
    if let Err(e) = t.endpoint(false) {
        out.push(problem("temporal.address", e));
    }
    if t.namespace.trim().is_empty() {
        out.push(problem("temporal.namespace", "must not be empty"));
    }
    let key_sources = [
        t.api_key.is_some(),
        t.api_key_env.is_some(),
        t.api_key_file.is_some(),
    ];
    if key_sources.iter().filter(|s| **s).count() > 1 {
        out.push(problem(
            "temporal.api_key",
            "set at most one of api_key, api_key_env and api_key_file",
        ));
    }
    if let Some(var) = &t.api_key_env
        && std::env::var(var)
            .map(|v| v.trim().is_empty())
            .unwrap_or(true)
    {
        out.push(problem(
            "temporal.api_key_env",
            format!("environment variable `{var}` is not set or empty"),
        ));
    }
    check_readable(&mut out, "temporal.api_key_file", t.api_key_file.as_deref());
    check_readable(&mut out, "temporal.tls.ca_file", t.tls.ca_file.as_deref());
    check_readable(
        &mut out,
        "temporal.tls.client_cert_file",
        t.tls.client_cert_file.as_deref(),
    );
    check_readable(
        &mut out,
        "temporal.tls.client_key_file",
        t.tls.client_key_file.as_deref(),
    );
    if t.tls.client_cert_file.is_some() != t.tls.client_key_file.is_some() {
        out.push(problem(
            "temporal.tls.client_key_file",
            "client_cert_file and client_key_file must be set together",
        ));
    }
    if t.credentials_check_secs == 0 {
        out.push(problem(
            "temporal.credentials_check_secs",
            "must be at least 1",
        ));
    }
    if t.connect_timeout_secs == 0 {
        out.push(problem(
            "temporal.connect_timeout_secs",
            "must be at least 1",
        ));
    }
    out
}

fn validate_worker(w: &WorkerSettings) -> Vec<SettingError> {
    let mut out = Vec::new();
    for (key, value) in [
        ("max_concurrent_activities", w.max_concurrent_activities),
        (
            "max_concurrent_workflow_tasks",
            w.max_concurrent_workflow_tasks,
        ),
        (
            "max_concurrent_local_activities",
            w.max_concurrent_local_activities,
        ),
        ("activity_pollers", w.activity_pollers),
    ] {
        if value == 0 {
            out.push(problem(format!("worker.{key}"), "must be at least 1"));
        }
    }
    // The SDK needs two workflow pollers when sticky queues are on (a cache size above 0).
    if w.workflow_pollers < 2 {
        out.push(problem("worker.workflow_pollers", "must be at least 2"));
    }
    if w.sticky_schedule_to_start_timeout_secs == 0 {
        out.push(problem(
            "worker.sticky_schedule_to_start_timeout_secs",
            "must be at least 1",
        ));
    }
    if w.readiness_check_secs == 0 {
        out.push(problem("worker.readiness_check_secs", "must be at least 1"));
    }
    out
}

fn validate_task_queues(task_queues: &BTreeMap<String, TaskQueueSettings>) -> Vec<SettingError> {
    let mut out = Vec::new();
    if task_queues.is_empty() {
        out.push(problem("task_queues", "name at least one task queue"));
    }
    let mut names = std::collections::BTreeSet::new();
    for (label, q) in task_queues {
        let at = |k: &str| format!("task_queues.{label}.{k}");
        if q.name.trim().is_empty() {
            out.push(problem(at("name"), "must not be empty"));
        } else if !names.insert(q.name.as_str()) {
            out.push(problem(
                at("name"),
                format!("`{}` is named by another task queue too", q.name),
            ));
        }
        if q.workflow_pollers.is_some_and(|p| p < 2) {
            out.push(problem(at("workflow_pollers"), "must be at least 2"));
        }
        for (key, value) in [
            ("max_concurrent_activities", q.max_concurrent_activities),
            (
                "max_concurrent_workflow_tasks",
                q.max_concurrent_workflow_tasks,
            ),
            ("activity_pollers", q.activity_pollers),
        ] {
            if value == Some(0) {
                out.push(problem(at(key), "must be at least 1"));
            }
        }
        if q.max_activities_per_sec
            .is_some_and(|r| !(r.is_finite() && r > 0.0))
        {
            out.push(problem(
                at("max_activities_per_sec"),
                "must be a positive number",
            ));
        }
    }
    out
}

/// For sections whose type says all there is to check.
fn typed_only<T>(_: &T) -> Vec<SettingError> {
    Vec::new()
}

fn validate_telemetry(telemetry: &TelemetrySettings) -> Vec<SettingError> {
    let mut out = Vec::new();
    if let Some(endpoint) = &telemetry.otlp_endpoint
        && url::Url::parse(endpoint).is_err()
    {
        out.push(problem(
            "telemetry.otlp_endpoint",
            format!("`{endpoint}` is not a URL"),
        ));
    }
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&telemetry.log_level) {
        out.push(problem("telemetry.log_level", e.to_string()));
    }
    out
}

fn join_path(section: &str, rest: &str) -> String {
    if rest.is_empty() {
        section.to_string()
    } else {
        format!("{section}.{rest}")
    }
}

fn check_readable(out: &mut Vec<SettingError>, path: &str, file: Option<&Path>) {
    if let Some(file) = file
        && let Err(e) = std::fs::read(file)
    {
        out.push(problem(
            path,
            format!("cannot read `{}`: {e}", file.display()),
        ));
    }
}

/// Merges the layers into one JSON tree.
fn merged_tree(sources: &Sources) -> Result<serde_json::Value, SettingsErrors> {
    let default_file = sources.config_dir.join("default.toml");
    if !default_file.is_file() {
        return Err(SettingsErrors(vec![problem(
            "(config dir)",
            format!(
                "`{}` not found; run from the project folder or set EDGEFLOW_CONFIG_DIR",
                default_file.display()
            ),
        )]));
    }
    let mut builder = config::Config::builder()
        .add_source(config::File::from(default_file.clone()).format(config::FileFormat::Toml));
    let mut problems = Vec::new();
    if let Some(env) = &sources.env {
        let env_file = sources.config_dir.join(format!("{env}.toml"));
        if env_file.is_file() {
            builder =
                builder.add_source(config::File::from(env_file).format(config::FileFormat::Toml));
        } else {
            problems.push(problem(
                "EDGEFLOW_ENV",
                format!("`{env}` names no file `{}`", env_file.display()),
            ));
        }
    }
    match sources.temporal_client.layer() {
        Ok(Some(layer)) => {
            builder = builder.add_source(config::File::from_str(&layer, config::FileFormat::Toml));
        }
        Ok(None) => {}
        Err(found) => problems.extend(found),
    }
    let mut env = config::Environment::with_prefix("EDGEFLOW")
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true)
        .source(Some(sources.vars.clone().into_iter().collect()));
    // List-valued keys given as one variable, comma-separated (e.g. webhook signing secrets).
    // Only these: with no list key named, the config crate would split every value.
    let list_keys: Vec<String> = sources
        .vars
        .keys()
        .filter(|k| k.ends_with("__SECRETS"))
        .map(|k| {
            k.trim_start_matches("EDGEFLOW__")
                .to_lowercase()
                .replace("__", ".")
        })
        .collect();
    if !list_keys.is_empty() {
        env = env.list_separator(",");
        for key in &list_keys {
            env = env.with_list_parse_key(key);
        }
    }
    builder = builder.add_source(env);
    if let Some(file) = &sources.file {
        if file.is_file() {
            builder = builder
                .add_source(config::File::from(file.clone()).format(config::FileFormat::Toml));
        } else {
            problems.push(problem(
                "--config",
                format!("cannot read `{}`", file.display()),
            ));
        }
    }
    if !problems.is_empty() {
        return Err(SettingsErrors(problems));
    }
    builder
        .build()
        .and_then(|c| c.try_deserialize::<serde_json::Value>())
        .map_err(|e| SettingsErrors(vec![problem("(file)", e.to_string())]))
}

/// The JSON Schema of [`Settings`], the contract the merged tree is checked against.
pub fn settings_schema() -> serde_json::Value {
    let mut schema =
        serde_json::to_value(schemars::schema_for!(Settings)).unwrap_or(serde_json::Value::Null);
    // TOML has no null: an absent optional key is the only way to leave it unset, so the
    // `null` alternative schemars emits for `Option` never applies. Keeping it is harmless.
    if let Some(obj) = schema.as_object_mut() {
        obj.remove("$schema");
    }
    schema
}

fn check_against_schema(tree: &serde_json::Value) -> Vec<SettingError> {
    let schema = settings_schema();
    let validator = match jsonschema::validator_for(&schema) {
        Ok(v) => v,
        Err(e) => return vec![problem("(schema)", e.to_string())],
    };
    let mut out: Vec<SettingError> = validator
        .iter_errors(tree)
        .flat_map(|e| {
            let pointer = e.instance_path().to_string();
            let path = pointer.trim_start_matches('/').replace('/', ".");
            let message = describe_schema_error(&e);
            // An unknown key is reported at the key itself, not at its parent object.
            match unknown_keys(&e) {
                Some(keys) => keys
                    .into_iter()
                    .map(|k| problem(join_path(&path, &k), "unknown key"))
                    .collect::<Vec<_>>(),
                None => vec![problem(
                    if path.is_empty() {
                        "(root)".into()
                    } else {
                        path
                    },
                    message,
                )],
            }
        })
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out.dedup_by(|a, b| a.path == b.path && a.message == b.message);
    out
}

fn unknown_keys(e: &jsonschema::ValidationError<'_>) -> Option<Vec<String>> {
    match e.kind() {
        jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
            Some(unexpected.clone())
        }
        _ => None,
    }
}

fn describe_schema_error(e: &jsonschema::ValidationError<'_>) -> String {
    use jsonschema::error::ValidationErrorKind as K;
    match e.kind() {
        K::Type { kind } => format!(
            "wrong type: expected {}, found {}",
            type_names(kind),
            e.instance()
        ),
        K::Required { property } => format!("missing required key {property}"),
        K::Enum { options } => format!("{} is not one of {options}", e.instance()),
        _ => e.to_string(),
    }
}

fn type_names(kind: &jsonschema::error::TypeKind) -> String {
    match kind {
        jsonschema::error::TypeKind::Single(t) => t.to_string(),
        jsonschema::error::TypeKind::Multiple(ts) => {
            let names: Vec<String> = ts
                .iter()
                .map(|t| t.to_string())
                .filter(|t| t != "null")
                .collect();
            names.join(" or ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn sources_with(file_body: &str, vars: &[(&str, &str)]) -> (tempfile::TempDir, Sources) {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("override.toml");
        std::fs::write(&file, file_body).expect("write override");
        let sources = Sources {
            config_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config"),
            env: None,
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            file: Some(file),
            temporal_client: TemporalClientEnv::default(),
        };
        (dir, sources)
    }

    #[test]
    fn the_default_file_alone_is_valid() {
        let (_d, sources) = sources_with("", &[]);
        let s = Settings::load(&sources).expect("config/default.toml loads");
        assert_eq!(s.temporal.namespace, "default");
        assert_eq!(s.task_queues["main"].name, "edgeflow");
    }

    #[test]
    fn env_vars_override_the_default_file_and_the_file_overrides_env_vars() {
        let (_d, sources) = sources_with(
            "[ops]\nlisten = \"127.0.0.1:1234\"\n",
            &[
                ("EDGEFLOW__TEMPORAL__NAMESPACE", "payments"),
                ("EDGEFLOW__OPS__LISTEN", "127.0.0.1:9999"),
                ("EDGEFLOW__SHUTDOWN__GRACE_PERIOD_SECS", "7"),
            ],
        );
        let s = Settings::load(&sources).expect("loads");
        assert_eq!(s.temporal.namespace, "payments");
        assert_eq!(s.shutdown.grace_period_secs, 7);
        assert_eq!(s.ops.listen.to_string(), "127.0.0.1:1234");
    }

    #[test]
    fn signing_secrets_come_from_one_comma_separated_variable() {
        let (_d, sources) = sources_with(
            "",
            &[(
                "EDGEFLOW__WEBHOOKS__EDGE__SECRETS",
                "whsec_ZGV2ZWxvcG1lbnQtb25seS1ub3QtYS1zZWNyZXQ=,whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24=",
            )],
        );
        let s = Settings::load(&sources).expect("loads");
        assert_eq!(s.webhooks.endpoints["edge"].secrets.len(), 2);
        assert_eq!(s.dev.var_dir, PathBuf::from("var"));
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_path() {
        let (_d, sources) = sources_with(
            r#"
            [temporal]
            address = "not a url"
            api_key_file = "/nonexistent/key"
            [worker]
            colour = "blue"
            [shutdown]
            grace_period_secs = "soon"
            [ops]
            listen = "everywhere"
            "#,
            &[("EDGEFLOW__TELEMETRY__LOG_FORMAT", "xml")],
        );
        let errs = Settings::load(&sources).expect_err("bad settings").0;
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        for expected in [
            "temporal.address",
            "temporal.api_key_file",
            "worker.colour",
            "shutdown.grace_period_secs",
            "ops.listen",
            "telemetry.log_format",
        ] {
            assert!(
                paths.contains(&expected),
                "{expected} missing from {errs:#?}"
            );
        }
        let unknown = errs.iter().find(|e| e.path == "worker.colour").unwrap();
        assert_eq!(unknown.message, "unknown key");
    }

    #[test]
    fn the_order_workflow_may_only_name_configured_services_and_webhooks() {
        let (_d, sources) = sources_with(
            "[workflows.order.charge_payment]\nservice = \"billing\"\nmethod = \"POST\"\npath = \"x\"\ntimeout_secs = 1\nmax_attempts = 1\ninitial_retry_secs = 1\nmax_retry_secs = 1\n[workflows.order]\ncompletion_webhook = \"nowhere\"\n",
            &[],
        );
        let errs = Settings::load(&sources).expect_err("unknown names").0;
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "workflows.order.charge_payment.service",
                "workflows.order.completion_webhook"
            ],
            "{errs:?}"
        );
    }

    #[test]
    fn the_gateway_takes_one_key_source_and_tokens_of_at_most_a_minute() {
        let (dir, sources) = sources_with("", &[]);
        let s = Settings::load(&sources).expect("the defaults load without a key source");
        assert_eq!(
            s.gateway.check_serving()[0].path,
            "gateway.jwks_file",
            "edgeflow gateway needs a key source"
        );
        let jwks = dir.path().join("jwks.json");
        std::fs::write(&jwks, "{}").unwrap();
        let (_d, sources) = sources_with(
            &format!(
                "[gateway]\njwks_file = \"{}\"\njwks_url = \"https://keys.example.com/jwks\"\nmax_token_age_secs = 3600\n",
                jwks.display()
            ),
            &[],
        );
        let errs = Settings::load(&sources)
            .expect_err("bad gateway settings")
            .0;
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            ["gateway.jwks_url", "gateway.max_token_age_secs"],
            "{errs:?}"
        );
        // An address is parsed when the settings load, and refused at its own key.
        let (_d, sources) = sources_with("[gateway]\nlisten = \"anywhere\"\n", &[]);
        let errs = Settings::load(&sources).expect_err("bad address").0;
        assert_eq!(errs[0].path, "gateway.listen", "{errs:?}");
        assert!(errs[0].message.contains("address"), "{errs:?}");
    }

    #[test]
    fn secrets_never_appear_in_output() {
        let (_d, sources) = sources_with("[temporal]\napi_key = \"sk-very-secret\"\n", &[]);
        let s = Settings::load(&sources).expect("loads");
        let printed = serde_json::to_string(&s.redacted()).unwrap();
        assert!(!printed.contains("sk-very-secret"));
        assert!(printed.contains("[redacted]"));
        assert!(!format!("{s:?}").contains("sk-very-secret"));
        assert_eq!(
            s.temporal.api_key.as_ref().map(|k| k.expose_secret()),
            Some("sk-very-secret")
        );
    }

    #[test]
    fn config_check_redacts_header_values_and_url_credentials() {
        let (_d, sources) = sources_with(
            r#"
[services.payments]
base_url = "https://payments.example/api/"
headers = { "X-Api-Key" = "key-in-a-header" }
[webhooks.edge]
url = "https://edge.example/v1/hooks/temporal?token=token-in-a-query"
"#,
            &[],
        );
        let s = Settings::load(&sources).expect("loads");
        let printed = serde_json::to_string(&s.redacted()).unwrap();
        for secret in ["key-in-a-header", "token-in-a-query"] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
        // What is not a credential stays readable.
        assert!(printed.contains("X-Api-Key"), "{printed}");
        assert!(
            printed.contains("edge.example/v1/hooks/temporal"),
            "{printed}"
        );
    }
}
