//! Activity input that may not match its type, kept as an error instead of failing to decode.
//!
//! The SDK decodes an activity's input before the activity runs; a payload that does not match
//! the input type fails there with a *retryable* failure, so a workflow written in another SDK
//! that sends a misspelt field would retry forever. The implementations therefore take
//! `Untrusted<T>`, whose decoding never fails on a shape mismatch; the activity turns the
//! mismatch into a non-retryable invalid-input failure. On the wire it is exactly `T`.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `T` as decoded from a workflow's payload, or why it did not decode.
#[derive(Debug, Clone)]
pub struct Untrusted<T>(pub Result<T, String>);

impl<T> Untrusted<T> {
    /// Wrap a well-formed value (what a typed Rust caller sends).
    pub fn new(value: T) -> Self {
        Self(Ok(value))
    }
}

impl<T> From<T> for Untrusted<T> {
    fn from(value: T) -> Self {
        Self::new(value)
    }
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Untrusted<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Malformed JSON still fails here (the SDK could not have decoded it either); only the
        // mismatch between well-formed JSON and `T` is captured.
        let value = serde_json::Value::deserialize(deserializer)?;
        Ok(Self(T::deserialize(value).map_err(|e| e.to_string())))
    }
}

impl<T: Serialize> Serialize for Untrusted<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Ok(value) => value.serialize(serializer),
            Err(message) => Err(serde::ser::Error::custom(format!(
                "cannot serialize input that failed to decode: {message}"
            ))),
        }
    }
}

impl<T: JsonSchema> JsonSchema for Untrusted<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }

    fn schema_id() -> std::borrow::Cow<'static, str> {
        T::schema_id()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Input {
        step: String,
    }

    #[test]
    fn a_shape_mismatch_is_kept_as_an_error() {
        let ok: Untrusted<Input> = serde_json::from_str(r#"{"step":"a"}"#).unwrap();
        assert_eq!(ok.0.unwrap(), Input { step: "a".into() });

        let bad: Untrusted<Input> = serde_json::from_str(r#"{"step":"a","stpe":1}"#).unwrap();
        assert!(bad.0.unwrap_err().contains("unknown field `stpe`"));
    }

    #[test]
    fn on_the_wire_it_is_the_inner_type() {
        let json = serde_json::to_string(&Untrusted::new(Input { step: "s".into() })).unwrap();
        assert_eq!(json, r#"{"step":"s"}"#);
    }
}
