//! AES-256-GCM authenticated encryption.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};

use crate::{CryptoError, SymmetricKey};

/// Length of an AES-GCM nonce.
pub const NONCE_BYTES: usize = NONCE_LEN;
/// Length of an AES-GCM tag.
pub const TAG_BYTES: usize = 16;

fn key(k: &SymmetricKey) -> Result<LessSafeKey, CryptoError> {
    UnboundKey::new(&AES_256_GCM, k.expose())
        .map(LessSafeKey::new)
        .map_err(|_| CryptoError::Operation("aes-256-gcm key"))
}

/// Encrypts `plaintext` with `aad`; returns ciphertext ‖ tag. The caller
/// guarantees `nonce` is never reused with `k`.
pub fn seal(
    k: &SymmetricKey,
    nonce: [u8; NONCE_BYTES],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let mut in_out = Vec::with_capacity(plaintext.len() + TAG_BYTES);
    in_out.extend_from_slice(plaintext);
    key(k)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut in_out,
        )
        .map_err(|_| CryptoError::Operation("aes-256-gcm seal"))?;
    Ok(in_out)
}

/// Decrypts ciphertext ‖ tag; any change to key, nonce, AAD or bytes fails with
/// [`CryptoError::AuthenticationFailed`].
pub fn open(
    k: &SymmetricKey,
    nonce: [u8; NONCE_BYTES],
    aad: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < TAG_BYTES {
        return Err(CryptoError::AuthenticationFailed);
    }
    let mut in_out = sealed.to_vec();
    let len = key(k)?
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut in_out,
        )
        .map_err(|_| CryptoError::AuthenticationFailed)?
        .len();
    in_out.truncate(len);
    Ok(in_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let k = SymmetricKey::generate().unwrap();
        let sealed = seal(&k, [7; 12], b"aad", b"hello").unwrap();
        assert_eq!(open(&k, [7; 12], b"aad", &sealed).unwrap(), b"hello");
        assert_eq!(
            open(&k, [7; 12], b"aae", &sealed),
            Err(CryptoError::AuthenticationFailed)
        );
        assert_eq!(
            open(&k, [8; 12], b"aad", &sealed),
            Err(CryptoError::AuthenticationFailed)
        );
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert_eq!(
                open(&k, [7; 12], b"aad", &bad),
                Err(CryptoError::AuthenticationFailed)
            );
        }
        assert_eq!(
            open(&k, [7; 12], b"aad", &sealed[..10]),
            Err(CryptoError::AuthenticationFailed)
        );
    }
}
