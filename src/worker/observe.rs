//! What every activity attempt leaves behind: its log lines' fields, metrics, and the in-flight
//! count. The only place activity logs and metrics are made; the families only add child spans.
//!
//! One activity interceptor wraps every activity of every family, inside the SDK's
//! OpenTelemetry interceptor (which starts the attempt's `RunActivity` span from the
//! `_tracer-data` header the workflow, or another SDK's workflow, sent along):
//! - a `tracing` span carrying `workflow_id`, `run_id`, `activity_type`, `attempt`,
//!   `task_queue`, the `trace_id` of that span, and `edge_request_id` and `edge_subject` from
//!   the header's W3C baggage (set by the edge Worker), which every log line the activity writes
//!   inherits; it is a log span only (see [`LOG_TARGET`]), so a trace shows the SDK's span once;
//! - one line per attempt that did not end well (`activity attempt failed`, with the failure's
//!   type and message), debug for the rest;
//! - `edgeflow_activity_executions_total` and `edgeflow_activity_duration_seconds`, labelled by
//!   family (the type name's prefix before the first `.`) and [`Outcome`];
//! - `edgeflow_activities_in_flight` by task queue, and the outcome counts the shutdown drain
//!   reports.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use edgeflow_activities::Outcome;
use futures_util::FutureExt;
use opentelemetry::baggage::BaggageExt;
use opentelemetry::trace::TraceContextExt;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use temporalio_sdk::activities::ActivityError;
use temporalio_sdk::interceptors::{
    ActivityInboundInterceptor, ExecuteActivityInput, ExecuteActivityOutput, Next,
};
use tracing::Instrument;
use tracing::field::Empty;

/// The `tracing` target of the per-attempt log span: logs show it, trace export leaves it out
/// (`crate::telemetry` exports only the families' spans).
pub const LOG_TARGET: &str = "edgeflow::activity";

/// The baggage keys the edge Worker sets, which are also the log fields they appear as.
pub const BAGGAGE_FIELDS: [&str; 2] = ["edge_request_id", "edge_subject"];

/// The longest baggage value copied into a log field: the header comes from a client.
const MAX_BAGGAGE_VALUE: usize = 256;

/// Attempts that ended since start, by outcome; the shutdown drain reports the difference.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Finished {
    pub completed: u64,
    pub failed: u64,
    pub timed_out: u64,
    pub cancelled: u64,
}

impl std::ops::Sub for Finished {
    type Output = Finished;
    fn sub(self, earlier: Finished) -> Finished {
        Finished {
            completed: self.completed - earlier.completed,
            failed: self.failed - earlier.failed,
            timed_out: self.timed_out - earlier.timed_out,
            cancelled: self.cancelled - earlier.cancelled,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    task_queue: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    family: String,
    activity: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    family: String,
    outcome: String,
}

/// edgeflow's own metrics; rendered on `/metrics` after the SDK's.
pub struct Metrics {
    registry: Registry,
    executions: Family<Labels, Counter>,
    latency: Family<LatencyLabels, Histogram>,
    in_flight: Family<QueueLabels, Gauge>,
    in_flight_total: AtomicI64,
    /// Attempts that ended, by outcome (in [`Outcome::ALL`] order), since start.
    finished: [AtomicU64; 5],
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("edgeflow");
        let executions = Family::<Labels, Counter>::default();
        let latency = Family::<LatencyLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ])
        });
        let in_flight = Family::<QueueLabels, Gauge>::default();
        registry.register(
            "activity_executions",
            "Activity attempts run by this worker, by family, activity type and outcome",
            executions.clone(),
        );
        registry.register(
            "activity_duration_seconds",
            "Time from an activity attempt's start to its end, by family and outcome",
            latency.clone(),
        );
        registry.register(
            "activities_in_flight",
            "Activity attempts running now, by the task queue they came from",
            in_flight.clone(),
        );
        registry.register(
            "payload_decrypt_failures",
            "Payloads this worker could not decrypt, by reason (unknown_key: a key is missing here)",
            crate::codec::DECRYPT_FAILURES.clone(),
        );
        Arc::new(Self {
            registry,
            executions,
            latency,
            in_flight,
            in_flight_total: AtomicI64::new(0),
            finished: Default::default(),
        })
    }

    fn record(&self, activity: &str, outcome: Outcome, elapsed: std::time::Duration) {
        let family = activity.split('.').next().unwrap_or(activity).to_string();
        self.executions
            .get_or_create(&Labels {
                family: family.clone(),
                activity: activity.to_string(),
                outcome: outcome.as_str().to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&LatencyLabels {
                family,
                outcome: outcome.as_str().to_string(),
            })
            .observe(elapsed.as_secs_f64());
        if let Some(slot) = Outcome::ALL.iter().position(|o| *o == outcome) {
            self.finished[slot].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Attempts running now, on every task queue.
    pub fn in_flight(&self) -> i64 {
        self.in_flight_total.load(Ordering::Relaxed)
    }

    fn started(&self, task_queue: &str, by: i64) {
        self.in_flight_total.fetch_add(by, Ordering::Relaxed);
        self.in_flight
            .get_or_create(&QueueLabels {
                task_queue: task_queue.to_string(),
            })
            .inc_by(by);
    }

    /// Attempts finished so far.
    pub fn finished(&self) -> Finished {
        let [ok, retryable, non_retryable, timed_out, cancelled] =
            self.finished.each_ref().map(|n| n.load(Ordering::Relaxed));
        Finished {
            completed: ok,
            failed: retryable + non_retryable,
            timed_out,
            cancelled,
        }
    }

    /// Prometheus text exposition of edgeflow's own metrics.
    pub fn render(&self) -> String {
        crate::ops::render_registry(&self.registry)
    }
}

/// The activity interceptor; one per worker, all sharing one [`Metrics`]. Install it with
/// [`plugin`], so it runs inside the SDK's OpenTelemetry interceptor.
pub struct ObserveActivities(pub Arc<Metrics>);

/// [`ObserveActivities`] as a worker plugin. Plugins from the client (the OpenTelemetry one)
/// wrap those of the worker, so this one sees the attempt's trace context.
pub fn plugin(metrics: Arc<Metrics>) -> temporalio_sdk::SimplePlugin {
    temporalio_sdk::SimplePlugin::builder("edgeflow-observe")
        .activity_inbound_interceptors(vec![
            Arc::new(ObserveActivities(metrics)) as Arc<dyn ActivityInboundInterceptor>
        ])
        .build()
}

/// The attempt's log span. Call it where the attempt's OpenTelemetry context is current.
fn attempt_span(info: &temporalio_sdk::activities::ActivityInfo) -> tracing::Span {
    let span = tracing::info_span!(
        target: LOG_TARGET,
        "activity",
        workflow_id = info.workflow_id.as_deref().unwrap_or(""),
        run_id = info.workflow_run_id.as_deref().unwrap_or(""),
        activity_type = %info.activity_type,
        attempt = info.attempt,
        task_queue = %info.task_queue,
        trace_id = Empty,
        edge_request_id = Empty,
        edge_subject = Empty,
    );
    let context = opentelemetry::Context::current();
    let ids = context.span().span_context().clone();
    if ids.is_valid() {
        span.record("trace_id", tracing::field::display(ids.trace_id()));
    }
    let baggage = context.baggage();
    for field in BAGGAGE_FIELDS {
        if let Some(value) = baggage.get(field) {
            let value = value.as_str();
            let cut = value.floor_char_boundary(MAX_BAGGAGE_VALUE.min(value.len()));
            span.record(field, &value[..cut]);
        }
    }
    span
}

impl ActivityInboundInterceptor for ObserveActivities {
    fn execute_activity<'a>(
        &'a self,
        input: ExecuteActivityInput,
        next: Next<'a, ExecuteActivityInput, ExecuteActivityOutput<'a>>,
    ) -> ExecuteActivityOutput<'a> {
        let metrics = self.0.clone();
        async move {
            // Inside the returned future: the OpenTelemetry interceptor makes the attempt's
            // context current only while it polls it.
            let info = input.activity_info();
            let span = attempt_span(info);
            let (activity, task_queue) = (info.activity_type.clone(), info.task_queue.clone());
            let deadline = info.deadline;
            async move {
                metrics.started(&task_queue, 1);
                let started = Instant::now();
                let result = next.run(input).await;
                let outcome = Outcome::of(&result, deadline, SystemTime::now());
                metrics.started(&task_queue, -1);
                metrics.record(&activity, outcome, started.elapsed());
                match (&result, outcome) {
                    (Err(ActivityError::Application(failure)), _)
                        if outcome != Outcome::TimedOut =>
                    {
                        tracing::warn!(
                            outcome = outcome.as_str(),
                            failure_type = failure.type_name().unwrap_or(""),
                            error = %failure.source_error(),
                            "activity attempt failed"
                        )
                    }
                    (_, Outcome::TimedOut) => tracing::warn!(
                        outcome = outcome.as_str(),
                        "activity attempt ended after its deadline; Temporal has timed it out"
                    ),
                    _ => tracing::debug!(outcome = outcome.as_str(), "activity attempt ended"),
                }
                result
            }
            .instrument(span)
            .await
        }
        .boxed()
    }
}

/// `edgeflow_workflow_signals_dropped_total`: signals a workflow dropped because their payload
/// broke the input rules (counted by the workflows themselves, see `edgeflow_workflows::dropped`).
pub fn render_dropped_signals() -> String {
    let mut out = String::from(
        "# HELP edgeflow_workflow_signals_dropped_total Signals dropped because their payload broke the input rules, by workflow type and signal.\n\
         # TYPE edgeflow_workflow_signals_dropped_total counter\n",
    );
    for (workflow, signal, n) in edgeflow_workflows::dropped::signals() {
        out.push_str(&format!(
            "edgeflow_workflow_signals_dropped_total{{workflow=\"{workflow}\",signal=\"{signal}\"}} {n}\n"
        ));
    }
    out
}

/// `edgeflow_edge_activity_failures_total{reason}`: edge activity attempts that got no answer
/// from a handler (the edge refused the token or the name, failed, or was not reached in time).
/// Every reason is served from the start, at 0, so alert rules always have a series to read.
pub fn render_edge_failures() -> String {
    let mut out = String::from(
        "# HELP edgeflow_edge_activity_failures_total Edge activity attempts the edge did not answer with a handler's result (401, 404, 5xx, connection, timeout), by reason.\n\
         # TYPE edgeflow_edge_activity_failures_total counter\n",
    );
    for (reason, n) in edgeflow_activities::edge::failure_counts() {
        out.push_str(&format!(
            "edgeflow_edge_activity_failures_total{{reason=\"{reason}\"}} {n}\n"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_by_family_and_outcome() {
        let m = Metrics::new();
        m.record(
            "http.call",
            Outcome::Ok,
            std::time::Duration::from_millis(12),
        );
        m.record(
            "http.call",
            Outcome::Retryable,
            std::time::Duration::from_millis(3),
        );
        m.record(
            "echo",
            Outcome::Cancelled,
            std::time::Duration::from_millis(3),
        );
        let text = m.render();
        assert!(
            text.contains(r#"edgeflow_activity_executions_total{family="http",activity="http.call",outcome="ok"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"outcome="retryable"} 1"#), "{text}");
        assert!(
            text.contains(
                r#"edgeflow_activity_duration_seconds_count{family="echo",outcome="cancelled"} 1"#
            ),
            "{text}"
        );
        assert!(!text.contains("# EOF"));
        assert_eq!(
            m.finished(),
            Finished {
                completed: 1,
                failed: 1,
                timed_out: 0,
                cancelled: 1
            }
        );
    }
}
