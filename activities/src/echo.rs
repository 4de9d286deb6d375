//! `echo`: returns its input, optionally after a delay. A deployment check and the benchmarks'
//! no-op workload; the `echo` and `fanout` workflows call it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use temporalio_common::ActivityError;
use temporalio_macros::activity_definitions;

/// Input of the `echo` activity and workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EchoInput {
    /// Any JSON value; returned unchanged.
    pub message: serde_json::Value,
    /// How long the activity holds before answering, in milliseconds (at most one hour).
    #[serde(default)]
    #[schemars(range(max = 3_600_000))]
    pub delay_ms: u64,
}

/// The longest delay `echo` accepts, so a typo can't pin an activity slot for days.
pub const MAX_DELAY_MS: u64 = 3_600_000;

/// The `echo` activity as workflows see it: `ctx.execute_activity(EchoActivity::echo, …)`.
pub struct EchoActivity;

/// The `echo` activity's definition, which [`EchoActivities`] implements.
pub use echo_activity::Echo;

#[activity_definitions]
impl EchoActivity {
    #[activity(name = "echo")]
    pub fn echo(input: EchoInput) -> Result<serde_json::Value, ActivityError> {
        unimplemented!()
    }
}

#[cfg(feature = "runtime")]
pub use runtime::EchoActivities;

#[cfg(feature = "runtime")]
mod runtime {
    use std::sync::Arc;
    use std::time::Duration;

    use temporalio_macros::activities;
    use temporalio_sdk::ApplicationFailure;
    use temporalio_sdk::activities::{ActivityContext, ActivityError};

    use super::{EchoInput, MAX_DELAY_MS};

    /// `echo`: returns its input, optionally after a delay that heartbeats every second and ends
    /// early, as cancelled, when Temporal or a shutdown cancels the activity.
    pub struct EchoActivities;

    #[activities]
    impl EchoActivities {
        #[activity(definition = super::Echo)]
        pub async fn echo(
            self: Arc<Self>,
            ctx: ActivityContext,
            input: EchoInput,
        ) -> Result<serde_json::Value, ActivityError> {
            if input.delay_ms > MAX_DELAY_MS {
                return Err(ActivityError::application(
                    ApplicationFailure::non_retryable(format!(
                        "delay_ms {} is above the maximum of {MAX_DELAY_MS}",
                        input.delay_ms
                    )),
                ));
            }
            tracing::info!(delay_ms = input.delay_ms, "echo");
            let deadline = tokio::time::Instant::now() + Duration::from_millis(input.delay_ms);
            while tokio::time::Instant::now() < deadline {
                let step = deadline
                    .saturating_duration_since(tokio::time::Instant::now())
                    .min(Duration::from_secs(1));
                tokio::select! {
                    _ = tokio::time::sleep(step) => {}
                    _ = ctx.cancelled() => return Err(ActivityError::cancelled()),
                }
                // Heartbeats carry Temporal's cancellation requests back to a long activity.
                let _ = ctx.record_heartbeat(()).await;
            }
            Ok(input.message)
        }
    }
}
