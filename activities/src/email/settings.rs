//! `[email]`: sender, templates, and the transport (`smtp`, `resend` or `outbox`).
//!
//! Each transport has its own table (`[email.smtp]`, `[email.resend]`, `[email.outbox]`);
//! only the one `transport` selects is used and checked, so a base file can configure the
//! outbox for development while the production layer switches `transport` to `smtp`.

use std::path::PathBuf;

use crate::settings::Secret;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::message::parse_mailbox;
use super::templates::Templates;
use crate::settings::{Problems, SettingError};

/// Email sending.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    /// Sender, RFC 5322 (`Name <address>`); its domain also names the `Message-ID`s.
    #[serde(default = "default_from")]
    pub from: String,
    /// Default Reply-To.
    #[serde(default)]
    pub reply_to: Option<String>,
    /// Folder of templates, one subfolder per template with `subject.txt`, `body.txt` and
    /// optionally `body.html`.
    #[serde(default = "default_templates_dir")]
    pub templates_dir: PathBuf,
    /// `smtp`, `resend` or `outbox`.
    #[serde(default = "default_transport")]
    pub transport: String,
    /// Most recipients (to + cc + bcc) per message.
    #[serde(default = "default_max_recipients")]
    pub max_recipients: usize,
    /// Used when `transport = "smtp"`.
    #[serde(default)]
    pub smtp: SmtpSettings,
    /// Used when `transport = "resend"`.
    #[serde(default)]
    pub resend: ResendSettings,
    /// Used when `transport = "outbox"`.
    #[serde(default)]
    pub outbox: OutboxSettings,
}

/// An SMTP relay.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    /// Host name (also the name its TLS certificate must carry).
    #[serde(default = "default_smtp_host")]
    pub host: String,
    /// Port; by default 587 (`starttls`), 465 (`tls`) or 25 (`plain`).
    #[serde(default)]
    pub port: Option<u16>,
    /// `starttls` (upgrade required), `tls` (implicit TLS) or `plain` (no TLS: local relays
    /// and tests only).
    #[serde(default = "default_security")]
    pub security: String,
    /// Login user, with `password`.
    #[serde(default)]
    pub username: Option<String>,
    /// Login password.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Per-command timeout.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: f64,
}

/// The Resend email API (<https://resend.com/docs/api-reference/emails/send-email>).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResendSettings {
    /// API key (`re_…`).
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// API base URL.
    #[serde(default = "default_resend_url")]
    pub base_url: String,
    /// Whole-request timeout.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: f64,
}

/// A folder of `.eml` files instead of sending (development).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutboxSettings {
    /// The folder (created if missing).
    #[serde(default = "default_outbox_dir")]
    pub dir: PathBuf,
}

fn default_from() -> String {
    "edgeflow <edgeflow@localhost>".into()
}
fn default_templates_dir() -> PathBuf {
    "config/templates".into()
}
fn default_transport() -> String {
    "outbox".into()
}
fn default_max_recipients() -> usize {
    50
}
fn default_smtp_host() -> String {
    "localhost".into()
}
fn default_security() -> String {
    "starttls".into()
}
fn default_timeout_secs() -> f64 {
    30.0
}
fn default_resend_url() -> String {
    "https://api.resend.com".into()
}
fn default_outbox_dir() -> PathBuf {
    "var/outbox".into()
}

impl Default for EmailSettings {
    fn default() -> Self {
        Self {
            from: default_from(),
            reply_to: None,
            templates_dir: default_templates_dir(),
            transport: default_transport(),
            max_recipients: default_max_recipients(),
            smtp: SmtpSettings::default(),
            resend: ResendSettings::default(),
            outbox: OutboxSettings::default(),
        }
    }
}

impl Default for SmtpSettings {
    fn default() -> Self {
        Self {
            host: default_smtp_host(),
            port: None,
            security: default_security(),
            username: None,
            password: None,
            timeout_secs: default_timeout_secs(),
        }
    }
}

impl Default for ResendSettings {
    fn default() -> Self {
        Self {
            api_key: None,
            base_url: default_resend_url(),
            timeout_secs: default_timeout_secs(),
        }
    }
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self {
            dir: default_outbox_dir(),
        }
    }
}

impl SmtpSettings {
    /// The port to connect to.
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(match self.security.as_str() {
            "tls" => 465,
            "plain" => 25,
            _ => 587,
        })
    }
}

impl EmailSettings {
    /// Every problem, at `email.KEY` paths.
    pub fn validate(&self) -> Vec<SettingError> {
        self.validate_at("email")
    }

    /// Every problem, at paths under `prefix`. Also compiles every template.
    pub fn validate_at(&self, prefix: &str) -> Vec<SettingError> {
        let mut out = Vec::new();
        let mut p = Problems::new(prefix, &mut out);
        if let Err(e) = parse_mailbox("from", &self.from) {
            p.add("from", e.to_string());
        }
        if let Some(reply_to) = &self.reply_to
            && let Err(e) = parse_mailbox("reply_to", reply_to)
        {
            p.add("reply_to", e.to_string());
        }
        if self.max_recipients == 0 {
            p.add("max_recipients", "must be at least 1");
        }
        if p.readable_dir("templates_dir", &self.templates_dir)
            && let Err(problems) = Templates::load(&self.templates_dir)
        {
            for problem in problems {
                p.add("templates_dir", problem);
            }
        }
        match self.transport.as_str() {
            "smtp" => {
                let mut s = p.nested("smtp");
                let smtp = &self.smtp;
                if smtp.host.trim().is_empty() {
                    s.add("host", "must not be empty");
                }
                if !matches!(smtp.security.as_str(), "starttls" | "tls" | "plain") {
                    s.add(
                        "security",
                        format!("`{}`: expected starttls, tls or plain", smtp.security),
                    );
                }
                if smtp.username.is_some() != smtp.password.is_some() {
                    s.add(
                        "password",
                        "give both `username` and `password`, or neither",
                    );
                }
                if smtp.port == Some(0) {
                    s.add("port", "must not be 0");
                }
                s.secs("timeout_secs", smtp.timeout_secs, 600.0);
            }
            "resend" => {
                let mut r = p.nested("resend");
                if self.resend.api_key.is_none() {
                    r.add("api_key", "the resend transport needs `api_key`");
                }
                r.http_url("base_url", &self.resend.base_url);
                r.secs("timeout_secs", self.resend.timeout_secs, 600.0);
            }
            "outbox" => {
                if self.outbox.dir.exists() && !self.outbox.dir.is_dir() {
                    p.add(
                        "outbox.dir",
                        format!("`{}` is not a directory", self.outbox.dir.display()),
                    );
                }
            }
            other => p.add(
                "transport",
                format!("`{other}`: expected smtp, resend or outbox"),
            ),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_write_to_the_outbox_with_the_shipped_templates() {
        let s: EmailSettings = serde_json::from_str("{}").unwrap();
        assert_eq!(s.transport, "outbox");
        assert_eq!(s.smtp.effective_port(), 587);
        let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/templates");
        let s = EmailSettings {
            templates_dir: shipped,
            ..s
        };
        assert_eq!(s.validate(), vec![]);
    }

    #[test]
    fn every_problem_is_reported() {
        let s: EmailSettings = serde_json::from_value(serde_json::json!({
            "from": "not an address",
            "reply_to": "a@b.example\r\nBcc: x@y.example",
            "templates_dir": "/nonexistent/templates",
            "transport": "smtp",
            "max_recipients": 0,
            "smtp": {"host": "", "security": "ssl", "username": "u", "timeout_secs": 0},
        }))
        .unwrap();
        let paths: Vec<String> = s.validate().into_iter().map(|e| e.path).collect();
        assert_eq!(
            paths,
            [
                "email.from",
                "email.reply_to",
                "email.max_recipients",
                "email.templates_dir",
                "email.smtp.host",
                "email.smtp.security",
                "email.smtp.password",
                "email.smtp.timeout_secs",
            ]
        );
        let bad_transport = EmailSettings {
            transport: "carrier_pigeon".into(),
            templates_dir: std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../config/templates"),
            ..Default::default()
        };
        assert_eq!(bad_transport.validate()[0].path, "email.transport");
        let resend = EmailSettings {
            transport: "resend".into(),
            templates_dir: std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../config/templates"),
            ..Default::default()
        };
        assert_eq!(resend.validate()[0].path, "email.resend.api_key");
    }
}
