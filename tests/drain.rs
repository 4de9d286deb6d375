//! Stopping `edgeflow worker` under load: the runs it held go on elsewhere without a workflow
//! task timing out or failing. Real dev server, real `edgeflow` processes, a few hundred `echo`
//! runs in flight, every history read at the end.
//!
//! What a graceful stop can and cannot promise with this SDK is in docs/architecture.md
//! ("Stopping"); these tests pin what it does promise.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{WorkerProcess, unique_queue};
use edgeflow_testkit::temporal::DevServer;
use temporalio_client::{
    Client, ClientOptions, Connection, ConnectionOptions, UntypedWorkflow, WorkflowDescribeOptions,
    WorkflowExecutionStatus, WorkflowStartOptions,
};
use temporalio_common::data_converters::RawValue;
use temporalio_common::protos::temporal::api::common::v1::Payload;

const RUNS: usize = 200;

async fn client(server: &DevServer) -> Client {
    let connection = Connection::connect(
        ConnectionOptions::new(url::Url::parse(&server.address()).expect("url"))
            .identity("drain-test".to_string())
            .build(),
    )
    .await
    .expect("connect");
    Client::new(connection, ClientOptions::new("default").build()).expect("client")
}

/// Starts `RUNS` echo workflows whose activities take 2–6 s, so a worker stopped a few seconds in
/// still has activities running, whose completions schedule workflow tasks during its drain.
async fn start_load(client: &Client, queue: &str) -> Vec<String> {
    let ids: Vec<String> = (0..RUNS).map(|i| format!("{queue}-{i}")).collect();
    let starts = ids.iter().enumerate().map(|(i, id)| {
        let input = serde_json::json!({"message": i, "delay_ms": 2000 + (i * 37) % 4000});
        let payload = Payload {
            metadata: [("encoding".to_string(), b"json/plain".to_vec())].into(),
            data: serde_json::to_vec(&input).unwrap(),
            ..Default::default()
        };
        client.start_workflow(
            UntypedWorkflow::new("echo"),
            RawValue::new(vec![payload]),
            WorkflowStartOptions::new(queue.to_string(), id.clone()).build(),
        )
    });
    for started in futures::future::join_all(starts).await {
        started.expect("start echo");
    }
    ids
}

async fn wait_all_completed(client: &Client, ids: &[String], limit: Duration) {
    let deadline = Instant::now() + limit;
    for id in ids {
        loop {
            let described = client
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

/// Counts of the workflow-task events a stop must not cause, across every history.
async fn task_trouble(client: &Client, ids: &[String]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for id in ids {
        let json = client
            .get_workflow_handle::<UntypedWorkflow>(id.clone())
            .fetch_history(Default::default())
            .to_json()
            .await
            .expect("history");
        let history: serde_json::Value = serde_json::from_slice(&json).expect("history JSON");
        for event in history["events"].as_array().into_iter().flatten() {
            let kind = event["eventType"].as_str().unwrap_or_default();
            let key = match kind {
                "EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT" | "WorkflowTaskTimedOut" => format!(
                    "WorkflowTaskTimedOut/{}",
                    event["workflowTaskTimedOutEventAttributes"]["timeoutType"]
                        .as_str()
                        .unwrap_or("?")
                ),
                "EVENT_TYPE_WORKFLOW_TASK_FAILED" | "WorkflowTaskFailed" => {
                    "WorkflowTaskFailed".to_string()
                }
                _ => continue,
            };
            *counts.entry(key).or_default() += 1;
        }
    }
    counts
}

fn assert_no_schedule_to_start_timeouts_or_failures(counts: &BTreeMap<String, usize>) {
    let bad: BTreeMap<_, _> = counts
        .iter()
        .filter(|(k, _)| !k.ends_with("START_TO_CLOSE"))
        .collect();
    // Start-to-close timeouts of tasks the SDK had polled at the instant it stopped are the
    // SDK's race (docs/architecture.md, "Stopping"); printed, not asserted.
    eprintln!("workflow-task trouble after the stop: {counts:?}");
    assert!(
        bad.is_empty(),
        "workflow tasks timed out or failed: {counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_hands_its_runs_on_without_a_workflow_task_timing_out() {
    let server = tokio::task::spawn_blocking(DevServer::start)
        .await
        .unwrap()
        .expect("dev server");
    let queue = unique_queue("sigterm-load");
    let q = queue.clone();
    let address = server.address();
    let mut first = tokio::task::spawn_blocking(move || {
        let mut w = WorkerProcess::spawn(&address, &q, &[]);
        w.wait_readyz(200, Duration::from_secs(60));
        w
    })
    .await
    .unwrap();
    let client = client(&server).await;
    let ids = start_load(&client, &queue).await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    first.signal("TERM");
    let first = tokio::task::spawn_blocking(move || {
        let status = first.wait_exit(Duration::from_secs(30));
        assert!(status.success(), "exit status {status}\n{}", first.logs());
        first
    })
    .await
    .unwrap();
    // The replacement comes up a while later (an image pull, a slow start): longer than the
    // SDK's default 10 s sticky deadline, which work handed back by the first worker keeps.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let q = queue.clone();
    let address = server.address();
    let second = tokio::task::spawn_blocking(move || {
        let mut w = WorkerProcess::spawn(&address, &q, &[]);
        w.wait_readyz(200, Duration::from_secs(60));
        w
    })
    .await
    .unwrap();

    wait_all_completed(&client, &ids, Duration::from_secs(60)).await;
    let counts = task_trouble(&client, &ids).await;
    drop((first, second));
    assert_no_schedule_to_start_timeouts_or_failures(&counts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_two_workers_under_load_times_no_workflow_task_out() {
    let server = tokio::task::spawn_blocking(DevServer::start)
        .await
        .unwrap()
        .expect("dev server");
    let queue = unique_queue("rolling");
    let spawn = |queue: &str| {
        let (address, queue) = (server.address(), queue.to_string());
        tokio::task::spawn_blocking(move || {
            let mut w = WorkerProcess::spawn(&address, &queue, &[]);
            w.wait_readyz(200, Duration::from_secs(60));
            w
        })
    };
    let stop = |mut w: WorkerProcess| {
        tokio::task::spawn_blocking(move || {
            w.signal("TERM");
            let status = w.wait_exit(Duration::from_secs(30));
            assert!(status.success(), "exit status {status}\n{}", w.logs());
            w
        })
    };
    let a = spawn(&queue).await.unwrap();
    let client = client(&server).await;
    let ids = start_load(&client, &queue).await;

    let b = spawn(&queue).await.unwrap();
    let a = stop(a).await.unwrap();
    let a2 = spawn(&queue).await.unwrap();
    let b = stop(b).await.unwrap();

    wait_all_completed(&client, &ids, Duration::from_secs(60)).await;
    let counts = task_trouble(&client, &ids).await;
    drop((a, b, a2));
    assert_no_schedule_to_start_timeouts_or_failures(&counts);
}
