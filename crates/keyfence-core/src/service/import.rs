//! Imported key material (origin EXTERNAL): GetParametersForImport,
//! ImportKeyMaterial, DeleteImportedKeyMaterial, and expiry.

use std::collections::BTreeMap;

use keyfence_crypto::asym::{self, xwing, PrivateKey, WrappingAlgorithm};
use keyfence_crypto::{ct, kdf, rand, Secret};

use super::cache::CachedKey;
use super::lifecycle::require_not_pending_deletion;
use super::material::Material;
use super::Kms;
use crate::clock::Timestamp;
use crate::model::{
    ExpirationModel, ImportState, KeyMetadata, KeyState, Origin, PendingImportParameters,
};
use crate::{KeyId, KmsError};

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

/// keyfence's post-quantum wrapping key spec (not in AWS's enum): an X-Wing key.
pub const PQ_WRAPPING_KEY_SPEC: &str = "X25519_ML_KEM_768";
/// keyfence's post-quantum wrapping algorithm (not in AWS's enum): X-Wing
/// (draft-connolly-cfrg-xwing-kem) encapsulation, then AES-256-KWP of the
/// material under the shared secret: `ciphertext (1120) ‖ KWP(material)`.
pub const PQ_WRAPPING_ALGORITHM: &str = "XWING_AES_KEY_WRAP";

/// How the caller will wrap the material.
enum Wrapping {
    /// AWS's RSA wrapping algorithms.
    Rsa {
        spec: asym::KeySpec,
        algorithm: WrappingAlgorithm,
    },
    /// Hybrid post-quantum: X-Wing + AES-KWP.
    XWing,
}

fn parse_wrapping(algorithm: &str, key_spec: &str) -> Result<Wrapping, KmsError> {
    if algorithm == PQ_WRAPPING_ALGORITHM || key_spec == PQ_WRAPPING_KEY_SPEC {
        if (algorithm, key_spec) != (PQ_WRAPPING_ALGORITHM, PQ_WRAPPING_KEY_SPEC) {
            return Err(KmsError::Validation(format!(
                "{PQ_WRAPPING_ALGORITHM} goes with WrappingKeySpec {PQ_WRAPPING_KEY_SPEC}, and only with it"
            )));
        }
        return Ok(Wrapping::XWing);
    }
    let algorithm = WrappingAlgorithm::from_aws_name(algorithm).ok_or_else(|| {
        KmsError::Validation(format!(
            "WrappingAlgorithm {algorithm} is not supported; use RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256, RSA_AES_KEY_WRAP_SHA_1, RSA_AES_KEY_WRAP_SHA_256 or {PQ_WRAPPING_ALGORITHM}"
        ))
    })?;
    let spec = asym::KeySpec::from_aws_name(key_spec)
        .filter(asym::KeySpec::is_wrapping_key_spec)
        .ok_or_else(|| {
            KmsError::Validation(format!(
                "WrappingKeySpec {key_spec} is not supported; use RSA_2048, RSA_3072, RSA_4096 or {PQ_WRAPPING_KEY_SPEC}"
            ))
        })?;
    Ok(Wrapping::Rsa { spec, algorithm })
}

/// A freshly generated wrapping key: its private bytes and what the caller gets.
struct WrappingKey {
    private: Secret,
    public: Vec<u8>,
}

impl Wrapping {
    fn generate(&self) -> Result<WrappingKey, KmsError> {
        match self {
            Wrapping::Rsa { spec, .. } => {
                let failed = KmsError::internal_crypto("wrapping key");
                let key = PrivateKey::generate(*spec).map_err(failed)?;
                let public = key
                    .public_key_der()
                    .map_err(KmsError::internal_crypto("wrapping public key"))?;
                Ok(WrappingKey {
                    public,
                    private: Secret::new(key.to_bytes().to_vec()),
                })
            }
            Wrapping::XWing => {
                let key = xwing::XWingPrivateKey::generate()
                    .map_err(KmsError::internal_crypto("X-Wing wrapping key"))?;
                Ok(WrappingKey {
                    public: key.public_key().to_vec(),
                    private: Secret::new(key.to_bytes().to_vec()),
                })
            }
        }
    }

    fn unwrap(
        &self,
        private: &[u8],
        wrapped: &[u8],
    ) -> Result<Secret, keyfence_crypto::CryptoError> {
        match self {
            Wrapping::Rsa { spec, algorithm } => asym::unwrap_import(
                &PrivateKey::from_bytes(*spec, private)?,
                *algorithm,
                wrapped,
            ),
            Wrapping::XWing => {
                xwing::unwrap_key_material(&xwing::XWingPrivateKey::from_bytes(private)?, wrapped)
            }
        }
    }

    fn names(&self) -> (String, String) {
        match self {
            Wrapping::Rsa { spec, algorithm } => {
                (spec.aws_name().into(), algorithm.aws_name().into())
            }
            Wrapping::XWing => (PQ_WRAPPING_KEY_SPEC.into(), PQ_WRAPPING_ALGORITHM.into()),
        }
    }
}

fn require_external(meta: &KeyMetadata) -> Result<(), KmsError> {
    if meta.origin != Origin::External {
        return Err(KmsError::UnsupportedOperation(format!(
            "{} was not created with Origin EXTERNAL; its key material cannot be imported or deleted",
            meta.arn()
        )));
    }
    Ok(())
}

fn commitment(key_id: &KeyId, material: &[u8]) -> Result<Vec<u8>, KmsError> {
    kdf::derive::<32>(material, key_id.as_bytes(), &[COMMITMENT_INFO])
        .map(|c| c.to_vec())
        .map_err(KmsError::internal_crypto("material commitment"))
}

/// Parses ImportKeyMaterial's ValidTo/ExpirationModel pair.
fn expiry(
    now: Timestamp,
    valid_to: Option<Timestamp>,
    model: Option<&str>,
) -> Result<(ExpirationModel, Option<Timestamp>), KmsError> {
    let model = match model {
        None if valid_to.is_none() => ExpirationModel::DoesNotExpire,
        None | Some("KEY_MATERIAL_EXPIRES") => ExpirationModel::Expires,
        Some("KEY_MATERIAL_DOES_NOT_EXPIRE") => ExpirationModel::DoesNotExpire,
        Some(other) => {
            return Err(KmsError::Validation(format!(
                "ExpirationModel {other} is not valid"
            )))
        }
    };
    match (model, valid_to) {
        (ExpirationModel::Expires, None) => Err(KmsError::Validation(
            "ValidTo is required when ExpirationModel is KEY_MATERIAL_EXPIRES".into(),
        )),
        (ExpirationModel::DoesNotExpire, Some(_)) => Err(KmsError::Validation(
            "ValidTo must be omitted when ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE".into(),
        )),
        (ExpirationModel::Expires, Some(t)) if t <= now || t > now.plus_days(MAX_VALID_TO_DAYS) => {
            Err(KmsError::Validation(
                "ValidTo must be in the future and at most 365 days away".into(),
            ))
        }
        (model, t) => Ok((model, t)),
    }
}

impl Kms {
    /// GetParametersForImport: a fresh wrapping key pair and single-use token, valid 24 hours.
    pub fn get_parameters_for_import(
        &self,
        account: &str,
        key_ref: &str,
        wrapping_algorithm: &str,
        wrapping_key_spec: &str,
    ) -> Result<ImportParameters, KmsError> {
        let wrapping = parse_wrapping(wrapping_algorithm, wrapping_key_spec)?;
        let wrapping_key = wrapping.generate()?;
        let (spec_name, algorithm_name) = wrapping.names();
        let token = rand::bytes(32).map_err(KmsError::internal_crypto("import token"))?;
        let valid_to = Timestamp(self.now().0 + IMPORT_PARAMETERS_VALID_MS);
        let meta = self.update_metadata(account, key_ref, |m| {
            require_external(m)?;
            require_not_pending_deletion(m)?;
            if m.state != KeyState::PendingImport {
                return Err(KmsError::InvalidState(format!(
                    "{} already has key material",
                    m.arn()
                )));
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
                    wrapping_key_spec: spec_name.clone(),
                    wrapping_algorithm: algorithm_name.clone(),
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
        valid_to: Option<Timestamp>,
        expiration_model: Option<&str>,
    ) -> Result<KeyMetadata, KmsError> {
        let now = self.now();
        let (model, valid_to) = expiry(now, valid_to, expiration_model)?;
        let _w = self.lock_writer();
        let key = self.resolve_key(account, key_ref)?;
        let mut meta = key.meta.clone();
        require_external(&meta)?;
        require_not_pending_deletion(&meta)?;
        if meta.state != KeyState::PendingImport {
            return Err(KmsError::InvalidState(format!(
                "{} already has key material",
                meta.arn()
            )));
        }
        let import = meta.import.get_or_insert_with(ImportState::default);
        let pending = import
            .pending
            .clone()
            .filter(|p| ct::eq(&p.token, import_token))
            .ok_or_else(|| {
                KmsError::InvalidImportToken("The import token is not valid for this key".into())
            })?;
        if pending.valid_to <= now {
            return Err(KmsError::ExpiredImportToken(
                "The import token has expired; call GetParametersForImport again".into(),
            ));
        }
        let material = self.unwrap_imported(&meta.id, &pending, encrypted_material)?;
        let parsed = Material::from_bytes(meta.spec, material.expose()).map_err(|e| {
            KmsError::IncorrectKeyMaterial(format!(
                "The imported material is not a valid {} key: {e}",
                meta.spec.as_str()
            ))
        })?;
        let commit = commitment(&meta.id, material.expose())?;
        if import
            .material_commitment
            .as_ref()
            .is_some_and(|c| !ct::eq(c, &commit))
        {
            return Err(KmsError::IncorrectKeyMaterial(
                "The key material differs from the material previously imported into this key"
                    .into(),
            ));
        }
        import.material_commitment = Some(commit);
        import.pending = None;
        import.expiration_model = Some(model);
        import.valid_to = valid_to;
        meta.state = KeyState::Enabled;
        meta.current_version = 1;
        let record = self.domain.wrap(&meta.id, 1, &parsed, now)?;
        self.store
            .replace_versions(&meta, std::slice::from_ref(&record))?;
        self.write_cache()
            .put(CachedKey::new(meta.clone(), BTreeMap::from([(1, parsed)])));
        Ok(meta)
    }

    fn unwrap_imported(
        &self,
        key_id: &KeyId,
        pending: &PendingImportParameters,
        encrypted: &[u8],
    ) -> Result<Secret, KmsError> {
        let wrapping = parse_wrapping(&pending.wrapping_algorithm, &pending.wrapping_key_spec)?;
        let wrapping_bytes = self.domain.unwrap_secret(
            WRAPPING_KEY_LABEL,
            key_id,
            0,
            pending.domain_key_id,
            &pending.wrapped_private_key,
        )?;
        wrapping
            .unwrap(wrapping_bytes.expose(), encrypted)
            .map_err(|_| {
                KmsError::InvalidCiphertext(
                    "The encrypted key material could not be unwrapped with the import parameters"
                        .into(),
                )
            })
    }

    /// DeleteImportedKeyMaterial: the material is destroyed; the key waits for a re-import.
    pub fn delete_imported_key_material(
        &self,
        account: &str,
        key_ref: &str,
    ) -> Result<KeyMetadata, KmsError> {
        let _w = self.lock_writer();
        let key = self.resolve_key(account, key_ref)?;
        require_external(&key.meta)?;
        require_not_pending_deletion(&key.meta)?;
        self.drop_imported_material(&key)
    }

    /// Removes a key's imported material (deletion or expiry). Caller holds the writer lock.
    pub(super) fn drop_imported_material(&self, key: &CachedKey) -> Result<KeyMetadata, KmsError> {
        let mut meta = key.meta.clone();
        meta.state = KeyState::PendingImport;
        meta.current_version = 0;
        if let Some(import) = meta.import.as_mut() {
            import.valid_to = None;
            import.expiration_model = None;
        }
        self.store.replace_versions(&meta, &[])?;
        self.write_cache()
            .put(CachedKey::new(meta.clone(), BTreeMap::new()));
        Ok(meta)
    }

    /// Deletes imported material whose ValidTo has passed (run by the sweeper).
    pub(super) fn expire_imported_material(&self, id: &KeyId) -> Result<(), KmsError> {
        let _w = self.lock_writer();
        let Some(key) = self.read_cache().key(id) else {
            return Ok(());
        };
        if key.meta.is_import_expired(self.now()) {
            self.drop_imported_material(&key)?;
        }
        Ok(())
    }
}
