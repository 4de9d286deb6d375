//! `db.execute` input and output: the contract with workflows.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Run one or more named statements, in order, in one transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DbExecuteInput {
    /// Step key, unique within the workflow; with the workflow id it keys the idempotency
    /// ledger: once a write with this key has committed, retries return its result.
    pub step: String,
    /// The statements, run in order; all commit or none do.
    pub statements: Vec<DbStatementCall>,
}

/// One named statement and its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DbStatementCall {
    /// Statement name: a file stem under `config/queries/`.
    pub name: String,
    /// Parameters by the names the statement declares (`-- params:`); always bound, never
    /// interpolated.
    #[serde(default)]
    pub params: Map<String, Value>,
}

/// What the transaction did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DbExecuteOutput {
    /// One result per statement, in order.
    pub results: Vec<DbStatementResult>,
    /// True when this is the stored result of an earlier attempt that committed (nothing was
    /// executed this time).
    pub replayed: bool,
}

/// One statement's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DbStatementResult {
    /// Statement name.
    pub name: String,
    /// Returned rows (column name → JSON value), at most `database.max_rows`.
    pub rows: Vec<Map<String, Value>>,
    /// Rows inserted, updated or deleted (PostgreSQL also counts selected rows).
    pub rows_affected: u64,
    /// True when more rows were returned than `rows` holds.
    pub truncated: bool,
}
