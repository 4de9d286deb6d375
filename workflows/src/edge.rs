//! Typed helpers for the edge's activities (`edge.*`, run by the edge Worker on `<queue>.edge`).
//!
//! The activity types come from the edge's manifest ([`edgeflow_activities::edge`], generated at
//! build time, input and output JSON values); these wrap the ones workflows use in Rust types,
//! and a test checks that what they send is valid against the manifest's schema, so a change at
//! the edge breaks the build or the tests here, not a running order.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use edgeflow_activities::edge;
use serde::{Deserialize, Serialize};
use temporalio_common::RetryPolicy;
use temporalio_sdk::{ActivityExecutionError, ActivityOptions, WorkflowContext};

/// `edge.kv.put`'s input: `value` stored under `key` in the edge's activity KV namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KvPut {
    pub key: String,
    pub value: String,
    /// Workers KV expires the key after this long (at least 60 s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration_ttl_secs: Option<u64>,
}

/// `edge.kv.put`'s output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KvPutOutput {
    pub key: String,
}

/// Options for an edge activity on `edge_task_queue` (`<queue>.edge`): each attempt bounded by
/// `attempt` (at most the worker's `[edge_activities] max_attempt_secs`, or it is refused),
/// heartbeating so a cancellation reaches the edge, retried `max_attempts` times (0: no limit).
pub fn options(
    edge_task_queue: impl Into<String>,
    attempt: Duration,
    max_attempts: u32,
) -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(attempt)
        .task_queue(edge_task_queue.into())
        .heartbeat_timeout(Duration::from_secs(10).min(attempt))
        .retry_policy(
            RetryPolicy::builder()
                .initial_interval(Duration::from_secs(1))
                .maximum_interval(Duration::from_secs(60))
                .maximum_attempts(max_attempts)
                .build(),
        )
        .build()
}

/// Runs `edge.kv.put`.
pub async fn kv_put<W>(
    ctx: &WorkflowContext<W>,
    input: &KvPut,
    options: ActivityOptions,
) -> Result<KvPutOutput, ActivityExecutionError> {
    let input = serde_json::to_value(input).unwrap_or_default();
    let output = ctx.execute_activity(edge::KvPut, input, options).await?;
    // The worker has checked the output against the manifest's schema, which this type follows
    // (tested below); a stray field is ignored rather than failing the workflow task.
    Ok(
        serde_json::from_value(output.clone()).unwrap_or(KvPutOutput {
            key: output["key"].as_str().unwrap_or_default().to_string(),
        }),
    )
}

/// RFC 3339 in UTC with milliseconds (`2026-12-06T11:42:37.123Z`), for values written to the
/// edge from workflow time (the SDK's deterministic clock).
pub fn rfc3339(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (days, secs) = (since.as_secs() / 86_400, since.as_secs() % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validator(schema: &str) -> jsonschema::Validator {
        jsonschema::validator_for(&serde_json::from_str(schema).unwrap()).unwrap()
    }

    #[test]
    fn kv_put_follows_the_edges_schemas() {
        let spec = edge::find("edge.kv.put").expect("the edge declares kv.put");
        let input = validator(spec.input_schema);
        for put in [
            KvPut {
                key: "order-status/o-1".into(),
                value: r#"{"status":"completed"}"#.into(),
                expiration_ttl_secs: None,
            },
            KvPut {
                key: "k".into(),
                value: String::new(),
                expiration_ttl_secs: Some(3600),
            },
        ] {
            let value = serde_json::to_value(&put).unwrap();
            assert!(input.is_valid(&value), "{value}");
        }
        let output = validator(spec.output_schema);
        let answer = serde_json::json!({ "key": "k" });
        assert!(output.is_valid(&answer));
        assert_eq!(
            serde_json::from_value::<KvPutOutput>(answer).unwrap().key,
            "k"
        );
    }

    #[test]
    fn rfc3339_dates() {
        let at = |ms: u64| rfc3339(UNIX_EPOCH + Duration::from_millis(ms));
        assert_eq!(at(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(at(1_796_557_357_123), "2026-12-06T11:42:37.123Z");
    }
}
