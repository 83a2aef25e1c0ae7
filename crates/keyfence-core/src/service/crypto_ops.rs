//! Symmetric cryptographic operations: Encrypt, Decrypt, ReEncrypt,
//! GenerateDataKey(WithoutPlaintext), GenerateRandom.

use std::sync::Arc;

use keyfence_crypto::blob::{self, CiphertextBlob};
use keyfence_crypto::{rand, Secret};

use super::cache::CachedKey;
use super::lifecycle::require_enabled;
use super::Kms;
use crate::model::KeyUsage;
use crate::{EncryptionContext, KeyId, KmsError};

/// Plaintext limit of Encrypt (AWS: 4,096 bytes).
pub const MAX_PLAINTEXT: usize = 4096;
/// Ciphertext limit of Decrypt/ReEncrypt (AWS: 6,144 bytes).
pub const MAX_CIPHERTEXT: usize = 6144;
/// GenerateRandom / NumberOfBytes limit (AWS: 1,024 bytes).
pub const MAX_RANDOM: i64 = 1024;

/// The only encryption algorithm of symmetric keys.
pub const SYMMETRIC_DEFAULT: &str = "SYMMETRIC_DEFAULT";

/// Result of Encrypt.
#[derive(Debug)]
pub struct EncryptOutput {
    /// The ciphertext blob.
    pub ciphertext: Vec<u8>,
    /// ARN of the key that encrypted.
    pub key_arn: String,
}

/// Result of Decrypt.
#[derive(Debug)]
pub struct DecryptOutput {
    /// The plaintext.
    pub plaintext: Secret,
    /// ARN of the key that decrypted.
    pub key_arn: String,
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
}

/// Requested size of a data key: a KeySpec or a byte count, exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKeySize {
    /// `KeySpec` AES_128 / AES_256, or `NumberOfBytes`.
    Bytes(usize),
}

impl DataKeySize {
    /// Validates GenerateDataKey's KeySpec / NumberOfBytes pair.
    pub fn from_request(
        key_spec: Option<&str>,
        number_of_bytes: Option<i64>,
    ) -> Result<Self, KmsError> {
        match (key_spec, number_of_bytes) {
            (Some(_), Some(_)) => Err(KmsError::Validation(
                "KeySpec and NumberOfBytes are mutually exclusive; specify one".into(),
            )),
            (None, None) => Err(KmsError::Validation(
                "Please specify either number of bytes or key spec.".into(),
            )),
            (Some("AES_256"), None) => Ok(Self::Bytes(32)),
            (Some("AES_128"), None) => Ok(Self::Bytes(16)),
            (Some(other), None) => Err(KmsError::Validation(format!(
                "1 validation error detected: Value '{other}' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]"
            ))),
            (None, Some(n)) => Ok(Self::Bytes(check_byte_count(n, "numberOfBytes")?)),
        }
    }
}

fn check_byte_count(n: i64, field: &str) -> Result<usize, KmsError> {
    if (1..=MAX_RANDOM).contains(&n) {
        Ok(n as usize)
    } else {
        Err(KmsError::Validation(format!(
            "1 validation error detected: Value '{n}' at '{field}' failed to satisfy constraint: Member must have value between 1 and {MAX_RANDOM}"
        )))
    }
}

fn check_algorithm(algorithm: Option<&str>) -> Result<(), KmsError> {
    match algorithm {
        None | Some(SYMMETRIC_DEFAULT) => Ok(()),
        Some(other) => Err(KmsError::InvalidKeyUsage(format!(
            "The encryption algorithm {other} is not compatible with a symmetric KMS key"
        ))),
    }
}

fn require_encrypt_decrypt(key: &CachedKey) -> Result<(), KmsError> {
    match key.meta.usage {
        KeyUsage::EncryptDecrypt => Ok(()),
    }
}

impl Kms {
    fn encryption_key(&self, account: &str, key_ref: &str) -> Result<Arc<CachedKey>, KmsError> {
        let key = self.resolve(account, key_ref)?;
        require_enabled(&key.meta)?;
        require_encrypt_decrypt(&key)?;
        Ok(key)
    }

    fn seal_with(
        key: &CachedKey,
        context: &EncryptionContext,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        let version = key.meta.current_version;
        let material = key.versions.get(&version).ok_or_else(|| {
            KmsError::Internal(format!("{} has no version {version}", key.meta.id))
        })?;
        let blob = blob::seal(
            material,
            *key.meta.id.as_bytes(),
            version,
            &context.canonical_bytes(),
            plaintext,
        )?;
        Ok(blob.to_bytes())
    }

    /// Encrypt: at most 4,096 bytes of plaintext under the key's newest version.
    pub fn encrypt(
        &self,
        account: &str,
        key_ref: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
        algorithm: Option<&str>,
    ) -> Result<EncryptOutput, KmsError> {
        if plaintext.is_empty() || plaintext.len() > MAX_PLAINTEXT {
            return Err(KmsError::Validation(format!(
                "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length between 1 and {MAX_PLAINTEXT} (got {})",
                plaintext.len()
            )));
        }
        check_algorithm(algorithm)?;
        let key = self.encryption_key(account, key_ref)?;
        Ok(EncryptOutput {
            ciphertext: Self::seal_with(&key, context, plaintext)?,
            key_arn: key.meta.arn(),
        })
    }

    /// Decrypt: the blob names its key; `key_ref`, if given, must be that key.
    pub fn decrypt(
        &self,
        account: &str,
        ciphertext: &[u8],
        context: &EncryptionContext,
        key_ref: Option<&str>,
        algorithm: Option<&str>,
    ) -> Result<DecryptOutput, KmsError> {
        check_algorithm(algorithm)?;
        let (key, plaintext) = self.open_blob(account, ciphertext, context, key_ref)?;
        Ok(DecryptOutput {
            plaintext,
            key_arn: key.meta.arn(),
        })
    }

    fn open_blob(
        &self,
        account: &str,
        ciphertext: &[u8],
        context: &EncryptionContext,
        key_ref: Option<&str>,
    ) -> Result<(Arc<CachedKey>, Secret), KmsError> {
        if ciphertext.is_empty() || ciphertext.len() > MAX_CIPHERTEXT {
            return Err(KmsError::Validation(format!(
                "1 validation error detected: Value at 'ciphertextBlob' failed to satisfy constraint: Member must have length between 1 and {MAX_CIPHERTEXT} (got {})",
                ciphertext.len()
            )));
        }
        let invalid = || {
            KmsError::InvalidCiphertext(
                "The ciphertext is invalid or was not encrypted under this encryption context."
                    .into(),
            )
        };
        let blob = CiphertextBlob::parse(ciphertext).map_err(|_| invalid())?;
        let id = KeyId::from_bytes(blob.header.key_id);
        let key = self.resolve(account, &id.to_string())?;
        if let Some(named) = key_ref {
            let named = self.resolve(account, named)?;
            if named.meta.id != key.meta.id {
                return Err(KmsError::IncorrectKey(
                    "The key ID in the request does not identify a KMS key that can perform this operation.".into(),
                ));
            }
        }
        require_enabled(&key.meta)?;
        require_encrypt_decrypt(&key)?;
        let material = key
            .versions
            .get(&blob.header.key_version)
            .ok_or_else(invalid)?;
        let plaintext =
            blob::open(material, &blob, &context.canonical_bytes()).map_err(|_| invalid())?;
        Ok((key, Secret::new(plaintext)))
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
        source_algorithm: Option<&str>,
        destination_algorithm: Option<&str>,
    ) -> Result<ReEncryptOutput, KmsError> {
        check_algorithm(source_algorithm)?;
        check_algorithm(destination_algorithm)?;
        let destination = self.encryption_key(account, destination_key_ref)?;
        let (source, plaintext) =
            self.open_blob(account, ciphertext, source_context, source_key_ref)?;
        Ok(ReEncryptOutput {
            ciphertext: Self::seal_with(&destination, destination_context, plaintext.expose())?,
            source_key_arn: source.meta.arn(),
            key_arn: destination.meta.arn(),
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
        let key = self.encryption_key(account, key_ref)?;
        let DataKeySize::Bytes(n) = size;
        let data_key = Secret::random(n)?;
        Ok(DataKeyOutput {
            ciphertext: Self::seal_with(&key, context, data_key.expose())?,
            plaintext: with_plaintext.then_some(data_key),
            key_arn: key.meta.arn(),
        })
    }

    /// GenerateRandom: 1–1,024 random bytes.
    pub fn generate_random(&self, number_of_bytes: Option<i64>) -> Result<Vec<u8>, KmsError> {
        let n = number_of_bytes
            .ok_or_else(|| KmsError::Validation("NumberOfBytes is required".into()))?;
        Ok(rand::bytes(check_byte_count(n, "numberOfBytes")?)?)
    }
}
