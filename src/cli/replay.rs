//! `edgeflow replay <file-or-dir>...`: replays recorded histories against the current workflow
//! code and fails on nondeterminism, so a change that would break running workflows is caught
//! before it is deployed. Histories are the JSON of `temporal workflow show --output json`
//! (the repository keeps some under `tests/histories/`). A history of an encrypted run replays
//! with the same `[encryption]` keys the worker has.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use temporalio_client::WorkflowHistory;
use temporalio_sdk::workflow_replayer::{WorkflowReplayer, WorkflowReplayerOptions};

use crate::codec::KEY_ID_METADATA;
use crate::codec::settings::EncryptionSettings;

/// Every `.json` file named, or found (sorted) in a named folder.
fn history_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("reading {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect();
            found.sort();
            files.extend(found);
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            anyhow::bail!("{} is neither a file nor a folder", path.display());
        }
    }
    anyhow::ensure!(!files.is_empty(), "no history files (*.json) found");
    Ok(files)
}

/// A history, and the key ids its payloads are encrypted under.
fn load(file: &Path) -> anyhow::Result<(WorkflowHistory, BTreeSet<String>)> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let history = WorkflowHistory::from_json(&bytes)
        .with_context(|| format!("{} is not a workflow history", file.display()))?;
    let mut key_ids = BTreeSet::new();
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(&bytes) {
        key_ids_in(&json, &mut key_ids);
    }
    Ok((history, key_ids))
}

/// Every `encryption-key-id` a payload anywhere in `value` names (metadata values are base64 in
/// a history's JSON).
fn key_ids_in(value: &serde_json::Value, out: &mut BTreeSet<String>) {
    use base64::Engine;
    match value {
        serde_json::Value::Object(map) => {
            if let Some(id) = map
                .get("metadata")
                .and_then(|m| m.get(KEY_ID_METADATA))
                .and_then(|id| id.as_str())
                .and_then(|id| base64::engine::general_purpose::STANDARD.decode(id).ok())
            {
                out.insert(String::from_utf8_lossy(&id).into_owned());
            }
            map.values().for_each(|v| key_ids_in(v, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| key_ids_in(v, out)),
        _ => {}
    }
}

/// Replays every history, decrypting its payloads with `encryption`'s keys (a history of an
/// encrypted run fails to replay without them, naming the key); prints one line per file; exit 1
/// if any is incompatible.
pub async fn run(paths: &[PathBuf], encryption: &EncryptionSettings) -> anyhow::Result<ExitCode> {
    let files = history_files(paths)?;
    let loaded = files
        .iter()
        .map(|f| load(f))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (data_converter, codec) = crate::codec::data_converter(encryption)?;
    // A payload whose key these settings lack would fail the replay as a nondeterminism error,
    // which it is not: such a history is reported by its key instead, and not replayed.
    let mut failed = 0;
    let mut histories = Vec::new();
    let mut replayed = Vec::new();
    for (file, (history, key_ids)) in files.iter().zip(loaded) {
        let missing: Vec<String> = key_ids
            .iter()
            .filter(|id| !codec.as_ref().is_some_and(|c| c.holds(id)))
            .map(|id| format!("`{id}`"))
            .collect();
        if missing.is_empty() {
            histories.push(history);
            replayed.push(file);
        } else {
            failed += 1;
            println!(
                "FAILED  {}: encrypted under key {}, which [encryption.keys] does not hold",
                file.display(),
                missing.join(", ")
            );
        }
    }
    let mut options = WorkflowReplayerOptions::new()
        .data_converter(data_converter)
        .build();
    crate::worker::registry::register_workflows(&mut options)?;
    let replayer = WorkflowReplayer::new(options)?;
    let results = if histories.is_empty() {
        Vec::new()
    } else {
        replayer.replay_workflows(histories).await?
    };
    for (file, result) in replayed.into_iter().zip(&results) {
        match &result.replay_failure {
            None => println!("ok      {}", file.display()),
            Some(failure) => {
                failed += 1;
                println!("FAILED  {}: {failure}", file.display());
            }
        }
    }
    println!("replay: {} passed, {failed} failed", files.len() - failed);
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
