//! `[database]`: where the named statements run and where the idempotency ledger lives.

use std::path::PathBuf;

use secrecy::ExposeSecret;

use crate::settings::Secret;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::queries::{self, Dialect};
use crate::settings::{Problems, SettingError};

/// The database for `db.execute`, the idempotency ledger and the email sent-ledger.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DbSettings {
    /// `postgres://user:password@host:5432/db` or `sqlite://path/to/file.db?mode=rwc`
    /// (relative paths are relative to the working directory; the folder is created).
    #[serde(default = "default_url")]
    pub url: Secret,
    /// Pool size.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// How long a call waits for a free connection before failing (retryably).
    #[serde(default = "default_acquire_timeout_secs")]
    pub acquire_timeout_secs: f64,
    /// PostgreSQL: `statement_timeout` of every connection. SQLite: how long a write waits
    /// for the database lock.
    #[serde(default = "default_statement_timeout_secs")]
    pub statement_timeout_secs: f64,
    /// Folder of named statements, one `NAME.sql` per statement (or `NAME.postgres.sql` /
    /// `NAME.sqlite.sql` for one dialect).
    #[serde(default = "default_queries_dir")]
    pub queries_dir: PathBuf,
    /// At most this many rows are returned per statement; more set `truncated`.
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
}

/// The embedded default: a SQLite file under `var/`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://var/edgeflow.db?mode=rwc";

fn default_url() -> Secret {
    DEFAULT_DATABASE_URL.into()
}
fn default_max_connections() -> u32 {
    10
}
fn default_acquire_timeout_secs() -> f64 {
    5.0
}
fn default_statement_timeout_secs() -> f64 {
    30.0
}
fn default_queries_dir() -> PathBuf {
    "config/queries".into()
}
fn default_max_rows() -> usize {
    1000
}

impl Default for DbSettings {
    fn default() -> Self {
        Self {
            url: default_url(),
            max_connections: default_max_connections(),
            acquire_timeout_secs: default_acquire_timeout_secs(),
            statement_timeout_secs: default_statement_timeout_secs(),
            queries_dir: default_queries_dir(),
            max_rows: default_max_rows(),
        }
    }
}

impl DbSettings {
    /// The SQL dialect the URL selects, if it names a supported database.
    pub fn dialect(&self) -> Option<Dialect> {
        Dialect::of_url(self.url.expose_secret())
    }

    /// Every problem, at `database.KEY` paths.
    pub fn validate(&self) -> Vec<SettingError> {
        self.validate_at("database")
    }

    /// Every problem, at paths under `prefix`. Also parses every statement file (but does not
    /// connect: the constructor checks the statements against the database).
    pub fn validate_at(&self, prefix: &str) -> Vec<SettingError> {
        let mut out = Vec::new();
        let mut p = Problems::new(prefix, &mut out);
        let dialect = self.dialect();
        if dialect.is_none() {
            p.add(
                "url",
                "must start with postgres://, postgresql:// or sqlite:",
            );
        }
        if self.max_connections == 0 {
            p.add("max_connections", "must be at least 1");
        }
        p.secs("acquire_timeout_secs", self.acquire_timeout_secs, 600.0);
        p.secs(
            "statement_timeout_secs",
            self.statement_timeout_secs,
            86_400.0,
        );
        if self.max_rows == 0 {
            p.add("max_rows", "must be at least 1");
        }
        if p.readable_dir("queries_dir", &self.queries_dir)
            && let Some(dialect) = dialect
            && let Err(problems) = queries::load(&self.queries_dir, dialect)
        {
            for problem in problems {
                p.add("queries_dir", problem);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_embedded_sqlite_file_and_the_config_queries() {
        let s: DbSettings = serde_json::from_str("{}").unwrap();
        assert_eq!(s.url.expose_secret(), DEFAULT_DATABASE_URL);
        assert_eq!(s.dialect(), Some(Dialect::Sqlite));
        assert_eq!(s.queries_dir, PathBuf::from("config/queries"));
    }

    #[test]
    fn every_problem_is_reported() {
        let s = DbSettings {
            url: "mysql://x".into(),
            max_connections: 0,
            acquire_timeout_secs: -1.0,
            max_rows: 0,
            queries_dir: "/nonexistent/queries".into(),
            ..Default::default()
        };
        let paths: Vec<_> = s.validate().into_iter().map(|e| e.path).collect();
        assert_eq!(
            paths,
            [
                "database.url",
                "database.max_connections",
                "database.acquire_timeout_secs",
                "database.max_rows",
                "database.queries_dir"
            ]
        );
    }
}
