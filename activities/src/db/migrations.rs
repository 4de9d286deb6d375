//! The schema edgeflow owns (the idempotency ledger, the order tables), one migration set per
//! dialect, embedded in the binary.
//!
//! They reach sqlx's `Migrator` at run time rather than through its `migrate!` macro: the macro
//! needs sqlx's `macros` feature, which compiles sqlx's core, PostgreSQL and SQLite crates a second
//! time (for the compiler, with other features) in every cold build. What the macro would give is
//! given here the same way: version and description from the file name, the SQL as written (its
//! SHA-384 is the checksum sqlx records), so databases migrated by earlier builds stay valid.

use std::borrow::Cow;

use futures::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{MigrateError, Migration, MigrationSource, MigrationType, Migrator};

/// `migrations/sqlite/`, by file name.
const SQLITE: &[(&str, &str)] = &[
    (
        "0001_edgeflow_ledger.sql",
        include_str!("../../migrations/sqlite/0001_edgeflow_ledger.sql"),
    ),
    (
        "0002_orders.sql",
        include_str!("../../migrations/sqlite/0002_orders.sql"),
    ),
    (
        "0003_orders_keyed_by_run.sql",
        include_str!("../../migrations/sqlite/0003_orders_keyed_by_run.sql"),
    ),
];

/// `migrations/postgres/`, by file name.
const POSTGRES: &[(&str, &str)] = &[
    (
        "0001_edgeflow_ledger.sql",
        include_str!("../../migrations/postgres/0001_edgeflow_ledger.sql"),
    ),
    (
        "0002_orders.sql",
        include_str!("../../migrations/postgres/0002_orders.sql"),
    ),
    (
        "0003_orders_keyed_by_run.sql",
        include_str!("../../migrations/postgres/0003_orders_keyed_by_run.sql"),
    ),
];

/// The SQLite migrations.
pub(crate) async fn sqlite() -> Result<Migrator, MigrateError> {
    Migrator::new(Embedded(SQLITE)).await
}

/// The PostgreSQL migrations.
pub(crate) async fn postgres() -> Result<Migrator, MigrateError> {
    Migrator::new(Embedded(POSTGRES)).await
}

#[derive(Debug)]
struct Embedded(&'static [(&'static str, &'static str)]);

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move {
            self.0
                .iter()
                .map(|(file, sql)| migration(file, sql))
                .collect()
        })
    }
}

/// `0002_orders.sql` → version 2, description `orders`, as sqlx names a migration file.
fn migration(file: &str, sql: &'static str) -> Result<Migration, BoxDynError> {
    let (version, description) = file
        .strip_suffix(".sql")
        .and_then(|stem| stem.split_once('_'))
        .ok_or_else(|| format!("migration {file} is not named VERSION_DESCRIPTION.sql"))?;
    Ok(Migration::new(
        version.parse()?,
        Cow::Owned(description.replace('_', " ")),
        MigrationType::Simple,
        Cow::Borrowed(sql),
        false,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file added to a migrations folder and not embedded here would never run.
    #[test]
    fn every_migration_file_is_embedded_under_its_own_name() {
        for (dialect, embedded) in [("sqlite", SQLITE), ("postgres", POSTGRES)] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(dialect);
            let mut files: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            files.sort();
            let names: Vec<String> = embedded.iter().map(|(f, _)| f.to_string()).collect();
            assert_eq!(names, files, "{dialect}");
            for (file, sql) in embedded {
                assert_eq!(
                    std::fs::read_to_string(dir.join(file)).unwrap(),
                    *sql,
                    "{dialect}/{file}"
                );
            }
        }
    }

    /// A database migrated by a build before orders were keyed by their run keeps its orders, each
    /// under its `order_id` (what its runs still use), and then takes a second order with the same id.
    #[tokio::test]
    async fn orders_recorded_before_keying_by_run_keep_their_id_as_their_reference() {
        use sqlx::Connection;
        let mut db = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        Migrator::new(Embedded(&SQLITE[..2]))
            .await
            .unwrap()
            .run(&mut db)
            .await
            .unwrap();
        sqlx::query("INSERT INTO orders (order_id, customer_email, total_cents) VALUES ('ord-1', 'a@example.com', 100)")
            .execute(&mut db)
            .await
            .unwrap();
        sqlite().await.unwrap().run(&mut db).await.unwrap();
        let row: (String, String, i64) =
            sqlx::query_as("SELECT order_ref, order_id, total_cents FROM orders")
                .fetch_one(&mut db)
                .await
                .unwrap();
        assert_eq!(row, ("ord-1".into(), "ord-1".into(), 100));
        let insert = "INSERT INTO orders (order_ref, order_id, customer_email, total_cents) VALUES ($1, 'ord-1', 'b@example.com', 200)";
        sqlx::query(insert)
            .bind("order-b-ord-1")
            .execute(&mut db)
            .await
            .unwrap();
        // One row per run: the same run recording twice is refused.
        assert!(
            sqlx::query(insert)
                .bind("order-b-ord-1")
                .execute(&mut db)
                .await
                .is_err()
        );
    }

    #[test]
    fn versions_and_descriptions_come_from_the_file_name_as_sqlx_gives_them() {
        let m = migration("0002_orders_and_more.sql", "SELECT 1").unwrap();
        assert_eq!(m.version, 2);
        assert_eq!(m.description, "orders and more");
        assert_eq!(m.migration_type, MigrationType::Simple);
        assert!(migration("orders.sql", "").is_err());
        assert!(migration("x_orders.sql", "").is_err());
    }
}
