//! The connection pool (PostgreSQL or SQLite, chosen by URL), its migrations, and the
//! idempotency ledger shared by `db.execute` and `email.send`.
//!
//! The ledger is one table, `edgeflow_ledger (kind, workflow_id, step, result)`. For a db write
//! the row is claimed (`INSERT … ON CONFLICT DO NOTHING`) as the first statement of the
//! transaction and filled with the result before commit, so the row exists exactly when the
//! write committed; a concurrent duplicate attempt waits on the row lock (PostgreSQL) or the
//! write lock (SQLite) and then finds it. Rows are never deleted by edgeflow; prune old ones
//! with e.g. `DELETE FROM edgeflow_ledger WHERE created_at < now() - interval '90 days'` once
//! no workflow can retry that far back.

use std::str::FromStr;
use std::time::Duration;

use futures::TryStreamExt;
use secrecy::ExposeSecret;
use serde_json::{Map, Value};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Either, Executor, PgPool, Postgres, Sqlite, SqlitePool, Transaction};

use super::queries::Dialect;
use super::settings::DbSettings;
use super::values::{self, Bound};
use crate::IdempotencyKey;
use crate::failure::{Failure, classify_sqlite, from_sqlx};

/// The database could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    /// `database.url` does not name a supported database.
    #[error("database.url: must start with postgres://, postgresql:// or sqlite:")]
    UnsupportedUrl,
    /// Connecting failed.
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    /// A SQLite file's folder could not be created.
    #[error("cannot create the folder for the SQLite file `{path}`: {source}")]
    CreateDir {
        /// The folder.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A migration failed.
    #[error("cannot migrate the database: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

#[derive(Clone, Debug)]
enum Pool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// A pool on the configured database, migrated. Cheap to clone (the pool is shared).
#[derive(Clone, Debug)]
pub struct Database {
    pool: Pool,
}

/// Runs `start` up to 10 times while `lost_race` says its error came from another worker starting
/// on the same SQLite file at that moment, backing off 20 ms longer each time.
async fn retry_start_up_race<T, E, F>(
    mut start: impl FnMut() -> F,
    lost_race: impl Fn(&E) -> bool,
) -> Result<T, E>
where
    F: std::future::Future<Output = Result<T, E>>,
{
    const ATTEMPTS: u32 = 10;
    let mut attempt = 1;
    loop {
        match start().await {
            Err(error) if attempt < ATTEMPTS && lost_race(&error) => {
                tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// Run the SQLite migrations, tolerating another worker migrating the same file at once.
///
/// PostgreSQL's migrator holds an advisory lock; SQLite's has no lock, so two workers starting
/// together on one file can both try the same migration and one loses with a UNIQUE or
/// "already exists" error. Each migration is one transaction, so the loser changed nothing:
/// running the migrator again sees what the winner recorded and goes on from there.
async fn migrate_sqlite(pool: &sqlx::SqlitePool) -> Result<(), DatabaseError> {
    let mut migrator = super::migrations::sqlite()
        .await
        .map_err(DatabaseError::Migrate)?;
    migrator.set_ignore_missing(true);
    let migrator = &migrator;
    retry_start_up_race(
        || migrator.run(pool),
        |error| {
            matches!(
                error,
                sqlx::migrate::MigrateError::Execute(_)
                    | sqlx::migrate::MigrateError::ExecuteMigration(..)
            )
        },
    )
    .await
    .map_err(DatabaseError::Migrate)
}

/// Open the SQLite pool, tolerating another worker opening the same file at once.
///
/// Each new connection sets the file's journal mode to WAL, which takes a lock that SQLite can
/// report busy at once, without waiting out the busy timeout. A worker that loses that race (a
/// conflict, in the one classification of database errors) opens the pool again.
async fn open_sqlite(
    pool: SqlitePoolOptions,
    options: SqliteConnectOptions,
) -> Result<SqlitePool, DatabaseError> {
    retry_start_up_race(
        || pool.clone().connect_with(options.clone()),
        |error| match error {
            sqlx::Error::Database(error) => error
                .code()
                .and_then(|code| code.parse().ok())
                .is_some_and(|code| {
                    matches!(classify_sqlite(code, String::new()), Failure::DbConflict(_))
                }),
            _ => false,
        },
    )
    .await
    .map_err(DatabaseError::Connect)
}

impl Database {
    /// Connect (creating a SQLite file and its folder if needed) and run the migrations that
    /// create the ledger and the sample `orders` table.
    pub async fn connect(settings: &DbSettings) -> Result<Self, DatabaseError> {
        let url = settings.url.expose_secret();
        let acquire = Duration::from_secs_f64(settings.acquire_timeout_secs.max(0.001));
        let statement_timeout = Duration::from_secs_f64(settings.statement_timeout_secs.max(0.001));
        let pool = match Dialect::of_url(url).ok_or(DatabaseError::UnsupportedUrl)? {
            Dialect::Postgres => {
                let options = PgConnectOptions::from_str(url)
                    .map_err(DatabaseError::Connect)?
                    .application_name("edgeflow")
                    .options([(
                        "statement_timeout",
                        format!("{}ms", statement_timeout.as_millis()),
                    )]);
                let pool = PgPoolOptions::new()
                    .max_connections(settings.max_connections)
                    .acquire_timeout(acquire)
                    .connect_with(options)
                    .await
                    .map_err(DatabaseError::Connect)?;
                let mut migrator = super::migrations::postgres()
                    .await
                    .map_err(DatabaseError::Migrate)?;
                // The database may be shared with an application that has its own migrations.
                migrator.set_ignore_missing(true);
                migrator.run(&pool).await.map_err(DatabaseError::Migrate)?;
                Pool::Postgres(pool)
            }
            Dialect::Sqlite => {
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(DatabaseError::Connect)?
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(statement_timeout);
                let file = options.get_filename();
                if let Some(dir) = file.parent()
                    && !dir.as_os_str().is_empty()
                    && !file.as_os_str().to_string_lossy().starts_with(':')
                {
                    std::fs::create_dir_all(dir).map_err(|source| DatabaseError::CreateDir {
                        path: dir.display().to_string(),
                        source,
                    })?;
                }
                let pool = open_sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(settings.max_connections)
                        .acquire_timeout(acquire),
                    options,
                )
                .await?;
                migrate_sqlite(&pool).await?;
                Pool::Sqlite(pool)
            }
        };
        Ok(Self { pool })
    }

    /// Which dialect this database speaks.
    pub fn dialect(&self) -> Dialect {
        match self.pool {
            Pool::Postgres(_) => Dialect::Postgres,
            Pool::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// Close every connection (at shutdown, after the worker drained).
    pub async fn close(&self) {
        match &self.pool {
            Pool::Postgres(p) => p.close().await,
            Pool::Sqlite(p) => p.close().await,
        }
    }

    /// Ask the database to check a statement (syntax, tables, columns) and tell the parameter
    /// types it infers: `Some(types)` on PostgreSQL, `None` plus a count on SQLite.
    pub(crate) async fn describe(&self, sql: &str) -> Result<(Option<Vec<String>>, usize), String> {
        let describe_err = |e: sqlx::Error| match e {
            sqlx::Error::Database(db) => db.message().to_owned(),
            other => other.to_string(),
        };
        let parameters = match &self.pool {
            Pool::Postgres(p) => p
                .describe(sql)
                .await
                .map_err(describe_err)?
                .parameters()
                .map(|params| match params {
                    Either::Left(types) => {
                        let names: Vec<String> = types
                            .iter()
                            .map(|t| sqlx::TypeInfo::name(t).to_owned())
                            .collect();
                        (Some(names.clone()), names.len())
                    }
                    Either::Right(n) => (None, n),
                }),
            Pool::Sqlite(p) => p
                .describe(sql)
                .await
                .map_err(describe_err)?
                .parameters()
                .map(|params| match params {
                    Either::Left(types) => (None, types.len()),
                    Either::Right(n) => (None, n),
                }),
        };
        Ok(parameters.unwrap_or((None, 0)))
    }

    pub(crate) async fn begin(&self) -> Result<Tx, Failure> {
        Ok(match &self.pool {
            Pool::Postgres(p) => Tx::Postgres(p.begin().await.map_err(from_sqlx)?),
            Pool::Sqlite(p) => Tx::Sqlite(p.begin().await.map_err(from_sqlx)?),
        })
    }

    /// One pooled connection for the ledger of a side effect that has no transaction of its own
    /// (an email): taken before the side effect, so recording it afterwards never waits for the
    /// pool.
    pub(crate) async fn ledger_connection(&self) -> Result<LedgerConnection, Failure> {
        Ok(match &self.pool {
            Pool::Postgres(p) => LedgerConnection::Postgres(p.acquire().await.map_err(from_sqlx)?),
            Pool::Sqlite(p) => LedgerConnection::Sqlite(p.acquire().await.map_err(from_sqlx)?),
        })
    }
}

/// A connection held for one side effect's ledger row (see [`Database::ledger_connection`]).
pub(crate) enum LedgerConnection {
    Postgres(PoolConnection<Postgres>),
    Sqlite(PoolConnection<Sqlite>),
}

impl LedgerConnection {
    /// The recorded result of side effect `kind` for `key`, if it happened.
    pub(crate) async fn get(
        &mut self,
        kind: &str,
        key: &IdempotencyKey,
    ) -> Result<Option<String>, Failure> {
        let sql =
            "SELECT result FROM edgeflow_ledger WHERE kind = $1 AND workflow_id = $2 AND step = $3";
        let row: Option<(Option<String>,)> = match self {
            LedgerConnection::Postgres(c) => sqlx::query_as(sql)
                .bind(kind)
                .bind(key.workflow_id())
                .bind(key.step())
                .fetch_optional(&mut **c)
                .await
                .map_err(from_sqlx)?,
            LedgerConnection::Sqlite(c) => sqlx::query_as(sql)
                .bind(kind)
                .bind(key.workflow_id())
                .bind(key.step())
                .fetch_optional(&mut **c)
                .await
                .map_err(from_sqlx)?,
        };
        Ok(row.and_then(|(result,)| result))
    }

    /// Record that side effect `kind` for `key` happened, with its result (first record wins).
    pub(crate) async fn put(
        &mut self,
        kind: &str,
        key: &IdempotencyKey,
        result: &str,
    ) -> Result<(), Failure> {
        let sql = "INSERT INTO edgeflow_ledger (kind, workflow_id, step, result) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";
        match self {
            LedgerConnection::Postgres(c) => sqlx::query(sql)
                .bind(kind)
                .bind(key.workflow_id())
                .bind(key.step())
                .bind(result)
                .execute(&mut **c)
                .await
                .map(drop),
            LedgerConnection::Sqlite(c) => sqlx::query(sql)
                .bind(kind)
                .bind(key.workflow_id())
                .bind(key.step())
                .bind(result)
                .execute(&mut **c)
                .await
                .map(drop),
        }
        .map_err(from_sqlx)
    }
}

/// An open transaction; dropped without [`Tx::commit`] it rolls back.
pub(crate) enum Tx {
    Postgres(Transaction<'static, Postgres>),
    Sqlite(Transaction<'static, Sqlite>),
}

/// One statement's rows, capped.
pub(crate) struct Rows {
    pub rows: Vec<Map<String, Value>>,
    pub rows_affected: u64,
    pub truncated: bool,
}

impl Tx {
    /// Claim the ledger row for `key`: true if this transaction now owns it, false if an
    /// earlier transaction committed it.
    pub(crate) async fn claim(
        &mut self,
        kind: &str,
        key: &IdempotencyKey,
    ) -> Result<bool, Failure> {
        let sql = "INSERT INTO edgeflow_ledger (kind, workflow_id, step) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
        let affected = match self {
            Tx::Postgres(tx) => sqlx::query(sql)
                .bind(kind)
                .bind(key.workflow_id())
                .bind(key.step())
                .execute(&mut **tx)
                .await
                .map(|r| r.rows_affected()),
            Tx::Sqlite(tx) => sqlx::query(sql)
                .bind(kind)
                .bind(key.workflow_id())
                .bind(key.step())
                .execute(&mut **tx)
                .await
                .map(|r| r.rows_affected()),
        }
        .map_err(from_sqlx)?;
        Ok(affected == 1)
    }

    /// The result stored with `key`'s ledger row.
    pub(crate) async fn stored(
        &mut self,
        kind: &str,
        key: &IdempotencyKey,
    ) -> Result<Option<String>, Failure> {
        let sql =
            "SELECT result FROM edgeflow_ledger WHERE kind = $1 AND workflow_id = $2 AND step = $3";
        let row: Option<(Option<String>,)> = match self {
            Tx::Postgres(tx) => {
                sqlx::query_as(sql)
                    .bind(kind)
                    .bind(key.workflow_id())
                    .bind(key.step())
                    .fetch_optional(&mut **tx)
                    .await
            }
            Tx::Sqlite(tx) => {
                sqlx::query_as(sql)
                    .bind(kind)
                    .bind(key.workflow_id())
                    .bind(key.step())
                    .fetch_optional(&mut **tx)
                    .await
            }
        }
        .map_err(from_sqlx)?;
        Ok(row.and_then(|(r,)| r))
    }

    /// Fill the claimed ledger row with the result.
    pub(crate) async fn record(
        &mut self,
        kind: &str,
        key: &IdempotencyKey,
        result: &str,
    ) -> Result<(), Failure> {
        let sql = "UPDATE edgeflow_ledger SET result = $4 WHERE kind = $1 AND workflow_id = $2 AND step = $3";
        match self {
            Tx::Postgres(tx) => sqlx::query(sql)
                .bind(kind)
                .bind(key.workflow_id())
                .bind(key.step())
                .bind(result)
                .execute(&mut **tx)
                .await
                .map(drop),
            Tx::Sqlite(tx) => sqlx::query(sql)
                .bind(kind)
                .bind(key.workflow_id())
                .bind(key.step())
                .bind(result)
                .execute(&mut **tx)
                .await
                .map(drop),
        }
        .map_err(from_sqlx)
    }

    /// Run one statement with bound parameters, keeping at most `max_rows` rows. With
    /// `read_only`, stops reading once the cap is passed; otherwise reads to the end, so a
    /// write with `RETURNING` is never cut short.
    pub(crate) async fn run(
        &mut self,
        sql: &str,
        params: &[Bound],
        max_rows: usize,
        read_only: bool,
    ) -> Result<Rows, Failure> {
        let mut out = Rows {
            rows: Vec::new(),
            rows_affected: 0,
            truncated: false,
        };
        macro_rules! drain {
            ($stream:expr, $to_json:path) => {{
                let mut stream = $stream;
                while let Some(item) = stream.try_next().await.map_err(from_sqlx)? {
                    match item {
                        Either::Left(done) => out.rows_affected += done.rows_affected(),
                        Either::Right(row) if out.rows.len() < max_rows => {
                            out.rows.push($to_json(&row)?)
                        }
                        Either::Right(_) => {
                            out.truncated = true;
                            if read_only {
                                break;
                            }
                        }
                    }
                }
            }};
        }
        match self {
            Tx::Postgres(tx) => {
                let query = sqlx::query_with(sql, values::pg_arguments(params)?);
                drain!((&mut **tx).fetch_many(query), values::pg_row)
            }
            Tx::Sqlite(tx) => {
                let query = sqlx::query_with(sql, values::sqlite_arguments(params)?);
                drain!((&mut **tx).fetch_many(query), values::sqlite_row)
            }
        }
        Ok(out)
    }

    pub(crate) async fn commit(self) -> Result<(), Failure> {
        match self {
            Tx::Postgres(tx) => tx.commit().await,
            Tx::Sqlite(tx) => tx.commit().await,
        }
        .map_err(from_sqlx)
    }

    pub(crate) async fn rollback(self) -> Result<(), Failure> {
        match self {
            Tx::Postgres(tx) => tx.rollback().await,
            Tx::Sqlite(tx) => tx.rollback().await,
        }
        .map_err(from_sqlx)
    }
}
