//! ML-DSA-44/65/87 (FIPS 204), pure mode with an empty context.
//!
//! Private material is an unencrypted PKCS#8 v1 `PrivateKeyInfo` holding the
//! 32-byte seed (the form aws-lc writes; the expanded form is accepted on
//! import). The public key is a SubjectPublicKeyInfo with the NIST OIDs
//! `id-ml-dsa-44/65/87` (2.16.840.1.101.3.4.3.17/18/19).

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{self, KeyPair, PqdsaKeyPair, PqdsaSigningAlgorithm};

use super::parsed_verify;
use super::spec::{KeySpec, MessageType, SigningAlgorithm};
use crate::{CryptoError, Secret};

fn signing_alg(spec: KeySpec) -> Result<&'static PqdsaSigningAlgorithm, CryptoError> {
    Ok(match spec {
        KeySpec::MlDsa44 => &signature::ML_DSA_44_SIGNING,
        KeySpec::MlDsa65 => &signature::ML_DSA_65_SIGNING,
        KeySpec::MlDsa87 => &signature::ML_DSA_87_SIGNING,
        _ => return Err(CryptoError::Incompatible("not an ML-DSA key spec")),
    })
}

fn verification_alg(
    spec: KeySpec,
) -> Result<&'static signature::PqdsaVerificationAlgorithm, CryptoError> {
    Ok(match spec {
        KeySpec::MlDsa44 => &signature::ML_DSA_44,
        KeySpec::MlDsa65 => &signature::ML_DSA_65,
        KeySpec::MlDsa87 => &signature::ML_DSA_87,
        _ => return Err(CryptoError::Incompatible("not an ML-DSA key spec")),
    })
}

/// aws-lc-rs signs and verifies whole messages only. The text completes the sentence
/// "… is not supported by keyfence" and names no library (clients see it).
const EXTERNAL_MU_UNSUPPORTED: CryptoError =
    CryptoError::Unsupported("ML-DSA with MessageType EXTERNAL_MU (a precomputed mu)");

/// A parsed ML-DSA key.
pub(super) struct MlDsaKey(PqdsaKeyPair);

impl MlDsaKey {
    /// A fresh key pair and its PKCS#8 (seed) encoding.
    pub(super) fn generate(spec: KeySpec) -> Result<(Self, Secret), CryptoError> {
        let pair = PqdsaKeyPair::generate(signing_alg(spec)?)
            .map_err(|_| CryptoError::Operation("ML-DSA keygen"))?;
        let der = pair
            .to_pkcs8v1()
            .map_err(|_| CryptoError::Operation("ML-DSA PKCS#8 encoding"))?;
        Ok((Self(pair), Secret::new(der.as_ref().to_vec())))
    }

    /// Parses PKCS#8 (seed or expanded form) for the parameter set `spec` names.
    pub(super) fn from_pkcs8(spec: KeySpec, der: &[u8]) -> Result<Self, CryptoError> {
        let pair = PqdsaKeyPair::from_pkcs8(signing_alg(spec)?, der).map_err(|_| {
            CryptoError::Malformed {
                what: "ML-DSA private key",
                reason: "not a PKCS#8 PrivateKeyInfo for this parameter set",
            }
        })?;
        Ok(Self(pair))
    }

    /// The SubjectPublicKeyInfo DER.
    pub(super) fn public_key_der(&self) -> Result<Vec<u8>, CryptoError> {
        let der = self
            .0
            .public_key()
            .as_der()
            .map_err(|_| CryptoError::Operation("ML-DSA public key encoding"))?;
        Ok(der.as_ref().to_vec())
    }

    /// Signs an already checked message (hedged signing, empty context).
    pub(super) fn sign(
        &self,
        message_type: MessageType,
        message: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        if message_type != MessageType::Raw {
            return Err(EXTERNAL_MU_UNSUPPORTED);
        }
        let mut sig = vec![0u8; self.0.algorithm().signature_len()];
        let n = self
            .0
            .sign(message, &mut sig)
            .map_err(|_| CryptoError::Operation("ML-DSA sign"))?;
        sig.truncate(n);
        Ok(sig)
    }
}

/// Verifies an ML-DSA signature with a SubjectPublicKeyInfo.
pub(super) fn verify(
    spec: KeySpec,
    spki: &[u8],
    message_type: MessageType,
    message: &[u8],
    sig: &[u8],
) -> Result<bool, CryptoError> {
    if message_type != MessageType::Raw {
        return Err(EXTERNAL_MU_UNSUPPORTED);
    }
    parsed_verify(
        verification_alg(spec)?,
        spki,
        SigningAlgorithm::MlDsaShake256,
        message_type,
        message,
        sig,
    )
}
