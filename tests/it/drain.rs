//! Stopping `edgeflow worker` under load costs no workflow task.
//!
//! Real dev server, real `edgeflow` processes without a sticky cache (`max_cached_workflows = 0`,
//! the setting for a cheap stop), a few
//! hundred runs in flight: `fanout` runs (three HTTP calls answering at different times, then an
//! `echo`, so each run has four or five workflow tasks in quick succession) and `echo` runs whose
//! activity takes 0.2-2.2 s (so a stopped worker still finishes some during its drain, and their
//! completions schedule workflow tasks while it stops). Every history is read at the end; each
//! `WorkflowTaskTimedOut` (schedule-to-start or start-to-close) and `WorkflowTaskFailed` is listed
//! with the task's queue and worker. None may fail or time out waiting to start; one scenario may
//! show at most one start-to-close timeout (see [`START_TO_CLOSE_ALLOWED`]).
//!
//! Two scenarios: the only worker stopped mid-load and replaced late, and a rolling restart of
//! two workers. Why a stop is free (no sticky queue, the patched SDK core's drain, one partition
//! on this test's server) is in docs/architecture.md ("Stopping").
//!
//! To hunt a rare timeout: `EDGEFLOW_DRAIN_LOGS=DIR` keeps each scenario's dev server and worker
//! logs, its trouble lines and the troubled runs' histories in a folder under DIR;
//! `EDGEFLOW_DRAIN_RUST_LOG` sets the workers' `RUST_LOG` (e.g.
//! `info,temporalio_sdk_core=debug`) and `EDGEFLOW_DRAIN_SERVER_LOG_LEVEL` the dev server's.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::common::{WorkerProcess, unique_queue};
use futures::StreamExt;
use temporalio_client::{
    Client, ClientOptions, Connection, ConnectionOptions, UntypedWorkflow, WorkflowDescribeOptions,
    WorkflowExecutionStatus, WorkflowStartOptions,
};
use temporalio_common::data_converters::RawValue;
use temporalio_common::protos::temporal::api::common::v1::Payload;
use temporalio_common::protos::temporal::api::enums::v1::{
    TaskQueueKind, TimeoutType, WorkflowTaskFailedCause,
};
use temporalio_common::protos::temporal::api::history::v1::HistoryEvent;
use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Runs started per second while workers stop and start, and for how long.
const RUNS_PER_SEC: u32 = 20;

/// A dev server, a stub service for `fanout`'s calls, a task queue and a client.
struct Stage {
    server: edgeflow_devserver::DevServer,
    dir: tempfile::TempDir,
    _mocks: MockServer,
    queue: String,
    env: Vec<(&'static str, String)>,
    client: Client,
}

impl Stage {
    async fn new(test: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut options = edgeflow_devserver::Options::new(
            edgeflow_testkit::temporal::cli(),
            dir.path().join("temporal.log"),
        );
        // One partition per task queue (the dev server's default is 4): a poll cancelled at a stop
        // also cancels the poll it forwarded to the parent partition, and a task that partition
        // had just started is lost (docs/upstream/temporal-forwarded-poll-cancel.md); production
        // clusters keep their partitions and that rare loss (see docs/architecture.md, "Stopping").
        options.dynamic_config = vec![
            "matching.numTaskqueueReadPartitions=1".to_string(),
            "matching.numTaskqueueWritePartitions=1".to_string(),
        ];
        if let Ok(level) = std::env::var("EDGEFLOW_DRAIN_SERVER_LOG_LEVEL") {
            options.log_level = level;
        }
        let server =
            tokio::task::spawn_blocking(move || edgeflow_devserver::DevServer::start(options))
                .await
                .unwrap()
                .expect("dev server");
        let mocks = MockServer::start().await;
        // The three parts answer at different times, so a run's calls complete one by one and
        // each completion schedules a workflow task of its own.
        for (part, delay_ms) in [("1", 20), ("2", 300), ("3", 800)] {
            Mock::given(method("GET"))
                .and(path("/stub/items"))
                .and(query_param("part", part))
                .respond_with(
                    ResponseTemplate::new(200)
                        .set_body_json(serde_json::json!({ "part": part }))
                        .set_delay(Duration::from_millis(delay_ms)),
                )
                .mount(&mocks)
                .await;
        }
        let env = vec![
            (
                "EDGEFLOW__SERVICES__INVENTORY__BASE_URL",
                format!("{}/stub/", mocks.uri()),
            ),
            (
                "EDGEFLOW__SERVICES__INVENTORY__MAX_CONCURRENT",
                "1000".to_string(),
            ),
            // Hashing the 600 MB debug executable for a build id takes seconds per start.
            ("EDGEFLOW__WORKER__BUILD_ID", "drain-test".to_string()),
            (
                "RUST_LOG",
                std::env::var("EDGEFLOW_DRAIN_RUST_LOG").unwrap_or_else(|_| "info".to_string()),
            ),
            // No sticky cache: the setting for a cheap stop (the shipped default keeps a cache
            // of 1000 for the CPU and the traces; docs/architecture.md, "Stopping").
            ("EDGEFLOW__WORKER__MAX_CACHED_WORKFLOWS", "0".to_string()),
        ];

        let connection = Connection::connect(
            ConnectionOptions::new(
                url::Url::parse(&format!("http://{}", server.grpc_address())).expect("url"),
            )
            .identity("drain-test".to_string())
            .build(),
        )
        .await
        .expect("connect");
        let client =
            Client::new(connection, ClientOptions::new("default").build()).expect("client");
        Self {
            server,
            dir,
            _mocks: mocks,
            queue: unique_queue(test),
            env,
            client,
        }
    }

    /// Starts a worker on the stage's queue and waits until it is ready.
    async fn worker(&self) -> WorkerProcess {
        WorkerProcess::ready(
            format!("http://{}", self.server.grpc_address()),
            self.queue.clone(),
            self.env.clone(),
        )
        .await
    }

    /// Starts runs at a steady pace for `for_secs`, alternating `fanout` and `echo`, so workflow
    /// tasks keep coming while workers stop and start; resolves to their ids.
    fn start_load(&self, per_sec: u32, for_secs: u32) -> tokio::task::JoinHandle<Vec<String>> {
        let (client, queue) = (self.client.clone(), self.queue.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1) / per_sec);
            let mut ids = Vec::new();
            let mut starts = Vec::new();
            for i in 0..(per_sec * for_secs) as usize {
                tick.tick().await;
                let (workflow, input) = if i % 2 == 0 {
                    (
                        "fanout",
                        serde_json::json!({"service": "inventory", "path": "items"}),
                    )
                } else {
                    let delay_ms = 200 + (i * 137) % 2000;
                    (
                        "echo",
                        serde_json::json!({"message": i, "delay_ms": delay_ms}),
                    )
                };
                let id = format!("{queue}-{workflow}-{i}");
                let payload = Payload {
                    metadata: [("encoding".to_string(), b"json/plain".to_vec())].into(),
                    data: serde_json::to_vec(&input).unwrap(),
                    ..Default::default()
                };
                let options = WorkflowStartOptions::new(queue.clone(), id.clone()).build();
                let client = client.clone();
                starts.push(tokio::spawn(async move {
                    client
                        .start_workflow(
                            UntypedWorkflow::new(workflow),
                            RawValue::new(vec![payload]),
                            options,
                        )
                        .await
                        .expect("start workflow");
                }));
                ids.push(id);
            }
            for started in starts {
                started.await.expect("start task");
            }
            ids
        })
    }

    async fn wait_all_completed(&self, ids: &[String], limit: Duration) {
        let deadline = Instant::now() + limit;
        for id in ids {
            loop {
                let described = self
                    .client
                    .get_workflow_handle::<UntypedWorkflow>(id.clone())
                    .describe(WorkflowDescribeOptions::default())
                    .await
                    .expect("describe");
                match described.status() {
                    WorkflowExecutionStatus::Completed => break,
                    WorkflowExecutionStatus::Running if Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(200)).await
                    }
                    other => panic!("{id} ended as {other:?} (or did not end in {limit:?})"),
                }
            }
        }
    }

    /// Every workflow-task timeout or failure in the runs' histories, one line each.
    async fn task_trouble(&self, ids: &[String]) -> Vec<String> {
        let histories = futures::stream::iter(ids.iter().cloned())
            .map(|id| async move {
                let events = self
                    .client
                    .get_workflow_handle::<UntypedWorkflow>(id.clone())
                    .fetch_history(Default::default())
                    .into_events()
                    .await
                    .expect("history");
                (id, events)
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
        let mut trouble: Vec<String> = histories
            .iter()
            .flat_map(|(id, events)| trouble_in(id, events))
            .collect();
        trouble.sort();
        trouble
    }
}

impl Stage {
    /// With `EDGEFLOW_DRAIN_LOGS=DIR` set (for hunting a rare timeout): copies the dev server's and
    /// the workers' logs, the trouble lines and the troubled runs' histories to a folder of its
    /// own under DIR before the stage (and its temp dir) goes.
    async fn keep_logs(&self, test: &str, workers: &[&WorkerProcess], trouble: &[String]) {
        let Ok(root) = std::env::var("EDGEFLOW_DRAIN_LOGS") else {
            return;
        };
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let out = std::path::Path::new(&root).join(format!("{test}-{stamp}"));
        std::fs::create_dir_all(&out).expect("logs dir");
        let _ = std::fs::copy(
            self.dir.path().join("temporal.log"),
            out.join("temporal.log"),
        );
        for (i, w) in workers.iter().enumerate() {
            let _ = std::fs::copy(&w.log, out.join(format!("worker-{i}-{}.log", w.child.id())));
        }
        let mut text = trouble.join("\n");
        for line in trouble {
            let Some(id) = line.split(' ').nth(1) else {
                continue;
            };
            let events = self
                .client
                .get_workflow_handle::<UntypedWorkflow>(id.to_string())
                .fetch_history(Default::default())
                .into_events()
                .await
                .expect("history");
            text.push_str(&format!("\n\n== {id}\n"));
            for e in events {
                text.push_str(&format!("{e:?}\n"));
            }
        }
        std::fs::write(out.join("trouble.txt"), text).expect("trouble.txt");
        eprintln!("logs kept in {}", out.display());
    }
}

/// The workflow-task timeouts and failures in one history, each with the queue its task was
/// scheduled on and the worker that started it, so a failing run says which race it hit.
fn trouble_in(id: &str, events: &[HistoryEvent]) -> Vec<String> {
    let event = |event_id: i64| events.iter().find(|e| e.event_id == event_id);
    let scheduled_on = |event_id: i64| match event(event_id).and_then(|e| e.attributes.as_ref()) {
        Some(Attributes::WorkflowTaskScheduledEventAttributes(a)) => {
            let kind = a.task_queue.as_ref().map(|q| q.kind).unwrap_or_default();
            let kind = TaskQueueKind::try_from(kind).unwrap_or(TaskQueueKind::Unspecified);
            format!("{} at {}", kind.as_str_name(), time_of(event(event_id)))
        }
        _ => "?".to_string(),
    };
    let started_by = |event_id: i64| match event(event_id).and_then(|e| e.attributes.as_ref()) {
        Some(Attributes::WorkflowTaskStartedEventAttributes(a)) => {
            format!("{} at {}", a.identity, time_of(event(event_id)))
        }
        _ => "nobody".to_string(),
    };
    let mut out = Vec::new();
    for e in events {
        let (what, scheduled, started) = match &e.attributes {
            Some(Attributes::WorkflowTaskTimedOutEventAttributes(a)) => {
                let timeout = TimeoutType::try_from(a.timeout_type)
                    .map(|t| t.as_str_name())
                    .unwrap_or("?");
                (
                    format!("WorkflowTaskTimedOut/{timeout}"),
                    a.scheduled_event_id,
                    a.started_event_id,
                )
            }
            Some(Attributes::WorkflowTaskFailedEventAttributes(a)) => {
                let cause = WorkflowTaskFailedCause::try_from(a.cause)
                    .map(|c| c.as_str_name())
                    .unwrap_or("?");
                (
                    format!("WorkflowTaskFailed/{cause}"),
                    a.scheduled_event_id,
                    a.started_event_id,
                )
            }
            _ => continue,
        };
        out.push(format!(
            "{what} {id} at {}: scheduled on {}, started by {}",
            time_of(Some(e)),
            scheduled_on(scheduled),
            started_by(started),
        ));
    }
    out
}

/// An event's time as seconds.millis of the minute, enough to line events up with the timeline.
fn time_of(event: Option<&HistoryEvent>) -> String {
    event
        .and_then(|e| e.event_time.as_ref())
        .map(|t| format!("{}.{:03}", t.seconds % 60, t.nanos / 1_000_000))
        .unwrap_or_else(|| "?".to_string())
}

/// Start-to-close timeouts a scenario may show (on 240 runs). A stop itself now costs none: the
/// ones seen before issue 20's fix were tasks whose poll answered after core's workflow stream had
/// ended (docs/architecture.md, "Stopping"). The one allowed is the server's, not a stop's: an
/// overloaded history service records a sync-matched task as started after matching gave up on it
/// (docs/upstream/temporal-sync-match-record-started-timeout.md; seen once, at load average 22).
/// Nothing else is allowed: no failed task, no schedule-to-start timeout.
const START_TO_CLOSE_ALLOWED: usize = 1;

/// The stops cost no failed task and no schedule-to-start timeout, and at most
/// [`START_TO_CLOSE_ALLOWED`] start-to-close timeouts.
fn check(trouble: &[String]) {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for line in trouble {
        *counts
            .entry(line.split(' ').next().unwrap_or("?"))
            .or_default() += 1;
    }
    eprintln!("workflow-task trouble: {counts:?}\n{}", trouble.join("\n"));
    let start_to_close = counts
        .get("WorkflowTaskTimedOut/TIMEOUT_TYPE_START_TO_CLOSE")
        .copied()
        .unwrap_or(0);
    let other = trouble.len() - start_to_close;
    assert!(
        other == 0 && start_to_close <= START_TO_CLOSE_ALLOWED,
        "{} workflow tasks timed out or failed: {counts:?}\n{}",
        trouble.len(),
        trouble.join("\n")
    );
}

/// SIGTERM, then the exit code and the drain's duration; the log on failure.
async fn stop(mut worker: WorkerProcess) -> (WorkerProcess, Duration) {
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        worker.signal("TERM");
        let status = worker.wait_exit(Duration::from_secs(30));
        assert!(status.success(), "exit status {status}\n{}", worker.logs());
        let took = started.elapsed();
        for line in worker.logs().lines() {
            if ["drained:", "shutdown_worker rpc"]
                .iter()
                .any(|m| line.contains(m))
            {
                eprintln!("    {}", line.chars().take(260).collect::<String>());
            }
        }
        (worker, took)
    })
    .await
    .unwrap()
}

/// Seconds since `t0`, for the timeline a test prints, and the wall clock's second of the minute
/// (as in the trouble lines).
fn at(t0: Instant) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{:5.1}s ({}.{:03})",
        t0.elapsed().as_secs_f64(),
        now.as_secs() % 60,
        now.subsec_millis()
    )
}

/// SIGTERM to the only worker mid-load; its replacement comes up 12 s after it exited (an image
/// pull, a slow start): longer than the SDK's default sticky schedule-to-start timeout.
async fn sigterm_then_a_late_replacement(test: &str) {
    let stage = Stage::new(test).await;
    let first = stage.worker().await;
    let t0 = Instant::now();
    let load = stage.start_load(RUNS_PER_SEC, 12);
    tokio::time::sleep(Duration::from_secs(6)).await;

    eprintln!("{} SIGTERM to the only worker", at(t0));
    let (first, drained) = stop(first).await;
    eprintln!("{} it exited after draining for {drained:.1?}", at(t0));
    tokio::time::sleep(Duration::from_secs(12)).await;
    let second = stage.worker().await;
    eprintln!("{} the replacement is ready", at(t0));

    let ids = load.await.unwrap();
    stage
        .wait_all_completed(&ids, Duration::from_secs(90))
        .await;
    eprintln!("{} all {} runs completed", at(t0), ids.len());
    let trouble = stage.task_trouble(&ids).await;
    stage.keep_logs(test, &[&first, &second], &trouble).await;
    drop((first, second));
    check(&trouble);
}

/// Two workers under load, stopped one after the other, each replaced at once: a, then b, then
/// a's replacement, each stop while another worker runs.
async fn a_rolling_restart_of_two_workers(test: &str) {
    let stage = Stage::new(test).await;
    let a = stage.worker().await;
    let b = stage.worker().await;
    let t0 = Instant::now();
    let load = stage.start_load(RUNS_PER_SEC, 12);
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut workers = Vec::new();
    let (a, took) = stop(a).await;
    eprintln!("{} a drained in {took:.1?}", at(t0));
    let a2 = stage.worker().await;
    eprintln!("{} a2 ready", at(t0));
    let (b, took) = stop(b).await;
    eprintln!("{} b drained in {took:.1?}", at(t0));
    let b2 = stage.worker().await;
    eprintln!("{} b2 ready", at(t0));
    let (a2, took) = stop(a2).await;
    eprintln!("{} a2 drained in {took:.1?}", at(t0));
    workers.extend([a, b, a2, b2]);

    let ids = load.await.unwrap();
    stage
        .wait_all_completed(&ids, Duration::from_secs(90))
        .await;
    eprintln!("{} all {} runs completed", at(t0), ids.len());
    let trouble = stage.task_trouble(&ids).await;
    stage
        .keep_logs(test, &workers.iter().collect::<Vec<_>>(), &trouble)
        .await;
    drop(workers);
    check(&trouble);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_then_a_late_replacement_times_no_workflow_task_out() {
    sigterm_then_a_late_replacement("sigterm-load").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_two_workers_under_load_times_no_workflow_task_out() {
    a_rolling_restart_of_two_workers("rolling").await;
}
