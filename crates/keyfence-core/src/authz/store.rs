//! The storage port of authorization: key policies and grants, kept beside
//! the keys (a policy or grant goes when its key is destroyed), with one
//! version number that every change increments. Every change is also in the
//! store's change feed ([`crate::store::ChangedEntity::KeyAuthz`]), so nodes
//! sharing the store follow it with their replicas.

use super::Grant;
use crate::store::{KeyAuthz, StoreError};
use crate::KeyId;

/// A key's policy as stored: its text exactly as the caller gave it.
/// A key without one has the default key policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKeyPolicy {
    /// The key.
    pub key_id: KeyId,
    /// The key's account.
    pub account: String,
    /// The policy document.
    pub text: String,
}

/// Every stored policy and grant, read in one snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthzSnapshot {
    /// The version the snapshot is at (see [`AuthzStore::authz_version`]).
    pub version: i64,
    /// Policies of keys that have one other than the default.
    pub policies: Vec<StoredKeyPolicy>,
    /// Every grant.
    pub grants: Vec<Grant>,
}

/// Durable storage for key policies and grants. Every method returns after
/// its change is durable.
pub trait AuthzStore: Send + Sync {
    /// A number that every change to a policy or grant increments.
    fn authz_version(&self) -> Result<i64, StoreError>;
    /// Every policy and grant, with the version they are at.
    fn load_authz(&self) -> Result<AuthzSnapshot, StoreError>;
    /// One key's policy and grants, with the version they are at; `None` if
    /// the key does not exist.
    fn key_authz(&self, key_id: &KeyId) -> Result<Option<KeyAuthz>, StoreError>;
    /// Sets a key's policy; [`StoreError::Conflict`] if the key does not
    /// exist. Returns the key's policy and grants as of the change.
    fn put_key_policy(&self, policy: &StoredKeyPolicy) -> Result<KeyAuthz, StoreError>;
    /// Adds a grant; [`StoreError::Conflict`] if its key does not exist or
    /// its id is taken. Returns the key's policy and grants as of the change.
    fn insert_grant(&self, grant: &Grant) -> Result<KeyAuthz, StoreError>;
    /// Removes a grant; returns whether it existed, and the key's policy and
    /// grants as of the change (`None` if the key does not exist).
    fn delete_grant(
        &self,
        key_id: &KeyId,
        grant_id: &str,
    ) -> Result<(bool, Option<KeyAuthz>), StoreError>;
}
