//! `email.send` input and output: the contract with workflows.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Render a template and send it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailSendInput {
    /// Step key, unique within the workflow; with the workflow id it derives the `Message-ID`
    /// and keys the sent-ledger, so a retry after a successful send does not send again.
    pub step: String,
    /// Template name: a folder under `config/templates/`.
    pub template: String,
    /// Recipients, RFC 5322 (`ada@example.com` or `Ada Lovelace <ada@example.com>`).
    pub to: Vec<String>,
    /// Carbon-copy recipients.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cc: Vec<String>,
    /// Blind-carbon-copy recipients (envelope only, never in the headers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bcc: Vec<String>,
    /// Reply-To address; defaults to `email.reply_to`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// Template variables. A variable the template uses but `vars` lacks is an error, not an
    /// empty string.
    #[serde(default)]
    pub vars: Map<String, Value>,
}

/// What was sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EmailSendOutput {
    /// The deterministic `Message-ID` (with angle brackets).
    pub message_id: String,
    /// `smtp`, `resend` or `outbox`.
    pub transport: String,
    /// The provider's id for the message (Resend's email id; the outbox file name), if any.
    pub provider_id: Option<String>,
    /// True when the sent-ledger showed an earlier attempt already sent it (nothing was sent
    /// this time).
    pub replayed: bool,
}
