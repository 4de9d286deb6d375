//! The `edgeflow` binary: settings → telemetry → connect → register → run until a signal.
//!
//! - [`cli`]: the command line.
//! - [`settings`]: the layered `Settings` tree and its checks.
//! - [`telemetry`]: logs and traces.
//! - [`connection`]: the Temporal connection and credential rotation.
//! - [`worker`]: the worker runtime (poll, readiness, drain).
//! - [`registry`]: the workflows and activity families the worker registers.
//! - [`observe`]: per-activity log span and metrics.
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics`.
//! - [`operator`]: `start`, `signal`, `status` over gRPC.

mod cli;
mod connection;
mod observe;
mod operator;
mod ops;
mod registry;
mod settings;
mod telemetry;
mod worker;

use std::process::ExitCode;

use clap::Parser;
use tokio_util::sync::CancellationToken;

use cli::{Cli, Command, ConfigCommand};
use settings::{Settings, Sources};

/// Exit code for bad settings, distinct from a runtime failure (1).
const EXIT_BAD_SETTINGS: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("edgeflow: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Health { url, timeout_secs } => operator::health(&url, timeout_secs).await,
        Command::Config { command: ConfigCommand::Check { config } } => match load(config) {
            Ok(settings) => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&settings.redacted()).unwrap_or_default()
                );
                eprintln!("settings are valid");
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Worker { config } => {
            let settings = match load(config) {
                Ok(s) => s,
                Err(code) => return code,
            };
            let telemetry = match telemetry::init(&settings.telemetry) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("edgeflow: {e:#}");
                    return ExitCode::FAILURE;
                }
            };
            let stop = CancellationToken::new();
            tokio::spawn(stop_on_signal(stop.clone()));
            match worker::run(settings, &telemetry, stop).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %telemetry::chain(&e), "worker failed");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Start { workflow, input, id, task_queue, wait, config } => {
            with_settings(config, |s| operator::start(s, workflow, input, id, task_queue, wait)).await
        }
        Command::Signal { id, name, input, config } => {
            with_settings(config, |s| operator::signal(s, id, name, input)).await
        }
        Command::Status { id, config } => with_settings(config, |s| operator::status(s, id)).await,
    }
}

/// Loads settings, printing every problem and returning exit code 2 when they are bad.
fn load(config: Option<std::path::PathBuf>) -> Result<Settings, ExitCode> {
    Settings::load(&Sources::from_env(config)).map_err(|errors| {
        eprint!("edgeflow: {errors}");
        ExitCode::from(EXIT_BAD_SETTINGS)
    })
}

async fn with_settings<F, Fut>(config: Option<std::path::PathBuf>, f: F) -> ExitCode
where
    F: FnOnce(Settings) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<ExitCode>>,
{
    let settings = match load(config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    match f(settings).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("edgeflow: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Cancels `stop` on the first SIGTERM or SIGINT.
async fn stop_on_signal(stop: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!(signal = "SIGTERM", "signal received"),
        _ = tokio::signal::ctrl_c() => tracing::info!(signal = "SIGINT", "signal received"),
    }
    stop.cancel();
}
