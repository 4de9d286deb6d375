//! Every workflow's public contract in one list: type name, whether the edge may start it, and
//! the JSON Schemas of its input, result, signals and queries. `edgeflow schema export` writes it
//! out for the edge; names come from the workflow definitions themselves, never spelled twice.

use schemars::{JsonSchema, Schema, schema_for};
use temporalio_common::{QueryDefinition, SignalDefinition};

use crate::echo::{EchoInput, EchoWorkflow};
use crate::fanout::{FanoutInput, FanoutWorkflow};
use crate::order::{OrderInput, OrderResult, OrderWorkflow};
use crate::report::{ReportInput, ReportResult, ReportWorkflow};

/// One workflow's contract.
pub struct WorkflowSpec {
    pub name: &'static str,
    /// Callers at the edge may start it; others are for operators (`edgeflow start`).
    pub edge: bool,
    pub input: Schema,
    pub result: Schema,
    pub signals: Vec<MessageSpec>,
    pub queries: Vec<MessageSpec>,
}

/// A signal (schema of its payload) or a query (schema of its answer).
pub struct MessageSpec {
    pub name: String,
    pub schema: Schema,
}

fn signal<S: SignalDefinition>(s: S) -> MessageSpec
where
    S::Input: JsonSchema,
{
    MessageSpec {
        name: s.name().to_string(),
        schema: schema_for!(S::Input),
    }
}

fn query<Q: QueryDefinition>(q: Q) -> MessageSpec
where
    Q::Output: JsonSchema,
{
    MessageSpec {
        name: q.name().to_string(),
        schema: schema_for!(Q::Output),
    }
}

/// Every workflow the worker registers.
pub fn workflows() -> Vec<WorkflowSpec> {
    vec![
        WorkflowSpec {
            name: OrderWorkflow::name(),
            edge: true,
            input: schema_for!(OrderInput),
            result: schema_for!(OrderResult),
            signals: vec![
                signal(OrderWorkflow::approve),
                signal(OrderWorkflow::reject),
            ],
            queries: vec![query(OrderWorkflow::status)],
        },
        WorkflowSpec {
            name: ReportWorkflow::name(),
            edge: false,
            input: schema_for!(ReportInput),
            result: schema_for!(ReportResult),
            signals: vec![],
            queries: vec![],
        },
        WorkflowSpec {
            name: FanoutWorkflow::name(),
            edge: false,
            input: schema_for!(FanoutInput),
            result: schema_for!(serde_json::Value),
            signals: vec![],
            queries: vec![],
        },
        WorkflowSpec {
            name: EchoWorkflow::name(),
            edge: false,
            input: schema_for!(EchoInput),
            result: schema_for!(serde_json::Value),
            signals: vec![],
            queries: vec![],
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_definitions() {
        let specs = workflows();
        let order = specs.iter().find(|w| w.name == "order").expect("order");
        let signals: Vec<&str> = order.signals.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(signals, ["approve", "reject"]);
        assert_eq!(order.queries[0].name, "status");
    }
}
