//! The development token issuer: ES256 JWTs the edge Worker trusts in development only.
//!
//! `edgeflow dev` serves its JWKS at `http://127.0.0.1:<dev.issuer_port>/.well-known/jwks.json`
//! and points the edge's `OIDC_ISSUER` at it; `edgeflow dev token --role approver` mints more
//! tokens with the same key. The key lives in `<dev.var_dir>/dev-issuer.pk8` (PKCS#8), made on
//! first use. The edge refuses to serve in production when its issuer is a loopback address, so
//! this issuer can never vouch for anyone outside a laptop.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

pub struct DevIssuer {
    key: EcdsaKeyPair,
    kid: String,
    pub issuer: String,
    pub audience: String,
}

impl DevIssuer {
    /// Loads the key from `var_dir`, creating it on first use.
    pub fn load_or_create(
        var_dir: &Path,
        issuer: String,
        audience: String,
    ) -> anyhow::Result<Self> {
        let rng = SystemRandom::new();
        let path = var_dir.join("dev-issuer.pk8");
        let pkcs8 = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(_) => {
                std::fs::create_dir_all(var_dir)
                    .with_context(|| format!("creating {}", var_dir.display()))?;
                let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| anyhow::anyhow!("generating the dev issuer key"))?;
                std::fs::write(&path, doc.as_ref())
                    .with_context(|| format!("writing {}", path.display()))?;
                doc.as_ref().to_vec()
            }
        };
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng)
            .map_err(|_| {
                anyhow::anyhow!(
                    "{} is not a P-256 PKCS#8 key; delete it to make a new one",
                    path.display()
                )
            })?;
        let digest = ring::digest::digest(&ring::digest::SHA256, key.public_key().as_ref());
        let kid = digest.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Self {
            key,
            kid,
            issuer,
            audience,
        })
    }

    /// The public key set the edge fetches.
    pub fn jwks(&self) -> Value {
        // An uncompressed P-256 point: 0x04 || X (32 bytes) || Y (32 bytes).
        let point = self.key.public_key().as_ref();
        json!({ "keys": [{
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.kid,
            "x": B64URL.encode(&point[1..33]), "y": B64URL.encode(&point[33..65]),
        }]})
    }

    /// A signed token for `subject` with `roles`, valid for `ttl_secs`.
    pub fn mint(
        &self,
        subject: &str,
        email: Option<&str>,
        roles: &[String],
        ttl_secs: u64,
    ) -> anyhow::Result<String> {
        if subject.is_empty() {
            bail!("the subject must not be empty");
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let header = json!({ "alg": "ES256", "typ": "JWT", "kid": self.kid });
        let mut claims = json!({
            "iss": self.issuer, "aud": self.audience, "sub": subject,
            "iat": now, "nbf": now, "exp": now + ttl_secs, "roles": roles,
        });
        if let Some(email) = email {
            claims["email"] = Value::String(email.to_string());
        }
        let signing_input = format!(
            "{}.{}",
            B64URL.encode(serde_json::to_vec(&header)?),
            B64URL.encode(serde_json::to_vec(&claims)?)
        );
        let signature = self
            .key
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .map_err(|_| anyhow::anyhow!("signing the token"))?;
        Ok(format!(
            "{signing_input}.{}",
            B64URL.encode(signature.as_ref())
        ))
    }

    /// Serves the JWKS and a minimal OpenID discovery document until `stop`.
    pub async fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        stop: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let jwks = self.jwks();
        let discovery = json!({
            "issuer": self.issuer,
            "jwks_uri": format!("{}/.well-known/jwks.json", self.issuer),
            "id_token_signing_alg_values_supported": ["ES256"],
        });
        let app = axum::Router::new()
            .route(
                "/.well-known/jwks.json",
                axum::routing::get(move || async move { axum::Json(jwks) }),
            )
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(move || async move { axum::Json(discovery) }),
            );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_against_the_published_key() {
        let dir = tempfile::tempdir().unwrap();
        let issuer =
            DevIssuer::load_or_create(dir.path(), "http://127.0.0.1:1".into(), "edgeflow".into())
                .unwrap();
        let token = issuer
            .mint("ada", Some("ada@example.com"), &["approver".into()], 60)
            .unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: Value = serde_json::from_slice(&B64URL.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["sub"], "ada");
        assert_eq!(claims["roles"], json!(["approver"]));

        // Verify with the public key exactly as the JWKS publishes it.
        let jwk = &issuer.jwks()["keys"][0];
        let mut point = vec![4u8];
        point.extend(B64URL.decode(jwk["x"].as_str().unwrap()).unwrap());
        point.extend(B64URL.decode(jwk["y"].as_str().unwrap()).unwrap());
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            point,
        );
        let signed = format!("{}.{}", parts[0], parts[1]);
        public
            .verify(signed.as_bytes(), &B64URL.decode(parts[2]).unwrap())
            .expect("signature verifies");

        // The same key is found again: tokens minted later verify against a running issuer.
        let again =
            DevIssuer::load_or_create(dir.path(), "http://127.0.0.1:1".into(), "edgeflow".into())
                .unwrap();
        assert_eq!(again.jwks(), issuer.jwks());
    }
}
