//! The edge's public keys: a JWKS from a file (re-read when it changes) or a URL (fetched again
//! every `gateway.keys_refresh_secs`). Only ES256 keys (EC, P-256) are used, each under its
//! `kid`, so two can be served at once while the edge rotates its signing key. A token naming an
//! unknown `kid` makes the verifier reload at once (at most once a second), so a new key works
//! from its first token; a source that can't be read keeps the last good keys and logs why.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use tokio_util::sync::CancellationToken;

use super::settings::{GatewaySettings, JwksUrl};
use crate::settings::parsed::Parsed;

/// Public keys by `kid`.
#[derive(Default)]
pub struct KeySet(HashMap<String, UnparsedPublicKey<Vec<u8>>>);

impl KeySet {
    pub fn get(&self, kid: &str) -> Option<&UnparsedPublicKey<Vec<u8>>> {
        self.0.get(kid)
    }

    pub fn kids(&self) -> Vec<&str> {
        let mut kids: Vec<&str> = self.0.keys().map(String::as_str).collect();
        kids.sort();
        kids
    }

    /// Parses a JWKS document, keeping its ES256 keys; other keys are skipped (and named).
    pub fn from_jwks(text: &[u8]) -> Result<(Self, Vec<String>), KeyError> {
        #[derive(serde::Deserialize)]
        struct Jwks {
            keys: Vec<serde_json::Map<String, serde_json::Value>>,
        }
        let jwks: Jwks = serde_json::from_slice(text)
            .map_err(|e| KeyError::Invalid(format!("not a JWKS document: {e}")))?;
        let mut keys = HashMap::new();
        let mut skipped = Vec::new();
        for (i, jwk) in jwks.keys.iter().enumerate() {
            let field = |k: &str| jwk.get(k).and_then(|v| v.as_str());
            let kid = field("kid").unwrap_or_default();
            let usable = field("kty") == Some("EC")
                && field("crv") == Some("P-256")
                && field("alg").is_none_or(|a| a == "ES256")
                && field("use").is_none_or(|u| u == "sig");
            if !usable {
                skipped.push(format!(
                    "key {i} (kid `{kid}`): not an ES256 signing key (kty EC, crv P-256)"
                ));
                continue;
            }
            if kid.is_empty() {
                return Err(KeyError::Invalid(format!("key {i} has no `kid`")));
            }
            let coordinate = |name: &str| {
                field(name)
                    .and_then(|v| B64URL.decode(v).ok())
                    .filter(|b| b.len() == 32)
                    .ok_or_else(|| {
                        KeyError::Invalid(format!(
                            "key `{kid}`: `{name}` is not 32 bytes of base64url"
                        ))
                    })
            };
            // An uncompressed P-256 point: 0x04 || X || Y.
            let mut point = vec![4u8];
            point.extend(coordinate("x")?);
            point.extend(coordinate("y")?);
            if keys
                .insert(
                    kid.to_string(),
                    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point),
                )
                .is_some()
            {
                return Err(KeyError::Invalid(format!("kid `{kid}` appears twice")));
            }
        }
        if keys.is_empty() {
            return Err(KeyError::Invalid("no ES256 key in the set".into()));
        }
        Ok((Self(keys), skipped))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("reading {0}: {1}")]
    Read(String, String),
    #[error("{0}")]
    Invalid(String),
}

enum Origin {
    File(PathBuf),
    Url(Parsed<JwksUrl>),
}

impl Origin {
    fn describe(&self) -> String {
        match self {
            Origin::File(p) => p.display().to_string(),
            Origin::Url(u) => u.to_string(),
        }
    }
}

/// The current key set and where it comes from.
pub struct KeySource {
    origin: Origin,
    current: RwLock<Arc<KeySet>>,
    /// The content last loaded, to log a reload only when something changed.
    seen: Mutex<Vec<u8>>,
    last_attempt: Mutex<Option<Instant>>,
    http: reqwest::Client,
}

impl KeySource {
    /// Loads the keys once; an error here stops the gateway from starting.
    pub async fn load(settings: &GatewaySettings) -> anyhow::Result<Arc<Self>> {
        let origin = match (&settings.jwks_file, &settings.jwks_url) {
            (Some(file), _) => Origin::File(file.clone()),
            (None, Some(url)) => Origin::Url(url.clone()),
            (None, None) => anyhow::bail!("gateway.jwks_file or gateway.jwks_url must be set"),
        };
        let source = Arc::new(Self {
            origin,
            current: RwLock::new(Arc::new(KeySet::default())),
            seen: Mutex::new(Vec::new()),
            last_attempt: Mutex::new(None),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
        });
        source
            .reload()
            .await
            .map_err(|e| anyhow::anyhow!("gateway keys: {e}"))?;
        Ok(source)
    }

    pub fn current(&self) -> Arc<KeySet> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn fetch(&self) -> Result<Vec<u8>, KeyError> {
        let read_err = |e: String| KeyError::Read(self.origin.describe(), e);
        match &self.origin {
            Origin::File(path) => tokio::fs::read(path)
                .await
                .map_err(|e| read_err(e.to_string())),
            Origin::Url(url) => {
                let resp = self
                    .http
                    .get(url.0.clone())
                    .send()
                    .await
                    .and_then(|r| r.error_for_status())
                    .map_err(|e| read_err(e.to_string()))?;
                Ok(resp
                    .bytes()
                    .await
                    .map_err(|e| read_err(e.to_string()))?
                    .to_vec())
            }
        }
    }

    /// Reads the source again and swaps in its keys if they parse.
    async fn reload(&self) -> Result<(), KeyError> {
        *self.last_attempt.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        let text = self.fetch().await?;
        if *self.seen.lock().unwrap_or_else(|p| p.into_inner()) == text {
            return Ok(());
        }
        let (keys, skipped) = KeySet::from_jwks(&text)?;
        for reason in skipped {
            tracing::warn!(source = %self.origin.describe(), "gateway keys: skipped {reason}");
        }
        tracing::info!(source = %self.origin.describe(), kids = ?keys.kids(), "gateway keys loaded");
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = text;
        Ok(())
    }

    /// For a token with an unknown `kid`: reload now unless the last attempt was under a second
    /// ago (so a flood of made-up kids can't turn into a flood of reads).
    pub async fn reload_for_unknown_kid(&self) {
        let recent = self
            .last_attempt
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1));
        if !recent && let Err(e) = self.reload().await {
            tracing::warn!(error = %e, "gateway keys: keeping the previous keys");
        }
    }

    /// Reloads every `every` until `stop`.
    pub async fn watch(self: Arc<Self>, every: Duration, stop: CancellationToken) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.reload().await {
                tracing::warn!(error = %e, "gateway keys: keeping the previous keys");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_es256_keys_are_kept_and_each_needs_a_kid() {
        let x = B64URL.encode([1u8; 32]);
        let doc = serde_json::json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "a", "x": x, "y": x},
            {"kty": "RSA", "kid": "r", "n": "AQAB", "e": "AQAB"},
        ]});
        let (keys, skipped) = KeySet::from_jwks(doc.to_string().as_bytes()).unwrap();
        assert_eq!(keys.kids(), ["a"]);
        assert_eq!(skipped.len(), 1);

        let no_kid = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "x": x, "y": x}]});
        let err = KeySet::from_jwks(no_kid.to_string().as_bytes())
            .err()
            .unwrap();
        assert!(err.to_string().contains("kid"), "{err}");
        let none = serde_json::json!({"keys": []});
        assert!(KeySet::from_jwks(none.to_string().as_bytes()).is_err());
        assert!(KeySet::from_jwks(b"not json").is_err());
    }
}
