//! The audit log, without I/O: records and their canonical encoding, the
//! RFC 9162 Merkle tree over them, signed tree heads, the verification of a
//! whole log against its signed heads, and the storage port.
//!
//! The tree is written here rather than taken from a crate: it is a few
//! dozen lines of hashing (SHA-256 from aws-lc-rs) over the RFC's
//! algorithms, checked against the RFC 6962 reference vectors, and the
//! crates that implement it bring their own SHA-256 and keep the tree in memory.

pub mod head;
pub mod merkle;
pub mod record;
pub mod store;
pub mod verify;

pub use head::{AuditSigner, SignedTreeHead, TreeHead};
pub use merkle::{Frontier, Hash, ProofError};
pub use record::{AuditRecord, Outcome, RecordError, Source};
pub use store::{AuditStore, LogKey, StoredEntry};
pub use verify::{LogVerifier, Problem, Report};

/// An audit failure (not a storage one: those are [`crate::StoreError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// The public key is not an ML-DSA-65 SubjectPublicKeyInfo.
    #[error("audit public key is not an ML-DSA-65 key")]
    BadPublicKey,
    /// A tree head's signature does not verify.
    #[error("signature of the tree head at size {size} does not verify")]
    BadSignature {
        /// The head's tree size.
        size: u64,
    },
    /// Generating, sealing, unsealing or using the signing key failed.
    #[error("audit signing key: {0} failed")]
    Crypto(&'static str),
    /// A record could not be encoded or decoded.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// A proof could not be built or did not verify.
    #[error(transparent)]
    Proof(#[from] ProofError),
}

/// Constant-time equality of two hashes.
pub(crate) fn ct_eq(a: &Hash, b: &Hash) -> bool {
    keyfence_crypto::ct::eq(a, b)
}
