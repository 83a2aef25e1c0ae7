//! RSA 2048/3072/4096: RSASSA-PSS and PKCS#1 v1.5 signatures, RSAES-OAEP.
//!
//! Private material is an unencrypted PKCS#8 v1 `PrivateKeyInfo` (DER).

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rsa::{self, KeySize, OaepPrivateDecryptingKey, OaepPublicEncryptingKey};
use aws_lc_rs::signature::{self, KeyPair, RsaEncoding, VerificationAlgorithm};

use super::spec::{EncryptionAlgorithm, KeySpec, MessageType, SigningAlgorithm};
use super::{parsed_verify, signing_input, SigningInput};
use crate::{CryptoError, Secret};

/// The modulus size of an RSA spec, in bits.
pub(super) fn modulus_bits(spec: KeySpec) -> Option<usize> {
    match spec {
        KeySpec::Rsa2048 => Some(2048),
        KeySpec::Rsa3072 => Some(3072),
        KeySpec::Rsa4096 => Some(4096),
        _ => None,
    }
}

fn expected_bits(spec: KeySpec) -> Result<usize, CryptoError> {
    modulus_bits(spec).ok_or(CryptoError::Incompatible("not an RSA key spec"))
}

const NOT_PKCS8: CryptoError = CryptoError::Malformed {
    what: "RSA private key",
    reason: "not an RSA PKCS#8 PrivateKeyInfo",
};

const NOT_SPKI: CryptoError = CryptoError::Malformed {
    what: "RSA public key",
    reason: "not an RSA SubjectPublicKeyInfo",
};

/// A parsed RSA signing key.
pub(super) struct RsaKey(rsa::KeyPair);

impl RsaKey {
    /// A fresh key pair and its PKCS#8 encoding.
    pub(super) fn generate(spec: KeySpec) -> Result<(Self, Secret), CryptoError> {
        let size = match spec {
            KeySpec::Rsa2048 => KeySize::Rsa2048,
            KeySpec::Rsa3072 => KeySize::Rsa3072,
            KeySpec::Rsa4096 => KeySize::Rsa4096,
            _ => return Err(CryptoError::Incompatible("not an RSA key spec")),
        };
        let pair =
            rsa::KeyPair::generate(size).map_err(|_| CryptoError::Operation("RSA keygen"))?;
        let der: Pkcs8V1Der<'static> = pair
            .as_der()
            .map_err(|_| CryptoError::Operation("RSA PKCS#8 encoding"))?;
        Ok((Self(pair), Secret::new(der.as_ref().to_vec())))
    }

    /// Parses PKCS#8 and checks the modulus size matches `spec`.
    pub(super) fn from_pkcs8(spec: KeySpec, der: &[u8]) -> Result<Self, CryptoError> {
        let expected = expected_bits(spec)?;
        let pair = rsa::KeyPair::from_pkcs8(der).map_err(|_| NOT_PKCS8)?;
        let got = pair.public_modulus_len() * 8;
        if got != expected {
            return Err(CryptoError::InvalidLength {
                what: "RSA modulus bits",
                expected,
                got,
            });
        }
        Ok(Self(pair))
    }

    /// The SubjectPublicKeyInfo DER.
    pub(super) fn public_key_der(&self) -> Result<Vec<u8>, CryptoError> {
        let der = self
            .0
            .public_key()
            .as_der()
            .map_err(|_| CryptoError::Operation("RSA public key encoding"))?;
        Ok(der.as_ref().to_vec())
    }

    /// Signs an already checked message.
    pub(super) fn sign(
        &self,
        alg: SigningAlgorithm,
        message_type: MessageType,
        message: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let encoding = encoding(alg)?;
        let mut sig = vec![0u8; self.0.public_modulus_len()];
        let done = match signing_input(alg, message_type, message)? {
            SigningInput::Raw(m) => {
                self.0
                    .sign(encoding, &aws_lc_rs::rand::SystemRandom::new(), m, &mut sig)
            }
            SigningInput::Digest(d) => self.0.sign_digest(encoding, &d, &mut sig),
        };
        done.map_err(|_| CryptoError::Operation("RSA sign"))?;
        Ok(sig)
    }
}

fn encoding(alg: SigningAlgorithm) -> Result<&'static dyn RsaEncoding, CryptoError> {
    use SigningAlgorithm::*;
    Ok(match alg {
        RsassaPssSha256 => &signature::RSA_PSS_SHA256,
        RsassaPssSha384 => &signature::RSA_PSS_SHA384,
        RsassaPssSha512 => &signature::RSA_PSS_SHA512,
        RsassaPkcs1V15Sha256 => &signature::RSA_PKCS1_SHA256,
        RsassaPkcs1V15Sha384 => &signature::RSA_PKCS1_SHA384,
        RsassaPkcs1V15Sha512 => &signature::RSA_PKCS1_SHA512,
        _ => return Err(CryptoError::Incompatible("not an RSA signing algorithm")),
    })
}

fn verification(alg: SigningAlgorithm) -> Result<&'static dyn VerificationAlgorithm, CryptoError> {
    use SigningAlgorithm::*;
    Ok(match alg {
        RsassaPssSha256 => &signature::RSA_PSS_2048_8192_SHA256,
        RsassaPssSha384 => &signature::RSA_PSS_2048_8192_SHA384,
        RsassaPssSha512 => &signature::RSA_PSS_2048_8192_SHA512,
        RsassaPkcs1V15Sha256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        RsassaPkcs1V15Sha384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        RsassaPkcs1V15Sha512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        _ => return Err(CryptoError::Incompatible("not an RSA signing algorithm")),
    })
}

/// Checks that `spki` is an RSA public key of the size `spec` names.
pub(super) fn check_public_key(spec: KeySpec, spki: &[u8]) -> Result<(), CryptoError> {
    let expected = expected_bits(spec)?;
    let key = rsa::PublicEncryptingKey::from_der(spki).map_err(|_| NOT_SPKI)?;
    if key.key_size_bits() != expected {
        return Err(CryptoError::InvalidLength {
            what: "RSA modulus bits",
            expected,
            got: key.key_size_bits(),
        });
    }
    Ok(())
}

/// Verifies an RSA signature with a SubjectPublicKeyInfo.
pub(super) fn verify(
    spec: KeySpec,
    spki: &[u8],
    alg: SigningAlgorithm,
    message_type: MessageType,
    message: &[u8],
    sig: &[u8],
) -> Result<bool, CryptoError> {
    check_public_key(spec, spki)?;
    parsed_verify(verification(alg)?, spki, alg, message_type, message, sig)
}

/// RSAES-OAEP encryption with a SubjectPublicKeyInfo.
pub(super) fn encrypt(
    spki: &[u8],
    alg: EncryptionAlgorithm,
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let key = rsa::PublicEncryptingKey::from_der(spki).map_err(|_| NOT_SPKI)?;
    let key = OaepPublicEncryptingKey::new(key).map_err(|_| CryptoError::Operation("RSA OAEP"))?;
    let max = key.max_plaintext_size(alg.oaep());
    if plaintext.len() > max {
        return Err(CryptoError::InvalidLength {
            what: "RSA-OAEP plaintext (maximum)",
            expected: max,
            got: plaintext.len(),
        });
    }
    let mut out = vec![0u8; key.ciphertext_size()];
    let n = key
        .encrypt(alg.oaep(), plaintext, &mut out, None)
        .map_err(|_| CryptoError::Operation("RSA-OAEP encrypt"))?
        .len();
    out.truncate(n);
    Ok(out)
}

/// RSAES-OAEP decryption with the PKCS#8 private key. Any failure (wrong key,
/// wrong algorithm, tampered ciphertext) is `AuthenticationFailed`.
pub(super) fn decrypt(
    pkcs8: &[u8],
    alg: EncryptionAlgorithm,
    ciphertext: &[u8],
) -> Result<Secret, CryptoError> {
    let key = rsa::PrivateDecryptingKey::from_pkcs8(pkcs8).map_err(|_| NOT_PKCS8)?;
    let key = OaepPrivateDecryptingKey::new(key).map_err(|_| CryptoError::Operation("RSA OAEP"))?;
    if ciphertext.len() != key.key_size_bytes() {
        return Err(CryptoError::InvalidLength {
            what: "RSA-OAEP ciphertext",
            expected: key.key_size_bytes(),
            got: ciphertext.len(),
        });
    }
    let mut plain = zeroize::Zeroizing::new(vec![0u8; key.min_output_size()]);
    let n = key
        .decrypt(alg.oaep(), ciphertext, &mut plain, None)
        .map_err(|_| CryptoError::AuthenticationFailed)?
        .len();
    Ok(Secret::new(plain[..n].to_vec()))
}
