//! What the worker registers: every workflow and every activity, in one place.
//!
//! The same list serves the worker and the replayer ([`WorkflowRegistry`]), so a workflow can't be
//! run without also being replay-checked.

use std::sync::Arc;

use anyhow::Context;

use edgeflow_workflows::order::OrderSettings;
use temporalio_common::WorkflowDefinition;
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::workflow_replayer::WorkflowReplayerOptions;
use temporalio_sdk::{WorkerOptions, WorkflowRegistrationError};
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
    #[cfg(debug_assertions)]
    if std::env::var_os("EDGEFLOW_TEST_INCOMPATIBLE_ORDER").is_some() {
        registry.add::<edgeflow_workflows::incompatible_order::IncompatibleOrder>()?;
    } else {
        registry.add::<edgeflow_workflows::OrderWorkflow>()?;
    }
    #[cfg(not(debug_assertions))]
    registry.add::<edgeflow_workflows::OrderWorkflow>()?;
    registry.add::<edgeflow_workflows::ReportWorkflow>()?;
    registry.add::<edgeflow_workflows::FanoutWorkflow>()?;
    Ok(())
}

/// Every activity: the four families, `echo`, and the workflows' settings activity.
/// Built once from settings; registered on every task queue that runs activities.
pub struct Activities {
    families: edgeflow_activities::Activities,
    workflow_settings: WorkflowSettingsActivities,
    /// `edge.*`, registered only on `<queue>.edge`; `None` when `[edge_activities]` is off.
    pub edge: Option<edgeflow_activities::edge::EdgeActivities>,
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
        let edge = edgeflow_activities::edge::EdgeActivities::new(&settings.edge_activities)
            .context("setting up the edge activities")?;
        Ok(Self {
            families,
            workflow_settings: WorkflowSettingsActivities {
                order: settings.workflows.order.clone(),
                edge_activities: edge.is_some(),
            },
            edge,
        })
    }

    pub fn register(&self, options: &mut WorkerOptions) {
        self.families.register(options);
        options.register_activities(edgeflow_activities::echo::EchoActivities);
        options.register_activities(self.workflow_settings.clone());
    }

    /// Closes the database pool; call after the workers have drained.
    pub async fn close(&self) {
        self.families.database().close().await;
    }
}

/// The task queue on which `service`'s `http.call`s wait for a worker that has a free call for
/// that service: the workflow's queue, a `.`, and the service's name (`edgeflow.payments`).
/// Every process that runs activities for `queue` polls it with `max_concurrent` slots.
pub fn service_task_queue(queue: &str, service: &str) -> String {
    format!("{queue}.{service}")
}

pub use implemented_here::WorkflowSettingsActivities;

/// The activity this binary implements itself (the others are in `edgeflow_activities`).
/// `#[activities]` also emits a constant per activity for calling it by definition, which the
/// worker never reads (it registers whole structs): hence the `dead_code` allowance, on this
/// module alone.
#[allow(dead_code)]
mod implemented_here {
    use super::*;

    /// `settings.order`: hands the `order` workflow its settings, recorded in history.
    #[derive(Clone)]
    pub struct WorkflowSettingsActivities {
        pub order: OrderSettings,
        /// Whether this worker runs edge activities (`[edge_activities] url` is set).
        pub edge_activities: bool,
    }

    #[activities]
    impl WorkflowSettingsActivities {
        /// The settings, each job's call routed to its service's task queue (unless configured),
        /// and, when this worker runs edge activities, the status hint to the edge's.
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
            if self.edge_activities && order.status_hint_task_queue.is_none() {
                order.status_hint_task_queue = Some(edgeflow_activities::edge::task_queue(queue));
            }
            Ok(order)
        }
    }
}
