//! The payload codec: what the worker and the operator commands hand Temporal is ciphertext.
//!
//! The format is the one Temporal's Go, Python and TypeScript encryption samples share, so any of
//! their clients, workers and codec servers reads what edgeflow writes and the other way round:
//! the whole `Payload`, protobuf-serialized, sealed with AES-256-GCM (no associated data); the
//! new payload's `data` is a random 12-byte nonce ‖ ciphertext ‖ 16-byte tag, its metadata
//! `encoding: binary/encrypted` and `encryption-key-id: <id>`. Nothing else is in the metadata:
//! the original encoding and message type travel inside the ciphertext.
//!
//! Decoding picks the key by the payload's own key id, so every key in `[encryption.keys]`
//! decrypts and only the active one encrypts (rotation). A payload that is not
//! `binary/encrypted` passes through, so runs started before encryption was turned on still
//! finish, unless `encryption.require_encrypted` refuses it. With `encryption.decrypt_only` the
//! codec encrypts nothing: every process gets the keys first, then encryption is turned on.
//!
//! [`data_converter`] is what clients are built with: the SDK's default converter with this
//! codec and failure attributes (messages, stack traces) moved into an encoded payload (as
//! `DefaultFailureConverter::new(true)` does, keeping causes that arrived encoded), or the SDK's
//! default converter unchanged when no key is configured.
//!
//! [`settings`]: the `[encryption]` section, and its checks.

pub mod settings;

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use futures::FutureExt;
use futures::future::BoxFuture;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prost::Message;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::ExposeSecret;
use temporalio_common::data_converters::{
    DataConverter, DefaultFailureConverter, FailureConverter, PayloadCodec, PayloadConversionError,
    PayloadConverter, SerializationContextData,
};
use temporalio_common::error::{IncomingError, OutgoingError};
use temporalio_common::protos::temporal::api::common::v1::Payload;
use temporalio_common::protos::temporal::api::failure::v1::Failure;

use crate::payload::json_payload;
use crate::settings::error::{SettingsErrors, problem};
use settings::EncryptionSettings;

/// `encoding` of an encrypted payload.
pub const ENCRYPTED_ENCODING: &str = "binary/encrypted";
/// Metadata key naming the key a payload was encrypted with.
pub const KEY_ID_METADATA: &str = "encryption-key-id";
const ENCODING_METADATA: &str = "encoding";
/// Bytes of the GCM tag after the ciphertext.
const TAG_LEN: usize = 16;

/// Why a payload could not be encrypted or decrypted.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error(
        "payload encrypted with key `{key_id}`, which this process does not hold (it holds {held}); \
         add that key to [encryption.keys] to decrypt it"
    )]
    UnknownKey { key_id: String, held: String },
    #[error("payload is `{ENCRYPTED_ENCODING}` but has no `{KEY_ID_METADATA}`")]
    NoKeyId,
    #[error(
        "payload encrypted with key `{0}` does not decrypt: this process's key `{0}` is not the one \
         that encrypted it, or the payload was altered"
    )]
    Unauthentic(String),
    #[error("payload encrypted with key `{key_id}` is {len} bytes, shorter than a nonce and a tag")]
    TooShort { key_id: String, len: usize },
    #[error("payload decrypted with key `{0}` is not a serialized Payload: {1}")]
    NotAPayload(String, prost::DecodeError),
    #[error(
        "payload is not encrypted (encoding `{0}`) and encryption.require_encrypted refuses \
         plaintext payloads"
    )]
    Plaintext(String),
    #[error("could not draw a random nonce")]
    NoRandom,
    #[error("payload of {0} bytes is above AES-GCM's limit")]
    TooLarge(usize),
}

impl CodecError {
    /// The `reason` label of [`DECRYPT_FAILURES`]: a fixed set, never the key id (whoever writes a
    /// payload chooses that).
    fn reason(&self) -> &'static str {
        match self {
            CodecError::UnknownKey { .. } => "unknown_key",
            CodecError::Unauthentic(_) => "unauthentic",
            CodecError::NoKeyId | CodecError::TooShort { .. } | CodecError::NotAPayload(..) => {
                "malformed"
            }
            CodecError::Plaintext(_) => "plaintext_refused",
            CodecError::NoRandom | CodecError::TooLarge(_) => "other",
        }
    }
}

/// The `reason` label of [`DECRYPT_FAILURES`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecryptFailureLabels {
    reason: &'static str,
}

/// `edgeflow_payload_decrypt_failures_total{reason}`: payloads this process could not decrypt. An
/// `unknown_key` means a key is missing here (the alert `EdgeflowPayloadKeyMissing`); the log line
/// the SDK writes with the error names the key id (and, for a workflow task, the run).
pub static DECRYPT_FAILURES: LazyLock<Family<DecryptFailureLabels, Counter>> =
    LazyLock::new(|| {
        let family = Family::<DecryptFailureLabels, Counter>::default();
        // Every reason from zero, so that `increase()` sees the first failure.
        for reason in [
            "unknown_key",
            "unauthentic",
            "malformed",
            "plaintext_refused",
            "other",
        ] {
            family
                .get_or_create(&DecryptFailureLabels { reason })
                .inc_by(0);
        }
        family
    });

/// AES-256-GCM over whole payloads, with every configured key by id.
#[derive(Clone)]
pub struct EncryptionCodec(Arc<Keyring>);

struct Keyring {
    keys: BTreeMap<String, LessSafeKey>,
    active_key_id: String,
    active: LessSafeKey,
    require_encrypted: bool,
    decrypt_only: bool,
    random: SystemRandom,
}

impl EncryptionCodec {
    /// The codec `[encryption]` describes; `None` when it configures no key. Keys are read (key
    /// files included) now.
    pub fn from_settings(e: &EncryptionSettings) -> Result<Option<Self>, SettingsErrors> {
        let Some(read) = e.read_keys().map_err(SettingsErrors)? else {
            return Ok(None);
        };
        let active_key_id = read.active_key_id;
        let mut keys = BTreeMap::new();
        for (id, key) in &read.by_id {
            // 32 bytes always make an AES-256 key; ring only refuses other lengths.
            let unbound = UnboundKey::new(&AES_256_GCM, key.expose_secret()).map_err(|_| {
                SettingsErrors(vec![problem(
                    format!("encryption.keys.{id}"),
                    "not an AES-256 key",
                )])
            })?;
            keys.insert(id.clone(), LessSafeKey::new(unbound));
        }
        let active = keys.get(&active_key_id).cloned().ok_or_else(|| {
            SettingsErrors(vec![problem(
                "encryption.active_key_id",
                format!("`{active_key_id}` names no key"),
            )])
        })?;
        Ok(Some(Self(Arc::new(Keyring {
            keys,
            active_key_id,
            active,
            require_encrypted: e.require_encrypted,
            decrypt_only: e.decrypt_only,
            random: SystemRandom::new(),
        }))))
    }

    /// Whether a payload encrypted under `key_id` can be decrypted.
    pub fn holds(&self, key_id: &str) -> bool {
        self.0.keys.contains_key(key_id)
    }

    /// The id new payloads are encrypted with; `None` while `decrypt_only`.
    pub fn encrypts_with(&self) -> Option<&str> {
        (!self.0.decrypt_only).then_some(self.0.active_key_id.as_str())
    }

    /// Encrypts one payload with the active key (returns it as it is while `decrypt_only`).
    pub fn encrypt(&self, payload: &Payload) -> Result<Payload, CodecError> {
        let k = &self.0;
        if k.decrypt_only {
            return Ok(payload.clone());
        }
        let mut nonce = [0u8; NONCE_LEN];
        k.random
            .fill(&mut nonce)
            .map_err(|_| CodecError::NoRandom)?;
        Ok(Payload {
            metadata: [
                (ENCODING_METADATA.to_string(), ENCRYPTED_ENCODING.into()),
                (KEY_ID_METADATA.to_string(), k.active_key_id.clone().into()),
            ]
            .into(),
            data: seal(&k.active, nonce, payload.encode_to_vec())?,
            ..Default::default()
        })
    }

    /// Decrypts one payload with the key it names; passes a payload that is not encrypted
    /// through, unless plaintext is refused. Failures are counted in [`DECRYPT_FAILURES`].
    pub fn decrypt(&self, payload: Payload) -> Result<Payload, CodecError> {
        self.open(payload).inspect_err(|e| {
            let reason = e.reason();
            DECRYPT_FAILURES
                .get_or_create(&DecryptFailureLabels { reason })
                .inc();
        })
    }

    fn open(&self, payload: Payload) -> Result<Payload, CodecError> {
        let k = &self.0;
        let encoding = payload
            .metadata
            .get(ENCODING_METADATA)
            .map(|e| String::from_utf8_lossy(e).into_owned())
            .unwrap_or_default();
        if encoding != ENCRYPTED_ENCODING {
            if k.require_encrypted {
                return Err(CodecError::Plaintext(encoding));
            }
            return Ok(payload);
        }
        let key_id = payload
            .metadata
            .get(KEY_ID_METADATA)
            .map(|id| String::from_utf8_lossy(id).into_owned())
            .ok_or(CodecError::NoKeyId)?;
        let Some(key) = k.keys.get(&key_id) else {
            let held: Vec<String> = k.keys.keys().map(|id| format!("`{id}`")).collect();
            return Err(CodecError::UnknownKey {
                key_id,
                held: held.join(", "),
            });
        };
        let mut data = payload.data;
        if data.len() < NONCE_LEN + TAG_LEN {
            return Err(CodecError::TooShort {
                key_id,
                len: data.len(),
            });
        }
        let (nonce, sealed) = data.split_at_mut(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| CodecError::Unauthentic(key_id.clone()))?;
        let plain = key
            .open_in_place(nonce, Aad::empty(), sealed)
            .map_err(|_| CodecError::Unauthentic(key_id.clone()))?;
        Payload::decode(&*plain).map_err(|e| CodecError::NotAPayload(key_id, e))
    }
}

/// nonce ‖ AES-256-GCM(`plain`) ‖ tag: the samples' `data`.
fn seal(key: &LessSafeKey, nonce: [u8; NONCE_LEN], plain: Vec<u8>) -> Result<Vec<u8>, CodecError> {
    let len = plain.len();
    let mut out = Vec::with_capacity(NONCE_LEN + len + TAG_LEN);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&plain);
    // ring refuses only inputs past GCM's limit (64 GiB), far above any payload Temporal takes.
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::empty(),
            &mut out[NONCE_LEN..],
        )
        .map_err(|_| CodecError::TooLarge(len))?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

fn conversion_error(e: CodecError) -> PayloadConversionError {
    PayloadConversionError::EncodingError(Box::new(e))
}

impl PayloadCodec for EncryptionCodec {
    fn encode(
        &self,
        _: &SerializationContextData,
        payloads: Vec<Payload>,
    ) -> BoxFuture<'static, Result<Vec<Payload>, PayloadConversionError>> {
        // Sealing a payload takes microseconds: done here, not on another task.
        let encoded = payloads
            .iter()
            .map(|p| self.encrypt(p).map_err(conversion_error))
            .collect();
        futures::future::ready(encoded).boxed()
    }

    fn decode(
        &self,
        _: &SerializationContextData,
        payloads: Vec<Payload>,
    ) -> BoxFuture<'static, Result<Vec<Payload>, PayloadConversionError>> {
        let decoded = payloads
            .into_iter()
            .map(|p| self.decrypt(p).map_err(conversion_error))
            .collect();
        futures::future::ready(decoded).boxed()
    }
}

/// The SDK's failure converter with failure messages and stack traces moved into an encoded
/// attributes payload (which the codec then encrypts), at every level of a failure's chain.
///
/// Not `DefaultFailureConverter::new(true)` as it is: a workflow that fails with an activity's
/// error hands on the failure it received, whose cause arrived encoded, with the placeholder
/// message "Encoded failure" and the real one in its (by then decrypted) attributes. The SDK's
/// converter (temporalio-common 1.1.1) encodes that cause again from its placeholder message,
/// so the real message would be lost from the run's failure. Here a level that is already
/// encoded keeps its attributes.
struct EncodedAttributesFailureConverter;

/// The placeholder message of a failure whose message is in its encoded attributes, as every
/// SDK writes it.
const ENCODED_FAILURE_MESSAGE: &str = "Encoded failure";

impl FailureConverter for EncodedAttributesFailureConverter {
    fn to_failure(
        &self,
        error: OutgoingError,
        payload_converter: &PayloadConverter,
        context: &SerializationContextData,
    ) -> Failure {
        let mut failure =
            DefaultFailureConverter::new(false).to_failure(error, payload_converter, context);
        encode_attributes(&mut failure);
        failure
    }

    fn to_error(
        &self,
        failure: Failure,
        payload_converter: &PayloadConverter,
        context: &SerializationContextData,
    ) -> Result<IncomingError, PayloadConversionError> {
        DefaultFailureConverter::new(true).to_error(failure, payload_converter, context)
    }
}

/// Moves message and stack trace into `encoded_attributes` (`{"message", "stack_trace"}` as
/// JSON, the shape every SDK reads) at each level not already encoded.
fn encode_attributes(failure: &mut Failure) {
    if failure.encoded_attributes.is_none() {
        let attributes = serde_json::json!({
            "message": std::mem::take(&mut failure.message),
            "stack_trace": std::mem::take(&mut failure.stack_trace),
        });
        failure.encoded_attributes = Some(json_payload(&attributes));
        failure.message = ENCODED_FAILURE_MESSAGE.to_string();
    }
    if let Some(cause) = failure.cause.as_deref_mut() {
        encode_attributes(cause);
    }
}

/// The data converter for every client of this process: with `[encryption]` keys, the SDK's
/// payload converter, failures whose message and stack trace go into an encoded (so encrypted)
/// payload, and the [`EncryptionCodec`] (`decrypt_only`: the SDK's failures, and the codec only
/// decrypting); without keys, the SDK's default, exactly.
pub fn data_converter(
    e: &EncryptionSettings,
) -> Result<(DataConverter, Option<EncryptionCodec>), SettingsErrors> {
    Ok(match EncryptionCodec::from_settings(e)? {
        // Failure attributes stay where every client finds them until they can be encrypted.
        Some(codec) if e.decrypt_only => (
            DataConverter::new(
                PayloadConverter::default(),
                DefaultFailureConverter::new(false),
                codec.clone(),
            ),
            Some(codec),
        ),
        Some(codec) => (
            DataConverter::new(
                PayloadConverter::default(),
                EncodedAttributesFailureConverter,
                codec.clone(),
            ),
            Some(codec),
        ),
        None => (DataConverter::default(), None),
    })
}

#[cfg(test)]
mod tests;
