//! Every workflow's public contract in one list: type name, whether the edge may start it, and
//! the JSON Schemas of its input, result, signals, updates and queries; and the search attributes
//! every run started at the edge carries. `edgeflow schema export` writes it out for the edge;
//! names come from the workflow definitions themselves, never spelled twice.

use edgeflow_activities::{InputError, Untrusted};
use schemars::{JsonSchema, Schema, schema_for};
use serde::de::DeserializeOwned;
use temporalio_common::worker::VersioningBehavior;
use temporalio_common::{QueryDefinition, SignalDefinition, UpdateDefinition};

use crate::echo::{EchoInput, EchoWorkflow};
use crate::fanout::{FanoutInput, FanoutWorkflow};
use crate::order::{OrderInput, OrderResult, OrderWorkflow};
use crate::report::{ReportInput, ReportResult, ReportWorkflow};

/// Checks JSON text exactly as the worker checks that input when it arrives: the same rules,
/// the same field paths (`edgeflow schema check`, and the operator commands before they send).
pub type Check = fn(&[u8]) -> Result<(), InputError>;

/// One workflow's contract.
pub struct WorkflowSpec {
    pub name: &'static str,
    /// Callers at the edge may start it; others are for operators (`edgeflow start`).
    pub edge: bool,
    /// The input field that names the business object a run is about (an order id): the
    /// workflow id is `<name>-<value>`, so the same object is one run however often it is sent.
    pub id_field: Option<&'static str>,
    /// With worker versioning on: `Pinned` runs finish on the build they started on, so the next
    /// build may change them incompatibly; `AutoUpgrade` runs move to the current build at their
    /// next workflow task, so their changes ship behind `patched`.
    pub versioning: VersioningBehavior,
    pub input: Schema,
    pub check_input: Check,
    pub result: Schema,
    pub signals: Vec<SignalSpec>,
    pub updates: Vec<UpdateSpec>,
    pub queries: Vec<QuerySpec>,
}

/// A signal: the schema of its payload.
pub struct SignalSpec {
    pub name: String,
    pub input: Schema,
    pub check: Check,
}

/// An update: the schemas of its payload and of its answer.
pub struct UpdateSpec {
    pub name: String,
    pub input: Schema,
    pub check: Check,
    pub result: Schema,
}

/// A query: the schema of its answer.
pub struct QuerySpec {
    pub name: String,
    pub result: Schema,
}

impl WorkflowSpec {
    /// The checker of a message's payload: a signal's, else an update's of that name.
    pub fn message_check(&self, name: &str) -> Option<Check> {
        self.signals
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.check)
            .or_else(|| {
                self.updates
                    .iter()
                    .find(|u| u.name == name)
                    .map(|u| u.check)
            })
    }
}

/// Message payloads and run inputs are all `Untrusted<T>`: this reaches the `T`.
pub trait Checked {
    fn check_json(bytes: &[u8]) -> Result<(), InputError>;
}

impl<T: DeserializeOwned + JsonSchema + 'static> Checked for Untrusted<T> {
    fn check_json(bytes: &[u8]) -> Result<(), InputError> {
        Untrusted::<T>::from_json(bytes).0.map(|_| ())
    }
}

fn check<T: DeserializeOwned + JsonSchema + 'static>(bytes: &[u8]) -> Result<(), InputError> {
    Untrusted::<T>::check_json(bytes)
}

fn check_order(bytes: &[u8]) -> Result<(), InputError> {
    OrderInput::accept(Untrusted::from_json(bytes)).map(|_| ())
}

fn signal<S: SignalDefinition>(s: S) -> SignalSpec
where
    S::Input: JsonSchema + Checked,
{
    SignalSpec {
        name: s.name().to_string(),
        input: schema_for!(S::Input),
        check: S::Input::check_json,
    }
}

fn update<U: UpdateDefinition>(u: U) -> UpdateSpec
where
    U::Input: JsonSchema + Checked,
    U::Output: JsonSchema,
{
    UpdateSpec {
        name: u.name().to_string(),
        input: schema_for!(U::Input),
        check: U::Input::check_json,
        result: schema_for!(U::Output),
    }
}

fn query<Q: QueryDefinition>(q: Q) -> QuerySpec
where
    Q::Output: JsonSchema,
{
    QuerySpec {
        name: q.name().to_string(),
        result: schema_for!(Q::Output),
    }
}

/// Every workflow the worker registers.
pub fn workflows() -> Vec<WorkflowSpec> {
    vec![
        WorkflowSpec {
            name: OrderWorkflow::name(),
            edge: true,
            id_field: Some("order_id"),
            // An order waits for a person for days; it must never meet code it cannot replay.
            versioning: VersioningBehavior::Pinned,
            input: schema_for!(OrderInput),
            check_input: check_order,
            result: schema_for!(OrderResult),
            signals: vec![
                signal(OrderWorkflow::approve),
                signal(OrderWorkflow::reject),
            ],
            updates: vec![
                update(OrderWorkflow::approve_update),
                update(OrderWorkflow::reject_update),
            ],
            queries: vec![query(OrderWorkflow::status)],
        },
        WorkflowSpec {
            name: ReportWorkflow::name(),
            edge: false,
            id_field: None,
            versioning: VersioningBehavior::AutoUpgrade,
            input: schema_for!(ReportInput),
            check_input: check::<ReportInput>,
            result: schema_for!(ReportResult),
            signals: vec![],
            updates: vec![],
            queries: vec![],
        },
        WorkflowSpec {
            name: FanoutWorkflow::name(),
            edge: false,
            id_field: None,
            versioning: VersioningBehavior::AutoUpgrade,
            input: schema_for!(FanoutInput),
            check_input: check::<FanoutInput>,
            result: schema_for!(serde_json::Value),
            signals: vec![],
            updates: vec![],
            queries: vec![],
        },
        WorkflowSpec {
            name: EchoWorkflow::name(),
            edge: false,
            id_field: None,
            versioning: VersioningBehavior::AutoUpgrade,
            input: schema_for!(EchoInput),
            check_input: check::<EchoInput>,
            result: schema_for!(serde_json::Value),
            signals: vec![],
            updates: vec![],
            queries: vec![],
        },
    ]
}

impl WorkflowSpec {
    /// The workflow id for `input`, when the workflow takes its id from a field of its input.
    pub fn natural_id(&self, input: &serde_json::Value) -> Option<String> {
        let value = input.get(self.id_field?)?.as_str()?;
        Some(format!("{}-{value}", self.name))
    }
}

/// The contract of the workflow called `name`, if the worker registers it.
pub fn find(name: &str) -> Option<WorkflowSpec> {
    workflows().into_iter().find(|w| w.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A workflow id made from an input field must be safe in a URL path and in the edge's ids:
    /// the field is required and its pattern allows only letters, digits, `_` and `-`.
    #[test]
    fn id_fields_are_required_and_safe() {
        for w in workflows() {
            let Some(field) = w.id_field else { continue };
            let schema = serde_json::to_value(&w.input).unwrap();
            assert!(
                schema["required"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r == field),
                "{}.{field} is not required",
                w.name
            );
            let pattern = schema["properties"][field]["pattern"]
                .as_str()
                .unwrap_or_default();
            assert_eq!(pattern, "^[A-Za-z0-9_-]{1,64}$", "{}.{field}", w.name);
            assert_eq!(
                w.natural_id(&serde_json::json!({ field: "ord-1" }))
                    .as_deref(),
                Some(format!("{}-ord-1", w.name).as_str())
            );
        }
    }

    /// Every integer a client may send is bounded by what both the edge (JavaScript numbers) and
    /// the worker carry exactly, so no number is rounded on its way in.
    #[test]
    fn every_input_integer_is_within_javascripts_exact_range() {
        fn walk(at: &str, v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(map) => {
                    let integer = map.get("type").is_some_and(|t| {
                        t == "integer"
                            || t.as_array()
                                .is_some_and(|a| a.iter().any(|x| x == "integer"))
                    });
                    let bound = |k: &str, ok: fn(f64) -> bool| {
                        map.get(k).and_then(|b| b.as_f64()).is_some_and(ok)
                    };
                    if integer
                        && !(bound("maximum", |m| {
                            m <= edgeflow_activities::MAX_SAFE_INTEGER as f64
                        }) && bound("minimum", |m| m >= -9_007_199_254_740_991.0))
                    {
                        out.push(format!("{at}: {v}"));
                    }
                    for (k, child) in map {
                        walk(&format!("{at}/{k}"), child, out);
                    }
                }
                serde_json::Value::Array(items) => {
                    for (i, child) in items.iter().enumerate() {
                        walk(&format!("{at}/{i}"), child, out);
                    }
                }
                _ => {}
            }
        }
        let mut unbounded = Vec::new();
        for w in workflows().iter().filter(|w| w.edge) {
            let mut schemas = vec![(format!("{}.input", w.name), &w.input)];
            schemas.extend(
                w.signals
                    .iter()
                    .map(|s| (format!("{}.{}", w.name, s.name), &s.input)),
            );
            schemas.extend(
                w.updates
                    .iter()
                    .map(|u| (format!("{}.{}", w.name, u.name), &u.input)),
            );
            for (name, schema) in schemas {
                walk(
                    &name,
                    &serde_json::to_value(schema).unwrap(),
                    &mut unbounded,
                );
            }
        }
        assert!(unbounded.is_empty(), "unbounded integers: {unbounded:#?}");
    }

    #[test]
    fn names_come_from_the_definitions() {
        let specs = workflows();
        let order = specs.iter().find(|w| w.name == "order").expect("order");
        let signals: Vec<&str> = order.signals.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(signals, ["approve", "reject"]);
        let updates: Vec<&str> = order.updates.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(updates, ["approve", "reject"]);
        assert_eq!(order.queries[0].name, "status");
    }
}
