//! Backing key material of any spec, and its wrapping under domain keys.

use std::collections::HashMap;
use std::sync::Arc;

use keyfence_crypto::asym::PrivateKey;
use keyfence_crypto::{wrap, CryptoError, SymmetricKey};

use crate::clock::Timestamp;
use crate::fence::{unwrap_backing_key, wrap_backing_key, PolicyPrivateKey, PolicyPublicKey};
use crate::model::KeySpec;
use crate::store::VersionRecord;
use crate::{KeyId, KmsError};

/// One version's unwrapped material.
#[derive(Clone)]
pub(crate) enum Material {
    /// A symmetric backing key.
    Symmetric(SymmetricKey),
    /// An asymmetric, HMAC or KEM private key.
    Private(Arc<PrivateKey>),
}

impl Material {
    /// Fresh material of `spec`.
    pub fn generate(spec: KeySpec) -> Result<Self, KmsError> {
        let failed = KmsError::internal_crypto("key generation");
        Ok(match spec {
            KeySpec::SymmetricDefault => Self::Symmetric(SymmetricKey::generate().map_err(failed)?),
            KeySpec::Asymmetric(s) => {
                Self::Private(Arc::new(PrivateKey::generate(s).map_err(failed)?))
            }
        })
    }

    /// Parses stored or imported bytes as material of `spec`.
    pub fn from_bytes(spec: KeySpec, bytes: &[u8]) -> Result<Self, CryptoError> {
        Ok(match spec {
            KeySpec::SymmetricDefault => Self::Symmetric(SymmetricKey::from_slice(bytes)?),
            KeySpec::Asymmetric(s) => Self::Private(Arc::new(PrivateKey::from_bytes(s, bytes)?)),
        })
    }

    /// The bytes to wrap.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Self::Symmetric(k) => k.expose(),
            Self::Private(k) => k.to_bytes(),
        }
    }

    /// The symmetric key, if this is one.
    pub fn symmetric(&self) -> Option<&SymmetricKey> {
        match self {
            Self::Symmetric(k) => Some(k),
            Self::Private(_) => None,
        }
    }

    /// The private key, if this is one.
    pub fn private(&self) -> Option<&PrivateKey> {
        match self {
            Self::Symmetric(_) => None,
            Self::Private(k) => Some(k),
        }
    }
}

/// Domain keys: the newest wraps new material, every one held unwraps.
/// Immutable: a rotation, a key added by another node or a destroyed key
/// makes a new set (see `domain_keys`), so a request never waits for one.
pub(crate) struct DomainKeys {
    /// The newest: it wraps new material.
    pub current: u32,
    /// When the newest was created.
    pub created: Timestamp,
    /// Every key held, the newest included.
    pub keys: HashMap<u32, Arc<SymmetricKey>>,
}

impl DomainKeys {
    fn binding(label: &[u8], key_id: &KeyId, version: u32, domain_key_id: u32) -> Vec<u8> {
        let mut b = label.to_vec();
        b.extend_from_slice(key_id.as_bytes());
        b.extend_from_slice(&version.to_be_bytes());
        b.extend_from_slice(&domain_key_id.to_be_bytes());
        b
    }

    fn key(&self, domain_key_id: u32, key_id: &KeyId) -> Result<&SymmetricKey, KmsError> {
        self.keys.get(&domain_key_id).map(|k| &**k).ok_or_else(|| {
            KmsError::Internal(format!("domain key {domain_key_id} of {key_id} is missing"))
        })
    }

    /// Wraps secret bytes that belong to `key_id` under domain key
    /// `domain_key_id`.
    fn wrap_under(
        &self,
        domain_key_id: u32,
        label: &[u8],
        key_id: &KeyId,
        version: u32,
        secret: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        wrap::wrap_bytes(
            self.key(domain_key_id, key_id)?,
            &Self::binding(label, key_id, version, domain_key_id),
            secret,
        )
        .map_err(KmsError::internal_crypto("wrap under the domain key"))
    }

    /// Wraps secret bytes that belong to `key_id` under the current domain key;
    /// `label` says what they are, so one kind can never be unwrapped as another.
    pub fn wrap_secret(
        &self,
        label: &[u8],
        key_id: &KeyId,
        version: u32,
        secret: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        self.wrap_under(self.current, label, key_id, version, secret)
    }

    /// Moves secret bytes wrapped under domain key `from` to the current one.
    pub fn rewrap_secret(
        &self,
        label: &[u8],
        key_id: &KeyId,
        version: u32,
        from: u32,
        wrapped: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        let secret = self.unwrap_secret(label, key_id, version, from, wrapped)?;
        self.wrap_secret(label, key_id, version, secret.expose())
    }

    /// Moves a stored (unfenced) version to the current domain key.
    pub fn rewrap_version(&self, record: &VersionRecord) -> Result<Vec<u8>, KmsError> {
        self.rewrap_secret(
            BACKING_LABEL,
            &record.key_id,
            record.version,
            record.domain_key_id,
            &record.wrapped,
        )
    }

    /// Unwraps what [`Self::wrap_secret`] wrapped.
    pub fn unwrap_secret(
        &self,
        label: &[u8],
        key_id: &KeyId,
        version: u32,
        domain_key_id: u32,
        wrapped: &[u8],
    ) -> Result<keyfence_crypto::Secret, KmsError> {
        wrap::unwrap_bytes(
            self.key(domain_key_id, key_id)?,
            &Self::binding(label, key_id, version, domain_key_id),
            wrapped,
        )
        .map_err(|_| KmsError::Internal(format!("secret of {key_id} v{version} does not unwrap")))
    }

    /// Wraps a version's material into a storable record.
    pub fn wrap(
        &self,
        key_id: &KeyId,
        version: u32,
        material: &Material,
        now: Timestamp,
    ) -> Result<VersionRecord, KmsError> {
        Ok(VersionRecord {
            key_id: *key_id,
            version,
            domain_key_id: self.current,
            wrapped: self.wrap_secret(BACKING_LABEL, key_id, version, material.bytes())?,
            created: now,
        })
    }

    /// Unwraps a stored version of a key of `spec`.
    pub fn unwrap(&self, record: &VersionRecord, spec: KeySpec) -> Result<Material, KmsError> {
        let bytes = self.unwrap_secret(
            BACKING_LABEL,
            &record.key_id,
            record.version,
            record.domain_key_id,
            &record.wrapped,
        )?;
        Material::from_bytes(spec, bytes.expose()).map_err(|e| {
            KmsError::Internal(format!(
                "material of {} v{} is unusable: {e}",
                record.key_id, record.version
            ))
        })
    }
}

impl super::Kms {
    /// Unwraps a stored version of a key of `spec`. Every unwrapping of a
    /// stored version record (at start, after a re-read, from the change
    /// feed) goes through here. A version under a domain key this node does
    /// not hold yet (another node rotated a moment ago) reads the store's
    /// domain keys first.
    pub(super) fn unwrap_version(
        &self,
        record: &VersionRecord,
        spec: KeySpec,
    ) -> Result<Material, KmsError> {
        self.domain_keys_with(record.domain_key_id)?
            .unwrap(record, spec)
    }
}

/// Binding label of backing key material (format of version 1 records).
const BACKING_LABEL: &[u8] = b"keyfence/v1/backing-key/";

/// Binding label of backing key material wrapped under a fence.
const FENCED_LABEL: &[u8] = b"keyfence/v1/fenced-backing-key/";

/// The AAD a fenced key's version is wrapped with.
pub(super) fn fenced_aad(key_id: &KeyId, version: u32) -> Vec<u8> {
    let mut b = FENCED_LABEL.to_vec();
    b.extend_from_slice(key_id.as_bytes());
    b.extend_from_slice(&version.to_be_bytes());
    b
}

/// Wraps a fenced key's version under its fence's policy public key (not a
/// domain key). The record still names the domain key current at the time
/// (`domain_key_id`), which unwrapping does not use: the wrapped bytes say
/// which fence and epoch they need.
pub(crate) fn wrap_fenced(
    public: &PolicyPublicKey,
    key_id: &KeyId,
    version: u32,
    material: &Material,
    domain_key_id: u32,
    now: Timestamp,
) -> Result<VersionRecord, KmsError> {
    let wrapped = wrap_backing_key(public, material.bytes(), &fenced_aad(key_id, version))
        .map_err(|e| KmsError::Internal(format!("wrap under {}: {e}", public.fence())))?;
    Ok(VersionRecord {
        key_id: *key_id,
        version,
        domain_key_id,
        wrapped,
        created: now,
    })
}

/// Unwraps what [`wrap_fenced`] wrapped, with the fence's opened policy key.
pub(crate) fn unwrap_fenced(
    key: &PolicyPrivateKey,
    record: &VersionRecord,
    spec: KeySpec,
) -> Result<Material, KmsError> {
    let bytes = unwrap_backing_key(
        key,
        &record.wrapped,
        &fenced_aad(&record.key_id, record.version),
    )
    .map_err(|e| {
        KmsError::Internal(format!(
            "material of {} v{} does not unwrap under {}: {e}",
            record.key_id,
            record.version,
            key.fence()
        ))
    })?;
    Material::from_bytes(spec, bytes.expose()).map_err(|e| {
        KmsError::Internal(format!(
            "material of {} v{} is unusable: {e}",
            record.key_id, record.version
        ))
    })
}
