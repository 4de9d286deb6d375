//! Verifying the short-lived token the edge mints for each request.
//!
//! `Authorization: Bearer <JWT>`, ES256 only, signed by one of the edge's keys (chosen by `kid`),
//! with `iss` and `aud` as configured, a non-empty `sub` (the caller the edge authenticated), the
//! edge's request id in `rid`, a unique `jti`, and `iat`/`exp` no more than
//! `gateway.max_token_age_secs` apart, bound to the one request it was minted for: `htm` (the
//! method), `htu` (the path and query as sent) and `bsh` (base64url, unpadded, of the SHA-256 of
//! the body; of the empty string when there is none). Tokens dated in the future (beyond the
//! allowed clock skew), expired ones, ones presented with another method, path or body, and
//! replays of a `jti` already seen are refused. The replay memory is this process's: with several
//! gateway replicas, a token replayed to another replica within its lifetime is not caught, but
//! the binding lets such a replay only repeat the identical request (docs/gateway.md says which
//! operations that leaves harmless).

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde::Deserialize;

use super::keys::KeySource;
use super::settings::GatewaySettings;

/// Who the edge says is calling, as verified from its token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub subject: String,
    pub request_id: String,
    pub token_id: String,
}

impl Caller {
    /// The `identity` Temporal records for the caller's calls.
    pub fn identity(&self) -> String {
        format!("edge:{}", self.subject)
    }
}

/// Why a token was refused; the message goes into the 401's `detail`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no bearer token: send `Authorization: Bearer <token>`")]
    Missing,
    #[error("the token is malformed: {0}")]
    Malformed(&'static str),
    #[error("the token's algorithm must be ES256")]
    Algorithm,
    #[error("the token's key (kid `{0}`) is not one of the gateway's keys")]
    UnknownKey(String),
    #[error("the token's signature does not verify")]
    Signature,
    #[error("the token is for another audience")]
    Audience,
    #[error("the token is from another issuer")]
    Issuer,
    #[error("the token has expired")]
    Expired,
    #[error("the token is dated in the future")]
    Future,
    #[error("the token may live at most {0} s (exp - iat)")]
    TooLongLived(u64),
    #[error("the token's `{0}` claim is missing or empty")]
    Claim(&'static str),
    #[error("the token was minted for another request (its `{0}` differs)")]
    Binding(&'static str),
    #[error("the token was already used")]
    Replayed,
    /// Not the caller's fault: too many live tokens to remember; answered with 503.
    #[error("too many tokens in flight to check for replays; retry shortly")]
    ReplayCacheFull,
}

/// Longest accepted subject, request id and token id, in bytes.
const MAX_CLAIM_LEN: usize = 256;

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    aud: Option<Audience>,
    sub: Option<String>,
    rid: Option<String>,
    jti: Option<String>,
    iat: Option<f64>,
    exp: Option<f64>,
    nbf: Option<f64>,
    htm: Option<String>,
    htu: Option<String>,
    bsh: Option<String>,
}

/// The request a token is presented with: what its `htm`, `htu` and `bsh` must name.
pub struct Binding<'a> {
    pub method: &'a str,
    /// The path and query as received (`/api/v1/…?a=b`).
    pub path_and_query: &'a str,
    pub body: &'a [u8],
}

impl Binding<'_> {
    /// Which of the token's binding claims names another request, if any.
    fn check(&self, claims: &Claims) -> Result<(), TokenError> {
        let body_hash = B64URL.encode(ring::digest::digest(&ring::digest::SHA256, self.body));
        for (name, claimed, actual) in [
            ("htm", &claims.htm, self.method),
            ("htu", &claims.htu, self.path_and_query),
            ("bsh", &claims.bsh, body_hash.as_str()),
        ] {
            match claimed.as_deref() {
                None | Some("") => return Err(TokenError::Claim(name)),
                Some(c) if c != actual => return Err(TokenError::Binding(name)),
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// Checks tokens against the settings, the edge's keys and the replay memory.
pub struct Verifier {
    audience: String,
    issuer: String,
    max_age: u64,
    skew: u64,
    keys: Arc<KeySource>,
    replay: Mutex<ReplayCache>,
}

impl Verifier {
    pub fn new(settings: &GatewaySettings, keys: Arc<KeySource>) -> Self {
        Self {
            audience: settings.audience.clone(),
            issuer: settings.issuer.clone(),
            max_age: settings.max_token_age_secs,
            skew: settings.clock_skew_secs,
            keys,
            replay: Mutex::new(ReplayCache::new(settings.replay_cache_entries)),
        }
    }

    /// Verifies the `Authorization` header's token at `now` (Unix seconds) for `request`.
    pub async fn verify(
        &self,
        authorization: Option<&str>,
        request: &Binding<'_>,
        now: u64,
    ) -> Result<Caller, TokenError> {
        let token = authorization
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(TokenError::Missing)?;
        let mut parts = token.split('.');
        let (Some(header64), Some(claims64), Some(signature64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed("not three dot-separated parts"));
        };
        let header: Header = decode_part(header64)?;
        if header.alg != "ES256" {
            return Err(TokenError::Algorithm);
        }
        let kid = header
            .kid
            .filter(|k| !k.is_empty())
            .ok_or(TokenError::Malformed("the header names no `kid`"))?;
        let signature = B64URL
            .decode(signature64)
            .map_err(|_| TokenError::Malformed("the signature is not base64url"))?;
        let signed = &token[..header64.len() + 1 + claims64.len()];
        let mut keys = self.keys.current();
        if keys.get(&kid).is_none() {
            self.keys.reload_for_unknown_kid().await;
            keys = self.keys.current();
        }
        let key = keys
            .get(&kid)
            .ok_or_else(|| TokenError::UnknownKey(kid.chars().take(64).collect()))?;
        key.verify(signed.as_bytes(), &signature)
            .map_err(|_| TokenError::Signature)?;

        // Only a signed token's claims are worth reading.
        let claims: Claims = decode_part(claims64)?;
        if claims.iss.as_deref() != Some(self.issuer.as_str()) {
            return Err(TokenError::Issuer);
        }
        let audience_ok = match &claims.aud {
            Some(Audience::One(a)) => *a == self.audience,
            Some(Audience::Many(all)) => all.contains(&self.audience),
            None => false,
        };
        if !audience_ok {
            return Err(TokenError::Audience);
        }
        let iat = claims.iat.ok_or(TokenError::Claim("iat"))?.floor() as i128;
        let exp = claims.exp.ok_or(TokenError::Claim("exp"))?.floor() as i128;
        let (now, skew) = (i128::from(now), i128::from(self.skew));
        if iat > now + skew
            || claims
                .nbf
                .is_some_and(|nbf| nbf.floor() as i128 > now + skew)
        {
            return Err(TokenError::Future);
        }
        if exp <= now - skew {
            return Err(TokenError::Expired);
        }
        if exp - iat > i128::from(self.max_age) || exp <= iat {
            return Err(TokenError::TooLongLived(self.max_age));
        }
        let text = |value: Option<String>, name: &'static str| {
            value
                .filter(|v| !v.trim().is_empty() && v.len() <= MAX_CLAIM_LEN)
                .ok_or(TokenError::Claim(name))
        };
        let caller = Caller {
            subject: text(claims.sub.clone(), "sub")?,
            request_id: text(claims.rid.clone(), "rid")?,
            token_id: text(claims.jti.clone(), "jti")?,
        };
        // Checked before the jti is remembered: a token tried on another request does not use it up.
        request.check(&claims)?;
        // Remembered until the token could no longer pass the expiry check anyway.
        let forget_at = u64::try_from(exp + skew).unwrap_or(u64::MAX);
        self.replay
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .first_use(&caller.token_id, forget_at, now as u64)?;
        Ok(caller)
    }
}

fn decode_part<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, TokenError> {
    let bytes = B64URL
        .decode(part)
        .map_err(|_| TokenError::Malformed("a part is not base64url"))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| TokenError::Malformed("a part is not the JSON expected"))
}

/// Token ids seen and still live, bounded.
struct ReplayCache {
    capacity: usize,
    ids: HashSet<String>,
    /// (forget at, id), oldest first, to drop ids whose tokens have expired.
    by_expiry: BTreeSet<(u64, String)>,
}

impl ReplayCache {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            ids: HashSet::new(),
            by_expiry: BTreeSet::new(),
        }
    }

    fn first_use(&mut self, id: &str, forget_at: u64, now: u64) -> Result<(), TokenError> {
        while let Some(first) = self.by_expiry.first() {
            if first.0 >= now {
                break;
            }
            if let Some((_, gone)) = self.by_expiry.pop_first() {
                self.ids.remove(&gone);
            }
        }
        if self.ids.contains(id) {
            return Err(TokenError::Replayed);
        }
        if self.ids.len() >= self.capacity {
            return Err(TokenError::ReplayCacheFull);
        }
        self.ids.insert(id.to_string());
        self.by_expiry.insert((forget_at, id.to_string()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound_to(htm: Option<&str>, htu: Option<&str>, bsh: Option<&str>) -> Claims {
        Claims {
            iss: None,
            aud: None,
            sub: None,
            rid: None,
            jti: None,
            iat: None,
            exp: None,
            nbf: None,
            htm: htm.map(String::from),
            htu: htu.map(String::from),
            bsh: bsh.map(String::from),
        }
    }

    #[test]
    fn a_token_is_accepted_only_for_the_request_it_names() {
        const PATH: &str = "/api/v1/namespaces/default/workflows/order-o-1/signal/approve";
        let body = br#"{"reason":"ok"}"#;
        let hash = B64URL.encode(ring::digest::digest(&ring::digest::SHA256, body));
        let hash = hash.as_str();
        let request = Binding {
            method: "POST",
            path_and_query: PATH,
            body,
        };
        let other_run = "/api/v1/namespaces/default/workflows/order-o-2/signal/approve";
        let with_query = format!("{PATH}?x=1");
        let cases = [
            (Some("POST"), Some(PATH), Some(hash), Ok(())),
            (
                Some("GET"),
                Some(PATH),
                Some(hash),
                Err(TokenError::Binding("htm")),
            ),
            (
                Some("POST"),
                Some(other_run),
                Some(hash),
                Err(TokenError::Binding("htu")),
            ),
            (
                Some("POST"),
                Some(with_query.as_str()),
                Some(hash),
                Err(TokenError::Binding("htu")),
            ),
            (
                Some("POST"),
                Some(PATH),
                Some("AAAA"),
                Err(TokenError::Binding("bsh")),
            ),
            (None, Some(PATH), Some(hash), Err(TokenError::Claim("htm"))),
            (
                Some("POST"),
                Some(""),
                Some(hash),
                Err(TokenError::Claim("htu")),
            ),
            (
                Some("POST"),
                Some(PATH),
                None,
                Err(TokenError::Claim("bsh")),
            ),
        ];
        for (htm, htu, bsh, want) in cases {
            assert_eq!(
                request.check(&bound_to(htm, htu, bsh)),
                want,
                "{htm:?} {htu:?} {bsh:?}"
            );
        }
        // No body hashes as the empty string: the same value the edge sends (edge/test/gateway.test.ts).
        let empty = Binding {
            method: "GET",
            path_and_query: "/x",
            body: b"",
        };
        let sha256_of_nothing = "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU";
        assert_eq!(
            empty.check(&bound_to(Some("GET"), Some("/x"), Some(sha256_of_nothing))),
            Ok(())
        );
    }

    #[test]
    fn a_token_id_is_accepted_once_until_it_expires_and_the_memory_is_bounded() {
        let mut cache = ReplayCache::new(2);
        assert_eq!(cache.first_use("a", 100, 10), Ok(()));
        assert_eq!(cache.first_use("a", 100, 20), Err(TokenError::Replayed));
        assert_eq!(cache.first_use("b", 100, 20), Ok(()));
        assert_eq!(
            cache.first_use("c", 100, 20),
            Err(TokenError::ReplayCacheFull)
        );
        // Once expired, ids are forgotten (the tokens fail the expiry check by then).
        assert_eq!(cache.first_use("c", 200, 101), Ok(()));
        assert_eq!(cache.ids.len(), 1);
    }
}
