//! `edgeflow dev server`: only a Temporal dev server, started edgeflow's one way
//! ([`edgeflow_devserver`]), for harnesses written in other languages (the edge's e2e suite, the
//! benchmark and chaos harnesses): it prints where the server listens and stops it on a signal.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::cli::DevServerArgs;

/// Starts the server, prints where it listens, and runs until `stop` (SIGTERM/SIGINT) or until the
/// server exits by itself (exit 1: a harness that killed it sees this process end too).
///
/// Called on the process's main thread (see `main`), which lives as long as the process: the
/// server is started to die with it, so not even a SIGKILL of this process leaves it running.
pub async fn run(args: DevServerArgs, stop: CancellationToken) -> anyhow::Result<ExitCode> {
    let temp = tempfile::tempdir().context("creating a temporary folder for the server's log")?;
    let log = args
        .log
        .clone()
        .unwrap_or_else(|| temp.path().join("temporal.log"));
    let mut options = edgeflow_devserver::Options::new(
        edgeflow_devserver::cli_path(std::path::Path::new(".")),
        log.clone(),
    );
    options.grpc_port = args.port;
    options.http_port = args.http_port;
    options.ui_port = args.ui_port;
    options.namespace = args.namespace.clone();
    options.db_file = args.db_filename.clone();
    options.log_level = args.log_level.clone();
    options.dynamic_config = args.dynamic_config.clone();
    options.die_with_starting_thread = true;
    let mut server = edgeflow_devserver::DevServer::start(options)?;
    for lost in server.lost_races() {
        eprintln!("[dev server] {lost}\n[dev server] it lost a race for a port; started again");
    }
    let ports = server.ports();
    if args.json {
        let line = serde_json::json!({
            "address": server.grpc_address().to_string(),
            "grpc_port": ports.grpc,
            "http_port": ports.http,
            "http_url": server.http_url(),
            "ui_port": ports.ui,
            "namespace": server.namespace(),
            "pid": server.pid(),
            "log": log,
            "starts": server.starts(),
        });
        println!("{line}");
    } else {
        println!(
            "Temporal dev server: gRPC {}, HTTP API {}, namespace {}, log {}",
            server.grpc_address(),
            server.http_url(),
            server.namespace(),
            log.display()
        );
    }
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                if let Some(status) = server.exited() {
                    eprintln!("[dev server] the Temporal dev server exited by itself ({status})");
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
    }
    server.stop(Duration::from_secs(10));
    Ok(ExitCode::SUCCESS)
}
