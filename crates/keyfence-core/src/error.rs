//! The typed errors of KMS operations. The server maps each variant to an AWS
//! error shape at the edge; the variants that name algorithms, specs or usages
//! carry them typed, and the server words their messages.

use keyfence_crypto::asym::{self, MacAlgorithm, SigningAlgorithm};
use keyfence_crypto::CryptoError;

use crate::fence::FenceId;
use crate::model::{EncryptionAlgorithm, KeySpec, KeyUsage};
use crate::store::StoreError;

/// An algorithm a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// An encryption algorithm.
    Encryption(EncryptionAlgorithm),
    /// A signing algorithm.
    Signing(SigningAlgorithm),
    /// A MAC algorithm.
    Mac(MacAlgorithm),
}

/// A request member whose value or length has bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member {
    /// A List* page size.
    Limit,
    /// GenerateRandom's or GenerateDataKey's byte count.
    NumberOfBytes,
    /// ScheduleKeyDeletion's waiting period.
    PendingWindowInDays,
    /// EnableKeyRotation's period.
    RotationPeriodInDays,
    /// Encrypt's plaintext.
    Plaintext,
    /// Decrypt's or ReEncrypt's ciphertext.
    CiphertextBlob,
    /// Sign's, Verify's or a MAC's message.
    Message,
    /// A key's description.
    Description,
}

/// The bound a member broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// A number outside `min..=max`.
    Value {
        /// The value given.
        value: i64,
        /// Smallest allowed.
        min: i64,
        /// Largest allowed.
        max: i64,
    },
    /// A length outside `min..=max`.
    Length {
        /// The length given.
        len: usize,
        /// Shortest allowed.
        min: usize,
        /// Longest allowed.
        max: usize,
    },
    /// A length over `max`.
    MaxLength {
        /// Longest allowed.
        max: usize,
    },
}

/// An operation a key's spec rules out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecOperation {
    /// GetPublicKey (symmetric and HMAC keys have no public key).
    GetPublicKey,
    /// Rotation (only symmetric keys rotate).
    Rotate,
}

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
    /// A member out of its bounds (a Validation error).
    #[error("{member:?} out of bounds: {bound:?}")]
    OutOfBounds {
        /// Which member.
        member: Member,
        /// What it broke.
        bound: Bound,
    },
    /// The key's usage does not allow the operation (an InvalidKeyUsage).
    #[error("{key} has key usage {usage:?}; the operation needs {needed:?}")]
    WrongKeyUsage {
        /// The key's ARN.
        key: String,
        /// Its usage.
        usage: KeyUsage,
        /// The usage the operation needs.
        needed: KeyUsage,
    },
    /// The algorithm is not one the key's spec offers (an InvalidKeyUsage).
    #[error("{algorithm:?} is not compatible with {key} ({spec:?})")]
    IncompatibleAlgorithm {
        /// The key's ARN.
        key: String,
        /// Its spec.
        spec: KeySpec,
        /// The algorithm asked for.
        algorithm: Algorithm,
    },
    /// A key usage the key spec does not allow (a Validation error).
    #[error("key usage {usage:?} is not compatible with key spec {spec:?}")]
    UsageNotForSpec {
        /// The usage asked for.
        usage: KeyUsage,
        /// The spec asked for.
        spec: KeySpec,
    },
    /// The key's spec rules the operation out (an UnsupportedOperation).
    #[error("{key} is a {spec:?} key; it does not support {operation:?}")]
    SpecCannot {
        /// The key's ARN.
        key: String,
        /// Its spec.
        spec: KeySpec,
        /// What was asked.
        operation: SpecOperation,
    },
    /// The plaintext is too long for RSAES-OAEP with this key (a Validation error).
    #[error(
        "plaintext of {len} bytes cannot be encrypted with {algorithm:?} under {spec:?}: {detail}"
    )]
    PlaintextTooLong {
        /// Plaintext length.
        len: usize,
        /// The algorithm.
        algorithm: asym::EncryptionAlgorithm,
        /// The key's spec.
        spec: KeySpec,
        /// What the crypto layer said.
        detail: CryptoError,
    },
    /// Imported material is not a valid key of the key's spec (an IncorrectKeyMaterial).
    #[error("the imported material is not a valid {spec:?} key: {detail}")]
    MaterialNotOfSpec {
        /// The key's spec.
        spec: KeySpec,
        /// What the crypto layer said.
        detail: CryptoError,
    },
    /// The key is fenced to nodes this node is not one of: it knows the key's
    /// metadata only, and the request must be served by a node that satisfies
    /// the fence (the server forwards it).
    #[error("{key} is fenced to {policy} ({fence}); this node does not satisfy the fence")]
    FencedElsewhere {
        /// The key's ARN (or the key being created).
        key: String,
        /// The fence.
        fence: FenceId,
        /// Its canonical policy.
        policy: String,
    },
    /// A CreateKey names a fence that the authority has not made yet.
    #[error("fence {fence} ({policy}) does not exist yet; the authority makes it")]
    UnknownFence {
        /// The fence id the policy derives.
        fence: FenceId,
        /// Its canonical policy.
        policy: String,
    },
    /// The store could not be reached, or this node's replica is older than
    /// its staleness bound (AWS: DependencyTimeoutException; retry later).
    #[error("{0}")]
    DependencyTimeout(String),
    /// An internal failure; details are logged, not returned.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for KmsError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => {
                KmsError::DependencyTimeout(format!("The key store is unavailable: {m}"))
            }
            other => KmsError::Internal(format!("storage: {other}")),
        }
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
