//! Zeroizing containers for secret bytes.

use std::fmt;

use zeroize::{Zeroize, Zeroizing};

use crate::{ct, rand, CryptoError};

/// Secret bytes of any length: zeroized on drop, redacted in `Debug`,
/// compared in constant time.
#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Takes ownership of `bytes`; the caller's copy is moved, not duplicated.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// `len` fresh random bytes.
    pub fn random(len: usize) -> Result<Self, CryptoError> {
        let mut bytes = vec![0u8; len];
        rand::fill(&mut bytes)?;
        Ok(Self::new(bytes))
    }

    /// The secret bytes. Keep the borrow short and never log it.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Number of secret bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for a zero-length secret.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret([REDACTED; {} bytes])", self.0.len())
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        ct::eq(&self.0, &other.0)
    }
}

impl Eq for Secret {}

/// A 256-bit symmetric key (AES-256, HMAC-SHA256 or HKDF input keying material).
#[derive(Clone)]
pub struct SymmetricKey(Zeroizing<[u8; 32]>);

impl SymmetricKey {
    /// Key length in bytes.
    pub const LEN: usize = 32;

    /// A fresh random key.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::fill(key.as_mut())?;
        Ok(Self(key))
    }

    /// Builds a key from exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() != Self::LEN {
            return Err(CryptoError::InvalidLength {
                what: "symmetric key",
                expected: Self::LEN,
                got: bytes.len(),
            });
        }
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(bytes);
        Ok(Self(key))
    }

    /// The key bytes. Keep the borrow short and never log it.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl From<[u8; 32]> for SymmetricKey {
    fn from(mut bytes: [u8; 32]) -> Self {
        let key = Self(Zeroizing::new(bytes));
        bytes.zeroize();
        key
    }
}

impl fmt::Debug for SymmetricKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SymmetricKey([REDACTED])")
    }
}

impl PartialEq for SymmetricKey {
    fn eq(&self, other: &Self) -> bool {
        ct::eq(self.0.as_ref(), other.0.as_ref())
    }
}

impl Eq for SymmetricKey {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_material() {
        let key = SymmetricKey::from([0xAB; 32]);
        let shown = format!("{key:?} {:?}", Secret::new(vec![0xAB; 4]));
        assert!(!shown.to_lowercase().contains("ab"), "{shown}");
        assert!(shown.contains("REDACTED"));
    }

    #[test]
    fn wrong_length_is_rejected() {
        assert_eq!(
            SymmetricKey::from_slice(&[0; 31]),
            Err(CryptoError::InvalidLength {
                what: "symmetric key",
                expected: 32,
                got: 31
            })
        );
    }

    #[test]
    fn generated_keys_differ() {
        assert_ne!(
            SymmetricKey::generate().unwrap(),
            SymmetricKey::generate().unwrap()
        );
    }
}
