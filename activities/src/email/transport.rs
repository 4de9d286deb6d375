//! The three ways a message leaves: SMTP (lettre), the Resend API, an outbox folder.

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use super::message::{self, Recipients};
use super::settings::EmailSettings;
use super::templates::Rendered;
use crate::IdempotencyKey;
use crate::failure::{self, Failure};

/// One message, in both the forms the transports need.
pub(crate) struct Outgoing {
    pub key: IdempotencyKey,
    pub from: Mailbox,
    pub recipients: Recipients,
    pub rendered: Rendered,
    pub message: Message,
}

pub(crate) enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Resend(Resend),
    Outbox(PathBuf),
}

impl Transport {
    pub(crate) fn from_settings(s: &EmailSettings) -> Result<Self, String> {
        match s.transport.as_str() {
            "smtp" => {
                let smtp = &s.smtp;
                let builder = match smtp.security.as_str() {
                    "starttls" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host)
                        .map_err(|e| e.to_string())?,
                    "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host)
                        .map_err(|e| e.to_string())?,
                    "plain" => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host),
                    other => return Err(format!("email.smtp.security: unknown `{other}`")),
                };
                let mut builder = builder
                    .port(smtp.effective_port())
                    .timeout(Some(Duration::from_secs_f64(smtp.timeout_secs)));
                if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
                    builder = builder.credentials(Credentials::new(
                        user.clone(),
                        password.expose_secret().to_owned(),
                    ));
                }
                Ok(Transport::Smtp(builder.build()))
            }
            "resend" => {
                let api_key = s
                    .resend
                    .api_key
                    .clone()
                    .ok_or("email.resend.api_key is required")?;
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs_f64(s.resend.timeout_secs))
                    .redirect(reqwest::redirect::Policy::none())
                    .user_agent(concat!("edgeflow/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| e.to_string())?;
                Ok(Transport::Resend(Resend {
                    client,
                    url: format!("{}/emails", s.resend.base_url.trim_end_matches('/')),
                    api_key: api_key.into(),
                }))
            }
            "outbox" => {
                std::fs::create_dir_all(&s.outbox.dir)
                    .map_err(|e| format!("email.outbox.dir `{}`: {e}", s.outbox.dir.display()))?;
                Ok(Transport::Outbox(s.outbox.dir.clone()))
            }
            other => Err(format!("email.transport: unknown `{other}`")),
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            Transport::Smtp(_) => "smtp",
            Transport::Resend(_) => "resend",
            Transport::Outbox(_) => "outbox",
        }
    }

    /// Send; returns the provider's id for the message, if it has one.
    pub(crate) async fn send(&self, out: Outgoing) -> Result<Option<String>, Failure> {
        match self {
            Transport::Smtp(smtp) => {
                let response = smtp
                    .send(out.message)
                    .await
                    .map_err(|e| failure::from_smtp(&e))?;
                // "250 2.0.0 OK queued as X": the server's queue id, when it says one.
                Ok(response.message().last().map(|line| line.to_string()))
            }
            Transport::Resend(resend) => resend.send(&out).await.map(Some),
            Transport::Outbox(dir) => write_outbox(dir, &out).await.map(Some),
        }
    }
}

/// Resend's `POST /emails`.
pub(crate) struct Resend {
    client: reqwest::Client,
    url: String,
    api_key: SecretString,
}

#[derive(Deserialize)]
struct ResendSent {
    id: String,
}

#[derive(Deserialize, Default)]
struct ResendError {
    #[serde(default)]
    name: String,
}

impl Resend {
    async fn send(&self, out: &Outgoing) -> Result<String, Failure> {
        let list = |m: &[Mailbox]| m.iter().map(ToString::to_string).collect::<Vec<_>>();
        let mut body = json!({
            "from": out.from.to_string(),
            "to": list(&out.recipients.to),
            "subject": out.rendered.subject,
            "text": out.rendered.text,
        });
        if !out.recipients.cc.is_empty() {
            body["cc"] = json!(list(&out.recipients.cc));
        }
        if !out.recipients.bcc.is_empty() {
            body["bcc"] = json!(list(&out.recipients.bcc));
        }
        if let Some(reply_to) = &out.recipients.reply_to {
            body["reply_to"] = json!(reply_to.to_string());
        }
        if let Some(html) = &out.rendered.html {
            body["html"] = json!(html);
        }
        let target = "the Resend API";
        let response = self
            .client
            .post(&self.url)
            .bearer_auth(self.api_key.expose_secret())
            // Resend keeps an idempotency key for 24 hours: a retry within that window gets the
            // first answer instead of a second email.
            .header(
                "Idempotency-Key",
                message::provider_idempotency_key(&out.key),
            )
            .json(&body)
            .send()
            .await
            .map_err(|e| failure::from_reqwest(target, &e))?;
        let status = response.status();
        let retry_after = failure::retry_after(response.headers());
        let bytes = response
            .bytes()
            .await
            .map_err(|e| failure::from_reqwest(target, &e))?;
        if status.is_success() {
            let sent: ResendSent = serde_json::from_slice(&bytes).map_err(|e| {
                Failure::Internal(format!("{target} answered {status} without an id: {e}"))
            })?;
            return Ok(sent.id);
        }
        let error: ResendError = serde_json::from_slice(&bytes).unwrap_or_default();
        if status.as_u16() == 409 && error.name == "concurrent_idempotent_requests" {
            return Err(Failure::IdempotencyInFlight);
        }
        Err(Failure::HttpStatus {
            status: status.as_u16(),
            target: target.into(),
            retry_after,
            excerpt: failure::excerpt(&bytes),
        })
    }
}

/// `DIR/DIGEST.eml`, written atomically; an existing file means an earlier attempt wrote it.
async fn write_outbox(dir: &std::path::Path, out: &Outgoing) -> Result<String, Failure> {
    let name = format!("{}.eml", out.key.digest());
    let path = dir.join(&name);
    if tokio::fs::try_exists(&path).await.unwrap_or(false) {
        return Ok(name);
    }
    let tmp = dir.join(format!(".{name}.tmp"));
    let io = |e: std::io::Error| Failure::Internal(format!("outbox `{}`: {e}", dir.display()));
    tokio::fs::write(&tmp, out.message.formatted())
        .await
        .map_err(io)?;
    tokio::fs::rename(&tmp, &path).await.map_err(io)?;
    Ok(name)
}
