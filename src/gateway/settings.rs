//! `[gateway]`: where `edgeflow gateway` listens, which tokens it accepts, where the edge's keys
//! are; and its checks. The key URL is parsed here, once, when the settings load.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::settings::error::{SettingError, check_readable, problem};
use crate::settings::parsed::Parsed;

/// The longest token lifetime the gateway accepts, whatever the settings say.
pub const MAX_TOKEN_AGE_LIMIT_SECS: u64 = 60;

/// `edgeflow gateway`: the edge's HTTP door to Temporal, verifying a short-lived token per request.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GatewaySettings {
    /// Address the gateway serves Temporal's HTTP API shape on, e.g. `127.0.0.1:8790`.
    pub listen: SocketAddr,
    /// `aud` every token must carry: names this gateway.
    pub audience: String,
    /// `iss` every token must carry: names the edge that signs them.
    pub issuer: String,
    /// The edge's public keys as a JWKS file; re-read when it changes. Set this or `jwks_url`.
    pub jwks_file: Option<PathBuf>,
    /// The edge's public keys as a JWKS URL, fetched every `keys_refresh_secs`.
    pub jwks_url: Option<Parsed<JwksUrl>>,
    /// How often the key file is checked or the key URL fetched; an unknown `kid` also triggers
    /// a reload, at most once a second.
    pub keys_refresh_secs: u64,
    /// Longest a token may live (`exp - iat`), at most 60.
    pub max_token_age_secs: u64,
    /// Clock difference tolerated between the edge and the gateway.
    pub clock_skew_secs: u64,
    /// Token ids remembered to refuse replays (each for its token's lifetime); when full, new
    /// tokens are refused with 503 rather than forgetting one early.
    pub replay_cache_entries: usize,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Deadline of each call to Temporal (the history long poll returns earlier by itself).
    pub call_timeout_secs: u64,
}

/// `gateway.jwks_url`, parsed: an `http://` or `https://` URL with a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksUrl(pub Url);

impl FromStr for JwksUrl {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match Url::parse(text) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(Self(u)),
            _ => Err(format!("`{text}` is not an http:// or https:// URL")),
        }
    }
}

impl GatewaySettings {
    /// What the schema can't check: one key source at most, a readable key file, token limits.
    pub fn validate(&self) -> Vec<SettingError> {
        let g = self;
        let mut out = Vec::new();
        for (key, value) in [("audience", &g.audience), ("issuer", &g.issuer)] {
            if value.trim().is_empty() {
                out.push(problem(format!("gateway.{key}"), "must not be empty"));
            }
        }
        if g.jwks_file.is_some() && g.jwks_url.is_some() {
            out.push(problem(
                "gateway.jwks_url",
                "set at most one of jwks_file and jwks_url",
            ));
        }
        check_readable(&mut out, "gateway.jwks_file", g.jwks_file.as_deref());
        if !(1..=MAX_TOKEN_AGE_LIMIT_SECS).contains(&g.max_token_age_secs) {
            out.push(problem(
                "gateway.max_token_age_secs",
                format!("must be between 1 and {MAX_TOKEN_AGE_LIMIT_SECS}"),
            ));
        }
        if g.clock_skew_secs > 30 {
            out.push(problem("gateway.clock_skew_secs", "must be at most 30"));
        }
        for (key, value) in [
            ("keys_refresh_secs", g.keys_refresh_secs),
            ("call_timeout_secs", g.call_timeout_secs),
            ("replay_cache_entries", g.replay_cache_entries as u64),
            ("max_body_bytes", g.max_body_bytes as u64),
        ] {
            if value == 0 {
                out.push(problem(format!("gateway.{key}"), "must be at least 1"));
            }
        }
        out
    }

    /// What `edgeflow gateway` needs beyond a valid tree: somewhere to read the edge's keys from.
    /// (A worker never reads them, so an unset key source is no problem for it.)
    pub fn check_serving(&self) -> Vec<SettingError> {
        if self.jwks_file.is_none() && self.jwks_url.is_none() {
            vec![problem(
                "gateway.jwks_file",
                "set jwks_file or jwks_url: the edge's public keys, to verify its tokens",
            )]
        } else {
            vec![]
        }
    }
}
