//! Imported key material (origin EXTERNAL): GetParametersForImport,
//! ImportKeyMaterial, DeleteImportedKeyMaterial, and expiry.

use std::collections::BTreeMap;

use keyfence_crypto::asym::{self, xwing, PrivateKey};
use keyfence_crypto::{ct, kdf, rand, Secret};

use super::cache::CachedKey;
use super::lifecycle::require_not_pending_deletion;
use super::material::Material;
use super::writes::KeyChange;
use super::Kms;
use crate::clock::Timestamp;
use crate::model::{
    ExpirationModel, ImportExpiry, ImportState, ImportWrapping, KeyMetadata, KeyState, Origin,
    PendingImportParameters,
};
use crate::{CiphertextProblem, Invalid, KeyId, KmsError, StateRefusal, Unsupported};

/// How long import parameters stay valid (AWS: 24 hours).
const IMPORT_PARAMETERS_VALID_MS: i64 = 24 * 3_600_000;
/// Furthest ValidTo AWS accepts: 365 days ahead.
const MAX_VALID_TO_DAYS: u32 = 365;
const WRAPPING_KEY_LABEL: &[u8] = b"keyfence/v1/import-wrapping-key/";
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
            if m.state != KeyState::PendingImport {
                return Err(KmsError::InvalidState {
                    key: m.arn(),
                    refusal: StateRefusal::HasKeyMaterial,
                });
            }
            let wrapped = self.domain.wrap_secret(
                WRAPPING_KEY_LABEL,
                &m.id,
                0,
                wrapping_key.private.expose(),
            )?;
            m.import.get_or_insert_with(ImportState::default).pending =
                Some(PendingImportParameters {
                    token: token.clone(),
                    wrapped_private_key: wrapped,
                    domain_key_id: self.domain.current,
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

    /// ImportKeyMaterial: unwraps the material with the pending wrapping key,
    /// consumes the token, and makes the key usable.
    pub fn import_key_material(
        &self,
        account: &str,
        key_ref: &str,
        import_token: &[u8],
        encrypted_material: &[u8],
        requested_expiry: ImportExpiry,
    ) -> Result<KeyMetadata, KmsError> {
        let now = self.now();
        let (model, valid_to) = expiry(now, requested_expiry)?;
        let key = self.resolve_key(account, key_ref)?;
        let key = self.change_kept_key(key, |k| {
            self.plan_import(k, import_token, encrypted_material, now, model, valid_to)
                .map(Some)
        })?;
        Ok(key.meta.clone())
    }

    /// Checks an import against `key` and returns the change that makes the key usable.
    fn plan_import(
        &self,
        key: &CachedKey,
        import_token: &[u8],
        encrypted_material: &[u8],
        now: Timestamp,
        model: ExpirationModel,
        valid_to: Option<Timestamp>,
    ) -> Result<KeyChange, KmsError> {
        let mut meta = key.meta.clone();
        require_external(&meta)?;
        require_not_pending_deletion(&meta)?;
        self.require_inside(&meta)?;
        if meta.state != KeyState::PendingImport {
            return Err(KmsError::InvalidState {
                key: meta.arn(),
                refusal: StateRefusal::HasKeyMaterial,
            });
        }
        let import = meta.import.get_or_insert_with(ImportState::default);
        let pending = import
            .pending
            .clone()
            .filter(|p| ct::eq(&p.token, import_token))
            .ok_or(KmsError::InvalidImportToken)?;
        if pending.valid_to <= now {
            return Err(KmsError::ExpiredImportToken);
        }
        let material = self.unwrap_imported(&meta.id, &pending, encrypted_material)?;
        let parsed = Material::from_bytes(meta.spec, material.expose()).map_err(|detail| {
            KmsError::MaterialNotOfSpec {
                spec: meta.spec,
                detail,
            }
        })?;
        let commit = commitment(&meta.id, material.expose())?;
        if import
            .material_commitment
            .as_ref()
            .is_some_and(|c| !ct::eq(c, &commit))
        {
            return Err(KmsError::IncorrectKeyMaterial);
        }
        import.material_commitment = Some(commit);
        import.pending = None;
        import.expiration_model = Some(model);
        import.valid_to = valid_to;
        meta.state = KeyState::Enabled;
        meta.current_version = 1;
        Ok(KeyChange::ReplaceVersions(
            meta,
            BTreeMap::from([(1, parsed)]),
        ))
    }

    fn unwrap_imported(
        &self,
        key_id: &KeyId,
        pending: &PendingImportParameters,
        encrypted: &[u8],
    ) -> Result<Secret, KmsError> {
        let wrapping_bytes = self.domain.unwrap_secret(
            WRAPPING_KEY_LABEL,
            key_id,
            0,
            pending.domain_key_id,
            &pending.wrapped_private_key,
        )?;
        WrappingKey::unwrap(pending.wrapping, wrapping_bytes.expose(), encrypted)
            .map_err(|_| KmsError::InvalidCiphertext(CiphertextProblem::ImportUnwrap))
    }

    /// DeleteImportedKeyMaterial: the material is destroyed; the key waits for a re-import.
    pub fn delete_imported_key_material(
        &self,
        account: &str,
        key_ref: &str,
    ) -> Result<KeyMetadata, KmsError> {
        let key = self.resolve_key(account, key_ref)?;
        let key = self.change_kept_key(key, |k| {
            require_external(&k.meta)?;
            require_not_pending_deletion(&k.meta)?;
            Ok(Some(drop_imported_material(k)))
        })?;
        Ok(key.meta.clone())
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

/// The change that removes a key's imported material (deletion or expiry).
fn drop_imported_material(key: &CachedKey) -> KeyChange {
    let mut meta = key.meta.clone();
    meta.state = KeyState::PendingImport;
    meta.current_version = 0;
    if let Some(import) = meta.import.as_mut() {
        import.valid_to = None;
        import.expiration_model = None;
    }
    KeyChange::ReplaceVersions(meta, BTreeMap::new())
}
