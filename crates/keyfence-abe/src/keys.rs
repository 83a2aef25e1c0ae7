//! The public key types: master public key, master secret key, attribute key.

use std::collections::BTreeMap;
use std::fmt;

use blstrs::Scalar;
use ff::Field;
use rand_core::{CryptoRng, RngCore};
use subtle::ConstantTimeEq;

use crate::attributes::{Attributes, BK_LABEL};
use crate::hashing::hash_value;
use crate::scheme::{self, KeyAttr, KeyMaterial, PublicParams, SecretParams};

/// The authority's master public key: anyone holding it can encrypt.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterPublicKey {
    pub(crate) pp: PublicParams,
}

/// The authority's master secret key: issues attribute keys. Zeroized on drop.
/// Equality is decided in constant time.
#[derive(Clone)]
pub struct MasterSecretKey {
    pub(crate) sp: SecretParams,
}

/// A holder's attribute key: decrypts every ciphertext whose policy its attributes
/// satisfy. Zeroized on drop. Equality is decided in constant time.
#[derive(Clone)]
pub struct AttributeKey {
    pub(crate) km: KeyMaterial,
}

/// Generates a fresh master key pair.
pub fn setup<R: RngCore + CryptoRng>(rng: &mut R) -> (MasterPublicKey, MasterSecretKey) {
    let (pp, sp) = scheme::setup(rng);
    (MasterPublicKey { pp }, MasterSecretKey { sp })
}

impl MasterSecretKey {
    /// Issues an attribute key for `attrs`, bound to fresh per-key randomness so that
    /// keys of different holders cannot be combined.
    pub fn keygen<R: RngCore + CryptoRng>(&self, attrs: &Attributes, rng: &mut R) -> AttributeKey {
        let mut map: BTreeMap<String, KeyAttr> = attrs
            .iter()
            .map(|(k, v)| {
                (
                    k.to_owned(),
                    KeyAttr {
                        value: hash_value(v),
                        wild: false,
                        raw: Some(v.to_owned()),
                    },
                )
            })
            .collect();
        map.insert(
            BK_LABEL.to_owned(),
            KeyAttr {
                value: Scalar::ZERO,
                wild: true,
                raw: None,
            },
        );
        AttributeKey {
            km: scheme::keygen(&self.sp, map, rng),
        }
    }
}

impl AttributeKey {
    /// The attributes this key was issued for, when their values are known (keys
    /// imported from CIRCL's encoding carry only hashed values: `None`).
    pub fn attributes(&self) -> Option<Attributes> {
        let mut out = Attributes::new();
        for (label, a) in &self.km.attrs {
            if a.wild && label == BK_LABEL {
                continue;
            }
            out.insert(label.clone(), a.raw.clone()?).ok()?;
        }
        Some(out)
    }
}

impl PartialEq for MasterSecretKey {
    fn eq(&self, other: &Self) -> bool {
        self.to_bytes()[..].ct_eq(&other.to_bytes()[..]).into()
    }
}

impl Eq for MasterSecretKey {}

impl PartialEq for AttributeKey {
    fn eq(&self, other: &Self) -> bool {
        self.to_bytes()[..].ct_eq(&other.to_bytes()[..]).into()
    }
}

impl Eq for AttributeKey {}

impl fmt::Debug for MasterPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterPublicKey(..)")
    }
}

impl fmt::Debug for MasterSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterSecretKey(<redacted>)")
    }
}

impl fmt::Debug for AttributeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let labels: Vec<&str> = self
            .km
            .attrs
            .keys()
            .map(String::as_str)
            .filter(|l| *l != BK_LABEL)
            .collect();
        write!(
            f,
            "AttributeKey {{ labels: {labels:?}, material: <redacted> }}"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Error, Policy};

    #[test]
    fn mixing_components_of_two_keys_fails() {
        let mut rng = rand_core::OsRng;
        let (mpk, msk) = setup(&mut rng);
        let a = msk.keygen(&Attributes::from_pairs([("a", "x")]).unwrap(), &mut rng);
        let b = msk.keygen(&Attributes::from_pairs([("b", "y")]).unwrap(), &mut rng);
        let ct = mpk
            .encrypt(&Policy::parse("a: x and b: y").unwrap(), b"m", &mut rng)
            .unwrap();
        assert_eq!(a.decrypt(&ct), Err(Error::PolicyNotSatisfied));
        assert_eq!(b.decrypt(&ct), Err(Error::PolicyNotSatisfied));
        // Graft b's component for label "b" (and its attribute) onto a's key, and the
        // other way round: the per-key randomness no longer cancels.
        for (base, donor, label) in [(&a, &b, "b"), (&b, &a, "a")] {
            let mut mixed = base.clone();
            mixed
                .km
                .attrs
                .insert(label.into(), donor.km.attrs[label].clone());
            mixed.km.k3.insert(label.into(), donor.km.k3[label]);
            assert_eq!(mixed.decrypt(&ct), Err(Error::DecryptionFailed));
        }
        // Swapping the shared K1/K2 halves between keys fails as well.
        let mut both = msk.keygen(
            &Attributes::from_pairs([("a", "x"), ("b", "y")]).unwrap(),
            &mut rng,
        );
        assert_eq!(both.decrypt(&ct).unwrap(), b"m");
        both.km.k2 = a.km.k2;
        assert_eq!(both.decrypt(&ct), Err(Error::DecryptionFailed));
    }
}
