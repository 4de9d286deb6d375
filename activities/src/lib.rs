//! edgeflow's activities: the only code in the worker that talks to other systems.
//!
//! Four families, one module each, each a struct holding its clients:
//! - [`http`]: calls named microservices (`http.call`); the host is fixed by settings, paths are
//!   templated and checked, every request carries an `Idempotency-Key`.
//! - [`db`]: runs named SQL statements from `config/queries/` on PostgreSQL or SQLite
//!   (`db.execute`), recording an idempotency ledger row in the same transaction.
//! - [`email`]: renders a template from `config/templates/` and sends it over SMTP, the Resend
//!   API or into an outbox folder (`email.send`), with a deterministic `Message-ID` and a
//!   sent-ledger.
//! - [`webhook`]: POSTs Standard-Webhooks-signed events to named endpoints (`webhook.notify`).
//!
//! And [`edge`]: the `edge.*` activities the edge Worker runs, one per entry of its committed
//! manifest, which the worker carries to it as signed requests.
//!
//! Shared by all:
//! - [`failure`]: the one place that decides whether a failure is retryable, and how an attempt
//!   ended ([`Outcome`], which the worker's activity interceptor reports on `/metrics` and in logs);
//! - [`settings`]: the validation error type every settings check reports;
//! - [`context`]: what an activity knows about its caller (workflow id, attempt, heartbeats,
//!   cancellation), from Temporal or built by hand in tests;
//! - [`Untrusted`]: input from any client, checked against its type's JSON Schema without ever
//!   failing to decode (workflow inputs, signal and update payloads, activity inputs); a refused
//!   input fails as [`INVALID_INPUT`] with [`InvalidInputDetails`], wherever it was refused.
//!
//! Without the default `runtime` feature only the contract is built: the [`Activity`]
//! definitions (type names with input and output types) that workflows call, and the input and
//! output types themselves. Type names are listed in [`names`].

pub mod db;
pub mod echo;
pub mod edge;
pub mod email;
pub mod http;
mod untrusted;
pub mod webhook;

#[cfg(feature = "runtime")]
mod bundle;
#[cfg(feature = "runtime")]
pub mod context;
#[cfg(feature = "runtime")]
pub mod failure;
#[cfg(feature = "runtime")]
mod idempotency;
#[cfg(feature = "runtime")]
pub mod settings;

#[cfg(feature = "runtime")]
pub use bundle::{Activities, ActivitiesSettings, BuildError};
#[cfg(feature = "runtime")]
pub use context::CallContext;
#[cfg(feature = "runtime")]
pub use failure::{Failure, Outcome, Retry};
#[cfg(feature = "runtime")]
pub use idempotency::IdempotencyKey;
#[cfg(feature = "runtime")]
pub use settings::SettingError;
pub use untrusted::{
    INVALID_INPUT, InputError, InputProblem, InvalidInputDetails, MAX_SAFE_INTEGER, Untrusted,
};

use temporalio_common::ActivityError;
use temporalio_macros::activity_definitions;

/// The registered activity type names: a contract with workflows in any Temporal SDK.
pub mod names {
    /// [`crate::http::HttpCallInput`] → [`crate::http::HttpCallOutput`].
    pub const HTTP_CALL: &str = "http.call";
    /// [`crate::db::DbExecuteInput`] → [`crate::db::DbExecuteOutput`].
    pub const DB_EXECUTE: &str = "db.execute";
    /// [`crate::email::EmailSendInput`] → [`crate::email::EmailSendOutput`].
    pub const EMAIL_SEND: &str = "email.send";
    /// [`crate::webhook::WebhookNotifyInput`] → [`crate::webhook::WebhookNotifyOutput`].
    pub const WEBHOOK_NOTIFY: &str = "webhook.notify";
    /// Every name above, in a stable order.
    pub const ALL: [&str; 4] = [HTTP_CALL, DB_EXECUTE, EMAIL_SEND, WEBHOOK_NOTIFY];
}

/// The activities as workflows see them: call these from workflow code, e.g.
/// `ctx.execute_activity(Activity::http_call, input, options)`.
///
/// They are declarations only (available without the `runtime` feature); the worker registers
/// the implementations ([`Activities`]) under the same type names.
pub struct Activity;

#[activity_definitions]
impl Activity {
    /// Call a named microservice. See [`http`].
    #[activity(name = names::HTTP_CALL)]
    pub fn http_call(input: http::HttpCallInput) -> Result<http::HttpCallOutput, ActivityError> {
        unimplemented!()
    }

    /// Run named SQL statements in one transaction. See [`db`].
    #[activity(name = names::DB_EXECUTE)]
    pub fn db_execute(input: db::DbExecuteInput) -> Result<db::DbExecuteOutput, ActivityError> {
        unimplemented!()
    }

    /// Render a template and send it. See [`email`].
    #[activity(name = names::EMAIL_SEND)]
    pub fn email_send(
        input: email::EmailSendInput,
    ) -> Result<email::EmailSendOutput, ActivityError> {
        unimplemented!()
    }

    /// Deliver a signed event to a named endpoint. See [`webhook`].
    #[activity(name = names::WEBHOOK_NOTIFY)]
    pub fn webhook_notify(
        input: webhook::WebhookNotifyInput,
    ) -> Result<webhook::WebhookNotifyOutput, ActivityError> {
        unimplemented!()
    }
}

/// One activity's JSON Schemas, for `edgeflow schema export`.
#[derive(Debug, Clone)]
pub struct ActivitySchema {
    /// The registered activity type name, e.g. `http.call`.
    pub name: &'static str,
    /// JSON Schema of the input.
    pub input: schemars::Schema,
    /// JSON Schema of the output.
    pub output: schemars::Schema,
}

/// The input and output JSON Schemas of every activity, in [`names::ALL`] order.
pub fn activity_schemas() -> Vec<ActivitySchema> {
    fn schema<I: schemars::JsonSchema, O: schemars::JsonSchema>(
        name: &'static str,
    ) -> ActivitySchema {
        ActivitySchema {
            name,
            input: schemars::schema_for!(I),
            output: schemars::schema_for!(O),
        }
    }
    vec![
        schema::<http::HttpCallInput, http::HttpCallOutput>(names::HTTP_CALL),
        schema::<db::DbExecuteInput, db::DbExecuteOutput>(names::DB_EXECUTE),
        schema::<email::EmailSendInput, email::EmailSendOutput>(names::EMAIL_SEND),
        schema::<webhook::WebhookNotifyInput, webhook::WebhookNotifyOutput>(names::WEBHOOK_NOTIFY),
    ]
}

/// The JSON Schema of an event body the worker sends, for `edgeflow schema export`.
#[derive(Debug, Clone)]
pub struct EventSchema {
    /// What the events are, e.g. `workflow.completion`: the file's name.
    pub name: &'static str,
    /// The event types (`type`) that have this body.
    pub types: Vec<&'static str>,
    /// JSON Schema of the body.
    pub body: schemars::Schema,
}

/// Every event body with a contract: the completion event the edge receives.
pub fn event_schemas() -> Vec<EventSchema> {
    vec![EventSchema {
        name: "workflow.completion",
        types: vec![webhook::WORKFLOW_COMPLETED, webhook::WORKFLOW_FAILED],
        body: schemars::schema_for!(webhook::CompletionEvent),
    }]
}

/// The JSON Schema of the `details` of an application-failure type, for `edgeflow schema export`.
#[derive(Debug, Clone)]
pub struct FailureSchema {
    /// The failure type, e.g. `InvalidInput`.
    pub type_name: &'static str,
    /// JSON Schema of the one `details` payload.
    pub details: schemars::Schema,
}

/// Every failure type whose details are a contract: [`INVALID_INPUT`].
pub fn failure_schemas() -> Vec<FailureSchema> {
    vec![FailureSchema {
        type_name: INVALID_INPUT,
        details: schemars::schema_for!(InvalidInputDetails),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use temporalio_common::ActivityDefinition;

    #[test]
    fn definitions_carry_the_contract_names() {
        assert_eq!(Activity::http_call.name(), "http.call");
        assert_eq!(Activity::db_execute.name(), "db.execute");
        assert_eq!(Activity::email_send.name(), "email.send");
        assert_eq!(Activity::webhook_notify.name(), "webhook.notify");
    }

    #[test]
    fn every_activity_has_object_schemas_requiring_a_step() {
        let schemas = activity_schemas();
        assert_eq!(schemas.len(), names::ALL.len());
        for s in schemas {
            let input = serde_json::to_value(&s.input).unwrap();
            assert_eq!(input["type"], "object", "{}", s.name);
            let required = input["required"].as_array().unwrap();
            assert!(
                required.iter().any(|r| r == "step"),
                "{} input lacks step",
                s.name
            );
            let output = serde_json::to_value(&s.output).unwrap();
            assert_eq!(output["type"], "object", "{}", s.name);
        }
    }
}
