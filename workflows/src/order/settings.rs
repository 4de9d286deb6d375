//! `[workflows.order]`: the settings each run reads once, at its start, through the
//! `settings.order` local activity (so they are recorded in its history), and the activity
//! options they turn into.

use std::time::Duration;

use edgeflow_activities::http::HttpMethod;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use temporalio_common::RetryPolicy;
use temporalio_sdk::ActivityOptions;

use super::contract::{Compensation, Job};

/// `[workflows.order]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderSettings {
    /// Orders at or above this amount (minor units) wait for `approve` or `reject`.
    pub approval_threshold_cents: u64,
    /// Without a decision after this long, the approvers are emailed.
    pub approval_escalate_after_secs: u64,
    /// Without a decision this long after the escalation, the order is rejected.
    pub approval_timeout_secs: u64,
    /// Who gets the escalation email.
    pub approvers_email: String,
    /// Public base URL of the edge, for the links in the escalation email.
    pub edge_url: String,
    /// `[webhooks.NAME]` that receives the completion event.
    pub completion_webhook: String,
    pub reserve_inventory: JobSettings,
    pub charge_payment: JobSettings,
    pub notify_shipping: JobSettings,
    /// Undoes `reserve_inventory`.
    pub release_inventory: JobSettings,
    /// Undoes `charge_payment`.
    pub refund_payment: JobSettings,
    /// Task queue of the `edge.kv.put` that writes the order's customer-facing status hint
    /// (`order-status/<reference>` in the edge's activity KV). Filled in by the worker
    /// (`<queue>.edge`) when `[edge_activities]` is set; absent, no hint is written, so orders
    /// run the same with the edge's activities off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_hint_task_queue: Option<String>,
}

impl OrderSettings {
    pub fn job(&self, job: Job) -> &JobSettings {
        match job {
            Job::ReserveInventory => &self.reserve_inventory,
            Job::ChargePayment => &self.charge_payment,
            Job::NotifyShipping => &self.notify_shipping,
        }
    }

    pub fn compensation(&self, compensation: Compensation) -> &JobSettings {
        match compensation {
            Compensation::RefundPayment => &self.refund_payment,
            Compensation::ReleaseInventory => &self.release_inventory,
        }
    }
}

/// One background job: an `http.call` with its own timeout and retry policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobSettings {
    /// `[services.NAME]` to call.
    pub service: String,
    pub method: HttpMethod,
    /// Path below the service's base URL; `{order_id}` is filled in.
    pub path: String,
    /// Limit of one attempt.
    pub timeout_secs: u64,
    /// Attempts before the job fails for good (0 = unlimited).
    pub max_attempts: u32,
    pub initial_retry_secs: u64,
    pub max_retry_secs: u64,
    /// Task queue of the call: the service's own queue, filled in by the worker (absent: the
    /// workflow's queue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_queue: Option<String>,
}

/// A lost attempt (a worker killed mid-call) is noticed after this long without a heartbeat,
/// instead of after its whole start-to-close timeout. Activities heartbeat every third of it.
pub(crate) const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(5);

impl JobSettings {
    pub(crate) fn options(&self) -> ActivityOptions {
        let timeout = Duration::from_secs(self.timeout_secs);
        ActivityOptions::with_start_to_close_timeout(timeout)
            .maybe_task_queue(self.task_queue.clone())
            .heartbeat_timeout(HEARTBEAT_TIMEOUT.min(timeout))
            .retry_policy(
                RetryPolicy::builder()
                    .initial_interval(Duration::from_secs(self.initial_retry_secs.max(1)))
                    .maximum_interval(Duration::from_secs(self.max_retry_secs.max(1)))
                    .maximum_attempts(self.max_attempts)
                    .build(),
            )
            .build()
    }
}

/// Options of the steps that are not background jobs: retried without limit (a database or mail
/// server that is down comes back), each attempt bounded.
pub(crate) fn step_options(timeout_secs: u64) -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(timeout_secs))
        .heartbeat_timeout(HEARTBEAT_TIMEOUT)
        .retry_policy(
            RetryPolicy::builder()
                .initial_interval(Duration::from_secs(1))
                .maximum_interval(Duration::from_secs(60))
                .build(),
        )
        .build()
}
