//! The node's replica: loading it, applying the store's change feed to it,
//! and bounding its age.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::cache::{Cache, CachedKey};
use super::Kms;
use crate::store::{ChangedEntity, FeedCursor, Snapshot, StoredKey};
use crate::{KeyId, KmsError};

/// Where this node is in the store's change feed.
#[derive(Default)]
pub(super) struct Replica {
    cursor: FeedCursor,
}

/// What one [`Kms::sync`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncOutcome {
    /// Entities whose new state was applied (keys, aliases).
    pub applied: usize,
    /// The store had gone back in time (failover to a standby that was
    /// behind): the whole replica was reloaded.
    pub reloaded: bool,
}

impl Kms {
    /// Brings the replica up to date with the store: reads the change feed
    /// from where the last sync stopped and applies each changed entity's
    /// current state (or reloads everything if the store went back in time).
    /// A successful sync confirms the replica as of its start, which resets
    /// the staleness clock. Fails with [`KmsError::DependencyTimeout`] when
    /// the store is unreachable.
    pub fn sync(&self) -> Result<SyncOutcome, KmsError> {
        let mut replica = self.lock_replica();
        let started = self.now();
        let batch = self.store.changes_since(replica.cursor)?;
        let outcome = if batch.rewound {
            let snapshot = self.store.load()?;
            let applied = snapshot.keys.len() + snapshot.aliases.len();
            let cursor = snapshot.cursor;
            let cache = self.build_cache(snapshot)?;
            self.write_cache().replace_all(cache);
            replica.cursor = cursor;
            SyncOutcome {
                applied,
                reloaded: true,
            }
        } else {
            let applied = batch.changes.len();
            for change in batch.changes {
                self.apply(change.entity)?;
            }
            replica.cursor = batch.cursor;
            SyncOutcome {
                applied,
                reloaded: false,
            }
        };
        self.last_sync.fetch_max(started.0, Ordering::AcqRel);
        Ok(outcome)
    }

    /// How old the replica is: milliseconds since the start of the last
    /// confirmed read of the store (by the injected clock).
    pub fn replica_age_ms(&self) -> i64 {
        (self.now().0 - self.last_sync.load(Ordering::Acquire)).max(0)
    }

    /// Refuses to answer from a replica older than the staleness bound.
    pub(super) fn require_fresh(&self) -> Result<(), KmsError> {
        let Some(bound) = self.max_staleness else {
            return Ok(());
        };
        let age = self.replica_age_ms();
        if u128::try_from(age).unwrap_or(0) > bound.as_millis() {
            return Err(KmsError::DependencyTimeout(format!(
                "This node could not reach its key store for {age} ms, beyond its staleness bound of {} ms; retry later",
                bound.as_millis()
            )));
        }
        Ok(())
    }

    /// Replaces the replica with `snapshot` (at open).
    pub(super) fn reload(&self, snapshot: Snapshot) -> Result<(), KmsError> {
        let mut replica = self.lock_replica();
        let cursor = snapshot.cursor;
        let cache = self.build_cache(snapshot)?;
        self.write_cache().replace_all(cache);
        replica.cursor = cursor;
        Ok(())
    }

    fn build_cache(&self, snapshot: Snapshot) -> Result<Cache, KmsError> {
        let mut cache = Cache::default();
        for stored in snapshot.keys {
            cache.put(self.cached_key(stored)?);
        }
        for alias in snapshot.aliases {
            cache.put_alias(alias);
        }
        Ok(cache)
    }

    /// A stored key as the cache holds it: versions this node already holds
    /// unwrapped are reused (a version's material never changes), the others
    /// are unwrapped.
    pub(super) fn cached_key(&self, stored: StoredKey) -> Result<CachedKey, KmsError> {
        if let Some(fence) = &stored.metadata.fence {
            // Under the fence's policy key: opened if this node satisfies the
            // fence, else known by metadata only (kept sealed until it can).
            let held = self.read_cache().key(&stored.metadata.id);
            let versions = self
                .fencing
                .unwrap_all(&stored.metadata, fence, &stored.versions, held.as_deref())?
                .unwrap_or_default();
            return Ok(CachedKey::new(stored.metadata, versions, stored.revision));
        }
        let held = self.read_cache().key(&stored.metadata.id);
        let mut versions = BTreeMap::new();
        for record in &stored.versions {
            let known = held
                .as_ref()
                .and_then(|k| k.versions.get(&record.version).cloned());
            let material = match known {
                Some(m) => m,
                None => self.unwrap_version(record, stored.metadata.spec)?,
            };
            versions.insert(record.version, material);
        }
        Ok(CachedKey::new(stored.metadata, versions, stored.revision))
    }

    /// Applies one entity's state from the feed.
    fn apply(&self, entity: ChangedEntity) -> Result<(), KmsError> {
        match entity {
            ChangedEntity::Key { id, current: None } => self.write_cache().remove_key(&id),
            ChangedEntity::Key {
                current: Some(stored),
                ..
            } => {
                let newer = self
                    .read_cache()
                    .key(&stored.metadata.id)
                    .is_none_or(|k| k.revision < stored.revision);
                if newer {
                    let key = self.cached_key(*stored)?;
                    self.write_cache().put(key);
                }
            }
            ChangedEntity::Alias {
                account,
                name,
                current,
            } => match current {
                Some(alias) => self.write_cache().put_alias(alias),
                None => self.write_cache().remove_alias(&account, name.as_str()),
            },
            ChangedEntity::DomainKey { id, .. } => {
                if !self.domain.keys.contains_key(&id) {
                    return Err(KmsError::Internal(format!(
                        "domain key {id} was added by another node; restart this node to load it"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Publishes a key this node has just committed (read-your-writes),
    /// unless the cache already holds a newer revision; returns what the cache holds.
    pub(super) fn publish(&self, key: CachedKey) -> Arc<CachedKey> {
        let _replica = self.lock_replica();
        self.write_cache().put(key)
    }

    /// Removes a key this node has just destroyed (or found gone).
    pub(super) fn publish_removal(&self, id: &KeyId) {
        let _replica = self.lock_replica();
        self.write_cache().remove_key(id);
    }

    /// Publishes the state of an alias this node has just changed. Aliases
    /// have no revision, so the alias is read back from the store under the
    /// replica lock: every publication of an alias reads the store later than
    /// the one before, and the replica never goes back to an older target.
    /// If the store cannot be read, `written` (what this node committed) is
    /// published; the next sync corrects it.
    pub(super) fn publish_alias_state(
        &self,
        account: &str,
        name: &str,
        written: Option<crate::model::Alias>,
    ) {
        let _replica = self.lock_replica();
        let current = self.store.load_alias(account, name).unwrap_or(written);
        let mut cache = self.write_cache();
        match current {
            Some(alias) => cache.put_alias(alias),
            None => cache.remove_alias(account, name),
        }
    }
}
