//! The node's replica: loading it, applying the store's change feed to it,
//! bounding its age, and trimming the feed behind it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::cache::{Cache, CachedKey};
use super::Kms;
use crate::authz::StoredKeyPolicy;
use crate::clock::Timestamp;
use crate::model::KeyMetadata;
use crate::store::{AuthzFollower, ChangedEntity, FeedCursor, Snapshot, StoredKey, VersionRecord};
use crate::{KeyId, KmsError};

/// Keys read per page when the replica is loaded ([`crate::Store::load_keys`]).
pub(crate) const LOAD_PAGE: usize = 10_000;

/// How long the change feed keeps what it has delivered (the default of
/// [`Kms::with_feed_retention`]): a node that has not synced for longer
/// than this reloads its whole replica instead of reading the feed.
pub(crate) const DEFAULT_FEED_RETENTION: Duration = Duration::from_secs(15 * 60);

/// Where this node is in the store's change feed, and where it was.
pub(super) struct Replica {
    cursor: FeedCursor,
    /// `(time, cursor)` of past syncs, oldest first, at least
    /// `retention / MARKS` apart: the feed before a mark older than the
    /// retention can be trimmed.
    marks: VecDeque<(Timestamp, FeedCursor)>,
    retention: Duration,
    /// The node's key policies and grants, kept in step with the replica.
    follower: Option<Arc<dyn AuthzFollower>>,
    /// Counts what this node published into the replica outside a sync that
    /// a batch read earlier could undo (aliases, which have no revision; key
    /// removals; policies; keys opened by a fence): a sync that read the feed
    /// before one of them reads again. A key's own new revision is not
    /// counted: the cache never takes an older revision over it.
    published: u64,
}

/// Marks kept per retention period (bounds `Replica::marks`).
const MARKS: u32 = 8;

impl Default for Replica {
    fn default() -> Self {
        Self {
            cursor: FeedCursor::START,
            marks: VecDeque::new(),
            retention: DEFAULT_FEED_RETENTION,
            follower: None,
            published: 0,
        }
    }
}

impl Replica {
    /// Remembers that the replica was at `cursor` at `now`.
    fn mark(&mut self, now: Timestamp, cursor: FeedCursor) {
        let spacing = i64::try_from((self.retention / MARKS).as_millis()).unwrap_or(i64::MAX);
        if self
            .marks
            .back()
            .is_none_or(|(t, _)| now.0.saturating_sub(t.0) >= spacing)
        {
            self.marks.push_back((now, cursor));
        }
    }

    /// The newest cursor this replica had at least the retention ago, taken
    /// out of the marks (with every older one).
    fn expired_cursor(&mut self, now: Timestamp) -> Option<FeedCursor> {
        let retention = i64::try_from(self.retention.as_millis()).unwrap_or(i64::MAX);
        let mut found = None;
        while let Some(&(t, c)) = self.marks.front() {
            if now.0.saturating_sub(t.0) < retention {
                break;
            }
            found = Some(c);
            self.marks.pop_front();
        }
        found
    }
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
    ///
    /// The feed is read without holding the replica lock, so this node's own
    /// writes publish their results while a read waits on a slow or frozen
    /// database. If the replica moved meanwhile (another sync, or one of this
    /// node's writes published), the batch may hold states older than the
    /// replica's (aliases have no revision to compare), so it is read again
    /// under the lock.
    pub fn sync(&self) -> Result<SyncOutcome, KmsError> {
        let started = self.now();
        let (from, published) = {
            let replica = self.lock_replica();
            (replica.cursor, replica.published)
        };
        let read = self.store.changes_since(from)?;
        let mut replica = self.lock_replica();
        let batch = if replica.cursor == from && replica.published == published {
            read
        } else {
            self.store.changes_since(replica.cursor)?
        };
        let outcome = if batch.rewound {
            let head = self.store.load_head()?;
            self.adopt_domain_keys(&head.domain_keys)?;
            let cursor = head.cursor;
            let (cache, applied) = self.build_cache(head)?;
            // Policies and grants read after every key of the new cache was
            // committed: each key's own is there before the key is visible.
            if let Some(f) = &replica.follower {
                f.reload()?;
            }
            self.write_cache().replace_all(cache);
            replica.cursor = cursor;
            SyncOutcome {
                applied,
                reloaded: true,
            }
        } else {
            let applied = batch.changes.len();
            // Policies and grants first: a key created with its policy (one
            // transaction, so one batch) is never visible without it.
            let (authz, rest): (Vec<_>, Vec<_>) = batch
                .changes
                .into_iter()
                .partition(|c| matches!(c.entity, ChangedEntity::KeyAuthz { .. }));
            for change in authz {
                if let (ChangedEntity::KeyAuthz { id, current }, Some(f)) =
                    (change.entity, &replica.follower)
                {
                    f.apply(&id, current);
                }
            }
            for change in rest {
                self.apply(change.entity)?;
            }
            replica.cursor = batch.cursor;
            SyncOutcome {
                applied,
                reloaded: false,
            }
        };
        self.last_sync.fetch_max(started.0, Ordering::AcqRel);
        let cursor = replica.cursor;
        replica.mark(started, cursor);
        Ok(outcome)
    }

    /// Keeps `follower` (the node's key policies and grants) in step with
    /// the replica from now on: it reads every policy and grant now (after
    /// every key the replica holds was committed), then receives each
    /// change from the feed before the keys of the same batch, the policy of
    /// a key this node creates before the key is published, and the policy
    /// and grants of a key read from the store before the feed delivered it.
    pub fn follow_authz(&self, follower: Arc<dyn AuthzFollower>) -> Result<(), KmsError> {
        let mut replica = self.lock_replica();
        follower.reload()?;
        replica.follower = Some(follower);
        Ok(())
    }

    /// Stores a new key with its versions, and with its policy in the same
    /// transaction if it has one (handed to the authorization follower
    /// before the caller publishes the key).
    pub(super) fn insert_new_key(
        &self,
        meta: &KeyMetadata,
        records: &[VersionRecord],
        policy: Option<String>,
    ) -> Result<(), KmsError> {
        let Some(text) = policy else {
            return Ok(self.store.insert_key(meta, records)?);
        };
        let stored = StoredKeyPolicy {
            key_id: meta.id,
            account: meta.account.clone(),
            text,
        };
        let state = self.store.insert_key_with_policy(meta, records, &stored)?;
        if let Some(f) = &self.lock_to_publish().follower {
            f.apply(&meta.id, Some(state));
        }
        Ok(())
    }

    /// Reads a key's policy and grants from the store for the authorization
    /// follower (a key read from the store before the feed delivered it).
    pub(super) fn fetch_authz(&self, id: &KeyId) -> Result<(), KmsError> {
        let follower = self.lock_replica().follower.clone();
        if let Some(f) = follower {
            f.fetch(id)?;
        }
        Ok(())
    }

    /// Sets how long the change feed keeps what this node has read before
    /// [`Self::trim_feed`] removes it (default: 15 minutes).
    /// A node that falls further behind reloads its whole replica.
    pub fn with_feed_retention(self, retention: Duration) -> Self {
        self.lock_replica().retention = retention;
        self
    }

    /// Trims the store's change feed: on a shared store, up to where this
    /// replica was at least the retention ago (every node that syncs more
    /// often has read it; one that does not reloads); on a store of its
    /// own, up to where this replica is now, after a sync (nobody else reads
    /// it). Returns the number of feed entries removed. Run it now and then
    /// (the node's sweeper does); nodes sharing a store may all run it.
    pub fn trim_feed(&self) -> Result<u64, KmsError> {
        let to = if self.store.is_shared() {
            let now = self.now();
            match self.lock_replica().expired_cursor(now) {
                Some(cursor) => cursor,
                None => return Ok(0),
            }
        } else {
            self.sync()?;
            self.lock_replica().cursor
        };
        Ok(self.store.trim_feed(to)?)
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

    /// Replaces the replica with `snapshot` (at open): a head from
    /// [`crate::Store::load_head`], whose keys are then read page by page,
    /// or a whole [`crate::Store::load`].
    pub(super) fn reload(&self, snapshot: Snapshot) -> Result<(), KmsError> {
        let mut replica = self.lock_replica();
        let cursor = snapshot.cursor;
        let (cache, _) = self.build_cache(snapshot)?;
        self.write_cache().replace_all(cache);
        replica.cursor = cursor;
        let now = self.now();
        replica.mark(now, cursor);
        Ok(())
    }

    /// The cache for `head`: its aliases and keys, and, if it holds no
    /// keys, every key of the store read page by page (each page is
    /// unwrapped and dropped before the next is read, so the store's records
    /// are never all in memory at once). Returns it with the number of
    /// entities loaded.
    fn build_cache(&self, head: Snapshot) -> Result<(Cache, usize), KmsError> {
        let mut cache = Cache::default();
        let mut loaded = head.aliases.len();
        for alias in head.aliases {
            cache.put_alias(alias);
        }
        if !head.keys.is_empty() {
            loaded += head.keys.len();
            for stored in head.keys {
                cache.put(self.cached_key(stored)?);
            }
            return Ok((cache, loaded));
        }
        let mut after: Option<KeyId> = None;
        loop {
            let page = self.store.load_keys(after.as_ref(), LOAD_PAGE)?;
            let full = page.len() == LOAD_PAGE;
            loaded += page.len();
            for stored in page {
                after = Some(stored.metadata.id);
                cache.put(self.cached_key(stored)?);
            }
            if !full {
                return Ok((cache, loaded));
            }
        }
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
                region,
                name,
                current,
            } => match current {
                Some(alias) => self.write_cache().put_alias(alias),
                None => self
                    .write_cache()
                    .remove_alias(&account, &region, name.as_str()),
            },
            // Handed to the follower before the batch's keys (see `sync`).
            ChangedEntity::KeyAuthz { .. } => {}
            ChangedEntity::DomainKey { id, current } => self.apply_domain_key(id, current)?,
        }
        Ok(())
    }

    /// Publishes a key this node has just committed (read-your-writes),
    /// unless the cache already holds a newer revision; returns what the cache holds.
    /// Not counted as a publication for [`Self::sync`]: a batch read before
    /// it can only hold an older revision of the key, which the cache keeps
    /// out (and destroyed keys stay out).
    pub(super) fn publish(&self, key: CachedKey) -> Arc<CachedKey> {
        let _replica = self.lock_replica();
        self.write_cache().put(key)
    }

    /// Removes a key this node has just destroyed (or found gone).
    pub(super) fn publish_removal(&self, id: &KeyId) {
        let _replica = self.lock_to_publish();
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
        region: &str,
        name: &str,
        written: Option<crate::model::Alias>,
    ) {
        let _replica = self.lock_to_publish();
        let current = self
            .store
            .load_alias(account, region, name)
            .unwrap_or(written);
        let mut cache = self.write_cache();
        match current {
            Some(alias) => cache.put_alias(alias),
            None => cache.remove_alias(account, region, name),
        }
    }

    /// Takes the replica lock to publish a write of this node into the
    /// replica, and counts it (see [`Self::sync`]).
    pub(super) fn lock_to_publish(&self) -> std::sync::MutexGuard<'_, Replica> {
        let mut replica = self.lock_replica();
        replica.published = replica.published.wrapping_add(1);
        replica
    }
}
