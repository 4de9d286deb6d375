//! One configured service: its client, credentials, limits, and the request/response mapping.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::redirect::Policy;
use reqwest::{Method, StatusCode};
use tokio::sync::Semaphore;
use url::Url;

use super::auth::Auth;
use super::settings::ServiceSettings;
use super::{HttpCallInput, HttpCallOutput, HttpMethod, path};
use crate::IdempotencyKey;
use crate::failure::{self, EXCERPT_BYTES, Failure};

const MAX_REDIRECTS: usize = 5;

pub(crate) struct Service {
    name: String,
    base: Url,
    client: reqwest::Client,
    default_headers: HeaderMap,
    auth: Option<Auth>,
    max_response_bytes: u64,
    permits: Arc<Semaphore>,
    pacer: Option<Pacer>,
    allowed_request_headers: HashSet<String>,
    response_headers: Vec<HeaderName>,
}

impl Service {
    pub(crate) fn new(name: &str, s: &ServiceSettings) -> Result<Self, String> {
        let mut base = Url::parse(&s.base_url).map_err(|e| format!("base_url: {e}"))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err("base_url must use http or https".into());
        }
        if !base.path().ends_with('/') {
            let with_slash = format!("{}/", base.path());
            base.set_path(&with_slash);
        }
        base.set_query(None);
        base.set_fragment(None);

        let fence = base.clone();
        let redirects = Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.error("too many redirects")
            } else if attempt.url().origin() == fence.origin()
                && attempt.url().path().starts_with(fence.path())
            {
                attempt.follow()
            } else {
                // Hand the 3xx back; it fails the call without touching the other host.
                attempt.stop()
            }
        });
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs_f64(s.timeout_secs))
            .connect_timeout(Duration::from_secs_f64(s.connect_timeout_secs))
            .redirect(redirects)
            .user_agent(concat!("edgeflow/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;

        let mut default_headers = HeaderMap::new();
        for (k, v) in &s.headers {
            let k =
                HeaderName::from_bytes(k.as_bytes()).map_err(|e| format!("headers.{k}: {e}"))?;
            let v = HeaderValue::from_str(v).map_err(|e| format!("headers.{k}: {e}"))?;
            default_headers.insert(k, v);
        }
        let auth = s
            .auth
            .as_ref()
            .map(|a| Auth::from_settings(a, &client))
            .transpose()
            .map_err(|e| format!("auth: {e}"))?;
        let response_headers = s
            .response_headers
            .iter()
            .map(|h| {
                HeaderName::from_bytes(h.as_bytes()).map_err(|e| format!("response_headers: {e}"))
            })
            .collect::<Result<_, _>>()?;
        let pacer = match s.rate_per_sec {
            Some(rate) if rate.is_finite() && rate > 0.0 => Some(Pacer::new(rate)),
            Some(_) => return Err("rate_per_sec must be more than 0".into()),
            None => None,
        };
        Ok(Self {
            name: name.to_owned(),
            base,
            client,
            default_headers,
            auth,
            max_response_bytes: s.max_response_bytes,
            permits: Arc::new(Semaphore::new(s.max_concurrent.max(1) as usize)),
            pacer,
            allowed_request_headers: s
                .allowed_request_headers
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            response_headers,
        })
    }

    pub(crate) async fn call(
        &self,
        key: &IdempotencyKey,
        input: &HttpCallInput,
    ) -> Result<HttpCallOutput, Failure> {
        // Everything that can be refused is refused before waiting for a slot or sending.
        let rendered = path::render(&input.path, &input.path_params)?;
        let mut url = path::join(&self.base, &rendered)?;
        if !input.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&input.query);
        }
        let headers = self.request_headers(key, input)?;
        if input.body.is_some() && matches!(input.method, HttpMethod::Get | HttpMethod::Head) {
            return Err(Failure::invalid_input(format!(
                "{} requests cannot carry a body",
                input.method.as_str()
            )));
        }
        let method = Method::from_bytes(input.method.as_str().as_bytes())
            .map_err(|e| Failure::Internal(e.to_string()))?;

        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Failure::Internal("service limiter closed".into()))?;
        if let Some(pacer) = &self.pacer {
            pacer.wait().await;
        }

        let (mut response, sent_auth) = self.send(&method, &url, &headers, input).await?;
        if response.status() == StatusCode::UNAUTHORIZED
            && let (Some(auth), Some(sent)) = (&self.auth, &sent_auth)
            && auth.rejected(sent).await
        {
            tracing::info!(service = %self.name, "401 with a cached token; retrying once with a fresh one");
            response = self.send(&method, &url, &headers, input).await?.0;
        }
        self.answer(response, input.method == HttpMethod::Head)
            .await
    }

    fn request_headers(
        &self,
        key: &IdempotencyKey,
        input: &HttpCallInput,
    ) -> Result<HeaderMap, Failure> {
        let mut headers = self.default_headers.clone();
        for (name, value) in &input.headers {
            if !self
                .allowed_request_headers
                .contains(&name.to_ascii_lowercase())
            {
                return Err(Failure::invalid_input(format!(
                    "header `{name}` is not in services.{}.allowed_request_headers",
                    self.name
                )));
            }
            if value.contains(['\r', '\n', '\0']) {
                return Err(Failure::HeaderInjection {
                    field: format!("header `{name}`"),
                });
            }
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Failure::invalid_input(format!("`{name}` is not a header name")))?;
            let value = HeaderValue::from_str(value).map_err(|_| {
                Failure::invalid_input(format!("header `{name}` has an invalid value"))
            })?;
            headers.insert(name, value);
        }
        let key =
            HeaderValue::from_str(&key.digest()).map_err(|e| Failure::Internal(e.to_string()))?;
        headers.insert("idempotency-key", key);
        Ok(headers)
    }

    async fn send(
        &self,
        method: &Method,
        url: &Url,
        headers: &HeaderMap,
        input: &HttpCallInput,
    ) -> Result<(reqwest::Response, Option<HeaderValue>), Failure> {
        let mut request = self
            .client
            .request(method.clone(), url.clone())
            .headers(headers.clone());
        let mut sent_auth = None;
        if let Some(auth) = &self.auth {
            let (name, value) = auth.header().await?;
            sent_auth = Some(value.clone());
            request = request.header(name, value);
        }
        if let Some(body) = &input.body {
            request = request.json(body);
        }
        if let Some(traceparent) = crate::context::traceparent() {
            request = request.header("traceparent", traceparent);
        }
        let response = request
            .send()
            .await
            .map_err(|e| failure::from_reqwest(&self.target(), &e))?;
        Ok((response, sent_auth))
    }

    async fn answer(
        &self,
        mut response: reqwest::Response,
        head: bool,
    ) -> Result<HttpCallOutput, Failure> {
        let status = response.status();
        let headers = self.selected_headers(response.headers());
        if !status.is_success() {
            let retry_after = failure::retry_after(response.headers());
            let excerpt = if status.is_redirection() {
                let to = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("?");
                format!("redirect to {to} not followed: it leaves the service's base_url")
            } else {
                failure::excerpt(&read_prefix(&mut response, EXCERPT_BYTES + 1).await)
            };
            return Err(Failure::HttpStatus {
                status: status.as_u16(),
                target: self.target(),
                retry_after,
                excerpt,
            });
        }
        let body = if head {
            Vec::new()
        } else {
            self.read_capped(&mut response).await?
        };
        let is_json = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(is_json_content_type);
        let (json, text) = if body.is_empty() {
            (None, None)
        } else if is_json && let Ok(value) = serde_json::from_slice(&body) {
            (Some(value), None)
        } else {
            (None, Some(String::from_utf8_lossy(&body).into_owned()))
        };
        Ok(HttpCallOutput {
            status: status.as_u16(),
            headers,
            json,
            text,
        })
    }

    fn selected_headers(&self, headers: &HeaderMap) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for name in &self.response_headers {
            let values: Vec<String> = headers
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            if !values.is_empty() {
                out.insert(name.as_str().to_owned(), values.join(", "));
            }
        }
        out
    }

    async fn read_capped(&self, response: &mut reqwest::Response) -> Result<Vec<u8>, Failure> {
        let too_large = || Failure::ResponseTooLarge {
            target: self.target(),
            limit_bytes: self.max_response_bytes,
        };
        if response
            .content_length()
            .is_some_and(|len| len > self.max_response_bytes)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| failure::from_reqwest(&self.target(), &e))?
        {
            if (body.len() + chunk.len()) as u64 > self.max_response_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn target(&self) -> String {
        format!("service `{}`", self.name)
    }
}

/// Up to `limit` bytes of an error body; a body that breaks off just ends the excerpt.
async fn read_prefix(response: &mut reqwest::Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body
}

fn is_json_content_type(value: &str) -> bool {
    let mime = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Evenly spaced request starts: each caller reserves the next free slot, then sleeps until it.
struct Pacer {
    interval: Duration,
    next: std::sync::Mutex<Instant>,
}

impl Pacer {
    fn new(rate_per_sec: f64) -> Self {
        Self {
            interval: Duration::from_secs_f64(1.0 / rate_per_sec),
            next: std::sync::Mutex::new(Instant::now()),
        }
    }

    async fn wait(&self) {
        let at = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let at = (*next).max(Instant::now());
            *next = at + self.interval;
            at
        };
        tokio::time::sleep_until(at.into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        assert!(is_json_content_type("application/json"));
        assert!(is_json_content_type("application/json; charset=utf-8"));
        assert!(is_json_content_type("application/problem+json"));
        assert!(!is_json_content_type("text/plain"));
        assert!(!is_json_content_type("application/jsonx"));
    }

    #[tokio::test]
    async fn pacer_spaces_starts() {
        let pacer = Pacer::new(20.0);
        let started = Instant::now();
        for _ in 0..5 {
            pacer.wait().await;
        }
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(195), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(600), "{elapsed:?}");
    }
}
