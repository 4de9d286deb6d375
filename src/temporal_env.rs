//! Temporal's standard client configuration as a settings layer, so a Temporal user's existing
//! setup just works: the `TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY` and
//! `TEMPORAL_TLS_*` variables and a `temporal.toml` profile (`TEMPORAL_CONFIG_FILE`, default
//! `~/.config/temporalio/temporal.toml`; `TEMPORAL_PROFILE`, default `default`), read by the SDK's
//! own loader exactly as the `temporal` CLI and the other SDKs read them.
//!
//! The layer sits beneath `EDGEFLOW__…` variables and `--config`, above the files in `config/`:
//! an explicit edgeflow setting still wins. What edgeflow cannot honour is an error naming the
//! variable, never silently dropped: certificates given inline (`*_DATA`; give a path),
//! `TEMPORAL_TLS_DISABLE_HOST_VERIFICATION`, and `TEMPORAL_GRPC_META_*`. The codec settings are
//! for the CLI and UI, which decode payloads for humans; a worker does not use them.

use std::collections::HashMap;
use std::path::PathBuf;

use temporalio_common::envconfig::{
    ClientConfigProfile, DataSource, LoadClientConfigProfileOptions, load_client_config_profile,
};

use crate::settings::error::{SettingError, problem};

/// The Temporal client variables and profile file a process sees.
#[derive(Debug, Clone, Default)]
pub struct TemporalClientEnv {
    /// `TEMPORAL_*` variables.
    pub vars: HashMap<String, String>,
    /// The profile file, when one exists (or is named by `TEMPORAL_CONFIG_FILE`).
    pub file: Option<PathBuf>,
}

impl TemporalClientEnv {
    /// What this process's environment holds.
    pub fn from_process() -> Self {
        let vars: HashMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("TEMPORAL_"))
            .collect();
        let file = match vars.get("TEMPORAL_CONFIG_FILE") {
            Some(named) => Some(PathBuf::from(named)),
            None => default_profile_file().filter(|f| f.is_file()),
        };
        Self { vars, file }
    }

    /// The `[temporal]` settings this configuration gives, as TOML, or every problem with it.
    pub fn layer(&self) -> Result<Option<String>, Vec<SettingError>> {
        if self.vars.is_empty() && self.file.is_none() {
            return Ok(None);
        }
        if let Some(file) = self.file.as_ref().filter(|f| !f.is_file()) {
            return Err(vec![problem(
                "TEMPORAL_CONFIG_FILE",
                format!("`{}` does not exist", file.display()),
            )]);
        }
        let options = LoadClientConfigProfileOptions::builder()
            .maybe_config_source(
                self.file
                    .as_ref()
                    .map(|f| DataSource::Path(f.display().to_string())),
            )
            .disable_file(self.file.is_none())
            .build();
        let profile = load_client_config_profile(options, Some(&self.vars)).map_err(|e| {
            let origin = match &self.file {
                Some(f) => format!("{} / TEMPORAL_* variables", f.display()),
                None => "TEMPORAL_* variables".to_string(),
            };
            vec![problem(origin, e.to_string())]
        })?;
        let table = to_settings(&profile)?;
        if table.is_empty() {
            return Ok(None);
        }
        let mut root = toml::Table::new();
        root.insert("temporal".into(), toml::Value::Table(table));
        Ok(Some(root.to_string()))
    }
}

/// `~/.config/temporalio/temporal.toml` (or under `$XDG_CONFIG_HOME`), where the CLI keeps it.
fn default_profile_file() -> Option<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(config.join("temporalio").join("temporal.toml"))
}

fn to_settings(p: &ClientConfigProfile) -> Result<toml::Table, Vec<SettingError>> {
    let mut temporal = toml::Table::new();
    let mut tls = toml::Table::new();
    let mut problems = Vec::new();
    if let Some(address) = &p.address {
        temporal.insert("address".into(), address.clone().into());
    }
    if let Some(namespace) = &p.namespace {
        temporal.insert("namespace".into(), namespace.clone().into());
    }
    if let Some(key) = &p.api_key {
        temporal.insert("api_key".into(), key.clone().into());
    }
    // As every SDK does: an API key turns TLS on unless TLS is explicitly disabled.
    let tls_disabled = p.tls.as_ref().and_then(|t| t.disabled);
    match tls_disabled {
        Some(disabled) => {
            tls.insert("enabled".into(), (!disabled).into());
        }
        None if p.api_key.is_some() || p.tls.is_some() => {
            tls.insert("enabled".into(), true.into());
        }
        None => {}
    }
    if let Some(t) = &p.tls {
        let mut path = |source: &Option<DataSource>, key: &str, variable: &str| match source {
            Some(DataSource::Path(path)) => {
                tls.insert(key.into(), path.clone().into());
            }
            Some(_) => problems.push(problem(
                variable,
                format!("inline certificate data is not supported: give a file ({variable}_PATH)"),
            )),
            None => {}
        };
        path(
            &t.client_cert,
            "client_cert_file",
            "TEMPORAL_TLS_CLIENT_CERT_DATA",
        );
        path(
            &t.client_key,
            "client_key_file",
            "TEMPORAL_TLS_CLIENT_KEY_DATA",
        );
        path(
            &t.server_ca_cert,
            "ca_file",
            "TEMPORAL_TLS_SERVER_CA_CERT_DATA",
        );
        if let Some(name) = &t.server_name {
            tls.insert("domain".into(), name.clone().into());
        }
        if t.disable_host_verification {
            problems.push(problem(
                "TEMPORAL_TLS_DISABLE_HOST_VERIFICATION",
                "edgeflow always verifies the server's certificate; set TEMPORAL_TLS_SERVER_NAME \
                 or a CA file instead",
            ));
        }
    }
    if !p.grpc_meta.is_empty() {
        let mut names: Vec<&String> = p.grpc_meta.keys().collect();
        names.sort();
        problems.push(problem(
            "TEMPORAL_GRPC_META_*",
            format!(
                "extra gRPC metadata ({}) is not supported",
                names
                    .iter()
                    .map(|n| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    if !tls.is_empty() {
        temporal.insert("tls".into(), toml::Value::Table(tls));
    }
    if problems.is_empty() {
        Ok(temporal)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> TemporalClientEnv {
        TemporalClientEnv {
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            file: None,
        }
    }

    fn layer(e: &TemporalClientEnv) -> toml::Table {
        e.layer().unwrap().unwrap().parse().unwrap()
    }

    #[test]
    fn nothing_set_is_no_layer() {
        assert_eq!(env(&[]).layer().unwrap(), None);
    }

    #[test]
    fn the_standard_variables_become_temporal_settings() {
        let t = layer(&env(&[
            ("TEMPORAL_ADDRESS", "ns.acct.tmprl.cloud:7233"),
            ("TEMPORAL_NAMESPACE", "ns.acct"),
            ("TEMPORAL_API_KEY", "key-123"),
        ]));
        let temporal = &t["temporal"];
        assert_eq!(
            temporal["address"].as_str(),
            Some("ns.acct.tmprl.cloud:7233")
        );
        assert_eq!(temporal["namespace"].as_str(), Some("ns.acct"));
        assert_eq!(temporal["api_key"].as_str(), Some("key-123"));
        // An API key turns TLS on, as in every SDK.
        assert_eq!(temporal["tls"]["enabled"].as_bool(), Some(true));

        let t = layer(&env(&[
            ("TEMPORAL_API_KEY", "key-123"),
            ("TEMPORAL_TLS", "false"),
        ]));
        assert_eq!(t["temporal"]["tls"]["enabled"].as_bool(), Some(false));
    }

    #[test]
    fn a_profile_file_is_read_and_variables_win_over_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("temporal.toml");
        std::fs::write(
            &file,
            "[profile.default]\naddress = \"file-host:7233\"\nnamespace = \"from-file\"\n\
             [profile.prod]\naddress = \"prod:7233\"\n[profile.prod.tls]\n\
             client_cert_path = \"/etc/c.pem\"\nclient_key_path = \"/etc/c.key\"\n",
        )
        .unwrap();
        let mut e = env(&[("TEMPORAL_NAMESPACE", "from-env")]);
        e.file = Some(file.clone());
        let t = layer(&e);
        assert_eq!(t["temporal"]["address"].as_str(), Some("file-host:7233"));
        assert_eq!(t["temporal"]["namespace"].as_str(), Some("from-env"));

        let mut e = env(&[("TEMPORAL_PROFILE", "prod")]);
        e.file = Some(file);
        let t = layer(&e);
        assert_eq!(t["temporal"]["address"].as_str(), Some("prod:7233"));
        assert_eq!(
            t["temporal"]["tls"]["client_cert_file"].as_str(),
            Some("/etc/c.pem")
        );
    }

    #[test]
    fn what_edgeflow_cannot_honour_is_an_error_naming_it() {
        let problems = env(&[
            (
                "TEMPORAL_TLS_CLIENT_CERT_DATA",
                "-----BEGIN CERTIFICATE-----",
            ),
            ("TEMPORAL_TLS_DISABLE_HOST_VERIFICATION", "true"),
            ("TEMPORAL_GRPC_META_X_TENANT", "a"),
        ])
        .layer()
        .unwrap_err();
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "TEMPORAL_TLS_CLIENT_CERT_DATA",
                "TEMPORAL_TLS_DISABLE_HOST_VERIFICATION",
                "TEMPORAL_GRPC_META_*"
            ]
        );
        let mut missing = env(&[]);
        missing.file = Some("/nonexistent/temporal.toml".into());
        assert_eq!(missing.layer().unwrap_err()[0].path, "TEMPORAL_CONFIG_FILE");
    }
}
