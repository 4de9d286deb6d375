//! What the worker registers: every workflow and every activity, in one place.
//!
//! The same list serves the worker and the replayer ([`WorkflowRegistry`]), so a workflow can't be
//! run without also being replay-checked.

// `#[activities]` also emits a constant per activity for calling it by definition; the worker
// registers whole structs, so in this binary those constants are never read.
#![allow(dead_code)]

use std::sync::Arc;

use anyhow::Context;
use std::time::Duration;

use edgeflow_workflows::echo::{EchoInput, MAX_DELAY_MS};
use edgeflow_workflows::order::OrderSettings;
use temporalio_common::WorkflowDefinition;
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::workflow_replayer::WorkflowReplayerOptions;
use temporalio_sdk::{ApplicationFailure, WorkerOptions, WorkflowRegistrationError};
use temporalio_workflow::workflows::WorkflowImplementation;

use crate::settings::Settings;

/// Something workflows are registered on: a worker's options or a replayer's.
pub trait WorkflowRegistry {
    fn add<W>(&mut self) -> Result<(), WorkflowRegistrationError>
    where
        W: WorkflowImplementation,
        <W::Run as WorkflowDefinition>::Input: Send;
}

impl WorkflowRegistry for WorkerOptions {
    fn add<W>(&mut self) -> Result<(), WorkflowRegistrationError>
    where
        W: WorkflowImplementation,
        <W::Run as WorkflowDefinition>::Input: Send,
    {
        self.register_workflow::<W>().map(|_| ())
    }
}

impl WorkflowRegistry for WorkflowReplayerOptions {
    fn add<W>(&mut self) -> Result<(), WorkflowRegistrationError>
    where
        W: WorkflowImplementation,
        <W::Run as WorkflowDefinition>::Input: Send,
    {
        self.register_workflow::<W>().map(|_| ())
    }
}

/// Every workflow this worker runs.
pub fn register_workflows(
    registry: &mut impl WorkflowRegistry,
) -> Result<(), WorkflowRegistrationError> {
    registry.add::<edgeflow_workflows::EchoWorkflow>()?;
    registry.add::<edgeflow_workflows::OrderWorkflow>()?;
    registry.add::<edgeflow_workflows::ReportWorkflow>()?;
    registry.add::<edgeflow_workflows::FanoutWorkflow>()?;
    Ok(())
}

/// Every activity: the four families, `echo`, and the workflows' settings activities.
/// Built once from settings; registered on every task queue that runs activities.
pub struct Activities {
    families: edgeflow_activities::Activities,
    workflow_settings: WorkflowSettingsActivities,
}

impl Activities {
    /// Connects the database (running its migrations), loads the named statements and
    /// templates, and sets up every client.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let families =
            edgeflow_activities::Activities::build(edgeflow_activities::ActivitiesSettings {
                services: &settings.services,
                database: &settings.database,
                email: &settings.email,
                webhooks: &settings.webhooks,
            })
            .await
            .context("setting up the activities")?;
        Ok(Self {
            families,
            workflow_settings: WorkflowSettingsActivities {
                order: settings.workflows.order.clone(),
            },
        })
    }

    pub fn register(&self, options: &mut WorkerOptions) {
        self.families.register(options);
        options.register_activities(EchoActivities);
        options.register_activities(self.workflow_settings.clone());
    }

    /// Closes the database pool; call after the workers have drained.
    pub async fn close(&self) {
        self.families.database().close().await;
    }
}

/// `echo`: returns its input, optionally after a delay that heartbeats every second and ends
/// early, as cancelled, when Temporal or a shutdown cancels the activity.
pub struct EchoActivities;

#[activities]
impl EchoActivities {
    #[activity(definition = edgeflow_workflows::echo::EchoDefinition)]
    pub async fn echo(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: EchoInput,
    ) -> Result<serde_json::Value, ActivityError> {
        if input.delay_ms > MAX_DELAY_MS {
            return Err(ActivityError::application(
                ApplicationFailure::non_retryable(format!(
                    "delay_ms {} is above the maximum of {MAX_DELAY_MS}",
                    input.delay_ms
                )),
            ));
        }
        tracing::info!(delay_ms = input.delay_ms, "echo");
        let deadline = tokio::time::Instant::now() + Duration::from_millis(input.delay_ms);
        while tokio::time::Instant::now() < deadline {
            let step = deadline
                .saturating_duration_since(tokio::time::Instant::now())
                .min(Duration::from_secs(1));
            tokio::select! {
                _ = tokio::time::sleep(step) => {}
                _ = ctx.cancelled() => return Err(ActivityError::cancelled()),
            }
            // Heartbeats carry Temporal's cancellation requests back to a long activity.
            let _ = ctx.record_heartbeat(()).await;
        }
        Ok(input.message)
    }
}

/// The task queue on which `service`'s `http.call`s wait for a worker that has a free call for
/// that service: the workflow's queue, a `.`, and the service's name (`edgeflow.payments`).
/// Every process that runs activities for `queue` polls it with `max_concurrent` slots.
pub fn service_task_queue(queue: &str, service: &str) -> String {
    format!("{queue}.{service}")
}

/// `settings.order`: hands the `order` workflow its settings, recorded in history.
#[derive(Clone)]
pub struct WorkflowSettingsActivities {
    pub order: OrderSettings,
}

#[activities]
impl WorkflowSettingsActivities {
    /// The settings, each job's call routed to its service's task queue (unless configured).
    #[activity(definition = edgeflow_workflows::order::OrderSettingsDefinition)]
    pub async fn order(
        self: Arc<Self>,
        ctx: ActivityContext,
        _input: (),
    ) -> Result<OrderSettings, ActivityError> {
        let mut order = self.order.clone();
        // A local activity runs on the workflow's worker, with the workflow's task queue.
        let queue = &ctx.info().task_queue;
        for job in [
            &mut order.reserve_inventory,
            &mut order.charge_payment,
            &mut order.notify_shipping,
            &mut order.release_inventory,
            &mut order.refund_payment,
        ] {
            if job.task_queue.is_none() {
                job.task_queue = Some(service_task_queue(queue, &job.service));
            }
        }
        Ok(order)
    }
}
