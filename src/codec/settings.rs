//! `[encryption]`: the payload keys by id, which one encrypts, and whether plaintext payloads are
//! still accepted; and its checks, which read every key when the settings load.
//!
//! Keys are AES-256 keys (32 bytes), each given inline (`key`, base64) or in a file
//! (`key_file`). `active_key_id` names the one new payloads are encrypted with; every other key
//! only decrypts, so payloads written under an older key stay readable after a rotation. With no
//! keys the section changes nothing: no codec is installed at all.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use edgeflow_activities::settings::Secret;
use schemars::JsonSchema;
use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretBox};
use serde::{Deserialize, Serialize};

use crate::settings::error::{SettingError, problem};

/// Bytes in an AES-256 key.
pub const KEY_LEN: usize = 32;

/// A key's bytes, zeroed when dropped and never printed.
pub type KeyBytes = SecretBox<[u8; KEY_LEN]>;

/// Every configured key's bytes, read, and the id of the one that encrypts.
pub struct Keys {
    pub by_id: BTreeMap<String, KeyBytes>,
    pub active_key_id: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EncryptionSettings {
    /// The keys, by id (the id is written into every payload it encrypts, as
    /// `encryption-key-id`). None by default: payloads are not encrypted.
    #[serde(default)]
    pub keys: BTreeMap<String, KeySettings>,
    /// The key new payloads are encrypted with; the others only decrypt.
    pub active_key_id: Option<String>,
    /// Refuse payloads that are not encrypted (once every run started before encryption has
    /// finished), so no one with write access to the namespace can inject plaintext.
    #[serde(default)]
    pub require_encrypted: bool,
    /// Hold the keys and decrypt, but encrypt nothing yet: the first step of turning encryption
    /// on across several processes, so every decoder has the key before anything encrypts.
    #[serde(default)]
    pub decrypt_only: bool,
}

/// One key: inline or from a file, not both.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeySettings {
    /// The key as base64 of its 32 bytes (e.g. `openssl rand -base64 32`).
    pub key: Option<Secret>,
    /// A file holding the key: its 32 bytes, or their base64.
    pub key_file: Option<PathBuf>,
}

impl EncryptionSettings {
    /// Whether payloads are encrypted at all (keys are configured).
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// In an operator's words, for `edgeflow config check` and the worker's start-up log.
    pub fn describe(&self) -> String {
        let active = self.active_key_id.as_deref().unwrap_or_default();
        let keys = self.keys.len();
        match (self.enabled(), self.decrypt_only, self.require_encrypted) {
            (false, ..) => "off (no [encryption.keys])".to_string(),
            (true, true, _) => {
                format!("decrypt-only: {keys} key(s) decrypt, nothing is encrypted yet")
            }
            (true, false, require) => format!(
                "on: new payloads and failure messages are encrypted with key `{active}`, \
                 {keys} key(s) decrypt, plaintext payloads are {}",
                if require { "refused" } else { "passed through" }
            ),
        }
    }

    /// What the schema can't check: each key readable and 32 bytes, the active id naming one.
    pub fn validate(&self) -> Vec<SettingError> {
        match self.read_keys() {
            Ok(_) => Vec::new(),
            Err(problems) => problems,
        }
    }

    /// Every key's bytes, files read now, and the active key's id; `None` when no key is
    /// configured. Every problem at once otherwise, each at its key path.
    pub fn read_keys(&self) -> Result<Option<Keys>, Vec<SettingError>> {
        let mut out = Vec::new();
        let mut keys = BTreeMap::new();
        for (id, key) in &self.keys {
            let at = format!("encryption.keys.{id}");
            if id.trim().is_empty() {
                out.push(problem(&at, "a key id must not be empty"));
                continue;
            }
            match read_key(&at, key) {
                Ok(bytes) => {
                    keys.insert(id.clone(), bytes);
                }
                Err(e) => out.push(e),
            }
        }
        let active = match &self.active_key_id {
            Some(active) if !self.keys.contains_key(active) => {
                out.push(problem(
                    "encryption.active_key_id",
                    no_such_key(active, self.keys.keys()),
                ));
                None
            }
            Some(active) => Some(active.clone()),
            None if !self.keys.is_empty() => {
                out.push(problem(
                    "encryption.active_key_id",
                    "keys are set but no active_key_id: name the key new payloads are encrypted with",
                ));
                None
            }
            None => None,
        };
        if self.decrypt_only && self.keys.is_empty() {
            out.push(problem(
                "encryption.decrypt_only",
                "needs [encryption.keys.ID] and active_key_id: the keys it decrypts with",
            ));
        }
        if self.decrypt_only && self.require_encrypted {
            out.push(problem(
                "encryption.decrypt_only",
                "cannot be set with require_encrypted: a process that encrypts nothing would \
                 refuse its own payloads",
            ));
        }
        if self.require_encrypted && self.keys.is_empty() {
            out.push(problem(
                "encryption.require_encrypted",
                "needs [encryption.keys.ID] and active_key_id: with no key nothing is encrypted",
            ));
        }
        if !out.is_empty() {
            return Err(out);
        }
        Ok(active.map(|active_key_id| Keys {
            by_id: keys,
            active_key_id,
        }))
    }
}

/// Why `active` names no key, with the likely cause when it differs only in case.
fn no_such_key<'a>(active: &str, ids: impl Iterator<Item = &'a String>) -> String {
    let ids: Vec<&String> = ids.collect();
    let mut message = if ids.is_empty() {
        format!("`{active}` names no key: no [encryption.keys.ID] is set")
    } else {
        let listed: Vec<String> = ids.iter().map(|id| format!("`{id}`")).collect();
        format!(
            "`{active}` names no key in [encryption.keys] (there: {})",
            listed.join(", ")
        )
    };
    if ids.iter().any(|id| id.eq_ignore_ascii_case(active)) {
        message.push_str(
            "; key ids set through EDGEFLOW__ENCRYPTION__KEYS__ID__… variables are lower-cased",
        );
    }
    message
}

/// One key's 32 bytes, or the problem at its key path.
fn read_key(at: &str, key: &KeySettings) -> Result<KeyBytes, SettingError> {
    match (&key.key, &key.key_file) {
        (Some(_), Some(_)) => Err(problem(at, "set key or key_file, not both")),
        (None, None) => Err(problem(at, "set key (base64 of 32 bytes) or key_file")),
        (Some(inline), None) => from_base64(inline.expose_secret().trim().as_bytes())
            .map_err(|why| problem(format!("{at}.key"), why)),
        (None, Some(file)) => from_file(file).map_err(|why| problem(format!("{at}.key_file"), why)),
    }
}

fn from_base64(text: &[u8]) -> Result<KeyBytes, String> {
    let bytes = Zeroizing::new(STANDARD.decode(text).map_err(|e| {
        format!("not base64 ({e}): give base64 of 32 bytes, e.g. from `openssl rand -base64 32`")
    })?);
    exactly_32(&bytes).ok_or_else(|| {
        format!(
            "decodes to {} bytes; an AES-256 key is {KEY_LEN} (e.g. `openssl rand -base64 32`)",
            bytes.len()
        )
    })
}

/// A key file holds the key's bytes themselves or their base64 (with or without a newline).
/// Neither reading is ambiguous: base64 of 32 bytes is 44 characters, never 32.
fn from_file(file: &Path) -> Result<KeyBytes, String> {
    let content = Zeroizing::new(
        std::fs::read(file).map_err(|e| format!("cannot read `{}`: {e}", file.display()))?,
    );
    if let Some(key) = exactly_32(&content) {
        return Ok(key);
    }
    from_base64(content.trim_ascii()).map_err(|why| {
        format!(
            "`{}` holds {} bytes, neither a 32-byte key nor its base64: {why}",
            file.display(),
            content.len()
        )
    })
}

fn exactly_32(bytes: &[u8]) -> Option<KeyBytes> {
    let array: [u8; KEY_LEN] = bytes.try_into().ok()?;
    Some(SecretBox::new(Box::new(array)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktdGVzdCE="; // "test-key-test-key-test-key-test!"

    fn inline(key: &str) -> KeySettings {
        KeySettings {
            key: Some(Secret::from(key)),
            key_file: None,
        }
    }

    fn settings(keys: Vec<(&str, KeySettings)>, active: Option<&str>) -> EncryptionSettings {
        EncryptionSettings {
            keys: keys
                .into_iter()
                .map(|(id, k)| (id.to_string(), k))
                .collect(),
            active_key_id: active.map(str::to_string),
            require_encrypted: false,
            decrypt_only: false,
        }
    }

    fn paths(s: &EncryptionSettings) -> Vec<(String, String)> {
        s.validate()
            .into_iter()
            .map(|e| (e.path, e.message))
            .collect()
    }

    #[test]
    fn no_keys_is_off_and_valid() {
        let s = EncryptionSettings::default();
        assert!(!s.enabled());
        assert!(s.validate().is_empty());
        assert!(s.read_keys().expect("valid").is_none());
    }

    #[test]
    fn a_key_file_holds_raw_bytes_or_base64() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw");
        std::fs::write(&raw, b"test-key-test-key-test-key-test!").unwrap();
        let text = dir.path().join("text");
        std::fs::write(&text, format!("{KEY_A}\n")).unwrap();
        let file = |p: &Path| KeySettings {
            key: None,
            key_file: Some(p.to_path_buf()),
        };
        let s = settings(
            vec![
                ("raw", file(&raw)),
                ("text", file(&text)),
                ("inline", inline(KEY_A)),
            ],
            Some("raw"),
        );
        let keys = s.read_keys().expect("valid").expect("on");
        assert_eq!(keys.active_key_id, "raw");
        for id in ["raw", "text", "inline"] {
            assert_eq!(
                keys.by_id[id].expose_secret(),
                b"test-key-test-key-test-key-test!",
                "{id}"
            );
        }
    }

    #[test]
    fn every_bad_key_is_named_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short");
        std::fs::write(&short, "c2hvcnQ=").unwrap();
        let s = EncryptionSettings {
            require_encrypted: true,
            ..settings(
                vec![
                    ("not_base64", inline("this is not base64!")),
                    ("short", inline("c2hvcnQ=")),
                    (
                        "missing",
                        KeySettings {
                            key: None,
                            key_file: Some(dir.path().join("nope")),
                        },
                    ),
                    (
                        "short_file",
                        KeySettings {
                            key: None,
                            key_file: Some(short),
                        },
                    ),
                    (
                        "both",
                        KeySettings {
                            key: Some(Secret::from(KEY_A)),
                            key_file: Some(dir.path().join("x")),
                        },
                    ),
                    (
                        "neither",
                        KeySettings {
                            key: None,
                            key_file: None,
                        },
                    ),
                ],
                Some("Short"),
            )
        };
        let found = paths(&s);
        let at: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            at,
            [
                "encryption.keys.both",
                "encryption.keys.missing.key_file",
                "encryption.keys.neither",
                "encryption.keys.not_base64.key",
                "encryption.keys.short.key",
                "encryption.keys.short_file.key_file",
                "encryption.active_key_id",
            ],
            "{found:#?}"
        );
        let message = |p: &str| &found.iter().find(|(at, _)| at == p).unwrap().1;
        assert!(message("encryption.keys.short.key").contains("decodes to 5 bytes"));
        assert!(message("encryption.keys.missing.key_file").contains("cannot read"));
        assert!(message("encryption.keys.not_base64.key").contains("not base64"));
        assert!(message("encryption.active_key_id").contains("lower-cased"));
        // The secret never appears in a message.
        assert!(found.iter().all(|(_, m)| !m.contains(KEY_A)));
    }

    #[test]
    fn keys_need_an_active_id_and_require_encrypted_needs_keys() {
        let s = settings(vec![("a", inline(KEY_A))], None);
        assert_eq!(paths(&s)[0].0, "encryption.active_key_id");
        let s = EncryptionSettings {
            require_encrypted: true,
            ..EncryptionSettings::default()
        };
        assert_eq!(paths(&s)[0].0, "encryption.require_encrypted");
        let s = EncryptionSettings {
            decrypt_only: true,
            require_encrypted: true,
            ..settings(vec![("a", inline(KEY_A))], Some("a"))
        };
        assert_eq!(paths(&s)[0].0, "encryption.decrypt_only");
        let s = settings(vec![], Some("a"));
        assert_eq!(
            paths(&s),
            [(
                "encryption.active_key_id".to_string(),
                "`a` names no key: no [encryption.keys.ID] is set".to_string()
            )]
        );
    }
}
