//! Errors of the cryptographic layer. Messages never carry secret material.

/// What went wrong in a cryptographic operation or while parsing a crypto format.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// Authenticated decryption failed: wrong key, wrong AAD or tampered bytes.
    #[error("authentication failed")]
    AuthenticationFailed,
    /// A byte format could not be parsed.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// Which format was being parsed.
        what: &'static str,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A key or input had the wrong length.
    #[error("invalid length for {what}: expected {expected}, got {got}")]
    InvalidLength {
        /// Which value had the wrong length.
        what: &'static str,
        /// The required length.
        expected: usize,
        /// The length that was given.
        got: usize,
    },
    /// The system random number generator failed.
    #[error("random number generator failure")]
    Rng,
    /// The underlying library refused the operation.
    #[error("cryptographic operation failed: {0}")]
    Operation(&'static str),
    /// The algorithm, message type or operation does not apply to this key spec.
    #[error("incompatible: {0}")]
    Incompatible(&'static str),
    /// A valid request that the underlying library cannot perform.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
}
