//! Idempotency keys: workflow id + step, the same on every retry of the same side effect.
//!
//! Temporal runs an activity at least once. Each side effect therefore carries a key derived
//! from the workflow id and a `step` string that the workflow chooses (unique within the
//! workflow): the HTTP `Idempotency-Key` header, the db and email ledger rows, the email
//! `Message-ID`, the webhook `webhook-id`. The attempt number and run id are deliberately not
//! part of it: a retry, a workflow reset or a continue-as-new must meet the first attempt's
//! record. Reusing a workflow id for a new request therefore dedupes against the old one, which
//! is what the edge wants (it maps the client's `Idempotency-Key` to the workflow id).

use sha2::{Digest, Sha256};

use crate::failure::Failure;

/// The longest step key accepted.
pub const MAX_STEP_CHARS: usize = 200;

/// Workflow id + step.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey {
    workflow_id: String,
    step: String,
}

impl IdempotencyKey {
    /// A key, after checking the step: non-empty, at most [`MAX_STEP_CHARS`], no control
    /// characters.
    pub fn new(workflow_id: impl Into<String>, step: impl Into<String>) -> Result<Self, Failure> {
        let step = step.into();
        if step.is_empty() {
            return Err(Failure::invalid_input("`step` must not be empty"));
        }
        if step.chars().count() > MAX_STEP_CHARS {
            return Err(Failure::invalid_input(format!(
                "`step` is longer than {MAX_STEP_CHARS} characters"
            )));
        }
        if step.chars().any(char::is_control) {
            return Err(Failure::invalid_input(
                "`step` must not contain control characters",
            ));
        }
        Ok(Self {
            workflow_id: workflow_id.into(),
            step,
        })
    }

    /// The workflow id part.
    pub fn workflow_id(&self) -> &str {
        &self.workflow_id
    }

    /// The step part.
    pub fn step(&self) -> &str {
        &self.step
    }

    /// 32 lowercase hex characters (128 bits of SHA-256 over both parts, length-prefixed so
    /// that `("a/b", "c")` and `("a", "b/c")` differ): safe in any header, file name or id.
    pub fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update((self.workflow_id.len() as u64).to_be_bytes());
        hasher.update(self.workflow_id.as_bytes());
        hasher.update(self.step.as_bytes());
        let hash = hasher.finalize();
        hash[..16].iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_stable_and_separates_the_parts() {
        let a = IdempotencyKey::new("order-1", "charge").unwrap();
        assert_eq!(
            a.digest(),
            IdempotencyKey::new("order-1", "charge").unwrap().digest()
        );
        assert_eq!(a.digest().len(), 32);
        assert!(a.digest().chars().all(|c| c.is_ascii_hexdigit()));
        let b = IdempotencyKey::new("order-1", "refund").unwrap();
        assert_ne!(a.digest(), b.digest());
        let c = IdempotencyKey::new("a/b", "c").unwrap();
        let d = IdempotencyKey::new("a", "b/c").unwrap();
        assert_ne!(c.digest(), d.digest());
    }

    #[test]
    fn steps_are_checked() {
        assert!(IdempotencyKey::new("w", "").is_err());
        assert!(IdempotencyKey::new("w", "a\nb").is_err());
        assert!(IdempotencyKey::new("w", "x".repeat(201)).is_err());
        assert!(IdempotencyKey::new("w", "reminder-3/ünïcode ok").is_ok());
    }
}
