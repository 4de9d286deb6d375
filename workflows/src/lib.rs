//! edgeflow's workflows: deterministic code, no I/O.
//!
//! Workflow code here never reads a clock, draws randomness, touches the network or spawns
//! tasks: it only calls the SDK (activities, timers, signals, queries). The Rust SDK fails a
//! workflow task that breaks this at run time; the replay tests catch it before a deploy.
//!
//! - [`echo`]: one `echo` activity; a deployment check and the benchmark workload.

pub mod echo;

pub use echo::EchoWorkflow;
