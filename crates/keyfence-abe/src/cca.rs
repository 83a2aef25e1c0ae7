//! keyfence's native CCA-secure hybrid encryption: the Boneh–Katz transform over the
//! TKN20 KEM, with the payload sealed by AES-256-GCM.
//!
//! Encryption draws a 72-byte seed (the commitment decommitment; the length follows
//! CIRCL's statistical-hiding argument), derives `id` and a MAC key from it with
//! HKDF-SHA256, encapsulates a GT key under `policy AND bk: id`, derives an
//! AES-256-GCM key from the GT key with HKDF-SHA256, seals `seed || message` (AAD:
//! everything before the sealed part), and appends HMAC-SHA256 under the MAC key over
//! all preceding bytes. Decryption reverses this and accepts only when the recomputed
//! `id` and tag match, so any modification of any byte is rejected.

use aws_lc_rs::{aead, hkdf, hmac};
use rand_core::{CryptoRng, RngCore};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};
use crate::formula::Formula;
use crate::hashing::hash_to_scalar;
use crate::keys::{AttributeKey, MasterPublicKey};
use crate::pairing::Gt;
use crate::policy::Policy;
use crate::scheme::{decapsulate, encapsulate, Header};
use crate::wipe::wipe;
use crate::{circl, encoding};

/// Length of the Boneh–Katz seed.
pub(crate) const SEED_LEN: usize = 72;
/// Length of the commitment `id` and of the HMAC tag.
pub(crate) const ID_LEN: usize = 32;
const TAG_LEN: usize = 32;
const BK_SALT: &[u8] = b"keyfence-abe v1 boneh-katz";
const DEM_SALT: &[u8] = b"keyfence-abe v1 dem";
/// Domain of the map from `id` to the scalar value of the Boneh–Katz wire.
const ID_DOMAIN: &[u8] = b"keyfence-abe v1 bk identity";

/// An encrypted message: the policy, the ABE header and the sealed payload.
#[derive(Clone, PartialEq, Eq)]
pub struct Ciphertext {
    pub(crate) header: Header,
    pub(crate) payload: Payload,
}

/// The part of a ciphertext that depends on the encoding family.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Payload {
    /// keyfence native (AES-256-GCM + HMAC-SHA256).
    Native {
        /// The native encoding version the ciphertext was made in (its MAC covers it).
        version: u8,
        id: [u8; ID_LEN],
        sealed: Vec<u8>,
        tag: [u8; TAG_LEN],
    },
    /// CIRCL's tkn20 payload (BLAKE2b based).
    Circl(circl::CirclPayload),
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn hkdf32(salt: &[u8], ikm: &[u8], info: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(ikm);
    let mut out = Zeroizing::new([0u8; 32]);
    prk.expand(&[info], Len(32))
        .and_then(|okm| okm.fill(out.as_mut()))
        .map_err(|_| Error::Crypto("HKDF"))?;
    Ok(out)
}

/// `(id, mac_key)` committed to by `seed`.
fn commit(seed: &[u8]) -> Result<([u8; ID_LEN], Zeroizing<[u8; 32]>)> {
    let id = *hkdf32(BK_SALT, seed, b"id")?;
    let mac_key = hkdf32(BK_SALT, seed, b"mac")?;
    Ok((id, mac_key))
}

fn dem_key(k: &Gt) -> Result<aead::LessSafeKey> {
    let mut k_bytes = k.to_bytes();
    let key = hkdf32(DEM_SALT, &k_bytes, b"aes-256-gcm");
    k_bytes.zeroize();
    let key = key?;
    let unbound = aead::UnboundKey::new(&aead::AES_256_GCM, key.as_ref())
        .map_err(|_| Error::Crypto("AES-256-GCM key"))?;
    Ok(aead::LessSafeKey::new(unbound))
}

/// Both formats frame the sealed payload with a 32-bit length.
pub(crate) fn check_message_len(msg: &[u8]) -> Result<()> {
    if msg.len() > u32::MAX as usize - SEED_LEN - 16 {
        return Err(Error::MessageTooLong);
    }
    Ok(())
}

/// The nonce: every DEM key encrypts exactly one message, so a fixed nonce is unique.
fn nonce() -> aead::Nonce {
    aead::Nonce::assume_unique_for_key([0u8; 12])
}

impl MasterPublicKey {
    /// Encrypts `msg` so that exactly the holders of keys satisfying `policy` can read it.
    pub fn encrypt<R: RngCore + CryptoRng>(
        &self,
        policy: &Policy,
        msg: &[u8],
        rng: &mut R,
    ) -> Result<Ciphertext> {
        check_message_len(msg)?;
        let mut envelope = Zeroizing::new(vec![0u8; SEED_LEN + msg.len()]);
        rng.fill_bytes(&mut envelope[..SEED_LEN]);
        envelope[SEED_LEN..].copy_from_slice(msg);
        let (id, mac_key) = commit(&envelope[..SEED_LEN])?;
        let formula = Formula::from_policy(policy);
        let augmented = formula.with_identity(hash_to_scalar(ID_DOMAIN, &id));
        let (header, mut k) = encapsulate(&self.pp, &augmented, formula, rng);
        let dem = dem_key(&k);
        wipe(core::slice::from_mut(&mut k));
        let dem = dem?;

        let prefix = encoding::native_ciphertext_prefix(encoding::NATIVE_VERSION, &id, &header);
        // Room for the tag up front: no reallocation leaves a plaintext copy behind.
        let mut sealed = Vec::with_capacity(envelope.len() + aead::AES_256_GCM.tag_len());
        sealed.extend_from_slice(&envelope);
        dem.seal_in_place_append_tag(nonce(), aead::Aad::from(&prefix[..]), &mut sealed)
            .map_err(|_| Error::Crypto("AES-256-GCM seal"))?;
        let tag_input = encoding::native_mac_input(prefix, &sealed);
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, mac_key.as_ref()),
            &tag_input,
        );
        let mut tag_bytes = [0u8; TAG_LEN];
        tag_bytes.copy_from_slice(tag.as_ref());
        Ok(Ciphertext {
            header,
            payload: Payload::Native {
                version: encoding::NATIVE_VERSION,
                id,
                sealed,
                tag: tag_bytes,
            },
        })
    }
}

impl std::fmt::Debug for Ciphertext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let format = match self.payload {
            Payload::Native { .. } => "native",
            Payload::Circl(_) => "circl",
        };
        write!(
            f,
            "Ciphertext {{ format: {format}, policy: {} }}",
            self.policy()
        )
    }
}

impl Ciphertext {
    /// The policy the ciphertext was encrypted under.
    pub fn policy(&self) -> Policy {
        // Headers are validated on construction and decoding, so this cannot fail.
        self.header
            .formula
            .to_policy()
            .unwrap_or_else(|_| unreachable!("validated ciphertext policy"))
    }
}

impl AttributeKey {
    /// Decrypts `ct`. Fails with [`Error::PolicyNotSatisfied`] when this key's attributes
    /// do not satisfy the policy, and with [`Error::DecryptionFailed`] when the ciphertext
    /// is not authentic.
    pub fn decrypt(&self, ct: &Ciphertext) -> Result<Vec<u8>> {
        match &ct.payload {
            Payload::Native {
                version,
                id,
                sealed,
                tag,
            } => self.decrypt_native(*version, &ct.header, id, sealed, tag),
            Payload::Circl(p) => circl::decrypt(&self.km, &ct.header, p),
        }
    }

    fn decrypt_native(
        &self,
        version: u8,
        header: &Header,
        id: &[u8; ID_LEN],
        sealed: &[u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<Vec<u8>> {
        let augmented = header.formula.with_identity(hash_to_scalar(ID_DOMAIN, id));
        let mut k = decapsulate(header, &augmented, &self.km)?;
        let dem = dem_key(&k);
        wipe(core::slice::from_mut(&mut k));
        let dem = dem?;
        let prefix = encoding::native_ciphertext_prefix(version, id, header);
        let mut buf = Zeroizing::new(sealed.to_vec());
        let opened = dem
            .open_in_place(nonce(), aead::Aad::from(&prefix[..]), &mut buf)
            .map_err(|_| Error::DecryptionFailed)?;
        if opened.len() < SEED_LEN {
            return Err(Error::DecryptionFailed);
        }
        let (id2, mac_key) = commit(&opened[..SEED_LEN])?;
        let tag_input = encoding::native_mac_input(prefix, sealed);
        let tag_ok = hmac::verify(
            &hmac::Key::new(hmac::HMAC_SHA256, mac_key.as_ref()),
            &tag_input,
            tag,
        )
        .is_ok();
        let id_ok = bool::from(id2.ct_eq(id));
        if !(tag_ok & id_ok) {
            return Err(Error::DecryptionFailed);
        }
        Ok(opened[SEED_LEN..].to_vec())
    }
}
