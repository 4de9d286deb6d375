//! The confirmation email of a real `order` run when the worker is killed (`kill -9`) in the
//! middle of sending it, with each transport: the Resend API sends it once (its
//! `Idempotency-Key`), SMTP may send it twice, and then both copies carry one `Message-ID`.
//!
//! Resend is a third-party API, so a loopback HTTP server plays it, keeping keys the way Resend
//! documents: a repeated key gets the first answer and sends nothing, a key still being worked on
//! gets 409 `concurrent_idempotent_requests`, a key reused for another payload gets 409
//! `invalid_idempotent_request`. The same server answers the order's services and webhook.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{WorkerProcess, edgeflow, unique_queue};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use edgeflow_testkit::smtp::{SmtpOptions, SmtpServer};
use edgeflow_testkit::temporal::{self, DevServer};
use serde_json::{Value, json};

/// How long the fake Resend takes to answer after it has sent the email.
const RESEND_ANSWER_DELAY: Duration = Duration::from_secs(3);

#[derive(Clone, Default)]
struct FakeResend {
    inner: Arc<Mutex<Resend>>,
}

#[derive(Default)]
struct Resend {
    /// Every email "sent" (a request that was not answered from a key).
    sent: Vec<Value>,
    /// Per Idempotency-Key: the payload and, once the send finished, the answer.
    keys: HashMap<String, (Value, Option<Value>)>,
    /// Requests to POST /emails, answered or not.
    requests: usize,
}

impl FakeResend {
    fn sent(&self) -> Vec<Value> {
        self.inner.lock().unwrap().sent.clone()
    }

    fn requests(&self) -> usize {
        self.inner.lock().unwrap().requests
    }
}

fn resend_error(status: u16, name: &str, message: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        axum::Json(json!({"statusCode": status, "name": name, "message": message})),
    )
        .into_response()
}

async fn post_emails(
    State(fake): State<FakeResend>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let id = {
        let mut r = fake.inner.lock().unwrap();
        r.requests += 1;
        if let Some(key) = &key {
            if key.is_empty() || key.len() > 256 {
                return resend_error(400, "invalid_idempotency_key", "1 to 256 characters");
            }
            match r.keys.get(key) {
                Some((payload, _)) if *payload != body => {
                    return resend_error(409, "invalid_idempotent_request", "other payload");
                }
                Some((_, None)) => {
                    return resend_error(409, "concurrent_idempotent_requests", "in progress");
                }
                Some((_, Some(answer))) => {
                    return (StatusCode::OK, axum::Json(answer.clone())).into_response();
                }
                None => {}
            }
            r.keys.insert(key.clone(), (body.clone(), None));
        }
        r.sent.push(body);
        format!("email-{}", r.sent.len())
    };
    // The email is out; the answer takes a while. The key's record is finished on its own
    // task, as Resend finishes a request whose caller has gone away.
    let answer = json!({ "id": id });
    let finish = {
        let fake = fake.clone();
        let answer = answer.clone();
        tokio::spawn(async move {
            tokio::time::sleep(RESEND_ANSWER_DELAY).await;
            if let Some(key) = key
                && let Some(entry) = fake.inner.lock().unwrap().keys.get_mut(&key)
            {
                entry.1 = Some(answer);
            }
        })
    };
    let _ = finish.await;
    (StatusCode::OK, axum::Json(answer)).into_response()
}

/// Starts the fake on a free loopback port: `POST /emails` is Resend, anything else answers
/// 200 `{}` (the order's services and its completion webhook).
async fn start_fake() -> (FakeResend, String) {
    let fake = FakeResend::default();
    let app = axum::Router::new()
        .route("/emails", axum::routing::post(post_emails))
        .fallback(|| async { axum::Json(json!({})) })
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (fake, url)
}

struct Run {
    server: &'static DevServer,
    queue: String,
    env: Vec<(&'static str, String)>,
    _dir: tempfile::TempDir,
}

impl Run {
    async fn new(test: &str, fake_url: &str, email: Vec<(&'static str, String)>) -> Self {
        let server = tokio::task::spawn_blocking(temporal::shared).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut env = vec![
            (
                "EDGEFLOW__DATABASE__URL",
                format!("sqlite://{}/edgeflow.db?mode=rwc", dir.path().display()),
            ),
            ("EDGEFLOW__WEBHOOKS__EDGE__URL", format!("{fake_url}/hook")),
        ];
        for (key, service) in [
            ("EDGEFLOW__SERVICES__INVENTORY__BASE_URL", "inventory"),
            ("EDGEFLOW__SERVICES__PAYMENTS__BASE_URL", "payments"),
            ("EDGEFLOW__SERVICES__SHIPPING__BASE_URL", "shipping"),
        ] {
            env.push((key, format!("{fake_url}/{service}/")));
        }
        env.extend(email);
        Run {
            server,
            queue: unique_queue(test),
            env,
            _dir: dir,
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

    fn start_order(&self, id: &str) {
        let input = json!({
            "order_id": id,
            "customer_email": "ada@example.com",
            "items": [{"sku": "sku-1", "quantity": 1, "unit_price_cents": 2500}],
            "amount_cents": 2500,
            "currency": "EUR",
        });
        let out = self.cli(&["start", "order", "--id", id, "--input", &input.to_string()]);
        assert!(out.status.success(), "{out:?}");
    }

    /// Polls `edgeflow status` until the run has ended.
    async fn ended(&self, id: &str, limit: Duration) -> Value {
        let started = Instant::now();
        loop {
            let out = self.cli(&["status", id]);
            let status: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            if status["status"].as_str().is_some_and(|s| s != "running") {
                return status;
            }
            assert!(
                started.elapsed() < limit,
                "{id} still running after {limit:?}: {status}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < limit,
            "{what} did not happen in {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The worker dies after Resend sent the confirmation and before it answered. A new worker
/// retries the send with the same `Idempotency-Key`: Resend answers with the first email's id,
/// and the customer gets one email.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resend_sends_the_confirmation_once_when_the_worker_is_killed_mid_send() {
    let (fake, url) = start_fake().await;
    let run = Run::new(
        "email-kill-resend",
        &url,
        vec![
            ("EDGEFLOW__EMAIL__TRANSPORT", "resend".to_string()),
            (
                "EDGEFLOW__EMAIL__RESEND__API_KEY",
                "re_test_kill".to_string(),
            ),
            ("EDGEFLOW__EMAIL__RESEND__BASE_URL", url.clone()),
        ],
    )
    .await;
    let mut first = run.worker().await;
    run.start_order("resend-kill-1");
    wait_until("the first send", Duration::from_secs(30), || {
        fake.requests() >= 1
    })
    .await;
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(10));
    assert_eq!(fake.sent().len(), 1, "sent before the kill");

    let _second = run.worker().await;
    // The attempt on the dead worker times out (the step's start-to-close, or its heartbeat
    // timeout when it has one), then the new worker retries.
    let status = run.ended("resend-kill-1", Duration::from_secs(150)).await;
    assert_eq!(status["status"], "completed", "{status}");
    assert!(fake.requests() >= 2, "the send was never retried");
    let sent = fake.sent();
    assert_eq!(sent.len(), 1, "a second email went out: {sent:?}");
    assert_eq!(sent[0]["to"], json!(["ada@example.com"]));
}

/// SMTP has no idempotency: the worker dies after the server took the message and before it
/// answered `250`, so the retry sends the email again. Both copies carry the same `Message-ID`,
/// which is what lets a receiver (or a mail client) drop the second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_sends_a_copy_with_the_same_message_id_when_the_worker_is_killed_mid_send() {
    let (_fake, url) = start_fake().await;
    let smtp = tokio::task::spawn_blocking(|| {
        SmtpServer::start_with(SmtpOptions {
            accept_delay: Duration::from_secs(3),
            ..Default::default()
        })
    })
    .await
    .unwrap()
    .expect("smtp server");
    let run = Run::new(
        "email-kill-smtp",
        &url,
        vec![
            ("EDGEFLOW__EMAIL__TRANSPORT", "smtp".to_string()),
            ("EDGEFLOW__EMAIL__SMTP__HOST", "127.0.0.1".to_string()),
            ("EDGEFLOW__EMAIL__SMTP__PORT", smtp.port().to_string()),
            ("EDGEFLOW__EMAIL__SMTP__SECURITY", "plain".to_string()),
        ],
    )
    .await;
    let mut first = run.worker().await;
    run.start_order("smtp-kill-1");
    wait_until(
        "the server taking the message",
        Duration::from_secs(30),
        || !smtp.messages().is_empty(),
    )
    .await;
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(10));

    let _second = run.worker().await;
    let status = run.ended("smtp-kill-1", Duration::from_secs(150)).await;
    assert_eq!(status["status"], "completed", "{status}");
    let messages = smtp.messages();
    assert_eq!(messages.len(), 2, "the window was not hit: {messages:?}");
    let message_id = |data: &str| {
        data.lines()
            .find_map(|l| l.strip_prefix("Message-ID: "))
            .map(str::to_string)
    };
    let ids: Vec<_> = messages.iter().map(|m| message_id(&m.data)).collect();
    assert!(ids[0].is_some(), "{}", messages[0].data);
    assert_eq!(ids[0], ids[1], "the copy has another Message-ID");
}
