//! Credentials kept out of what `edgeflow config check` prints.
//!
//! Besides the `Secret` settings (redacted by their own serialization), credentials hide in two
//! places: static request headers (`services.NAME.headers`: API keys) and URLs (a password in the
//! userinfo, a token in the query string). Their values are replaced wherever they appear.

const REDACTED: &str = "[redacted]";

/// Replaces every header value and every credential in a URL in `value`.
pub fn redact_credentials(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if key == "headers" {
                    if let serde_json::Value::Object(headers) = child {
                        for v in headers.values_mut() {
                            *v = serde_json::Value::String(REDACTED.into());
                        }
                    }
                } else {
                    redact_credentials(child);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_credentials),
        serde_json::Value::String(text) => {
            if let Ok(mut url) = url::Url::parse(text)
                && url.has_host()
                && (url.password().is_some() || url.query().is_some())
            {
                if url.password().is_some() {
                    let _ = url.set_password(Some(REDACTED));
                }
                if url.query().is_some() {
                    url.set_query(Some(REDACTED));
                }
                *text = url.to_string();
            }
        }
        _ => {}
    }
}
