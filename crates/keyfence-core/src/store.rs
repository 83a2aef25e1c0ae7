//! The storage port: what the core asks of durable storage. Every method
//! returns only after its change is durable.
//!
//! The store may be shared by several nodes (several processes on one SQLite
//! file, or many nodes on PostgreSQL), so a node's view can be behind:
//!
//! - every change to a key is **conditional** on the key's [`Revision`] the
//!   node checked it against, and fails with [`StoreError::Stale`] if another
//!   change came first (optimistic concurrency);
//! - an append-only **change feed** ([`Store::changes_since`]) names every
//!   changed entity, so a node brings its in-memory replica up to date;
//!   entries every node has long read are trimmed ([`Store::trim_feed`]), and a
//!   node that was behind the trimmed part reloads everything.
//!
//! A node loads its replica page by page ([`Store::load_head`], then
//! [`Store::load_keys`]), so that it never holds two copies of a large store.

use crate::authz::{Grant, StoredKeyPolicy};
use crate::clock::Timestamp;
use crate::model::Alias;
use crate::{AliasName, KeyId, KeyMetadata};

/// A key's revision: 1 when it is created, incremented by every change to its
/// metadata or versions.
pub type Revision = i64;

/// A storage failure.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// A uniqueness constraint was violated (e.g. an alias that already exists).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A conditional write found the key at another revision (or gone):
    /// another change came first. Re-read the key and re-check.
    #[error("key {key_id} is at revision {found:?}, not {expected}")]
    Stale {
        /// The key.
        key_id: KeyId,
        /// The revision the write was checked against.
        expected: Revision,
        /// The stored revision, `None` if the key no longer exists.
        found: Option<Revision>,
    },
    /// The store cannot be reached or did not answer in time (connection
    /// lost, timeout, server shutting down, database locked too long). A
    /// write that fails this way may or may not have been committed.
    #[error("unavailable: {0}")]
    Unavailable(String),
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

/// One version moved from an older domain key to a newer one (a re-wrap
/// after a domain-key rotation). It is written only if the stored version
/// still names `from_domain_key` with exactly `from_wrapped`: a version
/// replaced meanwhile is left alone (the next pass finds it again if it
/// still names the old key). The key's revision does not change: the
/// material is the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrap {
    /// The key.
    pub key_id: KeyId,
    /// The version.
    pub version: u32,
    /// The domain key it was read under.
    pub from_domain_key: u32,
    /// Its wrapped material as read.
    pub from_wrapped: Vec<u8>,
    /// The domain key it names from now on.
    pub to_domain_key: u32,
    /// Its material wrapped under `to_domain_key` (the same bytes as
    /// `from_wrapped` for a fenced key's version, which a domain key does not wrap).
    pub wrapped: Vec<u8>,
}

/// A key, all its versions and its revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// Metadata.
    pub metadata: KeyMetadata,
    /// Backing key versions.
    pub versions: Vec<VersionRecord>,
    /// The key's revision.
    pub revision: Revision,
}

/// A position in a store's change feed. Its meaning belongs to the store
/// (a sequence number for SQLite, a transaction id for PostgreSQL); the core
/// only hands back what the store gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FeedCursor(u64);

impl FeedCursor {
    /// Before every change: reading from here returns the whole history still in the feed.
    pub const START: Self = Self(0);

    /// The cursor as a number, to persist it.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// A cursor persisted with [`as_u64`](Self::as_u64).
    pub fn from_u64(v: u64) -> Self {
        Self(v)
    }
}

/// Everything the store holds, read in one consistent snapshot, with the
/// feed cursor from which changes after that snapshot are read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Domain keys.
    pub domain_keys: Vec<DomainKeyRecord>,
    /// Keys with their versions and revisions.
    pub keys: Vec<StoredKey>,
    /// Aliases.
    pub aliases: Vec<Alias>,
    /// Read changes from here on with [`Store::changes_since`]. Changes
    /// already in the snapshot may be delivered again; applying them is idempotent.
    pub cursor: FeedCursor,
}

/// One changed entity and its state as of the batch's snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangedEntity {
    /// A domain key: added by a rotation, removed once destroyed (no
    /// version is wrapped under it any more, see [`Store::destroy_domain_key`]).
    DomainKey {
        /// Its number.
        id: u32,
        /// Its record; `None` once destroyed.
        current: Option<DomainKeyRecord>,
    },
    /// A key's metadata or versions.
    Key {
        /// The key.
        id: KeyId,
        /// Its state, `None` once deleted.
        current: Option<Box<StoredKey>>,
    },
    /// An alias.
    Alias {
        /// Owning account.
        account: String,
        /// The region it is named in.
        region: String,
        /// The alias name.
        name: AliasName,
        /// The alias, `None` once deleted.
        current: Option<Alias>,
    },
    /// A key's policy or grants.
    KeyAuthz {
        /// The key.
        id: KeyId,
        /// Its policy and grants, `None` once the key is deleted.
        current: Option<KeyAuthz>,
    },
}

/// A key's policy and grants, as of one authorization version of the store
/// (the number every change to a policy or grant increments,
/// [`crate::authz::AuthzStore::authz_version`]): a state with a higher
/// version is newer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAuthz {
    /// The store's authorization version this state was read at.
    pub version: i64,
    /// The key's policy; `None`: the default key policy.
    pub policy: Option<StoredKeyPolicy>,
    /// The key's grants.
    pub grants: Vec<Grant>,
}

/// Follows key policies and grants beside the replica (the node's
/// authorization state): the replica hands it a key's policy and grants
/// before it makes the key visible, so a key is never judged by the default
/// policy in place of its own.
pub trait AuthzFollower: Send + Sync {
    /// A key's policy and grants changed (`None`: the key is gone). A state
    /// older than the one held (by [`KeyAuthz::version`]) is ignored.
    fn apply(&self, key: &KeyId, current: Option<KeyAuthz>);
    /// Reads every policy and grant again.
    fn reload(&self) -> Result<(), StoreError>;
    /// Reads one key's policy and grants (a key read from the store before
    /// the change feed delivered it).
    fn fetch(&self, key: &KeyId) -> Result<(), StoreError>;
}

/// A changed entity with the feed position of its latest change in the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Feed sequence number of the entity's latest change in this batch;
    /// changes are returned in increasing `seq`.
    pub seq: i64,
    /// The entity and its current state.
    pub entity: ChangedEntity,
}

/// The result of one read of the change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeBatch {
    /// The entities changed since the cursor, each once, in order of their latest change.
    pub changes: Vec<Change>,
    /// Where the next read starts.
    pub cursor: FeedCursor,
    /// The store cannot give every change since the cursor it was given: it
    /// is behind it (a failover to a standby that had not received
    /// everything, or a database file replaced), or it trimmed the feed past
    /// it ([`Store::trim_feed`]). The reader cannot know what it missed, and
    /// must reload everything.
    pub rewound: bool,
}

/// Durable storage for wrapped key material and metadata.
pub trait Store: Send + Sync {
    /// Whether other nodes may write to this store too (then a node's
    /// replica can fall behind, and is bounded in staleness).
    fn is_shared(&self) -> bool;
    /// Reads everything, in one snapshot.
    fn load(&self) -> Result<Snapshot, StoreError>;
    /// Reads what a node loads first, in one snapshot: the domain keys, the
    /// aliases and the feed cursor, without the keys (`keys` is empty): they
    /// follow page by page with [`Store::load_keys`]. Keys changed while the
    /// pages are read are delivered again by the feed from the cursor.
    ///
    /// The default reads everything with [`Store::load`] and drops the keys.
    fn load_head(&self) -> Result<Snapshot, StoreError> {
        let mut head = self.load()?;
        head.keys.clear();
        Ok(head)
    }
    /// Up to `limit` keys (with versions and revisions) whose ids come after
    /// `after` (from the first if `None`), in the order of their ids' text.
    ///
    /// The default reads everything with [`Store::load`]; stores override it
    /// with a query.
    fn load_keys(&self, after: Option<&KeyId>, limit: usize) -> Result<Vec<StoredKey>, StoreError> {
        let after = after.map(ToString::to_string);
        let mut keys: Vec<(String, StoredKey)> = self
            .load()?
            .keys
            .into_iter()
            .map(|k| (k.metadata.id.to_string(), k))
            .filter(|(id, _)| after.as_ref().is_none_or(|a| id > a))
            .collect();
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(keys.into_iter().take(limit).map(|(_, k)| k).collect())
    }
    /// Reads one key with its versions and revision; `None` if it does not exist.
    fn load_key(&self, id: &KeyId) -> Result<Option<StoredKey>, StoreError>;
    /// One alias of `account` in `region`; `None` if it does not exist.
    fn load_alias(
        &self,
        account: &str,
        region: &str,
        name: &str,
    ) -> Result<Option<Alias>, StoreError>;
    /// A key's current revision; `None` if it does not exist.
    fn key_revision(&self, id: &KeyId) -> Result<Option<Revision>, StoreError>;
    /// The entities changed since `cursor`, with their current state, and
    /// the cursor to read from next. Never skips a committed change.
    fn changes_since(&self, cursor: FeedCursor) -> Result<ChangeBatch, StoreError>;
    /// Adds a domain key; [`StoreError::Conflict`] if its number exists.
    fn insert_domain_key(&self, key: &DomainKeyRecord) -> Result<(), StoreError>;
    /// The domain keys, oldest first.
    ///
    /// The default reads them with [`Store::load_head`]; stores override it
    /// with a query.
    fn domain_keys(&self) -> Result<Vec<DomainKeyRecord>, StoreError> {
        Ok(self.load_head()?.domain_keys)
    }
    /// Up to `limit` versions that name domain key `domain_key_id`, after
    /// `after` (key id text, version) in that order (from the first if `None`).
    ///
    /// The default reads everything with [`Store::load`].
    fn versions_under(
        &self,
        domain_key_id: u32,
        after: Option<(&KeyId, u32)>,
        limit: usize,
    ) -> Result<Vec<VersionRecord>, StoreError> {
        let after = after.map(|(k, v)| (k.to_string(), v));
        let mut found: Vec<((String, u32), VersionRecord)> = self
            .load()?
            .keys
            .into_iter()
            .flat_map(|k| k.versions)
            .filter(|v| v.domain_key_id == domain_key_id)
            .map(|v| ((v.key_id.to_string(), v.version), v))
            .filter(|(at, _)| after.as_ref().is_none_or(|a| at > a))
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(found.into_iter().take(limit).map(|(_, v)| v).collect())
    }
    /// Writes each [`Rewrap`] whose version is still as it was read, in one
    /// transaction, without changing any key's revision; returns how many
    /// were written.
    ///
    /// The default refuses: a store that cannot do it conditionally must
    /// not pretend to.
    fn rewrap_versions(&self, rewraps: &[Rewrap]) -> Result<usize, StoreError> {
        let _ = rewraps;
        Err(StoreError::Backend(
            "this store cannot re-wrap versions".into(),
        ))
    }
    /// Destroys domain key `id` if no version names it, checked in the same
    /// transaction; the change feed reports it gone. Returns whether it is
    /// gone (`false`: a version still names it, nothing was changed).
    ///
    /// The default refuses (domain keys are then never destroyed).
    fn destroy_domain_key(&self, id: u32) -> Result<bool, StoreError> {
        let _ = id;
        Err(StoreError::Backend(
            "this store cannot destroy domain keys".into(),
        ))
    }
    /// Adds a key with its versions (none for a key awaiting imported
    /// material), atomically, at revision 1.
    fn insert_key(&self, key: &KeyMetadata, versions: &[VersionRecord]) -> Result<(), StoreError>;
    /// Adds a key with its versions and its policy in one transaction (a
    /// crash cannot leave the key with the default policy); returns the
    /// key's policy and grants as of that transaction.
    ///
    /// The default refuses: a store that keeps no key policies.
    fn insert_key_with_policy(
        &self,
        key: &KeyMetadata,
        versions: &[VersionRecord],
        policy: &StoredKeyPolicy,
    ) -> Result<KeyAuthz, StoreError> {
        let _ = (key, versions, policy);
        Err(StoreError::Backend(
            "this store keeps no key policies".into(),
        ))
    }
    /// Replaces a key's metadata if it is still at revision `expected`;
    /// returns the new revision, or [`StoreError::Stale`].
    fn update_key(&self, key: &KeyMetadata, expected: Revision) -> Result<Revision, StoreError>;
    /// Adds a version and replaces the metadata, atomically, if the key is
    /// still at revision `expected`; returns the new revision.
    fn add_version(
        &self,
        key: &KeyMetadata,
        version: &VersionRecord,
        expected: Revision,
    ) -> Result<Revision, StoreError>;
    /// Replaces all of a key's versions and its metadata, atomically, if the
    /// key is still at revision `expected` (import and deletion of imported
    /// material); returns the new revision.
    fn replace_versions(
        &self,
        key: &KeyMetadata,
        versions: &[VersionRecord],
        expected: Revision,
    ) -> Result<Revision, StoreError>;
    /// Destroys a key at revision `expected`: its metadata, every version of
    /// its material and its aliases.
    fn delete_key(&self, id: &KeyId, expected: Revision) -> Result<(), StoreError>;
    /// Adds an alias; [`StoreError::Conflict`] if the name exists in the
    /// account or the target key does not exist.
    fn insert_alias(&self, alias: &Alias) -> Result<(), StoreError>;
    /// Adds an alias if its target key is still at revision `target_revision`
    /// (checked in the same transaction, so a deletion scheduled at another
    /// node between the caller's check and this insert is not missed):
    /// [`StoreError::Stale`] if the key is at another revision or gone,
    /// [`StoreError::Conflict`] if the name exists in the account.
    ///
    /// The default reads the revision, then inserts (not atomic: for stores
    /// with a single writer).
    fn insert_alias_at(&self, alias: &Alias, target_revision: Revision) -> Result<(), StoreError> {
        let found = self.key_revision(&alias.target)?;
        if found != Some(target_revision) {
            return Err(StoreError::Stale {
                key_id: alias.target,
                expected: target_revision,
                found,
            });
        }
        self.insert_alias(alias)
    }
    /// Points an existing alias at `alias.target` and sets its update time;
    /// returns the alias as stored (with its creation time), `None` if there
    /// is no such alias.
    fn update_alias(&self, alias: &Alias) -> Result<Option<Alias>, StoreError>;
    /// Removes an alias of `account` in `region`; returns whether it existed.
    fn delete_alias(&self, account: &str, region: &str, name: &str) -> Result<bool, StoreError>;
    /// Adds domain keys, keys (with their versions, at their revisions) and
    /// aliases in one transaction: all of them or, on any failure, none
    /// (`keyfence store migrate`, bulk loads). With `into_empty`, the store
    /// must hold no domain key, key or alias, checked in the same
    /// transaction, else [`StoreError::Conflict`] and nothing is written.
    ///
    /// The default refuses: a store that cannot do it atomically must not
    /// pretend to.
    fn insert_all(&self, records: &Snapshot, into_empty: bool) -> Result<(), StoreError> {
        let _ = (records, into_empty);
        Err(StoreError::Backend(
            "this store cannot insert records in bulk".into(),
        ))
    }
    /// Removes the feed entries before `cursor` (a cursor this store gave),
    /// which every reader is expected to have read; a later
    /// [`Store::changes_since`] from a cursor before it answers
    /// [`ChangeBatch::rewound`]. Returns how many entries were removed.
    /// The default (a store without a persistent feed) removes nothing.
    fn trim_feed(&self, cursor: FeedCursor) -> Result<u64, StoreError> {
        let _ = cursor;
        Ok(0)
    }
}
