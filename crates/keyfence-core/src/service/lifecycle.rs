//! Key lifecycle: create, describe, list, describe, enable/disable, deletion.

use std::collections::BTreeMap;

use super::cache::CachedKey;
use super::material::Material;
use super::{tags, Kms};
use crate::clock::Timestamp;
use crate::model::{
    parse_usage_for, ImportState, KeyMetadata, KeySpec, KeyState, Origin, RotationSchedule,
};
use crate::page::{self, Page};
use crate::{KeyId, KmsError};

/// Longest description AWS accepts.
const MAX_DESCRIPTION: usize = 8192;

/// Parameters of CreateKey.
#[derive(Debug, Clone, Default)]
pub struct CreateKeyInput {
    /// Description (default empty).
    pub description: Option<String>,
    /// KeySpec name (default SYMMETRIC_DEFAULT).
    pub key_spec: Option<String>,
    /// KeyUsage name (default ENCRYPT_DECRYPT).
    pub key_usage: Option<String>,
    /// Origin name (default AWS_KMS).
    pub origin: Option<String>,
    /// Initial tags.
    pub tags: Vec<(String, String)>,
}

/// Result of ScheduleKeyDeletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletionScheduled {
    /// The key.
    pub metadata: KeyMetadata,
    /// When it will be destroyed.
    pub deletion_date: Timestamp,
    /// The waiting period.
    pub pending_window_days: u32,
}

fn check_description(d: &str) -> Result<(), KmsError> {
    if d.chars().count() > MAX_DESCRIPTION {
        return Err(KmsError::Validation(format!(
            "1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to {MAX_DESCRIPTION}"
        )));
    }
    Ok(())
}

/// Refuses a key pending deletion (for management operations).
pub(super) fn require_not_pending_deletion(meta: &KeyMetadata) -> Result<(), KmsError> {
    if meta.state == KeyState::PendingDeletion {
        return Err(KmsError::InvalidState(format!(
            "{} is pending deletion.",
            meta.arn()
        )));
    }
    Ok(())
}

/// Refuses a key that cannot be used for cryptographic operations now.
pub(super) fn require_enabled(meta: &KeyMetadata) -> Result<(), KmsError> {
    match meta.state {
        KeyState::Enabled => Ok(()),
        KeyState::Disabled => Err(KmsError::Disabled(format!("{} is disabled.", meta.arn()))),
        KeyState::PendingDeletion => Err(KmsError::InvalidState(format!(
            "{} is pending deletion.",
            meta.arn()
        ))),
        KeyState::PendingImport => Err(KmsError::InvalidState(format!(
            "{} is pending import.",
            meta.arn()
        ))),
    }
}

impl Kms {
    /// CreateKey.
    pub fn create_key(
        &self,
        account: &str,
        input: CreateKeyInput,
    ) -> Result<KeyMetadata, KmsError> {
        let spec = KeySpec::parse(input.key_spec.as_deref().unwrap_or("SYMMETRIC_DEFAULT"))?;
        let usage = parse_usage_for(
            input.key_usage.as_deref().unwrap_or("ENCRYPT_DECRYPT"),
            spec,
        )?;
        let origin = match input.origin.as_deref().unwrap_or("AWS_KMS") {
            "AWS_KMS" => Origin::AwsKms,
            "EXTERNAL" => Origin::External,
            other => {
                return Err(KmsError::UnsupportedOperation(format!(
                    "Origin {other} is not supported by keyfence"
                )))
            }
        };
        let description = input.description.unwrap_or_default();
        check_description(&description)?;
        let mut tag_map = BTreeMap::new();
        tags::apply(&mut tag_map, input.tags)?;

        let now = self.now();
        let id = KeyId::generate()?;
        let external = origin == Origin::External;
        let meta = KeyMetadata {
            id,
            account: account.to_string(),
            region: self.region.clone(),
            description,
            created: now,
            state: if external {
                KeyState::PendingImport
            } else {
                KeyState::Enabled
            },
            deletion_date: None,
            pending_window_days: None,
            spec,
            usage,
            origin,
            rotation: RotationSchedule::default(),
            rotations: Vec::new(),
            current_version: if external { 0 } else { 1 },
            tags: tag_map,
            import: external.then(ImportState::default),
        };
        let versions = if external {
            BTreeMap::new()
        } else {
            BTreeMap::from([(1, Material::generate(spec)?)])
        };
        let records = versions
            .iter()
            .map(|(v, m)| self.domain.wrap(&id, *v, m, now))
            .collect::<Result<Vec<_>, _>>()?;
        let _w = self.lock_writer();
        self.store.insert_key(&meta, &records)?;
        self.write_cache()
            .put(CachedKey::new(meta.clone(), versions));
        Ok(meta)
    }

    /// DescribeKey.
    pub fn describe_key(&self, account: &str, key_ref: &str) -> Result<KeyMetadata, KmsError> {
        Ok(self.resolve(account, key_ref)?.meta.clone())
    }

    /// ListKeys: the account's keys, sorted by id, paged.
    pub fn list_keys(
        &self,
        account: &str,
        limit: Option<i64>,
        marker: Option<&str>,
    ) -> Result<Page<KeyMetadata>, KmsError> {
        let limit = page::limit(limit, 100, 1000)?;
        let now = self.now();
        let mut keys: Vec<KeyMetadata> = self
            .read_cache()
            .all_keys()
            .into_iter()
            .filter(|k| k.meta.account == account && !k.meta.is_due_for_destruction(now))
            .map(|k| k.meta.clone())
            .collect();
        keys.sort_by_key(|k| k.id.to_string());
        page::paginate(keys, |k| k.id.to_string(), marker, limit)
    }

    /// Applies `change` to the key's metadata under the writer lock, persists
    /// it, and returns the new metadata.
    pub(super) fn update_metadata(
        &self,
        account: &str,
        key_ref: &str,
        change: impl FnOnce(&mut KeyMetadata) -> Result<(), KmsError>,
    ) -> Result<KeyMetadata, KmsError> {
        let _w = self.lock_writer();
        let key = self.resolve_key(account, key_ref)?;
        let mut meta = key.meta.clone();
        change(&mut meta)?;
        if meta == key.meta {
            return Ok(meta);
        }
        self.commit_metadata(&key, meta)
    }

    /// UpdateKeyDescription.
    pub fn update_key_description(
        &self,
        account: &str,
        key_ref: &str,
        description: &str,
    ) -> Result<(), KmsError> {
        check_description(description)?;
        self.update_metadata(account, key_ref, |m| {
            require_not_pending_deletion(m)?;
            m.description = description.to_string();
            Ok(())
        })
        .map(drop)
    }

    /// EnableKey.
    pub fn enable_key(&self, account: &str, key_ref: &str) -> Result<(), KmsError> {
        self.update_metadata(account, key_ref, |m| {
            require_not_pending_deletion(m)?;
            m.state = KeyState::Enabled;
            Ok(())
        })
        .map(drop)
    }

    /// DisableKey.
    pub fn disable_key(&self, account: &str, key_ref: &str) -> Result<(), KmsError> {
        self.update_metadata(account, key_ref, |m| {
            require_not_pending_deletion(m)?;
            m.state = KeyState::Disabled;
            Ok(())
        })
        .map(drop)
    }

    /// ScheduleKeyDeletion: PendingWindowInDays 7–30 (default 30).
    pub fn schedule_key_deletion(
        &self,
        account: &str,
        key_ref: &str,
        window: Option<i64>,
    ) -> Result<DeletionScheduled, KmsError> {
        let days = window.unwrap_or(30);
        if !(7..=30).contains(&days) {
            return Err(KmsError::Validation(format!(
                "1 validation error detected: Value '{days}' at 'pendingWindowInDays' failed to satisfy constraint: Member must have value between 7 and 30"
            )));
        }
        let days = days as u32;
        let now = self.now();
        let meta = self.update_metadata(account, key_ref, |m| {
            require_not_pending_deletion(m)?;
            m.state = KeyState::PendingDeletion;
            m.deletion_date = Some(now.plus_days(days));
            m.pending_window_days = Some(days);
            Ok(())
        })?;
        Ok(DeletionScheduled {
            deletion_date: meta.deletion_date.expect("just set"),
            pending_window_days: days,
            metadata: meta,
        })
    }

    /// CancelKeyDeletion: the key returns Disabled, as in AWS.
    pub fn cancel_key_deletion(
        &self,
        account: &str,
        key_ref: &str,
    ) -> Result<KeyMetadata, KmsError> {
        self.update_metadata(account, key_ref, |m| {
            if m.state != KeyState::PendingDeletion {
                return Err(KmsError::InvalidState(format!(
                    "{} is not pending deletion.",
                    m.arn()
                )));
            }
            m.state = KeyState::Disabled;
            m.deletion_date = None;
            m.pending_window_days = None;
            Ok(())
        })
    }
}
