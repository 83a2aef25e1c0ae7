//! The KMS service: every operation, over an in-memory replica of the keys
//! in a [`Store`] that other nodes may share. A change is committed to the
//! store (conditional on the key revision it was checked against) before it
//! is acknowledged and published to the replica; [`Kms::sync`] applies what
//! other nodes changed.

mod aliases;
mod asymmetric;
mod cache;
mod crypto_ops;
mod destroy_early;
mod domain_keys;
mod fenced;
mod import;
mod lifecycle;
mod material;
mod multi_region;
mod regions;
mod replica;
mod rotation;
mod tags;
mod usage;
mod writes;

use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use keyfence_crypto::SymmetricKey;

pub use asymmetric::{DataKeyPairOutput, SignOutput};
pub use crypto_ops::{DataKeyOutput, DataKeySize, DecryptOutput, EncryptOutput, ReEncryptOutput};
pub use domain_keys::{RewrapBudget, RewrapOutcome, REWRAP_BATCH};
pub use fenced::{FenceMaker, FenceView, SweepOutcome, FENCE_TAG};
pub use import::ImportParameters;
pub use lifecycle::{CreateKeyInput, DeletionScheduled};
pub use multi_region::{
    MultiRegionConfiguration, MultiRegionMember, MultiRegionRefusal, ReplicateKeyInput,
};
pub use replica::SyncOutcome;
pub use rotation::{KeyMaterialEntry, KeyMaterialState, RotationStatus};
pub use usage::{KeyLastUsage, LastUse, TrackedOperation, UsageSnapshot};

use crate::clock::{Clock, Timestamp};
use crate::ids::{key_arn, KeyId, KeyRef, Region};
use crate::model::Alias;
use crate::root::RootOfTrust;
use crate::store::{DomainKeyRecord, Store, StoreError};
use crate::{KmsError, Missing};

use cache::{Cache, CachedKey};
use material::DomainKeys;

/// Refuses an alias name or alias ARN where only a key id or key ARN may be given.
fn reject_alias(key_ref: &str) -> Result<(), KmsError> {
    if matches!(
        KeyRef::parse(key_ref)?,
        KeyRef::Alias(_) | KeyRef::AliasArn { .. }
    ) {
        return Err(KmsError::NotFound(Missing::AliasNotAllowed {
            given: key_ref.to_string(),
        }));
    }
    Ok(())
}

/// How old a replica may be before a node on a shared store refuses to
/// answer from it (the default of [`Kms::with_max_staleness`]).
pub const DEFAULT_MAX_STALENESS: Duration = Duration::from_secs(60);

/// A KMS for one node: keys, aliases and their material, held in memory as a
/// replica of a [`Store`] that other nodes may share.
///
/// Correctness does not rest on this process being the only writer: every
/// state change is conditional on the key revision it was checked against
/// (see `writes`), and [`Kms::sync`] applies the store's change feed to the
/// replica (see `replica`).
pub struct Kms {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// The regions served, the default first (see `regions`).
    regions: Vec<Region>,
    /// The domain keys held (see `domain_keys`), replaced whole.
    domain: RwLock<Arc<DomainKeys>>,
    /// Serializes changes to `domain`.
    domain_update: Mutex<()>,
    /// The root of trust, if kept ([`Kms::with_root_of_trust`]).
    root: Option<Arc<dyn RootOfTrust>>,
    cache: RwLock<Cache>,
    fencing: fenced::Fencing,
    /// Orders publications to the cache: a feed batch and this node's own
    /// committed changes are applied one at a time (revisions decide for
    /// keys; for aliases, the order of application).
    replica: Mutex<replica::Replica>,
    /// Clock time (ms) of the last confirmed read of the store.
    last_sync: AtomicI64,
    /// Bound on the replica's age, only on a shared store.
    max_staleness: Option<Duration>,
    /// Each key's last cryptographic use (GetKeyLastUsage), in memory.
    usage: usage::UsageTracker,
}

impl Kms {
    /// Opens the service over `store`: creates the first domain key on an
    /// empty store, then loads and unwraps every key into memory. On a
    /// shared store the replica's age is bounded by [`DEFAULT_MAX_STALENESS`].
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
        let default_region = regions::parse_region(region)?;
        let fencing = fenced::Fencing::default();
        fencing.install(fences)?;
        let mut snapshot = store.load_head()?;
        if snapshot.domain_keys.is_empty() {
            let key = SymmetricKey::generate()
                .map_err(KmsError::internal_crypto("domain key generation"))?;
            let record = DomainKeyRecord {
                id: 1,
                wrapped: root.wrap_domain_key(1, &key)?,
                created: clock.now(),
            };
            match store.insert_domain_key(&record) {
                // Another node starting on the same empty store came first.
                Ok(()) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
            snapshot = store.load_head()?;
        }
        let domain = domain_keys::open_records(Some(root), &snapshot.domain_keys, None)?;
        let max_staleness = store.is_shared().then_some(DEFAULT_MAX_STALENESS);
        let now = clock.now();
        let kms = Self {
            store,
            clock,
            regions: vec![default_region],
            domain: RwLock::new(Arc::new(domain)),
            domain_update: Mutex::new(()),
            root: None,
            cache: RwLock::new(Cache::default()),
            fencing,
            replica: Mutex::new(replica::Replica::default()),
            last_sync: AtomicI64::new(now.0),
            max_staleness,
            usage: usage::UsageTracker::new(now),
        };
        kms.reload(snapshot)?;
        Ok(kms)
    }

    /// Sets the bound on the replica's age beyond which reads are refused
    /// with [`KmsError::DependencyTimeout`] (`None`: never). Only a shared
    /// store has one by default; a single node's replica is never behind.
    pub fn with_max_staleness(mut self, bound: Option<Duration>) -> Self {
        self.max_staleness = bound;
        self
    }

    /// Now, by the injected clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn lock_replica(&self) -> MutexGuard<'_, replica::Replica> {
        self.replica.lock().unwrap_or_else(|p| p.into_inner())
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
        self.require_fresh()?;
        let key = self.lookup(account, key_ref)?;
        if key.meta.is_due_for_destruction(self.now()) {
            return Err(KmsError::NotFound(Missing::Key {
                arn: key.meta.arn(),
            }));
        }
        Ok(key)
    }

    /// Like [`Self::resolve`] for operations that name a key only by key id or
    /// key ARN, as AWS requires for management operations: an alias is refused.
    /// On a shared store, a key this replica has not synced yet (created at
    /// another node a moment ago) is read from the store.
    fn resolve_key(&self, account: &str, key_ref: &str) -> Result<Arc<CachedKey>, KmsError> {
        reject_alias(key_ref)?;
        match self.resolve(account, key_ref) {
            Err(KmsError::NotFound(missing)) if self.store.is_shared() => self
                .fetch_unsynced(account, key_ref)?
                .ok_or(KmsError::NotFound(missing)),
            other => other,
        }
    }

    /// Reads a key named by id or key ARN from the store and publishes it;
    /// `None` if the store has no such live key of `account`.
    fn fetch_unsynced(
        &self,
        account: &str,
        key_ref: &str,
    ) -> Result<Option<Arc<CachedKey>>, KmsError> {
        let id = match KeyRef::parse(key_ref)? {
            KeyRef::Id(id) => self.bind_to_region(id),
            KeyRef::Arn {
                region,
                account: a,
                id,
            } if a == account && region == self.region() => self.bind_to_region(id),
            _ => return Ok(None),
        };
        let Some(stored) = self.store.load_key(&id)? else {
            return Ok(None);
        };
        if stored.metadata.account != account || stored.metadata.region != self.region() {
            return Ok(None);
        }
        // Its policy and grants before the key is visible.
        self.fetch_authz(&id)?;
        let key = self.publish(self.cached_key(stored)?);
        Ok((!key.meta.is_due_for_destruction(self.now())).then_some(key))
    }

    /// Whether `key_ref` names a key of `account` whose private-key operations
    /// are CPU-heavy (RSA, ML-DSA) at this node, so a caller on an async runtime
    /// should run them off its workers. False for anything that does not
    /// resolve, and for a key fenced away from this node (refused at once).
    pub fn is_cpu_heavy_key(&self, account: &str, key_ref: &str) -> bool {
        self.lookup(account, key_ref)
            .is_ok_and(|k| k.meta.spec.is_cpu_heavy() && !fenced::is_sealed(&k))
    }

    /// Whether `key_ref` names a key of `account` fenced away from this node
    /// (known by metadata only: every cryptographic operation on it is
    /// refused with [`KmsError::FencedElsewhere`], for the server to forward).
    pub fn is_fenced_away(&self, account: &str, key_ref: &str) -> bool {
        self.lookup(account, key_ref)
            .is_ok_and(|k| fenced::is_sealed(&k))
    }

    /// The refusal every cryptographic operation on the key `id` of
    /// `account` gets at this node, if that key is fenced away from it
    /// ([`KmsError::FencedElsewhere`], as the operation itself would answer):
    /// the server forwards such a request without trying it here.
    pub fn sealed_refusal(&self, account: &str, id: &KeyId) -> Option<KmsError> {
        self.live_key(account, id)
            .and_then(|k| fenced::sealed_error(&k))
    }

    /// Finds the key a reference names, whatever its state.
    fn lookup(&self, account: &str, key_ref: &str) -> Result<Arc<CachedKey>, KmsError> {
        let no_key = |region: &str, account: &str, id: &KeyId| {
            KmsError::NotFound(Missing::Key {
                arn: key_arn(region, account, id),
            })
        };
        let no_alias = |region: &str, account: &str, name: &str| {
            KmsError::NotFound(Missing::Alias {
                arn: format!("arn:aws:kms:{region}:{account}:{name}"),
            })
        };
        let id = match KeyRef::parse(key_ref)? {
            KeyRef::Id(id) => self.bind_to_region(id),
            KeyRef::Arn {
                region,
                account: a,
                id,
            } => {
                if a != account || region != self.region() {
                    return Err(no_key(&region, &a, &id));
                }
                self.bind_to_region(id)
            }
            KeyRef::Alias(name) => self
                .alias_target(account, &name)
                .ok_or_else(|| self.no_alias(account, &name))?,
            KeyRef::AliasArn {
                region,
                account: a,
                name,
            } => {
                if a != account || region != self.region() {
                    return Err(no_alias(&region, &a, &name));
                }
                self.alias_target(account, &name)
                    .ok_or_else(|| no_alias(&region, &a, &name))?
            }
        };
        self.live_key(account, &id)
            .ok_or_else(|| no_key(self.region(), account, &id))
    }

    /// The id a caller's (or a blob's) key id names in the request's region:
    /// a multi-Region id is bound to it; one bound to another region names
    /// nothing here (it stays bound, and is not found).
    fn bind_to_region(&self, id: KeyId) -> KeyId {
        match id.home() {
            Some(_) => id,
            None => id.in_region(self.current_region()),
        }
    }

    fn alias_arn_str(&self, account: &str, name: &str) -> String {
        format!("arn:aws:kms:{}:{account}:{name}", self.region())
    }

    /// NotFound for the alias `name` of `account`.
    fn no_alias(&self, account: &str, name: &str) -> KmsError {
        KmsError::NotFound(Missing::Alias {
            arn: self.alias_arn_str(account, name),
        })
    }

    /// The key the alias `name` of `account` names in the request's region.
    fn alias_target(&self, account: &str, name: &str) -> Option<KeyId> {
        self.read_cache()
            .alias(account, self.region(), name)
            .map(|a| a.target)
    }

    fn live_key(&self, account: &str, id: &KeyId) -> Option<Arc<CachedKey>> {
        self.read_cache()
            .key(id)
            .filter(|k| k.meta.account == account && k.meta.region == self.region())
    }

    /// Destroys a key whose deletion date has passed (run by the sweeper).
    fn destroy(&self, id: &KeyId) -> Result<(), KmsError> {
        let Some(key) = self.read_cache().key(id) else {
            return Ok(());
        };
        let now = self.now();
        let done = self.change_key(key, |k| {
            Ok(k.meta
                .is_due_for_destruction(now)
                .then_some(writes::KeyChange::Delete))
        });
        match done {
            // Another node destroyed it first.
            Ok(_) | Err(KmsError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
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
                && key.meta.multi_region != Some(crate::model::MultiRegionKeyType::Replica)
                && key.meta.rotation.next_rotation.is_some_and(|t| t <= now)
            {
                self.rotate_automatically(&key.meta.id)?;
                changed += 1;
            }
        }
        Ok(changed)
    }

    /// The aliases of `account` in the request's region.
    fn aliases_of(&self, account: &str) -> Vec<Alias> {
        self.read_cache().aliases_of(account, self.region())
    }
}

#[cfg(test)]
mod tests;
