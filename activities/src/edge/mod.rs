//! `edge.*`: activities the edge Worker runs, carried to it by the worker.
//!
//! A Cloudflare Worker cannot long-poll a Temporal task queue, so the worker polls
//! `<queue>.edge` for it and turns each attempt into one signed `POST <edge>/v1/activities/<name>`
//! (protocol: docs/architecture.md, "Activities at the edge"). The edge declares its activities (names, input and
//! output JSON Schemas) in the committed manifest, `schemas/manifest.json` `edge_activities`;
//! `build.rs` turns every entry into an activity definition, so the worker registers exactly the
//! types the edge serves, each named `edge.<name>`:
//! - [`MANIFEST`] and one definition per entry (`KvPut` for `edge.kv.put`, input and output JSON
//!   values) are the contract workflows call (`workflows::edge` wraps them in typed helpers);
//! - `EdgeActivities` (with the `runtime` feature) is the one dispatch every `edge.*` type
//!   shares: the input checked against its schema, the deadline checked against
//!   `[edge_activities] max_attempt_secs`, the request signed ([`token`]) and sent while
//!   heartbeating (so Temporal's cancellation reaches it), then aborted at the deadline or on
//!   cancellation; the answer mapped to an output (checked against its schema) or a
//!   [`Failure`](crate::Failure).
//!
//! Activity inputs reach this code decoded: the SDK's data converter (and the payload codec of
//! `[encryption]`) has already run. The body the edge receives is plaintext JSON over HTTPS.

#[cfg(feature = "runtime")]
mod settings;
#[cfg(feature = "runtime")]
pub mod token;

#[cfg(feature = "runtime")]
pub use runtime::{Attempt, EdgeActivities, EdgeBuildError, failure_counts};
#[cfg(feature = "runtime")]
pub use settings::{DEFAULT_ISSUER, EdgeActivitiesSettings};

/// The suffix of the task queue edge activities wait on: `<workflow's queue>.edge`. Reserved:
/// no `[services.edge]` may take it.
pub const QUEUE_SUFFIX: &str = "edge";

/// The task queue on which `queue`'s edge activities wait: `edgeflow.edge`.
pub fn task_queue(queue: &str) -> String {
    format!("{queue}.{QUEUE_SUFFIX}")
}

/// One entry of the edge's manifest, compiled in.
#[derive(Debug, Clone, Copy)]
pub struct EdgeActivitySpec {
    /// The edge's name, e.g. `kv.put` (the route's last segment).
    pub name: &'static str,
    /// The Temporal activity type: `edge.` + name.
    pub activity_type: &'static str,
    /// The input schema's path under `schemas/`.
    pub input: &'static str,
    /// The output schema's path under `schemas/`.
    pub output: &'static str,
    /// The input schema's text, as committed.
    pub input_schema: &'static str,
    /// The output schema's text, as committed.
    pub output_schema: &'static str,
    /// The longest attempt this activity may be given, when the edge says (otherwise the
    /// worker's `max_attempt_secs`).
    pub max_attempt_secs: Option<u64>,
}

/// The entry for an activity type (`edge.kv.put`).
pub fn find(activity_type: &str) -> Option<&'static EdgeActivitySpec> {
    MANIFEST.iter().find(|s| s.activity_type == activity_type)
}

include!(concat!(env!("OUT_DIR"), "/edge_manifest.rs"));

#[cfg(feature = "runtime")]
mod runtime {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use reqwest::StatusCode;
    use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
    use serde_json::Value;
    use temporalio_sdk::WorkerOptions;
    use temporalio_sdk::activities::{
        ActivityContext, ActivityDefinitions, ActivityError, ActivityImplementer,
    };
    use tracing::Instrument;

    use super::settings::EdgeActivitiesSettings;
    use super::token::Claims;
    use super::{EdgeActivitySpec, MANIFEST};
    use crate::failure::{self, EXCERPT_BYTES, Failure};
    use crate::untrusted::check_against_schema;
    use crate::{CallContext, InputError, InputProblem, SettingError, Untrusted};

    /// The largest answer read from the edge: an output larger than this could not be recorded
    /// in Temporal's history anyway (2 MB payload limit).
    const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

    /// How long connecting to the edge may take.
    const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    /// How long an attempt that reached its deadline waits before failing itself, so that
    /// Temporal's start-to-close timeout (a `TimeoutFailure` the workflow can tell apart) fires
    /// first. The server's answer to the late failure is ignored.
    const AFTER_DEADLINE: Duration = Duration::from_secs(3);
    /// The type the edge fails an attempt with when its handler was still running at the
    /// deadline (edge/src/activities/route.ts).
    const EDGE_DEADLINE_EXCEEDED: &str = "DeadlineExceeded";

    include!(concat!(env!("OUT_DIR"), "/edge_registered.rs"));

    /// Every `edge.*` activity, dispatched to the edge. Cheap to clone.
    #[derive(Clone)]
    pub struct EdgeActivities {
        inner: Arc<Inner>,
    }

    struct Inner {
        base: url::Url,
        audience: String,
        issuer: String,
        key: super::token::SigningKey,
        max_attempt: Duration,
        client: reqwest::Client,
        /// Input and output validators, by manifest index.
        validators: Vec<(jsonschema::Validator, jsonschema::Validator)>,
    }

    /// Edge activities could not be set up.
    #[derive(Debug, thiserror::Error)]
    pub enum EdgeBuildError {
        /// `[edge_activities]` has problems.
        #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
        Settings(Vec<SettingError>),
        /// A committed schema does not compile (a bug in the edge's export).
        #[error("schemas/{path}: {message}")]
        Schema {
            /// The schema's path under `schemas/`.
            path: &'static str,
            /// Why.
            message: String,
        },
        /// The HTTP client.
        #[error("the HTTP client for the edge: {0}")]
        Client(String),
    }

    /// One attempt of one activity, as the edge is told about it.
    #[derive(Debug, Clone)]
    pub struct Attempt {
        pub workflow_id: String,
        pub run_id: String,
        pub activity_id: String,
        /// From 1.
        pub attempt: u32,
        /// When this attempt started.
        pub started: SystemTime,
        /// When Temporal times this attempt out (start-to-close, or schedule-to-close if sooner).
        pub deadline: Option<SystemTime>,
    }

    impl Attempt {
        /// The attempt a running activity is on; its workflow, run and attempt as `call` names
        /// them (one rule for an activity started outside a workflow).
        pub fn from_activity(ctx: &ActivityContext, call: &CallContext) -> Self {
            let info = ctx.info();
            Self {
                workflow_id: call.workflow_id.clone(),
                run_id: call.run_id.clone(),
                activity_id: info.activity_id.clone(),
                attempt: call.attempt,
                started: info.started_time.unwrap_or_else(SystemTime::now),
                deadline: info.deadline,
            }
        }
    }

    /// The `reason` label values of `edgeflow_edge_activity_failures_total`: why an attempt got
    /// no answer from a handler.
    pub const FAILURE_REASONS: [&str; 8] = [
        "unauthorized",
        "not_found",
        "bad_request",
        "server_error",
        "unexpected_status",
        "bad_answer",
        "connection",
        "timeout",
    ];
    static FAILURES: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

    /// Attempts that got no answer from a handler, by reason, since the process started.
    pub fn failure_counts() -> Vec<(&'static str, u64)> {
        FAILURE_REASONS
            .iter()
            .zip(&FAILURES)
            .map(|(r, n)| (*r, n.load(Ordering::Relaxed)))
            .collect()
    }

    /// Counts a failure that is the edge's or the network's, not the handler's.
    fn count(failure: &Failure) {
        let reason = match failure {
            Failure::EdgeUnavailable { reason, .. } => *reason,
            Failure::Connection(_) => "connection",
            Failure::Timeout(_) => "timeout",
            _ => return,
        };
        if let Some(i) = FAILURE_REASONS.iter().position(|r| *r == reason) {
            FAILURES[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    impl EdgeActivities {
        /// Reads `[edge_activities]` (the key file included) and compiles every schema; `None`
        /// when edge activities are off.
        pub fn new(settings: &EdgeActivitiesSettings) -> Result<Option<Self>, EdgeBuildError> {
            let Some(resolved) = settings.resolve().map_err(EdgeBuildError::Settings)? else {
                return Ok(None);
            };
            let compile = |path: &'static str, text: &str| {
                serde_json::from_str::<Value>(text)
                    .map_err(|e| e.to_string())
                    .and_then(|schema| {
                        jsonschema::validator_for(&schema).map_err(|e| e.to_string())
                    })
                    .map_err(|message| EdgeBuildError::Schema { path, message })
            };
            let validators = MANIFEST
                .iter()
                .map(|s| {
                    Ok((
                        compile(s.input, s.input_schema)?,
                        compile(s.output, s.output_schema)?,
                    ))
                })
                .collect::<Result<Vec<_>, EdgeBuildError>>()?;
            let client = reqwest::Client::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                // A redirect would carry the token elsewhere; the edge never sends one.
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| EdgeBuildError::Client(e.to_string()))?;
            let mut base = resolved.base;
            if !base.path().ends_with('/') {
                let with_slash = format!("{}/", base.path());
                base.set_path(&with_slash);
            }
            Ok(Some(Self {
                inner: Arc::new(Inner {
                    base,
                    audience: resolved.audience,
                    issuer: resolved.issuer,
                    key: resolved.key,
                    max_attempt: resolved.max_attempt,
                    client,
                    validators,
                }),
            }))
        }

        /// Registers every `edge.*` activity type of the manifest.
        pub fn register(&self, options: &mut WorkerOptions) {
            options.register_activities(self.clone());
        }

        /// What every generated definition runs.
        async fn run(
            receiver: Option<Arc<Self>>,
            spec: &'static EdgeActivitySpec,
            ctx: ActivityContext,
            input: Untrusted<Value>,
        ) -> Result<Value, ActivityError> {
            let Some(this) = receiver else {
                return Err(Failure::Internal("edge activities are not set up".into())
                    .into_activity_error());
            };
            let call = CallContext::from_activity(&ctx);
            let attempt = Attempt::from_activity(&ctx, &call);
            this.call(spec, &call, &attempt, input.0)
                .await
                .map_err(Failure::into_activity_error)
        }

        /// One attempt of `spec` (without the SDK wrapper): checks, one request, the answer.
        pub async fn call(
            &self,
            spec: &EdgeActivitySpec,
            call: &CallContext,
            attempt: &Attempt,
            input: Result<Value, InputError>,
        ) -> Result<Value, Failure> {
            let span = tracing::info_span!(
                "edge.activity",
                otel.kind = "client",
                activity = spec.activity_type,
                attempt = attempt.attempt,
            );
            let result = self
                .attempt(spec, call, attempt, input)
                .instrument(span)
                .await;
            if let Err(failure) = &result {
                count(failure);
                // At the deadline the worker drops the request and the edge aborts the handler
                // (answering 422 `DeadlineExceeded`), whichever comes first. Temporal's own
                // start-to-close timeout is what the history should record, so such an attempt
                // answers only after the server has had time to fire it.
                let edge_deadline = matches!(failure,
                    Failure::EdgeActivityFailed { type_name, .. } if type_name == EDGE_DEADLINE_EXCEEDED);
                let now = SystemTime::now();
                if let Some(deadline) = attempt.deadline.filter(|d| now >= *d || edge_deadline) {
                    let wait = (deadline + AFTER_DEADLINE).duration_since(now);
                    tokio::time::sleep(wait.unwrap_or(Duration::ZERO)).await;
                }
            }
            result
        }

        async fn attempt(
            &self,
            spec: &EdgeActivitySpec,
            call: &CallContext,
            attempt: &Attempt,
            input: Result<Value, InputError>,
        ) -> Result<Value, Failure> {
            let index = MANIFEST
                .iter()
                .position(|s| s.activity_type == spec.activity_type)
                .ok_or_else(|| Failure::UnknownName {
                    kind: "edge activity",
                    name: spec.activity_type.to_string(),
                })?;
            let (input_schema, output_schema) = &self.inner.validators[index];
            let input = input
                .and_then(|v| check_against_schema(input_schema, v))
                .map_err(Failure::InvalidInput)?;

            // The attempt's own timeout, from its info; refused, never cut, when too long.
            let max = spec
                .max_attempt_secs
                .map(Duration::from_secs)
                .map_or(self.inner.max_attempt, |m| m.min(self.inner.max_attempt));
            let deadline = attempt.deadline.ok_or(Failure::AttemptTooLong {
                timeout_secs: u64::MAX,
                max_secs: max.as_secs(),
            })?;
            let timeout = deadline
                .duration_since(attempt.started)
                .unwrap_or(Duration::ZERO);
            // Timestamps are whole milliseconds at best: a second of slack.
            if timeout > max + Duration::from_secs(1) {
                return Err(Failure::AttemptTooLong {
                    timeout_secs: timeout.as_secs(),
                    max_secs: max.as_secs(),
                });
            }

            let body = serde_json::to_vec(&input)
                .map_err(|e| Failure::Internal(format!("encoding the input: {e}")))?;
            let url = self
                .inner
                .base
                .join(&format!("v1/activities/{}", spec.name))
                .map_err(|e| Failure::Internal(format!("the edge URL: {e}")))?;
            let token = self
                .inner
                .key
                .sign(
                    &Claims {
                        issuer: &self.inner.issuer,
                        audience: &self.inner.audience,
                        path: url.path(),
                        body: &body,
                        workflow_id: &attempt.workflow_id,
                        activity_id: &attempt.activity_id,
                        attempt: attempt.attempt,
                    },
                    SystemTime::now(),
                )
                .map_err(Failure::Credentials)?;
            let deadline_ms = deadline
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0);
            let mut headers = HeaderMap::new();
            let mut put = |name: &'static str, value: String| {
                // Ids come from Temporal and may hold anything; one that is no header value is
                // refused rather than altered.
                HeaderValue::from_str(&value)
                    .map(|v| {
                        headers.insert(name, v);
                    })
                    .map_err(|_| Failure::HeaderInjection {
                        field: name.to_string(),
                    })
            };
            put(AUTHORIZATION.as_str(), format!("Bearer {token}"))?;
            put(CONTENT_TYPE.as_str(), "application/json".into())?;
            put(
                "idempotency-key",
                format!("{}/{}", attempt.workflow_id, attempt.activity_id),
            )?;
            put("edgeflow-workflow-id", attempt.workflow_id.clone())?;
            put("edgeflow-run-id", attempt.run_id.clone())?;
            put("edgeflow-activity-id", attempt.activity_id.clone())?;
            put("edgeflow-attempt", attempt.attempt.to_string())?;
            put("edgeflow-deadline", deadline_ms.to_string())?;
            if let Some(traceparent) = crate::context::traceparent() {
                put("traceparent", traceparent)?;
            }
            let request = self.inner.client.post(url).headers(headers).body(body);

            // Dropping the request (cancellation, the deadline) closes its connection, which
            // fires the handler's AbortSignal at the edge.
            let left = deadline
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            let exchange = async {
                let response = request
                    .send()
                    .await
                    .map_err(|e| failure::from_reqwest("the edge", &e))?;
                let status = response.status();
                let bytes = read_capped(response).await?;
                Ok::<_, Failure>((status, bytes))
            };
            let (status, bytes) = call
                .guard(async {
                    tokio::time::timeout(left, exchange).await.map_err(|_| {
                        Failure::Timeout(format!(
                            "the edge did not answer before the attempt's deadline ({} s after it started)",
                            timeout.as_secs()
                        ))
                    })?
                })
                .await?;
            answer(status, &bytes, output_schema)
        }
    }

    impl ActivityImplementer for EdgeActivities {
        fn register_all(self: Arc<Self>, defs: &mut ActivityDefinitions) {
            register_generated(&self, defs);
        }
    }

    async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, Failure> {
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| failure::from_reqwest("the edge", &e))?
        {
            if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(Failure::EdgeUnavailable {
                    reason: "bad_answer",
                    status: response.status().as_u16(),
                    excerpt: format!("the answer is larger than {MAX_RESPONSE_BYTES} bytes"),
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    /// The edge's answer as the activity's output or failure (docs/architecture.md,
    /// "Activities at the edge", "The answer").
    fn answer(
        status: StatusCode,
        body: &[u8],
        output_schema: &jsonschema::Validator,
    ) -> Result<Value, Failure> {
        let unavailable = |reason: &'static str| Failure::EdgeUnavailable {
            reason,
            status: status.as_u16(),
            excerpt: failure::excerpt(&body[..body.len().min(EXCERPT_BYTES)]),
        };
        match status.as_u16() {
            200 => {
                let output: Value =
                    serde_json::from_slice(body).map_err(|_| unavailable("bad_answer"))?;
                check_against_schema(output_schema, output).map_err(Failure::InvalidOutput)
            }
            422 => Err(handler_failure(body).unwrap_or_else(|| unavailable("bad_answer"))),
            // The one 400 the route answers: `Edgeflow-Deadline` is not in the future by the
            // edge's clock. The worker always sends one, so that is clock skew (or a request
            // that sat in transit to its deadline): retried with a fresh deadline, and counted,
            // because skew that outlasts every attempt's timeout needs an operator.
            400 => Err(unavailable("bad_request")),
            401 => Err(unavailable("unauthorized")),
            404 => Err(unavailable("not_found")),
            // The body is over the edge's cap (1 MiB): the same input always will be.
            413 => Err(Failure::InvalidInput(InputError::at(
                "$",
                "the edge refused the input as too large (HTTP 413; it takes at most 1 MiB)",
            ))),
            500..=599 => Err(unavailable("server_error")),
            _ => Err(unavailable("unexpected_status")),
        }
    }

    /// A 422 problem document: the handler's error, or a schema check the edge made.
    fn handler_failure(body: &[u8]) -> Option<Failure> {
        let problem: Value = serde_json::from_slice(body).ok()?;
        let error = problem.get("error")?;
        let type_name = error.get("type")?.as_str()?.to_string();
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let non_retryable = error.get("non_retryable")?.as_bool()?;
        let problems = || {
            let listed: Vec<InputProblem> = problem
                .get("errors")
                .and_then(|e| serde_json::from_value(e.clone()).ok())
                .unwrap_or_default();
            if listed.is_empty() {
                InputError::at("$", message.clone())
            } else {
                InputError(listed)
            }
        };
        Some(match type_name.as_str() {
            crate::INVALID_INPUT => Failure::InvalidInput(problems()),
            failure::INVALID_OUTPUT => Failure::InvalidOutput(problems()),
            _ => Failure::EdgeActivityFailed {
                type_name,
                message,
                non_retryable,
            },
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::failure::Retry;

        fn schema() -> jsonschema::Validator {
            jsonschema::validator_for(&serde_json::json!({
                "type": "object", "additionalProperties": false, "required": ["key"],
                "properties": { "key": { "type": "string" } }
            }))
            .unwrap()
        }

        /// Every answer the protocol names, one row each: what it becomes, and whether Temporal
        /// retries it.
        #[test]
        fn the_answer_table() {
            let problem = |error: Value| {
                serde_json::to_vec(&serde_json::json!({
                    "type": "about:blank", "title": "t", "status": 422, "detail": "d", "error": error,
                    "errors": [{"path": "$.key", "message": "is required"}],
                }))
                .unwrap()
            };
            let table: Vec<(&str, u16, Vec<u8>, &str, Retry)> = vec![
                ("output", 200, br#"{"key":"k"}"#.to_vec(), "ok", Retry::No),
                (
                    "output breaks its schema",
                    200,
                    br#"{"key":1}"#.to_vec(),
                    "InvalidOutput",
                    Retry::No,
                ),
                (
                    "200 that is not JSON",
                    200,
                    b"<html>".to_vec(),
                    "EdgeUnavailable",
                    Retry::Yes { after: None },
                ),
                (
                    "ActivityError nonRetryable",
                    422,
                    problem(
                        serde_json::json!({"type":"OutOfStock","message":"none left","non_retryable":true}),
                    ),
                    "OutOfStock",
                    Retry::No,
                ),
                (
                    "plain Error",
                    422,
                    problem(
                        serde_json::json!({"type":"Error","message":"boom","non_retryable":false}),
                    ),
                    "Error",
                    Retry::Yes { after: None },
                ),
                (
                    "input refused by the edge",
                    422,
                    problem(
                        serde_json::json!({"type":"InvalidInput","message":"m","non_retryable":true}),
                    ),
                    "InvalidInput",
                    Retry::No,
                ),
                (
                    "output refused by the edge",
                    422,
                    problem(
                        serde_json::json!({"type":"InvalidOutput","message":"m","non_retryable":true}),
                    ),
                    "InvalidOutput",
                    Retry::No,
                ),
                (
                    "422 without a problem",
                    422,
                    b"nope".to_vec(),
                    "EdgeUnavailable",
                    Retry::Yes { after: None },
                ),
                (
                    "401 token refused",
                    401,
                    Vec::new(),
                    "EdgeUnavailable",
                    Retry::Yes { after: None },
                ),
                (
                    "404 undeclared name",
                    404,
                    Vec::new(),
                    "EdgeUnavailable",
                    Retry::Yes { after: None },
                ),
                (
                    "500",
                    500,
                    Vec::new(),
                    "EdgeUnavailable",
                    Retry::Yes { after: None },
                ),
                (
                    "503",
                    503,
                    Vec::new(),
                    "EdgeUnavailable",
                    Retry::Yes { after: None },
                ),
                (
                    "302",
                    302,
                    Vec::new(),
                    "EdgeUnavailable",
                    Retry::Yes { after: None },
                ),
                (
                    "400 deadline not in the future by the edge's clock",
                    400,
                    Vec::new(),
                    "EdgeUnavailable",
                    Retry::Yes { after: None },
                ),
                (
                    "413 body over the edge's cap",
                    413,
                    Vec::new(),
                    "InvalidInput",
                    Retry::No,
                ),
                (
                    "418",
                    418,
                    Vec::new(),
                    "EdgeUnavailable",
                    Retry::Yes { after: None },
                ),
            ];
            for (case, status, body, want_type, want_retry) in table {
                let got = answer(StatusCode::from_u16(status).unwrap(), &body, &schema());
                match got {
                    Ok(_) => assert_eq!(want_type, "ok", "{case}"),
                    Err(f) => {
                        assert_eq!(f.retry(), want_retry, "{case}");
                        let ActivityError::Application(app) = f.into_activity_error() else {
                            panic!("{case}: not an application failure")
                        };
                        assert_eq!(app.type_name(), Some(want_type), "{case}");
                        assert_eq!(app.is_non_retryable(), want_retry == Retry::No, "{case}");
                    }
                }
            }
        }

        #[test]
        fn failures_of_the_edge_are_counted_by_reason_and_the_handlers_are_not() {
            let before: Vec<u64> = failure_counts().iter().map(|(_, n)| *n).collect();
            count(&Failure::EdgeUnavailable {
                reason: "unauthorized",
                status: 401,
                excerpt: String::new(),
            });
            count(&Failure::Timeout("t".into()));
            count(&Failure::EdgeActivityFailed {
                type_name: "Error".into(),
                message: "m".into(),
                non_retryable: false,
            });
            let after: Vec<u64> = failure_counts().iter().map(|(_, n)| *n).collect();
            let grew: Vec<&str> = FAILURE_REASONS
                .iter()
                .zip(before.iter().zip(&after))
                .filter(|(_, (b, a))| a > b)
                .map(|(r, _)| *r)
                .collect();
            assert_eq!(grew, ["unauthorized", "timeout"]);
        }

        #[test]
        fn every_manifest_schema_compiles() {
            for spec in MANIFEST {
                for text in [spec.input_schema, spec.output_schema] {
                    let schema: Value = serde_json::from_str(text).unwrap();
                    jsonschema::validator_for(&schema)
                        .unwrap_or_else(|e| panic!("{}: {e}", spec.name));
                }
            }
            assert!(super::super::find("edge.kv.put").is_some());
        }
    }
}
