//! Where settings come from, and how the layers merge into one tree.
//!
//! Layers, later ones winning: `config/default.toml` → `config/{EDGEFLOW_ENV}.toml` → Temporal's
//! standard client configuration (`TEMPORAL_*` variables, a `temporal.toml` profile; see
//! [`crate::temporal_env`]) → environment variables `EDGEFLOW__SECTION__KEY` → the file given with
//! `--config`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::error::{SettingsErrors, problem};
use crate::temporal_env::TemporalClientEnv;

/// Where the layered files live unless `EDGEFLOW_CONFIG_DIR` says otherwise.
pub const DEFAULT_CONFIG_DIR: &str = "config";

/// Where settings come from; built from the process environment by [`Sources::from_env`].
#[derive(Debug, Clone)]
pub struct Sources {
    pub config_dir: PathBuf,
    /// `EDGEFLOW_ENV`, selecting `config/{env}.toml`.
    pub env: Option<String>,
    /// `EDGEFLOW__…` variables, already read.
    pub vars: BTreeMap<String, String>,
    pub file: Option<PathBuf>,
    /// Temporal's own client variables and profile file.
    pub temporal_client: TemporalClientEnv,
}

impl Sources {
    pub fn from_env(file: Option<PathBuf>) -> Self {
        Self {
            config_dir: std::env::var_os("EDGEFLOW_CONFIG_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_DIR)),
            env: std::env::var("EDGEFLOW_ENV").ok().filter(|e| !e.is_empty()),
            vars: std::env::vars()
                .filter(|(k, _)| k.starts_with("EDGEFLOW__"))
                .collect(),
            file,
            temporal_client: TemporalClientEnv::from_process(),
        }
    }
}

/// The layers merged, and the first layer alone.
pub struct Layered {
    /// Every layer merged: what the settings are.
    pub tree: serde_json::Value,
    /// `config/default.toml` alone: what a key is when nothing else sets it.
    pub defaults: serde_json::Value,
}

/// Merges the layers into one JSON tree.
pub fn merged_tree(sources: &Sources) -> Result<Layered, SettingsErrors> {
    let default_file = sources.config_dir.join("default.toml");
    if !default_file.is_file() {
        return Err(SettingsErrors(vec![problem(
            "(config dir)",
            format!(
                "`{}` not found; run from the project folder or set EDGEFLOW_CONFIG_DIR",
                default_file.display()
            ),
        )]));
    }
    let defaults = config::File::from(default_file.clone()).format(config::FileFormat::Toml);
    let mut builder = config::Config::builder().add_source(defaults.clone());
    let mut problems = Vec::new();
    if let Some(env) = &sources.env {
        let env_file = sources.config_dir.join(format!("{env}.toml"));
        if env_file.is_file() {
            builder =
                builder.add_source(config::File::from(env_file).format(config::FileFormat::Toml));
        } else {
            problems.push(problem(
                "EDGEFLOW_ENV",
                format!("`{env}` names no file `{}`", env_file.display()),
            ));
        }
    }
    match sources.temporal_client.layer() {
        Ok(Some(layer)) => {
            builder = builder.add_source(config::File::from_str(&layer, config::FileFormat::Toml));
        }
        Ok(None) => {}
        Err(found) => problems.extend(found),
    }
    let mut env = config::Environment::with_prefix("EDGEFLOW")
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true)
        .source(Some(sources.vars.clone().into_iter().collect()));
    // List-valued keys given as one variable, comma-separated (e.g. webhook signing secrets).
    // Only these: with no list key named, the config crate would split every value.
    let list_keys: Vec<String> = sources
        .vars
        .keys()
        .filter(|k| k.ends_with("__SECRETS"))
        .map(|k| {
            k.trim_start_matches("EDGEFLOW__")
                .to_lowercase()
                .replace("__", ".")
        })
        .collect();
    if !list_keys.is_empty() {
        env = env.list_separator(",");
        for key in &list_keys {
            env = env.with_list_parse_key(key);
        }
    }
    builder = builder.add_source(env);
    if let Some(file) = &sources.file {
        if file.is_file() {
            builder = builder
                .add_source(config::File::from(file.clone()).format(config::FileFormat::Toml));
        } else {
            problems.push(problem(
                "--config",
                format!("cannot read `{}`", file.display()),
            ));
        }
    }
    if !problems.is_empty() {
        return Err(SettingsErrors(problems));
    }
    let read = |builder: config::ConfigBuilder<config::builder::DefaultState>| {
        builder
            .build()
            .and_then(|c| c.try_deserialize::<serde_json::Value>())
            .map_err(|e| SettingsErrors(vec![problem("(file)", e.to_string())]))
    };
    Ok(Layered {
        tree: read(builder)?,
        defaults: read(config::Config::builder().add_source(defaults))?,
    })
}
