//! The ciphertext blob that Encrypt returns and Decrypt accepts.
//!
//! Version 1, symmetric (all integers big-endian):
//!
//! ```text
//! offset  len  field
//! 0       3    magic "KFC"
//! 3       1    format version (1)
//! 4       1    algorithm id (1 = SYMMETRIC_DEFAULT: HKDF-SHA256 + AES-256-GCM)
//! 5       16   key id (UUID bytes)
//! 21      4    backing key version
//! 25      32   salt: per-request key and nonce = HKDF(backing key, salt)
//! 57      n    AES-256-GCM ciphertext
//! 57+n    16   tag
//! ```
//!
//! The header (bytes 0..57) is authenticated as the first part of the AAD, the
//! canonical encryption context as the rest; the context itself is never stored.

use crate::{aead, kdf, rand, CryptoError, SymmetricKey};

const MAGIC: &[u8; 3] = b"KFC";
/// The only format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Length of the authenticated header.
pub const HEADER_BYTES: usize = 57;
/// Smallest valid blob: header and tag around an empty ciphertext.
pub const MIN_BLOB_BYTES: usize = HEADER_BYTES + aead::TAG_BYTES;

const REQUEST_KEY_INFO: &[u8] = b"keyfence/v1/symmetric-request-key";

/// Algorithm of a ciphertext blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobAlgorithm {
    /// AWS's SYMMETRIC_DEFAULT: per-request key by HKDF-SHA256, AES-256-GCM.
    SymmetricDefault,
}

impl BlobAlgorithm {
    fn id(self) -> u8 {
        match self {
            Self::SymmetricDefault => 1,
        }
    }

    fn from_id(id: u8) -> Result<Self, CryptoError> {
        match id {
            1 => Ok(Self::SymmetricDefault),
            _ => Err(malformed("unknown algorithm id")),
        }
    }
}

/// The authenticated header of a blob: what Decrypt needs to find the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobHeader {
    /// Algorithm used.
    pub algorithm: BlobAlgorithm,
    /// Key id (the 16 bytes of the KMS key's UUID).
    pub key_id: [u8; 16],
    /// Backing key version that encrypted.
    pub key_version: u32,
    /// Random salt for the per-request key.
    pub salt: [u8; 32],
}

impl BlobHeader {
    fn encode(&self) -> [u8; HEADER_BYTES] {
        let mut out = [0u8; HEADER_BYTES];
        out[..3].copy_from_slice(MAGIC);
        out[3] = FORMAT_VERSION;
        out[4] = self.algorithm.id();
        out[5..21].copy_from_slice(&self.key_id);
        out[21..25].copy_from_slice(&self.key_version.to_be_bytes());
        out[25..57].copy_from_slice(&self.salt);
        out
    }
}

/// A parsed ciphertext blob. Parsing checks structure only; authenticity is
/// checked by [`open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiphertextBlob {
    /// The authenticated header.
    pub header: BlobHeader,
    /// Ciphertext followed by the GCM tag.
    pub sealed: Vec<u8>,
}

fn malformed(reason: &'static str) -> CryptoError {
    CryptoError::Malformed {
        what: "ciphertext blob",
        reason,
    }
}

impl CiphertextBlob {
    /// Parses untrusted bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() < 4 || &bytes[..3] != MAGIC {
            return Err(malformed("not a keyfence ciphertext"));
        }
        if bytes[3] != FORMAT_VERSION {
            return Err(malformed("unsupported format version"));
        }
        if bytes.len() < MIN_BLOB_BYTES {
            return Err(malformed("truncated"));
        }
        let algorithm = BlobAlgorithm::from_id(bytes[4])?;
        let mut key_id = [0u8; 16];
        key_id.copy_from_slice(&bytes[5..21]);
        let key_version = u32::from_be_bytes(bytes[21..25].try_into().expect("4 bytes"));
        let mut salt = [0u8; 32];
        salt.copy_from_slice(&bytes[25..57]);
        Ok(Self {
            header: BlobHeader {
                algorithm,
                key_id,
                key_version,
                salt,
            },
            sealed: bytes[HEADER_BYTES..].to_vec(),
        })
    }

    /// The blob's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_BYTES + self.sealed.len());
        out.extend_from_slice(&self.header.encode());
        out.extend_from_slice(&self.sealed);
        out
    }
}

fn request_key(
    backing: &SymmetricKey,
    header: &BlobHeader,
) -> Result<(SymmetricKey, [u8; 12]), CryptoError> {
    let okm = kdf::derive::<44>(backing.expose(), &header.salt, &[REQUEST_KEY_INFO])?;
    let key = SymmetricKey::from_slice(&okm[..32])?;
    let nonce: [u8; 12] = okm[32..].try_into().expect("12 bytes");
    Ok((key, nonce))
}

fn aad(header: &[u8; HEADER_BYTES], context: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(HEADER_BYTES + context.len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(context);
    aad
}

/// Encrypts `plaintext` under backing key `backing` (version `key_version` of
/// key `key_id`) with a fresh salt; `context` is the canonical encryption context.
pub fn seal(
    backing: &SymmetricKey,
    key_id: [u8; 16],
    key_version: u32,
    context: &[u8],
    plaintext: &[u8],
) -> Result<CiphertextBlob, CryptoError> {
    let header = BlobHeader {
        algorithm: BlobAlgorithm::SymmetricDefault,
        key_id,
        key_version,
        salt: rand::array()?,
    };
    let (key, nonce) = request_key(backing, &header)?;
    let sealed = aead::seal(&key, nonce, &aad(&header.encode(), context), plaintext)?;
    Ok(CiphertextBlob { header, sealed })
}

/// Decrypts a blob with the backing key its header names; fails with
/// [`CryptoError::AuthenticationFailed`] on any wrong key, context or byte.
pub fn open(
    backing: &SymmetricKey,
    blob: &CiphertextBlob,
    context: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let (key, nonce) = request_key(backing, &blob.header)?;
    aead::open(
        &key,
        nonce,
        &aad(&blob.header.encode(), context),
        &blob.sealed,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> (SymmetricKey, Vec<u8>) {
        let k = SymmetricKey::generate().unwrap();
        let blob = seal(&k, [9; 16], 3, b"ctx", b"attack at dawn").unwrap();
        (k, blob.to_bytes())
    }

    #[test]
    fn round_trip() {
        let (k, bytes) = sample();
        let blob = CiphertextBlob::parse(&bytes).unwrap();
        assert_eq!(blob.header.key_id, [9; 16]);
        assert_eq!(blob.header.key_version, 3);
        assert_eq!(blob.to_bytes(), bytes);
        assert_eq!(open(&k, &blob, b"ctx").unwrap(), b"attack at dawn");
        assert_eq!(
            open(&k, &blob, b"ctx2"),
            Err(CryptoError::AuthenticationFailed)
        );
    }

    #[test]
    fn every_flipped_byte_is_rejected() {
        let (k, bytes) = sample();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            let result = CiphertextBlob::parse(&bad).and_then(|b| open(&k, &b, b"ctx"));
            assert!(result.is_err(), "byte {i} flipped was accepted");
        }
    }

    #[test]
    fn truncations_are_rejected() {
        let (k, bytes) = sample();
        for len in 0..bytes.len() {
            let result = CiphertextBlob::parse(&bytes[..len]).and_then(|b| open(&k, &b, b"ctx"));
            assert!(result.is_err(), "truncated to {len} accepted");
        }
        assert_eq!(
            CiphertextBlob::parse(b"KFC"),
            Err(malformed("not a keyfence ciphertext"))
        );
        assert_eq!(
            CiphertextBlob::parse(b"KFC\x02rest"),
            Err(malformed("unsupported format version"))
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = CiphertextBlob::parse(&bytes);
        }

        #[test]
        fn parse_never_panics_with_valid_prefix(tail in proptest::collection::vec(any::<u8>(), 0..120), alg in any::<u8>()) {
            let mut bytes = b"KFC\x01".to_vec();
            bytes.push(alg);
            bytes.extend(tail);
            if let Ok(blob) = CiphertextBlob::parse(&bytes) {
                prop_assert_eq!(blob.to_bytes(), bytes);
            }
        }
    }
}
