//! The per-request token the worker signs for the edge: a JWS (ES256) bound to one attempt of one
//! activity and to the exact bytes of its body, valid for at most a minute, never reused (`jti`).
//!
//! The format is the one both directions share (worker → edge here, edge → gateway there), fixed
//! in docs/architecture.md, "Activities at the edge": protected header `{"alg":"ES256","typ":"JWT","kid":…}`; claims
//! `iss`, `aud`, `iat`, `exp`, `jti`, `htm`, `htu`, `bsh` (base64url of SHA-256 of the body),
//! `wid`, `aid`, `att`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64URL};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

/// How long a token is valid. The edge refuses one whose `exp - iat` is above 60 s; a request
/// is signed just before it is sent, so a short life only has to cover the network.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// A P-256 private key and its `kid`.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    kid: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// What one token vouches for.
pub struct Claims<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    /// The request path, e.g. `/v1/activities/kv.put`.
    pub path: &'a str,
    pub body: &'a [u8],
    pub workflow_id: &'a str,
    pub activity_id: &'a str,
    pub attempt: u32,
}

impl SigningKey {
    /// Reads a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`) holding a P-256 key. The error says
    /// what the file is not, for `edge_activities.signing_key_file`.
    pub fn from_pem(pem: &[u8], kid: String) -> Result<Self, String> {
        let text = std::str::from_utf8(pem).map_err(|_| "is not a PEM file (not text)")?;
        let body = text
            .split("-----BEGIN PRIVATE KEY-----")
            .nth(1)
            .and_then(|rest| rest.split("-----END PRIVATE KEY-----").next())
            .ok_or("is not a PKCS#8 PEM file (no `-----BEGIN PRIVATE KEY-----` block)")?;
        let base64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let der = STANDARD
            .decode(base64)
            .map_err(|e| format!("has a PEM block that is not base64: {e}"))?;
        Self::from_pkcs8(&der, kid)
    }

    /// From PKCS#8 DER.
    pub fn from_pkcs8(der: &[u8], kid: String) -> Result<Self, String> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
            .map_err(|e| format!("is not a P-256 (ES256) private key in PKCS#8: {e}"))?;
        Ok(Self { pair, kid, rng })
    }

    /// The key's id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half as a JWK (what the edge's `ACTIVITY_KEYS` holds).
    pub fn public_jwk(&self) -> Value {
        // An uncompressed P-256 point: 0x04 || X (32 bytes) || Y (32 bytes).
        let point = self.pair.public_key().as_ref();
        json!({
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.kid,
            "x": B64URL.encode(&point[1..33]), "y": B64URL.encode(&point[33..65]),
        })
    }

    /// A token for one request, issued `now`.
    pub fn sign(&self, claims: &Claims<'_>, now: SystemTime) -> Result<String, String> {
        let iat = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| "the clock is before 1970")?
            .as_secs();
        let mut jti = [0u8; 16];
        self.rng
            .fill(&mut jti)
            .map_err(|_| "no randomness for the token id")?;
        let header = json!({ "alg": "ES256", "typ": "JWT", "kid": self.kid });
        let payload = json!({
            "iss": claims.issuer,
            "aud": claims.audience,
            "iat": iat,
            "exp": iat + TOKEN_LIFETIME.as_secs(),
            "jti": B64URL.encode(jti),
            "htm": "POST",
            "htu": claims.path,
            "bsh": body_hash(claims.body),
            "wid": claims.workflow_id,
            "aid": claims.activity_id,
            "att": claims.attempt,
        });
        let signing_input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(payload.to_string())
        );
        let signature = self
            .pair
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| "signing the token failed")?;
        Ok(format!(
            "{signing_input}.{}",
            B64URL.encode(signature.as_ref())
        ))
    }
}

/// `bsh`: base64url (no padding) of SHA-256 over the exact body bytes.
pub fn body_hash(body: &[u8]) -> String {
    B64URL.encode(ring::digest::digest(&ring::digest::SHA256, body).as_ref())
}

/// A new P-256 key in PKCS#8 PEM, for `edgeflow dev` and tests.
pub fn generate_pem() -> Result<String, String> {
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .map_err(|_| "generating a P-256 key failed")?;
    let base64 = STANDARD.encode(doc.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in base64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_against_its_jwk_and_carries_every_claim() {
        let key = SigningKey::from_pem(generate_pem().unwrap().as_bytes(), "k1".into()).unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let token = key
            .sign(
                &Claims {
                    issuer: "edgeflow-worker",
                    audience: "https://edge.example.com",
                    path: "/v1/activities/kv.put",
                    body: b"{}",
                    workflow_id: "order-1",
                    activity_id: "3",
                    attempt: 2,
                },
                now,
            )
            .unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let header: Value = serde_json::from_slice(&B64URL.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header, json!({"alg":"ES256","typ":"JWT","kid":"k1"}));
        let claims: Value = serde_json::from_slice(&B64URL.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            60
        );
        assert_eq!(claims["htu"], "/v1/activities/kv.put");
        assert_eq!(claims["bsh"], body_hash(b"{}"));
        assert_eq!(claims["att"], 2);
        assert_eq!(
            B64URL
                .decode(claims["jti"].as_str().unwrap())
                .unwrap()
                .len(),
            16
        );
        let jwk = key.public_jwk();
        let mut point = vec![4u8];
        point.extend(B64URL.decode(jwk["x"].as_str().unwrap()).unwrap());
        point.extend(B64URL.decode(jwk["y"].as_str().unwrap()).unwrap());
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point)
            .verify(
                format!("{}.{}", parts[0], parts[1]).as_bytes(),
                &B64URL.decode(parts[2]).unwrap(),
            )
            .expect("the signature verifies");
    }

    #[test]
    fn what_is_not_a_p256_pkcs8_pem_is_named() {
        for (pem, why) in [
            ("hello", "no `-----BEGIN PRIVATE KEY-----` block"),
            (
                "-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----\n",
                "not base64",
            ),
            (
                "-----BEGIN PRIVATE KEY-----\naGVsbG8=\n-----END PRIVATE KEY-----\n",
                "not a P-256",
            ),
        ] {
            let err = SigningKey::from_pem(pem.as_bytes(), "k".into()).unwrap_err();
            assert!(err.contains(why), "{pem}: {err}");
        }
    }
}
