//! `edgeflow schema export <dir>`: the JSON Schemas and the manifest the edge Worker consumes.
//!
//! Written from the Rust types (the workflow catalog and the activity contract), so the edge
//! validates exactly what the worker accepts. Layout:
//! - `manifest.json`: `workflows` (those callers at the edge may start: name, task queue, input,
//!   result, signals, queries), `internal_workflows` (operator-only, same shape) and `activities`;
//! - `workflows/<name>.{input,result}.schema.json`, `workflows/<name>.<signal>.schema.json`,
//!   `workflows/<name>.<query>.query.schema.json`;
//! - `activities/<type>.{input,output}.schema.json`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde_json::{Value, json};

use crate::settings::Settings;

/// Every file to write, by path relative to the export folder.
pub fn render(settings: &Settings) -> anyhow::Result<BTreeMap<String, String>> {
    let task_queue = settings
        .task_queues
        .values()
        .find(|q| q.runs.workflows())
        .map(|q| q.name.clone())
        .context("no configured task queue runs workflows")?;
    let mut files = BTreeMap::new();
    let mut put = |path: String, schema: &schemars::Schema| -> String {
        files.insert(
            path.clone(),
            pretty(&serde_json::to_value(schema).unwrap_or(Value::Null)),
        );
        path
    };
    let (mut edge, mut internal) = (Vec::new(), Vec::new());
    for w in edgeflow_workflows::catalog::workflows() {
        let entry = json!({
            "name": w.name,
            "task_queue": task_queue,
            "input": put(format!("workflows/{}.input.schema.json", w.name), &w.input),
            "result": put(format!("workflows/{}.result.schema.json", w.name), &w.result),
            "signals": w.signals.iter().map(|s| json!({
                "name": s.name,
                "input": put(format!("workflows/{}.{}.schema.json", w.name, s.name), &s.schema),
            })).collect::<Vec<_>>(),
            "queries": w.queries.iter().map(|q| json!({
                "name": q.name,
                "result": put(format!("workflows/{}.{}.query.schema.json", w.name, q.name), &q.schema),
            })).collect::<Vec<_>>(),
        });
        if w.edge {
            edge.push(entry)
        } else {
            internal.push(entry)
        }
    }
    let activities: Vec<Value> = edgeflow_activities::activity_schemas()
        .iter()
        .map(|a| {
            json!({
                "name": a.name,
                "task_queue": task_queue,
                "input": put(format!("activities/{}.input.schema.json", a.name), &a.input),
                "output": put(format!("activities/{}.output.schema.json", a.name), &a.output),
            })
        })
        .collect();
    let manifest = json!({
        "version": 1,
        "workflows": edge,
        "internal_workflows": internal,
        "activities": activities,
    });
    files.insert("manifest.json".to_string(), pretty(&manifest));
    Ok(files)
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// Writes the files under `dir`, removing stale `*.schema.json` files so the folder matches.
pub fn export(settings: &Settings, dir: &Path) -> anyhow::Result<usize> {
    let files = render(settings)?;
    for sub in ["workflows", "activities"] {
        let folder = dir.join(sub);
        if let Ok(entries) = std::fs::read_dir(&folder) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                if name.ends_with(".schema.json") && !files.contains_key(&format!("{sub}/{name}")) {
                    std::fs::remove_file(entry.path())?;
                }
            }
        }
    }
    for (path, text) in &files {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&target, text).with_context(|| format!("writing {}", target.display()))?;
    }
    Ok(files.len())
}
