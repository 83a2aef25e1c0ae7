//! Key wrapping: a symmetric key sealed under another with AES-256-GCM and a
//! random nonce, bound by AAD to what it is (a label and the owner's identifiers).
//!
//! Format: nonce (12) ‖ ciphertext (32) ‖ tag (16) = 60 bytes.

use crate::{aead, rand, CryptoError, SymmetricKey};

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
}
