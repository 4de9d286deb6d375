//! `edgeflow replay <file-or-dir>...`: replays recorded histories against the current workflow
//! code and fails on nondeterminism, so a change that would break running workflows is caught
//! before it is deployed. Histories are the JSON of `temporal workflow show --output json`
//! (the repository keeps some under `tests/histories/`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use temporalio_client::WorkflowHistory;
use temporalio_sdk::workflow_replayer::{WorkflowReplayer, WorkflowReplayerOptions};

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

fn load(file: &Path) -> anyhow::Result<WorkflowHistory> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    WorkflowHistory::from_json(&bytes)
        .with_context(|| format!("{} is not a workflow history", file.display()))
}

/// Replays every history; prints one line per file; exit 1 if any is incompatible.
pub async fn run(paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let files = history_files(paths)?;
    let histories = files
        .iter()
        .map(|f| load(f))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut options = WorkflowReplayerOptions::new().build();
    crate::worker::registry::register_workflows(&mut options)?;
    let replayer = WorkflowReplayer::new(options)?;
    let results = replayer.replay_workflows(histories).await?;
    let mut failed = 0;
    for (file, result) in files.iter().zip(&results) {
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
