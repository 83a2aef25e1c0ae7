//! Aliases: CreateAlias, UpdateAlias, DeleteAlias, ListAliases.

use super::lifecycle::require_not_pending_deletion;
use super::Kms;
use crate::ids::AliasName;
use crate::model::Alias;
use crate::page::{self, Page};
use crate::store::{Revision, StoreError};
use crate::{Invalid, KeyId, KmsError};

/// Whether an alias may move from a key like `old` to a key like `new` (AWS:
/// same key type, symmetric or asymmetric, and same usage; an HMAC key differs
/// from every other by its usage).
fn same_kind(old: &crate::model::KeyMetadata, new: &crate::model::KeyMetadata) -> bool {
    old.spec.asymmetric().is_some() == new.spec.asymmetric().is_some() && old.usage == new.usage
}

/// Checks of CreateAlias's target before giving up when the key keeps
/// changing between the check and the insert.
const ALIAS_ATTEMPTS: u32 = 16;

impl Kms {
    /// The key an alias may point to: named by id or key ARN (not alias), in the
    /// caller's account, not pending deletion. On a shared store the key is
    /// checked at its stored revision, not only as this node's replica has it:
    /// a deletion acknowledged at another node must refuse the alias here too.
    fn alias_target_key(&self, account: &str, target: &str) -> Result<(KeyId, Revision), KmsError> {
        let mut key = self.resolve_key(account, target)?;
        if self.store.is_shared() && self.store.key_revision(&key.meta.id)? != Some(key.revision) {
            key = self.reread(&key)?;
        }
        require_not_pending_deletion(&key.meta)?;
        Ok((key.meta.id, key.revision))
    }

    /// CreateAlias. The store decides whether the name is taken, not this
    /// node's replica, which may be behind.
    pub fn create_alias(&self, account: &str, name: &str, target: &str) -> Result<(), KmsError> {
        let name = AliasName::parse(name)?;
        let arn = self.alias_arn_str(account, name.as_str());
        // The insert is conditional on the target's revision checked here: a
        // change to the key committed in between (its deletion scheduled at
        // another node) makes it check again.
        let mut attempts = 0;
        let alias = loop {
            let (target_id, revision) = self.alias_target_key(account, target)?;
            let now = self.now();
            let alias = Alias {
                account: account.to_string(),
                region: self.region().to_string(),
                name: name.clone(),
                target: target_id,
                created: now,
                updated: now,
            };
            match self.store.insert_alias_at(&alias, revision) {
                Ok(()) => break alias,
                Err(StoreError::Stale { .. }) if attempts < ALIAS_ATTEMPTS => attempts += 1,
                Err(StoreError::Conflict(_)) => return Err(KmsError::AlreadyExists { alias: arn }),
                Err(other) => return Err(other.into()),
            }
        };
        let (account, region, name) = (
            alias.account.clone(),
            alias.region.clone(),
            alias.name.as_str().to_string(),
        );
        self.publish_alias_state(&account, &region, &name, Some(alias));
        Ok(())
    }

    /// UpdateAlias: points an existing alias at another key, which must have
    /// the same key type and usage as the alias's current key (as AWS).
    pub fn update_alias(&self, account: &str, name: &str, target: &str) -> Result<(), KmsError> {
        let name = AliasName::parse(name)?;
        let (target, _) = self.alias_target_key(account, target)?;
        let current = self.alias_target(account, name.as_str());
        if let (Some(old), Some(new)) = (
            current.and_then(|id| self.live_key(account, &id)),
            self.live_key(account, &target),
        ) {
            if !same_kind(&old.meta, &new.meta) {
                return Err(KmsError::Validation(Invalid::AliasTargetKind));
            }
        }
        let now = self.now();
        let wanted = Alias {
            account: account.to_string(),
            region: self.region().to_string(),
            name,
            target,
            created: now,
            updated: now,
        };
        match self.store.update_alias(&wanted)? {
            Some(stored) => {
                self.publish_alias_state(
                    account,
                    &wanted.region,
                    wanted.name.as_str(),
                    Some(stored),
                );
                Ok(())
            }
            None => {
                self.publish_alias_state(account, &wanted.region, wanted.name.as_str(), None);
                Err(self.no_alias(account, wanted.name.as_str()))
            }
        }
    }

    /// DeleteAlias.
    pub fn delete_alias(&self, account: &str, name: &str) -> Result<(), KmsError> {
        let region = self.region();
        let existed = self.store.delete_alias(account, region, name)?;
        self.publish_alias_state(account, region, name, None);
        if !existed {
            return Err(self.no_alias(account, name));
        }
        Ok(())
    }

    /// ListAliases: the account's aliases (only those of `key_ref` if given), by name, paged.
    pub fn list_aliases(
        &self,
        account: &str,
        key_ref: Option<&str>,
        limit: Option<i64>,
        marker: Option<&str>,
    ) -> Result<Page<Alias>, KmsError> {
        let limit = page::limit(limit, 100, 100)?;
        self.require_fresh()?;
        let filter = match key_ref {
            Some(k) => Some(self.resolve_key(account, k)?.meta.id),
            None => None,
        };
        let now = self.now();
        let aliases: Vec<Alias> = self
            .aliases_of(account)
            .into_iter()
            .filter(|a| filter.is_none_or(|id| a.target == id))
            .filter(|a| {
                self.live_key(account, &a.target)
                    .is_some_and(|k| !k.meta.is_due_for_destruction(now))
            })
            .collect();
        page::paginate(aliases, |a| a.name.as_str().to_string(), marker, limit)
    }
}
