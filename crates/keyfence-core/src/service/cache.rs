//! The in-memory view of keys and aliases that the request path reads.
//!
//! It holds every key of the store, so its per-key cost decides a node's
//! memory at a million keys: a key's versions are one exactly-sized vector
//! (most keys have one version; a `BTreeMap` would take a 500-byte node for it).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::material::Material;
use crate::model::{Alias, KeyMetadata};
use crate::store::Revision;
use crate::KeyId;

/// A key's unwrapped backing keys by version: sorted by version, compact.
#[derive(Clone, Default)]
pub(super) struct Versions(Vec<(u32, Material)>);

impl Versions {
    /// The material of `version`.
    pub fn get(&self, version: &u32) -> Option<&Material> {
        self.0
            .binary_search_by_key(version, |(v, _)| *v)
            .ok()
            .map(|i| &self.0[i].1)
    }

    /// Adds (or replaces) a version.
    pub fn insert(&mut self, version: u32, material: Material) {
        match self.0.binary_search_by_key(&version, |(v, _)| *v) {
            Ok(i) => self.0[i].1 = material,
            Err(i) => self.0.insert(i, (version, material)),
        }
        self.0.shrink_to_fit();
    }

    /// Every version, as a map (for a change that rewrites the key's versions).
    pub fn to_map(&self) -> BTreeMap<u32, Material> {
        self.0.iter().cloned().collect()
    }

    /// Whether no version is held (a key awaiting import, or sealed here).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<BTreeMap<u32, Material>> for Versions {
    fn from(map: BTreeMap<u32, Material>) -> Self {
        let mut v: Vec<_> = map.into_iter().collect();
        v.shrink_to_fit();
        Self(v)
    }
}

/// A key's metadata with its unwrapped backing keys, by version, at a revision.
pub(super) struct CachedKey {
    pub meta: KeyMetadata,
    pub versions: Arc<Versions>,
    pub revision: Revision,
}

impl CachedKey {
    pub fn new(meta: KeyMetadata, versions: impl Into<Versions>, revision: Revision) -> Self {
        Self {
            meta,
            versions: Arc::new(versions.into()),
            revision,
        }
    }

    /// The same material under new metadata, at a new revision.
    pub fn with_metadata(&self, meta: KeyMetadata, revision: Revision) -> Self {
        Self {
            meta,
            versions: Arc::clone(&self.versions),
            revision,
        }
    }
}

/// Keys by id and aliases by (account, region, name).
#[derive(Default)]
pub(super) struct Cache {
    keys: HashMap<KeyId, Arc<CachedKey>>,
    aliases: HashMap<(String, String, String), Alias>,
    /// Keys known to be destroyed (ids are never reused), so that a change
    /// committed before the destruction but published after it cannot bring
    /// the key back.
    destroyed: HashSet<KeyId>,
}

impl Cache {
    pub fn key(&self, id: &KeyId) -> Option<Arc<CachedKey>> {
        self.keys.get(id).cloned()
    }

    /// Publishes `key` unless the cache already holds a newer revision of it
    /// (a change and the feed may deliver the same key in either order).
    pub fn put(&mut self, key: CachedKey) -> Arc<CachedKey> {
        if self.destroyed.contains(&key.meta.id) {
            return Arc::new(key);
        }
        match self.keys.get(&key.meta.id) {
            Some(held) if held.revision > key.revision => Arc::clone(held),
            _ => {
                let key = Arc::new(key);
                self.keys.insert(key.meta.id, Arc::clone(&key));
                key
            }
        }
    }

    /// Replaces everything (after a reload), remembering destroyed keys.
    pub fn replace_all(&mut self, mut other: Cache) {
        other.destroyed.extend(self.destroyed.drain());
        other.keys.retain(|id, _| !other.destroyed.contains(id));
        *self = other;
    }

    /// Removes a key and every alias that points to it.
    pub fn remove_key(&mut self, id: &KeyId) {
        self.destroyed.insert(*id);
        self.keys.remove(id);
        self.aliases.retain(|_, a| a.target != *id);
    }

    pub fn all_keys(&self) -> Vec<Arc<CachedKey>> {
        self.keys.values().cloned().collect()
    }

    pub fn alias(&self, account: &str, region: &str, name: &str) -> Option<&Alias> {
        self.aliases
            .get(&(account.to_string(), region.to_string(), name.to_string()))
    }

    pub fn put_alias(&mut self, alias: Alias) {
        self.aliases.insert(
            (
                alias.account.clone(),
                alias.region.clone(),
                alias.name.as_str().to_string(),
            ),
            alias,
        );
    }

    pub fn remove_alias(&mut self, account: &str, region: &str, name: &str) {
        self.aliases
            .remove(&(account.to_string(), region.to_string(), name.to_string()));
    }

    /// An account's aliases in `region`, sorted by name.
    pub fn aliases_of(&self, account: &str, region: &str) -> Vec<Alias> {
        let mut out: Vec<Alias> = self
            .aliases
            .values()
            .filter(|a| a.account == account && a.region == region)
            .cloned()
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}
