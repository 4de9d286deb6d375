//! What every activity execution leaves behind: a log span, metrics, and the in-flight count.
//!
//! One activity interceptor wraps every activity of every family, so no family repeats it:
//! - a `tracing` span carrying workflow id, run id, activity type and attempt, which every log
//!   line the activity writes inherits;
//! - `edgeflow_activity_executions_total` and `edgeflow_activity_duration_seconds`, labelled by
//!   family (the type name's prefix before the first `.`) and outcome;
//! - the number in flight, which the shutdown drain reports.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use edgeflow_activities::Outcome;
use futures_util::FutureExt;
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

/// How an attempt ended, read from the activity's result (the label values are the families').
fn outcome_of<T>(result: &Result<T, ActivityError>) -> Outcome {
    match result {
        Ok(_) | Err(ActivityError::WillCompleteAsync) => Outcome::Ok,
        Err(ActivityError::Cancelled { .. }) => Outcome::Cancelled,
        Err(ActivityError::Application(f)) if f.is_non_retryable() => Outcome::NonRetryable,
        Err(_) => Outcome::Retryable,
    }
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
    in_flight: Gauge,
    /// Attempts that ended, by outcome, since start: read by the shutdown drain report.
    finished: [AtomicU64; 4],
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
        let in_flight = Gauge::default();
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
            "Activity attempts running now",
            in_flight.clone(),
        );
        Arc::new(Self {
            registry,
            executions,
            latency,
            in_flight,
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
        let slot = match outcome {
            Outcome::Ok => 0,
            Outcome::Retryable => 1,
            Outcome::NonRetryable => 2,
            Outcome::Cancelled => 3,
        };
        self.finished[slot].fetch_add(1, Ordering::Relaxed);
    }

    pub fn in_flight(&self) -> i64 {
        self.in_flight.get()
    }

    /// Attempts finished so far as (ok, retryable, non_retryable, cancelled).
    pub fn finished(&self) -> [u64; 4] {
        [0, 1, 2, 3].map(|i| self.finished[i].load(Ordering::Relaxed))
    }

    /// Prometheus text exposition of edgeflow's own metrics.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode_registry(&mut out, &self.registry).is_err() {
            out.clear();
        }
        // `/metrics` appends this to the SDK's exposition, so the OpenMetrics end marker goes.
        out.lines()
            .filter(|l| *l != "# EOF")
            .map(|l| format!("{l}\n"))
            .collect()
    }
}

/// The activity interceptor; one per worker, all sharing one [`Metrics`].
pub struct ObserveActivities(pub Arc<Metrics>);

impl ActivityInboundInterceptor for ObserveActivities {
    fn execute_activity<'a>(
        &'a self,
        input: ExecuteActivityInput,
        next: Next<'a, ExecuteActivityInput, ExecuteActivityOutput<'a>>,
    ) -> ExecuteActivityOutput<'a> {
        let info = input.activity_info();
        let activity = info.activity_type.clone();
        let span = tracing::info_span!(
            "activity",
            workflow_id = info.workflow_id.as_deref().unwrap_or(""),
            run_id = info.workflow_run_id.as_deref().unwrap_or(""),
            activity_type = %info.activity_type,
            attempt = info.attempt,
            task_queue = %info.task_queue,
        );
        let metrics = self.0.clone();
        async move {
            metrics.in_flight.inc();
            let started = Instant::now();
            let result = next.run(input).await;
            let outcome = outcome_of(&result);
            metrics.in_flight.dec();
            metrics.record(&activity, outcome, started.elapsed());
            match (&result, outcome) {
                (Err(e), Outcome::Retryable | Outcome::NonRetryable) => {
                    tracing::warn!(outcome = outcome.as_str(), error = ?e, "activity attempt failed")
                }
                _ => tracing::debug!(outcome = outcome.as_str(), "activity attempt ended"),
            }
            result
        }
        .instrument(span)
        .boxed()
    }
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
        assert_eq!(m.finished(), [1, 1, 0, 1]);
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
