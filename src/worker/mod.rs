//! `edgeflow worker`: connect, register, poll every configured task queue, drain on a signal.
//!
//! Start-up order: the ops endpoints first (so `/healthz` answers and `/readyz` says why it is
//! not ready yet), then the connection to Temporal (retried until it succeeds or a signal
//! arrives), then one SDK worker per `[task_queues.NAME]`, registering workflows, activities or
//! both as the queue says; for a queue that runs activities, one more per service
//! (`<queue>.<service>`) and, with `[edge_activities]`, one for the edge's (`<queue>.edge`). While
//! running, a checker keeps `/readyz` true to the Temporal server's reachability and a watcher
//! rotates credentials. On SIGTERM or SIGINT the server is asked to complete every worker's polls
//! ([`end_polls`]), then every worker stops polling and runs the workflow tasks it holds;
//! in-flight activities get `shutdown.grace_period_secs` to finish, then are cancelled.
//!
//! [`settings`]: the `[worker]`, `[task_queues.NAME]` and `[shutdown]` sections, and their checks.

pub mod observe;
pub mod registry;
pub mod settings;
pub mod versioning;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use temporalio_client::{Client, ClientOptions, Connection};
use temporalio_common::protos::temporal::api::workflowservice::v1::DescribeNamespaceRequest;
use temporalio_common::telemetry::metrics::CoreMeter;
use temporalio_common::telemetry::{
    PrometheusExporterOptions, TelemetryOptions, start_prometheus_metric_exporter,
};
use temporalio_common::worker::{WorkerDeploymentOptions, WorkerDeploymentVersion};
use temporalio_sdk::runtime::worker_tuner::{FixedSizeSlotSupplier, TunerHolder};
use temporalio_sdk::runtime::{PollerBehavior, RuntimeOptions};
use temporalio_sdk::{Runtime, Worker, WorkerOptions};
use tokio_util::sync::CancellationToken;

use crate::connection;
use crate::ops::{self, Readiness};
use crate::settings::Settings;
use crate::telemetry::Telemetry;
use observe::Metrics;
use settings::TaskQueueSettings;

/// The program name in the worker's identity (`edgeflow-<pid>@<host>` unless `worker.identity`).
pub const PROGRAM: &str = "edgeflow";

/// Runs the worker until a signal (or `stop`) asks it to end; returns once drained.
pub async fn run(
    settings: Settings,
    telemetry: &Telemetry,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let metrics = Metrics::new();
    let readiness = Readiness::new("starting");
    let ops_stop = CancellationToken::new();

    // The SDK's own metrics go to its exporter on a private loopback port; `/metrics` relays them.
    let prometheus = start_prometheus_metric_exporter(
        PrometheusExporterOptions::builder()
            .socket_addr(([127, 0, 0, 1], 0).into())
            .counters_total_suffix(true)
            .build(),
    )
    .context("starting the SDK metrics exporter")?;
    let activity_metrics = metrics.clone();
    let (ops_addr, ops_task) = ops::serve(
        settings.ops.listen,
        readiness.clone(),
        vec![
            Box::new(move || activity_metrics.render()),
            Box::new(observe::render_dropped_signals),
            Box::new(observe::render_edge_failures),
        ],
        Some(prometheus.bound_addr),
        ops_stop.clone(),
    )
    .await?;
    tracing::info!(%ops_addr, "ops endpoints listening (/healthz, /readyz, /metrics)");

    let runtime = Runtime::from_current_tokio(
        RuntimeOptions::builder()
            .telemetry_options(
                TelemetryOptions::builder()
                    .subscriber_override(telemetry.subscriber.clone())
                    .metrics(prometheus.meter.clone() as Arc<dyn CoreMeter>)
                    .build(),
            )
            .build()
            .map_err(|e| anyhow::anyhow!(e))?,
    )?;

    // Keys are read before connecting: a key file gone since the settings loaded stops the
    // start-up here, not the first payload.
    let (data_converter, codec) = crate::codec::data_converter(&settings.encryption)?;
    tracing::info!("payload encryption {}", settings.encryption.describe());

    let identity = connection::identity(&settings, PROGRAM);
    let Some((connection, client_cert)) =
        connection::connect_until_stopped(&settings.temporal, &identity, &readiness, &stop).await
    else {
        ops_stop.cancel();
        let _ = ops_task.await;
        tracing::info!("stopped before connecting to Temporal");
        return Ok(());
    };
    // The OpenTelemetry plugin goes on the client, so every worker made from it continues the
    // callers' traces (`_tracer-data` headers) and wraps the observe plugin below. The workers
    // take the client's data converter, so they encrypt and decrypt with it.
    let client = Client::new(
        connection.clone(),
        ClientOptions::new(settings.temporal.namespace.clone())
            .plugin(telemetry.temporal_plugin())
            .data_converter(data_converter)
            .build(),
    )
    .context("creating the Temporal client")?;

    report_poll_completion_on_shutdown(&connection, &settings.temporal.namespace).await;

    if settings.worker.sync_schedules_on_start {
        let report = crate::schedules::sync(
            &settings.schedules,
            settings.workflow_task_queue(),
            &client,
            codec.as_ref().and_then(|c| c.encrypts_with()),
        )
        .await
        .context("syncing schedules")?;
        tracing::info!(?report, "schedules synced");
    }
    let activities = registry::Activities::build(&settings).await?;

    let build_id = versioning::build_id(&settings.worker);
    let common = Common {
        settings: &settings,
        identity: &identity,
        build_id: &build_id,
        metrics: &metrics,
        activities: &activities,
    };
    let mut workers = Vec::new();
    // What each SDK worker polls, for the `ShutdownWorker` this process sends itself on a stop.
    let mut polls = Vec::new();
    for queue in settings.task_queues.values() {
        let name = &queue.name;
        let options = worker_options(&common, name, queue)?;
        let worker = Worker::new(&runtime, client.clone(), options)
            .with_context(|| format!("creating the worker for task queue {name}"))?;
        tracing::info!(
            task_queue = %name,
            runs = ?queue.runs,
            "registered task queue"
        );
        polls.push(Polls::of(
            &worker,
            queue.runs.workflows(),
            queue.runs.activities(),
        ));
        workers.push(worker);
        if !queue.runs.activities() {
            continue;
        }
        for (service, limits) in &settings.services.services {
            let service_queue = registry::service_task_queue(name, service);
            let slots = limits.max_concurrent.max(1) as usize;
            let mut options = service_worker_options(&common, &service_queue, queue, slots)?;
            activities.register(&mut options);
            let worker = Worker::new(&runtime, client.clone(), options)
                .with_context(|| format!("creating the worker for task queue {service_queue}"))?;
            tracing::info!(task_queue = %service_queue, %service, slots, "registered service task queue");
            polls.push(Polls::of(&worker, false, true));
            workers.push(worker);
        }
        if let Some(edge) = &activities.edge {
            let edge_queue = edgeflow_activities::edge::task_queue(name);
            let slots = settings.edge_activities.max_concurrent.max(1);
            let mut options = service_worker_options(&common, &edge_queue, queue, slots)?;
            edge.register(&mut options);
            let worker = Worker::new(&runtime, client.clone(), options)
                .with_context(|| format!("creating the worker for task queue {edge_queue}"))?;
            tracing::info!(task_queue = %edge_queue, slots, edge = %settings.edge_activities.url, "registered edge task queue");
            workers.push(worker);
        }
    }
    let shutdowns: Vec<Box<dyn Fn()>> = workers
        .iter()
        .map(|w| Box::new(w.shutdown_handle()) as Box<dyn Fn()>)
        .collect();

    let background = CancellationToken::new();
    tokio::spawn(connection::watch_credentials(
        settings.temporal.clone(),
        connection.clone(),
        client_cert,
        background.clone(),
    ));
    let running = Arc::new(AtomicUsize::new(workers.len()));
    let expected = workers.len();
    let polling = running.clone();
    tokio::spawn(connection::follow_readiness(
        connection.clone(),
        settings.temporal.clone(),
        Duration::from_secs(settings.worker.readiness_check_secs),
        readiness.clone(),
        move || {
            (polling.load(Ordering::SeqCst) < expected)
                .then(|| "a task queue's worker stopped polling".to_string())
        },
        background.clone(),
    ));

    if settings.worker.use_worker_versioning {
        tokio::spawn(report_version(
            connection.clone(),
            settings.temporal.namespace.clone(),
            settings.worker.clone(),
            identity.clone(),
            build_id.clone(),
            background.clone(),
        ));
    }

    let grace = Duration::from_secs(settings.shutdown.grace_period_secs);
    let runs = futures_util::future::join_all(workers.iter_mut().map(|w| {
        let running = running.clone();
        async move {
            let queue = w.task_queue().to_string();
            let result = w.run().await;
            running.fetch_sub(1, Ordering::SeqCst);
            result.with_context(|| format!("worker for task queue {queue} stopped"))
        }
    }));
    tokio::pin!(runs);
    tracing::info!(identity = %identity, queues = settings.task_queues.len(), "worker running");

    let (results, drain) = tokio::select! {
        results = &mut runs => (results, None),
        _ = stop.cancelled() => {
            readiness.set_not_ready("shutting down");
            let in_flight = metrics.in_flight();
            let before = metrics.finished();
            tracing::info!(
                in_flight,
                grace_period_secs = grace.as_secs(),
                "shutdown requested: polling stops, in-flight activities get the grace period"
            );
            let started = Instant::now();
            end_polls(&connection, &settings.temporal.namespace, &identity, &polls).await;
            for shutdown in &shutdowns {
                shutdown();
            }
            let results = runs.await;
            (results, Some((in_flight, before, started.elapsed())))
        }
    };
    background.cancel();
    readiness.set_not_ready("stopped");

    if let Some((in_flight, before, took)) = drain {
        let ended = metrics.finished() - before;
        tracing::info!(
            in_flight_at_signal = in_flight,
            completed = ended.completed,
            failed = ended.failed,
            timed_out = ended.timed_out,
            cancelled = ended.cancelled,
            took_ms = took.as_millis() as u64,
            "drained: {} activit{} in flight at shutdown, {} completed, {} failed, {} timed out, {} cancelled at the grace deadline",
            in_flight,
            if in_flight == 1 { "y" } else { "ies" },
            ended.completed,
            ended.failed,
            ended.timed_out,
            ended.cancelled,
        );
    }
    activities.close().await;
    ops_stop.cancel();
    let _ = ops_task.await;
    prometheus.abort_handle.abort();
    for result in results {
        result?;
    }
    Ok(())
}

/// With worker versioning on: logs which version this process is and whether it is current,
/// after making it current first if `worker.promote = "first"` and the deployment has none. A
/// worker whose version is not current polls but gets no task, so that is a warning naming the
/// command that changes it.
async fn report_version(
    connection: Connection,
    namespace: String,
    w: settings::WorkerSettings,
    identity: String,
    build_id: String,
    stop: CancellationToken,
) {
    use settings::Promote;
    let deployment = &w.deployment_name;
    let promotion = match w.promote {
        Promote::First => {
            versioning::promote_if_none(
                &connection,
                &namespace,
                deployment,
                &build_id,
                &identity,
                &stop,
            )
            .await
        }
        Promote::Never => {
            tracing::info!(%deployment, %build_id, "worker versioning on; this version becomes current only by the operator (worker.promote = \"never\")");
            return;
        }
    };
    match promotion {
        Ok(versioning::Promotion::Promoted) => {
            tracing::info!(%deployment, %build_id, "made this version current: the deployment had none")
        }
        Ok(versioning::Promotion::AlreadyCurrent) => {
            tracing::info!(%deployment, %build_id, "this version is current")
        }
        Ok(versioning::Promotion::OtherIsCurrent(current)) => tracing::warn!(
            %deployment,
            %build_id,
            %current,
            "this version is not current: it runs only the runs pinned to it and gets no new ones until `temporal worker deployment set-current-version --deployment-name {deployment} --build-id {build_id}` (or a ramp)"
        ),
        Err(error) => {
            tracing::warn!(%deployment, %build_id, "could not make this version current: {error:#}")
        }
    }
}

/// What every SDK worker of this process shares.
struct Common<'a> {
    settings: &'a Settings,
    identity: &'a str,
    build_id: &'a str,
    metrics: &'a Arc<Metrics>,
    activities: &'a registry::Activities,
}

/// This process's Worker Deployment version. With versioning on, a workflow task completes with
/// its type's behavior (`versioning::behaviors`, set on the options by `worker_options`) and
/// anything else auto-upgrades.
fn deployment(common: &Common) -> WorkerDeploymentOptions {
    let w = &common.settings.worker;
    WorkerDeploymentOptions::new(
        WorkerDeploymentVersion::builder()
            .deployment_name(w.deployment_name.clone())
            .build_id(common.build_id.to_string())
            .build(),
    )
    .use_worker_versioning(w.use_worker_versioning)
    .maybe_default_versioning_behavior(
        w.use_worker_versioning
            .then_some(temporalio_common::worker::VersioningBehavior::AutoUpgrade),
    )
    .build()
}

fn worker_options(
    common: &Common,
    name: &str,
    queue: &TaskQueueSettings,
) -> anyhow::Result<WorkerOptions> {
    let settings = common.settings;
    let w = &settings.worker;
    let slots =
        |own: Option<usize>, default: usize| FixedSizeSlotSupplier::new(own.unwrap_or(default));
    let tuner = TunerHolder::builder()
        .workflow_task_slot_supplier(slots(
            queue.max_concurrent_workflow_tasks,
            w.max_concurrent_workflow_tasks,
        ))
        .activity_task_slot_supplier(slots(
            queue.max_concurrent_activities,
            w.max_concurrent_activities,
        ))
        .local_activity_task_slot_supplier(FixedSizeSlotSupplier::new(
            w.max_concurrent_local_activities,
        ))
        .nexus_task_slot_supplier(FixedSizeSlotSupplier::new(1))
        .build();
    let mut options = WorkerOptions::new(name)
        .deployment_options(deployment(common))
        .client_identity_override(common.identity.to_string())
        .max_cached_workflows(w.max_cached_workflows)
        .sticky_queue_schedule_to_start_timeout(Duration::from_secs(
            w.sticky_schedule_to_start_timeout_secs,
        ))
        .tuner(tuner)
        .workflow_task_poller_behavior(PollerBehavior::SimpleMaximum(
            queue.workflow_pollers.unwrap_or(w.workflow_pollers),
        ))
        .activity_task_poller_behavior(PollerBehavior::SimpleMaximum(
            queue.activity_pollers.unwrap_or(w.activity_pollers),
        ))
        .maybe_max_worker_activities_per_second(queue.max_activities_per_sec)
        .graceful_shutdown_period(Duration::from_secs(settings.shutdown.grace_period_secs))
        .worker_plugin(observe::plugin(common.metrics.clone()))
        .workflow_versioning_behaviors(if w.use_worker_versioning {
            versioning::behaviors()
        } else {
            Default::default()
        })
        .build();
    if queue.runs.workflows() {
        registry::register_workflows(&mut options)
            .with_context(|| format!("registering workflows on task queue {name}"))?;
    }
    if queue.runs.activities() {
        common.activities.register(&mut options);
    }
    Ok(options)
}

/// An activities-only worker on a service's task queue (or the edge's): it takes no more of that
/// service's calls than the service's `max_concurrent` lets run, so the rest wait in Temporal, not
/// in the worker. The caller registers its activities.
fn service_worker_options(
    common: &Common,
    service_queue: &str,
    queue: &TaskQueueSettings,
    slots: usize,
) -> anyhow::Result<WorkerOptions> {
    let settings = common.settings;
    let w = &settings.worker;
    let tuner = TunerHolder::builder()
        .workflow_task_slot_supplier(FixedSizeSlotSupplier::new(1))
        .activity_task_slot_supplier(FixedSizeSlotSupplier::new(slots))
        .local_activity_task_slot_supplier(FixedSizeSlotSupplier::new(1))
        .nexus_task_slot_supplier(FixedSizeSlotSupplier::new(1))
        .build();
    let pollers = queue
        .activity_pollers
        .unwrap_or(w.activity_pollers)
        .min(slots);
    let options = WorkerOptions::new(service_queue)
        .deployment_options(deployment(common))
        .client_identity_override(common.identity.to_string())
        .tuner(tuner)
        .activity_task_poller_behavior(PollerBehavior::SimpleMaximum(pollers.max(1)))
        .maybe_max_worker_activities_per_second(queue.max_activities_per_sec)
        .graceful_shutdown_period(Duration::from_secs(settings.shutdown.grace_period_secs))
        .worker_plugin(observe::plugin(common.metrics.clone()))
        .build();
    Ok(options)
}

/// What one SDK worker polls: its task queue, the task types, and the instance key the server
/// knows its polls by.
struct Polls {
    task_queue: String,
    instance_key: String,
    workflows: bool,
    activities: bool,
}

impl Polls {
    fn of(worker: &Worker, workflows: bool, activities: bool) -> Self {
        Self {
            task_queue: worker.task_queue().to_string(),
            instance_key: worker.worker_instance_key().to_string(),
            workflows,
            activities,
        }
    }
}

/// How long the SDK workers go on running after the server completed their polls, so a task
/// matched to a poll in that instant reaches a workflow stream that is still alive.
const POLLS_SETTLE: Duration = Duration::from_millis(500);

/// The first step of a stop, before the SDK's own shutdown: `ShutdownWorker` for every SDK worker
/// (its instance key, queue and task types), so the server completes their outstanding polls and
/// refuses new ones (for 30 s) while the SDK workers still run, and a task the server matched to
/// one of those polls in that instant is delivered and run. The SDK's shutdown, started right
/// after, ends core's workflow stream as soon as its runs are idle without waiting for its pollers
/// (`temporalio-sdk-core` 0.10.1, `workflow_stream.rs` `shutdown_done`): a task a poll delivered
/// after that would be dropped and time out (start-to-close). Best effort: an error is logged and
/// the stop goes on (the SDK sends its own `ShutdownWorker` anyway). See docs/architecture.md,
/// "Stopping".
async fn end_polls(connection: &Connection, namespace: &str, identity: &str, polls: &[Polls]) {
    use temporalio_common::protos::temporal::api::enums::v1::TaskQueueType;
    use temporalio_common::protos::temporal::api::workflowservice::v1::ShutdownWorkerRequest;
    let started = Instant::now();
    let calls = polls.iter().map(|p| {
        let mut types = Vec::new();
        if p.workflows {
            types.push(TaskQueueType::Workflow as i32);
        }
        if p.activities {
            types.push(TaskQueueType::Activity as i32);
        }
        let request = ShutdownWorkerRequest {
            namespace: namespace.to_string(),
            identity: identity.to_string(),
            reason: "graceful shutdown".to_string(),
            worker_instance_key: p.instance_key.clone(),
            task_queue: p.task_queue.clone(),
            task_queue_types: types,
            ..Default::default()
        };
        let mut service = connection.workflow_service();
        async move {
            let call = service.shutdown_worker(temporalio_client::tonic::Request::new(request));
            match tokio::time::timeout(Duration::from_secs(5), call).await {
                Ok(Ok(_)) => {}
                Ok(Err(status)) => {
                    tracing::warn!(task_queue = %p.task_queue, %status, "ShutdownWorker failed")
                }
                Err(_) => {
                    tracing::warn!(task_queue = %p.task_queue, "ShutdownWorker took over 5 s")
                }
            }
        }
    });
    futures_util::future::join_all(calls).await;
    tokio::time::sleep(POLLS_SETTLE).await;
    tracing::info!(
        workers = polls.len(),
        took_ms = started.elapsed().as_millis() as u64,
        "the server completed this worker's polls"
    );
}

/// Says whether the namespace completes a stopping worker's in-flight polls (capability
/// `worker_poll_complete_on_shutdown`, server dynamic config
/// `frontend.enableCancelWorkerPollsOnShutdown`). Without it the SDK drops those polls when it
/// stops, and a workflow task the server handed to one of them in that instant is started but
/// never run: it times out (start-to-close, 10 s) before another worker gets it.
async fn report_poll_completion_on_shutdown(connection: &Connection, namespace: &str) {
    let described = connection
        .workflow_service()
        .describe_namespace(temporalio_client::tonic::Request::new(
            DescribeNamespaceRequest {
                namespace: namespace.to_string(),
                ..Default::default()
            },
        ))
        .await;
    match described {
        Ok(response) => {
            let on = response
                .into_inner()
                .namespace_info
                .and_then(|info| info.capabilities)
                .is_some_and(|c| c.worker_poll_complete_on_shutdown);
            if on {
                tracing::info!(
                    namespace,
                    "the server completes this worker's polls when it stops"
                );
            } else {
                tracing::warn!(
                    namespace,
                    "the server does not complete a stopping worker's polls (set its dynamic config \
                     frontend.enableCancelWorkerPollsOnShutdown=true): a stop may leave a workflow \
                     task to time out (see docs/architecture.md, \"Stopping\")"
                );
            }
        }
        Err(status) => tracing::debug!(%status, "could not describe the namespace"),
    }
}
