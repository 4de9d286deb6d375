//! The order's public contract: what a caller sends (input, approval decisions), what the
//! `status` query and the result say. The `schemars` attributes here are the input rules: the
//! exported JSON Schema is what the edge checks and what the worker checks again through
//! [`Untrusted`](edgeflow_activities::Untrusted), so both sides accept exactly the same inputs.
//! The one rule a schema cannot say (the total) is [`OrderInput::total_problem`].

use std::collections::BTreeMap;

use edgeflow_activities::{InputError, InputProblem, MAX_SAFE_INTEGER, Untrusted};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An email address as both sides check it: a dot-atom local part, `@`, and a domain of at least
/// two DNS labels (so `a@localhost` is refused everywhere). Plain ASCII classes only, so
/// JavaScript's `RegExp` (the edge) and the worker's regex engine read it the same way.
pub const EMAIL_PATTERN: &str = r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$";

/// A request to buy something.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderInput {
    /// The caller's order id: letters, digits, `_` and `-`, at most 64.
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]{1,64}$"))]
    pub order_id: String,
    /// Where the confirmation goes.
    #[schemars(regex(pattern = EMAIL_PATTERN), length(max = 254))]
    pub customer_email: String,
    /// How the confirmation greets the customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100))]
    pub customer_name: Option<String>,
    /// What is bought: 1 to 100 lines.
    #[schemars(length(min = 1, max = 100))]
    pub items: Vec<LineItem>,
    /// Total in the currency's minor unit; must equal the sum of the lines.
    #[schemars(range(min = 1, max = MAX_SAFE_INTEGER))]
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
    #[schemars(range(max = MAX_SAFE_INTEGER))]
    pub unit_price_cents: u64,
}

impl OrderInput {
    /// Every input rule of an order: its JSON Schema's (checked by [`Untrusted`]) and the one a
    /// schema cannot say, that the total equals the sum of the lines.
    pub fn accept(input: Untrusted<OrderInput>) -> Result<OrderInput, InputError> {
        let input = input.0?;
        let total = input.items.iter().try_fold(0u64, |sum, i| {
            i.unit_price_cents
                .checked_mul(u64::from(i.quantity))
                .and_then(|line| sum.checked_add(line))
        });
        let problem = |path: &str, message: String| {
            Err(InputError(vec![InputProblem {
                path: path.to_string(),
                message,
            }]))
        };
        match total {
            Some(t) if t == input.amount_cents => Ok(input),
            Some(t) => problem(
                "$.amount_cents",
                format!("{} does not equal the lines' total {t}", input.amount_cents),
            ),
            None => problem("$.items", "the lines' total overflows".to_string()),
        }
    }

    pub(crate) fn display_total(&self) -> String {
        format!(
            "{}.{:02} {}",
            self.amount_cents / 100,
            self.amount_cents % 100,
            self.currency
        )
    }
}

/// Payload of the `approve` and `reject` signals and updates. The edge sets `approver` to the
/// verified caller.
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

/// Where an order is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// The input is being checked; invalid input fails the run at once.
    #[default]
    Validating,
    /// `db.execute` of `record_order` (`insert_order` in runs from before orders were keyed by run).
    Recording,
    /// `email.send` of `order_confirmation`.
    Confirming,
    /// Waiting for `approve` or `reject`.
    AwaitingApproval,
    /// The three jobs run.
    Processing,
    /// A job failed for good: every job that may have had an effect is undone.
    Compensating,
    /// The edge is being told how it ended.
    Notifying,
    Completed,
    Failed,
}

/// The three background jobs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Job {
    ReserveInventory,
    ChargePayment,
    NotifyShipping,
}

impl Job {
    pub const ALL: [Job; 3] = [
        Job::ReserveInventory,
        Job::ChargePayment,
        Job::NotifyShipping,
    ];

    /// The name in settings, status and messages.
    pub fn name(self) -> &'static str {
        match self {
            Job::ReserveInventory => "reserve_inventory",
            Job::ChargePayment => "charge_payment",
            Job::NotifyShipping => "notify_shipping",
        }
    }

    /// The job that undoes this one, if any.
    pub fn compensation(self) -> Option<Compensation> {
        match self {
            Job::ReserveInventory => Some(Compensation::ReleaseInventory),
            Job::ChargePayment => Some(Compensation::RefundPayment),
            Job::NotifyShipping => None,
        }
    }
}

/// The jobs that undo others; each is idempotent (keyed on the order) and harmless when the job
/// it undoes had no effect, so it is safe to run whenever that job's outcome is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compensation {
    RefundPayment,
    ReleaseInventory,
}

impl Compensation {
    /// In the order they run: the money first.
    pub const ALL: [Compensation; 2] =
        [Compensation::RefundPayment, Compensation::ReleaseInventory];

    pub fn name(self) -> &'static str {
        match self {
            Compensation::RefundPayment => "refund_payment",
            Compensation::ReleaseInventory => "release_inventory",
        }
    }

    /// What it undoes.
    pub fn undoes(self) -> Job {
        match self {
            Compensation::RefundPayment => Job::ChargePayment,
            Compensation::ReleaseInventory => Job::ReserveInventory,
        }
    }

    /// How the failure reason says it was done.
    pub fn done_text(self) -> &'static str {
        match self {
            Compensation::RefundPayment => "payment refunded",
            Compensation::ReleaseInventory => "inventory released",
        }
    }
}

/// A job's state in the `status` query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Running,
    Done,
    /// Failed for good (its last attempt may still have had an effect: see `compensated`).
    Failed,
    /// Undone by its compensation (which is harmless when the job had no effect).
    Compensated,
}

/// Where an order is, for the `status` query.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OrderStatus {
    pub step: Step,
    /// Each background job's state, once processing has started.
    pub jobs: BTreeMap<Job, JobState>,
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
    /// Always `completed`.
    pub status: Step,
    /// Each job's JSON answer, by job name.
    pub jobs: BTreeMap<Job, serde_json::Value>,
    pub approval: ApprovalState,
}

#[cfg(test)]
mod tests {
    use edgeflow_activities::Untrusted;
    use serde_json::json;

    use super::*;

    fn order() -> serde_json::Value {
        json!({
            "order_id": "ord-1",
            "customer_email": "ada@example.com",
            "items": [{"sku": "sku-1", "quantity": 2, "unit_price_cents": 1250}],
            "amount_cents": 2500,
            "currency": "EUR",
        })
    }

    fn problems(value: serde_json::Value) -> Vec<String> {
        match OrderInput::accept(Untrusted::from_value(value)) {
            Ok(_) => vec![],
            Err(e) => e.0.into_iter().map(|p| p.path).collect(),
        }
    }

    #[test]
    fn a_valid_order_has_no_problems() {
        assert!(problems(order()).is_empty());
    }

    #[test]
    fn each_problem_names_its_field() {
        let mut o = order();
        o["order_id"] = json!("../etc");
        o["customer_email"] = json!("ada at example");
        o["currency"] = json!("eur");
        o["items"][0]["quantity"] = json!(0);
        o["customer_name"] = json!("");
        let found = problems(o);
        for field in [
            "$.order_id",
            "$.customer_email",
            "$.currency",
            "$.items[0].quantity",
            "$.customer_name",
        ] {
            assert!(found.iter().any(|p| p == field), "{field} not in {found:?}");
        }
    }

    #[test]
    fn emails_need_a_dotted_domain_on_both_sides() {
        for bad in [
            "a@localhost",
            "a@",
            "@b.c",
            "a b@c.d",
            "a@b..c",
            "a@-b.c",
            "<a@b.c>",
        ] {
            let mut o = order();
            o["customer_email"] = json!(bad);
            assert_eq!(problems(o), ["$.customer_email"], "{bad}");
        }
        for good in [
            "a@b.co",
            "first.last+tag@mail.example.org",
            "x_y@a-b.example",
        ] {
            let mut o = order();
            o["customer_email"] = json!(good);
            assert!(problems(o).is_empty(), "{good}");
        }
    }

    #[test]
    fn amounts_stay_within_what_javascript_carries_exactly() {
        let mut o = order();
        o["amount_cents"] = json!(9_007_199_254_740_992u64);
        assert_eq!(problems(o), ["$.amount_cents"]);
        let mut o = order();
        o["items"][0]["unit_price_cents"] = json!(18_446_744_073_709_551_615u64);
        assert_eq!(problems(o), ["$.items[0].unit_price_cents"]);
    }

    #[test]
    fn the_total_must_match_the_lines() {
        let mut o = order();
        o["amount_cents"] = json!(2501);
        let e = OrderInput::accept(Untrusted::from_value(o)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "$.amount_cents: 2501 does not equal the lines' total 2500"
        );
    }

    #[test]
    fn status_names_are_the_documented_strings() {
        let status = OrderStatus {
            step: Step::AwaitingApproval,
            jobs: BTreeMap::from([(Job::ChargePayment, JobState::Compensated)]),
            approval: ApprovalState::Waiting,
        };
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            json!({"step": "awaiting_approval", "jobs": {"charge_payment": "compensated"},
                   "approval": {"state": "waiting"}})
        );
        for job in Job::ALL {
            assert_eq!(serde_json::to_value(job).unwrap(), json!(job.name()));
        }
    }
}
