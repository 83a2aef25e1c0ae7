//! Key wrapping: a symmetric key sealed under another with AES-256-GCM and a
//! random nonce, bound by AAD to what it is (a label and the owner's identifiers).
//!
//! Format: nonce (12) ‖ ciphertext ‖ tag (16); 60 bytes for a 256-bit key.

use crate::{aead, rand, CryptoError, Secret, SymmetricKey};

/// Length of a wrapped 256-bit key.
pub const WRAPPED_KEY_BYTES: usize = aead::NONCE_BYTES + SymmetricKey::LEN + aead::TAG_BYTES;

/// Wraps `key` under `kek`; `binding` must be supplied again to unwrap.
pub fn wrap(
    kek: &SymmetricKey,
    binding: &[u8],
    key: &SymmetricKey,
) -> Result<Vec<u8>, CryptoError> {
    let nonce = rand::array::<{ aead::NONCE_BYTES }>()?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&aead::seal(kek, nonce, binding, key.expose())?);
    Ok(out)
}

/// Unwraps a key wrapped by [`wrap`] with the same `kek` and `binding`.
pub fn unwrap(
    kek: &SymmetricKey,
    binding: &[u8],
    wrapped: &[u8],
) -> Result<SymmetricKey, CryptoError> {
    if wrapped.len() != WRAPPED_KEY_BYTES {
        return Err(CryptoError::InvalidLength {
            what: "wrapped key",
            expected: WRAPPED_KEY_BYTES,
            got: wrapped.len(),
        });
    }
    let (nonce, sealed) = wrapped.split_at(aead::NONCE_BYTES);
    let nonce: [u8; aead::NONCE_BYTES] = nonce.try_into().expect("split at nonce length");
    let plain = zeroize::Zeroizing::new(aead::open(kek, nonce, binding, sealed)?);
    SymmetricKey::from_slice(&plain)
}

/// Wraps secret bytes of any length (e.g. a PKCS#8 private key) under `kek`.
pub fn wrap_bytes(
    kek: &SymmetricKey,
    binding: &[u8],
    secret: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let nonce = rand::array::<{ aead::NONCE_BYTES }>()?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&aead::seal(kek, nonce, binding, secret)?);
    Ok(out)
}

/// Unwraps bytes wrapped by [`wrap_bytes`].
pub fn unwrap_bytes(
    kek: &SymmetricKey,
    binding: &[u8],
    wrapped: &[u8],
) -> Result<Secret, CryptoError> {
    if wrapped.len() < aead::NONCE_BYTES + aead::TAG_BYTES {
        return Err(CryptoError::Malformed {
            what: "wrapped secret",
            reason: "shorter than nonce and tag",
        });
    }
    let (nonce, sealed) = wrapped.split_at(aead::NONCE_BYTES);
    let nonce: [u8; aead::NONCE_BYTES] = nonce.try_into().expect("split at nonce length");
    Ok(Secret::new(aead::open(kek, nonce, binding, sealed)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_binds_key_and_binding() {
        let kek = SymmetricKey::generate().unwrap();
        let key = SymmetricKey::generate().unwrap();
        let wrapped = wrap(&kek, b"key-1/v1", &key).unwrap();
        assert_eq!(wrapped.len(), WRAPPED_KEY_BYTES);
        assert_eq!(unwrap(&kek, b"key-1/v1", &wrapped).unwrap(), key);
        assert!(unwrap(&kek, b"key-2/v1", &wrapped).is_err());
        assert!(unwrap(&SymmetricKey::generate().unwrap(), b"key-1/v1", &wrapped).is_err());
        assert!(matches!(
            unwrap(&kek, b"key-1/v1", &wrapped[1..]),
            Err(CryptoError::InvalidLength { .. })
        ));
    }

    #[test]
    fn wrap_bytes_round_trip() {
        let kek = SymmetricKey::generate().unwrap();
        let wrapped = wrap_bytes(&kek, b"b", &[7u8; 1200]).unwrap();
        assert_eq!(
            unwrap_bytes(&kek, b"b", &wrapped).unwrap().expose(),
            &[7u8; 1200][..]
        );
        assert!(unwrap_bytes(&kek, b"c", &wrapped).is_err());
        assert!(unwrap_bytes(&kek, b"b", &wrapped[..20]).is_err());
    }
}
