//! `[dev]`: the ports and state folder of `edgeflow dev`, and what its demo services get wrong on
//! purpose (parsed here, once, when the settings load).

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::demo::Failure;
use crate::settings::parsed::Parsed;

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DevSettings {
    /// Where the dev stack keeps its state (Temporal's database, logs, the issuer's key).
    pub var_dir: PathBuf,
    pub temporal_ui_port: u16,
    /// Port of the dev server's HTTP API (the edge Worker talks to it).
    pub temporal_http_port: u16,
    /// The edge Worker in `wrangler dev`: the one local URL of the whole system.
    pub edge_port: u16,
    /// Start the edge Worker (needs Node.js and `edge/node_modules`).
    pub start_edge: bool,
    /// The development token issuer the edge trusts.
    pub issuer_port: u16,
    /// `aud` of development tokens.
    pub token_audience: String,
    /// The demo inventory, payments and shipping services.
    pub demo_services_port: u16,
    /// `none`, `flaky:<service>` (503 twice per order), `down:<service>` (422 every time),
    /// `slow:<service>:<secs>` (works, then answers late) or `errors:<percent>` (random 503s on
    /// every call). See `src/dev/demo.rs`.
    pub demo_failure: Parsed<Failure>,
    /// How the edge reaches Temporal: through `edgeflow gateway` (run by the dev stack) or
    /// straight to the dev server's HTTP API.
    pub edge_transport: EdgeTransport,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EdgeTransport {
    Gateway,
    TemporalHttp,
}
