//! Aliases: CreateAlias, UpdateAlias, DeleteAlias, ListAliases.

use super::lifecycle::require_not_pending_deletion;
use super::Kms;
use crate::ids::AliasName;
use crate::model::Alias;
use crate::page::{self, Page};
use crate::store::StoreError;
use crate::{Invalid, KeyId, KmsError};

/// Whether an alias may move from a key like `old` to a key like `new` (AWS:
/// same key type, symmetric or asymmetric, and same usage; an HMAC key differs
/// from every other by its usage).
fn same_kind(old: &crate::model::KeyMetadata, new: &crate::model::KeyMetadata) -> bool {
    old.spec.asymmetric().is_some() == new.spec.asymmetric().is_some() && old.usage == new.usage
}

impl Kms {
    /// The key an alias may point to: named by id or key ARN (not alias), in the
    /// caller's account, not pending deletion.
    fn alias_target_key(&self, account: &str, target: &str) -> Result<KeyId, KmsError> {
        let key = self.resolve_key(account, target)?;
        require_not_pending_deletion(&key.meta)?;
        Ok(key.meta.id)
    }

    /// CreateAlias. The store decides whether the name is taken, not this
    /// node's replica, which may be behind.
    pub fn create_alias(&self, account: &str, name: &str, target: &str) -> Result<(), KmsError> {
        let name = AliasName::parse(name)?;
        let target = self.alias_target_key(account, target)?;
        let arn = self.alias_arn_str(account, name.as_str());
        let now = self.now();
        let alias = Alias {
            account: account.to_string(),
            name,
            target,
            created: now,
            updated: now,
        };
        self.store.insert_alias(&alias).map_err(|e| match e {
            StoreError::Conflict(_) => KmsError::AlreadyExists { alias: arn },
            other => other.into(),
        })?;
        let (account, name) = (alias.account.clone(), alias.name.as_str().to_string());
        self.publish_alias_state(&account, &name, Some(alias));
        Ok(())
    }

    /// UpdateAlias: points an existing alias at another key, which must have
    /// the same key type and usage as the alias's current key (as AWS).
    pub fn update_alias(&self, account: &str, name: &str, target: &str) -> Result<(), KmsError> {
        let name = AliasName::parse(name)?;
        let target = self.alias_target_key(account, target)?;
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
            name,
            target,
            created: now,
            updated: now,
        };
        match self.store.update_alias(&wanted)? {
            Some(stored) => {
                self.publish_alias_state(account, wanted.name.as_str(), Some(stored));
                Ok(())
            }
            None => {
                self.publish_alias_state(account, wanted.name.as_str(), None);
                Err(self.no_alias(account, wanted.name.as_str()))
            }
        }
    }

    /// DeleteAlias.
    pub fn delete_alias(&self, account: &str, name: &str) -> Result<(), KmsError> {
        let existed = self.store.delete_alias(account, name)?;
        self.publish_alias_state(account, name, None);
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
