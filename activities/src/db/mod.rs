//! `db.execute`: run named SQL statements, in one transaction, exactly once per step.
//!
//! Statements live in files under `config/queries/` (see `queries` for the format), are loaded
//! and checked against the database at start-up, and are referred to by name; their
//! parameters are always bound, never interpolated. A call that includes a `write` statement
//! claims an idempotency ledger row (workflow id + step) inside the same transaction and stores
//! its result there: a retry whose first attempt committed gets that result back
//! (`replayed: true`) and writes nothing. If any statement fails, the whole transaction, ledger
//! row included, rolls back.
//!
//! Constraint violations and bad parameters fail for good; lost connections, pool timeouts,
//! serialization failures and deadlocks are retried (see [`Failure`](crate::Failure)).

mod model;
pub use model::{DbExecuteInput, DbExecuteOutput, DbStatementCall, DbStatementResult};

#[cfg(feature = "runtime")]
mod database;
#[cfg(feature = "runtime")]
mod migrations;
#[cfg(feature = "runtime")]
pub mod queries;
#[cfg(feature = "runtime")]
mod settings;
#[cfg(feature = "runtime")]
mod values;

#[cfg(feature = "runtime")]
pub(crate) use database::LedgerConnection;
#[cfg(feature = "runtime")]
pub use database::{Database, DatabaseError};
#[cfg(feature = "runtime")]
pub use queries::Dialect;
#[cfg(feature = "runtime")]
pub use runtime::{DbActivities, DbBuildError};
#[cfg(feature = "runtime")]
pub use settings::{DEFAULT_DATABASE_URL, DbSettings};

#[cfg(feature = "runtime")]
mod runtime {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use temporalio_macros::activities;
    use temporalio_sdk::activities::{ActivityContext, ActivityError};
    use tracing::{Instrument, instrument};

    use super::queries::{self, Mode, Statement};
    use super::values::{self, Bound};
    use super::{
        Database, DbExecuteInput, DbExecuteOutput, DbSettings, DbStatementResult, Dialect,
    };
    use crate::{CallContext, Failure, Untrusted, names};

    /// The most statements one call may run.
    pub const MAX_STATEMENTS: usize = 32;
    const LEDGER_KIND: &str = "db";

    /// A statement checked against the database.
    struct Prepared {
        statement: Statement,
        /// PostgreSQL: the parameter types the server inferred.
        pg_types: Option<Vec<String>>,
    }

    /// The `db` family: the pool and the checked statements. Clones share both.
    #[derive(Clone)]
    pub struct DbActivities {
        db: Database,
        statements: Arc<BTreeMap<String, Prepared>>,
        max_rows: usize,
    }

    /// The statements could not be loaded or did not check out against the database.
    #[derive(Debug, thiserror::Error)]
    #[error("database.queries_dir: {}", .problems.join("; "))]
    pub struct DbBuildError {
        /// Every problem, each naming its statement file.
        pub problems: Vec<String>,
    }

    impl DbActivities {
        /// Load the statements from `settings.queries_dir` and have the database check each
        /// one (syntax, tables, columns, parameter count). Reports every bad statement.
        pub async fn new(db: Database, settings: &DbSettings) -> Result<Self, DbBuildError> {
            let loaded = queries::load(&settings.queries_dir, db.dialect())
                .map_err(|problems| DbBuildError { problems })?;
            let mut problems = Vec::new();
            let mut statements = BTreeMap::new();
            for (name, statement) in loaded {
                match db.describe(&statement.sql).await {
                    Err(message) => problems.push(format!("{name}: {message}")),
                    Ok((_, count)) if count != statement.params.len() => problems.push(format!(
                        "{name}: the database counts {count} parameter(s), `-- params:` names {}",
                        statement.params.len()
                    )),
                    Ok((pg_types, _)) => {
                        statements.insert(
                            name,
                            Prepared {
                                statement,
                                pg_types,
                            },
                        );
                    }
                }
            }
            if !problems.is_empty() {
                return Err(DbBuildError { problems });
            }
            tracing::info!(
                statements = statements.len(),
                dialect = db.dialect().as_str(),
                "loaded named statements"
            );
            Ok(Self {
                db,
                statements: Arc::new(statements),
                max_rows: settings.max_rows.max(1),
            })
        }

        /// The database (shared with the email sent-ledger).
        pub fn database(&self) -> &Database {
            &self.db
        }

        /// Names of the loaded statements.
        pub fn statements(&self) -> impl Iterator<Item = &str> {
            self.statements.keys().map(String::as_str)
        }

        /// `db.execute` without the SDK wrapper: what the activity does, given its caller.
        #[instrument(name = "db.execute", skip_all, fields(step = %input.step, statements = input.statements.len()))]
        pub async fn execute_statements(
            &self,
            ctx: &CallContext,
            input: DbExecuteInput,
        ) -> Result<DbExecuteOutput, Failure> {
            ctx.guard(self.run(ctx, input)).await
        }

        async fn run(
            &self,
            ctx: &CallContext,
            input: DbExecuteInput,
        ) -> Result<DbExecuteOutput, Failure> {
            let key = ctx.key(&input.step)?;
            if input.statements.is_empty() || input.statements.len() > MAX_STATEMENTS {
                return Err(Failure::invalid_input(format!(
                    "give between 1 and {MAX_STATEMENTS} statements"
                )));
            }
            // Resolve names and convert every parameter before touching the database.
            let mut plan = Vec::with_capacity(input.statements.len());
            for call in &input.statements {
                let prepared =
                    self.statements
                        .get(&call.name)
                        .ok_or_else(|| Failure::UnknownName {
                            kind: "statement",
                            name: call.name.clone(),
                        })?;
                plan.push((prepared, self.bind(prepared, &call.params)?));
            }
            let names: Vec<&str> = input.statements.iter().map(|c| c.name.as_str()).collect();
            let writes = plan.iter().any(|(p, _)| p.statement.mode == Mode::Write);

            let mut tx = self.db.begin().await?;
            if writes && !tx.claim(LEDGER_KIND, &key).await? {
                let stored = tx.stored(LEDGER_KIND, &key).await?;
                tx.rollback().await?;
                return replay(stored, &names, &input.step);
            }
            let mut results = Vec::with_capacity(plan.len());
            for (prepared, params) in &plan {
                let read_only = prepared.statement.mode == Mode::Read;
                // One span per statement: a trace shows which statement of the step was slow.
                let span = tracing::info_span!(
                    "db.statement",
                    statement = %prepared.statement.name,
                    otel.kind = "client",
                    db.system.name = self.db.dialect().as_str(),
                );
                let rows = tx
                    .run(&prepared.statement.sql, params, self.max_rows, read_only)
                    .instrument(span)
                    .await?;
                results.push(DbStatementResult {
                    name: prepared.statement.name.clone(),
                    rows: rows.rows,
                    rows_affected: rows.rows_affected,
                    truncated: rows.truncated,
                });
            }
            if writes {
                let stored = serde_json::to_string(&results)
                    .map_err(|e| Failure::Internal(format!("cannot store the result: {e}")))?;
                tx.record(LEDGER_KIND, &key, &stored).await?;
            }
            tx.commit().await?;
            Ok(DbExecuteOutput {
                results,
                replayed: false,
            })
        }

        fn bind(
            &self,
            prepared: &Prepared,
            params: &serde_json::Map<String, serde_json::Value>,
        ) -> Result<Vec<Bound>, Failure> {
            let statement = &prepared.statement;
            if let Some(unknown) = params.keys().find(|k| !statement.params.contains(k)) {
                return Err(Failure::invalid_input(format!(
                    "statement `{}` has no parameter `{unknown}` (it takes: {})",
                    statement.name,
                    statement.params.join(", ")
                )));
            }
            statement
                .params
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    let value = params.get(name).ok_or_else(|| {
                        Failure::invalid_input(format!(
                            "statement `{}` needs parameter `{name}` (use null for NULL)",
                            statement.name
                        ))
                    })?;
                    match (self.db.dialect(), &prepared.pg_types) {
                        (Dialect::Postgres, Some(types)) => {
                            values::pg_param(name, &types[i], value)
                        }
                        _ => Ok(values::sqlite_param(value)),
                    }
                })
                .collect()
        }
    }

    /// The answer for a step whose write already committed.
    fn replay(
        stored: Option<String>,
        names: &[&str],
        step: &str,
    ) -> Result<DbExecuteOutput, Failure> {
        let stored = stored.ok_or_else(|| {
            Failure::Internal("the ledger row for this step has no result".into())
        })?;
        let results: Vec<DbStatementResult> = serde_json::from_str(&stored)
            .map_err(|e| Failure::Internal(format!("unreadable ledger result: {e}")))?;
        let stored_names: Vec<&str> = results.iter().map(|r| r.name.as_str()).collect();
        if stored_names != names {
            return Err(Failure::invalid_input(format!(
                "step `{step}` already ran [{}] in this workflow; use a new step key for [{}]",
                stored_names.join(", "),
                names.join(", ")
            )));
        }
        tracing::info!("write already committed by an earlier attempt; returning its result");
        Ok(DbExecuteOutput {
            results,
            replayed: true,
        })
    }

    #[activities]
    impl DbActivities {
        /// Registered as `db.execute`.
        #[activity(name = names::DB_EXECUTE)]
        pub async fn execute(
            self: Arc<Self>,
            ctx: ActivityContext,
            input: Untrusted<DbExecuteInput>,
        ) -> Result<DbExecuteOutput, ActivityError> {
            let input = input
                .0
                .map_err(|e| crate::Failure::InvalidInput(e).into_activity_error())?;
            let call = CallContext::from_activity(&ctx);
            self.execute_statements(&call, input)
                .await
                .map_err(Failure::into_activity_error)
        }
    }
}
