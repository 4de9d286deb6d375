//! `edgeflow dev`: one command brings the stack up, and Ctrl-C takes down what it started.

use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::{DevPorts, DevStack, KillOnDrop, edgeflow, signal, temporal_cli, wait_exit};

fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// A `temporal` CLI whose first `server start-dev` loses a port race the way the real server
/// does when another process takes a port it picked for an internal service; later calls are the
/// real CLI's.
fn cli_that_loses_the_first_port_race(dir: &Path) -> PathBuf {
    let wrapper = dir.join("temporal-losing-a-race");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n\
             if mkdir \"$0.lost\" 2>/dev/null; then\n\
             echo 'level=ERROR msg=\"Failed to start gRPC listener\" error=\"listen tcp 127.0.0.1:1: bind: address already in use\" service=history' >&2\n\
             exit 2\n\
             fi\n\
             exec '{}' \"$@\"\n",
            temporal_cli().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    wrapper
}

#[test]
fn dev_starts_temporal_and_the_worker_and_stops_both_on_ctrl_c() {
    let var = tempfile::tempdir().unwrap();
    let ports = DevPorts::free();
    let DevPorts {
        grpc,
        ui,
        ops,
        edge,
        gateway,
        ..
    } = ports;
    let mut env = ports.env(var.path());
    env.push((
        "EDGEFLOW_TEMPORAL_CLI",
        cli_that_loses_the_first_port_race(var.path())
            .display()
            .to_string(),
    ));
    let dev = DevStack::ready(&env, var.path(), ops, Duration::from_secs(90));
    let logs = || dev.logs();
    assert!(
        logs().contains(&format!("Temporal UI:      http://127.0.0.1:{ui}")),
        "{}",
        logs()
    );
    // The first start lost a port race; `edgeflow dev` said so and started the server again.
    assert!(
        logs().contains("it lost a race for a port; starting it again"),
        "{}",
        logs()
    );
    // The banner's promise holds: the UI answers on that port (served offline by the dev server).
    let (status, page) = edgeflow_testkit::temporal::http_get(&format!("127.0.0.1:{ui}"), "/")
        .unwrap_or((0, String::new()));
    assert_eq!(
        status, 200,
        "the Temporal UI does not answer on {ui}: {page}"
    );
    assert!(page.to_lowercase().contains("<html"), "{page}");
    assert!(
        var.path().join("temporal.db").exists(),
        "Temporal does not persist under var_dir"
    );

    let result = edgeflow(
        &[
            "start",
            "echo",
            "--input",
            r#"{"message":"from dev"}"#,
            "--wait",
        ],
        &env,
    )
    .output()
    .unwrap();
    assert!(result.status.success(), "{result:?}\n{}", logs());
    assert_eq!(
        String::from_utf8_lossy(&result.stdout).trim(),
        r#""from dev""#
    );

    // The README's walkthrough, verbatim, twice in a row: the second time every step answers with
    // what already happened.
    let first = walkthrough(edge, &env);
    // Through the edge, runs named after an order carry the caller's scope.
    for order_id in ["ord-1002", "ord-2001"] {
        assert!(
            first.split(r#""workflow_id":"order-"#).skip(1).any(|rest| {
                rest.split_once('"').is_some_and(|(id, _)| {
                    id.len() == 21 + order_id.len()
                        && id[..20].bytes().all(|b| b.is_ascii_hexdigit())
                        && id[20..] == format!("-{order_id}")
                })
            }),
            "walkthrough: no scoped run id for {order_id} in\n{first}"
        );
    }
    for expected in [
        r#""order_id": "ord-1001""#,
        r#""order_id":"ord-1002""#,
        r#""status":"applied""#,
        r#""approver":"boss""#,
        // The order's status hint, written at the edge by edge.kv.put, read from its KV.
        r#"{"status":"completed","updated_at":"#,
    ] {
        assert!(
            first.contains(expected),
            "walkthrough: no {expected} in\n{first}\n{}",
            logs()
        );
    }
    let closed = r#""workflow_type":"order","status":"completed""#;
    assert_eq!(first.matches(closed).count(), 2, "{first}");
    let second = walkthrough(edge, &env);
    assert!(
        second.contains("order-ord-1001 already exists with this input"),
        "{second}"
    );
    assert!(second.contains(r#""order_id": "ord-1001""#), "{second}");
    assert_eq!(second.matches(closed).count(), 3, "{second}");
    assert!(
        second.contains("urn:edgeflow:problem:run-closed"),
        "{second}"
    );
    assert!(!second.contains(r#""status":"failed""#), "{second}");

    // By default the edge reached Temporal through the gateway, holding no Temporal key.
    let edge_env = std::fs::read_to_string(var.path().join("edge.env")).unwrap();
    assert!(
        edge_env.contains("TEMPORAL_TRANSPORT='gateway'"),
        "{edge_env}"
    );
    assert!(!edge_env.contains("TEMPORAL_API_KEY"), "{edge_env}");
    let log = logs();
    assert!(
        log.contains(&format!("gateway:          http://127.0.0.1:{gateway}")),
        "{log}"
    );
    for operation in ["start", "update", "describe"] {
        assert!(
            log.lines().any(|l| l.contains("gateway request")
                && l.contains(&format!("operation=\"{operation}\""))
                && l.contains("status=200")),
            "no {operation} through the gateway:\n{log}"
        );
    }

    dev.interrupt();
    assert!(
        !listening(grpc),
        "the Temporal dev server outlived edgeflow dev"
    );
    assert!(!listening(ops), "the ops endpoint outlived edgeflow dev");
    assert!(!listening(edge), "the edge Worker outlived edgeflow dev");
    assert!(!listening(gateway), "the gateway outlived edgeflow dev");
}

/// Runs the README's walkthrough (its `sh` blocks, in order, as one script) against the stack whose
/// edge listens on `edge_port`; returns everything it printed.
fn walkthrough(edge_port: u16, env: &[(&str, String)]) -> String {
    let root = edgeflow_testkit::tools::repo_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let section = readme
        .split("\n## Walkthrough\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README has a Walkthrough section");
    let script: String = section
        .split("```sh\n")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .collect::<Vec<_>>()
        .join("\n")
        .replace(
            "http://127.0.0.1:8787",
            &format!("http://127.0.0.1:{edge_port}"),
        )
        .replace(
            "target/debug/edgeflow",
            crate::common::edgeflow_bin().to_str().unwrap(),
        );
    assert!(
        script.contains("curl"),
        "no commands found in the walkthrough"
    );
    let mut bash = std::process::Command::new("bash");
    bash.args(["-euo", "pipefail", "-c", &script])
        .current_dir(&root)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("EDGEFLOW_CONFIG_DIR", root.join("config"));
    for (k, v) in env {
        bash.env(k, v);
    }
    let run = bash.output().unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        run.status.success(),
        "the walkthrough failed:\n{script}\n{text}"
    );
    text
}

/// `curl` an edge route: (status, JSON body).
fn curl(args: &[&str]) -> (u16, serde_json::Value) {
    let out = std::process::Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (
        code.parse().unwrap_or(0),
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

/// `edgeflow dev services`: the demo services alone, on the port it prints, with the failure mode
/// from settings and the first answer again for a repeated Idempotency-Key; SIGTERM ends it with 0.
#[test]
fn dev_services_serve_the_demo_services_alone_and_stop_on_sigterm() {
    let (mut services, base) = demo_services("flaky:payments");

    // flaky:payments: the first two charges of an order answer 503, the third succeeds.
    let charge = |key: &str| {
        curl(&[
            "-X",
            "POST",
            "-H",
            &format!("Idempotency-Key: {key}"),
            &format!("{base}/payments/charges/o-1"),
        ])
    };
    assert_eq!(charge("a").0, 503);
    assert_eq!(charge("b").0, 503);
    let (status, body) = charge("c");
    assert_eq!(
        (status, body["outcome"].as_str(), body["attempt"].as_u64()),
        (200, Some("charged"), Some(3))
    );
    assert_eq!(
        charge("c"),
        (200, body),
        "a repeated Idempotency-Key gets the first answer"
    );
    let (status, body) = curl(&["-X", "POST", &format!("{base}/inventory/reservations/o-1")]);
    assert_eq!((status, body["outcome"].as_str()), (200, Some("reserved")));
    // A refund of an order never charged is harmless, and says so.
    let (status, body) = curl(&["-X", "POST", &format!("{base}/payments/refunds/o-2")]);
    assert_eq!(
        (status, body["outcome"].as_str()),
        (200, Some("nothing_to_refund"))
    );

    // Every call is counted at the source: per route, per key, and each order's net effect.
    let (status, stats) = curl(&[&format!("{base}/_stats")]);
    assert_eq!(status, 200, "{stats}");
    let charges = &stats["routes"]["POST /payments/charges/{order_id}"];
    assert_eq!(
        (charges["calls"].as_u64(), charges["executed"].as_u64()),
        (Some(4), Some(1)),
        "{stats}"
    );
    assert_eq!(charges["replayed"], 1, "{stats}");
    assert_eq!(charges["failed"], 2, "{stats}");
    assert_eq!(stats["keys"]["c"]["calls"], 2, "{stats}");
    assert_eq!(stats["orders"]["o-1"]["charged"], 1, "{stats}");
    assert_eq!(stats["orders"]["o-1"]["reserved"], 1, "{stats}");
    assert_eq!(stats["orders"]["o-2"]["refunded"], 0, "{stats}");

    signal(&services.0, "TERM");
    let exit = wait_exit(&mut services.0, Duration::from_secs(10))
        .expect("edgeflow dev services did not stop on SIGTERM");
    assert!(exit.success(), "{exit}");
}

/// Starts `edgeflow dev services --port 0` with `failure`; the process and its base URL.
fn demo_services(failure: &str) -> (KillOnDrop, String) {
    use std::io::{BufRead, BufReader};
    let mut services = KillOnDrop(
        edgeflow(
            &["dev", "services", "--port", "0"],
            &[("EDGEFLOW__DEV__DEMO_FAILURE", failure.to_string())],
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(services.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.contains(&format!("(failure mode: {failure})")),
        "{line}"
    );
    let base = line
        .split(" on ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .to_string();
    (services, base)
}

/// `slow:payments:<secs>`: the charge is taken at once and answered late, like a provider that
/// charges and then is slow to say so; refunds answer at once.
#[test]
fn a_slow_demo_service_charges_first_and_answers_late() {
    let (_services, base) = demo_services("slow:payments:2");
    let started = Instant::now();
    let charge = {
        let url = format!("{base}/payments/charges/o-slow");
        std::thread::spawn(move || {
            curl(&[
                "-X",
                "POST",
                "-H",
                "Idempotency-Key: slow-1",
                "--max-time",
                "1",
                &url,
            ])
        })
    };
    // The caller gives up after 1 s (as the worker's timeout would); the charge stands.
    let (status, _) = charge.join().unwrap();
    assert_eq!(status, 0, "answered before the delay");
    let (_, stats) = curl(&[&format!("{base}/_stats")]);
    assert_eq!(stats["orders"]["o-slow"]["charged"], 1, "{stats}");
    assert!(started.elapsed() < Duration::from_secs(2));

    let refund_started = Instant::now();
    let (status, body) = curl(&["-X", "POST", &format!("{base}/payments/refunds/o-slow")]);
    assert_eq!((status, body["outcome"].as_str()), (200, Some("refunded")));
    // At once: well under the 2 s the slow charge takes.
    assert!(refund_started.elapsed() < Duration::from_millis(1500));
    let (status, body) = curl(&[
        "-X",
        "POST",
        "-H",
        "Idempotency-Key: slow-2",
        &format!("{base}/payments/charges/o-late"),
    ]);
    assert_eq!((status, body["outcome"].as_str()), (200, Some("charged")));
    assert!(refund_started.elapsed() >= Duration::from_secs(2));
}

/// `errors:100`: every call to every service answers 503, compensations included, and does
/// nothing; a bad mode is refused at start-up naming the setting.
#[test]
fn random_errors_hit_every_call_and_a_bad_mode_is_refused_with_its_key() {
    let (_services, base) = demo_services("errors:100");
    for (method, route) in [
        ("POST", "inventory/reservations/o-1"),
        ("DELETE", "inventory/reservations/o-1"),
        ("POST", "payments/charges/o-1"),
        ("POST", "payments/refunds/o-1"),
        ("POST", "shipping/notices/o-1"),
    ] {
        let (status, _) = curl(&["-X", method, &format!("{base}/{route}")]);
        assert_eq!(status, 503, "{method} {route}");
    }
    let (_, stats) = curl(&[&format!("{base}/_stats")]);
    assert_eq!(stats["totals"]["failed"], 5, "{stats}");
    assert_eq!(stats["totals"]["executed"], 0, "{stats}");

    let out = edgeflow(
        &["dev", "services", "--port", "0"],
        &[(
            "EDGEFLOW__DEV__DEMO_FAILURE",
            "slow:payments:forever".to_string(),
        )],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("dev.demo_failure") && err.contains("the delay `forever`"),
        "{err}"
    );
}
