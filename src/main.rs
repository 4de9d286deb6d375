//! The `edgeflow` binary: settings → telemetry → connect → register → run until a signal.
//!
//! Grouped by role:
//! - [`cli`]: the command line, and the operator commands that talk to Temporal as a client
//!   (`start`, `signal`, `status`, `history`: [`cli::operator`]), `schema` ([`cli::schema`]) and
//!   `replay` ([`cli::replay`]).
//! - [`worker`]: the worker runtime (poll, readiness, drain), what it registers
//!   ([`worker::registry`]) and every activity attempt's logs and metrics ([`worker::observe`]).
//! - [`gateway`]: `edgeflow gateway`, the edge's HTTP door to any Temporal cluster.
//! - [`dev`]: `edgeflow dev`, the local stack, with its demo services ([`dev::demo`]) and token
//!   issuer.
//! - Shared by all of them: [`settings`] (the layered `Settings` tree: loading, schema, redaction;
//!   each section's type and checks live with its feature, e.g. [`gateway::settings`]),
//!   [`temporal_env`] (Temporal's standard client configuration as a settings layer),
//!   [`connection`] (the Temporal connection and credential rotation), [`telemetry`] (logs and
//!   traces: OTLP export, the SDK's OpenTelemetry plugin), [`ops`] (`/healthz`, `/readyz`,
//!   `/metrics`), [`payload`] (JSON as Temporal payloads) and [`schedules`] (`edgeflow schedules
//!   sync`, also run by the worker at start).
//! - [`codec`]: payload encryption on the data converter of the worker's and the operator
//!   commands' clients (the gateway holds no key and never uses it).

mod cli;
mod codec;
mod connection;
mod dev;
mod gateway;
mod ops;
mod payload;
mod schedules;
mod settings;
mod telemetry;
mod temporal_env;
mod worker;

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tokio_util::sync::CancellationToken;

use cli::{Cli, Command, ConfigCommand, DevCommand, SchedulesCommand, SchemaCommand};
use cli::{operator, replay, schema};
use settings::{Settings, Sources};

/// Exit code for bad settings, distinct from a runtime failure (1).
const EXIT_BAD_SETTINGS: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .and_then(|runtime| runtime.block_on(run(cli)));
    result.unwrap_or_else(report)
}

/// The one place a failed command is reported. Bad settings exit 2 with every problem listed;
/// anything else exits 1. Once `worker`, `dev` or `gateway` have set up logging, the failure is a
/// log line (JSON in production), like everything else they say; before that, it goes to stderr.
fn report(error: anyhow::Error) -> ExitCode {
    if let Some(errors) = error.downcast_ref::<settings::error::SettingsErrors>() {
        eprint!("edgeflow: {errors}");
        return ExitCode::from(EXIT_BAD_SETTINGS);
    }
    if tracing::dispatcher::has_been_set() {
        tracing::error!(error = %telemetry::chain(&error), "edgeflow failed");
    } else {
        eprintln!("edgeflow: {error:#}");
    }
    ExitCode::FAILURE
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Health { url, timeout_secs } => operator::health(&url, timeout_secs).await,
        Command::Config {
            command: ConfigCommand::Check { config },
        } => {
            let settings = Settings::load(&Sources::from_env(config))?;
            println!("{}", serde_json::to_string_pretty(&settings.redacted())?);
            let (compression, why) = connection::compression(&settings.temporal);
            eprintln!("gRPC compression: {compression:?} ({why})");
            eprintln!("payload encryption: {}", settings.encryption.describe());
            eprintln!("settings are valid");
            Ok(ExitCode::SUCCESS)
        }
        Command::Worker { config } => {
            serve(Settings::load(&Sources::from_env(config))?, false).await
        }
        Command::Gateway { config } => {
            serve_gateway(Settings::load(&Sources::from_env(config))?).await
        }
        Command::Dev {
            command: None,
            config,
        } => serve(Settings::load(&dev_sources(config))?, true).await,
        Command::Dev {
            command:
                Some(DevCommand::Token {
                    roles,
                    subject,
                    email,
                    ttl_secs,
                }),
            config,
        } => {
            let settings = Settings::load(&dev_sources(config))?;
            let token = dev::token(&settings, &subject, email.as_deref(), &roles, ttl_secs)?;
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Dev {
            command: Some(DevCommand::Server(args)),
            ..
        } => {
            let stop = CancellationToken::new();
            tokio::spawn(stop_on_signal(stop.clone()));
            // Here, on the main thread (block_on runs this future on it): see dev::server::run.
            dev::server::run(args, stop).await
        }
        Command::Dev {
            command: Some(DevCommand::Services { port }),
            config,
        } => {
            let settings = Settings::load(&dev_sources(config))?;
            let stop = CancellationToken::new();
            tokio::spawn(stop_on_signal(stop.clone()));
            dev::serve_demo_services(&settings, port, stop).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::History { id, out, config } => {
            operator::save_history(Settings::load(&Sources::from_env(config))?, id, out).await
        }
        Command::Replay { paths, config } => {
            let settings = Settings::load(&Sources::from_env(config))?;
            replay::run(&paths, &settings.encryption).await
        }
        Command::Schedules {
            command: SchedulesCommand::Sync { config },
        } => {
            let settings = Settings::load(&Sources::from_env(config))?;
            let (client, codec) = operator::client_and_codec(&settings).await?;
            let report = schedules::sync(
                &settings.schedules,
                settings.workflow_task_queue(),
                &client,
                codec.as_ref().and_then(|c| c.encrypts_with()),
            )
            .await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Start {
            workflow,
            input,
            id,
            task_queue,
            wait,
            config,
        } => {
            let settings = Settings::load(&Sources::from_env(config))?;
            operator::start(settings, workflow, input, id, task_queue, wait).await
        }
        Command::Signal {
            id,
            name,
            input,
            config,
        } => operator::signal(Settings::load(&Sources::from_env(config))?, id, name, input).await,
        Command::Schema {
            command: SchemaCommand::Export { dir, config },
        } => {
            let written = schema::export(&Settings::load(&Sources::from_env(config))?, &dir)?;
            eprintln!("wrote {written} files to {}", dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema {
            command:
                SchemaCommand::Check {
                    workflow,
                    message,
                    file,
                },
        } => {
            let all_valid = match file.filter(|f| f.as_os_str() != "-") {
                Some(path) => {
                    let file = std::fs::File::open(&path)
                        .with_context(|| format!("opening {}", path.display()))?;
                    schema::check(
                        &workflow,
                        message.as_deref(),
                        std::io::BufReader::new(file),
                        std::io::stdout().lock(),
                    )?
                }
                None => schema::check(
                    &workflow,
                    message.as_deref(),
                    std::io::stdin().lock(),
                    std::io::stdout().lock(),
                )?,
            };
            Ok(if all_valid {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Status { id, config } => {
            operator::status(Settings::load(&Sources::from_env(config))?, id).await
        }
    }
}

/// `worker` and `dev`: telemetry → run until a signal.
async fn serve(settings: Settings, dev_stack: bool) -> anyhow::Result<ExitCode> {
    let identity = connection::identity(&settings, worker::PROGRAM);
    let telemetry = telemetry::init(&settings.telemetry, &identity)?;
    let stop = CancellationToken::new();
    tokio::spawn(stop_on_signal(stop.clone()));
    if dev_stack {
        dev::run(settings, &telemetry, stop).await?;
    } else {
        worker::run(settings, &telemetry, stop).await?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `gateway`: the key source for the edge's tokens, and no payload key → telemetry → serve until
/// a signal.
async fn serve_gateway(settings: Settings) -> anyhow::Result<ExitCode> {
    let mut problems = settings.gateway.check_serving();
    if !settings.encryption.keys.is_empty() {
        // It passes the edge's ciphertext through and must never be able to read it.
        problems.push(settings::error::problem(
            "encryption.keys",
            "the gateway never holds a payload key: give [encryption] to the worker only (docs/encryption.md, \"Who holds which key\")",
        ));
    }
    if !problems.is_empty() {
        return Err(settings::error::SettingsErrors(problems).into());
    }
    let identity = connection::identity(&settings, gateway::PROGRAM);
    let _telemetry = telemetry::init(&settings.telemetry, &identity)?;
    let stop = CancellationToken::new();
    tokio::spawn(stop_on_signal(stop.clone()));
    gateway::run(settings, stop).await?;
    Ok(ExitCode::SUCCESS)
}

/// The `dev` commands run on config/dev.toml unless EDGEFLOW_ENV says otherwise.
fn dev_sources(config: Option<std::path::PathBuf>) -> Sources {
    let mut sources = Sources::from_env(config);
    sources.env.get_or_insert_with(|| "dev".to_string());
    sources
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
