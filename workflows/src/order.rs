//! `order`: the flagship. A request arrives; the order is recorded and confirmed by email; a
//! large order waits for a human; three background jobs run in parallel with their own retry
//! policies; if one fails for good the others are compensated; the edge hears how it ended.
//!
//! Steps, as the `status` query reports them:
//! 1. `validating`: the input is checked; invalid input fails the run at once (non-retryable).
//! 2. `recording`: `db.execute` of `insert_order` (step `record-order`).
//! 3. `confirming`: `email.send` of `order_confirmation` (step `confirmation-email`).
//! 4. `awaiting_approval` (only at or above `approval_threshold_cents`): the first `approve` or
//!    `reject` signal decides; after `approval_escalate_after_secs` the approvers are emailed,
//!    after `approval_timeout_secs` more the order is rejected. Approval comes before the jobs so
//!    nothing is charged for an order that may be refused.
//! 5. `processing`: `reserve_inventory`, `charge_payment` and `notify_shipping` in parallel, each an
//!    `http.call` with its own timeout and retry policy. If any fails for good, those that
//!    succeeded are compensated in reverse order (`refund_payment`, then `release_inventory`),
//!    each once, and the run fails with a reason a human can read.
//! 6. `notifying`: `webhook.notify` of `workflow.completed` / `workflow.failed` to the edge.
//!
//! Settings (`[workflows.order]`) are read through the `settings.order` local activity at the
//! start of each run, so they are recorded in history: a settings change applies to new runs and
//! never makes a running one nondeterministic.

use std::collections::BTreeMap;
use std::time::Duration;

use edgeflow_activities::Activity;
use edgeflow_activities::db::{DbExecuteInput, DbStatementCall};
use edgeflow_activities::email::EmailSendInput;
use edgeflow_activities::http::{HttpCallInput, HttpCallOutput, HttpMethod};
use edgeflow_activities::webhook::{
    CompletionError, CompletionStatus, WebhookNotifyInput, WorkflowCompletion,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use temporalio_common::{ActivityError, RetryPolicy};
use temporalio_macros::{activity_definitions, workflow, workflow_methods};
use temporalio_sdk::workflows::{join, select};
use temporalio_sdk::{
    ActivityExecutionError, ActivityOptions, ApplicationFailure, LocalActivityOptions,
    SyncWorkflowContext, WorkflowContext, WorkflowContextView, WorkflowResult,
};

/// Patch id of the one behaviour change shipped with the patch API: the confirmation email lists
/// the line items. Runs that recorded the email before the change replay without the list.
pub const PATCH_CONFIRMATION_LISTS_ITEMS: &str = "order-confirmation-lists-items";

/// A request to buy something.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderInput {
    /// The caller's order id: letters, digits, `_` and `-`, at most 64.
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]{1,64}$"))]
    pub order_id: String,
    /// Where the confirmation goes.
    #[schemars(email, length(max = 254))]
    pub customer_email: String,
    /// How the confirmation greets the customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100))]
    pub customer_name: Option<String>,
    /// What is bought: 1 to 100 lines.
    #[schemars(length(min = 1, max = 100))]
    pub items: Vec<LineItem>,
    /// Total in the currency's minor unit; must equal the sum of the lines.
    #[schemars(range(min = 1))]
    pub amount_cents: u64,
    /// ISO 4217 code, e.g. `EUR`.
    #[schemars(regex(pattern = r"^[A-Z]{3}$"))]
    pub currency: String,
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LineItem {
    #[schemars(length(min = 1, max = 64))]
    pub sku: String,
    /// Display name for emails (default: the SKU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 200))]
    pub name: Option<String>,
    #[schemars(range(min = 1, max = 1000))]
    pub quantity: u32,
    pub unit_price_cents: u64,
}

impl OrderInput {
    /// Every problem with the order, each naming its field; empty when valid. The same rules as
    /// the JSON Schema the edge checks, plus the ones a schema can't say (the total).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let id_ok = !self.order_id.is_empty()
            && self.order_id.len() <= 64
            && self
                .order_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !id_ok {
            out.push("order_id: 1 to 64 letters, digits, `_` or `-`".to_string());
        }
        if !plausible_email(&self.customer_email) {
            out.push(format!(
                "customer_email: `{}` is not an email address",
                self.customer_email
            ));
        }
        if self.items.is_empty() || self.items.len() > 100 {
            out.push("items: 1 to 100 lines".to_string());
        }
        for (i, item) in self.items.iter().enumerate() {
            if item.sku.is_empty() || item.sku.len() > 64 {
                out.push(format!("items[{i}].sku: 1 to 64 characters"));
            }
            if item.quantity == 0 || item.quantity > 1000 {
                out.push(format!("items[{i}].quantity: 1 to 1000"));
            }
        }
        if self.currency.len() != 3 || !self.currency.chars().all(|c| c.is_ascii_uppercase()) {
            out.push(format!(
                "currency: `{}` is not a three-letter ISO 4217 code",
                self.currency
            ));
        }
        let total = self.items.iter().try_fold(0u64, |sum, i| {
            i.unit_price_cents
                .checked_mul(u64::from(i.quantity))
                .and_then(|l| sum.checked_add(l))
        });
        match total {
            _ if self.amount_cents == 0 => out.push("amount_cents: must be at least 1".to_string()),
            Some(t) if t == self.amount_cents => {}
            Some(t) => out.push(format!(
                "amount_cents: {} does not equal the lines' total {t}",
                self.amount_cents
            )),
            None => out.push("items: the total overflows".to_string()),
        }
        out
    }

    fn display_total(&self) -> String {
        format!(
            "{}.{:02} {}",
            self.amount_cents / 100,
            self.amount_cents % 100,
            self.currency
        )
    }
}

fn plausible_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && s.len() <= 254
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
        && !domain.contains('@')
}

/// Payload of the `approve` and `reject` signals. The edge sets `approver` to the verified caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalDecision {
    /// Who decided (the edge fills in the caller's subject).
    #[schemars(length(min = 1, max = 200))]
    pub approver: String,
    /// Why, for the audit trail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1000))]
    pub reason: Option<String>,
}

/// Where an order is, for the `status` query.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OrderStatus {
    /// `validating`, `recording`, `confirming`, `awaiting_approval`, `processing`,
    /// `compensating`, `notifying`, `completed` or `failed`.
    pub step: String,
    /// Each background job's state: `pending`, `running`, `done`, `failed` or `compensated`.
    pub jobs: BTreeMap<String, String>,
    pub approval: ApprovalState,
}

/// The human decision, if one is needed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ApprovalState {
    /// Below the threshold (or not decided yet whether one is needed).
    #[default]
    NotRequired,
    Waiting,
    /// Waiting, and the approvers have been emailed.
    Escalated,
    Approved {
        approver: String,
        reason: Option<String>,
    },
    Rejected {
        approver: String,
        reason: Option<String>,
    },
    /// Nobody decided in time; rejected automatically.
    TimedOut,
}

/// What a completed order returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OrderResult {
    pub order_id: String,
    pub status: String,
    /// Each job's JSON answer, by job name.
    pub jobs: BTreeMap<String, serde_json::Value>,
    pub approval: ApprovalState,
}

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

impl JobSettings {
    fn options(&self) -> ActivityOptions {
        ActivityOptions::with_start_to_close_timeout(Duration::from_secs(self.timeout_secs))
            .maybe_task_queue(self.task_queue.clone())
            .heartbeat_timeout(Duration::from_secs(self.timeout_secs.max(10)))
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

/// The worker-side activities the order workflow needs besides the four families.
pub struct OrderActivity;

#[activity_definitions]
impl OrderActivity {
    /// Returns `[workflows.order]` from the worker's settings (a local activity).
    #[activity(name = "settings.order")]
    pub fn settings(input: ()) -> Result<OrderSettings, ActivityError> {
        unimplemented!()
    }
}

/// The `settings.order` definition, for the worker that implements it.
pub use order_activity::Settings as OrderSettingsDefinition;

/// Default options of the steps that are not background jobs.
fn step_options(timeout_secs: u64) -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(timeout_secs))
        .retry_policy(
            RetryPolicy::builder()
                .initial_interval(Duration::from_secs(1))
                .maximum_interval(Duration::from_secs(60))
                .build(),
        )
        .build()
}

const JOBS: [&str; 3] = ["reserve_inventory", "charge_payment", "notify_shipping"];

#[workflow]
#[derive(Default)]
pub struct OrderWorkflow {
    status: OrderStatus,
    decision: Option<(bool, ApprovalDecision)>,
}

#[workflow_methods]
impl OrderWorkflow {
    #[run(name = "order")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: OrderInput,
    ) -> WorkflowResult<OrderResult> {
        let settings = ctx
            .execute_local_activity(
                OrderActivity::settings,
                (),
                LocalActivityOptions::builder()
                    .start_to_close_timeout(Duration::from_secs(10))
                    .build(),
            )
            .await?;
        let outcome = Self::process(ctx, &input, &settings).await;

        set_step(ctx, "notifying");
        let (workflow_id, run_id) = {
            let info = ctx.info();
            (info.workflow_id().to_string(), info.run_id().to_string())
        };
        let completion = WorkflowCompletion {
            workflow_id,
            run_id,
            workflow_type: "order".to_string(),
            status: if outcome.is_ok() {
                CompletionStatus::Completed
            } else {
                CompletionStatus::Failed
            },
            result: outcome
                .as_ref()
                .ok()
                .map(|r| serde_json::to_value(r).unwrap_or_default()),
            error: outcome.as_ref().err().map(|message| CompletionError {
                message: message.clone(),
            }),
        };
        let notified = ctx
            .execute_activity(
                Activity::webhook_notify,
                WebhookNotifyInput {
                    step: "completion".to_string(),
                    endpoint: settings.completion_webhook.clone(),
                    event_type: completion.event_type().to_string(),
                    data: serde_json::to_value(&completion).unwrap_or_default(),
                },
                // Keep trying for about a day: the edge falls back to Temporal's own record
                // meanwhile, and the order's outcome does not depend on the webhook.
                ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
                    .retry_policy(
                        RetryPolicy::builder()
                            .initial_interval(Duration::from_secs(1))
                            .maximum_interval(Duration::from_secs(300))
                            .maximum_attempts(300)
                            .build(),
                    )
                    .build(),
            )
            .await;
        let _ = notified; // A lost notification is visible in history; the order stands.

        match outcome {
            Ok(result) => {
                set_step(ctx, "completed");
                Ok(result)
            }
            Err(reason) => {
                set_step(ctx, "failed");
                Err(ApplicationFailure::builder(reason)
                    .type_name("OrderFailed".to_string())
                    .non_retryable(true)
                    .build()
                    .into())
            }
        }
    }

    /// Everything up to the outcome; `Err` carries the reason shown to humans.
    async fn process(
        ctx: &mut WorkflowContext<Self>,
        input: &OrderInput,
        settings: &OrderSettings,
    ) -> Result<OrderResult, String> {
        set_step(ctx, "validating");
        let problems = input.problems();
        if !problems.is_empty() {
            return Err(format!("invalid order: {}", problems.join("; ")));
        }

        set_step(ctx, "recording");
        ctx.execute_activity(
            Activity::db_execute,
            DbExecuteInput {
                step: "record-order".to_string(),
                statements: vec![DbStatementCall {
                    name: "insert_order".to_string(),
                    params: object(json!({
                        "order_id": input.order_id,
                        "customer_email": input.customer_email,
                        "total_cents": input.amount_cents,
                        "currency": input.currency,
                    })),
                }],
            },
            step_options(30),
        )
        .await
        .map_err(|e| format!("recording the order failed: {}", reason(&e)))?;

        set_step(ctx, "confirming");
        let mut vars = object(json!({
            "order_id": input.order_id,
            "customer_name": input.customer_name.clone().unwrap_or_else(|| "there".to_string()),
            "total": input.display_total(),
        }));
        if ctx.patched(PATCH_CONFIRMATION_LISTS_ITEMS) {
            let items: Vec<_> = input
                .items
                .iter()
                .map(|i| json!({ "name": i.name.clone().unwrap_or_else(|| i.sku.clone()), "quantity": i.quantity }))
                .collect();
            vars.insert("items".to_string(), serde_json::Value::Array(items));
        }
        ctx.execute_activity(
            Activity::email_send,
            EmailSendInput {
                step: "confirmation-email".to_string(),
                template: "order_confirmation".to_string(),
                to: vec![input.customer_email.clone()],
                cc: vec![],
                bcc: vec![],
                reply_to: None,
                vars,
            },
            step_options(60),
        )
        .await
        .map_err(|e| format!("sending the confirmation failed: {}", reason(&e)))?;

        if input.amount_cents >= settings.approval_threshold_cents {
            Self::await_approval(ctx, input, settings).await?;
        }

        set_step(ctx, "processing");
        for job in JOBS {
            set_job(ctx, job, "running");
        }
        let (reserved, charged, notified) = join!(
            Self::job(ctx, input, "reserve_inventory", &settings.reserve_inventory),
            Self::job(ctx, input, "charge_payment", &settings.charge_payment),
            Self::job(ctx, input, "notify_shipping", &settings.notify_shipping),
        );
        let results = [
            ("reserve_inventory", reserved),
            ("charge_payment", charged),
            ("notify_shipping", notified),
        ];
        let mut done = BTreeMap::new();
        let mut failures = Vec::new();
        for (job, result) in results {
            match result {
                Ok(out) => {
                    set_job(ctx, job, "done");
                    done.insert(job.to_string(), out.json.unwrap_or(serde_json::Value::Null));
                }
                Err(e) => {
                    set_job(ctx, job, "failed");
                    failures.push(format!("{job} failed: {}", reason(&e)));
                }
            }
        }
        if !failures.is_empty() {
            set_step(ctx, "compensating");
            let undone = Self::compensate(ctx, input, settings, &done).await;
            return Err(format!("{}; {undone}", failures.join("; ")));
        }
        Ok(OrderResult {
            order_id: input.order_id.clone(),
            status: "completed".to_string(),
            jobs: done,
            approval: ctx.state(|s| s.status.approval.clone()),
        })
    }

    async fn await_approval(
        ctx: &mut WorkflowContext<Self>,
        input: &OrderInput,
        settings: &OrderSettings,
    ) -> Result<(), String> {
        set_step(ctx, "awaiting_approval");
        ctx.state_mut(|s| s.status.approval = ApprovalState::Waiting);
        let decided = select! {
            _ = ctx.wait_condition(|s| s.decision.is_some()) => true,
            _ = ctx.timer(Duration::from_secs(settings.approval_escalate_after_secs)) => false,
        };
        if !decided {
            ctx.state_mut(|s| s.status.approval = ApprovalState::Escalated);
            let id = ctx.info().workflow_id().to_string();
            let escalation = ctx
                .execute_activity(
                    Activity::email_send,
                    EmailSendInput {
                        step: "approval-escalation".to_string(),
                        template: "approval_escalation".to_string(),
                        to: vec![settings.approvers_email.clone()],
                        cc: vec![],
                        bcc: vec![],
                        reply_to: None,
                        vars: object(json!({
                            "approver_name": "approvers",
                            "order_id": input.order_id,
                            "amount": input.display_total(),
                            "requested_by": input.customer_email,
                            "waiting_minutes": settings.approval_escalate_after_secs / 60,
                            "timeout_minutes": settings.approval_timeout_secs / 60,
                            "approve_url": format!("{}/v1/runs/{id}/signals/approve", settings.edge_url),
                            "reject_url": format!("{}/v1/runs/{id}/signals/reject", settings.edge_url),
                        })),
                    },
                    step_options(60),
                )
                .await;
            if let Err(e) = escalation {
                // The approval can still arrive; the timeout still applies.
                let _ = reason(&e);
            }
            let decided = select! {
                _ = ctx.wait_condition(|s| s.decision.is_some()) => true,
                _ = ctx.timer(Duration::from_secs(settings.approval_timeout_secs)) => false,
            };
            if !decided {
                ctx.state_mut(|s| s.status.approval = ApprovalState::TimedOut);
                return Err(format!(
                    "order {} was rejected automatically: nobody approved it within {} s",
                    input.order_id,
                    settings.approval_escalate_after_secs + settings.approval_timeout_secs
                ));
            }
        }
        let (approved, decision) = ctx.state(|s| s.decision.clone()).unwrap_or((
            false,
            ApprovalDecision {
                approver: "unknown".to_string(),
                reason: None,
            },
        ));
        let ApprovalDecision { approver, reason } = decision;
        if approved {
            ctx.state_mut(|s| s.status.approval = ApprovalState::Approved { approver, reason });
            Ok(())
        } else {
            let why = reason.clone().map(|r| format!(": {r}")).unwrap_or_default();
            let message = format!("order {} was rejected by {approver}{why}", input.order_id);
            ctx.state_mut(|s| s.status.approval = ApprovalState::Rejected { approver, reason });
            Err(message)
        }
    }

    async fn job(
        ctx: &WorkflowContext<Self>,
        input: &OrderInput,
        name: &str,
        job: &JobSettings,
    ) -> Result<HttpCallOutput, ActivityExecutionError> {
        ctx.execute_activity(
            Activity::http_call,
            HttpCallInput {
                step: name.replace('_', "-"),
                service: job.service.clone(),
                method: job.method,
                path: job.path.clone(),
                path_params: BTreeMap::from([("order_id".to_string(), input.order_id.clone())]),
                query: BTreeMap::new(),
                body: Some(json!({
                    "order_id": input.order_id,
                    "items": input.items,
                    "amount_cents": input.amount_cents,
                    "currency": input.currency,
                    "customer_email": input.customer_email,
                })),
                headers: BTreeMap::new(),
            },
            job.options(),
        )
        .await
    }

    /// Undoes the jobs that succeeded, in reverse order, each once; says what was undone.
    async fn compensate(
        ctx: &mut WorkflowContext<Self>,
        input: &OrderInput,
        settings: &OrderSettings,
        done: &BTreeMap<String, serde_json::Value>,
    ) -> String {
        let plan = [
            (
                "charge_payment",
                "refund_payment",
                &settings.refund_payment,
                "payment refunded",
            ),
            (
                "reserve_inventory",
                "release_inventory",
                &settings.release_inventory,
                "inventory released",
            ),
        ];
        let mut undone = Vec::new();
        for (job, compensation, job_settings, what) in plan {
            if !done.contains_key(job) {
                continue;
            }
            match Self::job(ctx, input, compensation, job_settings).await {
                Ok(_) => {
                    set_job(ctx, job, "compensated");
                    undone.push(what.to_string());
                }
                Err(e) => undone.push(format!(
                    "{compensation} FAILED ({}), needs a human",
                    reason(&e)
                )),
            }
        }
        if undone.is_empty() {
            "nothing to compensate".to_string()
        } else {
            undone.join(", ")
        }
    }

    #[signal(name = "approve")]
    pub fn approve(&mut self, _ctx: &mut SyncWorkflowContext<Self>, decision: ApprovalDecision) {
        // The first decision counts; later ones are ignored.
        if self.decision.is_none() {
            self.decision = Some((true, decision));
        }
    }

    #[signal(name = "reject")]
    pub fn reject(&mut self, _ctx: &mut SyncWorkflowContext<Self>, decision: ApprovalDecision) {
        if self.decision.is_none() {
            self.decision = Some((false, decision));
        }
    }

    #[query(name = "status")]
    pub fn status(&self, _ctx: &WorkflowContextView) -> OrderStatus {
        self.status.clone()
    }
}

fn set_step(ctx: &WorkflowContext<OrderWorkflow>, step: &str) {
    ctx.state_mut(|s| s.status.step = step.to_string());
}

fn set_job(ctx: &WorkflowContext<OrderWorkflow>, job: &str, state: &str) {
    ctx.state_mut(|s| {
        s.status.jobs.insert(job.to_string(), state.to_string());
    });
}

fn object(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match value {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

/// The innermost message of an activity failure: what actually went wrong.
fn reason(e: &ActivityExecutionError) -> String {
    let Some(failure) = e.failure() else {
        return e.to_string();
    };
    let mut message = failure.message.clone();
    let mut cause = failure.cause.as_deref();
    while let Some(c) = cause {
        if !c.message.is_empty() {
            message = c.message.clone();
        }
        cause = c.cause.as_deref();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> OrderInput {
        OrderInput {
            order_id: "ord-1".into(),
            customer_email: "ada@example.com".into(),
            customer_name: None,
            items: vec![LineItem {
                sku: "sku-1".into(),
                name: None,
                quantity: 2,
                unit_price_cents: 1250,
            }],
            amount_cents: 2500,
            currency: "EUR".into(),
        }
    }

    #[test]
    fn a_valid_order_has_no_problems() {
        assert!(order().problems().is_empty());
    }

    #[test]
    fn each_problem_names_its_field() {
        let mut o = order();
        o.order_id = "../etc".into();
        o.customer_email = "ada at example".into();
        o.currency = "eur".into();
        o.amount_cents = 999;
        o.items[0].quantity = 0;
        let problems = o.problems().join("\n");
        for field in [
            "order_id",
            "customer_email",
            "currency",
            "amount_cents",
            "items[0].quantity",
        ] {
            assert!(
                problems.contains(field),
                "{field} not named in:\n{problems}"
            );
        }
    }

    #[test]
    fn the_total_must_match_the_lines() {
        let mut o = order();
        o.amount_cents = 2501;
        assert_eq!(
            o.problems(),
            vec!["amount_cents: 2501 does not equal the lines' total 2500".to_string()]
        );
    }
}
