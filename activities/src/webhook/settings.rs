//! `[webhooks.NAME]`: where signed events go.

use std::collections::BTreeMap;

use secrecy::ExposeSecret;

use crate::settings::Secret;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::signing::SigningKey;
use crate::settings::{Problems, SettingError, is_identifier};

/// Every configured endpoint by name (`[webhooks.NAME]`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct WebhookSettings {
    /// Endpoints by name (lower-case identifiers).
    pub endpoints: BTreeMap<String, EndpointSettings>,
}

/// One receiver of events.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointSettings {
    /// Where events are POSTed (http or https).
    pub url: String,
    /// Signing secrets, `whsec_<base64 of 24–64 bytes>`. Every secret signs every event, so a
    /// receiver can rotate: add the new secret here, switch the receiver, remove the old one.
    pub secrets: Vec<Secret>,
    /// Whole-request timeout.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: f64,
}

fn default_timeout_secs() -> f64 {
    10.0
}

impl WebhookSettings {
    /// Every problem, at `webhooks.NAME.KEY` paths.
    pub fn validate(&self) -> Vec<SettingError> {
        self.validate_at("webhooks")
    }

    /// Every problem, at paths under `prefix`.
    pub fn validate_at(&self, prefix: &str) -> Vec<SettingError> {
        let mut out = Vec::new();
        let mut problems = Problems::new(prefix, &mut out);
        for (name, endpoint) in &self.endpoints {
            let mut p = problems.nested(name);
            if !is_identifier(name) {
                p.add(
                    "",
                    "endpoint names must be lower-case identifiers ([a-z][a-z0-9_]*)",
                );
            }
            p.http_url("url", &endpoint.url);
            if endpoint.secrets.is_empty() {
                p.add("secrets", "at least one `whsec_…` secret is needed");
            }
            for (i, secret) in endpoint.secrets.iter().enumerate() {
                if let Err(e) = SigningKey::parse(secret.expose_secret()) {
                    p.add(&format!("secrets[{i}]"), e);
                }
            }
            p.secs("timeout_secs", endpoint.timeout_secs, 600.0);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_reported() {
        let s: WebhookSettings = serde_json::from_value(serde_json::json!({
            "edge": {"url": "https://edge.example/v1/hooks/temporal", "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]},
            "Bad": {"url": "ftp://x", "secrets": [], "timeout_secs": 0},
            "crm": {"url": "https://crm.example/hook", "secrets": ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_c2hvcnQ=", "whsec_!!!"]}
        }))
        .unwrap();
        let paths: Vec<String> = s.validate().into_iter().map(|e| e.path).collect();
        assert_eq!(
            paths,
            [
                "webhooks.Bad",
                "webhooks.Bad.url",
                "webhooks.Bad.secrets",
                "webhooks.Bad.timeout_secs",
                "webhooks.crm.secrets[0]",
                "webhooks.crm.secrets[1]",
                "webhooks.crm.secrets[2]",
            ]
        );
    }
}
