//! The flagship `order` workflow on `edgeflow worker`, against a real Temporal dev server, with
//! the real activities: SQLite, the email outbox, and the microservices and the edge's webhook
//! receiver played by a loopback HTTP server (wiremock).

use std::time::{Duration, Instant};

use crate::common::{WorkerProcess, edgeflow, event_types, history, unique_queue};
use base64::Engine;
use edgeflow_testkit::temporal::{self, DevServer};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The development signing secret from config/default.toml.
const DEV_SECRET: &str = "whsec_ZGV2ZWxvcG1lbnQtb25seS1ub3QtYS1zZWNyZXQ=";

struct Stack {
    server: &'static DevServer,
    mocks: MockServer,
    queue: String,
    dir: tempfile::TempDir,
    env: Vec<(&'static str, String)>,
}

impl Stack {
    /// A stack whose large orders wait for a decision far longer than any test takes to send
    /// one: a busy machine once took more than the 4 s that [`Stack::up`] leaves.
    async fn deciding(test: &str) -> Self {
        let mut stack = Self::up(test).await;
        for (key, value) in &mut stack.env {
            if key.starts_with("EDGEFLOW__WORKFLOWS__ORDER__APPROVAL_") {
                *value = "120".to_string();
            }
        }
        stack
    }

    /// A stack whose large orders escalate after 2 s and give up 2 s later.
    async fn up(test: &str) -> Self {
        let server = tokio::task::spawn_blocking(temporal::shared).await.unwrap();
        let mocks = MockServer::start().await;
        let dir = tempfile::tempdir().unwrap();
        let queue = unique_queue(test);
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
            (
                "EDGEFLOW__WORKFLOWS__ORDER__APPROVAL_ESCALATE_AFTER_SECS",
                "2".to_string(),
            ),
            (
                "EDGEFLOW__WORKFLOWS__ORDER__APPROVAL_TIMEOUT_SECS",
                "2".to_string(),
            ),
            (
                "EDGEFLOW__WORKFLOWS__ORDER__CHARGE_PAYMENT__INITIAL_RETRY_SECS",
                "1".to_string(),
            ),
            (
                "EDGEFLOW__WORKFLOWS__ORDER__CHARGE_PAYMENT__MAX_RETRY_SECS",
                "1".to_string(),
            ),
            (
                "EDGEFLOW__WORKFLOWS__ORDER__NOTIFY_SHIPPING__TIMEOUT_SECS",
                "3".to_string(),
            ),
        ];
        Stack {
            server,
            mocks,
            queue,
            dir,
            env,
        }
    }

    async fn worker(&self) -> WorkerProcess {
        WorkerProcess::ready(self.server.address(), self.queue.clone(), self.env.clone()).await
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut env = self.env.clone();
        env.push(("EDGEFLOW__TEMPORAL__ADDRESS", self.server.address()));
        env.push(("EDGEFLOW__TASK_QUEUES__MAIN__NAME", self.queue.clone()));
        edgeflow(args, &env).output().expect("edgeflow")
    }

    fn start_order(&self, id: &str, input: &serde_json::Value) {
        let out = self.cli(&["start", "order", "--id", id, "--input", &input.to_string()]);
        assert!(out.status.success(), "{out:?}");
    }

    /// Polls the run's history until it waits for a decision: its escalation timer has started.
    async fn awaiting_approval(&self, id: &str) {
        let started = Instant::now();
        loop {
            let (address, run) = (self.server.address(), id.to_string());
            let events = tokio::task::spawn_blocking(move || history(&address, &run))
                .await
                .unwrap();
            let types = event_types(&events);
            if types.iter().any(|t| t == "EVENT_TYPE_TIMER_STARTED") {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{id} never waited for approval: {types:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls `edgeflow status` until the run has ended.
    async fn ended(&self, id: &str, limit: Duration) -> serde_json::Value {
        let started = Instant::now();
        loop {
            let out = self.cli(&["status", id]);
            let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            if status["status"].as_str().is_some_and(|s| s != "running") {
                return status;
            }
            assert!(
                started.elapsed() < limit,
                "{id} still running after {limit:?}: {status}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn outbox(&self) -> Vec<String> {
        std::fs::read_dir(self.dir.path().join("outbox"))
            .map(|d| {
                d.flatten()
                    .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn order_rows(&self, order_id: &str) -> i64 {
        use sqlx::Connection;
        let url = format!("sqlite://{}/edgeflow.db", self.dir.path().display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("sqlite");
        sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE order_id = ?")
            .bind(order_id)
            .fetch_one(&mut conn)
            .await
            .expect("count")
    }

    /// Requests the mock server saw, as (method, path).
    async fn calls(&self) -> Vec<(String, String)> {
        self.mocks
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .map(|r| (r.method.to_string(), r.url.path().to_string()))
            .collect()
    }

    /// The completion events, each checked against the Standard Webhooks signature.
    async fn webhook_events(&self) -> Vec<(String, serde_json::Value)> {
        let key = base64::engine::general_purpose::STANDARD
            .decode(DEV_SECRET.trim_start_matches("whsec_"))
            .unwrap();
        let mut events = Vec::new();
        for r in self.mocks.received_requests().await.unwrap_or_default() {
            if r.url.path() != "/hook" {
                continue;
            }
            let header = |n: &str| {
                r.headers
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string()
            };
            let (id, ts, sig) = (
                header("webhook-id"),
                header("webhook-timestamp"),
                header("webhook-signature"),
            );
            let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
            mac.update(format!("{id}.{ts}.").as_bytes());
            mac.update(&r.body);
            let expected = format!(
                "v1,{}",
                base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
            );
            assert!(
                sig.split(' ').any(|s| s == expected),
                "bad signature on {id}: {sig}"
            );
            events.push((id, serde_json::from_slice(&r.body).unwrap()));
        }
        events
    }
}

fn order(id: &str, amount_cents: u64) -> serde_json::Value {
    serde_json::json!({
        "order_id": id,
        "customer_email": "ada@example.com",
        "items": [{"sku": "sku-1", "quantity": 1, "unit_price_cents": amount_cents}],
        "amount_cents": amount_cents,
        "currency": "EUR",
    })
}

async fn services_answer(mocks: &MockServer) {
    for (m, p) in [
        ("POST", "/inventory/reservations/"),
        ("DELETE", "/inventory/reservations/"),
        ("POST", "/payments/charges/"),
        ("POST", "/payments/refunds/"),
        ("POST", "/shipping/notices/"),
    ] {
        Mock::given(method(m))
            .and(wiremock::matchers::path_regex(format!("^{p}[^/]+$")))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"ok": p})))
            .mount(mocks)
            .await;
    }
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(204))
        .mount(mocks)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_writes_once_emails_once_runs_three_jobs_and_notifies() {
    let stack = Stack::up("order-happy").await;
    services_answer(&stack.mocks).await;
    let _worker = stack.worker().await;
    stack.start_order("happy-1", &order("ord-happy", 2500));
    let status = stack.ended("happy-1", Duration::from_secs(60)).await;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["result"]["jobs"].as_object().unwrap().len(), 3);

    assert_eq!(stack.order_rows("ord-happy").await, 1);
    let mails = stack.outbox();
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0].contains("Order ord-happy confirmed"),
        "{}",
        mails[0]
    );
    let calls = stack.calls().await;
    for job in [
        "/inventory/reservations/happy-1",
        "/payments/charges/happy-1",
        "/shipping/notices/happy-1",
    ] {
        assert_eq!(
            calls.iter().filter(|(_, p)| p == job).count(),
            1,
            "{job}: {calls:?}"
        );
    }
    let events = stack.webhook_events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].1["type"], "workflow.completed");
    assert_eq!(events[0].1["data"]["workflow_id"], "happy-1");
    assert_eq!(events[0].1["data"]["result"]["order_id"], "ord-happy");

    // Another customer's order with the same order id (the edge gives it its own run id): its own
    // row and its own calls to the services, under its run's id; the first order's stay as they were.
    stack.start_order("happy-2", &order("ord-happy", 4200));
    let status = stack.ended("happy-2", Duration::from_secs(60)).await;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["result"]["order_id"], "ord-happy");
    assert_eq!(stack.order_rows("ord-happy").await, 2);
    let calls = stack.calls().await;
    for run in ["happy-1", "happy-2"] {
        for job in [
            "/inventory/reservations/",
            "/payments/charges/",
            "/shipping/notices/",
        ] {
            let path = format!("{job}{run}");
            let n = calls.iter().filter(|(_, p)| *p == path).count();
            assert_eq!(n, 1, "{path}: {calls:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_fails_twice_then_succeeds_is_retried_with_the_same_idempotency_key() {
    let stack = Stack::up("order-retry").await;
    Mock::given(method("POST"))
        .and(path("/payments/charges/retry-1"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&stack.mocks)
        .await;
    services_answer(&stack.mocks).await;
    let _worker = stack.worker().await;
    stack.start_order("retry-1", &order("ord-retry", 2500));
    let status = stack.ended("retry-1", Duration::from_secs(60)).await;
    assert_eq!(status["status"], "completed", "{status}");

    let charges: Vec<_> = stack
        .mocks
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == "/payments/charges/retry-1")
        .collect();
    assert_eq!(charges.len(), 3);
    let keys: std::collections::BTreeSet<_> = charges
        .iter()
        .map(|r| {
            r.headers
                .get("idempotency-key")
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(keys.len(), 1, "the key changed between attempts: {keys:?}");

    let events = history(&stack.server.address(), "retry-1");
    let charge_attempt = events
        .iter()
        .filter(|e| e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_STARTED")
        .filter_map(|e| e["activityTaskStartedEventAttributes"]["attempt"].as_u64())
        .max();
    assert_eq!(
        charge_attempt,
        Some(3),
        "the history does not show the retries"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_fails_for_good_compensates_the_others_in_reverse_order_once() {
    let stack = Stack::up("order-saga").await;
    Mock::given(method("POST"))
        .and(path("/shipping/notices/saga-1"))
        .respond_with(ResponseTemplate::new(422).set_body_string("address is not deliverable"))
        .with_priority(1)
        .mount(&stack.mocks)
        .await;
    services_answer(&stack.mocks).await;
    let _worker = stack.worker().await;
    stack.start_order("saga-1", &order("ord-saga", 2500));
    let status = stack.ended("saga-1", Duration::from_secs(60)).await;
    assert_eq!(status["status"], "failed", "{status}");
    let error = status["error"].as_str().unwrap_or_default();
    assert!(error.contains("notify_shipping failed"), "{error}");
    assert!(
        error.contains("payment refunded, inventory released"),
        "{error}"
    );

    let calls = stack.calls().await;
    let refund = calls
        .iter()
        .position(|c| c == &("POST".into(), "/payments/refunds/saga-1".into()));
    let release = calls
        .iter()
        .position(|c| c == &("DELETE".into(), "/inventory/reservations/saga-1".into()));
    assert!(refund.is_some() && release.is_some(), "{calls:?}");
    assert!(refund < release, "compensations out of order: {calls:?}");
    assert_eq!(
        calls
            .iter()
            .filter(|(_, p)| p == "/payments/refunds/saga-1")
            .count(),
        1
    );
    assert_eq!(
        calls
            .iter()
            .filter(|(m, p)| m == "DELETE" && p == "/inventory/reservations/saga-1")
            .count(),
        1
    );
    // A 4xx is a refusal: never retried.
    assert_eq!(
        calls
            .iter()
            .filter(|(_, p)| p == "/shipping/notices/saga-1")
            .count(),
        1,
        "{calls:?}"
    );
    let events = stack.webhook_events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].1["type"], "workflow.failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_order_waits_for_approval_and_records_who_decided() {
    let stack = Stack::deciding("order-approve").await;
    services_answer(&stack.mocks).await;
    let _worker = stack.worker().await;
    stack.start_order("approve-1", &order("ord-approve", 250_000));
    stack.start_order("reject-1", &order("ord-reject", 250_000));
    stack.awaiting_approval("approve-1").await;
    stack.awaiting_approval("reject-1").await;
    let out = stack.cli(&[
        "signal",
        "approve-1",
        "approve",
        "--input",
        r#"{"approver":"boss","reason":"ok"}"#,
    ]);
    assert!(out.status.success(), "{out:?}");
    let out = stack.cli(&[
        "signal",
        "reject-1",
        "reject",
        "--input",
        r#"{"approver":"boss","reason":"too much"}"#,
    ]);
    assert!(out.status.success(), "{out:?}");

    let approved = stack.ended("approve-1", Duration::from_secs(60)).await;
    assert_eq!(approved["status"], "completed", "{approved}");
    assert_eq!(
        approved["result"]["approval"],
        serde_json::json!({"state": "approved", "approver": "boss", "reason": "ok"})
    );
    let rejected = stack.ended("reject-1", Duration::from_secs(60)).await;
    assert_eq!(rejected["status"], "failed");
    assert!(
        rejected["error"]
            .as_str()
            .unwrap()
            .contains("rejected by boss: too much"),
        "{rejected}"
    );
    assert!(
        !stack
            .calls()
            .await
            .iter()
            .any(|(_, p)| p.ends_with("ord-reject")),
        "a rejected order ran its jobs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecided_order_escalates_by_email_then_is_rejected() {
    let stack = Stack::up("order-timeout").await;
    services_answer(&stack.mocks).await;
    let _worker = stack.worker().await;
    stack.start_order("timeout-1", &order("ord-timeout", 250_000));
    let status = stack.ended("timeout-1", Duration::from_secs(60)).await;
    assert_eq!(status["status"], "failed");
    assert!(
        status["error"]
            .as_str()
            .unwrap()
            .contains("rejected automatically"),
        "{status}"
    );
    let mails = stack.outbox();
    assert_eq!(mails.len(), 2, "confirmation and escalation expected");
    assert!(
        mails
            .iter()
            .any(|m| m.contains("approvers@edgeflow.localhost") && m.contains("ord-timeout"))
    );
    let types = event_types(&history(&stack.server.address(), "timeout-1"));
    assert_eq!(
        types
            .iter()
            .filter(|t| *t == "EVENT_TYPE_TIMER_FIRED")
            .count(),
        2,
        "{types:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_order_is_replaced_and_the_order_completes_with_one_of_each() {
    let stack = Stack::up("order-kill").await;
    // Shipping answers slowly, so the worker dies while that job is in flight.
    Mock::given(method("POST"))
        .and(path("/shipping/notices/kill-1"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_delay(Duration::from_secs(2))
                .set_body_json(serde_json::json!({})),
        )
        .with_priority(1)
        .mount(&stack.mocks)
        .await;
    services_answer(&stack.mocks).await;
    let mut first = stack.worker().await;
    stack.start_order("kill-1", &order("ord-kill", 2500));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !stack
        .calls()
        .await
        .iter()
        .any(|(_, p)| p == "/shipping/notices/kill-1")
    {
        assert!(
            Instant::now() < deadline,
            "shipping never called:\n{}",
            first.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(10));

    let _second = stack.worker().await;
    let status = stack.ended("kill-1", Duration::from_secs(90)).await;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(stack.order_rows("ord-kill").await, 1);
    assert_eq!(stack.outbox().len(), 1);
    let ids: std::collections::BTreeSet<_> = stack
        .webhook_events()
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids.len(), 1, "more than one completion event: {ids:?}");
}

/// Each family's first attempt fails inside a real run: the SQL write meets a locked database,
/// the SMTP server refuses the first message (451), the edge's receiver answers 500 once. The
/// history shows each retry, and each side effect happens once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_attempt_failures_of_db_email_and_webhook_are_retried_into_one_side_effect_each() {
    let mut stack = Stack::up("order-inject").await;
    let smtp = tokio::task::spawn_blocking(|| {
        edgeflow_testkit::smtp::SmtpServer::start_with(edgeflow_testkit::smtp::SmtpOptions {
            fail_first: 1,
            ..Default::default()
        })
    })
    .await
    .unwrap()
    .expect("smtp server");
    stack.env.extend([
        ("EDGEFLOW__EMAIL__TRANSPORT", "smtp".to_string()),
        ("EDGEFLOW__EMAIL__SMTP__HOST", "127.0.0.1".to_string()),
        ("EDGEFLOW__EMAIL__SMTP__PORT", smtp.port().to_string()),
        ("EDGEFLOW__EMAIL__SMTP__SECURITY", "plain".to_string()),
        (
            "EDGEFLOW__DATABASE__STATEMENT_TIMEOUT_SECS",
            "0.3".to_string(),
        ),
    ]);
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&stack.mocks)
        .await;
    services_answer(&stack.mocks).await;
    let _worker = stack.worker().await;

    // Hold SQLite's write lock while the run starts, so its first insert times out.
    use sqlx::Connection;
    let url = format!("sqlite://{}/edgeflow.db", stack.dir.path().display());
    let mut lock = sqlx::SqliteConnection::connect(&url).await.expect("sqlite");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut lock)
        .await
        .expect("lock");
    stack.start_order("inject-1", &order("ord-inject", 2500));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sqlx::query("COMMIT")
        .execute(&mut lock)
        .await
        .expect("unlock");

    let status = stack.ended("inject-1", Duration::from_secs(60)).await;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(stack.order_rows("ord-inject").await, 1);
    assert_eq!(
        smtp.messages().len(),
        1,
        "the confirmation was sent more than once"
    );
    let ids: Vec<_> = stack
        .webhook_events()
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids.len(), 2, "one refused delivery, one accepted: {ids:?}");
    assert_eq!(
        ids[0], ids[1],
        "a retried delivery must keep its webhook-id"
    );

    let events = history(&stack.server.address(), "inject-1");
    let attempts_of = |activity: &str| {
        let scheduled: Vec<_> = events
            .iter()
            .filter(|e| {
                e["activityTaskScheduledEventAttributes"]["activityType"]["name"] == activity
            })
            .filter_map(|e| e["eventId"].as_str().map(str::to_string))
            .collect();
        events
            .iter()
            .filter(|e| {
                let s = &e["activityTaskStartedEventAttributes"];
                scheduled
                    .iter()
                    .any(|id| s["scheduledEventId"].as_str() == Some(id))
            })
            .filter_map(|e| e["activityTaskStartedEventAttributes"]["attempt"].as_u64())
            .max()
            .unwrap_or(0)
    };
    assert!(attempts_of("db.execute") >= 2, "db.execute was not retried");
    assert!(attempts_of("email.send") >= 2, "email.send was not retried");
    assert!(
        attempts_of("webhook.notify") >= 2,
        "webhook.notify was not retried"
    );
}

/// A failure's first `details` payload as JSON, whether the API wrote the payloads out in full
/// (`{"payloads": [{"metadata", "data": base64}]}`) or in its shorthand (a list of JSON values).
fn failure_details(failure: &serde_json::Value) -> serde_json::Value {
    let details = &failure["applicationFailureInfo"]["details"];
    if details.is_array() {
        return details[0].clone();
    }
    let data = details["payloads"][0]["data"].as_str().unwrap_or_default();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .expect("base64 data");
    serde_json::from_slice(&bytes).unwrap_or_default()
}

// ── Untrusted input: nothing a client sends can wedge a run ───────────────────────────────────
// Payloads go in through Temporal's HTTP API with their bytes exactly as a careless or hostile
// client (another SDK, the CLI) would send them: no client library re-encodes them on the way.

impl Stack {
    fn payloads(raw: &str) -> serde_json::Value {
        serde_json::json!({"payloads": [{
            "metadata": {"encoding": "anNvbi9wbGFpbg=="},
            "data": base64::engine::general_purpose::STANDARD.encode(raw.as_bytes()),
        }]})
    }

    fn http_api(&self, path: &str) -> String {
        format!(
            "{}/api/v1/namespaces/default/workflows/{path}",
            self.server.http_url()
        )
    }

    async fn start_raw(&self, id: &str, raw_input: &str) {
        let res = reqwest::Client::new()
            .post(self.http_api(id))
            .json(&serde_json::json!({
                "workflowId": id,
                "workflowType": {"name": "order"},
                "taskQueue": {"name": self.queue},
                "input": Self::payloads(raw_input),
            }))
            .send()
            .await
            .expect("start");
        assert!(res.status().is_success(), "{:?}", res.text().await);
    }

    async fn signal_raw(&self, id: &str, name: &str, raw: &str) {
        let res = reqwest::Client::new()
            .post(self.http_api(&format!("{id}/signal/{name}")))
            .json(&serde_json::json!({"input": Self::payloads(raw)}))
            .send()
            .await
            .expect("signal");
        assert!(res.status().is_success(), "{:?}", res.text().await);
    }

    /// An update through the HTTP API, waiting for its outcome (the answer the edge relays).
    async fn update_raw(&self, id: &str, name: &str, raw: &str) -> serde_json::Value {
        let update_id = format!("{name}-{}", rand_suffix());
        loop {
            let res = reqwest::Client::new()
                .post(self.http_api(&format!("{id}/update/{name}")))
                .json(&serde_json::json!({
                    "request": {"meta": {"updateId": update_id, "identity": "test"},
                                "input": {"args": Self::payloads(raw)}},
                    "waitPolicy": {"lifecycleStage": "UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED"},
                }))
                .send()
                .await
                .expect("update");
            let status = res.status();
            let body: serde_json::Value = res.json().await.unwrap_or_default();
            if !status.is_success() || body.get("outcome").is_some() {
                return serde_json::json!({"http": status.as_u16(), "body": body});
            }
        }
    }

    fn task_failures(&self, id: &str) -> Vec<serde_json::Value> {
        history(&self.server.address(), id)
            .into_iter()
            .filter(|e| {
                e["eventType"] == "EVENT_TYPE_WORKFLOW_TASK_FAILED"
                    || e["eventType"] == "EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT"
            })
            .collect()
    }
}

fn rand_suffix() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// An order as raw JSON text, with `amount` written exactly as given (`9470.0`, `1e20`, …).
fn raw_order(order_id: &str, amount: &str, name: &str) -> String {
    format!(
        r#"{{"order_id":"{order_id}","customer_email":"ada@example.com","customer_name":"{name}","items":[{{"sku":"s","quantity":1,"unit_price_cents":{amount}}}],"amount_cents":{amount},"currency":"EUR"}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_that_breaks_the_rules_fails_the_run_at_once_naming_the_field() {
    let stack = Stack::up("order-untrusted").await;
    services_answer(&stack.mocks).await;
    let _worker = stack.worker().await;
    let cases = [
        (
            "too-big",
            raw_order("o-big", "18446744073709551616", "Ada"),
            "$.amount_cents",
        ),
        (
            "exponent",
            raw_order("o-exp", "1e20", "Ada"),
            "$.amount_cents",
        ),
        (
            "surrogate",
            raw_order("o-sur", "2500", r"\ud800"),
            "$.customer_name",
        ),
        (
            "local-email",
            raw_order("o-mail", "2500", "Ada").replace("ada@example.com", "a@localhost"),
            "$.customer_email",
        ),
        (
            "no-approver-field",
            raw_order("o-extra", "2500", "Ada")
                .replace(r#""currency""#, r#""colour":"red","currency""#),
            "$.colour",
        ),
    ];
    for (id, raw, _) in &cases {
        stack.start_raw(id, raw).await;
    }
    // What JSON Schema calls an integer is one: 9470.0 from the Python SDK is accepted.
    stack
        .start_raw("float", &raw_order("o-float", "9470.0", "Ada"))
        .await;

    for (id, _, field) in &cases {
        let status = stack.ended(id, Duration::from_secs(30)).await;
        assert_eq!(status["status"], "failed", "{id}: {status}");
        let error = status["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("invalid order") && error.contains(field),
            "{id}: the reason does not name {field}: {error}"
        );
        let events = history(&stack.server.address(), id);
        let failure = &events
            .iter()
            .find(|e| e["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_FAILED")
            .expect("a failed event")["workflowExecutionFailedEventAttributes"]["failure"];
        assert_eq!(
            failure["applicationFailureInfo"]["type"], "InvalidInput",
            "{id}: {failure}"
        );
        let details = failure_details(failure);
        assert!(
            details["errors"]
                .as_array()
                .is_some_and(|errors| errors.iter().any(|e| e["path"] == *field)),
            "{id}: the details do not name {field}: {details}"
        );
        assert_eq!(
            stack.task_failures(id),
            Vec::<serde_json::Value>::new(),
            "{id}"
        );
        assert_eq!(
            stack.order_rows(&format!("o-{}", &id[..3])).await,
            0,
            "{id}"
        );
    }
    let float = stack.ended("float", Duration::from_secs(30)).await;
    assert_eq!(float["status"], "completed", "{float}");
    assert_eq!(float["result"]["order_id"], "o-float");

    // The completion event names the field too.
    let events = stack.webhook_events().await;
    let failed = events
        .iter()
        .find(|(_, e)| e["data"]["workflow_id"] == "surrogate")
        .expect("a completion event for the refused order");
    assert_eq!(failed.1["type"], "workflow.failed");
    assert!(
        failed.1["data"]["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("$.customer_name"),
        "{failed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_that_breaks_the_rules_is_dropped_and_a_later_decision_still_counts() {
    let stack = Stack::deciding("order-bad-signal").await;
    services_answer(&stack.mocks).await;
    let worker = stack.worker().await;
    stack.start_order("wedge-1", &order("ord-wedge", 250_000));
    stack.awaiting_approval("wedge-1").await;
    // No approver (what the Python SDK or the temporal CLI would send), then a lone surrogate.
    stack
        .signal_raw("wedge-1", "approve", r#"{"reason":"ok"}"#)
        .await;
    stack
        .signal_raw(
            "wedge-1",
            "approve",
            r#"{"approver":"boss","reason":"\ud800"}"#,
        )
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Queries still answer: the run is not wedged.
    let out = stack.cli(&["status", "wedge-1"]);
    assert!(out.status.success(), "{out:?}");
    // `edgeflow signal` refuses the same payload before sending anything.
    let out = stack.cli(&[
        "signal",
        "wedge-1",
        "approve",
        "--input",
        r#"{"reason":"ok"}"#,
    ]);
    assert!(
        !out.status.success(),
        "edgeflow signal sent an invalid payload"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("$.approver: is required"), "{stderr}");

    stack
        .signal_raw(
            "wedge-1",
            "approve",
            r#"{"approver":"boss","reason":"fine"}"#,
        )
        .await;
    let approved = stack.ended("wedge-1", Duration::from_secs(30)).await;
    assert_eq!(approved["status"], "completed", "{approved}");
    assert_eq!(
        approved["result"]["approval"],
        serde_json::json!({"state": "approved", "approver": "boss", "reason": "fine"})
    );
    assert_eq!(
        stack.task_failures("wedge-1"),
        Vec::<serde_json::Value>::new()
    );
    let signals = history(&stack.server.address(), "wedge-1")
        .iter()
        .filter(|e| e["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED")
        .count();
    assert_eq!(
        signals, 3,
        "edgeflow signal must not have sent its invalid payload"
    );
    let (_, metrics) = worker.ops_get("/metrics");
    assert!(
        metrics.contains(
            r#"edgeflow_workflow_signals_dropped_total{workflow="order",signal="approve"} 2"#
        ),
        "{metrics}"
    );
    assert!(
        worker.logs().contains("signal dropped"),
        "no warning was logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_as_updates_answer_the_approver_and_let_nothing_invalid_in() {
    let stack = Stack::deciding("order-update").await;
    services_answer(&stack.mocks).await;
    let _worker = stack.worker().await;
    stack.start_order("upd-1", &order("ord-upd", 250_000));
    stack.start_order("upd-small", &order("ord-upd-small", 2_500));
    stack.awaiting_approval("upd-1").await;

    let invalid = stack
        .update_raw("upd-1", "approve", r#"{"reason":"ok"}"#)
        .await;
    // The contract: an `InvalidInput` failure naming each field in its details, as the cause of
    // the update's failure (the SDK wraps a validator's error); both say it in words too.
    let failure = &invalid["body"]["outcome"]["failure"];
    let typed = &failure["cause"];
    assert_eq!(
        typed["applicationFailureInfo"]["type"], "InvalidInput",
        "{invalid}"
    );
    assert_eq!(
        failure_details(typed),
        serde_json::json!({"errors": [{"path": "$.approver", "message": "is required"}]}),
        "{invalid}"
    );
    assert_eq!(
        failure["message"], "invalid input: $.approver: is required",
        "{invalid}"
    );
    let surrogate = stack
        .update_raw("upd-1", "approve", r#"{"approver":"\ud800"}"#)
        .await;
    assert!(
        surrogate["body"]["outcome"]["failure"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("$.approver: is not well-formed Unicode"),
        "{surrogate}"
    );

    let applied = stack
        .update_raw("upd-1", "approve", r#"{"approver":"boss","reason":"ok"}"#)
        .await;
    assert_eq!(
        applied["body"]["outcome"]["success"],
        serde_json::json!([{"state": "approved", "approver": "boss", "reason": "ok"}]),
        "{applied}"
    );
    let again = stack
        .update_raw("upd-1", "reject", r#"{"approver":"other"}"#)
        .await;
    assert_eq!(
        again["body"]["outcome"]["failure"]["message"], "the order was already approved",
        "{again}"
    );
    let small = stack
        .update_raw("upd-small", "approve", r#"{"approver":"boss"}"#)
        .await;
    let message = small["body"]["outcome"]["failure"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message == "this order does not need approval" || small["http"] == 404,
        "{small}"
    );

    let approved = stack.ended("upd-1", Duration::from_secs(30)).await;
    assert_eq!(approved["status"], "completed", "{approved}");
    // Rejected updates leave nothing in the history; the accepted one is there once.
    let events = history(&stack.server.address(), "upd-1");
    let accepted = events
        .iter()
        .filter(|e| e["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED")
        .count();
    assert_eq!(accepted, 1);
    assert!(!serde_json::to_string(&events).unwrap().contains("other"));
    let closed = stack
        .update_raw("upd-1", "reject", r#"{"approver":"late"}"#)
        .await;
    assert_eq!(closed["http"], 404, "{closed}");
}

// ── The saga: a failed order never keeps the money ────────────────────────────────────────────

/// A payment service that executes the charge and then answers too late: every attempt times out,
/// the charge's outcome is unknown, and the failed order must still be refunded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charge_that_timed_out_after_taking_effect_is_refunded_when_the_order_fails() {
    let mut stack = Stack::up("order-slow-charge").await;
    stack.env.extend([
        (
            "EDGEFLOW__WORKFLOWS__ORDER__CHARGE_PAYMENT__TIMEOUT_SECS",
            "1".to_string(),
        ),
        (
            "EDGEFLOW__WORKFLOWS__ORDER__CHARGE_PAYMENT__MAX_ATTEMPTS",
            "2".to_string(),
        ),
    ]);
    Mock::given(method("POST"))
        .and(path("/payments/charges/slow-1"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .with_priority(1)
        .mount(&stack.mocks)
        .await;
    services_answer(&stack.mocks).await;
    let _worker = stack.worker().await;
    stack.start_order("slow-1", &order("ord-slow", 2500));
    let status = stack.ended("slow-1", Duration::from_secs(60)).await;
    assert_eq!(status["status"], "failed", "{status}");
    let error = status["error"].as_str().unwrap_or_default();
    // The final cause, not an older one.
    assert!(
        error.contains("charge_payment failed: its last attempt timed out"),
        "{error}"
    );
    let calls = stack.calls().await;
    let count = |m: &str, p: &str| calls.iter().filter(|c| c.0 == m && c.1 == p).count();
    assert_eq!(count("POST", "/payments/charges/slow-1"), 2, "{calls:?}");
    assert_eq!(
        count("POST", "/payments/refunds/slow-1"),
        1,
        "a failed order kept the money: {calls:?}"
    );
    assert_eq!(
        count("DELETE", "/inventory/reservations/slow-1"),
        1,
        "{calls:?}"
    );
    assert!(
        error.contains("refund_payment run in case charge_payment took effect"),
        "{error}"
    );
}

/// Keys `key_b` and, `with_a`, `key_a` as settings; `active` is the one that encrypts.
fn keys(active: &str, with_a: bool) -> Vec<(&'static str, String)> {
    use base64::engine::general_purpose::STANDARD;
    let mut env = vec![
        (
            "EDGEFLOW__ENCRYPTION__KEYS__KEY_B__KEY",
            STANDARD.encode(crate::encryption::KEY_B),
        ),
        ("EDGEFLOW__ENCRYPTION__ACTIVE_KEY_ID", active.to_string()),
    ];
    if with_a {
        env.push((
            "EDGEFLOW__ENCRYPTION__KEYS__KEY_A__KEY",
            STANDARD.encode(crate::encryption::KEY_A),
        ));
    }
    env
}

/// A client of Temporal's Python SDK whose data converter carries the codec of Temporal's Python
/// encryption sample starts `order` on an encrypting worker and reads its result; the history,
/// read without a codec, holds no byte of the customer's email.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_client_with_the_samples_codec_runs_an_encrypted_order() {
    use base64::engine::general_purpose::STANDARD;
    let mut stack = Stack::up("order-python-codec").await;
    stack.env.extend(crate::encryption::key_a_active());
    services_answer(&stack.mocks).await;
    let _worker = stack.worker().await;
    let request = serde_json::json!({
        "address": stack.server.address(),
        "task_queue": stack.queue,
        "workflow": "order",
        "workflow_id": "py-codec-1",
        "input": order("ord-py", 2500),
        "keys": {"key_a": STANDARD.encode(crate::encryption::KEY_A)},
        "active_key_id": "key_a",
    });
    let out = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = std::process::Command::new(crate::common::python())
            .arg(edgeflow_testkit::tools::repo_root().join("tests/python/payload_codec.py"))
            .arg("start-order")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("python");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(request.to_string().as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(answer["result"]["order_id"], "ord-py", "{answer}");
    assert_eq!(answer["result"]["status"], "completed", "{answer}");
    assert_eq!(answer["result"]["jobs"].as_object().unwrap().len(), 3);

    let address = stack.server.address();
    let events = tokio::task::spawn_blocking(move || history(&address, "py-codec-1"))
        .await
        .unwrap();
    let raw = serde_json::Value::Array(events);
    assert!(!crate::encryption::anywhere(&raw, "ada@example.com"));
    assert!(crate::encryption::anywhere(&raw, "binary/encrypted"));
}

/// A worker restarted without the key a waiting order was written under cannot run the order's
/// workflow task: the task fails and is retried (the run stays open, the failure is counted),
/// until a worker holding the key again takes it, and the order completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_removed_mid_run_stalls_the_order_until_it_is_back() {
    let mut stack = Stack::deciding("order-key-removed").await;
    services_answer(&stack.mocks).await;
    let base = stack.env.clone();
    stack.env = [base.clone(), keys("key_a", true)].concat();
    let worker = stack.worker().await;
    stack.start_order("keyloss-1", &order("ord-keyloss", 250_000));
    stack.awaiting_approval("keyloss-1").await;
    drop(worker);

    // key_a removed: the decision (under key_b) wakes the run, whose input is under key_a.
    stack.env = [base.clone(), keys("key_b", false)].concat();
    let keyless = stack.worker().await;
    let out = stack.cli(&[
        "signal",
        "keyloss-1",
        "approve",
        "--input",
        r#"{"approver":"boss","reason":"ok"}"#,
    ]);
    assert!(out.status.success(), "{out:?}");
    let started = Instant::now();
    loop {
        let address = stack.server.address();
        let events = tokio::task::spawn_blocking(move || history(&address, "keyloss-1"))
            .await
            .unwrap();
        if event_types(&events)
            .iter()
            .any(|t| t == "EVENT_TYPE_WORKFLOW_TASK_FAILED")
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no failed workflow task: {:?}\n{}",
            event_types(&events),
            keyless.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, metrics) = keyless.ops_get("/metrics");
    let missing = metrics
        .lines()
        .find(|l| l.starts_with(r#"edgeflow_payload_decrypt_failures_total{reason="unknown_key"}"#))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(missing >= 1.0, "{metrics}");
    assert!(keyless.logs().contains("key `key_a`"), "{}", keyless.logs());
    let status = stack.cli(&["status", "keyloss-1"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap_or_default();
    assert_eq!(status["status"], "running", "{status}");
    drop(keyless);

    // The key is back: the order goes on from where it stood, approved.
    stack.env = [base, keys("key_b", true)].concat();
    let _worker = stack.worker().await;
    let ended = stack.ended("keyloss-1", Duration::from_secs(90)).await;
    assert_eq!(ended["status"], "completed", "{ended}");
    assert_eq!(ended["result"]["approval"]["state"], "approved", "{ended}");
}
