//! Ed25519 (RFC 8032): pure Ed25519 through aws-lc-rs, and Ed25519ph over a
//! precomputed SHA-512 digest through aws-lc's own `ED25519ph_*_digest`, which
//! aws-lc-rs does not wrap.
//!
//! Private material is an unencrypted PKCS#8 v1 `PrivateKeyInfo` (RFC 8410);
//! v2 (with the public key) is accepted on import.

use aws_lc_rs::encoding::{AsBigEndian, AsDer};
use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair};
use zeroize::Zeroizing;

use super::parsed_verify;
use super::spec::{MessageType, SigningAlgorithm};
use crate::{CryptoError, Secret};

/// A parsed Ed25519 key, with aws-lc's 64-byte private key form (seed ‖ public
/// key) for Ed25519ph.
pub(super) struct EdKey(Ed25519KeyPair, Zeroizing<[u8; 64]>);

/// aws-lc's private key form: the 32-byte seed followed by the 32-byte public key.
fn expanded(pair: &Ed25519KeyPair) -> Result<Zeroizing<[u8; 64]>, CryptoError> {
    let seed = pair
        .seed()
        .and_then(|s| s.as_be_bytes())
        .map_err(|_| CryptoError::Operation("Ed25519 seed"))?;
    let mut out = Zeroizing::new([0u8; 64]);
    out[..32].copy_from_slice(seed.as_ref());
    out[32..].copy_from_slice(pair.public_key().as_ref());
    Ok(out)
}

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the 32-byte key follows.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

impl EdKey {
    /// A fresh key pair and its PKCS#8 v1 encoding.
    pub(super) fn generate() -> Result<(Self, Secret), CryptoError> {
        let pair =
            Ed25519KeyPair::generate().map_err(|_| CryptoError::Operation("Ed25519 keygen"))?;
        let der = pair
            .to_pkcs8v1()
            .map_err(|_| CryptoError::Operation("Ed25519 PKCS#8 encoding"))?;
        let private = expanded(&pair)?;
        Ok((Self(pair, private), Secret::new(der.as_ref().to_vec())))
    }

    /// Parses PKCS#8 v1 or v2 (a v2 public key must match the seed).
    pub(super) fn from_pkcs8(der: &[u8]) -> Result<Self, CryptoError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|_| {
            CryptoError::Malformed {
                what: "Ed25519 private key",
                reason: "not an Ed25519 PKCS#8 PrivateKeyInfo",
            }
        })?;
        let private = expanded(&pair)?;
        Ok(Self(pair, private))
    }

    /// The SubjectPublicKeyInfo DER.
    pub(super) fn public_key_der(&self) -> Result<Vec<u8>, CryptoError> {
        let der = self
            .0
            .public_key()
            .as_der()
            .map_err(|_| CryptoError::Operation("Ed25519 public key encoding"))?;
        Ok(der.as_ref().to_vec())
    }

    /// Signs an already checked message.
    pub(super) fn sign(
        &self,
        alg: SigningAlgorithm,
        message: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        match alg {
            SigningAlgorithm::Ed25519Sha512 => Ok(self
                .0
                .try_sign(message)
                .map_err(|_| CryptoError::Operation("Ed25519 sign"))?
                .as_ref()
                .to_vec()),
            SigningAlgorithm::Ed25519PhSha512 => {
                let digest: &[u8; 64] =
                    message.try_into().map_err(|_| CryptoError::InvalidLength {
                        what: "Ed25519ph digest",
                        expected: 64,
                        got: message.len(),
                    })?;
                let mut sig = [0u8; 64];
                // SAFETY: `sig` is 64 writable bytes, `digest` 64 readable bytes and
                // `self.1` the 64-byte private key, the exact sizes the C signature
                // declares; a null context with length 0 is documented as allowed.
                // The function reads and writes nothing else and keeps no pointer.
                let ok = unsafe {
                    aws_lc_sys::ED25519ph_sign_digest(
                        sig.as_mut_ptr(),
                        digest.as_ptr(),
                        self.1.as_ptr(),
                        std::ptr::null(),
                        0,
                    )
                };
                if ok != 1 {
                    return Err(CryptoError::Operation("Ed25519ph sign"));
                }
                Ok(sig.to_vec())
            }
            _ => Err(CryptoError::Incompatible(
                "not an Ed25519 signing algorithm",
            )),
        }
    }
}

/// Verifies Ed25519ph over a 64-byte SHA-512 digest with a raw 32-byte public key.
fn verify_prehash(spki: &[u8], digest: &[u8], sig: &[u8]) -> Result<bool, CryptoError> {
    let public = spki
        .strip_prefix(&SPKI_PREFIX[..])
        .filter(|k| k.len() == 32)
        .ok_or(CryptoError::Malformed {
            what: "Ed25519 public key",
            reason: "not an Ed25519 SubjectPublicKeyInfo",
        })?;
    let digest: &[u8; 64] = digest.try_into().map_err(|_| CryptoError::InvalidLength {
        what: "Ed25519ph digest",
        expected: 64,
        got: digest.len(),
    })?;
    let Ok(sig) = <&[u8; 64]>::try_from(sig) else {
        return Ok(false);
    };
    // SAFETY: `digest` and `sig` are 64 readable bytes and `public` 32, the sizes
    // the C signature declares; a null context with length 0 is allowed. The
    // function only reads them and keeps no pointer.
    let ok = unsafe {
        aws_lc_sys::ED25519ph_verify_digest(
            digest.as_ptr(),
            sig.as_ptr(),
            public.as_ptr(),
            std::ptr::null(),
            0,
        )
    };
    Ok(ok == 1)
}

/// Verifies an Ed25519 signature with a SubjectPublicKeyInfo.
pub(super) fn verify(
    spki: &[u8],
    alg: SigningAlgorithm,
    message_type: MessageType,
    message: &[u8],
    sig: &[u8],
) -> Result<bool, CryptoError> {
    match alg {
        SigningAlgorithm::Ed25519Sha512 => {
            parsed_verify(&signature::ED25519, spki, alg, message_type, message, sig)
        }
        SigningAlgorithm::Ed25519PhSha512 => verify_prehash(spki, message, sig),
        _ => Err(CryptoError::Incompatible(
            "not an Ed25519 signing algorithm",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 8032 section 7.3, TEST abc (Ed25519ph).
    #[test]
    fn rfc8032_ed25519ph_known_answer() {
        let mut pkcs8 = unhex("302e020100300506032b657004220420");
        pkcs8.extend(unhex(
            "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
        ));
        let key = EdKey::from_pkcs8(&pkcs8).unwrap();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA512, b"abc");
        let sig = key
            .sign(SigningAlgorithm::Ed25519PhSha512, digest.as_ref())
            .unwrap();
        assert_eq!(
            sig,
            unhex("98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae4131f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406")
        );
        let spki = key.public_key_der().unwrap();
        assert_eq!(
            spki[12..].to_vec(),
            unhex("ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf")
        );
        assert!(verify_prehash(&spki, digest.as_ref(), &sig).unwrap());
        let mut bad = sig.clone();
        bad[0] ^= 1;
        assert!(!verify_prehash(&spki, digest.as_ref(), &bad).unwrap());
        assert!(!verify_prehash(&spki, digest.as_ref(), &sig[..63]).unwrap());
        assert!(verify_prehash(&spki[1..], digest.as_ref(), &sig).is_err());
        assert!(key
            .sign(SigningAlgorithm::Ed25519PhSha512, &[0; 32])
            .is_err());
    }
}
