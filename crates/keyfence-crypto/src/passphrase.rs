//! Passphrase-derived key-encryption keys (PBKDF2-HMAC-SHA256).

use std::num::NonZeroU32;

use aws_lc_rs::pbkdf2;

use crate::{CryptoError, SymmetricKey};

/// Iterations for new derivations (OWASP's 2023 figure for PBKDF2-HMAC-SHA256).
pub const DEFAULT_ITERATIONS: u32 = 600_000;

/// Derives a 256-bit key from `passphrase` and `salt`.
pub fn derive_key(
    passphrase: &[u8],
    salt: &[u8],
    iterations: u32,
) -> Result<SymmetricKey, CryptoError> {
    let iterations =
        NonZeroU32::new(iterations).ok_or(CryptoError::Operation("pbkdf2 with zero iterations"))?;
    let mut out = zeroize::Zeroizing::new([0u8; 32]);
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salt,
        passphrase,
        out.as_mut(),
    );
    SymmetricKey::from_slice(out.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7914 §11, PBKDF2-HMAC-SHA256 vector ("passwd", "salt", c = 1), first 32 bytes.
    #[test]
    fn rfc7914_vector() {
        let key = derive_key(b"passwd", b"salt", 1).unwrap();
        assert_eq!(
            key.expose().to_vec(),
            vec![
                0x55, 0xac, 0x04, 0x6e, 0x56, 0xe3, 0x08, 0x9f, 0xec, 0x16, 0x91, 0xc2, 0x25, 0x44,
                0xb6, 0x05, 0xf9, 0x41, 0x85, 0x21, 0x6d, 0xde, 0x04, 0x65, 0xe6, 0x8b, 0x9d, 0x57,
                0xc2, 0x0d, 0xac, 0xbc
            ]
        );
        assert!(derive_key(b"passwd", b"salt", 0).is_err());
    }
}
