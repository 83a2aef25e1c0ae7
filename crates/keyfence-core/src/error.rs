//! The typed errors of KMS operations. Each variant is one AWS KMS error shape;
//! the server maps them to `__type` names at the edge.

use keyfence_crypto::CryptoError;

use crate::store::StoreError;

/// Why a KMS operation was refused. Messages never contain key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KmsError {
    /// The key, alias or resource does not exist (or belongs to another account).
    #[error("{0}")]
    NotFound(String),
    /// The key is disabled.
    #[error("{0}")]
    Disabled(String),
    /// The key's state does not allow the operation.
    #[error("{0}")]
    InvalidState(String),
    /// The ciphertext is malformed, tampered, or its context does not match.
    #[error("{0}")]
    InvalidCiphertext(String),
    /// The ciphertext was not encrypted under the key the caller named.
    #[error("{0}")]
    IncorrectKey(String),
    /// A parameter is out of range or inconsistent.
    #[error("{0}")]
    Validation(String),
    /// The key's usage does not allow the operation.
    #[error("{0}")]
    InvalidKeyUsage(String),
    /// The resource already exists.
    #[error("{0}")]
    AlreadyExists(String),
    /// An alias name is malformed or reserved.
    #[error("{0}")]
    InvalidAliasName(String),
    /// A paging marker is not one this service issued.
    #[error("{0}")]
    InvalidMarker(String),
    /// A per-key or per-account limit would be exceeded.
    #[error("{0}")]
    LimitExceeded(String),
    /// A tag is malformed or reserved.
    #[error("{0}")]
    Tag(String),
    /// The operation or parameter value is not supported by this service.
    #[error("{0}")]
    UnsupportedOperation(String),
    /// Verify found that the signature does not match.
    #[error("{0}")]
    InvalidSignature(String),
    /// VerifyMac found that the MAC does not match.
    #[error("{0}")]
    InvalidMac(String),
    /// The import token is not the one issued for this key.
    #[error("{0}")]
    InvalidImportToken(String),
    /// The import token has expired.
    #[error("{0}")]
    ExpiredImportToken(String),
    /// Imported material differs from what the key held before.
    #[error("{0}")]
    IncorrectKeyMaterial(String),
    /// An internal failure; details are logged, not returned.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for KmsError {
    fn from(e: StoreError) -> Self {
        KmsError::Internal(format!("storage: {e}"))
    }
}

impl KmsError {
    /// For a cryptographic failure that no request can cause (the system RNG,
    /// key generation, wrapping under a domain key): an internal error that
    /// names `what` failed. There is deliberately no blanket
    /// `From<CryptoError>`: each call site decides whether a failure is the
    /// caller's (InvalidCiphertext, Validation, …) or this service's.
    pub fn internal_crypto(what: &'static str) -> impl FnOnce(CryptoError) -> Self {
        move |e| Self::Internal(format!("{what}: {e}"))
    }
}
