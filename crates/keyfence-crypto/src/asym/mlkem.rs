//! ML-KEM-512/768/1024 (FIPS 203).
//!
//! Private material is the expanded decapsulation key `dk` of FIPS 203
//! (`dk_PKE ‖ ek ‖ H(ek) ‖ z`, 1632/2400/3168 bytes): aws-lc-rs can neither
//! export the 64-byte seed nor derive a key from one. On load the embedded
//! `H(ek)` is checked (the FIPS 203 section 7.3 decapsulation key check) and
//! the encapsulation key is taken from `dk`.
//!
//! The public key is a SubjectPublicKeyInfo with the NIST OIDs
//! `id-alg-ml-kem-512/768/1024` (2.16.840.1.101.3.4.4.1/2/3), absent
//! parameters, and the raw encapsulation key as the BIT STRING.

use aws_lc_rs::kem::{self, Ciphertext, DecapsulationKey, EncapsulationKey};

use super::spec::KeySpec;
use crate::{ct, CryptoError, Secret};

/// The FIPS 203 sizes of one parameter set.
struct Params {
    alg: &'static kem::Algorithm,
    /// The last arc of the OID 2.16.840.1.101.3.4.4.x.
    oid_arc: u8,
    /// Module rank k.
    k: usize,
}

impl Params {
    fn of(spec: KeySpec) -> Result<Self, CryptoError> {
        Ok(match spec {
            KeySpec::MlKem512 => Params {
                alg: &kem::ML_KEM_512,
                oid_arc: 1,
                k: 2,
            },
            KeySpec::MlKem768 => Params {
                alg: &kem::ML_KEM_768,
                oid_arc: 2,
                k: 3,
            },
            KeySpec::MlKem1024 => Params {
                alg: &kem::ML_KEM_1024,
                oid_arc: 3,
                k: 4,
            },
            _ => return Err(CryptoError::Incompatible("not an ML-KEM key spec")),
        })
    }

    fn ek_len(&self) -> usize {
        384 * self.k + 32
    }

    fn dk_len(&self) -> usize {
        768 * self.k + 96
    }

    fn ct_len(&self) -> usize {
        match self.k {
            2 => 768,
            3 => 1088,
            _ => 1568,
        }
    }

    /// The DER of SubjectPublicKeyInfo up to the encapsulation key bytes.
    fn spki_prefix(&self) -> Vec<u8> {
        let oid = [
            0x06,
            0x09,
            0x60,
            0x86,
            0x48,
            0x01,
            0x65,
            0x03,
            0x04,
            0x04,
            self.oid_arc,
        ];
        let mut alg_id = vec![0x30, oid.len() as u8];
        alg_id.extend_from_slice(&oid);
        let mut bit_string = vec![0x03];
        bit_string.extend(der_len(self.ek_len() + 1));
        bit_string.push(0x00);
        let body_len = alg_id.len() + bit_string.len() + self.ek_len();
        let mut out = vec![0x30];
        out.extend(der_len(body_len));
        out.extend(alg_id);
        out.extend(bit_string);
        out
    }
}

/// A DER definite length (these structures are always shorter than 64 KiB).
fn der_len(len: usize) -> Vec<u8> {
    match len {
        0..=0x7f => vec![len as u8],
        0x80..=0xff => vec![0x81, len as u8],
        _ => vec![0x82, (len >> 8) as u8, len as u8],
    }
}

/// A parsed ML-KEM key pair.
pub(super) struct MlKemKey {
    spec: KeySpec,
    dk: DecapsulationKey,
    ek: EncapsulationKey,
}

impl MlKemKey {
    /// A fresh key pair and its expanded decapsulation key.
    pub(super) fn generate(spec: KeySpec) -> Result<(Self, Secret), CryptoError> {
        let params = Params::of(spec)?;
        let dk = DecapsulationKey::generate(params.alg)
            .map_err(|_| CryptoError::Operation("ML-KEM keygen"))?;
        let raw = Secret::new(
            dk.key_bytes()
                .map_err(|_| CryptoError::Operation("ML-KEM key encoding"))?
                .as_ref()
                .to_vec(),
        );
        let ek = dk
            .encapsulation_key()
            .map_err(|_| CryptoError::Operation("ML-KEM encapsulation key"))?;
        Ok((Self { spec, dk, ek }, raw))
    }

    /// Loads an expanded decapsulation key, checking its length and `H(ek)`.
    pub(super) fn from_raw(spec: KeySpec, raw: &[u8]) -> Result<Self, CryptoError> {
        let params = Params::of(spec)?;
        if raw.len() != params.dk_len() {
            return Err(CryptoError::InvalidLength {
                what: "ML-KEM decapsulation key",
                expected: params.dk_len(),
                got: raw.len(),
            });
        }
        let ek_start = 384 * params.k;
        let ek_bytes = &raw[ek_start..ek_start + params.ek_len()];
        let h = &raw[ek_start + params.ek_len()..ek_start + params.ek_len() + 32];
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA3_256, ek_bytes);
        if !ct::eq(digest.as_ref(), h) {
            return Err(CryptoError::Malformed {
                what: "ML-KEM decapsulation key",
                reason: "embedded H(ek) does not match",
            });
        }
        let bad = |_| CryptoError::Malformed {
            what: "ML-KEM decapsulation key",
            reason: "rejected by aws-lc",
        };
        let dk = DecapsulationKey::new(params.alg, raw).map_err(bad)?;
        let ek = EncapsulationKey::new(params.alg, ek_bytes).map_err(bad)?;
        Ok(Self { spec, dk, ek })
    }

    /// The SubjectPublicKeyInfo DER.
    pub(super) fn public_key_der(&self) -> Result<Vec<u8>, CryptoError> {
        let mut out = Params::of(self.spec)?.spki_prefix();
        out.extend_from_slice(
            self.ek
                .key_bytes()
                .map_err(|_| CryptoError::Operation("ML-KEM public key encoding"))?
                .as_ref(),
        );
        Ok(out)
    }

    /// Encapsulates to our own public key.
    pub(super) fn encapsulate(&self) -> Result<(Vec<u8>, Secret), CryptoError> {
        encapsulate_to(&self.ek)
    }

    /// Decapsulates; a tampered ciphertext of the right length yields an
    /// unrelated secret (implicit rejection), never an error.
    pub(super) fn decapsulate(&self, ciphertext: &[u8]) -> Result<Secret, CryptoError> {
        let expected = Params::of(self.spec)?.ct_len();
        if ciphertext.len() != expected {
            return Err(CryptoError::InvalidLength {
                what: "ML-KEM ciphertext",
                expected,
                got: ciphertext.len(),
            });
        }
        let ss = self
            .dk
            .decapsulate(Ciphertext::from(ciphertext))
            .map_err(|_| CryptoError::Operation("ML-KEM decapsulate"))?;
        Ok(Secret::new(ss.as_ref().to_vec()))
    }
}

fn encapsulate_to(ek: &EncapsulationKey) -> Result<(Vec<u8>, Secret), CryptoError> {
    let (ct, ss) = ek
        .encapsulate()
        .map_err(|_| CryptoError::Operation("ML-KEM encapsulate"))?;
    Ok((ct.as_ref().to_vec(), Secret::new(ss.as_ref().to_vec())))
}

/// Parses an ML-KEM SubjectPublicKeyInfo of the parameter set `spec` names.
fn parse_public_key(spec: KeySpec, spki: &[u8]) -> Result<EncapsulationKey, CryptoError> {
    let params = Params::of(spec)?;
    let prefix = params.spki_prefix();
    if spki.len() != prefix.len() + params.ek_len() || !spki.starts_with(&prefix) {
        return Err(CryptoError::Malformed {
            what: "ML-KEM public key",
            reason: "not a SubjectPublicKeyInfo for this parameter set",
        });
    }
    EncapsulationKey::new(params.alg, &spki[prefix.len()..]).map_err(|_| CryptoError::Malformed {
        what: "ML-KEM public key",
        reason: "rejected by aws-lc",
    })
}

/// Encapsulates to an ML-KEM SubjectPublicKeyInfo (what a client does with
/// GetPublicKey's output): the ciphertext and the shared secret.
pub(super) fn encapsulate_with_public_key(
    spec: KeySpec,
    spki: &[u8],
) -> Result<(Vec<u8>, Secret), CryptoError> {
    encapsulate_to(&parse_public_key(spec, spki)?)
}

/// The raw FIPS 203 encapsulation key of a loaded key (for X-Wing).
pub(super) fn raw_public_key(key: &MlKemKey) -> Result<Vec<u8>, CryptoError> {
    Ok(key
        .ek
        .key_bytes()
        .map_err(|_| CryptoError::Operation("ML-KEM public key encoding"))?
        .as_ref()
        .to_vec())
}

/// Encapsulates to a raw FIPS 203 encapsulation key of `spec` (for X-Wing).
pub(super) fn encapsulate_raw(spec: KeySpec, ek: &[u8]) -> Result<(Vec<u8>, Secret), CryptoError> {
    let params = Params::of(spec)?;
    if ek.len() != params.ek_len() {
        return Err(CryptoError::InvalidLength {
            what: "ML-KEM encapsulation key",
            expected: params.ek_len(),
            got: ek.len(),
        });
    }
    let ek = EncapsulationKey::new(params.alg, ek).map_err(|_| CryptoError::Malformed {
        what: "ML-KEM encapsulation key",
        reason: "rejected by aws-lc",
    })?;
    encapsulate_to(&ek)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spki_prefix_is_the_standard_encoding() {
        // ML-KEM-768: SEQUENCE(1202) { SEQUENCE(11) { OID 2.16.840.1.101.3.4.4.2 }, BIT STRING(1185) }
        let p = Params::of(KeySpec::MlKem768).unwrap().spki_prefix();
        assert_eq!(
            p,
            [
                0x30, 0x82, 0x04, 0xb2, 0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03,
                0x04, 0x04, 0x02, 0x03, 0x82, 0x04, 0xa1, 0x00
            ]
        );
    }
}
