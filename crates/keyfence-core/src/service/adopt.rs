//! Keys made by other nodes sharing the store: a stopgap until the change
//! feed keeps every node's cache current.

use super::cache::CachedKey;
use super::Kms;
use crate::KmsError;

impl Kms {
    /// Adopts the keys and aliases that other nodes sharing this store have
    /// added since this node loaded it (a fenced key this node cannot open is
    /// adopted by metadata only). Only additions: a change or deletion made
    /// elsewhere to a key this node already holds is not seen until restart
    /// (the change feed replaces this). Reads the whole store; returns how
    /// many keys were adopted.
    pub fn adopt_new_keys(&self) -> Result<usize, KmsError> {
        let snapshot = self.store.load()?;
        let mut adopted = 0;
        for stored in snapshot.keys {
            if self.read_cache().key(&stored.metadata.id).is_some() {
                continue;
            }
            let _w = self.lock_writer();
            if self.read_cache().key(&stored.metadata.id).is_some() {
                continue;
            }
            let versions = Self::unwrap_stored(
                &self.domain,
                &self.fencing,
                &stored.metadata,
                &stored.versions,
            )?
            .unwrap_or_default();
            self.write_cache()
                .put(CachedKey::new(stored.metadata, versions));
            adopted += 1;
        }
        for alias in snapshot.aliases {
            let _w = self.lock_writer();
            if self
                .read_cache()
                .alias(&alias.account, alias.name.as_str())
                .is_none()
                && self.read_cache().key(&alias.target).is_some()
            {
                self.write_cache().put_alias(alias);
            }
        }
        Ok(adopted)
    }
}
