//! Custom key stores (AWS CloudHSM and external key stores) are out of scope:
//! keyfence is its own key store. Their operations answer UnsupportedOperationException.

use serde_json::Value;

use super::Ops;
use crate::api::messages;
use crate::api::wire::parse;
use crate::api::ApiError;

impl Ops<'_> {
    /// Refuses a custom key store operation (after the body parses, so a
    /// malformed body is still a SerializationException).
    pub(super) fn custom_key_store(&self, body: &[u8]) -> Result<Value, ApiError> {
        parse::<serde_json::Map<String, Value>>(body)?;
        Err(messages::custom_key_stores_unsupported())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{handle, operation};

    #[test]
    fn every_custom_key_store_operation_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = keyfence_store::SqliteStore::open(&dir.path().join("k.db")).unwrap();
        let root =
            keyfence_core::LocalRootKey::new(keyfence_crypto::SymmetricKey::generate().unwrap());
        let clock = std::sync::Arc::new(keyfence_core::SystemClock);
        let kms = keyfence_core::Kms::open(std::sync::Arc::new(store), &root, clock, "us-east-1")
            .unwrap();
        for name in [
            "CreateCustomKeyStore",
            "ConnectCustomKeyStore",
            "DeleteCustomKeyStore",
            "DescribeCustomKeyStores",
            "DisconnectCustomKeyStore",
            "UpdateCustomKeyStore",
        ] {
            let op = operation(name).unwrap();
            let refused = handle(&kms, "111122223333", op, b"{}").unwrap_err();
            assert_eq!(refused.code, "UnsupportedOperationException", "{name}");
            let malformed = handle(&kms, "111122223333", op, b"not json").unwrap_err();
            assert_eq!(malformed.code, "SerializationException", "{name}");
        }
    }
}
