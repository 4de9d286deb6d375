//! A stand-in for a next build whose `order` cannot replay this build's histories: one timer
//! first, where `order` starts with its settings marker. The worker registers it in place of
//! `order` only in debug builds and only when `EDGEFLOW_TEST_INCOMPATIBLE_ORDER` is set, so the
//! upgrade test (`tests/it/versioning.rs`) can prove that pinned runs never meet it.

use std::time::Duration;

use serde_json::{Value, json};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{WorkflowContext, WorkflowResult};

#[workflow]
#[derive(Default)]
pub struct IncompatibleOrder;

#[workflow_methods]
impl IncompatibleOrder {
    #[run(name = "order")]
    pub async fn run(ctx: &mut WorkflowContext<Self>, input: Value) -> WorkflowResult<Value> {
        ctx.timer(Duration::from_millis(10)).await;
        Ok(json!({
            "order_id": input.get("order_id").cloned().unwrap_or(Value::Null),
            "status": "completed",
            "completed_by": "incompatible-order",
        }))
    }
}
