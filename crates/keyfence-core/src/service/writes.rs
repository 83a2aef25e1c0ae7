//! State changes to one key as read-check-write, conditional on the
//! revision that was checked, so that nodes sharing a store never overwrite
//! each other's changes: concurrent changes end as if made one after the other.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::cache::CachedKey;
use super::material::Material;
use super::Kms;
use crate::model::KeyMetadata;
use crate::store::StoreError;
use crate::{KmsError, Missing};

/// Attempts before a change gives up under contention.
const MAX_ATTEMPTS: usize = 16;

/// What a checked state change writes.
pub(super) enum KeyChange {
    /// New metadata.
    Metadata(KeyMetadata),
    /// New metadata and one new version of material.
    AddVersion(KeyMetadata, u32, Material),
    /// New metadata and all of the key's versions (import, deletion of imported material).
    ReplaceVersions(KeyMetadata, BTreeMap<u32, Material>),
    /// Destroy the key.
    Delete,
}

/// The outcome of one conditional write.
enum Attempt {
    /// Committed; the key as published (`None` once deleted).
    Done(Option<Arc<CachedKey>>),
    /// Another change came first.
    Stale,
}

impl Kms {
    /// Runs a state change on `key`: `plan` checks the key and says what to
    /// write (`None`: nothing to do), and the write is conditional on the
    /// revision `plan` checked. If another change came first, the key is
    /// re-read from the store and `plan` runs again on what it finds. On a
    /// shared store, a refusal or a no-op is confirmed against the stored
    /// revision first, so it is never answered from a replica that is behind.
    ///
    /// Returns the key as it is after the change (`None` once deleted).
    pub(super) fn change_key(
        &self,
        mut key: Arc<CachedKey>,
        mut plan: impl FnMut(&CachedKey) -> Result<Option<KeyChange>, KmsError>,
    ) -> Result<Option<Arc<CachedKey>>, KmsError> {
        for _ in 0..MAX_ATTEMPTS {
            let change = match plan(&key) {
                Ok(Some(change)) => change,
                outcome => {
                    if self.store.is_shared()
                        && self.store.key_revision(&key.meta.id)? != Some(key.revision)
                    {
                        key = self.reread(&key)?;
                        continue;
                    }
                    return outcome.map(|_| Some(key));
                }
            };
            match self.write_change(&key, change)? {
                Attempt::Done(key) => return Ok(key),
                Attempt::Stale => key = self.reread(&key)?,
            }
        }
        Err(KmsError::Contended {
            key: key.meta.arn(),
            attempts: MAX_ATTEMPTS,
        })
    }

    /// Like [`Self::change_key`] for a change that keeps the key.
    pub(super) fn change_kept_key(
        &self,
        key: Arc<CachedKey>,
        plan: impl FnMut(&CachedKey) -> Result<Option<KeyChange>, KmsError>,
    ) -> Result<Arc<CachedKey>, KmsError> {
        let arn = key.meta.arn();
        self.change_key(key, plan)?
            .ok_or(KmsError::NotFound(Missing::Key { arn }))
    }

    /// Reads `key` again from the store and publishes what it finds.
    fn reread(&self, key: &CachedKey) -> Result<Arc<CachedKey>, KmsError> {
        match self.store.load_key(&key.meta.id)? {
            Some(stored) => {
                let fresh = self.cached_key(stored)?;
                Ok(self.publish(fresh))
            }
            None => {
                self.publish_removal(&key.meta.id);
                Err(KmsError::NotFound(Missing::Key {
                    arn: key.meta.arn(),
                }))
            }
        }
    }

    /// Writes `change` conditional on `key`'s revision and publishes the result.
    fn write_change(&self, key: &CachedKey, change: KeyChange) -> Result<Attempt, KmsError> {
        let id = key.meta.id;
        let expected = key.revision;
        let written = match change {
            KeyChange::Metadata(meta) => self
                .store
                .update_key(&meta, expected)
                .map(|revision| Some(key.with_metadata(meta, revision))),
            KeyChange::AddVersion(meta, version, material) => {
                let record = self.wrap_version(&meta, version, &material)?;
                self.store
                    .add_version(&meta, &record, expected)
                    .map(|revision| {
                        let mut versions = (*key.versions).clone();
                        versions.insert(version, material);
                        Some(CachedKey::new(meta, versions, revision))
                    })
            }
            KeyChange::ReplaceVersions(meta, versions) => {
                let records = versions
                    .iter()
                    .map(|(v, m)| self.wrap_version(&meta, *v, m))
                    .collect::<Result<Vec<_>, _>>()?;
                self.store
                    .replace_versions(&meta, &records, expected)
                    .map(|revision| Some(CachedKey::new(meta, versions, revision)))
            }
            KeyChange::Delete => self.store.delete_key(&id, expected).map(|()| None),
        };
        match written {
            Ok(Some(new)) => Ok(Attempt::Done(Some(self.publish(new)))),
            Ok(None) => {
                self.publish_removal(&id);
                Ok(Attempt::Done(None))
            }
            Err(StoreError::Stale { .. }) => Ok(Attempt::Stale),
            Err(e) => Err(e.into()),
        }
    }
}
