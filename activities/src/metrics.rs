//! edgeflow's own activity metrics: how many calls, how they ended, how long they took.
//!
//! Two families, both labelled `family` (`http`, `db`, `email`, `webhook`) and `outcome` (`ok`,
//! `retryable`, `non_retryable`, `cancelled`):
//! - `edgeflow_activity_calls_total` (counter),
//! - `edgeflow_activity_duration_seconds` (histogram, 5 ms to ~82 s).
//!
//! The SDK's own metrics (task latencies, slots) are separate; these say what the activities did.

use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family as MetricFamily;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Which activity family a measurement belongs to.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Family {
    /// `http.call`
    Http,
    /// `db.execute`
    Db,
    /// `email.send`
    Email,
    /// `webhook.notify`
    Webhook,
}

impl Family {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Http => "http",
            Family::Db => "db",
            Family::Email => "email",
            Family::Webhook => "webhook",
        }
    }
}

/// How an activity call ended.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Outcome {
    /// Completed.
    Ok,
    /// Failed; Temporal will retry.
    Retryable,
    /// Failed for good.
    NonRetryable,
    /// Cancelled by Temporal.
    Cancelled,
}

impl Outcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Retryable => "retryable",
            Outcome::NonRetryable => "non_retryable",
            Outcome::Cancelled => "cancelled",
        }
    }
}

impl EncodeLabelValue for Family {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    family: Family,
    outcome: Outcome,
}

fn latency_histogram() -> Histogram {
    // 5 ms … 81.92 s, doubling.
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

/// Counters and histograms every activity records into. Cheap to clone (shared storage).
#[derive(Debug, Clone)]
pub struct ActivityMetrics {
    calls: MetricFamily<Labels, Counter>,
    duration: MetricFamily<Labels, Histogram, fn() -> Histogram>,
}

impl Default for ActivityMetrics {
    fn default() -> Self {
        Self {
            calls: MetricFamily::default(),
            duration: MetricFamily::new_with_constructor(latency_histogram),
        }
    }
}

impl ActivityMetrics {
    /// Create the metrics and register them in `registry` (which the binary serves on
    /// `/metrics`). Register into the root registry: the names already start with `edgeflow_`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "edgeflow_activity_calls",
            "Activity executions by family and outcome",
            metrics.calls.clone(),
        );
        registry.register(
            "edgeflow_activity_duration_seconds",
            "Activity execution time by family and outcome",
            metrics.duration.clone(),
        );
        metrics
    }

    /// Metrics that are recorded but not exported (tests, tools).
    pub fn unregistered() -> Self {
        Self::default()
    }

    /// Record one finished call.
    pub fn record(&self, family: Family, outcome: Outcome, elapsed: Duration) {
        let labels = Labels { family, outcome };
        self.calls.get_or_create(&labels).inc();
        self.duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// How many calls of `family` ended with `outcome` so far.
    pub fn calls(&self, family: Family, outcome: Outcome) -> u64 {
        self.calls
            .get(&Labels { family, outcome })
            .map(|c| c.get())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    #[test]
    fn records_are_exported_with_family_and_outcome_labels() {
        let mut registry = Registry::default();
        let metrics = ActivityMetrics::register(&mut registry);
        metrics.record(Family::Http, Outcome::Ok, Duration::from_millis(12));
        metrics.record(Family::Http, Outcome::Ok, Duration::from_millis(30));
        metrics.record(Family::Db, Outcome::NonRetryable, Duration::from_millis(3));
        assert_eq!(metrics.calls(Family::Http, Outcome::Ok), 2);
        assert_eq!(metrics.calls(Family::Email, Outcome::Ok), 0);

        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(r#"edgeflow_activity_calls_total{family="http",outcome="ok"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"edgeflow_activity_calls_total{family="db",outcome="non_retryable"} 1"#
            )
        );
        assert!(
            text.contains(
                r#"edgeflow_activity_duration_seconds_count{family="http",outcome="ok"} 2"#
            )
        );
    }
}
