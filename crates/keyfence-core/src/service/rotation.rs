//! Rotation: each rotation adds a backing key version; the newest encrypts,
//! every older one still decrypts.

use super::cache::CachedKey;
use super::lifecycle::{require_enabled, require_not_pending_deletion};
use super::material::Material;
use super::multi_region::require_not_replica;
use super::writes::KeyChange;
use super::Kms;
use crate::clock::Timestamp;
use crate::model::{KeyMetadata, KeySpec, KeyState, Origin, RotationRecord, RotationType};
use crate::page::{self, Page};
use crate::{Bound, KeyId, KmsError, Limit, Member, Unsupported};

/// Default automatic rotation period (AWS: 365 days).
const DEFAULT_PERIOD_DAYS: u32 = 365;
/// Most on-demand rotations a key may have (AWS: 25).
const MAX_ON_DEMAND_ROTATIONS: usize = 25;

/// Result of GetKeyRotationStatus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationStatus {
    /// The key.
    pub metadata: KeyMetadata,
    /// Whether automatic rotation is on.
    pub enabled: bool,
    /// Its period, when on.
    pub period_days: Option<u32>,
    /// The next automatic rotation, when on.
    pub next_rotation: Option<Timestamp>,
}

/// Only symmetric keys with keyfence-generated material rotate, as in AWS.
fn require_rotatable(meta: &KeyMetadata) -> Result<(), KmsError> {
    if meta.spec != KeySpec::SymmetricDefault {
        return Err(KmsError::SpecCannot {
            key: meta.arn(),
            spec: meta.spec,
            operation: crate::error::SpecOperation::Rotate,
        });
    }
    if meta.origin != Origin::AwsKms {
        return Err(KmsError::UnsupportedOperation(
            Unsupported::ImportedRotation { key: meta.arn() },
        ));
    }
    Ok(())
}

impl Kms {
    /// EnableKeyRotation: RotationPeriodInDays 90–2560 (default 365).
    pub fn enable_key_rotation(
        &self,
        account: &str,
        key_ref: &str,
        period: Option<i64>,
    ) -> Result<(), KmsError> {
        let days = period.unwrap_or(i64::from(DEFAULT_PERIOD_DAYS));
        if !(90..=2560).contains(&days) {
            return Err(KmsError::OutOfBounds {
                member: Member::RotationPeriodInDays,
                bound: Bound::Value {
                    value: days,
                    min: 90,
                    max: 2560,
                },
            });
        }
        let days = days as u32;
        let now = self.now();
        let meta = self.update_metadata(account, key_ref, |m| {
            require_not_replica(m)?;
            require_enabled(m)?;
            require_rotatable(m)?;
            m.rotation.enabled = true;
            m.rotation.period_days = Some(days);
            m.rotation.next_rotation = Some(now.plus_days(days));
            Ok(())
        })?;
        self.sync_replicas(&meta.id)
    }

    /// DisableKeyRotation.
    pub fn disable_key_rotation(&self, account: &str, key_ref: &str) -> Result<(), KmsError> {
        let meta = self.update_metadata(account, key_ref, |m| {
            require_not_replica(m)?;
            require_enabled(m)?;
            m.rotation.enabled = false;
            m.rotation.next_rotation = None;
            Ok(())
        })?;
        self.sync_replicas(&meta.id)
    }

    /// GetKeyRotationStatus.
    pub fn get_key_rotation_status(
        &self,
        account: &str,
        key_ref: &str,
    ) -> Result<RotationStatus, KmsError> {
        let meta = self.resolve_key(account, key_ref)?.meta.clone();
        require_not_pending_deletion(&meta)?;
        Ok(RotationStatus {
            enabled: meta.rotation.enabled,
            period_days: meta.rotation.period_days.filter(|_| meta.rotation.enabled),
            next_rotation: meta
                .rotation
                .next_rotation
                .filter(|_| meta.rotation.enabled),
            metadata: meta,
        })
    }

    /// RotateKeyOnDemand.
    pub fn rotate_key_on_demand(
        &self,
        account: &str,
        key_ref: &str,
    ) -> Result<KeyMetadata, KmsError> {
        let key = self.resolve_key(account, key_ref)?;
        let key = self.change_kept_key(key, |k| {
            require_not_replica(&k.meta)?;
            require_enabled(&k.meta)?;
            require_rotatable(&k.meta)?;
            let on_demand = k
                .meta
                .rotations
                .iter()
                .filter(|r| r.kind == RotationType::OnDemand)
                .count();
            if on_demand >= MAX_ON_DEMAND_ROTATIONS {
                return Err(KmsError::LimitExceeded(Limit::OnDemandRotations {
                    key: k.meta.arn(),
                    max: MAX_ON_DEMAND_ROTATIONS,
                }));
            }
            self.next_version(k, RotationType::OnDemand).map(Some)
        })?;
        self.sync_replicas(&key.meta.id)?;
        Ok(key.meta.clone())
    }

    /// A scheduled rotation, run by [`Kms::run_due_tasks`].
    pub(super) fn rotate_automatically(&self, id: &KeyId) -> Result<(), KmsError> {
        let Some(key) = self.read_cache().key(id) else {
            return Ok(());
        };
        let now = self.now();
        self.change_key(key, |k| {
            let due =
                k.meta.rotation.enabled && k.meta.rotation.next_rotation.is_some_and(|t| t <= now);
            if !due || k.meta.state != KeyState::Enabled || require_not_replica(&k.meta).is_err() {
                return Ok(None);
            }
            self.next_version(k, RotationType::Automatic).map(Some)
        })?;
        self.sync_replicas(id)
    }

    /// A fresh backing key version after `key`'s current one, with the
    /// metadata that records the rotation.
    fn next_version(&self, key: &CachedKey, kind: RotationType) -> Result<KeyChange, KmsError> {
        let now = self.now();
        let version = key.meta.current_version + 1;
        self.require_inside(&key.meta)?;
        let material = Material::generate(key.meta.spec)?;
        let mut meta = key.meta.clone();
        meta.current_version = version;
        meta.rotations.push(RotationRecord {
            date: now,
            kind,
            version,
        });
        if kind == RotationType::Automatic {
            if let Some(days) = meta.rotation.period_days {
                meta.rotation.next_rotation = Some(now.plus_days(days));
            }
        }
        Ok(KeyChange::AddVersion(meta, version, material))
    }

    /// ListKeyRotations: completed rotations, oldest first, paged.
    pub fn list_key_rotations(
        &self,
        account: &str,
        key_ref: &str,
        limit: Option<i64>,
        marker: Option<&str>,
    ) -> Result<(KeyMetadata, Page<RotationRecord>), KmsError> {
        let limit = page::limit(limit, 100, 1000)?;
        let meta = self.resolve_key(account, key_ref)?.meta.clone();
        require_not_pending_deletion(&meta)?;
        let page = page::paginate(
            meta.rotations.clone(),
            |r| format!("{:010}", r.version),
            marker,
            limit,
        )?;
        Ok((meta, page))
    }
}
