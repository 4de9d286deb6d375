//! The codec against the test vectors Temporal's Python sample codec wrote
//! (tests/vectors/payload-encryption.json, from tests/python/payload_codec.py), and its
//! behaviour on rotation, plaintext, unknown keys and tampering.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use edgeflow_activities::settings::Secret;
use temporalio_common::data_converters::SerializationContextData;
use temporalio_common::error::{ApplicationFailure, OutgoingActivityError, OutgoingError};
use temporalio_common::payload_visitor::encode_payloads;

use super::settings::{EncryptionSettings, KeySettings};
use super::*;

const VECTORS: &str = include_str!("../../tests/vectors/payload-encryption.json");
const SAMPLE_KEY: &[u8] = b"test-key-test-key-test-key-test!";

fn settings(keys: &[(&str, &[u8])], active: &str, require_encrypted: bool) -> EncryptionSettings {
    EncryptionSettings {
        keys: keys
            .iter()
            .map(|(id, key)| {
                (
                    id.to_string(),
                    KeySettings {
                        key: Some(Secret::from(STANDARD.encode(key))),
                        key_file: None,
                    },
                )
            })
            .collect(),
        active_key_id: Some(active.to_string()),
        require_encrypted,
        decrypt_only: false,
    }
}

fn codec(keys: &[(&str, &[u8])], active: &str) -> EncryptionCodec {
    EncryptionCodec::from_settings(&settings(keys, active, false))
        .expect("valid settings")
        .expect("keys configured")
}

fn payload_from_json(j: &serde_json::Value) -> Payload {
    let bytes = |v: &serde_json::Value| STANDARD.decode(v.as_str().unwrap_or_default()).unwrap();
    Payload {
        metadata: j["metadata"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), bytes(v))).collect())
            .unwrap_or_default(),
        data: bytes(&j["data"]),
        ..Default::default()
    }
}

fn json_payload(text: &str) -> Payload {
    Payload {
        metadata: [("encoding".to_string(), b"json/plain".to_vec())].into(),
        data: text.as_bytes().to_vec(),
        ..Default::default()
    }
}

struct Vector {
    key_id: String,
    key: Vec<u8>,
    plaintext: Payload,
    encoded: Payload,
}

fn vectors() -> Vec<Vector> {
    let doc: serde_json::Value = serde_json::from_str(VECTORS).expect("vectors are JSON");
    let vectors: Vec<Vector> = doc["vectors"]
        .as_array()
        .expect("a list of vectors")
        .iter()
        .map(|v| Vector {
            key_id: v["key_id"].as_str().unwrap().to_string(),
            key: STANDARD.decode(v["key"].as_str().unwrap()).unwrap(),
            plaintext: payload_from_json(&v["plaintext"]),
            encoded: payload_from_json(&v["encoded"]),
        })
        .collect();
    assert!(vectors.len() >= 10, "the vectors file lost its vectors");
    vectors
}

#[test]
fn decodes_what_the_python_sample_encoded() {
    let vectors = vectors();
    let keys: BTreeMap<String, Vec<u8>> = vectors
        .iter()
        .map(|v| (v.key_id.clone(), v.key.clone()))
        .collect();
    assert_eq!(
        keys["test-key-id"], SAMPLE_KEY,
        "the sample's own key and id"
    );
    let keys: Vec<(&str, &[u8])> = keys
        .iter()
        .map(|(id, k)| (id.as_str(), k.as_slice()))
        .collect();
    let codec = codec(&keys, "test-key-id");
    for v in &vectors {
        assert_eq!(
            v.encoded.metadata[ENCODING_METADATA], b"binary/encrypted",
            "{}",
            v.key_id
        );
        let decoded = codec.decrypt(v.encoded.clone()).expect("decrypts");
        assert_eq!(decoded, v.plaintext, "a vector under {}", v.key_id);
    }
}

#[test]
fn seals_byte_for_byte_as_the_python_sample_given_its_nonce() {
    // With one metadata entry, protobuf serialization has one possible byte order, so the same
    // key and nonce must give the very bytes Python wrote: the serialized Payload, the layout
    // nonce ‖ ciphertext ‖ tag, no associated data.
    let mut checked = 0;
    for v in vectors().iter().filter(|v| v.plaintext.metadata.len() == 1) {
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &v.key).unwrap());
        let nonce: [u8; NONCE_LEN] = v.encoded.data[..NONCE_LEN].try_into().unwrap();
        let sealed = seal(&key, nonce, v.plaintext.encode_to_vec()).unwrap();
        assert_eq!(sealed, v.encoded.data, "a vector under {}", v.key_id);
        checked += 1;
    }
    assert!(checked >= 6, "only {checked} vectors compared");
}

#[test]
fn encrypts_whole_payloads_with_the_active_key_and_decrypts_them_back() {
    let codec = codec(&[("a", SAMPLE_KEY), ("b", &[7u8; 32])], "b");
    let plain = json_payload(r#"{"email":"ada@example.com"}"#);
    let sealed = codec.encrypt(&plain).unwrap();
    assert_eq!(
        sealed.metadata,
        [
            ("encoding".to_string(), b"binary/encrypted".to_vec()),
            ("encryption-key-id".to_string(), b"b".to_vec()),
        ]
        .into()
    );
    assert_eq!(
        sealed.data.len(),
        NONCE_LEN + plain.encode_to_vec().len() + TAG_LEN
    );
    assert!(
        !String::from_utf8_lossy(&sealed.data).contains("ada@example.com"),
        "ciphertext holds the plaintext"
    );
    let again = codec.encrypt(&plain).unwrap();
    assert_ne!(sealed.data, again.data, "a fresh nonce every time");
    assert_eq!(codec.decrypt(sealed).unwrap(), plain);
}

#[test]
fn a_rotated_out_key_still_decrypts_and_a_missing_one_is_named() {
    let before = codec(&[("key_a", SAMPLE_KEY)], "key_a");
    let after = codec(&[("key_a", SAMPLE_KEY), ("key_b", &[9u8; 32])], "key_b");
    let only_b = codec(&[("key_b", &[9u8; 32])], "key_b");
    let plain = json_payload(r#""started under key_a""#);
    let sealed = before.encrypt(&plain).unwrap();
    assert_eq!(after.decrypt(sealed.clone()).unwrap(), plain);
    let e = only_b.decrypt(sealed).unwrap_err();
    assert!(matches!(e, CodecError::UnknownKey { ref key_id, .. } if key_id == "key_a"));
    assert_eq!(
        e.to_string(),
        "payload encrypted with key `key_a`, which this process does not hold (it holds \
         `key_b`); add that key to [encryption.keys] to decrypt it"
    );
}

#[test]
fn plaintext_passes_through_unless_encryption_is_required() {
    let plain = json_payload("42");
    let lenient = codec(&[("a", SAMPLE_KEY)], "a");
    assert_eq!(lenient.decrypt(plain.clone()).unwrap(), plain);
    let strict = EncryptionCodec::from_settings(&settings(&[("a", SAMPLE_KEY)], "a", true))
        .unwrap()
        .unwrap();
    let e = strict.decrypt(plain).unwrap_err();
    assert_eq!(
        e.to_string(),
        "payload is not encrypted (encoding `json/plain`) and encryption.require_encrypted \
         refuses plaintext payloads"
    );
    // What it encrypted itself, it reads.
    let sealed = strict.encrypt(&json_payload("42")).unwrap();
    assert_eq!(strict.decrypt(sealed).unwrap(), json_payload("42"));
}

#[test]
fn altered_or_foreign_ciphertext_is_refused() {
    let codec = codec(&[("a", SAMPLE_KEY)], "a");
    let sealed = codec.encrypt(&json_payload("1")).unwrap();
    let mut flipped = sealed.clone();
    flipped.data[NONCE_LEN] ^= 1;
    assert!(matches!(
        codec.decrypt(flipped),
        Err(CodecError::Unauthentic(id)) if id == "a"
    ));
    let other_bytes = self::codec(&[("a", &[1u8; 32])], "a");
    assert!(matches!(
        other_bytes.decrypt(sealed.clone()),
        Err(CodecError::Unauthentic(_))
    ));
    let mut short = sealed.clone();
    short.data.truncate(NONCE_LEN + TAG_LEN - 1);
    assert!(matches!(
        codec.decrypt(short),
        Err(CodecError::TooShort { len: 27, .. })
    ));
    let mut anonymous = sealed;
    anonymous.metadata.remove(KEY_ID_METADATA);
    assert!(matches!(codec.decrypt(anonymous), Err(CodecError::NoKeyId)));
}

#[test]
fn no_keys_leave_the_data_converter_as_the_sdk_makes_it() {
    let (_, codec) = data_converter(&EncryptionSettings::default()).unwrap();
    assert!(codec.is_none());
}

#[tokio::test]
async fn failure_messages_travel_encrypted() {
    let (dc, codec) = data_converter(&settings(&[("a", SAMPLE_KEY)], "a", false)).unwrap();
    assert_eq!(codec.expect("on").encrypts_with(), Some("a"));
    let error: OutgoingError = OutgoingActivityError::Application(Box::new(
        ApplicationFailure::non_retryable("card of ada@example.com declined"),
    ))
    .into();
    let mut failure = dc.to_failure(&SerializationContextData::None, error);
    assert!(
        !failure.message.contains("ada@example.com"),
        "{}",
        failure.message
    );
    encode_payloads(&mut failure, dc.codec(), &SerializationContextData::None)
        .await
        .unwrap();
    let attributes = failure
        .encoded_attributes
        .clone()
        .expect("encoded attributes");
    assert_eq!(attributes.metadata["encoding"], b"binary/encrypted");
    let readable = format!("{failure:?}");
    assert!(!readable.contains("ada@example.com"), "{readable}");
    // And back, as a client reading the failure does.
    let opened = dc
        .codec()
        .decode(&SerializationContextData::None, vec![attributes])
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&opened[0].data).contains("ada@example.com"));
}

#[test]
fn a_cause_that_arrived_encoded_keeps_its_message() {
    // A workflow failing with an activity's error hands on the activity's failure as it arrived:
    // its message in encoded attributes (decrypted on arrival), a placeholder in `message`.
    let (dc, _) = data_converter(&settings(&[("a", SAMPLE_KEY)], "a", false)).unwrap();
    let received = Failure {
        message: ENCODED_FAILURE_MESSAGE.to_string(),
        encoded_attributes: Some(crate::payload::json_payload(&serde_json::json!({
            "message": "statement `nope` is not configured", "stack_trace": "",
        }))),
        ..Default::default()
    };
    let mut failure = Failure {
        message: "Activity task failed".to_string(),
        cause: Some(Box::new(received)),
        ..Default::default()
    };
    encode_attributes(&mut failure);
    assert_eq!(failure.message, ENCODED_FAILURE_MESSAGE);
    let read = dc
        .failure_converter()
        .to_error(
            failure,
            dc.payload_converter(),
            &SerializationContextData::None,
        )
        .unwrap();
    assert_eq!(read.failure().message, "Activity task failed");
    assert_eq!(
        read.cause().map(|c| c.failure().message.as_str()),
        Some("statement `nope` is not configured")
    );
}

#[test]
fn decrypt_only_reads_every_key_and_writes_plaintext() {
    let writer = codec(&[("a", SAMPLE_KEY)], "a");
    let reader = EncryptionCodec::from_settings(&EncryptionSettings {
        decrypt_only: true,
        ..settings(&[("a", SAMPLE_KEY)], "a", false)
    })
    .unwrap()
    .unwrap();
    assert_eq!(reader.encrypts_with(), None);
    let plain = json_payload("7");
    assert_eq!(reader.encrypt(&plain).unwrap(), plain);
    assert_eq!(
        reader.decrypt(writer.encrypt(&plain).unwrap()).unwrap(),
        plain
    );
}
