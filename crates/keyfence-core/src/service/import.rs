//! Imported key material (origin EXTERNAL): GetParametersForImport,
//! ImportKeyMaterial, DeleteImportedKeyMaterial, and expiry.

use keyfence_crypto::asym::{self, xwing, PrivateKey};
use keyfence_crypto::{ct, kdf, rand, Secret};

use super::cache::CachedKey;
use super::lifecycle::require_not_pending_deletion;
use super::material::Material;
use super::writes::KeyChange;
use super::Kms;
use crate::clock::Timestamp;
use crate::model::{
    ExpirationModel, ImportExpiry, ImportState, ImportType, ImportWrapping, KeyMetadata, KeySpec,
    KeyState, Origin, PendingImportParameters, PendingRotation,
};
use crate::{
    CiphertextProblem, Invalid, KeyId, KeyMaterialId, KmsError, Missing, StateRefusal, Unsupported,
};

/// How long import parameters stay valid (AWS: 24 hours).
const IMPORT_PARAMETERS_VALID_MS: i64 = 24 * 3_600_000;
/// Furthest ValidTo AWS accepts: 365 days ahead.
const MAX_VALID_TO_DAYS: u32 = 365;
pub(super) const WRAPPING_KEY_LABEL: &[u8] = b"keyfence/v1/import-wrapping-key/";
const COMMITMENT_INFO: &[u8] = b"keyfence/v1/imported-material-commitment";

/// Result of GetParametersForImport.
#[derive(Debug)]
pub struct ImportParameters {
    /// The key.
    pub key_arn: String,
    /// The opaque single-use token.
    pub import_token: Vec<u8>,
    /// The wrapping public key: SubjectPublicKeyInfo DER for RSA, the raw
    /// 1216-byte X-Wing public key for the post-quantum wrapping.
    pub public_key: Vec<u8>,
    /// When the token expires.
    pub valid_to: Timestamp,
}

/// A freshly generated wrapping key: its private bytes and what the caller gets.
struct WrappingKey {
    private: Secret,
    public: Vec<u8>,
}

/// Refuses an RSA wrapping key spec AWS does not offer for import.
fn check_wrapping(wrapping: ImportWrapping) -> Result<(), KmsError> {
    match wrapping {
        ImportWrapping::Rsa { spec, .. } if !spec.is_wrapping_key_spec() => {
            Err(KmsError::Validation(Invalid::NotWrappingKeySpec(spec)))
        }
        _ => Ok(()),
    }
}

impl WrappingKey {
    fn generate(wrapping: ImportWrapping) -> Result<WrappingKey, KmsError> {
        match wrapping {
            ImportWrapping::Rsa { spec, .. } => {
                let failed = KmsError::internal_crypto("wrapping key");
                let key = PrivateKey::generate(spec).map_err(failed)?;
                let public = key
                    .public_key_der()
                    .map_err(KmsError::internal_crypto("wrapping public key"))?;
                Ok(WrappingKey {
                    public,
                    private: Secret::new(key.to_bytes().to_vec()),
                })
            }
            ImportWrapping::XWing => {
                let key = xwing::XWingPrivateKey::generate()
                    .map_err(KmsError::internal_crypto("X-Wing wrapping key"))?;
                Ok(WrappingKey {
                    public: key.public_key().to_vec(),
                    private: Secret::new(key.to_bytes().to_vec()),
                })
            }
        }
    }

    /// Unwraps material wrapped to the wrapping key whose private bytes are `private`.
    fn unwrap(
        wrapping: ImportWrapping,
        private: &[u8],
        wrapped: &[u8],
    ) -> Result<Secret, keyfence_crypto::CryptoError> {
        match wrapping {
            ImportWrapping::Rsa { spec, algorithm } => {
                asym::unwrap_import(&PrivateKey::from_bytes(spec, private)?, algorithm, wrapped)
            }
            ImportWrapping::XWing => {
                xwing::unwrap_key_material(&xwing::XWingPrivateKey::from_bytes(private)?, wrapped)
            }
        }
    }
}

fn require_external(meta: &KeyMetadata) -> Result<(), KmsError> {
    if meta.origin != Origin::External {
        return Err(KmsError::UnsupportedOperation(Unsupported::NotExternal {
            key: meta.arn(),
        }));
    }
    Ok(())
}

fn commitment(key_id: &KeyId, material: &[u8]) -> Result<Vec<u8>, KmsError> {
    kdf::derive::<32>(material, key_id.as_bytes(), &[COMMITMENT_INFO])
        .map(|c| c.to_vec())
        .map_err(KmsError::internal_crypto("material commitment"))
}

/// Checks the expiry ImportKeyMaterial asks for: ValidTo in the future, at
/// most 365 days away.
fn expiry(
    now: Timestamp,
    expiry: ImportExpiry,
) -> Result<(ExpirationModel, Option<Timestamp>), KmsError> {
    match expiry {
        ImportExpiry::Never => Ok((ExpirationModel::DoesNotExpire, None)),
        ImportExpiry::At(t) if t <= now || t > now.plus_days(MAX_VALID_TO_DAYS) => {
            Err(KmsError::Validation(Invalid::ValidTo {
                max_days: MAX_VALID_TO_DAYS,
            }))
        }
        ImportExpiry::At(t) => Ok((ExpirationModel::Expires, Some(t))),
    }
}

impl Kms {
    /// GetParametersForImport: a fresh wrapping key pair and single-use token, valid 24 hours.
    pub fn get_parameters_for_import(
        &self,
        account: &str,
        key_ref: &str,
        wrapping: ImportWrapping,
    ) -> Result<ImportParameters, KmsError> {
        check_wrapping(wrapping)?;
        let wrapping_key = WrappingKey::generate(wrapping)?;
        let token = rand::bytes(32).map_err(KmsError::internal_crypto("import token"))?;
        let valid_to = Timestamp(self.now().0 + IMPORT_PARAMETERS_VALID_MS);
        let meta = self.update_metadata(account, key_ref, |m| {
            require_external(m)?;
            require_not_pending_deletion(m)?;
            // A symmetric key with material may take new material for rotation.
            if m.state != KeyState::PendingImport && m.spec != KeySpec::SymmetricDefault {
                return Err(KmsError::InvalidState {
                    key: m.arn(),
                    refusal: StateRefusal::HasKeyMaterial,
                });
            }
            let domain = self.domain();
            let wrapped =
                domain.wrap_secret(WRAPPING_KEY_LABEL, &m.id, 0, wrapping_key.private.expose())?;
            m.import.get_or_insert_with(ImportState::default).pending =
                Some(PendingImportParameters {
                    token: token.clone(),
                    wrapped_private_key: wrapped,
                    domain_key_id: domain.current,
                    wrapping,
                    valid_to,
                });
            Ok(())
        })?;
        Ok(ImportParameters {
            key_arn: meta.arn(),
            import_token: token,
            public_key: wrapping_key.public,
            valid_to,
        })
    }

    /// ImportKeyMaterial: unwraps the material with the pending wrapping key and
    /// consumes the token. `ExistingKeyMaterial` (the default once material was
    /// imported) brings the key's current material back, or changes its expiry;
    /// `NewKeyMaterial` into a symmetric key that has material adds material
    /// pending rotation, which RotateKeyOnDemand makes current. Returns the key
    /// and the id of the material imported.
    #[allow(clippy::too_many_arguments)]
    pub fn import_key_material(
        &self,
        account: &str,
        key_ref: &str,
        import_token: &[u8],
        encrypted_material: &[u8],
        requested_expiry: ImportExpiry,
        import_type: Option<ImportType>,
        material_id: Option<&str>,
    ) -> Result<(KeyMetadata, KeyMaterialId), KmsError> {
        let now = self.now();
        let (model, valid_to) = expiry(now, requested_expiry)?;
        if import_type == Some(ImportType::NewKeyMaterial) && material_id.is_some() {
            return Err(KmsError::Validation(Invalid::MaterialIdWithNewImport));
        }
        let key = self.resolve_key(account, key_ref)?;
        let request = ImportRequest {
            token: import_token,
            encrypted: encrypted_material,
            now,
            model,
            valid_to,
            import_type,
            material_id,
        };
        let mut imported = 0;
        let key = self.change_kept_key(key, |k| {
            let (change, version) = self.plan_import(k, &request)?;
            imported = version;
            Ok(Some(change))
        })?;
        Ok((key.meta.clone(), KeyMaterialId::of(&key.meta.id, imported)?))
    }

    /// Checks an import against `key` and returns the change it makes and the
    /// version the material goes to.
    fn plan_import(
        &self,
        key: &CachedKey,
        request: &ImportRequest<'_>,
    ) -> Result<(KeyChange, u32), KmsError> {
        let mut meta = key.meta.clone();
        require_external(&meta)?;
        require_not_pending_deletion(&meta)?;
        self.require_inside(&meta)?;
        let import = meta.import.get_or_insert_with(ImportState::default);
        let pending = import
            .pending
            .clone()
            .filter(|p| ct::eq(&p.token, request.token))
            .ok_or(KmsError::InvalidImportToken)?;
        if pending.valid_to <= request.now {
            return Err(KmsError::ExpiredImportToken);
        }
        let material = self.unwrap_imported(&meta.id, &pending, request.encrypted)?;
        let parsed = Material::from_bytes(meta.spec, material.expose()).map_err(|detail| {
            KmsError::MaterialNotOfSpec {
                spec: meta.spec,
                detail,
            }
        })?;
        let commit = commitment(&meta.id, material.expose())?;
        let import = meta.import.get_or_insert_with(ImportState::default);
        let has_material = import.material_commitment.is_some();
        let kind = request.import_type.unwrap_or(if has_material {
            ImportType::ExistingKeyMaterial
        } else {
            ImportType::NewKeyMaterial
        });
        if kind == ImportType::NewKeyMaterial && has_material {
            // New material for rotation: symmetric keys with material only.
            if meta.spec != KeySpec::SymmetricDefault || meta.state == KeyState::PendingImport {
                return Err(KmsError::InvalidState {
                    key: meta.arn(),
                    refusal: StateRefusal::HasKeyMaterial,
                });
            }
            if import
                .material_commitment
                .as_ref()
                .is_some_and(|c| ct::eq(c, &commit))
            {
                return Err(KmsError::IncorrectKeyMaterial);
            }
            let newest = key.versions.to_map().keys().max().copied().unwrap_or(0);
            let version = import
                .pending_rotation
                .as_ref()
                .map_or(newest.max(meta.current_version) + 1, |p| p.version);
            import.pending = None;
            import.pending_rotation = Some(PendingRotation {
                version,
                commitment: commit,
                expiration_model: request.model,
                valid_to: request.valid_to,
            });
            let mut versions = key.versions.to_map();
            versions.insert(version, parsed);
            return Ok((KeyChange::ReplaceVersions(meta, versions), version));
        }
        // The current material (again): it must be the same bytes.
        let version = meta.current_version.max(1);
        if let Some(given) = request.material_id {
            if KeyMaterialId::of(&meta.id, version)?.to_hex() != given {
                return Err(KmsError::IncorrectKeyMaterial);
            }
        }
        if import
            .material_commitment
            .as_ref()
            .is_some_and(|c| !ct::eq(c, &commit))
        {
            return Err(KmsError::IncorrectKeyMaterial);
        }
        import.material_commitment = Some(commit);
        import.pending = None;
        import.expiration_model = Some(request.model);
        import.valid_to = request.valid_to;
        if meta.state == KeyState::PendingImport {
            meta.state = KeyState::Enabled;
        }
        meta.current_version = version;
        let mut versions = key.versions.to_map();
        versions.insert(version, parsed);
        Ok((KeyChange::ReplaceVersions(meta, versions), version))
    }

    fn unwrap_imported(
        &self,
        key_id: &KeyId,
        pending: &PendingImportParameters,
        encrypted: &[u8],
    ) -> Result<Secret, KmsError> {
        let wrapping_bytes = self
            .domain_keys_with(pending.domain_key_id)?
            .unwrap_secret(
                WRAPPING_KEY_LABEL,
                key_id,
                0,
                pending.domain_key_id,
                &pending.wrapped_private_key,
            )?;
        WrappingKey::unwrap(pending.wrapping, wrapping_bytes.expose(), encrypted)
            .map_err(|_| KmsError::InvalidCiphertext(CiphertextProblem::ImportUnwrap))
    }

    /// DeleteImportedKeyMaterial: the current material (or the material
    /// `material_id` names: the current or the one pending rotation) is
    /// destroyed. Without its current material the key waits for a re-import;
    /// its other versions stay. Returns the key and the id of what was deleted.
    pub fn delete_imported_key_material(
        &self,
        account: &str,
        key_ref: &str,
        material_id: Option<&str>,
    ) -> Result<(KeyMetadata, Option<KeyMaterialId>), KmsError> {
        let key = self.resolve_key(account, key_ref)?;
        let mut deleted = None;
        let key = self.change_kept_key(key, |k| {
            require_external(&k.meta)?;
            require_not_pending_deletion(&k.meta)?;
            let current = KeyMaterialId::of(&k.meta.id, k.meta.current_version.max(1))?;
            let pending = k
                .meta
                .import
                .as_ref()
                .and_then(|i| i.pending_rotation.as_ref())
                .map(|p| KeyMaterialId::of(&k.meta.id, p.version).map(|id| (p.version, id)))
                .transpose()?;
            match (material_id, pending) {
                (Some(given), Some((version, id))) if id.to_hex() == given => {
                    deleted = Some(id);
                    Ok(Some(drop_pending_rotation(k, version)))
                }
                (Some(given), _) if current.to_hex() != given => {
                    Err(KmsError::NotFound(Missing::KeyMaterial {
                        arn: k.meta.arn(),
                        given: given.to_string(),
                    }))
                }
                _ => {
                    deleted = k.versions.get(&k.meta.current_version).map(|_| current);
                    Ok(Some(drop_imported_material(k)))
                }
            }
        })?;
        Ok((key.meta.clone(), deleted))
    }

    /// Deletes imported material whose ValidTo has passed (run by the sweeper).
    pub(super) fn expire_imported_material(&self, id: &KeyId) -> Result<(), KmsError> {
        let Some(key) = self.read_cache().key(id) else {
            return Ok(());
        };
        let now = self.now();
        self.change_key(key, |k| {
            Ok(k.meta
                .is_import_expired(now)
                .then(|| drop_imported_material(k)))
        })
        .map(drop)
    }
}

/// ImportKeyMaterial's request, as [`Kms::plan_import`] checks it.
struct ImportRequest<'a> {
    token: &'a [u8],
    encrypted: &'a [u8],
    now: Timestamp,
    model: ExpirationModel,
    valid_to: Option<Timestamp>,
    import_type: Option<ImportType>,
    material_id: Option<&'a str>,
}

/// The change that removes a key's current imported material (deletion or
/// expiry): the key waits for it again; its other versions stay, so that
/// ciphertexts under them decrypt once the current material is back.
fn drop_imported_material(key: &CachedKey) -> KeyChange {
    let mut meta = key.meta.clone();
    meta.state = KeyState::PendingImport;
    let mut versions = key.versions.to_map();
    versions.remove(&meta.current_version);
    if versions.is_empty() {
        meta.current_version = 0;
    }
    if let Some(import) = meta.import.as_mut() {
        import.valid_to = None;
        import.expiration_model = None;
    }
    KeyChange::ReplaceVersions(meta, versions)
}

/// The change that removes material imported for rotation and not yet made current.
fn drop_pending_rotation(key: &CachedKey, version: u32) -> KeyChange {
    let mut meta = key.meta.clone();
    if let Some(import) = meta.import.as_mut() {
        import.pending_rotation = None;
    }
    let mut versions = key.versions.to_map();
    versions.remove(&version);
    KeyChange::ReplaceVersions(meta, versions)
}
