//! One trace and one log story, end to end, with real parts: `edgeflow dev` (a Temporal dev
//! server, the edge Worker in workerd through `wrangler dev`, the demo services, the worker)
//! exporting to an OTLP receiver on loopback (testkit's, a real OTLP/gRPC and OTLP/HTTP server),
//! and clients of Temporal's Python SDK traced by its own OpenTelemetry interceptor.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{DevPorts, DevStack, WorkerProcess, edgeflow, history, python, unique_queue};
use edgeflow_testkit::otlp::{OtlpReceiver, ReceivedSpan};
use edgeflow_testkit::temporal;
use edgeflow_testkit::tools::repo_root;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn names(spans: &[ReceivedSpan]) -> BTreeSet<String> {
    spans.iter().map(|s| s.name.clone()).collect()
}

fn count(spans: &[ReceivedSpan], name: &str) -> usize {
    spans.iter().filter(|s| s.name == name).count()
}

/// `curl` with headers shown: (status, response headers lower-cased, body).
fn curl(args: &[&str]) -> (u16, String, serde_json::Value) {
    let out = Command::new("curl")
        .args(["-s", "-D", "-"])
        .args(args)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (
        status,
        head.to_lowercase(),
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .map(str::trim)
}

/// examples/order.json as order `order_id`, written into `dir`: each run its own order (the
/// edge answers a second request for one order with the first run).
fn order_file(dir: &std::path::Path, order_id: &str) -> PathBuf {
    let example = std::fs::read_to_string(repo_root().join("examples/order.json")).unwrap();
    let mut order: serde_json::Value = serde_json::from_str(&example).unwrap();
    order["order_id"] = order_id.into();
    let path = dir.join(format!("{order_id}.json"));
    std::fs::write(&path, order.to_string()).unwrap();
    path
}

/// Runs the Python client in `mode`; returns its JSON line.
fn python_client(args: &[&str]) -> serde_json::Value {
    let script = repo_root().join("tests/python/traced_client.py");
    let out = Command::new(python())
        .arg(script)
        .args(args)
        .output()
        .expect("python (run scripts/setup)");
    assert!(
        out.status.success(),
        "python client failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON line")
}

#[test]
fn a_request_through_the_edge_is_one_trace_and_one_log_story() {
    let receiver = OtlpReceiver::start().expect("OTLP receiver");
    let var = tempfile::tempdir().unwrap();
    let ports = DevPorts::free();
    let DevPorts {
        grpc, ops, edge, ..
    } = ports;
    let address = format!("127.0.0.1:{grpc}");
    let mut env = ports.env(var.path());
    env.extend([
        (
            "EDGEFLOW__TELEMETRY__OTLP_ENDPOINT",
            receiver.grpc_endpoint(),
        ),
        ("EDGEFLOW__TELEMETRY__LOG_FORMAT", "json".to_string()),
        // Debug for edgeflow's own code: every attempt then logs at least its end.
        (
            "EDGEFLOW__TELEMETRY__LOG_LEVEL",
            "info,edgeflow=debug,edgeflow_activities=debug,temporalio_sdk_core=warn".to_string(),
        ),
        (
            "EDGEFLOW__TELEMETRY__SERVICE_INSTANCE_ID",
            "trace-test-1".to_string(),
        ),
    ]);
    let dev = DevStack::ready(&env, var.path(), ops, Duration::from_secs(120));
    let logs = || dev.logs();
    assert!(
        logs().contains(&format!(
            "traces:           OTLP/gRPC to {}",
            receiver.grpc_endpoint()
        )),
        "the banner says where traces go:\n{}",
        logs()
    );

    // A caller with a trace of its own orders through the edge and waits for the result.
    let token = edgeflow(
        &["dev", "token", "--role", "customer", "--subject", "ada"],
        &env,
    )
    .output()
    .unwrap();
    let token = String::from_utf8_lossy(&token.stdout).trim().to_string();
    let body = order_file(var.path(), "ord-traced");
    let (status, head, run) = curl(&[
        "-X",
        "POST",
        &format!("http://127.0.0.1:{edge}/v1/workflows/order"),
        "-H",
        &format!("Authorization: Bearer {token}"),
        "-H",
        &format!("traceparent: 00-{TRACE_ID}-{CALLER_SPAN}-01"),
        "-H",
        "Prefer: wait=30",
        "-H",
        "Content-Type: application/json",
        "--data",
        &format!("@{}", body.display()),
    ]);
    assert_eq!(status, 200, "{head}{run}\n{}", logs());
    assert_eq!(run["status"], "completed", "{run}");
    let workflow_id = run["workflow_id"]
        .as_str()
        .expect("workflow_id")
        .to_string();
    let request_id = header(&head, "x-request-id")
        .expect("X-Request-Id")
        .to_string();
    let traceresponse = header(&head, "traceresponse").expect("traceresponse");
    assert!(
        traceresponse.starts_with(&format!("00-{TRACE_ID}-")),
        "the edge continues the caller's trace: {traceresponse}"
    );
    let edge_span = traceresponse.split('-').nth(2).unwrap().to_string();

    // One trace: the workflow's spans and one span per activity attempt, each attempt's calls
    // below it, all under the edge's span, which is under the caller's.
    let attempts = history(&address, &workflow_id)
        .iter()
        .filter(|e| e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_STARTED")
        .count();
    assert!(attempts >= 5, "order runs at least five activities");
    // (`settings.order` is a local activity: it has a span but no task in history.)
    let task_spans = |spans: &[ReceivedSpan]| {
        spans
            .iter()
            .filter(|s| {
                s.name.starts_with("RunActivity:") && s.name != "RunActivity:settings.order"
            })
            .count()
    };
    let spans = receiver.wait_for_trace(TRACE_ID, Duration::from_secs(30), |spans| {
        task_spans(spans) >= attempts && spans.iter().any(|s| s.name == "RunWorkflow:order")
    });
    let run_activity = task_spans(&spans);
    assert_eq!(
        run_activity,
        attempts,
        "one span per activity attempt (history: {attempts}): {:?}",
        names(&spans)
    );
    let workflow = spans
        .iter()
        .find(|s| s.name == "RunWorkflow:order")
        .unwrap_or_else(|| panic!("no RunWorkflow:order in {:?}", names(&spans)));
    assert_eq!(
        workflow.parent_span_id, edge_span,
        "the workflow runs under the edge's span"
    );
    assert_eq!(workflow.attributes["temporalWorkflowID"], workflow_id);
    for (child, parent) in [
        ("http.call", "RunActivity:http.call"),
        ("db.statement", "db.execute"),
        ("db.execute", "RunActivity:db.execute"),
        ("email.send", "RunActivity:email.send"),
        ("webhook.notify", "RunActivity:webhook.notify"),
    ] {
        let child = spans
            .iter()
            .find(|s| s.name == child)
            .unwrap_or_else(|| panic!("no {child} span in {:?}", names(&spans)));
        let up = spans
            .iter()
            .find(|s| s.span_id == child.parent_span_id)
            .unwrap_or_else(|| panic!("{} has no parent in the trace", child.name));
        assert_eq!(up.name, parent, "{} sits under {parent}", child.name);
    }
    assert!(
        count(&spans, "StartActivity:http.call") >= 3,
        "{:?}",
        names(&spans)
    );
    let resource = &workflow.resource;
    assert_eq!(resource["service.name"], "edgeflow");
    assert_eq!(resource["service.version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(resource["service.instance.id"], "trace-test-1");
    assert!(spans.iter().all(|s| s.protocol == "grpc"));

    // One log story: every line an activity logs carries who, what and which trace.
    let text = logs();
    // The lines activities log, the interceptor's and the families' (once the worker is ready:
    // so far only this run's).
    let activity_lines: Vec<serde_json::Value> = text
        .lines()
        .skip_while(|l| !l.contains(r#""message":"ready""#))
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .filter(|l: &serde_json::Value| {
            let target = l["target"].as_str().unwrap_or("");
            target == "edgeflow::worker::observe" || target.starts_with("edgeflow_activities::")
        })
        .collect();
    assert!(
        activity_lines.len() >= attempts,
        "each attempt logs at least once:\n{text}"
    );
    for line in &activity_lines {
        assert_eq!(line["workflow_id"], workflow_id.as_str(), "{line}");
        for field in ["run_id", "activity_type", "attempt"] {
            assert!(line.get(field).is_some(), "{field} missing: {line}");
        }
        assert_eq!(line["trace_id"], TRACE_ID, "{line}");
        assert_eq!(line["edge_request_id"], request_id.as_str(), "{line}");
        assert_eq!(line["edge_subject"], "ada", "{line}");
    }
    assert!(
        !text.contains(&token),
        "a bearer token reached the worker's log"
    );
    // The edge's own line joins the story: its request id, the workflow and the trace.
    let edge_log = std::fs::read_to_string(var.path().join("edge.log")).unwrap_or_default();
    assert!(
        edge_log
            .lines()
            .any(|l| l.contains(&request_id) && l.contains(&workflow_id) && l.contains(TRACE_ID)),
        "no edge log line joins request, workflow and trace:\n{edge_log}"
    );

    // Without a traceparent the edge starts the trace, and says which.
    let (status, head, run) = curl(&[
        "-X",
        "POST",
        &format!("http://127.0.0.1:{edge}/v1/workflows/order"),
        "-H",
        &format!("Authorization: Bearer {token}"),
        "-H",
        "Prefer: wait=30",
        "-H",
        "Content-Type: application/json",
        "--data",
        &format!("@{}", order_file(var.path(), "ord-untraced").display()),
    ]);
    assert_eq!(
        (status, &run["status"]),
        (200, &"completed".into()),
        "{run}"
    );
    let started = header(&head, "traceresponse").expect("traceresponse");
    let own_trace = started.split('-').nth(1).unwrap().to_string();
    assert_ne!(own_trace, TRACE_ID);
    let spans = receiver.wait_for_trace(&own_trace, Duration::from_secs(30), |spans| {
        count(spans, "RunActivity:webhook.notify") >= 1
    });
    assert!(
        count(&spans, "RunWorkflow:order") == 1 && count(&spans, "RunActivity:webhook.notify") >= 1,
        "{:?}",
        names(&spans)
    );

    // Another SDK's client: Python's TracingInterceptor starts `order`, edgeflow continues it.
    let started = python_client(&[
        "start-order",
        &address,
        "edgeflow",
        "order-from-python",
        &order_file(var.path(), "ord-python").display().to_string(),
    ]);
    assert_eq!(started["result"]["status"], "completed", "{started}");
    let python_trace = started["trace_id"].as_str().unwrap().to_string();
    let spans = receiver.wait_for_trace(&python_trace, Duration::from_secs(30), |spans| {
        count(spans, "RunActivity:webhook.notify") >= 1
    });
    for name in [
        "RunWorkflow:order",
        "RunActivity:http.call",
        "RunActivity:db.execute",
    ] {
        assert!(
            count(&spans, name) >= 1,
            "{name} missing: {:?}",
            names(&spans)
        );
    }
    // …and another SDK's workflow: a Python workflow calls edgeflow's `echo`.
    let called = python_client(&["call-echo", &address, "edgeflow"]);
    assert_eq!(called["result"], "from python", "{called}");
    let python_trace = called["trace_id"].as_str().unwrap().to_string();
    let spans = receiver.wait_for_trace(&python_trace, Duration::from_secs(30), |spans| {
        count(spans, "RunActivity:echo") == 1
    });
    assert_eq!(count(&spans, "RunActivity:echo"), 1, "{:?}", names(&spans));

    dev.interrupt();
}

#[test]
fn spans_export_over_otlp_http_with_the_resource_attributes() {
    let receiver = OtlpReceiver::start().expect("OTLP receiver");
    let server = temporal::shared();
    let queue = unique_queue("otlp-http");
    let mut worker = WorkerProcess::spawn(
        &server.address(),
        &queue,
        &[
            (
                "EDGEFLOW__TELEMETRY__OTLP_ENDPOINT",
                receiver.http_endpoint(),
            ),
            (
                "EDGEFLOW__TELEMETRY__OTLP_PROTOCOL",
                "http/protobuf".to_string(),
            ),
        ],
    );
    worker.wait_readyz(200, Duration::from_secs(60));
    let out = edgeflow(
        &[
            "start",
            "echo",
            "--input",
            r#"{"message":"traced"}"#,
            "--id",
            "echo-otlp-http",
            "--task-queue",
            &queue,
            "--wait",
        ],
        &[("EDGEFLOW__TEMPORAL__ADDRESS", server.address())],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{out:?}\n{}", worker.logs());
    // The workflow's span and the activity's may leave in different export batches.
    let deadline = Instant::now() + Duration::from_secs(30);
    let spans = loop {
        let spans = receiver.spans();
        let exported = |name: &str| spans.iter().any(|s| s.name == name);
        if (exported("RunActivity:echo") && exported("RunWorkflow:echo"))
            || Instant::now() > deadline
        {
            break spans;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let activity = spans
        .iter()
        .find(|s| s.name == "RunActivity:echo")
        .unwrap_or_else(|| {
            panic!(
                "no RunActivity:echo in {:?}\n{}",
                names(&spans),
                worker.logs()
            )
        });
    assert_eq!(activity.protocol, "http/protobuf");
    assert_eq!(activity.resource["service.name"], "edgeflow");
    assert!(
        activity.resource["service.instance.id"].starts_with("edgeflow-"),
        "the worker identity by default: {:?}",
        activity.resource
    );
    let workflow = spans
        .iter()
        .find(|s| s.name == "RunWorkflow:echo")
        .expect("RunWorkflow:echo");
    assert_eq!(activity.trace_id, workflow.trace_id, "one trace per run");
}
