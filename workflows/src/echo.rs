//! `echo`: one `echo` activity, its result returned as the workflow's result.
//!
//! A deployment check and the benchmarks' no-op workload.

use std::time::Duration;

use edgeflow_activities::Untrusted;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use temporalio_common::ActivityError;
use temporalio_macros::{activity_definitions, workflow, workflow_methods};
use temporalio_sdk::{ActivityOptions, WorkflowContext, WorkflowResult};

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

pub struct EchoActivity;

/// The `echo` activity's definition, for the worker that implements it.
pub use echo_activity::Echo as EchoDefinition;

#[activity_definitions]
impl EchoActivity {
    #[activity(name = "echo")]
    pub fn echo(input: EchoInput) -> Result<serde_json::Value, ActivityError> {
        unimplemented!()
    }
}

#[workflow]
#[derive(Default)]
pub struct EchoWorkflow;

#[workflow_methods]
impl EchoWorkflow {
    #[run(name = "echo")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: Untrusted<EchoInput>,
    ) -> WorkflowResult<serde_json::Value> {
        let input = crate::accept(input)?;
        // The activity may hold for `delay_ms`; give it that plus a margin to answer.
        let timeout =
            Duration::from_millis(input.delay_ms.min(MAX_DELAY_MS)) + Duration::from_secs(30);
        let opts = ActivityOptions::with_start_to_close_timeout(timeout)
            .heartbeat_timeout(Duration::from_secs(10))
            .build();
        Ok(ctx
            .execute_activity(EchoActivity::echo, input, opts)
            .await?)
    }
}
