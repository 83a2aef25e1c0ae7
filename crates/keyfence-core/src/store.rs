//! The storage port: what the core asks of durable storage. Every method
//! returns only after its change is durable.

use crate::{clock::Timestamp, model::Alias, KeyId, KeyMetadata};

/// A storage failure.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// A uniqueness constraint was violated (e.g. an alias that already exists).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The stored data could not be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The backend failed.
    #[error("backend: {0}")]
    Backend(String),
}

/// A domain key wrapped by the root of trust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainKeyRecord {
    /// Domain key number (1, 2, … in order of creation).
    pub id: u32,
    /// The key wrapped by the root of trust.
    pub wrapped: Vec<u8>,
    /// Creation time.
    pub created: Timestamp,
}

/// One version of a key's backing material, wrapped by a domain key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRecord {
    /// The key it belongs to.
    pub key_id: KeyId,
    /// Version number, from 1.
    pub version: u32,
    /// Which domain key wraps it.
    pub domain_key_id: u32,
    /// The wrapped material.
    pub wrapped: Vec<u8>,
    /// Creation time.
    pub created: Timestamp,
}

/// A key and all its versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// Metadata.
    pub metadata: KeyMetadata,
    /// Backing key versions.
    pub versions: Vec<VersionRecord>,
}

/// Everything the store holds, read once at start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Domain keys.
    pub domain_keys: Vec<DomainKeyRecord>,
    /// Keys with their versions.
    pub keys: Vec<StoredKey>,
    /// Aliases.
    pub aliases: Vec<Alias>,
}

/// Durable storage for wrapped key material and metadata.
pub trait Store: Send + Sync {
    /// Reads everything.
    fn load(&self) -> Result<Snapshot, StoreError>;
    /// Adds a domain key.
    fn insert_domain_key(&self, key: &DomainKeyRecord) -> Result<(), StoreError>;
    /// Adds a key with its versions (none for a key awaiting imported material), atomically.
    fn insert_key(&self, key: &KeyMetadata, versions: &[VersionRecord]) -> Result<(), StoreError>;
    /// Replaces a key's metadata.
    fn update_key(&self, key: &KeyMetadata) -> Result<(), StoreError>;
    /// Adds a version and replaces the metadata, atomically.
    fn add_version(&self, key: &KeyMetadata, version: &VersionRecord) -> Result<(), StoreError>;
    /// Replaces all of a key's versions and its metadata, atomically (import
    /// and deletion of imported material).
    fn replace_versions(
        &self,
        key: &KeyMetadata,
        versions: &[VersionRecord],
    ) -> Result<(), StoreError>;
    /// Destroys a key: its metadata, every version of its material and its aliases.
    fn delete_key(&self, id: &KeyId) -> Result<(), StoreError>;
    /// Adds an alias; [`StoreError::Conflict`] if the name exists in the account.
    fn insert_alias(&self, alias: &Alias) -> Result<(), StoreError>;
    /// Points an existing alias at another key.
    fn update_alias(&self, alias: &Alias) -> Result<(), StoreError>;
    /// Removes an alias.
    fn delete_alias(&self, account: &str, name: &str) -> Result<(), StoreError>;
}
