//! A slow service backs up in Temporal, not in the worker: each service's `http.call`s wait on
//! their own task queue, which a worker polls with that service's `max_concurrent` slots.
//! Real dev server, the real `edgeflow worker`, the `order` workflow, SQLite and the outbox; the
//! services are a loopback HTTP server (wiremock) whose payments answer after 20 s.

use std::time::{Duration, Instant};

use crate::common::{WorkerProcess, edgeflow, event_types, history, unique_queue};
use edgeflow_testkit::temporal;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ORDERS: usize = 4;

fn in_flight(worker: &WorkerProcess, task_queue: &str) -> f64 {
    let (_, text) = worker.ops_get("/metrics");
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let scrape = prometheus_parse::Scrape::parse(lines.into_iter().map(Ok)).expect("Prometheus");
    scrape
        .samples
        .iter()
        .filter(|s| {
            s.metric == "edgeflow_activities_in_flight"
                && s.labels.get("task_queue") == Some(task_queue)
        })
        .map(|s| match s.value {
            prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

async fn requests_to(mocks: &MockServer, prefix: &str) -> usize {
    mocks
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path().starts_with(prefix))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_service_waits_in_temporal_while_the_others_flow() {
    let server = tokio::task::spawn_blocking(temporal::shared).await.unwrap();
    let mocks = MockServer::start().await;
    for (m, p, delay) in [
        ("POST", "/inventory/reservations/", 0),
        ("POST", "/shipping/notices/", 0),
        ("POST", "/payments/charges/", 20),
    ] {
        Mock::given(method(m))
            .and(path_regex(format!("^{p}[^/]+$")))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(serde_json::json!({"ok": p}))
                    .set_delay(Duration::from_secs(delay)),
            )
            .mount(&mocks)
            .await;
    }
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&mocks)
        .await;

    let dir = tempfile::tempdir().unwrap();
    let queue = unique_queue("slow-service");
    let env = vec![
        (
            "EDGEFLOW__SERVICES__INVENTORY__BASE_URL",
            format!("{}/inventory/", mocks.uri()),
        ),
        (
            "EDGEFLOW__SERVICES__PAYMENTS__BASE_URL",
            format!("{}/payments/", mocks.uri()),
        ),
        (
            "EDGEFLOW__SERVICES__SHIPPING__BASE_URL",
            format!("{}/shipping/", mocks.uri()),
        ),
        (
            "EDGEFLOW__SERVICES__PAYMENTS__MAX_CONCURRENT",
            "2".to_string(),
        ),
        (
            "EDGEFLOW__SERVICES__PAYMENTS__TIMEOUT_SECS",
            "30".to_string(),
        ),
        (
            "EDGEFLOW__WORKFLOWS__ORDER__CHARGE_PAYMENT__TIMEOUT_SECS",
            "25".to_string(),
        ),
        (
            "EDGEFLOW__WEBHOOKS__EDGE__URL",
            format!("{}/hook", mocks.uri()),
        ),
        (
            "EDGEFLOW__DATABASE__URL",
            format!("sqlite://{}/edgeflow.db?mode=rwc", dir.path().display()),
        ),
        (
            "EDGEFLOW__EMAIL__OUTBOX__DIR",
            dir.path().join("outbox").display().to_string(),
        ),
    ];
    let worker = WorkerProcess::ready(server.address(), queue.clone(), env.clone()).await;

    let mut cli_env = env.clone();
    cli_env.push(("EDGEFLOW__TEMPORAL__ADDRESS", server.address()));
    cli_env.push(("EDGEFLOW__TASK_QUEUES__MAIN__NAME", queue.clone()));
    let ids: Vec<String> = (0..ORDERS).map(|i| format!("slow-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let input = serde_json::json!({
            "order_id": format!("ord-slow-{i}"),
            "customer_email": "ada@example.com",
            "items": [{"sku": "sku-1", "quantity": 1, "unit_price_cents": 2500}],
            "amount_cents": 2500,
            "currency": "EUR",
        });
        let out = edgeflow(
            &["start", "order", "--id", id, "--input", &input.to_string()],
            &cli_env,
        )
        .output()
        .expect("edgeflow start");
        assert!(out.status.success(), "{out:?}");
    }

    // The fast services get every order's call while the first charges are still running.
    let started = Instant::now();
    while requests_to(&mocks, "/inventory/").await < ORDERS
        || requests_to(&mocks, "/shipping/").await < ORDERS
    {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "fast calls did not all arrive while payments was slow:\n{}",
            worker.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The worker holds no more charges than payments may run; the rest wait in Temporal.
    let payments_queue = format!("{queue}.payments");
    let mut most = 0.0_f64;
    let watch = Instant::now();
    let mut ended = Vec::new();
    while ended.len() < ORDERS {
        most = most.max(in_flight(&worker, &payments_queue));
        ended.clear();
        for id in &ids {
            let out = edgeflow(&["status", id], &cli_env)
                .output()
                .expect("status");
            let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            if status["status"] != "running" {
                ended.push((id.clone(), status));
            }
        }
        assert!(
            watch.elapsed() < Duration::from_secs(75),
            "orders still running: {ended:?}\n{}",
            worker.logs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(most >= 1.0, "no charge was ever seen in flight");
    assert!(most <= 2.0, "the worker held {most} charges at once");
    for (id, status) in &ended {
        assert_eq!(status["status"], "completed", "{id}: {status}");
    }

    // No attempt timed out, and every charge was scheduled on payments' own queue.
    for id in &ids {
        let events = history(&server.address(), id);
        let types = event_types(&events);
        assert!(
            !types
                .iter()
                .any(|t| t == "EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT"),
            "{id}: {types:?}"
        );
        let on_payments_queue = events
            .iter()
            .filter(|e| {
                e["activityTaskScheduledEventAttributes"]["taskQueue"]["name"].as_str()
                    == Some(payments_queue.as_str())
            })
            .count();
        assert_eq!(on_payments_queue, 1, "{id}: charge not on {payments_queue}");
    }
}
