//! `[temporal]`: how to reach the Temporal frontend (address, namespace, TLS, API key), and its
//! checks. The address is parsed here, once, when the settings load.

use std::path::PathBuf;
use std::str::FromStr;

use edgeflow_activities::settings::Secret;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::settings::error::{SettingError, check_readable, problem};
use crate::settings::parsed::Parsed;

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemporalSettings {
    /// gRPC address of the frontend: `host:port` (as the `temporal` CLI and every SDK take it;
    /// TLS when `[temporal.tls]` or an API key asks for it), `http://host:port` or
    /// `https://host:port`.
    pub address: Parsed<TemporalAddress>,
    pub namespace: String,
    /// API key given inline. Prefer `api_key_env` or `api_key_file`.
    pub api_key: Option<Secret>,
    /// Name of an environment variable holding the API key.
    pub api_key_env: Option<String>,
    /// File holding the API key; re-read when it changes, without a restart.
    pub api_key_file: Option<PathBuf>,
    pub connect_timeout_secs: u64,
    /// How often the API key and client certificate files are checked for changes.
    pub credentials_check_secs: u64,
    /// gRPC message compression: `gzip` saves bandwidth over a wide-area link (e.g. to Temporal
    /// Cloud); `none` saves the worker about a third of its CPU on loopback or a LAN; `auto` picks
    /// `none` when the address is loopback or private, `gzip` otherwise.
    pub grpc_compression: GrpcCompression,
    pub tls: TlsSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GrpcCompression {
    Auto,
    Gzip,
    None,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// Use TLS even without a CA or client certificate (an API key turns it on as well).
    pub enabled: bool,
    /// PEM file of the CA that signed the server's certificate (default: the system's roots).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate for mTLS; re-read when it changes.
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key for `client_cert_file`.
    pub client_key_file: Option<PathBuf>,
    /// Server name to verify the certificate against, when it differs from the address's host.
    pub domain: Option<String>,
}

/// `temporal.address`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemporalAddress {
    /// `host:port`, as the `temporal` CLI and every SDK take it: the scheme follows whether TLS
    /// is wanted for other reasons. Both URLs are made when the settings load.
    HostPort { plain: Url, tls: Url },
    /// `http://host:port` or `https://host:port`: the scheme as written.
    Url(Url),
}

impl TemporalAddress {
    /// The address as a URL. `host:port` takes `https://` when `tls` (TLS is wanted for other
    /// reasons: `[temporal.tls]`, an API key), else `http://`.
    pub fn endpoint(&self, tls: bool) -> &Url {
        match self {
            TemporalAddress::HostPort { tls: url, .. } if tls => url,
            TemporalAddress::HostPort { plain, .. } => plain,
            TemporalAddress::Url(url) => url,
        }
    }

    /// Written as `host:port`, without a scheme.
    pub fn is_host_port(&self) -> bool {
        matches!(self, TemporalAddress::HostPort { .. })
    }
}

impl FromStr for TemporalAddress {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let address = text.trim();
        let parse = |text: &str| {
            let url =
                Url::parse(text).map_err(|e| format!("`{address}` is not an address: {e}"))?;
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                return Err(format!(
                    "`{address}` must be host:port, http://host:port or https://host:port"
                ));
            }
            Ok(url)
        };
        if address.contains("://") {
            return parse(address).map(TemporalAddress::Url);
        }
        let plain = parse(&format!("http://{address}"))?;
        if plain.port().is_none() {
            return Err(format!("`{address}` needs a port, e.g. `{address}:7233`"));
        }
        Ok(TemporalAddress::HostPort {
            plain,
            tls: parse(&format!("https://{address}"))?,
        })
    }
}

impl TemporalSettings {
    /// What the schema can't check: one key source, readable files, non-zero intervals.
    pub fn validate(&self) -> Vec<SettingError> {
        let t = self;
        let mut out = Vec::new();
        if t.namespace.trim().is_empty() {
            out.push(problem("temporal.namespace", "must not be empty"));
        }
        let key_sources = [
            t.api_key.is_some(),
            t.api_key_env.is_some(),
            t.api_key_file.is_some(),
        ];
        if key_sources.iter().filter(|s| **s).count() > 1 {
            out.push(problem(
                "temporal.api_key",
                "set at most one of api_key, api_key_env and api_key_file",
            ));
        }
        if let Some(var) = &t.api_key_env
            && std::env::var(var)
                .map(|v| v.trim().is_empty())
                .unwrap_or(true)
        {
            out.push(problem(
                "temporal.api_key_env",
                format!("environment variable `{var}` is not set or empty"),
            ));
        }
        check_readable(&mut out, "temporal.api_key_file", t.api_key_file.as_deref());
        check_readable(&mut out, "temporal.tls.ca_file", t.tls.ca_file.as_deref());
        check_readable(
            &mut out,
            "temporal.tls.client_cert_file",
            t.tls.client_cert_file.as_deref(),
        );
        check_readable(
            &mut out,
            "temporal.tls.client_key_file",
            t.tls.client_key_file.as_deref(),
        );
        if t.tls.client_cert_file.is_some() != t.tls.client_key_file.is_some() {
            out.push(problem(
                "temporal.tls.client_key_file",
                "client_cert_file and client_key_file must be set together",
            ));
        }
        if t.credentials_check_secs == 0 {
            out.push(problem(
                "temporal.credentials_check_secs",
                "must be at least 1",
            ));
        }
        if t.connect_timeout_secs == 0 {
            out.push(problem(
                "temporal.connect_timeout_secs",
                "must be at least 1",
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_is_an_address_as_in_every_temporal_sdk() {
        let a: TemporalAddress = "127.0.0.1:7233".parse().unwrap();
        assert!(a.is_host_port());
        assert_eq!(a.endpoint(false).as_str(), "http://127.0.0.1:7233/");
        assert_eq!(a.endpoint(true).as_str(), "https://127.0.0.1:7233/");
        let a: TemporalAddress = "http://10.0.0.1:7233".parse().unwrap();
        assert!(!a.is_host_port());
        assert_eq!(a.endpoint(true).as_str(), "http://10.0.0.1:7233/");
        assert_eq!(
            "ns.acct.tmprl.cloud"
                .parse::<TemporalAddress>()
                .unwrap_err(),
            "`ns.acct.tmprl.cloud` needs a port, e.g. `ns.acct.tmprl.cloud:7233`"
        );
        assert_eq!(
            "ftp://x:1".parse::<TemporalAddress>().unwrap_err(),
            "`ftp://x:1` must be host:port, http://host:port or https://host:port"
        );
        assert!(
            "not a url"
                .parse::<TemporalAddress>()
                .unwrap_err()
                .starts_with("`not a url` is not an address: ")
        );
    }
}
