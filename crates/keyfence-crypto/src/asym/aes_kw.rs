//! AES key wrap with padding (RFC 5649 / NIST SP 800-38F KWP) and the AWS
//! import wrapping formats built on it and on RSA-OAEP.
//!
//! `RSA_AES_KEY_WRAP_SHA_*` (as AWS documents it, the PKCS#11
//! `CKM_RSA_AES_KEY_WRAP` layout): a fresh 256-bit AES key wrapped with
//! RSA-OAEP (SHA-1 or SHA-256, MGF1 with the same hash), followed by the key
//! material wrapped under that AES key with AES-KWP:
//! `RSA-OAEP(k) ‖ AES-KWP(k, material)`, the first part exactly the size of the
//! RSA modulus.

use aws_lc_rs::key_wrap::{AesKek, KeyWrapPadded, AES_128, AES_256};

use super::spec::{EncryptionAlgorithm, KeySpec, WrappingAlgorithm};
use crate::{CryptoError, Secret};

fn kek(key: &[u8]) -> Result<AesKek, CryptoError> {
    let cipher = match key.len() {
        16 => &AES_128,
        32 => &AES_256,
        got => {
            return Err(CryptoError::InvalidLength {
                what: "AES-KWP key (16 or 32 bytes)",
                expected: 32,
                got,
            })
        }
    };
    AesKek::new(cipher, key).map_err(|_| CryptoError::Operation("AES-KWP key"))
}

/// Wraps `plaintext` (1 byte or more) under an AES-128 or AES-256 key with
/// AES-KWP (RFC 5649).
pub fn aes_kwp_wrap(key: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if plaintext.is_empty() {
        return Err(CryptoError::InvalidLength {
            what: "AES-KWP plaintext (minimum)",
            expected: 1,
            got: 0,
        });
    }
    let mut out = vec![0u8; plaintext.len().div_ceil(8) * 8 + 8];
    let n = kek(key)?
        .wrap_with_padding(plaintext, &mut out)
        .map_err(|_| CryptoError::Operation("AES-KWP wrap"))?
        .len();
    out.truncate(n);
    Ok(out)
}

/// Unwraps an AES-KWP (RFC 5649) ciphertext; a wrong key or tampered bytes
/// are `AuthenticationFailed` (the integrity check fails).
pub fn aes_kwp_unwrap(key: &[u8], ciphertext: &[u8]) -> Result<Secret, CryptoError> {
    if ciphertext.len() < 16 || !ciphertext.len().is_multiple_of(8) {
        return Err(CryptoError::Malformed {
            what: "AES-KWP ciphertext",
            reason: "length is not a multiple of 8 of at least 16",
        });
    }
    let mut out = zeroize::Zeroizing::new(vec![0u8; ciphertext.len()]);
    let n = kek(key)?
        .unwrap_with_padding(ciphertext, &mut out)
        .map_err(|_| CryptoError::AuthenticationFailed)?
        .len();
    Ok(Secret::new(out[..n].to_vec()))
}

/// The OAEP hash of a wrapping algorithm, and whether AES-KWP follows.
fn parts(alg: WrappingAlgorithm) -> (EncryptionAlgorithm, bool) {
    match alg {
        WrappingAlgorithm::RsaesOaepSha1 => (EncryptionAlgorithm::RsaesOaepSha1, false),
        WrappingAlgorithm::RsaesOaepSha256 => (EncryptionAlgorithm::RsaesOaepSha256, false),
        WrappingAlgorithm::RsaAesKeyWrapSha1 => (EncryptionAlgorithm::RsaesOaepSha1, true),
        WrappingAlgorithm::RsaAesKeyWrapSha256 => (EncryptionAlgorithm::RsaesOaepSha256, true),
    }
}

/// Unwraps imported key material (ImportKeyMaterial's `EncryptedKeyMaterial`)
/// with the RSA wrapping key from GetParametersForImport. Any integrity
/// failure is `AuthenticationFailed`.
pub fn unwrap_import(
    wrapping_key: &super::PrivateKey,
    alg: WrappingAlgorithm,
    wrapped: &[u8],
) -> Result<Secret, CryptoError> {
    let spec = wrapping_key.spec();
    if !spec.is_wrapping_key_spec() {
        return Err(CryptoError::Incompatible("not a wrapping key spec"));
    }
    let (oaep, kwp) = parts(alg);
    if !kwp {
        return wrapping_key.decrypt(oaep, wrapped);
    }
    let rsa_len = super::rsa::modulus_bits(spec).unwrap_or(0) / 8;
    if wrapped.len() <= rsa_len {
        return Err(CryptoError::Malformed {
            what: "RSA-AES wrapped key material",
            reason: "shorter than the RSA part",
        });
    }
    let (rsa_part, kwp_part) = wrapped.split_at(rsa_len);
    let aes_key = wrapping_key.decrypt(oaep, rsa_part)?;
    if aes_key.len() != 32 {
        return Err(CryptoError::InvalidLength {
            what: "RSA-AES ephemeral AES key",
            expected: 32,
            got: aes_key.len(),
        });
    }
    aes_kwp_unwrap(aes_key.expose(), kwp_part)
}

/// Wraps key material for import as a client would, with the wrapping
/// public key (DER SubjectPublicKeyInfo) GetParametersForImport returned.
pub fn wrap_for_import(
    wrapping_spec: KeySpec,
    wrapping_spki: &[u8],
    alg: WrappingAlgorithm,
    material: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    if !wrapping_spec.is_wrapping_key_spec() {
        return Err(CryptoError::Incompatible("not a wrapping key spec"));
    }
    let (oaep, kwp) = parts(alg);
    if !kwp {
        return super::encrypt_with_public_key(wrapping_spec, wrapping_spki, oaep, material);
    }
    let aes_key = Secret::random(32)?;
    let mut out =
        super::encrypt_with_public_key(wrapping_spec, wrapping_spki, oaep, aes_key.expose())?;
    out.extend(aes_kwp_wrap(aes_key.expose(), material)?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kwp_round_trips_every_short_length() {
        for key_len in [16, 32] {
            let key = vec![7u8; key_len];
            for len in 1usize..=70 {
                let pt: Vec<u8> = (0..len as u8).collect();
                let ct = aes_kwp_wrap(&key, &pt).unwrap();
                assert_eq!(ct.len(), len.div_ceil(8) * 8 + 8);
                assert_eq!(aes_kwp_unwrap(&key, &ct).unwrap().expose(), &pt[..]);
                let mut bad = ct.clone();
                bad[len % ct.len()] ^= 1;
                assert_eq!(
                    aes_kwp_unwrap(&key, &bad),
                    Err(CryptoError::AuthenticationFailed)
                );
            }
        }
    }

    #[test]
    fn kwp_rejects_bad_shapes() {
        assert!(matches!(
            aes_kwp_wrap(&[0; 24], b"x"),
            Err(CryptoError::InvalidLength { .. })
        ));
        assert!(matches!(
            aes_kwp_wrap(&[0; 32], b""),
            Err(CryptoError::InvalidLength { .. })
        ));
        assert!(matches!(
            aes_kwp_unwrap(&[0; 32], &[0; 15]),
            Err(CryptoError::Malformed { .. })
        ));
        assert!(matches!(
            aes_kwp_unwrap(&[0; 32], &[0; 17]),
            Err(CryptoError::Malformed { .. })
        ));
    }

    fn h(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// NIST CAVP SP 800-38F KWP vectors (KWP_AE_128/256 and KWP_AD_128,
    /// COUNT 0). RFC 5649's own examples use a 192-bit KEK, which aws-lc-rs
    /// key wrap does not offer.
    #[test]
    fn nist_kwp_known_answers() {
        for (key, pt, ct) in [
            (
                "6decf10a1caf8e3b80c7a4be8c9c84e8",
                "49",
                "01a7d657fc4a5b216f261cca4d052c2b",
            ),
            (
                "068b05d005902438bb7a837c18ca4d7abab63c7de558993df68492b3cf3c1c3c",
                "24",
                "d54525e33b8d29aa1497ffeb13acd10a",
            ),
            (
                "49319c331231cd6bf74c2f70b07fcc5c",
                "e4",
                "9c211f32f8b341f32b052fed5f31a387",
            ),
        ] {
            let (key, pt, ct) = (h(key), h(pt), h(ct));
            assert_eq!(aes_kwp_wrap(&key, &pt).unwrap(), ct);
            assert_eq!(aes_kwp_unwrap(&key, &ct).unwrap().expose(), &pt[..]);
        }
    }
}
