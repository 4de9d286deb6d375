//! Temporal's messages as the JSON its HTTP API reads and writes (protojson: camelCase names,
//! enums by name, 64-bit integers as strings, payloads in full form), and gRPC errors as the HTTP
//! API's error body and status.
//!
//! The SDK's generated types have protojson only for a few packages (common, enums, failure),
//! so the gateway carries the descriptors of the workflow service's messages
//! (`temporal-api.binpb`, written by `scripts/gateway-protos` from the `temporalio-protos` crate
//! this binary links) and converts through `prost-reflect`'s dynamic messages: JSON → dynamic →
//! bytes → the SDK's type, and back. A unit test fails when the descriptors and the linked crate
//! drift apart.

use std::sync::OnceLock;

use axum::http::StatusCode;
use prost::{Message, Name};
use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, SerializeOptions};
use temporalio_client::tonic;

static DESCRIPTORS: &[u8] = include_bytes!("temporal-api.binpb");

fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        // The bytes are checked in and covered by a unit test: they always decode.
        DescriptorPool::decode(DESCRIPTORS).unwrap_or_else(|_| DescriptorPool::new())
    })
}

/// Why a request body is not the message it should be.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    #[error("{0} is not in the gateway's descriptors")]
    UnknownType(String),
    #[error("{0}")]
    Syntax(String),
}

/// Reads a request body as Temporal's HTTP API would: protojson, unknown fields refused; an
/// empty body is the empty message.
pub fn from_json<T: Message + Name + Default>(body: &[u8]) -> Result<T, JsonError> {
    let name = T::full_name();
    let desc = pool()
        .get_message_by_name(&name)
        .ok_or_else(|| JsonError::UnknownType(name.clone()))?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let dynamic = DynamicMessage::deserialize_with_options(
        desc,
        &mut de,
        &DeserializeOptions::new().deny_unknown_fields(true),
    )
    .and_then(|m| de.end().map(|()| m))
    .map_err(|e| JsonError::Syntax(e.to_string()))?;
    dynamic
        .transcode_to::<T>()
        .map_err(|e| JsonError::Syntax(e.to_string()))
}

/// Writes a message as Temporal's HTTP API does (without the payload shorthand).
pub fn to_json<T: Message + Name>(message: &T) -> Vec<u8> {
    let name = T::full_name();
    let Some(desc) = pool().get_message_by_name(&name) else {
        return b"{}".to_vec();
    };
    let mut dynamic = DynamicMessage::new(desc);
    if dynamic.transcode_from(message).is_err() {
        return b"{}".to_vec();
    }
    dynamic_json(&dynamic)
}

fn dynamic_json(dynamic: &DynamicMessage) -> Vec<u8> {
    let mut out = serde_json::Serializer::new(Vec::new());
    match dynamic.serialize_with_options(&mut out, &SerializeOptions::new()) {
        Ok(()) => out.into_inner(),
        Err(_) => b"{}".to_vec(),
    }
}

/// The HTTP status Temporal's HTTP API (grpc-gateway) answers for a gRPC code.
pub fn http_status(code: tonic::Code) -> StatusCode {
    use tonic::Code as C;
    match code {
        C::Ok => StatusCode::OK,
        C::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        C::InvalidArgument | C::FailedPrecondition | C::OutOfRange => StatusCode::BAD_REQUEST,
        C::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        C::NotFound => StatusCode::NOT_FOUND,
        C::AlreadyExists | C::Aborted => StatusCode::CONFLICT,
        C::PermissionDenied => StatusCode::FORBIDDEN,
        C::Unauthenticated => StatusCode::UNAUTHORIZED,
        C::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        C::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        C::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        C::Unknown | C::Internal | C::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A gRPC error as the HTTP API's body: `{"code", "message", "details"}`, the details being the
/// server's `google.rpc.Status` details (e.g. the running run's id on "already started").
pub fn status_json(status: &tonic::Status) -> Vec<u8> {
    if !status.details().is_empty()
        && let Some(desc) = pool().get_message_by_name("google.rpc.Status")
        && let Ok(dynamic) = DynamicMessage::decode(desc, status.details())
    {
        return dynamic_json(&dynamic);
    }
    error_json(status.code() as i32, status.message())
}

/// An error body in the HTTP API's shape, for errors the gateway finds itself in a request
/// Temporal would refuse the same way (a body that does not parse).
pub fn error_json(code: i32, message: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "code": code, "message": message })).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use temporalio_common::protos::temporal::api::common::v1::{Payload, Payloads};
    use temporalio_common::protos::temporal::api::workflowservice::v1::{
        StartWorkflowExecutionRequest, StartWorkflowExecutionResponse,
    };

    #[test]
    fn the_descriptors_come_from_the_linked_protos() {
        let recorded = include_str!("temporal-api.version").trim();
        let lock = include_str!("../../Cargo.lock");
        let linked = lock
            .split("[[package]]")
            .find(|p| p.contains("name = \"temporalio-protos\""))
            .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
            .map(|v| format!("temporalio-protos {}", v.trim_matches('"')))
            .expect("temporalio-protos in Cargo.lock");
        assert_eq!(
            recorded, linked,
            "run scripts/gateway-protos: the gateway's descriptors are from another version"
        );
        assert!(
            pool()
                .get_message_by_name(&StartWorkflowExecutionRequest::full_name())
                .is_some()
        );
    }

    #[test]
    fn requests_read_and_responses_write_like_the_http_api() {
        let body = br#"{"workflowId":"w","workflowType":{"name":"order"},
            "input":{"payloads":[{"metadata":{"encoding":"anNvbi9wbGFpbg=="},"data":"e30="}]},
            "workflowIdReusePolicy":"WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE",
            "workflowRunTimeout":"90s"}"#;
        let req: StartWorkflowExecutionRequest = from_json(body).expect("parses");
        assert_eq!(req.workflow_type.unwrap().name, "order");
        assert_eq!(req.workflow_id_reuse_policy, 3);
        assert_eq!(req.workflow_run_timeout.unwrap().seconds, 90);
        assert_eq!(
            req.input.unwrap().payloads[0].metadata["encoding"],
            b"json/plain"
        );

        let res = StartWorkflowExecutionResponse {
            run_id: "r".into(),
            started: true,
            status: 1,
            ..Default::default()
        };
        let json: serde_json::Value = serde_json::from_slice(&to_json(&res)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"runId": "r", "started": true, "status": "WORKFLOW_EXECUTION_STATUS_RUNNING"})
        );
        let payloads = Payloads {
            payloads: vec![Payload {
                data: b"{}".to_vec(),
                ..Default::default()
            }],
        };
        let json: serde_json::Value = serde_json::from_slice(&to_json(&payloads)).unwrap();
        assert_eq!(json, serde_json::json!({"payloads": [{"data": "e30="}]}));
    }

    #[test]
    fn unknown_fields_and_bad_json_name_what_is_wrong() {
        let err = from_json::<StartWorkflowExecutionRequest>(br#"{"bogus":1}"#).unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
        let err = from_json::<StartWorkflowExecutionRequest>(br#"{"workflowId":"#).unwrap_err();
        assert!(matches!(err, JsonError::Syntax(_)));
        assert!(from_json::<StartWorkflowExecutionRequest>(b"").is_ok());
    }

    #[test]
    fn grpc_errors_keep_the_http_api_status_mapping() {
        assert_eq!(
            http_status(tonic::Code::AlreadyExists),
            StatusCode::CONFLICT
        );
        assert_eq!(http_status(tonic::Code::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(
            http_status(tonic::Code::ResourceExhausted),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            http_status(tonic::Code::DeadlineExceeded),
            StatusCode::GATEWAY_TIMEOUT
        );
        let body: serde_json::Value =
            serde_json::from_slice(&status_json(&tonic::Status::not_found("no such run"))).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"code": 5, "message": "no such run"})
        );
    }
}
