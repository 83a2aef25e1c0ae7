//! The node side: a node's identity with its opened grant, opening policy keys,
//! and wrapping backing keys under a fence.

use std::fmt;

use keyfence_abe::{AttributeKey, Attributes, Ciphertext};
use keyfence_crypto::asym::xwing::XWingPrivateKey;
use keyfence_crypto::{ct, Secret};

use super::codec::{ty, Reader, Writer};
use super::grant::{attribute_key_aad, AuthorityPublic, NodeGrant, ATTRIBUTE_KEY_PURPOSE};
use super::identity::NodeIdentity;
use super::record::{
    s_policy_aad, FenceId, FenceRecord, PolicyPublicKey, SealPlace, SECRET_LEN, S_POLICY_PURPOSE,
};
use super::{envelope, FenceError};

const BACKING_KEY_PURPOSE: &[u8] = b"keyfence/v1/fence/backing-key";

/// A fence's policy private key, opened: unwraps the backing keys of keys
/// fenced by the policy. Held in memory only (a node caches it); zeroized on
/// drop; `Debug` shows the fence only.
pub struct PolicyPrivateKey {
    pub(crate) fence: FenceId,
    pub(crate) epoch: u32,
    pub(crate) policy: String,
    pub(crate) key: XWingPrivateKey,
}

impl fmt::Debug for PolicyPrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PolicyPrivateKey({} epoch {}, [REDACTED])",
            self.fence, self.epoch
        )
    }
}

impl PolicyPrivateKey {
    /// The fence.
    pub fn fence(&self) -> FenceId {
        self.fence
    }

    /// The policy key epoch.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The canonical policy.
    pub fn policy(&self) -> &str {
        &self.policy
    }

    /// The matching public half.
    pub fn public(&self) -> PolicyPublicKey {
        PolicyPublicKey {
            fence: self.fence,
            epoch: self.epoch,
            public: self.key.public_key().to_vec(),
        }
    }

    /// Loads a private half opened from `record`'s sealed copy (or the
    /// authority's), checking it is the record's key pair.
    pub(crate) fn load(record: &FenceRecord, bytes: &[u8]) -> Result<Self, FenceError> {
        let unauthentic = FenceError::Unauthentic {
            what: "policy private key",
        };
        let key = XWingPrivateKey::from_bytes(bytes).map_err(|_| unauthentic)?;
        if !ct::eq(key.public_key(), &record.public_key) {
            return Err(FenceError::Unauthentic {
                what: "policy private key",
            });
        }
        Ok(Self {
            fence: record.id,
            epoch: record.epoch,
            policy: record.policy.clone(),
            key,
        })
    }
}

/// The AAD of a wrapped backing key: fence id ‖ epoch ‖ the caller's AAD.
fn backing_aad(fence: FenceId, epoch: u32, aad: &[u8]) -> Vec<u8> {
    let mut out = fence.as_bytes().to_vec();
    out.extend_from_slice(&epoch.to_be_bytes());
    out.extend_from_slice(aad);
    out
}

/// Wraps a backing key's `material` under a fence's public half, bound to
/// `aad` (e.g. the KMS key id and version). Format: `"KF" 0x16 0x01 ‖ fence id
/// (16) ‖ epoch ‖ X-Wing envelope (AAD = fence id ‖ epoch ‖ aad)`.
pub fn wrap_backing_key(
    fence_public: &PolicyPublicKey,
    material: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, FenceError> {
    let mut w = Writer::new(ty::WRAPPED_KEY);
    w.raw(fence_public.fence.as_bytes());
    w.u32(fence_public.epoch);
    w.bytes(&envelope::seal(
        &fence_public.public,
        BACKING_KEY_PURPOSE,
        &backing_aad(fence_public.fence, fence_public.epoch, aad),
        material,
    )?);
    Ok(w.finish())
}

/// The fence and epoch a wrapped backing key names (to find its policy key).
pub fn wrapped_key_fence(wrapped: &[u8]) -> Result<(FenceId, u32), FenceError> {
    let mut r = Reader::new("wrapped backing key", ty::WRAPPED_KEY, wrapped)?;
    let fence = FenceId::from_bytes(r.array()?);
    Ok((fence, r.u32()?))
}

/// Unwraps what [`wrap_backing_key`] made with the fence's private half.
pub fn unwrap_backing_key(
    key: &PolicyPrivateKey,
    wrapped: &[u8],
    aad: &[u8],
) -> Result<Secret, FenceError> {
    let mut r = Reader::new("wrapped backing key", ty::WRAPPED_KEY, wrapped)?;
    let found = FenceId::from_bytes(r.array()?);
    let found_epoch = r.u32()?;
    let sealed = r.bytes()?;
    r.finish()?;
    if found != key.fence || found_epoch != key.epoch {
        return Err(FenceError::WrongPolicyKey {
            fence: key.fence,
            epoch: key.epoch,
            found,
            found_epoch,
        });
    }
    envelope::open(
        &key.key,
        BACKING_KEY_PURPOSE,
        &backing_aad(key.fence, key.epoch, aad),
        sealed,
        "wrapped backing key",
    )
}

/// A node's keys: its identity, the authority's public key, and the CP-ABE
/// attribute keys of its grant, opened. Rebuilt at start from the sealed
/// identity and the stored grant; never serialized as a whole.
pub struct NodeKeyring {
    identity: NodeIdentity,
    authority: AuthorityPublic,
    approved: Attributes,
    /// Attribute keys by master generation, ascending.
    keys: Vec<(u32, AttributeKey)>,
}

impl fmt::Debug for NodeKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "NodeKeyring({} approved {} generations {:?}, [REDACTED])",
            self.identity.name(),
            self.approved,
            self.generations()
        )
    }
}

impl NodeKeyring {
    /// Opens `grant` for `identity`: checks the authority's signature, that the
    /// grant is for this very node (name and keys), and decrypts its attribute keys.
    pub fn open(
        identity: NodeIdentity,
        grant: &NodeGrant,
        authority: &AuthorityPublic,
    ) -> Result<Self, FenceError> {
        grant.verify(authority)?;
        if grant.node != *identity.public() {
            return Err(FenceError::WrongNode {
                grant: grant.name().to_owned(),
                node: identity.name().to_owned(),
            });
        }
        let mut keys = Vec::with_capacity(grant.keys.len());
        for k in &grant.keys {
            let bytes = envelope::open(
                identity.kem(),
                ATTRIBUTE_KEY_PURPOSE,
                &attribute_key_aad(identity.name(), k.generation),
                &k.envelope,
                "attribute key envelope",
            )?;
            let key =
                AttributeKey::from_bytes(bytes.expose()).map_err(|_| FenceError::Malformed {
                    what: "attribute key",
                    reason: "not a keyfence-abe attribute key",
                })?;
            keys.push((k.generation, key));
        }
        Ok(Self {
            identity,
            authority: authority.clone(),
            approved: grant.approved.clone(),
            keys,
        })
    }

    /// Builds a keyring from parts, skipping the grant: for tests that play an
    /// attacker holding keys no grant gave it.
    #[cfg(test)]
    pub(crate) fn from_parts(
        identity: NodeIdentity,
        authority: AuthorityPublic,
        approved: Attributes,
        keys: Vec<(u32, AttributeKey)>,
    ) -> Self {
        Self {
            identity,
            authority,
            approved,
            keys,
        }
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        self.identity.name()
    }

    /// The node's approved attributes.
    pub fn attributes(&self) -> &Attributes {
        &self.approved
    }

    /// The master generations this node holds attribute keys for, ascending.
    pub fn generations(&self) -> Vec<u32> {
        self.keys.iter().map(|(g, _)| *g).collect()
    }

    /// The node's identity.
    pub fn identity(&self) -> &NodeIdentity {
        &self.identity
    }

    /// The fence's public half, after checking the record's signature.
    pub fn fence_public(&self, record: &FenceRecord) -> Result<PolicyPublicKey, FenceError> {
        record.public_key(&self.authority)
    }

    /// Opens the fence's policy private key: checks the record's signature,
    /// opens this node's `s_policy` envelope, CP-ABE-decrypts `k_abe` of the
    /// newest generation both hold, and opens the private half sealed under
    /// `HKDF(k_abe ‖ s_policy)`. Without an envelope, or with attributes that
    /// do not satisfy the policy: [`FenceError::NotSatisfied`].
    pub fn open_policy_key(&self, record: &FenceRecord) -> Result<PolicyPrivateKey, FenceError> {
        record.verify(&self.authority)?;
        let envelope = record
            .envelope_of(self.name())
            .ok_or_else(|| not_satisfied(record))?;
        let s_policy = envelope::open(
            self.identity.kem(),
            S_POLICY_PURPOSE,
            &s_policy_aad(record.id, record.epoch, self.name()),
            envelope,
            "s_policy envelope",
        )?;
        self.open_with_secret(record, &s_policy)
    }

    /// The second half of [`Self::open_policy_key`], given `s_policy`: the
    /// CP-ABE part and the sealed private half.
    pub(crate) fn open_with_secret(
        &self,
        record: &FenceRecord,
        s_policy: &Secret,
    ) -> Result<PolicyPrivateKey, FenceError> {
        if s_policy.len() != SECRET_LEN {
            return Err(FenceError::Unauthentic {
                what: "s_policy envelope",
            });
        }
        let (entry, key) = record
            .generations
            .iter()
            .rev()
            .find_map(|e| {
                self.keys
                    .iter()
                    .find(|(g, _)| *g == e.generation)
                    .map(|(_, k)| (e, k))
            })
            .ok_or_else(|| FenceError::StaleGeneration {
                fence: record.id,
                policy: record.policy.clone(),
            })?;
        let abe_ct =
            Ciphertext::from_bytes(&entry.abe_ciphertext).map_err(|_| FenceError::Unauthentic {
                what: "ABE ciphertext of k_abe",
            })?;
        if abe_ct.policy().to_string() != record.policy {
            return Err(FenceError::Unauthentic {
                what: "ABE ciphertext of k_abe",
            });
        }
        let k_abe = match key.decrypt(&abe_ct) {
            Ok(k) => Secret::new(k),
            Err(keyfence_abe::Error::PolicyNotSatisfied) => return Err(not_satisfied(record)),
            Err(_) => {
                return Err(FenceError::Unauthentic {
                    what: "ABE ciphertext of k_abe",
                })
            }
        };
        let place = SealPlace {
            fence: record.id,
            generation: entry.generation,
            epoch: record.epoch,
            policy: &record.policy,
        };
        let private = place.open(&k_abe, s_policy, &entry.sealed_private)?;
        PolicyPrivateKey::load(record, private.expose())
    }
}

fn not_satisfied(record: &FenceRecord) -> FenceError {
    FenceError::NotSatisfied {
        fence: record.id,
        policy: record.policy.clone(),
    }
}
