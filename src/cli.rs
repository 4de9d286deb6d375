//! The command line: every subcommand and its flags, in one place.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "edgeflow", version, about = "A Temporal worker in Rust, fronted by a Cloudflare edge Worker")]
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
    /// Probe an HTTP endpoint: exit 0 on a 2xx answer, 1 otherwise. For container health checks.
    Health {
        #[arg(long, default_value = "http://127.0.0.1:9464/readyz")]
        url: String,
        #[arg(long, default_value_t = 3)]
        timeout_secs: u64,
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
