//! The typed errors of KMS operations: each variant says what a refusal is
//! about (a key ARN, an alias, a state, a member, a reason), never AWS
//! wording. The server maps each variant to an AWS error shape and words its
//! message at the edge (`keyfence-server/src/api/messages.rs`).

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

/// What a NotFoundException is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// A key reference that is none of key id, key ARN, alias name, alias ARN.
    InvalidKeyId {
        /// The reference as given.
        given: String,
    },
    /// An alias name or alias ARN where only a key id or key ARN may be given.
    AliasNotAllowed {
        /// The reference as given.
        given: String,
    },
    /// No live key of the caller's account has this ARN.
    Key {
        /// The key's ARN.
        arn: String,
    },
    /// No alias of the caller's account has this ARN.
    Alias {
        /// The alias's ARN.
        arn: String,
    },
    /// The key has no imported material with this KeyMaterialId that can be deleted.
    KeyMaterial {
        /// The key's ARN.
        arn: String,
        /// The KeyMaterialId as given.
        given: String,
    },
}

/// Why a key's state refuses an operation (a KMSInvalidStateException).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateRefusal {
    /// The key is pending deletion.
    PendingDeletion,
    /// The key awaits its imported material.
    PendingImport,
    /// CancelKeyDeletion on a key that is not pending deletion.
    NotPendingDeletion,
    /// An import into a key that already has its material.
    HasKeyMaterial,
    /// RotateKeyOnDemand of a key with imported material and none pending rotation.
    NoPendingRotation,
}

/// Why a ciphertext was refused (an InvalidCiphertextException).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CiphertextProblem {
    /// Malformed, tampered, under no key of the caller, or under another context.
    NotForContext,
    /// Not an ML-KEM ciphertext for the key (Decapsulate).
    NotMlKem,
    /// Imported key material that does not unwrap with its import parameters.
    ImportUnwrap,
}

/// A request whose values do not go together (a ValidationException).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// The encryption context is larger than allowed.
    ContextTooLarge {
        /// Its size (bytes of keys and values).
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A Verify signature of no length or over the limit.
    SignatureLength {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A GenerateDataKeyPair spec that is not a data key pair spec.
    NotDataKeyPairSpec(asym::KeySpec),
    /// An import wrapping key spec that is not one.
    NotWrappingKeySpec(asym::KeySpec),
    /// UpdateAlias to a key of another type or usage than the alias's key.
    AliasTargetKind,
    /// ImportKeyMaterial's ValidTo not in the future or too far away.
    ValidTo {
        /// The longest allowed (days).
        max_days: u32,
    },
    /// ImportKeyMaterial with a KeyMaterialId and ImportType NEW_KEY_MATERIAL.
    MaterialIdWithNewImport,
}

/// Why an alias name was refused (an InvalidAliasNameException).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AliasNameProblem {
    /// It does not begin with `alias/`.
    Prefix,
    /// It is longer than allowed.
    TooLong {
        /// The limit (characters).
        max: usize,
    },
    /// Nothing follows `alias/`.
    Empty,
    /// A character outside `[a-zA-Z0-9:/_-]`.
    Characters,
    /// The reserved `alias/aws/` namespace.
    Reserved,
}

/// Why a tag was refused (a TagException).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagProblem {
    /// A tag key of no length or over the limit.
    KeyLength {
        /// The tag key.
        key: String,
        /// The limit (characters).
        max: usize,
    },
    /// A tag value over the limit.
    ValueLength {
        /// The tag key.
        key: String,
        /// The limit (characters).
        max: usize,
    },
    /// A tag key in the reserved `aws:` namespace (in any case).
    ReservedPrefix {
        /// The tag key.
        key: String,
    },
    /// The same tag key twice in one request.
    Duplicate {
        /// The tag key.
        key: String,
    },
    /// More tags on one key than allowed.
    TooMany {
        /// The limit.
        max: usize,
    },
}

/// A limit that would be exceeded (a LimitExceededException).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Limit {
    /// On-demand rotations of one key.
    OnDemandRotations {
        /// The key's ARN.
        key: String,
        /// The limit.
        max: usize,
    },
    /// Grants on one key.
    GrantsPerKey {
        /// The key's ARN.
        key: String,
        /// The limit.
        max: usize,
    },
    /// Grants on one key for one grantee principal.
    GrantsPerGrantee {
        /// The key's ARN.
        key: String,
        /// The grantee's ARN.
        grantee: String,
        /// The limit.
        max: usize,
    },
}

/// An operation this service does not offer for a key (an UnsupportedOperationException).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsupported {
    /// Importing or deleting material of a key not created with Origin EXTERNAL.
    NotExternal {
        /// The key's ARN.
        key: String,
    },
    /// Rotating a key whose material was imported.
    ImportedRotation {
        /// The key's ARN.
        key: String,
    },
}

/// The cryptographic operation that refused a caller's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CryptoOperation {
    /// Sign.
    Sign,
    /// Verify.
    Verify,
    /// GetPublicKey.
    GetPublicKey,
    /// GenerateMac.
    GenerateMac,
    /// VerifyMac.
    VerifyMac,
    /// Encapsulate.
    Encapsulate,
    /// DeriveSharedSecret.
    DeriveSharedSecret,
    /// GenerateDataKeyPair(WithoutPlaintext).
    GenerateDataKeyPair,
}

/// Why a KMS operation was refused: what the refusal is about, typed. The
/// server words every message (its `api/messages.rs`); `Display` is terse
/// developer text. Messages never contain key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KmsError {
    /// The key, alias or resource does not exist (or belongs to another account).
    #[error("not found: {0:?}")]
    NotFound(Missing),
    /// The key is disabled.
    #[error("{key} is disabled")]
    Disabled {
        /// The key's ARN.
        key: String,
    },
    /// The key's state does not allow the operation.
    #[error("{key}: state refuses: {refusal:?}")]
    InvalidState {
        /// The key's ARN.
        key: String,
        /// Why.
        refusal: StateRefusal,
    },
    /// The ciphertext is malformed, tampered, or its context does not match.
    #[error("invalid ciphertext: {0:?}")]
    InvalidCiphertext(CiphertextProblem),
    /// The ciphertext was not encrypted under the key the caller named.
    #[error("the ciphertext is not under the named key")]
    IncorrectKey,
    /// Values of a request that do not go together.
    #[error("invalid request: {0:?}")]
    Validation(Invalid),
    /// Data keys are encrypted only under symmetric keys (an InvalidKeyUsage).
    #[error("{key} is not a symmetric encryption key")]
    DataKeyNeedsSymmetric {
        /// The key's ARN.
        key: String,
    },
    /// The alias already exists.
    #[error("alias {alias} exists")]
    AlreadyExists {
        /// The alias's ARN.
        alias: String,
    },
    /// An alias name is malformed or reserved.
    #[error("alias name {name:?}: {problem:?}")]
    InvalidAliasName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        problem: AliasNameProblem,
    },
    /// A paging marker is not one this service issued.
    #[error("invalid marker")]
    InvalidMarker,
    /// A per-key or per-account limit would be exceeded.
    #[error("limit exceeded: {0:?}")]
    LimitExceeded(Limit),
    /// A tag is malformed or reserved.
    #[error("invalid tag: {0:?}")]
    InvalidTag(TagProblem),
    /// A tag refused by the fencing rules, worded by `service/fenced.rs`.
    #[error("{0}")]
    Tag(String),
    /// The operation is not supported for this key.
    #[error("unsupported: {0:?}")]
    UnsupportedOperation(Unsupported),
    /// A request scoped (SigV4 credential scope) to a region this node does not serve.
    #[error("region {region} is not served here")]
    RegionNotServed {
        /// The region asked for.
        region: String,
    },
    /// A multi-Region key operation refused (see [`MultiRegionRefusal`]).
    #[error("multi-Region: {0:?}")]
    MultiRegion(crate::service::MultiRegionRefusal),
    /// The crypto layer refused the caller's input to `operation`: an
    /// Unsupported detail is an UnsupportedOperation, any other a Validation
    /// error (failures that are not the caller's are [`KmsError::Internal`]).
    #[error("{operation:?}: {detail}")]
    Refused {
        /// The operation.
        operation: CryptoOperation,
        /// What the crypto layer said.
        detail: CryptoError,
    },
    /// Verify found that the signature does not match.
    #[error("invalid signature")]
    InvalidSignature,
    /// VerifyMac found that the MAC does not match.
    #[error("invalid MAC")]
    InvalidMac,
    /// The import token is not the one issued for this key.
    #[error("invalid import token")]
    InvalidImportToken,
    /// The import token has expired.
    #[error("expired import token")]
    ExpiredImportToken,
    /// Imported material differs from what the key held before.
    #[error("imported material differs from the key's earlier material")]
    IncorrectKeyMaterial,
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
    /// The store could not be reached (AWS: DependencyTimeoutException; retry later).
    #[error("key store unavailable: {detail}")]
    StoreUnavailable {
        /// What the store said (no secrets).
        detail: String,
    },
    /// A key changed under this node's write too many times in a row
    /// (a DependencyTimeoutException; retry later).
    #[error("{key} changed {attempts} times during one write")]
    Contended {
        /// The key's ARN.
        key: String,
        /// How many attempts were made.
        attempts: usize,
    },
    /// This node's replica is older than its staleness bound (a
    /// DependencyTimeoutException), worded by `service/replica.rs`.
    #[error("{0}")]
    DependencyTimeout(String),
    /// An internal failure; details are logged, not returned.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for KmsError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(detail) => KmsError::StoreUnavailable { detail },
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
