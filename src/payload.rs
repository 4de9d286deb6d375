//! Temporal payloads in `json/plain`, the encoding every SDK reads and writes: what the operator
//! commands and schedules send as input, what the gateway puts in a start's memo and search
//! attributes, and what the operator commands print back.

use serde::Serialize;
use temporalio_common::protos::temporal::api::common::v1::Payload;

/// A value as one Temporal payload (`json/plain`).
pub fn json_payload<T: Serialize + ?Sized>(value: &T) -> Payload {
    Payload {
        metadata: [("encoding".to_string(), b"json/plain".to_vec())].into(),
        data: serde_json::to_vec(value).unwrap_or_default(),
        ..Default::default()
    }
}

/// The first payload as JSON: `null` when there is none (or it is empty), the text as a string
/// when it is not JSON.
pub fn payload_json(payloads: &[Payload]) -> serde_json::Value {
    match payloads.first() {
        Some(p) if !p.data.is_empty() => serde_json::from_slice(&p.data).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&p.data).into_owned())
        }),
        _ => serde_json::Value::Null,
    }
}
