//! The one `Settings` tree: layered, checked as a whole, then turned into typed values.
//!
//! Layers, later ones winning: `config/default.toml` → `config/{EDGEFLOW_ENV}.toml` → Temporal's
//! standard client configuration (`TEMPORAL_*` variables, a `temporal.toml` profile; see
//! [`crate::temporal_env`]) → environment variables `EDGEFLOW__SECTION__KEY` → the file given with
//! `--config`.
//! `config/default.toml` is the single place that holds every default and documents every key.
//!
//! Loading never stops at the first problem. The merged tree is checked against the JSON Schema
//! generated from these types (unknown keys, wrong types, missing keys), then each section is
//! read into its type (text settings are parsed here, once: addresses, URLs, the log filter, the
//! demo failure mode) and its own `validate` checks what a schema can't (files are readable,
//! values agree with each other). Every problem is reported at once, each with its key path.
//!
//! This module composes; each section's type and checks live with the feature that reads them:
//! `[temporal]` in [`crate::connection::settings`]; `[worker]`, `[task_queues.NAME]` and
//! `[shutdown]` in [`crate::worker::settings`]; `[ops]` in [`crate::ops`]; `[telemetry]` in
//! [`crate::telemetry::settings`]; `[schedules.NAME]` in [`crate::schedules`]; `[gateway]` in
//! [`crate::gateway::settings`]; `[encryption]` in [`crate::codec::settings`]; `[dev]` in
//! [`crate::dev::settings`]; the activity families' and
//! workflows' sections in their crates (`[edge_activities]` in `edgeflow_activities::edge`). Here:
//! - [`layers`]: where settings come from and how the layers merge;
//! - [`schema`]: the merged tree against the JSON Schema, in an operator's words;
//! - [`redact`]: credentials kept out of `edgeflow config check`;
//! - [`error`]: the problem every check reports (sections import it from there, not from here);
//! - [`parsed`]: a text setting parsed once, at load.

pub mod error;
pub mod layers;
pub mod parsed;
mod redact;
mod schema;

use std::collections::{BTreeMap, BTreeSet};

use edgeflow_activities::db::DbSettings;
use edgeflow_activities::edge::EdgeActivitiesSettings;
use edgeflow_activities::email::EmailSettings;
use edgeflow_activities::http::HttpSettings;
use edgeflow_activities::webhook::WebhookSettings;
use edgeflow_workflows::order::OrderSettings;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_path_to_error::Segment;

use crate::codec::settings::EncryptionSettings;
use crate::connection::settings::TemporalSettings;
use crate::dev::settings::DevSettings;
use crate::gateway::settings::GatewaySettings;
use crate::ops::OpsSettings;
use crate::schedules::ScheduleSettings;
use crate::telemetry::settings::TelemetrySettings;
use crate::worker::settings::{ShutdownSettings, TaskQueueSettings, WorkerSettings};
use error::{SettingError, SettingsErrors, join_path, problem};
pub use layers::Sources;

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
    /// Where the edge Worker runs the `edge.*` activities, and the key that signs their requests.
    pub edge_activities: EdgeActivitiesSettings,
    /// Settings each workflow reads (through a local activity, so they are in its history).
    pub workflows: WorkflowsSettings,
    /// Temporal Schedules that `edgeflow schedules sync` keeps in line, by name.
    #[serde(default)]
    pub schedules: BTreeMap<String, ScheduleSettings>,
    /// Payload encryption keys of the worker and the operator commands (never the gateway's).
    pub encryption: EncryptionSettings,
    /// Used only by `edgeflow gateway` (and `edgeflow dev`, which runs one).
    pub gateway: GatewaySettings,
    /// Used only by `edgeflow dev`.
    pub dev: DevSettings,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowsSettings {
    pub order: OrderSettings,
}

/// The JSON Schema of [`Settings`], the contract the merged tree is checked against.
pub fn settings_schema() -> Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(Settings)).unwrap_or(Value::Null);
    // TOML has no null: an absent optional key is the only way to leave it unset, so the
    // `null` alternative schemars emits for `Option` never applies. Keeping it is harmless.
    if let Some(obj) = schema.as_object_mut() {
        obj.remove("$schema");
    }
    schema
}

impl Settings {
    /// Loads, checks and returns the settings, or every problem found.
    ///
    /// Each section that matches the schema is also read into its type and checked for what the
    /// schema can't express, so one run reports a wrong type in one section and an unreadable
    /// file in another.
    pub fn load(sources: &Sources) -> Result<Settings, SettingsErrors> {
        let layered = layers::merged_tree(sources)?;
        let mut read = Sections {
            tree: &layered.tree,
            defaults: &layered.defaults,
            refused_by_schema: schema::check_against_schema(&settings_schema(), &layered.tree),
            found: Vec::new(),
        };
        let temporal = read.section("temporal", TemporalSettings::validate);
        let worker = read.section("worker", WorkerSettings::validate);
        let task_queues =
            read.section("task_queues", crate::worker::settings::validate_task_queues);
        let ops = read.section("ops", typed_only::<OpsSettings>);
        let telemetry = read.section("telemetry", typed_only::<TelemetrySettings>);
        let services = read.section("services", HttpSettings::validate);
        let database = read.section("database", DbSettings::validate);
        let email = read.section("email", EmailSettings::validate);
        let webhooks = read.section("webhooks", WebhookSettings::validate);
        let edge_activities = read.section("edge_activities", EdgeActivitiesSettings::validate);
        let schedules = read.section("schedules", crate::schedules::validate);
        let encryption = read.section("encryption", EncryptionSettings::validate);
        let gateway = read.section("gateway", GatewaySettings::validate);
        let dev = read.section("dev", typed_only::<DevSettings>);
        let shutdown = read.section("shutdown", typed_only::<ShutdownSettings>);
        let workflows = read.section("workflows", typed_only::<WorkflowsSettings>);
        let mut problems = read.refused_by_schema;
        problems.extend(read.found);
        if !problems.is_empty() {
            return Err(SettingsErrors(problems));
        }
        // With no problem, every section was read (one that was not has a problem above).
        let settings = (|| {
            Some(Settings {
                temporal: temporal?,
                worker: worker?,
                task_queues: task_queues?,
                shutdown: shutdown?,
                ops: ops?,
                telemetry: telemetry?,
                services: services?,
                database: database?,
                email: email?,
                webhooks: webhooks?,
                edge_activities: edge_activities?,
                workflows: workflows?,
                schedules: schedules?,
                encryption: encryption?,
                gateway: gateway?,
                dev: dev?,
            })
        })()
        .ok_or_else(|| SettingsErrors(vec![problem("(root)", "a section could not be read")]))?;
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
    pub fn redacted(&self) -> Value {
        let mut tree = serde_json::to_value(self).unwrap_or(Value::Null);
        redact::redact_credentials(&mut tree);
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

/// For sections whose type says all there is to check.
fn typed_only<T>(_: &T) -> Vec<SettingError> {
    Vec::new()
}

/// Reads the merged tree's sections into their types, one by one, gathering every problem.
struct Sections<'a> {
    tree: &'a Value,
    /// `config/default.toml` alone, to stand in for a value a section's type refuses.
    defaults: &'a Value,
    /// What the schema found; a section with a problem here is not read.
    refused_by_schema: Vec<SettingError>,
    /// What reading and checking the sections found.
    found: Vec<SettingError>,
}

impl Sections<'_> {
    /// Reads section `name` and runs its `check`; `None` when it has a problem.
    ///
    /// What the schema lets through but the type refuses (an address that does not parse, a
    /// log filter with a bad directive, a number out of range) is reported at its own key. So
    /// that one run still names every bad key, the refused value is then replaced with its
    /// default (`config/default.toml`'s, or none where that file leaves the key unset) and the
    /// section read again, and its `check` runs on the result; a stand-in the type refuses too
    /// ends the reading. A section read with a stand-in is never returned: settings with a
    /// problem do not load.
    fn section<T: DeserializeOwned>(
        &mut self,
        name: &str,
        check: impl Fn(&T) -> Vec<SettingError>,
    ) -> Option<T> {
        let under = format!("{name}.");
        if self
            .refused_by_schema
            .iter()
            .any(|p| p.path == name || p.path.starts_with(&under))
        {
            return None;
        }
        let mut value = self.tree[name].clone();
        if value.is_null() {
            // Absent: the schema has said so if the section is required; one that may be left
            // out (`schedules`) is then empty.
            if !self.refused_by_schema.is_empty() {
                return None;
            }
            value = Value::Object(serde_json::Map::new());
        }
        let mut refused = BTreeSet::new();
        loop {
            match serde_path_to_error::deserialize::<_, T>(value.clone()) {
                Ok(section) => {
                    let found = check(&section);
                    let clean = refused.is_empty() && found.is_empty();
                    self.found.extend(found);
                    return clean.then_some(section);
                }
                Err(e) => {
                    let path = join_path(name, e.path().to_string().trim_start_matches('.'));
                    if !refused.insert(path.clone()) {
                        return None;
                    }
                    self.found.push(problem(path, e.inner().to_string()));
                    let at: Vec<&Segment> = e.path().iter().collect();
                    let stand_in = at_path(&self.defaults[name], &at)
                        .cloned()
                        .unwrap_or(Value::Null);
                    match at_path_mut(&mut value, &at) {
                        Some(slot) => *slot = stand_in,
                        None => return None,
                    }
                }
            }
        }
    }
}

/// The value at a deserializer's error path, if the tree has one there.
fn at_path<'v>(value: &'v Value, at: &[&Segment]) -> Option<&'v Value> {
    at.iter().try_fold(value, |v, segment| match segment {
        Segment::Map { key } => v.get(key),
        Segment::Seq { index } => v.get(index),
        _ => None,
    })
}

fn at_path_mut<'v>(value: &'v mut Value, at: &[&Segment]) -> Option<&'v mut Value> {
    at.iter().try_fold(value, |v, segment| match segment {
        Segment::Map { key } => v.get_mut(key),
        Segment::Seq { index } => v.get_mut(index),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use secrecy::ExposeSecret;

    use super::*;
    use crate::temporal_env::TemporalClientEnv;

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
    fn a_worker_version_that_the_server_would_misread_is_refused() {
        let (_d, sources) = sources_with(
            "[worker]\ndeployment_name = \"shop.eu\"\nbuild_id = \" \"\n",
            &[("EDGEFLOW__WORKER__PROMOTE", "sometimes")],
        );
        let errs = Settings::load(&sources).expect_err("bad version").0;
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            ["worker.promote"],
            "the type is checked first: {errs:#?}"
        );
        let (_d, sources) = sources_with(
            "[worker]\ndeployment_name = \"shop.eu\"\nbuild_id = \" \"\n",
            &[],
        );
        let errs = Settings::load(&sources).expect_err("bad version").0;
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            ["worker.deployment_name", "worker.build_id"],
            "{errs:#?}"
        );
        assert!(errs[0].message.contains("without `.`"), "{errs:#?}");
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
    fn a_value_its_type_refuses_hides_none_of_its_sections_other_problems() {
        let (_d, sources) = sources_with(
            "[gateway]\nlisten = \"anywhere\"\njwks_url = \"ftp://keys\"\nclock_skew_secs = 31\n\
             [telemetry]\nlog_level = \"info,edgeflow=loud\"\notlp_endpoint = \"collector\"\n",
            &[],
        );
        let errs = Settings::load(&sources).expect_err("bad values").0;
        let found: Vec<(&str, &str)> = errs
            .iter()
            .map(|e| (e.path.as_str(), e.message.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (
                    "telemetry.log_level",
                    "error parsing level filter: expected one of \"off\", \"error\", \"warn\", \
                     \"info\", \"debug\", \"trace\", or a number 0-5"
                ),
                ("telemetry.otlp_endpoint", "`collector` is not a URL"),
                (
                    "gateway.jwks_url",
                    "`ftp://keys` is not an http:// or https:// URL"
                ),
                ("gateway.listen", "invalid socket address syntax"),
                ("gateway.clock_skew_secs", "must be at most 30"),
            ],
            "{errs:#?}"
        );
    }

    #[test]
    fn text_settings_are_parsed_when_the_settings_load() {
        use crate::connection::settings::TemporalAddress;
        use crate::dev::demo::Failure;
        let (_d, sources) = sources_with(
            "[temporal]\naddress = \"temporal.internal:7233\"\n[dev]\ndemo_failure = \"slow:payments:0.5\"\n\
             [telemetry]\notlp_endpoint = \"http://127.0.0.1:4318\"\n",
            &[],
        );
        let s = Settings::load(&sources).expect("loads");
        assert!(matches!(
            *s.temporal.address,
            TemporalAddress::HostPort { .. }
        ));
        assert_eq!(
            s.temporal.address.endpoint(true).as_str(),
            "https://temporal.internal:7233/"
        );
        assert_eq!(
            *s.dev.demo_failure,
            Failure::Slow("payments".into(), std::time::Duration::from_millis(500))
        );
        let endpoint = s.telemetry.otlp_endpoint.as_ref().expect("set");
        assert_eq!(endpoint.traces_url(), "http://127.0.0.1:4318/v1/traces");
        // What `config check` prints is what was written.
        let printed = s.redacted();
        assert_eq!(printed["temporal"]["address"], "temporal.internal:7233");
        assert_eq!(printed["dev"]["demo_failure"], "slow:payments:0.5");
        assert_eq!(
            printed["telemetry"]["otlp_endpoint"],
            "http://127.0.0.1:4318"
        );
    }

    #[test]
    fn encryption_is_off_by_default_and_every_bad_key_is_named() {
        let (_d, sources) = sources_with("", &[]);
        let s = Settings::load(&sources).expect("loads");
        assert!(!s.encryption.enabled());
        assert!(!s.encryption.require_encrypted);

        let (dir, sources) = sources_with(
            "[encryption.keys.from_file]\nkey_file = \"/nonexistent/payload-key\"\n",
            &[
                // Variables' key ids are lower-cased: `SHORT` becomes `short`.
                ("EDGEFLOW__ENCRYPTION__KEYS__SHORT__KEY", "c2hvcnQ="),
                ("EDGEFLOW__ENCRYPTION__KEYS__GARBLED__KEY", "not base64!"),
                ("EDGEFLOW__ENCRYPTION__ACTIVE_KEY_ID", "missing"),
            ],
        );
        let errs = Settings::load(&sources).expect_err("bad keys").0;
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "encryption.keys.from_file.key_file",
                "encryption.keys.garbled.key",
                "encryption.keys.short.key",
                "encryption.active_key_id",
            ],
            "{errs:#?}"
        );
        assert!(errs[2].message.contains("decodes to 5 bytes"), "{errs:#?}");

        // Keys without an active one, and an inline key beside a file key.
        let key_file = dir.path().join("payload.key");
        std::fs::write(&key_file, [7u8; 32]).unwrap();
        let (_d, sources) = sources_with(
            &format!(
                "[encryption.keys.k1]\nkey_file = \"{}\"\n[encryption.keys.k2]\nkey = \"{}\"\n",
                key_file.display(),
                "dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktdGVzdCE="
            ),
            &[],
        );
        let errs = Settings::load(&sources).expect_err("no active key").0;
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert_eq!(errs[0].path, "encryption.active_key_id");
        let (_d, sources) = sources_with(
            &format!(
                "[encryption]\nactive_key_id = \"k2\"\nrequire_encrypted = true\n\
                 [encryption.keys.k1]\nkey_file = \"{}\"\n[encryption.keys.k2]\nkey = \"{}\"\n",
                key_file.display(),
                "dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktdGVzdCE="
            ),
            &[],
        );
        let s = Settings::load(&sources).expect("two good keys");
        assert!(s.encryption.enabled());
        let printed = serde_json::to_string(&s.redacted()).unwrap();
        assert!(
            !printed.contains("dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktdGVzdCE="),
            "{printed}"
        );
        assert_eq!(
            s.redacted()["encryption"]["keys"]["k2"]["key"],
            "[redacted]"
        );
        assert!(!format!("{s:?}").contains("dGVzdC1rZXkt"));
    }

    #[test]
    fn edge_activities_are_off_by_default_and_on_need_a_readable_p256_key() {
        let (_d, sources) = sources_with("", &[]);
        let s = Settings::load(&sources).expect("loads");
        assert!(!s.edge_activities.enabled());

        let (dir, sources) = sources_with(
            "[edge_activities]\nurl = \"https://edge.example.com\"\n\
             signing_key_file = \"/nonexistent/edge.pem\"\n",
            &[],
        );
        let errs = Settings::load(&sources).expect_err("no key").0;
        let found: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            found,
            ["edge_activities.key_id", "edge_activities.signing_key_file"],
            "{errs:#?}"
        );
        assert!(
            errs[1].message.contains("/nonexistent/edge.pem"),
            "{errs:#?}"
        );

        // A file that is not a P-256 PKCS#8 key, and plain http off loopback.
        let not_a_key = dir.path().join("edge.pem");
        std::fs::write(
            &not_a_key,
            "-----BEGIN PRIVATE KEY-----\naGVsbG8=\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let (_d, sources) = sources_with(
            &format!(
                "[edge_activities]\nurl = \"http://edge.example.com\"\nkey_id = \"k1\"\n\
                 signing_key_file = \"{}\"\n",
                not_a_key.display()
            ),
            &[],
        );
        let errs = Settings::load(&sources).expect_err("bad key").0;
        let found: Vec<(&str, bool)> = errs
            .iter()
            .map(|e| (e.path.as_str(), e.message.contains("not a P-256")))
            .collect();
        assert_eq!(
            found,
            [
                ("edge_activities.url", false),
                ("edge_activities.signing_key_file", true)
            ],
            "{errs:#?}"
        );

        let good = dir.path().join("good.pem");
        std::fs::write(
            &good,
            edgeflow_activities::edge::token::generate_pem().unwrap(),
        )
        .unwrap();
        let (_d, sources) = sources_with(
            &format!(
                "[edge_activities]\nurl = \"http://127.0.0.1:8787\"\nkey_id = \"k1\"\n\
                 signing_key_file = \"{}\"\n",
                good.display()
            ),
            &[],
        );
        let s = Settings::load(&sources).expect("a good key loads");
        assert!(s.edge_activities.enabled());
    }

    #[test]
    fn a_service_may_not_be_called_edge() {
        let (_d, sources) = sources_with(
            "[services.edge]\nbase_url = \"https://edge.example.com/\"\n",
            &[],
        );
        let errs = Settings::load(&sources).expect_err("reserved").0;
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert_eq!(errs[0].path, "services.edge");
        assert!(errs[0].message.contains("reserved"), "{errs:#?}");
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
