//! `email.send`: render a template and send it, once per step.
//!
//! Everything that can be refused is refused before a transport is touched: the template name
//! (an identifier, never a path), every address (RFC 5322; CR, LF or NUL is header injection
//! and is refused, never stripped), every template variable (a missing one is an error).
//!
//! Idempotency: the `Message-ID` is derived from workflow id + step, and a sent-ledger row
//! (`edgeflow_ledger`, kind `email`, in `database.url`) is written the moment a send succeeds; a
//! retry finds it and returns the first result without sending (`replayed: true`). The Resend
//! transport also sends `Idempotency-Key`, which Resend honours for 24 hours; SMTP messages carry
//! the same key as `Resend-Idempotency-Key`, which Resend's SMTP relay honours.
//!
//! **The window SMTP leaves open.** SMTP has no idempotency: if the server accepted the
//! message but the worker died (or the connection broke) before the ledger row was written,
//! Temporal retries and the message is sent a second time, with the same `Message-ID`, which
//! lets mail clients and receivers drop the copy. The window is kept to the `250`'s way back plus
//! one database round trip: the ledger's connection is taken before sending (so recording never
//! waits for the pool), and sending and recording run as one task (so a cancelled attempt still
//! records what the server accepted). If the ledger insert itself fails after a send, the
//! activity still succeeds (the email went out; failing would only cause a duplicate) and logs the
//! error. The outbox transport has no window: the file name is the key.

mod model;
pub use model::{EmailSendInput, EmailSendOutput};

#[cfg(feature = "runtime")]
mod message;
#[cfg(feature = "runtime")]
mod settings;
#[cfg(feature = "runtime")]
mod templates;
#[cfg(feature = "runtime")]
mod transport;

#[cfg(feature = "runtime")]
pub use message::parse_mailbox;
#[cfg(feature = "runtime")]
pub use runtime::{EmailActivities, EmailBuildError};
#[cfg(feature = "runtime")]
pub use settings::{EmailSettings, OutboxSettings, ResendSettings, SmtpSettings};
#[cfg(feature = "runtime")]
pub use templates::{Rendered, Templates};

#[cfg(feature = "runtime")]
mod runtime {
    use std::sync::Arc;

    use lettre::message::Mailbox;
    use temporalio_macros::activities;
    use temporalio_sdk::activities::{ActivityContext, ActivityError};
    use tracing::{Instrument, instrument};

    use super::message::{self, Recipients, parse_mailbox};
    use super::templates::Templates;
    use super::transport::{Outgoing, Transport};
    use super::{EmailSendInput, EmailSendOutput, EmailSettings};
    use crate::db::{Database, LedgerConnection};
    use crate::settings::is_identifier;
    use crate::{CallContext, Failure, IdempotencyKey, Untrusted, names};

    const LEDGER_KIND: &str = "email";

    /// The `email` family: sender, templates, transport, and the sent-ledger. Clones share the
    /// templates and the transport (and its SMTP connection pool).
    #[derive(Clone)]
    pub struct EmailActivities {
        from: Mailbox,
        reply_to: Option<Mailbox>,
        max_recipients: usize,
        templates: Arc<Templates>,
        transport: Arc<Transport>,
        ledger: Database,
    }

    /// The email family could not be set up.
    #[derive(Debug, thiserror::Error)]
    #[error("email: {}", .problems.join("; "))]
    pub struct EmailBuildError {
        /// Every problem.
        pub problems: Vec<String>,
    }

    impl EmailActivities {
        /// Load the templates and set up the transport; `ledger` is the database of
        /// `database.url` (the sent-ledger lives next to the db ledger).
        pub fn new(settings: &EmailSettings, ledger: Database) -> Result<Self, EmailBuildError> {
            let mut problems = Vec::new();
            let from = parse_mailbox("from", &settings.from)
                .map_err(|e| problems.push(format!("from: {e}")))
                .ok();
            let reply_to = settings
                .reply_to
                .as_deref()
                .map(|r| parse_mailbox("reply_to", r))
                .transpose()
                .map_err(|e| problems.push(format!("reply_to: {e}")))
                .ok()
                .flatten();
            let templates = Templates::load(&settings.templates_dir)
                .map_err(|p| problems.extend(p.into_iter().map(|p| format!("templates_dir: {p}"))))
                .ok();
            let transport = Transport::from_settings(settings)
                .map_err(|p| problems.push(p))
                .ok();
            match (from, templates, transport) {
                (Some(from), Some(templates), Some(transport)) if problems.is_empty() => {
                    tracing::info!(
                        transport = transport.name(),
                        templates = templates.names().count(),
                        "email ready"
                    );
                    Ok(Self {
                        from,
                        reply_to,
                        max_recipients: settings.max_recipients.max(1),
                        templates: Arc::new(templates),
                        transport: Arc::new(transport),
                        ledger,
                    })
                }
                _ => Err(EmailBuildError { problems }),
            }
        }

        /// Which transport sends: `smtp`, `resend` or `outbox`.
        pub fn transport(&self) -> &'static str {
            self.transport.name()
        }

        /// `email.send` without the SDK wrapper: what the activity does, given its caller.
        #[instrument(name = "email.send", skip_all, fields(otel.kind = "client", template = %input.template, step = %input.step, transport = self.transport.name()))]
        pub async fn send_message(
            &self,
            ctx: &CallContext,
            input: EmailSendInput,
        ) -> Result<EmailSendOutput, Failure> {
            ctx.guard(self.send_once(ctx, input)).await
        }

        async fn send_once(
            &self,
            ctx: &CallContext,
            input: EmailSendInput,
        ) -> Result<EmailSendOutput, Failure> {
            let key = ctx.key(&input.step)?;
            if !is_identifier(&input.template) || !self.templates.contains(&input.template) {
                return Err(Failure::UnknownName {
                    kind: "template",
                    name: input.template,
                });
            }
            // Refuse bad input before anything else, replay or not.
            let reply_to = input.reply_to.as_deref();
            let mut recipients = Recipients::parse(
                &input.to,
                &input.cc,
                &input.bcc,
                reply_to,
                self.max_recipients,
            )?;
            if recipients.reply_to.is_none() {
                recipients.reply_to = self.reply_to.clone();
            }
            let rendered = self.templates.render(&input.template, &input.vars)?;
            let message_id = message::message_id(&key, &self.from);

            // The ledger's connection is taken before anything is sent, so that once the server
            // has accepted the message, recording it waits for nothing: under load the pool can
            // be busy for seconds, and a worker that dies in that time sends the email twice.
            let mut ledger = self.ledger.ledger_connection().await?;
            if let Some(stored) = ledger.get(LEDGER_KIND, &key).await? {
                let mut output: EmailSendOutput = serde_json::from_str(&stored)
                    .map_err(|e| Failure::Internal(format!("unreadable sent-ledger row: {e}")))?;
                output.replayed = true;
                tracing::info!(message_id = %output.message_id, "already sent by an earlier attempt; not sending again");
                return Ok(output);
            }

            let mime = message::build(&self.from, &recipients, &rendered, &key, ctx.scheduled_at)?;
            let outgoing = Outgoing {
                key: key.clone(),
                from: self.from.clone(),
                recipients,
                rendered,
                message: mime,
            };
            // Sending and recording are one task of their own: if the activity is cancelled
            // (its timeout, a shutdown's deadline) while the server is taking the message, the
            // task still records the send the moment the server accepts it, instead of being
            // dropped in between and leaving a retry to send again.
            let transport = Arc::clone(&self.transport);
            let sent = tokio::spawn(
                async move {
                    let provider_id = transport.send(outgoing).await?;
                    let output = EmailSendOutput {
                        message_id,
                        transport: transport.name().to_owned(),
                        provider_id,
                        replayed: false,
                    };
                    record(&mut ledger, &key, &output).await;
                    Ok(output)
                }
                // The task's log lines belong to this attempt, with its fields and trace.
                .instrument(tracing::Span::current()),
            );
            sent.await
                .map_err(|e| Failure::Internal(format!("the send task ended abnormally: {e}")))?
        }
    }

    /// Writes the sent-ledger row. A failure is logged, not returned: the email went out, and
    /// failing the activity would only make a retry send it again.
    async fn record(ledger: &mut LedgerConnection, key: &IdempotencyKey, output: &EmailSendOutput) {
        match serde_json::to_string(output) {
            Ok(json) => {
                if let Err(e) = ledger.put(LEDGER_KIND, key, &json).await {
                    tracing::error!(error = %e, message_id = %output.message_id,
                        "sent, but could not record it in the sent-ledger; a retry would send again");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot serialise the send result"),
        }
    }

    #[activities]
    impl EmailActivities {
        /// Registered as `email.send`.
        #[activity(name = names::EMAIL_SEND)]
        pub async fn send(
            self: Arc<Self>,
            ctx: ActivityContext,
            input: Untrusted<EmailSendInput>,
        ) -> Result<EmailSendOutput, ActivityError> {
            let input = input
                .0
                .map_err(|e| crate::Failure::InvalidInput(e).into_activity_error())?;
            let call = CallContext::from_activity(&ctx);
            self.send_message(&call, input)
                .await
                .map_err(Failure::into_activity_error)
        }
    }
}
