//! Payload encryption end to end: a worker and `edgeflow start` with `[encryption]` keys against
//! a real dev server. Temporal's raw history, read without any codec, holds no byte of the input
//! (a control run without keys holds it); the caller still gets plaintext; the payloads decrypt
//! with the codec of Temporal's Python sample (tests/python/payload_codec.py), so other SDKs
//! read what edgeflow writes; and a run started under one key finishes after a rotation.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use edgeflow_testkit::temporal::{self, DevServer};
use edgeflow_testkit::tools::repo_root;

use crate::common::{WorkerProcess, edgeflow, event_types, history, python, unique_queue};

pub(crate) const KEY_A: [u8; 32] = *b"edgeflow-test-key-a-32-bytes-000";
pub(crate) const KEY_B: [u8; 32] = *b"edgeflow-test-key-b-32-bytes-111";

/// Settings that give key `key_a` inline, as an operator would through the environment.
pub(crate) fn key_a_active() -> Vec<(&'static str, String)> {
    vec![
        (
            "EDGEFLOW__ENCRYPTION__KEYS__KEY_A__KEY",
            STANDARD.encode(KEY_A),
        ),
        ("EDGEFLOW__ENCRYPTION__ACTIVE_KEY_ID", "key_a".to_string()),
    ]
}

/// `edgeflow` against `server`, polling or starting on `queue`.
fn cli(
    server: &DevServer,
    queue: &str,
    args: &[&str],
    extra: &[(&'static str, String)],
) -> std::process::Output {
    let mut env = vec![
        ("EDGEFLOW__TEMPORAL__ADDRESS", server.address()),
        ("EDGEFLOW__TASK_QUEUES__MAIN__NAME", queue.to_string()),
    ];
    env.extend(extra.iter().cloned());
    edgeflow(args, &env).output().expect("edgeflow")
}

/// Every payload (an object with `metadata` and `data`) anywhere in `value`.
fn payloads(value: &serde_json::Value, out: &mut Vec<serde_json::Value>) {
    match value {
        serde_json::Value::Object(map) => {
            if map.get("metadata").is_some_and(|m| m.is_object()) && map.contains_key("data") {
                out.push(value.clone());
            }
            map.values().for_each(|v| payloads(v, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| payloads(v, out)),
        _ => {}
    }
}

/// A payload's metadata value, base64-decoded.
fn meta(payload: &serde_json::Value, key: &str) -> String {
    let text = payload["metadata"][key].as_str().unwrap_or_default();
    String::from_utf8_lossy(&STANDARD.decode(text).unwrap_or_default()).into_owned()
}

/// Whether `needle` is in any string of `value`, as written or base64-decoded.
pub(crate) fn anywhere(value: &serde_json::Value, needle: &str) -> bool {
    match value {
        serde_json::Value::String(s) => {
            s.contains(needle)
                || STANDARD
                    .decode(s)
                    .is_ok_and(|bytes| String::from_utf8_lossy(&bytes).contains(needle))
        }
        serde_json::Value::Object(map) => {
            map.keys().any(|k| k.contains(needle)) || map.values().any(|v| anywhere(v, needle))
        }
        serde_json::Value::Array(items) => items.iter().any(|v| anywhere(v, needle)),
        _ => false,
    }
}

/// Decrypts `payloads` with the Python sample's codec; returns them decrypted.
fn python_decode(
    keys: &[(&str, &[u8; 32])],
    payloads: &[serde_json::Value],
) -> Vec<serde_json::Value> {
    let request = serde_json::json!({
        "keys": keys.iter().map(|(id, k)| (id.to_string(), STANDARD.encode(k).into())).collect::<serde_json::Map<_, _>>(),
        "payloads": payloads,
    });
    let mut child = Command::new(python())
        .arg(repo_root().join("tests/python/payload_codec.py"))
        .arg("decode")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python (run scripts/setup)");
    std::io::Write::write_all(
        child.stdin.as_mut().expect("stdin"),
        request.to_string().as_bytes(),
    )
    .expect("write the request");
    let out = child.wait_with_output().expect("python");
    assert!(
        out.status.success(),
        "the Python sample's codec refused edgeflow's payloads: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    answer["payloads"].as_array().cloned().unwrap_or_default()
}

/// Runs `echo` with a marker through a worker and `edgeflow start --wait`, both with `settings`;
/// returns the marker and the run's raw history.
fn echo_marker(
    server: &DevServer,
    test: &str,
    settings: &[(&'static str, String)],
) -> (String, Vec<serde_json::Value>) {
    let queue = unique_queue(test);
    let mut worker = WorkerProcess::spawn(&server.address(), &queue, settings);
    worker.wait_readyz(200, Duration::from_secs(60));
    let marker = format!("{test}-{}@example.com", uuid::Uuid::new_v4().simple());
    let input = serde_json::json!({"message": {"email": marker, "name": "Ada Lovelace"}});
    let id = format!("{test}-{}", std::process::id());
    let out = cli(
        server,
        &queue,
        &[
            "start",
            "echo",
            "--id",
            &id,
            "--input",
            &input.to_string(),
            "--wait",
        ],
        settings,
    );
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        worker.logs()
    );
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).expect("result is JSON");
    assert_eq!(
        result, input["message"],
        "the caller reads the result in plaintext"
    );
    (marker, history(&server.address(), &id))
}

#[test]
fn temporal_stores_only_ciphertext_and_the_python_sample_reads_it() {
    let server = temporal::shared();
    let settings = key_a_active();
    let (marker, events) = echo_marker(server, "enc", &settings);
    let doc = serde_json::Value::Array(events.clone());
    assert!(
        !anywhere(&doc, &marker) && !anywhere(&doc, "Ada Lovelace"),
        "the raw history holds the input:\n{doc:#}"
    );
    // Every payload of the run is encrypted, under the active key: input, the activity's
    // arguments, headers and result, the run's result.
    let mut found = Vec::new();
    payloads(&doc, &mut found);
    assert!(found.len() >= 4, "too few payloads in {found:#?}");
    for p in &found {
        assert_eq!(meta(p, "encoding"), "binary/encrypted", "{p}");
        assert_eq!(meta(p, "encryption-key-id"), "key_a", "{p}");
    }
    // Interop: the Python sample's codec decrypts what edgeflow wrote.
    let decoded = python_decode(&[("key_a", &KEY_A)], &found);
    assert_eq!(decoded.len(), found.len());
    assert!(
        anywhere(&serde_json::Value::Array(decoded.clone()), &marker),
        "{decoded:#?}"
    );
    assert!(
        decoded
            .iter()
            .all(|p| meta(p, "encoding") != "binary/encrypted")
    );

    // `edgeflow replay` replays the encrypted history with the worker's keys, and without them
    // says which key it lacks.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("echo-encrypted.json");
    let id = format!("enc-{}", std::process::id());
    let saved = cli(
        server,
        "unused",
        &["history", &id, file.to_str().unwrap()],
        &[],
    );
    assert!(saved.status.success(), "{saved:?}");
    let replay = |settings: &[(&'static str, String)]| {
        edgeflow(&["replay", file.to_str().unwrap()], settings)
            .output()
            .expect("edgeflow replay")
    };
    let with_keys = replay(&settings);
    assert!(with_keys.status.success(), "{with_keys:?}");
    let without = replay(&[]);
    let said = String::from_utf8_lossy(&without.stdout);
    assert!(
        !without.status.success() && said.contains("FAILED") && said.contains("key_a"),
        "{without:?}"
    );
}

#[test]
fn without_keys_the_history_holds_the_input() {
    // The control for the test above: the same search finds the marker when encryption is off.
    let (marker, events) = echo_marker(temporal::shared(), "enc-off", &[]);
    let doc = serde_json::Value::Array(events);
    assert!(
        anywhere(&doc, &marker),
        "the search misses plaintext:\n{doc:#}"
    );
}

#[test]
fn failure_messages_reach_temporal_encrypted_and_the_caller_in_plaintext() {
    let server = temporal::shared();
    let settings = key_a_active();
    let queue = unique_queue("enc-fail");
    let mut worker = WorkerProcess::spawn(&server.address(), &queue, &settings);
    worker.wait_readyz(200, Duration::from_secs(60));
    // `report` of a statement that does not exist: the activity fails for good, and its failure
    // message names the statement.
    let marker = format!("no_such_statement_{}", uuid::Uuid::new_v4().simple());
    let input = serde_json::json!({
        "title": "t", "query": marker, "recipients": ["ops@example.com"],
    });
    let id = format!("enc-fail-{}", std::process::id());
    let out = cli(
        server,
        &queue,
        &[
            "start",
            "report",
            "--id",
            &id,
            "--input",
            &input.to_string(),
            "--wait",
        ],
        &settings,
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(answer["status"], "failed", "{out:?}\n{}", worker.logs());
    let error = answer["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&marker),
        "the caller reads the failure: {error}"
    );
    assert!(!error.contains("Encoded failure"), "{error}");

    let events = history(&server.address(), &id);
    assert!(
        event_types(&events)
            .iter()
            .any(|t| t == "EVENT_TYPE_WORKFLOW_EXECUTION_FAILED"),
        "{:?}",
        event_types(&events)
    );
    let doc = serde_json::Value::Array(events);
    assert!(
        !anywhere(&doc, &marker),
        "the raw history holds the failure message:\n{doc:#}"
    );
}

/// The first payload of the first event of `event_type`.
fn first_payload(events: &[serde_json::Value], event_type: &str) -> serde_json::Value {
    let event = events
        .iter()
        .find(|e| e["eventType"] == event_type)
        .unwrap_or_else(|| panic!("no {event_type} in {:?}", event_types(events)));
    let mut found = Vec::new();
    payloads(event, &mut found);
    found
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no payload in {event}"))
}

#[test]
fn a_run_started_under_one_key_finishes_after_a_rotation() {
    let server = temporal::shared();
    let queue = unique_queue("enc-rotate");
    let id = format!("enc-rotate-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let key_b_file = dir.path().join("key_b");
    std::fs::write(&key_b_file, KEY_B).unwrap();

    // Before: key A encrypts. The run is started, its activity scheduled under key A; then the
    // worker stops (draining the activity) before the run ends. No sticky cache, so the next
    // workflow task goes to the normal queue at once.
    let mut before = key_a_active();
    before.push(("EDGEFLOW__WORKER__MAX_CACHED_WORKFLOWS", "0".to_string()));
    let mut first = WorkerProcess::spawn(&server.address(), &queue, &before);
    first.wait_readyz(200, Duration::from_secs(60));
    // Long enough that the SIGTERM below lands while the activity runs, however slowly this
    // loaded machine reads the history: a 1 s activity once finished, and the first worker
    // completed the run under key A, before the stop.
    let input = r#"{"message":"rotated","delay_ms":5000}"#;
    let out = cli(
        server,
        &queue,
        &["start", "echo", "--id", &id, "--input", input],
        &before,
    );
    assert!(out.status.success(), "{out:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !event_types(&history(&server.address(), &id))
        .iter()
        .any(|t| t == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED")
    {
        assert!(
            Instant::now() < deadline,
            "never scheduled:\n{}",
            first.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    first.signal("TERM");
    let exit = first.wait_exit(Duration::from_secs(30));
    assert!(exit.success(), "{exit}\n{}", first.logs());

    // After: key B is active, from a file; key A stays, to decrypt only.
    let after = vec![
        (
            "EDGEFLOW__ENCRYPTION__KEYS__KEY_A__KEY",
            STANDARD.encode(KEY_A),
        ),
        (
            "EDGEFLOW__ENCRYPTION__KEYS__KEY_B__KEY_FILE",
            key_b_file.display().to_string(),
        ),
        ("EDGEFLOW__ENCRYPTION__ACTIVE_KEY_ID", "key_b".to_string()),
    ];
    let mut second = WorkerProcess::spawn(&server.address(), &queue, &after);
    second.wait_readyz(200, Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let out = cli(server, &queue, &["status", &id], &after);
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if status["status"].as_str().is_some_and(|s| s != "running") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the run never finished: {status}\n{}",
            second.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status["status"], "completed", "{status}\n{}", second.logs());
    assert_eq!(status["result"], "rotated");

    let events = history(&server.address(), &id);
    let key_of = |event_type: &str| meta(&first_payload(&events, event_type), "encryption-key-id");
    assert_eq!(key_of("EVENT_TYPE_WORKFLOW_EXECUTION_STARTED"), "key_a");
    assert_eq!(key_of("EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"), "key_a");
    assert_eq!(key_of("EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED"), "key_b");
    assert!(
        !event_types(&events)
            .iter()
            .any(|t| t == "EVENT_TYPE_WORKFLOW_TASK_FAILED"),
        "{:?}",
        event_types(&events)
    );
}
