//! Asymmetric, HMAC and KEM operations: Sign, Verify, GetPublicKey,
//! GenerateMac, VerifyMac, Encapsulate, Decapsulate, DeriveSharedSecret,
//! GenerateDataKeyPair(WithoutPlaintext).

use std::sync::Arc;

use keyfence_crypto::asym::{
    self, KeyAgreementAlgorithm, KeyUsage, MacAlgorithm, MessageType, PrivateKey, SigningAlgorithm,
};
use keyfence_crypto::{CryptoError, Secret};

use super::cache::CachedKey;
use super::crypto_ops::check_length;
use super::lifecycle::require_enabled;
use super::Kms;
use crate::error::{Algorithm, SpecOperation};
use crate::model::{KeyMetadata, KeySpec};
use crate::{CiphertextProblem, CryptoOperation, EncryptionContext, Invalid, KmsError, Member};

/// Largest Sign/Verify/GenerateMac message (AWS: 4,096 bytes).
pub const MAX_MESSAGE: usize = 4096;

/// Longest Verify signature (AWS: 6,144 bytes).
const MAX_SIGNATURE: usize = 6144;

/// Result of Sign.
#[derive(Debug)]
pub struct SignOutput {
    /// The signature.
    pub signature: Vec<u8>,
    /// ARN of the key that signed.
    pub key_arn: String,
    /// The algorithm used.
    pub algorithm: SigningAlgorithm,
}

/// Result of GenerateDataKeyPair(WithoutPlaintext).
#[derive(Debug)]
pub struct DataKeyPairOutput {
    /// PKCS#8 private key, when asked for.
    pub private_key: Option<Secret>,
    /// The private key encrypted under the symmetric KMS key.
    pub private_key_ciphertext: Vec<u8>,
    /// SubjectPublicKeyInfo DER.
    pub public_key: Vec<u8>,
    /// ARN of the symmetric KMS key.
    pub key_arn: String,
    /// The pair's spec.
    pub spec: asym::KeySpec,
    /// The key material version that encrypted the private key.
    pub key_material_id: Option<crate::KeyMaterialId>,
}

/// A crypto-layer failure of `operation`: the caller's input
/// ([`KmsError::Refused`]) or this service's fault (internal).
fn crypto_refusal(detail: CryptoError, operation: CryptoOperation) -> KmsError {
    match detail {
        CryptoError::Unsupported(_)
        | CryptoError::Incompatible(_)
        | CryptoError::InvalidLength { .. }
        | CryptoError::Malformed { .. } => KmsError::Refused { operation, detail },
        other => KmsError::Internal(format!("{operation:?}: {other}")),
    }
}

fn check_message(message: &[u8]) -> Result<(), KmsError> {
    check_length(Member::Message, message, MAX_MESSAGE)
}

fn require_usage(meta: &KeyMetadata, usage: KeyUsage) -> Result<(), KmsError> {
    if meta.usage != usage {
        return Err(KmsError::WrongKeyUsage {
            key: meta.arn(),
            usage: meta.usage,
            needed: usage,
        });
    }
    Ok(())
}

fn require_algorithm(
    meta: &KeyMetadata,
    offered: bool,
    algorithm: Algorithm,
) -> Result<(), KmsError> {
    if !offered {
        return Err(KmsError::IncompatibleAlgorithm {
            key: meta.arn(),
            spec: meta.spec,
            algorithm,
        });
    }
    Ok(())
}

impl Kms {
    /// A usable key of `usage` with its private material.
    fn private_key(
        &self,
        account: &str,
        key_ref: &str,
        usage: KeyUsage,
    ) -> Result<(Arc<CachedKey>, asym::KeySpec), KmsError> {
        let key = self.resolve(account, key_ref)?;
        require_enabled(&key.meta)?;
        require_usage(&key.meta, usage)?;
        let spec = key.meta.spec.asymmetric().ok_or_else(|| {
            KmsError::Internal(format!(
                "{} has usage {usage:?} but no private key",
                key.meta.id
            ))
        })?;
        Ok((key, spec))
    }

    fn private_of(key: &CachedKey) -> Result<&PrivateKey, KmsError> {
        Self::current_material(key)?.private().ok_or_else(|| {
            KmsError::Internal(format!("{} material does not match its spec", key.meta.id))
        })
    }

    /// Sign.
    pub fn sign(
        &self,
        account: &str,
        key_ref: &str,
        message: &[u8],
        message_type: MessageType,
        alg: SigningAlgorithm,
    ) -> Result<SignOutput, KmsError> {
        check_message(message)?;
        let (key, spec) = self.private_key(account, key_ref, KeyUsage::SignVerify)?;
        let offered = spec.signing_algorithms().contains(&alg);
        require_algorithm(&key.meta, offered, Algorithm::Signing(alg))?;
        let signature = Self::private_of(&key)?
            .sign(alg, message_type, message)
            .map_err(|e| crypto_refusal(e, CryptoOperation::Sign))?;
        Ok(SignOutput {
            signature,
            key_arn: key.meta.arn(),
            algorithm: alg,
        })
    }

    /// Verify: a signature that does not match is KMSInvalidSignatureException, as AWS answers.
    pub fn verify(
        &self,
        account: &str,
        key_ref: &str,
        message: &[u8],
        message_type: MessageType,
        signature: &[u8],
        alg: SigningAlgorithm,
    ) -> Result<(String, SigningAlgorithm), KmsError> {
        check_message(message)?;
        if signature.is_empty() || signature.len() > MAX_SIGNATURE {
            return Err(KmsError::Validation(Invalid::SignatureLength {
                len: signature.len(),
                max: MAX_SIGNATURE,
            }));
        }
        let (key, spec) = self.private_key(account, key_ref, KeyUsage::SignVerify)?;
        let offered = spec.signing_algorithms().contains(&alg);
        require_algorithm(&key.meta, offered, Algorithm::Signing(alg))?;
        let valid = Self::private_of(&key)?
            .verify(alg, message_type, message, signature)
            .map_err(|e| crypto_refusal(e, CryptoOperation::Verify))?;
        if !valid {
            return Err(KmsError::InvalidSignature);
        }
        Ok((key.meta.arn(), alg))
    }

    /// GetPublicKey: the SubjectPublicKeyInfo of an asymmetric key.
    pub fn get_public_key(
        &self,
        account: &str,
        key_ref: &str,
    ) -> Result<(KeyMetadata, Vec<u8>), KmsError> {
        let key = self.resolve(account, key_ref)?;
        require_enabled(&key.meta)?;
        let public = match key.meta.spec {
            KeySpec::Asymmetric(s) if s.mac_algorithms().is_empty() => Self::private_of(&key)?
                .public_key_der()
                .map_err(|e| crypto_refusal(e, CryptoOperation::GetPublicKey))?,
            _ => {
                return Err(KmsError::SpecCannot {
                    key: key.meta.arn(),
                    spec: key.meta.spec,
                    operation: SpecOperation::GetPublicKey,
                })
            }
        };
        Ok((key.meta.clone(), public))
    }

    fn mac_key(
        &self,
        account: &str,
        key_ref: &str,
        alg: MacAlgorithm,
    ) -> Result<Arc<CachedKey>, KmsError> {
        let (key, spec) = self.private_key(account, key_ref, KeyUsage::GenerateVerifyMac)?;
        let offered = spec.mac_algorithms().contains(&alg);
        require_algorithm(&key.meta, offered, Algorithm::Mac(alg))?;
        Ok(key)
    }

    /// GenerateMac.
    pub fn generate_mac(
        &self,
        account: &str,
        key_ref: &str,
        message: &[u8],
        alg: MacAlgorithm,
    ) -> Result<(String, Vec<u8>), KmsError> {
        check_message(message)?;
        let key = self.mac_key(account, key_ref, alg)?;
        let mac = Self::private_of(&key)?
            .mac(alg, message)
            .map_err(|e| crypto_refusal(e, CryptoOperation::GenerateMac))?;
        Ok((key.meta.arn(), mac))
    }

    /// VerifyMac: a MAC that does not match is KMSInvalidMacException.
    pub fn verify_mac(
        &self,
        account: &str,
        key_ref: &str,
        message: &[u8],
        mac: &[u8],
        alg: MacAlgorithm,
    ) -> Result<String, KmsError> {
        check_message(message)?;
        let key = self.mac_key(account, key_ref, alg)?;
        let valid = Self::private_of(&key)?
            .verify_mac(alg, message, mac)
            .map_err(|e| crypto_refusal(e, CryptoOperation::VerifyMac))?;
        if !valid {
            return Err(KmsError::InvalidMac);
        }
        Ok(key.meta.arn())
    }

    /// Encapsulate: a fresh shared secret and its ML-KEM ciphertext.
    pub fn encapsulate(
        &self,
        account: &str,
        key_ref: &str,
    ) -> Result<(String, Vec<u8>, Secret), KmsError> {
        let (key, _) = self.private_key(account, key_ref, KeyUsage::EncapsulateDecapsulate)?;
        let (ciphertext, shared) = Self::private_of(&key)?
            .encapsulate()
            .map_err(|e| crypto_refusal(e, CryptoOperation::Encapsulate))?;
        Ok((key.meta.arn(), ciphertext, shared))
    }

    /// Decapsulate.
    pub fn decapsulate(
        &self,
        account: &str,
        key_ref: &str,
        ciphertext: &[u8],
    ) -> Result<(String, Secret), KmsError> {
        let (key, _) = self.private_key(account, key_ref, KeyUsage::EncapsulateDecapsulate)?;
        let shared = Self::private_of(&key)?
            .decapsulate(ciphertext)
            .map_err(|_| KmsError::InvalidCiphertext(CiphertextProblem::NotMlKem))?;
        Ok((key.meta.arn(), shared))
    }

    /// DeriveSharedSecret (ECDH) with a peer's SubjectPublicKeyInfo.
    pub fn derive_shared_secret(
        &self,
        account: &str,
        key_ref: &str,
        algorithm: KeyAgreementAlgorithm,
        peer_public_key: &[u8],
    ) -> Result<(KeyMetadata, Secret), KmsError> {
        let KeyAgreementAlgorithm::Ecdh = algorithm;
        let (key, _) = self.private_key(account, key_ref, KeyUsage::KeyAgreement)?;
        let shared = Self::private_of(&key)?
            .derive_shared_secret(peer_public_key)
            .map_err(|e| crypto_refusal(e, CryptoOperation::DeriveSharedSecret))?;
        Ok((key.meta.clone(), shared))
    }

    /// GenerateDataKeyPair / GenerateDataKeyPairWithoutPlaintext: a fresh key
    /// pair whose PKCS#8 private key is encrypted under a symmetric KMS key.
    pub fn generate_data_key_pair(
        &self,
        account: &str,
        key_ref: &str,
        spec: asym::KeySpec,
        context: &EncryptionContext,
        with_plaintext: bool,
    ) -> Result<DataKeyPairOutput, KmsError> {
        if !spec.is_data_key_pair_spec() {
            return Err(KmsError::Validation(Invalid::NotDataKeyPairSpec(spec)));
        }
        let key = self.data_key_encryption_key(account, key_ref)?;
        let (private_key, public_key) = asym::generate_data_key_pair(spec)
            .map_err(|e| crypto_refusal(e, CryptoOperation::GenerateDataKeyPair))?;
        Ok(DataKeyPairOutput {
            private_key_ciphertext: Self::seal_data_key(&key, context, private_key.expose())?,
            private_key: with_plaintext.then_some(private_key),
            public_key,
            key_arn: key.meta.arn(),
            spec,
            key_material_id: Self::current_material_id(&key)?,
        })
    }
}
