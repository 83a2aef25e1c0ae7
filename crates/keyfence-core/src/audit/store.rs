//! The audit storage port: an append-only table of encoded records per log
//! (one log per node), the signed heads, and the log's sealed signing key.

use super::head::SignedTreeHead;
use super::merkle::{Frontier, Hash};
use crate::store::StoreError;

/// One stored record: its position, its canonical bytes and their leaf hash
/// (kept so a writer restarts without rehashing; a verifier recomputes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// Position in the log, from 0.
    pub seq: u64,
    /// [`super::AuditRecord::encode`]d bytes.
    pub data: Vec<u8>,
    /// `leaf_hash(data)` as the writer computed it.
    pub leaf_hash: Hash,
}

/// A log's signing key: public half and the private half sealed under the
/// root of trust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogKey {
    /// DER SubjectPublicKeyInfo (ML-DSA-65).
    pub public_key: Vec<u8>,
    /// The PKCS#8 private key sealed by the root of trust.
    pub sealed: Vec<u8>,
}

/// Durable storage of audit logs. Every write is durable when it returns.
pub trait AuditStore: Send + Sync {
    /// Appends `entries` (consecutive, starting at the log's current size)
    /// and replaces the log's stored tree edge with `frontier` (the tree
    /// with them appended) in one transaction; a `Conflict` if a position is
    /// already taken.
    fn append(
        &self,
        log: &str,
        entries: &[StoredEntry],
        frontier: &Frontier,
    ) -> Result<(), StoreError>;
    /// The tree edge stored by the last [`Self::append`] and the number of
    /// records the log holds, so a writer restarts in O(log n). The edge is
    /// the writer's cache, not evidence: a verifier recomputes the tree from
    /// the records.
    fn frontier(&self, log: &str) -> Result<(Option<Frontier>, u64), StoreError>;
    /// Up to `limit` entries from position `from`, in order of position.
    fn read(&self, log: &str, from: u64, limit: usize) -> Result<Vec<StoredEntry>, StoreError>;
    /// Records a signed head.
    fn add_head(&self, log: &str, head: &SignedTreeHead) -> Result<(), StoreError>;
    /// Every signed head of the log, by increasing size.
    fn heads(&self, log: &str) -> Result<Vec<SignedTreeHead>, StoreError>;
    /// The log's signing key, if it has one.
    fn signing_key(&self, log: &str) -> Result<Option<LogKey>, StoreError>;
    /// Stores the log's signing key; a `Conflict` if it already has one.
    fn put_signing_key(&self, log: &str, key: &LogKey) -> Result<(), StoreError>;
    /// The names of the logs in the store.
    fn logs(&self) -> Result<Vec<String>, StoreError>;
}
