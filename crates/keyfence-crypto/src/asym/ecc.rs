//! ECDSA on P-256, P-384, P-521 and secp256k1 (DER signatures, as AWS
//! returns them) and ECDH on the NIST curves.
//!
//! Private material is an unencrypted PKCS#8 v1 `PrivateKeyInfo` (DER) with the
//! curve named in the algorithm parameters.

use aws_lc_rs::agreement;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{self, EcdsaKeyPair, EcdsaSigningAlgorithm, KeyPair};

use super::spec::{KeySpec, MessageType, SigningAlgorithm};
use super::{parsed_verify, signing_input, SigningInput};
use crate::{CryptoError, Secret};

/// The one ECDSA algorithm (curve and hash) AWS allows for each curve.
fn signing_alg(spec: KeySpec) -> Result<&'static EcdsaSigningAlgorithm, CryptoError> {
    Ok(match spec {
        KeySpec::EccNistP256 => &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        KeySpec::EccNistP384 => &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
        KeySpec::EccNistP521 => &signature::ECDSA_P521_SHA512_ASN1_SIGNING,
        KeySpec::EccSecgP256k1 => &signature::ECDSA_P256K1_SHA256_ASN1_SIGNING,
        _ => return Err(CryptoError::Incompatible("not an ECDSA key spec")),
    })
}

fn verification_alg(
    spec: KeySpec,
) -> Result<&'static signature::EcdsaVerificationAlgorithm, CryptoError> {
    Ok(match spec {
        KeySpec::EccNistP256 => &signature::ECDSA_P256_SHA256_ASN1,
        KeySpec::EccNistP384 => &signature::ECDSA_P384_SHA384_ASN1,
        KeySpec::EccNistP521 => &signature::ECDSA_P521_SHA512_ASN1,
        KeySpec::EccSecgP256k1 => &signature::ECDSA_P256K1_SHA256_ASN1,
        _ => return Err(CryptoError::Incompatible("not an ECDSA key spec")),
    })
}

/// A parsed ECDSA key.
pub(super) struct EcKey(EcdsaKeyPair);

impl EcKey {
    /// A fresh key pair and its PKCS#8 encoding.
    pub(super) fn generate(spec: KeySpec) -> Result<(Self, Secret), CryptoError> {
        let pair = EcdsaKeyPair::generate(signing_alg(spec)?)
            .map_err(|_| CryptoError::Operation("EC keygen"))?;
        let der = pair
            .to_pkcs8v1()
            .map_err(|_| CryptoError::Operation("EC PKCS#8 encoding"))?;
        Ok((Self(pair), Secret::new(der.as_ref().to_vec())))
    }

    /// Parses PKCS#8; the curve must be the one `spec` names.
    pub(super) fn from_pkcs8(spec: KeySpec, der: &[u8]) -> Result<Self, CryptoError> {
        let pair = EcdsaKeyPair::from_pkcs8(signing_alg(spec)?, der).map_err(|_| {
            CryptoError::Malformed {
                what: "EC private key",
                reason: "not a PKCS#8 PrivateKeyInfo on this curve",
            }
        })?;
        Ok(Self(pair))
    }

    /// The SubjectPublicKeyInfo DER (uncompressed point).
    pub(super) fn public_key_der(&self) -> Result<Vec<u8>, CryptoError> {
        let der = self
            .0
            .public_key()
            .as_der()
            .map_err(|_| CryptoError::Operation("EC public key encoding"))?;
        Ok(der.as_ref().to_vec())
    }

    /// Signs an already checked message; the signature is DER `ECDSA-Sig-Value`.
    pub(super) fn sign(
        &self,
        alg: SigningAlgorithm,
        message_type: MessageType,
        message: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let sig = match signing_input(alg, message_type, message)? {
            SigningInput::Raw(m) => self.0.sign(&aws_lc_rs::rand::SystemRandom::new(), m),
            SigningInput::Digest(d) => self.0.sign_digest(&d),
        }
        .map_err(|_| CryptoError::Operation("ECDSA sign"))?;
        Ok(sig.as_ref().to_vec())
    }
}

/// Verifies an ECDSA signature with a public key on `spec`'s curve.
pub(super) fn verify(
    spec: KeySpec,
    spki: &[u8],
    alg: SigningAlgorithm,
    message_type: MessageType,
    message: &[u8],
    sig: &[u8],
) -> Result<bool, CryptoError> {
    parsed_verify(
        verification_alg(spec)?,
        spki,
        alg,
        message_type,
        message,
        sig,
    )
}

/// ECDH between our PKCS#8 private key and a peer's SubjectPublicKeyInfo on
/// the same NIST curve; returns the raw shared secret (the x-coordinate), as
/// AWS DeriveSharedSecret does.
pub(super) fn derive_shared_secret(
    spec: KeySpec,
    pkcs8: &[u8],
    peer_spki: &[u8],
) -> Result<Secret, CryptoError> {
    let alg = match spec {
        KeySpec::EccNistP256 => &agreement::ECDH_P256,
        KeySpec::EccNistP384 => &agreement::ECDH_P384,
        KeySpec::EccNistP521 => &agreement::ECDH_P521,
        KeySpec::EccSecgP256k1 => {
            return Err(CryptoError::Unsupported(
                "ECDH on secp256k1: aws-lc-rs agreement has no secp256k1 curve",
            ))
        }
        _ => {
            return Err(CryptoError::Incompatible(
                "key agreement needs an ECC key spec",
            ))
        }
    };
    let ours = agreement::PrivateKey::from_private_key_der(alg, pkcs8).map_err(|_| {
        CryptoError::Malformed {
            what: "EC private key",
            reason: "not a PKCS#8 PrivateKeyInfo on this curve",
        }
    })?;
    let peer =
        agreement::ParsedPublicKey::try_from(agreement::UnparsedPublicKey::new(alg, peer_spki))
            .map_err(|_| CryptoError::Malformed {
                what: "peer public key",
                reason: "not a valid public key on this curve",
            })?;
    if !matches!(peer.format(), agreement::ParsedPublicKeyFormat::X509) {
        return Err(CryptoError::Malformed {
            what: "peer public key",
            reason: "not a DER SubjectPublicKeyInfo",
        });
    }
    agreement::agree(&ours, peer, CryptoError::Operation("ECDH"), |shared| {
        Ok(Secret::new(shared.to_vec()))
    })
}
