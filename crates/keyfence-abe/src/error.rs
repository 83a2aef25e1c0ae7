//! Typed errors of the crate.

use thiserror::Error;

/// Everything that can go wrong in keyfence-abe.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    /// A policy string could not be parsed.
    #[error("policy syntax error at byte {position}: {message}")]
    PolicySyntax {
        /// Byte offset into the policy string where the problem was found.
        position: usize,
        /// What was expected or found there.
        message: String,
    },
    /// A policy is structurally unacceptable (too deep, too many leaves, ...).
    #[error("invalid policy: {0}")]
    InvalidPolicy(&'static str),
    /// A policy's formula tree is nested deeper than [`MAX_DEPTH`](crate::MAX_DEPTH)
    /// levels (parsed, or decoded from untrusted bytes).
    #[error("policy nested deeper than {max} levels")]
    PolicyTooDeep {
        /// The limit.
        max: usize,
    },
    /// An attribute name or value is not acceptable.
    #[error("invalid attribute: {0}")]
    InvalidAttribute(String),
    /// Bytes could not be decoded into the requested type.
    #[error("malformed encoding: {0}")]
    Malformed(&'static str),
    /// An encoded point is not on the curve, not in the prime-order subgroup, or not canonical.
    #[error("invalid group element in encoding: {0}")]
    InvalidPoint(&'static str),
    /// An encoded scalar is not the canonical representative of a field element.
    #[error("non-canonical scalar in encoding")]
    InvalidScalar,
    /// The encoding carries an unknown magic, type or version.
    #[error("unsupported encoding: {0}")]
    UnsupportedVersion(&'static str),
    /// The attribute key does not satisfy the ciphertext's policy.
    #[error("attribute key does not satisfy the ciphertext policy")]
    PolicyNotSatisfied,
    /// The ciphertext failed authentication (tampered, or wrong key material).
    #[error("decryption failed: ciphertext is not authentic")]
    DecryptionFailed,
    /// The message is too long for the ciphertext format (4 GiB minus overhead).
    #[error("message too long for the ciphertext format")]
    MessageTooLong,
    /// The system random number generator or a primitive failed unexpectedly.
    #[error("cryptographic primitive failure: {0}")]
    Crypto(&'static str),
}

/// Result alias for this crate.
pub type Result<T> = core::result::Result<T, Error>;
