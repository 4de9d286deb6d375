//! The `edgeflow` binary: settings → telemetry → connect → register → run until a signal.
//!
//! - [`cli`]: the command line.
//! - [`settings`]: the layered `Settings` tree and its checks.
//! - [`telemetry`]: logs and traces (OTLP export, the SDK's OpenTelemetry plugin).
//! - [`connection`]: the Temporal connection and credential rotation.
//! - [`temporal_env`]: Temporal's standard client configuration as a settings layer.
//! - [`worker`]: the worker runtime (poll, readiness, drain).
//! - [`registry`]: the workflows and activity families the worker registers.
//! - [`observe`]: every activity attempt's log fields and metrics.
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics`.
//! - [`operator`]: `start`, `signal`, `status` over gRPC.
//! - [`gateway`]: `edgeflow gateway`, the edge's HTTP door to any Temporal cluster.
//! - [`dev`]: `edgeflow dev`, the local stack.
//! - [`schema`]: `edgeflow schema export`, the contract the edge Worker consumes.
//! - [`replay`]: `edgeflow replay`, the nondeterminism guard.
//! - [`schedules`]: `edgeflow schedules sync`.
//! - [`demo`], [`dev_issuer`]: the demo services and token issuer of `edgeflow dev`.

mod cli;
mod connection;
mod demo;
mod dev;
mod dev_issuer;
mod gateway;
mod observe;
mod operator;
mod ops;
mod registry;
mod replay;
mod schedules;
mod schema;
mod settings;
mod telemetry;
mod temporal_env;
mod worker;

use std::process::ExitCode;

use clap::Parser;
use tokio_util::sync::CancellationToken;

use cli::{Cli, Command, ConfigCommand, DevCommand, SchedulesCommand, SchemaCommand};
use settings::{Settings, Sources};

/// Exit code for bad settings, distinct from a runtime failure (1).
const EXIT_BAD_SETTINGS: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
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
        Command::Config {
            command: ConfigCommand::Check { config },
        } => match load(config) {
            Ok(settings) => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&settings.redacted()).unwrap_or_default()
                );
                let (compression, why) = connection::compression(&settings.temporal);
                eprintln!("gRPC compression: {compression:?} ({why})");
                eprintln!("settings are valid");
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Worker { config } => serve(config, false).await,
        Command::Gateway { config } => serve_gateway(config).await,
        Command::Dev {
            command: None,
            config,
        } => serve(config, true).await,
        Command::Dev {
            command:
                Some(DevCommand::Token {
                    roles,
                    subject,
                    email,
                    ttl_secs,
                }),
            config,
        } => match load_from(&dev_sources(config)) {
            Ok(s) => match dev::token(&s, &subject, email.as_deref(), &roles, ttl_secs) {
                Ok(token) => {
                    println!("{token}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("edgeflow: {e:#}");
                    ExitCode::FAILURE
                }
            },
            Err(code) => code,
        },
        Command::Dev {
            command: Some(DevCommand::Services { port }),
            config,
        } => {
            let settings = match load_from(&dev_sources(config)) {
                Ok(s) => s,
                Err(code) => return code,
            };
            let stop = CancellationToken::new();
            tokio::spawn(stop_on_signal(stop.clone()));
            match dev::serve_demo_services(&settings, port, stop).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("edgeflow: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::History { id, out, config } => {
            with_settings(config, |s| operator::save_history(s, id, out)).await
        }
        Command::Replay { paths } => match replay::run(&paths).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("edgeflow: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Schedules {
            command: SchedulesCommand::Sync { config },
        } => {
            with_settings(config, |s| async move {
                let client = operator::client(&s).await?;
                let report = schedules::sync(&s, &client).await?;
                println!("{}", serde_json::to_string_pretty(&report)?);
                Ok(ExitCode::SUCCESS)
            })
            .await
        }
        Command::Start {
            workflow,
            input,
            id,
            task_queue,
            wait,
            config,
        } => {
            with_settings(config, |s| {
                operator::start(s, workflow, input, id, task_queue, wait)
            })
            .await
        }
        Command::Signal {
            id,
            name,
            input,
            config,
        } => with_settings(config, |s| operator::signal(s, id, name, input)).await,
        Command::Schema {
            command: SchemaCommand::Export { dir, config },
        } => {
            with_settings(config, |s| async move {
                let written = schema::export(&s, &dir)?;
                eprintln!("wrote {written} files to {}", dir.display());
                Ok(ExitCode::SUCCESS)
            })
            .await
        }
        Command::Schema {
            command:
                SchemaCommand::Check {
                    workflow,
                    message,
                    file,
                },
        } => {
            let result = match file.filter(|f| f.as_os_str() != "-") {
                Some(path) => std::fs::File::open(&path)
                    .map_err(|e| anyhow::anyhow!("opening {}: {e}", path.display()))
                    .and_then(|f| {
                        schema::check(
                            &workflow,
                            message.as_deref(),
                            std::io::BufReader::new(f),
                            std::io::stdout().lock(),
                        )
                    }),
                None => schema::check(
                    &workflow,
                    message.as_deref(),
                    std::io::stdin().lock(),
                    std::io::stdout().lock(),
                ),
            };
            match result {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("edgeflow: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Status { id, config } => with_settings(config, |s| operator::status(s, id)).await,
    }
}

/// `worker` and `dev`: settings → telemetry → run until a signal.
async fn serve(config: Option<std::path::PathBuf>, dev_stack: bool) -> ExitCode {
    let sources = if dev_stack {
        dev_sources(config)
    } else {
        Sources::from_env(config)
    };
    let settings = match load_from(&sources) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let telemetry = match telemetry::init(&settings.telemetry, &worker::identity(&settings)) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("edgeflow: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let stop = CancellationToken::new();
    tokio::spawn(stop_on_signal(stop.clone()));
    let result = if dev_stack {
        dev::run(settings, &telemetry, stop).await
    } else {
        worker::run(settings, &telemetry, stop).await
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %telemetry::chain(&e), "edgeflow failed");
            ExitCode::FAILURE
        }
    }
}

/// `gateway`: settings (with a key source for the edge's tokens) → telemetry → serve until a signal.
async fn serve_gateway(config: Option<std::path::PathBuf>) -> ExitCode {
    let settings = match load(config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let missing = settings.gateway.check_serving();
    if !missing.is_empty() {
        eprint!("edgeflow: {}", settings::SettingsErrors(missing));
        return ExitCode::from(EXIT_BAD_SETTINGS);
    }
    // The gateway's instance is named like a worker's: edgeflow-<pid>@<host>.
    let telemetry = match telemetry::init(&settings.telemetry, &worker::identity(&settings)) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("edgeflow: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let stop = CancellationToken::new();
    tokio::spawn(stop_on_signal(stop.clone()));
    match gateway::run(settings, stop).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %telemetry::chain(&e), "edgeflow gateway failed");
            drop(telemetry);
            ExitCode::FAILURE
        }
    }
}

/// The `dev` commands run on config/dev.toml unless EDGEFLOW_ENV says otherwise.
fn dev_sources(config: Option<std::path::PathBuf>) -> Sources {
    let mut sources = Sources::from_env(config);
    sources.env.get_or_insert_with(|| "dev".to_string());
    sources
}

/// Loads settings, printing every problem and returning exit code 2 when they are bad.
fn load(config: Option<std::path::PathBuf>) -> Result<Settings, ExitCode> {
    load_from(&Sources::from_env(config))
}

fn load_from(sources: &Sources) -> Result<Settings, ExitCode> {
    Settings::load(sources).map_err(|errors| {
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
