//! Geo-fenced keys at this node.
//!
//! A fenced key's backing versions are wrapped under its fence's policy
//! public key instead of a domain key ([`super::material`]). This node holds
//! its [`NodeKeyring`] (once its grant is in) and the fence records it was
//! given; it opens a fence's policy private key the first time it needs it
//! and caches it. A key fenced to a policy this node cannot open is known by
//! metadata only: its stored versions stay wrapped ("sealed") and every
//! cryptographic operation on it answers [`KmsError::FencedElsewhere`], which
//! the server turns into a forward to a satisfying node. A fenced CreateKey
//! is refused the same way before any material exists, so a node outside a
//! fence never sees the material of a key fenced away from it.
//!
//! Fencing from unmodified AWS clients: the tag [`FENCE_TAG`] at CreateKey
//! (an empty value opts out of the node's default fence), or the default
//! fence of the node's region ([`Kms::with_default_fence`]). The tag is kept
//! with the canonical policy, so ListResourceTags and DescribeKey show it;
//! TagResource and UntagResource refuse to set, change or remove it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock};

use super::cache::CachedKey;
use super::material::{self, Material};
use super::Kms;
use crate::fence::{
    normalize_policy, wrapped_key_fence, AuthorityPublic, FenceError, FenceId, FenceRecord,
    NodeKeyring, PolicyPrivateKey, Rewrapper,
};
use crate::model::{KeyFence, KeyMetadata};
use crate::store::{StoreError, StoredKey, VersionRecord};
use crate::{KeyId, KmsError};

/// The tag that fences a key at CreateKey; its value is a policy in
/// keyfence-abe's grammar, e.g. `region: EU and not country: RU`.
pub const FENCE_TAG: &str = "keyfence:fence";

/// What this node knows of the cluster's fences: the authority's public key,
/// its own keyring (absent until approved), and the fence records.
#[derive(Debug, Default)]
pub struct FenceView {
    /// The authority's public key, which every record must be signed with.
    pub authority: Option<AuthorityPublic>,
    /// This node's keyring, once its grant is in.
    pub keyring: Option<NodeKeyring>,
    /// Fence records (any order; the highest epoch of a fence wins).
    pub records: Vec<FenceRecord>,
}

/// What one [`Kms::sweep_fenced_keys`] found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepOutcome {
    /// Keys read from the store.
    pub keys_read: usize,
    /// Fenced keys whose versions were re-wrapped under their fence's current epoch.
    pub rewrapped: usize,
    /// Keys left under an old epoch, by ARN, with why (developer text).
    pub failed: Vec<(String, String)>,
}

/// Makes a fence on demand: the node that holds the authority answers a
/// CreateKey fenced to a policy no fence exists for yet by making it.
pub trait FenceMaker: Send + Sync {
    /// Makes and stores the fence of the canonical `policy`; returns its record.
    fn make_fence(&self, policy: &str) -> Result<FenceRecord, KmsError>;
}

/// Mutable fencing state of one node.
#[derive(Default)]
struct State {
    authority: Option<AuthorityPublic>,
    keyring: Option<Arc<NodeKeyring>>,
    records: HashMap<FenceId, FenceRecord>,
    /// Policy private keys opened so far (ABE decryption happens once per fence epoch).
    opened: HashMap<FenceId, Arc<PolicyPrivateKey>>,
    /// The previous epoch's policy key of fences rotated since this node
    /// opened them: versions still wrapped under it (the authority re-wraps
    /// them right after a rotation) keep unwrapping meanwhile.
    retired: HashMap<FenceId, Arc<PolicyPrivateKey>>,
    /// Fenced keys this node could not open. Their wrapped versions are
    /// not kept (over a kilobyte each under a policy key: a node outside a
    /// fence of 100,000 keys would hold over 100 MiB it cannot use); they
    /// are read again from the store when the fence may open.
    sealed: HashSet<KeyId>,
    /// Fences this node's keyring was found not to open, with the epoch of
    /// the record tried: until that record or the keyring changes, a key of
    /// such a fence is refused without checking the record again (a
    /// signature check per key, and per sealed key on every install, at a
    /// node outside a fence holding many of its keys).
    refused: HashMap<FenceId, u32>,
}

/// A node's fences and opened policy keys.
#[derive(Default)]
pub(super) struct Fencing {
    state: RwLock<State>,
    /// The fence of keys created without a fence tag (the region's default).
    default_policy: Option<KeyFence>,
    /// Set at the authority node.
    maker: RwLock<Option<Arc<dyn FenceMaker>>>,
    /// Policy keys this node tried to open with its keyring (tests count them).
    #[cfg(test)]
    pub(super) attempts: std::sync::atomic::AtomicUsize,
}

fn elsewhere(key: &str, fence: &KeyFence) -> KmsError {
    KmsError::FencedElsewhere {
        key: key.to_owned(),
        fence: fence.id,
        policy: fence.policy.clone(),
    }
}

/// Parses a policy into the fence it names.
fn fence_of_policy(policy: &str) -> Result<KeyFence, KmsError> {
    let (_, canonical) = normalize_policy(policy).map_err(|e| KmsError::Tag(e.to_string()))?;
    let id =
        FenceId::of_policy(&canonical).map_err(|e| KmsError::Internal(format!("fence id: {e}")))?;
    Ok(KeyFence {
        id,
        policy: canonical,
    })
}

/// The error of a cryptographic operation on `key` when its material is sealed here.
pub(super) fn sealed_error(key: &CachedKey) -> Option<KmsError> {
    let fence = key.meta.fence.as_ref()?;
    is_sealed(key).then(|| elsewhere(&key.meta.arn(), fence))
}

/// Whether this node knows `key` by metadata only: fenced, with material, none
/// of it open here.
pub(super) fn is_sealed(key: &CachedKey) -> bool {
    key.meta.fence.is_some() && key.versions.is_empty() && key.meta.current_version > 0
}

/// Takes the fence tag out of CreateKey's tags: `Some(None)` for an explicit
/// opt-out (empty value), `Some(Some(fence))` for a fence, `None` if absent.
fn take_fence_tag(tags: &mut Vec<(String, String)>) -> Result<Option<Option<KeyFence>>, KmsError> {
    let mut found = None;
    let mut rest = Vec::with_capacity(tags.len());
    for (k, v) in tags.drain(..) {
        if k == FENCE_TAG {
            found = Some(if v.trim().is_empty() {
                None
            } else {
                Some(fence_of_policy(&v)?)
            });
        } else {
            rest.push((k, v));
        }
    }
    *tags = rest;
    Ok(found)
}

/// Whether this node's keyring was found not to open the fence's current record.
fn refuses(state: &State, fence: FenceId) -> bool {
    state
        .records
        .get(&fence)
        .is_some_and(|r| state.refused.get(&fence) == Some(&r.epoch()))
}

impl Fencing {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the view: checks every record's signature, keeps a fence's
    /// latest record of the highest epoch (never going back to an older
    /// epoch than already held), and
    /// forgets opened policy keys whose epoch changed or whose node keyring changed.
    pub(super) fn install(&self, view: FenceView) -> Result<(), KmsError> {
        let mut state = self.write();
        let authority = view.authority.or_else(|| state.authority.clone());
        if let Some(authority) = &authority {
            for record in view.records {
                record.verify(authority).map_err(|e| {
                    KmsError::Internal(format!("fence record {}: {e}", record.id()))
                })?;
                // Same epoch: the record may name more nodes (an approval
                // adds envelopes without a new epoch). Older: refused silently.
                let held = state.records.get(&record.id());
                let newer = held.is_none_or(|held| held.epoch() <= record.epoch());
                if newer && held != Some(&record) {
                    // Changed: it may name this node now (or another generation).
                    state.refused.remove(&record.id());
                }
                if newer {
                    if let Some(old) = state.opened.remove(&record.id()) {
                        if old.epoch() < record.epoch() {
                            state.retired.insert(record.id(), old);
                        }
                    }
                    state.records.insert(record.id(), record);
                }
            }
        }
        if let Some(keyring) = view.keyring {
            state.opened.clear();
            state.refused.clear();
            state.keyring = Some(Arc::new(keyring));
        }
        state.authority = authority;
        Ok(())
    }

    /// The fence's policy private key, opened once and then cached.
    fn policy_key(&self, key: &str, fence: &KeyFence) -> Result<Arc<PolicyPrivateKey>, KmsError> {
        let (keyring, record) = {
            let state = self.read();
            if let Some(opened) = state.opened.get(&fence.id) {
                return Ok(Arc::clone(opened));
            }
            if refuses(&state, fence.id) {
                return Err(elsewhere(key, fence));
            }
            (state.keyring.clone(), state.records.get(&fence.id).cloned())
        };
        let record = record.ok_or_else(|| KmsError::UnknownFence {
            fence: fence.id,
            policy: fence.policy.clone(),
        })?;
        let keyring = keyring.ok_or_else(|| elsewhere(key, fence))?;
        #[cfg(test)]
        self.attempts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let opened = match keyring.open_policy_key(&record) {
            Ok(k) => Arc::new(k),
            Err(FenceError::NotSatisfied { .. } | FenceError::StaleGeneration { .. }) => {
                let mut state = self.write();
                // Remembered only if neither the record nor the keyring changed meanwhile.
                let same_keyring = state
                    .keyring
                    .as_ref()
                    .is_some_and(|k| Arc::ptr_eq(k, &keyring));
                if same_keyring && state.records.get(&fence.id) == Some(&record) {
                    state.refused.insert(fence.id, record.epoch());
                }
                return Err(elsewhere(key, fence));
            }
            Err(e) => return Err(KmsError::Internal(format!("{}: {e}", fence.id))),
        };
        let mut state = self.write();
        // Cache only if the record is still the one opened (no newer epoch meanwhile).
        if state
            .records
            .get(&fence.id)
            .is_some_and(|r| r.epoch() == opened.epoch())
        {
            state.opened.insert(fence.id, Arc::clone(&opened));
        }
        Ok(opened)
    }

    /// Unwraps a fenced key's stored versions, or `None` if this node cannot
    /// open its fence (the versions are then kept sealed). Versions `held`
    /// already holds unwrapped are reused (a version's material never
    /// changes, whatever it is wrapped under); the others are unwrapped with
    /// the policy key of the epoch they are wrapped under: the current one,
    /// or the previous one while a rotation's re-wrapping is under way. A
    /// version under an epoch this node has no key for (a newer record not
    /// installed yet) keeps the key sealed until [`Kms::install_fences`].
    pub(super) fn unwrap_all(
        &self,
        meta: &KeyMetadata,
        fence: &KeyFence,
        records: &[VersionRecord],
        held: Option<&CachedKey>,
    ) -> Result<Option<BTreeMap<u32, Material>>, KmsError> {
        let mut versions = BTreeMap::new();
        let mut missing = Vec::new();
        for record in records {
            match held.and_then(|k| k.versions.get(&record.version)) {
                Some(material) => {
                    versions.insert(record.version, material.clone());
                }
                None => missing.push(record),
            }
        }
        if missing.is_empty() {
            self.write().sealed.remove(&meta.id);
            return Ok(Some(versions));
        }
        let seal = || {
            self.write().sealed.insert(meta.id);
            Ok(None)
        };
        let current = match self.policy_key(&meta.arn(), fence) {
            Ok(k) => k,
            Err(KmsError::FencedElsewhere { .. } | KmsError::UnknownFence { .. }) => return seal(),
            Err(e) => return Err(e),
        };
        for record in missing {
            let (_, epoch) = wrapped_key_fence(&record.wrapped).map_err(|e| {
                KmsError::Internal(format!(
                    "material of {} v{}: {e}",
                    record.key_id, record.version
                ))
            })?;
            let key = if epoch == current.epoch() {
                Arc::clone(&current)
            } else {
                match self.read().retired.get(&fence.id) {
                    Some(old) if old.epoch() == epoch => Arc::clone(old),
                    _ => return seal(),
                }
            };
            versions.insert(
                record.version,
                material::unwrap_fenced(&key, record, meta.spec)?,
            );
        }
        self.write().sealed.remove(&meta.id);
        Ok(Some(versions))
    }
}

impl Kms {
    /// Sets the fence of keys created without a [`FENCE_TAG`] tag (the
    /// node's `[regions]` default for its region). Call before serving.
    pub fn with_default_fence(mut self, policy: Option<&str>) -> Result<Self, KmsError> {
        self.fencing.default_policy = policy.map(fence_of_policy).transpose()?;
        Ok(self)
    }

    /// Lets this node make fences on demand (it holds the authority).
    pub fn set_fence_maker(&self, maker: Arc<dyn FenceMaker>) {
        *self
            .fencing
            .maker
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(maker);
    }

    /// Installs or refreshes this node's view of the fences (after its grant
    /// arrives, or a fence is made or rotated), then opens the keys it kept
    /// sealed that it can open now (their versions read again from the
    /// store). Returns how many keys it opened.
    pub fn install_fences(&self, view: FenceView) -> Result<usize, KmsError> {
        self.fencing.install(view)?;
        let sealed: Vec<KeyId> = self.fencing.read().sealed.iter().copied().collect();
        let mut opened = 0;
        for id in sealed {
            let _replica = self.lock_to_publish();
            let Some(key) = self.read_cache().key(&id) else {
                self.fencing.write().sealed.remove(&id);
                continue;
            };
            let Some(fence) = key.meta.fence.as_ref() else {
                continue;
            };
            if refuses(&self.fencing.read(), fence.id) {
                continue; // still closed to this node: nothing to try
            }
            let Some(stored) = self.store.load_key(&id)? else {
                continue; // destroyed meanwhile: the feed removes it
            };
            if let Some(versions) =
                self.fencing
                    .unwrap_all(&stored.metadata, fence, &stored.versions, Some(&key))?
            {
                self.write_cache()
                    .put(CachedKey::new(stored.metadata, versions, stored.revision));
                opened += 1;
            }
        }
        Ok(opened)
    }

    /// The fences this node holds records of, by policy, with whether it
    /// opens each (for `keyfence fence list`). Opening may CP-ABE-decrypt once.
    pub fn fences(&self) -> Vec<(FenceRecord, bool)> {
        let mut records: Vec<FenceRecord> = self.fencing.read().records.values().cloned().collect();
        records.sort_by(|a, b| a.policy().cmp(b.policy()));
        records
            .into_iter()
            .map(|r| {
                let fence = KeyFence {
                    id: r.id(),
                    policy: r.policy().to_owned(),
                };
                let opens = self.fencing.policy_key("", &fence).is_ok();
                (r, opens)
            })
            .collect()
    }

    /// The fence a CreateKey asks for (its tag, else the region default),
    /// with the tag rewritten to the canonical policy; refuses
    /// ([`KmsError::FencedElsewhere`], [`KmsError::UnknownFence`]) before any
    /// material exists if this node cannot open it.
    pub(super) fn fence_for_create(
        &self,
        tags: &mut Vec<(String, String)>,
    ) -> Result<Option<KeyFence>, KmsError> {
        let fence = match take_fence_tag(tags)? {
            Some(explicit) => explicit,
            None => self.fencing.default_policy.clone(),
        };
        if let Some(fence) = &fence {
            match self.fencing.policy_key("a new key", fence) {
                Err(KmsError::UnknownFence { .. }) => {
                    let maker = self
                        .fencing
                        .maker
                        .read()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone();
                    let Some(maker) = maker else {
                        return Err(KmsError::UnknownFence {
                            fence: fence.id,
                            policy: fence.policy.clone(),
                        });
                    };
                    let record = maker.make_fence(&fence.policy)?;
                    self.fencing.install(FenceView {
                        records: vec![record],
                        ..FenceView::default()
                    })?;
                    self.fencing.policy_key("a new key", fence)?;
                }
                other => drop(other?),
            }
            tags.push((FENCE_TAG.to_owned(), fence.policy.clone()));
        }
        Ok(fence)
    }

    /// After a fence rotation, at the node that holds the authority: re-wraps
    /// every stored version of every key fenced by the rewrapper's fence that
    /// is still under the previous epoch, one key at a time, each write
    /// conditional on the key's revision (re-read and redone if another
    /// change came first). Reads the store page by page, not this node's
    /// replica, so no key is missed; running it again finds nothing left.
    /// Returns how many keys it re-wrapped.
    pub fn rewrap_fenced_keys(&self, rewrapper: &Rewrapper) -> Result<usize, KmsError> {
        let fence = rewrapper.fence();
        let mut done = 0;
        self.for_each_stored_key(|stored| {
            if stored.metadata.fence.as_ref().map(|f| f.id) == Some(fence)
                && self.rewrap_key(rewrapper, stored)?
            {
                done += 1;
            }
            Ok(())
        })?;
        Ok(done)
    }

    /// The re-wrap sweep: one pass over the store, page by page, finding
    /// every fenced key with a version wrapped under another epoch than its
    /// fence's current one (`current`: fence → epoch) and re-wrapping it with
    /// the rewrapper `rewrapper` gives for that fence (`None`: it cannot,
    /// e.g. this node does not hold the authority). A key that cannot be
    /// re-wrapped (a version two epochs behind, which no rewrapper opens)
    /// is reported in the outcome and the sweep goes on. Crash-safe by
    /// construction: it keeps no state of its own, so an interrupted sweep
    /// is resumed by the next one, which finds what is left in the store.
    pub fn sweep_fenced_keys(
        &self,
        current: &HashMap<FenceId, u32>,
        rewrapper: &mut dyn FnMut(FenceId) -> Result<Option<Arc<Rewrapper>>, KmsError>,
    ) -> Result<SweepOutcome, KmsError> {
        let mut outcome = SweepOutcome::default();
        self.for_each_stored_key(|stored| {
            outcome.keys_read += 1;
            let Some(fence) = stored.metadata.fence.as_ref().map(|f| f.id) else {
                return Ok(());
            };
            let Some(&epoch) = current.get(&fence) else {
                return Ok(());
            };
            let stale = stored.versions.iter().any(|v| {
                wrapped_key_fence(&v.wrapped).map_or(true, |(f, e)| f != fence || e != epoch)
            });
            if !stale {
                return Ok(());
            }
            let arn = stored.metadata.arn();
            match rewrapper(fence)? {
                None => outcome
                    .failed
                    .push((arn, "no re-wrapper for its fence".to_owned())),
                Some(r) => match self.rewrap_key(&r, stored) {
                    Ok(true) => outcome.rewrapped += 1,
                    Ok(false) => {}
                    Err(KmsError::Internal(detail)) => outcome.failed.push((arn, detail)),
                    Err(e) => return Err(e),
                },
            }
            Ok(())
        })?;
        Ok(outcome)
    }

    /// Calls `each` with every key of the store, read page by page (a page
    /// is dropped before the next is read).
    fn for_each_stored_key(
        &self,
        mut each: impl FnMut(StoredKey) -> Result<(), KmsError>,
    ) -> Result<(), KmsError> {
        let mut after: Option<KeyId> = None;
        loop {
            let page = self
                .store
                .load_keys(after.as_ref(), super::replica::LOAD_PAGE)?;
            let full = page.len() == super::replica::LOAD_PAGE;
            for stored in page {
                after = Some(stored.metadata.id);
                each(stored)?;
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// Re-wraps one key's versions; whether anything was written.
    fn rewrap_key(&self, rewrapper: &Rewrapper, mut stored: StoredKey) -> Result<bool, KmsError> {
        for _ in 0..16 {
            let mut changed = false;
            let mut versions = Vec::with_capacity(stored.versions.len());
            for record in &stored.versions {
                let aad = material::fenced_aad(&record.key_id, record.version);
                match rewrapper.rewrap(&record.wrapped, &aad) {
                    Ok(Some(wrapped)) => {
                        changed = true;
                        versions.push(VersionRecord {
                            wrapped,
                            ..record.clone()
                        });
                    }
                    Ok(None) => versions.push(record.clone()),
                    Err(e) => {
                        return Err(KmsError::Internal(format!(
                            "re-wrapping {} v{} under {}: {e}",
                            record.key_id,
                            record.version,
                            rewrapper.fence()
                        )))
                    }
                }
            }
            if !changed {
                return Ok(false);
            }
            match self
                .store
                .replace_versions(&stored.metadata, &versions, stored.revision)
            {
                Ok(revision) => {
                    let key = self.cached_key(StoredKey {
                        metadata: stored.metadata,
                        versions,
                        revision,
                    })?;
                    self.publish(key);
                    return Ok(true);
                }
                Err(StoreError::Stale { .. }) => match self.store.load_key(&stored.metadata.id)? {
                    Some(fresh) => stored = fresh,
                    None => return Ok(false),
                },
                Err(e) => return Err(e.into()),
            }
        }
        Err(KmsError::DependencyTimeout(format!(
            "{} kept changing while its versions were re-wrapped; run the rotation again",
            stored.metadata.arn()
        )))
    }

    /// Refuses to work with the material of `meta` at a node outside its fence.
    pub(super) fn require_inside(&self, meta: &KeyMetadata) -> Result<(), KmsError> {
        match &meta.fence {
            None => Ok(()),
            Some(fence) => self.fencing.policy_key(&meta.arn(), fence).map(drop),
        }
    }

    /// Wraps a new version of `meta`'s material: under its fence's policy key
    /// if fenced, else under the current domain key.
    pub(super) fn wrap_version(
        &self,
        meta: &KeyMetadata,
        version: u32,
        material: &Material,
    ) -> Result<VersionRecord, KmsError> {
        let now = self.now();
        match &meta.fence {
            None => self.domain().wrap(&meta.id, version, material, now),
            Some(fence) => {
                let key = self.fencing.policy_key(&meta.arn(), fence)?;
                material::wrap_fenced(
                    &key.public(),
                    &meta.id,
                    version,
                    material,
                    self.current_domain_key(),
                    now,
                )
            }
        }
    }
}

/// Refuses TagResource on the fence tag: a key's fence is fixed at CreateKey.
pub(super) fn refuse_fence_tag<'a>(
    meta: &KeyMetadata,
    mut keys: impl Iterator<Item = &'a str>,
) -> Result<(), KmsError> {
    if keys.any(|k| k == FENCE_TAG) {
        let now = match &meta.fence {
            Some(f) => format!("it is fenced to {}", f.policy),
            None => "it is not fenced".to_owned(),
        };
        return Err(KmsError::Tag(format!(
            "The {FENCE_TAG} tag is set only at CreateKey and can be neither changed nor removed; {} is unchanged ({now})",
            meta.arn()
        )));
    }
    Ok(())
}
