//! ML-DSA-65 signatures over labelled messages (`label ‖ 0x00 ‖ encoding`), so a
//! signature on one kind of record never verifies as another.

use keyfence_crypto::asym::{self, KeySpec, MessageType, PrivateKey, SigningAlgorithm};

use super::FenceError;

/// Label of a join request signature (by the joining node).
pub(crate) const JOIN: &[u8] = b"keyfence/v1/join-request";
/// Label of a grant signature (by the authority).
pub(crate) const GRANT: &[u8] = b"keyfence/v1/node-grant";
/// Label of a fence record signature (by the authority).
pub(crate) const RECORD: &[u8] = b"keyfence/v1/fence-record";

const ALG: SigningAlgorithm = SigningAlgorithm::MlDsaShake256;

fn message(label: &[u8], body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(label.len() + 1 + body.len());
    m.extend_from_slice(label);
    m.push(0);
    m.extend_from_slice(body);
    m
}

/// A fresh ML-DSA-65 signing key.
pub(crate) fn generate() -> Result<PrivateKey, FenceError> {
    Ok(PrivateKey::generate(KeySpec::MlDsa65)?)
}

/// Loads an ML-DSA-65 signing key from its PKCS#8 encoding.
pub(crate) fn load(pkcs8: &[u8], what: &'static str) -> Result<PrivateKey, FenceError> {
    PrivateKey::from_bytes(KeySpec::MlDsa65, pkcs8).map_err(|_| FenceError::Malformed {
        what,
        reason: "not an ML-DSA-65 private key",
    })
}

/// Signs `body` under `label`.
pub(crate) fn sign(key: &PrivateKey, label: &[u8], body: &[u8]) -> Result<Vec<u8>, FenceError> {
    Ok(key.sign(ALG, MessageType::Raw, &message(label, body))?)
}

/// Verifies a signature on `body` under `label` by the key `spki` (DER).
/// A malformed key or signature is as bad as a wrong one.
pub(crate) fn verify(
    spki: &[u8],
    label: &[u8],
    body: &[u8],
    signature: &[u8],
    what: &'static str,
) -> Result<(), FenceError> {
    match asym::verify_with_public_key(
        KeySpec::MlDsa65,
        spki,
        ALG,
        MessageType::Raw,
        &message(label, body),
        signature,
    ) {
        Ok(true) => Ok(()),
        _ => Err(FenceError::BadSignature { what }),
    }
}
