//! `edgeflow worker` as an operator runs it, against a real Temporal dev server.

use std::time::{Duration, Instant};

use crate::common::{WorkerProcess, edgeflow, event_types, history, unique_queue};
use edgeflow_testkit::temporal::{self, DevServer};

fn start_echo(
    server: &DevServer,
    queue: &str,
    id: &str,
    input: &str,
    wait: bool,
) -> std::process::Output {
    let mut args = vec![
        "start",
        "echo",
        "--input",
        input,
        "--id",
        id,
        "--task-queue",
        queue,
    ];
    if wait {
        args.push("--wait");
    }
    edgeflow(&args, &[("EDGEFLOW__TEMPORAL__ADDRESS", server.address())])
        .output()
        .expect("edgeflow start")
}

#[test]
fn a_workflow_runs_end_to_end_and_metrics_count_its_activity() {
    let server = temporal::shared();
    let queue = unique_queue("e2e");
    let mut worker = WorkerProcess::spawn(&server.address(), &queue, &[]);
    worker.wait_readyz(200, Duration::from_secs(60));
    assert_eq!(worker.ops_get("/healthz").0, 200);

    let out = start_echo(
        server,
        &queue,
        "echo-e2e",
        r#"{"message":{"order":42,"items":[]}}"#,
        true,
    );
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        worker.logs()
    );
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).expect("result is JSON");
    assert_eq!(result, serde_json::json!({"order": 42, "items": []}));

    let status = edgeflow(
        &["status", "echo-e2e"],
        &[("EDGEFLOW__TEMPORAL__ADDRESS", server.address())],
    )
    .output()
    .expect("edgeflow status");
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    assert_eq!(status["status"], "completed");
    assert_eq!(status["result"]["order"], 42);

    let (code, text) = worker.ops_get("/metrics");
    assert_eq!(code, 200);
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let scrape =
        prometheus_parse::Scrape::parse(lines.into_iter().map(Ok)).expect("Prometheus text");
    let echo_ok: f64 = scrape
        .samples
        .iter()
        .filter(|s| {
            s.metric == "edgeflow_activity_executions_total"
                && s.labels.get("activity") == Some("echo")
                && s.labels.get("outcome") == Some("ok")
        })
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum();
    assert_eq!(echo_ok, 1.0, "{text}");
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric.starts_with("temporal_") && s.metric.contains("activity")),
        "the SDK's worker metrics are missing:\n{text}"
    );
}

#[test]
fn bad_settings_exit_2_and_list_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[worker]\nmax_concurrent_activities = \"lots\"\n[shutdown]\ncolour = 1\n",
    )
    .unwrap();
    let env = [
        ("EDGEFLOW__TEMPORAL__ADDRESS", "not a url".to_string()),
        (
            "EDGEFLOW__TEMPORAL__API_KEY_FILE",
            "/nonexistent/api-key".to_string(),
        ),
        ("EDGEFLOW__OPS__LISTEN", "everywhere".to_string()),
    ];
    for command in ["worker", "config"] {
        let mut args = vec![command];
        if command == "config" {
            args.push("check");
        }
        args.extend(["--config", file.to_str().unwrap()]);
        let out = edgeflow(&args, &env).output().expect("run edgeflow");
        assert_eq!(out.status.code(), Some(2), "{command}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        for path in [
            "temporal.address",
            "temporal.api_key_file",
            "ops.listen",
            "worker.max_concurrent_activities",
            "shutdown.colour",
        ] {
            assert!(
                stderr.contains(path),
                "{command}: {path} not reported:\n{stderr}"
            );
        }
    }
}

#[test]
fn the_gateway_refuses_to_start_with_a_payload_key() {
    // The systemd units give both processes /etc/edgeflow/edgeflow.env: a key put there for the
    // worker would reach the gateway, which must never be able to read what the edge encrypts.
    let env = [
        (
            "EDGEFLOW__ENCRYPTION__KEYS__K1__KEY",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 32]),
        ),
        ("EDGEFLOW__ENCRYPTION__ACTIVE_KEY_ID", "k1".to_string()),
        ("EDGEFLOW__GATEWAY__JWKS_FILE", "/dev/null".to_string()),
    ];
    let out = edgeflow(&["gateway"], &env).output().expect("run edgeflow");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("encryption.keys") && stderr.contains("never holds a payload key"),
        "{stderr}"
    );
}

#[test]
fn config_check_prints_settings_with_secrets_redacted() {
    let out = edgeflow(
        &["config", "check"],
        &[(
            "EDGEFLOW__TEMPORAL__API_KEY",
            "sk-live-do-not-print".to_string(),
        )],
    )
    .output()
    .expect("config check");
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("sk-live-do-not-print"));
    let printed: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(printed["temporal"]["api_key"], "[redacted]");
    assert_eq!(printed["task_queues"]["main"]["name"], "edgeflow");
}

#[test]
fn sigterm_drains_an_in_flight_activity_and_leaves_a_clean_history() {
    let server = temporal::shared();
    let queue = unique_queue("drain");
    let mut worker = WorkerProcess::spawn(
        &server.address(),
        &queue,
        &[("EDGEFLOW__SHUTDOWN__GRACE_PERIOD_SECS", "20".to_string())],
    );
    worker.wait_readyz(200, Duration::from_secs(60));
    let out = start_echo(
        server,
        &queue,
        "echo-drain",
        r#"{"message":"slow","delay_ms":3000}"#,
        false,
    );
    assert!(out.status.success(), "{out:?}");
    wait_for_log(&worker, "echo delay_ms=3000", Duration::from_secs(20));

    let signalled = Instant::now();
    worker.signal("TERM");
    let status = worker.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "exit status {status}\n{}", worker.logs());
    assert!(
        signalled.elapsed() >= Duration::from_millis(1500),
        "exited before the activity finished"
    );
    let logs = worker.logs();
    assert!(
        logs.contains(
            "drained: 1 activity in flight at shutdown, 1 completed, 0 failed, 0 timed out, 0 cancelled at the grace deadline"
        ),
        "{logs}"
    );

    // A fresh worker finishes the workflow from where the first one left it.
    let mut second = WorkerProcess::spawn(&server.address(), &queue, &[]);
    second.wait_readyz(200, Duration::from_secs(60));
    let out = edgeflow(
        &["status", "echo-drain"],
        &[("EDGEFLOW__TEMPORAL__ADDRESS", server.address())],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status: serde_json::Value = serde_json::from_slice(
            &edgeflow(
                &["status", "echo-drain"],
                &[("EDGEFLOW__TEMPORAL__ADDRESS", server.address())],
            )
            .output()
            .unwrap()
            .stdout,
        )
        .unwrap_or_default();
        if status["status"] == "completed" {
            assert_eq!(status["result"], "slow");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "workflow did not complete: {status}\n{}",
            second.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(out);
    let events = event_types(&history(&server.address(), "echo-drain"));
    for bad in [
        "EVENT_TYPE_WORKFLOW_TASK_FAILED",
        "EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT",
        "EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT",
    ] {
        assert!(
            !events.iter().any(|e| e == bad),
            "{bad} in history: {events:?}"
        );
    }
    assert_eq!(
        events
            .iter()
            .filter(|e| *e == "EVENT_TYPE_ACTIVITY_TASK_COMPLETED")
            .count(),
        1,
        "{events:?}"
    );
}

#[test]
fn an_activity_still_running_after_the_grace_period_is_cancelled() {
    let server = temporal::shared();
    let queue = unique_queue("grace");
    let mut worker = WorkerProcess::spawn(
        &server.address(),
        &queue,
        &[("EDGEFLOW__SHUTDOWN__GRACE_PERIOD_SECS", "1".to_string())],
    );
    worker.wait_readyz(200, Duration::from_secs(60));
    let out = start_echo(
        server,
        &queue,
        "echo-grace",
        r#"{"message":"stuck","delay_ms":60000}"#,
        false,
    );
    assert!(out.status.success(), "{out:?}");
    wait_for_log(&worker, "echo delay_ms=60000", Duration::from_secs(20));
    worker.signal("TERM");
    let status = worker.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "exit status {status}\n{}", worker.logs());
    assert!(
        worker.logs().contains(
            "drained: 1 activity in flight at shutdown, 0 completed, 0 failed, 0 timed out, 1 cancelled at the grace deadline"
        ),
        "{}",
        worker.logs()
    );
}

#[test]
fn the_drain_log_counts_what_finished_within_the_grace_period_and_what_was_cancelled_at_it() {
    let server = temporal::shared();
    let queue = unique_queue("drain-log");
    let mut worker = WorkerProcess::spawn(
        &server.address(),
        &queue,
        &[("EDGEFLOW__SHUTDOWN__GRACE_PERIOD_SECS", "3".to_string())],
    );
    worker.wait_readyz(200, Duration::from_secs(60));
    for (id, delay) in [("echo-quick", 1000), ("echo-stuck", 60000)] {
        let input = format!(r#"{{"message":"{id}","delay_ms":{delay}}}"#);
        let out = start_echo(server, &queue, id, &input, false);
        assert!(out.status.success(), "{out:?}");
        wait_for_log(
            &worker,
            &format!("echo delay_ms={delay}"),
            Duration::from_secs(20),
        );
    }
    worker.signal("TERM");
    let status = worker.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "exit status {status}\n{}", worker.logs());
    assert!(
        worker.logs().contains(
            "drained: 2 activities in flight at shutdown, 1 completed, 0 failed, 0 timed out, 1 cancelled at the grace deadline"
        ),
        "{}",
        worker.logs()
    );
}

#[test]
fn readyz_follows_the_temporal_server_down_and_back_in_the_same_process() {
    let mut server = DevServer::start().expect("dev server");
    let queue = unique_queue("ready");
    let mut worker = WorkerProcess::spawn(&server.address(), &queue, &[]);
    worker.wait_readyz(200, Duration::from_secs(60));
    let pid = worker.child.id();

    server.stop();
    worker.wait_readyz(503, Duration::from_secs(30));
    let (_, reason) = worker.ops_get("/readyz");
    assert!(
        reason.contains("Temporal"),
        "503 without a reason: {reason}"
    );

    server.start_again().expect("restart dev server");
    worker.wait_readyz(200, Duration::from_secs(60));
    assert_eq!(worker.child.id(), pid);
    assert!(
        worker.child.try_wait().unwrap().is_none(),
        "worker process ended"
    );

    // And it still runs work: polling came back with the server.
    let out = start_echo(
        &server,
        &queue,
        "echo-after-restart",
        r#"{"message":"back"}"#,
        true,
    );
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        worker.logs()
    );
}

/// A Temporal user's existing setup just works: a `temporal.toml` profile and `TEMPORAL_*`
/// variables, with the `host:port` address every SDK takes, and no edgeflow address setting.
#[test]
fn temporals_own_client_settings_and_host_port_addresses_are_accepted() {
    let server = temporal::shared();
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("temporal.toml");
    std::fs::write(
        &profile,
        format!(
            "[profile.local]\naddress = \"127.0.0.1:{}\"\nnamespace = \"wrong\"\n",
            server.grpc_port()
        ),
    )
    .unwrap();
    let queue = unique_queue("temporal-env");
    let env = [
        ("TEMPORAL_CONFIG_FILE", profile.display().to_string()),
        ("TEMPORAL_PROFILE", "local".to_string()),
        // A variable wins over the profile, as in every SDK.
        ("TEMPORAL_NAMESPACE", "default".to_string()),
    ];
    let out = edgeflow(&["config", "check"], &env).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        printed["temporal"]["address"],
        format!("127.0.0.1:{}", server.grpc_port())
    );
    assert_eq!(printed["temporal"]["namespace"], "default");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("gRPC compression: None (auto: 127.0.0.1 is a loopback or private address)"),
        "{stderr}"
    );

    let mut worker = WorkerProcess::spawn("", &queue, &env);
    worker.wait_readyz(200, Duration::from_secs(60));
    assert!(
        worker.logs().contains("connected to Temporal"),
        "{}",
        worker.logs()
    );

    let bad = edgeflow(
        &["config", "check"],
        &[("TEMPORAL_TLS_CLIENT_CERT_DATA", "-----BEGIN".to_string())],
    )
    .output()
    .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("TEMPORAL_TLS_CLIENT_CERT_DATA"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_api_key_file_is_sent_without_a_restart() {
    let server = tokio::task::spawn_blocking(temporal::shared).await.unwrap();
    let proxy = edgeflow_testkit::grpc_proxy::RecordingProxy::start(format!(
        "127.0.0.1:{}",
        server.grpc_port()
    ))
    .await
    .expect("proxy");
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("api-key");
    std::fs::write(&key_file, "key-one\n").unwrap();
    let queue = unique_queue("rotate");
    let mut worker = WorkerProcess::spawn(
        &proxy.address(),
        &queue,
        &[
            (
                "EDGEFLOW__TEMPORAL__API_KEY_FILE",
                key_file.display().to_string(),
            ),
            (
                "EDGEFLOW__TEMPORAL__CREDENTIALS_CHECK_SECS",
                "1".to_string(),
            ),
        ],
    );
    let mut worker = tokio::task::spawn_blocking(move || {
        worker.wait_readyz(200, Duration::from_secs(60));
        worker
    })
    .await
    .unwrap();
    assert!(proxy.authorizations().iter().any(|a| a == "Bearer key-one"));
    assert!(!proxy.authorizations().iter().any(|a| a == "Bearer key-two"));

    std::fs::write(&key_file, "key-two\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !proxy.authorizations().iter().any(|a| a == "Bearer key-two") {
        assert!(
            Instant::now() < deadline,
            "new key never sent:\n{}",
            worker.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Calls made after the swap carry only the new key.
    let seen_at_swap = proxy.authorizations().len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = proxy.authorizations()[seen_at_swap..].to_vec();
    assert!(!later.is_empty());
    assert!(later.iter().all(|a| a == "Bearer key-two"), "{later:?}");
    assert!(worker.logs().contains("Temporal API key reloaded"));
    assert!(
        worker.child.try_wait().unwrap().is_none(),
        "worker restarted or died"
    );
}

fn wait_for_log(worker: &WorkerProcess, needle: &str, limit: Duration) {
    let started = Instant::now();
    while started.elapsed() < limit {
        if strip_ansi(&worker.logs()).contains(needle) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("`{needle}` never logged:\n{}", worker.logs());
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
