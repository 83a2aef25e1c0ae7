//! HMAC keys (RFC 2104) with SHA-224/256/384/512.
//!
//! Private material is the raw key. Generated keys are as long as the hash
//! output; imported keys may be as long as AWS allows (from the hash output up
//! to the hash block size, that is 28–64, 32–64, 48–128 and 64–128 bytes).

use aws_lc_rs::hmac;

use super::spec::{KeySpec, MacAlgorithm};
use crate::{CryptoError, Secret};

/// The MAC algorithm of an HMAC spec.
fn algorithm(spec: KeySpec) -> Result<MacAlgorithm, CryptoError> {
    spec.mac_algorithms()
        .first()
        .copied()
        .ok_or(CryptoError::Incompatible("not an HMAC key spec"))
}

/// A parsed HMAC key.
pub(super) struct HmacKey {
    alg: MacAlgorithm,
    key: hmac::Key,
}

impl HmacKey {
    /// A fresh random key of the hash's output length.
    pub(super) fn generate(spec: KeySpec) -> Result<(Self, Secret), CryptoError> {
        let alg = algorithm(spec)?;
        let raw = Secret::random(alg.tag_len())?;
        Ok((Self::from_raw(spec, raw.expose())?, raw))
    }

    /// Takes raw key bytes whose length AWS allows for `spec`.
    pub(super) fn from_raw(spec: KeySpec, raw: &[u8]) -> Result<Self, CryptoError> {
        let alg = algorithm(spec)?;
        let min = alg.tag_len();
        let max = alg.algorithm().digest_algorithm().block_len();
        if raw.len() < min {
            return Err(CryptoError::InvalidLength {
                what: "HMAC key (minimum)",
                expected: min,
                got: raw.len(),
            });
        }
        if raw.len() > max {
            return Err(CryptoError::InvalidLength {
                what: "HMAC key (maximum)",
                expected: max,
                got: raw.len(),
            });
        }
        Ok(Self {
            alg,
            key: hmac::Key::new(alg.algorithm(), raw),
        })
    }

    fn check(&self, alg: MacAlgorithm) -> Result<(), CryptoError> {
        if alg == self.alg {
            Ok(())
        } else {
            Err(CryptoError::Incompatible(
                "MAC algorithm not valid for this key spec",
            ))
        }
    }

    /// The tag of `message`.
    pub(super) fn mac(&self, alg: MacAlgorithm, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.check(alg)?;
        Ok(hmac::sign(&self.key, message).as_ref().to_vec())
    }

    /// Whether `tag` is the tag of `message`, compared in constant time.
    pub(super) fn verify(
        &self,
        alg: MacAlgorithm,
        message: &[u8],
        tag: &[u8],
    ) -> Result<bool, CryptoError> {
        self.check(alg)?;
        Ok(hmac::verify(&self.key, message, tag).is_ok())
    }
}
