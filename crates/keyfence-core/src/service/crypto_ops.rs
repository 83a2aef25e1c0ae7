//! Symmetric cryptographic operations: Encrypt, Decrypt, ReEncrypt,
//! GenerateDataKey(WithoutPlaintext), GenerateRandom.

use std::sync::Arc;

use keyfence_crypto::blob::{self, CiphertextBlob};
use keyfence_crypto::{rand, Secret};

use super::cache::CachedKey;
use super::lifecycle::require_enabled;
use super::material::Material;
use super::{fenced, Kms};
use crate::error::Algorithm;
use crate::model::{EncryptionAlgorithm, KeyMetadata, KeySpec, KeyUsage};
use crate::{Bound, CiphertextProblem, EncryptionContext, KeyId, KeyMaterialId, KmsError, Member};
use keyfence_crypto::asym;

/// Plaintext limit of Encrypt (AWS: 4,096 bytes).
pub const MAX_PLAINTEXT: usize = 4096;
/// Ciphertext limit of Decrypt/ReEncrypt (AWS: 6,144 bytes).
pub const MAX_CIPHERTEXT: usize = 6144;
/// GenerateRandom / NumberOfBytes limit (AWS: 1,024 bytes).
pub const MAX_RANDOM: i64 = 1024;

/// Result of Encrypt.
#[derive(Debug)]
pub struct EncryptOutput {
    /// The ciphertext blob.
    pub ciphertext: Vec<u8>,
    /// ARN of the key that encrypted.
    pub key_arn: String,
    /// The encryption algorithm used.
    pub algorithm: EncryptionAlgorithm,
}

/// Result of Decrypt.
#[derive(Debug)]
pub struct DecryptOutput {
    /// The plaintext.
    pub plaintext: Secret,
    /// ARN of the key that decrypted.
    pub key_arn: String,
    /// The encryption algorithm used.
    pub algorithm: EncryptionAlgorithm,
    /// The key material version that decrypted (symmetric keys only).
    pub key_material_id: Option<KeyMaterialId>,
}

/// Result of ReEncrypt.
#[derive(Debug)]
pub struct ReEncryptOutput {
    /// The new ciphertext blob.
    pub ciphertext: Vec<u8>,
    /// ARN of the key that decrypted.
    pub source_key_arn: String,
    /// ARN of the key that encrypted.
    pub key_arn: String,
    /// Algorithm that decrypted the source.
    pub source_algorithm: EncryptionAlgorithm,
    /// Algorithm that encrypted the result.
    pub destination_algorithm: EncryptionAlgorithm,
    /// The key material version that decrypted (symmetric source keys only).
    pub source_key_material_id: Option<KeyMaterialId>,
    /// The key material version that encrypted (symmetric destination keys only).
    pub destination_key_material_id: Option<KeyMaterialId>,
}

/// Result of GenerateDataKey(WithoutPlaintext).
#[derive(Debug)]
pub struct DataKeyOutput {
    /// The data key encrypted under the KMS key.
    pub ciphertext: Vec<u8>,
    /// The data key itself (absent for WithoutPlaintext).
    pub plaintext: Option<Secret>,
    /// ARN of the KMS key.
    pub key_arn: String,
    /// The key material version that encrypted the data key.
    pub key_material_id: Option<KeyMaterialId>,
}

/// Requested size of a data key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKeySize {
    /// This many bytes (`KeySpec` AES_128 / AES_256, or `NumberOfBytes`).
    Bytes(usize),
}

impl DataKeySize {
    /// A `NumberOfBytes` of 1–1,024.
    pub fn number_of_bytes(n: i64) -> Result<Self, KmsError> {
        Ok(Self::Bytes(check_byte_count(n)?))
    }
}

fn check_byte_count(n: i64) -> Result<usize, KmsError> {
    if (1..=MAX_RANDOM).contains(&n) {
        Ok(n as usize)
    } else {
        Err(KmsError::OutOfBounds {
            member: Member::NumberOfBytes,
            bound: Bound::Value {
                value: n,
                min: 1,
                max: MAX_RANDOM,
            },
        })
    }
}

/// Refuses an empty `value`, or one longer than `max` bytes.
pub(super) fn check_length(member: Member, value: &[u8], max: usize) -> Result<(), KmsError> {
    if value.is_empty() || value.len() > max {
        return Err(KmsError::OutOfBounds {
            member,
            bound: Bound::Length {
                len: value.len(),
                min: 1,
                max,
            },
        });
    }
    Ok(())
}

/// How a key encrypts, decided by its spec and the requested algorithm.
enum Scheme {
    /// keyfence's symmetric envelope (SYMMETRIC_DEFAULT).
    Envelope,
    /// RSAES-OAEP with the key's RSA key pair.
    Rsa(asym::EncryptionAlgorithm),
}

/// The scheme of `algorithm` (SYMMETRIC_DEFAULT when absent) with this key,
/// if its spec offers it.
fn scheme(
    meta: &KeyMetadata,
    algorithm: Option<EncryptionAlgorithm>,
) -> Result<(Scheme, EncryptionAlgorithm), KmsError> {
    let algorithm = algorithm.unwrap_or(EncryptionAlgorithm::SymmetricDefault);
    if !meta.spec.encryption_algorithms().contains(&algorithm) {
        return Err(KmsError::IncompatibleAlgorithm {
            key: meta.arn(),
            spec: meta.spec,
            algorithm: Algorithm::Encryption(algorithm),
        });
    }
    let scheme = match algorithm {
        EncryptionAlgorithm::SymmetricDefault => Scheme::Envelope,
        EncryptionAlgorithm::Rsa(alg) => Scheme::Rsa(alg),
    };
    Ok((scheme, algorithm))
}

fn require_encrypt_decrypt(key: &CachedKey) -> Result<(), KmsError> {
    if key.meta.usage != KeyUsage::EncryptDecrypt {
        return Err(KmsError::WrongKeyUsage {
            key: key.meta.arn(),
            usage: key.meta.usage,
            needed: KeyUsage::EncryptDecrypt,
        });
    }
    Ok(())
}

fn invalid_ciphertext() -> KmsError {
    KmsError::InvalidCiphertext(CiphertextProblem::NotForContext)
}

impl Kms {
    fn encryption_key(&self, account: &str, key_ref: &str) -> Result<Arc<CachedKey>, KmsError> {
        let key = self.resolve(account, key_ref)?;
        require_enabled(&key.meta)?;
        require_encrypt_decrypt(&key)?;
        Ok(key)
    }

    /// A symmetric encryption key that may protect generated data keys.
    pub(super) fn data_key_encryption_key(
        &self,
        account: &str,
        key_ref: &str,
    ) -> Result<Arc<CachedKey>, KmsError> {
        let key = self.encryption_key(account, key_ref)?;
        if key.meta.spec != KeySpec::SymmetricDefault {
            return Err(KmsError::DataKeyNeedsSymmetric {
                key: key.meta.arn(),
            });
        }
        Ok(key)
    }

    /// Encrypts a data key (or data key pair's private key) under a symmetric key.
    pub(super) fn seal_data_key(
        key: &CachedKey,
        context: &EncryptionContext,
        secret: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        Self::encrypt_with(key, context, secret, None)
    }

    /// The id of the material [`Self::encrypt_with`] uses: the current version of a
    /// symmetric key; `None` for asymmetric keys (AWS reports none for them).
    pub(super) fn current_material_id(key: &CachedKey) -> Result<Option<KeyMaterialId>, KmsError> {
        Self::material_id(key, key.meta.current_version)
    }

    fn material_id(key: &CachedKey, version: u32) -> Result<Option<KeyMaterialId>, KmsError> {
        if key.meta.spec != KeySpec::SymmetricDefault {
            return Ok(None);
        }
        KeyMaterialId::of(&key.meta.id, version).map(Some)
    }

    pub(super) fn current_material(key: &CachedKey) -> Result<&Material, KmsError> {
        let version = key.meta.current_version;
        key.versions.get(&version).ok_or_else(|| {
            fenced::sealed_error(key).unwrap_or_else(|| {
                KmsError::Internal(format!("{} has no version {version}", key.meta.id))
            })
        })
    }

    /// Encrypts under the key's newest version with the scheme the key and algorithm select.
    fn encrypt_with(
        key: &CachedKey,
        context: &EncryptionContext,
        plaintext: &[u8],
        algorithm: Option<EncryptionAlgorithm>,
    ) -> Result<Vec<u8>, KmsError> {
        let material = Self::current_material(key)?;
        match (scheme(&key.meta, algorithm)?.0, material) {
            (Scheme::Envelope, Material::Symmetric(k)) => {
                let version = key.meta.current_version;
                let blob = blob::seal(
                    k,
                    *key.meta.id.as_bytes(),
                    version,
                    &context.canonical_bytes(),
                    plaintext,
                )
                .map_err(KmsError::internal_crypto("seal ciphertext blob"))?;
                Ok(blob.to_bytes())
            }
            (Scheme::Rsa(alg), Material::Private(k)) => {
                k.encrypt(alg, plaintext)
                    .map_err(|detail| KmsError::PlaintextTooLong {
                        len: plaintext.len(),
                        algorithm: alg,
                        spec: key.meta.spec,
                        detail,
                    })
            }
            _ => Err(KmsError::Internal(format!(
                "{} material does not match its spec",
                key.meta.id
            ))),
        }
    }

    /// Encrypt: at most 4,096 bytes of plaintext (less for RSA, as the padding allows).
    pub fn encrypt(
        &self,
        account: &str,
        key_ref: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
        algorithm: Option<EncryptionAlgorithm>,
    ) -> Result<EncryptOutput, KmsError> {
        check_length(Member::Plaintext, plaintext, MAX_PLAINTEXT)?;
        let key = self.encryption_key(account, key_ref)?;
        Ok(EncryptOutput {
            ciphertext: Self::encrypt_with(&key, context, plaintext, algorithm)?,
            key_arn: key.meta.arn(),
            algorithm: scheme(&key.meta, algorithm)?.1,
        })
    }

    /// Decrypt: a symmetric blob names its key (`key_ref`, if given, must be
    /// that key); an RSA ciphertext needs `key_ref` and the algorithm.
    pub fn decrypt(
        &self,
        account: &str,
        ciphertext: &[u8],
        context: &EncryptionContext,
        key_ref: Option<&str>,
        algorithm: Option<EncryptionAlgorithm>,
    ) -> Result<DecryptOutput, KmsError> {
        let (key, plaintext, version) =
            self.decrypt_any(account, ciphertext, context, key_ref, algorithm)?;
        Ok(DecryptOutput {
            plaintext,
            key_arn: key.meta.arn(),
            algorithm: scheme(&key.meta, algorithm)?.1,
            key_material_id: Self::material_id(&key, version)?,
        })
    }

    /// The key of this account a symmetric ciphertext blob names, if `ciphertext` is one.
    fn blob_key(&self, account: &str, ciphertext: &[u8]) -> Option<KeyId> {
        let blob = CiphertextBlob::parse(ciphertext).ok()?;
        let id = KeyId::from_bytes(blob.header.key_id);
        self.resolve(account, &id.to_string())
            .ok()
            .map(|k| k.meta.id)
    }

    fn decrypt_any(
        &self,
        account: &str,
        ciphertext: &[u8],
        context: &EncryptionContext,
        key_ref: Option<&str>,
        algorithm: Option<EncryptionAlgorithm>,
    ) -> Result<(Arc<CachedKey>, Secret, u32), KmsError> {
        check_length(Member::CiphertextBlob, ciphertext, MAX_CIPHERTEXT)?;
        let named = key_ref.map(|r| self.resolve(account, r)).transpose()?;
        if let Some(key) = named
            .as_ref()
            .filter(|k| k.meta.spec != KeySpec::SymmetricDefault)
        {
            // A symmetric ciphertext of another key, named with this one: AWS
            // answers IncorrectKeyException before any check of this key.
            if self
                .blob_key(account, ciphertext)
                .is_some_and(|id| id != key.meta.id)
            {
                return Err(KmsError::IncorrectKey);
            }
            require_enabled(&key.meta)?;
            require_encrypt_decrypt(key)?;
            let (Scheme::Rsa(alg), _) = scheme(&key.meta, algorithm)? else {
                return Err(KmsError::Internal(
                    "asymmetric key selected the envelope scheme".into(),
                ));
            };
            let private = Self::current_material(key)?.private().ok_or_else(|| {
                KmsError::Internal(format!("{} material does not match its spec", key.meta.id))
            })?;
            let plaintext = private
                .decrypt(alg, ciphertext)
                .map_err(|_| invalid_ciphertext())?;
            return Ok((Arc::clone(key), plaintext, key.meta.current_version));
        }
        let blob = CiphertextBlob::parse(ciphertext).map_err(|_| invalid_ciphertext())?;
        let id = KeyId::from_bytes(blob.header.key_id);
        // A blob naming no key of this account is a bad ciphertext: answering
        // NotFound would tell a caller which guessed key ids exist.
        let key = self
            .resolve(account, &id.to_string())
            .map_err(|e| match e {
                KmsError::NotFound(_) => invalid_ciphertext(),
                other => other,
            })?;
        if named.is_some_and(|n| n.meta.id != key.meta.id) {
            return Err(KmsError::IncorrectKey);
        }
        require_enabled(&key.meta)?;
        require_encrypt_decrypt(&key)?;
        scheme(&key.meta, algorithm)?;
        if let Some(sealed) = fenced::sealed_error(&key) {
            return Err(sealed);
        }
        let material = key
            .versions
            .get(&blob.header.key_version)
            .and_then(Material::symmetric)
            .ok_or_else(invalid_ciphertext)?;
        let plaintext = blob::open(material, &blob, &context.canonical_bytes())
            .map_err(|_| invalid_ciphertext())?;
        let version = blob.header.key_version;
        Ok((key, Secret::new(plaintext), version))
    }

    /// ReEncrypt: decrypts under the source key and context, encrypts under
    /// the destination key and context, never returning the plaintext.
    #[allow(clippy::too_many_arguments)]
    pub fn re_encrypt(
        &self,
        account: &str,
        ciphertext: &[u8],
        source_context: &EncryptionContext,
        source_key_ref: Option<&str>,
        destination_key_ref: &str,
        destination_context: &EncryptionContext,
        source_algorithm: Option<EncryptionAlgorithm>,
        destination_algorithm: Option<EncryptionAlgorithm>,
    ) -> Result<ReEncryptOutput, KmsError> {
        // The source first, as AWS checks it: a SourceKeyId that is not the
        // ciphertext's key is IncorrectKeyException whatever the destination is.
        let (source, plaintext, source_version) = self.decrypt_any(
            account,
            ciphertext,
            source_context,
            source_key_ref,
            source_algorithm,
        )?;
        let destination = self.encryption_key(account, destination_key_ref)?;
        scheme(&destination.meta, destination_algorithm)?;
        Ok(ReEncryptOutput {
            ciphertext: Self::encrypt_with(
                &destination,
                destination_context,
                plaintext.expose(),
                destination_algorithm,
            )?,
            source_key_arn: source.meta.arn(),
            key_arn: destination.meta.arn(),
            source_algorithm: scheme(&source.meta, source_algorithm)?.1,
            destination_algorithm: scheme(&destination.meta, destination_algorithm)?.1,
            source_key_material_id: Self::material_id(&source, source_version)?,
            destination_key_material_id: Self::current_material_id(&destination)?,
        })
    }

    /// GenerateDataKey / GenerateDataKeyWithoutPlaintext.
    pub fn generate_data_key(
        &self,
        account: &str,
        key_ref: &str,
        size: DataKeySize,
        context: &EncryptionContext,
        with_plaintext: bool,
    ) -> Result<DataKeyOutput, KmsError> {
        let key = self.data_key_encryption_key(account, key_ref)?;
        let DataKeySize::Bytes(n) = size;
        let data_key = Secret::random(n).map_err(KmsError::internal_crypto("data key"))?;
        Ok(DataKeyOutput {
            ciphertext: Self::encrypt_with(&key, context, data_key.expose(), None)?,
            plaintext: with_plaintext.then_some(data_key),
            key_arn: key.meta.arn(),
            key_material_id: Self::current_material_id(&key)?,
        })
    }

    /// GenerateRandom: 1–1,024 random bytes.
    pub fn generate_random(&self, n: i64) -> Result<Vec<u8>, KmsError> {
        rand::bytes(check_byte_count(n)?).map_err(KmsError::internal_crypto("random bytes"))
    }
}
