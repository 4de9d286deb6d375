//! `report`: run a named read query and email its rows. Scheduled from settings
//! (`[schedules.NAME]`, see `edgeflow schedules sync`), e.g. a nightly summary of orders.

use std::time::Duration;

use edgeflow_activities::Activity;
use edgeflow_activities::Untrusted;
use edgeflow_activities::db::{DbExecuteInput, DbStatementCall};
use edgeflow_activities::email::EmailSendInput;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use temporalio_common::RetryPolicy;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{ActivityOptions, WorkflowContext, WorkflowResult};

/// What to report and to whom.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportInput {
    /// Heading of the email.
    #[schemars(length(min = 1, max = 200))]
    pub title: String,
    /// A named statement under `config/queries/` (a read).
    pub query: String,
    /// Its parameters.
    #[serde(default)]
    pub params: Map<String, Value>,
    /// Who gets the report.
    #[schemars(length(min = 1))]
    pub recipients: Vec<String>,
}

/// What was sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReportResult {
    pub rows: usize,
    pub message_id: String,
}

fn options() -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(60))
        .retry_policy(
            RetryPolicy::builder()
                .initial_interval(Duration::from_secs(1))
                .maximum_interval(Duration::from_secs(60))
                .maximum_attempts(20)
                .build(),
        )
        .build()
}

#[workflow]
#[derive(Default)]
pub struct ReportWorkflow;

#[workflow_methods]
impl ReportWorkflow {
    #[run(name = "report")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: Untrusted<ReportInput>,
    ) -> WorkflowResult<ReportResult> {
        let input = crate::accept(input)?;
        let queried = ctx
            .execute_activity(
                Activity::db_execute,
                DbExecuteInput {
                    step: "report-query".to_string(),
                    statements: vec![DbStatementCall {
                        name: input.query.clone(),
                        params: input.params.clone(),
                    }],
                },
                options(),
            )
            .await?;
        let result = queried.results.into_iter().next();
        let (rows, truncated) = result.map(|r| (r.rows, r.truncated)).unwrap_or_default();
        let vars = json!({
            "title": input.title,
            "query": input.query,
            "rows": rows,
            "row_count": rows.len(),
            "truncated": truncated,
        });
        let sent = ctx
            .execute_activity(
                Activity::email_send,
                EmailSendInput {
                    step: "report-email".to_string(),
                    template: "report".to_string(),
                    to: input.recipients.clone(),
                    cc: vec![],
                    bcc: vec![],
                    reply_to: None,
                    vars: match vars {
                        Value::Object(map) => map,
                        _ => Map::new(),
                    },
                },
                options(),
            )
            .await?;
        Ok(ReportResult {
            rows: rows.len(),
            message_id: sent.message_id,
        })
    }
}
