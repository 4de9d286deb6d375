//! `echo`: one `echo` activity (`edgeflow_activities::echo`), its result returned as the
//! workflow's result.
//!
//! A deployment check and the benchmarks' no-op workload.

use std::time::Duration;

use edgeflow_activities::Untrusted;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{ActivityOptions, WorkflowContext, WorkflowResult};

pub use edgeflow_activities::echo::{EchoActivity, EchoInput, MAX_DELAY_MS};

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
