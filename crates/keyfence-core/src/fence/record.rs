//! A fence's stored record and the cryptography of its sealed private half.

use std::fmt;

use keyfence_abe::Policy;
use keyfence_crypto::asym::xwing::PUBLIC_KEY_LEN;
use keyfence_crypto::{kdf, wrap, Secret, SymmetricKey};

use super::codec::{ty, Reader, Writer};
use super::grant::AuthorityPublic;
use super::{sign, FenceError};

/// Length of `k_abe` and of `s_policy`.
pub(crate) const SECRET_LEN: usize = 32;

/// Envelope purpose of a node's `s_policy`.
pub(crate) const S_POLICY_PURPOSE: &[u8] = b"keyfence/v1/fence/s-policy";
/// Envelope purpose of the authority's copy of `s_policy` and the private half.
pub(crate) const AUTHORITY_PURPOSE: &[u8] = b"keyfence/v1/fence/authority";

const SEAL_SALT: &[u8] = b"keyfence/v1/fence/seal";
const SEAL_AAD: &[u8] = b"keyfence/v1/fence/private-half";

/// A fence's id: the first 16 bytes of HKDF-SHA256 over its canonical policy
/// string, so one policy is one fence wherever it is computed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FenceId([u8; 16]);

impl FenceId {
    /// The id of a canonical policy string.
    pub fn of_policy(canonical: &str) -> Result<Self, FenceError> {
        let okm = kdf::derive::<16>(canonical.as_bytes(), b"keyfence/v1/fence-id", &[])?;
        Ok(Self(*okm))
    }

    /// From the 16 bytes a wrapped key carries.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The 16 id bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for FenceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fence-{}", hex::encode(self.0))
    }
}

impl fmt::Debug for FenceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// Parses a policy and returns it with its canonical text (keyfence-abe's
/// `Display`, which parses back to the same policy).
pub fn normalize_policy(policy: &str) -> Result<(Policy, String), FenceError> {
    let parsed = Policy::parse(policy).map_err(|e| FenceError::InvalidPolicy(e.to_string()))?;
    let canonical = parsed.to_string();
    Ok((parsed, canonical))
}

/// `k_abe` CP-ABE-encrypted under one master generation, and the private half
/// sealed under `HKDF(k_abe ‖ s_policy)` for that generation.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct GenerationEntry {
    pub(crate) generation: u32,
    pub(crate) abe_ciphertext: Vec<u8>,
    pub(crate) sealed_private: Vec<u8>,
}

/// One node's `s_policy`, encrypted to its KEM key.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct NodeEnvelope {
    pub(crate) node: String,
    pub(crate) envelope: Vec<u8>,
}

/// A fence as stored: everything a node needs to open the policy key, and
/// nothing secret in clear. Signed by the authority, so a store that can be
/// written to cannot swap the public half (and so learn keys wrapped later).
#[derive(Clone, PartialEq, Eq)]
pub struct FenceRecord {
    pub(crate) id: FenceId,
    pub(crate) policy: String,
    pub(crate) epoch: u32,
    pub(crate) public_key: Vec<u8>,
    pub(crate) authority_envelope: Vec<u8>,
    pub(crate) generations: Vec<GenerationEntry>,
    pub(crate) envelopes: Vec<NodeEnvelope>,
    pub(crate) signature: Vec<u8>,
}

impl fmt::Debug for FenceRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "FenceRecord({} {:?} epoch {} generations {:?} nodes {:?})",
            self.id,
            self.policy,
            self.epoch,
            self.generations(),
            self.nodes()
        )
    }
}

impl FenceRecord {
    /// The fence id.
    pub fn id(&self) -> FenceId {
        self.id
    }

    /// The canonical policy string.
    pub fn policy(&self) -> &str {
        &self.policy
    }

    /// The policy key epoch: starts at 1, bumped by each fence rotation.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The master generations `k_abe` is encrypted under, ascending.
    pub fn generations(&self) -> Vec<u32> {
        self.generations.iter().map(|g| g.generation).collect()
    }

    /// The nodes holding an `s_policy` envelope, in name order.
    pub fn nodes(&self) -> Vec<&str> {
        self.envelopes.iter().map(|e| e.node.as_str()).collect()
    }

    /// Checks the authority's signature.
    pub fn verify(&self, authority: &AuthorityPublic) -> Result<(), FenceError> {
        authority.verify(sign::RECORD, &self.body(), &self.signature, "fence record")
    }

    /// The public half, after checking the authority's signature: what keys
    /// fenced by this policy are wrapped under. The signature does not prove
    /// the record is current: refuse an epoch lower than one already seen.
    pub fn public_key(&self, authority: &AuthorityPublic) -> Result<PolicyPublicKey, FenceError> {
        self.verify(authority)?;
        Ok(PolicyPublicKey {
            fence: self.id,
            epoch: self.epoch,
            public: self.public_key.clone(),
        })
    }

    pub(crate) fn envelope_of(&self, node: &str) -> Option<&[u8]> {
        self.envelopes
            .binary_search_by(|e| e.node.as_str().cmp(node))
            .ok()
            .map(|i| &self.envelopes[i].envelope[..])
    }

    /// The signed part: the encoding without the signature.
    pub(crate) fn body(&self) -> Vec<u8> {
        self.writer().finish()
    }

    fn writer(&self) -> Writer {
        let mut w = Writer::new(ty::FENCE_RECORD);
        w.raw(&self.id.0);
        w.text(&self.policy);
        w.u32(self.epoch);
        w.bytes(&self.public_key);
        w.bytes(&self.authority_envelope);
        w.count(self.generations.len());
        for g in &self.generations {
            w.u32(g.generation);
            w.bytes(&g.abe_ciphertext);
            w.bytes(&g.sealed_private);
        }
        w.count(self.envelopes.len());
        for e in &self.envelopes {
            w.text(&e.node);
            w.bytes(&e.envelope);
        }
        w
    }

    /// Encoding: `"KF" 0x13 0x01 ‖ id (16) ‖ policy ‖ epoch ‖ public half ‖
    /// authority envelope ‖ count ‖ (generation ‖ ABE ciphertext of k_abe ‖
    /// sealed private half)* ‖ count ‖ (node name ‖ s_policy envelope)* ‖
    /// signature`. Generations strictly increase, node names strictly increase.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = self.writer();
        w.bytes(&self.signature);
        w.finish()
    }

    /// Decodes [`FenceRecord::to_bytes`] output, checking its structure (the
    /// policy is canonical, the id is the policy's, lists are sorted); the
    /// signature is checked by [`FenceRecord::verify`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FenceError> {
        let mut r = Reader::new("fence record", ty::FENCE_RECORD, bytes)?;
        let id = FenceId(r.array()?);
        let policy = r.text()?.to_owned();
        let (_, canonical) = normalize_policy(&policy)?;
        if canonical != policy {
            return Err(r.bad("policy is not in canonical form"));
        }
        if FenceId::of_policy(&policy)? != id {
            return Err(r.bad("id is not the policy's"));
        }
        let epoch = r.u32()?;
        let public_key = r.bytes()?.to_vec();
        if public_key.len() != PUBLIC_KEY_LEN {
            return Err(r.bad("public half is not an X-Wing public key"));
        }
        let authority_envelope = r.bytes()?.to_vec();
        let n = r.count()?;
        let mut generations: Vec<GenerationEntry> = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            let generation = r.u32()?;
            if generations
                .last()
                .is_some_and(|g| g.generation >= generation)
            {
                return Err(r.bad("generations not strictly increasing"));
            }
            generations.push(GenerationEntry {
                generation,
                abe_ciphertext: r.bytes()?.to_vec(),
                sealed_private: r.bytes()?.to_vec(),
            });
        }
        let n = r.count()?;
        let mut envelopes: Vec<NodeEnvelope> = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            let node = r.text()?.to_owned();
            if envelopes.last().is_some_and(|e| e.node >= node) {
                return Err(r.bad("node names not strictly increasing"));
            }
            envelopes.push(NodeEnvelope {
                node,
                envelope: r.bytes()?.to_vec(),
            });
        }
        let signature = r.bytes()?.to_vec();
        r.finish()?;
        Ok(Self {
            id,
            policy,
            epoch,
            public_key,
            authority_envelope,
            generations,
            envelopes,
            signature,
        })
    }
}

/// A fence's public half, taken from a record whose signature was checked:
/// wraps the backing keys of every KMS key fenced by the policy.
#[derive(Clone, PartialEq, Eq)]
pub struct PolicyPublicKey {
    pub(crate) fence: FenceId,
    pub(crate) epoch: u32,
    pub(crate) public: Vec<u8>,
}

impl PolicyPublicKey {
    /// The fence.
    pub fn fence(&self) -> FenceId {
        self.fence
    }

    /// The policy key epoch.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The X-Wing public key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.public
    }
}

impl fmt::Debug for PolicyPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PolicyPublicKey({} epoch {})", self.fence, self.epoch)
    }
}

/// The AAD of a node's `s_policy` envelope: fence id ‖ epoch ‖ node name.
pub(crate) fn s_policy_aad(fence: FenceId, epoch: u32, node: &str) -> Vec<u8> {
    let mut aad = fence.0.to_vec();
    aad.extend_from_slice(&epoch.to_be_bytes());
    aad.extend_from_slice(node.as_bytes());
    aad
}

/// The AAD of the authority's envelope: fence id ‖ epoch ‖ policy.
pub(crate) fn authority_aad(fence: FenceId, epoch: u32, policy: &str) -> Vec<u8> {
    let mut aad = fence.0.to_vec();
    aad.extend_from_slice(&epoch.to_be_bytes());
    aad.extend_from_slice(policy.as_bytes());
    aad
}

/// Where the sealed private half belongs: the AEAD key's HKDF info and AAD.
pub(crate) struct SealPlace<'a> {
    pub(crate) fence: FenceId,
    pub(crate) generation: u32,
    pub(crate) epoch: u32,
    pub(crate) policy: &'a str,
}

impl SealPlace<'_> {
    /// `HKDF-SHA256(ikm = k_abe ‖ s_policy, salt = "keyfence/v1/fence/seal",
    /// info = fence id ‖ generation ‖ epoch)`.
    fn key(&self, k_abe: &Secret, s_policy: &Secret) -> Result<SymmetricKey, FenceError> {
        let mut ikm = zeroize::Zeroizing::new(Vec::with_capacity(k_abe.len() + s_policy.len()));
        ikm.extend_from_slice(k_abe.expose());
        ikm.extend_from_slice(s_policy.expose());
        let okm = kdf::derive::<32>(
            &ikm,
            SEAL_SALT,
            &[
                &self.fence.0,
                &self.generation.to_be_bytes(),
                &self.epoch.to_be_bytes(),
            ],
        )?;
        Ok(SymmetricKey::from(*okm))
    }

    /// `"keyfence/v1/fence/private-half" ‖ fence id ‖ generation ‖ epoch ‖ policy`.
    fn aad(&self) -> Vec<u8> {
        let mut aad = SEAL_AAD.to_vec();
        aad.extend_from_slice(&self.fence.0);
        aad.extend_from_slice(&self.generation.to_be_bytes());
        aad.extend_from_slice(&self.epoch.to_be_bytes());
        aad.extend_from_slice(self.policy.as_bytes());
        aad
    }

    /// Seals the private half: `nonce (12) ‖ AES-256-GCM ‖ tag`.
    pub(crate) fn seal(
        &self,
        k_abe: &Secret,
        s_policy: &Secret,
        private: &[u8],
    ) -> Result<Vec<u8>, FenceError> {
        Ok(wrap::wrap_bytes(
            &self.key(k_abe, s_policy)?,
            &self.aad(),
            private,
        )?)
    }

    /// Opens a sealed private half; wrong secrets or tampering are `Unauthentic`.
    pub(crate) fn open(
        &self,
        k_abe: &Secret,
        s_policy: &Secret,
        sealed: &[u8],
    ) -> Result<Secret, FenceError> {
        wrap::unwrap_bytes(&self.key(k_abe, s_policy)?, &self.aad(), sealed).map_err(|_| {
            FenceError::Unauthentic {
                what: "sealed private half of the policy key",
            }
        })
    }
}
