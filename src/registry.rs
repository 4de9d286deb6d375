//! What the worker registers: every workflow and every activity family, in one place.

use std::sync::Arc;
use std::time::Duration;

use edgeflow_workflows::echo::{EchoInput, MAX_DELAY_MS};
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::{ApplicationFailure, WorkerOptions, WorkflowRegistrationError};

use crate::settings::Settings;

/// Every workflow this worker runs.
pub fn register_workflows(options: &mut WorkerOptions) -> Result<(), WorkflowRegistrationError> {
    options.register_workflow::<edgeflow_workflows::EchoWorkflow>()?;
    Ok(())
}

/// The activity families, built once from settings and shared by every task queue.
pub struct Activities {}

impl Activities {
    pub async fn from_settings(_settings: &Settings) -> anyhow::Result<Self> {
        Ok(Self {})
    }

    pub fn register(&self, options: &mut WorkerOptions) {
        options.register_activities(EchoActivities);
    }
}

/// `echo`: returns its input, optionally after a delay that heartbeats every second and ends
/// early, as cancelled, when Temporal or a shutdown cancels the activity.
pub struct EchoActivities;

#[activities]
impl EchoActivities {
    #[activity(definition = edgeflow_workflows::echo::EchoDefinition)]
    pub async fn echo(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: EchoInput,
    ) -> Result<serde_json::Value, ActivityError> {
        if input.delay_ms > MAX_DELAY_MS {
            return Err(ActivityError::application(ApplicationFailure::non_retryable(format!(
                "delay_ms {} is above the maximum of {MAX_DELAY_MS}",
                input.delay_ms
            ))));
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
