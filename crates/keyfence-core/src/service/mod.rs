//! The KMS service: every operation, over an in-memory cache of keys that is
//! written through to the [`Store`] before any change is acknowledged.

mod adopt;
mod aliases;
mod asymmetric;
mod cache;
mod crypto_ops;
mod fenced;
mod import;
mod lifecycle;
mod material;
mod rotation;
mod tags;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use keyfence_crypto::SymmetricKey;

pub use asymmetric::{DataKeyPairOutput, SignOutput};
pub use crypto_ops::{DataKeyOutput, DataKeySize, DecryptOutput, EncryptOutput, ReEncryptOutput};
pub use fenced::{FenceMaker, FenceView, FENCE_TAG};
pub use import::ImportParameters;
pub use lifecycle::{CreateKeyInput, DeletionScheduled};
pub use rotation::RotationStatus;

use crate::clock::{Clock, Timestamp};
use crate::ids::{KeyId, KeyRef};
use crate::model::{Alias, KeyMetadata};
use crate::root::RootOfTrust;
use crate::store::{DomainKeyRecord, Store};
use crate::KmsError;

use cache::{Cache, CachedKey};
use material::DomainKeys;

/// Refuses an alias name or alias ARN where only a key id or key ARN may be given.
fn reject_alias(key_ref: &str) -> Result<(), KmsError> {
    if matches!(
        KeyRef::parse(key_ref)?,
        KeyRef::Alias(_) | KeyRef::AliasArn { .. }
    ) {
        return Err(KmsError::NotFound(format!(
            "Invalid keyId '{key_ref}': this operation takes a key ID or key ARN, not an alias"
        )));
    }
    Ok(())
}

/// A KMS for one node: keys, aliases and their material, cached in memory and
/// persisted through a [`Store`].
pub struct Kms {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    region: String,
    domain: DomainKeys,
    cache: RwLock<Cache>,
    fencing: fenced::Fencing,
    /// Serializes state changes so each is checked against the state it replaces.
    writer: Mutex<()>,
}

impl Kms {
    /// Opens the service over `store`: creates the first domain key on an
    /// empty store, then loads and unwraps every key into memory.
    pub fn open(
        store: Arc<dyn Store>,
        root: &dyn RootOfTrust,
        clock: Arc<dyn Clock>,
        region: &str,
    ) -> Result<Self, KmsError> {
        Self::open_fenced(store, root, clock, region, FenceView::default())
    }

    /// Like [`Self::open`], for a node of a cluster: keys fenced to policies
    /// `fences` opens are unwrapped, the others are known by metadata only.
    pub fn open_fenced(
        store: Arc<dyn Store>,
        root: &dyn RootOfTrust,
        clock: Arc<dyn Clock>,
        region: &str,
        fences: FenceView,
    ) -> Result<Self, KmsError> {
        let fencing = fenced::Fencing::default();
        fencing.install(fences)?;
        let mut snapshot = store.load()?;
        if snapshot.domain_keys.is_empty() {
            let key = SymmetricKey::generate()
                .map_err(KmsError::internal_crypto("domain key generation"))?;
            let record = DomainKeyRecord {
                id: 1,
                wrapped: root.wrap_domain_key(1, &key)?,
                created: clock.now(),
            };
            store.insert_domain_key(&record)?;
            snapshot.domain_keys.push(record);
        }
        let mut keys = HashMap::new();
        for record in &snapshot.domain_keys {
            keys.insert(
                record.id,
                root.unwrap_domain_key(record.id, &record.wrapped)?,
            );
        }
        let current = snapshot
            .domain_keys
            .iter()
            .map(|d| d.id)
            .max()
            .expect("at least one domain key");
        let domain = DomainKeys { current, keys };
        let mut cache = Cache::default();
        for stored in snapshot.keys {
            let versions =
                Self::unwrap_stored(&domain, &fencing, &stored.metadata, &stored.versions)?
                    .unwrap_or_default();
            cache.put(CachedKey::new(stored.metadata, versions));
        }
        for alias in snapshot.aliases {
            cache.put_alias(alias);
        }
        Ok(Self {
            store,
            clock,
            region: region.to_string(),
            domain,
            cache: RwLock::new(cache),
            fencing,
            writer: Mutex::new(()),
        })
    }

    /// The region this node names in ARNs.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Now, by the injected clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn lock_writer(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read_cache(&self) -> std::sync::RwLockReadGuard<'_, Cache> {
        self.cache.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_cache(&self) -> std::sync::RwLockWriteGuard<'_, Cache> {
        self.cache.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Resolves a caller's key reference to a live key of `account`. A key whose
    /// deletion date has passed answers as destroyed (NotFound); the request
    /// path never writes, the sweeper ([`Self::run_due_tasks`]) destroys it.
    fn resolve(&self, account: &str, key_ref: &str) -> Result<Arc<CachedKey>, KmsError> {
        let key = self.lookup(account, key_ref)?;
        if key.meta.is_due_for_destruction(self.now()) {
            return Err(KmsError::NotFound(format!(
                "Key '{}' does not exist",
                key.meta.arn()
            )));
        }
        Ok(key)
    }

    /// Like [`Self::resolve`] for operations that name a key only by key id or
    /// key ARN, as AWS requires for management operations: an alias is refused.
    fn resolve_key(&self, account: &str, key_ref: &str) -> Result<Arc<CachedKey>, KmsError> {
        reject_alias(key_ref)?;
        self.resolve(account, key_ref)
    }

    /// Whether `key_ref` names a key of `account` whose private-key operations
    /// are CPU-heavy (RSA, ML-DSA), so a caller on an async runtime should run
    /// them off its workers. False for anything that does not resolve.
    pub fn is_cpu_heavy_key(&self, account: &str, key_ref: &str) -> bool {
        self.lookup(account, key_ref)
            .is_ok_and(|k| k.meta.spec.is_cpu_heavy())
    }

    /// Finds the key a reference names, whatever its state.
    fn lookup(&self, account: &str, key_ref: &str) -> Result<Arc<CachedKey>, KmsError> {
        let not_found = || KmsError::NotFound(format!("Key '{key_ref}' does not exist"));
        let id = match KeyRef::parse(key_ref)? {
            KeyRef::Id(id) => id,
            KeyRef::Arn {
                region,
                account: a,
                id,
            } => {
                if a != account || region != self.region {
                    return Err(not_found());
                }
                id
            }
            KeyRef::Alias(name) => self.alias_target(account, &name).ok_or_else(|| {
                KmsError::NotFound(format!(
                    "Alias {} is not found.",
                    self.alias_arn_str(account, &name)
                ))
            })?,
            KeyRef::AliasArn {
                region,
                account: a,
                name,
            } => {
                if a != account || region != self.region {
                    return Err(not_found());
                }
                self.alias_target(account, &name).ok_or_else(not_found)?
            }
        };
        self.live_key(account, &id).ok_or_else(not_found)
    }

    fn alias_arn_str(&self, account: &str, name: &str) -> String {
        format!("arn:aws:kms:{}:{account}:{name}", self.region)
    }

    fn alias_target(&self, account: &str, name: &str) -> Option<KeyId> {
        self.read_cache().alias(account, name).map(|a| a.target)
    }

    fn live_key(&self, account: &str, id: &KeyId) -> Option<Arc<CachedKey>> {
        self.read_cache()
            .key(id)
            .filter(|k| k.meta.account == account)
    }

    fn destroy(&self, id: &KeyId) -> Result<(), KmsError> {
        let _w = self.lock_writer();
        if self.read_cache().key(id).is_none() {
            return Ok(());
        }
        self.store.delete_key(id)?;
        self.write_cache().remove_key(id);
        Ok(())
    }

    /// Persists new metadata for a key, then publishes it. Caller holds the writer lock.
    fn commit_metadata(&self, key: &CachedKey, meta: KeyMetadata) -> Result<KeyMetadata, KmsError> {
        self.store.update_key(&meta)?;
        self.write_cache().put(key.with_metadata(meta.clone()));
        Ok(meta)
    }

    /// Runs what the clock has made due: destroys keys whose deletion date has
    /// passed and rotates keys whose rotation date has come. Returns the
    /// number of keys changed.
    pub fn run_due_tasks(&self) -> Result<usize, KmsError> {
        let now = self.now();
        let keys = self.read_cache().all_keys();
        let mut changed = 0;
        for key in keys {
            if key.meta.is_due_for_destruction(now) {
                self.destroy(&key.meta.id)?;
                changed += 1;
            } else if key.meta.is_import_expired(now) {
                self.expire_imported_material(&key.meta.id)?;
                changed += 1;
            } else if key.meta.rotation.enabled
                && key.meta.rotation.next_rotation.is_some_and(|t| t <= now)
            {
                self.rotate_automatically(&key.meta.id)?;
                changed += 1;
            }
        }
        Ok(changed)
    }

    fn aliases_of(&self, account: &str) -> Vec<Alias> {
        self.read_cache().aliases_of(account)
    }
}

#[cfg(test)]
mod tests;
