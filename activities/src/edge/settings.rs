//! `[edge_activities]`: where the edge Worker runs `edge.*` activities, how the worker proves
//! each request is its own, and how long one attempt may take; and their checks, which read the
//! signing key when the settings load.
//!
//! Off when `url` is empty: then no `<queue>.edge` task queue is polled and nothing here is read.

use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::token::SigningKey;
use crate::settings::{Problems, SettingError};

/// The issuer (`iss`) of the worker's tokens when none is configured.
pub const DEFAULT_ISSUER: &str = "edgeflow-worker";

/// `[edge_activities]`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EdgeActivitiesSettings {
    /// The edge's base URL (`https://edge.example.com`); requests go to
    /// `<url>/v1/activities/<name>`. Empty: edge activities are off.
    #[serde(default)]
    pub url: String,
    /// The tokens' audience (`aud`), the edge's `EDGE_ACTIVITY_AUDIENCE` (default: the URL's
    /// origin, e.g. `https://edge.example.com`).
    #[serde(default)]
    pub audience: Option<String>,
    /// The tokens' issuer (`iss`).
    #[serde(default = "default_issuer")]
    pub issuer: String,
    /// The P-256 private key tokens are signed with: a PKCS#8 PEM file
    /// (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`).
    #[serde(default)]
    pub signing_key_file: Option<PathBuf>,
    /// The key's id (`kid`), as the edge's `ACTIVITY_KEYS` JWKS names its public half.
    #[serde(default)]
    pub key_id: Option<String>,
    /// The longest attempt an edge activity may be given: an activity scheduled with a longer
    /// start-to-close timeout fails (non-retryably) instead of being cut short.
    #[serde(default = "default_max_attempt_secs")]
    pub max_attempt_secs: u64,
    /// Edge activities this process runs at once (the slots of its `<queue>.edge` worker).
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: usize,
}

fn default_issuer() -> String {
    DEFAULT_ISSUER.to_string()
}
fn default_max_attempt_secs() -> u64 {
    300
}
fn default_max_concurrent() -> usize {
    100
}

impl Default for EdgeActivitiesSettings {
    fn default() -> Self {
        Self {
            url: String::new(),
            audience: None,
            issuer: default_issuer(),
            signing_key_file: None,
            key_id: None,
            max_attempt_secs: default_max_attempt_secs(),
            max_concurrent: default_max_concurrent(),
        }
    }
}

/// The settings, checked and read: what dispatch needs.
pub(crate) struct Resolved {
    pub base: url::Url,
    pub audience: String,
    pub issuer: String,
    pub key: SigningKey,
    pub max_attempt: Duration,
}

impl EdgeActivitiesSettings {
    /// Whether edge activities are on (a URL is set).
    pub fn enabled(&self) -> bool {
        !self.url.trim().is_empty()
    }

    /// Every problem, at `edge_activities.*`; the key file is read and parsed now.
    pub fn validate(&self) -> Vec<SettingError> {
        self.validate_at("edge_activities")
    }

    /// Every problem, at paths under `prefix`.
    pub fn validate_at(&self, prefix: &str) -> Vec<SettingError> {
        match self.resolve_at(prefix) {
            Ok(_) => Vec::new(),
            Err(problems) => problems,
        }
    }

    /// The checked settings; `None` when off.
    pub(crate) fn resolve(&self) -> Result<Option<Resolved>, Vec<SettingError>> {
        self.resolve_at("edge_activities")
    }

    fn resolve_at(&self, prefix: &str) -> Result<Option<Resolved>, Vec<SettingError>> {
        let mut out = Vec::new();
        let mut p = Problems::new(prefix, &mut out);
        if self.max_attempt_secs == 0 {
            p.add("max_attempt_secs", "must be at least 1");
        }
        if self.max_concurrent == 0 {
            p.add("max_concurrent", "must be at least 1");
        }
        if self.issuer.trim().is_empty() {
            p.add("issuer", "must not be empty");
        }
        if !self.enabled() {
            return if out.is_empty() { Ok(None) } else { Err(out) };
        }
        let base = p.http_url("url", self.url.trim()).and_then(|u| {
            if u.query().is_some() {
                p.add("url", "must not have a query");
                return None;
            }
            // The body is plaintext (decrypted by the worker's codec): only loopback may see it
            // unencrypted on the wire.
            let loopback = matches!(
                u.host(),
                Some(url::Host::Ipv4(ip)) if ip.is_loopback()
            ) || matches!(u.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback())
                || u.host_str() == Some("localhost");
            if u.scheme() != "https" && !loopback {
                p.add(
                    "url",
                    "must use https (activity inputs travel in the clear otherwise); \
                     http is only for loopback addresses",
                );
                return None;
            }
            Some(u)
        });
        let audience = match (&self.audience, &base) {
            (Some(a), _) if a.trim().is_empty() => {
                p.add(
                    "audience",
                    "must not be empty (omit it for the URL's origin)",
                );
                None
            }
            (Some(a), _) => Some(a.clone()),
            (None, Some(base)) => Some(base.origin().ascii_serialization()),
            (None, None) => None,
        };
        let key_id = match self.key_id.as_deref().map(str::trim) {
            None | Some("") => {
                p.add(
                    "key_id",
                    "set the signing key's id (the `kid` the edge's ACTIVITY_KEYS names it by)",
                );
                None
            }
            Some(kid) => Some(kid.to_string()),
        };
        let key = match &self.signing_key_file {
            None => {
                p.add(
                    "signing_key_file",
                    "set the P-256 private key (PKCS#8 PEM) the worker signs edge requests with",
                );
                None
            }
            Some(path) => match std::fs::read(path) {
                Err(e) => {
                    p.add(
                        "signing_key_file",
                        format!("cannot read `{}`: {e}", path.display()),
                    );
                    None
                }
                Ok(pem) => match key_id.clone().map(|kid| SigningKey::from_pem(&pem, kid)) {
                    Some(Err(why)) => {
                        p.add("signing_key_file", format!("`{}` {why}", path.display()));
                        None
                    }
                    Some(Ok(key)) => Some(key),
                    None => None,
                },
            },
        };
        match (base, audience, key) {
            (Some(base), Some(audience), Some(key)) if out.is_empty() => Ok(Some(Resolved {
                base,
                audience,
                issuer: self.issuer.clone(),
                key,
                max_attempt: Duration::from_secs(self.max_attempt_secs),
            })),
            _ => Err(out),
        }
    }
}
