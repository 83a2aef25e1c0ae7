//! Hybrid public-key envelopes: a secret encrypted to an X-Wing public key.
//!
//! Format: `X-Wing ciphertext (1120) ‖ nonce (12) ‖ AES-256-GCM(secret) ‖ tag (16)`.
//! The AES key is `HKDF-SHA256(ss, salt = "keyfence/v1/kem-envelope", info = purpose)`
//! with `ss` the X-Wing shared secret, and the caller's binding is the AAD, so an
//! envelope opens only for its recipient, for its purpose and in its place.

use keyfence_crypto::asym::xwing::{self, XWingPrivateKey, CIPHERTEXT_LEN};
use keyfence_crypto::{kdf, wrap, Secret, SymmetricKey};

use super::FenceError;

const SALT: &[u8] = b"keyfence/v1/kem-envelope";

fn kek(ss: &Secret, purpose: &[u8]) -> Result<SymmetricKey, FenceError> {
    let okm = kdf::derive::<32>(ss.expose(), SALT, &[purpose])?;
    Ok(SymmetricKey::from(*okm))
}

/// Encrypts `secret` to the holder of `public_key` for `purpose`, bound to `aad`.
pub(crate) fn seal(
    public_key: &[u8],
    purpose: &[u8],
    aad: &[u8],
    secret: &[u8],
) -> Result<Vec<u8>, FenceError> {
    let (mut out, ss) = xwing::encapsulate(public_key)?;
    out.extend(wrap::wrap_bytes(&kek(&ss, purpose)?, aad, secret)?);
    Ok(out)
}

/// Opens what [`seal`] made. Any change to the bytes, the purpose, the AAD or a
/// wrong private key is [`FenceError::Unauthentic`] naming `what`.
pub(crate) fn open(
    key: &XWingPrivateKey,
    purpose: &[u8],
    aad: &[u8],
    envelope: &[u8],
    what: &'static str,
) -> Result<Secret, FenceError> {
    if envelope.len() < CIPHERTEXT_LEN {
        return Err(FenceError::Unauthentic { what });
    }
    let (kem_ct, sealed) = envelope.split_at(CIPHERTEXT_LEN);
    // A tampered X25519 half can be a low-order point, which decapsulation
    // refuses: the same verdict as a failed tag.
    let ss = key
        .decapsulate(kem_ct)
        .map_err(|_| FenceError::Unauthentic { what })?;
    wrap::unwrap_bytes(&kek(&ss, purpose)?, aad, sealed)
        .map_err(|_| FenceError::Unauthentic { what })
}
