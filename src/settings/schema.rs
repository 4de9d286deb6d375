//! The merged tree checked against the settings' JSON Schema, with the verdicts in an operator's
//! words: unknown keys, wrong types and missing keys, each at its own key path, all at once.
//!
//! The schema itself is generated from the section types (`settings_schema` beside `Settings`),
//! so it cannot drift from them.

use super::error::{SettingError, join_path, problem};

/// Every place `tree` breaks `schema`, sorted by key path.
pub fn check_against_schema(
    schema: &serde_json::Value,
    tree: &serde_json::Value,
) -> Vec<SettingError> {
    let validator = match jsonschema::validator_for(schema) {
        Ok(v) => v,
        Err(e) => return vec![problem("(schema)", e.to_string())],
    };
    let mut out: Vec<SettingError> = validator
        .iter_errors(tree)
        .flat_map(|e| {
            let pointer = e.instance_path().to_string();
            let path = pointer.trim_start_matches('/').replace('/', ".");
            let message = describe_schema_error(&e);
            // An unknown key is reported at the key itself, not at its parent object.
            match unknown_keys(&e) {
                Some(keys) => keys
                    .into_iter()
                    .map(|k| problem(join_path(&path, &k), "unknown key"))
                    .collect::<Vec<_>>(),
                None => vec![problem(
                    if path.is_empty() {
                        "(root)".into()
                    } else {
                        path
                    },
                    message,
                )],
            }
        })
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out.dedup_by(|a, b| a.path == b.path && a.message == b.message);
    out
}

fn unknown_keys(e: &jsonschema::ValidationError<'_>) -> Option<Vec<String>> {
    match e.kind() {
        jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
            Some(unexpected.clone())
        }
        _ => None,
    }
}

fn describe_schema_error(e: &jsonschema::ValidationError<'_>) -> String {
    use jsonschema::error::ValidationErrorKind as K;
    match e.kind() {
        K::Type { kind } => format!(
            "wrong type: expected {}, found {}",
            type_names(kind),
            e.instance()
        ),
        K::Required { property } => format!("missing required key {property}"),
        K::Enum { options } => format!("{} is not one of {options}", e.instance()),
        _ => e.to_string(),
    }
}

fn type_names(kind: &jsonschema::error::TypeKind) -> String {
    match kind {
        jsonschema::error::TypeKind::Single(t) => t.to_string(),
        jsonschema::error::TypeKind::Multiple(ts) => {
            let names: Vec<String> = ts
                .iter()
                .map(|t| t.to_string())
                .filter(|t| t != "null")
                .collect();
            names.join(" or ")
        }
    }
}
