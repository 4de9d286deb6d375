//! `order`: the flagship. A request arrives; the order is recorded and confirmed by email; a
//! large order waits for a human; three background jobs run in parallel with their own retry
//! policies; if one fails for good, every job that may have had an effect is undone; the edge
//! hears how it ended.
//!
//! Steps, as the `status` query reports them ([`Step`]):
//! 1. `validating`: the input is checked against the same rules the edge checks (its JSON Schema,
//!    through [`Untrusted`]) plus the total; input that is invalid or does not even decode ends
//!    the run (after step 7) in the `InvalidInput` failure, naming each field in its details.
//! 2. `recording`: `db.execute` of `record_order`, under the run's workflow id (step `record-order`;
//!    `insert_order`, under the `order_id`, in runs from before [`PATCH_KEYED_BY_RUN`]).
//! 3. `confirming`: `email.send` of `order_confirmation` (step `confirmation-email`).
//! 4. `awaiting_approval` (only at or above `approval_threshold_cents`): the first `approve` or
//!    `reject` decides, sent as an update (the caller hears at once whether it was applied) or
//!    as a signal; after `approval_escalate_after_secs` the approvers are emailed, after
//!    `approval_timeout_secs` more the order is rejected. Approval comes before the jobs so
//!    nothing is charged for an order that may be refused.
//! 5. `processing`: `reserve_inventory`, `charge_payment` and `notify_shipping` in parallel, each an
//!    `http.call` with its own timeout and retry policy.
//! 6. `compensating`, when any job failed for good: `refund_payment`, then `release_inventory`, for
//!    every job, whether it succeeded, failed or its outcome is unknown (a charge whose last
//!    attempt timed out after the payment service executed it is refunded too). Both are
//!    idempotent (keyed on the order) and harmless when nothing happened. The run fails with the
//!    final cause of each failure.
//! 7. `notifying`: `webhook.notify` of `workflow.completed` / `workflow.failed` to the edge.
//!
//! A decision that does not decode or breaks the rules never reaches the order's state: an update
//! is rejected (nothing enters the history) with the `InvalidInput` failure as its failure's
//! cause (see [`DecisionRefused`]), a signal is dropped with a warning and counted in
//! [`crate::dropped`]; the run goes on to process later valid decisions.
//!
//! Settings ([`OrderSettings`]) are read through the `settings.order` local activity at the start
//! of each run, so they are recorded in history: a settings change applies to new runs and never
//! makes a running one nondeterministic.

mod contract;
mod settings;

use std::collections::BTreeMap;
use std::time::Duration;

use edgeflow_activities::Activity;
use edgeflow_activities::db::{DbExecuteInput, DbStatementCall};
use edgeflow_activities::email::EmailSendInput;
use edgeflow_activities::http::{HttpCallInput, HttpCallOutput};
use edgeflow_activities::webhook::{
    CompletionError, CompletionStatus, WebhookNotifyInput, WorkflowCompletion,
};
use edgeflow_activities::{InputError, Untrusted};
use serde_json::json;

use crate::edge;
use temporalio_common::protos::temporal::api::enums::v1::TimeoutType;
use temporalio_common::protos::temporal::api::failure::v1::{Failure, failure::FailureInfo};
use temporalio_common::{ActivityError, RetryPolicy};
use temporalio_macros::{activity_definitions, workflow, workflow_methods};
use temporalio_sdk::workflows::{join, select};
use temporalio_sdk::{
    ActivityExecutionError, ActivityOptions, ApplicationFailure, LocalActivityOptions,
    SyncWorkflowContext, WorkflowContext, WorkflowContextView, WorkflowResult,
};

pub use contract::{
    ApprovalDecision, ApprovalState, Compensation, EMAIL_PATTERN, Job, JobState, LineItem,
    OrderInput, OrderResult, OrderStatus, Step,
};
use settings::step_options;
pub use settings::{JobSettings, OrderSettings};

/// Patch id of the confirmation email that lists the line items. Runs that recorded the email
/// before the change replay without the list.
pub const PATCH_CONFIRMATION_LISTS_ITEMS: &str = "order-confirmation-lists-items";

/// Patch id of the saga that also undoes jobs whose outcome is unknown (failed after attempts
/// that may have had an effect). Runs that compensated before the change replay as they ran.
pub const PATCH_COMPENSATE_UNKNOWN_OUTCOMES: &str = "order-compensate-unknown-outcomes";

/// Patch id of the customer-facing status hint written at the edge (`edge.kv.put` of
/// `order-status/<reference>`). Runs started before it replay without the hint.
pub const PATCH_STATUS_HINT_AT_THE_EDGE: &str = "order-status-hint-at-the-edge";

/// The edge's KV key of an order's customer-facing status hint: `order-status/<reference>`, the
/// order's key in the `orders` table (its run's workflow id; its `order_id` in runs from before
/// [`PATCH_KEYED_BY_RUN`]).
pub fn status_hint_key(reference: &str) -> String {
    format!("order-status/{reference}")
}

/// How long the edge keeps a status hint: 30 days.
pub const STATUS_HINT_TTL_SECS: u64 = 30 * 24 * 3600;

/// One attempt of the status hint's `edge.kv.put`.
const STATUS_HINT_ATTEMPT: Duration = Duration::from_secs(30);

/// The hint: `{"status": "completed"|"failed", "updated_at": RFC 3339}` under
/// [`status_hint_key`], expiring after [`STATUS_HINT_TTL_SECS`].
fn status_hint(reference: &str, status: Step, at: Option<std::time::SystemTime>) -> edge::KvPut {
    let updated_at = at.map(edge::rfc3339);
    edge::KvPut {
        key: status_hint_key(reference),
        value: json!({ "status": status, "updated_at": updated_at }).to_string(),
        expiration_ttl_secs: Some(STATUS_HINT_TTL_SECS),
    }
}

/// Patch id of orders recorded and sent to the services under their run's workflow id instead of
/// their `order_id`: the edge names runs `order-<caller scope>-<order_id>`, so two customers may
/// send the same `order_id`, and only the workflow id tells their orders apart. Runs from before
/// the change keep the `order_id` for their row and their services' paths.
pub const PATCH_KEYED_BY_RUN: &str = "order-keyed-by-run";

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

/// A decision that reached the order.
#[derive(Debug, Clone)]
struct Decision {
    approved: bool,
    by: ApprovalDecision,
}

impl Decision {
    fn state(&self) -> ApprovalState {
        let (approver, reason) = (self.by.approver.clone(), self.by.reason.clone());
        if self.approved {
            ApprovalState::Approved { approver, reason }
        } else {
            ApprovalState::Rejected { approver, reason }
        }
    }
}

/// Why an `approve` or `reject` update was refused: an invalid payload is the `InvalidInput`
/// failure (the edge answers 422 with its details), anything else a failure whose message says
/// why (409).
#[derive(Debug, thiserror::Error)]
enum DecisionRefused {
    #[error("invalid input: {0}")]
    Invalid(InputError),
    #[error("the order was already {0}")]
    AlreadyDecided(&'static str),
    #[error("this order does not need approval")]
    NotNeeded,
}

impl DecisionRefused {
    /// The error an update validator returns. The SDK wraps whatever a validator returns in an
    /// untyped failure of its own and records only the returned error's *source* as that
    /// failure's cause (temporalio-workflow 1.1, `workflow_error_to_failure`): an
    /// `ApplicationFailure` returned as is would lose its type and details. So the typed failure
    /// is the source of a [`Typed`], and the caller gets it as the update failure's cause, under
    /// the same message.
    fn into_update_error(self) -> Box<dyn std::error::Error + Send + Sync> {
        match self {
            DecisionRefused::Invalid(e) => Box::new(Typed(e.into_failure())),
            other => Box::new(other),
        }
    }
}

/// Carries a typed failure through the SDK's wrapping of update validator errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Typed(#[source] ApplicationFailure);

/// Why an order did not complete.
enum NotCompleted {
    /// Its input broke the rules: the run fails as `InvalidInput`.
    Invalid(InputError),
    /// Anything else, said for humans: the run fails as `OrderFailed`.
    Failed(String),
}

impl From<String> for NotCompleted {
    fn from(reason: String) -> Self {
        NotCompleted::Failed(reason)
    }
}

/// How the message of an order refused for its input starts.
const INVALID_ORDER: &str = "invalid order";

impl NotCompleted {
    fn reason(&self) -> String {
        match self {
            NotCompleted::Invalid(e) => format!("{INVALID_ORDER}: {e}"),
            NotCompleted::Failed(reason) => reason.clone(),
        }
    }
}

#[workflow]
#[derive(Default)]
pub struct OrderWorkflow {
    status: OrderStatus,
    /// Whether this order waits for a human: known once its settings are read.
    needs_approval: Option<bool>,
    decision: Option<Decision>,
    /// The order's key in the `orders` table and in the services' paths (see [`PATCH_KEYED_BY_RUN`]).
    reference: String,
}

#[workflow_methods]
impl OrderWorkflow {
    #[run(name = "order")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: Untrusted<OrderInput>,
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
        let outcome = Self::process(ctx, input, &settings).await;

        set_step(ctx, Step::Notifying);
        // The customer-facing status hint, at the edge, beside the completion event; only when
        // the worker runs edge activities, and not for an input that was refused (no order). It
        // is keyed like the order's row: by the run's reference (see [`PATCH_KEYED_BY_RUN`]), so
        // two callers' orders with the same `order_id` never share a hint.
        let reference = ctx.state(|s| s.reference.clone());
        let hint = match (&settings.status_hint_task_queue, &outcome) {
            (Some(queue), Ok(_) | Err(NotCompleted::Failed(_)))
                if !reference.is_empty() && ctx.patched(PATCH_STATUS_HINT_AT_THE_EDGE) =>
            {
                let status = if outcome.is_ok() {
                    Step::Completed
                } else {
                    Step::Failed
                };
                Some((
                    queue.clone(),
                    status_hint(&reference, status, ctx.workflow_time()),
                ))
            }
            _ => None,
        };
        let (workflow_id, run_id) = {
            let info = ctx.info();
            (info.workflow_id().to_string(), info.run_id().to_string())
        };
        // The worker fills workflow id, run id and type from the activity's own info; these are
        // for readers of the history.
        let completion = WorkflowCompletion {
            workflow_id,
            run_id,
            workflow_type: Self::name().to_string(),
            status: if outcome.is_ok() {
                CompletionStatus::Completed
            } else {
                CompletionStatus::Failed
            },
            result: outcome
                .as_ref()
                .ok()
                .map(|r| serde_json::to_value(r).unwrap_or_default()),
            error: outcome.as_ref().err().map(|e| CompletionError {
                message: e.reason(),
            }),
        };
        let hinted = async {
            if let Some((queue, put)) = &hint {
                // Best effort: a hint the edge could not take in ten attempts is not worth
                // holding the order open for; the history shows the failure.
                let _ = edge::kv_put(
                    ctx,
                    put,
                    edge::options(queue.clone(), STATUS_HINT_ATTEMPT, 10),
                )
                .await;
            }
        };
        let notify = ctx.execute_activity(
            Activity::webhook_notify,
            WebhookNotifyInput::completion(
                "completion",
                settings.completion_webhook.clone(),
                &completion,
            ),
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
        );
        let (notified, ()) = join!(notify, hinted);
        let _ = notified; // A lost notification is visible in history; the order stands.

        match outcome {
            Ok(result) => {
                set_step(ctx, Step::Completed);
                Ok(result)
            }
            Err(NotCompleted::Invalid(e)) => {
                set_step(ctx, Step::Failed);
                Err(e.into_failure_titled(INVALID_ORDER).into())
            }
            Err(NotCompleted::Failed(reason)) => {
                set_step(ctx, Step::Failed);
                Err(ApplicationFailure::builder(reason)
                    .type_name("OrderFailed".to_string())
                    .non_retryable(true)
                    .build()
                    .into())
            }
        }
    }

    /// Everything up to the outcome.
    async fn process(
        ctx: &mut WorkflowContext<Self>,
        input: Untrusted<OrderInput>,
        settings: &OrderSettings,
    ) -> Result<OrderResult, NotCompleted> {
        set_step(ctx, Step::Validating);
        let input = OrderInput::accept(input).map_err(NotCompleted::Invalid)?;
        let needs_approval = input.amount_cents >= settings.approval_threshold_cents;
        ctx.state_mut(|s| s.needs_approval = Some(needs_approval));

        set_step(ctx, Step::Recording);
        let (statement, reference) = if ctx.patched(PATCH_KEYED_BY_RUN) {
            ("record_order", ctx.info().workflow_id().to_string())
        } else {
            ("insert_order", input.order_id.clone())
        };
        ctx.state_mut(|s| s.reference = reference.clone());
        let mut params = object(json!({
            "order_id": input.order_id,
            "customer_email": input.customer_email,
            "total_cents": input.amount_cents,
            "currency": input.currency,
        }));
        if statement == "record_order" {
            params.insert("order_ref".to_string(), json!(reference));
        }
        ctx.execute_activity(
            Activity::db_execute,
            DbExecuteInput {
                step: "record-order".to_string(),
                statements: vec![DbStatementCall {
                    name: statement.to_string(),
                    params,
                }],
            },
            step_options(30),
        )
        .await
        .map_err(|e| format!("recording the order failed: {}", final_cause(&e)))?;

        set_step(ctx, Step::Confirming);
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
        .map_err(|e| format!("sending the confirmation failed: {}", final_cause(&e)))?;

        if needs_approval {
            Self::await_approval(ctx, &input, settings).await?;
        }

        set_step(ctx, Step::Processing);
        for job in Job::ALL {
            set_job(ctx, job, JobState::Running);
        }
        let (reserved, charged, notified) = join!(
            Self::job(ctx, &input, Job::ReserveInventory, settings),
            Self::job(ctx, &input, Job::ChargePayment, settings),
            Self::job(ctx, &input, Job::NotifyShipping, settings),
        );
        let results = [
            (Job::ReserveInventory, reserved),
            (Job::ChargePayment, charged),
            (Job::NotifyShipping, notified),
        ];
        let mut done = BTreeMap::new();
        let mut failures = Vec::new();
        let mut to_undo = Vec::new();
        for (job, result) in results {
            match result {
                Ok(out) => {
                    set_job(ctx, job, JobState::Done);
                    done.insert(job, out.json.unwrap_or(serde_json::Value::Null));
                    to_undo.push(job);
                }
                Err(e) => {
                    set_job(ctx, job, JobState::Failed);
                    failures.push(format!("{} failed: {}", job.name(), final_cause(&e)));
                    // Even a refusal may follow an earlier attempt that took effect and then
                    // timed out: its outcome is unknown, and undoing is harmless.
                    to_undo.push(job);
                }
            }
        }
        if !failures.is_empty() {
            set_step(ctx, Step::Compensating);
            if !ctx.patched(PATCH_COMPENSATE_UNKNOWN_OUTCOMES) {
                // Runs from before the patch undid only the jobs that returned Ok.
                to_undo.retain(|job| done.contains_key(job));
            }
            let undone = Self::compensate(ctx, &input, settings, &to_undo, &done).await;
            return Err(format!("{}; {undone}", failures.join("; ")).into());
        }
        Ok(OrderResult {
            order_id: input.order_id.clone(),
            status: Step::Completed,
            jobs: done,
            approval: ctx.state(|s| s.status.approval.clone()),
        })
    }

    async fn await_approval(
        ctx: &mut WorkflowContext<Self>,
        input: &OrderInput,
        settings: &OrderSettings,
    ) -> Result<(), String> {
        set_step(ctx, Step::AwaitingApproval);
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
            // A failed escalation email does not change the order: the approval can still
            // arrive and the timeout still applies. The failure is in the history.
            let _ = escalation;
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
        let Some(decision) = ctx.state(|s| s.decision.clone()) else {
            return Err(format!("order {} has no decision", input.order_id));
        };
        ctx.state_mut(|s| s.status.approval = decision.state());
        if decision.approved {
            Ok(())
        } else {
            let why = decision
                .by
                .reason
                .as_ref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            Err(format!(
                "order {} was rejected by {}{why}",
                input.order_id, decision.by.approver
            ))
        }
    }

    async fn job(
        ctx: &WorkflowContext<Self>,
        input: &OrderInput,
        job: Job,
        settings: &OrderSettings,
    ) -> Result<HttpCallOutput, ActivityExecutionError> {
        Self::call(ctx, input, job.name(), settings.job(job)).await
    }

    /// One `http.call` for a job or a compensation; its step key (`charge-payment`), with the
    /// workflow id, is the `Idempotency-Key`.
    async fn call(
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
                path_params: BTreeMap::from([(
                    "order_id".to_string(),
                    ctx.state(|s| s.reference.clone()),
                )]),
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

    /// Runs the compensation of each job in `jobs` that has one, refund first, each once; says
    /// what was undone (`done` holds the jobs known to have succeeded).
    async fn compensate(
        ctx: &mut WorkflowContext<Self>,
        input: &OrderInput,
        settings: &OrderSettings,
        jobs: &[Job],
        done: &BTreeMap<Job, serde_json::Value>,
    ) -> String {
        let mut undone = Vec::new();
        for compensation in Compensation::ALL {
            let job = compensation.undoes();
            if !jobs.contains(&job) {
                continue;
            }
            let call = Self::call(
                ctx,
                input,
                compensation.name(),
                settings.compensation(compensation),
            );
            match call.await {
                Ok(_) => {
                    set_job(ctx, job, JobState::Compensated);
                    undone.push(if done.contains_key(&job) {
                        compensation.done_text().to_string()
                    } else {
                        format!(
                            "{} run in case {} took effect",
                            compensation.name(),
                            job.name()
                        )
                    });
                }
                Err(e) => undone.push(format!(
                    "{} FAILED ({}), needs a human",
                    compensation.name(),
                    final_cause(&e)
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
    pub fn approve(
        &mut self,
        ctx: &mut SyncWorkflowContext<Self>,
        decision: Untrusted<ApprovalDecision>,
    ) {
        self.take_signal(ctx, "approve", true, decision);
    }

    #[signal(name = "reject")]
    pub fn reject(
        &mut self,
        ctx: &mut SyncWorkflowContext<Self>,
        decision: Untrusted<ApprovalDecision>,
    ) {
        self.take_signal(ctx, "reject", false, decision);
    }

    /// A signalled decision: the first valid one counts; an invalid one is dropped and counted.
    fn take_signal(
        &mut self,
        ctx: &SyncWorkflowContext<Self>,
        signal: &'static str,
        approved: bool,
        decision: Untrusted<ApprovalDecision>,
    ) {
        match decision.0 {
            Ok(by) => {
                if self.decision.is_none() {
                    self.decision = Some(Decision { approved, by });
                }
            }
            Err(error) => crate::dropped::signal(
                Self::name(),
                signal,
                ctx.workflow_id(),
                ctx.run_id(),
                &error,
                ctx.is_replaying(),
            ),
        }
    }

    #[update_validator(approve_update)]
    fn validate_approve(
        &self,
        _ctx: &WorkflowContextView,
        decision: &Untrusted<ApprovalDecision>,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.check_decision(decision)
            .map_err(DecisionRefused::into_update_error)
    }

    /// `approve` as an update: the approver hears at once whether it was applied.
    #[update(name = "approve")]
    pub fn approve_update(
        &mut self,
        _ctx: &mut SyncWorkflowContext<Self>,
        decision: Untrusted<ApprovalDecision>,
    ) -> ApprovalState {
        self.decide(true, decision)
    }

    #[update_validator(reject_update)]
    fn validate_reject(
        &self,
        _ctx: &WorkflowContextView,
        decision: &Untrusted<ApprovalDecision>,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.check_decision(decision)
            .map_err(DecisionRefused::into_update_error)
    }

    /// `reject` as an update.
    #[update(name = "reject")]
    pub fn reject_update(
        &mut self,
        _ctx: &mut SyncWorkflowContext<Self>,
        decision: Untrusted<ApprovalDecision>,
    ) -> ApprovalState {
        self.decide(false, decision)
    }

    fn check_decision(
        &self,
        decision: &Untrusted<ApprovalDecision>,
    ) -> Result<(), DecisionRefused> {
        if let Err(e) = &decision.0 {
            return Err(DecisionRefused::Invalid(e.clone()));
        }
        if let Some(existing) = &self.decision {
            let how = if existing.approved {
                "approved"
            } else {
                "rejected"
            };
            return Err(DecisionRefused::AlreadyDecided(how));
        }
        match self.status.approval {
            ApprovalState::TimedOut => Err(DecisionRefused::AlreadyDecided(
                "rejected automatically: nobody decided in time",
            )),
            _ if self.needs_approval == Some(false) => Err(DecisionRefused::NotNeeded),
            _ => Ok(()),
        }
    }

    /// Applies a validated decision (the validator ran before: on replay it does not, and the
    /// same decision is applied again). Returns the decision as the order now holds it.
    fn decide(&mut self, approved: bool, decision: Untrusted<ApprovalDecision>) -> ApprovalState {
        if let (Ok(by), None) = (decision.0, &self.decision) {
            self.decision = Some(Decision { approved, by });
        }
        self.decision
            .as_ref()
            .map(Decision::state)
            .unwrap_or_default()
    }

    #[query(name = "status")]
    pub fn status(&self, _ctx: &WorkflowContextView) -> OrderStatus {
        self.status.clone()
    }
}

fn set_step(ctx: &WorkflowContext<OrderWorkflow>, step: Step) {
    ctx.state_mut(|s| s.status.step = step);
}

fn set_job(ctx: &WorkflowContext<OrderWorkflow>, job: Job, state: JobState) {
    ctx.state_mut(|s| {
        s.status.jobs.insert(job, state);
    });
}

fn object(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match value {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

/// The activity failure's own cause: what ended the last attempt (a service's answer, a timeout,
/// a cancellation), not an older attempt's failure that a timeout carries as its cause.
fn final_cause(e: &ActivityExecutionError) -> String {
    match e.failure() {
        Some(failure) => describe_failure(unwrap_activity_failure(failure)),
        None => e.to_string(),
    }
}

/// The outer failure is Temporal's "activity task failed" wrapper; its cause says why.
fn unwrap_activity_failure(failure: &Failure) -> &Failure {
    match &failure.failure_info {
        Some(FailureInfo::ActivityFailureInfo(_)) => failure.cause.as_deref().unwrap_or(failure),
        _ => failure,
    }
}

fn describe_failure(f: &Failure) -> String {
    match &f.failure_info {
        Some(FailureInfo::TimeoutFailureInfo(t)) => {
            let kind = match TimeoutType::try_from(t.timeout_type) {
                Ok(TimeoutType::StartToClose) => "its last attempt timed out (start-to-close)",
                Ok(TimeoutType::Heartbeat) => {
                    "its last attempt stopped answering (heartbeat timeout: the worker was lost)"
                }
                Ok(TimeoutType::ScheduleToClose) => "it ran out of time (schedule-to-close)",
                Ok(TimeoutType::ScheduleToStart) => "no worker picked it up (schedule-to-start)",
                _ => "it timed out",
            };
            match f.cause.as_deref() {
                Some(earlier) if !earlier.message.is_empty() => {
                    format!(
                        "{kind}; an earlier attempt failed with: {}",
                        earlier.message
                    )
                }
                _ => kind.to_string(),
            }
        }
        Some(FailureInfo::CanceledFailureInfo(_)) => "it was cancelled".to_string(),
        Some(FailureInfo::TerminatedFailureInfo(_)) => "it was terminated".to_string(),
        _ if !f.message.is_empty() => f.message.clone(),
        _ => f
            .cause
            .as_deref()
            .map(describe_failure)
            .unwrap_or_else(|| "unknown failure".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use temporalio_common::protos::temporal::api::failure::v1::{
        ActivityFailureInfo, ApplicationFailureInfo, TimeoutFailureInfo,
    };

    use super::*;

    fn activity_failure(cause: Failure) -> Failure {
        Failure {
            message: "Activity task failed".into(),
            failure_info: Some(FailureInfo::ActivityFailureInfo(
                ActivityFailureInfo::default(),
            )),
            cause: Some(Box::new(cause)),
            ..Default::default()
        }
    }

    fn application(message: &str, non_retryable: bool) -> Failure {
        Failure {
            message: message.into(),
            failure_info: Some(FailureInfo::ApplicationFailureInfo(
                ApplicationFailureInfo {
                    non_retryable,
                    ..Default::default()
                },
            )),
            ..Default::default()
        }
    }

    #[test]
    fn a_timeout_is_the_final_cause_not_the_older_503_it_carries() {
        let timeout = Failure {
            message: "activity StartToClose timeout".into(),
            failure_info: Some(FailureInfo::TimeoutFailureInfo(TimeoutFailureInfo {
                timeout_type: TimeoutType::StartToClose as i32,
                ..Default::default()
            })),
            cause: Some(Box::new(application("payments answered 503", false))),
            ..Default::default()
        };
        let text = describe_failure(unwrap_activity_failure(&activity_failure(timeout)));
        assert!(text.starts_with("its last attempt timed out"), "{text}");
        assert!(
            text.contains("earlier attempt failed with: payments answered 503"),
            "{text}"
        );
    }

    /// An update's refusal, as the SDK records it: the validator's error wrapped in an untyped
    /// failure of the SDK's own (temporalio-workflow 1.1, `workflow_error_to_failure`).
    fn update_rejection(error: Box<dyn std::error::Error + Send + Sync>) -> Failure {
        use temporalio_common::data_converters::{
            DefaultFailureConverter, FailureConverter, PayloadConverter, SerializationContextData,
        };
        use temporalio_common::error::{OutgoingError, OutgoingWorkflowError};
        DefaultFailureConverter::new(false).to_failure(
            OutgoingError::Workflow(OutgoingWorkflowError::Application(Box::new(
                ApplicationFailure::new(error),
            ))),
            &PayloadConverter::default(),
            &SerializationContextData::None,
        )
    }

    fn application_info(f: &Failure) -> Option<&ApplicationFailureInfo> {
        match &f.failure_info {
            Some(FailureInfo::ApplicationFailureInfo(info)) => Some(info),
            _ => None,
        }
    }

    #[test]
    fn an_invalid_decision_is_refused_with_the_typed_failure_naming_every_field() {
        let order = OrderWorkflow::default();
        let decision = Untrusted::from_json(br#"{"reason":5,"a b":1}"#);
        let refusal = update_rejection(
            order
                .check_decision(&decision)
                .unwrap_err()
                .into_update_error(),
        );
        let want = r#"invalid input: $.reason: 5 is not of type null or string; $["a b"]: is not allowed; $.approver: is required"#;
        // The message, for people and for edges that still read it.
        assert_eq!(refusal.message, want);
        // The contract: the typed failure, the update failure's cause.
        let typed = refusal.cause.as_deref().expect("a cause");
        assert_eq!(typed.message, want);
        let info = application_info(typed).expect("an application failure");
        assert_eq!(info.r#type, edgeflow_activities::INVALID_INPUT);
        assert!(info.non_retryable);
        let payloads = &info.details.as_ref().expect("details").payloads;
        assert_eq!(payloads.len(), 1);
        let details: edgeflow_activities::InvalidInputDetails =
            serde_json::from_slice(&payloads[0].data).unwrap();
        let paths: Vec<&str> = details.errors.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["$.reason", r#"$["a b"]"#, "$.approver"]);
        assert_eq!(details.errors[2].message, "is required");
    }

    #[test]
    fn a_decision_that_comes_too_late_is_refused_untyped() {
        let mut order = OrderWorkflow::default();
        let decision = Untrusted::from_json(br#"{"approver":"boss"}"#);
        order.decide(true, decision.clone());
        let refusal = update_rejection(
            order
                .check_decision(&decision)
                .unwrap_err()
                .into_update_error(),
        );
        assert_eq!(refusal.message, "the order was already approved");
        assert_eq!(
            application_info(&refusal).map(|i| i.r#type.as_str()),
            Some("")
        );
        assert!(refusal.cause.is_none(), "{refusal:?}");
    }

    #[test]
    fn a_service_answer_is_its_own_message() {
        let f = activity_failure(application("payments answered 422", true));
        assert_eq!(
            describe_failure(unwrap_activity_failure(&f)),
            "payments answered 422"
        );
    }
}
