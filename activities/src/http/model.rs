//! `http.call` input and output: the contract with workflows.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Call one endpoint of a named service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpCallInput {
    /// Step key, unique within the workflow; with the workflow id it forms the
    /// `Idempotency-Key` header, identical on every retry.
    pub step: String,
    /// Service name, as configured under `[services.NAME]`.
    pub service: String,
    /// HTTP method.
    #[serde(default)]
    pub method: HttpMethod,
    /// Path below the service's `base_url`, with `{name}` placeholders filled from
    /// `path_params`, e.g. `/orders/{order_id}/items`. Always relative to the base: `..`
    /// segments, `%`-escapes, `//`, `\`, `?` and `#` are refused.
    pub path: String,
    /// Values for the path's placeholders; each is percent-encoded as one segment (and may not
    /// be empty, `.`, `..`, or contain `/` or `\`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub path_params: BTreeMap<String, String>,
    /// Query parameters, encoded.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query: BTreeMap<String, String>,
    /// JSON request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Extra request headers; only those in the service's `allowed_request_headers`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// The HTTP methods a workflow may use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    /// GET
    #[default]
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
    /// HEAD
    Head,
}

impl HttpMethod {
    /// The method as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
            HttpMethod::Head => "HEAD",
        }
    }
}

/// A 2xx answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HttpCallOutput {
    /// Status code (2xx).
    pub status: u16,
    /// The response headers listed in the service's `response_headers`, lower-case names.
    pub headers: BTreeMap<String, String>,
    /// The body, when the response is JSON (`application/json` or `*+json`) and parses.
    pub json: Option<Value>,
    /// The body as text, when it is not JSON (lossy UTF-8); absent for an empty body.
    pub text: Option<String>,
}
