//! `[services.NAME]`: the microservices `http.call` may reach, and how.

use std::collections::BTreeMap;
use std::path::PathBuf;

use reqwest::header::{HeaderName, HeaderValue};
use secrecy::ExposeSecret;

use crate::settings::Secret;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::settings::{Problems, SettingError, is_identifier};

/// Every configured service by name (`[services.NAME]`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct HttpSettings {
    /// Services by name (lower-case identifiers).
    pub services: BTreeMap<String, ServiceSettings>,
}

/// One service.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceSettings {
    /// Every request goes below this URL (http or https, no query or fragment).
    pub base_url: String,
    /// Whole-request timeout, body included.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: f64,
    /// Connection set-up timeout.
    #[serde(default = "default_connect_timeout_secs")]
    pub connect_timeout_secs: f64,
    /// Larger responses fail (non-retryably).
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: u64,
    /// Headers sent on every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// How to authenticate, if at all.
    #[serde(default)]
    pub auth: Option<AuthSettings>,
    /// At most this many requests in flight at once, across all activities in the process.
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: u32,
    /// At most this many requests started per second (evenly paced), across the process.
    #[serde(default)]
    pub rate_per_sec: Option<f64>,
    /// Request headers a workflow may set (case-insensitive). Empty: none.
    #[serde(default)]
    pub allowed_request_headers: Vec<String>,
    /// Response headers returned to the workflow.
    #[serde(default = "default_response_headers")]
    pub response_headers: Vec<String>,
}

fn default_timeout_secs() -> f64 {
    30.0
}
fn default_connect_timeout_secs() -> f64 {
    5.0
}
fn default_max_response_bytes() -> u64 {
    1024 * 1024
}
fn default_max_concurrent() -> u32 {
    16
}
fn default_response_headers() -> Vec<String> {
    ["content-type", "etag", "location"]
        .map(String::from)
        .to_vec()
}

impl Default for ServiceSettings {
    fn default() -> Self {
        Self {
            base_url: String::new(),
            timeout_secs: default_timeout_secs(),
            connect_timeout_secs: default_connect_timeout_secs(),
            max_response_bytes: default_max_response_bytes(),
            headers: BTreeMap::new(),
            auth: None,
            max_concurrent: default_max_concurrent(),
            rate_per_sec: None,
            allowed_request_headers: Vec::new(),
            response_headers: default_response_headers(),
        }
    }
}

/// How a service authenticates requests. `kind` decides which other keys apply:
/// - `bearer`: `token_env` (read at start-up) or `token_file` (re-read when it changes);
/// - `header`: `header_name` and `header_value`, sent as is;
/// - `oauth2_client_credentials`: `token_url`, `client_id`, `client_secret`, optional `scopes`
///   and `audience`; the token is cached and refreshed `refresh_before_secs` before it expires.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// `bearer`, `header` or `oauth2_client_credentials`.
    pub kind: String,
    /// bearer: environment variable holding the token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// bearer: file holding the token (trimmed), re-read when its modification time changes.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// header: the header's name, e.g. `X-Api-Key`.
    #[serde(default)]
    pub header_name: Option<String>,
    /// header: the header's value.
    #[serde(default)]
    pub header_value: Option<Secret>,
    /// oauth2_client_credentials: the token endpoint.
    #[serde(default)]
    pub token_url: Option<String>,
    /// oauth2_client_credentials: client id (sent with HTTP Basic auth).
    #[serde(default)]
    pub client_id: Option<String>,
    /// oauth2_client_credentials: client secret.
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// oauth2_client_credentials: scopes requested.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// oauth2_client_credentials: `audience` parameter, for providers that want one.
    #[serde(default)]
    pub audience: Option<String>,
    /// oauth2_client_credentials: refresh this long before the token expires.
    #[serde(default = "default_refresh_before_secs")]
    pub refresh_before_secs: u64,
}

fn default_refresh_before_secs() -> u64 {
    60
}

/// Headers no setting or workflow may set: the client owns them.
pub(crate) const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-authorization",
    "idempotency-key",
];

impl HttpSettings {
    /// Every problem, at `services.NAME.KEY` paths.
    pub fn validate(&self) -> Vec<SettingError> {
        self.validate_at("services")
    }

    /// Every problem, at paths under `prefix`.
    pub fn validate_at(&self, prefix: &str) -> Vec<SettingError> {
        let mut out = Vec::new();
        let mut problems = Problems::new(prefix, &mut out);
        for (name, service) in &self.services {
            let mut p = problems.nested(name);
            if !is_identifier(name) {
                p.add(
                    "",
                    "service names must be lower-case identifiers ([a-z][a-z0-9_]*)",
                );
            } else if name == crate::edge::QUEUE_SUFFIX {
                p.add(
                    "",
                    "the name `edge` is reserved: `<queue>.edge` is the task queue of the edge \
                     Worker's activities ([edge_activities]); name the service otherwise",
                );
            }
            service.check(&mut p);
        }
        out
    }
}

impl ServiceSettings {
    fn check(&self, p: &mut Problems<'_>) {
        if let Some(url) = p.http_url("base_url", &self.base_url)
            && url.query().is_some()
        {
            p.add(
                "base_url",
                "must not have a query; put parameters in the call's `query`",
            );
        }
        p.secs("timeout_secs", self.timeout_secs, 3600.0);
        p.secs("connect_timeout_secs", self.connect_timeout_secs, 600.0);
        if self.max_response_bytes == 0 {
            p.add("max_response_bytes", "must be at least 1");
        }
        if self.max_concurrent == 0 {
            p.add("max_concurrent", "must be at least 1");
        }
        if let Some(rate) = self.rate_per_sec
            && (!rate.is_finite() || rate <= 0.0)
        {
            p.add("rate_per_sec", "must be more than 0 (omit it for no limit)");
        }
        for (name, value) in &self.headers {
            let key = format!("headers.{name}");
            check_header_name(p, &key, name);
            if HeaderValue::from_str(value).is_err() {
                p.add(&key, "is not a valid header value (control characters?)");
            }
        }
        for (i, name) in self.allowed_request_headers.iter().enumerate() {
            let key = format!("allowed_request_headers[{i}]");
            check_header_name(p, &key, name);
            if name.eq_ignore_ascii_case("authorization") || name.eq_ignore_ascii_case("cookie") {
                p.add(
                    &key,
                    "credentials come from `auth`, never from workflow input",
                );
            }
        }
        for (i, name) in self.response_headers.iter().enumerate() {
            if HeaderName::from_bytes(name.as_bytes()).is_err() {
                p.add(
                    &format!("response_headers[{i}]"),
                    "is not a valid header name",
                );
            }
        }
        if let Some(auth) = &self.auth {
            auth.check(&mut p.nested("auth"));
        }
    }
}

fn check_header_name(p: &mut Problems<'_>, key: &str, name: &str) {
    if HeaderName::from_bytes(name.as_bytes()).is_err() {
        p.add(key, "is not a valid header name");
    } else if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        p.add(key, format!("`{name}` is set by edgeflow itself"));
    }
}

impl AuthSettings {
    fn check(&self, p: &mut Problems<'_>) {
        let given: Vec<(&str, bool)> = vec![
            ("token_env", self.token_env.is_some()),
            ("token_file", self.token_file.is_some()),
            ("header_name", self.header_name.is_some()),
            ("header_value", self.header_value.is_some()),
            ("token_url", self.token_url.is_some()),
            ("client_id", self.client_id.is_some()),
            ("client_secret", self.client_secret.is_some()),
            ("scopes", !self.scopes.is_empty()),
            ("audience", self.audience.is_some()),
        ];
        let applies: &[&str] = match self.kind.as_str() {
            "bearer" => {
                match (&self.token_env, &self.token_file) {
                    (Some(_), Some(_)) => {
                        p.add("token_file", "give `token_env` or `token_file`, not both")
                    }
                    (None, None) => {
                        p.add("token_env", "bearer auth needs `token_env` or `token_file`")
                    }
                    (Some(var), None) => match std::env::var(var) {
                        Ok(v) if !v.trim().is_empty() => {}
                        _ => p.add(
                            "token_env",
                            format!("environment variable `{var}` is not set"),
                        ),
                    },
                    (None, Some(path)) => p.readable_file("token_file", path),
                }
                &["token_env", "token_file"]
            }
            "header" => {
                match &self.header_name {
                    None => p.add("header_name", "header auth needs `header_name`"),
                    Some(name) => check_header_name(p, "header_name", name),
                }
                match &self.header_value {
                    None => p.add("header_value", "header auth needs `header_value`"),
                    Some(v) if HeaderValue::from_str(v.expose_secret()).is_err() => p.add(
                        "header_value",
                        "is not a valid header value (control characters?)",
                    ),
                    Some(_) => {}
                }
                &["header_name", "header_value"]
            }
            "oauth2_client_credentials" => {
                match &self.token_url {
                    None => p.add("token_url", "oauth2 needs `token_url`"),
                    Some(url) => {
                        p.http_url("token_url", url);
                    }
                }
                if self.client_id.as_deref().is_none_or(str::is_empty) {
                    p.add("client_id", "oauth2 needs `client_id`");
                }
                if self.client_secret.is_none() {
                    p.add("client_secret", "oauth2 needs `client_secret`");
                }
                &[
                    "token_url",
                    "client_id",
                    "client_secret",
                    "scopes",
                    "audience",
                ]
            }
            other => {
                p.add(
                    "kind",
                    format!(
                        "unknown auth kind `{other}`; expected bearer, header or oauth2_client_credentials"
                    ),
                );
                return;
            }
        };
        for (key, present) in given {
            if present && !applies.contains(&key) {
                p.add(key, format!("does not apply to auth kind `{}`", self.kind));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings as the binary's loader hands them over (here from JSON rather than TOML layers).
    fn parse(json: &str) -> HttpSettings {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn defaults_fill_everything_but_the_url() {
        let s = parse(r#"{"billing": {"base_url": "https://billing.internal/api/"}}"#);
        let b = &s.services["billing"];
        assert_eq!(b.timeout_secs, 30.0);
        assert_eq!(b.max_concurrent, 16);
        assert_eq!(b.max_response_bytes, 1 << 20);
        assert!(s.validate().is_empty(), "{:?}", s.validate());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let r: Result<HttpSettings, _> = serde_json::from_value(serde_json::json!({
            "billing": {"base_url": "https://x", "timeout": 3}
        }));
        assert!(
            r.unwrap_err()
                .to_string()
                .contains("unknown field `timeout`")
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let s = parse(
            r#"{
            "Bad-Name": {"base_url": "ftp://x"},
            "billing": {
                "base_url": "https://billing/?q=1",
                "timeout_secs": 0,
                "max_concurrent": 0,
                "rate_per_sec": -1,
                "headers": {"Host": "x"},
                "allowed_request_headers": ["Authorization", "bad header"],
                "auth": {"kind": "kerberos"}
            },
            "crm": {
                "base_url": "https://crm/",
                "auth": {"kind": "bearer", "token_file": "/nonexistent/token", "client_id": "x"}
            },
            "maps": {
                "base_url": "https://maps/",
                "auth": {"kind": "oauth2_client_credentials", "token_url": "nope"}
            }
        }"#,
        );
        let paths: Vec<String> = s.validate().into_iter().map(|e| e.path).collect();
        for expected in [
            "services.Bad-Name",
            "services.Bad-Name.base_url",
            "services.billing.base_url",
            "services.billing.timeout_secs",
            "services.billing.max_concurrent",
            "services.billing.rate_per_sec",
            "services.billing.headers.Host",
            "services.billing.allowed_request_headers[0]",
            "services.billing.allowed_request_headers[1]",
            "services.billing.auth.kind",
            "services.crm.auth.token_file",
            "services.crm.auth.client_id",
            "services.maps.auth.token_url",
            "services.maps.auth.client_id",
            "services.maps.auth.client_secret",
        ] {
            assert!(
                paths.iter().any(|p| p == expected),
                "missing {expected} in {paths:#?}"
            );
        }
        assert_eq!(paths.len(), 15, "{paths:#?}");
    }
}
