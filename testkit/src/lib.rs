//! Real servers on loopback for edgeflow's tests.
//!
//! Each helper starts a private server on a free port, waits until it answers, and stops it on
//! drop, so a test binary never depends on anything already running on the machine:
//! - [`temporal`]: a Temporal dev server (the `temporal` CLI from `.tools/venv`),
//! - [`postgres`]: a throw-away PostgreSQL cluster run as the `postgres` user,
//! - [`smtp`]: an aiosmtpd SMTP server recording each message as a JSON file,
//! - [`grpc_proxy`]: a gRPC proxy that records the credentials a client sends;
//! - [`otlp`]: an OTLP trace receiver (gRPC and HTTP) that keeps the spans it receives.

pub mod grpc_proxy;
pub mod otlp;
pub mod postgres;
pub mod smtp;
pub mod temporal;
pub mod tools;
