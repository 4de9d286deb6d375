//! JSON values in and out of SQL, per dialect.
//!
//! PostgreSQL is strictly typed: each parameter is converted to the Rust type of the type the
//! server inferred for it at start-up (`describe`), so `"42"` never reaches an `INT8` column by
//! accident and a bad value is refused before the transaction starts. SQLite is dynamically
//! typed: values are bound by their JSON type. Rows come back as JSON objects, column by column.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::{Map, Number, Value};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Arguments, Column, Row, TypeInfo, ValueRef};
use uuid::Uuid;

use crate::failure::{Failure, from_sqlx};

/// One parameter, converted and owned, ready to bind.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bound {
    Bool(Option<bool>),
    I16(Option<i16>),
    I32(Option<i32>),
    I64(Option<i64>),
    F32(Option<f32>),
    F64(Option<f64>),
    Decimal(Option<Decimal>),
    Text(Option<String>),
    Json(Option<Value>),
    Uuid(Option<Uuid>),
    TimestampTz(Option<DateTime<Utc>>),
    Timestamp(Option<NaiveDateTime>),
    Date(Option<NaiveDate>),
    Time(Option<NaiveTime>),
    Bytes(Option<Vec<u8>>),
    TextArray(Option<Vec<String>>),
    I32Array(Option<Vec<i32>>),
    I64Array(Option<Vec<i64>>),
}

fn bad(param: &str, expected: &str, value: &Value) -> Failure {
    let shown = match value {
        Value::String(s) if s.chars().count() > 40 => {
            format!("{:?}…", s.chars().take(40).collect::<String>())
        }
        other => other.to_string(),
    };
    Failure::invalid_input(format!(
        "parameter `{param}` must be {expected}, got {shown}"
    ))
}

fn int<T: TryFrom<i64>>(param: &str, what: &str, v: &Value) -> Result<T, Failure> {
    v.as_i64()
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| bad(param, what, v))
}

fn string<'v>(param: &str, what: &str, v: &'v Value) -> Result<&'v str, Failure> {
    v.as_str().ok_or_else(|| bad(param, what, v))
}

/// A JSON value for a PostgreSQL parameter of type `type_name` (as `describe` names it).
pub(crate) fn pg_param(param: &str, type_name: &str, v: &Value) -> Result<Bound, Failure> {
    let null = v.is_null();
    macro_rules! opt {
        ($variant:ident, $conv:expr) => {
            Bound::$variant(if null { None } else { Some($conv?) })
        };
    }
    Ok(match type_name {
        "BOOL" => opt!(Bool, v.as_bool().ok_or_else(|| bad(param, "a boolean", v))),
        "INT2" => opt!(I16, int::<i16>(param, "a 16-bit integer", v)),
        "INT4" => opt!(I32, int::<i32>(param, "a 32-bit integer", v)),
        "INT8" => opt!(I64, int::<i64>(param, "a 64-bit integer", v)),
        "FLOAT4" => opt!(
            F32,
            v.as_f64()
                .map(|f| f as f32)
                .ok_or_else(|| bad(param, "a number", v))
        ),
        "FLOAT8" => opt!(F64, v.as_f64().ok_or_else(|| bad(param, "a number", v))),
        "NUMERIC" => opt!(Decimal, {
            let text = match v {
                Value::Number(n) => n.to_string(),
                Value::String(s) => s.clone(),
                _ => String::new(),
            };
            text.parse::<Decimal>()
                .or_else(|_| Decimal::from_scientific(&text))
                .map_err(|_| bad(param, "a decimal number (or a string holding one)", v))
        }),
        "JSON" | "JSONB" => Bound::Json(if null { None } else { Some(v.clone()) }),
        "UUID" => opt!(Uuid, {
            string(param, "a UUID string", v).and_then(|s| {
                s.parse::<Uuid>()
                    .map_err(|_| bad(param, "a UUID string", v))
            })
        }),
        "TIMESTAMPTZ" => opt!(TimestampTz, {
            string(param, "an RFC 3339 timestamp", v).and_then(|s| {
                DateTime::parse_from_rfc3339(s)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| bad(param, "an RFC 3339 timestamp", v))
            })
        }),
        "TIMESTAMP" => opt!(Timestamp, {
            string(param, "a timestamp", v).and_then(|s| {
                s.parse::<NaiveDateTime>()
                    .or_else(|_| DateTime::parse_from_rfc3339(s).map(|t| t.naive_utc()))
                    .map_err(|_| bad(param, "a timestamp (YYYY-MM-DDTHH:MM:SS)", v))
            })
        }),
        "DATE" => opt!(Date, {
            string(param, "a date", v).and_then(|s| {
                s.parse::<NaiveDate>()
                    .map_err(|_| bad(param, "a date (YYYY-MM-DD)", v))
            })
        }),
        "TIME" => opt!(Time, {
            string(param, "a time", v).and_then(|s| {
                s.parse::<NaiveTime>()
                    .map_err(|_| bad(param, "a time (HH:MM:SS)", v))
            })
        }),
        "BYTEA" => opt!(Bytes, {
            string(param, "base64 text", v)
                .and_then(|s| BASE64.decode(s).map_err(|_| bad(param, "base64 text", v)))
        }),
        "TEXT[]" | "VARCHAR[]" => opt!(TextArray, {
            v.as_array()
                .and_then(|a| {
                    a.iter()
                        .map(|x| x.as_str().map(str::to_owned))
                        .collect::<Option<Vec<_>>>()
                })
                .ok_or_else(|| bad(param, "an array of strings", v))
        }),
        "INT4[]" => opt!(I32Array, {
            v.as_array()
                .and_then(|a| {
                    a.iter()
                        .map(|x| x.as_i64().and_then(|n| i32::try_from(n).ok()))
                        .collect::<Option<Vec<_>>>()
                })
                .ok_or_else(|| bad(param, "an array of 32-bit integers", v))
        }),
        "INT8[]" => opt!(I64Array, {
            v.as_array()
                .and_then(|a| a.iter().map(Value::as_i64).collect::<Option<Vec<_>>>())
                .ok_or_else(|| bad(param, "an array of integers", v))
        }),
        // TEXT, VARCHAR, BPCHAR, NAME, CITEXT, and any other type: sent as text. For types
        // without an implicit cast from text (enums, domains), cast in the SQL: `$1::my_enum`.
        _ => opt!(Text, string(param, "a string", v).map(str::to_owned)),
    })
}

/// A JSON value for a SQLite parameter (bound by its JSON type).
pub(crate) fn sqlite_param(v: &Value) -> Bound {
    match v {
        Value::Null => Bound::Text(None),
        Value::Bool(b) => Bound::Bool(Some(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Bound::I64(Some(i)),
            None => Bound::F64(n.as_f64()),
        },
        Value::String(s) => Bound::Text(Some(s.clone())),
        // Arrays and objects are stored as JSON text (SQLite's json functions read it).
        other => Bound::Text(Some(other.to_string())),
    }
}

fn encode_failed(e: sqlx::error::BoxDynError) -> Failure {
    Failure::invalid_input(format!("cannot encode parameter: {e}"))
}

pub(crate) fn pg_arguments(values: &[Bound]) -> Result<PgArguments, Failure> {
    let mut args = PgArguments::default();
    for v in values {
        let r = match v.clone() {
            Bound::Bool(x) => args.add(x),
            Bound::I16(x) => args.add(x),
            Bound::I32(x) => args.add(x),
            Bound::I64(x) => args.add(x),
            Bound::F32(x) => args.add(x),
            Bound::F64(x) => args.add(x),
            Bound::Decimal(x) => args.add(x),
            Bound::Text(x) => args.add(x),
            Bound::Json(x) => args.add(x.map(sqlx::types::Json)),
            Bound::Uuid(x) => args.add(x),
            Bound::TimestampTz(x) => args.add(x),
            Bound::Timestamp(x) => args.add(x),
            Bound::Date(x) => args.add(x),
            Bound::Time(x) => args.add(x),
            Bound::Bytes(x) => args.add(x),
            Bound::TextArray(x) => args.add(x),
            Bound::I32Array(x) => args.add(x),
            Bound::I64Array(x) => args.add(x),
        };
        r.map_err(encode_failed)?;
    }
    Ok(args)
}

pub(crate) fn sqlite_arguments(values: &[Bound]) -> Result<SqliteArguments<'static>, Failure> {
    let mut args = SqliteArguments::default();
    for v in values {
        let r = match v.clone() {
            Bound::Bool(x) => args.add(x),
            Bound::I64(x) => args.add(x),
            Bound::F64(x) => args.add(x),
            Bound::Text(x) => args.add(x),
            Bound::Bytes(x) => args.add(x),
            other => {
                return Err(Failure::Internal(format!(
                    "{other:?} is not a SQLite binding"
                )));
            }
        };
        r.map_err(encode_failed)?;
    }
    Ok(args)
}

fn float(f: f64) -> Value {
    Number::from_f64(f)
        .map(Value::Number)
        .unwrap_or_else(|| Value::String(f.to_string()))
}

fn unsupported(column: &str, type_name: &str) -> Failure {
    Failure::DbRejected(format!(
        "column `{column}` has type {type_name}, which edgeflow cannot return as JSON; cast it to text in the query"
    ))
}

/// A PostgreSQL row as a JSON object.
pub(crate) fn pg_row(row: &PgRow) -> Result<Map<String, Value>, Failure> {
    let mut out = Map::new();
    for (i, column) in row.columns().iter().enumerate() {
        let name = column.name();
        let raw = row.try_get_raw(i).map_err(from_sqlx)?;
        if raw.is_null() {
            out.insert(name.to_owned(), Value::Null);
            continue;
        }
        let type_name = column.type_info().name();
        let get_err = |e: sqlx::Error| from_sqlx(e);
        let value = match type_name {
            "BOOL" => Value::Bool(row.try_get::<bool, _>(i).map_err(get_err)?),
            "INT2" => Value::from(row.try_get::<i16, _>(i).map_err(get_err)?),
            "INT4" => Value::from(row.try_get::<i32, _>(i).map_err(get_err)?),
            "INT8" => Value::from(row.try_get::<i64, _>(i).map_err(get_err)?),
            "FLOAT4" => float(row.try_get::<f32, _>(i).map_err(get_err)? as f64),
            "FLOAT8" => float(row.try_get::<f64, _>(i).map_err(get_err)?),
            "NUMERIC" => {
                // Whole numbers (e.g. `sum()` of an integer column) come back as numbers;
                // fractions as strings, so no precision is lost on the way to JSON.
                let d = row.try_get::<Decimal, _>(i).map_err(get_err)?;
                match (d.fract().is_zero(), d.to_i64()) {
                    (true, Some(n)) => Value::from(n),
                    _ => Value::String(d.normalize().to_string()),
                }
            }
            "JSON" | "JSONB" => row.try_get::<Value, _>(i).map_err(get_err)?,
            "UUID" => Value::String(row.try_get::<Uuid, _>(i).map_err(get_err)?.to_string()),
            "TIMESTAMPTZ" => Value::String(
                row.try_get::<DateTime<Utc>, _>(i)
                    .map_err(get_err)?
                    .to_rfc3339_opts(SecondsFormat::AutoSi, true),
            ),
            "TIMESTAMP" => Value::String(
                row.try_get::<NaiveDateTime, _>(i)
                    .map_err(get_err)?
                    .format("%Y-%m-%dT%H:%M:%S%.f")
                    .to_string(),
            ),
            "DATE" => Value::String(row.try_get::<NaiveDate, _>(i).map_err(get_err)?.to_string()),
            "TIME" => Value::String(row.try_get::<NaiveTime, _>(i).map_err(get_err)?.to_string()),
            "BYTEA" => Value::String(BASE64.encode(row.try_get::<Vec<u8>, _>(i).map_err(get_err)?)),
            "TEXT[]" | "VARCHAR[]" => {
                Value::from(row.try_get::<Vec<String>, _>(i).map_err(get_err)?)
            }
            "INT4[]" => Value::from(row.try_get::<Vec<i32>, _>(i).map_err(get_err)?),
            "INT8[]" => Value::from(row.try_get::<Vec<i64>, _>(i).map_err(get_err)?),
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CITEXT" => {
                Value::String(row.try_get::<String, _>(i).map_err(get_err)?)
            }
            // Enums (and other types whose binary form is their text) decode as text.
            other => Value::String(
                row.try_get_unchecked::<String, _>(i)
                    .map_err(|_| unsupported(name, other))?,
            ),
        };
        out.insert(name.to_owned(), value);
    }
    Ok(out)
}

/// A SQLite row as a JSON object: by storage class, with `BOOLEAN` columns as booleans and
/// `JSON` columns parsed.
pub(crate) fn sqlite_row(row: &SqliteRow) -> Result<Map<String, Value>, Failure> {
    let mut out = Map::new();
    for (i, column) in row.columns().iter().enumerate() {
        let name = column.name();
        let raw = row.try_get_raw(i).map_err(from_sqlx)?;
        if raw.is_null() {
            out.insert(name.to_owned(), Value::Null);
            continue;
        }
        let storage = raw.type_info().name().to_owned();
        let declared = column.type_info().name().to_ascii_uppercase();
        let value = match storage.as_str() {
            "INTEGER" | "BOOLEAN" => {
                let n = row.try_get_unchecked::<i64, _>(i).map_err(from_sqlx)?;
                if declared == "BOOLEAN" {
                    Value::Bool(n != 0)
                } else {
                    Value::from(n)
                }
            }
            "REAL" => float(row.try_get_unchecked::<f64, _>(i).map_err(from_sqlx)?),
            "BLOB" => Value::String(
                BASE64.encode(row.try_get_unchecked::<Vec<u8>, _>(i).map_err(from_sqlx)?),
            ),
            _ => {
                let text = row.try_get_unchecked::<String, _>(i).map_err(from_sqlx)?;
                if declared == "JSON" || declared == "JSONB" {
                    serde_json::from_str(&text).unwrap_or(Value::String(text))
                } else {
                    Value::String(text)
                }
            }
        };
        out.insert(name.to_owned(), value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pg_parameters_follow_the_inferred_type() {
        assert_eq!(
            pg_param("p", "INT8", &json!(42)).unwrap(),
            Bound::I64(Some(42))
        );
        assert_eq!(
            pg_param("p", "INT8", &json!(null)).unwrap(),
            Bound::I64(None)
        );
        assert_eq!(
            pg_param("p", "TEXT", &json!("a")).unwrap(),
            Bound::Text(Some("a".into()))
        );
        assert_eq!(
            pg_param("p", "BOOL", &json!(true)).unwrap(),
            Bound::Bool(Some(true))
        );
        assert_eq!(
            pg_param("p", "NUMERIC", &json!("12.50")).unwrap(),
            Bound::Decimal(Some("12.50".parse().unwrap()))
        );
        assert_eq!(
            pg_param("p", "JSONB", &json!({"a": 1})).unwrap(),
            Bound::Json(Some(json!({"a": 1})))
        );
        assert!(matches!(
            pg_param("p", "TIMESTAMPTZ", &json!("2025-01-02T03:04:05Z")).unwrap(),
            Bound::TimestampTz(Some(_))
        ));
        assert_eq!(
            pg_param("p", "TEXT[]", &json!(["a", "b"])).unwrap(),
            Bound::TextArray(Some(vec!["a".into(), "b".into()]))
        );
    }

    #[test]
    fn mismatched_pg_parameters_are_invalid_input() {
        for (ty, v) in [
            ("INT8", json!("42")),
            ("INT4", json!(1u64 << 40)),
            ("INT8", json!(1.5)),
            ("TEXT", json!(7)),
            ("BOOL", json!("true")),
            ("UUID", json!("not-a-uuid")),
            ("TIMESTAMPTZ", json!("yesterday")),
            ("NUMERIC", json!([1])),
            ("INT8[]", json!(["a"])),
        ] {
            let err = pg_param("amount", ty, &v).unwrap_err();
            assert!(matches!(err, Failure::InvalidInput(_)), "{ty} {v}: {err:?}");
            assert!(err.to_string().contains("`amount`"));
        }
    }

    #[test]
    fn sqlite_parameters_follow_the_json_type() {
        assert_eq!(sqlite_param(&json!(3)), Bound::I64(Some(3)));
        assert_eq!(sqlite_param(&json!(2.5)), Bound::F64(Some(2.5)));
        assert_eq!(sqlite_param(&json!(null)), Bound::Text(None));
        assert_eq!(
            sqlite_param(&json!([1, 2])),
            Bound::Text(Some("[1,2]".into()))
        );
    }
}
