//! Credentials for services: static bearer tokens and headers, token files that rotate, and
//! OAuth2 client-credentials tokens cached until shortly before they expire.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;

use super::settings::AuthSettings;
use crate::failure::{self, Failure};

/// How long a token without `expires_in` is trusted.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(300);

pub(crate) enum Auth {
    Static(HeaderName, HeaderValue),
    BearerFile(TokenFile),
    OAuth2(OAuth2),
}

impl Auth {
    /// Build from validated settings.
    pub(crate) fn from_settings(
        s: &AuthSettings,
        client: &reqwest::Client,
    ) -> Result<Self, String> {
        match s.kind.as_str() {
            "bearer" => match (&s.token_env, &s.token_file) {
                (Some(var), _) => {
                    let token = std::env::var(var)
                        .map_err(|_| format!("environment variable `{var}` is not set"))?;
                    Ok(Auth::Static(AUTHORIZATION, bearer(token.trim())?))
                }
                (None, Some(path)) => Ok(Auth::BearerFile(TokenFile {
                    path: path.clone(),
                    cached: std::sync::Mutex::new(None),
                })),
                (None, None) => Err("bearer auth needs `token_env` or `token_file`".into()),
            },
            "header" => {
                let name = s
                    .header_name
                    .as_deref()
                    .ok_or("header auth needs `header_name`")?;
                let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string())?;
                let value = s
                    .header_value
                    .as_ref()
                    .ok_or("header auth needs `header_value`")?;
                let mut value =
                    HeaderValue::from_str(value.expose_secret()).map_err(|e| e.to_string())?;
                value.set_sensitive(true);
                Ok(Auth::Static(name, value))
            }
            "oauth2_client_credentials" => Ok(Auth::OAuth2(OAuth2 {
                token_url: s.token_url.clone().ok_or("oauth2 needs `token_url`")?,
                client_id: s.client_id.clone().ok_or("oauth2 needs `client_id`")?,
                client_secret: s
                    .client_secret
                    .clone()
                    .ok_or("oauth2 needs `client_secret`")?
                    .into(),
                scopes: s.scopes.join(" "),
                audience: s.audience.clone(),
                refresh_before: Duration::from_secs(s.refresh_before_secs),
                client: client.clone(),
                cached: Mutex::new(None),
            })),
            other => Err(format!("unknown auth kind `{other}`")),
        }
    }

    /// The header to send with the next request.
    pub(crate) async fn header(&self) -> Result<(HeaderName, HeaderValue), Failure> {
        match self {
            Auth::Static(name, value) => Ok((name.clone(), value.clone())),
            Auth::BearerFile(file) => Ok((AUTHORIZATION, file.current()?)),
            Auth::OAuth2(oauth) => Ok((AUTHORIZATION, oauth.token().await?)),
        }
    }

    /// The service answered 401 to `sent`: forget that token if it is a cached OAuth2 token.
    /// Returns whether a fresh credential may help (so the request is worth one more try).
    pub(crate) async fn rejected(&self, sent: &HeaderValue) -> bool {
        match self {
            Auth::OAuth2(oauth) => oauth.invalidate(sent).await,
            _ => false,
        }
    }
}

fn bearer(token: &str) -> Result<HeaderValue, String> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| "the token is not a valid header value".to_string())?;
    value.set_sensitive(true);
    Ok(value)
}

/// A bearer token in a file, re-read whenever the file's modification time or size changes
/// (secret managers rotate such files in place).
pub(crate) struct TokenFile {
    path: PathBuf,
    cached: std::sync::Mutex<Option<(SystemTime, u64, HeaderValue)>>,
}

impl TokenFile {
    fn current(&self) -> Result<HeaderValue, Failure> {
        let unavailable =
            |e: std::io::Error| Failure::Credentials(format!("{}: {e}", self.path.display()));
        let meta = std::fs::metadata(&self.path).map_err(unavailable)?;
        let stamp = (meta.modified().map_err(unavailable)?, meta.len());
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((modified, len, value)) = cached.as_ref()
            && (*modified, *len) == stamp
        {
            return Ok(value.clone());
        }
        let text = std::fs::read_to_string(&self.path).map_err(unavailable)?;
        let token = text.trim();
        if token.is_empty() {
            return Err(Failure::Credentials(format!(
                "{} is empty",
                self.path.display()
            )));
        }
        let value = bearer(token).map_err(Failure::Credentials)?;
        *cached = Some((stamp.0, stamp.1, value.clone()));
        Ok(value)
    }
}

/// OAuth2 client-credentials grant (RFC 6749 §4.4), client authenticated with HTTP Basic.
pub(crate) struct OAuth2 {
    token_url: String,
    client_id: String,
    client_secret: SecretString,
    scopes: String,
    audience: Option<String>,
    refresh_before: Duration,
    client: reqwest::Client,
    /// Held across a refresh, so concurrent calls wait for one token request.
    cached: Mutex<Option<(HeaderValue, Instant)>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl OAuth2 {
    async fn token(&self) -> Result<HeaderValue, Failure> {
        let mut cached = self.cached.lock().await;
        if let Some((value, expires_at)) = cached.as_ref()
            && Instant::now() + self.refresh_before < *expires_at
        {
            return Ok(value.clone());
        }
        let (value, lifetime) = self.fetch().await?;
        *cached = Some((value.clone(), Instant::now() + lifetime));
        Ok(value)
    }

    async fn invalidate(&self, sent: &HeaderValue) -> bool {
        let mut cached = self.cached.lock().await;
        match cached.as_ref() {
            Some((value, _)) if value == sent => {
                *cached = None;
                true
            }
            // Another call already refreshed it.
            Some(_) => true,
            None => true,
        }
    }

    async fn fetch(&self) -> Result<(HeaderValue, Duration), Failure> {
        let target = "the OAuth2 token endpoint";
        let mut form: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
        if !self.scopes.is_empty() {
            form.push(("scope", &self.scopes));
        }
        if let Some(audience) = &self.audience {
            form.push(("audience", audience));
        }
        let response = self
            .client
            .post(&self.token_url)
            .basic_auth(&self.client_id, Some(self.client_secret.expose_secret()))
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| failure::from_reqwest(target, &e))?;
        let status = response.status();
        let retry_after = failure::retry_after(response.headers());
        let body = response
            .bytes()
            .await
            .map_err(|e| failure::from_reqwest(target, &e))?;
        if !status.is_success() {
            return Err(Failure::HttpStatus {
                status: status.as_u16(),
                target: target.into(),
                retry_after,
                excerpt: failure::excerpt(&body),
            });
        }
        let token: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            Failure::Internal(format!(
                "{target} answered something that is not a token: {e}"
            ))
        })?;
        if let Some(kind) = &token.token_type
            && !kind.eq_ignore_ascii_case("bearer")
        {
            return Err(Failure::Internal(format!(
                "{target} issued a `{kind}` token; only bearer tokens are supported"
            )));
        }
        let value = bearer(&token.access_token).map_err(Failure::Internal)?;
        let lifetime = token
            .expires_in
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TOKEN_LIFETIME);
        tracing::debug!(
            lifetime_secs = lifetime.as_secs(),
            "fetched an OAuth2 token"
        );
        Ok((value, lifetime))
    }
}
