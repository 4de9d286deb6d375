//! `edgeflow schema export <dir>`: the JSON Schemas and the manifest the edge Worker consumes.
//!
//! Written from the Rust types (the workflow catalog and the activity contract), so the edge
//! validates exactly what the worker accepts. Layout:
//! - `manifest.json`: `workflows` (those callers at the edge may start: name, task queue, the input
//!   field a run's workflow id is made from (`workflow_id_from`, e.g. `order_id`), input, result,
//!   signals, updates, queries), `internal_workflows` (operator-only, same shape),
//!   `activities`, `edge_activities` (see below), `events` (bodies the worker posts: name, event
//!   types, body), `failures`
//!   (application-failure types whose details are a contract: type, details) and
//!   `search_attributes` (what each holds → its name and type);
//! - `workflows/<name>.{input,result}.schema.json`, `workflows/<name>.<signal>.schema.json`,
//!   `workflows/<name>.<update>.update.schema.json` and `.update-result.schema.json`,
//!   `workflows/<name>.<query>.query.schema.json`;
//! - `activities/<type>.{input,output}.schema.json`;
//! - `edge-activities/<name>.{input,output}.schema.json` and the manifest's `edge_activities`:
//!   the edge's activities, which the edge exports (`edge/scripts/export-activities.mjs`); the
//!   worker compiles the committed copy in (`activities/build.rs`) and writes it back unchanged,
//!   so this export and the edge's agree, and the worker registers what the edge declares;
//! - `events/<name>.schema.json`;
//! - `failures/<type>.details.schema.json`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde_json::{Value, json};

use crate::settings::Settings;

/// Every file to write, by path relative to the export folder.
pub fn render(settings: &Settings) -> anyhow::Result<BTreeMap<String, String>> {
    let task_queue = settings
        .workflow_task_queue()
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
            "workflow_id_from": w.id_field,
            "input": put(format!("workflows/{}.input.schema.json", w.name), &w.input),
            "result": put(format!("workflows/{}.result.schema.json", w.name), &w.result),
            "signals": w.signals.iter().map(|s| json!({
                "name": s.name,
                "input": put(format!("workflows/{}.{}.schema.json", w.name, s.name), &s.input),
            })).collect::<Vec<_>>(),
            "updates": w.updates.iter().map(|u| json!({
                "name": u.name,
                "input": put(format!("workflows/{}.{}.update.schema.json", w.name, u.name), &u.input),
                "result": put(format!("workflows/{}.{}.update-result.schema.json", w.name, u.name), &u.result),
            })).collect::<Vec<_>>(),
            "queries": w.queries.iter().map(|q| json!({
                "name": q.name,
                "result": put(format!("workflows/{}.{}.query.schema.json", w.name, q.name), &q.result),
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
    let events: Vec<Value> = edgeflow_activities::event_schemas()
        .iter()
        .map(|e| {
            json!({
                "name": e.name,
                "types": e.types,
                "body": put(format!("events/{}.schema.json", e.name), &e.body),
            })
        })
        .collect();
    let failures: Vec<Value> = edgeflow_activities::failure_schemas()
        .iter()
        .map(|f| {
            json!({
                "type": f.type_name,
                "details": put(format!("failures/{}.details.schema.json", f.type_name), &f.details),
            })
        })
        .collect();
    let edge_activities: Vec<Value> = edgeflow_activities::edge::MANIFEST
        .iter()
        .map(|a| {
            files.insert(a.input.to_string(), a.input_schema.to_string());
            files.insert(a.output.to_string(), a.output_schema.to_string());
            let mut entry = json!({ "name": a.name, "input": a.input, "output": a.output });
            if let Some(max) = a.max_attempt_secs {
                entry["max_attempt_secs"] = json!(max);
            }
            entry
        })
        .collect();
    let search_attributes: serde_json::Map<String, Value> = edgeflow_devserver::SEARCH_ATTRIBUTES
        .iter()
        .map(|a| {
            (
                a.holds.to_string(),
                json!({ "name": a.name, "type": a.kind }),
            )
        })
        .collect();
    let manifest = json!({
        "version": 1,
        "workflows": edge,
        "internal_workflows": internal,
        "activities": activities,
        "edge_activities": edge_activities,
        "events": events,
        "failures": failures,
        "search_attributes": search_attributes,
    });
    files.insert("manifest.json".to_string(), pretty(&manifest));
    Ok(files)
}

/// `edgeflow schema check`: verdicts for each line of `input`, as the worker would decide them;
/// `Ok(true)` when every line is valid.
pub fn check(
    workflow: &str,
    message: Option<&str>,
    input: impl std::io::BufRead,
    mut out: impl std::io::Write,
) -> anyhow::Result<bool> {
    let spec = edgeflow_workflows::catalog::find(workflow)
        .with_context(|| format!("no workflow called {workflow} is registered"))?;
    let check = match message {
        None => spec.check_input,
        Some(name) => spec
            .message_check(name)
            .with_context(|| format!("{workflow} has no signal or update called {name}"))?,
    };
    let mut all_valid = true;
    for line in input.split(b'\n') {
        let line = line.context("reading the inputs")?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let verdict = match check(&line) {
            Ok(()) => json!({ "ok": true }),
            Err(e) => {
                all_valid = false;
                // The problems as an InvalidInput failure's details list them.
                json!({ "ok": false, "errors": e.details().errors })
            }
        };
        writeln!(out, "{verdict}")?;
    }
    Ok(all_valid)
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// The folders the export writes schemas into.
const SUBFOLDERS: [&str; 4] = ["workflows", "activities", "events", "failures"];

/// Writes the files under `dir`, removing stale `*.schema.json` files so the folder matches.
pub fn export(settings: &Settings, dir: &Path) -> anyhow::Result<usize> {
    let files = render(settings)?;
    for sub in SUBFOLDERS {
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
