//! `webhook.notify` input and output, and the completion event ([`CompletionEvent`]): the
//! contract with workflows and with the edge that verifies the events (`edgeflow schema export`
//! writes its JSON Schema, from which the edge's type is checked).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Event type sent when a workflow completed.
pub const WORKFLOW_COMPLETED: &str = "workflow.completed";
/// Event type sent when a workflow failed.
pub const WORKFLOW_FAILED: &str = "workflow.failed";

/// Deliver one event to a named endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookNotifyInput {
    /// Step key, unique within the workflow; with the workflow id it derives the
    /// `webhook-id`, identical on every retry so receivers can drop duplicates.
    pub step: String,
    /// Endpoint name, as configured under `[webhooks.NAME]`.
    pub endpoint: String,
    /// Event type, e.g. `workflow.completed`, `workflow.failed`, `order.progress`
    /// (`[a-z0-9_.-]`, at most 100 characters).
    #[serde(rename = "type")]
    pub event_type: String,
    /// The event's `data`: any JSON value (for completion events, a [`WorkflowCompletion`]).
    #[serde(default)]
    pub data: Value,
}

/// What the endpoint answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WebhookNotifyOutput {
    /// The `webhook-id` sent.
    pub webhook_id: String,
    /// The endpoint's 2xx status.
    pub status: u16,
}

/// How a workflow ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CompletionStatus {
    /// Returned a result.
    Completed,
    /// Failed.
    Failed,
}

/// An error, as a completion event carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CompletionError {
    /// What went wrong.
    pub message: String,
}

/// `data` of `workflow.completed` / `workflow.failed` events (the edge relies on this shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WorkflowCompletion {
    /// Workflow id.
    pub workflow_id: String,
    /// Run id.
    pub run_id: String,
    /// Workflow type name.
    pub workflow_type: String,
    /// `completed` or `failed`.
    pub status: CompletionStatus,
    /// The workflow's result when completed, else null.
    pub result: Option<Value>,
    /// The error when failed, else null.
    pub error: Option<CompletionError>,
}

/// The body of a `workflow.completed` / `workflow.failed` event, as `webhook.notify` posts it and
/// the edge receives it (`edge/src/webhook.ts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CompletionEvent {
    /// `workflow.completed` or `workflow.failed`.
    #[serde(rename = "type")]
    #[schemars(extend("enum" = [WORKFLOW_COMPLETED, WORKFLOW_FAILED]))]
    pub event_type: String,
    /// When the workflow scheduled the notification (RFC 3339, UTC), so the body is the same on
    /// every retry.
    #[schemars(extend("format" = "date-time"))]
    pub timestamp: String,
    /// The run that ended and how; its ids are always the sending run's own.
    pub data: WorkflowCompletion,
}

impl WorkflowCompletion {
    /// The event type for this completion.
    pub fn event_type(&self) -> &'static str {
        match self.status {
            CompletionStatus::Completed => WORKFLOW_COMPLETED,
            CompletionStatus::Failed => WORKFLOW_FAILED,
        }
    }
}

impl WebhookNotifyInput {
    /// A `workflow.completed` / `workflow.failed` event for `endpoint`.
    pub fn completion(
        step: impl Into<String>,
        endpoint: impl Into<String>,
        completion: &WorkflowCompletion,
    ) -> Self {
        Self {
            step: step.into(),
            endpoint: endpoint.into(),
            event_type: completion.event_type().to_owned(),
            data: serde_json::to_value(completion).unwrap_or(Value::Null),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_completion_event_schema_names_both_types() {
        let schema = serde_json::to_value(schemars::schema_for!(CompletionEvent)).unwrap();
        assert_eq!(
            schema["properties"]["type"]["enum"],
            serde_json::json!([WORKFLOW_COMPLETED, WORKFLOW_FAILED])
        );
        assert_eq!(
            schema["required"],
            serde_json::json!(["type", "timestamp", "data"])
        );
    }

    #[test]
    fn completion_data_has_the_shape_the_edge_expects() {
        let c = WorkflowCompletion {
            workflow_id: "wf".into(),
            run_id: "run".into(),
            workflow_type: "OrderWorkflow".into(),
            status: CompletionStatus::Failed,
            result: None,
            error: Some(CompletionError {
                message: "card declined".into(),
            }),
        };
        let input = WebhookNotifyInput::completion("notify", "edge", &c);
        assert_eq!(input.event_type, "workflow.failed");
        assert_eq!(
            input.data,
            serde_json::json!({
                "workflow_id": "wf", "run_id": "run", "workflow_type": "OrderWorkflow",
                "status": "failed", "result": null, "error": {"message": "card declined"}
            })
        );
    }
}
