//! Multi-Region keys: a primary (`mrk-` id) and its replicas in other
//! regions share the key id, spec, usage, origin, material and rotation;
//! each has its own description, tags, key policy, aliases and state.
//!
//! Each member is a key record of its own, bound to its region (see
//! [`KeyId`]); the record says whether it is the primary or a replica. The
//! primary is the only member that is replicated, rotated or re-homed, and
//! a rotation of the primary is copied to every replica, so a ciphertext
//! made under any member decrypts under every other.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::cache::CachedKey;
use super::material::Material;
use super::writes::KeyChange;
use super::{tags, Kms};
use crate::model::{ImportState, KeyMetadata, KeyState, MultiRegionKeyType};
use crate::{KeyId, KmsError, Region};

/// Why a multi-Region operation is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiRegionRefusal {
    /// The key is not a multi-Region key (an UnsupportedOperation).
    NotMultiRegion {
        /// The key's ARN.
        key: String,
    },
    /// The operation runs only on the primary, and this is a replica (an
    /// UnsupportedOperation): ReplicateKey, UpdatePrimaryRegion, rotation.
    Replica {
        /// The replica's ARN.
        key: String,
    },
    /// ReplicateKey into the primary's own region (a ValidationException).
    SameRegion {
        /// The region.
        region: String,
    },
    /// A region this node (cluster) does not serve (an UnsupportedOperation).
    RegionNotServed {
        /// The region asked for.
        region: String,
    },
    /// The key already has a member in the region (an AlreadyExists).
    ReplicaExists {
        /// The existing member's ARN.
        key: String,
    },
    /// UpdatePrimaryRegion to a region with no replica (a NotFound).
    NoReplica {
        /// The ARN the replica would have.
        key: String,
    },
}

/// One member of a multi-Region key, as MultiRegionConfiguration lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiRegionMember {
    /// Its ARN.
    pub arn: String,
    /// Its region.
    pub region: String,
}

/// DescribeKey's MultiRegionConfiguration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiRegionConfiguration {
    /// This key's role.
    pub key_type: MultiRegionKeyType,
    /// The primary (`None` only while UpdatePrimaryRegion is between its two writes).
    pub primary: Option<MultiRegionMember>,
    /// The replicas, by region.
    pub replicas: Vec<MultiRegionMember>,
}

/// Parameters of ReplicateKey besides the primary and the region.
#[derive(Debug, Clone, Default)]
pub struct ReplicateKeyInput {
    /// The replica's description (default empty).
    pub description: Option<String>,
    /// The replica's tags (tags are not shared among members).
    pub tags: Vec<(String, String)>,
}

fn refused(r: MultiRegionRefusal) -> KmsError {
    KmsError::MultiRegion(r)
}

/// Refuses a replica (for operations driven from the primary only).
pub(super) fn require_not_replica(meta: &KeyMetadata) -> Result<(), KmsError> {
    if meta.multi_region == Some(MultiRegionKeyType::Replica) {
        return Err(refused(MultiRegionRefusal::Replica { key: meta.arn() }));
    }
    Ok(())
}

/// Refuses anything but a multi-Region primary.
fn require_primary(meta: &KeyMetadata) -> Result<(), KmsError> {
    match meta.multi_region {
        Some(MultiRegionKeyType::Primary) => Ok(()),
        Some(MultiRegionKeyType::Replica) => {
            Err(refused(MultiRegionRefusal::Replica { key: meta.arn() }))
        }
        None => Err(refused(MultiRegionRefusal::NotMultiRegion {
            key: meta.arn(),
        })),
    }
}

impl Kms {
    /// A served region named by a request member (ReplicaRegion, PrimaryRegion).
    fn served_region(&self, name: &str) -> Result<Region, KmsError> {
        Region::new(name)
            .filter(|_| self.serves(name))
            .ok_or_else(|| {
                refused(MultiRegionRefusal::RegionNotServed {
                    region: name.to_string(),
                })
            })
    }

    /// The live members of `meta`'s multi-Region key (itself included), by region.
    fn members(&self, meta: &KeyMetadata) -> Vec<Arc<CachedKey>> {
        let now = self.now();
        let mut members: Vec<_> = self
            .read_cache()
            .all_keys()
            .into_iter()
            .filter(|k| {
                k.meta.id.as_bytes() == meta.id.as_bytes()
                    && k.meta.account == meta.account
                    && !k.meta.is_due_for_destruction(now)
            })
            .collect();
        members.sort_by(|a, b| a.meta.region.cmp(&b.meta.region));
        members
    }

    /// The member of `id`'s multi-Region key in `region`, from the replica
    /// or (on a shared store, not synced yet) the store.
    fn member_in(&self, id: KeyId, region: Region) -> Result<Option<Arc<CachedKey>>, KmsError> {
        let id = id.in_region(region);
        if let Some(k) = self.read_cache().key(&id) {
            return Ok(Some(k));
        }
        match self.store.load_key(&id)? {
            Some(stored) if self.store.is_shared() => {
                Ok(Some(self.publish(self.cached_key(stored)?)))
            }
            _ => Ok(None),
        }
    }

    /// DescribeKey's MultiRegionConfiguration of `meta` (`None` for a single-Region key).
    pub fn multi_region_configuration(
        &self,
        meta: &KeyMetadata,
    ) -> Option<MultiRegionConfiguration> {
        let key_type = meta.multi_region?;
        let member = |m: &KeyMetadata| MultiRegionMember {
            arn: m.arn(),
            region: m.region.clone(),
        };
        let mut primary = None;
        let mut replicas = Vec::new();
        for k in self.members(meta) {
            match k.meta.multi_region {
                Some(MultiRegionKeyType::Primary) => primary = Some(member(&k.meta)),
                Some(MultiRegionKeyType::Replica) => replicas.push(member(&k.meta)),
                None => {}
            }
        }
        Some(MultiRegionConfiguration {
            key_type,
            primary,
            replicas,
        })
    }

    /// ReplicateKey: a replica of the multi-Region primary `key_ref` (of the
    /// request's region) in `replica_region`, with the primary's material,
    /// versions and rotation, and its own description and tags. Returns the
    /// replica's metadata.
    pub fn replicate_key(
        &self,
        account: &str,
        key_ref: &str,
        replica_region: &str,
        input: ReplicateKeyInput,
    ) -> Result<KeyMetadata, KmsError> {
        let primary = self.resolve_key(account, key_ref)?;
        require_primary(&primary.meta)?;
        let region = self.served_region(replica_region)?;
        if region.as_str() == primary.meta.region {
            return Err(refused(MultiRegionRefusal::SameRegion {
                region: replica_region.to_string(),
            }));
        }
        if let Some(existing) = self.member_in(primary.meta.id, region)? {
            return Err(refused(MultiRegionRefusal::ReplicaExists {
                key: existing.meta.arn(),
            }));
        }
        let description = input.description.unwrap_or_default();
        super::lifecycle::check_description(&description)?;
        let mut tag_map = BTreeMap::new();
        tags::apply(&mut tag_map, input.tags)?;
        let p = &primary.meta;
        let external = p.import.is_some();
        let meta = KeyMetadata {
            id: p.id.in_region(region),
            account: p.account.clone(),
            region: region.as_str().to_string(),
            description,
            created: self.now(),
            state: match p.state {
                KeyState::PendingImport => KeyState::PendingImport,
                _ if external && primary.versions.is_empty() => KeyState::PendingImport,
                _ => KeyState::Enabled,
            },
            deletion_date: None,
            pending_window_days: None,
            spec: p.spec,
            usage: p.usage,
            origin: p.origin,
            rotation: p.rotation.clone(),
            rotations: p.rotations.clone(),
            current_version: p.current_version,
            tags: tag_map,
            import: p.import.as_ref().map(|i| ImportState {
                pending: None,
                ..i.clone()
            }),
            fence: p.fence.clone(),
            multi_region: Some(MultiRegionKeyType::Replica),
        };
        let versions: BTreeMap<u32, Material> = (1..=p.current_version)
            .filter_map(|v| primary.versions.get(&v).map(|m| (v, m.clone())))
            .collect();
        let records = versions
            .iter()
            .map(|(v, m)| self.wrap_version(&meta, *v, m))
            .collect::<Result<Vec<_>, _>>()?;
        self.store.insert_key(&meta, &records)?;
        self.publish(CachedKey::new(meta.clone(), versions, 1));
        Ok(meta)
    }

    /// UpdatePrimaryRegion: the replica in `primary_region` becomes the
    /// primary and the primary `key_ref` a replica. The old primary is
    /// demoted first, so that there is never more than one primary to
    /// replicate or rotate from; if the promotion then fails, it is promoted back.
    pub fn update_primary_region(
        &self,
        account: &str,
        key_ref: &str,
        primary_region: &str,
    ) -> Result<(), KmsError> {
        let primary = self.resolve_key(account, key_ref)?;
        require_primary(&primary.meta)?;
        let region = self.served_region(primary_region)?;
        if region.as_str() == primary.meta.region {
            return Ok(());
        }
        let Some(replica) = self
            .member_in(primary.meta.id, region)?
            .filter(|r| r.meta.account == account && !r.meta.is_due_for_destruction(self.now()))
        else {
            return Err(refused(MultiRegionRefusal::NoReplica {
                key: crate::ids::key_arn(primary_region, account, &primary.meta.id),
            }));
        };
        self.set_role(primary.clone(), MultiRegionKeyType::Replica)?;
        if let Err(e) = self.set_role(replica, MultiRegionKeyType::Primary) {
            let _ = self.set_role(primary, MultiRegionKeyType::Primary);
            return Err(e);
        }
        Ok(())
    }

    fn set_role(&self, key: Arc<CachedKey>, role: MultiRegionKeyType) -> Result<(), KmsError> {
        self.change_kept_key(key, |k| {
            let mut meta = k.meta.clone();
            meta.multi_region = Some(role);
            Ok((meta != k.meta).then_some(KeyChange::Metadata(meta)))
        })
        .map(drop)
    }

    /// Copies the primary `id`'s rotation settings, rotation history and
    /// new material versions to each of its replicas (after a rotation or a
    /// change of its schedule). A replica this node cannot write is left for
    /// the next rotation; it still decrypts what was made under the versions it has.
    pub(super) fn sync_replicas(&self, id: &KeyId) -> Result<(), KmsError> {
        let Some(primary) = self.read_cache().key(id) else {
            return Ok(());
        };
        if primary.meta.multi_region != Some(MultiRegionKeyType::Primary) {
            return Ok(());
        }
        // Each pass adds at most one version to each replica.
        for _ in 0..=primary.meta.current_version {
            if !self.sync_pass(&primary)? {
                break;
            }
        }
        Ok(())
    }

    /// One pass of [`Self::sync_replicas`]; whether a replica is still behind.
    fn sync_pass(&self, primary: &CachedKey) -> Result<bool, KmsError> {
        for replica in self.members(&primary.meta) {
            if replica.meta.multi_region != Some(MultiRegionKeyType::Replica) {
                continue;
            }
            self.change_key(replica, |r| {
                let mut meta = r.meta.clone();
                meta.rotation = primary.meta.rotation.clone();
                meta.rotations = primary.meta.rotations.clone();
                let missing = (1..=primary.meta.current_version)
                    .find(|v| r.versions.get(v).is_none() && primary.versions.get(v).is_some());
                match missing {
                    Some(v) => {
                        meta.current_version = meta.current_version.max(v);
                        let material =
                            primary.versions.get(&v).cloned().ok_or_else(|| {
                                KmsError::Internal("primary version vanished".into())
                            })?;
                        Ok(Some(KeyChange::AddVersion(meta, v, material)))
                    }
                    None => {
                        meta.current_version = primary.meta.current_version;
                        Ok((meta != r.meta).then_some(KeyChange::Metadata(meta)))
                    }
                }
            })?;
        }
        Ok(self.members(&primary.meta).iter().any(|r| {
            r.meta.multi_region == Some(MultiRegionKeyType::Replica)
                && (r.meta.current_version < primary.meta.current_version
                    || r.meta.rotation != primary.meta.rotation)
        }))
    }
}
