//! Addresses and the MIME message: everything checked before any transport is touched.

use std::time::SystemTime;

use lettre::Message;
use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};

use super::templates::Rendered;
use crate::IdempotencyKey;
use crate::failure::Failure;

/// Parse one RFC 5322 mailbox (`a@b.example` or `Name <a@b.example>`). CR, LF or NUL anywhere
/// is header injection and is refused, never stripped.
pub fn parse_mailbox(field: &str, value: &str) -> Result<Mailbox, Failure> {
    if value.contains(['\r', '\n', '\0']) {
        return Err(Failure::HeaderInjection {
            field: field.to_owned(),
        });
    }
    value
        .trim()
        .parse::<Mailbox>()
        .map_err(|e| Failure::BadAddress {
            address: value.to_owned(),
            reason: e.to_string(),
        })
}

/// The recipients of one message.
#[derive(Debug, Clone)]
pub(crate) struct Recipients {
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub bcc: Vec<Mailbox>,
    pub reply_to: Option<Mailbox>,
}

impl Recipients {
    pub(crate) fn parse(
        to: &[String],
        cc: &[String],
        bcc: &[String],
        reply_to: Option<&str>,
        max: usize,
    ) -> Result<Self, Failure> {
        if to.is_empty() {
            return Err(Failure::invalid_input("`to` needs at least one recipient"));
        }
        let total = to.len() + cc.len() + bcc.len();
        if total > max {
            return Err(Failure::invalid_input(format!(
                "{total} recipients; at most {max} per message"
            )));
        }
        let list = |field: &str, values: &[String]| -> Result<Vec<Mailbox>, Failure> {
            values
                .iter()
                .enumerate()
                .map(|(i, v)| parse_mailbox(&format!("{field}[{i}]"), v))
                .collect()
        };
        Ok(Self {
            to: list("to", to)?,
            cc: list("cc", cc)?,
            bcc: list("bcc", bcc)?,
            reply_to: reply_to.map(|r| parse_mailbox("reply_to", r)).transpose()?,
        })
    }
}

/// The deterministic `Message-ID` for `key`: `<DIGEST@DOMAIN-OF-FROM>`.
pub(crate) fn message_id(key: &IdempotencyKey, from: &Mailbox) -> String {
    format!("<{}@{}>", key.digest(), from.email.domain())
}

/// The key an email provider dedupes on: Resend's `Idempotency-Key` HTTP header, and the
/// `Resend-Idempotency-Key` message header its SMTP relay reads.
pub(crate) fn provider_idempotency_key(key: &IdempotencyKey) -> String {
    format!("edgeflow-{}", key.digest())
}

/// `Resend-Idempotency-Key`: Resend's SMTP relay sends a message with a key it has seen in the
/// last 24 hours only once, which closes the SMTP window there; other servers ignore the header.
#[derive(Debug, Clone)]
struct ResendIdempotencyKey(String);

impl Header for ResendIdempotencyKey {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Resend-Idempotency-Key")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// The MIME message. `date` is the activity's first scheduling time, so every attempt builds
/// the same message.
pub(crate) fn build(
    from: &Mailbox,
    recipients: &Recipients,
    rendered: &Rendered,
    key: &IdempotencyKey,
    date: SystemTime,
) -> Result<Message, Failure> {
    let mut builder = Message::builder()
        .from(from.clone())
        .subject(rendered.subject.clone())
        .message_id(Some(message_id(key, from)))
        .header(ResendIdempotencyKey(provider_idempotency_key(key)))
        .date(date)
        .user_agent(concat!("edgeflow/", env!("CARGO_PKG_VERSION")).to_owned());
    for m in &recipients.to {
        builder = builder.to(m.clone());
    }
    for m in &recipients.cc {
        builder = builder.cc(m.clone());
    }
    for m in &recipients.bcc {
        builder = builder.bcc(m.clone());
    }
    if let Some(r) = &recipients.reply_to {
        builder = builder.reply_to(r.clone());
    }
    let message = match &rendered.html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(
            rendered.text.clone(),
            html.clone(),
        )),
        None => builder.singlepart(SinglePart::plain(rendered.text.clone())),
    };
    message.map_err(|e| Failure::invalid_input(format!("cannot build the message: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailboxes_parse_with_and_without_names() {
        let m = parse_mailbox("to", "Ada Lovelace <ada@example.com>").unwrap();
        assert_eq!(m.email.to_string(), "ada@example.com");
        assert_eq!(m.name.as_deref(), Some("Ada Lovelace"));
        assert!(parse_mailbox("to", "ada@example.com").is_ok());
    }

    #[test]
    fn injection_and_bad_addresses_are_refused() {
        for bad in [
            "ada@example.com\r\nBcc: eve@evil.example",
            "ada@example.com\n",
            "a\0@b.example",
        ] {
            assert!(
                matches!(
                    parse_mailbox("to", bad),
                    Err(Failure::HeaderInjection { .. })
                ),
                "{bad:?}"
            );
        }
        for bad in [
            "not an address",
            "ada@",
            "@example.com",
            "a@b.example, c@d.example",
            "",
        ] {
            assert!(
                matches!(parse_mailbox("to", bad), Err(Failure::BadAddress { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn recipient_limits() {
        let many: Vec<String> = (0..3).map(|i| format!("r{i}@example.com")).collect();
        assert!(Recipients::parse(&many, &[], &[], None, 3).is_ok());
        assert!(matches!(
            Recipients::parse(&many, &["x@example.com".into()], &[], None, 3),
            Err(Failure::InvalidInput(_))
        ));
        assert!(matches!(
            Recipients::parse(&[], &[], &[], None, 3),
            Err(Failure::InvalidInput(_))
        ));
        let err = Recipients::parse(&many, &[], &["bad".into()], None, 5).unwrap_err();
        assert!(matches!(err, Failure::BadAddress { .. }));
    }
}
