//! The contracts that outlive one build: the schemas the edge consumes, the histories running
//! workflows depend on, and the schedules edgeflow owns.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::edgeflow;
use edgeflow_testkit::temporal::DevServer;
use edgeflow_testkit::tools::repo_root;

fn files_under(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for sub in [
        "",
        "workflows",
        "activities",
        "edge-activities",
        "events",
        "failures",
    ] {
        if let Ok(entries) = std::fs::read_dir(dir.join(sub)) {
            for e in entries.flatten().filter(|e| e.path().is_file()) {
                let name = Path::new(sub).join(e.file_name()).display().to_string();
                out.push((name, std::fs::read_to_string(e.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn committed_schemas_match_the_code() {
    let dir = tempfile::tempdir().unwrap();
    let out = edgeflow(&["schema", "export", dir.path().to_str().unwrap()], &[])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let fresh = files_under(dir.path());
    let committed = files_under(&repo_root().join("schemas"));
    let names = |f: &[(String, String)]| f.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&committed),
        names(&fresh),
        "run `edgeflow schema export schemas`"
    );
    for ((name, a), (_, b)) in committed.iter().zip(&fresh) {
        assert_eq!(
            a, b,
            "schemas/{name} is stale: run `edgeflow schema export schemas`"
        );
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&fresh.iter().find(|(n, _)| n == "manifest.json").unwrap().1).unwrap();
    assert_eq!(manifest["workflows"][0]["name"], "order");
    assert_eq!(manifest["workflows"][0]["signals"][0]["name"], "approve");
}

#[test]
fn committed_histories_replay_and_a_changed_workflow_is_caught() {
    let histories = repo_root().join("tests/histories");
    let out = edgeflow(&["replay", histories.to_str().unwrap()], &[])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("0 failed"), "{stdout}");

    // The same run as if the workflow had been changed to skip recording the order: the code
    // now schedules `db.execute` where history says `email.send` came first.
    let original = std::fs::read_to_string(histories.join("order-small.json")).unwrap();
    assert!(original.contains("db.execute"));
    let changed = original.replacen("db.execute", "email.send", 1);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("changed.json");
    std::fs::write(&file, changed).unwrap();
    let out = edgeflow(&["replay", file.to_str().unwrap()], &[])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("nondetermin"), "{stdout}");
}

#[test]
fn schedules_sync_is_idempotent_and_deletes_only_its_own() {
    let server = DevServer::start().expect("dev server");
    let dir = tempfile::tempdir().unwrap();
    let two = dir.path().join("two.toml");
    std::fs::write(
        &two,
        r#"
        [schedules.nightly]
        workflow = "report"
        cron = "0 2 * * *"
        input = { title = "Orders", query = "orders_by_status", recipients = ["ops@example.com"] }
        [schedules.hourly]
        workflow = "echo"
        every_secs = 3600
        input = { message = "tick" }
        "#,
    )
    .unwrap();
    let one = dir.path().join("one.toml");
    std::fs::write(
        &one,
        r#"
        [schedules.nightly]
        workflow = "report"
        cron = "0 3 * * *"
        input = { title = "Orders", query = "orders_by_status", recipients = ["ops@example.com"] }
        "#,
    )
    .unwrap();
    let env = [("EDGEFLOW__TEMPORAL__ADDRESS", server.address())];
    let sync = |file: &Path| -> serde_json::Value {
        let out = edgeflow(
            &["schedules", "sync", "--config", file.to_str().unwrap()],
            &env,
        )
        .output()
        .unwrap();
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    // Somebody else's schedule, which sync must leave alone.
    let out = std::process::Command::new(crate::common::temporal_cli())
        .args([
            "schedule",
            "create",
            "--schedule-id",
            "theirs",
            "--interval",
            "1h",
            "--type",
            "x",
        ])
        .args([
            "--task-queue",
            "other",
            "--address",
            &format!("127.0.0.1:{}", server.grpc_port()),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    let first = sync(&two);
    assert_eq!(first["created"].as_array().unwrap().len(), 2, "{first}");
    let second = sync(&two);
    assert_eq!(second["created"], serde_json::json!([]), "{second}");
    assert_eq!(second["updated"], serde_json::json!([]), "{second}");
    assert_eq!(second["unchanged"].as_array().unwrap().len(), 2, "{second}");

    // Dropping one and changing the other: listing is eventually consistent, so retry briefly.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut report = sync(&one);
    assert_eq!(
        report["updated"],
        serde_json::json!(["edgeflow-nightly"]),
        "{report}"
    );
    while report["deleted"] != serde_json::json!(["edgeflow-hourly"]) {
        assert!(
            Instant::now() < deadline,
            "edgeflow-hourly never deleted: {report}"
        );
        std::thread::sleep(Duration::from_millis(500));
        report = sync(&one);
    }
    let listed = std::process::Command::new(crate::common::temporal_cli())
        .args([
            "schedule",
            "list",
            "--output",
            "json",
            "--address",
            &format!("127.0.0.1:{}", server.grpc_port()),
        ])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("theirs"),
        "sync touched a schedule it does not own: {listed}"
    );
}
