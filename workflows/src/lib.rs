//! edgeflow's workflows: deterministic code, no I/O.
//!
//! Workflow code here never reads a clock, draws randomness, touches the network or spawns
//! tasks: it only calls the SDK (activities, timers, signals, queries). The Rust SDK fails a
//! workflow task that breaks this at run time; the replay tests catch it before a deploy.
//!
//! - [`catalog`]: every workflow's contract (names and JSON Schemas), for `edgeflow schema export`.
//! - [`fanout`]: three `http.call`s in parallel, then `echo`; the benchmarks' I/O workload.
//! - [`echo`]: one `echo` activity; a deployment check and the benchmark workload.
//! - [`report`]: a named read query emailed; the scheduled workflow (`[schedules.*]`).
//! - [`order`]: the flagship: record, confirm, approve, three jobs with a saga, notify the edge.

pub mod catalog;
pub mod echo;
pub mod fanout;
pub mod order;
pub mod report;

pub use echo::EchoWorkflow;
pub use fanout::FanoutWorkflow;
pub use order::OrderWorkflow;
pub use report::ReportWorkflow;
