//! edgeflow's workflows: deterministic code, no I/O.
//!
//! Workflow code here never reads a clock, draws randomness, touches the network or spawns
//! tasks: it only calls the SDK (activities, timers, signals, queries). The Rust SDK fails a
//! workflow task that breaks this at run time; the replay tests catch it before a deploy.
//!
//! - [`catalog`]: every workflow's contract (names and JSON Schemas), for `edgeflow schema export`.
//! - [`dropped`]: signals dropped for breaking the input rules, logged and counted.
//! - [`fanout`]: three `http.call`s in parallel, then `echo`; the benchmarks' I/O workload.
//! - [`echo`]: one `echo` activity; a deployment check and the benchmark workload.
//! - [`edge`]: typed helpers for the activities the edge Worker runs (`edge::kv_put`).
//! - [`report`]: a named read query emailed; the scheduled workflow (`[schedules.*]`).
//! - [`order`]: the flagship: record, confirm, approve, three jobs with a saga, notify the edge.

pub mod catalog;
pub mod dropped;
pub mod echo;
pub mod edge;
pub mod fanout;
#[cfg(debug_assertions)]
pub mod incompatible_order;
pub mod order;
pub mod report;

pub use echo::EchoWorkflow;
pub use fanout::FanoutWorkflow;
pub use order::OrderWorkflow;
pub use report::ReportWorkflow;

use edgeflow_activities::{InputError, Untrusted};
use temporalio_sdk::ApplicationFailure;

/// A run's input that broke the input rules (see [`Untrusted`]): the run fails at once with
/// [`InputError::into_failure`] (type `InvalidInput`, every offending field in its details),
/// instead of failing its workflow tasks forever.
// The SDK's failure type is what a workflow returns; boxing it here would only move the size.
#[allow(clippy::result_large_err)]
pub(crate) fn accept<T>(input: Untrusted<T>) -> Result<T, ApplicationFailure> {
    input.0.map_err(InputError::into_failure)
}
