//! Named statements: one SQL statement per file under `queries_dir`, named by the file stem.
//!
//! ```sql
//! -- Insert one order; fails with a constraint violation if the id exists.
//! -- params: order_id, customer_email, total_cents
//! -- mode: write
//! INSERT INTO orders (order_id, customer_email, total_cents) VALUES ($1, $2, $3)
//! RETURNING order_id, status
//! ```
//!
//! The leading `--` lines are the header: `params:` names the positional parameters `$1..$N`
//! (the input passes them by name), `mode:` is `write` (the default: recorded in the
//! idempotency ledger) or `read`; other header lines are a description. `NAME.postgres.sql` or
//! `NAME.sqlite.sql` replaces `NAME.sql` for that dialect, for the rare statement whose SQL
//! differs. Each file holds exactly one statement, and every `$k` up to `$N` must be used.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::settings::is_identifier;

/// The SQL dialects edgeflow runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL (production).
    Postgres,
    /// SQLite (the embedded default).
    Sqlite,
}

impl Dialect {
    /// The dialect a database URL selects.
    pub fn of_url(url: &str) -> Option<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Dialect::Postgres)
        } else if url.starts_with("sqlite:") {
            Some(Dialect::Sqlite)
        } else {
            None
        }
    }

    /// The file-name infix of dialect-specific statements.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Postgres => "postgres",
            Dialect::Sqlite => "sqlite",
        }
    }
}

/// Whether a statement changes data (and so is recorded in the idempotency ledger).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Reads only.
    Read,
    /// May write.
    Write,
}

/// One named statement as loaded from its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The file stem.
    pub name: String,
    /// The SQL, without the header and trailing `;`.
    pub sql: String,
    /// Parameter names, in `$1..$N` order.
    pub params: Vec<String>,
    /// Read or write.
    pub mode: Mode,
    /// Where it came from.
    pub file: PathBuf,
}

/// Every statement for `dialect` in `dir`, or every problem found (each naming its file).
pub fn load(dir: &Path, dialect: Dialect) -> Result<BTreeMap<String, Statement>, Vec<String>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| vec![format!("cannot read directory `{}`: {e}", dir.display())])?;
    let mut files: BTreeMap<String, (PathBuf, bool)> = BTreeMap::new();
    let mut problems = Vec::new();
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(stem) = file_name.strip_suffix(".sql") else {
            continue;
        };
        let (name, specific) = match stem.rsplit_once('.') {
            Some((name, d)) if d == dialect.as_str() => (name, true),
            Some((_, "postgres" | "sqlite")) => continue, // the other dialect's file
            Some(_) => {
                problems.push(format!("{file_name}: statement names cannot contain `.`"));
                continue;
            }
            None => (stem, false),
        };
        if !is_identifier(name) {
            problems.push(format!(
                "{file_name}: `{name}` is not a valid statement name ([a-z][a-z0-9_]*)"
            ));
            continue;
        }
        match files.get(name) {
            Some((_, true)) if !specific => {}
            _ => {
                files.insert(name.to_owned(), (path.clone(), specific));
            }
        }
    }
    let mut statements = BTreeMap::new();
    for (name, (path, _)) in files {
        match std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|text| parse(&name, &text))
        {
            Ok(mut statement) => {
                statement.file = path;
                statements.insert(name, statement);
            }
            Err(problem) => problems.push(format!("{}: {problem}", file_label(&path))),
        }
    }
    if problems.is_empty() {
        Ok(statements)
    } else {
        Err(problems)
    }
}

fn file_label(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// One statement file's text.
pub fn parse(name: &str, text: &str) -> Result<Statement, String> {
    let mut params: Option<Vec<String>> = None;
    let mut mode = Mode::Write;
    let mut body_start = text.len();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            offset += line.len();
            continue;
        }
        let Some(comment) = trimmed.strip_prefix("--") else {
            body_start = offset;
            break;
        };
        let comment = comment.trim();
        if let Some(list) = comment.strip_prefix("params:") {
            let names: Vec<String> = list
                .split(',')
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty())
                .collect();
            for n in &names {
                if !is_identifier(n) {
                    return Err(format!(
                        "parameter `{n}` is not a valid name ([a-z][a-z0-9_]*)"
                    ));
                }
            }
            let unique: BTreeSet<&String> = names.iter().collect();
            if unique.len() != names.len() {
                return Err("a parameter is named twice in `-- params:`".into());
            }
            params = Some(names);
        } else if let Some(m) = comment.strip_prefix("mode:") {
            mode = match m.trim() {
                "read" => Mode::Read,
                "write" => Mode::Write,
                other => return Err(format!("`-- mode: {other}`: expected read or write")),
            };
        }
        offset += line.len();
    }
    let sql = text[body_start..].trim();
    let sql = sql.strip_suffix(';').unwrap_or(sql).trim_end().to_owned();
    if sql.is_empty() {
        return Err("no SQL after the header".into());
    }
    let scan = scan(&sql);
    if scan.separators > 0 {
        return Err("holds more than one statement; put each in its own file".into());
    }
    let params = params.unwrap_or_default();
    let expected: BTreeSet<usize> = (1..=params.len()).collect();
    if scan.placeholders != expected {
        let used: Vec<String> = scan.placeholders.iter().map(|n| format!("${n}")).collect();
        return Err(format!(
            "`-- params:` declares {} parameter(s) but the SQL uses [{}]; declare one name per $1..$N, in order",
            params.len(),
            used.join(", ")
        ));
    }
    Ok(Statement {
        name: name.to_owned(),
        sql,
        params,
        mode,
        file: PathBuf::new(),
    })
}

struct Scan {
    placeholders: BTreeSet<usize>,
    separators: usize,
}

/// Finds `$N` placeholders and `;` outside string literals, quoted identifiers, comments and
/// dollar-quoted bodies.
fn scan(sql: &str) -> Scan {
    let b = sql.as_bytes();
    let mut placeholders = BTreeSet::new();
    let mut separators = 0;
    let mut i = 0;
    let skip_to = |from: usize, end: &[u8]| -> usize {
        b[from..]
            .windows(end.len())
            .position(|w| w == end)
            .map_or(b.len(), |p| from + p + end.len())
    };
    while i < b.len() {
        match b[i] {
            b'\'' => i = skip_to(i + 1, b"'"),
            b'"' => i = skip_to(i + 1, b"\""),
            b'-' if b.get(i + 1) == Some(&b'-') => i = skip_to(i + 2, b"\n"),
            b'/' if b.get(i + 1) == Some(&b'*') => i = skip_to(i + 2, b"*/"),
            b';' => {
                separators += 1;
                i += 1;
            }
            b'$' => {
                let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
                if digits > 0 {
                    let n: usize = sql[i + 1..i + 1 + digits].parse().unwrap_or(0);
                    placeholders.insert(n);
                    i += 1 + digits;
                } else {
                    // A dollar-quote tag: $$ or $tag$.
                    let tag_len = b[i + 1..]
                        .iter()
                        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                        .count();
                    if b.get(i + 1 + tag_len) == Some(&b'$') {
                        let tag = &b[i..i + tag_len + 2];
                        i = skip_to(i + tag.len(), tag);
                    } else {
                        i += 1;
                    }
                }
            }
            _ => i += 1,
        }
    }
    Scan {
        placeholders,
        separators,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_header_and_the_sql() {
        let s = parse(
            "insert_order",
            "-- Insert one order.\n-- params: order_id, total_cents\n-- mode: write\n\nINSERT INTO orders (order_id, total_cents)\nVALUES ($1, $2);\n",
        )
        .unwrap();
        assert_eq!(s.params, ["order_id", "total_cents"]);
        assert_eq!(s.mode, Mode::Write);
        assert_eq!(
            s.sql,
            "INSERT INTO orders (order_id, total_cents)\nVALUES ($1, $2)"
        );

        let r = parse("get", "-- mode: read\nSELECT 1").unwrap();
        assert_eq!(r.mode, Mode::Read);
        assert!(r.params.is_empty());
    }

    #[test]
    fn placeholders_inside_strings_and_comments_do_not_count() {
        let s = parse(
            "q",
            "-- params: a\nSELECT '$2; x', \"$3\", $$ $4; $$, $tag$ ; $tag$ /* $5; */ FROM t WHERE a = $1 -- $6;\n",
        )
        .unwrap();
        assert_eq!(s.params, ["a"]);
    }

    #[test]
    fn mistakes_are_reported() {
        for (text, expect) in [
            ("-- params: a\nSELECT $1, $2", "declares 1 parameter"),
            ("-- params: a, b\nSELECT $2", "declares 2 parameter"),
            ("SELECT 1; DELETE FROM t", "more than one statement"),
            ("-- params: a, a\nSELECT $1, $2", "named twice"),
            ("-- params: A\nSELECT $1", "not a valid name"),
            ("-- mode: sometimes\nSELECT 1", "expected read or write"),
            ("-- only a comment\n", "no SQL"),
        ] {
            let err = parse("q", text).unwrap_err();
            assert!(err.contains(expect), "{text:?}: {err}");
        }
    }

    #[test]
    fn dialect_files_override_the_common_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("now.sql"), "-- mode: read\nSELECT 'common'").unwrap();
        std::fs::write(
            dir.path().join("now.sqlite.sql"),
            "-- mode: read\nSELECT 'sqlite'",
        )
        .unwrap();
        std::fs::write(dir.path().join("only_pg.postgres.sql"), "SELECT 'pg'").unwrap();
        std::fs::write(dir.path().join("README.md"), "ignored").unwrap();

        let sqlite = load(dir.path(), Dialect::Sqlite).unwrap();
        assert_eq!(sqlite["now"].sql, "SELECT 'sqlite'");
        assert!(!sqlite.contains_key("only_pg"));
        let pg = load(dir.path(), Dialect::Postgres).unwrap();
        assert_eq!(pg["now"].sql, "SELECT 'common'");
        assert_eq!(pg["only_pg"].sql, "SELECT 'pg'");
    }

    #[test]
    fn every_bad_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Bad-Name.sql"), "SELECT 1").unwrap();
        std::fs::write(dir.path().join("two.sql"), "SELECT 1; SELECT 2").unwrap();
        std::fs::write(dir.path().join("good.sql"), "SELECT 1").unwrap();
        let problems = load(dir.path(), Dialect::Sqlite).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("Bad-Name.sql"));
        assert!(problems[1].starts_with("two.sql"));
    }

    #[test]
    fn the_shipped_queries_load_for_both_dialects() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/queries");
        for dialect in [Dialect::Postgres, Dialect::Sqlite] {
            let statements = load(&dir, dialect).unwrap();
            assert!(statements.contains_key("insert_order"));
            assert!(statements.contains_key("get_order"));
        }
    }
}
