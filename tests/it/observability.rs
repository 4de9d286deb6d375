//! The operator's tools, checked against a real worker: every expression in the Prometheus
//! alert rules (`deploy/prometheus/`) and the Grafana dashboard (`deploy/grafana/`) parses as
//! PromQL and names only series that `/metrics` serves; `/metrics` serves the activity families
//! that activities/README.md documents.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::{WorkerProcess, edgeflow, unique_queue};
use edgeflow_testkit::temporal;
use edgeflow_testkit::tools::repo_root;
use promql_parser::parser::Expr;
use promql_parser::util::{ExprVisitor, walk_expr};

/// The metric names an expression selects.
fn selected(expr: &str) -> Result<BTreeSet<String>, String> {
    struct Names(BTreeSet<String>);
    impl ExprVisitor for Names {
        type Error = String;
        fn pre_visit(&mut self, expr: &Expr) -> Result<bool, String> {
            let selector = match expr {
                Expr::VectorSelector(v) => Some(v),
                Expr::MatrixSelector(m) => Some(&m.vs),
                _ => None,
            };
            if let Some(name) = selector.and_then(|s| s.name.clone()) {
                self.0.insert(name);
            }
            Ok(true)
        }
    }
    let parsed = promql_parser::parser::parse(expr)?;
    let mut names = Names(BTreeSet::new());
    walk_expr(&mut names, &parsed)?;
    Ok(names.0)
}

/// Every metric name a scrape declares or has a sample of.
fn served(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| match l.strip_prefix("# TYPE ") {
            Some(rest) => rest.split_whitespace().next(),
            None if !l.starts_with('#') => l.split(['{', ' ']).next(),
            None => None,
        })
        .filter(|n| !n.is_empty())
        .flat_map(|n| {
            // A histogram declared by its family name serves these series.
            [
                n.to_string(),
                format!("{n}_bucket"),
                format!("{n}_count"),
                format!("{n}_sum"),
            ]
        })
        .collect()
}

#[test]
fn alert_rules_and_dashboard_query_what_the_worker_serves() {
    let server = temporal::shared();
    let queue = unique_queue("observability");
    let mut worker = WorkerProcess::spawn(&server.address(), &queue, &[]);
    worker.wait_readyz(200, Duration::from_secs(60));
    // One activity attempt, so the activity series have samples.
    let out = edgeflow(
        &[
            "start",
            "echo",
            "--input",
            r#"{"message":"m"}"#,
            "--id",
            "echo-obs",
            "--task-queue",
            &queue,
            "--wait",
        ],
        &[("EDGEFLOW__TEMPORAL__ADDRESS", server.address())],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{out:?}\n{}", worker.logs());
    let (code, text) = worker.ops_get("/metrics");
    assert_eq!(code, 200);
    let served = served(&text);
    assert!(text.contains("edgeflow_worker_ready 1"), "{text}");

    let mut exprs: Vec<(String, String)> = Vec::new();
    let rules: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo_root().join("deploy/prometheus/edgeflow-alerts.yml"))
            .unwrap(),
    )
    .expect("the alert rules are YAML");
    let mut alerts = BTreeSet::new();
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let name = rule["alert"]
                .as_str()
                .expect("every rule is an alert")
                .to_string();
            assert!(rule["for"].as_str().is_some(), "{name} has no `for`");
            assert!(
                rule["annotations"]["summary"].as_str().is_some(),
                "{name} has no summary"
            );
            exprs.push((
                name.clone(),
                rule["expr"].as_str().expect("expr").to_string(),
            ));
            alerts.insert(name);
        }
    }
    for wanted in [
        "EdgeflowWorkerNotReady",
        "EdgeflowActivityFailureRatioHigh",
        "EdgeflowActivityScheduleToStartSlow",
        "EdgeflowTaskSlotsExhausted",
        "EdgeflowCompletionWebhooksFailing",
        "EdgeflowEdgeActivitiesUnanswered",
        "EdgeflowPayloadKeyMissing",
    ] {
        assert!(alerts.contains(wanted), "{wanted} missing from {alerts:?}");
    }

    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("deploy/grafana/edgeflow-workers.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            // Grafana's variables, as Grafana would fill them in.
            let expr = target["expr"]
                .as_str()
                .expect("expr")
                .replace("$__rate_interval", "5m")
                .replace("$instance", ".*");
            exprs.push((panel["title"].as_str().unwrap_or("?").to_string(), expr));
        }
    }

    // The SDK registers this counter with its first failed workflow task; a healthy run has none.
    let served: BTreeSet<String> = served
        .into_iter()
        .chain(["temporal_workflow_task_execution_failed_total".to_string()])
        .collect();
    for (owner, expr) in &exprs {
        let names =
            selected(expr).unwrap_or_else(|e| panic!("{owner}: `{expr}` is not PromQL: {e}"));
        assert!(!names.is_empty(), "{owner} selects nothing");
        for name in names {
            assert!(
                served.contains(&name),
                "{owner} queries `{name}`, which /metrics does not serve:\n{text}"
            );
        }
    }

    // What activities/README.md documents is what is served.
    let readme = std::fs::read_to_string(repo_root().join("activities/README.md")).unwrap();
    for family in [
        "edgeflow_activity_executions_total",
        "edgeflow_activity_duration_seconds",
        "edgeflow_activities_in_flight",
        "edgeflow_worker_ready",
    ] {
        assert!(
            readme.contains(family),
            "activities/README.md does not document {family}"
        );
        assert!(served.contains(family), "/metrics does not serve {family}");
    }
    assert!(
        !readme.contains("edgeflow_activity_calls_total"),
        "activities/README.md documents a family nothing serves"
    );
}
