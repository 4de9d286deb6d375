//! edgeflow's integration tests, in one test binary: one link instead of one per file, and one
//! Temporal dev server shared by the tests that can share it (testkit's `temporal::shared`; each
//! test polls its own task queue and names its own runs). A test that restarts the server, loads
//! it on purpose or needs namespace-wide state of its own starts its own.
//!
//! Every module runs against real servers on loopback: a Temporal dev server, the `edgeflow`
//! binary cargo built for these tests, PostgreSQL, an SMTP server, the edge Worker in workerd.
//! `cargo test --test it MODULE::` runs one module.

mod common;
mod contract;
mod deploy;
mod dev;
mod drain;
mod edge_activities;
mod email;
mod encryption;
mod gateway;
mod observability;
mod order;
mod service_queues;
mod trace;
mod versioning;
mod worker;
