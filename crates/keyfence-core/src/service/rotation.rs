//! Rotation: each rotation adds a backing key version; the newest encrypts,
//! every older one still decrypts.

use super::cache::CachedKey;
use super::lifecycle::{require_enabled, require_not_pending_deletion};
use super::material::Material;
use super::multi_region::require_not_replica;
use super::writes::KeyChange;
use super::Kms;
use crate::clock::Timestamp;
use crate::model::{
    ExpirationModel, KeyMetadata, KeySpec, KeyState, Origin, RotationRecord, RotationType,
};
use crate::page::{self, Page};
use crate::{Bound, KeyId, KeyMaterialId, KmsError, Limit, Member, StateRefusal, Unsupported};

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

/// Only symmetric keys rotate, as in AWS.
fn require_symmetric(meta: &KeyMetadata) -> Result<(), KmsError> {
    if meta.spec != KeySpec::SymmetricDefault {
        return Err(KmsError::SpecCannot {
            key: meta.arn(),
            spec: meta.spec,
            operation: crate::error::SpecOperation::Rotate,
        });
    }
    Ok(())
}

/// Only symmetric keys with keyfence-generated material rotate automatically, as in AWS.
fn require_rotatable(meta: &KeyMetadata) -> Result<(), KmsError> {
    require_symmetric(meta)?;
    if meta.origin != Origin::AwsKms {
        return Err(KmsError::UnsupportedOperation(
            Unsupported::ImportedRotation { key: meta.arn() },
        ));
    }
    Ok(())
}

/// On-demand rotation of a key with imported material: the material imported
/// as NEW_KEY_MATERIAL (PENDING_ROTATION) becomes current.
fn imported_rotation(key: &CachedKey, now: Timestamp) -> Result<KeyChange, KmsError> {
    let mut meta = key.meta.clone();
    let no_pending = || KmsError::InvalidState {
        key: key.meta.arn(),
        refusal: StateRefusal::NoPendingRotation,
    };
    let import = meta.import.as_mut().ok_or_else(no_pending)?;
    let pending = import.pending_rotation.take().ok_or_else(no_pending)?;
    if key.versions.get(&pending.version).is_none() {
        return Err(no_pending());
    }
    import.material_commitment = Some(pending.commitment);
    import.expiration_model = Some(pending.expiration_model);
    import.valid_to = pending.valid_to;
    meta.current_version = pending.version;
    meta.rotations.push(RotationRecord {
        date: now,
        kind: RotationType::OnDemand,
        version: pending.version,
    });
    Ok(KeyChange::Metadata(meta))
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
            require_symmetric(&k.meta)?;
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
            if k.meta.origin == Origin::External {
                return imported_rotation(k, self.now()).map(Some);
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

    /// ListKeyRotations: the key's materials, oldest first, paged: those made
    /// by rotations, and with `all_material` (IncludeKeyMaterial
    /// ALL_KEY_MATERIAL) also the first one and any pending rotation.
    pub fn list_key_rotations(
        &self,
        account: &str,
        key_ref: &str,
        all_material: bool,
        limit: Option<i64>,
        marker: Option<&str>,
    ) -> Result<(KeyMetadata, Page<KeyMaterialEntry>), KmsError> {
        let limit = page::limit(limit, 100, 1000)?;
        let key = self.resolve_key(account, key_ref)?;
        let meta = key.meta.clone();
        require_not_pending_deletion(&meta)?;
        if all_material {
            require_symmetric(&meta)?;
        }
        let page = page::paginate(
            material_entries(&key, all_material)?,
            |e| format!("{:010}", e.version),
            marker,
            limit,
        )?;
        Ok((meta, page))
    }
}

/// Where a key material stands (AWS `KeyMaterialState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMaterialState {
    /// Encrypts and decrypts.
    Current,
    /// Only decrypts.
    NonCurrent,
    /// Imported for on-demand rotation, not yet current.
    PendingRotation,
}

/// One key material of ListKeyRotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMaterialEntry {
    /// The backing version.
    pub version: u32,
    /// Its id.
    pub material_id: KeyMaterialId,
    /// Current, non-current or pending rotation.
    pub state: KeyMaterialState,
    /// For imported material: whether it is in keyfence now (IMPORTED) or
    /// was deleted or expired (PENDING_IMPORT).
    pub imported: Option<bool>,
    /// For imported material: its expiration model, where known.
    pub expiration_model: Option<ExpirationModel>,
    /// For imported material that expires: when.
    pub valid_to: Option<Timestamp>,
    /// The rotation that made it, if one did.
    pub rotation: Option<RotationRecord>,
}

/// The materials of `key` that ListKeyRotations reports, oldest first.
fn material_entries(key: &CachedKey, all: bool) -> Result<Vec<KeyMaterialEntry>, KmsError> {
    let meta = &key.meta;
    let external = meta.origin == Origin::External;
    let import = meta.import.as_ref();
    let pending = import.and_then(|i| i.pending_rotation.as_ref());
    let current = meta.current_version.max(1);
    let entry = |version: u32, rotation: Option<RotationRecord>| -> Result<_, KmsError> {
        let is_pending = pending.is_some_and(|p| p.version == version);
        let state = if is_pending {
            KeyMaterialState::PendingRotation
        } else if version == current {
            KeyMaterialState::Current
        } else {
            KeyMaterialState::NonCurrent
        };
        let (expiration_model, valid_to) = match (pending, state) {
            (Some(p), KeyMaterialState::PendingRotation) => (Some(p.expiration_model), p.valid_to),
            (_, KeyMaterialState::Current) => (
                import.and_then(|i| i.expiration_model),
                import.and_then(|i| i.valid_to),
            ),
            _ => (None, None),
        };
        Ok(KeyMaterialEntry {
            version,
            material_id: KeyMaterialId::of(&meta.id, version)?,
            state,
            imported: external.then(|| key.versions.get(&version).is_some()),
            expiration_model: expiration_model.filter(|_| external),
            valid_to: valid_to.filter(|_| external),
            rotation,
        })
    };
    let mut out = Vec::new();
    let first_is_rotation = meta.rotations.iter().any(|r| r.version == 1);
    if all
        && !first_is_rotation
        && (!external || import.is_some_and(|i| i.material_commitment.is_some()))
    {
        out.push(entry(1, None)?);
    }
    for r in &meta.rotations {
        out.push(entry(r.version, Some(r.clone()))?);
    }
    if let (true, Some(p)) = (all, pending) {
        out.push(entry(p.version, None)?);
    }
    Ok(out)
}
