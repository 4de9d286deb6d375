//! `edgeflow schedules sync`: make the cluster's Temporal Schedules match `[schedules.NAME]`.
//!
//! Each configured schedule becomes the Schedule `edgeflow-<NAME>`, whose note carries a marker
//! and a fingerprint of its settings. Sync creates the missing ones, updates those whose
//! fingerprint differs, and deletes marked ones no longer configured. Schedules without the
//! marker are never touched, even under an `edgeflow-` id (that is reported as a conflict).
//! Running it twice changes nothing the second time. With `worker.sync_schedules_on_start`, the
//! worker runs it before polling.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use temporalio_client::schedules::{
    CreateScheduleOptions, ListSchedulesOptions, ScheduleAction, ScheduleError, ScheduleSpec,
};
use temporalio_client::{Client, UntypedWorkflow};
use temporalio_common::data_converters::RawValue;

use crate::payload::json_payload;
use crate::settings::error::{SettingError, problem};

const ID_PREFIX: &str = "edgeflow-";
const MARKER: &str = "managed by edgeflow";

/// `[schedules.NAME]`: start `workflow` with `input` on a cron or a fixed interval.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSettings {
    /// Workflow type, e.g. `report`.
    pub workflow: String,
    /// Cron expression (`minute hour day month weekday`), e.g. `"0 2 * * *"`. Set this or `every_secs`.
    pub cron: Option<String>,
    /// Fixed interval. Set this or `cron`.
    pub every_secs: Option<u64>,
    /// IANA time zone of `cron`, e.g. `Europe/Berlin` (default UTC).
    pub timezone: Option<String>,
    /// The workflow's input (a TOML table becomes a JSON object).
    #[serde(default)]
    pub input: serde_json::Value,
    /// Task queue (default: the first configured queue that runs workflows).
    pub task_queue: Option<String>,
    /// Create or keep the schedule paused.
    #[serde(default)]
    pub paused: bool,
}

/// What sync did, per schedule id.
#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub unchanged: Vec<String>,
    pub deleted: Vec<String>,
}

pub fn validate(schedules: &BTreeMap<String, ScheduleSettings>) -> Vec<SettingError> {
    let mut out = Vec::new();
    for (name, s) in schedules {
        let at = |k: &str| format!("schedules.{name}.{k}");
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            out.push(problem(
                format!("schedules.{name}"),
                "names use letters, digits, `-` and `_`",
            ));
        }
        match (&s.cron, s.every_secs) {
            (Some(_), Some(_)) => out.push(problem(at("cron"), "set cron or every_secs, not both")),
            (None, None) => out.push(problem(at("cron"), "set cron or every_secs")),
            (Some(cron), None) if cron.split_whitespace().count() != 5 => out.push(problem(
                at("cron"),
                format!("`{cron}` is not five fields (minute hour day month weekday)"),
            )),
            (None, Some(0)) => out.push(problem(at("every_secs"), "must be at least 1")),
            _ => {}
        }
        if !edgeflow_workflows::catalog::workflows()
            .iter()
            .any(|w| w.name == s.workflow)
        {
            out.push(problem(
                at("workflow"),
                format!("`{}` is not a workflow this worker runs", s.workflow),
            ));
        }
    }
    out
}

/// What a schedule's note records of its settings. With encryption on it covers the active key
/// id too: the action's input is stored encrypted, so a rotation rewrites it under the new key,
/// and the old key can later go without leaving a schedule whose runs cannot read their input.
fn fingerprint(s: &ScheduleSettings, task_queue: &str, encrypted_with: Option<&str>) -> String {
    let canonical = match encrypted_with {
        None => serde_json::to_string(&(s, task_queue)),
        Some(key_id) => serde_json::to_string(&(s, task_queue, key_id)),
    }
    .unwrap_or_default();
    let digest = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
    digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn note(fp: &str) -> String {
    format!("{MARKER}; settings {fp}")
}

fn spec(s: &ScheduleSettings) -> ScheduleSpec {
    let mut spec = match (&s.cron, s.every_secs) {
        (Some(cron), _) => ScheduleSpec::builder()
            .cron_strings(vec![cron.clone()])
            .build(),
        (None, Some(secs)) => ScheduleSpec::from_interval(Duration::from_secs(secs)),
        (None, None) => ScheduleSpec::default(),
    };
    if let Some(tz) = &s.timezone {
        spec.timezone_name = tz.clone();
    }
    spec
}

fn action(id: &str, s: &ScheduleSettings, task_queue: &str) -> ScheduleAction {
    ScheduleAction::start_workflow(
        UntypedWorkflow::new(s.workflow.clone()),
        RawValue::new(vec![json_payload(&s.input)]),
        task_queue.to_string(),
        // Temporal appends each run's scheduled time, so every run has its own id.
        id.to_string(),
    )
}

fn not_found(e: &ScheduleError) -> bool {
    matches!(e, ScheduleError::Rpc(status) if status.code() == temporalio_client::tonic::Code::NotFound)
}

/// Makes the server's edgeflow schedules match `schedules`. A schedule without a `task_queue`
/// starts its workflow on `default_queue` (`Settings::workflow_task_queue`). `encrypted_with`
/// is the active payload key's id when `client` encrypts.
pub async fn sync(
    schedules: &BTreeMap<String, ScheduleSettings>,
    default_queue: Option<&str>,
    client: &Client,
    encrypted_with: Option<&str>,
) -> anyhow::Result<SyncReport> {
    let mut report = SyncReport::default();
    for (name, s) in schedules {
        let id = format!("{ID_PREFIX}{name}");
        let queue = s
            .task_queue
            .as_deref()
            .or(default_queue)
            .with_context(|| {
                format!(
                    "schedules.{name}: no task_queue, and no configured task queue runs workflows"
                )
            })?
            .to_string();
        let fp = fingerprint(s, &queue, encrypted_with);
        let handle = client.get_schedule_handle(id.clone());
        match handle.describe(Default::default()).await {
            Ok(existing) => {
                let existing_note = existing.note().unwrap_or_default().to_string();
                anyhow::ensure!(
                    existing_note.starts_with(MARKER),
                    "schedule {id} exists but was not created by edgeflow; rename [schedules.{name}] or delete it"
                );
                if existing_note == note(&fp) {
                    report.unchanged.push(id);
                    continue;
                }
                let (spec, action, paused, new_note) =
                    (spec(s), action(&id, s, &queue), s.paused, note(&fp));
                handle
                    .update(
                        move |u| {
                            u.set_spec(spec)
                                .set_action(action)
                                .set_paused(paused)
                                .set_note(new_note);
                        },
                        Default::default(),
                    )
                    .await
                    .with_context(|| format!("updating schedule {id}"))?;
                report.updated.push(id);
            }
            Err(e) if not_found(&e) => {
                client
                    .create_schedule(
                        id.clone(),
                        CreateScheduleOptions::builder()
                            .action(action(&id, s, &queue))
                            .spec(spec(s))
                            .paused(s.paused)
                            .note(note(&fp))
                            .build(),
                    )
                    .await
                    .with_context(|| format!("creating schedule {id}"))?;
                report.created.push(id);
            }
            Err(e) => return Err(e).with_context(|| format!("describing schedule {id}")),
        }
    }

    let wanted: Vec<String> = schedules
        .keys()
        .map(|n| format!("{ID_PREFIX}{n}"))
        .collect();
    let mut stale = Vec::new();
    let mut listed = client.list_schedules(ListSchedulesOptions::default());
    while let Some(entry) = listed.next().await {
        let entry = entry.context("listing schedules")?;
        let id = entry.schedule_id().to_string();
        if id.starts_with(ID_PREFIX)
            && !wanted.contains(&id)
            && entry.note().is_some_and(|n| n.starts_with(MARKER))
        {
            stale.push(id);
        }
    }
    for id in stale {
        client
            .get_schedule_handle(id.clone())
            .delete(Default::default())
            .await
            .with_context(|| format!("deleting schedule {id}"))?;
        report.deleted.push(id);
    }
    Ok(report)
}
