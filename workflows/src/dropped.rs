//! Signals a workflow dropped because their payload broke the input rules (see
//! [`Untrusted`](edgeflow_activities::Untrusted)): each is logged with the run and the offending
//! fields, and counted here for the worker's `/metrics`
//! (`edgeflow_workflow_signals_dropped_total`).
//!
//! Workflow code does no I/O; a log line and a process-wide counter are the exceptions, because
//! neither feeds back into the workflow. Both are skipped while a run's history is replayed, so a
//! dropped signal is logged and counted once, when it arrives.

use std::collections::BTreeMap;
use std::sync::Mutex;

use edgeflow_activities::InputError;

static DROPPED: Mutex<BTreeMap<(&'static str, &'static str), u64>> = Mutex::new(BTreeMap::new());

/// Records that `workflow`'s run dropped a `signal` whose payload failed its checks.
pub fn signal(
    workflow: &'static str,
    signal: &'static str,
    workflow_id: &str,
    run_id: &str,
    error: &InputError,
    replaying: bool,
) {
    if replaying {
        return;
    }
    let fields: Vec<&str> = error.0.iter().map(|p| p.path.as_str()).collect();
    tracing::warn!(
        workflow_type = workflow,
        signal,
        workflow_id,
        run_id,
        fields = %fields.join(","),
        error = %error,
        "signal dropped: its payload breaks the input rules; the run goes on"
    );
    *DROPPED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry((workflow, signal))
        .or_default() += 1;
}

/// Dropped signals so far, by workflow type and signal name.
pub fn signals() -> Vec<(&'static str, &'static str, u64)> {
    DROPPED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(&(workflow, signal), &n)| (workflow, signal, n))
        .collect()
}
