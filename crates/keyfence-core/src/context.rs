//! Encryption context and its canonical, unambiguous byte form (the AAD).

use std::collections::BTreeMap;

use crate::{Invalid, KmsError};

/// Largest canonical encryption context accepted (AWS allows 8,192 bytes of
/// context; the canonical form adds 4 bytes per string and 4 in all).
const MAX_CONTEXT_BYTES: usize = 8192;

/// A set of non-secret key/value pairs bound to a ciphertext.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncryptionContext(BTreeMap<String, String>);

impl EncryptionContext {
    /// Builds a context from pairs; rejects one that is too large.
    pub fn new(pairs: BTreeMap<String, String>) -> Result<Self, KmsError> {
        let size: usize = pairs.iter().map(|(k, v)| k.len() + v.len()).sum();
        if size > MAX_CONTEXT_BYTES {
            return Err(KmsError::Validation(Invalid::ContextTooLarge {
                size,
                max: MAX_CONTEXT_BYTES,
            }));
        }
        Ok(Self(pairs))
    }

    /// The pairs.
    pub fn pairs(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// Canonical bytes: count, then each pair sorted by key, every field
    /// length-prefixed (u32 big-endian), so distinct contexts never collide.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(self.0.len() as u32).to_be_bytes());
        for (k, v) in &self.0 {
            for field in [k, v] {
                out.extend_from_slice(&(field.len() as u32).to_be_bytes());
                out.extend_from_slice(field.as_bytes());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
        EncryptionContext::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn boundaries_are_unambiguous() {
        assert_ne!(
            ctx(&[("ab", "c")]).canonical_bytes(),
            ctx(&[("a", "bc")]).canonical_bytes()
        );
        assert_ne!(
            ctx(&[]).canonical_bytes(),
            ctx(&[("", "")]).canonical_bytes()
        );
        assert_eq!(
            ctx(&[("b", "1"), ("a", "2")]).canonical_bytes(),
            ctx(&[("a", "2"), ("b", "1")]).canonical_bytes()
        );
    }

    #[test]
    fn oversized_context_is_refused() {
        let big = BTreeMap::from([("k".to_string(), "v".repeat(9000))]);
        assert!(matches!(
            EncryptionContext::new(big),
            Err(KmsError::Validation(_))
        ));
    }

    proptest! {
        #[test]
        fn distinct_contexts_have_distinct_bytes(
            a in proptest::collection::btree_map(".{0,4}", ".{0,4}", 0..4),
            b in proptest::collection::btree_map(".{0,4}", ".{0,4}", 0..4),
        ) {
            let (ca, cb) = (EncryptionContext::new(a.clone()).unwrap(), EncryptionContext::new(b.clone()).unwrap());
            prop_assert_eq!(a == b, ca.canonical_bytes() == cb.canonical_bytes());
        }
    }
}
