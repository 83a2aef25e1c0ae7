//! Domain keys at run time: rotation (on a schedule or on demand), the keys
//! other nodes add or destroy (from the change feed, without a restart), and
//! the re-wrap that moves versions from older domain keys to the newest,
//! after which an older key is destroyed.
//!
//! The request path never waits here: the held set is immutable behind an
//! `Arc` and replaced whole; only wrapping new material reads it (briefly).
//! The re-wrap is conditional writes through the store in batches, leaving
//! key revisions and this node's cache alone (the material is unchanged).

use std::collections::HashMap;
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

use keyfence_crypto::SymmetricKey;

use super::import::WRAPPING_KEY_LABEL;
use super::material::DomainKeys;
use super::writes::KeyChange;
use super::Kms;
use crate::root::RootOfTrust;
use crate::store::{DomainKeyRecord, Rewrap, StoreError};
use crate::{KeyId, KmsError};

/// Versions re-wrapped per store transaction by default.
pub const REWRAP_BATCH: usize = 256;

/// How much one pass of [`Kms::rewrap_domain_keys`] may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RewrapBudget {
    /// Versions per store transaction.
    pub batch: usize,
    /// Store transactions per pass; then the pass returns unfinished.
    pub batches: usize,
}

impl RewrapBudget {
    /// Every version in one pass, [`REWRAP_BATCH`] per transaction.
    pub const UNLIMITED: Self = Self {
        batch: REWRAP_BATCH,
        batches: usize::MAX,
    };
}

/// What one pass of [`Kms::rewrap_domain_keys`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RewrapOutcome {
    /// Whether the pass visited every version under an older domain key
    /// (then it also moved import parameters and tried destruction);
    /// `false`: its budget ran out first, call again.
    pub finished: bool,
    /// Versions moved to the newest domain key.
    pub rewrapped: usize,
    /// Keys whose pending import parameters moved to it.
    pub import_parameters: usize,
    /// Older domain keys destroyed in this pass (nothing named them any more).
    pub destroyed: Vec<u32>,
    /// Older domain keys still held after the pass (still named, or not
    /// yet past the grace period).
    pub remaining: Vec<u32>,
}

/// Opens domain-key records with `root`, reusing the keys of `held`; the
/// newest record is the current key.
pub(super) fn open_records(
    root: Option<&dyn RootOfTrust>,
    records: &[DomainKeyRecord],
    held: Option<&DomainKeys>,
) -> Result<DomainKeys, KmsError> {
    let mut keys = HashMap::with_capacity(records.len());
    for record in records {
        let key = match held.and_then(|h| h.keys.get(&record.id)) {
            Some(k) => Arc::clone(k),
            None => {
                let root = root.ok_or_else(|| {
                    KmsError::Internal(format!(
                        "domain key {} was added by another node and this node keeps no root \
                         of trust to open it; restart this node to load it",
                        record.id
                    ))
                })?;
                Arc::new(root.unwrap_domain_key(record.id, &record.wrapped)?)
            }
        };
        keys.insert(record.id, key);
    }
    let newest = records
        .iter()
        .max_by_key(|d| d.id)
        .ok_or_else(|| KmsError::Internal("the store holds no domain key".into()))?;
    Ok(DomainKeys {
        current: newest.id,
        created: newest.created,
        keys,
    })
}

impl Kms {
    /// Keeps the root of trust, so that this node can rotate domain keys and
    /// open the ones other nodes add (without it, a node must restart to
    /// load one, and refuses to rotate).
    pub fn with_root_of_trust(mut self, root: Arc<dyn RootOfTrust>) -> Self {
        self.root = Some(root);
        self
    }

    /// The domain keys held now.
    pub(super) fn domain(&self) -> Arc<DomainKeys> {
        Arc::clone(&self.domain.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The number of the domain key that wraps new material.
    pub fn current_domain_key(&self) -> u32 {
        self.domain().current
    }

    /// The numbers of the domain keys this node holds, oldest first.
    pub fn held_domain_keys(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self.domain().keys.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Serializes changes to the held set (their root-of-trust calls run
    /// outside the lock readers take).
    fn lock_domain_update(&self) -> MutexGuard<'_, ()> {
        self.domain_update.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn install_domain_keys(&self, keys: DomainKeys) -> Arc<DomainKeys> {
        let keys = Arc::new(keys);
        *self.domain.write().unwrap_or_else(|p| p.into_inner()) = Arc::clone(&keys);
        keys
    }

    /// Makes the held set what `records` (every domain key in one snapshot
    /// of the store) says: new keys opened with the root of trust, destroyed
    /// ones dropped (zeroized with their last reference). Keys newer than
    /// the snapshot's newest are kept (the snapshot is older than what this
    /// node already holds), so the current key never goes back.
    pub(super) fn adopt_domain_keys(
        &self,
        records: &[DomainKeyRecord],
    ) -> Result<Arc<DomainKeys>, KmsError> {
        let _update = self.lock_domain_update();
        let held = self.domain();
        let mut opened = open_records(self.root.as_deref(), records, Some(&held))?;
        if held.current > opened.current {
            for (id, key) in held.keys.iter().filter(|(id, _)| **id > opened.current) {
                opened.keys.insert(*id, Arc::clone(key));
            }
            opened.current = held.current;
            opened.created = held.created;
        }
        Ok(self.install_domain_keys(opened))
    }

    /// Reads the store's domain keys and adopts them.
    pub fn refresh_domain_keys(&self) -> Result<(), KmsError> {
        let records = self.store.domain_keys()?;
        self.adopt_domain_keys(&records).map(drop)
    }

    /// The held set, read again from the store first if it lacks domain key
    /// `id` (a version another node wrapped under a key it just made).
    pub(super) fn domain_keys_with(&self, id: u32) -> Result<Arc<DomainKeys>, KmsError> {
        let held = self.domain();
        if held.keys.contains_key(&id) {
            return Ok(held);
        }
        let records = self.store.domain_keys()?;
        self.adopt_domain_keys(&records)
    }

    /// Applies a domain key's change from the feed: a new one is opened, a
    /// destroyed one dropped.
    pub(super) fn apply_domain_key(
        &self,
        id: u32,
        current: Option<DomainKeyRecord>,
    ) -> Result<(), KmsError> {
        let held = self.domain();
        match current {
            Some(_) if held.keys.contains_key(&id) => Ok(()),
            None if !held.keys.contains_key(&id) || held.current == id => Ok(()),
            _ => self.refresh_domain_keys(),
        }
    }

    /// Rotates the domain key now: a new one, wrapped by the root of trust,
    /// wraps every new version from here on (the older ones still unwrap
    /// until [`Self::rewrap_domain_keys`] has moved what they wrap). If
    /// another node rotated at the same moment, its key is taken instead.
    /// Returns the new current key's number.
    pub fn rotate_domain_key(&self) -> Result<u32, KmsError> {
        let root = self.root.clone().ok_or_else(|| {
            KmsError::Internal(
                "this node keeps no root of trust, so it cannot rotate the domain key".into(),
            )
        })?;
        let _update = self.lock_domain_update();
        let records = self.store.domain_keys()?;
        let held = open_records(Some(root.as_ref()), &records, Some(&self.domain()))?;
        let id = held.current + 1;
        let key =
            SymmetricKey::generate().map_err(KmsError::internal_crypto("domain key generation"))?;
        let record = DomainKeyRecord {
            id,
            wrapped: root.wrap_domain_key(id, &key)?,
            created: self.now(),
        };
        match self.store.insert_domain_key(&record) {
            Ok(()) => {
                let mut next = held;
                next.keys.insert(id, Arc::new(key));
                next.current = id;
                next.created = record.created;
                Ok(self.install_domain_keys(next).current)
            }
            // Another node took this number first: its key is the new one.
            Err(StoreError::Conflict(_)) => {
                let records = self.store.domain_keys()?;
                let opened = open_records(Some(root.as_ref()), &records, Some(&held))?;
                Ok(self.install_domain_keys(opened).current)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Rotates the domain key if the newest one (in the store: another node
    /// may have rotated) is at least `every` old. Returns the new key's number.
    pub fn rotate_domain_key_if_due(&self, every: Duration) -> Result<Option<u32>, KmsError> {
        self.refresh_domain_keys()?;
        let age = self.now().0.saturating_sub(self.domain().created.0);
        if u128::try_from(age).unwrap_or(0) < every.as_millis() {
            return Ok(None);
        }
        self.rotate_domain_key().map(Some)
    }

    /// Moves the versions still under an older domain key to the newest,
    /// within `budget` (each written only if the version is still as read).
    /// A pass that gets through every one also moves the pending import
    /// parameters of keys awaiting material, then destroys each older key
    /// nothing names any more, once the newest is at least `grace` old: by
    /// then every node that still answers has read the newest from the feed
    /// (a node whose replica is older than its staleness bound refuses
    /// requests), so none wraps new material under an older one. Call it
    /// again while the pass is not `finished` or `remaining` is not empty.
    pub fn rewrap_domain_keys(
        &self,
        budget: RewrapBudget,
        grace: Duration,
    ) -> Result<RewrapOutcome, KmsError> {
        self.refresh_domain_keys()?;
        let held = self.domain();
        let mut older: Vec<u32> = held
            .keys
            .keys()
            .copied()
            .filter(|id| *id != held.current)
            .collect();
        older.sort_unstable();
        let mut outcome = RewrapOutcome {
            finished: true,
            ..RewrapOutcome::default()
        };
        let mut batches = budget.batches.max(1);
        for from in &older {
            let (rewrapped, done) =
                self.rewrap_versions_under(&held, *from, budget.batch.max(1), &mut batches)?;
            outcome.rewrapped += rewrapped;
            if !done {
                outcome.finished = false;
                break;
            }
        }
        if outcome.finished {
            outcome.import_parameters = self.rewrap_import_parameters(&held)?;
        }
        let age = self.now().0.saturating_sub(held.created.0);
        if outcome.finished && u128::try_from(age).unwrap_or(0) >= grace.as_millis() {
            for from in older {
                if !self.import_parameters_under(from) && self.store.destroy_domain_key(from)? {
                    outcome.destroyed.push(from);
                }
            }
        }
        if !outcome.destroyed.is_empty() {
            self.refresh_domain_keys()?;
        }
        let current = self.current_domain_key();
        outcome.remaining = self
            .held_domain_keys()
            .into_iter()
            .filter(|id| *id != current)
            .collect();
        Ok(outcome)
    }

    /// Re-wraps the versions under domain key `from`, page by page, while
    /// `batches` lasts (one taken per page that holds versions). Returns how
    /// many were written and whether every page was visited.
    fn rewrap_versions_under(
        &self,
        held: &DomainKeys,
        from: u32,
        batch: usize,
        batches: &mut usize,
    ) -> Result<(usize, bool), KmsError> {
        let mut rewrapped = 0;
        let mut after: Option<(KeyId, u32)> = None;
        loop {
            let page =
                self.store
                    .versions_under(from, after.as_ref().map(|(k, v)| (k, *v)), batch)?;
            if page.is_empty() {
                return Ok((rewrapped, true));
            }
            if *batches == 0 {
                return Ok((rewrapped, false));
            }
            *batches -= 1;
            let full = page.len() == batch;
            after = page.last().map(|r| (r.key_id, r.version)).or(after);
            let mut rewraps = Vec::with_capacity(page.len());
            for record in page {
                let Some(fenced) = self.is_fenced(&record.key_id)? else {
                    continue; // destroyed meanwhile: its versions went with it
                };
                // A fenced key's version is wrapped under its fence: it only
                // names the domain key, which is relabelled.
                let wrapped = if fenced {
                    record.wrapped.clone()
                } else {
                    held.rewrap_version(&record)?
                };
                rewraps.push(Rewrap {
                    key_id: record.key_id,
                    version: record.version,
                    from_domain_key: from,
                    from_wrapped: record.wrapped,
                    to_domain_key: held.current,
                    wrapped,
                });
            }
            if !rewraps.is_empty() {
                rewrapped += self.store.rewrap_versions(&rewraps)?;
            }
            if !full {
                return Ok((rewrapped, true));
            }
        }
    }

    /// Whether key `id` is fenced; `None` if it no longer exists.
    fn is_fenced(&self, id: &KeyId) -> Result<Option<bool>, KmsError> {
        if let Some(key) = self.read_cache().key(id) {
            return Ok(Some(key.meta.fence.is_some()));
        }
        Ok(self.store.load_key(id)?.map(|k| k.metadata.fence.is_some()))
    }

    /// Moves pending import parameters under an older domain key to the
    /// current one (a metadata change, conditional like any other). Returns
    /// the number of keys changed.
    fn rewrap_import_parameters(&self, held: &DomainKeys) -> Result<usize, KmsError> {
        let under_older = |meta: &crate::KeyMetadata| {
            meta.import
                .as_ref()
                .and_then(|i| i.pending.as_ref())
                .is_some_and(|p| p.domain_key_id != held.current)
        };
        let keys: Vec<_> = self
            .read_cache()
            .all_keys()
            .into_iter()
            .filter(|k| under_older(&k.meta))
            .collect();
        let mut changed = 0;
        for key in keys {
            let mut wrote = false;
            let done = self.change_key(key, |k| {
                wrote = under_older(&k.meta);
                if !wrote {
                    return Ok(None);
                }
                let mut meta = k.meta.clone();
                let id = meta.id;
                if let Some(p) = meta.import.as_mut().and_then(|i| i.pending.as_mut()) {
                    p.wrapped_private_key = held.rewrap_secret(
                        WRAPPING_KEY_LABEL,
                        &id,
                        0,
                        p.domain_key_id,
                        &p.wrapped_private_key,
                    )?;
                    p.domain_key_id = held.current;
                }
                Ok(Some(KeyChange::Metadata(meta)))
            });
            match done {
                Ok(_) => changed += usize::from(wrote),
                Err(KmsError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(changed)
    }

    /// Whether a key of the replica still has import parameters under
    /// domain key `id`.
    fn import_parameters_under(&self, id: u32) -> bool {
        self.read_cache().all_keys().iter().any(|k| {
            k.meta
                .import
                .as_ref()
                .and_then(|i| i.pending.as_ref())
                .is_some_and(|p| p.domain_key_id == id)
        })
    }
}
