//! Edge activities, the worker's half: a Python SDK workflow schedules `edge.kv.put` by name on
//! `<queue>.edge`; the real `edgeflow worker` carries each attempt to a fake edge on loopback that
//! checks every request's token (signature, claims, body hash, one use per `jti`) the way the
//! edge does, and answers as the scenario in the KV key says. Proves: outputs, retries (5xx, 401,
//! 404), a handler's non-retryable type, schema checks both ways (nothing sent for a bad input),
//! an over-long start-to-close refused before any request, the request aborted at the attempt's
//! deadline and on cancellation (which only reaches the activity through its heartbeats), and
//! the failures metric.

use std::collections::{BTreeMap, HashSet};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::{WorkerProcess, edgeflow, event_types, history, python, unique_queue};
use edgeflow_activities::edge::token::{SigningKey, body_hash, generate_pem};
use edgeflow_testkit::temporal;
use edgeflow_testkit::tools::repo_root;

/// One request the fake edge received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: Value,
    pub claims: Value,
    /// Why the token was refused, if it was.
    pub refused: Option<String>,
    /// The worker closed the connection before an answer.
    pub aborted: bool,
    pub at: SystemTime,
}

/// An edge on loopback that verifies tokens like the real one and answers by scenario.
#[derive(Clone)]
pub struct FakeEdge {
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    point: Arc<Vec<u8>>,
    jtis: Arc<Mutex<HashSet<String>>>,
}

impl FakeEdge {
    pub async fn start(jwk: &Value) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut point = vec![4u8];
        point.extend(B64URL.decode(jwk["x"].as_str().unwrap()).unwrap());
        point.extend(B64URL.decode(jwk["y"].as_str().unwrap()).unwrap());
        let edge = Self {
            url: format!("http://{}", listener.local_addr().unwrap()),
            seen: Arc::default(),
            point: Arc::new(point),
            jtis: Arc::default(),
        };
        let serving = edge.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serving.clone().serve(stream));
            }
        });
        edge
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The requests of one workflow.
    pub fn of(&self, workflow_id: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| {
                s.headers.get("edgeflow-workflow-id").map(String::as_str) == Some(workflow_id)
            })
            .collect()
    }

    async fn serve(self, mut stream: TcpStream) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let mut lines = head.lines();
        let path = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .unwrap_or_default()
            .to_string();
        let headers: BTreeMap<String, String> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let length: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = buf[head_end + 4..].to_vec();
        while body.len() < length {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => body.extend_from_slice(&chunk[..n]),
            }
        }
        let (claims, refused) = self.check(&path, &headers, &body);
        let json: Value = serde_json::from_slice(&body).unwrap_or_default();
        let key = json["key"].as_str().unwrap_or_default().to_string();
        let attempt: u32 = headers
            .get("edgeflow-attempt")
            .and_then(|a| a.parse().ok())
            .unwrap_or(0);
        let mut seen = Seen {
            path,
            headers,
            body: json,
            claims,
            refused: refused.clone(),
            aborted: false,
            at: SystemTime::now(),
        };
        let answer: Option<(u16, Value)> = if refused.is_some() {
            Some((401, json!({"title": "unauthorized"})))
        } else {
            match key.split('/').next().unwrap_or_default() {
                "ok" | "order-status" => Some((200, json!({ "key": key }))),
                "flaky" if attempt < 3 => Some((500, json!({"title": "boom"}))),
                "unauth" if attempt < 2 => Some((401, json!({"title": "unknown kid"}))),
                "notfound" if attempt < 2 => Some((404, json!({"title": "no such activity"}))),
                "flaky" | "unauth" | "notfound" => Some((200, json!({ "key": key }))),
                "refuse" => Some((
                    422,
                    json!({"type": "about:blank", "title": "activity failed", "status": 422,
                           "detail": "none left",
                           "error": {"type": "OutOfStock", "message": "none left", "non_retryable": true}}),
                )),
                "badout" => Some((200, json!({ "key": 7 }))),
                _ => None, // "hold": never answer
            }
        };
        let Some((status, answer)) = answer else {
            let index = {
                let mut all = self.seen.lock().unwrap();
                all.push(seen);
                all.len() - 1
            };
            // The worker sends nothing more: a read ending is its side closing the connection.
            let closed =
                tokio::time::timeout(Duration::from_secs(60), stream.read(&mut chunk)).await;
            if matches!(closed, Ok(Ok(0)) | Ok(Err(_))) {
                let mut all = self.seen.lock().unwrap();
                all[index].aborted = true;
                all[index].at = SystemTime::now();
            }
            return;
        };
        seen.at = SystemTime::now();
        self.seen.lock().unwrap().push(seen);
        let text = answer.to_string();
        let reply = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
            text.len()
        );
        let _ = stream.write_all(reply.as_bytes()).await;
        let _ = stream.shutdown().await;
    }

    /// The edge's checks: signature, then every claim against the request.
    fn check(
        &self,
        path: &str,
        headers: &BTreeMap<String, String>,
        body: &[u8],
    ) -> (Value, Option<String>) {
        let Some(token) = headers
            .get("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
        else {
            return (Value::Null, Some("no token".into()));
        };
        let parts: Vec<&str> = token.split('.').collect();
        if parts.len() != 3 {
            return (Value::Null, Some("not a JWS".into()));
        }
        let decode = |p: &str| -> Value {
            serde_json::from_slice(&B64URL.decode(p).unwrap_or_default()).unwrap_or_default()
        };
        let (header, claims) = (decode(parts[0]), decode(parts[1]));
        let signature = B64URL.decode(parts[2]).unwrap_or_default();
        let signed = format!("{}.{}", parts[0], parts[1]);
        let verified = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            self.point.as_slice(),
        )
        .verify(signed.as_bytes(), &signature);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let (iat, exp) = (
            claims["iat"].as_u64().unwrap_or(0),
            claims["exp"].as_u64().unwrap_or(0),
        );
        let header_is = |name: &str, claim: &Value| {
            headers.get(name).map(String::as_str) == Some(&claim_text(claim))
        };
        let problem = if verified.is_err() {
            Some("bad signature")
        } else if header != json!({"alg": "ES256", "typ": "JWT", "kid": "test-key"}) {
            Some("header")
        } else if claims["iss"] != "edgeflow-worker" {
            Some("iss")
        } else if claims["aud"] != self.url.as_str() {
            Some("aud")
        } else if exp <= now || exp < iat || exp - iat > 60 || iat > now + 5 {
            Some("expired or too long")
        } else if claims["htm"] != "POST" || claims["htu"] != path {
            Some("htm/htu")
        } else if claims["bsh"] != body_hash(body).as_str() {
            Some("body hash")
        } else if !header_is("edgeflow-workflow-id", &claims["wid"])
            || !header_is("edgeflow-activity-id", &claims["aid"])
            || !header_is("edgeflow-attempt", &claims["att"])
        {
            Some("ids")
        } else if B64URL
            .decode(claims["jti"].as_str().unwrap_or_default())
            .map_or(true, |j| j.len() < 16)
        {
            Some("jti too short")
        } else if !self
            .jtis
            .lock()
            .unwrap()
            .insert(claims["jti"].as_str().unwrap_or_default().to_string())
        {
            Some("jti replayed")
        } else {
            None
        };
        (claims, problem.map(str::to_string))
    }
}

fn claim_text(claim: &Value) -> String {
    match claim {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A signing key in a file, and its public half.
pub fn signing_key(dir: &std::path::Path) -> (std::path::PathBuf, Value) {
    let pem = generate_pem().unwrap();
    let file = dir.join("edge-activities.pem");
    std::fs::write(&file, &pem).unwrap();
    let jwk = SigningKey::from_pem(pem.as_bytes(), "test-key".into())
        .unwrap()
        .public_jwk();
    (file, jwk)
}

/// Runs `calls` at once from a Python SDK workflow on `queue`; one result per call.
pub fn call_from_python(address: &str, queue: &str, calls: &Value) -> Vec<Value> {
    let out = Command::new(python())
        .arg(repo_root().join("tests/python/edge_caller.py"))
        .args([address, queue, &calls.to_string()])
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON line")
}

fn metric(worker: &WorkerProcess, reason: &str) -> u64 {
    let (_, text) = worker.ops_get("/metrics");
    let line = format!("edgeflow_edge_activity_failures_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&line))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_activities_keep_temporals_retries_timeouts_and_cancellation() {
    let server = tokio::task::spawn_blocking(temporal::shared).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (key_file, jwk) = signing_key(dir.path());
    let edge = FakeEdge::start(&jwk).await;
    let queue = unique_queue("edge-acts");
    let env = vec![
        ("EDGEFLOW__EDGE_ACTIVITIES__URL", edge.url.clone()),
        ("EDGEFLOW__EDGE_ACTIVITIES__KEY_ID", "test-key".to_string()),
        (
            "EDGEFLOW__EDGE_ACTIVITIES__SIGNING_KEY_FILE",
            key_file.display().to_string(),
        ),
        (
            "EDGEFLOW__EDGE_ACTIVITIES__MAX_ATTEMPT_SECS",
            "20".to_string(),
        ),
        (
            "EDGEFLOW__DATABASE__URL",
            format!("sqlite://{}/edgeflow.db?mode=rwc", dir.path().display()),
        ),
    ];
    let worker = WorkerProcess::ready(server.address(), queue.clone(), env).await;

    let edge_queue = format!("{queue}.edge");
    let id = |name: &str| format!("{queue}-{name}");
    let call = |name: &str, input: Value, extra: Value| {
        let mut c = json!({
            "id": id(name), "activity": "edge.kv.put", "input": input,
            "edge_queue": edge_queue, "start_to_close_secs": 10, "max_attempts": 5,
        });
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        c
    };
    let calls = json!([
        call("ok", json!({"key": "ok/1", "value": "v"}), json!({})),
        call("flaky", json!({"key": "flaky/1", "value": "v"}), json!({})),
        call(
            "unauth",
            json!({"key": "unauth/1", "value": "v"}),
            json!({})
        ),
        call(
            "notfound",
            json!({"key": "notfound/1", "value": "v"}),
            json!({})
        ),
        call(
            "refuse",
            json!({"key": "refuse/1", "value": "v"}),
            json!({})
        ),
        call("badin", json!({"value": "v", "colour": "red"}), json!({})),
        call(
            "badout",
            json!({"key": "badout/1", "value": "v"}),
            json!({})
        ),
        call(
            "toolong",
            json!({"key": "ok/2", "value": "v"}),
            json!({"start_to_close_secs": 60})
        ),
        call(
            "deadline",
            json!({"key": "hold/1", "value": "v"}),
            json!({"start_to_close_secs": 3, "max_attempts": 1})
        ),
        call(
            "cancel",
            json!({"key": "hold/2", "value": "v"}),
            json!({"start_to_close_secs": 20, "heartbeat_secs": 2, "cancel_after_secs": 3})
        ),
    ]);
    let address = server.address();
    let queue_for_python = format!("{queue}-py");
    let started = Instant::now();
    let results =
        tokio::task::spawn_blocking(move || call_from_python(&address, &queue_for_python, &calls))
            .await
            .unwrap();
    let took = started.elapsed();
    let by_id: BTreeMap<String, Value> = results
        .into_iter()
        .map(|r| (r["id"].as_str().unwrap().to_string(), r))
        .collect();
    let result = |name: &str| by_id[&id(name)].clone();
    let logs = worker.logs();

    // 200 is the output; one attempt; every header the protocol names; the token checked.
    assert_eq!(result("ok")["result"], json!({"key": "ok/1"}), "{logs}");
    let ok = edge.of(&id("ok"));
    assert_eq!(ok.len(), 1, "{ok:#?}");
    let ok = &ok[0];
    assert_eq!(ok.refused, None, "{ok:#?}");
    assert_eq!(ok.claims["wid"], id("ok").as_str());
    assert_eq!(ok.claims["aud"], edge.url.as_str());
    assert_eq!(ok.path, "/v1/activities/kv.put");
    assert_eq!(ok.body, json!({"key": "ok/1", "value": "v"}));
    assert_eq!(ok.headers["content-type"], "application/json");
    let activity_id = &ok.headers["edgeflow-activity-id"];
    assert_eq!(
        ok.headers["idempotency-key"],
        format!("{}/{activity_id}", id("ok"))
    );
    assert_eq!(ok.headers["edgeflow-attempt"], "1");
    assert!(!ok.headers["edgeflow-run-id"].is_empty());
    let deadline_ms: u128 = ok.headers["edgeflow-deadline"].parse().unwrap();
    let sent_ms = ok.at.duration_since(UNIX_EPOCH).unwrap().as_millis();
    assert!(
        deadline_ms > sent_ms && deadline_ms <= sent_ms + 10_500,
        "deadline {deadline_ms} vs sent {sent_ms}"
    );
    let events = history(&server.address(), &id("ok"));
    let started_events: Vec<&Value> = events
        .iter()
        .filter(|e| e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_STARTED")
        .collect();
    assert_eq!(started_events.len(), 1);
    assert_eq!(
        started_events[0]["activityTaskStartedEventAttributes"]["attempt"],
        1
    );

    // 5xx, 401 and 404 retry: the same idempotency key, a fresh token each attempt.
    for (name, attempts) in [("flaky", 3), ("unauth", 2), ("notfound", 2)] {
        assert_eq!(
            result(name)["result"],
            json!({"key": format!("{name}/1")}),
            "{name}: {logs}"
        );
        let seen = edge.of(&id(name));
        assert_eq!(seen.len(), attempts, "{name}: {seen:#?}");
        let keys: HashSet<&String> = seen.iter().map(|s| &s.headers["idempotency-key"]).collect();
        assert_eq!(keys.len(), 1, "{name}");
        let attempts_sent: Vec<&str> = seen
            .iter()
            .map(|s| s.headers["edgeflow-attempt"].as_str())
            .collect();
        assert_eq!(attempts_sent, ["1", "2", "3"][..attempts], "{name}");
        assert!(
            seen.iter().all(|s| s.refused.is_none()),
            "{name}: {seen:#?}"
        );
    }

    // The handler's non-retryable error fails at once, with its type.
    let refused = &result("refuse")["error"];
    assert_eq!(refused["type"], "OutOfStock", "{refused}");
    assert_eq!(refused["non_retryable"], true);
    assert_eq!(edge.of(&id("refuse")).len(), 1);

    // Schemas: a bad input is never sent; a bad output fails for good; both name the field.
    let bad_in = &result("badin")["error"];
    assert_eq!(bad_in["type"], "InvalidInput", "{bad_in}");
    assert_eq!(bad_in["non_retryable"], true);
    let message = bad_in["message"].as_str().unwrap();
    assert!(
        message.contains("$.key") && message.contains("$.colour"),
        "{message}"
    );
    assert!(edge.of(&id("badin")).is_empty());
    let bad_out = &result("badout")["error"];
    assert_eq!(bad_out["type"], "InvalidOutput", "{bad_out}");
    assert_eq!(bad_out["non_retryable"], true);
    assert!(
        bad_out["message"].as_str().unwrap().contains("$.key"),
        "{bad_out}"
    );
    assert_eq!(edge.of(&id("badout")).len(), 1);

    // A start-to-close above max_attempt_secs is refused before any request.
    let too_long = &result("toolong")["error"];
    assert_eq!(too_long["type"], "AttemptTooLong", "{too_long}");
    assert_eq!(too_long["non_retryable"], true);
    let message = too_long["message"].as_str().unwrap();
    assert!(
        message.contains("60 s") && message.contains("max_attempt_secs = 20"),
        "{message}"
    );
    assert!(edge.of(&id("toolong")).is_empty());

    // At the deadline, and on cancellation, the worker drops the request.
    assert_eq!(
        result("deadline")["error"]["kind"],
        "timeout",
        "{:?}",
        result("deadline")
    );
    assert_eq!(
        result("cancel")["error"]["kind"],
        "cancelled",
        "{:?}",
        result("cancel")
    );
    let waited = Instant::now();
    let (deadline, cancel) = loop {
        let (d, c) = (edge.of(&id("deadline")), edge.of(&id("cancel")));
        if d.first().is_some_and(|s| s.aborted) && c.first().is_some_and(|s| s.aborted) {
            break (d[0].clone(), c[0].clone());
        }
        assert!(
            waited.elapsed() < Duration::from_secs(15),
            "requests not aborted: {d:#?} {c:#?}\n{}",
            worker.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let deadline_ms: u128 = deadline.headers["edgeflow-deadline"].parse().unwrap();
    let aborted_ms = deadline.at.duration_since(UNIX_EPOCH).unwrap().as_millis();
    assert!(
        aborted_ms + 200 >= deadline_ms && aborted_ms < deadline_ms + 2_000,
        "aborted at {aborted_ms}, deadline {deadline_ms}"
    );
    let cancel_deadline: u128 = cancel.headers["edgeflow-deadline"].parse().unwrap();
    let cancelled_ms = cancel.at.duration_since(UNIX_EPOCH).unwrap().as_millis();
    assert!(
        cancelled_ms + 10_000 < cancel_deadline,
        "the cancelled request ran to its deadline"
    );
    let cancel_events = event_types(&history(&server.address(), &id("cancel")));
    assert!(
        cancel_events
            .iter()
            .any(|t| t == "EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED"),
        "{cancel_events:?}"
    );

    // Only the edge's and the network's failures are counted.
    assert_eq!(metric(&worker, "server_error"), 2);
    assert_eq!(metric(&worker, "unauthorized"), 1);
    assert_eq!(metric(&worker, "not_found"), 1);
    assert!(metric(&worker, "timeout") >= 1);
    assert!(
        edge.seen().iter().all(|s| s.refused.is_none()),
        "{:#?}",
        edge.seen()
    );
    eprintln!("edge activity scenarios took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_writes_its_status_hint_through_the_edge() {
    use wiremock::matchers::{method, path, path_regex};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let server = tokio::task::spawn_blocking(temporal::shared).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (key_file, jwk) = signing_key(dir.path());
    let edge = FakeEdge::start(&jwk).await;
    let services = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex("^/(inventory|payments|shipping)/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .mount(&services)
        .await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&services)
        .await;
    let queue = unique_queue("edge-hint");
    let mut env = vec![
        ("EDGEFLOW__EDGE_ACTIVITIES__URL", edge.url.clone()),
        ("EDGEFLOW__EDGE_ACTIVITIES__KEY_ID", "test-key".to_string()),
        (
            "EDGEFLOW__EDGE_ACTIVITIES__SIGNING_KEY_FILE",
            key_file.display().to_string(),
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
            "EDGEFLOW__WEBHOOKS__EDGE__URL",
            format!("{}/hook", services.uri()),
        ),
    ];
    for (var, service) in [
        ("EDGEFLOW__SERVICES__INVENTORY__BASE_URL", "inventory"),
        ("EDGEFLOW__SERVICES__PAYMENTS__BASE_URL", "payments"),
        ("EDGEFLOW__SERVICES__SHIPPING__BASE_URL", "shipping"),
    ] {
        env.push((var, format!("{}/{service}/", services.uri())));
    }
    let _worker = WorkerProcess::ready(server.address(), queue.clone(), env.clone()).await;
    env.push(("EDGEFLOW__TEMPORAL__ADDRESS", server.address()));
    env.push(("EDGEFLOW__TASK_QUEUES__MAIN__NAME", queue.clone()));
    let id = format!("{queue}-order");
    let input = json!({
        "order_id": "ord-hint",
        "customer_email": "ada@example.com",
        "items": [{"sku": "sku-1", "quantity": 1, "unit_price_cents": 2500}],
        "amount_cents": 2500,
        "currency": "EUR",
    });
    let out = edgeflow(
        &[
            "start",
            "order",
            "--id",
            &id,
            "--input",
            &input.to_string(),
            "--wait",
        ],
        &env,
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{out:?}");

    let puts = edge.of(&id);
    assert_eq!(puts.len(), 1, "{puts:#?}");
    let put = &puts[0];
    assert_eq!(put.refused, None);
    // Keyed like the order's row, by its run: another caller's `ord-hint` is another hint.
    assert_eq!(put.body["key"], format!("order-status/{id}"));
    assert_eq!(put.body["expiration_ttl_secs"], 30 * 24 * 3600);
    let hint: Value = serde_json::from_str(put.body["value"].as_str().unwrap()).unwrap();
    assert_eq!(hint["status"], "completed", "{hint}");
    assert!(
        hint["updated_at"].as_str().unwrap().ends_with('Z'),
        "{hint}"
    );
    let events = history(&server.address(), &id);
    let on_edge_queue = events
        .iter()
        .filter(|e| {
            e["activityTaskScheduledEventAttributes"]["activityType"]["name"] == "edge.kv.put"
                && e["activityTaskScheduledEventAttributes"]["taskQueue"]["name"]
                    == format!("{queue}.edge").as_str()
        })
        .count();
    assert_eq!(on_edge_queue, 1);
    let markers = events
        .iter()
        .filter(|e| e["eventType"] == "EVENT_TYPE_MARKER_RECORDED")
        .filter_map(|e| {
            e["markerRecordedEventAttributes"]["details"]["patch-data"]["payloads"][0]["data"]
                .as_str()
        })
        .filter_map(|data| base64::engine::general_purpose::STANDARD.decode(data).ok())
        .filter(|data| String::from_utf8_lossy(data).contains("order-status-hint-at-the-edge"))
        .count();
    assert_eq!(markers, 1, "the hint is behind its patch");

    // The new shape replays; EDGEFLOW_KEEP_HISTORY=FILE keeps it (tests/histories/ holds one).
    use temporalio_client::{
        Client, ClientOptions, Connection, ConnectionOptions, UntypedWorkflow,
        WorkflowFetchHistoryOptions,
    };
    let connection = Connection::connect(
        ConnectionOptions::new(url::Url::parse(&server.address()).unwrap())
            .identity("edge-hint-test".to_string())
            .build(),
    )
    .await
    .unwrap();
    let client = Client::new(connection, ClientOptions::new("default").build()).unwrap();
    let recorded = client
        .get_workflow_handle::<UntypedWorkflow>(id.clone())
        .fetch_history(WorkflowFetchHistoryOptions::default())
        .to_json()
        .await
        .unwrap();
    let file = std::env::var_os("EDGEFLOW_KEEP_HISTORY")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.path().join("order-status-hint.json"));
    std::fs::write(&file, &recorded).unwrap();
    let out = edgeflow(&["replay", file.to_str().unwrap()], &[])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("0 failed"),
        "{stdout}"
    );
}
