//! `db.execute`: the same suite on a real PostgreSQL cluster and on SQLite.
//!
//! Each case is one async function taking a database URL; `both!` runs it on a fresh SQLite
//! file and on a fresh database of one PostgreSQL cluster shared by this test binary.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use edgeflow_activities::db::{
    Database, DbActivities, DbExecuteInput, DbExecuteOutput, DbSettings, DbStatementCall,
};
use edgeflow_activities::{CallContext, Failure, Retry};
use edgeflow_testkit::postgres::Postgres;
use serde_json::{Value, json};

fn postgres() -> &'static Postgres {
    static PG: OnceLock<Postgres> = OnceLock::new();
    PG.get_or_init(|| Postgres::start().expect("start PostgreSQL"))
}

/// A database URL plus whatever must live as long as it (the SQLite file's folder).
struct Target {
    url: String,
    _dir: Option<tempfile::TempDir>,
}

fn sqlite() -> Target {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}/nested/edgeflow.db?mode=rwc",
        dir.path().display()
    );
    Target {
        url,
        _dir: Some(dir),
    }
}

fn pg() -> Target {
    Target {
        url: postgres().create_database().unwrap(),
        _dir: None,
    }
}

macro_rules! both {
    ($case:ident) => {
        mod $case {
            #[tokio::test]
            async fn sqlite() {
                super::$case(super::sqlite()).await;
            }
            #[tokio::test]
            async fn postgres() {
                super::$case(super::pg()).await;
            }
        }
    };
}

/// The shipped statements plus test-only ones on an `events` table without a unique key (so
/// only the ledger can stop a duplicate insert).
fn queries_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/queries");
    for entry in std::fs::read_dir(shipped).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write(
        "add_event.sql",
        "-- params: note\nINSERT INTO events (note) VALUES ($1) RETURNING note",
    );
    write(
        "count_events.sql",
        "-- mode: read\nSELECT count(*) AS n FROM events",
    );
    write(
        "list_events.sql",
        "-- mode: read\nSELECT note FROM events ORDER BY note",
    );
    dir
}

struct Fixture {
    db: DbActivities,
    _queries: tempfile::TempDir,
    _target: Target,
}

async fn fixture_with(target: Target, max_rows: usize) -> Fixture {
    let queries = queries_dir();
    let settings = DbSettings {
        url: target.url.clone().into(),
        queries_dir: queries.path().to_owned(),
        max_rows,
        ..Default::default()
    };
    assert_eq!(settings.validate(), vec![]);
    let database = Database::connect(&settings).await.unwrap();
    // A table the migrations do not create, for the test statements.
    create_events_table(&target.url).await;
    let db = DbActivities::new(database, &settings).await.unwrap();
    Fixture {
        db,
        _queries: queries,
        _target: target,
    }
}

async fn fixture(target: Target) -> Fixture {
    fixture_with(target, 1000).await
}

async fn create_events_table(url: &str) {
    let ddl = "CREATE TABLE IF NOT EXISTS events (note TEXT NOT NULL)";
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        sqlx::query(ddl).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query(ddl).execute(&pool).await.unwrap();
        pool.close().await;
    }
}

fn call(name: &str, params: Value) -> DbStatementCall {
    DbStatementCall {
        name: name.into(),
        params: params.as_object().cloned().unwrap_or_default(),
    }
}

fn input(step: &str, statements: Vec<DbStatementCall>) -> DbExecuteInput {
    DbExecuteInput {
        step: step.into(),
        statements,
    }
}

fn order(id: &str, total_cents: i64) -> DbStatementCall {
    call(
        "insert_order",
        json!({"order_id": id, "customer_email": "ada@example.com", "total_cents": total_cents, "currency": "EUR"}),
    )
}

fn ctx() -> CallContext {
    CallContext::detached("order-workflow-7", "run-1")
}

impl Fixture {
    async fn run(
        &self,
        ctx: &CallContext,
        input: DbExecuteInput,
    ) -> Result<DbExecuteOutput, Failure> {
        self.db.execute_statements(ctx, input).await
    }

    async fn count_events(&self) -> i64 {
        let out = self
            .run(
                &ctx(),
                input("count", vec![call("count_events", json!({}))]),
            )
            .await
            .unwrap();
        out.results[0].rows[0]["n"].as_i64().unwrap()
    }

    async fn get_order(&self, id: &str) -> Option<serde_json::Map<String, Value>> {
        let out = self
            .run(
                &ctx(),
                input("get", vec![call("get_order", json!({"order_id": id}))]),
            )
            .await
            .unwrap();
        out.results[0].rows.first().cloned()
    }
}

async fn insert_and_read_back(target: Target) {
    let f = fixture(target).await;
    let out = f
        .run(&ctx(), input("create", vec![order("o-1", 1250)]))
        .await
        .unwrap();
    assert!(!out.replayed);
    assert_eq!(out.results[0].name, "insert_order");
    assert_eq!(
        out.results[0].rows,
        vec![
            json!({"order_id": "o-1", "status": "pending"})
                .as_object()
                .unwrap()
                .clone()
        ]
    );

    let row = f.get_order("o-1").await.unwrap();
    assert_eq!(row["order_id"], "o-1");
    assert_eq!(row["customer_email"], "ada@example.com");
    assert_eq!(
        row["total_cents"], 1250,
        "integers are JSON numbers on both databases"
    );
    assert_eq!(row["currency"], "EUR");
    let created = row["created_at"].as_str().unwrap();
    assert!(
        created.starts_with("20") && created.ends_with('Z'),
        "{created}"
    );
    assert!(f.get_order("o-404").await.is_none());
}
both!(insert_and_read_back);

async fn a_retried_write_does_not_write_twice(target: Target) {
    let f = fixture(target).await;
    let step = input(
        "record",
        vec![
            call("add_event", json!({"note": "paid"})),
            order("o-2", 500),
        ],
    );
    let first = f.run(&ctx(), step.clone()).await.unwrap();
    // Temporal retries (the first attempt committed but its completion was lost).
    let second = f.run(&ctx().with_attempt(2), step.clone()).await.unwrap();
    assert!(!first.replayed);
    assert!(second.replayed);
    assert_eq!(
        first.results, second.results,
        "the retry returns the first result"
    );
    assert_eq!(f.count_events().await, 1, "the event was written once");

    // The same statements under another step are a new write.
    let mut again = step;
    again.step = "record-again".into();
    again.statements.pop();
    f.run(&ctx(), again).await.unwrap();
    assert_eq!(f.count_events().await, 2);
}
both!(a_retried_write_does_not_write_twice);

async fn concurrent_duplicate_attempts_write_once(target: Target) {
    let f = Arc::new(fixture(target).await);
    let step = input("race", vec![call("add_event", json!({"note": "once"}))]);
    let attempts: Vec<_> = (0..4)
        .map(|i| {
            let (f, step) = (f.clone(), step.clone());
            tokio::spawn(async move { f.run(&ctx().with_attempt(i + 1), step).await })
        })
        .collect();
    let mut replayed = 0;
    for attempt in attempts {
        let out = attempt.await.unwrap().unwrap();
        replayed += usize::from(out.replayed);
    }
    assert_eq!(replayed, 3);
    assert_eq!(f.count_events().await, 1);
}
both!(concurrent_duplicate_attempts_write_once);

async fn a_failing_statement_rolls_back_the_whole_transaction(target: Target) {
    let f = fixture(target).await;
    let doomed = input(
        "checkout",
        vec![
            call("add_event", json!({"note": "started"})),
            order("o-3", 100),
            order("o-4", -5), // CHECK (total_cents >= 0)
        ],
    );
    let err = f.run(&ctx(), doomed.clone()).await.unwrap_err();
    assert!(matches!(err, Failure::Constraint(_)), "{err:?}");
    assert_eq!(err.retry(), Retry::No);
    assert_eq!(f.count_events().await, 0);
    assert!(f.get_order("o-3").await.is_none());

    // The ledger row rolled back too: the corrected step runs for real.
    let mut fixed = doomed;
    fixed.statements[2] = order("o-4", 5);
    let out = f.run(&ctx(), fixed).await.unwrap();
    assert!(!out.replayed);
    assert_eq!(f.count_events().await, 1);
    assert!(f.get_order("o-4").await.is_some());
}
both!(a_failing_statement_rolls_back_the_whole_transaction);

async fn constraint_violations_are_not_retried(target: Target) {
    let f = fixture(target).await;
    f.run(&ctx(), input("a", vec![order("dup", 1)]))
        .await
        .unwrap();
    let err = f
        .run(&ctx(), input("b", vec![order("dup", 1)]))
        .await
        .unwrap_err();
    assert!(matches!(err, Failure::Constraint(_)), "{err:?}");
    assert_eq!(err.retry(), Retry::No);
}
both!(constraint_violations_are_not_retried);

async fn bad_input_is_refused_before_the_database(target: Target) {
    let f = fixture(target).await;
    let cases = vec![
        (
            input("s", vec![call("drop_everything", json!({}))]),
            "UnknownName",
        ),
        (
            input("s", vec![call("get_order", json!({}))]),
            "InvalidInput",
        ),
        (
            input(
                "s",
                vec![call("get_order", json!({"order_id": "x", "extra": 1}))],
            ),
            "InvalidInput",
        ),
        (input("s", vec![]), "InvalidInput"),
        (
            input("", vec![call("count_events", json!({}))]),
            "InvalidInput",
        ),
    ];
    for (bad, kind) in cases {
        let err = f.run(&ctx(), bad.clone()).await.unwrap_err();
        assert_eq!(err.type_name(), kind, "{bad:?}: {err}");
        assert_eq!(err.retry(), Retry::No);
    }
    // An injection attempt is just a value.
    let out = f
        .run(
            &ctx(),
            input(
                "s",
                vec![call("get_order", json!({"order_id": "x' OR '1'='1"}))],
            ),
        )
        .await
        .unwrap();
    assert!(out.results[0].rows.is_empty());
}
both!(bad_input_is_refused_before_the_database);

async fn reusing_a_step_for_other_statements_is_refused(target: Target) {
    let f = fixture(target).await;
    f.run(
        &ctx(),
        input("s", vec![call("add_event", json!({"note": "a"}))]),
    )
    .await
    .unwrap();
    let err = f
        .run(&ctx(), input("s", vec![order("o-9", 1)]))
        .await
        .unwrap_err();
    assert!(matches!(err, Failure::InvalidInput(_)), "{err:?}");
    assert!(f.get_order("o-9").await.is_none());
}
both!(reusing_a_step_for_other_statements_is_refused);

async fn reads_are_not_replayed_and_rows_are_capped(target: Target) {
    let f = fixture_with(target, 2).await;
    for (i, note) in ["a", "b", "c"].iter().enumerate() {
        f.run(
            &ctx(),
            input(
                &format!("e{i}"),
                vec![call("add_event", json!({"note": note}))],
            ),
        )
        .await
        .unwrap();
    }
    let list = || input("list", vec![call("list_events", json!({}))]);
    let out = f.run(&ctx(), list()).await.unwrap();
    assert_eq!(out.results[0].rows.len(), 2);
    assert!(out.results[0].truncated);
    assert_eq!(out.results[0].rows[1]["note"], "b");
    // A read with the same step sees new data: reads are not recorded in the ledger.
    assert_eq!(f.count_events().await, 3);
    f.run(
        &ctx(),
        input("e4", vec![call("add_event", json!({"note": "d"}))]),
    )
    .await
    .unwrap();
    assert_eq!(f.count_events().await, 4);
    assert!(!f.run(&ctx(), list()).await.unwrap().replayed);
}
both!(reads_are_not_replayed_and_rows_are_capped);

async fn statements_are_checked_against_the_database_at_start_up(target: Target) {
    let queries = tempfile::tempdir().unwrap();
    std::fs::write(
        queries.path().join("ok.sql"),
        "-- mode: read\nSELECT 1 AS one",
    )
    .unwrap();
    std::fs::write(
        queries.path().join("typo.sql"),
        "-- mode: read\nSELECT * FROM ordres",
    )
    .unwrap();
    std::fs::write(
        queries.path().join("missing_column.sql"),
        "-- params: id\nUPDATE orders SET colour = 'red' WHERE order_id = $1",
    )
    .unwrap();
    let settings = DbSettings {
        url: target.url.clone().into(),
        queries_dir: queries.path().to_owned(),
        ..Default::default()
    };
    let database = Database::connect(&settings).await.unwrap();
    let err = DbActivities::new(database, &settings)
        .await
        .err()
        .expect("bad statements are refused");
    assert_eq!(err.problems.len(), 2, "{err}");
    assert!(err.problems[0].starts_with("missing_column:"), "{err}");
    assert!(err.problems[1].starts_with("typo:"), "{err}");
}
both!(statements_are_checked_against_the_database_at_start_up);

#[tokio::test]
async fn postgres_parameters_are_typed_by_the_server() {
    let f = fixture(pg()).await;
    let err = f
        .run(
            &ctx(),
            input(
                "typed",
                vec![call(
                    "insert_order",
                    json!({"order_id": "o", "customer_email": "a@b.c", "total_cents": "12", "currency": "EUR"}),
                )],
            ),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Failure::InvalidInput(_)), "{err:?}");
    assert!(err.to_string().contains("total_cents"), "{err}");
}

#[tokio::test]
async fn an_unreachable_database_is_retryable() {
    let f = fixture(pg()).await;
    // Point a second instance at a port nobody listens on; connecting fails at start-up…
    let port = edgeflow_testkit::tools::free_port();
    let settings = DbSettings {
        url: format!("postgres://postgres@127.0.0.1:{port}/x").into(),
        acquire_timeout_secs: 0.5,
        ..Default::default()
    };
    assert!(Database::connect(&settings).await.is_err());
    // …and a pool whose server disappears mid-life reports it as retryable.
    f.db.database().close().await;
    let err = f
        .run(
            &ctx(),
            input("after-close", vec![call("count_events", json!({}))]),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Failure::DbUnavailable(_)), "{err:?}");
    assert_eq!(err.retry(), Retry::Yes { after: None });
}

/// Workers started together on one SQLite file all come up: SQLite's migrator takes no lock,
/// so the ones that lose the race to record a migration run again and find it applied.
#[tokio::test]
async fn workers_starting_together_on_one_sqlite_file_all_migrate() {
    for _ in 0..5 {
        let target = sqlite();
        let settings = DbSettings {
            url: target.url.clone().into(),
            ..Default::default()
        };
        let connects = (0..6).map(|_| Database::connect(&settings));
        for result in futures::future::join_all(connects).await {
            let database = result.expect("every worker migrates the shared file");
            database.close().await;
        }
    }
}
