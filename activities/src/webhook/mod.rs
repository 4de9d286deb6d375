//! `webhook.notify`: POST a signed event to a named endpoint.
//!
//! The body is `{"type": …, "timestamp": <RFC 3339>, "data": …}`; the headers follow Standard
//! Webhooks: `webhook-id` (`msg_` + digest of workflow id + step: the same on every retry, so
//! the receiver can drop duplicates), `webhook-timestamp` (unix seconds at sending, which the
//! receiver checks for freshness) and `webhook-signature` (`v1,<base64 HMAC-SHA256>` per
//! configured secret, space-separated). The body's `timestamp` is when the workflow scheduled
//! the notification, so a retried event's body is byte-for-byte the same.
//!
//! A completion event (`workflow.completed` / `workflow.failed`) speaks only for the run that
//! sends it: its `data.workflow_id`, `data.run_id` and `data.workflow_type` are always taken from
//! the activity's own info, whatever the input says, so no workflow can report another run's
//! outcome. Any other event type is sent as given.
//!
//! A 2xx answer is delivery. Anything else, a redirect included, fails retryably (honouring
//! `Retry-After`): a receiver that is down or misconfigured may recover, and Temporal's retry
//! policy bounds the attempts.

mod model;
pub use model::{
    CompletionError, CompletionEvent, CompletionStatus, WORKFLOW_COMPLETED, WORKFLOW_FAILED,
    WebhookNotifyInput, WebhookNotifyOutput, WorkflowCompletion,
};

#[cfg(feature = "runtime")]
mod settings;
#[cfg(feature = "runtime")]
pub mod signing;

#[cfg(feature = "runtime")]
pub use runtime::{WebhookActivities, WebhookBuildError};
#[cfg(feature = "runtime")]
pub use settings::{EndpointSettings, WebhookSettings};

#[cfg(feature = "runtime")]
mod runtime {
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use chrono::{DateTime, SecondsFormat, Utc};
    use secrecy::ExposeSecret;
    use serde::Serialize;
    use temporalio_macros::activities;
    use temporalio_sdk::activities::{ActivityContext, ActivityError};
    use tracing::instrument;

    use super::signing::{SigningKey, signature_header};
    use super::{WebhookNotifyInput, WebhookNotifyOutput, WebhookSettings};
    use crate::failure::{self, Failure};
    use crate::{CallContext, Untrusted, names};

    struct Endpoint {
        url: url::Url,
        keys: Vec<SigningKey>,
        client: reqwest::Client,
    }

    /// The `webhook` family: one client and key set per endpoint. Clones share them.
    #[derive(Clone)]
    pub struct WebhookActivities {
        endpoints: Arc<HashMap<String, Endpoint>>,
    }

    /// An endpoint could not be set up.
    #[derive(Debug, thiserror::Error)]
    #[error("webhooks.{endpoint}: {message}")]
    pub struct WebhookBuildError {
        /// The endpoint name.
        pub endpoint: String,
        /// What went wrong.
        pub message: String,
    }

    /// Any event's body; a completion's is a [`super::CompletionEvent`] (the webhook tests hold
    /// the two equal).
    #[derive(Serialize)]
    struct Event<'a> {
        #[serde(rename = "type")]
        event_type: &'a str,
        timestamp: String,
        data: &'a serde_json::Value,
    }

    impl WebhookActivities {
        /// Parse every endpoint's secrets and build its client.
        pub fn new(settings: &WebhookSettings) -> Result<Self, WebhookBuildError> {
            let mut endpoints = HashMap::new();
            for (name, s) in &settings.endpoints {
                let fail = |message: String| WebhookBuildError {
                    endpoint: name.clone(),
                    message,
                };
                let url = url::Url::parse(&s.url).map_err(|e| fail(format!("url: {e}")))?;
                if s.secrets.is_empty() {
                    return Err(fail("secrets: at least one is needed".into()));
                }
                let keys = s
                    .secrets
                    .iter()
                    .map(|k| SigningKey::parse(k.expose_secret()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| fail(format!("secrets: {e}")))?;
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs_f64(s.timeout_secs))
                    .redirect(reqwest::redirect::Policy::none())
                    .user_agent(concat!("edgeflow/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| fail(e.to_string()))?;
                endpoints.insert(name.clone(), Endpoint { url, keys, client });
            }
            Ok(Self {
                endpoints: Arc::new(endpoints),
            })
        }

        /// `webhook.notify` without the SDK wrapper: what the activity does, given its caller.
        #[instrument(name = "webhook.notify", skip_all, fields(otel.kind = "client", endpoint = %input.endpoint, event_type = %input.event_type, step = %input.step))]
        pub async fn deliver_event(
            &self,
            ctx: &CallContext,
            input: WebhookNotifyInput,
        ) -> Result<WebhookNotifyOutput, Failure> {
            ctx.guard(self.deliver(ctx, input)).await
        }

        async fn deliver(
            &self,
            ctx: &CallContext,
            input: WebhookNotifyInput,
        ) -> Result<WebhookNotifyOutput, Failure> {
            let key = ctx.key(&input.step)?;
            let endpoint =
                self.endpoints
                    .get(&input.endpoint)
                    .ok_or_else(|| Failure::UnknownName {
                        kind: "endpoint",
                        name: input.endpoint.clone(),
                    })?;
            check_event_type(&input.event_type)?;
            let data = speak_for_caller(ctx, &input.event_type, input.data)?;
            let body = serde_json::to_vec(&Event {
                event_type: &input.event_type,
                timestamp: DateTime::<Utc>::from(ctx.scheduled_at)
                    .to_rfc3339_opts(SecondsFormat::Millis, true),
                data: &data,
            })
            .map_err(|e| Failure::invalid_input(format!("cannot encode the event: {e}")))?;
            let webhook_id = format!("msg_{}", key.digest());
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            let target = format!("webhook endpoint `{}`", input.endpoint);
            let mut request = endpoint.client.post(endpoint.url.clone());
            if let Some(traceparent) = crate::context::traceparent() {
                // The receiver (the edge, for completion events) continues the run's trace.
                request = request.header("traceparent", traceparent);
            }
            let response = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header("webhook-id", &webhook_id)
                .header("webhook-timestamp", now.to_string())
                .header(
                    "webhook-signature",
                    signature_header(&endpoint.keys, &webhook_id, now, &body),
                )
                .body(body)
                .send()
                .await
                .map_err(|e| failure::from_reqwest(&target, &e))?;
            let status = response.status();
            if status.is_success() {
                return Ok(WebhookNotifyOutput {
                    webhook_id,
                    status: status.as_u16(),
                });
            }
            let retry_after = failure::retry_after(response.headers());
            Err(Failure::WebhookRejected {
                endpoint: input.endpoint,
                status: status.as_u16(),
                retry_after,
            })
        }
    }

    /// A completion event's identity fields from the calling run, never from the input.
    fn speak_for_caller(
        ctx: &CallContext,
        event_type: &str,
        data: serde_json::Value,
    ) -> Result<serde_json::Value, Failure> {
        if event_type != super::WORKFLOW_COMPLETED && event_type != super::WORKFLOW_FAILED {
            return Ok(data);
        }
        let serde_json::Value::Object(mut fields) = data else {
            return Err(Failure::invalid_input(format!(
                "data of a {event_type} event must be an object"
            )));
        };
        for (key, value) in [
            ("workflow_id", &ctx.workflow_id),
            ("run_id", &ctx.run_id),
            ("workflow_type", &ctx.workflow_type),
        ] {
            fields.insert(key.to_string(), serde_json::Value::String(value.clone()));
        }
        Ok(serde_json::Value::Object(fields))
    }

    /// `[a-z0-9_.-]`, 1 to 100 characters: event types end up in logs and KV keys.
    fn check_event_type(event_type: &str) -> Result<(), Failure> {
        let ok = !event_type.is_empty()
            && event_type.len() <= 100
            && event_type
                .chars()
                .all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '.' | '-'));
        if ok {
            Ok(())
        } else {
            Err(Failure::invalid_input(format!(
                "event type {event_type:?} must be 1 to 100 of [a-z0-9_.-]"
            )))
        }
    }

    #[activities]
    impl WebhookActivities {
        /// Registered as `webhook.notify`.
        #[activity(name = names::WEBHOOK_NOTIFY)]
        pub async fn notify(
            self: Arc<Self>,
            ctx: ActivityContext,
            input: Untrusted<WebhookNotifyInput>,
        ) -> Result<WebhookNotifyOutput, ActivityError> {
            let input = input
                .0
                .map_err(|e| crate::Failure::InvalidInput(e).into_activity_error())?;
            let call = CallContext::from_activity(&ctx);
            self.deliver_event(&call, input)
                .await
                .map_err(Failure::into_activity_error)
        }
    }
}
