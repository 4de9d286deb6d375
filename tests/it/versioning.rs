//! A rolling upgrade under worker versioning: pinned orders finish on the build they started on,
//! new ones start on the new build, and the old build stops once it has drained, with no workflow
//! task failed or timed out on the way.
//!
//! Real dev server of its own (namespace `versioning`, version drainage checked every second
//! instead of every 3 minutes), two `edgeflow worker` processes of one deployment: `v1`, which
//! makes itself current (`worker.promote = "first"`), and `v2`, whose `order` cannot replay v1's
//! histories (a debug build's `EDGEFLOW_TEST_INCOMPATIBLE_ORDER`: a timer first, where `order`
//! starts with a marker), made current the documented way, `temporal worker deployment
//! set-current-version`. Orders are started all along, a few of them waiting for approval across
//! the switch. A v1 order that reached v2 would fail its workflow task (nondeterminism); one that
//! finished on v2 would carry v2's result.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{WorkerProcess, temporal_cli, unique_queue};
use base64::Engine;
use edgeflow_testkit::temporal::http_get;
use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const NAMESPACE: &str = "versioning";

struct Stage {
    server: edgeflow_devserver::DevServer,
    _dir: tempfile::TempDir,
    _mocks: MockServer,
    queue: String,
    env: Vec<(&'static str, String)>,
    http: reqwest::Client,
}

impl Stage {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut options = edgeflow_devserver::Options::new(
            edgeflow_testkit::temporal::cli(),
            dir.path().join("temporal.log"),
        );
        options.namespace = NAMESPACE.to_string();
        options.dynamic_config = vec![
            // A version no open run is pinned to reports itself drained within seconds (the
            // server's defaults: checked every 3 min, after a 3 min grace).
            r#"matching.wv.VersionDrainageStatusRefreshInterval="1s""#.to_string(),
            r#"matching.wv.VersionDrainageStatusVisibilityGracePeriod="1s""#.to_string(),
            // One partition: the drain tests' reason (docs/upstream/temporal-forwarded-poll-cancel.md).
            "matching.numTaskqueueReadPartitions=1".to_string(),
            "matching.numTaskqueueWritePartitions=1".to_string(),
        ];
        let server =
            tokio::task::spawn_blocking(move || edgeflow_devserver::DevServer::start(options))
                .await
                .unwrap()
                .expect("dev server");
        let mocks = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path_regex("^/(inventory|payments|shipping)/"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
            .mount(&mocks)
            .await;
        Mock::given(method("POST"))
            .and(path("/hook"))
            .respond_with(ResponseTemplate::new(204))
            .mount(&mocks)
            .await;
        let mut env = vec![
            ("EDGEFLOW__TEMPORAL__NAMESPACE", NAMESPACE.to_string()),
            (
                "EDGEFLOW__WORKER__USE_WORKER_VERSIONING",
                "true".to_string(),
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
                format!("{}/hook", mocks.uri()),
            ),
            (
                "EDGEFLOW__WORKFLOWS__ORDER__APPROVAL_ESCALATE_AFTER_SECS",
                "300".to_string(),
            ),
            (
                "EDGEFLOW__WORKFLOWS__ORDER__APPROVAL_TIMEOUT_SECS",
                "300".to_string(),
            ),
        ];
        for (key, service) in [
            ("EDGEFLOW__SERVICES__INVENTORY__BASE_URL", "inventory"),
            ("EDGEFLOW__SERVICES__PAYMENTS__BASE_URL", "payments"),
            ("EDGEFLOW__SERVICES__SHIPPING__BASE_URL", "shipping"),
        ] {
            env.push((key, format!("{}/{service}/", mocks.uri())));
        }
        Self {
            server,
            _dir: dir,
            _mocks: mocks,
            queue: unique_queue("versioning"),
            env,
            http: reqwest::Client::new(),
        }
    }

    async fn worker(&self, build_id: &str, extra: &[(&'static str, String)]) -> WorkerProcess {
        let mut env = self.env.clone();
        env.push(("EDGEFLOW__WORKER__BUILD_ID", build_id.to_string()));
        env.extend(extra.iter().cloned());
        WorkerProcess::ready(
            format!("http://{}", self.server.grpc_address()),
            self.queue.clone(),
            env,
        )
        .await
    }

    fn api(&self, rest: &str) -> String {
        format!(
            "{}/api/v1/namespaces/{NAMESPACE}/{rest}",
            self.server.http_url()
        )
    }

    fn get(&self, rest: &str) -> Value {
        let host = self
            .server
            .http_url()
            .trim_start_matches("http://")
            .to_string();
        let (status, body) =
            http_get(&host, &format!("/api/v1/namespaces/{NAMESPACE}/{rest}")).expect("GET");
        assert_eq!(status, 200, "GET {rest}: {body}");
        serde_json::from_str(&body).expect("json")
    }

    fn payloads(value: &Value) -> Value {
        json!({"payloads": [{
            "metadata": {"encoding": "anNvbi9wbGFpbg=="},
            "data": base64::engine::general_purpose::STANDARD.encode(value.to_string()),
        }]})
    }

    async fn start_order(&self, id: &str, amount_cents: u64) {
        let input = json!({
            "order_id": id,
            "customer_email": "ada@example.com",
            "items": [{"sku": "sku-1", "quantity": 1, "unit_price_cents": amount_cents}],
            "amount_cents": amount_cents,
            "currency": "EUR",
        });
        self.start("order", id, &input).await;
    }

    async fn start_echo(&self, id: &str, delay_ms: u64) {
        self.start("echo", id, &json!({"message": id, "delay_ms": delay_ms}))
            .await;
    }

    /// Starts `workflow` as `id` on the stage's queue, through the HTTP API.
    async fn start(&self, workflow: &str, id: &str, input: &Value) {
        let res = self
            .http
            .post(self.api(&format!("workflows/{id}")))
            .json(&json!({
                "workflowId": id,
                "workflowType": {"name": workflow},
                "taskQueue": {"name": self.queue},
                "input": Self::payloads(input),
            }))
            .send()
            .await
            .expect("start");
        assert!(res.status().is_success(), "{:?}", res.text().await);
    }

    async fn approve(&self, id: &str) {
        let res = self
            .http
            .post(self.api(&format!("workflows/{id}/signal/approve")))
            .json(&json!({"input": Self::payloads(&json!({"approver": "boss", "reason": "ok"}))}))
            .send()
            .await
            .expect("signal");
        assert!(res.status().is_success(), "{:?}", res.text().await);
    }

    fn describe(&self, id: &str) -> Value {
        self.get(&format!("workflows/{id}"))["workflowExecutionInfo"].clone()
    }

    fn events(&self, id: &str) -> Vec<Value> {
        self.get(&format!("workflows/{id}/history"))["history"]["events"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The run's result, once it has completed.
    fn result(&self, id: &str) -> Value {
        let events = self.events(id);
        let done = events
            .iter()
            .find(|e| e["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED")
            .unwrap_or_else(|| panic!("{id} has not completed: {events:#?}"));
        // The HTTP API shows a `json/plain` payload as the JSON it holds.
        done["workflowExecutionCompletedEventAttributes"]["result"][0].clone()
    }

    async fn wait_closed(&self, id: &str, limit: Duration) {
        let started = Instant::now();
        loop {
            let status = self.describe(id)["status"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if status == "WORKFLOW_EXECUTION_STATUS_COMPLETED" {
                return;
            }
            assert!(
                status == "WORKFLOW_EXECUTION_STATUS_RUNNING" && started.elapsed() < limit,
                "{id} is {status} after {:?}",
                started.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `temporal worker deployment ARGS --output json` against this stage's server.
    /// `temporal worker deployment ARGS` against this stage's server and namespace.
    fn deployment_command(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(temporal_cli())
            .args(["worker", "deployment"])
            .args(args)
            .args(["--address", &self.server.grpc_address().to_string()])
            .args(["--namespace", NAMESPACE])
            .output()
            .expect("temporal worker deployment")
    }

    /// `temporal worker deployment ARGS --output json`.
    fn deployment(&self, args: &[&str]) -> Value {
        let out = self.deployment_command(&[args, &["--output", "json"]].concat());
        assert!(
            out.status.success(),
            "temporal worker deployment {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// `set-current-version`, as an operator runs it once the new workers are up: the server
    /// refuses while the new version has not yet polled every task queue the current one has
    /// ("missing active task queues"), so it is run again until it takes.
    async fn set_current(&self, build_id: &str) {
        let started = Instant::now();
        loop {
            let out = self.deployment_command(&[
                "set-current-version",
                "--deployment-name",
                "edgeflow",
                "--build-id",
                build_id,
                "--yes",
            ]);
            let said = String::from_utf8_lossy(&out.stderr);
            if out.status.success() {
                return;
            }
            assert!(
                said.contains("missing active task queues")
                    && started.elapsed() < Duration::from_secs(30),
                "set-current-version {build_id}: {said}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn current_build(&self) -> Option<String> {
        let described = self.deployment(&["describe", "--name", "edgeflow"]);
        described["routingConfig"]["currentVersionBuildID"]
            .as_str()
            .map(str::to_string)
            .filter(|b| !b.is_empty())
    }
}

/// An RFC 3339 time from the server (`...T15:25:11.25873Z`) with its fraction padded to
/// nanoseconds, so two of them compare as text.
fn server_time(text: &str) -> String {
    let (whole, fraction) = text
        .trim_end_matches('Z')
        .split_once('.')
        .unwrap_or((text.trim_end_matches('Z'), ""));
    format!("{whole}.{fraction:0<9}Z")
}

/// The run's workflow-task failures and timeouts, one line each.
fn task_trouble(id: &str, events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| {
            e["eventType"] == "EVENT_TYPE_WORKFLOW_TASK_FAILED"
                || e["eventType"] == "EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT"
        })
        .map(|e| format!("{id}: {e}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_orders_finish_on_their_build_while_new_ones_start_on_the_next() {
    let stage = Arc::new(Stage::new().await);
    let mut v1 = stage.worker("v1", &[]).await;

    // The deployment's first version makes itself current: its worker is not left idle.
    let started = Instant::now();
    while stage.current_build().as_deref() != Some("v1") {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "v1 never became current: {}\n{}",
            stage.deployment(&["describe", "--name", "edgeflow"]),
            v1.logs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Orders waiting for a person across the upgrade, and a steady stream of small ones.
    let waiting: Vec<String> = (0..3).map(|i| format!("wait-{i}")).collect();
    for id in &waiting {
        stage.start_order(id, 250_000).await;
    }
    // Orders keep coming, ten a second, from before v2 starts until after it is current.
    // Twenty more are started once the switch is done, however long it takes.
    let switch_done = Arc::new(tokio::sync::Notify::new());
    let load = {
        let (stage, switch_done) = (stage.clone(), switch_done.clone());
        tokio::spawn(async move {
            let mut started = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            let mut after_switch = None;
            let switched = switch_done.notified();
            tokio::pin!(switched);
            for i in 0.. {
                tokio::select! {
                    () = &mut switched, if after_switch.is_none() => after_switch = Some(i + 20),
                    _ = tick.tick() => {}
                }
                if after_switch.is_some_and(|end| i >= end) {
                    break;
                }
                let id = format!("load-{i}");
                stage.start_order(&id, 1_000).await;
                started.push((id, Instant::now()));
            }
            started
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;

    // An `echo` started on v1 whose activity outlasts the switch by far (v2's start and the
    // switch take a few seconds): at its next task it moves to v2, as auto-upgrade runs do.
    stage.start_echo("echo-across", 15_000).await;

    // v2 starts beside v1 and is not current yet: it gets nothing until the operator says so.
    let v2 = stage
        .worker(
            "v2",
            &[("EDGEFLOW_TEST_INCOMPATIBLE_ORDER", "1".to_string())],
        )
        .await;
    assert_eq!(stage.current_build().as_deref(), Some("v1"));
    stage.set_current("v2").await;
    let switched = Instant::now();
    let v2_current_since = server_time(
        stage.deployment(&["describe", "--name", "edgeflow"])["routingConfig"]
            ["currentVersionChangedTime"]
            .as_str()
            .expect("currentVersionChangedTime"),
    );
    let echo = stage.describe("echo-across");
    assert_eq!(
        echo["status"], "WORKFLOW_EXECUTION_STATUS_RUNNING",
        "the echo ended before the switch: {echo}"
    );
    assert_eq!(stage.current_build().as_deref(), Some("v2"));
    switch_done.notify_one();
    let load = load.await.expect("load");
    for id in &waiting {
        stage.approve(id).await;
    }

    let limit = Duration::from_secs(60);
    for id in waiting.iter().chain(load.iter().map(|(id, _)| id)) {
        stage.wait_closed(id, limit).await;
    }
    stage.wait_closed("echo-across", limit).await;

    // A run that started on v1 is pinned there and ran v1's `order` to the end, approvals
    // included; a run that started on v2 ran v2's. Every run started a moment after the switch
    // started on v2.
    let (mut on_v1, mut on_v2) = (0, 0);
    for (id, started_at) in waiting
        .iter()
        .map(|id| (id, None))
        .chain(load.iter().map(|(id, at)| (id, Some(*at))))
    {
        let info = stage.describe(id);
        let versioning = &info["versioningInfo"];
        let result = stage.result(id);
        assert_eq!(
            versioning["behavior"], "VERSIONING_BEHAVIOR_PINNED",
            "{id}: {info}"
        );
        match versioning["deploymentVersion"]["buildId"].as_str() {
            Some("v1") => {
                on_v1 += 1;
                assert!(result.get("completed_by").is_none(), "{id}: {result}");
                assert_eq!(result["order_id"], id.as_str(), "{id}: {result}");
                assert!(
                    started_at.is_none_or(|at| at < switched + Duration::from_secs(3)),
                    "{id} started on v1 {:?} after the switch",
                    started_at.map(|at| at - switched)
                );
            }
            Some("v2") => {
                on_v2 += 1;
                // v2 took none of a run's tasks before it was current.
                let events = stage.events(id);
                let first_task_done = events
                    .iter()
                    .find(|e| e["eventType"] == "EVENT_TYPE_WORKFLOW_TASK_COMPLETED")
                    .and_then(|e| e["eventTime"].as_str())
                    .map(server_time);
                assert!(
                    first_task_done.as_ref() >= Some(&v2_current_since),
                    "{id} ran a task on v2 at {first_task_done:?}, before it was current ({v2_current_since})"
                );
                assert_eq!(result["completed_by"], "incompatible-order", "{id}");
            }
            other => panic!("{id} ran on {other:?}: {info}"),
        }
    }
    assert!(on_v1 > waiting.len() && on_v2 > 0, "v1 {on_v1}, v2 {on_v2}");
    eprintln!("orders: {on_v1} on v1 (pinned), {on_v2} on v2");
    let echo = stage.describe("echo-across");
    assert_eq!(
        echo["versioningInfo"]["behavior"], "VERSIONING_BEHAVIOR_AUTO_UPGRADE",
        "{echo}"
    );
    assert_eq!(
        echo["versioningInfo"]["deploymentVersion"]["buildId"], "v2",
        "{echo}"
    );
    for id in &waiting {
        let result = stage.result(id);
        assert_eq!(result["approval"]["state"], "approved", "{id}: {result}");
    }
    let trouble: Vec<String> = waiting
        .iter()
        .chain(load.iter().map(|(id, _)| id))
        .map(String::as_str)
        .chain(["echo-across"])
        .flat_map(|id| task_trouble(id, &stage.events(id)))
        .collect();
    assert!(trouble.is_empty(), "{trouble:#?}");

    // v1 has drained (no open run is pinned to it) and may stop; it stops cleanly.
    let started = Instant::now();
    loop {
        let described = stage.deployment(&["describe", "--name", "edgeflow"]);
        let drained = described["versionSummaries"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|v| v["BuildID"] == "v1" && v["drainageStatus"] == "drained");
        if drained {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "v1 never drained: {described}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    v1.signal("TERM");
    let exit = v1.wait_exit(Duration::from_secs(30));
    assert!(exit.success(), "{exit}\n{}", v1.logs());
    assert!(
        v1.logs().contains("made this version current"),
        "{}",
        v1.logs()
    );
    assert!(
        v2.logs().contains("this version is not current"),
        "{}",
        v2.logs()
    );
}
