//! `[worker]`, `[task_queues.NAME]` and `[shutdown]`: what the worker polls, how much it runs at
//! once, and how long it drains; and their checks.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::settings::error::{SettingError, problem};

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    /// Identity shown in Temporal's UI and history (default: `edgeflow-<pid>@<host>`).
    pub identity: Option<String>,
    /// Build id of this worker (default: `<version>-<CRC-32 of the running executable>`).
    pub build_id: Option<String>,
    /// Worker Deployment name; with `use_worker_versioning`, tasks are routed by version.
    pub deployment_name: String,
    pub use_worker_versioning: bool,
    /// With `use_worker_versioning`: who makes a version current when the deployment has none.
    pub promote: Promote,
    pub max_cached_workflows: usize,
    /// Defaults for every task queue; each `[task_queues.NAME]` may override them.
    pub max_concurrent_activities: usize,
    pub max_concurrent_workflow_tasks: usize,
    pub max_concurrent_local_activities: usize,
    pub workflow_pollers: usize,
    pub activity_pollers: usize,
    /// How long a workflow task may wait on this worker's sticky queue, and, once the worker
    /// has stopped, on the normal queue it is moved to, before the server times it out.
    pub sticky_schedule_to_start_timeout_secs: u64,
    /// How often readiness asks the Temporal server whether it is reachable.
    pub readiness_check_secs: u64,
    /// Run `edgeflow schedules sync` before polling.
    pub sync_schedules_on_start: bool,
}

/// With worker versioning, a worker gets no task until its version is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Promote {
    /// The worker makes its own version current when the deployment has no current version (its
    /// first deploy), so a first worker is never idle; later versions are the operator's call.
    First,
    /// Only the operator makes a version current (`temporal worker deployment set-current-version`).
    Never,
}

/// What a task queue runs in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Runs {
    Workflows,
    Activities,
    Both,
}

impl Runs {
    pub fn workflows(self) -> bool {
        matches!(self, Runs::Workflows | Runs::Both)
    }
    pub fn activities(self) -> bool {
        matches!(self, Runs::Activities | Runs::Both)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskQueueSettings {
    /// The task queue's name in Temporal.
    pub name: String,
    pub runs: Runs,
    pub max_concurrent_activities: Option<usize>,
    pub max_concurrent_workflow_tasks: Option<usize>,
    pub workflow_pollers: Option<usize>,
    pub activity_pollers: Option<usize>,
    /// Caps activities started per second by this worker on this queue.
    pub max_activities_per_sec: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShutdownSettings {
    /// On SIGTERM/SIGINT, in-flight activities get this long to finish before they are cancelled.
    pub grace_period_secs: u64,
}

impl WorkerSettings {
    /// Limits the SDK needs at least 1 (or 2) of, and intervals that must tick.
    pub fn validate(&self) -> Vec<SettingError> {
        let w = self;
        let mut out = Vec::new();
        for (key, value) in [
            ("max_concurrent_activities", w.max_concurrent_activities),
            (
                "max_concurrent_workflow_tasks",
                w.max_concurrent_workflow_tasks,
            ),
            (
                "max_concurrent_local_activities",
                w.max_concurrent_local_activities,
            ),
            ("activity_pollers", w.activity_pollers),
        ] {
            if value == 0 {
                out.push(problem(format!("worker.{key}"), "must be at least 1"));
            }
        }
        // The SDK needs two workflow pollers when sticky queues are on (a cache size above 0).
        if w.workflow_pollers < 2 {
            out.push(problem("worker.workflow_pollers", "must be at least 2"));
        }
        if w.sticky_schedule_to_start_timeout_secs == 0 {
            out.push(problem(
                "worker.sticky_schedule_to_start_timeout_secs",
                "must be at least 1",
            ));
        }
        if w.readiness_check_secs == 0 {
            out.push(problem("worker.readiness_check_secs", "must be at least 1"));
        }
        // The server names a version `<deployment>.<build id>` in places, so neither may be
        // empty, and the deployment name may not hold the dot.
        if w.deployment_name.trim().is_empty() || w.deployment_name.contains('.') {
            out.push(problem(
                "worker.deployment_name",
                "must be a non-empty name without `.`",
            ));
        }
        if w.build_id.as_ref().is_some_and(|b| b.trim().is_empty()) {
            out.push(problem(
                "worker.build_id",
                "must not be empty (leave it unset for the default)",
            ));
        }
        out
    }
}

/// At least one queue, each named once in Temporal, with limits the SDK accepts.
pub fn validate_task_queues(
    task_queues: &BTreeMap<String, TaskQueueSettings>,
) -> Vec<SettingError> {
    let mut out = Vec::new();
    if task_queues.is_empty() {
        out.push(problem("task_queues", "name at least one task queue"));
    }
    let mut names = std::collections::BTreeSet::new();
    for (label, q) in task_queues {
        let at = |k: &str| format!("task_queues.{label}.{k}");
        if q.name.trim().is_empty() {
            out.push(problem(at("name"), "must not be empty"));
        } else if !names.insert(q.name.as_str()) {
            out.push(problem(
                at("name"),
                format!("`{}` is named by another task queue too", q.name),
            ));
        }
        if q.workflow_pollers.is_some_and(|p| p < 2) {
            out.push(problem(at("workflow_pollers"), "must be at least 2"));
        }
        for (key, value) in [
            ("max_concurrent_activities", q.max_concurrent_activities),
            (
                "max_concurrent_workflow_tasks",
                q.max_concurrent_workflow_tasks,
            ),
            ("activity_pollers", q.activity_pollers),
        ] {
            if value == Some(0) {
                out.push(problem(at(key), "must be at least 1"));
            }
        }
        if q.max_activities_per_sec
            .is_some_and(|r| !(r.is_finite() && r > 0.0))
        {
            out.push(problem(
                at("max_activities_per_sec"),
                "must be a positive number",
            ));
        }
    }
    out
}
