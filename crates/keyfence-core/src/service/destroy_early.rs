//! Destroying a key before its waiting period ends: only for a key already
//! pending deletion, and only when the node's admin API has cleared an
//! operators' quorum for it (the core does not check who asked).

use super::writes::KeyChange;
use super::Kms;
use crate::model::KeyState;
use crate::{KeyMetadata, KmsError, StateRefusal};

impl Kms {
    /// Destroys the key `key_ref` of `account` now, though its deletion date
    /// has not come: its metadata, every version of its material and its
    /// aliases. Refused unless the key is pending deletion (a key cannot be
    /// destroyed without first being scheduled, as AWS). Returns its
    /// metadata as it was.
    pub fn destroy_key_now(&self, account: &str, key_ref: &str) -> Result<KeyMetadata, KmsError> {
        let key = self.resolve_key(account, key_ref)?;
        let meta = key.meta.clone();
        self.change_key(key, |k| {
            if k.meta.state != KeyState::PendingDeletion {
                return Err(KmsError::InvalidState {
                    key: k.meta.arn(),
                    refusal: StateRefusal::NotPendingDeletion,
                });
            }
            Ok(Some(KeyChange::Delete))
        })?;
        Ok(meta)
    }
}
