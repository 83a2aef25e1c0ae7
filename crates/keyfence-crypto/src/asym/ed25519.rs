//! Ed25519 (RFC 8032), pure mode.
//!
//! Private material is an unencrypted PKCS#8 v1 `PrivateKeyInfo` (RFC 8410);
//! v2 (with the public key) is accepted on import.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair};

use super::parsed_verify;
use super::spec::{MessageType, SigningAlgorithm};
use crate::{CryptoError, Secret};

/// A parsed Ed25519 key.
pub(super) struct EdKey(Ed25519KeyPair);

impl EdKey {
    /// A fresh key pair and its PKCS#8 v1 encoding.
    pub(super) fn generate() -> Result<(Self, Secret), CryptoError> {
        let pair =
            Ed25519KeyPair::generate().map_err(|_| CryptoError::Operation("Ed25519 keygen"))?;
        let der = pair
            .to_pkcs8v1()
            .map_err(|_| CryptoError::Operation("Ed25519 PKCS#8 encoding"))?;
        Ok((Self(pair), Secret::new(der.as_ref().to_vec())))
    }

    /// Parses PKCS#8 v1 or v2 (a v2 public key must match the seed).
    pub(super) fn from_pkcs8(der: &[u8]) -> Result<Self, CryptoError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|_| {
            CryptoError::Malformed {
                what: "Ed25519 private key",
                reason: "not an Ed25519 PKCS#8 PrivateKeyInfo",
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
            .map_err(|_| CryptoError::Operation("Ed25519 public key encoding"))?;
        Ok(der.as_ref().to_vec())
    }

    /// Signs an already checked message.
    pub(super) fn sign(
        &self,
        alg: SigningAlgorithm,
        message: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        match alg {
            SigningAlgorithm::Ed25519Sha512 => Ok(self
                .0
                .try_sign(message)
                .map_err(|_| CryptoError::Operation("Ed25519 sign"))?
                .as_ref()
                .to_vec()),
            _ => Err(ED25519PH_UNSUPPORTED),
        }
    }
}

/// aws-lc-rs exposes pure Ed25519 only.
const ED25519PH_UNSUPPORTED: CryptoError =
    CryptoError::Unsupported("ED25519_PH_SHA_512: aws-lc-rs has no Ed25519ph (RFC 8032 prehash)");

/// Verifies an Ed25519 signature with a SubjectPublicKeyInfo.
pub(super) fn verify(
    spki: &[u8],
    alg: SigningAlgorithm,
    message_type: MessageType,
    message: &[u8],
    sig: &[u8],
) -> Result<bool, CryptoError> {
    match alg {
        SigningAlgorithm::Ed25519Sha512 => {
            parsed_verify(&signature::ED25519, spki, alg, message_type, message, sig)
        }
        _ => Err(ED25519PH_UNSUPPORTED),
    }
}
