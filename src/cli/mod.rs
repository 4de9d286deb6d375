//! The command line: every subcommand and its flags, in one place.

pub mod operator;
pub mod replay;
pub mod schema;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "edgeflow",
    version,
    about = "A Temporal worker in Rust, fronted by a Cloudflare edge Worker"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Connect to Temporal and run the workflows and activities of every configured task queue.
    Worker {
        /// A TOML file layered over config/default.toml, config/{EDGEFLOW_ENV}.toml and EDGEFLOW__* variables.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Serve the edge Worker's Temporal operations over HTTP (Temporal's HTTP API shape), calling
    /// Temporal over gRPC with `[temporal]`'s credentials; each request needs a token the edge
    /// signed. Drains on SIGTERM/SIGINT.
    Gateway {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Run the whole system locally: a Temporal dev server (or the one already running) and the
    /// worker on the `dev` settings. Ctrl-C stops everything it started.
    Dev {
        #[command(subcommand)]
        command: Option<DevCommand>,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Replay recorded histories (files or folders of JSON) against the current workflow code,
    /// decrypting with `[encryption]`'s keys; exit 1 if any is nondeterministic.
    Replay {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Settings to read `[encryption]` keys from, for histories of encrypted runs.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Save a workflow's history as JSON, for `edgeflow replay` (e.g. under tests/histories/).
    History {
        id: String,
        /// Where to write it.
        out: PathBuf,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Temporal Schedules declared in `[schedules.*]`.
    Schedules {
        #[command(subcommand)]
        command: SchedulesCommand,
    },
    /// Settings: check and print them.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Start a workflow; with --wait, print its result as JSON.
    Start {
        /// Workflow type, e.g. `echo` or `order`.
        workflow: String,
        /// The input as JSON, or @FILE to read it from a file.
        #[arg(long, default_value = "null")]
        input: String,
        /// Workflow id (default: `<workflow>-<random>`).
        #[arg(long)]
        id: Option<String>,
        /// Task queue (default: the first configured queue that runs workflows).
        #[arg(long)]
        task_queue: Option<String>,
        /// Wait for the workflow to end and print its result.
        #[arg(long)]
        wait: bool,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Send a signal to a running workflow.
    Signal {
        id: String,
        name: String,
        /// The payload as JSON, or @FILE.
        #[arg(long, default_value = "null")]
        input: String,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print a workflow's status (and its result once it has one) as JSON.
    Status {
        id: String,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// JSON Schemas of every workflow and activity, and the manifest the edge Worker consumes.
    Schema {
        #[command(subcommand)]
        command: SchemaCommand,
    },
    /// Probe an HTTP endpoint: exit 0 on a 2xx answer, 1 otherwise. For container health checks.
    Health {
        #[arg(long, default_value = "http://127.0.0.1:9464/readyz")]
        url: String,
        #[arg(long, default_value_t = 3)]
        timeout_secs: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// Print a bearer token from the development issuer (which `edgeflow dev` serves).
    Token {
        /// Role claims, e.g. `customer`, `approver`, `admin` (repeatable).
        #[arg(long = "role", default_value = "customer")]
        roles: Vec<String>,
        #[arg(long, default_value = "dev-user")]
        subject: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long, default_value_t = 3600)]
        ttl_secs: u64,
    },
    /// Only a Temporal dev server, started the way `edgeflow dev` and the tests start one (in
    /// memory unless `--db-filename`; edgeflow's search attributes; completion callbacks to
    /// loopback; a stopping worker's polls completed; a start that lost a port race tried again).
    /// Prints where it listens, then runs until SIGTERM/SIGINT, and stops the server.
    Server(DevServerArgs),
    /// Serve only the demo inventory, payments and shipping services (`dev.demo_failure` applies),
    /// for a worker run apart from the dev stack, e.g. the benchmark's `order` workload.
    Services {
        /// Port on 127.0.0.1 (default `dev.demo_services_port`); 0 picks a free one.
        #[arg(long)]
        port: Option<u16>,
    },
}

#[derive(Debug, clap::Args)]
pub struct DevServerArgs {
    /// Print where it listens as one line of JSON on stdout: `address` (gRPC `host:port`),
    /// `grpc_port`, `http_port`, `http_url`, `ui_port` (null when headless), `namespace`, `pid`
    /// (the server process, e.g. to measure its CPU or to kill it like a crash), `log`, `starts`.
    #[arg(long)]
    pub json: bool,
    /// gRPC port; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Port of Temporal's HTTP API; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    pub http_port: u16,
    /// Serve the web UI on this port (0 picks a free one); without it the server is headless.
    #[arg(long)]
    pub ui_port: Option<u16>,
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Persist to this SQLite file (put it on tmpfs for load: on disk the store measures fsync).
    #[arg(long)]
    pub db_filename: Option<PathBuf>,
    #[arg(long, default_value = "warn")]
    pub log_level: String,
    /// Append the server's output here (default: a file in a temporary folder, removed at exit).
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Further dynamic config, `KEY=VALUE` (repeatable).
    #[arg(long = "dynamic-config-value")]
    pub dynamic_config: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum SchedulesCommand {
    /// Create, update and delete the cluster's `edgeflow-*` Schedules to match settings.
    Sync {
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Write the schemas and `manifest.json` into DIR (the repository keeps them in `schemas/`).
    Export {
        dir: PathBuf,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Check inputs as the worker checks them: one JSON text per line of FILE (or stdin), one
    /// verdict per line on stdout (`{"ok":true}` or `{"ok":false,"errors":[{"path","message"}]}`);
    /// exit 0 when every input is valid, 1 otherwise.
    Check {
        /// Workflow type name.
        workflow: String,
        /// Check a signal's or update's payload instead of the run's input.
        #[arg(long)]
        message: Option<String>,
        /// JSON Lines; `-` or absent: stdin.
        file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the settings and print them with every secret redacted; exit 2 listing every problem.
    Check {
        #[arg(long)]
        config: Option<PathBuf>,
    },
}
