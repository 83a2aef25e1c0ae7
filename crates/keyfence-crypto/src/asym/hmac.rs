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

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 4231 keys are outside the lengths AWS imports, so the known answers
    /// bypass that check and test the algorithm mapping and the MAC itself.
    fn raw_key(alg: MacAlgorithm, key: &[u8]) -> HmacKey {
        HmacKey {
            alg,
            key: hmac::Key::new(alg.algorithm(), key),
        }
    }

    #[test]
    fn rfc4231_known_answers() {
        use MacAlgorithm::*;
        let cases: [(&[u8], &[u8], [&str; 4]); 3] = [
            (
                &[0x0b; 20],
                b"Hi There",
                [
                    "896fb1128abbdf196832107cd49df33f47b4b1169912ba4f53684b22",
                    "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
                    "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6",
                    "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
                ],
            ),
            (
                b"Jefe",
                b"what do ya want for nothing?",
                [
                    "a30e01098bc6dbbf45690f3a7e9e6d0f8bbea2a39e6148008fd05e44",
                    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
                    "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649",
                    "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
                ],
            ),
            (
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                [
                    "95e9a0db962095adaebe9b2d6f0dbce2d499f112f2d2b7273fa6870e",
                    "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
                    "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c60c2ef6ab4030fe8296248df163f44952",
                    "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f3526b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598",
                ],
            ),
        ];
        for (key, data, tags) in cases {
            for (alg, tag) in [HmacSha224, HmacSha256, HmacSha384, HmacSha512]
                .into_iter()
                .zip(tags)
            {
                let k = raw_key(alg, key);
                let tag = h(tag);
                assert_eq!(k.mac(alg, data).unwrap(), tag, "{alg}");
                assert!(k.verify(alg, data, &tag).unwrap());
                let mut bad = tag.clone();
                bad[0] ^= 1;
                assert!(!k.verify(alg, data, &bad).unwrap());
                assert!(!k.verify(alg, data, &tag[..tag.len() - 1]).unwrap());
            }
        }
    }

    #[test]
    fn generated_keys_have_the_hash_length() {
        for (spec, len) in [
            (KeySpec::Hmac224, 28),
            (KeySpec::Hmac256, 32),
            (KeySpec::Hmac384, 48),
            (KeySpec::Hmac512, 64),
        ] {
            let (_, raw) = HmacKey::generate(spec).unwrap();
            assert_eq!(raw.len(), len);
        }
    }
}
