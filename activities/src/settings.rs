//! The settings problem type every check reports, and the checks more than one family needs.
//!
//! Each family's settings type has `validate()` (problems reported at the key paths the binary
//! embeds it under: `services.NAME`, `database`, `email`, `webhooks.NAME`) and `validate_at()`
//! for another prefix. Validation never stops at the first problem: a start-up with five bad keys
//! names all five.

use std::fmt;
use std::path::Path;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// A secret setting. Read it with [`ExposeSecret::expose_secret`]; it prints, debugs and
/// serializes as `"[redacted]"`, so `edgeflow config check`, logs and panics never show it.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(SecretString);

impl ExposeSecret<str> for Secret {
    fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(SecretString::from(value))
    }
}

impl From<Secret> for SecretString {
    fn from(value: Secret) -> Self {
        value.0
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(SecretString::from(value))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

impl schemars::JsonSchema for Secret {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Secret".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "writeOnly": true })
    }
}

/// One problem with one setting, named by its key path (e.g. `services.billing.base_url`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SettingError {
    /// Dotted key path; list items as `key[index]`.
    pub path: String,
    /// What is wrong, in words an operator can act on.
    pub message: String,
}

impl SettingError {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Collects problems under a key prefix.
pub(crate) struct Problems<'a> {
    prefix: String,
    out: &'a mut Vec<SettingError>,
}

impl<'a> Problems<'a> {
    pub(crate) fn new(prefix: &str, out: &'a mut Vec<SettingError>) -> Self {
        Self {
            prefix: prefix.to_owned(),
            out,
        }
    }

    /// The full path of `key` under this prefix.
    pub(crate) fn path(&self, key: &str) -> String {
        join(&self.prefix, key)
    }

    pub(crate) fn add(&mut self, key: &str, message: impl Into<String>) {
        self.out.push(SettingError::new(self.path(key), message));
    }

    /// Problems under `prefix.key`.
    pub(crate) fn nested(&mut self, key: &str) -> Problems<'_> {
        Problems {
            prefix: join(&self.prefix, key),
            out: self.out,
        }
    }

    /// An absolute `http`/`https` URL with a host, no credentials and no fragment.
    pub(crate) fn http_url(&mut self, key: &str, value: &str) -> Option<url::Url> {
        match url::Url::parse(value) {
            Err(e) => {
                self.add(key, format!("`{value}` is not a URL: {e}"));
                None
            }
            Ok(u) if !matches!(u.scheme(), "http" | "https") => {
                self.add(key, format!("`{value}` must use http or https"));
                None
            }
            Ok(u) if u.host_str().is_none_or(str::is_empty) => {
                self.add(key, format!("`{value}` has no host"));
                None
            }
            Ok(u) if !u.username().is_empty() || u.password().is_some() => {
                self.add(key, "must not contain credentials; configure auth instead");
                None
            }
            Ok(u) if u.fragment().is_some() => {
                self.add(key, format!("`{value}` must not have a #fragment"));
                None
            }
            Ok(u) => Some(u),
        }
    }

    /// A finite duration in seconds within `(0, max]`.
    pub(crate) fn secs(&mut self, key: &str, value: f64, max: f64) {
        if !value.is_finite() || value <= 0.0 || value > max {
            self.add(
                key,
                format!("must be more than 0 and at most {max} seconds"),
            );
        }
    }

    /// A file that exists and can be read now.
    pub(crate) fn readable_file(&mut self, key: &str, path: &Path) {
        if let Err(e) = std::fs::File::open(path).and_then(|f| f.metadata()) {
            self.add(key, format!("cannot read `{}`: {e}", path.display()));
        } else if path.is_dir() {
            self.add(
                key,
                format!("`{}` is a directory, not a file", path.display()),
            );
        }
    }

    /// A directory that exists and can be listed now.
    pub(crate) fn readable_dir(&mut self, key: &str, path: &Path) -> bool {
        match std::fs::read_dir(path) {
            Ok(_) => true,
            Err(e) => {
                self.add(
                    key,
                    format!("cannot read directory `{}`: {e}", path.display()),
                );
                false
            }
        }
    }
}

fn join(prefix: &str, key: &str) -> String {
    match (prefix.is_empty(), key.is_empty()) {
        (true, _) => key.to_owned(),
        (_, true) => prefix.to_owned(),
        _ if key.starts_with('[') => format!("{prefix}{key}"),
        _ => format!("{prefix}.{key}"),
    }
}

/// Whether `name` is a lower-case identifier (`[a-z][a-z0-9_]*`, at most 64 characters): the
/// shape of every name that input refers to (service, statement, template, endpoint), so that a
/// name can never be a path.
pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 64
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_nest_with_dots_and_brackets() {
        let mut out = Vec::new();
        let mut p = Problems::new("services", &mut out);
        let mut billing = p.nested("billing");
        billing.add("base_url", "bad");
        billing.nested("headers").add("[0]", "bad");
        assert_eq!(out[0].path, "services.billing.base_url");
        assert_eq!(out[1].path, "services.billing.headers[0]");
        assert_eq!(out[0].to_string(), "services.billing.base_url: bad");
    }

    #[test]
    fn urls_are_checked_for_scheme_host_and_credentials() {
        let mut out = Vec::new();
        let mut p = Problems::new("x", &mut out);
        assert!(p.http_url("a", "https://api.example.com/v1/").is_some());
        assert!(p.http_url("b", "ftp://example.com").is_none());
        assert!(p.http_url("c", "not a url").is_none());
        assert!(p.http_url("d", "https://user:pw@example.com").is_none());
        assert!(p.http_url("e", "https://example.com/#frag").is_none());
        let paths: Vec<_> = out.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["x.b", "x.c", "x.d", "x.e"]);
    }

    #[test]
    fn identifiers_are_lower_snake_case() {
        for ok in ["billing", "insert_order", "a1"] {
            assert!(is_identifier(ok), "{ok}");
        }
        for bad in [
            "",
            "Billing",
            "1a",
            "a-b",
            "../x",
            "a/b",
            "a.b",
            &"a".repeat(65),
        ] {
            assert!(!is_identifier(bad), "{bad}");
        }
    }
}
