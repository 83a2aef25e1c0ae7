//! GetKeyLastUsage: the last successful cryptographic operation of each key,
//! kept in memory (one map update per request, no store write). The node
//! saves [`Kms::usage_snapshot`] now and then and gives it back to
//! [`Kms::restore_usage`] at start, so the record survives a restart up to
//! the last save.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::lifecycle::require_not_pending_deletion;
use super::Kms;
use crate::clock::Timestamp;
use crate::model::KeyMetadata;
use crate::{KeyId, KmsError};

/// The cryptographic operations whose use is tracked (AWS
/// `KeyLastUsageTrackingOperation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackedOperation {
    /// Decrypt.
    Decrypt,
    /// DeriveSharedSecret.
    DeriveSharedSecret,
    /// Encrypt.
    Encrypt,
    /// GenerateDataKey.
    GenerateDataKey,
    /// GenerateDataKeyPair.
    GenerateDataKeyPair,
    /// GenerateDataKeyPairWithoutPlaintext.
    GenerateDataKeyPairWithoutPlaintext,
    /// GenerateDataKeyWithoutPlaintext.
    GenerateDataKeyWithoutPlaintext,
    /// GenerateMac.
    GenerateMac,
    /// ReEncrypt (its source and its destination key).
    ReEncrypt,
    /// Sign.
    Sign,
    /// Verify.
    Verify,
    /// VerifyMac.
    VerifyMac,
}

/// A key's last tracked use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastUse {
    /// What it was.
    pub operation: TrackedOperation,
    /// When.
    pub at: Timestamp,
}

/// Result of GetKeyLastUsage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLastUsage {
    /// The key.
    pub metadata: KeyMetadata,
    /// Its last use since tracking began, if any.
    pub last: Option<LastUse>,
    /// When tracking began for this key: the later of the node's tracking
    /// start and the key's creation.
    pub tracking_start: Timestamp,
}

/// Last uses by key, and whether any changed since the last snapshot.
pub(super) struct UsageTracker {
    last: Mutex<HashMap<KeyId, LastUse>>,
    changed: AtomicBool,
    start: Mutex<Timestamp>,
}

impl UsageTracker {
    pub(super) fn new(start: Timestamp) -> Self {
        Self {
            last: Mutex::new(HashMap::new()),
            changed: AtomicBool::new(false),
            start: Mutex::new(start),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<KeyId, LastUse>> {
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn start(&self) -> Timestamp {
        *self.start.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What the node saves: when tracking began and every key's last use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageSnapshot {
    /// When tracking began on this node.
    pub tracking_start: Timestamp,
    /// Last uses by key.
    pub keys: Vec<(KeyId, LastUse)>,
}

impl Kms {
    /// Records a successful cryptographic operation with `key`, now.
    pub fn record_use(&self, key: &KeyId, operation: TrackedOperation) {
        let at = self.now();
        self.usage.map().insert(*key, LastUse { operation, at });
        self.usage.changed.store(true, Ordering::Release);
    }

    /// GetKeyLastUsage (key id or key ARN only, as AWS takes it).
    pub fn get_key_last_usage(
        &self,
        account: &str,
        key_ref: &str,
    ) -> Result<KeyLastUsage, KmsError> {
        let meta = self.resolve_key(account, key_ref)?.meta.clone();
        require_not_pending_deletion(&meta)?;
        let last = self.usage.map().get(&meta.id).copied();
        Ok(KeyLastUsage {
            tracking_start: self.usage.start().max(meta.created),
            last,
            metadata: meta,
        })
    }

    /// Every key's last use, if any changed since the last snapshot taken
    /// (`None`: nothing to save).
    pub fn usage_snapshot(&self) -> Option<UsageSnapshot> {
        if !self.usage.changed.swap(false, Ordering::AcqRel) {
            return None;
        }
        let keys = self.usage.map().iter().map(|(k, u)| (*k, *u)).collect();
        Some(UsageSnapshot {
            tracking_start: self.usage.start(),
            keys,
        })
    }

    /// Takes back a saved snapshot at start: its tracking start, and each
    /// key's use unless a later one was recorded since.
    pub fn restore_usage(&self, saved: UsageSnapshot) {
        *self.usage.start.lock().unwrap_or_else(|p| p.into_inner()) = saved.tracking_start;
        let mut map = self.usage.map();
        for (key, used) in saved.keys {
            let entry = map.entry(key).or_insert(used);
            if entry.at < used.at {
                *entry = used;
            }
        }
    }
}
